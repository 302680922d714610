// with_capture(): the pcap file must read back, through libpcap itself, as exactly the
// frames that went through the port.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <algorithm>

#include "io_test_helpers.hpp"
#include "vifkit/io/packet_port.hpp"

namespace vifkit::io {
namespace {

using test::make_frame;
using frames = std::vector<std::vector<std::byte>>;

// Reads every record of a pcap file with libpcap. Fails the test on a bad file.
frames read_pcap(const std::string& path) {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    pcap_t* p = pcap_open_offline(path.c_str(), errbuf);
    EXPECT_NE(p, nullptr) << errbuf;
    if (p == nullptr) return {};
    EXPECT_EQ(pcap_datalink(p), DLT_EN10MB);
    frames out;
    pcap_pkthdr* hdr = nullptr;
    const u_char* data = nullptr;
    while (pcap_next_ex(p, &hdr, &data) == 1) {
        EXPECT_EQ(hdr->caplen, hdr->len);
        const auto* b = reinterpret_cast<const std::byte*>(data);
        out.emplace_back(b, b + hdr->caplen);
    }
    pcap_close(p);
    return out;
}

class Capture : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_TRUE(dir_.ok()); }
    test::temp_dir dir_;
    std::vector<std::byte> buf_ = std::vector<std::byte>(max_frame_size);
};

TEST_F(Capture, RecordsReceivedAndSentFramesInOrder) {
    const std::string pcap = dir_.file("both.pcap");
    auto [a, b] = make_mem_pair();
    std::string err;
    auto cap = with_capture(std::move(a), pcap, &err);
    ASSERT_TRUE(cap) << err;
    frames expect;
    for (std::uint32_t i = 0; i < 100; ++i) {
        auto out = make_frame(i, test::frame_size_for(i));
        ASSERT_TRUE(cap->send(out));
        expect.push_back(std::move(out));
        auto in = make_frame(500 + i, test::frame_size_for(i + 50));
        ASSERT_TRUE(b->send(in));
        ASSERT_EQ(cap->recv(buf_), static_cast<long>(in.size()));
        EXPECT_TRUE(std::equal(in.begin(), in.end(), buf_.begin()));
        expect.push_back(std::move(in));
    }
    auto big = make_frame(999, max_frame_size);
    ASSERT_TRUE(b->send(big));
    ASSERT_EQ(cap->recv(buf_), static_cast<long>(max_frame_size));
    expect.push_back(std::move(big));
    // The decorator is transparent for stats.
    EXPECT_EQ(cap->get_stats().tx_frames, 100u);
    EXPECT_EQ(cap->get_stats().rx_frames, 101u);
    EXPECT_NE(cap->describe().find("mem:a"), std::string::npos);
    cap.reset();  // closes and flushes the file
    EXPECT_EQ(read_pcap(pcap), expect);
}

TEST_F(Capture, FileIsFlushedOnceThePortIsDrained) {
    const std::string pcap = dir_.file("idle.pcap");
    auto [a, b] = make_mem_pair();
    auto cap = with_capture(std::move(b), pcap, nullptr);
    ASSERT_TRUE(cap);
    const auto f1 = make_frame(1, 60);
    const auto f2 = make_frame(2, 70);
    ASSERT_TRUE(a->send(f1));
    ASSERT_TRUE(a->send(f2));
    EXPECT_EQ(cap->recv(buf_), 60);
    EXPECT_EQ(cap->recv(buf_), 70);
    EXPECT_EQ(cap->recv(buf_), 0);  // idle: written out now, while the port lives
    EXPECT_EQ(read_pcap(pcap), (frames{f1, f2}));
}

TEST_F(Capture, DroppedSendsAndOversizedFramesAreNotRecorded) {
    const std::string pcap = dir_.file("drops.pcap");
    std::string err;
    auto cap = with_capture(open_port("unix:" + dir_.file("s"), &err), pcap, &err);
    ASSERT_TRUE(cap) << err;
    EXPECT_FALSE(cap->send(make_frame(1, 60)));  // no peer yet: dropped
    auto peer = open_port("unix-connect:" + dir_.file("s"), &err);
    ASSERT_TRUE(peer) << err;
    ASSERT_TRUE(peer->send(make_frame(2, 300)));
    const auto ok = make_frame(3, 100);
    ASSERT_TRUE(peer->send(ok));
    EXPECT_EQ(test::recv_wait(*cap, std::span(buf_).first(200), 50), 100);
    EXPECT_EQ(cap->get_stats().tx_drops, 1u);
    EXPECT_EQ(cap->get_stats().rx_errors, 1u);
    cap.reset();
    EXPECT_EQ(read_pcap(pcap), (frames{ok}));
}

TEST_F(Capture, UnwritablePathFailsWithMessage) {
    auto [a, b] = make_mem_pair();
    std::string err;
    EXPECT_EQ(with_capture(std::move(a), dir_.file("no/such/dir.pcap"), &err), nullptr);
    EXPECT_FALSE(err.empty());
    EXPECT_EQ(with_capture(nullptr, dir_.file("x.pcap"), &err), nullptr);
}

}  // namespace
}  // namespace vifkit::io
