//! `GET /mux?ids=a,b,c&fps=N`: every visible tile of the grid page over ONE connection.
//!
//! Why: browsers open at most 6 HTTP/1.1 connections per host:port (Chromium, WebKit),
//! so a page with more than 6 MJPEG `<img>` tiles never loads the 7th. The page instead
//! reads this one stream with `fetch()` streaming (`response.body.getReader()`) and draws
//! each frame into its tile's canvas. It is deliberately NOT multipart/x-mixed-replace:
//! WebKit (Safari, every iOS browser) treats that type as a replacing document and
//! rejects the first `reader.read()` of such a body (seen and worked around the same way
//! in <https://github.com/EvanBacon/serve-sim/pull/3>; the spec question is
//! <https://github.com/whatwg/fetch/issues/1021>), so it gets its own content type and a
//! framing a few lines of JavaScript can parse.
//!
//! Framing (`Content-Type: application/x-camhub-mux`), repeated until the client leaves:
//!
//! ```text
//! <id> SP <length> SP <kind> SP <unix-ms> SP <feed> LF   one ASCII line, ≤ 128 bytes
//! <length bytes: one complete JPEG>               the same shared bytes as /stream/{id}
//! ```
//!
//! `kind` is `live` (a camera frame), `gone` (length 0: the stream was removed or
//! replaced; the page looks the streams up again), `stale` (a frame captured more than
//! `frame::STALE_AFTER` ago, e.g. an idle camera's last one, sent at once while a fresh
//! one is made) or `offline` (the OFFLINE placeholder, about once a second while the
//! stream is down); `unix-ms` is the capture time; `feed` is `main` or `sub`: which of
//! the camera's streams the picture came from (a grid normally fed by the sub-stream
//! says `main` while the sub-stream is down). Stream ids only use `[A-Za-z0-9_-]`, so
//! the line needs no escaping.
//!
//! `width=N` asks every tile for the rendition at least N pixels wide
//! (`rendition::step_for`): tiles get pictures the size they are drawn at.
//!
//! Cost per client: one task that sleeps until one of its streams publishes (or changes
//! state) and a tile is due; per stream three small counters and a viewer guard; at most
//! one frame in flight (a reference to the shared JPEG, no copy, no re-encode). Each tile
//! is capped at `fps` ([`DEFAULT_TILE_FPS`] unless asked) and always gets the newest frame,
//! so a slow phone skips frames instead of queueing them, and a stuck one is dropped by
//! the connection's send timeout. The client counts as one viewer of every stream it
//! includes (sources encode while watched) and is subject to the server's viewer limit.

use super::mjpeg::{placeholder, PLACEHOLDER_EVERY};
use super::{empty, text, Body, Ctx};
use crate::frame::Frame;
use crate::hub::{Stream, View};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// The response's content type.
pub const CONTENT_TYPE: &str = "application/x-camhub-mux";
/// Frames per second per tile when the request sets no `fps`: enough to see motion in a
/// grid of thumbnails while keeping a phone's bandwidth sane (12 VGA tiles at 5 fps are
/// roughly 2-3 MB/s). The full-screen view uses `/stream/{id}` at the camera's rate.
pub const DEFAULT_TILE_FPS: f64 = 5.0;
/// The `fps` a client may ask for.
const TILE_FPS_RANGE: std::ops::RangeInclusive<f64> = 0.1..=30.0;

/// Builds the response for one client. `query` holds `ids=a,b,c` (default: every stream)
/// and optionally `fps=N` (per tile) and `width=N` (each tile's width in pixels).
pub fn respond(ctx: &Ctx, query: &str, head: bool) -> Response<Body> {
    let width = match super::width_param(query) {
        Ok(w) => w,
        Err(msg) => return super::bad_request(&msg),
    };
    let fps = match super::query_value(query, "fps") {
        None => DEFAULT_TILE_FPS,
        Some(v) => match v.parse::<f64>() {
            Ok(fps) if TILE_FPS_RANGE.contains(&fps) => fps,
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "fps must be a number from 0.1 to 30\n",
                )
            }
        },
    };
    let mut streams: Vec<Arc<Stream>> = Vec::new();
    match super::query_value(query, "ids") {
        None => streams.extend(ctx.hub.streams().iter().cloned()),
        Some(ids) => {
            for id in ids.split(',').filter(|id| !id.is_empty()) {
                match ctx.hub.get(id) {
                    Some(s) if streams.iter().any(|t| Arc::ptr_eq(t, &s)) => {}
                    Some(s) => streams.push(s),
                    None => return super::not_found("no such stream\n"),
                }
            }
        }
    }
    if streams.is_empty() {
        return text(StatusCode::BAD_REQUEST, "ids names no stream\n");
    }
    if !head && ctx.hub.viewers_total() + streams.len() > ctx.max_viewers {
        return super::too_many_viewers();
    }
    let body = if head {
        empty()
    } else {
        let mux = Mux {
            tiles: streams.into_iter().map(|s| Tile::new(&s, width)).collect(),
            min_interval: Duration::from_secs_f64(1.0 / fps),
            next_tile: 0,
            pending: None,
        };
        // Ends when every stream of the client is gone (removed or replaced).
        let chunks = futures_lite::stream::unfold(mux, |mut m| async move {
            let chunk = m.next_chunk().await?;
            Some((Ok::<_, Infallible>(hyper::body::Frame::data(chunk)), m))
        });
        StreamBody::new(chunks).boxed_unsync()
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // Tells nginx-style proxies in front of camhub not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// A stream's `next_frame` wait, boxed so a client can wait on any number of them.
type FrameWait<'a> = Pin<Box<dyn Future<Output = Option<Arc<Frame>>> + Send + 'a>>;

/// One client's state.
struct Mux {
    tiles: Vec<Tile>,
    /// The per-tile fps cap.
    min_interval: Duration,
    /// Where the next scan starts, so busy tiles cannot starve the others.
    next_tile: usize,
    /// The JPEG whose header line was just sent: at most one frame in flight.
    pending: Option<Bytes>,
}

/// One stream of a client.
struct Tile {
    /// The stream at the tile's size; keeps the client counted as a viewer of it until
    /// the body is dropped.
    view: View,
    /// The last real frame sent; `None` before the first.
    last_seq: Option<u64>,
    /// When the fps cap next allows a frame (`None` before the first).
    next_due: Option<Instant>,
    last_placeholder_at: Option<Instant>,
}

/// What kind of frame a record carries.
#[derive(Clone, Copy)]
enum Kind {
    Live,
    Stale,
    Offline,
}

impl Tile {
    fn new(stream: &Arc<Stream>, width: Option<u32>) -> Tile {
        Tile {
            view: stream.view(width),
            last_seq: None,
            next_due: None,
            last_placeholder_at: None,
        }
    }

    /// When the fps cap next allows a frame.
    fn due_at(&self) -> Option<Instant> {
        self.next_due
    }

    /// When the next placeholder is due (meaningful while the stream is down).
    fn placeholder_due_at(&self, now: Instant) -> Instant {
        self.last_placeholder_at
            .map_or(now, |t| t + PLACEHOLDER_EVERY)
    }

    /// The frame to send now, if this tile is due and has one: the newest real frame, or
    /// the placeholder while the stream is down (the same rules as `/stream/{id}`).
    fn ready(&mut self, now: Instant) -> Option<(Arc<Frame>, Kind)> {
        if self.due_at().is_some_and(|t| now < t) {
            return None;
        }
        if !self.view.is_live() && now >= self.placeholder_due_at(now) {
            if let Some(p) = placeholder(&self.view) {
                self.last_placeholder_at = Some(now);
                // Don't replay a stale frame from before the outage after this.
                if self.last_seq.is_none() {
                    self.last_seq = Some(self.view.latest().map_or(0, |f| f.seq));
                }
                return Some((p, Kind::Offline));
            }
        }
        let frame = self
            .view
            .latest()
            .filter(|f| f.seq > self.last_seq.unwrap_or(0))?;
        self.last_seq = Some(frame.seq);
        self.last_placeholder_at = None;
        let kind = if frame.is_stale() {
            Kind::Stale
        } else {
            Kind::Live
        };
        Some((frame, kind))
    }
}

impl Mux {
    /// The next piece of the body; `None` once none of the client's streams is left.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(jpeg) = self.pending.take() {
            return Some(jpeg);
        }
        loop {
            // A stream removed or replaced while watched: say so once, drop the tile.
            if let Some(i) = self.tiles.iter().position(|t| t.view.stream().is_closed()) {
                let tile = self.tiles.remove(i);
                self.next_tile = 0;
                return Some(gone_header(&tile.view.stream().id));
            }
            if self.tiles.is_empty() {
                return None;
            }
            let now = Instant::now();
            let n = self.tiles.len();
            for i in (0..n).map(|k| (self.next_tile + k) % n) {
                let tile = &mut self.tiles[i];
                if let Some((frame, kind)) = tile.ready(now) {
                    tile.next_due = Some(super::mjpeg::next_due(
                        tile.next_due,
                        now,
                        self.min_interval,
                    ));
                    self.next_tile = (i + 1) % n;
                    self.pending = Some(frame.jpeg.clone());
                    return Some(record_header(&tile.view, &frame, kind));
                }
            }
            self.wait(now).await;
        }
    }

    /// Sleeps until some tile may have something to send: a due tile's stream publishes
    /// or changes state, a capped tile becomes due, or a placeholder is due.
    async fn wait(&self, now: Instant) {
        let mut deadline = now + PLACEHOLDER_EVERY;
        let mut wakers: Vec<FrameWait<'_>> = Vec::new();
        for tile in &self.tiles {
            match tile.due_at() {
                Some(due) if due > now => deadline = deadline.min(due),
                _ => {
                    if !tile.view.is_live() {
                        deadline = deadline.min(tile.placeholder_due_at(now));
                    }
                    // Returns at once if a frame newer than `after` exists, else on the
                    // next publish or state change (or its own timeout).
                    let after = tile.last_seq.unwrap_or(0);
                    wakers.push(Box::pin(tile.view.next_frame(after, PLACEHOLDER_EVERY)));
                }
            }
        }
        // Never spin: a placeholder due "now" that could not be drawn waits a moment.
        let mut timer = async_io::Timer::at(deadline.max(now + Duration::from_millis(20)));
        futures_lite::future::poll_fn(|cx| {
            if Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(());
            }
            for w in &mut wakers {
                if w.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
        .await;
    }
}

/// `<id> 0 gone <unix-ms> main\n`: the stream was removed or replaced (no JPEG follows);
/// the page looks up the streams again.
fn gone_header(id: &str) -> Bytes {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    Bytes::from(format!("{id} 0 gone {unix_ms} main\n"))
}

/// `<id> <length> <kind> <unix-ms> <feed>\n`.
fn record_header(view: &View, frame: &Frame, kind: Kind) -> Bytes {
    let unix_ms = frame
        .captured_wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let kind = match kind {
        Kind::Live => "live",
        Kind::Stale => "stale",
        Kind::Offline => "offline",
    };
    Bytes::from(format!(
        "{} {} {kind} {unix_ms} {}\n",
        view.stream().id,
        frame.jpeg.len(),
        view.origin().as_str()
    ))
}
