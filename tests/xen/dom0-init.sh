#!/bin/sh
# /init of the lab's dom0 (busybox sh). Kernel command line: lab.scenario=N.
#  1: vifkit-back (xen-netback not loaded) serves the domU's Linux xen-netfront
#  2: vifkit-front in the domU drives dom0's Linux xen-netback
#  3: vifkit-front in the domU <-> vifkit-back in dom0, static grants
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
[ "$S" = 2 ] && KNETBACK=xen-netback
for m in xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc $KNETBACK tun llc stp bridge; do
    insmod /lib/modules/$m.ko || echo "LAB: insmod $m FAILED"
done
mount -t xenfs xenfs /proc/xen
xenstored --pid-file /run/xenstored.pid
xen-init-dom0 >/dev/null
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
echo "LAB: toolstack up at $(up)s"
ip link set lo up
brctl addbr xenbr0 && ip addr add 169.254.1.1/16 dev xenbr0 && ip link set xenbr0 up || echo "LAB: bridge setup FAILED"
iperf3 -s -D -B 169.254.1.1 >/dev/null 2>&1
# dom0's stack hands the Linux netback partial checksums (NETRXF_csum_blank):
# vifkit-front completes them (set LAB_DOM0_TXCSUM_OFF=1 to compare).
[ "$S" = 2 ] && [ -n "${LAB_DOM0_TXCSUM_OFF:-}" ] && ethtool -K xenbr0 tx off >/dev/null && echo "LAB: xenbr0 tx checksum offload off"

BACKPID=
if [ "$S" = 1 ] || [ "$S" = 3 ]; then
    vifkit-back --platform xen --max-queues 2 --stats-file /tmp/back-stats.json > /tmp/back.log 2>&1 &
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
cat /proc/net/dev; ip neigh show
if [ -n "$BACKPID" ]; then
    echo "LAB: vifkit-back wchan $(cat /proc/$BACKPID/wchan) state $(grep State /proc/$BACKPID/status)"
    for f in /proc/$BACKPID/fd/*; do echo "LAB: fd ${f##*/} -> $(readlink $f) $(grep flags /proc/$BACKPID/fdinfo/${f##*/})"; done
    grep -h tfd /proc/$BACKPID/fdinfo/*
    echo "LAB: brport state $(cat /sys/class/net/vif1.0/brport/state) carrier $(cat /sys/class/net/vif1.0/carrier)"
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
