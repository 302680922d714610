// core::backend_on_frontend / frontend_on_backend against netif-spec §5.2 and
// the diagram in include/vifkit/core/xenbus_fsm.hpp. Table-driven:
// (ours, theirs, connected) -> (action, states to write in order).
#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "vifkit/abi/xenbus.hpp"
#include "vifkit/core/xenbus_fsm.hpp"

namespace vifkit::core {
namespace {

using S = xenbus_state;
using A = fsm_action;
using fsm_fn = fsm_step (*)(xenbus_state, std::optional<xenbus_state>, bool);

constexpr std::array<S, 9> all_states = {S::unknown,   S::initialising, S::init_wait,     S::initialised, S::connected,
                                         S::closing,   S::closed,       S::reconfiguring, S::reconfigured};

const char* name(A a) {
    switch (a) {
    case A::none: return "none";
    case A::connect: return "connect";
    case A::disconnect: return "disconnect";
    case A::start: return "start";
    case A::fatal: return "fatal";
    }
    return "?";
}

std::string name(std::optional<S> s) { return s ? abi::to_string(*s) : "(gone)"; }

std::vector<S> path_of(const fsm_step& st) { return {st.path.begin(), st.path.begin() + st.count}; }

std::string show(A a, const std::vector<S>& path) {
    std::ostringstream o;
    o << name(a) << " [";
    for (std::size_t i = 0; i < path.size(); ++i) o << (i ? ", " : "") << abi::to_string(path[i]);
    o << "]";
    return o.str();
}

struct row {
    S ours;
    std::optional<S> theirs;
    bool connected;
    A action;
    std::vector<S> path;
};

std::string describe(const row& r) {
    std::ostringstream o;
    o << "ours=" << abi::to_string(r.ours) << " theirs=" << name(r.theirs) << " connected=" << r.connected;
    return o.str();
}

void expect_rows(fsm_fn fn, const std::vector<row>& rows) {
    for (const row& r : rows) {
        const fsm_step st = fn(r.ours, r.theirs, r.connected);
        ASSERT_LE(st.count, st.path.size()) << describe(r);
        EXPECT_EQ(show(st.action, path_of(st)), show(r.action, r.path)) << describe(r);
    }
}

// Re-delivering the peer's state once our own reaction has been applied
// changes nothing (watches fire spuriously and coalesce).
void expect_idempotent(fsm_fn fn, const std::vector<row>& rows) {
    for (const row& r : rows) {
        if (r.action == A::fatal) continue;
        const S ours = r.path.empty() ? r.ours : r.path.back();
        const bool connected = r.action == A::connect ? true : r.action == A::disconnect ? false : r.connected;
        const fsm_step again = fn(ours, r.theirs, connected);
        // `start` is level-triggered (the frontend driver starts traffic once);
        // it never writes a state.
        const A want = r.action == A::start ? A::start : A::none;
        EXPECT_EQ(show(again.action, path_of(again)), show(want, {}))
            << describe(r) << ", re-delivered with ours=" << abi::to_string(ours) << " connected=" << connected;
    }
}

// ======================= backend_on_frontend =======================

const std::vector<row> backend_handshake = {
    // step 2: frontend Initialising -> InitWait
    {S::initialising, S::initialising, false, A::none, {S::init_wait}},
    {S::init_wait, S::initialising, false, A::none, {}},
    // step 4: frontend Connected -> connect, Connected
    {S::init_wait, S::connected, false, A::connect, {S::connected}},
    {S::connected, S::connected, true, A::none, {}},
    // features not written yet (still Initialising): nothing to do
    {S::initialising, S::connected, false, A::none, {}},
};
const std::vector<row> backend_initialised_ignored = {
    {S::initialising, S::initialised, false, A::none, {}},
    {S::init_wait, S::initialised, false, A::none, {}},
    {S::connected, S::initialised, true, A::none, {}},
};
const std::vector<row> backend_close = {
    // "frontend Closing -> disconnect, Closing; frontend Closed -> Closed"
    {S::connected, S::closing, true, A::disconnect, {S::closing}},
    {S::closing, S::closing, false, A::none, {}},
    {S::closing, S::closing, true, A::disconnect, {}},
    {S::closing, S::closed, false, A::none, {S::closed}},
    {S::closed, S::closed, false, A::none, {}},
    {S::connected, S::closed, true, A::disconnect, {S::closing, S::closed}},  // Closing missed
    {S::init_wait, S::closing, false, A::none, {S::closing}},
    {S::init_wait, S::closed, false, A::none, {S::closing, S::closed}},
};
const std::vector<row> backend_frontend_gone = {
    // "frontend Unknown = gone": disconnect if connected, Closed
    {S::connected, std::nullopt, true, A::disconnect, {S::closed}},
    {S::connected, S::unknown, true, A::disconnect, {S::closed}},
    {S::init_wait, std::nullopt, false, A::none, {S::closed}},
    {S::init_wait, S::unknown, false, A::none, {S::closed}},
    {S::initialising, std::nullopt, false, A::none, {S::closed}},
    {S::closing, std::nullopt, false, A::none, {S::closed}},
    {S::closed, std::nullopt, false, A::none, {}},
    {S::closed, S::unknown, false, A::none, {}},
};
const std::vector<row> backend_reconnect = {
    // "frontend Initialising while Connected -> disconnect -> Closing -> Closed -> InitWait"
    {S::connected, S::initialising, true, A::disconnect, {S::closing, S::closed, S::init_wait}},
    {S::closing, S::initialising, false, A::none, {S::closed, S::init_wait}},
    {S::closed, S::initialising, false, A::none, {S::init_wait}},
    // the frontend skipped ahead to Connected while we were Closed
    {S::closed, S::connected, false, A::connect, {S::init_wait, S::connected}},
};
const std::vector<row> backend_unused_states = {
    {S::connected, S::init_wait, true, A::fatal, {S::closing}},  // a frontend never uses InitWait
    {S::init_wait, S::init_wait, false, A::fatal, {S::closing}},
    {S::connected, S::reconfiguring, true, A::fatal, {S::closing}},
    {S::connected, S::reconfigured, true, A::fatal, {S::closing}},
    {S::init_wait, S::reconfiguring, false, A::fatal, {S::closing}},
    {S::init_wait, S::reconfigured, false, A::fatal, {S::closing}},
};

TEST(Spec5_2_BackendFsm, HandshakeInitWaitThenConnect) { expect_rows(backend_on_frontend, backend_handshake); }
TEST(Spec5_2_BackendFsm, FrontendInitialisedIsIgnored) { expect_rows(backend_on_frontend, backend_initialised_ignored); }
TEST(Spec5_2_BackendFsm, CloseFollowsFrontendClosingAndClosed) { expect_rows(backend_on_frontend, backend_close); }
TEST(Spec5_2_BackendFsm, FrontendGoneDisconnectsAndCloses) { expect_rows(backend_on_frontend, backend_frontend_gone); }
TEST(Spec5_2_BackendFsm, ReconnectTakesShortestPathToInitWait) { expect_rows(backend_on_frontend, backend_reconnect); }
TEST(Spec5_2_BackendFsm, UnusedFrontendStatesAreFatal) { expect_rows(backend_on_frontend, backend_unused_states); }

TEST(Spec5_2_BackendFsm, RedeliveringTheSameStateDoesNothing) {
    for (const auto* rows : {&backend_handshake, &backend_initialised_ignored, &backend_close, &backend_frontend_gone,
                             &backend_reconnect})
        expect_idempotent(backend_on_frontend, *rows);
}

// ======================= frontend_on_backend =======================

const std::vector<row> frontend_handshake = {
    // step 1: wait while the backend is absent / Unknown / not yet InitWait
    {S::initialising, std::nullopt, false, A::none, {}},
    {S::initialising, S::unknown, false, A::none, {}},
    {S::initialising, S::initialising, false, A::none, {}},
    {S::initialising, S::initialised, false, A::none, {}},
    // step 3: backend InitWait while Initialising -> set up, write keys, Connected
    {S::initialising, S::init_wait, false, A::connect, {S::connected}},
    {S::connected, S::init_wait, true, A::none, {}},
    // step 5: backend Connected -> start traffic
    {S::connected, S::connected, true, A::start, {}},
    {S::initialising, S::connected, false, A::none, {}},
};
const std::vector<row> frontend_close = {
    // "backend Closing seen -> frontend goes Closed"
    {S::connected, S::closing, true, A::disconnect, {S::closed}},
    {S::connected, S::closed, true, A::disconnect, {S::closed}},  // Closing missed
    // device removal: we are Closing, backend follows
    {S::closing, S::closing, true, A::disconnect, {S::closed}},
    {S::closing, S::closing, false, A::none, {S::closed}},
    {S::closing, S::closed, true, A::disconnect, {S::closed}},
    {S::closed, S::closing, false, A::none, {}},
    {S::closed, S::closed, false, A::none, {}},
};
const std::vector<row> frontend_waits_in_initialising = {
    // Initialising ignores backend Closing/Closed: waits for InitWait
    {S::initialising, S::closing, false, A::none, {}},
    {S::initialising, S::closed, false, A::none, {}},
};
const std::vector<row> frontend_backend_gone = {
    {S::connected, std::nullopt, true, A::none, {}},
    {S::connected, S::unknown, true, A::none, {}},
    {S::closed, std::nullopt, false, A::none, {}},
};
const std::vector<row> frontend_reconnect = {
    // "Closed --back InitWait--> Initialising, then as above"
    {S::closed, S::init_wait, false, A::connect, {S::initialising, S::connected}},
};
const std::vector<row> frontend_unused_states = {
    {S::connected, S::reconfiguring, true, A::fatal, {S::closed}},
    {S::connected, S::reconfigured, true, A::fatal, {S::closed}},
    {S::initialising, S::reconfiguring, false, A::fatal, {S::closed}},
    {S::initialising, S::reconfigured, false, A::fatal, {S::closed}},
};

TEST(Spec5_2_FrontendFsm, HandshakeConnectOnInitWaitStartOnConnected) {
    expect_rows(frontend_on_backend, frontend_handshake);
}
TEST(Spec5_2_FrontendFsm, CloseGoesClosedOnBackendClosing) { expect_rows(frontend_on_backend, frontend_close); }
TEST(Spec5_2_FrontendFsm, InitialisingIgnoresBackendClosingAndClosed) {
    expect_rows(frontend_on_backend, frontend_waits_in_initialising);
}
TEST(Spec5_2_FrontendFsm, BackendGoneIsWaitedOut) { expect_rows(frontend_on_backend, frontend_backend_gone); }
TEST(Spec5_2_FrontendFsm, ReconnectFromClosedOnBackendInitWait) {
    expect_rows(frontend_on_backend, frontend_reconnect);
}
TEST(Spec5_2_FrontendFsm, UnusedBackendStatesAreFatal) { expect_rows(frontend_on_backend, frontend_unused_states); }

TEST(Spec5_2_FrontendFsm, RedeliveringTheSameStateDoesNothing) {
    for (const auto* rows : {&frontend_handshake, &frontend_close, &frontend_waits_in_initialising,
                             &frontend_backend_gone, &frontend_reconnect})
        expect_idempotent(frontend_on_backend, *rows);
}

// ======================= every input =======================

// Invariants over all (ours, theirs, connected), both machines.
void check_all(fsm_fn fn, bool backend) {
    std::vector<std::optional<S>> theirs_all{std::nullopt};
    for (S s : all_states) theirs_all.emplace_back(s);
    for (S ours : all_states)
        for (const auto& theirs : theirs_all)
            for (bool connected : {false, true}) {
                const row in{ours, theirs, connected, A::none, {}};
                const fsm_step st = fn(ours, theirs, connected);
                ASSERT_LE(st.count, st.path.size()) << describe(in);
                const auto path = path_of(st);
                const bool unused = theirs && (*theirs == S::reconfiguring || *theirs == S::reconfigured ||
                                               (backend && *theirs == S::init_wait));
                EXPECT_EQ(st.action == A::fatal, unused) << describe(in) << " -> " << show(st.action, path);
                if (st.action == A::fatal) {
                    EXPECT_EQ(show(st.action, path), show(A::fatal, {backend ? S::closing : S::closed})) << describe(in);
                    continue;
                }
                const bool consistent = !connected || ours == S::connected;
                if (st.action == A::connect) {
                    if (consistent) { EXPECT_FALSE(connected) << describe(in); }
                    ASSERT_FALSE(path.empty()) << describe(in);
                    EXPECT_EQ(path.back(), S::connected) << describe(in);
                }
                if (st.action == A::disconnect) { EXPECT_TRUE(connected) << describe(in); }
                if (st.action == A::start) { EXPECT_TRUE(path.empty()) << describe(in); }
                bool leaves = false;
                for (S p : path) {
                    leaves = leaves || p == S::closing || p == S::closed;
                    const bool writable = backend ? (p == S::init_wait || p == S::connected || p == S::closing ||
                                                     p == S::closed)
                                                  : (p == S::initialising || p == S::connected || p == S::closed);
                    EXPECT_TRUE(writable) << describe(in) << " writes " << abi::to_string(p);
                }
                if (connected && leaves) { EXPECT_EQ(st.action, A::disconnect) << describe(in); }
                // Shortest path: for consistent inputs (connected only while
                // our state is Connected) no state is written twice in a row.
                if (consistent) {
                    S prev = ours;
                    for (S p : path) {
                        EXPECT_NE(p, prev) << describe(in) << " -> " << show(st.action, path);
                        prev = p;
                    }
                }
            }
}

TEST(Spec5_2_BackendFsm, EveryInputKeepsInvariants) { check_all(backend_on_frontend, true); }
TEST(Spec5_2_FrontendFsm, EveryInputKeepsInvariants) { check_all(frontend_on_backend, false); }

}  // namespace
}  // namespace vifkit::core
