// Watches (matching, removal, permission filtering, limits) and the domain
// life cycle (introduce / release and their '@' events).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xs_test_util.hpp"

namespace vifkit::emu::xs {
namespace {

using test::harness;
using events = std::vector<std::string>;

class XsWatch : public ::testing::Test {
protected:
    void SetUp() override {
        h.eng().introduce_domain(5);
        h.eng().introduce_domain(6);
        (void)h.events(dom0);
    }
    harness h;
    conn_id dom0 = h.connect();
    conn_id g5 = h.connect(caller::domain(5));
    conn_id g6 = h.connect(caller::domain(6));
};

TEST_F(XsWatch, FiresOnceOnRegistration) {
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::watch, {"/w", "tok"})), "OK");
    EXPECT_EQ(h.events(dom0), (events{"/w|tok"}));
    EXPECT_EQ(h.eng().watch_count(dom0), 1u);
}

TEST_F(XsWatch, FiresForTheNodeAndEveryDescendant) {
    h.call(dom0, msg_type::watch, {"/w", "t"});
    (void)h.events(dom0);
    h.write(dom0, "/w", "1");
    h.write(dom0, "/w/a/b", "2");
    h.write(dom0, "/other", "3");
    h.write(dom0, "/wx", "4");  // a sibling with a common prefix is not below /w
    EXPECT_EQ(h.events(dom0), (events{"/w|t", "/w/a/b|t"}));
}

TEST_F(XsWatch, RootWatchSeesEverythingButSpecialPaths) {
    h.call(dom0, msg_type::watch, {"/", "all"});
    (void)h.events(dom0);
    h.write(dom0, "/x", "1");
    h.eng().introduce_domain(9);
    EXPECT_EQ(h.events(dom0), (events{"/x|all", "/local/domain/9|all"}));
}

TEST_F(XsWatch, RemovalFiresForTheNodeAndForWatchersOfDescendants) {
    h.write(dom0, "/r/a/b", "1");
    h.call(dom0, msg_type::watch, {"/r", "top"});
    h.call(dom0, msg_type::watch, {"/r/a/b", "deep"});
    h.call(dom0, msg_type::watch, {"/r/a/b/c", "deeper"});  // never existed
    (void)h.events(dom0);
    h.call(dom0, msg_type::rm, {"/r"});
    // One event for the removed root (subtree watchers), one exact event per
    // removed descendant that someone watches by name.
    EXPECT_EQ(h.events(dom0), (events{"/r|top", "/r/a/b|deep"}));
}

TEST_F(XsWatch, MkdirOfExistingNodeDoesNotFire) {
    h.write(dom0, "/m", "");
    h.call(dom0, msg_type::watch, {"/m", "t"});
    (void)h.events(dom0);
    h.call(dom0, msg_type::mkdir, {"/m"});
    EXPECT_TRUE(h.events(dom0).empty());
}

TEST_F(XsWatch, GuestsOnlySeeNodesTheyCanRead) {
    h.call(g5, msg_type::watch, {"/", "g"});
    EXPECT_EQ(h.events(g5), (events{"/|g"}));
    h.write(dom0, "/tool/private", "x");
    h.write(dom0, "/local/domain/6/x", "x");
    h.write(dom0, "/local/domain/5/mine", "x");
    EXPECT_EQ(h.events(g5), (events{"/local/domain/5/mine|g"}));
}

TEST_F(XsWatch, ReadableParentIsEnough) {
    h.write(dom0, "/pub", "");
    h.call(dom0, msg_type::set_perms, {"/pub", "r0"});
    h.write(dom0, "/pub/hidden", "");
    h.call(dom0, msg_type::set_perms, {"/pub/hidden", "n0"});
    h.call(g5, msg_type::watch, {"/pub", "g"});
    (void)h.events(g5);
    h.write(dom0, "/pub/hidden", "changed");
    EXPECT_EQ(h.events(g5), (events{"/pub/hidden|g"}));
}

TEST_F(XsWatch, LosingAccessStillNotifies) {
    h.write(dom0, "/s", "");
    h.call(dom0, msg_type::set_perms, {"/s", "n0", "r5"});
    h.call(dom0, msg_type::set_perms, {"/", "n0", "r6"});  // parent readable to 6, not 5
    h.call(g5, msg_type::watch, {"/s", "g"});
    (void)h.events(g5);
    h.call(dom0, msg_type::set_perms, {"/s", "n0"});
    EXPECT_EQ(h.events(g5), (events{"/s|g"}));
    h.write(dom0, "/s", "now hidden");
    EXPECT_TRUE(h.events(g5).empty());
}

TEST_F(XsWatch, RemovedNodeIsJudgedByItsPermsBeforeRemoval) {
    h.write(dom0, "/local/domain/5/dev", "");
    h.call(g5, msg_type::watch, {"/local/domain/5/dev", "g"});
    h.call(g6, msg_type::watch, {"/local/domain/5/dev", "other"});
    (void)h.events(g5);
    (void)h.events(g6);
    h.call(dom0, msg_type::rm, {"/local/domain/5/dev"});
    EXPECT_EQ(h.events(g5), (events{"/local/domain/5/dev|g"}));
    EXPECT_TRUE(h.events(g6).empty());
}

TEST_F(XsWatch, RelativeWatchesReportRelativePaths) {
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::watch, {"device", "rel"})), "OK");
    EXPECT_EQ(h.events(g5), (events{"device|rel"}));
    h.write(g5, "device/vif/0/state", "1");
    EXPECT_EQ(h.events(g5), (events{"device/vif/0/state|rel"}));
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::unwatch, {"device", "rel"})), "OK");
}

TEST_F(XsWatch, DuplicateUnknownAndInvalidWatches) {
    h.call(dom0, msg_type::watch, {"/w", "t"});
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::watch, {"/w", "t"})), "E:EEXIST");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::watch, {"/w", "t2"})), "OK");  // new token
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::watch, {"/bad/", "t"})), "E:EINVAL");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::watch, {"@bogus", "t"})), "E:EINVAL");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::unwatch, {"/w", "nope"})), "E:ENOENT");
}

TEST_F(XsWatch, UnwatchStopsEvents) {
    h.call(dom0, msg_type::watch, {"/w", "t"});
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::unwatch, {"/w", "t"})), "OK");
    (void)h.events(dom0);
    h.write(dom0, "/w", "1");
    EXPECT_TRUE(h.events(dom0).empty());
    EXPECT_EQ(h.eng().watch_count(dom0), 0u);
}

TEST_F(XsWatch, WatchesIgnoreTheTransactionId) {
    const auto tx = h.begin(dom0);
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::watch, {"/w", "t"}, tx + 100)), "OK");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::unwatch, {"/w", "t"}, tx + 100)), "OK");
}

TEST(XsWatchLimit, PerConnectionWatchLimitIsE2big) {
    limits lim;
    lim.watches_per_connection = 3;
    harness h(lim);
    const conn_id c = h.connect();
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(h.outcome(h.call(c, msg_type::watch, {"/w", std::to_string(i)})), "OK");
    EXPECT_EQ(h.outcome(h.call(c, msg_type::watch, {"/w", "x"})), "E:E2BIG");
}

TEST_F(XsWatch, ResetWatchesDropsWatchesAndTransactions) {
    h.call(dom0, msg_type::watch, {"/w", "t"});
    (void)h.begin(dom0);
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::reset_watches, {})), "OK");
    EXPECT_EQ(h.eng().watch_count(dom0), 0u);
    EXPECT_EQ(h.eng().transaction_count(dom0), 0u);
}

TEST_F(XsWatch, DisconnectForgetsWatches) {
    const conn_id c = h.connect();
    h.call(c, msg_type::watch, {"/w", "t"});
    h.eng().disconnect(c);
    h.write(dom0, "/w", "1");  // must not try to notify the gone connection
    EXPECT_EQ(h.eng().watch_count(c), 0u);
}

// ---- domains -----------------------------------------------------------------

TEST_F(XsWatch, IntroduceCreatesAnOwnedHomeAndFires) {
    h.call(dom0, msg_type::watch, {"@introduceDomain", "intro"});
    EXPECT_EQ(h.events(dom0), (events{"@introduceDomain|intro"}));
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::introduce, {"7", "1234", "3"})), "OK");
    EXPECT_EQ(h.events(dom0), (events{"@introduceDomain|intro"}));
    EXPECT_EQ(h.perms(dom0, "/local/domain/7"), "n7");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::is_domain_introduced, {"7"})), "T");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::is_domain_introduced, {"8"})), "F");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::is_domain_introduced, {"0"})), "T");
}

TEST_F(XsWatch, IntroduceKeepsAHomeTheToolstackPrepared) {
    h.write(dom0, "/local/domain/8/name", "vm8");
    h.call(dom0, msg_type::set_perms, {"/local/domain/8", "n0", "r8"});
    h.eng().introduce_domain(8);
    EXPECT_EQ(h.perms(dom0, "/local/domain/8"), "n0,r8");
    EXPECT_EQ(h.read(dom0, "/local/domain/8/name"), "vm8");
}

TEST_F(XsWatch, ReleaseRemovesTheHomeAndFires) {
    h.write(g5, "device/vif/0/state", "4");
    h.call(dom0, msg_type::watch, {"@releaseDomain", "rel"});
    h.call(dom0, msg_type::watch, {"/local/domain/5/device", "dev"});
    (void)h.events(dom0);
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::release, {"5"})), "OK");
    EXPECT_EQ(h.events(dom0), (events{"/local/domain/5/device|dev", "@releaseDomain|rel"}));
    EXPECT_EQ(h.read(dom0, "/local/domain/5"), "E:ENOENT");
    EXPECT_FALSE(h.eng().is_introduced(5));
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::release, {"5"})), "E:ENOENT");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::release, {"0"})), "E:ENOENT");
}

TEST_F(XsWatch, SpecialEventsNeedPermissionOnTheSpecialPath) {
    h.call(g5, msg_type::watch, {"@releaseDomain", "g"});
    (void)h.events(g5);
    h.eng().release_domain(6);
    EXPECT_TRUE(h.events(g5).empty());
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::set_perms, {"@releaseDomain", "r5"})), "E:EACCES");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::set_perms, {"@releaseDomain", "n0", "r5"})), "OK");
    EXPECT_EQ(h.perms(dom0, "@releaseDomain"), "n0,r5");
    h.eng().introduce_domain(6);
    h.eng().release_domain(6);
    EXPECT_EQ(h.events(g5), (events{"@releaseDomain|g"}));
}

}  // namespace
}  // namespace vifkit::emu::xs
