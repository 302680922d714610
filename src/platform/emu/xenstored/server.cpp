#include "vifkit/emu/xenstored/server.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace vifkit::emu::xs {

namespace {

constexpr std::size_t read_chunk = 64 * 1024;  // bounds the work done per wakeup
constexpr int accept_batch = 64;

[[noreturn]] void throw_errno(const char* what) {
    throw std::system_error(errno, std::generic_category(), what);
}

sockaddr_un make_addr(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        throw std::invalid_argument("xenstored: bad socket path '" + path + "'");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

// A socket file nobody listens on is left over from a crash: remove it. A live
// daemon or a non-socket file is not ours to remove.
void remove_stale_socket(const std::string& path) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) return;
    if (!S_ISSOCK(st.st_mode))
        throw std::invalid_argument("xenstored: " + path + " exists and is not a socket");
    const sockaddr_un addr = make_addr(path);
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) throw_errno("socket");
    const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    const int err = errno;
    ::close(probe);
    if (rc == 0) throw std::runtime_error("xenstored: a daemon is already listening on " + path);
    if (err != ECONNREFUSED && err != ENOENT)
        throw std::system_error(err, std::generic_category(), "probe " + path);
    ::unlink(path.c_str());
}

int listen_on(const std::string& path) {
    remove_stale_socket(path);
    const sockaddr_un addr = make_addr(path);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno("socket");
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd, 128) != 0) {
        const int err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), "bind/listen " + path);
    }
    return fd;
}

pid_t peer_pid(int fd) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
    return cred.pid;
}

}  // namespace

server::server(util::event_loop& loop, std::string socket_path, domain_resolver resolver,
               limits lim)
    : loop_(loop),
      path_(std::move(socket_path)),
      resolver_(std::move(resolver)),
      limits_(lim),
      engine_([this](conn_id c, msg_type t, std::uint32_t r, std::uint32_t x,
                     std::string_view p) { enqueue(c, t, r, x, p); },
              lim) {
    out_epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (out_epfd_ < 0) throw_errno("epoll_create1");
    try {
        listen_fd_ = listen_on(path_);
    } catch (...) {
        ::close(out_epfd_);
        throw;
    }
    loop_.add(listen_fd_, [this] { on_accept(); });
    loop_.add(out_epfd_, [this] { on_writable(); });
    spdlog::info("xenstored: listening on {}", path_);
}

server::~server() {
    for (auto& [id, c] : conns_) {
        loop_.remove(c.fd);
        ::close(c.fd);
    }
    loop_.remove(listen_fd_);
    loop_.remove(out_epfd_);
    ::close(listen_fd_);
    ::close(out_epfd_);
    ::unlink(path_.c_str());
}

void server::set_resolver(domain_resolver resolver) { resolver_ = std::move(resolver); }

void server::introduce_domain(domid_t d) {
    engine_.introduce_domain(d);
    settle();
}

void server::release_domain(domid_t d) {
    engine_.release_domain(d);
    settle();
}

void server::on_accept() {
    for (int i = 0; i < accept_batch; ++i) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && log_limit_.allow())
                spdlog::warn("xenstored: accept: {}", std::strerror(errno));
            return;
        }
        if (conns_.size() >= limits_.connections) {
            ++counters_.refused;
            if (log_limit_.allow()) spdlog::warn("xenstored: connection limit reached, refusing");
            ::close(fd);
            continue;
        }
        add_connection(fd);
    }
}

void server::add_connection(int fd) {
    // The identity given here is a placeholder: resolve_caller() asks the
    // resolver again before every request.
    const conn_id id = engine_.connect();
    connection& c = conns_[id];
    c.id = id;
    c.fd = fd;
    c.pid = peer_pid(fd);
    by_fd_[fd] = id;
    ++counters_.accepted;
    loop_.add(fd, [this, id] { on_readable(id); });
    spdlog::debug("xenstored: conn {} from pid {}", id, c.pid);
}

void server::on_readable(conn_id id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    connection& c = it->second;
    char buf[read_chunk];
    const ssize_t n = ::recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        kill(c, nullptr);  // the client went away: ordinary, not worth a log line
    } else if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) kill(c, "read error");
    } else {
        c.in.append(buf, static_cast<std::size_t>(n));
        process_input(id, c);
    }
    settle();
}

// Executes every complete frame buffered for `c` (bounded by one read_chunk of
// input) unless the client is paused for not reading its replies.
void server::process_input(conn_id id, connection& c) {
    std::size_t used = 0;
    while (!c.dead && !c.paused) {
        const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(c.in.data()) + used,
                                     c.in.size() - used);
        const header_result h = parse_header(bytes);
        if (h.status == header_status::incomplete) break;
        if (h.status == header_status::too_long) {
            // Framing can no longer be trusted: xenstored drops such a client.
            ++counters_.bad_frames;
            kill(c, "oversized message length");
            break;
        }
        if (bytes.size() < header_size + h.hdr.len) break;
        if (!resolve_caller(id, c)) break;
        engine_.handle_frame(id, h.hdr, bytes.subspan(header_size, h.hdr.len));
        used += header_size + h.hdr.len;
        if (c.reply_bytes > limits_.reply_queue_bytes) pause(id, c, true);
    }
    c.in.erase(0, used);
}

bool server::resolve_caller(conn_id id, connection& c) {
    if (!resolver_) return true;  // default: everyone is the toolstack
    try {
        const auto d = resolver_(c.pid);
        engine_.set_caller(id, d ? caller::domain(*d) : caller::dom0());
        return true;
    } catch (const std::exception& e) {
        // Without an identity the request cannot be judged; refuse the client.
        if (log_limit_.allow()) spdlog::error("xenstored: resolver failed: {}", e.what());
        kill(c, "no identity");
        return false;
    }
}

void server::enqueue(conn_id id, msg_type type, std::uint32_t req_id, std::uint32_t tx_id,
                     std::string_view payload) {
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second.dead) return;
    connection& c = it->second;
    const bool event = type == msg_type::watch_event;
    std::string frame = encode(type, req_id, tx_id, payload);
    if (event) {
        drop_oldest_events(c, frame.size());
        c.event_bytes += frame.size();
    } else {
        c.reply_bytes += frame.size();
    }
    c.out.push_back(out_msg{std::move(frame), event});
    if (!c.want_write) flush(c);
}

// A client that never reads must not grow our memory without bound: discard its
// oldest queued watch events (never a frame already partly sent).
void server::drop_oldest_events(connection& c, std::size_t incoming) {
    auto it = c.out.begin();
    if (it != c.out.end() && c.out_offset > 0) ++it;
    while (c.event_bytes + incoming > limits_.event_queue_bytes && it != c.out.end()) {
        if (!it->event) {
            ++it;
            continue;
        }
        c.event_bytes -= it->frame.size();
        it = c.out.erase(it);
        if (counters_.events_dropped++ % 1024 == 0 && log_limit_.allow())
            spdlog::warn("xenstored: fd {} not reading; dropping old watch events", c.fd);
    }
}

void server::flush(connection& c) {
    while (!c.out.empty()) {  // bounded by the queue, itself bounded above
        out_msg& m = c.out.front();
        const ssize_t n = ::send(c.fd, m.frame.data() + c.out_offset,
                                 m.frame.size() - c.out_offset, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            kill(c, (errno == EPIPE || errno == ECONNRESET) ? nullptr : "write error");
            return;
        }
        c.out_offset += static_cast<std::size_t>(n);
        if (c.out_offset < m.frame.size()) break;
        (m.event ? c.event_bytes : c.reply_bytes) -= m.frame.size();
        c.out_offset = 0;
        c.out.pop_front();
    }
    set_want_write(c, !c.out.empty());
    // Replies drained well below the bound: take requests again, but only from
    // settle(), since flush() may run inside the engine's event fan-out.
    if (c.paused && !c.resume_queued && c.reply_bytes < limits_.reply_queue_bytes / 4) {
        c.resume_queued = true;
        resume_.push_back(c.id);
    }
}

void server::set_want_write(connection& c, bool on) {
    if (c.want_write == on) return;
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.fd = c.fd;
    if (::epoll_ctl(out_epfd_, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, c.fd, &ev) != 0) {
        kill(c, "epoll_ctl");
        return;
    }
    c.want_write = on;
}

void server::on_writable() {
    epoll_event evs[64];
    const int n = ::epoll_wait(out_epfd_, evs, 64, 0);
    for (int i = 0; i < n; ++i) {
        auto fd_it = by_fd_.find(evs[i].data.fd);
        if (fd_it == by_fd_.end()) continue;
        const conn_id id = fd_it->second;
        connection& c = conns_.at(id);
        if (!c.dead) flush(c);
    }
    settle();
}

void server::pause(conn_id id, connection& c, bool on) {
    if (c.paused == on) return;
    c.paused = on;
    if (on) {
        ++counters_.throttled;
        loop_.remove(c.fd);
    } else {
        loop_.add(c.fd, [this, id] { on_readable(id); });
    }
}

void server::kill(connection& c, const char* why) {
    if (c.dead) return;
    c.dead = true;
    dead_.push_back(c.id);
    if (why != nullptr && log_limit_.allow())
        spdlog::warn("xenstored: dropping client fd {} (pid {}): {}", c.fd, c.pid, why);
}

// Runs after every loop callback and API call, outside engine callbacks:
// resumes throttled clients, then closes dead ones. Connections die only here,
// so the engine never sees one vanish while it iterates them.
void server::settle() {
    const std::vector<conn_id> resume = std::move(resume_);
    resume_.clear();
    for (const conn_id id : resume) {
        auto it = conns_.find(id);
        if (it == conns_.end()) continue;
        connection& c = it->second;
        c.resume_queued = false;
        if (c.dead || !c.paused) continue;
        pause(id, c, false);
        process_input(id, c);
    }
    reap();
}

void server::reap() {
    for (const conn_id id : dead_) {
        auto it = conns_.find(id);
        if (it == conns_.end()) continue;
        connection& c = it->second;
        loop_.remove(c.fd);
        if (c.want_write) ::epoll_ctl(out_epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        by_fd_.erase(c.fd);
        engine_.disconnect(id);
        ++counters_.closed;
        conns_.erase(it);
    }
    dead_.clear();
}

}  // namespace vifkit::emu::xs
