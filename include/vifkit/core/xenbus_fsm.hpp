// The xenbus handshake as pure functions (style habit 10): (our state, the
// peer's state) -> the states to walk through and the action to take. The
// drivers (netback.cpp, netfront.cpp) perform the actions. netif-spec §5.2.
//
// Backend (Linux xenbus.c semantics):
//
//   Initialising --features written--> InitWait
//   InitWait --front Connected--> [connect] Connected
//   Connected --front Closing--> [disconnect] Closing
//   any --front Closed--> [disconnect] Closed
//   Connected --front Initialising (reconnect)--> [disconnect] Closing, Closed, InitWait
//   Closed --front Initialising--> InitWait
//   front gone (node removed / Unknown) --> [disconnect] Closed
//
// Frontend:
//   Initialising --back InitWait--> [setup, write keys] Connected
//   Connected --back Connected--> [start traffic]
//   Connected --back Closing--> [disconnect] Closed
//   Closed --back InitWait--> Initialising, then as above (reconnect)
#pragma once
#include <array>
#include <cstdint>
#include <optional>

#include "vifkit/abi/xenbus.hpp"

namespace vifkit::core {

using abi::xenbus_state;

enum class fsm_action : std::uint8_t { none, connect, disconnect, start, fatal };

struct fsm_step {
    fsm_action action = fsm_action::none;
    // States to write, in order (shortest path); count = how many are valid.
    std::array<xenbus_state, 3> path{};
    std::uint8_t count = 0;
};

// Backend reaction to the frontend's state. `front` = nullopt: the frontend's
// state node is gone or unparsable (treated as a vanished frontend).
fsm_step backend_on_frontend(xenbus_state ours, std::optional<xenbus_state> front, bool connected);

// Frontend reaction to the backend's state.
fsm_step frontend_on_backend(xenbus_state ours, std::optional<xenbus_state> back, bool connected);

}  // namespace vifkit::core
