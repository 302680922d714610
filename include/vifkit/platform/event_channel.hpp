// Event channel interface (libxenevtchn semantics): ports are pending until
// collected with pending(), which masks the port; unmask() re-arms it.
#pragma once
#include <cstddef>
#include <optional>

#include "vifkit/platform/types.hpp"

namespace vifkit::platform {

class event_channels {
public:
    virtual ~event_channels() = default;
    // Pollable fd: readable when at least one unmasked port is pending.
    [[nodiscard]] virtual int fd() const = 0;
    // Allocate an unbound port that `remote` may bind to. nullopt + errno on failure.
    [[nodiscard]] virtual std::optional<evtchn_port_t> alloc_unbound(domid_t remote) = 0;
    // Bind a local port to `remote`'s unbound port. nullopt + errno on failure.
    [[nodiscard]] virtual std::optional<evtchn_port_t> bind_interdomain(
        domid_t remote, evtchn_port_t remote_port) = 0;
    // Signal the peer of a local port. 0 or -errno.
    virtual int notify(evtchn_port_t local) = 0;
    // Next pending port (now masked), or nullopt when none is pending. Non-blocking.
    [[nodiscard]] virtual std::optional<evtchn_port_t> pending() = 0;
    // Unmask a port; if it became pending meanwhile, fd() turns readable again.
    virtual int unmask(evtchn_port_t local) = 0;
    // Close a local port. 0 or -errno.
    virtual int unbind(evtchn_port_t local) = 0;
    // Ports currently open on this handle.
    [[nodiscard]] virtual std::size_t bound_count() const = 0;
};

}  // namespace vifkit::platform
