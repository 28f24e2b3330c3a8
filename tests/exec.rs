//! The exec source end to end: the real camhub binary running real commands (ffmpeg
//! writing multipart or concatenated JPEGs, shells that exit, a missing command, garbage)
//! and serving them over real HTTP; restarts with backoff and the exit status in
//! `last_error`, flat threads and fds and no zombies across restarts, and SIGTERM to
//! camhub killing the command's whole pipeline.
//!
//! Every command runs with `$D` set to the test's directory and first appends its shell's
//! PID (= its process group) to `$D/pids`, so the drop guard can kill whatever a failing
//! test left behind.

mod common;

use common::*;
use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long any state change may take before a test gives up (a hang guard, not a
/// timing assertion).
const WAIT: Duration = Duration::from_secs(20);

/// ffmpeg making 320x240 test frames (in real time with `-re`); the output options follow.
fn ffmpeg(realtime: bool) -> String {
    format!(
        "ffmpeg -nostdin -hide_banner -loglevel error {}-f lavfi -i testsrc=size=320x240:rate=10",
        if realtime { "-re " } else { "" }
    )
}

/// A camhub binary with exec streams, stopped with SIGTERM when dropped, after which
/// any process group a command started is killed.
struct Camhub {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Camhub {
    /// Starts camhub with one exec stream per `(id, shell command)`; `$D` in a command is
    /// the test's directory.
    fn start(streams: &[(&str, &str)], stall_after_secs: u64) -> Camhub {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let mut toml = String::new();
        for (id, cmd) in streams {
            toml.push_str(&format!(
                "[[stream]]\nid = \"{id}\"\nstall_after_secs = {stall_after_secs}\n\
                 url = '''exec:D={d}; echo $$ >> $D/pids; {cmd}'''\n"
            ));
        }
        let config = dir.path().join("camhub.toml");
        std::fs::write(&config, toml).unwrap();
        let child = spawn_camhub(&["--config", config.to_str().unwrap()]);
        Camhub {
            child: Some(child),
            dir,
        }
    }

    fn child(&self) -> &Child {
        self.child.as_ref().unwrap()
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.child().addr
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Lines in the test directory's file `name` (0 if it does not exist yet).
    fn lines(&self, name: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join(name)).map_or(0, |s| s.lines().count())
    }

    /// SIGTERM, then wait for camhub to exit. Returns its exit status.
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal(child.pid(), "TERM");
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.process.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None // dropping `child` kills it
    }
}

impl Drop for Camhub {
    fn drop(&mut self) {
        self.terminate();
        let pids = std::fs::read_to_string(self.dir.path().join("pids")).unwrap_or_default();
        for pgid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            if !live_members(pgid).is_empty() {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pgid}")])
                    .status();
            }
        }
    }
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// (pid, state, ppid, pgrp) of every process, from /proc.
fn processes() -> Vec<(u32, char, u32, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(state), Some(ppid), Some(pgrp)) = (f.first(), f.get(1), f.get(2)) {
            out.push((
                pid,
                state.chars().next().unwrap_or('?'),
                ppid.parse().unwrap_or(0),
                pgrp.parse().unwrap_or(0),
            ));
        }
    }
    out
}

/// Members of process group `pgid` that are still running (not zombies).
fn live_members(pgid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|&(_, state, _, pgrp)| pgrp == pgid && state != 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

/// Zombie children of `pid`.
fn zombies_of(pid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|&(_, state, ppid, _)| ppid == pid && state == 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn last_error(camhub: &Camhub, id: &str) -> String {
    api_stream(camhub.addr(), id)["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Reads `/stream/{id}` until `n` distinct decodable 320x240 frames came (OFFLINE
/// placeholders while the command starts, which camhub draws at the stream's size, are
/// skipped).
fn distinct_frames(camhub: &Camhub, id: &str, n: usize) -> Vec<Vec<u8>> {
    let mut reader = MjpegReader::open(camhub.addr(), &format!("/stream/{id}"));
    let mut seen = HashSet::new();
    let mut frames = Vec::new();
    let deadline = Instant::now() + WAIT;
    while frames.len() < n {
        assert!(
            Instant::now() < deadline,
            "{id}: only {} frames",
            frames.len()
        );
        let part = reader.part();
        let placeholder = part
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-camhub-offline"));
        if placeholder {
            continue;
        }
        let (w, h, _) = decode(&part.jpeg);
        if (w, h) == (320, 240) && seen.insert(part.jpeg.clone()) {
            frames.push(part.jpeg);
        }
    }
    frames
}

#[test]
fn ffmpeg_multipart_and_concatenated_jpegs_are_served_untouched() {
    // Each output is also teed to a file (a pipeline through /bin/sh), so the served
    // frames can be looked for byte for byte in what the command wrote.
    let mp = format!("{} -f mpjpeg - | tee $D/out-mp", ffmpeg(true));
    let jp = format!(
        "{} -f image2pipe -vcodec mjpeg - | tee $D/out-jp",
        ffmpeg(true)
    );
    let camhub = Camhub::start(&[("mp", &mp), ("jp", &jp)], 60);
    for id in ["mp", "jp"] {
        let frames = distinct_frames(&camhub, id, 3);
        let info = api_stream(camhub.addr(), id);
        assert_eq!(info["state"], "live", "{info}");
        assert_eq!(
            (info["width"].as_u64(), info["height"].as_u64()),
            (Some(320), Some(240))
        );
        let out = camhub.path(&format!("out-{id}"));
        let untouched = eventually(WAIT, || {
            let written = std::fs::read(&out).unwrap_or_default();
            frames.iter().all(|f| contains(&written, f)).then_some(())
        });
        assert!(
            untouched.is_some(),
            "{id}: served frames differ from the command's"
        );
    }
}

#[test]
fn a_command_that_exits_is_restarted_with_backoff_and_nothing_leaks() {
    let camhub = Camhub::start(
        &[
            (
                "dies",
                "echo x >> $D/runs-dies; echo 'camera busy' >&2; exit 3",
            ),
            (
                "few",
                &format!(
                    "echo x >> $D/runs-few; {} -frames:v 3 -f image2pipe -vcodec mjpeg -",
                    ffmpeg(false)
                ),
            ),
        ],
        60,
    );
    let pid = camhub.child().pid();
    let reported = eventually(WAIT, || {
        let e = last_error(&camhub, "dies");
        (camhub.lines("runs-dies") >= 2 && e.contains("exited with status 3")).then_some(e)
    })
    .expect("the exit status is reported and the command restarted");
    assert!(
        reported.contains("camera busy"),
        "last stderr line: {reported}"
    );
    let state = api_stream(camhub.addr(), "dies")["state"].clone();
    assert!(state == "backoff" || state == "starting", "{state}");

    // A command that makes a few frames and exits: frames served, then restarted.
    eventually(WAIT, || {
        let info = api_stream(camhub.addr(), "few");
        (camhub.lines("runs-few") >= 2 && info["frames"].as_u64() >= Some(3)).then_some(())
    })
    .expect("frames from every run and restarts");
    assert!(last_error(&camhub, "few").contains("exited with status 0"));

    // Several more restarts of both leave threads and fds flat. (Sampled several times:
    // at any moment a command may or may not hold its two pipes.)
    let sample = |f: &dyn Fn() -> usize| -> (usize, usize) {
        let v: Vec<usize> = (0..8)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(50));
                f()
            })
            .collect();
        (*v.iter().min().unwrap(), *v.iter().max().unwrap())
    };
    let (_, threads_before) = sample(&|| camhub.child().threads());
    let (_, fds_before) = sample(&|| camhub.child().fds());
    let (runs_dies, runs_few) = (camhub.lines("runs-dies"), camhub.lines("runs-few"));
    eventually(Duration::from_secs(30), || {
        (camhub.lines("runs-dies") >= runs_dies + 3 && camhub.lines("runs-few") >= runs_few + 2)
            .then_some(())
    })
    .expect("restarted several more times");
    let (threads_after, _) = sample(&|| camhub.child().threads());
    let (fds_after, _) = sample(&|| camhub.child().fds());
    assert!(
        threads_after <= threads_before + 1,
        "threads {threads_before} -> {threads_after}"
    );
    assert!(
        fds_after <= fds_before + 2,
        "fds {fds_before} -> {fds_after}"
    );
    // Every exited command is reaped (a zombie may exist for a moment between its exit
    // and the source noticing).
    eventually(Duration::from_secs(5), || {
        zombies_of(pid).is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("zombie children of camhub: {:?}", zombies_of(pid)));
}

#[test]
fn sigterm_to_camhub_kills_the_whole_command_pipeline() {
    let mut camhub = Camhub::start(&[("long", "echo $$ > $D/pid; sleep 1000 | cat")], 60);
    let pid_file = camhub.path("pid");
    let pgid: u32 = eventually(WAIT, || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .expect("the command started");
    // The shell, sleep and cat, all in the command's own group.
    eventually(WAIT, || (live_members(pgid).len() >= 3).then_some(()))
        .unwrap_or_else(|| panic!("pipeline members: {:?}", live_members(pgid)));
    assert_ne!(
        processes()
            .iter()
            .find(|p| p.0 == camhub.child().pid())
            .map(|p| p.3),
        Some(pgid),
        "the command has its own process group"
    );
    let status = camhub.terminate().expect("camhub exits on SIGTERM");
    assert!(status.success(), "{status}");
    eventually(Duration::from_secs(5), || {
        live_members(pgid).is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("left running: {:?}", live_members(pgid)));
}

#[test]
fn a_missing_command_is_reported_and_retried() {
    let camhub = Camhub::start(
        &[(
            "missing",
            "echo x >> $D/runs; camhub-no-such-command --codec mjpeg -o -",
        )],
        60,
    );
    let e = eventually(WAIT, || {
        let e = last_error(&camhub, "missing");
        (camhub.lines("runs") >= 2 && e.contains("127")).then_some(e)
    })
    .expect("status 127 reported and retried");
    assert!(
        e.contains("camhub-no-such-command") && e.contains("not found"),
        "{e}"
    );
    let info = api_stream(camhub.addr(), "missing");
    assert_eq!(info["frames"], 0);
    assert_ne!(info["state"], "live");
}

#[test]
fn garbage_output_is_bounded_and_reported() {
    let camhub = Camhub::start(
        &[
            ("text", "echo x >> $D/runs-text; exec yes"),
            // An SOI and a scan header, then scan data that never ends.
            (
                "endless",
                r"echo x >> $D/runs-endless; printf '\377\330\377\332\000\002'; exec yes",
            ),
        ],
        60,
    );
    let rss_kib = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", camhub.child().pid()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut max_rss = 0;
    eventually(Duration::from_secs(30), || {
        max_rss = max_rss.max(rss_kib());
        (camhub.lines("runs-text") >= 3 && camhub.lines("runs-endless") >= 3).then_some(())
    })
    .expect("restarted after each failure");
    let text = last_error(&camhub, "text");
    assert!(
        text.contains("does not write MJPEG") && text.contains("79 0A"),
        "{text}"
    );
    let endless = last_error(&camhub, "endless");
    assert!(endless.contains("larger than 8388608 bytes"), "{endless}");
    for id in ["text", "endless"] {
        let info = api_stream(camhub.addr(), id);
        assert_eq!(info["frames"], 0, "{info}");
        assert_ne!(info["state"], "live", "{info}");
    }
    // A few frame caps' worth at most, not the gigabytes `yes` writes.
    assert!(max_rss < 200 * 1024, "camhub RSS reached {max_rss} KiB");
}
