// Shared plumbing for the vifkit command-line tools: signals into the event
// loop, opening the store and the emulated domain, writing stats.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "vifkit/emu/domain.hpp"
#include "vifkit/platform/platform.hpp"
#include "vifkit/platform/store.hpp"
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

// One process's view of the emulated platform: its domain (registered with
// the broker), the grant/event services, and a store connection.
struct emu_session {
    std::unique_ptr<emu::domain> domain;
    platform::services svc;
    std::unique_ptr<platform::store> store;
};
// Attach to the broker as `domid` and connect to the store. Throws
// std::runtime_error with a clear message on failure.
emu_session open_emu(const std::string& broker, domid_t domid, std::size_t mem_pages, std::size_t grant_entries);

// Stats JSON of a tool: `j` with "tool" added, to `path` ('-' or empty = stdout).
void dump_stats(const std::string& path, nlohmann::json j, const char* tool);

}  // namespace vifkit::tools
