//! SIGTERM during load (issue #7): the real `camhub` binary, mDNS on, serving 50 MJPEG
//! viewers and a snapshot loop with status LEDs configured, gets SIGTERM and must exit
//! with status 0 within 2 s, say goodbye on mDNS (a python3-zeroconf browser in another
//! network namespace sees the service removed long before any TTL), and leave every LED
//! off. Off the Pi the LEDs use the no-op GPIO backend, which logs each pin write at
//! debug level (`camhub::leds`); that log is what is checked.
//!
//! The network harness is tests/common/netns.rs, shared with tests/mdns.rs: two
//! namespaces joined by a veth pair whose addresses exist only inside them, so no
//! multicast reaches a real interface. Needs root and iproute2 + python3-zeroconf
//! (scripts/deps.sh).

mod common;

use common::netns::{browser, event, spawn_camhub, Lines, Net, Proc, EVENTUALLY};
use serde_json::Value;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// SIGTERM to exit (DESIGN.md, systemd's expectations).
const EXIT_WITHIN: Duration = Duration::from_secs(2);
/// From the exit to the browser's "removed". camhub sends its goodbyes before it exits
/// (python3-zeroconf 0.47 reports the removal at once; RFC 6762 §10.1 allows a receiver
/// to wait 1 s). Without a goodbye the removal would wait for the records' TTL (120 s for
/// SRV): any bound of a few seconds proves it.
const REMOVED_WITHIN: Duration = Duration::from_secs(2);
const VIEWERS: usize = 50;

/// The LED pins of the test config: `[leds]` roles and one per stream.
const PIN_SYSTEM: u8 = 26;
const PIN_VIEWERS: u8 = 19;
const PIN_CAM: u8 = 17;
const PIN_BROKEN: u8 = 27;
const PIN_OFF: u8 = 22;
/// LEDs wired to 3.3 V (`active_low = true`): lit is low, off is high.
const OFF_LEVEL: &str = "high";
const LIT_LEVEL: &str = "low";

/// The load: `VIEWERS` MJPEG viewers of /stream/cam and a snapshot loop, from inside
/// camhub's namespace. Prints a JSON line of counts every 0.25 s; ends when camhub has
/// gone (every viewer closed, snapshots refused) or after 60 s.
const LOAD_PY: &str = r#"
import json, socket, sys, threading, time
port, n = int(sys.argv[1]), int(sys.argv[2])
parts, ended, snaps = [0] * n, [False] * n, {"ok": 0, "other": 0}
BOUNDARY = b"--camhubframe\r\n"
stop_at = time.monotonic() + 60

def viewer(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /stream/cam HTTP/1.1\r\nHost: t\r\n\r\n")
        tail = b""
        while time.monotonic() < stop_at:
            d = s.recv(65536)
            if not d:
                break
            buf = tail + d
            parts[i] += buf.count(BOUNDARY)
            tail = buf[-(len(BOUNDARY) - 1):]
    except OSError:
        pass
    ended[i] = True

def snapshots():
    while time.monotonic() < stop_at:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /snapshot/cam HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            snaps["ok" if data.startswith(b"HTTP/1.1 200") else "other"] += 1
        except ConnectionRefusedError:
            return
        except OSError:
            snaps["other"] += 1
        time.sleep(0.05)

threads = [threading.Thread(target=viewer, args=(i,), daemon=True) for i in range(n)]
threads.append(threading.Thread(target=snapshots, daemon=True))
for t in threads:
    t.start()
while time.monotonic() < stop_at:
    done = not any(t.is_alive() for t in threads)
    print(json.dumps({"min_parts": min(parts), "total_parts": sum(parts),
                      "ended": sum(ended), "snapshots": snaps["ok"],
                      "snapshot_failures": snaps["other"], "done": done}), flush=True)
    if done:
        break
    time.sleep(0.25)
"#;

/// The test config: one live stream, one that fails (its LED blinks fast), one
/// disabled (its LED stays off), and the system (heartbeat) and viewers LEDs, wired
/// active-low so that "off" is the high level. No source makes network traffic.
fn config() -> String {
    format!(
        "[leds]\nsystem = {PIN_SYSTEM}\nviewers = {PIN_VIEWERS}\nactive_low = true\n\
         [[stream]]\nid = \"cam\"\nurl = \"pattern:?size=640x480&fps=15\"\nled = {PIN_CAM}\n\
         [[stream]]\nid = \"broken\"\nurl = \"https://127.0.0.1:1/no-tls-in-this-build\"\n\
         led = {PIN_BROKEN}\n\
         [[stream]]\nid = \"off\"\nurl = \"pattern:\"\nenabled = false\nled = {PIN_OFF}\n"
    )
}

/// `(pin, level)` of a NoPins write line.
fn pin_write(line: &str) -> Option<(u8, String)> {
    if !line.contains("led pin write (no GPIO)") {
        return None;
    }
    let pin = line
        .split("pin=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let level = line
        .split("level=")
        .nth(1)?
        .trim()
        .trim_matches('"')
        .to_string();
    Some((pin, level))
}

// ---- the test -----------------------------------------------------------------------------

/// SIGTERM while 50 viewers watch and snapshots are taken: exit 0 within 2 s, mDNS
/// goodbye seen by a browser in another namespace within 2 s of the exit, every LED's
/// last write "off" and the lit ones turned off after the SIGTERM.
#[test]
fn sigterm_under_load_exits_fast_says_goodbye_and_turns_leds_off() {
    let net = Net::new("t");
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("camhub.toml");
    std::fs::write(&config_path, config()).unwrap();
    let name = format!("shutdown-{}", std::process::id());
    let browser = browser(&net, &net.b, None);

    let config_arg = config_path.to_str().expect("temp path is UTF-8");
    let (mut camhub, port) = spawn_camhub(
        &net,
        &net.a,
        "camhub",
        "info,camhub::leds=debug,camhub::mdns=debug",
        &["--name", &name, "--config", config_arg],
    );
    for ty in ["_http._tcp.local.", "_camhub._tcp.local."] {
        let fullname = format!("{name}.{ty}");
        browser
            .lines
            .wait(0, EVENTUALLY, |l| {
                let v = event(l, "added")?;
                (v["name"] == fullname.as_str()).then_some(())
            })
            .unwrap_or_else(|| panic!("browser never found {fullname}"));
    }

    // Load: 50 viewers and a snapshot loop, until each viewer has had frames.
    let mut load = net
        .command(&net.a, "/usr/bin/python3")
        .args(["-c", LOAD_PY, &port.to_string(), &VIEWERS.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let load_lines = Lines::default();
    load_lines.follow(load.stdout.take().unwrap(), "load".into());
    let load = Proc {
        child: load,
        lines: load_lines,
    };
    let stats = |l: &str| serde_json::from_str::<Value>(l).ok();
    let (_, _, loaded) = load
        .lines
        .wait(0, EVENTUALLY, |l| {
            let v = stats(l)?;
            (v["min_parts"].as_u64()? >= 20 && v["snapshots"].as_u64()? >= 5).then_some(v)
        })
        .expect("every viewer gets frames and snapshots are served");
    eprintln!("load before SIGTERM: {loaded}");
    assert_eq!(loaded["ended"], 0, "no viewer dropped under load: {loaded}");
    assert_eq!(loaded["snapshot_failures"], 0, "{loaded}");
    // The viewers LED is lit once the tick after the viewers arrived has run.
    camhub
        .lines
        .wait(0, EVENTUALLY, |l| {
            (pin_write(l)? == (PIN_VIEWERS, LIT_LEVEL.to_string())).then_some(())
        })
        .expect("the viewers LED lights while 50 viewers watch");

    // SIGTERM, and time the exit.
    let browser_mark = browser.lines.len();
    let pid = rustix::process::Pid::from_raw(camhub.child.id() as i32).expect("pid");
    let term_at = Instant::now();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("send SIGTERM");
    let status: ExitStatus = loop {
        if let Some(status) = camhub.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            term_at.elapsed() < Duration::from_secs(10),
            "camhub did not exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let exit_at = Instant::now();
    let exit_after = exit_at - term_at;
    eprintln!(
        "camhub: {status}, {} ms after SIGTERM",
        exit_after.as_millis()
    );
    assert!(status.success(), "camhub exit status {status}");
    assert!(
        exit_after <= EXIT_WITHIN,
        "camhub took {exit_after:?} to exit after SIGTERM (bound {EXIT_WITHIN:?})"
    );

    // Goodbye: the other namespace sees both services removed.
    for ty in ["_http._tcp.local.", "_camhub._tcp.local."] {
        let fullname = format!("{name}.{ty}");
        let (_, removed_at, _) = browser
            .lines
            .wait(browser_mark, Duration::from_secs(10), |l| {
                event(l, "removed").filter(|v| v["name"] == fullname.as_str())
            })
            .unwrap_or_else(|| panic!("{fullname} not removed after SIGTERM (no goodbye?)"));
        let delay = removed_at.saturating_duration_since(exit_at);
        let since_term = removed_at - term_at;
        eprintln!(
            "{fullname} removed {} ms after SIGTERM ({:+} ms from the exit)",
            since_term.as_millis(),
            since_term.as_millis() as i64 - exit_after.as_millis() as i64
        );
        assert!(
            delay <= REMOVED_WITHIN,
            "{fullname} removed {delay:?} after the exit: that is not a goodbye"
        );
    }

    // LEDs: the whole log is in once camhub's stderr has closed.
    assert!(camhub.lines.wait_closed(Duration::from_secs(5)));
    let log = camhub.lines.all();
    assert!(
        !log.iter().any(|(_, l)| l.contains("did not stop in time")),
        "every thread stopped within the shutdown budget"
    );
    let released = log
        .iter()
        .position(|(_, l)| l.contains("led pins released (no GPIO)"))
        .expect("the LED pins are released at shutdown");
    assert!(log[released].0 >= term_at, "released after SIGTERM");
    let writes: Vec<(Instant, usize, u8, String)> = log
        .iter()
        .enumerate()
        .filter_map(|(i, (at, l))| pin_write(l).map(|(pin, level)| (*at, i, pin, level)))
        .collect();
    for pin in [PIN_SYSTEM, PIN_VIEWERS, PIN_CAM, PIN_BROKEN, PIN_OFF] {
        let to_pin: Vec<_> = writes.iter().filter(|w| w.2 == pin).collect();
        let last = to_pin
            .last()
            .unwrap_or_else(|| panic!("pin {pin} never written"));
        assert_eq!(last.3, OFF_LEVEL, "pin {pin} is left lit");
        assert!(last.1 < released, "pin {pin} written after the release");
        eprintln!(
            "pin {pin}: {} writes, last {} {:+} ms from SIGTERM",
            to_pin.len(),
            last.3,
            if last.0 >= term_at {
                (last.0 - term_at).as_millis() as i64
            } else {
                -((term_at - last.0).as_millis() as i64)
            }
        );
        // A pin lit when SIGTERM came must have been turned off after it.
        let before: Vec<_> = to_pin.iter().filter(|w| w.0 < term_at).collect();
        if before.last().is_some_and(|w| w.3 == LIT_LEVEL) {
            assert!(
                last.0 >= term_at,
                "pin {pin}: its off write predates SIGTERM"
            );
        }
    }
    // Not vacuous: the live stream's and the viewers' LEDs were solidly lit at SIGTERM,
    // and the disabled stream's was off all along.
    for pin in [PIN_CAM, PIN_VIEWERS] {
        let lit = writes
            .iter()
            .rfind(|w| w.2 == pin && w.0 < term_at)
            .is_some_and(|w| w.3 == LIT_LEVEL);
        assert!(lit, "pin {pin} was lit before SIGTERM");
    }
    assert!(
        writes
            .iter()
            .filter(|w| w.2 == PIN_OFF)
            .all(|w| w.3 == OFF_LEVEL),
        "the disabled stream's LED never lights"
    );

    // The load saw every viewer's connection end with camhub.
    let (_, _, end) = load
        .lines
        .wait(0, Duration::from_secs(15), |l| {
            let v = stats(l)?;
            (v["done"] == true).then_some(v)
        })
        .expect("the load generator ends once camhub is gone");
    eprintln!("load at the end: {end}");
    assert_eq!(end["ended"], VIEWERS, "{end}");
    drop(load);
    drop(browser);
    drop(net);
}
