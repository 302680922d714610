#include "vifkit/wire/rx_decoder.hpp"

#include <cstring>

namespace vifkit::wire {

namespace {
constexpr std::uint32_t page = 4096;
}  // namespace

rx_slot decode_rx_slot(rx_chain& c, const abi::rx_response& r, bool posted, std::uint16_t posted_id,
                       std::size_t frame_capacity) {
    rx_slot s;
    if (!posted) {
        c.bad = true;  // a response in a slot with no posted buffer
        return s;
    }
    if (c.extra_next) {
        // An extra_info slot (GSO/hash): not data.
        abi::extra_info e;
        static_assert(sizeof e == sizeof r);
        std::memcpy(&e, &r, sizeof e);
        s.what = rx_slot::kind::extra;
        s.hash_extra = e.type == abi::extra_type::hash;
        c.extra_next = (e.flags & abi::extra_flag::more) != 0;
        s.chain_done = !c.in_chain && !c.extra_next;
        return s;
    }
    s.what = rx_slot::kind::data;
    if (r.id != posted_id) {
        s.wrong_id = true;  // data response in the wrong slot
        c.bad = true;
    }
    const bool first = !c.in_chain;
    if (first && (r.flags & abi::rxf::extra_info)) c.extra_next = true;
    c.in_chain = (r.flags & abi::rxf::more_data) != 0;
    ++c.slots;
    if (r.status < 0 || std::uint32_t{r.offset} + static_cast<std::uint16_t>(r.status) > page ||
        c.slots > rx_max_slots) {
        c.bad = true;
    } else if (r.status > 0 && c.len + static_cast<std::uint32_t>(r.status) <= frame_capacity) {
        s.copy_offset = r.offset;
        s.copy_len = static_cast<std::uint16_t>(r.status);
        s.copy_at = c.len;
        c.len += static_cast<std::uint32_t>(r.status);
    } else if (r.status != 0) {
        c.bad = true;  // the frame would overflow
    }
    s.chain_done = !c.in_chain && !c.extra_next;
    return s;
}

}  // namespace vifkit::wire
