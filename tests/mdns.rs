//! mDNS against real peers: the real `camhub` binary (mDNS on) in one network namespace,
//! python3-zeroconf (tests/peers/mdns_browse.py) or a second camhub in another, joined
//! by a veth pair whose addresses exist only inside the namespaces. Nothing here sends
//! a packet on the machine's real interfaces. Needs root (CI runs as root) and
//! iproute2 + python3-zeroconf (scripts/deps.sh); without them the tests fail and say why.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_camhub");
const BROWSER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mdns_browse.py");
const ADDR_A: &str = "10.254.0.1";
const ADDR_B: &str = "10.254.0.2";
/// Generous bound for anything that should take a second or two.
const EVENTUALLY: Duration = Duration::from_secs(20);
/// A goodbye must remove a service well before any TTL (SRV 120 s, PTR 75 min) expires.
const GOODBYE_WITHIN: Duration = Duration::from_secs(10);

// ---- network namespaces ----------------------------------------------------------------

/// `ip netns add` is not safe to run concurrently the first time (/run/netns mount).
static NETNS_SETUP: Mutex<()> = Mutex::new(());
const NETNS_LOCK: &str = "/tmp/camhub-test-netns.lock";

/// Two namespaces `a` and `b` joined by a veth pair (ADDR_A in a, ADDR_B in b), both
/// deleted on drop (which also deletes the veth pair).
struct Net {
    a: String,
    b: String,
    /// The veth ends in `a` and `b`.
    va: String,
    vb: String,
    created: Vec<String>,
}

impl Net {
    fn new(tag: &str) -> Net {
        let _setup = NETNS_SETUP.lock().unwrap_or_else(|e| e.into_inner());
        check_tools();
        let pid = std::process::id();
        let mut net = Net {
            a: format!("camhub-{pid}-{tag}-a"),
            b: format!("camhub-{pid}-{tag}-b"),
            va: format!("v{pid}{tag}a"),
            vb: format!("v{pid}{tag}b"),
            created: Vec::new(),
        };
        for ns in [net.a.clone(), net.b.clone()] {
            // nextest runs each test in its own process: lock across processes too.
            let out = Command::new("flock")
                .args([NETNS_LOCK, "ip", "netns", "add", &ns])
                .stdin(Stdio::null())
                .output()
                .expect("run flock (util-linux)");
            assert!(
                out.status.success(),
                "ip netns add {ns}: {} (the mDNS tests need root for network namespaces)",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            net.created.push(ns);
        }
        // Created directly inside the namespaces: the link never exists on the host.
        let (va, vb) = (net.va.clone(), net.vb.clone());
        assert!(va.len() <= 15, "interface name {va} too long");
        ip(&[
            "link", "add", &va, "netns", &net.a, "type", "veth", "peer", "name", &vb, "netns",
            &net.b,
        ]);
        for (ns, dev, addr) in [(&net.a, &va, ADDR_A), (&net.b, &vb, ADDR_B)] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev]);
        }
        net
    }

    /// A command run inside namespace `ns` (`ip netns exec` execs it: same PID).
    fn command(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// GETs `url` from inside `ns` with curl; None when it fails.
    fn get(&self, ns: &str, url: &str) -> Option<(u16, String)> {
        let out = self
            .command(ns, "curl")
            .args(["-s", "-m", "5", "-w", "\n%{http_code}", url])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n')?;
        Some((code.trim().parse().ok()?, body.to_string()))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn check_tools() {
    let ip_ok = Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ip_ok,
        "the mDNS tests need `ip netns` (Debian package iproute2, run as root): \
         they run camhub in network namespaces so no multicast reaches real interfaces"
    );
    let zc_ok = Command::new("/usr/bin/python3")
        .args(["-c", "import zeroconf"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        zc_ok,
        "the mDNS tests need /usr/bin/python3 with zeroconf (Debian package \
         python3-zeroconf; scripts/deps.sh installs it)"
    );
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {} (the mDNS tests need root for network namespaces)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

// ---- processes ------------------------------------------------------------------------

/// Lines a child wrote, shared with the thread reading them, with a wake-up per line.
#[derive(Clone, Default)]
struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    fn follow(&self, pipe: impl std::io::Read + Send + 'static, label: String) {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("[{label}] {line}");
                let (buf, cv) = &*lines.0;
                buf.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
    }

    /// Waits until some line (from `from` on) gives `Some`; returns it with its index.
    fn wait<T>(
        &self,
        from: usize,
        timeout: Duration,
        mut f: impl FnMut(&str) -> Option<T>,
    ) -> Option<(usize, T)> {
        let deadline = Instant::now() + timeout;
        let (buf, cv) = &*self.0;
        let mut seen = from;
        let mut guard = buf.lock().unwrap();
        loop {
            while seen < guard.len() {
                if let Some(v) = f(&guard[seen]) {
                    return Some((seen, v));
                }
                seen += 1;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    fn any(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.0 .0.lock().unwrap().iter().any(|l| pred(l))
    }
}

/// A process started by a test; killed by PID when dropped.
struct Proc {
    child: Child,
    lines: Lines,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (bounded) for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "process did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real camhub binary in `ns`, mDNS on, one test-pattern stream. Returns it and its
/// HTTP port.
fn camhub(net: &Net, ns: &str, name: &str) -> (Proc, u16) {
    camhub_with(net, ns, name, &[])
}

/// [`camhub`] with more arguments.
fn camhub_with(net: &Net, ns: &str, name: &str, args: &[&str]) -> (Proc, u16) {
    let mut child = net
        .command(ns, BIN)
        .args(["--listen", "0.0.0.0:0", "--name", name])
        .args(["--source", "cam=pattern:?size=160x120&fps=5"])
        .args(args)
        .env("RUST_LOG", "info,camhub::mdns=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("camhub runs");
    let lines = Lines::default();
    lines.follow(child.stderr.take().unwrap(), name.to_string());
    let proc = Proc { child, lines };
    let (_, port) = proc
        .lines
        .wait(0, EVENTUALLY, |l| {
            let rest = l.split("listening on http://").nth(1)?;
            rest.split('/')
                .next()?
                .rsplit(':')
                .next()?
                .parse::<u16>()
                .ok()
        })
        .expect("camhub logs its address");
    (proc, port)
}

/// tests/peers/mdns_browse.py in `ns`, browsing both service types (and resolving
/// `resolve` if given); waits until ready.
fn browser(net: &Net, ns: &str, resolve: Option<&str>) -> Proc {
    let mut command = net.command(ns, "/usr/bin/python3");
    command.args([BROWSER, "_http._tcp.local.", "_camhub._tcp.local."]);
    if let Some(host) = resolve {
        command.args(["--resolve", host, "--bind", ADDR_B]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let lines = Lines::default();
    lines.follow(child.stdout.take().unwrap(), "browser".into());
    let proc = Proc { child, lines };
    proc.lines
        .wait(0, EVENTUALLY, |l| event(l, "ready"))
        .expect("browser starts");
    proc
}

/// The JSON event on `line` if its "event" is `kind`.
fn event(line: &str, kind: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    (v["event"] == kind).then_some(v)
}

/// An added/updated event for instance `fullname` that satisfies `pred`.
fn service_event(line: &str, fullname: &str, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    let v = event(line, "added").or_else(|| event(line, "updated"))?;
    (v["name"] == fullname && pred(&v)).then_some(v)
}

/// `/api/peers` of the camhub at `port` in `ns`, as a JSON array.
fn api_peers(net: &Net, ns: &str, port: u16) -> Option<Vec<Value>> {
    let (status, body) = net.get(ns, &format!("http://127.0.0.1:{port}/api/peers"))?;
    if status != 200 {
        return None;
    }
    serde_json::from_str::<Value>(&body)
        .ok()?
        .as_array()
        .cloned()
}

// ---- tests ----------------------------------------------------------------------------

/// A browser in another namespace finds `_http._tcp` and `_camhub._tcp` with the right
/// port and TXT, resolves `<name>.local`, and sees both go away on SIGTERM (goodbye).
#[test]
fn advertises_resolves_and_says_goodbye() {
    let net = Net::new("g");
    let name = format!("testbox-{}", std::process::id());
    let host = format!("{name}.local.");
    let browser = browser(&net, &net.b, Some(&host));
    let (mut box_a, port) = camhub(&net, &net.a, &name);

    let version = env!("CARGO_PKG_VERSION");
    for ty in ["_http._tcp.local.", "_camhub._tcp.local."] {
        let fullname = format!("{name}.{ty}");
        let (_, found) = browser
            .lines
            .wait(0, EVENTUALLY, |l| service_event(l, &fullname, |_| true))
            .unwrap_or_else(|| panic!("browser never found {fullname}"));
        assert_eq!(found["port"], port, "{found}");
        assert_eq!(found["server"], host.as_str(), "{found}");
        assert_eq!(found["addresses"], serde_json::json!([ADDR_A]), "{found}");
        let txt = &found["txt"];
        assert_eq!(txt["path"], "/", "{found}");
        assert_eq!(txt["version"], version, "{found}");
        assert_eq!(txt["streams"], "1", "{found}");
        // The pattern source goes live within a second: the TXT follows.
        browser
            .lines
            .wait(0, EVENTUALLY, |l| {
                service_event(l, &fullname, |v| v["txt"]["live"] == "1")
            })
            .unwrap_or_else(|| panic!("{fullname}: TXT never said live=1"));
    }

    let (_, resolved) = browser
        .lines
        .wait(0, EVENTUALLY, |l| event(l, "resolved"))
        .unwrap_or_else(|| panic!("{host} never resolved"));
    assert_eq!(resolved["addresses"], serde_json::json!([ADDR_A]));

    // Goodbye: removal long before any TTL could expire.
    let mark = browser.lines.0 .0.lock().unwrap().len();
    let status = box_a.terminate();
    assert!(status.success(), "camhub exit status {status}");
    for ty in ["_http._tcp.local.", "_camhub._tcp.local."] {
        let fullname = format!("{name}.{ty}");
        browser
            .lines
            .wait(mark, GOODBYE_WITHIN, |l| {
                event(l, "removed").filter(|v| v["name"] == fullname.as_str())
            })
            .unwrap_or_else(|| panic!("{fullname} not removed after SIGTERM (no goodbye?)"));
    }
    drop(browser);
}

/// Two boxes in two namespaces list each other (not themselves) in `/api/peers`, and a
/// box that stops disappears from the other's list.
#[test]
fn two_boxes_see_each_other_in_api_peers() {
    let net = Net::new("p");
    let pid = std::process::id();
    let (name_a, name_b) = (format!("box-a-{pid}"), format!("box-b-{pid}"));
    let (_box_a, port_a) = camhub(&net, &net.a, &name_a);
    let (mut box_b, port_b) = camhub(&net, &net.b, &name_b);

    // The first resolution may carry only an IPv6 link-local address (IPv4 follows):
    // wait for the entry to settle on the IPv4 URL.
    let sees = |ns: &str, port: u16, other: &str, other_addr: &str, other_port: u16| {
        let url = format!("http://{other_addr}:{other_port}/");
        let mut last = None;
        let peers = common::eventually(EVENTUALLY, || {
            let peers = api_peers(&net, ns, port)?;
            last = Some(peers.clone());
            peers
                .iter()
                .any(|p| p["name"] == other && p["url"] == url.as_str())
                .then_some(peers)
        })
        .unwrap_or_else(|| panic!("{ns}: /api/peers never listed {other} at {url}: {last:?}"));
        assert_eq!(peers.len(), 1, "only the other box, not itself: {peers:?}");
        assert_eq!(peers[0]["port"], other_port, "{peers:?}");
        assert_eq!(peers[0]["host"], format!("{other}.local"), "{peers:?}");
    };
    sees(&net.a, port_a, &name_b, ADDR_B, port_b);
    sees(&net.b, port_b, &name_a, ADDR_A, port_a);

    assert!(box_b.terminate().success());
    common::eventually(GOODBYE_WITHIN, || {
        let peers = api_peers(&net, &net.a, port_a)?;
        peers
            .iter()
            .all(|p| p["name"] != name_b.as_str())
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{name_b} still in {name_a}'s /api/peers after its goodbye"));
}

/// A second box with a name already in use on the LAN follows the mDNS conflict rules:
/// it answers for `<name>-2.local` and its instances become `<name> (2)`; both boxes
/// stay findable, and the second one logs the name it uses.
#[test]
fn a_taken_name_is_renamed() {
    let net = Net::new("c");
    // Not ending in -<digits>: mdns-sd would increment that number instead of adding -2.
    let name = format!("same-{}-box", std::process::id());
    let browser = browser(&net, &net.b, None);
    let (_first, port_1) = camhub(&net, &net.a, &name);
    for ty in ["_http._tcp.local.", "_camhub._tcp.local."] {
        let fullname = format!("{name}.{ty}");
        browser
            .lines
            .wait(0, EVENTUALLY, |l| {
                service_event(l, &fullname, |v| v["txt"]["live"] == "1")
            })
            .unwrap_or_else(|| panic!("first box: {fullname} not found"));
    }
    // Let the first box finish announcing: mdns-sd does not answer a probe for a record
    // it multicast less than a second ago (RFC 6762 §6 rate limit), so a box probing in
    // that window can miss the conflict (see src/mdns.rs).
    std::thread::sleep(Duration::from_secs(2));

    let mark = browser.lines.0 .0.lock().unwrap().len();
    let (second, port_2) = camhub(&net, &net.b, &name);
    let renamed_host = format!("{name}-2.local.");
    for ty in ["_http._tcp.local.", "_camhub._tcp.local."] {
        let fullname = format!("{name} (2).{ty}");
        let (_, found) = browser
            .lines
            .wait(mark, EVENTUALLY, |l| service_event(l, &fullname, |_| true))
            .unwrap_or_else(|| panic!("second box not advertised as {fullname}"));
        assert_eq!(found["port"], port_2, "{found}");
        assert_eq!(found["server"], renamed_host.as_str(), "{found}");
        assert_eq!(found["addresses"], serde_json::json!([ADDR_B]), "{found}");
    }
    second
        .lines
        .wait(0, EVENTUALLY, |l| {
            (l.contains("mDNS name conflict") && l.contains(&format!("using {name}-2.local")))
                .then_some(())
        })
        .expect("the second box logs the name it uses");
    // The first box keeps its names: nothing of the second box's came under them.
    let under_first_name = |l: &str| {
        ["_http._tcp.local.", "_camhub._tcp.local."]
            .iter()
            .any(|ty| {
                let fullname = format!("{name}.{ty}");
                service_event(l, &fullname, |v| v["port"] != port_1).is_some()
            })
    };
    assert!(
        !browser.lines.any(under_first_name),
        "the second box announced itself under the first box's name"
    );
}

/// `[mdns] interfaces` limits where camhub advertises: a box limited to its veth is
/// found, a box limited to an interface that does not exist is not (and says so).
#[test]
fn interfaces_limit_where_it_advertises() {
    let net = Net::new("i");
    let pid = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let config = |file: &str, interface: &str| {
        let path = dir.path().join(file);
        std::fs::write(&path, format!("[mdns]\ninterfaces = [\"{interface}\"]\n")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let on_veth = config("veth.toml", &net.va);
    let nowhere = config("nowhere.toml", "nosuch0");
    let browser = browser(&net, &net.b, None);
    let (shown, hidden) = (format!("listed-{pid}"), format!("unlisted-{pid}"));
    let (hidden_box, _) = camhub_with(&net, &net.a, &hidden, &["--config", &nowhere]);
    let (_shown_box, port) = camhub_with(&net, &net.a, &shown, &["--config", &on_veth]);

    let fullname = format!("{shown}._http._tcp.local.");
    let (_, found) = browser
        .lines
        .wait(0, EVENTUALLY, |l| service_event(l, &fullname, |_| true))
        .expect("the box limited to its veth is found");
    assert_eq!(found["port"], port);
    hidden_box
        .lines
        .wait(0, EVENTUALLY, |l| {
            l.contains("no such interface").then_some(())
        })
        .expect("the box names the missing interface");
    // Both started together; give the other one as long again, and more.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !browser.lines.any(|l| l.contains(&hidden)),
        "a box limited to a missing interface was heard on the veth"
    );
}
