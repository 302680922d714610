// Logging helpers on top of spdlog. Peer-triggered messages go through
// rate_limited so a hostile peer cannot flood the log (style habit 13).
#pragma once
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string_view>

namespace vifkit::util {

// Configure the default logger: "tool-name" prefix, level from a string
// ("trace".."off"). Logs go to stderr.
void init_logging(std::string_view tool, std::string_view level);

// Allows `burst` messages per `interval`; counts what it suppressed.
class rate_limited {
public:
    explicit rate_limited(unsigned burst = 10,
                          std::chrono::milliseconds interval = std::chrono::seconds(5))
        : burst_(burst), interval_(interval) {}
    // True if the caller may log now.
    bool allow();
    [[nodiscard]] std::uint64_t suppressed() const { return suppressed_; }

private:
    unsigned burst_;
    std::chrono::milliseconds interval_;
    std::chrono::steady_clock::time_point window_start_{};
    unsigned in_window_ = 0;
    std::uint64_t suppressed_ = 0;
};

}  // namespace vifkit::util
