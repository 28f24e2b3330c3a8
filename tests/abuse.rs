//! HTTP abuse against the real `camhub` binary (issue #7): a 1 MiB request line and
//! oversized headers, 50 slowloris connections, 10,000 random and malformed requests from a
//! seeded PRNG, HTTP/1.0 and pipelined requests. Each runs while streaming viewers read
//! `/stream/cam` (the 640x480@15 test pattern) and a prober asks `/healthz` and
//! `/api/streams` every 250 ms, and checks: every abusive request gets a 4xx or a close
//! (never a 5xx but the documented 503s, never a hang past a bound), the viewers get at
//! least 90 % of the frames the source publishes (nominally 15 fps) over the abuse window,
//! the prober is always answered, camhub's RSS is flat afterwards, and camhub is still
//! running. Plus a regression test for what the suite found: a request followed by a
//! half-close must be answered. All traffic stays on 127.0.0.1. tests/http.rs has the
//! small in-process versions of some of these cases.

mod common;

use common::{api_stream, decode, spawn_camhub, Child};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SOURCE: &str = "cam=pattern:?size=640x480&fps=15";
const SOURCE_FPS: f64 = 15.0;
/// Viewers must keep this share of the source's rate through any abuse window (of
/// nominal 15 fps, or of what the source published if a loaded machine held it back).
const MIN_FPS_SHARE: f64 = 0.9;
/// Streaming viewers per test: more than one, so one lucky connection proves nothing.
const VIEWERS: usize = 2;
/// Allowed RSS growth (and, for the long-line case, peak growth) over the baseline taken
/// after warm-up. By design (DESIGN.md) memory is bounded by streams × 1-2 frames (~40 KiB
/// each here) + connections × one read buffer (hyper: at most 2 × 16 KiB) and one frame in
/// flight. The biggest burst here holds ~62 connections (~4 MiB of buffers at worst),
/// which glibc may keep mapped after they are freed. 8 MiB covers that, yet catches a
/// leak of 1 KiB per request over the 10,000 garbage requests (~10 MiB) and a server that
/// buffers 16 one-MiB request lines at once (16 MiB).
const RSS_GROWTH_MAX_KIB: u64 = 8 * 1024;
/// camhub's header read timeout (src/http/mod.rs `HEADER_READ_TIMEOUT`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Generous slack on top of it for a loaded machine.
const HEADER_TIMEOUT_SLACK: Duration = Duration::from_secs(5);
/// Any single abusive exchange must end (answer or close) within this: the server waits
/// for nothing once the client has sent all it will (its write side is shut).
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(8);

// ---- the rig: camhub, streaming viewers, a prober --------------------------------------

/// One MJPEG viewer on its own thread, recording when each part arrived.
struct Viewer {
    stop: Arc<AtomicBool>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    thread: Option<JoinHandle<()>>,
}

impl Viewer {
    fn start(addr: SocketAddr) -> Viewer {
        let stop = Arc::new(AtomicBool::new(false));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let mut reader = common::MjpegReader::open(addr, "/stream/cam");
        let (w, h, _) = decode(&reader.part().jpeg);
        assert_eq!((w, h), (640, 480));
        let thread = {
            let (stop, arrivals) = (stop.clone(), arrivals.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Panics (and so fails the test at join) on a framing error, or when
                    // no part arrives within the reader's 10 s timeout.
                    let part = reader.part();
                    arrivals.lock().unwrap().push(Instant::now());
                    assert!(part.jpeg.starts_with(&[0xff, 0xd8]), "part is a JPEG");
                }
            })
        };
        Viewer {
            stop,
            arrivals,
            thread: Some(thread),
        }
    }

    fn parts_between(&self, from: Instant, to: Instant) -> usize {
        let arrivals = self.arrivals.lock().unwrap();
        arrivals.iter().filter(|t| **t >= from && **t < to).count()
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.expect("viewer thread failed (stream broke or stalled)");
            }
        }
    }
}

/// One probe: when it was sent, what it asked, what came back, how long it took.
#[derive(Clone)]
struct Probe {
    at: Instant,
    path: &'static str,
    status: Option<u16>,
    error: String,
    took: Duration,
    /// From `/api/streams`: frames the source had published by then.
    frames: Option<u64>,
}

/// Asks `/healthz` and `/api/streams` every 250 ms on fresh connections.
struct Prober {
    stop: Arc<AtomicBool>,
    probes: Arc<Mutex<Vec<Probe>>>,
    thread: Option<JoinHandle<()>>,
}

impl Prober {
    fn start(addr: SocketAddr) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let probes = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, probes) = (stop.clone(), probes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for path in ["/healthz", "/api/streams"] {
                        let at = Instant::now();
                        let raw =
                            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                        let ex = exchange(
                            addr,
                            raw.as_bytes(),
                            HalfClose::Never,
                            Duration::from_secs(5),
                        );
                        let took = at.elapsed();
                        probes.lock().unwrap().push(Probe {
                            at,
                            path,
                            status: ex.status(),
                            error: format!("{:?} {:?}", ex.end, shown(&ex.reply, 200)),
                            took,
                            frames: published_frames(&ex.reply),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        Prober {
            stop,
            probes,
            thread: Some(thread),
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The `frames` count of stream `cam` in an `/api/streams` reply.
fn published_frames(reply: &[u8]) -> Option<u64> {
    let start = reply.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let all: serde_json::Value = serde_json::from_slice(&reply[start..]).ok()?;
    all.as_array()?
        .iter()
        .find(|s| s["id"] == "cam")?
        .get("frames")?
        .as_u64()
}

/// camhub with its viewers and prober, warmed up.
struct Rig {
    // Dropped in this order: prober and viewers stop before camhub is killed.
    prober: Prober,
    viewers: Vec<Viewer>,
    camhub: Child,
    baseline_rss_kib: u64,
}

impl Rig {
    fn start() -> Rig {
        let camhub = spawn_camhub(&["--source", SOURCE]);
        let addr = camhub.addr;
        let live = common::eventually(Duration::from_secs(10), || {
            (api_stream(addr, "cam")["state"] == "live").then_some(())
        });
        assert!(live.is_some(), "the pattern goes live");
        let viewers: Vec<Viewer> = (0..VIEWERS).map(|_| Viewer::start(addr)).collect();
        let prober = Prober::start(addr);
        // Warm-up: every thread, buffer and allocator arena the steady state needs exists
        // before the baseline is taken.
        std::thread::sleep(Duration::from_secs(2));
        let baseline_rss_kib = proc_status_kib(camhub.pid(), "VmRSS");
        Rig {
            prober,
            viewers,
            camhub,
            baseline_rss_kib,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.camhub.addr
    }

    /// Asserts the viewers kept ≥ 90 % of the frames the source published (15 fps
    /// nominal) and every probe was answered 200 in `[from, to)`; returns the lowest viewer fps.
    fn check_window(&self, what: &str, from: Instant, to: Instant) -> f64 {
        let secs = (to - from).as_secs_f64();
        let fps: Vec<f64> = self
            .viewers
            .iter()
            .map(|v| v.parts_between(from, to) as f64 / secs)
            .collect();
        let min_fps = fps.iter().copied().fold(f64::INFINITY, f64::min);
        let window: Vec<Probe> = self
            .prober
            .probes
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.at >= from && p.at < to)
            .cloned()
            .collect();
        let slowest = window.iter().map(|p| p.took).max().unwrap_or_default();
        // The source's own rate over (nearly) the same window, from the API's counter.
        let counted: Vec<(Instant, u64)> = window
            .iter()
            .filter_map(|p| Some((p.at + p.took, p.frames?)))
            .collect();
        let published_fps = match (counted.first(), counted.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64(),
            _ => f64::NAN,
        };
        eprintln!(
            "{what}: {secs:.1} s window, viewer fps {fps:.1?}, source published \
             {published_fps:.1} fps, {} probes (slowest {} ms)",
            window.len(),
            slowest.as_millis()
        );
        // Judged against what the source published in the same window: on a shared,
        // loaded machine the pattern itself can fall below 15 fps (it skips late ticks),
        // which says nothing about serving.
        let reference_fps = if published_fps.is_finite() {
            published_fps.min(SOURCE_FPS)
        } else {
            SOURCE_FPS
        };
        assert!(
            min_fps >= MIN_FPS_SHARE * reference_fps,
            "{what}: a viewer got {min_fps:.1} fps during the abuse: {fps:.1?}; \
             the source published {published_fps:.1} fps meanwhile (nominal {SOURCE_FPS})"
        );
        for p in &window {
            assert_eq!(
                p.status,
                Some(200),
                "{what}: {} not answered during the abuse: {}",
                p.path,
                p.error
            );
        }
        // The prober runs every 250 ms plus its own time: at least one round per second.
        assert!(
            window.len() as f64 >= 2.0 * secs.floor(),
            "{what}: only {} probes in {secs:.1} s (the server answers slowly)",
            window.len()
        );
        min_fps
    }

    /// Asserts camhub still runs and serves, and its RSS is within the bound of the
    /// baseline; returns (baseline, now) in KiB.
    fn check_after(&mut self, what: &str) -> (u64, u64) {
        let exited = self.camhub.process.try_wait().expect("wait");
        assert!(exited.is_none(), "{what}: camhub exited: {exited:?}");
        assert_eq!(common::get(self.addr(), "/healthz").status, 200);
        assert_eq!(common::get(self.addr(), "/api/streams").status, 200);
        assert_eq!(api_stream(self.addr(), "cam")["state"], "live");
        // Closed connections are released by the executor shortly after the close.
        std::thread::sleep(Duration::from_secs(1));
        let now = proc_status_kib(self.camhub.pid(), "VmRSS");
        eprintln!(
            "{what}: RSS {} KiB before, {now} KiB after ({:+} KiB)",
            self.baseline_rss_kib,
            now as i64 - self.baseline_rss_kib as i64
        );
        assert!(
            now <= self.baseline_rss_kib + RSS_GROWTH_MAX_KIB,
            "{what}: RSS grew from {} KiB to {now} KiB",
            self.baseline_rss_kib
        );
        (self.baseline_rss_kib, now)
    }
}

/// A `/proc/PID/status` field in KiB (VmRSS, VmHWM).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("camhub runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Resets VmHWM (peak RSS) of our own child to its current RSS (proc(5), clear_refs 5).
fn reset_peak_rss(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM of camhub");
}

// ---- one request/response exchange -------------------------------------------------------

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The server closed the connection.
    Closed,
    /// The server reset the connection (usual when it closes with request bytes unread).
    Reset,
    /// A complete response arrived and the connection stays open for the next request
    /// (keep-alive, when the client did not shut its write side).
    Answered,
    /// A stream's head arrived (multipart or mux): the client stops reading there.
    Stream,
    /// Nothing ended the exchange within the deadline.
    Hang,
}

struct Exchange {
    reply: Vec<u8>,
    end: End,
}

impl Exchange {
    /// The status of the first response, if one arrived.
    fn status(&self) -> Option<u16> {
        status_at(&self.reply, 0)
    }

    /// Every status line in the reply (pipelined responses included).
    fn statuses(&self) -> Vec<u16> {
        (0..self.reply.len())
            .filter(|&i| i == 0 || self.reply[i - 1] == b'\n')
            .filter_map(|i| status_at(&self.reply, i))
            .collect()
    }
}

fn status_at(buf: &[u8], i: usize) -> Option<u16> {
    let rest = buf.get(i..)?;
    if !(rest.starts_with(b"HTTP/1.1 ") || rest.starts_with(b"HTTP/1.0 ")) {
        return None;
    }
    std::str::from_utf8(rest.get(9..12)?).ok()?.parse().ok()
}

/// When the client shuts its write side after sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HalfClose {
    /// Never: for complete requests, which must be answered as they are.
    Never,
    /// After the first complete response, or once the server has been silent this long
    /// (it waits for the rest of an incomplete request: the FIN tells it none will come,
    /// instead of making every truncated input wait for the 10 s header timeout).
    AfterQuiet(Duration),
}

/// Sends `input` and reads until the server closes, a complete response (or a stream's
/// head) arrives, or `deadline` passes. Replies are kept up to 256 KiB.
fn exchange(addr: SocketAddr, input: &[u8], half_close: HalfClose, deadline: Duration) -> Exchange {
    let t0 = Instant::now();
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => panic!("cannot connect to camhub: {e}"),
    };
    s.set_write_timeout(Some(deadline)).unwrap();
    // The server may answer and close before taking everything: not an error.
    let _ = s.write_all(input);
    let written_at = Instant::now();
    let mut shut = false;
    let mut reply = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        let answered = first_response_complete(&reply);
        if let (HalfClose::AfterQuiet(quiet), false) = (half_close, shut) {
            if answered || written_at.elapsed() >= quiet {
                let _ = s.shutdown(Shutdown::Write);
                shut = true;
            }
        }
        if answered && !shut {
            break End::Answered;
        }
        let left = deadline.saturating_sub(t0.elapsed());
        if left.is_zero() {
            break End::Hang;
        }
        let wait = match (half_close, shut) {
            (HalfClose::AfterQuiet(quiet), false) => left.min(
                quiet
                    .saturating_sub(written_at.elapsed())
                    .max(Duration::from_millis(1)),
            ),
            _ => left,
        };
        s.set_read_timeout(Some(wait)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break End::Closed,
            Ok(n) => {
                if reply.len() < 256 * 1024 {
                    reply.extend_from_slice(&buf[..n]);
                }
                if is_stream_head(&reply) {
                    break End::Stream;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break End::Reset,
        }
    };
    Exchange { reply, end }
}

/// The head of the first response in `reply`, lowercased, if complete; and where its
/// body starts.
fn first_head(reply: &[u8]) -> Option<(String, usize)> {
    let len = reply.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((
        String::from_utf8_lossy(&reply[..len]).to_ascii_lowercase(),
        len + 4,
    ))
}

/// True once the first response in `reply` is complete: head and Content-Length body.
fn first_response_complete(reply: &[u8]) -> bool {
    let Some((head, body_at)) = first_head(reply) else {
        return false;
    };
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .is_some_and(|n| reply.len() >= body_at + n)
}

/// True once the last response head in `reply` is complete and starts a stream (an
/// MJPEG or mux body that never ends by itself).
fn is_stream_head(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply).to_ascii_lowercase();
    let Some(start) = text.rfind("http/1.") else {
        return false;
    };
    let Some(head_len) = text[start..].find("\r\n\r\n") else {
        return false;
    };
    let head = &text[start..start + head_len];
    head.contains("content-type: multipart/x-mixed-replace")
        || head.contains("content-type: application/x-camhub-mux")
}

/// Bytes for a failure message: printable ASCII as is, the rest escaped, cut at `max`.
fn shown(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let mut s: String = cut
        .iter()
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect();
    if bytes.len() > max {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

// ---- 1 MiB request lines and oversized headers ---------------------------------------------

/// Sends `prefix` then `filler` bytes of 'A' with no newline, as fast as the server takes
/// them; returns what came back, and how long until the server answered or closed.
fn endless_line(addr: SocketAddr, prefix: &[u8], filler: usize) -> (Vec<u8>, Duration) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_write_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
    s.set_read_timeout(Some(EXCHANGE_DEADLINE)).unwrap();
    let chunk = vec![b'A'; 16 * 1024];
    let mut sent = 0;
    if s.write_all(prefix).is_ok() {
        while sent < filler {
            let n = chunk.len().min(filler - sent);
            if s.write_all(&chunk[..n]).is_err() {
                break; // the server closed: it refused to read on, as it should
            }
            sent += n;
        }
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply); // EOF, reset or timeout all end it
    (reply, t0.elapsed())
}

/// A 1 MiB request line (16 at once), a 1 MiB header value, 10,000 header lines and
/// 101 headers: each answered 431 (or 4xx) or closed, quickly, without the server
/// buffering them (peak RSS), while the viewers keep full fps. Requests just inside the
/// limits still work.
#[test]
fn huge_request_lines_and_headers_are_refused_without_buffering() {
    let mut rig = Rig::start();
    let addr = rig.addr();
    reset_peak_rss(rig.camhub.pid());
    let from = Instant::now();

    // 16 connections at once, each a 1 MiB request line with no newline.
    let lines: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || endless_line(addr, b"GET /", 1024 * 1024)))
        .collect();
    let mut cases: Vec<(String, Vec<u8>, Duration)> = lines
        .into_iter()
        .map(|t| {
            let (reply, took) = t.join().unwrap();
            ("1 MiB request line".to_string(), reply, took)
        })
        .collect();
    // One header whose value never ends, and a 1 MiB line after a request line.
    let (reply, took) = endless_line(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ",
        1 << 20,
    );
    cases.push(("1 MiB header value".into(), reply, took));
    let (reply, took) = endless_line(addr, b"GET /healthz HTTP/1.1\r\n", 1 << 20);
    cases.push(("1 MiB header line".into(), reply, took));
    // Many header lines: 10,000 small ones (~120 KiB), and 101 (over hyper's count).
    let many = |n: usize| {
        let mut req = b"GET /healthz HTTP/1.1\r\nHost: t\r\n".to_vec();
        for i in 0..n {
            req.extend(format!("X-Header-{i}: v\r\n").as_bytes());
        }
        req.extend(b"Connection: close\r\n\r\n");
        req
    };
    for n in [10_000, 101] {
        let t0 = Instant::now();
        let ex = exchange(addr, &many(n), HalfClose::Never, EXCHANGE_DEADLINE);
        cases.push((format!("{n} header lines"), ex.reply, t0.elapsed()));
    }
    // 24 KiB in one header (over the 16 KiB limit, under hyper's 32 KiB read buffer).
    let mut big = b"GET /healthz HTTP/1.1\r\nHost: t\r\nCookie: ".to_vec();
    big.extend(std::iter::repeat_n(b'c', 24 * 1024));
    big.extend(b"\r\nConnection: close\r\n\r\n");
    let t0 = Instant::now();
    let ex = exchange(addr, &big, HalfClose::Never, EXCHANGE_DEADLINE);
    cases.push(("24 KiB header".into(), ex.reply, t0.elapsed()));

    for (what, reply, took) in &cases {
        let status = status_at(reply, 0);
        eprintln!("{what}: {status:?} after {} ms", took.as_millis());
        assert!(
            reply.is_empty() || matches!(status, Some(400..=499)),
            "{what}: expected a 4xx or a close, got {}",
            shown(reply, 300)
        );
        assert!(
            *took < EXCHANGE_DEADLINE,
            "{what}: the server neither answered nor closed within {EXCHANGE_DEADLINE:?}"
        );
    }
    let answered_431 = cases
        .iter()
        .filter(|(_, r, _)| status_at(r, 0) == Some(431))
        .count();
    eprintln!(
        "{answered_431} of {} answered 431, the rest closed",
        cases.len()
    );
    assert!(
        cases
            .iter()
            .filter(|(w, _, _)| w.contains("header lines") || w.contains("KiB header"))
            .all(|(_, r, _)| status_at(r, 0) == Some(431)),
        "complete but oversized requests are answered 431"
    );

    // Just inside the limits: browsers send big cookies and a dozen headers.
    let mut fits = b"GET /healthz HTTP/1.1\r\nHost: t\r\nCookie: ".to_vec();
    fits.extend(std::iter::repeat_n(b'c', 8 * 1024));
    fits.extend(b"\r\n");
    for i in 0..50 {
        fits.extend(format!("X-Header-{i}: v\r\n").as_bytes());
    }
    fits.extend(b"Connection: close\r\n\r\n");
    let ex = exchange(addr, &fits, HalfClose::Never, EXCHANGE_DEADLINE);
    assert_eq!(ex.status(), Some(200), "{}", shown(&ex.reply, 300));

    let peak_kib = proc_status_kib(rig.camhub.pid(), "VmHWM");
    // The abuse above takes well under a second: measure the viewers over at least 5 s.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(from.elapsed()));
    let to = Instant::now();
    rig.check_window("huge lines and headers", from, to);
    eprintln!(
        "peak RSS during the abuse {peak_kib} KiB (baseline {} KiB, {:+} KiB)",
        rig.baseline_rss_kib,
        peak_kib as i64 - rig.baseline_rss_kib as i64
    );
    assert!(
        peak_kib <= rig.baseline_rss_kib + RSS_GROWTH_MAX_KIB,
        "peak RSS {peak_kib} KiB vs baseline {} KiB: the request lines were buffered",
        rig.baseline_rss_kib
    );
    rig.check_after("huge lines and headers");
}

// ---- slowloris ---------------------------------------------------------------------------

/// What the slow clients send, one byte per second; none of it ever completes a head.
const SLOW_PREFIXES: [&[u8]; 5] = [
    b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    b"GET /stream/cam?aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    b"GET /api/streams HTTP/1.1\r\nHost: t\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\nX-E: 5\r\n",
    b"POST /snapshot/cam HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nX-Wait: zzzzzzzzzzzzzz",
    b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
];

/// 50 connections sending a partial request a byte a second (and 10 sending nothing) are
/// all cut by the header timeout (10 s), while the viewers keep full fps and new requests
/// are answered throughout.
#[test]
fn slowloris_connections_are_cut_by_the_header_timeout() {
    const TRICKLING: usize = 50;
    const IDLE: usize = 10;
    let mut rig = Rig::start();
    let addr = rig.addr();
    let from = Instant::now();
    struct Slow {
        s: TcpStream,
        prefix: &'static [u8],
        sent: usize,
        cut_after: Option<Duration>,
        reply: Vec<u8>,
    }
    let mut slow: Vec<Slow> = (0..TRICKLING + IDLE)
        .map(|i| {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_nonblocking(true).unwrap();
            Slow {
                s,
                prefix: if i < TRICKLING {
                    SLOW_PREFIXES[i % SLOW_PREFIXES.len()]
                } else {
                    b""
                },
                sent: 0,
                cut_after: None,
                reply: Vec::new(),
            }
        })
        .collect();
    let limit = HEADER_TIMEOUT + HEADER_TIMEOUT_SLACK;
    let mut next_byte_at = from;
    while slow.iter().any(|c| c.cut_after.is_none()) && from.elapsed() < limit {
        let trickle = Instant::now() >= next_byte_at;
        if trickle {
            next_byte_at += Duration::from_secs(1);
        }
        for c in slow.iter_mut().filter(|c| c.cut_after.is_none()) {
            if trickle && c.sent < c.prefix.len() {
                match c.s.write(&c.prefix[c.sent..c.sent + 1]) {
                    Ok(n) => c.sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => c.cut_after = Some(from.elapsed()),
                }
            }
            let mut buf = [0u8; 1024];
            match c.s.read(&mut buf) {
                Ok(0) => c.cut_after = Some(from.elapsed()),
                Ok(n) => c.reply.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => c.cut_after = Some(from.elapsed()),
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let to = Instant::now();
    let cut: Vec<Duration> = slow.iter().filter_map(|c| c.cut_after).collect();
    let min = cut.iter().min().copied().unwrap_or_default();
    let max = cut.iter().max().copied().unwrap_or_default();
    eprintln!(
        "slowloris: {} of {} connections cut, after {:.1}-{:.1} s; {} bytes trickled",
        cut.len(),
        slow.len(),
        min.as_secs_f64(),
        max.as_secs_f64(),
        slow.iter().map(|c| c.sent).sum::<usize>()
    );
    for (i, c) in slow.iter().enumerate() {
        assert!(
            c.cut_after.is_some(),
            "slow connection {i} (sent {:?}) still open after {limit:?}",
            shown(&c.prefix[..c.sent], 100)
        );
        assert!(
            c.reply.is_empty() || matches!(status_at(&c.reply, 0), Some(400..=499)),
            "slow connection {i}: expected a 4xx or a close, got {}",
            shown(&c.reply, 200)
        );
    }
    assert!(
        slow.iter().filter(|c| c.sent > 0).count() == TRICKLING,
        "every trickling connection was sending when it was cut"
    );
    rig.check_window("slowloris", from, to);
    drop(slow);
    rig.check_after("slowloris");
}

// ---- 10,000 garbage requests --------------------------------------------------------------

/// xorshift64* (Vigna): tiny, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    /// The generator for input `index` of a run with `seed`, so one input can be remade
    /// alone.
    fn for_input(seed: u64, index: u64) -> Rng {
        // splitmix64 of seed and index: neighbouring indexes get unrelated streams.
        let mut z = seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }
}

/// Requests camhub must answer 2xx.
const VALID: [&str; 10] = [
    "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /api/streams HTTP/1.1\r\nHost: t\r\nAccept: application/json\r\n\r\n",
    "GET /api/info HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /api/peers HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: t\r\nUser-Agent: prometheus\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: camhub.local:8080\r\nAccept: text/html\r\n\r\n",
    "GET /snapshot/cam HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /?action=snapshot HTTP/1.1\r\nHost: t\r\n\r\n",
    "HEAD /stream/cam HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /healthz HTTP/1.0\r\n\r\n",
];

/// Starting points for mutation (valid ones and ones with bodies).
const TEMPLATES: [&str; 8] = [
    "GET /stream/cam?fps=5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "GET /mux?ids=cam&fps=2 HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /?action=stream&id=cam HTTP/1.1\r\nHost: t\r\n\r\n",
    "POST /api/streams HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    "POST /snapshot/cam HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "GET /healthz HTTP/1.1\r\nHost: t\r\nAuthorization: Basic dTpw\r\nCookie: a=b\r\n\r\n",
    "GET /api/info HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /snapshot/cam HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
];

/// Fragments that tend to break parsers.
const TOKENS: [&[u8]; 30] = [
    b"\0",
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b"%",
    b"%00",
    b"%zz",
    b"%2e%2e%2f",
    b"../",
    b"\xff\xfe",
    b"\xc0\xaf",
    b"99999999999999999999999",
    b"-1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"chunked",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"Host: ",
    b"?fps=",
    b"/stream/cam",
    b"http://",
    b"*",
    b"\x7f",
    b"0\r\n\r\n",
];

/// What an input must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A valid request: 2xx.
    Success,
    /// Certainly invalid: a 4xx or a close, never 2xx.
    Reject,
    /// Anything but a 5xx or a hang (a mutation can still be valid).
    NoServerError,
}

/// Input `index` of the run with `seed`, and what it must get.
fn garbage(seed: u64, index: u64) -> (Vec<u8>, Expect) {
    let mut rng = Rng::for_input(seed, index);
    match rng.below(100) {
        0..=9 => (rng.pick(&VALID).as_bytes().to_vec(), Expect::Success),
        10..=24 => {
            // Random bytes; sometimes only printable ones, which look more like HTTP.
            let len = rng.below(1500);
            let printable = rng.percent(50);
            let bytes = (0..len)
                .map(|_| {
                    let b = rng.next() as u8;
                    if printable {
                        const ALPHABET: &[u8] = b" \r\n:/?%GETHTP1.0abc";
                        ALPHABET[usize::from(b) % ALPHABET.len()]
                    } else {
                        b
                    }
                })
                .collect();
            (bytes, Expect::NoServerError)
        }
        25..=64 => (mutated(&mut rng), Expect::NoServerError),
        _ => malformed(&mut rng),
    }
}

/// A valid request or template with 1-4 random mutations.
fn mutated(rng: &mut Rng) -> Vec<u8> {
    let mut req = if rng.percent(50) {
        rng.pick(&VALID).as_bytes().to_vec()
    } else {
        rng.pick(&TEMPLATES).as_bytes().to_vec()
    };
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(req.len() + 1);
        match rng.below(8) {
            0 if !req.is_empty() => {
                let i = rng.below(req.len());
                req[i] = rng.next() as u8;
            }
            1 => {
                let token = rng.pick(&TOKENS);
                req.splice(at..at, token.iter().copied());
            }
            2 => {
                let end = (at + rng.below(20)).min(req.len());
                req.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(40)).min(req.len());
                let copy = req[at..end].to_vec();
                req.splice(at..at, copy);
            }
            4 => req.truncate(at),
            5 if !req.is_empty() => {
                let i = rng.below(req.len());
                req[i] = rng.pick(b"\0\r\n \t:%/?#");
            }
            6 => {
                // One header line repeated many times.
                let line = format!("X-Repeat-{}: {}\r\n", rng.below(10), rng.next());
                let times = 1 + rng.below(150);
                let at = req
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .map_or(req.len(), |p| p + 2);
                let lines = line.repeat(times);
                req.splice(at..at, lines.bytes());
            }
            _ => {
                // A huge number somewhere.
                let digits = "9".repeat(1 + rng.below(60));
                req.splice(at..at, digits.bytes());
            }
        }
    }
    req
}

/// A request broken in one known way; most must be rejected.
fn malformed(rng: &mut Rng) -> (Vec<u8>, Expect) {
    let path = rng.pick(&[
        "/healthz",
        "/api/streams",
        "/stream/cam",
        "/snapshot/cam",
        "/",
    ]);
    let host = "Host: t\r\n";
    let (text, expect): (Vec<u8>, Expect) = match rng.below(16) {
        0 => {
            let method = rng.pick(&["G(ET", "GE T", "GET\x01", "\x00GET", "[GET]", "G\"T"]);
            (
                format!("{method} {path} HTTP/1.1\r\n{host}\r\n").into_bytes(),
                Expect::Reject,
            )
        }
        1 => {
            let method = rng.pick(&["PUT", "DELETE", "BREW", "PROPFIND", "TRACE", "PATCH"]);
            (
                format!("{method} {path} HTTP/1.1\r\n{host}Content-Length: 0\r\n\r\n").into_bytes(),
                Expect::Reject,
            )
        }
        2 => {
            let version = rng.pick(&[
                "HTTP/1.2",
                "HTTP/2.0",
                "HTTP/0.9",
                "HTTP/1",
                "HTTP/1.1.1",
                "http/1.1",
                "HTTP/11",
                "HTTP/9.9",
                "HTTX/1.1",
                "HTTP/1.1 extra",
            ]);
            (
                format!("GET {path} {version}\r\n{host}\r\n").into_bytes(),
                Expect::Reject,
            )
        }
        3 => {
            let length = rng.pick(&[
                "-1",
                "abc",
                "1e3",
                "18446744073709551616",
                "99999999999999999999999",
                "5 5",
                "0x10",
                "+5",
                "5, 6",
                "",
            ]);
            (
                format!("POST {path} HTTP/1.1\r\n{host}Content-Length: {length}\r\n\r\nhello")
                    .into_bytes(),
                Expect::Reject,
            )
        }
        4 => (
            format!(
                "GET {path} HTTP/1.1\r\n{host}Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx"
            )
            .into_bytes(),
            Expect::Reject,
        ),
        5 => {
            // A chunked body that lies: longer than sent, bad hex, overflowing, no end.
            let body = rng.pick(&[
                "fffff\r\nabc",
                "zz\r\nabc\r\n0\r\n\r\n",
                "ffffffffffffffffffffff\r\nabc\r\n",
                "5\r\nhello world\r\n0\r\n\r\n",
                "5;ext=\"\0\"\r\nhello\r\n0\r\n\r\n",
                "3\r\nabc\r\n",
                "-1\r\nabc\r\n0\r\n\r\n",
                "0\r\nX-Trailer: \0\r\n\r\n",
            ]);
            let method = rng.pick(&["GET", "POST"]);
            (
                format!(
                    "{method} {path} HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n{body}"
                )
                .into_bytes(),
                Expect::NoServerError,
            )
        }
        6 => {
            let te = rng.pick(&["gzip", "chunked, gzip", "xchunked", "identity", "chunked;x"]);
            (
                format!("POST {path} HTTP/1.1\r\n{host}Transfer-Encoding: {te}\r\n\r\nhello")
                    .into_bytes(),
                Expect::Reject,
            )
        }
        7 => {
            // NUL and control bytes in the request line.
            let mut req = format!("GET {path} HTTP/1.1\r\n{host}\r\n").into_bytes();
            let at = 4 + rng.below(path.len());
            req.insert(at, rng.pick(b"\0\x01\x7f\x08\x1b"));
            (req, Expect::Reject)
        }
        8 => {
            // Invalid UTF-8 (raw, not escaped) in the path.
            let bad = rng.pick::<&[u8]>(&[b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80\x80"]);
            let mut req = b"GET /stream/".to_vec();
            req.extend(bad);
            req.extend(format!(" HTTP/1.1\r\n{host}\r\n").as_bytes());
            (req, Expect::Reject)
        }
        9 => {
            // Escapes, dot segments, absolute and odd request targets.
            let target = rng.pick(&[
                "/%",
                "/%%%",
                "/%zz/%00",
                "/stream/%63am",
                "/stream/..%2f..%2fetc%2fpasswd",
                "/../../../../etc/passwd",
                "//healthz",
                "/healthz/../stream/cam?fps=0",
                "/./api/./streams",
                "*",
                "http://evil.example/api/info",
                "https://t:99999999/healthz",
                "t:80",
                "/?action=snapshot&id=%ff%fe",
                "/?action=stream&id=%00",
                "/mux?ids=,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,",
                "/stream/cam?fps=1e999",
                "/stream/cam?fps=NaN",
                "/stream/cam?fps=-0",
                "/mux?ids=cam&fps=inf",
            ]);
            (
                format!("GET {target} HTTP/1.1\r\n{host}Connection: close\r\n\r\n").into_bytes(),
                Expect::NoServerError,
            )
        }
        10 => {
            // Broken header lines.
            let line = rng.pick::<&[u8]>(&[
                b"Host t\r\n",
                b"Ho st: t\r\n",
                b": empty-name\r\n",
                b"X-Nul: a\0b\r\n",
                b"X-Cr: a\rb\r\n",
                b"X\x01Y: z\r\n",
                b"X-Bad\xff: z\r\n",
                b"\x7fName: z\r\n",
            ]);
            let mut req = format!("GET {path} HTTP/1.1\r\n{host}").into_bytes();
            req.extend(line);
            req.extend(b"\r\n");
            (req, Expect::Reject)
        }
        11 => {
            // Oddities a lenient parser accepts: obs-fold, LF-only lines, 8-bit values.
            let req = rng.pick(&[
                "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Fold: a\r\n b\r\n\r\n",
                "GET /healthz HTTP/1.1\nHost: t\n\n",
                "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Latin: caf\u{e9}\r\n\r\n",
                "GET  /healthz  HTTP/1.1\r\nHost: t\r\n\r\n",
                "GET\t/healthz\tHTTP/1.1\r\nHost: t\r\n\r\n",
                "GET /healthz HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n",
                "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
                "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            ]);
            (req.as_bytes().to_vec(), Expect::NoServerError)
        }
        12 => {
            // Huge numbers where numbers go.
            let n = "9".repeat(1 + rng.below(400));
            let req = match rng.below(4) {
                0 => format!("GET /stream/cam?fps={n} HTTP/1.1\r\n{host}Connection: close\r\n\r\n"),
                1 => {
                    format!("GET /mux?ids=cam&fps={n} HTTP/1.1\r\n{host}Connection: close\r\n\r\n")
                }
                2 => format!("GET /healthz HTTP/1.1\r\nHost: t:{n}\r\n\r\n"),
                _ => format!("GET /snapshot/{n} HTTP/1.1\r\n{host}\r\n"),
            };
            (req.into_bytes(), Expect::NoServerError)
        }
        13 => {
            // A request line with no target, no version, or nothing at all.
            let line = rng.pick(&["GET", "GET /", "GET  HTTP/1.1", " / HTTP/1.1", "/ HTTP/1.1"]);
            (format!("{line}\r\n{host}\r\n").into_bytes(), Expect::Reject)
        }
        14 => {
            // A long but legal URI: answered (404 or 200), or refused as too long.
            let len = rng.below(20_000);
            let req = format!("GET /{} HTTP/1.1\r\n{host}\r\n", "a".repeat(len));
            (req.into_bytes(), Expect::NoServerError)
        }
        _ => {
            // Truncated anywhere: the server gets EOF mid-request.
            let full = format!("GET {path} HTTP/1.1\r\n{host}Accept: */*\r\n\r\n").into_bytes();
            let cut = rng.below(full.len() - 3);
            (full[..cut].to_vec(), Expect::NoServerError)
        }
    };
    (text, expect)
}

/// Outcome classes counted over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Ok2xx,
    Stream2xx,
    Other3xx,
    Client4xx,
    Documented503,
    ClosedSilently,
    ResetSilently,
    // Failures:
    Server5xx,
    NotHttp,
    Hang,
    WrongForValid,
    AcceptedInvalid,
}

fn classify(ex: &Exchange, expect: Expect) -> Class {
    if !ex.reply.is_empty() && ex.status().is_none() {
        return Class::NotHttp;
    }
    let documented_503 = |ex: &Exchange| {
        let text = String::from_utf8_lossy(&ex.reply);
        text.contains("too many connections")
            || text.contains("too many viewers")
            || text.contains("stream cam is")
    };
    for status in ex.statuses() {
        if (500..=599).contains(&status) && !(status == 503 && documented_503(ex)) {
            return Class::Server5xx;
        }
    }
    let class = match (ex.status(), ex.end) {
        (None, End::Hang) => return Class::Hang,
        (None, End::Reset) => Class::ResetSilently,
        (None, _) => Class::ClosedSilently,
        // A response arrived but the connection stayed open after the client's FIN:
        // the server is waiting for a request that cannot come.
        (Some(_), End::Hang) => return Class::Hang,
        (Some(200..=299), End::Stream) => Class::Stream2xx,
        (Some(200..=299), _) => Class::Ok2xx,
        (Some(300..=399), _) => Class::Other3xx,
        (Some(400..=499), _) => Class::Client4xx,
        (Some(503), _) => Class::Documented503,
        (Some(_), _) => return Class::NotHttp,
    };
    match expect {
        Expect::Success if !matches!(class, Class::Ok2xx | Class::Stream2xx) => {
            Class::WrongForValid
        }
        Expect::Reject if matches!(class, Class::Ok2xx | Class::Stream2xx | Class::Other3xx) => {
            Class::AcceptedInvalid
        }
        _ => class,
    }
}

/// The run's seed: `CAMHUB_ABUSE_SEED` to replay a failure, else a fresh one.
fn seed() -> u64 {
    match std::env::var("CAMHUB_ABUSE_SEED") {
        Ok(s) => s.parse().expect("CAMHUB_ABUSE_SEED is a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// 10,000 random, mutated and malformed requests over 8 parallel connections: none
/// gets a 5xx (but the documented 503s) or hangs past 8 s, valid ones get 2xx, known-bad
/// ones get a 4xx or a close, the viewers keep full fps, camhub keeps serving and its RSS
/// stays flat. Prints the seed; `CAMHUB_ABUSE_SEED=<seed>` replays a run.
#[test]
fn ten_thousand_garbage_requests_get_4xx_or_close() {
    const REQUESTS: u64 = 10_000;
    const THREADS: usize = 8;
    /// The whole run must finish in this (a server slowing to a crawl is a finding).
    const RUN_LIMIT: Duration = Duration::from_secs(60);
    /// Silence after which an input is taken as incomplete (camhub answers a complete
    /// request within a few ms; too short only costs a silent close, never a failure).
    const QUIET: Duration = Duration::from_millis(100);
    let seed = seed();
    eprintln!("garbage requests: seed {seed} (replay with CAMHUB_ABUSE_SEED={seed})");
    let mut rig = Rig::start();
    let addr = rig.addr();
    let next = Arc::new(AtomicUsize::new(0));
    let counts = Arc::new(Mutex::new(std::collections::BTreeMap::<Class, u64>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let from = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (next, counts, failures) = (next.clone(), counts.clone(), failures.clone());
            std::thread::spawn(move || loop {
                let index = next.fetch_add(1, Ordering::Relaxed) as u64;
                if index >= REQUESTS || from.elapsed() > RUN_LIMIT {
                    return;
                }
                let (input, expect) = garbage(seed, index);
                // Valid requests are complete and must be answered as sent; the rest
                // may be incomplete, so the client says it is done after a pause.
                let half_close = match expect {
                    Expect::Success => HalfClose::Never,
                    _ => HalfClose::AfterQuiet(QUIET),
                };
                let ex = exchange(addr, &input, half_close, EXCHANGE_DEADLINE);
                let class = classify(&ex, expect);
                *counts.lock().unwrap().entry(class).or_default() += 1;
                if class >= Class::Server5xx {
                    failures.lock().unwrap().push(format!(
                        "{class:?} (expected {expect:?}) for input {index} of seed {seed}:\n  \
                         sent {}\n  got ({:?}) {}",
                        shown(&input, 600),
                        ex.end,
                        shown(&ex.reply, 400)
                    ));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("fuzz worker");
    }
    let to = Instant::now();
    let counts = counts.lock().unwrap().clone();
    let done: u64 = counts.values().sum();
    eprintln!(
        "garbage requests: {done} in {:.1} s, outcomes {counts:?}",
        (to - from).as_secs_f64()
    );
    let failures = failures.lock().unwrap();
    for f in failures.iter().take(20) {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {done} requests failed (seed {seed}); first: {}",
        failures.len(),
        failures[0]
    );
    assert_eq!(
        done, REQUESTS,
        "only {done} of {REQUESTS} requests in {RUN_LIMIT:?}"
    );
    for class in [Class::Ok2xx, Class::Client4xx] {
        assert!(counts.get(&class).copied().unwrap_or(0) > 100, "{class:?}");
    }
    rig.check_window("garbage requests", from, to);
    rig.check_after("garbage requests");
}

// ---- HTTP/1.0 and pipelining --------------------------------------------------------------

/// One response read from a connection: head, and the body when its length is known.
struct Resp {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response head and, unless `head_only`, its Content-Length body.
fn read_resp(r: &mut impl BufRead, head_only: bool) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let mut words = line.split_whitespace();
    let version = words.next().unwrap_or_default().to_string();
    let status = words
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header line");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').expect("header has a colon");
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Resp {
        version,
        status,
        headers,
        body: Vec::new(),
    };
    if !head_only {
        if let Some(len) = resp.header("content-length") {
            resp.body = vec![0; len.parse().unwrap()];
            r.read_exact(&mut resp.body).expect("body");
        }
    }
    resp
}

/// Reads `n` multipart parts (of a body with framing already removed) and decodes each.
fn read_parts(r: &mut impl BufRead, n: usize) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "--camhubframe\r\n");
    for _ in 0..n {
        let mut len = None;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = Some(v.trim().parse::<usize>().unwrap());
            }
        }
        let mut jpeg = vec![0; len.expect("part has a Content-Length")];
        r.read_exact(&mut jpeg).unwrap();
        assert_eq!(decode(&jpeg).0, 640);
        let mut end = String::new();
        r.read_line(&mut end).unwrap();
        assert_eq!(end, "\r\n");
        end.clear();
        r.read_line(&mut end).unwrap();
        assert_eq!(end, "--camhubframe\r\n");
    }
}

fn open(addr: SocketAddr, raw: &[u8]) -> BufReader<TcpStream> {
    let mut s = common::connect(addr);
    s.write_all(raw).unwrap();
    BufReader::new(s)
}

/// Reads to the end and says whether the server closed within the read timeout.
fn closes(mut r: BufReader<TcpStream>) -> bool {
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

/// HTTP/1.0 with and without keep-alive (also for a stream, which then has no chunked
/// framing), and pipelined requests (many in one write, a stream in the middle or at
/// the end, a bad request in the middle), each answered in order, while the viewers
/// keep full fps.
#[test]
fn http10_and_pipelined_requests_are_answered_in_order() {
    let mut rig = Rig::start();
    let addr = rig.addr();
    let viewers_before = api_stream(addr, "cam")["viewers"].as_u64().unwrap();
    let from = Instant::now();

    // HTTP/1.0, no keep-alive: answered as 1.0, then closed.
    let mut r = open(addr, b"GET /api/info HTTP/1.0\r\n\r\n");
    let resp = read_resp(&mut r, false);
    assert_eq!((resp.version.as_str(), resp.status), ("HTTP/1.0", 200));
    let info: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON");
    assert_eq!(info["name"], "camhub");
    assert!(
        closes(r),
        "an HTTP/1.0 request without keep-alive is closed"
    );

    // HTTP/1.0 keep-alive: kept open, the next request on it answered, then closed.
    let mut r = open(
        addr,
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let resp = read_resp(&mut r, false);
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(
        resp.header("connection").map(str::to_ascii_lowercase),
        Some("keep-alive".into())
    );
    r.get_mut()
        .write_all(b"GET /nope HTTP/1.0\r\n\r\n")
        .unwrap();
    assert_eq!(read_resp(&mut r, false).status, 404);
    assert!(closes(r));

    // HTTP/1.0 stream: no chunked encoding (1.0 has none), parts until the close.
    let mut r = open(addr, b"GET /stream/cam HTTP/1.0\r\n\r\n");
    let resp = read_resp(&mut r, true);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("transfer-encoding"), None);
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("multipart/x-mixed-replace"));
    read_parts(&mut r, 5);
    drop(r);

    // HEAD in HTTP/1.0.
    let mut r = open(addr, b"HEAD /stream/cam HTTP/1.0\r\n\r\n");
    assert_eq!(read_resp(&mut r, true).status, 200);
    assert!(closes(r));

    // 60 pipelined requests in one write: answered in order.
    let paths = [
        "/healthz",
        "/api/info",
        "/nope",
        "/stream/cam?fps=0",
        "/api/streams",
    ];
    let expected: Vec<u16> = (0..60).map(|i| [200, 200, 404, 400, 200][i % 5]).collect();
    let mut batch = String::new();
    for i in 0..60 {
        batch.push_str(&format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", paths[i % 5]));
    }
    batch.push_str("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut r = open(addr, batch.as_bytes());
    let mut got = Vec::new();
    for i in 0..60 {
        let resp = read_resp(&mut r, false);
        if paths[i % 5] == "/api/info" {
            assert!(resp.body.starts_with(b"{"), "response {i} out of order");
        }
        got.push(resp.status);
    }
    assert_eq!(got, expected);
    assert_eq!(read_resp(&mut r, false).status, 200);
    assert!(closes(r), "Connection: close on the last request closes");

    // A stream at the end of a pipeline: the earlier answers, then the stream.
    let mut r = open(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nHEAD /api/info HTTP/1.1\r\nHost: t\r\n\r\nGET /snapshot/cam HTTP/1.1\r\nHost: t\r\n\r\nGET /stream/cam HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(read_resp(&mut r, false).status, 200);
    let head = read_resp(&mut r, true);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let snapshot = read_resp(&mut r, false);
    assert_eq!(snapshot.status, 200);
    assert_eq!(decode(&snapshot.body).0, 640);
    let stream = read_resp(&mut r, true);
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("transfer-encoding"), Some("chunked"));
    read_parts(&mut BufReader::new(common::dechunk(r)), 5);

    // A stream in the middle: it never ends, so what follows waits; the stream flows.
    let mut r = open(
        addr,
        b"GET /api/info HTTP/1.1\r\nHost: t\r\n\r\nGET /stream/cam HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(read_resp(&mut r, false).status, 200);
    assert_eq!(read_resp(&mut r, true).status, 200);
    read_parts(&mut BufReader::new(common::dechunk(r)), 5);

    // A bad request in the middle: the ones before are answered, then 400 and a close.
    let mut r = open(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /api/info HTTP/1.1\r\nHost: t\r\n\r\nGET /\x00 HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(read_resp(&mut r, false).status, 200);
    assert_eq!(read_resp(&mut r, false).status, 200);
    assert_eq!(read_resp(&mut r, false).status, 400);
    assert!(closes(r), "nothing is answered after a bad request");

    // The streams opened here are released once their clients left.
    let released = common::eventually(Duration::from_secs(5), || {
        (api_stream(addr, "cam")["viewers"].as_u64() == Some(viewers_before)).then_some(())
    });
    assert!(released.is_some(), "pipelined stream viewers are released");

    std::thread::sleep(Duration::from_secs(5).saturating_sub(from.elapsed()));
    rig.check_window("HTTP/1.0 and pipelining", from, Instant::now());
    rig.check_after("HTTP/1.0 and pipelining");
}

// ---- half-closed clients -------------------------------------------------------------------

/// Found by this suite: a client that sends a complete request and then shuts its write
/// side (`printf 'GET /healthz HTTP/1.0\r\n\r\n' | nc -N box 8080`, shell health checks,
/// some embedded HTTP clients) must still get its answer. With hyper's default
/// (`half_close(false)`) the EOF closes the connection at once and the response is
/// mostly lost.
#[test]
fn a_request_followed_by_a_half_close_is_answered() {
    let camhub = spawn_camhub(&["--source", SOURCE]);
    let addr = camhub.addr;
    let live = common::eventually(Duration::from_secs(10), || {
        (api_stream(addr, "cam")["state"] == "live").then_some(())
    });
    assert!(live.is_some(), "the pattern goes live");
    let mut lost = Vec::new();
    for path in ["/healthz", "/api/streams", "/metrics", "/snapshot/cam"] {
        for version in ["1.1", "1.0"] {
            let raw = format!("GET {path} HTTP/{version}\r\nHost: t\r\nConnection: close\r\n\r\n");
            let unanswered = (0..10)
                .filter(|_| {
                    let ex = exchange(
                        addr,
                        raw.as_bytes(),
                        HalfClose::AfterQuiet(Duration::ZERO),
                        EXCHANGE_DEADLINE,
                    );
                    ex.status() != Some(200)
                })
                .count();
            if unanswered > 0 {
                lost.push(format!("{path} HTTP/{version}: {unanswered} of 10"));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "complete requests closed without an answer after the client shut its write side: {}",
        lost.join(", ")
    );
}
