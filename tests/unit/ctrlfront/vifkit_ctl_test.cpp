// The vifkit-ctl binary (from VIFKIT_BIN_DIR) against a ctl_server wired to
// ctl_bridge + ctrl_client + a fake backend, as vifkit-front would be.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <thread>

#include "ctrlfront_test_support.hpp"
#include "fake_ctrl_backend.hpp"
#include "vifkit/ctrlfront/ctl_bridge.hpp"

extern char** environ;

namespace vifkit::ctrlfront::test {
namespace {

using json = nlohmann::json;

struct run_result {
    int status = -1;
    std::string out, err;
};

std::string ctl_exe() {
    const char* d = std::getenv("VIFKIT_BIN_DIR");
    return std::string(d ? d : ".") + "/vifkit-ctl";
}

// Drains both pipes until EOF (or the deadline: then the child is killed).
void drain(int out_fd, int err_fd, pid_t pid, run_result& r) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    std::string* sinks[2] = {&r.out, &r.err};
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    int open_fds = 2;
    while (open_fds > 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            break;
        }
        if (::poll(fds, 2, 100) <= 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buf[4096];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(n));
            } else {
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
}

run_result run_ctl(const std::vector<std::string>& args) {
    run_result r;
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return r;
    std::vector<std::string> argv_s{ctl_exe()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    ::close(err[1]);
    if (rc == 0) {
        drain(out[0], err[0], pid, r);
        int st = 0;
        ::waitpid(pid, &st, 0);
        r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    ::close(out[0]);
    ::close(err[0]);
    return r;
}

// vifkit-front's side, running its event loop on a thread of its own.
class vifkit_ctl_test : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(::access(ctl_exe().c_str(), X_OK), 0) << "build vifkit-ctl first: " << ctl_exe();
        backend.silent.insert(99);
        bridge.attach(&client, &timer);
        start_loop();
    }
    void start_loop() {
        stop = false;
        thread = std::thread([this] {
            while (!stop) loop.run_once(5ms);
        });
    }
    void TearDown() override { stop_loop(); }
    void stop_loop() {
        stop = true;
        if (thread.joinable()) thread.join();
    }
    // Runs on the loop thread: the backend's turn, then the ctrl event.
    void kick() {
        loop.defer([this] {
            (void)backend.serve();
            EXPECT_TRUE(client.on_event());
        });
    }
    std::vector<std::string> with_socket(std::vector<std::string> args) {
        args.insert(args.begin(), {"--socket", path});
        return args;
    }

    temp_dir dir;
    std::string path = dir.file("front.ctl");
    util::event_loop loop;
    page_ptr page = make_page();
    fake_grants grants;
    ctrl_client client{page.get()};
    fake_ctrl_backend backend{page.get(), grants};
    expiry_timer timer{loop, client};
    ctl_bridge bridge{grants.hooks([this] { kick(); })};
    ctl_server server{loop, path, bridge.handler()};
    std::atomic<bool> stop{false};
    std::thread thread;
};

TEST_F(vifkit_ctl_test, help_lists_every_message_type_and_its_data) {
    const auto r = run_ctl({"--help"});
    EXPECT_EQ(r.status, 0);
    for (const auto& t : known_types()) EXPECT_NE(r.out.find(t.name), std::string::npos) << t.name;
    EXPECT_NE(r.out.find("d0 = queue"), std::string::npos);
    EXPECT_NE(r.out.find("d0 = gref of page holding the key"), std::string::npos);
    EXPECT_NE(r.out.find("TIMEOUT"), std::string::npos);
}

TEST_F(vifkit_ctl_test, get_gref_mapping_size_human_output) {
    const auto r = run_ctl(with_socket({"get_gref_mapping_size", "0"}));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "get_gref_mapping_size -> SUCCESS data=1024\n");
}

TEST_F(vifkit_ctl_test, numeric_type_and_failure_status_exit_1) {
    const auto r = run_ctl(with_socket({"8", "1"}));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.out, "get_gref_mapping_size -> INVALID_PARAMETER data=0\n");
}

TEST_F(vifkit_ctl_test, add_then_del_with_grefs_prints_entry_statuses) {
    auto r = run_ctl(with_socket({"add_gref_mapping", "0", "--grefs", "100:ro,101"}));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "add_gref_mapping -> SUCCESS data=0\n");
    r = run_ctl(with_socket({"del_gref_mapping", "0", "--grefs", "101,555"}));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out,
              "del_gref_mapping -> SUCCESS data=1\n"
              "  [0] ref=101 rw status=SUCCESS\n"
              "  [1] ref=555 rw status=INVALID_PARAMETER\n");
    stop_loop();
    EXPECT_EQ(backend.mapped, (std::set<std::uint32_t>{100}));
    EXPECT_EQ(backend.last.data[2], 2u) << "entry count filled in";
    EXPECT_TRUE(grants.pages.empty());
}

TEST_F(vifkit_ctl_test, page_hex_fills_the_count_and_prints_page_after) {
    const auto r = run_ctl(with_socket({"set_hash_key", "--page-hex", "6d5a56da"}));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.out, "set_hash_key -> NOT_SUPPORTED data=0\npage_after=6d5a56da\n");
    stop_loop();
    EXPECT_EQ(backend.last.data[1], 4u) << "key length filled in";
    EXPECT_NE(backend.last.data[0], 0u) << "gref in data[0]";
}

TEST_F(vifkit_ctl_test, json_output_is_the_raw_reply) {
    auto r = run_ctl(with_socket({"--json", "get_gref_mapping_size", "0"}));
    EXPECT_EQ(r.status, 0) << r.err;
    json j = json::parse(r.out);
    EXPECT_EQ(j["ok"], true);
    EXPECT_EQ(j["status_name"], "SUCCESS");
    EXPECT_EQ(j["data"], 1024);
    r = run_ctl(with_socket({"--json", "stats"}));
    EXPECT_EQ(r.status, 0) << r.err;
    j = json::parse(r.out);
    EXPECT_EQ(j["stats"]["connected"], true);
    EXPECT_EQ(j["stats"]["sent"], 1);
}

TEST_F(vifkit_ctl_test, stats_human_output) {
    const auto r = run_ctl(with_socket({"stats"}));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["completed"], 0);
}

TEST_F(vifkit_ctl_test, silent_backend_times_out) {
    const auto r = run_ctl(with_socket({"99", "--timeout-ms", "200"}));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.out, "type 99 -> TIMEOUT data=0\n");
}

TEST_F(vifkit_ctl_test, usage_errors_exit_2) {
    auto r = run_ctl(with_socket({"no_such_type"}));
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("unknown message type"), std::string::npos) << r.err;
    r = run_ctl(with_socket({"get_hash_flags", "--page-hex", "00"}));
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("--page-arg"), std::string::npos) << r.err;
    r = run_ctl(with_socket({"add_gref_mapping", "0", "--grefs", "1:xx"}));
    EXPECT_EQ(r.status, 2);
    r = run_ctl(with_socket({"set_hash_flags", "1", "2", "3", "4"}));
    EXPECT_EQ(r.status, 2);
    r = run_ctl(with_socket({}));  // no command
    EXPECT_EQ(r.status, 2);
    r = run_ctl(with_socket({"stats", "--page-arg", "5"}));
    EXPECT_EQ(r.status, 2);
    r = run_ctl({"--socket", dir.file("missing.sock"), "stats"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("cannot connect"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty());
}

TEST_F(vifkit_ctl_test, frontend_error_exit_2) {
    // The control ring goes down (disconnect): vifkit-ctl reports the frontend's error.
    stop_loop();  // the loop's objects belong to its thread while it runs
    client.cancel_all();
    bridge.detach();
    start_loop();
    const auto r = run_ctl(with_socket({"get_hash_flags"}));
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.err.find("control ring not connected"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vifkit::ctrlfront::test
