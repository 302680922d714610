// Shared plumbing for the vifkit command-line tools: signals into the event
// loop, opening the store and the emulated domain, writing stats.
#pragma once
#include <functional>
#include <memory>
#include <optional>
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

// Emulated platform: when the broker (the emulated hypervisor, part of
// vifkit-xenstored) goes away, log a clear error, set `lost` and stop `loop`.
// Nothing of the session survives that and a restarted vifkit-xenstored knows
// none of it, so the tool exits (status 1) rather than serving on unnoticed.
// No-op for a session without an emulated domain.
void watch_broker(util::event_loop& loop, emu_session& s, const char* tool, bool& lost);

// Real Xen (--platform xen): the /dev/xen services and libxenstore's default
// connection; `domain` stays empty. Our domain id is `domid` if given, else
// what xenstore says ("domid"). A backend opens the mapper, a frontend the
// sharer. Throws std::runtime_error with a clear message on failure (for
// example when /dev/xen/* is absent: not running on Xen).
emu_session open_xen(std::optional<domid_t> domid, bool backend);

// "emu" or "xen": the choices of --platform.
inline constexpr const char* platform_help =
    "Platform: emu (emulated Xen: vifkit-xenstored broker, needs --broker) or\n"
    "xen (real Xen: /dev/xen/{gntdev,gntalloc,evtchn} and the system xenstored)";

// Run `loop` until it is stopped. With busy = false that is loop.run(). With
// busy = true it spins on `poll` (the data path, no sleeping and no syscalls
// of its own) and lets the loop dispatch its fds (event channels, xenstore
// watches, signals) without waiting, once every `busy_loop_interval` passes.
// After `busy_idle_yield` passes in a row with nothing to do it calls
// sched_yield(), so a busy-polling process does not starve others on its CPU.
inline constexpr unsigned busy_loop_interval = 128;
inline constexpr unsigned busy_idle_yield = 1024;
void run_loop(util::event_loop& loop, bool busy, const std::function<bool()>& poll);

// Stats JSON of a tool: `j` with "tool" added, to `path` ('-' or empty = stdout).
void dump_stats(const std::string& path, nlohmann::json j, const char* tool);

}  // namespace vifkit::tools
