// Local control socket between vifkit-ctl and a running vifkit-front:
// JSON lines over a unix stream socket. One request per line, one reply line
// per request, replies in request order.
//
//   {"op":"send","type":<name|number>,"data":[d0,d1,d2],
//    "page":"<hex>","page_arg":0..2,"page_writable":bool,"timeout_ms":N}
//   {"op":"stats"}
// ->
//   {"ok":true,"id":..,"type":..,"type_name":..,"status":..,"status_name":..,
//    "data":..,"page_after":"<hex>"}
//   {"ok":true,"stats":{..}}
//   {"ok":false,"error":"..."}
//
// `page`: the frontend copies these bytes to offset 0 of a freshly granted
// zeroed page and puts its gref into data[page_arg]; page_after returns the
// same number of bytes as they were once the backend answered (e.g. DEL's
// per-entry statuses). page_arg and page_writable default to the type's own
// gref argument (netif-spec §1.4, §2.3); an unknown type needs page_arg.
//
// The socket is a local trust boundary of the frontend: parse_request()
// accepts nothing it does not know, every size is bounded, and ctl_server
// confines a misbehaving client to its own connection.
#pragma once
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "vifkit/abi/netif.hpp"
#include "vifkit/util/event_loop.hpp"
#include "vifkit/util/log.hpp"

namespace vifkit::ctrlfront {

inline constexpr std::size_t ctl_max_line = 16 * 1024;           // request line, without '\n'
inline constexpr std::size_t ctl_max_reply_line = 1024 * 1024;   // what ctl_call() accepts
inline constexpr std::size_t ctl_max_page_bytes = 4096;          // one page
inline constexpr std::size_t ctl_max_gref_entries = 512;         // netif-spec §1.3: 4096 / 8
inline constexpr std::uint32_t ctl_max_timeout_ms = 600'000;
inline constexpr std::chrono::milliseconds ctl_default_timeout{5000};

// A value, or why there is none.
template <class T>
struct [[nodiscard]] parsed {
    std::optional<T> value;
    std::string error;
    explicit operator bool() const noexcept { return value.has_value(); }
};

enum class ctl_op { send, stats };

struct ctl_request {
    ctl_op op = ctl_op::stats;
    // The rest is used by op == send.
    std::uint16_t type = 0;
    std::array<std::uint32_t, 3> data{};
    std::optional<std::vector<std::uint8_t>> page;  // 1..ctl_max_page_bytes bytes
    unsigned page_arg = 0;                           // 0..2
    bool page_writable = false;
    std::chrono::milliseconds timeout = ctl_default_timeout;  // 1..ctl_max_timeout_ms
};

// The outcome of one send.
struct ctl_reply {
    std::uint16_t id = 0;
    std::uint16_t type = 0;
    std::uint32_t status = 0;  // abi::ctrl_status or local_status
    std::uint32_t data = 0;
    std::optional<std::vector<std::uint8_t>> page_after;
};

// A reply line as read by a client.
struct ctl_response {
    bool ok = false;
    std::string error;                    // !ok
    std::optional<ctl_reply> reply;       // ok, answer to a send
    std::optional<nlohmann::json> stats;  // ok, answer to stats
};

// ---- pure parse / format ----
parsed<ctl_request> parse_request(std::string_view line);
[[nodiscard]] nlohmann::json format_request(const ctl_request& req);
parsed<ctl_response> parse_response(std::string_view line);
[[nodiscard]] nlohmann::json format_reply(const ctl_reply& reply);
[[nodiscard]] nlohmann::json format_error(std::string_view message);
[[nodiscard]] nlohmann::json format_stats(nlohmann::json stats);
// Compact one-line JSON plus '\n' (invalid UTF-8 replaced, never throws on it).
[[nodiscard]] std::string to_line(const nlohmann::json& j);

// Lower-case hex, two digits per byte.
[[nodiscard]] std::string to_hex(std::span<const std::uint8_t> bytes);
// Strict: even length, hex digits only, at most max_bytes bytes, not empty.
[[nodiscard]] std::optional<std::vector<std::uint8_t>> from_hex(std::string_view text,
                                                                std::size_t max_bytes = ctl_max_page_bytes);

// ---- page builders (little-endian, netif-spec §1.3) ----
// The table of a gref ADD/DEL message: 8 bytes per entry. At most
// ctl_max_gref_entries entries (std::length_error otherwise).
[[nodiscard]] std::vector<std::uint8_t> gref_list_page(std::span<const abi::gref_entry> entries);
// `count` entries back from such a page; nullopt if the page is too short or
// count exceeds ctl_max_gref_entries.
[[nodiscard]] std::optional<std::vector<abi::gref_entry>> parse_gref_list_page(
    std::span<const std::uint8_t> page, std::size_t count);
// "ref[:ro|:rw],ref,..." (ref decimal or 0x hex), 1..512 entries.
parsed<std::vector<abi::gref_entry>> parse_gref_list(std::string_view text);
// A SET_HASH_MAPPING page: u32 values, 4 bytes each, at most 1024.
[[nodiscard]] std::vector<std::uint8_t> u32_list_page(std::span<const std::uint32_t> values);
// "v,v,..." (decimal or 0x hex), 1..1024 values.
parsed<std::vector<std::uint32_t>> parse_u32_list(std::string_view text);

// ---- server (inside vifkit-front) ----
class ctl_server {
public:
    // Send the reply for one request. Call once, on the loop's thread; later
    // calls, and calls after the client left or the server is gone, are ignored.
    using reply_fn = std::function<void(nlohmann::json)>;
    // Called for each valid request. May reply at once or later. Invalid lines
    // are answered by the server itself ({"ok":false,...}).
    using handler = std::function<void(const ctl_request&, reply_fn reply)>;

    struct limits {
        std::size_t clients = 16;              // more are refused
        std::size_t inflight_per_client = 32;  // unanswered requests; then reading pauses
        std::size_t out_buffer = 256 * 1024;   // queued reply bytes; then reading pauses
    };
    struct counters {
        std::uint64_t accepted = 0;
        std::uint64_t refused = 0;
        std::uint64_t requests = 0;         // valid requests handed to the handler
        std::uint64_t bad_requests = 0;     // answered with an error by the server
        std::uint64_t dropped_clients = 0;  // closed for oversized lines or I/O errors
    };

    // Listen on `socket_path` (mode 0600). A stale socket file is replaced; a
    // live one, or a non-socket file, makes this throw.
    ctl_server(util::event_loop& loop, std::string socket_path, handler h);
    ctl_server(util::event_loop& loop, std::string socket_path, handler h, limits lim);
    // Closes every client and removes the socket file.
    ~ctl_server();
    ctl_server(const ctl_server&) = delete;
    ctl_server& operator=(const ctl_server&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::size_t clients() const { return conns_.size(); }
    [[nodiscard]] counters get_counters() const { return counters_; }

private:
    struct connection;
    void on_accept();
    void on_readable(int fd);
    void on_writable();
    void service(const std::shared_ptr<connection>& c);
    void process_lines(const std::shared_ptr<connection>& c);
    void dispatch(const std::shared_ptr<connection>& c, std::string_view line);
    reply_fn make_reply(const std::shared_ptr<connection>& c);
    void deliver(connection& c);
    void flush_out(connection& c);
    void update_interest(connection& c);
    void kill(connection& c, const char* why);

    util::event_loop& loop_;
    std::string path_;
    handler handler_;
    limits limits_;
    int listen_fd_ = -1;
    int out_epfd_ = -1;  // EPOLLOUT interest of clients with queued output
    std::unordered_map<int, std::shared_ptr<connection>> conns_;
    counters counters_;
    util::rate_limited log_limit_;
};

// ---- client (vifkit-ctl, tests) ----
// Connect, send `request` as one line, wait up to `timeout` for one reply
// line (at most ctl_max_reply_line bytes) and return it without its '\n'.
parsed<std::string> ctl_call(const std::string& socket_path, const nlohmann::json& request,
                             std::chrono::milliseconds timeout);

}  // namespace vifkit::ctrlfront
