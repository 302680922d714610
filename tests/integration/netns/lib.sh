# Shared by the netns tests: one emulated-Xen pair per case, vifkit-back in a
# "host" namespace (TAP vif1.0), vifkit-front as guest 1 in a "guest" namespace
# (TAP eth0), both ends with IPv4 and IPv6 addresses. Needs root (netns, TAP).
# Source it, then: ns_init; case_start BACK_ARGS FRONT_ARGS; ...; case_stop.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
XFER="python3 $HERE/xfer.py"
HOST4=10.213.0.1 GUEST4=10.213.0.2 HOST6=fd00:213::1 GUEST6=fd00:213::2
GUEST_MAC=00:16:3e:00:01:00
PASSED=0 FAILED=0
CASE_PIDS=()

ns_init() {  # ns_init BIN_DIR
    BIN=$(cd "$1" && pwd)
    if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (network namespaces, TAP)"; exit 77; fi
    for t in ip python3 xenstore-read xenstore-write; do
        command -v "$t" >/dev/null || { echo "SKIP: $t missing"; exit 77; }
    done
    HNS=vk-h-$$ GNS=vk-g-$$
    ip netns add "$HNS" && ip netns add "$GNS" || { echo "SKIP: cannot create network namespaces"; exit 77; }
    ip -n "$HNS" link set lo up; ip -n "$GNS" link set lo up
    WORK=$(mktemp -d /tmp/vifkit-netns.XXXXXX)
    trap ns_cleanup EXIT
}

ns_cleanup() {
    case_stop
    ip netns del "$HNS" 2>/dev/null
    ip netns del "$GNS" 2>/dev/null
    rm -rf "$WORK"
}

wait_for() {  # wait_for SECONDS CMD...
    local t=$1; shift
    for _ in $(seq $((t * 20))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
    return 1
}
xs() { XENSTORED_PATH=$T/xs.sock "$@"; }
connected() { [ "$(xs xenstore-read /local/domain/0/backend/vif/1/0/state)" = 4 ] &&
              [ "$(xs xenstore-read /local/domain/1/device/vif/0/state)" = 4 ]; }

# case_start "BACK ARGS" "FRONT ARGS" [BACK_PORT_SUFFIX] [FRONT_PORT_SUFFIX]
# PRE_FRONT (optional): a command run after the attach, before the frontend starts.
case_start() {
    T=$(mktemp -d "$WORK/case.XXXXXX")
    "$BIN/vifkit-xenstored" --socket "$T/xs.sock" --broker "$T/broker.sock" --log-level warn &
    CASE_PIDS=($!)
    wait_for 10 test -S "$T/broker.sock" || return 1
    # shellcheck disable=SC2086
    ip netns exec "$HNS" "$BIN/vifkit-back" --broker "$T/broker.sock" --store "$T/xs.sock" \
        --port "tap:vif{domid}.{devid}${3:-}" --stats-file "$T/back.json" --log-level warn $1 >"$T/back.out" 2>"$T/back.log" &
    CASE_PIDS+=($!)
    wait_for 10 xs xenstore-read /local/domain/0/backend/vif || true
    "$BIN/vifkit-attach" --store "$T/xs.sock" --guest 1 --backend 0 --devid 0 --mac $GUEST_MAC \
        --log-level warn >/dev/null || return 1
    [ -n "${PRE_FRONT:-}" ] && eval "$PRE_FRONT"
    # shellcheck disable=SC2086
    ip netns exec "$GNS" "$BIN/vifkit-front" --broker "$T/broker.sock" --store "$T/xs.sock" --domid 1 \
        --port "tap:eth0${4:-}" --stats-file "$T/front.json" --log-level warn $2 >"$T/front.out" 2>"$T/front.log" &
    CASE_PIDS+=($!)
    wait_for 15 connected || { echo "  not connected"; return 1; }
    wait_for 10 ip -n "$HNS" link show vif1.0 || return 1
    wait_for 10 ip -n "$GNS" link show eth0 || return 1
    ip -n "$HNS" addr add $HOST4/24 dev vif1.0
    ip -n "$HNS" addr add $HOST6/64 dev vif1.0 nodad
    ip -n "$HNS" link set vif1.0 up
    ip -n "$GNS" link set eth0 address $GUEST_MAC
    ip -n "$GNS" addr add $GUEST4/24 dev eth0
    ip -n "$GNS" addr add $GUEST6/64 dev eth0 nodad
    ip -n "$GNS" link set eth0 up
    wait_for 10 ip netns exec "$GNS" ping -c 1 -W 1 $HOST4 || { echo "  no IPv4 ping"; return 1; }
    wait_for 10 ip netns exec "$GNS" ping -c 1 -W 1 $HOST6 || { echo "  no IPv6 ping"; return 1; }
}

case_stop() {
    local p
    for p in "${CASE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${CASE_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    CASE_PIDS=()
}

# Fresh stats of both ends into $T/back.json and $T/front.json.
snap_stats() {
    rm -f "$T/back.json" "$T/front.json"
    kill -USR1 "${CASE_PIDS[1]}" "${CASE_PIDS[2]}"
    wait_for 5 test -s "$T/back.json" && wait_for 5 test -s "$T/front.json"
    sleep 0.1
}
# bstat KEY / fstat KEY: a counter summed over the vif's queues (backend) or
# the frontend's queues; bvif KEY / ftop KEY: a top-level value.
bstat() { python3 -c "import json,sys; d=json.load(open('$T/back.json')); print(sum(q['$1'] for q in d['vifs'][0]['queues']))"; }
fstat() { python3 -c "import json,sys; d=json.load(open('$T/front.json')); print(sum(q['$1'] for q in d['queues']))"; }
bvif() { python3 -c "import json; d=json.load(open('$T/back.json')); print(json.dumps(d['vifs'][0]['$1']))"; }
ftop() { python3 -c "import json; d=json.load(open('$T/front.json')); print(json.dumps(d['$1']))"; }

# Checksum errors the kernels of both namespaces counted (TCP, UDP, UDPv6).
csum_errors() {
    local ns total=0 v
    for ns in "$HNS" "$GNS"; do
        v=$(ip netns exec "$ns" awk '/^(Tcp|Udp):/ { if (!h[$1]) { for (i = 2; i <= NF; i++) col[$1, $i] = i; h[$1] = 1 }
                                       else s += $col[$1, "InCsumErrors"] } END { print s + 0 }' /proc/net/snmp)
        total=$((total + v))
        v=$(ip netns exec "$ns" awk '$1 == "Udp6InCsumErrors" { print $2 }' /proc/net/snmp6)
        total=$((total + ${v:-0}))
    done
    echo $total
}

# xfer PROTO FROM_NS TO_NS TO_ADDR BYTES: bytes arrive intact (sha256).
xfer() {
    local proto=$1 from=$2 to=$3 addr=$4 bytes=$5 seed=$RANDOM port=$((20000 + RANDOM % 20000)) exp got
    exp=$($XFER expect "$bytes" $seed)
    ip netns exec "$to" $XFER recv "$proto" "$addr" $port "$bytes" >"$T/recv.out" 2>&1 &
    local rp=$!
    wait_for 10 grep -q ready "$T/recv.out"
    ip netns exec "$from" $XFER send "$proto" "$addr" $port "$bytes" $seed 2>>"$T/recv.out"
    wait $rp
    got=$(tail -1 "$T/recv.out")
    if [ "$got" != "$exp" ]; then
        echo "  $proto to $addr: got '$got', want '$exp'"
        return 1
    fi
}

# All of TCP/UDP x IPv4/IPv6 x both directions, bytes checked, no kernel csum errors.
traffic_all() {
    local e0 e1 ok=0
    e0=$(csum_errors)
    xfer tcp "$GNS" "$HNS" $HOST4 4000000 || ok=1
    xfer tcp "$HNS" "$GNS" $GUEST4 4000000 || ok=1
    xfer tcp "$GNS" "$HNS" $HOST6 4000000 || ok=1
    xfer tcp "$HNS" "$GNS" $GUEST6 4000000 || ok=1
    xfer udp "$GNS" "$HNS" $HOST4 240000 || ok=1
    xfer udp "$HNS" "$GNS" $GUEST4 240000 || ok=1
    xfer udp "$GNS" "$HNS" $HOST6 240000 || ok=1
    xfer udp "$HNS" "$GNS" $GUEST6 240000 || ok=1
    e1=$(csum_errors)
    if [ "$e1" != "$e0" ]; then echo "  kernels counted $((e1 - e0)) checksum errors"; ok=1; fi
    return $ok
}

result() {  # result NAME STATUS [detail]
    if [ "$2" -eq 0 ]; then
        echo "PASS $1${3:+: $3}"; PASSED=$((PASSED + 1))
    else
        echo "FAIL $1${3:+: $3}"; FAILED=$((FAILED + 1))
        [ -n "${T:-}" ] && tail -5 "$T/back.log" "$T/front.log" 2>/dev/null | sed 's/^/  /'
    fi
}

finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

# Backend stats only (the frontend may be stopped).
snap_back() {
    rm -f "$T/back.json"
    kill -USR1 "${CASE_PIDS[1]}"
    wait_for 5 test -s "$T/back.json"
    sleep 0.1
}
