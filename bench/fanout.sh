#!/usr/bin/env bash
# Fan-out benchmark, the one command: builds camhub and bench/fanout (release), runs the
# bench against a frozen copy of the camhub binary (so a rebuild mid-run cannot mix two
# versions), prints the Markdown table to stdout and keeps a copy in bench-out/.
# Loopback only; every camhub it starts is stopped (and SIGKILLed if the bench dies).
#
#   bench/fanout.sh                                  # 0,1,10,100,500 viewers, 10 s each
#   bench/fanout.sh --viewers 0,1,50 --duration-secs 5
#   bench/fanout.sh --bin /tmp/old/camhub --viewers 1,500   # a given camhub, not built here
#
# --bin PATH runs that camhub binary (frozen the same way) instead of building the working
# tree's: to compare two commits in one run. Extra arguments go to the bench
# (`bench/fanout.sh --help` lists them). About 1.5 min plus build time on a 2-core machine.
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/errtrap.sh"
cd "$(dirname "$0")/.."

given_bin=
args=()
while (($#)); do
  case $1 in
    -h | --help)
      echo "fanout.sh [--bin PATH] [bench flags...]: --bin runs that camhub instead of building one"
      cargo run --quiet --release --locked --manifest-path bench/fanout/Cargo.toml -- --help
      exit 0
      ;;
    --bin)
      [[ $# -ge 2 ]] || { echo "fanout.sh: --bin needs a path" >&2; exit 2; }
      given_bin=$2
      shift 2
      ;;
    --bin=*) given_bin=${1#--bin=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ -n $given_bin && ! -x $given_bin ]]; then
  echo "fanout.sh: --bin $given_bin is not an executable file" >&2
  exit 2
fi

if [[ -z $given_bin ]]; then
  echo "fanout.sh: building camhub (release)..." >&2
  cargo build --release --bin camhub >&2
fi
echo "fanout.sh: building bench/fanout (release)..." >&2
cargo build --release --locked --manifest-path bench/fanout/Cargo.toml >&2

camhub_bin=${given_bin:-"${CARGO_TARGET_DIR:-target}/release/camhub"}
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

if [[ -n $given_bin ]]; then
  # The bench's own header names the repo's commit, which need not be this binary's.
  printf -- '- camhub binary: `%s` (given with --bin; sha256 %.12s)\n\n' \
    "$given_bin" "$(sha256sum "$tmp/camhub" | cut -d' ' -f1)" >"$tmp/given.md"
fi
"$fanout_bin" --camhub "$tmp/camhub" ${args[@]+"${args[@]}"} >"$tmp/table.md" &
pid=$!
status=0
wait "$pid" || status=$?
pid=
cat ${given_bin:+"$tmp/given.md"} "$tmp/table.md" >"$out"
cat "$out"
echo "fanout.sh: table saved to $out" >&2
exit "$status"
