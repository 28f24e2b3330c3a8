//! JPEG in, smaller planar YCbCr out: [`Decoder::decode_scaled`] decodes a camera's JPEG at
//! 1/8, 1/4 or 1/2 of its size in the DCT domain, the first step of a passthrough camera's
//! renditions (issue #12). The rest of a rendition is [`I420Buf::resample_from`] to the
//! exact width, then [`jpeg::Encoder`](crate::jpeg::Encoder).
//!
//! Decoding at a DCT scale costs far less than decoding full size and shrinking after:
//! the inverse DCT of each 8×8 block directly yields 4×4, 2×2 or 1×1 pixels, and
//! everything after it (chroma handling, copies) touches 4–64× fewer pixels.
//!
//! Two backends, chosen like the encoder's ([`Backend`]): the pure-Rust `jpeg-decoder`
//! crate (its scaled IDCT; the only pure-Rust decoder with one), or libjpeg-turbo's scaled
//! decompress with the `turbojpeg` feature (`src/jpeg_turbo.rs`). Both hand back the JPEG's
//! own YCbCr samples, never an RGB round trip; this module turns whatever chroma layout
//! the camera used (4:2:0, 4:2:2 from most USB webcams, 4:4:4, greyscale, rarer ones)
//! into tightly packed full-range 4:2:0.

use crate::error::{Error, Result};
use crate::jpeg::{self, Backend, I420Buf, I420};

/// Turns camera JPEGs into smaller [`I420Buf`] pictures. Reusable per stream (holds the
/// libjpeg-turbo handle and its scratch buffer); not shared between threads.
#[derive(Debug)]
pub struct Decoder {
    backend: Backend,
    #[cfg(feature = "turbojpeg")]
    turbo: crate::jpeg_turbo::TurboDecoder,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder using [`Backend::DEFAULT`], the fastest backend compiled in.
    pub fn new() -> Decoder {
        Decoder::with_backend(Backend::DEFAULT)
    }

    /// A decoder using a given backend: for tests and benchmarks that compare them.
    pub fn with_backend(backend: Backend) -> Decoder {
        Decoder {
            backend,
            #[cfg(feature = "turbojpeg")]
            turbo: crate::jpeg_turbo::TurboDecoder::new(),
        }
    }

    /// The backend this decoder uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Decodes `jpeg` at the smallest DCT scale among 1/8, 1/4, 1/2, 1/1 whose output is at
    /// least `min_width` pixels wide (full size when none is), into `out` as a tightly
    /// packed, full-range (JFIF) I420 picture (`out.width`/`out.height` set; its buffers are
    /// reused across calls). A scaled side is rounded up: 641 px at 1/2 gives 321.
    ///
    /// Takes baseline and progressive JPEG, YCbCr with any chroma subsampling, or
    /// greyscale (neutral chroma out). Refuses, with the reason: anything [`jpeg::check`]
    /// refuses (truncated frames among them), pictures larger than [`jpeg::check_size`]
    /// allows (before allocating anything for them), RGB- and CMYK-coded JPEGs, and
    /// entropy-coded data the backend finds corrupt. Never panics on bad input.
    pub fn decode_scaled(&mut self, jpeg: &[u8], min_width: u32, out: &mut I420Buf) -> Result<()> {
        let (width, height) = jpeg::check(jpeg)?;
        jpeg::check_size(width, height)?;
        let headers = read_headers(jpeg)?;
        let scale = DctScale::pick(width, height, min_width);
        let result = match self.backend {
            Backend::JpegEncoder => decode_pure_rust(jpeg, headers, scale, out),
            #[cfg(feature = "turbojpeg")]
            Backend::TurboJpeg => self
                .turbo
                .decode_scaled(jpeg, scale.denom, scale.width, scale.height)
                .and_then(|planes| planes.to_i420(out)),
        };
        result.map_err(|e| {
            let why = match e {
                Error::Jpeg(why) => why,
                other => other.to_string(),
            };
            let decoder = match self.backend {
                Backend::JpegEncoder => "jpeg-decoder",
                #[cfg(feature = "turbojpeg")]
                Backend::TurboJpeg => "libjpeg-turbo",
            };
            Error::Jpeg(format!(
                "decoding {width}x{height} at 1/{} with {decoder}: {why}",
                scale.denom
            ))
        })
    }
}

/// A DCT scaling choice: 1/`denom` of the picture, `width × height` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DctScale {
    denom: u32,
    width: u32,
    height: u32,
}

impl DctScale {
    /// The smallest of 1/8, 1/4, 1/2 whose width reaches `min_width`, else full size.
    /// Sides round up, as both libjpeg-turbo (`TJSCALED`) and jpeg-decoder round them.
    fn pick(width: u32, height: u32, min_width: u32) -> DctScale {
        for denom in [8, 4, 2] {
            let scale = DctScale {
                denom,
                width: width.div_ceil(denom),
                height: height.div_ceil(denom),
            };
            if scale.width >= min_width {
                return scale;
            }
        }
        DctScale {
            denom: 1,
            width,
            height,
        }
    }
}

/// How a JPEG's components are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColorModel {
    Gray,
    YCbCr,
}

/// What the decoders need to know from the headers before the first scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Headers {
    model: ColorModel,
    /// Whether any DHT segment comes before the first scan. Motion-JPEG from UVC
    /// webcams usually has none: the standard tables (JPEG Annex K.3) are implied.
    huffman_tables: bool,
}

/// Reads the colour model from the headers the way libjpeg decides it (component count;
/// for three components the JFIF and Adobe markers and the component ids), so both
/// backends accept and refuse the same JPEGs. Cameras send YCbCr or greyscale; an RGB- or
/// CMYK-coded JPEG is refused rather than decoded into wrong colours.
fn read_headers(jpeg: &[u8]) -> Result<Headers> {
    let fail = |why: String| Err(Error::Jpeg(why));
    let (mut jfif, mut adobe_transform) = (false, None);
    let (mut model, mut huffman_tables) = (None, false);
    let mut pos = 2;
    loop {
        // `jpeg::check` has walked these headers already; `get` keeps a surprise an error.
        if jpeg.get(pos) != Some(&0xFF) {
            return fail(format!("expected a marker at byte {pos}"));
        }
        while jpeg.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = jpeg.get(pos) else {
            return fail("headers end without a scan".into());
        };
        pos += 1;
        if matches!(marker, 0x01 | 0xD0..=0xD7) {
            continue;
        }
        let length = match jpeg.get(pos..pos + 2) {
            Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => return fail(format!("segment FF {marker:02X} is truncated")),
        };
        let Some(payload) = jpeg.get(pos + 2..pos + length.max(2)) else {
            return fail(format!("segment FF {marker:02X} is truncated"));
        };
        match marker {
            0xE0 if payload.starts_with(b"JFIF\0") => jfif = true,
            // APP14 "Adobe": version, flags0, flags1, then the colour transform byte.
            0xEE if payload.starts_with(b"Adobe") && payload.len() >= 12 => {
                adobe_transform = Some(payload[11]);
            }
            0xC4 => huffman_tables = true,
            0xC0..=0xC2 => {
                let components = payload.get(5).copied().unwrap_or(0);
                let ids: Vec<u8> = payload
                    .get(6..)
                    .unwrap_or_default()
                    .chunks_exact(3)
                    .map(|c| c[0])
                    .take(usize::from(components))
                    .collect();
                model = Some(match (components, ids.as_slice()) {
                    (1, _) => ColorModel::Gray,
                    (3, b"RGB") => return fail("RGB-coded JPEG (component ids R, G, B)".into()),
                    (3, _) if !jfif && adobe_transform == Some(0) => {
                        return fail(
                            "RGB-coded JPEG (Adobe marker without colour transform)".into(),
                        )
                    }
                    (3, [1, 0x22, 0x23]) => {
                        return fail("big-gamut YCC JPEG is not supported".into())
                    }
                    (3, _) => ColorModel::YCbCr,
                    (4, _) => return fail("CMYK/YCCK JPEG (4 components) is not supported".into()),
                    (n, _) => return fail(format!("{n} colour components (expected 1 or 3)")),
                });
            }
            0xDA => {
                return match model {
                    Some(model) => Ok(Headers {
                        model,
                        huffman_tables,
                    }),
                    None => fail("scan before any frame header".into()),
                };
            }
            _ => {}
        }
        pos += length;
    }
}

/// An APP0 "AVI1" segment: marks a frame as Motion-JPEG, whose missing Huffman tables
/// mean the standard ones. jpeg-decoder fills those in only for frames so marked.
const AVI1_SEGMENT: [u8; 9] = [0xFF, 0xE0, 0x00, 0x07, b'A', b'V', b'I', b'1', 0x00];

/// The pure-Rust backend: jpeg-decoder with its scaled IDCT and no colour conversion.
///
/// jpeg-decoder upsamples chroma to the output size and interleaves Y Cb Cr (there is no
/// planar output), so chroma is averaged back down to 4:2:0 here. Built without its
/// `rayon` feature: for outputs wider than 128 px it then decodes each component on a
/// short-lived thread of its own instead of on a global thread pool.
fn decode_pure_rust(
    jpeg: &[u8],
    headers: Headers,
    scale: DctScale,
    out: &mut I420Buf,
) -> Result<()> {
    let fail = |e: jpeg_decoder::Error| Error::Jpeg(e.to_string());
    let model = headers.model;
    let marked;
    let jpeg = if headers.huffman_tables {
        jpeg
    } else {
        // A copy with the marker inserted after SOI: a memcpy of one compressed frame.
        marked = [&jpeg[..2], &AVI1_SEGMENT, &jpeg[2..]].concat();
        &marked[..]
    };
    let (Ok(width), Ok(height)) = (u16::try_from(scale.width), u16::try_from(scale.height)) else {
        return Err(Error::Jpeg("too large for a JPEG".into()));
    };
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    // Asking for exactly the scaled size makes jpeg-decoder pick exactly that scale.
    let got = decoder.scale(width, height).map_err(fail)?;
    if got != (width, height) {
        return Err(Error::Jpeg(format!(
            "jpeg-decoder scaled to {}x{} instead of {width}x{height}",
            got.0, got.1
        )));
    }
    let channels = match model {
        ColorModel::Gray => 1,
        ColorModel::YCbCr => 3,
    };
    let (w, h) = (usize::from(width), usize::from(height));
    decoder.set_max_decoding_buffer_size(w * h * channels);
    if model == ColorModel::YCbCr {
        // "The components are RGB already": jpeg-decoder then only interleaves them, so
        // this yields Y Cb Cr as coded. (`ColorTransform::None` would be the honest name,
        // but in 0.3.2 it concatenates padded rows instead of interleaving, and panics.)
        decoder.set_color_transform(jpeg_decoder::ColorTransform::RGB);
    }
    let pixels = decoder.decode().map_err(fail)?;
    if pixels.len() != w * h * channels {
        return Err(Error::Jpeg(format!(
            "jpeg-decoder returned {} bytes for {w}x{h}x{channels}",
            pixels.len()
        )));
    }
    let planes = Planes {
        width: scale.width,
        height: scale.height,
        step: channels,
        y: &pixels,
        y_stride: w * channels,
        chroma: (model == ColorModel::YCbCr).then(|| Chroma {
            cb: &pixels[1..],
            cr: &pixels[2..],
            stride: w * 3,
            sub_x: 1,
            sub_y: 1,
        }),
    };
    planes.to_i420(out)
}

/// A decoded picture as a backend hands it over: Y, Cb and Cr in the JPEG's own chroma
/// subsampling, planar (libjpeg-turbo) or interleaved (jpeg-decoder).
pub(crate) struct Planes<'a> {
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Bytes from one sample of a plane to the next on the same row: 1 for planar
    /// data, 3 for interleaved Y Cb Cr (each plane's slice then starts at its own byte).
    pub(crate) step: usize,
    /// `width × height` luma samples, rows `y_stride` bytes apart.
    pub(crate) y: &'a [u8],
    pub(crate) y_stride: usize,
    /// `None` for a greyscale JPEG.
    pub(crate) chroma: Option<Chroma<'a>>,
}

/// The chroma planes of [`Planes`]: one sample per `sub_x × sub_y` pixels (1, 2 or 4
/// each way), `⌈width / sub_x⌉ × ⌈height / sub_y⌉` samples, rows `stride` bytes apart.
pub(crate) struct Chroma<'a> {
    pub(crate) cb: &'a [u8],
    pub(crate) cr: &'a [u8],
    pub(crate) stride: usize,
    pub(crate) sub_x: usize,
    pub(crate) sub_y: usize,
}

impl Planes<'_> {
    /// Fills `out` with this picture as tightly packed 4:2:0: luma copied, each output
    /// chroma sample the average of the source chroma samples its 2×2 pixels use (a copy
    /// for 4:2:0, two rows for 4:2:2, four samples for 4:4:4), 128 for greyscale.
    /// Plane lengths are checked first: a short plane is an error, not a panic.
    pub(crate) fn to_i420(&self, out: &mut I420Buf) -> Result<()> {
        jpeg::check_size(self.width, self.height)?;
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = I420::chroma_size(self.width, self.height);
        let (cw, ch) = (cw as usize, ch as usize);
        let fits = |plane: &[u8], stride: usize, cols: usize, rows: usize| {
            stride > (cols - 1) * self.step
                && plane.len() > (rows - 1) * stride + (cols - 1) * self.step
        };
        if self.step == 0 || !fits(self.y, self.y_stride, w, h) {
            return Err(Error::Jpeg(format!("decoded luma too short for {w}x{h}")));
        }
        if let Some(c) = &self.chroma {
            let valid = matches!(c.sub_x, 1 | 2 | 4) && matches!(c.sub_y, 1 | 2 | 4);
            let (cols, rows) = (w.div_ceil(c.sub_x.max(1)), h.div_ceil(c.sub_y.max(1)));
            if !valid || !fits(c.cb, c.stride, cols, rows) || !fits(c.cr, c.stride, cols, rows) {
                return Err(Error::Jpeg(format!(
                    "decoded chroma ({}x{} subsampling) too short for {w}x{h}",
                    c.sub_x, c.sub_y
                )));
            }
        }

        out.width = self.width;
        out.height = self.height;
        out.y.clear();
        out.y.reserve(w * h);
        for row in 0..h {
            let line = &self.y[row * self.y_stride..];
            if self.step == 1 {
                out.y.extend_from_slice(&line[..w]);
            } else {
                out.y.extend(line.iter().step_by(self.step).take(w));
            }
        }
        for plane in [&mut out.cb, &mut out.cr] {
            plane.clear();
            plane.reserve(cw * ch);
        }
        let Some(c) = &self.chroma else {
            out.cb.resize(cw * ch, 128);
            out.cr.resize(cw * ch, 128);
            return Ok(());
        };
        // For each output chroma column (row): the first and last source chroma column
        // (row) under its two pixel columns (rows), the second clipped at an odd edge.
        let spans = |out_len: usize, pixels: usize, sub: usize| -> Vec<(usize, usize)> {
            (0..out_len)
                .map(|i| (2 * i / sub, (2 * i + 1).min(pixels - 1) / sub))
                .collect()
        };
        let cols = spans(cw, w, c.sub_x);
        let rows = spans(ch, h, c.sub_y);
        for (src, dst) in [(c.cb, &mut out.cb), (c.cr, &mut out.cr)] {
            if (c.sub_x, c.sub_y, self.step) == (2, 2, 1) {
                for row in 0..ch {
                    dst.extend_from_slice(&src[row * c.stride..row * c.stride + cw]);
                }
                continue;
            }
            for &(r0, r1) in &rows {
                for &(c0, c1) in &cols {
                    let mut sum = 0u32;
                    for r in r0..=r1 {
                        for col in c0..=c1 {
                            sum += u32::from(src[r * c.stride + col * self.step]);
                        }
                    }
                    let n = ((r1 - r0 + 1) * (c1 - c0 + 1)) as u32;
                    dst.push(((sum + n / 2) / n) as u8);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::Color;
    use jpeg_encoder::{ColorType, SamplingFactor};

    /// 75 % colour bars between white and black; the bottom half repeats them in reverse
    /// order, so a chroma row taken from the wrong half shows.
    const BARS: [(u8, u8, u8); 8] = [
        (255, 255, 255),
        (191, 191, 0),
        (0, 191, 191),
        (0, 191, 0),
        (191, 0, 191),
        (191, 0, 0),
        (0, 0, 191),
        (0, 0, 0),
    ];

    fn bar_at(x: u32, y: u32, width: u32, height: u32) -> (u8, u8, u8) {
        let i = (x * 8 / width) as usize;
        BARS[if y < height / 2 { i } else { 7 - i }]
    }

    /// How a test picture is encoded: the layouts cameras send, and rarer ones.
    #[derive(Clone, Copy, Debug)]
    enum Layout {
        Sampled(SamplingFactor),
        Gray,
        /// 4:2:2 with a restart marker every 3 MCUs.
        Restarts,
        /// 4:2:2 without Huffman tables, as many UVC webcams send MJPEG (the decoder must
        /// use the standard tables, JPEG Annex K.3).
        NoHuffmanTables,
        Progressive,
    }

    const CAMERA_LAYOUTS: [Layout; 4] = [
        Layout::Sampled(SamplingFactor::F_2_2),
        Layout::Sampled(SamplingFactor::F_2_1),
        Layout::Sampled(SamplingFactor::F_1_1),
        Layout::Gray,
    ];

    /// The colour-bar picture as a JPEG, through the pure-Rust encoder at quality 95.
    fn bars_jpeg(width: u32, height: u32, layout: Layout) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 95);
        encoder.set_sampling_factor(SamplingFactor::F_2_1);
        match layout {
            Layout::Sampled(factor) => encoder.set_sampling_factor(factor),
            Layout::Restarts => encoder.set_restart_interval(3),
            Layout::Progressive => encoder.set_progressive(true),
            Layout::Gray | Layout::NoHuffmanTables => {}
        }
        let (w, h) = (width as u16, height as u16);
        let pixels = (0..height).flat_map(|y| (0..width).map(move |x| bar_at(x, y, width, height)));
        if let Layout::Gray = layout {
            let luma: Vec<u8> = pixels.map(|(r, g, b)| Color::rgb(r, g, b).y).collect();
            encoder.encode(&luma, w, h, ColorType::Luma).unwrap();
        } else {
            let rgb: Vec<u8> = pixels.flat_map(|(r, g, b)| [r, g, b]).collect();
            encoder.encode(&rgb, w, h, ColorType::Rgb).unwrap();
        }
        if let Layout::NoHuffmanTables = layout {
            out = without_segments(&out, 0xC4);
        }
        out
    }

    /// `jpeg` with every header segment FF `marker` removed.
    fn without_segments(jpeg: &[u8], marker: u8) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        while jpeg[pos + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if jpeg[pos + 1] != marker {
                out.extend_from_slice(&jpeg[pos..pos + 2 + len]);
            }
            pos += 2 + len;
        }
        out.extend_from_slice(&jpeg[pos..]);
        out
    }

    /// Worst difference of Y, Cb and Cr at the middle of every bar (top and bottom half)
    /// from the colour that was encoded; `gray` expects neutral chroma.
    fn worst_bar_error(picture: &I420Buf, gray: bool) -> (i32, String) {
        let (w, h) = (picture.width, picture.height);
        let (cw, _) = I420::chroma_size(w, h);
        let mut worst = (0, String::new());
        for half in 0..2 {
            let y = h / 4 + half * h / 2;
            for bar in 0..8 {
                let x = (2 * bar + 1) * w / 16;
                let (r, g, b) = bar_at(x, y, w, h);
                let want = Color::rgb(r, g, b);
                let want = if gray { Color::grey(want.y) } else { want };
                let at = (y / 2 * cw + x / 2) as usize;
                let got = (
                    picture.y[(y * w + x) as usize],
                    picture.cb[at],
                    picture.cr[at],
                );
                for (got, want) in [(got.0, want.y), (got.1, want.cb), (got.2, want.cr)] {
                    let error = (i32::from(got) - i32::from(want)).abs();
                    if error > worst.0 {
                        worst = (error, format!("bar {bar} half {half}: {got:?} vs {want:?}"));
                    }
                }
            }
        }
        worst
    }

    /// Largest Y/Cb/Cr error allowed at a bar's middle. Flat colour at quality 95 comes
    /// back exact from both backends (measured: 0 everywhere); a limited-range output
    /// (white 235, black 16), swapped or misplaced chroma or a wrong row is off by 16+.
    const TOLERANCE: i32 = 4;

    fn check_picture(picture: &I420Buf, size: (u32, u32), gray: bool, what: &str) {
        assert_eq!((picture.width, picture.height), size, "{what}");
        let (cw, ch) = I420::chroma_size(size.0, size.1);
        assert_eq!(picture.y.len(), (size.0 * size.1) as usize, "{what}");
        assert_eq!(picture.cb.len(), (cw * ch) as usize, "{what}");
        assert_eq!(picture.cr.len(), (cw * ch) as usize, "{what}");
        let (error, at) = worst_bar_error(picture, gray);
        assert!(error <= TOLERANCE, "{what}: off by {error} at {at}");
    }

    #[test]
    fn picks_the_smallest_dct_scale_at_least_min_width() {
        let pick = |w, h, min| {
            let s = DctScale::pick(w, h, min);
            (s.denom, s.width, s.height)
        };
        assert_eq!(pick(640, 480, 320), (2, 320, 240));
        assert_eq!(pick(1280, 720, 320), (4, 320, 180));
        assert_eq!(pick(1920, 1080, 320), (4, 480, 270)); // 1/8 would be 240 wide
        assert_eq!(pick(641, 481, 320), (2, 321, 241)); // sides round up
        assert_eq!(pick(640, 480, 80), (8, 80, 60));
        assert_eq!(pick(640, 480, 0), (8, 80, 60));
        assert_eq!(pick(640, 480, 641), (1, 640, 480)); // none is wide enough: full size
        assert_eq!(pick(1, 1, 320), (1, 1, 1));
    }

    /// Issue #12: camera JPEGs in every layout cameras send, at the sizes they send,
    /// decoded for a 320-wide rendition by every backend compiled in.
    #[test]
    fn decodes_camera_layouts_at_the_scale_for_320_wide() {
        let cases = [
            ((640, 480), (320, 240)),
            ((1280, 720), (320, 180)),
            ((1920, 1080), (480, 270)),
            ((641, 481), (321, 241)),
        ];
        let mut decoders: Vec<Decoder> = Backend::ALL
            .iter()
            .map(|&b| Decoder::with_backend(b))
            .collect();
        // One output buffer for everything: it shrinks and grows between sizes.
        let mut out = I420Buf::default();
        for (size, scaled) in cases {
            for layout in CAMERA_LAYOUTS {
                let jpeg = bars_jpeg(size.0, size.1, layout);
                for decoder in &mut decoders {
                    let what = format!("{:?} {size:?} {layout:?}", decoder.backend());
                    decoder.decode_scaled(&jpeg, 320, &mut out).unwrap();
                    check_picture(&out, scaled, matches!(layout, Layout::Gray), &what);
                }
            }
        }
    }

    #[test]
    fn decodes_restarts_missing_huffman_tables_progressive_and_rare_subsampling() {
        let layouts = [
            Layout::Restarts,
            Layout::NoHuffmanTables,
            Layout::Progressive,
            Layout::Sampled(SamplingFactor::F_4_1),
            Layout::Sampled(SamplingFactor::F_1_2),
        ];
        for &backend in Backend::ALL {
            let mut decoder = Decoder::with_backend(backend);
            let mut out = I420Buf::default();
            for layout in layouts {
                let jpeg = bars_jpeg(641, 481, layout);
                match layout {
                    Layout::Restarts => {
                        assert!(jpeg.windows(2).any(|w| w == [0xFF, 0xDD]), "no DRI");
                        assert!(jpeg.windows(2).any(|w| w == [0xFF, 0xD3]), "no RST3");
                    }
                    Layout::NoHuffmanTables => {
                        assert!(!jpeg.windows(2).any(|w| w == [0xFF, 0xC4]), "DHT left");
                    }
                    _ => {}
                }
                for (min_width, scaled) in [(320, (321, 241)), (0, (81, 61)), (641, (641, 481))] {
                    let what = format!("{backend:?} {layout:?} min_width {min_width}");
                    decoder.decode_scaled(&jpeg, min_width, &mut out).unwrap();
                    check_picture(&out, scaled, false, &what);
                }
            }
        }
    }

    /// Both backends give the same picture, within rounding (their IDCTs and chroma
    /// upsampling differ slightly).
    #[cfg(feature = "turbojpeg")]
    #[test]
    fn backends_agree() {
        let jpeg = bars_jpeg(1280, 720, Layout::Sampled(SamplingFactor::F_2_1));
        let decode = |backend| {
            let mut out = I420Buf::default();
            Decoder::with_backend(backend)
                .decode_scaled(&jpeg, 320, &mut out)
                .unwrap();
            out
        };
        let (a, b) = (decode(Backend::JpegEncoder), decode(Backend::TurboJpeg));
        for (plane_a, plane_b) in [(&a.y, &b.y), (&a.cb, &b.cb), (&a.cr, &b.cr)] {
            let mean_diff = plane_a
                .iter()
                .zip(plane_b)
                .map(|(&x, &y)| f64::from(x.abs_diff(y)))
                .sum::<f64>()
                / plane_a.len() as f64;
            assert!(mean_diff < 1.5, "mean difference {mean_diff}");
        }
    }

    fn decode_error(backend: Backend, jpeg: &[u8]) -> String {
        let mut out = I420Buf::default();
        match Decoder::with_backend(backend).decode_scaled(jpeg, 320, &mut out) {
            Err(Error::Jpeg(why)) => why,
            other => panic!("{backend:?}: expected a JPEG error, got {other:?}"),
        }
    }

    /// Position of the SOF0 marker in a jpeg-encoder baseline JPEG.
    fn sof(jpeg: &[u8]) -> usize {
        jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap()
    }

    #[test]
    fn refuses_broken_truncated_oversized_and_exotic_jpegs() {
        let jpeg = bars_jpeg(64, 48, Layout::Sampled(SamplingFactor::F_2_2));
        let at = sof(&jpeg);
        for &backend in Backend::ALL {
            assert!(decode_error(backend, &[]).contains("empty"));
            assert!(decode_error(backend, b"not a jpeg at all").contains("SOI"));
            for len in [3, 100, jpeg.len() / 2, jpeg.len() - 1] {
                let why = decode_error(backend, &jpeg[..len]);
                assert!(why.contains("EOI"), "{backend:?} {len}: {why}");
            }
            // Larger than camhub handles (64 MP): refused from the header, before any
            // allocation for it.
            let mut huge = jpeg.clone();
            huge[at + 5..at + 9].copy_from_slice(&[0x23, 0x28, 0x23, 0x28]); // 9000x9000
            let why = decode_error(backend, &huge);
            assert!(why.contains("9000x9000"), "{backend:?}: {why}");
            let mut two = jpeg.clone();
            two[at + 9] = 2;
            assert!(decode_error(backend, &two).contains("2 colour components"));
            // A fourth component spec appended to the frame header.
            let sof_len = u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]);
            let mut cmyk = jpeg[..at + 2].to_vec();
            cmyk.extend_from_slice(&(sof_len + 3).to_be_bytes());
            cmyk.extend_from_slice(&jpeg[at + 4..at + 9]);
            cmyk.push(4);
            cmyk.extend_from_slice(&jpeg[at + 10..at + 19]);
            cmyk.extend_from_slice(&[4, 0x11, 0]);
            cmyk.extend_from_slice(&jpeg[at + 19..]);
            assert!(decode_error(backend, &cmyk).contains("CMYK"));
            let mut rgb = jpeg.clone();
            for (i, id) in [b'R', b'G', b'B'].into_iter().enumerate() {
                rgb[at + 10 + 3 * i] = id;
            }
            assert!(decode_error(backend, &rgb).contains("RGB"));
        }
    }

    /// The entropy-coded data cut short (EOI appended so the frame passes `jpeg::check`):
    /// libjpeg-turbo reports it; jpeg-decoder may fill the rest with grey, which is still
    /// a picture of the right size rather than a panic.
    #[test]
    fn scan_data_cut_short_is_an_error_or_a_picture() {
        let jpeg = bars_jpeg(640, 480, Layout::Sampled(SamplingFactor::F_2_1));
        let mut cut = jpeg[..jpeg.len() / 2].to_vec();
        cut.extend_from_slice(&[0xFF, 0xD9]);
        for &backend in Backend::ALL {
            let mut out = I420Buf::default();
            match Decoder::with_backend(backend).decode_scaled(&cut, 320, &mut out) {
                Ok(()) => {
                    assert_eq!(backend, Backend::JpegEncoder);
                    assert_eq!((out.width, out.height), (320, 240));
                }
                Err(e) => assert!(e.to_string().contains("640x480 at 1/2"), "{e}"),
            }
        }
    }

    /// Random damage to the headers and scan data never panics (the decoders are fed
    /// what `jpeg::check` lets through, so EOI stays intact).
    #[test]
    fn never_panics_on_corruptions() {
        let jpeg = bars_jpeg(64, 48, Layout::Restarts);
        let mut state: u32 = 0x2545_F491;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for &backend in Backend::ALL {
            let mut decoder = Decoder::with_backend(backend);
            let mut out = I420Buf::default();
            for _ in 0..1_500 {
                let mut bytes = jpeg.clone();
                for _ in 0..1 + next() % 4 {
                    let at = 2 + next() as usize % (bytes.len() - 4);
                    bytes[at] = next() as u8;
                }
                let _ = decoder.decode_scaled(&bytes, next() % 80, &mut out);
            }
            // Still decodes a good frame afterwards.
            decoder.decode_scaled(&jpeg, 32, &mut out).unwrap();
            assert_eq!((out.width, out.height), (32, 24));
        }
    }

    #[test]
    fn planes_shorter_than_declared_are_errors() {
        // A 4x4 picture: 16 luma samples, 2x2 chroma at 4:2:0 (2x4 at 4:2:2).
        let to_i420 = |y_len: usize, sub_y: usize| {
            let (y, c) = (vec![0u8; y_len], [0u8; 4]);
            let planes = Planes {
                width: 4,
                height: 4,
                step: 1,
                y: &y,
                y_stride: 4,
                chroma: Some(Chroma {
                    cb: &c,
                    cr: &c,
                    stride: 2,
                    sub_x: 2,
                    sub_y,
                }),
            };
            planes.to_i420(&mut I420Buf::default())
        };
        assert!(to_i420(16, 2).is_ok());
        assert!(to_i420(15, 2).is_err());
        assert!(to_i420(16, 1).is_err());
        assert!(to_i420(16, 3).is_err());
    }

    /// 4:4:4 and 4:2:2 chroma averaged to 4:2:0, odd sizes keeping their last column/row.
    #[test]
    fn chroma_is_averaged_to_420() {
        let y = [0u8; 9];
        #[rustfmt::skip]
        let cb = [
            10, 20, 30,
            50, 60, 70,
            90, 91, 92,
        ];
        let planes = Planes {
            width: 3,
            height: 3,
            step: 1,
            y: &y,
            y_stride: 3,
            chroma: Some(Chroma {
                cb: &cb,
                cr: &cb,
                stride: 3,
                sub_x: 1,
                sub_y: 1,
            }),
        };
        let mut out = I420Buf::default();
        planes.to_i420(&mut out).unwrap();
        assert_eq!(out.cb, [35, 50, 91, 92]);
        // 4:2:2: two chroma columns (the second covers the odd last pixel), three rows.
        let cb = [10, 20, 30, 40, 90, 91];
        let planes = Planes {
            chroma: Some(Chroma {
                cb: &cb,
                cr: &cb,
                stride: 2,
                sub_x: 2,
                sub_y: 1,
            }),
            ..planes
        };
        planes.to_i420(&mut out).unwrap();
        assert_eq!(out.cb, [20, 30, 90, 91]);
        assert_eq!(out.cr, out.cb);
    }
}
