// In-process xenstore for fuzz targets.
//
// platform::store (src/platform/store.cpp) is a thin wrapper over libxenstore's
// C API. Linking inproc_xenstore.cpp into a fuzz executable defines those xs_*
// functions in the executable itself, which takes precedence over
// libxenstore.so: every platform::store in the process then talks to one
// emu::xs::engine (the real vifkit-xenstored state machine: node tree,
// transactions with EAGAIN on conflict, watches with their initial event,
// permissions, quotas) by plain function calls instead of two socket round
// trips through libxenstore's reader thread and a daemon thread.
//
// What libxenstore itself does is mirrored: requests are encoded as the same
// wire payloads and decoded by the engine (engine::handle_frame); replies come
// back as libxenstore returns them (malloc'd, NUL-terminated values, one block
// for string arrays, errno from the XS_ERROR name); xs_directory falls back to
// XS_DIRECTORY_PART on E2BIG; watch events are queued per handle and
// xs_fileno() is readable exactly while the queue is non-empty (libxenstore's
// watch pipe); xs_check_watch() is non-blocking (NULL + EAGAIN when empty).
// Every connection is privileged (dom0), like the emulator's toolstack and
// backend connections. Over-long event queues drop their oldest events at the
// daemon's bound (limits::event_queue_bytes), like vifkit-xenstored does.
//
// Thread-safe (one lock around the engine), but a fuzz target is expected to
// use it from one thread so that watch delivery is deterministic.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "vifkit/platform/types.hpp"

struct xs_handle;

namespace vifkit::fuzz {

// Creates the shared store (idempotent); must run before the first
// platform::store::open(), xs_open() aborts otherwise.
class inproc_xenstore;
inproc_xenstore& install_inproc_xenstore();

class inproc_xenstore {
public:
    // The toolstack's view of a domain's life (engine::introduce_domain /
    // release_domain): fires @introduceDomain / @releaseDomain.
    void introduce_domain(domid_t d);
    void release_domain(domid_t d);
    // Open xs_handles (connections).
    [[nodiscard]] std::size_t handle_count() const;
    // Nodes in the tree; the tree's structural self-check ("" if consistent).
    [[nodiscard]] std::size_t node_count() const;
    [[nodiscard]] std::string check() const;
    // Requests and watch events so far (engine counters).
    [[nodiscard]] std::uint64_t requests() const;
    [[nodiscard]] std::uint64_t watch_events() const;
    // True if `h` was made by this implementation (i.e. the interposition of
    // libxenstore worked for the caller that got it).
    [[nodiscard]] static bool owns(const xs_handle* h);

    struct impl;
    explicit inproc_xenstore(impl* p) : p_(p) {}

private:
    impl* p_;
};

}  // namespace vifkit::fuzz
