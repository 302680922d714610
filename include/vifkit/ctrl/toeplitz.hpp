// Toeplitz flow hashing for the netif control ring (netif-spec §2.2, §2.4).
//
//  toeplitz_hash  - the hash exactly as xen/io/netif.h defines it (key bytes past
//                   the key's length count as zero).
//  extract_flow   - the hash input of an Ethernet frame under the "maximal type"
//                   rule (the same selection Linux netback makes).
//  hash_frame     - both together: what the backend uses to steer a packet to a
//                   guest queue and to fill the rx HASH extra.
//
// Frames are untrusted: parsing never reads past the span, and every loop over
// peer-controlled headers is bounded.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace vifkit::ctrl {

// XEN_NETIF_CTRL_HASH_TYPE_* masks (used in SET/GET_HASH_FLAGS and flow_hash::type).
namespace hash_type {
inline constexpr std::uint32_t ipv4 = 1u << 0;
inline constexpr std::uint32_t ipv4_tcp = 1u << 1;
inline constexpr std::uint32_t ipv6 = 1u << 2;
inline constexpr std::uint32_t ipv6_tcp = 1u << 3;
inline constexpr std::uint32_t all = ipv4 | ipv4_tcp | ipv6 | ipv6_tcp;
}  // namespace hash_type

// XEN_NETIF_CTRL_HASH_ALGORITHM_*.
namespace hash_algorithm {
inline constexpr std::uint32_t none = 0;
inline constexpr std::uint32_t toeplitz = 1;
}  // namespace hash_algorithm

// Linux netback's key limit (XEN_NETBK_MAX_HASH_KEY_SIZE), enough for the
// 36-byte IPv6/TCP input (36 + 4 key bytes).
inline constexpr std::size_t max_hash_key_size = 40;

// The rx HASH extra's `type` byte is the *bit number* (_XEN_NETIF_CTRL_HASH_TYPE_*),
// not the mask: Linux netback writes _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP (= 1) etc.
// Returns 0xFF for anything but exactly one known mask bit.
constexpr std::uint8_t extra_hash_type(std::uint32_t mask) {
    switch (mask) {
    case hash_type::ipv4: return 0;
    case hash_type::ipv4_tcp: return 1;
    case hash_type::ipv6: return 2;
    case hash_type::ipv6_tcp: return 3;
    default: return 0xFF;
    }
}

// netif.h Toeplitz: for each input bit (MSB of byte 0 first) that is set, XOR the
// left-most 32 bits of the key in; shift the key left one bit per input bit.
// Key bytes past key.size() are zero, so an empty key always hashes to 0.
[[nodiscard]] std::uint32_t toeplitz_hash(std::span<const std::uint8_t> key,
                                          std::span<const std::uint8_t> input) noexcept;

// A hash input as laid out in the packet: addresses, then ports (network order).
struct flow_input {
    std::array<std::uint8_t, 36> bytes{};  // 8 / 12 / 32 / 36 bytes used
    std::uint8_t len = 0;
    std::uint32_t type = 0;  // exactly one hash_type:: mask bit
};

struct flow_hash {
    std::uint32_t value = 0;
    std::uint32_t type = 0;  // exactly one hash_type:: mask bit
};

// Bounds of the frame parser.
inline constexpr unsigned max_ipv6_ext_headers = 8;

// The hash input of `frame` under the maximal-type rule, or nullopt when no
// enabled type applies (not IPv4/IPv6, malformed/truncated IP header, or the
// applicable types are disabled).
//  - Ethernet II, with at most one 802.1Q tag (0x8100); QinQ is not parsed.
//  - IPv4: header of >= 20 bytes with IHL >= 5; IPv6: 40-byte fixed header.
//  - TCP 4-tuple only if the TCP type is enabled, the protocol is TCP, the packet
//    is not an IP fragment (IPv4 MF or offset != 0; IPv6 fragment header) and
//    both ports lie inside the frame; otherwise the 2-tuple if enabled.
//  - IPv6 extension headers (hop-by-hop, routing, destination options, AH,
//    fragment) are walked up to max_ipv6_ext_headers; a longer or truncated chain
//    counts as "no TCP header".
[[nodiscard]] std::optional<flow_input> extract_flow(std::span<const std::byte> frame,
                                                     std::uint32_t enabled_types) noexcept;

// extract_flow + toeplitz_hash.
[[nodiscard]] std::optional<flow_hash> hash_frame(std::span<const std::byte> frame,
                                                  std::uint32_t enabled_types,
                                                  std::span<const std::uint8_t> key) noexcept;

}  // namespace vifkit::ctrl
