// Toeplitz hash (netif-spec §2.4, vectors §2.5) and frame parsing for the
// "maximal type" rule (§2.2): vectors through toeplitz_hash and through
// hash_frame on real frames, short keys, and robustness on truncated/odd frames.
#include "vifkit/ctrl/toeplitz.hpp"

#include <gtest/gtest.h>

#include <random>

#include "frames.hpp"

namespace vifkit::ctrl::test {
namespace {

// Independent bitwise reference, written from the netif.h prose: keep the key
// as a bit string, XOR its 32 left-most bits for every set input bit.
std::uint32_t reference_hash(std::span<const std::uint8_t> key, std::span<const std::uint8_t> in) {
    const auto key_bit = [&](std::size_t i) -> std::uint32_t {
        const std::size_t byte = i / 8;
        return byte < key.size() ? (key[byte] >> (7 - i % 8)) & 1u : 0u;
    };
    std::uint32_t h = 0;
    for (std::size_t bit = 0; bit < in.size() * 8; ++bit) {
        if (((in[bit / 8] >> (7 - bit % 8)) & 1u) == 0) continue;
        std::uint32_t window = 0;
        for (std::size_t k = 0; k < 32; ++k) window = (window << 1) | key_bit(bit + k);
        h ^= window;
    }
    return h;
}

constexpr std::uint32_t all = hash_type::all;

TEST(ToeplitzHash, Ipv4VectorsSpec2_5) {
    for (const auto& r : ipv4_rows) {
        SCOPED_TRACE(r.src);
        EXPECT_EQ(toeplitz_hash(rss_key, hash_input(r, false, false)), r.addr_hash);
        EXPECT_EQ(toeplitz_hash(rss_key, hash_input(r, false, true)), r.tcp_hash);
    }
}

TEST(ToeplitzHash, Ipv6VectorsSpec2_5) {
    for (const auto& r : ipv6_rows) {
        SCOPED_TRACE(r.src);
        EXPECT_EQ(toeplitz_hash(rss_key, hash_input(r, true, false)), r.addr_hash);
        EXPECT_EQ(toeplitz_hash(rss_key, hash_input(r, true, true)), r.tcp_hash);
    }
}

TEST(ToeplitzHash, ShortKeysCountMissingOctetsAsZero) {
    const auto in = hash_input(ipv4_rows[0], false, true);
    const auto key = std::span<const std::uint8_t>(rss_key);
    EXPECT_EQ(toeplitz_hash(key.first(0), in), 0x00000000u);
    EXPECT_EQ(toeplitz_hash(key.first(4), in), 0x166bbb34u);
    EXPECT_EQ(toeplitz_hash(key.first(8), in), 0x30becf14u);
    for (std::size_t n = 16; n <= 40; ++n) EXPECT_EQ(toeplitz_hash(key.first(n), in), 0x51ccc178u) << n;
}

TEST(ToeplitzHash, EmptyInputHashesToZero) {
    EXPECT_EQ(toeplitz_hash(rss_key, {}), 0u);
}

TEST(ToeplitzHash, MatchesBitwiseReferenceOnRandomData) {
    std::mt19937 rng(1234);
    for (int iter = 0; iter < 500; ++iter) {
        std::vector<std::uint8_t> key(rng() % 48), in(rng() % 40);
        for (auto& b : key) b = static_cast<std::uint8_t>(rng());
        for (auto& b : in) b = static_cast<std::uint8_t>(rng());
        ASSERT_EQ(toeplitz_hash(key, in), reference_hash(key, in)) << "iteration " << iter;
    }
}

TEST(ExtraHashType, IsTheBitNumber) {
    EXPECT_EQ(extra_hash_type(hash_type::ipv4), 0);
    EXPECT_EQ(extra_hash_type(hash_type::ipv4_tcp), 1);
    EXPECT_EQ(extra_hash_type(hash_type::ipv6), 2);
    EXPECT_EQ(extra_hash_type(hash_type::ipv6_tcp), 3);
    EXPECT_EQ(extra_hash_type(0), 0xFF);
    EXPECT_EQ(extra_hash_type(3), 0xFF);
}

// ---- hash_frame: vectors on real frames ----

void expect_hash(const std::optional<flow_hash>& h, std::uint32_t value, std::uint32_t type) {
    ASSERT_TRUE(h.has_value());
    EXPECT_EQ(h->value, value);
    EXPECT_EQ(h->type, type);
}

TEST(HashFrame, Ipv4TcpFramesGiveSpecVectors) {
    for (const auto& r : ipv4_rows) {
        SCOPED_TRACE(r.src);
        const auto f = frame_builder{}.ipv4(r);
        expect_hash(hash_frame(f, all, rss_key), r.tcp_hash, hash_type::ipv4_tcp);
        expect_hash(hash_frame(f, hash_type::ipv4, rss_key), r.addr_hash, hash_type::ipv4);
        expect_hash(hash_frame(f, hash_type::ipv4_tcp, rss_key), r.tcp_hash, hash_type::ipv4_tcp);
        EXPECT_FALSE(hash_frame(f, hash_type::ipv6 | hash_type::ipv6_tcp, rss_key));
    }
}

TEST(HashFrame, Ipv6TcpFramesGiveSpecVectors) {
    for (const auto& r : ipv6_rows) {
        SCOPED_TRACE(r.src);
        const auto f = frame_builder{}.ipv6(r);
        expect_hash(hash_frame(f, all, rss_key), r.tcp_hash, hash_type::ipv6_tcp);
        expect_hash(hash_frame(f, hash_type::ipv6, rss_key), r.addr_hash, hash_type::ipv6);
        expect_hash(hash_frame(f, hash_type::ipv6_tcp, rss_key), r.tcp_hash, hash_type::ipv6_tcp);
        EXPECT_FALSE(hash_frame(f, hash_type::ipv4 | hash_type::ipv4_tcp, rss_key));
    }
}

TEST(HashFrame, NonTcpUsesAddressesOnlyIfThatTypeIsEnabled) {
    const auto& r = ipv4_rows[1];
    const auto udp = frame_builder{}.ipv4(r, 17);
    expect_hash(hash_frame(udp, all, rss_key), r.addr_hash, hash_type::ipv4);
    EXPECT_FALSE(hash_frame(udp, hash_type::ipv4_tcp, rss_key));
    const auto udp6 = frame_builder{}.ipv6(ipv6_rows[1], 17);
    expect_hash(hash_frame(udp6, all, rss_key), ipv6_rows[1].addr_hash, hash_type::ipv6);
    EXPECT_FALSE(hash_frame(udp6, hash_type::ipv6_tcp, rss_key));
}

TEST(HashFrame, NoEnabledTypeNoHash) {
    EXPECT_FALSE(hash_frame(frame_builder{}.ipv4(ipv4_rows[0]), 0, rss_key));
    EXPECT_FALSE(hash_frame(frame_builder{}.ipv6(ipv6_rows[0]), 0, rss_key));
}

TEST(HashFrame, EmptyKeyHashesToZero) {
    expect_hash(hash_frame(frame_builder{}.ipv4(ipv4_rows[0]), all, {}), 0, hash_type::ipv4_tcp);
}

TEST(HashFrame, SingleVlanTagIsSkipped) {
    const auto& r = ipv4_rows[2];
    expect_hash(hash_frame(frame_builder{}.vlan().ipv4(r), all, rss_key), r.tcp_hash, hash_type::ipv4_tcp);
    const auto& r6 = ipv6_rows[2];
    expect_hash(hash_frame(frame_builder{}.vlan().ipv6(r6), all, rss_key), r6.tcp_hash, hash_type::ipv6_tcp);
}

TEST(HashFrame, StackedVlanTagsAreNotParsed) {
    EXPECT_FALSE(hash_frame(frame_builder{}.vlan().vlan().ipv4(ipv4_rows[0]), all, rss_key));
    EXPECT_FALSE(hash_frame(frame_builder{}.vlan(0x88A8).ipv4(ipv4_rows[0]), all, rss_key));
}

TEST(HashFrame, Ipv4OptionsAreSkippedToFindThePorts) {
    const auto& r = ipv4_rows[3];
    expect_hash(hash_frame(frame_builder{}.ipv4(r, 6, 0, 15), all, rss_key), r.tcp_hash,
                hash_type::ipv4_tcp);
}

TEST(HashFrame, Ipv4FragmentsNeverUseTheTcpType) {
    const auto& r = ipv4_rows[4];
    for (const std::uint16_t frag : {0x2000, 0x0001, 0x2010, 0x1FFF}) {  // MF, offsets
        SCOPED_TRACE(frag);
        const auto f = frame_builder{}.ipv4(r, 6, frag);
        expect_hash(hash_frame(f, all, rss_key), r.addr_hash, hash_type::ipv4);
        EXPECT_FALSE(hash_frame(f, hash_type::ipv4_tcp, rss_key));
    }
    // DF alone is not a fragment.
    expect_hash(hash_frame(frame_builder{}.ipv4(r, 6, 0x4000), all, rss_key), r.tcp_hash,
                hash_type::ipv4_tcp);
}

TEST(HashFrame, MalformedIpv4HeaderGivesNoHash) {
    auto f = frame_builder{}.ipv4(ipv4_rows[0]);
    f[14] = std::byte{0x44};  // IHL 4 < 5
    EXPECT_FALSE(hash_frame(f, all, rss_key));
    f[14] = std::byte{0x65};  // version 6 under ethertype IPv4
    EXPECT_FALSE(hash_frame(f, all, rss_key));
    auto g = frame_builder{}.ipv6(ipv6_rows[0]);
    g[14] = std::byte{0x40};  // version 4 under ethertype IPv6
    EXPECT_FALSE(hash_frame(g, all, rss_key));
}

TEST(HashFrame, NonIpEthertypeGivesNoHash) {
    auto f = frame_builder{}.ipv4(ipv4_rows[0]);
    f[12] = std::byte{0x08};
    f[13] = std::byte{0x06};  // ARP
    EXPECT_FALSE(hash_frame(f, all, rss_key));
}

TEST(HashFrame, Ipv6ExtensionHeadersAreWalked) {
    const auto& r = ipv6_rows[0];
    const auto f = frame_builder{}.ipv6(r, 6, {{0, 8}, {43, 24}, {60, 16}, {51, 12}});
    expect_hash(hash_frame(f, all, rss_key), r.tcp_hash, hash_type::ipv6_tcp);
}

TEST(HashFrame, Ipv6FragmentHeaderMeansNoTcpType) {
    const auto& r = ipv6_rows[1];
    const auto f = frame_builder{}.ipv6(r, 6, {{0, 8}, {44, 8}});
    expect_hash(hash_frame(f, all, rss_key), r.addr_hash, hash_type::ipv6);
    EXPECT_FALSE(hash_frame(f, hash_type::ipv6_tcp, rss_key));
}

TEST(HashFrame, Ipv6ExtensionWalkIsBounded) {
    const auto& r = ipv6_rows[2];
    std::vector<std::pair<std::uint8_t, std::size_t>> ext(max_ipv6_ext_headers, {60, 8});
    expect_hash(hash_frame(frame_builder{}.ipv6(r, 6, ext), all, rss_key), r.tcp_hash,
                hash_type::ipv6_tcp);
    ext.push_back({60, 8});  // one more than the bound: treated as "no TCP header"
    expect_hash(hash_frame(frame_builder{}.ipv6(r, 6, ext), all, rss_key), r.addr_hash,
                hash_type::ipv6);
}

TEST(HashFrame, Ipv6NoNextHeaderOrEspMeansNoTcpType) {
    const auto& r = ipv6_rows[0];
    expect_hash(hash_frame(frame_builder{}.ipv6(r, 59), all, rss_key), r.addr_hash, hash_type::ipv6);
    expect_hash(hash_frame(frame_builder{}.ipv6(r, 50), all, rss_key), r.addr_hash, hash_type::ipv6);
}

// Every prefix of a valid frame, each in its own exact-size heap buffer (so a
// sanitizer build flags any over-read): no hash until the IP header is whole,
// the address hash until both ports are inside, then the TCP hash.
void check_truncations(const std::vector<std::byte>& full, std::size_t ip_end, std::size_t ports_end,
                       const vector_row& r, std::uint32_t addr_type, std::uint32_t tcp_type) {
    for (std::size_t len = 0; len <= full.size(); ++len) {
        SCOPED_TRACE(len);
        const std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
        const auto h = hash_frame(cut, all, rss_key);
        if (len < ip_end) {
            EXPECT_FALSE(h.has_value());
        } else if (len < ports_end) {
            expect_hash(h, r.addr_hash, addr_type);
        } else {
            expect_hash(h, r.tcp_hash, tcp_type);
        }
    }
}

TEST(HashFrame, TruncatedIpv4FramesAtEveryLength) {
    const auto& r = ipv4_rows[0];
    frame_builder plain;
    check_truncations(plain.ipv4(r), 14 + 20, 14 + 20 + 4, r, hash_type::ipv4, hash_type::ipv4_tcp);
    frame_builder tagged;
    tagged.vlan();
    check_truncations(tagged.ipv4(r, 6, 0, 7), 18 + 20, 18 + 28 + 4, r, hash_type::ipv4,
                      hash_type::ipv4_tcp);
}

TEST(HashFrame, TruncatedIpv6FramesAtEveryLength) {
    const auto& r = ipv6_rows[2];
    check_truncations(frame_builder{}.ipv6(r), 14 + 40, 14 + 40 + 4, r, hash_type::ipv6,
                      hash_type::ipv6_tcp);
    check_truncations(frame_builder{}.ipv6(r, 6, {{0, 16}, {60, 8}}), 14 + 40, 14 + 40 + 24 + 4, r,
                      hash_type::ipv6, hash_type::ipv6_tcp);
}

TEST(HashFrame, HugeExtensionLengthDoesNotReadPastTheFrame) {
    const auto& r = ipv6_rows[0];
    auto f = frame_builder{}.ipv6(r, 6, {{60, 8}});
    f[14 + 40 + 1] = std::byte{0xFF};  // claims (255 + 1) * 8 bytes
    expect_hash(hash_frame(f, all, rss_key), r.addr_hash, hash_type::ipv6);
}

TEST(ExtractFlow, InputLayoutIsAddressesThenPorts) {
    const auto& r = ipv4_rows[0];
    const auto in = extract_flow(frame_builder{}.ipv4(r), all);
    ASSERT_TRUE(in.has_value());
    ASSERT_EQ(in->len, 12);
    EXPECT_EQ(std::vector<std::uint8_t>(in->bytes.begin(), in->bytes.begin() + 12),
              hash_input(r, false, true));
    const auto in6 = extract_flow(frame_builder{}.ipv6(ipv6_rows[0]), hash_type::ipv6);
    ASSERT_TRUE(in6.has_value());
    ASSERT_EQ(in6->len, 32);
    EXPECT_EQ(std::vector<std::uint8_t>(in6->bytes.begin(), in6->bytes.begin() + 32),
              hash_input(ipv6_rows[0], true, false));
}

}  // namespace
}  // namespace vifkit::ctrl::test
