#!/usr/bin/env bash
# Fan-out benchmark, the one command: builds camhub and bench/fanout (release), runs the
# bench against a frozen copy of the camhub binary (so a rebuild mid-run cannot mix two
# versions), prints the Markdown table to stdout and keeps a copy in bench-out/.
# Loopback only; every camhub it starts is stopped (and SIGKILLed if the bench dies).
#
#   bench/fanout.sh                                  # 0,1,10,100,500 viewers, 10 s each
#   bench/fanout.sh --viewers 0,1,50 --duration-secs 5
#
# Extra arguments go to the bench (`bench/fanout.sh --help` lists them). About 1.5 min
# plus build time on a 2-core machine.
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/errtrap.sh"
cd "$(dirname "$0")/.."

for arg in "$@"; do
  if [[ $arg == -h || $arg == --help ]]; then
    cargo run --quiet --release --locked --manifest-path bench/fanout/Cargo.toml -- --help
    exit 0
  fi
done

echo "fanout.sh: building camhub (release)..." >&2
cargo build --release --bin camhub >&2
echo "fanout.sh: building bench/fanout (release)..." >&2
cargo build --release --locked --manifest-path bench/fanout/Cargo.toml >&2

camhub_bin="${CARGO_TARGET_DIR:-target}/release/camhub"
fanout_bin="${CARGO_TARGET_DIR:-bench/fanout/target}/release/fanout"

tmp=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp "$camhub_bin" "$tmp/camhub"
mkdir -p bench-out
out="bench-out/fanout-$(date -u +%Y%m%dT%H%M%SZ).md"

"$fanout_bin" --camhub "$tmp/camhub" "$@" >"$tmp/table.md" &
pid=$!
status=0
wait "$pid" || status=$?
pid=
cp "$tmp/table.md" "$out"
cat "$out"
echo "fanout.sh: table saved to $out" >&2
exit "$status"
