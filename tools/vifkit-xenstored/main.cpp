// vifkit-xenstored: the emulated Xen's xenstore daemon. Speaks the real
// xenstore wire protocol on a unix socket, so libxenstore and the Debian
// xenstore-* tools work against it with XENSTORED_PATH=<socket>.
//
//   vifkit-xenstored --socket /run/vifkit/xs.sock [--broker B] [--log-level info] [--pid-file F]
//
// Runs in the foreground; SIGTERM / SIGINT stop it cleanly (socket removed).
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>

#include "vifkit/emu/broker.hpp"
#include "vifkit/emu/xenstored/server.hpp"
#include "vifkit/util/event_loop.hpp"
#include "vifkit/util/log.hpp"

namespace {

using namespace vifkit;

struct options {
    std::string socket;
    std::string log_level = "info";
    std::string pid_file;
    std::string broker;
};

// SIGTERM and SIGINT arrive through a signalfd in the loop, so shutdown runs
// on the loop thread with no async-signal-safety concerns.
class stop_signals {
public:
    explicit stop_signals(util::event_loop& loop) : loop_(loop) {
        sigemptyset(&set_);
        sigaddset(&set_, SIGTERM);
        sigaddset(&set_, SIGINT);
        if (sigprocmask(SIG_BLOCK, &set_, nullptr) != 0)
            throw std::system_error(errno, std::generic_category(), "sigprocmask");
        fd_ = signalfd(-1, &set_, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
        loop_.add(fd_, [this] { on_signal(); });
    }
    ~stop_signals() {
        loop_.remove(fd_);
        ::close(fd_);
        sigprocmask(SIG_UNBLOCK, &set_, nullptr);
    }
    stop_signals(const stop_signals&) = delete;
    stop_signals& operator=(const stop_signals&) = delete;

private:
    void on_signal() {
        signalfd_siginfo info{};
        while (::read(fd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
            spdlog::info("signal {} received, shutting down", info.ssi_signo);
            loop_.stop();
        }
    }

    util::event_loop& loop_;
    sigset_t set_{};
    int fd_ = -1;
};

// Written once the socket is listening (so "pid file exists" means "ready"),
// removed on exit.
class pid_file {
public:
    explicit pid_file(std::string path) : path_(std::move(path)) {
        if (path_.empty()) return;
        std::ofstream f(path_, std::ios::trunc);
        f << ::getpid() << '\n';
        if (!f) throw std::runtime_error("cannot write pid file " + path_);
    }
    ~pid_file() {
        if (!path_.empty()) ::unlink(path_.c_str());
    }
    pid_file(const pid_file&) = delete;
    pid_file& operator=(const pid_file&) = delete;

private:
    std::string path_;
};

int run(const options& opt) {
    util::event_loop loop;
    stop_signals signals(loop);
    emu::xs::server xenstored(loop, opt.socket);

    // The emulated hypervisor's broker shares the loop: it introduces and
    // releases /local/domain/<id> as domains come and go (the toolstack's job
    // on real Xen), and tells the store which domain a client process is.
    std::optional<emu::broker> broker;
    if (!opt.broker.empty()) {
        broker.emplace(loop, opt.broker,
                       emu::broker::hooks{[&](domid_t d) { xenstored.introduce_domain(d); },
                                          [&](domid_t d) { xenstored.release_domain(d); }});
        xenstored.set_resolver([&](pid_t p) { return broker->domid_of_pid(p); });
    }

    pid_file pid(opt.pid_file);
    loop.run();
    spdlog::info("stopped: {} connections served", xenstored.counters().accepted);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    options opt;
    CLI::App app{"vifkit-xenstored: emulated xenstore daemon (real xenstore wire protocol)"};
    app.add_option("--socket", opt.socket, "unix socket to listen on (XENSTORED_PATH)")
        ->required();
    app.add_option("--log-level", opt.log_level, "trace|debug|info|warn|err|critical|off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "err", "critical", "off"}));
    app.add_option("--pid-file", opt.pid_file, "write our pid here once listening");
    app.add_option("--broker", opt.broker,
                   "also run the emulated hypervisor's broker (domids, guest memory, grant tables, "
                   "event channels) on this unix socket");
    CLI11_PARSE(app, argc, argv);

    util::init_logging("vifkit-xenstored", opt.log_level);
    ::signal(SIGPIPE, SIG_IGN);  // a client vanishing mid-reply is not fatal
    try {
        return run(opt);
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return 1;
    }
}
