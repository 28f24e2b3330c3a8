//! RTSP sources against a real peer: GStreamer's RTSP server (tests/peers/rtsp_server.py,
//! run with Debian's /usr/bin/python3) on 127.0.0.1, and the real camhub binary, read by
//! ffmpeg and by our multipart reader. Every process a test starts is killed by PID when
//! the test ends, pass or fail.

mod common;
#[path = "common/rtsp.rs"]
mod rtsp_server;

use common::{api_stream, decode, eventually, get, Child, MjpegReader};
use rtsp_server::{free_port, RtspServer};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous bounds: CI machines are slow and GStreamer pipelines start lazily.
const LIVE_WITHIN: Duration = Duration::from_secs(30);

/// The camhub binary run with a config file, its log collected for assertions (and
/// echoed to stderr, shown when a test fails).
struct Camhub {
    child: Child,
    log: Arc<Mutex<String>>,
    _config: tempfile::NamedTempFile,
}

impl Camhub {
    fn start(config: &str) -> Camhub {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(config.as_bytes()).unwrap();
        let (child, log) =
            common::spawn_camhub_logged(&["--config", file.path().to_str().unwrap()]);
        Camhub {
            child,
            log,
            _config: file,
        }
    }

    fn state(&self, id: &str) -> String {
        api_stream(self.child.addr, id)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn last_error(&self, id: &str) -> String {
        api_stream(self.child.addr, id)["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_state(&self, id: &str, state: &str, within: Duration) {
        eventually(within, || (self.state(id) == state).then_some(())).unwrap_or_else(|| {
            panic!(
                "stream {id} not {state} within {within:?}: {}",
                api_stream(self.child.addr, id)
            )
        });
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

fn stream_toml(id: &str, url: &str, extra: &str) -> String {
    format!("[[stream]]\nid = \"{id}\"\nurl = \"{url}\"\n{extra}\n")
}

/// Frames ffmpeg decodes from camhub's `/stream/{id}` in 3 s.
fn ffmpeg_frames(camhub: &Camhub, id: &str) -> (u64, String) {
    common::ffmpeg_frames(&format!("http://{}/stream/{id}", camhub.child.addr))
}

/// Mean absolute difference between two decoded pictures of the same size.
fn mean_difference(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x.abs_diff(y)))
        .sum::<f64>()
        / a.len() as f64
}

/// Reads frames from `/stream/{id}` for about a second and checks the picture moves.
fn assert_frames_change(camhub: &Camhub, id: &str, size: (u32, u32)) {
    let mut reader = MjpegReader::open(camhub.child.addr, &format!("/stream/{id}"));
    let first = reader.part();
    assert!(
        first
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-timestamp")),
        "parts carry X-Timestamp"
    );
    let (w, h, first_pixels) = decode(&first.jpeg);
    assert_eq!((w, h), size, "stream {id}");
    let t0 = Instant::now();
    let mut moved = 0.0f64;
    while t0.elapsed() < Duration::from_secs(10) {
        let part = reader.part();
        let (w2, h2, pixels) = decode(&part.jpeg);
        assert_eq!((w2, h2), size);
        moved = moved.max(mean_difference(&first_pixels, &pixels));
        if moved > 0.5 && t0.elapsed() > Duration::from_millis(500) {
            return;
        }
    }
    panic!("stream {id}: frames do not change (max mean difference {moved})");
}

#[test]
fn h264_and_mjpeg_are_served_as_mjpeg_and_h265_fails_alone() {
    let server = RtspServer::start(free_port(), &[]);
    let config = [
        stream_toml("h264", &server.url("/h264"), ""),
        stream_toml("mjpeg", &server.url("/mjpeg"), ""),
        stream_toml("h265", &server.url("/h265"), ""),
        // Caps: a lighter picture for phones; UDP transport on loopback.
        stream_toml(
            "small",
            &server.url("/h264"),
            "size = \"320x240\"\nfps = 5\ntransport = \"udp\"",
        ),
    ]
    .concat();
    let camhub = Camhub::start(&config);
    for id in ["h264", "mjpeg", "small"] {
        camhub.wait_state(id, "live", LIVE_WITHIN);
    }
    camhub.wait_state("h265", "failed", LIVE_WITHIN);
    assert_eq!(
        camhub.last_error("h265"),
        format!(
            "{}: codec H.265 not supported; configure the camera's H.264 or MJPEG stream",
            server.url("/h265")
        )
    );

    // H.264 decoding starts at the first keyframe after a viewer arrives (up to 1 s
    // here), and a debug build on a busy machine decodes slowly: judge that frames flow,
    // not the rate.
    for (id, at_least) in [("h264", 6), ("mjpeg", 15)] {
        let (frames, log) = ffmpeg_frames(&camhub, id);
        assert!(
            frames >= at_least,
            "ffmpeg decoded only {frames} frames in 3 s of a 15 fps {id} stream\n{log}"
        );
        assert!(log.contains("640x480"), "{log}");
    }
    assert_frames_change(&camhub, "h264", (640, 480));
    assert_frames_change(&camhub, "mjpeg", (640, 480));
    assert_frames_change(&camhub, "small", (320, 240));

    // The failed stream did not disturb the others.
    for id in ["h264", "mjpeg", "small"] {
        assert_eq!(camhub.state(id), "live", "{id}");
    }
    let small = api_stream(camhub.child.addr, "small");
    assert!(
        small["fps"].as_f64().unwrap() <= 7.0,
        "capped at 5 fps: {small}"
    );
}

#[test]
fn basic_and_digest_auth_work_and_a_wrong_password_fails_without_leaking() {
    const PASSWORD: &str = "s3cret-pw-9f2a";
    const WRONG: &str = "wr0ng-pw-7c1e";
    let basic = RtspServer::start(free_port(), &["--auth", "basic", "--password", PASSWORD]);
    let digest = RtspServer::start(free_port(), &["--auth", "digest", "--password", PASSWORD]);
    let with_creds = |server: &RtspServer, password: &str| {
        server
            .url("/mjpeg")
            .replace("rtsp://", &format!("rtsp://user:{password}@"))
    };
    let keys = |password: &str| format!("username = \"user\"\npassword = \"{password}\"");
    let config = [
        stream_toml("basic", &with_creds(&basic, PASSWORD), ""),
        stream_toml("digest", &digest.url("/mjpeg"), &keys(PASSWORD)),
        // The keys win over the URL's (wrong) password.
        stream_toml(
            "digest-keys-win",
            &with_creds(&digest, WRONG),
            &keys(PASSWORD),
        ),
        stream_toml("basic-wrong", &with_creds(&basic, WRONG), ""),
        stream_toml("digest-wrong", &digest.url("/mjpeg"), &keys(WRONG)),
        stream_toml("no-creds", &digest.url("/mjpeg"), ""),
    ]
    .concat();
    let camhub = Camhub::start(&config);
    for id in ["basic", "digest", "digest-keys-win"] {
        camhub.wait_state(id, "live", LIVE_WITHIN);
    }
    for id in ["basic-wrong", "digest-wrong", "no-creds"] {
        camhub.wait_state(id, "failed", LIVE_WITHIN);
        let error = camhub.last_error(id);
        assert!(error.contains("unauthorized"), "{id}: {error}");
    }
    // Frames really flow through the authenticated sessions.
    let mut reader = MjpegReader::open(camhub.child.addr, "/stream/digest");
    assert_eq!(decode(&reader.part().jpeg).0, 640);

    let addr = camhub.child.addr;
    let pages = [
        ("/api/streams", get(addr, "/api/streams").text()),
        ("/metrics", get(addr, "/metrics").text()),
        ("/", get(addr, "/").text()),
        ("log", camhub.log()),
    ];
    for (what, text) in pages {
        assert!(!text.is_empty(), "{what} is empty");
        for secret in [PASSWORD, WRONG] {
            assert!(!text.contains(secret), "{what} shows a password:\n{text}");
        }
    }
}

#[test]
fn reconnects_after_the_server_restarts_with_flat_threads_and_fds() {
    let port = free_port();
    let mut server = Some(RtspServer::start(port, &[]));
    let url = format!("rtsp://127.0.0.1:{port}/h264");
    let camhub = Camhub::start(&stream_toml("cam", &url, "stall_after_secs = 2"));
    camhub.wait_state("cam", "live", LIVE_WITHIN);
    // Someone watches, so the H.264 path decodes and encodes across the restarts too.
    let addr = camhub.child.addr;
    let viewer = std::thread::spawn(move || {
        let Ok(s) = std::net::TcpStream::connect(addr) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        let mut s = s;
        let _ = write!(s, "GET /stream/cam HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut sink = [0u8; 65536];
        let mut s = std::io::BufReader::new(s);
        while std::io::Read::read(&mut s, &mut sink).is_ok_and(|n| n > 0) {}
    });

    let mut baseline = None;
    for cycle in 1..=5 {
        drop(server.take()); // SIGKILL: the connection drops as in a camera crash
        eventually(LIVE_WITHIN, || {
            (camhub.state("cam") != "live").then_some(())
        })
        .unwrap_or_else(|| panic!("cycle {cycle}: still live after the server died"));
        server = Some(RtspServer::start(port, &[]));
        camhub.wait_state("cam", "live", Duration::from_secs(60));
        let frames_before = api_stream(addr, "cam")["frames"].as_u64().unwrap();
        eventually(LIVE_WITHIN, || {
            (api_stream(addr, "cam")["frames"].as_u64().unwrap() > frames_before).then_some(())
        })
        .unwrap_or_else(|| panic!("cycle {cycle}: live but no new frames"));
        let now = (camhub.child.threads(), camhub.child.fds());
        eprintln!("cycle {cycle}: threads {} fds {}", now.0, now.1);
        match baseline {
            // The first cycle settles lazily created things (runtime, viewer socket).
            None => baseline = Some(now),
            Some((threads, fds)) => {
                assert!(now.0 <= threads + 2, "threads grew: {threads} -> {}", now.0);
                assert!(now.1 <= fds + 3, "fds grew: {fds} -> {}", now.1);
            }
        }
    }
    drop(camhub);
    let _ = viewer.join();
}

#[test]
fn a_silent_server_stalls_shows_the_placeholder_and_recovers() {
    let server = RtspServer::start(free_port(), &[]);
    let camhub = Camhub::start(&stream_toml(
        "cam",
        &server.url("/mjpeg"),
        "stall_after_secs = 2",
    ));
    camhub.wait_state("cam", "live", LIVE_WITHIN);

    server.signal("-STOP");
    // Stalled within stall_after (2 s) plus slack, then torn down and retried.
    eventually(Duration::from_secs(15), || {
        let s = api_stream(camhub.child.addr, "cam");
        let state = s["state"].as_str().unwrap_or_default().to_string();
        let error = s["last_error"].as_str().unwrap_or_default().to_string();
        (state != "live" && error.contains("stalled")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no stall reported: {}",
            api_stream(camhub.child.addr, "cam")
        )
    });
    // Viewers get the OFFLINE placeholder while it is down.
    let mut reader = MjpegReader::open(camhub.child.addr, "/stream/cam");
    let part = reader.part();
    decode(&part.jpeg);
    assert_ne!(camhub.state("cam"), "live");
    drop(reader);

    server.signal("-CONT");
    camhub.wait_state("cam", "live", Duration::from_secs(60));
    let mut reader = MjpegReader::open(camhub.child.addr, "/stream/cam");
    assert_eq!(decode(&reader.part().jpeg).0, 640);
}

/// Issue #12: with a sub-stream big enough for the grid, a grid viewer is served from it
/// alone, so the main H.264 stream is not decoded until someone watches it full size.
#[test]
fn a_grid_fed_by_the_sub_stream_leaves_the_main_h264_stream_undecoded() {
    let server = RtspServer::start(free_port(), &[]);
    let camhub = Camhub::start(&stream_toml(
        "cam",
        &server.url("/h264"),
        &format!("sub_url = \"{}\"", server.url("/mjpeg")),
    ));
    let addr = camhub.child.addr;
    let both_live = eventually(LIVE_WITHIN, || {
        let s = api_stream(addr, "cam");
        (s["state"] == "live" && s["sub"]["state"] == "live" && s["sub"]["width"] == 640)
            .then_some(())
    });
    assert!(both_live.is_some(), "{}", api_stream(addr, "cam"));

    // A 320-wide grid tile: scaled from the MJPEG sub-stream; the main stream stays
    // connected (live) but decodes nothing.
    let mut tile = MjpegReader::open(addr, "/stream/cam?width=320");
    let main_frames_before = api_stream(addr, "cam")["frames"].as_u64().unwrap();
    for _ in 0..15 {
        assert_eq!(decode(&tile.part().jpeg).0, 320);
    }
    let s = api_stream(addr, "cam");
    assert_eq!(s["renditions"][0]["feed"], "sub", "{s}");
    assert_eq!(
        s["frames"].as_u64().unwrap(),
        main_frames_before,
        "the main H.264 stream was decoded for a grid tile: {s}"
    );
    assert_eq!(s["state"], "live");

    // Full screen: now the main stream is decoded.
    let mut full = MjpegReader::open(addr, "/stream/cam");
    for _ in 0..3 {
        assert_eq!(decode(&full.part().jpeg).0, 640);
    }
    assert!(api_stream(addr, "cam")["frames"].as_u64().unwrap() > main_frames_before);
    drop(full);
    drop(tile);
    drop(server);
}
