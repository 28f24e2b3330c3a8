#!/usr/bin/env bash
# scripts/smoke-aarch64.sh — the Pi build, run for real under qemu-aarch64 (user mode).
#
# Builds `camhub` for aarch64-unknown-linux-gnu (release, as shipped), starts it under
# `qemu-aarch64 -L /usr/aarch64-linux-gnu` on 127.0.0.1 with the built-in test pattern,
# and checks: the ELF is ARM aarch64, /healthz answers 200, /snapshot/test is a 320x240
# JPEG, and SIGTERM makes it exit with status 0 within SMOKE_EXIT_TIMEOUT seconds.
# All traffic goes to 127.0.0.1 only (proxies are bypassed explicitly).
#
# Usage: scripts/smoke-aarch64.sh [--bin PATH]   # --bin: skip the build, test PATH
# Env:   SMOKE_START_TIMEOUT (20)  seconds to wait for the "listening on" line
#        SMOKE_HTTP_TIMEOUT  (20)  seconds to retry /healthz, then /snapshot/test
#        SMOKE_EXIT_TIMEOUT  (5)   seconds allowed from SIGTERM to exit (qemu is slow)
#        QEMU_LD_PREFIX            aarch64 sysroot (default /usr/aarch64-linux-gnu)
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/errtrap.sh"

TARGET=aarch64-unknown-linux-gnu
SYSROOT=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}
START_TIMEOUT=${SMOKE_START_TIMEOUT:-20}
HTTP_TIMEOUT=${SMOKE_HTTP_TIMEOUT:-20}
EXIT_TIMEOUT=${SMOKE_EXIT_TIMEOUT:-5}
SOURCE_ARG='test=pattern:?size=320x240&fps=5'
WANT_SIZE=320x240

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=""
while (($#)); do
    case $1 in
        --bin) BIN=${2:?--bin needs a path}; shift 2 ;;
        --bin=*) BIN=${1#--bin=}; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "smoke: unknown argument: $1" >&2; exit 2 ;;
    esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/camhub-smoke.XXXXXX")
LOG=$WORK/camhub.log
PID=""
T_START=$SECONDS

pass() { printf 'PASS: %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*"
    if [[ -s $LOG ]]; then
        echo "---- last 40 lines of camhub stderr ($LOG) ----"
        tail -n 40 "$LOG"
        echo "----"
    fi
    exit 1
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # Only ever the processes this script started, by PID.
    if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    if ((rc == 0)); then
        printf 'PASS: smoke-aarch64 (%ss)\n' "$((SECONDS - T_START))"
    else
        printf 'FAIL: smoke-aarch64 (exit %s after %ss)\n' "$rc" "$((SECONDS - T_START))"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in qemu-aarch64 curl file python3; do
    command -v "$tool" >/dev/null 2>&1 || fail "missing tool '$tool' (run scripts/deps.sh)"
done
[[ -d $SYSROOT ]] || fail "no aarch64 sysroot at $SYSROOT (libc6-dev-arm64-cross / libc6-arm64-cross)"

# ---- build (or take the given binary) ------------------------------------------------
if [[ -z $BIN ]]; then
    echo "smoke: cargo build --release --locked --target $TARGET"
    cargo build --release --locked --target "$TARGET"
    target_dir=$(cargo metadata --format-version 1 --no-deps \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    BIN=$target_dir/$TARGET/release/camhub
fi
[[ -x $BIN ]] || fail "no executable at $BIN"

desc=$(file -b "$BIN")
[[ $desc == *"ARM aarch64"* ]] || fail "$BIN is not an ARM aarch64 binary: $desc"
pass "binary is ARM aarch64 ($BIN)"

# ---- start ---------------------------------------------------------------------------
NO_COLOR=1 RUST_LOG=${SMOKE_RUST_LOG:-info} RUST_BACKTRACE=1 \
    qemu-aarch64 -L "$SYSROOT" "$BIN" \
    --no-mdns --listen 127.0.0.1:0 --source "$SOURCE_ARG" \
    </dev/null >"$WORK/stdout.log" 2>"$LOG" &
PID=$!
echo "smoke: started camhub under qemu-aarch64, pid $PID"

# Parse "listening on http://IP:PORT/" (ANSI colour codes stripped, in case).
PORT=""
deadline=$((SECONDS + START_TIMEOUT))
while ((SECONDS < deadline)); do
    kill -0 "$PID" 2>/dev/null || fail "camhub exited before listening"
    line=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG" | grep -o 'listening on http://[^ ]*' | head -n 1 || true)
    if [[ $line =~ http://([^/]+):([0-9]+)/ ]]; then
        ADDR=${BASH_REMATCH[1]}
        PORT=${BASH_REMATCH[2]}
        break
    fi
    sleep 0.2
done
[[ -n $PORT ]] || fail "no 'listening on http://IP:PORT/' line within ${START_TIMEOUT}s"
[[ $PORT != 0 ]] || fail "logged port 0; expected the bound port ($line)"
[[ $ADDR == 127.0.0.1 ]] || fail "asked for 127.0.0.1 but it logged $ADDR ($line)"
BASE=http://127.0.0.1:$PORT
pass "listening on $BASE/"

# curl strictly to loopback: --noproxy '*' so an http_proxy in the env is never used.
fetch() { # fetch PATH OUTFILE -> prints "HTTP_CODE CONTENT_TYPE"
    curl --noproxy '*' -sS --max-time 5 -o "$2" -w '%{http_code} %{content_type}' \
        "$BASE$1" 2>>"$WORK/curl.err" || true
}

# ---- /healthz ------------------------------------------------------------------------
deadline=$((SECONDS + HTTP_TIMEOUT))
res=""
while ((SECONDS < deadline)); do
    kill -0 "$PID" 2>/dev/null || fail "camhub died while waiting for /healthz"
    res=$(fetch /healthz "$WORK/healthz")
    [[ $res == 200* ]] && break
    sleep 0.5
done
[[ $res == 200* ]] || fail "GET /healthz: got '${res:-no response}' within ${HTTP_TIMEOUT}s"
pass "GET /healthz -> 200"

# ---- /snapshot/test (503 until the first frame) --------------------------------------
SNAP=$WORK/snapshot.jpg
deadline=$((SECONDS + HTTP_TIMEOUT))
res=""
while ((SECONDS < deadline)); do
    kill -0 "$PID" 2>/dev/null || fail "camhub died while waiting for /snapshot/test"
    res=$(fetch /snapshot/test "$SNAP")
    [[ $res == 200* ]] && break
    sleep 0.5
done
[[ $res == 200* ]] || fail "GET /snapshot/test: got '${res:-no response}' within ${HTTP_TIMEOUT}s"
ctype=${res#200 }
[[ ${ctype,,} == image/jpeg* ]] || fail "GET /snapshot/test: Content-Type '$ctype', want image/jpeg"
size=$(stat -c %s "$SNAP")
head2=$(head -c 2 "$SNAP" | od -An -tx1 | tr -d ' \n')
tail2=$(tail -c 2 "$SNAP" | od -An -tx1 | tr -d ' \n')
[[ $head2 == ffd8 ]] || fail "snapshot does not start with FF D8 (got '$head2', $size bytes)"
[[ $tail2 == ffd9 ]] || fail "snapshot does not end with FF D9 (got '$tail2', $size bytes)"

# Dimensions: ffprobe if present, else walk the JPEG markers to the SOF in python.
if command -v ffprobe >/dev/null 2>&1; then
    dims=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height \
        -of csv=p=0:s=x "$SNAP" | head -n 1 || true)
    how=ffprobe
else
    dims=$(python3 - "$SNAP" <<'PY' || true
import struct, sys
d = open(sys.argv[1], "rb").read()
i = 2
while i + 4 <= len(d):
    if d[i] != 0xFF:
        sys.exit("bad marker")
    m = d[i + 1]
    if m == 0xFF:            # fill byte
        i += 1
        continue
    if m in (0xD8, 0x01) or 0xD0 <= m <= 0xD7:
        i += 2
        continue
    (ln,) = struct.unpack(">H", d[i + 2:i + 4])
    if m in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
        h, w = struct.unpack(">HH", d[i + 5:i + 9])
        print(f"{w}x{h}")
        break
    i += 2 + ln
PY
)
    how=python3
fi
[[ $dims == "$WANT_SIZE" ]] || fail "snapshot dimensions '${dims:-unreadable}' ($how), want $WANT_SIZE"
if command -v ffmpeg >/dev/null 2>&1; then
    ffmpeg -nostdin -v error -i "$SNAP" -f null - 2>"$WORK/decode.err" \
        || fail "ffmpeg cannot decode the snapshot: $(head -c 300 "$WORK/decode.err")"
fi
pass "GET /snapshot/test -> $ctype, $size bytes, ${dims} JPEG ($how)"

# ---- SIGTERM -------------------------------------------------------------------------
if grep -q 'panicked' "$LOG"; then fail "camhub logged a panic"; fi
t0=$(date +%s%N)
kill -TERM "$PID"
# Poll until it is gone or a zombie (exited, not yet reaped); never past the allowance.
limit_ms=$((EXIT_TIMEOUT * 1000))
while :; do
    stat=$(cat "/proc/$PID/stat" 2>/dev/null) || break
    state=${stat##*) }
    [[ ${state%% *} == Z ]] && break
    elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
    ((elapsed_ms <= limit_ms)) || fail "still running ${EXIT_TIMEOUT}s after SIGTERM"
    sleep 0.05
done
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
((elapsed_ms <= limit_ms)) || fail "took ${elapsed_ms} ms to exit after SIGTERM (limit ${EXIT_TIMEOUT}s)"
status=0
wait "$PID" || status=$?
PID=""
((status == 0)) || fail "exit status $status after SIGTERM (want 0), ${elapsed_ms} ms"
if grep -q 'panicked' "$LOG"; then fail "camhub logged a panic during shutdown"; fi
pass "SIGTERM -> exit 0 in ${elapsed_ms} ms (limit ${EXIT_TIMEOUT}s)"
