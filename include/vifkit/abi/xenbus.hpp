// enum xenbus_state (xen/io/xenbus.h; netif-spec §5). Written as decimal strings.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace vifkit::abi {

enum class xenbus_state : int {
    unknown = 0,
    initialising = 1,
    init_wait = 2,
    initialised = 3,
    connected = 4,
    closing = 5,
    closed = 6,
    reconfiguring = 7,
    reconfigured = 8,
};

constexpr const char* to_string(xenbus_state s) {
    switch (s) {
    case xenbus_state::unknown: return "Unknown";
    case xenbus_state::initialising: return "Initialising";
    case xenbus_state::init_wait: return "InitWait";
    case xenbus_state::initialised: return "Initialised";
    case xenbus_state::connected: return "Connected";
    case xenbus_state::closing: return "Closing";
    case xenbus_state::closed: return "Closed";
    case xenbus_state::reconfiguring: return "Reconfiguring";
    case xenbus_state::reconfigured: return "Reconfigured";
    }
    return "?";
}

// Parse a peer-written state value strictly: decimal 0..8, nothing else.
std::optional<xenbus_state> parse_xenbus_state(std::string_view s);

}  // namespace vifkit::abi
