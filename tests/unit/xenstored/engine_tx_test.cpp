// Transactions: isolation, commit, abort, EAGAIN on conflict, watches at commit.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xs_test_util.hpp"

namespace vifkit::emu::xs {
namespace {

using test::harness;
using events = std::vector<std::string>;

class XsTx : public ::testing::Test {
protected:
    harness h;
    conn_id a = h.connect();
    conn_id b = h.connect();
};

TEST_F(XsTx, ChangesAreInvisibleUntilCommit) {
    const auto t = h.begin(a);
    EXPECT_NE(t, 0u);
    EXPECT_EQ(h.outcome(h.write(a, "/t/x", "1", t)), "OK");
    EXPECT_EQ(h.read(a, "/t/x", t), "1");      // the transaction sees its own write
    EXPECT_EQ(h.read(b, "/t/x"), "E:ENOENT");  // nobody else does
    EXPECT_EQ(h.read(a, "/t/x"), "E:ENOENT");  // not even its own connection outside it
    EXPECT_EQ(h.end(a, t), "OK");
    EXPECT_EQ(h.read(b, "/t/x"), "1");
    EXPECT_EQ(h.ls(b, "/t"), "x");
    EXPECT_EQ(h.eng().counters().commits, 1u);
}

TEST_F(XsTx, AbortDiscards) {
    h.write(a, "/keep", "old");
    const auto t = h.begin(a);
    h.write(a, "/keep", "new", t);
    h.call(a, msg_type::rm, {"/tool"}, t);
    EXPECT_EQ(h.end(a, t, false), "OK");
    EXPECT_EQ(h.read(b, "/keep"), "old");
    EXPECT_EQ(h.read(b, "/tool"), "");
    EXPECT_EQ(h.eng().transaction_count(a), 0u);
}

TEST_F(XsTx, ConflictOnANodeItReadIsEagain) {
    h.write(a, "/c", "0");
    const auto t = h.begin(a);
    EXPECT_EQ(h.read(a, "/c", t), "0");
    h.write(b, "/c", "1");
    h.write(a, "/other", "x", t);
    EXPECT_EQ(h.end(a, t), "E:EAGAIN");
    EXPECT_EQ(h.read(b, "/other"), "E:ENOENT");  // nothing applied
    EXPECT_EQ(h.eng().counters().conflicts, 1u);
}

TEST_F(XsTx, ConflictOnANodeItWroteIsEagain) {
    h.write(a, "/c", "0");
    const auto t = h.begin(a);
    h.write(a, "/c", "mine", t);
    h.write(b, "/c", "theirs");
    EXPECT_EQ(h.end(a, t), "E:EAGAIN");
    EXPECT_EQ(h.read(b, "/c"), "theirs");
}

TEST_F(XsTx, ConflictWhenSomeoneElseCreatesWhatItSawAbsent) {
    const auto t = h.begin(a);
    EXPECT_EQ(h.read(a, "/new", t), "E:ENOENT");
    h.write(b, "/new", "x");
    EXPECT_EQ(h.end(a, t), "E:EAGAIN");
}

TEST_F(XsTx, ConflictOnAListedDirectory) {
    h.write(a, "/dir/one", "");
    const auto t = h.begin(a);
    EXPECT_EQ(h.ls(a, "/dir", t), "one");
    h.write(b, "/dir/two", "");  // changes /dir's child list
    EXPECT_EQ(h.end(a, t), "E:EAGAIN");
}

TEST_F(XsTx, ChangesToUntouchedNodesDoNotConflict) {
    h.write(a, "/mine/x", "0");
    h.write(a, "/theirs/y", "0");
    const auto t = h.begin(a);
    EXPECT_EQ(h.read(a, "/mine/x", t), "0");
    h.write(a, "/mine/x", "1", t);
    h.write(b, "/theirs/y", "1");
    h.write(b, "/theirs/z", "1");
    EXPECT_EQ(h.end(a, t), "OK");
    EXPECT_EQ(h.read(b, "/mine/x"), "1");
}

TEST_F(XsTx, SecondOfTwoInterferingTransactionsFails) {
    h.write(a, "/p", "");
    h.write(a, "/q", "");
    const auto ta = h.begin(a);
    const auto tb = h.begin(b);
    EXPECT_EQ(h.read(a, "/p", ta), "");
    EXPECT_EQ(h.read(b, "/q", tb), "");
    h.write(a, "/q", "from-a", ta);
    h.write(b, "/p", "from-b", tb);
    EXPECT_EQ(h.end(a, ta), "OK");
    EXPECT_EQ(h.end(b, tb), "E:EAGAIN");
    EXPECT_EQ(h.read(a, "/q"), "from-a");
    EXPECT_EQ(h.read(a, "/p"), "");
}

TEST_F(XsTx, RetryAfterEagainSucceeds) {
    h.write(a, "/n", "0");
    for (int attempt = 0; attempt < 3; ++attempt) {
        const auto t = h.begin(a);
        const auto v = std::stoi(h.read(a, "/n", t));
        if (attempt == 0) h.write(b, "/n", "10");  // interfere once
        h.write(a, "/n", std::to_string(v + 1), t);
        if (h.end(a, t) == "OK") break;
    }
    EXPECT_EQ(h.read(b, "/n"), "11");
}

TEST_F(XsTx, TheTransactionIsGoneAfterEagain) {
    h.write(a, "/c", "0");
    const auto t = h.begin(a);
    h.read(a, "/c", t);
    h.write(b, "/c", "1");
    EXPECT_EQ(h.end(a, t), "E:EAGAIN");
    EXPECT_EQ(h.read(a, "/c", t), "E:ENOENT");
    EXPECT_EQ(h.end(a, t), "E:ENOENT");
}

TEST_F(XsTx, WatchesFireAtCommitOnly) {
    h.call(b, msg_type::watch, {"/w", "t"});
    (void)h.events(b);
    const auto t = h.begin(a);
    h.write(a, "/w/x", "1", t);
    h.write(a, "/w/x", "2", t);
    h.write(a, "/w/y", "1", t);
    EXPECT_TRUE(h.events(b).empty());
    EXPECT_EQ(h.end(a, t), "OK");
    EXPECT_EQ(h.events(b), (events{"/w/x|t", "/w/y|t"}));  // one event per node
}

TEST_F(XsTx, AbortedAndFailedTransactionsFireNothing) {
    h.write(a, "/c", "0");
    h.call(b, msg_type::watch, {"/w", "t"});
    (void)h.events(b);
    auto t = h.begin(a);
    h.write(a, "/w/x", "1", t);
    h.end(a, t, false);
    t = h.begin(a);
    h.read(a, "/c", t);
    h.write(a, "/w/x", "1", t);
    h.write(a, "/c", "other");
    EXPECT_EQ(h.end(a, t), "E:EAGAIN");
    EXPECT_TRUE(h.events(b).empty());
}

TEST_F(XsTx, RmInsideATransaction) {
    h.write(a, "/r/a/b", "1");
    h.call(b, msg_type::watch, {"/r/a/b", "deep"});
    (void)h.events(b);
    const auto t = h.begin(a);
    EXPECT_EQ(h.outcome(h.call(a, msg_type::rm, {"/r"}, t)), "OK");
    EXPECT_EQ(h.read(a, "/r/a", t), "E:ENOENT");
    EXPECT_EQ(h.read(b, "/r/a/b"), "1");
    EXPECT_EQ(h.end(a, t), "OK");
    EXPECT_EQ(h.read(b, "/r/a/b"), "E:ENOENT");
    EXPECT_EQ(h.events(b), (events{"/r/a/b|deep"}));
    EXPECT_EQ(h.eng().nodes().find("/r"), nullptr);
}

// Value, perms and child-list edits change nodes in place in the live tree but
// are copied into the transaction's overlay: nothing leaks before commit, and
// ownership moved by set_perms is counted once, whichever way it lands.
TEST_F(XsTx, InPlaceEditsStayPrivateUntilCommit) {
    h.write(a, "/e/x", "old");
    const auto t = h.begin(a);
    EXPECT_EQ(h.outcome(h.write(a, "/e/x", "new", t)), "OK");
    EXPECT_EQ(h.outcome(h.call(a, msg_type::set_perms, {"/e/x", "n7", "r8"}, t)), "OK");
    EXPECT_EQ(h.outcome(h.write(a, "/e/x/kid", "k", t)), "OK");
    EXPECT_EQ(h.outcome(h.call(a, msg_type::rm, {"/e/gone"}, t)), "OK");
    EXPECT_EQ(h.read(b, "/e/x"), "old");
    EXPECT_EQ(h.perms(b, "/e/x"), "n0");
    EXPECT_EQ(h.ls(b, "/e/x"), "");
    EXPECT_EQ(h.eng().nodes().owned_by(7), 0u);
    EXPECT_EQ(h.read(a, "/e/x", t), "new");
    EXPECT_EQ(h.ls(a, "/e/x", t), "kid");
    EXPECT_EQ(h.end(a, t), "OK");
    EXPECT_EQ(h.read(b, "/e/x"), "new");
    EXPECT_EQ(h.perms(b, "/e/x"), "n7,r8");
    EXPECT_EQ(h.ls(b, "/e/x"), "kid");
    EXPECT_EQ(h.eng().nodes().owned_by(7), 2u);  // /e/x and the child that inherited it
    EXPECT_EQ(h.eng().nodes().check(), "");
}

TEST_F(XsTx, RemovedAndRecreatedInOneTransaction) {
    h.write(a, "/r/x/deep", "1");
    const auto t = h.begin(a);
    EXPECT_EQ(h.outcome(h.call(a, msg_type::rm, {"/r/x"}, t)), "OK");
    EXPECT_EQ(h.ls(a, "/r", t), "");
    EXPECT_EQ(h.outcome(h.write(a, "/r/x/other", "2", t)), "OK");
    EXPECT_EQ(h.ls(a, "/r/x", t), "other");
    EXPECT_EQ(h.ls(b, "/r/x"), "deep");
    EXPECT_EQ(h.end(a, t), "OK");
    EXPECT_EQ(h.ls(b, "/r"), "x");
    EXPECT_EQ(h.ls(b, "/r/x"), "other");
    EXPECT_EQ(h.read(b, "/r/x/deep"), "E:ENOENT");
    EXPECT_EQ(h.eng().nodes().check(), "");
}

TEST_F(XsTx, ProtocolErrors) {
    EXPECT_EQ(h.outcome(h.call(a, msg_type::read, {"/tool"}, 12345)), "E:ENOENT");
    EXPECT_EQ(h.outcome(h.call(a, msg_type::transaction_end, {"T"})), "E:ENOENT");
    const auto t = h.begin(a);
    EXPECT_EQ(h.outcome(h.call(a, msg_type::transaction_start, {""}, t)), "E:EBUSY");
    EXPECT_EQ(h.outcome(h.call(a, msg_type::transaction_end, {"X"}, t)), "E:EINVAL");
    EXPECT_EQ(h.outcome(h.call(b, msg_type::read, {"/tool"}, t)), "E:ENOENT");  // ids are per connection
    EXPECT_EQ(h.end(a, t), "OK");
}

TEST_F(XsTx, IdsAreDistinctAndNonZero) {
    const auto t1 = h.begin(a);
    const auto t2 = h.begin(a);
    EXPECT_NE(t1, 0u);
    EXPECT_NE(t2, 0u);
    EXPECT_NE(t1, t2);
}

TEST(XsTxLimit, PerConnectionTransactionLimitIsEnospc) {
    limits lim;
    lim.transactions_per_connection = 2;
    harness h(lim);
    const conn_id c = h.connect();
    const auto t1 = h.begin(c);
    (void)h.begin(c);
    EXPECT_EQ(h.outcome(h.call(c, msg_type::transaction_start, {""})), "E:ENOSPC");
    h.end(c, t1, false);
    EXPECT_EQ(h.eng().transaction_count(c), 1u);
    EXPECT_NE(h.begin(c), 0u);
}

TEST(XsTxLimit, GuestTransactionsAreBoundedInNodesAndQuota) {
    limits lim;
    lim.transaction_nodes = 8;
    lim.nodes_per_domain = 5;
    harness h(lim);
    h.eng().introduce_domain(5);
    const conn_id g = h.connect(caller::domain(5));
    auto t = h.begin(g);
    for (int i = 0; i < 12; ++i) (void)h.read(g, "n" + std::to_string(i), t);
    EXPECT_EQ(h.end(g, t), "E:ENOSPC");  // touched more nodes than allowed
    t = h.begin(g);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(h.outcome(h.write(g, "q" + std::to_string(i), "", t)), "OK");
    EXPECT_EQ(h.outcome(h.write(g, "q9", "", t)), "E:ENOSPC");  // home + 4 = quota
    EXPECT_EQ(h.end(g, t), "OK");
}

}  // namespace
}  // namespace vifkit::emu::xs
