#include "vifkit/ctrlfront/expiry_timer.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace vifkit::ctrlfront {

expiry_timer::expiry_timer(util::event_loop& loop, ctrl_client& client)
    : loop_(loop), client_(client) {
    // steady_clock is CLOCK_MONOTONIC on Linux, so deadlines arm as absolute times.
    fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "timerfd_create");
    loop_.add(fd_, [this] { on_fire(); });
}

expiry_timer::~expiry_timer() {
    loop_.remove(fd_);
    ::close(fd_);
}

void expiry_timer::arm() {
    itimerspec spec{};
    if (const auto when = client_.next_deadline()) {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when->time_since_epoch()).count();
        // 0 would disarm: a deadline at the clock's origin is simply "now".
        const std::int64_t at = ns > 0 ? ns : 1;
        spec.it_value.tv_sec = static_cast<time_t>(at / 1'000'000'000);
        spec.it_value.tv_nsec = static_cast<long>(at % 1'000'000'000);
    }
    if (::timerfd_settime(fd_, TFD_TIMER_ABSTIME, &spec, nullptr) != 0)
        throw std::system_error(errno, std::generic_category(), "timerfd_settime");
}

void expiry_timer::on_fire() {
    std::uint64_t ticks = 0;
    [[maybe_unused]] const ssize_t n = ::read(fd_, &ticks, sizeof ticks);  // clears readability
    client_.expire(ctrl_client::clock::now());
    arm();
}

}  // namespace vifkit::ctrlfront
