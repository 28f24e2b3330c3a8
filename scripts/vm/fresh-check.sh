#!/usr/bin/env bash
# scripts/vm/fresh-check.sh — the VM step's package resolution, as on a new machine.
#
# Issue #11: on a new Debian machine (no foreign dpkg architecture) the VM step died at
# once, because it asked apt about arm64 packages before adding the arm64 architecture;
# it had passed only where arm64 was already added by hand. This check runs that same
# resolution (scripts/vm/lib.sh: vm_resolve_packages) with `dpkg`, `apt-cache` and
# `apt-get` wrappers first on PATH that show a machine without arm64: dpkg lists no
# foreign architecture and apt-cache knows no :arm64 package until the script itself has
# run `dpkg --add-architecture arm64` and `apt-get update`. It fails when the script
# depends on state a new machine lacks, or when the wrappers do not hide that state (so
# the check itself cannot pass vacuously).
#
# On a machine without arm64 the wrappers pass `--add-architecture` and `update` through
# to the real dpkg/apt-get (the script needs the real lists next); where arm64 is already
# there they only pretend it was not. Downloads nothing but apt's package lists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/lib/errtrap.sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/camhub-fresh.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin"
STATE=$WORK/state            # the simulated machine: "arch arm64", "updated" lines
: >"$STATE"
REAL_DPKG=$(command -v dpkg)
REAL_APT_CACHE=$(command -v apt-cache)
REAL_APT_GET=$(command -v apt-get)

cat >"$WORK/bin/dpkg" <<EOF
#!/usr/bin/env bash
# Simulated new machine: foreign architectures are only those added through this wrapper.
case "\${1:-}" in
    --print-foreign-architectures) sed -n 's/^arch //p' "$STATE"; exit 0 ;;
    --add-architecture)
        grep -qx "arch \$2" "$STATE" || echo "arch \$2" >>"$STATE"
        sed -i '/^updated\$/d' "$STATE"   # apt knows the new architecture after an update
        "$REAL_DPKG" --print-foreign-architectures | grep -qx "\$2" \\
            || exec "$REAL_DPKG" --add-architecture "\$2"
        exit 0 ;;
esac
exec "$REAL_DPKG" "\$@"
EOF
cat >"$WORK/bin/apt-get" <<EOF
#!/usr/bin/env bash
if [[ " \$* " == *" update "* ]]; then
    echo "apt-get \$*" >>"$WORK/calls"
    "$REAL_APT_GET" "\$@" || exit
    grep -qx "arch arm64" "$STATE" && echo updated >>"$STATE"
    exit 0
fi
exec "$REAL_APT_GET" "\$@"
EOF
cat >"$WORK/bin/apt-cache" <<EOF
#!/usr/bin/env bash
# Until arm64 is added and the lists updated, apt knows no :arm64 package, as on a new
# machine: 'depends' fails with exit 100, 'policy' prints nothing for them.
echo "apt-cache \$*" >>"$WORK/calls"
if [[ "\$*" == *:arm64* ]] && ! { grep -qx "arch arm64" "$STATE" && grep -qx updated "$STATE"; }; then
    case "\${1:-}" in
        depends) echo "E: No packages found" >&2; exit 100 ;;
        policy) exit 0 ;;
        *) echo "fresh-check: unexpected apt-cache \$*" >&2; exit 100 ;;
    esac
fi
exec "$REAL_APT_CACHE" "\$@"
EOF
chmod +x "$WORK/bin/"*
export PATH="$WORK/bin:$PATH"

fail() { printf 'FAIL: fresh-check: %s\n' "$*" >&2; exit 1; }

# The wrappers must really hide arm64, or this check proves nothing.
[[ -z $(dpkg --print-foreign-architectures) ]] || fail "the dpkg wrapper still shows a foreign architecture"
if apt-cache depends linux-image-arm64:arm64 >/dev/null 2>&1; then
    fail "the apt-cache wrapper still resolves :arm64 packages"
fi

# The VM step's own resolution, in a fresh shell, against an empty package cache.
out=$(VM_CACHE=$WORK/cache bash -c '
    set -euo pipefail
    source scripts/lib/errtrap.sh
    source scripts/vm/lib.sh
    mkdir -p "$VM_CACHE"
    vm_resolve_packages
    printf "%s %s %s\n" "$kpkg" "$kver" "$bver"
') || fail "vm_resolve_packages failed on a simulated new machine (calls: $(tr '\n' ';' <"$WORK/calls" 2>/dev/null))"
read -r kpkg kver bver <<<"$out"
[[ -n ${kpkg:-} && -n ${kver:-} && -n ${bver:-} ]] \
    || fail "resolution gave kernel='${kpkg:-}' version='${kver:-}' busybox='${bver:-}'"
grep -qx "arch arm64" "$STATE" || fail "the script never ran dpkg --add-architecture arm64"
grep -qx updated "$STATE" || fail "the script never updated apt's lists after adding arm64"
printf 'PASS: fresh-check: from no foreign architecture, the VM step added arm64, updated the lists and resolved %s=%s and busybox-static=%s\n' \
    "$kpkg" "$kver" "$bver"
