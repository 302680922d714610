// Software fallbacks for the offloads netif negotiates (feature-no-csum-offload,
// feature-gso-tcpv4/-tcpv6): locating the TCP/UDP header of an Ethernet frame,
// leaving a checksum partial (netif csum_blank, Linux CHECKSUM_PARTIAL, virtio
// VIRTIO_NET_HDR_F_NEEDS_CSUM) and segmenting a TCP super-frame (GSO/TSO).
//
// Every frame is untrusted (it comes from a guest or from the network): it is
// parsed with the same bounds-checked parser as complete_l4_checksum, nothing
// is read outside the span, and every loop is bounded by the frame length.
#pragma once
#include "vifkit/wire/checksum.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>

namespace vifkit::wire {

// Where the L4 header of a frame is. Offsets are absolute (from the first
// byte of the Ethernet header); 32-bit because IPv6 extension headers can
// push the L4 header past 64 KiB into a frame.
struct l4_info {
    std::uint8_t ip_version;    // 4 or 6
    std::uint8_t proto;         // 6 TCP, 17 UDP
    std::uint32_t l3_offset;    // start of the IP header (14, or 18 with an 802.1Q tag)
    std::uint32_t l4_offset;    // start of the TCP/UDP header
    std::uint32_t csum_offset;  // the L4 checksum field (l4_offset + 16 TCP, + 6 UDP)
    std::uint32_t l4_len;       // L4 header + payload length per the IP header (padding excluded)
    std::uint32_t hdr_len;      // l4_offset + doff * 4 (TCP) or l4_offset + 8 (UDP)
};

// Result of locate_l4: `info` is meaningful only when status == done.
struct l4_location {
    csum_result status;  // done: located; not_l4 / malformed: why not (as complete_l4_checksum)
    l4_info info;
    explicit operator bool() const noexcept { return status == csum_result::done; }
};

// Parse the Ethernet [+ one 802.1Q tag] / IPv4 (options) | IPv6 (hop-by-hop,
// routing, destination-options headers, at most 8) / TCP | UDP headers.
// not_l4: not IP, not TCP/UDP, an IPv4 fragment or an IPv6 fragment header.
// malformed: truncated or inconsistent headers, including a TCP data offset
// below 5 or beyond the segment. When done, every offset lies inside the
// frame: csum_offset + 2 <= hdr_len <= l4_offset + l4_len <= frame.size().
l4_location locate_l4(std::span<const std::byte> frame);

// Store the partial checksum the sender of a checksum-offloaded frame leaves:
// the folded one's-complement sum of the pseudo-header (source, destination,
// protocol, L4 length), not inverted, over whatever the field held. A receiver
// completes it by summing the L4 segment from l4_offset (the field included)
// and storing the complement. Accepts exactly what complete_l4_checksum
// accepts (it does not check the TCP data offset) and returns the same verdicts.
csum_result set_partial_checksum(std::span<std::byte> frame);

// A non-owning reference to a callable (no allocation). It must not outlive
// the callable it was made from: use it as a parameter, not as a member.
template <class Sig>
class function_ref;

template <class R, class... Args>
class function_ref<R(Args...)> {
public:
    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, function_ref> && std::is_object_v<std::remove_reference_t<F>> &&
                 std::is_invocable_r_v<R, std::remove_reference_t<F>&, Args...>)
    function_ref(F&& f) noexcept  // implicit on purpose: pass a lambda directly
        : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* obj, Args... args) -> R {
              return std::invoke(*static_cast<std::remove_reference_t<F>*>(obj), std::forward<Args>(args)...);
          }) {}

    R operator()(Args... args) const { return call_(obj_, std::forward<Args>(args)...); }

private:
    void* obj_;
    R (*call_)(void*, Args...);
};

enum class gso_result : std::uint8_t {
    ok,               // every segment was emitted
    malformed,        // truncated or inconsistent headers (locate_l4's malformed)
    not_tcp,          // not TCP over IP (UDP, other traffic, an IPv4 fragment)
    type_mismatch,    // gso_type is not tcpv4 (1) over IPv4 or tcpv6 (2) over IPv6
    bad_mss,          // mss == 0
    header_too_long,  // the headers (hdr_len) exceed max_gso_header_len
    no_room,          // scratch cannot hold the largest segment
    stopped,          // emit returned false (even on the last segment): no further segments
};

struct segment_stats {
    gso_result result;
    unsigned segments;  // how many times emit was called (0 for every error but stopped)
};

// Longest header (hdr_len: Ethernet + IP + extension headers + TCP) that
// segment_tcp replicates into each segment. Legitimate frames need at most
// 18 + 60 + 60 (IPv4) or 18 + 40 + 60 plus the IPv6 extension headers; the cap
// bounds the work a hostile frame can cause (segments * hdr_len).
inline constexpr std::size_t max_gso_header_len = 256;

// A scratch buffer this large is never too small for segment_tcp.
constexpr std::size_t segment_scratch_size(std::uint16_t mss) noexcept { return max_gso_header_len + mss; }

// Segment callback: one complete frame, valid only during the call (it lives
// in `scratch`). Return false to stop segmentation.
using segment_sink = function_ref<bool(std::span<const std::byte>)>;

// Software TCP segmentation of one TCP/IPv4 or TCP/IPv6 super-frame whose
// sender claimed `gso_type` (netif numbering: 1 tcpv4, 2 tcpv6; anything else,
// or a type that does not match the IP version, is type_mismatch) and
// `mss` payload bytes per segment. Segment i (payload bytes
// [i*mss, min((i+1)*mss, payload))) is built in `scratch` and handed to `emit`:
//   * the frame's headers up to hdr_len copied (L2, IP options, IPv6
//     extension headers, TCP options), followed by the payload slice; the
//     segment is hdr_len + slice bytes long (Ethernet padding is not copied,
//     and short segments are not padded to 60 bytes);
//   * IPv4: total length, identification (original id + i, mod 2^16) and
//     header checksum rewritten; IPv6: payload length rewritten;
//   * TCP: sequence number + i*mss (mod 2^32); FIN and PSH kept only on the
//     last segment, CWR only on the first; a complete, valid checksum (the
//     input's checksum field, partial or garbage, is ignored).
// A frame with payload <= mss (even 0) yields one segment. The frame is
// validated in full before anything is emitted: errors emit nothing. scratch
// must hold hdr_len + min(mss, payload) bytes (segment_scratch_size(mss)
// always does). The loop runs at most ceil(payload / mss) <= 65535 times.
segment_stats segment_tcp(std::span<const std::byte> frame, std::uint8_t gso_type, std::uint16_t mss,
                          std::span<std::byte> scratch, segment_sink emit);

namespace detail {
// The one header parser (shared with complete_l4_checksum): locate_l4 without
// the TCP data-offset check, so hdr_len may be meaningless for TCP (< l4_offset
// + 20 or beyond the segment); csum_offset + 2 <= l4_offset + l4_len <=
// frame.size() still holds.
l4_location parse_l4(std::span<const std::byte> frame);
// One's-complement sum (not folded) of the pseudo-header of a parsed frame.
std::uint32_t pseudo_header_sum(std::span<const std::byte> frame, const l4_info& info);
}  // namespace detail

}  // namespace vifkit::wire
