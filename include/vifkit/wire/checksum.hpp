// Software completion of a TCP/UDP checksum left blank by the sender
// (netif's NETTXF_csum_blank on guest transmit, NETRXF_csum_blank on guest
// receive: the peer offloaded the checksum, as Linux does with
// CHECKSUM_PARTIAL). The frame is parsed and bounds-checked as untrusted data.
#pragma once
#include <cstdint>
#include <span>

namespace vifkit::wire {

enum class csum_result : std::uint8_t {
    done,         // the L4 checksum was computed and written
    not_l4,       // not IPv4/IPv6 TCP/UDP (or a non-first fragment): left alone
    malformed,    // headers truncated or inconsistent: left alone
};

// Compute the TCP or UDP checksum of the Ethernet frame (optionally one 802.1Q
// tag; IPv4 with options, IPv6 with hop-by-hop/routing/destination-options
// headers) over the pseudo-header and the segment, ignoring whatever the
// checksum field held, and store it. The L4 length comes from the IP header
// (trailing Ethernet padding is not summed).
csum_result complete_l4_checksum(std::span<std::byte> frame);

// RFC 1071 one's-complement sum of `data` added to `sum` (not folded).
std::uint32_t ones_sum(std::span<const std::byte> data, std::uint32_t sum = 0);

// A sum folded to 16 bits (not complemented).
std::uint16_t fold(std::uint32_t sum);

// The Internet checksum of `data` plus `sum`: ~fold(ones_sum(data, sum)), e.g.
// of an IPv4 header whose checksum field is zero.
std::uint16_t internet_checksum(std::span<const std::byte> data, std::uint32_t sum = 0);

}  // namespace vifkit::wire
