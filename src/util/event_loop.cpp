#include "vifkit/util/event_loop.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace vifkit::util {

event_loop::event_loop() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
}

event_loop::~event_loop() {
    if (epfd_ >= 0) ::close(epfd_);
}

void event_loop::add(int fd, callback cb) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    const bool existed = cbs_.count(fd) != 0;
    cbs_[fd] = std::make_shared<callback>(std::move(cb));
    if (::epoll_ctl(epfd_, existed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0)
        throw std::system_error(errno, std::generic_category(), "epoll_ctl");
}

void event_loop::remove(int fd) {
    if (cbs_.erase(fd) != 0) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

int event_loop::run_once(std::chrono::milliseconds timeout) {
    epoll_event evs[64];
    const int wait_ms = deferred_.empty() ? static_cast<int>(timeout.count()) : 0;
    const int n = ::epoll_wait(epfd_, evs, 64, wait_ms);
    if (n < 0) {
        if (errno == EINTR) return 0;
        throw std::system_error(errno, std::generic_category(), "epoll_wait");
    }
    int dispatched = 0;
    // stop() only ends run(): run_once() keeps dispatching, so shutdown code can
    // still drive a last exchange with a peer (e.g. DEL before revoke).
    for (int i = 0; i < n; ++i) {
        auto it = cbs_.find(evs[i].data.fd);
        if (it == cbs_.end()) continue;  // removed by an earlier callback in this pass
        auto cb = it->second;            // keep alive while it runs
        (*cb)();
        ++dispatched;
    }
    if (!deferred_.empty()) {
        std::vector<callback> now;
        now.swap(deferred_);
        for (auto& cb : now) cb();
        dispatched += static_cast<int>(now.size());
    }
    return dispatched;
}

void event_loop::run() {
    while (!stopped_) run_once(std::chrono::milliseconds(1000));
}

}  // namespace vifkit::util
