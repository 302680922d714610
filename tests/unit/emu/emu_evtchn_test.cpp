// Event channels across real processes: the test process is domain 0 (the
// backend), children are frontends.
#include <gtest/gtest.h>
#include <poll.h>

#include <cerrno>

#include "emu_test_support.hpp"
#include "vifkit/emu/domain.hpp"

namespace vifkit::emu::test {
namespace {

bool readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
}

class EventChannel : public ::testing::Test {
protected:
    broker::limits limits() {
        broker::limits l;
        l.max_ports = 4;
        return l;
    }
    broker_process broker_{limits()};
    remote_domain front_{broker_.path()};
    std::unique_ptr<domain> back_ = domain::attach(broker_.path(), 0, 4, 16);
    std::unique_ptr<platform::event_channels> ev_ = back_->make_event_channels();

    // Frontend allocates for domain 0, backend binds: {front port, back port}.
    std::pair<evtchn_port_t, evtchn_port_t> connect() {
        const auto fp = front_.alloc_unbound(0);
        EXPECT_TRUE(fp.has_value());
        const auto bp = ev_->bind_interdomain(front_.id(), fp.value_or(0));
        EXPECT_TRUE(bp.has_value());
        return {fp.value_or(0), bp.value_or(0)};
    }
};

TEST_F(EventChannel, NotifyCrossesProcessesBothWays) {
    const auto [fp, bp] = connect();
    EXPECT_NE(fp, 0U);  // port 0 is never handed out
    EXPECT_EQ(ev_->bound_count(), 1U);
    EXPECT_EQ(front_.bound_count(), 1U);
    EXPECT_FALSE(front_.readable(std::chrono::milliseconds(0)));
    EXPECT_EQ(ev_->notify(bp), 0);
    EXPECT_TRUE(front_.readable(default_timeout));
    EXPECT_EQ(front_.pending(), fp);
    EXPECT_EQ(front_.pending(), std::nullopt);
    EXPECT_EQ(front_.unmask(fp), 0);
    EXPECT_FALSE(front_.readable(std::chrono::milliseconds(0)));  // collected: not pending

    EXPECT_EQ(front_.notify(fp), 0);
    EXPECT_TRUE(readable(ev_->fd(), 10000));
    EXPECT_EQ(ev_->pending(), bp);
    EXPECT_EQ(ev_->unmask(bp), 0);
}

TEST_F(EventChannel, PendingMasksUntilUnmask) {
    const auto [fp, bp] = connect();
    ASSERT_EQ(ev_->notify(bp), 0);
    ASSERT_TRUE(front_.readable(default_timeout));
    ASSERT_EQ(front_.pending(), fp);  // now masked
    ASSERT_EQ(ev_->notify(bp), 0);    // completed before the next check
    EXPECT_FALSE(front_.readable(std::chrono::milliseconds(0)));
    EXPECT_EQ(front_.pending(), std::nullopt);
    EXPECT_EQ(front_.unmask(fp), 0);  // the event that arrived while masked shows now
    EXPECT_TRUE(front_.readable(std::chrono::milliseconds(0)));
    EXPECT_EQ(front_.pending(), fp);
}

TEST_F(EventChannel, SeveralNotifiesCollapseIntoOnePending) {
    const auto [fp, bp] = connect();
    for (int i = 0; i < 5; ++i) ASSERT_EQ(ev_->notify(bp), 0);
    ASSERT_TRUE(front_.readable(default_timeout));
    EXPECT_EQ(front_.pending(), fp);
    EXPECT_EQ(front_.unmask(fp), 0);
    EXPECT_FALSE(front_.readable(std::chrono::milliseconds(0)));
}

TEST_F(EventChannel, OnlyTheNamedRemoteMayBind) {
    remote_domain third(broker_.path());
    const auto fp = front_.alloc_unbound(0);
    ASSERT_TRUE(fp);
    EXPECT_EQ(third.bind(front_.id(), *fp), std::nullopt);
    EXPECT_EQ(third.last_errno(), EINVAL);
    const auto bp = ev_->bind_interdomain(front_.id(), *fp);
    ASSERT_TRUE(bp);
    errno = 0;
    EXPECT_EQ(ev_->bind_interdomain(front_.id(), *fp), std::nullopt);  // bound already
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(ev_->bind_interdomain(front_.id(), 3), std::nullopt);  // no such port
    EXPECT_EQ(ev_->bind_interdomain(99, 1), std::nullopt);          // no such domain
    EXPECT_EQ(errno, ESRCH);
}

TEST_F(EventChannel, NotifyBeforeBindIsDropped) {
    const auto fp = front_.alloc_unbound(0);
    ASSERT_TRUE(fp);
    EXPECT_EQ(front_.notify(*fp), 0);  // nobody bound yet: harmless, dropped
    const auto bp = ev_->bind_interdomain(front_.id(), *fp);
    ASSERT_TRUE(bp);
    EXPECT_FALSE(readable(ev_->fd(), 0));
    EXPECT_EQ(front_.notify(*fp), 0);
    EXPECT_TRUE(readable(ev_->fd(), 10000));
    EXPECT_EQ(ev_->pending(), bp);
}

TEST_F(EventChannel, UnbindClosesAndPeerNotifyStaysHarmless) {
    const auto [fp, bp] = connect();
    EXPECT_EQ(front_.unbind(fp), 0);
    EXPECT_EQ(front_.bound_count(), 0U);
    EXPECT_EQ(front_.notify(fp), -EINVAL);
    EXPECT_EQ(front_.unbind(fp), -EINVAL);
    EXPECT_EQ(ev_->notify(bp), 0);
    EXPECT_FALSE(front_.readable(std::chrono::milliseconds(0)));
    // Xen semantics: our end went back to unbound(frontend), which may bind it again.
    const auto again = front_.bind(0, bp);
    ASSERT_TRUE(again);
    EXPECT_EQ(ev_->notify(bp), 0);
    EXPECT_TRUE(front_.readable(default_timeout));
    EXPECT_EQ(front_.pending(), again);
    EXPECT_EQ(ev_->unbind(bp), 0);
    EXPECT_EQ(ev_->bound_count(), 0U);
}

TEST_F(EventChannel, NotifyToDeadPeerIsHarmless) {
    const auto [fp, bp] = connect();
    const domid_t dead = front_.id();
    front_.kill9();
    EXPECT_EQ(ev_->notify(bp), 0);
    broker_.wait_gone(dead);
    EXPECT_EQ(ev_->notify(bp), 0);
    EXPECT_EQ(ev_->unbind(bp), 0);
}

TEST_F(EventChannel, PerDomainPortLimit) {
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(ev_->alloc_unbound(front_.id())) << i;
    errno = 0;
    EXPECT_EQ(ev_->alloc_unbound(front_.id()), std::nullopt);
    EXPECT_EQ(errno, ENOSPC);
    EXPECT_EQ(ev_->bound_count(), 4U);
    // The limit is per domain: the frontend still has all of its ports.
    EXPECT_TRUE(front_.alloc_unbound(0));
}

TEST_F(EventChannel, SeparateHandlesSeeOnlyTheirPorts) {
    auto ev2 = back_->make_event_channels();
    const auto [fp, bp] = connect();
    EXPECT_EQ(ev2->notify(bp), -EINVAL);
    EXPECT_EQ(ev2->bound_count(), 0U);
    EXPECT_EQ(front_.notify(fp), 0);
    EXPECT_TRUE(readable(ev_->fd(), 10000));
    EXPECT_FALSE(readable(ev2->fd(), 0));
}

}  // namespace
}  // namespace vifkit::emu::test
