// The frontend end of the netif control ring (netif-spec §2): queue requests,
// match responses by id (they may come out of order), time requests out.
//
// Trust: the backend writes the response slots and rsp_prod. Each response is
// copied out of the ring once (ring::front_ring::take_response) and then
// checked against our own table of outstanding requests; nothing else of the
// shared page is read. A backend claiming more responses than the ring holds
// is broken beyond repair (on_event() returns false, the caller disconnects).
// A backend that never answers costs a timeout per request, not a hang.
//
// Threading: none. Every member is called from one thread (the event loop).
#pragma once
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <unordered_map>

#include "vifkit/abi/netif.hpp"
#include "vifkit/ctrlfront/ctrl_names.hpp"
#include "vifkit/ring/ring.hpp"
#include "vifkit/util/log.hpp"

namespace vifkit::ctrlfront {

class ctrl_client {
public:
    using clock = std::chrono::steady_clock;
    // Gets the backend's response (copied, validated: id and type match the
    // request), or a synthesized one with status local_status::timeout /
    // local_status::cancelled and data 0. Called exactly once per accepted
    // send(). A callback may call send(), flush(), expire() and cancel_all()
    // (on_event() from a callback returns true and does nothing: the running
    // call goes on); it must not destroy the client.
    using callback = std::function<void(const abi::ctrl_response&)>;

    static constexpr std::uint32_t ring_size = ring::ctrl_ring_types::size;  // 128
    static constexpr std::size_t max_outstanding = ring_size;
    // Responses handled per on_event() call (style habit 5: a backend cannot
    // keep us in one call forever by refilling the ring).
    static constexpr std::uint32_t batch_limit = ring_size;

    // `ring_page`: our own 4096-byte page, to be granted writable to the
    // backend. It is initialised here (zeroed, req_event = rsp_event = 1), so
    // construct the client before advertising ctrl-ring-ref.
    explicit ctrl_client(void* ring_page);
    ctrl_client(const ctrl_client&) = delete;
    ctrl_client& operator=(const ctrl_client&) = delete;

    // Queue a request with an id chosen here (unique among outstanding requests
    // and among timed-out ones whose late answer may still come). Returns false
    // if the ring or the outstanding table is full, or the ring is broken.
    // The deadline is now + timeout. Call flush() after one or more sends.
    bool send(std::uint16_t type, std::array<std::uint32_t, 3> data, callback cb,
              std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // Publish queued requests. True if the backend must be notified (kick the
    // ctrl event channel).
    [[nodiscard]] bool flush();

    // Handle responses (call on the ctrl event). False if the backend broke the
    // ring (rsp_prod more than ring_size ahead): disconnect; every later call
    // also returns false. Handles at most batch_limit responses; if
    // more_pending() is then true, call again soon (e.g. event_loop::defer).
    [[nodiscard]] bool on_event();
    [[nodiscard]] bool more_pending() const { return more_pending_; }
    [[nodiscard]] bool broken() const { return broken_; }

    // Fail every request whose deadline is <= now with local_status::timeout.
    // The request stays on the ring: its id is kept aside so a late answer is
    // counted (late_responses) instead of matching a newer request.
    void expire(clock::time_point now);
    // Fail everything outstanding with local_status::cancelled (disconnect).
    void cancel_all();

    [[nodiscard]] std::size_t outstanding() const { return table_.size(); }
    struct counters {
        std::uint64_t sent = 0;
        std::uint64_t completed = 0;      // responses delivered to a callback
        std::uint64_t bad_responses = 0;  // unknown/duplicate id, or type mismatch: ignored
        std::uint64_t timeouts = 0;
        std::uint64_t late_responses = 0;  // answers to requests already timed out / cancelled
        std::uint64_t cancelled = 0;
    };
    [[nodiscard]] counters get_counters() const { return counters_; }
    // Earliest deadline among outstanding requests (for the caller's timer).
    [[nodiscard]] std::optional<clock::time_point> next_deadline() const;

    // Ring internals, for tests and diagnostics.
    [[nodiscard]] const ring::front_ring<ring::ctrl_ring_types>& ring() const { return ring_; }

private:
    struct pending {
        std::uint16_t type;
        clock::time_point deadline;
        callback cb;
    };
    std::optional<std::uint16_t> allocate_id();
    bool fault(const char* why);
    void handle(const abi::ctrl_response& rsp);
    bool take_retired(std::uint16_t id);
    void retire(std::uint16_t id);
    void fail(std::uint16_t id, pending&& p, std::uint32_t status);

    ring::front_ring<ring::ctrl_ring_types> ring_;
    std::unordered_map<std::uint16_t, pending> table_;
    // Ids of requests failed locally but maybe still answered later. Bounded
    // (oldest dropped first): each occupies a ring slot until answered, unless
    // the backend answers with other ids, which we must not let grow this.
    std::deque<std::uint16_t> retired_;
    std::uint16_t next_id_ = 0;
    std::uint32_t pushed_ = 0;  // req_prod as last published by flush()
    bool broken_ = false;
    bool more_pending_ = false;
    bool in_event_ = false;
    counters counters_;
    util::rate_limited log_limit_;
};

}  // namespace vifkit::ctrlfront
