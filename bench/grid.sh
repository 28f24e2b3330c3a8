#!/usr/bin/env bash
# Phone-grid benchmark (issue #12): the bytes a phone's grid receives for 12 camera-like
# MJPEG streams, at full size and as tile-sized renditions, and the CPU camhub spends making
# the renditions, for each JPEG backend.
#
# The cameras: ffmpeg `testsrc2` with temporal noise (`noise=alls=12:allf=t+u`), encoded once
# per size as MJPEG at `-q:v 6` (--clips distinct clips, different noise seeds), replayed at
# 15 fps by bench/grid/replay.py through camhub `exec:` streams (a pipe, like rpicam-vid).
# For each binary and size, bench/grid/run.py starts one camhub with the 12 streams, then:
#   no viewer   camhub receiving the 12 streams, nobody watching (its baseline CPU)
#   full size   one client reads /mux?ids=<all 12>&fps=5          (today's grid)
#   width=366   one client reads /mux?ids=<all 12>&fps=5&width=366 (a 390-px phone at DPR 2)
# each after a warm-up, for a fixed window, in the same camhub, one after the other.
# camhub's CPU is utime+stime of its own process (/proc/PID/stat: all its threads, none of
# the replayers', which are separate processes); the replayers' and the load generator's
# CPU are reported apart. Prints Markdown; keeps it and the raw JSON in bench-out/.
#
#   bench/grid.sh                       # builds default + turbojpeg, 720p and 1080p, ~5 min
#   bench/grid.sh --sizes 1280x720 --window-secs 5 --idle-secs 3
#   bench/grid.sh --bin default=/tmp/a/camhub --bin turbojpeg=/tmp/b/camhub   # no build
#
# Options: --bin LABEL=PATH (repeatable; default: build the working tree twice, frozen
# copies), --sizes LIST (1280x720,1920x1080), --cameras N (12), --width W (366),
# --tile-fps F (5), --window-secs S (15), --warmup-secs S (3), --idle-secs S (10),
# --rounds N (1; a second round repeats the grids in the other order), --clips N (4),
# --clip-frames N (45). Loopback only; camhub runs with --no-mdns; everything started is
# stopped at the end (and camhub is SIGKILLed if run.py dies).
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/errtrap.sh"
cd "$(dirname "$0")/.."

bins=() sizes=1280x720,1920x1080 cameras=12 width=366 tile_fps=5 window=15 warmup=3 idle=10
rounds=1 nclips=4 clip_frames=45 source_fps=15
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --bin) bins+=("${2:?--bin LABEL=PATH}"); shift 2 ;;
    --sizes) sizes=${2:?}; shift 2 ;;
    --cameras) cameras=${2:?}; shift 2 ;;
    --width) width=${2:?}; shift 2 ;;
    --tile-fps) tile_fps=${2:?}; shift 2 ;;
    --window-secs) window=${2:?}; shift 2 ;;
    --warmup-secs) warmup=${2:?}; shift 2 ;;
    --idle-secs) idle=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --clips) nclips=${2:?}; shift 2 ;;
    --clip-frames) clip_frames=${2:?}; shift 2 ;;
    *) echo "grid.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in ffmpeg /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "grid.sh: needs $tool" >&2; exit 1; }
done

tmp=$(mktemp -d)
runner=
cleanup() {
  if [[ -n $runner ]]; then kill "$runner" 2>/dev/null || true; wait "$runner" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Frozen binaries: a rebuild (or another feature set) in target/ mid-run cannot mix versions.
if ((${#bins[@]} == 0)); then
  for feat in default turbojpeg; do
    echo "grid.sh: building camhub ($feat, release)..." >&2
    if [[ $feat == default ]]; then
      cargo build --release --bin camhub >&2
    else
      cargo build --release --bin camhub --features turbojpeg >&2
    fi
    cp "${CARGO_TARGET_DIR:-target}/release/camhub" "$tmp/camhub-$feat"
    bins+=("$feat=$tmp/camhub-$feat")
  done
else
  for b in "${bins[@]}"; do
    [[ -x ${b#*=} ]] || { echo "grid.sh: --bin $b: not an executable" >&2; exit 2; }
    cp "${b#*=}" "$tmp/camhub-${b%%=*}"
  done
  given=("${bins[@]}") bins=()
  for b in "${given[@]}"; do bins+=("${b%%=*}=$tmp/camhub-${b%%=*}"); done
fi

IFS=, read -r -a size_list <<<"$sizes"
for size in "${size_list[@]}"; do
  mkdir -p "$tmp/clips-$size"
  echo "grid.sh: making $nclips clips of $clip_frames frames at $size..." >&2
  for ((i = 1; i <= nclips; i++)); do
    ffmpeg -hide_banner -loglevel error -nostdin -y \
      -f lavfi -i "testsrc2=size=$size:rate=$source_fps" \
      -vf "noise=alls=12:allf=t+u:all_seed=$i" -frames:v "$clip_frames" \
      -pix_fmt yuvj420p -c:v mjpeg -q:v 6 -f mjpeg "$tmp/clips-$size/clip$i.mjpeg"
  done
done

mkdir -p bench-out
stamp=$(date -u +%Y%m%dT%H%M%SZ)
json="bench-out/grid-$stamp.jsonl"
md="bench-out/grid-$stamp.md"
{
  echo "## camhub phone-grid benchmark"
  echo
  echo "- run: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes in the tree)')"
  echo "- machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), Linux $(uname -r)"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- $(ffmpeg -version | head -1 | cut -d' ' -f1-3), $(/usr/bin/python3 --version)"
  for b in "${bins[@]}"; do
    echo "- binary ${b%%=*}: $("${b#*=}" --version), sha256 $(sha256sum "${b#*=}" | cut -c1-12)"
  done
  for size in "${size_list[@]}"; do
    echo "- clips $size: $(cat "$tmp/clips-$size"/*.mjpeg | wc -c) bytes in $((nclips * clip_frames)) frames (mean $(( $(cat "$tmp/clips-$size"/*.mjpeg | wc -c) / (nclips * clip_frames) / 1024 )) KiB)"
  done
  echo "- $cameras cameras at $source_fps fps each; grid at $tile_fps fps per tile; warm-up $warmup s, window $window s, no-viewer window $idle s, rounds $rounds"
  echo
} >"$md"

for b in "${bins[@]}"; do
  for size in "${size_list[@]}"; do
    echo "grid.sh: ${b%%=*} $size..." >&2
    /usr/bin/python3 bench/grid/run.py --bin "${b#*=}" --label "${b%%=*}" --size "$size" \
      --clips "$tmp/clips-$size" --cameras "$cameras" --fps-source "$source_fps" \
      --tile-fps "$tile_fps" --width "$width" --window-secs "$window" \
      --warmup-secs "$warmup" --idle-secs "$idle" --rounds "$rounds" >>"$json" &
    runner=$!
    wait "$runner"
    runner=
  done
done
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$md"
echo >>"$md"
/usr/bin/python3 bench/grid/report.py <"$json" >>"$md"
cat "$md"
echo "grid.sh: saved $md and $json" >&2
