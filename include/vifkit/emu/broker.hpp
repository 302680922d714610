// The emulated hypervisor's broker: the one process that knows every domain.
//
// Domains (separate processes, see emu/domain.hpp) connect to a unix SOCK_SEQPACKET
// socket, register their guest memory (a sealed memfd) and get a domid. The broker
// creates each domain's grant table (shared with the granter and its mappers) and
// its active table (hypervisor-private pin counts, never given to the granter), hands
// a peer's fds to mappers, and routes event-channel binds. A domain is gone when its
// connection closes (exit, kill -9): its domid is freed, its ports closed, the pins
// it held on other domains' grants released, then hooks.on_domain_gone runs.
//
// Every client message is validated; a bad client is disconnected, never trusted.
//
// Trust model: the broker plays the hypervisor's bookkeeping; the hypervisor's
// data path (grant map/copy, pin counts) runs inside the mapping process, in
// platform/emu code only. Xen's rules are enforced against what a peer can write
// (its grant table, its memory), and a granter never gets the pin counts. The
// emulator is not an OS-level sandbox: processes of one uid can reach each other.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "vifkit/platform/types.hpp"
#include "vifkit/util/event_loop.hpp"

namespace vifkit::emu {

class broker {
public:
    struct hooks {
        std::function<void(domid_t)> on_domain_up;
        std::function<void(domid_t)> on_domain_gone;
    };
    // Resource caps per broker; a client asking for more is refused (errno EINVAL/ENOSPC).
    struct limits {
        std::size_t max_domains = 256;
        std::size_t max_mem_pages = std::size_t{1} << 18;  // 1 GiB of guest memory
        std::size_t max_grant_entries = 64 * 512;          // gnttab_max_frames = 64
        std::size_t max_ports = 256;                       // event channels per domain
    };

    // Listens on `socket_path` (a stale socket file is replaced; a live one is an
    // error) and serves clients from `loop`. Throws std::system_error.
    broker(util::event_loop& loop, std::string socket_path, hooks h);
    broker(util::event_loop& loop, std::string socket_path, hooks h, limits l);
    ~broker();
    broker(const broker&) = delete;
    broker& operator=(const broker&) = delete;

    // The domain whose broker connection comes from process `pid` (SO_PEERCRED).
    [[nodiscard]] std::optional<domid_t> domid_of_pid(pid_t pid) const;
    // Registered (live) domains.
    [[nodiscard]] std::size_t domain_count() const;
    // Event-channel ports domain `id` holds (any state but closed); 0 for a
    // domain that is not registered.
    [[nodiscard]] std::size_t port_count(domid_t id) const;
    [[nodiscard]] const std::string& socket_path() const;

    struct state;

private:
    std::unique_ptr<state> s_;
};

}  // namespace vifkit::emu
