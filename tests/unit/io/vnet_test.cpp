// The virtio_net_hdr <-> io::offload codec (decode_vnet / encode_vnet) and the
// with_vnet wrapper port behind the "unix:PATH:vnet" spec form.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "io_test_helpers.hpp"
#include "vifkit/io/packet_port.hpp"
#include "vnet/vnet_hdr.hpp"

namespace vifkit::io {
namespace {

using detail::decode_vnet;
using detail::encode_vnet;
using detail::virtio_net_hdr;
using detail::vnet_hdr_len;
using detail::vnet_verdict;
using detail::with_vnet;

constexpr unsigned all_caps = offload_cap::csum | offload_cap::tso4 | offload_cap::tso6;
constexpr std::uint8_t proto_icmp = 1, proto_tcp = 6, proto_udp = 17;

// ---- frame builders (big-endian fields written by hand) ----

void put16(std::vector<std::byte>& f, std::size_t at, unsigned v) {
    f[at] = static_cast<std::byte>(v >> 8);
    f[at + 1] = static_cast<std::byte>(v);
}
unsigned get16(const std::vector<std::byte>& f, std::size_t at) {
    return std::to_integer<unsigned>(f[at]) << 8 | std::to_integer<unsigned>(f[at + 1]);
}

// Independent RFC 1071 sum over [begin, end) (odd tail padded with zero), folded.
std::uint32_t sum16(const std::vector<std::byte>& f, std::size_t begin, std::size_t end, std::uint32_t s = 0) {
    for (std::size_t i = begin; i < end; i += 2) {
        const unsigned hi = std::to_integer<unsigned>(f[i]);
        const unsigned lo = i + 1 < end ? std::to_integer<unsigned>(f[i + 1]) : 0;
        s += hi << 8 | lo;
    }
    return s;
}
unsigned fold(std::uint32_t s) {
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return s;
}

// Ethernet + IPv4 (20 bytes, no options) + an L4 header of `proto` + payload.
// TCP may carry `tcp_opt` bytes of options (multiple of 4). Checksum fields hold 0xABCD.
std::vector<std::byte> ipv4_frame(std::uint8_t proto, std::size_t payload, std::size_t tcp_opt = 0) {
    const std::size_t l4h = proto == proto_tcp ? 20 + tcp_opt : 8;
    std::vector<std::byte> f(14 + 20 + l4h + payload);
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<std::byte>(i * 29 + 5);
    const std::uint8_t eth[14] = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};
    std::memcpy(f.data(), eth, sizeof eth);
    const std::uint8_t ip[20] = {0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
    std::memcpy(f.data() + 14, ip, sizeof ip);
    put16(f, 16, static_cast<unsigned>(20 + l4h + payload));
    put16(f, 24, (~fold(sum16(f, 14, 34))) & 0xFFFF);
    const std::size_t l4 = 34;
    if (proto == proto_tcp) {
        put16(f, l4, 40000);
        put16(f, l4 + 2, 80);
        f[l4 + 12] = static_cast<std::byte>(((20 + tcp_opt) / 4) << 4);
        f[l4 + 13] = std::byte{0x18};  // PSH | ACK
        put16(f, l4 + 16, 0xABCD);
        put16(f, l4 + 18, 0);
        for (std::size_t i = 0; i < tcp_opt; ++i) f[l4 + 20 + i] = std::byte{1};  // NOPs
    } else if (proto == proto_udp) {
        put16(f, l4, 5353);
        put16(f, l4 + 2, 5353);
        put16(f, l4 + 4, static_cast<unsigned>(8 + payload));
        put16(f, l4 + 6, 0xABCD);
    } else {  // ICMP echo: type, code, checksum at +2
        f[l4] = std::byte{8};
        f[l4 + 1] = std::byte{0};
        put16(f, l4 + 2, 0xABCD);
    }
    return f;
}

// Ethernet + IPv6 (40 bytes) + TCP (20) or UDP (8) + payload.
std::vector<std::byte> ipv6_frame(std::uint8_t proto, std::size_t payload) {
    const std::size_t l4h = proto == proto_tcp ? 20 : 8;
    std::vector<std::byte> f(14 + 40 + l4h + payload);
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<std::byte>(i * 31 + 3);
    const std::uint8_t eth[14] = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xDD};
    std::memcpy(f.data(), eth, sizeof eth);
    f[14] = std::byte{0x60};
    f[15] = f[16] = f[17] = std::byte{0};
    put16(f, 18, static_cast<unsigned>(l4h + payload));
    f[20] = static_cast<std::byte>(proto);
    f[21] = std::byte{64};
    const std::size_t l4 = 54;
    if (proto == proto_tcp) {
        put16(f, l4, 40000);
        put16(f, l4 + 2, 80);
        f[l4 + 12] = std::byte{0x50};
        f[l4 + 13] = std::byte{0x10};
        put16(f, l4 + 16, 0xABCD);
    } else {
        put16(f, l4 + 4, static_cast<unsigned>(8 + payload));
        put16(f, l4 + 6, 0xABCD);
    }
    return f;
}

// An Ethernet frame that is not IP at all (local experimental ethertype).
std::vector<std::byte> raw_frame(std::size_t len) {
    std::vector<std::byte> f(len);
    for (std::size_t i = 0; i < len; ++i) f[i] = static_cast<std::byte>(i * 17 + 1);
    const std::uint8_t eth[14] = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xB5};
    std::memcpy(f.data(), eth, sizeof eth);
    return f;
}

virtio_net_hdr hdr(std::uint8_t flags, std::uint8_t gso_type = 0, std::uint16_t gso_size = 0,
                   std::uint16_t csum_start = 0, std::uint16_t csum_offset = 0) {
    virtio_net_hdr h{};
    h.flags = flags;
    h.gso_type = gso_type;
    h.gso_size = gso_size;
    h.csum_start = csum_start;
    h.csum_offset = csum_offset;
    return h;
}

constexpr auto NEEDS_CSUM = detail::VIRTIO_NET_HDR_F_NEEDS_CSUM;
constexpr auto DATA_VALID = detail::VIRTIO_NET_HDR_F_DATA_VALID;
constexpr auto GSO_TCPV4 = detail::VIRTIO_NET_HDR_GSO_TCPV4;
constexpr auto GSO_TCPV6 = detail::VIRTIO_NET_HDR_GSO_TCPV6;
constexpr auto GSO_ECN = detail::VIRTIO_NET_HDR_GSO_ECN;
constexpr std::uint8_t GSO_UDP = 3;  // VIRTIO_NET_HDR_GSO_UDP (UFO): never accepted

// decode_vnet on a copy of `f`; the copy is written back to `out_frame` if given.
vnet_verdict decode(const virtio_net_hdr& h, const std::vector<std::byte>& f, unsigned caps, offload& m,
                    std::vector<std::byte>* out_frame = nullptr) {
    std::vector<std::byte> copy = f;
    m = offload{io::offload::csum::valid, io::offload::gso::tcpv6, 999};  // must be overwritten
    const auto v = decode_vnet(h, copy, caps, m);
    if (out_frame) *out_frame = copy;
    return v;
}

// ======================= decode_vnet: checksums =======================

TEST(VnetDecode, NeedsCsumAtTheTcpOrUdpFieldIsPartialAndLeavesTheFrameAlone) {
    struct {
        const char* name;
        std::vector<std::byte> frame;
        std::uint16_t start, offset;
    } const cases[] = {
        {"tcp/ipv4", ipv4_frame(proto_tcp, 100), 34, 16},
        {"udp/ipv4", ipv4_frame(proto_udp, 100), 34, 6},
        {"tcp/ipv6", ipv6_frame(proto_tcp, 100), 54, 16},
        {"udp/ipv6", ipv6_frame(proto_udp, 100), 54, 6},
    };
    for (const auto& c : cases) {
        offload m;
        std::vector<std::byte> after;
        EXPECT_EQ(decode(hdr(NEEDS_CSUM, 0, 0, c.start, c.offset), c.frame, offload_cap::csum, m, &after),
                  vnet_verdict::ok)
            << c.name;
        EXPECT_EQ(m.l4, offload::csum::partial) << c.name;
        EXPECT_EQ(m.gso_type, offload::gso::none) << c.name;
        EXPECT_EQ(m.gso_size, 0) << c.name;
        EXPECT_FALSE(m.plain()) << c.name;
        EXPECT_EQ(after, c.frame) << c.name << ": a partial checksum is passed on, not completed";
    }
}

TEST(VnetDecode, NeedsCsumWithoutTheCsumCapIsRefused) {
    offload m;
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, 0, 0, 34, 16), ipv4_frame(proto_tcp, 100), 0, m), vnet_verdict::bad_csum);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, 0, 0, 34, 16), ipv4_frame(proto_tcp, 100), offload_cap::tso4, m),
              vnet_verdict::bad_csum);
}

// virtio's NEEDS_CSUM semantics (what the kernel's skb_checksum_help does): sum
// from csum_start to the end of the frame INCLUDING what the field holds (a
// seed: 0, or a pseudo-header sum), and store the complement in the field.
// Expected value of the field after completion, computed independently.
unsigned expected_generic(const std::vector<std::byte>& before, std::size_t start) {
    return (~fold(sum16(before, start, before.size()))) & 0xFFFF;
}
void expect_only_field_changed(const std::vector<std::byte>& before, const std::vector<std::byte>& after,
                               std::size_t field) {
    ASSERT_EQ(before.size(), after.size());
    for (std::size_t i = 0; i < before.size(); ++i) {
        if (i != field && i != field + 1) {
            EXPECT_EQ(after[i], before[i]) << "byte " << i;
        }
    }
}

TEST(VnetDecode, NeedsCsumOnIcmpIsCompletedInSoftwareAndReportedPlain) {
    auto f = ipv4_frame(proto_icmp, 61);  // odd length: the tail byte is padded
    put16(f, 36, 0);                      // the sender's seed: 0, as for ICMP
    offload m;
    std::vector<std::byte> after;
    ASSERT_EQ(decode(hdr(NEEDS_CSUM, 0, 0, 34, 2), f, offload_cap::csum, m, &after), vnet_verdict::ok);
    EXPECT_EQ(m.l4, offload::csum::none);
    EXPECT_EQ(m.gso_type, offload::gso::none);
    EXPECT_TRUE(m.plain());
    EXPECT_EQ(get16(after, 36), expected_generic(f, 34));
    // A receiver's check: the ICMP message now sums to 0xFFFF.
    EXPECT_EQ(fold(sum16(after, 34, after.size())), 0xFFFFu);
    expect_only_field_changed(f, after, 36);
}

TEST(VnetDecode, NeedsCsumOnArbitraryPayloadIsCompletedGenerically) {
    auto f = raw_frame(200);
    offload m;
    std::vector<std::byte> after;
    // Sum from byte 20, field at 20 + 10; the field holds a nonzero seed, which
    // is part of the sum.
    put16(f, 30, 0x1357);
    ASSERT_EQ(decode(hdr(NEEDS_CSUM, 0, 0, 20, 10), f, offload_cap::csum, m, &after), vnet_verdict::ok);
    EXPECT_TRUE(m.plain());
    EXPECT_EQ(m.l4, offload::csum::none);
    EXPECT_EQ(get16(after, 30), expected_generic(f, 20));
    expect_only_field_changed(f, after, 30);
    // With a zero seed the region verifies on its own.
    put16(f, 30, 0);
    ASSERT_EQ(decode(hdr(NEEDS_CSUM, 0, 0, 20, 10), f, offload_cap::csum, m, &after), vnet_verdict::ok);
    EXPECT_EQ(fold(sum16(after, 20, after.size())), 0xFFFFu);
}

TEST(VnetDecode, NeedsCsumAtTheWrongPlaceOfATcpFrameIsCompletedGenerically) {
    // A TCP frame whose header names another field (the sequence number at
    // L4 + 4): not the TCP checksum field, so it is not reported partial; the
    // generic sum is written where asked.
    const auto f = ipv4_frame(proto_tcp, 40);
    offload m;
    std::vector<std::byte> after;
    ASSERT_EQ(decode(hdr(NEEDS_CSUM, 0, 0, 34, 4), f, offload_cap::csum, m, &after), vnet_verdict::ok);
    EXPECT_TRUE(m.plain());
    EXPECT_EQ(get16(after, 38), expected_generic(f, 34));
    expect_only_field_changed(f, after, 38);
    EXPECT_EQ(get16(after, 34 + 16), 0xABCDu) << "the real TCP checksum field was left alone";
}

TEST(VnetDecode, NeedsCsumOutOfBoundsIsBadCsum) {
    const auto f = raw_frame(100);
    struct {
        std::uint16_t start, offset;
    } const cases[] = {
        {100, 0},     // start at the end
        {60000, 2},   // far beyond
        {90, 9},      // field's second byte at 100
        {98, 1},      // field straddles the end
        {10, 65535},  // offset beyond
    };
    for (const auto& c : cases) {
        offload m;
        std::vector<std::byte> after;
        EXPECT_EQ(decode(hdr(NEEDS_CSUM, 0, 0, c.start, c.offset), f, offload_cap::csum, m, &after),
                  vnet_verdict::bad_csum)
            << c.start << "+" << c.offset;
        EXPECT_EQ(after, f) << "nothing written for " << c.start << "+" << c.offset;
    }
    // The last possible field (bytes 98..99) is still fine.
    offload m;
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, 0, 0, 90, 8), f, offload_cap::csum, m), vnet_verdict::ok);
}

TEST(VnetDecode, DataValidIsValidAndNoFlagsIsNone) {
    offload m;
    std::vector<std::byte> after;
    const auto f = ipv4_frame(proto_udp, 30);
    EXPECT_EQ(decode(hdr(DATA_VALID), f, 0, m, &after), vnet_verdict::ok);
    EXPECT_EQ(m.l4, offload::csum::valid);
    EXPECT_EQ(m.gso_type, offload::gso::none);
    EXPECT_TRUE(m.plain());
    EXPECT_EQ(after, f);
    EXPECT_EQ(decode(hdr(0), f, all_caps, m), vnet_verdict::ok);
    EXPECT_EQ(m.l4, offload::csum::none);
    EXPECT_EQ(m.gso_type, offload::gso::none);
    EXPECT_EQ(m.gso_size, 0);
}

// ======================= decode_vnet: GSO =======================

TEST(VnetDecode, GsoTcpv4AcceptedWithTheCap) {
    offload m;
    std::vector<std::byte> after;
    const auto f = ipv4_frame(proto_tcp, 3000);
    ASSERT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16), f, offload_cap::csum | offload_cap::tso4, m, &after),
              vnet_verdict::ok);
    EXPECT_EQ(m.gso_type, offload::gso::tcpv4);
    EXPECT_EQ(m.gso_size, 1448);
    EXPECT_EQ(m.l4, offload::csum::partial);
    EXPECT_EQ(after, f);
}

TEST(VnetDecode, GsoTcpv6AcceptedWithTheCap) {
    offload m;
    const auto f = ipv6_frame(proto_tcp, 3000);
    ASSERT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV6, 1428, 54, 16), f, offload_cap::csum | offload_cap::tso6, m),
              vnet_verdict::ok);
    EXPECT_EQ(m.gso_type, offload::gso::tcpv6);
    EXPECT_EQ(m.gso_size, 1428);
    EXPECT_EQ(m.l4, offload::csum::partial);
}

TEST(VnetDecode, GsoWithoutItsCapIsBadGso) {
    offload m;
    const auto v4 = ipv4_frame(proto_tcp, 3000);
    const auto v6 = ipv6_frame(proto_tcp, 3000);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16), v4, 0, m), vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16), v4, offload_cap::csum, m), vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16), v4, offload_cap::csum | offload_cap::tso6, m),
              vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV6, 1448, 54, 16), v6, offload_cap::csum | offload_cap::tso4, m),
              vnet_verdict::bad_gso);
}

TEST(VnetDecode, GsoSizeZeroIsBadGso) {
    offload m;
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV4, 0, 34, 16), ipv4_frame(proto_tcp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV6, 0, 54, 16), ipv6_frame(proto_tcp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
}

TEST(VnetDecode, GsoWithoutNeedsCsumIsBadGso) {
    offload m;
    EXPECT_EQ(decode(hdr(0, GSO_TCPV4, 1448), ipv4_frame(proto_tcp, 3000), all_caps, m), vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(DATA_VALID, GSO_TCPV4, 1448), ipv4_frame(proto_tcp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
}

TEST(VnetDecode, GsoTypeNotMatchingTheHeadersIsBadGso) {
    offload m;
    // TCPv4 claimed over IPv6, TCPv6 over IPv4, TCP GSO over UDP, over non-IP,
    // and over truncated headers (IP total length beyond the frame).
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 54, 16), ipv6_frame(proto_tcp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV6, 1448, 34, 16), ipv4_frame(proto_tcp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 6), ipv4_frame(proto_udp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16), raw_frame(3000), all_caps, m), vnet_verdict::bad_gso);
    auto cut = ipv4_frame(proto_tcp, 3000);
    cut.resize(1000);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16), cut, all_caps, m), vnet_verdict::bad_gso);
}

TEST(VnetDecode, GsoWithTheEcnBitIsBadGso) {
    // TUN_F_TSO_ECN is never enabled and io::offload cannot carry ECN: a header
    // claiming it is refused rather than passed on as plain TSO.
    offload m;
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV4 | GSO_ECN, 1448, 34, 16), ipv4_frame(proto_tcp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_TCPV6 | GSO_ECN, 1448, 54, 16), ipv6_frame(proto_tcp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_ECN, 1448, 34, 16), ipv4_frame(proto_tcp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
}

TEST(VnetDecode, UdpGsoTypeIsBadGso) {
    offload m;
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_UDP, 1400, 34, 6), ipv4_frame(proto_udp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
    EXPECT_EQ(decode(hdr(NEEDS_CSUM, GSO_UDP, 1400, 34, 16), ipv4_frame(proto_tcp, 3000), all_caps, m),
              vnet_verdict::bad_gso);
}

// ======================= encode_vnet =======================

TEST(VnetEncode, PartialChecksumNamesTheL4Field) {
    struct {
        const char* name;
        std::vector<std::byte> frame;
        std::uint16_t start, offset;
    } const cases[] = {
        {"tcp/ipv4", ipv4_frame(proto_tcp, 100), 34, 16},
        {"udp/ipv4", ipv4_frame(proto_udp, 100), 34, 6},
        {"tcp/ipv6", ipv6_frame(proto_tcp, 100), 54, 16},
        {"udp/ipv6", ipv6_frame(proto_udp, 100), 54, 6},
    };
    for (const auto& c : cases) {
        const auto h = encode_vnet(c.frame, offload{offload::csum::partial, offload::gso::none, 0});
        EXPECT_EQ(h.flags, NEEDS_CSUM) << c.name;
        EXPECT_EQ(h.csum_start, c.start) << c.name;
        EXPECT_EQ(h.csum_offset, c.offset) << c.name;
        EXPECT_EQ(h.gso_type, detail::VIRTIO_NET_HDR_GSO_NONE) << c.name;
        EXPECT_EQ(h.gso_size, 0) << c.name;
        // ... and decodes back to the same state.
        offload m;
        EXPECT_EQ(decode(h, c.frame, offload_cap::csum, m), vnet_verdict::ok) << c.name;
        EXPECT_EQ(m.l4, offload::csum::partial) << c.name;
    }
}

TEST(VnetEncode, GsoCarriesTypeSizeAndHeaderLength) {
    const auto v4 = ipv4_frame(proto_tcp, 5000, /*tcp_opt=*/12);  // TCP header 32 bytes
    auto h = encode_vnet(v4, offload{offload::csum::partial, offload::gso::tcpv4, 1448});
    EXPECT_EQ(h.flags, NEEDS_CSUM);
    EXPECT_EQ(h.gso_type, GSO_TCPV4);
    EXPECT_EQ(h.gso_size, 1448);
    EXPECT_EQ(h.hdr_len, 14 + 20 + 32);
    EXPECT_EQ(h.csum_start, 34);
    EXPECT_EQ(h.csum_offset, 16);

    const auto v6 = ipv6_frame(proto_tcp, 5000);
    h = encode_vnet(v6, offload{offload::csum::partial, offload::gso::tcpv6, 1400});
    EXPECT_EQ(h.flags, NEEDS_CSUM);
    EXPECT_EQ(h.gso_type, GSO_TCPV6);
    EXPECT_EQ(h.gso_size, 1400);
    EXPECT_EQ(h.hdr_len, 14 + 40 + 20);
    EXPECT_EQ(h.csum_start, 54);
    EXPECT_EQ(h.csum_offset, 16);
    offload m;
    ASSERT_EQ(decode(h, v6, all_caps, m), vnet_verdict::ok);
    EXPECT_EQ(m.gso_type, offload::gso::tcpv6);
    EXPECT_EQ(m.gso_size, 1400);
}

TEST(VnetEncode, ValidAndPlain) {
    const auto f = ipv4_frame(proto_tcp, 100);
    auto h = encode_vnet(f, offload{offload::csum::valid, offload::gso::none, 0});
    EXPECT_EQ(h.flags, DATA_VALID);
    EXPECT_EQ(h.gso_type, 0);
    EXPECT_EQ(h.gso_size, 0);
    EXPECT_EQ(h.hdr_len, 0);
    EXPECT_EQ(h.csum_start, 0);
    EXPECT_EQ(h.csum_offset, 0);
    h = encode_vnet(f, offload{});
    const virtio_net_hdr zero{};
    EXPECT_EQ(std::memcmp(&h, &zero, sizeof h), 0);
    // A partial checksum on a frame without TCP/UDP headers goes out without flags.
    h = encode_vnet(raw_frame(100), offload{offload::csum::partial, offload::gso::none, 0});
    EXPECT_EQ(std::memcmp(&h, &zero, sizeof h), 0);
}

// ======================= with_vnet over a mem pair =======================

struct vnet_pair {
    std::unique_ptr<packet_port> a, b;  // both wrapped
};
vnet_pair wrapped_pair() {
    auto [x, y] = make_mem_pair();
    if (!x || !y) return {};
    return {with_vnet(std::move(x)), with_vnet(std::move(y))};
}
// Receiving end wrapped, sending end raw (the test writes headers by hand).
struct raw_pair {
    std::unique_ptr<packet_port> raw, vnet;
};
raw_pair half_wrapped_pair() {
    auto [x, y] = make_mem_pair();
    if (!x || !y) return {};
    return {std::move(x), with_vnet(std::move(y))};
}
std::vector<std::byte> datagram(const virtio_net_hdr& h, const std::vector<std::byte>& frame) {
    std::vector<std::byte> d(vnet_hdr_len + frame.size());
    std::memcpy(d.data(), &h, vnet_hdr_len);
    std::copy(frame.begin(), frame.end(), d.begin() + vnet_hdr_len);
    return d;
}

TEST(VnetPort, ReportsCapsAndDescribesItself) {
    auto p = wrapped_pair();
    ASSERT_TRUE(p.a && p.b);
    EXPECT_EQ(p.a->offload_caps(), all_caps);
    EXPECT_EQ(p.a->set_offload(all_caps), 0);
    EXPECT_NE(p.a->describe().find(":vnet"), std::string::npos);
    EXPECT_GE(p.a->fd(), 0);
}

TEST(VnetPort, OffloadStateAndBytesTravelEndToEnd) {
    auto p = wrapped_pair();
    ASSERT_TRUE(p.a && p.b);
    ASSERT_EQ(p.b->set_offload(all_caps), 0);
    struct {
        const char* name;
        std::vector<std::byte> frame;
        offload m;
    } const cases[] = {
        {"partial tcp4", ipv4_frame(proto_tcp, 500), {offload::csum::partial, offload::gso::none, 0}},
        {"partial udp6", ipv6_frame(proto_udp, 500), {offload::csum::partial, offload::gso::none, 0}},
        {"gso tcp4", ipv4_frame(proto_tcp, 8000), {offload::csum::partial, offload::gso::tcpv4, 1448}},
        {"gso tcp6", ipv6_frame(proto_tcp, 60000), {offload::csum::partial, offload::gso::tcpv6, 1428}},
        {"valid", ipv4_frame(proto_udp, 100), {offload::csum::valid, offload::gso::none, 0}},
        {"plain", raw_frame(60), {}},
    };
    std::vector<std::byte> buf(max_frame_size);
    for (const auto& c : cases) {
        ASSERT_TRUE(p.a->send_offload(c.frame, c.m)) << c.name;
        offload got{offload::csum::valid, offload::gso::tcpv6, 7};
        const long n = p.b->recv_offload(buf, got);
        ASSERT_EQ(n, static_cast<long>(c.frame.size())) << c.name;
        EXPECT_TRUE(std::equal(c.frame.begin(), c.frame.end(), buf.begin())) << c.name;
        EXPECT_EQ(got.l4, c.m.l4) << c.name;
        EXPECT_EQ(got.gso_type, c.m.gso_type) << c.name;
        EXPECT_EQ(got.gso_size, c.m.gso_size) << c.name;
    }
    EXPECT_EQ(p.b->recv(buf), 0);
    EXPECT_EQ(p.b->get_stats().rx_errors, 0u);
    EXPECT_EQ(p.a->get_stats().tx_frames, std::size(cases));
    // The other direction too, plain send()/recv().
    const auto f = raw_frame(1514);
    ASSERT_TRUE(p.b->send(f));
    ASSERT_EQ(test::recv_wait(*p.a, buf), 1514);
    EXPECT_TRUE(std::equal(f.begin(), f.end(), buf.begin()));
}

TEST(VnetPort, OffloadsNotEnabledOnTheReceiverAreRefused) {
    auto p = wrapped_pair();
    ASSERT_TRUE(p.a && p.b);
    ASSERT_EQ(p.b->set_offload(offload_cap::csum), 0);  // no TSO
    std::vector<std::byte> buf(max_frame_size);
    ASSERT_TRUE(p.a->send_offload(ipv4_frame(proto_tcp, 8000), {offload::csum::partial, offload::gso::tcpv4, 1448}));
    const auto f = ipv4_frame(proto_tcp, 200);
    ASSERT_TRUE(p.a->send_offload(f, {offload::csum::partial, offload::gso::none, 0}));
    offload m;
    // The GSO frame is skipped (counted); the partial one behind it arrives.
    ASSERT_EQ(p.b->recv_offload(buf, m), static_cast<long>(f.size()));
    EXPECT_EQ(m.l4, offload::csum::partial);
    EXPECT_EQ(m.gso_type, offload::gso::none);
    EXPECT_EQ(p.b->get_stats().rx_errors, 1u);
}

TEST(VnetPort, PlainRecvRefusesFramesWithOffloads) {
    auto p = wrapped_pair();
    ASSERT_TRUE(p.a && p.b);
    ASSERT_EQ(p.b->set_offload(all_caps), 0);
    std::vector<std::byte> buf(max_frame_size);
    const auto before = p.b->get_stats().rx_errors;
    ASSERT_TRUE(p.a->send_offload(ipv4_frame(proto_tcp, 300), {offload::csum::partial, offload::gso::none, 0}));
    EXPECT_EQ(p.b->recv(buf), 0);
    ASSERT_TRUE(p.a->send_offload(ipv4_frame(proto_tcp, 8000), {offload::csum::partial, offload::gso::tcpv4, 1448}));
    EXPECT_EQ(p.b->recv(buf), 0);
    EXPECT_EQ(p.b->get_stats().rx_errors, before + 2);
    // A data_validated frame is plain: recv() takes it.
    const auto v = ipv4_frame(proto_udp, 100);
    ASSERT_TRUE(p.a->send_offload(v, {offload::csum::valid, offload::gso::none, 0}));
    ASSERT_EQ(p.b->recv(buf), static_cast<long>(v.size()));
    EXPECT_TRUE(std::equal(v.begin(), v.end(), buf.begin()));
    EXPECT_EQ(p.b->get_stats().rx_errors, before + 2);
}

TEST(VnetPort, ShortOrBadDatagramsAreSkippedAndCounted) {
    auto p = half_wrapped_pair();
    ASSERT_TRUE(p.raw && p.vnet);
    ASSERT_EQ(p.vnet->set_offload(all_caps), 0);
    std::vector<std::byte> buf(max_frame_size);
    const auto good = raw_frame(100);
    // Shorter than the header: 1 and 9 bytes.
    for (std::size_t len : {std::size_t{1}, std::size_t{9}}) ASSERT_TRUE(p.raw->send(std::vector<std::byte>(len)));
    // Bad headers: UDP GSO, GSO without NEEDS_CSUM, NEEDS_CSUM out of the frame.
    ASSERT_TRUE(p.raw->send(datagram(hdr(NEEDS_CSUM, GSO_UDP, 1400, 34, 6), ipv4_frame(proto_udp, 3000))));
    ASSERT_TRUE(p.raw->send(datagram(hdr(0, GSO_TCPV4, 1448), ipv4_frame(proto_tcp, 3000))));
    ASSERT_TRUE(p.raw->send(datagram(hdr(NEEDS_CSUM, 0, 0, 5000, 2), good)));
    ASSERT_TRUE(p.raw->send(datagram(hdr(0), good)));
    offload m;
    const long n = p.vnet->recv_offload(buf, m);
    ASSERT_EQ(n, static_cast<long>(good.size()));
    EXPECT_TRUE(std::equal(good.begin(), good.end(), buf.begin()));
    EXPECT_TRUE(m.plain());
    EXPECT_EQ(p.vnet->get_stats().rx_errors, 5u);
    EXPECT_EQ(p.vnet->recv_offload(buf, m), 0);
}

TEST(VnetPort, FrameLargerThanTheCallersBufferIsSkipped) {
    auto p = half_wrapped_pair();
    ASSERT_TRUE(p.raw && p.vnet);
    std::vector<std::byte> small(200);
    ASSERT_TRUE(p.raw->send(datagram(hdr(0), raw_frame(500))));
    const auto fits = raw_frame(150);
    ASSERT_TRUE(p.raw->send(datagram(hdr(0), fits)));
    ASSERT_EQ(p.vnet->recv(small), 150);
    EXPECT_TRUE(std::equal(fits.begin(), fits.end(), small.begin()));
    EXPECT_EQ(p.vnet->get_stats().rx_errors, 1u);
}

TEST(VnetPort, FloodOfBadDatagramsIsBoundedPerCall) {
    auto p = half_wrapped_pair();
    ASSERT_TRUE(p.raw && p.vnet);
    constexpr unsigned flood = 150;
    for (unsigned i = 0; i < flood; ++i) ASSERT_TRUE(p.raw->send(std::vector<std::byte>(3))) << i;
    const auto good = raw_frame(80);
    ASSERT_TRUE(p.raw->send(datagram(hdr(0), good)));
    std::vector<std::byte> buf(max_frame_size);
    // Each call skips at most 64 bad datagrams and then returns 0 (it does not spin).
    EXPECT_EQ(p.vnet->recv(buf), 0);
    EXPECT_EQ(p.vnet->get_stats().rx_errors, 64u);
    EXPECT_EQ(p.vnet->recv(buf), 0);
    EXPECT_EQ(p.vnet->get_stats().rx_errors, 128u);
    // The third call gets through the rest to the good frame.
    ASSERT_EQ(p.vnet->recv(buf), static_cast<long>(good.size()));
    EXPECT_TRUE(std::equal(good.begin(), good.end(), buf.begin()));
    EXPECT_EQ(p.vnet->get_stats().rx_errors, flood);
    EXPECT_EQ(p.vnet->recv(buf), 0);
}

}  // namespace
}  // namespace vifkit::io
