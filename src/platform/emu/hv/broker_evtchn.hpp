// The broker's event-channel switch: per-domain port tables, libxenevtchn/Xen
// semantics. Each port owns an eventfd (its "pending" signal); a bound pair is two
// eventfds crossed over, so notify is a write to the peer port's eventfd and the
// broker is not on the data path.
//
//  alloc_unbound(self, remote): new port in `self`, state unbound(remote). The
//      eventfd a future binder will own is created now, so the allocating side
//      already holds its notify target (sends before the bind are dropped).
//  bind(self, remote, rport):   rport must be unbound(self) in `remote`; both ports
//      become interdomain.
//  close(self, port):           the other end (if any) goes back to unbound(self),
//      like Xen's evtchn_close; its notifies land in an eventfd nobody reads.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>

#include "fd.hpp"
#include "vifkit/platform/types.hpp"

namespace vifkit::emu::detail {

class evtchn_switch {
public:
    explicit evtchn_switch(std::size_t max_ports) : max_ports_(max_ports) {}

    struct result {
        int err = 0;  // errno value
        evtchn_port_t port = 0;
        int own = -1;     // eventfd the port's owner reads (owned by the switch)
        int target = -1;  // eventfd the owner writes to notify its peer
    };
    [[nodiscard]] result alloc_unbound(domid_t self, domid_t remote);
    // The caller has checked that `remote` is a live domain.
    [[nodiscard]] result bind(domid_t self, domid_t remote, evtchn_port_t remote_port);
    // 0 or an errno value.
    int close(domid_t self, evtchn_port_t port);
    void close_all(domid_t self);
    [[nodiscard]] std::size_t port_count(domid_t self) const;

private:
    using shared_fd = std::shared_ptr<unique_fd>;
    struct port_rec {
        bool bound = false;
        domid_t remote = 0;
        evtchn_port_t remote_port = 0;
        shared_fd own;   // signalled by the peer
        shared_fd peer;  // the peer port's `own`
    };
    using table = std::map<evtchn_port_t, port_rec>;

    [[nodiscard]] std::optional<evtchn_port_t> free_port(const table& t) const;
    port_rec* find(domid_t dom, evtchn_port_t port);
    void unbind_peer(domid_t self, const port_rec& r);

    std::size_t max_ports_;
    std::unordered_map<domid_t, table> doms_;
};

}  // namespace vifkit::emu::detail
