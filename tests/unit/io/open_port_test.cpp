// open_port() spec parsing, usage() text and the "null" port.
#include <gtest/gtest.h>

#include <array>

#include "io_test_helpers.hpp"
#include "vifkit/io/packet_port.hpp"

namespace vifkit::io {
namespace {

TEST(OpenPort, NullDiscardsEverythingAndNeverReceives) {
    std::string err;
    auto p = open_port("null", &err);
    ASSERT_TRUE(p) << err;
    EXPECT_EQ(p->fd(), -1);
    EXPECT_EQ(p->describe(), "null");
    EXPECT_TRUE(p->send(test::make_frame(1, 60)));
    EXPECT_TRUE(p->send(test::make_frame(2, 1514)));
    std::array<std::byte, 64> buf{};
    EXPECT_EQ(p->recv(buf), 0);
    const auto s = p->get_stats();
    EXPECT_EQ(s.tx_frames, 2u);
    EXPECT_EQ(s.tx_bytes, 60u + 1514u);
    EXPECT_EQ(s.rx_frames, 0u);
    EXPECT_EQ(s.tx_drops, 0u);
}

TEST(OpenPort, UnknownSpecFailsAndShowsUsage) {
    for (const char* spec : {"", "tap", "bogus:x", "NULL", "unixx:/tmp/a"}) {
        std::string err;
        EXPECT_EQ(open_port(spec, &err), nullptr) << spec;
        EXPECT_NE(err.find("unix-connect:PATH"), std::string::npos) << spec << ": " << err;
    }
    EXPECT_EQ(open_port("bogus", nullptr), nullptr);  // error pointer is optional
}

TEST(OpenPort, UsageNamesEverySpecForm) {
    const std::string u = usage();
    for (const char* form : {"tap:NAME", "mtu=N", "unix:PATH", "unix-connect:PATH", "null"}) {
        EXPECT_NE(u.find(form), std::string::npos) << form;
    }
}

TEST(OpenPort, TapNameLongerThanIfnamsizIsRejectedBeforeTouchingTheKernel) {
    std::string err;
    EXPECT_EQ(open_port("tap:" + std::string(16, 'x'), &err), nullptr);
    EXPECT_NE(err.find("interface name"), std::string::npos) << err;
    EXPECT_EQ(open_port("tap:", &err), nullptr);
    EXPECT_NE(err.find("interface name"), std::string::npos) << err;
}

}  // namespace
}  // namespace vifkit::io
