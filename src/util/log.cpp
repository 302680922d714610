#include "vifkit/util/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>

namespace vifkit::util {

void init_logging(std::string_view tool, std::string_view level) {
    auto logger = spdlog::stderr_color_mt(std::string(tool));
    logger->set_pattern("%H:%M:%S.%e %n[%P] %^%l%$ %v");
    logger->set_level(spdlog::level::from_str(std::string(level)));
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
}

bool rate_limited::allow() {
    const auto now = std::chrono::steady_clock::now();
    if (now - window_start_ > interval_) {
        window_start_ = now;
        in_window_ = 0;
    }
    if (in_window_ < burst_) {
        ++in_window_;
        return true;
    }
    ++suppressed_;
    return false;
}

}  // namespace vifkit::util
