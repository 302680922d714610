#include "sharer.hpp"

#include <cstring>
#include <vector>

#include "vifkit/util/log.hpp"

namespace vifkit::emu::detail {

bool sharer::share_pages(domid_t peer, std::span<platform::shared_page> pages, bool writable) {
    if (peer >= domid_self) return false;  // reserved domids cannot be granted to
    std::vector<std::uint32_t> frames(pages.size());
    std::vector<grant_ref_t> refs(pages.size());
    if (!d_.alloc(frames, refs)) return false;
    for (std::size_t i = 0; i < pages.size(); ++i) {
        std::byte* addr = d_.page(frames[i]);
        // XSA-403: a granted page must not carry stale data from an earlier use.
        std::memset(addr, 0, page_size);
        d_.table().grant(refs[i], peer, frames[i], !writable);
        granted_.emplace(refs[i], frames[i]);
        pages[i] = {refs[i], addr};
    }
    return true;
}

std::size_t sharer::unshare(std::span<const platform::shared_page> pages,
                            std::span<gnt_status> status) {
    std::size_t revoked = 0;
    const std::size_t n = std::min(pages.size(), status.size());
    for (std::size_t i = 0; i < n; ++i) {
        auto it = granted_.find(pages[i].ref);
        if (it == granted_.end()) {
            status[i] = gnt_status::bad_gntref;  // not granted by this sharer
            continue;
        }
        status[i] = d_.table().revoke(it->first);
        if (status[i] != gnt_status::okay) continue;  // XSA-396: still in use, keep it
        d_.release(it->second, it->first);
        granted_.erase(it);
        ++revoked;
    }
    return revoked;
}

sharer::~sharer() {
    std::size_t leaked = 0;
    for (const auto& [ref, frame] : granted_) {
        if (d_.table().revoke(ref) == gnt_status::okay)
            d_.release(frame, ref);
        else
            ++leaked;
    }
    if (leaked != 0)
        spdlog::warn("emu domain {}: {} granted pages still in use by a peer, leaked", d_.id(), leaked);
}

}  // namespace vifkit::emu::detail
