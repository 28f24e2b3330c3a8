//! JPEG encoder benchmark: every backend compiled in ([`Backend::ALL`]) on the same
//! pictures, in the same run, on each path a frame takes through camhub. Prints Markdown
//! tables for BENCHMARKS.md ("Encoders", "Rendition paths"); measures, asserts nothing.
//!
//! ```sh
//! cargo bench --bench encode                         # jpeg-encoder only
//! cargo bench --bench encode --features turbojpeg    # jpeg-encoder and libjpeg-turbo
//! cargo bench --bench encode -- --frames 200         # more samples (default 60)
//! ```
//!
//! Paths, each at 640×480 and 1280×720, quality [`DEFAULT_QUALITY`]:
//! - **I420**: planar 4:2:0 straight to the encoder (test pattern, OFFLINE placeholder).
//! - **RGB**: interleaved RGB, colour conversion inside the encoder.
//! - **YUYV → JPEG**: a raw V4L2 webcam frame (packed 4:2:2, limited range) converted
//!   by [`I420Buf::from_packed_422`], then encoded.
//! - **H.264 → JPEG**: a picture decoded by openh264 (padded rows, limited range),
//!   [`I420Buf::resample_from`] at the same size, then encoded; the openh264 decode of
//!   the same frames is timed separately, so the JPEG share of the RTSP path is visible.
//!
//! Rendition paths (issue #12), each source at 640×480, 1280×720 and 1920×1080 made
//! 320 px wide, decoder and encoder of the same backend:
//! - **passthrough** (a camera that sends JPEG): [`jpeg_decode::Decoder::decode_scaled`]
//!   at the smallest DCT scale at least 320 wide, [`I420Buf::resample_from`] to 320, encode;
//!   from a 4:2:0 and a 4:2:2 source JPEG, and once without DCT scaling for comparison.
//! - **decoding source** (raw/H.264 cameras, already I420): resample to 320, encode.
//!
//! The picture is camera-like rather than flat: colour bars and text as in the test
//! pattern, a lit gradient with fine texture below, and sensor-like noise on every
//! sample. Samples are interleaved across backends (one frame of each in turn), so load
//! from other jobs on a shared machine hits all of them alike.

use camhub::draw::{Canvas, Color};
use camhub::jpeg::{
    self, Backend, Encoder, I420Buf, I420Strided, Packed422, YuvRange, DEFAULT_QUALITY, I420,
};
use camhub::jpeg_decode;
use openh264::formats::YUVSource as _;
use std::time::{Duration, Instant};

const SIZES: [(u32, u32); 2] = [(640, 480), (1280, 720)];
/// Frames per second that a "% of one core" column assumes: camhub's usual camera rate.
const FPS: f64 = 15.0;
/// H.264 frames encoded (untimed) and then decoded (timed) per size.
const H264_FRAMES: usize = 30;

fn main() {
    let frames = parse_frames();
    println!("{}", machine_line());
    println!(
        "Backends: {}; {frames} frames per row (median and p90 of the per-frame times), \
         quality {DEFAULT_QUALITY}.\n",
        Backend::ALL
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| path | size | backend | ms/frame median | p90 | % of a core at {FPS} fps | \
         bytes/frame | PSNR dB | vs jpeg-encoder |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|");
    for (width, height) in SIZES {
        bench_size(width, height, frames);
    }
    println!();
    bench_renditions(frames);
}

/// `--frames N` (cargo bench also passes `--bench`, which is ignored).
fn parse_frames() -> usize {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter()
        .position(|a| a == "--frames")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--frames takes a number"))
        .unwrap_or(60)
}

/// CPU model, cores and load: enough to tell two runs' machines apart.
fn machine_line() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name") || l.starts_with("Model"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    format!(
        "Machine: {model}, {cores} cores ({}), load average {load} at start.",
        std::env::consts::ARCH
    )
}

/// One timed row: a name, a backend, and a closure that produces one JPEG.
struct Case<'a> {
    path: &'static str,
    backend: Backend,
    run: Box<dyn FnMut() -> bytes::Bytes + 'a>,
    /// The picture the JPEG should look like (RGB), for the PSNR column.
    reference_rgb: &'a [u8],
    times: Vec<Duration>,
    bytes: Vec<usize>,
}

fn bench_size(width: u32, height: u32, frames: usize) {
    let scene = Scene::new(width, height);
    let h264 = H264::new(&scene);
    let decoded = h264.first_picture();
    let mut cases: Vec<Case<'_>> = Vec::new();
    for &backend in Backend::ALL {
        let mut enc = Encoder::with_backend(DEFAULT_QUALITY, backend);
        let image = scene.i420.as_i420();
        cases.push(Case {
            path: "I420",
            backend,
            run: Box::new(move || enc.encode_i420(&image).expect("encodes")),
            reference_rgb: &scene.rgb,
            times: Vec::new(),
            bytes: Vec::new(),
        });
        let mut enc = Encoder::with_backend(DEFAULT_QUALITY, backend);
        let rgb = &scene.rgb;
        cases.push(Case {
            path: "RGB",
            backend,
            run: Box::new(move || enc.encode_rgb(rgb, width, height).expect("encodes")),
            reference_rgb: &scene.rgb,
            times: Vec::new(),
            bytes: Vec::new(),
        });
        let mut enc = Encoder::with_backend(DEFAULT_QUALITY, backend);
        let mut buf = I420Buf::default();
        let yuyv = &scene.yuyv;
        cases.push(Case {
            path: "YUYV → JPEG",
            backend,
            run: Box::new(move || {
                buf.from_packed_422(
                    yuyv,
                    width,
                    height,
                    width as usize * 2,
                    Packed422::Yuyv,
                    YuvRange::Limited,
                )
                .expect("converts");
                enc.encode_i420(&buf.as_i420()).expect("encodes")
            }),
            reference_rgb: &scene.rgb,
            times: Vec::new(),
            bytes: Vec::new(),
        });
        let mut enc = Encoder::with_backend(DEFAULT_QUALITY, backend);
        let mut buf = I420Buf::default();
        let src = decoded.as_strided();
        cases.push(Case {
            path: "H.264 → JPEG",
            backend,
            run: Box::new(move || {
                buf.resample_from(&src, width, height, YuvRange::Limited)
                    .expect("resamples");
                enc.encode_i420(&buf.as_i420()).expect("encodes")
            }),
            reference_rgb: &decoded.rgb,
            times: Vec::new(),
            bytes: Vec::new(),
        });
    }

    // Warm up (allocations, caches), then interleave: frame i of every case in turn.
    for case in &mut cases {
        for _ in 0..3 {
            (case.run)();
        }
    }
    let mut psnr = vec![0.0; cases.len()];
    for (case, psnr) in cases.iter_mut().zip(&mut psnr) {
        let jpeg = (case.run)();
        assert_eq!(jpeg::check(&jpeg).expect("valid JPEG"), (width, height));
        *psnr = psnr_db(&decode_rgb(&jpeg), case.reference_rgb);
    }
    for _ in 0..frames {
        for case in &mut cases {
            let start = Instant::now();
            let jpeg = (case.run)();
            case.times.push(start.elapsed());
            case.bytes.push(jpeg.len());
        }
    }

    let medians: Vec<f64> = cases.iter().map(|c| percentile_ms(&c.times, 0.5)).collect();
    for (i, case) in cases.iter().enumerate() {
        let baseline = cases
            .iter()
            .position(|c| c.path == case.path && c.backend == Backend::JpegEncoder)
            .map_or(f64::NAN, |j| medians[j]);
        let bytes = case.bytes.iter().sum::<usize>() / case.bytes.len().max(1);
        println!(
            "| {} | {width}×{height} | {} | {:.2} | {:.2} | {:.1} | {bytes} | {:.1} | {:.1}× |",
            case.path,
            case.backend.name(),
            medians[i],
            percentile_ms(&case.times, 0.9),
            medians[i] * FPS / 10.0,
            psnr[i],
            baseline / medians[i],
        );
    }
    let decode_ms = percentile_ms(&h264.decode_times(), 0.5);
    println!(
        "| H.264 decode (openh264, for scale) | {width}×{height} | – | {decode_ms:.2} | – | \
         {:.1} | {} (H.264) | – | – |",
        decode_ms * FPS / 10.0,
        h264.mean_bytes(),
    );
}

/// Source sizes of the rendition paths, and the width they are made (issue #12).
const RENDITION_SIZES: [(u32, u32); 3] = [(640, 480), (1280, 720), (1920, 1080)];
const RENDITION_WIDTH_PX: u32 = 320;

/// One timed rendition row; `run` returns the rendition and the time spent decoding.
struct RenditionCase<'a> {
    path: &'static str,
    backend: Backend,
    run: Box<dyn FnMut() -> (bytes::Bytes, Duration) + 'a>,
    times: Vec<Duration>,
    decode_times: Vec<Duration>,
    bytes: Vec<usize>,
}

fn bench_renditions(frames: usize) {
    println!(
        "Rendition paths: each source made {RENDITION_WIDTH_PX} px wide, quality \
         {DEFAULT_QUALITY}, decoder and encoder of the same backend; {frames} frames per row.\n"
    );
    println!(
        "| path | source | backend | µs/frame median | p90 | of which decode | \
         % of a core at {FPS} fps | bytes/frame | PSNR dB | vs pure Rust |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (width, height) in RENDITION_SIZES {
        bench_rendition_size(width, height, frames);
    }
}

/// The scene as a camera's JPEG (pure-Rust encoder, so both backends decode the same
/// bytes), with the given chroma subsampling.
fn camera_jpeg(scene: &Scene, sampling: jpeg_encoder::SamplingFactor) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, DEFAULT_QUALITY);
    encoder.set_sampling_factor(sampling);
    let (w, h) = (scene.width as u16, scene.height as u16);
    encoder
        .encode(&scene.rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .expect("encodes");
    out
}

fn strided(buf: &I420Buf) -> I420Strided<'_> {
    let (chroma_w, _) = I420::chroma_size(buf.width, buf.height);
    I420Strided {
        width: buf.width,
        height: buf.height,
        y: &buf.y,
        y_stride: buf.width as usize,
        cb: &buf.cb,
        cr: &buf.cr,
        chroma_stride: chroma_w as usize,
    }
}

fn bench_rendition_size(width: u32, height: u32, frames: usize) {
    use jpeg_encoder::SamplingFactor;
    let scene = Scene::new(width, height);
    let (out_w, out_h) = jpeg::fit_within((width, height), Some((RENDITION_WIDTH_PX, u32::MAX)));
    // PSNR reference: the pristine picture, box-filtered to the rendition size.
    let mut reference = I420Buf::default();
    reference
        .resample_from(&strided(&scene.i420), out_w, out_h, YuvRange::Full)
        .expect("resamples");
    let reference_rgb = i420_to_rgb(&reference);
    let jpeg_420 = camera_jpeg(&scene, SamplingFactor::F_2_2);
    let jpeg_422 = camera_jpeg(&scene, SamplingFactor::F_2_1);
    let mut cases: Vec<RenditionCase<'_>> = Vec::new();
    for &backend in Backend::ALL {
        let passthrough = [
            ("passthrough: JPEG 4:2:0", &jpeg_420, RENDITION_WIDTH_PX),
            ("passthrough: JPEG 4:2:2", &jpeg_422, RENDITION_WIDTH_PX),
            (
                "passthrough: JPEG 4:2:0, full-size decode (for scale)",
                &jpeg_420,
                u32::MAX,
            ),
        ];
        for (path, source, min_width) in passthrough {
            let mut decoder = jpeg_decode::Decoder::with_backend(backend);
            let mut enc = Encoder::with_backend(DEFAULT_QUALITY, backend);
            let (mut decoded, mut small) = (I420Buf::default(), I420Buf::default());
            cases.push(RenditionCase {
                path,
                backend,
                run: Box::new(move || {
                    let start = Instant::now();
                    decoder
                        .decode_scaled(source, min_width, &mut decoded)
                        .expect("decodes");
                    let decode = start.elapsed();
                    small
                        .resample_from(&strided(&decoded), out_w, out_h, YuvRange::Full)
                        .expect("resamples");
                    (enc.encode_i420(&small.as_i420()).expect("encodes"), decode)
                }),
                times: Vec::new(),
                decode_times: Vec::new(),
                bytes: Vec::new(),
            });
        }
        let mut enc = Encoder::with_backend(DEFAULT_QUALITY, backend);
        let mut small = I420Buf::default();
        let src = strided(&scene.i420);
        cases.push(RenditionCase {
            path: "decoding source: I420",
            backend,
            run: Box::new(move || {
                small
                    .resample_from(&src, out_w, out_h, YuvRange::Full)
                    .expect("resamples");
                let jpeg = enc.encode_i420(&small.as_i420()).expect("encodes");
                (jpeg, Duration::ZERO)
            }),
            times: Vec::new(),
            decode_times: Vec::new(),
            bytes: Vec::new(),
        });
    }

    // Warm up, check once, then interleave as in `bench_size`.
    let mut psnr = vec![0.0; cases.len()];
    for (case, psnr) in cases.iter_mut().zip(&mut psnr) {
        for _ in 0..3 {
            (case.run)();
        }
        let (jpeg, _) = (case.run)();
        assert_eq!(jpeg::check(&jpeg).expect("valid JPEG"), (out_w, out_h));
        *psnr = psnr_db(&decode_rgb(&jpeg), &reference_rgb);
    }
    for _ in 0..frames {
        for case in &mut cases {
            let start = Instant::now();
            let (jpeg, decode) = (case.run)();
            case.times.push(start.elapsed());
            case.decode_times.push(decode);
            case.bytes.push(jpeg.len());
        }
    }

    let medians: Vec<f64> = cases.iter().map(|c| percentile_ms(&c.times, 0.5)).collect();
    for (i, case) in cases.iter().enumerate() {
        let baseline = cases
            .iter()
            .position(|c| c.path == case.path && c.backend == Backend::JpegEncoder)
            .map_or(f64::NAN, |j| medians[j]);
        let decode = match percentile_ms(&case.decode_times, 0.5) {
            ms if ms > 0.0 => format!("{:.0}", ms * 1000.0),
            _ => "–".to_string(),
        };
        let bytes = case.bytes.iter().sum::<usize>() / case.bytes.len().max(1);
        println!(
            "| {} | {width}×{height} | {} | {:.0} | {:.0} | {decode} | {:.1} | {bytes} | {:.1} | \
             {:.1}× |",
            case.path,
            if case.backend == Backend::JpegEncoder {
                "jpeg-decoder + jpeg-encoder"
            } else {
                case.backend.name()
            },
            medians[i] * 1000.0,
            percentile_ms(&case.times, 0.9) * 1000.0,
            medians[i] * FPS / 10.0,
            psnr[i],
            baseline / medians[i],
        );
    }
}

fn percentile_ms(times: &[Duration], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    sorted[(last as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

fn decode_rgb(jpeg: &[u8]) -> Vec<u8> {
    jpeg_decoder::Decoder::new(jpeg).decode().expect("decodes")
}

/// Peak signal-to-noise ratio of `a` against `reference`, in dB (higher is closer).
fn psnr_db(a: &[u8], reference: &[u8]) -> f64 {
    assert_eq!(a.len(), reference.len());
    let sum_sq: f64 = a
        .iter()
        .zip(reference)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = sum_sq / a.len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// Small reproducible PRNG (xorshift32): noise without a dependency.
struct Noise(u32);

impl Noise {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// Roughly Gaussian (sum of two uniforms), in `-amplitude..=amplitude`.
    fn sample(&mut self, amplitude: i32) -> i32 {
        let span = (amplitude + 1) as u32;
        (self.next() % span) as i32 + (self.next() % span) as i32 - amplitude
    }
}

/// The benchmark picture in every input format, all showing the same image.
struct Scene {
    width: u32,
    height: u32,
    /// Full range, tightly packed.
    i420: I420Buf,
    /// The same, as RGB (BT.601 full range, as JFIF decoders convert).
    rgb: Vec<u8>,
    /// The same, as a webcam delivers it: packed YUYV, limited range.
    yuyv: Vec<u8>,
}

impl Scene {
    fn new(width: u32, height: u32) -> Scene {
        const BACKGROUND: Color = Color::grey(111);
        let mut canvas = Canvas::new(width, height, BACKGROUND).expect("canvas");
        // The test pattern's furniture: colour bars in the top quarter, text lines.
        let bars = [
            Color::rgb(192, 192, 192),
            Color::rgb(192, 192, 0),
            Color::rgb(0, 192, 192),
            Color::rgb(0, 192, 0),
            Color::rgb(192, 0, 192),
            Color::rgb(192, 0, 0),
            Color::rgb(0, 0, 192),
        ];
        for (i, color) in (0u32..).zip(bars) {
            let x = i * width / 7;
            canvas.fill_rect(x, 0, (i + 1) * width / 7 - x, height / 4, color);
        }
        let scale = (height / 240).max(1);
        canvas.draw_text(8, height / 4 + 8, "Front door", 2 * scale, Color::WHITE);
        canvas.draw_text(
            8,
            height - 24 * scale,
            "2025-01-01 12:34:56.789",
            scale,
            Color::WHITE,
        );

        // Everything still background becomes a lit, textured "scene".
        let src = canvas.as_i420();
        let (cw, ch) = I420::chroma_size(width, height);
        let mut noise = Noise(0x9E37_79B9 ^ width);
        let mut y = src.y.to_vec();
        for (i, v) in y.iter_mut().enumerate() {
            let (x, row) = ((i as u32 % width) as f64, (i as u32 / width) as f64);
            let mut value = f64::from(*v);
            if *v == BACKGROUND.y {
                let (fx, fy) = (x / f64::from(width), row / f64::from(height));
                value = 70.0 + 90.0 * fy + 30.0 * (fx * 7.0 + (fy * 11.0).sin()).sin()
                    // Fine texture (foliage, brick): what costs JPEG bits in real scenes.
                    + 14.0 * (x * 0.41).sin() * (row * 0.37).sin()
                    + 8.0 * ((x + row) * 0.9).sin();
            }
            *v = (value as i32 + noise.sample(4)).clamp(0, 255) as u8;
        }
        let mut chroma = |plane: &[u8], phase: f64| -> Vec<u8> {
            plane
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let (x, row) = ((i as u32 % cw) as f64, (i as u32 / cw) as f64);
                    let value = if c == 128 && row >= f64::from(ch) / 4.0 {
                        128.0 + 18.0 * (x * 0.02 + phase).sin() + 12.0 * (row * 0.03).cos()
                    } else {
                        f64::from(c)
                    };
                    (value as i32 + noise.sample(2)).clamp(0, 255) as u8
                })
                .collect()
        };
        let cb = chroma(src.cb, 0.0);
        let cr = chroma(src.cr, 1.7);
        let i420 = I420Buf {
            width,
            height,
            y,
            cb,
            cr,
        };
        let rgb = i420_to_rgb(&i420);
        let yuyv = to_yuyv_limited(&i420);
        Scene {
            width,
            height,
            i420,
            rgb,
            yuyv,
        }
    }

    /// The picture in limited range with padded rows, as an H.264 encoder wants it.
    fn limited_planes(&self) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let to_luma = |v: &u8| (16 + u32::from(*v) * 219 / 255) as u8;
        let to_chroma = |v: &u8| (128 + (i32::from(*v) - 128) * 224 / 255) as u8;
        (
            self.i420.y.iter().map(to_luma).collect(),
            self.i420.cb.iter().map(to_chroma).collect(),
            self.i420.cr.iter().map(to_chroma).collect(),
        )
    }
}

/// BT.601 full-range YCbCr → RGB, chroma shared by each 2×2 block.
fn i420_to_rgb(image: &I420Buf) -> Vec<u8> {
    let (w, h) = (image.width as usize, image.height as usize);
    let cw = w.div_ceil(2);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        for x in 0..w {
            let y = f64::from(image.y[row * w + x]);
            let cb = f64::from(image.cb[(row / 2) * cw + x / 2]) - 128.0;
            let cr = f64::from(image.cr[(row / 2) * cw + x / 2]) - 128.0;
            for v in [
                y + 1.402 * cr,
                y - 0.344_136 * cb - 0.714_136 * cr,
                y + 1.772 * cb,
            ] {
                rgb.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    rgb
}

/// Full-range I420 → packed YUYV in limited range (what a UVC webcam sends).
fn to_yuyv_limited(image: &I420Buf) -> Vec<u8> {
    let (w, h) = (image.width as usize, image.height as usize);
    let cw = w.div_ceil(2);
    let luma = |v: u8| (16 + u32::from(v) * 219 / 255) as u8;
    let chroma = |v: u8| (128 + (i32::from(v) - 128) * 224 / 255) as u8;
    let mut out = Vec::with_capacity(w * h * 2);
    for row in 0..h {
        for pair in 0..w / 2 {
            let c = (row / 2) * cw + pair;
            out.extend_from_slice(&[
                luma(image.y[row * w + 2 * pair]),
                chroma(image.cb[c]),
                luma(image.y[row * w + 2 * pair + 1]),
                chroma(image.cr[c]),
            ]);
        }
    }
    out
}

/// The scene as an H.264 stream (openh264 encoder, ~2 Mbit/s like an IP camera's main
/// stream), so the H.264 path starts from what a decoder really hands camhub.
struct H264 {
    width: u32,
    height: u32,
    /// One access unit per frame; the first carries SPS/PPS and an IDR picture.
    frames: Vec<Vec<u8>>,
}

/// A decoded H.264 picture, copied out of the decoder with its row padding.
struct DecodedPicture {
    width: u32,
    height: u32,
    y: Vec<u8>,
    cb: Vec<u8>,
    cr: Vec<u8>,
    y_stride: usize,
    chroma_stride: usize,
    /// What it shows, converted to full-range RGB (the PSNR reference).
    rgb: Vec<u8>,
}

impl DecodedPicture {
    fn as_strided(&self) -> I420Strided<'_> {
        I420Strided {
            width: self.width,
            height: self.height,
            y: &self.y,
            y_stride: self.y_stride,
            cb: &self.cb,
            cr: &self.cr,
            chroma_stride: self.chroma_stride,
        }
    }
}

impl H264 {
    fn new(scene: &Scene) -> H264 {
        use openh264::encoder::{
            BitRate, Encoder as H264Encoder, EncoderConfig, FrameRate, IntraFramePeriod,
            RateControlMode,
        };
        use openh264::formats::YUVSlices;
        use openh264::OpenH264API;
        // Bitrate mode without frame skipping, a keyframe every second: closer to a
        // camera's stream than openh264's defaults (quality mode, 120 kbit/s).
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(2_000_000))
            .max_frame_rate(FrameRate::from_hz(FPS as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .skip_frames(false)
            .background_detection(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(FPS as u32));
        let mut encoder = H264Encoder::with_api_config(OpenH264API::from_source(), config)
            .expect("openh264 encoder");
        let (y, cb, cr) = scene.limited_planes();
        let (w, h) = (scene.width as usize, scene.height as usize);
        let cw = w.div_ceil(2);
        let mut noise = Noise(0x1234_5678);
        let mut frames = Vec::with_capacity(H264_FRAMES);
        // The camera pans 2 px per frame (rows rotate), with fresh sensor noise each
        // frame, so P-frames carry motion and residuals.
        let pan = |plane: &[u8], row_len: usize, shift: usize| -> Vec<u8> {
            plane
                .chunks_exact(row_len)
                .flat_map(|row| row[shift % row_len..].iter().chain(&row[..shift % row_len]))
                .copied()
                .collect()
        };
        for frame in 0..H264_FRAMES {
            let y: Vec<u8> = pan(&y, w, 2 * frame)
                .into_iter()
                .map(|v| (i32::from(v) + noise.sample(3)).clamp(16, 235) as u8)
                .collect();
            let (cb, cr) = (pan(&cb, cw, frame), pan(&cr, cw, frame));
            let source = YUVSlices::new((&y[..], &cb[..], &cr[..]), (w, h), (w, cw, cw));
            frames.push(encoder.encode(&source).expect("H.264 encodes").to_vec());
        }
        H264 {
            width: scene.width,
            height: scene.height,
            frames,
        }
    }

    fn mean_bytes(&self) -> usize {
        self.frames.iter().map(Vec::len).sum::<usize>() / self.frames.len()
    }

    fn first_picture(&self) -> DecodedPicture {
        let mut decoder = openh264::decoder::Decoder::new().expect("openh264 decoder");
        let picture = decoder
            .decode(&self.frames[0])
            .expect("decodes")
            .expect("a picture");
        let (y_stride, chroma_stride, _) = picture.strides();
        let (width, height) = (self.width, self.height);
        let mut decoded = DecodedPicture {
            width,
            height,
            y: picture.y().to_vec(),
            cb: picture.u().to_vec(),
            cr: picture.v().to_vec(),
            y_stride,
            chroma_stride,
            rgb: Vec::new(),
        };
        let mut full = I420Buf::default();
        full.resample_from(&decoded.as_strided(), width, height, YuvRange::Limited)
            .expect("resamples");
        decoded.rgb = i420_to_rgb(&full);
        decoded
    }

    /// Time to decode each frame of the stream, in order.
    fn decode_times(&self) -> Vec<Duration> {
        let mut decoder = openh264::decoder::Decoder::new().expect("openh264 decoder");
        self.frames
            .iter()
            .map(|frame| {
                let start = Instant::now();
                let picture = decoder.decode(frame).expect("decodes");
                let elapsed = start.elapsed();
                assert!(picture.is_some_and(|p| p.dimensions().0 == self.width as usize));
                elapsed
            })
            .collect()
    }
}
