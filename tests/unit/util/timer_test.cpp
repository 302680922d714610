// util::timer: a timerfd in the event loop. The tests assert what fired and how
// often, never how long it took: every wait is bounded by a generous deadline
// and "did not fire" is shown against a later sentinel timer, so a loaded
// machine makes them slower, not flaky.
#include <gtest/gtest.h>

#include <fcntl.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <thread>

#include "vifkit/util/event_loop.hpp"
#include "vifkit/util/timer.hpp"

namespace vifkit::util {
namespace {

using namespace std::chrono_literals;

// Run the loop until `done()` or about 30 s of loop iterations have passed.
template <class Pred>
bool run_until(event_loop& loop, Pred done) {
    for (int i = 0; i < 300 && !done(); ++i) loop.run_once(100ms);
    return done();
}

// Run the loop until a sentinel armed `after` from now has fired: anything that
// was due before it has had its chance to fire too.
void run_past(event_loop& loop, std::chrono::nanoseconds after) {
    bool fired = false;
    timer sentinel(loop, [&] { fired = true; });
    sentinel.arm_after(after);
    ASSERT_TRUE(run_until(loop, [&] { return fired; }));
}

TEST(Timer, StartsDisarmedAndNeverFires) {
    event_loop loop;
    int n = 0;
    timer t(loop, [&] { ++n; });
    EXPECT_FALSE(t.armed());
    EXPECT_GE(t.fd(), 0);
    run_past(loop, 20ms);
    EXPECT_EQ(n, 0);
}

TEST(Timer, OneShotFiresExactlyOnce) {
    event_loop loop;
    int n = 0;
    timer t(loop, [&] { ++n; });
    t.arm_after(1ms);
    EXPECT_TRUE(t.armed());
    ASSERT_TRUE(run_until(loop, [&] { return n > 0; }));
    EXPECT_EQ(n, 1);
    EXPECT_FALSE(t.armed());
    run_past(loop, 20ms);  // well past its expiry: no second call
    EXPECT_EQ(n, 1);
}

TEST(Timer, ZeroAndNegativeDelaysFireOnTheNextIteration) {
    // An all-zero itimerspec would disarm the timerfd; arm_after(0) must not.
    event_loop loop;
    int n = 0;
    timer t(loop, [&] { ++n; });
    t.arm_after(0ns);
    ASSERT_TRUE(run_until(loop, [&] { return n == 1; }));
    t.arm_after(-5s);
    ASSERT_TRUE(run_until(loop, [&] { return n == 2; }));
    EXPECT_FALSE(t.armed());
}

TEST(Timer, CanBeReArmedAfterFiring) {
    event_loop loop;
    int n = 0;
    timer t(loop, [&] { ++n; });
    for (int i = 1; i <= 3; ++i) {
        t.arm_after(1ms);
        ASSERT_TRUE(run_until(loop, [&] { return n == i; }));
    }
    run_past(loop, 20ms);
    EXPECT_EQ(n, 3);
}

TEST(Timer, PeriodicFiresRepeatedlyAndStaysArmed) {
    event_loop loop;
    int n = 0;
    timer t(loop, [&] { ++n; });
    t.arm_every(1ms);
    ASSERT_TRUE(run_until(loop, [&] { return n >= 5; }));
    EXPECT_TRUE(t.armed());
    t.cancel();
    EXPECT_FALSE(t.armed());
    const int at_cancel = n;
    run_past(loop, 20ms);
    EXPECT_EQ(n, at_cancel);
}

TEST(Timer, PeriodicCoalescesMissedExpiriesIntoOneCallback) {
    // The loop was busy for many periods: one callback per readiness, not one
    // per expiry (the count read from the timerfd is ignored).
    event_loop loop;
    int n = 0;
    timer t(loop, [&] { ++n; });
    t.arm_every(1ms);
    std::this_thread::sleep_for(30ms);  // >= 30 expiries pile up
    EXPECT_EQ(loop.run_once(0ms), 1);
    EXPECT_EQ(n, 1);
}

TEST(Timer, ArmEveryRejectsNonPositivePeriods) {
    event_loop loop;
    timer t(loop, [] {});
    EXPECT_THROW(t.arm_every(0ns), std::invalid_argument);
    EXPECT_THROW(t.arm_every(-1ms), std::invalid_argument);
    EXPECT_FALSE(t.armed());
}

TEST(Timer, CancelPreventsFiring) {
    event_loop loop;
    int n = 0;
    timer t(loop, [&] { ++n; });
    t.arm_after(1ms);
    t.cancel();
    EXPECT_FALSE(t.armed());
    run_past(loop, 30ms);
    EXPECT_EQ(n, 0);
    t.cancel();  // idempotent
    EXPECT_FALSE(t.armed());
}

TEST(Timer, CancelDiscardsAnExpiryTheLoopHasAlreadySeen) {
    // Both timers are due in the same epoll batch; whichever runs first cancels
    // the other, whose already-reported readiness must then be ignored.
    event_loop loop;
    int na = 0, nb = 0;
    std::optional<timer> a, b;
    a.emplace(loop, [&] { ++na; b->cancel(); });
    b.emplace(loop, [&] { ++nb; a->cancel(); });
    a->arm_after(1ms);
    b->arm_after(1ms);
    std::this_thread::sleep_for(20ms);  // both expired before the loop looks
    EXPECT_EQ(loop.run_once(0ms), 2);   // both dispatched, one was a no-op
    EXPECT_EQ(na + nb, 1);
    run_past(loop, 20ms);
    EXPECT_EQ(na + nb, 1);
}

TEST(Timer, ReArmReplacesAnEarlierOneShot) {
    event_loop loop;
    int n = 0;
    timer t(loop, [&] { ++n; });
    t.arm_after(1h);
    t.arm_after(1ms);  // sooner: fires now
    ASSERT_TRUE(run_until(loop, [&] { return n == 1; }));

    t.arm_after(1ms);
    t.arm_after(1h);  // later: the 1 ms arming is gone
    EXPECT_TRUE(t.armed());
    run_past(loop, 30ms);
    EXPECT_EQ(n, 1);
}

TEST(Timer, ReArmReplacesAPendingExpiry) {
    // Expired but not yet dispatched, then pushed into the future: no callback.
    event_loop loop;
    int n = 0;
    timer t(loop, [&] { ++n; });
    t.arm_after(1ms);
    std::this_thread::sleep_for(20ms);
    t.arm_after(1h);
    loop.run_once(0ms);
    EXPECT_EQ(n, 0);
    EXPECT_TRUE(t.armed());
}

TEST(Timer, OneShotReplacesPeriodic) {
    event_loop loop;
    int n = 0;
    timer t(loop, [&] { ++n; });
    t.arm_every(1ms);
    t.arm_after(1ms);
    ASSERT_TRUE(run_until(loop, [&] { return n == 1; }));
    EXPECT_FALSE(t.armed());
    run_past(loop, 30ms);
    EXPECT_EQ(n, 1);
}

TEST(Timer, PeriodicCallbackCanCancelItself) {
    event_loop loop;
    int n = 0;
    std::optional<timer> t;
    t.emplace(loop, [&] {
        if (++n == 3) t->cancel();
    });
    t->arm_every(1ms);
    ASSERT_TRUE(run_until(loop, [&] { return n == 3; }));
    EXPECT_FALSE(t->armed());
    run_past(loop, 30ms);
    EXPECT_EQ(n, 3);
}

TEST(Timer, CallbackCanReArmItself) {
    event_loop loop;
    int n = 0;
    std::optional<timer> t;
    t.emplace(loop, [&] {
        if (++n < 4) t->arm_after(1ms);
    });
    t->arm_after(1ms);
    ASSERT_TRUE(run_until(loop, [&] { return n == 4; }));
    EXPECT_FALSE(t->armed());
    run_past(loop, 30ms);
    EXPECT_EQ(n, 4);
}

TEST(Timer, DestroyingItselfInsideTheCallbackIsSafe) {
    // Under ASan this also proves nothing touches the freed timer afterwards.
    event_loop loop;
    int n = 0;
    std::optional<timer> t;
    t.emplace(loop, [&, big = std::string(256, 'x')] {
        ++n;
        t.reset();
        EXPECT_EQ(big.size(), 256u);  // the callable is still alive while it runs
    });
    t->arm_every(1ms);
    ASSERT_TRUE(run_until(loop, [&] { return n > 0; }));
    EXPECT_FALSE(t.has_value());
    run_past(loop, 30ms);
    EXPECT_EQ(n, 1);
}

TEST(Timer, DestroyingAnotherDueTimerInsideACallbackIsSafe) {
    event_loop loop;
    int na = 0, nb = 0;
    std::optional<timer> a, b;
    a.emplace(loop, [&] { ++na; b.reset(); });
    b.emplace(loop, [&] { ++nb; a.reset(); });
    a->arm_after(1ms);
    b->arm_after(1ms);
    std::this_thread::sleep_for(20ms);
    loop.run_once(0ms);
    EXPECT_EQ(na + nb, 1);
    EXPECT_NE(a.has_value(), b.has_value());
}

TEST(Timer, DestructorUnregistersAndClosesTheFd) {
    event_loop loop;
    int n = 0;
    int fd = -1;
    {
        timer t(loop, [&] { ++n; });
        fd = t.fd();
        ASSERT_GE(::fcntl(fd, F_GETFD), 0);
        EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
        EXPECT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
        t.arm_after(1ms);
    }
    errno = 0;
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
    EXPECT_EQ(errno, EBADF);
    run_past(loop, 30ms);
    EXPECT_EQ(n, 0);
}

TEST(Timer, IndependentTimersFireIndependently) {
    event_loop loop;
    int fast = 0, slow = 0;
    timer f(loop, [&] { ++fast; });
    timer s(loop, [&] { ++slow; });
    f.arm_every(1ms);
    s.arm_after(1h);
    ASSERT_TRUE(run_until(loop, [&] { return fast >= 3; }));
    EXPECT_EQ(slow, 0);
    EXPECT_TRUE(s.armed());
}

}  // namespace
}  // namespace vifkit::util
