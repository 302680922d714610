// Helpers for the xenstored tests: an engine with a recording sink, a raw
// wire-protocol socket client, and a server running its loop on a thread.
#pragma once
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fuzz_seed.hpp"
#include "vifkit/emu/xenstored/engine.hpp"
#include "vifkit/emu/xenstored/server.hpp"
#include "vifkit/emu/xenstored/wire.hpp"
#include "vifkit/util/event_loop.hpp"

namespace vifkit::emu::xs::test {

// "a", "b" -> "a\0b\0"
inline std::string strings(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (auto p : parts) out.append(p).append(1, '\0');
    return out;
}

// Seed corpus for fuzz/fuzz_xenstore_wire.cpp (VIFKIT_FUZZ_SEED_DIR): 4 caller
// bytes (connections 0-3; 0 = dom0, else that domid), then chunks {u8 conn
// (0-3), u8 len, len bytes of that connection's stream}.
inline void append_fuzz_chunks(std::string& seed, unsigned conn, std::string_view stream) {
    while (!stream.empty()) {
        const std::size_t n = std::min<std::size_t>(stream.size(), 255);
        seed += static_cast<char>(conn & 3);
        seed += static_cast<char>(n);
        seed.append(stream.substr(0, n));
        stream.remove_prefix(n);
    }
}
inline void write_xs_fuzz_seed(const std::string& frame) {
    std::string seed(4, '\0');
    append_fuzz_chunks(seed, 0, frame);
    vifkit::test::write_fuzz_seed("xenstore_wire", seed);
}

struct message {
    msg_type type;
    std::uint32_t req_id;
    std::uint32_t tx_id;
    std::string payload;

    [[nodiscard]] bool is_error() const { return type == msg_type::error; }
    [[nodiscard]] std::string error() const {
        return is_error() ? std::string(payload.c_str()) : std::string();
    }
    // Payload minus one trailing NUL (string replies such as transaction ids).
    [[nodiscard]] std::string text() const {
        return (!payload.empty() && payload.back() == '\0') ? payload.substr(0, payload.size() - 1)
                                                             : payload;
    }
};

// An engine whose output is recorded per connection.
class harness {
public:
    explicit harness(limits lim = {})
        : engine_([this](conn_id c, msg_type t, std::uint32_t r, std::uint32_t x,
                         std::string_view p) { inbox_[c].push_back({t, r, x, std::string(p)}); },
                  lim) {}

    ~harness() {
        if (seeding_ && seed_.size() > 4) vifkit::test::write_fuzz_seed("xenstore_wire", seed_);
    }
    harness(const harness&) = delete;
    harness& operator=(const harness&) = delete;

    engine& eng() { return engine_; }
    conn_id connect(caller who = caller::dom0()) {
        const conn_id c = engine_.connect(who);
        if (seeding_ && seed_conns_.size() < 4) {
            seed_[seed_conns_.size()] = static_cast<char>(who.id <= 0xFF ? who.id : 0);
            seed_conns_[c] = static_cast<unsigned>(seed_conns_.size());
        }
        return c;
    }

    // Sends a raw payload; returns the reply (the last non-event message).
    message raw(conn_id c, msg_type t, std::string payload, std::uint32_t tx = 0,
                std::uint32_t req = 77) {
        const header h{static_cast<std::uint32_t>(t), req, tx,
                       static_cast<std::uint32_t>(payload.size())};
        if (seeding_ && seed_conns_.count(c) && payload.size() <= payload_max)
            append_fuzz_chunks(seed_, seed_conns_[c], encode(t, req, tx, payload));
        engine_.handle_frame(c, h, std::span(reinterpret_cast<const std::uint8_t*>(payload.data()),
                                             payload.size()));
        auto& box = inbox_[c];
        for (auto it = box.rbegin(); it != box.rend(); ++it) {
            if (it->type == msg_type::watch_event) continue;
            message m = *it;
            box.erase(std::next(it).base());
            return m;
        }
        throw std::runtime_error("no reply");
    }
    message call(conn_id c, msg_type t, std::initializer_list<std::string_view> args,
                 std::uint32_t tx = 0) {
        return raw(c, t, strings(args), tx);
    }
    message write(conn_id c, std::string_view path, std::string_view value, std::uint32_t tx = 0) {
        std::string p = strings({path});
        p.append(value);
        return raw(c, msg_type::write, p, tx);
    }
    // Reply text, or "E:<ERRNO>" on error: compact to assert on.
    std::string read(conn_id c, std::string_view path, std::uint32_t tx = 0) {
        return outcome(call(c, msg_type::read, {path}, tx));
    }
    // Children (or perms) joined with ',', or "E:<ERRNO>".
    std::string ls(conn_id c, std::string_view path, std::uint32_t tx = 0) {
        return joined(call(c, msg_type::directory, {path}, tx));
    }
    std::string perms(conn_id c, std::string_view path) {
        return joined(call(c, msg_type::get_perms, {path}));
    }
    std::uint32_t begin(conn_id c) {
        return static_cast<std::uint32_t>(std::stoul(call(c, msg_type::transaction_start, {""}).text()));
    }
    std::string end(conn_id c, std::uint32_t tx, bool commit = true) {
        return outcome(call(c, msg_type::transaction_end, {commit ? "T" : "F"}, tx));
    }
    static std::string outcome(const message& m) {
        return m.is_error() ? "E:" + m.error() : m.text();
    }
    // Watch events delivered to `c` since the last call, as "path|token".
    std::vector<std::string> events(conn_id c) {
        std::vector<std::string> out;
        auto& box = inbox_[c];
        for (auto it = box.begin(); it != box.end();) {
            if (it->type != msg_type::watch_event) {
                ++it;
                continue;
            }
            auto parts = split_strings(it->payload);
            out.push_back(std::string(parts.at(0)) + "|" + std::string(parts.at(1)));
            it = box.erase(it);
        }
        return out;
    }

private:
    static std::string joined(const message& m) {
        if (m.is_error()) return "E:" + m.error();
        std::string out;
        for (auto s : split_strings(m.payload)) out.append(out.empty() ? "" : ",").append(s);
        return out;
    }

    std::map<conn_id, std::vector<message>> inbox_;
    engine engine_;
    const bool seeding_ = std::getenv("VIFKIT_FUZZ_SEED_DIR") != nullptr;
    std::string seed_ = std::string(4, '\0');
    std::map<conn_id, unsigned> seed_conns_;
};

// A unique temporary directory, removed on destruction.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "vifkit-xs-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
        path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

private:
    std::string path_;
};

// A server whose event loop runs on its own thread. Anything touching the
// server must go through on_loop().
class server_thread {
public:
    explicit server_thread(std::string path, domain_resolver r = {}, limits lim = {}) {
        wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        server_ = std::make_unique<server>(loop_, std::move(path), std::move(r), lim);
        loop_.add(wake_, [this] { drain(); });
        thread_ = std::thread([this] { loop_.run(); });
    }
    ~server_thread() {
        on_loop([this] { loop_.stop(); });
        thread_.join();
        server_.reset();
        loop_.remove(wake_);
        ::close(wake_);
    }
    server_thread(const server_thread&) = delete;
    server_thread& operator=(const server_thread&) = delete;

    // Runs `fn` on the loop thread and waits for it.
    template <class Fn>
    auto on_loop(Fn fn) -> decltype(fn()) {
        std::packaged_task<decltype(fn())()> task(std::move(fn));
        auto fut = task.get_future();
        {
            std::lock_guard lock(mu_);
            tasks_.emplace_back([&task] { task(); });
        }
        const std::uint64_t one = 1;
        if (::write(wake_, &one, sizeof(one)) != sizeof(one)) throw std::runtime_error("eventfd");
        return fut.get();
    }
    server& srv() { return *server_; }

    // Polls `pred` on the loop thread until true or `timeout` (generous) passes.
    bool wait_for(const std::function<bool(server&)>& pred,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (on_loop([&] { return pred(*server_); })) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return false;
    }

private:
    void drain() {
        std::uint64_t v = 0;
        (void)::read(wake_, &v, sizeof(v));
        std::vector<std::function<void()>> run;
        {
            std::lock_guard lock(mu_);
            run.swap(tasks_);
        }
        for (auto& t : run) t();
    }

    util::event_loop loop_;
    std::unique_ptr<server> server_;
    int wake_ = -1;
    std::mutex mu_;
    std::vector<std::function<void()>> tasks_;
    std::thread thread_;
};

// A raw wire-protocol client over the unix socket.
class wire_client {
public:
    explicit wire_client(const std::string& path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
            throw std::runtime_error("connect " + path);
    }
    ~wire_client() { close(); }
    wire_client(const wire_client&) = delete;
    wire_client& operator=(const wire_client&) = delete;

    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    [[nodiscard]] int fd() const { return fd_; }

    void send_bytes(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) throw std::runtime_error("send");
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    void send(msg_type t, std::string_view payload, std::uint32_t req = 1, std::uint32_t tx = 0) {
        send_bytes(encode(t, req, tx, payload));
    }
    // Next message, or nullopt on EOF / timeout (generous; a hang is a failure).
    std::optional<message> recv(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        std::string hdr_bytes;
        if (!read_exact(hdr_bytes, header_size, timeout)) return std::nullopt;
        const auto h = parse_header(std::span(reinterpret_cast<const std::uint8_t*>(hdr_bytes.data()),
                                              hdr_bytes.size()));
        std::string body;
        if (!read_exact(body, h.hdr.len, timeout)) return std::nullopt;
        return message{static_cast<msg_type>(h.hdr.type), h.hdr.req_id, h.hdr.tx_id, body};
    }
    // Next message that is not a watch event (events are collected).
    std::optional<message> reply() {
        for (;;) {
            auto m = recv();
            if (!m || m->type != msg_type::watch_event) return m;
            events.push_back(*m);
        }
    }
    message call(msg_type t, std::string_view payload, std::uint32_t req = 1, std::uint32_t tx = 0) {
        send(t, payload, req, tx);
        auto m = reply();
        if (!m) throw std::runtime_error("no reply");
        return *m;
    }
    // True once the server has closed the connection (EOF within the timeout).
    bool closed_by_peer(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        for (;;) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
            char c;
            const ssize_t n = ::recv(fd_, &c, 1, 0);
            if (n == 0) return true;
            if (n < 0) return errno == ECONNRESET;
        }
    }

    std::vector<message> events;

private:
    bool read_exact(std::string& out, std::size_t n, std::chrono::milliseconds timeout) {
        out.resize(n);
        std::size_t got = 0;
        while (got < n) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
            const ssize_t r = ::recv(fd_, out.data() + got, n - got, 0);
            if (r <= 0) return false;
            got += static_cast<std::size_t>(r);
        }
        return true;
    }

    int fd_ = -1;
};

}  // namespace vifkit::emu::xs::test
