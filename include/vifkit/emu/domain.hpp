// One emulated domain: this process, attached to the broker (emu/broker.hpp).
//
// attach() creates the guest memory (a memfd of mem_pages pages mapped here),
// registers it with the broker and maps the grant table the broker created. The
// domain object then hands out the platform services: a grant_sharer over its own
// memory and grant table, a grant_mapper for peers' grants, event channels.
// The domain must outlive every object it made. Attach after fork(), not before:
// the broker tracks a domain by its connection.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "vifkit/emu/grant_entry.hpp"
#include "vifkit/platform/platform.hpp"

namespace vifkit::emu {

namespace detail {
class domain_core;
}

class domain {
public:
    // Registers with the broker at `broker_path`. `want` = domid_invalid lets the
    // broker pick (lowest free from 1); domid 0 is the backend/driver domain.
    // Throws std::system_error: EEXIST domid taken, EINVAL bad sizes, ENOSPC broker
    // full, or the socket error.
    //
    // `pump` is for a broker served on the caller's own thread (the fuzz targets
    // run broker, xenstore and domains in one thread): every request to the
    // broker is sent, then `pump` runs, then the reply is read (blocking), so
    // `pump` must make the broker answer, e.g. run its event loop until idle.
    // Empty (the default) for a broker in another thread or process.
    static std::unique_ptr<domain> attach(const std::string& broker_path, domid_t want,
                                          std::size_t mem_pages, std::size_t grant_entries,
                                          std::function<void()> pump = {});
    ~domain();
    domain(const domain&) = delete;
    domain& operator=(const domain&) = delete;

    [[nodiscard]] domid_t id() const;
    // Changes each time a domid is registered; mappers use it to notice restarts.
    [[nodiscard]] std::uint32_t generation() const;

    [[nodiscard]] std::unique_ptr<platform::grant_sharer> make_sharer();
    [[nodiscard]] std::unique_ptr<platform::grant_mapper> make_mapper();
    [[nodiscard]] std::unique_ptr<platform::event_channels> make_event_channels();
    // All three, plus self = id().
    [[nodiscard]] platform::services make_services();

    // The broker (the emulated hypervisor, inside vifkit-xenstored) connection:
    // the fd becomes readable when the broker goes away; broker_lost() confirms.
    // Nothing of this domain survives that (a restarted broker knows no domain).
    [[nodiscard]] int broker_fd() const;
    [[nodiscard]] bool broker_lost();

    [[nodiscard]] std::size_t mem_pages() const;
    [[nodiscard]] std::size_t grant_entries() const;
    // Pages / grant refs not currently handed out by a sharer (leaked ones excluded).
    [[nodiscard]] std::size_t free_pages() const;
    [[nodiscard]] std::size_t free_grant_refs() const;

    // Our own grant table, entry by entry (a snapshot / a raw write). For tests and
    // hostile-peer tools; normal code grants through make_sharer(). nullopt / false
    // when ref is outside the table.
    [[nodiscard]] std::optional<grant_entry_v1> read_grant(grant_ref_t ref) const;
    bool write_grant(grant_ref_t ref, const grant_entry_v1& e);
    // Our address of guest frame `frame`, or nullptr when out of range.
    [[nodiscard]] void* page_address(std::uint32_t frame) const;

private:
    explicit domain(std::unique_ptr<detail::domain_core> core);
    std::unique_ptr<detail::domain_core> core_;
};

}  // namespace vifkit::emu
