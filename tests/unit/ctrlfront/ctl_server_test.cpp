// ctl_server over real unix sockets: several clients, async replies in
// request order, and misbehaving clients confined to their own connection.
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "ctrlfront_test_support.hpp"
#include "vifkit/ctrlfront/ctl_protocol.hpp"

namespace vifkit::ctrlfront::test {
namespace {

using json = nlohmann::json;

const std::string stats_line = R"({"op":"stats"})"
                               "\n";
std::string send_line(int type) { return R"({"op":"send","type":)" + std::to_string(type) + "}\n"; }

json parse(const std::optional<std::string>& line) {
    EXPECT_TRUE(line.has_value());
    return line ? json::parse(*line) : json{};
}

// A handler that keeps every reply for the test to answer later.
struct held_replies {
    std::vector<std::pair<ctl_request, ctl_server::reply_fn>> held;
    ctl_server::handler handler() {
        return [this](const ctl_request& r, ctl_server::reply_fn reply) { held.emplace_back(r, std::move(reply)); };
    }
};

class ctl_server_test : public ::testing::Test {
protected:
    temp_dir dir;
    std::string path = dir.file("ctl.sock");
    util::event_loop loop;
};

TEST_F(ctl_server_test, synchronous_reply) {
    ctl_server server(loop, path, [](const ctl_request& r, ctl_server::reply_fn reply) {
        reply(r.op == ctl_op::stats ? format_stats(json{{"n", 1}}) : format_error("no"));
    });
    sock_client c(path);
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send(loop, stats_line));
    const json j = parse(c.read_line(loop));
    EXPECT_EQ(j["ok"], true);
    EXPECT_EQ(j["stats"]["n"], 1);
    EXPECT_EQ(server.get_counters().requests, 1u);
}

TEST_F(ctl_server_test, socket_is_private_and_removed_on_destruction) {
    {
        ctl_server server(loop, path, [](const ctl_request&, ctl_server::reply_fn) {});
        struct stat st{};
        ASSERT_EQ(::stat(path.c_str(), &st), 0);
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 0777, 0600u);
    }
    EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(ctl_server_test, two_clients_get_their_own_async_replies) {
    held_replies h;
    ctl_server server(loop, path, h.handler());
    sock_client a(path), b(path);
    ASSERT_TRUE(a.send(loop, send_line(1)));
    ASSERT_TRUE(b.send(loop, send_line(2)));
    ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() == 2; }));
    EXPECT_EQ(server.clients(), 2u);
    // Answer in reverse order of arrival; each reply names the request's type.
    for (auto it = h.held.rbegin(); it != h.held.rend(); ++it)
        it->second(format_reply(ctl_reply{0, it->first.type, 0, 100u + it->first.type, std::nullopt}));
    EXPECT_EQ(parse(a.read_line(loop))["data"], 101);
    EXPECT_EQ(parse(b.read_line(loop))["data"], 102);
}

TEST_F(ctl_server_test, replies_keep_request_order_within_a_connection) {
    held_replies h;
    ctl_server server(loop, path, h.handler());
    sock_client a(path);
    ASSERT_TRUE(a.send(loop, send_line(1) + send_line(2) + send_line(3)));
    ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() == 3; }));
    h.held[2].second(format_error("third"));
    h.held[1].second(format_error("second"));
    EXPECT_FALSE(a.read_line(loop, 100ms).has_value()) << "first is still unanswered";
    h.held[0].second(format_error("first"));
    h.held[0].second(format_error("ignored: answered twice"));
    EXPECT_EQ(parse(a.read_line(loop))["error"], "first");
    EXPECT_EQ(parse(a.read_line(loop))["error"], "second");
    EXPECT_EQ(parse(a.read_line(loop))["error"], "third");
    EXPECT_FALSE(a.read_line(loop, 100ms).has_value());
}

TEST_F(ctl_server_test, garbage_gets_an_error_and_the_connection_stays) {
    held_replies h;
    ctl_server server(loop, path, h.handler());
    sock_client a(path);
    ASSERT_TRUE(a.send(loop, "\x01\x02 not json \xff\r\n"));
    json j = parse(a.read_line(loop));
    EXPECT_EQ(j["ok"], false);
    EXPECT_NE(j["error"].get<std::string>().find("JSON"), std::string::npos);
    ASSERT_TRUE(a.send(loop, R"({"op":"send","type":"bogus"})" "\n"));
    EXPECT_EQ(parse(a.read_line(loop))["ok"], false);
    ASSERT_TRUE(a.send(loop, "\n\r\n" + stats_line));  // blank lines are skipped
    ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() == 1; }));
    h.held[0].second(format_stats(json::object()));
    EXPECT_EQ(parse(a.read_line(loop))["ok"], true);
    EXPECT_TRUE(h.held.size() == 1) << "invalid requests never reach the handler";
    EXPECT_EQ(server.get_counters().bad_requests, 2u);
}

TEST_F(ctl_server_test, huge_line_drops_only_that_client) {
    held_replies h;
    ctl_server server(loop, path, h.handler());
    sock_client bad(path), good(path);
    ASSERT_TRUE(good.send(loop, stats_line));
    ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() == 1; }));
    ASSERT_TRUE(bad.send(loop, std::string(ctl_max_line + 100, 'x')));  // no newline
    const json j = parse(bad.read_line(loop));
    EXPECT_EQ(j["ok"], false);
    EXPECT_TRUE(bad.wait_eof(loop));
    EXPECT_EQ(server.clients(), 1u);
    EXPECT_EQ(server.get_counters().dropped_clients, 1u);
    h.held[0].second(format_stats(json::object()));
    EXPECT_EQ(parse(good.read_line(loop))["ok"], true);
    ASSERT_TRUE(good.send(loop, stats_line));
    ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() == 2; }));
}

TEST_F(ctl_server_test, huge_complete_line_is_also_dropped) {
    ctl_server server(loop, path, [](const ctl_request&, ctl_server::reply_fn r) { r(format_error("x")); });
    sock_client bad(path);
    ASSERT_TRUE(bad.send(loop, std::string(ctl_max_line + 10, ' ') + "\n"));
    EXPECT_TRUE(bad.wait_eof(loop));
    EXPECT_EQ(server.clients(), 0u);
}

TEST_F(ctl_server_test, line_of_exactly_the_limit_is_accepted) {
    ctl_server server(loop, path, [](const ctl_request&, ctl_server::reply_fn r) { r(format_stats({})); });
    sock_client c(path);
    std::string line = R"({"op":"stats"})";
    line.insert(1, std::string(ctl_max_line - line.size(), ' '));
    ASSERT_EQ(line.size(), ctl_max_line);
    ASSERT_TRUE(c.send(loop, line + "\n"));
    EXPECT_EQ(parse(c.read_line(loop))["ok"], true);
}

TEST_F(ctl_server_test, disconnect_mid_request_loses_only_that_client) {
    held_replies h;
    ctl_server server(loop, path, h.handler());
    {
        sock_client a(path);
        ASSERT_TRUE(a.send(loop, stats_line));
        ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() == 1; }));
        sock_client partial(path);
        ASSERT_TRUE(partial.send(loop, R"({"op":"sta)"));
        ASSERT_TRUE(pump_until(loop, [&] { return server.clients() == 2; }));
    }
    // Both left: the one with a partial line goes at once, the other once its
    // pending reply has nowhere to go.
    h.held[0].second(format_stats({}));
    EXPECT_TRUE(pump_until(loop, [&] { return server.clients() == 0; }));
    EXPECT_EQ(h.held.size(), 1u);
    sock_client c(path);
    ASSERT_TRUE(c.send(loop, stats_line));
    ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() == 2; }));
}

TEST_F(ctl_server_test, half_closed_client_still_gets_its_reply) {
    held_replies h;
    ctl_server server(loop, path, h.handler());
    sock_client a(path);
    ASSERT_TRUE(a.send(loop, stats_line));
    a.shutdown_write();
    ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() == 1; }));
    h.held[0].second(format_stats({}));
    EXPECT_EQ(parse(a.read_line(loop))["ok"], true);
    EXPECT_TRUE(a.wait_eof(loop));
}

TEST_F(ctl_server_test, reply_after_server_destruction_is_ignored) {
    held_replies h;
    {
        ctl_server server(loop, path, h.handler());
        sock_client a(path);
        ASSERT_TRUE(a.send(loop, stats_line));
        ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() == 1; }));
    }
    EXPECT_NO_THROW(h.held[0].second(format_stats({})));
}

TEST_F(ctl_server_test, inflight_limit_pauses_reading) {
    held_replies h;
    ctl_server::limits lim;
    lim.inflight_per_client = 2;
    ctl_server server(loop, path, h.handler(), lim);
    sock_client a(path);
    ASSERT_TRUE(a.send(loop, send_line(1) + send_line(2) + send_line(3) + send_line(4) + send_line(5)));
    ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() == 2; }));
    loop.run_once(50ms);
    EXPECT_EQ(h.held.size(), 2u);
    for (std::size_t next = 0; next < 5; ++next) {
        ASSERT_TRUE(pump_until(loop, [&] { return h.held.size() > next; }));
        h.held[next].second(format_error(std::to_string(h.held[next].first.type)));
    }
    for (int t = 1; t <= 5; ++t) EXPECT_EQ(parse(a.read_line(loop))["error"], std::to_string(t));
}

TEST_F(ctl_server_test, client_limit_refuses_extra_clients) {
    ctl_server::limits lim;
    lim.clients = 1;
    ctl_server server(loop, path, [](const ctl_request&, ctl_server::reply_fn r) { r(format_stats({})); }, lim);
    sock_client a(path);
    ASSERT_TRUE(pump_until(loop, [&] { return server.clients() == 1; }));
    sock_client b(path);
    EXPECT_TRUE(b.wait_eof(loop));
    EXPECT_EQ(server.get_counters().refused, 1u);
    ASSERT_TRUE(a.send(loop, stats_line));
    EXPECT_EQ(parse(a.read_line(loop))["ok"], true);
}

TEST_F(ctl_server_test, handler_exception_becomes_an_error_reply) {
    ctl_server server(loop, path, [](const ctl_request&, ctl_server::reply_fn) -> void {
        throw std::runtime_error("boom");
    });
    sock_client a(path);
    ASSERT_TRUE(a.send(loop, stats_line));
    const json j = parse(a.read_line(loop));
    EXPECT_EQ(j["ok"], false);
    EXPECT_NE(j["error"].get<std::string>().find("boom"), std::string::npos);
}

TEST_F(ctl_server_test, stale_socket_is_replaced_live_one_and_other_files_are_not) {
    { ctl_server first(loop, path, [](const ctl_request&, ctl_server::reply_fn) {}); }
    // Leave a stale socket file behind (bound, never listening).
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
    ctl_server server(loop, path, [](const ctl_request&, ctl_server::reply_fn r) { r(format_stats({})); });
    EXPECT_THROW(ctl_server(loop, path, [](const ctl_request&, ctl_server::reply_fn) {}), std::runtime_error);
    const std::string plain = dir.file("plain");
    { std::ofstream(plain) << "x"; }
    EXPECT_THROW(ctl_server(loop, plain, [](const ctl_request&, ctl_server::reply_fn) {}), std::runtime_error);
    EXPECT_TRUE(std::filesystem::exists(plain));
}

TEST_F(ctl_server_test, ctl_call_round_trip_and_errors) {
    std::atomic<bool> stop{false};
    ctl_server server(loop, path, [](const ctl_request& r, ctl_server::reply_fn reply) {
        if (r.op == ctl_op::stats) reply(format_stats(json{{"x", 1}}));
        // sends are never answered: the caller's timeout must end the wait
    });
    std::thread t([&] {
        while (!stop) loop.run_once(5ms);
    });
    const auto ok = ctl_call(path, json{{"op", "stats"}}, 5s);
    const auto silent = ctl_call(path, json{{"op", "send"}, {"type", 1}}, 200ms);
    const auto missing = ctl_call(dir.file("nope.sock"), json{{"op", "stats"}}, 1s);
    stop = true;
    t.join();
    ASSERT_TRUE(ok) << ok.error;
    EXPECT_EQ(json::parse(*ok.value)["stats"]["x"], 1);
    EXPECT_FALSE(silent);
    EXPECT_NE(silent.error.find("timed out"), std::string::npos) << silent.error;
    EXPECT_FALSE(missing);
    EXPECT_NE(missing.error.find("cannot connect"), std::string::npos) << missing.error;
}

}  // namespace
}  // namespace vifkit::ctrlfront::test
