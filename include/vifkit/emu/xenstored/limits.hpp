// Quotas applied to unprivileged callers (defaults are xenstored's), and the
// per-connection bounds that keep one client from exhausting the daemon.
#pragma once
#include <cstddef>

namespace vifkit::emu::xs {

struct limits {
    std::size_t nodes_per_domain = 1000;          // -E, quota_nb_entry_per_domain
    std::size_t value_max = 2048;                 // -S, bytes of one value (unprivileged)
    std::size_t perms_per_node = 5;               // -A, ACL entries (unprivileged)
    std::size_t watches_per_connection = 128;     // -W
    std::size_t transactions_per_connection = 10; // -t
    std::size_t transaction_nodes = 1024;         // nodes one unprivileged transaction touches
    // Server side: queued watch-event bytes per connection before the oldest are
    // dropped, and queued reply bytes before the connection stops being read.
    std::size_t event_queue_bytes = 1u << 20;
    std::size_t reply_queue_bytes = 256u << 10;
    std::size_t connections = 1024;  // accepted sockets beyond this are closed at once
};

}  // namespace vifkit::emu::xs
