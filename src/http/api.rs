//! `GET /api/streams` (JSON) and `GET /metrics` (Prometheus text): the same per-stream
//! facts for programs. URLs are shown without credentials.

use super::{full, Body, Ctx};
use crate::hub::Role;
use hyper::header::{self, HeaderValue};
use hyper::Response;
use serde::Serialize;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// One stream as the API shows it.
#[derive(Serialize)]
pub struct StreamInfo<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub state: &'static str,
    pub last_error: Option<String>,
    /// Seconds until the next reconnect attempt, while backing off.
    pub retry_in_secs: Option<f64>,
    pub fps: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub viewers: usize,
    pub frames: u64,
    pub dropped: u64,
    pub url: &'a str,
    /// BCM pin of the stream's status LED.
    pub led: Option<u8>,
    /// What that LED shows ("off", "blink-slow", "on", "blink-fast"), so a page can
    /// mirror it; given even without a pin.
    pub led_pattern: &'static str,
    /// The camera's sub-stream (`sub_url`), when it has one.
    pub sub: Option<FeedInfo<'a>>,
    /// The smaller sizes being made now, for whom and from which feed.
    pub renditions: Vec<RenditionInfo>,
}

/// A sub-stream as the API shows it.
#[derive(Serialize)]
pub struct FeedInfo<'a> {
    pub kind: &'a str,
    pub state: &'static str,
    pub last_error: Option<String>,
    pub fps: f64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frames: u64,
    pub url: &'a str,
}

/// One rendition someone watches.
#[derive(Serialize)]
pub struct RenditionInfo {
    /// The ladder step.
    pub width: u32,
    /// The size of its newest frame.
    pub frame_width: Option<u32>,
    pub frame_height: Option<u32>,
    pub viewers: usize,
    /// Frames made (or passed on) since it was first asked for.
    pub frames: u64,
    /// Which feed serves it now: "main" or "sub".
    pub feed: &'static str,
}

pub fn streams(ctx: &Ctx) -> Response<Body> {
    let now = Instant::now();
    let streams = ctx.hub.streams();
    let infos: Vec<StreamInfo> = streams
        .iter()
        .map(|s| {
            let status = s.status();
            let latest = s.latest();
            StreamInfo {
                led_pattern: crate::leds::pattern_name(&status.state),
                id: &s.id,
                name: &s.name,
                kind: s.kind,
                state: status.state.as_str(),
                retry_in_secs: status
                    .retry_in(now)
                    .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
                last_error: status.last_error,
                fps: (s.fps() * 10.0).round() / 10.0,
                width: latest.as_ref().map(|f| f.width),
                height: latest.as_ref().map(|f| f.height),
                viewers: s.viewers(),
                frames: s.frames(),
                dropped: s.dropped(),
                url: &s.url_redacted,
                led: s.led,
                sub: s.feed(Role::Sub).map(|f| {
                    let status = f.status();
                    let size = f.size();
                    FeedInfo {
                        kind: f.kind,
                        state: status.state.as_str(),
                        last_error: status.last_error,
                        fps: (f.fps() * 10.0).round() / 10.0,
                        width: size.map(|(w, _)| w),
                        height: size.map(|(_, h)| h),
                        frames: f.frames(),
                        url: &f.url_redacted,
                    }
                }),
                renditions: s
                    .slots()
                    .iter()
                    .map(|slot| {
                        let latest = slot.latest();
                        RenditionInfo {
                            width: slot.width,
                            frame_width: latest.as_ref().map(|f| f.width),
                            frame_height: latest.as_ref().map(|f| f.height),
                            viewers: slot.viewers(),
                            frames: slot.made(),
                            feed: s.producer(slot.width).as_str(),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    json(&infos)
}

/// `GET /api/peers`: other camhubs found on the LAN (empty with mDNS off).
pub fn peers(ctx: &Ctx) -> Response<Body> {
    json(&ctx.mdns.peers())
}

/// `GET /api/info`: this box: its display name, the mDNS name actually in use (a name
/// conflict on the LAN renames it, e.g. `camhub-2`), and the version.
pub fn info(ctx: &Ctx) -> Response<Body> {
    #[derive(Serialize)]
    struct Info {
        name: String,
        mdns: bool,
        mdns_host: Option<String>,
        version: &'static str,
    }
    json(&Info {
        name: ctx.name.clone(),
        mdns: ctx.mdns.enabled(),
        mdns_host: ctx
            .mdns
            .enabled()
            .then(|| format!("{}.local", ctx.mdns.name_in_use())),
        version: env!("CARGO_PKG_VERSION"),
    })
}

fn json(value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec_pretty(value).expect("API values serialize");
    super::uncached("application/json", body)
}

pub fn metrics(ctx: &Ctx) -> Response<Body> {
    let mut out = String::new();
    let streams = ctx.hub.streams();
    let mut family =
        |name: &str, kind: &str, help: &str, value: &dyn Fn(&crate::hub::Stream) -> f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for s in streams.iter() {
                let _ = writeln!(out, "{name}{{stream=\"{}\"}} {}", s.id, value(s));
            }
        };
    family(
        "camhub_stream_frames_total",
        "counter",
        "Frames received from the source.",
        &|s| s.frames() as f64,
    );
    family(
        "camhub_stream_dropped_frames_total",
        "counter",
        "Frames viewers skipped because they could not keep up.",
        &|s| s.dropped() as f64,
    );
    family(
        "camhub_stream_viewers",
        "gauge",
        "Clients watching the stream now.",
        &|s| s.viewers() as f64,
    );
    family(
        "camhub_stream_fps",
        "gauge",
        "Frames per second arriving from the source.",
        &|s| s.fps(),
    );
    family(
        "camhub_stream_up",
        "gauge",
        "1 when the stream is live.",
        &|s| f64::from(u8::from(s.is_live())),
    );
    family(
        "camhub_stream_h264_cache_bytes",
        "gauge",
        "Compressed H.264 kept since the camera's last keyframe, so a new viewer starts at once (main and sub-stream together; at most 8 MiB each).",
        &|s| crate::source::rtsp::h264_cache_bytes(&s.id) as f64,
    );

    let _ = writeln!(
        out,
        "# HELP camhub_stream_state Current state of the stream (1 for the current one).\n# TYPE camhub_stream_state gauge"
    );
    for s in streams.iter() {
        let current = s.status().state.as_str();
        for state in crate::supervise::State::NAMES {
            let _ = writeln!(
                out,
                "camhub_stream_state{{stream=\"{}\",state=\"{state}\"}} {}",
                s.id,
                u8::from(state == current)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP camhub_http_connections Open HTTP connections.\n# TYPE camhub_http_connections gauge\ncamhub_http_connections {}",
        ctx.hub.connections.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP camhub_build_info Build information.\n# TYPE camhub_build_info gauge\ncamhub_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let mut resp = Response::new(full(out));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
