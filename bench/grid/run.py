#!/usr/bin/env python3
"""One camhub, N MJPEG cameras (`exec:` streams replaying clips made by bench/grid.sh), and
the phone grid read two ways over the same camhub in the same run: `/mux?ids=<all>&fps=F`
at full size, then the same with `&width=W` (tile-sized renditions). For every phase it
measures the bytes the grid received, each tile's fps and picture size, and CPU: camhub's
own process (utime + stime of its threads from /proc/PID/stat: the replayer processes it
starts are separate processes, so none of their CPU is in it), its rendition threads
(`rnd-*`) apart, the replayers' together, and this script's.

Prints one JSON object per phase on stdout. Loopback only; camhub runs with --no-mdns and
gets SIGTERM at the end (SIGKILL if this script dies: PR_SET_PDEATHSIG), which also stops
every replayer (camhub kills each command's process group; a replayer whose pipe closes
exits by itself).

Usage: run.py --bin CAMHUB --clips DIR [--cameras 12] [--fps-source 15] [--tile-fps 5]
              [--width 366] [--window-secs 15] [--warmup-secs 3] [--idle-secs 10]
              [--rounds 1] [--label L] [--size WxH]
"""
import argparse
import ctypes
import http.client
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 20.0
LIVE_TIMEOUT = 30.0
FIRST_TILE_TIMEOUT = 20.0


def die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def stat_fields(path):
    """(comm, fields after comm) of a /proc stat file; comm may contain spaces."""
    with open(path) as f:
        text = f.read()
    comm = text[text.index("(") + 1:text.rindex(")")]
    return comm, text[text.rindex(")") + 2:].split()


def cpu_ticks(pid):
    """utime + stime of the whole process (all its threads), in clock ticks."""
    _, f = stat_fields(f"/proc/{pid}/stat")
    return int(f[11]) + int(f[12])


def thread_ticks(pid):
    """{thread name: utime + stime} summed over threads of the same name."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm, f = stat_fields(f"/proc/{pid}/task/{tid}/stat")
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        out[comm] = out.get(comm, 0) + int(f[11]) + int(f[12])
    return out


def descendants(pid):
    """Every live descendant process of pid (the replayers and their shells)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            _, f = stat_fields(f"/proc/{d}/stat")
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        children.setdefault(int(f[1]), []).append(int(d))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_ticks(pids):
    total = 0
    for p in pids:
        try:
            total += cpu_ticks(p)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def self_ticks():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * TICK


def count(items):
    out = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def jpeg_size(data):
    """(width, height) from a JPEG's SOF marker, or None."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            return (data[i + 7] << 8 | data[i + 8], data[i + 5] << 8 | data[i + 6])
        i += 2 + (data[i + 2] << 8 | data[i + 3])
    return None


class Camhub:
    def __init__(self, binary, cameras, clips, fps, workdir):
        self.dir = workdir
        config = os.path.join(workdir, "camhub.toml")
        replay = os.path.join(HERE, "replay.py")
        clip_files = sorted(f for f in os.listdir(clips) if f.endswith(".mjpeg"))
        if not clip_files:
            sys.exit(f"run.py: no *.mjpeg clips in {clips}")
        self.ids = [f"cam{i + 1:02d}" for i in range(cameras)]
        with open(config, "w") as f:
            for i, sid in enumerate(self.ids):
                clip = os.path.join(clips, clip_files[i % len(clip_files)])
                # `exec` so that the replayer is the process camhub started (one pid per
                # camera); the start frame staggers cameras that share a clip.
                cmd = f"exec /usr/bin/python3 {replay} {clip} {fps} {i * 7}"
                f.write(f"[[stream]]\nid = \"{sid}\"\nurl = '''exec:{cmd}'''\n\n")
        self.log_path = os.path.join(workdir, "camhub.log")
        self.log = open(self.log_path, "w")
        env = dict(os.environ, RUST_LOG="info")
        self.proc = subprocess.Popen(
            [binary, "--no-mdns", "--listen", "127.0.0.1:0", "--config", config],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env,
            preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        self.addr = None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.addr is None:
            if self.proc.poll() is not None:
                sys.exit(f"run.py: camhub exited ({self.proc.returncode}): {self.tail()}")
            with open(self.log_path) as f:
                m = re.search(r"listening on http://([0-9.]+:[0-9]+)", f.read())
            if m:
                self.addr = m.group(1)
            else:
                time.sleep(0.1)
        if self.addr is None:
            self.stop()
            sys.exit(f"run.py: camhub did not say where it listens: {self.tail()}")

    def tail(self):
        with open(self.log_path) as f:
            return " | ".join(f.read().splitlines()[-5:])

    def api(self):
        with urllib.request.urlopen(f"http://{self.addr}/api/streams", timeout=5) as r:
            return json.load(r)

    def wait_live(self):
        """Until every stream is live and has frames coming in."""
        deadline = time.monotonic() + LIVE_TIMEOUT
        while time.monotonic() < deadline:
            s = self.api()
            if all(x["state"] == "live" and x["frames"] > 0 for x in s):
                return
            time.sleep(0.3)
        states = {x["id"]: (x["state"], x["last_error"]) for x in self.api()}
        self.stop()
        sys.exit(f"run.py: streams not live within {LIVE_TIMEOUT:.0f} s: {states}")

    def stop(self):
        """SIGTERM, SIGKILL after 5 s; returns the time to exit in ms."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return (time.monotonic() - t0) * 1000


class Meter:
    """CPU and counters between two points in time."""

    def __init__(self, hub):
        self.hub = hub
        self.t = time.monotonic()
        self.camhub = cpu_ticks(hub.pid)
        self.threads = thread_ticks(hub.pid)
        self.kids = descendants(hub.pid)
        self.kid_ticks = tree_ticks(self.kids)
        self.me = self_ticks()
        self.frames = {x["id"]: x["frames"] for x in hub.api()}

    def since(self, start):
        secs = self.t - start.t
        pct = lambda ticks: 100.0 * ticks / TICK / secs
        rnd = sum(v - start.threads.get(k, 0) for k, v in self.threads.items()
                  if k.startswith("rnd-"))
        src = sum(v - start.threads.get(k, 0) for k, v in self.threads.items()
                  if k.startswith("src-"))
        groups = {}
        for k, v in self.threads.items():
            g = re.sub(r"^(rnd|src)-.*", r"\1-*", k)
            groups[g] = groups.get(g, 0) + v - start.threads.get(k, 0)
        kids_same = [p for p in start.kids if p in self.kids]
        return {
            "secs": round(secs, 2),
            "camhub_cpu_pct": round(pct(self.camhub - start.camhub), 1),
            "rnd_threads_cpu_pct": round(pct(rnd), 1),
            "src_threads_cpu_pct": round(pct(src), 1),
            "replayers_cpu_pct": round(pct(tree_ticks(kids_same) - start.kid_ticks), 1)
            if len(kids_same) == len(start.kids) else None,
            "loadgen_cpu_pct": round(pct(self.me - start.me), 1),
            "threads_cpu_pct": {g: round(pct(v), 1) for g, v in
                                sorted(groups.items(), key=lambda kv: -kv[1]) if v > 0},
            "source_fps_median": round(statistics.median(
                (self.frames[k] - start.frames.get(k, 0)) / secs for k in self.frames), 2),
        }


def read_mux(hub, query, warmup, window):
    """Reads /mux?query: waits until every tile has a frame, warms up, then counts for
    `window` seconds. Returns the phase's figures (CPU from Meter)."""
    conn = http.client.HTTPConnection(hub.addr, timeout=10)
    conn.request("GET", "/mux?" + query)
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"run.py: /mux?{query}: HTTP {resp.status}: {resp.read()[:200]!r}")
    ids = set(hub.ids)
    seen = set()
    phase = "first"  # first tile frames → warm-up → window → done
    t_first_deadline = time.monotonic() + FIRST_TILE_TIMEOUT
    t_warm_end = None
    start = end = None
    per_tile = {i: 0 for i in ids}
    kinds, feeds, sizes, jpeg_bytes, bytes_in = {}, {}, {}, [], 0
    while True:
        line = resp.readline()
        if not line:
            raise SystemExit(f"run.py: /mux?{query} ended early")
        sid, length, kind, _unix_ms, feed = line.decode().split()
        jpeg = resp.read(int(length))
        now = time.monotonic()
        if phase == "first":
            seen.add(sid)
            if seen >= ids:
                phase, t_warm_end = "warm", now + warmup
            elif now > t_first_deadline:
                raise SystemExit(f"run.py: no frame from {sorted(ids - seen)} in "
                                 f"{FIRST_TILE_TIMEOUT:.0f} s")
        elif phase == "warm" and now >= t_warm_end:
            phase, start = "window", Meter(hub)
            t_end = start.t + window
        if phase == "window":
            if now >= t_end:
                end = Meter(hub)
                break
            bytes_in += len(line) + len(jpeg)
            per_tile[sid] += 1
            kinds[kind] = kinds.get(kind, 0) + 1
            feeds[feed] = feeds.get(feed, 0) + 1
            wh = jpeg_size(jpeg)
            key = f"{wh[0]}x{wh[1]}" if wh else "?"
            sizes[key] = sizes.get(key, 0) + 1
            jpeg_bytes.append(len(jpeg))
    api = hub.api()
    conn.close()
    out = end.since(start)
    secs = out["secs"]
    tile_fps = sorted(n / secs for n in per_tile.values())
    out.update({
        "query": query,
        "bytes_per_s": round(bytes_in / secs),
        "mbit_per_s": round(bytes_in * 8 / secs / 1e6, 2),
        "frames_per_s": round(sum(per_tile.values()) / secs, 1),
        "tile_fps_min": round(tile_fps[0], 2),
        "tile_fps_median": round(statistics.median(tile_fps), 2),
        "jpeg_bytes_mean": round(statistics.mean(jpeg_bytes)) if jpeg_bytes else 0,
        "picture_sizes": sizes,
        "kinds": kinds,
        "feeds": feeds,
        # What /api/streams says is being made, over all streams: "400->400x226 main": 12.
        "renditions": count(f"{r['width']}->{r['frame_width']}x{r['frame_height']} {r['feed']}"
                            for s in api for r in s["renditions"]),
        "rss_mib": round(rss_kib(hub.pid) / 1024, 1),
    })
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--label", default="camhub")
    ap.add_argument("--size", default="", help="the clips' WxH, only to label the output")
    ap.add_argument("--clips", required=True)
    ap.add_argument("--cameras", type=int, default=12)
    ap.add_argument("--fps-source", type=float, default=15)
    ap.add_argument("--tile-fps", type=float, default=5)
    ap.add_argument("--width", type=int, default=366)
    ap.add_argument("--window-secs", type=float, default=15)
    ap.add_argument("--warmup-secs", type=float, default=3)
    ap.add_argument("--idle-secs", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="camhub-grid-") as work:
        hub = Camhub(a.bin, a.cameras, a.clips, a.fps_source, work)
        try:
            hub.wait_live()
            time.sleep(2)
            ids = ",".join(hub.ids)
            base = f"ids={ids}&fps={a.tile_fps:g}"
            emit = lambda d: print(json.dumps(dict(d, label=a.label, size=a.size,
                                                  cameras=a.cameras)), flush=True)
            if a.idle_secs > 0:
                m0 = Meter(hub)
                time.sleep(a.idle_secs)
                d = Meter(hub).since(m0)
                d.update(phase="no viewer", rss_mib=round(rss_kib(hub.pid) / 1024, 1))
                emit(d)
            for r in range(a.rounds):
                # ABBA: full size first in odd rounds, tiles first in even ones.
                order = [("full size", base), (f"width={a.width}", f"{base}&width={a.width}")]
                for phase, query in order if r % 2 == 0 else order[::-1]:
                    d = read_mux(hub, query, a.warmup_secs, a.window_secs)
                    d.update(phase=phase, round=r + 1)
                    emit(d)
                    time.sleep(1)  # the finished client's slots go before the next phase
        finally:
            ms = hub.stop()
            leftovers = [p for p in descendants(os.getpid())]
            print(json.dumps({"label": a.label, "size": a.size, "phase": "stop", "sigterm_to_exit_ms": round(ms),
                              "leftover_children": leftovers}), flush=True)


if __name__ == "__main__":
    main()
