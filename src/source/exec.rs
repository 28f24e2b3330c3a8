//! The exec source (`exec:rpicam-vid -t 0 --codec mjpeg -o -`): runs a command and serves
//! the MJPEG it writes to stdout, for the Pi camera module (rpicam-vid) and anything
//! ffmpeg or GStreamer can read. Frames are passed through untouched.
//!
//! - The command line is run with `/bin/sh -c`, not split into words here: users want
//!   pipelines (`ffmpeg … | …`), redirections and `$VARS`, and the text comes only from
//!   the config file or the command line (the HTTP API cannot set stream URLs), so the
//!   shell adds no exposure that the config file does not already give.
//! - The output format is told from its first bytes: `FF D8` is a stream of concatenated
//!   JPEGs (rpicam-vid, `ffmpeg -f image2pipe` / `-f mjpeg`), split at the markers by
//!   [`JpegSplitter`]; `--` is multipart (`ffmpeg -f mpjpeg`, curl of a camera), parsed
//!   by the bounded [`Multipart`] parser of [`crate::multipart`], which the HTTP-MJPEG
//!   source uses too.
//! - Memory is bounded: a frame, and the junk skipped between frames, are capped at
//!   [`MAX_FRAME_BYTES`]; an output that is not MJPEG fails the run with a clear error.
//! - The command runs in its own process group. `close` sends SIGTERM to the whole group
//!   (so every member of a shell pipeline gets it), SIGKILL after [`KILL_GRACE`], and
//!   reaps the shell: no zombies, nothing left running across restarts or shutdown.
//! - When the command exits, the run fails with its exit status and last stderr line and
//!   the supervisor restarts it with backoff. Its stderr goes to the log line by line,
//!   tagged with the stream id, with long lines cut and a rate limit.
//! - No extra threads: stdout and stderr are read through async-io's reactor (the pipes
//!   are non-blocking), so `next` waits on both with a [`POLL_INTERVAL`] deadline, and a
//!   restart cannot leave a reader thread behind.

use crate::config::{redact_url, StreamConfig};
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::multipart::Multipart;
use crate::shutdown::Shutdown;
use crate::source::{Event, Source, POLL_INTERVAL};
use async_io::{Async, Timer};
use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{future, AsyncReadExt as _, FutureExt as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Largest frame accepted, and most junk skipped between frames: far above any camera
/// frame (a 4K JPEG is ~2 MiB), low enough that a command printing garbage cannot
/// exhaust a Pi.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// How long the command gets to exit after SIGTERM before SIGKILL: enough for
/// rpicam-vid or ffmpeg to release the camera, short enough for a 2 s shutdown.
pub const KILL_GRACE: Duration = Duration::from_millis(500);
/// After the command closes its stdout, how long to wait for its exit status and last
/// stderr lines (they make the error message).
const EXIT_WAIT: Duration = Duration::from_millis(500);
/// Broken frames tolerated in a row before the command is restarted.
const MAX_BAD_FRAMES_IN_A_ROW: u32 = 20;
/// Bytes read from stdout per call.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A stderr line is cut to this many bytes in the log and in error messages.
const MAX_STDERR_LINE_BYTES: usize = 300;
/// At most this many stderr lines are logged per [`STDERR_WINDOW`]; the rest are counted.
const MAX_STDERR_LINES_PER_WINDOW: u32 = 20;
const STDERR_WINDOW: Duration = Duration::from_secs(10);
/// Output bytes shown when it is neither JPEG nor multipart.
const SNIFF_PREVIEW_BYTES: usize = 16;

/// See the module docs.
pub struct ExecSource {
    id: String,
    /// The command line as configured: it may hold credentials, so it is never logged
    /// (messages use `program` or the redacted command).
    command: String,
    /// The first word of the redacted command, for messages.
    program: String,
    shutdown: Shutdown,
    max_frame_bytes: usize,
    run: Option<Run>,
    /// Kept across runs, so the rate limit also holds for a command that keeps failing.
    log: StderrLog,
}

/// One run of the command.
struct Run {
    child: Child,
    /// Set once the shell has been reaped (its exit status).
    status: Option<ExitStatus>,
    stdout: Async<ChildStdout>,
    /// None once the pipe is closed.
    stderr: Option<Async<ChildStderr>>,
    frames: Frames,
    out_buf: Box<[u8]>,
    err_buf: Box<[u8]>,
    bad_frames_in_a_row: u32,
}

/// What one wait on the pipes produced.
enum Output {
    Stdout(usize),
    Stderr(usize),
    Timeout,
}

impl ExecSource {
    /// Builds the source from a stream's config (`exec:` followed by a shell command).
    pub fn from_config(stream: &StreamConfig, shutdown: &Shutdown) -> Result<Box<dyn Source>> {
        let command = stream
            .url
            .strip_prefix("exec:")
            .unwrap_or(&stream.url)
            .trim()
            .to_string();
        if command.is_empty() {
            return Err(Error::Permanent(
                "exec: needs a command, e.g. exec:rpicam-vid -t 0 --codec mjpeg -o -".into(),
            ));
        }
        let program = program_name(&command);
        Ok(Box::new(ExecSource {
            id: stream.id.clone(),
            command,
            program,
            shutdown: shutdown.clone(),
            max_frame_bytes: MAX_FRAME_BYTES,
            run: None,
            log: StderrLog::new(&stream.id),
        }))
    }

    /// The error for a command that closed its stdout: its exit status (waited for up
    /// to [`EXIT_WAIT`]) and its last stderr line.
    fn ended(&mut self) -> Error {
        let program = self.program.clone();
        let Some(run) = &mut self.run else {
            return Error::Source("not running".into());
        };
        let until = Instant::now() + EXIT_WAIT;
        // Read stderr to its end (or the deadline) and reap the shell.
        while Instant::now() < until {
            if run.status.is_none() {
                run.status = run.child.try_wait().ok().flatten();
            }
            if run.status.is_some() && run.stderr.is_none() {
                break;
            }
            let step = (Instant::now() + Duration::from_millis(20)).min(until);
            run.wait(step, false, &mut self.log);
        }
        self.log.flush();
        let what = match run.status {
            Some(status) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("{program} exited with status {code}"),
                (None, Some(signal)) => format!("{program} was killed by signal {signal}"),
                _ => format!("{program} exited ({status})"),
            },
            None => format!("{program} closed its output"),
        };
        Error::Source(match &self.log.last_line {
            Some(line) => format!("{what}: {line}"),
            None => what,
        })
    }
}

impl Source for ExecSource {
    fn open(&mut self) -> Result<()> {
        self.close();
        self.log.last_line = None;
        tracing::debug!(stream = %self.id, command = %redact_url(&self.command), "starting");
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so the whole pipeline can be signalled (and a Ctrl-C at a
            // terminal running camhub reaches camhub only, which then stops it).
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io(format!("starting {} with /bin/sh", self.program), e))?;
        let pipes = (child.stdout.take(), child.stderr.take());
        let (Some(stdout), Some(stderr)) = pipes else {
            stop(&mut child, None);
            return Err(Error::Source("no pipes to the command".into()));
        };
        let pipes = Async::new(stdout).and_then(|out| Ok((out, Async::new(stderr)?)));
        let (stdout, stderr) = match pipes {
            Ok(p) => p,
            Err(e) => {
                stop(&mut child, None);
                return Err(Error::io("watching the command's output", e));
            }
        };
        self.run = Some(Run {
            child,
            status: None,
            stdout,
            stderr: Some(stderr),
            frames: Frames::Sniff(Vec::new()),
            out_buf: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
            err_buf: vec![0; 4096].into_boxed_slice(),
            bad_frames_in_a_row: 0,
        });
        Ok(())
    }

    fn next(&mut self, _wanted: bool) -> Result<Event<'_>> {
        // Frames are passed through without decoding, so they cost nothing to produce
        // even when nobody watches: `wanted` does not matter here.
        let deadline = Instant::now() + POLL_INTERVAL;
        let max_frame_bytes = self.max_frame_bytes;
        loop {
            let Some(run) = &mut self.run else {
                return Err(Error::Source("not running".into()));
            };
            if let Some(jpeg) = run.frames.next_frame()? {
                match crate::jpeg::check(&jpeg) {
                    Ok((width, height)) => {
                        run.bad_frames_in_a_row = 0;
                        return Ok(Event::Frame(Frame::new(jpeg, width, height)));
                    }
                    Err(e) => {
                        run.bad_frames_in_a_row += 1;
                        if run.bad_frames_in_a_row >= MAX_BAD_FRAMES_IN_A_ROW {
                            return Err(Error::Source(format!(
                                "{} broken frames in a row from {}; last: {e}",
                                run.bad_frames_in_a_row, self.program
                            )));
                        }
                        tracing::debug!(stream = %self.id, error = %e, "skipping a broken frame");
                        continue;
                    }
                }
            }
            // A trickle of bytes that never completes a frame is no sign of life.
            if Instant::now() >= deadline || self.shutdown.is_triggered() {
                return Ok(Event::Idle);
            }
            match run.wait(deadline, true, &mut self.log) {
                Output::Stdout(0) => return Err(self.ended()),
                Output::Stdout(n) => {
                    let data = &run.out_buf[..n];
                    run.frames.feed(data, max_frame_bytes, &self.program)?;
                }
                Output::Stderr(_) => {}
                Output::Timeout => return Ok(Event::Idle),
            }
        }
    }

    fn close(&mut self) {
        if let Some(run) = self.run.take() {
            let Run {
                mut child,
                status,
                stdout,
                stderr,
                ..
            } = run;
            self.log.flush();
            // Closing our ends first makes a writer that ignores SIGTERM get SIGPIPE.
            drop((stdout, stderr));
            stop(&mut child, status);
        }
    }
}

impl Drop for ExecSource {
    fn drop(&mut self) {
        self.close();
    }
}

impl Run {
    /// Waits until `deadline` for output on stdout (if `stdout`) or stderr. Stderr
    /// lines are logged here; an error reading a pipe counts as its end.
    fn wait(&mut self, deadline: Instant, stdout: bool, log: &mut StderrLog) -> Output {
        let Run {
            stdout: out,
            stderr: err,
            out_buf,
            err_buf,
            ..
        } = self;
        let read_out = async {
            if !stdout {
                return future::pending().await;
            }
            Output::Stdout(out.read(out_buf).await.unwrap_or(0))
        };
        let read_err = async {
            match err {
                Some(e) => Output::Stderr(e.read(err_buf).await.unwrap_or(0)),
                None => future::pending().await,
            }
        };
        let timeout = async {
            Timer::at(deadline).await;
            Output::Timeout
        };
        // `race` picks at random when both are ready, so a chatty stderr cannot starve
        // the frames or the other way round.
        let output = async_io::block_on(future::race(read_out, read_err).or(timeout));
        if let Output::Stderr(n) = output {
            if n == 0 {
                self.stderr = None;
                log.flush();
            } else {
                log.feed(&self.err_buf[..n]);
            }
        }
        output
    }
}

/// The program a command line runs, for messages: its first word after any `NAME=value`
/// assignments, credentials removed; just "command" for a list or pipeline, whose exit
/// status is not that of its first program.
fn program_name(command: &str) -> String {
    if command.contains([';', '|', '&', '\n', '`', '(']) {
        return "command".into();
    }
    let redacted = redact_url(command);
    let word = redacted
        .split_whitespace()
        .find(|w| {
            let name = w.split_once('=').map_or("", |(name, _)| name);
            name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .unwrap_or("command");
    word.chars().take(60).collect()
}

/// Stops a command: SIGTERM to its process group, SIGKILL after [`KILL_GRACE`] to
/// whatever is left of the group, and reaps the shell. `status` is set when the shell
/// was already reaped (the group may still have members: a backgrounded job).
fn stop(child: &mut Child, status: Option<ExitStatus>) {
    let pgid = child.id();
    let mut exited = status.is_some() || matches!(child.try_wait(), Ok(Some(_)));
    signal_group(pgid, rustix::process::Signal::TERM);
    let until = Instant::now() + KILL_GRACE;
    while !exited && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
        exited = matches!(child.try_wait(), Ok(Some(_)));
    }
    // The group may outlive the shell (members that ignore SIGTERM or were started in
    // the background): SIGKILL whatever is left. The shell, if not yet reaped, keeps the
    // group's id from being reused.
    signal_group(pgid, rustix::process::Signal::KILL);
    if !exited {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Sends `signal` to every process in group `pgid` (the shell and its pipeline).
fn signal_group(pgid: u32, signal: rustix::process::Signal) {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // ESRCH (the group is already gone) is the normal case after a clean exit.
    if let Err(e) = rustix::process::kill_process_group(pid, signal) {
        tracing::debug!(pgid, error = %e, "cannot signal the command's group");
    }
}

// ---- stderr -----------------------------------------------------------------------------

/// Turns the command's stderr into log lines: split at LF or CR (ffmpeg redraws its
/// progress line with CR), cut to [`MAX_STDERR_LINE_BYTES`], credentials redacted, and
/// rate-limited. Keeps the last line for the error message when the command exits.
struct StderrLog {
    id: String,
    line: Vec<u8>,
    /// The current line was longer than the cap.
    cut: bool,
    last_line: Option<String>,
    window_started: Instant,
    logged_in_window: u32,
    suppressed: u32,
}

impl StderrLog {
    fn new(id: &str) -> StderrLog {
        StderrLog {
            id: id.to_string(),
            line: Vec::new(),
            cut: false,
            last_line: None,
            window_started: Instant::now(),
            logged_in_window: 0,
            suppressed: 0,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        for &b in data {
            if b == b'\n' || b == b'\r' {
                self.end_line();
            } else if self.line.len() < MAX_STDERR_LINE_BYTES {
                self.line.push(b);
            } else {
                self.cut = true;
            }
        }
    }

    /// Logs a partial last line and the count of lines the rate limit held back.
    fn flush(&mut self) {
        self.end_line();
        if self.suppressed > 0 {
            tracing::info!(stream = %self.id, "{} more stderr lines not logged", self.suppressed);
            self.suppressed = 0;
        }
    }

    fn end_line(&mut self) {
        let raw = String::from_utf8_lossy(&self.line);
        let mut line = redact_url(raw.trim());
        let cut = std::mem::take(&mut self.cut);
        self.line.clear();
        if line.is_empty() {
            return;
        }
        if cut {
            line.push('…');
        }
        let now = Instant::now();
        if now.saturating_duration_since(self.window_started) >= STDERR_WINDOW {
            if self.suppressed > 0 {
                tracing::info!(stream = %self.id, "{} more stderr lines not logged", self.suppressed);
            }
            self.window_started = now;
            self.logged_in_window = 0;
            self.suppressed = 0;
        }
        if self.logged_in_window < MAX_STDERR_LINES_PER_WINDOW {
            self.logged_in_window += 1;
            if looks_like_an_error(&line) {
                tracing::warn!(stream = %self.id, "stderr: {line}");
            } else {
                tracing::info!(stream = %self.id, "stderr: {line}");
            }
        } else {
            self.suppressed += 1;
        }
        self.last_line = Some(line);
    }
}

fn looks_like_an_error(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    [
        "error",
        "fail",
        "not found",
        "denied",
        "cannot",
        "no such",
        "invalid",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

// ---- stdout -----------------------------------------------------------------------------

/// The frame parser for the command's stdout, chosen from its first bytes.
enum Frames {
    /// Not yet known: the first bytes (leading whitespace dropped).
    Sniff(Vec<u8>),
    Jpegs(JpegSplitter),
    Multipart(Multipart),
}

impl Frames {
    fn feed(&mut self, data: &[u8], max_frame_bytes: usize, program: &str) -> Result<()> {
        match self {
            Frames::Jpegs(s) => {
                s.feed(data);
                Ok(())
            }
            Frames::Multipart(m) => {
                m.feed(data);
                Ok(())
            }
            Frames::Sniff(head) => {
                let start = if head.is_empty() {
                    data.iter()
                        .position(|b| !b.is_ascii_whitespace())
                        .unwrap_or(data.len())
                } else {
                    0
                };
                head.extend_from_slice(&data[start..]);
                if head.len() < 2 {
                    return Ok(());
                }
                let head = std::mem::take(head);
                *self = if head.starts_with(&[0xFF, 0xD8]) {
                    Frames::Jpegs(JpegSplitter::new(max_frame_bytes))
                } else if head.starts_with(b"--") {
                    Frames::Multipart(Multipart::new(None, max_frame_bytes))
                } else {
                    return Err(Error::Source(format!(
                        "{program} does not write MJPEG to stdout: its output starts with {}, \
                         neither a JPEG (FF D8) nor a multipart boundary (--)",
                        preview(&head)
                    )));
                };
                self.feed(&head, max_frame_bytes, program)
            }
        }
    }

    /// The next complete frame (not yet checked), None if more output is needed.
    fn next_frame(&mut self) -> Result<Option<Bytes>> {
        match self {
            Frames::Sniff(_) => Ok(None),
            Frames::Jpegs(s) => s.next_frame(),
            Frames::Multipart(m) => {
                let part = m.next_part()?;
                if part.is_none() && m.is_closed() {
                    return Err(Error::Source(
                        "the command ended its multipart stream".into(),
                    ));
                }
                Ok(part)
            }
        }
    }
}

/// The first bytes of some output as hex plus printable text, for error messages.
fn preview(data: &[u8]) -> String {
    let data = &data[..data.len().min(SNIFF_PREVIEW_BYTES)];
    let hex: Vec<String> = data.iter().map(|b| format!("{b:02X}")).collect();
    let text: String = data
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{} ({text:?})", hex.join(" "))
}

/// Splits a stream of concatenated JPEGs into frames by walking their markers: header
/// segments are skipped by their lengths (so an EXIF thumbnail's own EOI does not end the
/// frame early) and entropy-coded data is scanned for the next marker, each byte once.
/// A frame whose structure breaks is handed out as it is (the caller's `jpeg::check`
/// rejects it) and the splitter resyncs at the next SOI. Bounded: a frame, or the junk
/// skipped looking for an SOI, longer than `max_frame_bytes` is an error.
struct JpegSplitter {
    buf: BytesMut,
    state: Walk,
    /// Where the walk is in `buf` (from the frame's SOI at 0).
    pos: usize,
    /// Bytes dropped looking for an SOI since the last frame.
    skipped: usize,
    max_frame_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Looking for the SOI (FF D8) that starts the next frame.
    Seek,
    /// At a marker (FF xx) between segments.
    Marker,
    /// In entropy-coded data after an SOS segment.
    Scan,
}

impl JpegSplitter {
    fn new(max_frame_bytes: usize) -> JpegSplitter {
        JpegSplitter {
            buf: BytesMut::new(),
            state: Walk::Seek,
            pos: 0,
            skipped: 0,
            max_frame_bytes,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn next_frame(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.state {
                Walk::Seek => {
                    match find_soi(&self.buf) {
                        Some(at) => {
                            self.buf.advance(at);
                            self.skipped += at;
                            self.pos = 2;
                            self.state = Walk::Marker;
                        }
                        None => {
                            // Keep a last FF: it may be the start of a split SOI.
                            let keep = usize::from(self.buf.last() == Some(&0xFF));
                            let drop = self.buf.len() - keep;
                            self.buf.advance(drop);
                            self.skipped += drop;
                        }
                    }
                    if self.skipped > self.max_frame_bytes {
                        return Err(Error::Source(format!(
                            "no JPEG start (FF D8) in {} bytes of output",
                            self.skipped
                        )));
                    }
                    if self.state == Walk::Seek {
                        return Ok(None);
                    }
                }
                Walk::Marker => {
                    let buf = &self.buf[..];
                    let Some(&first) = buf.get(self.pos) else {
                        return self.need_more();
                    };
                    if first != 0xFF {
                        return Ok(Some(self.torn()));
                    }
                    // Any number of FF fill bytes may precede a marker code.
                    let mut at = self.pos;
                    while buf.get(at + 1) == Some(&0xFF) {
                        at += 1;
                    }
                    let Some(&code) = buf.get(at + 1) else {
                        return self.need_more();
                    };
                    match code {
                        0xD9 => {
                            self.state = Walk::Seek;
                            self.skipped = 0;
                            let frame = self.buf.split_to(at + 2).freeze();
                            return Ok(Some(frame));
                        }
                        // Another SOI, or FF 00 outside scan data: the frame is torn.
                        0xD8 | 0x00 => return Ok(Some(self.torn())),
                        // Markers without a length.
                        0x01 | 0xD0..=0xD7 => self.pos = at + 2,
                        _ => {
                            let (Some(&hi), Some(&lo)) = (buf.get(at + 2), buf.get(at + 3)) else {
                                return self.need_more();
                            };
                            let length = usize::from(u16::from_be_bytes([hi, lo]));
                            if length < 2 {
                                return Ok(Some(self.torn()));
                            }
                            self.pos = at + 2 + length;
                            if code == 0xDA {
                                self.state = Walk::Scan;
                            }
                        }
                    }
                }
                Walk::Scan => {
                    let buf = &self.buf[..];
                    if self.pos >= buf.len() {
                        return self.need_more();
                    }
                    match buf[self.pos..].iter().position(|&b| b == 0xFF) {
                        None => {
                            self.pos = buf.len();
                            return self.need_more();
                        }
                        Some(i) => {
                            let at = self.pos + i;
                            match buf.get(at + 1) {
                                None => {
                                    self.pos = at;
                                    return self.need_more();
                                }
                                // Stuffed FF, restart markers, fill bytes: still data.
                                Some(0x00 | 0xD0..=0xD7) => self.pos = at + 2,
                                Some(0xFF) => self.pos = at + 1,
                                // A real marker: EOI, or the tables and SOS of the next
                                // scan of a progressive JPEG.
                                Some(_) => {
                                    self.pos = at;
                                    self.state = Walk::Marker;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// More bytes are needed to go on with the current frame, unless it is too long.
    fn need_more(&mut self) -> Result<Option<Bytes>> {
        if self.buf.len() > self.max_frame_bytes || self.pos > self.max_frame_bytes {
            return Err(Error::Source(format!(
                "frame larger than {} bytes (no JPEG end marker found)",
                self.max_frame_bytes
            )));
        }
        Ok(None)
    }

    /// Hands out the current frame up to where its structure broke, and resyncs.
    fn torn(&mut self) -> Bytes {
        let end = self.pos.min(self.buf.len()).max(1).min(self.buf.len());
        self.state = Walk::Seek;
        self.buf.split_to(end).freeze()
    }
}

/// Position of the first SOI marker (FF D8) in `data`.
fn find_soi(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == [0xFF, 0xD8])
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::jpeg::test_jpegs as jpegs;

    fn split(data: &[u8], step: usize, max: usize) -> Result<Vec<Bytes>> {
        let mut s = JpegSplitter::new(max);
        let mut out = Vec::new();
        for chunk in data.chunks(step.max(1)) {
            s.feed(chunk);
            while let Some(f) = s.next_frame()? {
                out.push(f);
            }
            assert!(s.buf.len() <= max + chunk.len(), "unbounded buffer");
        }
        Ok(out)
    }

    #[test]
    fn splits_concatenated_jpegs_at_every_chunk_size() {
        let frames = jpegs(4);
        let mut data = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            // Junk and padding between frames, as some encoders write.
            if i == 2 {
                data.extend_from_slice(b"\0\0\xFF\xFF junk");
            }
            data.extend_from_slice(f);
        }
        for step in [1, 2, 3, 7, 64, 1000, data.len()] {
            assert_eq!(
                split(&data, step, MAX_FRAME_BYTES).unwrap(),
                frames,
                "step {step}"
            );
        }
    }

    #[test]
    fn an_exif_thumbnail_does_not_end_the_frame() {
        let frames = jpegs(2);
        let thumb = &frames[0];
        // APP1 segment holding a whole JPEG (with its own SOI and EOI) after the SOI.
        let mut big = vec![0xFF, 0xD8, 0xFF, 0xE1];
        big.extend_from_slice(&u16::try_from(thumb.len() + 2).unwrap().to_be_bytes());
        big.extend_from_slice(thumb);
        big.extend_from_slice(&frames[1][2..]);
        crate::jpeg::check(&big).expect("still a valid JPEG");
        let mut data = big.clone();
        data.extend_from_slice(&frames[1]);
        let got = split(&data, 5, MAX_FRAME_BYTES).unwrap();
        assert_eq!(got, [Bytes::from(big), frames[1].clone()]);
    }

    #[test]
    fn a_torn_frame_is_handed_out_broken_and_the_next_one_survives() {
        let frames = jpegs(3);
        let mut data = frames[0][..frames[0].len() / 2].to_vec();
        data.extend_from_slice(&frames[1]);
        data.extend_from_slice(&frames[2]);
        let got = split(&data, 100, MAX_FRAME_BYTES).unwrap();
        let good: Vec<_> = got
            .iter()
            .filter(|f| crate::jpeg::check(f).is_ok())
            .cloned()
            .collect();
        // The torn frame is cut at the next SOI (or in its scan data, where the next
        // frame's markers appear) and rejected by check(); the later frames come whole.
        assert!(good.ends_with(&frames[2..]), "{} good frames", good.len());
    }

    #[test]
    fn endless_frames_and_junk_fail_at_the_cap() {
        let max = 64 * 1024;
        // An SOS and then scan data that never ends.
        let mut data = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
        data.extend(std::iter::repeat_n(0x55u8, 200 * 1024));
        let e = split(&data, 1000, max).unwrap_err().to_string();
        assert!(e.contains("larger than 65536"), "{e}");
        // No SOI at all.
        let data = b"y\n".repeat(100 * 1024);
        let e = split(&data, 1000, max).unwrap_err().to_string();
        assert!(e.contains("no JPEG start"), "{e}");
    }

    #[test]
    fn the_splitter_never_panics_on_arbitrary_input() {
        let frames = jpegs(2);
        let mut valid = frames[0].to_vec();
        valid.extend_from_slice(&frames[1]);
        let mut state: u32 = 0x9E37_79B9;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for round in 0..2000 {
            let mut input = valid.clone();
            if round % 2 == 0 {
                for _ in 0..1 + rand() % 8 {
                    let at = rand() as usize % input.len();
                    input[at] = [0xFF, 0xD8, 0xD9, 0xDA, 0x00][rand() as usize % 5];
                }
            } else {
                input = (0..rand() % 4000)
                    .map(|_| [0xFF, 0xD8, 0xD9, 0xDA, 0x00, rand() as u8][rand() as usize % 6])
                    .collect();
            }
            let step = 1 + rand() as usize % 300;
            if let Ok(parts) = split(&input, step, 4096) {
                for p in parts {
                    assert!(p.len() <= 4096 + 300);
                    let _ = crate::jpeg::check(&p);
                }
            }
        }
    }

    #[test]
    fn the_format_is_told_from_the_first_bytes() {
        let frames = jpegs(1);
        let mut f = Frames::Sniff(Vec::new());
        f.feed(b"\n", MAX_FRAME_BYTES, "x").unwrap();
        f.feed(&frames[0][..1], MAX_FRAME_BYTES, "x").unwrap();
        f.feed(&frames[0][1..], MAX_FRAME_BYTES, "x").unwrap();
        assert!(matches!(f, Frames::Jpegs(_)));
        assert_eq!(f.next_frame().unwrap().unwrap(), frames[0]);

        let mut f = Frames::Sniff(Vec::new());
        let mut body = format!(
            "--ffmpeg\r\nContent-type: image/jpeg\r\nContent-length: {}\r\n\r\n",
            frames[0].len()
        )
        .into_bytes();
        body.extend_from_slice(&frames[0]);
        body.extend_from_slice(b"\r\n--ffmpeg\r\n");
        f.feed(&body, MAX_FRAME_BYTES, "x").unwrap();
        assert!(matches!(f, Frames::Multipart(_)));
        assert_eq!(f.next_frame().unwrap().unwrap(), frames[0]);

        let mut f = Frames::Sniff(Vec::new());
        let e = f.feed(b"y\ny\n", MAX_FRAME_BYTES, "yes").unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("yes does not write MJPEG") && e.contains("79 0A"),
            "{e}"
        );
    }

    #[test]
    fn messages_name_the_program() {
        assert_eq!(
            program_name("rpicam-vid -t 0 --codec mjpeg -o -"),
            "rpicam-vid"
        );
        assert_eq!(
            program_name("LIBCAMERA_LOG_LEVELS=ERROR A_1=x rpicam-vid -o -"),
            "rpicam-vid"
        );
        assert_eq!(program_name("/opt/rtsp://u:p@h/x -y"), "/opt/rtsp://h/x");
        assert_eq!(program_name("X=1"), "command");
        assert_eq!(program_name("ffmpeg -i x - | tee y"), "command");
        assert_eq!(program_name("echo $$ > pid; exec rpicam-vid"), "command");
    }

    #[test]
    fn stderr_lines_are_cut_redacted_and_the_last_one_kept() {
        let mut log = StderrLog::new("cam");
        log.feed(b"frame= 1\rframe= 2\r");
        log.feed(b"rtsp://admin:secret@10.0.0.5/x: Connection refused\n");
        assert_eq!(
            log.last_line.as_deref(),
            Some("rtsp://10.0.0.5/x: Connection refused")
        );
        log.feed(&[b'a'; 5000]);
        log.flush();
        let last = log.last_line.unwrap();
        assert!(last.len() <= MAX_STDERR_LINE_BYTES + 3 && last.ends_with('…'));
    }
}
