#include "vifkit/util/timer.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <system_error>

namespace vifkit::util {
namespace {

timespec to_timespec(std::chrono::nanoseconds d) {
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(s.count());
    ts.tv_nsec = static_cast<long>((d - s).count());
    return ts;
}

}  // namespace

timer::timer(event_loop& loop, callback cb)
    : loop_(loop),
      cb_(std::make_shared<callback>(std::move(cb))),
      fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "timerfd_create");
    try {
        loop_.add(fd_, [this] { on_readable(); });
    } catch (...) {
        ::close(fd_);
        throw;
    }
}

timer::~timer() {
    loop_.remove(fd_);  // the loop keeps our lambda alive if it is running now
    ::close(fd_);
}

void timer::set(std::chrono::nanoseconds value, std::chrono::nanoseconds interval) {
    itimerspec its{};
    its.it_value = to_timespec(value);
    its.it_interval = to_timespec(interval);
    // Re-programming also resets the expiry count, so a stale expiry that the
    // loop has already collected reads as EAGAIN in on_readable().
    if (::timerfd_settime(fd_, 0, &its, nullptr) < 0)
        throw std::system_error(errno, std::generic_category(), "timerfd_settime");
}

void timer::arm_after(std::chrono::nanoseconds delay) {
    // An all-zero it_value would disarm: the earliest expiry is 1 ns from now.
    set(delay.count() > 0 ? delay : std::chrono::nanoseconds(1), {});
    armed_ = true;
    periodic_ = false;
}

void timer::arm_every(std::chrono::nanoseconds period) {
    if (period.count() <= 0) throw std::invalid_argument("timer::arm_every: period must be > 0");
    set(period, period);
    armed_ = true;
    periodic_ = true;
}

void timer::cancel() {
    set({}, {});
    armed_ = false;
    periodic_ = false;
}

void timer::on_readable() {
    std::uint64_t expiries = 0;
    if (::read(fd_, &expiries, sizeof expiries) != static_cast<ssize_t>(sizeof expiries))
        return;  // EAGAIN: cancelled or re-armed after the loop saw it expire
    if (!armed_) return;
    if (!periodic_) armed_ = false;
    // The callback may destroy this timer: hold our own reference to it and do
    // not touch `this` once it has been called.
    const std::shared_ptr<callback> cb = cb_;
    (*cb)();
}

}  // namespace vifkit::util
