//! Pictures camhub draws itself: a planar YCbCr [`Canvas`] with rectangles and 8×8
//! bitmap text, and the OFFLINE placeholder frame ([`placeholder_jpeg`]) viewers get
//! while a stream is not live. The test pattern (`source/pattern.rs`) draws with it too.
//!
//! The canvas is kept in the layout the JPEG encoder takes without conversion (planar
//! YCbCr 4:2:0, see [`crate::jpeg::I420`]): drawing costs 1.5 bytes per pixel and encoding
//! needs no colour-conversion pass.

use crate::error::Result;
use crate::jpeg::{self, Encoder, I420};
use bytes::Bytes;
use font8x8::legacy::{BASIC_LEGACY, LATIN_LEGACY};

/// A colour as full-range (JFIF) YCbCr, the canvas's native format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Color {
    pub y: u8,
    pub cb: u8,
    pub cr: u8,
}

impl Color {
    pub const WHITE: Color = Color::grey(255);
    pub const BLACK: Color = Color::grey(0);

    /// Converts 8-bit sRGB with the JFIF (BT.601 full-range) matrix, so colours can be
    /// chosen in RGB and still be constants.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Color {
        let (r, g, b) = (r as i32, g as i32, b as i32);
        // Coefficients scaled by 2^16, rounded; results stay within 0..=255.
        let y = (19_595 * r + 38_470 * g + 7_471 * b + 0x7FFF) >> 16;
        let cb = (-11_059 * r - 21_709 * g + 32_768 * b + (128 << 16) + 0x7FFF) >> 16;
        let cr = (32_768 * r - 27_439 * g - 5_329 * b + (128 << 16) + 0x7FFF) >> 16;
        Color {
            y: clamp_u8(y),
            cb: clamp_u8(cb),
            cr: clamp_u8(cr),
        }
    }

    /// A neutral grey of the given brightness (0 black, 255 white).
    pub const fn grey(level: u8) -> Color {
        Color {
            y: level,
            cb: 128,
            cr: 128,
        }
    }
}

const fn clamp_u8(v: i32) -> u8 {
    if v < 0 {
        0
    } else if v > 255 {
        255
    } else {
        v as u8
    }
}

/// Width and height of one glyph at scale 1.
pub const GLYPH_SIZE_PX: u32 = 8;

/// The 8×8 bitmap for `c` (one byte per row, bit 0 = leftmost pixel).
///
/// Covers ASCII and Latin-1 (so names like "Küche" or "Caméra" render), maps common
/// typographic punctuation (dashes, quotes) to ASCII look-alikes, and draws '?' for
/// anything else rather than nothing, so a missing glyph is visible.
pub fn glyph(c: char) -> [u8; 8] {
    let c = match c {
        '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
        '\u{2018}' | '\u{2019}' | '\u{201A}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' => '"',
        '\u{2022}' | '\u{2027}' => '\u{B7}',
        '\u{2026}' => '.',
        '\t' => ' ',
        c => c,
    };
    let code = c as usize;
    let found = match code {
        0x20..=0x7E => BASIC_LEGACY.get(code).copied(),
        0xA0..=0xFF => LATIN_LEGACY.get(code - 0xA0).copied(),
        _ => None,
    };
    found.unwrap_or(BASIC_LEGACY[usize::from(b'?')])
}

/// Width of `text` drawn at `scale`: every character is one glyph wide.
pub fn text_width_px(text: &str, scale: u32) -> u32 {
    let chars = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
    chars.saturating_mul(GLYPH_SIZE_PX.saturating_mul(scale))
}

/// A picture being drawn: planar YCbCr 4:2:0, encodable as is.
///
/// Every drawing operation clips to the canvas, so callers can lay out text without
/// bounds arithmetic of their own and nothing panics on odd sizes or long strings.
/// Chroma has one sample per 2×2 block: shapes at even coordinates get exact colour
/// edges; odd edges blend into the neighbouring pixel's colour (invisible for the
/// neutral text colours used here).
#[derive(Clone, Debug)]
pub struct Canvas {
    width: u32,
    height: u32,
    chroma_width: u32,
    y: Vec<u8>,
    cb: Vec<u8>,
    cr: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with `background`. Fails for sizes that cannot be encoded
    /// (zero, or beyond [`jpeg::check_size`]'s limits), so nothing is allocated for them.
    pub fn new(width: u32, height: u32, background: Color) -> Result<Canvas> {
        jpeg::check_size(width, height)?;
        let (chroma_width, chroma_height) = I420::chroma_size(width, height);
        let luma_len = width as usize * height as usize;
        let chroma_len = chroma_width as usize * chroma_height as usize;
        Ok(Canvas {
            width,
            height,
            chroma_width,
            y: vec![background.y; luma_len],
            cb: vec![background.cb; chroma_len],
            cr: vec![background.cr; chroma_len],
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Brightness at (x, y), or None outside the canvas. For tests and assertions.
    pub fn luma_at(&self, x: u32, y: u32) -> Option<u8> {
        if x >= self.width || y >= self.height {
            return None;
        }
        self.y
            .get(y as usize * self.width as usize + x as usize)
            .copied()
    }

    /// Fills a rectangle, clipped to the canvas.
    pub fn fill_rect(&mut self, x: u32, y: u32, width_px: u32, height_px: u32, color: Color) {
        let x_end = x.saturating_add(width_px).min(self.width);
        let y_end = y.saturating_add(height_px).min(self.height);
        if x >= x_end || y >= y_end {
            return;
        }
        let stride = self.width as usize;
        for row in y as usize..y_end as usize {
            let start = row * stride;
            self.y[start + x as usize..start + x_end as usize].fill(color.y);
        }
        // Every chroma sample whose 2×2 block the rectangle touches.
        let (cx, cx_end) = (x as usize / 2, x_end.div_ceil(2) as usize);
        let chroma_stride = self.chroma_width as usize;
        for row in y as usize / 2..y_end.div_ceil(2) as usize {
            let start = row * chroma_stride;
            self.cb[start + cx..start + cx_end].fill(color.cb);
            self.cr[start + cx..start + cx_end].fill(color.cr);
        }
    }

    /// Draws `text` on one line with its top-left corner at (x, y), every glyph pixel
    /// `scale` × `scale` canvas pixels, clipped to the canvas. Only glyph pixels are
    /// painted (the background shows through). Returns the x just after the text.
    pub fn draw_text(&mut self, x: u32, y: u32, text: &str, scale: u32, color: Color) -> u32 {
        let scale = scale.max(1);
        let advance = GLYPH_SIZE_PX.saturating_mul(scale);
        let mut pen_x = x;
        for (at, c) in text.char_indices() {
            if pen_x >= self.width || y >= self.height {
                // Clipped: skip the rest, so a huge string costs nothing extra.
                let rest = u32::try_from(text[at..].chars().count()).unwrap_or(u32::MAX);
                return pen_x.saturating_add(advance.saturating_mul(rest));
            }
            self.draw_glyph(pen_x, y, glyph(c), scale, color);
            pen_x = pen_x.saturating_add(advance);
        }
        pen_x
    }

    fn draw_glyph(&mut self, x: u32, y: u32, bitmap: [u8; 8], scale: u32, color: Color) {
        for (row, bits) in (0u32..).zip(bitmap) {
            let top = y.saturating_add(row * scale);
            // Paint each horizontal run of set bits as one rectangle.
            let mut col = 0;
            while col < GLYPH_SIZE_PX {
                if bits >> col & 1 == 0 {
                    col += 1;
                    continue;
                }
                let run_start = col;
                while col < GLYPH_SIZE_PX && bits >> col & 1 == 1 {
                    col += 1;
                }
                let left = x.saturating_add(run_start * scale);
                self.fill_rect(left, top, (col - run_start) * scale, scale, color);
            }
        }
    }

    /// Copies a `width_px × height_px` rectangle from `src` at (src_x, src_y) to
    /// (dst_x, dst_y), clipped to both canvases. A row-by-row memcpy: the cheap way to
    /// restore precomputed pixels. Chroma is exact when all four coordinates are even.
    #[allow(clippy::too_many_arguments)] // two points and a size; a struct adds nothing
    pub fn blit(
        &mut self,
        src: &Canvas,
        src_x: u32,
        src_y: u32,
        dst_x: u32,
        dst_y: u32,
        width_px: u32,
        height_px: u32,
    ) {
        let w = width_px
            .min(src.width.saturating_sub(src_x))
            .min(self.width.saturating_sub(dst_x)) as usize;
        let h = height_px
            .min(src.height.saturating_sub(src_y))
            .min(self.height.saturating_sub(dst_y)) as usize;
        if w == 0 || h == 0 {
            return;
        }
        let (sx, sy, dx, dy) = (
            src_x as usize,
            src_y as usize,
            dst_x as usize,
            dst_y as usize,
        );
        let (src_stride, dst_stride) = (src.width as usize, self.width as usize);
        for row in 0..h {
            let from = (sy + row) * src_stride + sx;
            let to = (dy + row) * dst_stride + dx;
            self.y[to..to + w].copy_from_slice(&src.y[from..from + w]);
        }
        // Chroma samples covering the destination rectangle, clipped to both planes.
        let (src_cs, dst_cs) = (src.chroma_width as usize, self.chroma_width as usize);
        let src_ch = src.cb.len() / src_cs.max(1);
        let dst_ch = self.cb.len() / dst_cs.max(1);
        let cw = ((dx + w).div_ceil(2) - dx / 2)
            .min(src_cs - sx / 2)
            .min(dst_cs - dx / 2);
        let ch = ((dy + h).div_ceil(2) - dy / 2)
            .min(src_ch - sy / 2)
            .min(dst_ch - dy / 2);
        for row in 0..ch {
            let from = (sy / 2 + row) * src_cs + sx / 2;
            let to = (dy / 2 + row) * dst_cs + dx / 2;
            self.cb[to..to + cw].copy_from_slice(&src.cb[from..from + cw]);
            self.cr[to..to + cw].copy_from_slice(&src.cr[from..from + cw]);
        }
    }

    /// The canvas as planes for [`jpeg::Encoder::encode_i420`].
    pub fn as_i420(&self) -> I420<'_> {
        I420 {
            width: self.width,
            height: self.height,
            y: &self.y,
            cb: &self.cb,
            cr: &self.cr,
        }
    }

    /// Encodes the canvas as a baseline JPEG.
    pub fn encode(&self, encoder: &mut Encoder) -> Result<Bytes> {
        encoder.encode_i420(&self.as_i420())
    }
}

/// Background of the OFFLINE placeholder: dark slate, not black, so a viewer can tell
/// "camhub says the camera is offline" from "the camera shows a black picture".
pub const PLACEHOLDER_BACKGROUND: Color = Color::rgb(28, 32, 44);
const PLACEHOLDER_TITLE: Color = Color::WHITE;
const PLACEHOLDER_DETAIL: Color = Color::grey(190);
const PLACEHOLDER_RULE: Color = Color::rgb(210, 60, 50);

/// Longest title or detail drawn, in characters; placeholders carry a name and a short
/// reason, and the bound keeps the cost of a pathological string fixed.
const MAX_PLACEHOLDER_CHARS: usize = 400;

/// The frame viewers see while a stream is not live: `title` large (e.g.
/// "Front door — OFFLINE"), `detail` smaller below it (e.g. "connection refused ·
/// retrying in 3\u{a0}s"), centred on a dark background, as a baseline JPEG.
///
/// Text is word-wrapped and scaled so it stays readable when a phone shrinks the frame
/// to its screen width, from 160×120 up to 1920×1080 and beyond; what still does not fit
/// is clipped. Lines break only at ASCII spaces, so a no-break space (U+00A0) keeps "3 s"
/// together. Fails only for sizes that cannot be encoded (see [`jpeg::check_size`]).
pub fn placeholder_jpeg(width: u32, height: u32, title: &str, detail: &str) -> Result<Bytes> {
    let mut canvas = Canvas::new(width, height, PLACEHOLDER_BACKGROUND)?;
    draw_placeholder(&mut canvas, title, detail);
    canvas.encode(&mut Encoder::new(jpeg::DEFAULT_QUALITY))
}

/// Text sizes and lines chosen for one placeholder.
struct PlaceholderLayout {
    title_scale: u32,
    detail_scale: u32,
    title_lines: Vec<String>,
    detail_lines: Vec<String>,
}

impl PlaceholderLayout {
    /// Lines are 8 glyph pixels plus 2 of spacing; the title/detail gap is 4.
    fn height_px(&self) -> u32 {
        let block = |lines: usize, scale: u32| match lines {
            0 => 0,
            n => (n as u32 * 10 - 2) * scale,
        };
        let mut height = block(self.title_lines.len(), self.title_scale);
        if !self.detail_lines.is_empty() {
            height += 4 * self.title_scale + block(self.detail_lines.len(), self.detail_scale);
        }
        height
    }
}

fn draw_placeholder(canvas: &mut Canvas, title: &str, detail: &str) {
    let (width, height) = (canvas.width(), canvas.height());
    let title: String = title.trim().chars().take(MAX_PLACEHOLDER_CHARS).collect();
    let detail: String = detail.trim().chars().take(MAX_PLACEHOLDER_CHARS).collect();
    let margin_px = (width.min(height) / 20).max(2);
    let avail_w = width.saturating_sub(2 * margin_px).max(GLYPH_SIZE_PX);
    let avail_h = height.saturating_sub(2 * margin_px);

    // About 20 title characters across the frame: a phone showing the frame at its
    // screen width (~360 CSS px) then shows the title at ~18 px, the detail at ~14 px.
    let target_scale = ((width + 80) / 160).clamp(1, 64);
    let layout_at = |title_scale: u32| {
        let detail_scale = ((title_scale * 3 + 2) / 4).max(1);
        let chars_per_line = |scale: u32| (avail_w / (GLYPH_SIZE_PX * scale)).max(1) as usize;
        PlaceholderLayout {
            title_scale,
            detail_scale,
            title_lines: wrap(&title, chars_per_line(title_scale)),
            detail_lines: wrap(&detail, chars_per_line(detail_scale)),
        }
    };
    // The largest scale at which everything fits and the title takes at most two lines
    // (readable beats tidy); failing that, scale 1, clipped.
    let layout = (1..=target_scale)
        .rev()
        .map(layout_at)
        .find(|l| l.height_px() <= avail_h && l.title_lines.len() <= 2)
        .unwrap_or_else(|| layout_at(1));

    let (ts, ds) = (layout.title_scale, layout.detail_scale);
    let mut y = height.saturating_sub(layout.height_px()) / 2;
    let centred_x = |line: &str, scale: u32| width.saturating_sub(text_width_px(line, scale)) / 2;
    for line in &layout.title_lines {
        canvas.draw_text(centred_x(line, ts), y, line, ts, PLACEHOLDER_TITLE);
        y = y.saturating_add(10 * ts);
    }
    if !layout.detail_lines.is_empty() {
        // A red rule between the two blocks, as wide as the title, marks "not live".
        let rule_w = layout
            .title_lines
            .iter()
            .map(|l| text_width_px(l, ts))
            .max()
            .unwrap_or(0)
            .min(avail_w);
        let rule_h = (ts / 2).max(1);
        // Centred between the title's baseline (its glyphs' last row is blank) and the
        // detail's top.
        let rule_y = y.saturating_sub(ts / 2 + rule_h / 2);
        canvas.fill_rect(
            (width - rule_w.min(width)) / 2,
            rule_y,
            rule_w,
            rule_h,
            PLACEHOLDER_RULE,
        );
        y = y.saturating_add(2 * ts);
    }
    for line in &layout.detail_lines {
        canvas.draw_text(centred_x(line, ds), y, line, ds, PLACEHOLDER_DETAIL);
        y = y.saturating_add(10 * ds);
    }
}

/// Greedy word wrap to lines of at most `max_chars` characters; words longer than a
/// line are split. Counts characters, not bytes, so non-ASCII text wraps correctly.
/// Breaks only at ASCII whitespace: a no-break space (U+00A0, drawn blank) keeps a
/// number with its unit ("3\u{a0}s").
fn wrap(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_chars = 0;
    for word in text.split_ascii_whitespace() {
        let mut chars: Vec<char> = word.chars().collect();
        while !chars.is_empty() {
            let room = match line_chars {
                0 => max_chars,
                used => max_chars.saturating_sub(used + 1),
            };
            if chars.len() <= room {
                if line_chars > 0 {
                    line.push(' ');
                    line_chars += 1;
                }
                line.extend(chars.iter());
                line_chars += chars.len();
                break;
            }
            if line_chars > 0 {
                // Does not fit after the current line's words: retry on a fresh line.
                lines.push(std::mem::take(&mut line));
                line_chars = 0;
                continue;
            }
            // Longer than a whole line: split it.
            let rest = chars.split_off(max_chars);
            lines.push(chars.into_iter().collect());
            chars = rest;
        }
    }
    if line_chars > 0 {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut decoder = jpeg_decoder::Decoder::new(jpeg);
        let pixels = decoder.decode().expect("placeholder decodes");
        let info = decoder.info().expect("has info");
        (u32::from(info.width), u32::from(info.height), pixels)
    }

    /// Pixels (RGB24) brighter than `level` in every channel within rows `rows`.
    fn bright_pixels(pixels: &[u8], width: u32, rows: std::ops::Range<u32>, level: u8) -> usize {
        let row_bytes = width as usize * 3;
        pixels
            .chunks_exact(row_bytes)
            .skip(rows.start as usize)
            .take(rows.len())
            .flat_map(|row| row.chunks_exact(3))
            .filter(|p| p.iter().all(|&c| c > level))
            .count()
    }

    #[test]
    fn colours_convert_like_jfif() {
        assert_eq!(Color::rgb(255, 255, 255), Color::WHITE);
        assert_eq!(Color::rgb(0, 0, 0), Color::BLACK);
        let red = Color::rgb(255, 0, 0);
        assert_eq!((red.y, red.cb, red.cr), (76, 85, 255));
    }

    #[test]
    fn glyphs_cover_ascii_latin1_and_fall_back() {
        assert_eq!(glyph('A'), BASIC_LEGACY[usize::from(b'A')]);
        assert_eq!(glyph(' '), [0; 8]);
        assert_eq!(glyph('ü'), LATIN_LEGACY[0xFC - 0xA0]);
        assert_eq!(glyph('—'), glyph('-'));
        let question = glyph('?');
        assert_ne!(question, [0; 8]);
        assert_eq!(glyph('猫'), question);
        assert_eq!(glyph('\u{7F}'), question);
        assert_eq!(glyph('\n'), question);
    }

    #[test]
    fn text_is_drawn_where_asked_and_clipped() {
        let mut canvas = Canvas::new(64, 32, Color::BLACK).unwrap();
        let end = canvas.draw_text(4, 4, "Hi", 2, Color::WHITE);
        assert_eq!(end, 4 + 2 * 16);
        let lit = (0..32)
            .flat_map(|y| (0..64).map(move |x| (x, y)))
            .filter(|&(x, y)| canvas.luma_at(x, y) == Some(255))
            .collect::<Vec<_>>();
        assert!(!lit.is_empty());
        assert!(lit
            .iter()
            .all(|&(x, y)| (4..36).contains(&x) && (4..20).contains(&y)));
        // Far off the canvas, huge scales and long strings: clipped, no panic.
        canvas.draw_text(60, 30, &"long text ".repeat(1000), 7, Color::WHITE);
        canvas.draw_text(u32::MAX - 3, u32::MAX - 3, "x", u32::MAX, Color::WHITE);
        canvas.fill_rect(u32::MAX, 0, u32::MAX, u32::MAX, Color::WHITE);
    }

    #[test]
    fn blit_copies_and_clips() {
        let mut src = Canvas::new(8, 8, Color::BLACK).unwrap();
        src.fill_rect(2, 2, 2, 2, Color::WHITE);
        let mut dst = Canvas::new(7, 5, Color::grey(50)).unwrap();
        dst.blit(&src, 2, 2, 4, 2, 100, 100);
        assert_eq!(dst.luma_at(4, 2), Some(255));
        assert_eq!(dst.luma_at(5, 3), Some(255));
        assert_eq!(dst.luma_at(6, 4), Some(0));
        assert_eq!(dst.luma_at(3, 2), Some(50));
        dst.blit(&src, 100, 0, 0, 0, 8, 8);
        dst.blit(&src, 7, 7, 6, 4, 8, 8);
        let jpeg = dst.encode(&mut Encoder::new(80)).unwrap();
        assert_eq!(jpeg::check(&jpeg).unwrap(), (7, 5));
    }

    #[test]
    fn wrap_splits_words_and_long_words() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("x abcdefghij", 4), ["x", "abcd", "efgh", "ij"]);
        assert_eq!(wrap("  ", 4), Vec::<String>::new());
        assert_eq!(wrap("Küche", 3), ["Küc", "he"]);
        assert_eq!(wrap("a b", 0), ["a", "b"]);
        assert_eq!(wrap("in 3\u{a0}s", 5), ["in", "3\u{a0}s"]);
    }

    #[test]
    fn placeholder_has_the_requested_size() {
        for (width, height) in [
            (160, 120),
            (320, 240),
            (640, 480),
            (1280, 720),
            (1920, 1080),
        ] {
            let jpeg = placeholder_jpeg(
                width,
                height,
                "Front door — OFFLINE",
                "Backoff: connection refused · retrying in 3 s",
            )
            .unwrap();
            assert_eq!(jpeg::check(&jpeg).unwrap(), (width, height));
            let (w, h, pixels) = decode(&jpeg);
            assert_eq!((w, h), (width, height));
            // Dark, but not black.
            let corner = &pixels[..3];
            assert!(
                corner.iter().all(|&c| (10..80).contains(&c)),
                "corner {corner:?}"
            );
            // The title (white) lies in the upper half; the frame is mostly background.
            let bright_top = bright_pixels(&pixels, w, 0..h / 2, 220);
            assert!(
                bright_top > (w * h / 400) as usize,
                "{width}x{height}: {bright_top}"
            );
            let bright_all = bright_pixels(&pixels, w, 0..h, 220);
            assert!(bright_all < (w * h / 3) as usize);
        }
    }

    #[test]
    fn placeholder_survives_hostile_text_and_sizes() {
        let long = "word ".repeat(10_000);
        let unbroken = "x".repeat(10_000);
        for (width, height) in [(1, 1), (2, 3), (15, 9), (160, 120), (1920, 1080)] {
            for (title, detail) in [
                (long.as_str(), unbroken.as_str()),
                ("Küche — OFFLINE", "Kamera nicht erreichbar · 再試行 🎥"),
                ("", ""),
                ("\t\n\r", "\u{0}"),
            ] {
                let jpeg = placeholder_jpeg(width, height, title, detail).unwrap();
                assert_eq!(jpeg::check(&jpeg).unwrap(), (width, height));
            }
        }
        assert!(placeholder_jpeg(0, 10, "a", "b").is_err());
        assert!(placeholder_jpeg(100_000, 10, "a", "b").is_err());
    }

    #[test]
    fn placeholder_text_scales_with_the_frame() {
        // Measure the title's height in bright rows: bigger frames get bigger text.
        let title_rows = |width: u32, height: u32| {
            let jpeg =
                placeholder_jpeg(width, height, "Garage — OFFLINE", "retrying in 1 s").unwrap();
            let (w, h, pixels) = decode(&jpeg);
            (0..h)
                .filter(|&y| bright_pixels(&pixels, w, y..y + 1, 230) > 0)
                .count()
        };
        let small = title_rows(160, 120);
        let large = title_rows(1920, 1080);
        assert!(small >= 6, "{small}");
        assert!(large >= 8 * small, "{large} vs {small}");
    }
}
