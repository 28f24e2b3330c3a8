//! `GET /`: a small page with a live tile per stream. Plain HTML, no JavaScript, no
//! external assets. (The phone-first grid that stays within the browser's connection
//! limit replaces this in the UI work.)

use super::{full, Body, Ctx};
use hyper::header::{self, HeaderValue};
use hyper::Response;
use std::fmt::Write;

pub fn respond(ctx: &Ctx) -> Response<Body> {
    let mut tiles = String::new();
    for s in ctx.hub.streams() {
        let status = s.status();
        let _ = write!(
            tiles,
            r#"<figure><a href="/stream/{id}"><img src="/stream/{id}" alt="{name}"></a><figcaption>{name} <small>{state}</small> · <a href="/snapshot/{id}">snapshot</a></figcaption></figure>"#,
            id = s.id,
            name = escape(&s.name),
            state = status.state.as_str(),
        );
    }
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title><style>body{{margin:0;background:#111;color:#eee;font:16px system-ui,sans-serif}}h1{{font-size:1.2em;margin:.5em}}main{{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:8px;padding:8px}}figure{{margin:0}}img{{width:100%;background:#222;display:block}}a{{color:#8cf}}</style></head><body><h1>{title}</h1><main>{tiles}</main></body></html>"#,
        title = escape(&ctx.name),
    );
    let mut resp = Response::new(full(html));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
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
