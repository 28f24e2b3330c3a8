# shellcheck shell=bash
# scripts/vm/lib.sh — fetch (and cache) Debian's arm64 kernel and busybox, and build the
# initramfs that boots camhub next to the `vivid` virtual camera. Sourced, not run.
#
# Packages come only from Debian's archive through apt (`apt-get download` after
# `dpkg --add-architecture arm64`). They are cached, keyed by package version, under
# $VM_CACHE (default target/vm-cache, or $CARGO_TARGET_DIR/vm-cache), so re-runs never
# download again; a new kernel in the archive gets a new key. The initramfs is rebuilt
# every run (about a second).
#
# Needs: apt-get, dpkg-deb, depmod/modprobe (kmod), cpio, xz, aarch64-linux-gnu-readelf.

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_REPO=$(cd "$VM_DIR/../.." && pwd)
VM_CACHE=${VM_CACHE:-${CARGO_TARGET_DIR:-$VM_REPO/target}/vm-cache}
# Sysroot the aarch64 binary was linked against: its loader and libraries go in the image.
VM_SYSROOT=${VM_SYSROOT:-/usr/aarch64-linux-gnu}
# Modules /init loads (with their dependencies): virtio-mmio transport, the NIC for the
# user-mode network, the console the host sends commands on (/dev/hvc0), the camera.
VM_MODULES="virtio_mmio virtio_net virtio_console vivid"

vm_log() { printf 'vm: %s\n' "$*" >&2; }
vm_die() { printf 'vm: ERROR: %s\n' "$*" >&2; exit 1; }

vm_as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else vm_die "need root for: $* (not root, no sudo)"
    fi
}

# The kernel package linux-image-arm64:arm64 depends on (this release's current kernel).
# Empty (not a failure) when apt has no arm64 lists: apt-cache exits 100 there.
vm_kernel_pkg() {
    { apt-cache depends linux-image-arm64:arm64 2>/dev/null || true; } \
        | awk '/Depends: linux-image-[0-9]/ { sub(":arm64", "", $2); print $2; exit }'
}

# True when dpkg already knows arm64 as a foreign architecture (never on a new machine).
vm_has_arm64() {
    dpkg --print-foreign-architectures | grep -qx arm64
}

# Make apt know the arm64 archive (adds the architecture and updates the lists).
vm_apt_arm64() {
    if ! vm_has_arm64; then
        vm_log "dpkg --add-architecture arm64"
        vm_as_root dpkg --add-architecture arm64
    fi
    vm_log "apt-get update (arm64 package lists)"
    vm_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
}

# The newest already-extracted entry in the cache matching a glob (offline fallback).
vm_newest_cached() {
    local d
    d=$(ls -d "$VM_CACHE"/$1 2>/dev/null | sort -V | tail -n1)
    [[ -n $d && -f $d/.done ]] && printf '%s\n' "$d"
}

# apt-get download PKG=VERSION into the cache and extract it to $VM_CACHE/$2 (once).
vm_fetch_extract() {
    local pkg=$1 dest=$VM_CACHE/$2 ver=$3
    [[ -f $dest/.done ]] && return 0
    local dl
    dl=$(mktemp -d "$VM_CACHE/dl.XXXXXX")
    vm_log "apt-get download $pkg:arm64=$ver"
    # (As root apt warns that its _apt sandbox user cannot write here: harmless, hidden.)
    (cd "$dl" && apt-get download -q "$pkg:arm64=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
    local deb
    deb=$(ls "$dl"/*.deb 2>/dev/null | head -n1)
    [[ -n $deb ]] || { rm -rf "$dl"; vm_die "download of $pkg:arm64=$ver failed"; }
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    dpkg-deb -x "$deb" "$dest.tmp"
    echo "$pkg $ver" >"$dest.tmp/.pkg"
    rm -rf "$dest" "$dl"
    mv "$dest.tmp" "$dest"
    touch "$dest/.done"
}

# Sets kpkg/kver (the current arm64 kernel package and version) and bver (busybox-static)
# in the caller's scope, from apt's lists; empty when apt does not know them.
vm_resolve() {
    local pkg cand
    kpkg=$(vm_kernel_pkg) kver="" bver=""
    while read -r pkg cand; do
        [[ $cand == "(none)" ]] && cand=""
        case $pkg in
            busybox-static:arm64:) bver=$cand ;;
            "$kpkg:arm64:") kver=$cand ;;
        esac
    done < <(apt-cache policy busybox-static:arm64 ${kpkg:+"$kpkg:arm64"} 2>/dev/null \
        | awk '/^[^ ]/ { p = $1 } /Candidate:/ { print p, $2 }')
}

# Sets kpkg/kver/bver in the caller's scope from apt's lists, first making apt know the
# arm64 archive when it does not (a new machine: no foreign architecture, so every
# question about an :arm64 package fails until `dpkg --add-architecture arm64` and an
# update; issue #11). Lists are updated at most once, and only when that is needed or
# something must be downloaded, so a cold cache always fetches the current versions.
# scripts/vm/fresh-check.sh runs this on a simulated new machine.
vm_resolve_packages() {
    local updated=0
    if ! vm_has_arm64 && [[ ${VM_OFFLINE:-0} != 1 ]]; then
        vm_apt_arm64 || vm_log "could not add the arm64 archive; trying the cache"
        updated=1
    fi
    while :; do
        vm_resolve
        if [[ -n $kpkg && -n $kver && -f $VM_CACHE/${kpkg}_${kver//:/%3a}/.done \
              && -n $bver && -f $VM_CACHE/busybox-static_${bver//:/%3a}/.done ]] \
            || ((updated)) || [[ ${VM_OFFLINE:-0} == 1 ]]; then
            break
        fi
        vm_apt_arm64 || vm_log "could not update the arm64 apt lists; trying the cache"
        updated=1
    done
}

# Sets VM_KERNEL_TREE (extracted linux-image) and VM_BUSYBOX_TREE, downloading if needed.
vm_fetch() {
    mkdir -p "$VM_CACHE"
    VM_CACHE=$(cd "$VM_CACHE" && pwd)
    [[ -f $VM_CACHE/CACHEDIR.TAG ]] || printf 'Signature: 8a477f597d28d172789f06886806bc55\n' >"$VM_CACHE/CACHEDIR.TAG"
    # apt-cache is slow on a busy machine: two calls when everything is cached.
    local kpkg kver bver
    vm_resolve_packages
    if [[ -n $kpkg && -n $kver ]]; then
        VM_KERNEL_TREE=$VM_CACHE/${kpkg}_${kver//:/%3a}
        # A tree pruned for another module list lacks modules: fetch it again.
        if [[ -f $VM_KERNEL_TREE/.pruned && $(cat "$VM_KERNEL_TREE/.pruned") != "$VM_MODULES" ]]; then
            rm -rf "$VM_KERNEL_TREE"
        fi
        vm_fetch_extract "$kpkg" "${VM_KERNEL_TREE##*/}" "$kver"
    else
        VM_KERNEL_TREE=$(vm_newest_cached 'linux-image-*') \
            || vm_die "apt knows no linux-image-arm64:arm64 and nothing is cached"
        vm_log "apt has no arm64 lists; using cached ${VM_KERNEL_TREE##*/}"
    fi
    if [[ -n $bver ]]; then
        VM_BUSYBOX_TREE=$VM_CACHE/busybox-static_${bver//:/%3a}
        vm_fetch_extract busybox-static "${VM_BUSYBOX_TREE##*/}" "$bver"
    else
        VM_BUSYBOX_TREE=$(vm_newest_cached 'busybox-static_*') \
            || vm_die "apt knows no busybox-static:arm64 and nothing is cached"
    fi
    VM_KVER=$(ls "$VM_KERNEL_TREE/lib/modules" | head -n1)
    VM_KERNEL=$VM_KERNEL_TREE/boot/vmlinuz-$VM_KVER
    [[ -f $VM_KERNEL ]] || vm_die "no kernel image at $VM_KERNEL"
    # Debian ships no modules.dep: make one, then drop every module the VM does not load
    # (356 MB extracted -> about 35 MB in the cache). Once per cached kernel.
    if [[ ! -f $VM_KERNEL_TREE/.pruned ]]; then
        depmod -b "$VM_KERNEL_TREE" "$VM_KVER" || vm_die "depmod failed"
        local keep
        keep=$(vm_module_paths $VM_MODULES | sed 's|.*/||')
        [[ -n $keep ]] || vm_die "no modules resolved for: $VM_MODULES"
        find "$VM_KERNEL_TREE/lib/modules/$VM_KVER" -name '*.ko*' -type f -print \
            | awk -v keep="$keep" 'BEGIN { n = split(keep, k, "\n"); for (i = 1; i <= n; i++) want[k[i]] = 1 }
                { f = $0; sub(".*/", "", f); if (!(f in want)) print }' | xargs -r rm -f
        rm -rf "${VM_KERNEL_TREE:?}/usr"
        echo "$VM_MODULES" >"$VM_KERNEL_TREE/.pruned"
    fi
    vm_log "kernel $VM_KVER ($(cat "$VM_KERNEL_TREE/.pkg" 2>/dev/null)), busybox $(cut -d' ' -f2 "$VM_BUSYBOX_TREE/.pkg" 2>/dev/null)"
}

# Module files (absolute paths) needed for the given modules, dependencies first.
vm_module_paths() {
    local m
    for m in "$@"; do
        modprobe -d "$VM_KERNEL_TREE" -S "$VM_KVER" --show-depends "$m" \
            || vm_die "modprobe cannot resolve module $m"
    done | awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++'
}

# Shared libraries an aarch64 ELF needs (recursively), as paths inside $VM_SYSROOT.
vm_elf_libs() {
    local todo=("$1") seen=" " f lib p
    while ((${#todo[@]})); do
        f=${todo[0]}; todo=("${todo[@]:1}")
        for lib in $(aarch64-linux-gnu-readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            [[ $seen == *" $lib "* ]] && continue
            seen+="$lib "
            p=""
            for d in "$VM_SYSROOT/lib" "$VM_SYSROOT/lib64" "$VM_SYSROOT/usr/lib"; do
                [[ -e $d/$lib ]] && { p=$d/$lib; break; }
            done
            [[ -n $p ]] || vm_die "library $lib (needed by $f) not found in $VM_SYSROOT"
            printf '%s\n' "$p"
            todo+=("$p")
        done
    done
}

# vm_initramfs OUT BINARY CONF: an uncompressed cpio (fast to unpack under emulation) with
# busybox, the modules for vivid and virtio networking (in load order), camhub and its
# glibc, /init and /etc/vm.conf (sourced by /init: module options, camhub arguments).
vm_initramfs() {
    local out=$1 bin=$2 conf=$3 root
    root=$(mktemp -d "${TMPDIR:-/tmp}/camhub-vm-root.XXXXXX")
    mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,lib/modules}
    cp "$VM_BUSYBOX_TREE/bin/busybox" "$root/bin/busybox"
    cp "$VM_DIR/init" "$root/init"
    chmod 755 "$root/init"
    cp "$conf" "$root/etc/vm.conf"
    # Modules: flat directory plus load order; .ko.xz/.ko.zst unpacked (busybox insmod
    # reads plain .ko only).
    local p name
    : >"$root/lib/modules/order"
    while read -r p; do
        name=${p##*/}
        case $name in
            *.ko.xz) xz -dc "$p" >"$root/lib/modules/${name%.xz}"; name=${name%.xz} ;;
            *.ko.zst) zstd -qdc "$p" >"$root/lib/modules/${name%.zst}"; name=${name%.zst} ;;
            *.ko.gz) gzip -dc "$p" >"$root/lib/modules/${name%.gz}"; name=${name%.gz} ;;
            *) cp "$p" "$root/lib/modules/$name" ;;
        esac
        echo "${name%.ko}" >>"$root/lib/modules/order"
    done < <(vm_module_paths $VM_MODULES)
    # camhub, its ELF interpreter and libraries (all in /lib; LD_LIBRARY_PATH=/lib).
    cp "$bin" "$root/bin/camhub"
    local interp
    interp=$(aarch64-linux-gnu-readelf -l "$bin" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
    [[ -n $interp ]] || vm_die "$bin has no ELF interpreter (static?)"
    mkdir -p "$root$(dirname "$interp")"
    cp -L "$VM_SYSROOT/lib/$(basename "$interp")" "$root$interp"
    while read -r p; do cp -L "$p" "$root/lib/"; done < <(vm_elf_libs "$bin")
    (cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$out"
    rm -rf "$root"
}
