// Wire format between emu::domain (client) and emu::broker, one SOCK_SEQPACKET
// datagram per message. Requests are answered in order, one reply each; the broker
// never sends anything unsolicited. Every message has a fixed size, checked exactly.
// Fields that carry a domid or port are 32 bits wide so out-of-range values are
// visible to the validator instead of being truncated.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "vifkit/platform/types.hpp"

namespace vifkit::emu::detail {

enum class msg_type : std::uint32_t {
    register_req = 1,     // + 1 fd: guest memfd
    register_rsp = 2,     // + 2 fds on success: grant table (rw), directory (ro)
    peer_req = 3,
    peer_rsp = 4,         // + 3 fds (mem, grant table, active table) [+ pidfd]
    evtchn_alloc_req = 5,
    evtchn_bind_req = 6,
    evtchn_rsp = 7,       // + 2 fds on success: own eventfd, notify-target eventfd
    evtchn_close_req = 8,
    status_rsp = 9,
};

struct msg_header {
    msg_type type;
    std::uint32_t seq;  // echoed in the reply
};

struct register_req {
    msg_header h;
    std::uint32_t want_domid;  // domid_invalid = any
    std::int32_t pid;          // must match the connection's SO_PEERCRED pid
    std::uint64_t mem_pages;
    std::uint64_t grant_entries;
    std::uint64_t base;  // guest memory address in the registering process
};

struct register_rsp {
    msg_header h;
    std::int32_t err;  // 0 or an errno value
    std::uint32_t domid;
    std::uint32_t generation;
    std::uint32_t pad;
};

struct peer_req {
    msg_header h;
    std::uint32_t domid;
    std::uint32_t pad;
};

struct peer_rsp {
    msg_header h;
    std::int32_t err;
    std::uint32_t generation;
    std::int32_t pid;
    std::uint32_t has_pidfd;
    std::uint64_t mem_pages;
    std::uint64_t grant_entries;
    std::uint64_t base;
};

struct evtchn_alloc_req {
    msg_header h;
    std::uint32_t remote;
    std::uint32_t pad;
};

struct evtchn_bind_req {
    msg_header h;
    std::uint32_t remote;
    std::uint32_t remote_port;
};

struct evtchn_rsp {
    msg_header h;
    std::int32_t err;
    std::uint32_t port;
};

struct evtchn_close_req {
    msg_header h;
    std::uint32_t port;
    std::uint32_t pad;
};

struct status_rsp {
    msg_header h;
    std::int32_t err;
    std::uint32_t pad;
};

// Largest message either side sends.
inline constexpr std::size_t max_msg_size = sizeof(peer_rsp);
static_assert(sizeof(register_req) <= max_msg_size);
static_assert(std::is_trivially_copyable_v<peer_rsp>);

// The broker's directory memfd, mapped read-only by every domain: one slot per
// domid, generation 0 = not registered. Lets a mapper check in one load whether
// its cached view of a peer is still the live registration.
struct directory_slot {
    std::uint32_t generation;
    std::int32_t pid;
};
inline constexpr std::size_t directory_slots = domid_self;  // 0 .. DOMID_FIRST_RESERVED-1

}  // namespace vifkit::emu::detail
