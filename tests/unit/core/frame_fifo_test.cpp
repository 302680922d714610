// frame_fifo: the backend's per-queue rx backlog (byte arena, no allocation per frame).
#include "frame_fifo.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <vector>

namespace vifkit::core {
namespace {

std::vector<std::byte> frame(std::size_t len, unsigned seed) {
    std::vector<std::byte> f(len);
    for (std::size_t i = 0; i < len; ++i) f[i] = static_cast<std::byte>(seed * 31 + i);
    return f;
}

TEST(FrameFifo, KeepsOrderContentsAndMetadata) {
    frame_fifo q;
    q.reset(1 << 16, 8, 9000);
    for (unsigned i = 0; i < 5; ++i) ASSERT_TRUE(q.push(frame(60 + i, i), {i % 2 == 0, 3, i * 7}));
    EXPECT_EQ(q.size(), 5u);
    EXPECT_EQ(q.bytes(), 60u * 5 + 10);
    for (unsigned i = 0; i < 5; ++i) {
        const auto& e = q.front();
        ASSERT_EQ(e.len, 60 + i);
        const auto want = frame(60 + i, i);
        EXPECT_EQ(std::memcmp(q.data(e), want.data(), e.len), 0);
        EXPECT_EQ(e.m.has_hash, i % 2 == 0);
        EXPECT_EQ(e.m.hash, i * 7);
        q.pop();
    }
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.bytes(), 0u);
}

TEST(FrameFifo, RefusesWhenTheCapsAreReached) {
    frame_fifo q;
    q.reset(1000, 4, 1514);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(q.push(frame(10, 1), {}));
    EXPECT_TRUE(q.full());
    EXPECT_FALSE(q.push(frame(10, 1), {}));  // frame cap
    frame_fifo b;
    b.reset(1000, 64, 1514);
    ASSERT_TRUE(b.push(frame(999, 1), {}));
    ASSERT_TRUE(b.push(frame(1514, 2), {}));  // under the byte cap before the push: fits
    EXPECT_TRUE(b.full());
    EXPECT_FALSE(b.push(frame(1, 3), {}));  // byte cap
    EXPECT_FALSE(b.push({}, {}));           // empty frame
    frame_fifo c;
    c.reset(1000, 4, 100);
    EXPECT_FALSE(c.push(frame(101, 1), {}));  // oversized
}

// Random pushes and pops against a reference deque: the arena never hands out
// overlapping space (every frame comes back intact) and wraps correctly.
TEST(FrameFifo, RandomWorkloadMatchesAReferenceQueue) {
    frame_fifo q;
    q.reset(20000, 64, 9000);
    std::deque<std::vector<std::byte>> ref;
    std::mt19937 rng(7);
    unsigned seed = 0, refused = 0;
    for (int step = 0; step < 200000; ++step) {
        if (rng() % 2) {
            auto f = frame(1 + rng() % 9000, seed++);
            if (q.push(f, {})) {
                ref.push_back(std::move(f));
            } else {
                ++refused;
                EXPECT_TRUE(q.full() || q.bytes() + f.size() > 20000 - 1 + 9000 || !ref.empty());
            }
        } else if (!ref.empty()) {
            const auto& e = q.front();
            ASSERT_EQ(e.len, ref.front().size());
            ASSERT_EQ(std::memcmp(q.data(e), ref.front().data(), e.len), 0) << "step " << step;
            q.pop();
            ref.pop_front();
        }
        ASSERT_EQ(q.size(), ref.size());
    }
    EXPECT_GT(refused, 0u);
}

// A standing backlog that never empties cycles through the arena and never
// refuses a frame while it is far below the caps; once it empties, the pages
// past keep_bytes are given back.
TEST(FrameFifo, StandingBacklogNeverRefusesBelowTheCapsAndTrimsWhenEmpty) {
    frame_fifo q;
    q.reset(4u << 20, 1024, 65536);
    const auto f = frame(1500, 1);
    for (int i = 0; i < 16; ++i) ASSERT_TRUE(q.push(f, {}));
    for (int step = 0; step < 100000; ++step) {
        ASSERT_TRUE(q.push(f, {})) << "refused at step " << step << " with " << q.size() << " queued";
        q.pop();
    }
    EXPECT_GT(q.touched(), frame_fifo::keep_bytes);  // it walked the arena
    while (!q.empty()) q.pop();
    EXPECT_LE(q.touched(), frame_fifo::keep_bytes);
    EXPECT_TRUE(q.push(f, {}));
    EXPECT_EQ(std::memcmp(q.data(q.front()), f.data(), f.size()), 0);  // trimmed pages read back fine
}

TEST(FrameFifo, ReleaseFreesAndResetReuses) {
    frame_fifo q;
    q.reset(4096, 8, 1514);
    ASSERT_TRUE(q.push(frame(100, 1), {}));
    q.release();
    EXPECT_TRUE(q.empty());
    EXPECT_TRUE(q.full());  // no capacity until reset
    EXPECT_FALSE(q.push(frame(100, 1), {}));
    q.reset(4096, 8, 1514);
    EXPECT_TRUE(q.push(frame(100, 1), {}));
}

}  // namespace
}  // namespace vifkit::core
