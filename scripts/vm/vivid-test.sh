#!/usr/bin/env bash
# scripts/vm/vivid-test.sh — camhub against real V4L2: the kernel's `vivid` virtual camera.
#
# Boots Debian's arm64 kernel in qemu-system-aarch64 (-M virt, TCG) with a small busybox
# initramfs that loads vivid and runs the aarch64 release build of camhub with NO config
# (auto-discovery) and `--no-mdns --listen 0.0.0.0:8080`. The guest's only network is qemu
# user-mode networking with restrict=on (no outbound access) and one port forward from
# 127.0.0.1:PORT on the host to camhub; the host talks to 127.0.0.1 only.
#
# Checks: /api/streams lists the vivid capture devices (kind v4l2) and none of vivid's
# other nodes (video output, metadata capture); each gets Live; two snapshots decode at the
# size the API reports, differ and show vivid's colour bars in the right colours;
# /stream/ID yields several decodable, changing JPEGs (the raw YUYV -> JPEG path). Then
# (auto-discovery) the cameras are unplugged and replugged by unbinding and rebinding the
# vivid platform device (commands sent over a virtio console): the streams leave Live,
# /snapshot answers 503 and /stream sends OFFLINE placeholders; vivid is then reloaded
# with one more instance: the old streams come back Live under the same ids and the new
# camera is added by the hot-plug watcher, with no duplicates and no non-capture nodes.
# Prints PASS/FAIL lines, the build/fetch/boot/total times, and the tail of the guest
# console on failure. qemu is killed by PID on every exit path (and gets SIGKILL through
# PR_SET_PDEATHSIG if this script itself is killed).
#
# Cache/CI: the first run needs root (or sudo -n) for `dpkg --add-architecture arm64` and
# `apt-get update`, and downloads ~61 MB (kernel + busybox .debs, unpacked and pruned to
# ~44 MB in target/vm-cache). Later runs download nothing. Cache key: package versions.
#
# Usage: scripts/vm/vivid-test.sh [--explicit | --pattern] [--bin PATH] [--no-build] [--keep]
#   (default)   auto-discovery: camhub runs with no config and no --source
#   --explicit  the V4L2 source without discovery: --source camN=v4l2:///dev/videoN for
#               each vivid capture node, same checks
#   --pattern   harness self-test without V4L2 code: camhub --source t=pattern:... and the
#               same snapshot/stream checks (vivid is still loaded and listed)
#   --bin PATH  test this aarch64 binary (implies --no-build)
#   --no-build  do not run cargo; use target/aarch64-unknown-linux-gnu/release/camhub
#   --keep      keep the work directory (console log, captures) even on success
#   --no-hotplug  skip the unplug/replug step (auto-discovery mode only)
# Env: VM_BOOT_TIMEOUT (120)  s from qemu start to camhub answering over the forward
#      VM_LIVE_TIMEOUT (60)   s for the discovered streams to become Live
#      VM_PORT                host port for the forward (default: a free one)
#      VM_SMP (2)             guest CPUs
#      VIVID_OPTS             vivid module options (default below)
#      VM_CACHE               package cache (default target/vm-cache)
#      VM_OFFLINE=1           never run apt-get update; use the cache when apt lacks arm64
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/errtrap.sh"
T0=$SECONDS
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/vm/lib.sh
source scripts/vm/lib.sh
if [[ -d ${CARGO_HOME:-$HOME/.cargo}/bin ]]; then PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"; fi

TARGET=aarch64-unknown-linux-gnu
BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-120}
LIVE_TIMEOUT=${VM_LIVE_TIMEOUT:-60}
# Two vivid instances, one input each (input type 0 = webcam):
#   vivid 0: video capture only                      (0x1)
#   vivid 1: video capture + raw VBI capture + video output + metadata capture (0x20105)
# so /dev/video* holds capture, output and metadata nodes and discovery must pick the
# two capture nodes only. (node_types bits: Documentation/admin-guide/media/vivid.rst)
VIVID_OPTS=${VIVID_OPTS:-n_devs=2 node_types=0x1,0x20105 num_inputs=1,1 input_types=0x0,0x0 no_error_inj=1}
EXPECT_CAPTURE=${VM_EXPECT_CAPTURE:-2}
# The replug step reloads vivid with a third instance (a camera camhub has not seen).
REPLUG_VIVID_OPTS="n_devs=3 node_types=0x1,0x20105,0x1 num_inputs=1,1,1 input_types=0x0,0x0,0x0 no_error_inj=1"

MODE=discover BIN="" BUILD=1 KEEP=0 HOTPLUG=1
while (($#)); do
    case $1 in
        --pattern) MODE=pattern; shift ;;
        --explicit) MODE=explicit; shift ;;
        --bin) BIN=${2:?--bin needs a path}; BUILD=0; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        --no-hotplug) HOTPLUG=0; shift ;;
        -h|--help) sed -n '2,37p' "$0"; exit 0 ;;
        *) echo "vivid-test: unknown argument: $1" >&2; exit 2 ;;
    esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/camhub-vm.XXXXXX")
CONSOLE=$WORK/console.log
QPID=""
FAILS=0
pass() { printf 'PASS: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; FAILS=$((FAILS + 1)); }
stop_qemu() {
    if [[ -n $QPID ]] && kill -0 "$QPID" 2>/dev/null; then
        kill "$QPID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$QPID" 2>/dev/null || true
        wait "$QPID" 2>/dev/null || true
    fi
    QPID=""
}
on_exit() {
    local rc=$?
    stop_qemu
    ((rc == 0 && FAILS == 0)) || rc=1
    if ((rc != 0)) && [[ -s $CONSOLE ]]; then
        echo "---- last 60 lines of the guest console ($CONSOLE) ----"
        tail -n 60 "$CONSOLE" | sed 's/\x1b\[[0-9;]*m//g'  # without tracing's colours
        echo "----"
    fi
    if ((rc == 0)); then
        printf 'vivid-test: PASS (%s mode) in %ss\n' "$MODE" "$((SECONDS - T0))"
        if ((KEEP)); then echo "vivid-test: kept $WORK"; else rm -rf "$WORK"; fi
    else
        printf 'vivid-test: FAIL (%s mode) after %ss; work dir kept: %s\n' "$MODE" "$((SECONDS - T0))" "$WORK"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

need() { command -v "$1" >/dev/null 2>&1 || vm_die "missing $1 (run scripts/deps.sh)"; }
for c in qemu-system-aarch64 cpio depmod modprobe dpkg-deb curl ffprobe ffmpeg python3 aarch64-linux-gnu-readelf; do need "$c"; done

# ---- binary ---------------------------------------------------------------------------
T_BUILD=$SECONDS
if [[ -z $BIN ]]; then
    BIN=${CARGO_TARGET_DIR:-target}/$TARGET/release/camhub
    if ((BUILD)); then
        vm_log "cargo build --release --locked --target $TARGET"
        cargo build -q --release --locked --target "$TARGET"
    fi
fi
[[ -x $BIN ]] || vm_die "no aarch64 binary at $BIN"
T_BUILD=$((SECONDS - T_BUILD))

# ---- packages and initramfs -----------------------------------------------------------
T_FETCH=$SECONDS
vm_fetch
T_FETCH=$((SECONDS - T_FETCH))
ARGS="--no-mdns --listen 0.0.0.0:8080"
case $MODE in
    pattern) ARGS+=" --source t=pattern:?size=320x240&fps=5" ;;
    # vivid numbers its nodes in load order: with the default options the capture nodes
    # are video0 and video1 (checked against the guest's sysfs names below).
    explicit) ARGS+=" --source cam0=v4l2:///dev/video0 --source cam1=v4l2:///dev/video1" ;;
esac
printf "VIVID_OPTS='%s'\nCAMHUB_ARGS='%s'\n" "$VIVID_OPTS" "$ARGS" >"$WORK/vm.conf"
T_INITRD=$SECONDS
vm_initramfs "$WORK/initrd.cpio" "$BIN" "$WORK/vm.conf"
vm_log "initramfs $(du -h "$WORK/initrd.cpio" | cut -f1) in $((SECONDS - T_INITRD))s; packages ready in ${T_FETCH}s"

# ---- boot -----------------------------------------------------------------------------
PORT=${VM_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BASE=http://127.0.0.1:$PORT
CURL=(curl -sS --noproxy '*' --max-time 5)
# Host -> guest command channel (a FIFO pair qemu holds open, so writes never block).
mkfifo "$WORK/ctl.in" "$WORK/ctl.out"
vm_ctl() { timeout 5 bash -c 'printf "%s\n" "$1" >"$2"' _ "$*" "$WORK/ctl.in"; }
T_BOOT=$SECONDS
# restrict=on: the guest reaches nothing outside; the one hostfwd binds 127.0.0.1 only.
# virtio-net-device (virtio-mmio) needs no PCI option ROM.
# setpriv --pdeathsig: qemu dies with this script even if the script is SIGKILLed (the
# traps below cover every other exit).
PDEATH=()
setpriv --help 2>/dev/null | grep -q pdeathsig && PDEATH=(setpriv --pdeathsig KILL)
"${PDEATH[@]}" qemu-system-aarch64 -M virt -cpu cortex-a57 -m 1024 -smp "${VM_SMP:-2}" -nographic -no-reboot \
    -kernel "$VM_KERNEL" -initrd "$WORK/initrd.cpio" \
    -append "console=ttyAMA0 panic=-1 loglevel=4" \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:8080" \
    -device virtio-net-device,netdev=n0 \
    -device virtio-serial-device -chardev "pipe,id=ctl,path=$WORK/ctl" \
    -device virtconsole,chardev=ctl \
    </dev/null >"$CONSOLE" 2>&1 &
QPID=$!
vm_log "qemu pid $QPID, camhub at $BASE (console: $CONSOLE)"

up=0
while ((SECONDS - T_BOOT < BOOT_TIMEOUT)); do
    kill -0 "$QPID" 2>/dev/null || { fail "qemu exited early"; exit 1; }
    if "${CURL[@]}" -f -o "$WORK/streams.json" "$BASE/api/streams" 2>/dev/null; then up=1; break; fi
    sleep 0.5
done
T_UP=$((SECONDS - T_BOOT))
if ((up)); then pass "camhub answers through the 127.0.0.1:$PORT forward ${T_UP}s after qemu start"
else fail "camhub did not answer within ${BOOT_TIMEOUT}s"; exit 1; fi
sed -n 's/^vm-init: //p' "$CONSOLE" | grep -E 'modules loaded|V4L2 nodes|video[0-9]+:|/dev/' | sed 's/^/  guest: /'

# Capture nodes as the guest saw them (sysfs names end in -vid-cap).
mapfile -t CAP_NODES < <(sed -n 's/^vm-init:   \(video[0-9]*\): .*-vid-cap\r*$/\/dev\/\1/p' "$CONSOLE")
mapfile -t ALL_NODES < <(sed -n 's/^vm-init:   \(video[0-9]*\): .*/\/dev\/\1/p' "$CONSOLE")
if ((${#CAP_NODES[@]} == EXPECT_CAPTURE)); then
    pass "vivid made ${#ALL_NODES[@]} /dev/video nodes, ${#CAP_NODES[@]} of them capture (${CAP_NODES[*]})"
else
    fail "expected $EXPECT_CAPTURE vivid capture nodes, guest shows: ${ALL_NODES[*]:-none}"
fi

# ---- streams --------------------------------------------------------------------------
# Prints the id of each wanted stream once all are Live; exit 1 while waiting.
api_ready() {
    python3 - "$WORK/streams.json" "$MODE" "$EXPECT_CAPTURE" "${CAP_NODES[*]}" <<'PY'
import json, re, sys
streams = json.load(open(sys.argv[1]))
mode, expect, caps = sys.argv[2], int(sys.argv[3]), set(sys.argv[4].split())
want = [s for s in streams if s["kind"] == ("pattern" if mode == "pattern" else "v4l2")]
if mode == "pattern":
    expect = 1
for s in want:
    print("# %s kind=%s state=%s %sx%s url=%s err=%s" % (s["id"], s["kind"], s["state"],
          s.get("width"), s.get("height"), s["url"], s.get("last_error")), file=sys.stderr)
bad = [s["url"] for s in want if mode != "pattern"
       and any(d not in caps for d in re.findall(r"/dev/video\d+", s["url"]))]
if bad:
    print("# non-capture node among streams: %s" % bad, file=sys.stderr)
    sys.exit(2)
if len(want) != expect:
    print("# %d streams of the wanted kind, expected %d" % (len(want), expect), file=sys.stderr)
    sys.exit(3 if len(want) > expect else 1)
if not all(s["state"] == "live" for s in want):
    sys.exit(1)
for s in want:
    print(s["id"])
PY
}
T_LIVE=$SECONDS
rc=1
while ((SECONDS - T_LIVE < LIVE_TIMEOUT)); do
    "${CURL[@]}" -f -o "$WORK/streams.json" "$BASE/api/streams" 2>/dev/null || true
    rc=0; api_ready >"$WORK/ready.txt" 2>"$WORK/ready.err" || rc=$?
    ((rc == 1)) || break
    kill -0 "$QPID" 2>/dev/null || break
    sleep 1
done
sed 's/^# /  api: /' "$WORK/ready.err" | sort -u
case $rc in
    0) pass "/api/streams: $(wc -l <"$WORK/ready.txt") $MODE stream(s) live $((SECONDS - T_LIVE))s after first answer" ;;
    2) fail "/api/streams lists a non-capture vivid node" ;;
    3) fail "/api/streams lists more $MODE streams than capture nodes" ;;
    *) fail "$MODE streams not all live within ${LIVE_TIMEOUT}s"; exit 1 ;;
esac

# ---- frames ---------------------------------------------------------------------------
jpeg_size() {  # prints WxH of a JPEG that fully decodes, or fails
    ffmpeg -nostdin -v error -xerror -i "$1" -f null - >/dev/null 2>&1 || return 1
    ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0:s=x "$1"
}
api_size() {  # WxH the API reports for stream $1 (known once a frame was made)
    "${CURL[@]}" -f "$BASE/api/streams" | python3 -c '
import json, sys
s = [s for s in json.load(sys.stdin) if s["id"] == sys.argv[1]][0]
print("%sx%s" % (s["width"], s["height"]))' "$1"
}
while read -r id; do
    d=$WORK/frames-$id
    mkdir -p "$d"
    # Two snapshots a moment apart: decodable, the size the API reports, different.
    # (A source may only make frames while watched: the API knows the size after one.)
    "${CURL[@]}" -f -o "$d/snap1.jpg" "$BASE/snapshot/$id" || true
    size=$(api_size "$id" || echo unknown)
    w=${size%x*} h=${size#*x}
    if [[ $MODE == pattern && $size != 320x240 ]]; then
        fail "$id: API size $size, the pattern was asked for 320x240"
    elif [[ $size == *None* || $size == unknown ]]; then
        fail "$id: API reports no size after a snapshot"
    else
        pass "$id: API reports ${size} after a snapshot"
    fi
    sleep 1.5
    "${CURL[@]}" -f -o "$d/snap2.jpg" "$BASE/snapshot/$id" || true
    s1=$(jpeg_size "$d/snap1.jpg" || echo bad) s2=$(jpeg_size "$d/snap2.jpg" || echo bad)
    if [[ $s1 == "${w}x${h}" && $s2 == "${w}x${h}" ]]; then
        pass "$id: two snapshots decode as ${w}x${h} JPEGs"
    else
        fail "$id: snapshots are '$s1' and '$s2', API says ${w}x${h}"
    fi
    if [[ -s $d/snap1.jpg ]] && ! cmp -s "$d/snap1.jpg" "$d/snap2.jpg"; then
        pass "$id: snapshots differ (the picture moves)"
    else
        fail "$id: snapshots are identical or missing"
    fi
    # vivid's test pattern is 75% colour bars: white, yellow, cyan, green, magenta, red,
    # blue, black. Sampling them catches a wrong YUYV byte order or chroma swap.
    if [[ $MODE != pattern && -s $d/snap2.jpg ]]; then
        bars=$(ffmpeg -nostdin -v error -i "$d/snap2.jpg" -f rawvideo -pix_fmt rgb24 - | python3 -c '
import sys
w, h = int(sys.argv[1]), int(sys.argv[2])
rgb = sys.stdin.buffer.read()
y = h * 7 // 8  # below the text overlay
out = []
for i in range(8):
    x = w * (2 * i + 1) // 16
    p = rgb[3 * (y * w + x):3 * (y * w + x) + 3]
    out.append("".join("1" if c > 110 else "0" if c < 60 else "?" for c in p))
print(" ".join(out))' "$w" "$h" || echo error)
        if [[ $bars == "111 110 011 010 101 100 001 000" ]]; then
            pass "$id: colour bars in the right order and colours (RGB classes: $bars)"
        else
            fail "$id: colour bars wrong: got '$bars', want 111 110 011 010 101 100 001 000"
        fi
    fi
    # /stream/ID for 4 s: several complete parts, all decodable, not all equal.
    curl -sS --noproxy '*' --max-time 4 -o "$d/stream.bin" "$BASE/stream/$id" 2>/dev/null || true
    read -r n distinct < <(python3 scripts/vm/mjpeg_parts.py "$d/stream.bin" "$d/parts")
    # One ffprobe decodes every part (image2 sequence); any decode error counts as bad.
    bad=0
    if ((n > 0)); then
        ok=$(ffprobe -v error -f image2 -i "$d/parts/part-%03d.jpg" -show_entries frame=width,height \
            -of csv=p=0:s=x 2>"$d/parts.err" | grep -cx "${w}x${h}" || true)
        bad=$((n - ok))
        [[ -s $d/parts.err ]] && bad=$((bad + 1)) && sed 's/^/  ffprobe: /' "$d/parts.err" | head -5
    fi
    if ((n >= 3 && distinct >= 2 && bad == 0)); then
        pass "$id: /stream gave $n JPEG parts in 4 s, $distinct distinct, all decode as ${w}x${h}"
    else
        fail "$id: /stream gave $n parts ($distinct distinct, $bad undecodable or wrong size)"
    fi
done <"$WORK/ready.txt"

# ---- unplug / replug ------------------------------------------------------------------
# States of the v4l2 streams as "id=state ..." (for the log and the checks below).
v4l2_states() {
    "${CURL[@]}" -f "$BASE/api/streams" 2>/dev/null | python3 -c '
import json, sys
print(" ".join("%s=%s" % (s["id"], s["state"]) for s in json.load(sys.stdin) if s["kind"] == "v4l2"))'
}
# wait_states SECONDS PYTHON-CONDITION-ON-st (dict id -> state): 0 when it holds.
wait_states() {
    local limit=$1 cond=$2 t=$SECONDS states
    while ((SECONDS - t < limit)); do
        states=$(v4l2_states || true)
        if python3 -c 'import sys; st = dict(p.split("=", 1) for p in sys.argv[1].split()); ids = sys.argv[2].split(); sys.exit(0 if ('"$cond"') else 1)' \
            "$states" "$(tr '\n' ' ' <"$WORK/ready.txt")"; then
            WAITED=$((SECONDS - t)) STATES=$states; return 0
        fi
        sleep 1
    done
    WAITED=$((SECONDS - t)) STATES=$states; return 1
}
if [[ $MODE == discover ]] && ((HOTPLUG)) && ((FAILS == 0)); then
    vm_ctl 'echo vivid.0 >/sys/bus/platform/drivers/vivid/unbind; ls /dev/video* 2>&1 | tr "\n" " "; echo' \
        || fail "could not send the unplug command"
    if wait_states 30 'all(st.get(i) not in (None, "live") for i in ids)'; then
        pass "unplug (vivid unbound): every stream left Live within ${WAITED}s ($STATES)"
    else
        fail "unplug: streams still live after ${WAITED}s ($STATES)"
    fi
    id=$(head -n1 "$WORK/ready.txt")
    # Down: /snapshot says so (503 + reason), /stream sends OFFLINE placeholder JPEGs.
    code=$("${CURL[@]}" -o "$WORK/offline.txt" -w '%{http_code}' "$BASE/snapshot/$id" || true)
    if [[ $code == 503 ]]; then
        pass "$id: while unplugged, /snapshot answers 503: $(head -c 150 "$WORK/offline.txt" | tr -d '\n')"
    else
        fail "$id: while unplugged, /snapshot answers '$code'"
    fi
    curl -sS --noproxy '*' --max-time 3 -o "$WORK/offline.bin" "$BASE/stream/$id" 2>/dev/null || true
    read -r n _ < <(python3 scripts/vm/mjpeg_parts.py "$WORK/offline.bin" "$WORK/offline-parts")
    s=$(jpeg_size "$WORK/offline-parts/part-000.jpg" 2>/dev/null || echo none)
    if ((n >= 1)) && [[ $s != none ]] && grep -qai '^x-camhub-offline' "$WORK/offline.bin"; then
        pass "$id: while unplugged, /stream sends $n OFFLINE placeholder part(s) in 3 s ($s, X-Camhub-Offline)"
    else
        fail "$id: while unplugged, /stream sent $n parts (first: $s) without a marked placeholder"
    fi
    # Replug, plus a camera that was not there before: reload vivid with a third
    # instance (possible now that camhub holds no open node). Old nodes come back under
    # the same /dev/videoN; the new capture node is one discovery has never seen.
    vm_ctl "rmmod vivid && insmod /lib/modules/vivid.ko $REPLUG_VIVID_OPTS;" \
        'for d in /sys/class/video4linux/video*; do echo "  ${d##*/}: $(cat $d/name)"; done' \
        || fail "could not send the replug command"
    if wait_states 60 'all(st.get(i) == "live" for i in ids)'; then
        pass "replug (vivid reloaded): the same streams are Live again after ${WAITED}s ($STATES)"
    else
        fail "replug: streams not all live after ${WAITED}s ($STATES)"
    fi
    newnode=$(sed -n 's/^vm-ctl:   \(video[0-9]*\): vivid-002-vid-cap\r*$/\/dev\/\1/p' "$CONSOLE" | head -n1)
    # Hot-add: a new live v4l2 stream for the new node (the watcher polls every few s).
    if wait_states 30 'len(st) > len(ids) and all(v == "live" for v in st.values())'; then
        pass "hot-plug: the new camera ${newnode:-?} became a live stream within ${WAITED}s ($STATES)"
    else
        fail "hot-plug: no new live stream for ${newnode:-the new node} after ${WAITED}s ($STATES)"
    fi
    "${CURL[@]}" -f -o "$WORK/streams.json" "$BASE/api/streams" || true
    extra=$(python3 -c '
import json, sys
s = [s for s in json.load(open(sys.argv[1])) if s["kind"] == "v4l2"]
print(len(s), " ".join(sorted(s["url"] for s in s)))' "$WORK/streams.json")
    want="3 v4l2:///dev/video0 v4l2:///dev/video1 v4l2://$newnode"
    if [[ $extra == "$want" ]]; then
        pass "after replug: 3 v4l2 streams, one per capture node, none for output/metadata nodes"
    else
        fail "after replug: streams are '$extra', want '$want'"
    fi
    for id in $(head -n1 "$WORK/ready.txt") $(python3 -c '
import json, sys
print(" ".join(s["id"] for s in json.load(open(sys.argv[1]))
               if s["kind"] == "v4l2" and s["url"].endswith(sys.argv[2])))' "$WORK/streams.json" "${newnode:-none}"); do
        "${CURL[@]}" -f -o "$WORK/replugged-$id.jpg" "$BASE/snapshot/$id" || true
        s=$(jpeg_size "$WORK/replugged-$id.jpg" || echo bad)
        if [[ $s == "$(api_size "$id" || echo unknown)" && $s != bad ]]; then
            pass "$id: after replug, /snapshot is a $s camera JPEG"
        else
            fail "$id: after replug, /snapshot is '$s'"
        fi
    done
    sed -n 's/^\(vm-ctl: .*\)\r*$/  guest: \1/p' "$CONSOLE"
fi

# camhub still running (no panic) and the guest still up.
if "${CURL[@]}" -f -o /dev/null "$BASE/api/streams" && ! grep -q 'panicked' "$CONSOLE"; then
    pass "camhub still serving, no panic on the console"
else
    fail "camhub stopped answering or panicked"
fi
stop_qemu
printf 'vivid-test: timings: build %ss, packages %ss, boot-to-HTTP %ss, total %ss\n' \
    "$T_BUILD" "$T_FETCH" "$T_UP" "$((SECONDS - T0))"
((FAILS == 0))
