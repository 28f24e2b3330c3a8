//! The headless Chromium driver shared by tests/browser.rs and tests/discover_e2e.rs:
//! Debian's `chromium` driven over the DevTools protocol through tests/peers/cdp.py, on
//! the machine's loopback or inside a network namespace (`Browser::launch_in`), with the
//! page helpers the tests share (taps, typing, tiles and their canvas pixels). Included
//! with `#[path = "common/browser.rs"] mod chromium;` next to `mod common;`.

#![allow(dead_code)] // Each test file uses its own part of it.

use crate::common::eventually;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Generous bounds for anything the browser has to do; the test normally takes far less.
pub const WAIT: Duration = Duration::from_secs(20);
pub const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

/// A child process killed (by PID) and reaped when dropped, also when a test fails.
pub struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Chromium in its own process group; the whole group (browser, renderers, zygote,
/// crash handler) is killed when dropped.
pub struct KilledGroup(Child);

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
pub struct Browser {
    to_bridge: ChildStdin,
    from_bridge: BufReader<ChildStdout>,
    // Dropped in this order: the bridge, then the browser, then its profile directory.
    _bridge: Killed,
    _chromium: KilledGroup,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn launch() -> Browser {
        Browser::launch_in(None)
    }

    /// Chromium and its DevTools bridge inside network namespace `ns` (`ip netns exec`,
    /// which execs: same PIDs), sharing its loopback for the DevTools port; on the
    /// machine's own network when None.
    pub fn launch_in(ns: Option<&str>) -> Browser {
        let profile = tempfile::tempdir().expect("temp dir");
        let inside = |program: &str| match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        };
        let mut chromium = inside("chromium");
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
        let mut bridge = inside("/usr/bin/python3");
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

    pub fn read_reply(&mut self) -> Value {
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
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let cmd = json!({ "method": method, "params": params });
        writeln!(self.to_bridge, "{cmd}").expect("writing to the DevTools bridge");
        self.to_bridge.flush().unwrap();
        self.read_reply()
    }

    /// Evaluates a JavaScript expression in the page (awaiting promises) and returns its
    /// value; a thrown exception fails the test.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression}\nthrew: {e}");
        }
        r["result"]["value"].clone()
    }

    pub fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": if mobile { 2 } else { 1 }, "mobile": mobile }),
        );
    }

    /// Reloads the page and waits for the new document to load.
    pub fn reload(&mut self) {
        self.eval("window.__beforeReload = 1");
        self.call("Page.reload", json!({}));
        eventually(WAIT, || {
            (self.eval("!window.__beforeReload && document.readyState") == "complete").then_some(())
        })
        .expect("the page reloads");
    }

    /// The params of the `method` events (e.g. Network.requestWillBeSent, once its
    /// domain is enabled) since the previous call; the first call starts keeping them.
    pub fn events(&mut self, method: &str) -> Vec<Value> {
        let r = self.call("bridge.events", json!({ "method": method }));
        r["events"].as_array().expect("event list").clone()
    }

    /// The `/mux` requests the page sent since the previous call (Network must be
    /// enabled and `events("Network.requestWillBeSent")` called once before).
    pub fn mux_asks(&mut self) -> Vec<MuxAsk> {
        self.events("Network.requestWillBeSent")
            .iter()
            .filter_map(|e| MuxAsk::parse(e["request"]["url"].as_str()?))
            .collect()
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        eventually(WAIT, || {
            let state = self.eval("location.href + ' ' + document.readyState");
            (state.as_str() == Some(&format!("{url} complete"))).then_some(())
        })
        .unwrap_or_else(|| panic!("{url} did not load"));
    }

    /// Saves a PNG screenshot under target/tmp/browser/ (for people; never asserted on).
    pub fn screenshot(&mut self, name: &str) {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
        self.screenshot_in(&dir, name);
    }

    /// Saves a PNG screenshot as `dir/name` (for people; never asserted on).
    pub fn screenshot_in(&mut self, dir: &std::path::Path, name: &str) {
        use base64::Engine as _;
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Whether the element `selector` is shown (in the layout, not hidden).
    pub fn shown(&mut self, selector: &str) -> bool {
        let sel = json!(selector);
        self.eval(&format!(
            "(function () {{ var e = document.querySelector({sel}); return !!e && e.getClientRects().length > 0; }})()"
        )) == true
    }

    /// Waits until `selector` is shown.
    pub fn wait_shown(&mut self, selector: &str, timeout: Duration) {
        eventually(timeout, || self.shown(selector).then_some(()))
            .unwrap_or_else(|| panic!("{selector} was never shown"));
    }

    /// Taps the element `selector` the way a finger does (a click event), after checking
    /// it is shown and big enough for a thumb (44 CSS px tall). Counts the tap.
    pub fn tap(&mut self, selector: &str, taps: &mut u32) {
        let sel = json!(selector);
        let height = self.eval(&format!(
            "(function () {{ var e = document.querySelector({sel}); \
             if (!e || !e.getClientRects().length) return -1; \
             e.scrollIntoView({{ block: 'nearest' }}); \
             var h = e.getBoundingClientRect().height; e.click(); return h; }})()"
        ));
        let height = height.as_f64().unwrap();
        assert!(
            height >= 0.0,
            "{selector} is not shown, so it cannot be tapped"
        );
        assert!(
            height >= 44.0,
            "{selector} is {height} px tall: too small for a thumb"
        );
        *taps += 1;
    }

    /// Types `value` into the input `selector` (its value, then an `input` event): one tap
    /// to focus it, counted.
    pub fn type_in(&mut self, selector: &str, value: &str, taps: &mut u32) {
        let (sel, value) = (json!(selector), json!(value));
        let ok = self.eval(&format!(
            "(function () {{ var e = document.querySelector({sel}); \
             if (!e || !e.getClientRects().length) return false; \
             e.focus(); e.value = {value}; e.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             return e.getBoundingClientRect().height >= 44; }})()"
        ));
        assert_eq!(ok, true, "{selector} is not a shown, thumb-sized field");
        *taps += 1;
    }

    /// Answers the page's next request to a URL containing `path` (paused by
    /// `Fetch.enable` with a pattern for it, `events("Fetch.requestPaused")` called once
    /// before) with `body` as JSON, and returns the paused request's event.
    pub fn answer(&mut self, path: &str, body: &Value) -> Value {
        use base64::Engine as _;
        let paused = eventually(WAIT, || {
            self.events("Fetch.requestPaused").into_iter().find(|e| {
                e["request"]["url"]
                    .as_str()
                    .is_some_and(|u| u.contains(path))
            })
        })
        .unwrap_or_else(|| panic!("the page never asked for {path}"));
        self.call(
            "Fetch.fulfillRequest",
            json!({
                "requestId": paused["requestId"],
                "responseCode": 200,
                "responseHeaders": [{ "name": "Content-Type", "value": "application/json" }],
                "body": base64::engine::general_purpose::STANDARD.encode(body.to_string()),
            }),
        );
        paused
    }

    /// `selector`'s text.
    pub fn text(&mut self, selector: &str) -> String {
        let sel = json!(selector);
        let v = self.eval(&format!(
            "(function () {{ var e = document.querySelector({sel}); return e ? e.textContent : null; }})()"
        ));
        v.as_str()
            .unwrap_or_else(|| panic!("no {selector}"))
            .to_string()
    }

    /// Every tile's state as the page shows it.
    pub fn tiles(&mut self) -> BTreeMap<String, Tile> {
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
    pub fn tiles_in_view_change(
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
pub struct MuxAsk {
    pub ids: String,
    /// `width=`, if any.
    pub width_px: Option<u32>,
    /// `fps=`, if any.
    pub fps: Option<String>,
}

impl MuxAsk {
    /// The request for `url`, if it is a `/mux` one.
    pub fn parse(url: &str) -> Option<MuxAsk> {
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
pub struct Tile {
    pub frames: u64,
    pub hash: u64,
    pub in_view: bool,
    pub badge: String,
    pub error: String,
}

/// Per tile: id, frames drawn (counted by the page), a hash of the canvas pixels,
/// whether it is in the viewport, its badge and error text.
pub const TILES_JS: &str = r#"Array.from(document.querySelectorAll('.tile')).map(function (el) {
  var c = el.querySelector('canvas'), r = el.getBoundingClientRect(), h = 0;
  var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (var i = 0; i < d.length; i += 7) h = (Math.imul(h, 31) + d[i]) >>> 0;
  return { id: el.dataset.id, frames: +(el.dataset.frames || 0), hash: h,
    inView: r.bottom > 0 && r.top < innerHeight && !document.getElementById('grid').hidden,
    badge: el.querySelector('.badge').textContent, err: el.querySelector('.err').textContent };
})"#;

/// Waits until the tile `id` is live and its canvas draws changing pictures.
pub fn tile_draws(b: &mut Browser, id: &str) -> Tile {
    let first = eventually(WAIT * 2, || {
        let t = b.tiles().remove(id)?;
        (t.frames >= 2 && t.badge == "live").then_some(t)
    })
    .unwrap_or_else(|| panic!("the tile {id} never went live: {:?}", b.tiles()));
    eventually(WAIT, || {
        let t = b.tiles().remove(id)?;
        (t.frames >= first.frames + 3 && t.hash != first.hash).then_some(t)
    })
    .unwrap_or_else(|| panic!("the tile {id} does not draw: {:?}", b.tiles()))
}
