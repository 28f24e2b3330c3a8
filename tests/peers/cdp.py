#!/usr/bin/python3
"""A DevTools-protocol bridge for tests/browser.rs: stdin/stdout <-> one Chromium page.

Usage: cdp.py PROFILE_DIR

Waits for Chromium (started by the test with --remote-debugging-port=0 and
--user-data-dir=PROFILE_DIR) to write PROFILE_DIR/DevToolsActivePort, attaches to its
first page over the DevTools websocket (127.0.0.1 only), then answers one JSON command
per stdin line, {"method": "...", "params": {...}}, with one JSON line on stdout:
{"result": {...}} or {"error": "..."}. Every wait is bounded, so a wedged browser ends
the bridge (and fails the test) instead of hanging it.

Events are dropped, but for the methods a test asks for with the bridge's own command
{"method": "bridge.events", "params": {"method": "Network.requestWillBeSent"}}: it
answers {"result": {"events": [params, ...]}} with that method's events received since
the previous such call (the first call starts keeping them), oldest first, at most
MAX_KEPT_EVENTS. The domain must be enabled (e.g. Network.enable) for any to arrive.
"""

import json
import os
import sys
import time
import urllib.request

import websocket  # python3-websocket

START_TIMEOUT_SECS = 30
CALL_TIMEOUT_SECS = 30
MAX_KEPT_EVENTS = 1000


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def devtools_port(profile):
    path = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                first = f.readline().strip()
            if first:
                return int(first)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no {path} after {START_TIMEOUT_SECS} s: did chromium start?")


def page_websocket(port):
    # No proxies: the DevTools endpoint is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while time.monotonic() < deadline:
        with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        pages = [t for t in targets if t.get("type") == "page"]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.1)
    raise RuntimeError("chromium has no page target")


def main():
    profile = sys.argv[1]
    try:
        url = page_websocket(devtools_port(profile))
        ws = websocket.create_connection(
            url, timeout=CALL_TIMEOUT_SECS, suppress_origin=True, http_no_proxy=["127.0.0.1"]
        )
    except Exception as e:  # reported to the test, which fails with it
        reply({"error": f"cannot attach to chromium: {e}"})
        return 1
    reply({"result": {"attached": url}})
    next_id = 0
    kept = {}  # event method -> params of the events received since it was last asked for

    def call(method, params):
        """Sends one command; returns its message, or None when it timed out."""
        nonlocal next_id
        next_id += 1
        ws.send(json.dumps({"id": next_id, "method": method, "params": params}))
        deadline = time.monotonic() + CALL_TIMEOUT_SECS
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("id") == next_id:
                return msg
            events = kept.get(msg.get("method"))
            if events is not None and len(events) < MAX_KEPT_EVENTS:
                events.append(msg.get("params", {}))
        return None

    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        method, params = cmd["method"], cmd.get("params", {})
        if method == "bridge.events":
            # A round trip first, so that events sent before now have been read.
            msg = call("Runtime.evaluate", {"expression": "0"})
            if msg is not None:
                events = kept.get(params["method"], [])
                kept[params["method"]] = []
                msg = {"result": {"events": events}}
        else:
            msg = call(method, params)
        if msg is None:
            reply({"error": f"{method}: no answer in {CALL_TIMEOUT_SECS} s"})
            return 1
        if "error" in msg:
            reply({"error": f"{method}: {msg['error']}"})
        else:
            reply({"result": msg.get("result", {})})
    ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
