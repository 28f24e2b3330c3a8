//! RTSP cameras (`rtsp://[user:pass@]host[:port]/path`) through retina: JPEG (RTP payload
//! 26) frames are passed through untouched; H.264 is decoded with openh264 and encoded to
//! JPEG once per frame for every viewer, only while someone watches.
//!
//! Instant start (issue #12): an H.264 source keeps the compressed frames since the
//! camera's last keyframe in a bounded [`GopCache`] (copied, never decoded, while nobody
//! watches). When someone asks, `next` decodes them in one burst and returns the newest
//! picture, so a new viewer never waits for the camera's next keyframe (2–10 s on real
//! cameras). [`h264_cache_bytes`] shows how much each stream keeps.
//!
//! retina needs tokio. Every RTSP source shares one process-wide current-thread runtime
//! whose single `rtsp-io` thread drives sockets and timers; each source thread polls its
//! own session with [`Handle::block_on`] and a timeout, so `next` returns within
//! [`POLL_INTERVAL`] and `open` within [`CONNECT_TIMEOUT`] (sooner on shutdown). The
//! runtime lives as long as the process: a runtime per stream, dropped with the stream,
//! would cut retina's background TEARDOWN short (a lesson from Moonfire NVR). Threads stay
//! flat across reconnects: one `rtsp-io` thread, plus at most two blocking-pool threads
//! for host name lookups.
//!
//! Credentials come from the URL or the stream's `username`/`password` keys (the keys
//! win) and go to retina separately; the URL retina sees, and every message built here,
//! carries none.

use crate::config::{redact_url, StreamConfig, Transport};
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::jpeg::{self, I420Buf, I420Strided, YuvRange};
use crate::shutdown::Shutdown;
use crate::source::{Event, Picture, Source, POLL_INTERVAL};
use bytes::Bytes;
use futures_lite::StreamExt as _;
use openh264::formats::YUVSource as _;
use retina::client::{
    Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, VideoFrame};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;
use url::Url;

/// DESCRIBE + SETUP + PLAY must finish within this; a camera that accepts the TCP
/// connection and then says nothing is retried with backoff.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Consecutive H.264 decode errors after which the session is torn down and reconnected.
const MAX_DECODE_ERRORS: u32 = 50;

/// Quality of the JPEG frames made from H.264: a little above the placeholder's, since
/// these are camera pictures that get looked at.
const QUALITY: u8 = 85;

/// Most memory an H.264 source holds for the compressed frames since the last keyframe
/// (their bytes plus 4 per frame). A richer GOP is dropped, and a viewer waits for the
/// next keyframe as without the cache.
pub const GOP_CACHE_MAX_BYTES: usize = 8 << 20;

/// Longest span (keyframe to newest frame, by arrival) the GOP cache keeps: decoding
/// more in one burst would keep a viewer waiting longer than the keyframe might.
pub const GOP_CACHE_MAX_SPAN: Duration = Duration::from_secs(12);

/// A catch-up burst decodes for at most this long per `next` call, then goes on at the
/// next call, so a big GOP on a slow board never holds up shutdown or the watchdog.
const CATCH_UP_BUDGET: Duration = POLL_INTERVAL;

/// The message of the stream that goes Failed on an H.265 camera.
pub const H265_UNSUPPORTED: &str =
    "codec H.265 not supported; configure the camera's H.264 or MJPEG stream";

/// The shared runtime's handle, started on first use.
fn runtime() -> Result<&'static Handle> {
    static RUNTIME: OnceLock<std::result::Result<Handle, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("rtsp-blocking")
                .max_blocking_threads(2)
                .build()
                .map_err(|e| format!("cannot start the RTSP runtime: {e}"))?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("rtsp-io".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .map_err(|e| format!("cannot start the RTSP I/O thread: {e}"))?;
            Ok(handle)
        })
        .as_ref()
        .map_err(|e| Error::Source(e.clone()))
}

/// One RTSP camera.
pub struct RtspSource {
    /// The URL without credentials: what retina gets, and what messages show.
    url: Url,
    creds: Option<Credentials>,
    transport: Transport,
    /// Largest picture made from H.264 (the stream's `size`); larger ones are scaled down.
    size_cap: Option<(u32, u32)>,
    /// At most this many frames per second are published (the stream's `fps`).
    rate: Option<RateCap>,
    shutdown: Shutdown,
    session: Option<Playing>,
    /// Kept across reconnects: sized once.
    scratch: I420Buf,
    /// H.264 frames since the last keyframe; emptied on every (re)connect.
    gop: GopCache,
}

/// An open session and what its video stream needs.
struct Playing {
    demuxed: Pin<Box<Demuxed>>,
    stream_i: usize,
    h264: Option<H264>,
}

/// H.264 decoding state of one session.
struct H264 {
    decoder: openh264::decoder::Decoder,
    /// The decoder has taken every frame received so far, so each new one is decoded as
    /// it arrives. False while nobody watches, after loss and after a decode error: the
    /// decoder then catches up through the GOP cache, which starts at a keyframe.
    live: bool,
    /// How much of the GOP cache (a byte offset) the decoder has taken, in order from its
    /// keyframe (0 whenever the cache restarts or is dropped). A viewer who comes back
    /// within the same GOP only costs the frames since the last one left.
    taken: usize,
    errors_in_a_row: u32,
}

/// The codecs camhub takes from a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    H264,
    Jpeg,
}

impl RtspSource {
    /// Builds the source for `stream`; nothing connects until `open`.
    pub fn from_config(stream: &StreamConfig, shutdown: &Shutdown) -> Result<Box<dyn Source>> {
        let (url, creds) = split_credentials(
            &stream.url,
            stream.username.as_deref(),
            stream.password.as_deref(),
        )?;
        Ok(Box::new(RtspSource {
            url,
            creds,
            transport: stream.transport,
            size_cap: stream.size,
            rate: stream.fps.map(RateCap::new),
            shutdown: shutdown.clone(),
            session: None,
            scratch: I420Buf::default(),
            gop: GopCache::new(cache_gauge(&stream.id)),
        }))
    }

    /// `what` failed, as a message with the redacted URL and retina's first line (its
    /// later lines are connection dumps). Credentials never reach retina, so its text
    /// holds none; the password is scrubbed anyway, in case a camera echoes it.
    fn retina_error(&self, what: &str, e: &retina::Error) -> Error {
        if e.status_code() == Some(401) {
            let why = match self.creds {
                Some(_) => "the camera rejected the user name or password",
                None => {
                    "the camera needs a user name and password (in the URL or the \
                         stream's username/password keys)"
                }
            };
            return Error::Permanent(format!("{}: unauthorized: {why}", self.url));
        }
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        let mut msg = redact_url(&format!("{}: {what}: {first}", self.url));
        if let Some(c) = &self.creds {
            if c.password.len() >= 3 {
                msg = msg.replace(&c.password, "***");
            }
        }
        Error::Source(msg)
    }

    /// DESCRIBE, SETUP of the video stream, PLAY.
    async fn connect(&self) -> Result<Playing> {
        let options = SessionOptions::default()
            .creds(self.creds.clone())
            .user_agent(format!("camhub/{}", env!("CARGO_PKG_VERSION")));
        // Resolve first, so a DNS failure says so plainly instead of inside retina's
        // "DESCRIBE failed: Unable to connect to RTSP server: …" chain.
        if let Some(url::Host::Domain(host)) = self.url.host() {
            let port = self.url.port().unwrap_or(554);
            let why = match tokio::net::lookup_host((host, port)).await {
                Ok(mut addrs) => addrs.next().is_none().then(|| "no address".to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = why {
                let url = &self.url;
                return Err(Error::Source(format!(
                    "{url}: cannot resolve {host}: {why}"
                )));
            }
        }
        let mut session = Session::describe(self.url.clone(), options)
            .await
            .map_err(|e| self.retina_error("DESCRIBE failed", &e))?;
        let (stream_i, codec) = pick_video_stream(
            session
                .streams()
                .iter()
                .map(|s| (s.media(), s.encoding_name())),
        )
        .map_err(|why| Error::Permanent(format!("{}: {why}", self.url)))?;
        let transport = match self.transport {
            Transport::Tcp => retina::client::Transport::Tcp(TcpTransportOptions::default()),
            Transport::Udp => retina::client::Transport::Udp(UdpTransportOptions::default()),
        };
        session
            .setup(
                stream_i,
                SetupOptions::default()
                    .transport(transport)
                    .frame_format(FrameFormat::SIMPLE),
            )
            .await
            .map_err(|e| self.retina_error("SETUP failed", &e))?;
        let playing = session
            .play(PlayOptions::default())
            .await
            .map_err(|e| self.retina_error("PLAY failed", &e))?;
        let demuxed = playing
            .demuxed()
            .map_err(|e| self.retina_error("cannot depacketize", &e))?;
        let h264 = match codec {
            Codec::Jpeg => None,
            Codec::H264 => Some(H264 {
                decoder: openh264::decoder::Decoder::new()
                    .map_err(|e| Error::Source(format!("{}: H.264 decoder: {e}", self.url)))?,
                live: false,
                taken: 0,
                errors_in_a_row: 0,
            }),
        };
        Ok(Playing {
            demuxed: Box::pin(demuxed),
            stream_i,
            h264,
        })
    }

    /// Turns one received video frame into an event.
    fn on_frame(&mut self, frame: VideoFrame, wanted: bool) -> Result<Event<'_>> {
        let arrived = frame.end_ctx().received();
        let Some(session) = self.session.as_mut() else {
            return Ok(Event::Idle);
        };
        let Some(h264) = session.h264.as_mut() else {
            // JPEG: passed through untouched (cheap, so also when nobody watches; a
            // snapshot then finds a fresh frame).
            if !self.rate.as_mut().is_none_or(|r| r.accept(arrived)) {
                return Ok(Event::Alive);
            }
            let data = Bytes::from(frame.into_data());
            return match jpeg::check(&data) {
                Ok((width, height)) => Ok(Event::Frame(stamped(data, width, height, arrived))),
                Err(e) => {
                    tracing::debug!(url = %self.url, "dropping a broken JPEG frame: {e}");
                    Ok(Event::Alive)
                }
            };
        };

        // Every H.264 frame goes into the GOP cache first (a copy, no decoding), so that
        // whoever asks next starts from the newest picture, not the next keyframe.
        let keyframe = frame.is_random_access_point();
        if frame.loss() > 0 && !keyframe {
            // References are missing: nothing decodes until the next keyframe.
            self.gop.clear();
            h264.taken = 0;
            h264.live = false;
            return Ok(Event::Alive);
        }
        let before = (self.gop.len(), self.gop.bytes());
        let kept = self.gop.push(frame.data(), keyframe, arrived);
        if let Kept::Dropped(bound) = kept {
            tracing::debug!(
                url = %self.url,
                frames = before.0,
                bytes = before.1,
                "H.264 GOP past the cache's {bound:?} bound: a viewer waits for the next keyframe"
            );
        }
        if kept != Kept::Appended {
            h264.taken = 0; // a new GOP, or none: the decoder has taken nothing of it
        }
        if !wanted {
            h264.live = false;
            return Ok(Event::Alive);
        }
        if !h264.live {
            // Catch up through the cache, which holds this frame (unless it waits for a
            // keyframe: then there is nothing to decode yet).
            return self.catch_up();
        }
        let publish = self.rate.as_mut().is_none_or(|r| r.accept(arrived));
        let picture = match h264.decoder.decode(frame.data()) {
            Ok(picture) => picture,
            Err(e) => return decode_failed(h264, &mut self.gop, &self.url, &e),
        };
        if matches!(kept, Kept::Started | Kept::Appended) {
            h264.taken = self.gop.bytes();
        }
        let Some(picture) = picture else {
            return Ok(Event::Alive);
        };
        h264.errors_in_a_row = 0;
        if !publish {
            return Ok(Event::Alive);
        }
        show(&mut self.scratch, self.size_cap, &picture, arrived)
    }

    /// True when an H.264 session is not live and its GOP cache holds frames the decoder
    /// has not taken: [`RtspSource::catch_up`] has work. A decoder that has taken the
    /// whole cache is in step with the camera, and goes live here.
    fn behind(&mut self) -> bool {
        let Some(h264) = self.session.as_mut().and_then(|s| s.h264.as_mut()) else {
            return false;
        };
        if h264.live || self.gop.is_empty() {
            return false;
        }
        if h264.taken >= self.gop.bytes() {
            h264.live = true;
            return false;
        }
        true
    }

    /// Decodes the cached frames the decoder has not taken yet, in one burst, and
    /// returns the newest as a picture; then the session is live. Only the newest is
    /// converted and handed on (the supervisor encodes it); the others are decoded just
    /// for their references. A burst longer than [`CATCH_UP_BUDGET`] goes on at the next
    /// call (returning `Alive` meanwhile), so `next` still returns promptly.
    fn catch_up(&mut self) -> Result<Event<'_>> {
        let Some(h264) = self.session.as_mut().and_then(|s| s.h264.as_mut()) else {
            return Ok(Event::Idle);
        };
        let started = Instant::now();
        let mut frames = 0usize;
        let newest = loop {
            let Some((data, next)) = self.gop.frame_at(h264.taken) else {
                return Ok(Event::Alive); // waiting for a keyframe
            };
            let last = next == self.gop.bytes();
            frames += 1;
            match h264.decoder.decode(data) {
                Ok(picture) if last => break picture,
                Ok(_) => h264.taken = next,
                Err(e) => return decode_failed(h264, &mut self.gop, &self.url, &e),
            }
            if started.elapsed() >= CATCH_UP_BUDGET {
                return Ok(Event::Alive);
            }
        };
        h264.taken = self.gop.bytes();
        h264.live = true;
        h264.errors_in_a_row = 0;
        let Some(picture) = newest else {
            return Ok(Event::Alive);
        };
        let arrived = self.gop.newest_arrived;
        tracing::debug!(
            url = %self.url,
            frames,
            ms = started.elapsed().as_millis() as u64,
            "H.264 caught up from the GOP cache"
        );
        if !self.rate.as_mut().is_none_or(|r| r.accept(arrived)) {
            return Ok(Event::Alive);
        }
        show(&mut self.scratch, self.size_cap, &picture, arrived)
    }

    /// Drops the session inside the runtime, so retina can send TEARDOWN in the
    /// background (it spawns a task on the current runtime).
    fn drop_session(&mut self) {
        self.gop.clear();
        if let Some(session) = self.session.take() {
            match runtime() {
                Ok(handle) => {
                    let _guard = handle.enter();
                    drop(session);
                }
                Err(_) => std::mem::forget(session), // no runtime: never opened anyway
            }
        }
    }
}

impl Source for RtspSource {
    fn open(&mut self) -> Result<()> {
        self.drop_session();
        if self.url.scheme() != "rtsp" {
            return Err(Error::Permanent(format!(
                "{}: only rtsp:// is supported (no RTSP over TLS)",
                self.url
            )));
        }
        let handle = runtime()?;
        // retina spawns its TEARDOWN task when a session is dropped, which needs the
        // runtime context, also when a half-done connect is abandoned here.
        let _context = handle.enter();
        let started = Instant::now();
        let mut connect = Box::pin(self.connect());
        let session = loop {
            match handle.block_on(tokio::time::timeout(POLL_INTERVAL, &mut connect)) {
                Ok(result) => break result?,
                Err(_) if self.shutdown.is_triggered() => {
                    return Err(Error::Source(format!("{}: shutting down", self.url)))
                }
                Err(_) if started.elapsed() >= CONNECT_TIMEOUT => {
                    return Err(Error::Source(format!(
                        "{}: no answer within {} s (DESCRIBE/SETUP/PLAY)",
                        self.url,
                        CONNECT_TIMEOUT.as_secs()
                    )));
                }
                Err(_) => {}
            }
        };
        drop(connect);
        self.session = Some(session);
        Ok(())
    }

    fn next(&mut self, wanted: bool) -> Result<Event<'_>> {
        // Someone asks and the cache holds frames the decoder has not seen: show the
        // newest now, without waiting for the next packet.
        if wanted && self.behind() {
            return self.catch_up();
        }
        let handle = runtime()?;
        // Timers (and a dropped frame's buffers) belong to the shared runtime.
        let _context = handle.enter();
        let deadline = tokio::time::Instant::now() + POLL_INTERVAL;
        loop {
            let Some(session) = self.session.as_mut() else {
                return Err(Error::Source(format!("{}: not connected", self.url)));
            };
            let item = handle.block_on(tokio::time::timeout_at(
                deadline,
                session.demuxed.as_mut().next(),
            ));
            match item {
                Err(_) => return Ok(Event::Idle),
                Ok(None) => {
                    return Err(Error::Source(format!(
                        "{}: the camera closed the connection",
                        self.url
                    )))
                }
                Ok(Some(Err(e))) => return Err(self.retina_error("receiving", &e)),
                Ok(Some(Ok(CodecItem::VideoFrame(frame))))
                    if frame.stream_id() == session.stream_i =>
                {
                    return self.on_frame(frame, wanted)
                }
                // RTCP and anything else: not a sign the picture is alive.
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    fn close(&mut self) {
        self.drop_session();
    }
}

impl Drop for RtspSource {
    fn drop(&mut self) {
        self.drop_session();
    }
}

/// A decoded picture as an event: scaled into `scratch` (to fit `size_cap`) and stamped
/// with when its frame's last packet arrived.
fn show<'a>(
    scratch: &'a mut I420Buf,
    size_cap: Option<(u32, u32)>,
    picture: &openh264::decoder::DecodedYUV<'_>,
    arrived: Instant,
) -> Result<Event<'a>> {
    let (width, height) = picture.dimensions();
    let (y_stride, chroma_stride, _) = picture.strides();
    let src = I420Strided {
        width: width as u32,
        height: height as u32,
        y: picture.y(),
        y_stride,
        cb: picture.u(),
        cr: picture.v(),
        chroma_stride,
    };
    let (out_w, out_h) = jpeg::fit_within((src.width, src.height), size_cap);
    // Cameras and x264 send limited ("TV") range unless the SPS says otherwise.
    scratch.resample_from(&src, out_w, out_h, YuvRange::Limited)?;
    let (captured_at, captured_wall) = arrival_times(arrived);
    // The supervisor encodes what viewers want of it: full size, renditions.
    Ok(Event::Picture(Picture {
        image: scratch.as_i420(),
        quality: QUALITY,
        captured_at,
        captured_wall,
    }))
}

/// After a decode error: decoding restarts at the next keyframe (the cache holds the bad
/// frame, so it goes too); after [`MAX_DECODE_ERRORS`] in a row the session is dropped.
fn decode_failed<'a>(
    h264: &mut H264,
    gop: &mut GopCache,
    url: &Url,
    e: &openh264::Error,
) -> Result<Event<'a>> {
    h264.live = false;
    h264.taken = 0;
    gop.clear();
    h264.errors_in_a_row += 1;
    if h264.errors_in_a_row >= MAX_DECODE_ERRORS {
        return Err(Error::Source(format!(
            "{url}: H.264 decoding failed {MAX_DECODE_ERRORS} times in a row: {e}"
        )));
    }
    tracing::debug!(url = %url, "H.264 decode error: {e}");
    Ok(Event::Alive)
}

/// What [`GopCache::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// A keyframe: the cache now starts with it.
    Started,
    /// Added after the frames since the keyframe.
    Appended,
    /// Not kept: no keyframe since the cache was last emptied.
    Waiting,
    /// Past a bound: the cache is emptied and its memory freed until the next keyframe.
    Dropped(Bound),
}

/// The bound a GOP went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// [`GOP_CACHE_MAX_BYTES`]
    Bytes,
    /// [`GOP_CACHE_MAX_SPAN`]
    Span,
}

/// The compressed H.264 frames (Annex B, as retina hands them over, SPS/PPS in front of
/// each keyframe) since the last keyframe: what a decoder needs to show the newest picture
/// without waiting for the camera's next keyframe. One buffer, each frame stored as its
/// length (4 bytes, little-endian) and its bytes; the decoder walks it front to back, and
/// a position in it is a byte offset.
///
/// Bounded whatever the camera sends: the buffer's capacity never exceeds
/// [`GOP_CACHE_MAX_BYTES`], and its frames span at most [`GOP_CACHE_MAX_SPAN`]. A frame
/// past either bound empties the cache (and frees it) until the next keyframe. Capacity
/// is kept from GOP to GOP otherwise, so a steady camera allocates once.
struct GopCache {
    data: Vec<u8>,
    /// Frames in `data`.
    frames: usize,
    /// When the keyframe's and the newest frame's last packets arrived.
    first_arrived: Instant,
    newest_arrived: Instant,
    /// This stream's [`h264_cache_bytes`] gauge; `reported` is this cache's part of it.
    gauge: Arc<AtomicU64>,
    reported: u64,
}

/// Bytes in front of each frame in [`GopCache::data`]: its length.
const LENGTH_BYTES: usize = 4;

impl GopCache {
    fn new(gauge: Arc<AtomicU64>) -> GopCache {
        let now = Instant::now();
        GopCache {
            data: Vec::new(),
            frames: 0,
            first_arrived: now,
            newest_arrived: now,
            gauge,
            reported: 0,
        }
    }

    /// Keeps `frame` (a whole frame) if it fits, starting over at a keyframe.
    fn push(&mut self, frame: &[u8], keyframe: bool, arrived: Instant) -> Kept {
        if keyframe {
            self.data.clear();
            self.frames = 0;
            self.first_arrived = arrived;
        } else if self.frames == 0 {
            return Kept::Waiting;
        }
        let need = self.data.len() + LENGTH_BYTES + frame.len();
        let past = if arrived.saturating_duration_since(self.first_arrived) > GOP_CACHE_MAX_SPAN {
            Some(Bound::Span)
        } else if need > GOP_CACHE_MAX_BYTES {
            Some(Bound::Bytes)
        } else {
            None
        };
        if let Some(bound) = past {
            self.data = Vec::new();
            self.frames = 0;
            self.report();
            return Kept::Dropped(bound);
        }
        if need > self.data.capacity() {
            // Doubling, like a Vec, but never past the bound.
            let target = (self.data.capacity() * 2).clamp(need, GOP_CACHE_MAX_BYTES);
            self.data.reserve_exact(target - self.data.len());
        }
        // A frame within the bound is far below 4 GiB.
        self.data
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.data.extend_from_slice(frame);
        self.frames += 1;
        self.newest_arrived = arrived;
        self.report();
        if keyframe {
            Kept::Started
        } else {
            Kept::Appended
        }
    }

    /// Empties the cache (keeping its memory for the next GOP).
    fn clear(&mut self) {
        self.data.clear();
        self.frames = 0;
        self.report();
    }

    fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Frames kept.
    fn len(&self) -> usize {
        self.frames
    }

    /// The frame at byte offset `at` (0 is the keyframe) and the offset of the next one;
    /// `None` at the end.
    fn frame_at(&self, at: usize) -> Option<(&[u8], usize)> {
        let length = self.data.get(at..at + LENGTH_BYTES)?;
        let start = at + LENGTH_BYTES;
        let end = start + u32::from_le_bytes(length.try_into().ok()?) as usize;
        Some((self.data.get(start..end)?, end))
    }

    /// Bytes kept: the frames and their lengths. Also where the next frame will go.
    fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Memory held (what the bound is on).
    #[cfg(test)]
    fn capacity_bytes(&self) -> usize {
        self.data.capacity()
    }

    /// Moves this cache's change into the stream's gauge (a main and a sub-stream
    /// source of the same stream add up).
    fn report(&mut self) {
        let now = self.bytes() as u64;
        if now >= self.reported {
            self.gauge.fetch_add(now - self.reported, Ordering::Relaxed);
        } else {
            self.gauge.fetch_sub(self.reported - now, Ordering::Relaxed);
        }
        self.reported = now;
    }
}

impl Drop for GopCache {
    fn drop(&mut self) {
        self.gauge.fetch_sub(self.reported, Ordering::Relaxed);
    }
}

/// The gauges behind [`h264_cache_bytes`], by stream id. Sources never see the hub, so
/// each RTSP source registers here when it is built and the metrics page reads here;
/// an entry lives as long as a source of that stream does.
fn cache_gauges() -> &'static Mutex<HashMap<String, Weak<AtomicU64>>> {
    static GAUGES: OnceLock<Mutex<HashMap<String, Weak<AtomicU64>>>> = OnceLock::new();
    GAUGES.get_or_init(Default::default)
}

/// The gauge for `stream_id`, shared by its main and sub-stream sources.
fn cache_gauge(stream_id: &str) -> Arc<AtomicU64> {
    let mut gauges = cache_gauges().lock().unwrap_or_else(|e| e.into_inner());
    gauges.retain(|_, g| g.strong_count() > 0);
    if let Some(gauge) = gauges.get(stream_id).and_then(Weak::upgrade) {
        return gauge;
    }
    let gauge = Arc::new(AtomicU64::new(0));
    gauges.insert(stream_id.to_string(), Arc::downgrade(&gauge));
    gauge
}

/// Bytes of compressed H.264 the stream's RTSP sources keep for instant start (main and
/// sub-stream together; 0 for other streams), for `/metrics`: each source's share is at
/// most [`GOP_CACHE_MAX_BYTES`]. Per process: two camhubs in one process (as in-process
/// tests run them) that use the same stream id share the number.
pub fn h264_cache_bytes(stream_id: &str) -> u64 {
    let gauges = cache_gauges().lock().unwrap_or_else(|e| e.into_inner());
    gauges
        .get(stream_id)
        .and_then(Weak::upgrade)
        .map_or(0, |g| g.load(Ordering::Relaxed))
}

/// A frame stamped with when its last packet arrived from the network, so that the
/// viewer's receive time minus `X-Timestamp` is the latency camhub adds.
fn stamped(jpeg: Bytes, width: u32, height: u32, arrived: Instant) -> Frame {
    let mut frame = Frame::new(jpeg, width, height);
    (frame.captured_at, frame.captured_wall) = arrival_times(arrived);
    frame
}

/// `arrived` and the same moment on the wall clock.
fn arrival_times(arrived: Instant) -> (Instant, SystemTime) {
    let age = Instant::now().saturating_duration_since(arrived);
    let wall = SystemTime::now();
    (arrived, wall.checked_sub(age).unwrap_or(wall))
}

/// Splits credentials off `raw`: the URL for retina (no user info) and the credentials
/// (the `username`/`password` keys win over the URL's, which are percent-decoded).
fn split_credentials(
    raw: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<(Url, Option<Credentials>)> {
    let mut url = Url::parse(raw)
        .map_err(|e| Error::Permanent(format!("bad URL {}: {e}", redact_url(raw))))?;
    let decode = |s: &str| {
        percent_decode(s).ok_or_else(|| {
            Error::Permanent(format!(
                "{}: user name or password is not valid percent-encoded UTF-8",
                redact_url(raw)
            ))
        })
    };
    let url_user = decode(url.username())?;
    let url_password = url.password().map(decode).transpose()?;
    let user = username.map(str::to_string).unwrap_or(url_user);
    let pass = password
        .map(str::to_string)
        .or(url_password)
        .unwrap_or_default();
    let creds = (!user.is_empty() || !pass.is_empty()).then_some(Credentials {
        username: user,
        password: pass,
    });
    // Only fails for URLs that cannot have a host, which check_url already refused.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, creds))
}

/// Decodes `%XX` escapes; None when they do not make UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Chooses the stream to play from DESCRIBE's `(media, encoding)` list: the first video
/// stream camhub can show, else a reason it cannot show any.
fn pick_video_stream<'a>(
    streams: impl Iterator<Item = (&'a str, &'a str)>,
) -> std::result::Result<(usize, Codec), String> {
    let mut first_unsupported = None;
    for (i, (media, encoding)) in streams.enumerate() {
        let encoding = encoding.to_ascii_lowercase();
        match (media, encoding.as_str()) {
            ("video", "h264") => return Ok((i, Codec::H264)),
            ("video" | "image", "jpeg") => return Ok((i, Codec::Jpeg)),
            ("video", _) if first_unsupported.is_none() => first_unsupported = Some(encoding),
            _ => {}
        }
    }
    Err(match first_unsupported.as_deref() {
        Some("h265") => H265_UNSUPPORTED.to_string(),
        Some(other) => format!(
            "codec {} not supported; configure the camera's H.264 or MJPEG stream",
            other.to_ascii_uppercase()
        ),
        None => "the camera offers no video stream at this URL".to_string(),
    })
}

/// Publishes at most `fps` frames per second from a faster camera, evenly: a frame is
/// taken when it is (nearly) due, and the next one is due one interval later.
#[derive(Debug)]
struct RateCap {
    interval: Duration,
    next_due: Option<Instant>,
}

impl RateCap {
    fn new(fps: u32) -> RateCap {
        RateCap {
            interval: Duration::from_secs(1) / fps.max(1),
            next_due: None,
        }
    }

    /// True if a frame arriving at `at` should be published.
    fn accept(&mut self, at: Instant) -> bool {
        // A quarter interval early still counts, so camera jitter does not halve the rate.
        let slack = self.interval / 4;
        if let Some(due) = self.next_due {
            if at + slack < due {
                return false;
            }
            let next = due + self.interval;
            self.next_due = Some(if next + slack < at { at } else { next });
        } else {
            self.next_due = Some(at + self.interval);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_keys_win() {
        let (url, creds) =
            split_credentials("rtsp://ad%40min:p%3Ass@cam:8554/s1", None, None).unwrap();
        assert_eq!(url.as_str(), "rtsp://cam:8554/s1");
        let creds = creds.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("ad@min", "p:ss")
        );

        let (url, creds) =
            split_credentials("rtsp://u:old@cam/s1", Some("admin"), Some("new")).unwrap();
        assert_eq!(url.as_str(), "rtsp://cam/s1");
        let creds = creds.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("admin", "new")
        );

        let (_, creds) = split_credentials("rtsp://cam/s1", None, None).unwrap();
        assert!(creds.is_none());
        assert!(split_credentials("rtsp://u:%ff@cam/", None, None).is_err());
    }

    #[test]
    fn percent_decoding_handles_edges() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%4").as_deref(), Some("%4"));
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn video_stream_choice_and_refusals() {
        let pick = |s: &[(&'static str, &'static str)]| pick_video_stream(s.iter().copied());
        assert_eq!(
            pick(&[("audio", "mpeg4-generic"), ("video", "h264")]),
            Ok((1, Codec::H264))
        );
        assert_eq!(pick(&[("video", "jpeg")]), Ok((0, Codec::Jpeg)));
        assert_eq!(
            pick(&[("video", "h265"), ("video", "h264")]),
            Ok((1, Codec::H264))
        );
        assert_eq!(
            pick(&[("video", "h265")]),
            Err(H265_UNSUPPORTED.to_string())
        );
        let vp8 = pick(&[("video", "vp8")]).unwrap_err();
        assert!(vp8.contains("codec VP8 not supported"), "{vp8}");
        let none = pick(&[("audio", "pcmu")]).unwrap_err();
        assert!(none.contains("no video stream"), "{none}");
    }

    #[test]
    fn rate_cap_keeps_an_even_lower_rate() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // A 15 fps camera (every 66.7 ms) capped at 10 fps.
        let mut cap = RateCap::new(10);
        let taken = (0..150u64)
            .filter(|&i| cap.accept(ms(i * 1000 / 15)))
            .count();
        assert!((95..=105).contains(&taken), "{taken} of 150 frames in 10 s");
        // Below the cap, every frame passes, even with jitter.
        let mut cap = RateCap::new(30);
        assert!((0..100u64).all(|i| cap.accept(ms(i * 40 + (i % 3) * 5))));
    }

    /// A GOP cache on its own gauge.
    fn gop_cache() -> (GopCache, Arc<AtomicU64>) {
        let gauge = Arc::new(AtomicU64::new(0));
        (GopCache::new(gauge.clone()), gauge)
    }

    /// The cached frames, front to back, as the decoder walks them.
    fn cached(gop: &GopCache) -> Vec<Vec<u8>> {
        let (mut frames, mut at) = (Vec::new(), 0);
        while let Some((frame, next)) = gop.frame_at(at) {
            frames.push(frame.to_vec());
            at = next;
        }
        assert_eq!(at, gop.bytes(), "the walk ends at the end");
        assert_eq!(frames.len(), gop.len());
        frames
    }

    #[test]
    fn gop_cache_keeps_frames_from_the_last_keyframe() {
        let t0 = Instant::now();
        let (mut gop, gauge) = gop_cache();
        assert_eq!(gop.push(b"p0", false, t0), Kept::Waiting);
        assert!(gop.is_empty());
        assert_eq!(gop.push(b"KEY1", true, t0), Kept::Started);
        assert_eq!(gop.push(b"p1", false, t0), Kept::Appended);
        assert_eq!(gop.push(b"p22", false, t0), Kept::Appended);
        assert_eq!(cached(&gop), [&b"KEY1"[..], b"p1", b"p22"]);
        assert_eq!(gop.bytes(), 4 + 2 + 3 + 3 * LENGTH_BYTES);
        assert_eq!(gauge.load(Ordering::Relaxed), gop.bytes() as u64);
        // A new keyframe replaces the cache.
        assert_eq!(gop.push(b"KEY2", true, t0), Kept::Started);
        assert_eq!(cached(&gop), [b"KEY2"]);
        gop.clear();
        assert_eq!(gauge.load(Ordering::Relaxed), 0);
        assert_eq!(gop.push(b"p", false, t0), Kept::Waiting);
    }

    #[test]
    fn gop_cache_memory_stays_within_its_bound() {
        // A high-bitrate camera whose keyframes stop: 300 KiB frames, one keyframe.
        let t0 = Instant::now();
        let (mut gop, gauge) = gop_cache();
        let frame = vec![7u8; 300 << 10];
        assert_eq!(gop.push(&frame, true, t0), Kept::Started);
        let (mut dropped, mut peak) = (false, 0);
        for i in 1..100u64 {
            let at = t0 + Duration::from_millis(i * 66);
            match gop.push(&frame, false, at) {
                Kept::Appended => assert!(!dropped),
                Kept::Dropped(bound) => {
                    assert_eq!(bound, Bound::Bytes);
                    dropped = true;
                }
                Kept::Waiting => assert!(dropped, "waits only after a drop"),
                Kept::Started => unreachable!(),
            }
            assert!(gop.capacity_bytes() <= GOP_CACHE_MAX_BYTES, "frame {i}");
            assert!(gauge.load(Ordering::Relaxed) <= GOP_CACHE_MAX_BYTES as u64);
            if !dropped {
                peak = gop.bytes();
            }
        }
        // Dropped only when the next frame would not fit.
        assert!(
            peak + frame.len() + LENGTH_BYTES > GOP_CACHE_MAX_BYTES,
            "{peak}"
        );
        assert!(dropped && gop.is_empty());
        assert_eq!(
            (gop.capacity_bytes(), gauge.load(Ordering::Relaxed)),
            (0, 0)
        );
        // The next keyframe starts over.
        assert_eq!(gop.push(&frame, true, t0), Kept::Started);

        // Tiny frames: their lengths count too.
        let (mut gop, _) = gop_cache();
        gop.push(b"k", true, t0);
        while gop.push(b"p", false, t0) == Kept::Appended {
            assert!(gop.capacity_bytes() <= GOP_CACHE_MAX_BYTES);
        }
        assert!(gop.is_empty());

        // One frame larger than the bound is never copied.
        let (mut gop, _) = gop_cache();
        let huge = vec![0u8; GOP_CACHE_MAX_BYTES + 1];
        assert_eq!(gop.push(&huge, true, t0), Kept::Dropped(Bound::Bytes));
        assert_eq!(gop.capacity_bytes(), 0);
    }

    #[test]
    fn gop_cache_spans_at_most_its_time_bound() {
        let t0 = Instant::now();
        let (mut gop, _) = gop_cache();
        gop.push(b"k", true, t0);
        assert_eq!(
            gop.push(b"p", false, t0 + GOP_CACHE_MAX_SPAN),
            Kept::Appended
        );
        let late = t0 + GOP_CACHE_MAX_SPAN + Duration::from_millis(1);
        assert_eq!(gop.push(b"p", false, late), Kept::Dropped(Bound::Span));
        assert!(gop.is_empty());
        assert_eq!(gop.push(b"k", true, late), Kept::Started);
    }

    #[test]
    fn the_cache_gauge_adds_up_a_streams_sources() {
        let id = "gauge-test-stream";
        let t0 = Instant::now();
        let mut main = GopCache::new(cache_gauge(id));
        let mut sub = GopCache::new(cache_gauge(id));
        main.push(&[0; 1000], true, t0);
        sub.push(&[0; 500], true, t0);
        assert_eq!(h264_cache_bytes(id), (main.bytes() + sub.bytes()) as u64);
        drop(main);
        assert_eq!(h264_cache_bytes(id), sub.bytes() as u64);
        drop(sub);
        assert_eq!(h264_cache_bytes(id), 0);
        assert_eq!(h264_cache_bytes("no-such-stream"), 0);
    }

    #[test]
    fn frames_are_stamped_with_their_arrival() {
        let arrived = Instant::now() - Duration::from_millis(300);
        let frame = stamped(Bytes::from_static(b"x"), 1, 1, arrived);
        assert_eq!(frame.captured_at, arrived);
        let age = SystemTime::now()
            .duration_since(frame.captured_wall)
            .unwrap();
        assert!(age >= Duration::from_millis(300) && age < Duration::from_secs(5));
    }
}
