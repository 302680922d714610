#!/bin/sh
# /init of the lab's dom0 (busybox sh). Kernel command line: lab.scenario=N.
#  1: vifkit-back (xen-netback not loaded) serves the domU's Linux xen-netfront
#  2: vifkit-front in the domU drives dom0's Linux xen-netback
#  3: vifkit-front in the domU <-> vifkit-back in dom0, static grants
#  4: one Linux xen-netfront domU with two vifs: vif 0 served by the kernel
#     xen-netback (backend type vif, bridge xenbr0, 169.254.1.0/24), vif 1 by
#     vifkit-back (private backend type "vifkit", attached with xenstore writes,
#     bridge xenbr1, 169.254.2.0/24); iperf3 and pktgen measure both, one
#     after the other, and dom0 prints a "LAB: TABLE s4 ..." ratio table
# Every verdict is a line "LAB: RESULT s<N>.<check> PASS|FAIL <detail>" (the
# domU prints "LAB-DOMU: RESULT ..."); lab.sh reads them from the serial log.
export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run && mkdir -p /run/xen /run/xenstored /var/log/xen/console
up() { cut -d' ' -f1 /proc/uptime; }
secs() { cut -d. -f1 /proc/uptime; }
S=$(sed -n 's/.*lab\.scenario=\([0-9]*\).*/\1/p' /proc/cmdline)
# seconds per scenario-4 measurement (lab.sh: LAB_S4_SECONDS)
S4SECS=$(sed -n 's/.*lab\.s4secs=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$S4SECS" ] || S4SECS=5
result() { # check-name PASS|FAIL detail...
    n=$1; v=$2; shift 2; echo "LAB: RESULT s$S.$n $v $*"
}
check() { # check-name detail -- command...
    n=$1; d=$2; shift 3
    if "$@"; then result "$n" PASS "$d"; else result "$n" FAIL "$d"; fi
}
wait_for() { # seconds command...
    t=$(( $(secs) + $1 )); shift
    while [ "$(secs)" -lt "$t" ]; do "$@" && return 0; sleep 0.2; done
    return 1
}
CON=/var/log/xen/console/guest-domU.log
domu_says() { grep -q "$1" $CON 2>/dev/null; }
echo "LAB: dom0 init, scenario $S, uptime $(up)s"

KNETBACK=
{ [ "$S" = 2 ] || [ "$S" = 4 ]; } && KNETBACK=xen-netback
for m in xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc $KNETBACK tun llc stp bridge; do
    insmod /lib/modules/$m.ko || echo "LAB: insmod $m FAILED"
done
mount -t xenfs xenfs /proc/xen
xenstored --pid-file /run/xenstored.pid
xen-init-dom0 >/dev/null
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
echo "LAB: toolstack up at $(up)s"
ip link set lo up
# scenario 4 has two vifs on two subnets: 169.254.1.0/24 (kernel netback, xenbr0)
# and 169.254.2.0/24 (vifkit-back, xenbr1); the others one vif on 169.254/16
PFX=16; [ "$S" = 4 ] && PFX=24
brctl addbr xenbr0 && ip addr add "169.254.1.1/$PFX" dev xenbr0 && ip link set xenbr0 up || echo "LAB: bridge setup FAILED"
if [ "$S" = 4 ]; then
    brctl addbr xenbr1 && ip addr add 169.254.2.1/24 dev xenbr1 && ip link set xenbr1 up || echo "LAB: bridge xenbr1 setup FAILED"
fi
iperf3 -s -D -B 169.254.1.1 >/dev/null 2>&1
# dom0's stack hands the Linux netback partial checksums (NETRXF_csum_blank):
# vifkit-front completes them (set LAB_DOM0_TXCSUM_OFF=1 to compare).
[ "$S" = 2 ] && [ -n "${LAB_DOM0_TXCSUM_OFF:-}" ] && ethtool -K xenbr0 tx off >/dev/null && echo "LAB: xenbr0 tx checksum offload off"

BACKPID=
BACKARGS="--max-queues 2"
# scenario 4: next to the kernel netback, on a private backend type; one queue
# like the kernel netback of this 1-vCPU dom0; grant copy (Linux netfront has no
# static grants), event-driven (busy polling would starve the only dom0 vCPU)
[ "$S" = 4 ] && BACKARGS="--backend-type vifkit --port tap:vk{domid}.{devid} --max-queues 1 --mode copy --poll event"
if [ "$S" = 1 ] || [ "$S" = 3 ] || [ "$S" = 4 ]; then
    # shellcheck disable=SC2086 # BACKARGS: a list of words
    vifkit-back --platform xen $BACKARGS --stats-file /tmp/back-stats.json > /tmp/back.log 2>&1 &
    BACKPID=$!
    sleep 1
    check back_started "vifkit-back --platform xen running, pid $BACKPID" -- kill -0 $BACKPID
    head -5 /tmp/back.log
fi

VCPUS=1; [ "$S" = 1 ] && VCPUS=2
if [ "$S" = 1 ] && command -v tcpdump >/dev/null; then
    # TCP seen on xenbr0 (both directions of the vif), with checksum verdicts
    tcpdump -Z root -n -vv -i xenbr0 -c 16 tcp > /tmp/tcpdump.txt 2>&1 &
fi
sed -e "s/@SCENARIO@/$S/" -e "s/@VCPUS@/$VCPUS/" /etc/xen/domU.cfg.in > /etc/xen/domU.cfg
echo "LAB: xl create at $(up)s"
xl create /etc/xen/domU.cfg
D=$(xl domid domU 2>/dev/null)
echo "LAB: domU is domain $D"
finish() {
    [ -s /tmp/tcpdump.txt ] && { echo "LAB: ===== tcpdump xenbr0 tcp ====="; cat /tmp/tcpdump.txt; }
    if [ -n "$BACKPID" ]; then
        echo "LAB: ===== vifkit-back log (tail) ====="
        tail -40 /tmp/back.log
    fi
    echo "LAB: ===== domU console ====="
    cat $CON 2>/dev/null
    echo "LAB: ===== end domU console ====="
    echo "LAB: all done at $(up)s"
    xl destroy domU 2>/dev/null
    poweroff -f
}
if [ -z "$D" ]; then
    result domU_created FAIL "xl create failed"
    cat /var/log/xen/vif-vifkit.log 2>/dev/null
    finish
fi
FS=/local/domain/$D/device/vif/0
BS=/local/domain/0/backend/vif/$D/0
both4() { [ "$(xenstore-read $FS/state 2>/dev/null)" = 4 ] && [ "$(xenstore-read $BS/state 2>/dev/null)" = 4 ]; }
wait_for 120 both4
xenstore-read $FS/multi-queue-num-queues > /tmp/nq 2>/dev/null
check connected "frontend=$(xenstore-read $FS/state 2>/dev/null) backend=$(xenstore-read $BS/state 2>/dev/null) at $(up)s" -- both4
xenstore-ls -f $FS | grep -v queue-
cat /var/log/xen/vif-vifkit.log
echo "LAB: bridge ports: $(ls /sys/class/net/xenbr0/brif 2>/dev/null)"
BACKIF="vif$D.0"   # the vif vifkit-back serves (scenarios 1, 3)

if [ "$S" = 4 ]; then
    # Second vif (devid 1) for vifkit-back's private backend type, the way a
    # toolstack does it: the two directories first, with their owners (keys
    # written later inherit them), then the keys, one transaction per side.
    # The domU's xenbus probes device/vif/1 once its state is Initialising (the
    # backend directory must exist by then) and waits for the backend's
    # InitWait; the frontend keys go first so that vifkit-back, which starts on
    # the backend keys, finds the frontend Initialising (a frontend without a
    # state node counts as gone: a needless InitWait -> Closed -> InitWait).
    VFS="/local/domain/$D/device/vif/1"
    VBS="/local/domain/0/backend/vifkit/$D/1"
    VMAC=00:16:3e:00:00:03
    BACKIF="vk$D.1"
    echo "LAB: attaching vif 1 (backend type vifkit) at $(up)s"
    xenstore-write "$VFS" "" && xenstore-chmod "$VFS" "n$D" r0 &&
        xenstore-write "$VBS" "" && xenstore-chmod "$VBS" n0 "r$D" &&
        xenstore-write "$VFS/backend" "$VBS" "$VFS/backend-id" 0 "$VFS/handle" 1 "$VFS/mac" "$VMAC" \
            "$VFS/mtu" 1500 "$VFS/trusted" 1 "$VFS/state" 1 &&
        xenstore-write "$VBS/frontend" "$VFS" "$VBS/frontend-id" "$D" "$VBS/online" 1 "$VBS/state" 1 \
            "$VBS/handle" 1 "$VBS/mac" "$VMAC" "$VBS/mtu" 1500 "$VBS/type" vifkit "$VBS/script" "" ||
        echo "LAB: xenstore writes for vif 1 FAILED"
    has_tap() { [ -e "/sys/class/net/$BACKIF" ]; }
    wait_for 30 has_tap && ip link set "$BACKIF" up && brctl addif xenbr1 "$BACKIF"
    v4() { [ "$(xenstore-read "$VFS/state" 2>/dev/null)" = 4 ] && [ "$(xenstore-read "$VBS/state" 2>/dev/null)" = 4 ]; }
    wait_for 120 v4
    check vifkit_connected "vif 1 on backend/vifkit: frontend=$(xenstore-read "$VFS/state" 2>/dev/null) backend=$(xenstore-read "$VBS/state" 2>/dev/null) at $(up)s, $BACKIF on xenbr1: $(ls /sys/class/net/xenbr1/brif 2>/dev/null)" -- v4
    xenstore-ls -f "$VFS" | grep -v queue-
    xenstore-ls -f "$VBS"
fi

sum() { grep "\"$1\"" $2 | sed 's/[^0-9]//g' | awk '{s+=$1} END {print s+0}'; }
if [ "$S" = 3 ]; then
    wait_for 200 domu_says "LAB-DOMU: bulk start"
    kill -USR1 $BACKPID; sleep 1; cp /tmp/back-stats.json /tmp/back-before.json
    xenstore-write /local/domain/$D/data/lab-snap 1
fi
wait_for 600 domu_says "LAB-DOMU: phase1 done"
if [ "$S" = 3 ]; then
    # after the bulk phase, while the frontend is still connected
    kill -USR1 $BACKPID; sleep 1; cp /tmp/back-stats.json /tmp/back-after.json
    A=/tmp/back-after.json; B=/tmp/back-before.json
    d() { echo $(( $(sum $1 $A) - $(sum $1 $B) )); }
    pk=$(( $(d tx_packets) + $(d rx_packets) )); cp=$(d grant_copies); mp=$(d grant_maps); um=$(d grant_unmaps); hits=$(d static_hits); fb=$(d static_fallbacks)
    zero_ops() { [ "$pk" -gt 0 ] && [ "$cp" = 0 ] && [ "$mp" = 0 ] && [ "$um" = 0 ] && [ "$hits" -gt 0 ]; }
    check zero_grant_ops "back, during the iperf3 phase: packets=$pk grant_copies=$cp grant_maps=$mp grant_unmaps=$um static_hits=$hits static_fallbacks=$fb (whole run: packets=$(( $(sum tx_packets $A) + $(sum rx_packets $A) )) grant_copies=$(sum grant_copies $A), before static registration)" -- zero_ops
fi
check dom0_ping "ping dom0 -> domU 169.254.1.2" -- ping -c 3 -W 3 169.254.1.2
[ "$S" = 4 ] && check dom0_ping_vifkit "ping dom0 -> domU 169.254.2.2 (vif 1, vifkit-back)" -- ping -c 3 -W 3 169.254.2.2
cat /proc/net/dev; ip neigh show
if [ -n "$BACKPID" ]; then
    echo "LAB: vifkit-back wchan $(cat /proc/$BACKPID/wchan) state $(grep State /proc/$BACKPID/status)"
    for f in /proc/$BACKPID/fd/*; do echo "LAB: fd ${f##*/} -> $(readlink $f) $(grep flags /proc/$BACKPID/fdinfo/${f##*/})"; done
    grep -h tfd /proc/$BACKPID/fdinfo/*
    echo "LAB: $BACKIF brport state $(cat "/sys/class/net/$BACKIF/brport/state") carrier $(cat "/sys/class/net/$BACKIF/carrier")"
fi

if [ "$S" = 1 ]; then
    nq=$(cat /tmp/nq)
    check two_queues "Linux netfront multi-queue-num-queues=$nq (at connect)" -- [ "$nq" = 2 ]
    # toolstack detach, then attach again
    xl network-detach domU 0; rc=$?
    gone() { ! xenstore-exists $BS 2>/dev/null; }
    wait_for 30 gone
    detached() { gone && kill -0 $BACKPID; }
    check detach "xl network-detach rc=$rc, backend node gone: $(gone && echo yes || echo no), vifkit-back still running" -- detached
    xl network-attach domU mac=00:16:3e:00:00:02 script=vif-vifkit; rc=$?
    DEV=$(xenstore-list /local/domain/0/backend/vif/$D 2>/dev/null | head -1)
    FS=/local/domain/$D/device/vif/$DEV; BS=/local/domain/0/backend/vif/$D/$DEV
    wait_for 60 both4
    check attach "xl network-attach rc=$rc devid=$DEV states $(xenstore-read $FS/state 2>/dev/null)/$(xenstore-read $BS/state 2>/dev/null)" -- both4
    ping -c 1 -W 2 169.254.1.2 >/dev/null 2>&1
    check reattach_ping "ping dom0 -> domU after re-attach" -- ping -c 3 -W 3 169.254.1.2
fi

if [ "$S" = 4 ]; then
    # The same measurements over each vif, kernel netback first, then
    # vifkit-back, metric by metric. iperf3: dom0 is the client, the domU runs
    # the server (-R: the domU sends); pps = datagrams the receiver got / its
    # interval. pktgen (in-kernel generator, no syscall per packet; the rows
    # that show what the backends forward): in the domU for domU->dom0, counted
    # by the dom0 side of the vif; on the dom0 side of the vif for dom0->domU,
    # counted by the domU's interface. The domU acts on commands written to its
    # data/lab-cmd ("SEQ CMD ARGS"; answer in data/lab-ack "SEQ ..."). The
    # packet counters of the dom0 side of both vifs show which vif carried what.
    # (check() and result() set n, d, v: the variables here have other names.)
    mkdir -p /tmp/s4
    # one pCPU each (QEMU has two): dom0 (backends, iperf3 in dom0) on 0, the domU on 1
    xl vcpu-pin Domain-0 0 0 && xl vcpu-pin domU 0 1 || echo "LAB: vcpu-pin FAILED"
    xl vcpu-list | tr -s ' ' | sed 's/^/LAB: /'
    ctr() { cat "/sys/class/net/$1/statistics/$2" 2>/dev/null || echo 0; }
    CMDSEQ=0
    domu_cmd() { # command args...: run it in the domU, wait for its answer (in $ACK)
        CMDSEQ=$((CMDSEQ + 1))
        xenstore-write "/local/domain/$D/data/lab-cmd" "$CMDSEQ $*"
        acked() { ACK=$(xenstore-read "/local/domain/$D/data/lab-ack" 2>/dev/null); [ "${ACK%% *}" = "$CMDSEQ" ]; }
        wait_for 60 acked || { ACK=; echo "LAB: domU command '$*': no answer"; return 1; }
        ACK=${ACK#* }
    }
    run3() { # out args...: one iperf3 client run (bounded)
        o=$1; shift
        timeout $((S4SECS + 60)) iperf3 -f m --connect-timeout 15000 -t "$S4SECS" "$@" > "$o" 2>&1
        echo "LAB: iperf3 $*:"; grep -E ' sec |error' "$o"   # per second, then the totals
    }
    # receiver line: "[  5] 0.00-5.00 sec ... lost/total (x%) receiver" -> "pps datagrams seconds"
    pps() { grep receiver "$1" | tail -1 | awk '{for (i = 1; i <= NF; i++) {
        if ($i ~ /^[0-9]+\/[0-9]+$/) {split($i, a, "/"); n = a[2] - a[1]}
        if ($i ~ /^[0-9.]+-[0-9.]+$/) {split($i, b, "-"); d = b[2] - b[1]}}
        if (d > 0 && n > 0) printf "%d %d %.2f\n", n / d, n, d}'; }
    mbps() { grep receiver "$1" | tail -1 | awk '{for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") v = $i} END {if (v != "") print v}'; }
    rate() { awk -v a="$1" -v t="$2" 'BEGIN {if (t > 0) printf "%d", a / t; else print 0}'; }
    secs_between() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }
    path() { # kernel|vifkit: the domU's address and MAC, dom0's address and bridge,
             # ifn (dom0 side of the vif), other (the other vif)
        if [ "$1" = kernel ]; then
            addr=169.254.1.2; mac=00:16:3e:00:00:02; self=169.254.1.1; br=xenbr0; ifn="vif$D.0"; other=$BACKIF
        else
            addr=169.254.2.2; mac=$VMAC; self=169.254.2.1; br=xenbr1; ifn=$BACKIF; other="vif$D.0"
        fi
    }
    save() { echo "$3" > "/tmp/s4/$1-$2"; }   # metric kernel|vifkit value
    insmod /lib/modules/pktgen.ko
    pktgen_start() { # dev dst_mac dst_ip src_ip: 60-byte UDP frames out of dev, until pktgen_stop
        PGDEV=$1; T=/proc/net/pktgen
        echo rem_device_all > $T/kpktgend_0
        echo "add_device $1" > $T/kpktgend_0
        for c in "count 0" "clone_skb 0" "pkt_size 60" "delay 0" "dst_mac $2" "dst $3" "src_min $4" "src_max $4" \
                 "udp_src_min 9" "udp_src_max 9" "udp_dst_min 9" "udp_dst_max 9"; do
            echo "$c" > "$T/$1" || echo "LAB: pktgen $1: '$c' refused"
        done
        echo start > $T/pgctrl &
        PGPID=$!
    }
    pktgen_stop() {
        echo stop > /proc/net/pktgen/pgctrl
        [ -n "${PGPID:-}" ] && wait "$PGPID"   # (a bare wait would wait for vifkit-back too)
        PGPID=
        PGRES=$(grep -E "^Result|pps" "/proc/net/pktgen/$PGDEV" | tr -s ' \n' ' ')
    }
    for p in kernel vifkit; do path $p; ping -c 1 -W 3 "$addr" >/dev/null 2>&1; done
    # Xen's view of time next to dom0's: a skew would make the numbers meaningless
    echo "LAB: clocks before: dom0 uptime $(up)s; xl uptime: $(xl uptime | tr -s ' \n' ' ')"
    if [ -n "$BACKPID" ]; then kill -USR1 "$BACKPID"; sleep 1; cp /tmp/back-stats.json /tmp/back-before.json; fi

    # 64-byte frames: 60 bytes + FCS (pktgen pkt_size 60; iperf3 -l 18: 18 bytes
    # of payload + 8 UDP + 20 IPv4 + 14 Ethernet)
    udp64() { # direction: iperf3 UDP flood over both vifs
        # domU->dom0: the domU's iperf3 server sends (-R); dom0's vif receives (rx)
        if [ "$1" = domU_to_dom0 ]; then R=-R; c=rx_packets; else R=; c=tx_packets; fi
        for p in kernel vifkit; do
            path $p
            a0=$(ctr "$ifn" $c); o0=$(ctr "$other" $c)
            # shellcheck disable=SC2086 # R: an option or nothing
            run3 "/tmp/u-$1-$p.txt" -c "$addr" -u $R -l 18 -b 0
            da=$(( $(ctr "$ifn" $c) - a0 )); dother=$(( $(ctr "$other" $c) - o0 ))
            # shellcheck disable=SC2046 # "pps datagrams seconds"
            set -- "$1" $(pps "/tmp/u-$1-$p.txt")
            r=${2:-0}; got=${3:-0}; dur=${4:-0}
            save "udp-$1" $p "$r"
            # traffic verified: received, and at least that many frames crossed this vif
            ok() { [ "$r" -gt 0 ] && [ "$da" -ge "$got" ]; }
            check "udp64_$1_$p" "iperf3 -c $addr -u $R -l 18 -b 0: $r pps received ($got datagrams in $dur s); dom0 $ifn $c +$da ($(rate "$da" "$dur")/s), $other +$dother" -- ok
        done
    }
    tcp() { # direction [_notso]: iperf3 TCP over both vifs
        if [ "$1" = domU_to_dom0 ]; then R=-R; c=rx_packets; else R=; c=tx_packets; fi
        for p in kernel vifkit; do
            path $p
            a0=$(ctr "$ifn" $c); o0=$(ctr "$other" $c)
            # shellcheck disable=SC2086 # R: an option or nothing
            run3 "/tmp/t-$1-$p${2:-}.txt" -c "$addr" $R
            da=$(( $(ctr "$ifn" $c) - a0 )); dother=$(( $(ctr "$other" $c) - o0 ))
            r=$(mbps "/tmp/t-$1-$p${2:-}.txt"); r=${r:-0}
            save "tcp${2:-}-$1" $p "$r"
            ok() { awk -v r="$r" 'BEGIN {exit !(r > 0)}' && [ "$da" -gt 0 ]; }
            check "tcp${2:-}_$1_$p" "iperf3 -c $addr $R: $r Mbit/s (receiver); dom0 $ifn $c +$da, $other +$dother" -- ok
        done
    }
    pktgen64() { # direction: a pktgen flood over both vifs
        for p in kernel vifkit; do
            path $p
            if [ "$1" = domU_to_dom0 ]; then
                # in the domU (its own vCPU), to dom0's address on the bridge
                domu_cmd pktgen-start "$mac" "$(cat "/sys/class/net/$br/address")" "$self" "$addr"
                st=$ACK; sleep 1
                a0=$(ctr "$ifn" rx_packets); o0=$(ctr "$other" rx_packets); t0=$(up)
                sleep "$S4SECS"
                a1=$(ctr "$ifn" rx_packets); o1=$(ctr "$other" rx_packets); t1=$(up)
                domu_cmd pktgen-stop
                got=$((a1 - a0)); dur=$(secs_between "$t0" "$t1")
                info="pktgen in the domU ($st): dom0 $ifn rx_packets +$got in $dur s, $other +$((o1 - o0)); domU pktgen: $ACK"
            else
                # out of the dom0 side of the vif (the generator shares dom0's one vCPU
                # with the backend), counted by the domU's interface with its clock
                o0=$(ctr "$other" tx_packets)
                pktgen_start "$ifn" "$mac" "$addr" "$self"
                sleep 1
                domu_cmd rx "$mac"; c0=${ACK% *}; t0=${ACK#* }
                sleep "$S4SECS"
                domu_cmd rx "$mac"; c1=${ACK% *}; t1=${ACK#* }
                pktgen_stop
                got=$(( ${c1:-0} - ${c0:-0} )); dur=$(secs_between "$t0" "$t1")
                info="pktgen on dom0's $ifn: domU rx_packets +$got in $dur s (domU clock); dom0 $other tx_packets +$(( $(ctr "$other" tx_packets) - o0 )); dom0 pktgen: $PGRES"
            fi
            r=$(rate "$got" "$dur"); save "pktgen-$1" $p "$r"
            ok() { [ "$r" -gt 0 ]; }
            check "pktgen64_$1_$p" "$r pps; $info" -- ok
        done
    }
    # what the issue asks for first, then what explains it
    udp64 domU_to_dom0
    tcp domU_to_dom0
    tcp dom0_to_domU
    pktgen64 domU_to_dom0
    pktgen64 dom0_to_domU
    # the kernel netback negotiates TSO/GSO with netfront, vifkit-back does not
    # (yet): domU->dom0 TCP again with TSO/GSO off on both of the domU's interfaces
    domu_cmd tso-off && echo "LAB: domU: $ACK" && tcp domU_to_dom0 _notso
    echo "LAB: clocks after: dom0 uptime $(up)s; xl uptime: $(xl uptime | tr -s ' \n' ' ')"
    if [ -n "$BACKPID" ]; then
        kill -USR1 "$BACKPID"; sleep 1
        A=/tmp/back-stats.json; B=/tmp/back-before.json
        pk=$(( $(sum tx_packets $A) + $(sum rx_packets $A) - $(sum tx_packets $B) - $(sum rx_packets $B) ))
        cp=$(( $(sum grant_copies $A) - $(sum grant_copies $B) ))
        echo "LAB: vifkit-back during the measurements: packets=$pk grant_copies=$cp"
    fi
    domu_cmd quit
    row() { # label metric
        k=$(cat "/tmp/s4/$2-kernel" 2>/dev/null); v=$(cat "/tmp/s4/$2-vifkit" 2>/dev/null)
        awk -v m="$1" -v k="${k:-0}" -v v="${v:-0}" 'BEGIN {r = (k > 0) ? sprintf("%.2f", v / k) : "-";
            printf "LAB: TABLE s4 %s | %s | %s | %s\n", m, k, v, r}'
    }
    echo "LAB: TABLE s4 metric | kernel netback | vifkit-back | ratio (vifkit/kernel)"
    row "64B pps domU->dom0 (iperf3 -u -l 18 -b 0, received)" udp-domU_to_dom0
    row "TCP Mbit/s domU->dom0 (iperf3)" tcp-domU_to_dom0
    row "TCP Mbit/s dom0->domU (iperf3)" tcp-dom0_to_domU
    row "64B pps domU->dom0 (pktgen in the domU, dom0 vif rx)" pktgen-domU_to_dom0
    row "64B pps dom0->domU (pktgen on dom0's vif, domU rx)" pktgen-dom0_to_domU
    row "TCP Mbit/s domU->dom0, TSO/GSO off in the domU" tcp_notso-domU_to_dom0
fi

xenstore-write /local/domain/$D/data/lab-done 1
wait_for 240 domu_says "LAB-DOMU: all done"
domu_says "LAB-DOMU: all done" || echo "LAB: domU did not finish"
if [ -n "$BACKPID" ]; then
    kill -USR1 $BACKPID; sleep 1
    echo "LAB: ===== vifkit-back stats ====="
    cat /tmp/back-stats.json
    kill $BACKPID; wait $BACKPID; rc=$?
    check back_clean_exit "vifkit-back exit status $rc after SIGTERM" -- [ $rc -eq 0 ]
fi
finish
