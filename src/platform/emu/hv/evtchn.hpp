// event_channels for an emulated domain (libxenevtchn-like). Each local port is
// an eventfd registered in a private epoll set with EPOLLONESHOT: an armed
// registration is an unmasked port, a fired one is masked until unmask() re-arms
// it, and the eventfd's counter is the pending bit. fd() is that epoll fd.
#pragma once
#include <unordered_map>
#include <vector>

#include "domain_core.hpp"
#include "vifkit/platform/event_channel.hpp"

namespace vifkit::emu::detail {

class evtchn final : public platform::event_channels {
public:
    explicit evtchn(domain_core& d);  // throws std::system_error
    ~evtchn() override;               // closes every port

    [[nodiscard]] int fd() const override { return ep_.get(); }
    [[nodiscard]] std::optional<evtchn_port_t> alloc_unbound(domid_t remote) override;
    [[nodiscard]] std::optional<evtchn_port_t> bind_interdomain(
        domid_t remote, evtchn_port_t remote_port) override;
    int notify(evtchn_port_t local) override;
    [[nodiscard]] std::optional<evtchn_port_t> pending() override;
    int unmask(evtchn_port_t local) override;
    int unbind(evtchn_port_t local) override;
    [[nodiscard]] std::size_t bound_count() const override { return ports_.size(); }

private:
    struct port {
        unique_fd own;     // pending signal for this port
        unique_fd target;  // the peer port's pending signal
    };
    template <class Req>
    std::optional<evtchn_port_t> open(Req& req);
    int close_remote(evtchn_port_t p);

    domain_core& d_;
    unique_fd ep_;
    std::unordered_map<evtchn_port_t, port> ports_;
};

}  // namespace vifkit::emu::detail
