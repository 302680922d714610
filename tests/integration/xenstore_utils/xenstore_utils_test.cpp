// The real vifkit-xenstored binary driven by Debian's xenstore-* utilities
// (libxenstore 4.17) through XENSTORED_PATH.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

bool in_path(const std::string& tool) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/bin:/bin");
    for (std::string d; std::getline(dirs, d, ':');)
        if (::access((d + "/" + tool).c_str(), X_OK) == 0) return true;
    return false;
}

std::string bin_dir() {
    const char* d = std::getenv("VIFKIT_BIN_DIR");
    return d ? d : ".";
}

struct result {
    int status = -1;  // exit code, or -1 if it did not exit normally
    std::string out;  // stdout and stderr
};

// Runs a shell command line (our own fixed strings) and captures its output.
result run(const std::string& cmd) {
    result r;
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) r.out.append(buf, n);
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

// vifkit-xenstored as a child process.
class daemon_proc {
public:
    daemon_proc(std::string sock, std::string pid_file)
        : sock_(std::move(sock)), pid_file_(std::move(pid_file)) {}
    ~daemon_proc() {
        if (pid_ > 0) stop(SIGKILL);
    }

    // Starts it and waits (generously) until it has written its pid file,
    // which it does only once listening.
    bool start() {
        const std::string exe = bin_dir() + "/vifkit-xenstored";
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execl(exe.c_str(), exe.c_str(), "--socket", sock_.c_str(), "--pid-file",
                    pid_file_.c_str(), "--log-level", "warn", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < deadline) {
            if (fs::exists(pid_file_)) return true;
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                return false;
            }
            std::this_thread::sleep_for(5ms);
        }
        return false;
    }
    // Signals it and returns its exit code (-1: killed by a signal).
    int stop(int sig) {
        ::kill(pid_, sig);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }

private:
    std::string sock_;
    std::string pid_file_;
    pid_t pid_ = -1;
};

class XenstoreUtils : public ::testing::Test {
protected:
    void SetUp() override {
        for (auto t : {"xenstore-read", "xenstore-write", "xenstore-ls", "xenstore-watch",
                       "xenstore-rm", "xenstore-chmod", "xenstore-list", "xenstore-exists"})
            if (!in_path(t)) GTEST_SKIP() << t << " not installed (Debian package xenstore-utils)";
        char tmpl[] = "/tmp/vifkit-xsu-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        sock_ = dir_ + "/xs.sock";
        ::setenv("XENSTORED_PATH", sock_.c_str(), 1);
        d_.emplace(sock_, dir_ + "/xs.pid");
        ASSERT_TRUE(d_->start()) << "vifkit-xenstored did not start";
    }
    void TearDown() override {
        d_.reset();
        std::error_code ec;
        if (!dir_.empty()) fs::remove_all(dir_, ec);
    }

    std::string dir_;
    std::string sock_;
    std::optional<daemon_proc> d_;
};

TEST_F(XenstoreUtils, WriteReadListExistsRm) {
    EXPECT_EQ(run("xenstore-write /local/domain/3/name vm3 /local/domain/3/memory 512").status, 0);
    EXPECT_EQ(run("xenstore-read /local/domain/3/name").out, "vm3\n");
    EXPECT_EQ(run("xenstore-list /local/domain/3").out, "name\nmemory\n");
    EXPECT_EQ(run("xenstore-exists /local/domain/3/memory").status, 0);
    EXPECT_EQ(run("xenstore-rm /local/domain/3/memory").status, 0);
    EXPECT_NE(run("xenstore-exists /local/domain/3/memory").status, 0);
    const result r = run("xenstore-read /local/domain/3/memory");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("couldn't read path"), std::string::npos) << r.out;
}

TEST_F(XenstoreUtils, LsShowsTheTree) {
    ASSERT_EQ(run("xenstore-write /vm/a 1 /vm/b/c 'two words'").status, 0);
    EXPECT_EQ(run("xenstore-ls /vm").out, "a = \"1\"\nb = \"\"\n c = \"two words\"\n");
    const result all = run("xenstore-ls");
    EXPECT_EQ(all.status, 0);
    EXPECT_NE(all.out.find("tool = \"\"\n xenstored = \"\"\n"), std::string::npos) << all.out;
}

TEST_F(XenstoreUtils, ChmodAndLsPermissions) {
    ASSERT_EQ(run("xenstore-write /local/domain/3/device/vif/0/state 1").status, 0);
    EXPECT_EQ(run("xenstore-chmod /local/domain/3 n3 r0").status, 0);
    EXPECT_EQ(run("xenstore-chmod -r /local/domain/3/device b3 r7").status, 0);
    const result ls = run("xenstore-ls -p /local/domain");
    EXPECT_EQ(ls.status, 0);
    EXPECT_NE(ls.out.find("(n3,r0)"), std::string::npos) << ls.out;
    EXPECT_NE(ls.out.find("state = \"1\""), std::string::npos) << ls.out;
    EXPECT_NE(ls.out.find("(b3,r7)"), std::string::npos) << ls.out;
    EXPECT_NE(run("xenstore-chmod /local/domain/3 q3").status, 0);
}

// Reads from `fd` until a full line arrives (generous timeout); "" on failure.
std::string read_line(int fd, std::string& buffered) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
        if (auto nl = buffered.find('\n'); nl != std::string::npos) {
            std::string line = buffered.substr(0, nl);
            buffered.erase(0, nl + 1);
            return line;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return "";
        char buf[256];
        const ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n <= 0) return "";
        buffered.append(buf, static_cast<std::size_t>(n));
    }
}

TEST_F(XenstoreUtils, WatchPrintsEvents) {
    ASSERT_EQ(run("xenstore-write /local/domain/4/state 1").status, 0);
    // -n 2: the initial event, then one change. The initial event proves the
    // watch is registered before we write.
    FILE* w = ::popen("xenstore-watch -n 2 /local/domain/4", "r");
    ASSERT_NE(w, nullptr);
    std::string buffered;
    EXPECT_EQ(read_line(::fileno(w), buffered), "/local/domain/4");
    EXPECT_EQ(run("xenstore-write /local/domain/4/state 4").status, 0);
    EXPECT_EQ(read_line(::fileno(w), buffered), "/local/domain/4/state");
    const int st = ::pclose(w);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST_F(XenstoreUtils, WatchSeesRemoval) {
    ASSERT_EQ(run("xenstore-write /gone/x 1").status, 0);
    FILE* w = ::popen("xenstore-watch -n 2 /gone/x", "r");
    ASSERT_NE(w, nullptr);
    std::string buffered;
    EXPECT_EQ(read_line(::fileno(w), buffered), "/gone/x");
    EXPECT_EQ(run("xenstore-rm /gone").status, 0);
    EXPECT_EQ(read_line(::fileno(w), buffered), "/gone/x");
    ::pclose(w);
}

TEST_F(XenstoreUtils, SigtermExitsCleanlyAndRemovesSocket) {
    ASSERT_EQ(run("xenstore-write /x 1").status, 0);
    EXPECT_EQ(d_->stop(SIGTERM), 0);
    EXPECT_FALSE(fs::exists(sock_));
    EXPECT_FALSE(fs::exists(dir_ + "/xs.pid"));
    EXPECT_NE(run("xenstore-read /x").status, 0);
}

TEST_F(XenstoreUtils, RestartsOverAStaleSocket) {
    EXPECT_EQ(d_->stop(SIGKILL), -1);
    ASSERT_TRUE(fs::is_socket(sock_));  // left behind by the killed daemon
    fs::remove(dir_ + "/xs.pid");
    d_.emplace(sock_, dir_ + "/xs.pid");
    ASSERT_TRUE(d_->start());
    EXPECT_EQ(run("xenstore-write /again 1").status, 0);
    EXPECT_EQ(run("xenstore-read /again").out, "1\n");
}

TEST_F(XenstoreUtils, SecondDaemonOnTheSameSocketRefuses) {
    daemon_proc second(sock_, dir_ + "/second.pid");
    EXPECT_FALSE(second.start());
    EXPECT_EQ(run("xenstore-write /still 1").status, 0);  // the first one is unharmed
}

TEST(XenstoredCli, HelpAndMissingSocket) {
    const result help = run(bin_dir() + "/vifkit-xenstored --help");
    EXPECT_EQ(help.status, 0);
    EXPECT_NE(help.out.find("--socket"), std::string::npos);
    EXPECT_NE(help.out.find("--pid-file"), std::string::npos);
    EXPECT_NE(run(bin_dir() + "/vifkit-xenstored").status, 0);
    EXPECT_NE(run(bin_dir() + "/vifkit-xenstored --socket /tmp/x --log-level loud").status, 0);
}

}  // namespace
