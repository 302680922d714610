// Decoder for guest-transmit request chains (netif-spec §4.3), over requests
// that were already copied out of the shared ring once (style habit 1, 3).
//
// The backend copies every available request into a private window, then asks
// decode_tx_packet() to describe the first packet in it. The verdicts follow
// Linux netback (the reference a backend must match):
//   ok    - a valid packet: nr_slots data slots and nr_extras extra slots;
//   drop  - answer every slot of the packet with ERROR (extras NULL) and go on;
//   fatal - the frontend is hostile or broken: disable the vif;
//   need_more - the chain is not complete yet (more_data with no next slot).
#pragma once
#include <array>
#include <cstdint>
#include <span>

#include "vifkit/abi/netif.hpp"

namespace vifkit::wire {

enum class tx_verdict : std::uint8_t { ok, drop, fatal, need_more };

struct tx_limits {
    // The first slot plus up to this many further data slots is accepted
    // (Linux XEN_NETBK_LEGACY_SLOTS_MAX = 18); more than that up to
    // fatal_slots further slots drops the packet; beyond it is fatal
    // (Linux fatal_skb_slots = 20). netif-spec §4.3.
    unsigned max_further_slots = abi::nr_slots_min;
    unsigned fatal_slots = 20;
    bool gso_tcpv4 = false;  // extras the backend advertised
    bool gso_tcpv6 = false;
    bool multicast_control = false;
};

// Largest chain the decoder ever has to look at: fatal_slots + 1 data slots
// plus one slot per extra type.
inline constexpr unsigned tx_max_chain = 32;

struct tx_packet {
    std::uint32_t total_len = 0;    // from the first request's size
    std::uint16_t flags = 0;        // first request's flags (txf::*)
    std::uint8_t nr_slots = 0;      // data slots (<= max_slots when ok)
    std::uint8_t nr_extras = 0;     // extra slots consumed
    std::uint8_t consumed = 0;      // ring slots the packet occupies (data + extras)
    // Index in the window of each data slot; slot 0's effective size is
    // first_len (total minus the other fragments), others use their own size.
    std::array<std::uint8_t, tx_max_chain> data_index{};
    std::uint16_t first_len = 0;
    bool has_gso = false;
    abi::extra_gso gso{};
    bool has_hash = false;
    abi::extra_hash hash{};
    bool has_mcast = false;  // MCAST_ADD / MCAST_DEL: a control-only dummy request
    std::uint8_t mcast_type = 0;
    abi::extra_mcast mcast{};
};

struct tx_decode {
    tx_verdict verdict = tx_verdict::fatal;
    const char* reason = "";  // static string for logs/counters when not ok
    tx_packet pkt;
};

// Describe the first packet of `window` (requests in ring order, private copies).
[[nodiscard]] tx_decode decode_tx_packet(std::span<const abi::tx_request> window, const tx_limits& lim);

// An extra_info occupies a tx slot: reinterpret the (private) request copy.
[[nodiscard]] abi::extra_info as_extra(const abi::tx_request& r);

}  // namespace vifkit::wire
