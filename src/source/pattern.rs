//! The test-pattern source (`pattern:?size=640x480&fps=15`): scrolling colour bars, a
//! sweep that crosses the frame once a second, the stream name, a frame counter and the
//! UTC wall-clock time with milliseconds, generated in-process. It makes camhub useful
//! without a camera, and lets a viewer see that the pipeline is live and how late it is
//! (compare the drawn time with a clock).
//!
//! It is cheap by construction: nothing is drawn or encoded while nobody watches; the
//! static parts are drawn once; each frame copies the bars from a precomputed strip,
//! redraws two lines of text and encodes the canvas directly (no colour conversion).

use crate::config::StreamConfig;
use crate::draw::{text_width_px, Canvas, Color, GLYPH_SIZE_PX};
use crate::error::{Error, Result};
use crate::source::{Event, Picture, Source, POLL_INTERVAL};
use crate::urls::UrlOptions;
pub use crate::urls::{PatternOptions, DEFAULT_FPS, DEFAULT_SIZE, FPS_RANGE};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A [`Source`] that draws its frames: for testing every other part of camhub, and as
/// the stream shown when no camera is configured.
pub struct PatternSource {
    name: String,
    options: PatternOptions,
    clock: Clock,
    /// Built on the first wanted frame, so a pattern nobody watches allocates nothing.
    painter: Option<Painter>,
}

impl PatternSource {
    /// The pattern for a stream: options from its URL; the stream's `size` and `fps`
    /// hints apply where the URL sets nothing.
    pub fn from_config(stream: &StreamConfig) -> Result<Self> {
        let given = UrlOptions::parse(&stream.url)
            .map_err(|msg| Error::Permanent(format!("stream {:?}: {msg}", stream.id)))?;
        let (width, height) = given.size.or(stream.size).unwrap_or(DEFAULT_SIZE);
        let options = PatternOptions {
            width,
            height,
            fps: given.fps.or(stream.fps).unwrap_or(DEFAULT_FPS),
        };
        PatternSource::new(&stream.name, options)
            .map_err(|e| Error::Permanent(format!("stream {:?}: {e}", stream.id)))
    }

    /// A pattern titled `name`. Fails (permanently) for sizes or rates out of range.
    pub fn new(name: &str, options: PatternOptions) -> Result<Self> {
        options
            .validate()
            .map_err(|msg| Error::Permanent(format!("test pattern: {msg}")))?;
        Ok(PatternSource {
            name: name.to_string(),
            options,
            clock: Clock::new(options.fps),
            painter: None,
        })
    }

    /// The size and rate this source produces.
    pub fn options(&self) -> PatternOptions {
        self.options
    }
}

impl Source for PatternSource {
    fn open(&mut self) -> Result<()> {
        self.clock.restart();
        Ok(())
    }

    fn next(&mut self, wanted: bool) -> Result<Event<'_>> {
        let Some(tick) = self.clock.wait(POLL_INTERVAL) else {
            return Ok(Event::Idle);
        };
        if !wanted {
            return Ok(Event::Alive);
        }
        let painter = match &mut self.painter {
            Some(painter) => painter,
            slot @ None => slot.insert(Painter::new(&self.name, self.options)?),
        };
        // Stamp the frame with the moment drawn into it, not the end of encoding, so
        // X-Timestamp matches the clock a viewer sees in the picture.
        let (captured_at, captured_wall) = (Instant::now(), SystemTime::now());
        painter.draw(tick, captured_wall);
        // The supervisor encodes what viewers want of it: full size, renditions.
        Ok(Event::Picture(Picture {
            image: painter.canvas.as_i420(),
            quality: crate::jpeg::DEFAULT_QUALITY,
            captured_at,
            captured_wall,
        }))
    }
}

/// Paces ticks at `fps` from a start instant. When the caller falls behind (a busy
/// machine, a slow encode), missed ticks are skipped rather than produced in a burst,
/// so viewers get a steady rate and the frame counter shows the gap.
#[derive(Debug)]
struct Clock {
    fps: u32,
    started: Instant,
    /// The tick `wait` hands out next.
    next_tick: u64,
}

impl Clock {
    fn new(fps: u32) -> Clock {
        Clock {
            fps: fps.max(1),
            started: Instant::now(),
            next_tick: 0,
        }
    }

    fn restart(&mut self) {
        self.started = Instant::now();
        self.next_tick = 0;
    }

    /// When `tick` is due (None: so far ahead it is not representable).
    fn deadline(&self, tick: u64) -> Option<Instant> {
        let offset_ns = u128::from(tick) * 1_000_000_000 / u128::from(self.fps);
        self.started
            .checked_add(Duration::from_nanos(u64::try_from(offset_ns).ok()?))
    }

    /// The last tick due at `now`.
    fn tick_at(&self, now: Instant) -> u64 {
        let elapsed_ns = now.saturating_duration_since(self.started).as_nanos();
        u64::try_from(elapsed_ns * u128::from(self.fps) / 1_000_000_000).unwrap_or(u64::MAX)
    }

    /// Sleeps until the next tick is due and returns it, or sleeps `max_wait` and
    /// returns None when the tick is further away than that.
    fn wait(&mut self, max_wait: Duration) -> Option<u64> {
        let now = Instant::now();
        match self.deadline(self.next_tick) {
            Some(deadline) if deadline <= now => {
                self.next_tick = self.next_tick.max(self.tick_at(now));
            }
            Some(deadline) if deadline - now <= max_wait => std::thread::sleep(deadline - now),
            _ => {
                std::thread::sleep(max_wait);
                return None;
            }
        }
        let tick = self.next_tick;
        self.next_tick = tick.saturating_add(1);
        Some(tick)
    }
}

const BAND: Color = Color::grey(24);
const SWEEP_TRACK: Color = Color::grey(48);
const NAME_TEXT: Color = Color::WHITE;
const TIME_TEXT: Color = Color::WHITE;
const COUNTER_TEXT: Color = Color::grey(200);
/// 75 % colour bars (white, yellow, cyan, green, magenta, red, blue), as on SMPTE and
/// EBU charts: familiar, and a colour-channel mix-up is obvious at a glance.
const BARS: [Color; 7] = [
    Color::rgb(191, 191, 191),
    Color::rgb(191, 191, 0),
    Color::rgb(0, 191, 191),
    Color::rgb(0, 191, 0),
    Color::rgb(191, 0, 191),
    Color::rgb(191, 0, 0),
    Color::rgb(0, 0, 191),
];
/// The bars scroll by one period (the frame width) in this many seconds.
const SCROLL_PERIOD_S: u64 = 4;

/// Where things go in a frame, from top to bottom: the name band, the bars, the sweep
/// track and the info band (time and frame counter). Edges are even, so chroma (one
/// sample per 2×2 block) lines up with them.
#[derive(Debug)]
struct Layout {
    /// Text scale: 8×8 glyphs drawn as (8·scale)² pixels.
    scale: u32,
    pad_px: u32,
    bars_y: u32,
    bars_h: u32,
    sweep_y: u32,
    sweep_h: u32,
    info_y: u32,
    info_h: u32,
    sweep_block_w: u32,
}

impl Layout {
    fn new(width: u32, height: u32) -> Layout {
        // The time line ("12:34:56.789 UTC", 16 characters and a margin) fills ~90 % of
        // the width: ~18 px tall on a phone that shrinks the frame to its screen width.
        let scale = ((width * 9 / 10) / (GLYPH_SIZE_PX * 17))
            .min(height / 80)
            .clamp(1, 16);
        let line_h = GLYPH_SIZE_PX * scale;
        let pad_px = 2 * scale;
        let even = |v: u32| v & !1;
        let name_h = even(line_h + 2 * pad_px + 1);
        let info_h = even(2 * line_h + 3 * pad_px + 1);
        let sweep_h = (2 * scale).max(2);
        let info_y = even(height.saturating_sub(info_h));
        let sweep_y = info_y.saturating_sub(sweep_h);
        Layout {
            scale,
            pad_px,
            bars_y: name_h,
            bars_h: sweep_y.saturating_sub(name_h),
            sweep_y,
            sweep_h,
            info_y,
            info_h,
            sweep_block_w: even((width / 16).max(4)),
        }
    }
}

/// Draws and encodes the frames of one pattern. Built once per source, so everything
/// that does not change from frame to frame is prepared here.
struct Painter {
    canvas: Canvas,
    /// Two rows of bars, one scroll period wider than the frame: a frame's bars are a
    /// window into it at the scroll offset, copied row pair by row pair.
    bars: Canvas,
    scroll_period_px: u32,
    layout: Layout,
    fps: u32,
}

impl Painter {
    fn new(name: &str, options: PatternOptions) -> Result<Painter> {
        let PatternOptions { width, height, fps } = options;
        let layout = Layout::new(width, height);
        let mut canvas = Canvas::new(width, height, BAND)?;
        canvas.fill_rect(0, layout.bars_y, width, layout.bars_h, BARS[0]);

        // The name never changes: draw it once, shrinking a long one down to half the
        // normal size, then clipping.
        let room_px = width.saturating_sub(2 * layout.pad_px);
        let fitting_scale = room_px / text_width_px(name, 1).max(1);
        let name_scale = fitting_scale.clamp((layout.scale / 2).max(1), layout.scale);
        let name_y = layout.bars_y.saturating_sub(GLYPH_SIZE_PX * name_scale) / 2;
        canvas.draw_text(layout.pad_px, name_y, name, name_scale, NAME_TEXT);

        let scroll_period_px = (width & !1).max(2);
        let mut bars = Canvas::new(width + scroll_period_px, 2, BARS[0])?;
        for (i, &color) in (0u32..).zip(&BARS) {
            let start = i * scroll_period_px / 7;
            let end = (i + 1) * scroll_period_px / 7;
            // Two copies of the period side by side, so any window of `width` fits.
            for x in [start, start + scroll_period_px] {
                bars.fill_rect(x, 0, end - start, 2, color);
            }
        }
        Ok(Painter {
            canvas,
            bars,
            scroll_period_px,
            layout,
            fps,
        })
    }

    /// Redraws what changes between frames: the bars at this tick's scroll offset, the
    /// sweep at the wall clock's millisecond, the time and the frame counter.
    fn draw(&mut self, tick: u64, now: SystemTime) {
        let width = self.canvas.width();
        let layout = &self.layout;

        // Scroll by the tick, not the clock: motion stays smooth however late a frame is.
        let cycle_ticks = SCROLL_PERIOD_S * u64::from(self.fps);
        let period = u64::from(self.scroll_period_px);
        let offset_px = ((tick % cycle_ticks) * period / cycle_ticks) as u32 & !1;
        let bars_end = layout.bars_y + layout.bars_h;
        for y in (layout.bars_y..bars_end).step_by(2) {
            let rows = (bars_end - y).min(2);
            self.canvas
                .blit(&self.bars, offset_px, 0, 0, y, width, rows);
        }

        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let ms_of_second = since_epoch.subsec_millis();
        let travel_px = width.saturating_sub(layout.sweep_block_w);
        let sweep_x = (travel_px * ms_of_second / 999) & !1;
        self.canvas
            .fill_rect(0, layout.sweep_y, width, layout.sweep_h, SWEEP_TRACK);
        self.canvas.fill_rect(
            sweep_x,
            layout.sweep_y,
            layout.sweep_block_w,
            layout.sweep_h,
            Color::WHITE,
        );

        let (scale, pad) = (layout.scale, layout.pad_px);
        let line_h = GLYPH_SIZE_PX * scale;
        self.canvas
            .fill_rect(0, layout.info_y, width, layout.info_h, BAND);
        self.canvas.draw_text(
            pad,
            layout.info_y + pad,
            &utc_time_text(since_epoch),
            scale,
            TIME_TEXT,
        );
        self.canvas.draw_text(
            pad,
            layout.info_y + 2 * pad + line_h,
            &format!("frame {tick}"),
            scale,
            COUNTER_TEXT,
        );
    }
}

/// "HH:MM:SS.mmm UTC" for a time given as time since the Unix epoch. UTC and no date,
/// so it needs no time-zone data; it is for reading latency off a frame, not a calendar.
fn utc_time_text(since_epoch: Duration) -> String {
    let ms_of_day = (since_epoch.as_millis() % 86_400_000) as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::jpeg;

    fn source(url: &str) -> PatternSource {
        let stream = StreamConfig::new("test", url).unwrap();
        let mut source = PatternSource::from_config(&stream).unwrap();
        source.open().unwrap();
        source
    }

    /// What the next event that is not Idle is: "alive", "picture" or "frame".
    fn next_event(source: &mut PatternSource, wanted: bool) -> &'static str {
        loop {
            match source.next(wanted).unwrap() {
                Event::Idle => continue,
                Event::Alive => return "alive",
                Event::Picture(_) => return "picture",
                Event::Frame(_) => return "frame",
            }
        }
    }

    /// The next picture, encoded as the supervisor would for a full-size viewer.
    fn next_frame(source: &mut PatternSource) -> Frame {
        loop {
            match source.next(true).unwrap() {
                Event::Idle => continue,
                Event::Picture(p) => {
                    let jpeg = jpeg::encode_i420(&p.image, jpeg::DEFAULT_QUALITY).unwrap();
                    return Frame::new(jpeg, p.image.width, p.image.height);
                }
                other => panic!("expected a picture, got {other:?}"),
            }
        }
    }

    fn parse_err(url: &str) -> String {
        PatternOptions::parse(url).unwrap_err()
    }

    #[test]
    fn options_default_to_640x480_at_15_fps() {
        let defaults = PatternOptions {
            width: 640,
            height: 480,
            fps: 15,
        };
        for url in [
            "pattern:",
            "pattern:?",
            "PATTERN:",
            "pattern://",
            "pattern:?&",
        ] {
            assert_eq!(PatternOptions::parse(url).unwrap(), defaults, "{url}");
        }
    }

    #[test]
    fn options_size_and_fps() {
        let o = PatternOptions::parse("pattern:?size=320x240&fps=5").unwrap();
        assert_eq!((o.width, o.height, o.fps), (320, 240, 5));
        let o = PatternOptions::parse("pattern://?fps=120").unwrap();
        assert_eq!((o.width, o.height, o.fps), (640, 480, 120));
        let o = PatternOptions::parse("pattern:?size=1280x720").unwrap();
        assert_eq!((o.width, o.height, o.fps), (1280, 720, 15));
    }

    #[test]
    fn option_errors_name_the_option() {
        let e = parse_err("pattern:?colour=red");
        assert!(e.contains("\"colour\"") && e.contains("size, fps"), "{e}");
        for url in [
            "pattern:?fps=0",
            "pattern:?fps=121",
            "pattern:?fps=ten",
            "pattern:?fps",
        ] {
            let e = parse_err(url);
            assert!(
                e.contains("\"fps\"") && e.contains("1 to 120"),
                "{url}: {e}"
            );
        }
        for url in ["pattern:?size=1x1", "pattern:?size=big", "pattern:?size="] {
            assert!(parse_err(url).contains("\"size\""), "{url}");
        }
        assert!(parse_err("pattern:?fps=5&fps=6").contains("twice"));
        assert!(parse_err("pattern:bars").contains("query"));
        assert!(parse_err("rtsp://cam/pattern:").contains("not a pattern"));
        assert!(parse_err("").contains("not a pattern"));
        assert!(parse_err("patté").contains("not a pattern"));
    }

    #[test]
    fn stream_hints_fill_what_the_url_leaves_out() {
        let mut stream = StreamConfig::new("hinted", "pattern:").unwrap();
        stream.size = Some((320, 240));
        stream.fps = Some(5);
        let o = PatternSource::from_config(&stream).unwrap().options();
        assert_eq!((o.width, o.height, o.fps), (320, 240, 5));

        stream.url = "pattern:?fps=30".into();
        let o = PatternSource::from_config(&stream).unwrap().options();
        assert_eq!((o.width, o.height, o.fps), (320, 240, 30));

        stream.url = "pattern:?size=160x120".into();
        let o = PatternSource::from_config(&stream).unwrap().options();
        assert_eq!((o.width, o.height, o.fps), (160, 120, 5));
    }

    #[test]
    fn bad_hints_are_permanent_errors() {
        let mut stream = StreamConfig::new("odd", "pattern:").unwrap();
        stream.fps = Some(0);
        let e = PatternSource::from_config(&stream).err().unwrap();
        assert!(e.is_permanent() && e.to_string().contains("fps"), "{e}");
        stream.fps = None;
        stream.size = Some((0, 10));
        assert!(PatternSource::from_config(&stream)
            .err()
            .unwrap()
            .is_permanent());
    }

    #[test]
    fn frames_decode_with_the_configured_size() {
        for (width, height) in [(320, 240), (640, 480), (16, 16), (17, 31), (1280, 720)] {
            let mut source = source(&format!("pattern:?size={width}x{height}&fps=120"));
            let frame = next_frame(&mut source);
            assert_eq!((frame.width, frame.height), (width, height));
            assert_eq!(jpeg::check(&frame.jpeg).unwrap(), (width, height));
            let mut decoder = jpeg_decoder::Decoder::new(&frame.jpeg[..]);
            decoder.decode().unwrap();
            let info = decoder.info().unwrap();
            assert_eq!(
                (u32::from(info.width), u32::from(info.height)),
                (width, height)
            );
        }
    }

    #[test]
    fn consecutive_frames_differ() {
        let mut source = source("pattern:?size=320x240&fps=120");
        let a = next_frame(&mut source);
        let b = next_frame(&mut source);
        assert_ne!(a.jpeg, b.jpeg);
    }

    #[test]
    fn the_picture_has_text_and_bars() {
        let mut painter = Painter::new("Name", PatternOptions::parse("pattern:").unwrap()).unwrap();
        painter.draw(42, UNIX_EPOCH + Duration::from_millis(1_234));
        let canvas = &painter.canvas;
        let layout = &painter.layout;
        let lit_in = |y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (0..canvas.width()).map(move |x| (x, y)))
                .filter(|&(x, y)| canvas.luma_at(x, y) == Some(255))
                .count()
        };
        assert!(lit_in(0, layout.bars_y) > 100, "name drawn");
        assert!(
            lit_in(layout.info_y, canvas.height()) > 200,
            "time and counter drawn"
        );
        // Bars: every colour appears along a row in the middle.
        let mid = layout.bars_y + layout.bars_h / 2;
        let row: Vec<u8> = (0..canvas.width())
            .filter_map(|x| canvas.luma_at(x, mid))
            .collect();
        for bar in BARS {
            assert!(row.contains(&bar.y), "bar with luma {} missing", bar.y);
        }
    }

    #[test]
    fn unwanted_ticks_are_alive_and_cost_nothing() {
        let mut source = source("pattern:?fps=120");
        for _ in 0..5 {
            assert_eq!(next_event(&mut source, false), "alive");
        }
        assert!(
            source.painter.is_none(),
            "nothing drawn while nobody watches"
        );
        assert_eq!(next_event(&mut source, true), "picture");
        assert_eq!(next_event(&mut source, false), "alive");
    }

    #[test]
    fn pacing_does_not_exceed_fps() {
        let mut source = source("pattern:?size=160x120&fps=10");
        let started = Instant::now();
        let mut produced = 0;
        while started.elapsed() < Duration::from_millis(500) {
            if !matches!(source.next(produced % 2 == 0).unwrap(), Event::Idle) {
                produced += 1;
            }
        }
        // 10 fps for ~0.5 s: about 5 frames (plus one at the start, plus slack for a slow
        // machine's last call). A source that does not pace would give hundreds.
        assert!((1..=8).contains(&produced), "{produced} events");
    }

    #[test]
    fn slow_rates_return_idle_within_the_poll_interval() {
        let mut source = source("pattern:?fps=1");
        assert!(matches!(source.next(false).unwrap(), Event::Alive));
        // The next tick is a second away: the call returns after POLL_INTERVAL.
        assert!(matches!(source.next(false).unwrap(), Event::Idle));
    }

    #[test]
    fn a_late_clock_skips_ahead_instead_of_bursting() {
        let mut clock = Clock::new(100);
        assert_eq!(clock.wait(POLL_INTERVAL), Some(0));
        std::thread::sleep(Duration::from_millis(100));
        // At least 100 ms passed, so at least tick 10 is due: it comes next, not tick 1.
        let late = clock.wait(POLL_INTERVAL).unwrap();
        assert!(late >= 10, "{late}");
        assert_eq!(clock.wait(POLL_INTERVAL), Some(late + 1));
        clock.restart();
        assert_eq!(clock.wait(POLL_INTERVAL), Some(0));
    }

    #[test]
    fn time_text() {
        let t = Duration::from_millis(3 * 86_400_000 + 3_600_000 + 61_005);
        assert_eq!(utc_time_text(t), "01:01:01.005 UTC");
        assert_eq!(utc_time_text(Duration::ZERO), "00:00:00.000 UTC");
        assert_eq!(
            utc_time_text(Duration::from_millis(86_399_999)),
            "23:59:59.999 UTC"
        );
    }

    /// Per-frame cost of drawing and encoding, in release:
    /// `cargo test --release --lib pattern::tests::frame_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark; run in release with --ignored --nocapture"]
    fn frame_cost() {
        const FRAMES: u32 = 200;
        for (width, height) in [(320, 240), (640, 480), (1280, 720), (1920, 1080)] {
            let options = PatternOptions {
                width,
                height,
                fps: 15,
            };
            let mut painter = Painter::new("Benchmark", options).unwrap();
            let mut encoder = jpeg::Encoder::new(jpeg::DEFAULT_QUALITY);
            let (mut draw, mut encode, mut bytes) = (Duration::ZERO, Duration::ZERO, 0);
            for tick in 0..u64::from(FRAMES) {
                let started = Instant::now();
                painter.draw(tick, SystemTime::now());
                let drawn = Instant::now();
                bytes += painter.canvas.encode(&mut encoder).unwrap().len();
                encode += drawn.elapsed();
                draw += drawn - started;
            }
            println!(
                "{width}x{height}: draw {:.3} ms + encode {:.2} ms per frame, {} KiB/frame",
                draw.as_secs_f64() * 1e3 / f64::from(FRAMES),
                encode.as_secs_f64() * 1e3 / f64::from(FRAMES),
                bytes / FRAMES as usize / 1024
            );
        }
    }
}
