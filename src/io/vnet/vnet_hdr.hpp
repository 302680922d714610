// virtio_net_hdr <-> io::offload, shared by the TAP (IFF_VNET_HDR) and the
// unix ports' ":vnet" form. The header comes from the host kernel or a local
// peer; it is still checked against the frame before anyone relies on it.
#pragma once
#include <cstdint>
#include <memory>
#include <span>

#include "vifkit/io/packet_port.hpp"

namespace vifkit::io::detail {

// struct virtio_net_hdr of <linux/virtio_net.h> (that header is not valid C++:
// it has a member named "class"). Host byte order (little-endian on every
// platform Xen runs on, and what a TAP uses without TUNSETVNETBE).
struct virtio_net_hdr {
    std::uint8_t flags;
    std::uint8_t gso_type;
    std::uint16_t hdr_len;      // Ethernet + IP + TCP/UDP headers
    std::uint16_t gso_size;     // payload bytes per segment
    std::uint16_t csum_start;   // where the checksum sum starts
    std::uint16_t csum_offset;  // from csum_start to the checksum field
};
static_assert(sizeof(virtio_net_hdr) == 10);
inline constexpr std::size_t vnet_hdr_len = sizeof(virtio_net_hdr);
inline constexpr std::uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
inline constexpr std::uint8_t VIRTIO_NET_HDR_F_DATA_VALID = 2;
inline constexpr std::uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;
inline constexpr std::uint8_t VIRTIO_NET_HDR_GSO_TCPV4 = 1;
inline constexpr std::uint8_t VIRTIO_NET_HDR_GSO_TCPV6 = 4;
inline constexpr std::uint8_t VIRTIO_NET_HDR_GSO_ECN = 0x80;

// Why decode_vnet refused a frame.
enum class vnet_verdict : std::uint8_t { ok, bad_gso, bad_csum };

// Turn a received header into the frame's offload state. `caps` are the
// offloads we accepted (set_offload); anything else the header claims is
// refused. A partial checksum at a place that is not the frame's TCP/UDP
// checksum field (the kernel may offload other protocols) is completed here
// in software, so callers only ever see TCP/UDP partial checksums.
vnet_verdict decode_vnet(const virtio_net_hdr& h, std::span<std::byte> frame, unsigned caps, offload& out);

// The header announcing `m` for `frame` (m holds only offloads the receiver
// takes). A partial checksum or GSO frame whose headers cannot be located is
// sent without offload flags (its checksum stays wrong: the receiver drops it).
virtio_net_hdr encode_vnet(std::span<const std::byte> frame, const offload& m);

// A datagram port whose every datagram is virtio_net_hdr + frame (the unix
// specs' ":vnet" form): offloads pass through it like through a TAP.
[[nodiscard]] std::unique_ptr<packet_port> with_vnet(std::unique_ptr<packet_port> inner);

}  // namespace vifkit::io::detail
