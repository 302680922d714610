// core::credit_scheduler: the B/rate transmit limit (netif-spec §5.1), checked
// against Linux netback's credit rules (tx_add_credit: refill BYTES, cap at
// max(BYTES, 128 KiB)). Time is simulated: no test reads a clock.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>

#include "vifkit/core/credit.hpp"

namespace vifkit::core {
namespace {

using namespace std::chrono_literals;
using tp = credit_scheduler::time_point;
using wire::rate_limit;

const tp t0 = tp{} + 1000s;

// Send `pkt`-byte packets as fast as the scheduler allows during [from, until):
// on each refusal jump to next_refill(). Returns the bytes sent.
std::uint64_t saturate(credit_scheduler& cs, std::uint32_t pkt, tp from, tp until) {
    std::uint64_t sent = 0;
    tp now = from;
    for (int guard = 0; now < until; ++guard) {
        if (guard == 10'000'000) {  // a scheduler that never refuses would spin here
            ADD_FAILURE() << "no refusal after 10M packets";
            break;
        }
        if (cs.try_consume(pkt, now)) {
            sent += pkt;
            continue;
        }
        const tp next = cs.next_refill();
        EXPECT_GT(next, now) << "a refusal must point to a later time";
        if (next <= now) break;
        now = next;
    }
    return sent;
}

TEST(Credit, UnlimitedByDefaultAndAlwaysPasses) {
    credit_scheduler cs;
    EXPECT_TRUE(cs.unlimited());
    EXPECT_EQ(cs.limit(), std::nullopt);
    for (int i = 0; i < 1000; ++i) EXPECT_TRUE(cs.try_consume(UINT32_MAX, t0));
    EXPECT_TRUE(cs.try_consume(65535, tp{}));
    EXPECT_EQ(cs.remaining(), std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(cs.next_refill(), tp{});
}

TEST(Credit, ZeroFieldsMeanUnlimited) {
    credit_scheduler cs;
    cs.set(rate_limit{0, 1000});
    EXPECT_TRUE(cs.unlimited());
    cs.set(rate_limit{10000, 0});
    EXPECT_TRUE(cs.unlimited());
    EXPECT_TRUE(cs.try_consume(UINT32_MAX, t0));
}

TEST(Credit, StartsWithOnePeriodOfCreditAndTheLinuxBurstCap) {
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    EXPECT_FALSE(cs.unlimited());
    EXPECT_EQ(cs.remaining(), 10000u);
    EXPECT_EQ(cs.burst_cap(), 131072u);  // max(10000, 131072)
    cs.set(rate_limit{500000, 1000});
    EXPECT_EQ(cs.burst_cap(), 500000u);  // max(500000, 131072)
}

TEST(Credit, SpendsCreditThenRefuses) {
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(cs.try_consume(1000, t0)) << i;
    EXPECT_EQ(cs.remaining(), 0u);
    EXPECT_FALSE(cs.try_consume(1, t0));
    EXPECT_FALSE(cs.try_consume(1000, t0 + 999us));  // not a whole period yet
    EXPECT_EQ(cs.remaining(), 0u);                    // a refusal spends nothing
}

TEST(Credit, RefusalThenSuccessAtNextRefill) {
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    ASSERT_TRUE(cs.try_consume(9500, t0));
    ASSERT_FALSE(cs.try_consume(1000, t0 + 10us));
    const tp next = cs.next_refill();
    EXPECT_EQ(next, t0 + 1ms);
    EXPECT_FALSE(cs.try_consume(1000, next - 1ns));
    EXPECT_TRUE(cs.try_consume(1000, next));
    EXPECT_EQ(cs.remaining(), 500u + 10000u - 1000u);
}

TEST(Credit, NextRefillCountsThePeriodsTheRefusedPacketNeeds) {
    // 64 KiB GSO packet at 10000 bytes/ms: it needs 6 more refills from 10000.
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    ASSERT_FALSE(cs.try_consume(65536, t0));
    EXPECT_EQ(cs.next_refill(), t0 + 6ms);
    EXPECT_FALSE(cs.try_consume(65536, t0 + 5ms));  // 60000 < 65536
    EXPECT_EQ(cs.next_refill(), t0 + 6ms);
    EXPECT_TRUE(cs.try_consume(65536, t0 + 6ms));  // 70000
    EXPECT_EQ(cs.remaining(), 70000u - 65536u);
}

TEST(Credit, CreditNeverExceedsTheCapWhileIdle) {
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    ASSERT_TRUE(cs.try_consume(10000, t0));
    ASSERT_TRUE(cs.try_consume(0, t0 + 1h));  // an hour idle refills only up to the cap
    EXPECT_EQ(cs.remaining(), 131072u);
    EXPECT_TRUE(cs.try_consume(131072, t0 + 1h));
    EXPECT_FALSE(cs.try_consume(1, t0 + 1h));
}

TEST(Credit, ThroughputMatchesTheRateOverOneSecond) {
    // 10000 bytes / 1000 us = 10 MB/s: 1000-byte packets for a simulated second.
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    const std::uint64_t sent = saturate(cs, 1000, t0, t0 + 1s);
    EXPECT_NEAR(static_cast<double>(sent), 10'000'000.0, 100'000.0);
}

TEST(Credit, ThroughputHoldsWhenTheCallerRetriesLate) {
    // A loaded loop retries 3.7 ms late every time: whole periods still accrue
    // (Linux would lose the rest of each late window), so the rate holds.
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    std::uint64_t sent = 0;
    for (tp now = t0; now < t0 + 1s; now += 3700us)
        while (cs.try_consume(1000, now)) sent += 1000;
    EXPECT_NEAR(static_cast<double>(sent), 10'000'000.0, 100'000.0);
}

TEST(Credit, ThroughputWithOddSizesAndPeriods) {
    // 1500-byte frames at 62500 bytes / 50 ms (10 Mbit/s): 1.25 MB over 1 s, give
    // or take the initial period and one frame.
    credit_scheduler cs;
    cs.set(rate_limit{62500, 50000});
    const std::uint64_t sent = saturate(cs, 1500, t0, t0 + 1s);
    EXPECT_NEAR(static_cast<double>(sent), 1'250'000.0, 62'500.0 + 1500.0);
    EXPECT_LE(sent, 1'250'000u + 62'500u);
}

TEST(Credit, HugePacketAboveTheCapPassesWhenCreditIsFull) {
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    ASSERT_FALSE(cs.try_consume(200000, t0));  // 200000 > cap 131072
    // (131072 - 10000) / 10000 rounded up = 13 refills to fill the credit.
    EXPECT_EQ(cs.next_refill(), t0 + 13ms);
    EXPECT_FALSE(cs.try_consume(200000, t0 + 12ms));
    EXPECT_TRUE(cs.try_consume(200000, t0 + 13ms));
    EXPECT_EQ(cs.remaining(), 0u);  // emptied, no negative credit carried
    EXPECT_FALSE(cs.try_consume(1, t0 + 13ms));
    EXPECT_TRUE(cs.try_consume(1, t0 + 14ms));
}

TEST(Credit, MaximalPacketWithBytesAboveTheFloor) {
    credit_scheduler cs;
    cs.set(rate_limit{1'000'000, 1000});  // cap = BYTES = 1e6
    ASSERT_TRUE(cs.try_consume(1, t0));
    EXPECT_FALSE(cs.try_consume(UINT32_MAX, t0));
    EXPECT_EQ(cs.next_refill(), t0 + 1ms);
    EXPECT_TRUE(cs.try_consume(UINT32_MAX, t0 + 1ms));
    EXPECT_EQ(cs.remaining(), 0u);
}

TEST(Credit, RateChangeMidwayTakesEffectAndResetsToOnePeriod) {
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    const std::uint64_t first = saturate(cs, 1000, t0, t0 + 500ms);
    cs.set(rate_limit{20000, 1000});
    EXPECT_EQ(cs.remaining(), 20000u);  // a change restarts with one full period
    const std::uint64_t second = saturate(cs, 1000, t0 + 500ms, t0 + 1s);
    EXPECT_NEAR(static_cast<double>(first), 5'000'000.0, 50'000.0);
    EXPECT_NEAR(static_cast<double>(second), 10'000'000.0, 100'000.0);

    cs.set(rate_limit{1000, 1000});  // and down again
    const std::uint64_t third = saturate(cs, 1000, t0 + 1s, t0 + 2s);
    EXPECT_NEAR(static_cast<double>(third), 1'000'000.0, 10'000.0);
}

TEST(Credit, SettingTheSameLimitAgainGrantsNothing) {
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    ASSERT_TRUE(cs.try_consume(10000, t0));
    cs.set(rate_limit{10000, 1000});  // a spurious watch event
    EXPECT_EQ(cs.remaining(), 0u);
    EXPECT_FALSE(cs.try_consume(1, t0));
    EXPECT_EQ(cs.next_refill(), t0 + 1ms);
}

TEST(Credit, GoingUnlimitedAndBack) {
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    ASSERT_TRUE(cs.try_consume(10000, t0));
    ASSERT_FALSE(cs.try_consume(1, t0));
    cs.set(std::nullopt);
    EXPECT_TRUE(cs.unlimited());
    EXPECT_TRUE(cs.try_consume(UINT32_MAX, t0));
    cs.set(rate_limit{10000, 1000});
    EXPECT_EQ(cs.remaining(), 10000u);
    EXPECT_EQ(cs.next_refill(), tp{});  // not used since set(): retry any time
    EXPECT_TRUE(cs.try_consume(10000, t0 + 5s));
    EXPECT_FALSE(cs.try_consume(1, t0 + 5s));
    EXPECT_EQ(cs.next_refill(), t0 + 5s + 1ms);  // the window starts at first use
}

TEST(Credit, TimeGoingBackwardsGrantsNothingAndDoesNotUnderflow) {
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    ASSERT_TRUE(cs.try_consume(10000, t0 + 10s));
    EXPECT_FALSE(cs.try_consume(1, t0));         // 10 s earlier
    EXPECT_FALSE(cs.try_consume(1, tp{}));       // to the epoch
    EXPECT_FALSE(cs.try_consume(1, tp{} - 1h));  // and before it
    EXPECT_FALSE(cs.try_consume(1, tp::min()));
    EXPECT_EQ(cs.remaining(), 0u);  // no wrap-around into a huge credit
    // The window is left where it was: the next refill is still one period on.
    EXPECT_EQ(cs.next_refill(), t0 + 10s + 1ms);
    EXPECT_FALSE(cs.try_consume(1, t0 + 10s + 999us));
    EXPECT_TRUE(cs.try_consume(10000, t0 + 10s + 1ms));
    EXPECT_FALSE(cs.try_consume(1, t0 + 10s + 1ms));
}

TEST(Credit, BackAndForthJitterCannotMintCredit) {
    // Timestamps wobbling +-600 us around a 1 ms grid (each second step goes
    // backwards): no more credit than the real span from first to last allows.
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    std::uint64_t sent = 0;
    for (int i = 0; i < 1000; ++i) {
        const tp now = t0 + std::chrono::microseconds(i * 1000) + ((i % 2) ? 600us : -600us);
        while (cs.try_consume(1000, now)) sent += 1000;
    }
    // span t0-600us .. t0+999.6ms = 1000.2 ms: initial period + 1000 refills at most.
    EXPECT_LE(sent, 10'000u + 1000u * 10'000u);
    EXPECT_GE(sent, 990u * 10'000u);  // and the rate is not lost either
}

TEST(Credit, ExtremeLimitsDoNotOverflow) {
    credit_scheduler cs;
    cs.set(rate_limit{UINT64_MAX, 1});  // effectively unlimited, but a limit
    EXPECT_EQ(cs.burst_cap(), UINT64_MAX);
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(cs.try_consume(UINT32_MAX, t0 + std::chrono::nanoseconds(i)));
    EXPECT_TRUE(cs.try_consume(UINT32_MAX, tp::max()));
    EXPECT_LE(cs.remaining(), UINT64_MAX);

    cs.set(rate_limit{1, UINT64_MAX});  // one byte per 584,000 years: period clamped to ~292 years
    ASSERT_TRUE(cs.try_consume(0, t0));
    EXPECT_FALSE(cs.try_consume(2, t0));
    EXPECT_FALSE(cs.try_consume(2, tp::max()));  // less than one (clamped) period after t0
    EXPECT_EQ(cs.next_refill(), tp::max());     // saturates instead of wrapping

    cs.set(rate_limit{10000, 1000});
    ASSERT_TRUE(cs.try_consume(10000, tp::min()));
    EXPECT_TRUE(cs.try_consume(131072, tp::max()));  // the whole clock range: still the cap
    EXPECT_FALSE(cs.try_consume(1, tp::max()));
    EXPECT_EQ(cs.next_refill(), tp::max());  // the next window would be past the end
}

TEST(Credit, ZeroBytePacketsAlwaysPass) {
    credit_scheduler cs;
    cs.set(rate_limit{10000, 1000});
    ASSERT_TRUE(cs.try_consume(10000, t0));
    EXPECT_TRUE(cs.try_consume(0, t0));
}

}  // namespace
}  // namespace vifkit::core
