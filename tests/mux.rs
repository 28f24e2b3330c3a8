//! `GET /mux` (the grid page's one multiplexed stream) over real TCP: its framing record
//! by record, JPEGs that decode for several streams, the per-tile fps cap, placeholders
//! for a stream that is down, viewer accounting and release on disconnect, and the
//! request checks and the viewer limit.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn viewers(addr: SocketAddr, id: &str) -> u64 {
    api_stream(addr, id)["viewers"].as_u64().unwrap()
}

#[test]
fn mux_carries_tagged_jpegs_of_several_streams_at_the_tile_rate() {
    let app = start(&format!(
        "{}[[stream]]\nid = \"off\"\nurl = \"pattern:\"\nenabled = false\n",
        streams_toml(&[
            ("a", "pattern:?size=160x120&fps=15"),
            ("b", "pattern:?size=320x240&fps=15"),
            ("c", "pattern:?size=192x144&fps=15"),
        ])
    ));
    let addr = app.local_addr();
    for id in ["a", "b"] {
        eventually(Duration::from_secs(5), || {
            (api_stream(addr, id)["state"] == "live").then_some(())
        })
        .expect("pattern goes live");
    }

    const FPS: f64 = 4.0;
    const WINDOW: Duration = Duration::from_secs(3);
    let opened = Instant::now();
    let mut mux = MuxReader::open(addr, "ids=a,b,off,a&fps=4");
    let mut per_id: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    while opened.elapsed() < WINDOW {
        let rec = mux.record();
        per_id.entry(rec.id.clone()).or_default().push(rec);
    }
    assert_eq!(
        per_id.keys().collect::<Vec<_>>(),
        ["a", "b", "off"],
        "only the asked-for streams, each once"
    );
    for (id, size) in [("a", (160, 120)), ("b", (320, 240))] {
        let records = &per_id[id];
        // Causality bounds this without timing luck: everything read was sent within
        // WINDOW of the request, and a tile gets at most one frame per 1/FPS.
        let cap = 1 + (WINDOW.as_secs_f64() * FPS) as usize;
        assert!(
            (3..=cap).contains(&records.len()),
            "{id}: {} frames in {WINDOW:?} at fps={FPS} (15 fps source)",
            records.len()
        );
        eprintln!("{id}: {} frames", records.len());
        let mut pixels = Vec::new();
        for rec in records {
            assert_eq!(rec.kind, "live");
            let (w, h, p) = decode(&rec.jpeg);
            assert_eq!((w, h), size, "{id}'s frames carry {id}'s pictures");
            pixels.push(p);
        }
        assert!(
            pixels.windows(2).all(|w| w[0] != w[1]),
            "{id}: each frame is a newer picture"
        );
    }
    let off = &per_id["off"];
    assert!(
        (1..=4).contains(&off.len()),
        "a down stream's placeholder about once a second: {}",
        off.len()
    );
    for rec in off {
        assert_eq!(rec.kind, "offline");
        decode(&rec.jpeg);
    }

    // One viewer of every included stream while connected, none after.
    for (id, n) in [("a", 1), ("b", 1), ("off", 1), ("c", 0)] {
        assert_eq!(viewers(addr, id), n, "{id}");
    }
    drop(mux);
    eventually(Duration::from_secs(5), || {
        ["a", "b", "off"]
            .iter()
            .all(|id| viewers(addr, id) == 0)
            .then_some(())
    })
    .expect("viewers are released when the client leaves");
    app.stop(Duration::from_secs(2));
}

#[test]
fn mux_checks_its_request_and_the_viewer_limit() {
    let app = start(&format!(
        "[server]\nmax_connections = 8\nmax_viewers = 3\n{}",
        streams_toml(&[
            ("a", "pattern:?size=160x120&fps=15"),
            ("b", "pattern:?size=160x120&fps=15"),
        ])
    ));
    let addr = app.local_addr();
    assert_eq!(get(addr, "/mux?ids=a,nope").status, 404);
    assert_eq!(get(addr, "/mux?ids=,").status, 400);
    assert_eq!(get(addr, "/mux?ids=a&fps=0").status, 400);
    assert_eq!(get(addr, "/mux?ids=a&fps=many").status, 400);
    let head = request(
        addr,
        b"HEAD /mux?ids=a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("application/x-camhub-mux")
    );
    assert_eq!(viewers(addr, "a"), 0, "HEAD watches nothing");

    // No ids: every stream.
    let mut all = MuxReader::open(addr, "");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        seen.insert(all.record().id);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    let _mjpeg = MjpegReader::open(addr, "/stream/a");
    assert_eq!(viewers(addr, "a"), 2);
    // 3 viewers now; two more would exceed max_viewers = 3.
    let full = get(addr, "/mux?ids=a,b");
    assert_eq!(full.status, 503);
    assert!(full.header("retry-after").is_some());
    drop(all);
    eventually(Duration::from_secs(5), || {
        (viewers(addr, "b") == 0).then_some(())
    })
    .expect("released");
    let mut one = MuxReader::open(addr, "ids=b");
    assert_eq!(one.record().id, "b");
    app.stop(Duration::from_secs(2));
}
