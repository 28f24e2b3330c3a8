//! Configuration: the TOML file and the command line, merged and validated into one
//! [`Config`]. Every error names the key (and the line, for the file) it is about.

use crate::error::{Error, Result};
pub use crate::urls::parse_size;
use clap::Parser;
use serde::Deserialize;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Where `camhub` with no `--config` looks for its file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/camhub/camhub.toml";
/// Where camhub listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Display and mDNS name unless told otherwise.
pub const DEFAULT_NAME: &str = "camhub";

/// The command line. Anything given here wins over the file.
#[derive(Debug, Parser, Default)]
#[command(
    name = "camhub",
    version,
    about = "Serve every camera as MJPEG to any browser"
)]
pub struct Cli {
    /// Config file (TOML). Default: /etc/camhub/camhub.toml when it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port to listen on, e.g. 0.0.0.0:8080 or 127.0.0.1:0.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// No multicast on the LAN: no mDNS advertising and no camera discovery.
    #[arg(long)]
    pub no_mdns: bool,

    /// A stream as ID=URL (repeatable). Replaces the streams of the config file.
    #[arg(long = "source", value_name = "ID=URL")]
    pub sources: Vec<String>,

    /// Display and mDNS name (default: camhub).
    #[arg(long)]
    pub name: Option<String>,

    /// Validate the configuration, print a summary and exit (0 valid, 1 invalid).
    #[arg(long)]
    pub check_config: bool,

    /// List local V4L2 devices (cameras and skipped nodes) with their formats and sizes,
    /// then exit.
    #[arg(long)]
    pub list_devices: bool,

    /// Where camhub keeps what it saves (cameras added from the page, the admin
    /// password). Default: $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/camhub, else
    /// ~/.local/state/camhub.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The validated configuration everything else runs from.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Display name of the box, also its mDNS instance and host name.
    pub name: String,
    pub mdns_enabled: bool,
    /// `[discovery] enabled`: finding cameras on the LAN (WS-Discovery probes) when the
    /// page asks. Also off whenever mDNS is (`--no-mdns` means no multicast at all).
    pub discovery_enabled: bool,
    /// Interfaces to advertise on; empty means every non-loopback interface.
    pub mdns_interfaces: Vec<String>,
    /// Role LEDs and polarity; stream LEDs are on each stream.
    pub leds: LedConfig,
    /// A viewer whose socket accepts no data for this long is dropped.
    pub send_timeout: Duration,
    /// Open HTTP connections beyond this get a 503.
    pub max_connections: usize,
    /// MJPEG viewers (all streams) beyond this get a 503; below `max_connections` so the
    /// page and API stay reachable when viewers fill up.
    pub max_viewers: usize,
    /// HTTP Basic auth for every endpoint except `/healthz`, when set.
    pub auth: Option<Auth>,
    /// `[server] admin_password_hash`: the admin password as an argon2 PHC string; wins
    /// over one set from the page (`admin.toml`). Prints as `redacted`.
    pub admin_password_hash: Option<crate::admin::HashedPassword>,
    pub streams: Vec<StreamConfig>,
    /// The file the config came from, if any (for the summary and logs).
    pub file: Option<PathBuf>,
    /// camhub's own state directory (see `Cli::state_dir`); `None`: nothing can be saved
    /// (a config parsed without a command line, as in tests).
    pub state_dir: Option<PathBuf>,
    /// No streams were configured: local cameras found at startup and plugged in later
    /// are run (and the test pattern when there are none and nothing was saved).
    pub discover: bool,
}

/// The one user allowed in when `[server] auth` is set. Only digests are kept, so the
/// password is not in memory as text and comparisons take the same time whatever the
/// input.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    user_sha256: [u8; 32],
    password_sha256: [u8; 32],
}

impl Auth {
    /// Parses `user:password` or `user:sha256:<64 hex digits of sha256(password)>`.
    fn parse(value: &str) -> Result<Auth, String> {
        let (user, secret) = value
            .split_once(':')
            .ok_or("expected \"user:password\" or \"user:sha256:<hex>\"")?;
        if user.is_empty() || secret.is_empty() {
            return Err("user and password must not be empty".into());
        }
        let password_sha256 = match secret.strip_prefix("sha256:") {
            Some(hex) => parse_hex32(hex).ok_or(
                "sha256: must be followed by 64 hex digits (e.g. printf %s 'password' | sha256sum)",
            )?,
            None => sha256(secret.as_bytes()),
        };
        Ok(Auth {
            user_sha256: sha256(user.as_bytes()),
            password_sha256,
        })
    }

    /// True when `user`/`password` are the configured ones. Compares fixed-size digests
    /// without early exit, so the time taken says nothing about how close a guess was.
    pub fn accepts(&self, user: &str, password: &str) -> bool {
        let user_ok = constant_time_eq(&sha256(user.as_bytes()), &self.user_sha256);
        let password_ok = constant_time_eq(&sha256(password.as_bytes()), &self.password_sha256);
        user_ok & password_ok
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(redacted)")
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Status LEDs that are not tied to one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedConfig {
    /// LEDs wired between the pin and 3.3 V light when the pin is low.
    pub active_low: bool,
    /// BCM pin of the heartbeat LED (blinks while camhub runs).
    pub system: Option<u8>,
    /// BCM pin of the LED that is on while anyone watches any stream.
    pub viewers: Option<u8>,
}

/// What kind of source a stream URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Pattern,
    V4l2,
    Rtsp,
    HttpMjpeg,
    Exec,
}

impl SourceKind {
    /// The short name used in the API and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Pattern => "pattern",
            SourceKind::V4l2 => "v4l2",
            SourceKind::Rtsp => "rtsp",
            SourceKind::HttpMjpeg => "http",
            SourceKind::Exec => "exec",
        }
    }

    fn from_url(url: &str) -> Option<SourceKind> {
        let scheme = url.split(':').next()?.to_ascii_lowercase();
        Some(match scheme.as_str() {
            "pattern" => SourceKind::Pattern,
            "v4l2" => SourceKind::V4l2,
            "rtsp" | "rtsps" => SourceKind::Rtsp,
            "http" | "https" => SourceKind::HttpMjpeg,
            "exec" => SourceKind::Exec,
            _ => return None,
        })
    }
}

/// One camera or feed.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// URL-safe, unique: used in `/stream/{id}`.
    pub id: String,
    /// Shown on the page and in placeholders.
    pub name: String,
    /// The URL as configured. May hold credentials: never log or show it; use
    /// [`StreamConfig::redacted_url`].
    pub url: String,
    pub kind: SourceKind,
    /// BCM pin of this stream's status LED.
    pub led: Option<u8>,
    /// Frame-rate hint (sources that can choose use it).
    pub fps: Option<u32>,
    /// Frame-size hint (width, height).
    pub size: Option<(u32, u32)>,
    /// No frame for this long while connected means Stalled.
    pub stall_after: Duration,
    /// A disabled stream is listed but never started.
    pub enabled: bool,
    /// Credentials given as separate keys (they win over any in the URL). Never logged.
    pub username: Option<String>,
    pub password: Option<String>,
    /// RTSP transport: TCP interleaved (default, works through NAT and firewalls) or UDP.
    pub transport: Transport,
    /// The camera's smaller second stream, if it has one: it feeds the grid's small
    /// renditions, so the main stream (often H.264 that must be decoded) is only
    /// decoded while someone watches it full size. Same rules as `url`.
    pub sub_url: Option<String>,
    /// Credentials for `sub_url`; `username`/`password` apply when these are unset.
    pub sub_username: Option<String>,
    pub sub_password: Option<String>,
}

/// The keys of a stream that cameras saved from the page (`store.rs`) share with the
/// config file, for [`StreamConfig::from_parts`]: one set of rules for both. No `Debug`:
/// it holds passwords.
#[derive(Clone)]
pub struct StreamParts {
    pub id: String,
    /// `None`: the id is the name.
    pub name: Option<String>,
    pub url: String,
    pub sub_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub sub_username: Option<String>,
    pub sub_password: Option<String>,
    pub enabled: bool,
}

/// How RTSP media packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

impl StreamConfig {
    /// The URL with any user name and password removed, safe for logs, pages and the API.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// A stream with defaults for everything but id and URL (used by `--source`).
    pub fn new(id: &str, url: &str) -> Result<StreamConfig> {
        let at = format!("--source {id}=…");
        check_id(id).map_err(|msg| config_err(&at, msg))?;
        let kind = check_url(url).map_err(|msg| config_err(&at, msg))?;
        Ok(StreamConfig {
            id: id.to_string(),
            name: id.to_string(),
            url: url.to_string(),
            kind,
            led: None,
            fps: None,
            size: None,
            stall_after: DEFAULT_STALL_AFTER,
            enabled: true,
            username: None,
            password: None,
            transport: Transport::Tcp,
            sub_url: None,
            sub_username: None,
            sub_password: None,
        })
    }

    /// A stream from the keys a camera saved from the page has too (see [`StreamParts`]),
    /// checked by the rules of the config file's `[[stream]]` entries, which are built
    /// through here as well; everything else gets its default. `at(key)` says where a key
    /// is (`"id"`, `"url"`, `"sub_url"`) for the error, e.g. `camhub.toml:7: stream.url`.
    pub fn from_parts(parts: StreamParts, at: &dyn Fn(&str) -> String) -> Result<StreamConfig> {
        let StreamParts {
            id,
            name,
            url,
            sub_url,
            username,
            password,
            sub_username,
            sub_password,
            enabled,
        } = parts;
        check_id(&id).map_err(|m| config_err(&at("id"), m))?;
        let kind =
            check_url(&url).map_err(|m| config_err(&at("url"), format!("stream {id:?}: {m}")))?;
        if let Some(u) = &sub_url {
            check_url(u).map_err(|m| config_err(&at("sub_url"), format!("stream {id:?}: {m}")))?;
        }
        Ok(StreamConfig {
            name: name.unwrap_or_else(|| id.clone()),
            id,
            url,
            kind,
            led: None,
            fps: None,
            size: None,
            stall_after: DEFAULT_STALL_AFTER,
            enabled,
            username,
            password,
            transport: Transport::Tcp,
            sub_url,
            sub_username,
            sub_password,
        })
    }

    /// The sub-stream as a stream of its own (same id, so its thread is `src-<id>-sub`
    /// and its errors name the camera), or `None` without `sub_url`. The main stream's
    /// `size` cap and `fps` do not apply: the sub-stream is the small one already.
    pub fn sub_config(&self) -> Option<StreamConfig> {
        let url = self.sub_url.clone()?;
        Some(StreamConfig {
            kind: SourceKind::from_url(&url)?,
            url,
            led: None,
            fps: None,
            size: None,
            username: self.sub_username.clone().or_else(|| self.username.clone()),
            password: self.sub_password.clone().or_else(|| self.password.clone()),
            sub_url: None,
            sub_username: None,
            sub_password: None,
            ..self.clone()
        })
    }
}

/// Default stall watchdog: a connected source silent this long is torn down and retried.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(5);
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(20);
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Connections kept free of viewers by default, for the page, API and metrics.
const RESERVED_CONNECTIONS: usize = 64;

// ---- the file, as written -------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    mdns: FileMdns,
    #[serde(default)]
    leds: FileLeds,
    #[serde(default)]
    discovery: FileDiscovery,
    #[serde(default)]
    stream: Vec<FileStream>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileDiscovery {
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLeds {
    active_low: Option<bool>,
    system: Option<Spanned<u8>>,
    viewers: Option<Spanned<u8>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileServer {
    listen: Option<Spanned<String>>,
    send_timeout_secs: Option<Spanned<u64>>,
    max_connections: Option<Spanned<usize>>,
    max_viewers: Option<Spanned<usize>>,
    auth: Option<Spanned<String>>,
    admin_password_hash: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileMdns {
    enabled: Option<bool>,
    name: Option<Spanned<String>>,
    interfaces: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStream {
    id: Spanned<String>,
    name: Option<String>,
    url: Spanned<String>,
    led: Option<Spanned<u8>>,
    fps: Option<Spanned<u32>>,
    size: Option<Spanned<String>>,
    stall_after_secs: Option<Spanned<u64>>,
    enabled: Option<bool>,
    username: Option<String>,
    password: Option<String>,
    transport: Option<Transport>,
    sub_url: Option<Spanned<String>>,
    sub_username: Option<String>,
    sub_password: Option<String>,
}

impl Config {
    /// Builds the configuration from the command line (and the file it names, or the
    /// default file when that exists).
    pub fn load(cli: &Cli) -> Result<Config> {
        let (file, text) = match &cli.config {
            Some(path) => (Some(path.clone()), Some(read_file(path)?)),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                let path = PathBuf::from(DEFAULT_CONFIG_PATH);
                let text = read_file(&path)?;
                (Some(path), Some(text))
            }
            None => (None, None),
        };
        let mut config = match &text {
            Some(text) => Config::parse(text, file.as_deref())?,
            None => Config::parse("", None)?,
        };
        config.file = file;

        if let Some(listen) = &cli.listen {
            config.listen = parse_listen(listen).map_err(|msg| config_err("--listen", msg))?;
        }
        config.state_dir = match state_dir(cli.state_dir.as_deref()) {
            Ok(dir) => Some(dir),
            Err(e) => {
                tracing::warn!("cameras cannot be saved from the page: {e}");
                None
            }
        };
        if cli.no_mdns {
            config.mdns_enabled = false;
        }
        if let Some(name) = &cli.name {
            check_name(name).map_err(|msg| config_err("--name", msg))?;
            config.name = name.clone();
        }
        if !cli.sources.is_empty() {
            let mut streams = Vec::new();
            for arg in &cli.sources {
                let (id, url) = arg.split_once('=').ok_or_else(|| {
                    config_err(
                        "--source",
                        format!("expected ID=URL, got {:?}", redact_url(arg)),
                    )
                })?;
                streams.push(StreamConfig::new(id, url)?);
            }
            check_unique_ids(
                streams
                    .iter()
                    .map(|s| (s.id.as_str(), "--source".to_string())),
            )?;
            config.streams = streams;
        }
        // No streams configured: the cameras found (now and when plugged in later), and
        // those saved from the page; a test pattern when there are none (see `app.rs`).
        config.discover = config.streams.is_empty();
        Ok(config)
    }

    /// Parses and validates a config file's text. `path` is only used in messages.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Config> {
        let where_ = |line: Option<usize>, key: &str| match (path, line) {
            (Some(p), Some(l)) => format!("{}:{l}: {key}", p.display()),
            (None, Some(l)) => format!("line {l}: {key}"),
            (Some(p), None) => format!("{}: {key}", p.display()),
            (None, None) => key.to_string(),
        };
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let key = e.span().and_then(|s| key_at(text, s.start));
            Error::Config {
                at: where_(line, key.as_deref().unwrap_or("toml")),
                msg: e.message().to_string(),
            }
        })?;
        let err = |span: std::ops::Range<usize>, key: &str, msg: String| Error::Config {
            at: where_(Some(line_of(text, span.start)), key),
            msg,
        };

        let listen = match &file.server.listen {
            Some(s) => parse_listen(s.get_ref()).map_err(|m| err(s.span(), "server.listen", m))?,
            None => DEFAULT_LISTEN
                .parse()
                .expect("default listen address parses"),
        };
        let send_timeout = match &file.server.send_timeout_secs {
            Some(s) if *s.get_ref() == 0 || *s.get_ref() > 3600 => {
                return Err(err(
                    s.span(),
                    "server.send_timeout_secs",
                    "must be 1..=3600".into(),
                ))
            }
            Some(s) => Duration::from_secs(*s.get_ref()),
            None => DEFAULT_SEND_TIMEOUT,
        };
        let max_connections = match &file.server.max_connections {
            Some(n) if !(8..=65536).contains(n.get_ref()) => {
                return Err(err(
                    n.span(),
                    "server.max_connections",
                    "must be 8..=65536".into(),
                ))
            }
            Some(n) => *n.get_ref(),
            None => DEFAULT_MAX_CONNECTIONS,
        };
        let max_viewers = match &file.server.max_viewers {
            Some(n) if *n.get_ref() == 0 || *n.get_ref() >= max_connections => {
                return Err(err(
                    n.span(),
                    "server.max_viewers",
                    format!("must be 1..{max_connections} (below max_connections)"),
                ))
            }
            Some(n) => *n.get_ref(),
            None => max_connections
                .saturating_sub(RESERVED_CONNECTIONS)
                .max(max_connections / 2),
        };
        let auth = match &file.server.auth {
            Some(a) => Some(Auth::parse(a.get_ref()).map_err(|m| err(a.span(), "server.auth", m))?),
            None => None,
        };
        let admin_password_hash = match &file.server.admin_password_hash {
            Some(h) => Some(
                crate::admin::HashedPassword::parse(h.get_ref())
                    .map_err(|m| err(h.span(), "server.admin_password_hash", m))?,
            ),
            None => None,
        };
        let name = match &file.mdns.name {
            Some(s) => {
                check_name(s.get_ref()).map_err(|m| err(s.span(), "mdns.name", m))?;
                s.get_ref().clone()
            }
            None => DEFAULT_NAME.to_string(),
        };

        let mut streams = Vec::new();
        let mut pins = HashSet::new();
        let mut role_pin = |pin: &Option<Spanned<u8>>, key: &str| -> Result<Option<u8>> {
            match pin {
                Some(p) if *p.get_ref() > 27 => {
                    Err(err(p.span(), key, "BCM pin must be 0..=27".into()))
                }
                Some(p) if !pins.insert(*p.get_ref()) => Err(err(
                    p.span(),
                    key,
                    format!("pin {} is used twice", p.get_ref()),
                )),
                Some(p) => Ok(Some(*p.get_ref())),
                None => Ok(None),
            }
        };
        let leds = LedConfig {
            active_low: file.leds.active_low.unwrap_or(false),
            system: role_pin(&file.leds.system, "leds.system")?,
            viewers: role_pin(&file.leds.viewers, "leds.viewers")?,
        };
        for s in &file.stream {
            let id = s.id.get_ref();
            let at = |key: &str| {
                let span = match key {
                    "id" => s.id.span(),
                    "sub_url" => s.sub_url.as_ref().map_or(s.url.span(), Spanned::span),
                    _ => s.url.span(),
                };
                where_(Some(line_of(text, span.start)), &format!("stream.{key}"))
            };
            let parts = StreamParts {
                id: id.clone(),
                name: s.name.clone(),
                url: s.url.get_ref().clone(),
                sub_url: s.sub_url.as_ref().map(|u| u.get_ref().clone()),
                username: s.username.clone(),
                password: s.password.clone(),
                sub_username: s.sub_username.clone(),
                sub_password: s.sub_password.clone(),
                enabled: s.enabled.unwrap_or(true),
            };
            let mut stream = StreamConfig::from_parts(parts, &at)?;
            let led = match &s.led {
                Some(pin) if *pin.get_ref() > 27 => {
                    return Err(err(
                        pin.span(),
                        "stream.led",
                        format!("stream {id:?}: BCM pin must be 0..=27"),
                    ))
                }
                Some(pin) if !pins.insert(*pin.get_ref()) => {
                    return Err(err(
                        pin.span(),
                        "stream.led",
                        format!("stream {id:?}: pin {} is used twice", pin.get_ref()),
                    ))
                }
                Some(pin) => Some(*pin.get_ref()),
                None => None,
            };
            let fps = match &s.fps {
                Some(f) if !(1..=120).contains(f.get_ref()) => {
                    return Err(err(
                        f.span(),
                        "stream.fps",
                        format!("stream {id:?}: must be 1..=120"),
                    ))
                }
                Some(f) => Some(*f.get_ref()),
                None => None,
            };
            let size =
                match &s.size {
                    Some(sz) => Some(parse_size(sz.get_ref()).map_err(|m| {
                        err(sz.span(), "stream.size", format!("stream {id:?}: {m}"))
                    })?),
                    None => None,
                };
            let stall_after = match &s.stall_after_secs {
                Some(v) if *v.get_ref() == 0 || *v.get_ref() > 600 => {
                    return Err(err(
                        v.span(),
                        "stream.stall_after_secs",
                        format!("stream {id:?}: must be 1..=600"),
                    ))
                }
                Some(v) => Duration::from_secs(*v.get_ref()),
                None => DEFAULT_STALL_AFTER,
            };
            stream.led = led;
            stream.fps = fps;
            stream.size = size;
            stream.stall_after = stall_after;
            stream.transport = s.transport.unwrap_or_default();
            streams.push(stream);
        }
        check_unique_ids(file.stream.iter().map(|s| {
            (
                s.id.get_ref().as_str(),
                where_(Some(line_of(text, s.id.span().start)), "stream.id"),
            )
        }))?;

        Ok(Config {
            listen,
            name,
            mdns_enabled: file.mdns.enabled.unwrap_or(true),
            discovery_enabled: file.discovery.enabled.unwrap_or(true),
            mdns_interfaces: file.mdns.interfaces.clone().unwrap_or_default(),
            leds,
            send_timeout,
            max_connections,
            max_viewers,
            auth,
            admin_password_hash,
            streams,
            file: path.map(Path::to_path_buf),
            state_dir: None,
            discover: false,
        })
    }

    /// A human-readable summary for `--check-config` (URLs redacted).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        match &self.file {
            Some(f) => out.push_str(&format!("config: {}\n", f.display())),
            None => out.push_str("config: defaults (no file)\n"),
        }
        out.push_str(&format!("listen: {}\n", self.listen));
        out.push_str(&format!(
            "HTTP auth: {}\n",
            if self.auth.is_some() { "on" } else { "off" }
        ));
        out.push_str(&format!(
            "name: {} (mDNS {})\n",
            self.name,
            if self.mdns_enabled { "on" } else { "off" }
        ));
        out.push_str(&format!("streams: {}\n", self.streams.len()));
        for s in &self.streams {
            out.push_str(&format!(
                "  {} {:?} {} {}{}{}\n",
                s.id,
                s.name,
                s.kind.as_str(),
                s.redacted_url(),
                s.led.map(|p| format!(" led=BCM{p}")).unwrap_or_default(),
                if s.enabled { "" } else { " (disabled)" }
            ));
            if let Some(sub) = s.sub_config() {
                out.push_str(&format!(
                    "    sub-stream: {} {}\n",
                    sub.kind.as_str(),
                    sub.redacted_url()
                ));
            }
        }
        out
    }
}

/// The stream camhub shows when nothing else is configured or found, so there is always
/// something to see.
pub fn default_pattern_stream() -> StreamConfig {
    let mut s = StreamConfig::new("test", "pattern:").expect("built-in pattern stream is valid");
    s.name = "Test pattern".to_string();
    s
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading config file {}", path.display()), e))
}

fn config_err(at: &str, msg: impl Into<String>) -> Error {
    Error::Config {
        at: at.to_string(),
        msg: msg.into(),
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not ADDR:PORT (e.g. 0.0.0.0:8080 or [::]:8080)"))
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("id {id:?} must be 1 to 64 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "id {id:?} may only use letters, digits, '-' and '_' (it is part of URLs)"
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!("name {name:?} must be 1 to 63 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || name.starts_with('-') {
        return Err(format!(
            "name {name:?} may only use letters, digits and '-' (it becomes <name>.local)"
        ));
    }
    Ok(())
}

fn check_unique_ids<'a>(ids: impl Iterator<Item = (&'a str, String)>) -> Result<()> {
    let mut seen = HashSet::new();
    for (id, at) in ids {
        if !seen.insert(id) {
            return Err(config_err(&at, format!("stream id {id:?} is used twice")));
        }
    }
    Ok(())
}

/// Checks the scheme and the parts each kind needs; returns the kind.
fn check_url(url: &str) -> Result<SourceKind, String> {
    let kind = SourceKind::from_url(url).ok_or_else(|| {
        format!(
            "unknown URL scheme in {:?} (use pattern:, v4l2://, rtsp://, http://, exec:)",
            redact_url(url)
        )
    })?;
    match kind {
        SourceKind::Pattern => {
            crate::urls::PatternOptions::parse(url)?;
        }
        SourceKind::Rtsp | SourceKind::HttpMjpeg => {
            // `http:user:pw@host` parses as a URL with credentials, but only the
            // `scheme://` form is redacted everywhere it is shown: insist on it (and do not
            // echo a URL that may hold a password in a form we cannot redact).
            let scheme = &url[..url.find(':').unwrap_or(url.len())];
            if !url[scheme.len()..].starts_with("://") {
                return Err(format!(
                    "write the URL as {}://HOST[:PORT]/PATH",
                    scheme.to_ascii_lowercase()
                ));
            }
            let parsed =
                url::Url::parse(url).map_err(|e| format!("bad URL {:?}: {e}", redact_url(url)))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(format!("URL {:?} has no host", redact_url(url)));
            }
        }
        SourceKind::V4l2 => {
            let path = url.trim_start_matches("v4l2:").trim_start_matches("//");
            if !path.starts_with('/') {
                return Err(format!(
                    "expected v4l2:///dev/videoN, got {:?}",
                    redact_url(url)
                ));
            }
        }
        SourceKind::Exec => {
            if url["exec:".len()..].trim().is_empty() {
                return Err(
                    "exec: needs a command, e.g. exec:rpicam-vid -t 0 --codec mjpeg -o -".into(),
                );
            }
        }
    }
    Ok(kind)
}

/// The dotted key a TOML error at byte `offset` is about, so errors from the TOML parser
/// (wrong type, duplicate key, unknown field) name it like our own checks do: the `key =`
/// on that line within the table whose header is above it (`server.listen`), or the table
/// of a header line (`mdns`). None when the line has neither (inside a multi-line array).
pub(crate) fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    if let Some(table) = table_header(line) {
        return Some(table);
    }
    let key = line.split_once('=')?.0.trim().trim_matches(['"', '\'']);
    if key.is_empty() {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .find_map(|l| table_header(l.trim()));
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

/// `server` for a `[server]` line, `stream` for `[[stream]]`.
fn table_header(line: &str) -> Option<String> {
    let inner = match line.strip_prefix("[[") {
        Some(rest) => rest.split_once("]]")?.0,
        None => line.strip_prefix('[')?.split_once(']')?.0,
    };
    Some(inner.trim().to_string())
}

/// The state directory from its possible sources, first one set wins: `--state-dir`,
/// `$STATE_DIRECTORY` (systemd's `StateDirectory=`; the first of its colon-separated
/// paths), `$XDG_STATE_HOME/camhub` (absolute only, as the XDG spec says), then
/// `$HOME/.local/state/camhub`. Empty values count as unset. Pure, so it is testable; see
/// [`state_dir`] for the one that reads the environment.
pub fn state_dir_from(
    flag: Option<&Path>,
    state_directory: Option<&OsStr>,
    xdg_state_home: Option<&OsStr>,
    home: Option<&OsStr>,
) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    fn non_empty(v: Option<&OsStr>) -> Option<&OsStr> {
        v.filter(|v| !v.is_empty())
    }
    if let Some(flag) = flag.filter(|p| !p.as_os_str().is_empty()) {
        return Some(flag.to_path_buf());
    }
    if let Some(dirs) = non_empty(state_directory) {
        let first = dirs.as_bytes().split(|&b| b == b':').next().unwrap_or(&[]);
        if !first.is_empty() {
            return Some(PathBuf::from(OsStr::from_bytes(first)));
        }
    }
    if let Some(xdg) = non_empty(xdg_state_home).map(Path::new) {
        if xdg.is_absolute() {
            return Some(xdg.join("camhub"));
        }
    }
    non_empty(home).map(|h| Path::new(h).join(".local/state/camhub"))
}

/// [`state_dir_from`] with the values of this process's environment. An error when none
/// of them is set (a service without `StateDirectory=` and without `$HOME`).
pub fn state_dir(flag: Option<&Path>) -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name);
    let (sd, xdg, home) = (var("STATE_DIRECTORY"), var("XDG_STATE_HOME"), var("HOME"));
    state_dir_from(flag, sd.as_deref(), xdg.as_deref(), home.as_deref()).ok_or_else(|| {
        Error::Config {
            at: "--state-dir".into(),
            msg: "no state directory: pass --state-dir, or set STATE_DIRECTORY \
                  (systemd StateDirectory=), XDG_STATE_HOME or HOME"
                .into(),
        }
    })
}

/// Removes `user:password@` from every `scheme://user:password@host` in `s`, so URLs and
/// commands holding credentials can be logged and shown.
pub fn redact_url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => rest = &tail[at + 1..],
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> String {
        Config::parse(text, Some(Path::new("cam.toml")))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("", None).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.name, "camhub");
        assert!(c.mdns_enabled);
        assert!(c.streams.is_empty());
    }

    #[test]
    fn full_file_parses() {
        let c = Config::parse(
            r#"
[server]
listen = "127.0.0.1:9000"
[mdns]
enabled = false
name = "garage"
[[stream]]
id = "door"
name = "Front door"
url = "rtsp://admin:hunter2@10.0.0.5/stream1"
led = 17
fps = 10
size = "1280x720"
stall_after_secs = 8
[[stream]]
id = "test"
url = "pattern:?size=320x240&fps=5"
enabled = false
"#,
            None,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.name, "garage");
        assert!(!c.mdns_enabled);
        assert_eq!(c.streams.len(), 2);
        let door = &c.streams[0];
        assert_eq!(door.kind, SourceKind::Rtsp);
        assert_eq!(door.led, Some(17));
        assert_eq!(door.size, Some((1280, 720)));
        assert_eq!(door.stall_after, Duration::from_secs(8));
        assert_eq!(door.redacted_url(), "rtsp://10.0.0.5/stream1");
        assert_eq!(c.streams[1].name, "test");
        assert!(!c.streams[1].enabled);
        assert!(!c.summary().contains("hunter2"));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse_err("[server]\nlisten = \"0.0.0.0:1\"\nlisen = 3\n");
        assert!(e.contains("cam.toml:3"), "{e}");
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn unknown_scheme_names_stream_and_line() {
        let e = parse_err("[[stream]]\nid = \"a\"\nurl = \"ftp://x/y\"\n");
        assert!(e.contains("cam.toml:3: stream.url"), "{e}");
        assert!(e.contains("\"a\""), "{e}");
        assert!(e.contains("unknown URL scheme"), "{e}");
    }

    #[test]
    fn duplicate_id_is_an_error() {
        let e = parse_err(
            "[[stream]]\nid = \"a\"\nurl = \"pattern:\"\n[[stream]]\nid = \"a\"\nurl = \"pattern:\"\n",
        );
        assert!(e.contains("cam.toml:5: stream.id"), "{e}");
        assert!(e.contains("used twice"), "{e}");
    }

    #[test]
    fn bad_id_is_an_error() {
        let e = parse_err("[[stream]]\nid = \"a b/c\"\nurl = \"pattern:\"\n");
        assert!(e.contains("stream.id"), "{e}");
        assert!(e.contains("cam.toml:2"), "{e}");
    }

    #[test]
    fn duplicate_led_pin_is_an_error() {
        let e = parse_err(
            "[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nled = 4\n[[stream]]\nid = \"b\"\nurl = \"pattern:\"\nled = 4\n",
        );
        assert!(e.contains("cam.toml:8: stream.led"), "{e}");
        assert!(e.contains("used twice"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(parse_err("[server]\nlisten = \"nope\"\n").contains("cam.toml:2: server.listen"));
        assert!(
            parse_err("[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nsize = \"big\"\n")
                .contains("cam.toml:4: stream.size")
        );
        assert!(
            parse_err("[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nfps = 0\n")
                .contains("cam.toml:4: stream.fps")
        );
        assert!(
            parse_err("[[stream]]\nid = \"a\"\nurl = \"pattern:?size=1x1\"\n")
                .contains("cam.toml:3: stream.url")
        );
        assert!(parse_err("[[stream]]\nid = \"a\"\nurl = \"rtsp://\"\n").contains("stream.url"));
        assert!(parse_err("[[stream]]\nid = \"a\"\n").contains("url"));
        assert!(parse_err("this is not toml").contains("cam.toml:1"));
    }

    #[test]
    fn bad_url_error_hides_credentials() {
        let e = parse_err("[[stream]]\nid = \"a\"\nurl = \"gopher://me:secret@h/x\"\n");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn cli_overrides_and_sources_replace_file_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[[stream]]\nid = \"file\"\nurl = \"pattern:\"\n").unwrap();
        let cli = Cli {
            config: Some(path),
            listen: Some("127.0.0.1:0".into()),
            no_mdns: true,
            sources: vec!["a=pattern:?fps=5".into(), "b=rtsp://u:p@h/s".into()],
            name: Some("shed".into()),
            check_config: false,
            list_devices: false,
            state_dir: Some(dir.path().join("state")),
        };
        let c = Config::load(&cli).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert!(!c.mdns_enabled);
        assert_eq!(c.name, "shed");
        assert_eq!(c.state_dir, Some(dir.path().join("state")));
        let ids: Vec<_> = c.streams.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn cli_source_errors() {
        let cli = |s: &str| Cli {
            sources: vec![s.into()],
            ..Cli::default()
        };
        let e = Config::load(&cli("novalue")).unwrap_err().to_string();
        assert!(e.contains("--source") && e.contains("ID=URL"), "{e}");
        let e = Config::load(&cli("x=nope:1")).unwrap_err().to_string();
        assert!(e.contains("--source x="), "{e}");
        let cli2 = Cli {
            sources: vec!["x=pattern:".into(), "x=pattern:".into()],
            ..Cli::default()
        };
        assert!(Config::load(&cli2)
            .unwrap_err()
            .to_string()
            .contains("used twice"));
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let cli = Cli {
            config: Some("/nonexistent/camhub.toml".into()),
            ..Cli::default()
        };
        let e = Config::load(&cli).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/camhub.toml"), "{e}");
    }

    #[test]
    fn no_streams_means_local_cameras() {
        let c = Config::load(&Cli {
            config: Some(tempfile::NamedTempFile::new().unwrap().path().to_path_buf()),
            ..Cli::default()
        })
        .unwrap();
        assert!(
            c.discover,
            "cameras found now and plugged in later are added"
        );
        assert!(c.streams.is_empty());
        let configured = Config::load(&Cli {
            sources: vec!["a=pattern:".into()],
            ..Cli::default()
        })
        .unwrap();
        assert!(!configured.discover);
    }

    #[test]
    fn led_roles_share_the_pin_check_with_streams() {
        let c = Config::parse(
            "[leds]\nactive_low = true\nsystem = 26\nviewers = 19\n[mdns]\ninterfaces = [\"wlan0\"]\n",
            None,
        )
        .unwrap();
        assert_eq!(
            c.leds,
            LedConfig {
                active_low: true,
                system: Some(26),
                viewers: Some(19)
            }
        );
        assert_eq!(c.mdns_interfaces, ["wlan0"]);
        let e =
            parse_err("[leds]\nsystem = 5\n[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nled = 5\n");
        assert!(
            e.contains("cam.toml:6: stream.led") && e.contains("used twice"),
            "{e}"
        );
        let e = parse_err("[leds]\nsystem = 5\nviewers = 5\n");
        assert!(e.contains("cam.toml:3: leds.viewers"), "{e}");
    }

    #[test]
    fn sub_url_is_checked_and_inherits_credentials() {
        let c = Config::parse(
            "[[stream]]\nid = \"door\"\nurl = \"rtsp://cam/main\"\nusername = \"u\"\npassword = \"p\"\nsize = \"1280x720\"\nsub_url = \"rtsp://cam/sub\"\n\
             [[stream]]\nid = \"yard\"\nurl = \"rtsp://cam2/main\"\nsub_url = \"http://cam2:8080/video\"\nsub_username = \"v\"\nsub_password = \"q\"\n",
            None,
        )
        .unwrap();
        let door = c.streams[0].sub_config().unwrap();
        assert_eq!(door.url, "rtsp://cam/sub");
        assert_eq!(door.kind, SourceKind::Rtsp);
        assert_eq!(
            (door.username.as_deref(), door.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(
            door.size, None,
            "the main stream's size cap is not the sub-stream's"
        );
        assert_eq!(door.id, "door");
        let yard = c.streams[1].sub_config().unwrap();
        assert_eq!(yard.kind, SourceKind::HttpMjpeg);
        assert_eq!(
            (yard.username.as_deref(), yard.password.as_deref()),
            (Some("v"), Some("q"))
        );
        assert!(c.streams[1].clone().sub_url.is_some());
        assert!(StreamConfig::new("x", "pattern:")
            .unwrap()
            .sub_config()
            .is_none());
        let e = parse_err("[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nsub_url = \"ftp://x\"\n");
        assert!(
            e.contains("cam.toml:4: stream.sub_url") && e.contains("scheme"),
            "{e}"
        );
    }

    #[test]
    fn server_auth_plain_and_hashed() {
        let plain =
            Config::parse("[server]\nauth = \"viewer:s3cret:with:colons\"\n", None).unwrap();
        let auth = plain.auth.clone().unwrap();
        assert!(auth.accepts("viewer", "s3cret:with:colons"));
        assert!(!auth.accepts("viewer", "s3cret"));
        assert!(!auth.accepts("Viewer", "s3cret:with:colons"));
        // sha256("hunter2")
        let hashed = Config::parse(
            "[server]\nauth = \"admin:sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7\"\n",
            None,
        )
        .unwrap();
        assert!(hashed.auth.as_ref().unwrap().accepts("admin", "hunter2"));
        assert!(!format!("{:?}{}", hashed, hashed.summary()).contains("f52fbd"));
        assert!(!format!("{plain:?}").contains("s3cret"));
        for bad in ["nocolon", ":pw", "user:", "u:sha256:abc"] {
            let e = parse_err(&format!("[server]\nauth = \"{bad}\"\n"));
            assert!(e.contains("cam.toml:2: server.auth"), "{e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn admin_password_hash_is_checked_and_never_shown() {
        // A real argon2id hash (of "correct horse", with small parameters).
        let phc = "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$\
                   MjZP1+1U9JUbDWvDvtLyEsZiNXOKEUxfi6O2oe46uxA";
        let text =
            format!("[server]\nlisten = \"127.0.0.1:9000\"\nadmin_password_hash = \"{phc}\"\n");
        let c = Config::parse(&text, None).unwrap();
        assert_eq!(
            c.admin_password_hash.as_ref().map(|h| h.as_phc()),
            Some(phc)
        );
        for shown in [format!("{c:?}"), c.summary()] {
            assert!(
                !shown.contains("MjZP1") && !shown.contains("MDEyMzQ1"),
                "{shown}"
            );
        }
        assert!(Config::parse("", None)
            .unwrap()
            .admin_password_hash
            .is_none());
        for bad in [
            "hunter22",
            "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        ] {
            let e = parse_err(&format!("[server]\n\nadmin_password_hash = \"{bad}\"\n"));
            assert!(e.contains("cam.toml:3: server.admin_password_hash"), "{e}");
            assert!(!e.contains("MDEyMzQ1") && !e.contains("hunter22"), "{e}");
        }
    }

    #[test]
    fn credentials_and_transport_keys() {
        let c = Config::parse(
            "[[stream]]\nid = \"a\"\nurl = \"rtsp://h/s\"\nusername = \"u\"\npassword = \"p@ss\"\ntransport = \"udp\"\n",
            None,
        )
        .unwrap();
        let s = &c.streams[0];
        assert_eq!(
            (s.username.as_deref(), s.password.as_deref()),
            (Some("u"), Some("p@ss"))
        );
        assert_eq!(s.transport, Transport::Udp);
        assert!(!c.summary().contains("p@ss"));
        let e = parse_err("[[stream]]\nid = \"a\"\nurl = \"rtsp://h/s\"\ntransport = \"sctp\"\n");
        assert!(e.contains("cam.toml:4") && e.contains("sctp"), "{e}");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("rtsp://u:p@h:554/a"), "rtsp://h:554/a");
        assert_eq!(redact_url("http://h/a?x=@"), "http://h/a?x=@");
        assert_eq!(redact_url("rtsp://p@ss:w@rd@h/a"), "rtsp://h/a");
        assert_eq!(
            redact_url("exec:ffmpeg -i rtsp://a:b@h/x -f mjpeg -"),
            "exec:ffmpeg -i rtsp://h/x -f mjpeg -"
        );
        assert_eq!(redact_url("pattern:"), "pattern:");
    }

    #[test]
    fn state_directory_sources_in_order() {
        let os = |s: &'static str| Some(OsStr::new(s));
        let p = |s: &str| Some(PathBuf::from(s));
        let flag = Path::new("/srv/camhub");
        assert_eq!(
            state_dir_from(Some(flag), os("/var/lib/camhub"), os("/x"), os("/home/pi")),
            p("/srv/camhub")
        );
        assert_eq!(
            state_dir_from(
                None,
                os("/var/lib/camhub:/var/lib/other"),
                os("/x"),
                os("/h")
            ),
            p("/var/lib/camhub")
        );
        assert_eq!(
            state_dir_from(None, os(""), os("/home/pi/.state"), os("/home/pi")),
            p("/home/pi/.state/camhub")
        );
        assert_eq!(
            state_dir_from(None, None, os("relative/state"), os("/home/pi")),
            p("/home/pi/.local/state/camhub"),
            "a relative XDG_STATE_HOME is ignored"
        );
        assert_eq!(
            state_dir_from(None, None, None, os("/home/pi")),
            p("/home/pi/.local/state/camhub")
        );
        assert_eq!(state_dir_from(None, None, None, os("")), None);
        assert_eq!(state_dir_from(None, None, None, None), None);
        assert!(state_dir(Some(flag)).unwrap() == flag);
    }
}
