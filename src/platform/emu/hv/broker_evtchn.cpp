#include "broker_evtchn.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace vifkit::emu::detail {

namespace {

std::shared_ptr<unique_fd> make_eventfd() {
    unique_fd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd) return nullptr;
    return std::make_shared<unique_fd>(std::move(fd));
}

// Drop notifications sent before the channel was bound (Xen drops sends on an
// unbound port). The eventfd is non-blocking: an empty one just returns EAGAIN.
void drain(int efd) {
    std::uint64_t v;
    (void)!::read(efd, &v, sizeof(v));
}

}  // namespace

std::optional<evtchn_port_t> evtchn_switch::free_port(const table& t) const {
    // Port 0 is never allocated (Xen reserves it).
    evtchn_port_t want = 1;
    for (const auto& [port, rec] : t) {
        if (port != want) break;
        ++want;
    }
    if (want > max_ports_) return std::nullopt;
    return want;
}

evtchn_switch::port_rec* evtchn_switch::find(domid_t dom, evtchn_port_t port) {
    auto d = doms_.find(dom);
    if (d == doms_.end()) return nullptr;
    auto p = d->second.find(port);
    return p == d->second.end() ? nullptr : &p->second;
}

evtchn_switch::result evtchn_switch::alloc_unbound(domid_t self, domid_t remote) {
    table& t = doms_[self];
    auto port = free_port(t);
    if (!port) return {ENOSPC};
    port_rec r;
    r.remote = remote == domid_self ? self : remote;
    r.own = make_eventfd();
    r.peer = make_eventfd();
    if (!r.own || !r.peer) return {errno};
    result out{0, *port, r.own->get(), r.peer->get()};
    t.emplace(*port, std::move(r));
    return out;
}

evtchn_switch::result evtchn_switch::bind(domid_t self, domid_t remote,
                                          evtchn_port_t remote_port) {
    if (remote == domid_self) remote = self;
    port_rec* rp = find(remote, remote_port);
    // Only the domain named at alloc_unbound may bind, and only once.
    if (rp == nullptr || rp->bound || rp->remote != self) return {EINVAL};
    table& t = doms_[self];  // rehashing keeps `rp` valid (node-based map)
    auto port = free_port(t);
    if (!port) return {ENOSPC};
    port_rec r;
    r.bound = true;
    r.remote = remote;
    r.remote_port = remote_port;
    r.own = rp->peer;
    r.peer = rp->own;
    drain(r.own->get());
    rp->bound = true;
    rp->remote_port = *port;
    result out{0, *port, r.own->get(), r.peer->get()};
    t.emplace(*port, std::move(r));
    return out;
}

void evtchn_switch::unbind_peer(domid_t self, const port_rec& r) {
    if (!r.bound) return;
    port_rec* rp = find(r.remote, r.remote_port);
    if (rp == nullptr) return;
    rp->bound = false;
    rp->remote = self;
    rp->remote_port = 0;
}

int evtchn_switch::close(domid_t self, evtchn_port_t port) {
    auto d = doms_.find(self);
    if (d == doms_.end()) return EINVAL;
    auto p = d->second.find(port);
    if (p == d->second.end()) return EINVAL;
    const port_rec r = std::move(p->second);
    d->second.erase(p);
    unbind_peer(self, r);
    return 0;
}

void evtchn_switch::close_all(domid_t self) {
    auto d = doms_.find(self);
    if (d == doms_.end()) return;
    table ports = std::move(d->second);
    doms_.erase(d);
    for (const auto& [port, r] : ports) {
        // A loopback channel's other end may be in `ports` too: it is gone anyway.
        if (r.remote != self) unbind_peer(self, r);
    }
}

std::size_t evtchn_switch::port_count(domid_t self) const {
    auto d = doms_.find(self);
    return d == doms_.end() ? 0 : d->second.size();
}

}  // namespace vifkit::emu::detail
