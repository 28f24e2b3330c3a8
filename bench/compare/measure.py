#!/usr/bin/python3
"""The comparison bench's driver: runs camhub, Motion and the Django + OpenCV view one
configuration at a time against the same RTSP clock feed, measures each server's CPU and
RSS over its whole process tree while loadgen.py plays the viewers, and prints the
Markdown table. bench/compare.sh is the one command that installs, builds and calls this.

Usage: measure.py --camhub BIN --loadgen-python PY [--peers camhub,motion,django]
                  [--viewers LIST] [--viewers-camhub LIST] [--viewers-motion LIST]
                  [--viewers-django LIST] [--duration-secs 20] [--warmup-secs 5]
                  [--json-out FILE]

Per configuration (peer, viewers): start the peer fresh on a free loopback port, wait
until it serves, start loadgen.py and wait for its "window START END" line (sent once the
warm-up is over and every viewer has a frame; with 0 viewers the window simply follows the
warm-up); at START and at END read utime+stime+cutime+cstime of every process in three
trees (the peer's, the RTSP clock's, loadgen's), and every ~1 s in between the sum of
VmRSS over the peer's tree (the table shows the largest sample). Then stop the peer.
CPU % is of one core (200 % = both cores of a 2-core machine). Summed RSS counts pages
shared between a tree's processes once per process.

Every child runs in its own session; this script stops them (SIGTERM, then SIGKILL of the
process group it created) on exit, on SIGTERM and on Ctrl-C, and lists their PIDs in
--pid-file so the calling shell can do the same if this script is SIGKILLed.
Run with Debian's /usr/bin/python3 (stdlib only; gi just for the GStreamer version).
"""

import argparse
import json
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")
# camhub-turbojpeg is the same camhub built with `--features turbojpeg`, as the Pi package
# is: libjpeg-turbo's SIMD encoder, the one Motion and OpenCV use too.
PEERS = ("camhub", "camhub-turbojpeg", "motion", "django")
DEFAULT_VIEWERS = {
    "camhub": [0, 1, 10, 50],
    "camhub-turbojpeg": [1, 10, 50],
    "motion": [0, 1, 10],
    "django": [0, 1, 10, 50],
}
MAX_VIEWERS = 500
MAX_DURATION_SECS = 120
MAX_WARMUP_SECS = 30
MAX_LONG_WARMUP_SECS = 180
READY_TIMEOUT_SECS = 30
# Motion's capture rate, a little above the camera's 15 fps (see motion.conf.in).
MOTION_CAPTURE_RATE = 16
MOTION_SETTLE_SECS = 3
STREAM_ID = "cam"


def log(msg):
    print(f"measure: {msg}", file=sys.stderr, flush=True)


# ---- /proc ---------------------------------------------------------------------------


def read_stats():
    """{pid: (ppid, cpu ticks incl. reaped children)} for every process now."""
    stats = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14-17.
        ppid = int(fields[1])
        ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        stats[int(name)] = (ppid, ticks)
    return stats


def tree_pids(root, stats):
    children = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    if root not in stats:
        return []
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_secs(roots):
    """{name: CPU seconds used so far by the process tree under that root}."""
    stats = read_stats()
    return {
        name: sum(stats[p][1] for p in tree_pids(root, stats)) / CLK_TCK
        for name, root in roots.items()
        if root is not None
    }


def tree_rss_kib(root):
    total = 0
    for pid in tree_pids(root, read_stats()):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---- processes -----------------------------------------------------------------------


class Children:
    """Every process this script starts, each the leader of its own process group."""

    def __init__(self, pid_file):
        self.procs = []
        self.pid_file = pid_file

    def spawn(self, argv, log_path, **kwargs):
        logf = open(log_path, "ab")
        proc = subprocess.Popen(
            argv, stdout=kwargs.pop("stdout", logf), stderr=logf, stdin=subprocess.DEVNULL,
            start_new_session=True, **kwargs,
        )
        logf.close()
        self.procs.append(proc)
        self.write_pid_file()
        return proc

    def write_pid_file(self):
        if self.pid_file:
            with open(self.pid_file, "w") as f:
                f.write("".join(f"{p.pid}\n" for p in self.procs if p.poll() is None))

    def stop(self, proc, timeout_secs=5):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout_secs)
            except subprocess.TimeoutExpired:
                log(f"pid {proc.pid} ignored SIGTERM for {timeout_secs} s: SIGKILL")
        # The group may outlive its leader (a child the leader did not wait for).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)
        self.write_pid_file()

    def stop_all(self):
        for proc in list(reversed(self.procs)):
            self.stop(proc, timeout_secs=3)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port, proc, timeout_secs=READY_TIMEOUT_SECS):
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"not listening on port {port} after {timeout_secs} s")


def wait_first_frame(url_port, path, proc, timeout_secs=READY_TIMEOUT_SECS):
    """Reads one viewer's stream until a whole JPEG arrived (Motion closes streams that
    start before its camera is up, so retry)."""
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", url_port), timeout=2) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                got = b""
                while time.monotonic() < deadline:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                    start = got.find(b"\xff\xd8")
                    if start >= 0 and got.find(b"\xff\xd9", start) >= 0:
                        return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no frame on port {url_port} after {timeout_secs} s")


# ---- peers ---------------------------------------------------------------------------


def start_peer(peer, args, children, workdir, rtsp_url):
    """Starts one peer fresh; returns (process, MJPEG URL)."""
    port = free_port()
    log_path = os.path.join(workdir, f"{peer}.log")
    with open(log_path, "ab") as f:
        f.write(f"\n==== {time.strftime('%H:%M:%S')} start on port {port}\n".encode())
    if peer in ("camhub", "camhub-turbojpeg"):
        binary = camhub_binary(peer, args)
        config = os.path.join(workdir, "camhub.toml")
        with open(config, "w") as f:
            f.write(
                f'[server]\nlisten = "127.0.0.1:{port}"\n\n[mdns]\nenabled = false\n\n'
                f'[[stream]]\nid = "{STREAM_ID}"\nurl = "{rtsp_url}"\n'
            )
        proc = children.spawn(
            [binary, "--no-mdns", "--listen", f"127.0.0.1:{port}", "--config", config],
            log_path,
        )
        wait_tcp(port, proc)
        return proc, f"http://127.0.0.1:{port}/stream/{STREAM_ID}"
    if peer == "motion":
        motion_dir = os.path.join(workdir, f"motion-{port}")
        os.makedirs(os.path.join(motion_dir, "out"))
        with open(os.path.join(HERE, "motion.conf.in")) as f:
            conf = f.read()
        for key, value in {
            "@LOG_FILE@": os.path.join(motion_dir, "motion.log"),
            "@TARGET_DIR@": os.path.join(motion_dir, "out"),
            "@NETCAM_URL@": rtsp_url,
            "@STREAM_PORT@": str(port),
            "@CAPTURE_RATE@": str(MOTION_CAPTURE_RATE),
        }.items():
            conf = conf.replace(key, value)
        conf_path = os.path.join(motion_dir, "motion.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        proc = children.spawn(["motion", "-n", "-c", conf_path], log_path, cwd=motion_dir)
        wait_tcp(port, proc)
        # Motion streams only once its camera is up; then let its capture catch up.
        wait_first_frame(port, "/", proc)
        time.sleep(MOTION_SETTLE_SECS)
        return proc, f"http://127.0.0.1:{port}/"
    if peer == "django":
        run_sh = os.path.join(HERE, "django_app", "run.sh")
        proc = children.spawn([run_sh, str(port), rtsp_url], log_path)
        wait_tcp(port, proc)
        return proc, f"http://127.0.0.1:{port}/stream"
    raise ValueError(peer)


def camhub_binary(peer, args):
    return args.camhub_turbojpeg if peer == "camhub-turbojpeg" else args.camhub


def peer_available(peer, args):
    if peer in ("camhub", "camhub-turbojpeg"):
        binary = camhub_binary(peer, args)
        return bool(binary) and os.access(binary, os.X_OK)
    if peer == "motion":
        found = subprocess.run(["sh", "-c", "command -v motion"], capture_output=True)
        return found.returncode == 0
    if peer == "django":
        return os.access(os.path.join(HERE, "django_app", "run.sh"), os.X_OK)
    return False


# ---- versions ------------------------------------------------------------------------


def run_text(argv, **kwargs):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, **kwargs)
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def versions(args):
    v = {}
    rev = run_text(["git", "-C", REPO, "describe", "--always", "--dirty", "--abbrev=7"])
    v["camhub"] = run_text([args.camhub, "--version"]).removeprefix("camhub ")
    v["camhub_rev"] = rev
    v["motion"] = run_text(["dpkg-query", "-W", "-f=${Version}", "motion"]) or run_text(
        ["sh", "-c", "motion -h 2>&1 | head -1"]
    )
    django_python = os.path.join(HERE, ".venv", "bin", "python")
    if not os.access(django_python, os.X_OK):
        django_python = args.loadgen_python
    v["python_pkgs"] = run_text(
        [
            django_python,
            "-c",
            "import sys, django, uvicorn, cv2, numpy;"
            "print(f'Django {django.__version__}, uvicorn {uvicorn.__version__},"
            " OpenCV {cv2.__version__}, numpy {numpy.__version__},"
            " Python {sys.version.split()[0]}')",
        ]
    )
    if v["python_pkgs"].startswith("Django"):
        v["django"] = v["python_pkgs"].split(",")[0].removeprefix("Django ")
    else:
        v["django"] = "?"
        v["python_pkgs"] = "Django/OpenCV versions unknown (the venv's imports failed)"
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst

        Gst.init(None)
        v["gstreamer"] = Gst.version_string().removeprefix("GStreamer ")
    except (ImportError, ValueError):
        v["gstreamer"] = "?"
    cpu_model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    v["cpu"] = f"{cpu_model}, {os.cpu_count()} CPUs ({platform.machine()})"
    v["kernel"] = platform.release()
    return v


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- one configuration ---------------------------------------------------------------


def run_config(peer, viewers, args, children, workdir, clock_proc, rtsp_url):
    row = {"peer": peer, "viewers": viewers}
    try:
        proc, url = start_peer(peer, args, children, workdir, rtsp_url)
    except RuntimeError as err:
        row["error"] = f"did not start: {err}"
        log(f"{peer}: {row['error']} (see {peer}.log)")
        return row
    loadgen = None
    try:
        if viewers:
            loadgen = children.spawn(
                [
                    args.loadgen_python, os.path.join(HERE, "loadgen.py"), "--url", url,
                    "--viewers", str(viewers), "--warmup-secs", str(args.warmup_secs),
                    "--max-warmup-secs", str(args.max_warmup_secs),
                    "--duration-secs", str(args.duration_secs),
                ],
                os.path.join(workdir, "loadgen.log"),
                stdout=subprocess.PIPE,
            )
            # loadgen.py says when its window starts (after its warm-up).
            ready, _, _ = select.select([loadgen.stdout], [], [], args.max_warmup_secs + 15)
            line = loadgen.stdout.readline().decode() if ready else ""
            if not line.startswith("window "):
                raise RuntimeError("loadgen.py did not start its window (see loadgen.log)")
            start_at, end_at = (float(x) for x in line.split()[1:3])
        else:
            start_at = time.time() + args.warmup_secs
            end_at = start_at + args.duration_secs
        roots = {"peer": proc.pid, "clock": clock_proc.pid}
        if loadgen:
            roots["loadgen"] = loadgen.pid
        time.sleep(max(0.0, start_at - time.time()))
        wall0 = time.time()
        cpu0 = tree_cpu_secs(roots)
        rss_samples = []
        while True:
            rss_samples.append(tree_rss_kib(proc.pid))
            left = end_at - time.time()
            if left <= 0:
                break
            time.sleep(min(1.0, left))
        cpu1 = tree_cpu_secs(roots)
        wall_secs = time.time() - wall0
        for name in roots:
            row[f"{name}_cpu_pct"] = round(100 * (cpu1[name] - cpu0[name]) / wall_secs, 1)
        row["rss_mib"] = round(max(rss_samples) / 1024, 1)
        if proc.poll() is not None:
            row["error"] = f"exited with status {proc.returncode} during the run"
        if loadgen:
            ready, _, _ = select.select([loadgen.stdout], [], [], 20)
            out = loadgen.stdout.readline() if ready else b""
            try:
                row["load"] = json.loads(out)
            except json.JSONDecodeError:
                row["error"] = "loadgen.py gave no result (see loadgen.log)"
    except RuntimeError as err:
        row["error"] = str(err)
    finally:
        if loadgen:
            children.stop(loadgen)
        children.stop(proc)
    return row


# ---- table ---------------------------------------------------------------------------


def fmt(value, spec="{:.0f}"):
    return "–" if value is None else spec.format(value)


def table(rows, v, args, load_start, load_end, started):
    camhub_cpu = {r["viewers"]: r.get("peer_cpu_pct") for r in rows if r["peer"] == "camhub"}
    short = {
        "camhub": v["camhub_rev"],
        "camhub-turbojpeg": v["camhub_rev"],
        "motion": v["motion"],
        "django": v["django"],
    }
    out = [
        "## RTSP H.264 → MJPEG: camhub vs Motion vs Django + OpenCV (loopback)",
        "",
        f"Run {started} UTC: `bench/compare.sh {' '.join(args.original_argv)}`".rstrip(),
        f"({args.duration_secs:g} s measured per row after a warm-up of at least"
        f" {args.warmup_secs:g} s;"
        " each row a fresh server.)",
        "",
        f"- Machine: {v['cpu']}, Linux {v['kernel']}; load average (1/5/15 min) at start"
        f" {load_start}, at end {load_end}",
        f"- camhub {v['camhub']} (git {v['camhub_rev']}); Motion {v['motion']} (Debian);"
        f" {v['python_pkgs']}",
        f"- Source: GStreamer {v['gstreamer']} RTSP server, 640×480@15 H.264 (x264 ultrafast,"
        " zerolatency, GOP 15), one shared pipeline, wall-clock barcode in every frame;"
        " JPEG quality 80 in every server",
        "",
        "| peer | version | viewers | server CPU % | CPU vs camhub | RSS MiB"
        " | fps/viewer min / median | latency p50 / p99 ms | barcodes read | start-up s"
        " | RTSP source CPU % | loadgen CPU % |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    for r in rows:
        load = r.get("load") or {}
        lat = load.get("latency_ms") or {}
        cpu = r.get("peer_cpu_pct")
        base = camhub_cpu.get(r["viewers"])
        if cpu is not None and base and base >= 1.0:
            ratio = f"{cpu / base:.1f}×"
        else:
            ratio = "–"
        if r["viewers"]:
            fps = f"{fmt(load.get('fps_min'), '{:.1f}')} / {fmt(load.get('fps_median'), '{:.1f}')}"
            latency = f"{fmt(lat.get('p50'))} / {fmt(lat.get('p99'))}"
            sampled = load.get("decoded", 0) + load.get("decode_failures", 0)
            barcodes = f"{load.get('decoded', 0)}/{sampled}" if load else "–"
            startup = fmt(load.get("warmup_secs"), "{:.1f}")
        else:
            fps = latency = barcodes = startup = "idle"
        out.append(
            f"| {r['peer']} | {short.get(r['peer'], '?')} | {r['viewers']} | {fmt(cpu, '{:.1f}')}"
            f" | {ratio} | {fmt(r.get('rss_mib'), '{:.1f}')} | {fps} | {latency} | {barcodes}"
            f" | {startup} | {fmt(r.get('clock_cpu_pct'), '{:.1f}')}"
            f" | {fmt(r.get('loadgen_cpu_pct'), '{:.1f}')} |"
        )
        if r.get("error"):
            notes.append(f"- {r['peer']}, {r['viewers']} viewers: {r['error']}")
        if load.get("viewers_without_frame"):
            notes.append(
                f"- {r['peer']}, {r['viewers']} viewers: {load['viewers_without_frame']} viewer(s)"
                f" still without a frame when the window started ({load['warmup_secs']} s after"
                " connecting)"
            )
        if load.get("errors"):
            for reason, count in load["errors"].items():
                notes.append(f"- {r['peer']}, {r['viewers']} viewers: {count} viewer(s) {reason}")
    out += [
        "",
        "CPU % is of one core, summed over the server's whole process tree (utime+stime of"
        " every descendant, including reaped children) over the measured window. RSS is the"
        " largest ~1 s sample of VmRSS summed over the tree. fps/viewer counts whole JPEG"
        " parts each viewer received. Latency is receive time of a part's last byte minus"
        " the capture time in its barcode (every frame of viewer 0, every 5th frame of up to"
        " 9 more viewers); it includes x264 encoding and RTSP. Start-up: seconds from the"
        " first viewer's connect until every viewer had a frame (the window starts then;"
        f" at least the warm-up, at most {args.max_warmup_secs:g} s). CPU vs camhub compares"
        " server CPU at the same viewer count (– when camhub's is under 1 %).",
    ]
    if notes:
        out += ["", "Notes:", *notes]
    return "\n".join(out) + "\n"


def parse_list(text):
    values = [int(x) for x in text.split(",") if x.strip()]
    for value in values:
        if not 0 <= value <= MAX_VIEWERS:
            raise argparse.ArgumentTypeError(f"viewer counts must be 0..{MAX_VIEWERS}")
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--camhub", required=True, help="camhub binary (a private copy)")
    parser.add_argument("--camhub-turbojpeg", help="camhub built with --features turbojpeg")
    parser.add_argument("--loadgen-python", required=True, help="python with numpy and cv2")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--viewers", type=parse_list, help="viewer counts for every peer")
    for peer in PEERS:
        parser.add_argument(f"--viewers-{peer}", type=parse_list, dest=f"viewers_{peer.replace('-', '_')}")
    parser.add_argument("--duration-secs", type=float, default=20.0)
    parser.add_argument("--warmup-secs", type=float, default=5.0)
    parser.add_argument(
        "--max-warmup-secs", type=float, default=120.0,
        help="longest wait for every viewer's first frame before the window starts",
    )
    parser.add_argument("--json-out")
    parser.add_argument("--pid-file")
    parser.add_argument("--workdir", help="for logs and configs (default: a new temp dir)")
    parser.add_argument("--argv-for-report", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.original_argv = args.argv_for_report.split()
    if not 1 <= args.duration_secs <= MAX_DURATION_SECS:
        parser.error(f"--duration-secs must be 1..{MAX_DURATION_SECS}")
    if not 1 <= args.warmup_secs <= MAX_WARMUP_SECS:
        parser.error(f"--warmup-secs must be 1..{MAX_WARMUP_SECS}")
    if not args.warmup_secs <= args.max_warmup_secs <= MAX_LONG_WARMUP_SECS:
        parser.error(f"--max-warmup-secs must be --warmup-secs..{MAX_LONG_WARMUP_SECS}")
    peers = [p for p in args.peers.split(",") if p]
    for peer in peers:
        if peer not in PEERS:
            parser.error(f"unknown peer {peer!r} (known: {', '.join(PEERS)})")

    configs = []
    for peer in peers:
        counts = getattr(args, f"viewers_{peer.replace('-', '_')}") or args.viewers or DEFAULT_VIEWERS[peer]
        if not peer_available(peer, args):
            log(f"skipping {peer}: not installed / not found")
            continue
        configs += [(peer, n) for n in counts]

    # SIGTERM ends the run like Ctrl-C, so the finally below stops every child.
    def on_sigterm(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    children = Children(args.pid_file)
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        workdir = args.workdir
    else:
        workdir = tempfile.mkdtemp(prefix="camhub-compare-")
    rows = []
    status = 0
    try:
        started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        v = versions(args)
        load_start = loadavg()
        clock_port = free_port()
        clock = children.spawn(
            ["/usr/bin/python3", os.path.join(HERE, "rtsp_clock.py"), "--port", str(clock_port)],
            os.path.join(workdir, "rtsp_clock.log"),
            stdout=subprocess.PIPE,
        )
        line = clock.stdout.readline().decode().strip()
        if not line.startswith("ready "):
            raise RuntimeError(f"rtsp_clock.py did not start (see {workdir}/rtsp_clock.log)")
        rtsp_url = line.split()[1]
        log(f"RTSP clock at {rtsp_url}; {len(configs)} configurations; logs in {workdir}")
        for peer, viewers in configs:
            log(f"{peer} with {viewers} viewers ...")
            row = run_config(peer, viewers, args, children, workdir, clock, rtsp_url)
            load = row.get("load") or {}
            log(
                f"  cpu {row.get('peer_cpu_pct')} %, fps min/median {load.get('fps_min')}"
                f"/{load.get('fps_median')}, latency {load.get('latency_ms')}"
                + (f", error: {row['error']}" if row.get("error") else "")
            )
            rows.append(row)
        load_end = loadavg()
        report = table(rows, v, args, load_start, load_end, started)
        sys.stdout.write(report)
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump({"versions": v, "rows": rows}, f, indent=1)
        if any(r.get("error") for r in rows):
            status = 1
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    except RuntimeError as err:
        log(str(err))
        status = 1
    finally:
        children.stop_all()
    sys.exit(status)


if __name__ == "__main__":
    main()
