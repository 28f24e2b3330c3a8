#!/usr/bin/env python3
"""The comparison bench's viewers: one asyncio process holding every MJPEG viewer socket,
so its CPU stays apart from the servers' and stays small.

Usage: loadgen.py --url http://127.0.0.1:PORT/PATH --viewers N
                  [--warmup-secs 5] [--max-warmup-secs 60] [--duration-secs 20]

Each viewer sends one HTTP/1.1 GET and parses the multipart/x-mixed-replace reply (the
boundary from Content-Type; chunked transfer-encoding undone; a part ends at its
Content-Length, or without one at the JPEG's end-of-image marker, so a server that sends
the boundary only before the next frame is not charged a frame period of latency).
Viewers connect spread over the first half of the warm-up (at most 50 ms apart). The
measured window starts once the warm-up has passed AND every viewer has received a frame
(or failed), but no later than --max-warmup-secs: servers that open one camera session per
viewer can take seconds per viewer to get going (OpenCV opens its captures one at a time),
and that start-up is reported (warmup_secs, viewers_without_frame), not mixed into the
steady-state numbers. At the window's start this prints "window START END" (unix secs) on
stdout, so the caller can sample CPU over exactly the same window; frames are counted
over [START, END).

Latency: rtsp_clock.py draws the capture time into every frame. Decoding every JPEG of 50
viewers would make this process the bottleneck, so it decodes a sample: every frame of
viewer 0, and every 5th frame of up to 9 more viewers spread evenly over the rest. A
decode is a half-scale greyscale JPEG decode (OpenCV) plus 120 block reads; latency is the
wall time the frame's last byte arrived minus the time in the barcode. Needs numpy and
cv2 (the bench's venv); without them (--no-decode) only frames are counted.

Then prints one JSON object on stdout: per-viewer fps, min/median fps, latency
percentiles, decode failures, bytes, connection errors.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlsplit

MAX_VIEWERS = 500
MAX_DURATION_SECS = 300
MAX_WARMUP_SECS = 180
TIME_MODULUS_MS = 1 << 40
MARKER = 0xB2
SAMPLE_OTHER_VIEWERS = 9
SAMPLE_EVERY_NTH = 5
MAX_HEADER_BYTES = 64 * 1024
MAX_PART_BYTES = 16 * 1024 * 1024

cv2 = None
np = None


def decode_barcode(jpeg):
    """(capture time ms mod 2^40, frame number) from rtsp_clock.py's barcode, or None when
    the picture does not carry a valid one (see rtsp_clock.py for the layout)."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2)
    if img is None:
        return None
    if img.shape != (240, 320):
        img = cv2.resize(img, (320, 240), interpolation=cv2.INTER_AREA)
    # At half scale a 16 px block is 8 px: average its central 4x4 pixels.
    blocks = img[:24, :].reshape(3, 8, 40, 8)[:, 2:6, :, 2:6].mean(axis=(1, 3))
    bits = blocks > 125
    if not (bits[0] != bits[1]).all():
        return None
    time_ms = 0
    for b in bits[0]:
        time_ms = (time_ms << 1) | int(b)
    row2 = 0
    for b in bits[2]:
        row2 = (row2 << 1) | int(b)
    marker, frame_no, check = row2 >> 32, (row2 >> 8) & 0xFFFFFF, row2 & 0xFF
    if marker != MARKER:
        return None
    payload = time_ms.to_bytes(5, "big") + frame_no.to_bytes(3, "big")
    if sum(payload) & 0xFF != check:
        return None
    return time_ms, frame_no


class Viewer(asyncio.Protocol):
    """One MJPEG viewer: HTTP response head, optional de-chunking, multipart parts."""

    def __init__(self, index, bench):
        self.index = index
        self.bench = bench
        self.transport = None
        self.head = bytearray()
        self.head_done = False
        self.chunked = False
        self.chunk_raw = bytearray()
        self.chunk_left = 0  # bytes of chunk data still to come; -1 = reading CRLF after
        self.body = bytearray()
        self.delimiter = b""
        self.frames_total = 0
        self.frames_in_window = 0
        self.bytes_in_window = 0
        self.error = None
        self.closed = asyncio.get_running_loop().create_future()

    # asyncio callbacks
    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.bench.request)

    def data_received(self, data):
        now = time.time()
        if self.bench.window_start <= now < self.bench.window_end:
            self.bytes_in_window += len(data)
        try:
            if not self.head_done:
                self.head += data
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.head) > MAX_HEADER_BYTES:
                        raise ValueError("response head too long")
                    return
                self.parse_head(bytes(self.head[:end]))
                data = bytes(self.head[end + 4 :])
                self.head = bytearray()
            if self.chunked:
                self.dechunk(data)
            else:
                self.body += data
            self.parse_parts(now)
        except ValueError as err:
            self.fail(str(err))

    def connection_lost(self, exc):
        if self.error is None and not self.bench.stopping:
            self.error = f"closed by server ({exc})" if exc else "closed by server"
        if not self.closed.done():
            self.closed.set_result(None)

    def fail(self, reason):
        if self.error is None:
            self.error = reason
        self.transport.close()

    # parsing
    def parse_head(self, head):
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "200":
            raise ValueError(f"status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        ctype = headers.get("content-type", "")
        boundary = None
        for param in ctype.split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "boundary":
                boundary = value.strip('"')
        if not ctype.lower().startswith("multipart/") or not boundary:
            raise ValueError(f"not a multipart reply: Content-Type {ctype!r}")
        # Some servers put the dashes into the parameter; a search for "--"+boundary would
        # then miss their parts, while one for the parameter alone still finds them.
        if boundary.startswith("--"):
            self.delimiter = boundary.encode()
        else:
            self.delimiter = b"--" + boundary.encode()
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.head_done = True

    def dechunk(self, data):
        raw = self.chunk_raw
        raw += data
        pos = 0
        while True:
            if self.chunk_left > 0:
                take = min(self.chunk_left, len(raw) - pos)
                if take == 0:
                    break
                self.body += raw[pos : pos + take]
                pos += take
                self.chunk_left -= take
                if self.chunk_left == 0:
                    self.chunk_left = -1
            elif self.chunk_left == -1:
                if len(raw) - pos < 2:
                    break
                pos += 2
                self.chunk_left = 0
            else:
                end = raw.find(b"\r\n", pos)
                if end < 0:
                    if len(raw) - pos > 1024:
                        raise ValueError("bad chunk size line")
                    break
                size = int(raw[pos:end].split(b";")[0], 16)
                pos = end + 2
                if size == 0:
                    raise ValueError("stream ended (last chunk)")
                self.chunk_left = size
        del raw[:pos]

    def parse_parts(self, now):
        body = self.body
        pos = 0
        while True:
            start = body.find(self.delimiter, pos)
            if start < 0:
                # Keep a tail that might hold the start of a delimiter.
                pos = max(pos, len(body) - len(self.delimiter))
                break
            line_end = body.find(b"\r\n", start)
            head_end = body.find(b"\r\n\r\n", start)
            if line_end < 0 or head_end < 0:
                if len(body) - start > MAX_HEADER_BYTES:
                    raise ValueError("part head too long")
                pos = start
                break
            length = None
            for line in bytes(body[line_end + 2 : head_end]).split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            data_start = head_end + 4
            if length is not None:
                if length > MAX_PART_BYTES:
                    raise ValueError("part too large")
                if len(body) < data_start + length:
                    pos = start
                    break
                data_end = data_start + length
            else:
                data_end = self.jpeg_end(body, data_start)
                if data_end is None:
                    if len(body) - data_start > MAX_PART_BYTES:
                        raise ValueError("part too large")
                    pos = start
                    break
            self.on_frame(bytes(body[data_start:data_end]), now)
            pos = data_end
        del body[:pos]

    def jpeg_end(self, body, data_start):
        """End of the JPEG that starts at data_start: just after an EOI marker that is
        followed by CRLF, the next delimiter or (for now) nothing; None if not yet."""
        search = data_start
        while True:
            eoi = body.find(b"\xff\xd9", search)
            if eoi < 0:
                return None
            after = body[eoi + 2 : eoi + 4]
            if after in (b"", b"\r\n", b"\r") or self.delimiter.startswith(bytes(after)):
                return eoi + 2
            search = eoi + 2

    def on_frame(self, jpeg, now):
        self.frames_total += 1
        bench = self.bench
        if not bench.window_start <= now < bench.window_end:
            return
        self.frames_in_window += 1
        if bench.decode and self.index in bench.sampled:
            if self.index == 0 or self.frames_in_window % SAMPLE_EVERY_NTH == 0:
                bench.sample(self.index, jpeg, now)


class Bench:
    def __init__(self, args):
        parts = urlsplit(args.url)
        if parts.scheme != "http" or not parts.hostname:
            raise SystemExit("loadgen: --url must be http://HOST:PORT/PATH")
        self.host = parts.hostname
        self.port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "User-Agent: camhub-compare-loadgen\r\nAccept: */*\r\n\r\n"
        ).encode()
        self.viewers_n = args.viewers
        self.warmup_secs = args.warmup_secs
        self.duration_secs = args.duration_secs
        self.max_warmup_secs = args.max_warmup_secs
        # Set when the warm-up ends; until then no frame is in the window.
        self.window_start = float("inf")
        self.window_end = float("inf")
        self.warmup_used_secs = None
        self.without_frame_at_start = None
        self.decode = not args.no_decode
        others = list(range(1, self.viewers_n))
        if len(others) > SAMPLE_OTHER_VIEWERS:
            step = len(others) / SAMPLE_OTHER_VIEWERS
            others = [others[int(i * step)] for i in range(SAMPLE_OTHER_VIEWERS)]
        self.sampled = {0, *others} if self.viewers_n else set()
        self.latencies_ms = []
        self.decoded = 0
        self.decode_failures = 0
        self.viewer0_frame_numbers = []
        self.stopping = False

    def sample(self, index, jpeg, now):
        result = decode_barcode(jpeg)
        if result is None:
            self.decode_failures += 1
            return
        self.decoded += 1
        time_ms, frame_no = result
        now_ms = int(now * 1000) % TIME_MODULUS_MS
        latency_ms = (now_ms - time_ms) % TIME_MODULUS_MS
        if latency_ms >= TIME_MODULUS_MS // 2:
            latency_ms -= TIME_MODULUS_MS  # a frame "from the future": clock trouble
        self.latencies_ms.append(latency_ms)
        if index == 0:
            self.viewer0_frame_numbers.append(frame_no)

    async def run(self):
        loop = asyncio.get_running_loop()
        viewers = []
        spread_secs = min(0.05, self.warmup_secs / 2 / max(1, self.viewers_n))
        connect_started = time.time()
        for index in range(self.viewers_n):
            delay = connect_started + index * spread_secs - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            viewer = Viewer(index, self)
            viewers.append(viewer)
            try:
                await loop.create_connection(lambda v=viewer: v, self.host, self.port)
            except OSError as err:
                viewer.error = f"connect: {err}"
                viewer.closed.set_result(None)
        # Warm-up: at least warmup_secs, then until every viewer has a frame (or failed).
        while True:
            waited = time.time() - connect_started
            waiting = [v for v in viewers if v.frames_total == 0 and v.error is None]
            if waited >= self.max_warmup_secs or (waited >= self.warmup_secs and not waiting):
                break
            await asyncio.sleep(0.1)
        self.window_start = time.time()
        self.window_end = self.window_start + self.duration_secs
        self.warmup_used_secs = round(self.window_start - connect_started, 1)
        self.without_frame_at_start = sum(1 for v in viewers if v.frames_total == 0)
        print(f"window {self.window_start:.3f} {self.window_end:.3f}", flush=True)
        await asyncio.sleep(self.duration_secs)
        self.stopping = True
        for viewer in viewers:
            if viewer.transport is not None:
                viewer.transport.close()
        if viewers:
            await asyncio.wait([v.closed for v in viewers], timeout=2)
        return viewers

    def report(self, viewers):
        fps = [round(v.frames_in_window / self.duration_secs, 2) for v in viewers]
        lat = sorted(self.latencies_ms)

        def pct(p):
            if not lat:
                return None
            return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))]

        numbers = self.viewer0_frame_numbers
        unique0 = len(set(numbers))
        errors = {}
        for v in viewers:
            if v.error:
                errors[v.error] = errors.get(v.error, 0) + 1
        return {
            "url": f"http://{self.host}:{self.port}",
            "viewers": self.viewers_n,
            "duration_secs": self.duration_secs,
            "warmup_secs": self.warmup_used_secs,
            "viewers_without_frame": self.without_frame_at_start,
            "fps_per_viewer": fps,
            "fps_min": min(fps) if fps else None,
            "fps_median": statistics.median(fps) if fps else None,
            "frames_total": sum(v.frames_in_window for v in viewers),
            "bytes_total": sum(v.bytes_in_window for v in viewers),
            "latency_samples": len(lat),
            "latency_ms": {
                "p50": pct(50),
                "p95": pct(95),
                "p99": pct(99),
                "max": lat[-1] if lat else None,
                "min": lat[0] if lat else None,
            },
            "decoded": self.decoded,
            "decode_failures": self.decode_failures,
            "sampled_viewers": sorted(self.sampled),
            "viewer0_unique_fps": round(unique0 / self.duration_secs, 2),
            "viewer0_repeated_frames": len(numbers) - unique0,
            "errors": errors,
        }


def main():
    global cv2, np
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--viewers", type=int, required=True)
    parser.add_argument("--warmup-secs", type=float, default=5.0)
    parser.add_argument("--duration-secs", type=float, default=20.0)
    parser.add_argument("--max-warmup-secs", type=float, default=60.0)
    parser.add_argument("--no-decode", action="store_true")
    args = parser.parse_args()
    if not 0 <= args.viewers <= MAX_VIEWERS:
        parser.error(f"--viewers must be 0..{MAX_VIEWERS}")
    if not 0 < args.duration_secs <= MAX_DURATION_SECS:
        parser.error(f"--duration-secs must be in (0, {MAX_DURATION_SECS}]")
    if not 0 <= args.warmup_secs <= MAX_WARMUP_SECS:
        parser.error(f"--warmup-secs must be 0..{MAX_WARMUP_SECS}")
    if not args.warmup_secs <= args.max_warmup_secs <= MAX_WARMUP_SECS:
        parser.error(f"--max-warmup-secs must be --warmup-secs..{MAX_WARMUP_SECS}")
    if not args.no_decode:
        try:
            import cv2 as cv2_module
            import numpy as np_module
        except ImportError as err:
            parser.error(f"{err}: needs numpy and cv2 (the bench venv's python) or --no-decode")
        cv2, np = cv2_module, np_module
        cv2.setNumThreads(1)

    bench = Bench(args)
    viewers = asyncio.run(bench.run())
    json.dump(bench.report(viewers), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
