#!/usr/bin/env bash
# scripts/deps.sh — install everything camhub's builds and tests need, idempotently.
#
# Checks first and installs only what is missing, so a second run is a no-op that takes
# about a second. Targets Debian 12 / Ubuntu 22.04+ (apt). Runs as root, or through sudo
# when not root (non-interactive `sudo -n` when there is no terminal).
#
# Environment knobs:
#   CAMHUB_INSTALL_NEXTEST=1  build cargo-nextest from source if it is missing (slow:
#                             ~5+ minutes on 2 cores). Without it, scripts/test.sh falls
#                             back to plain `cargo test`, which runs the same tests.
#   CAMHUB_NO_RUSTUP=1        never bootstrap rustup when cargo is missing.
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/errtrap.sh"

# Run from the repo root so rustup honours a rust-toolchain file if one is added.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# ---------------------------------------------------------------------------------------
# Debian packages. THE one list: append new test peers here, one per line, with a reason.
# ---------------------------------------------------------------------------------------
APT_PACKAGES=(
    # Host toolchain: rustc links host binaries and build scripts with `cc`.
    gcc
    libc6-dev
    ca-certificates          # HTTPS to crates.io (and rustup, when bootstrapping)
    # Test clients and inspection tools.
    curl                     # HTTP client for smoke tests (always to 127.0.0.1)
    file                     # smoke: check the binary really is ARM aarch64
    procps                   # /bin/kill (tests signal the processes they started, by PID)
    util-linux               # flock, setpriv (qemu dies with the VM script)
    systemd                  # systemd-analyze verify (package-check.sh); minimal images lack it
    ffmpeg                   # ffprobe reads JPEG dimensions; ffmpeg counts MJPEG frames
    python3                  # /usr/bin/python3 for test helpers (Debian's, it has gi)
    python3-pip              # installs the PyPI-only test peers below (not in base images)
    # aarch64 cross build (linker set in .cargo/config.toml) and user-mode emulation.
    gcc-aarch64-linux-gnu
    libc6-dev-arm64-cross
    qemu-user                # qemu-aarch64 -L /usr/aarch64-linux-gnu
    g++                      # openh264-sys2 builds the H.264 decoder from C++ source
    g++-aarch64-linux-gnu    # ... and the same for the aarch64 build
    # `--features turbojpeg` (src/jpeg_turbo.rs): turbojpeg-sys builds libjpeg-turbo 3 from
    # its bundled source; Debian 12's libturbojpeg0-dev is 2.1, too old to link instead.
    cmake                    # drives that build (host and aarch64; NEON needs no assembler)
    nasm                     # libjpeg-turbo's x86_64 SIMD (required: no silent slow build);
                             # openh264-sys2 then also assembles its x86 SIMD code
    # RTSP server peer: GStreamer's RTSP server driven by /usr/bin/python3 (gi).
    python3-gi
    gir1.2-gst-rtsp-server-1.0
    gstreamer1.0-plugins-base    # videotestsrc, videoconvert
    gstreamer1.0-plugins-good    # rtph264pay, rtpjpegpay, jpegenc
    gstreamer1.0-plugins-ugly    # x264enc
    gstreamer1.0-x               # timeoverlay (pango): a visible clock in test feeds
    # mDNS test: camhub in one network namespace, a zeroconf browser in another.
    python3-zeroconf             # mDNS browser inside a netns (tests/peers/mdns_browse.py)
    iproute2                     # `ip netns` / veth pair for the mDNS test
    # Browser test (tests/browser.rs): headless Chromium driven over DevTools.
    chromium                     # headless browser test (~300 MB; slowest install here)
    python3-websocket            # DevTools protocol client (tests/peers/cdp.py)
    # Real V4L2 (scripts/vm/vivid-test.sh): Debian's arm64 kernel + vivid in a VM. The
    # kernel and busybox-static:arm64 are fetched by that script (apt-get download), not here.
    qemu-system-arm              # qemu-system-aarch64 -M virt (user-mode net, restrict=on)
    kmod                         # depmod/modprobe -D: module dependencies of vivid
    cpio                         # packs the guest initramfs
    xz-utils                     # unpacks .ko.xz modules (kernels that compress them)
)

# Rust targets and components the build needs.
RUST_TARGETS=(aarch64-unknown-linux-gnu)

log() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: ERROR: %s\n' "$*" >&2; exit 1; }

# --- privilege ------------------------------------------------------------------------
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        if [[ -t 0 ]]; then SUDO=(sudo); else SUDO=(sudo -n); fi
    else
        SUDO=(__no_sudo__)
    fi
fi
as_root() {
    [[ ${SUDO[0]-} == __no_sudo__ ]] && die "need root to run: $* (not root, no sudo)"
    "${SUDO[@]}" "$@"
}

# --- apt packages ---------------------------------------------------------------------
is_installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

command -v dpkg >/dev/null 2>&1 || die "no dpkg: this script supports Debian/Ubuntu only"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # --no-install-recommends keeps ffmpeg and friends from pulling in a desktop's worth.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Use-Pty=0 \
        --no-install-recommends "${missing[@]}"
else
    log "apt packages: all ${#APT_PACKAGES[@]} present"
fi

# --- Python test peers that Debian does not package -----------------------------------
# WSDiscovery (PyPI) publishes a fake ONVIF camera for tests/wsdiscovery.rs. Debian's
# /usr/bin/python3 is "externally managed" (PEP 668), so it goes into target/py-peers
# (pip --target: no system package is touched), which the tests put on PYTHONPATH.
# Pure Python; pulls in click and ifaddr. Skipped when that exact version is importable.
PY_PEERS_DIR=target/py-peers
WSDISCOVERY_VERSION=2.1.2
if PYTHONPATH=$PY_PEERS_DIR /usr/bin/python3 -c '
import importlib.metadata as m, sys
import wsdiscovery
sys.exit(m.version("WSDiscovery") != sys.argv[1])' "$WSDISCOVERY_VERSION" 2>/dev/null; then
    log "WSDiscovery $WSDISCOVERY_VERSION: present in $PY_PEERS_DIR"
else
    log "installing WSDiscovery $WSDISCOVERY_VERSION into $PY_PEERS_DIR (PyPI)"
    mkdir -p "$PY_PEERS_DIR"
    PIP_ROOT_USER_ACTION=ignore /usr/bin/python3 -m pip install --quiet \
        --disable-pip-version-check --no-warn-script-location --upgrade \
        --target "$PY_PEERS_DIR" "WSDiscovery==$WSDISCOVERY_VERSION"
fi

# --- Rust toolchain -------------------------------------------------------------------
# A fresh shell may not have ~/.cargo/bin on PATH yet.
if [[ -d ${CARGO_HOME:-$HOME/.cargo}/bin ]]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

if ! command -v cargo >/dev/null 2>&1; then
    [[ ${CAMHUB_NO_RUSTUP:-0} == 1 ]] && die "cargo not found and CAMHUB_NO_RUSTUP=1"
    if ! command -v rustup >/dev/null 2>&1; then
        log "cargo not found: bootstrapping rustup (stable, minimal profile)"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
            | sh -s -- -y --no-modify-path --profile minimal
        PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    else
        rustup default stable
    fi
fi

if command -v rustup >/dev/null 2>&1; then
    # `rustup ... --installed` honours a rust-toolchain file, since we run in the repo.
    installed_targets=$(rustup target list --installed)
    for t in "${RUST_TARGETS[@]}"; do
        if ! grep -qx "$t" <<<"$installed_targets"; then
            log "rustup target add $t"
            rustup target add "$t"
        fi
    done
    for c in rustfmt clippy; do
        # Functional check: the component's cargo subcommand runs.
        sub=${c/rustfmt/fmt}
        if ! cargo "$sub" --version >/dev/null 2>&1; then
            log "rustup component add $c"
            rustup component add "$c"
        fi
    done
else
    log "WARNING: no rustup; make sure targets ${RUST_TARGETS[*]} and rustfmt/clippy exist"
fi

# --- cargo-nextest (optional) ---------------------------------------------------------
if cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest: $(cargo nextest --version 2>/dev/null | head -1)"
elif [[ ${CAMHUB_INSTALL_NEXTEST:-0} == 1 ]]; then
    log "installing cargo-nextest from crates.io (slow)"
    cargo install --locked cargo-nextest
else
    log "cargo-nextest not installed: test.sh will use 'cargo test'" \
        "(CAMHUB_INSTALL_NEXTEST=1 to build it)"
fi

# --- cargo-deb (the Pi .deb; scripts/package-check.sh) ---------------------------------
CARGO_DEB_VERSION=3.8.0
if cargo deb --version >/dev/null 2>&1; then
    log "cargo-deb: $(cargo deb --version 2>/dev/null | head -1)"
else
    log "installing cargo-deb $CARGO_DEB_VERSION from crates.io (about 2 minutes)"
    cargo install --locked --version "$CARGO_DEB_VERSION" cargo-deb
fi

log "OK"
