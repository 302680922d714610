// util::timer: a CLOCK_MONOTONIC timerfd owned by one object and registered in an
// event_loop; its callback runs from the loop when it expires, one-shot or
// periodic. Used for time-driven protocol work such as the transmit credit
// refill that the toolstack's `rate` key asks for (netif-spec §5.1).
#pragma once
#include <chrono>
#include <functional>
#include <memory>

#include "vifkit/util/event_loop.hpp"

namespace vifkit::util {

class timer {
public:
    using callback = std::function<void()>;

    // Creates the timerfd (TFD_NONBLOCK | TFD_CLOEXEC) and registers it in `loop`,
    // disarmed. `loop` must outlive the timer. Throws std::system_error.
    timer(event_loop& loop, callback cb);
    // Unregisters and closes the fd. Safe from inside the timer's own callback.
    ~timer();
    timer(const timer&) = delete;
    timer& operator=(const timer&) = delete;
    timer(timer&&) = delete;
    timer& operator=(timer&&) = delete;

    // One-shot: fire once after `delay` (<= 0 means as soon as the loop runs).
    // Replaces any earlier arming, including a periodic one.
    void arm_after(std::chrono::nanoseconds delay);
    // Periodic: fire every `period` (> 0, else std::invalid_argument), first
    // after one period. Expiries missed while the loop was busy are coalesced
    // into one callback. Replaces any earlier arming.
    void arm_every(std::chrono::nanoseconds period);
    // Disarm. An expiry that is already pending in the loop is discarded too.
    // Safe from inside any callback, including this timer's own.
    void cancel();
    // True from arm_*() until a one-shot's callback starts or cancel().
    [[nodiscard]] bool armed() const { return armed_; }
    [[nodiscard]] int fd() const { return fd_; }

private:
    void set(std::chrono::nanoseconds value, std::chrono::nanoseconds interval);
    void on_readable();

    event_loop& loop_;
    std::shared_ptr<callback> cb_;  // shared so a running callback survives ~timer
    int fd_ = -1;
    bool armed_ = false;
    bool periodic_ = false;
};

}  // namespace vifkit::util
