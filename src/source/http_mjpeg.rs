//! The HTTP-MJPEG pull source (`http://…`): a multipart/x-mixed-replace stream (phone
//! webcam apps' `/video`, MJPEG cameras, another camhub's `/stream/{id}`) or a single-JPEG
//! snapshot URL polled at the stream's `fps`, with frames passed through untouched.
//!
//! Everything is blocking I/O on the source's own thread, with a read timeout of
//! [`POLL_INTERVAL`] so `next` returns [`Event::Idle`] when the peer goes quiet (the
//! supervisor's stall watchdog takes it from there). Parsing is incremental and bounded:
//! a partial frame survives an Idle return, and no part or header may grow past a cap.
//!
//! This module owns the HTTP side: connecting, the request, the response head, statuses
//! and redirects, the transfer codings (Content-Length, chunked) and snapshot bodies. The
//! multipart parts inside a stream's body are [`crate::multipart`]'s, shared with the
//! exec source.

use crate::config::StreamConfig;
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::multipart::{boundary_param, Multipart};
use crate::shutdown::Shutdown;
use crate::source::{Event, Source, POLL_INTERVAL};
use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use futures_lite::FutureExt as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use url::{Position, Url};

/// Largest JPEG part (or snapshot) accepted: far above any camera frame (a 4K JPEG is
/// ~2 MiB), low enough that a broken peer sending an endless part cannot exhaust a Pi.
pub const MAX_PART_BYTES: usize = 8 * 1024 * 1024;
/// Largest response head (the part header blocks inside a stream have their own cap,
/// [`crate::multipart::MAX_PART_HEADERS_BYTES`]).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// A TCP connect that takes longer than this fails (and is retried with backoff).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The status line and headers must arrive this soon after connecting.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Sending the (small) request never takes this long unless the peer is wedged.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed per open (cameras and proxies redirect `/` to `/video` and such).
const MAX_REDIRECTS: u32 = 3;
/// Snapshot polling rate when the stream sets no `fps`.
pub const DEFAULT_SNAPSHOT_FPS: u32 = 2;
/// Broken (non-JPEG or torn) parts tolerated in a row before the connection is dropped:
/// one bad frame is skipped, a peer sending only garbage is reconnected.
const MAX_BAD_PARTS_IN_A_ROW: u32 = 20;
/// Bytes read from the socket per call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// See the module docs.
pub struct HttpMjpegSource {
    /// The URL without credentials (they live only in `authorization`).
    url: Url,
    /// `Basic …` for the Authorization header, when credentials are configured.
    authorization: Option<String>,
    snapshot_interval: Duration,
    max_part_bytes: usize,
    shutdown: Shutdown,
    session: Option<Session>,
    bad_parts_in_a_row: u32,
}

/// What an open connection is delivering.
enum Session {
    /// A multipart stream: one connection, many parts.
    Stream { conn: Conn, parts: Multipart },
    /// A snapshot URL: one request per frame.
    Snapshot(Snapshot),
}

struct Snapshot {
    /// Where the first request ended up after redirects.
    url: Url,
    /// The credentials for `url`: none if a redirect left the configured host.
    authorization: Option<String>,
    /// The request in flight, if any.
    conn: Option<Conn>,
    body: Whole,
    /// When the request in flight (or the last one) started, for pacing.
    started_at: Instant,
    /// The last poll produced a frame: waiting for the next one is a sign of life.
    last_ok: bool,
}

impl HttpMjpegSource {
    /// Builds the source from a stream's config. `https://` fails permanently: TLS is not
    /// built in.
    pub fn from_config(stream: &StreamConfig, shutdown: &Shutdown) -> Result<Box<dyn Source>> {
        let url = Url::parse(&stream.url)
            .map_err(|e| Error::Permanent(format!("bad URL {}: {e}", stream.redacted_url())))?;
        let (url, authorization) =
            split_credentials(url, stream.username.as_deref(), stream.password.as_deref())?;
        let fps = stream.fps.unwrap_or(DEFAULT_SNAPSHOT_FPS).max(1);
        Ok(Box::new(HttpMjpegSource {
            url,
            authorization,
            snapshot_interval: Duration::from_secs(1) / fps,
            max_part_bytes: MAX_PART_BYTES,
            shutdown: shutdown.clone(),
            session: None,
            bad_parts_in_a_row: 0,
        }))
    }

    /// Turns a part or snapshot into a frame, or skips it when it is not a usable JPEG
    /// (None) until too many in a row say the peer sends nothing else.
    fn accept(&mut self, jpeg: Bytes) -> Result<Option<Frame>> {
        match crate::jpeg::check(&jpeg) {
            Ok((width, height)) => {
                self.bad_parts_in_a_row = 0;
                Ok(Some(Frame::new(jpeg, width, height)))
            }
            Err(e) => {
                self.bad_parts_in_a_row += 1;
                if self.bad_parts_in_a_row >= MAX_BAD_PARTS_IN_A_ROW {
                    return Err(Error::Source(format!(
                        "{} broken frames in a row from {}; last: {e}",
                        self.bad_parts_in_a_row,
                        origin(&self.url)
                    )));
                }
                tracing::debug!(error = %e, "skipping a broken frame");
                Ok(None)
            }
        }
    }

    fn next_streamed(&mut self) -> Result<Event<'_>> {
        let deadline = Instant::now() + POLL_INTERVAL;
        let mut ended = false;
        loop {
            let Some(Session::Stream { conn, parts }) = &mut self.session else {
                return Err(Error::Source("not connected".into()));
            };
            if let Some(part) = parts.next_part()? {
                if let Some(frame) = self.accept(part)? {
                    return Ok(Event::Frame(frame));
                }
                continue;
            }
            if ended || parts.is_closed() {
                return Err(Error::Source(format!(
                    "{} closed the stream",
                    origin(&self.url)
                )));
            }
            // A trickle of bytes that never completes a frame is no sign of life: return
            // Idle so the stall watchdog sees it.
            if Instant::now() >= deadline || self.shutdown.is_triggered() {
                return Ok(Event::Idle);
            }
            match conn.read_body(parts)? {
                Progress::Data => {}
                Progress::Timeout => return Ok(Event::Idle),
                Progress::End { .. } => ended = true,
            }
        }
    }

    fn next_snapshot(&mut self) -> Result<Event<'_>> {
        let deadline = Instant::now() + POLL_INTERVAL;
        loop {
            let Some(Session::Snapshot(snap)) = &mut self.session else {
                return Err(Error::Source("not connected".into()));
            };
            let Some(conn) = &mut snap.conn else {
                let due = snap.started_at + self.snapshot_interval;
                let now = Instant::now();
                if now < due {
                    self.shutdown.sleep((due - now).min(POLL_INTERVAL));
                    // Waiting is our own pacing, not a silent peer, if the last poll
                    // worked; after a broken snapshot it is not progress.
                    return Ok(if snap.last_ok {
                        Event::Alive
                    } else {
                        Event::Idle
                    });
                }
                snap.started_at = now;
                let mut conn = Conn::open(&snap.url, &self.shutdown)?;
                conn.send_request(&snap.url, snap.authorization.as_deref())?;
                snap.conn = Some(conn);
                continue;
            };
            if Instant::now() >= deadline || self.shutdown.is_triggered() {
                return Ok(Event::Idle);
            }
            if !conn.head_done() {
                match conn.read_head()? {
                    None => return Ok(Event::Idle),
                    Some(head) => {
                        match check_status(&head, &snap.url, snap.authorization.is_some())? {
                            Next::Body(BodyKind::Jpeg) => {}
                            Next::Body(BodyKind::Multipart(_)) => {
                                return Err(Error::Source(format!(
                                    "{} switched from single JPEGs to a multipart stream",
                                    origin(&snap.url)
                                )))
                            }
                            Next::Redirect(_) => {
                                return Err(Error::Source(format!(
                                    "{} redirected a snapshot request",
                                    origin(&snap.url)
                                )))
                            }
                        }
                    }
                }
                continue;
            }
            match conn.read_body(&mut snap.body)? {
                Progress::Data => {}
                Progress::Timeout => return Ok(Event::Idle),
                Progress::End { complete } => {
                    let jpeg = snap.body.take();
                    snap.conn = None;
                    snap.last_ok = false;
                    if !complete {
                        return Err(Error::Source(format!(
                            "{} closed the connection in the middle of a snapshot",
                            origin(&snap.url)
                        )));
                    }
                    let frame = self.accept(jpeg)?;
                    if let Some(Session::Snapshot(snap)) = &mut self.session {
                        snap.last_ok = frame.is_some();
                    }
                    return Ok(frame.map_or(Event::Idle, Event::Frame));
                }
            }
        }
    }
}

impl Source for HttpMjpegSource {
    fn open(&mut self) -> Result<()> {
        self.session = None;
        self.bad_parts_in_a_row = 0;
        let mut url = self.url.clone();
        let mut auth = self.authorization.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut conn = Conn::open(&url, &self.shutdown)?;
            conn.send_request(&url, auth.as_deref())?;
            let started = Instant::now();
            let head = loop {
                if let Some(head) = conn.read_head()? {
                    break head;
                }
                if self.shutdown.is_triggered() {
                    return Err(Error::Source("shutting down".into()));
                }
                if started.elapsed() >= HEAD_TIMEOUT {
                    return Err(Error::Source(format!(
                        "{} sent no HTTP response within {} s",
                        origin(&url),
                        HEAD_TIMEOUT.as_secs()
                    )));
                }
            };
            match check_status(&head, &url, auth.is_some())? {
                Next::Redirect(to) => {
                    // Credentials go only back to where they were configured for.
                    if origin(&to) != origin(&self.url) {
                        auth = None;
                    }
                    url = to;
                }
                Next::Body(BodyKind::Multipart(boundary)) => {
                    tracing::debug!(
                        peer = %origin(&url),
                        boundary = boundary.as_deref().unwrap_or("(to be sniffed)"),
                        "connected to a multipart stream"
                    );
                    let parts = Multipart::new(boundary.as_deref(), self.max_part_bytes);
                    self.session = Some(Session::Stream { conn, parts });
                    return Ok(());
                }
                Next::Body(BodyKind::Jpeg) => {
                    tracing::debug!(peer = %origin(&url), "polling a snapshot URL");
                    self.session = Some(Session::Snapshot(Snapshot {
                        url,
                        authorization: auth,
                        conn: Some(conn),
                        body: Whole::new(self.max_part_bytes),
                        started_at: Instant::now(),
                        last_ok: false,
                    }));
                    return Ok(());
                }
            }
        }
        Err(Error::Source(format!(
            "more than {MAX_REDIRECTS} redirects from {}",
            origin(&self.url)
        )))
    }

    fn next(&mut self, _wanted: bool) -> Result<Event<'_>> {
        // Frames are passed through without decoding, so they cost nothing to produce
        // even when nobody watches: `wanted` does not matter here.
        match &self.session {
            Some(Session::Stream { .. }) => self.next_streamed(),
            Some(Session::Snapshot(_)) => self.next_snapshot(),
            None => Err(Error::Source("not connected".into())),
        }
    }

    fn close(&mut self) {
        // Dropping the connection closes its socket.
        self.session = None;
    }
}

// ---- URL and credentials ----------------------------------------------------------------

/// Removes any user info from `url` and builds the Basic Authorization value from it and
/// the `username`/`password` keys (which win over the URL's).
fn split_credentials(
    mut url: Url,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<(Url, Option<String>)> {
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(Error::Permanent(
                "https:// is not supported (this build has no TLS); use the camera's http:// \
                 URL"
                .into(),
            ))
        }
        other => {
            return Err(Error::Permanent(format!(
                "{other}: URLs are not HTTP; use http://"
            )))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::Permanent("the URL has no host".into()));
    }
    let url_user = percent_decode(url.username());
    let url_password = url.password().map(percent_decode);
    let user = username.map(str::to_string).unwrap_or(url_user);
    let pass = password.map(str::to_string).or(url_password);
    let authorization = (!user.is_empty() || pass.is_some()).then(|| {
        let pair = format!("{user}:{}", pass.unwrap_or_default());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    });
    // Cannot fail for an http URL with a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    Ok((url, authorization))
}

/// Decodes `%XX` escapes (user info in URLs is percent-encoded).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `host:port` of a URL: what error messages name (never credentials or the path, which
/// some cameras fill with tokens).
fn origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

// ---- HTTP -------------------------------------------------------------------------------

/// One HTTP/1.1 request/response over its own TCP connection (`Connection: close`).
struct Conn {
    sock: TcpStream,
    /// Who we talk to, for messages.
    origin: String,
    /// Bytes read before the end of the response head.
    head: BytesMut,
    /// Set once the head is parsed.
    body: Option<BodyDecoder>,
    scratch: Box<[u8]>,
}

/// The parts of a response head the source acts on.
struct Head {
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    www_authenticate: Option<String>,
}

/// What a read produced.
enum Progress {
    Data,
    Timeout,
    /// The body ended; `complete` is false when the connection closed before its
    /// announced end.
    End {
        complete: bool,
    },
}

impl Conn {
    /// Resolves and connects, with a timeout and promptly giving up on shutdown.
    fn open(url: &Url, shutdown: &Shutdown) -> Result<Conn> {
        let origin = origin(url);
        let addrs = url
            .socket_addrs(|| Some(80))
            .map_err(|e| Error::Source(format!("cannot resolve {origin}: {e}")))?;
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            match connect(addr, shutdown) {
                Ok(sock) => {
                    let setup = sock
                        .set_read_timeout(Some(POLL_INTERVAL))
                        .and_then(|()| sock.set_write_timeout(Some(WRITE_TIMEOUT)));
                    setup.map_err(|e| Error::io(format!("setting up {origin}"), e))?;
                    return Ok(Conn {
                        sock,
                        origin,
                        head: BytesMut::new(),
                        body: None,
                        scratch: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
                    });
                }
                Err(e) => last_error = e,
            }
            if shutdown.is_triggered() {
                break;
            }
        }
        Err(Error::Source(format!(
            "cannot connect to {origin}: {last_error}"
        )))
    }

    fn send_request(&mut self, url: &Url, authorization: Option<&str>) -> Result<()> {
        let target = match &url[Position::BeforePath..Position::AfterQuery] {
            "" => "/",
            t => t,
        };
        let host = &url[Position::BeforeHost..Position::AfterPort];
        let mut req = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: camhub/{}\r\n\
             Accept: multipart/x-mixed-replace, image/jpeg, */*\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(auth) = authorization {
            req.push_str("Authorization: ");
            req.push_str(auth);
            req.push_str("\r\n");
        }
        req.push_str("Connection: close\r\n\r\n");
        self.sock
            .write_all(req.as_bytes())
            .map_err(|e| Error::io(format!("sending the request to {}", self.origin), e))
    }

    fn head_done(&self) -> bool {
        self.body.is_some()
    }

    /// Reads once and parses the response head if it is complete. The body decoder is
    /// set up from it; bytes after the head are kept for the body.
    fn read_head(&mut self) -> Result<Option<Head>> {
        match self.sock.read(&mut self.scratch) {
            Ok(0) => {
                return Err(Error::Source(format!(
                    "{} closed the connection before responding",
                    self.origin
                )))
            }
            Ok(n) => self.head.extend_from_slice(&self.scratch[..n]),
            Err(e) if is_timeout(&e) => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading from {}", self.origin), e)),
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&self.head) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.head.len() > MAX_HEAD_BYTES => {
                return Err(Error::Source(format!(
                    "{} sent a response head over {MAX_HEAD_BYTES} bytes",
                    self.origin
                )))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => {
                return Err(Error::Source(format!(
                    "{} did not answer with HTTP: {e}",
                    self.origin
                )))
            }
        };
        let header = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        let status = resp.code.unwrap_or(0);
        let chunked = header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        let length = header("content-length").and_then(|v| v.parse::<u64>().ok());
        let head = Head {
            status,
            content_type: header("content-type"),
            location: header("location"),
            www_authenticate: header("www-authenticate"),
        };
        self.body = Some(if chunked {
            BodyDecoder::Chunked(Chunked::default())
        } else {
            BodyDecoder::Identity { left: length }
        });
        self.head.advance(head_len);
        Ok(Some(head))
    }

    /// Reads once and feeds the body bytes to `sink`.
    fn read_body(&mut self, sink: &mut dyn Sink) -> Result<Progress> {
        let decoder = self
            .body
            .as_mut()
            .ok_or_else(|| Error::Source("body read before the head".into()))?;
        // Bytes that came with the head go first.
        if !self.head.is_empty() {
            let early = self.head.split().freeze();
            if decoder.decode(&early, sink)? {
                return Ok(Progress::End { complete: true });
            }
            return Ok(Progress::Data);
        }
        match self.sock.read(&mut self.scratch) {
            Ok(0) => Ok(Progress::End {
                complete: decoder.complete_at_eof(),
            }),
            Ok(n) => {
                if decoder.decode(&self.scratch[..n], sink)? {
                    Ok(Progress::End { complete: true })
                } else {
                    Ok(Progress::Data)
                }
            }
            Err(e) if is_timeout(&e) => Ok(Progress::Timeout),
            Err(e) => Err(Error::io(format!("reading from {}", self.origin), e)),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Connects to one address with [`CONNECT_TIMEOUT`], giving up at once on shutdown (a
/// plain `connect_timeout` would hold shutdown for up to the whole timeout).
fn connect(addr: SocketAddr, shutdown: &Shutdown) -> io::Result<TcpStream> {
    type Connected = io::Result<async_io::Async<TcpStream>>;
    let attempt = async_io::Async::<TcpStream>::connect(addr);
    let timeout = async {
        async_io::Timer::after(CONNECT_TIMEOUT).await;
        Connected::Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
    };
    let stop = async {
        shutdown.wait().await;
        Connected::Err(io::Error::new(io::ErrorKind::Interrupted, "shutting down"))
    };
    let sock = async_io::block_on(attempt.or(timeout).or(stop))?.into_inner()?;
    sock.set_nonblocking(false)?;
    Ok(sock)
}

/// What the source does after a response head.
enum Next {
    Redirect(Url),
    Body(BodyKind),
}

enum BodyKind {
    /// A multipart stream with its boundary, if the header names one.
    Multipart(Option<String>),
    /// One JPEG: a snapshot URL.
    Jpeg,
}

/// Maps a response status and type to what to do, or to an error that names the cause
/// (never the credentials).
fn check_status(head: &Head, url: &Url, sent_credentials: bool) -> Result<Next> {
    let who = origin(url);
    let reason = hyper::StatusCode::from_u16(head.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    match head.status {
        200..=203 | 205..=299 => {}
        301 | 302 | 303 | 307 | 308 => {
            let location = head.location.as_deref().ok_or_else(|| {
                Error::Source(format!(
                    "{who} redirected (HTTP {}) without a Location",
                    head.status
                ))
            })?;
            let to = url
                .join(location)
                .map_err(|e| Error::Source(format!("{who} redirected to a bad Location: {e}")))?;
            if to.scheme() != "http" {
                return Err(Error::Permanent(format!(
                    "{who} redirected to a {}: URL; only http:// is supported (no TLS)",
                    to.scheme()
                )));
            }
            let (to, _) = split_credentials(to, None, None)?;
            return Ok(Next::Redirect(to));
        }
        401 => {
            let hint = match (&head.www_authenticate, sent_credentials) {
                (Some(scheme), _) if scheme.to_ascii_lowercase().starts_with("digest") => {
                    "the camera asks for Digest authentication; only Basic is supported"
                }
                (_, true) => "check the username and password",
                (_, false) => "set username and password for this stream",
            };
            return Err(Error::Permanent(format!(
                "unauthorized (HTTP 401 from {who}): {hint}"
            )));
        }
        403 => {
            return Err(Error::Permanent(format!(
                "forbidden (HTTP 403 from {who}): check the user's rights on the camera"
            )))
        }
        status => {
            // 404 and 5xx included: cameras answer those while they reboot.
            return Err(Error::Source(format!("HTTP {status} {reason} from {who}")));
        }
    }
    let content_type = head.content_type.as_deref().unwrap_or("");
    let (mime, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    let mime = mime.trim().to_ascii_lowercase();
    if mime.starts_with("image/") {
        return Ok(Next::Body(BodyKind::Jpeg));
    }
    if mime.starts_with("text/") {
        return Err(Error::Source(format!(
            "{who} sent {mime}, not an MJPEG stream or a JPEG: is the URL a web page?"
        )));
    }
    // multipart/x-mixed-replace, multipart/mixed, or a missing or odd type: read it as
    // multipart and find the boundary in the body if the header names none.
    Ok(Next::Body(BodyKind::Multipart(boundary_param(params))))
}

/// Where decoded body bytes go: the multipart parser for a stream, [`Whole`] for a
/// snapshot.
trait Sink {
    fn feed(&mut self, data: &[u8]) -> Result<()>;
}

/// Undoes the HTTP/1.1 transfer coding of a body, incrementally.
enum BodyDecoder {
    /// Plain bytes, up to `left` if a Content-Length was given, else until close.
    Identity {
        left: Option<u64>,
    },
    Chunked(Chunked),
}

impl BodyDecoder {
    /// Decodes `input` into `sink`. Returns true when the body is complete.
    fn decode(&mut self, input: &[u8], sink: &mut dyn Sink) -> Result<bool> {
        match self {
            BodyDecoder::Identity { left: None } => {
                sink.feed(input)?;
                Ok(false)
            }
            BodyDecoder::Identity { left: Some(left) } => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                sink.feed(&input[..take])?;
                *left -= take as u64;
                Ok(*left == 0)
            }
            BodyDecoder::Chunked(c) => c.decode(input, sink),
        }
    }

    /// Whether the connection closing now ends the body properly.
    fn complete_at_eof(&self) -> bool {
        match self {
            BodyDecoder::Identity { left } => left.is_none_or(|l| l == 0),
            BodyDecoder::Chunked(c) => c.state == ChunkState::Done,
        }
    }
}

/// The chunked transfer coding (camhub itself sends it).
#[derive(Default)]
struct Chunked {
    state: ChunkState,
    /// The size line being read.
    line: Vec<u8>,
}

#[derive(Default, PartialEq, Eq, Debug)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last (zero) chunk, up to an empty line.
    Trailer,
    Done,
}

/// A chunk-size line longer than this is not HTTP.
const MAX_CHUNK_LINE_BYTES: usize = 1024;

impl Chunked {
    fn decode(&mut self, mut input: &[u8], sink: &mut dyn Sink) -> Result<bool> {
        while !input.is_empty() {
            match &mut self.state {
                ChunkState::Size | ChunkState::Trailer => {
                    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(input);
                        if self.line.len() > MAX_CHUNK_LINE_BYTES {
                            return Err(Error::Source(
                                "bad chunked encoding: line too long".into(),
                            ));
                        }
                        return Ok(false);
                    };
                    self.line.extend_from_slice(&input[..nl]);
                    input = &input[nl + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = String::from_utf8_lossy(&line);
                    let line = line.trim();
                    if self.state == ChunkState::Trailer {
                        if line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        continue;
                    }
                    if line.is_empty() {
                        // A stray CRLF between chunks: tolerated.
                        continue;
                    }
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16).map_err(|_| {
                        Error::Source(format!(
                            "bad chunked encoding: chunk size {:?}",
                            hex.chars().take(20).collect::<String>()
                        ))
                    })?;
                    self.state = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let take = input
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    sink.feed(&input[..take])?;
                    input = &input[take..];
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
                ChunkState::DataEnd => {
                    // CR and LF; lenient about a missing CR.
                    match input[0] {
                        b'\r' => input = &input[1..],
                        b'\n' => {
                            input = &input[1..];
                            self.state = ChunkState::Size;
                        }
                        _ => {
                            return Err(Error::Source(
                                "bad chunked encoding: no CRLF after chunk data".into(),
                            ))
                        }
                    }
                }
                ChunkState::Done => return Ok(true),
            }
        }
        Ok(self.state == ChunkState::Done)
    }
}

/// A whole body (a snapshot), capped.
struct Whole {
    buf: BytesMut,
    max_bytes: usize,
}

impl Whole {
    fn new(max_bytes: usize) -> Whole {
        Whole {
            buf: BytesMut::new(),
            max_bytes,
        }
    }

    fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }
}

impl Sink for Whole {
    fn feed(&mut self, data: &[u8]) -> Result<()> {
        if self.buf.len() + data.len() > self.max_bytes {
            return Err(Error::Source(format!(
                "snapshot larger than {} bytes",
                self.max_bytes
            )));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }
}

/// A streamed body goes to the multipart parser as it is decoded.
impl Sink for Multipart {
    fn feed(&mut self, data: &[u8]) -> Result<()> {
        // The parser's own `feed`, which cannot fail.
        Multipart::feed(self, data);
        Ok(())
    }
}

/// What [`fuzz_body`] saw while parsing one response body.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct BodyRun {
    /// Every part the parser yielded, in order (JPEG or not: the source checks them).
    pub parts: Vec<Bytes>,
    /// The first error; parsing stops there, as the source drops the connection.
    pub error: Option<String>,
    /// The closing delimiter was seen.
    pub closed: bool,
    /// Most bytes the parser held once it had taken every complete part from a read.
    pub max_buffered_bytes: usize,
}

/// Runs one response body through the decoders the streaming source uses (the chunked
/// transfer coding if `chunked`, then [`Multipart`]), one read at a time: feed a read,
/// take every complete part, until the first error. Public only so the fuzz targets
/// (`fuzz/`) and `tests/bad_input.rs` can drive the crate-private parser; not an API.
#[doc(hidden)]
pub fn fuzz_body<'a>(
    chunked: bool,
    boundary: Option<&str>,
    max_part_bytes: usize,
    reads: impl IntoIterator<Item = &'a [u8]>,
) -> BodyRun {
    let mut decoder = if chunked {
        BodyDecoder::Chunked(Chunked::default())
    } else {
        BodyDecoder::Identity { left: None }
    };
    let mut parts = Multipart::new(boundary, max_part_bytes);
    let mut run = BodyRun::default();
    for read in reads {
        let drained = decoder.decode(read, &mut parts).and_then(|_| {
            while let Some(part) = parts.next_part()? {
                run.parts.push(part);
            }
            Ok(())
        });
        if let Err(e) = drained {
            run.error = Some(e.to_string());
            break;
        }
        run.max_buffered_bytes = run.max_buffered_bytes.max(parts.buffered_bytes());
    }
    run.closed = parts.is_closed();
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::jpeg::test_jpegs as jpegs;

    /// `payload` in the chunked transfer coding: chunks of 1, 4, 13, … bytes with a chunk
    /// extension, then a trailer.
    fn chunk_encode(payload: &[u8]) -> Vec<u8> {
        let mut encoded = Vec::new();
        let mut rest = payload;
        let mut size = 1;
        while !rest.is_empty() {
            let n = size.min(rest.len());
            encoded.extend_from_slice(format!("{n:X};ext=1\r\n").as_bytes());
            encoded.extend_from_slice(&rest[..n]);
            encoded.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            size = size * 3 + 1;
        }
        encoded.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
        encoded
    }

    #[test]
    fn chunked_bodies_decode_at_every_split() {
        let payload: Vec<u8> = (0..5000u32).map(|i| (i * 31) as u8).collect();
        let encoded = chunk_encode(&payload);
        for step in [1, 2, 5, 64, encoded.len()] {
            let mut d = BodyDecoder::Chunked(Chunked::default());
            let mut out = Whole::new(usize::MAX);
            let mut done = false;
            for chunk in encoded.chunks(step) {
                assert!(!done, "done before the end");
                done = d.decode(chunk, &mut out).unwrap();
            }
            assert!(done && d.complete_at_eof());
            assert_eq!(out.take(), payload, "step {step}");
        }
        let mut d = BodyDecoder::Chunked(Chunked::default());
        let mut out = Whole::new(usize::MAX);
        assert!(d.decode(b"zz\r\n", &mut out).is_err());
    }

    #[test]
    fn chunked_decoding_never_panics_and_stays_bounded_on_arbitrary_input() {
        let mut state: u32 = 0x8765_4321;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let valid: Vec<Vec<u8>> = (1..5u32)
            .map(|n| chunk_encode(&(0..n * 700).map(|i| (i * 7) as u8).collect::<Vec<_>>()))
            .collect();
        for round in 0..3000 {
            let input: Vec<u8> = match round % 3 {
                // Pure noise, biased towards the bytes that matter.
                0 => (0..rand() % 3000)
                    .map(|_| match rand() % 8 {
                        0 => b'\r',
                        1 => b'\n',
                        2 => b';',
                        3 | 4 => b"0123456789abcdefABCDEF"[rand() as usize % 22],
                        _ => rand() as u8,
                    })
                    .collect(),
                // A valid body, mutated.
                1 => {
                    let mut v = valid[rand() as usize % valid.len()].clone();
                    for _ in 0..1 + rand() % 8 {
                        let at = rand() as usize % v.len();
                        v[at] = rand() as u8;
                    }
                    v
                }
                // A valid body, truncated and spliced.
                _ => {
                    let a = &valid[rand() as usize % valid.len()];
                    let b = &valid[rand() as usize % valid.len()];
                    let mut v = a[..rand() as usize % a.len()].to_vec();
                    v.extend_from_slice(&b[rand() as usize % b.len()..]);
                    v
                }
            };
            let mut d = Chunked::default();
            let mut out = Whole::new(usize::MAX);
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = (1 + rand() as usize % 300).min(rest.len());
                let (read, tail) = rest.split_at(n);
                rest = tail;
                // The source drops the connection at the first error.
                if d.decode(read, &mut out).is_err() {
                    break;
                }
                assert!(d.line.len() <= MAX_CHUNK_LINE_BYTES, "unbounded size line");
            }
            assert!(out.buf.len() <= input.len(), "decoded bytes from nowhere");
        }
    }

    /// The streaming source's body path: transfer coding, then the multipart parser.
    #[test]
    fn a_multipart_body_yields_its_frames_plain_or_chunked_at_every_split() {
        let frames = jpegs(3);
        let mut body = Vec::new();
        for f in &frames {
            body.extend_from_slice(
                format!(
                    "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    f.len()
                )
                .as_bytes(),
            );
            body.extend_from_slice(f);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--frame--\r\n");
        let encoded = chunk_encode(&body);
        for (chunked, data) in [(false, &body), (true, &encoded)] {
            for step in [1, 3, 100, data.len()] {
                let run = fuzz_body(chunked, Some("frame"), MAX_PART_BYTES, data.chunks(step));
                assert_eq!(
                    (&run.parts, &run.error, run.closed),
                    (&frames, &None, true),
                    "chunked {chunked}, step {step}"
                );
            }
            // The part cap holds whatever the transfer coding.
            let largest = frames.iter().map(|f| f.len()).max().unwrap();
            let run = fuzz_body(chunked, Some("frame"), largest - 1, [&data[..]]);
            let error = run.error.expect("the cap is hit");
            assert!(error.contains("larger than"), "chunked {chunked}: {error}");
        }
    }

    fn stream(url: &str) -> StreamConfig {
        StreamConfig::new("cam", url).unwrap()
    }

    #[test]
    fn credentials_come_from_the_url_or_the_keys_and_leave_the_url() {
        let basic = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        let (url, auth) = split_credentials(
            Url::parse("http://ad%40m:p%3Ass@cam:81/v?x=1#f").unwrap(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(url.as_str(), "http://cam:81/v?x=1");
        assert_eq!(auth.unwrap(), basic("ad@m:p:ss"));
        let (_, auth) = split_credentials(
            Url::parse("http://u:p@cam/").unwrap(),
            Some("admin"),
            Some("s3cret"),
        )
        .unwrap();
        assert_eq!(auth.unwrap(), basic("admin:s3cret"));
        let (_, auth) =
            split_credentials(Url::parse("http://cam/").unwrap(), None, Some("pw")).unwrap();
        assert_eq!(auth.unwrap(), basic(":pw"));
        assert!(
            split_credentials(Url::parse("http://cam/").unwrap(), None, None)
                .unwrap()
                .1
                .is_none()
        );

        let mut s = stream("https://admin:s3cret@cam/video");
        s.password = Some("other".into());
        match HttpMjpegSource::from_config(&s, &Shutdown::new()) {
            Err(e @ Error::Permanent(_)) => {
                let msg = e.to_string();
                assert!(msg.contains("https") && !msg.contains("s3cret"), "{msg}");
            }
            _ => panic!("https must fail permanently"),
        }
    }

    fn head(status: u16, content_type: Option<&str>) -> Head {
        Head {
            status,
            content_type: content_type.map(str::to_string),
            location: None,
            www_authenticate: None,
        }
    }

    #[test]
    fn statuses_and_types_map_to_actions_and_clear_errors() {
        let url = Url::parse("http://cam:8080/video").unwrap();
        let boundary = |ct: &str| match check_status(&head(200, Some(ct)), &url, false) {
            Ok(Next::Body(BodyKind::Multipart(b))) => b,
            _ => panic!("{ct} is multipart"),
        };
        assert_eq!(
            boundary("multipart/x-mixed-replace; boundary=\"ab cd\"").as_deref(),
            Some("ab cd")
        );
        assert_eq!(
            boundary("multipart/x-mixed-replace;Boundary=--myboundary").as_deref(),
            Some("--myboundary")
        );
        assert_eq!(boundary("multipart/x-mixed-replace"), None);
        assert_eq!(boundary("multipart/mixed; charset=x; boundary="), None);
        assert!(matches!(
            check_status(&head(200, Some("image/jpeg")), &url, false),
            Ok(Next::Body(BodyKind::Jpeg))
        ));
        let err = |h: Head, creds| check_status(&h, &url, creds).err().unwrap();
        let e = err(head(200, Some("text/html")), false);
        assert!(e.to_string().contains("text/html"), "{e}");
        let e = err(head(401, None), true);
        assert!(
            e.is_permanent() && e.to_string().contains("unauthorized"),
            "{e}"
        );
        let mut digest = head(401, None);
        digest.www_authenticate = Some("Digest realm=\"x\"".into());
        assert!(err(digest, true).to_string().contains("Digest"));
        let e = err(head(403, None), true);
        assert!(
            e.is_permanent() && e.to_string().contains("forbidden"),
            "{e}"
        );
        let e = err(head(404, None), false);
        assert!(!e.is_permanent() && e.to_string().contains("404 Not Found from cam:8080"));
        assert!(!err(head(503, None), false).is_permanent());

        let mut moved = head(302, None);
        moved.location = Some("/other?a=1".into());
        match check_status(&moved, &url, false) {
            Ok(Next::Redirect(to)) => assert_eq!(to.as_str(), "http://cam:8080/other?a=1"),
            _ => panic!("redirect"),
        }
        moved.location = Some("https://cam/secure".into());
        let e = err(moved, false);
        assert!(e.is_permanent() && e.to_string().contains("https"), "{e}");
    }
}
