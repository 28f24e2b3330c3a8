//! The libjpeg-turbo JPEG backend (cargo feature `turbojpeg`), used by
//! [`jpeg::Encoder`](crate::jpeg::Encoder) and
//! [`jpeg_decode::Decoder`](crate::jpeg_decode::Decoder) through [`Backend::TurboJpeg`].
//!
//! libjpeg-turbo's SIMD code (SSE2/AVX2 on x86, NEON on the Pi) makes it several times
//! faster than the pure-Rust default: see BENCHMARKS.md, "Encoders". It is built from the
//! source bundled with the `turbojpeg-sys` crate (cmake; nasm on x86_64 hosts), so the Pi
//! needs no system library. Output matches the other backend's contract: baseline (never
//! progressive), 4:2:0, the same IJG quality scale (1–100) and tables, JFIF full range.
//!
//! Callers ([`Encoder`](crate::jpeg::Encoder)) have already checked sizes and buffer
//! lengths; `turbojpeg` panics rather than errs on short planes, so that order matters.
//!
//! [`Backend::TurboJpeg`]: crate::jpeg::Backend::TurboJpeg

use crate::error::{Error, Result};
use crate::jpeg::I420;
use crate::jpeg_decode::{Chroma, Planes};
use bytes::Bytes;
use turbojpeg::{
    Colorspace, Compressor, Decompressor, Image, PixelFormat, ScalingFactor, Subsamp, YuvImage,
    YuvPlanesImage,
};

/// One stream's libjpeg-turbo state: the compressor handle and an output buffer reused
/// frame after frame.
pub(crate) struct TurboEncoder {
    /// Created on first use: `tj3Init` can fail (out of memory) and `Encoder::new` cannot.
    compressor: Option<Compressor>,
    /// Output buffer of libjpeg-turbo's worst-case size for `scratch_size`, zero-filled
    /// once per size. Only the pages a frame is written to become resident, so a 720p
    /// stream's ~4 MiB reservation costs about one frame's worth of RAM (tens of KiB).
    scratch: Vec<u8>,
    /// (width, height) that `scratch` was sized for.
    scratch_size: (u32, u32),
    /// Luma padded to even width and height, for odd-sized pictures only (see
    /// [`TurboEncoder::encode_i420`]).
    padded_luma: Vec<u8>,
}

impl std::fmt::Debug for TurboEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: that would print the whole scratch buffer.
        f.debug_struct("TurboEncoder")
            .field("ready", &self.compressor.is_some())
            .field("scratch_len_bytes", &self.scratch.len())
            .field("scratch_size", &self.scratch_size)
            .field("padded_luma_len_bytes", &self.padded_luma.len())
            .finish()
    }
}

impl TurboEncoder {
    pub(crate) fn new() -> TurboEncoder {
        TurboEncoder {
            compressor: None,
            scratch: Vec::new(),
            scratch_size: (0, 0),
            padded_luma: Vec::new(),
        }
    }

    /// Encodes interleaved RGB, `width × height × 3` bytes (length checked by the caller).
    pub(crate) fn encode_rgb(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        quality: u8,
    ) -> Result<Bytes> {
        let image = Image {
            pixels: rgb,
            width: width as usize,
            pitch: width as usize * 3,
            height: height as usize,
            format: PixelFormat::RGB,
        };
        self.run(width, height, quality, |compressor, out| {
            compressor.compress_to_slice(image, out)
        })
    }

    /// Encodes a planar 4:2:0 picture (plane lengths checked by the caller) without
    /// colour conversion or resampling: the planes go straight to the DCT.
    ///
    /// libjpeg-turbo reads luma in whole 2×2 blocks, so for an odd width or height it
    /// reads one column or row beyond a tightly packed plane (`turbojpeg` panics first).
    /// Such pictures are rare (cameras and the test pattern use even sizes); their luma
    /// is copied into `padded_luma` with the last column and row repeated.
    pub(crate) fn encode_i420(&mut self, image: &I420<'_>, quality: u8) -> Result<Bytes> {
        let (chroma_w, _) = I420::chroma_size(image.width, image.height);
        let (width, height) = (image.width as usize, image.height as usize);
        let mut padded_luma = std::mem::take(&mut self.padded_luma);
        let (y_plane, y_stride) = if width % 2 == 0 && height % 2 == 0 {
            (image.y, width)
        } else {
            pad_to_even(image.y, width, height, &mut padded_luma);
            (&padded_luma[..], width.next_multiple_of(2))
        };
        let planes = YuvPlanesImage {
            y_plane,
            u_plane: image.cb,
            v_plane: image.cr,
            width,
            height,
            y_stride,
            u_stride: chroma_w as usize,
            v_stride: chroma_w as usize,
            subsamp: Subsamp::Sub2x2,
        };
        let result = self.run(image.width, image.height, quality, |compressor, out| {
            compressor.compress_yuv_planes_to_slice(&planes, out)
        });
        self.padded_luma = padded_luma;
        result
    }

    /// Configures the compressor (4:2:0, baseline, `quality`), runs `compress` into the
    /// scratch buffer and copies the result out as `Bytes` (a memcpy of one JPEG, a few
    /// microseconds, against milliseconds of encoding).
    fn run(
        &mut self,
        width: u32,
        height: u32,
        quality: u8,
        compress: impl FnOnce(&mut Compressor, &mut [u8]) -> turbojpeg::Result<usize>,
    ) -> Result<Bytes> {
        let fail = |what: &str, e: turbojpeg::Error| {
            Error::Jpeg(format!("libjpeg-turbo {what} for {width}x{height}: {e}"))
        };
        if self.scratch_size != (width, height) {
            let len =
                turbojpeg::compressed_buf_len(width as usize, height as usize, Subsamp::Sub2x2)
                    .map_err(|e| fail("buffer size", e))?;
            // A fresh zeroed allocation (calloc) rather than `resize`: untouched pages
            // stay unmapped.
            self.scratch = vec![0; len];
            self.scratch_size = (width, height);
        }
        let compressor = match &mut self.compressor {
            Some(compressor) => compressor,
            none => none.insert(Compressor::new().map_err(|e| fail("init", e))?),
        };
        // Set every time: cheap, and a reused compressor keeps no surprises.
        compressor
            .set_quality(i32::from(quality))
            .map_err(|e| fail("quality", e))?;
        compressor
            .set_subsamp(Subsamp::Sub2x2)
            .map_err(|e| fail("subsampling", e))?;
        let len = compress(compressor, &mut self.scratch).map_err(|e| fail("encoding", e))?;
        Ok(Bytes::copy_from_slice(&self.scratch[..len]))
    }
}

/// Copies a `width × height` plane into `out` with even width and height, repeating the
/// last column and row (what libjpeg does to fill partial blocks itself).
fn pad_to_even(plane: &[u8], width: usize, height: usize, out: &mut Vec<u8>) {
    let padded_width = width.next_multiple_of(2);
    out.clear();
    for row in plane.chunks_exact(width).take(height) {
        out.extend_from_slice(row);
        if padded_width > width {
            out.push(row[width - 1]);
        }
    }
    if height % 2 == 1 {
        out.extend_from_within(out.len() - padded_width..);
    }
}

/// One stream's libjpeg-turbo decompressor and the buffer it decodes into, reused frame
/// after frame (the decoding half of [`jpeg_decode`](crate::jpeg_decode)).
pub(crate) struct TurboDecoder {
    /// Created on first use, like [`TurboEncoder`]'s compressor.
    decompressor: Option<Decompressor>,
    /// The planes of the last picture, in libjpeg-turbo's YUV layout.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for TurboDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurboDecoder")
            .field("ready", &self.decompressor.is_some())
            .field("scratch_len_bytes", &self.scratch.len())
            .finish()
    }
}

impl TurboDecoder {
    pub(crate) fn new() -> TurboDecoder {
        TurboDecoder {
            decompressor: None,
            scratch: Vec::new(),
        }
    }

    /// Decompresses `jpeg` at 1/`denom` scale (`width × height`, as the caller computed
    /// it from the header it checked) into the JPEG's own Y, Cb and Cr planes: the scaled
    /// IDCT, then no upsampling and no colour conversion (`tj3DecompressToYUV8`).
    pub(crate) fn decode_scaled(
        &mut self,
        jpeg: &[u8],
        denom: u32,
        width: u32,
        height: u32,
    ) -> Result<Planes<'_>> {
        let layout = match self.decompress(jpeg, denom, width as usize, height as usize) {
            Ok(layout) => layout,
            Err(e) => {
                // A handle that failed mid-frame can keep failing on good frames (seen
                // with corrupt quantisation tables): start the next frame afresh.
                self.decompressor = None;
                return Err(e);
            }
        };
        let (y_width, y_height) = layout.y_size();
        let (uv_width, uv_height) = layout.uv_size();
        let (y, rest) = self
            .scratch
            .split_at((y_width * y_height).min(self.scratch.len()));
        let chroma = chroma_subsampling(layout.subsamp).map(|(sub_x, sub_y)| {
            let (cb, cr) = rest.split_at((uv_width * uv_height).min(rest.len()));
            Chroma {
                cb,
                cr,
                stride: uv_width,
                sub_x,
                sub_y,
            }
        });
        Ok(Planes {
            width,
            height,
            step: 1,
            y,
            y_stride: y_width,
            chroma,
        })
    }

    /// Decompresses into `scratch`; returns its layout.
    fn decompress(&mut self, jpeg: &[u8], denom: u32, w: usize, h: usize) -> Result<YuvImage<()>> {
        let fail =
            |what: &str, e: turbojpeg::Error| Error::Jpeg(format!("libjpeg-turbo {what}: {e}"));
        let decompressor = match &mut self.decompressor {
            Some(decompressor) => decompressor,
            none => none.insert(Decompressor::new().map_err(|e| fail("init", e))?),
        };
        let header = decompressor
            .read_header(jpeg)
            .map_err(|e| fail("header", e))?;
        if !matches!(header.colorspace, Colorspace::YCbCr | Colorspace::Gray) {
            return Err(Error::Jpeg(format!(
                "{:?} JPEG: only YCbCr and greyscale decode to YUV",
                header.colorspace
            )));
        }
        if header.subsamp != Subsamp::Gray && chroma_subsampling(header.subsamp).is_none() {
            return Err(Error::Jpeg(format!(
                "chroma subsampling {:?} cannot be decoded to YUV",
                header.subsamp
            )));
        }
        let factor = ScalingFactor::new(1, denom as usize);
        if (factor.scale(header.width), factor.scale(header.height)) != (w, h) {
            return Err(Error::Jpeg(format!(
                "header says {}x{}, not {w}x{h} at 1/{denom}",
                header.width, header.height
            )));
        }
        decompressor
            .set_scaling_factor(factor)
            .map_err(|e| fail("scaling", e))?;
        // Rows unpadded (align 1): plane widths are the scaled width rounded up to the
        // subsampling (luma) or divided by it (chroma), as `tj3YUVPlaneWidth` lays them out.
        let layout = YuvImage {
            pixels: (),
            width: w,
            align: 1,
            height: h,
            subsamp: header.subsamp,
        };
        let len = turbojpeg::yuv_pixels_len(w, 1, h, header.subsamp)
            .map_err(|e| fail("buffer size", e))?;
        // `resize` keeps the allocation: after the first frame of a size, nothing allocates.
        self.scratch.resize(len, 0);
        let output = YuvImage {
            pixels: &mut self.scratch[..],
            width: w,
            align: 1,
            height: h,
            subsamp: header.subsamp,
        };
        decompressor
            .decompress_to_yuv(jpeg, output)
            .map_err(|e| fail("decoding", e))?;
        Ok(layout)
    }
}

/// Pixels per chroma sample (across, down) of a YCbCr subsampling libjpeg-turbo can
/// decode to planes; `None` for greyscale and unusual ones.
fn chroma_subsampling(subsamp: Subsamp) -> Option<(usize, usize)> {
    match subsamp {
        Subsamp::None => Some((1, 1)),
        Subsamp::Sub2x1 => Some((2, 1)),
        Subsamp::Sub2x2 => Some((2, 2)),
        Subsamp::Sub1x2 => Some((1, 2)),
        Subsamp::Sub4x1 => Some((4, 1)),
        Subsamp::Sub1x4 => Some((1, 4)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::jpeg::{Backend, Encoder, I420};

    #[test]
    fn pad_to_even_repeats_the_last_column_and_row() {
        let mut out = Vec::new();
        super::pad_to_even(&[1, 2, 3, 4, 5, 6], 3, 2, &mut out);
        assert_eq!(out, [1, 2, 3, 3, 4, 5, 6, 6]);
        super::pad_to_even(&[1, 2, 3, 4], 2, 1, &mut out);
        assert_eq!(out, [1, 2, 1, 2]);
        super::pad_to_even(&[7, 8, 9], 3, 1, &mut out);
        assert_eq!(out, [7, 8, 9, 9, 7, 8, 9, 9]);
    }

    /// The DQT segments (quantisation tables) of a JPEG, in order.
    fn quant_tables(jpeg: &[u8]) -> Vec<Vec<u8>> {
        let mut tables = Vec::new();
        let mut pos = 2;
        while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF {
            let marker = jpeg[pos + 1];
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if marker == 0xDB {
                tables.push(jpeg[pos + 4..pos + 2 + len].to_vec());
            }
            if marker == 0xDA {
                break;
            }
            pos += 2 + len;
        }
        tables
    }

    /// "Same quality semantics" made concrete: at every quality both backends write the
    /// same quantisation tables (IJG scaling of the Annex K tables), so switching backend
    /// changes speed, not how a quality setting looks.
    #[test]
    fn both_backends_use_the_same_quantisation_tables() {
        let (width, height) = (48, 32);
        let (cw, ch) = I420::chroma_size(width, height);
        let y: Vec<u8> = (0..width * height).map(|i| (i * 7 % 251) as u8).collect();
        let c = vec![128; (cw * ch) as usize];
        let image = I420 {
            width,
            height,
            y: &y,
            cb: &c,
            cr: &c,
        };
        for quality in [1, 10, 50, 80, 95, 100] {
            let tables: Vec<_> = [Backend::JpegEncoder, Backend::TurboJpeg]
                .into_iter()
                .map(|backend| {
                    let jpeg = Encoder::with_backend(quality, backend)
                        .encode_i420(&image)
                        .unwrap();
                    // One DQT per table or one for both: the payloads concatenate alike.
                    quant_tables(&jpeg).concat()
                })
                .collect();
            assert!(!tables[0].is_empty(), "no DQT at quality {quality}");
            assert_eq!(tables[0], tables[1], "quality {quality}");
        }
    }
}
