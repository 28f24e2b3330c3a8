//! Bad input gets a clear error and disturbs nothing else (issue 7): cameras that cannot
//! be reached (connection refused, a host that never answers, a name that does not
//! resolve), a camera sending corrupt JPEGs, config file errors, and a replay of the
//! fuzz target bodies (`fuzz/src/lib.rs`) over their seed corpus and seeded mutations.
//!
//! The camera tests run the real camhub binary with a healthy test-pattern stream next
//! to the bad ones and check it stays live with frames the whole time; the config tests
//! run `camhub --check-config` on files tests/cli.rs does not cover. The unreachable-host
//! and DNS cases run camhub inside a network namespace the test creates (root and
//! iproute2 needed): only loopback plus a link that swallows every packet, and a
//! resolv.conf naming 127.0.0.1, where nothing answers, so no packet or DNS query leaves
//! the namespace.

mod common;
#[path = "../fuzz/src/lib.rs"]
mod fuzz_bodies;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any expected state may take to show up: a hang guard, not a timing check.
/// The slowest case is an RTSP camera that never answers (a 10 s connect timeout).
const WAIT: Duration = Duration::from_secs(30);
/// The healthy stream: small and cheap, 10 frames a second.
const HEALTHY_URL: &str = "pattern:?size=160x120&fps=10";
/// Longest gap between two parts of the healthy stream that still counts as "live the
/// whole time" (it sends one every 100 ms; generous for a loaded CI machine).
const MAX_HEALTHY_GAP: Duration = Duration::from_secs(3);

// ---- the fuzz bodies, replayed on stable ----------------------------------------------

/// Mutated inputs run per target. Deterministic (a fixed seed), a few seconds in all.
const MUTATIONS_PER_TARGET: usize = 30_000;

#[test]
fn fuzz_bodies_hold_on_the_seed_corpus_and_mutations() {
    type Body = fn(&[u8]);
    let targets: [(&str, Body); 2] = [
        ("multipart", fuzz_bodies::multipart),
        ("config", fuzz_bodies::config),
    ];
    for (target, body) in targets {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        paths.sort();
        let seeds: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
        assert!(seeds.len() >= 3, "{target}: seed corpus too small");
        for (path, seed) in paths.iter().zip(&seeds) {
            run_body(target, body, seed, &path.display().to_string());
        }
        let mut rng = XorShift(0x5EED_0007 ^ target.len() as u32);
        for round in 0..MUTATIONS_PER_TARGET {
            let input = mutate(&seeds, &mut rng);
            run_body(target, body, &input, &format!("mutation {round}"));
        }
    }
}

/// Runs one input; on a failed invariant, says which input so it can be replayed with
/// `cargo fuzz run` (or added to the corpus) before failing.
fn run_body(target: &str, body: fn(&[u8]), input: &[u8], what: &str) {
    let result = std::panic::catch_unwind(|| body(input));
    if let Err(panic) = result {
        let path = std::env::temp_dir().join(format!("camhub-{target}-failure"));
        let _ = std::fs::write(&path, input);
        eprintln!(
            "{target}: {what} failed; input saved to {} ({:?})",
            path.display(),
            input.escape_ascii().to_string()
        );
        std::panic::resume_unwind(panic);
    }
}

/// xorshift32: a tiny deterministic generator, so every run tests the same inputs.
struct XorShift(u32);

impl XorShift {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n.max(1)
    }
}

/// Bytes that matter to the parsers: multipart and chunk framing, TOML syntax, URL
/// user info, JPEG markers.
const INTERESTING: &[u8] = b"-\r\n\n:;=\"'[]{}.@/?#%\\0 \xFF\xD8\xD9\x00";

/// A seed changed a few times: bytes flipped, inserted, deleted, duplicated, spliced
/// from another seed, or cut short.
fn mutate(seeds: &[Vec<u8>], rng: &mut XorShift) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if at < v.len() => v[at] = rng.next() as u8,
            1 if at < v.len() => v[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => v.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 if at < v.len() => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                v.drain(at..end);
            }
            4 if at < v.len() => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                let copy = v[at..end].to_vec();
                let to = rng.below(v.len() + 1);
                v.splice(to..to, copy);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
            6 => v.truncate(at),
            // The first two bytes of a multipart input pick the reads and mode.
            _ if v.len() >= 2 => v[rng.below(2)] = rng.next() as u8,
            _ => {}
        }
    }
    v
}

// ---- cameras that cannot be reached ------------------------------------------------

/// A network namespace for one test: loopback up, a `192.0.2.0/24` route into a veth
/// link without ARP whose other end (also inside) has no address, so packets sent there
/// vanish and connects hang, and `/etc/netns/<name>/resolv.conf` pointing at 127.0.0.1
/// (`ip netns exec` mounts it over /etc/resolv.conf), where nothing listens, so every
/// name fails to resolve at once. Deleted with its directory when dropped.
struct Netns {
    name: String,
}

/// An address in the swallowing route: a camera that never answers.
const SILENT_HOST: &str = "192.0.2.1";

impl Netns {
    fn create(tag: &str) -> Netns {
        let name = format!("camhub-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        let n = ns.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&[
            "-n", n, "link", "add", "sink0", "type", "veth", "peer", "name", "sink1",
        ]);
        ip(&["-n", n, "addr", "add", "192.0.2.254/32", "dev", "sink0"]);
        ip(&["-n", n, "link", "set", "sink0", "arp", "off", "up"]);
        ip(&["-n", n, "link", "set", "sink1", "up"]);
        ip(&["-n", n, "route", "add", "192.0.2.0/24", "dev", "sink0"]);
        std::fs::create_dir_all(ns.etc_dir()).unwrap();
        std::fs::write(ns.etc_dir().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        ns
    }

    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    /// `program` run inside the namespace (`ip netns exec` execs it: same PID).
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs camhub inside, like [`spawn_camhub`].
    fn spawn_camhub(&self, args: &[&str]) -> Child {
        common::spawn_camhub_with(self.command(env!("CARGO_BIN_EXE_camhub")), args)
    }

    /// GET `path` from camhub inside the namespace (with curl run there): status, body.
    fn get(&self, addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
        let out = self
            .command("curl")
            .args(["-sS", "-i", "--max-time", "10"])
            .arg(format!("http://{addr}{path}"))
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "curl {path}: {out:?}");
        let text = out.stdout;
        let split = text
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let status = String::from_utf8_lossy(&text[..split])
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        (status, text[split + 4..].to_vec())
    }

    fn api_stream(&self, addr: SocketAddr, id: &str) -> serde_json::Value {
        let (status, body) = self.get(addr, "/api/streams");
        assert_eq!(status, 200);
        find_stream(&body, id)
    }

    /// Watches `/stream/{id}` with curl inside the namespace.
    fn watch(&self, addr: SocketAddr, id: &str) -> Watch {
        let mut curl = self
            .command("curl")
            .args(["-sS", "-N", "--max-time", "120"])
            .arg(format!("http://{addr}/stream/{id}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl runs");
        let stdout = curl.stdout.take().unwrap();
        Watch::start(BufReader::new(stdout), Some(KillOnDrop(curl)))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(self.etc_dir());
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2 (ip) is installed");
    assert!(
        out.status.success(),
        "ip {}: {} (network namespaces need root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A helper process (curl) killed by PID when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_stream(api_body: &[u8], id: &str) -> serde_json::Value {
    let all: serde_json::Value = serde_json::from_slice(api_body).expect("api is JSON");
    all.as_array()
        .expect("array")
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("stream {id} missing from {all}"))
}

/// One part of an MJPEG response as a viewer got it.
struct SeenPart {
    offline_reason: Option<String>,
    jpeg: Vec<u8>,
}

/// A viewer reading an MJPEG response on its own thread: every part, and the longest
/// wait between two parts.
struct Watch {
    stop: Arc<AtomicBool>,
    parts: Arc<Mutex<Vec<SeenPart>>>,
    max_gap: Arc<Mutex<Duration>>,
    thread: Option<JoinHandle<()>>,
    curl: Option<KillOnDrop>,
}

impl Watch {
    /// Reads parts from `r`: an MJPEG body without transfer coding.
    fn start(mut r: impl BufRead + Send + 'static, curl: Option<KillOnDrop>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let parts = Arc::new(Mutex::new(Vec::new()));
        let max_gap = Arc::new(Mutex::new(Duration::ZERO));
        let thread = {
            let (stop, parts, max_gap) = (stop.clone(), parts.clone(), max_gap.clone());
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    let Some(part) = read_part(&mut r) else {
                        return;
                    };
                    let gap = last.elapsed();
                    last = Instant::now();
                    let mut max = max_gap.lock().unwrap();
                    *max = (*max).max(gap);
                    parts.lock().unwrap().push(part);
                }
            })
        };
        Watch {
            stop,
            parts,
            max_gap,
            thread: Some(thread),
            curl,
        }
    }

    /// Stops reading; returns the parts seen and the longest gap between two.
    fn finish(mut self) -> (Vec<SeenPart>, Duration) {
        self.stop.store(true, Ordering::SeqCst);
        // Ending curl ends its output; a TCP viewer ends at its next part.
        self.curl = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let parts = std::mem::take(&mut *self.parts.lock().unwrap());
        let max_gap = *self.max_gap.lock().unwrap();
        (parts, max_gap)
    }
}

/// Reads the next part (boundary line, headers, Content-Length bytes); None at the end.
fn read_part(r: &mut impl BufRead) -> Option<SeenPart> {
    let mut length = None;
    let mut offline_reason = None;
    let mut in_headers = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if !in_headers {
            in_headers = line.starts_with("--");
            continue;
        }
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "x-camhub-offline" => offline_reason = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut jpeg = vec![0; length?];
    r.read_exact(&mut jpeg).ok()?;
    Some(SeenPart {
        offline_reason,
        jpeg,
    })
}

/// A bad stream in the unreachable/DNS test: its id, URL, and what its error must say.
struct BadCamera {
    id: &'static str,
    url: String,
    /// Every one of these must be in `last_error` (case-insensitive).
    error_names: Vec<&'static str>,
}

#[test]
fn unreachable_and_unresolvable_cameras_back_off_with_clear_reasons() {
    let ns = Netns::create("unreach");
    // Nothing listens on port 1 in a fresh namespace: connection refused.
    let cameras = [
        BadCamera {
            id: "refused-http",
            url: "http://127.0.0.1:1/video".into(),
            error_names: vec!["127.0.0.1:1", "refused"],
        },
        BadCamera {
            id: "refused-rtsp",
            url: "rtsp://127.0.0.1:1/stream".into(),
            error_names: vec!["127.0.0.1:1", "refused"],
        },
        BadCamera {
            id: "silent-http",
            url: format!("http://{SILENT_HOST}/video"),
            error_names: vec![SILENT_HOST, "timed out"],
        },
        BadCamera {
            id: "silent-rtsp",
            url: format!("rtsp://{SILENT_HOST}/stream"),
            error_names: vec![SILENT_HOST, "no answer"],
        },
        BadCamera {
            id: "dns-http",
            url: "http://cam.invalid:8080/video".into(),
            error_names: vec!["cannot resolve cam.invalid"],
        },
        BadCamera {
            id: "dns-rtsp",
            url: "rtsp://cam.invalid/stream".into(),
            error_names: vec!["cannot resolve cam.invalid"],
        },
    ];
    let mut sources = vec![format!("ok={HEALTHY_URL}")];
    sources.extend(cameras.iter().map(|c| format!("{}={}", c.id, c.url)));
    let args: Vec<&str> = sources
        .iter()
        .flat_map(|s| ["--source", s.as_str()])
        .collect();
    let camhub = ns.spawn_camhub(&args);
    let addr = camhub.addr;
    eventually(WAIT, || {
        (ns.api_stream(addr, "ok")["state"] == "live").then_some(())
    })
    .expect("the healthy stream goes live");
    let healthy = ns.watch(addr, "ok");

    // Poll until every bad camera has been seen backing off with its reason, checking
    // the healthy stream on every poll.
    let mut backed_off: Vec<Option<String>> = vec![None; cameras.len()];
    let mut healthy_frames = 0;
    let deadline = Instant::now() + WAIT;
    while backed_off.iter().any(Option::is_none) && Instant::now() < deadline {
        let (status, body) = ns.get(addr, "/api/streams");
        assert_eq!(status, 200);
        let ok = find_stream(&body, "ok");
        assert_eq!(ok["state"], "live", "the healthy stream: {ok}");
        let frames = ok["frames"].as_u64().unwrap();
        assert!(frames >= healthy_frames, "{ok}");
        healthy_frames = frames;
        for (camera, seen) in cameras.iter().zip(&mut backed_off) {
            let s = find_stream(&body, camera.id);
            assert_ne!(s["state"], "live", "{s}");
            assert_eq!(s["frames"], 0, "{s}");
            let error = s["last_error"].as_str().unwrap_or_default().to_string();
            let named = camera
                .error_names
                .iter()
                .all(|n| error.to_lowercase().contains(&n.to_lowercase()));
            if s["state"] == "backoff" && named && s["retry_in_secs"].as_f64() > Some(0.0) {
                *seen = Some(error);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let body = ns.get(addr, "/api/streams").1;
    for (camera, seen) in cameras.iter().zip(&backed_off) {
        assert!(
            seen.is_some(),
            "{} ({}) never backed off with an error naming {:?}: {}",
            camera.id,
            camera.url,
            camera.error_names,
            find_stream(&body, camera.id)
        );
    }

    // Viewers of a down camera get the OFFLINE picture with the reason, snapshots a 503.
    for camera in &cameras {
        let (status, body) = ns.get(addr, &format!("/snapshot/{}", camera.id));
        assert_eq!(
            status,
            503,
            "{}: {}",
            camera.id,
            String::from_utf8_lossy(&body)
        );
        let watch = ns.watch(addr, camera.id);
        let part = eventually(WAIT, || {
            let parts = watch.parts.lock().unwrap();
            parts
                .first()
                .map(|p| (p.offline_reason.clone(), p.jpeg.clone()))
        });
        let (parts, _) = watch.finish();
        let (reason, jpeg) = part.unwrap_or_else(|| panic!("{}: no placeholder", camera.id));
        assert!(!parts.is_empty());
        let reason = reason.unwrap_or_else(|| panic!("{}: not marked offline", camera.id));
        assert!(
            reason.to_lowercase().contains(camera.error_names[0]),
            "{}: {reason}",
            camera.id
        );
        let (w, h, _) = decode(&jpeg);
        assert!(w > 0 && h > 0);
    }

    let (parts, max_gap) = healthy.finish();
    assert!(
        parts.len() >= 20,
        "the healthy viewer got {} parts",
        parts.len()
    );
    assert!(
        parts.iter().all(|p| p.offline_reason.is_none()),
        "the healthy stream went offline"
    );
    assert!(
        max_gap < MAX_HEALTHY_GAP,
        "the healthy viewer waited {max_gap:?} for a frame"
    );
    drop(camhub);
}

// ---- a camera sending corrupt JPEGs ----------------------------------------------------

/// An HTTP-MJPEG camera on 127.0.0.1: every connection gets `parts()` (each with a
/// Content-Length), then nothing on an open connection until the test ends.
struct Camera {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Camera {
    fn start(parts: Vec<Vec<u8>>) -> Camera {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, connections) = (stop.clone(), connections.clone());
            std::thread::spawn(move || {
                let mut handlers = Vec::new();
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) && started.elapsed() < WAIT * 4 {
                    let Ok((s, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (stop, parts) = (stop.clone(), parts.clone());
                    handlers.push(std::thread::spawn(move || serve(s, &parts, &stop)));
                }
                for h in handlers {
                    let _ = h.join();
                }
            })
        };
        Camera {
            addr,
            stop,
            connections,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/video", self.addr)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut s: TcpStream, parts: &[Vec<u8>], stop: &AtomicBool) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let mut out =
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=cam\r\n\r\n"
            .to_vec();
    for part in parts {
        out.extend_from_slice(
            format!(
                "--cam\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                part.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    if s.write_all(&out).is_err() {
        return;
    }
    let started = Instant::now();
    while !stop.load(Ordering::SeqCst) && started.elapsed() < WAIT * 4 {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Distinct valid JPEGs of 64x48.
fn valid_jpegs(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let rgb: Vec<u8> = (0..64 * 48)
                .flat_map(|p| [(i * 70) as u8, (p % 64 * 4) as u8, 90])
                .collect();
            camhub::jpeg::encode_rgb(&rgb, 64, 48, 80).unwrap().to_vec()
        })
        .collect()
}

/// Broken frames of the kinds cameras send: cut short, noise behind a JPEG start,
/// noise with no JPEG start, a JPEG whose end marker is missing.
fn broken_jpegs(valid: &[u8], rng: &mut XorShift) -> Vec<Vec<u8>> {
    let noise =
        |rng: &mut XorShift, n: usize| -> Vec<u8> { (0..n).map(|_| rng.next() as u8).collect() };
    let mut soi_noise = vec![0xFF, 0xD8];
    soi_noise.extend(noise(rng, 700));
    vec![
        valid[..valid.len() / 2].to_vec(),
        soi_noise,
        noise(rng, 500),
        valid[..valid.len() - 2].to_vec(),
    ]
}

#[test]
fn corrupt_jpegs_are_skipped_and_an_all_corrupt_camera_backs_off() {
    let valid = valid_jpegs(2);
    let mut rng = XorShift(0xC0FF_EE07);
    // Valid frames between runs of every kind of broken one.
    let mut mixed = Vec::new();
    let mut valid_per_connection = 0;
    for round in 0..6 {
        mixed.push(valid[round % 2].clone());
        valid_per_connection += 1;
        mixed.extend(broken_jpegs(&valid[round % 2], &mut rng));
    }
    mixed.push(valid[0].clone());
    valid_per_connection += 1;
    // Only broken frames, more than camhub tolerates in a row.
    let corrupt: Vec<Vec<u8>> = (0..8)
        .flat_map(|round| broken_jpegs(&valid[round % 2], &mut rng))
        .collect();
    let mixed_camera = Camera::start(mixed);
    let corrupt_camera = Camera::start(corrupt);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("camhub.toml");
    // A long stall timeout: the mixed camera goes quiet after its frames and must not
    // be reconnected (and counted twice) while the test runs.
    std::fs::write(
        &config,
        format!(
            "[[stream]]\nid = \"ok\"\nurl = \"{HEALTHY_URL}\"\n\
             [[stream]]\nid = \"mixed\"\nurl = \"{}\"\nstall_after_secs = 120\n\
             [[stream]]\nid = \"corrupt\"\nurl = \"{}\"\n",
            mixed_camera.url(),
            corrupt_camera.url()
        ),
    )
    .unwrap();
    let camhub = spawn_camhub(&["--config", config.to_str().unwrap()]);
    let addr = camhub.addr;
    eventually(WAIT, || {
        (api_stream(addr, "ok")["state"] == "live").then_some(())
    })
    .expect("the healthy stream goes live");
    let healthy = watch_tcp(addr, "ok");

    // Every valid frame gets through, no broken one does.
    let mut corrupt_error = None;
    let mut corrupt_backed_off = false;
    let started = Instant::now();
    let deadline = started + WAIT;
    loop {
        let body = get(addr, "/api/streams").body;
        let ok = find_stream(&body, "ok");
        assert_eq!(ok["state"], "live", "the healthy stream: {ok}");
        let m = find_stream(&body, "mixed");
        let frames = m["frames"].as_u64().unwrap() as usize;
        assert!(
            frames <= valid_per_connection,
            "broken frames got through: {m}"
        );
        let c = find_stream(&body, "corrupt");
        assert_ne!(c["state"], "live", "{c}");
        assert_eq!(c["frames"], 0, "{c}");
        let error = c["last_error"].as_str().unwrap_or_default();
        if error.contains("broken frames in a row") {
            corrupt_error = Some(error.to_string());
            corrupt_backed_off |= c["state"] == "backoff";
        }
        // Several reconnects of the corrupt camera, over a few seconds of the healthy one.
        let done = frames == valid_per_connection
            && corrupt_backed_off
            && corrupt_camera.connections.load(Ordering::SeqCst) >= 3
            && started.elapsed() >= Duration::from_secs(3);
        if done || Instant::now() > deadline {
            assert_eq!(frames, valid_per_connection, "{m}");
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = api_stream(addr, "mixed");
    assert_eq!(m["state"], "live", "{m}");
    assert_eq!(mixed_camera.connections.load(Ordering::SeqCst), 1, "{m}");
    let error = corrupt_error.expect("the all-corrupt camera reports broken frames");
    let origin = corrupt_camera.addr.to_string();
    assert!(error.contains(&origin), "{error}");
    assert!(corrupt_backed_off, "{}", api_stream(addr, "corrupt"));
    assert!(
        corrupt_camera.connections.load(Ordering::SeqCst) >= 3,
        "the all-corrupt camera is reconnected"
    );

    let (parts, max_gap) = healthy.finish();
    assert!(
        parts.len() >= 10,
        "the healthy viewer got {} parts",
        parts.len()
    );
    assert!(parts.iter().all(|p| p.offline_reason.is_none()));
    assert!(
        max_gap < MAX_HEALTHY_GAP,
        "the healthy viewer waited {max_gap:?} for a frame"
    );
}

/// Watches `/stream/{id}` over TCP (camhub's chunked body, undone on the fly).
fn watch_tcp(addr: SocketAddr, id: &str) -> Watch {
    let mut s = connect(addr);
    write!(s, "GET /stream/{id} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let (status, _) = read_head(&mut r);
    assert_eq!(status, 200);
    Watch::start(BufReader::new(dechunk(r)), None)
}

// ---- config errors -------------------------------------------------------------------
// tests/cli.rs covers unknown keys and schemes, duplicate and bad ids, pattern options,
// the mDNS name and a file that is not TOML; these are the paths it leaves out.

/// `--check-config` on `toml` saved as `c.toml`: (valid, everything printed).
fn check_config(toml: &str) -> (bool, String) {
    common::check_config_file("c.toml", toml)
}

/// A value of the wrong type for every key of every table: (file, line, key).
const WRONG_TYPES: &[(&str, usize, &str)] = &[
    ("[server]\nlisten = 8080\n", 2, "server.listen"),
    (
        "[server]\nsend_timeout_secs = \"20\"\n",
        2,
        "server.send_timeout_secs",
    ),
    (
        "[server]\nmax_connections = \"many\"\n",
        2,
        "server.max_connections",
    ),
    ("[server]\nmax_viewers = 1.5\n", 2, "server.max_viewers"),
    ("[server]\nauth = 42\n", 2, "server.auth"),
    ("[mdns]\nenabled = \"yes\"\n", 2, "mdns.enabled"),
    ("[mdns]\nname = 7\n", 2, "mdns.name"),
    ("[mdns]\ninterfaces = \"eth0\"\n", 2, "mdns.interfaces"),
    ("[leds]\nactive_low = 1\n", 2, "leds.active_low"),
    ("[leds]\nsystem = \"17\"\n", 2, "leds.system"),
    ("[leds]\nviewers = -3\n", 2, "leds.viewers"),
    ("[[stream]]\nid = 5\nurl = \"pattern:\"\n", 2, "stream.id"),
    (
        "[[stream]]\nid = \"a\"\nname = true\nurl = \"pattern:\"\n",
        3,
        "stream.name",
    ),
    ("[[stream]]\nid = \"a\"\nurl = 5\n", 3, "stream.url"),
    (
        "[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nled = \"17\"\n",
        4,
        "stream.led",
    ),
    (
        "[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nled = 300\n",
        4,
        "stream.led",
    ),
    (
        "[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nfps = \"ten\"\n",
        4,
        "stream.fps",
    ),
    (
        "[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nsize = [640, 480]\n",
        4,
        "stream.size",
    ),
    (
        "[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nstall_after_secs = \"5\"\n",
        4,
        "stream.stall_after_secs",
    ),
    (
        "[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nenabled = \"no\"\n",
        4,
        "stream.enabled",
    ),
    (
        "[[stream]]\nid = \"a\"\nurl = \"rtsp://h/s\"\nusername = 1\n",
        4,
        "stream.username",
    ),
    (
        "[[stream]]\nid = \"a\"\nurl = \"rtsp://h/s\"\npassword = 2\n",
        4,
        "stream.password",
    ),
    (
        "[[stream]]\nid = \"a\"\nurl = \"rtsp://h/s\"\ntransport = 3\n",
        4,
        "stream.transport",
    ),
    ("stream = 5\n", 1, "stream"),
    ("server = \"x\"\n", 1, "server"),
];

/// A key given twice (TOML forbids it): (file, line of the second one, key).
const DUPLICATES: &[(&str, usize, &str)] = &[
    (
        "[server]\nlisten = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n",
        3,
        "server.listen",
    ),
    ("[mdns]\nname = \"a\"\n[mdns]\nname = \"b\"\n", 3, "mdns"),
    (
        "[[stream]]\nid = \"a\"\nid = \"b\"\nurl = \"pattern:\"\n",
        3,
        "stream.id",
    ),
];

/// Not TOML: (file, line of the mistake).
const BAD_SYNTAX: &[(&str, usize)] = &[
    ("[server\nlisten = \"127.0.0.1:1\"\n", 1),
    ("[server]\nlisten = 127.0.0.1:1\n", 2),
    ("[server]\nlisten = \"127.0.0.1:1\n", 2),
    ("[mdns]\nname =\n", 2),
    ("[[stream]]\nid = \"a\"\nurl = \"pattern:\\q\"\n", 3),
    ("[leds]\n\n\nsystem = 1 2\n", 4),
];

#[test]
fn config_errors_name_the_file_and_line() {
    let all = WRONG_TYPES
        .iter()
        .chain(DUPLICATES)
        .map(|&(toml, line, _)| (toml, line))
        .chain(BAD_SYNTAX.iter().copied());
    for (toml, line) in all {
        let (ok, text) = check_config(toml);
        assert!(!ok, "accepted:\n{toml}");
        assert!(
            text.contains(&format!("c.toml:{line}:")),
            "for\n{toml}\nexpected c.toml:{line}, got: {text}"
        );
    }
}

/// README: "Unknown keys are errors, and every error names the key and line."
#[test]
fn wrong_types_and_duplicate_keys_name_the_key() {
    let mut unnamed = Vec::new();
    for &(toml, line, key) in WRONG_TYPES.iter().chain(DUPLICATES) {
        let (ok, text) = check_config(toml);
        assert!(!ok, "accepted:\n{toml}");
        if !text.contains(&format!("c.toml:{line}: {key}")) {
            unnamed.push(format!("{key}: {}", text.trim()));
        }
    }
    assert!(
        unnamed.is_empty(),
        "{} errors do not name their key as c.toml:LINE: KEY:\n{}",
        unnamed.len(),
        unnamed.join("\n")
    );
}

/// A password in the URLs below; it must never be printed.
const URL_SECRET: &str = "Pw0rdXyz";

#[test]
fn bad_urls_of_every_scheme_name_the_stream_and_hide_credentials() {
    let cases = [
        (format!("rtsp://admin:{URL_SECRET}@/stream"), "host"),
        (
            format!("rtsp://admin:{URL_SECRET}@cam:99999/stream"),
            "port",
        ),
        (format!("rtsp:/admin:{URL_SECRET}@cam/stream"), "host"),
        (format!("http://admin:{URL_SECRET}@/video"), "host"),
        (format!("http://admin:{URL_SECRET}@cam:http/video"), "port"),
        (
            format!("v4l2://admin:{URL_SECRET}@cam/video0"),
            "v4l2:///dev/video",
        ),
        ("v4l2:dev/video0".to_string(), "v4l2:///dev/video"),
        ("exec:   ".to_string(), "needs a command"),
        ("pattern:?size=1x1".to_string(), "size"),
        ("pattern:?fps=1000".to_string(), "fps"),
        (
            format!("ftp://admin:{URL_SECRET}@cam/x"),
            "unknown URL scheme",
        ),
    ];
    let mut failures = Vec::new();
    for (url, why) in &cases {
        let (ok, text) = check_config(&format!(
            "[[stream]]\nid = \"cam\"\nname = \"Cam\"\nurl = \"{url}\"\n"
        ));
        let good = !ok
            && text.contains("c.toml:4: stream.url")
            && text.contains("\"cam\"")
            && text.to_lowercase().contains(&why.to_lowercase())
            && !text.contains(URL_SECRET);
        if !good {
            failures.push(format!("{url}: {}", text.trim()));
        }
    }
    assert!(failures.is_empty(), "bad errors:\n{}", failures.join("\n"));
}

/// URLs that a URL parser (and so the HTTP source) reads as carrying credentials must
/// be shown without them, however they are spelled. The `http:user:pw@host` spellings
/// (found by fuzz/: they used to pass and be shown whole) are refused with an error
/// that names the key and shows the expected form, not the URL.
#[test]
fn the_summary_never_shows_url_credentials() {
    let urls = [
        (
            format!("http://admin:{URL_SECRET}@127.0.0.1:8081/video"),
            true,
        ),
        (
            format!("HTTP://admin:{URL_SECRET}@127.0.0.1:8081/video"),
            true,
        ),
        (format!("rtsp://admin:{URL_SECRET}@127.0.0.1/stream"), true),
        (
            format!("http:admin:{URL_SECRET}@127.0.0.1:8081/video"),
            false,
        ),
        (
            format!("http:/admin:{URL_SECRET}@127.0.0.1:8081/video"),
            false,
        ),
        (
            format!("exec:ffmpeg -i rtsp://admin:{URL_SECRET}@127.0.0.1/s -f mjpeg -"),
            true,
        ),
    ];
    let mut leaks = Vec::new();
    for (url, valid) in &urls {
        let (ok, text) = check_config(&format!("[[stream]]\nid = \"cam\"\nurl = \"{url}\"\n"));
        let refused_clearly = text.contains("c.toml:3: stream.url") && text.contains("://HOST");
        if ok != *valid || text.contains(URL_SECRET) || (!ok && !refused_clearly) {
            leaks.push(format!("{url} (valid: {ok}):\n{}", text.trim()));
        }
    }
    assert!(leaks.is_empty(), "credentials shown:\n{}", leaks.join("\n"));
}
