// frame_fifo: frames waiting for the frontend's rx buffers, stored back to back
// in one byte arena allocated at connect, so the receive path never allocates
// per frame. Capped in bytes and in frames (the per-queue rx backlog cap).
//
// The arena is `cap + max_frame` bytes: while fewer than `cap` bytes are queued
// the next frame of up to `max_frame` bytes always fits somewhere. A frame that
// does not fit at the end of the arena starts again at offset 0 (it is never
// split). When the fifo empties, writing restarts at offset 0, and if a
// standing backlog had walked further than `keep_bytes` into the arena, the
// pages beyond are given back (madvise DONTNEED): resident memory follows the
// backlog instead of staying at its high-water mark.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace vifkit::core {

class frame_fifo {
public:
    struct meta {
        // the Toeplitz hash to hand to the guest in a HASH extra
        bool has_hash = false;
        std::uint8_t hash_type = 0;  // extra's type byte (_XEN_NETIF_CTRL_HASH_TYPE_* number)
        std::uint32_t hash = 0;
        // offload state for the guest: NETRXF_ csum bits of the first slot, and
        // the GSO extra to send (gso_type 0 = none)
        std::uint16_t rx_flags = 0;
        std::uint8_t gso_type = 0;
        std::uint16_t gso_size = 0;
    };
    struct entry {
        std::size_t off = 0;
        std::uint32_t len = 0;
        meta m;
    };

    // (Re)allocate: at most `cap_bytes` queued bytes (checked before a push),
    // `max_frames` frames, frames up to `max_frame` bytes. Drops what was queued.
    void reset(std::size_t cap_bytes, std::size_t max_frames, std::size_t max_frame) {
        cap_ = cap_bytes;
        arena_len_ = cap_bytes + max_frame;
        touched_ = 0;
        arena_ = std::make_unique_for_overwrite<std::byte[]>(arena_len_);  // untouched: not resident
        ents_.assign(max_frames, entry{});
        max_frame_ = max_frame;
        clear();
    }
    // Free the arena (disconnect).
    void release() {
        arena_.reset();
        ents_.clear();
        ents_.shrink_to_fit();
        arena_len_ = cap_ = 0;
        clear();
    }
    void clear() { head_ = count_ = bytes_ = wr_ = 0; }

    [[nodiscard]] bool empty() const { return count_ == 0; }
    [[nodiscard]] std::size_t size() const { return count_; }
    [[nodiscard]] std::size_t bytes() const { return bytes_; }
    // The caps are reached: the next push would be refused.
    [[nodiscard]] bool full() const { return bytes_ >= cap_ || count_ >= ents_.size(); }
    // Highest arena offset written since reset(): the bytes that became resident.
    [[nodiscard]] std::size_t touched() const { return touched_; }

    // Queue a copy of `frame`. False (nothing queued) when full or oversized.
    bool push(std::span<const std::byte> frame, const meta& m) {
        if (full() || frame.size() > max_frame_ || frame.empty()) return false;
        std::size_t off = wr_;
        if (count_ != 0) {
            const std::size_t rd = ents_[head_].off;
            if (wr_ > rd) {  // live data is [rd, wr): room at the end, else from 0 up to rd
                if (arena_len_ - wr_ < frame.size()) {
                    if (frame.size() >= rd) return false;
                    off = 0;
                }
            } else if (wr_ + frame.size() >= rd) {  // wrapped: room is [wr, rd)
                return false;
            }
        } else {
            off = 0;
        }
        std::memcpy(arena_.get() + off, frame.data(), frame.size());
        ents_[(head_ + count_) % ents_.size()] = {off, static_cast<std::uint32_t>(frame.size()), m};
        ++count_;
        bytes_ += frame.size();
        wr_ = off + frame.size();
        if (wr_ > touched_) touched_ = wr_;
        return true;
    }

    // Oldest frame (caller checked !empty()).
    [[nodiscard]] const entry& front() const { return ents_[head_]; }
    [[nodiscard]] const std::byte* data(const entry& e) const { return arena_.get() + e.off; }
    // Entries in queue order: at(0) == front().
    [[nodiscard]] const entry& at(std::size_t i) const { return ents_[(head_ + i) % ents_.size()]; }
    void pop() {
        bytes_ -= ents_[head_].len;
        head_ = (head_ + 1) % ents_.size();
        if (--count_ == 0) {
            if (touched_ > keep_bytes) trim();
            clear();
        }
    }

    // Arena bytes kept resident when the fifo empties.
    static constexpr std::size_t keep_bytes = 256 * 1024;

private:
    void trim() {
        constexpr std::uintptr_t page = 4096;
        const auto base = reinterpret_cast<std::uintptr_t>(arena_.get());
        const std::uintptr_t from = (base + keep_bytes + page - 1) & ~(page - 1);
        const std::uintptr_t to = (base + touched_) & ~(page - 1);
        if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
        touched_ = keep_bytes;
    }

    std::unique_ptr<std::byte[]> arena_;
    std::size_t arena_len_ = 0, cap_ = 0, max_frame_ = 0;
    std::vector<entry> ents_;
    std::size_t head_ = 0, count_ = 0, bytes_ = 0, wr_ = 0, touched_ = 0;
};

}  // namespace vifkit::core
