//! WS-Discovery against a real peer (issue #14): python WSDiscovery 2.1.2
//! (tests/peers/wsd_device.py) publishes an ONVIF-like camera in namespace b, and
//! `camhub::wsdiscovery` probes for it from namespace a, over the veth pair between them,
//! by IPv4 multicast, IPv6 link-local multicast (ff02::c) and directed Probes.
//!
//! The probing half runs inside namespace a: each test re-runs this test binary there
//! (`ip netns exec a <this binary> --exact probe_from_inside_a_namespace --ignored`) with
//! what to do in an environment variable, and reads the devices it found from its stdout
//! as JSON. So nothing a test sends can reach the machine's real interfaces: the probing
//! process has none, only loopback and the veth end (and it checks that before it sends).
//!
//! Needs root, iproute2 and WSDiscovery under target/py-peers (scripts/deps.sh); without
//! them a test fails and says why.

mod common;

use camhub::shutdown::Shutdown;
use camhub::wsdiscovery;
use common::netns::{Lines, Net, Proc, ADDR_B, EVENTUALLY};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::time::Duration;

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/wsd_device.py");
/// Where scripts/deps.sh installs WSDiscovery (Debian's python3 is externally managed).
const PY_PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/py-peers");
/// Tells the re-run test binary what to probe; unset, the helper test does nothing.
const HELPER_ENV: &str = "CAMHUB_WSD_HELPER";
const HELPER_TEST: &str = "probe_from_inside_a_namespace";
/// Marks the helper's result line on stdout.
const RESULT: &str = "WSD-FOUND ";
/// How long the helper collects replies (the peer answers within 0.5 s).
const LISTEN_FOR: Duration = Duration::from_secs(3);

/// The camera's endpoint reference.
const DEVICE: &str = "urn:uuid:6c6f6f6b-2063-616d-6875-622d74657374";
/// A non-camera responder published next to it (a Samba/Windows-style computer).
const COMPUTER: &str = "urn:uuid:6e6f7420-6120-6361-6d65-726121212121";
/// A global-scope address for namespace b: WSDiscovery joins ff02::c only for interfaces
/// with an IPv6 address that is not link-local (its `_getNetworkAddrs` skips those).
const ULA_B: &str = "fd57:5344:6973::2/64";

// ---- the half that runs inside namespace a ------------------------------------------

/// Run by the tests below inside namespace a (see the module docs): probes as
/// `$CAMHUB_WSD_HELPER` says and prints what it found. Without that variable (a plain
/// `--ignored` run) it does nothing: it must never probe the machine's own network.
#[test]
#[ignore = "run by the other tests of this file inside a network namespace"]
fn probe_from_inside_a_namespace() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let spec: Value = serde_json::from_str(&spec).expect("helper spec is JSON");
    let dev = spec["dev"].as_str().expect("spec names the veth");
    // Where the test put us, there is loopback and the veth end, nothing else.
    let interfaces = wsdiscovery::interfaces();
    assert!(
        !interfaces.is_empty() && interfaces.iter().all(|i| i.name == dev),
        "not inside the test's namespace (interfaces {interfaces:?}): refusing to probe"
    );
    let shutdown = Shutdown::new();
    let found = match spec["mode"].as_str().expect("spec has a mode") {
        "ipv4" | "ipv6" => {
            let want_v4 = spec["mode"] == "ipv4";
            let only: Vec<_> = interfaces
                .into_iter()
                .filter(|i| i.addr.is_ipv4() == want_v4)
                .collect();
            assert!(!only.is_empty(), "no {} address on {dev}", spec["mode"]);
            wsdiscovery::probe(&only, LISTEN_FOR, &shutdown)
        }
        "all" => wsdiscovery::probe(&[], LISTEN_FOR, &shutdown),
        // Shutdown during a long probe: it returns (what it has by then) at once.
        "stop" => {
            let stopper = shutdown.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                stopper.trigger();
            });
            wsdiscovery::probe(&[], Duration::from_secs(600), &shutdown)
        }
        "unicast" => {
            let addr: IpAddr = spec["addr"].as_str().unwrap().parse().unwrap();
            wsdiscovery::probe_unicast(addr, LISTEN_FOR, &shutdown)
        }
        other => panic!("unknown mode {other}"),
    };
    let found: Vec<Value> = found
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(f).unwrap();
            v["kind"] = json!(f.kind());
            v
        })
        .collect();
    println!("{RESULT}{}", Value::from(found));
}

// ---- the tests ------------------------------------------------------------------------

/// Two namespaces, IPv6 ready, and the camera peer in b.
struct Lab {
    /// Declared first: stopped before the namespaces go.
    _device: Proc,
    net: Net,
    /// b's link-local address (the camera's, as seen from a).
    ll_b: Ipv6Addr,
    /// The index of a's veth end: the zone id replies from b get in a.
    index_a: u32,
}

impl Lab {
    fn new(tag: &str, with_computer: bool) -> Lab {
        check_wsdiscovery();
        let net = Net::new(tag);
        net.add_ipv6(&net.b, &net.vb, ULA_B);
        // Both ends' link-local addresses usable before anything sends from them.
        net.link_local(&net.a, &net.va);
        let ll_b = net.link_local(&net.b, &net.vb);
        let index_a = net.ifindex(&net.a, &net.va);
        let device = device(&net, ll_b, with_computer);
        Lab {
            _device: device,
            net,
            ll_b,
            index_a,
        }
    }

    /// Runs the helper in namespace a with `spec` (plus the veth's name); the devices.
    fn probe(&self, spec: Value) -> Vec<Value> {
        let mut spec = spec;
        spec["dev"] = json!(self.net.va);
        let exe = std::env::current_exe().expect("test binary path");
        let out = self
            .net
            .command(&self.net.a, exe.to_str().unwrap())
            .args(["--exact", HELPER_TEST, "--ignored", "--nocapture"])
            .env(HELPER_ENV, spec.to_string())
            .stdin(Stdio::null())
            .output()
            .expect("run the helper in the namespace");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "helper {spec} failed: {}\n{stdout}\n{stderr}",
            out.status
        );
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(RESULT))
            .unwrap_or_else(|| panic!("helper {spec} printed no result:\n{stdout}\n{stderr}"));
        let found: Value = serde_json::from_str(line).expect("helper result is JSON");
        eprintln!("[{}] {found:#}", spec["mode"]);
        found.as_array().unwrap().clone()
    }

    /// `http://[<b's link-local>%25<zone in a>]<rest>`.
    fn ll_url(&self, rest: &str) -> String {
        format!("http://[{}%25{}]{rest}", self.ll_b, self.index_a)
    }
}

/// tests/peers/wsd_device.py in b: the camera, and a computer that is no camera when
/// `with_computer`; waits until it has published.
fn device(net: &Net, ll_b: Ipv6Addr, with_computer: bool) -> Proc {
    let mut command = net.command(&net.b, "/usr/bin/python3");
    command.args([PEER, "--uuid", DEVICE]);
    for scope in [
        "onvif://www.onvif.org/Profile/Streaming",
        "onvif://www.onvif.org/name/Test%20Cam",
        "onvif://www.onvif.org/hardware/Fake%2D1000",
        "onvif://www.onvif.org/location/city/K%C3%B6ln",
    ] {
        command.args(["--scope", scope]);
    }
    for xaddr in [
        "http://0.0.0.0:80/onvif/device_service".to_string(),
        format!("http://{ADDR_B}/onvif/device_service"),
        format!("http://[{ll_b}]/onvif/device_service"),
    ] {
        command.args(["--xaddr", &xaddr]);
    }
    if with_computer {
        command.args(["--computer", COMPUTER]);
    }
    let mut child = command
        .env("PYTHONPATH", PY_PEERS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let lines = Lines::default();
    lines.follow(child.stdout.take().unwrap(), "wsd-device".into());
    let proc = Proc { child, lines };
    proc.lines
        .wait(0, EVENTUALLY, |l| {
            l.contains(r#""event": "ready""#).then_some(())
        })
        .expect("the WSDiscovery peer starts");
    proc
}

fn check_wsdiscovery() {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import wsdiscovery"])
        .env("PYTHONPATH", PY_PEERS)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs python WSDiscovery 2.1.2 in {PY_PEERS} (scripts/deps.sh installs it)"
    );
}

/// The one device in `found`, checked for what the peer publishes whatever the family.
fn the_camera(found: &[Value]) -> &Value {
    assert_eq!(
        found.len(),
        1,
        "exactly the camera (not the computer): {found:#?}"
    );
    let cam = &found[0];
    assert_eq!(cam["endpoint"], DEVICE, "{cam:#}");
    assert_eq!(cam["name"], "Test Cam", "percent-decoded: {cam:#}");
    assert_eq!(cam["hardware"], "Fake-1000", "{cam:#}");
    assert_eq!(cam["kind"], "onvif", "{cam:#}");
    let types: Vec<&str> = cam["types"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        types
            .iter()
            .any(|t| t.ends_with(":NetworkVideoTransmitter"))
            && types.iter().any(|t| t.ends_with(":Device")),
        "{cam:#}"
    );
    let scopes = cam["scopes"].as_array().unwrap();
    assert!(
        scopes.contains(&json!("onvif://www.onvif.org/location/city/Köln")),
        "{cam:#}"
    );
    cam
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// IPv4 multicast on one interface: the camera, 0.0.0.0 replaced by its address, the
/// link-local XAddr given the zone of the interface the reply came in on; the computer
/// that also answers the untyped Probe is left out.
#[test]
fn finds_the_camera_by_ipv4_multicast() {
    let lab = Lab::new("4", true);
    let found = lab.probe(json!({"mode": "ipv4"}));
    let cam = the_camera(&found);
    assert_eq!(cam["address"], ADDR_B, "{cam:#}");
    assert_eq!(cam["scope_id"], 0, "{cam:#}");
    assert_eq!(
        strings(&cam["xaddrs"]),
        [
            format!("http://{ADDR_B}:80/onvif/device_service"),
            format!("http://{ADDR_B}/onvif/device_service"),
            lab.ll_url("/onvif/device_service"),
        ]
    );
}

/// IPv6 multicast to ff02::c: the reply comes from b's link-local address, which gets
/// the zone id (a's interface index) in `scope_id` and in the XAddrs.
#[test]
fn finds_the_camera_by_ipv6_link_local_multicast() {
    let lab = Lab::new("6", false);
    let found = lab.probe(json!({"mode": "ipv6"}));
    let cam = the_camera(&found);
    assert_eq!(cam["address"], lab.ll_b.to_string(), "{cam:#}");
    assert_eq!(cam["scope_id"], lab.index_a, "{cam:#}");
    assert_eq!(
        strings(&cam["xaddrs"]),
        [
            lab.ll_url(":80/onvif/device_service"),
            lab.ll_url("/onvif/device_service"),
            format!("http://{ADDR_B}/onvif/device_service"),
        ]
    );
}

/// No interfaces given: every interface there is (IPv4 and IPv6 on the veth), and the
/// camera that answers on both is one device, by its endpoint reference, with the IPv4
/// address and the XAddrs of both replies.
#[test]
fn one_device_from_both_families() {
    let lab = Lab::new("b", true);
    let found = lab.probe(json!({"mode": "all"}));
    let cam = the_camera(&found);
    assert_eq!(cam["address"], ADDR_B, "{cam:#}");
    let xaddrs = strings(&cam["xaddrs"]);
    assert_eq!(
        xaddrs[0],
        format!("http://{ADDR_B}:80/onvif/device_service")
    );
    for x in [
        format!("http://{ADDR_B}/onvif/device_service"),
        lab.ll_url(":80/onvif/device_service"),
        lab.ll_url("/onvif/device_service"),
    ] {
        assert!(xaddrs.contains(&x), "{x} in {xaddrs:?}");
    }
    assert_eq!(xaddrs.len(), 4, "{xaddrs:?}");
}

/// "Probe this address": directed Probes to b's IPv4 address and to its link-local
/// address (no zone given: asked on every IPv6 interface) find the camera.
#[test]
fn probe_unicast_finds_the_camera() {
    let lab = Lab::new("u", false);
    let found = lab.probe(json!({"mode": "unicast", "addr": ADDR_B}));
    let cam = the_camera(&found);
    assert_eq!(cam["address"], ADDR_B, "{cam:#}");
    assert_eq!(
        strings(&cam["xaddrs"]),
        [
            format!("http://{ADDR_B}:80/onvif/device_service"),
            format!("http://{ADDR_B}/onvif/device_service"),
            // The zone of the interface on b's subnet.
            lab.ll_url("/onvif/device_service"),
        ]
    );

    let found = lab.probe(json!({"mode": "unicast", "addr": lab.ll_b.to_string()}));
    let cam = the_camera(&found);
    assert_eq!(cam["address"], lab.ll_b.to_string(), "{cam:#}");
    assert_eq!(cam["scope_id"], lab.index_a, "{cam:#}");
}

/// Shutdown ends a probe that was given ten minutes (the helper returns, or the test
/// runner's timeout fails this test).
#[test]
fn shutdown_ends_a_probe() {
    let lab = Lab::new("s", false);
    let found = lab.probe(json!({"mode": "stop"}));
    assert!(found.len() <= 1, "{found:#?}");
}
