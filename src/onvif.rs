//! ONVIF (issue #14, item 2): from a camera's address and the user's password to its
//! profiles and RTSP URLs, with a suggested main and sub-stream. [`streams`] is the whole
//! of it; it blocks, and the HTTP layer runs it on a thread of its own for
//! `POST /api/onvif/streams`.
//!
//! The call sequence (../shared/research/onvif.md §2.1): `GetSystemDateAndTime` without
//! credentials for the camera's clock; `GetServices` (else `GetCapabilities`) for the
//! Media2 and Media service addresses; `GetDeviceInformation`; Media2 `GetProfiles`
//! (`Type=All`, or the reply holds no encoder settings) else Media1 `GetProfiles`;
//! `GetStreamUri` per video profile (RTSP = RTP over RTSP over TCP); `GetSnapshotUri` for
//! the main profile.
//!
//! Like go2rtc (§3.1) there is no SOAP stack: requests are string templates with every
//! inserted value XML-escaped, replies are read with roxmltree by element local name,
//! whatever namespace prefixes (or SOAP version) a camera uses. HTTP is a small blocking
//! HTTP/1.1 client over a `TcpStream`, one connection per call, replies bounded to
//! [`MAX_RESPONSE_BYTES`], everything within the caller's deadline and stopped by its
//! [`Shutdown`].
//!
//! Authentication (§2.3): a WS-Security UsernameToken (PasswordDigest) whose `Created` is
//! the camera's time (camhub's clock plus the offset the camera told), so a camera whose
//! clock is off still accepts it. A camera that answers 401 with a Digest challenge gets
//! HTTP Digest (RFC 7616: SHA-256 preferred, MD5, `-sess`, qop=auth), first alone as the
//! ONVIF Core asks, then with the UsernameToken too if it still refuses (some want both).
//!
//! Returned addresses are not trusted (§2.5): service addresses and stream and snapshot
//! URIs get the host the user typed (cameras answer `0.0.0.0`, or their address behind a
//! NAT), keep their port and path, and lose any credentials. Errors are in plain words
//! ([`OnvifError::reason`]); none holds a credential or the body of a reply.

use crate::shutdown::Shutdown;
use base64::Engine as _;
use md5::Md5;
use serde::Serialize;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use url::Url;

/// How long `POST /api/onvif/streams` lets one camera take, all calls together.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(15);

/// The largest reply camhub reads from a camera (a GetProfiles reply of a 16-channel NVR
/// is ~200 KiB).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Profiles asked for a stream URI at most (an NVR may list one per channel and size).
const MAX_PROFILES: usize = 32;

/// Above this, a refused login may be the camera's clock rather than the password, and
/// the reason says so.
const CLOCK_WORTH_MENTIONING_SECS: i64 = 60;

/// The smallest width that makes a useful sub-stream for a phone grid tile.
pub const SUB_MIN_WIDTH: u32 = 320;

/// What a camera says about itself (`GetDeviceInformation`); empty where it does not.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeviceInfo {
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: String,
}

/// One media profile with a video encoder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    /// The camera's handle for the profile (`Profile_1`, `MainStreamToken`, …).
    pub token: String,
    /// The camera's name for it, or the token when it has none.
    pub name: String,
    /// `H264`, `H265`, `JPEG`, `MPEG4`, or whatever else the camera says, upper case.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// The encoder's frame rate limit, when the camera tells it.
    pub fps: Option<f64>,
    /// `rtsp://…` without credentials, with the host the user typed; None when the
    /// camera gave no stream URI for this profile.
    pub rtsp_url: Option<String>,
    /// Whether camhub can play it: H.264 or MJPEG, with an RTSP URL.
    pub supported: bool,
}

/// The answer for one camera.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OnvifStreams {
    pub device: DeviceInfo,
    /// In the camera's order.
    pub profiles: Vec<Profile>,
    /// A JPEG snapshot URL (HTTP, without credentials) for the main profile.
    pub snapshot_url: Option<String>,
    /// Index into `profiles`: the largest supported profile.
    pub main: Option<usize>,
    /// Index into `profiles`: the smallest supported profile at least [`SUB_MIN_WIDTH`]
    /// wide and smaller than `main`.
    pub sub: Option<usize>,
    /// The camera's clock minus camhub's, in seconds (0 when the camera did not tell).
    pub clock_offset_secs: i64,
}

/// Why a camera's streams could not be listed. [`OnvifError::reason`] says it in plain
/// words for the page.
#[derive(Clone, Debug, PartialEq)]
pub enum OnvifError {
    /// What was typed is not an address camhub can use.
    BadAddress(String),
    /// Nothing answered at `host` (`why`: connection refused, timed out, …).
    NoAnswer { host: String, why: String },
    /// Something answered at `host`, but not as an ONVIF device (`answered`: "HTTP 404",
    /// "with a web page, not SOAP", …). Never the body itself.
    NotOnvif { host: String, answered: String },
    /// The camera refused the login. When its clock is far off camhub's (seconds,
    /// camera minus camhub), the reason mentions it: camhub allowed for it, but a camera
    /// may check against a clock other than the one it reports.
    WrongCredentials { clock_offset_secs: Option<i64> },
    /// The camera said outright that the login is refused because of its clock.
    ClockFarOff { clock_offset_secs: Option<i64> },
    /// HTTP 403: this user may not use ONVIF, or ONVIF is turned off.
    Forbidden,
    /// The camera lists no video profiles at all.
    NoProfiles,
    /// Only profiles camhub cannot play (`found`: e.g. "H265 2560×1440").
    NoSupportedProfile { found: Vec<String> },
    /// A call the rest depends on failed (`detail`: a SOAP fault code, an HTTP status).
    Refused { call: &'static str, detail: String },
    /// The deadline passed before the camera finished answering.
    TimedOut { host: String, after: Duration },
    /// camhub is shutting down.
    Stopped,
}

impl OnvifError {
    /// The reason in plain words: no credential, no reply body.
    pub fn reason(&self) -> String {
        match self {
            OnvifError::BadAddress(why) => format!("not a camera address: {why}"),
            OnvifError::NoAnswer { host, why } => format!("no answer from {host}: {why}"),
            OnvifError::NotOnvif { host, answered } => format!(
                "{host} is not an ONVIF device (it answered {answered}); \
                 if it is a camera, ONVIF may be turned off in its settings"
            ),
            OnvifError::WrongCredentials { clock_offset_secs } => {
                let mut s = String::from("wrong user or password");
                if let Some(offset) = clock_offset_secs {
                    if offset.abs() >= CLOCK_WORTH_MENTIONING_SECS {
                        s.push_str(&format!(
                            " (or the camera's clock, which is {}, is too far off for \
                             it to accept the login: set the camera's clock)",
                            describe_offset(*offset)
                        ));
                    }
                }
                s
            }
            OnvifError::ClockFarOff { clock_offset_secs } => match clock_offset_secs {
                Some(offset) => format!(
                    "the camera's clock is far off ({}) and it refuses the login \
                     because of it: set the camera's clock",
                    describe_offset(*offset)
                ),
                None => "the camera refuses the login because of its clock: \
                         set the camera's clock"
                    .into(),
            },
            OnvifError::Forbidden => "the camera refused (HTTP 403): this user may not use \
                                      ONVIF, or ONVIF is turned off in the camera's settings"
                .into(),
            OnvifError::NoProfiles => "the camera lists no video profiles".into(),
            OnvifError::NoSupportedProfile { found } => format!(
                "no H.264 or MJPEG profile (the camera offers {}); set one of its \
                 streams to H.264 in its settings",
                found.join(", ")
            ),
            OnvifError::Refused { call, detail } => {
                format!("the camera refused {call}: {detail}")
            }
            OnvifError::TimedOut { host, after } => {
                format!("no answer from {host} within {} s", after.as_secs().max(1))
            }
            OnvifError::Stopped => "camhub is shutting down".into(),
        }
    }
}

impl std::fmt::Display for OnvifError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for OnvifError {}

/// "1 h 2 min ahead of camhub's", "45 s behind camhub's"; whole minutes from 10 min on
/// (the offset is only known to a second or so).
fn describe_offset(offset_secs: i64) -> String {
    let mut n = offset_secs.unsigned_abs();
    if n >= 600 {
        n = (n + 30) / 60 * 60;
    }
    let (d, h, m, s) = (n / 86_400, n / 3600 % 24, n / 60 % 60, n % 60);
    let amount = if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 && m > 0 {
        format!("{h} h {m} min")
    } else if h > 0 {
        format!("{h} h")
    } else if m > 0 && s > 0 {
        format!("{m} min {s} s")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{s} s")
    };
    let side = if offset_secs >= 0 {
        "ahead of"
    } else {
        "behind"
    };
    format!("{amount} {side} camhub's")
}

/// Lists the camera's profiles and RTSP URLs. `address` is what the user typed or
/// discovery found: `host`, `host:port`, or a device service URL (an XAddr,
/// `http://host[:port]/onvif/device_service`). Blocks for at most about `deadline`.
pub fn streams(
    address: &str,
    username: &str,
    password: &str,
    shutdown: &Shutdown,
    deadline: Duration,
) -> Result<OnvifStreams, OnvifError> {
    let device_url = device_url(address)?;
    let mut client = Client {
        user: username,
        password,
        shutdown,
        started: Instant::now(),
        budget: deadline,
        host: device_url.host_str().unwrap_or_default().to_string(),
        clock_offset_secs: None,
        created_offset_secs: 0,
        http_auth: HttpAuth::None,
        ws_security: true,
    };
    client.clock(&device_url)?;
    let services = client.services(&device_url)?;
    let device = client.device_info(&device_url)?;
    let (media, mut profiles, tokens) = client.profiles(&device_url, &services)?;
    for (profile, token) in profiles.iter_mut().zip(&tokens) {
        profile.rtsp_url = client.stream_uri(&media, token)?;
        profile.supported = is_playable(&profile.codec) && profile.rtsp_url.is_some();
    }
    let (main, sub) = choose(&profiles);
    if main.is_none() {
        return Err(OnvifError::NoSupportedProfile {
            found: profiles
                .iter()
                .map(|p| format!("{} {}×{}", p.codec, p.width, p.height))
                .collect(),
        });
    }
    let snapshot_token = main.map(|i| tokens[i].as_str());
    let snapshot_url = match snapshot_token {
        Some(token) => client.snapshot_uri(&media, token)?,
        None => None,
    };
    Ok(OnvifStreams {
        device,
        profiles,
        snapshot_url,
        main,
        sub,
        clock_offset_secs: client.clock_offset_secs.unwrap_or(0),
    })
}

/// H.264 and MJPEG: what camhub's RTSP source plays.
fn is_playable(codec: &str) -> bool {
    matches!(codec, "H264" | "JPEG")
}

/// Main = the largest supported profile (ties: the higher frame rate, then the first);
/// sub = the smallest supported one at least [`SUB_MIN_WIDTH`] wide and smaller than
/// main (a sub-stream the size of the main one saves nothing).
pub fn choose(profiles: &[Profile]) -> (Option<usize>, Option<usize>) {
    let area = |p: &Profile| u64::from(p.width) * u64::from(p.height);
    let fps = |p: &Profile| p.fps.unwrap_or(0.0);
    let mut main: Option<usize> = None;
    for (i, p) in profiles.iter().enumerate() {
        if !p.supported {
            continue;
        }
        main = match main {
            Some(m)
                if area(&profiles[m]) > area(p)
                    || (area(&profiles[m]) == area(p) && fps(&profiles[m]) >= fps(p)) =>
            {
                Some(m)
            }
            _ => Some(i),
        };
    }
    let Some(m) = main else {
        return (None, None);
    };
    let main_area = area(&profiles[m]);
    let mut sub: Option<usize> = None;
    for (i, p) in profiles.iter().enumerate() {
        if !p.supported || i == m || p.width < SUB_MIN_WIDTH || area(p) >= main_area {
            continue;
        }
        sub = match sub {
            Some(s)
                if area(&profiles[s]) < area(p)
                    || (area(&profiles[s]) == area(p) && fps(&profiles[s]) >= fps(p)) =>
            {
                Some(s)
            }
            _ => Some(i),
        };
    }
    (main, sub)
}

/// `host`, `host:port`, `[v6]:port` or an `http://` URL → the device service URL, without
/// credentials.
fn device_url(address: &str) -> Result<Url, OnvifError> {
    let address = address.trim();
    if address.is_empty() {
        return Err(OnvifError::BadAddress("it is empty".into()));
    }
    let with_scheme = if address.contains("://") {
        address.to_string()
    } else if address.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("http://[{address}]")
    } else {
        format!("http://{address}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| {
        OnvifError::BadAddress(format!("{} ({e})", crate::config::redact_url(address)))
    })?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(OnvifError::BadAddress(
                "camhub speaks ONVIF over http only; give the camera's http address".into(),
            ))
        }
        other => {
            return Err(OnvifError::BadAddress(format!(
                "an ONVIF address is http://…, not {other}://…"
            )))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(OnvifError::BadAddress("it has no host".into()));
    }
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/onvif/device_service");
    }
    url.set_fragment(None);
    Ok(url)
}

/// The service addresses a camera lists.
#[derive(Debug, Default)]
struct Services {
    media1: Option<Url>,
    media2: Option<Url>,
}

/// The media service that gave the profiles: the same one answers GetStreamUri.
enum Media {
    V1(Url),
    V2(Url),
}

/// HTTP-level credentials, once a camera has asked for them.
enum HttpAuth {
    None,
    Digest { challenge: Challenge, nc: u32 },
    Basic,
}

struct Client<'a> {
    user: &'a str,
    password: &'a str,
    shutdown: &'a Shutdown,
    started: Instant,
    budget: Duration,
    /// The host the user gave: every address the camera returns gets it.
    host: String,
    /// Camera minus camhub, when the camera told its time.
    clock_offset_secs: Option<i64>,
    /// What `Created` adds to camhub's clock: the offset, or 0 if the camera turned out
    /// to check against a clock other than the one it reports.
    created_offset_secs: i64,
    http_auth: HttpAuth,
    /// Whether authenticated calls carry the WS-Security UsernameToken.
    ws_security: bool,
}

/// How one SOAP call failed.
#[derive(Debug)]
enum CallError {
    /// No HTTP answer: connection refused, timed out, unreachable, unknown host.
    NoAnswer(String),
    /// An answer that is not HTTP.
    NotHttp,
    /// HTTP, but no SOAP envelope: the status.
    NotSoap {
        status: u16,
        html: bool,
    },
    Fault {
        codes: Vec<String>,
        reason: String,
    },
    Auth,
    ClockRefused,
    Forbidden,
    TimedOut,
    Stopped,
}

/// A SOAP reply's text (the envelope), parsed again where it is read.
#[derive(Debug)]
struct Reply(String);

impl Reply {
    fn doc(&self) -> roxmltree::Document<'_> {
        // Checked to parse in `classify`.
        roxmltree::Document::parse(&self.0).expect("checked when the reply arrived")
    }
}

impl Client<'_> {
    fn deadline(&self) -> Instant {
        self.started + self.budget
    }

    /// Time left, or why there is none.
    fn remaining(&self) -> Result<Duration, CallError> {
        if self.shutdown.is_triggered() {
            return Err(CallError::Stopped);
        }
        let left = self.deadline().saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CallError::TimedOut);
        }
        Ok(left)
    }

    fn error(&self, e: CallError, call: &'static str) -> OnvifError {
        match e {
            CallError::NoAnswer(why) => OnvifError::NoAnswer {
                host: self.host.clone(),
                why,
            },
            CallError::NotHttp => OnvifError::NotOnvif {
                host: self.host.clone(),
                answered: "in a protocol other than HTTP".into(),
            },
            CallError::NotSoap { status, html } => OnvifError::NotOnvif {
                host: self.host.clone(),
                answered: if html {
                    format!("HTTP {status} with a web page, not SOAP")
                } else {
                    format!("HTTP {status} without SOAP")
                },
            },
            CallError::Fault { codes, reason } => OnvifError::Refused {
                call,
                detail: describe_fault(&codes, &reason, &[self.password]),
            },
            CallError::Auth => OnvifError::WrongCredentials {
                clock_offset_secs: self.clock_offset_secs,
            },
            CallError::ClockRefused => OnvifError::ClockFarOff {
                clock_offset_secs: self.clock_offset_secs,
            },
            CallError::Forbidden => OnvifError::Forbidden,
            CallError::TimedOut => OnvifError::TimedOut {
                host: self.host.clone(),
                after: self.budget,
            },
            CallError::Stopped => OnvifError::Stopped,
        }
    }

    /// GetSystemDateAndTime, without credentials (PRE_AUTH), again with them if the
    /// camera wants them. A camera that does not tell its time still gets a chance.
    fn clock(&mut self, device: &Url) -> Result<(), OnvifError> {
        const CALL: &str = "GetSystemDateAndTime";
        let mut reply = self.call(
            device,
            DEVICE_NS,
            CALL,
            "<tds:GetSystemDateAndTime/>",
            false,
        );
        if matches!(reply, Err(CallError::Fault { .. } | CallError::Auth)) {
            reply = self.call(device, DEVICE_NS, CALL, "<tds:GetSystemDateAndTime/>", true);
        }
        let received = SystemTime::now();
        match reply {
            Ok(reply) => {
                if let Some(camera) = parse_utc_date_time(&reply.doc()) {
                    let local = received
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0);
                    // The camera's seconds are truncated: its time is half a second
                    // later on average.
                    let offset = (camera as f64 + 0.5 - local).round() as i64;
                    self.clock_offset_secs = Some(offset);
                    self.created_offset_secs = offset;
                }
                Ok(())
            }
            Err(e @ (CallError::Fault { .. } | CallError::Auth | CallError::ClockRefused)) => {
                tracing::debug!("onvif {}: no clock: {e:?}", self.host);
                Ok(())
            }
            Err(e) => Err(self.error(e, CALL)),
        }
    }

    /// GetServices, else GetCapabilities: where the Media2 and Media services are.
    fn services(&mut self, device: &Url) -> Result<Services, OnvifError> {
        let body = "<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability>\
                    </tds:GetServices>";
        let services_failed = match self.call(device, DEVICE_NS, "GetServices", body, true) {
            Ok(reply) => {
                let doc = reply.doc();
                let mut services = Services::default();
                for service in elements(doc.root(), "Service") {
                    let namespace = child_text(service, "Namespace").unwrap_or_default();
                    let Some(xaddr) = child_text(service, "XAddr") else {
                        continue;
                    };
                    let url = self.service_url(device, &xaddr);
                    match namespace.trim() {
                        MEDIA1_NS => services.media1 = Some(url),
                        MEDIA2_NS => services.media2 = Some(url),
                        _ => {}
                    }
                }
                if services.media1.is_some() || services.media2.is_some() {
                    return Ok(services);
                }
                None
            }
            Err(e @ (CallError::Fault { .. } | CallError::NotSoap { .. })) => Some(e),
            Err(e) => return Err(self.error(e, "GetServices")),
        };
        let body = "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>";
        match self.call(device, DEVICE_NS, "GetCapabilities", body, true) {
            Ok(reply) => {
                let doc = reply.doc();
                let media1 = elements(doc.root(), "Media")
                    .find_map(|m| child_text(m, "XAddr"))
                    .map(|xaddr| self.service_url(device, &xaddr));
                Ok(Services {
                    media1,
                    media2: None,
                })
            }
            // Neither call answered in SOAP.
            Err(CallError::NotSoap { .. })
                if matches!(services_failed, Some(CallError::NotSoap { .. })) =>
            {
                let e = services_failed.expect("matched");
                Err(self.error(e, "GetServices"))
            }
            // A camera that knows neither call but speaks SOAP: try Media at the device
            // address (many cameras serve every service there).
            Err(CallError::Fault { .. } | CallError::NotSoap { .. }) => Ok(Services::default()),
            Err(e) => Err(self.error(e, "GetCapabilities")),
        }
    }

    /// A service address from the camera, with the user's host (ONVIF Core allows a
    /// camera behind a NAT to return its local address; many return 0.0.0.0).
    fn service_url(&self, device: &Url, xaddr: &str) -> Url {
        // Some cameras list several addresses in one field.
        let first = xaddr
            .split_whitespace()
            .find(|a| a.starts_with("http://"))
            .or_else(|| xaddr.split_whitespace().next())
            .unwrap_or_default();
        match Url::parse(first) {
            Ok(url) if url.scheme() == "http" => {
                let mut url = url;
                let _ = url.set_host(Some(&self.host));
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url
            }
            // https (which camhub does not speak) or garbage: the path on the device's
            // own address, as go2rtc does.
            Ok(url) => {
                let mut out = device.clone();
                out.set_path(url.path());
                out
            }
            Err(_) => device.clone(),
        }
    }

    /// GetDeviceInformation: the first call that must be authenticated, so a wrong
    /// password shows here; a camera that refuses it for another reason is still used.
    fn device_info(&mut self, device: &Url) -> Result<DeviceInfo, OnvifError> {
        match self.call(
            device,
            DEVICE_NS,
            "GetDeviceInformation",
            "<tds:GetDeviceInformation/>",
            true,
        ) {
            Ok(reply) => {
                let doc = reply.doc();
                let field = |name| find_text(doc.root(), name).unwrap_or_default();
                Ok(DeviceInfo {
                    manufacturer: field("Manufacturer"),
                    model: field("Model"),
                    firmware: field("FirmwareVersion"),
                    serial: field("SerialNumber"),
                })
            }
            Err(CallError::Fault { .. } | CallError::NotSoap { .. }) => Ok(DeviceInfo::default()),
            Err(e) => Err(self.error(e, "GetDeviceInformation")),
        }
    }

    /// Media2 GetProfiles if the camera has Media2, else (or if it fails) Media1. Returns
    /// the profiles with a video encoder, and their tokens.
    fn profiles(
        &mut self,
        device: &Url,
        services: &Services,
    ) -> Result<(Media, Vec<Profile>, Vec<String>), OnvifError> {
        if let Some(url) = &services.media2 {
            let body = "<tr2:GetProfiles><tr2:Type>All</tr2:Type></tr2:GetProfiles>";
            match self.call(url, MEDIA2_NS, "GetProfiles", body, true) {
                Ok(reply) => {
                    let (profiles, tokens) = parse_profiles(&reply.doc());
                    if !profiles.is_empty() || services.media1.is_none() {
                        return finish_profiles(Media::V2(url.clone()), profiles, tokens);
                    }
                }
                Err(CallError::Fault { .. } | CallError::NotSoap { .. })
                    if services.media1.is_some() => {}
                Err(e) => return Err(self.error(e, "GetProfiles")),
            }
        }
        let url = services.media1.clone().unwrap_or_else(|| device.clone());
        match self.call(&url, MEDIA1_NS, "GetProfiles", "<trt:GetProfiles/>", true) {
            Ok(reply) => {
                let (profiles, tokens) = parse_profiles(&reply.doc());
                finish_profiles(Media::V1(url), profiles, tokens)
            }
            Err(e) => Err(self.error(e, "GetProfiles")),
        }
    }

    /// GetStreamUri for RTP over RTSP over TCP; None if the camera gives none for this
    /// profile. Media1 `RTP-Unicast` + `RTSP`, Media2 `RTSP` (§2.2); if the camera
    /// refuses that transport, the UDP one (retina still asks for TCP when it plays it).
    fn stream_uri(&mut self, media: &Media, token: &str) -> Result<Option<String>, OnvifError> {
        let token = xml_escape(token);
        let attempts: Vec<(&Url, &str, String)> = match media {
            Media::V2(url) => ["RTSP", "RtspUnicast"]
                .iter()
                .map(|protocol| {
                    let body = format!(
                        "<tr2:GetStreamUri><tr2:Protocol>{protocol}</tr2:Protocol>\
                         <tr2:ProfileToken>{token}</tr2:ProfileToken></tr2:GetStreamUri>"
                    );
                    (url, MEDIA2_NS, body)
                })
                .collect(),
            Media::V1(url) => ["RTSP", "UDP"]
                .iter()
                .map(|protocol| {
                    let body = format!(
                        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>\
                         <tt:Transport><tt:Protocol>{protocol}</tt:Protocol></tt:Transport>\
                         </trt:StreamSetup><trt:ProfileToken>{token}</trt:ProfileToken>\
                         </trt:GetStreamUri>"
                    );
                    (url, MEDIA1_NS, body)
                })
                .collect(),
        };
        for (url, ns, body) in attempts {
            match self.call(url, ns, "GetStreamUri", &body, true) {
                Ok(reply) => {
                    let doc = reply.doc();
                    return Ok(find_text(doc.root(), "Uri")
                        .filter(|u| !u.is_empty())
                        .map(|u| self.rehost(&u)));
                }
                Err(CallError::Fault { .. } | CallError::NotSoap { .. }) => continue,
                Err(e) => return Err(self.error(e, "GetStreamUri")),
            }
        }
        Ok(None)
    }

    /// GetSnapshotUri from the media service (not Imaging, as go2rtc does, §2.5); None
    /// if the camera has no snapshots.
    fn snapshot_uri(&mut self, media: &Media, token: &str) -> Result<Option<String>, OnvifError> {
        let token = xml_escape(token);
        let (url, ns, body) = match media {
            Media::V2(url) => (
                url,
                MEDIA2_NS,
                format!(
                    "<tr2:GetSnapshotUri><tr2:ProfileToken>{token}</tr2:ProfileToken>\
                     </tr2:GetSnapshotUri>"
                ),
            ),
            Media::V1(url) => (
                url,
                MEDIA1_NS,
                format!(
                    "<trt:GetSnapshotUri><trt:ProfileToken>{token}</trt:ProfileToken>\
                     </trt:GetSnapshotUri>"
                ),
            ),
        };
        match self.call(url, ns, "GetSnapshotUri", &body, true) {
            Ok(reply) => {
                let doc = reply.doc();
                Ok(find_text(doc.root(), "Uri")
                    .filter(|u| !u.is_empty())
                    .map(|u| self.rehost(&u)))
            }
            Err(CallError::Fault { .. } | CallError::NotSoap { .. } | CallError::Forbidden) => {
                Ok(None)
            }
            Err(e) => Err(self.error(e, "GetSnapshotUri")),
        }
    }

    /// A stream or snapshot URI from the camera: the user's host, its own port, path and
    /// query, no credentials.
    fn rehost(&self, uri: &str) -> String {
        let uri = uri.trim();
        match Url::parse(uri) {
            Ok(mut url) => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                if url.set_host(Some(&self.host)).is_err() {
                    return crate::config::redact_url(uri);
                }
                url.to_string()
            }
            Err(_) => crate::config::redact_url(uri),
        }
    }

    /// One SOAP call: `body` (one element, prefixes `tds`, `trt`, `tr2`, `tt`) in an
    /// envelope, POSTed to `url`; with credentials if `authenticate` or if the camera
    /// answers 401. Returns the reply envelope, or why not.
    fn call(
        &mut self,
        url: &Url,
        namespace: &str,
        action: &str,
        body: &str,
        authenticate: bool,
    ) -> Result<Reply, CallError> {
        let soap_action = format!("{namespace}/{action}");
        // Each round either ends the call or changes what is sent: at most one Digest
        // challenge taken, one stale nonce, one switch of the WS-Security header; then
        // one last try with camhub's own clock.
        let mut digest_tries = 0;
        let mut switched_ws = false;
        let mut basic_tried = false;
        loop {
            let with_ws = authenticate && self.ws_security;
            let envelope = self.envelope(body, with_ws);
            let authorization = self.authorization(url);
            let reply = self.post(url, &soap_action, authorization.as_deref(), &envelope)?;
            if reply.status == 401 {
                let challenges: Vec<Challenge> = reply
                    .www_authenticate
                    .iter()
                    .filter_map(|h| Challenge::parse(h))
                    .collect();
                if let Some(challenge) = Challenge::best(challenges) {
                    let retry = match &self.http_auth {
                        // The challenge this camera uses for this user: a refusal is the
                        // password, unless the nonce merely expired.
                        HttpAuth::Digest { .. } => challenge.stale || digest_tries == 0,
                        _ => true,
                    };
                    digest_tries += 1;
                    if retry && digest_tries <= 2 {
                        self.http_auth = HttpAuth::Digest { challenge, nc: 0 };
                        // ONVIF Core: not both levels at once; a camera that wants both
                        // says so with a fault, handled below.
                        self.ws_security = false;
                        continue;
                    }
                    return Err(CallError::Auth);
                }
                let basic = reply
                    .www_authenticate
                    .iter()
                    .any(|h| h.trim_start().to_ascii_lowercase().starts_with("basic"));
                if basic && !basic_tried {
                    basic_tried = true;
                    self.http_auth = HttpAuth::Basic;
                    continue;
                }
                return Err(CallError::Auth);
            }
            match classify(reply) {
                Err(CallError::Auth) if authenticate => {
                    // A camera behind Digest that also wants the UsernameToken.
                    if !self.ws_security
                        && !switched_ws
                        && !matches!(self.http_auth, HttpAuth::None)
                    {
                        switched_ws = true;
                        self.ws_security = true;
                        continue;
                    }
                    // A camera that checks `Created` against a clock other than the one
                    // it reports (e.g. local time reported as UTC): try camhub's own.
                    // Kept if it works, for the calls that follow.
                    if with_ws && self.created_offset_secs != 0 {
                        let offset = self.created_offset_secs;
                        self.created_offset_secs = 0;
                        let reply = self.call_once_more(url, &soap_action, body);
                        if reply.is_err() {
                            self.created_offset_secs = offset;
                        }
                        return reply;
                    }
                    return Err(CallError::Auth);
                }
                other => return other,
            }
        }
    }

    /// The same authenticated request with the current settings, no further fallbacks.
    fn call_once_more(
        &mut self,
        url: &Url,
        soap_action: &str,
        body: &str,
    ) -> Result<Reply, CallError> {
        let envelope = self.envelope(body, self.ws_security);
        let authorization = self.authorization(url);
        let reply = self.post(url, soap_action, authorization.as_deref(), &envelope)?;
        if reply.status == 401 {
            return Err(CallError::Auth);
        }
        classify(reply)
    }

    fn authorization(&mut self, url: &Url) -> Option<String> {
        match &mut self.http_auth {
            HttpAuth::None => None,
            HttpAuth::Basic => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", self.user, self.password))
            )),
            HttpAuth::Digest { challenge, nc } => {
                *nc += 1;
                let mut uri = url.path().to_string();
                if let Some(q) = url.query() {
                    uri.push('?');
                    uri.push_str(q);
                }
                let cnonce = hex(&random_bytes::<12>());
                Some(challenge.authorization(self.user, self.password, "POST", &uri, *nc, &cnonce))
            }
        }
    }

    fn envelope(&self, body: &str, with_ws: bool) -> String {
        let header = if with_ws {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let created = format_created(now + self.created_offset_secs);
            let nonce = random_bytes::<16>();
            format!(
                "<s:Header>{}</s:Header>",
                username_token(self.user, self.password, &nonce, &created)
            )
        } else {
            String::new()
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
             xmlns:tds=\"{DEVICE_NS}\" xmlns:trt=\"{MEDIA1_NS}\" xmlns:tr2=\"{MEDIA2_NS}\" \
             xmlns:tt=\"http://www.onvif.org/ver10/schema\">{header}<s:Body>{body}</s:Body>\
             </s:Envelope>"
        )
    }

    /// One HTTP/1.1 POST on a new connection.
    fn post(
        &self,
        url: &Url,
        soap_action: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> Result<HttpReply, CallError> {
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs = self.resolve(url, port)?;
        let mut stream = self.connect(&addrs)?;
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let mut request = format!(
            "POST {target} HTTP/1.1\r\nHost: {host_header}\r\n\
             Content-Type: application/soap+xml; charset=utf-8; action=\"{soap_action}\"\r\n\
             Content-Length: {}\r\nConnection: close\r\nUser-Agent: camhub\r\n",
            body.len()
        );
        if let Some(a) = authorization {
            request.push_str(&format!("Authorization: {a}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream
            .set_write_timeout(Some(self.remaining()?))
            .map_err(|e| CallError::NoAnswer(describe_io(&e)))?;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| classify_io(&e))?;
        read_reply(&mut stream, || self.remaining())
    }

    /// Addresses for the URL's host: IP literals directly, names on a helper thread that
    /// is waited for no longer than the deadline (a lookup can hang for long).
    fn resolve(&self, url: &Url, port: u16) -> Result<Vec<SocketAddr>, CallError> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]),
            Some(url::Host::Ipv6(ip)) => Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]),
            Some(url::Host::Domain(name)) => {
                let name = name.to_string();
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::Builder::new()
                    .name("onvif-lookup".into())
                    .spawn(move || {
                        let _ =
                            tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
                    })
                    .map_err(|e| CallError::NoAnswer(e.to_string()))?;
                loop {
                    let left = self.remaining()?;
                    match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                        Ok(Ok(addrs)) if !addrs.is_empty() => return Ok(addrs),
                        Ok(_) => return Err(CallError::NoAnswer("host not found".into())),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                            return Err(CallError::NoAnswer("host not found".into()))
                        }
                    }
                }
            }
            None => Err(CallError::NoAnswer("no host".into())),
        }
    }

    fn connect(&self, addrs: &[SocketAddr]) -> Result<TcpStream, CallError> {
        let mut last = CallError::NoAnswer("no address".into());
        for addr in addrs {
            // Short slices, so a shutdown is seen within a second.
            loop {
                let left = self.remaining()?;
                match TcpStream::connect_timeout(addr, left.min(Duration::from_secs(1))) {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(s);
                    }
                    // Until the deadline, which `remaining` reports.
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
                    Err(e) => {
                        last = classify_io(&e);
                        break;
                    }
                }
            }
        }
        Err(last)
    }
}

fn finish_profiles(
    media: Media,
    mut profiles: Vec<Profile>,
    mut tokens: Vec<String>,
) -> Result<(Media, Vec<Profile>, Vec<String>), OnvifError> {
    if profiles.is_empty() {
        return Err(OnvifError::NoProfiles);
    }
    profiles.truncate(MAX_PROFILES);
    tokens.truncate(MAX_PROFILES);
    Ok((media, profiles, tokens))
}

const DEVICE_NS: &str = "http://www.onvif.org/ver10/device/wsdl";
const MEDIA1_NS: &str = "http://www.onvif.org/ver10/media/wsdl";
const MEDIA2_NS: &str = "http://www.onvif.org/ver20/media/wsdl";

/// A raw HTTP reply: what `call` needs of it.
struct HttpReply {
    status: u16,
    www_authenticate: Vec<String>,
    content_type: String,
    body: Vec<u8>,
}

/// A reply → its envelope, or the fault / non-SOAP answer it is.
fn classify(reply: HttpReply) -> Result<Reply, CallError> {
    if reply.status == 403 {
        return Err(CallError::Forbidden);
    }
    let text = String::from_utf8_lossy(&reply.body);
    let text = text.trim_start_matches('\u{feff}').trim();
    let html = reply.content_type.to_ascii_lowercase().contains("html")
        || text
            .get(..15)
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("<!doctype html"))
        || text
            .get(..5)
            .is_some_and(|t| t.eq_ignore_ascii_case("<html"));
    let not_soap = CallError::NotSoap {
        status: reply.status,
        html,
    };
    let Ok(doc) = roxmltree::Document::parse(text) else {
        return Err(not_soap);
    };
    let root = doc.root_element();
    if root.tag_name().name() != "Envelope" {
        return Err(not_soap);
    }
    let Some(body) = child(root, "Body") else {
        return Err(not_soap);
    };
    if let Some(fault) = child(body, "Fault") {
        let (codes, reason) = fault_details(fault);
        return Err(fault_kind(codes, reason));
    }
    if !(200..300).contains(&reply.status) {
        return Err(not_soap);
    }
    Ok(Reply(text.to_string()))
}

/// A fault's codes (SOAP 1.2 `Code/Value`, `Subcode/Value`; SOAP 1.1 `faultcode`), local
/// parts only, and its reason text.
fn fault_details(fault: roxmltree::Node) -> (Vec<String>, String) {
    let codes = fault
        .descendants()
        .filter(|n| n.is_element() && matches!(n.tag_name().name(), "Value" | "faultcode"))
        .filter_map(|n| n.text())
        .map(|t| {
            let t = t.trim();
            t.rsplit(':').next().unwrap_or(t).to_string()
        })
        .collect();
    let reason = fault
        .descendants()
        .find(|n| n.is_element() && matches!(n.tag_name().name(), "Text" | "faultstring"))
        .and_then(|n| n.text())
        .unwrap_or_default()
        .trim()
        .to_string();
    (codes, reason)
}

/// Auth faults as HA classifies them (§2.3): a NotAuthorized-like subcode, or "auth" in
/// the reason; `MessageExpired` is the clock.
fn fault_kind(codes: Vec<String>, reason: String) -> CallError {
    const AUTH: [&str; 6] = [
        "NotAuthorized",
        "FailedAuthentication",
        "InvalidSecurity",
        "InvalidSecurityToken",
        "FailedCheck",
        "SecurityTokenUnavailable",
    ];
    if codes.iter().any(|c| c == "MessageExpired") {
        return CallError::ClockRefused;
    }
    if codes.iter().any(|c| AUTH.contains(&c.as_str()))
        || reason.to_ascii_lowercase().contains("auth")
    {
        return CallError::Auth;
    }
    CallError::Fault { codes, reason }
}

/// A fault for the user: its most specific code and a short reason, with any credential
/// removed (a camera might echo one).
fn describe_fault(codes: &[String], reason: &str, secrets: &[&str]) -> String {
    let code = codes
        .iter()
        .rev()
        .find(|c| !matches!(c.as_str(), "Sender" | "Receiver" | "Client" | "Server"))
        .or(codes.last())
        .cloned()
        .unwrap_or_else(|| "a SOAP fault".into());
    let mut reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        reason = reason.replace(secret, "***");
    }
    if reason.is_empty() {
        code
    } else {
        format!("{code} ({reason})")
    }
}

fn classify_io(e: &io::Error) -> CallError {
    CallError::NoAnswer(describe_io(e))
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            "the connection was reset".into()
        }
        io::ErrorKind::HostUnreachable => "host unreachable".into(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".into(),
        _ => e.to_string(),
    }
}

/// Reads one HTTP/1.1 reply (skipping 1xx), its body by Content-Length, chunked, or to
/// the end of the connection; at most [`MAX_RESPONSE_BYTES`].
fn read_reply(
    stream: &mut TcpStream,
    remaining: impl Fn() -> Result<Duration, CallError>,
) -> Result<HttpReply, CallError> {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut eof = false;
    let mut read_more = |buf: &mut Vec<u8>, eof: &mut bool| -> Result<(), CallError> {
        let left = remaining()?;
        let _ = stream.set_read_timeout(Some(left.min(Duration::from_millis(250))));
        match stream.read(&mut chunk) {
            Ok(0) => *eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(classify_io(&e)),
        }
        Ok(())
    };
    loop {
        // The head.
        let head_end = loop {
            if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
                return Err(CallError::NotHttp);
            }
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Err(CallError::NotHttp);
            }
            if eof {
                return Err(if buf.is_empty() {
                    CallError::NoAnswer("the connection closed without an answer".into())
                } else {
                    CallError::NotHttp
                });
            }
            read_more(&mut buf, &mut eof)?;
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        if !matches!(
            response.parse(&buf[..head_end]),
            Ok(httparse::Status::Complete(_))
        ) {
            return Err(CallError::NotHttp);
        }
        let status = response.code.unwrap_or(0);
        let header = |name: &str| {
            response
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
                .collect::<Vec<_>>()
        };
        if (100..200).contains(&status) {
            buf.drain(..head_end);
            continue;
        }
        let www_authenticate = header("WWW-Authenticate");
        let content_type = header("Content-Type")
            .into_iter()
            .next()
            .unwrap_or_default();
        let chunked = header("Transfer-Encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = header("Content-Length")
            .first()
            .and_then(|v| v.parse::<usize>().ok());
        if length.is_some_and(|l| l > MAX_RESPONSE_BYTES) {
            return Err(CallError::NotSoap {
                status,
                html: false,
            });
        }
        buf.drain(..head_end);
        let body = loop {
            if chunked {
                match decode_chunked(&buf) {
                    Chunked::Done(body) => break body,
                    Chunked::Bad => return Err(CallError::NotHttp),
                    Chunked::More => {}
                }
            } else if let Some(l) = length {
                if buf.len() >= l {
                    buf.truncate(l);
                    break std::mem::take(&mut buf);
                }
            } else if eof {
                break std::mem::take(&mut buf);
            }
            if buf.len() > MAX_RESPONSE_BYTES + 64 * 1024 {
                return Err(CallError::NotSoap {
                    status,
                    html: false,
                });
            }
            if eof {
                // Cut short: what arrived may still be a whole envelope.
                break std::mem::take(&mut buf);
            }
            read_more(&mut buf, &mut eof)?;
        };
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(CallError::NotSoap {
                status,
                html: false,
            });
        }
        return Ok(HttpReply {
            status,
            www_authenticate,
            content_type,
            body,
        });
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

enum Chunked {
    Done(Vec<u8>),
    More,
    Bad,
}

/// A whole chunked body (trailers ignored), or that more bytes are needed.
fn decode_chunked(mut data: &[u8]) -> Chunked {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return if data.len() > 1024 {
                Chunked::Bad
            } else {
                Chunked::More
            };
        };
        let line = String::from_utf8_lossy(&data[..line_end]);
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Chunked::Bad;
        };
        if size > MAX_RESPONSE_BYTES {
            return Chunked::Bad;
        }
        data = &data[line_end + 2..];
        if size == 0 {
            return Chunked::Done(out);
        }
        if data.len() < size + 2 {
            return Chunked::More;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The WS-Security header: UsernameToken with PasswordDigest
/// = Base64(SHA-1(nonce ‖ created ‖ password)) (§2.3).
fn username_token(user: &str, password: &str, nonce: &[u8], created: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "<wsse:Security s:mustUnderstand=\"1\" \
         xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" \
         xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\">\
         <wsse:UsernameToken><wsse:Username>{}</wsse:Username>\
         <wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest\">{}</wsse:Password>\
         <wsse:Nonce EncodingType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary\">{}</wsse:Nonce>\
         <wsu:Created>{}</wsu:Created></wsse:UsernameToken></wsse:Security>",
        xml_escape(user),
        password_digest(nonce, created, password),
        b64.encode(nonce),
        xml_escape(created),
    )
}

/// Base64(SHA-1(nonce ‖ created ‖ password)), the UsernameToken PasswordDigest.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        // Never seen on Linux; a nonce must still differ between requests.
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ i as u8;
        }
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `&`, `<`, `>`, `"`, `'` → entities, for every value put into a request.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum DigestHash {
    Md5,
    Sha256,
}

/// One `WWW-Authenticate: Digest …` challenge (RFC 7616).
#[derive(Clone, Debug, PartialEq)]
struct Challenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    hash: DigestHash,
    /// `MD5-sess` / `SHA-256-sess`.
    sess: bool,
    /// The algorithm as the camera named it, sent back as is.
    algorithm: Option<String>,
    /// qop=auth offered (else RFC 2069 style, no qop).
    qop_auth: bool,
    stale: bool,
}

impl Challenge {
    /// A Digest challenge with an algorithm camhub can do, else None.
    fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let params = auth_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let algorithm = get("algorithm");
        let (hash, sess) = match algorithm.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("MD5") => (DigestHash::Md5, false),
            Some("MD5-SESS") => (DigestHash::Md5, true),
            Some("SHA-256") => (DigestHash::Sha256, false),
            Some("SHA-256-SESS") => (DigestHash::Sha256, true),
            Some(_) => return None,
        };
        let qop = get("qop");
        let qop_auth = qop
            .as_deref()
            .is_some_and(|q| q.split(',').any(|v| v.trim().eq_ignore_ascii_case("auth")));
        if qop.is_some() && !qop_auth {
            return None; // auth-int only
        }
        Some(Challenge {
            realm: get("realm").unwrap_or_default(),
            nonce: get("nonce")?,
            opaque: get("opaque"),
            hash,
            sess,
            algorithm,
            qop_auth,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// SHA-256 before MD5 (RFC 7616 §3.7: the client uses the first it supports among
    /// those in preference order; cameras list SHA-256 first when they have it).
    fn best(mut challenges: Vec<Challenge>) -> Option<Challenge> {
        challenges.sort_by_key(|c| match c.hash {
            DigestHash::Sha256 => 0,
            DigestHash::Md5 => 1,
        });
        challenges.into_iter().next()
    }

    fn h(&self, data: &str) -> String {
        match self.hash {
            DigestHash::Md5 => hex(&Md5::digest(data.as_bytes())),
            DigestHash::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }

    /// The `response` value.
    fn response(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let mut ha1 = self.h(&format!("{user}:{}:{password}", self.realm));
        if self.sess {
            ha1 = self.h(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = self.h(&format!("{method}:{uri}"));
        if self.qop_auth {
            self.h(&format!(
                "{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}",
                self.nonce
            ))
        } else {
            self.h(&format!("{ha1}:{}:{ha2}", self.nonce))
        }
    }

    /// The `Authorization` header value.
    fn authorization(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let response = self.response(user, password, method, uri, nc, cnonce);
        let mut s = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\"",
            quote(user),
            quote(&self.realm),
            quote(&self.nonce),
            quote(uri)
        );
        if let Some(a) = &self.algorithm {
            s.push_str(&format!(", algorithm={a}"));
        }
        if self.qop_auth {
            s.push_str(&format!(
                ", qop=auth, nc={nc:08x}, cnonce=\"{}\"",
                quote(cnonce)
            ));
        }
        s.push_str(&format!(", response=\"{response}\""));
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{}\"", quote(o)));
        }
        s
    }
}

/// Escapes a quoted-string's `"` and `\`.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `k=v, k="quoted, with \"escapes\""` → pairs.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            return out;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            // Another scheme's name: this challenge ends.
            return out;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970 (UTC).
fn format_created(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The camera's UTC time from a GetSystemDateAndTime reply, seconds since 1970.
fn parse_utc_date_time(doc: &roxmltree::Document) -> Option<i64> {
    let utc = elements(doc.root(), "UTCDateTime").next()?;
    let num = |name: &str| -> Option<i64> { find_text(utc, name)?.parse().ok() };
    let (y, mo, d) = (num("Year")?, num("Month")?, num("Day")?);
    let (h, mi, s) = (num("Hour")?, num("Minute")?, num("Second")?);
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    Some(days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Profiles with a video encoder from a Media1 or Media2 GetProfiles reply, in order,
/// and their tokens; `rtsp_url` and `supported` are filled in later.
fn parse_profiles(doc: &roxmltree::Document) -> (Vec<Profile>, Vec<String>) {
    let mut profiles = Vec::new();
    let mut tokens = Vec::new();
    for node in elements(doc.root(), "Profiles") {
        let Some(token) = node
            .attribute("token")
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            continue;
        };
        // Media1: tt:VideoEncoderConfiguration; Media2: tr2:Configurations/tr2:VideoEncoder.
        let Some(encoder) = node.descendants().find(|n| {
            n.is_element()
                && matches!(
                    n.tag_name().name(),
                    "VideoEncoderConfiguration" | "VideoEncoder"
                )
        }) else {
            continue;
        };
        let codec = normalize_codec(&child_text(encoder, "Encoding").unwrap_or_default());
        let (width, height) = child(encoder, "Resolution")
            .map(|r| {
                let n = |name| {
                    child_text(r, name)
                        .and_then(|t| t.parse::<u32>().ok())
                        .unwrap_or(0)
                };
                (n("Width"), n("Height"))
            })
            .unwrap_or((0, 0));
        let fps = child(encoder, "RateControl")
            .and_then(|r| child_text(r, "FrameRateLimit"))
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f > 0.0);
        let name = child_text(node, "Name")
            .or_else(|| node.attribute("Name").map(str::to_string))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| token.to_string());
        profiles.push(Profile {
            token: token.to_string(),
            name,
            codec,
            width,
            height,
            fps,
            rtsp_url: None,
            supported: false,
        });
        tokens.push(token.to_string());
    }
    (profiles, tokens)
}

/// `H264`, `H.264`, `video/H264`, `avc` → `H264`; `H265`/`HEVC` → `H265`; `JPEG`/`MJPEG`
/// → `JPEG`; `MP4V-ES`/`MPV4-ES`/`MPEG4` → `MPEG4`.
fn normalize_codec(encoding: &str) -> String {
    let e = encoding.trim().to_ascii_uppercase();
    let e = e
        .strip_prefix("VIDEO/")
        .unwrap_or(&e)
        .replace(['.', ' '], "");
    match e.as_str() {
        "H264" | "AVC" => "H264".into(),
        "H265" | "HEVC" => "H265".into(),
        "JPEG" | "MJPEG" | "MJPG" => "JPEG".into(),
        "MPEG4" | "MP4V-ES" | "MPV4-ES" => "MPEG4".into(),
        "" => "unknown".into(),
        other => other.into(),
    }
}

/// Element descendants of `node` (itself included) with this local name.
fn elements<'a, 'input: 'a>(
    node: roxmltree::Node<'a, 'input>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> + 'a {
    node.descendants()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

/// The first child element with this local name.
fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// A child element's trimmed text.
fn child_text(node: roxmltree::Node, name: &str) -> Option<String> {
    child(node, name).map(|n| n.text().unwrap_or_default().trim().to_string())
}

/// The first descendant element's trimmed text.
fn find_text(node: roxmltree::Node, name: &str) -> Option<String> {
    elements(node, name)
        .next()
        .map(|n| n.text().unwrap_or_default().trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_token_digest_matches_the_onvif_programmers_guide() {
        let nonce = base64::engine::general_purpose::STANDARD
            .decode("LKqI6G/AikKCQrN0zqZFlg==")
            .unwrap();
        assert_eq!(
            password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
        let header = username_token("ad<min>", "userpassword", &nonce, "2010-09-16T07:50:45Z");
        assert!(header.contains("<wsse:Username>ad&lt;min&gt;</wsse:Username>"));
        assert!(header.contains(">tuOSpGlFlIXsozq4HFNeeGeFLEI=</wsse:Password>"));
        assert!(header.contains(">LKqI6G/AikKCQrN0zqZFlg==</wsse:Nonce>"));
        assert!(!header.contains("userpassword"));
        roxmltree::Document::parse(&format!(
            "<s:E xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">{header}</s:E>"
        ))
        .expect("well-formed");
    }

    /// RFC 7616 §3.9.1: the same request with MD5 and with SHA-256.
    #[test]
    fn http_digest_matches_rfc_7616() {
        let challenge = |alg: &str| {
            Challenge::parse(&format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                 algorithm={alg}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            ))
            .unwrap()
        };
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let md5 = challenge("MD5");
        assert_eq!(
            md5.response(
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                1,
                cnonce
            ),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let sha = challenge("SHA-256");
        assert_eq!(
            sha.response(
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                1,
                cnonce
            ),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let header = sha.authorization(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            1,
            cnonce,
        );
        assert_eq!(
            header,
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", uri=\"/dir/index.html\", \
             algorithm=SHA-256, qop=auth, nc=00000001, \
             cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", \
             response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        );
        assert!(!header.contains("Circle of Life"));
        // SHA-256 is chosen over MD5 whatever the order; unknown algorithms are skipped.
        assert_eq!(Challenge::best(vec![md5.clone(), sha.clone()]), Some(sha));
        assert!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256").is_none()
        );
        assert!(Challenge::parse("Basic realm=\"r\"").is_none());
        // RFC 2617 without qop (RFC 2069 response), MD5 by default.
        let old = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"",
        )
        .unwrap();
        assert!(!old.qop_auth && old.hash == DigestHash::Md5 && old.algorithm.is_none());
        let h = old.authorization("u", "p", "POST", "/onvif/device_service", 1, "c");
        assert!(!h.contains("qop") && !h.contains("algorithm"));
    }

    #[test]
    fn digest_params_parse_quotes_escapes_and_stop_at_another_scheme() {
        let p = auth_params("realm=\"a \\\"b\\\", c\", nonce=xyz ,stale=TRUE, Basic realm=\"x\"");
        assert_eq!(
            p,
            vec![
                ("realm".to_string(), "a \"b\", c".to_string()),
                ("nonce".to_string(), "xyz".to_string()),
                ("stale".to_string(), "TRUE".to_string()),
            ]
        );
        let c = Challenge::parse(
            "DIGEST realm=\"r\", nonce=\"n\", stale=true, algorithm=\"md5-sess\", qop=auth",
        )
        .unwrap();
        assert!(c.stale && c.sess && c.qop_auth && c.hash == DigestHash::Md5);
    }

    #[test]
    fn dates_round_trip_and_the_camera_clock_is_read() {
        assert_eq!(format_created(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_created(1_284_623_445), "2010-09-16T07:50:45Z");
        assert_eq!(format_created(951_782_400), "2000-02-29T00:00:00Z");
        for days in [-1000, 0, 10_956, 11_016, 19_000, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // Hikvision-shaped, odd prefixes, SOAP 1.2.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ns9="http://www.onvif.org/ver10/device/wsdl" xmlns:x="http://www.onvif.org/ver10/schema">
<env:Body><ns9:GetSystemDateAndTimeResponse><ns9:SystemDateAndTime>
<x:DateTimeType>Manual</x:DateTimeType><x:DaylightSavings>false</x:DaylightSavings>
<x:TimeZone><x:TZ>CST-8:00:00</x:TZ></x:TimeZone>
<x:UTCDateTime><x:Time><x:Hour>7</x:Hour><x:Minute>50</x:Minute><x:Second>45</x:Second></x:Time>
<x:Date><x:Year>2010</x:Year><x:Month>9</x:Month><x:Day>16</x:Day></x:Date></x:UTCDateTime>
<x:LocalDateTime><x:Time><x:Hour>15</x:Hour><x:Minute>50</x:Minute><x:Second>45</x:Second></x:Time>
<x:Date><x:Year>2010</x:Year><x:Month>9</x:Month><x:Day>16</x:Day></x:Date></x:LocalDateTime>
</ns9:SystemDateAndTime></ns9:GetSystemDateAndTimeResponse></env:Body></env:Envelope>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        assert_eq!(parse_utc_date_time(&doc), Some(1_284_623_445));
    }

    fn http(status: u16, content_type: &str, body: &str) -> HttpReply {
        HttpReply {
            status,
            www_authenticate: vec![],
            content_type: content_type.into(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn replies_are_classified_by_local_name_whatever_the_prefixes() {
        // SOAP 1.1 fault, Axis-like.
        let fault11 = r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>Sender not Authorized</faultstring></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
        assert!(matches!(
            classify(http(400, "text/xml", fault11)),
            Err(CallError::Auth)
        ));
        // SOAP 1.2 NotAuthorized subcode with an unhelpful reason.
        let fault12 = r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:t="http://www.onvif.org/ver10/error"><e:Body><e:Fault><e:Code><e:Value>e:Sender</e:Value><e:Subcode><e:Value>t:NotAuthorized</e:Value></e:Subcode></e:Code><e:Reason><e:Text xml:lang="en">The action requested requires authorization</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>"#;
        assert!(matches!(
            classify(http(400, "application/soap+xml", fault12)),
            Err(CallError::Auth)
        ));
        let expired = fault12.replace("t:NotAuthorized", "wsse:MessageExpired");
        assert!(matches!(
            classify(http(400, "", &expired)),
            Err(CallError::ClockRefused)
        ));
        let unsupported = r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><e:Fault><e:Code><e:Value>e:Receiver</e:Value><e:Subcode><e:Value>ter:ActionNotSupported</e:Value></e:Subcode></e:Code><e:Reason><e:Text>Optional Action Not Implemented</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>"#;
        match classify(http(500, "", unsupported)) {
            Err(CallError::Fault { codes, reason }) => {
                assert_eq!(
                    describe_fault(&codes, &reason, &["secret"]),
                    "ActionNotSupported (Optional Action Not Implemented)"
                );
            }
            other => panic!("{other:?}"),
        }
        // A web page, a 404 text, and an envelope-less XML document are not SOAP.
        let page = "<!DOCTYPE html><html><body>Router login</body></html>";
        assert!(matches!(
            classify(http(200, "text/html", page)),
            Err(CallError::NotSoap {
                status: 200,
                html: true
            })
        ));
        assert!(matches!(
            classify(http(404, "text/plain", "not found")),
            Err(CallError::NotSoap {
                status: 404,
                html: false
            })
        ));
        assert!(matches!(
            classify(http(200, "text/xml", "<config><a/></config>")),
            Err(CallError::NotSoap { .. })
        ));
        assert!(matches!(
            classify(http(403, "text/html", page)),
            Err(CallError::Forbidden)
        ));
        // A BOM and whitespace before the envelope are fine.
        let ok = "\u{feff}\n <s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body><x/></s:Body></s:Envelope>";
        assert!(classify(http(200, "application/soap+xml", ok)).is_ok());
    }

    #[test]
    fn fault_reasons_never_carry_a_credential() {
        let d = describe_fault(
            &["Sender".into(), "InvalidArgVal".into()],
            "bad value hunter22\nfor user",
            &["hunter22"],
        );
        assert_eq!(d, "InvalidArgVal (bad value ***for user)");
    }

    /// A Dahua-shaped Media1 reply (SOAP 1.1-era prefixes, nested Name elements, an
    /// audio-only profile) and a Media2 reply with an H.265 profile.
    #[test]
    fn profiles_parse_from_media1_and_media2_replies() {
        let media1 = r#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">
<s:Header/><s:Body><trt:GetProfilesResponse>
<trt:Profiles fixed="true" token="MediaProfile000"><tt:Name>MediaProfile_Channel1_MainStream</tt:Name>
<tt:VideoSourceConfiguration token="000"><tt:Name>VideoSourceConfig</tt:Name><tt:UseCount>2</tt:UseCount><tt:SourceToken>000</tt:SourceToken><tt:Bounds height="1080" width="1920" y="0" x="0"/></tt:VideoSourceConfiguration>
<tt:VideoEncoderConfiguration token="000"><tt:Name>VideoEncoderConfig_Channel1_MainStream</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>
<tt:Resolution><tt:Width>2688</tt:Width><tt:Height>1520</tt:Height></tt:Resolution><tt:Quality>4</tt:Quality>
<tt:RateControl><tt:FrameRateLimit>20</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>4096</tt:BitrateLimit></tt:RateControl>
<tt:H264><tt:GovLength>40</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264></tt:VideoEncoderConfiguration></trt:Profiles>
<trt:Profiles fixed="true" token="MediaProfile001"><tt:Name>MediaProfile_Channel1_SubStream1</tt:Name>
<tt:VideoEncoderConfiguration token="001"><tt:Name>sub</tt:Name><tt:Encoding>JPEG</tt:Encoding>
<tt:Resolution><tt:Width>704</tt:Width><tt:Height>576</tt:Height></tt:Resolution></tt:VideoEncoderConfiguration></trt:Profiles>
<trt:Profiles token="audio_only"><tt:Name>Audio</tt:Name><tt:AudioEncoderConfiguration token="a"><tt:Encoding>G711</tt:Encoding></tt:AudioEncoderConfiguration></trt:Profiles>
</trt:GetProfilesResponse></s:Body></s:Envelope>"#;
        let doc = roxmltree::Document::parse(media1).unwrap();
        let (profiles, tokens) = parse_profiles(&doc);
        assert_eq!(tokens, ["MediaProfile000", "MediaProfile001"]);
        assert_eq!(profiles[0].name, "MediaProfile_Channel1_MainStream");
        assert_eq!(
            (
                profiles[0].codec.as_str(),
                profiles[0].width,
                profiles[0].height,
                profiles[0].fps
            ),
            ("H264", 2688, 1520, Some(20.0))
        );
        assert_eq!(
            (
                profiles[1].codec.as_str(),
                profiles[1].width,
                profiles[1].fps
            ),
            ("JPEG", 704, None)
        );

        let media2 = r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:ns2="http://www.onvif.org/ver20/media/wsdl" xmlns:ns1="http://www.onvif.org/ver10/schema">
<SOAP-ENV:Body><ns2:GetProfilesResponse>
<ns2:Profiles token="Profile_3" fixed="false"><ns2:Name>hevc</ns2:Name><ns2:Configurations>
<ns2:VideoSource token="vs"><ns1:Name>vs</ns1:Name><ns1:SourceToken>s</ns1:SourceToken><ns1:Bounds x="0" y="0" width="2560" height="1440"/></ns2:VideoSource>
<ns2:VideoEncoder token="ve3" GovLength="50" Profile="Main"><ns1:Name>ve3</ns1:Name><ns1:UseCount>1</ns1:UseCount><ns1:Encoding>H265</ns1:Encoding>
<ns1:Resolution><ns1:Width>2560</ns1:Width><ns1:Height>1440</ns1:Height></ns1:Resolution>
<ns1:RateControl ConstantBitRate="false"><ns1:FrameRateLimit>25.000000</ns1:FrameRateLimit><ns1:BitrateLimit>6144</ns1:BitrateLimit></ns1:RateControl>
<ns1:Quality>5</ns1:Quality></ns2:VideoEncoder></ns2:Configurations></ns2:Profiles>
<ns2:Profiles token="t&amp;1"><ns2:Configurations><ns2:VideoEncoder token="v"><ns1:Encoding>video/H.264</ns1:Encoding><ns1:Resolution><ns1:Width>640</ns1:Width><ns1:Height>360</ns1:Height></ns1:Resolution></ns2:VideoEncoder></ns2:Configurations></ns2:Profiles>
</ns2:GetProfilesResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
        let doc = roxmltree::Document::parse(media2).unwrap();
        let (profiles, tokens) = parse_profiles(&doc);
        assert_eq!(tokens, ["Profile_3", "t&1"]);
        assert_eq!(
            (
                profiles[0].name.as_str(),
                profiles[0].codec.as_str(),
                profiles[0].width,
                profiles[0].fps
            ),
            ("hevc", "H265", 2560, Some(25.0))
        );
        assert_eq!(
            (profiles[1].name.as_str(), profiles[1].codec.as_str()),
            ("t&1", "H264")
        );
        assert_eq!(xml_escape("t&1<\"'>"), "t&amp;1&lt;&quot;&apos;&gt;");
    }

    fn profile(codec: &str, width: u32, height: u32, fps: Option<f64>) -> Profile {
        Profile {
            token: format!("{codec}{width}"),
            name: String::new(),
            codec: codec.into(),
            width,
            height,
            fps,
            rtsp_url: Some("rtsp://h/".into()),
            supported: is_playable(codec),
        }
    }

    #[test]
    fn main_is_the_largest_playable_and_sub_the_smallest_useful_one() {
        let ps = [
            profile("H264", 640, 360, Some(15.0)),
            profile("H265", 2560, 1440, None),
            profile("H264", 1920, 1080, Some(25.0)),
            profile("H264", 176, 144, None),
            profile("JPEG", 320, 240, None),
        ];
        assert_eq!(choose(&ps), (Some(2), Some(4)));
        // Same size: the higher frame rate is main; a sub as big as main is no sub.
        let same = [
            profile("H264", 1280, 720, Some(15.0)),
            profile("H264", 1280, 720, Some(30.0)),
        ];
        assert_eq!(choose(&same), (Some(1), None));
        // Only H.265, or nothing with a URL: nothing to suggest.
        assert_eq!(choose(&[profile("H265", 1920, 1080, None)]), (None, None));
        let mut no_url = profile("H264", 1920, 1080, None);
        no_url.supported = false;
        assert_eq!(choose(&[no_url]), (None, None));
        assert_eq!(choose(&[]), (None, None));
    }

    #[test]
    fn addresses_become_device_service_urls_without_credentials() {
        let u = |a: &str| device_url(a).map(|u| u.to_string());
        assert_eq!(
            u("192.168.1.64").unwrap(),
            "http://192.168.1.64/onvif/device_service"
        );
        assert_eq!(
            u(" cam.local:8080 ").unwrap(),
            "http://cam.local:8080/onvif/device_service"
        );
        assert_eq!(
            u("fe80::1").unwrap(),
            "http://[fe80::1]/onvif/device_service"
        );
        assert_eq!(
            u("[::1]:8000").unwrap(),
            "http://[::1]:8000/onvif/device_service"
        );
        assert_eq!(
            u("http://admin:pw@10.0.0.5:2020/onvif/service").unwrap(),
            "http://10.0.0.5:2020/onvif/service"
        );
        assert!(matches!(device_url(""), Err(OnvifError::BadAddress(_))));
        assert!(matches!(
            device_url("https://cam/onvif"),
            Err(OnvifError::BadAddress(_))
        ));
        let e = device_url("rtsp://a:secretpw@cam/").unwrap_err().reason();
        assert!(!e.contains("secretpw"), "{e}");
    }

    fn client(shutdown: &Shutdown) -> Client<'_> {
        Client {
            user: "u",
            password: "p",
            shutdown,
            started: Instant::now(),
            budget: Duration::from_secs(1),
            host: "192.168.1.64".into(),
            clock_offset_secs: None,
            created_offset_secs: 0,
            http_auth: HttpAuth::None,
            ws_security: true,
        }
    }

    #[test]
    fn returned_uris_get_the_users_host_and_lose_credentials() {
        let s = Shutdown::new();
        let c = client(&s);
        assert_eq!(
            c.rehost(" rtsp://0.0.0.0:554/Streaming/Channels/101?transportmode=unicast&profile=Profile_1\n"),
            "rtsp://192.168.1.64:554/Streaming/Channels/101?transportmode=unicast&profile=Profile_1"
        );
        assert_eq!(
            c.rehost("rtsp://admin:12345@10.0.0.7/cam/realmonitor?channel=1&subtype=0"),
            "rtsp://192.168.1.64/cam/realmonitor?channel=1&subtype=0"
        );
        assert_eq!(
            c.rehost("http://ipcam.local:80/snap.jpg"),
            "http://192.168.1.64/snap.jpg"
        );
        let device = Url::parse("http://192.168.1.64:8000/onvif/device_service").unwrap();
        assert_eq!(
            c.service_url(
                &device,
                "http://0.0.0.0:8000/onvif/Media http://[fe80::1]/onvif/Media"
            )
            .as_str(),
            "http://192.168.1.64:8000/onvif/Media"
        );
        assert_eq!(
            c.service_url(&device, "https://192.168.1.64/onvif/media2")
                .as_str(),
            "http://192.168.1.64:8000/onvif/media2"
        );
    }

    #[test]
    fn chunked_bodies_decode_whole_or_ask_for_more() {
        assert!(
            matches!(decode_chunked(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"), Chunked::Done(b) if b == b"hello world")
        );
        assert!(matches!(decode_chunked(b"5\r\nhel"), Chunked::More));
        assert!(matches!(decode_chunked(b"zz\r\n"), Chunked::Bad));
    }

    #[test]
    fn reasons_are_plain_and_mention_the_clock_when_it_matters() {
        let r = OnvifError::WrongCredentials {
            clock_offset_secs: Some(3600),
        }
        .reason();
        assert!(
            r.starts_with("wrong user or password") && r.contains("1 h ahead of camhub's"),
            "{r}"
        );
        let r = OnvifError::WrongCredentials {
            clock_offset_secs: Some(-2),
        }
        .reason();
        assert_eq!(r, "wrong user or password");
        let r = OnvifError::ClockFarOff {
            clock_offset_secs: Some(-(86_400 * 200 + 7200)),
        }
        .reason();
        assert!(r.contains("200 d 2 h behind camhub's"), "{r}");
        assert_eq!(describe_offset(90), "1 min 30 s ahead of camhub's");
        assert_eq!(describe_offset(3660), "1 h 1 min ahead of camhub's");
        assert_eq!(describe_offset(3599), "1 h ahead of camhub's");
        assert_eq!(describe_offset(-3601), "1 h behind camhub's");
    }
}
