//! The HTTP server end to end over real TCP: multipart framing part by part, decodable
//! JPEGs, snapshots, the API and metrics, viewer accounting, slow and stalled viewers,
//! malformed and oversized requests, and ffmpeg as an independent MJPEG client.

mod common;

use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const PATTERN: &str = "pattern:?size=320x240&fps=15";

#[test]
fn stream_parts_are_framed_and_decode_and_change() {
    let app = start(&streams_toml(&[("cam", PATTERN)]));
    let mut mjpeg = MjpegReader::open(app.local_addr(), "/stream/cam");
    let mut frames = Vec::new();
    for _ in 0..5 {
        let part = mjpeg.part();
        assert!(part
            .headers
            .iter()
            .any(|(k, _)| k == "X-Timestamp" || k == "x-timestamp"));
        let (w, h, pixels) = decode(&part.jpeg);
        assert_eq!((w, h), (320, 240));
        frames.push(pixels);
    }
    assert!(
        frames.windows(2).all(|w| w[0] != w[1]),
        "every frame of the pattern differs from the one before"
    );
    app.stop(Duration::from_secs(2));
}

#[test]
fn snapshot_and_mjpg_streamer_aliases() {
    let app = start(&streams_toml(&[
        ("a", PATTERN),
        ("b", "pattern:?size=160x120&fps=5"),
    ]));
    let addr = app.local_addr();
    let snap = eventually(Duration::from_secs(5), || {
        let r = get(addr, "/snapshot/a");
        (r.status == 200).then_some(r)
    })
    .expect("snapshot becomes available");
    assert_eq!(snap.header("content-type"), Some("image/jpeg"));
    assert_eq!(decode(&snap.body).0, 320);

    let first = get(addr, "/?action=snapshot");
    assert_eq!(first.status, 200);
    assert_eq!(decode(&first.body).0, 320, "first stream by default");
    let b = eventually(Duration::from_secs(5), || {
        let r = get(addr, "/?action=snapshot&id=b");
        (r.status == 200).then_some(r)
    })
    .unwrap();
    assert_eq!(decode(&b.body).0, 160);

    let mut s = connect(addr);
    s.write_all(b"GET /?action=stream&id=b HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut mjpeg = MjpegReader::from_stream(s);
    assert_eq!(decode(&mjpeg.part().jpeg).0, 160);

    assert_eq!(get(addr, "/snapshot/nope").status, 404);
    assert_eq!(get(addr, "/?action=snapshot&id=nope").status, 404);
    assert_eq!(get(addr, "/?action=dance").status, 400);
    app.stop(Duration::from_secs(2));
}

#[test]
fn api_metrics_page_and_health() {
    // With LEDs configured: off the Pi they fall back to a no-op, and nothing else changes.
    let app = start(&format!(
        "[leds]\nsystem = 26\n{}\n[[stream]]\nid = \"door\"\nname = \"Front <door>\"\nurl = \"rtsp://doorcamuser:s3cret@127.0.0.1:1/live\"\n",
        streams_toml(&[("cam", PATTERN)])
    ));
    let addr = app.local_addr();
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(
        get(addr, "/api/peers").text().trim(),
        "[]",
        "no mDNS, no peers"
    );
    let info: serde_json::Value = serde_json::from_slice(&get(addr, "/api/info").body).unwrap();
    assert_eq!(info["name"], "camhub");
    assert_eq!(info["mdns"], false);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));

    let cam = eventually(Duration::from_secs(5), || {
        let s = api_stream(addr, "cam");
        (s["state"] == "live").then_some(s)
    })
    .expect("pattern goes live");
    for key in [
        "id",
        "name",
        "kind",
        "state",
        "last_error",
        "fps",
        "width",
        "height",
        "viewers",
        "frames",
        "dropped",
        "url",
        "led_pattern",
    ] {
        assert!(cam.get(key).is_some(), "api lacks {key}: {cam}");
    }
    assert_eq!(cam["kind"], "pattern");
    assert_eq!(cam["led_pattern"], "on", "a live stream's LED is solid");

    let api = get(addr, "/api/streams").text();
    let metrics = get(addr, "/metrics").text();
    let page = get(addr, "/").text();
    for (what, text) in [("api", &api), ("metrics", &metrics), ("page", &page)] {
        assert!(!text.contains("s3cret"), "{what} leaks the password");
        // (A distinctive user name: the page itself speaks of the admin password.)
        assert!(!text.contains("doorcamuser"), "{what} leaks the user name");
    }
    assert!(api.contains("rtsp://127.0.0.1:1/live"), "{api}");
    assert!(metrics.contains("camhub_stream_frames_total{stream=\"cam\"}"));
    assert!(metrics.contains("camhub_stream_up{stream=\"cam\"} 1"));
    // Nothing listens on port 1: the camera is down and retried, never "up".
    assert!(
        metrics.contains("camhub_stream_up{stream=\"door\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("camhub_stream_state{stream=\"door\",state=\"live\"} 0"));
    assert!(page.contains("/stream/cam") && page.contains("/stream/door"));
    assert!(page.contains("Front &lt;door&gt;"), "names are escaped");
    app.stop(Duration::from_secs(2));
}

#[test]
fn a_source_that_cannot_start_fails_alone_with_a_placeholder() {
    let app = start(&format!(
        "{}[[stream]]\nid = \"off\"\nurl = \"{PATTERN}\"\nenabled = false\n",
        streams_toml(&[("cam", PATTERN), ("tls", "https://127.0.0.1:1/x")])
    ));
    let addr = app.local_addr();
    // TLS is not built in: a permanent failure, not a retry loop.
    let tls = eventually(Duration::from_secs(5), || {
        let s = api_stream(addr, "tls");
        (s["state"] == "failed").then_some(s)
    })
    .expect("unsupported source fails");
    assert!(
        tls["last_error"].as_str().unwrap().contains("http"),
        "{tls}"
    );
    assert_eq!(api_stream(addr, "off")["state"], "disabled");

    // The others keep running, and the down streams serve an OFFLINE frame instead of
    // hanging.
    assert!(
        eventually(Duration::from_secs(5), || (api_stream(addr, "cam")
            ["state"]
            == "live")
            .then_some(()))
        .is_some()
    );
    // Placeholders are drawn at the size the stream will have: the default for a camera
    // never seen, the pattern's own size for a pattern.
    for (id, size) in [("tls", (640, 480)), ("off", (320, 240))] {
        let mut mjpeg = MjpegReader::open(addr, &format!("/stream/{id}"));
        let (w, h, _) = decode(&mjpeg.part().jpeg);
        assert_eq!((w, h), size, "placeholder of {id}");
        let snap = get(addr, &format!("/snapshot/{id}"));
        assert_eq!(snap.status, 503);
        assert!(snap.text().contains(id), "{}", snap.text());
    }
    app.stop(Duration::from_secs(2));
}

#[test]
fn head_and_methods() {
    let app = start(&streams_toml(&[("cam", PATTERN)]));
    let addr = app.local_addr();
    let head = request(
        addr,
        b"HEAD /stream/cam HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert!(head
        .header("content-type")
        .unwrap()
        .starts_with("multipart/x-mixed-replace"));
    assert_eq!(
        api_stream(addr, "cam")["viewers"],
        0,
        "HEAD is not a viewer"
    );
    let head = request(
        addr,
        b"HEAD /api/streams HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    let post = request(
        addr,
        b"POST /api/streams HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(addr, "/nope").status, 404);
    assert_eq!(get(addr, "/stream/cam/extra").status, 404);
    assert_eq!(get(addr, "/stream/cam?fps=0").status, 400);
    app.stop(Duration::from_secs(2));
}

#[test]
fn disconnected_viewers_are_released() {
    let app = start(&streams_toml(&[("cam", PATTERN)]));
    let addr = app.local_addr();
    let mut viewers: Vec<_> = (0..3)
        .map(|_| MjpegReader::open(addr, "/stream/cam"))
        .collect();
    for v in &mut viewers {
        v.part();
    }
    assert_eq!(api_stream(addr, "cam")["viewers"], 3);
    drop(viewers);
    let released = eventually(Duration::from_secs(5), || {
        (api_stream(addr, "cam")["viewers"] == 0).then_some(())
    });
    assert!(
        released.is_some(),
        "viewer count returns to 0 after clients leave"
    );
    app.stop(Duration::from_secs(2));
}

/// Opens a viewer that never reads, with a tiny receive window so it backs up at once.
fn stalled_viewer(addr: std::net::SocketAddr, path: &str) -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    let mut tcp: std::net::TcpStream = s.try_clone().unwrap().into();
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    s
}

#[test]
fn a_stalled_viewer_does_not_slow_a_fast_one_and_is_dropped() {
    // Big frames fill the stalled client's socket quickly; a short send timeout drops it.
    let app = start(
        "[server]\nsend_timeout_secs = 1\n[[stream]]\nid = \"cam\"\nurl = \"pattern:?size=1280x720&fps=15\"\n",
    );
    let addr = app.local_addr();
    let _stalled: Vec<_> = (0..3)
        .map(|_| stalled_viewer(addr, "/stream/cam"))
        .collect();
    let mut fast = MjpegReader::open(addr, "/stream/cam");
    fast.part();

    let before = api_stream(addr, "cam")["frames"].as_u64().unwrap();
    let mut received = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        fast.part();
        received += 1;
    }
    let published = api_stream(addr, "cam")["frames"].as_u64().unwrap() - before;
    // Ratio in the same run: the fast viewer got (nearly) every frame published meanwhile.
    assert!(
        received * 10 >= published * 8,
        "fast viewer got {received} of {published} frames"
    );

    let dropped = eventually(Duration::from_secs(15), || {
        (api_stream(addr, "cam")["viewers"] == 1).then_some(())
    });
    assert!(
        dropped.is_some(),
        "stalled viewers are dropped after the send timeout"
    );
    fast.part();
    app.stop(Duration::from_secs(2));
}

#[test]
fn per_viewer_fps_cap() {
    let app = start(&streams_toml(&[("cam", "pattern:?size=160x120&fps=30")]));
    let addr = app.local_addr();
    // A capped and an uncapped viewer over the same 3 s, each counted on its own thread.
    let count = |path: &'static str| {
        std::thread::spawn(move || {
            let mut mjpeg = MjpegReader::open(addr, path);
            mjpeg.part();
            let t0 = Instant::now();
            let mut parts = 0u32;
            while t0.elapsed() < Duration::from_secs(3) {
                mjpeg.part();
                parts += 1;
            }
            parts
        })
    };
    let (capped, uncapped) = (count("/stream/cam?fps=2"), count("/stream/cam"));
    let (capped, uncapped) = (capped.join().unwrap(), uncapped.join().unwrap());
    // A cap is an upper bound whatever the machine's load: 2 fps over ~3 s, plus the
    // part in flight at each end.
    assert!(
        capped <= 8,
        "capped viewer got {capped} parts in 3 s at fps=2"
    );
    assert!(capped >= 2, "capped viewer still gets frames ({capped})");
    // Same run, same source: the cap is what held the capped viewer back.
    assert!(
        uncapped >= 2 * capped,
        "uncapped {uncapped} vs capped {capped}"
    );
    app.stop(Duration::from_secs(2));
}

#[test]
fn malformed_and_oversized_requests_get_4xx_and_streaming_continues() {
    let app = start(&streams_toml(&[("cam", PATTERN)]));
    let addr = app.local_addr();
    let mut viewer = MjpegReader::open(addr, "/stream/cam");
    viewer.part();

    let garbage = request(addr, b"\x16\x03\x01 this is not http\r\n\r\n");
    assert_eq!(garbage.status, 400);

    let mut big = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 32 * 1024));
    big.extend(b"\r\n\r\n");
    assert_eq!(request(addr, &big).status, 431);

    // A 1 MiB request line without a newline: answered with 4xx or closed, never buffered.
    let mut s = connect(addr);
    let line = vec![b'A'; 1024 * 1024];
    let _ = s.write_all(b"GET /");
    let _ = s.write_all(&line); // the server may close mid-way: that is fine
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 4"),
        "{reply}"
    );

    // HTTP/1.0 and pipelined requests are served.
    let old = request(addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(old.status, 200);
    let mut s = connect(addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut both = String::new();
    let _ = s.read_to_string(&mut both);
    assert_eq!(both.matches("HTTP/1.1 200").count(), 2, "{both}");

    // The stream kept going and the server still serves.
    for _ in 0..3 {
        decode(&viewer.part().jpeg);
    }
    assert_eq!(get(addr, "/healthz").status, 200);
    app.stop(Duration::from_secs(2));
}

#[test]
fn slow_header_senders_are_cut_off() {
    let app = start(&streams_toml(&[("cam", PATTERN)]));
    let addr = app.local_addr();
    let mut s = connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .unwrap(); // never finished
    let mut rest = Vec::new();
    let closed = s.read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "server closes the connection instead of waiting forever"
    );
    assert_eq!(get(addr, "/healthz").status, 200);
    app.stop(Duration::from_secs(2));
}

#[test]
fn ffmpeg_reads_the_stream() {
    let app = start(&streams_toml(&[("cam", PATTERN)]));
    let addr = app.local_addr();
    let url = format!("http://{addr}/stream/cam");
    let before = api_stream(addr, "cam")["frames"].as_u64().unwrap();
    let (frames, log) = ffmpeg_frames(&url);
    let published = api_stream(addr, "cam")["frames"].as_u64().unwrap() - before;
    // Judged against what camhub published meanwhile (ffmpeg starts a little late).
    assert!(
        frames >= 10 && frames * 10 >= published * 6,
        "ffmpeg decoded {frames} of {published} frames published\n{log}"
    );
    assert!(log.contains("mjpeg") && log.contains("320x240"), "{log}");
    app.stop(Duration::from_secs(2));
}

#[test]
fn connection_and_viewer_limits_answer_503_and_keep_the_api_reachable() {
    let app = start(&format!(
        "[server]\nmax_connections = 8\nmax_viewers = 4\n{}",
        streams_toml(&[("cam", PATTERN)])
    ));
    let addr = app.local_addr();
    let mut viewers: Vec<_> = (0..4)
        .map(|_| MjpegReader::open(addr, "/stream/cam"))
        .collect();
    for v in &mut viewers {
        v.part();
    }
    let refused = get(addr, "/stream/cam");
    assert_eq!(refused.status, 503, "viewer over the limit");
    assert_eq!(
        refused.header("connection"),
        Some("close"),
        "a refused viewer does not keep a connection slot"
    );
    assert_eq!(
        get(addr, "/api/streams").status,
        200,
        "the API stays reachable"
    );

    // Fill the remaining 4 connections with keep-alive clients: each makes one request
    // and stays open, so the count is exact; the 5th is refused.
    let mut held = Vec::new();
    let refused = loop {
        let mut conn = std::io::BufReader::new(connect(addr));
        conn.get_mut()
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let (status, headers) = read_head(&mut conn);
        if status == 503 {
            let mut body = String::new();
            let _ = conn.read_to_string(&mut body);
            break body;
        }
        assert_eq!(status, 200);
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        let mut body = vec![0; len];
        conn.read_exact(&mut body).unwrap();
        held.push(conn);
        assert!(
            held.len() <= 4,
            "served with {} held + 4 viewers",
            held.len()
        );
    };
    assert_eq!(held.len(), 4, "4 viewers + 4 held connections fill the 8");
    assert!(refused.contains("too many connections"), "{refused}");
    drop(held);
    let recovered = eventually(Duration::from_secs(5), || {
        (get(addr, "/healthz").status == 200).then_some(())
    });
    assert!(recovered.is_some(), "capacity returns when clients leave");
    for v in &mut viewers {
        v.part();
    }
    app.stop(Duration::from_secs(2));
}

#[test]
fn basic_auth_guards_everything_but_healthz() {
    use base64::Engine;
    let app = start(&format!(
        "[server]\nauth = \"viewer:open sesame\"\n{}",
        streams_toml(&[("cam", PATTERN)])
    ));
    let addr = app.local_addr();
    let with = |path: &str, credentials: &str| {
        let token = base64::engine::general_purpose::STANDARD.encode(credentials);
        request(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {token}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    for path in [
        "/",
        "/api/streams",
        "/metrics",
        "/snapshot/cam",
        "/stream/cam",
        "/mux",
        "/api/peers",
        "/?action=snapshot",
    ] {
        let resp = get(addr, path);
        assert_eq!(resp.status, 401, "{path} without credentials");
        assert_eq!(
            resp.header("www-authenticate"),
            Some("Basic realm=\"camhub\", charset=\"UTF-8\"")
        );
        assert_eq!(
            with(path, "viewer:wrong").status,
            401,
            "{path} wrong password"
        );
        assert_eq!(
            with(path, "someone:open sesame").status,
            401,
            "{path} wrong user"
        );
    }
    assert_eq!(
        get(addr, "/healthz").status,
        200,
        "health checks need no credentials"
    );
    assert_eq!(with("/api/streams", "viewer:open sesame").status, 200);

    // A browser's stream with credentials works like any other.
    let token = base64::engine::general_purpose::STANDARD.encode("viewer:open sesame");
    let mut s = connect(addr);
    write!(
        s,
        "GET /stream/cam HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {token}\r\n\r\n"
    )
    .unwrap();
    let mut mjpeg = MjpegReader::from_stream(s);
    assert_eq!(decode(&mjpeg.part().jpeg).0, 320);
    app.stop(Duration::from_secs(2));
}
