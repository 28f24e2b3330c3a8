//! `GET /`: the phone-first page, one self-contained HTML document (CSS and JavaScript
//! from `page.css` and `page.js`, embedded at build time; no external assets).
//!
//! The server renders every tile (name, state badge, last error) so the page is useful
//! before the script runs and without JavaScript: each tile is a link to its
//! `/stream/{id}`. The script then shows all cameras live over one `/mux` connection
//! (see `mux.rs` for why) with pictures the size of the tiles (renditions, `width=`) at
//! the grid rate the header's selector sets, keeps the badges (and the set of tiles:
//! cameras added, removed or changed while the page is open) current from
//! `/api/streams`, and adds the full-screen view (`#/cam/{id}`, full size), the list of
//! other boxes (`#/boxes`) and the admin's views (`#/add`, `#/manage`, `#/edit/{id}`:
//! set the admin password or log in, find, test, save, edit and remove cameras through
//! the admin API, `cameras.rs`). Every name and error is HTML-escaped here and only ever
//! set as text by the script.

use super::mux::DEFAULT_TILE_FPS;
use super::{Body, Ctx};
use crate::hub::{Role, Stream};
use crate::rendition::LADDER_PX;
use crate::supervise::State;
use hyper::Response;
use std::fmt::Write;

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// The grid rates a viewer can pick in the header (frames per second per tile): from
/// one a second, for a phone on a metered link, to smooth motion on Wi-Fi.
/// [`DEFAULT_TILE_FPS`] is the default and must be one of them.
const GRID_RATES_FPS: [u32; 5] = [1, 2, 5, 10, 15];

/// The admin's views (hidden until `#/add`, `#/manage` or `#/edit/{id}`): the first
/// admin password or the login, a problem with the saved cameras, the add flow (found
/// devices, an ONVIF camera's login and streams, an address or URL with its login, the
/// test's preview, the name), the list of cameras and the edit form. Static markup the
/// script fills with text; counted with the page's assets in the size test.
const ADMIN: &str = r##"<section id="admin" hidden><div class="bar"><a class="btn" id="aback" href="#/">&larr; Cameras</a><h2 id="atitle"></h2></div>
<div class="warn" id="problem" hidden><p id="ptext"></p><button type="button" class="btn" id="over" hidden>Start over</button></div>
<p class="msg" id="amsg" role="status"></p>
<form id="setpw" hidden><p>First choose an admin password for this box. It is asked for before cameras are added or changed; watching needs none.</p><label>Admin password<input type="password" id="pw1" autocomplete="new-password" minlength="8" required></label><label>The same again<input type="password" id="pw2" autocomplete="new-password" required></label><button class="btn pri">Set password</button><p class="msg" role="status"></p></form>
<form id="login" hidden><label>Admin password<input type="password" id="lpw" autocomplete="current-password" required></label><button class="btn pri">Log in</button><p class="msg" role="status"></p></form>
<div id="add" hidden><div id="found" hidden><h3>Found on your network</h3><ul class="list" id="devs"></ul></div>
<form id="onvif" hidden><h3 id="oname"></h3><label>User name<input id="ouser" autocomplete="off" autocapitalize="off" spellcheck="false"></label><label>Password<input type="password" id="opw" autocomplete="new-password"></label><button class="btn pri">Connect</button><p class="msg" role="status"></p><div id="oprof" hidden><label>Main stream<select id="omain"></select></label><label>Grid (sub-stream)<select id="osub"></select></label></div></form>
<form id="manual"><h3>Enter an address or URL</h3><label>Address or URL<input id="url" inputmode="url" autocomplete="off" autocapitalize="off" spellcheck="false" placeholder="192.168.1.20 or rtsp://…" required></label><label>User name<input id="user" autocomplete="off" autocapitalize="off" spellcheck="false"></label><label>Password<input type="password" id="pass" autocomplete="new-password"></label><button class="btn pri" id="test">Test</button><p class="msg" id="tmsg" role="status"></p></form>
<form id="result" hidden><img id="preview" alt="Preview"><p id="info"></p><label>Name<input id="name" required></label><button class="btn pri" id="save">Save</button><p class="msg" role="status"></p></form></div>
<div id="manage" hidden><ul class="list" id="cams"></ul><a class="btn" href="#/add">+ Add camera</a></div>
<form id="edit" hidden><label>Name<input id="ename" required></label><label>Address (URL)<input id="eurl" inputmode="url" autocomplete="off" autocapitalize="off" spellcheck="false" required></label><label>Sub-stream URL for the grid (optional)<input id="esub" inputmode="url" autocomplete="off" autocapitalize="off" spellcheck="false"></label><label>User name<input id="euser" autocomplete="off" autocapitalize="off" spellcheck="false"></label><label>Password<input type="password" id="epass" autocomplete="new-password"></label><details><summary>Sub-stream login, if different</summary><label>User name<input id="esuser" autocomplete="off" autocapitalize="off" spellcheck="false"></label><label>Password<input type="password" id="espass" autocomplete="new-password"></label></details><label class="check"><input type="checkbox" id="eon"> Enabled</label><button class="btn pri">Save</button><p class="msg" role="status"></p></form></section>"##;

pub fn respond(ctx: &Ctx) -> Response<Body> {
    let title = escape(&ctx.name);
    let mut tiles = String::new();
    for s in ctx.hub.streams().iter() {
        tile(&mut tiles, s);
    }
    let none = if tiles.is_empty() { "" } else { " hidden" };
    // The script clones this for a camera added while the page is open.
    let mut template = String::new();
    tile_markup(
        &mut template,
        "",
        "",
        (640, 360),
        badge(&State::Starting),
        " hidden",
        "",
    );
    let mut rates = String::new();
    for fps in GRID_RATES_FPS {
        let selected = if f64::from(fps) == DEFAULT_TILE_FPS {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            rates,
            r#"<option value="{fps}"{selected}>{fps} fps</option>"#
        );
    }
    let ladder = LADDER_PX.map(|w| w.to_string()).join(",");
    let html = format!(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="color-scheme" content="dark"><title>{title}</title><style>{CSS}</style></head><body data-ladder="{ladder}">
<header><h1>{title}</h1><nav><a class="btn" id="nav-cams" href="#/">Cameras</a><a class="btn" id="nav-boxes" href="#/boxes">Boxes</a><select class="btn" id="rate" aria-label="Grid frame rate" title="Grid frame rate">{rates}</select></nav></header>
<noscript><p class="note">JavaScript is off: tap a camera to watch it live.</p><style>.tile canvas,nav,#tools{{display:none}}</style></noscript>
<div id="tools"><a class="btn" id="addcam" href="#/add">+ Add camera</a><a class="btn" id="mgcam" href="#/manage">Manage cameras</a></div>
<main id="grid"><p class="note" id="none"{none}>No cameras are configured.</p>{tiles}</main>
<template id="tpl">{template}</template>
<section id="full" hidden aria-label="Camera"><div class="cap"><a class="btn" id="back" href="#/">&larr; Cameras</a><a class="btn" id="fsnap" href="#" download>Snapshot</a><span class="name" id="fname"></span><span class="badge" id="fbadge"></span><span class="fps" id="ffps"></span></div><span class="err" id="ferr"></span><img id="fimg" alt=""></section>
<section id="boxes" hidden><h2>Other camhub boxes</h2><ul id="peers"></ul><p id="nopeers">None found on this network yet.</p></section>
{ADMIN}
<script>{JS}</script></body></html>
"##
    );
    super::uncached("text/html; charset=utf-8", html)
}

/// One grid tile: a link to the stream (so it works without JavaScript), a canvas the
/// script draws frames into, the name, the state badge, the flags the script shows
/// ("stale" for an old picture, "sub-stream down" while the main stream stands in for
/// the sub-stream) and the last error.
fn tile(out: &mut String, s: &Stream) {
    let status = s.status();
    let error = match status.state {
        State::Live => String::new(),
        _ => escape(status.last_error.as_deref().unwrap_or_default()),
    };
    let size = s.latest().map_or(s.size_hint, |f| (f.width, f.height));
    let sub_down = match s.feed(Role::Sub) {
        Some(sub) if !sub.is_live() => "",
        _ => " hidden",
    };
    tile_markup(
        out,
        &s.id,
        &escape(&s.name),
        size,
        badge(&status.state),
        sub_down,
        &error,
    );
}

/// A tile's markup; `name` and `error` are already escaped. Also the template the
/// script clones for a camera added while the page is open (empty id and name).
fn tile_markup(
    out: &mut String,
    id: &str,
    name: &str,
    (width, height): (u32, u32),
    (label, class): (&str, &str),
    sub_down: &str,
    error: &str,
) {
    let _ = write!(
        out,
        r#"<a class="tile" id="tile-{id}" data-id="{id}" href="/stream/{id}" title="{name}"><canvas width="{width}" height="{height}"></canvas><noscript><img src="/snapshot/{id}" alt="" width="{width}" height="{height}"></noscript><span class="cap"><span class="name">{name}</span><span class="badge b-{class}">{label}</span><span class="flag f-stale" hidden>stale</span><span class="flag f-sub"{sub_down}>sub-stream down</span><span class="fps"></span></span><span class="err">{error}</span></a>"#,
    );
}

/// The badge mirrors the stream's LED: solid when live, "reconnecting" while it retries,
/// "failed" when it will not work as configured, "off" when disabled.
fn badge(state: &State) -> (&'static str, &'static str) {
    match state {
        State::Live => ("live", "live"),
        State::Starting | State::Stalled | State::Backoff { .. } => ("reconnecting", "re"),
        State::Failed => ("failed", "failed"),
        State::Disabled => ("off", "off"),
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b a="1" c='2'>&</b>"#),
            "&lt;b a=&quot;1&quot; c=&#39;2&#39;&gt;&amp;&lt;/b&gt;"
        );
    }

    #[test]
    fn the_default_grid_rate_is_offered() {
        assert!(GRID_RATES_FPS
            .iter()
            .any(|&fps| f64::from(fps) == DEFAULT_TILE_FPS));
    }

    #[test]
    fn embedded_assets_stay_small_and_local() {
        // 24 KB for the grid; the admin's views (login, found devices, add with a test,
        // edit, remove) need about 23 more, with no framework.
        let size = CSS.len() + JS.len() + ADMIN.len();
        assert!(size < 44 * 1024, "page assets grew to {size} bytes");
        for asset in [CSS, JS] {
            assert!(!asset.contains("//cdn") && !asset.contains("https://"));
        }
        // The script must not close the inline <script> early.
        assert!(!JS.contains("</script"));
    }
}
