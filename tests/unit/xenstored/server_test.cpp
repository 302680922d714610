// The socket server: framing over a real unix socket, hostile and slow
// clients, identity through the pid resolver (including a forked process).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <map>
#include <mutex>
#include <string>

#include "vifkit/platform/store.hpp"
#include "xs_test_util.hpp"

namespace vifkit::emu::xs {
namespace {

using test::message;
using test::server_thread;
using test::strings;
using test::temp_dir;
using test::wire_client;

class XsServer : public ::testing::Test {
protected:
    temp_dir dir;
    std::string sock = dir.file("xs.sock");
};

TEST_F(XsServer, SpeaksTheWireProtocol) {
    server_thread st(sock);
    wire_client c(sock);
    message m = c.call(msg_type::write, strings({"/a/b"}) + "hello", 41);
    EXPECT_EQ(m.type, msg_type::write);
    EXPECT_EQ(m.req_id, 41u);
    EXPECT_EQ(m.payload, std::string("OK\0", 3));
    m = c.call(msg_type::read, strings({"/a/b"}), 42);
    EXPECT_EQ(m.payload, "hello");
    m = c.call(msg_type::read, strings({"/nope"}), 43);
    EXPECT_EQ(m.type, msg_type::error);
    EXPECT_EQ(m.req_id, 43u);
    EXPECT_EQ(m.payload, std::string("ENOENT\0", 7));
}

TEST_F(XsServer, ReassemblesFramesSplitAcrossWrites) {
    server_thread st(sock);
    wire_client c(sock);
    const std::string frame = encode(msg_type::write, 7, 0, strings({"/split"}) + "v");
    const std::string two = frame + encode(msg_type::read, 8, 0, strings({"/split"}));
    // One byte at a time: every boundary inside header and payload is exercised.
    for (char ch : two) c.send_bytes(std::string_view(&ch, 1));
    EXPECT_EQ(c.reply()->req_id, 7u);
    EXPECT_EQ(c.reply()->payload, "v");
}

TEST_F(XsServer, OversizedFrameDropsOnlyThatClient) {
    server_thread st(sock);
    wire_client good(sock);
    wire_client bad(sock);
    header h{static_cast<std::uint32_t>(msg_type::read), 1, 0, 5000};
    bad.send_bytes(std::string_view(reinterpret_cast<const char*>(&h), sizeof(h)));
    EXPECT_TRUE(bad.closed_by_peer());
    EXPECT_EQ(good.call(msg_type::read, strings({"/tool"})).type, msg_type::read);
    EXPECT_TRUE(st.wait_for([](server& s) { return s.counters().bad_frames == 1; }));
}

TEST_F(XsServer, MalformedPayloadGetsAnErrorAndTheClientStays) {
    server_thread st(sock);
    wire_client c(sock);
    EXPECT_EQ(c.call(msg_type::read, "no-nul", 3).payload, std::string("EINVAL\0", 7));
    EXPECT_EQ(c.call(msg_type::watch_event, strings({"/a", "t"}), 4).payload,
              std::string("ENOSYS\0", 7));
    EXPECT_EQ(c.call(static_cast<msg_type>(999), "", 5).payload, std::string("ENOSYS\0", 7));
    EXPECT_EQ(c.call(msg_type::read, strings({"/tool"}), 6).type, msg_type::read);
}

TEST_F(XsServer, WatchEventsCrossConnections) {
    server_thread st(sock);
    wire_client watcher(sock);
    wire_client writer(sock);
    EXPECT_EQ(watcher.call(msg_type::watch, strings({"/w", "tok"})).type, msg_type::watch);
    auto initial = watcher.recv();
    ASSERT_TRUE(initial);
    EXPECT_EQ(initial->type, msg_type::watch_event);
    EXPECT_EQ(initial->payload, strings({"/w", "tok"}));
    writer.call(msg_type::write, strings({"/w/x"}) + "1");
    auto ev = watcher.recv();
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->payload, strings({"/w/x", "tok"}));
    EXPECT_EQ(ev->req_id, 0u);
}

TEST_F(XsServer, ClosingAConnectionDropsItsState) {
    server_thread st(sock);
    {
        wire_client c(sock);
        c.call(msg_type::watch, strings({"/w", "t"}));
        c.call(msg_type::transaction_start, strings({""}));
    }
    EXPECT_TRUE(st.wait_for([](server& s) { return s.connection_count() == 0; }));
    wire_client c2(sock);
    EXPECT_EQ(c2.call(msg_type::write, strings({"/w"}) + "x").type, msg_type::write);
}

TEST_F(XsServer, NonReadingWatcherHasItsOldestEventsDropped) {
    limits lim;
    lim.event_queue_bytes = 4096;
    server_thread st(sock, {}, lim);
    wire_client lazy(sock);
    wire_client writer(sock);
    lazy.call(msg_type::watch, strings({"/", "all"}));
    // Pipeline writes; the lazy client never reads until the end.
    std::string batch;
    const int writes = 3000;
    for (int i = 0; i < writes; ++i)
        batch += encode(msg_type::write, 1000 + i, 0, strings({"/spam/" + std::to_string(i)}));
    writer.send_bytes(batch);
    for (int i = 0; i < writes; ++i) ASSERT_EQ(writer.reply()->req_id, 1000u + i);
    const auto dropped = st.on_loop([&] { return st.srv().counters().events_dropped; });
    EXPECT_GT(dropped, 0u);
    // The newest events survive, in order, and the connection is intact.
    std::optional<message> last;
    std::size_t got = 0;
    while (auto m = lazy.recv(std::chrono::milliseconds(500))) {
        last = m;
        ++got;
    }
    ASSERT_TRUE(last);
    EXPECT_EQ(last->payload, strings({"/spam/" + std::to_string(writes - 1), "all"}));
    EXPECT_LT(got, static_cast<std::size_t>(writes));
    EXPECT_EQ(got + dropped, static_cast<std::size_t>(writes) + 1);  // + the initial event
}

TEST_F(XsServer, ClientNotReadingRepliesIsThrottledNotDropped) {
    limits lim;
    lim.reply_queue_bytes = 1024;
    server_thread st(sock, {}, lim);
    wire_client c(sock);
    const int n = 4000;
    std::string batch;
    for (int i = 0; i < n; ++i) batch += encode(msg_type::read, i, 0, strings({"/tool"}));
    std::thread sender([&] { c.send_bytes(batch); });
    EXPECT_TRUE(st.wait_for([](server& s) { return s.counters().throttled > 0; }));
    for (int i = 0; i < n; ++i) {
        auto m = c.reply();
        ASSERT_TRUE(m);
        ASSERT_EQ(m->req_id, static_cast<std::uint32_t>(i));
    }
    sender.join();
}

TEST_F(XsServer, StaleSocketIsReplacedButALiveDaemonIsNot) {
    {
        // Leave a bound socket file behind with nobody listening.
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
        ::close(fd);
    }
    server_thread st(sock);
    wire_client c(sock);
    EXPECT_EQ(c.call(msg_type::read, strings({"/tool"})).type, msg_type::read);
    util::event_loop other;
    EXPECT_THROW(server(other, sock), std::runtime_error);
    EXPECT_EQ(c.call(msg_type::read, strings({"/tool"})).type, msg_type::read);
}

TEST_F(XsServer, RefusesToReplaceANonSocketFile) {
    { std::ofstream(dir.file("plain")) << "x"; }
    util::event_loop loop;
    EXPECT_THROW(server(loop, dir.file("plain")), std::invalid_argument);
    EXPECT_TRUE(std::filesystem::exists(dir.file("plain")));
}

TEST_F(XsServer, ResolverIsAskedBeforeEveryRequest) {
    std::atomic<int> as_domain{-1};
    server_thread st(sock, [&](pid_t pid) -> std::optional<domid_t> {
        EXPECT_EQ(pid, ::getpid());  // SO_PEERCRED of our own connection
        const int d = as_domain.load();
        return d < 0 ? std::nullopt : std::optional<domid_t>(static_cast<domid_t>(d));
    });
    st.on_loop([&] { st.srv().introduce_domain(5); });
    wire_client c(sock);
    EXPECT_EQ(c.call(msg_type::write, strings({"/tool/x"}) + "1").type, msg_type::write);
    as_domain = 5;
    EXPECT_EQ(c.call(msg_type::write, strings({"/tool/y"}) + "1").payload,
              std::string("EACCES\0", 7));
    EXPECT_EQ(c.call(msg_type::write, strings({"mine"}) + "1").type, msg_type::write);
}

TEST_F(XsServer, ThrowingResolverDropsTheClient) {
    server_thread st(sock, [](pid_t) -> std::optional<domid_t> { throw std::runtime_error("x"); });
    wire_client c(sock);
    c.send(msg_type::read, strings({"/tool"}));
    EXPECT_TRUE(c.closed_by_peer());
}

// A forked process is a separate peer pid: the resolver maps it to domain 5 and
// everything it does through libxenstore is judged as domain 5.
TEST_F(XsServer, ForkedGuestProcessIsConfinedByTheResolver) {
    std::mutex mu;
    std::map<pid_t, domid_t> guests;
    server_thread st(sock, [&](pid_t pid) -> std::optional<domid_t> {
        std::lock_guard lock(mu);
        auto it = guests.find(pid);
        return it == guests.end() ? std::nullopt : std::optional<domid_t>(it->second);
    });
    st.on_loop([&] { st.srv().introduce_domain(5); });
    ::setenv("XENSTORED_PATH", sock.c_str(), 1);

    int go[2];
    int out[2];
    ASSERT_EQ(::pipe(go), 0);
    ASSERT_EQ(::pipe(out), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        char b;
        if (::read(go[0], &b, 1) != 1) ::_exit(2);
        auto s = platform::store::open();
        std::string r;
        auto err = [&](bool ok) { r += ok ? "ok " : std::string(error_name(errno)) + " "; };
        if (!s) ::_exit(3);
        err(s->write("/local/domain/5/device/vif/0/state", "1"));
        err(s->write("/local/domain/0/backend/x", "1"));
        err(s->read("/tool").has_value());
        err(s->write("data", "relative"));
        r += s->domain_path(5);
        (void)!::write(out[1], r.data(), r.size());
        ::_exit(0);
    }
    {
        std::lock_guard lock(mu);
        guests[child] = 5;
    }
    ASSERT_EQ(::write(go[1], "g", 1), 1);
    ::close(out[1]);
    std::string result;
    char buf[256];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof(buf))) > 0;) result.append(buf, n);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(result, "ok EACCES EACCES ok /local/domain/5");
    auto s = platform::store::open();
    ASSERT_TRUE(s);
    auto perms = s->get_perms("/local/domain/5/device/vif/0/state");
    ASSERT_TRUE(perms);
    ASSERT_EQ(perms->size(), 1u);
    EXPECT_EQ((*perms)[0].id, 5);
    EXPECT_EQ(s->read("/local/domain/5/data"), "relative");
    ::close(go[0]);
    ::close(go[1]);
    ::close(out[0]);
}

}  // namespace
}  // namespace vifkit::emu::xs
