#include "vifkit/ctrl/gref_table.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>

namespace vifkit::ctrl {

namespace {

// A per-table seed: the frontend picks its grefs, so probe chains must not be
// predictable from the gref values alone. Not cryptographic; it only has to
// keep a hostile frontend from building one long chain offline (and a long
// chain would only slow that frontend's own queue: probes are bounded).
std::uint32_t make_seed(const void* self) {
    static std::atomic<std::uint32_t> counter{0};
    const auto t = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    const auto a = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(self));
    const std::uint64_t x = t ^ (a << 7) ^ (std::uint64_t{counter.fetch_add(1)} * 0x9E3779B97F4A7C15ull);
    return static_cast<std::uint32_t>(x ^ (x >> 32));
}

// MurmurHash3 finaliser: every input bit affects every output bit.
std::uint32_t mix32(std::uint32_t h) {
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

}  // namespace

gref_table::gref_table(std::size_t capacity) : capacity_(capacity), seed_(make_seed(this)) {
    slab_.reserve(capacity);
    live_.reserve(capacity);
    free_slab_.reserve(capacity);
    // Load factor <= 1/2 keeps probe chains short and guarantees an empty slot.
    index_.resize(std::bit_ceil(std::max<std::size_t>(2, capacity * 2)));
    reset_index();
    mask_ = index_.size() - 1;
}

void gref_table::reset_index() noexcept {
    static_assert(empty == 0xFFFFFFFFu, "reset_index fills bytes of 0xFF");
    std::memset(index_.data(), 0xFF, index_.size() * sizeof(index_[0]));
}

std::size_t gref_table::home(grant_ref_t ref) const noexcept {
    return mix32(ref ^ seed_) & mask_;
}

std::size_t gref_table::slot_of(grant_ref_t ref) const noexcept {
    std::size_t i = home(ref);
    // Bounded by the index size; an empty slot always exists (load <= 1/2).
    for (std::size_t n = 0; n < index_.size(); ++n, i = (i + 1) & mask_) {
        const std::uint32_t s = index_[i];
        if (s == empty) break;
        if (slab_[s].ref == ref) return i;
    }
    return index_.size();
}

gref_table::entry* gref_table::find(grant_ref_t ref) noexcept {
    const std::size_t i = slot_of(ref);
    return i == index_.size() ? nullptr : &slab_[index_[i]];
}

const gref_table::entry* gref_table::find(grant_ref_t ref) const noexcept {
    const std::size_t i = slot_of(ref);
    return i == index_.size() ? nullptr : &slab_[index_[i]];
}

gref_table::entry* gref_table::insert(grant_ref_t ref, void* addr, std::uint64_t handle,
                                      bool readonly) noexcept {
    if (size_ == capacity_ || slot_of(ref) != index_.size()) return nullptr;
    std::uint32_t s;
    if (!free_slab_.empty()) {
        s = free_slab_.back();
        free_slab_.pop_back();
        slab_[s] = entry{ref, addr, handle, readonly, 0};
        live_[s] = 1;
    } else {  // below capacity_ and reserved: never reallocates
        s = static_cast<std::uint32_t>(slab_.size());
        slab_.push_back(entry{ref, addr, handle, readonly, 0});
        live_.push_back(1);
    }
    std::size_t i = home(ref);
    while (index_[i] != empty) i = (i + 1) & mask_;  // terminates: load <= 1/2
    index_[i] = s;
    ++size_;
    return &slab_[s];
}

bool gref_table::erase(grant_ref_t ref) noexcept {
    std::size_t hole = slot_of(ref);
    if (hole == index_.size()) return false;
    const std::uint32_t s = index_[hole];
    slab_[s] = entry{};
    live_[s] = 0;
    free_slab_.push_back(s);  // never allocates: reserved to capacity
    --size_;
    // Backward-shift deletion: pull later members of the probe run into the hole
    // unless their home lies cyclically in (hole, j]. Only index slots move.
    std::size_t j = hole;
    for (std::size_t n = 0; n < index_.size(); ++n) {
        j = (j + 1) & mask_;
        if (index_[j] == empty) break;
        const std::size_t h = home(slab_[index_[j]].ref);
        const bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
        if (!stays) {
            index_[hole] = index_[j];
            hole = j;
        }
    }
    index_[hole] = empty;
    return true;
}

void gref_table::clear() noexcept {
    slab_.clear();  // capacity stays reserved
    live_.clear();
    free_slab_.clear();
    reset_index();
    size_ = 0;
}

}  // namespace vifkit::ctrl
