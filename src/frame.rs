//! A captured frame: JPEG bytes shared by reference counting, plus size, sequence number
//! and capture time. Encoded once, then handed to every viewer without copying.

use bytes::Bytes;
use std::time::{Instant, SystemTime};

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

impl Frame {
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
