//! A captured frame: JPEG bytes shared by reference counting, plus size, sequence number
//! and capture time. Encoded once, then handed to every viewer without copying.

use bytes::Bytes;
use std::time::{Duration, Instant, SystemTime};

/// One JPEG frame of a stream.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The complete JPEG file (SOI .. EOI). `Bytes` so every viewer shares one buffer.
    pub jpeg: Bytes,
    pub width: u32,
    pub height: u32,
    /// Position in the stream, assigned by the hub on publish (starts at 1).
    pub seq: u64,
    /// When the source captured it (monotonic), for latency and staleness.
    pub captured_at: Instant,
    /// The same moment on the wall clock, sent to viewers as `X-Timestamp`.
    pub captured_wall: SystemTime,
}

/// A frame older than this when it is sent is marked stale (the `X-Camhub-Stale` part
/// header, the mux's `stale` kind), so a page never shows an old picture as live: e.g.
/// the last frame of an idle camera, shown at once while a fresh one is made.
pub const STALE_AFTER: Duration = Duration::from_secs(2);

impl Frame {
    /// True when the frame was captured more than [`STALE_AFTER`] ago.
    pub fn is_stale(&self) -> bool {
        self.captured_at.elapsed() > STALE_AFTER
    }

    /// A frame captured now; `seq` is filled in by the hub.
    pub fn new(jpeg: Bytes, width: u32, height: u32) -> Self {
        Frame {
            jpeg,
            width,
            height,
            seq: 0,
            captured_at: Instant::now(),
            captured_wall: SystemTime::now(),
        }
    }
}
