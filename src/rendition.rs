//! Renditions: the smaller sizes a stream serves beside its full-size frames, so a phone
//! grid gets tiles at the size they are drawn (about 1/10 of the bytes of a 720p frame)
//! instead of the camera's full picture.
//!
//! Sizes come from one ladder of widths ([`LADDER_PX`]; adjacent steps at most 1.5×
//! apart, so a tile never gets more than 1.5× the pixels it asked for). A request for
//! `width=N` gets the smallest step ≥ N, or the full-size stream when that step is at
//! least the source's width. The hub keeps one slot per step that someone watches
//! (`hub::Slot`); this module decides sizes and makes the pictures:
//! - [`Maker`] scales a planar picture to a step and encodes it. Sources that decode or
//!   draw (H.264, raw V4L2, the test pattern) call it on their own thread with the picture
//!   they already have: no extra decode.
//! - [`Worker`] does the same for cameras that send JPEG (passthrough): on its own thread
//!   (`rnd-<id>`), it decodes the newest frame at a DCT scale (1/2, 1/4, 1/8: most of the
//!   work skipped) and finishes with [`Maker`]. It runs only while some slot needs it,
//!   takes the newest frame only (never a queue), and never blocks the source.

use crate::error::Result;
use crate::frame::Frame;
use crate::hub::{Role, Slot, Stream};
use crate::jpeg::{self, I420Buf, I420Strided, YuvRange, I420};
use crate::jpeg_decode;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Widths a stream can be served at below its full size. Each step is at most 1.5× the
/// one before (1.2–1.33× in the range phones ask for), so the step picked for a request
/// is rarely much wider than asked: a 2-column grid on a 390-CSS-px phone at 2× asks for
/// about 366 px and gets 400, not 480 (about 1.4× the bytes).
pub const LADDER_PX: [u32; 13] = [
    160, 240, 320, 400, 480, 640, 800, 960, 1280, 1600, 1920, 2560, 3840,
];

/// JPEG quality of renditions: the pictures are small and looked at as thumbnails, so a
/// little below the full-size frames' (85) buys bytes that matter on mobile data.
pub const QUALITY: u8 = 75;

/// The ladder step for a request of `requested_px` wide: the smallest step at least that
/// wide, or `None` (full size) above the top step.
pub fn step_for(requested_px: u32) -> Option<u32> {
    LADDER_PX.iter().copied().find(|&w| w >= requested_px)
}

/// The size of the `step_px`-wide rendition of a `source` picture: the source's aspect
/// ratio, height rounded to an even number (4:2:0 chroma), never larger than the source.
pub fn size_at(step_px: u32, source: (u32, u32)) -> (u32, u32) {
    let (sw, sh) = (source.0.max(1), source.1.max(1));
    if step_px >= sw {
        return (sw, sh);
    }
    let h = (u64::from(step_px) * u64::from(sh) + u64::from(sw) / 2) / u64::from(sw);
    let h = ((h as u32 + 1) & !1).clamp(2, sh);
    (step_px, h)
}

/// Scales planar pictures to ladder steps and encodes them; keeps one scratch buffer
/// and encoder per step, allocated once.
#[derive(Default)]
pub struct Maker {
    outputs: Vec<(u32, I420Buf, jpeg::Encoder)>,
}

impl Maker {
    /// The `step_px`-wide rendition of `picture` (full range), stamped with the source
    /// picture's capture time.
    pub fn make(
        &mut self,
        picture: &I420<'_>,
        step_px: u32,
        captured: (Instant, SystemTime),
    ) -> Result<Frame> {
        let (w, h) = size_at(step_px, (picture.width, picture.height));
        let i = match self.outputs.iter().position(|(s, ..)| *s == step_px) {
            Some(i) => i,
            None => {
                self.outputs
                    .push((step_px, I420Buf::default(), jpeg::Encoder::new(QUALITY)));
                self.outputs.len() - 1
            }
        };
        let (_, scratch, encoder) = &mut self.outputs[i];
        let (cw, _) = I420::chroma_size(picture.width, picture.height);
        let src = I420Strided {
            width: picture.width,
            height: picture.height,
            y: picture.y,
            y_stride: picture.width as usize,
            cb: picture.cb,
            cr: picture.cr,
            chroma_stride: cw as usize,
        };
        scratch.resample_from(&src, w, h, YuvRange::Full)?;
        let jpeg = encoder.encode_i420(&scratch.as_i420())?;
        let mut frame = Frame::new(jpeg, w, h);
        (frame.captured_at, frame.captured_wall) = captured;
        Ok(frame)
    }

    /// Drops the buffers of steps nobody wants any more.
    pub fn retain(&mut self, steps_px: &[u32]) {
        self.outputs.retain(|(s, ..)| steps_px.contains(s));
    }
}

/// Makes every scaled slot `jobs` lists from one planar picture, storing each result.
/// Errors are per slot and logged at debug: a rendition that cannot be made leaves the
/// slot's viewers on its previous frame, it never stops the source.
pub fn make_all(
    maker: &mut Maker,
    picture: &I420<'_>,
    jobs: &[Arc<Slot>],
    captured: (Instant, SystemTime),
    origin: Role,
) {
    for slot in jobs {
        match maker.make(picture, slot.width, captured) {
            Ok(frame) => slot.store(frame, origin),
            Err(e) => tracing::debug!(width = slot.width, "rendition failed: {e}"),
        }
    }
}

/// How long a worker with nothing to do keeps its thread before it exits.
const WORKER_IDLE: Duration = Duration::from_secs(10);

/// The rendition thread of one feed of a JPEG-passthrough stream. Owned by that feed's
/// supervisor loop; [`Worker::offer`] hands it the newest frame and returns at once.
pub struct Worker {
    shared: Arc<WorkerShared>,
    thread: Option<std::thread::JoinHandle<()>>,
    name: String,
}

struct WorkerShared {
    /// The newest frame not yet worked on (an older one is replaced, never queued), and
    /// whether the owner has gone.
    next: Mutex<(Option<Arc<Frame>>, bool)>,
    wake: Condvar,
}

impl Worker {
    /// A worker for `role` of `stream`; its thread starts on the first offer.
    pub fn new(stream: &Stream, role: Role) -> Worker {
        let name = match role {
            Role::Main => format!("rnd-{}", stream.id),
            Role::Sub => format!("rnd-{}-sub", stream.id),
        };
        Worker {
            shared: Arc::new(WorkerShared {
                next: Mutex::new((None, false)),
                wake: Condvar::new(),
            }),
            thread: None,
            name,
        }
    }

    /// Hands `frame` to the thread (starting it if needed). Never waits for work.
    pub fn offer(&mut self, stream: &Arc<Stream>, role: Role, frame: Arc<Frame>) {
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            self.thread = None;
        }
        lock(&self.shared.next).0 = Some(frame);
        self.shared.wake.notify_one();
        if self.thread.is_none() {
            let (shared, stream) = (self.shared.clone(), stream.clone());
            match std::thread::Builder::new()
                .name(self.name.clone())
                .spawn(move || worker_loop(&shared, &stream, role))
            {
                Ok(t) => self.thread = Some(t),
                Err(e) => tracing::warn!(thread = %self.name, "cannot start: {e}"),
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        lock(&self.shared.next).1 = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn worker_loop(shared: &WorkerShared, stream: &Arc<Stream>, role: Role) {
    let mut decoder = jpeg_decode::Decoder::new();
    let mut picture = I420Buf::default();
    let mut maker = Maker::default();
    loop {
        let frame = {
            let mut next = lock(&shared.next);
            let deadline = Instant::now() + WORKER_IDLE;
            loop {
                if next.1 {
                    return;
                }
                if let Some(f) = next.0.take() {
                    break f;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return; // idle: the owner starts a new thread on its next offer
                }
                next = shared
                    .wake
                    .wait_timeout(next, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        let jobs = stream.scaled_jobs(role, frame.width);
        maker.retain(&jobs.iter().map(|s| s.width).collect::<Vec<_>>());
        let Some(largest) = jobs.iter().map(|s| s.width).max() else {
            continue;
        };
        // Decode once, at the smallest DCT scale that still covers the widest step.
        if let Err(e) = decoder.decode_scaled(&frame.jpeg, largest, &mut picture) {
            tracing::debug!(stream = %stream.id, "rendition decode failed: {e}");
            continue;
        }
        let captured = (frame.captured_at, frame.captured_wall);
        make_all(&mut maker, &picture.as_i420(), &jobs, captured, role);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parses a `width=` query value: a positive number of pixels, or the message for a 400.
pub fn parse_width(value: &str) -> std::result::Result<u32, String> {
    match value.parse::<u32>() {
        Ok(w) if (1..=jpeg::MAX_DIMENSION_PX).contains(&w) => Ok(w),
        _ => Err(format!(
            "width must be a whole number of pixels from 1 to {}",
            jpeg::MAX_DIMENSION_PX
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_steps_are_at_most_one_and_a_half_apart() {
        for pair in LADDER_PX.windows(2) {
            assert!(pair[1] > pair[0]);
            assert!(pair[1] * 2 <= pair[0] * 3, "{pair:?}");
        }
    }

    #[test]
    fn a_request_gets_the_smallest_step_at_least_as_wide() {
        assert_eq!(step_for(1), Some(160));
        assert_eq!(step_for(160), Some(160));
        assert_eq!(step_for(161), Some(240));
        assert_eq!(step_for(366), Some(400));
        assert_eq!(step_for(401), Some(480));
        assert_eq!(step_for(3840), Some(3840));
        assert_eq!(step_for(3841), None);
    }

    #[test]
    fn rendition_sizes_keep_the_aspect_ratio_and_never_grow() {
        assert_eq!(size_at(320, (1280, 720)), (320, 180));
        assert_eq!(size_at(320, (640, 480)), (320, 240));
        assert_eq!(size_at(480, (1920, 1080)), (480, 270));
        assert_eq!(size_at(160, (1920, 1080)), (160, 90));
        assert_eq!(size_at(160, (1000, 999)), (160, 160));
        assert_eq!(size_at(960, (640, 480)), (640, 480));
    }

    #[test]
    fn maker_scales_and_encodes_with_the_right_colours() {
        // Left half red, right half blue, 640x480 full-range I420.
        let (w, h) = (640u32, 480u32);
        let (cw, ch) = I420::chroma_size(w, h);
        let y: Vec<u8> = (0..h)
            .flat_map(|_| (0..w).map(|x| if x < w / 2 { 76 } else { 29 }))
            .collect();
        let cb: Vec<u8> = (0..ch)
            .flat_map(|_| (0..cw).map(|x| if x < cw / 2 { 85 } else { 255 }))
            .collect();
        let cr: Vec<u8> = (0..ch)
            .flat_map(|_| (0..cw).map(|x| if x < cw / 2 { 255 } else { 107 }))
            .collect();
        let picture = I420 {
            width: w,
            height: h,
            y: &y,
            cb: &cb,
            cr: &cr,
        };
        let mut maker = Maker::default();
        let frame = maker
            .make(&picture, 320, (Instant::now(), SystemTime::now()))
            .unwrap();
        assert_eq!((frame.width, frame.height), (320, 240));
        assert_eq!(jpeg::check(&frame.jpeg).unwrap(), (320, 240));
        let mut d = jpeg_decoder::Decoder::new(&frame.jpeg[..]);
        let rgb = d.decode().unwrap();
        let px = |x: usize, y: usize| &rgb[(y * 320 + x) * 3..(y * 320 + x) * 3 + 3];
        let (l, r) = (px(80, 120), px(240, 120));
        assert!(
            l[0] > 200 && l[1] < 60 && l[2] < 60,
            "left should be red: {l:?}"
        );
        assert!(
            r[0] < 60 && r[1] < 60 && r[2] > 200,
            "right should be blue: {r:?}"
        );
    }

    #[test]
    fn widths_outside_the_range_are_refused() {
        assert_eq!(parse_width("320").unwrap(), 320);
        for bad in ["0", "-1", "abc", "70000", ""] {
            assert!(parse_width(bad).is_err(), "{bad}");
        }
    }
}
