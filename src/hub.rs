//! The hub: one latest-frame slot per stream. Sources publish into it without ever
//! blocking; viewers await the next frame and always get the newest one (a slow viewer
//! skips frames instead of queueing them). Also holds each stream's status and counters.

use crate::config::StreamConfig;
use crate::frame::Frame;
use crate::status::{State, Status};
use event_listener::Event;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// All streams, in configuration order (cameras plugged in later at the end).
pub struct Hub {
    /// Replaced whole when a camera is plugged in, so readers get a consistent snapshot
    /// with one `Arc` clone and never hold the lock while they work.
    streams: RwLock<Arc<[Arc<Stream>]>>,
    /// Open HTTP connections (for /metrics and the connection cap).
    pub connections: AtomicUsize,
}

impl Hub {
    pub fn new(configs: &[StreamConfig]) -> Hub {
        Hub {
            streams: RwLock::new(configs.iter().map(|c| Arc::new(Stream::new(c))).collect()),
            connections: AtomicUsize::new(0),
        }
    }

    /// Every stream, as of now.
    pub fn streams(&self) -> Arc<[Arc<Stream>]> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds a stream at runtime (a camera plugged in; see `discover.rs`). Returns `None`
    /// if the id is taken. The caller starts its source.
    pub fn add(&self, config: &StreamConfig) -> Option<Arc<Stream>> {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if streams.iter().any(|s| s.id == config.id) {
            return None;
        }
        let stream = Arc::new(Stream::new(config));
        let mut list = streams.to_vec();
        list.push(stream.clone());
        *streams = list.into();
        Some(stream)
    }

    /// Takes the stream `id` out (its viewers are ended, see [`Stream::close`]). The
    /// caller stops its source. Returns it, or `None` if there is none.
    pub fn remove(&self, id: &str) -> Option<Arc<Stream>> {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        let i = streams.iter().position(|s| s.id == id)?;
        let mut list = streams.to_vec();
        let old = list.remove(i);
        *streams = list.into();
        drop(streams);
        old.close();
        Some(old)
    }

    /// Puts a new stream for `config` in the place of the one with its id (ending the old
    /// one's viewers), or at the end if there is none. The caller starts its source.
    pub fn replace(&self, config: &StreamConfig) -> Arc<Stream> {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        let stream = Arc::new(Stream::new(config));
        let mut list = streams.to_vec();
        let old = match list.iter().position(|s| s.id == config.id) {
            Some(i) => Some(std::mem::replace(&mut list[i], stream.clone())),
            None => {
                list.push(stream.clone());
                None
            }
        };
        *streams = list.into();
        drop(streams);
        if let Some(old) = old {
            old.close();
        }
        stream
    }

    /// Viewers of all streams together.
    pub fn viewers_total(&self) -> usize {
        self.streams().iter().map(|s| s.viewers()).sum()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Stream>> {
        self.streams().iter().find(|s| s.id == id).cloned()
    }
}

/// Which of a camera's streams a feed is: its main stream (`url`) or its smaller
/// sub-stream (`sub_url`), which feeds the grid's renditions when it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Main,
    Sub,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Sub => "sub",
        }
    }
}

/// One incoming feed of a stream: a latest-frame slot, its supervisor's status and its
/// counters. Each feed has its own source thread.
pub struct Feed {
    /// "pattern", "rtsp", … for the API.
    pub kind: &'static str,
    /// The source URL without credentials.
    pub url_redacted: String,
    latest: Mutex<Option<Arc<Frame>>>,
    /// Woken on every publish and status change of this feed.
    changed: Event,
    status: Mutex<Status>,
    frames: AtomicU64,
    fps: Mutex<FpsMeter>,
    /// The newest picture's size, `width << 32 | height`; 0 before the first. Also set
    /// for pictures that were not encoded (nobody wanted the full size).
    size: AtomicU64,
}

impl Feed {
    fn new(c: &StreamConfig) -> Feed {
        Feed {
            kind: c.kind.as_str(),
            url_redacted: c.redacted_url(),
            latest: Mutex::new(None),
            changed: Event::new(),
            status: Mutex::new(Status::new(if c.enabled {
                State::Starting
            } else {
                State::Disabled
            })),
            frames: AtomicU64::new(0),
            fps: Mutex::new(FpsMeter::default()),
            size: AtomicU64::new(0),
        }
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    pub fn is_live(&self) -> bool {
        matches!(lock(&self.status).state, State::Live)
    }

    pub fn latest(&self) -> Option<Arc<Frame>> {
        lock(&self.latest).clone()
    }

    /// The newest picture's size, once one arrived.
    pub fn size(&self) -> Option<(u32, u32)> {
        match self.size.load(Ordering::Relaxed) {
            0 => None,
            v => Some(((v >> 32) as u32, v as u32)),
        }
    }

    /// Pictures received from the source since start.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Pictures per second over the last second or so (0 when they stopped).
    pub fn fps(&self) -> f64 {
        lock(&self.fps).current(Instant::now())
    }

    fn count(&self, width: u32, height: u32, at: Instant) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        lock(&self.fps).tick(at);
        self.size.store(
            u64::from(width) << 32 | u64::from(height),
            Ordering::Relaxed,
        );
    }
}

/// What a feed's source thread should make from its next picture.
#[derive(Default)]
pub struct Jobs {
    /// Encode (or publish) the full-size frame: someone watches it, a snapshot waits, or
    /// a rendition slot is at least as wide as the picture.
    pub full: bool,
    /// Slots to scale the picture down for (each asked for a frame).
    pub scaled: Vec<Arc<Slot>>,
}

/// One stream (camera): its feeds, the rendition slots someone watches, its counters.
/// Shared by its source threads and all viewers.
pub struct Stream {
    pub id: String,
    pub name: String,
    /// "pattern", "rtsp", … for the API (the main feed's).
    pub kind: &'static str,
    /// The source URL without credentials.
    pub url_redacted: String,
    pub led: Option<u8>,
    /// Size to draw placeholders at before any frame has arrived.
    pub size_hint: (u32, u32),

    main: Feed,
    sub: Option<Feed>,
    /// Renditions someone watches, one per ladder step; a slot goes when its last viewer
    /// does, so at most `rendition::LADDER_PX.len()` exist.
    slots: Mutex<Vec<Arc<Slot>>>,
    dropped: AtomicU64,
    /// Viewers of the full-size frames.
    viewers: AtomicUsize,
    /// Until when (ms since `epoch`) a snapshot request keeps the source producing.
    snapshot_wanted_until_ms: AtomicU64,
    epoch: Instant,
    /// OFFLINE frames last drawn, keyed by their text and size, shared by all viewers;
    /// newest first, at most [`PLACEHOLDERS_KEPT`].
    placeholders: Mutex<Vec<(String, Arc<Frame>)>>,
    /// Set when the stream is removed or replaced: its viewers end their responses.
    closed: std::sync::atomic::AtomicBool,
}

/// Placeholders kept per stream: one per size being watched (full screen, a grid tile).
const PLACEHOLDERS_KEPT: usize = 4;

impl Stream {
    fn new(c: &StreamConfig) -> Stream {
        Stream {
            id: c.id.clone(),
            name: c.name.clone(),
            kind: c.kind.as_str(),
            url_redacted: c.redacted_url(),
            led: c.led,
            size_hint: size_hint(c),
            main: Feed::new(c),
            sub: c.sub_config().map(|sub| Feed::new(&sub)),
            slots: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            viewers: AtomicUsize::new(0),
            snapshot_wanted_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            placeholders: Mutex::new(Vec::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Ends this stream for its viewers (removed or replaced): they see [`is_closed`]
    /// when woken, and finish their responses cleanly. Its LED goes off (Disabled).
    ///
    /// [`is_closed`]: Stream::is_closed
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.set_status(Status::new(State::Disabled));
        if let Some(sub) = &self.sub {
            *lock(&sub.status) = Status::new(State::Disabled);
        }
    }

    /// True once the stream was removed or replaced.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The main feed or the sub-stream (`None` when the camera has none).
    pub fn feed(&self, role: Role) -> Option<&Feed> {
        match role {
            Role::Main => Some(&self.main),
            Role::Sub => self.sub.as_ref(),
        }
    }

    /// Stores `frame` as the main feed's newest, counting it, and wakes viewers.
    pub fn publish(&self, frame: Frame) -> Arc<Frame> {
        self.main
            .count(frame.width, frame.height, frame.captured_at);
        self.publish_as(Role::Main, frame)
    }

    /// Counts a picture `role`'s source received (whether or not anything is encoded
    /// from it): frames, fps, and the size renditions are computed from.
    pub fn count(&self, role: Role, width: u32, height: u32, at: Instant) {
        if let Some(feed) = self.feed(role) {
            feed.count(width, height, at);
        }
    }

    /// Stores `frame` as `role`'s newest (assigning its sequence number), wakes its
    /// viewers and hands it to every slot it serves as is (the slot is at least as wide
    /// as the frame). Never waits on a viewer: locks are held only to swap `Arc`s.
    pub fn publish_as(&self, role: Role, mut frame: Frame) -> Arc<Frame> {
        let Some(feed) = self.feed(role) else {
            return Arc::new(frame);
        };
        let frame = {
            let mut latest = lock(&feed.latest);
            frame.seq = latest.as_ref().map_or(1, |f| f.seq + 1);
            let frame = Arc::new(frame);
            *latest = Some(frame.clone());
            frame
        };
        feed.changed.notify(usize::MAX);
        for slot in self.slots().iter() {
            if slot.width >= frame.width && self.producer(slot.width) == role {
                slot.store((*frame).clone(), role);
            }
        }
        frame
    }

    /// The main feed's newest frame, if any.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.main.latest()
    }

    /// Waits up to `timeout` for a main frame newer than `after_seq` and returns the
    /// newest. Returns `None` on timeout. Also returns early (with `None`) on a status
    /// change so viewers can show a placeholder promptly.
    pub async fn next_frame(&self, after_seq: u64, timeout: Duration) -> Option<Arc<Frame>> {
        wait_newer(&self.main.changed, timeout, || {
            self.latest().filter(|f| f.seq > after_seq)
        })
        .await
    }

    /// The main feed's status (state, last error).
    pub fn status(&self) -> Status {
        self.main.status()
    }

    /// Called by the main feed's supervisor on every state change.
    pub fn set_status(&self, status: Status) {
        self.set_status_as(Role::Main, status);
    }

    /// Called by `role`'s supervisor on every state change. Wakes the feed's viewers and
    /// every rendition's (a slot may switch feeds, or show a placeholder).
    pub fn set_status_as(&self, role: Role, status: Status) {
        let Some(feed) = self.feed(role) else { return };
        // A removed stream stays Disabled, whatever its stopping source last reported.
        if self.is_closed() && status.state != State::Disabled {
            return;
        }
        *lock(&feed.status) = status;
        feed.changed.notify(usize::MAX);
        for slot in self.slots().iter() {
            slot.changed.notify(usize::MAX);
        }
    }

    pub fn is_live(&self) -> bool {
        self.main.is_live()
    }

    /// True while `role`'s pictures are needed (someone watches what it feeds, or a
    /// snapshot is pending): sources only pay for decoding/encoding then.
    pub fn wanted_as(&self, role: Role) -> bool {
        let slots = self.slots();
        match role {
            Role::Main => {
                self.viewers.load(Ordering::Relaxed) > 0
                    || self.snapshot_wanted_until_ms.load(Ordering::Relaxed) > self.now_ms()
                    || slots.iter().any(|s| self.producer(s.width) == Role::Main)
            }
            // While the sub-stream's size is unknown it is wanted for every slot, so that
            // its first picture tells whether it is big enough to take them over.
            Role::Sub => match &self.sub {
                Some(sub) if sub.is_live() => slots
                    .iter()
                    .any(|s| sub.size().is_none_or(|(w, _)| w >= s.width)),
                _ => false,
            },
        }
    }

    /// True while the main feed's pictures are needed (see [`Stream::wanted_as`]).
    pub fn wanted(&self) -> bool {
        self.wanted_as(Role::Main)
    }

    /// Which feed serves the `step_px` rendition: the sub-stream while it is live and at
    /// least that wide, else the main stream.
    pub fn producer(&self, step_px: u32) -> Role {
        match &self.sub {
            Some(sub) if sub.is_live() && sub.size().is_some_and(|(w, _)| w >= step_px) => {
                Role::Sub
            }
            _ => Role::Main,
        }
    }

    /// What `role`'s source should make from a picture `width_px` wide.
    pub fn jobs(&self, role: Role, width_px: u32) -> Jobs {
        let mut jobs = Jobs {
            full: role == Role::Main
                && (self.viewers.load(Ordering::Relaxed) > 0
                    || self.snapshot_wanted_until_ms.load(Ordering::Relaxed) > self.now_ms()),
            scaled: Vec::new(),
        };
        for slot in self.slots().iter() {
            if self.producer(slot.width) != role {
                continue;
            }
            if slot.width >= width_px {
                jobs.full = true;
            } else if slot.demanded() {
                jobs.scaled.push(slot.clone());
            }
        }
        jobs
    }

    /// The slots `role` must scale a `width_px`-wide picture down for, now.
    pub fn scaled_jobs(&self, role: Role, width_px: u32) -> Vec<Arc<Slot>> {
        self.jobs(role, width_px).scaled
    }

    /// The rendition slots someone watches, as of now.
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        lock(&self.slots).clone()
    }

    /// Keeps the source producing frames for `duration`, for a snapshot request.
    pub fn want_for(&self, duration: Duration) {
        let until = self.now_ms() + duration.as_millis() as u64;
        self.snapshot_wanted_until_ms
            .fetch_max(until, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Registers a viewer of the full-size frames; the count drops again when the guard
    /// is dropped.
    pub fn add_viewer(self: &Arc<Self>) -> ViewerGuard {
        self.viewers.fetch_add(1, Ordering::Relaxed);
        ViewerGuard {
            stream: self.clone(),
        }
    }

    /// A viewer of this stream at `width_px` (a request's `width=`): the full-size
    /// frames when none is given or the ladder step is at least the source's width, else
    /// the step's rendition slot (made while watched).
    pub fn view(self: &Arc<Self>, width_px: Option<u32>) -> View {
        let source_w = self.main.size().map(|(w, _)| w);
        let step = width_px
            .and_then(crate::rendition::step_for)
            .filter(|&step| source_w.is_none_or(|w| step < w));
        let target = match step {
            None => Target::Full(self.add_viewer()),
            Some(step) => {
                let mut slots = lock(&self.slots);
                let slot = match slots.iter().find(|s| s.width == step) {
                    Some(s) => s.clone(),
                    None => {
                        let s = Arc::new(Slot::new(step));
                        slots.push(s.clone());
                        s
                    }
                };
                slot.viewers.fetch_add(1, Ordering::Relaxed);
                Target::Slot(slot)
            }
        };
        View {
            stream: self.clone(),
            target,
        }
    }

    /// Viewers of all sizes together.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
            + self
                .slots()
                .iter()
                .map(|s| s.viewers.load(Ordering::Relaxed))
                .sum::<usize>()
    }

    /// Main-feed frames received from the source since start.
    pub fn frames(&self) -> u64 {
        self.main.frames()
    }

    /// Frames that viewers skipped because they could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Main-feed frames per second measured over the last second or so.
    pub fn fps(&self) -> f64 {
        self.main.fps()
    }

    /// Returns the placeholder frame for `text`, drawing it only if no frame for that
    /// text (which includes its size) is kept.
    pub fn placeholder(
        &self,
        text: &str,
        draw: impl FnOnce() -> Option<Frame>,
    ) -> Option<Arc<Frame>> {
        let mut cached = lock(&self.placeholders);
        if let Some(i) = cached.iter().position(|(key, _)| key == text) {
            let entry = cached.remove(i);
            let frame = entry.1.clone();
            cached.insert(0, entry);
            return Some(frame);
        }
        let frame = Arc::new(draw()?);
        cached.insert(0, (text.to_string(), frame.clone()));
        cached.truncate(PLACEHOLDERS_KEPT);
        Some(frame)
    }
}

/// The size a stream's placeholders are drawn at before its first frame: its `size`, the
/// test pattern's own size, or VGA.
fn size_hint(c: &StreamConfig) -> (u32, u32) {
    let pattern = || {
        crate::urls::PatternOptions::parse(&c.url)
            .ok()
            .map(|o| (o.width, o.height))
    };
    c.size
        .or_else(|| {
            (c.kind == crate::config::SourceKind::Pattern)
                .then(pattern)
                .flatten()
        })
        .unwrap_or((640, 480))
}

/// Waits until `newer` finds something, `changed` fires, or `timeout` passes.
async fn wait_newer<T>(
    changed: &Event,
    timeout: Duration,
    newer: impl Fn() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let listener = changed.listen();
    if let Some(f) = newer() {
        return Some(f);
    }
    futures_lite::future::or(
        async {
            listener.await;
        },
        async {
            async_io::Timer::at(deadline).await;
        },
    )
    .await;
    newer()
}

/// One rendition of a stream (a ladder step) that someone watches: the newest frame at
/// that width, from whichever feed serves it.
pub struct Slot {
    /// The ladder step, in pixels.
    pub width: u32,
    inner: Mutex<SlotInner>,
    changed: Event,
    viewers: AtomicUsize,
}

struct SlotInner {
    latest: Option<Arc<Frame>>,
    /// A viewer waits for a frame newer than `latest`: the producer makes one only then,
    /// so a rendition is made no faster than its fastest viewer takes frames.
    demanded: bool,
    /// Which feed made `latest`.
    origin: Role,
    made: u64,
}

impl Slot {
    fn new(width: u32) -> Slot {
        Slot {
            width,
            inner: Mutex::new(SlotInner {
                latest: None,
                demanded: true,
                origin: Role::Main,
                made: 0,
            }),
            changed: Event::new(),
            viewers: AtomicUsize::new(0),
        }
    }

    /// Stores a frame made for (or served as is to) this slot, and wakes its viewers.
    pub fn store(&self, mut frame: Frame, origin: Role) {
        {
            let mut inner = lock(&self.inner);
            frame.seq = inner.latest.as_ref().map_or(1, |f| f.seq + 1);
            inner.latest = Some(Arc::new(frame));
            inner.demanded = false;
            inner.origin = origin;
            inner.made += 1;
        }
        self.changed.notify(usize::MAX);
    }

    /// True when a viewer waits for a newer frame than the slot has.
    pub fn demanded(&self) -> bool {
        lock(&self.inner).demanded
    }

    pub fn latest(&self) -> Option<Arc<Frame>> {
        lock(&self.inner).latest.clone()
    }

    /// Which feed made the newest frame.
    pub fn origin(&self) -> Role {
        lock(&self.inner).origin
    }

    /// Frames stored since the slot was created.
    pub fn made(&self) -> u64 {
        lock(&self.inner).made
    }

    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// The newest frame if newer than `after_seq`; else marks the slot as demanded.
    fn newer_or_demand(&self, after_seq: u64) -> Option<Arc<Frame>> {
        let mut inner = lock(&self.inner);
        match inner.latest.as_ref().filter(|f| f.seq > after_seq) {
            Some(f) => Some(f.clone()),
            None => {
                inner.demanded = true;
                None
            }
        }
    }
}

/// One viewer of a stream at one size (see [`Stream::view`]). Counts as a viewer until
/// dropped; a rendition slot nobody views any more is dropped with its last view.
pub struct View {
    stream: Arc<Stream>,
    target: Target,
}

enum Target {
    /// The guard counts the full-size viewer while the view lives.
    Full(#[allow(dead_code)] ViewerGuard),
    Slot(Arc<Slot>),
}

impl View {
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// The rendition step this view watches (`None`: full size).
    pub fn step(&self) -> Option<u32> {
        match &self.target {
            Target::Full(_) => None,
            Target::Slot(s) => Some(s.width),
        }
    }

    /// The newest frame at this view's size.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        match &self.target {
            Target::Full(_) => self.stream.latest(),
            Target::Slot(s) => s.latest(),
        }
    }

    /// Which feed the newest frame came from.
    pub fn origin(&self) -> Role {
        match &self.target {
            Target::Full(_) => Role::Main,
            Target::Slot(s) => s.origin(),
        }
    }

    /// Waits up to `timeout` for a frame newer than `after_seq` (see
    /// [`Stream::next_frame`]). For a rendition, waiting is what asks for the next one.
    pub async fn next_frame(&self, after_seq: u64, timeout: Duration) -> Option<Arc<Frame>> {
        match &self.target {
            Target::Full(_) => self.stream.next_frame(after_seq, timeout).await,
            Target::Slot(s) => {
                wait_newer(&s.changed, timeout, || s.newer_or_demand(after_seq)).await
            }
        }
    }

    /// True while the feed that serves this view is live.
    pub fn is_live(&self) -> bool {
        match &self.target {
            Target::Full(_) => self.stream.is_live(),
            Target::Slot(s) => match self.stream.producer(s.width) {
                Role::Main => self.stream.is_live(),
                Role::Sub => true, // only picked while live
            },
        }
    }

    /// The size placeholders are drawn at for this view.
    pub fn size(&self) -> (u32, u32) {
        let full = self.stream.main.size().unwrap_or(self.stream.size_hint);
        match &self.target {
            Target::Full(_) => full,
            Target::Slot(s) => crate::rendition::size_at(s.width, full),
        }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let Target::Slot(slot) = &self.target {
            let mut slots = lock(&self.stream.slots);
            if slot.viewers.fetch_sub(1, Ordering::Relaxed) == 1 {
                slots.retain(|s| !Arc::ptr_eq(s, slot));
            }
        }
    }
}

/// Held by one full-size viewer for as long as it watches.
pub struct ViewerGuard {
    stream: Arc<Stream>,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.stream.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts frames in roughly one-second windows.
#[derive(Default)]
struct FpsMeter {
    window_start: Option<Instant>,
    count: u32,
    last_fps: f64,
    last_frame: Option<Instant>,
}

impl FpsMeter {
    const WINDOW: Duration = Duration::from_secs(1);

    fn tick(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        self.count += 1;
        self.last_frame = Some(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Self::WINDOW {
            // `count` frames mark `count - 1` intervals since the window's first frame.
            self.last_fps = f64::from(self.count - 1) / elapsed.as_secs_f64();
            self.window_start = Some(now);
            self.count = 1;
        }
    }

    fn current(&self, now: Instant) -> f64 {
        match self.last_frame {
            // Frames stopped: don't keep reporting the old rate.
            Some(t) if now.saturating_duration_since(t) > 2 * Self::WINDOW => 0.0,
            Some(_) => self.last_fps,
            None => 0.0,
        }
    }
}

/// Locks a mutex, ignoring poisoning: every critical section here only swaps plain
/// values, so a panic elsewhere cannot leave them half-updated.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamConfig;
    use bytes::Bytes;

    fn stream() -> Arc<Stream> {
        let hub = Hub::new(&[StreamConfig::new("a", "pattern:").unwrap()]);
        hub.get("a").unwrap().clone()
    }

    #[test]
    fn publish_assigns_seq_and_viewer_gets_newest() {
        let s = stream();
        for _ in 0..3 {
            s.publish(Frame::new(Bytes::from_static(b"x"), 1, 1));
        }
        let f = smol::block_on(s.next_frame(0, Duration::from_millis(10))).unwrap();
        assert_eq!(f.seq, 3, "a late viewer skips straight to the newest frame");
        assert!(smol::block_on(s.next_frame(3, Duration::from_millis(10))).is_none());
        assert_eq!(s.frames(), 3);
    }

    #[test]
    fn waiting_viewer_is_woken_by_publish() {
        let s = stream();
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            smol::block_on(s2.next_frame(0, Duration::from_secs(30))).map(|f| f.seq)
        });
        std::thread::sleep(Duration::from_millis(50));
        s.publish(Frame::new(Bytes::from_static(b"x"), 1, 1));
        assert_eq!(t.join().unwrap(), Some(1));
    }

    #[test]
    fn viewers_and_snapshot_make_a_stream_wanted() {
        let s = stream();
        assert!(!s.wanted());
        let g = s.add_viewer();
        assert!(s.wanted());
        assert_eq!(s.viewers(), 1);
        drop(g);
        assert!(!s.wanted());
        s.want_for(Duration::from_secs(5));
        assert!(s.wanted());
    }

    #[test]
    fn fps_meter_measures_and_decays() {
        let mut m = FpsMeter::default();
        let t0 = Instant::now();
        for i in 0..=20 {
            m.tick(t0 + Duration::from_millis(100 * i));
        }
        let fps = m.current(t0 + Duration::from_secs(2));
        assert!((fps - 10.0).abs() < 0.5, "{fps}");
        assert_eq!(m.current(t0 + Duration::from_secs(10)), 0.0);
    }

    #[test]
    fn streams_can_be_added_at_runtime() {
        let hub = Hub::new(&[StreamConfig::new("a", "pattern:").unwrap()]);
        let before = hub.streams();
        let b = hub
            .add(&StreamConfig::new("b", "pattern:").unwrap())
            .unwrap();
        assert!(hub
            .add(&StreamConfig::new("a", "pattern:").unwrap())
            .is_none());
        assert_eq!(before.len(), 1, "earlier snapshots stay valid");
        let now = hub.streams();
        let ids: Vec<&str> = now.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(Arc::ptr_eq(&hub.get("b").unwrap(), &b));
    }

    #[test]
    fn placeholder_is_drawn_once_per_text() {
        let s = stream();
        let mut draws = 0;
        for text in ["a", "a", "b", "b", "b"] {
            s.placeholder(text, || {
                draws += 1;
                Some(Frame::new(Bytes::from_static(b"p"), 1, 1))
            });
        }
        assert_eq!(draws, 2);
    }
}
