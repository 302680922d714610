// The emulated xenstored's socket side: a unix stream socket speaking the real
// wire protocol (libxenstore connects with XENSTORED_PATH=<path>), driven by a
// util::event_loop. Each connection is one client; which domain it acts for
// comes from a resolver asked with the peer's pid (SO_PEERCRED) before every
// request, because the emulator's broker may learn the mapping after connect.
//
// Threats handled here: malformed framing (connection closed, others
// unaffected), clients that never read (watch events bounded, oldest dropped;
// replies bounded by no longer reading that client), connection floods.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "vifkit/emu/xenstored/engine.hpp"
#include "vifkit/emu/xenstored/limits.hpp"
#include "vifkit/platform/types.hpp"
#include "vifkit/util/event_loop.hpp"
#include "vifkit/util/log.hpp"

namespace vifkit::emu::xs {

// nullopt: the process is not an emulated guest, i.e. dom0 / privileged.
using domain_resolver = std::function<std::optional<domid_t>(pid_t)>;

struct server_counters {
    std::uint64_t accepted = 0;
    std::uint64_t refused = 0;         // over the connection limit
    std::uint64_t closed = 0;
    std::uint64_t bad_frames = 0;      // oversized length: connection dropped
    std::uint64_t events_dropped = 0;  // oldest watch events dropped for a non-reader
    std::uint64_t throttled = 0;       // times a client was paused for unread replies
};

class server {
public:
    // Binds `socket_path` (a stale socket file is replaced; a live daemon or a
    // non-socket file there is an error) and registers with `loop`.
    // Throws std::system_error / std::invalid_argument on setup failure.
    server(util::event_loop& loop, std::string socket_path, domain_resolver resolver = {},
           limits lim = {});
    ~server();  // unregisters, closes every connection, removes the socket file
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    void set_resolver(domain_resolver resolver);

    // The toolstack's view of a domain's life (see engine); events go out at once.
    void introduce_domain(domid_t d);
    void release_domain(domid_t d);
    [[nodiscard]] bool is_introduced(domid_t d) const { return engine_.is_introduced(d); }

    [[nodiscard]] const engine& store() const { return engine_; }
    [[nodiscard]] const std::string& socket_path() const { return path_; }
    [[nodiscard]] std::size_t connection_count() const { return conns_.size(); }
    [[nodiscard]] const server_counters& counters() const { return counters_; }

private:
    struct out_msg {
        std::string frame;
        bool event;
    };
    struct connection {
        conn_id id = 0;
        int fd = -1;
        pid_t pid = 0;
        std::string in;          // unparsed input
        std::deque<out_msg> out;
        std::size_t out_offset = 0;  // bytes of out.front() already sent
        std::size_t event_bytes = 0;
        std::size_t reply_bytes = 0;
        bool want_write = false;  // registered for EPOLLOUT
        bool paused = false;      // not read until replies drain
        bool resume_queued = false;
        bool dead = false;        // closed at the next reap()
    };

    void on_accept();
    void add_connection(int fd);
    void on_readable(conn_id id);
    void on_writable();
    void process_input(conn_id id, connection& c);
    bool resolve_caller(conn_id id, connection& c);
    void enqueue(conn_id id, msg_type type, std::uint32_t req_id, std::uint32_t tx_id,
                 std::string_view payload);
    void drop_oldest_events(connection& c, std::size_t incoming);
    void flush(connection& c);
    void set_want_write(connection& c, bool on);
    void pause(conn_id id, connection& c, bool on);
    void kill(connection& c, const char* why);
    void settle();
    void reap();

    util::event_loop& loop_;
    std::string path_;
    domain_resolver resolver_;
    limits limits_;
    int listen_fd_ = -1;
    int out_epfd_ = -1;  // EPOLLOUT interest; itself polled by loop_
    engine engine_;
    std::unordered_map<conn_id, connection> conns_;
    std::unordered_map<int, conn_id> by_fd_;
    std::vector<conn_id> dead_;    // killed, closed by the next reap()
    std::vector<conn_id> resume_;  // throttled clients whose replies drained
    server_counters counters_;
    util::rate_limited log_limit_;
};

}  // namespace vifkit::emu::xs
