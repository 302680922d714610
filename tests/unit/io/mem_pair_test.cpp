// make_mem_pair(): the in-process port pair every other test layer builds on.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "io_test_helpers.hpp"
#include "vifkit/io/packet_port.hpp"

namespace vifkit::io {
namespace {

using test::frame_size_for;
using test::make_frame;

TEST(MemPair, ManyFramesOfEverySizeArriveIntactAndInOrder) {
    auto [a, b] = make_mem_pair();
    ASSERT_TRUE(a && b);
    std::vector<std::byte> buf(max_frame_size);
    constexpr std::uint32_t total = 2048;  // a whole number of batches
    constexpr std::uint32_t batch = 32;  // stays well inside the socket buffer
    std::uint64_t bytes = 0;
    for (std::uint32_t base = 0; base < total; base += batch) {
        for (std::uint32_t i = base; i < base + batch; ++i) {
            ASSERT_TRUE(a->send(make_frame(i, frame_size_for(i)))) << "frame " << i;
            bytes += frame_size_for(i);
        }
        for (std::uint32_t i = base; i < base + batch; ++i) {
            const long n = b->recv(buf);
            ASSERT_EQ(n, static_cast<long>(frame_size_for(i))) << "frame " << i;
            const auto expect = make_frame(i, frame_size_for(i));
            ASSERT_TRUE(std::equal(expect.begin(), expect.end(), buf.begin())) << "frame " << i;
        }
    }
    EXPECT_EQ(b->recv(buf), 0);  // drained
    const auto tx = a->get_stats();
    const auto rx = b->get_stats();
    EXPECT_EQ(tx.tx_frames, total);
    EXPECT_EQ(tx.tx_bytes, bytes);
    EXPECT_EQ(rx.rx_frames, total);
    EXPECT_EQ(rx.rx_bytes, bytes);
    EXPECT_EQ(rx.rx_errors, 0u);
    EXPECT_EQ(tx.tx_drops, 0u);
}

TEST(MemPair, BothDirectionsAndLargestFrame) {
    auto [a, b] = make_mem_pair();
    ASSERT_TRUE(a && b);
    std::vector<std::byte> buf(max_frame_size);
    const auto big = make_frame(7, max_frame_size);
    ASSERT_TRUE(b->send(big));
    ASSERT_EQ(a->recv(buf), static_cast<long>(max_frame_size));
    EXPECT_TRUE(std::equal(big.begin(), big.end(), buf.begin()));
    const auto small = make_frame(8, 60);
    ASSERT_TRUE(a->send(small));
    ASSERT_EQ(b->recv(buf), 60);
    EXPECT_TRUE(std::equal(small.begin(), small.end(), buf.begin()));
}

TEST(MemPair, FdTurnsReadableOnlyWhenAFrameIsQueued) {
    auto [a, b] = make_mem_pair();
    ASSERT_TRUE(a && b);
    EXPECT_FALSE(test::wait_readable(b->fd(), 0));
    ASSERT_TRUE(a->send(make_frame(1, 64)));
    EXPECT_TRUE(test::wait_readable(b->fd(), 1000));
    std::array<std::byte, 128> buf{};
    EXPECT_EQ(b->recv(buf), 64);
    EXPECT_FALSE(test::wait_readable(b->fd(), 0));
}

TEST(MemPair, OversizedFrameIsDroppedCountedAndNeverOverflows) {
    auto [a, b] = make_mem_pair();
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(a->send(make_frame(1, 1514)));
    ASSERT_TRUE(a->send(make_frame(2, 100)));
    // Give recv() only the first 100 bytes of a guarded buffer.
    std::array<std::byte, 256> guarded{};
    std::fill(guarded.begin(), guarded.end(), std::byte{0xa5});
    EXPECT_EQ(b->recv(std::span(guarded).first(100)), 0);
    EXPECT_TRUE(std::all_of(guarded.begin() + 100, guarded.end(),
                            [](std::byte x) { return x == std::byte{0xa5}; }));
    EXPECT_EQ(b->get_stats().rx_errors, 1u);
    EXPECT_EQ(b->get_stats().rx_frames, 0u);
    // The oversized frame was consumed whole: the next frame is intact, and a frame
    // exactly as long as the buffer is not mistaken for a truncated one.
    ASSERT_EQ(b->recv(std::span(guarded).first(100)), 100);
    const auto expect = make_frame(2, 100);
    EXPECT_TRUE(std::equal(expect.begin(), expect.end(), guarded.begin()));
    EXPECT_EQ(b->get_stats().rx_errors, 1u);
    EXPECT_EQ(b->get_stats().rx_frames, 1u);
}

TEST(MemPair, ZeroLengthFrameIsAnErrorNotEndOfStream) {
    auto [a, b] = make_mem_pair();
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(a->send({}));
    ASSERT_TRUE(a->send(make_frame(3, 20)));
    std::array<std::byte, 64> buf{};
    EXPECT_EQ(b->recv(buf), 0);
    EXPECT_EQ(b->get_stats().rx_errors, 1u);
    EXPECT_EQ(b->recv(buf), 20);  // the port still works
}

TEST(MemPair, VanishedPeerIsReportedOnceAndSendsDrop) {
    auto [a, b] = make_mem_pair();
    ASSERT_TRUE(a && b);
    a.reset();
    std::array<std::byte, 64> buf{};
    EXPECT_EQ(b->recv(buf), -ECONNRESET);
    EXPECT_EQ(b->recv(buf), -ECONNRESET);
    EXPECT_EQ(b->get_stats().rx_errors, 1u);
    EXPECT_FALSE(b->send(make_frame(4, 60)));
    EXPECT_EQ(b->get_stats().tx_drops, 1u);
}

TEST(MemPair, FullQueueDropsAndCounts) {
    auto [a, b] = make_mem_pair();
    ASSERT_TRUE(a && b);
    const auto frame = make_frame(5, 1514);
    unsigned sent = 0;
    // The socket buffer holds a few hundred KiB; 10000 frames cannot all fit.
    for (int i = 0; i < 10000 && a->send(frame); ++i) ++sent;
    ASSERT_LT(sent, 10000u);
    EXPECT_EQ(a->get_stats().tx_drops, 1u);
    EXPECT_EQ(a->get_stats().tx_frames, sent);
    std::vector<std::byte> buf(max_frame_size);
    unsigned received = 0;
    while (b->recv(buf) > 0) ++received;
    EXPECT_EQ(received, sent);
}

}  // namespace
}  // namespace vifkit::io
