#include "tool_common.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <fstream>
#include <system_error>

#include <chrono>

#include <spdlog/spdlog.h>

#include "vifkit/platform/xen.hpp"

namespace vifkit::tools {

void install_signals(util::event_loop& loop, signal_handlers h) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGHUP}) sigaddset(&set, s);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0)
        throw std::system_error(errno, std::generic_category(), "sigprocmask");
    ::signal(SIGPIPE, SIG_IGN);
    const int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
    loop.add(fd, [fd, h] {
        signalfd_siginfo si;
        while (::read(fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
            if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && h.on_stop) h.on_stop();
            if (si.ssi_signo == SIGUSR1 && h.on_stats) h.on_stats();
            if (si.ssi_signo == SIGHUP && h.on_hup) h.on_hup();
        }
    });
}

void use_store_socket(const std::string& path) {
    if (!path.empty()) ::setenv("XENSTORED_PATH", path.c_str(), 1);
}

void write_json(const std::string& path, const nlohmann::json& j) {
    const std::string text = j.dump(2) + "\n";
    if (path == "-") {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
        return;
    }
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        f << text;
        if (!f) {
            spdlog::error("cannot write {}", tmp);
            return;
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) spdlog::error("cannot rename {} to {}", tmp, path);
}

emu_session open_emu(const std::string& broker, domid_t domid, std::size_t mem_pages, std::size_t grant_entries) {
    emu_session s;
    s.domain = emu::domain::attach(broker, domid, mem_pages, grant_entries);
    s.svc = s.domain->make_services();
    s.store = platform::store::open();
    if (!s.store) throw std::runtime_error(std::string("cannot connect to xenstored: ") + std::strerror(errno));
    return s;
}

void watch_broker(util::event_loop& loop, emu_session& s, const char* tool, bool& lost) {
    if (!s.domain) return;
    emu::domain* d = s.domain.get();
    const int fd = d->broker_fd();
    loop.add(fd, [&loop, &lost, d, fd, tool] {
        if (!d->broker_lost()) return;
        loop.remove(fd);
        spdlog::error("{}: lost the connection to the emulated hypervisor (vifkit-xenstored's broker exited); "
                      "our domain, grants and event channels are gone with it and a restarted "
                      "vifkit-xenstored knows none of them: exiting",
                      tool);
        lost = true;
        loop.stop();
    });
}

emu_session open_xen(std::optional<domid_t> domid, bool backend) {
    if (std::string why; !platform::xen::devices_present(&why))
        throw std::runtime_error("platform xen: not running on Xen (or the xen-evtchn/xen-gntdev/xen-gntalloc "
                                 "modules are not loaded): " + why);
    emu_session s;
    s.store = platform::store::open();
    if (!s.store)
        throw std::runtime_error(std::string("platform xen: cannot connect to xenstored (xs_open): ") +
                                 std::strerror(errno) + " (not running on Xen, or no xenstored / xenbus device)");
    if (!domid) {
        domid = platform::xen::self_domid(*s.store);
        if (!domid)
            throw std::runtime_error(std::string("platform xen: cannot read our domain id from xenstore (domid): ") +
                                     std::strerror(errno) + "; pass --domid");
    }
    platform::xen::open_options o;
    o.mapper = backend;
    o.sharer = !backend;
    if (backend) o.max_grants = 65536;
    s.svc = platform::xen::open_services(*domid, o);
    return s;
}

void run_loop(util::event_loop& loop, bool busy, const std::function<bool()>& poll) {
    if (!busy) return loop.run();
    unsigned idle = 0;
    for (unsigned pass = 0; !loop.stopped(); ++pass) {
        idle = poll() ? 0 : idle + 1;
        if (pass % busy_loop_interval == 0) loop.run_once(std::chrono::milliseconds(0));
        // Nothing moved for a while: still spin, but let anything else that is
        // runnable on this CPU go first (no cost when the CPU is ours alone).
        if (idle >= busy_idle_yield) {
            ::sched_yield();
            idle = 0;
        }
    }
}

void dump_stats(const std::string& path, nlohmann::json j, const char* tool) {
    j["tool"] = tool;
    // When the counters were taken (CLOCK_MONOTONIC): rates from two dumps
    // do not depend on how fast the reader noticed them.
    j["monotonic_ns"] = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch()).count();
    write_json(path.empty() ? "-" : path, j);
}

}  // namespace vifkit::tools
