// event_channels over libxenevtchn (/dev/xen/evtchn). The Linux driver has the
// same model as the interface: a port that fires is masked until unmask(), and
// the fd is readable while any port is pending. The fd is made non-blocking so
// that pending() returns nullopt instead of blocking when nothing is pending.
#include <fcntl.h>

#include <cerrno>

#include "xen_detail.hpp"

namespace vifkit::platform::xen::detail {

namespace {
std::optional<evtchn_port_t> fail(int err) {
    errno = err;
    return std::nullopt;
}
}  // namespace

evtchn::evtchn() : h_(xenevtchn_open(nullptr, 0)), fd_(-1) {
    if (!h_) throw_open_error("/dev/xen/evtchn", "xenevtchn_open", errno);
    fd_ = xenevtchn_fd(h_);
    const int fl = ::fcntl(fd_, F_GETFL);
    if (fl < 0 || ::fcntl(fd_, F_SETFL, fl | O_NONBLOCK) != 0) {
        const int err = errno;
        xenevtchn_close(h_);
        throw_open_error("/dev/xen/evtchn", "fcntl(O_NONBLOCK)", err);
    }
}

evtchn::~evtchn() {
    for (const auto& [p, bound] : ports_) xenevtchn_unbind(h_, p);
    xenevtchn_close(h_);
}

std::optional<evtchn_port_t> evtchn::alloc_unbound(domid_t remote) {
    const xenevtchn_port_or_error_t p = xenevtchn_bind_unbound_port(h_, remote);
    if (p < 0) return fail(errno);
    ports_.emplace(static_cast<evtchn_port_t>(p), true);
    return static_cast<evtchn_port_t>(p);
}

std::optional<evtchn_port_t> evtchn::bind_interdomain(domid_t remote, evtchn_port_t remote_port) {
    const xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(h_, remote, remote_port);
    if (p < 0) return fail(errno);
    ports_.emplace(static_cast<evtchn_port_t>(p), true);
    return static_cast<evtchn_port_t>(p);
}

int evtchn::notify(evtchn_port_t local) {
    if (!ports_.count(local)) return -EINVAL;
    return xenevtchn_notify(h_, local) == 0 ? 0 : -errno;
}

std::optional<evtchn_port_t> evtchn::pending() {
    const xenevtchn_port_or_error_t p = xenevtchn_pending(h_);
    if (p < 0) return std::nullopt;  // EAGAIN: nothing pending
    return static_cast<evtchn_port_t>(p);
}

int evtchn::unmask(evtchn_port_t local) {
    if (!ports_.count(local)) return -EINVAL;
    return xenevtchn_unmask(h_, local) == 0 ? 0 : -errno;
}

int evtchn::unbind(evtchn_port_t local) {
    auto it = ports_.find(local);
    if (it == ports_.end()) return -EINVAL;
    ports_.erase(it);
    return xenevtchn_unbind(h_, local) == 0 ? 0 : -errno;
}

}  // namespace vifkit::platform::xen::detail
