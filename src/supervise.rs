//! Supervision of one source: its state machine (Starting → Live ⇄ Stalled → Backoff(n) →
//! Starting, plus Failed and Disabled), the stall watchdog, capped exponential backoff,
//! and the named thread (`src-<id>`) that runs it all until shutdown.
//!
//! [`Machine`] is pure (time is passed in), so every transition is unit-tested with a
//! controllable clock; [`run`] drives a real [`Source`] with it.

use crate::config::StreamConfig;
use crate::error::Error;
use crate::frame::Frame;
use crate::hub::{Role, Stream};
use crate::rendition;
use crate::shutdown::Shutdown;
use crate::source::{self, Event, Picture, Source};
pub use crate::status::{State, Status};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Capped exponential backoff.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Being Live this long forgets earlier failures (the next failure waits `initial`).
    pub reset_after: Duration,
    /// A stream that delivered a frame within `recent_for` is retried at least every
    /// `recent_max`, however many times it failed: a camera that was just working and
    /// dropped (reboot, Wi-Fi blip, RTSP server restart) is usually back within seconds,
    /// and someone is looking at the page waiting for it. A connect attempt a second costs
    /// nothing; a camera gone for longer than `recent_for` falls back to the normal cap.
    pub recent_max: Duration,
    pub recent_for: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(30),
            recent_max: Duration::from_secs(1),
            recent_for: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// Delay before attempt `attempt` (1-based): initial, 2×, 4×, … capped at max.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// The state machine of one stream. Every method takes `now`, so tests control time.
#[derive(Debug)]
pub struct Machine {
    status: Status,
    policy: Backoff,
    stall_after: Duration,
    /// Failures since the stream was last Live for `reset_after`.
    failures: u32,
    live_since: Option<Instant>,
    /// The last frame (or sign of life) while Live; drives [`Backoff::recent_max`].
    last_live: Option<Instant>,
    last_progress: Instant,
}

impl Machine {
    pub fn new(policy: Backoff, stall_after: Duration, now: Instant) -> Machine {
        Machine {
            status: Status::new(State::Starting),
            policy,
            stall_after,
            failures: 0,
            live_since: None,
            last_live: None,
            last_progress: now,
        }
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// About to open the source. Returns true when the state changed.
    pub fn starting(&mut self, now: Instant) -> bool {
        self.last_progress = now;
        self.set(State::Starting)
    }

    /// A frame or other sign of life arrived. Returns true when the state changed.
    pub fn progress(&mut self, now: Instant) -> bool {
        self.last_progress = now;
        if self.status.state != State::Live {
            self.live_since = Some(now);
        }
        self.last_live = Some(now);
        self.set(State::Live)
    }

    /// Nothing arrived this poll. Returns true when the source has stalled: the caller
    /// must tear the connection down and then call [`Machine::failed`].
    pub fn idle(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.last_progress) < self.stall_after {
            return false;
        }
        self.set(State::Stalled);
        self.status.last_error = Some(format!(
            "stalled: no frames for {} s",
            self.stall_after.as_secs_f64().round()
        ));
        true
    }

    /// The source failed (or stalled). Returns how long to wait before retrying.
    pub fn failed(&mut self, now: Instant, error: Option<&Error>) -> Duration {
        if let Some(since) = self.live_since.take() {
            if now.saturating_duration_since(since) >= self.policy.reset_after {
                self.failures = 0;
            }
        }
        self.failures = self.failures.saturating_add(1);
        let mut delay = self.policy.delay(self.failures);
        let recently_live = self
            .last_live
            .is_some_and(|at| now.saturating_duration_since(at) < self.policy.recent_for);
        if recently_live {
            delay = delay.min(self.policy.recent_max);
        }
        if let Some(e) = error {
            self.status.last_error = Some(e.to_string());
        }
        self.set(State::Backoff {
            attempt: self.failures,
            retry_at: now + delay,
        });
        delay
    }

    /// The source can never work as configured.
    pub fn failed_permanently(&mut self, error: &Error) {
        self.status.last_error = Some(error.to_string());
        self.live_since = None;
        self.set(State::Failed);
    }

    fn set(&mut self, state: State) -> bool {
        let changed = self.status.state != state;
        self.status.state = state;
        changed
    }
}

/// Time as seen by the runner: real in production, controlled in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    /// Waits `duration` or until shutdown; true if shutdown was triggered.
    fn sleep(&self, duration: Duration, shutdown: &Shutdown) -> bool;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, duration: Duration, shutdown: &Shutdown) -> bool {
        shutdown.sleep(duration)
    }
}

/// Starts the stream's source on its own thread named `src-<id>`, and its sub-stream's
/// (if configured) on `src-<id>-sub`.
pub fn spawn(
    config: StreamConfig,
    stream: Arc<Stream>,
    shutdown: Shutdown,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut feeds = vec![(Role::Main, format!("src-{}", config.id), config.clone())];
    if let Some(sub) = config.sub_config() {
        feeds.push((Role::Sub, format!("src-{}-sub", config.id), sub));
    }
    let mut threads = Vec::new();
    for (role, name, config) in feeds {
        let (stream, shutdown) = (stream.clone(), shutdown.clone());
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            if !config.enabled {
                stream.set_status_as(role, Status::new(State::Disabled));
                return;
            }
            let source = source::build(&config, &shutdown);
            run_as(
                role,
                source,
                &stream,
                &shutdown,
                &SystemClock,
                Backoff::default(),
                config.stall_after,
            );
        })?;
        threads.push(thread);
    }
    Ok(threads)
}

/// Runs `source` as the stream's main feed (see [`run_as`]).
pub fn run(
    source: Result<Box<dyn Source>, Error>,
    stream: &Arc<Stream>,
    shutdown: &Shutdown,
    clock: &dyn Clock,
    policy: Backoff,
    stall_after: Duration,
) {
    run_as(
        Role::Main,
        source,
        stream,
        shutdown,
        clock,
        policy,
        stall_after,
    );
}

/// Runs `source` as `role` of `stream` until shutdown: open, pump events into the hub,
/// watch for stalls, back off after failures. Errors are logged here, once per change,
/// and nowhere else.
pub fn run_as(
    role: Role,
    source: Result<Box<dyn Source>, Error>,
    stream: &Arc<Stream>,
    shutdown: &Shutdown,
    clock: &dyn Clock,
    policy: Backoff,
    stall_after: Duration,
) {
    let mut machine = Machine::new(policy, stall_after, clock.now());
    let mut log = TransitionLog::new(role);
    let mut source = match source {
        Ok(s) => s,
        Err(e) => {
            machine.failed_permanently(&e);
            log.report(stream, &machine);
            return;
        }
    };
    let mut out = Output::new(stream, role);

    while !shutdown.is_triggered() {
        machine.starting(clock.now());
        log.report(stream, &machine);

        let error = match guarded(|| source.open()) {
            Ok(()) => pump(
                &mut *source,
                &mut out,
                shutdown,
                clock,
                &mut machine,
                &mut log,
            ),
            Err(e) => Some(e),
        };
        source.close();
        match error {
            None => break, // shutdown
            Some(e) if e.is_permanent() => {
                machine.failed_permanently(&e);
                log.report(stream, &machine);
                return;
            }
            Some(e) => {
                let delay = machine.failed(clock.now(), Some(&e));
                log.report(stream, &machine);
                if clock.sleep(delay, shutdown) {
                    break;
                }
            }
        }
    }
}

/// Where one feed's frames go: the hub, plus what it takes to serve renditions (an
/// encoder for full-size frames of decoded pictures, the rendition maker, and the
/// rendition thread for JPEG passthrough).
struct Output {
    stream: Arc<Stream>,
    role: Role,
    /// Full-size frames of decoded/drawn pictures, encoded only when someone wants them.
    encoder: Option<(u8, crate::jpeg::Encoder)>,
    maker: rendition::Maker,
    worker: rendition::Worker,
}

impl Output {
    fn new(stream: &Arc<Stream>, role: Role) -> Output {
        Output {
            stream: stream.clone(),
            role,
            encoder: None,
            maker: rendition::Maker::default(),
            worker: rendition::Worker::new(stream, role),
        }
    }

    fn wanted(&self) -> bool {
        self.stream.wanted_as(self.role)
    }

    /// A JPEG from the camera: published as is; scaled renditions (if someone waits for
    /// one) are made from it on the rendition thread.
    fn frame(&mut self, frame: Frame) {
        let (w, h) = (frame.width, frame.height);
        self.stream.count(self.role, w, h, frame.captured_at);
        let frame = self.stream.publish_as(self.role, frame);
        if !self.stream.scaled_jobs(self.role, w).is_empty() {
            self.worker.offer(&self.stream, self.role, frame);
        }
    }

    /// A decoded or drawn picture: encoded at full size only if someone wants that, and
    /// scaled for every rendition that waits for a frame, here on the source's thread.
    fn picture(&mut self, picture: &Picture<'_>) -> Result<(), Error> {
        let image = &picture.image;
        let captured = (picture.captured_at, picture.captured_wall);
        self.stream
            .count(self.role, image.width, image.height, picture.captured_at);
        let jobs = self.stream.jobs(self.role, image.width);
        if jobs.full {
            let encoder = match &mut self.encoder {
                Some((q, e)) if *q == picture.quality => e,
                slot => {
                    &mut slot
                        .insert((picture.quality, crate::jpeg::Encoder::new(picture.quality)))
                        .1
                }
            };
            let mut frame = Frame::new(encoder.encode_i420(image)?, image.width, image.height);
            (frame.captured_at, frame.captured_wall) = captured;
            self.stream.publish_as(self.role, frame);
        }
        rendition::make_all(&mut self.maker, image, &jobs.scaled, captured, self.role);
        Ok(())
    }
}

/// Moves events from an open source into the hub until it fails, stalls or shutdown
/// (`None`).
fn pump(
    source: &mut dyn Source,
    out: &mut Output,
    shutdown: &Shutdown,
    clock: &dyn Clock,
    machine: &mut Machine,
    log: &mut TransitionLog,
) -> Option<Error> {
    while !shutdown.is_triggered() {
        let wanted = out.wanted();
        let progressed = match guarded(|| {
            Ok(match source.next(wanted)? {
                Event::Frame(frame) => {
                    out.frame(frame);
                    true
                }
                Event::Picture(picture) => {
                    out.picture(&picture)?;
                    true
                }
                Event::Alive => true,
                Event::Idle => false,
            })
        }) {
            Ok(p) => p,
            Err(e) => return Some(e),
        };
        if progressed {
            if machine.progress(clock.now()) {
                log.report(&out.stream, machine);
            }
        } else if machine.idle(clock.now()) {
            log.report(&out.stream, machine);
            // The stall reason is already in last_error; keep it.
            return Some(Error::Source(
                machine.status().last_error.clone().unwrap_or_default(),
            ));
        }
    }
    None
}

/// Runs a source call, turning a panic into an error so one bad camera cannot take its
/// thread (and the stream) down for good.
fn guarded<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::Source(format!("source panicked: {msg}")))
    })
}

/// Publishes status changes to the hub and logs them without repeating the same error
/// every backoff round.
struct TransitionLog {
    role: Role,
    last_logged_error: Option<String>,
}

impl TransitionLog {
    fn new(role: Role) -> TransitionLog {
        TransitionLog {
            role,
            last_logged_error: None,
        }
    }

    fn report(&mut self, stream: &Stream, machine: &Machine) {
        let status = machine.status().clone();
        let Some(feed) = stream.feed(self.role) else {
            return;
        };
        if feed.status() == status {
            return;
        }
        // Log lines name the sub-stream as `<id>/sub`.
        let id = match self.role {
            Role::Main => stream.id.clone(),
            Role::Sub => format!("{}/sub", stream.id),
        };
        match &status.state {
            State::Live => tracing::info!(stream = %id, "live"),
            State::Failed => tracing::error!(
                stream = %id,
                error = status.last_error.as_deref().unwrap_or(""),
                "failed; not retrying"
            ),
            State::Backoff { attempt, retry_at } => {
                let retry_in = retry_at.saturating_duration_since(Instant::now());
                if status.last_error != self.last_logged_error {
                    tracing::warn!(
                        stream = %id,
                        error = status.last_error.as_deref().unwrap_or(""),
                        attempt,
                        "source down; retrying in {:.1} s",
                        retry_in.as_secs_f64()
                    );
                    self.last_logged_error = status.last_error.clone();
                } else {
                    tracing::debug!(stream = %id, attempt, "still down");
                }
            }
            State::Stalled => tracing::warn!(stream = %id, "stalled; reconnecting"),
            State::Starting | State::Disabled => {
                tracing::debug!(stream = %id, state = status.state.as_str())
            }
        }
        if status.state == State::Live {
            self.last_logged_error = None;
        }
        stream.set_status_as(self.role, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamConfig;
    use crate::frame::Frame;
    use crate::hub::Hub;
    use bytes::Bytes;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    const STALL: Duration = Duration::from_secs(5);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff::default();
        let delays: Vec<_> = (1..=9).map(|n| b.delay(n).as_secs_f64()).collect();
        assert_eq!(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(b.delay(u32::MAX), b.max);
    }

    #[test]
    fn first_connect_failure_backs_off_and_grows() {
        let t0 = Instant::now();
        let mut m = Machine::new(Backoff::default(), STALL, t0);
        let e = Error::Source("connection refused".into());
        assert_eq!(m.failed(t0, Some(&e)), secs(0.5));
        assert_eq!(
            m.status().state,
            State::Backoff {
                attempt: 1,
                retry_at: t0 + secs(0.5)
            }
        );
        assert_eq!(m.status().last_error.as_deref(), Some("connection refused"));
        m.starting(t0 + secs(0.5));
        assert_eq!(m.failed(t0 + secs(0.5), Some(&e)), secs(1.0));
        m.starting(t0 + secs(1.5));
        assert_eq!(m.failed(t0 + secs(1.5), Some(&e)), secs(2.0));
    }

    #[test]
    fn live_for_reset_after_forgets_failures_but_short_live_does_not() {
        let t0 = Instant::now();
        let mut m = Machine::new(Backoff::default(), STALL, t0);
        for _ in 0..4 {
            m.failed(t0, None);
        }
        // Live briefly: failures keep counting (the recent-live cap hides it for a while).
        assert!(m.progress(t0 + secs(1.0)));
        assert_eq!(m.failed(t0 + secs(2.0), None), secs(1.0));
        assert!(matches!(
            m.status().state,
            State::Backoff { attempt: 5, .. }
        ));
        // Live for longer than reset_after: back to the initial delay.
        m.progress(t0 + secs(10.0));
        assert_eq!(m.failed(t0 + secs(50.0), None), secs(0.5));
        assert!(matches!(
            m.status().state,
            State::Backoff { attempt: 1, .. }
        ));
    }

    /// Issue #7: an RTSP server restarted 20 times must be Live within 3 s of each
    /// restart, so a stream that was just Live is retried every second however often it
    /// dropped; one gone for longer than `recent_for` backs off to the full cap again.
    #[test]
    fn a_recently_live_stream_is_retried_every_second_then_backs_off() {
        let b = Backoff::default();
        let t0 = Instant::now();
        let mut m = Machine::new(b, STALL, t0);
        let mut now = t0;
        // Twenty short live periods, each followed by an outage of several retries.
        for _ in 0..20 {
            m.progress(now);
            now += secs(2.0);
            for _ in 0..4 {
                let delay = m.failed(now, None);
                assert!(delay <= b.recent_max, "{delay:?}");
                now += delay;
            }
        }
        // Down for good: once the last frame is recent_for old the delays grow to max.
        let mut delay = Duration::ZERO;
        while now.saturating_duration_since(t0) < secs(3600.0) {
            delay = m.failed(now, None);
            now += delay;
        }
        assert_eq!(delay, b.max);
    }

    #[test]
    fn stall_watchdog_fires_after_stall_after_without_progress() {
        let t0 = Instant::now();
        let mut m = Machine::new(Backoff::default(), STALL, t0);
        m.progress(t0);
        assert!(!m.idle(t0 + secs(4.9)));
        assert!(!m.progress(t0 + secs(4.9)), "already live");
        assert!(!m.idle(t0 + secs(9.8)));
        assert!(m.idle(t0 + secs(9.9)));
        assert_eq!(m.status().state, State::Stalled);
        assert!(m
            .status()
            .last_error
            .as_deref()
            .unwrap()
            .contains("stalled"));
        // Then torn down and retried with backoff.
        m.failed(t0 + secs(9.9), None);
        assert!(matches!(
            m.status().state,
            State::Backoff { attempt: 1, .. }
        ));
        assert!(m
            .status()
            .last_error
            .as_deref()
            .unwrap()
            .contains("stalled"));
    }

    #[test]
    fn a_connect_that_never_yields_a_frame_also_stalls() {
        let t0 = Instant::now();
        let mut m = Machine::new(Backoff::default(), STALL, t0);
        m.starting(t0);
        assert!(m.idle(t0 + STALL));
    }

    #[test]
    fn permanent_failure_is_failed_with_reason() {
        let mut m = Machine::new(Backoff::default(), STALL, Instant::now());
        m.failed_permanently(&Error::Permanent("codec H.265 not supported".into()));
        assert_eq!(m.status().state, State::Failed);
        assert!(m.status().last_error.as_deref().unwrap().contains("H.265"));
    }

    // ---- the runner, with a scripted source and a fake clock --------------------------

    /// Time that only moves when the runner sleeps or the fake source says so.
    struct FakeClock {
        now: Mutex<Instant>,
        slept: Mutex<Vec<Duration>>,
    }

    impl FakeClock {
        fn new() -> Arc<FakeClock> {
            Arc::new(FakeClock {
                now: Mutex::new(Instant::now()),
                slept: Mutex::new(Vec::new()),
            })
        }
        fn advance(&self, d: Duration) {
            *self.now.lock().unwrap() += d;
        }
    }

    impl Clock for Arc<FakeClock> {
        fn now(&self) -> Instant {
            *self.now.lock().unwrap()
        }
        fn sleep(&self, d: Duration, shutdown: &Shutdown) -> bool {
            self.slept.lock().unwrap().push(d);
            self.advance(d);
            shutdown.is_triggered()
        }
    }

    /// What the fake source does on each call.
    enum Step {
        OpenFails(&'static str),
        OpenOk,
        Frame,
        Idle(Duration),
        Fails(&'static str),
        Panics,
        Permanent(&'static str),
    }

    struct Scripted {
        steps: VecDeque<Step>,
        clock: Arc<FakeClock>,
        shutdown: Shutdown,
        /// Records each transition the stream goes through, as seen by the source.
        opens: Arc<Mutex<u32>>,
        closes: Arc<Mutex<u32>>,
    }

    impl Scripted {
        fn step(&mut self) -> Step {
            match self.steps.pop_front() {
                Some(s) => s,
                None => {
                    self.shutdown.trigger();
                    Step::Idle(Duration::ZERO)
                }
            }
        }
    }

    impl Source for Scripted {
        fn open(&mut self) -> Result<(), Error> {
            *self.opens.lock().unwrap() += 1;
            match self.step() {
                Step::OpenFails(e) => Err(Error::Source(e.into())),
                Step::Permanent(e) => Err(Error::Permanent(e.into())),
                Step::Panics => panic!("driver bug"),
                _ => Ok(()),
            }
        }
        fn next(&mut self, _wanted: bool) -> Result<Event<'_>, Error> {
            match self.step() {
                Step::Frame => {
                    self.clock.advance(secs(0.1));
                    Ok(Event::Frame(Frame::new(Bytes::from_static(b"jpeg"), 2, 2)))
                }
                Step::Idle(d) => {
                    self.clock.advance(d);
                    Ok(Event::Idle)
                }
                Step::Fails(e) => Err(Error::Source(e.into())),
                Step::Panics => panic!("driver bug"),
                Step::Permanent(e) => Err(Error::Permanent(e.into())),
                Step::OpenOk | Step::OpenFails(_) => unreachable!("script error"),
            }
        }
        fn close(&mut self) {
            *self.closes.lock().unwrap() += 1;
        }
    }

    struct Run {
        stream: Arc<Stream>,
        slept: Vec<Duration>,
        opens: u32,
        closes: u32,
    }

    fn run_script(steps: Vec<Step>) -> Run {
        let hub = Hub::new(&[StreamConfig::new("cam", "pattern:").unwrap()]);
        let stream = hub.get("cam").unwrap().clone();
        let clock = FakeClock::new();
        let shutdown = Shutdown::new();
        let opens = Arc::new(Mutex::new(0));
        let closes = Arc::new(Mutex::new(0));
        let source = Scripted {
            steps: steps.into(),
            clock: clock.clone(),
            shutdown: shutdown.clone(),
            opens: opens.clone(),
            closes: closes.clone(),
        };
        run(
            Ok(Box::new(source)),
            &stream,
            &shutdown,
            &clock,
            Backoff::default(),
            STALL,
        );
        let slept = clock.slept.lock().unwrap().clone();
        let opens = *opens.lock().unwrap();
        let closes = *closes.lock().unwrap();
        Run {
            stream,
            slept,
            opens,
            closes,
        }
    }

    #[test]
    fn runner_retries_failed_first_connects_then_goes_live() {
        let r = run_script(vec![
            Step::OpenFails("connection refused"),
            Step::OpenFails("connection refused"),
            Step::OpenOk,
            Step::Frame,
            Step::Frame,
        ]);
        assert_eq!(r.slept, [secs(0.5), secs(1.0)]);
        assert_eq!(r.stream.frames(), 2);
        assert_eq!(r.stream.status().state, State::Live);
        assert_eq!(r.opens, 3);
        assert_eq!(r.closes, r.opens, "every open is closed");
        // The error stays visible after recovery.
        assert_eq!(
            r.stream.status().last_error.as_deref(),
            Some("connection refused")
        );
    }

    #[test]
    fn runner_tears_down_a_stalled_source_and_reconnects() {
        let r = run_script(vec![
            Step::OpenOk,
            Step::Frame,
            Step::Idle(secs(2.0)),
            Step::Idle(secs(2.0)),
            Step::Idle(secs(2.0)), // 6 s without a frame: stalled
            Step::OpenOk,
            Step::Frame,
        ]);
        assert_eq!(r.opens, 2);
        assert_eq!(r.closes, 2);
        assert_eq!(r.slept, [secs(0.5)]);
        assert_eq!(r.stream.status().state, State::Live);
        assert!(r.stream.status().last_error.unwrap().contains("stalled"));
    }

    #[test]
    fn runner_survives_errors_and_panics() {
        let r = run_script(vec![
            Step::OpenOk,
            Step::Frame,
            Step::Fails("connection reset"),
            Step::Panics,
            Step::OpenOk,
            Step::Panics,
            Step::OpenOk,
            Step::Frame,
        ]);
        assert_eq!(r.stream.status().state, State::Live);
        assert_eq!(r.slept.len(), 3);
        assert_eq!(r.closes, r.opens);
        assert!(r.stream.status().last_error.unwrap().contains("panicked"));
    }

    #[test]
    fn runner_stops_retrying_on_a_permanent_error() {
        let r = run_script(vec![
            Step::OpenOk,
            Step::Permanent("codec H.265 not supported"),
            Step::OpenOk, // never reached
        ]);
        assert_eq!(r.opens, 1);
        assert_eq!(r.stream.status().state, State::Failed);
        assert!(r.slept.is_empty());
    }

    #[test]
    fn runner_marks_a_source_that_cannot_be_built_failed() {
        let hub = Hub::new(&[StreamConfig::new("cam", "pattern:").unwrap()]);
        let stream = hub.get("cam").unwrap();
        run(
            Err(Error::Permanent("rtsp sources are not supported".into())),
            &stream,
            &Shutdown::new(),
            &SystemClock,
            Backoff::default(),
            STALL,
        );
        assert_eq!(stream.status().state, State::Failed);
    }

    #[test]
    fn runner_returns_promptly_on_shutdown() {
        let hub = Hub::new(&[StreamConfig::new("cam", "pattern:").unwrap()]);
        let stream = hub.get("cam").unwrap().clone();
        let shutdown = Shutdown::new();
        shutdown.trigger();
        let clock = FakeClock::new();
        let opens = Arc::new(Mutex::new(0));
        let source = Scripted {
            steps: VecDeque::new(),
            clock: clock.clone(),
            shutdown: shutdown.clone(),
            opens: opens.clone(),
            closes: Arc::new(Mutex::new(0)),
        };
        run(
            Ok(Box::new(source)),
            &stream,
            &shutdown,
            &clock,
            Backoff::default(),
            STALL,
        );
        assert_eq!(*opens.lock().unwrap(), 0);
    }
}
