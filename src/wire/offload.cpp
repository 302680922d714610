#include "vifkit/wire/offload.hpp"

#include "vifkit/abi/netif.hpp"

#include <algorithm>
#include <cstring>

namespace vifkit::wire {
namespace {

constexpr std::uint8_t proto_tcp = 6, proto_udp = 17;
constexpr std::size_t eth_hlen = 14, vlan_hlen = 4, ipv4_min = 20, ipv6_hlen = 40, tcp_min = 20, udp_hlen = 8;
constexpr int max_ipv6_ext = 8;

std::uint16_t be16(const std::byte* p) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) << 8 | std::to_integer<unsigned>(p[1]));
}
std::uint32_t be32(const std::byte* p) { return std::uint32_t{be16(p)} << 16 | be16(p + 2); }
void put16(std::byte* p, std::uint32_t v) {
    p[0] = static_cast<std::byte>(v >> 8);
    p[1] = static_cast<std::byte>(v);
}
void put32(std::byte* p, std::uint32_t v) {
    put16(p, v >> 16);
    put16(p + 2, v);
}
l4_location fail(csum_result why) { return {why, {}}; }

}  // namespace

namespace detail {

l4_location parse_l4(std::span<const std::byte> frame) {
    if (frame.size() < eth_hlen) return fail(csum_result::malformed);
    std::size_t off = 12;
    std::uint16_t type = be16(frame.data() + off);
    if (type == 0x8100) {  // one VLAN tag
        if (frame.size() < eth_hlen + vlan_hlen) return fail(csum_result::malformed);
        off += vlan_hlen;
        type = be16(frame.data() + off);
    }
    off += 2;
    const std::byte* ip = frame.data() + off;
    const std::size_t avail = frame.size() - off;
    std::uint8_t version = 0, proto = 0;
    std::size_t l3_hdr = 0, l3_end = 0;  // IP header length incl. options/extensions; end of the IP packet
    if (type == 0x0800) {
        if (avail < ipv4_min || (std::to_integer<unsigned>(ip[0]) >> 4) != 4) return fail(csum_result::malformed);
        const std::size_t ihl = (std::to_integer<unsigned>(ip[0]) & 0xF) * 4u;
        const std::size_t total = be16(ip + 2);
        if (ihl < ipv4_min || total < ihl || total > avail) return fail(csum_result::malformed);
        if ((be16(ip + 6) & 0x3FFF) != 0) return fail(csum_result::not_l4);  // a fragment: no whole segment
        proto = std::to_integer<std::uint8_t>(ip[9]);
        if (proto != proto_tcp && proto != proto_udp) return fail(csum_result::not_l4);
        version = 4;
        l3_hdr = ihl;
        l3_end = total;
    } else if (type == 0x86DD) {
        if (avail < ipv6_hlen || (std::to_integer<unsigned>(ip[0]) >> 4) != 6) return fail(csum_result::malformed);
        const std::size_t end = ipv6_hlen + be16(ip + 4);
        if (end > avail) return fail(csum_result::malformed);
        auto next = std::to_integer<std::uint8_t>(ip[6]);
        std::size_t hdr = ipv6_hlen;
        // Skip hop-by-hop (0), routing (43) and destination options (60), bounded.
        for (int n = 0; n < max_ipv6_ext && (next == 0 || next == 43 || next == 60); ++n) {
            if (hdr + 8 > end) return fail(csum_result::malformed);
            const std::size_t ext = (std::to_integer<std::size_t>(ip[hdr + 1]) + 1) * 8;
            next = std::to_integer<std::uint8_t>(ip[hdr]);
            hdr += ext;
        }
        if (next != proto_tcp && next != proto_udp) return fail(csum_result::not_l4);
        if (hdr > end) return fail(csum_result::malformed);
        version = 6;
        proto = next;
        l3_hdr = hdr;
        l3_end = end;
    } else {
        return fail(csum_result::not_l4);
    }
    const std::size_t len = l3_end - l3_hdr;
    if (len < (proto == proto_tcp ? tcp_min : udp_hlen)) return fail(csum_result::malformed);
    // All of these are below off + l3_end <= frame.size(), which is at most
    // 18 + 65535 + 40: they fit 32 bits.
    l4_info i{};
    i.ip_version = version;
    i.proto = proto;
    i.l3_offset = static_cast<std::uint32_t>(off);
    i.l4_offset = static_cast<std::uint32_t>(off + l3_hdr);
    i.csum_offset = i.l4_offset + (proto == proto_tcp ? 16u : 6u);
    i.l4_len = static_cast<std::uint32_t>(len);
    i.hdr_len = i.l4_offset + (proto == proto_tcp ? (std::to_integer<std::uint32_t>(ip[l3_hdr + 12]) >> 4) * 4u
                                                  : static_cast<std::uint32_t>(udp_hlen));
    return {csum_result::done, i};
}

std::uint32_t pseudo_header_sum(std::span<const std::byte> frame, const l4_info& i) {
    const std::byte* ip = frame.data() + i.l3_offset;
    const std::uint32_t addrs = i.ip_version == 4 ? ones_sum({ip + 12, 8}) : ones_sum({ip + 8, 32});
    return addrs + i.proto + i.l4_len;  // at most 16 * 0xFFFF + 17 + 65535: no overflow
}

}  // namespace detail

l4_location locate_l4(std::span<const std::byte> frame) {
    const l4_location loc = detail::parse_l4(frame);
    if (loc && loc.info.proto == proto_tcp) {
        const std::uint32_t doff = loc.info.hdr_len - loc.info.l4_offset;  // parse_l4 adds 0..60
        if (doff < tcp_min || doff > loc.info.l4_len) return fail(csum_result::malformed);
    }
    return loc;
}

csum_result set_partial_checksum(std::span<std::byte> frame) {
    const l4_location loc = detail::parse_l4(frame);
    if (!loc) return loc.status;
    put16(frame.data() + loc.info.csum_offset, fold(detail::pseudo_header_sum(frame, loc.info)));
    return csum_result::done;
}

segment_stats segment_tcp(std::span<const std::byte> frame, std::uint8_t gso_type, std::uint16_t mss,
                          std::span<std::byte> scratch, segment_sink emit) {
    const l4_location loc = locate_l4(frame);
    if (loc.status == csum_result::malformed) return {gso_result::malformed, 0};
    if (!loc || loc.info.proto != proto_tcp) return {gso_result::not_tcp, 0};
    const l4_info& in = loc.info;
    if (!((gso_type == abi::gso_type::tcpv4 && in.ip_version == 4) ||
          (gso_type == abi::gso_type::tcpv6 && in.ip_version == 6)))
        return {gso_result::type_mismatch, 0};
    if (mss == 0) return {gso_result::bad_mss, 0};
    const std::size_t hdr = in.hdr_len;
    if (hdr > max_gso_header_len) return {gso_result::header_too_long, 0};
    // locate_l4 guarantees hdr <= l4_offset + l4_len <= frame.size().
    const std::size_t payload = std::size_t{in.l4_offset} + in.l4_len - hdr;
    if (scratch.size() < hdr + std::min<std::size_t>(mss, payload)) return {gso_result::no_room, 0};

    std::byte* const out = scratch.data();
    std::memcpy(out, frame.data(), hdr);
    std::byte* const ip = out + in.l3_offset;
    std::byte* const tcp = out + in.l4_offset;
    const std::size_t l3_to_l4 = in.l4_offset - in.l3_offset;  // IP header incl. options/extensions
    const std::size_t tcp_hdr = hdr - in.l4_offset;
    const std::uint16_t id0 = be16(ip + 4);
    const std::uint32_t seq0 = be32(tcp + 4);
    const auto flags0 = std::to_integer<std::uint8_t>(tcp[13]);
    constexpr std::uint8_t fin = 0x01, psh = 0x08, cwr = 0x80;
    // The addresses do not change between segments; proto and length do not
    // belong in this part of the pseudo-header sum.
    const std::uint32_t addrs = in.ip_version == 4 ? ones_sum({ip + 12, 8}) : ones_sum({ip + 8, 32});

    unsigned n = 0;
    std::size_t sent = 0;
    // At least one segment; then one per mss bytes: at most 65535 iterations.
    do {
        const std::size_t chunk = std::min<std::size_t>(mss, payload - sent);
        const bool last = sent + chunk == payload;
        std::memcpy(out + hdr, frame.data() + hdr + sent, chunk);
        const std::size_t l4_len = tcp_hdr + chunk;
        if (in.ip_version == 4) {
            put16(ip + 2, static_cast<std::uint32_t>(l3_to_l4 + l4_len));
            put16(ip + 4, static_cast<std::uint16_t>(id0 + n));
            put16(ip + 10, 0);
            put16(ip + 10, internet_checksum({ip, l3_to_l4}));
        } else {
            put16(ip + 4, static_cast<std::uint32_t>(l3_to_l4 - ipv6_hlen + l4_len));
        }
        put32(tcp + 4, seq0 + static_cast<std::uint32_t>(sent));
        std::uint8_t flags = flags0;
        if (!last) flags &= static_cast<std::uint8_t>(~(fin | psh));
        if (n != 0) flags &= static_cast<std::uint8_t>(~cwr);
        tcp[13] = static_cast<std::byte>(flags);
        put16(tcp + 16, 0);
        const std::uint32_t pseudo = addrs + proto_tcp + static_cast<std::uint32_t>(l4_len);
        put16(tcp + 16, internet_checksum({tcp, l4_len}, pseudo));
        ++n;
        sent += chunk;
        if (!emit(std::span<const std::byte>(out, hdr + chunk))) return {gso_result::stopped, n};
    } while (sent < payload);
    return {gso_result::ok, n};
}

}  // namespace vifkit::wire
