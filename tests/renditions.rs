//! Renditions (issue #12) end to end over real TCP: `width=N` on `/snapshot`, `/stream`
//! and `/mux` gets the smallest ladder step at least N wide with the source's aspect
//! ratio, from a drawn source (the pattern) and from a JPEG passthrough source (ffmpeg's
//! MJPEG through `exec:`), in the right colours; the API lists the renditions being made
//! and drops them when their viewers leave; a sub-stream (`sub_url`, here another camhub
//! pulled over HTTP-MJPEG) feeds the grid while it is up and the grid falls back to the
//! main stream, saying so, when it goes down.

mod common;

use camhub::app::App;
use camhub::config::Config;
use camhub::shutdown::Shutdown;
use common::*;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A snapshot once the stream serves one (200), as (width, height, RGB pixels).
fn snapshot(addr: std::net::SocketAddr, path: &str) -> (u32, u32, Vec<u8>) {
    let r = eventually(TIMEOUT, || {
        let r = get(addr, path);
        (r.status == 200).then_some(r)
    })
    .unwrap_or_else(|| panic!("{path} never answered 200"));
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    decode(&r.body)
}

#[test]
fn width_picks_the_ladder_step_on_snapshot_stream_and_mux() {
    let app = start(&streams_toml(&[("cam", "pattern:?size=1280x720&fps=15")]));
    let addr = app.local_addr();
    // Full size without width, and for any width at least the source's.
    assert_eq!(snapshot(addr, "/snapshot/cam").0, 1280);
    assert_eq!(snapshot(addr, "/snapshot/cam?width=1280").0, 1280);
    assert_eq!(snapshot(addr, "/snapshot/cam?width=5000").0, 1280);
    // The smallest step >= N, aspect ratio kept (height even).
    for (asked, want) in [
        (300, (320, 180)),
        (320, (320, 180)),
        (366, (400, 226)),
        (100, (160, 90)),
        (700, (800, 450)),
    ] {
        let (w, h, _) = snapshot(addr, &format!("/snapshot/cam?width={asked}"));
        assert_eq!((w, h), want, "width={asked}");
    }
    for bad in ["0", "-5", "abc", "70000"] {
        let r = get(addr, &format!("/snapshot/cam?width={bad}"));
        assert_eq!(r.status, 400, "width={bad}");
        assert_eq!(get(addr, &format!("/stream/cam?width={bad}")).status, 400);
        assert_eq!(get(addr, &format!("/mux?width={bad}")).status, 400);
    }

    let mut mjpeg = MjpegReader::open(addr, "/stream/cam?width=320");
    let mut previous = None;
    for _ in 0..4 {
        let part = mjpeg.part();
        let (w, h, pixels) = decode(&part.jpeg);
        assert_eq!((w, h), (320, 180));
        assert_ne!(
            previous.as_ref(),
            Some(&pixels),
            "the rendition is live video"
        );
        previous = Some(pixels);
    }
    // The API shows the rendition being made, for one viewer, from the main stream.
    let info = api_stream(addr, "cam");
    let r = &info["renditions"][0];
    assert_eq!(r["width"], 320, "{info}");
    assert_eq!(r["frame_width"], 320);
    assert_eq!(r["frame_height"], 180);
    assert_eq!(r["viewers"], 1);
    assert_eq!(r["feed"], "main");
    assert!(r["frames"].as_u64().unwrap() >= 4);
    assert_eq!(info["viewers"], 1);

    let mut mux = MuxReader::open(addr, "ids=cam&width=200&fps=15");
    for _ in 0..3 {
        let rec = mux.record();
        if rec.kind == "live" {
            assert_eq!(decode(&rec.jpeg).0, 240);
            assert_eq!(rec.feed, "main");
        }
    }
    let info = api_stream(addr, "cam");
    let widths: Vec<u64> = info["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["width"].as_u64().unwrap())
        .collect();
    assert_eq!(widths.len(), 2, "{info}");
    assert!(widths.contains(&240) && widths.contains(&320), "{info}");

    // Viewers gone: the renditions go too.
    drop(mjpeg);
    drop(mux);
    let gone = eventually(TIMEOUT, || {
        let info = api_stream(addr, "cam");
        (info["renditions"].as_array().unwrap().is_empty() && info["viewers"] == 0).then_some(())
    });
    assert!(gone.is_some(), "{}", api_stream(addr, "cam"));
    app.stop(Duration::from_secs(2));
}

/// Mean RGB of a `w`×`h` box at (x, y) of a decoded RGB picture `width` wide.
fn mean_rgb(pixels: &[u8], width: u32, (x, y, w, h): (u32, u32, u32, u32)) -> [u32; 3] {
    let mut sum = [0u32; 3];
    for row in y..y + h {
        for col in x..x + w {
            let i = ((row * width + col) * 3) as usize;
            for c in 0..3 {
                sum[c] += u32::from(pixels[i + c]);
            }
        }
    }
    sum.map(|v| v / (w * h))
}

#[test]
fn passthrough_jpeg_sources_are_decoded_scaled_and_keep_their_colours() {
    // 1280x720, left half red, right half blue, as MJPEG from ffmpeg (4:2:0, like most
    // cameras' JPEG).
    let cmd = "ffmpeg -hide_banner -loglevel error -re -f lavfi -i \
               'color=c=red:s=640x720:r=10[l];color=c=blue:s=640x720:r=10[r];[l][r]hstack' \
               -pix_fmt yuvj420p -f mjpeg -q:v 4 -";
    let app = start(&format!(
        "[[stream]]\nid = \"cam\"\nurl = \"exec:{}\"\n",
        cmd.replace('"', "\\\"")
    ));
    let addr = app.local_addr();
    let (w, h, _) = snapshot(addr, "/snapshot/cam");
    assert_eq!((w, h), (1280, 720), "the full size passes through");
    for (asked, want) in [(320, (320, 180)), (600, (640, 360)), (160, (160, 90))] {
        let (w, h, pixels) = snapshot(addr, &format!("/snapshot/cam?width={asked}"));
        assert_eq!((w, h), want);
        let quarter = (w / 8, h / 4, w / 4, h / 2);
        let left = mean_rgb(&pixels, w, quarter);
        let right = mean_rgb(&pixels, w, (w / 2 + w / 8, h / 4, w / 4, h / 2));
        assert!(
            left[0] > 200 && left[1] < 50 && left[2] < 50,
            "{asked}: left should be red, is {left:?}"
        );
        assert!(
            right[0] < 50 && right[1] < 50 && right[2] > 200,
            "{asked}: right should be blue, is {right:?}"
        );
    }
    let mut mjpeg = MjpegReader::open(addr, "/stream/cam?width=320");
    for _ in 0..3 {
        assert_eq!(decode(&mjpeg.part().jpeg).0, 320);
    }
    app.stop(Duration::from_secs(2));
}

/// Waits for a mux record of `kind` and returns it.
fn record_of(mux: &mut MuxReader, kind: &str) -> Record {
    for _ in 0..200 {
        let rec = mux.record();
        if rec.kind == kind {
            return rec;
        }
    }
    panic!("no {kind} record in 200");
}

#[test]
fn the_sub_stream_feeds_the_grid_and_the_grid_falls_back_when_it_is_down() {
    // The camera's sub-stream: 640x480, from another camhub over HTTP-MJPEG.
    let mut upstream_config = Config::parse(
        &streams_toml(&[("small", "pattern:?size=640x480&fps=15")]),
        None,
    )
    .unwrap();
    upstream_config.listen = "127.0.0.1:0".parse().unwrap();
    upstream_config.mdns_enabled = false;
    let upstream = App::start(&upstream_config, Shutdown::new()).unwrap();
    let sub_url = format!("http://{}/stream/small", upstream.local_addr());

    let app = start(&format!(
        "[[stream]]\nid = \"cam\"\nurl = \"pattern:?size=1280x720&fps=15\"\n\
         sub_url = \"{sub_url}\"\nstall_after_secs = 2\n"
    ));
    let addr = app.local_addr();
    let up = eventually(TIMEOUT, || {
        (api_stream(addr, "cam")["sub"]["state"] == "live").then_some(())
    });
    assert!(up.is_some(), "{}", api_stream(addr, "cam"));

    // Grid at 640: the sub-stream serves it alone (640x480, a different aspect from the
    // main stream's 16:9); full screen is the main stream.
    let mut mux = MuxReader::open(addr, "ids=cam&width=640&fps=15");
    let rec = eventually(TIMEOUT, || {
        let rec = record_of(&mut mux, "live");
        (rec.feed == "sub").then_some(rec)
    })
    .expect("the grid is fed by the sub-stream");
    assert_eq!(decode(&rec.jpeg).0, 640);
    assert_eq!(decode(&rec.jpeg).1, 480);
    // Smaller tiles are scaled from the sub-stream too.
    let (w, h, _) = snapshot(addr, "/snapshot/cam?width=320");
    assert_eq!((w, h), (320, 240), "scaled from the 4:3 sub-stream");
    let (w, h, _) = snapshot(addr, "/snapshot/cam");
    assert_eq!((w, h), (1280, 720), "full size is the main stream");
    let mut full = MjpegReader::open(addr, "/stream/cam");
    assert_eq!(decode(&full.part().jpeg).0, 1280);
    drop(full);
    let info = api_stream(addr, "cam");
    assert_eq!(info["sub"]["width"], 640, "{info}");
    assert_eq!(info["renditions"][0]["feed"], "sub", "{info}");

    // The sub-stream's server goes away: the grid falls back to renditions of the main
    // stream (16:9 now), and says it comes from the main stream.
    upstream.stop(Duration::from_secs(2));
    let fell_back = eventually(Duration::from_secs(20), || {
        let rec = record_of(&mut mux, "live");
        (rec.feed == "main").then_some(rec)
    })
    .expect("the grid falls back to the main stream");
    assert_eq!(
        (decode(&fell_back.jpeg).0, decode(&fell_back.jpeg).1),
        (640, 360)
    );
    let info = api_stream(addr, "cam");
    assert_ne!(info["sub"]["state"], "live", "{info}");
    assert_eq!(info["renditions"][0]["feed"], "main", "{info}");
    assert_eq!(info["state"], "live");
    app.stop(Duration::from_secs(2));
}
