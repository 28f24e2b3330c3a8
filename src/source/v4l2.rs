//! V4L2 cameras (USB webcams, the Pi camera through bcm2835-v4l2, `vivid` in tests):
//! opens the device, picks a mode, captures with mmap streaming. MJPEG frames are passed
//! through untouched (after [`jpeg::check`]); raw frames (YUYV, UYVY, NV12, YU12, RGB24)
//! are converted to I420 and encoded only while someone watches.
//!
//! The only module that touches `/dev/video*` (with `discover.rs`, which only queries).

use crate::config::StreamConfig;
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::jpeg::{self, Encoder, I420Buf, Packed422, YuvRange, I420};
use crate::source::{Event, Picture, Source, POLL_INTERVAL};
use bytes::Bytes;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use v4l::buffer::Type as BufType;
use v4l::capability::Flags as Caps;
use v4l::format::Quantization;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture as _;
use v4l::{Device, Format, FourCC, Fraction};

/// Quality of the JPEGs encoded from raw frames.
pub const ENCODE_QUALITY: u8 = 80;
/// Without a size hint, modes larger than this are not picked: phones on Wi-Fi gain
/// little from more, and a Pi's CPU pays for every raw pixel it encodes.
pub const DEFAULT_MAX_SIZE: (u32, u32) = (1280, 720);
/// Without hints, the largest size that still runs at least this fast is picked (a
/// UVC camera's YUYV 1280×720 often runs at only 10 fps over USB 2; 640×480 at 30 is
/// the better picture for a live view).
pub const MIN_SMOOTH_FPS: f64 = 20.0;
/// mmap buffers queued with the driver.
const BUFFER_COUNT: u32 = 4;
/// This many broken MJPEG frames in a row make the source fail (and be reopened).
const MAX_BROKEN_IN_A_ROW: u32 = 30;

/// The pixel formats camhub reads, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PixelFormat {
    /// Motion JPEG (`MJPG`, or `JPEG` on some drivers): passed through, no CPU cost.
    Mjpeg,
    /// Packed 4:2:2, Y0 Cb Y1 Cr: what every UVC camera and `vivid` offer.
    Yuyv,
    /// Semi-planar 4:2:0 (Pi camera via bcm2835-v4l2).
    Nv12,
    /// Planar 4:2:0.
    Yu12,
    /// Packed 4:2:2, Cb Y0 Cr Y1.
    Uyvy,
    /// 24-bit RGB.
    Rgb24,
}

impl PixelFormat {
    pub fn from_fourcc(fourcc: &[u8; 4]) -> Option<PixelFormat> {
        Some(match fourcc {
            b"MJPG" | b"JPEG" => PixelFormat::Mjpeg,
            b"YUYV" => PixelFormat::Yuyv,
            b"NV12" => PixelFormat::Nv12,
            b"YU12" => PixelFormat::Yu12,
            b"UYVY" => PixelFormat::Uyvy,
            b"RGB3" => PixelFormat::Rgb24,
            _ => return None,
        })
    }

    /// Bytes per row when the driver reports no stride.
    fn default_stride(self, width: u32) -> usize {
        let w = width as usize;
        match self {
            PixelFormat::Mjpeg => 0,
            PixelFormat::Yuyv | PixelFormat::Uyvy => w.div_ceil(2) * 4,
            PixelFormat::Nv12 | PixelFormat::Yu12 => w,
            PixelFormat::Rgb24 => w * 3,
        }
    }
}

/// Human-readable four-character code ("YUYV").
pub fn fourcc_str(fourcc: &[u8; 4]) -> String {
    fourcc
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

/// One size a device offers in one format, with its frame intervals (seconds per frame
/// as numerator/denominator; empty when the driver does not say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeOption {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    pub intervals: Vec<(u32, u32)>,
}

impl ModeOption {
    fn fps_of((num, den): (u32, u32)) -> f64 {
        if num == 0 {
            0.0
        } else {
            f64::from(den) / f64::from(num)
        }
    }

    /// The fastest rate offered; unknown rates count as just smooth enough.
    fn max_fps(&self) -> f64 {
        self.intervals
            .iter()
            .map(|&i| Self::fps_of(i))
            .fold(None, |m: Option<f64>, f| Some(m.map_or(f, |m| m.max(f))))
            .unwrap_or(MIN_SMOOTH_FPS)
    }
}

/// The mode to capture in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mode {
    pub format: PixelFormat,
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    /// Frame interval to ask for, if the driver listed any.
    pub interval: Option<(u32, u32)>,
}

/// Picks the capture mode from what a device offers (a pure function, so it is tested
/// without a device):
/// - format: MJPEG when offered, else the first raw format of [`PixelFormat`]'s order;
/// - size: the hinted size (or the closest offered); without a hint, the largest size
///   within [`DEFAULT_MAX_SIZE`] that runs at [`MIN_SMOOTH_FPS`] or faster (else the
///   fastest, then largest, within the cap; else the smallest offered);
/// - rate: the offered rate closest to the hint, else the highest.
pub fn choose_mode(
    options: &[ModeOption],
    size_hint: Option<(u32, u32)>,
    fps_hint: Option<u32>,
) -> Option<Mode> {
    let format = options
        .iter()
        .filter_map(|o| PixelFormat::from_fourcc(&o.fourcc))
        .min()?;
    let sizes: Vec<&ModeOption> = options
        .iter()
        .filter(|o| PixelFormat::from_fourcc(&o.fourcc) == Some(format))
        .collect();
    let area = |o: &ModeOption| u64::from(o.width) * u64::from(o.height);
    let chosen = match size_hint {
        Some((w, h)) => sizes.iter().copied().min_by_key(|o| {
            let off = u64::from(o.width.abs_diff(w)) + u64::from(o.height.abs_diff(h));
            // On a tie, the smaller size: cheaper, and fine for a hint.
            (off, area(o))
        }),
        None => {
            let (cap_w, cap_h) = DEFAULT_MAX_SIZE;
            let within: Vec<&ModeOption> = sizes
                .iter()
                .copied()
                .filter(|o| o.width <= cap_w && o.height <= cap_h)
                .collect();
            let smooth = within
                .iter()
                .copied()
                .filter(|o| o.max_fps() >= MIN_SMOOTH_FPS)
                .max_by(|a, b| {
                    (area(a), a.max_fps())
                        .partial_cmp(&(area(b), b.max_fps()))
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
            smooth
                .or_else(|| {
                    within.iter().copied().max_by(|a, b| {
                        (a.max_fps(), area(a))
                            .partial_cmp(&(b.max_fps(), area(b)))
                            .unwrap_or(std::cmp::Ordering::Equal)
                    })
                })
                .or_else(|| sizes.iter().copied().min_by_key(|o| area(o)))
        }
    }?;
    let interval = match fps_hint {
        Some(fps) => chosen.intervals.iter().copied().min_by(|&a, &b| {
            let off = |i| (ModeOption::fps_of(i) - f64::from(fps)).abs();
            off(a)
                .partial_cmp(&off(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        }),
        None => chosen.intervals.iter().copied().max_by(|&a, &b| {
            ModeOption::fps_of(a)
                .partial_cmp(&ModeOption::fps_of(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        }),
    };
    Some(Mode {
        format,
        fourcc: chosen.fourcc,
        width: chosen.width,
        height: chosen.height,
        interval,
    })
}

/// True for a node that captures video: `VIDEO_CAPTURE` in its device caps and not a
/// memory-to-memory codec/ISP node (on a Pi, /dev/video10–31) or a metadata node
/// (UVC cameras have one next to each video node).
pub fn is_video_capture(device_caps: u32) -> bool {
    let caps = Caps::from(device_caps);
    caps.contains(Caps::VIDEO_CAPTURE)
        && !caps.intersects(Caps::VIDEO_M2M | Caps::VIDEO_M2M_MPLANE | Caps::META_CAPTURE)
}

/// Drivers whose capture nodes are not cameras even though they say VIDEO_CAPTURE:
/// the Pi's ISP and codec blocks (bcm2835-isp capture nodes have no M2M flag; they
/// output what userspace fed in) and the Pi 5 ISP back end.
pub const NOT_CAMERA_DRIVERS: &[&str] = &["bcm2835-isp", "bcm2835-codec", "pispbe"];

/// Every mode the device offers in the formats camhub reads. Stepwise/continuous size
/// ranges are reduced to the sizes camhub would pick from (hint, 1280×720, 640×480,
/// largest, smallest), snapped to the driver's steps.
pub fn query_modes(
    device: &Device,
    size_hint: Option<(u32, u32)>,
) -> io::Result<(Vec<ModeOption>, Vec<[u8; 4]>)> {
    let mut options = Vec::new();
    let mut all_formats = Vec::new();
    for desc in device.enum_formats()? {
        let fourcc = desc.fourcc.repr;
        all_formats.push(fourcc);
        if PixelFormat::from_fourcc(&fourcc).is_none() {
            continue;
        }
        let mut sizes = Vec::new();
        for size in device.enum_framesizes(desc.fourcc).unwrap_or_default() {
            match size.size {
                FrameSizeEnum::Discrete(d) => sizes.push((d.width, d.height)),
                FrameSizeEnum::Stepwise(s) => {
                    let snap = |v: u32, min: u32, max: u32, step: u32| {
                        let v = v.clamp(min, max);
                        min + (v - min) / step.max(1) * step.max(1)
                    };
                    let wanted = [size_hint, Some((1280, 720)), Some((640, 480))];
                    for (w, h) in wanted
                        .into_iter()
                        .flatten()
                        .chain([(s.max_width, s.max_height), (s.min_width, s.min_height)])
                    {
                        let size = (
                            snap(w, s.min_width, s.max_width, s.step_width),
                            snap(h, s.min_height, s.max_height, s.step_height),
                        );
                        if !sizes.contains(&size) {
                            sizes.push(size);
                        }
                    }
                }
            }
        }
        if sizes.is_empty() {
            // No VIDIOC_ENUM_FRAMESIZES: the current size is the one we know works.
            if let Ok(f) = device.format() {
                sizes.push((f.width, f.height));
            }
        }
        for (width, height) in sizes {
            let mut intervals = Vec::new();
            for ival in device
                .enum_frameintervals(desc.fourcc, width, height)
                .unwrap_or_default()
            {
                match ival.interval {
                    FrameIntervalEnum::Discrete(f) => intervals.push((f.numerator, f.denominator)),
                    FrameIntervalEnum::Stepwise(s) => {
                        intervals.push((s.min.numerator, s.min.denominator));
                        intervals.push((s.max.numerator, s.max.denominator));
                    }
                }
            }
            options.push(ModeOption {
                fourcc,
                width,
                height,
                intervals,
            });
        }
    }
    Ok((options, all_formats))
}

/// A V4L2 capture device, opened on every `open` and released on `close`.
pub struct V4l2Source {
    path: PathBuf,
    size_hint: Option<(u32, u32)>,
    fps_hint: Option<u32>,
    capture: Option<Capture>,
    raw: RawEncoder,
}

/// Turns raw frames into JPEG, reusing its buffers frame after frame.
struct RawEncoder {
    encoder: Encoder,
    scratch: I420Buf,
    rgb_rows: Vec<u8>,
}

/// An open, configured device. Field order matters: the stream (buffers) is released
/// before the device.
struct Capture {
    stream: MmapStream<'static>,
    _device: Device,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    range: YuvRange,
    /// False after a wait timed out inside `MmapStream::next`: that call had already
    /// re-queued the buffer we held, so the next call must dequeue without re-queueing
    /// (v4l 0.14 would queue the same buffer twice and get EINVAL).
    holding_buffer: bool,
    broken_in_a_row: u32,
}

impl V4l2Source {
    pub fn from_config(stream: &StreamConfig) -> Result<V4l2Source> {
        Ok(V4l2Source {
            path: device_path(&stream.url)?,
            size_hint: stream.size,
            fps_hint: stream.fps,
            capture: None,
            raw: RawEncoder {
                encoder: Encoder::new(ENCODE_QUALITY),
                scratch: I420Buf::default(),
                rgb_rows: Vec::new(),
            },
        })
    }

    fn err(&self, doing: &str, e: io::Error) -> Error {
        Error::io(format!("{doing} {}", self.path.display()), e)
    }

    fn open_capture(&self) -> Result<Capture> {
        let path = self.path.display();
        let device = Device::with_path(&self.path).map_err(|e| self.err("opening", e))?;
        let caps = device
            .query_caps()
            .map_err(|e| self.err("querying capabilities of", e))?;
        if !is_video_capture(caps.capabilities.bits()) {
            return Err(Error::Permanent(format!(
                "{path} ({}) is not a video capture device (caps: {})",
                caps.card, caps.capabilities
            )));
        }
        let (options, all_formats) =
            query_modes(&device, self.size_hint).map_err(|e| self.err("listing formats of", e))?;
        let mode = choose_mode(&options, self.size_hint, self.fps_hint).ok_or_else(|| {
            let offered: Vec<String> = all_formats.iter().map(fourcc_str).collect();
            Error::Permanent(format!(
                "{path} ({}) offers none of the formats camhub reads (MJPG, YUYV, NV12, YU12, \
                 UYVY, RGB3); it offers: {}",
                caps.card,
                offered.join(", ")
            ))
        })?;
        let wanted = Format::new(mode.width, mode.height, FourCC::new(&mode.fourcc));
        let actual = device
            .set_format(&wanted)
            .map_err(|e| self.err("setting the format of", e))?;
        let format = PixelFormat::from_fourcc(&actual.fourcc.repr).ok_or_else(|| {
            Error::Source(format!(
                "{path}: asked for {}, the driver chose {}",
                fourcc_str(&mode.fourcc),
                fourcc_str(&actual.fourcc.repr)
            ))
        })?;
        if let Some((num, den)) = mode.interval {
            // Not every driver lets the rate be set; the default rate is fine then.
            if let Err(e) = device.set_params(&Parameters::new(Fraction::new(num, den))) {
                tracing::debug!(device = %path, error = %e, "cannot set the frame rate");
            }
        }
        let mut stream = MmapStream::with_buffers(&device, BufType::VideoCapture, BUFFER_COUNT)
            .map_err(|e| self.err("allocating capture buffers of", e))?;
        stream.set_timeout(POLL_INTERVAL);
        let stride = match actual.stride as usize {
            0 => format.default_stride(actual.width),
            s => s,
        };
        tracing::info!(
            device = %path,
            card = %caps.card,
            format = %fourcc_str(&actual.fourcc.repr),
            width = actual.width,
            height = actual.height,
            fps = mode.interval.map(|(n, d)| f64::from(d) / f64::from(n.max(1))),
            "capturing"
        );
        Ok(Capture {
            stream,
            _device: device,
            format,
            width: actual.width,
            height: actual.height,
            stride,
            range: match actual.quantization {
                Quantization::FullRange => YuvRange::Full,
                _ => YuvRange::Limited,
            },
            holding_buffer: true,
            broken_in_a_row: 0,
        })
    }
}

/// A raw frame made ready to serve.
enum Converted<'a> {
    /// Planar 4:2:0: the supervisor encodes what viewers want (full size, renditions).
    Picture(I420<'a>),
    /// RGB (rare): encoded here at full size; renditions are made from that JPEG.
    Jpeg(Bytes),
}

impl RawEncoder {
    /// Converts a raw frame to I420 (full range), or encodes RGB as is.
    fn convert(
        &mut self,
        format: PixelFormat,
        data: &[u8],
        w: u32,
        h: u32,
        stride: usize,
        range: YuvRange,
    ) -> Result<Converted<'_>> {
        let scratch = &mut self.scratch;
        match format {
            PixelFormat::Rgb24 => {
                let row = w as usize * 3;
                self.rgb_rows.clear();
                for r in 0..h as usize {
                    if let Some(line) = data.get(r * stride..r * stride + row) {
                        self.rgb_rows.extend_from_slice(line);
                    }
                }
                return Ok(Converted::Jpeg(self.encoder.encode_rgb(
                    &self.rgb_rows,
                    w,
                    h,
                )?));
            }
            PixelFormat::Yuyv => {
                scratch.from_packed_422(data, w, h, stride, Packed422::Yuyv, range)?
            }
            PixelFormat::Uyvy => {
                scratch.from_packed_422(data, w, h, stride, Packed422::Uyvy, range)?
            }
            PixelFormat::Nv12 => scratch.from_nv12(data, w, h, stride, range)?,
            PixelFormat::Yu12 => scratch.from_yu12(data, w, h, stride, range)?,
            PixelFormat::Mjpeg => return Err(Error::Jpeg("MJPEG is not raw".into())),
        }
        Ok(Converted::Picture(scratch.as_i420()))
    }
}

/// What one dequeued buffer amounted to.
enum Outcome<'a> {
    Frame(Frame),
    Picture(Picture<'a>),
    Alive,
    Broken(String),
}

impl Source for V4l2Source {
    fn open(&mut self) -> Result<()> {
        self.close();
        self.capture = Some(self.open_capture()?);
        Ok(())
    }

    fn next(&mut self, wanted: bool) -> Result<Event<'_>> {
        let path = self.path.display().to_string();
        let Some(cap) = self.capture.as_mut() else {
            return Err(Error::Source(format!("{path} is not open")));
        };
        let waited = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            )
        };
        if !cap.holding_buffer {
            // Take a filled buffer back without re-queueing; its picture is dropped.
            return match CaptureStream::dequeue(&mut cap.stream) {
                Ok(_) => {
                    cap.holding_buffer = true;
                    Ok(Event::Alive)
                }
                Err(e) if waited(&e) => Ok(idle_after(&e)),
                Err(e) => Err(Error::io(format!("capturing from {path}"), e)),
            };
        }
        let (w, h, stride, range) = (cap.width, cap.height, cap.stride, cap.range);
        let outcome = {
            let (buf, meta) = match CaptureStream::next(&mut cap.stream) {
                Ok(x) => x,
                Err(e) if waited(&e) => {
                    cap.holding_buffer = false;
                    return Ok(idle_after(&e));
                }
                Err(e) => return Err(Error::io(format!("capturing from {path}"), e)),
            };
            let used = match meta.bytesused as usize {
                0 => buf.len(),
                n => n.min(buf.len()),
            };
            let data = &buf[..used];
            if meta.flags.contains(v4l::buffer::Flags::ERROR) {
                Outcome::Broken("the driver flagged the frame as corrupt".into())
            } else {
                match cap.format {
                    PixelFormat::Mjpeg => {
                        // Passing through costs one copy, so it happens whether or not
                        // anyone watches: a snapshot is then served at once.
                        let jpeg = trim_mjpeg(data);
                        match jpeg::check(jpeg) {
                            Ok((w, h)) => {
                                Outcome::Frame(Frame::new(Bytes::copy_from_slice(jpeg), w, h))
                            }
                            Err(e) => Outcome::Broken(e.to_string()),
                        }
                    }
                    _ if !wanted => Outcome::Alive,
                    format => match self.raw.convert(format, data, w, h, stride, range) {
                        Ok(Converted::Jpeg(jpeg)) => Outcome::Frame(Frame::new(jpeg, w, h)),
                        Ok(Converted::Picture(image)) => Outcome::Picture(Picture {
                            image,
                            quality: ENCODE_QUALITY,
                            captured_at: std::time::Instant::now(),
                            captured_wall: std::time::SystemTime::now(),
                        }),
                        // A short or odd buffer: drop it like a torn MJPEG frame.
                        Err(e) => Outcome::Broken(e.to_string()),
                    },
                }
            }
        };
        match outcome {
            Outcome::Frame(frame) => {
                cap.broken_in_a_row = 0;
                Ok(Event::Frame(frame))
            }
            Outcome::Picture(picture) => {
                cap.broken_in_a_row = 0;
                Ok(Event::Picture(picture))
            }
            Outcome::Alive => Ok(Event::Alive),
            Outcome::Broken(why) => {
                cap.broken_in_a_row += 1;
                if cap.broken_in_a_row >= MAX_BROKEN_IN_A_ROW {
                    return Err(Error::Source(format!(
                        "{path}: {} broken frames in a row, last: {why}",
                        cap.broken_in_a_row
                    )));
                }
                Ok(Event::Idle)
            }
        }
    }

    fn close(&mut self) {
        if let Some(capture) = self.capture.take() {
            // v4l's stream panics in Drop when VIDIOC_STREAMOFF fails with anything but
            // ENODEV; a camera in a bad state must not take the stream's thread down.
            if catch_unwind(AssertUnwindSafe(move || drop(capture))).is_err() {
                tracing::debug!(device = %self.path.display(), "stopping the capture failed");
            }
        }
    }
}

/// `Idle`, after a short pause when the fd was ready but had no frame (EAGAIN), so a
/// device stuck in that state does not spin the thread until the stall watchdog fires.
fn idle_after(e: &io::Error) -> Event<'static> {
    if e.kind() == io::ErrorKind::WouldBlock {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Event::Idle
}

/// The frame without the zero padding some UVC cameras leave after EOI (the buffer is
/// already cut to the driver's `bytesused`).
pub fn trim_mjpeg(data: &[u8]) -> &[u8] {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &data[..end]
}

/// The device path of a `v4l2:///dev/video0` (or `v4l2:/dev/video0`) URL.
pub fn device_path(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("v4l2:")
        .ok_or_else(|| Error::Permanent(format!("not a v4l2: URL: {url:?}")))?;
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if !Path::new(path).is_absolute() {
        return Err(Error::Permanent(format!(
            "expected v4l2:///dev/videoN, got {url:?}"
        )));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(fourcc: &[u8; 4], width: u32, height: u32, fps: &[u32]) -> ModeOption {
        ModeOption {
            fourcc: *fourcc,
            width,
            height,
            intervals: fps.iter().map(|&f| (1, f)).collect(),
        }
    }

    /// vivid's webcam input: six sizes, fewer rates for larger ones.
    fn vivid() -> Vec<ModeOption> {
        vec![
            opt(b"YUYV", 320, 180, &[1, 5, 10, 15, 25, 30, 40, 50, 60]),
            opt(b"YUYV", 640, 360, &[1, 5, 10, 15, 25, 30, 40]),
            opt(b"YUYV", 640, 480, &[1, 5, 10, 15, 25, 30]),
            opt(b"YUYV", 1280, 720, &[1, 5, 10, 15]),
            opt(b"YUYV", 1920, 1080, &[1, 5]),
            opt(b"NV12", 640, 480, &[30]),
            opt(b"RGGB", 640, 480, &[30]),
        ]
    }

    #[test]
    fn mjpeg_is_preferred_and_the_largest_smooth_size_within_720p_wins() {
        let mut modes = vivid();
        modes.push(opt(b"MJPG", 1920, 1080, &[30]));
        modes.push(opt(b"MJPG", 1280, 720, &[30, 15]));
        modes.push(opt(b"MJPG", 640, 480, &[30]));
        let m = choose_mode(&modes, None, None).unwrap();
        assert_eq!(
            (m.format, m.width, m.height, m.interval),
            (PixelFormat::Mjpeg, 1280, 720, Some((1, 30)))
        );
    }

    #[test]
    fn raw_without_hints_prefers_smooth_over_large() {
        let m = choose_mode(&vivid(), None, None).unwrap();
        assert_eq!(
            (m.format, &m.fourcc, m.width, m.height, m.interval),
            (PixelFormat::Yuyv, b"YUYV", 640, 480, Some((1, 30)))
        );
        // Nothing smooth: the fastest within the cap.
        let slow = [
            opt(b"YUYV", 1280, 720, &[10]),
            opt(b"YUYV", 640, 480, &[15]),
        ];
        let m = choose_mode(&slow, None, None).unwrap();
        assert_eq!((m.width, m.height), (640, 480));
        // Nothing within the cap: the smallest.
        let big = [
            opt(b"YUYV", 3840, 2160, &[30]),
            opt(b"YUYV", 1920, 1080, &[30]),
        ];
        assert_eq!(choose_mode(&big, None, None).unwrap().width, 1920);
    }

    #[test]
    fn hints_pick_the_closest_size_and_rate() {
        let m = choose_mode(&vivid(), Some((1920, 1080)), Some(5)).unwrap();
        assert_eq!((m.width, m.height, m.interval), (1920, 1080, Some((1, 5))));
        let m = choose_mode(&vivid(), Some((800, 600)), Some(24)).unwrap();
        assert_eq!((m.width, m.height, m.interval), (640, 480, Some((1, 25))));
        // A driver that lists no rates: none is asked for.
        let m = choose_mode(&[opt(b"YUYV", 640, 480, &[])], None, Some(30)).unwrap();
        assert_eq!(m.interval, None);
        // NTSC-style fractional rates.
        let ntsc = [ModeOption {
            intervals: vec![(1001, 30000), (1001, 15000)],
            ..opt(b"NV12", 640, 480, &[])
        }];
        let m = choose_mode(&ntsc, None, None).unwrap();
        assert_eq!(
            (m.format, m.interval),
            (PixelFormat::Nv12, Some((1001, 30000)))
        );
    }

    #[test]
    fn no_readable_format_is_none() {
        assert_eq!(
            choose_mode(&[opt(b"RGGB", 640, 480, &[30])], None, None),
            None
        );
        assert_eq!(choose_mode(&[], None, None), None);
    }

    #[test]
    fn capture_caps_filtering() {
        const CAPTURE: u32 = 0x1;
        const STREAMING: u32 = 0x0400_0000;
        const M2M: u32 = 0x8000;
        const M2M_MPLANE: u32 = 0x4000;
        const META: u32 = 0x0080_0000;
        const OUTPUT: u32 = 0x2;
        assert!(is_video_capture(CAPTURE | STREAMING));
        assert!(!is_video_capture(META | STREAMING), "UVC metadata node");
        assert!(
            !is_video_capture(M2M | CAPTURE | STREAMING),
            "bcm2835-codec"
        );
        assert!(!is_video_capture(M2M_MPLANE | STREAMING));
        assert!(!is_video_capture(OUTPUT | STREAMING), "vivid output node");
    }

    #[test]
    fn urls_name_device_paths() {
        assert_eq!(
            device_path("v4l2:///dev/video0").unwrap(),
            PathBuf::from("/dev/video0")
        );
        assert_eq!(
            device_path("v4l2:/dev/v4l/by-id/usb-X-video-index0").unwrap(),
            PathBuf::from("/dev/v4l/by-id/usb-X-video-index0")
        );
        assert!(device_path("v4l2://video0").is_err());
    }

    /// A real JPEG as a UVC camera hands it over: padded with zeros to the buffer size.
    #[test]
    fn mjpeg_passthrough_trims_padding_and_rejects_broken_frames() {
        let rgb: Vec<u8> = (0..64 * 48 * 3).map(|i| (i % 251) as u8).collect();
        let jpeg = jpeg::encode_rgb(&rgb, 64, 48, 80).unwrap();
        let mut padded = jpeg.to_vec();
        padded.resize(jpeg.len() + 4096, 0);
        let trimmed = trim_mjpeg(&padded);
        assert_eq!(trimmed, &jpeg[..], "passed through byte for byte");
        assert_eq!(jpeg::check(trimmed).unwrap(), (64, 48));
        // Torn frame (USB packet loss): no EOI.
        assert!(jpeg::check(trim_mjpeg(&jpeg[..jpeg.len() / 2])).is_err());
        assert!(jpeg::check(trim_mjpeg(&[0; 100])).is_err());
    }

    #[test]
    fn opening_an_absent_device_fails_cleanly_naming_it() {
        let config = StreamConfig::new("cam", "v4l2:///dev/camhub-test-no-such-video").unwrap();
        let mut source = V4l2Source::from_config(&config).unwrap();
        let err = source.open().unwrap_err();
        assert!(
            !err.is_permanent(),
            "retried: the camera may be plugged in later"
        );
        assert!(
            err.to_string().contains("/dev/camhub-test-no-such-video"),
            "{err}"
        );
        assert!(source.next(true).is_err());
        source.close();
    }
}
