// Per-queue counters, printed as JSON by the tools (on SIGUSR1 and at exit).
// Every drop or fatal path increments a named counter (style habit 13).
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

namespace vifkit::core {

struct queue_counters {
    // guest transmit (frontend -> backend -> host)
    std::uint64_t tx_packets = 0, tx_bytes = 0, tx_drops = 0, tx_errors = 0;
    // guest receive (host -> backend -> frontend)
    std::uint64_t rx_packets = 0, rx_bytes = 0, rx_drops = 0, rx_errors = 0;
    // grant operations (each op counts, batches separately)
    std::uint64_t grant_maps = 0, grant_unmaps = 0, grant_copies = 0, copy_batches = 0;
    std::uint64_t grant_errors = 0;
    // static grants: slots served through a persistent mapping (no grant op),
    // and rx slots that had to fall back to a copy (read-only mapping)
    std::uint64_t static_hits = 0, static_fallbacks = 0;
    std::uint64_t rx_hash_extras = 0;  // frontend: HASH extras received
    // checksums the peer left blank (csum_blank) that we completed in software,
    // and csum_blank packets whose headers were too broken to do it (dropped)
    std::uint64_t csum_completed = 0, csum_errors = 0;
    // offloads (netif-spec §4.2-4.4): partial checksums passed on untouched,
    // GSO super-frames carried whole (tx = guest transmit, rx = guest receive),
    // super-frames we segmented in software because the next hop does not take
    // them, and GSO frames refused (bad headers, type mismatch)
    std::uint64_t csum_offloaded = 0;
    std::uint64_t gso_tx = 0, gso_rx = 0, gso_segmented = 0, gso_errors = 0;
    // multicast control: MCAST_ADD/DEL requests, refused ones (list full),
    // and guest-receive frames the filter held back
    std::uint64_t mcast_adds = 0, mcast_dels = 0, mcast_errors = 0, mcast_filtered = 0;
    // backend: guest transmit held back by the rate limit (credit scheduler)
    std::uint64_t credit_waits = 0;
    // backend: times the queue was declared stalled (no rx buffers for the next
    // packet for longer than the stall timeout) and frames dropped because of it
    std::uint64_t rx_stalled = 0, stall_drops = 0;
    // frontend: frames dropped while the backend reports carrier 0
    std::uint64_t carrier_drops = 0;
    // event channel traffic
    std::uint64_t notifies_sent = 0, events_received = 0;
    // peer misbehaviour
    std::uint64_t peer_faults = 0;    // fatal: vif disabled
    std::uint64_t bad_responses = 0;  // frontend: rejected backend responses
    std::uint64_t rx_stalls = 0;      // backend: no rx buffers for the next packet
    std::uint64_t backlog_drops = 0;  // backend: rx backlog full
    // backend: new tx requests arrived but the last packet's chain (more_data /
    // extra_info) runs past req_prod: it is held, unanswered, until completed
    std::uint64_t tx_incomplete = 0;
};

inline void to_json(nlohmann::json& j, const queue_counters& c) {
    j = nlohmann::json{
        {"tx_packets", c.tx_packets},     {"tx_bytes", c.tx_bytes},
        {"tx_drops", c.tx_drops},         {"tx_errors", c.tx_errors},
        {"rx_packets", c.rx_packets},     {"rx_bytes", c.rx_bytes},
        {"rx_drops", c.rx_drops},         {"rx_errors", c.rx_errors},
        {"grant_maps", c.grant_maps},     {"grant_unmaps", c.grant_unmaps},
        {"grant_copies", c.grant_copies}, {"copy_batches", c.copy_batches},
        {"grant_errors", c.grant_errors}, {"notifies_sent", c.notifies_sent},
        {"static_hits", c.static_hits},   {"static_fallbacks", c.static_fallbacks},
        {"rx_hash_extras", c.rx_hash_extras}, {"csum_completed", c.csum_completed},
        {"csum_errors", c.csum_errors},
        {"events_received", c.events_received}, {"peer_faults", c.peer_faults},
        {"bad_responses", c.bad_responses}, {"rx_stalls", c.rx_stalls},
        {"backlog_drops", c.backlog_drops}, {"tx_incomplete", c.tx_incomplete},
        {"csum_offloaded", c.csum_offloaded}, {"gso_tx", c.gso_tx},
        {"gso_rx", c.gso_rx},             {"gso_segmented", c.gso_segmented},
        {"gso_errors", c.gso_errors},     {"mcast_adds", c.mcast_adds},
        {"mcast_dels", c.mcast_dels},     {"mcast_errors", c.mcast_errors},
        {"mcast_filtered", c.mcast_filtered}, {"credit_waits", c.credit_waits},
        {"rx_stalled", c.rx_stalled},     {"stall_drops", c.stall_drops},
        {"carrier_drops", c.carrier_drops},
    };
}

}  // namespace vifkit::core
