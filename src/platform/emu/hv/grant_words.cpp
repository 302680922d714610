#include "grant_words.hpp"

#include <atomic>

namespace vifkit::emu::detail {

namespace {
// A granter racing only with the hypervisor's pin/unpin settles within a few tries.
constexpr int revoke_retries = 16;
}  // namespace

grant_entry_v1 grant_words::snapshot(grant_ref_t r) const {
    const std::uint32_t c = combo(r).load(std::memory_order_acquire);
    return {combo_flags(c), combo_domid(c), frame(r).load(std::memory_order_relaxed)};
}

void grant_words::grant(grant_ref_t r, domid_t peer, std::uint32_t frame_no,
                        bool readonly) const {
    const std::uint16_t flags = gtf::permit_access | (readonly ? gtf::readonly : 0);
    write_raw(r, {flags, peer, frame_no});
}

void grant_words::write_raw(grant_ref_t r, const grant_entry_v1& e) const {
    frame(r).store(e.frame, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    combo(r).store(combo_of(e.flags, e.domid), std::memory_order_relaxed);
}

gnt_status grant_words::revoke(grant_ref_t r) const {
    auto c = combo(r);
    std::uint32_t cur = c.load(std::memory_order_acquire);
    for (int i = 0; i < revoke_retries; ++i) {
        if ((combo_flags(cur) & (gtf::reading | gtf::writing)) != 0) return gnt_status::eagain;
        const std::uint32_t cleared = cur & 0xFFFF0000U;
        if (c.compare_exchange_strong(cur, cleared, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
            return gnt_status::okay;
    }
    return gnt_status::eagain;
}

}  // namespace vifkit::emu::detail
