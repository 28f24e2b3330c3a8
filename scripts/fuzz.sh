#!/usr/bin/env bash
# Fuzzes camhub's parsers with cargo-fuzz (libFuzzer): the HTTP-MJPEG multipart/chunked
# body parser and the config file parser. Targets and their invariants: fuzz/.
#
# Usage: scripts/fuzz.sh [--secs N] [--target multipart|config]
#   --secs N       run each target for N seconds (default 60)
#   --target NAME  only this target (default: all of them, one after the other)
#
# Installs cargo-fuzz (pinned) when missing. Only the stable toolchain is needed:
# libFuzzer builds need -Z flags, which RUSTC_BOOTSTRAP=1 allows on stable. Each run
# starts from the committed seeds (fuzz/corpus/<target>, read only) plus a scratch corpus
# that is thrown away, so runs never change the tree. On a crash it prints the saved
# input (fuzz/artifacts/<target>/, git-ignored) and the command that reproduces it, and
# exits 1. The same target bodies run on every test run over the seeds and mutations of
# them (tests/bad_input.rs); this script is the longer, coverage-guided search.
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/errtrap.sh"

CARGO_FUZZ_VERSION=0.13.2
secs=60
targets=(multipart config)
while [[ $# -gt 0 ]]; do
    case "$1" in
    --secs)
        secs="$2"
        shift 2
        ;;
    --target)
        targets=("$2")
        shift 2
        ;;
    -h | --help)
        sed -n '2,16p' "$0"
        exit 0
        ;;
    *)
        echo "unknown argument: $1 (see --help)" >&2
        exit 2
        ;;
    esac
done
[[ "$secs" =~ ^[0-9]+$ && "$secs" -gt 0 ]] || {
    echo "--secs needs a positive number of seconds" >&2
    exit 2
}

cd "$(dirname "$0")/.."
root=$PWD

if [[ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
scratch=$(mktemp -d)
fuzz_pid=
cleanup() {
    if [[ -n "$fuzz_pid" ]] && kill -0 "$fuzz_pid" 2>/dev/null; then
        kill "$fuzz_pid" 2>/dev/null || true
        wait "$fuzz_pid" 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building fuzz targets: ${targets[*]}"
start=$SECONDS
for target in "${targets[@]}"; do
    cargo fuzz build --fuzz-dir fuzz "$target"
done
echo "== built in $((SECONDS - start)) s"

for target in "${targets[@]}"; do
    seeds="$root/fuzz/corpus/$target"
    [[ -d "$seeds" ]] || {
        echo "no seed corpus $seeds (targets: multipart, config)" >&2
        exit 2
    }
    artifacts="$root/fuzz/artifacts/$target"
    mkdir -p "$scratch/$target" "$artifacts"
    touch "$scratch/$target.start"
    echo "== fuzzing $target for $secs s"
    # libFuzzer adds new inputs to the first corpus directory and only reads the others.
    # -timeout: one input taking this long counts as a hang (saved like a crash).
    cargo fuzz run --fuzz-dir fuzz "$target" "$scratch/$target" "$seeds" -- \
        -max_total_time="$secs" -timeout=10 -max_len=16384 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" &
    fuzz_pid=$!
    status=0
    wait "$fuzz_pid" || status=$?
    fuzz_pid=
    if [[ $status -ne 0 ]]; then
        artifact=$(find "$artifacts" -type f -newer "$scratch/$target.start" | head -n 1)
        echo "== $target FAILED (exit $status)" >&2
        if [[ -n "$artifact" ]]; then
            echo "input: $artifact" >&2
            echo "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz $target $artifact" >&2
            echo "minimize:  RUSTC_BOOTSTRAP=1 cargo fuzz tmin --fuzz-dir fuzz $target $artifact" >&2
        fi
        exit 1
    fi
    echo "== $target: no failure in $secs s ($(find "$scratch/$target" -type f | wc -l) new inputs)"
done
