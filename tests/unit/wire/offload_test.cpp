// locate_l4, set_partial_checksum and segment_tcp against frames built here
// with known layouts and an independent receiver-side verification (the sum
// over pseudo-header + segment folds to 0xFFFF; the IPv4 header sums to
// 0xFFFF), plus hostile headers and a randomized robustness loop.
#include "vifkit/wire/offload.hpp"

#include "vifkit/abi/netif.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace vifkit::wire {
namespace {

using bytes = std::vector<std::byte>;
constexpr std::uint8_t tcp = 6, udp = 17;
constexpr std::uint8_t f_fin = 0x01, f_syn = 0x02, f_psh = 0x08, f_ack = 0x10, f_urg = 0x20, f_ece = 0x40,
                       f_cwr = 0x80;
constexpr std::uint8_t tcpv4 = abi::gso_type::tcpv4, tcpv6 = abi::gso_type::tcpv6;

void put16(bytes& f, std::size_t at, unsigned v) {
    f[at] = static_cast<std::byte>(v >> 8);
    f[at + 1] = static_cast<std::byte>(v);
}
void put32(bytes& f, std::size_t at, std::uint32_t v) {
    put16(f, at, v >> 16);
    put16(f, at + 2, v & 0xFFFF);
}
unsigned get16(std::span<const std::byte> f, std::size_t at) {
    return std::to_integer<unsigned>(f[at]) << 8 | std::to_integer<unsigned>(f[at + 1]);
}
std::uint32_t get32(std::span<const std::byte> f, std::size_t at) {
    return static_cast<std::uint32_t>(get16(f, at)) << 16 | get16(f, at + 2);
}

// A frame description; build() fills everything not described with random bytes.
struct spec {
    bool v6 = false;
    bool vlan = false;
    std::size_t ip_opts = 0;       // IPv4 option bytes (multiple of 4, <= 40)
    std::size_t v6_ext = 0;        // IPv6 extension headers (hop-by-hop, then dest-opts/routing)
    std::uint8_t proto = tcp;
    std::size_t tcp_opts = 0;      // TCP option bytes (multiple of 4, <= 40)
    std::size_t payload = 0;
    std::uint8_t flags = f_ack | f_psh;
    std::uint32_t seq = 0x12345678;
    std::uint16_t ip_id = 0x4242;
    std::size_t pad = 0;           // bytes after the IP packet (Ethernet padding)
    unsigned seed = 1;
    std::size_t v6_ext_grow = 0;   // 8-byte units added to every extension header
};

struct built {
    bytes f;
    std::size_t l3, l4, hdr, ip_hlen;  // ip_hlen: IP header incl. options / extension headers
};

built build(const spec& s) {
    std::mt19937 rng(s.seed);
    const std::size_t l3 = s.vlan ? 18 : 14;
    std::size_t ip_hlen = s.v6 ? 40 : 20 + s.ip_opts;
    std::vector<std::size_t> ext_len;
    for (std::size_t i = 0; i < s.v6_ext; ++i) ext_len.push_back((i % 3 + 1 + s.v6_ext_grow) * 8);
    for (auto e : ext_len) ip_hlen += e;
    const std::size_t l4 = l3 + ip_hlen;
    const std::size_t l4h = s.proto == tcp ? 20 + s.tcp_opts : 8;
    const std::size_t l4_len = l4h + s.payload;
    built b{bytes(l4 + l4_len + s.pad), l3, l4, l4 + l4h, ip_hlen};
    auto& f = b.f;
    for (auto& x : f) x = static_cast<std::byte>(rng());
    if (s.vlan) {
        put16(f, 12, 0x8100);
        put16(f, 16, s.v6 ? 0x86DD : 0x0800);
    } else {
        put16(f, 12, s.v6 ? 0x86DD : 0x0800);
    }
    if (!s.v6) {
        f[l3] = static_cast<std::byte>(0x40 | (ip_hlen / 4));
        put16(f, l3 + 2, static_cast<unsigned>(ip_hlen + l4_len));
        put16(f, l3 + 4, s.ip_id);
        put16(f, l3 + 6, 0x4000);  // DF
        f[l3 + 9] = static_cast<std::byte>(s.proto);
        put16(f, l3 + 10, 0);
        std::uint32_t h = 0;
        for (std::size_t i = 0; i < ip_hlen; i += 2) h += get16(f, l3 + i);
        while (h >> 16) h = (h & 0xFFFF) + (h >> 16);
        put16(f, l3 + 10, ~h & 0xFFFF);
    } else {
        f[l3] = std::byte{0x60};
        put16(f, l3 + 4, static_cast<unsigned>(ip_hlen - 40 + l4_len));
        std::size_t at = l3 + 40;
        std::size_t prev = l3 + 6;  // where the "next header" value goes
        for (std::size_t i = 0; i < ext_len.size(); ++i) {
            f[prev] = static_cast<std::byte>(i == 0 ? 0 : (i % 2 ? 60 : 43));
            prev = at;
            f[at + 1] = static_cast<std::byte>(ext_len[i] / 8 - 1);
            at += ext_len[i];
        }
        f[prev] = static_cast<std::byte>(s.proto);
    }
    if (s.proto == tcp) {
        put32(f, l4 + 4, s.seq);
        f[l4 + 12] = static_cast<std::byte>((l4h / 4) << 4);
        f[l4 + 13] = static_cast<std::byte>(s.flags);
    } else {
        put16(f, l4 + 4, static_cast<unsigned>(l4_len));
    }
    return b;
}

// Receiver-side checks, written independently of the code under test.
std::uint32_t sum16(std::span<const std::byte> f, std::size_t from, std::size_t n, std::uint64_t s = 0) {
    for (std::size_t i = 0; i < n; i += 2)
        s += (std::to_integer<unsigned>(f[from + i]) << 8) | (i + 1 < n ? std::to_integer<unsigned>(f[from + i + 1]) : 0);
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return static_cast<std::uint32_t>(s);
}
std::uint32_t pseudo(std::span<const std::byte> f, std::size_t l3, bool v6, std::size_t len, std::uint8_t proto) {
    return sum16(f, v6 ? l3 + 8 : l3 + 12, v6 ? 32 : 8, std::uint64_t{proto} + len);
}
bool l4_verifies(std::span<const std::byte> f, std::size_t l3, bool v6, std::size_t l4, std::size_t len,
                 std::uint8_t proto) {
    return sum16(f, l4, len, pseudo(f, l3, v6, len, proto)) == 0xFFFF;
}
bool ipv4_header_verifies(std::span<const std::byte> f, std::size_t l3, std::size_t ihl) {
    return sum16(f, l3, ihl) == 0xFFFF;
}

// ---------------------------------------------------------------- locate_l4

void expect_located(const built& b, const spec& s) {
    const auto loc = locate_l4(b.f);
    ASSERT_EQ(loc.status, csum_result::done);
    EXPECT_EQ(loc.info.ip_version, s.v6 ? 6 : 4);
    EXPECT_EQ(loc.info.proto, s.proto);
    EXPECT_EQ(loc.info.l3_offset, b.l3);
    EXPECT_EQ(loc.info.l4_offset, b.l4);
    EXPECT_EQ(loc.info.csum_offset, b.l4 + (s.proto == tcp ? 16 : 6));
    EXPECT_EQ(loc.info.l4_len, b.hdr - b.l4 + s.payload);
    EXPECT_EQ(loc.info.hdr_len, b.hdr);
}

TEST(LocateL4, Ipv4AndIpv6TcpAndUdp) {
    for (bool v6 : {false, true}) {
        for (std::uint8_t proto : {tcp, udp}) {
            for (std::size_t payload : {0u, 1u, 100u, 1460u}) {
                spec s{.v6 = v6, .proto = proto, .payload = payload};
                SCOPED_TRACE(testing::Message() << v6 << " " << int(proto) << " " << payload);
                expect_located(build(s), s);
            }
        }
    }
}

TEST(LocateL4, VlanTagIpv4OptionsTcpOptionsAndPadding) {
    for (bool v6 : {false, true}) {
        spec s{.v6 = v6, .vlan = true, .payload = 33};
        expect_located(build(s), s);
    }
    for (std::size_t opts = 0; opts <= 40; opts += 4) {
        spec s{.vlan = opts % 8 == 0, .ip_opts = opts, .tcp_opts = 40 - opts, .payload = 7};
        SCOPED_TRACE(opts);
        expect_located(build(s), s);
    }
    spec padded{.proto = udp, .payload = 2, .pad = 16};  // 60-byte minimum frame
    expect_located(build(padded), padded);
}

TEST(LocateL4, Ipv6ExtensionHeaders) {
    for (std::size_t n = 1; n <= 8; ++n) {
        for (std::uint8_t proto : {tcp, udp}) {
            spec s{.v6 = true, .v6_ext = n, .proto = proto, .payload = 50};
            SCOPED_TRACE(n);
            expect_located(build(s), s);
        }
    }
    // A ninth extension header is more than the parser follows: not located.
    spec nine{.v6 = true, .v6_ext = 9, .payload = 50};
    EXPECT_EQ(locate_l4(build(nine).f).status, csum_result::not_l4);
    // A fragment header (44) means there is no whole segment here.
    spec frag{.v6 = true, .v6_ext = 1, .payload = 50};
    auto b = build(frag);
    b.f[b.l3 + 6] = std::byte{44};
    EXPECT_EQ(locate_l4(b.f).status, csum_result::not_l4);
}

TEST(LocateL4, FragmentsAndOtherTrafficAreNotL4) {
    spec s{.payload = 100};
    for (unsigned frag : {0x2000u, 0x0001u, 0x1FFFu, 0x6001u}) {  // MF, offsets, DF + offset
        auto b = build(s);
        put16(b.f, b.l3 + 6, frag);
        EXPECT_EQ(locate_l4(b.f).status, csum_result::not_l4) << frag;
    }
    auto arp = build(s);
    put16(arp.f, 12, 0x0806);
    EXPECT_EQ(locate_l4(arp.f).status, csum_result::not_l4);
    auto qinq = build(s);
    put16(qinq.f, 12, 0x88A8);
    EXPECT_EQ(locate_l4(qinq.f).status, csum_result::not_l4);
    for (std::uint8_t p : {1, 47, 58, 132}) {
        auto b = build(s);
        b.f[b.l3 + 9] = static_cast<std::byte>(p);
        EXPECT_EQ(locate_l4(b.f).status, csum_result::not_l4) << int(p);
    }
}

TEST(LocateL4, TruncatedAndInconsistentHeadersAreMalformed) {
    // Every truncation of a valid frame: the IP length then exceeds the frame.
    for (bool v6 : {false, true}) {
        for (bool vlan : {false, true}) {
            spec s{.v6 = v6, .vlan = vlan, .tcp_opts = 12, .payload = 10};
            const auto b = build(s);
            for (std::size_t n = 0; n < b.f.size(); ++n) {
                const auto loc = locate_l4(std::span(b.f).first(n));
                EXPECT_EQ(loc.status, csum_result::malformed) << v6 << vlan << " " << n;
            }
        }
    }
    spec s{.payload = 10};
    auto b = build(s);
    b.f[b.l3] = std::byte{0x65};  // version 6 inside an IPv4 ethertype
    EXPECT_EQ(locate_l4(b.f).status, csum_result::malformed);
    b = build(s);
    b.f[b.l3] = std::byte{0x44};  // ihl 16 < 20
    EXPECT_EQ(locate_l4(b.f).status, csum_result::malformed);
    b = build(s);
    b.f[b.l3] = std::byte{0x4F};  // ihl 60 > total length
    EXPECT_EQ(locate_l4(b.f).status, csum_result::malformed);
    b = build(s);
    put16(b.f, b.l3 + 2, 20 + 19);  // TCP shorter than its minimal header
    EXPECT_EQ(locate_l4(b.f).status, csum_result::malformed);
    spec u{.proto = udp, .payload = 0};
    b = build(u);
    put16(b.f, b.l3 + 2, 20 + 7);  // UDP shorter than its header
    EXPECT_EQ(locate_l4(b.f).status, csum_result::malformed);
    spec e{.v6 = true, .v6_ext = 2, .payload = 10};
    b = build(e);
    b.f[b.l3 + 40 + 8 + 1] = std::byte{200};  // extension header longer than the packet
    EXPECT_EQ(locate_l4(b.f).status, csum_result::malformed);
}

TEST(LocateL4, TcpDataOffsetIsChecked) {
    spec s{.payload = 10};
    for (unsigned doff = 0; doff < 16; ++doff) {
        auto b = build(s);
        b.f[b.l4 + 12] = static_cast<std::byte>(doff << 4);
        const auto loc = locate_l4(b.f);
        // The segment is 30 bytes long: doff 5..7 fit.
        if (doff >= 5 && doff * 4 <= 30) {
            ASSERT_EQ(loc.status, csum_result::done) << doff;
            EXPECT_EQ(loc.info.hdr_len, b.l4 + doff * 4);
        } else {
            EXPECT_EQ(loc.status, csum_result::malformed) << doff;
        }
        // complete_l4_checksum keeps checksumming such segments (its contract).
        EXPECT_EQ(complete_l4_checksum(b.f), csum_result::done);
        EXPECT_TRUE(l4_verifies(b.f, b.l3, false, b.l4, 30, tcp));
    }
}

TEST(LocateL4, LocatedOffsetsAlwaysLieInsideTheFrame) {
    std::mt19937 rng(11);
    for (int i = 0; i < 50000; ++i) {
        bytes r(rng() % 160);
        for (auto& x : r) x = static_cast<std::byte>(rng());
        if (r.size() >= 14 && rng() % 4 != 0) put16(r, 12, rng() % 2 ? 0x0800 : 0x86DD);
        if (r.size() >= 15 && rng() % 2) r[14] = static_cast<std::byte>(get16(r, 12) == 0x0800 ? 0x45 : 0x60);
        const auto loc = locate_l4(r);
        if (!loc) continue;
        const auto& in = loc.info;
        EXPECT_TRUE(in.proto == tcp || in.proto == udp);
        EXPECT_LE(in.l3_offset + (in.ip_version == 4 ? 20u : 40u), in.l4_offset);
        EXPECT_LE(in.csum_offset + 2, in.hdr_len);
        EXPECT_LE(in.hdr_len, in.l4_offset + in.l4_len);
        EXPECT_LE(in.l4_offset + in.l4_len, r.size());
    }
}

// ---------------------------------------------------------- partial checksum

// The receiver's completion of a partial checksum: sum the L4 segment (the
// field holding the partial sum) and store the complement.
void complete_independently(bytes& f, std::size_t l4, std::size_t len, std::size_t field, std::uint8_t proto) {
    std::uint16_t c = static_cast<std::uint16_t>(~sum16(f, l4, len));
    if (proto == udp && c == 0) c = 0xFFFF;
    put16(f, field, c);
}

// A full checksum computed independently: field zeroed, pseudo-header + segment.
unsigned full_checksum(bytes f, std::size_t l3, bool v6, std::size_t l4, std::size_t len, std::size_t field,
                       std::uint8_t proto) {
    put16(f, field, 0);
    unsigned c = ~sum16(f, l4, len, pseudo(f, l3, v6, len, proto)) & 0xFFFF;
    if (proto == udp && c == 0) c = 0xFFFF;
    return c;
}

TEST(PartialChecksum, CompletedBySummationEqualsTheFullChecksum) {
    unsigned seed = 100;
    for (bool v6 : {false, true}) {
        for (std::uint8_t proto : {tcp, udp}) {
            for (std::size_t payload : {0u, 1u, 2u, 3u, 100u, 1459u, 1460u, 9000u}) {
                for (bool ext : {false, true}) {
                    spec s{.v6 = v6, .vlan = ext, .ip_opts = ext && !v6 ? 12u : 0u, .v6_ext = ext && v6 ? 3u : 0u,
                           .proto = proto, .payload = payload, .pad = ext ? 5u : 0u, .seed = ++seed};
                    SCOPED_TRACE(testing::Message() << v6 << " " << int(proto) << " " << payload << " " << ext);
                    auto b = build(s);
                    const std::size_t len = b.hdr - b.l4 + payload;
                    const std::size_t field = b.l4 + (proto == tcp ? 16 : 6);
                    const unsigned want = full_checksum(b.f, b.l3, v6, b.l4, len, field, proto);
                    const auto before = b.f;
                    ASSERT_EQ(set_partial_checksum(b.f), csum_result::done);
                    // Only the checksum field changed, and it holds the folded
                    // pseudo-header sum, not inverted.
                    for (std::size_t i = 0; i < b.f.size(); ++i)
                        if (i != field && i != field + 1) { ASSERT_EQ(b.f[i], before[i]) << i; }
                    EXPECT_EQ(get16(b.f, field), pseudo(b.f, b.l3, v6, len, proto));
                    complete_independently(b.f, b.l4, len, field, proto);
                    EXPECT_EQ(get16(b.f, field), want);
                    EXPECT_TRUE(l4_verifies(b.f, b.l3, v6, b.l4, len, proto));
                    // And complete_l4_checksum agrees from the partial state.
                    ASSERT_EQ(set_partial_checksum(b.f), csum_result::done);
                    ASSERT_EQ(complete_l4_checksum(b.f), csum_result::done);
                    EXPECT_EQ(get16(b.f, field), want);
                }
            }
        }
    }
}

TEST(PartialChecksum, LeavesOtherTrafficAndMalformedFramesAlone) {
    spec s{.payload = 40};
    auto frag = build(s);
    put16(frag.f, frag.l3 + 6, 0x2000);
    auto before = frag.f;
    EXPECT_EQ(set_partial_checksum(frag.f), csum_result::not_l4);
    EXPECT_EQ(frag.f, before);
    auto big = build(s);
    put16(big.f, big.l3 + 2, 60000);
    before = big.f;
    EXPECT_EQ(set_partial_checksum(big.f), csum_result::malformed);
    EXPECT_EQ(big.f, before);
    bytes tiny(13);
    EXPECT_EQ(set_partial_checksum(tiny), csum_result::malformed);
}

// ------------------------------------------------------------- segment_tcp

struct collected {
    std::vector<bytes> segs;
    segment_stats st;
};

collected run(std::span<const std::byte> f, std::uint8_t type, std::uint16_t mss, std::size_t scratch_size) {
    bytes scratch(scratch_size);
    collected c;
    c.st = segment_tcp(f, type, mss, scratch, [&](std::span<const std::byte> seg) {
        // The segment lives in the scratch buffer.
        EXPECT_GE(seg.data(), scratch.data());
        EXPECT_LE(seg.data() + seg.size(), scratch.data() + scratch.size());
        c.segs.emplace_back(seg.begin(), seg.end());
        return true;
    });
    return c;
}

// Verify every segment of `b` (built from `s`) independently.
void verify_segments(const built& b, const spec& s, std::uint16_t mss, const collected& c) {
    ASSERT_EQ(c.st.result, gso_result::ok);
    const std::size_t want = s.payload == 0 ? 1 : (s.payload + mss - 1) / mss;
    ASSERT_EQ(c.segs.size(), want);
    ASSERT_EQ(c.st.segments, want);
    const std::size_t hdr = b.hdr, l3 = b.l3, l4 = b.l4;
    bytes joined;
    std::uint32_t next_seq = s.seq;
    for (std::size_t i = 0; i < c.segs.size(); ++i) {
        SCOPED_TRACE(i);
        const bytes& g = c.segs[i];
        const bool first = i == 0, last = i + 1 == c.segs.size();
        const std::size_t n = last ? s.payload - i * mss : mss;
        ASSERT_EQ(g.size(), hdr + n);
        // L2 header identical.
        EXPECT_TRUE(std::equal(g.begin(), g.begin() + static_cast<std::ptrdiff_t>(l3), b.f.begin()));
        const std::size_t l4_len = hdr - l4 + n;
        if (!s.v6) {
            EXPECT_EQ(get16(g, l3 + 2), b.ip_hlen + l4_len);
            EXPECT_EQ(get16(g, l3 + 4), static_cast<std::uint16_t>(s.ip_id + i));
            EXPECT_TRUE(ipv4_header_verifies(g, l3, b.ip_hlen));
            // Everything else in the IPv4 header (version, tos, flags, ttl,
            // proto, addresses, options) is the original's.
            for (std::size_t k = 0; k < b.ip_hlen; ++k)
                if (k < 2 || k > 5) {
                    if (k == 10 || k == 11) continue;
                    EXPECT_EQ(g[l3 + k], b.f[l3 + k]) << "ip byte " << k;
                }
        } else {
            EXPECT_EQ(get16(g, l3 + 4), b.ip_hlen - 40 + l4_len);
            for (std::size_t k = 0; k < b.ip_hlen; ++k)
                if (k != 4 && k != 5) { EXPECT_EQ(g[l3 + k], b.f[l3 + k]) << "ip byte " << k; }
        }
        // TCP: seq contiguous, flags, all else (ports, ack, doff, window,
        // urgent pointer, options) unchanged, checksum valid.
        EXPECT_EQ(get32(g, l4 + 4), next_seq);
        next_seq += static_cast<std::uint32_t>(n);
        const auto fl = std::to_integer<std::uint8_t>(g[l4 + 13]);
        std::uint8_t expect = s.flags;
        if (!last) expect &= static_cast<std::uint8_t>(~(f_fin | f_psh));
        if (!first) expect &= static_cast<std::uint8_t>(~f_cwr);
        EXPECT_EQ(fl, expect);
        for (std::size_t k = 0; k < hdr - l4; ++k)
            if ((k < 4 || k > 7) && k != 13 && k != 16 && k != 17) { EXPECT_EQ(g[l4 + k], b.f[l4 + k]) << "tcp byte " << k; }
        EXPECT_TRUE(l4_verifies(g, l3, s.v6, l4, l4_len, tcp));
        joined.insert(joined.end(), g.begin() + static_cast<std::ptrdiff_t>(hdr), g.end());
    }
    ASSERT_EQ(joined.size(), s.payload);
    EXPECT_TRUE(std::equal(joined.begin(), joined.end(), b.f.begin() + static_cast<std::ptrdiff_t>(hdr)));
}

// The largest payload the IP length field allows (no IPv6 extension headers).
std::size_t max_payload(const spec& s) {
    const std::size_t tcp_hdr = 20 + s.tcp_opts;
    return s.v6 ? 65535 - tcp_hdr : 65535 - 20 - s.ip_opts - tcp_hdr;
}

TEST(SegmentTcp, SuperFramesOf64KiB) {
    for (bool v6 : {false, true}) {
        for (std::uint16_t mss : {1448, 1460, 1}) {
            spec s{.v6 = v6, .tcp_opts = 12, .flags = f_ack | f_psh | f_fin | f_cwr | f_ece, .seed = mss + 7u};
            s.payload = max_payload(s);
            const auto b = build(s);
            ASSERT_GE(b.f.size(), 65536u);
            SCOPED_TRACE(testing::Message() << v6 << " mss " << mss);
            verify_segments(b, s, mss, run(b.f, v6 ? tcpv6 : tcpv4, mss, b.hdr + mss));
        }
    }
}

TEST(SegmentTcp, PayloadEqualBelowAndNotAMultipleOfMss) {
    unsigned seed = 300;
    for (bool v6 : {false, true}) {
        for (std::size_t payload : {0u, 1u, 999u, 1000u, 1001u, 2999u, 3000u, 3001u, 12345u}) {
            spec s{.v6 = v6, .payload = payload, .flags = f_ack | f_psh | f_cwr, .seed = ++seed};
            const auto b = build(s);
            SCOPED_TRACE(testing::Message() << v6 << " payload " << payload);
            const auto c = run(b.f, v6 ? tcpv6 : tcpv4, 1000, b.hdr + 1000);
            verify_segments(b, s, 1000, c);
            if (payload <= 1000) {
                // One segment: the original frame (padding aside) with a complete checksum.
                ASSERT_EQ(c.segs.size(), 1u);
                auto ref = b.f;
                ASSERT_EQ(complete_l4_checksum(ref), csum_result::done);
                EXPECT_TRUE(std::equal(c.segs[0].begin(), c.segs[0].end(), ref.begin()));
            }
        }
    }
}

TEST(SegmentTcp, HeadersOptionsVlanExtensionsAndPaddingAreReplicated) {
    const spec cases[] = {
        {.vlan = true, .payload = 5000, .seed = 1},
        {.ip_opts = 40, .tcp_opts = 40, .payload = 5000, .seed = 2},
        {.vlan = true, .ip_opts = 8, .tcp_opts = 20, .payload = 4097, .pad = 6, .seed = 3},
        {.v6 = true, .vlan = true, .payload = 5000, .seed = 4},
        {.v6 = true, .v6_ext = 3, .tcp_opts = 12, .payload = 5000, .pad = 3, .seed = 5},
        {.v6 = true, .v6_ext = 1, .tcp_opts = 40, .payload = 1, .seed = 6},
    };
    for (const auto& s : cases) {
        SCOPED_TRACE(s.seed);
        const auto b = build(s);
        verify_segments(b, s, 536, run(b.f, s.v6 ? tcpv6 : tcpv4, 536, segment_scratch_size(536)));
    }
}

TEST(SegmentTcp, FlagsAndIdsAcrossWraparound) {
    // SYN/URG/RST-like bits other than FIN/PSH/CWR are copied to every segment;
    // the IPv4 id and the sequence number wrap.
    spec s{.payload = 4000, .flags = f_syn | f_urg | f_ack | f_fin | f_psh | f_cwr | f_ece, .seq = 0xFFFFF800,
           .ip_id = 0xFFFE};
    const auto b = build(s);
    const auto c = run(b.f, tcpv4, 1000, 2000);
    verify_segments(b, s, 1000, c);
    ASSERT_EQ(c.segs.size(), 4u);
    EXPECT_EQ(get16(c.segs[2], b.l3 + 4), 0u);
    EXPECT_EQ(get32(c.segs[3], b.l4 + 4), 3000u - 2048u);  // wrapped
    // Without FIN/PSH/CWR in the input, none appear anywhere.
    spec plain{.payload = 2500, .flags = f_ack};
    const auto p = build(plain);
    for (const auto& g : run(p.f, tcpv4, 1000, 2000).segs) EXPECT_EQ(std::to_integer<unsigned>(g[p.l4 + 13]), f_ack);
}

TEST(SegmentTcp, InputChecksumFieldIsIgnored) {
    spec s{.v6 = true, .payload = 3000};
    auto b = build(s);
    const auto garbage = run(b.f, tcpv6, 1400, 2000);
    ASSERT_EQ(set_partial_checksum(b.f), csum_result::done);
    const auto partial = run(b.f, tcpv6, 1400, 2000);
    EXPECT_EQ(garbage.segs, partial.segs);
    verify_segments(b, s, 1400, partial);
}

TEST(SegmentTcp, Errors) {
    spec s{.payload = 3000};
    const auto v4 = build(s);
    spec s6{.v6 = true, .payload = 3000};
    const auto v6 = build(s6);
    auto expect_err = [](std::span<const std::byte> f, std::uint8_t type, std::uint16_t mss, std::size_t room,
                         gso_result want) {
        const auto c = run(f, type, mss, room);
        EXPECT_EQ(c.st.result, want);
        EXPECT_EQ(c.st.segments, 0u);
        EXPECT_TRUE(c.segs.empty());
    };
    expect_err(v4.f, tcpv4, 0, 4096, gso_result::bad_mss);
    expect_err(v6.f, tcpv6, 0, 4096, gso_result::bad_mss);
    spec u{.proto = udp, .payload = 3000};
    expect_err(build(u).f, tcpv4, 1000, 4096, gso_result::not_tcp);
    auto frag = build(s);
    put16(frag.f, frag.l3 + 6, 0x2000);
    expect_err(frag.f, tcpv4, 1000, 4096, gso_result::not_tcp);
    expect_err(v6.f, tcpv4, 1000, 4096, gso_result::type_mismatch);
    expect_err(v4.f, tcpv6, 1000, 4096, gso_result::type_mismatch);
    for (std::uint8_t t : {0, 3, 255}) expect_err(v4.f, t, 1000, 4096, gso_result::type_mismatch);
    // Truncated TCP header: the IP packet ends inside it, or doff says so.
    auto short_tcp = build(s);
    put16(short_tcp.f, short_tcp.l3 + 2, 20 + 12);
    expect_err(short_tcp.f, tcpv4, 1000, 4096, gso_result::malformed);
    expect_err(std::span(v4.f).first(v4.l4 + 10), tcpv4, 1000, 4096, gso_result::malformed);
    spec tiny{.payload = 8};
    auto doff = build(tiny);
    doff.f[doff.l4 + 12] = std::byte{0xF0};  // 60-byte header in a 28-byte segment
    expect_err(doff.f, tcpv4, 1000, 4096, gso_result::malformed);
    doff.f[doff.l4 + 12] = std::byte{0x40};  // 16 < 20
    expect_err(doff.f, tcpv4, 1000, 4096, gso_result::malformed);
    expect_err(std::span(v4.f).first(v4.f.size() - 1), tcpv4, 1000, 4096, gso_result::malformed);
    // Scratch: hdr + min(mss, payload) bytes are needed, and enough.
    expect_err(v4.f, tcpv4, 1000, v4.hdr + 999, gso_result::no_room);
    EXPECT_EQ(run(v4.f, tcpv4, 1000, v4.hdr + 1000).st.result, gso_result::ok);
    spec small{.payload = 100};
    const auto sm = build(small);
    expect_err(sm.f, tcpv4, 1000, sm.hdr + 99, gso_result::no_room);
    EXPECT_EQ(run(sm.f, tcpv4, 1000, sm.hdr + 100).st.result, gso_result::ok);
    expect_err(v4.f, tcpv4, 1000, 0, gso_result::no_room);
    // Headers beyond max_gso_header_len (IPv6 extension headers here).
    spec longh{.v6 = true, .v6_ext = 2, .payload = 3000, .v6_ext_grow = 10};
    const auto lh = build(longh);
    ASSERT_GT(lh.hdr, max_gso_header_len);
    ASSERT_TRUE(locate_l4(lh.f));
    expect_err(lh.f, tcpv6, 1000, 65536, gso_result::header_too_long);
}

TEST(SegmentTcp, EmitReturningFalseStops) {
    spec s{.payload = 10000};
    const auto b = build(s);
    bytes scratch(2048);
    for (unsigned stop_at : {1u, 3u, 10u}) {
        unsigned calls = 0;
        const auto st = segment_tcp(b.f, tcpv4, 1000, scratch, [&](std::span<const std::byte>) {
            return ++calls < stop_at;
        });
        EXPECT_EQ(st.result, gso_result::stopped);
        EXPECT_EQ(st.segments, stop_at);
        EXPECT_EQ(calls, stop_at);
    }
    // A const callable object works too (function_ref binds without copying).
    struct counter {
        unsigned* n;
        bool operator()(std::span<const std::byte>) const {
            ++*n;
            return true;
        }
    };
    unsigned n = 0;
    const counter cnt{&n};
    EXPECT_EQ(segment_tcp(b.f, tcpv4, 1000, scratch, cnt).result, gso_result::ok);
    EXPECT_EQ(n, 10u);
}

// ------------------------------------------------------------- robustness

// Any frame, any verdict; never a crash or an out-of-bounds access (the
// sanitizer build checks the latter). What is emitted is always a TCP frame
// that locate_l4 accepts, no longer than mss of payload, with a valid checksum.
TEST(OffloadRobustness, RandomAndMutatedFrames) {
    std::mt19937 rng(2024);
    bytes scratch(segment_scratch_size(2048));
    unsigned ok = 0;
    for (int it = 0; it < 20000; ++it) {
        bytes f;
        if (it % 4 == 0) {
            f.resize(rng() % 300);
            for (auto& x : f) x = static_cast<std::byte>(rng());
            if (f.size() >= 14 && rng() % 2) put16(f, 12, rng() % 2 ? 0x0800 : 0x86DD);
        } else {
            spec s{.v6 = rng() % 2 == 0, .vlan = rng() % 4 == 0, .proto = rng() % 5 == 0 ? udp : tcp,
                   .payload = rng() % 3000, .flags = static_cast<std::uint8_t>(rng()), .seed = static_cast<unsigned>(rng())};
            if (s.v6) s.v6_ext = rng() % 4; else s.ip_opts = (rng() % 11) * 4;
            s.tcp_opts = (rng() % 11) * 4;
            f = build(s).f;
            const unsigned flips = rng() % 4;
            for (unsigned k = 0; k < flips && !f.empty(); ++k)
                f[rng() % std::min<std::size_t>(f.size(), 140)] = static_cast<std::byte>(rng());
            if (rng() % 4 == 0) f.resize(rng() % (f.size() + 1));
        }
        const auto loc = locate_l4(f);
        bytes g = f;
        const auto pr = set_partial_checksum(g);
        if (loc) { EXPECT_EQ(pr, csum_result::done); }
        if (pr != csum_result::done) { EXPECT_EQ(g, f); }
        const std::uint16_t mss = rng() % 8 == 0 ? static_cast<std::uint16_t>(rng() % 4) : static_cast<std::uint16_t>(rng() % 2048);
        const auto room = rng() % 8 == 0 ? std::span(scratch).first(rng() % scratch.size()) : std::span(scratch);
        const auto st = segment_tcp(f, rng() % 2 ? tcpv4 : tcpv6, mss, room, [&](std::span<const std::byte> seg) {
            EXPECT_GE(seg.data(), room.data());
            EXPECT_LE(seg.data() + seg.size(), room.data() + room.size());
            const auto sl = locate_l4(seg);
            EXPECT_TRUE(sl);
            if (!sl) return false;
            EXPECT_EQ(sl.info.proto, tcp);
            EXPECT_LE(sl.info.l4_offset + sl.info.l4_len - sl.info.hdr_len, mss);
            EXPECT_TRUE(l4_verifies(seg, sl.info.l3_offset, sl.info.ip_version == 6, sl.info.l4_offset,
                                    sl.info.l4_len, tcp));
            if (sl.info.ip_version == 4) {
                EXPECT_TRUE(ipv4_header_verifies(seg, sl.info.l3_offset, sl.info.l4_offset - sl.info.l3_offset));
            }
            return true;
        });
        if (st.result == gso_result::ok) {
            ++ok;
            EXPECT_TRUE(loc);
            EXPECT_GE(st.segments, 1u);
        } else {
            EXPECT_EQ(st.segments, 0u);
        }
    }
    EXPECT_GT(ok, 1000u);  // the mutations leave plenty of frames valid
}

}  // namespace
}  // namespace vifkit::wire
