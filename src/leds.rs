//! Status LEDs: each stream's state (and the `system` / `viewers` roles) → a blink pattern
//! → GPIO levels, written only when they change. The GPIO sits behind the small [`Pins`]
//! trait: rppal on the Pi, a no-op backend elsewhere, and a recording backend for tests.
//!
//! The logic is two pure functions ([`pattern_for`]: state → [`Pattern`], and
//! [`Pattern::is_on_at`]: pattern × elapsed time → on/off) driven by [`Leds::tick`], which
//! the `leds` thread ([`spawn`]) calls every [`TICK_INTERVAL`] with the time from a
//! [`Clock`], so tests control time.

use crate::config::{Config, LedConfig};
use crate::error::{Error, Result};
use crate::hub::{Hub, Stream};
use crate::shutdown::Shutdown;
use crate::supervise::{Clock, State, SystemClock};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the `leds` thread recomputes levels: half the shortest on/off phase
/// (100 ms), so every phase is seen by two ticks even when one is late; cheap on a Pi Zero.
pub const TICK_INTERVAL: Duration = Duration::from_millis(50);
/// Slow blink (reconnecting): 1 Hz, 50 % duty.
pub const SLOW_BLINK_PERIOD: Duration = Duration::from_millis(1000);
/// Fast blink (failed, needs a human): 5 Hz, 50 % duty.
pub const FAST_BLINK_PERIOD: Duration = Duration::from_millis(200);
/// Heartbeat (system LED): two blips every 1.5 s, like a pulse, so it cannot be mistaken
/// for a stream's blink.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_millis(1500);
/// Length of each heartbeat blip: two ticks, so a late tick still shows it.
pub const HEARTBEAT_BLIP: Duration = Duration::from_millis(100);
/// When, within the heartbeat period, the second blip starts.
pub const HEARTBEAT_SECOND_BLIP_AT: Duration = Duration::from_millis(250);

/// What an LED shows. Stream LEDs use `Off`, `BlinkSlow`, `On` and `BlinkFast`; the
/// `system` LED shows `Heartbeat`; the `viewers` LED is `On` or `Off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Off,
    On,
    BlinkSlow,
    BlinkFast,
    Heartbeat,
}

impl Pattern {
    /// The name shown in `/api/streams` so the page can mirror the LED.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Off => "off",
            Pattern::On => "on",
            Pattern::BlinkSlow => "blink-slow",
            Pattern::BlinkFast => "blink-fast",
            Pattern::Heartbeat => "heartbeat",
        }
    }

    /// Whether the LED is lit `elapsed` after the common epoch. Every LED shares one
    /// epoch so LEDs with the same pattern blink in step.
    pub fn is_on_at(self, elapsed: Duration) -> bool {
        match self {
            Pattern::Off => false,
            Pattern::On => true,
            Pattern::BlinkSlow => phase(elapsed, SLOW_BLINK_PERIOD) < SLOW_BLINK_PERIOD / 2,
            Pattern::BlinkFast => phase(elapsed, FAST_BLINK_PERIOD) < FAST_BLINK_PERIOD / 2,
            Pattern::Heartbeat => {
                let p = phase(elapsed, HEARTBEAT_PERIOD);
                p < HEARTBEAT_BLIP
                    || (HEARTBEAT_SECOND_BLIP_AT..HEARTBEAT_SECOND_BLIP_AT + HEARTBEAT_BLIP)
                        .contains(&p)
            }
        }
    }
}

/// Where `elapsed` falls within a repeating `period`.
fn phase(elapsed: Duration, period: Duration) -> Duration {
    let nanos = elapsed.as_nanos() % period.as_nanos();
    // Below `period`, which fits in u64 nanoseconds for any sane period.
    Duration::from_nanos(nanos as u64)
}

/// A stream's LED pattern: off when disabled, slow blink while (re)connecting, solid
/// while live, fast blink when it will not work without a config change.
pub fn pattern_for(state: &State) -> Pattern {
    match state {
        State::Disabled => Pattern::Off,
        State::Starting | State::Stalled | State::Backoff { .. } => Pattern::BlinkSlow,
        State::Live => Pattern::On,
        State::Failed => Pattern::BlinkFast,
    }
}

/// The LED pattern's name for a stream state ("off", "blink-slow", "on", "blink-fast"),
/// for the API and page.
pub fn pattern_name(state: &State) -> &'static str {
    pattern_for(state).name()
}

// ---- backends -----------------------------------------------------------------------

/// The GPIO seam. Levels are electrical (`level_high` = 3.3 V); polarity (`active_low`)
/// is handled above this, so backends stay trivial and swappable (rppal is retired
/// upstream; a gpio-cdev backend would be another ~30 lines).
pub trait Pins: Send {
    /// Which backend this is ("rppal", "none", "recording"), for logs and tests.
    fn backend(&self) -> &'static str;
    /// Drives `pin` (BCM number) to the given level, claiming it as an output first if
    /// this is its first write.
    fn set(&mut self, pin: u8, level_high: bool) -> Result<()>;
    /// Gives every claimed pin back as it was found. Called once, at shutdown.
    fn release(&mut self);
}

/// GPIO through rppal (Pi 1–5). Pins are claimed on their first write, straight into
/// the wanted level, so an LED never flashes while being set up.
pub struct RppalPins {
    gpio: rppal::gpio::Gpio,
    claimed: HashMap<u8, rppal::gpio::OutputPin>,
}

impl RppalPins {
    /// Fails off the Pi (rppal cannot identify the SoC) or without access to
    /// /dev/gpiomem.
    pub fn new() -> std::result::Result<RppalPins, rppal::gpio::Error> {
        Ok(RppalPins {
            gpio: rppal::gpio::Gpio::new()?,
            claimed: HashMap::new(),
        })
    }
}

impl Pins for RppalPins {
    fn backend(&self) -> &'static str {
        "rppal"
    }

    fn set(&mut self, pin: u8, level_high: bool) -> Result<()> {
        use rppal::gpio::Level;
        let level = if level_high { Level::High } else { Level::Low };
        if let Some(output) = self.claimed.get_mut(&pin) {
            output.write(level);
            return Ok(());
        }
        let gpio_err = |e| Error::io(format!("GPIO pin {pin}"), std::io::Error::other(e));
        let fresh = self.gpio.get(pin).map_err(gpio_err)?;
        let mut output = if level_high {
            fresh.into_output_high()
        } else {
            fresh.into_output_low()
        };
        // The default, but stated: dropping the pin must hand it back (mode as found),
        // which is how `release` works.
        output.set_reset_on_drop(true);
        self.claimed.insert(pin, output);
        Ok(())
    }

    fn release(&mut self) {
        self.claimed.clear();
    }
}

/// No GPIO (not a Pi, or GPIO unavailable): every write succeeds and changes nothing.
/// Each write is logged at debug level (`RUST_LOG=camhub::leds=debug`), so the LEDs can
/// be followed off the Pi, and tests of the real binary can check them (tests/shutdown.rs).
pub struct NoPins;

impl Pins for NoPins {
    fn backend(&self) -> &'static str {
        "none"
    }
    fn set(&mut self, pin: u8, level_high: bool) -> Result<()> {
        let level = if level_high { "high" } else { "low" };
        tracing::debug!(pin, level, "led pin write (no GPIO)");
        Ok(())
    }
    fn release(&mut self) {
        tracing::debug!("led pins released (no GPIO)");
    }
}

/// The Pi's GPIO if there is one, else [`NoPins`] (logged once: LEDs are configured but
/// cannot light, which is expected on a development machine).
pub fn open_gpio() -> Box<dyn Pins> {
    match RppalPins::new() {
        Ok(pins) => Box::new(pins),
        Err(rppal::gpio::Error::UnknownModel) => {
            tracing::info!("status LEDs disabled: not a Raspberry Pi (rppal: unknown model)");
            Box::new(NoPins)
        }
        Err(e) => {
            // On a Pi, but GPIO is unusable (permissions, kernel): the user wants to know.
            tracing::warn!(error = %e, "status LEDs disabled: cannot open GPIO");
            Box::new(NoPins)
        }
    }
}

/// One write seen by [`RecordingPins`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinWrite {
    /// The clock's time at the write.
    pub at: Instant,
    pub pin: u8,
    pub level_high: bool,
}

/// A backend for tests: records every write with the time from a (fake) clock. Clones
/// share the record, so a test keeps one clone and hands another to [`Leds`].
#[derive(Clone)]
pub struct RecordingPins {
    clock: Arc<dyn Clock>,
    record: Arc<Mutex<Record>>,
}

#[derive(Default)]
struct Record {
    writes: Vec<PinWrite>,
    releases: usize,
    /// Pins whose writes fail, as a pin already used by another program would.
    failing: HashSet<u8>,
}

impl RecordingPins {
    pub fn new(clock: Arc<dyn Clock>) -> RecordingPins {
        RecordingPins {
            clock,
            record: Arc::default(),
        }
    }

    /// Every successful write, in order.
    pub fn writes(&self) -> Vec<PinWrite> {
        self.lock().writes.clone()
    }

    /// The successful writes to one pin, in order.
    pub fn writes_to(&self, pin: u8) -> Vec<PinWrite> {
        self.lock()
            .writes
            .iter()
            .filter(|w| w.pin == pin)
            .copied()
            .collect()
    }

    /// The last level written to `pin`, if any.
    pub fn level(&self, pin: u8) -> Option<bool> {
        self.writes_to(pin).last().map(|w| w.level_high)
    }

    /// How many times [`Pins::release`] was called.
    pub fn releases(&self) -> usize {
        self.lock().releases
    }

    /// Makes every later write to `pin` fail.
    pub fn fail_pin(&self, pin: u8) {
        self.lock().failing.insert(pin);
    }

    fn lock(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pins for RecordingPins {
    fn backend(&self) -> &'static str {
        "recording"
    }

    fn set(&mut self, pin: u8, level_high: bool) -> Result<()> {
        let at = self.clock.now();
        let mut record = self.lock();
        if record.failing.contains(&pin) {
            return Err(Error::io(
                format!("GPIO pin {pin}"),
                std::io::Error::other("pin already in use"),
            ));
        }
        record.writes.push(PinWrite {
            at,
            pin,
            level_high,
        });
        Ok(())
    }

    fn release(&mut self) {
        self.lock().releases += 1;
    }
}

// ---- the driver ---------------------------------------------------------------------

/// What one LED shows.
enum Role {
    Stream(Arc<Stream>),
    /// Heartbeat while camhub runs.
    System,
    /// On while anyone watches any stream.
    Viewers,
}

struct Led {
    pin: u8,
    role: Role,
    /// The electrical level last written, so a pin is written only on change.
    written_high: Option<bool>,
    /// A write failed: logged once, then the pin is left alone.
    broken: bool,
}

impl Led {
    fn label(&self) -> String {
        match &self.role {
            Role::Stream(s) => format!("stream {}", s.id),
            Role::System => "system".into(),
            Role::Viewers => "viewers".into(),
        }
    }
}

/// Every configured LED, its pin and last written level. [`Leds::tick`] is called by
/// the `leds` thread, and by tests with [`RecordingPins`] and a fake clock.
pub struct Leds {
    hub: Arc<Hub>,
    pins: Box<dyn Pins>,
    active_low: bool,
    /// Blink phases are measured from here.
    epoch: Instant,
    leds: Vec<Led>,
    released: bool,
}

impl Leds {
    /// One LED per role pin in `config` and per stream in `hub` that has a `led` pin.
    /// Pins are unique (checked by the config). Nothing is written until the first tick.
    pub fn new(config: &LedConfig, hub: Arc<Hub>, pins: Box<dyn Pins>, now: Instant) -> Leds {
        let mut leds = Vec::new();
        let mut add = |pin: Option<u8>, role: Role| {
            if let Some(pin) = pin {
                leds.push(Led {
                    pin,
                    role,
                    written_high: None,
                    broken: false,
                });
            }
        };
        add(config.system, Role::System);
        add(config.viewers, Role::Viewers);
        for stream in hub.streams().iter() {
            add(stream.led, Role::Stream(stream.clone()));
        }
        Leds {
            hub,
            pins,
            active_low: config.active_low,
            epoch: now,
            leds,
            released: false,
        }
    }

    /// True when no LED is configured.
    pub fn is_empty(&self) -> bool {
        self.leds.is_empty()
    }

    /// The configured pins, roles first, then streams in configuration order.
    pub fn pins(&self) -> Vec<u8> {
        self.leds.iter().map(|l| l.pin).collect()
    }

    /// The backend in use ("rppal", "none", "recording").
    pub fn backend(&self) -> &'static str {
        self.pins.backend()
    }

    /// Computes every LED's level at `now` and writes the ones that changed.
    pub fn tick(&mut self, now: Instant) {
        if self.released {
            return;
        }
        let elapsed = now.saturating_duration_since(self.epoch);
        let anyone_watching = self.hub.viewers_total() > 0;
        for i in 0..self.leds.len() {
            let pattern = match &self.leds[i].role {
                Role::Stream(stream) => pattern_for(&stream.status().state),
                Role::System => Pattern::Heartbeat,
                Role::Viewers if anyone_watching => Pattern::On,
                Role::Viewers => Pattern::Off,
            };
            self.write(i, pattern.is_on_at(elapsed));
        }
    }

    /// Turns every LED off (respecting `active_low`) and releases the pins. Idempotent;
    /// also done on drop, so a panicking thread still leaves the LEDs dark.
    pub fn off_and_release(&mut self) {
        if self.released {
            return;
        }
        for i in 0..self.leds.len() {
            self.write(i, false);
        }
        self.pins.release();
        self.released = true;
    }

    /// Writes LED `i` lit or dark, unless its pin already has that level.
    fn write(&mut self, i: usize, lit: bool) {
        let level_high = lit != self.active_low;
        let led = &mut self.leds[i];
        if led.broken || led.written_high == Some(level_high) {
            return;
        }
        match self.pins.set(led.pin, level_high) {
            Ok(()) => led.written_high = Some(level_high),
            Err(e) => {
                led.broken = true;
                tracing::warn!(pin = led.pin, led = %led.label(), error = %e,
                    "status LED unusable, leaving it alone");
            }
        }
    }
}

impl Drop for Leds {
    fn drop(&mut self) {
        self.off_and_release();
    }
}

/// The `leds` thread's body: ticks every `tick_interval` until shutdown, then turns
/// every LED off and releases the pins.
pub fn run(mut leds: Leds, clock: &dyn Clock, shutdown: &Shutdown, tick_interval: Duration) {
    while !shutdown.is_triggered() {
        leds.tick(clock.now());
        if clock.sleep(tick_interval, shutdown) {
            break;
        }
    }
    leds.off_and_release();
}

/// Starts the `leds` thread if any LED is configured (`[leds] system`/`viewers`, or a
/// stream's `led`); returns `None`, and starts nothing, otherwise. Off the Pi the thread
/// still runs, on the no-op backend, so behaviour is the same everywhere.
pub fn spawn(
    config: &Config,
    hub: Arc<Hub>,
    shutdown: Shutdown,
) -> std::io::Result<Option<JoinHandle<()>>> {
    let any_configured = config.leds.system.is_some()
        || config.leds.viewers.is_some()
        || hub.streams().iter().any(|s| s.led.is_some());
    if !any_configured {
        return Ok(None);
    }
    let leds = Leds::new(&config.leds, hub, open_gpio(), Instant::now());
    tracing::info!(
        pins = ?leds.pins(),
        backend = leds.backend(),
        active_low = config.leds.active_low,
        "status LEDs"
    );
    std::thread::Builder::new()
        .name("leds".into())
        .spawn(move || run(leds, &SystemClock, &shutdown, TICK_INTERVAL))
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamConfig;
    use crate::supervise::Status;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Time that moves only when a test (or the runner's sleep) says so. Optionally
    /// triggers shutdown after a number of sleeps, to end [`run`].
    struct FakeClock {
        now: Mutex<Instant>,
        sleeps: Mutex<usize>,
        stop_after: Option<(usize, Shutdown)>,
    }

    impl FakeClock {
        fn new() -> Arc<FakeClock> {
            Self::stopping(None)
        }
        fn stopping(stop_after: Option<(usize, Shutdown)>) -> Arc<FakeClock> {
            Arc::new(FakeClock {
                now: Mutex::new(Instant::now()),
                sleeps: Mutex::new(0),
                stop_after,
            })
        }
        fn advance(&self, d: Duration) {
            *self.now.lock().unwrap() += d;
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            *self.now.lock().unwrap()
        }
        fn sleep(&self, d: Duration, shutdown: &Shutdown) -> bool {
            self.advance(d);
            let mut sleeps = self.sleeps.lock().unwrap();
            *sleeps += 1;
            if let Some((n, s)) = &self.stop_after {
                if *sleeps >= *n {
                    s.trigger();
                }
            }
            shutdown.is_triggered()
        }
    }

    /// A hub with streams "a" (LED on pin 5) and "b" (no LED).
    fn hub() -> Arc<Hub> {
        let mut a = StreamConfig::new("a", "pattern:").unwrap();
        a.led = Some(5);
        let b = StreamConfig::new("b", "pattern:").unwrap();
        Arc::new(Hub::new(&[a, b]))
    }

    fn set_state(hub: &Hub, id: &str, state: State) {
        hub.get(id).unwrap().set_status(Status::new(state));
    }

    struct Rig {
        clock: Arc<FakeClock>,
        rec: RecordingPins,
        hub: Arc<Hub>,
        leds: Leds,
    }

    fn rig(config: LedConfig) -> Rig {
        let clock = FakeClock::new();
        let rec = RecordingPins::new(clock.clone());
        let hub = hub();
        let leds = Leds::new(&config, hub.clone(), Box::new(rec.clone()), clock.now());
        Rig {
            clock,
            rec,
            hub,
            leds,
        }
    }

    impl Rig {
        /// Ticks at `at` after the epoch (time only moves forward).
        fn tick_at(&mut self, at: Duration) {
            let now = self.leds.epoch + at;
            *self.clock.now.lock().unwrap() = now;
            self.leds.tick(now);
        }
    }

    const ROLES: LedConfig = LedConfig {
        active_low: false,
        system: Some(17),
        viewers: Some(27),
    };

    #[test]
    fn every_state_maps_to_a_pattern() {
        let backoff = State::Backoff {
            attempt: 3,
            retry_at: Instant::now(),
        };
        let cases = [
            (State::Disabled, Pattern::Off, "off"),
            (State::Starting, Pattern::BlinkSlow, "blink-slow"),
            (State::Stalled, Pattern::BlinkSlow, "blink-slow"),
            (backoff, Pattern::BlinkSlow, "blink-slow"),
            (State::Live, Pattern::On, "on"),
            (State::Failed, Pattern::BlinkFast, "blink-fast"),
        ];
        for (state, pattern, name) in cases {
            assert_eq!(pattern_for(&state), pattern, "{state:?}");
            assert_eq!(pattern_name(&state), name, "{state:?}");
        }
        assert_eq!(Pattern::Heartbeat.name(), "heartbeat");
    }

    #[test]
    fn patterns_over_time() {
        let at = |p: Pattern, t: u64| p.is_on_at(ms(t));
        for t in [0, 400, 1000, 3_600_000] {
            assert!(!at(Pattern::Off, t));
            assert!(at(Pattern::On, t));
        }
        // Slow: 500 ms on, 500 ms off.
        assert!(at(Pattern::BlinkSlow, 0));
        assert!(at(Pattern::BlinkSlow, 499));
        assert!(!at(Pattern::BlinkSlow, 500));
        assert!(!at(Pattern::BlinkSlow, 999));
        assert!(at(Pattern::BlinkSlow, 1000));
        assert!(at(Pattern::BlinkSlow, 3_600_250));
        // Fast: 100 ms on, 100 ms off.
        assert!(at(Pattern::BlinkFast, 50));
        assert!(!at(Pattern::BlinkFast, 150));
        assert!(at(Pattern::BlinkFast, 250));
        assert!(!at(Pattern::BlinkFast, 1950));
        // Heartbeat: blips at 0–100 ms and 250–350 ms of every 1.5 s, dark otherwise.
        let lit: Vec<u64> = (0..30)
            .map(|i| i * 50)
            .filter(|&t| at(Pattern::Heartbeat, t))
            .collect();
        assert_eq!(lit, [0, 50, 250, 300]);
        assert!(at(Pattern::Heartbeat, 1500 + 260));
        assert!(!at(Pattern::Heartbeat, 1500 + 700));
    }

    #[test]
    fn stream_led_follows_its_state_in_time() {
        let mut r = rig(LedConfig::default());
        assert_eq!(r.leds.pins(), [5], "stream b has no LED");
        // Starting: slow blink, sampled at chosen instants.
        let mut seen = Vec::new();
        for t in [0, 250, 500, 750, 1000] {
            r.tick_at(ms(t));
            seen.push(r.rec.level(5).unwrap());
        }
        assert_eq!(seen, [true, true, false, false, true]);
        set_state(&r.hub, "a", State::Live);
        r.tick_at(ms(1600)); // slow blink would be dark here
        assert_eq!(r.rec.level(5), Some(true));
        set_state(&r.hub, "a", State::Failed);
        r.tick_at(ms(1650));
        assert_eq!(r.rec.level(5), Some(true));
        r.tick_at(ms(1750));
        assert_eq!(r.rec.level(5), Some(false));
        set_state(&r.hub, "a", State::Disabled);
        r.tick_at(ms(1800)); // fast blink would be lit here
        assert_eq!(r.rec.level(5), Some(false));
        // Times come from the clock.
        let times: Vec<Duration> = r.rec.writes().iter().map(|w| w.at - r.leds.epoch).collect();
        assert_eq!(times, [ms(0), ms(500), ms(1000), ms(1750)]);
    }

    #[test]
    fn pins_are_written_only_on_change() {
        let mut r = rig(LedConfig::default());
        set_state(&r.hub, "a", State::Live);
        for i in 0..100 {
            r.tick_at(ms(50 * i));
        }
        assert_eq!(r.rec.writes_to(5).len(), 1);
        // Slow blink from 5 s to 14.95 s: still lit at 5 s (no write), then one write
        // per half-period, at 5.5 s, 6 s, … 14.5 s.
        set_state(&r.hub, "a", State::Stalled);
        for i in 100..300 {
            r.tick_at(ms(50 * i));
        }
        assert_eq!(r.rec.writes_to(5).len(), 1 + 19);
    }

    #[test]
    fn active_low_inverts_levels_including_the_final_off() {
        let mut r = rig(LedConfig {
            active_low: true,
            ..ROLES
        });
        set_state(&r.hub, "a", State::Live);
        r.tick_at(ms(0));
        assert_eq!(r.rec.level(5), Some(false), "lit = low");
        assert_eq!(r.rec.level(27), Some(true), "dark = high");
        assert_eq!(r.rec.level(17), Some(false), "heartbeat blip at 0");
        r.leds.off_and_release();
        for pin in [5, 17, 27] {
            assert_eq!(r.rec.level(pin), Some(true), "pin {pin} off = high");
        }
        // The viewers LED was already dark: not rewritten.
        assert_eq!(r.rec.writes_to(27).len(), 1);
    }

    #[test]
    fn shutdown_turns_everything_off_and_releases_once() {
        let mut r = rig(ROLES);
        set_state(&r.hub, "a", State::Live);
        let _viewer = r.hub.get("b").unwrap().add_viewer();
        r.tick_at(ms(0));
        assert_eq!(r.rec.level(5), Some(true));
        assert_eq!(r.rec.level(17), Some(true));
        assert_eq!(r.rec.level(27), Some(true));
        r.leds.off_and_release();
        for pin in [5, 17, 27] {
            assert_eq!(r.rec.level(pin), Some(false), "pin {pin}");
        }
        assert_eq!(r.rec.releases(), 1);
        // After release nothing more is written, and dropping does not release twice.
        let writes = r.rec.writes().len();
        r.tick_at(ms(500));
        drop(r.leds);
        assert_eq!(r.rec.writes().len(), writes);
        assert_eq!(r.rec.releases(), 1);
    }

    #[test]
    fn dropping_leds_turns_them_off_and_releases() {
        let mut r = rig(ROLES);
        set_state(&r.hub, "a", State::Live);
        r.tick_at(ms(0));
        drop(r.leds);
        assert_eq!(r.rec.level(5), Some(false));
        assert_eq!(r.rec.releases(), 1);
    }

    #[test]
    fn viewers_led_follows_viewer_count() {
        let mut r = rig(ROLES);
        r.tick_at(ms(0));
        assert_eq!(r.rec.level(27), Some(false));
        let a = r.hub.get("a").unwrap().clone();
        let b = r.hub.get("b").unwrap().clone();
        let first = a.add_viewer();
        r.tick_at(ms(50));
        assert_eq!(r.rec.level(27), Some(true));
        let second = b.add_viewer();
        drop(first);
        r.tick_at(ms(100));
        assert_eq!(r.rec.level(27), Some(true), "someone still watches b");
        drop(second);
        r.tick_at(ms(150));
        assert_eq!(r.rec.level(27), Some(false));
        assert_eq!(r.rec.writes_to(27).len(), 3);
    }

    #[test]
    fn a_failing_pin_is_left_alone_and_the_others_keep_working() {
        let mut r = rig(ROLES);
        r.rec.fail_pin(17);
        for i in 0..40 {
            r.tick_at(ms(50 * i));
        }
        assert!(r.rec.writes_to(17).is_empty());
        assert!(r.rec.writes_to(5).len() > 1, "stream a still blinks");
        r.leds.off_and_release();
        assert_eq!(r.rec.level(5), Some(false));
        assert_eq!(r.rec.releases(), 1);
    }

    #[test]
    fn run_ticks_until_shutdown_then_goes_dark() {
        let shutdown = Shutdown::new();
        let clock = FakeClock::stopping(Some((30, shutdown.clone())));
        let rec = RecordingPins::new(clock.clone());
        let hub = hub();
        let leds = Leds::new(&ROLES, hub, Box::new(rec.clone()), clock.now());
        run(leds, clock.as_ref(), &shutdown, TICK_INTERVAL);
        // 30 ticks of 50 ms = 1.5 s: one full heartbeat (4 writes) and slow blink
        // (on, off, on at 1.0 s), then everything off.
        assert_eq!(rec.writes_to(17).len(), 4);
        assert_eq!(
            rec.writes_to(5)
                .iter()
                .map(|w| w.level_high)
                .collect::<Vec<_>>(),
            [true, false, true, false]
        );
        for pin in [5, 17, 27] {
            assert_eq!(rec.level(pin), Some(false), "pin {pin}");
        }
        assert_eq!(rec.releases(), 1);
    }

    #[test]
    fn spawn_starts_nothing_without_leds() {
        let config = Config::parse("", None).unwrap();
        let hub = Arc::new(Hub::new(&config.streams));
        assert!(spawn(&config, hub, Shutdown::new()).unwrap().is_none());
    }

    #[test]
    fn off_the_pi_gpio_falls_back_to_no_op_and_the_thread_stops() {
        let pins = open_gpio();
        if rppal::gpio::Gpio::new().is_err() {
            assert_eq!(pins.backend(), "none");
        }
        drop(pins);
        let config = Config::parse(
            "[leds]\nsystem = 17\n[[stream]]\nid = \"a\"\nurl = \"pattern:\"\nled = 5\n",
            None,
        )
        .unwrap();
        let hub = Arc::new(Hub::new(&config.streams));
        let shutdown = Shutdown::new();
        let thread = spawn(&config, hub, shutdown.clone()).unwrap().unwrap();
        assert_eq!(thread.thread().name(), Some("leds"));
        std::thread::sleep(ms(120));
        shutdown.trigger();
        thread.join().expect("leds thread did not panic");
    }
}
