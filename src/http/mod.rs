//! The HTTP server: hyper 1 (HTTP/1.1) on a smol executor, serving MJPEG streams,
//! snapshots, the JSON API, metrics and the page. It takes an already bound listener and
//! the shutdown signal, so tests run it on port 0.

mod api;
mod cameras;
mod conn;
mod discover;
mod mjpeg;
mod mux;
mod page;

use crate::hub::{Hub, Stream};
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use smol::Executor;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use mjpeg::BOUNDARY;

/// Binds the server's listening socket (with [`LISTEN_BACKLOG`]).
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    conn::bind(addr, LISTEN_BACKLOG)
}

/// Requests whose line and headers exceed this get 431 and a close.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// A client that has not sent complete headers after this long is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pending connections the kernel queues before camhub accepts them (a page opening many
/// tiles, or a benchmark, connects in bursts; the default 128 drops SYNs).
pub const LISTEN_BACKLOG: i32 = 1024;

/// What the handlers need.
pub struct Ctx {
    pub hub: Arc<Hub>,
    /// Display name of the box, shown on the page.
    pub name: String,
    /// A viewer whose socket accepts nothing for this long is dropped.
    pub send_timeout: Duration,
    /// Connections beyond this get a 503 and are closed at once, so no client can
    /// exhaust fds or memory.
    pub max_connections: usize,
    /// MJPEG viewers (all streams together) beyond this get a 503.
    pub max_viewers: usize,
    /// The mDNS name in use and the other boxes found on the LAN.
    pub mdns: crate::mdns::MdnsInfo,
    /// When set, every endpoint but `/healthz` needs these HTTP Basic credentials.
    pub auth: Option<crate::config::Auth>,
    /// The live set of streams, for the admin API's changes.
    pub streams: Arc<crate::streams::Streams>,
    /// Cameras saved from the page (`None`: no state directory, nothing can be saved).
    pub store: Option<Arc<crate::store::Store>>,
    /// Who may change things.
    pub admin: Arc<crate::admin::Admin>,
    /// For work that must stop with camhub (camera tests).
    pub shutdown: Shutdown,
    /// Finding cameras on the LAN, when the page asks (see `discover.rs`).
    pub discovery_enabled: bool,
    pub discovery: discover::Discovery,
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Accepts connections until shutdown, serving each on `executor`.
pub async fn serve(
    listener: smol::net::TcpListener,
    ctx: Arc<Ctx>,
    shutdown: Shutdown,
    executor: Arc<Executor<'static>>,
) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let (stream, peer) = match accepted {
            None => return,
            Some(Ok(conn)) => conn,
            Some(Err(e)) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                async_io::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Counted here, before the task exists, so a burst of accepts cannot overshoot.
        let Some(counted) = ConnectionCount::try_new(&ctx.hub, ctx.max_connections) else {
            conn::refuse(stream);
            continue;
        };
        conn::tune(&stream, ctx.send_timeout);
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        executor
            .spawn(async move {
                let _counted = counted;
                let io = smol_hyper::rt::FuturesIo::new(conn::SendTimeout::new(
                    stream,
                    ctx.send_timeout,
                ));
                let service = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, Infallible>(handle(&ctx, req, peer.ip()).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(smol_hyper::rt::SmolTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    // A client that sends its request and then shuts its write side (`nc -N`,
                    // shell health checks, some embedded clients) still gets its answer;
                    // hyper's default closes on that EOF before responding. A dead peer is
                    // still found by the send timeout and TCP keepalive.
                    .half_close(true)
                    .max_header_size(MAX_HEADER_BYTES)
                    .max_buf_size(MAX_HEADER_BYTES.max(8192) * 2)
                    // smol-hyper's FuturesIo does not report vectored-write support, so
                    // hyper's "auto" would copy every frame into a per-connection buffer.
                    // Forcing writev sends the shared frame bytes as they are.
                    .writev(true)
                    .serve_connection(io, service);
                futures_lite::future::or(
                    async {
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    },
                    shutdown.wait(),
                )
                .await;
            })
            .detach();
    }
}

/// Counts a connection for as long as it is open.
struct ConnectionCount(Arc<Hub>);

impl ConnectionCount {
    /// Counts one more connection, or returns `None` at `max`.
    fn try_new(hub: &Arc<Hub>, max: usize) -> Option<Self> {
        let previous = hub.connections.fetch_add(1, Ordering::Relaxed);
        if previous >= max {
            hub.connections.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(ConnectionCount(hub.clone()))
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Routes one request.
async fn handle(ctx: &Arc<Ctx>, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    if cameras::owns(req.uri().path()) {
        // The admin API has its own credential (the admin's), checked there; only setting
        // the first admin password also needs the viewers' one when there is one, so
        // that the box's first visitor is at least a viewer.
        if req.uri().path() == "/api/admin/password" {
            if let Some(auth) = &ctx.auth {
                if !authorized(auth, &req) {
                    return unauthorized();
                }
            }
        }
        return cameras::respond(ctx, req, peer).await;
    }
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let path = req.uri().path();
    if let Some(auth) = &ctx.auth {
        // Health checks (systemd, monitoring) work without credentials; they say nothing.
        if path != "/healthz" && !authorized(auth, &req) {
            return unauthorized();
        }
    }
    let query = req.uri().query().unwrap_or("");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] => match query_value(query, "action").as_deref() {
            // mjpg-streamer's URLs, so tools written for it work unchanged.
            Some(action) => {
                let stream = match query_value(query, "id") {
                    Some(id) => ctx.hub.get(&id),
                    None => ctx.hub.streams().first().cloned(),
                };
                match (action, stream) {
                    (_, None) => not_found("no such stream\n"),
                    ("stream", Some(s)) => {
                        mjpeg::respond(&s, query, head, ctx.hub.viewers_total() >= ctx.max_viewers)
                    }
                    ("snapshot", Some(s)) => snapshot(&s, query).await,
                    _ => text(
                        StatusCode::BAD_REQUEST,
                        "action must be stream or snapshot\n",
                    ),
                }
            }
            None => page::respond(ctx),
        },
        ["stream", id] => match ctx.hub.get(id) {
            Some(s) => mjpeg::respond(&s, query, head, ctx.hub.viewers_total() >= ctx.max_viewers),
            None => not_found("no such stream\n"),
        },
        ["snapshot", id] => match ctx.hub.get(id) {
            Some(s) => snapshot(&s, query).await,
            None => not_found("no such stream\n"),
        },
        ["mux"] => mux::respond(ctx, query, head),
        ["api", "streams"] => api::streams(ctx),
        ["api", "peers"] => api::peers(ctx),
        ["api", "info"] => api::info(ctx),
        ["metrics"] => api::metrics(ctx),
        ["healthz"] => text(StatusCode::OK, "ok\n"),
        _ => not_found("not found\n"),
    }
}

/// True when the request carries the configured Basic credentials.
fn authorized(auth: &crate::config::Auth, req: &Request<Incoming>) -> bool {
    use base64::Engine;
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let Some(encoded) = value.to_str().ok().and_then(|v| {
        v.strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
    }) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return false;
    };
    let (user, password) = text.split_once(':').unwrap_or((&text, ""));
    auth.accepts(user, password)
}

/// 401 asking the browser for credentials.
fn unauthorized() -> Response<Body> {
    let mut resp = text(StatusCode::UNAUTHORIZED, "authorization required\n");
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"camhub\", charset=\"UTF-8\""),
    );
    resp
}

/// How long a snapshot request waits for a fresh frame.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);
/// A frame older than this is not "the newest picture" any more.
const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(1);

/// `GET /snapshot/{id}[?width=N]`: the newest JPEG (at a rendition's size with
/// `width`), woken from an idle source if need be.
async fn snapshot(stream: &Arc<Stream>, query: &str) -> Response<Body> {
    let width = match width_param(query) {
        Ok(w) => w,
        Err(msg) => return bad_request(&msg),
    };
    // A rendition is made for its viewers only: the snapshot is one for a moment.
    let view = stream.view(width);
    if !view.is_live() {
        return unavailable(stream);
    }
    // Sources skip encoding while nobody watches; ask for frames for a moment.
    if view.step().is_none() {
        stream.want_for(SNAPSHOT_WAIT);
    }
    let latest = view.latest();
    let fresh = match &latest {
        Some(f) if f.captured_at.elapsed() <= SNAPSHOT_MAX_AGE => Some(f.clone()),
        _ => {
            let after = latest.as_ref().map_or(0, |f| f.seq);
            view.next_frame(after, SNAPSHOT_WAIT).await
        }
    };
    match fresh {
        Some(frame) => {
            let mut resp = uncached("image/jpeg", frame.jpeg.clone());
            resp.headers_mut()
                .insert("x-timestamp", mjpeg::timestamp_header(&frame));
            resp
        }
        None => unavailable(stream),
    }
}

/// 503 with the stream's state and reason, for a snapshot that cannot be had.
fn unavailable(stream: &Stream) -> Response<Body> {
    let status = stream.status();
    let reason = status.last_error.as_deref().unwrap_or("no frame yet");
    let mut resp = text(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!(
            "stream {} is {}: {}\n",
            stream.id,
            status.state.as_str(),
            reason
        ),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The `width=N` of a query: `None` without one; the message for a 400 when it is not a
/// positive number of pixels.
fn width_param(query: &str) -> Result<Option<u32>, String> {
    query_value(query, "width")
        .map(|v| crate::rendition::parse_width(&v))
        .transpose()
}

/// 400 with `msg` as the body.
fn bad_request(msg: &str) -> Response<Body> {
    text(StatusCode::BAD_REQUEST, &format!("{msg}\n"))
}

/// The first value of `key` in a query string.
fn query_value(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn empty() -> Body {
    Empty::new().boxed_unsync()
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A response that must never be cached (everything here is live).
fn uncached(content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// 503 for a stream request over the viewer limit. The connection is closed too: a
/// refused client holding it open would eat the slots kept free for the page and API.
fn too_many_viewers() -> Response<Body> {
    let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, "too many viewers\n");
    let h = resp.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn not_found(body: &str) -> Response<Body> {
    text(StatusCode::NOT_FOUND, body)
}
