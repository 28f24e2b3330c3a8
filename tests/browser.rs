//! The page in a real browser: headless Chromium (Debian's `chromium`) driven over the
//! DevTools protocol through tests/peers/cdp.py, against camhub on 127.0.0.1. Asserts on
//! DOM and canvas pixels read with Runtime.evaluate, never on stored images: every camera
//! of a 13-camera grid draws changing frames over a bounded number of connections, tiles
//! out of view stop pulling, a tap opens the full-screen stream and back returns, a
//! stream that goes down changes its badge without a reload, the snapshot-polling
//! fallback and the page without JavaScript work; on a 2x phone the tiles ask for (and
//! draw) the rendition of their size in device pixels, again after a rotation and when
//! polling snapshots, while full screen stays full size; the grid rate setting reaches `/mux` and survives a reload; a
//! stale picture and a sub-stream that is down are flagged (issue #12). Screenshots (not
//! assertions) go to target/tmp/browser/ for people to look at.
//!
//! Chromium missing is a failure, not a skip: `scripts/deps.sh` installs it.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

const PATTERN: &str = "pattern:?size=320x240&fps=10";
/// Generous bounds for anything the browser has to do; the test normally takes far less.
const WAIT: Duration = Duration::from_secs(20);
/// Connections the grid page may hold at once: the mux, the API poll, and one that is
/// closing after the mux was reopened. With 13 MJPEG <img> tiles it would be 6 and stuck.
const MAX_PAGE_CONNECTIONS: usize = 4;
const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

/// A child process killed (by PID) and reaped when dropped, also when a test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Chromium in its own process group; the whole group (browser, renderers, zygote,
/// crash handler) is killed when dropped.
struct KilledGroup(Child);

impl Drop for KilledGroup {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One headless Chromium page and the bridge that drives it.
struct Browser {
    to_bridge: ChildStdin,
    from_bridge: BufReader<ChildStdout>,
    // Dropped in this order: the bridge, then the browser, then its profile directory.
    _bridge: Killed,
    _chromium: KilledGroup,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("temp dir");
        let mut chromium = Command::new("chromium");
        chromium
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        for var in PROXY_VARS {
            chromium.env_remove(var);
        }
        let chromium = KilledGroup(chromium.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run `chromium` ({e}). The browser test needs Debian's chromium and \
                 python3-websocket: run scripts/deps.sh. It fails rather than skips."
            )
        }));
        let mut bridge = Command::new("/usr/bin/python3");
        bridge
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/cdp.py"))
            .arg(profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for var in PROXY_VARS {
            bridge.env_remove(var);
        }
        let mut bridge = Killed(bridge.spawn().expect("/usr/bin/python3 runs"));
        let to_bridge = bridge.0.stdin.take().unwrap();
        let from_bridge = BufReader::new(bridge.0.stdout.take().unwrap());
        let mut browser = Browser {
            to_bridge,
            from_bridge,
            _bridge: bridge,
            _chromium: chromium,
            _profile: profile,
        };
        let hello = browser.read_reply();
        assert!(
            hello.get("attached").is_some(),
            "bridge did not attach: {hello}"
        );
        browser
    }

    fn read_reply(&mut self) -> Value {
        let mut line = String::new();
        self.from_bridge
            .read_line(&mut line)
            .expect("reading the DevTools bridge");
        assert!(
            !line.is_empty(),
            "the DevTools bridge exited (is python3-websocket installed?)"
        );
        let reply: Value = serde_json::from_str(&line).expect("bridge speaks JSON");
        if let Some(e) = reply.get("error") {
            panic!("DevTools: {e}");
        }
        reply["result"].clone()
    }

    /// Calls a DevTools method and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let cmd = json!({ "method": method, "params": params });
        writeln!(self.to_bridge, "{cmd}").expect("writing to the DevTools bridge");
        self.to_bridge.flush().unwrap();
        self.read_reply()
    }

    /// Evaluates a JavaScript expression in the page (awaiting promises) and returns its
    /// value; a thrown exception fails the test.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression}\nthrew: {e}");
        }
        r["result"]["value"].clone()
    }

    fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": if mobile { 2 } else { 1 }, "mobile": mobile }),
        );
    }

    /// Reloads the page and waits for the new document to load.
    fn reload(&mut self) {
        self.eval("window.__beforeReload = 1");
        self.call("Page.reload", json!({}));
        eventually(WAIT, || {
            (self.eval("!window.__beforeReload && document.readyState") == "complete").then_some(())
        })
        .expect("the page reloads");
    }

    /// The params of the `method` events (e.g. Network.requestWillBeSent, once its
    /// domain is enabled) since the previous call; the first call starts keeping them.
    fn events(&mut self, method: &str) -> Vec<Value> {
        let r = self.call("bridge.events", json!({ "method": method }));
        r["events"].as_array().expect("event list").clone()
    }

    /// The `/mux` requests the page sent since the previous call (Network must be
    /// enabled and `events("Network.requestWillBeSent")` called once before).
    fn mux_asks(&mut self) -> Vec<MuxAsk> {
        self.events("Network.requestWillBeSent")
            .iter()
            .filter_map(|e| MuxAsk::parse(e["request"]["url"].as_str()?))
            .collect()
    }

    fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        eventually(WAIT, || {
            let state = self.eval("location.href + ' ' + document.readyState");
            (state.as_str() == Some(&format!("{url} complete"))).then_some(())
        })
        .unwrap_or_else(|| panic!("{url} did not load"));
    }

    /// Saves a PNG screenshot under target/tmp/browser/ (for people; never asserted on).
    fn screenshot(&mut self, name: &str) {
        use base64::Engine as _;
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Every tile's state as the page shows it.
    fn tiles(&mut self) -> BTreeMap<String, Tile> {
        let v = self.eval(TILES_JS);
        v.as_array()
            .expect("tile list")
            .iter()
            .map(|t| {
                let tile = Tile {
                    frames: t["frames"].as_u64().unwrap(),
                    hash: t["hash"].as_u64().unwrap(),
                    in_view: t["inView"].as_bool().unwrap(),
                    badge: t["badge"].as_str().unwrap().to_string(),
                    error: t["err"].as_str().unwrap().to_string(),
                };
                (t["id"].as_str().unwrap().to_string(), tile)
            })
            .collect()
    }

    /// Waits until every tile in view (but those in `except`) has drawn frames whose
    /// pixels change, and returns their ids. Checks `check` (e.g. the connection count)
    /// on every round.
    fn tiles_in_view_change(
        &mut self,
        except: &[&str],
        mut check: impl FnMut(),
    ) -> BTreeSet<String> {
        let first = eventually(WAIT, || {
            check();
            let tiles = self.tiles();
            let in_view: BTreeMap<_, _> = tiles
                .into_iter()
                .filter(|(id, t)| t.in_view && !except.contains(&id.as_str()))
                .collect();
            (!in_view.is_empty() && in_view.values().all(|t| t.frames >= 2)).then_some(in_view)
        })
        .unwrap_or_else(|| panic!("tiles in view never drew frames: {:?}", self.tiles()));
        eventually(WAIT, || {
            check();
            let now = self.tiles();
            first
                .iter()
                .all(|(id, t0)| {
                    let t = &now[id];
                    t.frames >= t0.frames + 3 && t.hash != t0.hash
                })
                .then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "tile pixels did not change:\nbefore {first:?}\nafter {:?}",
                self.tiles()
            )
        });
        first.into_keys().collect()
    }
}

/// One `/mux` request as the browser sent it.
#[derive(Debug, Clone, PartialEq)]
struct MuxAsk {
    ids: String,
    /// `width=`, if any.
    width_px: Option<u32>,
    /// `fps=`, if any.
    fps: Option<String>,
}

impl MuxAsk {
    /// The request for `url`, if it is a `/mux` one.
    fn parse(url: &str) -> Option<MuxAsk> {
        let rest = url.split_once("://")?.1;
        let path = &rest[rest.find('/')?..];
        let query = path.strip_prefix("/mux?")?;
        let value = |key: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(MuxAsk {
            ids: value("ids").unwrap_or_default(),
            width_px: value("width").map(|w| w.parse().expect("width is a number")),
            fps: value("fps"),
        })
    }
}

#[derive(Debug)]
#[allow(dead_code)] // Debug output on failure reads `badge` and `error`.
struct Tile {
    frames: u64,
    hash: u64,
    in_view: bool,
    badge: String,
    error: String,
}

/// Per tile: id, frames drawn (counted by the page), a hash of the canvas pixels,
/// whether it is in the viewport, its badge and error text.
const TILES_JS: &str = r#"Array.from(document.querySelectorAll('.tile')).map(function (el) {
  var c = el.querySelector('canvas'), r = el.getBoundingClientRect(), h = 0;
  var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (var i = 0; i < d.length; i += 7) h = (Math.imul(h, 31) + d[i]) >>> 0;
  return { id: el.dataset.id, frames: +(el.dataset.frames || 0), hash: h,
    inView: r.bottom > 0 && r.top < innerHeight && !document.getElementById('grid').hidden,
    badge: el.querySelector('.badge').textContent, err: el.querySelector('.err').textContent };
})"#;

/// A hash of the full-screen <img>'s current pixels (0 until it has a frame).
const FULL_IMAGE_HASH_JS: &str = r#"(function () {
  var i = document.getElementById('fimg');
  if (!i.naturalWidth) return 0;
  var c = document.createElement('canvas'), h = 0;
  c.width = i.naturalWidth; c.height = i.naturalHeight;
  var x = c.getContext('2d');
  x.drawImage(i, 0, 0);
  var d = x.getImageData(0, 0, c.width, c.height).data;
  for (var k = 0; k < d.length; k += 7) h = (Math.imul(h, 31) + d[k]) >>> 0;
  return h;
})()"#;

/// Makes the page believe its tab was hidden or shown (headless tabs never are).
fn set_hidden(hidden: bool) -> String {
    format!(
        "Object.defineProperty(document, 'hidden', {{ value: {hidden}, configurable: true }}); \
         document.dispatchEvent(new Event('visibilitychange'))"
    )
}

fn viewers(app: &camhub::app::App, id: &str) -> usize {
    app.hub().get(id).expect("stream exists").viewers()
}

#[test]
fn grid_streams_every_camera_over_one_connection_with_full_view_and_live_badges() {
    // The relay's upstream: another camhub we can take down.
    let upstream = start(&streams_toml(&[("src", PATTERN)]));
    let mut toml = String::new();
    let tricky = r#"Porch <img src=x onerror="window.__xss=1"> & the very long name of the camera by the back door"#;
    for i in 1..=12 {
        let name = if i == 1 {
            tricky.replace('"', "\\\"")
        } else {
            format!("Camera {i}")
        };
        toml += &format!("[[stream]]\nid = \"c{i:02}\"\nname = \"{name}\"\nurl = \"{PATTERN}\"\n");
    }
    toml += &format!(
        "[[stream]]\nid = \"relay\"\nname = \"Relay\"\nurl = \"http://{}/stream/src\"\n",
        upstream.local_addr()
    );
    let app = start(&toml);
    let base = format!("http://{}/", app.local_addr());
    eventually(WAIT, || {
        (api_stream(app.local_addr(), "relay")["state"] == "live").then_some(())
    })
    .expect("the relay goes live");
    let most_connections = std::cell::Cell::new(0);
    let connections = || {
        let n = app.hub().connections.load(Ordering::Relaxed);
        most_connections.set(most_connections.get().max(n));
        assert!(
            n <= MAX_PAGE_CONNECTIONS,
            "the page holds {n} connections (at most {MAX_PAGE_CONNECTIONS})"
        );
    };

    let mut b = Browser::launch();
    // A phone: 390x844 CSS pixels, mobile.
    b.viewport(390, 844, true);
    b.navigate(&base);
    b.eval("window.__sameDocument = 1");
    assert_eq!(
        b.eval("document.querySelector('#tile-c01 .name').textContent"),
        tricky,
        "names are shown as text"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('.tile img, .tile script').length + (window.__xss || 0)"),
        0,
        "a name cannot inject markup"
    );
    let mut seen = b.tiles_in_view_change(&[], connections);
    assert!(seen.contains("c01") && !seen.contains("c12"), "{seen:?}");
    // Tiles out of view are not pulled: c12 is below the fold.
    eventually(WAIT, || {
        (viewers(&app, "c01") == 1 && viewers(&app, "c12") == 0).then_some(())
    })
    .expect("only tiles in view are watched");
    b.screenshot("phone-grid.png");

    // Scroll to the bottom: the mux is reopened for the tiles now in view.
    b.eval("window.scrollTo(0, document.body.scrollHeight)");
    seen.extend(b.tiles_in_view_change(&[], connections));
    eventually(WAIT, || {
        (viewers(&app, "c01") == 0 && viewers(&app, "c12") == 1).then_some(())
    })
    .expect("scrolled-away tiles stop pulling frames");
    b.eval("window.scrollTo(0, 0)");

    // Tap a tile: the full-screen view plays /stream/c03.
    b.eval("document.getElementById('tile-c03').click()");
    eventually(WAIT, || {
        (b.eval("document.body.dataset.view + ' ' + location.hash") == "full #/cam/c03"
            && b.eval("document.getElementById('fimg').naturalWidth") == 320)
            .then_some(())
    })
    .expect("the full-screen view shows the stream");
    assert_eq!(
        b.eval("document.getElementById('fname').textContent"),
        "Camera 3"
    );
    assert_eq!(
        b.eval("new URL(document.getElementById('fsnap').href).pathname"),
        "/snapshot/c03"
    );
    // Not clicked: a headless download would land in the user's Downloads.
    let download = b.eval("document.getElementById('fsnap').download");
    assert!(
        download
            .as_str()
            .is_some_and(|d| d.starts_with("c03") && d.ends_with(".jpg")),
        "{download}"
    );
    let first = b.eval(FULL_IMAGE_HASH_JS);
    eventually(WAIT, || {
        connections();
        let h = b.eval(FULL_IMAGE_HASH_JS);
        (h != first && h != 0).then_some(())
    })
    .expect("the full-screen picture changes");
    eventually(WAIT, || {
        (viewers(&app, "c03") == 1 && viewers(&app, "c01") == 0).then_some(())
    })
    .expect("the grid stops pulling frames while a camera is full screen");
    b.eval(&set_hidden(true));
    eventually(WAIT, || (viewers(&app, "c03") == 0).then_some(()))
        .expect("a hidden page ends the full-screen stream");
    b.eval(&set_hidden(false));
    eventually(WAIT, || (viewers(&app, "c03") == 1).then_some(()))
        .expect("showing the page again resumes it");
    b.screenshot("phone-full.png");

    // Browser back returns to the grid, ends the MJPEG request and resumes the tiles.
    b.eval("history.back()");
    eventually(WAIT, || {
        (b.eval("document.body.dataset.view") == "grid"
            && b.eval("document.getElementById('fimg').hasAttribute('src')") == false)
            .then_some(())
    })
    .expect("back returns to the grid");
    seen.extend(b.tiles_in_view_change(&[], connections));
    eventually(WAIT, || (viewers(&app, "c03") == 1).then_some(()))
        .expect("the full-screen MJPEG request ended");

    // A desktop: every camera at once, each watched exactly once (by the one mux).
    b.viewport(1440, 900, false);
    let all = b.tiles_in_view_change(&[], connections);
    assert_eq!(
        all.len(),
        13,
        "every tile is in view on a desktop screen: {all:?}"
    );
    seen.extend(all);
    assert_eq!(seen.len(), 13, "{seen:?}");
    eventually(WAIT, || {
        app.hub()
            .streams()
            .iter()
            .all(|s| s.viewers() == 1)
            .then_some(())
    })
    .expect("one mux watches every stream");

    // A hidden tab pulls nothing; showing it again resumes.
    b.eval(&set_hidden(true));
    eventually(WAIT, || (app.hub().viewers_total() == 0).then_some(()))
        .expect("a hidden page closes its stream");
    b.eval(&set_hidden(false));
    eventually(WAIT, || (app.hub().viewers_total() == 13).then_some(()))
        .expect("a visible page reopens its stream");

    // Take the relay's upstream down: its badge changes without a reload.
    assert!(upstream.stop(Duration::from_secs(2)));
    let relay = eventually(WAIT, || {
        let tiles = b.tiles();
        let t = &tiles["relay"];
        (t.badge == "reconnecting" && !t.error.is_empty()).then(|| t.error.clone())
    })
    .unwrap_or_else(|| panic!("the relay badge did not change: {:?}", b.tiles()));
    eprintln!("relay error shown: {relay}");
    assert_eq!(
        b.eval("window.__sameDocument"),
        1,
        "the page was not reloaded"
    );
    assert_eq!(b.tiles()["c02"].badge, "live");
    // Let the OFFLINE placeholder arrive before the picture.
    let frames = b.tiles()["relay"].frames;
    eventually(WAIT, || (b.tiles()["relay"].frames > frames).then_some(()))
        .expect("the down stream's tile shows its placeholder");
    b.screenshot("desktop-grid.png");
    eprintln!("most connections the page held: {}", most_connections.get());
    drop(b);
    app.stop(Duration::from_secs(2));
}

#[test]
fn snapshot_fallback_boxes_view_and_page_without_javascript() {
    let app = start(&format!(
        "{}[[stream]]\nid = \"off\"\nname = \"Garage\"\nurl = \"{PATTERN}\"\nenabled = false\n",
        streams_toml(&[("a", PATTERN), ("b", "pattern:?size=160x120&fps=10")])
    ));
    let base = format!("http://{}/", app.local_addr());
    let mut b = Browser::launch();
    b.viewport(390, 844, true);

    // `?poll=1` forces the fallback for browsers without fetch streaming.
    b.navigate(&format!("{base}?poll=1"));
    // A disabled stream has no snapshot to poll (503): only its badge tells.
    let changed = b.tiles_in_view_change(&["off"], || {});
    assert!(
        changed.contains("a") && changed.contains("b"),
        "{changed:?}"
    );
    assert_eq!(
        b.eval("document.querySelector('#tile-b canvas').width"),
        160,
        "the canvas takes the frame's size"
    );
    assert_eq!(viewers(&app, "a"), 0, "snapshot polling is not a viewer");
    let off = eventually(WAIT, || {
        let t = b.tiles().remove("off").unwrap();
        (t.badge == "off").then_some(t)
    })
    .expect("a disabled stream's badge says off");
    assert!(off.error.contains("disabled"), "{off:?}");

    // The boxes view copes with no /api/peers (404) or an empty list.
    b.eval("location.hash = '#/boxes'");
    eventually(WAIT, || {
        (b.eval("document.body.dataset.view") == "boxes"
            && b.eval("document.getElementById('nopeers').hidden") == false
            && b.eval("document.getElementById('grid').hidden") == true)
            .then_some(())
    })
    .expect("the boxes view says none were found");
    b.eval("history.back()");
    eventually(WAIT, || {
        (b.eval("document.body.dataset.view") == "grid").then_some(())
    })
    .expect("back to the grid");

    // A camera plugged in later (discovery adds it to the hub) gets a tile by itself.
    app.hub()
        .add(&camhub::config::StreamConfig::new("plugged", "pattern:").unwrap())
        .expect("new id");
    eventually(WAIT, || b.tiles().contains_key("plugged").then_some(()))
        .expect("the grid shows a camera plugged in after the page loaded");

    // Without JavaScript: tiles are links to the streams and show snapshots.
    b.call(
        "Emulation.setScriptExecutionDisabled",
        json!({ "value": true }),
    );
    b.navigate(&base);
    b.call(
        "Emulation.setScriptExecutionDisabled",
        json!({ "value": false }),
    );
    let images = eventually(WAIT, || {
        let v = b.eval(
            "Array.from(document.querySelectorAll('.tile')).map(function (t) { var i = t.querySelector('img'); return [new URL(t.href).pathname, i ? i.naturalWidth : -1]; })",
        );
        let ok = v[0][1] == 320 && v[1][1] == 160;
        ok.then_some(v)
    })
    .unwrap_or_else(|| panic!("no snapshots without JavaScript"));
    assert_eq!(images[0][0], "/stream/a");
    drop(b);
    app.stop(Duration::from_secs(2));
}

/// 720p cameras: big enough that a phone's tiles get a rendition, not the full size.
const HD_PATTERN: &str = "pattern:?size=1280x720&fps=15";

/// Per tile: the canvas's CSS width, the size of the picture last drawn into it (the
/// canvas takes each drawn bitmap's size), frames drawn, the kind and feed of the last
/// mux record drawn, whether it is in view, its badge and flags.
const TILE_PICTURES_JS: &str = r#"Array.from(document.querySelectorAll('.tile')).map(function (el) {
  var c = el.querySelector('canvas'), r = el.getBoundingClientRect();
  return { id: el.dataset.id, css: c.getBoundingClientRect().width, w: c.width, h: c.height,
    frames: +(el.dataset.frames || 0), kind: el.dataset.kind || '', feed: el.dataset.feed || '',
    inView: r.bottom > 0 && r.top < innerHeight && !document.getElementById('grid').hidden,
    badge: el.querySelector('.badge').textContent, dim: el.classList.contains('dim'),
    stale: !el.querySelector('.f-stale').hidden, subDown: !el.querySelector('.f-sub').hidden };
})"#;

fn pictures(b: &mut Browser) -> BTreeMap<String, Value> {
    let v = b.eval(TILE_PICTURES_JS);
    v.as_array()
        .expect("tile list")
        .iter()
        .map(|t| (t["id"].as_str().unwrap().to_string(), t.clone()))
        .collect()
}

/// Waits until the page's newest `/mux` request, sent after those already in `seen`,
/// satisfies `want` and returns it; every request seen on the way is added to `seen`.
fn wait_mux_ask(
    b: &mut Browser,
    seen: &mut Vec<MuxAsk>,
    what: &str,
    want: impl Fn(&MuxAsk) -> bool,
) -> MuxAsk {
    let before = seen.len();
    eventually(WAIT, || {
        seen.extend(b.mux_asks());
        seen[before..].last().filter(|a| want(a)).cloned()
    })
    .unwrap_or_else(|| panic!("the page never asked /mux for {what}: {seen:?}"))
}

/// Sets the grid rate the way a user does: pick an option, the select fires `change`.
fn pick_rate(b: &mut Browser, fps: u32) {
    b.eval(&format!(
        "var r = document.getElementById('rate'); r.value = '{fps}'; \
         r.dispatchEvent(new Event('change'))"
    ));
}

/// Checks that `ask` asks for the in-view tiles' CSS width in device pixels (2x), and
/// returns the rendition step the server serves for it.
fn asks_tile_size(b: &mut Browser, ask: &MuxAsk) -> u32 {
    let tiles = pictures(b);
    let css = tiles
        .values()
        .filter(|t| t["inView"] == true)
        .map(|t| t["css"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let px = ask.width_px.expect("the grid asks for a width") as f64;
    assert!(
        css > 100.0 && (css * 2.0 - 1.0..=css * 2.0 + 1.0).contains(&px),
        "asked {px} px for tiles {css} CSS px wide at 2x: {ask:?}"
    );
    camhub::rendition::step_for(px as u32).expect("a phone tile is below the top step")
}

/// Waits until every tile in view has drawn at least two pictures, the last of `size`,
/// and returns them.
fn in_view_tiles_draw(b: &mut Browser, size: (u32, u32)) -> BTreeMap<String, Value> {
    eventually(WAIT, || {
        let tiles = pictures(b);
        let in_view: BTreeMap<_, _> = tiles
            .into_iter()
            .filter(|(_, t)| t["inView"] == true)
            .collect();
        (!in_view.is_empty()
            && in_view
                .values()
                .all(|t| t["w"] == size.0 && t["h"] == size.1 && t["frames"].as_u64() >= Some(2)))
        .then_some(in_view)
    })
    .unwrap_or_else(|| panic!("tiles never drew {size:?} pictures: {:?}", pictures(b)))
}

/// Waits until `/api/streams` shows `id`'s `step_px` rendition made for one viewer.
fn rendition_made(addr: std::net::SocketAddr, id: &str, step_px: u32) -> Value {
    let mut last = Value::Null;
    eventually(WAIT, || {
        last = api_stream(addr, id);
        let r = last["renditions"]
            .as_array()?
            .iter()
            .find(|r| r["width"] == step_px)?
            .clone();
        (r["viewers"] == 1 && r["frame_width"] == step_px && r["frames"].as_u64()? >= 2)
            .then_some(r)
    })
    .unwrap_or_else(|| panic!("no {step_px} rendition of {id} being made: {last}"))
}

#[test]
fn phone_tiles_ask_for_their_size_in_device_pixels_and_full_screen_stays_full_size() {
    let ids = ["a", "b", "c", "d"];
    let app = start(&streams_toml(&ids.map(|id| (id, HD_PATTERN))));
    let addr = app.local_addr();
    let base = format!("http://{addr}/");
    let connections = || {
        let n = app.hub().connections.load(Ordering::Relaxed);
        assert!(
            n <= MAX_PAGE_CONNECTIONS,
            "the page holds {n} connections (at most {MAX_PAGE_CONNECTIONS})"
        );
    };
    let mut b = Browser::launch();
    // Little kept for DevTools: the mux body never ends.
    b.call(
        "Network.enable",
        json!({ "maxTotalBufferSize": 1 << 20, "maxResourceBufferSize": 1 << 16 }),
    );
    b.events("Network.requestWillBeSent");
    // A phone held upright: 390x844 CSS pixels at 2 device pixels each.
    b.viewport(390, 844, true);
    b.navigate(&base);
    assert_eq!(b.eval("devicePixelRatio"), 2);

    // The grid asks for its tiles' width in device pixels, at the default rate.
    let mut asks = Vec::new();
    let first = wait_mux_ask(&mut b, &mut asks, "the tiles", |_| true);
    assert_eq!(first.ids, ids.join(","), "all four tiles are in view");
    assert_eq!(first.fps.as_deref(), Some("5"), "the default grid rate");
    let step = asks_tile_size(&mut b, &first);
    let size = camhub::rendition::size_at(step, (1280, 720));
    eprintln!("phone grid asked {first:?}: {size:?} rendition");
    assert!(step < 1280);
    // What the tiles draw is that rendition, live, and the server makes it for them.
    b.tiles_in_view_change(&[], connections);
    in_view_tiles_draw(&mut b, size);
    for id in ids {
        let r = rendition_made(addr, id, step);
        assert_eq!(r["frame_height"], size.1, "{r}");
        assert_eq!(
            api_stream(addr, id)["viewers"],
            1,
            "only the rendition is watched"
        );
    }
    b.screenshot("phone-grid-renditions.png");

    // Full screen plays the full-size stream, no width asked.
    b.eval("document.getElementById('tile-b').click()");
    eventually(WAIT, || {
        connections();
        (b.eval("document.body.dataset.view") == "full"
            && b.eval("document.getElementById('fimg').naturalWidth") == 1280)
            .then_some(())
    })
    .expect("full screen shows the 1280-wide stream");
    assert_eq!(
        b.eval("new URL(document.getElementById('fimg').src).search"),
        "",
        "full screen asks for no width"
    );
    b.eval("history.back()");
    let back = wait_mux_ask(&mut b, &mut asks, "the grid again", |_| true);
    assert_eq!(back.width_px, first.width_px);

    // The rate setting goes to the mux and is remembered across a reload.
    pick_rate(&mut b, 10);
    let ten = wait_mux_ask(&mut b, &mut asks, "10 fps", |a| {
        a.fps.as_deref() == Some("10")
    });
    assert_eq!(ten.width_px, first.width_px);
    asks.extend(b.mux_asks());
    b.reload();
    assert_eq!(b.eval("document.getElementById('rate').value"), "10");
    let reloaded = wait_mux_ask(&mut b, &mut asks, "the reloaded page", |_| true);
    assert_eq!(
        reloaded.fps.as_deref(),
        Some("10"),
        "the rate survives a reload"
    );
    assert_eq!(reloaded.width_px, first.width_px);
    in_view_tiles_draw(&mut b, size);

    // A width in the same rendition step does not reopen the mux: after a slightly wider
    // window, the next request (a rate change) still carries the first width.
    b.viewport(400, 844, true);
    eventually(WAIT, || (b.eval("innerWidth") == 400).then_some(())).expect("resized");
    let css = pictures(&mut b)["a"]["css"].as_f64().unwrap();
    let wider = (css * 2.0 - 0.01).ceil() as u32;
    assert!(
        Some(wider) != first.width_px && camhub::rendition::step_for(wider) == Some(step),
        "the test needs another width in the same step: {wider}"
    );
    let before = asks.len();
    pick_rate(&mut b, 2);
    let two = wait_mux_ask(&mut b, &mut asks, "2 fps", |a| {
        a.fps.as_deref() == Some("2")
    });
    assert_eq!(two.width_px, first.width_px, "{:?}", &asks[before..]);
    assert_eq!(asks.len(), before + 1, "one reopen: {:?}", &asks[before..]);

    // Rotated: the tiles are wider, the grid asks again, the tiles draw the new size.
    b.viewport(844, 390, true);
    let rotated = wait_mux_ask(&mut b, &mut asks, "the rotated tiles", |a| {
        a.width_px != first.width_px
    });
    assert_eq!(rotated.fps.as_deref(), Some("2"));
    let rotated_step = asks_tile_size(&mut b, &rotated);
    assert!(rotated_step > step, "{rotated:?}");
    eprintln!("rotated grid asked {rotated:?}");
    let rotated_size = camhub::rendition::size_at(rotated_step, (1280, 720));
    let in_view = in_view_tiles_draw(&mut b, rotated_size);
    for id in in_view.keys() {
        rendition_made(addr, id, rotated_step);
    }
    b.screenshot("phone-grid-rotated.png");

    // The snapshot-polling fallback asks for the same size.
    b.navigate(&format!("{base}?poll=1"));
    in_view_tiles_draw(&mut b, rotated_size);
    drop(b);
    app.stop(Duration::from_secs(2));
}

/// Kills the process group whose id a test's `exec:` command wrote to a file, when
/// dropped: camhub kills it on a clean stop, this covers a failing test.
struct KillGroupFrom(std::path::PathBuf);

impl Drop for KillGroupFrom {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", pid.trim())])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn a_stale_picture_and_a_sub_stream_that_is_down_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let (pid_file, go) = (dir.path().join("pid"), dir.path().join("go"));
    let _guard = KillGroupFrom(pid_file.clone());
    // A camera that sends three frames, then nothing (but stays connected) until `go`
    // exists, then live video. Its watchdog is far away: it stays "live" meanwhile.
    let ffmpeg = "ffmpeg -nostdin -hide_banner -loglevel error";
    let testsrc = "-f lavfi -i testsrc=size=320x240:rate=10";
    let idle = format!(
        "exec:echo $$ > {pid}; {ffmpeg} {testsrc} -frames:v 3 -f image2pipe -vcodec mjpeg -; \
         while [ ! -e {go} ]; do sleep 0.1; done; \
         exec {ffmpeg} -re {testsrc} -f image2pipe -vcodec mjpeg -",
        pid = pid_file.display(),
        go = go.display(),
    );
    // A camera with a sub-stream (another camhub pulled over HTTP-MJPEG) that feeds the
    // grid until it goes down.
    let upstream = start(&streams_toml(&[("small", "pattern:?size=640x360&fps=15")]));
    let app = start(&format!(
        "[[stream]]\nid = \"idle\"\nname = \"Idle\"\nstall_after_secs = 600\nurl = '''{idle}'''\n\
         [[stream]]\nid = \"door\"\nname = \"Door\"\nurl = \"{HD_PATTERN}\"\n\
         sub_url = \"http://{}/stream/small\"\n",
        upstream.local_addr()
    ));
    let addr = app.local_addr();
    eventually(WAIT, || {
        (api_stream(addr, "door")["sub"]["state"] == "live").then_some(())
    })
    .expect("the sub-stream goes live");
    // Wait until the server itself calls the idle camera's last frame stale.
    eventually(WAIT, || {
        let mut mux = MuxReader::open(addr, "ids=idle&width=366");
        (mux.record().kind == "stale").then_some(())
    })
    .expect("the idle camera's frame goes stale");

    let mut b = Browser::launch();
    b.viewport(390, 844, true);
    b.navigate(&format!("http://{addr}/"));
    let tiles = eventually(WAIT, || {
        let t = pictures(&mut b);
        (t["idle"]["stale"] == true && t["door"]["feed"] == "sub").then_some(t)
    })
    .unwrap_or_else(|| panic!("no stale flag: {:?}", pictures(&mut b)));
    let idle = &tiles["idle"];
    assert_eq!(idle["kind"], "stale", "{idle}");
    assert_eq!(idle["dim"], true, "a stale picture is dimmed: {idle}");
    assert_eq!(
        idle["badge"], "live",
        "the camera is still connected: {idle}"
    );
    assert_eq!(
        idle["subDown"], false,
        "no sub-stream, nothing down: {idle}"
    );
    let door = &tiles["door"];
    assert_eq!(door["stale"], false, "{door}");
    assert_eq!(door["subDown"], false, "{door}");
    b.screenshot("phone-stale.png");

    // The camera sends again: the flag goes with the first live picture.
    std::fs::write(&go, "").unwrap();
    let idle = eventually(WAIT, || {
        let t = pictures(&mut b).remove("idle").unwrap();
        (t["kind"] == "live").then_some(t)
    })
    .unwrap_or_else(|| panic!("no live picture: {:?}", pictures(&mut b)));
    assert_eq!(idle["stale"], false, "{idle}");
    assert_eq!(idle["dim"], false, "{idle}");

    // The sub-stream goes down: the grid falls back to the main stream and says so.
    assert!(upstream.stop(Duration::from_secs(2)));
    let door = eventually(WAIT, || {
        let t = pictures(&mut b).remove("door").unwrap();
        (t["subDown"] == true).then_some(t)
    })
    .unwrap_or_else(|| panic!("no sub-stream flag: {:?}", pictures(&mut b)));
    assert_eq!(door["feed"], "main", "{door}");
    assert_eq!(door["badge"], "live", "the camera itself is fine: {door}");
    assert_ne!(api_stream(addr, "door")["sub"]["state"], "live");
    assert_eq!(pictures(&mut b)["idle"]["subDown"], false);
    b.screenshot("phone-sub-down.png");
    drop(b);
    app.stop(Duration::from_secs(2));
}
