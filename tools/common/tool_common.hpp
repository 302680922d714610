// Shared plumbing for the vifkit command-line tools: signals into the event
// loop, opening the store and the emulated domain, writing stats.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "vifkit/util/event_loop.hpp"

namespace vifkit::tools {

struct signal_handlers {
    std::function<void()> on_stop;    // SIGTERM, SIGINT
    std::function<void()> on_stats;   // SIGUSR1
    std::function<void()> on_hup;     // SIGHUP
};
// Block the signals and deliver them through a signalfd watched by `loop`.
void install_signals(util::event_loop& loop, signal_handlers h);

// Point libxenstore at an emulated xenstored socket (XENSTORED_PATH), if given.
void use_store_socket(const std::string& path);

// Write `j` to `path` atomically (tmp + rename); "-" = stdout. Errors are logged.
void write_json(const std::string& path, const nlohmann::json& j);

}  // namespace vifkit::tools
