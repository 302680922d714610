#!/usr/bin/env bash
# vifkit demo on emulated Xen: vifkit-xenstored (store + hypervisor broker),
# vifkit-back in a "host" network namespace, vifkit-front as guest domain 1
# in a "guest" namespace whose eth0 is the frontend's TAP. Then ping and
# iperf3 in both directions through netfront -> rings -> netback -> TAP,
# and the stats of both ends. Cleans up after itself.
set -euo pipefail
BIN=${1:-build/bin}
BIN=$(cd "$BIN" && pwd)
SECS=${DEMO_IPERF_SECONDS:-5}
MODE=${DEMO_MODE:-static}   # static (static grants), copy (grant copy), map (grant map)
# Extra options for each end, e.g. DEMO_FRONT_ARGS="--disable sg,gso-tcpv4,gso-tcpv6"
# to measure without scatter-gather and segmentation offload.
read -r -a back_extra <<<"${DEMO_BACK_ARGS:-}"
read -r -a front_extra <<<"${DEMO_FRONT_ARGS:-}"
tag=$$
tmp=$(mktemp -d /tmp/vifkit-demo.XXXXXX)
HNS=vifkit-host-$tag GNS=vifkit-guest-$tag
HOST_IP=10.213.0.1 GUEST_IP=10.213.0.2
pids=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  ip netns del "$HNS" 2>/dev/null; ip netns del "$GNS" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
wait_for() {  # wait_for SECONDS CMD...
  local t=$1; shift
  for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for: $*" >&2; return 1
}
xs() { XENSTORED_PATH=$tmp/xs.sock "$@"; }

say "starting vifkit-xenstored (xenstore wire protocol + emulated hypervisor broker)"
"$BIN/vifkit-xenstored" --socket "$tmp/xs.sock" --broker "$tmp/broker.sock" --log-level warn &
pids+=($!)
wait_for 10 test -S "$tmp/broker.sock"
ip netns add "$HNS"; ip netns add "$GNS"
ip -n "$HNS" link set lo up; ip -n "$GNS" link set lo up

case "$MODE" in
  static) back_mode=(--mode copy) ;;                      # static grants, copy for anything else
  copy)   back_mode=(--mode copy --no-static-grants) ;;
  map)    back_mode=(--mode map --no-static-grants) ;;
  *) echo "DEMO_MODE must be static, copy or map" >&2; exit 2 ;;
esac
say "starting vifkit-back (domain 0, $MODE mode) in netns $HNS"
ip netns exec "$HNS" "$BIN/vifkit-back" --broker "$tmp/broker.sock" --store "$tmp/xs.sock" \
  "${back_mode[@]}" --port 'tap:vif{domid}.{devid}' --stats-file "$tmp/back.json" ${back_extra[@]+"${back_extra[@]}"} &
pids+=($!)
wait_for 10 xs xenstore-read /local/domain/0/backend/vif >/dev/null 2>&1 || true

say "vifkit-attach: toolstack writes the vif nodes for guest 1"
"$BIN/vifkit-attach" --store "$tmp/xs.sock" --guest 1 --backend 0 --devid 0 --mac 00:16:3e:00:01:00

say "starting vifkit-front (guest domain 1) in netns $GNS, eth0 = its TAP"
ip netns exec "$GNS" "$BIN/vifkit-front" --broker "$tmp/broker.sock" --store "$tmp/xs.sock" \
  --domid 1 --port tap:eth0 --stats-file "$tmp/front.json" ${front_extra[@]+"${front_extra[@]}"} &
pids+=($!)
connected() { [ "$(xs xenstore-read /local/domain/0/backend/vif/1/0/state)" = 4 ] &&
              [ "$(xs xenstore-read /local/domain/1/device/vif/0/state)" = 4 ]; }
wait_for 15 connected
wait_for 10 ip -n "$HNS" link show vif1.0
wait_for 10 ip -n "$GNS" link show eth0
ip -n "$HNS" addr add $HOST_IP/24 dev vif1.0; ip -n "$HNS" link set vif1.0 up
ip -n "$GNS" link set eth0 address 00:16:3e:00:01:00
ip -n "$GNS" addr add $GUEST_IP/24 dev eth0; ip -n "$GNS" link set eth0 up

say "xenstore (as Debian's xenstore-ls sees it)"
xs xenstore-ls -f /local/domain | grep -E 'vif' | sed 's/^/  /'

say "ping guest -> host"
ip netns exec "$GNS" ping -c 5 -i 0.2 -W 2 $HOST_IP
say "ping host -> guest"
ip netns exec "$HNS" ping -c 5 -i 0.2 -W 2 $GUEST_IP

ip netns exec "$HNS" iperf3 -s -B $HOST_IP -D --pidfile "$tmp/iperf3.pid" >/dev/null
wait_for 10 test -s "$tmp/iperf3.pid"
sleep 0.3
say "iperf3 guest -> host (guest transmit: netfront tx -> netback -> TAP), ${SECS}s"
ip netns exec "$GNS" iperf3 -c $HOST_IP -t "$SECS" -f g | tail -4
say "iperf3 host -> guest (guest receive: TAP -> netback rx -> netfront), ${SECS}s"
ip netns exec "$GNS" iperf3 -c $HOST_IP -t "$SECS" -f g -R | tail -4
kill "$(cat "$tmp/iperf3.pid")" 2>/dev/null || true

say "stats"
kill -USR1 "${pids[1]}" "${pids[2]}"
sleep 0.5
python3 - "$tmp/back.json" "$tmp/front.json" <<'PY'
import json, sys
back, front = (json.load(open(p)) for p in sys.argv[1:3])
q = back["vifs"][0]["queues"][0]
fq = front["queues"][0]
print(f"backend  vif1.0 ({back['vifs'][0]['state']}): guest tx {q['tx_packets']} pkts {q['tx_bytes']} B, "
      f"guest rx {q['rx_packets']} pkts {q['rx_bytes']} B, drops tx {q['tx_drops']} rx {q['rx_drops']}")
pk = q['tx_packets'] + q['rx_packets']
sg = (back['vifs'][0].get('ctrl') or {}).get('static_grants', {})
ops = q['grant_copies'] + q['grant_maps'] + q['grant_unmaps'] + sg.get('maps', 0) + sg.get('unmaps', 0)
print(f"backend  grant copies {q['grant_copies']} in {q['copy_batches']} batches, maps {q['grant_maps']} (rings), "
      f"unmaps {q['grant_unmaps']}; static grants: {sg.get('mapped', 0)} kept mapped, "
      f"{q['static_hits']} slots served through them")
print(f"backend  {ops / max(pk, 1):.4f} grant operations per packet, setup included")
print(f"offloads: GSO super-frames guest->host {q['gso_tx']}, host->guest {q['gso_rx']}; partial checksums "
      f"passed on {q['csum_offloaded'] + fq['csum_offloaded']}, completed in software "
      f"{q['csum_completed'] + fq['csum_completed']}; software-segmented {q['gso_segmented'] + fq['gso_segmented']}")
print(f"frontend ({front['state']}): tx {fq['tx_packets']} pkts, rx {fq['rx_packets']} pkts, "
      f"errors tx {fq['tx_errors']} rx {fq['rx_errors']}, granted pages {front['granted_pages']}")
print("full JSON:")
print(json.dumps({"backend": back, "frontend": front}, indent=1))
PY
say "demo finished; cleaning up"
