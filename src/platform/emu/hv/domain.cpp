#include "vifkit/emu/domain.hpp"

#include "domain_core.hpp"
#include "evtchn.hpp"
#include "mapper.hpp"
#include "sharer.hpp"

namespace vifkit::emu {

std::unique_ptr<domain> domain::attach(const std::string& broker_path, domid_t want,
                                       std::size_t mem_pages, std::size_t grant_entries,
                                       std::function<void()> pump) {
    return std::unique_ptr<domain>(new domain(
        detail::domain_core::attach(broker_path, want, mem_pages, grant_entries, std::move(pump))));
}

domain::domain(std::unique_ptr<detail::domain_core> core) : core_(std::move(core)) {}

domain::~domain() = default;

domid_t domain::id() const { return core_->id(); }

std::uint32_t domain::generation() const { return core_->generation(); }

std::unique_ptr<platform::grant_sharer> domain::make_sharer() {
    return std::make_unique<detail::sharer>(*core_);
}

std::unique_ptr<platform::grant_mapper> domain::make_mapper() {
    return std::make_unique<detail::mapper>(*core_);
}

std::unique_ptr<platform::event_channels> domain::make_event_channels() {
    return std::make_unique<detail::evtchn>(*core_);
}

platform::services domain::make_services() {
    platform::services s;
    s.self = id();
    s.sharer = make_sharer();
    s.mapper = make_mapper();
    s.evtchn = make_event_channels();
    return s;
}

int domain::broker_fd() const { return core_->broker_fd(); }

bool domain::broker_lost() { return core_->broker_lost(); }

std::size_t domain::mem_pages() const { return core_->mem_pages(); }

std::size_t domain::grant_entries() const { return core_->table().entries(); }

std::size_t domain::free_pages() const { return core_->free_pages(); }

std::size_t domain::free_grant_refs() const { return core_->free_refs(); }

std::optional<grant_entry_v1> domain::read_grant(grant_ref_t ref) const {
    if (!core_->table().in_range(ref)) return std::nullopt;
    return core_->table().snapshot(ref);
}

bool domain::write_grant(grant_ref_t ref, const grant_entry_v1& e) {
    if (!core_->table().in_range(ref)) return false;
    core_->table().write_raw(ref, e);
    return true;
}

void* domain::page_address(std::uint32_t frame) const { return core_->page(frame); }

}  // namespace vifkit::emu
