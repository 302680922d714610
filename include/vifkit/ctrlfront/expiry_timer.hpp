// A timerfd in the event loop that calls ctrl_client::expire() at the
// client's next deadline, so a backend that never answers cannot leave
// requests (and their callers) waiting forever.
#pragma once
#include "vifkit/ctrlfront/ctrl_client.hpp"
#include "vifkit/util/event_loop.hpp"

namespace vifkit::ctrlfront {

class expiry_timer {
public:
    // Registers a timerfd with `loop`. Both must outlive the timer.
    expiry_timer(util::event_loop& loop, ctrl_client& client);
    ~expiry_timer();
    expiry_timer(const expiry_timer&) = delete;
    expiry_timer& operator=(const expiry_timer&) = delete;

    // (Re)arm at client.next_deadline(), or disarm when nothing is outstanding.
    // Call after send(); after firing the timer re-arms itself. A stale early
    // wake-up is harmless (expire() finds nothing due, the timer re-arms).
    void arm();

private:
    void on_fire();
    util::event_loop& loop_;
    ctrl_client& client_;
    int fd_ = -1;
};

}  // namespace vifkit::ctrlfront
