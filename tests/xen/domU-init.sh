#!/bin/sh
# /init of the lab's domU (busybox sh); its console is logged by xenconsoled in
# dom0, which reads the "LAB-DOMU: RESULT ..." lines and the phase markers.
#  scenario 1: Linux xen-netfront (2 queues) against vifkit-back
#  scenario 2, 3: vifkit-front --platform xen (xen-netfront not loaded)
#  scenario 4: Linux xen-netfront (1 queue) with two vifs, told apart by MAC:
#    vif 0 (00:16:3e:00:00:02, kernel netback) 169.254.1.2/24,
#    vif 1 (00:16:3e:00:00:03, vifkit-back)    169.254.2.2/24;
#    an iperf3 server for dom0's measurements, and dom0's commands (written to
#    data/lab-cmd as "SEQ CMD ARGS", answered in data/lab-ack as "SEQ ANSWER"):
#    pktgen-start MAC DST_MAC DST_IP SRC_IP, pktgen-stop, rx MAC, tso-off, quit
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmpfs /run
mkdir -p /tmp
up() { cut -d' ' -f1 /proc/uptime; }
secs() { cut -d. -f1 /proc/uptime; }
S=$(sed -n 's/.*lab\.scenario=\([0-9]*\).*/\1/p' /proc/cmdline)
result() { n=$1; v=$2; shift 2; echo "LAB-DOMU: RESULT s$S.$n $v $*"; }
check() { n=$1; d=$2; shift 3; if "$@"; then result "$n" PASS "$d"; else result "$n" FAIL "$d"; fi; }
wait_for() { t=$(( $(secs) + $1 )); shift; while [ "$(secs)" -lt "$t" ]; do "$@" && return 0; sleep 0.2; done; return 1; }
DOM0=169.254.1.1
echo "LAB-DOMU: init, scenario $S, uptime $(up)s"
ip link set lo up
insmod /lib/modules/xen-evtchn.ko
insmod /lib/modules/xen-gntdev.ko
insmod /lib/modules/xen-gntalloc.ko limit=65536
insmod /lib/modules/tun.ko
lab_done() { [ "$(xenstore-read data/lab-done 2>/dev/null)" = 1 ]; }
if [ "$S" = 4 ]; then
    insmod /lib/modules/xen-netfront.ko max_queues=1
    ifname() { for d in /sys/class/net/*; do [ "$(cat "$d/address" 2>/dev/null)" = "$1" ] && { echo "${d##*/}"; return 0; }; done; return 1; }
    has_mac() { ifname "$1" >/dev/null; }
    vif_conn() { [ "$(xenstore-read "device/vif/$1/state" 2>/dev/null)" = 4 ]; }
    # vif 0 exists from xl create; dom0 adds vif 1 once vif 0 is connected
    for v in "0 00:16:3e:00:00:02 169.254.1.2 kernel" "1 00:16:3e:00:00:03 169.254.2.2 vifkit"; do
        # shellcheck disable=SC2086 # "devid MAC address backend"
        set -- $v
        wait_for 120 has_mac "$2"; i=$(ifname "$2")
        ip addr add "$3/24" dev "$i"; ip link set "$i" up
        wait_for 60 vif_conn "$1"
        c=front_connected; [ "$4" = vifkit ] && c=front_connected_vifkit
        check $c "vif $1 ($4 backend) connected as ${i:-?} at domU uptime $(up)s" -- vif_conn "$1"
        echo "LAB-DOMU: vif $1 is ${i:-?}: $(ethtool -k "$i" 2>/dev/null | grep -E '^(tx-checksumming|scatter-gather|tcp-segmentation-offload):' | tr '\n' ' ')"
    done
    ping -c 1 -W 3 169.254.1.1 >/dev/null 2>&1; ping -c 1 -W 3 169.254.2.1 >/dev/null 2>&1
    check ping "ping domU -> dom0 169.254.1.1 (vif 0, kernel netback)" -- ping -c 3 -W 3 169.254.1.1
    check ping_vifkit "ping domU -> dom0 169.254.2.1 (vif 1, vifkit-back)" -- ping -c 3 -W 3 169.254.2.1
    ip addr; ip route
    iperf3 -s -D
    insmod /lib/modules/pktgen.ko
    pktgen_start() { # dev dst_mac dst_ip src_ip: 60-byte UDP frames out of dev, until pktgen_stop
        PGDEV=$1; T=/proc/net/pktgen
        echo rem_device_all > $T/kpktgend_0
        echo "add_device $1" > $T/kpktgend_0
        for c in "count 0" "clone_skb 0" "pkt_size 60" "delay 0" "dst_mac $2" "dst $3" "src_min $4" "src_max $4" \
                 "udp_src_min 9" "udp_src_max 9" "udp_dst_min 9" "udp_dst_max 9"; do
            echo "$c" > "$T/$1" || echo "LAB-DOMU: pktgen $1: '$c' refused"
        done
        echo start > $T/pgctrl &
        PGPID=$!
    }
    # commands: a blocking xenstore watch (no polling while dom0 measures)
    mkfifo /tmp/cmdq
    xenstore-watch data/lab-cmd > /tmp/cmdq 2>/dev/null &
    WPID=$!
    echo "LAB-DOMU: phase1 done at $(up)s"
    last=
    while read -r _; do
        # shellcheck disable=SC2046 # "SEQ CMD ARGS"
        set -- $(xenstore-read data/lab-cmd 2>/dev/null)
        { [ -n "${1:-}" ] && [ "$1" != "$last" ]; } || continue
        last=$1; shift
        echo "LAB-DOMU: command $last: $* (at $(up)s)"
        a=ok
        case ${1:-} in
        pktgen-start)
            if i=$(ifname "$2"); then pktgen_start "$i" "$3" "$4" "$5"; a="pktgen on $i"; else a="no interface $2"; fi ;;
        pktgen-stop)
            echo stop > /proc/net/pktgen/pgctrl
            [ -n "${PGPID:-}" ] && wait "$PGPID"   # (a bare wait would wait for the watch too)
            PGPID=
            a=$(grep -E "^Result|pps" "/proc/net/pktgen/$PGDEV" | tr -s ' \n' ' ') ;;
        rx) a="$(cat "/sys/class/net/$(ifname "$2")/statistics/rx_packets") $(up)" ;;
        tso-off)
            for m in 00:16:3e:00:00:02 00:16:3e:00:00:03; do ethtool -K "$(ifname "$m")" tso off gso off; done
            a="tso/gso off: $(for m in 00:16:3e:00:00:02 00:16:3e:00:00:03; do ethtool -k "$(ifname "$m")" | grep -E '^(tcp-segmentation|generic-segmentation)-offload' | tr '\n' ' '; done)" ;;
        quit) break ;;
        *) a="unknown command" ;;
        esac
        xenstore-write data/lab-ack "$last $a"
    done < /tmp/cmdq
    xenstore-write data/lab-ack "$last bye"
    kill "$WPID"
    wait_for 600 lab_done
    cat /proc/net/dev
    echo "LAB-DOMU: all done at $(up)s"
    while true; do sleep 3600; done
fi
FRONTPID=
if [ "$S" = 1 ]; then
    insmod /lib/modules/xen-netfront.ko max_queues=2
    TXCSUM_OFF=1
else
    ls -l /dev/xen
    vifkit-front --platform xen --port tap:eth0 --queues 2 --ctl-socket /run/ctl.sock \
        --stats-file /tmp/front-stats.json > /tmp/front.log 2>&1 &
    FRONTPID=$!
fi
has_eth0() { [ -e /sys/class/net/eth0 ]; }
wait_for 30 has_eth0
ip addr add 169.254.1.2/16 dev eth0
ip link set eth0 up
# Linux netfront sends partial checksums (NETTXF_csum_blank); vifkit-back
# completes them. TXCSUM_OFF=1 asks netfront for full checksums instead.
[ -n "${TXCSUM_OFF:-}" ] && ethtool -K eth0 tx off >/dev/null && echo "LAB-DOMU: eth0 tx checksum offload off"
conn() { [ "$(xenstore-read device/vif/0/state 2>/dev/null)" = 4 ]; }
wait_for 60 conn
check front_connected "vif 0 connected at domU uptime $(up)s" -- conn
[ -n "$FRONTPID" ] && head -20 /tmp/front.log
ping -c 1 -W 3 $DOM0 >/dev/null 2>&1   # ARP + bridge learning
check ping "ping domU -> dom0" -- ping -c 5 -W 3 $DOM0
cat /proc/net/dev; ip addr show eth0; ip neigh show

bw() { # label args...: one iperf3 run, prints the receiver's rate
    l=$1; shift
    iperf3 -c $DOM0 -t 3 -f m --connect-timeout 15000 "$@" > /tmp/iperf.out 2>&1
    r=$(grep receiver /tmp/iperf.out | tail -1 | awk '{for (i=1;i<NF;i++) if ($(i+1) ~ /bits\/sec/) print $i" "$(i+1)}')
    if [ -n "$r" ]; then result "$l" PASS "iperf3 $*: $r"; else result "$l" FAIL "iperf3 $*: $(tail -2 /tmp/iperf.out)"; fi
}
if [ "$S" = 3 ]; then
    # let dom0 take a stats snapshot of vifkit-back: the bulk phase is measured alone
    echo "LAB-DOMU: bulk start"
    snap() { [ "$(xenstore-read data/lab-snap 2>/dev/null)" = 1 ]; }
    wait_for 60 snap
fi
if command -v iperf3 >/dev/null; then
    bw iperf3_domU_to_dom0
    bw iperf3_dom0_to_domU -R
else
    echo "LAB-DOMU: iperf3 not in the image"
fi

if [ "$S" = 1 ]; then
    ip link set eth0 down; sleep 1; ip link set eth0 up; echo "LAB-DOMU: ip link set eth0 up: rc $?"
    sleep 1; ip link show eth0; ip route; dmesg | grep -i "net\|vif" | tail -8
    ping -c 1 -W 3 $DOM0 >/dev/null 2>&1
    check link_down_up "ip link set eth0 down/up, then ping" -- ping -c 3 -W 3 $DOM0
    # Same with one queue: reload xen-netfront (also a frontend reconnect).
    rmmod xen-netfront; insmod /lib/modules/xen-netfront.ko max_queues=1
    wait_for 30 has_eth0; ip addr add 169.254.1.2/16 dev eth0; ip link set eth0 up
    ethtool -K eth0 tx off >/dev/null
    wait_for 60 conn
    check reload_1q "rmmod + insmod xen-netfront max_queues=1: connected again, queues=$(xenstore-read device/vif/0/multi-queue-num-queues 2>/dev/null || echo 1)" -- conn
    ping -c 1 -W 3 $DOM0 >/dev/null 2>&1
    check ping_1q "ping domU -> dom0, one queue" -- ping -c 3 -W 3 $DOM0
    bw iperf3_1q_domU_to_dom0
    bw iperf3_1q_dom0_to_domU -R
    # Re-attach (xl network-attach in dom0) creates a new eth0: give it the address.
    ( while true; do
        if [ -e /sys/class/net/eth0 ] && ! ip addr show eth0 | grep -q 169.254.1.2; then
            ip addr add 169.254.1.2/16 dev eth0; ip link set eth0 up
            ethtool -K eth0 tx off >/dev/null
            echo "LAB-DOMU: configured the new eth0 at $(up)s"; ip link show eth0
        fi
        sleep 0.5
      done ) &
fi

if [ "$S" = 2 ] || [ "$S" = 3 ]; then
    ctl() { vifkit-ctl --socket /run/ctl.sock "$@"; }
    says() { echo "$o" | grep -q "$1"; }
    if [ "$S" = 2 ]; then
        # Linux netback implements the hash messages...
        o=$(ctl set_hash_algorithm 1 2>&1); echo "$o"
        check ctrl_set_hash_algorithm "vifkit-ctl set_hash_algorithm toeplitz: $(echo $o | head -c 160)" -- says SUCCESS
        o=$(ctl get_hash_flags 2>&1); echo "$o"
        check ctrl_get_hash_flags "vifkit-ctl get_hash_flags: $(echo $o | head -c 160)" -- says SUCCESS
        o=$(ctl get_hash_mapping_size 2>&1); echo "$o"
        check ctrl_get_hash_mapping_size "vifkit-ctl get_hash_mapping_size: $(echo $o | head -c 160)" -- says SUCCESS
        # ...but not the static-grant (gref mapping) ones.
        o=$(ctl get_gref_mapping_size 0 2>&1); echo "$o"
        check ctrl_gref_not_supported "vifkit-ctl get_gref_mapping_size: $(echo $o | head -c 160)" -- says NOT_SUPPORTED
    fi
    kill -USR1 $FRONTPID; sleep 1
    echo "LAB-DOMU: ===== vifkit-front stats ====="
    cat /tmp/front-stats.json
    sg=$(grep '"static_grants"' /tmp/front-stats.json | tail -1 | sed 's/.*: //; s/,//')
    fb=$(grep '"static_fallback"' /tmp/front-stats.json | head -1 | sed 's/.*: //; s/,//')
    if [ "$S" = 2 ]; then
        check static_fallback "front static_grants=$sg static_fallback=$fb (ordinary grants with Linux netback)" -- [ "$fb" = true ]
    else
        sg_ok() { [ "$fb" = false ] && [ "$sg" != false ] && [ "$sg" != 0 ]; }
        check static_grants "front static_grants=$sg static_fallback=$fb" -- sg_ok
    fi
    echo "LAB-DOMU: ===== vifkit-front log (tail) ====="
    tail -30 /tmp/front.log
fi
echo "LAB-DOMU: phase1 done at $(up)s"
# dom0 pings us (and in scenario 1 detaches/re-attaches the vif), then writes
# data/lab-done in our xenstore directory.
wait_for 180 lab_done
if [ -n "$FRONTPID" ]; then
    kill $FRONTPID; wait $FRONTPID; rc=$?
    check front_clean_exit "vifkit-front exit status $rc after SIGTERM" -- [ $rc -eq 0 ]
fi
echo "LAB-DOMU: all done at $(up)s"
while true; do sleep 3600; done
