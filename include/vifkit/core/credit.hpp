// core::credit_scheduler: the guest-transmit rate limit a backend applies when
// the toolstack wrote B/rate = "BYTES,USEC" (netif-spec §5.1): the guest may
// send BYTES every USEC microseconds, charged per packet at its first tx
// request's size (the whole packet, §4.3). On a refusal the caller leaves the
// request on the ring, as Linux does, and retries at next_refill() (a
// util::timer). Time is passed in: no clock reads, no allocation.
//
// Linux netback (drivers/net/xen-netback/netback.c, tx_add_credit and
// tx_credit_exceeded) is the model; where this differs, and why:
//  - Same: a refill adds BYTES and the credit is capped at max(BYTES, 128 KiB),
//    "a burst big enough to transmit a jumbo packet", so a 64 KiB GSO packet is
//    never starved by a small BYTES; the initial credit is one period (BYTES).
//  - Linux adds BYTES once per refill event and restarts the window when it
//    looks, so a late check loses time. Here every whole USEC elapsed since the
//    window start adds BYTES (capped) and the window moves by whole periods: the
//    long-run rate is BYTES/USEC however late the caller's timer runs. After an
//    idle spell the burst is at most the cap.
//  - Linux's period has jiffy granularity (USEC/1000 ms; under 1000 us it is 0,
//    i.e. no limit); here it is exact to the nanosecond.
//  - A packet larger than the cap (impossible in Linux, tx sizes are 16-bit)
//    passes when the credit is full, and empties it.
//  - On a rate change Linux clamps the credit to the new BYTES (or refills at
//    once if it was waiting); here a change restarts with one full period.
//  - A `now` before the window start (steady_clock never goes back; a caller
//    bug) refills nothing and leaves the window alone, so jitter cannot mint
//    credit by counting the same time twice.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>

#include "vifkit/wire/xs_values.hpp"

namespace vifkit::core {

class credit_scheduler {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;
    // Linux's max_burst floor (131072): the credit may always grow this large.
    static constexpr std::uint64_t min_burst = 128 * 1024;

    // nullopt (B/rate absent) = unlimited. A zero BYTES or USEC (parse_rate
    // refuses both) also means unlimited. A different limit restarts with one
    // full period of credit, its window starting at the next try_consume();
    // the same limit again changes nothing (a watch may fire spuriously).
    void set(std::optional<wire::rate_limit> limit) {
        if (limit && (limit->bytes == 0 || limit->usec == 0)) limit.reset();
        if (limit == limit_) return;
        limit_ = limit;
        anchored_ = false;
        want_ = 0;
        if (!limit_) return;
        per_period_ = limit_->bytes;
        cap_ = std::max(per_period_, min_burst);
        remaining_ = per_period_;
        period_ns_ = limit_->usec <= max_ns / 1000 ? limit_->usec * 1000 : max_ns;
    }
    [[nodiscard]] std::optional<wire::rate_limit> limit() const { return limit_; }
    [[nodiscard]] bool unlimited() const { return !limit_; }

    // Refill for the whole periods elapsed up to `now`, then spend `bytes` if the
    // credit covers it (or, for a packet above the cap, if the credit is full).
    [[nodiscard]] bool try_consume(std::uint32_t bytes, time_point now) {
        if (!limit_) return true;
        refill(now);
        const std::uint64_t need = std::min<std::uint64_t>(bytes, cap_);
        if (remaining_ < need) {
            want_ = need;
            return false;
        }
        remaining_ -= std::min<std::uint64_t>(bytes, remaining_);
        want_ = 0;
        return true;
    }

    // When to retry: after a refusal, the first refill at which that packet
    // fits; otherwise the next refill. The clock's epoch (any time will do) when
    // unlimited or unused since set(); time_point::max() past representable time.
    [[nodiscard]] time_point next_refill() const {
        if (!limit_ || !anchored_) return time_point{};
        std::uint64_t periods = 1;
        if (want_ > remaining_) {  // ceil(deficit / BYTES), without overflow
            const std::uint64_t deficit = want_ - remaining_;
            periods = deficit / per_period_ + (deficit % per_period_ != 0 ? 1 : 0);
        }
        const std::uint64_t start = as_unsigned(start_);
        const std::uint64_t headroom = max_ns - start;  // mod 2^64: exact for any start
        if (periods > headroom / period_ns_) return time_point::max();
        return from_unsigned(start + periods * period_ns_);
    }

    // Credit left as of the last try_consume() (UINT64_MAX when unlimited).
    [[nodiscard]] std::uint64_t remaining() const {
        return limit_ ? remaining_ : std::numeric_limits<std::uint64_t>::max();
    }
    // The most credit can grow to: max(BYTES, 128 KiB) (UINT64_MAX when unlimited).
    [[nodiscard]] std::uint64_t burst_cap() const {
        return limit_ ? cap_ : std::numeric_limits<std::uint64_t>::max();
    }

private:
    using rep = time_point::rep;
    static constexpr rep max_rep = std::numeric_limits<rep>::max();
    static constexpr std::uint64_t max_ns = static_cast<std::uint64_t>(max_rep);

    // Time points as unsigned counts so differences and sums never overflow a
    // signed type; callers keep every true result inside the rep's range.
    static std::uint64_t as_unsigned(time_point t) {
        return static_cast<std::uint64_t>(t.time_since_epoch().count());
    }
    static time_point from_unsigned(std::uint64_t v) {
        return time_point(time_point::duration(static_cast<rep>(v)));
    }

    void refill(time_point now) {
        if (!anchored_) {  // first use since set(): the window starts now
            start_ = now;
            anchored_ = true;
            return;
        }
        if (now <= start_) return;  // no time passed, or the clock went backwards
        const std::uint64_t elapsed = as_unsigned(now) - as_unsigned(start_);  // exact: now > start_
        const std::uint64_t periods = elapsed / period_ns_;
        if (periods == 0) return;
        start_ = from_unsigned(as_unsigned(start_) + periods * period_ns_);  // <= now
        const std::uint64_t room = cap_ - remaining_;
        remaining_ = periods > room / per_period_ ? cap_ : remaining_ + periods * per_period_;
    }

    std::optional<wire::rate_limit> limit_;
    std::uint64_t per_period_ = 0;  // BYTES
    std::uint64_t cap_ = 0;         // max(BYTES, min_burst); remaining_ <= cap_
    std::uint64_t remaining_ = 0;
    std::uint64_t period_ns_ = 1;   // USEC in ns, clamped to the rep's range
    std::uint64_t want_ = 0;        // the last refused packet's need, 0 if none
    time_point start_{};            // start of the current window
    bool anchored_ = false;         // start_ is set (not before the first use)
};

}  // namespace vifkit::core
