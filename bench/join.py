#!/usr/bin/python3
"""Time to the first fresh frame when joining an idle H.264 camera (issue #12, instant
start), for two camhub binaries in the same run. Driven by bench/join.sh, which builds the
binaries; standard library only.

For each feed (size x keyframe interval) it starts one GStreamer RTSP server
(tests/peers/rtsp_server.py; every client gets its own pipeline, so each camhub's camera
has its own keyframe schedule) and one camhub per binary, lets the stream idle, then joins
each camhub in turn, --joins times, after a random idle gap (so the joins land at random
points of the GOP): open /stream/cam and read parts until one was captured after the join
(X-Timestamp >= join time) and is not marked stale or offline. Prints a Markdown table.

Gaps: "cold" (the default) idles each camhub 1-2 keyframe intervals between its joins,
so a keyframe always came after the last viewer left and instant start decodes from
that keyframe: the cost of joining a camera nobody watched. "A-B" (seconds) idles that
long: shorter gaps also measure a viewer coming back within the same GOP, where only the
frames since the last one left are decoded.
Loopback only; every process started here is stopped by PID at the end.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "tests", "peers", "rtsp_server.py")
FPS = 15


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process, its output lines collected by a thread; stopped by PID."""

    def __init__(self, args, env=None):
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_line(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = re.search(pattern, line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(self.lines[-20:])
                    raise RuntimeError(f"no {pattern!r} from {self.proc.args[0]}:\n{tail}")
                self.cond.wait(left)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Parts:
    """Reads a chunked multipart/x-mixed-replace response part by part."""

    def __init__(self, sock):
        self.sock = sock
        self.raw = b""  # undecoded bytes from the socket
        self.body = b""  # de-chunked body bytes
        self.chunk_left = 0

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.raw += data

    def head(self):
        while b"\r\n\r\n" not in self.raw:
            self._recv()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        return head.decode("latin-1")

    def _chunk_size(self):
        """Reads the next chunk-size line (after the CRLF that ends the last chunk)."""
        while True:
            i = self.raw.find(b"\r\n")
            if i == 0:
                self.raw = self.raw[2:]
                continue
            if i > 0:
                line, self.raw = self.raw[:i], self.raw[i + 2:]
                return int(line, 16)
            self._recv()

    def _fill(self, n):
        """Until the de-chunked body holds at least n bytes."""
        while len(self.body) < n:
            if self.chunk_left == 0:
                self.chunk_left = self._chunk_size()
                if self.chunk_left == 0:
                    raise EOFError("body ended")
            if not self.raw:
                self._recv()
            take = self.raw[: self.chunk_left]
            self.raw = self.raw[len(take):]
            self.chunk_left -= len(take)
            self.body += take

    def part(self):
        """Headers (lowercase names) of the next part; its JPEG is skipped."""
        while (end := self.body.find(b"\r\n\r\n")) < 0:
            self._fill(len(self.body) + 1)
        text, self.body = self.body[:end].decode("latin-1"), self.body[end + 4:]
        headers = {}
        for line in text.split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        length = int(headers["content-length"])
        self._fill(length)
        self.body = self.body[length:]
        return headers


def join(addr, within):
    """Seconds from joining /stream/cam to the first fresh part (None past `within`)."""
    host, port = addr.split(":")
    joined = time.monotonic()
    joined_ms = int(time.time() * 1000)
    with socket.create_connection((host, int(port)), timeout=within + 5) as sock:
        sock.sendall(b"GET /stream/cam HTTP/1.1\r\nHost: bench\r\n\r\n")
        parts = Parts(sock)
        status = parts.head().split("\r\n", 1)[0]
        if " 200 " not in status + " ":
            raise RuntimeError(f"/stream/cam: {status}")
        while time.monotonic() - joined < within:
            headers = parts.part()
            secs, _, millis = headers["x-timestamp"].partition(".")
            ts = int(secs) * 1000 + int(millis)
            fresh = "x-camhub-stale" not in headers and "x-camhub-offline" not in headers
            if fresh and ts >= joined_ms:
                return time.monotonic() - joined
    return None


def api_state(addr):
    with urllib.request.urlopen(f"http://{addr}/api/streams", timeout=5) as r:
        return json.load(r)[0]["state"]


def run_feed(bins, size, key_int, joins, gap, rng, log):
    """Joins for every binary on one feed: {name: [seconds or None]}, {name: bursts}."""
    port = free_port()
    server = Process(
        ["/usr/bin/python3", SERVER, "--port", str(port), "--key-int", str(key_int), "--size", size]
    )
    camhubs = {}
    configs = []
    try:
        server.wait_line(r"^ready", 20)
        for name, path in bins:
            config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
            config.write(f'[[stream]]\nid = "cam"\nurl = "rtsp://127.0.0.1:{port}/h264"\n')
            config.close()
            configs.append(config.name)
            env = dict(os.environ, RUST_LOG="info,camhub::source::rtsp=debug")
            camhub = Process(
                [path, "--no-mdns", "--listen", "127.0.0.1:0", "--config", config.name],
                env=env,
            )
            camhubs[name] = (camhub, camhub.wait_line(r"listening on http://([0-9.:]+)", 20).group(1))
        for name, (camhub, addr) in camhubs.items():
            deadline = time.monotonic() + 30
            while api_state(addr) != "live":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: stream not live")
                time.sleep(0.2)
        gop_secs = key_int / FPS
        low, high = (gop_secs, 2 * gop_secs) if gap == "cold" else map(float, gap.split("-"))
        time.sleep(3)  # idle: nobody watches
        results = {name: [] for name in camhubs}
        bursts = {name: [] for name in camhubs}
        last_join = {name: time.monotonic() for name in camhubs}
        for i in range(joins):
            order = list(camhubs)
            rng.shuffle(order)
            for name in order:
                # A random idle gap since this camhub's last viewer left (the other
                # camhub's join counts), and at least a random part of a GOP after any
                # join: both cameras' pipelines start together, so their keyframes line
                # up, and a keyframe-waiting join ends just after one.
                wait = rng.uniform(low, high) - (time.monotonic() - last_join[name])
                time.sleep(max(wait, rng.uniform(0.1, gop_secs)))
                camhub = camhubs[name][0]
                seen = len(camhub.lines)
                took = join(camhubs[name][1], within=gop_secs + 5)
                last_join[name] = time.monotonic()
                results[name].append(took)
                # The burst is logged before its picture is sent, so by now.
                burst = [
                    (int(m.group(1)), int(m.group(2)))
                    for line in camhub.lines[seen:]
                    for m in [re.search(r"caught up from the GOP cache.* frames=(\d+) ms=(\d+)", line)]
                    if m
                ]
                bursts[name] += burst
                shown = "none" if took is None else f"{took * 1000:.0f} ms"
                shown += "".join(f", burst {f} frames in {m} ms" for f, m in burst)
                print(f"join.py: {size} key-int {key_int} {name} #{i + 1}: {shown}", file=log, flush=True)
        return results, bursts
    finally:
        for camhub, _ in camhubs.values():
            camhub.stop()
        server.stop()
        for path in configs:
            os.unlink(path)


def ms(seconds):
    return f"{seconds * 1000:.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--bin", action="append", required=True, metavar="NAME=PATH",
                        help="a camhub binary to measure (repeat)")
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--key-ints", default="30,150",
                        help="keyframe intervals in frames at 15 fps (30 = 2 s, 150 = 10 s)")
    parser.add_argument("--sizes", default="640x480")
    parser.add_argument("--gap", default="cold",
                        help='idle time between joins: "cold" or A-B seconds')
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    bins = [tuple(b.split("=", 1)) for b in args.bin]
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"join.py: seed {seed}", file=sys.stderr)

    rows = []
    for size in args.sizes.split(","):
        for key_int in (int(k) for k in args.key_ints.split(",")):
            results, bursts = run_feed(bins, size, key_int, args.joins, args.gap, rng, sys.stderr)
            for name, _ in bins:
                got = [t for t in results[name] if t is not None]
                missed = len(results[name]) - len(got)
                within = sum(1 for t in got if t <= 0.3)
                cells = ("–", "–", "–")
                if got:
                    cells = (ms(min(got)), ms(statistics.median(got)), ms(max(got)))
                burst = bursts[name]
                burst_cell = "–"
                if burst:
                    burst_cell = (
                        f"{statistics.median(m for _, m in burst):.0f} / {max(m for _, m in burst)} ms"
                        f" ({statistics.median(f for f, _ in burst):.0f} / {max(f for f, _ in burst)} frames)"
                    )
                rows.append(
                    f"| {size}@15 | {key_int / FPS:g} s | {name} | {len(results[name])}"
                    f" | {cells[0]} / {cells[1]} / {cells[2]} | {within}"
                    f"{f' ({missed} none within the GOP + 5 s)' if missed else ''} | {burst_cell} |"
                )
    print(f"Seed {seed}; {args.joins} joins per camhub and feed; gaps {args.gap}.\n")
    print("| feed | keyframes every | camhub | joins | first fresh frame, min / median / max ms"
          " | joins ≤ 300 ms | burst decode, median / max ms (frames) |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
