//! The HTTP-MJPEG pull source end to end over real TCP: camhub pulling another camhub
//! (chunked, byte-for-byte passthrough), independent upstream servers written here with
//! std (odd boundaries, no lengths, snapshots, garbage, endless parts, 401), reconnects
//! with flat threads and fds, and a frozen upstream caught by the stall watchdog.

mod common;

use common::*;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any state change may take before a test gives up (generous: CI machines are
/// slow; this is a hang guard, not a timing assertion).
const WAIT: Duration = Duration::from_secs(20);
/// No upstream connection handler runs longer than this, whatever the test does.
const HANDLER_MAX: Duration = Duration::from_secs(120);

/// Distinct, valid JPEG frames (solid colours) of 160x120.
fn frames(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let rgb: Vec<u8> = (0..160 * 120)
                .flat_map(|p| [(i * 50) as u8, (p % 160) as u8, 200 - (i * 30) as u8])
                .collect();
            camhub::jpeg::encode_rgb(&rgb, 160, 120, 80)
                .unwrap()
                .to_vec()
        })
        .collect()
}

/// What an upstream connection handler gets: the socket, the request head, and the
/// server's stop flag (every handler loop checks it).
type Handler = Arc<dyn Fn(&mut TcpStream, &str, &AtomicBool) + Send + Sync>;

/// A tiny HTTP server on 127.0.0.1, one thread per connection, stopped (and joined) on
/// drop so no thread or socket outlives its test.
struct Upstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Request heads received, in order.
    requests: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    fn start(handler: Handler) -> Upstream {
        Upstream::start_on(0, handler)
    }

    fn start_on(port: u16, handler: Handler) -> Upstream {
        // std sets SO_REUSEADDR, so a port just closed can be bound again.
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind upstream");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut handlers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            let (stop, handler, requests) =
                                (stop.clone(), handler.clone(), requests.clone());
                            handlers.push(std::thread::spawn(move || {
                                s.set_nonblocking(false).unwrap();
                                s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                                let head = read_request(&mut s);
                                requests.lock().unwrap().push(head.clone());
                                handler(&mut s, &head, &stop);
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                for h in handlers {
                    let _ = h.join();
                }
            })
        };
        Upstream {
            addr,
            stop,
            thread: Some(thread),
            requests,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Closes the listener and every connection.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_request(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sleeps `d` in small steps; false if the server is stopping.
fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    !stop.load(Ordering::SeqCst)
}

/// A multipart handler: `content_type` as the response header, then `frames` in turn
/// (10 per second), each introduced by `--{sent_boundary}` and with a Content-Length
/// if `lengths`.
fn multipart(
    content_type: &'static str,
    sent_boundary: &'static str,
    lengths: bool,
    frames: Vec<Vec<u8>>,
) -> Handler {
    Arc::new(move |s, _head, stop| {
        let started = Instant::now();
        let head = format!("HTTP/1.0 200 OK\r\nContent-Type: {content_type}\r\n\r\n");
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        for frame in frames.iter().cycle() {
            let mut part = format!("--{sent_boundary}\r\nContent-Type: image/jpeg\r\n");
            if lengths {
                part.push_str(&format!("Content-Length: {}\r\n", frame.len()));
            }
            part.push_str("\r\n");
            let mut bytes = part.into_bytes();
            bytes.extend_from_slice(frame);
            bytes.extend_from_slice(b"\r\n");
            if s.write_all(&bytes).is_err()
                || !pause(Duration::from_millis(100), stop)
                || started.elapsed() > HANDLER_MAX
            {
                return;
            }
        }
    })
}

/// Answers `GET /old…` with a relative redirect to `/video`, everything else with `inner`.
fn redirecting(inner: Handler) -> Handler {
    Arc::new(move |s, head, stop| {
        if head.starts_with("GET /old") {
            let _ =
                s.write_all(b"HTTP/1.1 302 Found\r\nLocation: /video\r\nContent-Length: 0\r\n\r\n");
        } else {
            inner(s, head, stop);
        }
    })
}

fn status_of(addr: SocketAddr, id: &str) -> (String, String) {
    let s = api_stream(addr, id);
    (
        s["state"].as_str().unwrap_or_default().to_string(),
        s["last_error"].as_str().unwrap_or_default().to_string(),
    )
}

fn wait_live(addr: SocketAddr, id: &str) {
    eventually(WAIT, || (status_of(addr, id).0 == "live").then_some(()))
        .unwrap_or_else(|| panic!("{id} never went live: {}", api_stream(addr, id)));
}

fn snapshot(addr: SocketAddr, id: &str) -> Option<Vec<u8>> {
    let r = get(addr, &format!("/snapshot/{id}"));
    (r.status == 200).then_some(r.body)
}

#[test]
fn pulls_another_camhub_byte_for_byte() {
    let a = start(&streams_toml(&[("cam", "pattern:?size=320x240&fps=4")]));
    let url = format!("http://{}/stream/cam", a.local_addr());
    let b = start(&streams_toml(&[("cam", &url)]));
    let (a_addr, b_addr) = (a.local_addr(), b.local_addr());
    wait_live(b_addr, "cam");
    assert_eq!(api_stream(b_addr, "cam")["kind"], "http");

    // B re-serves decodable frames that change over time.
    let mut mjpeg = MjpegReader::open(b_addr, "/stream/cam");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let part = mjpeg.part();
        let (w, h, pixels) = decode(&part.jpeg);
        assert_eq!((w, h), (320, 240));
        seen.push(pixels);
    }
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "frames change");

    // Passthrough: B's newest frame is one of A's, byte for byte (A draws a new frame
    // every 250 ms, so sampling A around B's sample finds the same one).
    let same = eventually(WAIT, || {
        let a1 = snapshot(a_addr, "cam")?;
        let b1 = snapshot(b_addr, "cam")?;
        let a2 = snapshot(a_addr, "cam")?;
        (b1 == a1 || b1 == a2).then_some(())
    });
    assert!(same.is_some(), "B's frames are A's bytes, not a re-encode");
    b.stop(Duration::from_secs(2));
    a.stop(Duration::from_secs(2));
}

/// A camhub pulling a camhub whose stream is down shows it down too, with the reason,
/// instead of passing the OFFLINE pictures on as live video.
#[test]
fn an_offline_upstream_camhub_stream_is_not_live_downstream() {
    let a = start("[[stream]]\nid = \"off\"\nurl = \"pattern:\"\nenabled = false\n");
    let url = format!("http://{}/stream/off", a.local_addr());
    let b = start(&streams_toml(&[("cam", &url)]));
    let seen = eventually(WAIT, || {
        let (state, error) = status_of(b.local_addr(), "cam");
        (state != "live" && error.contains("upstream camhub: disabled")).then_some(())
    });
    assert!(seen.is_some(), "{}", api_stream(b.local_addr(), "cam"));
    b.stop(Duration::from_secs(2));
    a.stop(Duration::from_secs(2));
}

#[test]
fn independent_servers_with_odd_boundaries_and_no_lengths() {
    let f = frames(3);
    let quoted = Upstream::start(redirecting(multipart(
        "multipart/x-mixed-replace; boundary=\"--myboundary\"",
        "myboundary",
        false,
        f.clone(),
    )));
    let bare = Upstream::start(multipart(
        "multipart/x-mixed-replace",
        "sniffme",
        true,
        f.clone(),
    ));
    let rfc = Upstream::start(multipart(
        "multipart/mixed;boundary=frame",
        "--frame",
        false,
        f.clone(),
    ));
    // Nothing listens on port 1: the very first connect fails and is retried.
    let app = start(&streams_toml(&[
        ("quoted", &quoted.url("/old/path")),
        ("bare", &bare.url("/mjpg/video.mjpg?res=1")),
        ("rfc", &rfc.url("")),
        ("refused", "http://127.0.0.1:1/video"),
    ]));
    let addr = app.local_addr();
    let (state, error) = eventually(WAIT, || {
        let (state, error) = status_of(addr, "refused");
        (state == "backoff").then_some((state, error))
    })
    .unwrap();
    assert!(
        error.contains("cannot connect to 127.0.0.1:1"),
        "{state}: {error}"
    );
    for id in ["quoted", "bare", "rfc"] {
        wait_live(addr, id);
        let jpeg = eventually(WAIT, || snapshot(addr, id)).unwrap();
        assert!(f.contains(&jpeg), "{id}: a served frame, untouched");
        let info = api_stream(addr, id);
        assert_eq!(
            (info["width"].as_u64(), info["height"].as_u64()),
            (Some(160), Some(120))
        );
    }
    let request = bare.requests.lock().unwrap()[0].clone();
    assert!(
        request.starts_with("GET /mjpg/video.mjpg?res=1 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains(&format!("Host: {}\r\n", bare.addr)),
        "{request}"
    );
    assert!(request.contains("User-Agent: camhub/"), "{request}");
    assert!(
        !request.contains("Authorization"),
        "no credentials configured"
    );
    assert!(rfc.requests.lock().unwrap()[0].starts_with("GET / HTTP/1.1"));
    let followed: Vec<String> = quoted.requests.lock().unwrap()[..2].to_vec();
    assert!(followed[0].starts_with("GET /old/path "), "{followed:?}");
    assert!(
        followed[1].starts_with("GET /video "),
        "the redirect was followed"
    );
    app.stop(Duration::from_secs(2));
}

#[test]
fn snapshot_urls_are_polled_at_the_stream_fps() {
    let f = frames(4);
    let served = Arc::new(AtomicUsize::new(0));
    let handler = |with_length: bool| -> Handler {
        let (f, served) = (f.clone(), served.clone());
        Arc::new(move |s, _head, _stop| {
            let frame = &f[served.fetch_add(1, Ordering::SeqCst) % f.len()];
            let mut head = "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n".to_string();
            if with_length {
                head.push_str(&format!("Content-Length: {}\r\n", frame.len()));
            }
            head.push_str("Connection: close\r\n\r\n");
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(frame);
        })
    };
    let sized = Upstream::start(handler(true));
    let until_close = Upstream::start(handler(false));
    let app = start(&format!(
        "[[stream]]\nid = \"sized\"\nurl = \"{}\"\nfps = 5\n\
         [[stream]]\nid = \"closed\"\nurl = \"{}\"\nfps = 5\n",
        sized.url("/snap.jpg"),
        until_close.url("/cgi-bin/snapshot.cgi")
    ));
    let addr = app.local_addr();
    for (id, upstream) in [("sized", &sized), ("closed", &until_close)] {
        wait_live(addr, id);
        // One request per frame: the URL is polled again and again.
        eventually(WAIT, || (upstream.requests() >= 4).then_some(()))
            .unwrap_or_else(|| panic!("{id} polled {} times", upstream.requests()));
        eventually(WAIT, || {
            (api_stream(addr, id)["frames"].as_u64()? >= 3).then_some(())
        })
        .unwrap_or_else(|| panic!("{id}: {}", api_stream(addr, id)));
        let jpeg = eventually(WAIT, || snapshot(addr, id)).unwrap();
        assert!(f.contains(&jpeg), "{id}: a served frame, untouched");
    }
    app.stop(Duration::from_secs(2));
}

#[test]
fn garbage_and_endless_parts_fail_with_clear_errors_and_bounded_memory() {
    // Noise that never contains the boundary, sent as fast as the reader takes it.
    let garbage: Handler = Arc::new(|s, _head, stop| {
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=xq\r\n\r\n";
        let _ = s.write_all(head.as_bytes());
        let mut x: u32 = 0x9E37_79B9;
        let noise: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as u8) | 0x80 // never '-'
            })
            .collect();
        let started = Instant::now();
        while !stop.load(Ordering::SeqCst) && started.elapsed() < HANDLER_MAX {
            if s.write_all(&noise).is_err() {
                return;
            }
        }
    });
    // A part that starts like a JPEG and never ends.
    let endless: Handler = Arc::new(|s, _head, stop| {
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=xq\r\n\r\n\
                    --xq\r\nContent-Type: image/jpeg\r\n\r\n";
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&[0xFF, 0xD8]);
        let filler = vec![0x55u8; 65536];
        let started = Instant::now();
        while !stop.load(Ordering::SeqCst) && started.elapsed() < HANDLER_MAX {
            if s.write_all(&filler).is_err() {
                return;
            }
        }
    });
    let garbage = Upstream::start(garbage);
    let endless = Upstream::start(endless);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("camhub.toml");
    std::fs::write(
        &config,
        streams_toml(&[
            ("garbage", &garbage.url("/")),
            ("endless", &endless.url("/")),
        ]),
    )
    .unwrap();
    let camhub = spawn_camhub(&["--config", config.to_str().unwrap()]);
    for (id, expected) in [
        ("garbage", "no multipart boundary"),
        ("endless", "part larger than"),
    ] {
        let (state, error) = eventually(WAIT, || {
            let (state, error) = status_of(camhub.addr, id);
            error.contains(expected).then_some((state, error))
        })
        .unwrap_or_else(|| panic!("{id}: {}", api_stream(camhub.addr, id)));
        assert_ne!(state, "live", "{id}: {error}");
        assert_eq!(api_stream(camhub.addr, id)["frames"], 0);
    }
    // Both have failed (each after buffering at most the 8 MiB cap) at least twice more:
    // memory stays bounded, nowhere near the bytes sent.
    eventually(WAIT, || {
        (garbage.requests() >= 3 && endless.requests() >= 3).then_some(())
    })
    .expect("both reconnect and fail again");
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", camhub.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib < 150 * 1024, "camhub uses {rss_kib} KiB");
}

#[test]
fn unauthorized_fails_and_no_password_leaks_anywhere() {
    const USER_PASSWORD: &str = "Url-Secret-9f2";
    const KEY_PASSWORD: &str = "Key-Secret-41c";
    const RIGHT_PASSWORD: &str = "Right-Secret-7d0";
    let f = frames(2);
    let stream = multipart("multipart/x-mixed-replace; boundary=b", "b", true, f);
    let expected = format!(
        "Authorization: Basic {}\r\n",
        base64_encode(&format!("admin:{RIGHT_PASSWORD}"))
    );
    let upstream = Upstream::start(Arc::new(move |s, head, stop| {
        if head.contains(&expected) {
            stream(s, head, stop);
        } else {
            let _ = s.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\
                  Content-Length: 0\r\n\r\n",
            );
        }
    }));
    let port = upstream.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("camhub.toml");
    // "bad": the password key wins over the (also wrong) one in the URL. "good": the
    // right credentials in the URL.
    std::fs::write(
        &config,
        format!(
            "[[stream]]\nid = \"bad\"\nurl = \"http://admin:{USER_PASSWORD}@127.0.0.1:{port}/video\"\n\
             password = \"{KEY_PASSWORD}\"\n\
             [[stream]]\nid = \"good\"\nurl = \"http://admin:{RIGHT_PASSWORD}@127.0.0.1:{port}/video\"\n\
             [[stream]]\nid = \"keys\"\nurl = \"http://127.0.0.1:{port}/video\"\n\
             username = \"admin\"\npassword = \"{RIGHT_PASSWORD}\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("camhub.log");
    let camhub = spawn_logged(&["--config", config.to_str().unwrap()], &log);
    let addr = camhub.addr;

    let (state, error) = eventually(WAIT, || {
        let (state, error) = status_of(addr, "bad");
        (state == "failed").then_some((state, error))
    })
    .unwrap_or_else(|| panic!("{}", api_stream(addr, "bad")));
    assert_eq!(state, "failed");
    assert!(error.contains("unauthorized"), "{error}");
    wait_live(addr, "good");
    wait_live(addr, "keys");
    // A failed stream is not retried.
    let attempts = upstream
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains(&base64_encode(&format!("admin:{KEY_PASSWORD}"))))
        .count();
    assert_eq!(attempts, 1, "the 401 stream was tried once");

    let api = get(addr, "/api/streams").text();
    let metrics = get(addr, "/metrics").text();
    let page = get(addr, "/").text();
    drop(camhub); // kills it, so the log is complete
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("listening on"), "the log was captured: {log}");
    for secret in [USER_PASSWORD, KEY_PASSWORD, RIGHT_PASSWORD] {
        let encoded = base64_encode(&format!("admin:{secret}"));
        for (what, text) in [
            ("api", &api),
            ("metrics", &metrics),
            ("page", &page),
            ("log", &log),
        ] {
            assert!(!text.contains(secret), "{what} leaks {secret}:\n{text}");
            assert!(!text.contains(&encoded), "{what} leaks {secret} (base64)");
        }
    }
}

#[test]
fn reconnects_when_the_upstream_comes_back_with_flat_threads_and_fds() {
    let f = frames(3);
    let handler = multipart("multipart/x-mixed-replace;boundary=frame", "frame", true, f);
    let mut upstream = Upstream::start(handler.clone());
    let port = upstream.addr.port();
    let source = format!("cam={}", upstream.url("/video"));
    let camhub = spawn_camhub(&["--source", &source]);
    let addr = camhub.addr;
    let frames_now = || api_stream(addr, "cam")["frames"].as_u64().unwrap_or(0);

    let mut baseline = None;
    for round in 0..4 {
        wait_live(addr, "cam");
        let before = frames_now();
        eventually(WAIT, || (frames_now() > before + 2).then_some(()))
            .unwrap_or_else(|| panic!("round {round}: frames flow again"));
        // Let connections of the API calls above close before counting.
        std::thread::sleep(Duration::from_millis(200));
        let counts = (camhub.threads(), camhub.fds());
        let base = *baseline.get_or_insert(counts);
        assert!(
            counts.0 <= base.0 + 1 && counts.1 <= base.1 + 3,
            "round {round}: threads/fds {counts:?}, started at {base:?}"
        );

        upstream.stop();
        let (state, error) = eventually(WAIT, || {
            let (state, error) = status_of(addr, "cam");
            (state != "live" && !error.is_empty()).then_some((state, error))
        })
        .unwrap_or_else(|| panic!("round {round}: never went down"));
        assert!(
            ["backoff", "starting", "stalled"].contains(&state.as_str()),
            "{state}: {error}"
        );
        if round == 0 {
            // Once, stay down long enough for a retry to be refused.
            eventually(WAIT, || {
                status_of(addr, "cam")
                    .1
                    .contains("cannot connect")
                    .then_some(())
            })
            .expect("a retry while the upstream is down fails to connect");
        }
        upstream = Upstream::start_on(port, handler.clone());
    }
    wait_live(addr, "cam");
}

#[test]
fn a_frozen_upstream_stalls_shows_offline_and_recovers() {
    let f = frames(3);
    let frozen = Arc::new(AtomicBool::new(true));
    let stream = multipart(
        "multipart/x-mixed-replace; boundary=fz",
        "fz",
        true,
        f.clone(),
    );
    let handler: Handler = {
        let (frozen, first) = (frozen.clone(), f[0].clone());
        Arc::new(move |s, head, stop| {
            if !frozen.load(Ordering::SeqCst) {
                return stream(s, head, stop);
            }
            // Headers and one frame, then silence on an open connection.
            let mut bytes = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=fz\r\n\r\n\
                 --fz\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                first.len()
            )
            .into_bytes();
            bytes.extend_from_slice(&first);
            bytes.extend_from_slice(b"\r\n--fz\r\n");
            let _ = s.write_all(&bytes);
            pause(HANDLER_MAX, stop);
        })
    };
    let upstream = Upstream::start(handler);
    let app = start(&format!(
        "[[stream]]\nid = \"cam\"\nurl = \"{}\"\nstall_after_secs = 1\n",
        upstream.url("/video")
    ));
    let addr = app.local_addr();

    let error = eventually(WAIT, || {
        let (state, error) = status_of(addr, "cam");
        (state != "live" && error.contains("stalled")).then_some(error)
    })
    .unwrap_or_else(|| panic!("never stalled: {}", api_stream(addr, "cam")));
    assert!(error.contains("stalled"), "{error}");

    // A viewer gets the OFFLINE placeholder (not one of the upstream's frames), at the
    // size of the last real frame.
    let mut mjpeg = MjpegReader::open(addr, "/stream/cam");
    let served: HashSet<&Vec<u8>> = f.iter().collect();
    let placeholder = (0..30)
        .map(|_| mjpeg.part().jpeg)
        .find(|jpeg| !served.contains(jpeg))
        .expect("a placeholder within 30 parts");
    let (w, h, _) = decode(&placeholder);
    assert_eq!((w, h), (160, 120));
    drop(mjpeg);

    // The camera thaws: the next reconnect streams again.
    frozen.store(false, Ordering::SeqCst);
    let frames_now = || api_stream(addr, "cam")["frames"].as_u64().unwrap_or(0);
    let before = frames_now();
    eventually(WAIT, || {
        (status_of(addr, "cam").0 == "live" && frames_now() > before + 5).then_some(())
    })
    .unwrap_or_else(|| panic!("never recovered: {}", api_stream(addr, "cam")));
    app.stop(Duration::from_secs(2));
}

/// Runs the camhub binary like [`spawn_camhub`], but with its whole log (at debug level)
/// written to `log`, to check what it says.
fn spawn_logged(args: &[&str], log: &std::path::Path) -> Child {
    use std::process::{Command, Stdio};
    let file = std::fs::File::create(log).unwrap();
    let process = Command::new(env!("CARGO_BIN_EXE_camhub"))
        .args(["--no-mdns", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("camhub binary runs");
    let mut child = Child {
        process,
        addr: "127.0.0.1:1".parse().unwrap(),
    };
    let addr = eventually(WAIT, || {
        let text = std::fs::read_to_string(log).ok()?;
        let rest = text.split("listening on http://").nth(1)?;
        rest.split('/').next()?.parse::<SocketAddr>().ok()
    })
    .expect("camhub logs its address");
    child.addr = addr;
    child
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
