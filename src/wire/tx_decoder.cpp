#include "vifkit/wire/tx_decoder.hpp"

#include <cstring>

namespace vifkit::wire {

namespace {

constexpr std::uint32_t page = 4096;

tx_decode fail(tx_verdict v, const char* why, tx_packet p = {}) { return {v, why, p}; }

// Walk the extra slots after the first request. Returns need_more/fatal/ok.
tx_verdict read_extras(std::span<const abi::tx_request> w, const tx_limits& lim, tx_packet& p,
                       unsigned& pos, const char*& why) {
    bool more = true;
    while (more) {
        if (p.nr_extras >= abi::extra_type::max) {  // each type at most once in practice
            why = "too many extra slots";
            return tx_verdict::fatal;
        }
        if (pos >= w.size()) {
            why = "incomplete extras";
            return tx_verdict::need_more;
        }
        const abi::extra_info e = as_extra(w[pos]);
        ++pos;
        ++p.nr_extras;
        more = (e.flags & abi::extra_flag::more) != 0;
        switch (e.type) {
        case abi::extra_type::gso:
            if (e.u.gso.size == 0) { why = "GSO size 0"; return tx_verdict::fatal; }
            if (!((e.u.gso.type == abi::gso_type::tcpv4 && lim.gso_tcpv4) ||
                  (e.u.gso.type == abi::gso_type::tcpv6 && lim.gso_tcpv6))) {
                why = "bad or unadvertised GSO type";
                return tx_verdict::fatal;
            }
            p.has_gso = true;
            p.gso = e.u.gso;
            break;
        case abi::extra_type::mcast_add:
        case abi::extra_type::mcast_del:
            if (!lim.multicast_control) { why = "multicast extra without feature"; return tx_verdict::fatal; }
            p.has_mcast = true;
            p.mcast_type = e.type;
            p.mcast = e.u.mcast;
            break;
        case abi::extra_type::hash:
            p.has_hash = true;
            p.hash = e.u.hash;
            break;
        default:  // NONE (0) or >= MAX: Linux treats it as fatal
            why = "bad extra type";
            return tx_verdict::fatal;
        }
    }
    return tx_verdict::ok;
}

}  // namespace

abi::extra_info as_extra(const abi::tx_request& r) {
    abi::extra_info e;
    static_assert(sizeof e <= sizeof r);
    std::memcpy(&e, &r, sizeof e);
    return e;
}

tx_decode decode_tx_packet(std::span<const abi::tx_request> w, const tx_limits& lim) {
    if (w.empty()) return fail(tx_verdict::need_more, "empty");
    tx_packet p;
    const abi::tx_request& first = w[0];
    p.total_len = first.size;
    p.flags = first.flags;
    unsigned pos = 1;
    const char* why = "";
    if (first.flags & abi::txf::extra_info) {
        const tx_verdict v = read_extras(w, lim, p, pos, why);
        if (v != tx_verdict::ok) return fail(v, why, p);
    }
    // Data slots: the first, then one per more_data.
    p.data_index[0] = 0;
    p.nr_slots = 1;
    std::uint32_t rest = 0;  // bytes in the following fragments
    bool more = (first.flags & abi::txf::more_data) != 0;
    bool drop = false;
    while (more) {
        // Bounded: more than fatal_slots further slots is hostile (XSA-39).
        if (p.nr_slots - 1u >= lim.fatal_slots) return fail(tx_verdict::fatal, "too many slots", p);
        if (pos >= w.size()) return fail(tx_verdict::need_more, "incomplete chain", p);
        const abi::tx_request& r = w[pos];
        if (rest + r.size > p.total_len) {
            drop = true;  // fragment larger than what remains of the packet
            why = "fragment exceeds packet size";
        }
        if (static_cast<std::uint32_t>(r.offset) + r.size > page)
            return fail(tx_verdict::fatal, "slot crosses page boundary", p);
        rest += r.size;
        more = (r.flags & abi::txf::more_data) != 0;
        p.data_index[p.nr_slots++] = static_cast<std::uint8_t>(pos);
        ++pos;
    }
    p.consumed = static_cast<std::uint8_t>(pos);
    if (p.nr_slots - 1u > lim.max_further_slots && !drop) {
        drop = true;
        why = "too many slots for one packet";
    }
    if (drop) return fail(tx_verdict::drop, why, p);
    if (p.has_mcast && p.total_len == 0) return {tx_verdict::ok, "", p};  // dummy request
    p.first_len = static_cast<std::uint16_t>(p.total_len - rest);
    // Linux netback checks the first slot's own length (the header must be in
    // one slot), not the packet's: a first slot under 14 bytes is dropped.
    if (p.first_len < abi::eth_hlen) return fail(tx_verdict::drop, "first slot shorter than Ethernet header", p);
    if (static_cast<std::uint32_t>(first.offset) + p.first_len > page)
        return fail(tx_verdict::fatal, "slot crosses page boundary", p);
    return {tx_verdict::ok, "", p};
}

}  // namespace vifkit::wire
