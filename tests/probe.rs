//! "Test this camera" (src/probe.rs, issue #13) against real peers on 127.0.0.1: the
//! GStreamer RTSP server with Digest auth (tests/common/rtsp.rs) and small HTTP servers in
//! this process (an MJPEG stream on the IP Webcam app's `/video`, a web page, a 404, a
//! port that accepts and never answers). Every process a test starts is killed by PID
//! when the test ends, pass or fail; the tests take one lock, so they never overlap (the
//! machine is small and the thread and fd counts must be this test's own).

mod common;
#[path = "common/rtsp.rs"]
mod rtsp_server;

use camhub::config::SourceKind;
use camhub::probe::{test_address, test_camera, TestRequest, TestResult, DEFAULT_DEADLINE};
use camhub::shutdown::Shutdown;
use common::{decode, eventually};
use rtsp_server::{free_port, RtspServer};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The RTSP server's password: distinctive, so a leak anywhere is found by a plain search.
const PASSWORD: &str = "Pr0be-pw-e41c7b";
const WRONG: &str = "Wr0ng-pw-93d2aa";
const USER: &str = "u";
/// Text only the web page's body holds.
const PAGE_TEXT: &str = "Router admin 7f3e9a: please log in";
/// Text only the 404 body holds.
const NOT_FOUND_TEXT: &str = "nothing-here-c02d51";

/// One test at a time in this process.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn request(url: &str, username: Option<&str>, password: Option<&str>) -> TestRequest {
    TestRequest {
        url: url.into(),
        username: username.map(str::to_string),
        password: password.map(str::to_string),
    }
}

/// Runs a test and logs how long it took (the report's timings come from here).
fn timed(what: &str, f: impl FnOnce() -> TestResult) -> TestResult {
    let started = Instant::now();
    let result = f();
    eprintln!("{what}: {:?} in {:?}", result, started.elapsed());
    result
}

/// The result as the API shows it and as a debug print: neither may hold `secrets`.
fn assert_no_leak(result: &TestResult, secrets: &[&str]) {
    let shown = format!("{}\n{result:?}", result.to_json());
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret:?} leaked: {shown}");
    }
}

fn reason(result: &TestResult) -> String {
    result
        .reason()
        .unwrap_or_else(|| panic!("expected a failure, got {result:?}"))
        .to_string()
}

/// The preview of a passed test: its JPEG decoded, with the data URL checked too.
fn preview(result: &TestResult) -> (u32, u32) {
    let TestResult::Ok { snapshot_jpeg, .. } = result else {
        panic!("expected success, got {result:?}");
    };
    let json = result.to_json();
    let data_url = json["snapshot"].as_str().unwrap();
    let b64 = data_url
        .strip_prefix("data:image/jpeg;base64,")
        .expect("a JPEG data URL");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(bytes, snapshot_jpeg.as_ref());
    let (w, h, pixels) = decode(&bytes);
    assert!(pixels.iter().any(|&p| p > 16), "the preview is not black");
    (w, h)
}

// ---- a small HTTP peer ------------------------------------------------------------------

/// A loopback HTTP server: `/video` streams MJPEG (800×600, 10 fps, four different
/// pictures), `/` is a web page, anything else a 404 with a body, anything that is not
/// a GET (an RTSP DESCRIBE) a 400. Stops (and closes its streams) when dropped.
struct HttpPeer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Requests that carried an Authorization header.
    logins: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What every connection of a peer shares.
struct Site {
    stop: Arc<AtomicBool>,
    frames: Vec<Vec<u8>>,
    /// `Basic …` that every request must carry, if set.
    login: Option<String>,
    logins: Arc<AtomicUsize>,
}

impl HttpPeer {
    fn start() -> HttpPeer {
        HttpPeer::serve(None)
    }

    /// Every path needs HTTP Basic `user:password`, as on a camera.
    fn start_with_login(user: &str, password: &str) -> HttpPeer {
        use base64::Engine as _;
        let pair = format!("{user}:{password}");
        HttpPeer::serve(Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )))
    }

    fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }

    fn serve(login: Option<String>) -> HttpPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let logins = Arc::new(AtomicUsize::new(0));
        let site = Arc::new(Site {
            stop: stop.clone(),
            frames: (0..4u8).map(picture).collect(),
            login,
            logins: logins.clone(),
        });
        let thread = std::thread::spawn(move || {
            let mut connections = Vec::new();
            while !site.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let site = site.clone();
                        connections.push(std::thread::spawn(move || serve(sock, &site)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for c in connections {
                let _ = c.join();
            }
        });
        HttpPeer {
            addr,
            stop,
            logins,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An 800×600 JPEG, different for each `n`.
fn picture(n: u8) -> Vec<u8> {
    let (w, h) = (800u32, 600u32);
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            rgb.extend_from_slice(&[(x / 4) as u8, (y / 3) as u8, n.wrapping_mul(60)]);
        }
    }
    camhub::jpeg::encode_rgb(&rgb, w, h, 80).unwrap().to_vec()
}

fn serve(sock: TcpStream, site: &Site) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match sock.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("authorization") {
                site.logins.fetch_add(1, Ordering::SeqCst);
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let mut sock = sock;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let simple = |status: &str, content_type: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let logged_in = site.login.is_none() || authorization == site.login;
    let response = match (method, path) {
        ("GET", _) if !logged_in => Some(format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{NOT_FOUND_TEXT}",
            NOT_FOUND_TEXT.len()
        )),
        ("GET", "/video") => None,
        ("GET", "/") => Some(simple(
            "200 OK",
            "text/html; charset=utf-8",
            &format!("<!doctype html><html><body><h1>{PAGE_TEXT}</h1></body></html>"),
        )),
        ("GET", _) => Some(simple("404 Not Found", "text/plain", NOT_FOUND_TEXT)),
        _ => Some(simple("400 Bad Request", "text/plain", NOT_FOUND_TEXT)),
    };
    if let Some(response) = response {
        let _ = sock.write_all(response.as_bytes());
        return;
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\
                Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
    if sock.write_all(head.as_bytes()).is_err() {
        return;
    }
    let started = Instant::now();
    for n in 0u32.. {
        if site.stop.load(Ordering::SeqCst) {
            return;
        }
        let jpeg = &site.frames[n as usize % site.frames.len()];
        let part = format!(
            "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            jpeg.len()
        );
        let sent = sock
            .write_all(part.as_bytes())
            .and_then(|()| sock.write_all(jpeg))
            .and_then(|()| sock.write_all(b"\r\n"));
        if sent.is_err() {
            return; // the client left
        }
        // 10 fps, paced from the start so a slow write does not lower the rate.
        let due = started + Duration::from_millis(100) * (n + 1);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

/// A port that accepts connections and never says anything.
struct Silent {
    addr: SocketAddr,
    _listener: TcpListener,
}

impl Silent {
    fn start() -> Silent {
        // The kernel completes the handshake from the backlog: nobody needs to accept.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Silent {
            addr: listener.local_addr().unwrap(),
            _listener: listener,
        }
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

// ---- tests ------------------------------------------------------------------------------

#[test]
fn an_h264_camera_with_digest_auth_passes_with_its_size_rate_and_a_preview() {
    let _serial = serial();
    let server = RtspServer::start(
        free_port(),
        &["--auth", "digest", "--user", USER, "--password", PASSWORD],
    );
    let url = server.url("/h264");
    let result = timed("h264", || {
        test_camera(
            &request(&url, Some(USER), Some(PASSWORD)),
            &Shutdown::new(),
            DEFAULT_DEADLINE,
        )
    });
    let TestResult::Ok {
        kind,
        codec,
        width,
        height,
        fps,
        url: worked,
        ..
    } = &result
    else {
        panic!("{result:?}")
    };
    assert_eq!(
        (*kind, *codec, *width, *height),
        (SourceKind::Rtsp, "h264", 640, 480)
    );
    assert_eq!(worked, &url);
    // The server sends 15 fps; counted on compressed frames, so decode speed does not
    // matter. A wide band: a busy machine delays reads, it does not change the rate.
    let fps = fps.expect("a rate");
    assert!((7.5..=30.0).contains(&fps), "fps {fps}");
    assert_eq!(preview(&result), (640, 480));
    let json = result.to_json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["codec"], "h264");
    assert_eq!(json["kind"], "rtsp");
    assert_no_leak(&result, &[PASSWORD]);

    // MJPEG over RTSP, credentials in the URL: they never come back.
    let with_creds = server
        .url("/mjpeg")
        .replace("rtsp://", &format!("rtsp://{USER}:{PASSWORD}@"));
    let result = timed("mjpeg", || {
        test_camera(
            &request(&with_creds, None, None),
            &Shutdown::new(),
            DEFAULT_DEADLINE,
        )
    });
    let TestResult::Ok {
        codec, url: worked, ..
    } = &result
    else {
        panic!("{result:?}")
    };
    assert_eq!(*codec, "mjpeg");
    assert_eq!(worked, &server.url("/mjpeg"));
    assert_eq!(preview(&result), (640, 480));
    assert_no_leak(&result, &[PASSWORD]);
}

#[test]
fn wrong_or_missing_credentials_and_h265_say_so_without_leaking() {
    let _serial = serial();
    let server = RtspServer::start(
        free_port(),
        &["--auth", "digest", "--user", USER, "--password", PASSWORD],
    );
    let shutdown = Shutdown::new();
    let wrong = timed("wrong password", || {
        test_camera(
            &request(&server.url("/h264"), Some(USER), Some(WRONG)),
            &shutdown,
            DEFAULT_DEADLINE,
        )
    });
    assert_eq!(reason(&wrong), "wrong user or password");
    assert_no_leak(&wrong, &[PASSWORD, WRONG]);

    // The wrong password in the URL: the same, and not echoed.
    let in_url = server
        .url("/h264")
        .replace("rtsp://", &format!("rtsp://{USER}:{WRONG}@"));
    let wrong = test_camera(&request(&in_url, None, None), &shutdown, DEFAULT_DEADLINE);
    assert_eq!(reason(&wrong), "wrong user or password");
    assert_no_leak(&wrong, &[PASSWORD, WRONG]);

    let missing = timed("no credentials", || {
        test_camera(
            &request(&server.url("/h264"), None, None),
            &shutdown,
            DEFAULT_DEADLINE,
        )
    });
    assert_eq!(
        reason(&missing),
        "the camera needs a user name and password"
    );

    let h265 = timed("h265", || {
        test_camera(
            &request(&server.url("/h265"), Some(USER), Some(PASSWORD)),
            &shutdown,
            DEFAULT_DEADLINE,
        )
    });
    let why = reason(&h265);
    assert!(why.starts_with("codec not supported (H.265)"), "{why}");
    assert_no_leak(&h265, &[PASSWORD]);
}

#[test]
fn a_bare_address_with_the_wrong_password_says_so_after_one_login() {
    let _serial = serial();
    let peer = HttpPeer::start_with_login(USER, PASSWORD);
    let shutdown = Shutdown::new();
    let addr = peer.addr.to_string();
    // The login fails on the first guess; every other path on that port would fail the
    // same way (and a camera may lock the account after a few), so none is tried with
    // credentials again. That beats what the RTSP guesses on the port got (a 400).
    let guessed = timed("address, wrong password", || {
        test_address(&addr, Some(USER), Some(WRONG), &shutdown, DEFAULT_DEADLINE)
    });
    let why = reason(&guessed);
    assert!(why.starts_with("wrong user or password; tried "), "{why}");
    assert_no_leak(&guessed, &[PASSWORD, WRONG]);
    assert_eq!(peer.logins(), 1, "login attempts");

    let found = timed("address, right password", || {
        test_address(
            &addr,
            Some(USER),
            Some(PASSWORD),
            &shutdown,
            DEFAULT_DEADLINE,
        )
    });
    let TestResult::Ok { url, .. } = &found else {
        panic!("{found:?}")
    };
    assert_eq!(url, &peer.url("/video"));
    assert_no_leak(&found, &[PASSWORD]);

    let missing = test_address(&addr, None, None, &shutdown, DEFAULT_DEADLINE);
    assert!(
        reason(&missing).starts_with("the camera needs a user name and password; tried "),
        "{missing:?}"
    );
}

#[test]
fn refused_unknown_and_silent_addresses_say_so_within_the_deadline() {
    let _serial = serial();
    let shutdown = Shutdown::new();
    let port = free_port();
    for url in [
        format!("rtsp://127.0.0.1:{port}/stream1"),
        format!("http://127.0.0.1:{port}/video"),
    ] {
        let result = timed(&url, || {
            test_camera(&request(&url, None, None), &shutdown, DEFAULT_DEADLINE)
        });
        let why = reason(&result);
        assert!(why.starts_with("connection refused"), "{url}: {why}");
        assert!(why.contains(&format!("127.0.0.1:{port}")), "{why}");
    }
    let result = timed("address, refused", || {
        test_address(
            &format!("127.0.0.1:{port}"),
            None,
            None,
            &shutdown,
            DEFAULT_DEADLINE,
        )
    });
    assert!(
        reason(&result).starts_with("connection refused") && reason(&result).contains("; tried "),
        "{result:?}"
    );

    // A host name that cannot exist. Its 64-character label is over DNS's limit, so the
    // C library refuses it without sending a query: nothing leaves the machine.
    let host = format!("{}.invalid", "a".repeat(64));
    for url in [
        format!("rtsp://{host}/"),
        format!("http://{host}:8080/video"),
    ] {
        let result = timed("no such host", || {
            test_camera(&request(&url, None, None), &shutdown, DEFAULT_DEADLINE)
        });
        assert_eq!(reason(&result), format!("no such host: {host}"), "{url}");
    }
    let result = test_address(&host, None, None, &shutdown, DEFAULT_DEADLINE);
    assert_eq!(reason(&result), format!("no such host: {host}"));

    // A port that accepts and never answers: "no answer" at the deadline, not after the
    // sources' own 10 s connect timeouts.
    let silent = Silent::start();
    let deadline = Duration::from_secs(2);
    for url in [
        format!("rtsp://{}/", silent.addr),
        format!("http://{}/video", silent.addr),
    ] {
        let started = Instant::now();
        let result = timed(&url, || {
            test_camera(&request(&url, None, None), &shutdown, deadline)
        });
        assert!(reason(&result).starts_with("no answer"), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{url} took {:?} with a 2 s deadline",
            started.elapsed()
        );
    }

    // camhub shutting down ends a test at once.
    let stopping = Shutdown::new();
    stopping.trigger();
    let result = test_camera(
        &request(&format!("rtsp://{}/", silent.addr), None, None),
        &stopping,
        DEFAULT_DEADLINE,
    );
    assert_eq!(reason(&result), "camhub is shutting down");
}

#[test]
fn a_web_page_or_a_404_is_not_a_camera_and_its_body_is_not_shown() {
    let _serial = serial();
    let peer = HttpPeer::start();
    let shutdown = Shutdown::new();
    let page = timed("web page", || {
        test_camera(
            &request(&peer.url("/"), None, None),
            &shutdown,
            DEFAULT_DEADLINE,
        )
    });
    let why = reason(&page);
    assert!(why.starts_with("not a camera stream"), "{why}");
    assert_no_leak(&page, &[PAGE_TEXT, "Router admin", "<h1>"]);

    let missing = test_camera(
        &request(&peer.url("/nope"), None, None),
        &shutdown,
        DEFAULT_DEADLINE,
    );
    assert!(
        reason(&missing).starts_with("no stream at this address"),
        "{missing:?}"
    );
    assert_no_leak(&missing, &[NOT_FOUND_TEXT]);

    // RTSP spoken to an HTTP server.
    let rtsp = format!("rtsp://{}/", peer.addr);
    let confused = test_camera(&request(&rtsp, None, None), &shutdown, DEFAULT_DEADLINE);
    assert!(
        reason(&confused).starts_with("not a camera stream"),
        "{confused:?}"
    );
    assert_no_leak(&confused, &[NOT_FOUND_TEXT]);

    // The web refuses commands before anything runs.
    let exec = test_camera(
        &request("exec:touch /tmp/camhub-probe-pwned", None, None),
        &shutdown,
        DEFAULT_DEADLINE,
    );
    assert_eq!(
        reason(&exec),
        "exec: sources can only be set in camhub.toml"
    );
    assert!(!std::path::Path::new("/tmp/camhub-probe-pwned").exists());
}

#[test]
fn an_mjpeg_phone_app_is_found_from_its_bare_address_with_threads_and_fds_flat() {
    let _serial = serial();
    let peer = HttpPeer::start();
    let shutdown = Shutdown::new();

    let direct = timed("mjpeg over http", || {
        test_camera(
            &request(&peer.url("/video"), None, None),
            &shutdown,
            DEFAULT_DEADLINE,
        )
    });
    let TestResult::Ok {
        kind,
        codec,
        width,
        height,
        fps,
        ..
    } = &direct
    else {
        panic!("{direct:?}")
    };
    assert_eq!(
        (*kind, *codec, *width, *height),
        (SourceKind::HttpMjpeg, "mjpeg", 800, 600)
    );
    let fps = fps.expect("a rate");
    assert!(
        (5.0..=20.0).contains(&fps),
        "the peer sends 10 fps, measured {fps}"
    );
    // 800 wide: scaled down to the preview's 640.
    assert_eq!(preview(&direct), (640, 480));

    let mut baseline = None;
    for round in 1..=3 {
        let found = timed("address", || {
            test_address(
                &peer.addr.to_string(),
                None,
                None,
                &shutdown,
                DEFAULT_DEADLINE,
            )
        });
        let TestResult::Ok { url, .. } = &found else {
            panic!("round {round}: {found:?}")
        };
        assert_eq!(
            url,
            &peer.url("/video"),
            "IP Webcam's path on the given port"
        );
        assert_eq!(preview(&found), (640, 480));
        // Failures too: a 404, and a bare address where every port refuses.
        let missing = test_camera(
            &request(&peer.url("/nope"), None, None),
            &shutdown,
            DEFAULT_DEADLINE,
        );
        assert!(missing.reason().is_some(), "{missing:?}");
        let refused = test_address(
            &format!("127.0.0.1:{}", free_port()),
            None,
            None,
            &shutdown,
            DEFAULT_DEADLINE,
        );
        assert!(refused.reason().is_some(), "{refused:?}");
        // Everything the tests started has ended soon after they answered, long before
        // their deadline: helper threads joined, connections closed. (RTSP's runtime
        // thread is created once, in the first round, and stays.)
        if baseline.is_none() {
            std::thread::sleep(Duration::from_secs(1));
        }
        let settled = eventually(Duration::from_secs(3), || {
            let now = (threads(), fds());
            match baseline {
                None => Some(now),
                Some((t, f)) => (now.0 <= t && now.1 <= f).then_some(now),
            }
        });
        let now = settled.unwrap_or_else(|| {
            panic!(
                "round {round}: threads {} fds {} grew from {baseline:?}",
                threads(),
                fds()
            )
        });
        eprintln!("round {round}: threads {} fds {}", now.0, now.1);
        baseline.get_or_insert(now);
    }
}
