//! Instant start for H.264 (issue #12): a viewer or snapshot that joins an idle H.264
//! camera gets a fresh picture at once, decoded from the frames kept since the camera's
//! last keyframe, instead of waiting for its next keyframe; and what is kept stays
//! bounded whatever the camera sends. Real peers: GStreamer's RTSP server
//! (tests/peers/rtsp_server.py with long keyframe intervals) and the camhub binary, read
//! over real HTTP. Every process a test starts is killed by PID when the test ends.
//!
//! `CAMHUB_TEST_BIN=/path/to/camhub` runs another build (e.g. the commit before instant
//! start, which fails these tests) instead of this one's.

mod common;
#[path = "common/rtsp.rs"]
mod rtsp_server;

use common::{api_stream, get, spawn_camhub_with, Child, MjpegReader};
use rtsp_server::{free_port, RtspServer};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Generous: CI machines are slow and GStreamer pipelines start lazily.
const LIVE_WITHIN: Duration = Duration::from_secs(30);
/// A generous bound for "at once" (it takes a fraction of a second): with keyframes 10 s
/// apart, a camhub that waits for the next keyframe needs 0–10 s, so it stays within
/// this for about one join in four, and fails a run of [`JOINS`] + [`SNAPSHOTS`] joins.
const FRESH_WITHIN: Duration = Duration::from_secs(3);
const JOINS: usize = 6;
const SNAPSHOTS: usize = 3;
/// The bound on what one H.264 source keeps (camhub's `GOP_CACHE_MAX_BYTES`).
const CACHE_MAX_BYTES: u64 = 8 << 20;

/// The camhub binary (this build's, or `CAMHUB_TEST_BIN`) with one stream `id` = `url`.
fn start_camhub(id: &str, url: &str) -> (Child, tempfile::NamedTempFile) {
    let mut config = tempfile::NamedTempFile::new().unwrap();
    writeln!(config, "[[stream]]\nid = \"{id}\"\nurl = \"{url}\"").unwrap();
    let bin = std::env::var("CAMHUB_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_camhub").to_string());
    let mut command = Command::new(bin);
    command.env("RUST_LOG", "camhub=debug");
    let path = config.path().to_str().unwrap().to_string();
    let child = spawn_camhub_with(command, &["--config", &path]);
    (child, config)
}

fn wait_live(addr: SocketAddr, id: &str) {
    common::eventually(LIVE_WITHIN, || {
        (api_stream(addr, id)["state"] == "live").then_some(())
    })
    .unwrap_or_else(|| panic!("{id} not live: {}", api_stream(addr, id)));
}

/// Milliseconds since the Unix epoch, as `X-Timestamp` counts them.
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// An `X-Timestamp` value ("secs.millis") in milliseconds.
fn timestamp_ms(value: &str) -> u64 {
    let (secs, millis) = value.split_once('.').expect("secs.millis");
    secs.parse::<u64>().unwrap() * 1000 + millis.parse::<u64>().unwrap()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A random duration in `range_ms` (std only: a freshly keyed hasher is random).
fn random_ms(range_ms: std::ops::Range<u64>) -> Duration {
    let r = RandomState::new().build_hasher().finish();
    Duration::from_millis(range_ms.start + r % (range_ms.end - range_ms.start))
}

/// `camhub_stream_h264_cache_bytes` of stream `id` from `/metrics`.
fn cache_bytes(addr: SocketAddr, id: &str) -> u64 {
    let metrics = get(addr, "/metrics").text();
    let prefix = format!("camhub_stream_h264_cache_bytes{{stream=\"{id}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{metrics}"))
        .parse()
        .unwrap()
}

/// Opens `/stream/{id}` and reads until a part captured after the join and not marked
/// stale: how long that took, or `None` if none came within `within`.
fn join_until_fresh(addr: SocketAddr, id: &str, within: Duration) -> Option<Duration> {
    let joined = Instant::now();
    let joined_ms = unix_ms(SystemTime::now());
    let mut reader = MjpegReader::open(addr, &format!("/stream/{id}"));
    while joined.elapsed() < within {
        let part = reader.part();
        let ts = timestamp_ms(header(&part.headers, "x-timestamp").expect("X-Timestamp"));
        let stale = header(&part.headers, "x-camhub-stale").is_some();
        let offline = header(&part.headers, "x-camhub-offline").is_some();
        if ts >= joined_ms && !stale && !offline {
            common::decode(&part.jpeg);
            return Some(joined.elapsed()).filter(|&t| t <= within);
        }
    }
    None
}

#[test]
fn joining_an_idle_h264_camera_with_keyframes_10_s_apart_shows_a_fresh_frame_at_once() {
    // Issue #12, item 4: 640x480@15, a keyframe every 150 frames (10 s).
    let server = RtspServer::start(free_port(), &["--key-int", "150"]);
    let (camhub, _config) = start_camhub("cam", &server.url("/h264"));
    let addr = camhub.addr;
    wait_live(addr, "cam");
    // Nobody watches: frames are kept (not decoded) from the first keyframe on.
    let kept = common::eventually(LIVE_WITHIN, || {
        let n = cache_bytes(addr, "cam");
        (n > 0).then_some(n)
    });
    assert!(kept.is_some(), "an idle H.264 stream keeps its GOP");
    std::thread::sleep(Duration::from_secs(3));

    // Joins at random points of the GOP, idle in between.
    let mut took = Vec::new();
    for _ in 0..JOINS {
        std::thread::sleep(random_ms(1000..6000));
        let t = join_until_fresh(addr, "cam", FRESH_WITHIN);
        took.push(t);
        eprintln!("stream join: fresh frame after {t:?}");
    }
    // Snapshots too: the newest picture at once, where a keyframe-waiting camhub answers
    // 503 after its 3 s wait unless a keyframe happens to come.
    for _ in 0..SNAPSHOTS {
        std::thread::sleep(random_ms(3500..7000));
        let asked_ms = unix_ms(SystemTime::now());
        let asked = Instant::now();
        let resp = get(addr, "/snapshot/cam");
        let elapsed = asked.elapsed();
        eprintln!("snapshot: {} after {elapsed:?}", resp.status);
        assert_eq!(resp.status, 200, "snapshot: {}", resp.text());
        let ts = timestamp_ms(resp.header("x-timestamp").expect("X-Timestamp"));
        // Captured when its last packet arrived: a frame or two before the ask (each
        // snapshot comes after the last one's 3 s of decoding ended, so none is reused).
        assert!(
            ts + 1000 >= asked_ms,
            "snapshot captured {} ms before it was asked for",
            asked_ms.saturating_sub(ts)
        );
        assert_eq!(common::decode(&resp.body).0, 640);
    }
    assert!(
        took.iter().all(Option::is_some),
        "every join must get a fresh frame within {FRESH_WITHIN:?}: {took:?}"
    );
    assert_eq!(api_stream(addr, "cam")["state"], "live");
}

#[test]
fn the_h264_cache_stays_bounded_when_a_heavy_stream_stops_sending_keyframes() {
    // Issue #12, item 4: noise at ~13 Mbit/s and a keyframe only every 300 frames (20 s):
    // 8 MiB of frames since the keyframe pile up within seconds.
    let server = RtspServer::start(
        free_port(),
        &[
            "--key-int",
            "300",
            "--pattern",
            "snow",
            "--bitrate",
            "20000",
        ],
    );
    let (camhub, _config) = start_camhub("heavy", &server.url("/h264"));
    let addr = camhub.addr;
    wait_live(addr, "heavy");

    // Idle past both bounds (8 MiB, 12 s), sampling what is kept.
    let idle_until = Instant::now() + Duration::from_secs(14);
    let (mut peak, mut dropped_after_peak) = (0u64, false);
    while Instant::now() < idle_until {
        let n = cache_bytes(addr, "heavy");
        assert!(n <= CACHE_MAX_BYTES, "cache holds {n} bytes");
        if n > peak {
            peak = n;
        } else if peak > 0 && n == 0 {
            dropped_after_peak = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("cache peak {peak} bytes, dropped: {dropped_after_peak}");
    assert!(
        peak >= CACHE_MAX_BYTES / 2,
        "the heavy stream filled the cache: peak {peak} bytes"
    );
    assert!(
        dropped_after_peak,
        "past the bound the cache is dropped (until the next keyframe)"
    );
    assert_eq!(api_stream(addr, "heavy")["state"], "live");
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", camhub.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap();
    eprintln!("camhub RSS {rss_kib} KiB");
    assert!(rss_kib < 128 << 10, "camhub RSS {rss_kib} KiB");

    // A viewer still gets fresh frames: from the next keyframe (or the cache, if it
    // holds a GOP again by then).
    let t = join_until_fresh(addr, "heavy", LIVE_WITHIN);
    eprintln!("heavy stream: fresh frame after {t:?}");
    assert!(t.is_some(), "no fresh frame within {LIVE_WITHIN:?}");
    assert!(cache_bytes(addr, "heavy") <= CACHE_MAX_BYTES);
}
