// Decoder for guest-receive response chains (netif-spec §4.4, frontend side),
// one response at a time, over responses already copied out of the shared ring.
//
// netfront posts one buffer per rx ring slot and remembers which; each
// response is checked against the buffer posted in its slot and folded into the
// chain being assembled. The decoder only decides; the caller does the side
// effects (recycling the buffer, copying the bytes, delivering the frame).
//
//   posted == false    no buffer was posted in this slot: the chain is marked
//                      bad, the response is otherwise ignored (kind no_buffer);
//   extra slot         after a data response with EXTRA_INFO (or an extra with
//                      EXTRA_FLAG_MORE): kind extra, its payload is not data;
//   data slot          copy [copy_offset, +copy_len) of the posted page to
//                      frame[copy_at, +copy_len), when copy_len > 0. Guaranteed:
//                      copy_offset + copy_len <= page_size and
//                      copy_at + copy_len <= frame_capacity.
// A chain whose status is negative, crosses the page, overflows the frame, has
// more than rx_max_slots data slots, or whose response id is not the posted
// buffer's, is bad: it is consumed to its end and then dropped.
#pragma once
#include <cstddef>
#include <cstdint>

#include "vifkit/abi/netif.hpp"

namespace vifkit::wire {

// Data slots one received packet may use (XEN_NETIF_NR_SLOTS_MIN + 1).
inline constexpr unsigned rx_max_slots = abi::nr_slots_min + 1;

// The chain being assembled (all false/0 between chains).
struct rx_chain {
    std::uint32_t len = 0;    // frame bytes so far
    unsigned slots = 0;       // data slots so far
    bool bad = false;         // drop the frame at the chain's end
    bool in_chain = false;    // more_data seen: the chain continues
    bool extra_next = false;  // the next slot is an extra_info
};

struct rx_slot {
    enum class kind : std::uint8_t { no_buffer, extra, data };
    kind what = kind::no_buffer;
    bool wrong_id = false;    // data response whose id is not the posted buffer's
    bool hash_extra = false;  // an extra of type HASH
    std::uint16_t copy_offset = 0;  // within the posted page
    std::uint16_t copy_len = 0;     // 0: nothing to copy
    std::uint32_t copy_at = 0;      // within the frame
    // The chain ended with this slot: deliver the frame if rx_chain_ok(), then
    // start the next chain from rx_chain{}.
    bool chain_done = false;
};

// Fold response `r` of a slot into `c`. `posted`: a buffer was posted in the
// slot and is still outstanding; `posted_id` is its id.
[[nodiscard]] rx_slot decode_rx_slot(rx_chain& c, const abi::rx_response& r, bool posted,
                                     std::uint16_t posted_id, std::size_t frame_capacity);

// A completed chain is delivered when it is not bad and holds an Ethernet header.
[[nodiscard]] inline bool rx_chain_ok(const rx_chain& c) { return !c.bad && c.len >= abi::eth_hlen; }

}  // namespace vifkit::wire
