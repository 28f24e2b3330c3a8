#!/usr/bin/python3
"""WS-Discovery device peer for tests/wsdiscovery.rs: an ONVIF-like camera published with
python WSDiscovery 2.1.2 (PyPI; scripts/deps.sh installs it under target/py-peers, which
the test puts on PYTHONPATH).

Runs inside a test's network namespace, never on a real interface. Publishes one service
with types dn:NetworkVideoTransmitter and tds:Device, the --scope and --xaddr values as
given (scopes stay percent-encoded, as cameras send them), and endpoint reference --uuid.
WSDiscovery answers Probes (typed ones by QName, untyped ones always) with unicast
ProbeMatches, sends Hello on start and Bye on exit. --computer UUID publishes a second,
non-camera responder (types wsdp:Device pub:Computer, as Samba's wsdd answers) that
camhub must ignore.

Prints {"event": "ready"} once published (flushed), then runs until stdin closes or
SIGTERM, and says Bye.
"""

import argparse
import json
import logging
import signal
import sys
import threading

from wsdiscovery import QName, Scope
from wsdiscovery.publishing import ThreadedWSPublishing

NS_NETWORK = "http://www.onvif.org/ver10/network/wsdl"
NS_DEVICE = "http://www.onvif.org/ver10/device/wsdl"
NS_DEVPROF = "http://schemas.xmlsoap.org/ws/2006/02/devprof"
NS_PUB = "http://schemas.microsoft.com/windows/pub/2005/07"


class Publisher(ThreadedWSPublishing):
    """WSDiscovery 2.1.2 hands every unicast reply to both its IPv4 and its IPv6 thread;
    the thread of the other family fails to send it (its socket cannot reach that kind of
    address) and, the exception being uncaught, dies. Send each reply on its own
    family's thread only."""

    def sendUnicastMessage(self, env, host, port, initialDelay=0, unicast_num=None):
        kwargs = {} if unicast_num is None else {"unicast_num": unicast_num}
        thread = self._networkingThread_v6 if ":" in host else self._networkingThread_v4
        if thread is not None:
            thread.addUnicastMessage(env, host, port, initialDelay, **kwargs)


def publisher(uuid, types, scopes, xaddrs):
    wsd = Publisher(uuid_=uuid)
    wsd.start()
    wsd.publishService(types=types, scopes=[Scope(s) for s in scopes], xAddrs=xaddrs)
    return wsd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uuid", required=True, help="endpoint reference, urn:uuid:...")
    ap.add_argument("--scope", action="append", default=[])
    ap.add_argument("--xaddr", action="append", default=[])
    ap.add_argument("--computer", help="endpoint reference of a non-camera responder")
    args = ap.parse_args()
    # WSDiscovery warns about every Hello it hears (its own included): errors only.
    logging.basicConfig(level=logging.ERROR)

    camera_types = [
        QName(NS_NETWORK, "NetworkVideoTransmitter", "dn"),
        QName(NS_DEVICE, "Device", "tds"),
    ]
    running = [publisher(args.uuid, camera_types, args.scope, args.xaddr)]
    if args.computer:
        computer_types = [QName(NS_DEVPROF, "Device", "wsdp"), QName(NS_PUB, "Computer", "pub")]
        running.append(publisher(args.computer, computer_types, [], []))

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print(json.dumps({"event": "ready"}), flush=True)
    done.wait()
    for wsd in running:
        wsd.clearLocalServices()
        wsd.stop()
    print(json.dumps({"event": "stopped"}), flush=True)


if __name__ == "__main__":
    main()
