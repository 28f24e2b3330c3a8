//! The Source seam: one blocking producer of JPEG frames per stream, run on its own thread
//! by the supervisor, plus the factory that builds one from a stream's URL.
//!
//! A source never decides about retries, stalls or placeholders: it opens, yields events
//! and reports errors; `supervise.rs` owns everything around that.

pub mod exec;
pub mod http_mjpeg;
pub mod pattern;
pub mod rtsp;
pub mod v4l2;

use crate::config::{SourceKind, StreamConfig};
use crate::error::Result;
use crate::frame::Frame;
use crate::jpeg::I420;
use crate::shutdown::Shutdown;
use std::time::{Instant, SystemTime};

/// What one call of [`Source::next`] produced.
#[derive(Debug)]
pub enum Event<'a> {
    /// A new JPEG frame, ready to publish (cameras that send JPEG, passed through).
    Frame(Frame),
    /// A new decoded or drawn picture (full-range planar 4:2:0), borrowed from the
    /// source: the supervisor encodes what viewers want of it (full size, renditions)
    /// before the next call, so nothing is encoded that nobody watches.
    Picture(Picture<'a>),
    /// The peer is alive (data arrived) but no frame was made, e.g. because nobody is
    /// watching and decoding/encoding was skipped. Keeps the stall watchdog quiet.
    Alive,
    /// Nothing happened within the poll interval. The supervisor checks for stalls.
    Idle,
}

/// A picture a source decoded or drew, with when it was captured.
#[derive(Debug)]
pub struct Picture<'a> {
    pub image: I420<'a>,
    /// JPEG quality for its full-size frame (renditions use `rendition::QUALITY`).
    pub quality: u8,
    pub captured_at: Instant,
    pub captured_wall: SystemTime,
}

/// A camera or feed. Implementations block, but every call returns within about
/// [`POLL_INTERVAL`] so that shutdown and the stall watchdog are never held up.
pub trait Source: Send {
    /// Connects or opens the device. Called again after every failure.
    fn open(&mut self) -> Result<()>;

    /// Waits for the next event. `wanted` is false when nobody watches and no snapshot
    /// is pending: sources whose frames cost CPU (decode, encode) skip that work and
    /// return [`Event::Alive`] instead.
    fn next(&mut self, wanted: bool) -> Result<Event<'_>>;

    /// Releases the connection or device. The source may be opened again afterwards.
    fn close(&mut self) {}
}

/// Longest a single `open`/`next` call should block before returning to the supervisor.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Builds the source for a stream from its configured URL. Sources whose `open` can take
/// long (network connects) keep `shutdown` to cut it short.
pub fn build(stream: &StreamConfig, shutdown: &Shutdown) -> Result<Box<dyn Source>> {
    match stream.kind {
        SourceKind::Pattern => Ok(Box::new(pattern::PatternSource::from_config(stream)?)),
        SourceKind::Rtsp => rtsp::RtspSource::from_config(stream, shutdown),
        SourceKind::HttpMjpeg => http_mjpeg::HttpMjpegSource::from_config(stream, shutdown),
        SourceKind::V4l2 => Ok(Box::new(v4l2::V4l2Source::from_config(stream)?)),
        SourceKind::Exec => exec::ExecSource::from_config(stream, shutdown),
    }
}
