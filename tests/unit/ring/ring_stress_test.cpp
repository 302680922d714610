// Two threads over one ring page running the full netif-spec §3.2 protocol:
// push-and-check-notify on the producer side, final check before sleeping on
// the consumer side, eventfds standing in for the event channels. A lost
// wake-up shows up as both threads asleep until the deadline.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "ring_test_support.hpp"
#include "vifkit/ring/ring.hpp"

namespace vifkit::ring::test {
namespace {

using clock_type = std::chrono::steady_clock;

// An eventfd as an event channel: notify() sets it pending, wait() blocks
// until pending and clears it. A notify that arrives while nobody sleeps
// stays pending, like an event-channel pending bit.
class event_fd {
public:
    event_fd() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
    ~event_fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    event_fd(const event_fd&) = delete;
    event_fd& operator=(const event_fd&) = delete;
    [[nodiscard]] bool valid() const { return fd_ >= 0; }

    void notify() {
        const std::uint64_t one = 1;
        while (::write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
    // Drop a pending notify (non-blocking read).
    void clear() {
        std::uint64_t v = 0;
        (void)!::read(fd_, &v, sizeof v);
    }
    // Sleep until notified. Returns false on deadline or abort. Deliberately
    // does not look at the ring while sleeping: only a notify wakes us, so a
    // missed notify cannot be papered over by polling.
    [[nodiscard]] bool wait(clock_type::time_point deadline, const std::atomic<bool>& abort) {
        for (;;) {
            if (abort.load()) return false;
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
            if (left.count() <= 0) return false;
            pollfd p{fd_, POLLIN, 0};
            const int n = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 50)));
            if (n > 0) {
                std::uint64_t v = 0;
                if (::read(fd_, &v, sizeof v) == static_cast<ssize_t>(sizeof v)) return true;
            }
        }
    }

private:
    int fd_;
};

// First failure wins; both threads stop when one fails.
class failure_log {
public:
    void fail(const std::string& what) {
        std::lock_guard<std::mutex> g(m_);
        if (first_.empty()) first_ = what;
        abort_.store(true);
    }
    [[nodiscard]] std::string first() {
        std::lock_guard<std::mutex> g(m_);
        return first_;
    }
    const std::atomic<bool>& aborted() const { return abort_; }

private:
    std::mutex m_;
    std::string first_;
    std::atomic<bool> abort_{false};
};

struct side_stats {
    std::uint64_t pushes = 0;
    std::uint64_t notifies = 0;
    std::uint64_t sleeps = 0;
};

template <class Types>
struct stress_run {
    std::uint32_t total;
    clock_type::time_point deadline;
    page_ptr page = make_page();
    front_ring<Types> front{page.get()};
    std::unique_ptr<back_ring<Types>> back;
    event_fd to_back;   // "frontend -> backend" event channel (requests)
    event_fd to_front;  // "backend -> frontend" event channel (responses)
    failure_log log;
    side_stats front_stats;
    side_stats back_stats;

    stress_run(std::uint32_t n, clock_type::duration limit) : total(n), deadline(clock_type::now() + limit) {
        front.init();
        back = std::make_unique<back_ring<Types>>(page.get());
    }

    // Frontend: produce requests in varying batches, reap responses in order.
    void frontend() {
        std::uint32_t sent = 0;
        std::uint32_t done = 0;
        std::uint32_t lcg = 12345;
        while (done < total) {
            if (log.aborted().load()) return;
            lcg = lcg * 1103515245u + 12345u;
            const std::uint32_t cap = 1 + (lcg >> 16) % Types::size;  // batch size 1..size
            std::uint32_t batch = 0;
            while (sent < total && batch < cap && front.free_requests() > 0) {
                front.put_request(make_tx_request(sent));
                ++sent;
                ++batch;
            }
            if (batch) {
                ++front_stats.pushes;
                if (front.push_requests()) {
                    ++front_stats.notifies;
                    to_back.notify();
                }
            }
            const auto u = front.pending_responses();
            if (u.status != ring_status::ok) return log.fail("frontend: response overflow");
            for (std::uint32_t i = 0; i < u.count; ++i) {
                if (!same_bytes(front.take_response(), make_tx_response(done)))
                    return log.fail("frontend: response " + std::to_string(done) + " out of order or corrupt");
                ++done;
            }
            if (done == total) break;
            if (sent < total && front.free_requests() > 0) continue;  // more to send: don't sleep
            if (front.final_check_for_responses()) continue;
            ++front_stats.sleeps;
            if (!to_front.wait(deadline, log.aborted()))
                return log.fail("frontend: no wake-up before the deadline (lost wake-up?) sent=" +
                                std::to_string(sent) + " done=" + std::to_string(done));
        }
    }

    // Backend: consume requests in order, answer each, sleep only after a final check.
    void backend() {
        std::uint32_t got = 0;
        while (got < total) {
            if (log.aborted().load()) return;
            const auto u = back->pending_requests();
            if (u.status != ring_status::ok) return log.fail("backend: request overflow");
            for (std::uint32_t i = 0; i < u.count; ++i) {
                if (!same_bytes(back->take_request(), make_tx_request(got)))
                    return log.fail("backend: request " + std::to_string(got) + " out of order or corrupt");
                back->put_response(make_tx_response(got));
                ++got;
            }
            if (u.count) {
                ++back_stats.pushes;
                if (back->push_responses()) {
                    ++back_stats.notifies;
                    to_front.notify();
                }
            }
            if (got == total) break;
            if (back->final_check_for_requests()) continue;
            ++back_stats.sleeps;
            if (!to_back.wait(deadline, log.aborted()))
                return log.fail("backend: no wake-up before the deadline (lost wake-up?) got=" + std::to_string(got));
        }
    }

    void run() {
        std::thread b([this] { backend(); });
        std::thread f([this] { frontend(); });
        f.join();
        b.join();
    }
};

// Ping-pong of single requests with random spin delays before each push, so
// that pushes keep landing around the peer's final check (the window between
// "nothing pending" and "event re-armed + re-checked"). A final check that
// skipped the re-check, or a full fence weakened to acquire/release, lost a
// wake-up here within one run when ring.hpp was mutated that way -- but only
// while both threads had a core each; on a loaded machine the windows are hit
// rarely. ring_interleave_test.cpp hits them deterministically.
// The run stops after `max_rounds` or a soft time budget, whichever comes
// first (sanitizer builds are ~10x slower); a lost wake-up still shows as a
// wait that outlasts the hard deadline.
struct ping_pong {
    std::uint32_t max_rounds;
    clock_type::time_point soft_end;
    clock_type::time_point deadline;
    page_ptr page = make_page();
    front_ring<tx_ring_types> front{page.get()};
    std::unique_ptr<back_ring<tx_ring_types>> back;
    event_fd to_back;
    event_fd to_front;
    failure_log log;
    std::uint32_t rounds = 0;  // requests answered before the stop request
    // Times a final check found work that the plain check just before it had
    // not seen: the re-check after re-arming saved a wake-up.
    std::uint64_t front_rechecks_saved = 0;
    std::uint64_t back_rechecks_saved = 0;
    std::uint64_t front_sleeps = 0;
    std::uint64_t back_sleeps = 0;

    ping_pong(std::uint32_t n, clock_type::duration budget, clock_type::duration limit)
        : max_rounds(n), soft_end(clock_type::now() + budget), deadline(clock_type::now() + limit) {
        front.init();
        back = std::make_unique<back_ring<tx_ring_types>>(page.get());
    }
    // The last request: make_tx_request() never sets all flag bits.
    static abi::tx_request stop_request(std::uint32_t seq) {
        auto r = make_tx_request(seq);
        r.flags = 0xFFFF;
        return r;
    }
    static std::uint32_t next(std::uint32_t& lcg) {
        lcg = lcg * 1664525u + 1013904223u;
        return lcg >> 16;
    }
    static void spin(std::uint32_t n) {
        // The compiler barrier keeps the empty loop from being optimised away.
        for (std::uint32_t i = 0; i < n; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    // Wait for input the way a polling driver does: busy-poll for a while,
    // then the final check, then sleep on the event. Half of the waits poll
    // long (the side stays awake, so its next push comes quickly), half poll
    // for a short random time, so their final check lands around the awake
    // peer's push. Returns false on failure.
    template <class Pending, class FinalCheck>
    bool await(Pending pending, FinalCheck final_check, event_fd& ev, std::uint64_t& saved, std::uint64_t& sleeps,
               std::uint32_t& lcg, const char* who) {
        // A notify left over from work we already found would end the sleep
        // below at once and hide a lost wake-up; drop it before looking at the
        // ring (safe: anything it announced is visible to the checks below).
        ev.clear();
        const std::uint32_t r = next(lcg);
        const std::uint32_t polls = (r & 1u) ? 20000u : (r >> 1) % 256u;
        for (std::uint32_t i = 0; i < polls; ++i) {
            if (pending()) return true;
            spin(4);
        }
        const bool seen = pending();
        if (final_check()) {
            saved += !seen;
            return true;
        }
        ++sleeps;
        if (ev.wait(deadline, log.aborted())) return true;
        log.fail(std::string(who) + ": no wake-up before the deadline (lost wake-up?)");
        return false;
    }
    // One request out, its response back. Returns false on failure.
    bool exchange(const abi::tx_request& req, std::uint32_t seq, std::uint32_t& lcg) {
        spin(next(lcg) % 256);
        front.put_request(req);
        if (front.push_requests()) to_back.notify();
        for (;;) {
            const auto u = front.pending_responses();
            if (u.status != ring_status::ok) {
                log.fail("frontend: response overflow");
                return false;
            }
            if (u.count) {
                if (u.count == 1 && same_bytes(front.take_response(), make_tx_response(seq))) return true;
                log.fail("frontend: wrong response " + std::to_string(seq));
                return false;
            }
            if (!await([&] { return front.pending_responses().count != 0; },
                       [&] { return front.final_check_for_responses(); }, to_front, front_rechecks_saved,
                       front_sleeps, lcg, "frontend"))
                return false;
        }
    }
    void frontend() {
        std::uint32_t lcg = 1;
        std::uint32_t seq = 0;
        for (; seq < max_rounds; ++seq) {
            if ((seq & 1023u) == 0 && clock_type::now() > soft_end) break;
            if (!exchange(make_tx_request(seq), seq, lcg)) return;
        }
        rounds = seq;
        (void)exchange(stop_request(seq), seq, lcg);
    }
    void backend() {
        std::uint32_t lcg = 2;
        for (std::uint32_t seq = 0;;) {
            const auto u = back->pending_requests();
            if (u.status != ring_status::ok) return log.fail("backend: request overflow");
            if (u.count) {
                if (u.count != 1) return log.fail("backend: more than one request outstanding");
                const auto req = back->take_request();
                const bool stop = same_bytes(req, stop_request(seq));
                if (!stop && !same_bytes(req, make_tx_request(seq)))
                    return log.fail("backend: wrong request " + std::to_string(seq));
                spin(next(lcg) % 256);
                back->put_response(make_tx_response(seq));
                if (back->push_responses()) to_front.notify();
                if (stop) return;
                ++seq;
                continue;
            }
            if (!await([&] { return back->pending_requests().count != 0; },
                       [&] { return back->final_check_for_requests(); }, to_back, back_rechecks_saved, back_sleeps,
                       lcg, "backend"))
                return;
        }
    }
};

TEST(RingStress, PingPongAroundTheFinalCheckLosesNoWakeups) {
    constexpr std::uint32_t max_rounds = 200'000;
    constexpr auto budget = std::chrono::seconds(5);
    constexpr auto limit = std::chrono::seconds(30);
    const auto start = clock_type::now();
    ping_pong s(max_rounds, budget, limit);
    ASSERT_TRUE(s.to_back.valid() && s.to_front.valid());
    std::thread b([&] { s.backend(); });
    std::thread f([&] { s.frontend(); });
    f.join();
    b.join();
    const auto elapsed = clock_type::now() - start;
    ASSERT_EQ(s.log.first(), "");
    EXPECT_LT(elapsed, limit);
    EXPECT_GE(s.rounds, 10'000u) << "too few rounds to mean anything";
    EXPECT_EQ(s.front.rsp_cons(), s.rounds + 1u) << "every request and the stop request answered";
    EXPECT_EQ(s.back->req_cons(), s.rounds + 1u);
    EXPECT_GE(s.front_sleeps + s.back_sleeps, 1u) << "the protocol's sleep path was exercised";
    std::cout << "[ stress ] ping-pong " << s.rounds << " rounds in "
              << std::chrono::duration<double, std::milli>(elapsed).count() << " ms; sleeps front " << s.front_sleeps
              << " back " << s.back_sleeps << "; re-checks that saved a wake-up: front " << s.front_rechecks_saved
              << " back " << s.back_rechecks_saved << "\n";
}

TEST(RingStress, MillionRequestsArriveInOrderWithoutLostWakeups) {
    constexpr std::uint32_t total = 1'000'000;
    constexpr auto limit = std::chrono::seconds(30);
    const auto start = clock_type::now();
    stress_run<tx_ring_types> s(total, limit);
    ASSERT_TRUE(s.to_back.valid() && s.to_front.valid());
    s.run();
    const auto elapsed = clock_type::now() - start;

    ASSERT_EQ(s.log.first(), "");
    EXPECT_LT(elapsed, limit);
    EXPECT_EQ(s.front.req_prod_pvt(), total);
    EXPECT_EQ(s.front.rsp_cons(), total);
    EXPECT_EQ(s.back->req_cons(), total);
    EXPECT_EQ(s.back->rsp_prod_pvt(), total);
    EXPECT_EQ(s.front.free_requests(), tx_ring_types::size);

    // Hold-off works: every side notified at least once, and far less often
    // than once per message (at most one notify per push, and pushes carry
    // batches while the peer is busy).
    EXPECT_GE(s.front_stats.notifies, 1u);
    EXPECT_GE(s.back_stats.notifies, 1u);
    EXPECT_LE(s.front_stats.notifies, s.front_stats.pushes);
    EXPECT_LE(s.back_stats.notifies, s.back_stats.pushes);
    EXPECT_LT(s.front_stats.notifies, total / 4);
    EXPECT_LT(s.back_stats.notifies, total / 4);

    const double ms = std::chrono::duration<double, std::milli>(elapsed).count();
    std::cout << "[ stress ] " << total << " requests in " << ms << " ms; frontend pushes " << s.front_stats.pushes
              << ", notifies " << s.front_stats.notifies << ", sleeps " << s.front_stats.sleeps << "; backend pushes "
              << s.back_stats.pushes << ", notifies " << s.back_stats.notifies << ", sleeps " << s.back_stats.sleeps
              << "\n";
    RecordProperty("request_notifies", static_cast<int>(s.front_stats.notifies));
    RecordProperty("response_notifies", static_cast<int>(s.back_stats.notifies));
}

}  // namespace
}  // namespace vifkit::ring::test
