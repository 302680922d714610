#!/usr/bin/env bash
# Negotiation matrix for SG, GSO and checksum offload (netif-spec §4-5): each
# feature on or off on each side, and TAPs with and without IFF_VNET_HDR.
# In every combination TCP and UDP over IPv4 and IPv6 flow both ways with
# their bytes checked end to end, the kernels in both namespaces count no
# checksum errors (they verify every checksum vifkit completed), and the
# counters show GSO super-frames crossing the ring exactly when both sides
# allow it, and software segmentation where a TAP does not take them.
# Usage: offload_matrix_test.sh BIN_DIR
. "$(dirname "$0")/lib.sh"
ns_init "${1:-build/bin}"

all_back=sg,gso-tcpv4,gso-tcpv6,ipv6-csum-offload,multicast-control
all_front=sg,gso-tcpv4,gso-tcpv6,csum-offload,ipv6-csum-offload,multicast-control,rx-notify
# name | vifkit-back --disable | vifkit-front --disable | back TAP suffix | front TAP suffix |
#   GSO guest->backend (front gso_tx > 0) | GSO backend->guest (back gso_rx > 0) |
#   software segmentation at: back, front or none
cases="
all-on||||| 1 | 1 | none
back-no-sg|sg|||| 0 | 1 | none
front-no-sg||sg||| 1 | 0 | none
back-no-gso|gso-tcpv4,gso-tcpv6|||| 0 | 1 | none
front-no-gso||gso-tcpv4,gso-tcpv6||| 1 | 0 | none
back-no-gso-tcpv4|gso-tcpv4|||| 1 | 1 | none
front-no-gso-tcpv6||gso-tcpv6||| 1 | 1 | none
back-no-ipv6-csum|ipv6-csum-offload|||| 1 | 1 | none
front-no-ipv6-csum||ipv6-csum-offload||| 1 | 1 | none
front-no-csum-offload||csum-offload||| 1 | 1 | none
front-no-rx-notify||rx-notify||| 1 | 1 | none
all-off|$all_back|$all_front||| 0 | 0 | none
back-tap-plain|||:plain|| 1 | 0 | back
front-tap-plain||||:plain| 0 | 1 | front
both-taps-plain|||:plain|:plain| 0 | 0 | none
"
while IFS='|' read -r name bdis fdis bsuf fsuf gso_up gso_down seg; do
    [ -z "$name" ] && continue
    gso_up=${gso_up// /} gso_down=${gso_down// /} seg=${seg// /}
    why=""
    st=0
    if case_start "${bdis:+--disable $bdis}" "${fdis:+--disable $fdis}" "$bsuf" "$fsuf"; then
        traffic_all || st=1
        snap_stats
        up=$(fstat gso_tx) down=$(bstat gso_rx) bseg=$(bstat gso_segmented) fseg=$(fstat gso_segmented)
        errs=$(( $(bstat gso_errors) + $(fstat gso_errors) + $(bstat csum_errors) + $(fstat csum_errors) ))
        why="gso guest->back $up, back->guest $down, segmented back $bseg front $fseg"
        [ "$gso_up" = 1 ] && [ "$up" -eq 0 ] && { why="$why; expected GSO guest->backend"; st=1; }
        [ "$gso_up" = 0 ] && [ "$up" -ne 0 ] && { why="$why; GSO guest->backend not negotiated"; st=1; }
        [ "$gso_down" = 1 ] && [ "$down" -eq 0 ] && { why="$why; expected GSO backend->guest"; st=1; }
        [ "$gso_down" = 0 ] && [ "$down" -ne 0 ] && { why="$why; GSO backend->guest not negotiated"; st=1; }
        [ "$seg" = back ] && [ "$bseg" -eq 0 ] && { why="$why; expected segmentation in the backend"; st=1; }
        [ "$seg" = front ] && [ "$fseg" -eq 0 ] && { why="$why; expected segmentation in the frontend"; st=1; }
        [ "$errs" -ne 0 ] && { why="$why; $errs offload errors"; st=1; }
    else
        st=1
    fi
    result "$name" $st "$why"
    case_stop
done <<<"$cases"
finish
