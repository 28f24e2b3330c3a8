//! ONVIF: camera address + password → profiles and RTSP URLs (src/onvif.rs, issue #14)
//! against a fake ONVIF camera (tests/peers/onvif_device.py) in each of its modes, a web
//! server that is not a camera, closed and silent ports, and once end to end: the main
//! URL camhub suggests is played from the GStreamer RTSP server with Digest auth
//! (tests/common/rtsp.rs). Everything listens on 127.0.0.1; every process a test starts
//! is killed by PID when the test ends, pass or fail.

#[path = "common/rtsp.rs"]
mod rtsp_server;

use camhub::onvif::{streams, OnvifError, OnvifStreams};
use camhub::probe::{test_camera, TestRequest, TestResult};
use camhub::shutdown::Shutdown;
use rtsp_server::{free_port, RtspServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PYTHON: &str = "/usr/bin/python3";
const USER: &str = "onvifuser";
/// Distinctive, so a leak anywhere is found by a plain search.
const PASSWORD: &str = "Onv1f-pw-5d8e2b";
const WRONG: &str = "Wr0ng-pw-71c0fe";
/// Text only the web page's body holds.
const PAGE_TEXT: &str = "Router admin 4b1d6c: please log in";
const DEADLINE: Duration = Duration::from_secs(15);

/// The fake camera, killed when dropped. Collects the calls it logs.
struct Camera {
    process: Child,
    port: u16,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Camera {
    fn start(extra: &[&str]) -> Camera {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/onvif_device.py");
        let mut process = Command::new(PYTHON)
            .arg(script)
            .args(["--port", "0", "--user", USER, "--password", PASSWORD])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 runs");
        let stdout = process.stdout.take().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = calls.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut camera = Camera {
            process,
            port: 0,
            calls,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the camera peer starts");
        let url = line.strip_prefix("ready ").expect("a ready line");
        camera.port = url
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("a port in the ready line");
        camera
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The calls so far, one line each ("call tr2:GetProfiles auth=wsse status=200 …").
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn answered(&self, call: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|l| l.starts_with(&format!("call {call} ")) && l.contains("status=200"))
            .collect()
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn list(address: &str, user: &str, password: &str) -> Result<OnvifStreams, OnvifError> {
    let result = streams(address, user, password, &Shutdown::new(), DEADLINE);
    eprintln!("{address}: {result:?}");
    result
}

/// Neither the result's debug print nor its JSON holds the password.
fn assert_no_leak(result: &Result<OnvifStreams, OnvifError>) {
    let shown = match result {
        Ok(s) => format!("{s:?}\n{}", serde_json::to_string(s).unwrap()),
        Err(e) => format!("{e:?}\n{}", e.reason()),
    };
    assert!(!shown.contains(PASSWORD), "the password leaked: {shown}");
}

/// What every mode of the fake camera lists: the H.265 profile first (listed, not
/// playable), main and sub after it, the audio-only profile left out; URLs on the
/// address camhub was given (not 0.0.0.0 nor the host name the camera said), with
/// their ports, paths and queries, and without the credentials one of them carried.
fn check_profiles(s: &OnvifStreams, rtsp_port: u16, main_size: (u32, u32)) {
    let shape: Vec<_> = s
        .profiles
        .iter()
        .map(|p| (p.codec.as_str(), p.width, p.height, p.supported))
        .collect();
    assert_eq!(
        shape,
        [
            ("H265", 2560, 1440, false),
            ("H264", main_size.0, main_size.1, true),
            ("H264", 640, 360, true),
        ]
    );
    let names: Vec<_> = s.profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["hevcStream", "mainStream", "subStream"]);
    assert_eq!((s.main, s.sub), (Some(1), Some(2)));
    assert_eq!(s.profiles[1].fps, Some(15.0));
    let urls: Vec<_> = s
        .profiles
        .iter()
        .map(|p| p.rtsp_url.as_deref().expect("every profile has a URL"))
        .collect();
    assert_eq!(
        urls,
        [
            format!("rtsp://127.0.0.1:{rtsp_port}/h265"),
            format!("rtsp://127.0.0.1:{rtsp_port}/h264"),
            format!(
                "rtsp://127.0.0.1:{rtsp_port}/Streaming/Channels/102?transportmode=unicast&profile=sub"
            ),
        ]
    );
    assert_eq!(
        s.device.model, "FakeCam 2000",
        "GetDeviceInformation is read"
    );
    assert_eq!(s.device.manufacturer, "Camhub Test Cameras");
    assert_eq!(s.device.serial, "FC2000-0001");
    assert_eq!(s.device.firmware, "V5.7.13 build 231117");
    // The API's JSON.
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["profiles"][1]["codec"], "H264");
    assert_eq!(json["profiles"][1]["rtsp_url"], urls[1]);
    assert_eq!(json["profiles"][0]["supported"], false);
    assert_eq!(json["main"], 1);
    assert_eq!(json["sub"], 2);
    assert_eq!(json["device"]["model"], "FakeCam 2000");
}

/// Media2 (GetServices with 0.0.0.0 XAddrs, `Type=All`, SOAP 1.2 with chunked bodies)
/// with the WS-Security UsernameToken checked for real, nonces never reused.
#[test]
fn media2_with_ws_security() {
    let camera = Camera::start(&["--media", "2", "--auth", "wsse", "--rtsp-port", "8554"]);
    let result = list(&camera.address(), USER, PASSWORD);
    assert_no_leak(&result);
    let s = result.unwrap();
    check_profiles(&s, 8554, (1920, 1080));
    assert_eq!(
        s.snapshot_url.as_deref(),
        Some(&*format!(
            "http://127.0.0.1:{}/onvif/snapshot?profile=Profile_2",
            camera.port
        )),
        "the main profile's snapshot"
    );
    assert!(s.clock_offset_secs.abs() <= 2, "{}", s.clock_offset_secs);
    let calls = camera.calls();
    assert!(
        camera.answered("tds:GetSystemDateAndTime").len() == 1
            && camera.answered("tds:GetServices").len() == 1
            && camera.answered("tds:GetCapabilities").is_empty(),
        "{calls:#?}"
    );
    let profiles = camera.answered("tr2:GetProfiles");
    assert!(
        profiles.len() == 1
            && profiles[0].contains("auth=wsse")
            && profiles[0].contains("type=All"),
        "{calls:#?}"
    );
    assert!(camera.answered("trt:GetProfiles").is_empty(), "{calls:#?}");
    let uris = camera.answered("tr2:GetStreamUri");
    assert_eq!(uris.len(), 3, "{calls:#?}");
    assert!(
        uris.iter()
            .all(|l| l.contains("protocol=RTSP") && l.contains("auth=wsse")),
        "RTP over RTSP over TCP, authenticated: {calls:#?}"
    );
    assert!(
        calls.iter().all(|l| !l.contains("refused")),
        "no call was refused: {calls:#?}"
    );
}

/// An older camera: no Media2, GetServices not implemented (GetCapabilities gives a
/// Media XAddr with a host name that does not resolve), SOAP 1.1 replies with other
/// prefixes, HTTP Digest with MD5 only.
#[test]
fn media1_only_camera_with_md5_digest() {
    let camera = Camera::start(&[
        "--media",
        "1",
        "--auth",
        "digest",
        "--digest-algorithms",
        "MD5",
        "--rtsp-port",
        "10554",
    ]);
    let result = list(&camera.address(), USER, PASSWORD);
    assert_no_leak(&result);
    let s = result.unwrap();
    check_profiles(&s, 10554, (1920, 1080));
    assert_eq!(
        s.snapshot_url.as_deref(),
        Some(&*format!(
            "http://127.0.0.1:{}/onvif/snapshot?profile=PROFILE_001",
            camera.port
        ))
    );
    let calls = camera.calls();
    assert!(
        camera.answered("tds:GetServices").is_empty()
            && camera.answered("tds:GetCapabilities").len() == 1,
        "GetCapabilities after GetServices failed: {calls:#?}"
    );
    let uris = camera.answered("trt:GetStreamUri");
    assert_eq!(uris.len(), 3, "{calls:#?}");
    assert!(
        uris.iter().all(|l| l.contains("stream=RTP-Unicast")
            && l.contains("protocol=RTSP")
            && l.contains("auth=digest=MD5")),
        "{calls:#?}"
    );
    // The challenge is taken once and reused with a growing nonce count: only the first
    // authenticated call meets a 401.
    let refused = calls.iter().filter(|l| l.contains("status=401")).count();
    assert_eq!(refused, 1, "{calls:#?}");
}

/// A camera that wants HTTP Digest and the UsernameToken as well.
#[test]
fn digest_and_ws_security_together() {
    let camera = Camera::start(&["--media", "2", "--auth", "both", "--rtsp-port", "8554"]);
    let result = list(&camera.address(), USER, PASSWORD);
    assert_no_leak(&result);
    check_profiles(&result.unwrap(), 8554, (1920, 1080));
    let calls = camera.calls();
    let profiles = camera.answered("tr2:GetProfiles");
    assert!(
        profiles.len() == 1 && profiles[0].contains("auth=digest=SHA-256+wsse"),
        "{calls:#?}"
    );
}

/// The camera's clock is an hour ahead: `Created` comes from the camera's clock, so the
/// UsernameToken is accepted; the offset is reported.
#[test]
fn ws_security_with_the_camera_clock_an_hour_off() {
    let camera = Camera::start(&[
        "--auth",
        "wsse",
        "--clock-offset",
        "3600",
        "--rtsp-port",
        "8554",
    ]);
    let result = list(&camera.address(), USER, PASSWORD);
    assert_no_leak(&result);
    let s = result.unwrap();
    assert!(
        (3598..=3602).contains(&s.clock_offset_secs),
        "{}",
        s.clock_offset_secs
    );
    check_profiles(&s, 8554, (1920, 1080));
    let calls = camera.calls();
    assert!(
        calls.iter().all(|l| !l.contains("refused")),
        "no token was refused: {calls:#?}"
    );
}

/// A camera that reports its local time as UTC (an hour ahead) but checks tokens against
/// its real clock: the token with the reported time is refused, camhub tries its own
/// clock once, and keeps it for the calls that follow.
#[test]
fn a_camera_that_misreports_its_clock_still_logs_in() {
    let camera = Camera::start(&[
        "--auth",
        "wsse",
        "--reported-clock-offset",
        "3600",
        "--rtsp-port",
        "8554",
    ]);
    let result = list(&camera.address(), USER, PASSWORD);
    assert_no_leak(&result);
    let s = result.unwrap();
    check_profiles(&s, 8554, (1920, 1080));
    let calls = camera.calls();
    let refused = calls.iter().filter(|l| l.contains("refused")).count();
    assert_eq!(refused, 1, "one refusal, then camhub's clock: {calls:#?}");
}

/// A wrong password: "wrong user or password", with the clock mentioned when it is far
/// off (an hour here) and not when it is right; never the password.
#[test]
fn a_wrong_password_is_said_plainly() {
    let camera = Camera::start(&["--auth", "wsse", "--clock-offset", "3600"]);
    let result = list(&camera.address(), USER, WRONG);
    assert_no_leak(&result);
    let reason = result.unwrap_err().reason();
    assert!(reason.starts_with("wrong user or password"), "{reason}");
    assert!(reason.contains("1 h ahead"), "{reason}");
    assert!(!reason.contains(WRONG), "{reason}");
    drop(camera);

    let camera = Camera::start(&["--auth", "digest"]);
    let result = list(&camera.address(), USER, WRONG);
    let reason = result.unwrap_err().reason();
    assert_eq!(reason, "wrong user or password");
    let camera = Camera::start(&["--auth", "wsse"]);
    let reason = list(&camera.address(), "someone", PASSWORD)
        .unwrap_err()
        .reason();
    assert_eq!(reason, "wrong user or password");
}

/// A camera whose profiles are all H.265 is listed, and the reason says what it has.
#[test]
fn an_h265_only_camera_has_nothing_to_suggest() {
    let camera = Camera::start(&["--auth", "wsse", "--h265-only"]);
    let result = list(&camera.address(), USER, PASSWORD);
    assert_no_leak(&result);
    let reason = result.unwrap_err().reason();
    assert!(
        reason.starts_with("no H.264 or MJPEG profile") && reason.contains("H265 2560×1440"),
        "{reason}"
    );
}

/// A web server that answers every request with `status` and a page, until dropped.
struct WebServer {
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl WebServer {
    fn start(status: &'static str, silent: bool) -> WebServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if silent {
                    held.push(s); // accepted, never answered
                    continue;
                }
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 65536];
                let _ = s.read(&mut buf);
                let body = format!("<!DOCTYPE html><html><body><p>{PAGE_TEXT}</p></body></html>");
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        WebServer { port, stop }
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A router's web page and a 404: "not an ONVIF device", without the page's text.
#[test]
fn a_web_server_is_not_an_onvif_device() {
    for status in ["200 OK", "404 Not Found"] {
        let web = WebServer::start(status, false);
        let result = list(&format!("127.0.0.1:{}", web.port), USER, PASSWORD);
        let reason = result.unwrap_err().reason();
        assert!(
            reason.starts_with("127.0.0.1 is not an ONVIF device"),
            "{status}: {reason}"
        );
        assert!(reason.contains("web page"), "{reason}");
        assert!(
            !reason.contains(PAGE_TEXT) && !reason.contains("Router"),
            "{reason}"
        );
    }
}

/// A closed port: no answer, connection refused. A port that accepts and never answers:
/// no answer within the deadline. A shutdown ends the wait.
#[test]
fn closed_and_silent_ports_give_no_answer() {
    let port = free_port();
    let reason = list(&format!("127.0.0.1:{port}"), USER, PASSWORD)
        .unwrap_err()
        .reason();
    assert_eq!(reason, "no answer from 127.0.0.1: connection refused");

    let silent = WebServer::start("", true);
    let address = format!("http://127.0.0.1:{}/onvif/device_service", silent.port);
    let reason = streams(
        &address,
        USER,
        PASSWORD,
        &Shutdown::new(),
        Duration::from_secs(2),
    )
    .unwrap_err()
    .reason();
    assert_eq!(reason, "no answer from 127.0.0.1 within 2 s");

    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        trigger.trigger();
    });
    let result = streams(
        &address,
        USER,
        PASSWORD,
        &shutdown,
        Duration::from_secs(600),
    );
    stopper.join().unwrap();
    assert_eq!(result.unwrap_err(), OnvifError::Stopped);
}

/// End to end: a Digest-only camera (SHA-256 preferred over MD5) whose stream URIs point
/// at the GStreamer RTSP server with the same account; camhub plays the suggested main
/// URL with the user's credentials. The RTSP port itself is not an ONVIF device.
#[test]
fn digest_only_camera_and_its_main_stream_plays() {
    let rtsp = RtspServer::start(
        free_port(),
        &[
            "--auth",
            "digest",
            "--user",
            USER,
            "--password",
            PASSWORD,
            "--size",
            "1280x720",
        ],
    );
    let port = rtsp.port.to_string();
    let camera = Camera::start(&[
        "--media",
        "2",
        "--auth",
        "digest",
        "--rtsp-port",
        &port,
        "--main-size",
        "1280x720",
    ]);
    // As discovery hands it over: the device service URL.
    let xaddr = format!("http://127.0.0.1:{}/onvif/device_service", camera.port);
    let result = list(&xaddr, USER, PASSWORD);
    assert_no_leak(&result);
    let s = result.unwrap();
    check_profiles(&s, rtsp.port, (1280, 720));
    let calls = camera.calls();
    assert!(
        camera
            .answered("tr2:GetProfiles")
            .iter()
            .all(|l| l.contains("auth=digest=SHA-256")),
        "{calls:#?}"
    );

    let main = &s.profiles[s.main.unwrap()];
    let req = TestRequest {
        url: main.rtsp_url.clone().unwrap(),
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
    };
    let played = test_camera(&req, &Shutdown::new(), Duration::from_secs(20));
    let TestResult::Ok {
        codec,
        width,
        height,
        ..
    } = &played
    else {
        panic!("{played:?}")
    };
    assert_eq!((*codec, *width, *height), ("h264", main.width, main.height));

    // GStreamer takes the POST for half of an RTSP-over-HTTP tunnel and waits.
    let rtsp_address = format!("127.0.0.1:{}", rtsp.port);
    let reason = streams(
        &rtsp_address,
        USER,
        PASSWORD,
        &Shutdown::new(),
        Duration::from_secs(3),
    )
    .unwrap_err()
    .reason();
    assert!(
        reason.starts_with("127.0.0.1 is not an ONVIF device") || reason.starts_with("no answer"),
        "{reason}"
    );
}
