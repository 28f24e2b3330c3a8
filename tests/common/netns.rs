//! Test hosts in network namespaces, for the tests that run camhub with mDNS on
//! (tests/mdns.rs, tests/shutdown.rs) and the WS-Discovery tests (tests/wsdiscovery.rs,
//! with IPv6 link-local addresses): two namespaces joined by a veth pair whose
//! addresses exist only inside them, so no packet reaches the machine's real interfaces;
//! processes started inside them with their output followed line by line; and the
//! python3-zeroconf browser (tests/peers/mdns_browse.py). Needs root and iproute2 +
//! python3-zeroconf (scripts/deps.sh); without them a test fails and says why.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BROWSER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mdns_browse.py");
pub const ADDR_A: &str = "10.254.0.1";
pub const ADDR_B: &str = "10.254.0.2";
/// Generous bound for start-up steps that take a second or two.
pub const EVENTUALLY: Duration = Duration::from_secs(20);

/// `ip netns add` is not safe to run concurrently the first time (/run/netns mount).
/// nextest runs each test in its own process, so the lock is a file, plus a mutex for
/// tests sharing one process under `cargo test`.
static NETNS_SETUP: Mutex<()> = Mutex::new(());
const NETNS_LOCK: &str = "/tmp/camhub-test-netns.lock";

/// Two namespaces `a` and `b` joined by a veth pair (ADDR_A in a, ADDR_B in b), both
/// deleted on drop (which also deletes the veth pair).
pub struct Net {
    pub a: String,
    pub b: String,
    /// The veth ends in `a` and `b`.
    pub va: String,
    pub vb: String,
    created: Vec<String>,
}

impl Net {
    pub fn new(tag: &str) -> Net {
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
            let out = Command::new("flock")
                .args([NETNS_LOCK, "ip", "netns", "add", &ns])
                .stdin(Stdio::null())
                .output()
                .expect("run flock (util-linux)");
            assert!(
                out.status.success(),
                "ip netns add {ns}: {} (this test needs root for network namespaces)",
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
    pub fn command(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Adds IPv6 address `cidr` (e.g. `fd00::2/64`) to `dev` in `ns`, usable at once
    /// (no duplicate address detection).
    pub fn add_ipv6(&self, ns: &str, dev: &str, cidr: &str) {
        ip(&["-n", ns, "addr", "add", cidr, "dev", dev, "nodad"]);
    }

    /// The IPv6 link-local address of `dev` in `ns`, once usable: the kernel makes it
    /// when the link comes up and keeps it "tentative" (unusable as a source) for a
    /// second or two of duplicate address detection.
    pub fn link_local(&self, ns: &str, dev: &str) -> std::net::Ipv6Addr {
        let deadline = Instant::now() + EVENTUALLY;
        loop {
            let out = Command::new("ip")
                .args([
                    "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
                ])
                .stdin(Stdio::null())
                .output()
                .expect("run ip");
            let text = String::from_utf8_lossy(&out.stdout);
            let usable = text.lines().find(|l| !l.contains("tentative"));
            let addr = usable.and_then(|l| {
                let cidr = l.split_whitespace().skip_while(|w| *w != "inet6").nth(1)?;
                cidr.split('/').next()?.parse().ok()
            });
            if let Some(addr) = addr {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "no usable IPv6 link-local address on {dev} in {ns} (is IPv6 disabled?): {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The interface index of `dev` in `ns` (an IPv6 zone id there).
    pub fn ifindex(&self, ns: &str, dev: &str) -> u32 {
        let out = Command::new("ip")
            .args(["-n", ns, "-o", "link", "show", "dev", dev])
            .stdin(Stdio::null())
            .output()
            .expect("run ip");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no index for {dev} in {ns}: {text}"))
    }

    /// GETs `url` from inside `ns` with curl; None when it fails.
    pub fn get(&self, ns: &str, url: &str) -> Option<(u16, String)> {
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
        "this test needs `ip netns` (Debian package iproute2, run as root): it runs camhub \
         with mDNS in network namespaces so no multicast reaches real interfaces"
    );
    let zc_ok = Command::new("/usr/bin/python3")
        .args(["-c", "import zeroconf"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        zc_ok,
        "this test needs /usr/bin/python3 with zeroconf (Debian package python3-zeroconf; \
         scripts/deps.sh installs it)"
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
        "ip {}: {} (this test needs root for network namespaces)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Lines a child wrote, each with the moment the test read it, and whether the pipe has
/// ended; shared with the thread reading them, with a wake-up per line.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Log>, Condvar)>);

#[derive(Default)]
struct Log {
    lines: Vec<(Instant, String)>,
    ended: bool,
}

impl Lines {
    /// Reads `pipe` on a thread, echoing each line to stderr under `label`.
    pub fn follow(&self, pipe: impl std::io::Read + Send + 'static, label: String) {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("[{label}] {line}");
                let (buf, cv) = &*lines.0;
                buf.lock().unwrap().lines.push((Instant::now(), line));
                cv.notify_all();
            }
            let (buf, cv) = &*lines.0;
            buf.lock().unwrap().ended = true;
            cv.notify_all();
        });
    }

    /// Waits until some line (from `from` on) gives `Some`; returns it with its index
    /// and arrival time. None on timeout or when the pipe ended first.
    pub fn wait<T>(
        &self,
        from: usize,
        timeout: Duration,
        mut f: impl FnMut(&str) -> Option<T>,
    ) -> Option<(usize, Instant, T)> {
        let deadline = Instant::now() + timeout;
        let (buf, cv) = &*self.0;
        let mut seen = from;
        let mut guard = buf.lock().unwrap();
        loop {
            while seen < guard.lines.len() {
                let (at, line) = &guard.lines[seen];
                if let Some(v) = f(line) {
                    return Some((seen, *at, v));
                }
                seen += 1;
            }
            let now = Instant::now();
            if now >= deadline || guard.ended {
                return None;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Waits (bounded) until the pipe has ended, so every line is in.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (buf, cv) = &*self.0;
        let mut guard = buf.lock().unwrap();
        while !guard.ended {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
        true
    }

    pub fn len(&self) -> usize {
        self.0 .0.lock().unwrap().lines.len()
    }

    pub fn all(&self) -> Vec<(Instant, String)> {
        self.0 .0.lock().unwrap().lines.clone()
    }

    pub fn any(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.0 .0.lock().unwrap().lines.iter().any(|(_, l)| pred(l))
    }
}

/// A process started by a test; killed by PID when dropped.
pub struct Proc {
    pub child: Child,
    pub lines: Lines,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
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

/// The real camhub binary in `ns`, mDNS on, listening on 0.0.0.0:0, with `args` and
/// `RUST_LOG=rust_log`; its log is followed under `label`. Returns it and its HTTP port.
pub fn spawn_camhub(
    net: &Net,
    ns: &str,
    label: &str,
    rust_log: &str,
    args: &[&str],
) -> (Proc, u16) {
    spawn_camhub_on(net, ns, label, rust_log, "0.0.0.0:0", args)
}

/// [`spawn_camhub`] listening on `listen` (e.g. one address of the namespace).
pub fn spawn_camhub_on(
    net: &Net,
    ns: &str,
    label: &str,
    rust_log: &str,
    listen: &str,
    args: &[&str],
) -> (Proc, u16) {
    let mut child = net
        .command(ns, env!("CARGO_BIN_EXE_camhub"))
        .args(["--listen", listen])
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("camhub runs");
    let lines = Lines::default();
    lines.follow(child.stderr.take().unwrap(), label.to_string());
    let proc = Proc { child, lines };
    let (_, _, port) = proc
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
pub fn browser(net: &Net, ns: &str, resolve: Option<&str>) -> Proc {
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
pub fn event(line: &str, kind: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    (v["event"] == kind).then_some(v)
}
