#!/usr/bin/env bash
# The Pi's cost of one grid tile (issue #12), in aarch64 instructions counted under
# qemu-aarch64 (/work/shared/tools/a64-cost.sh and its plugin; counts repeat from run to
# run, unlike times on a shared machine). One H.264 RTSP camera (GStreamer,
# tests/peers/rtsp_server.py, 1280x720@15, keyframe every 15 frames), three ways:
#   full        /stream/s at full size                        (a64-cost.sh)
#   tile        /stream/s?width=320 made from the main stream (a64-cost.sh)
#   tile+sub    /stream/s?width=320 with sub_url = a 640x360 H.264 sub-stream of the same
#               camera (a second server): the main stream should not be decoded at all,
#               so the cost is given per second and per sub-stream frame, with both feeds'
#               frame rates as camhub counts them.
# and one JPEG-passthrough camera:
#   tile-mjpeg  bench/grid.sh's camera (testsrc2 + noise at the main size, -q:v 6, replayed
#               at 15 fps through exec:) read as /stream/s?width=366, the phone grid's tile:
#               per rendition made (decoded at a DCT scale, scaled, encoded).
# Instructions per frame are (watched − idle) / frames, as a64-cost.sh computes them.
#
#   bench/a64-grid.sh                     # builds the aarch64 turbojpeg camhub; ~2.5 min more
#   bench/a64-grid.sh --bin target/aarch64-unknown-linux-gnu/release/camhub --secs 20
#
# Options: --bin PATH (an aarch64 camhub; default: build it with --features turbojpeg and
# freeze a copy), --secs S (20, each measurement), --main-size WxH (1280x720), --sub-size
# WxH (640x360), --width W (320), --mjpeg-width W (366; 0 skips tile-mjpeg), --tool-dir DIR
# (where a64-cost.sh and insncount.c are; default $A64_TOOLS or /work/shared/tools). Needs
# qemu-user, gcc, libc6-dev-arm64-cross, ffmpeg, and GStreamer with gst-rtsp-server for
# Debian's /usr/bin/python3. Loopback only; every process it starts is stopped by PID.
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/errtrap.sh"
cd "$(dirname "$0")/.."

bin= secs=20 main_size=1280x720 sub_size=640x360 width=320 mjpeg_width=366
tools=${A64_TOOLS:-/work/shared/tools}
while (($#)); do
  case $1 in
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --bin) bin=${2:?}; shift 2 ;;
    --secs) secs=${2:?}; shift 2 ;;
    --main-size) main_size=${2:?}; shift 2 ;;
    --sub-size) sub_size=${2:?}; shift 2 ;;
    --width) width=${2:?}; shift 2 ;;
    --mjpeg-width) mjpeg_width=${2:?}; shift 2 ;;
    --tool-dir) tools=${2:?}; shift 2 ;;
    *) echo "a64-grid.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $tools/a64-cost.sh && -f $tools/insncount.c ]] ||
  { echo "a64-grid.sh: no a64-cost.sh/insncount.c in $tools (--tool-dir)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z $bin ]]; then
  echo "a64-grid.sh: building camhub (aarch64, turbojpeg, release)..." >&2
  cargo build --release --locked --target aarch64-unknown-linux-gnu --features turbojpeg >&2
  bin="${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/release/camhub"
fi
cp "$bin" "$tmp/camhub" # frozen: a rebuild mid-run cannot change what is measured
bin=$tmp/camhub

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# Starts a GStreamer RTSP server at SIZE on PORT (in this shell, so that its PID is kept
# for the cleanup), then waits until it says "ready".
start_rtsp() {
  local size=$1 port=$2 log=$tmp/rtsp-$1.log
  /usr/bin/python3 tests/peers/rtsp_server.py --port "$port" --size "$size" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do
    grep -q '^ready' "$log" && return 0
    sleep 0.2
  done
  echo "a64-grid.sh: RTSP server ($size) not ready: $(tail -3 "$log")" >&2
  return 1
}
main_port=$(free_port)
start_rtsp "$main_size" "$main_port"
sub_port=$(free_port)
start_rtsp "$sub_size" "$sub_port"
main_url=rtsp://127.0.0.1:$main_port/h264
sub_url=rtsp://127.0.0.1:$sub_port/h264

echo "## camhub a64 grid-tile cost"
echo
echo "- run: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo none); binary sha256 $(sha256sum "$bin" | cut -c1-12), $(file -b "$bin" | cut -d, -f1-2)"
echo "- machine: nproc $(nproc), load average at start $(cut -d' ' -f1-3 /proc/loadavg); $(qemu-aarch64 --version | head -1)"
echo "- camera: GStreamer $(/usr/bin/python3 -c 'import gi; gi.require_version("Gst","1.0"); from gi.repository import Gst; Gst.init(None); print(Gst.version_string().split()[-1])'), videotestsrc ball + timeoverlay, x264 ultrafast zerolatency, keyframe every 15; main $main_size@15, sub $sub_size@15"
echo "- each row: idle 10 s (no viewer), then one viewer, 6 s settling, $secs s counted"
echo

# full and tile: a64-cost.sh as it is.
run_cost() { # LABEL VIEW_PATH
  local out
  echo "a64-grid.sh: $1 ($2)..." >&2
  out=$("$tools/a64-cost.sh" "$bin" "$main_url" "$secs" "$2")
  echo "$1|$2|$out" >>"$tmp/rows"
}
run_cost full /stream/s
run_cost tile "/stream/s?width=$width"

# The cases a64-cost.sh cannot express (it only takes --source): its method with a config
# file, reading both feeds' frame counters and the rendition's own from /api/streams.
plug=${TMPDIR:-/tmp}/camhub-insncount.so
[[ -f $plug ]] || gcc -O2 -shared -fPIC -o "$plug" "$tools/insncount.c" -lpthread
run_config() { # LABEL CONFIG_TOML VIEW_PATH
  local label=$1 config=$2 view=$3 port count qemu viewer i0 i1 idle n0 n1 m0 m1 s0 s1 r0 r1
  local feed fw dn dm ds dr
  echo "a64-grid.sh: $label ($view)..." >&2
  port=$(free_port)
  count=$tmp/insn-$label.txt
  qemu-aarch64 -L /usr/aarch64-linux-gnu -plugin "$plug,out=$count" "$bin" \
    --listen "127.0.0.1:$port" --no-mdns --config "$config" >"$tmp/camhub-$label.log" 2>&1 &
  qemu=$!
  pids+=("$qemu")
  for _ in $(seq 1 100); do curl -fs -m 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.3; done
  # main frames, sub frames, rendition frames, the rendition's feed and picture width
  counters() {
    curl -s -m 3 "http://127.0.0.1:$port/api/streams" | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]
r = (s["renditions"] or [{}])[0]
print(s["frames"], (s["sub"] or {}).get("frames", 0), r.get("frames", 0), r.get("feed", "-"), r.get("frame_width", "-"))'
  }
  insn() { tail -1 "$count"; }
  sleep 5; i0=$(insn); sleep 5; i1=$(insn); idle=$(((i1 - i0) / 5))
  curl -s -N -m $((secs + 8)) "http://127.0.0.1:$port$view" -o /dev/null &
  viewer=$!
  pids+=("$viewer")
  sleep 6
  read -r m0 s0 r0 _ _ < <(counters); n0=$(insn)
  sleep "$secs"
  read -r m1 s1 r1 feed fw < <(counters); n1=$(insn)
  kill "$viewer" "$qemu" 2>/dev/null || true
  wait "$qemu" 2>/dev/null || true
  dn=$((n1 - n0)) dm=$((m1 - m0)) ds=$((s1 - s0)) dr=$((r1 - r0))
  echo "$label|$view|idle_insn_per_s=$idle watched_insn_per_s=$((dn / secs))" \
    "main_fps=$(echo "scale=1; $dm/$secs" | bc) sub_fps=$(echo "scale=1; $ds/$secs" | bc)" \
    "rendition_fps=$(echo "scale=1; $dr/$secs" | bc) feed=$feed frame_width=$fw" \
    "insn_per_sub_frame=$(((dn - idle * secs) / (ds > 0 ? ds : 1)))" \
    "insn_per_rendition=$(((dn - idle * secs) / (dr > 0 ? dr : 1)))" >>"$tmp/rows"
}

# tile+sub: the sub-stream should feed the tile and the main stream stay undecoded.
printf '[[stream]]\nid = "s"\nurl = "%s"\nsub_url = "%s"\n' "$main_url" "$sub_url" >"$tmp/sub.toml"
run_config tile+sub "$tmp/sub.toml" "/stream/s?width=$width"

# tile-mjpeg: the JPEG-passthrough camera of bench/grid.sh as a phone-grid tile.
if [[ $mjpeg_width != 0 ]]; then
  ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i "testsrc2=size=$main_size:rate=15" \
    -vf "noise=alls=12:allf=t+u:all_seed=1" -frames:v 45 -pix_fmt yuvj420p -c:v mjpeg -q:v 6 \
    -f mjpeg "$tmp/clip.mjpeg"
  {
    echo '[[stream]]'
    echo 'id = "s"'
    echo "url = '''exec:exec /usr/bin/python3 $PWD/bench/grid/replay.py $tmp/clip.mjpeg 15'''"
  } >"$tmp/mjpeg.toml"
  run_config tile-mjpeg "$tmp/mjpeg.toml" "/stream/s?width=$mjpeg_width"
fi

echo "| case | viewer reads | fps as camhub counts them | idle M insn/s | watched M insn/s | net M insn/s (watched − idle) | M insn per frame | net share of a Pi 4 core (1.5 G insn/s) |"
echo "|---|---|---|--:|--:|--:|--:|--:|"
mi() { printf '%.1f' "$(echo "scale=3; $1 / 1000000" | bc)"; }
while IFS='|' read -r label view kv; do
  declare -A v=()
  for pair in $kv; do v[${pair%%=*}]=${pair#*=}; done
  net=$((v[watched_insn_per_s] - v[idle_insn_per_s]))
  case $label in
    tile+sub)
      fps="main ${v[main_fps]}, sub ${v[sub_fps]}, rendition ${v[rendition_fps]} (feed ${v[feed]}, ${v[frame_width]} px)"
      per="$(mi "${v[insn_per_sub_frame]}") per sub frame"
      ;;
    tile-mjpeg)
      fps="main ${v[main_fps]} (passthrough), rendition ${v[rendition_fps]} (${v[frame_width]} px)"
      per="$(mi "${v[insn_per_rendition]}") per rendition"
      ;;
    *)
      fps="main ${v[fps]}"
      per="$(mi "${v[insn_per_frame]}") per main frame"
      ;;
  esac
  echo "| $label | \`$view\` | $fps | $(mi "${v[idle_insn_per_s]}") | $(mi "${v[watched_insn_per_s]}") | $(mi "$net") | $per | $(printf '%.1f' "$(echo "scale=3; 100 * $net / 1500000000" | bc)") % |"
  unset v
done <"$tmp/rows"
echo
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- raw: $(tr '\n' ';' <"$tmp/rows")"
