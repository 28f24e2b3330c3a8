//! mDNS: advertises this box on the LAN (`http://<name>.local:<port>/` as `_http._tcp`,
//! plus `_camhub._tcp` so boxes find each other) and keeps the list of the other camhub
//! boxes it hears of ([`Peers`], served at `/api/peers`).
//!
//! The responder is mdns-sd's daemon thread. It answers for `<name>.local` itself, so the
//! name resolves even where no avahi-daemon runs, and coexists with avahi on Pi OS (both
//! bind UDP 5353 with address reuse; avahi answers for the system host name, camhub for
//! its own). What mdns-sd 0.21 does for us, so this module does not:
//! - probing and conflict resolution (RFC 6762 §8–9): a taken `<name>.local` becomes
//!   `<name>-2.local`, a taken instance `<name>` becomes `<name> (2)`; reported as
//!   `DaemonEvent::NameChange`, which we log and expose as [`Mdns::name_in_use`];
//! - address changes (DHCP, Wi-Fi reconnect): it re-reads the interfaces every 5 s
//!   and re-announces `addr_auto` services on new addresses, withdrawing removed ones;
//! - goodbyes: `unregister` sends TTL-0 records (and repeats them once 120 ms later).
//!
//! This module adds one thread, `mdns`, which re-announces the TXT record when the
//! number of live streams changes, follows name changes and keeps [`Peers`] up to date.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::shutdown::Shutdown;
use mdns_sd::{
    DaemonEvent, IfKind, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo,
    TryRecvError,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The service type browsers and phones look for ("Bonjour browser" apps, `avahi-browse`).
pub const HTTP_SERVICE: &str = "_http._tcp.local.";
/// The service type camhub boxes use to find each other.
pub const CAMHUB_SERVICE: &str = "_camhub._tcp.local.";

/// How often the `mdns` thread drains daemon events (peers, name changes).
const TICK: Duration = Duration::from_millis(250);
/// How often the live-stream count is compared with the advertised TXT record.
const TXT_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// No TXT re-announcement before the first probe (3 × 250 ms, plus up to 250 ms jitter)
/// is over: re-registrations skip probing, so they must not race the first one.
const PROBE_SETTLE: Duration = Duration::from_millis(1500);
/// Upper bound for [`Mdns::stop`]: goodbyes, their one repeat, daemon exit. Well inside
/// the 2 s shutdown budget.
const STOP_BUDGET: Duration = Duration::from_millis(700);
/// mdns-sd repeats a goodbye once, 120 ms after the first; wait for that before exiting.
const GOODBYE_REPEAT_WAIT: Duration = Duration::from_millis(200);

/// Another camhub box heard on the LAN (from its `_camhub._tcp` advertisement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// Instance name, e.g. `kitchen` (or `kitchen (2)` after a name conflict).
    pub name: String,
    /// Its mDNS host name without the trailing dot, e.g. `kitchen.local`.
    pub host: String,
    /// Every address it announced, IPv4 first; IPv6 link-local ones carry `%<interface>`.
    pub addresses: Vec<String>,
    pub port: u16,
    /// Where to open it: `http://<best address>:<port>/` (IPv4 preferred).
    pub url: String,
    /// From its TXT record, when present.
    pub version: Option<String>,
    pub streams: Option<u32>,
    pub live: Option<u32>,
}

/// The other boxes, kept current by the `mdns` thread (removed on goodbye or TTL expiry).
/// Shared with the HTTP server; a read is one short lock and a clone of a small list.
#[derive(Default)]
pub struct Peers {
    /// Keyed by the service instance's full name (unique on the LAN).
    by_fullname: Mutex<BTreeMap<String, Peer>>,
}

impl Peers {
    /// The current list, sorted by name.
    pub fn snapshot(&self) -> Vec<Peer> {
        let mut peers: Vec<Peer> = lock(&self.by_fullname).values().cloned().collect();
        peers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.url.cmp(&b.url)));
        peers
    }

    fn upsert(&self, fullname: &str, peer: Peer) {
        lock(&self.by_fullname).insert(fullname.to_ascii_lowercase(), peer);
    }

    fn remove(&self, fullname: &str) -> bool {
        lock(&self.by_fullname)
            .remove(&fullname.to_ascii_lowercase())
            .is_some()
    }

    fn clear(&self) {
        lock(&self.by_fullname).clear();
    }
}

/// What this box advertises, for the TXT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    streams: usize,
    live: usize,
}

impl Counts {
    fn of(hub: &Hub) -> Counts {
        Counts {
            streams: hub.streams().len(),
            live: hub.streams().iter().filter(|s| s.is_live()).count(),
        }
    }
}

/// Everything needed to (re-)register our two services.
#[derive(Debug, Clone)]
struct Advert {
    /// Configured name: instance name and host label.
    name: String,
    port: u16,
    /// Random per run: tells our own `_camhub._tcp` record apart from other boxes', even
    /// when a name conflict renamed it.
    id: String,
}

impl Advert {
    fn host(&self) -> String {
        format!("{}.local.", self.name)
    }

    fn txt(&self, counts: Counts) -> Vec<(&'static str, String)> {
        vec![
            ("path", "/".to_string()),
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("streams", counts.streams.to_string()),
            ("live", counts.live.to_string()),
        ]
    }

    /// The `_http._tcp` and `_camhub._tcp` service infos. `first` registrations probe for
    /// conflicts; later ones (TXT updates) keep the names the probe settled on.
    fn services(&self, counts: Counts, first: bool) -> Result<[ServiceInfo; 2]> {
        let txt = self.txt(counts);
        let mut camhub_txt = txt.clone();
        camhub_txt.push(("id", self.id.clone()));
        let make = |ty: &str, props: &[(&'static str, String)]| {
            let mut info = ServiceInfo::new(ty, &self.name, &self.host(), (), self.port, props)
                .map_err(|e| mdns_err(format!("building the {ty} advertisement"), e))?
                .enable_addr_auto();
            info.set_requires_probe(first);
            Ok(info)
        };
        Ok([
            make(HTTP_SERVICE, &txt)?,
            make(CAMHUB_SERVICE, &camhub_txt)?,
        ])
    }
}

/// Names currently in use, updated from the daemon's conflict resolution.
struct Names {
    /// Host label actually answered for (`camhub` or, after a conflict, `camhub-2`).
    host: Mutex<String>,
}

/// What the HTTP server shows of mDNS: the name in use (which a conflict can change at
/// any time) and the other boxes found. Cheap to clone.
#[derive(Clone)]
pub struct MdnsInfo {
    enabled: bool,
    names: Arc<Names>,
    peers: Arc<Peers>,
}

impl MdnsInfo {
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Host label actually answered for, e.g. `camhub-2` after a conflict.
    pub fn name_in_use(&self) -> String {
        lock(&self.names.host).clone()
    }

    pub fn peers(&self) -> Vec<Peer> {
        self.peers.snapshot()
    }
}

/// A running mDNS responder and browser, or a disabled stand-in (see [`start`]).
pub struct Mdns {
    /// None when mDNS is disabled.
    running: Option<Running>,
    names: Arc<Names>,
    peers: Arc<Peers>,
}

struct Running {
    daemon: ServiceDaemon,
    /// Full names of our two services, for the goodbyes.
    fullnames: Vec<String>,
    /// Stops the `mdns` thread (also stops on the global shutdown).
    stop: Shutdown,
    thread: Option<JoinHandle<()>>,
}

/// Starts advertising `http://<config.name>.local:<http_port>/` and browsing for other
/// boxes. Call it after the HTTP listener is bound (with its real port).
///
/// With `config.mdns_enabled == false` (`--no-mdns`, `[mdns] enabled = false`) this
/// starts nothing and returns a disabled handle: no socket, no thread, no packets;
/// [`Mdns::peers`] stays empty and [`Mdns::name_in_use`] is the configured name.
///
/// Interfaces: every non-loopback interface, or only `config.mdns_interfaces` when set
/// (names may appear later, e.g. `wlan0` after the driver loads; they are used then).
pub fn start(config: &Config, http_port: u16, hub: Arc<Hub>, shutdown: Shutdown) -> Result<Mdns> {
    if !config.mdns_enabled {
        tracing::info!("mDNS disabled");
        return Ok(Mdns::disabled(config));
    }
    let mut mdns = Mdns::disabled(config);

    let advert = Advert {
        name: config.name.clone(),
        port: http_port,
        id: random_id(),
    };
    let daemon =
        ServiceDaemon::new().map_err(|e| mdns_err("starting the mDNS responder".into(), e))?;
    // From here on, a failure must stop the daemon thread again.
    let mut running = Running {
        daemon,
        fullnames: Vec::new(),
        stop: Shutdown::new(),
        thread: None,
    };
    let result = (|| -> Result<()> {
        let daemon = &running.daemon;
        let monitor = daemon
            .monitor()
            .map_err(|e| mdns_err("monitoring the mDNS responder".into(), e))?;
        select_interfaces(daemon, &config.mdns_interfaces)?;
        let counts = Counts::of(&hub);
        for info in advert.services(counts, true)? {
            running.fullnames.push(info.get_fullname().to_string());
            let ty = info.get_type().to_string();
            daemon
                .register(info)
                .map_err(|e| mdns_err(format!("advertising {ty}"), e))?;
        }
        let browse = daemon
            .browse(CAMHUB_SERVICE)
            .map_err(|e| mdns_err(format!("browsing for {CAMHUB_SERVICE}"), e))?;

        let worker = Worker {
            daemon: daemon.clone(),
            advert: advert.clone(),
            hub,
            names: mdns.names.clone(),
            peers: mdns.peers.clone(),
            monitor,
            browse,
            advertised: counts,
            registered_at: Instant::now(),
            renames: HashSet::new(),
        };
        let stop = running.stop.clone();
        let thread = std::thread::Builder::new()
            .name("mdns".into())
            .spawn(move || worker.run(&stop, &shutdown))
            .map_err(|e| Error::io("spawning the mdns thread", e))?;
        running.thread = Some(thread);
        Ok(())
    })();
    if let Err(e) = result {
        running.stop(Instant::now() + STOP_BUDGET);
        return Err(e);
    }

    tracing::info!(
        url = %format!("http://{}.local:{http_port}/", config.name),
        interfaces = %if config.mdns_interfaces.is_empty() {
            "all but loopback".to_string()
        } else {
            config.mdns_interfaces.join(",")
        },
        "mDNS: advertising {HTTP_SERVICE} and {CAMHUB_SERVICE}"
    );
    mdns.running = Some(running);
    Ok(mdns)
}

impl Mdns {
    /// A handle that advertises nothing: what [`start`] returns when mDNS is off, and
    /// what the caller can fall back to when [`start`] fails (serving stays up).
    pub fn disabled(config: &Config) -> Mdns {
        Mdns {
            running: None,
            names: Arc::new(Names {
                host: Mutex::new(config.name.clone()),
            }),
            peers: Arc::new(Peers::default()),
        }
    }

    /// False for the handle [`start`] returns when mDNS is disabled.
    pub fn is_enabled(&self) -> bool {
        self.running.is_some()
    }

    /// A live view for the HTTP server (`/api/peers`, `/api/info`).
    pub fn info(&self) -> MdnsInfo {
        MdnsInfo {
            enabled: self.is_enabled(),
            names: self.names.clone(),
            peers: self.peers.clone(),
        }
    }

    /// The other camhub boxes on the LAN, for `/api/peers`. Cheap to clone and read.
    pub fn peers(&self) -> Arc<Peers> {
        self.peers.clone()
    }

    /// The host label actually answered for: the configured name, or `<name>-N` when
    /// another host already had `<name>.local` (mDNS conflict resolution). The box is
    /// reachable at `http://<name_in_use>.local:<port>/`.
    pub fn name_in_use(&self) -> String {
        lock(&self.names.host).clone()
    }

    /// Sends goodbyes (so browsers drop this box at once instead of after the TTL) and
    /// stops the responder. Bounded: returns within ~0.7 s whatever the network does.
    pub fn stop(mut self) {
        if let Some(mut running) = self.running.take() {
            running.stop(Instant::now() + STOP_BUDGET);
        }
    }
}

impl Drop for Mdns {
    /// An `Mdns` dropped without [`Mdns::stop`] (an error path) still says goodbye.
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.stop(Instant::now() + STOP_BUDGET);
        }
    }
}

impl Running {
    /// Goodbyes, then daemon exit, giving up at `deadline`.
    fn stop(&mut self, deadline: Instant) {
        self.stop.trigger();
        if let Some(thread) = self.thread.take() {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!("mdns thread did not stop in time");
            }
        }
        let mut sent = false;
        let pending: Vec<_> = self
            .fullnames
            .iter()
            .filter_map(|name| self.daemon.unregister(name).ok())
            .collect();
        for status in pending {
            sent |= status.recv_deadline(deadline).is_ok();
        }
        if sent {
            let repeat = (Instant::now() + GOODBYE_REPEAT_WAIT).min(deadline);
            std::thread::sleep(repeat.saturating_duration_since(Instant::now()));
        }
        match self.daemon.shutdown() {
            Ok(status) => {
                if status.recv_deadline(deadline).is_err() {
                    tracing::warn!("mDNS responder did not stop in time");
                }
            }
            Err(mdns_sd::Error::DaemonShutdown) => {}
            Err(e) => tracing::warn!("stopping the mDNS responder: {e}"),
        }
        tracing::debug!(goodbyes = sent, "mDNS stopped");
    }
}

/// Default: every interface but loopback. With a list: only those interfaces.
fn select_interfaces(daemon: &ServiceDaemon, names: &[String]) -> Result<()> {
    let result = if names.is_empty() {
        daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])
    } else {
        for name in names {
            if !std::path::Path::new("/sys/class/net").join(name).exists() {
                tracing::warn!(
                    interface = %name,
                    "mDNS: no such interface (yet); it is used once it appears"
                );
            }
        }
        daemon.disable_interface(IfKind::All).and_then(|()| {
            daemon.enable_interface(names.iter().map(IfKind::from).collect::<Vec<_>>())
        })
    };
    result.map_err(|e| mdns_err("choosing mDNS interfaces".into(), e))
}

/// The `mdns` thread's state.
struct Worker {
    daemon: ServiceDaemon,
    advert: Advert,
    hub: Arc<Hub>,
    names: Arc<Names>,
    peers: Arc<Peers>,
    monitor: mdns_sd::Receiver<DaemonEvent>,
    browse: mdns_sd::Receiver<ServiceEvent>,
    /// The counts in the TXT records last registered.
    advertised: Counts,
    registered_at: Instant,
    /// (original, new) names already logged.
    renames: HashSet<(String, String)>,
}

impl Worker {
    fn run(mut self, stop: &Shutdown, shutdown: &Shutdown) {
        let mut next_txt_check = Instant::now() + TXT_CHECK_INTERVAL;
        while !stop.sleep(TICK) && !shutdown.is_triggered() {
            self.drain_monitor();
            self.drain_browse();
            if Instant::now() >= next_txt_check {
                next_txt_check = Instant::now() + TXT_CHECK_INTERVAL;
                if let Err(e) = self.update_txt() {
                    tracing::warn!("mDNS: {e}");
                }
            }
        }
    }

    /// Re-registers (re-announces) both services when the live count changed.
    fn update_txt(&mut self) -> Result<()> {
        let counts = Counts::of(&self.hub);
        if counts == self.advertised || self.registered_at.elapsed() < PROBE_SETTLE {
            return Ok(());
        }
        for info in self.advert.services(counts, false)? {
            self.daemon
                .register(info)
                .map_err(|e| mdns_err("updating the TXT record".into(), e))?;
        }
        tracing::debug!(
            streams = counts.streams,
            live = counts.live,
            "mDNS: TXT updated"
        );
        self.advertised = counts;
        Ok(())
    }

    fn drain_monitor(&mut self) {
        while let Ok(event) = self.monitor.try_recv() {
            match event {
                DaemonEvent::NameChange(change) => {
                    // One event per record (A and AAAA, SRV and TXT): log each rename once.
                    let key = (change.original.clone(), change.new_name.clone());
                    if self.renames.insert(key) {
                        tracing::warn!(
                            interface = %change.intf_name,
                            "mDNS name conflict: {} is taken, using {}",
                            change.original.trim_end_matches('.'),
                            change.new_name.trim_end_matches('.')
                        );
                    }
                    if let Some(label) = host_label(&change.new_name) {
                        if change.original.eq_ignore_ascii_case(&self.advert.host()) {
                            *lock(&self.names.host) = label.to_string();
                        }
                    }
                }
                DaemonEvent::Error(e) => tracing::warn!("mDNS responder: {e}"),
                DaemonEvent::IpAdd(ip) => tracing::debug!(%ip, "mDNS: address added"),
                DaemonEvent::IpDel(ip) => tracing::debug!(%ip, "mDNS: address removed"),
                _ => {}
            }
        }
    }

    fn drain_browse(&mut self) {
        loop {
            match self.browse.try_recv() {
                Ok(ServiceEvent::ServiceResolved(service)) => {
                    if !service.is_valid() || is_own(&service, &self.advert.id) {
                        continue;
                    }
                    let peer = Peer::from_resolved(&service);
                    tracing::debug!(name = %peer.name, url = %peer.url, "mDNS: peer");
                    self.peers.upsert(&service.fullname, peer);
                }
                Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                    if self.peers.remove(&fullname) {
                        tracing::debug!(%fullname, "mDNS: peer gone");
                    }
                }
                Ok(_) => {}
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    // mdns-sd ends a subscription whose channel overflowed: start over.
                    self.peers.clear();
                    match self.daemon.browse(CAMHUB_SERVICE) {
                        Ok(browse) => self.browse = browse,
                        Err(e) => tracing::warn!("mDNS: browsing again: {e}"),
                    }
                    return;
                }
            }
        }
    }
}

impl Peer {
    fn from_resolved(service: &ResolvedService) -> Peer {
        let mut addrs: Vec<&ScopedIp> = service.addresses.iter().collect();
        addrs.sort_by_key(|a| (address_rank(&a.to_ip_addr()), a.to_ip_addr()));
        let url = match addrs.first() {
            Some(best) => url_for(best, service.port),
            None => String::new(),
        };
        let txt = |key: &str| service.get_property_val_str(key).map(str::to_string);
        Peer {
            name: instance_name(&service.fullname, &service.ty_domain),
            host: service.host.trim_end_matches('.').to_string(),
            addresses: addrs.iter().map(|a| a.to_string()).collect(),
            port: service.port,
            url,
            version: txt("version"),
            streams: txt("streams").and_then(|s| s.parse().ok()),
            live: txt("live").and_then(|s| s.parse().ok()),
        }
    }
}

/// Is this our own `_camhub._tcp` record (heard back through multicast loop)?
fn is_own(service: &ResolvedService, own_id: &str) -> bool {
    service.get_property_val_str("id") == Some(own_id)
}

/// Lower is better for a URL: routable IPv4, link-local IPv4, global IPv6, link-local IPv6.
fn address_rank(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(v4) if v4.is_link_local() => 1,
        IpAddr::V4(_) => 0,
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => 3,
        IpAddr::V6(_) => 2,
    }
}

/// `http://<addr>:<port>/`, with IPv6 in brackets and a zone written as `%25<zone>`.
fn url_for(addr: &ScopedIp, port: u16) -> String {
    match addr.to_ip_addr() {
        IpAddr::V4(v4) => format!("http://{v4}:{port}/"),
        IpAddr::V6(_) => {
            let shown = addr.to_string().replacen('%', "%25", 1);
            format!("http://[{shown}]:{port}/")
        }
    }
}

/// `kitchen (2)._camhub._tcp.local.` → `kitchen (2)`, undoing mdns-sd's `\.` and `\\`.
fn instance_name(fullname: &str, ty_domain: &str) -> String {
    let escaped = fullname
        .strip_suffix(ty_domain)
        .and_then(|s| s.strip_suffix('.'))
        .unwrap_or(fullname);
    let mut name = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            c => name.push(c),
        }
    }
    name
}

/// `camhub-2.local.` → `camhub-2`; None for anything that is not a `.local` host name.
fn host_label(name: &str) -> Option<&str> {
    let label = name
        .strip_suffix(".local.")
        .or_else(|| name.strip_suffix(".local"))?;
    (!label.is_empty() && !label.contains('.')).then_some(label)
}

/// 16 hex digits, different for every run (the kernel's random UUID, or time and pid).
fn random_id() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/random/uuid") {
        Ok(uuid) => uuid.trim().replace('-', "")[..16].to_string(),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            format!("{:016x}", nanos ^ (u64::from(std::process::id()) << 40))
        }
    }
}

fn mdns_err(context: String, e: mdns_sd::Error) -> Error {
    Error::io(context, std::io::Error::other(e))
}

/// Locks a mutex, ignoring poisoning: the critical sections only swap plain values.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    //! Pure logic only: nothing here opens an mDNS socket on the host's interfaces (the
    //! real responder is tested in tests/mdns.rs, inside network namespaces).
    use super::*;
    use crate::config::StreamConfig;

    fn resolved(ty: &str, name: &str, addrs: &[&str], props: &[(&str, &str)]) -> ResolvedService {
        let addrs: Vec<IpAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
        ServiceInfo::new(ty, name, "kitchen.local.", &addrs[..], 8080, props)
            .unwrap()
            .as_resolved_service()
    }

    #[test]
    fn peer_prefers_ipv4_and_reads_txt() {
        let s = resolved(
            CAMHUB_SERVICE,
            "kitchen",
            &["fe80::1", "2001:db8::5", "169.254.3.4", "192.168.1.20"],
            &[("version", "0.1.0"), ("streams", "3"), ("live", "2")],
        );
        let p = Peer::from_resolved(&s);
        assert_eq!(p.name, "kitchen");
        assert_eq!(p.host, "kitchen.local");
        assert_eq!(p.port, 8080);
        assert_eq!(p.url, "http://192.168.1.20:8080/");
        assert_eq!(p.addresses[0], "192.168.1.20");
        assert_eq!(p.addresses[1], "169.254.3.4");
        assert_eq!(p.addresses[2], "2001:db8::5");
        assert_eq!(p.version.as_deref(), Some("0.1.0"));
        assert_eq!((p.streams, p.live), (Some(3), Some(2)));
    }

    #[test]
    fn ipv6_only_peer_gets_a_bracketed_url() {
        let s = resolved(CAMHUB_SERVICE, "k", &["2001:db8::5"], &[]);
        let p = Peer::from_resolved(&s);
        assert_eq!(p.url, "http://[2001:db8::5]:8080/");
        assert_eq!((p.version, p.streams), (None, None));
    }

    #[test]
    fn instance_names_are_unescaped() {
        assert_eq!(
            instance_name("kitchen (2)._camhub._tcp.local.", CAMHUB_SERVICE),
            "kitchen (2)"
        );
        assert_eq!(
            instance_name(r"a\.b\\c._http._tcp.local.", HTTP_SERVICE),
            r"a.b\c"
        );
        assert_eq!(instance_name("odd", HTTP_SERVICE), "odd");
    }

    #[test]
    fn host_labels() {
        assert_eq!(host_label("camhub-2.local."), Some("camhub-2"));
        assert_eq!(host_label("camhub.local"), Some("camhub"));
        assert_eq!(host_label("camhub (2)._http._tcp.local."), None);
        assert_eq!(host_label(".local."), None);
    }

    #[test]
    fn own_record_is_recognised_by_id() {
        let s = resolved(CAMHUB_SERVICE, "me", &["10.0.0.1"], &[("id", "abc")]);
        assert!(is_own(&s, "abc"));
        assert!(!is_own(&s, "abd"));
    }

    #[test]
    fn peers_snapshot_is_sorted_and_goodbye_removes() {
        let peers = Peers::default();
        let b = Peer::from_resolved(&resolved(CAMHUB_SERVICE, "b", &["10.0.0.2"], &[]));
        let a = Peer::from_resolved(&resolved(CAMHUB_SERVICE, "a", &["10.0.0.1"], &[]));
        peers.upsert("b._camhub._tcp.local.", b);
        peers.upsert("a._camhub._tcp.local.", a.clone());
        let names: Vec<_> = peers.snapshot().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["a", "b"]);
        // Names are case-insensitive in DNS.
        assert!(peers.remove("B._camhub._tcp.local."));
        assert_eq!(peers.snapshot(), vec![a]);
        assert!(!peers.remove("b._camhub._tcp.local."));
    }

    #[test]
    fn adverts_carry_txt_and_the_id_only_on_camhub() {
        let advert = Advert {
            name: "box".into(),
            port: 8080,
            id: random_id(),
        };
        assert_eq!(advert.id.len(), 16);
        let counts = Counts {
            streams: 3,
            live: 1,
        };
        let [http, camhub] = advert.services(counts, true).unwrap();
        assert_eq!(http.get_fullname(), "box._http._tcp.local.");
        assert_eq!(camhub.get_fullname(), "box._camhub._tcp.local.");
        assert_eq!(http.get_hostname(), "box.local.");
        assert_eq!(http.get_port(), 8080);
        assert!(http.is_addr_auto() && http.requires_probe());
        for (k, v) in [
            ("path", "/"),
            ("version", env!("CARGO_PKG_VERSION")),
            ("streams", "3"),
            ("live", "1"),
        ] {
            assert_eq!(http.get_property_val_str(k), Some(v), "{k}");
            assert_eq!(camhub.get_property_val_str(k), Some(v), "{k}");
        }
        assert_eq!(http.get_property_val_str("id"), None);
        assert_eq!(camhub.get_property_val_str("id"), Some(advert.id.as_str()));
        let [again, _] = advert.services(counts, false).unwrap();
        assert!(!again.requires_probe(), "TXT updates keep the probed names");
    }

    #[test]
    fn counts_follow_the_hub() {
        let hub = Hub::new(&[
            StreamConfig::new("a", "pattern:").unwrap(),
            StreamConfig::new("b", "pattern:").unwrap(),
        ]);
        assert_eq!(
            Counts::of(&hub),
            Counts {
                streams: 2,
                live: 0
            }
        );
    }

    #[test]
    fn disabled_handle_starts_nothing() {
        let mut config = Config::parse("", None).unwrap();
        config.mdns_enabled = false;
        let hub = Arc::new(Hub::new(&config.streams));
        let mdns = start(&config, 8080, hub, Shutdown::new()).unwrap();
        assert!(!mdns.is_enabled());
        assert_eq!(mdns.name_in_use(), "camhub");
        assert!(mdns.peers().snapshot().is_empty());
        mdns.stop();
    }
}
