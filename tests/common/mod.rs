//! Shared helpers for the integration tests: start camhub in-process on 127.0.0.1:0, a
//! plain HTTP/1.1 client over real TCP, and a part-by-part multipart reader.
#![allow(dead_code)]

pub mod netns;

use camhub::app::App;
use camhub::config::Config;
use camhub::shutdown::Shutdown;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Starts camhub on an ephemeral loopback port with the given config text (TOML).
pub fn start(toml: &str) -> App {
    let mut config = Config::parse(toml, None).expect("test config is valid");
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.mdns_enabled = false;
    App::start(&config, Shutdown::new()).expect("camhub starts")
}

/// Streams `[[stream]]` entries for `(id, url)` pairs.
pub fn streams_toml(streams: &[(&str, &str)]) -> String {
    streams
        .iter()
        .map(|(id, url)| format!("[[stream]]\nid = \"{id}\"\nurl = \"{url}\"\n"))
        .collect()
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends a raw request and reads the response (which must have a Content-Length or end
/// with the connection).
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    let mut body = Vec::new();
    match headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        Some((_, n)) => {
            body.resize(n.parse().unwrap(), 0);
            if !raw.starts_with(b"HEAD") {
                r.read_exact(&mut body).unwrap();
            } else {
                body.clear();
            }
        }
        None => {
            let _ = r.read_to_end(&mut body);
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Reads a status line and headers.
pub fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
        .parse()
        .unwrap();
    (status, read_headers(r))
}

fn read_headers(r: &mut impl BufRead) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("header line");
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return headers;
        }
        let (k, v) = line.split_once(':').expect("header has a colon");
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
}

/// Reads an MJPEG response part by part, checking the framing of each.
pub struct MjpegReader {
    r: BufReader<Dechunk>,
    boundary: String,
}

pub struct Part {
    pub headers: Vec<(String, String)>,
    pub jpeg: Vec<u8>,
}

impl MjpegReader {
    /// Opens `path` and checks the response is multipart/x-mixed-replace.
    pub fn open(addr: SocketAddr, path: &str) -> MjpegReader {
        let mut s = connect(addr);
        write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        Self::from_stream(s)
    }

    pub fn from_stream(s: TcpStream) -> MjpegReader {
        let mut r = BufReader::new(s);
        let (status, headers) = read_head(&mut r);
        assert_eq!(status, 200);
        let ct = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .expect("content-type");
        assert!(ct.starts_with("multipart/x-mixed-replace"), "{ct}");
        let boundary = ct.split("boundary=").nth(1).expect("boundary").to_string();
        // The body is chunked; strip the chunk framing as we go.
        let mut reader = MjpegReader {
            r: BufReader::new(dechunk(r)),
            boundary,
        };
        let mut first = String::new();
        reader.r.read_line(&mut first).unwrap();
        assert_eq!(first, format!("--{}\r\n", reader.boundary));
        reader
    }

    /// Reads one part: headers, exactly Content-Length bytes, then the next boundary.
    pub fn part(&mut self) -> Part {
        let headers = read_headers(&mut self.r);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("part lacks {name}"))
        };
        assert_eq!(get("content-type"), "image/jpeg");
        let len: usize = get("content-length").parse().unwrap();
        let mut jpeg = vec![0; len];
        self.r.read_exact(&mut jpeg).unwrap();
        let mut end = String::new();
        self.r.read_line(&mut end).unwrap();
        assert_eq!(end, "\r\n", "part data must be followed by CRLF");
        let mut boundary = String::new();
        self.r.read_line(&mut boundary).unwrap();
        assert_eq!(boundary, format!("--{}\r\n", self.boundary));
        Part { headers, jpeg }
    }
}

/// Undoes HTTP/1.1 chunked transfer encoding on the fly (for a response whose head was
/// already read from `r`).
pub fn dechunk(r: BufReader<TcpStream>) -> Dechunk {
    Dechunk { r, left: 0 }
}

pub struct Dechunk {
    r: BufReader<TcpStream>,
    left: usize,
}

impl Read for Dechunk {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut line = String::new();
            self.r.read_line(&mut line)?;
            if line == "\r\n" {
                line.clear();
                self.r.read_line(&mut line)?;
            }
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("chunk size {line:?}"),
                )
            })?;
            if size == 0 {
                return Ok(0);
            }
            self.left = size;
        }
        let want = buf.len().min(self.left);
        let n = self.r.read(&mut buf[..want])?;
        self.left -= n;
        Ok(n)
    }
}

/// Decodes a JPEG and returns (width, height, pixels).
pub fn decode(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    let pixels = d.decode().expect("valid JPEG");
    let info = d.info().unwrap();
    (u32::from(info.width), u32::from(info.height), pixels)
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `/api/streams` entry for `id`.
pub fn api_stream(addr: SocketAddr, id: &str) -> serde_json::Value {
    let resp = get(addr, "/api/streams");
    assert_eq!(resp.status, 200);
    let all: serde_json::Value = serde_json::from_slice(&resp.body).expect("api is JSON");
    all.as_array()
        .expect("array")
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("stream {id} missing from {all}"))
}

/// A camhub binary run by a test; killed (by PID) when dropped, so a failing test never
/// leaves one behind.
pub struct Child {
    pub process: std::process::Child,
    pub addr: SocketAddr,
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Threads of the process (from /proc), for checks that nothing grows.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid())).map_or(0, |d| d.count())
    }

    /// Open file descriptors of the process (from /proc).
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Runs the real `camhub` binary on 127.0.0.1:0 with mDNS off plus `args`, and waits for
/// it to log its address. Its log goes to the test's stderr (shown on failure).
pub fn spawn_camhub(args: &[&str]) -> Child {
    spawn_camhub_with(
        std::process::Command::new(env!("CARGO_BIN_EXE_camhub")),
        args,
    )
}

/// [`spawn_camhub`] through a prepared command that runs the camhub binary (e.g. `ip
/// netns exec NS camhub`, which execs it, so the PID is camhub's).
pub fn spawn_camhub_with(command: std::process::Command, args: &[&str]) -> Child {
    spawn_camhub_keeping_log(command, args, None)
}

/// Starts camhub from `command` on 127.0.0.1:0 with mDNS off plus `args`; echoes its log
/// to the test's stderr (shown on failure) and, with `log`, keeps it there too.
fn spawn_camhub_keeping_log(
    mut command: std::process::Command,
    args: &[&str],
    log: Option<std::sync::Arc<std::sync::Mutex<String>>>,
) -> Child {
    use std::process::Stdio;
    let mut process = command
        .args(["--no-mdns", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("camhub binary runs");
    let stderr = process.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[camhub] {line}");
            if !sent {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split('/').next().unwrap_or_default().to_string());
                    sent = true;
                }
            }
            if let Some(log) = &log {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    let mut child = Child {
        process,
        addr: "127.0.0.1:1".parse().unwrap(),
    };
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("camhub logs its address");
    child.addr = addr.parse().expect("address parses");
    child
}

/// `camhub --check-config` on `toml` saved as `file_name` in a temp dir: (valid,
/// everything it printed on stdout and stderr).
pub fn check_config_file(file_name: &str, toml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camhub"))
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Reads `url` with ffmpeg for 3 s of wall-clock time and returns the frames it decoded
/// and its log. ffmpeg exits 0 even when a stream ends early, so callers judge by the
/// frame count.
pub fn ffmpeg_frames(url: &str) -> (u64, String) {
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-use_wallclock_as_timestamps",
            "1",
            "-i",
        ])
        .arg(url)
        .args(["-t", "3", "-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed (scripts/deps.sh installs it)");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let frames = log
        .rsplit("frame=")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in ffmpeg output:\n{log}"));
    (frames, log)
}

/// One `/mux` record: `<id> <length> <kind> <unix-ms> <feed>\n` and the JPEG.
#[derive(Debug)]
pub struct Record {
    pub id: String,
    pub kind: String,
    /// "main" or "sub": which of the camera's streams the picture came from.
    pub feed: String,
    pub jpeg: Vec<u8>,
}

/// Reads `/mux` records, undoing the chunked transfer encoding on the way.
pub struct MuxReader {
    r: BufReader<Dechunk>,
}

impl MuxReader {
    pub fn open(addr: SocketAddr, query: &str) -> MuxReader {
        let mut s = connect(addr);
        write!(s, "GET /mux?{query} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut r = BufReader::new(s);
        let (status, headers) = read_head(&mut r);
        assert_eq!(status, 200, "{query}");
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("content-type"), Some("application/x-camhub-mux"));
        assert_eq!(header("transfer-encoding"), Some("chunked"));
        assert!(header("cache-control").unwrap().contains("no-store"));
        MuxReader {
            r: BufReader::new(dechunk(r)),
        }
    }

    pub fn record(&mut self) -> Record {
        let mut line = String::new();
        self.r.read_line(&mut line).expect("record header");
        assert!(
            line.ends_with('\n') && line.len() <= 128,
            "bad header {line:?}"
        );
        let fields: Vec<&str> = line.trim_end().split(' ').collect();
        let [id, len, kind, unix_ms, feed] = fields[..] else {
            panic!("header {line:?} has not 5 fields");
        };
        assert!(feed == "main" || feed == "sub", "feed {feed:?}");
        let unix_ms: u64 = unix_ms.parse().expect("unix-ms is a number");
        assert!(unix_ms > 1_600_000_000_000, "capture time {unix_ms}");
        let mut jpeg = vec![0; len.parse().expect("length is a number")];
        self.r.read_exact(&mut jpeg).expect("the whole JPEG");
        Record {
            id: id.to_string(),
            kind: kind.to_string(),
            feed: feed.to_string(),
            jpeg,
        }
    }
}

/// Sends `method path` with extra header lines (`"Name: value"`) and a body, and reads
/// the answer. `Host` is `t`; the connection closes after it.
pub fn send(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    request(addr, raw.as_bytes())
}

/// [`spawn_camhub`] that also keeps everything camhub logs (at debug level), for checks
/// that something never appears in the log.
pub fn spawn_camhub_logged(args: &[&str]) -> (Child, std::sync::Arc<std::sync::Mutex<String>>) {
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_camhub"));
    command.env("RUST_LOG", "debug");
    let child = spawn_camhub_keeping_log(command, args, Some(log.clone()));
    (child, log)
}
