#!/bin/bash
# vifkit real-Xen lab: boots Xen 4.17 (Debian bookworm packages) with a Linux
# dom0 and a Linux PV domU under QEMU TCG and runs vifkit's netback/netfront
# against the Linux drivers and against each other.
#
# Usage: tests/xen/lab.sh [BIN_DIR] [SCENARIO...]     (or: make xen-lab LAB_SCENARIOS="...")
#   BIN_DIR   vifkit binaries (default: <repo>/build/bin)
#   SCENARIO  1 2 3 4 (default: all), one boot each
#     1  vifkit-back in dom0 (xen-netback not loaded) <-> Linux xen-netfront in the domU
#     2  vifkit-front in the domU <-> Linux xen-netback in dom0
#     3  vifkit-front in the domU <-> vifkit-back in dom0, static grants
#     4  side by side in one boot: the same Linux xen-netfront domU with two vifs,
#        one on the kernel xen-netback, one on vifkit-back (private backend type
#        "vifkit"); over each in turn: 64-byte UDP pps (iperf3) and TCP Mbit/s
#        both ways, 64-byte pktgen floods both ways, TCP with TSO/GSO off; a
#        ratio table (under TCG only the ratios mean anything)
# Env: LAB_IMAGES_ONLY=1 (stop after building the images), LAB_CACHE (default
#      tests/xen/cache, git-ignored; created as needed), LAB_TIMEOUT (s per boot,
#      default 900), LAB_CPU (QEMU -cpu, default qemu64), LAB_MEM (3G),
#      LAB_S4_SECONDS (s per scenario-4 measurement, default 5).
# Prints one "PASS|FAIL scenario N: ..." line per scenario (with its checks),
# scenario 4's table ("scenario 4: metric | kernel netback | vifkit-back |
# ratio"), and "N passed, N failed (lab wall time N s)". Exit 0 iff all
# passed. Needs root (apt-get, dpkg -x ownership) on Debian 12; nothing is
# installed except host tools.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=${1:-$REPO/build/bin}
shift || true
SCENARIOS=${*:-1 2 3 4}
CACHE=${LAB_CACHE:-$HERE/cache}
TMO=${LAB_TIMEOUT:-900}
CPU=${LAB_CPU:-qemu64}
MEM=${LAB_MEM:-3G}
S4SECS=${LAB_S4_SECONDS:-5}
case $S4SECS in ''|*[!0-9]*) echo "lab: LAB_S4_SECONDS must be a number" >&2; exit 2 ;; esac
XENV=4.17
ROOT=$CACHE/root
BIN=$(cd "$BIN" 2>/dev/null && pwd) || { echo "lab: no bin dir ${1:-build/bin}" >&2; exit 2; }
for b in vifkit-back vifkit-front vifkit-ctl; do
    [ -x "$BIN/$b" ] || { echo "lab: $BIN/$b missing (build first)" >&2; exit 2; }
done
log() { echo "lab: $*" >&2; }
T0=$SECONDS

# ---- host tools ---------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v ethtool >/dev/null || need+=(ethtool)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v xz >/dev/null || need+=(xz-utils)
if [ ${#need[@]} -gt 0 ]; then
    log "installing host tools: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" ||
        { log "apt-get install failed"; exit 2; }
fi

# ---- Xen, kernel, Xen tools: apt-get download + dpkg -x (never installed) -------
mkdir -p "$CACHE/debs" "$CACHE/logs"
if [ ! -e "$CACHE/.unpacked" ]; then
    KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$KPKG" ] || { apt-get update -qq; KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); }
    [ -n "$KPKG" ] || { log "cannot resolve linux-image-amd64"; exit 2; }
    PKGS="xen-hypervisor-$XENV-amd64 xen-utils-$XENV xen-utils-common xenstore-utils $KPKG libyajl2
          libxenmisc$XENV libxenstore4 libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1
          libxentoollog1 libxendevicemodel1 libxentoolcore1 libxenhypfs1"
    if [ "$(ls "$CACHE"/debs/*.deb 2>/dev/null | wc -l)" -lt 16 ]; then
        log "downloading $PKGS"
        (cd "$CACHE/debs" && apt-get download $PKGS >/dev/null 2>&1) || { log "apt-get download failed"; exit 2; }
    fi
    rm -rf "$ROOT"; mkdir -p "$ROOT"
    for d in "$CACHE"/debs/*.deb; do dpkg -x "$d" "$ROOT"; done
    touch "$CACHE/.unpacked"
fi
KVER=$(ls "$ROOT/lib/modules" | sort -V | tail -1)
MODS=$ROOT/lib/modules/$KVER/kernel
XENBIN=$ROOT/usr/lib/xen-$XENV/bin
[ -e "$CACHE/xen.elf" ] || zcat "$ROOT/boot/xen-$XENV-amd64.gz" > "$CACHE/xen.elf"
cmp -s "$ROOT/boot/vmlinuz-$KVER" "$CACHE/vmlinuz" || cp "$ROOT/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"
# dom0 boots from the uncompressed ELF inside the bzImage. Given the bzImage, Xen
# unpacks its XZ payload while it builds dom0, with no timer running; under TCG on
# a busy host that can outlast the 32-bit HPET (43 s at 100 MHz): "Platform timer
# appears to have unexpectedly wrapped", after which Xen runs dom0's clock slow for
# minutes, dom0 and the domU disagree on time and iperf3 aborts. (The domU's kernel
# is unpacked by libxenguest in dom0 userspace: no such problem.)
DOM0K=$CACHE/vmlinux
if [ ! -s "$DOM0K" ] || [ "$CACHE/vmlinuz" -nt "$DOM0K" ]; then
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$CACHE/vmlinuz" | head -1 | cut -d: -f1)
    # (xz stops at the end of the stream: tail's SIGPIPE is expected)
    [ -n "$off" ] && { tail -c +$((off + 1)) "$CACHE/vmlinuz" | xz -dc --single-stream > "$DOM0K.tmp" 2>/dev/null; }
    if [ -n "$off" ] && [ "$(head -c 4 "$DOM0K.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
        mv "$DOM0K.tmp" "$DOM0K"
    else
        rm -f "$DOM0K.tmp" "$DOM0K"
    fi
fi
[ -s "$DOM0K" ] || { log "no XZ payload in $CACHE/vmlinuz: dom0 boots the bzImage"; DOM0K=$CACHE/vmlinuz; }

# ---- initramfs images ------------------------------------------------------------
put() { # tree file [path-in-tree]: a program and the shared libraries ldd lists
    local t=$1 f=$2 to=${3:-}
    [ -n "$to" ] || to=${f#"$ROOT"}
    mkdir -p "$t$(dirname "$to")"
    cp -L "$f" "$t$to"
    LD_LIBRARY_PATH=$ROOT/usr/lib/x86_64-linux-gnu ldd "$f" 2>/dev/null |
        awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/lib64\// {print $1}' |
        while read -r lib; do
            local dst=${lib#"$ROOT"}
            case $dst in /lib/*) dst=/usr$dst ;; esac
            [ -e "$t$dst" ] && continue
            mkdir -p "$t$(dirname "$dst")"
            cp -L "$lib" "$t$dst"
        done
}
skeleton() { # tree
    local t=$1
    rm -rf "$t"
    mkdir -p "$t"/{bin,sbin,usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,lib64,proc,sys,dev,run,tmp,etc,root,var/log,var/lib,lib/modules}
    ln -s ../usr/lib/x86_64-linux-gnu "$t/lib/x86_64-linux-gnu"
    ln -s ../run "$t/var/run"
    cp /bin/busybox "$t/bin/busybox"
    for a in $(/bin/busybox --list); do [ -e "$t/bin/$a" ] || ln -s busybox "$t/bin/$a"; done
    # libxenstore's xs_close() cancels its reader thread: glibc dlopen()s libgcc_s
    cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$t/usr/lib/x86_64-linux-gnu/"
    echo "root:x:0:0:root:/root:/bin/sh" > "$t/etc/passwd"
    echo "root:x:0:" > "$t/etc/group"
    put "$t" "$(command -v iperf3)" /usr/bin/iperf3
}
mkimage() { (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -4 > "$2"; }
modules() { # tree module-path...
    local t=$1; shift
    for m in "$@"; do cp "$MODS/$m.ko" "$t/lib/modules/" || { log "module $m missing"; exit 2; }; done
}

log "building initramfs images (vifkit from $BIN, kernel $KVER)"
U=$CACHE/tree-domU
skeleton "$U"
modules "$U" drivers/xen/xen-evtchn drivers/xen/xen-gntdev drivers/xen/xen-gntalloc drivers/net/xen-netfront drivers/net/tun net/core/pktgen
put "$U" "$(command -v ethtool)" /usr/sbin/ethtool
for b in vifkit-front vifkit-ctl; do put "$U" "$BIN/$b" /usr/bin/$b; strip --strip-debug "$U/usr/bin/$b" 2>/dev/null; done
for b in xenstore-read xenstore-write xenstore-ls xenstore-watch; do put "$U" "$ROOT/usr/bin/$b"; done
install -m 755 "$HERE/domU-init.sh" "$U/init"
mkimage "$U" "$CACHE/domU.cpio.gz"

Z=$CACHE/tree-dom0
skeleton "$Z"
modules "$Z" drivers/xen/xen-evtchn drivers/xen/xen-privcmd drivers/xen/xenfs/xenfs drivers/xen/xen-gntdev \
    drivers/xen/xen-gntalloc drivers/net/xen-netback/xen-netback drivers/net/tun net/llc/llc net/802/stp net/bridge/bridge net/core/pktgen
for b in xl xenstored xenconsoled xen-init-dom0; do put "$Z" "$XENBIN/$b"; done
for b in xenstore-read xenstore-write xenstore-ls xenstore-list xenstore-exists xenstore-rm xenstore-chmod; do put "$Z" "$ROOT/usr/bin/$b"; done
put "$Z" "$(command -v ethtool)" /usr/sbin/ethtool
# optional: a tcpdump of the vif's TCP in scenario 1 (diagnostics only)
command -v tcpdump >/dev/null && put "$Z" "$(command -v tcpdump)" /usr/bin/tcpdump
for b in vifkit-back vifkit-ctl; do put "$Z" "$BIN/$b" /usr/bin/$b; strip --strip-debug "$Z/usr/bin/$b" 2>/dev/null; done
mkdir -p "$Z/etc/xen/scripts" "$Z/boot" "$Z/var/lib/xen" "$Z/var/lib/xenstored" "$Z/var/log/xen"
install -m 755 "$HERE/vif-vifkit" "$Z/etc/xen/scripts/vif-vifkit"
cp "$HERE/domU.cfg.in" "$Z/etc/xen/"
cp "$CACHE/vmlinuz" "$Z/boot/vmlinuz"
cp "$CACHE/domU.cpio.gz" "$Z/boot/domU.cpio.gz"
install -m 755 "$HERE/dom0-init.sh" "$Z/init"
mkimage "$Z" "$CACHE/dom0.cpio.gz"
log "images ready after $((SECONDS - T0)) s"
[ -n "${LAB_IMAGES_ONLY:-}" ] && exit 0

# ---- boots -----------------------------------------------------------------------
boot() { # scenario log
    local s=$1 out=$2 start=$SECONDS
    timeout --foreground -k 10 "$TMO" qemu-system-x86_64 -machine q35 -accel tcg -cpu "$CPU" -m "$MEM" -smp 2 \
        -display none -vga none -nic none -no-reboot -serial stdio -monitor none \
        -kernel "$CACHE/xen.elf" \
        -append "dom0_mem=1G,max:1G dom0_max_vcpus=1 console=com1 com1=115200,8n1 loglvl=warning guest_loglvl=warning noreboot=false" \
        -initrd "$DOM0K console=hvc0 earlyprintk=xen rdinit=/init loglevel=4 lab.scenario=$s lab.s4secs=$S4SECS,$CACHE/dom0.cpio.gz" \
        < /dev/null > "$out" 2>&1
    local rc=$?
    echo "lab: qemu exit $rc after $((SECONDS - start)) s" >> "$out"
    return $rc
}
NAMES=([1]="vifkit-back (dom0) <-> Linux xen-netfront (domU)"
       [2]="vifkit-front (domU) <-> Linux xen-netback (dom0)"
       [3]="vifkit-front (domU) <-> vifkit-back (dom0), static grants"
       [4]="Linux xen-netfront (domU): kernel xen-netback vs vifkit-back (dom0), side by side")
# checks every scenario must show (besides: no FAIL line at all)
REQUIRED=([1]="back_started connected front_connected ping dom0_ping two_queues link_down_up detach attach reattach_ping iperf3_domU_to_dom0 iperf3_dom0_to_domU back_clean_exit"
          [2]="connected front_connected ping dom0_ping iperf3_domU_to_dom0 iperf3_dom0_to_domU ctrl_set_hash_algorithm ctrl_gref_not_supported static_fallback front_clean_exit"
          [3]="back_started connected front_connected ping dom0_ping iperf3_domU_to_dom0 iperf3_dom0_to_domU static_grants zero_grant_ops front_clean_exit back_clean_exit"
          [4]="back_started connected vifkit_connected front_connected front_connected_vifkit ping ping_vifkit dom0_ping dom0_ping_vifkit
               udp64_domU_to_dom0_kernel udp64_domU_to_dom0_vifkit
               tcp_domU_to_dom0_kernel tcp_domU_to_dom0_vifkit tcp_dom0_to_domU_kernel tcp_dom0_to_domU_vifkit
               pktgen64_domU_to_dom0_kernel pktgen64_domU_to_dom0_vifkit pktgen64_dom0_to_domU_kernel pktgen64_dom0_to_domU_vifkit
               tcp_notso_domU_to_dom0_kernel tcp_notso_domU_to_dom0_vifkit back_clean_exit")
passed=0; failed=0
for s in $SCENARIOS; do
    [ -n "${NAMES[$s]:-}" ] || { log "unknown scenario $s"; failed=$((failed + 1)); continue; }
    out=$CACHE/logs/scenario$s.log
    log "scenario $s: ${NAMES[$s]} (log ${out#"$REPO"/})"
    t=$SECONDS
    boot "$s" "$out"
    wall=$((SECONDS - t))
    results=$(tr -d '\r' < "$out" | grep -o 'RESULT s'"$s"'\.[A-Za-z0-9_]* \(PASS\|FAIL\).*' | sort -u -k2,2)
    ok=1
    grep -q ' FAIL' <<< "$results" && ok=0
    for r in ${REQUIRED[$s]}; do
        grep -q "^RESULT s$s\.$r \(PASS\|FAIL\)" <<< "$results" || { ok=0; results+=$'\n'"RESULT s$s.$r FAIL (no result: see the log)"; }
    done
    if [ $ok = 1 ]; then v=PASS; passed=$((passed + 1)); else v=FAIL; failed=$((failed + 1)); fi
    echo "$v scenario $s: ${NAMES[$s]} (${wall} s)"
    sed 's/^RESULT /    /' <<< "$results"
    # scenario 4's measurements: "LAB: TABLE s4 metric | kernel | vifkit | ratio"
    tr -d '\r' < "$out" | sed -n "s/^LAB: TABLE s$s /scenario $s: /p"
done
echo "$passed passed, $failed failed (lab wall time $((SECONDS - T0)) s)"
[ $failed = 0 ]
