//! WS-Discovery (issue #14, item 1): finds ONVIF cameras and phone webcam apps on the LAN,
//! on demand. [`probe`] multicasts Probes on each interface and collects the ProbeMatches
//! for a few seconds; [`probe_unicast`] asks one address ("probe this address", for a
//! camera on another subnet). Both block for at most the time they are given, and return
//! the devices found, deduplicated by their endpoint reference ([`Found`]).
//!
//! What goes out (../shared/research/onvif.md §1.2, §1.4, §1.8): the 2005/04 dialect ONVIF
//! uses, three Probes (`dn:NetworkVideoTransmitter`, `tds:Device`, and no type, because
//! some cameras answer only one of the three), each with its own `urn:uuid:` MessageID.
//! IPv4: to 239.255.255.250:3702 from a socket bound to each interface's address on an
//! ephemeral port, with `IP_MULTICAST_IF` = that address and TTL 1; the ProbeMatches come
//! back by unicast to that socket. IPv6: to `[ff02::c]:3702` with `IPV6_MULTICAST_IF` = the
//! interface index, hop limit 1. Each Probe is sent three times (at 0, ~150–250 ms and
//! ~450–550 ms) with the same MessageID, so a lost datagram is made up for and a device
//! answers once (SOAP-over-UDP retransmission); devices wait up to 500 ms
//! (APP_MAX_DELAY) before they answer, so replies are collected for the whole window.
//!
//! What comes back is untrusted and quirky (§1.3, §1.6): replies are parsed by element
//! local name whatever the prefixes (`wsdd:`, `d:`, `SOAP-ENV:`, SOAP 1.1 or 1.2), without
//! requiring `wsa:To` or RelatesTo (IP Webcam for Android omits `wsa:To`; some cameras
//! echo our MessageID as theirs), XAddrs are split on whitespace, a `0.0.0.0` host becomes
//! the sender's address, `host:port:port` is repaired, IPv6 link-local hosts get the zone
//! id of the interface the reply came in on, scopes are percent-decoded. Anything that is
//! not a ProbeMatch (our own Probe looped back, a Hello) is ignored, and so are responders
//! that are neither ONVIF devices nor phone apps (Windows and Samba `wsdd` answer an
//! untyped Probe as `pub:Computer`). Bounded: 64 KiB per datagram, [`MAX_DEVICES`]
//! devices, [`MAX_LIST`] XAddrs/scopes/types per device, [`MAX_CHANNELS`] sockets.
//!
//! Not here: Hello/Bye listening (a long-lived socket on port 3702), rate limiting and the
//! `[discovery] enabled` switch (the caller's), other camhub boxes (src/mdns.rs).

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::shutdown::Shutdown;

/// The WS-Discovery port, for multicast and for directed Probes.
pub const PORT: u16 = 3702;
/// The IPv4 multicast group.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// The IPv6 (link-local scope) multicast group.
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xc);
/// At most this many devices per call; more are ignored.
pub const MAX_DEVICES: usize = 256;
/// At most this many XAddrs, scopes and types kept per device.
pub const MAX_LIST: usize = 32;
/// At most this many sockets (IPv4 addresses plus IPv6 interfaces) per call.
pub const MAX_CHANNELS: usize = 32;

/// The largest UDP payload; real replies declare 30+ namespaces and run to several KiB.
const MAX_DATAGRAM: usize = 65_535;
/// When each Probe is sent again after the first, plus up to [`RESEND_JITTER`].
const RESEND_AFTER: [Duration; 2] = [Duration::from_millis(150), Duration::from_millis(450)];
const RESEND_JITTER: Duration = Duration::from_millis(100);
/// How often a waiting socket looks at the shutdown signal.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);
/// A directed probe stops this long after the first reply: the other two Probe variants
/// may still add types or XAddrs, but the user is waiting on one address.
const UNICAST_SETTLE: Duration = Duration::from_millis(700);

/// The scope prefix ONVIF devices put their name, hardware, location... under.
const ONVIF_SCOPE: &str = "onvif://www.onvif.org/";

/// A device that answered a Probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// Its WS-Addressing endpoint reference (`urn:uuid:…`): stable across interfaces and
    /// address changes, so the identity to dedupe and remember it by. A reply without one
    /// is keyed by its first XAddr.
    pub endpoint: String,
    /// Its device service URLs, the one to use first: on the sender's address, `http`
    /// before `https`, IPv4 before IPv6. Repaired as the module docs say.
    pub xaddrs: Vec<String>,
    /// Who sent the reply (IPv4 preferred when it answered on both families).
    pub address: IpAddr,
    /// For an IPv6 link-local `address`, the index of the interface it is on (the zone
    /// id, needed to connect); 0 otherwise.
    pub scope_id: u32,
    /// Percent-decoded, e.g. `onvif://www.onvif.org/name/Front Door`.
    pub scopes: Vec<String>,
    /// From the `onvif://www.onvif.org/name/…` scope.
    pub name: Option<String>,
    /// From the `onvif://www.onvif.org/hardware/…` scope (the model).
    pub hardware: Option<String>,
    /// As sent, e.g. `dn:NetworkVideoTransmitter`, `tds:Device`.
    pub types: Vec<String>,
}

impl Found {
    /// `"phone-app"` or `"onvif"`, for the discovery list.
    ///
    /// How: phone webcam apps (IP Webcam for Android, ScreenStream) answer WS-Discovery as
    /// ONVIF devices do (onvif.md §5.2), so nothing in the protocol tells them apart; what
    /// does is the name they give themselves. A device whose name, hardware, types or any
    /// scope mentions a known phone app (or Android) is a phone app. The exact strings
    /// these apps send are not documented (onvif.md marks it unverified); a phone app that
    /// names itself otherwise shows as `onvif`, which is still right to connect to. Port
    /// 8080 alone is no sign: some cameras serve ONVIF there too (go2rtc 4bbd3a1c).
    pub fn kind(&self) -> &'static str {
        if self.is_phone_app() {
            "phone-app"
        } else {
            "onvif"
        }
    }

    fn is_phone_app(&self) -> bool {
        const MARKERS: [&str; 6] = [
            "ip webcam",
            "ipwebcam",
            "com.pas.webcam",
            "android",
            "screenstream",
            "droidcam",
        ];
        let texts = self
            .name
            .iter()
            .chain(self.hardware.iter())
            .chain(self.scopes.iter())
            .chain(self.types.iter());
        texts
            .map(|t| t.to_ascii_lowercase())
            .any(|t| MARKERS.iter().any(|m| t.contains(m)))
    }

    /// The address as a URL host: `10.0.0.5`, or `[fe80::1%252]` with the zone id
    /// (RFC 6874) for an IPv6 link-local one.
    pub fn url_host(&self) -> String {
        host_for(self.address, self.scope_id)
    }

    /// Where to connect to `port` on the device (with the zone id for link-local IPv6).
    pub fn socket_addr(&self, port: u16) -> SocketAddr {
        match self.address {
            IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
            IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, port, 0, self.scope_id)),
        }
    }
}

/// The MJPEG stream of IP Webcam for Android at `addr`, on its default port 8080
/// (onvif.md §5.2): what the add flow offers for a device of kind `phone-app`.
pub fn phone_app_url(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => format!("http://{a}:8080/video"),
        IpAddr::V6(a) => format!("http://[{a}]:8080/video"),
    }
}

/// One address of a network interface probes can go out on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// e.g. `eth0`, `wlan0`.
    pub name: String,
    /// The kernel's interface index (what IPv6 multicast and zone ids use).
    pub index: u32,
    pub addr: IpAddr,
}

/// This machine's addresses on interfaces that are up, loopback left out: what [`probe`]
/// uses when it is given none. Empty when the system will not say.
pub fn interfaces() -> Vec<Interface> {
    let all = match if_addrs::get_if_addrs() {
        Ok(all) => all,
        Err(e) => {
            tracing::debug!("listing network interfaces: {e}");
            return Vec::new();
        }
    };
    all.into_iter()
        .filter(|i| !i.is_loopback() && i.is_oper_up())
        .filter_map(|i| {
            Some(Interface {
                index: i.index?,
                addr: i.ip(),
                name: i.name,
            })
        })
        .collect()
}

/// Multicasts Probes on `interfaces` (every [`interfaces`] entry when empty): IPv4 ones
/// once per address, IPv6 ones once per interface. Collects ProbeMatches for
/// `listen_for` (3–5 s finds devices that answer late; shorter misses some), or until
/// `shutdown`. Blocks; a failing interface is skipped (logged at debug).
pub fn probe(interfaces: &[Interface], listen_for: Duration, shutdown: &Shutdown) -> Vec<Found> {
    let listed;
    let interfaces = if interfaces.is_empty() {
        listed = self::interfaces();
        &listed[..]
    } else {
        interfaces
    };
    let mut channels = Vec::new();
    let mut v6_done = Vec::new();
    for iface in interfaces {
        if channels.len() >= MAX_CHANNELS || shutdown.is_triggered() {
            break;
        }
        let opened = match iface.addr {
            IpAddr::V4(a) if a.is_loopback() || a.is_unspecified() => continue,
            IpAddr::V4(a) => multicast_v4(a).map(|s| Channel {
                socket: s,
                targets: vec![SocketAddr::from((GROUP_V4, PORT))],
                if_index: iface.index,
            }),
            IpAddr::V6(_) if iface.index == 0 || v6_done.contains(&iface.index) => continue,
            IpAddr::V6(_) => {
                v6_done.push(iface.index);
                multicast_v6(iface.index).map(|s| Channel {
                    socket: s,
                    targets: vec![SocketAddr::V6(SocketAddrV6::new(
                        GROUP_V6,
                        PORT,
                        0,
                        iface.index,
                    ))],
                    if_index: iface.index,
                })
            }
        };
        match opened {
            Ok(channel) => channels.push(channel),
            Err(e) => tracing::debug!(
                "WS-Discovery: not probing on {} ({}): {e}",
                iface.name,
                iface.addr
            ),
        }
    }
    run(channels, listen_for, None, shutdown)
}

/// Sends the Probes straight to `addr`:3702 ("probe this address": a camera on another
/// subnet, where multicast does not reach) and collects what answers within
/// `listen_for`, returning soon after the first reply. An IPv6 link-local `addr` has no
/// zone here, so it is asked on every IPv6 interface. A multicast, broadcast or
/// unspecified `addr` finds nothing. Blocks.
pub fn probe_unicast(addr: IpAddr, listen_for: Duration, shutdown: &Shutdown) -> Vec<Found> {
    // One device's address only: no group or broadcast address goes out from here.
    let one_host = match addr {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    };
    if !one_host {
        return Vec::new();
    }
    let mut channels = Vec::new();
    let mut open = |socket: io::Result<UdpSocket>, target: SocketAddr, if_index: u32| match socket {
        Ok(socket) => channels.push(Channel {
            socket,
            targets: vec![target],
            if_index,
        }),
        Err(e) => tracing::debug!("WS-Discovery: not probing {target}: {e}"),
    };
    match addr {
        IpAddr::V4(a) => open(
            unicast_socket(Domain::IPV4),
            SocketAddr::from((a, PORT)),
            v4_subnet_index(a),
        ),
        IpAddr::V6(a) if a.is_unicast_link_local() => {
            let mut indexes: Vec<u32> = interfaces()
                .iter()
                .filter(|i| i.addr.is_ipv6())
                .map(|i| i.index)
                .collect();
            indexes.sort_unstable();
            indexes.dedup();
            for index in indexes.into_iter().take(MAX_CHANNELS) {
                let target = SocketAddr::V6(SocketAddrV6::new(a, PORT, 0, index));
                open(unicast_socket(Domain::IPV6), target, index);
            }
        }
        IpAddr::V6(a) => open(
            unicast_socket(Domain::IPV6),
            SocketAddr::V6(SocketAddrV6::new(a, PORT, 0, 0)),
            0,
        ),
    }
    run(channels, listen_for, Some(UNICAST_SETTLE), shutdown)
}

/// The index of the up interface whose IPv4 subnet holds `addr` (0: none, or another
/// subnet): where a directed reply from `addr` comes in, so the zone for link-local
/// XAddrs in it.
fn v4_subnet_index(addr: Ipv4Addr) -> u32 {
    let Ok(all) = if_addrs::get_if_addrs() else {
        return 0;
    };
    all.iter()
        .filter(|i| !i.is_loopback() && i.is_oper_up())
        .find_map(|i| match &i.addr {
            if_addrs::IfAddr::V4(v4) => {
                let mask = u32::from(v4.netmask);
                (u32::from(v4.ip) & mask == u32::from(addr) & mask).then_some(i.index?)
            }
            _ => None,
        })
        .unwrap_or(0)
}

// ---- sockets --------------------------------------------------------------------------

/// One socket, where its Probes go, and the interface it is on (0: unknown).
struct Channel {
    socket: UdpSocket,
    targets: Vec<SocketAddr>,
    if_index: u32,
}

/// Bound to the interface's address so the multicast leaves through it (and the unicast
/// reply to that address comes back here), with `IP_MULTICAST_IF` set too.
fn multicast_v4(addr: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.bind(&SocketAddr::from((addr, 0)).into())?;
    socket.set_multicast_if_v4(&addr)?;
    socket.set_multicast_ttl_v4(1)?;
    Ok(socket.into())
}

fn multicast_v6(index: u32) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
    socket.set_multicast_if_v6(index)?;
    socket.set_multicast_hops_v6(1)?;
    Ok(socket.into())
}

fn unicast_socket(domain: Domain) -> io::Result<UdpSocket> {
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    let any: SocketAddr = if domain == Domain::IPV6 {
        socket.set_only_v6(true)?;
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    socket.bind(&any.into())?;
    Ok(socket.into())
}

/// Runs every channel on a thread of its own for `listen_for` (or until `settle` after
/// its first reply), then merges what they heard.
fn run(
    channels: Vec<Channel>,
    listen_for: Duration,
    settle: Option<Duration>,
    shutdown: &Shutdown,
) -> Vec<Found> {
    let deadline = Instant::now() + listen_for;
    let heard: Vec<Devices> = std::thread::scope(|scope| {
        let threads: Vec<_> = channels
            .into_iter()
            .map(|c| {
                std::thread::Builder::new()
                    .name("wsdiscovery".into())
                    .spawn_scoped(scope, move || listen(c, deadline, settle, shutdown))
            })
            .collect();
        threads
            .into_iter()
            .filter_map(|t| match t {
                Ok(t) => t.join().ok(),
                Err(e) => {
                    tracing::debug!("WS-Discovery: no thread for a probe: {e}");
                    None
                }
            })
            .collect()
    });
    let mut all = Devices::default();
    for devices in heard {
        for found in devices.list {
            all.add(found);
        }
    }
    all.finish()
}

/// One channel: sends the three Probes on schedule and parses what comes back.
fn listen(
    channel: Channel,
    deadline: Instant,
    settle: Option<Duration>,
    shutdown: &Shutdown,
) -> Devices {
    let probes: Vec<String> = ProbeType::ALL
        .iter()
        .map(|&t| probe_message(t, &new_message_id()))
        .collect();
    let start = Instant::now();
    let mut sends = std::iter::once(start).chain(
        RESEND_AFTER
            .iter()
            .map(|after| start + *after + jitter(RESEND_JITTER)),
    );
    let mut next_send = sends.next();
    let mut deadline = deadline;
    let mut devices = Devices::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let now = Instant::now();
        if shutdown.is_triggered() || now >= deadline {
            break;
        }
        if next_send.is_some_and(|at| at <= now) {
            for target in &channel.targets {
                for probe in &probes {
                    if let Err(e) = channel.socket.send_to(probe.as_bytes(), target) {
                        tracing::debug!("WS-Discovery: sending a Probe to {target}: {e}");
                    }
                }
            }
            next_send = sends.next();
        }
        let wake = next_send.map_or(deadline, |at| at.min(deadline));
        let wait = wake
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), SHUTDOWN_POLL);
        if let Err(e) = channel.socket.set_read_timeout(Some(wait)) {
            tracing::debug!("WS-Discovery: {e}");
            break;
        }
        match channel.socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let before = devices.list.len();
                for found in parse_probe_matches(&buf[..n], from, channel.if_index) {
                    devices.add(found);
                }
                if let Some(settle) = settle {
                    if before == 0 && !devices.list.is_empty() {
                        deadline = deadline.min(Instant::now() + settle);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                // e.g. ICMP "port unreachable" reported for a directed Probe.
                tracing::debug!("WS-Discovery: receiving: {e}");
                shutdown.sleep(wait);
            }
        }
    }
    devices
}

// ---- messages -------------------------------------------------------------------------

/// The three Probe variants (onvif.md §1.2: some cameras answer only a typed Probe, some
/// only an untyped one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeType {
    NetworkVideoTransmitter,
    Device,
    Any,
}

impl ProbeType {
    const ALL: [ProbeType; 3] = [
        ProbeType::NetworkVideoTransmitter,
        ProbeType::Device,
        ProbeType::Any,
    ];
}

/// A Probe as ODM sends it: every prefix declared on the Envelope (a camera ignored
/// prefixes declared on `Types` itself, openHAB #9022), SOAP 1.2, 2005/04 WS-Discovery.
fn probe_message(probe_type: ProbeType, message_id: &str) -> String {
    let body = match probe_type {
        ProbeType::NetworkVideoTransmitter => {
            "<d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe>"
        }
        ProbeType::Device => "<d:Probe><d:Types>tds:Device</d:Types></d:Probe>",
        ProbeType::Any => "<d:Probe><d:Types/><d:Scopes/></d:Probe>",
    };
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope""#,
            r#" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing""#,
            r#" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery""#,
            r#" xmlns:dn="http://www.onvif.org/ver10/network/wsdl""#,
            r#" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">"#,
            "<s:Header>",
            r#"<a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>"#,
            "<a:MessageID>{id}</a:MessageID>",
            "<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>",
            r#"<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>"#,
            "</s:Header>",
            "<s:Body>{body}</s:Body>",
            "</s:Envelope>"
        ),
        id = message_id,
        body = body
    )
}

/// A fresh `urn:uuid:` (version 4) from the system's random source; should that fail,
/// from the clock and a counter (unique is what matters, not unguessable).
fn new_message_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b[..8].copy_from_slice(&nanos.to_le_bytes());
        b[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        b[12..].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Up to `max`, from the random source (zero if it fails).
fn jitter(max: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    max.mul_f64(f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX))
}

/// The devices in one datagram from `from` (received on interface `if_index`, 0 when
/// unknown): empty unless it is a well-formed ProbeMatches from an ONVIF device or a
/// phone app.
fn parse_probe_matches(datagram: &[u8], from: SocketAddr, if_index: u32) -> Vec<Found> {
    let Ok(text) = std::str::from_utf8(datagram) else {
        return Vec::new();
    };
    let text = text.trim_start_matches('\u{feff}');
    let Ok(doc) = roxmltree::Document::parse(text) else {
        return Vec::new();
    };
    let envelope = doc.root_element();
    if envelope.tag_name().name() != "Envelope" {
        return Vec::new();
    }
    // Our own Probe looped back, a Hello, a Bye, a fault: not a reply to us.
    let action = child(envelope, "Header")
        .and_then(|h| child(h, "Action"))
        .and_then(|a| a.text())
        .map(str::trim);
    if action.is_some_and(|a| !a.ends_with("/ProbeMatches")) {
        return Vec::new();
    }
    let Some(matches) = child(envelope, "Body").and_then(|b| child(b, "ProbeMatches")) else {
        return Vec::new();
    };
    let address = from.ip();
    // The zone of a link-local sender is the interface the reply came in on.
    let scope_id = match from {
        SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() => {
            if v6.scope_id() != 0 {
                v6.scope_id()
            } else {
                if_index
            }
        }
        _ => 0,
    };
    let zone = match from {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => v6.scope_id(),
        _ => if_index,
    };
    let mut out = Vec::new();
    for m in matches
        .children()
        .filter(|n| n.tag_name().name() == "ProbeMatch")
    {
        let text_of = |name: &str| child(m, name).and_then(|n| n.text()).unwrap_or("");
        let types_node = child(m, "Types");
        let types: Vec<String> = tokens(text_of("Types"));
        let scopes: Vec<String> = tokens(text_of("Scopes"))
            .iter()
            .map(|s| percent_decode(s))
            .collect();
        let mut xaddrs = Vec::new();
        for raw in text_of("XAddrs").split_whitespace().take(MAX_LIST) {
            if let Some(x) = fix_xaddr(raw, address, scope_id, zone) {
                push_unique(&mut xaddrs, x);
            }
        }
        let onvif_type = types.iter().any(|t| {
            let (prefix, local) = t
                .rsplit_once(':')
                .map_or((None, t.as_str()), |(p, l)| (Some(p), l));
            let ns = types_node.and_then(|n| n.lookup_namespace_uri(prefix));
            local == "NetworkVideoTransmitter"
                || ns.is_some_and(|ns| ns.starts_with("http://www.onvif.org/"))
        });
        let onvif_scope = scopes.iter().any(|s| starts_with_ci(s, ONVIF_SCOPE));
        let endpoint = child(m, "EndpointReference")
            .and_then(|e| child(e, "Address"))
            .and_then(|a| a.text())
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .or_else(|| xaddrs.first().cloned());
        let Some(endpoint) = endpoint else { continue };
        let found = Found {
            endpoint,
            name: onvif_scope_value(&scopes, "name"),
            hardware: onvif_scope_value(&scopes, "hardware"),
            xaddrs,
            address,
            scope_id,
            scopes,
            types,
        };
        if onvif_type || onvif_scope || found.is_phone_app() {
            out.push(found);
        }
    }
    out
}

/// The first child element of `node` with local name `name`, whatever its prefix.
fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| n.tag_name().name() == name)
}

/// Whitespace-separated tokens, at most [`MAX_LIST`], duplicates dropped.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in text.split_whitespace() {
        if out.len() >= MAX_LIST {
            break;
        }
        push_unique(&mut out, t.to_string());
    }
    out
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if list.len() < MAX_LIST && !list.contains(&item) {
        list.push(item);
    }
}

/// `%XX` sequences decoded (as UTF-8, invalid bytes replaced); a stray `%` is kept.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The value of the first non-empty `onvif://www.onvif.org/<category>/<value>` scope.
fn onvif_scope_value(scopes: &[String], category: &str) -> Option<String> {
    scopes.iter().find_map(|s| {
        if !starts_with_ci(s, ONVIF_SCOPE) {
            return None;
        }
        let (cat, value) = s[ONVIF_SCOPE.len()..].split_once('/')?;
        let value = value.trim();
        (cat.eq_ignore_ascii_case(category) && !value.is_empty()).then(|| value.to_string())
    })
}

/// `addr` as a URL host; IPv6 bracketed, link-local ones with `%25<zone>` (RFC 6874).
fn host_for(addr: IpAddr, zone: u32) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) if a.is_unicast_link_local() && zone != 0 => format!("[{a}%25{zone}]"),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// One XAddr made usable, or None when it is not an http(s) URL:
/// - host `0.0.0.0`, `[::]` or empty → the sender (go2rtc 4bbd3a1c, a camera sending
///   `http://0.0.0.0:8080/onvif/device_service`);
/// - `host:port:port` → `host:port` (HA #92603);
/// - an IPv6 link-local host without a zone gets `%25<zone>`, the interface the reply
///   came in on (an XAddr never carries one; onvif.md §1.7).
fn fix_xaddr(raw: &str, sender: IpAddr, sender_zone: u32, zone: u32) -> Option<String> {
    let (scheme, rest) = raw.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (inside, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').filter(|p| !p.is_empty());
        (format!("[{inside}]"), port.map(str::to_string))
    } else {
        let mut parts = hostport.split(':');
        let host = parts.next().unwrap_or("").to_string();
        let ports: Vec<&str> = parts.filter(|p| !p.is_empty()).collect();
        // One port, or the same port twice (`h:8106:8106`): keep the first valid one.
        let port = ports.iter().find(|p| p.parse::<u16>().is_ok());
        (host, port.map(|p| p.to_string()))
    };
    let host = match host.as_str() {
        "" | "0.0.0.0" | "[::]" | "[0:0:0:0:0:0:0:0]" => host_for(sender, sender_zone),
        h => match h
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .and_then(|h| h.parse::<Ipv6Addr>().ok())
        {
            Some(v6) if v6.is_unicast_link_local() => host_for(IpAddr::V6(v6), zone),
            _ => host,
        },
    };
    let mut url = format!("{scheme}://");
    if let Some(u) = userinfo {
        url.push_str(u);
        url.push('@');
    }
    url.push_str(&host);
    if let Some(p) = port {
        url.push(':');
        url.push_str(&p);
    }
    url.push_str(if tail.is_empty() { "/" } else { tail });
    Some(url)
}

/// The host part of an XAddr made by [`fix_xaddr`], without brackets and zone.
fn xaddr_host(xaddr: &str) -> &str {
    let rest = xaddr.split_once("://").map_or(xaddr, |(_, r)| r);
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match hostport.strip_prefix('[') {
        Some(v6) => {
            let inside = v6.split(']').next().unwrap_or("");
            inside.split('%').next().unwrap_or(inside)
        }
        None => hostport.split(':').next().unwrap_or(hostport),
    }
}

// ---- deduplication ----------------------------------------------------------------------

/// Devices keyed by endpoint reference, at most [`MAX_DEVICES`], in arrival order.
#[derive(Default)]
struct Devices {
    list: Vec<Found>,
}

impl Devices {
    /// Adds `found`, or merges it into the device with the same endpoint: its XAddrs,
    /// scopes and types are added, missing name and hardware filled in, and an IPv4
    /// sender replaces an IPv6 one (IPv4 XAddrs are the ones most clients can use).
    fn add(&mut self, found: Found) {
        let Some(known) = self.list.iter_mut().find(|d| d.endpoint == found.endpoint) else {
            if self.list.len() < MAX_DEVICES {
                self.list.push(found);
            }
            return;
        };
        if known.address.is_ipv6() && found.address.is_ipv4() {
            known.address = found.address;
            known.scope_id = found.scope_id;
        }
        for x in found.xaddrs {
            push_unique(&mut known.xaddrs, x);
        }
        for s in found.scopes {
            push_unique(&mut known.scopes, s);
        }
        for t in found.types {
            push_unique(&mut known.types, t);
        }
        if known.name.is_none() {
            known.name = found.name;
        }
        if known.hardware.is_none() {
            known.hardware = found.hardware;
        }
    }

    /// The list in a stable order (IPv4 addresses first, then by address and endpoint),
    /// each device's best XAddr first.
    fn finish(mut self) -> Vec<Found> {
        for d in &mut self.list {
            let sender = d.address.to_string();
            d.xaddrs.sort_by_key(|x| {
                let host = xaddr_host(x);
                (
                    host != sender,
                    !x.starts_with("http://"),
                    host.contains(':'),
                )
            });
        }
        self.list.sort_by(|a, b| {
            (a.address.is_ipv6(), a.address, &a.endpoint).cmp(&(
                b.address.is_ipv6(),
                b.address,
                &b.endpoint,
            ))
        });
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAM: &str = "10.0.0.60";

    fn from(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), PORT)
    }

    /// agsh/onvif's mock shape (SOAP-ENV/wsa/wsdd/dn/tds), with two XAddrs in one field
    /// (go2rtc #884) and percent-encoded scopes.
    const HIKVISION_LIKE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
  xmlns:SOAP-ENC="http://www.w3.org/2003/05/soap-encoding"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
  xmlns:wsdd="http://schemas.xmlsoap.org/ws/2005/04/discovery"
  xmlns:dn="http://www.onvif.org/ver10/network/wsdl"
  xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
 <SOAP-ENV:Header>
  <wsa:MessageID>uuid:2419d68a-2dd2-21b2-a205-9c8e90bc8a8e</wsa:MessageID>
  <wsa:RelatesTo>urn:uuid:0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9</wsa:RelatesTo>
  <wsa:To SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>
  <wsa:Action SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>
  <wsdd:AppSequence InstanceId="1" MessageNumber="5"/>
 </SOAP-ENV:Header>
 <SOAP-ENV:Body>
  <wsdd:ProbeMatches>
   <wsdd:ProbeMatch>
    <wsa:EndpointReference><wsa:Address>urn:uuid:4d454930-3031-1040-8000-bcbac2a5ed3c</wsa:Address></wsa:EndpointReference>
    <wsdd:Types>dn:NetworkVideoTransmitter tds:Device</wsdd:Types>
    <wsdd:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming
      onvif://www.onvif.org/hardware/DS-2CD2042WD-I onvif://www.onvif.org/name/Front%20Door
      onvif://www.onvif.org/location/city/K%C3%B6ln</wsdd:Scopes>
    <wsdd:XAddrs>http://10.0.0.60:80/onvif/device_service https://10.0.0.60:443/onvif/device_service</wsdd:XAddrs>
    <wsdd:MetadataVersion>10</wsdd:MetadataVersion>
   </wsdd:ProbeMatch>
  </wsdd:ProbeMatches>
 </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#;

    /// A buggy camera: SOAP 1.1 envelope, `soap:`/`wsd:` prefixes (EdgeX #412), no
    /// `wsa:To` (IP Webcam, python-ws-discovery #29), our MessageID echoed as its own
    /// (python-ws-discovery #38), `0.0.0.0` XAddr (go2rtc 4bbd3a1c), `h:port:port`.
    const BUGGY: &str = r#"<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:addr="http://schemas.xmlsoap.org/ws/2004/08/addressing"
  xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery"
  xmlns:tdn="http://www.onvif.org/ver10/network/wsdl">
 <soap:Header>
  <addr:MessageID>urn:uuid:0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9</addr:MessageID>
  <addr:RelatesTo>urn:uuid:0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9</addr:RelatesTo>
  <addr:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</addr:Action>
 </soap:Header>
 <soap:Body><wsd:ProbeMatches><wsd:ProbeMatch>
  <addr:EndpointReference><addr:Address> urn:uuid:a1b2c3d4-0000-4000-8000-00000000beef </addr:Address></addr:EndpointReference>
  <wsd:Types>tdn:NetworkVideoTransmitter</wsd:Types>
  <wsd:Scopes>onvif://www.onvif.org/Name/NVT onvif://www.onvif.org/hardware/IPC-model</wsd:Scopes>
  <wsd:XAddrs>http://0.0.0.0:8899/onvif/device_service http://10.0.0.61:8106:8106/onvif/device_service</wsd:XAddrs>
 </wsd:ProbeMatch></wsd:ProbeMatches></soap:Body>
</soap:Envelope>"#;

    #[test]
    fn parses_a_probe_match_by_local_name() {
        let found = parse_probe_matches(HIKVISION_LIKE.as_bytes(), from(CAM), 2);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(f.endpoint, "urn:uuid:4d454930-3031-1040-8000-bcbac2a5ed3c");
        assert_eq!(
            f.xaddrs,
            [
                "http://10.0.0.60:80/onvif/device_service",
                "https://10.0.0.60:443/onvif/device_service"
            ]
        );
        assert_eq!(f.address, CAM.parse::<IpAddr>().unwrap());
        assert_eq!(f.scope_id, 0);
        assert_eq!(f.name.as_deref(), Some("Front Door"));
        assert_eq!(f.hardware.as_deref(), Some("DS-2CD2042WD-I"));
        assert!(f
            .scopes
            .contains(&"onvif://www.onvif.org/location/city/Köln".to_string()));
        assert_eq!(f.scopes.len(), 5);
        assert_eq!(f.types, ["dn:NetworkVideoTransmitter", "tds:Device"]);
        assert_eq!(f.kind(), "onvif");
    }

    #[test]
    fn tolerates_a_buggy_camera() {
        let found = parse_probe_matches(BUGGY.as_bytes(), from("10.0.0.61"), 0);
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!(f.endpoint, "urn:uuid:a1b2c3d4-0000-4000-8000-00000000beef");
        assert_eq!(
            f.xaddrs,
            [
                "http://10.0.0.61:8899/onvif/device_service",
                "http://10.0.0.61:8106/onvif/device_service"
            ]
        );
        // Category matched case-insensitively ("Name").
        assert_eq!(f.name.as_deref(), Some("NVT"));
        assert_eq!(f.hardware.as_deref(), Some("IPC-model"));
    }

    #[test]
    fn ignores_what_is_not_a_probe_match() {
        let id = new_message_id();
        // Our own Probe, looped back.
        for t in ProbeType::ALL {
            let probe = probe_message(t, &id);
            assert!(parse_probe_matches(probe.as_bytes(), from(CAM), 0).is_empty());
        }
        // A Hello carries the same fields as a ProbeMatch, but not in reply to us.
        let hello = HIKVISION_LIKE
            .replace("discovery/ProbeMatches", "discovery/Hello")
            .replace("ProbeMatches>", "Hello>")
            .replace("ProbeMatch>", "HelloX>");
        assert!(parse_probe_matches(hello.as_bytes(), from(CAM), 0).is_empty());
        // Junk, truncation, not UTF-8, a DTD (entity expansion), not an Envelope.
        for junk in [
            &b"hello"[..],
            &HIKVISION_LIKE.as_bytes()[..400],
            &[0xff, 0xfe, 0x00][..],
            br#"<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>"#,
            b"<Body><ProbeMatches/></Body>",
        ] {
            assert!(parse_probe_matches(junk, from(CAM), 0).is_empty());
        }
    }

    #[test]
    fn ignores_a_computer_answering_an_untyped_probe() {
        // Samba/Windows wsdd (christgau/wsdd #227): no onvif types or scopes.
        let wsdd = r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:wsdp="http://schemas.xmlsoap.org/ws/2006/02/devprof" xmlns:pub="http://schemas.microsoft.com/windows/pub/2005/07"><soap:Header><wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To><wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action><wsa:MessageID>urn:uuid:de01fa16-e6ff-11ef-a671-ec2e988443d5</wsa:MessageID></soap:Header><soap:Body><wsd:ProbeMatches><wsd:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:c3e195f5-cece-40a4-9760-9ae807e243d9</wsa:Address></wsa:EndpointReference><wsd:Types>wsdp:Device pub:Computer</wsd:Types><wsd:MetadataVersion>1</wsd:MetadataVersion></wsd:ProbeMatch></wsd:ProbeMatches></soap:Body></soap:Envelope>"#;
        assert!(parse_probe_matches(wsdd.as_bytes(), from(CAM), 0).is_empty());
        // tds:Device resolved through its namespace: an ONVIF device without scopes.
        let onvif = wsdd
            .replace("wsdp:Device pub:Computer", "tds:Device")
            .replace(
                "xmlns:wsdp=",
                r#"xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:wsdp="#,
            );
        assert_eq!(parse_probe_matches(onvif.as_bytes(), from(CAM), 0).len(), 1);
    }

    #[test]
    fn link_local_replies_get_the_zone_id() {
        let sender: Ipv6Addr = "fe80::1c2:3ff:fe04:506".parse().unwrap();
        let xml = HIKVISION_LIKE.replace(
            "http://10.0.0.60:80/onvif/device_service https://10.0.0.60:443/onvif/device_service",
            "http://0.0.0.0/onvif/device_service http://[fe80::1c2:3ff:fe04:506]:8080/onvif/device_service http://[2001:db8::5]/x http://10.0.0.60/onvif/device_service",
        );
        let from = SocketAddr::V6(SocketAddrV6::new(sender, PORT, 0, 7));
        let found = parse_probe_matches(xml.as_bytes(), from, 7);
        let f = &found[0];
        assert_eq!(f.address, IpAddr::V6(sender));
        assert_eq!(f.scope_id, 7);
        assert_eq!(f.url_host(), "[fe80::1c2:3ff:fe04:506%257]");
        assert_eq!(
            f.socket_addr(80),
            SocketAddr::V6(SocketAddrV6::new(sender, 80, 0, 7))
        );
        assert_eq!(
            f.xaddrs,
            [
                "http://[fe80::1c2:3ff:fe04:506%257]/onvif/device_service",
                "http://[fe80::1c2:3ff:fe04:506%257]:8080/onvif/device_service",
                "http://[2001:db8::5]/x",
                "http://10.0.0.60/onvif/device_service",
            ]
        );
        // Sorted for use: the sender's address first, then IPv4 before other IPv6.
        let mut d = Devices::default();
        d.add(f.clone());
        let sorted = &d.finish()[0].xaddrs;
        assert_eq!(sorted[0], f.xaddrs[0]);
        assert_eq!(sorted[1], f.xaddrs[1]);
        assert_eq!(sorted[2], "http://10.0.0.60/onvif/device_service");
    }

    #[test]
    fn dedupes_by_endpoint_and_prefers_ipv4() {
        let v6 = SocketAddr::V6(SocketAddrV6::new(
            "fe80::1c2:3ff:fe04:506".parse().unwrap(),
            PORT,
            0,
            3,
        ));
        let zero = HIKVISION_LIKE.replace(
            "http://10.0.0.60:80/onvif/device_service https://10.0.0.60:443/onvif/device_service",
            "http://0.0.0.0/onvif/device_service",
        );
        let mut d = Devices::default();
        for f in parse_probe_matches(zero.as_bytes(), v6, 3) {
            d.add(f);
        }
        // The same device again (another Probe variant), then over IPv4.
        for f in parse_probe_matches(zero.as_bytes(), v6, 3) {
            d.add(f);
        }
        for f in parse_probe_matches(HIKVISION_LIKE.as_bytes(), from(CAM), 2) {
            d.add(f);
        }
        for f in parse_probe_matches(BUGGY.as_bytes(), from("10.0.0.61"), 2) {
            d.add(f);
        }
        let list = d.finish();
        assert_eq!(list.len(), 2, "{list:#?}");
        let cam = &list[0];
        assert_eq!(cam.address, CAM.parse::<IpAddr>().unwrap());
        assert_eq!(cam.scope_id, 0);
        assert_eq!(
            cam.xaddrs,
            [
                "http://10.0.0.60:80/onvif/device_service",
                "https://10.0.0.60:443/onvif/device_service",
                "http://[fe80::1c2:3ff:fe04:506%253]/onvif/device_service",
            ]
        );
        assert_eq!(cam.scopes.len(), 5);
        assert_eq!(list[1].address, "10.0.0.61".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn is_bounded() {
        let mut d = Devices::default();
        for i in 0..MAX_DEVICES + 10 {
            let xml = HIKVISION_LIKE.replace(
                "urn:uuid:4d454930-3031-1040-8000-bcbac2a5ed3c",
                &format!("urn:uuid:{i}"),
            );
            for f in parse_probe_matches(xml.as_bytes(), from(CAM), 0) {
                d.add(f);
            }
        }
        assert_eq!(d.finish().len(), MAX_DEVICES);
        let many: String = (0..100).map(|i| format!("http://h{i}/ ")).collect();
        let xml = HIKVISION_LIKE.replace(
            "http://10.0.0.60:80/onvif/device_service https://10.0.0.60:443/onvif/device_service",
            &many,
        );
        let f = &parse_probe_matches(xml.as_bytes(), from(CAM), 0)[0];
        assert_eq!(f.xaddrs.len(), MAX_LIST);
    }

    #[test]
    fn a_reply_without_endpoint_is_keyed_by_its_xaddr() {
        let xml = HIKVISION_LIKE.replace(
            "<wsa:EndpointReference><wsa:Address>urn:uuid:4d454930-3031-1040-8000-bcbac2a5ed3c</wsa:Address></wsa:EndpointReference>",
            "",
        );
        let f = &parse_probe_matches(xml.as_bytes(), from(CAM), 0)[0];
        assert_eq!(f.endpoint, "http://10.0.0.60:80/onvif/device_service");
    }

    #[test]
    fn xaddr_repairs() {
        let s: IpAddr = "192.168.1.9".parse().unwrap();
        let fix = |raw| fix_xaddr(raw, s, 0, 0);
        assert_eq!(
            fix("HTTP://0.0.0.0").as_deref(),
            Some("http://192.168.1.9/")
        );
        assert_eq!(
            fix("http://[::]:2020/onvif/device_service").as_deref(),
            Some("http://192.168.1.9:2020/onvif/device_service")
        );
        assert_eq!(
            fix("http://u:p@0.0.0.0:80?x").as_deref(),
            Some("http://u:p@192.168.1.9:80?x")
        );
        assert_eq!(
            fix("http://cam.local:8000/x").as_deref(),
            Some("http://cam.local:8000/x")
        );
        assert_eq!(fix("soap.udp://192.168.1.9:3702"), None);
        assert_eq!(fix("Kong"), None);
        assert_eq!(fix("http://[fe80::1/x"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("Test%20Cam"), "Test Cam");
        assert_eq!(percent_decode("K%C3%B6ln"), "Köln");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz%41"), "a%zzA");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn the_probes_are_well_formed_and_distinct() {
        let a = new_message_id();
        let b = new_message_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), "urn:uuid:".len() + 36);
        assert_eq!(a.as_bytes()["urn:uuid:".len() + 14], b'4');
        for (t, types) in ProbeType::ALL.iter().zip([
            Some("dn:NetworkVideoTransmitter"),
            Some("tds:Device"),
            None,
        ]) {
            let xml = probe_message(*t, &a);
            let doc = roxmltree::Document::parse(&xml).unwrap();
            let find = |name: &str| doc.descendants().find(|n| n.tag_name().name() == name);
            assert_eq!(find("MessageID").unwrap().text(), Some(a.as_str()));
            assert!(find("Action").unwrap().text().unwrap().ends_with("/Probe"));
            let t = find("Types").unwrap();
            assert_eq!(t.text(), types);
            if let Some(qname) = types {
                // The QName's prefix resolves on the Envelope.
                let prefix = qname.split(':').next();
                assert!(t.lookup_namespace_uri(prefix).is_some());
            }
        }
    }

    #[test]
    fn phone_apps() {
        let mut f = parse_probe_matches(HIKVISION_LIKE.as_bytes(), from(CAM), 0).remove(0);
        assert_eq!(f.kind(), "onvif");
        f.name = Some("IP Webcam".into());
        assert_eq!(f.kind(), "phone-app");
        f.name = None;
        f.scopes
            .push("onvif://www.onvif.org/hardware/Android".into());
        assert_eq!(f.kind(), "phone-app");
        // A phone app without ONVIF types or scopes still counts as found.
        let app = HIKVISION_LIKE
            .replace("dn:NetworkVideoTransmitter tds:Device", "")
            .replace(
                "onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming",
                "",
            )
            .replace("onvif://www.onvif.org/", "x://")
            .replace("Front%20Door", "IP%20Webcam");
        let found = parse_probe_matches(app.as_bytes(), from(CAM), 0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind(), "phone-app");
        assert_eq!(
            phone_app_url("192.168.1.7".parse().unwrap()),
            "http://192.168.1.7:8080/video"
        );
        assert_eq!(
            phone_app_url("2001:db8::7".parse().unwrap()),
            "http://[2001:db8::7]:8080/video"
        );
    }
}
