// The xenstored state machine, independent of sockets: connections with their
// identity, watches and transactions; the node tree; domain introduction.
// The server feeds it frames; it answers through a send callback. Tests can
// drive it directly with any caller identity.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vifkit/emu/xenstored/limits.hpp"
#include "vifkit/emu/xenstored/perms.hpp"
#include "vifkit/emu/xenstored/tree.hpp"
#include "vifkit/emu/xenstored/wire.hpp"
#include "vifkit/util/log.hpp"

namespace vifkit::emu::xs {

using conn_id = std::uint64_t;

struct engine_counters {
    std::uint64_t requests = 0;
    std::uint64_t error_replies = 0;
    std::uint64_t malformed = 0;       // undecodable requests (EINVAL/ENOSYS replies)
    std::uint64_t denied = 0;          // EACCES / EPERM replies
    std::uint64_t quota_refusals = 0;  // ENOSPC / E2BIG replies
    std::uint64_t watch_events = 0;
    std::uint64_t commits = 0;
    std::uint64_t conflicts = 0;       // commits refused with EAGAIN
};

class engine {
public:
    // Delivers one message (reply, error or watch event) to connection `c`.
    using send_fn = std::function<void(conn_id c, msg_type type, std::uint32_t req_id,
                                       std::uint32_t tx_id, std::string_view payload)>;

    explicit engine(send_fn send, limits lim = {});
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    conn_id connect(caller who = caller::dom0());
    // Drops the connection's watches and open transactions.
    void disconnect(conn_id c);
    // Identity for the connection's next requests (the resolver may learn it late).
    void set_caller(conn_id c, caller who);

    // Decodes and executes one frame; answers via send_fn, never throws on bad input.
    void handle_frame(conn_id c, const header& hdr, std::span<const std::uint8_t> payload);
    void handle(conn_id c, const request& req);

    // Toolstack side. introduce: creates /local/domain/<d> owned by d (if missing)
    // and fires @introduceDomain. release: removes /local/domain/<d> and fires
    // @releaseDomain.
    void introduce_domain(domid_t d);
    void release_domain(domid_t d);
    [[nodiscard]] bool is_introduced(domid_t d) const;

    [[nodiscard]] const tree& nodes() const { return tree_; }
    [[nodiscard]] const engine_counters& counters() const { return counters_; }
    [[nodiscard]] std::size_t watch_count(conn_id c) const;
    [[nodiscard]] std::size_t transaction_count(conn_id c) const;

private:
    struct watch {
        std::string path;   // canonical
        std::string token;
        std::size_t strip;  // prefix removed from event paths (relative watches)
    };
    struct connection {
        caller who;
        std::vector<watch> watches;
        std::map<std::uint32_t, std::unique_ptr<transaction>> txs;
        std::uint32_t next_tx = 1;
    };
    // What a request produced besides its errno.
    struct outcome {
        std::string reply;
        std::vector<change> changes;   // fired now, or queued in the transaction
        std::string initial_event;     // WATCH: event payload sent after the ack
    };

    static int acked(int err, outcome& out);
    int dispatch(connection& conn, transaction* tx, const request& req, outcome& out);
    int node_op(connection& conn, transaction* tx, const request& req, outcome& out);
    int op_watch(connection& conn, const request& req, outcome& out);
    int op_unwatch(connection& conn, const request& req);
    int op_transaction_start(connection& conn, const request& req, outcome& out);
    int op_transaction_end(connection& conn, transaction* tx, const request& req);
    int op_domain(connection& conn, const request& req, outcome& out);

    void fire(const change& ch);
    void fire_all(std::vector<change> changes);
    void send_event(conn_id c, std::string_view path, std::string_view token);
    void reply_error(conn_id c, const request& req, int err);
    void count_error(int err);

    send_fn send_;
    limits limits_;
    tree tree_;
    live_view live_{tree_};
    std::map<conn_id, connection> conns_;  // ordered: deterministic event order
    conn_id next_conn_ = 1;
    std::set<domid_t> introduced_;
    engine_counters counters_;
    util::rate_limited log_limit_;
};

}  // namespace vifkit::emu::xs
