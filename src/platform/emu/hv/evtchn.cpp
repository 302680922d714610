#include "evtchn.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace vifkit::emu::detail {

namespace {

int arm(int ep, int op, int fd, evtchn_port_t port) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u32 = port;
    return ::epoll_ctl(ep, op, fd, &ev) < 0 ? -errno : 0;
}

std::optional<evtchn_port_t> fail(int err) {
    errno = err;
    return std::nullopt;
}

}  // namespace

evtchn::evtchn(domain_core& d) : d_(d), ep_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!ep_) throw std::system_error(errno, std::generic_category(), "emu evtchn: epoll_create1");
}

evtchn::~evtchn() {
    for (const auto& [p, fds] : ports_) (void)close_remote(p);
}

template <class Req>
std::optional<evtchn_port_t> evtchn::open(Req& req) {
    evtchn_rsp rsp{};
    std::vector<unique_fd> fds;
    if (int rc = d_.call(req, msg_type::evtchn_rsp, rsp, fds); rc < 0) return fail(-rc);
    if (rsp.err != 0) return fail(rsp.err);
    if (fds.size() != 2 || ports_.count(rsp.port) != 0) return fail(EPROTO);
    // New ports start unmasked, as with libxenevtchn.
    if (int rc = arm(ep_.get(), EPOLL_CTL_ADD, fds[0].get(), rsp.port); rc < 0) {
        (void)close_remote(rsp.port);
        return fail(-rc);
    }
    ports_.emplace(rsp.port, port{std::move(fds[0]), std::move(fds[1])});
    return rsp.port;
}

std::optional<evtchn_port_t> evtchn::alloc_unbound(domid_t remote) {
    evtchn_alloc_req req{};
    req.h.type = msg_type::evtchn_alloc_req;
    req.remote = remote;
    return open(req);
}

std::optional<evtchn_port_t> evtchn::bind_interdomain(domid_t remote, evtchn_port_t remote_port) {
    evtchn_bind_req req{};
    req.h.type = msg_type::evtchn_bind_req;
    req.remote = remote;
    req.remote_port = remote_port;
    return open(req);
}

int evtchn::notify(evtchn_port_t local) {
    auto it = ports_.find(local);
    if (it == ports_.end()) return -EINVAL;
    const std::uint64_t one = 1;
    // A saturated counter (EAGAIN) is still pending: the event is not lost.
    if (::write(it->second.target.get(), &one, sizeof(one)) < 0 && errno != EAGAIN) return -errno;
    return 0;
}

std::optional<evtchn_port_t> evtchn::pending() {
    epoll_event ev{};
    if (::epoll_wait(ep_.get(), &ev, 1, 0) != 1) return std::nullopt;
    // The one-shot registration is now disarmed: the port is masked.
    const evtchn_port_t p = ev.data.u32;
    auto it = ports_.find(p);
    if (it == ports_.end()) return std::nullopt;
    std::uint64_t count;
    (void)!::read(it->second.own.get(), &count, sizeof(count));  // clear pending
    return p;
}

int evtchn::unmask(evtchn_port_t local) {
    auto it = ports_.find(local);
    if (it == ports_.end()) return -EINVAL;
    // Re-arming reports an event that arrived while masked right away.
    return arm(ep_.get(), EPOLL_CTL_MOD, it->second.own.get(), local);
}

int evtchn::close_remote(evtchn_port_t p) {
    evtchn_close_req req{};
    req.h.type = msg_type::evtchn_close_req;
    req.port = p;
    status_rsp rsp{};
    std::vector<unique_fd> fds;
    if (int rc = d_.call(req, msg_type::status_rsp, rsp, fds); rc < 0) return rc;
    return -rsp.err;
}

int evtchn::unbind(evtchn_port_t local) {
    auto it = ports_.find(local);
    if (it == ports_.end()) return -EINVAL;
    ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, it->second.own.get(), nullptr);
    ports_.erase(it);
    return close_remote(local);
}

}  // namespace vifkit::emu::detail
