//! `fanout`: how camhub's cost grows with the number of MJPEG viewers. For each viewer
//! count it starts a fresh camhub on loopback, opens that many `/stream/<id>` clients from
//! one single-threaded epoll loop, warms up, then measures camhub's CPU and memory,
//! per-viewer fps and capture-to-receive latency, and this load generator's own CPU.
//! Prints a Markdown table. Traffic goes to 127.0.0.1 only.

mod mjpeg;
mod sys;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
usage: fanout [--camhub PATH] [--viewers 0,1,10,100,500] [--duration-secs 10]
              [--warmup-secs 2] [--source ID=URL] [--stalled-viewers 0]

  --camhub PATH        camhub binary (default: <repo>/target/release/camhub)
  --viewers LIST       viewer counts, one fresh camhub each (default 0,1,10,100,500)
  --duration-secs S    measurement window per count (default 10)
  --warmup-secs S      settling time after every viewer has a first frame (default 2)
  --source ID=URL      the one stream to serve (default test=pattern:?size=640x480&fps=15)
  --stalled-viewers K  also open K viewers that never read, per row (default 0): the
                       others' fps and camhub's RSS show whether stuck clients cost anything
";

/// Longest a viewer count may take to start camhub, connect and see first frames; a bound
/// on every phase so a wedged camhub cannot hang the bench.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(15);
/// camhub promises to exit within 2 s of SIGTERM; after this it is SIGKILLed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// One read buffer shared by every viewer: part bodies are skipped, never stored.
const READ_BUFFER_BYTES: usize = 256 * 1024;

struct Args {
    camhub: PathBuf,
    viewers: Vec<usize>,
    duration: Duration,
    warmup: Duration,
    source: String,
    stalled_viewers: usize,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let repo = repo_dir();
        let mut args = Args {
            camhub: repo.join("target/release/camhub"),
            viewers: vec![0, 1, 10, 100, 500],
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            source: "test=pattern:?size=640x480&fps=15".into(),
            stalled_viewers: 0,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                print!("{USAGE}");
                std::process::exit(0);
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let secs = |v: &str| -> Result<Duration, String> {
                let s: f64 = v
                    .parse()
                    .map_err(|_| format!("{flag}: not a number: {v}"))?;
                if !(0.0..=600.0).contains(&s) {
                    return Err(format!("{flag}: must be 0..=600 seconds"));
                }
                Ok(Duration::from_secs_f64(s))
            };
            match flag.as_str() {
                "--camhub" => args.camhub = value.into(),
                "--viewers" => {
                    args.viewers = value
                        .split(',')
                        .map(|v| {
                            v.trim()
                                .parse::<usize>()
                                .map_err(|_| format!("--viewers: bad count {v:?}"))
                        })
                        .collect::<Result<_, _>>()?;
                    if let Some(n) = args.viewers.iter().find(|&&n| n > 5000) {
                        return Err(format!(
                            "--viewers: {n} is more than this bench supports (5000)"
                        ));
                    }
                }
                "--duration-secs" => args.duration = secs(&value)?,
                "--warmup-secs" => args.warmup = secs(&value)?,
                "--source" => args.source = value,
                "--stalled-viewers" => {
                    args.stalled_viewers =
                        value.parse().ok().filter(|&k| k <= 1000).ok_or_else(|| {
                            format!("--stalled-viewers: want 0..=1000, got {value:?}")
                        })?
                }
                _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
            }
        }
        if args.duration.is_zero() {
            return Err("--duration-secs must be more than 0".into());
        }
        Ok(args)
    }

    fn stream_id(&self) -> &str {
        self.source.split_once('=').map_or("test", |(id, _)| id)
    }
}

/// camhub's checkout: this crate lives in `<repo>/bench/fanout`.
fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fanout: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.camhub.is_file() {
        eprintln!(
            "fanout: no camhub binary at {} (cargo build --release first)",
            args.camhub.display()
        );
        return ExitCode::FAILURE;
    }
    print_machine(&args);

    let started = Instant::now();
    let mut rows = Vec::new();
    for &n in &args.viewers {
        eprintln!("fanout: {n} viewer(s)...");
        let row = run_one(&args, n);
        match &row {
            Ok(r) => eprintln!(
                "fanout: {n} viewer(s): camhub {:.1}% CPU, {:.1} MiB RSS, {} failed viewer(s)",
                r.camhub_cpu_pct,
                r.rss_mib,
                r.failures.len()
            ),
            Err(e) => eprintln!("fanout: {n} viewer(s) failed: {e}"),
        }
        rows.push((n, row));
    }
    print_table(&args, &rows);
    eprintln!("fanout: done in {:.0} s", started.elapsed().as_secs_f64());
    if rows.iter().any(|(_, r)| r.is_err()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What one viewer count measured over the window.
struct Row {
    camhub_cpu_pct: f64,
    bench_cpu_pct: f64,
    rss_mib: f64,
    hwm_mib: f64,
    threads: f64,
    /// Delivered fps per viewer: (min, median, max).
    fps: (f64, f64, f64),
    /// Longest gap between two frames any viewer saw in the window.
    max_gap_ms: f64,
    /// Frames per second the source produced in the window (camhub's own count).
    source_fps: f64,
    /// Capture (X-Timestamp) to last JPEG byte received: (p50, p99, max).
    latency_ms: (f64, f64, f64),
    /// Frames camhub counted as skipped by viewers, per second of window.
    dropped_per_sec: f64,
    recv_mib_per_sec: f64,
    mean_jpeg_bytes: f64,
    connect_secs: f64,
    /// The slowest single connect + request write (a full accept queue shows as ~1 s SYN
    /// retransmits).
    slowest_connect_secs: f64,
    /// Viewers that errored, closed or never got a frame, with the reasons.
    failures: Vec<String>,
    stop_ms: f64,
    stop_status: String,
    camhub_warnings: Vec<String>,
    /// Why `GET /api/streams` failed around the window, if it did.
    api_error: Option<String>,
    /// `viewers` from /api/streams after the window (shows whether stalled ones were dropped).
    camhub_viewers_at_end: Option<f64>,
}

/// One MJPEG client.
struct Viewer {
    socket: TcpStream,
    response: mjpeg::Response,
    got_frame: bool,
    frames_in_window: u32,
    last_frame_at: Option<Instant>,
    max_gap: Duration,
    failed: Option<String>,
}

/// Everything the read loop touches.
struct Load {
    epoll: sys::Epoll,
    viewers: Vec<Viewer>,
    buf: Vec<u8>,
    ready: Vec<u64>,
    measuring: bool,
    latencies_ms: Vec<f64>,
    bytes: u64,
    jpeg_bytes: u64,
    frames: u64,
}

impl Load {
    /// Reads from every ready viewer until `until`.
    fn pump(&mut self, until: Instant) -> Result<(), String> {
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            self.ready.clear();
            let ready = self
                .epoll
                .wait(until - now)
                .map_err(|e| format!("epoll_wait: {e}"))?;
            self.ready.extend(ready);
            for i in 0..self.ready.len() {
                self.read_viewer(self.ready[i] as usize);
            }
        }
    }

    fn read_viewer(&mut self, index: usize) {
        let v = &mut self.viewers[index];
        if v.failed.is_some() {
            return;
        }
        let n = match v.socket.read(&mut self.buf) {
            Ok(0) => {
                v.failed = Some("camhub closed the stream".into());
                self.epoll.remove(&v.socket);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(e) => {
                v.failed = Some(format!("read: {e}"));
                self.epoll.remove(&v.socket);
                return;
            }
        };
        let received = Instant::now();
        let received_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let measuring = self.measuring;
        if measuring {
            self.bytes += n as u64;
        }
        let Viewer {
            response,
            got_frame,
            frames_in_window,
            last_frame_at,
            max_gap,
            ..
        } = v;
        let (latencies, jpeg_bytes, frames) = (
            &mut self.latencies_ms,
            &mut self.jpeg_bytes,
            &mut self.frames,
        );
        let fed = response.feed(&self.buf[..n], &mut |part| {
            *got_frame = true;
            if !measuring {
                return;
            }
            *frames_in_window += 1;
            *frames += 1;
            *jpeg_bytes += part.jpeg_len as u64;
            if let Some(prev) = *last_frame_at {
                *max_gap = (*max_gap).max(received - prev);
            }
            *last_frame_at = Some(received);
            if let Some(captured) = part.captured_unix_secs {
                latencies.push((received_unix - captured) * 1000.0);
            }
        });
        let failure = match fed {
            Err(e) => Some(format!("bad stream: {e}")),
            Ok(()) if response.ended => Some("camhub ended the stream".into()),
            Ok(()) => None,
        };
        if let Some(f) = failure {
            self.epoll.remove(&v.socket);
            v.failed = Some(f);
        }
    }

    fn start_window(&mut self) {
        self.measuring = true;
        let now = Instant::now();
        for v in &mut self.viewers {
            v.frames_in_window = 0;
            v.last_frame_at = Some(now);
            v.max_gap = Duration::ZERO;
        }
    }

    /// Stops counting; a viewer that went silent near the end counts its silence as a gap.
    fn end_window(&mut self) {
        self.measuring = false;
        let now = Instant::now();
        for v in &mut self.viewers {
            if let Some(last) = v.last_frame_at {
                v.max_gap = v.max_gap.max(now - last);
            }
        }
    }
}

fn run_one(args: &Args, n: usize) -> Result<Row, String> {
    let mut camhub = Camhub::start(&args.camhub, &args.source)?;
    let stream_id = args.stream_id();
    camhub.wait_live(stream_id)?;

    // Connect every viewer (sequential blocking connects are fast on loopback), then read
    // them all from the one epoll loop.
    let mut load = Load {
        epoll: sys::Epoll::new(n.max(1)).map_err(|e| format!("epoll: {e}"))?,
        viewers: Vec::with_capacity(n),
        buf: vec![0; READ_BUFFER_BYTES],
        ready: Vec::with_capacity(n),
        measuring: false,
        latencies_ms: Vec::new(),
        bytes: 0,
        jpeg_bytes: 0,
        frames: 0,
    };
    let request = format!(
        "GET /stream/{stream_id} HTTP/1.1\r\nHost: {}\r\nUser-Agent: camhub-fanout-bench\r\n\r\n",
        camhub.addr
    );
    let connect_started = Instant::now();
    let mut slowest_connect = Duration::ZERO;
    for i in 0..n {
        let one_started = Instant::now();
        let mut socket = TcpStream::connect_timeout(&camhub.addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("viewer {i}: connect: {e}"))?;
        socket
            .write_all(request.as_bytes())
            .map_err(|e| format!("viewer {i}: send: {e}"))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("viewer {i}: {e}"))?;
        load.epoll
            .add(&socket, i as u64)
            .map_err(|e| format!("viewer {i}: epoll: {e}"))?;
        slowest_connect = slowest_connect.max(one_started.elapsed());
        load.viewers.push(Viewer {
            socket,
            response: mjpeg::Response::default(),
            got_frame: false,
            frames_in_window: 0,
            last_frame_at: None,
            max_gap: Duration::ZERO,
            failed: None,
        });
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    // Clients that ask for the stream and then never read: camhub should drop them after
    // its send timeout without the readers above noticing.
    let mut stalled = Vec::with_capacity(args.stalled_viewers);
    for i in 0..args.stalled_viewers {
        let mut socket = TcpStream::connect_timeout(&camhub.addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("stalled viewer {i}: connect: {e}"))?;
        socket
            .write_all(request.as_bytes())
            .map_err(|e| format!("stalled viewer {i}: send: {e}"))?;
        stalled.push(socket);
    }

    // Until every viewer has its first frame, then the warm-up.
    let deadline = Instant::now() + FIRST_FRAME_TIMEOUT;
    while Instant::now() < deadline
        && load
            .viewers
            .iter()
            .any(|v| !v.got_frame && v.failed.is_none())
    {
        load.pump(Instant::now() + Duration::from_millis(100))?;
    }
    load.pump(Instant::now() + args.warmup)?;

    let pid = camhub.pid.to_string();
    let cpu_secs = |pid: &str| sys::cpu_secs(pid).map_err(|e| format!("/proc/{pid}/stat: {e}"));
    // The API shares camhub's connection limit with the viewers, so it may refuse us at
    // high counts: then the server-side columns are blank, not the whole row.
    let api_before = camhub.api_streams().unwrap_or_else(|e| e);
    let (camhub_cpu0, bench_cpu0) = (cpu_secs(&pid)?, cpu_secs("self")?);
    let window_started = Instant::now();
    load.start_window();
    load.pump(window_started + args.duration)?;
    load.end_window();
    let (camhub_cpu1, bench_cpu1) = (cpu_secs(&pid)?, cpu_secs("self")?);
    let window_secs = window_started.elapsed().as_secs_f64();
    let api_after = camhub.api_streams().unwrap_or_else(|e| e);
    let rss_mib = sys::status_value(camhub.pid, "VmRSS").unwrap_or(f64::NAN);
    let hwm_mib = sys::status_value(camhub.pid, "VmHWM").unwrap_or(f64::NAN);
    let threads = sys::status_value(camhub.pid, "Threads").unwrap_or(f64::NAN);

    // Stop with the viewers still attached: shutdown under load is part of the contract.
    let (stop, status) = camhub.stop();
    drop(stalled);

    let delta = |key: &str| {
        json_number(&api_after, key).unwrap_or(f64::NAN)
            - json_number(&api_before, key).unwrap_or(f64::NAN)
    };
    let mut fps: Vec<f64> = load
        .viewers
        .iter()
        .map(|v| f64::from(v.frames_in_window) / window_secs)
        .collect();
    fps.sort_by(f64::total_cmp);
    let mut lat = std::mem::take(&mut load.latencies_ms);
    lat.sort_by(f64::total_cmp);
    let mut failures: Vec<String> = load
        .viewers
        .iter()
        .filter_map(|v| match (&v.failed, v.got_frame) {
            (Some(f), _) => Some(f.clone()),
            (None, false) => Some("no frame within the first-frame timeout".into()),
            (None, true) => None,
        })
        .collect();
    failures.sort();
    // Failed viewers are counted in their own column, not as one long gap.
    let max_gap = load
        .viewers
        .iter()
        .filter(|v| v.failed.is_none())
        .map(|v| v.max_gap)
        .max()
        .unwrap_or_default();
    let camhub_warnings = camhub
        .log
        .lock()
        .map(|l| l.warnings.clone())
        .unwrap_or_default();
    let api_error = [&api_before, &api_after]
        .into_iter()
        .find(|api| !api.starts_with("HTTP/1.1 200"))
        .map(|api| api.lines().next().unwrap_or("").to_string());
    Ok(Row {
        camhub_cpu_pct: (camhub_cpu1 - camhub_cpu0) / window_secs * 100.0,
        bench_cpu_pct: (bench_cpu1 - bench_cpu0) / window_secs * 100.0,
        rss_mib,
        hwm_mib,
        threads,
        fps: (
            percentile(&fps, 0.0),
            percentile(&fps, 50.0),
            percentile(&fps, 100.0),
        ),
        max_gap_ms: max_gap.as_secs_f64() * 1000.0,
        source_fps: delta("frames") / window_secs,
        latency_ms: (
            percentile(&lat, 50.0),
            percentile(&lat, 99.0),
            percentile(&lat, 100.0),
        ),
        dropped_per_sec: delta("dropped") / window_secs,
        recv_mib_per_sec: load.bytes as f64 / window_secs / (1024.0 * 1024.0),
        mean_jpeg_bytes: if load.frames > 0 {
            load.jpeg_bytes as f64 / load.frames as f64
        } else {
            f64::NAN
        },
        connect_secs,
        slowest_connect_secs: slowest_connect.as_secs_f64(),
        failures,
        stop_ms: stop.as_secs_f64() * 1000.0,
        stop_status: status,
        camhub_warnings,
        camhub_viewers_at_end: json_number(&api_after, "viewers"),
        api_error,
    })
}

/// Nearest-rank percentile of sorted values; NaN when there are none.
fn percentile(sorted: &[f64], pct: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The first `"key": number` in a JSON text (camhub serves one stream here).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let rest = &json[json.find(&format!("\"{key}\""))? + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn json_string<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let rest = &json[json.find(&format!("\"{key}\""))? + key.len() + 2..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

/// What camhub's stderr has said so far.
#[derive(Default)]
struct LogTail {
    /// WARN and ERROR lines (first 20).
    warnings: Vec<String>,
    /// The last lines, for error messages when camhub fails to start.
    last: Vec<String>,
}

/// A camhub child process. Dropping it SIGKILLs the process if it is still running, so
/// every exit path of the bench (errors, panics) leaves no camhub behind.
struct Camhub {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    log: Arc<Mutex<LogTail>>,
    reaped: bool,
}

impl Camhub {
    fn start(path: &Path, source: &str) -> Result<Camhub, String> {
        let mut cmd = Command::new(path);
        cmd.args(["--no-mdns", "--listen", "127.0.0.1:0", "--source", source])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: die_with_parent only calls prctl, which is async-signal-safe.
        unsafe { cmd.pre_exec(sys::die_with_parent) };
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(LogTail::default()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        // Keeps draining stderr for camhub's whole life so it never blocks on a full pipe.
        std::thread::Builder::new()
            .name("camhub-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(url) = line.split("listening on http://").nth(1) {
                        let _ = tx.send(url.split('/').next().unwrap_or("").to_string());
                    }
                    let mut log = log2.lock().expect("log lock");
                    if (line.contains(" WARN ") || line.contains(" ERROR "))
                        && log.warnings.len() < 20
                    {
                        log.warnings.push(line.clone());
                    }
                    log.last.push(line);
                    if log.last.len() > 10 {
                        log.last.remove(0);
                    }
                }
            })
            .map_err(|e| format!("thread: {e}"))?;
        let mut camhub = Camhub {
            child,
            pid,
            addr: (Ipv4Addr::LOCALHOST, 0).into(),
            log,
            reaped: false,
        };
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(a) => a,
            Err(_) => {
                let last = camhub
                    .log
                    .lock()
                    .map(|l| l.last.join("\n"))
                    .unwrap_or_default();
                return Err(format!(
                    "camhub did not report its address within {START_TIMEOUT:?}; stderr:\n{last}"
                ));
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("camhub printed a strange address {addr:?}"))?;
        // The bench only ever talks to loopback.
        if addr.ip() != Ipv4Addr::LOCALHOST {
            return Err(format!("camhub listens on {addr}, not 127.0.0.1"));
        }
        camhub.addr = addr;
        Ok(camhub)
    }

    /// `GET /api/streams`, body and all.
    fn api_streams(&self) -> Result<String, String> {
        let mut s = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("api: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| format!("api: {e}"))?;
        write!(
            s,
            "GET /api/streams HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .map_err(|e| format!("api: {e}"))?;
        let mut body = String::new();
        s.read_to_string(&mut body)
            .map_err(|e| format!("api: {e}"))?;
        Ok(body)
    }

    /// Waits until the stream reports `live`, so placeholders don't pollute the numbers.
    fn wait_live(&self, stream_id: &str) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let api = self.api_streams()?;
            if json_string(&api, "state") == Some("live") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "stream {stream_id} not live within {START_TIMEOUT:?}: {api}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then SIGKILL after `STOP_TIMEOUT`. Returns how long the exit took.
    fn stop(&mut self) -> (Duration, String) {
        let started = Instant::now();
        sys::kill(self.pid, libc::SIGTERM);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break describe(status),
                Ok(None) if started.elapsed() < STOP_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    sys::kill(self.pid, libc::SIGKILL);
                    let _ = self.child.wait();
                    break format!("did not exit within {STOP_TIMEOUT:?}, killed");
                }
                Err(e) => break format!("wait: {e}"),
            }
        };
        self.reaped = true;
        (started.elapsed(), status)
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(0) => "exit 0".into(),
        Some(c) => format!("exit {c}"),
        None => format!("{status}"),
    }
}

impl Drop for Camhub {
    fn drop(&mut self) {
        if !self.reaped {
            sys::kill(self.pid, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn first_line_of(path: &str, prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    Some(
        line.split_once(':')
            .map_or(line, |(_, v)| v)
            .trim()
            .to_string(),
    )
}

fn command_output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn print_machine(args: &Args) {
    let repo = repo_dir();
    let cpus_online = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = first_line_of("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = first_line_of("/proc/meminfo", "MemTotal").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let version = command_output(Command::new(&args.camhub).arg("--version"))
        .unwrap_or_else(|| "unknown".into());
    let commit = command_output(Command::new("git").arg("-C").arg(&repo).args([
        "rev-parse",
        "--short",
        "HEAD",
    ]))
    .unwrap_or_else(|| "none (no commit yet)".into());
    let dirty = command_output(Command::new("git").arg("-C").arg(&repo).args([
        "status",
        "--porcelain",
        "--untracked-files=no",
    ]))
    .is_some();
    println!("## camhub fan-out benchmark\n");
    println!("- machine: {usable} usable CPU(s) ({cpus_online} online), {model}, {mem} RAM");
    println!("- kernel: Linux {}", kernel.trim());
    println!(
        "- load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "- camhub: {version}, commit {commit}{}",
        if dirty {
            " (+ uncommitted changes)"
        } else {
            ""
        }
    );
    println!(
        "- source: `{}`; warm-up {:.0} s, window {:.0} s per row; fresh camhub per row",
        args.source,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64()
    );
    println!(
        "- bench: one thread, epoll, {} KiB shared read buffer{}\n",
        READ_BUFFER_BYTES / 1024,
        match args.stalled_viewers {
            0 => String::new(),
            k => format!("; plus {k} stalled (never-reading) viewer(s) per row"),
        }
    );
}

fn print_table(args: &Args, rows: &[(usize, Result<Row, String>)]) {
    println!(
        "| viewers | camhub CPU % | bench CPU % | camhub RSS / peak MiB | threads | fps per viewer min / median / max | worst gap ms | source fps | latency p50 / p99 / max ms | dropped/s | recv MiB/s | failed viewers | SIGTERM→exit ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let dash = |v: f64, prec: usize| {
        if v.is_nan() {
            "–".to_string()
        } else {
            format!("{v:.prec$}")
        }
    };
    for (n, row) in rows {
        match row {
            Err(e) => println!("| {n} | failed: {} |||||||||||| ", e.replace('\n', " ").replace('|', "\\|")),
            Ok(r) => println!(
                "| {n} | {} | {} | {} / {} | {} | {} / {} / {} | {} | {} | {} / {} / {} | {} | {} | {} | {} |",
                dash(r.camhub_cpu_pct, 1),
                dash(r.bench_cpu_pct, 1),
                dash(r.rss_mib, 1),
                dash(r.hwm_mib, 1),
                dash(r.threads, 0),
                dash(r.fps.0, 2),
                dash(r.fps.1, 2),
                dash(r.fps.2, 2),
                if *n == 0 { "–".into() } else { dash(r.max_gap_ms, 0) },
                dash(r.source_fps, 2),
                dash(r.latency_ms.0, 1),
                dash(r.latency_ms.1, 1),
                dash(r.latency_ms.2, 1),
                dash(r.dropped_per_sec, 1),
                dash(r.recv_mib_per_sec, 1),
                r.failures.len(),
                dash(r.stop_ms, 0),
            ),
        }
    }
    println!();
    println!(
        "CPU % is of one core (100 = one core busy) over the {:.0} s window, utime+stime of the whole process from /proc. \
         RSS is VmRSS at the end of the window, peak is VmHWM. Latency is X-Timestamp (capture wall clock, ms \
         resolution, truncated) to the bench reading the part's last byte, over every frame every viewer got.",
        args.duration.as_secs_f64()
    );
    let ok = |n: usize| {
        rows.iter()
            .find(|(m, _)| *m == n)
            .and_then(|(_, r)| r.as_ref().ok())
    };
    if let (Some(idle), Some(one)) = (ok(0), ok(1)) {
        let ms_per_frame = (one.camhub_cpu_pct - idle.camhub_cpu_pct) * 10.0 / one.source_fps;
        println!(
            "\nTest pattern cost: 1 viewer vs 0 viewers = {:.1}% − {:.1}% CPU at {:.1} fps ≈ {:.2} ms of CPU per frame \
             (draw + JPEG encode + serving one viewer); mean JPEG {:.1} KiB.",
            one.camhub_cpu_pct,
            idle.camhub_cpu_pct,
            one.source_fps,
            ms_per_frame,
            one.mean_jpeg_bytes / 1024.0
        );
    }
    for (n, row) in rows {
        let Ok(r) = row else { continue };
        let mut notes = Vec::new();
        if r.connect_secs > 0.5 {
            notes.push(format!(
                "connecting all viewers took {:.2} s (slowest single connect {:.2} s)",
                r.connect_secs, r.slowest_connect_secs
            ));
        }
        if r.stop_status != "exit 0" {
            notes.push(format!("camhub stop: {}", r.stop_status));
        }
        if !r.failures.is_empty() {
            let mut counted: Vec<(String, usize)> = Vec::new();
            for f in &r.failures {
                match counted.iter_mut().find(|(g, _)| g == f) {
                    Some((_, c)) => *c += 1,
                    None => counted.push((f.clone(), 1)),
                }
            }
            let list: Vec<String> = counted.iter().map(|(f, c)| format!("{c}× {f}")).collect();
            notes.push(format!("failed viewers: {}", list.join("; ")));
        }
        if args.stalled_viewers > 0 {
            notes.push(format!(
                "{} stalled viewer(s) also attached; camhub counted {} viewer(s) at the end of the window",
                args.stalled_viewers,
                r.camhub_viewers_at_end.map_or("?".into(), |v| v.to_string())
            ));
        }
        if let Some(e) = &r.api_error {
            notes.push(format!(
                "GET /api/streams failed ({e}), so source fps and dropped/s are blank"
            ));
        }
        if !r.camhub_warnings.is_empty() {
            notes.push(format!(
                "camhub logged {} warning/error line(s), first: `{}`",
                r.camhub_warnings.len(),
                r.camhub_warnings[0]
            ));
        }
        if !notes.is_empty() {
            println!("\n- {n} viewer(s): {}", notes.join("; "));
        }
    }
}
