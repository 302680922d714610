#include "tool_common.hpp"

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

#include <spdlog/spdlog.h>

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

void dump_stats(const std::string& path, nlohmann::json j, const char* tool) {
    j["tool"] = tool;
    write_json(path.empty() ? "-" : path, j);
}

}  // namespace vifkit::tools
