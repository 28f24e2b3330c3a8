//! JPEG in and out: encoding raw pictures (RGB, planar YCbCr 4:2:0) into baseline JPEG
//! behind one small [`Encoder`] seam, and [`check`], the sanity check every frame passes
//! before it is shown to viewers.
//!
//! The encoder backend is the pure-Rust `jpeg-encoder` crate, or libjpeg-turbo with the
//! `turbojpeg` cargo feature (`src/jpeg_turbo.rs`; see [`Backend`]). Everything
//! backend-specific stays inside [`Encoder`], so callers do not know which one runs.

use crate::error::{Error, Result};
use bytes::Bytes;
use jpeg_encoder::{ColorType, ImageBuffer, JpegColorType, SamplingFactor};

/// Quality for the frames camhub makes itself (test pattern, OFFLINE placeholders):
/// sharp enough for 8×8 bitmap text, small enough for many viewers on Wi-Fi.
pub const DEFAULT_QUALITY: u8 = 80;

/// Largest width or height a JPEG can declare (the frame header holds 16 bits).
pub const MAX_DIMENSION_PX: u32 = 65_535;

/// Largest picture camhub encodes itself, in pixels (64 MP). Bounds memory for a size
/// that came from a camera or a request rather than from a validated config.
pub const MAX_PIXELS: u64 = 8192 * 8192;

/// A borrowed planar YCbCr 4:2:0 picture ("I420"), full range as JFIF defines it.
///
/// This is the layout camhub draws in (see `draw::Canvas`): luma at full resolution and
/// one Cb and one Cr sample per 2×2 block, so drawing touches 1.5 bytes per pixel and
/// the encoder needs no colour conversion. V4L2 cameras deliver the same layout (YU12,
/// or NV12 after de-interleaving), though usually in limited ("TV") range.
#[derive(Clone, Copy, Debug)]
pub struct I420<'a> {
    pub width: u32,
    pub height: u32,
    /// `width × height` luma samples, row by row.
    pub y: &'a [u8],
    /// `chroma_width × chroma_height` blue-difference samples (see [`I420::chroma_size`]).
    pub cb: &'a [u8],
    /// `chroma_width × chroma_height` red-difference samples.
    pub cr: &'a [u8],
}

impl I420<'_> {
    /// Size of each chroma plane for a picture of `width × height`: half in each
    /// direction, rounded up so odd sizes keep their last column and row.
    pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
        (width.div_ceil(2), height.div_ceil(2))
    }
}

/// A borrowed planar YCbCr 4:2:0 picture whose rows may be padded, as video decoders
/// (openh264) and some V4L2 drivers deliver them. [`I420Buf::resample_from`] turns it
/// into a tightly packed [`I420`] for the encoder.
#[derive(Clone, Copy, Debug)]
pub struct I420Strided<'a> {
    pub width: u32,
    pub height: u32,
    /// Luma rows, `y_stride` bytes apart (`y_stride >= width`).
    pub y: &'a [u8],
    pub y_stride: usize,
    /// Chroma rows (see [`I420::chroma_size`]), `chroma_stride` bytes apart.
    pub cb: &'a [u8],
    pub cr: &'a [u8],
    pub chroma_stride: usize,
}

/// Which values a YCbCr picture uses: JFIF's full range (0–255), or the limited ("TV",
/// BT.601) range of most video: luma 16–235, chroma 16–240.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YuvRange {
    Full,
    Limited,
}

/// An owned, tightly packed I420 picture: the scratch buffer a decoding source reuses
/// frame after frame (allocated once per size), then encodes via [`I420Buf::as_i420`].
#[derive(Debug, Default)]
pub struct I420Buf {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub cb: Vec<u8>,
    pub cr: Vec<u8>,
}

impl I420Buf {
    /// The picture, borrowed for [`Encoder::encode_i420`].
    pub fn as_i420(&self) -> I420<'_> {
        I420 {
            width: self.width,
            height: self.height,
            y: &self.y,
            cb: &self.cb,
            cr: &self.cr,
        }
    }

    /// Fills this buffer with `src` scaled to `width × height` (no larger than `src`:
    /// each output sample is the average of the source samples it covers) and converted
    /// from `range` to JFIF's full range. Used to serve a 1080p camera lighter to phones.
    pub fn resample_from(
        &mut self,
        src: &I420Strided<'_>,
        width: u32,
        height: u32,
        range: YuvRange,
    ) -> Result<()> {
        check_size(src.width, src.height)?;
        check_size(width, height)?;
        if width > src.width || height > src.height {
            return Err(Error::Jpeg(format!(
                "cannot scale {}x{} up to {width}x{height}",
                src.width, src.height
            )));
        }
        let (src_cw, src_ch) = I420::chroma_size(src.width, src.height);
        let (cw, ch) = I420::chroma_size(width, height);
        let plane_ok = |plane: &[u8], stride: usize, w: u32, h: u32| {
            stride >= w as usize && plane.len() >= (h as usize - 1) * stride + w as usize
        };
        if !plane_ok(src.y, src.y_stride, src.width, src.height)
            || !plane_ok(src.cb, src.chroma_stride, src_cw, src_ch)
            || !plane_ok(src.cr, src.chroma_stride, src_cw, src_ch)
        {
            return Err(Error::Jpeg(format!(
                "I420 planes too short for {}x{} with strides {}/{}",
                src.width, src.height, src.y_stride, src.chroma_stride
            )));
        }
        let (luma_lut, chroma_lut) = range_luts(range);
        self.width = width;
        self.height = height;
        let luma = Plane {
            data: src.y,
            stride: src.y_stride,
            width: src.width,
            height: src.height,
        };
        resample_plane(&luma, &mut self.y, width, height, &luma_lut);
        for (data, out) in [(src.cb, &mut self.cb), (src.cr, &mut self.cr)] {
            let plane = Plane {
                data,
                stride: src.chroma_stride,
                width: src_cw,
                height: src_ch,
            };
            resample_plane(&plane, out, cw, ch, &chroma_lut);
        }
        Ok(())
    }
}

/// The largest size no bigger than `size` that fits in `cap` with `size`'s aspect ratio
/// (sides at least 1). Without a cap, `size` itself.
pub fn fit_within(size: (u32, u32), cap: Option<(u32, u32)>) -> (u32, u32) {
    let (w, h) = size;
    let Some((cap_w, cap_h)) = cap else {
        return size;
    };
    if w <= cap_w && h <= cap_h {
        return size;
    }
    // Scale by the tighter of the two ratios, in integers: w/cap_w vs h/cap_h.
    let (w64, h64, cw, ch) = (
        u64::from(w),
        u64::from(h),
        u64::from(cap_w),
        u64::from(cap_h),
    );
    if w64 * ch >= h64 * cw {
        (cap_w, ((h64 * cw) / w64).max(1) as u32)
    } else {
        (((w64 * ch) / h64).max(1) as u32, cap_h)
    }
}

/// Lookup tables (luma, chroma) from `range` to full range.
fn range_luts(range: YuvRange) -> ([u8; 256], [u8; 256]) {
    let mut luma = [0u8; 256];
    let mut chroma = [0u8; 256];
    for v in 0..256 {
        let (l, c) = match range {
            YuvRange::Full => (v, v),
            YuvRange::Limited => (
                ((v - 16) * 255 + 109) / 219,
                ((v - 128) * 255 + if v >= 128 { 112 } else { -112 }) / 224 + 128,
            ),
        };
        luma[v as usize] = l.clamp(0, 255) as u8;
        chroma[v as usize] = c.clamp(0, 255) as u8;
    }
    (luma, chroma)
}

struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
    width: u32,
    height: u32,
}

/// Box-filters `src` down to `width × height` into `out` (resized), mapping each result
/// through `lut`. Same size is a plain row copy.
///
/// Large reductions (a 720p picture to a 320-wide grid tile) first halve the plane, 2×2
/// averages, as often as the result stays at least the target size: a tight loop the
/// compiler vectorises, about 4× cheaper per source pixel than the general filter below,
/// which then only sees a picture less than twice the target. (A box of boxes is the
/// same box filter up to rounding.) Measured by `bench/a64-grid.sh`: issue #12.
fn resample_plane(src: &Plane<'_>, out: &mut Vec<u8>, width: u32, height: u32, lut: &[u8; 256]) {
    if src.width >= 2 * width && src.height >= 2 * height {
        let mut halved = halve(src);
        while halved.1 >= 2 * width && halved.2 >= 2 * height {
            let plane = Plane {
                data: &halved.0,
                stride: halved.1 as usize,
                width: halved.1,
                height: halved.2,
            };
            halved = halve(&plane);
        }
        let plane = Plane {
            data: &halved.0,
            stride: halved.1 as usize,
            width: halved.1,
            height: halved.2,
        };
        return resample_box(&plane, out, width, height, lut);
    }
    resample_box(src, out, width, height, lut)
}

/// `src` at half its width and height (rounded down), each sample the rounded mean of a
/// 2×2 block: (data, width, height).
fn halve(src: &Plane<'_>) -> (Vec<u8>, u32, u32) {
    let (w, h) = ((src.width / 2) as usize, (src.height / 2) as usize);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let top = &src.data[2 * y * src.stride..][..2 * w];
        let bottom = &src.data[(2 * y + 1) * src.stride..][..2 * w];
        out.extend(
            top.chunks_exact(2)
                .zip(bottom.chunks_exact(2))
                .map(|(t, b)| {
                    ((u16::from(t[0]) + u16::from(t[1]) + u16::from(b[0]) + u16::from(b[1]) + 2)
                        >> 2) as u8
                }),
        );
    }
    (out, w as u32, h as u32)
}

/// The general box filter of [`resample_plane`].
fn resample_box(src: &Plane<'_>, out: &mut Vec<u8>, width: u32, height: u32, lut: &[u8; 256]) {
    let (w, h) = (width as usize, height as usize);
    out.clear();
    out.reserve(w * h);
    if width == src.width && height == src.height {
        for row in src.data.chunks(src.stride).take(h) {
            out.extend(row[..w].iter().map(|&v| lut[usize::from(v)]));
        }
        return;
    }
    // Source span [start, end) of each output column and row: never empty.
    let spans = |out_len: usize, in_len: usize| -> Vec<(usize, usize)> {
        (0..out_len)
            .map(|i| {
                let start = i * in_len / out_len;
                let end = ((i + 1) * in_len / out_len).max(start + 1).min(in_len);
                (start, end)
            })
            .collect()
    };
    let cols = spans(w, src.width as usize);
    let rows = spans(h, src.height as usize);
    let mut sums = vec![0u32; w];
    for &(y0, y1) in &rows {
        sums.iter_mut().for_each(|s| *s = 0);
        for y in y0..y1 {
            let line = &src.data[y * src.stride..y * src.stride + src.width as usize];
            for (sum, &(x0, x1)) in sums.iter_mut().zip(&cols) {
                *sum += line[x0..x1].iter().map(|&v| u32::from(v)).sum::<u32>();
            }
        }
        let rows_in = (y1 - y0) as u32;
        for (sum, &(x0, x1)) in sums.iter().zip(&cols) {
            let n = rows_in * (x1 - x0) as u32;
            out.push(lut[((sum + n / 2) / n) as usize]);
        }
    }
}

/// Checks that a picture of `width × height` can be encoded: not empty, within what a
/// JPEG header can declare and within [`MAX_PIXELS`].
pub fn check_size(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::Jpeg(format!(
            "cannot encode an empty {width}x{height} picture"
        )));
    }
    if width > MAX_DIMENSION_PX || height > MAX_DIMENSION_PX {
        return Err(Error::Jpeg(format!(
            "{width}x{height} is too large for JPEG (at most {MAX_DIMENSION_PX} per side)"
        )));
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Error::Jpeg(format!(
            "{width}x{height} is larger than camhub encodes ({MAX_PIXELS} pixels)"
        )));
    }
    Ok(())
}

/// Which library turns pixels into JPEG. Both give the same output contract (baseline,
/// 4:2:0, the same 1–100 quality scale); they differ in speed and in needing a C build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The pure-Rust `jpeg-encoder` crate: no C toolchain needed. The default without
    /// the `turbojpeg` feature, and always available as the fallback.
    JpegEncoder,
    /// libjpeg-turbo with SIMD (`src/jpeg_turbo.rs`, cargo feature `turbojpeg`): several
    /// times faster (BENCHMARKS.md, "Encoders"). The default when the feature is on.
    #[cfg(feature = "turbojpeg")]
    TurboJpeg,
}

impl Backend {
    /// What [`Encoder::new`] uses: the fastest backend compiled in.
    #[cfg(feature = "turbojpeg")]
    pub const DEFAULT: Backend = Backend::TurboJpeg;
    /// What [`Encoder::new`] uses: the fastest backend compiled in.
    #[cfg(not(feature = "turbojpeg"))]
    pub const DEFAULT: Backend = Backend::JpegEncoder;

    /// Every backend compiled in, so tests and the benchmark can run each one.
    pub const ALL: &'static [Backend] = &[
        Backend::JpegEncoder,
        #[cfg(feature = "turbojpeg")]
        Backend::TurboJpeg,
    ];

    /// The crate's name, for logs and benchmark tables.
    pub fn name(self) -> &'static str {
        match self {
            Backend::JpegEncoder => "jpeg-encoder",
            #[cfg(feature = "turbojpeg")]
            Backend::TurboJpeg => "turbojpeg",
        }
    }
}

/// Encodes raw pictures into baseline JPEG with 4:2:0 chroma subsampling.
///
/// Baseline, never progressive: iOS Safari does not show progressive JPEGs inside an
/// MJPEG (multipart/x-mixed-replace) stream. One `Encoder` per stream keeps per-stream
/// state across frames (the last output size, to allocate the next buffer once at about
/// the right size; libjpeg-turbo's handle and output buffer).
#[derive(Debug)]
pub struct Encoder {
    quality: u8,
    backend: Backend,
    /// Size of the previous output, to pre-size the next one (0 before the first).
    last_len_bytes: usize,
    #[cfg(feature = "turbojpeg")]
    turbo: crate::jpeg_turbo::TurboEncoder,
}

impl Encoder {
    /// An encoder at `quality` (1 = smallest, 100 = best; clamped into that range), using
    /// [`Backend::DEFAULT`].
    pub fn new(quality: u8) -> Encoder {
        Encoder::with_backend(quality, Backend::DEFAULT)
    }

    /// An encoder using a given backend: for tests and benchmarks that compare them.
    pub fn with_backend(quality: u8, backend: Backend) -> Encoder {
        Encoder {
            quality: quality.clamp(1, 100),
            backend,
            last_len_bytes: 0,
            #[cfg(feature = "turbojpeg")]
            turbo: crate::jpeg_turbo::TurboEncoder::new(),
        }
    }

    /// The backend this encoder uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Encodes interleaved 8-bit RGB (`width × height × 3` bytes, no row padding).
    pub fn encode_rgb(&mut self, rgb: &[u8], width: u32, height: u32) -> Result<Bytes> {
        let (w, h) = dimensions_u16(width, height)?;
        let expected_len = usize::from(w) * usize::from(h) * 3;
        if rgb.len() != expected_len {
            return Err(Error::Jpeg(format!(
                "RGB buffer for {width}x{height} must be {expected_len} bytes, got {}",
                rgb.len()
            )));
        }
        match self.backend {
            Backend::JpegEncoder => self.run(width, height, |encoder| {
                encoder.encode(rgb, w, h, ColorType::Rgb)
            }),
            #[cfg(feature = "turbojpeg")]
            Backend::TurboJpeg => self.turbo.encode_rgb(rgb, width, height, self.quality),
        }
    }

    /// Encodes a planar YCbCr 4:2:0 picture. This is the cheap path: no colour
    /// conversion, planes go straight into the encoder.
    pub fn encode_i420(&mut self, image: &I420<'_>) -> Result<Bytes> {
        let (w, h) = dimensions_u16(image.width, image.height)?;
        let (chroma_w, chroma_h) = I420::chroma_size(image.width, image.height);
        let luma_len = usize::from(w) * usize::from(h);
        let chroma_len = chroma_w as usize * chroma_h as usize;
        if image.y.len() != luma_len || image.cb.len() != chroma_len || image.cr.len() != chroma_len
        {
            return Err(Error::Jpeg(format!(
                "I420 planes for {}x{} must be {luma_len}+{chroma_len}+{chroma_len} bytes, \
                 got {}+{}+{}",
                image.width,
                image.height,
                image.y.len(),
                image.cb.len(),
                image.cr.len()
            )));
        }
        match self.backend {
            Backend::JpegEncoder => {
                let rows = I420Rows {
                    image: *image,
                    width: w,
                    height: h,
                    chroma_width: chroma_w as usize,
                };
                self.run(image.width, image.height, |encoder| {
                    encoder.encode_image(rows)
                })
            }
            #[cfg(feature = "turbojpeg")]
            Backend::TurboJpeg => self.turbo.encode_i420(image, self.quality),
        }
    }

    /// Sets up a `jpeg-encoder` writing into a fresh buffer, runs `encode` and turns the
    /// buffer into shareable `Bytes`.
    fn run(
        &mut self,
        width: u32,
        height: u32,
        encode: impl FnOnce(
            jpeg_encoder::Encoder<&mut Vec<u8>>,
        ) -> std::result::Result<(), jpeg_encoder::EncodingError>,
    ) -> Result<Bytes> {
        // First frame: a guess of ~1/4 byte per pixel, right for quality 80 on camera
        // pictures; afterwards the previous size plus some headroom for busier frames.
        let capacity = match self.last_len_bytes {
            0 => (width as usize * height as usize / 4).max(1024),
            last => last + last / 8,
        };
        let mut out = Vec::with_capacity(capacity);
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, self.quality);
        // 4:2:0 always: jpeg-encoder picks 4:4:4 above quality 90, doubling chroma work.
        encoder.set_sampling_factor(SamplingFactor::F_2_2);
        encoder.set_progressive(false);
        encode(encoder)
            .map_err(|e| Error::Jpeg(format!("encoding {width}x{height} failed: {e}")))?;
        self.last_len_bytes = out.len();
        Ok(Bytes::from(out))
    }
}

/// Encodes interleaved RGB into a baseline JPEG (4:2:0). For one-off pictures; a stream
/// keeps an [`Encoder`].
pub fn encode_rgb(rgb: &[u8], width: u32, height: u32, quality: u8) -> Result<Bytes> {
    Encoder::new(quality).encode_rgb(rgb, width, height)
}

/// Encodes a planar YCbCr 4:2:0 picture into a baseline JPEG (4:2:0), without colour
/// conversion. For one-off pictures; a stream keeps an [`Encoder`].
pub fn encode_i420(image: &I420<'_>, quality: u8) -> Result<Bytes> {
    Encoder::new(quality).encode_i420(image)
}

fn dimensions_u16(width: u32, height: u32) -> Result<(u16, u16)> {
    check_size(width, height)?;
    // check_size bounds both sides by MAX_DIMENSION_PX == u16::MAX.
    match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(Error::Jpeg(format!(
            "{width}x{height} is too large for JPEG"
        ))),
    }
}

/// Feeds an [`I420`] picture to `jpeg-encoder` one row at a time.
///
/// The encoder wants every component at full resolution and then subsamples by taking
/// the top-left sample of each 2×2 block, so each chroma sample is written twice: the
/// encoder picks exactly the sample we drew, and nothing is averaged or lost.
struct I420Rows<'a> {
    image: I420<'a>,
    width: u16,
    height: u16,
    chroma_width: usize,
}

impl ImageBuffer for I420Rows<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, row: u16, buffers: &mut [Vec<u8>; 4]) {
        // Plane lengths were checked in `encode_i420`, and the encoder asks only for rows
        // below `height`; `get` keeps a broken promise from becoming a panic.
        let width = usize::from(self.width);
        let row = usize::from(row);
        let luma_start = row * width;
        if let Some(luma) = self.image.y.get(luma_start..luma_start + width) {
            buffers[0].extend_from_slice(luma);
        }
        let chroma_start = (row / 2) * self.chroma_width;
        let chroma_range = chroma_start..chroma_start + self.chroma_width;
        for (plane, buffer) in [self.image.cb, self.image.cr]
            .iter()
            .zip(&mut buffers[1..3])
        {
            if let Some(samples) = plane.get(chroma_range.clone()) {
                buffer.extend(samples.iter().flat_map(|&c| [c, c]).take(width));
            }
        }
    }
}

/// `n` small, distinct, valid JPEGs (widths 16, 24, …), for tests of the parsers and
/// sources that pass JPEGs through.
#[cfg(test)]
pub(crate) fn test_jpegs(n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| {
            let (w, h) = (16 + 8 * i as u32, 8);
            let rgb: Vec<u8> = (0..w * h * 3)
                .map(|p| (p as usize * (i + 1)) as u8)
                .collect();
            encode_rgb(&rgb, w, h, 80).unwrap()
        })
        .collect()
}

/// Checks that `jpeg` is a whole JPEG a browser can show, and returns its (width, height).
///
/// Frames from cameras are passed through untouched, so this is the one place a torn,
/// truncated or exotic frame is caught before every viewer gets it. It checks the SOI and
/// EOI markers and walks the header segments up to the first scan; it does not decode the
/// entropy-coded data. Trailing zero bytes after EOI are tolerated: some UVC (USB)
/// cameras hand over buffers padded to a fixed size. Never panics, whatever the input.
pub fn check(jpeg: &[u8]) -> Result<(u32, u32)> {
    let fail = |why: String| Err(Error::Jpeg(why));
    if jpeg.is_empty() {
        return fail("empty frame".into());
    }
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        let head: Vec<String> = jpeg.iter().take(4).map(|b| format!("{b:02X}")).collect();
        return fail(format!(
            "not a JPEG: does not start with SOI (FF D8) but with {}",
            head.join(" ")
        ));
    }
    let end = jpeg.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let body = &jpeg[..end];
    if body.len() < 4 || !body.ends_with(&[0xFF, 0xD9]) {
        return fail(format!(
            "does not end with EOI (FF D9): truncated frame? ({} bytes)",
            jpeg.len()
        ));
    }

    let mut size = None;
    let mut pos = 2;
    loop {
        match body.get(pos) {
            Some(0xFF) => {}
            Some(b) => {
                return fail(format!(
                    "expected a marker (FF xx) at byte {pos}, found {b:02X}"
                ))
            }
            None => return fail(format!("headers end at byte {pos} without a scan (SOS)")),
        }
        // Any number of FF fill bytes may precede a marker code.
        while body.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = body.get(pos) else {
            return fail(format!("frame ends inside a marker at byte {pos}"));
        };
        let marker_at = pos - 1;
        pos += 1;
        match marker {
            // Markers without a length: TEM and the restart markers.
            0x01 | 0xD0..=0xD7 => continue,
            0x00 => return fail(format!("invalid marker FF 00 at byte {marker_at}")),
            0xD8 => return fail(format!("second SOI at byte {marker_at}")),
            0xD9 => {
                return fail(match size {
                    None => format!("EOI at byte {marker_at} before any frame header (SOF)"),
                    Some(_) => format!("EOI at byte {marker_at} before any scan (SOS)"),
                })
            }
            _ => {}
        }
        let length = match body.get(pos..pos + 2) {
            Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => {
                return fail(format!(
                    "segment FF {marker:02X} at byte {marker_at} is truncated"
                ))
            }
        };
        if length < 2 {
            return fail(format!(
                "segment FF {marker:02X} at byte {marker_at} has invalid length {length}"
            ));
        }
        let Some(payload) = body.get(pos + 2..pos + length) else {
            return fail(format!(
                "segment FF {marker:02X} at byte {marker_at} is truncated \
                 ({length} bytes declared, {} left)",
                body.len() - pos
            ));
        };
        match marker {
            // SOF0 baseline, SOF1 extended sequential, SOF2 progressive (Huffman coded).
            0xC0..=0xC2 => {
                if size.is_some() {
                    return fail(format!("second frame header (SOF) at byte {marker_at}"));
                }
                size = Some(frame_header_size(payload, marker, marker_at)?);
            }
            // Lossless, hierarchical and arithmetic-coded JPEG: browsers cannot show them.
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return fail(format!(
                    "unsupported JPEG process SOF{} (FF {marker:02X}): browsers show only \
                     baseline, extended and progressive JPEG",
                    marker - 0xC0
                ));
            }
            0xDA => {
                return match size {
                    Some(size) => Ok(size),
                    None => fail(format!(
                        "scan (SOS) at byte {marker_at} before any frame header (SOF)"
                    )),
                };
            }
            _ => {}
        }
        pos += length;
    }
}

/// Reads (width, height) from a SOF segment's payload (after the length field).
fn frame_header_size(payload: &[u8], marker: u8, marker_at: usize) -> Result<(u32, u32)> {
    let fail = |why: String| {
        Err(Error::Jpeg(format!(
            "frame header at byte {marker_at}: {why}"
        )))
    };
    let &[precision_bits, h_hi, h_lo, w_hi, w_lo, components, ref rest @ ..] = payload else {
        return fail(format!("too short ({} bytes)", payload.len()));
    };
    if precision_bits != 8 {
        return fail(format!(
            "{precision_bits}-bit samples (SOF{}); browsers show only 8-bit JPEG",
            marker - 0xC0
        ));
    }
    let height = u32::from(u16::from_be_bytes([h_hi, h_lo]));
    let width = u32::from(u16::from_be_bytes([w_hi, w_lo]));
    if width == 0 || height == 0 {
        // Height 0 means "defined later by a DNL marker", which browsers do not support.
        return fail(format!("zero size {width}x{height}"));
    }
    if components == 0 || components > 4 {
        return fail(format!(
            "{components} colour components (expected 1, 3 or 4)"
        ));
    }
    if rest.len() < 3 * usize::from(components) {
        return fail(format!("truncated: {components} components declared"));
    }
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth RGB gradient with a red square: something with structure to compare.
    fn gradient_rgb(width: u32, height: u32) -> Vec<u8> {
        let mut rgb = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                let in_square =
                    x >= width / 4 && x < width / 2 && y >= height / 4 && y < height / 2;
                if in_square {
                    rgb.extend_from_slice(&[220, 30, 30]);
                } else {
                    rgb.extend_from_slice(&[
                        (x * 255 / width) as u8,
                        (y * 255 / height) as u8,
                        128,
                    ]);
                }
            }
        }
        rgb
    }

    fn decode(jpeg: &[u8]) -> (jpeg_decoder::ImageInfo, Vec<u8>) {
        let mut decoder = jpeg_decoder::Decoder::new(jpeg);
        let pixels = decoder.decode().expect("decodes");
        (decoder.info().expect("has info"), pixels)
    }

    fn sample_jpeg() -> Bytes {
        encode_rgb(&gradient_rgb(64, 48), 64, 48, DEFAULT_QUALITY).unwrap()
    }

    /// The tests below that encode run once per backend compiled in ([`Backend::ALL`]):
    /// with `--features turbojpeg`, jpeg-encoder and libjpeg-turbo pass the same cases.
    fn encoder(quality: u8, backend: Backend) -> Encoder {
        let encoder = Encoder::with_backend(quality, backend);
        assert_eq!(encoder.backend(), backend);
        encoder
    }

    #[test]
    fn rgb_round_trip_keeps_size_and_pixels() {
        for &backend in Backend::ALL {
            rgb_round_trip(backend);
        }
    }

    fn rgb_round_trip(backend: Backend) {
        let (width, height) = (96, 64);
        let rgb = gradient_rgb(width, height);
        let jpeg = encoder(90, backend)
            .encode_rgb(&rgb, width, height)
            .unwrap();
        let (info, pixels) = decode(&jpeg);
        assert_eq!(
            (u32::from(info.width), u32::from(info.height)),
            (width, height)
        );
        assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
        assert_eq!(pixels.len(), rgb.len());
        let mean_error: f64 = rgb
            .iter()
            .zip(&pixels)
            .map(|(&a, &b)| f64::from(a.abs_diff(b)))
            .sum::<f64>()
            / rgb.len() as f64;
        assert!(mean_error < 6.0, "{backend:?}: mean error {mean_error}");
        // The middle of the red square is still red.
        let at = ((height * 3 / 8 * width + width * 3 / 8) * 3) as usize;
        let (r, g, b) = (pixels[at], pixels[at + 1], pixels[at + 2]);
        assert!(r > 180 && g < 80 && b < 80, "{backend:?}: ({r}, {g}, {b})");
    }

    #[test]
    fn output_is_baseline_420_and_checks() {
        let rgb = gradient_rgb(64, 48);
        for &backend in Backend::ALL {
            // Every quality, including above 90 where jpeg-encoder would pick 4:4:4.
            for quality in [1, DEFAULT_QUALITY, 100] {
                let jpeg = encoder(quality, backend).encode_rgb(&rgb, 64, 48).unwrap();
                assert_eq!(check(&jpeg).unwrap(), (64, 48));
                // SOF0 (baseline) present, SOF2 (progressive) absent.
                let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]);
                let sof = sof.unwrap_or_else(|| panic!("{backend:?}: no SOF0"));
                assert!(!jpeg.windows(2).any(|w| w == [0xFF, 0xC2]));
                // 3 components; luma sampled 2×2, both chroma 1×1: 4:2:0.
                let components = &jpeg[sof + 9..sof + 19];
                assert_eq!(components[0], 3, "{backend:?}");
                let factors = [components[2], components[5], components[8]];
                assert_eq!(factors, [0x22, 0x11, 0x11], "{backend:?} q{quality}");
                let (info, _) = decode(&jpeg);
                assert_eq!(
                    info.coding_process,
                    jpeg_decoder::CodingProcess::DctSequential
                );
            }
        }
    }

    #[test]
    fn i420_round_trip_with_odd_size() {
        for &backend in Backend::ALL {
            i420_round_trip_with_odd_size_for(backend);
        }
    }

    fn i420_round_trip_with_odd_size_for(backend: Backend) {
        let (width, height) = (37, 21);
        let (chroma_w, chroma_h) = I420::chroma_size(width, height);
        assert_eq!((chroma_w, chroma_h), (19, 11));
        let y: Vec<u8> = (0..width * height)
            .map(|i| (i % width * 255 / width) as u8)
            .collect();
        // Neutral chroma: the picture is a grey ramp, so R = G = B = Y after decoding.
        let cb = vec![128; (chroma_w * chroma_h) as usize];
        let cr = cb.clone();
        let image = I420 {
            width,
            height,
            y: &y,
            cb: &cb,
            cr: &cr,
        };
        let jpeg = encoder(95, backend).encode_i420(&image).unwrap();
        assert_eq!(check(&jpeg).unwrap(), (width, height));
        let (info, pixels) = decode(&jpeg);
        assert_eq!(
            (u32::from(info.width), u32::from(info.height)),
            (width, height)
        );
        for (i, rgb) in pixels.chunks_exact(3).enumerate() {
            let expected = y[i];
            for &c in rgb {
                assert!(
                    c.abs_diff(expected) < 12,
                    "{backend:?}: pixel {i}: {rgb:?} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn i420_chroma_reaches_the_output() {
        let (width, height) = (32, 32);
        let (cw, ch) = I420::chroma_size(width, height);
        let y = vec![76; (width * height) as usize]; // Y of pure red
        let cb = vec![85; (cw * ch) as usize];
        let cr = vec![255; (cw * ch) as usize];
        let image = I420 {
            width,
            height,
            y: &y,
            cb: &cb,
            cr: &cr,
        };
        for &backend in Backend::ALL {
            let jpeg = encoder(90, backend).encode_i420(&image).unwrap();
            let (_, pixels) = decode(&jpeg);
            let (r, g, b) = (pixels[0], pixels[1], pixels[2]);
            assert!(r > 220 && g < 40 && b < 40, "{backend:?}: ({r}, {g}, {b})");
        }
    }

    #[test]
    fn fit_within_keeps_aspect_and_never_grows() {
        assert_eq!(fit_within((1920, 1080), Some((640, 480))), (640, 360));
        assert_eq!(fit_within((1920, 1080), Some((1000, 300))), (533, 300));
        assert_eq!(fit_within((640, 480), Some((1280, 720))), (640, 480));
        assert_eq!(fit_within((640, 480), None), (640, 480));
    }

    #[test]
    fn resample_handles_strides_downscale_and_range() {
        // 8x4 picture, rows padded to 12: left half luma 16 (limited black), right half
        // 235 (limited white); chroma neutral.
        let (w, h, stride) = (8u32, 4u32, 12usize);
        let mut y = vec![0u8; stride * h as usize];
        for row in y.chunks_mut(stride) {
            row[..4].fill(16);
            row[4..8].fill(235);
            row[8..].fill(99); // padding must not leak in
        }
        let c = vec![128u8; 6 * 2];
        let src = I420Strided {
            width: w,
            height: h,
            y: &y,
            y_stride: stride,
            cb: &c,
            cr: &c,
            chroma_stride: 6,
        };
        let mut buf = I420Buf::default();
        buf.resample_from(&src, 8, 4, YuvRange::Limited).unwrap();
        assert_eq!(&buf.y[..8], &[0, 0, 0, 0, 255, 255, 255, 255]);
        assert!(buf.cb.iter().all(|&v| v == 128));
        buf.resample_from(&src, 4, 2, YuvRange::Full).unwrap();
        assert_eq!(
            (buf.width, buf.height, buf.y.len(), buf.cb.len()),
            (4, 2, 8, 2)
        );
        assert_eq!(&buf.y[..4], &[16, 16, 235, 235]);
        // 3×1 from 8×4: halved to 4×2 first (2×2 means), then boxed 4 → 3 columns.
        buf.resample_from(&src, 3, 1, YuvRange::Full).unwrap();
        assert_eq!(buf.y, [16, 16, 235]);
        // Less than 2× smaller: the general box filter alone. 3 columns from 5: spans
        // [0,1) [1,3) [3,5); the middle one mixes black and white.
        let row = [16u8, 16, 235, 235, 235];
        let narrow = I420Strided {
            width: 5,
            height: 1,
            y: &row,
            y_stride: 5,
            cb: &c[..3],
            cr: &c[..3],
            chroma_stride: 3,
        };
        let mut small = I420Buf::default();
        small.resample_from(&narrow, 3, 1, YuvRange::Full).unwrap();
        assert_eq!(small.y, [16, 126, 235]);
        let jpeg = encode_i420(&buf.as_i420(), 80).unwrap();
        assert_eq!(check(&jpeg).unwrap(), (3, 1));
        assert!(buf.resample_from(&src, 16, 4, YuvRange::Full).is_err());
        let short = I420Strided { y: &y[..20], ..src };
        assert!(buf.resample_from(&short, 8, 4, YuvRange::Full).is_err());
    }

    #[test]
    fn large_reductions_halve_first_and_keep_the_picture() {
        // 1280x720 luma ramp across x; to 320x180: two halvings, nothing else.
        let (w, h) = (1280usize, 720usize);
        let y: Vec<u8> = (0..h)
            .flat_map(|_| (0..w).map(|x| (x * 255 / (w - 1)) as u8))
            .collect();
        let c = vec![128u8; (w / 2) * (h / 2)];
        let src = I420Strided {
            width: w as u32,
            height: h as u32,
            y: &y,
            y_stride: w,
            cb: &c,
            cr: &c,
            chroma_stride: w / 2,
        };
        let mut buf = I420Buf::default();
        buf.resample_from(&src, 320, 180, YuvRange::Full).unwrap();
        assert_eq!((buf.width, buf.height, buf.y.len()), (320, 180, 320 * 180));
        // Each output sample is the mean of a 4x4 block of the ramp.
        for x in [0usize, 100, 319] {
            let expect = (0..4).map(|i| (4 * x + i) * 255 / (w - 1)).sum::<usize>() as f64 / 4.0;
            let got = f64::from(buf.y[90 * 320 + x]);
            assert!((got - expect).abs() <= 1.0, "x={x}: {got} vs {expect}");
        }
        assert!(buf.cb.iter().all(|&v| v == 128));
    }

    #[test]
    fn wrong_buffer_sizes_are_errors() {
        for &backend in Backend::ALL {
            let mut encoder = encoder(80, backend);
            assert!(encoder.encode_rgb(&[0; 10], 2, 2).is_err());
            assert!(encoder.encode_rgb(&[], 0, 0).is_err());
            assert!(encoder.encode_rgb(&[0; 3], 70_000, 1).is_err());
            let y = [0u8; 4];
            let short = [0u8; 0];
            let bad = I420 {
                width: 2,
                height: 2,
                y: &y,
                cb: &short,
                cr: &short,
            };
            assert!(matches!(encoder.encode_i420(&bad), Err(Error::Jpeg(_))));
            // Still usable after the errors.
            assert!(encoder.encode_rgb(&[0; 12], 2, 2).is_ok());
        }
    }

    #[test]
    fn encoder_is_reusable_across_sizes() {
        for &backend in Backend::ALL {
            let mut encoder = encoder(DEFAULT_QUALITY, backend);
            let rgb = gradient_rgb(40, 30);
            let a = encoder.encode_rgb(&rgb, 40, 30).unwrap();
            let b = encoder.encode_rgb(&rgb, 40, 30).unwrap();
            assert_eq!(a, b, "{backend:?}");
            // Another size in between, then back: buffers resize both ways.
            let big = gradient_rgb(320, 240);
            let c = encoder.encode_rgb(&big, 320, 240).unwrap();
            assert_eq!(check(&c).unwrap(), (320, 240));
            assert_eq!(encoder.encode_rgb(&rgb, 40, 30).unwrap(), a, "{backend:?}");
        }
    }

    #[test]
    fn check_accepts_trailing_zero_padding() {
        let mut padded = sample_jpeg().to_vec();
        padded.extend_from_slice(&[0; 100]);
        assert_eq!(check(&padded).unwrap(), (64, 48));
    }

    #[test]
    fn check_rejects_broken_frames_with_a_reason() {
        let jpeg = sample_jpeg();
        let reason = |bytes: &[u8]| match check(bytes) {
            Err(Error::Jpeg(why)) => why,
            other => panic!("expected a JPEG error, got {other:?}"),
        };
        assert!(reason(&[]).contains("empty"));
        assert!(reason(b"hello world, not a jpeg").contains("SOI"));
        assert!(reason(&jpeg[..jpeg.len() / 2]).contains("EOI"));
        assert!(reason(&jpeg[..jpeg.len() - 2]).contains("EOI"));
        assert!(reason(&[0xFF, 0xD8, 0xFF, 0xD9]).contains("frame header"));
        // A header that claims more bytes than there are.
        assert!(reason(&[0xFF, 0xD8, 0xFF, 0xE0, 0x40, 0x00, 0xFF, 0xD9]).contains("truncated"));
        // A frame header declaring zero height.
        let mut zero_height = jpeg.to_vec();
        let sof = zero_height
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .unwrap();
        zero_height[sof + 5] = 0;
        zero_height[sof + 6] = 0;
        assert!(reason(&zero_height).contains("zero size"));
        // The frame header removed altogether (a garbage marker in its place).
        let mut no_sof = jpeg.to_vec();
        no_sof[sof + 1] = 0xE5;
        assert!(reason(&no_sof).contains("before any frame header"));
        // A progressive frame header is accepted, an arithmetic-coded one is not.
        let mut progressive = jpeg.to_vec();
        progressive[sof + 1] = 0xC2;
        assert_eq!(check(&progressive).unwrap(), (64, 48));
        let mut arithmetic = jpeg.to_vec();
        arithmetic[sof + 1] = 0xC9;
        assert!(reason(&arithmetic).contains("SOF9"));
    }

    #[test]
    fn check_never_panics_on_truncations_and_corruptions() {
        let jpeg = sample_jpeg();
        for len in 0..jpeg.len() {
            assert!(
                check(&jpeg[..len]).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
        // Corrupt single header bytes (xorshift, reproducible) and keep EOI intact, so the
        // marker walk sees every kind of nonsense.
        let mut state: u32 = 0x2545_F491;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for _ in 0..5_000 {
            let mut bytes = jpeg.to_vec();
            let header_len = 700.min(bytes.len() - 2);
            for _ in 0..1 + next() % 4 {
                let at = next() as usize % header_len;
                bytes[at] = next() as u8;
            }
            let _ = check(&bytes);
            let cut = next() as usize % bytes.len();
            let _ = check(&bytes[cut..]);
        }
        for len in 0..64 {
            let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = check(&noise);
            let mut framed = vec![0xFF, 0xD8];
            framed.extend_from_slice(&noise);
            framed.extend_from_slice(&[0xFF, 0xD9]);
            let _ = check(&framed);
        }
    }
}

// ==== Raw camera pixel formats → I420 ====================================================
//
// Appended for the V4L2 source (src/source/v4l2.rs), kept apart from the code above: these
// functions turn what USB/CSI cameras deliver without compression (packed YUYV/UYVY 4:2:2,
// semi-planar NV12, planar YU12) into a tightly packed full-range [`I420Buf`] for
// [`Encoder::encode_i420`]. One pass over the pixels, no allocation once the buffer has
// the right size.

/// Byte order of a packed 4:2:2 picture: two pixels share one Cb and one Cr sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packed422 {
    /// Y0 Cb Y1 Cr (V4L2 `YUYV`, the format every UVC camera offers).
    Yuyv,
    /// Cb Y0 Cr Y1 (V4L2 `UYVY`).
    Uyvy,
}

impl I420Buf {
    /// Sizes the planes for `width × height` (reusing their allocations).
    fn reset_for(&mut self, width: u32, height: u32) -> Result<(usize, usize)> {
        check_size(width, height)?;
        let (cw, ch) = I420::chroma_size(width, height);
        self.width = width;
        self.height = height;
        self.y.resize(width as usize * height as usize, 0);
        self.cb.resize(cw as usize * ch as usize, 0);
        self.cr.resize(cw as usize * ch as usize, 0);
        Ok((cw as usize, ch as usize))
    }

    /// Fills this buffer from a packed 4:2:2 picture whose rows are `stride` bytes apart.
    /// Chroma of each 2×2 block is the average of its two rows; `range` is converted to
    /// JFIF's full range.
    pub fn from_packed_422(
        &mut self,
        src: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        order: Packed422,
        range: YuvRange,
    ) -> Result<()> {
        let (cw, _) = self.reset_for(width, height)?;
        let (w, h) = (width as usize, height as usize);
        let row_len = w.div_ceil(2) * 4;
        if stride < row_len || src.len() < (h - 1) * stride + row_len {
            return Err(Error::Jpeg(format!(
                "4:2:2 buffer too short for {width}x{height} with stride {stride}: {} bytes",
                src.len()
            )));
        }
        let (y_at, cb_at, cr_at) = match order {
            Packed422::Yuyv => ([0, 2], 1, 3),
            Packed422::Uyvy => ([1, 3], 0, 2),
        };
        let (luma_lut, chroma_lut) = range_luts(range);
        for row in 0..h {
            let line = &src[row * stride..row * stride + row_len];
            let out = &mut self.y[row * w..(row + 1) * w];
            for (x, px) in out.iter_mut().enumerate() {
                *px = luma_lut[usize::from(line[(x / 2) * 4 + y_at[x % 2]])];
            }
        }
        for crow in 0..h.div_ceil(2) {
            let top = &src[2 * crow * stride..];
            // An odd last row has no partner: use it twice.
            let bottom = &src[(2 * crow + 1).min(h - 1) * stride..];
            for cx in 0..cw {
                let avg = |at: usize| {
                    let sum = u16::from(top[cx * 4 + at]) + u16::from(bottom[cx * 4 + at]);
                    chroma_lut[usize::from(sum.div_ceil(2) as u8)]
                };
                self.cb[crow * cw + cx] = avg(cb_at);
                self.cr[crow * cw + cx] = avg(cr_at);
            }
        }
        Ok(())
    }

    /// Fills this buffer from NV12: a luma plane of rows `stride` bytes apart, followed
    /// (at `stride × height`) by one plane of interleaved Cb Cr pairs with the same stride.
    pub fn from_nv12(
        &mut self,
        src: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        range: YuvRange,
    ) -> Result<()> {
        let (cw, ch) = self.reset_for(width, height)?;
        let (w, h) = (width as usize, height as usize);
        let chroma_start = stride * h;
        if stride < cw * 2 || stride < w || src.len() < chroma_start + (ch - 1) * stride + cw * 2 {
            return Err(Error::Jpeg(format!(
                "NV12 buffer too short for {width}x{height} with stride {stride}: {} bytes",
                src.len()
            )));
        }
        let (luma_lut, chroma_lut) = range_luts(range);
        for row in 0..h {
            let line = &src[row * stride..row * stride + w];
            for (out, &v) in self.y[row * w..(row + 1) * w].iter_mut().zip(line) {
                *out = luma_lut[usize::from(v)];
            }
        }
        for crow in 0..ch {
            let line = &src[chroma_start + crow * stride..chroma_start + crow * stride + cw * 2];
            for (cx, pair) in line.chunks_exact(2).enumerate() {
                self.cb[crow * cw + cx] = chroma_lut[usize::from(pair[0])];
                self.cr[crow * cw + cx] = chroma_lut[usize::from(pair[1])];
            }
        }
        Ok(())
    }

    /// Fills this buffer from YU12 (planar I420 as V4L2 lays it out in one buffer: luma
    /// rows `stride` bytes apart, then Cb and Cr planes with rows `stride / 2` apart).
    pub fn from_yu12(
        &mut self,
        src: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        range: YuvRange,
    ) -> Result<()> {
        let (_, src_ch) = I420::chroma_size(width, height);
        let chroma_stride = stride.div_ceil(2);
        let cb_start = stride * height as usize;
        let cr_start = cb_start + chroma_stride * src_ch as usize;
        let planes = I420Strided {
            width,
            height,
            y: src.get(..cb_start).unwrap_or_default(),
            y_stride: stride,
            cb: src.get(cb_start..cr_start).unwrap_or_default(),
            cr: src.get(cr_start..).unwrap_or_default(),
            chroma_stride,
        };
        self.resample_from(&planes, width, height, range)
    }
}

#[cfg(test)]
mod raw_tests {
    use super::*;

    /// Limited-range values whose full-range equivalents are exact: 16→0, 235→255,
    /// 128→128, 240→255.
    #[test]
    fn yuyv_to_i420_splits_planes_averages_chroma_and_expands_range() {
        // 4×2 picture: row 0 = Y 16 235 | 16 235, Cb/Cr differ per row to test averaging.
        #[rustfmt::skip]
        let src = [
            16, 100, 235, 200,   16, 128, 235, 128,  0xEE, 0xEE, // 2 bytes row padding
            16, 110, 235, 210,   235, 128, 16, 128,  0xEE, 0xEE,
        ];
        let mut buf = I420Buf::default();
        buf.from_packed_422(&src, 4, 2, 10, Packed422::Yuyv, YuvRange::Full)
            .unwrap();
        assert_eq!(buf.y, [16, 235, 16, 235, 16, 235, 235, 16]);
        assert_eq!(buf.cb, [105, 128]);
        assert_eq!(buf.cr, [205, 128]);

        buf.from_packed_422(&src, 4, 2, 10, Packed422::Yuyv, YuvRange::Limited)
            .unwrap();
        assert_eq!(buf.y, [0, 255, 0, 255, 0, 255, 255, 0]);
        assert_eq!(buf.cb[1], 128);
        let jpeg = encode_i420(&buf.as_i420(), 90).unwrap();
        assert_eq!(check(&jpeg).unwrap(), (4, 2));
    }

    #[test]
    fn uyvy_and_odd_sizes() {
        // 3×3 picture (odd both ways): 2 pixel pairs per row, last row unpaired.
        let row = [50, 10, 60, 20, 51, 11, 61, 21];
        let src: Vec<u8> = row.iter().chain(&row).chain(&row).copied().collect();
        let mut buf = I420Buf::default();
        buf.from_packed_422(&src, 3, 3, 8, Packed422::Uyvy, YuvRange::Full)
            .unwrap();
        assert_eq!(buf.y, [10, 20, 11, 10, 20, 11, 10, 20, 11]);
        assert_eq!(buf.cb, [50, 51, 50, 51]);
        assert_eq!(buf.cr, [60, 61, 60, 61]);
    }

    #[test]
    fn nv12_and_yu12() {
        // 2×2 with stride 4: Y plane then one CbCr pair.
        let nv12 = [1, 2, 0, 0, 3, 4, 0, 0, 70, 80, 0, 0];
        let mut buf = I420Buf::default();
        buf.from_nv12(&nv12, 2, 2, 4, YuvRange::Full).unwrap();
        assert_eq!(
            (buf.y.as_slice(), buf.cb.as_slice(), buf.cr.as_slice()),
            (&[1, 2, 3, 4][..], &[70][..], &[80][..])
        );
        let yu12 = [1, 2, 0, 0, 3, 4, 0, 0, 70, 0, 80, 0];
        buf.from_yu12(&yu12, 2, 2, 4, YuvRange::Full).unwrap();
        assert_eq!(
            (buf.y.as_slice(), buf.cb.as_slice(), buf.cr.as_slice()),
            (&[1, 2, 3, 4][..], &[70][..], &[80][..])
        );
    }

    #[test]
    fn short_raw_buffers_are_errors_not_panics() {
        let mut buf = I420Buf::default();
        assert!(buf
            .from_packed_422(&[0; 15], 4, 2, 8, Packed422::Yuyv, YuvRange::Full)
            .is_err());
        assert!(buf.from_nv12(&[0; 5], 2, 2, 2, YuvRange::Full).is_err());
        assert!(buf.from_yu12(&[0; 5], 2, 2, 2, YuvRange::Full).is_err());
        assert!(buf
            .from_packed_422(&[0; 16], 4, 2, 2, Packed422::Yuyv, YuvRange::Full)
            .is_err());
    }
}
