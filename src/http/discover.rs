//! Finding cameras for the "Add camera" page (issue #14), admin only:
//! - `GET /api/discover[?address=IP]`: ONVIF cameras and phone webcam apps that answer
//!   WS-Discovery on the box's interfaces (or one address, for cameras on another
//!   subnet), plus the other camhub boxes heard on mDNS with their streams. Each device
//!   says whether it is already added.
//! - `POST /api/onvif/streams` `{address, username, password}`: an ONVIF camera's profiles
//!   and RTSP URLs, with a suggested main and sub-stream.
//!
//! Discovery runs only when asked, for a few seconds, one run at a time: a request while
//! one runs waits for it, and a result is reused for [`REUSE_FOR`], so a page cannot make
//! the box flood the LAN. It is off with `[discovery] enabled = false`, and whenever mDNS
//! is off (`--no-mdns` means no multicast at all).

use super::Ctx;
use crate::wsdiscovery;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long WS-Discovery listens for answers.
pub const LISTEN_FOR: Duration = Duration::from_secs(3);
/// A discovery result younger than this is answered again instead of probing anew.
pub const REUSE_FOR: Duration = Duration::from_secs(10);
/// How long fetching another camhub's stream list may take.
const PEER_TIMEOUT: Duration = Duration::from_millis(1500);
/// Largest stream list read from another camhub.
const MAX_PEER_BODY: u64 = 256 * 1024;
/// How long the ONVIF calls may take together.
pub const ONVIF_DEADLINE: Duration = Duration::from_secs(10);

/// The last discovery run (one at a time, see the module header).
#[derive(Default)]
pub struct Discovery {
    last: smol::lock::Mutex<Option<(Instant, Option<IpAddr>, Value)>>,
}

/// `GET /api/discover`: the devices found, as JSON (`Err`: the reason discovery is off).
pub async fn discover(ctx: &Arc<Ctx>, address: Option<IpAddr>) -> Result<Value, String> {
    if !ctx.discovery_enabled {
        return Err(
            "discovery is off on this box ([discovery] enabled = false, or mDNS off)".into(),
        );
    }
    let mut last = ctx.discovery.last.lock().await;
    if let Some((at, addr, value)) = last.as_ref() {
        if *addr == address && at.elapsed() < REUSE_FOR {
            return Ok(value.clone());
        }
    }
    let started = Instant::now();
    let shutdown = ctx.shutdown.clone();
    let found = smol::unblock(move || match address {
        Some(addr) => wsdiscovery::probe_unicast(addr, LISTEN_FOR, &shutdown),
        None => wsdiscovery::probe(&wsdiscovery::interfaces(), LISTEN_FOR, &shutdown),
    })
    .await;
    let added_hosts: Vec<String> = ctx
        .streams
        .configs()
        .iter()
        .flat_map(|(_, c)| std::iter::once(c.url.clone()).chain(c.sub_url.clone()))
        .filter_map(|u| url::Url::parse(&u).ok()?.host_str().map(str::to_string))
        .collect();
    let is_added = |host: &str| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        added_hosts
            .iter()
            .any(|h| h.trim_start_matches('[').trim_end_matches(']') == host)
    };
    let mut devices: Vec<Value> = found
        .iter()
        .map(|f| {
            let host = f.address.to_string();
            let kind = f.kind();
            json!({
                "kind": kind,
                "name": f.name,
                "hardware": f.hardware,
                "address": host,
                "xaddr": f.xaddrs.first(),
                "url": (kind == "phone-app").then(|| wsdiscovery::phone_app_url(f.address)),
                "streams": [],
                "added": is_added(&host),
            })
        })
        .collect();
    // Other camhub boxes: their streams can be added as HTTP-MJPEG cameras.
    let peers = ctx.mdns.peers();
    let peer_devices = smol::unblock(move || {
        peers
            .into_iter()
            .map(|p| {
                let addr = p
                    .addresses
                    .iter()
                    .find_map(|a| a.parse::<IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, p.port));
                let base = p.url.trim_end_matches('/').to_string();
                let streams: Vec<Value> = addr
                    .map(peer_streams)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(id, name)| {
                        json!({"id": id, "name": name, "url": format!("{base}/stream/{id}")})
                    })
                    .collect();
                (p, streams)
            })
            .collect::<Vec<_>>()
    })
    .await;
    for (p, streams) in peer_devices {
        let address = p.addresses.first().cloned().unwrap_or_default();
        devices.push(json!({
            "kind": "camhub",
            "name": p.name,
            "hardware": p.version.map(|v| format!("camhub {v}")),
            "address": address,
            "xaddr": null,
            "url": p.url,
            "streams": streams,
            "added": is_added(&address) || is_added(&p.host),
        }));
    }
    let value = json!({
        "devices": devices,
        "duration_ms": started.elapsed().as_millis() as u64,
    });
    *last = Some((Instant::now(), address, value.clone()));
    Ok(value)
}

/// Another camhub's streams as (id, name), from its `/api/streams`; empty when it does
/// not answer in time. A plain bounded HTTP/1.0 GET: the box is on the LAN.
fn peer_streams(addr: SocketAddr) -> Vec<(String, String)> {
    let fetch = || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&addr, PEER_TIMEOUT)?;
        s.set_read_timeout(Some(PEER_TIMEOUT))?;
        s.set_write_timeout(Some(PEER_TIMEOUT))?;
        write!(s, "GET /api/streams HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut body = Vec::new();
        s.take(MAX_PEER_BODY).read_to_end(&mut body)?;
        Ok(body)
    };
    let Ok(raw) = fetch() else { return Vec::new() };
    let Some(start) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Vec::new();
    };
    let streams: Vec<Value> = serde_json::from_slice(&raw[start + 4..]).unwrap_or_default();
    streams
        .iter()
        .filter_map(|s| {
            let id = s["id"].as_str()?.to_string();
            let name = s["name"].as_str().unwrap_or(&id).to_string();
            Some((id, name))
        })
        .take(64)
        .collect()
}
