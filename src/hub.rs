//! The hub: one latest-frame slot per stream. Sources publish into it without ever
//! blocking; viewers await the next frame and always get the newest one (a slow viewer
//! skips frames instead of queueing them). Also holds each stream's status and counters.

use crate::config::StreamConfig;
use crate::frame::Frame;
use crate::supervise::{State, Status};
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

    /// Viewers of all streams together.
    pub fn viewers_total(&self) -> usize {
        self.streams().iter().map(|s| s.viewers()).sum()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Stream>> {
        self.streams().iter().find(|s| s.id == id).cloned()
    }
}

/// One stream's slot, status and counters. Shared by its source thread and all viewers.
pub struct Stream {
    pub id: String,
    pub name: String,
    /// "pattern", "rtsp", … for the API.
    pub kind: &'static str,
    /// The source URL without credentials.
    pub url_redacted: String,
    pub led: Option<u8>,
    /// Size to draw placeholders at before any frame has arrived.
    pub size_hint: (u32, u32),

    latest: Mutex<Option<Arc<Frame>>>,
    /// Woken on every publish and every status change.
    changed: Event,
    status: Mutex<Status>,
    frames: AtomicU64,
    dropped: AtomicU64,
    viewers: AtomicUsize,
    fps: Mutex<FpsMeter>,
    /// Until when (ms since `epoch`) a snapshot request keeps the source producing.
    snapshot_wanted_until_ms: AtomicU64,
    epoch: Instant,
    /// The OFFLINE frame last drawn, keyed by its text, shared by all viewers.
    placeholder: Mutex<Option<(String, Arc<Frame>)>>,
}

impl Stream {
    fn new(c: &StreamConfig) -> Stream {
        Stream {
            id: c.id.clone(),
            name: c.name.clone(),
            kind: c.kind.as_str(),
            url_redacted: c.redacted_url(),
            led: c.led,
            size_hint: c.size.unwrap_or((640, 480)),
            latest: Mutex::new(None),
            changed: Event::new(),
            status: Mutex::new(Status::new(if c.enabled {
                State::Starting
            } else {
                State::Disabled
            })),
            frames: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            viewers: AtomicUsize::new(0),
            fps: Mutex::new(FpsMeter::default()),
            snapshot_wanted_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            placeholder: Mutex::new(None),
        }
    }

    /// Stores `frame` as the newest, assigning its sequence number, and wakes viewers.
    /// Never waits on a viewer: the lock is held only to swap an `Arc`.
    pub fn publish(&self, mut frame: Frame) -> Arc<Frame> {
        let frame = {
            let mut latest = lock(&self.latest);
            frame.seq = latest.as_ref().map_or(1, |f| f.seq + 1);
            let frame = Arc::new(frame);
            *latest = Some(frame.clone());
            frame
        };
        self.frames.fetch_add(1, Ordering::Relaxed);
        lock(&self.fps).tick(frame.captured_at);
        self.changed.notify(usize::MAX);
        frame
    }

    /// The newest frame, if any.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        lock(&self.latest).clone()
    }

    /// Waits up to `timeout` for a frame newer than `after_seq` and returns the newest.
    /// Returns `None` on timeout. Also returns early (with `None`) on a status change so
    /// viewers can show a placeholder promptly.
    pub async fn next_frame(&self, after_seq: u64, timeout: Duration) -> Option<Arc<Frame>> {
        let deadline = Instant::now() + timeout;
        let listener = self.changed.listen();
        if let Some(f) = self.latest().filter(|f| f.seq > after_seq) {
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
        self.latest().filter(|f| f.seq > after_seq)
    }

    /// The current status (state, last error).
    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// Called by the supervisor on every state change.
    pub fn set_status(&self, status: Status) {
        *lock(&self.status) = status;
        self.changed.notify(usize::MAX);
    }

    pub fn is_live(&self) -> bool {
        matches!(lock(&self.status).state, State::Live)
    }

    /// True while someone watches or a snapshot is pending: sources only pay for
    /// decoding/encoding then.
    pub fn wanted(&self) -> bool {
        self.viewers.load(Ordering::Relaxed) > 0
            || self.snapshot_wanted_until_ms.load(Ordering::Relaxed) > self.now_ms()
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

    /// Registers a viewer; the count drops again when the guard is dropped.
    pub fn add_viewer(self: &Arc<Self>) -> ViewerGuard {
        self.viewers.fetch_add(1, Ordering::Relaxed);
        // Wake the source thread's `wanted` check promptly is not needed: it polls.
        ViewerGuard {
            stream: self.clone(),
        }
    }

    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// Frames received from the source since start.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Frames that viewers skipped because they could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Frames per second measured over the last second or so (0 when frames stopped).
    pub fn fps(&self) -> f64 {
        lock(&self.fps).current(Instant::now())
    }

    /// Returns the placeholder frame for `text`, drawing it only if the text changed.
    pub fn placeholder(
        &self,
        text: &str,
        draw: impl FnOnce() -> Option<Frame>,
    ) -> Option<Arc<Frame>> {
        let mut cached = lock(&self.placeholder);
        if let Some((key, frame)) = cached.as_ref() {
            if key == text {
                return Some(frame.clone());
            }
        }
        let frame = Arc::new(draw()?);
        *cached = Some((text.to_string(), frame.clone()));
        Some(frame)
    }
}

/// Held by one viewer for as long as it watches.
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
