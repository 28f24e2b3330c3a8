//! Incremental parser for one viewer's HTTP response: status and headers, chunked
//! transfer encoding, then `multipart/x-mixed-replace` parts. JPEG bytes are skipped by
//! `Content-Length` straight out of the read buffer, never copied.

/// What the parser reports for each complete part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Part {
    pub jpeg_len: usize,
    /// `X-Timestamp`: capture wall-clock time in Unix seconds.
    pub captured_unix_secs: Option<f64>,
}

/// Longest status/header block or part-header line we accept before calling it garbage.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_LINE_BYTES: usize = 4 * 1024;

/// One viewer's response stream, fed with whatever `read` returned.
pub struct Response {
    head: Option<Vec<u8>>,
    /// `Some` when the body is chunked.
    chunked: Option<Chunked>,
    multipart: Option<Multipart>,
    pub ended: bool,
}

impl Default for Response {
    fn default() -> Self {
        Response {
            head: Some(Vec::new()),
            chunked: None,
            multipart: None,
            ended: false,
        }
    }
}

impl Response {
    /// Feeds bytes; calls `on_part` for each finished part. An error means the stream is
    /// not what camhub promises (the bench counts it and drops the viewer).
    pub fn feed(&mut self, mut data: &[u8], on_part: &mut impl FnMut(Part)) -> Result<(), String> {
        if let Some(head) = &mut self.head {
            let before = head.len();
            head.extend_from_slice(data);
            let Some(end) = find(head, b"\r\n\r\n") else {
                if head.len() > MAX_HEAD_BYTES {
                    return Err("response head too long".into());
                }
                return Ok(());
            };
            let (chunked, boundary) = parse_head(&head[..end])?;
            data = &data[end + 4 - before..];
            self.head = None;
            self.chunked = chunked.then(Chunked::default);
            self.multipart = Some(Multipart::new(&boundary));
        }
        let multipart = self
            .multipart
            .as_mut()
            .expect("set once the head is parsed");
        match &mut self.chunked {
            Some(chunked) => {
                let ended = chunked.feed(data, &mut |body| multipart.feed(body, on_part))?;
                self.ended |= ended;
            }
            None => multipart.feed(data, on_part)?,
        }
        self.ended |= multipart.ended;
        Ok(())
    }
}

/// Checks the status line and returns (chunked?, multipart boundary).
fn parse_head(head: &[u8]) -> Result<(bool, String), String> {
    let head = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("unexpected status line {status:?}"));
    }
    let (mut chunked, mut boundary) = (false, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-type") {
            if !value
                .to_ascii_lowercase()
                .starts_with("multipart/x-mixed-replace")
            {
                return Err(format!("unexpected content-type {value:?}"));
            }
            boundary = value
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("boundary="))
                .map(|b| b.trim_matches('"').to_string())
                .next();
        }
    }
    Ok((
        chunked,
        boundary.ok_or("no multipart boundary in content-type")?,
    ))
}

/// HTTP/1.1 chunked transfer decoding.
#[derive(Default)]
struct Chunked {
    state: ChunkState,
    size_line: Vec<u8>,
}

#[derive(Default)]
enum ChunkState {
    /// Reading the hex size line.
    #[default]
    Size,
    Data(usize),
    /// The CRLF after a chunk's data; the number of bytes still to skip.
    DataEnd(u8),
    /// The zero-size chunk arrived (trailers are ignored).
    Done,
}

impl Chunked {
    /// Passes each piece of chunk data to `body`; returns true once the last chunk is seen.
    fn feed(
        &mut self,
        mut data: &[u8],
        body: &mut impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<bool, String> {
        while !data.is_empty() {
            match &mut self.state {
                ChunkState::Size => match data.iter().position(|&b| b == b'\n') {
                    None => {
                        self.size_line.extend_from_slice(data);
                        if self.size_line.len() > MAX_LINE_BYTES {
                            return Err("chunk size line too long".into());
                        }
                        return Ok(false);
                    }
                    Some(i) => {
                        self.size_line.extend_from_slice(&data[..i]);
                        data = &data[i + 1..];
                        let line = std::str::from_utf8(&self.size_line).unwrap_or("");
                        let hex = line.split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16)
                            .map_err(|_| format!("bad chunk size line {line:?}"))?;
                        self.size_line.clear();
                        self.state = if size == 0 {
                            ChunkState::Done
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                },
                ChunkState::Data(left) => {
                    let n = (*left).min(data.len());
                    body(&data[..n])?;
                    data = &data[n..];
                    *left -= n;
                    if *left == 0 {
                        self.state = ChunkState::DataEnd(2);
                    }
                }
                ChunkState::DataEnd(left) => {
                    data = &data[1..];
                    *left -= 1;
                    if *left == 0 {
                        self.state = ChunkState::Size;
                    }
                }
                ChunkState::Done => return Ok(true),
            }
        }
        Ok(matches!(self.state, ChunkState::Done))
    }
}

/// `multipart/x-mixed-replace` body: `--boundary`, part headers, blank line, then
/// exactly `Content-Length` bytes, repeated.
struct Multipart {
    delimiter: Vec<u8>,
    state: PartState,
    line: Vec<u8>,
    jpeg_len: Option<usize>,
    captured_unix_secs: Option<f64>,
    ended: bool,
}

enum PartState {
    /// Between parts: expecting the delimiter line (blank lines are skipped).
    Delimiter,
    Headers,
    Body(usize),
}

impl Multipart {
    fn new(boundary: &str) -> Multipart {
        Multipart {
            delimiter: format!("--{boundary}").into_bytes(),
            state: PartState::Delimiter,
            line: Vec::new(),
            jpeg_len: None,
            captured_unix_secs: None,
            ended: false,
        }
    }

    fn feed(&mut self, mut data: &[u8], on_part: &mut impl FnMut(Part)) -> Result<(), String> {
        while !data.is_empty() {
            if let PartState::Body(left) = &mut self.state {
                let n = (*left).min(data.len());
                data = &data[n..];
                *left -= n;
                if *left == 0 {
                    on_part(Part {
                        jpeg_len: self.jpeg_len.unwrap_or(0),
                        captured_unix_secs: self.captured_unix_secs,
                    });
                    self.state = PartState::Delimiter;
                }
                continue;
            }
            let Some(i) = data.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(data);
                if self.line.len() > MAX_LINE_BYTES {
                    return Err("multipart line too long (missing Content-Length?)".into());
                }
                return Ok(());
            };
            self.line.extend_from_slice(&data[..i]);
            data = &data[i + 1..];
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            self.on_line(&line)?;
            self.line = line;
            self.line.clear();
        }
        Ok(())
    }

    fn on_line(&mut self, line: &[u8]) -> Result<(), String> {
        match self.state {
            PartState::Delimiter => {
                if line.is_empty() {
                    // The CRLF that ends the previous part's body.
                } else if line == self.delimiter.as_slice() {
                    self.state = PartState::Headers;
                    self.jpeg_len = None;
                    self.captured_unix_secs = None;
                } else if line.strip_prefix(self.delimiter.as_slice()) == Some(b"--") {
                    self.ended = true;
                } else {
                    return Err(format!(
                        "expected boundary, got {:?}",
                        String::from_utf8_lossy(line)
                    ));
                }
            }
            PartState::Headers => {
                if line.is_empty() {
                    let len = self.jpeg_len.ok_or("part without Content-Length")?;
                    if len == 0 {
                        return Err("part with Content-Length: 0".into());
                    }
                    self.state = PartState::Body(len);
                    return Ok(());
                }
                let line = std::str::from_utf8(line).map_err(|_| "part header is not UTF-8")?;
                if let Some((name, value)) = line.split_once(':') {
                    let value = value.trim();
                    if name.eq_ignore_ascii_case("content-length") {
                        self.jpeg_len = Some(
                            value
                                .parse()
                                .map_err(|_| format!("bad Content-Length {value:?}"))?,
                        );
                    } else if name.eq_ignore_ascii_case("x-timestamp") {
                        self.captured_unix_secs = value.parse().ok();
                    }
                }
            }
            PartState::Body(_) => unreachable!("body bytes are not split into lines"),
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &[u8]) -> Vec<u8> {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    }

    /// A response in camhub's shape: head, then one chunk per piece (as hyper sends them).
    fn camhub_response(jpegs: &[&[u8]]) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: multipart/x-mixed-replace; boundary=camhubframe\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        out.extend(chunk(b"--camhubframe\r\n"));
        for (i, jpeg) in jpegs.iter().enumerate() {
            let header = format!(
                "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: 1700000000.{:03}\r\n\r\n",
                jpeg.len(),
                i
            );
            out.extend(chunk(header.as_bytes()));
            out.extend(chunk(jpeg));
            out.extend(chunk(b"\r\n--camhubframe\r\n"));
        }
        out
    }

    fn parse_in_pieces(bytes: &[u8], piece: usize) -> Vec<Part> {
        let mut r = Response::default();
        let mut parts = Vec::new();
        for p in bytes.chunks(piece) {
            r.feed(p, &mut |part| parts.push(part)).unwrap();
        }
        parts
    }

    #[test]
    fn parts_survive_any_read_split() {
        // JPEG bodies that contain the boundary text and CRLFs must be skipped by length.
        let a: &[u8] = b"\xff\xd8\r\n--camhubframe\r\n\xff\xd9";
        let b = vec![0x55u8; 70_000];
        let bytes = camhub_response(&[a, &b, a]);
        for piece in [1, 2, 3, 7, 64, 4096, bytes.len()] {
            let parts = parse_in_pieces(&bytes, piece);
            assert_eq!(parts.len(), 3, "piece size {piece}");
            assert_eq!(parts[1].jpeg_len, 70_000);
            assert_eq!(parts[2].captured_unix_secs, Some(1_700_000_000.002));
        }
    }

    #[test]
    fn rejects_non_multipart() {
        let mut r = Response::default();
        let err = r
            .feed(
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
                &mut |_| {},
            )
            .unwrap_err();
        assert!(err.contains("404"), "{err}");
    }

    #[test]
    fn end_of_chunked_stream_is_seen() {
        let mut bytes = camhub_response(&[b"xy"]);
        bytes.extend_from_slice(b"0\r\n\r\n");
        let mut r = Response::default();
        r.feed(&bytes, &mut |_| {}).unwrap();
        assert!(r.ended);
    }
}
