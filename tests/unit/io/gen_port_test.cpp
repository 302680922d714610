// The "gen:" traffic-source port: frame layout, flows, count, spec errors.
#include <gtest/gtest.h>
#include <poll.h>

#include <cstring>
#include <set>
#include <vector>

#include "vifkit/io/packet_port.hpp"

namespace vifkit::io {
namespace {

std::uint16_t be16(const std::byte* p) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) << 8 | std::to_integer<unsigned>(p[1]));
}

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

// One's-complement sum over an IPv4 header with its checksum: 0xFFFF when valid.
std::uint16_t ip_sum(const std::byte* h) {
    std::uint32_t s = 0;
    for (int i = 0; i < 20; i += 2) s += be16(h + i);
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return static_cast<std::uint16_t>(s);
}

TEST(GenPort, ProducesValidIpv4UdpFramesOfTheRequestedSize) {
    for (std::size_t size : {64u, 1500u, 65535u}) {
        std::string err;
        auto p = open_port("gen:" + std::to_string(size), &err);
        ASSERT_TRUE(p) << err;
        EXPECT_EQ(p->describe(), "gen:" + std::to_string(size));
        EXPECT_TRUE(readable(p->fd()));
        std::vector<std::byte> buf(max_frame_size);
        for (std::uint64_t seq = 0; seq < 3; ++seq) {
            ASSERT_EQ(p->recv(buf), static_cast<long>(size));
            EXPECT_EQ(be16(buf.data() + 12), 0x0800);                 // IPv4
            EXPECT_EQ(be16(buf.data() + 16), std::min<std::size_t>(size - 14, 0xFFFF));  // total length
            EXPECT_EQ(std::to_integer<unsigned>(buf[23]), 17u);         // UDP
            EXPECT_EQ(ip_sum(buf.data() + 14), 0xFFFF) << "size " << size;
            EXPECT_EQ(be16(buf.data() + 38), size - 34);               // UDP length
            std::uint64_t got;
            std::memcpy(&got, buf.data() + 42, sizeof got);
            EXPECT_EQ(got, seq);
        }
        EXPECT_EQ(p->get_stats().rx_frames, 3u);
        EXPECT_EQ(p->get_stats().rx_bytes, 3 * size);
    }
}

TEST(GenPort, CyclesSourceAddressesOverFlows) {
    auto p = open_port("gen:64:flows=5", nullptr);
    ASSERT_TRUE(p);
    std::vector<std::byte> buf(128);
    std::set<std::uint16_t> srcs;
    for (int i = 0; i < 20; ++i) {
        ASSERT_EQ(p->recv(buf), 64);
        srcs.insert(be16(buf.data() + 14 + 14));  // low half of the source address
    }
    EXPECT_EQ(srcs.size(), 5u);
}

TEST(GenPort, StopsAfterCountAndGoesQuiet) {
    auto p = open_port("gen:60:count=3", nullptr);
    ASSERT_TRUE(p);
    std::vector<std::byte> buf(128);
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(readable(p->fd()));
        EXPECT_EQ(p->recv(buf), 60);
    }
    EXPECT_FALSE(readable(p->fd()));
    EXPECT_EQ(p->recv(buf), 0);
}

TEST(GenPort, ShortBufferIsAnErrorNotAnOverrun) {
    auto p = open_port("gen:1500", nullptr);
    ASSERT_TRUE(p);
    std::vector<std::byte> buf(1600, std::byte{0xAA});
    EXPECT_EQ(p->recv(std::span(buf.data(), 1000)), 0);
    EXPECT_EQ(buf[0], std::byte{0xAA});
    EXPECT_EQ(p->get_stats().rx_errors, 1u);
}

TEST(GenPort, SendDiscardsAndCounts) {
    auto p = open_port("gen:64", nullptr);
    ASSERT_TRUE(p);
    std::vector<std::byte> f(100);
    EXPECT_TRUE(p->send(f));
    EXPECT_EQ(p->get_stats().tx_frames, 1u);
    EXPECT_EQ(p->get_stats().tx_bytes, 100u);
}

TEST(GenPort, BadSpecsAreRefusedWithAReason) {
    for (const char* spec : {"gen:", "gen:13", "gen:65550", "gen:x", "gen:64:flows=0", "gen:64:flows=",
                             "gen:64:count=-1", "gen:64:bogus=1", "gen:64:"}) {
        std::string err;
        EXPECT_EQ(open_port(spec, &err), nullptr) << spec;
        EXPECT_NE(err.find("gen:"), std::string::npos) << spec << ": " << err;
    }
    EXPECT_NE(usage().find("gen:SIZE"), std::string::npos);
}

}  // namespace
}  // namespace vifkit::io
