// gtest expectations on emu_harness results, shared by the integration tests.
#pragma once
#include <gtest/gtest.h>

#include "emu_harness.hpp"

namespace vifkit::test {

// A pump() that delivered every one of `n` frames, intact and in order.
inline void expect_clean(const traffic_result& r, std::uint64_t n) {
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.sent, n);
    EXPECT_EQ(r.received, n);
    EXPECT_EQ(r.corrupted, 0u);
    EXPECT_EQ(r.out_of_order, 0u);
}

}  // namespace vifkit::test
