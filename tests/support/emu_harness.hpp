// Test support: run vifkit's real processes over the emulated platform
// (vifkit-xenstored with its broker, vifkit-back, vifkit-front, vifkit-attach)
// in a private temp directory, and drive traffic through their unix ports.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vifkit/io/packet_port.hpp"
#include "vifkit/platform/store.hpp"

namespace vifkit::test {

using namespace std::chrono_literals;

// Directory holding the built executables (env VIFKIT_BIN_DIR, set by CTest).
std::string bin_dir();

// A child process; killed (TERM, then KILL) when destroyed.
class child {
public:
    child() = default;
    child(const std::vector<std::string>& argv, const std::string& log_path);
    child(child&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
    child& operator=(child&& o) noexcept;
    ~child();
    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] bool alive();
    void signal(int sig) const;
    // Wait for exit; returns the exit status (or 128+signal), nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    // TERM, wait up to `grace`, then KILL.
    void stop(std::chrono::milliseconds grace = 5s);

private:
    pid_t pid_ = -1;
};

class emu_env {
public:
    emu_env();
    ~emu_env();
    const std::string dir, xs_sock, broker_sock;

    // Host port spec of vifkit-back (and guest port spec of vifkit-front) for the
    // next start_*(); empty = the default "unix:" sockets in `dir`.
    std::string backend_port_spec, frontend_port_spec;
    child start_backend(const std::vector<std::string>& extra = {});
    child start_frontend(unsigned domid, const std::vector<std::string>& extra = {});
    bool attach(unsigned guest, unsigned devid = 0, bool detach = false);
    // Host port of a backend vif started with the default port template.
    [[nodiscard]] std::string backend_port(unsigned guest, unsigned devid = 0) const;
    [[nodiscard]] std::string frontend_port(unsigned guest) const;
    [[nodiscard]] std::string stats_path(const std::string& who) const;

    platform::store& store() { return *store_; }
    std::optional<std::string> read(const std::string& path);
    bool wait_value(const std::string& path, const std::string& value, std::chrono::milliseconds timeout = 15s);
    bool wait_connected(unsigned guest, unsigned devid = 0, std::chrono::milliseconds timeout = 15s);
    // SIGUSR1 the tool, wait for its stats file to be rewritten, parse it.
    std::optional<nlohmann::json> stats(child& c, const std::string& who);
    // Read a process's log (for failure messages).
    [[nodiscard]] std::string log(const std::string& who) const;

private:
    child xenstored_;
    std::unique_ptr<platform::store> store_;
};

// Frames carry a sequence number in the source MAC and a payload derived from it,
// so the receiver can check size and every byte. Sizes are 14..1514, pseudo-random.
struct traffic_result {
    std::uint64_t sent = 0, received = 0, corrupted = 0, out_of_order = 0;
    bool timed_out = false;
};
traffic_result pump(io::packet_port& from, io::packet_port& to, std::uint64_t count, std::uint32_t seed,
                    unsigned window = 64, std::chrono::milliseconds stall_timeout = 10s);
// The entry of guest `guest` in vifkit-back's stats JSON ("vifs"), or nullptr.
const nlohmann::json* find_vif(const nlohmann::json& back_stats, unsigned guest);
// Wait until the frontend `front` (stats name `who`) reports `n` static grants
// registered (it registers its pools after Connected). False on timeout.
bool wait_static_grants(emu_env& env, child& front, const std::string& who, std::uint64_t n,
                        std::chrono::milliseconds timeout = 10s);
// Connect a driver-side port to a tool's "unix:" port, retrying until it exists.
std::unique_ptr<io::packet_port> connect_port(const std::string& path, std::chrono::milliseconds timeout = 10s);

}  // namespace vifkit::test
