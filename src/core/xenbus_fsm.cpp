#include "vifkit/core/xenbus_fsm.hpp"

#include <initializer_list>

namespace vifkit::core {

namespace {

fsm_step step(fsm_action a, std::initializer_list<xenbus_state> states) {
    fsm_step s;
    s.action = a;
    for (auto st : states) s.path[s.count++] = st;
    return s;
}

}  // namespace

fsm_step backend_on_frontend(xenbus_state ours, std::optional<xenbus_state> front, bool connected) {
    using S = xenbus_state;
    const fsm_action drop = connected ? fsm_action::disconnect : fsm_action::none;
    if (!front || *front == S::unknown) {
        // Frontend vanished (domain destroyed, nodes removed).
        if (ours == S::closed && !connected) return {};
        return step(drop, {S::closed});
    }
    switch (*front) {
    case S::initialising:
        if (ours == S::closing) return step(drop, {S::closed, S::init_wait});  // already Closing
        if (connected || ours == S::connected)
            return step(drop, {S::closing, S::closed, S::init_wait});  // reconnect, shortest path
        if (ours == S::closed || ours == S::initialising) return step(fsm_action::none, {S::init_wait});
        return {};
    case S::initialised:  // ignored, as by Linux netback and QEMU
        return {};
    case S::connected:
        if (connected) return {};
        if (ours == S::init_wait) return step(fsm_action::connect, {S::connected});
        if (ours == S::closed) return step(fsm_action::connect, {S::init_wait, S::connected});
        return {};
    case S::closing:
        if (ours == S::closing || ours == S::closed) return connected ? step(drop, {}) : fsm_step{};
        return step(drop, {S::closing});
    case S::closed:
        if (ours == S::closed && !connected) return {};
        if (ours == S::closing || ours == S::closed) return step(drop, {S::closed});
        return step(drop, {S::closing, S::closed});
    case S::init_wait:  // a frontend never uses InitWait
    case S::reconfiguring:
    case S::reconfigured:
    case S::unknown:
        break;
    }
    return step(fsm_action::fatal, {S::closing});  // a state netif does not use
}

fsm_step frontend_on_backend(xenbus_state ours, std::optional<xenbus_state> back, bool connected) {
    using S = xenbus_state;
    const fsm_action drop = connected ? fsm_action::disconnect : fsm_action::none;
    if (!back || *back == S::unknown) return {};  // backend not there yet: wait
    switch (*back) {
    case S::initialising:
    case S::initialised:
        return {};
    case S::init_wait:
        if (ours == S::initialising) return step(fsm_action::connect, {S::connected});
        if (ours == S::closed) return step(fsm_action::connect, {S::initialising, S::connected});
        return {};
    case S::connected:
        if (ours == S::connected) return step(fsm_action::start, {});
        return {};
    case S::closing:
    case S::closed:
        // Initialising: wait for the backend to come back (InitWait).
        if (ours == S::closed || ours == S::initialising) return {};
        return step(drop, {S::closed});
    case S::reconfiguring:
    case S::reconfigured:
    case S::unknown:
        break;
    }
    return step(fsm_action::fatal, {S::closed});
}

}  // namespace vifkit::core
