// Shared I/O rings (xen/io/ring.h semantics; netif-spec §3), one template for
// tx, rx and ctrl, with a front (request producer) and back (response
// producer) view.
//
// All memory ordering of the project lives in this file:
//  - producer: write entries, release fence, store index (push_*);
//  - consumer: load index, acquire fence, then copy each entry out once
//    (copy_*: the only read of a peer-written slot, XSA-155);
//  - notify hold-off and the final check before sleeping use a real full
//    (StoreLoad) fence: a weaker barrier is the classic lost wake-up.
// Indices are free-running u32; every comparison is an unsigned difference,
// so wrap-around at 2^32 is harmless.
#pragma once
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "vifkit/abi/netif.hpp"

namespace vifkit::ring {

// Header of every shared ring page (netif-spec §3.1): 64 bytes, then entries.
struct sring_header {
    std::uint32_t req_prod;
    std::uint32_t req_event;
    std::uint32_t rsp_prod;
    std::uint32_t rsp_event;
    std::uint8_t pvt[4];
    std::uint8_t pad[44];
};
static_assert(sizeof(sring_header) == 64);

inline constexpr std::size_t ring_page_size = 4096;

template <class Req, class Rsp>
struct ring_types {
    static_assert(std::is_trivially_copyable_v<Req> && std::is_trivially_copyable_v<Rsp>);
    using request = Req;
    using response = Rsp;
    union entry {
        Req req;
        Rsp rsp;
    };
    // (page - header) / entry, rounded down to a power of two (__RING_SIZE).
    static constexpr std::uint32_t size =
        std::bit_floor(static_cast<std::uint32_t>((ring_page_size - sizeof(sring_header)) / sizeof(entry)));
};

using tx_ring_types = ring_types<abi::tx_request, abi::tx_response>;
using rx_ring_types = ring_types<abi::rx_request, abi::rx_response>;
using ctrl_ring_types = ring_types<abi::ctrl_request, abi::ctrl_response>;

namespace detail {
// SAFETY: the index words are naturally aligned u32 in a shared page; both
// peers access them only through these helpers.
inline std::uint32_t load_index(const std::uint32_t& idx) {
    return std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(idx)).load(std::memory_order_acquire);
}
inline void store_index(std::uint32_t& idx, std::uint32_t v) {
    std::atomic_ref<std::uint32_t>(idx).store(v, std::memory_order_release);
}
// A real StoreLoad barrier (mfence / dmb ish): required between publishing an
// index and reading the peer's event index, in both directions.
inline void full_fence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
// Did moving a producer index from old_prod to new_prod cross the peer's event index?
inline bool need_notify(std::uint32_t old_prod, std::uint32_t new_prod, std::uint32_t event) {
    return static_cast<std::uint32_t>(new_prod - event) < static_cast<std::uint32_t>(new_prod - old_prod);
}
}  // namespace detail

// Outcome of looking at the peer's producer index.
enum class ring_status { ok, overflow };

template <class T>
struct unconsumed {
    ring_status status;  // overflow = the peer claims more than `size` outstanding: a peer fault
    std::uint32_t count;
};

// Frontend view: produces requests, consumes responses.
template <class Types>
class front_ring {
public:
    using request = typename Types::request;
    using response = typename Types::response;
    static constexpr std::uint32_t size = Types::size;

    // `page` is our own ring page (4096 bytes). init() must be called once
    // before granting it to the backend.
    explicit front_ring(void* page) : sring_(static_cast<sring_header*>(page)) {}

    // SHARED_RING_INIT + FRONT_RING_INIT: zero the page, events = 1.
    void init() {
        std::memset(static_cast<void*>(sring_), 0, ring_page_size);
        sring_->req_event = 1;
        sring_->rsp_event = 1;
        req_prod_pvt_ = 0;
        rsp_cons_ = 0;
    }

    [[nodiscard]] std::uint32_t free_requests() const { return size - (req_prod_pvt_ - rsp_cons_); }
    [[nodiscard]] std::uint32_t req_prod_pvt() const { return req_prod_pvt_; }
    [[nodiscard]] std::uint32_t rsp_cons() const { return rsp_cons_; }

    // Write a request into the next private slot. Caller checked free_requests().
    void put_request(const request& r) {
        std::memcpy(&slots()[req_prod_pvt_ & (size - 1)].req, &r, sizeof r);
        ++req_prod_pvt_;
    }
    // Hint: the slot `ahead` requests from now is about to be written (the
    // backend last wrote a response there, so the write would miss).
    void prefetch_request_slot(std::uint32_t ahead) const {
        __builtin_prefetch(&slots()[(req_prod_pvt_ + ahead) & (size - 1)], 1);
    }
    // RING_PUSH_REQUESTS_AND_CHECK_NOTIFY. Returns true if the backend must be notified.
    [[nodiscard]] bool push_requests() {
        const std::uint32_t old = detail::load_index(sring_->req_prod);
        const std::uint32_t now = req_prod_pvt_;
        detail::store_index(sring_->req_prod, now);  // release: entries before index
        detail::full_fence();
        return detail::need_notify(old, now, detail::load_index(sring_->req_event));
    }

    // Responses available. overflow if rsp_prod - rsp_cons > size (ill-behaved backend).
    [[nodiscard]] unconsumed<response> pending_responses() const {
        const std::uint32_t prod = detail::load_index(sring_->rsp_prod);
        const std::uint32_t n = prod - rsp_cons_;
        if (n > size) return {ring_status::overflow, 0};
        return {ring_status::ok, n};
    }
    // Copy out the response at rsp_cons (read once) and consume it.
    [[nodiscard]] response take_response() {
        response r;
        std::memcpy(&r, &slots()[rsp_cons_ & (size - 1)].rsp, sizeof r);
        ++rsp_cons_;
        return r;
    }
    // Index of the slot take_response() will read next (rx: the same slot as its request).
    [[nodiscard]] std::uint32_t next_response_index() const { return rsp_cons_; }

    // RING_FINAL_CHECK_FOR_RESPONSES: re-arm rsp_event, full fence, re-check.
    // Returns true if more responses arrived (keep processing, don't sleep).
    [[nodiscard]] bool final_check_for_responses() {
        auto u = pending_responses();
        if (u.status == ring_status::overflow || u.count) return true;
        detail::store_index(sring_->rsp_event, rsp_cons_ + 1);
        detail::full_fence();
        u = pending_responses();
        return u.status == ring_status::overflow || u.count != 0;
    }

    // Raw shared header, for tests and diagnostics only.
    [[nodiscard]] sring_header* shared() const { return sring_; }

private:
    typename Types::entry* slots() const {
        return reinterpret_cast<typename Types::entry*>(reinterpret_cast<std::byte*>(sring_) +
                                                         sizeof(sring_header));
    }
    sring_header* sring_;
    std::uint32_t req_prod_pvt_ = 0;
    std::uint32_t rsp_cons_ = 0;
};

// Backend view: consumes requests, produces responses.
template <class Types>
class back_ring {
public:
    using request = typename Types::request;
    using response = typename Types::response;
    static constexpr std::uint32_t size = Types::size;

    // BACK_RING_ATTACH on the peer's (mapped) ring page: resume from rsp_prod.
    explicit back_ring(void* page) : sring_(static_cast<sring_header*>(page)) {
        rsp_prod_pvt_ = req_cons_ = detail::load_index(sring_->rsp_prod);
    }

    // Linux checks this when the rings are mapped: req_prod - rsp_prod > size is a fault.
    [[nodiscard]] ring_status check_attach() const {
        const std::uint32_t prod = detail::load_index(sring_->req_prod);
        return (prod - rsp_prod_pvt_ > size) ? ring_status::overflow : ring_status::ok;
    }

    // Requests available (RING_UNCONSUMED_REQUESTS), bounded by the free response
    // space; overflow if req_prod - rsp_prod_pvt > size (ill-behaved frontend),
    // or if req_prod - req_cons > size: req_prod moved back behind req_cons,
    // which would otherwise pass as up to `size` stale requests (Linux netback's
    // "Impossible number of requests" check).
    [[nodiscard]] unconsumed<request> pending_requests() const {
        const std::uint32_t prod = detail::load_index(sring_->req_prod);
        if (prod - rsp_prod_pvt_ > size || prod - req_cons_ > size) return {ring_status::overflow, 0};
        const std::uint32_t avail = prod - req_cons_;
        const std::uint32_t space = size - (req_cons_ - rsp_prod_pvt_);
        return {ring_status::ok, avail < space ? avail : space};
    }
    // Copy out the request at req_cons (read once) and consume it.
    [[nodiscard]] request take_request() {
        request r;
        std::memcpy(&r, &slots()[req_cons_ & (size - 1)].req, sizeof r);
        ++req_cons_;
        return r;
    }
    [[nodiscard]] std::uint32_t req_cons() const { return req_cons_; }
    [[nodiscard]] std::uint32_t rsp_prod_pvt() const { return rsp_prod_pvt_; }

    // Write the next response (at rsp_prod_pvt; for rx this is the slot of the
    // request it answers, since requests are consumed and answered in order).
    void put_response(const response& r) {
        std::memcpy(&slots()[rsp_prod_pvt_ & (size - 1)].rsp, &r, sizeof r);
        ++rsp_prod_pvt_;
    }
    // RING_PUSH_RESPONSES_AND_CHECK_NOTIFY.
    [[nodiscard]] bool push_responses() {
        const std::uint32_t old = detail::load_index(sring_->rsp_prod);
        const std::uint32_t now = rsp_prod_pvt_;
        detail::store_index(sring_->rsp_prod, now);
        detail::full_fence();
        return detail::need_notify(old, now, detail::load_index(sring_->rsp_event));
    }
    // RING_FINAL_CHECK_FOR_REQUESTS. True = more work (or a fault to report): don't sleep.
    [[nodiscard]] bool final_check_for_requests() {
        auto u = pending_requests();
        if (u.status == ring_status::overflow || u.count) return true;
        detail::store_index(sring_->req_event, req_cons_ + 1);
        detail::full_fence();
        u = pending_requests();
        return u.status == ring_status::overflow || u.count != 0;
    }

    // Ask to be woken once `needed` requests are available (a multi-slot rx
    // packet needs that many buffers posted). True if they already are (or
    // the ring is in overflow: the caller's next pending_requests() reports it).
    [[nodiscard]] bool wait_for_requests(std::uint32_t needed) {
        auto u = pending_requests();
        if (u.status == ring_status::overflow || u.count >= needed) return true;
        detail::store_index(sring_->req_event, req_cons_ + needed);
        detail::full_fence();
        u = pending_requests();
        return u.status == ring_status::overflow || u.count >= needed;
    }

    [[nodiscard]] sring_header* shared() const { return sring_; }

private:
    typename Types::entry* slots() const {
        return reinterpret_cast<typename Types::entry*>(reinterpret_cast<std::byte*>(sring_) +
                                                         sizeof(sring_header));
    }
    sring_header* sring_;
    std::uint32_t rsp_prod_pvt_ = 0;
    std::uint32_t req_cons_ = 0;
};

}  // namespace vifkit::ring
