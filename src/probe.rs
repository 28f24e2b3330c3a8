//! "Test this camera" before saving it (issue #13): [`test_camera`] connects to a URL the
//! way its stream would, waits for the first picture, measures the frame rate for about a
//! second and hands back a small preview, or says in plain words why it failed;
//! [`test_address`] does the same for what a user types on a phone, where a bare host or IP
//! expands ([`candidates`]) to the usual stream addresses of common cameras and phone apps.
//!
//! Both block; the HTTP layer runs them on a thread of their own. Everything ends within
//! the deadline it is given (10 s for `POST /api/cameras/test`): the source gets a
//! [`Shutdown`] of its own that fires at the deadline, when camhub shuts down, or when
//! another address has already worked; a host name is looked up on a helper thread that is
//! waited for no longer than the deadline (a plain lookup can hang for as long as the
//! resolver's timeouts).
//!
//! Security (issue #13, item 3): [`check_web_url`] is the rule for URLs that come from the
//! web, shared with the camera add/edit API: no `exec:` (a command added over the web is
//! remote code execution) and no `v4l2:` path outside `/dev/video*` and `/dev/v4l/by-*`.
//! A reason never holds a credential or the body of some other response: reasons are
//! built here from the sources' messages (which name hosts, never credentials or bodies),
//! and anything passed through is redacted and scrubbed of the password again.

use crate::config::{redact_url, SourceKind, StreamConfig};
use crate::error::Error;
use crate::frame::Frame;
use crate::jpeg::I420Buf;
use crate::rendition::Maker;
use crate::shutdown::Shutdown;
use crate::source::{self, Event, Source};
use base64::Engine as _;
use bytes::Bytes;
use futures_lite::FutureExt as _;
use std::collections::HashSet;
use std::net::ToSocketAddrs as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// What the API gives a camera test: `POST /api/cameras/test` `{url, username?, password?}`.
#[derive(Clone, Default, serde::Deserialize)]
pub struct TestRequest {
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for TestRequest {
    /// Without the password, and with any credentials in the URL removed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRequest")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The answer to a camera test.
#[derive(Clone, PartialEq)]
pub enum TestResult {
    /// A picture arrived.
    Ok {
        kind: SourceKind,
        /// `"mjpeg"` (the camera sends JPEG), `"h264"` (decoded from RTSP), or `"raw"`
        /// (pictures camhub encodes itself: raw V4L2 formats, the test pattern).
        codec: &'static str,
        /// The camera's picture size (not the preview's).
        width: u32,
        height: u32,
        /// Pictures per second over about a second, None when too few arrived to tell.
        /// For a single-JPEG (snapshot) URL this is camhub's polling rate.
        fps: Option<f64>,
        /// A preview at most [`PREVIEW_MAX_WIDTH`] wide.
        snapshot_jpeg: Bytes,
        /// The URL that worked, without credentials.
        url: String,
    },
    /// Why not, in plain words (no credentials, no bodies of other responses).
    Failed { reason: String },
}

impl std::fmt::Debug for TestResult {
    /// The preview as its length: a debug print of a JPEG is noise.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestResult::Ok {
                kind,
                codec,
                width,
                height,
                fps,
                snapshot_jpeg,
                url,
            } => f
                .debug_struct("Ok")
                .field("kind", kind)
                .field("codec", codec)
                .field("width", width)
                .field("height", height)
                .field("fps", fps)
                .field(
                    "snapshot_jpeg",
                    &format_args!("{} bytes", snapshot_jpeg.len()),
                )
                .field("url", url)
                .finish(),
            TestResult::Failed { reason } => {
                f.debug_struct("Failed").field("reason", reason).finish()
            }
        }
    }
}

impl TestResult {
    pub fn is_ok(&self) -> bool {
        matches!(self, TestResult::Ok { .. })
    }

    /// The reason of a failure, None on success.
    pub fn reason(&self) -> Option<&str> {
        match self {
            TestResult::Ok { .. } => None,
            TestResult::Failed { reason } => Some(reason),
        }
    }

    /// The API's JSON: `{ok: true, kind, codec, width, height, fps, snapshot, url}` with
    /// `snapshot` a `data:image/jpeg;base64,…` URL, or `{ok: false, reason}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            TestResult::Ok {
                kind,
                codec,
                width,
                height,
                fps,
                snapshot_jpeg,
                url,
            } => serde_json::json!({
                "ok": true,
                "kind": kind.as_str(),
                "codec": codec,
                "width": width,
                "height": height,
                "fps": fps,
                "snapshot": format!(
                    "data:image/jpeg;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(snapshot_jpeg)
                ),
                "url": url,
            }),
            TestResult::Failed { reason } => serde_json::json!({ "ok": false, "reason": reason }),
        }
    }
}

/// The deadline the API gives a test (issue #13: "within 10 s").
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// Widest preview: enough for a phone's "add camera" card, a few tens of KB as base64.
pub const PREVIEW_MAX_WIDTH: u32 = 640;

/// How long the frame rate is measured after the first picture (within the deadline).
const FPS_WINDOW: Duration = Duration::from_secs(1);

/// Addresses of a bare host tried at once. Each holds one connection and at most one
/// thread; at most one attempt runs per host:port, so a camera never sees a burst of
/// logins (Hikvision locks an account after a few failed ones) and cheap cameras that
/// allow one or two sessions are not overrun.
const MAX_PARALLEL: usize = 4;

/// Name lookups that may be pending at once, process-wide. A lookup that outlives its
/// deadline keeps its helper thread until the resolver gives up; this caps such threads.
const MAX_PENDING_LOOKUPS: usize = 8;

/// Tests one camera URL: [`check_web_url`], then the stream's own source (the same code
/// and validation as a configured stream), until the first picture and about a second
/// more, all within `deadline`. The source is closed before returning (RTSP TEARDOWN).
pub fn test_camera(req: &TestRequest, shutdown: &Shutdown, deadline: Duration) -> TestResult {
    let url = req.url.trim();
    let creds = Credentials::new(req.username.as_deref(), req.password.as_deref());
    let until = Instant::now() + deadline;
    let cancel = Cancel::link(shutdown, until);
    let result = probe(url, &creds, &cancel.token, shutdown, until);
    drop(cancel);
    match result {
        Ok(found) => found.into_result(),
        Err(failure) => TestResult::Failed {
            reason: creds.scrub(&failure.reason()),
        },
    }
}

/// Tests what a user typed: a full URL as [`test_camera`] does, a bare host or IP (with
/// an optional port) by trying its [`candidates`] a few at a time, all within `deadline`.
/// The first address that gives a picture wins and the others are cancelled; when none
/// does, the most telling failure is the reason ("wrong user or password" beats
/// "connection refused").
pub fn test_address(
    input: &str,
    username: Option<&str>,
    password: Option<&str>,
    shutdown: &Shutdown,
    deadline: Duration,
) -> TestResult {
    let input = input.trim();
    let urls = candidates(input);
    let creds = Credentials::new(username, password);
    let until = Instant::now() + deadline;
    if urls.is_empty() {
        return TestResult::Failed {
            reason: "not an address: enter a camera URL (rtsp://… or http://…) or its IP \
                     address or host name"
                .into(),
        };
    }
    if urls.len() == 1 {
        let req = TestRequest {
            url: urls[0].clone(),
            username: creds.username.clone(),
            password: creds.password.clone(),
        };
        return test_camera(&req, shutdown, deadline);
    }
    let cancel = Cancel::link(shutdown, until);
    // All candidates share the host: one lookup says whether it exists at all.
    if let Some((host, port)) = url_host(&urls[0]) {
        if let Err(failure) = resolve(&host, port, until) {
            return TestResult::Failed {
                reason: failure.reason(),
            };
        }
    }
    let tried = urls.len();
    let outcome = race(urls, &creds, &cancel.token, shutdown, until);
    drop(cancel);
    match outcome {
        Ok(found) => found.into_result(),
        Err(failure) => {
            let reason = failure.reason();
            let reason = match failure {
                Failure::ShuttingDown => reason,
                _ => format!("{reason}; tried {tried} usual camera addresses at {input}"),
            };
            TestResult::Failed {
                reason: creds.scrub(&reason),
            }
        }
    }
}

/// Checks a URL that comes from the web (the camera test, the camera add/edit API)
/// against what only the config file may hold, then validates it as the config file's
/// streams are. The error is a plain sentence for a 400.
pub fn check_web_url(url: &str) -> Result<(), String> {
    let url = url.trim();
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    if url.is_empty() || !url.contains(':') {
        return Err("enter a camera URL (rtsp://…, http://…) or an IP address".into());
    }
    match scheme.as_str() {
        "exec" => {
            // go2rtc had exactly this hole: a command added over the web is remote code
            // execution.
            return Err("exec: sources can only be set in camhub.toml".into());
        }
        "v4l2" => {
            let path = url["v4l2:".len()..].trim_start_matches("//");
            if !allowed_v4l2_path(path) {
                return Err(
                    "a v4l2: camera must be a video device: v4l2:///dev/videoN or \
                     v4l2:///dev/v4l/by-id/… (or by-path/…)"
                        .into(),
                );
            }
        }
        "rtsp" | "rtsps" | "http" | "https" | "pattern" => {}
        _ => {
            return Err(format!(
                "unknown kind of address {:?}: use rtsp://…, http://…, v4l2:///dev/videoN or \
                 pattern:",
                format!("{scheme}:")
            ))
        }
    }
    StreamConfig::new("test", url)
        .map(drop)
        .map_err(|e| match e {
            Error::Config { msg, .. } => msg,
            other => redact_url(&other.to_string()),
        })
}

/// `/dev/video<N>` or a link under `/dev/v4l/by-<kind>/`, with no `.`/`..` steps or empty
/// components that could lead elsewhere.
fn allowed_v4l2_path(path: &str) -> bool {
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return false;
    }
    if let Some(n) = path.strip_prefix("/dev/video") {
        return !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    }
    let Some(rest) = path.strip_prefix("/dev/v4l/by-") else {
        return false;
    };
    let mut parts = rest.split('/');
    let kind = parts.next().unwrap_or("");
    let names: Vec<&str> = parts.collect();
    !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !names.is_empty()
        && names
            .iter()
            .all(|n| !n.is_empty() && *n != "." && *n != "..")
}

// ---- address guessing -------------------------------------------------------------------

/// RTSP paths of common cameras, tried on port 554 (or the port given), in order.
const RTSP_PATHS: &[&str] = &[
    "/",
    // TP-Link Tapo and VIGI.
    "/stream1",
    // Reolink.
    "/h264Preview_01_main",
    // Dahua, Amcrest, Lorex.
    "/cam/realmonitor?channel=1&subtype=0",
    // Hikvision, Annke.
    "/Streaming/Channels/101",
    // Many Chinese cameras (XMeye/ONVIF firmwares).
    "/live/ch00_0",
    // Many Chinese cameras (HiSilicon firmwares).
    "/11",
    // Axis.
    "/axis-media/media.amp",
    // Foscam.
    "/videoMain",
];

/// HTTP MJPEG addresses of phone apps and cameras: (default port, path).
const HTTP_PATHS: &[(u16, &str)] = &[
    // Android "IP Webcam".
    (8080, "/video"),
    // DroidCam.
    (4747, "/video"),
    // Axis.
    (80, "/mjpg/video.mjpg"),
    // motionEye and Motion's stream port.
    (8081, "/"),
    // mjpg-streamer (many Raspberry Pi and OctoPrint setups).
    (8080, "/?action=stream"),
];

/// Ports on which a bare `host:port` is tried as RTSP before HTTP.
const RTSP_PORTS: [u16; 3] = [554, 8554, 10554];

/// The URLs to try for what a user typed. A URL (anything with a scheme) is tried as it
/// is. A bare host or IP expands to the usual RTSP paths on port 554 and the usual MJPEG
/// addresses of phone apps and cameras; with a port, every path on that port (RTSP first
/// on 554/8554/10554, else HTTP first); with a path (`host[:port]/path`), that path over
/// RTSP and HTTP. Empty when the input is not an address.
pub fn candidates(input: &str) -> Vec<String> {
    let input = input.trim();
    if input.is_empty() {
        return Vec::new();
    }
    let lower = input.to_ascii_lowercase();
    let has_scheme = input.contains("://")
        || [
            "pattern:", "v4l2:", "exec:", "rtsp:", "rtsps:", "http:", "https:",
        ]
        .iter()
        .any(|s| lower.starts_with(s));
    if has_scheme {
        return vec![input.to_string()];
    }
    let (authority, path) = match input.find('/') {
        Some(i) => (&input[..i], Some(&input[i..])),
        None => (input, None),
    };
    let Some((host, port)) = split_host_port(authority) else {
        return Vec::new();
    };
    let at = |scheme: &str, port: u16, path: &str| -> String {
        let default = if scheme == "rtsp" { 554 } else { 80 };
        if port == default {
            format!("{scheme}://{host}{path}")
        } else {
            format!("{scheme}://{host}:{port}{path}")
        }
    };
    let rtsp_first = port.is_none_or(|p| RTSP_PORTS.contains(&p));
    let mut out: Vec<String> = Vec::new();
    match (port, path) {
        (_, Some(path)) => {
            let both = [
                at("rtsp", port.unwrap_or(554), path),
                at("http", port.unwrap_or(80), path),
            ];
            if rtsp_first {
                out.extend(both);
            } else {
                out.extend(both.into_iter().rev());
            }
        }
        (Some(port), None) => {
            let rtsp = RTSP_PATHS.iter().map(|p| at("rtsp", port, p));
            let mut http_paths: Vec<&str> = Vec::new();
            for (_, p) in HTTP_PATHS {
                if !http_paths.contains(p) {
                    http_paths.push(p);
                }
            }
            let http = http_paths.into_iter().map(|p| at("http", port, p));
            if rtsp_first {
                out.extend(rtsp.chain(http));
            } else {
                out.extend(http.chain(rtsp));
            }
        }
        (None, None) => {
            // RTSP first: most IP cameras. Attempts on one host:port run one at a time,
            // so the HTTP ports (other host:ports) run beside the RTSP ones anyway.
            out.extend(RTSP_PATHS.iter().map(|p| at("rtsp", 554, p)));
            out.extend(HTTP_PATHS.iter().map(|(port, p)| at("http", *port, p)));
        }
    }
    // Explicit `rtsp://h:554` and the default port can meet: keep each URL once.
    let mut seen = HashSet::new();
    out.retain(|u| seen.insert(u.clone()));
    out
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address → (host as it goes in a
/// URL, port). None for anything else.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let parse_port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0);
    if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':')?)?),
        };
        return Some((format!("[{v6}]"), port));
    }
    if authority.matches(':').count() > 1 {
        let v6 = authority.parse::<std::net::Ipv6Addr>().ok()?;
        return Some((format!("[{v6}]"), None));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(parse_port(p)?)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !host.starts_with(['.', '-']);
    host_ok.then(|| (host.to_ascii_lowercase(), port))
}

// ---- one attempt ------------------------------------------------------------------------

/// Credentials from the request; empty strings count as none.
struct Credentials {
    username: Option<String>,
    password: Option<String>,
}

impl Credentials {
    fn new(username: Option<&str>, password: Option<&str>) -> Credentials {
        let keep = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
        Credentials {
            username: keep(username),
            password: keep(password),
        }
    }

    /// `text` with the password (plain and percent-encoded) replaced, in case a camera
    /// echoed it into a message. Passwords shorter than 3 characters are left alone:
    /// replacing them would garble the text, and they do not protect anything.
    fn scrub(&self, text: &str) -> String {
        let mut out = redact_url(text);
        if let Some(p) = self.password.as_deref().filter(|p| p.len() >= 3) {
            out = out.replace(p, "***");
            let encoded: String = url::form_urlencoded::byte_serialize(p.as_bytes()).collect();
            out = out.replace(&encoded, "***");
        }
        out
    }
}

/// What a successful attempt found.
struct Found {
    kind: SourceKind,
    codec: &'static str,
    width: u32,
    height: u32,
    fps: Option<f64>,
    preview: Bytes,
    url: String,
}

impl Found {
    fn into_result(self) -> TestResult {
        TestResult::Ok {
            kind: self.kind,
            codec: self.codec,
            width: self.width,
            height: self.height,
            fps: self.fps,
            snapshot_jpeg: self.preview,
            url: self.url,
        }
    }
}

/// Why an attempt failed, from least to most telling by [`Failure::rank`].
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    /// Another address worked, or the test ended: nothing to report.
    Cancelled,
    /// The URL is refused or malformed (the message says why).
    Invalid(String),
    NoHost(String),
    /// The name server did not answer within the deadline.
    LookupTimeout(String),
    Refused(String),
    Unreachable,
    NoAnswer,
    NotFound,
    /// Something answered, but not with a camera stream (why, in plain words).
    NotCamera(&'static str),
    /// An error status other than the ones above (protocol, code).
    ErrorStatus(&'static str, u16),
    /// A source message that matched nothing else (redacted, shortened).
    Other(String),
    Closed,
    /// Connected, but no picture came before the deadline.
    NoPicture,
    /// Something camhub cannot do (TLS, Digest over HTTP), in plain words.
    Unsupported(String),
    Codec(String),
    Forbidden,
    NeedsCredentials,
    WrongCredentials,
    ShuttingDown,
}

impl Failure {
    /// How much the user learns from it: the highest-ranked failure of a bare address's
    /// candidates is the one reported.
    fn rank(&self) -> u8 {
        match self {
            Failure::Cancelled => 0,
            Failure::Invalid(_) => 1,
            Failure::NoHost(_) | Failure::LookupTimeout(_) => 2,
            Failure::Refused(_) => 3,
            Failure::Unreachable => 4,
            Failure::NoAnswer => 5,
            Failure::NotFound => 6,
            Failure::NotCamera(_) => 7,
            Failure::ErrorStatus(..) => 8,
            Failure::Other(_) => 9,
            Failure::Closed => 10,
            Failure::NoPicture => 11,
            Failure::Unsupported(_) => 12,
            Failure::Codec(_) => 13,
            Failure::Forbidden => 14,
            Failure::NeedsCredentials => 15,
            Failure::WrongCredentials => 16,
            Failure::ShuttingDown => 17,
        }
    }

    /// A failure that any other path on the same host:port (with the same credentials)
    /// would repeat: the other paths there are skipped with it.
    fn ends_origin(&self) -> bool {
        matches!(
            self,
            Failure::NoHost(_)
                | Failure::LookupTimeout(_)
                | Failure::Refused(_)
                | Failure::Unreachable
                | Failure::NoAnswer
                | Failure::WrongCredentials
        )
    }

    fn reason(&self) -> String {
        match self {
            Failure::Cancelled => "the test was cancelled".into(),
            Failure::Invalid(msg) | Failure::Other(msg) | Failure::Unsupported(msg) => msg.clone(),
            Failure::NoHost(host) => format!("no such host: {host}"),
            Failure::LookupTimeout(host) => {
                format!("no such host: the name server did not answer for {host}")
            }
            Failure::Refused(origin) => {
                format!("connection refused: nothing listens on {origin}")
            }
            Failure::Unreachable => "the address cannot be reached (no route to it)".into(),
            Failure::NoAnswer => "no answer: the camera did not respond in time".into(),
            Failure::NotFound => {
                "no stream at this address: the camera answered \"not found\"".into()
            }
            Failure::NotCamera(why) => format!("not a camera stream: {why}"),
            Failure::ErrorStatus(protocol, code) => {
                format!("the camera answered with an error ({protocol} {code})")
            }
            Failure::Closed => "the camera closed the connection".into(),
            Failure::NoPicture => "connected, but no picture arrived in time".into(),
            Failure::Codec(codec) => {
                format!("codec not supported ({codec}): set the camera to send H.264 or MJPEG")
            }
            Failure::Forbidden => "this user may not watch the stream (forbidden)".into(),
            Failure::NeedsCredentials => "the camera needs a user name and password".into(),
            Failure::WrongCredentials => "wrong user or password".into(),
            Failure::ShuttingDown => "camhub is shutting down".into(),
        }
    }
}

/// Maps a source's error to a [`Failure`]. The messages are the sources' own (see
/// `source/rtsp.rs` and `source/http_mjpeg.rs`); tests/probe.rs runs each case against
/// a real peer, so a reworded message shows up there.
fn classify(e: &Error, creds: &Credentials) -> Failure {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    let has = |s: &str| lower.contains(s);
    if has("unauthorized") || has("401 response to") {
        if has("digest authentication; only basic") {
            return Failure::Unsupported(
                "the camera asks for Digest authentication over HTTP, which camhub does not \
                 support: use its RTSP stream"
                    .into(),
            );
        }
        let sent = creds.username.is_some() || creds.password.is_some();
        return if has("needs a user name") || has("set username and password") {
            Failure::NeedsCredentials
        } else if sent || has("rejected the user name") || has("check the username") {
            Failure::WrongCredentials
        } else {
            Failure::NeedsCredentials
        };
    }
    if has("forbidden") || has("403 response to") {
        return Failure::Forbidden;
    }
    if let Some(codec) = text
        .split("codec ")
        .nth(1)
        .and_then(|rest| rest.split(" not supported").next())
        .filter(|_| has(" not supported; configure the camera"))
    {
        return Failure::Codec(codec.trim().to_string());
    }
    if has("https:// is not supported") || has("redirected to a https") {
        return Failure::Unsupported(
            "https:// cameras are not supported (no TLS): use the camera's http:// address".into(),
        );
    }
    if has("only rtsp:// is supported") {
        return Failure::Unsupported(
            "rtsps:// (RTSP over TLS) is not supported: use the camera's rtsp:// address".into(),
        );
    }
    if has("cannot resolve") {
        return Failure::NoHost(host_in(&text).unwrap_or_else(|| "the camera's host".into()));
    }
    if has("connection refused") {
        return Failure::Refused(host_in(&text).unwrap_or_else(|| "that port".into()));
    }
    if has("no route to host") || has("network is unreachable") || has("host is unreachable") {
        return Failure::Unreachable;
    }
    if has("timed out")
        || has("timeout")
        || has("no answer within")
        || has("sent no http response within")
    {
        return Failure::NoAnswer;
    }
    if has("404 not found from") || has("404 response to") {
        return Failure::NotFound;
    }
    if has("text/") && has("not an mjpeg stream or a jpeg") {
        return Failure::NotCamera("the address answers with a web page or text");
    }
    if has("not an mjpeg stream or a jpeg") {
        return Failure::NotCamera("the address answers with something that is not video");
    }
    if has("did not answer with http") || has("response head over") {
        return Failure::NotCamera("the address does not speak HTTP");
    }
    if has("framing error") {
        return Failure::NotCamera("the address does not speak RTSP");
    }
    if has("broken frames in a row") || has("switched from single jpegs") {
        return Failure::NotCamera("its pictures are not JPEG");
    }
    if has("offers no video stream") {
        return Failure::NotCamera("the camera offers no video at this address");
    }
    if has("closed the connection")
        || has("closed the stream")
        || has("connection reset")
        || has("broken pipe")
        || has("unexpected eof")
    {
        return Failure::Closed;
    }
    if let Some(code) = status_in(&lower) {
        return Failure::ErrorStatus(code.0, code.1);
    }
    if has("more than") && has("redirects") {
        return Failure::NotCamera("the address only redirects elsewhere");
    }
    let mut short = creds.scrub(&text);
    if short.len() > 160 {
        let mut end = 160;
        while !short.is_char_boundary(end) {
            end -= 1;
        }
        short.truncate(end);
        short.push('…');
    }
    Failure::Other(short)
}

/// The `host:port` or host a source message names (`cannot connect to H:P: …`, `cannot
/// resolve H: …`, or an RTSP URL at its start).
fn host_in(text: &str) -> Option<String> {
    for marker in ["cannot connect to ", "cannot resolve "] {
        if let Some(rest) = text.split(marker).nth(1) {
            let end = rest.find(": ").unwrap_or(rest.len());
            let name = rest[..end].trim();
            if !name.is_empty() && !name.contains(char::is_whitespace) {
                return Some(name.to_string());
            }
        }
    }
    let first = text.split_whitespace().next()?;
    let url = url::Url::parse(first.trim_end_matches(':')).ok()?;
    let host = url.host_str()?;
    Some(format!(
        "{host}:{}",
        url.port_or_known_default().unwrap_or(554)
    ))
}

/// An error status in a source message: `HTTP 503 … from` or `500 response to` (RTSP).
fn status_in(lower: &str) -> Option<(&'static str, u16)> {
    if let Some(rest) = lower.split("http ").nth(1) {
        if let Ok(code) = rest.get(..3).unwrap_or("").parse::<u16>() {
            if (400..600).contains(&code) {
                return Some(("HTTP", code));
            }
        }
    }
    let before = lower.split(" response to ").next()?;
    if before.len() == lower.len() {
        return None;
    }
    let code = before
        .get(before.len().checked_sub(3)?..)?
        .parse::<u16>()
        .ok()?;
    (400..600).contains(&code).then_some(("RTSP", code))
}

/// Tests one URL; `cancel` fires at `until`, on shutdown, or when another address won.
fn probe(
    url: &str,
    creds: &Credentials,
    cancel: &Shutdown,
    shutdown: &Shutdown,
    until: Instant,
) -> Result<Found, Failure> {
    check_web_url(url).map_err(Failure::Invalid)?;
    let mut stream = StreamConfig::new("test", url).map_err(|e| match e {
        Error::Config { msg, .. } => Failure::Invalid(msg),
        other => Failure::Invalid(redact_url(&other.to_string())),
    })?;
    stream.name = "Camera test".into();
    stream.username = creds.username.clone();
    stream.password = creds.password.clone();
    if let Some((host, port)) = url_host(url) {
        resolve(&host, port, until)?;
    }
    // Why a cancelled step stopped.
    let stopped = |connected: bool| {
        if shutdown.is_triggered() {
            Failure::ShuttingDown
        } else if Instant::now() + Duration::from_millis(50) < until {
            Failure::Cancelled
        } else if connected {
            Failure::NoPicture
        } else {
            Failure::NoAnswer
        }
    };
    let mut source = source::build(&stream, cancel).map_err(|e| classify(&e, creds))?;
    let opened = source.open();
    if let Err(e) = opened {
        source.close();
        return Err(if cancel.is_triggered() {
            stopped(false)
        } else {
            classify(&e, creds)
        });
    }
    let result = watch(source.as_mut(), stream.kind, creds, cancel, until);
    source.close();
    drop(source);
    let mut found = result.map_err(|f| match f {
        Failure::Cancelled => stopped(true),
        other => other,
    })?;
    found.url = redact_url(url);
    Ok(found)
}

/// Reads an open source until its first picture, then counts pictures for about
/// [`FPS_WINDOW`] more.
fn watch(
    source: &mut dyn Source,
    kind: SourceKind,
    creds: &Credentials,
    cancel: &Shutdown,
    until: Instant,
) -> Result<Found, Failure> {
    let mut maker = Maker::default();
    let (first_at, codec, width, height, frame, mut preview) = loop {
        if cancel.is_triggered() || Instant::now() >= until {
            return Err(Failure::Cancelled);
        }
        let event = source.next(true).map_err(|e| classify(&e, creds))?;
        let at = Instant::now();
        match event {
            Event::Frame(frame) => {
                let (w, h) = (frame.width, frame.height);
                break (at, "mjpeg", w, h, Some(frame), None);
            }
            Event::Picture(picture) => {
                let codec = if kind == SourceKind::Rtsp {
                    "h264"
                } else {
                    "raw"
                };
                let (w, h) = (picture.image.width, picture.image.height);
                let captured = (picture.captured_at, picture.captured_wall);
                // Borrowed from the source: the preview is made now.
                let preview = maker
                    .make(&picture.image, PREVIEW_MAX_WIDTH, captured)
                    .map_err(|e| Failure::Other(format!("cannot make a preview: {e}")))?;
                break (at, codec, w, h, None, Some(preview.jpeg));
            }
            Event::Alive | Event::Idle => {}
        }
    };

    // The rate. A decoded H.264 picture costs a decode and a scale (slow in a debug build
    // on a busy machine), so H.264 is counted on compressed frames: with `wanted` false,
    // the RTSP source hands back one Alive per video frame without decoding it. Every
    // other source is counted on its pictures (Alive there can be pacing, e.g. between
    // snapshot polls).
    let count_alive = codec == "h264";
    let window_end = (first_at + FPS_WINDOW).min(until);
    let (mut counted, mut last_at) = (0u32, first_at);
    while Instant::now() < window_end && !cancel.is_triggered() {
        let Ok(event) = source.next(!count_alive) else {
            break; // the picture we have is the answer; the rate stays as measured
        };
        let counts = match event {
            Event::Frame(_) | Event::Picture(_) => true,
            Event::Alive => count_alive,
            Event::Idle => false,
        };
        if counts {
            counted += 1;
            last_at = Instant::now();
        }
    }
    let span = last_at.saturating_duration_since(first_at).as_secs_f64();
    let fps =
        (counted >= 2 && span > 0.0).then(|| (f64::from(counted) / span * 10.0).round() / 10.0);

    if let Some(frame) = frame {
        let made = jpeg_preview(&frame, &mut maker);
        preview = Some(made.map_err(|_| Failure::NotCamera("its pictures cannot be decoded"))?);
    }
    Ok(Found {
        kind,
        codec,
        width,
        height,
        fps,
        preview: preview.unwrap_or_default(),
        url: String::new(),
    })
}

/// A camera JPEG as a preview: itself when narrow enough, else decoded at a DCT scale and
/// scaled to [`PREVIEW_MAX_WIDTH`].
fn jpeg_preview(frame: &Frame, maker: &mut Maker) -> crate::Result<Bytes> {
    if frame.width <= PREVIEW_MAX_WIDTH {
        return Ok(frame.jpeg.clone());
    }
    let mut decoded = I420Buf::default();
    crate::jpeg_decode::Decoder::new().decode_scaled(
        &frame.jpeg,
        PREVIEW_MAX_WIDTH,
        &mut decoded,
    )?;
    let scaled = maker.make(
        &decoded.as_i420(),
        PREVIEW_MAX_WIDTH,
        (Instant::now(), SystemTime::now()),
    )?;
    Ok(scaled.jpeg)
}

// ---- name lookups -----------------------------------------------------------------------

/// The host name and port of an rtsp/http URL, when the host is a name (IP addresses
/// need no lookup).
fn url_host(url: &str) -> Option<(String, u16)> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "rtsp" | "http") {
        return None;
    }
    let port = parsed.port_or_known_default().unwrap_or(554);
    match parsed.host()? {
        url::Host::Domain(name) if !name.is_empty() => Some((name.to_string(), port)),
        _ => None,
    }
}

/// Looks `host` up on a helper thread, waiting no longer than `until`.
fn resolve(host: &str, port: u16, until: Instant) -> Result<(), Failure> {
    static PENDING: AtomicUsize = AtomicUsize::new(0);
    if PENDING.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_LOOKUPS {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        return Err(Failure::LookupTimeout(host.to_string()));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_string();
    let spawned = std::thread::Builder::new()
        .name("probe-dns".into())
        .spawn(move || {
            let found = (name.as_str(), port)
                .to_socket_addrs()
                .map(|mut addrs| addrs.next().is_some());
            PENDING.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.send(found);
        });
    if spawned.is_err() {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        return Err(Failure::Other("cannot start a name lookup".into()));
    }
    match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false) | Err(_)) => Err(Failure::NoHost(host.to_string())),
        Err(_) => Err(Failure::LookupTimeout(host.to_string())),
    }
}

// ---- cancellation and the race of candidates --------------------------------------------

/// A [`Shutdown`] of the test's own that fires at the deadline, on camhub's shutdown, or
/// when triggered (another address won); its watcher thread ends when it is dropped.
struct Cancel {
    token: Shutdown,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Cancel {
    fn link(shutdown: &Shutdown, until: Instant) -> Cancel {
        let token = Shutdown::new();
        let (outer, inner) = (shutdown.clone(), token.clone());
        let watcher = std::thread::Builder::new()
            .name("probe-deadline".into())
            .spawn(move || {
                let deadline = async {
                    async_io::Timer::at(until).await;
                };
                async_io::block_on(outer.wait().or(inner.wait()).or(deadline));
                inner.trigger();
            });
        let watcher = match watcher {
            Ok(handle) => Some(handle),
            Err(_) => {
                // No thread: the test cannot be cut short, so it does not start.
                token.trigger();
                None
            }
        };
        Cancel { token, watcher }
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        self.token.trigger();
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }
}

/// What the workers of [`race`] share.
struct Race {
    /// Candidates not started yet, in order.
    pending: Vec<String>,
    /// host:port with an attempt in flight.
    busy: HashSet<String>,
    /// host:port (and host) known to fail the same way for every path, with that failure.
    ended: Vec<(String, Failure)>,
    best: Option<Failure>,
    found: Option<Found>,
}

impl Race {
    fn note(&mut self, failure: Failure) {
        if self.best.as_ref().is_none_or(|b| failure.rank() > b.rank()) {
            self.best = Some(failure);
        }
    }

    /// The next candidate to start, skipping (and noting) those whose host:port already
    /// failed for good; None when every remaining one is on a busy host:port.
    fn take(&mut self) -> Option<(String, String)> {
        let mut i = 0;
        while i < self.pending.len() {
            let origin = origin_of(&self.pending[i]);
            if let Some((_, failure)) = self.ended.iter().find(|(o, _)| *o == origin) {
                let failure = failure.clone();
                self.pending.remove(i);
                self.note(failure);
                continue;
            }
            if !self.busy.contains(&origin) {
                let url = self.pending.remove(i);
                self.busy.insert(origin.clone());
                return Some((url, origin));
            }
            i += 1;
        }
        None
    }
}

/// `host:port` of a candidate URL (the scheme's default port when none is given).
fn origin_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(554)
        ),
        Err(_) => url.to_string(),
    }
}

/// Tries `urls` on at most [`MAX_PARALLEL`] threads, one attempt per host:port at a time,
/// until one gives a picture (the others are then cancelled) or all have failed.
fn race(
    urls: Vec<String>,
    creds: &Credentials,
    cancel: &Shutdown,
    shutdown: &Shutdown,
    until: Instant,
) -> Result<Found, Failure> {
    let workers = MAX_PARALLEL.min(urls.len());
    let shared = Arc::new((
        Mutex::new(Race {
            pending: urls,
            busy: HashSet::new(),
            ended: Vec::new(),
            best: None,
            found: None,
        }),
        Condvar::new(),
    ));
    std::thread::scope(|scope| {
        for i in 0..workers {
            let mine = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("probe-{i}"))
                .spawn_scoped(scope, move || {
                    race_worker(&mine, creds, cancel, shutdown, until)
                });
            if spawned.is_err() && i == 0 {
                // Not even one thread: try in this one.
                race_worker(&shared, creds, cancel, shutdown, until);
            }
        }
    });
    let mut race = shared.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = race.found.take() {
        return Ok(found);
    }
    if shutdown.is_triggered() {
        return Err(Failure::ShuttingDown);
    }
    Err(match race.best.take() {
        Some(best) if best != Failure::Cancelled => best,
        _ => Failure::NoAnswer,
    })
}

fn race_worker(
    shared: &(Mutex<Race>, Condvar),
    creds: &Credentials,
    cancel: &Shutdown,
    shutdown: &Shutdown,
    until: Instant,
) {
    let (lock, wake) = shared;
    loop {
        let (url, origin) = {
            let mut race = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if race.found.is_some() || cancel.is_triggered() || race.pending.is_empty() {
                    return;
                }
                if let Some(next) = race.take() {
                    break next;
                }
                if race.pending.is_empty() {
                    return; // the rest were skipped: their host:port already failed
                }
                // Everything left waits for a busy host:port; an attempt ends within
                // the deadline, and `cancel` is checked every poll interval.
                race = wake
                    .wait_timeout(race, source::POLL_INTERVAL)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        let outcome = probe(&url, creds, cancel, shutdown, until);
        let mut race = lock.lock().unwrap_or_else(|e| e.into_inner());
        race.busy.remove(&origin);
        match outcome {
            Ok(found) => {
                if race.found.is_none() {
                    race.found = Some(found);
                }
                cancel.trigger();
            }
            Err(failure) => {
                if failure.ends_origin() {
                    race.ended.push((origin, failure.clone()));
                }
                race.note(failure);
            }
        }
        wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_tried_as_it_is() {
        for url in [
            "rtsp://cam/stream1",
            "http://10.0.0.5:8080/video",
            "pattern:",
            "v4l2:///dev/video0",
            "exec:rm -rf /", // refused later, by check_web_url, with the reason
            "HTTP://Cam/x",
        ] {
            assert_eq!(candidates(url), vec![url.to_string()], "{url}");
        }
        assert_eq!(
            candidates("  rtsp://cam/s  "),
            vec!["rtsp://cam/s".to_string()]
        );
    }

    #[test]
    fn a_bare_host_expands_to_the_usual_camera_and_app_addresses() {
        let all = candidates("192.168.1.20");
        for expected in [
            "rtsp://192.168.1.20/",
            "rtsp://192.168.1.20/stream1",
            "rtsp://192.168.1.20/h264Preview_01_main",
            "rtsp://192.168.1.20/cam/realmonitor?channel=1&subtype=0",
            "rtsp://192.168.1.20/Streaming/Channels/101",
            "rtsp://192.168.1.20/live/ch00_0",
            "rtsp://192.168.1.20/11",
            "http://192.168.1.20:8080/video",
            "http://192.168.1.20:4747/video",
            "http://192.168.1.20/mjpg/video.mjpg",
            "http://192.168.1.20:8081/",
        ] {
            assert!(all.iter().any(|u| u == expected), "{expected} in {all:#?}");
        }
        assert_eq!(all[0], "rtsp://192.168.1.20/");
        // Every candidate is a URL the web may add, and none repeats.
        for url in &all {
            assert_eq!(check_web_url(url), Ok(()), "{url}");
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());

        // Host names and IPv6 work too.
        assert!(candidates("Cam-1.local").contains(&"rtsp://cam-1.local/stream1".to_string()));
        let v6 = candidates("fe80::1");
        assert!(
            v6.contains(&"http://[fe80::1]:8080/video".to_string()),
            "{v6:?}"
        );
        assert_eq!(candidates("[::1]:8554")[0], "rtsp://[::1]:8554/");
    }

    #[test]
    fn a_port_keeps_every_path_on_it_and_picks_the_likely_protocol_first() {
        let http = candidates("10.0.0.7:8080");
        assert_eq!(http[0], "http://10.0.0.7:8080/video");
        assert!(http.contains(&"rtsp://10.0.0.7:8080/stream1".to_string()));
        assert!(http.contains(&"http://10.0.0.7:8080/mjpg/video.mjpg".to_string()));
        assert!(http.iter().all(|u| u.contains("10.0.0.7:8080")), "{http:?}");
        let rtsp = candidates("10.0.0.7:554");
        assert_eq!(rtsp[0], "rtsp://10.0.0.7/");
        assert!(rtsp.contains(&"http://10.0.0.7:554/video".to_string()));
        let rtsp = candidates("10.0.0.7:8554");
        assert_eq!(rtsp[0], "rtsp://10.0.0.7:8554/");
        // A path without a scheme: that path over both.
        assert_eq!(
            candidates("10.0.0.7:8080/videofeed"),
            vec![
                "http://10.0.0.7:8080/videofeed".to_string(),
                "rtsp://10.0.0.7:8080/videofeed".to_string()
            ]
        );
        assert_eq!(
            candidates("cam/live"),
            vec!["rtsp://cam/live".to_string(), "http://cam/live".to_string()]
        );
    }

    #[test]
    fn what_is_not_an_address_gives_no_candidates() {
        for input in [
            "",
            "   ",
            "cam:0",
            "cam:99999",
            "cam:http",
            "two words",
            "user:pass@cam",
            "[nope]",
            "-cam",
            "a;b",
        ] {
            assert_eq!(candidates(input), Vec::<String>::new(), "{input:?}");
        }
    }

    #[test]
    fn the_web_may_not_add_commands_or_arbitrary_devices() {
        let exec = check_web_url("exec:rpicam-vid -t 0 -o -").unwrap_err();
        assert_eq!(exec, "exec: sources can only be set in camhub.toml");
        assert!(check_web_url("EXEC:sh").is_err());
        for ok in [
            "v4l2:///dev/video0",
            "v4l2:/dev/video12",
            "v4l2:///dev/v4l/by-id/usb-046d_C270_ABC-video-index0",
            "v4l2:///dev/v4l/by-path/platform-3f980000.usb-usb-0:1.2:1.0-video-index0",
            "pattern:",
            "pattern:?size=320x240&fps=5",
            "rtsp://user:pw@cam:554/stream1",
            "http://cam:8080/video",
        ] {
            assert_eq!(check_web_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "v4l2:///etc/passwd",
            "v4l2:///dev/sda",
            "v4l2:///dev/video",
            "v4l2:///dev/video0/../../sda",
            "v4l2:///dev/v4l/by-id/../../sda",
            "v4l2:///dev/v4l/by-id/",
            "v4l2:///dev/v4l/other/x",
            "v4l2:///dev/videox",
            "file:///etc/passwd",
            "ftp://cam/",
            "javascript:alert(1)",
            "pattern:?fps=1000",
            "rtsp://",
            "http:cam/video",
            "",
            "cam",
        ] {
            assert!(check_web_url(bad).is_err(), "{bad} must be refused");
        }
        // Refusals never echo credentials.
        let e = check_web_url("http:admin:hunter22@cam/video").unwrap_err();
        assert!(!e.contains("hunter22"), "{e}");
    }

    #[test]
    fn source_messages_map_to_plain_reasons() {
        let none = Credentials::new(None, None);
        let some = Credentials::new(Some("admin"), Some("pw-9x7"));
        let src = |s: &str| Error::Source(s.to_string());
        let perm = |s: &str| Error::Permanent(s.to_string());
        let cases: Vec<(Error, &Credentials, Failure)> = vec![
            (
                perm("rtsp://cam/: unauthorized: the camera rejected the user name or password"),
                &some,
                Failure::WrongCredentials,
            ),
            (
                perm(
                    "rtsp://cam/: unauthorized: the camera needs a user name and password (in \
                     the URL or the stream's username/password keys)",
                ),
                &none,
                Failure::NeedsCredentials,
            ),
            (
                perm("unauthorized (HTTP 401 from cam:80): check the username and password"),
                &some,
                Failure::WrongCredentials,
            ),
            (
                perm("unauthorized (HTTP 401 from cam:80): set username and password for this stream"),
                &none,
                Failure::NeedsCredentials,
            ),
            (
                perm("forbidden (HTTP 403 from cam:80): check the user's rights on the camera"),
                &some,
                Failure::Forbidden,
            ),
            (
                perm("rtsp://cam/: codec H.265 not supported; configure the camera's H.264 or MJPEG stream"),
                &none,
                Failure::Codec("H.265".into()),
            ),
            (
                src("rtsp://nope.invalid/: cannot resolve nope.invalid: failed to lookup address"),
                &none,
                Failure::NoHost("nope.invalid".into()),
            ),
            (
                src("cannot connect to 10.0.0.9:8080: Connection refused (os error 111)"),
                &none,
                Failure::Refused("10.0.0.9:8080".into()),
            ),
            (
                src("rtsp://10.0.0.9:554/: DESCRIBE failed: Unable to connect to RTSP server: Connection refused (os error 111)"),
                &none,
                Failure::Refused("10.0.0.9:554".into()),
            ),
            (
                src("cannot connect to 10.0.0.9:80: connect timed out"),
                &none,
                Failure::NoAnswer,
            ),
            (
                src("cannot connect to 10.0.0.9:80: No route to host (os error 113)"),
                &none,
                Failure::Unreachable,
            ),
            (
                src("cam:80 sent text/html, not an MJPEG stream or a JPEG: is the URL a web page?"),
                &none,
                Failure::NotCamera("the address answers with a web page or text"),
            ),
            (
                src("rtsp://cam/x: DESCRIBE failed: 404 response to DESCRIBE CSeq=1: Unexpected RTSP response status"),
                &none,
                Failure::NotFound,
            ),
            (src("HTTP 404 Not Found from cam:80"), &none, Failure::NotFound),
            (
                src("HTTP 503 Service Unavailable from cam:80"),
                &none,
                Failure::ErrorStatus("HTTP", 503),
            ),
            (
                src("rtsp://cam/x: DESCRIBE failed: 500 response to DESCRIBE CSeq=1: Unexpected RTSP response status"),
                &none,
                Failure::ErrorStatus("RTSP", 500),
            ),
            (
                src("rtsp://cam/: the camera closed the connection"),
                &none,
                Failure::Closed,
            ),
            (
                src("rtsp://cam/: DESCRIBE failed: RTSP framing error: Invalid RTSP message"),
                &none,
                Failure::NotCamera("the address does not speak RTSP"),
            ),
        ];
        for (error, creds, expected) in cases {
            assert_eq!(classify(&error, creds), expected, "{error}");
        }
        // Anything else passes through redacted and without the password.
        let other = classify(&src("rtsp://admin:pw-9x7@cam/: odd pw-9x7 thing"), &some);
        let Failure::Other(text) = other else {
            panic!("{other:?}")
        };
        assert!(!text.contains("pw-9x7") && text.contains("odd"), "{text}");
    }

    #[test]
    fn the_most_telling_failure_wins() {
        let mut race = Race {
            pending: Vec::new(),
            busy: HashSet::new(),
            ended: Vec::new(),
            best: None,
            found: None,
        };
        for f in [
            Failure::Refused("h:554".into()),
            Failure::WrongCredentials,
            Failure::NotFound,
            Failure::NoAnswer,
        ] {
            race.note(f);
        }
        assert_eq!(race.best, Some(Failure::WrongCredentials));
        assert!(Failure::Codec("H.265".into()).rank() > Failure::NotCamera("x").rank());
        assert!(Failure::NotFound.rank() > Failure::Refused(String::new()).rank());
    }

    #[test]
    fn a_failed_host_port_skips_its_other_paths_but_not_other_ports() {
        let mut race = Race {
            pending: candidates("10.1.1.1"),
            busy: HashSet::new(),
            ended: vec![("10.1.1.1:554".into(), Failure::WrongCredentials)],
            best: None,
            found: None,
        };
        let (url, origin) = race.take().unwrap();
        assert_eq!(url, "http://10.1.1.1:8080/video");
        assert_eq!(origin, "10.1.1.1:8080");
        assert_eq!(race.best, Some(Failure::WrongCredentials));
        // :8080 is busy now; the next one is on another port.
        let (url, _) = race.take().unwrap();
        assert_eq!(url, "http://10.1.1.1:4747/video");
        assert!(race.pending.iter().all(|u| !u.starts_with("rtsp://")));
    }

    #[test]
    fn results_serialise_for_the_api() {
        let ok = TestResult::Ok {
            kind: SourceKind::Rtsp,
            codec: "h264",
            width: 640,
            height: 480,
            fps: Some(15.0),
            snapshot_jpeg: Bytes::from_static(b"\xff\xd8\xff\xd9"),
            url: "rtsp://cam/stream1".into(),
        };
        let json = ok.to_json();
        assert_eq!(json["ok"], true);
        assert_eq!(json["kind"], "rtsp");
        assert_eq!(json["codec"], "h264");
        assert_eq!(json["width"], 640);
        assert_eq!(json["fps"], 15.0);
        assert_eq!(json["snapshot"], "data:image/jpeg;base64,/9j/2Q==");
        assert!(format!("{ok:?}").contains("4 bytes"));
        let failed = TestResult::Failed {
            reason: "wrong user or password".into(),
        };
        assert_eq!(
            failed.to_json(),
            serde_json::json!({"ok": false, "reason": "wrong user or password"})
        );
        let req: TestRequest =
            serde_json::from_str(r#"{"url": "rtsp://u:hunter22@cam/", "password": "hunter22"}"#)
                .unwrap();
        assert!(!format!("{req:?}").contains("hunter22"));
    }

    #[test]
    fn refused_urls_fail_at_once_with_the_reason() {
        let started = Instant::now();
        let req = TestRequest {
            url: "exec:sh -c reboot".into(),
            ..TestRequest::default()
        };
        let result = test_camera(&req, &Shutdown::new(), DEFAULT_DEADLINE);
        assert_eq!(
            result.reason(),
            Some("exec: sources can only be set in camhub.toml")
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let result = test_address(
            "not an address!",
            None,
            None,
            &Shutdown::new(),
            DEFAULT_DEADLINE,
        );
        assert!(result.reason().unwrap().starts_with("not an address"));
    }

    #[test]
    fn the_test_pattern_passes_with_a_preview_and_its_rate() {
        let req = TestRequest {
            url: "pattern:?size=960x540&fps=10".into(),
            ..TestRequest::default()
        };
        let result = test_camera(&req, &Shutdown::new(), DEFAULT_DEADLINE);
        let TestResult::Ok {
            kind,
            codec,
            width,
            height,
            fps,
            snapshot_jpeg,
            url,
        } = result
        else {
            panic!("{result:?}")
        };
        assert_eq!(
            (kind, codec, width, height),
            (SourceKind::Pattern, "raw", 960, 540)
        );
        assert_eq!(url, "pattern:?size=960x540&fps=10");
        assert_eq!(crate::jpeg::check(&snapshot_jpeg).unwrap(), (640, 360));
        assert!(fps.is_some_and(|f| f > 0.0), "{fps:?}");
    }
}
