#!/usr/bin/python3
"""mDNS browser peer for tests/mdns.rs (python3-zeroconf, Debian's).

Runs inside a test's network namespace, never on a real interface. Browses the given
service types and prints one JSON object per line on stdout (flushed at once):

  {"event": "ready"}
  {"event": "added"|"updated", "type": T, "name": N, "server": S, "port": P,
   "addresses": [...], "txt": {...}, "t": seconds since start}
  {"event": "removed", "type": T, "name": N, "t": ...}
  {"event": "resolved", "host": H, "addresses": [...], "t": ...}   (with --resolve)

--resolve HOST asks for HOST's A record the way a plain resolver does (a one-shot
"legacy unicast" query from an ephemeral port, RFC 6762 §6.7), every 0.5 s until an
answer arrives: this checks that camhub itself answers for <name>.local.

Runs until killed or until stdin closes.
"""

import argparse
import json
import queue
import socket
import sys
import threading
import time

from zeroconf import (
    DNSIncoming,
    DNSOutgoing,
    DNSQuestion,
    IPVersion,
    ServiceBrowser,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.const import _CLASS_IN, _FLAGS_QR_QUERY, _TYPE_A

START = time.monotonic()
OUT_LOCK = threading.Lock()


def emit(obj):
    obj["t"] = round(time.monotonic() - START, 3)
    with OUT_LOCK:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def txt_of(info):
    txt = {}
    for k, v in (info.properties or {}).items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        txt[key] = v.decode() if isinstance(v, bytes) else v
    return txt


def resolver(zc, jobs):
    """Resolves services outside the browser's callback (which must not block)."""
    while True:
        type_, name, kind = jobs.get()
        info = zc.get_service_info(type_, name, timeout=3000)
        if info is None:
            emit({"event": "unresolved", "type": type_, "name": name})
            continue
        emit(
            {
                "event": kind,
                "type": type_,
                "name": name,
                "server": info.server,
                "port": info.port,
                "addresses": info.parsed_addresses(),
                "txt": txt_of(info),
            }
        )


def legacy_resolve(host, bind_addr):
    """One-shot A query from an ephemeral port; returns the addresses answered."""
    out = DNSOutgoing(_FLAGS_QR_QUERY, multicast=True, id_=0x4242)
    out.add_question(DNSQuestion(host, _TYPE_A, _CLASS_IN))
    packet = out.packets()[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((bind_addr, 0))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind_addr))
        s.settimeout(0.5)
        s.sendto(packet, ("224.0.0.251", 5353))
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(9000)
            except socket.timeout:
                break
            msg = DNSIncoming(data)
            answers = msg.answers() if callable(msg.answers) else msg.answers
            found = sorted(
                {
                    socket.inet_ntoa(a.address)
                    for a in answers
                    if a.type == _TYPE_A and a.name.lower() == host.lower()
                }
            )
            if found:
                return found
    return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("types", nargs="+", help="e.g. _http._tcp.local.")
    ap.add_argument("--resolve", help="host name to resolve, e.g. box.local.")
    ap.add_argument("--bind", default="0.0.0.0", help="local IPv4 for --resolve queries")
    args = ap.parse_args()

    zc = Zeroconf(ip_version=IPVersion.V4Only)
    jobs = queue.Queue()
    threading.Thread(target=resolver, args=(zc, jobs), daemon=True).start()

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Removed:
            emit({"event": "removed", "type": service_type, "name": name})
        elif state_change is ServiceStateChange.Added:
            jobs.put((service_type, name, "added"))
        elif state_change is ServiceStateChange.Updated:
            jobs.put((service_type, name, "updated"))

    ServiceBrowser(zc, args.types, handlers=[on_change])
    emit({"event": "ready"})

    if args.resolve:

        def resolve_loop():
            while True:
                try:
                    found = legacy_resolve(args.resolve, args.bind)
                except OSError as e:
                    emit({"event": "error", "msg": f"resolve: {e}"})
                    found = []
                if found:
                    emit({"event": "resolved", "host": args.resolve, "addresses": found})
                    return
                time.sleep(0.5)

        threading.Thread(target=resolve_loop, daemon=True).start()

    # Until the test closes our stdin (or kills us).
    sys.stdin.read()
    zc.close()


if __name__ == "__main__":
    main()
