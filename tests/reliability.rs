//! Reliability under repeated failure and sustained load (issue #7), against the real
//! camhub binary: an RTSP camera (GStreamer's RTSP server, tests/peers/rtsp_server.py,
//! run with Debian's /usr/bin/python3) killed and restarted 20 times, and 100 live plus
//! 20 stalled MJPEG viewers held for 30 s. The tests print what they measure (restart
//! times, RSS, fps); run with `--no-capture` to see it on success. Every process a test
//! starts is killed by PID when it ends, pass or fail. The hour-long version of both is
//! scripts/soak.sh.

mod common;

use common::{api_stream, eventually, spawn_camhub, Child};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";
/// Startup bound for camhub and the first RTSP connect (slow CI machines, lazy pipelines).
const LIVE_WITHIN: Duration = Duration::from_secs(30);

// ---- RTSP server killed and restarted --------------------------------------------------

/// Restarts of the RTSP server in one run (the number).
const RESTARTS: usize = 20;
/// The bound: back to Live, with new frames, within 3 s of the camera accepting
/// connections again.
const RECOVER_WITHIN: Duration = Duration::from_secs(3);
/// How long a late recovery is still waited for, so that a failure reports how late it was.
const RECOVER_REPORT_WITHIN: Duration = Duration::from_secs(15);
/// Outage lengths, cycled: 0.3 s is over before the first retry (0.5 s), the longer ones
/// let the backoff run through several failed attempts while the camera is down.
const DOWN_SECS: [f64; 4] = [0.3, 1.0, 2.5, 4.0];
/// Allowed growth over the first cycle's counts: tokio's blocking pool and retina's
/// per-session tasks come and go (threads); a connection closing while we look (fds).
const THREADS_SLACK: usize = 2;
const FDS_SLACK: usize = 3;

/// A GStreamer RTSP server process on a fixed port, killed (SIGKILL) when dropped: the
/// connection drops as in a camera crash, with no RTSP TEARDOWN.
struct RtspServer {
    process: std::process::Child,
}

impl RtspServer {
    /// Starts the server on `port` and returns it with the moment it first accepted a TCP
    /// connection. Retries while the killed server's port is still being released.
    fn start(port: u16) -> (RtspServer, Instant) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/rtsp_server.py");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..20 {
            let process = Command::new(PYTHON)
                .arg(script)
                .args(["--port", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("/usr/bin/python3 runs (Debian's, with gi)");
            let mut server = RtspServer { process };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return (server, Instant::now());
                }
                if !matches!(server.process.try_wait(), Ok(None)) {
                    break; // exited: most likely the port was not free yet
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(server);
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("RTSP server did not start on port {port}");
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The camhub binary run with a config file (kept until camhub ends).
struct Camhub {
    child: Child,
    _config: tempfile::NamedTempFile,
}

impl Camhub {
    fn start(config: &str) -> Camhub {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(config.as_bytes()).unwrap();
        let path = file
            .path()
            .to_str()
            .expect("temp path is UTF-8")
            .to_string();
        Camhub {
            child: spawn_camhub(&["--config", &path]),
            _config: file,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.child.addr
    }

    /// (state, frames published so far) of stream `id`.
    fn state_and_frames(&self, id: &str) -> (String, u64) {
        let s = api_stream(self.addr(), id);
        (
            s["state"].as_str().unwrap_or_default().to_string(),
            s["frames"].as_u64().expect("frames is a number"),
        )
    }

    fn wait_state(&self, id: &str, state: &str, within: Duration) {
        eventually(within, || {
            (self.state_and_frames(id).0 == state).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "stream {id} not {state} within {within:?}: {}",
                api_stream(self.addr(), id)
            )
        });
    }

    /// Resident memory in KiB (VmRSS from /proc).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.pid()))
            .expect("camhub is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }
}

/// One MJPEG viewer on its own thread that reads and discards everything until `stop`,
/// so that the stream is watched (H.264 is decoded only while someone watches). Returns
/// false if its connection ended before `stop`: camhub must keep a viewer through an
/// outage (it sends the OFFLINE placeholder).
fn watch(addr: SocketAddr, path: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<bool> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect(addr) else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        if s.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut sink = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            match std::io::Read::read(&mut s, &mut sink) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut) => {}
                Err(_) => return false,
            }
        }
        true
    })
}

/// Issue #7: "RTSP server killed and restarted 20 times: back to Live within 3 s of each
/// restart; threads and fds flat." Each cycle is timed from the moment the new server
/// accepts TCP connections to camhub's API showing the stream live with a new frame (a
/// decoded one: a viewer is attached, so the H.264 path runs).
#[test]
fn rtsp_server_killed_and_restarted_20_times_is_back_within_3_s_with_flat_threads_and_fds() {
    let port = free_port();
    let (first, _) = RtspServer::start(port);
    let mut server = Some(first);
    let url = format!("rtsp://127.0.0.1:{port}/h264");
    // Default settings (stall_after 5 s, default backoff), as a user would run it.
    let camhub = Camhub::start(&format!("[[stream]]\nid = \"cam\"\nurl = \"{url}\"\n"));
    camhub.wait_state("cam", "live", LIVE_WITHIN);
    let stop = Arc::new(AtomicBool::new(false));
    let viewer = watch(camhub.addr(), "/stream/cam", stop.clone());
    // Frames flow before the first kill (decoding starts at the next keyframe, <= 1 s).
    let (_, frames) = camhub.state_and_frames("cam");
    eventually(LIVE_WITHIN, || {
        (camhub.state_and_frames("cam").1 > frames).then_some(())
    })
    .expect("frames flow once a viewer watches");

    let mut took_ms = Vec::new();
    let mut baseline = None;
    let mut worst = (0, 0);
    for cycle in 1..=RESTARTS {
        let down = Duration::from_secs_f64(DOWN_SECS[(cycle - 1) % DOWN_SECS.len()]);
        let killed_at = Instant::now();
        drop(server.take()); // SIGKILL
        eventually(Duration::from_secs(10), || {
            (camhub.state_and_frames("cam").0 != "live").then_some(())
        })
        .unwrap_or_else(|| panic!("cycle {cycle}: still live 10 s after the server died"));
        std::thread::sleep(down.saturating_sub(killed_at.elapsed()));
        // No frame can arrive while the server is down, so any later one is new.
        let (_, frames_before) = camhub.state_and_frames("cam");

        let (restarted, accepting_at) = RtspServer::start(port);
        server = Some(restarted);
        let mut recovered_at = None;
        while accepting_at.elapsed() < RECOVER_REPORT_WITHIN {
            let (state, frames) = camhub.state_and_frames("cam");
            if state == "live" && frames > frames_before {
                recovered_at = Some(Instant::now());
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let Some(recovered_at) = recovered_at else {
            panic!(
                "cycle {cycle}: not live with new frames {RECOVER_REPORT_WITHIN:?} after the \
                 server came back (earlier cycles, ms: {took_ms:?}): {}",
                api_stream(camhub.addr(), "cam")
            );
        };
        let took = recovered_at - accepting_at;
        took_ms.push(took.as_millis());
        let now = (camhub.child.threads(), camhub.child.fds());
        // RSS is shown, not judged: reconnects allocate a new session and decoder, and
        // the bound for memory is the soak's (scripts/soak.sh).
        eprintln!(
            "cycle {cycle:2}: down {:.1} s, live with new frames {:4} ms after the server \
             accepted; threads {}, fds {}, RSS {} KiB",
            down.as_secs_f64(),
            took.as_millis(),
            now.0,
            now.1,
            camhub.rss_kib()
        );
        assert!(
            took <= RECOVER_WITHIN,
            "cycle {cycle} (down {down:?}): live {took:?} after the server came back, over \
             the {RECOVER_WITHIN:?} bound (all cycles so far, ms: {took_ms:?})"
        );
        // The first cycle settles lazily created things (the RTSP runtime's threads, the
        // decoder); every later one must come back to the same counts.
        let (threads, fds) = *baseline.get_or_insert(now);
        worst = (worst.0.max(now.0), worst.1.max(now.1));
        assert!(
            now.0 <= threads + THREADS_SLACK,
            "cycle {cycle}: threads grew {threads} -> {}",
            now.0
        );
        assert!(
            now.1 <= fds + FDS_SLACK,
            "cycle {cycle}: fds grew {fds} -> {}",
            now.1
        );
    }
    let mut sorted = took_ms.clone();
    sorted.sort_unstable();
    let (threads, fds) = baseline.unwrap();
    eprintln!(
        "restart summary: {RESTARTS} cycles, live after (ms) min {} median {} max {}; all: \
         {took_ms:?}; threads {threads} (max {}), fds {fds} (max {})",
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        worst.0,
        worst.1
    );
    stop.store(true, Ordering::Relaxed);
    assert!(
        viewer.join().unwrap(),
        "the viewer's connection ended during the restarts (camhub must keep viewers \
         through an outage)"
    );
}

// ---- stalled and live viewers, sustained ------------------------------------------------

const LIVE_VIEWERS: usize = 100;
const STALLED_VIEWERS: usize = 20;
const SOURCE_FPS: f64 = 15.0;
/// The "full fps": every live viewer gets at least 90% of the frames the source
/// published over the same window (a frame lost at either end of the window is < 1%).
/// Judged against what the source really made in this run, not against 15: a debug build
/// encodes a 640x480 frame in ~40 ms of CPU, so on a shared 2-core CI machine the source
/// itself may skip ticks (seen: 6.9 fps at load average 6), which is not the viewers'
/// doing. scripts/soak.sh checks the full 15 fps with a release build.
const MIN_FPS_RATIO: f64 = 0.9;
/// Below this the machine is too busy for the window to say anything about fan-out.
const SOURCE_FPS_FLOOR: f64 = SOURCE_FPS * 0.3;
/// How long the load is held and measured after warm-up.
const WINDOW: Duration = Duration::from_secs(30);
/// After the stalled viewers are dropped, before the window starts: lets the allocator
/// settle after 20 connections and their frames are freed.
const WARM_UP: Duration = Duration::from_secs(3);
/// Allowed RSS growth over the window. After warm-up camhub allocates nothing that lives:
/// one 640x480 frame (~16 KiB) is published 15 times a second and freed when the last
/// viewer has sent it, and each connection's buffers exist already. So growth is
/// allocator noise (0 KiB measured over 30 s on the dev machine). A leak of one frame per published frame
/// (240 KiB/s, 7 MiB in 30 s) or of a few hundred bytes per part sent (1500 parts/s)
/// exceeds 4 MiB; slower leaks are for scripts/soak.sh's hour.
const RSS_GROWTH_MAX_KIB: u64 = 4 * 1024;

/// Counts the parts of a chunked `multipart/x-mixed-replace` body as its bytes arrive,
/// split anywhere. JPEG bytes are skipped by their Content-Length, not scanned, so that a
/// hundred viewers cost the test little CPU; the framing around them is checked.
struct PartCounter {
    chunk: ChunkState,
    part: PartState,
    /// `\r\n--BOUNDARY\r\n`: what follows each part's data (the very first boundary lacks
    /// the leading CRLF).
    part_end: Vec<u8>,
    /// The chunk-size line being read.
    size_line: Vec<u8>,
    /// The part headers being read.
    headers: Vec<u8>,
    started: bool,
    /// Parts read completely, including the boundary after them.
    parts: u64,
}

enum ChunkState {
    Size,
    Data(usize),
    /// The CRLF after a chunk's data; how many of its bytes were seen.
    DataEnd(usize),
}

enum PartState {
    /// Matching `part_end`; how many of its bytes matched.
    Boundary(usize),
    Headers,
    Data(usize),
}

impl PartCounter {
    fn new(boundary: &str) -> PartCounter {
        PartCounter {
            chunk: ChunkState::Size,
            part: PartState::Boundary(2),
            part_end: format!("\r\n--{boundary}\r\n").into_bytes(),
            size_line: Vec::new(),
            headers: Vec::new(),
            started: false,
            parts: 0,
        }
    }

    /// Takes the next bytes of the (still chunked) body.
    fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        while let Some(&byte) = data.first() {
            match self.chunk {
                ChunkState::Size => {
                    data = &data[1..];
                    if byte != b'\n' {
                        self.size_line.push(byte);
                        if self.size_line.len() > 64 {
                            return Err("chunk-size line too long".into());
                        }
                        continue;
                    }
                    let line = String::from_utf8_lossy(&self.size_line).into_owned();
                    let size = line.trim_end_matches('\r').split(';').next().unwrap_or("");
                    let size = usize::from_str_radix(size.trim(), 16)
                        .map_err(|_| format!("bad chunk size {line:?}"))?;
                    self.size_line.clear();
                    if size == 0 {
                        return Err("the stream ended (last chunk)".into());
                    }
                    self.chunk = ChunkState::Data(size);
                }
                ChunkState::Data(left) => {
                    let n = left.min(data.len());
                    self.body(&data[..n])?;
                    data = &data[n..];
                    self.chunk = if n == left {
                        ChunkState::DataEnd(0)
                    } else {
                        ChunkState::Data(left - n)
                    };
                }
                ChunkState::DataEnd(seen) => {
                    if byte != b"\r\n"[seen] {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    data = &data[1..];
                    self.chunk = if seen == 1 {
                        ChunkState::Size
                    } else {
                        ChunkState::DataEnd(1)
                    };
                }
            }
        }
        Ok(())
    }

    /// Takes the next bytes of the de-chunked multipart stream.
    fn body(&mut self, mut data: &[u8]) -> Result<(), String> {
        while let Some(&byte) = data.first() {
            match self.part {
                PartState::Boundary(matched) => {
                    if byte != self.part_end[matched] {
                        return Err(format!(
                            "expected the boundary {:?} after part {}",
                            String::from_utf8_lossy(&self.part_end),
                            self.parts
                        ));
                    }
                    data = &data[1..];
                    if matched + 1 < self.part_end.len() {
                        self.part = PartState::Boundary(matched + 1);
                        continue;
                    }
                    if self.started {
                        self.parts += 1;
                    }
                    self.started = true;
                    self.headers.clear();
                    self.part = PartState::Headers;
                }
                PartState::Headers => {
                    data = &data[1..];
                    self.headers.push(byte);
                    if self.headers.len() > 4096 {
                        return Err("part headers too long".into());
                    }
                    if !self.headers.ends_with(b"\r\n\r\n") {
                        continue;
                    }
                    let headers = String::from_utf8_lossy(&self.headers).to_ascii_lowercase();
                    if !headers.contains("content-type: image/jpeg\r\n") {
                        return Err(format!("part is not a JPEG: {headers:?}"));
                    }
                    let length = headers
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| format!("part without Content-Length: {headers:?}"))?;
                    self.part = PartState::Data(length);
                }
                PartState::Data(left) => {
                    let n = left.min(data.len());
                    data = &data[n..];
                    self.part = if n == left {
                        PartState::Boundary(0)
                    } else {
                        PartState::Data(left - n)
                    };
                }
            }
        }
        Ok(())
    }
}

/// Reads `/stream/...` at `path` until the connection fails, publishing the number of
/// parts received in `parts`. Returns why it stopped.
async fn live_viewer(addr: SocketAddr, path: &str, parts: &AtomicU64) -> String {
    let mut s = match smol::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return format!("connect: {e}"),
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    if let Err(e) = s.write_all(request.as_bytes()).await {
        return format!("request: {e}");
    }
    let mut buf = vec![0u8; 32 * 1024];
    let mut head = Vec::new();
    let body_start = loop {
        match s.read(&mut buf).await {
            Ok(0) => return "closed before the response head".into(),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return format!("read: {e}"),
        }
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break head.split_off(end + 4);
        }
        if head.len() > 16 * 1024 {
            return "response head too long".into();
        }
    };
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200")
        || !head.contains("transfer-encoding: chunked")
        || !head.contains("content-type: multipart/x-mixed-replace")
    {
        return format!("unexpected response head {head:?}");
    }
    let Some(boundary) = head
        .split("boundary=")
        .nth(1)
        .and_then(|b| b.split(['\r', ';']).next())
    else {
        return format!("no boundary in {head:?}");
    };
    let mut counter = PartCounter::new(boundary);
    let mut data = body_start;
    loop {
        if let Err(e) = counter.feed(&data) {
            return e;
        }
        parts.store(counter.parts, Ordering::Relaxed);
        match s.read(&mut buf).await {
            Ok(0) => return "the server closed the stream".into(),
            Ok(n) => data = buf[..n].to_vec(),
            Err(e) => return format!("read: {e}"),
        }
    }
}

/// `count` viewers reading `path` on one thread (async tasks on a smol executor), until
/// dropped.
struct LiveViewers {
    parts: Vec<Arc<AtomicU64>>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveViewers {
    fn start(addr: SocketAddr, path: &str, count: usize) -> LiveViewers {
        let parts: Vec<_> = (0..count).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (parts, errors, stop) = (parts.clone(), errors.clone(), stop.clone());
            let path = path.to_string();
            std::thread::spawn(move || {
                let executor = smol::LocalExecutor::new();
                for (i, counter) in parts.into_iter().enumerate() {
                    let (errors, path) = (errors.clone(), path.clone());
                    executor
                        .spawn(async move {
                            let why = live_viewer(addr, &path, &counter).await;
                            errors.lock().unwrap().push(format!("viewer {i}: {why}"));
                        })
                        .detach();
                }
                // Dropping the executor afterwards cancels the tasks and closes sockets.
                smol::block_on(executor.run(async {
                    while !stop.load(Ordering::Relaxed) {
                        smol::Timer::after(Duration::from_millis(100)).await;
                    }
                }));
            })
        };
        LiveViewers {
            parts,
            errors,
            stop,
            thread: Some(thread),
        }
    }

    fn counts(&self) -> Vec<u64> {
        self.parts
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }

    fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

impl Drop for LiveViewers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A viewer that requests the stream and never reads, with a small receive buffer so
/// that its connection backs up at once.
fn stalled_viewer(addr: SocketAddr, path: &str) -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    let mut tcp: TcpStream = s.try_clone().unwrap().into();
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    s
}

fn viewers(camhub: &Camhub) -> u64 {
    api_stream(camhub.addr(), "cam")["viewers"]
        .as_u64()
        .expect("viewers is a number")
}

/// Issue #7: "20 stalled viewers (never read) + 100 live viewers for a sustained run:
/// RSS flat, live viewers keep full fps." The stalled ones must be dropped by the send
/// timeout (5 s here) and must not slow anyone.
#[test]
fn stalled_and_live_viewers_sustained_keep_full_fps_and_flat_rss() {
    let camhub = Camhub::start(
        "[server]\nsend_timeout_secs = 5\n\n\
         [[stream]]\nid = \"cam\"\nurl = \"pattern:?size=640x480&fps=15\"\n",
    );
    let addr = camhub.addr();
    camhub.wait_state("cam", "live", LIVE_WITHIN);
    let rss_idle_kib = camhub.rss_kib();

    let live = LiveViewers::start(addr, "/stream/cam", LIVE_VIEWERS);
    eventually(LIVE_WITHIN, || {
        live.counts().iter().all(|&n| n > 0).then_some(())
    })
    .unwrap_or_else(|| panic!("not every live viewer got a frame: {:?}", live.errors()));

    let stalled_at = Instant::now();
    let stalled: Vec<_> = (0..STALLED_VIEWERS)
        .map(|_| stalled_viewer(addr, "/stream/cam"))
        .collect();
    let all = (LIVE_VIEWERS + STALLED_VIEWERS) as u64;
    eventually(Duration::from_secs(5), || {
        (viewers(&camhub) == all).then_some(())
    })
    .unwrap_or_else(|| panic!("{all} viewers not counted: {}", viewers(&camhub)));
    // Dropped once their sockets have been full for the send timeout (5 s).
    eventually(Duration::from_secs(30), || {
        (viewers(&camhub) == LIVE_VIEWERS as u64).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "stalled viewers not dropped within 30 s (send timeout 5 s): {} viewers",
            viewers(&camhub)
        )
    });
    let dropped_after = stalled_at.elapsed();
    std::thread::sleep(WARM_UP);

    let (_, frames_start) = camhub.state_and_frames("cam");
    let parts_start = live.counts();
    let t0 = Instant::now();
    let mut rss_kib = vec![camhub.rss_kib()];
    while t0.elapsed() < WINDOW {
        std::thread::sleep(Duration::from_secs(1));
        rss_kib.push(camhub.rss_kib());
    }
    let window_secs = t0.elapsed().as_secs_f64();
    let (state, frames_end) = camhub.state_and_frames("cam");
    let parts_end = live.counts();
    let errors = live.errors();
    let viewers_end = viewers(&camhub);
    drop(live);
    drop(stalled);

    let source_fps = (frames_end - frames_start) as f64 / window_secs;
    let mut fps: Vec<f64> = parts_start
        .iter()
        .zip(&parts_end)
        .map(|(a, b)| (b - a) as f64 / window_secs)
        .collect();
    fps.sort_by(f64::total_cmp);
    let rss_start = rss_kib[0];
    let rss_max = *rss_kib.iter().max().unwrap();
    let rss_end = *rss_kib.last().unwrap();
    eprintln!(
        "viewers: {LIVE_VIEWERS} live + {STALLED_VIEWERS} stalled; stalled dropped after \
         {:.1} s; window {window_secs:.1} s: source {source_fps:.2} fps, per viewer min \
         {:.2} median {:.2} max {:.2} fps",
        dropped_after.as_secs_f64(),
        fps[0],
        fps[fps.len() / 2],
        fps[fps.len() - 1]
    );
    eprintln!(
        "RSS (KiB): idle {rss_idle_kib}, window start {rss_start}, max {rss_max}, end \
         {rss_end}; growth {} KiB (bound {RSS_GROWTH_MAX_KIB}); samples {rss_kib:?}",
        rss_max - rss_start
    );

    assert!(errors.is_empty(), "live viewers failed: {errors:?}");
    assert_eq!(state, "live");
    assert_eq!(
        viewers_end, LIVE_VIEWERS as u64,
        "only the live viewers remain"
    );
    assert!(
        source_fps >= SOURCE_FPS_FLOOR,
        "the {SOURCE_FPS} fps source made only {source_fps:.2} fps: the machine is too \
         busy to judge the viewers"
    );
    let min_fps = source_fps * MIN_FPS_RATIO;
    assert!(
        fps[0] >= min_fps,
        "a live viewer got {:.2} fps of the source's {source_fps:.2}; all: {fps:?}",
        fps[0]
    );
    assert!(
        rss_max - rss_start <= RSS_GROWTH_MAX_KIB,
        "RSS grew {} KiB over {window_secs:.0} s: {rss_kib:?}",
        rss_max - rss_start
    );
}

/// The part counter counts every part whatever way the bytes are split, and notices
/// broken framing.
#[test]
fn part_counter_counts_across_any_split() {
    let mut body = Vec::new();
    let mut chunk = |data: &[u8]| {
        body.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    };
    chunk(b"--b\r\n");
    for i in 0..3 {
        let jpeg = vec![b'-'; 10 + i];
        chunk(
            format!(
                "Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                jpeg.len()
            )
            .as_bytes(),
        );
        chunk(&jpeg);
        chunk(b"\r\n--b\r\n");
    }
    for split in 0..body.len() {
        let mut counter = PartCounter::new("b");
        counter.feed(&body[..split]).unwrap();
        counter.feed(&body[split..]).unwrap();
        assert_eq!(counter.parts, 3, "split at {split}");
    }
    let mut counter = PartCounter::new("b");
    for byte in &body {
        counter.feed(std::slice::from_ref(byte)).unwrap();
    }
    assert_eq!(counter.parts, 3);

    let broken = String::from_utf8(body)
        .unwrap()
        .replacen("Length: 11", "Length: 12", 1);
    let mut counter = PartCounter::new("b");
    assert!(counter.feed(broken.as_bytes()).is_err());
}
