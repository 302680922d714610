// A grant table in shared memory, accessed as 32-bit words so every access is a
// single atomic operation: word 2r = flags | domid << 16 (the "combo" word Xen's
// _set_status_v1 compares-and-swaps), word 2r+1 = frame. Both the granter (which
// owns the table) and the hypervisor side (mappers) use this view; the peer may
// rewrite any word at any time, so every read is one load into a local.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "vifkit/emu/grant_entry.hpp"

namespace vifkit::emu::detail {

[[nodiscard]] constexpr std::uint32_t combo_of(std::uint16_t flags, domid_t domid) {
    return static_cast<std::uint32_t>(flags) | (static_cast<std::uint32_t>(domid) << 16);
}
[[nodiscard]] constexpr std::uint16_t combo_flags(std::uint32_t c) {
    return static_cast<std::uint16_t>(c & 0xFFFFU);
}
[[nodiscard]] constexpr domid_t combo_domid(std::uint32_t c) {
    return static_cast<domid_t>(c >> 16);
}

class grant_words {
public:
    grant_words() = default;
    grant_words(void* base, std::size_t entries)
        : words_(static_cast<std::uint32_t*>(base)), entries_(entries) {}

    [[nodiscard]] std::size_t entries() const { return entries_; }
    [[nodiscard]] bool in_range(grant_ref_t r) const { return r < entries_; }
    // Callers check in_range first.
    [[nodiscard]] std::atomic_ref<std::uint32_t> combo(grant_ref_t r) const {
        return std::atomic_ref<std::uint32_t>(words_[2 * std::size_t{r}]);
    }
    [[nodiscard]] std::atomic_ref<std::uint32_t> frame(grant_ref_t r) const {
        return std::atomic_ref<std::uint32_t>(words_[2 * std::size_t{r} + 1]);
    }
    [[nodiscard]] grant_entry_v1 snapshot(grant_ref_t r) const;

    // Granter side. Publish a grant: frame, release fence, then flags and domid in
    // one store, so a mapper that sees the flags also sees the frame.
    void grant(grant_ref_t r, domid_t peer, std::uint32_t frame, bool readonly) const;
    // Revoke: clear the flags only if neither GTF_reading nor GTF_writing is set
    // (one compare-and-swap, bounded retries). okay or eagain.
    [[nodiscard]] gnt_status revoke(grant_ref_t r) const;
    // Raw write of a whole entry, same ordering as grant(). Hostile-peer tools.
    void write_raw(grant_ref_t r, const grant_entry_v1& e) const;

private:
    std::uint32_t* words_ = nullptr;
    std::size_t entries_ = 0;
};

}  // namespace vifkit::emu::detail
