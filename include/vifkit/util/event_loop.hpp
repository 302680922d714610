// A small single-threaded epoll loop: register fds with callbacks, run until stopped.
// Used by the daemons (vifkit-xenstored and its broker) and by the tools.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

namespace vifkit::util {

class event_loop {
public:
    using callback = std::function<void()>;
    event_loop();
    ~event_loop();
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;

    // Call `cb` whenever `fd` is readable (level-triggered). Replaces any earlier callback.
    void add(int fd, callback cb);
    // Stop watching `fd`. Safe to call from inside a callback, including fd's own.
    void remove(int fd);
    // Run callbacks until stop().
    void run();
    // Wait at most `timeout` for events and dispatch them. Returns the number dispatched.
    int run_once(std::chrono::milliseconds timeout);
    // End run(). run_once() still dispatches (for shutdown sequences).
    void stop() { stopped_ = true; }
    // Run `cb` once, on the next iteration, without waiting for an fd (used to
    // continue work that was cut short by a budget, so one peer cannot hog the loop).
    void defer(callback cb) { deferred_.push_back(std::move(cb)); }
    [[nodiscard]] bool stopped() const { return stopped_; }

private:
    int epfd_ = -1;
    bool stopped_ = false;
    std::unordered_map<int, std::shared_ptr<callback>> cbs_;
    std::vector<callback> deferred_;
};

}  // namespace vifkit::util
