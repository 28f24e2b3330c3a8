//! Issue #14 end to end: a phone-only setup of one ONVIF camera, against the real camhub
//! binary and real peers in two network namespaces joined by a veth pair.
//!
//! - Namespace b is "the LAN": the GStreamer RTSP server (tests/peers/rtsp_server.py) as
//!   the camera's main stream (1280x720) and a second one as its sub-stream (640x360),
//!   both with Digest auth; the fake ONVIF camera (tests/peers/onvif_device.py) on port
//!   80, Digest-only, whose GetStreamUri answers `rtsp://0.0.0.0:…` URLs of those two
//!   servers; python WSDiscovery (tests/peers/wsd_device.py) announcing it as "Test Cam",
//!   hardware "TC-1"; and a second camhub (mDNS on) with one stream.
//! - Namespace a is "the box": camhub with mDNS on (discovery needs it), a config with one
//!   pattern camera and a state directory. The test drives its HTTP API from a thread
//!   that has entered namespace a (setns(2) moves only that thread), with the session
//!   cookie the page would hold: set the admin password → `GET /api/discover` → `POST
//!   /api/onvif/streams` → `POST /api/cameras/test` on the suggested main stream → `POST
//!   /api/cameras` with main and sub → the grid (`/mux?width=366`) is fed by the
//!   sub-stream while the main stream is not decoded → a directed probe says the camera
//!   is added. Each step's time is printed: how long a phone-only setup takes.
//!
//! Multicast never leaves the namespaces: no process here has a real interface. Needs
//! root, iproute2, python3-zeroconf, Debian's chromium and python3-websocket, Debian's python3 with gi (GStreamer RTSP server) and
//! WSDiscovery under target/py-peers (scripts/deps.sh); without them a test fails and says
//! why. Every process is stopped by PID and the namespaces are deleted, pass or fail.

#[path = "common/browser.rs"]
mod chromium;
mod common;

use chromium::{tile_draws, Browser, WAIT};
use common::netns::{Lines, Net, Proc, ADDR_A, ADDR_B, EVENTUALLY};
use common::{decode, eventually, read_head, MuxReader, Response};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";
const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers");
/// Where scripts/deps.sh installs WSDiscovery (Debian's python3 is externally managed).
const PY_PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/py-peers");

const ADMIN_PW: &str = "correct horse battery";
/// The camera's account (ONVIF and RTSP alike), distinctive enough to grep for.
const CAM_USER: &str = "camuser";
const CAM_PW: &str = "Cam-pw-3f9a1c";
/// The camera's endpoint reference.
const DEVICE: &str = "urn:uuid:7465-7374-2d63-616d-2d6f6e766966";
const MAIN_PORT: u16 = 8554;
const SUB_PORT: u16 = 8555;
/// A global-scope IPv6 address for b: WSDiscovery joins ff02::c only for interfaces that
/// have one (see tests/wsdiscovery.rs).
const ULA_B: &str = "fd57:5344:6973::2/64";

// ---- a thread inside a namespace ----------------------------------------------------

extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
}
const CLONE_NEWNET: i32 = 0x4000_0000;

/// Runs `f` on a thread that has entered network namespace `ns` (setns moves only the
/// calling thread: the test's other threads and the machine stay where they are), so
/// its sockets are a's; a panic in `f` is the test's.
fn inside<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(format!("/run/netns/{ns}"))
                    .unwrap_or_else(|e| panic!("open /run/netns/{ns}: {e}"));
                // SAFETY: a plain syscall on a file descriptor that stays open across it.
                let rc = unsafe { setns(file.as_raw_fd(), CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns({ns}): {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

// ---- processes ------------------------------------------------------------------------

/// `program args` in `ns`, its stdout followed under `label`; waits until a line
/// satisfies `ready`.
fn spawn(
    net: &Net,
    ns: &str,
    label: &str,
    program: &str,
    args: &[&str],
    ready: impl Fn(&str) -> bool,
) -> Proc {
    let mut child = net
        .command(ns, program)
        .args(args)
        .env("PYTHONPATH", PY_PEERS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let lines = Lines::default();
    lines.follow(child.stdout.take().unwrap(), label.to_string());
    let proc = Proc { child, lines };
    proc.lines
        .wait(0, EVENTUALLY, |l| ready(l).then_some(()))
        .unwrap_or_else(|| panic!("{label} did not start"));
    proc
}

/// The real camhub binary in `ns` listening on `listen`, mDNS on; its log followed under
/// `label`. Returns it and its HTTP port.
fn camhub(net: &Net, ns: &str, label: &str, listen: &str, args: &[&str]) -> (Proc, u16) {
    common::netns::spawn_camhub_on(net, ns, label, "info", listen, args)
}

/// The LAN in namespace b and the box in a. Fields drop in order: the processes first,
/// the namespaces last.
struct Lab {
    camera: Vec<Proc>,
    _peer_box: Option<Proc>,
    boxa: Proc,
    _dir: tempfile::TempDir,
    /// The box's HTTP address (in a).
    addr: SocketAddr,
    /// b's IPv6 link-local address, when the lab has IPv6.
    ll_b: Option<std::net::Ipv6Addr>,
    peer_box_name: String,
    net: Net,
}

impl Lab {
    fn new(tag: &str, ipv6: bool, with_peer_box: bool) -> Lab {
        let net = Net::new(tag);
        let mut xaddrs = vec![format!("http://{ADDR_B}/onvif/device_service")];
        let mut ll_b = None;
        if ipv6 {
            net.add_ipv6(&net.b, &net.vb, ULA_B);
            net.link_local(&net.a, &net.va);
            let ll = net.link_local(&net.b, &net.vb);
            xaddrs.push(format!("http://[{ll}]/onvif/device_service"));
            ll_b = Some(ll);
        }
        let b = net.b.clone();
        let rtsp = |label: &str, port: u16, size: &str| {
            let script = format!("{PEERS}/rtsp_server.py");
            let port = port.to_string();
            spawn(
                &net,
                &b,
                label,
                PYTHON,
                &[
                    &script,
                    "--address",
                    ADDR_B,
                    "--port",
                    &port,
                    "--size",
                    size,
                    "--auth",
                    "digest",
                    "--user",
                    CAM_USER,
                    "--password",
                    CAM_PW,
                ],
                |l| l.starts_with("ready"),
            )
        };
        let main = rtsp("rtsp-main", MAIN_PORT, "1280x720");
        let sub = rtsp("rtsp-sub", SUB_PORT, "640x360");
        let onvif = spawn(
            &net,
            &b,
            "onvif",
            PYTHON,
            &[
                &format!("{PEERS}/onvif_device.py"),
                "--bind",
                if ipv6 { "::" } else { ADDR_B },
                "--port",
                "80",
                "--auth",
                "digest",
                "--user",
                CAM_USER,
                "--password",
                CAM_PW,
                "--rtsp-port",
                &MAIN_PORT.to_string(),
                "--main-size",
                "1280x720",
                "--sub-uri",
                &format!("rtsp://0.0.0.0:{SUB_PORT}/h264"),
            ],
            |l| l.starts_with("ready"),
        );
        let mut wsd_args = vec![
            format!("{PEERS}/wsd_device.py"),
            "--uuid".into(),
            DEVICE.into(),
        ];
        for scope in [
            "onvif://www.onvif.org/Profile/Streaming",
            "onvif://www.onvif.org/type/video_encoder",
            "onvif://www.onvif.org/name/Test%20Cam",
            "onvif://www.onvif.org/hardware/TC-1",
        ] {
            wsd_args.extend(["--scope".into(), scope.into()]);
        }
        for x in &xaddrs {
            wsd_args.extend(["--xaddr".into(), x.clone()]);
        }
        let wsd_args: Vec<&str> = wsd_args.iter().map(String::as_str).collect();
        let wsd = spawn(&net, &b, "wsd", PYTHON, &wsd_args, |l| {
            l.contains(r#""event": "ready""#)
        });

        let pid = std::process::id();
        let peer_box_name = format!("lanbox-{pid}{tag}");
        let peer_box = with_peer_box.then(|| {
            camhub(
                &net,
                &b,
                "camhub-b",
                "0.0.0.0:0",
                &[
                    "--name",
                    &peer_box_name,
                    "--source",
                    "porch=pattern:?size=160x120&fps=5",
                ],
            )
            .0
        });

        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("camhub.toml");
        std::fs::write(
            &config,
            "[[stream]]\nid = \"yard\"\nname = \"Yard\"\nurl = \"pattern:?size=320x240&fps=5\"\n",
        )
        .unwrap();
        let state = dir.path().join("state");
        let (boxa, port) = camhub(
            &net,
            &net.a.clone(),
            "camhub-a",
            &format!("{ADDR_A}:0"),
            &[
                "--name",
                &format!("box-{pid}{tag}"),
                "--config",
                config.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
            ],
        );
        Lab {
            camera: vec![wsd, onvif, sub, main],
            _peer_box: peer_box,
            boxa,
            _dir: dir,
            addr: SocketAddr::new(ADDR_A.parse().unwrap(), port),
            ll_b,
            peer_box_name,
            net,
        }
    }

    /// The ONVIF peer's call log so far.
    fn onvif_calls(&self) -> Vec<String> {
        self.camera[1]
            .lines
            .all()
            .into_iter()
            .map(|(_, l)| l)
            .collect()
    }
}

// ---- HTTP, as the page ----------------------------------------------------------------

/// One request to the box with the admin's session cookie (no Origin: same-site), the
/// connection closed after it; generous timeouts (a test of a camera may take 10 s).
fn call(
    addr: SocketAddr,
    cookie: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Response {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        raw.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if !body.is_empty() {
        raw.push_str("Content-Type: application/json\r\n");
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(raw.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read the answer");
    let mut r = &all[..];
    let (status, headers) = read_head(&mut r);
    Response {
        status,
        headers,
        body: r.to_vec(),
    }
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// Step timings, printed at the end.
struct Clock {
    steps: Vec<(String, Duration)>,
}

impl Clock {
    fn time<T>(&mut self, step: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let v = f();
        let took = t.elapsed();
        eprintln!("[timing] {step}: {} ms", took.as_millis());
        self.steps.push((step.to_string(), took));
        v
    }

    fn print(&self) {
        let mut out = String::from("\nphone-only setup of one ONVIF camera, API step by step:\n");
        for (step, took) in &self.steps {
            out.push_str(&format!("  {:>7} ms  {step}\n", took.as_millis()));
        }
        let total: Duration = self.steps.iter().map(|(_, d)| *d).sum();
        out.push_str(&format!(
            "  {:>7} ms  total (the box's time; the user's taps and typing not counted)\n",
            total.as_millis()
        ));
        eprintln!("{out}");
    }
}

/// The one device of `kind` in a discovery answer.
fn device<'a>(found: &'a Value, kind: &str) -> &'a Value {
    let devices = found["devices"].as_array().expect("devices");
    let of_kind: Vec<&Value> = devices.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(of_kind.len(), 1, "one {kind} device: {found:#}");
    of_kind[0]
}

fn stream_info(addr: SocketAddr, id: &str) -> Value {
    let all = json_of(&call(addr, "", "GET", "/api/streams", None));
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("stream {id} missing from {all}"))
}

/// The camera `id` just added, while only the grid watches it: its sub-stream is live at
/// 640 px, every rendition the grid gets is made from it (`renditions[].feed == "sub"`),
/// and its main stream is not decoded: over 3 s of `watch` (which returns how many
/// pictures the grid got) the main stream's frame count stays flat while the
/// sub-stream's grows. Returns what `watch` returned.
fn grid_is_fed_by_the_sub_stream(
    addr: SocketAddr,
    id: &str,
    watch: impl FnOnce(Duration) -> u64,
) -> u64 {
    let info = stream_info(addr, id);
    eprintln!("stream: {info:#}");
    assert_eq!(info["sub"]["state"], "live", "{info:#}");
    assert_eq!(info["sub"]["width"], 640, "{info:#}");
    let renditions = info["renditions"].as_array().expect("renditions");
    assert!(
        !renditions.is_empty() && renditions.iter().all(|r| r["feed"] == "sub"),
        "the grid's renditions come from the sub-stream: {info:#}"
    );
    assert!(
        !info["url"].as_str().unwrap().contains(CAM_PW)
            && !info["sub"]["url"].as_str().unwrap().contains(CAM_PW),
        "{info:#}"
    );
    let main_before = info["frames"].as_u64().unwrap();
    let sub_before = info["sub"]["frames"].as_u64().unwrap();
    let tiles = watch(Duration::from_secs(3));
    let info = stream_info(addr, id);
    let main_after = info["frames"].as_u64().unwrap();
    let sub_after = info["sub"]["frames"].as_u64().unwrap();
    eprintln!(
        "in 3 s: {tiles} grid pictures; main frames {main_before} -> {main_after}, \
         sub frames {sub_before} -> {sub_after}"
    );
    assert!(sub_after > sub_before, "{info:#}");
    assert_eq!(
        main_after, main_before,
        "the main stream is not decoded: {info:#}"
    );
    let renditions = info["renditions"].as_array().expect("renditions");
    assert!(
        renditions.iter().all(|r| r["feed"] == "sub"),
        "the grid stays on the sub-stream: {info:#}"
    );
    tiles
}

// ---- the tests ------------------------------------------------------------------------

/// The whole flow over IPv4 multicast, with another camhub box on the LAN.
#[test]
fn find_an_onvif_camera_and_add_it_with_main_and_sub_stream() {
    let lab = Lab::new("e", false, true);
    let addr = lab.addr;
    let peer_box_name = lab.peer_box_name.clone();
    let clock = inside(&lab.net.a.clone(), || {
        let mut clock = Clock { steps: Vec::new() };
        // The other box must have been heard on mDNS before discovery lists it.
        eventually(EVENTUALLY, || {
            let peers = json_of(&call(addr, "", "GET", "/api/peers", None));
            peers
                .as_array()?
                .iter()
                .any(|p| {
                    p["name"] == peer_box_name.as_str()
                        && p["url"].as_str().unwrap_or_default().contains(ADDR_B)
                })
                .then_some(())
        })
        .expect("box a hears the other box on mDNS");

        // 1. The admin password (the first visit from the phone), and its session.
        let cookie = clock.time("set the admin password (POST /api/admin/password)", || {
            admin_session(addr)
        });
        let api = |method: &str, path: &str, body: Option<&Value>| {
            let r = call(addr, &cookie, method, path, body);
            assert!(
                !r.text().contains(CAM_PW),
                "{method} {path}: the camera password came back: {}",
                r.text()
            );
            r
        };

        // 2. "Add camera" lists what is on the LAN.
        let found = clock.time("find cameras (GET /api/discover)", || {
            api("GET", "/api/discover", None)
        });
        assert_eq!(found.status, 200, "{}", found.text());
        let found = json_of(&found);
        eprintln!("discover: {found:#}");
        let cam = device(&found, "onvif");
        assert_eq!(cam["name"], "Test Cam", "{cam:#}");
        assert_eq!(cam["hardware"], "TC-1", "{cam:#}");
        assert_eq!(cam["address"], ADDR_B, "{cam:#}");
        assert_eq!(
            cam["xaddr"],
            format!("http://{ADDR_B}/onvif/device_service"),
            "{cam:#}"
        );
        assert_eq!(cam["added"], false, "{cam:#}");
        let other = device(&found, "camhub");
        assert_eq!(other["name"], peer_box_name.as_str(), "{other:#}");
        assert_eq!(other["address"], ADDR_B, "{other:#}");
        let streams = other["streams"].as_array().expect("its streams");
        assert_eq!(streams.len(), 1, "{other:#}");
        assert_eq!(streams[0]["id"], "porch", "{other:#}");
        let porch = streams[0]["url"].as_str().unwrap();
        assert!(
            porch.starts_with(&format!("http://{ADDR_B}:")) && porch.ends_with("/stream/porch"),
            "{other:#}"
        );
        let first_discovery = Instant::now();

        // 3. Tap the camera, type its password: its profiles.
        let onvif_body = json!({
            "address": cam["address"],
            "username": CAM_USER,
            "password": CAM_PW,
        });
        let r = clock.time("camera's streams (POST /api/onvif/streams)", || {
            api("POST", "/api/onvif/streams", Some(&onvif_body))
        });
        assert_eq!(r.status, 200, "{}", r.text());
        let s = json_of(&r);
        eprintln!("onvif streams: {s:#}");
        assert_eq!(s["ok"], true, "{s:#}");
        let profiles = s["profiles"].as_array().expect("profiles");
        let shape: Vec<(String, u64, u64, bool)> = profiles
            .iter()
            .map(|p| {
                (
                    p["codec"].as_str().unwrap().to_string(),
                    p["width"].as_u64().unwrap(),
                    p["height"].as_u64().unwrap(),
                    p["supported"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("H265".into(), 2560, 1440, false),
                ("H264".into(), 1280, 720, true),
                ("H264".into(), 640, 360, true),
            ],
            "{s:#}"
        );
        let main = &profiles[s["main"].as_u64().expect("a main suggestion") as usize];
        let sub = &profiles[s["sub"].as_u64().expect("a sub suggestion") as usize];
        assert_eq!(
            (&main["width"], &main["height"]),
            (&json!(1280), &json!(720))
        );
        assert_eq!((&sub["width"], &sub["height"]), (&json!(640), &json!(360)));
        let main_url = main["rtsp_url"].as_str().unwrap().to_string();
        let sub_url = sub["rtsp_url"].as_str().unwrap().to_string();
        assert_eq!(main_url, format!("rtsp://{ADDR_B}:{MAIN_PORT}/h264"));
        assert_eq!(sub_url, format!("rtsp://{ADDR_B}:{SUB_PORT}/h264"));
        for p in profiles {
            let url = p["rtsp_url"].as_str().unwrap_or_default();
            assert!(
                !url.contains('@') && !url.contains("0.0.0.0"),
                "no credentials, no 0.0.0.0: {p}"
            );
        }

        // 4. The suggested main stream, tested with a preview.
        let test_body = json!({"url": main_url, "username": CAM_USER, "password": CAM_PW});
        let r = clock.time("test the main stream (POST /api/cameras/test)", || {
            api("POST", "/api/cameras/test", Some(&test_body))
        });
        assert_eq!(r.status, 200, "{}", r.text());
        let mut t = json_of(&r);
        let preview = t["snapshot"].take();
        assert_eq!(t["ok"], true, "{t:#}");
        // (The test answers "h264" where the ONVIF profiles say "H264".)
        assert_eq!(t["codec"], "h264", "{t:#}");
        assert_eq!(
            (&t["width"], &t["height"]),
            (&json!(1280), &json!(720)),
            "{t:#}"
        );
        let preview = preview.as_str().expect("a preview");
        let jpeg = {
            use base64::Engine;
            let b64 = preview
                .strip_prefix("data:image/jpeg;base64,")
                .expect("a JPEG data URL");
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        };
        assert!(decode(&jpeg).0 > 0);

        // 5. Save: one camera with main and sub-stream.
        let add = json!({
            "name": "Test Cam",
            "url": main_url,
            "sub_url": sub_url,
            "username": CAM_USER,
            "password": CAM_PW,
        });
        let r = clock.time("save (POST /api/cameras)", || {
            api("POST", "/api/cameras", Some(&add))
        });
        assert_eq!(r.status, 201, "{}", r.text());
        let saved = json_of(&r);
        let id = saved["id"].as_str().expect("an id").to_string();
        assert_eq!(saved["sub_url"], sub_url.as_str(), "{saved:#}");
        assert_eq!(saved["has_password"], true, "{saved:#}");

        // 6. The tile: the grid's width=366 is fed by the sub-stream, 400x226 (the
        // ladder step scaled from 640x360), not by decoding the 1280x720 main stream.
        let (first_tile, rec) = clock.time("the tile is live from the sub-stream", || {
            let mut mux = MuxReader::open(addr, &format!("ids={id}&width=366"));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let rec = mux.record();
                assert_eq!(rec.id, id);
                if rec.kind == "live" && rec.feed == "sub" {
                    return (mux, rec);
                }
                assert!(
                    Instant::now() < deadline,
                    "no live record from the sub-stream: {rec:?}, {}",
                    stream_info(addr, &id)
                );
            }
        });
        assert_eq!(
            (decode(&rec.jpeg).0, decode(&rec.jpeg).1),
            (400, 226),
            "a 366 px tile from the 640x360 sub-stream"
        );
        let mut mux = first_tile;
        // Start-up: both feeds connect at once and the tile is asked for before the
        // sub-stream is live, so the main stream may decode a first picture (and the
        // tile may show it once) before the sub-stream takes over. Let that settle.
        let mut startup: Vec<String> = Vec::new();
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_millis(1500) {
            let rec = mux.record();
            startup.push(format!("{}/{}", rec.kind, rec.feed));
        }
        eprintln!("start-up records (kind/feed): {startup:?}");
        // The main stream is not decoded while only the grid watches: its frame count
        // stays flat while the tile keeps getting pictures from the sub-stream.
        let tiles = grid_is_fed_by_the_sub_stream(addr, &id, |watch| {
            let mut tiles = 0;
            let t = Instant::now();
            while t.elapsed() < watch {
                let rec = mux.record();
                if rec.kind == "live" {
                    assert_eq!(rec.feed, "sub", "the grid stays on the sub-stream");
                    tiles += 1;
                }
            }
            tiles
        });
        assert!(tiles >= 10, "the tile is live: {tiles} pictures in 3 s");
        drop(mux);

        // 7. Discovery now says the camera is added: a directed probe ("probe this
        // address") at once, and a new multicast run once the last one is too old to be
        // answered again.
        let r = clock.time("probe one address (GET /api/discover?address=)", || {
            api("GET", &format!("/api/discover?address={ADDR_B}"), None)
        });
        assert_eq!(r.status, 200, "{}", r.text());
        let found = json_of(&r);
        let cam = device(&found, "onvif");
        assert_eq!(cam["name"], "Test Cam", "{found:#}");
        assert_eq!(cam["address"], ADDR_B, "{found:#}");
        assert_eq!(cam["added"], true, "{found:#}");
        let reuse = Duration::from_secs(11);
        if let Some(wait) = reuse.checked_sub(first_discovery.elapsed()) {
            std::thread::sleep(wait);
        }
        let found = json_of(&api("GET", "/api/discover", None));
        eprintln!("discover after adding: {found:#}");
        assert_eq!(device(&found, "onvif")["added"], true, "{found:#}");
        clock
    });
    clock.print();

    // What the camera saw: Digest only, the streams asked for RTSP.
    let calls = lab.onvif_calls();
    assert!(
        calls
            .iter()
            .filter(|l| l.contains("GetStreamUri") && l.contains("status=200"))
            .all(|l| l.contains("auth=digest")),
        "{calls:#?}"
    );
    assert!(
        !lab.boxa.lines.any(|l| l.contains(CAM_PW)),
        "the camera password is in camhub's log"
    );
}

/// Issue #14 from the phone: headless Chromium at 390×844 (2x, mobile), inside namespace a
/// with camhub, no request intercepted. Discover → tap → password → save → the tile is
/// live and the grid uses the sub-stream. Prints the taps and the wall time from
/// "+ Add camera" to the live tile.
#[test]
fn a_phone_adds_the_found_camera_and_its_tile_uses_the_sub_stream() {
    let lab = Lab::new("c", false, false);
    let addr = lab.addr;
    let ns = lab.net.a.clone();
    let main_url = format!("rtsp://{ADDR_B}:{MAIN_PORT}/h264");
    let preview = |b: &mut Browser| {
        b.shown("#preview") && b.eval("document.getElementById('preview').naturalWidth") != 0
    };
    let mut b = Browser::launch_in(Some(&ns));
    b.viewport(390, 844, true);
    b.navigate(&format!("http://{addr}/"));
    b.eval("window.__sameDocument = 1");
    tile_draws(&mut b, "yard");

    // "+ Add camera": the first visit asks for an admin password, then lists what is found.
    let (mut taps, started) = (0u32, Instant::now());
    b.tap("#addcam", &mut taps);
    b.wait_shown("#setpw", WAIT);
    b.type_in("#pw1", ADMIN_PW, &mut taps);
    b.type_in("#pw2", ADMIN_PW, &mut taps);
    b.tap("#setpw button", &mut taps);
    b.wait_shown("#manual", WAIT);
    let setup_taps = taps;
    let nth = eventually(Duration::from_secs(30), || {
        let i = b.eval(
            "Array.from(document.querySelectorAll('#devs > li')).findIndex(function (li) { \
             return li.querySelector('button') && li.textContent.indexOf('Test Cam') >= 0; })",
        );
        let i = i.as_i64()?;
        (i >= 0).then_some(i + 1)
    })
    .unwrap_or_else(|| panic!("Test Cam is never in the found list: {:?}", b.text("#devs")));
    let found_after = started.elapsed();
    let item = format!("#devs > li:nth-child({nth})");
    let listed = b.text(&item);
    eprintln!("found list: {:?}", b.text("#devs"));
    assert!(
        listed.contains("Test Cam")
            && listed.contains(&format!("TC-1 · {ADDR_B}"))
            && !listed.contains("already added"),
        "{listed}"
    );
    b.screenshot("discover-found.png");

    // Tap it, its login: the suggested main and sub-stream, and a preview of the main.
    b.tap(&format!("{item} > button"), &mut taps);
    b.wait_shown("#onvif", WAIT);
    assert_eq!(b.text("#oname"), "Test Cam");
    b.type_in("#ouser", CAM_USER, &mut taps);
    b.type_in("#opw", CAM_PW, &mut taps);
    b.tap("#onvif button", &mut taps);
    eventually(Duration::from_secs(40), || preview(&mut b).then_some(())).unwrap_or_else(|| {
        panic!(
            "no preview of the main stream: onvif {:?}, test {:?}",
            b.text("#onvif"),
            b.text("#tmsg")
        )
    });
    let picked = |b: &mut Browser, id: &str| {
        b.eval(&format!(
            "(function () {{ var s = document.getElementById('{id}'); \
             return s.value + ' ' + s.selectedOptions[0].textContent; }})()"
        ))
        .as_str()
        .unwrap()
        .to_string()
    };
    let (main, sub) = (picked(&mut b, "omain"), picked(&mut b, "osub"));
    eprintln!("suggested: main {main:?}, sub {sub:?}");
    assert!(
        main.starts_with("1 ") && main.contains("H264") && main.contains("1280×720"),
        "{main}"
    );
    assert!(
        sub.starts_with("2 ") && sub.contains("H264") && sub.contains("640×360"),
        "{sub}"
    );
    assert_eq!(b.eval("document.getElementById('url').value"), main_url);
    let src = b.eval("document.getElementById('preview').src");
    let jpeg = {
        use base64::Engine as _;
        let b64 = src
            .as_str()
            .and_then(|s| s.strip_prefix("data:image/jpeg;base64,"))
            .unwrap_or_else(|| panic!("the preview is not a JPEG data URL: {src}"));
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64")
    };
    let (width, height, _) = decode(&jpeg);
    // The preview is scaled to at most 640 px wide (probe::PREVIEW_MAX_WIDTH); the
    // stream's own size, from the test of the main URL, is in the facts under it.
    assert_eq!(
        (width, height),
        (640, 360),
        "the 1280x720 main stream, scaled"
    );
    assert_eq!(
        b.eval("document.getElementById('preview').naturalWidth"),
        width
    );
    let info = b.text("#info");
    assert!(
        info.contains("1280×720") && info.contains("sub-stream") && info.contains("640×360"),
        "{info}"
    );
    assert_eq!(b.text("#tmsg"), "It works.");
    b.screenshot("discover-preview.png");

    // Save: back on the grid, without a reload, the new tile is live.
    b.tap("#save", &mut taps);
    eventually(WAIT, || {
        (b.eval("document.body.dataset.view") == "grid").then_some(())
    })
    .expect("saving returns to the grid");
    let id = eventually(WAIT, || b.tiles().into_keys().find(|id| id != "yard"))
        .unwrap_or_else(|| panic!("no new tile: {:?}", b.tiles()));
    let tile = tile_draws(&mut b, &id);
    let took = started.elapsed();
    b.screenshot("discover-grid.png");
    eprintln!(
        "\nphone-only setup of a found ONVIF camera in Chromium: {taps} taps ({setup_taps} of \
         them for the admin password), {:.1} s from '+ Add camera' to a live tile (the found \
         list after {:.1} s)\n",
        took.as_secs_f64(),
        found_after.as_secs_f64()
    );
    eprintln!("{id} tile: {tile:?}");
    assert_eq!(b.eval("window.__sameDocument"), 1, "the page was reloaded");
    let dom = b.eval(
        "document.documentElement.outerHTML + \
         Array.from(document.querySelectorAll('input')).map(function (i) { return i.value; }).join(' ')",
    );
    assert!(
        !dom.as_str().unwrap().contains(CAM_PW),
        "the camera password is in the page"
    );

    // The grid (the page's only viewer of it) is fed by the sub-stream, and it keeps
    // drawing changing pictures.
    inside(&ns, || {
        let stream = stream_info(addr, &id);
        assert_eq!(stream["url"], main_url.as_str(), "{stream:#}");
        assert_eq!(
            stream["sub"]["url"],
            format!("rtsp://{ADDR_B}:{SUB_PORT}/h264"),
            "{stream:#}"
        );
        grid_is_fed_by_the_sub_stream(addr, &id, |watch| {
            let before = b.tiles()[&id].frames;
            std::thread::sleep(watch);
            let after = tile_draws(&mut b, &id).frames;
            after - before
        })
    });
    assert!(
        !lab.boxa.lines.any(|l| l.contains(CAM_PW)),
        "the camera password is in camhub's log"
    );
    drop(b);
}

/// The admin password set on the box at `addr`; the session cookie.
fn admin_session(addr: SocketAddr) -> String {
    let r = call(
        addr,
        "",
        "POST",
        "/api/admin/password",
        Some(&json!({ "password": ADMIN_PW })),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// IPv6 link-local: probing every interface finds the camera once (its IPv4 and IPv6
/// replies merged, the IPv4 address kept); a directed probe to b's link-local address
/// finds it there, its link-local XAddr with the zone of a's interface (RFC 6874 `%25`).
#[test]
fn finds_the_camera_over_ipv6_link_local() {
    let lab = Lab::new("6", true, false);
    let addr = lab.addr;
    let ll_b = lab.ll_b.unwrap();
    let zone = lab.net.ifindex(&lab.net.a, &lab.net.va);
    inside(&lab.net.a.clone(), || {
        let cookie = admin_session(addr);
        let found = json_of(&call(addr, &cookie, "GET", "/api/discover", None));
        eprintln!("multicast: {found:#}");
        let cam = device(&found, "onvif");
        assert_eq!(cam["name"], "Test Cam", "{found:#}");
        assert_eq!(cam["address"], ADDR_B, "{found:#}");

        let t = Instant::now();
        let r = call(
            addr,
            &cookie,
            "GET",
            &format!("/api/discover?address={ll_b}"),
            None,
        );
        eprintln!(
            "[timing] directed probe to {ll_b}: {} ms",
            t.elapsed().as_millis()
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let found = json_of(&r);
        eprintln!("unicast: {found:#}");
        let cam = device(&found, "onvif");
        assert_eq!(cam["name"], "Test Cam", "{found:#}");
        assert_eq!(cam["hardware"], "TC-1", "{found:#}");
        assert_eq!(cam["address"], ll_b.to_string(), "{found:#}");
        assert_eq!(
            cam["xaddr"],
            format!("http://[{ll_b}%25{zone}]/onvif/device_service"),
            "{found:#}"
        );
        assert_eq!(cam["added"], false, "{found:#}");
    });
}

/// What should follow: the camera found on its link-local address is asked for its
/// streams at that address. Fails today (camhub bug, see the report for #14): the
/// discovered `address` has no zone, so connecting fails with EINVAL ("no answer from
/// [fe80::…]: Invalid argument"), and every form with a zone (the `xaddr` as discovery
/// gives it, `fe80::…%2`, `[fe80::…%2]`) is refused as "invalid IPv6 address" (the url
/// crate has no zone ids).
#[test]
#[ignore = "camhub cannot yet reach an ONVIF camera at an IPv6 link-local address"]
fn onvif_streams_over_ipv6_link_local() {
    let lab = Lab::new("l", true, false);
    let addr = lab.addr;
    let ll_b = lab.ll_b.unwrap();
    inside(&lab.net.a.clone(), || {
        let cookie = admin_session(addr);
        let path = format!("/api/discover?address={ll_b}");
        let found = json_of(&call(addr, &cookie, "GET", &path, None));
        let cam = device(&found, "onvif");
        for address in [&cam["address"], &cam["xaddr"]] {
            let body = json!({"address": address, "username": CAM_USER, "password": CAM_PW});
            let r = call(addr, &cookie, "POST", "/api/onvif/streams", Some(&body));
            assert_eq!(r.status, 200, "{}", r.text());
            let s = json_of(&r);
            assert_eq!(s["ok"], true, "{address}: {s:#}");
        }
    });
}
