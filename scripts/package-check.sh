#!/usr/bin/env bash
# scripts/package-check.sh — check the Pi install artefacts: the systemd unit verifies
# cleanly, and the arm64 .deb (cargo-deb) holds the binary, unit, docs and user setup.
#
# Usage: scripts/package-check.sh [--target TRIPLE]   (after the release build for it)
set -euo pipefail
# shellcheck source=scripts/lib/errtrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/errtrap.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET=aarch64-unknown-linux-gnu
[[ ${1:-} == --target ]] && TARGET=$2

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
pass() { printf 'PASS: %s\n' "$*"; }

# 1. systemd-analyze verify. It wants ExecStart's binary to exist, so verify a copy whose
#    only change is ExecStart pointing at a real binary; it exits 0 even on bad values, so
#    any output at all is a failure.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|^ExecStart=/usr/bin/camhub|ExecStart=/bin/true|" board/rpi/camhub.service >"$tmp/camhub.service"
grep -q '^ExecStart=/bin/true$' "$tmp/camhub.service" || fail "unit has no ExecStart=/usr/bin/camhub"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$tmp/camhub.service" 2>&1) \
    || fail "systemd-analyze verify: $out"
[[ -z $out ]] || fail "systemd-analyze verify reported: $out"
pass "systemd-analyze verify camhub.service"

# 2. The .deb, from the already built release binary.
cargo deb --target "$TARGET" --no-build --no-strip --output "$tmp/" >/dev/null
deb=$(ls "$tmp"/camhub_*.deb)
info=$(dpkg-deb --info "$deb")
contents=$(dpkg-deb --contents "$deb")
grep -q '^ *Architecture: arm64$' <<<"$info" || [[ $TARGET != aarch64-* ]] || fail "not arm64: $info"
grep -q 'postinst' <<<"$info" || fail "no postinst (service user) in the package"
for path in ./usr/bin/camhub 'lib/systemd/system/camhub.service' \
    ./usr/share/doc/camhub/camhub.toml.example ./usr/share/doc/camhub/INSTALL.md \
    ./usr/share/doc/camhub/LEDS.md; do
    grep -q -- "$path" <<<"$contents" || fail "$path missing from the package:
$contents"
done
if grep -q '\./etc/camhub/camhub.toml' <<<"$contents"; then
    fail "the package must not install a config: with none, camhub uses the cameras it finds"
fi
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst | grep -q 'adduser --system' \
    || fail "postinst does not create the camhub user"
pass "$(basename "$deb"): $(wc -l <<<"$contents") entries, binary + unit + docs + postinst"
