// Per-queue table of static ("staging") grant mappings (netif-spec §1.4):
// gref -> the backend's persistent mapping of that frontend page.
//
// Data-path lookups are O(1) and never allocate: entries live in a slab whose
// size is fixed at construction (the per-queue limit), found through an
// open-addressing index (linear probing, load factor <= 1/2, backward-shift
// deletion, per-table random seed so a frontend cannot aim its grefs at one
// probe chain). Entry addresses are stable for the entry's lifetime: erasing
// or inserting other grefs never moves an entry, so the data path may hold an
// entry* between acquire() and release().
//
// Slab slots are handed out from a high-water mark (freed slots first), so
// for_each() and clear() cost the slots used since the last clear(), not the
// capacity, and slab pages a queue never uses are reserved but never touched.
//
// Not thread-safe: the control handler and the data path of a queue must be
// serialised by the caller (vifkit runs both on one event loop).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "vifkit/platform/types.hpp"

namespace vifkit::ctrl {

class gref_table {
public:
    struct entry {
        grant_ref_t ref = 0;
        void* addr = nullptr;        // our mapping of the frontend page (page_size bytes)
        std::uint64_t handle = 0;    // grant_mapper handle, for unmap
        bool readonly = false;       // mapped read-only: rx must fall back to grant copy
        std::uint32_t inflight = 0;  // data-path users; DEL refuses while > 0
    };

    // capacity = most entries the table can hold (the per-queue limit).
    explicit gref_table(std::size_t capacity);
    gref_table(const gref_table&) = delete;
    gref_table& operator=(const gref_table&) = delete;
    gref_table(gref_table&&) noexcept = default;
    gref_table& operator=(gref_table&&) noexcept = default;

    // Data path: the entry for `ref`, or nullptr.
    [[nodiscard]] entry* find(grant_ref_t ref) noexcept;
    [[nodiscard]] const entry* find(grant_ref_t ref) const noexcept;

    // nullptr when `ref` is already present or the table is full.
    entry* insert(grant_ref_t ref, void* addr, std::uint64_t handle, bool readonly) noexcept;
    // Removes `ref` (whatever its inflight count: the caller decides). False if absent.
    bool erase(grant_ref_t ref) noexcept;

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::size_t free() const noexcept { return capacity() - size_; }

    // Visit every live entry (teardown, stats). fn must not insert or erase.
    template <class Fn>
    void for_each(Fn&& fn) {
        for (std::size_t i = 0; i < slab_.size(); ++i)  // slab_.size(): the high-water mark
            if (live_[i]) fn(slab_[i]);
    }
    template <class Fn>
    void for_each(Fn&& fn) const {
        for (std::size_t i = 0; i < slab_.size(); ++i)
            if (live_[i]) fn(static_cast<const entry&>(slab_[i]));
    }
    // Drop every entry without unmapping (the caller unmapped them).
    void clear() noexcept;

    // Data-path helpers around use of a mapping.
    static void acquire(entry& e) noexcept { ++e.inflight; }
    // Returns false (and changes nothing) on an unbalanced release.
    static bool release(entry& e) noexcept {
        if (e.inflight == 0) return false;
        --e.inflight;
        return true;
    }

private:
    static constexpr std::uint32_t empty = 0xFFFFFFFFu;

    [[nodiscard]] std::size_t home(grant_ref_t ref) const noexcept;
    void reset_index() noexcept;  // every index slot `empty`
    // Index slot holding `ref`, or index_.size() if absent.
    [[nodiscard]] std::size_t slot_of(grant_ref_t ref) const noexcept;

    // slab_ and live_ grow up to capacity_ (reserved up front, so they never
    // reallocate and entries never move); their size is the high-water mark.
    std::vector<entry> slab_;
    std::vector<std::uint8_t> live_;          // slab_[i] in use
    std::vector<std::uint32_t> free_slab_;    // stack of freed slab indices below the mark
    std::vector<std::uint32_t> index_;        // power of two; slab index or `empty`
    std::size_t capacity_ = 0;
    std::size_t mask_ = 0;
    std::size_t size_ = 0;
    std::uint32_t seed_ = 0;
};

// RAII data-path use of a static mapping: acquire on construction, release on
// destruction. Holds a stable entry pointer (see above).
class gref_use {
public:
    explicit gref_use(gref_table::entry* e) noexcept : e_(e) {
        if (e_) gref_table::acquire(*e_);
    }
    ~gref_use() {
        if (e_) gref_table::release(*e_);
    }
    gref_use(const gref_use&) = delete;
    gref_use& operator=(const gref_use&) = delete;
    [[nodiscard]] gref_table::entry* get() const noexcept { return e_; }
    explicit operator bool() const noexcept { return e_ != nullptr; }

private:
    gref_table::entry* e_;
};

}  // namespace vifkit::ctrl
