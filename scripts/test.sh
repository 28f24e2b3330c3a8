#!/usr/bin/env bash
# scripts/test.sh — THE test command for camhub (local and CI: .ci/run execs this).
#
# Sections, in order, stopping at the first failure:
#   1. deps       scripts/deps.sh (installs only what is missing)
#   2. fmt        cargo fmt --all -- --check; no tracked file that .gitignore ignores
#   3. clippy     cargo clippy --all-targets --locked -- -D warnings (also --features turbojpeg)
#   4. tests      cargo nextest run --locked (+ cargo test --doc, nextest skips doctests);
#                 plain `cargo test --locked` when cargo-nextest is not installed
#   5. aarch64    cargo build --release --locked --target aarch64-unknown-linux-gnu --features turbojpeg
#   6. smoke      scripts/smoke-aarch64.sh on that binary under qemu-aarch64
#   7. vm         scripts/vm/fresh-check.sh: the VM step's apt resolution as on a new
#                 machine (no arm64 dpkg architecture), then
#                 scripts/vm/vivid-test.sh: real V4L2 (vivid) in qemu-system-aarch64,
#                 auto-discovery, YUYV -> JPEG, unplug/replug, hot-plug
#   8. package    scripts/package-check.sh: systemd unit verifies, arm64 .deb contents
#
# Runs from any cwd, needs no terminal or stdin. Network: tests talk to 127.0.0.1 only.
# Env: CAMHUB_SKIP_DEPS=1      skip section 1 (e.g. a prepared CI image)
#      CAMHUB_TEST_TIMEOUT=900 seconds before the test section is killed (hang guard)
#      CAMHUB_INSTALL_NEXTEST=1 let deps.sh build cargo-nextest if missing (slow)
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/errtrap.sh"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
exec </dev/null
# rustup installs cargo here; a fresh non-login shell may not have it on PATH.
if [[ -d ${CARGO_HOME:-$HOME/.cargo}/bin ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

TARGET=aarch64-unknown-linux-gnu
TOTAL_STEPS=8
STEP=0
CURRENT=""
STEP_T0=0
TIMINGS=()

begin() {
    STEP=$((STEP + 1))
    CURRENT=$1
    STEP_T0=$SECONDS
    printf '\n==================== [%d/%d] %s ====================\n' "$STEP" "$TOTAL_STEPS" "$1"
}
end() {
    local dt=$((SECONDS - STEP_T0))
    TIMINGS+=("$CURRENT ${dt}s")
    printf -- '---- %s: ok (%ss)\n' "$CURRENT" "$dt"
    CURRENT=""
}
summary() { local IFS=','; printf '%s' "${TIMINGS[*]}" | sed 's/,/, /g'; }
on_exit() {
    local rc=$?
    echo
    if ((rc == 0)); then
        printf 'test.sh: PASS — all %d sections in %ss (%s)\n' "$TOTAL_STEPS" "$SECONDS" "$(summary)"
    else
        printf 'test.sh: FAIL in section [%d/%d] %s (exit %d) after %ss%s\n' \
            "$STEP" "$TOTAL_STEPS" "${CURRENT:-?}" "$rc" "$SECONDS" \
            "${TIMINGS[*]:+ (passed: $(summary))}"
    fi
}
trap on_exit EXIT

echo "camhub test.sh in $REPO ($(uname -m), $(nproc) cores, CI=${CI:-})"

# ---- 1. deps -------------------------------------------------------------------------
begin deps
if [[ ${CAMHUB_SKIP_DEPS:-0} == 1 ]]; then
    echo "skipped (CAMHUB_SKIP_DEPS=1)"
else
    bash scripts/deps.sh
fi
rustc --version
cargo --version
if [[ ! -f Cargo.lock ]]; then
    echo "Cargo.lock is missing: every cargo step below runs with --locked." >&2
    echo "Run 'cargo generate-lockfile' (or any cargo build) and commit Cargo.lock." >&2
    exit 1
fi
end

# ---- 2. fmt --------------------------------------------------------------------------
begin fmt
cargo fmt --all -- --check
# Nothing that .gitignore ignores may be tracked (build leftovers such as *.pyc; #11).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    ignored=$(git ls-files -ci --exclude-standard)
    if [[ -n $ignored ]]; then
        printf 'tracked files that .gitignore ignores (git rm --cached them):\n%s\n' "$ignored" >&2
        exit 1
    fi
fi
end

# ---- 3. clippy -----------------------------------------------------------------------
begin clippy
cargo clippy --all-targets --locked -- -D warnings
# The Pi build's JPEG backend (libjpeg-turbo), linted too.
cargo clippy --all-targets --locked --features turbojpeg -- -D warnings
end

# ---- 4. tests ------------------------------------------------------------------------
begin tests
test_timeout=${CAMHUB_TEST_TIMEOUT:-900}
if cargo nextest --version >/dev/null 2>&1; then
    # A crate with no tests yet is a warning, not a failure.
    NEXTEST_NO_TESTS=${NEXTEST_NO_TESTS:-warn} \
        timeout --kill-after=10 "$test_timeout" cargo nextest run --locked
    # nextest does not run doctests; cargo does, when there is a library.
    if cargo metadata --format-version 1 --no-deps --locked \
        | python3 -c 'import json,sys; m=json.load(sys.stdin); sys.exit(0 if any("lib" in t["kind"] for p in m["packages"] for t in p["targets"]) else 1)'; then
        timeout --kill-after=10 "$test_timeout" cargo test --doc --locked
    fi
else
    echo "cargo-nextest not installed: using cargo test (same tests, incl. doctests)"
    timeout --kill-after=10 "$test_timeout" cargo test --locked
fi
# Both JPEG backends pass the same encoder tests.
timeout --kill-after=10 "$test_timeout" cargo test --locked --lib --features turbojpeg jpeg
end

# ---- 5. aarch64 release build --------------------------------------------------------
begin "aarch64 build"
# Pi builds use libjpeg-turbo (NEON): about 3x faster JPEG encoding (BENCHMARKS.md,
# "Encoders"). jpeg-encoder stays the no-C default for `cargo run` on any machine.
cargo build --release --locked --target "$TARGET" --features turbojpeg
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET_DIR/$TARGET/release/camhub
ls -l "$BIN"
end

# ---- 6. aarch64 smoke under qemu -----------------------------------------------------
begin "aarch64 smoke"
bash scripts/smoke-aarch64.sh --bin "$BIN"
end

# ---- 7. real V4L2 in a VM -------------------------------------------------------------
begin vm
# The VM step's apt resolution on a simulated new machine (no arm64 architecture; #11).
bash scripts/vm/fresh-check.sh
bash scripts/vm/vivid-test.sh --no-build --bin "$BIN"
end

# ---- 8. Pi package: systemd unit and .deb --------------------------------------------
begin package
bash scripts/package-check.sh --target "$TARGET"
end
