// grant_sharer over libxengntshr (/dev/xen/gntalloc).
//
// Each page is shared by its own xengntshr_share_pages() call: gntalloc frees
// a grant only when its whole mapping is gone, so one mapping per page lets
// unshare() revoke pages one by one. Pages come zeroed from the driver.
//
// Revocation: xengntshr_unshare() unmaps our view; gntalloc then ends foreign
// access, and if the peer still has the page mapped or is copying (XSA-396)
// the kernel keeps the page on a deferred list instead of reusing it. The page
// is therefore never reused while in use, and our side sees it revoked.
#include <cerrno>
#include <cstring>
#include <algorithm>

#include "vifkit/util/log.hpp"
#include "xen_detail.hpp"

namespace vifkit::platform::xen::detail {

sharer::sharer() : h_(xengntshr_open(nullptr, 0)) {
    if (!h_) throw_open_error("/dev/xen/gntalloc", "xengntshr_open", errno);
}

sharer::~sharer() {
    for (const auto& [ref, addr] : shared_) xengntshr_unshare(h_, addr, 1);
    xengntshr_close(h_);
}

bool sharer::share_pages(domid_t peer, std::span<shared_page> pages, bool writable) {
    if (peer >= domid_self) {
        errno = EINVAL;
        return false;
    }
    std::size_t done = 0;
    for (; done < pages.size(); ++done) {
        std::uint32_t ref = 0;
        void* addr = xengntshr_share_pages(h_, peer, 1, &ref, writable ? 1 : 0);
        if (!addr) break;
        pages[done] = {ref, addr};
        shared_.emplace(ref, addr);
    }
    if (done == pages.size()) return true;
    const int err = errno;
    for (std::size_t i = 0; i < done; ++i) {  // all or nothing
        xengntshr_unshare(h_, pages[i].addr, 1);
        shared_.erase(pages[i].ref);
        pages[i] = {};
    }
    spdlog::warn("platform xen: xengntshr_share_pages to domain {}: {} (after {} pages)", peer,
                 std::strerror(err), done);
    errno = err;
    return false;
}

std::size_t sharer::unshare(std::span<const shared_page> pages, std::span<gnt_status> status) {
    std::size_t revoked = 0;
    const std::size_t n = std::min(pages.size(), status.size());
    for (std::size_t i = 0; i < n; ++i) {
        auto it = shared_.find(pages[i].ref);
        if (it == shared_.end() || it->second != pages[i].addr) {
            status[i] = gnt_status::bad_gntref;
            continue;
        }
        if (xengntshr_unshare(h_, it->second, 1) != 0) {
            status[i] = status_from_errno(errno);
            continue;
        }
        shared_.erase(it);
        status[i] = gnt_status::okay;
        ++revoked;
    }
    return revoked;
}

}  // namespace vifkit::platform::xen::detail
