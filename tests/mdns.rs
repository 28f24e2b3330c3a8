//! mDNS against real peers: the real `camhub` binary (mDNS on) in one network namespace,
//! python3-zeroconf (tests/peers/mdns_browse.py) or a second camhub in another, joined
//! by a veth pair whose addresses exist only inside the namespaces. Nothing here sends
//! a packet on the machine's real interfaces. Needs root (CI runs as root) and
//! iproute2 + python3-zeroconf (scripts/deps.sh); without them the tests fail and say why.

mod common;

use common::netns::{browser, event, spawn_camhub, Net, Proc, ADDR_A, ADDR_B, EVENTUALLY};
use serde_json::Value;
use std::time::Duration;

/// A goodbye must remove a service well before any TTL (SRV 120 s, PTR 75 min) expires.
const GOODBYE_WITHIN: Duration = Duration::from_secs(10);

// ---- processes ------------------------------------------------------------------------

/// The real camhub binary in `ns`, mDNS on, one test-pattern stream. Returns it and its
/// HTTP port.
fn camhub(net: &Net, ns: &str, name: &str) -> (Proc, u16) {
    camhub_with(net, ns, name, &[])
}

/// [`camhub`] with more arguments.
fn camhub_with(net: &Net, ns: &str, name: &str, args: &[&str]) -> (Proc, u16) {
    let mut all = vec![
        "--name",
        name,
        "--source",
        "cam=pattern:?size=160x120&fps=5",
    ];
    all.extend_from_slice(args);
    spawn_camhub(net, ns, name, "info,camhub::mdns=debug", &all)
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
        let (_, _, found) = browser
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

    let (_, _, resolved) = browser
        .lines
        .wait(0, EVENTUALLY, |l| event(l, "resolved"))
        .unwrap_or_else(|| panic!("{host} never resolved"));
    assert_eq!(resolved["addresses"], serde_json::json!([ADDR_A]));

    // Goodbye: removal long before any TTL could expire.
    let mark = browser.lines.len();
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

    let mark = browser.lines.len();
    let (second, port_2) = camhub(&net, &net.b, &name);
    let renamed_host = format!("{name}-2.local.");
    for ty in ["_http._tcp.local.", "_camhub._tcp.local."] {
        let fullname = format!("{name} (2).{ty}");
        let (_, _, found) = browser
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
    let (_, _, found) = browser
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
