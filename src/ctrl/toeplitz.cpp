// Toeplitz hash (netif-spec §2.4) and hash-input extraction from Ethernet frames
// (netif-spec §2.2, "maximal type" rule). Every read is preceded by a bounds
// check against the frame span; the IPv6 extension-header walk is bounded.
#include "vifkit/ctrl/toeplitz.hpp"

#include <algorithm>

namespace vifkit::ctrl {

std::uint32_t toeplitz_hash(std::span<const std::uint8_t> key,
                            std::span<const std::uint8_t> input) noexcept {
    const auto key_byte = [key](std::size_t i) -> std::uint64_t {
        return i < key.size() ? key[i] : 0;  // missing key octets are zero (netif.h)
    };
    // 64-bit window over the key: its top 32 bits are the key bits aligned with
    // the current input bit. After each input byte the low 8 (now zero) bits
    // take the next key byte.
    std::uint64_t window = 0;
    for (std::size_t i = 0; i < 8; ++i) window = (window << 8) | key_byte(i);
    std::uint64_t acc = 0;
    std::size_t next_key = 8;
    for (const std::uint8_t byte : input) {
        for (int bit = 7; bit >= 0; --bit) {
            if ((byte >> bit) & 1u) acc ^= window;
            window <<= 1;
        }
        window |= key_byte(next_key++);
    }
    return static_cast<std::uint32_t>(acc >> 32);
}

namespace {

constexpr std::uint16_t eth_p_ip = 0x0800;
constexpr std::uint16_t eth_p_ipv6 = 0x86DD;
constexpr std::uint16_t eth_p_8021q = 0x8100;
constexpr std::size_t eth_hlen = 14;
constexpr std::size_t vlan_hlen = 4;
constexpr std::size_t ipv4_min_hlen = 20;
constexpr std::size_t ipv6_hlen = 40;

namespace ipproto {
constexpr std::uint8_t hopopts = 0;
constexpr std::uint8_t tcp = 6;
constexpr std::uint8_t routing = 43;
[[maybe_unused]] constexpr std::uint8_t fragment = 44;  // never walked through: ends the chain
constexpr std::uint8_t ah = 51;
constexpr std::uint8_t dstopts = 60;
}  // namespace ipproto

using frame_t = std::span<const std::byte>;

// True when [off, off + n) lies inside the frame (no overflow).
bool fits(frame_t f, std::size_t off, std::size_t n) {
    return off <= f.size() && n <= f.size() - off;
}
// Callers check fits() first.
std::uint8_t u8_at(frame_t f, std::size_t off) { return std::to_integer<std::uint8_t>(f[off]); }
std::uint16_t be16_at(frame_t f, std::size_t off) {
    return static_cast<std::uint16_t>((u8_at(f, off) << 8) | u8_at(f, off + 1));
}

struct l3_header {
    std::size_t off = 0;
    std::uint16_t proto = 0;
};

// Ethernet II header plus at most one 802.1Q tag.
std::optional<l3_header> parse_ethernet(frame_t f) {
    if (!fits(f, 0, eth_hlen)) return std::nullopt;
    l3_header h{eth_hlen, be16_at(f, 12)};
    if (h.proto == eth_p_8021q) {
        if (!fits(f, h.off, vlan_hlen)) return std::nullopt;
        h.proto = be16_at(f, h.off + 2);
        h.off += vlan_hlen;
    }
    return h;
}

// Where the addresses are, and where a TCP header starts if one follows an
// unfragmented IP header (its presence in the frame is checked by the caller).
struct ip_info {
    std::size_t addr_off = 0;
    std::size_t addr_len = 0;
    std::optional<std::size_t> tcp_off;
};

std::optional<ip_info> parse_ipv4(frame_t f, std::size_t off) {
    if (!fits(f, off, ipv4_min_hlen)) return std::nullopt;
    const std::uint8_t vihl = u8_at(f, off);
    const std::size_t ihl = vihl & 0x0Fu;
    if ((vihl >> 4) != 4 || ihl < 5) return std::nullopt;
    ip_info r{off + 12, 8, std::nullopt};
    const bool fragment = (be16_at(f, off + 6) & 0x3FFFu) != 0;  // MF or a fragment offset
    if (!fragment && u8_at(f, off + 9) == ipproto::tcp) r.tcp_off = off + ihl * 4;
    return r;
}

// Length of the IPv6 extension header `next` at `pos`, or nullopt when `next`
// is not a header we walk through (upper layer, ESP, no-next, fragment) or the
// header is truncated.
std::optional<std::size_t> ipv6_ext_len(frame_t f, std::size_t pos, std::uint8_t next) {
    const bool generic = next == ipproto::hopopts || next == ipproto::routing ||
                         next == ipproto::dstopts;
    if ((!generic && next != ipproto::ah) || !fits(f, pos, 2)) return std::nullopt;
    const std::size_t n = u8_at(f, pos + 1);
    return generic ? (n + 1) * 8 : (n + 2) * 4;
}

std::optional<ip_info> parse_ipv6(frame_t f, std::size_t off) {
    if (!fits(f, off, ipv6_hlen) || (u8_at(f, off) >> 4) != 6) return std::nullopt;
    ip_info r{off + 8, 32, std::nullopt};
    std::uint8_t next = u8_at(f, off + 6);
    std::size_t pos = off + ipv6_hlen;
    // Bounded walk: at most max_ipv6_ext_headers extension headers.
    for (unsigned walked = 0; walked <= max_ipv6_ext_headers; ++walked) {
        if (next == ipproto::tcp) {
            r.tcp_off = pos;
            break;
        }
        const auto len = ipv6_ext_len(f, pos, next);
        if (!len) break;  // fragment header, other protocol, or truncated: no TCP
        next = u8_at(f, pos);
        pos += *len;  // may pass the frame end: the caller's fits() rejects it
    }
    return r;
}

}  // namespace

std::optional<flow_input> extract_flow(std::span<const std::byte> frame,
                                       std::uint32_t enabled_types) noexcept {
    const auto l3 = parse_ethernet(frame);
    if (!l3) return std::nullopt;
    std::optional<ip_info> ip;
    std::uint32_t addr_type = 0;
    std::uint32_t tcp_type = 0;
    if (l3->proto == eth_p_ip) {
        ip = parse_ipv4(frame, l3->off);
        addr_type = hash_type::ipv4;
        tcp_type = hash_type::ipv4_tcp;
    } else if (l3->proto == eth_p_ipv6) {
        ip = parse_ipv6(frame, l3->off);
        addr_type = hash_type::ipv6;
        tcp_type = hash_type::ipv6_tcp;
    }
    if (!ip) return std::nullopt;
    const bool has_ports = ip->tcp_off && fits(frame, *ip->tcp_off, 4);
    flow_input in;
    if (has_ports && (enabled_types & tcp_type) != 0) {
        in.type = tcp_type;
    } else if ((enabled_types & addr_type) != 0) {
        in.type = addr_type;
    } else {
        return std::nullopt;
    }
    const auto to_u8 = [](std::byte b) { return std::to_integer<std::uint8_t>(b); };
    auto out = std::transform(frame.begin() + static_cast<std::ptrdiff_t>(ip->addr_off),
                              frame.begin() + static_cast<std::ptrdiff_t>(ip->addr_off + ip->addr_len),
                              in.bytes.begin(), to_u8);
    if (in.type == tcp_type) {
        const auto tcp = frame.begin() + static_cast<std::ptrdiff_t>(*ip->tcp_off);
        out = std::transform(tcp, tcp + 4, out, to_u8);
    }
    in.len = static_cast<std::uint8_t>(out - in.bytes.begin());
    return in;
}

std::optional<flow_hash> hash_frame(std::span<const std::byte> frame, std::uint32_t enabled_types,
                                    std::span<const std::uint8_t> key) noexcept {
    const auto in = extract_flow(frame, enabled_types);
    if (!in) return std::nullopt;
    return flow_hash{toeplitz_hash(key, std::span(in->bytes).first(in->len)), in->type};
}

}  // namespace vifkit::ctrl
