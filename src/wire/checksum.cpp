#include "vifkit/wire/checksum.hpp"

#include <cstddef>

namespace vifkit::wire {
namespace {

constexpr std::uint8_t proto_tcp = 6, proto_udp = 17;

std::uint16_t be16(const std::byte* p) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) << 8 | std::to_integer<unsigned>(p[1]));
}

std::uint16_t fold(std::uint32_t s) {
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return static_cast<std::uint16_t>(s);
}

// Sum the segment with its checksum field taken as zero, add the pseudo-header
// sum, and store the result. `l4` points at the L4 header, `len` bytes long.
csum_result finish(std::byte* l4, std::size_t len, std::uint8_t proto, std::uint32_t pseudo) {
    const std::size_t field = proto == proto_tcp ? 16 : 6;
    if (len < (proto == proto_tcp ? 20u : 8u)) return csum_result::malformed;
    l4[field] = l4[field + 1] = std::byte{0};
    std::uint16_t c = static_cast<std::uint16_t>(~fold(ones_sum({l4, len}, pseudo)));
    if (proto == proto_udp && c == 0) c = 0xFFFF;  // 0 means "no checksum" for UDP
    l4[field] = static_cast<std::byte>(c >> 8);
    l4[field + 1] = static_cast<std::byte>(c);
    return csum_result::done;
}

}  // namespace

std::uint32_t ones_sum(std::span<const std::byte> data, std::uint32_t sum) {
    std::uint64_t s = sum;
    std::size_t i = 0;
    for (; i + 1 < data.size(); i += 2) s += be16(data.data() + i);
    if (i < data.size()) s += std::to_integer<std::uint32_t>(data[i]) << 8;
    while (s >> 32) s = (s & 0xFFFFFFFFu) + (s >> 32);
    return static_cast<std::uint32_t>(s);
}

csum_result complete_l4_checksum(std::span<std::byte> frame) {
    std::size_t off = 12;
    if (frame.size() < 14) return csum_result::malformed;
    std::uint16_t type = be16(frame.data() + off);
    if (type == 0x8100) {  // one VLAN tag
        if (frame.size() < 18) return csum_result::malformed;
        off += 4;
        type = be16(frame.data() + off);
    }
    off += 2;
    std::byte* ip = frame.data() + off;
    const std::size_t avail = frame.size() - off;
    if (type == 0x0800) {
        if (avail < 20 || (std::to_integer<unsigned>(ip[0]) >> 4) != 4) return csum_result::malformed;
        const std::size_t ihl = (std::to_integer<unsigned>(ip[0]) & 0xF) * 4u;
        const std::size_t total = be16(ip + 2);
        if (ihl < 20 || total < ihl || total > avail) return csum_result::malformed;
        if ((be16(ip + 6) & 0x3FFF) != 0) return csum_result::not_l4;  // a fragment: no whole segment here
        const auto proto = std::to_integer<std::uint8_t>(ip[9]);
        if (proto != proto_tcp && proto != proto_udp) return csum_result::not_l4;
        const std::size_t len = total - ihl;
        std::uint32_t pseudo = ones_sum({ip + 12, 8});  // source and destination
        pseudo += proto;
        pseudo += static_cast<std::uint32_t>(len);
        return finish(ip + ihl, len, proto, pseudo);
    }
    if (type == 0x86DD) {
        if (avail < 40 || (std::to_integer<unsigned>(ip[0]) >> 4) != 6) return csum_result::malformed;
        const std::size_t payload = be16(ip + 4);
        if (40 + payload > avail) return csum_result::malformed;
        auto next = std::to_integer<std::uint8_t>(ip[6]);
        std::size_t hdr = 40;
        // Skip hop-by-hop (0), routing (43) and destination options (60), bounded.
        for (int n = 0; n < 8 && (next == 0 || next == 43 || next == 60); ++n) {
            if (hdr + 8 > 40 + payload) return csum_result::malformed;
            const std::size_t ext = (std::to_integer<std::size_t>(ip[hdr + 1]) + 1) * 8;
            next = std::to_integer<std::uint8_t>(ip[hdr]);
            hdr += ext;
        }
        if (next != proto_tcp && next != proto_udp) return csum_result::not_l4;
        if (hdr > 40 + payload) return csum_result::malformed;
        const std::size_t len = 40 + payload - hdr;
        std::uint32_t pseudo = ones_sum({ip + 8, 32});  // source and destination
        pseudo += next;
        pseudo += static_cast<std::uint32_t>(len);
        return finish(ip + hdr, len, next, pseudo);
    }
    return csum_result::not_l4;
}

}  // namespace vifkit::wire
