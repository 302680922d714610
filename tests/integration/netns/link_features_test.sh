#!/usr/bin/env bash
# The netif link features beyond offloads (netif-spec §4.3, §5.1), through
# real kernels: multicast control (MCAST_ADD/DEL synced from the guest's
# multicast list, filtering applied), the rate key (credit scheduler, the
# enforced rate measured), carrier (host link down -> guest NO-CARRIER), mtu
# (toolstack keys applied to both TAPs, capped without SG), and rx stall
# detection (a frontend that stops posting buffers -> stalled, carrier 0, and
# back once it resumes).
# Usage: link_features_test.sh BIN_DIR
. "$(dirname "$0")/lib.sh"
ns_init "${1:-build/bin}"
B=/local/domain/0/backend/vif/1/0
F=/local/domain/1/device/vif/0
G1=01:00:5e:01:02:03 G2=01:00:5e:09:09:09 BC=ff:ff:ff:ff:ff:ff
carrier_is() { [ "$(xs xenstore-read $B/carrier 2>/dev/null)" = "$1" ]; }
guest_link_has() { ip -n "$GNS" link show eth0 | grep -q "$1"; }

# l2_counts: send 20 frames from the host to each of G1, G2 and broadcast and
# print what the guest's eth0 received, as "g1 g2 bc".
l2_counts() {
    ip netns exec "$GNS" $XFER l2recv eth0 2.5 >"$T/l2.out" &
    local rp=$!
    wait_for 10 grep -q ready "$T/l2.out"
    for d in $G1 $G2 $BC; do ip netns exec "$HNS" $XFER l2send vif1.0 $d 20; done
    wait $rp
    python3 -c "import json,sys; c=json.loads(open('$T/l2.out').read().split('\n')[1]); print(c.get('$G1',0), c.get('$G2',0), c.get('$BC',0))"
}

# ---- multicast control ---------------------------------------------------------
st=1 why=""
if case_start "" ""; then
    ip -n "$GNS" maddr add $G1 dev eth0
    sleep 2.5  # the frontend syncs its multicast list every second
    read -r a b c < <(l2_counts)
    why="joined $a/20, not joined $b/20, broadcast $c/20"
    snap_stats
    filtered=$(bstat mcast_filtered) adds=$(bstat mcast_adds)
    why="$why; backend: $adds MCAST_ADD, $filtered filtered, filter $(bvif multicast_filter)"
    if [ "$a" = 20 ] && [ "$b" = 0 ] && [ "$c" = 20 ] && [ "$filtered" -ge 20 ] && [ "$adds" -ge 1 ]; then
        ip -n "$GNS" maddr del $G1 dev eth0
        sleep 2.5
        read -r a b c < <(l2_counts)
        snap_stats
        why="$why; after leaving: $a/$b/$c, $(bstat mcast_dels) MCAST_DEL"
        [ "$a" = 0 ] && [ "$b" = 0 ] && [ "$c" = 20 ] && [ "$(bstat mcast_dels)" -ge 1 ] && st=0
    fi
fi
result multicast-filter $st "$why"
case_stop

st=1 why=""
if case_start "" "--disable multicast-control"; then
    read -r a b c < <(l2_counts)
    snap_stats
    why="no request-multicast-control: $a/$b/$c received, filter $(bvif multicast_filter)"
    [ "$a" = 20 ] && [ "$b" = 20 ] && [ "$c" = 20 ] && [ "$(bvif multicast_filter)" = false ] && st=0
fi
result multicast-unfiltered $st "$why"
case_stop

# ---- rate (credit scheduler) ----------------------------------------------------
iperf_mbits() {  # iperf_mbits [-R]: guest -> host Mbit/s over 3 s
    ip netns exec "$GNS" iperf3 -c $HOST4 -t 3 -f m -J "$@" 2>/dev/null |
        python3 -c "import json,sys; print(int(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6))"
}
st=1 why=""
if command -v iperf3 >/dev/null && case_start "" ""; then
    ip netns exec "$HNS" iperf3 -s -B $HOST4 -D --pidfile "$T/iperf3.pid" >/dev/null
    wait_for 10 test -s "$T/iperf3.pid"
    xs xenstore-write $B/rate 250000,20000   # 250 kB per 20 ms = 12.5 MB/s = 100 Mbit/s
    sleep 0.3
    limited=$(iperf_mbits)
    xs xenstore-write $B/rate 62500,20000    # changed while connected: 25 Mbit/s
    sleep 0.3
    limited2=$(iperf_mbits)
    xs xenstore-rm $B/rate
    sleep 0.3
    free=$(iperf_mbits)
    snap_stats
    waits=$(bstat credit_waits)
    kill "$(cat "$T/iperf3.pid")" 2>/dev/null
    why="rate 100 Mbit/s -> ${limited} Mbit/s, 25 Mbit/s -> ${limited2} Mbit/s, unlimited -> ${free} Mbit/s, $waits credit waits"
    # An upper bound that must hold (10 % for the 128 KiB burst and timing), a
    # lower bound loose enough for a loaded 2-core machine.
    [ "$limited" -le 110 ] && [ "$limited" -ge 40 ] && [ "$limited2" -le 28 ] && [ "$limited2" -ge 10 ] &&
        [ "$free" -gt $((3 * limited)) ] && [ "$waits" -gt 0 ] && st=0
fi
result rate-limit $st "$why"
case_stop

# ---- carrier --------------------------------------------------------------------
st=1 why=""
if case_start "" ""; then
    ip -n "$HNS" link set vif1.0 down
    if wait_for 5 carrier_is 0 &&
       wait_for 5 guest_link_has NO-CARRIER; then
        why="host link down -> carrier 0, guest eth0 NO-CARRIER"
        ip -n "$HNS" link set vif1.0 up
        if wait_for 5 carrier_is 1 &&
           wait_for 5 guest_link_has LOWER_UP &&
           wait_for 10 ip netns exec "$GNS" ping -c 1 -W 1 $HOST4; then
            why="$why; up again -> carrier 1, LOWER_UP, ping"
            st=0
        fi
    else
        why="carrier '$(xs xenstore-read $B/carrier)', guest: $(ip -n "$GNS" -br link show eth0)"
    fi
fi
result carrier $st "$why"
case_stop

# ---- mtu ------------------------------------------------------------------------
mtu_of() { ip -n "$1" -o link show "$2" | sed -n 's/.* mtu \([0-9]*\).*/\1/p'; }
st=1 why=""
PRE_FRONT="xs xenstore-write $B/mtu 9000 && xs xenstore-write $F/mtu 9000"
if case_start "" ""; then
    hm=$(mtu_of "$HNS" vif1.0) gm=$(mtu_of "$GNS" eth0)
    why="mtu 9000: host $hm, guest $gm"
    if [ "$hm" = 9000 ] && [ "$gm" = 9000 ] &&
       ip netns exec "$GNS" ping -c 2 -W 2 -s 8000 -M do $HOST4 >/dev/null &&
       ip netns exec "$HNS" ping -c 2 -W 2 -s 8000 -M do $GUEST4 >/dev/null; then
        why="$why, 8000-byte pings both ways"
        xs xenstore-write $B/mtu 4000
        host_mtu_is() { [ "$(mtu_of "$HNS" vif1.0)" = "$1" ]; }
        wait_for 5 host_mtu_is 4000 && { why="$why; changed to 4000 at run time"; st=0; }
    fi
fi
result mtu $st "$why"
case_stop
st=1 why=""
if case_start "" "--disable sg"; then
    hm=$(mtu_of "$HNS" vif1.0) gm=$(mtu_of "$GNS" eth0)
    why="mtu 9000 without frontend sg: host $hm (capped), guest $gm"
    [ "$hm" = 1500 ] && st=0
fi
result mtu-no-sg $st "$why"
case_stop
PRE_FRONT=""

# ---- rx stall -------------------------------------------------------------------
st=1 why=""
if case_start "--rx-stall-timeout 1000" ""; then
    kill -STOP "${CASE_PIDS[2]}"   # the frontend stops posting rx buffers
    # More frames than the 256 rx buffers it had posted (UDP, 1204 bytes each).
    ip netns exec "$HNS" $XFER send udp $GUEST4 9 600000 1 >/dev/null 2>&1 &
    pp=$!
    if wait_for 10 carrier_is 0; then
        snap_back
        why="frontend stopped: stalled $(bstat rx_stalled)x, $(bstat stall_drops) frames dropped, carrier 0"
        wait $pp 2>/dev/null
        kill -CONT "${CASE_PIDS[2]}"
        if wait_for 10 carrier_is 1 &&
           wait_for 10 ip netns exec "$GNS" ping -c 1 -W 1 $HOST4; then
            why="$why; resumed: carrier 1, ping"
            st=0
        fi
    else
        kill -CONT "${CASE_PIDS[2]}"
        wait $pp 2>/dev/null
        why="carrier stayed '$(xs xenstore-read $B/carrier)'"
    fi
fi
result rx-stall $st "$why"
case_stop

finish
