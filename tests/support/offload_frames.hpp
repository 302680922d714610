// Frames for the offload tests of the hostile suites: TCP super-frames as a GSO
// sender leaves them (checksums unset), and an independent check of each
// segment that vifkit's software segmentation makes of one. Header-only.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace vifkit::test {

inline constexpr std::size_t tcp4_hdr_len = 14 + 20 + 20;  // Ethernet + IPv4 + TCP, no options

inline unsigned be16_at(std::span<const std::byte> f, std::size_t at) {
    return std::to_integer<unsigned>(f[at]) << 8 | std::to_integer<unsigned>(f[at + 1]);
}
inline std::uint32_t be32_at(std::span<const std::byte> f, std::size_t at) {
    return std::uint32_t{be16_at(f, at)} << 16 | be16_at(f, at + 2);
}
inline void put_be16(std::vector<std::byte>& f, std::size_t at, unsigned v) {
    f[at] = static_cast<std::byte>(v >> 8);
    f[at + 1] = static_cast<std::byte>(v);
}
// RFC 1071 sum of f[begin, end) (an odd tail byte padded with zero), not folded.
// Written independently of wire::, which is what it checks.
inline std::uint32_t ones(std::span<const std::byte> f, std::size_t begin, std::size_t end, std::uint32_t s = 0) {
    for (std::size_t i = begin; i < end; i += 2)
        s += std::to_integer<unsigned>(f[i]) << 8 | (i + 1 < end ? std::to_integer<unsigned>(f[i + 1]) : 0u);
    return s;
}
inline unsigned fold16(std::uint32_t s) {
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return s;
}

// Ethernet + IPv4 (id `ip_id`, DF) + TCP (seq `seq`, ACK|PSH) + `payload`
// pattern bytes, both checksums left as garbage (a GSO sender leaves them to
// whoever segments). proto 17 puts a UDP header there instead.
inline std::vector<std::byte> ip4_frame(std::size_t payload, std::uint32_t seq, std::uint16_t ip_id,
                                        std::uint8_t proto = 6) {
    std::vector<std::byte> f(tcp4_hdr_len + payload);
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<std::byte>(i * 7 + i / 251);
    const std::uint8_t hdr[] = {0x02, 0, 0, 0, 0, 0x09, 0x02, 0x01, 0, 0, 0, 0x01, 0x08, 0x00,  // Ethernet
                                0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0xDE, 0xAD, 10, 1, 0, 1, 10, 1, 0, 2};
    std::memcpy(f.data(), hdr, sizeof hdr);
    put_be16(f, 16, static_cast<unsigned>(f.size() - 14));
    put_be16(f, 18, ip_id);
    put_be16(f, 34, 40001);
    put_be16(f, 36, 5001);
    if (proto == 6) {
        put_be16(f, 38, seq >> 16);
        put_be16(f, 40, seq & 0xFFFF);
        put_be16(f, 42, 0x1234);
        put_be16(f, 44, 0x5678);
        f[46] = std::byte{0x50};  // data offset 5
        f[47] = std::byte{0x18};  // ACK | PSH
        put_be16(f, 48, 0xFFFF);
        put_be16(f, 50, 0xBEEF);  // checksum: garbage
        put_be16(f, 52, 0);
    } else {
        put_be16(f, 38, static_cast<unsigned>(f.size() - 34));
        put_be16(f, 40, 0xBEEF);
    }
    return f;
}

// Ethernet + IPv6 + TCP + payload.
inline std::vector<std::byte> tcp6_frame(std::size_t payload) {
    std::vector<std::byte> f(14 + 40 + 20 + payload);
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<std::byte>(i * 11);
    const std::uint8_t eth[] = {0x02, 0, 0, 0, 0, 0x09, 0x02, 0x01, 0, 0, 0, 0x01, 0x86, 0xDD};
    std::memcpy(f.data(), eth, sizeof eth);
    f[14] = std::byte{0x60};
    f[15] = f[16] = f[17] = std::byte{0};
    put_be16(f, 18, static_cast<unsigned>(20 + payload));
    f[20] = std::byte{6};
    f[21] = std::byte{64};
    f[66] = std::byte{0x50};
    f[67] = std::byte{0x10};
    return f;
}

// Segment i of the TCPv4 super-frame `super` cut at `mss` (independent checks):
// Ethernet header copied, IPv4 total length, id (+i) and header checksum, TCP
// sequence number (+i*mss), flags (PSH on the last only), TCP checksum over the
// pseudo-header, payload slice.
inline void expect_tcp4_segment(std::span<const std::byte> s, const std::vector<std::byte>& super, std::size_t i,
                                std::size_t mss) {
    const std::size_t payload = super.size() - tcp4_hdr_len;
    const std::size_t nseg = (payload + mss - 1) / mss;
    const std::size_t off = i * mss;
    ASSERT_LT(off, payload) << "segment " << i << " beyond the payload";
    const std::size_t len = std::min(mss, payload - off);
    ASSERT_EQ(s.size(), tcp4_hdr_len + len) << "segment " << i;
    EXPECT_TRUE(std::equal(s.begin(), s.begin() + 14, super.begin())) << "segment " << i;
    EXPECT_EQ(be16_at(s, 16), 40 + len) << "segment " << i;
    EXPECT_EQ(be16_at(s, 18), (be16_at(super, 18) + i) & 0xFFFF) << "segment " << i;
    EXPECT_EQ(fold16(ones(s, 14, 34)), 0xFFFFu) << "IPv4 header checksum, segment " << i;
    EXPECT_EQ(be32_at(s, 38), static_cast<std::uint32_t>(be32_at(super, 38) + off)) << "seq, segment " << i;
    EXPECT_EQ(be32_at(s, 42), be32_at(super, 42)) << "ack, segment " << i;
    const bool psh = (std::to_integer<unsigned>(s[47]) & 0x08) != 0;
    EXPECT_EQ(psh, i + 1 == nseg) << "PSH, segment " << i;
    EXPECT_EQ(std::to_integer<unsigned>(s[47]) & 0x10, 0x10u) << "ACK, segment " << i;
    // TCP checksum: pseudo-header (addresses, protocol, TCP length) + segment.
    const std::uint32_t pseudo = ones(s, 26, 34) + 6 + static_cast<std::uint32_t>(20 + len);
    EXPECT_EQ(fold16(ones(s, 34, s.size(), pseudo)), 0xFFFFu) << "TCP checksum, segment " << i;
    EXPECT_TRUE(std::equal(s.begin() + tcp4_hdr_len, s.end(), super.begin() + tcp4_hdr_len + off))
        << "payload, segment " << i;
}

}  // namespace vifkit::test
