//! The multipart/x-mixed-replace part parser shared by the passthrough sources: the
//! HTTP-MJPEG source feeds it response bodies, the exec source a command's stdout. Fed
//! bytes as they arrive, it yields part bodies (the JPEGs, not yet checked).
//!
//! It owns the content format only: boundaries (as a Content-Type names them or sniffed
//! from the body), part headers, part bodies, and the caps that bound memory. Where the
//! bytes come from is the caller's: connecting, the HTTP response head, statuses and
//! redirects, and the HTTP/1.1 transfer codings (Content-Length or chunked) stay in
//! [`crate::source::http_mjpeg`]. The chunked coding is HTTP message framing, chosen by
//! the response head like Content-Length and undone before the multipart body exists; a
//! pipe never has it. So this module knows no transport, and the exec source carries no
//! HTTP. The one Content-Type piece here, `boundary_param`, is how a boundary may be
//! written (quoted, with or without leading dashes), normalized in one place.

use crate::error::{Error, Result};
use bytes::{Buf, Bytes, BytesMut};

/// Largest part header block: far more than the few headers a camera sends per part, so
/// a peer sending endless header lines fails here instead of filling memory.
pub const MAX_PART_HEADERS_BYTES: usize = 32 * 1024;

/// An incremental multipart/x-mixed-replace parser: fed body bytes, yields part bodies.
///
/// Lenient the way real cameras need: the boundary with or without quotes and leading
/// `--`, or sniffed from the first `--` line when the header names none; parts with or
/// without Content-Length; missing or extra CRLFs around boundaries; no part headers at
/// all. Strict where memory is at stake: a part, a header block and the junk skipped
/// while looking for a boundary are all capped. Never panics, whatever the input.
pub(crate) struct Multipart {
    /// `--` + the boundary token, once known.
    delimiter: Option<Vec<u8>>,
    state: PartState,
    /// Unconsumed body bytes.
    buf: BytesMut,
    /// Bytes of `buf` already searched for the delimiter (no match), so a part arriving
    /// in many small reads is scanned once.
    scanned: usize,
    /// Bytes dropped while looking for a boundary since the last part.
    skipped: usize,
    max_part_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartState {
    /// Looking for the next delimiter.
    Seek,
    /// Just after a delimiter: the rest of its line.
    BoundaryLine,
    /// Part headers, up to an empty line.
    Headers,
    /// The part's data, of a known length or up to the next delimiter.
    Body(Option<usize>),
    /// The closing delimiter (`--boundary--`) was seen.
    Closed,
}

/// A boundary line longer than this is not one (RFC 2046 caps boundaries at 70).
const MAX_BOUNDARY_LINE_BYTES: usize = 256;

impl Multipart {
    /// `boundary` as the header gives it (with or without leading `--`), or None to find
    /// it in the body.
    pub(crate) fn new(boundary: Option<&str>, max_part_bytes: usize) -> Multipart {
        Multipart {
            delimiter: boundary.and_then(delimiter_for),
            state: PartState::Seek,
            buf: BytesMut::new(),
            scanned: 0,
            skipped: 0,
            max_part_bytes,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state == PartState::Closed
    }

    /// Adds body bytes, parsed by [`Multipart::next_part`]. Bytes after the closing
    /// delimiter are dropped.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.state != PartState::Closed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Body bytes held until more arrive (what the caps bound).
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next complete part's data, None if more bytes are needed.
    pub(crate) fn next_part(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.state {
                PartState::Closed => {
                    self.buf.clear();
                    return Ok(None);
                }
                PartState::Seek => {
                    if !self.seek()? {
                        return Ok(None);
                    }
                }
                PartState::BoundaryLine => {
                    let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                        if self.buf.len() > MAX_BOUNDARY_LINE_BYTES {
                            // Not a boundary line after all (the data merely contained
                            // the delimiter): look for the next one.
                            self.state = PartState::Seek;
                            continue;
                        }
                        return Ok(None);
                    };
                    let closing = self.buf[..nl].trim_ascii().starts_with(b"--");
                    self.buf.advance(nl + 1);
                    self.state = if closing {
                        PartState::Closed
                    } else {
                        PartState::Headers
                    };
                }
                PartState::Headers => match self.headers()? {
                    None => return Ok(None),
                    Some(length) => {
                        self.state = PartState::Body(length);
                        self.scanned = 0;
                    }
                },
                PartState::Body(Some(length)) => {
                    if self.buf.len() < length {
                        return Ok(None);
                    }
                    self.state = PartState::Seek;
                    self.skipped = 0;
                    return Ok(Some(self.buf.split_to(length).freeze()));
                }
                PartState::Body(None) => {
                    let delimiter = self.delimiter.as_deref().unwrap_or(b"--");
                    let from = self.scanned.saturating_sub(delimiter.len());
                    match find(&self.buf[from..], delimiter) {
                        Some(at) => {
                            let part = self.buf.split_to(from + at).freeze();
                            self.buf.advance(delimiter.len());
                            self.state = PartState::BoundaryLine;
                            self.scanned = 0;
                            self.skipped = 0;
                            // Drop the CRLF (and stray dashes) before the delimiter.
                            let end = part
                                .iter()
                                .rposition(|&b| !matches!(b, b'\r' | b'\n' | b'-'))
                                .map_or(0, |i| i + 1);
                            // The cap holds also when one read brought the whole part.
                            if end > self.max_part_bytes {
                                return Err(Error::Source(format!(
                                    "part of {end} bytes is larger than the limit of {} bytes",
                                    self.max_part_bytes
                                )));
                            }
                            return Ok(Some(part.slice(..end)));
                        }
                        None => {
                            self.scanned = self.buf.len();
                            if self.buf.len() > self.max_part_bytes {
                                return Err(Error::Source(format!(
                                    "part larger than {} bytes (no boundary found)",
                                    self.max_part_bytes
                                )));
                            }
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }

    /// Looks for the next delimiter (or, without one, a line that looks like one),
    /// dropping what comes before it. True when found.
    fn seek(&mut self) -> Result<bool> {
        let found = match &self.delimiter {
            Some(delimiter) => match find(&self.buf, delimiter) {
                Some(at) => {
                    self.buf.advance(at + delimiter.len());
                    true
                }
                None => {
                    // Keep a tail that could be the start of a split delimiter.
                    let keep = delimiter.len().saturating_sub(1).min(self.buf.len());
                    let drop = self.buf.len() - keep;
                    self.buf.advance(drop);
                    self.skipped += drop;
                    false
                }
            },
            None => self.sniff_boundary(),
        };
        if found {
            self.state = PartState::BoundaryLine;
            return Ok(true);
        }
        if self.skipped > self.max_part_bytes {
            return Err(Error::Source(format!(
                "no multipart boundary found in {} bytes",
                self.skipped
            )));
        }
        Ok(false)
    }

    /// Finds the first line starting with `--` and takes the rest of it as the
    /// boundary (for a Content-Type that names none). Consumes up to the end of that
    /// line on success; on failure drops the complete lines searched.
    fn sniff_boundary(&mut self) -> bool {
        let mut line_start = 0;
        while line_start < self.buf.len() {
            let Some(nl) = self.buf[line_start..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let line = self.buf[line_start..line_start + nl].trim_ascii();
            if let Some(token) = line.strip_prefix(b"--") {
                if let Some(delimiter) = delimiter_for_bytes(token) {
                    self.delimiter = Some(delimiter);
                    self.buf.advance(line_start);
                    // Re-run the known-delimiter search from this line.
                    let d = self.delimiter.as_deref().unwrap_or_default();
                    let at = find(&self.buf, d).unwrap_or(0);
                    self.buf.advance((at + d.len()).min(self.buf.len()));
                    return true;
                }
            }
            line_start += nl + 1;
        }
        // Drop complete lines; keep a partial last line unless it is too long to be a
        // boundary line.
        let drop = if self.buf.len() - line_start > MAX_BOUNDARY_LINE_BYTES {
            self.buf.len()
        } else {
            line_start
        };
        self.buf.advance(drop);
        self.skipped += drop;
        false
    }

    /// Parses the part headers once complete. Returns the Content-Length, if any.
    fn headers(&mut self) -> Result<Option<Option<usize>>> {
        // Some cameras send no headers at all, the JPEG right after the boundary line.
        if self.buf.starts_with(&[0xFF, 0xD8]) {
            return Ok(Some(None));
        }
        let mut length = None;
        let mut pos = 0;
        loop {
            let Some(nl) = self.buf[pos..].iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_PART_HEADERS_BYTES {
                    return Err(Error::Source(format!(
                        "part headers longer than {MAX_PART_HEADERS_BYTES} bytes"
                    )));
                }
                return Ok(None);
            };
            let line = self.buf[pos..pos + nl].trim_ascii();
            pos += nl + 1;
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once_byte(b':') {
                if name.trim_ascii().eq_ignore_ascii_case(b"content-length") {
                    length = std::str::from_utf8(value.trim_ascii())
                        .ok()
                        .and_then(|v| v.parse::<usize>().ok());
                }
                // Another camhub marks its OFFLINE placeholders: the camera behind it is
                // down, so this stream is too (retried like any upstream failure).
                if name.trim_ascii().eq_ignore_ascii_case(b"x-camhub-offline") {
                    let reason: String = String::from_utf8_lossy(value.trim_ascii())
                        .chars()
                        .take(200)
                        .collect();
                    return Err(Error::Source(format!("upstream camhub: {reason}")));
                }
            }
        }
        self.buf.advance(pos);
        if let Some(n) = length {
            if n > self.max_part_bytes {
                return Err(Error::Source(format!(
                    "part of {n} bytes is larger than the limit of {} bytes",
                    self.max_part_bytes
                )));
            }
        }
        // Without a known delimiter a part can only be read by its length.
        if length.is_none() && self.delimiter.is_none() {
            return Err(Error::Source(
                "part without Content-Length and no boundary".into(),
            ));
        }
        Ok(Some(length))
    }
}

/// The `boundary` parameter of a Content-Type, unquoted.
pub(crate) fn boundary_param(params: &str) -> Option<String> {
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"').trim();
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// `--token` for a boundary given with or without leading dashes; None if it is empty.
fn delimiter_for(boundary: &str) -> Option<Vec<u8>> {
    delimiter_for_bytes(boundary.as_bytes())
}

fn delimiter_for_bytes(boundary: &[u8]) -> Option<Vec<u8>> {
    // Leading dashes are dropped and `--` put back, so `boundary=--frame` matches both
    // `--frame` (what many cameras send) and `----frame` (what RFC 2046 says).
    let token = boundary.trim_ascii();
    let start = token.iter().position(|&b| b != b'-')?;
    let token = &token[start..];
    if token.len() > MAX_BOUNDARY_LINE_BYTES {
        return None;
    }
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(token);
    Some(delimiter)
}

/// Position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut from = 0;
    while let Some(i) = haystack[from..=haystack.len() - needle.len()]
        .iter()
        .position(|&b| b == first)
    {
        let at = from + i;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// `split_once` for byte slices.
trait SplitOnceByte {
    fn split_once_byte(&self, sep: u8) -> Option<(&[u8], &[u8])>;
}

impl SplitOnceByte for [u8] {
    fn split_once_byte(&self, sep: u8) -> Option<(&[u8], &[u8])> {
        let i = self.iter().position(|&b| b == sep)?;
        Some((&self[..i], &self[i + 1..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::jpeg::test_jpegs as jpegs;

    /// A part cap far above the test frames.
    const CAP_BYTES: usize = 8 * 1024 * 1024;

    /// Feeds `body` in slices of `step` bytes and collects every part.
    fn parse(boundary: Option<&str>, body: &[u8], step: usize) -> Result<Vec<Bytes>> {
        match parse_capped(boundary, CAP_BYTES, body.chunks(step.max(1))) {
            (parts, None) => Ok(parts),
            (_, Some(e)) => Err(e),
        }
    }

    /// Feeds `reads` one at a time, as a source does, taking every complete part after
    /// each; stops at the first error. Returns the parts and that error.
    fn parse_capped<'a>(
        boundary: Option<&str>,
        max_part_bytes: usize,
        reads: impl IntoIterator<Item = &'a [u8]>,
    ) -> (Vec<Bytes>, Option<Error>) {
        let mut m = Multipart::new(boundary, max_part_bytes);
        let mut parts = Vec::new();
        for read in reads {
            m.feed(read);
            loop {
                match m.next_part() {
                    Ok(Some(p)) => parts.push(p),
                    Ok(None) => break,
                    Err(e) => return (parts, Some(e)),
                }
            }
        }
        (parts, None)
    }

    /// The body a server writes, in one of the dialects cameras speak.
    fn body(frames: &[Bytes], dialect: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            match dialect {
                // camhub, mjpg-streamer: length, CRLF after data.
                0 => out.extend_from_slice(
                    format!(
                        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                        f.len()
                    )
                    .as_bytes(),
                ),
                // No length; boundary preceded by CRLF (added below).
                1 => out.extend_from_slice(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n"),
                // LF only, lower-case header, extra blank lines before the boundary.
                2 => out.extend_from_slice(
                    format!("\n\n--frame\ncontent-length:{}\n\n", f.len()).as_bytes(),
                ),
                // RFC-style extra dashes, no headers at all.
                3 => out.extend_from_slice(b"----frame\r\n"),
                // Trailing whitespace on the boundary line, headers after.
                _ => out.extend_from_slice(
                    b"--frame  \r\nX-Timestamp: 1.5\r\nContent-Type: image/jpeg\r\n\r\n",
                ),
            }
            out.extend_from_slice(f);
            out.extend_from_slice(b"\r\n");
        }
        // The last part without a length ends only at the next delimiter.
        out.extend_from_slice(b"--frame\r\n");
        out
    }

    #[test]
    fn parses_every_dialect_at_every_split() {
        let frames = jpegs(3);
        for dialect in 0..5 {
            let data = body(&frames, dialect);
            for boundary in [Some("frame"), Some("--frame"), Some("\"frame\""), None] {
                let boundary = boundary.map(|b| b.trim_matches('"'));
                for step in [1, 2, 3, 7, 100, 4096, data.len()] {
                    let parts = parse(boundary, &data, step).unwrap();
                    assert_eq!(
                        parts, frames,
                        "dialect {dialect}, boundary {boundary:?}, step {step}"
                    );
                }
            }
        }
    }

    #[test]
    fn skips_a_preamble_and_stops_at_the_closing_delimiter() {
        let frames = jpegs(2);
        let mut data = b"some preamble\r\n-- not it\r\n".to_vec();
        data.extend_from_slice(&body(&frames, 0));
        // `body` ends with an opening delimiter; close instead.
        data.truncate(data.len() - b"--frame\r\n".len());
        data.extend_from_slice(b"--frame--\r\nepilogue");
        let mut m = Multipart::new(Some("frame"), CAP_BYTES);
        m.feed(&data);
        assert_eq!(m.next_part().unwrap().unwrap(), frames[0]);
        assert_eq!(m.next_part().unwrap().unwrap(), frames[1]);
        assert_eq!(m.next_part().unwrap(), None);
        assert!(m.is_closed());
    }

    #[test]
    fn an_endless_part_fails_at_the_cap_with_bounded_memory() {
        let max = 64 * 1024;
        let mut m = Multipart::new(Some("x"), max);
        m.feed(b"--x\r\nContent-Type: image/jpeg\r\n\r\n\xFF\xD8");
        let chunk = [0x55u8; 1000];
        let mut error = None;
        for _ in 0..1000 {
            m.feed(&chunk);
            match m.next_part() {
                Ok(None) => assert!(m.buf.len() <= max + chunk.len()),
                Ok(Some(_)) => panic!("no part expected"),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        let error = error.expect("the cap is hit");
        assert!(error.contains("larger than 65536 bytes"), "{error}");

        let mut m = Multipart::new(Some("x"), max);
        m.feed(b"--x\r\nContent-Length: 99999999\r\n\r\n");
        assert!(m
            .next_part()
            .unwrap_err()
            .to_string()
            .contains("larger than"));
    }

    /// Issue 7 (found by fuzz/): a part without Content-Length that arrived whole in one
    /// read, delimiter included, skipped the part cap that a slower peer would hit.
    #[test]
    fn issue_7_a_part_read_at_once_is_capped_too() {
        let frames = jpegs(2);
        let data = body(&frames, 1);
        let largest = frames.iter().map(|f| f.len()).max().unwrap();
        for step in [1, 7, 100, data.len()] {
            let (parts, error) = parse_capped(Some("frame"), largest - 1, data.chunks(step));
            assert!(parts.iter().all(|p| p.len() < largest), "step {step}");
            let error = error.expect("the cap is hit").to_string();
            assert!(error.contains("larger than"), "step {step}: {error}");
        }
        // At the cap exactly, every part gets through.
        let (parts, error) = parse_capped(Some("frame"), largest, [&data[..]]);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(parts, frames);
    }

    #[test]
    fn garbage_without_a_boundary_fails_with_bounded_memory() {
        let max = 64 * 1024;
        for boundary in [Some("x"), None] {
            let mut m = Multipart::new(boundary, max);
            let mut error = None;
            for i in 0..1000u32 {
                let noise: Vec<u8> = (0..1000u32).map(|j| (i * 7 + j * 13) as u8 | 1).collect();
                m.feed(&noise);
                match m.next_part() {
                    Ok(p) => {
                        assert!(p.is_none());
                        assert!(m.buf.len() <= MAX_BOUNDARY_LINE_BYTES + noise.len());
                    }
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            let error = error.expect("gives up");
            assert!(error.contains("no multipart boundary"), "{error}");
        }
    }

    #[test]
    fn never_panics_and_stays_bounded_on_arbitrary_input() {
        let frames = jpegs(2);
        let mut state: u32 = 0x1234_5678;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let max = 4096;
        let valid: Vec<Vec<u8>> = (0..5).map(|d| body(&frames, d)).collect();
        for round in 0..3000 {
            let mut input = match round % 3 {
                // Pure noise, biased towards the bytes that matter.
                0 => (0..rand() % 3000)
                    .map(|_| match rand() % 6 {
                        0 => b'-',
                        1 => b'\r',
                        2 => b'\n',
                        _ => rand() as u8,
                    })
                    .collect(),
                // A valid stream, mutated.
                1 => {
                    let mut v = valid[rand() as usize % valid.len()].clone();
                    for _ in 0..1 + rand() % 8 {
                        let at = rand() as usize % v.len();
                        v[at] = rand() as u8;
                    }
                    v
                }
                // A valid stream, truncated and spliced.
                _ => {
                    let a = &valid[rand() as usize % valid.len()];
                    let b = &valid[rand() as usize % valid.len()];
                    let mut v = a[..rand() as usize % a.len()].to_vec();
                    v.extend_from_slice(&b[rand() as usize % b.len()..]);
                    v
                }
            };
            if round % 7 == 0 {
                input.extend_from_slice(b"--x\r\nContent-Length: 5000\r\n\r\n");
            }
            let boundary = [Some("frame"), Some("x"), None][rand() as usize % 3];
            let mut m = Multipart::new(boundary, max);
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = (1 + rand() as usize % 300).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                m.feed(chunk);
                let mut failed = false;
                loop {
                    match m.next_part() {
                        Ok(Some(part)) => {
                            assert!(part.len() <= max);
                            let _ = crate::jpeg::check(&part);
                        }
                        Ok(None) => break,
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
                assert!(
                    m.buf.len() <= max + MAX_PART_HEADERS_BYTES + 300,
                    "unbounded buffer"
                );
                if failed {
                    break;
                }
            }
        }
    }
}
