// vifkit::platform::store (libxenstore) against the in-process server.
#include <gtest/gtest.h>
#include <poll.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "vifkit/platform/store.hpp"
#include "xs_test_util.hpp"

namespace vifkit::platform {
namespace {

using emu::xs::test::server_thread;
using emu::xs::test::temp_dir;

class StoreClient : public ::testing::Test {
protected:
    void SetUp() override {
        // libxenstore reads XENSTORED_PATH when a handle is opened.
        ::setenv("XENSTORED_PATH", sock.c_str(), 1);
        s = store::open();
        ASSERT_TRUE(s) << std::strerror(errno);
    }
    temp_dir dir;
    std::string sock = dir.file("xs.sock");
    server_thread st{sock};
    std::unique_ptr<store> s;

    // Waits (generously) for the watch fd, then returns the next event.
    std::optional<std::pair<std::string, std::string>> wait_watch(store& c) {
        pollfd p{c.fd(), POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1) return std::nullopt;
        return c.next_watch();
    }
};

TEST_F(StoreClient, ReadWriteMkdirRmDirectory) {
    EXPECT_TRUE(s->write("/vm/1/name", "guest"));
    EXPECT_EQ(s->read("/vm/1/name"), "guest");
    EXPECT_TRUE(s->mkdir("/vm/1/device"));
    EXPECT_EQ(s->directory("/vm/1"), (std::vector<std::string>{"name", "device"}));
    EXPECT_EQ(s->directory("/vm/1/device"), std::vector<std::string>{});
    EXPECT_TRUE(s->rm("/vm/1"));
    EXPECT_FALSE(s->read("/vm/1/name"));
    EXPECT_EQ(errno, ENOENT);
    EXPECT_FALSE(s->directory("/vm/1"));
    EXPECT_EQ(errno, ENOENT);
}

TEST_F(StoreClient, EmptyAndBinaryValues) {
    EXPECT_TRUE(s->write("/e", ""));
    EXPECT_EQ(s->read("/e"), "");
    const std::string bin("\0\1\2", 3);
    EXPECT_TRUE(s->write("/b", bin));
    EXPECT_EQ(s->read("/b"), bin);
}

TEST_F(StoreClient, LargeDirectoryFallsBackToDirectoryPart) {
    std::vector<std::string> names;
    const auto t = s->begin();
    ASSERT_TRUE(t);
    for (int i = 0; i < 400; ++i) {
        names.push_back("a-rather-long-child-name-" + std::to_string(i));
        ASSERT_TRUE(s->write("/big/" + names.back(), "", *t));
    }
    ASSERT_TRUE(s->commit(*t));
    EXPECT_EQ(s->directory("/big"), names);
}

TEST_F(StoreClient, Permissions) {
    ASSERT_TRUE(s->write("/p", "x"));
    const store_perm perms[] = {{0, 'n'}, {5, 'r'}, {6, 'b'}};
    EXPECT_TRUE(s->set_perms("/p", perms));
    auto got = s->get_perms("/p");
    ASSERT_TRUE(got);
    ASSERT_EQ(got->size(), 3u);
    EXPECT_EQ((*got)[1].id, 5);
    EXPECT_EQ((*got)[1].perm, 'r');
    EXPECT_EQ((*got)[2].perm, 'b');
    const store_perm bad[] = {{0, 'q'}};
    EXPECT_FALSE(s->set_perms("/p", bad));
    EXPECT_EQ(errno, EINVAL);
}

TEST_F(StoreClient, TransactionCommitAndAbort) {
    auto t = s->begin();
    ASSERT_TRUE(t);
    EXPECT_TRUE(s->write("/tx/a", "1", *t));
    EXPECT_FALSE(s->read("/tx/a"));
    EXPECT_TRUE(s->commit(*t));
    EXPECT_EQ(s->read("/tx/a"), "1");
    t = s->begin();
    EXPECT_TRUE(s->write("/tx/a", "2", *t));
    s->abort(*t);
    EXPECT_EQ(s->read("/tx/a"), "1");
}

TEST_F(StoreClient, ConflictingCommitFailsWithEagain) {
    auto other = store::open();
    ASSERT_TRUE(other);
    ASSERT_TRUE(s->write("/cnt", "0"));
    const auto t = s->begin();
    ASSERT_TRUE(t);
    EXPECT_EQ(s->read_int("/cnt", *t), 0);
    EXPECT_TRUE(other->write("/cnt", "5"));
    EXPECT_TRUE(s->write("/cnt", "1", *t));
    EXPECT_FALSE(s->commit(*t));
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_EQ(s->read("/cnt"), "5");
}

TEST_F(StoreClient, WatchFdAndEvents) {
    auto other = store::open();
    ASSERT_TRUE(other);
    ASSERT_TRUE(s->watch("/watched", "tok"));
    auto ev = wait_watch(*s);  // the initial event
    ASSERT_TRUE(ev);
    EXPECT_EQ(*ev, std::make_pair(std::string("/watched"), std::string("tok")));
    EXPECT_FALSE(s->next_watch());
    EXPECT_EQ(errno, EAGAIN);
    ASSERT_TRUE(other->write("/watched/state", "4"));
    ev = wait_watch(*s);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->first, "/watched/state");
    EXPECT_TRUE(s->unwatch("/watched", "tok"));
    EXPECT_FALSE(s->unwatch("/watched", "tok"));
    EXPECT_EQ(errno, ENOENT);
}

TEST_F(StoreClient, WatchFiresOnRemoval) {
    ASSERT_TRUE(s->write("/gone/x", "1"));
    ASSERT_TRUE(s->watch("/gone/x", "t"));
    ASSERT_TRUE(wait_watch(*s));
    ASSERT_TRUE(s->rm("/gone"));
    auto ev = wait_watch(*s);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->first, "/gone/x");
}

TEST_F(StoreClient, DomainPath) {
    EXPECT_EQ(s->domain_path(7), "/local/domain/7");
}

TEST_F(StoreClient, ReadIntIsStrict) {
    const std::pair<const char*, std::optional<long long>> cases[] = {
        {"42", 42},   {"-7", -7},      {"0", 0},          {"", std::nullopt},
        {" 1", std::nullopt}, {"1 ", std::nullopt}, {"+1", std::nullopt}, {"1x", std::nullopt},
        {"0x10", std::nullopt}, {"99999999999999999999", std::nullopt},
    };
    for (const auto& [text, want] : cases) {
        ASSERT_TRUE(s->write("/int", text));
        EXPECT_EQ(s->read_int("/int"), want) << '"' << text << '"';
    }
    ASSERT_TRUE(s->write("/int", "99999999999999999999"));
    EXPECT_FALSE(s->read_int("/int"));
    EXPECT_EQ(errno, ERANGE);
    EXPECT_FALSE(s->read_int("/absent"));
    EXPECT_EQ(errno, ENOENT);
}

TEST_F(StoreClient, ReadOrFallsBack) {
    ASSERT_TRUE(s->write("/present", "v"));
    EXPECT_EQ(s->read_or("/present", "dflt"), "v");
    EXPECT_EQ(s->read_or("/absent", "dflt"), "dflt");
}

TEST(StoreClientOpen, FailsWithoutADaemon) {
    temp_dir dir;
    ::setenv("XENSTORED_PATH", dir.file("nobody-here").c_str(), 1);
    errno = 0;
    EXPECT_EQ(store::open(), nullptr);
    EXPECT_NE(errno, 0);
}

}  // namespace
}  // namespace vifkit::platform
