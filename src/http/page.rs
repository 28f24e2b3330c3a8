//! `GET /`: the phone-first page, one self-contained HTML document (CSS and JavaScript
//! from `page.css` and `page.js`, embedded at build time; no external assets).
//!
//! The server renders every tile (name, state badge, last error) so the page is useful
//! before the script runs and without JavaScript: each tile is a link to its
//! `/stream/{id}`. The script then shows all cameras live over one `/mux` connection
//! (see `mux.rs` for why) with pictures the size of the tiles (renditions, `width=`) at
//! the grid rate the header's selector sets, keeps the badges current from
//! `/api/streams`, and adds the full-screen view (`#/cam/{id}`, full size) and the list
//! of other boxes (`#/boxes`). Every name and error is HTML-escaped here and only ever set
//! as text by the script.

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

pub fn respond(ctx: &Ctx) -> Response<Body> {
    let title = escape(&ctx.name);
    let mut tiles = String::new();
    for s in ctx.hub.streams().iter() {
        tile(&mut tiles, s);
    }
    if tiles.is_empty() {
        tiles.push_str(r#"<p class="note">No cameras are configured.</p>"#);
    }
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
<noscript><p class="note">JavaScript is off: tap a camera to watch it live.</p><style>.tile canvas,nav{{display:none}}</style></noscript>
<main id="grid">{tiles}</main>
<section id="full" hidden aria-label="Camera"><div class="cap"><a class="btn" id="back" href="#/">&larr; Cameras</a><a class="btn" id="fsnap" href="#" download>Snapshot</a><span class="name" id="fname"></span><span class="badge" id="fbadge"></span><span class="fps" id="ffps"></span></div><span class="err" id="ferr"></span><img id="fimg" alt=""></section>
<section id="boxes" hidden><h2>Other camhub boxes</h2><ul id="peers"></ul><p id="nopeers">None found on this network yet.</p></section>
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
    let (label, class) = badge(&status.state);
    let error = match status.state {
        State::Live => String::new(),
        _ => escape(status.last_error.as_deref().unwrap_or_default()),
    };
    let (width, height) = s.latest().map_or(s.size_hint, |f| (f.width, f.height));
    let sub_down = match s.feed(Role::Sub) {
        Some(sub) if !sub.is_live() => "",
        _ => " hidden",
    };
    let _ = write!(
        out,
        r#"<a class="tile" id="tile-{id}" data-id="{id}" href="/stream/{id}" title="{name}"><canvas width="{width}" height="{height}"></canvas><noscript><img src="/snapshot/{id}" alt="" width="{width}" height="{height}"></noscript><span class="cap"><span class="name">{name}</span><span class="badge b-{class}">{label}</span><span class="flag f-stale" hidden>stale</span><span class="flag f-sub"{sub_down}>sub-stream down</span><span class="fps"></span></span><span class="err">{error}</span></a>"#,
        id = s.id,
        name = escape(&s.name),
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
        assert!(
            CSS.len() + JS.len() < 24 * 1024,
            "page assets grew to {} bytes",
            CSS.len() + JS.len()
        );
        for asset in [CSS, JS] {
            assert!(!asset.contains("//cdn") && !asset.contains("https://"));
        }
        // The script must not close the inline <script> early.
        assert!(!JS.contains("</script"));
    }
}
