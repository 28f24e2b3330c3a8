#!/usr/bin/env bash
# Side-by-side benchmark, the one command: camhub vs Motion vs a Django + OpenCV view,
# each relaying the same RTSP H.264 640x480@15 feed as MJPEG to N viewers on loopback
# (issue #7, benchmarks 2 and 3). Prints a Markdown table (server CPU over its whole
# process tree, RSS, per-viewer fps, barcode latency, the RTSP source's and the load
# generator's CPU apart) and keeps a copy in bench-out/compare-<UTC time>.md (+ .json).
#
#   bench/compare.sh                              # all peers, default viewer counts
#   bench/compare.sh --peers camhub,motion --duration-secs 8
#   bench/compare.sh --viewers-django 0,1,10 --warmup-secs 5
#
# Options (passed to bench/compare/measure.py):
#   --peers camhub,camhub-turbojpeg,motion,django
#                                   which servers to run (default all); camhub-turbojpeg is
#                                   camhub built with --features turbojpeg, as on the Pi
#   --viewers LIST                  viewer counts for every peer, e.g. 0,1,10
#   --viewers-camhub LIST           default 0,1,10,50   (0 = idle row)
#   --viewers-camhub-turbojpeg LIST default 1,10,50
#   --viewers-motion LIST           default 0,1,10
#   --viewers-django LIST           default 0,1,10,50
#   --duration-secs N               measured window per row (default 20, max 120)
#   --warmup-secs N                 warm-up before each window (default 5, max 30)
#   --max-warmup-secs N             the window starts when every viewer has had a frame,
#                                   but at most N s after connecting (default 120): the
#                                   Django view opens its OpenCV captures one at a time
#
# Installs what it needs, idempotently: Debian's motion (apt-get, only when `motion` is
# missing; needs root) and the Python venv bench/compare/.venv (setup_venv.sh; PyPI the
# first time). Builds camhub (release) and runs a private copy of the binary, so a
# rebuild of the shared target dir mid-run cannot mix two versions.
# Time: 11 rows × (start + 5 s warm-up + 20 s window + stop), plus the Django rows'
# longer start-up (about 2 s per viewer, so ~2 min for 50): ~8 minutes with the defaults,
# at most ~10, plus the build and the first venv install.
# Loopback only. Every process it starts is stopped by PID on exit, also on Ctrl-C.
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/errtrap.sh"
cd "$(dirname "$0")/.."

for arg in "$@"; do
  if [[ $arg == -h || $arg == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
  fi
done

wants_peer() {
  local peers=camhub,camhub-turbojpeg,motion,django prev=
  for arg in "$@"; do
    if [[ $prev == --peers ]]; then peers=$arg; fi
    if [[ $arg == --peers=* ]]; then peers=${arg#--peers=}; fi
    prev=$arg
  done
  [[ ,$peers, == *,$PEER,* ]]
}

if PEER=motion wants_peer "$@" && ! command -v motion >/dev/null 2>&1; then
  echo "compare.sh: installing Debian's motion..." >&2
  sudo_cmd=()
  if [[ $(id -u) != 0 ]]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y motion >&2
fi

# The venv serves the load generator (numpy + OpenCV decode the barcodes) and Django.
echo "compare.sh: checking the Python venv..." >&2
venv_python=$(bench/compare/setup_venv.sh)

tmp=$(mktemp -d)
pid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  # Fallback if measure.py died without stopping its children (each leads its own
  # process group, listed by PID in the pid file).
  if [[ -s $tmp/pids ]]; then
    while read -r child; do
      kill -KILL -- "-$child" 2>/dev/null || true
    done <"$tmp/pids"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

camhub_bin="${CARGO_TARGET_DIR:-target}/release/camhub"
echo "compare.sh: building camhub (release)..." >&2
cargo build --release --bin camhub >&2
cp "$camhub_bin" "$tmp/camhub"
turbo_args=()
if PEER=camhub-turbojpeg wants_peer "$@"; then
  # Needs cmake (and nasm on x86_64): scripts/deps.sh installs both.
  echo "compare.sh: building camhub --features turbojpeg (release)..." >&2
  cargo build --release --bin camhub --features turbojpeg >&2
  cp "$camhub_bin" "$tmp/camhub-turbojpeg"
  turbo_args=(--camhub-turbojpeg "$tmp/camhub-turbojpeg")
fi

mkdir -p bench-out
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="bench-out/compare-$stamp.md"

/usr/bin/python3 bench/compare/measure.py --camhub "$tmp/camhub" "${turbo_args[@]}" \
  --loadgen-python "$venv_python" --json-out "$tmp/rows.json" --pid-file "$tmp/pids" \
  --workdir "$tmp/work" \
  --argv-for-report "$*" "$@" >"$tmp/table.md" &
pid=$!
status=0
wait "$pid" || status=$?
pid=
if [[ -s $tmp/table.md ]]; then
  cp "$tmp/table.md" "$out"
  cp "$tmp/rows.json" "bench-out/compare-$stamp.json" 2>/dev/null || true
  cat "$out"
  echo "compare.sh: table saved to $out" >&2
fi
if [[ $status != 0 && -d $tmp/work ]]; then
  cp -r "$tmp/work" "bench-out/compare-$stamp-logs"
  echo "compare.sh: failed (status $status); peer logs in bench-out/compare-$stamp-logs" >&2
fi
exit "$status"
