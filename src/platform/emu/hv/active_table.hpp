// Hypervisor-private grant state, like Xen's active grant table: per entry, how
// many pins (maps + in-flight copies) and writable pins exist, which domain holds
// them and the frame latched at the first pin. It lives in a memfd the broker
// creates and gives only to mappers - never to the granter, which must not be
// able to forge or reset pin counts.
//
// Each entry has a process-shared robust mutex: pin/unpin change the count and the
// granter-visible GTF_reading/GTF_writing together, and a mapper killed while
// holding the lock must not wedge the entry.
#pragma once
#include <pthread.h>

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "grant_words.hpp"

namespace vifkit::emu::detail {

struct alignas(64) active_entry {
    pthread_mutex_t lock;
    std::uint32_t pins;     // all pins; GTF_reading is set iff pins > 0
    std::uint32_t writers;  // writable pins; GTF_writing is set iff writers > 0
    std::uint32_t frame;    // latched at the first pin: later rewrites by the granter are ignored
    std::uint16_t holder;   // the only domain that holds pins on this entry
    std::uint16_t pad;
};

[[nodiscard]] constexpr std::size_t active_table_bytes(std::size_t entries) {
    return entries * sizeof(active_entry);
}
// Broker side: initialise the mutexes of a fresh (zeroed) table. 0 or -errno.
int init_active_table(void* base, std::size_t entries);

// One granter's table as the hypervisor sees it.
class grant_table_view {
public:
    struct pin_result {
        gnt_status status = gnt_status::general_error;
        std::uint32_t frame = 0;
    };

    grant_table_view() = default;
    grant_table_view(grant_words words, void* active, std::size_t mem_pages)
        : words_(words), act_(static_cast<active_entry*>(active)), mem_pages_(mem_pages) {}

    // Validate entry `ref` for access by `self` (type permit_access, domid, read-only
    // honoured, frame inside guest memory) and pin it: GTF_reading (and GTF_writing)
    // set by compare-and-swap and kept while pinned.
    [[nodiscard]] pin_result pin(grant_ref_t ref, domid_t self, bool writable);
    // Drop one pin taken by pin(ref, self, writable); clears the GTF bits at zero.
    void unpin(grant_ref_t ref, bool writable);
    // Broker side, when `holder` died: drop all its pins. Entries whose lock is not
    // free within `timeout` keep their pins (the granter leaks the page: safe).
    std::size_t release_holder(domid_t holder, std::chrono::milliseconds timeout);

private:
    [[nodiscard]] gnt_status set_status(grant_ref_t ref, domid_t self, bool writable) const;

    grant_words words_;
    active_entry* act_ = nullptr;
    std::size_t mem_pages_ = 0;
};

}  // namespace vifkit::emu::detail
