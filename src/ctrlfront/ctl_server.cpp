// The local control socket server (see ctl_protocol.hpp). Each client has
// bounded buffers and a bounded number of unanswered requests; anything a
// client does wrong ends at most its own connection.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <system_error>

#include "vifkit/ctrlfront/ctl_protocol.hpp"

namespace vifkit::ctrlfront {

namespace {

constexpr std::size_t read_chunk = 8 * 1024;
constexpr int accept_batch = 16;

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

sockaddr_un unix_addr(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        throw std::invalid_argument("ctl socket: bad path '" + path + "'");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

// A socket file nobody listens on is left from a crash and may go; a live
// socket or any other file is not ours.
void clear_stale(const std::string& path) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) return;
    if (!S_ISSOCK(st.st_mode)) throw std::runtime_error("ctl socket: " + path + " exists and is not a socket");
    const sockaddr_un addr = unix_addr(path);
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) throw_errno("socket");
    const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int err = errno;
    ::close(probe);
    if (rc == 0) throw std::runtime_error("ctl socket: someone is already listening on " + path);
    if (err != ECONNREFUSED) throw std::system_error(err, std::generic_category(), "probe " + path);
    ::unlink(path.c_str());
}

int listen_unix(const std::string& path) {
    clear_stale(path);
    const sockaddr_un addr = unix_addr(path);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno("socket");
    // 0600: whoever can connect can send any control message to the backend.
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::chmod(path.c_str(), S_IRUSR | S_IWUSR) != 0 || ::listen(fd, 16) != 0) {
        const int err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), "ctl socket " + path);
    }
    return fd;
}

bool peer_gone(int err) { return err == EPIPE || err == ECONNRESET; }

}  // namespace

struct ctl_server::connection {
    struct slot {
        std::optional<std::string> line;  // the reply, once known
    };
    int fd = -1;
    std::string in;
    std::string out;
    std::deque<std::shared_ptr<slot>> replies;  // one per request, in request order
    bool eof = false;      // client shut its side: finish replies, then close
    bool dead = false;
    bool reading = false;  // fd registered in the loop
    bool writing = false;  // fd registered in out_epfd_
    bool busy = false;     // inside service(): a nested call leaves the work to it
};

ctl_server::ctl_server(util::event_loop& loop, std::string socket_path, handler h)
    : ctl_server(loop, std::move(socket_path), std::move(h), limits{}) {}

ctl_server::ctl_server(util::event_loop& loop, std::string socket_path, handler h, limits lim)
    : loop_(loop), path_(std::move(socket_path)), handler_(std::move(h)), limits_(lim) {
    out_epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (out_epfd_ < 0) throw_errno("epoll_create1");
    try {
        listen_fd_ = listen_unix(path_);
    } catch (...) {
        ::close(out_epfd_);
        throw;
    }
    loop_.add(listen_fd_, [this] { on_accept(); });
    loop_.add(out_epfd_, [this] { on_writable(); });
    spdlog::info("ctl: listening on {}", path_);
}

ctl_server::~ctl_server() {
    for (auto& [fd, c] : conns_) {
        if (c->reading) loop_.remove(fd);
        c->dead = true;
        ::close(fd);
    }
    conns_.clear();
    loop_.remove(listen_fd_);
    loop_.remove(out_epfd_);
    ::close(listen_fd_);
    ::close(out_epfd_);
    ::unlink(path_.c_str());
}

void ctl_server::on_accept() {
    for (int i = 0; i < accept_batch; ++i) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && log_limit_.allow())
                spdlog::warn("ctl: accept: {}", std::strerror(errno));
            return;
        }
        if (conns_.size() >= limits_.clients) {
            ++counters_.refused;
            if (log_limit_.allow()) spdlog::warn("ctl: {} clients already, refusing one", conns_.size());
            ::close(fd);
            continue;
        }
        auto c = std::make_shared<connection>();
        c->fd = fd;
        conns_.emplace(fd, c);
        ++counters_.accepted;
        update_interest(*c);
    }
}

void ctl_server::on_readable(int fd) {
    const auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    const std::shared_ptr<connection> c = it->second;  // kill() may erase the map entry
    char buf[read_chunk];
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {
        c->eof = true;  // a partial last line is dropped: the client left mid-request
    } else if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        return kill(*c, peer_gone(errno) ? nullptr : "read error");
    } else {
        c->in.append(buf, static_cast<std::size_t>(n));
    }
    service(c);
}

void ctl_server::on_writable() {
    epoll_event evs[16];
    const int n = ::epoll_wait(out_epfd_, evs, 16, 0);
    for (int i = 0; i < n; ++i) {
        const auto it = conns_.find(evs[i].data.fd);
        if (it == conns_.end()) continue;
        const std::shared_ptr<connection> c = it->second;
        service(c);
    }
}

// Runs a connection forward: handle buffered lines, queue finished replies in
// order, write what the socket takes, then decide whether to read more. Lines
// left over when a limit stopped us are picked up by the event that lifts the
// limit (a reply, or the socket turning writable), which lands here again.
void ctl_server::service(const std::shared_ptr<connection>& c) {
    if (c->busy || c->dead) return;
    for (;;) {
        const std::size_t before = c->in.size();
        c->busy = true;
        process_lines(c);
        deliver(*c);
        c->busy = false;
        if (c->dead) return;
        flush_out(*c);
        if (c->dead) return;
        // Repeat only if lines were consumed and more complete ones wait (the
        // output limit stopped us and the write just drained it).
        if (c->in.size() == before || c->in.find('\n') == std::string::npos) break;
    }
    if (c->eof && c->replies.empty() && c->out.empty()) return kill(*c, nullptr);
    update_interest(*c);
}

void ctl_server::process_lines(const std::shared_ptr<connection>& c) {
    std::size_t used = 0;
    while (!c->dead && c->replies.size() < limits_.inflight_per_client && c->out.size() < limits_.out_buffer) {
        const std::size_t nl = c->in.find('\n', used);
        if (nl == std::string::npos) break;
        std::string_view line(c->in.data() + used, nl - used);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > ctl_max_line) break;  // left in place: reported below
        used = nl + 1;
        if (line.empty()) continue;
        dispatch(c, line);
        deliver(*c);
    }
    if (c->dead) return;
    c->in.erase(0, used);
    // The first unprocessed line, complete or not, must fit the limit.
    const std::size_t nl = c->in.find('\n');
    const std::size_t head = nl == std::string::npos ? c->in.size() : nl;
    if (head > ctl_max_line + 1) {  // +1: a '\r' before the '\n'
        ++counters_.bad_requests;
        const std::string msg = to_line(format_error("request line longer than 16 KiB"));
        [[maybe_unused]] const ssize_t n = ::send(c->fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        kill(*c, "request line longer than 16 KiB");
    }
}

void ctl_server::dispatch(const std::shared_ptr<connection>& c, std::string_view line) {
    auto req = parse_request(line);
    if (!req) {
        ++counters_.bad_requests;
        auto s = std::make_shared<connection::slot>();
        s->line = to_line(format_error(req.error));
        c->replies.push_back(std::move(s));
        return;
    }
    ++counters_.requests;
    reply_fn reply = make_reply(c);
    try {
        handler_(*req.value, reply);
    } catch (const std::exception& e) {
        reply(format_error(std::string("internal error: ") + e.what()));
    }
}

ctl_server::reply_fn ctl_server::make_reply(const std::shared_ptr<connection>& c) {
    auto s = std::make_shared<connection::slot>();
    c->replies.push_back(s);
    return [this, weak = std::weak_ptr<connection>(c), s](nlohmann::json j) {
        if (s->line) return;  // answered already
        s->line = to_line(j);
        // The connection (and with it this server) may be gone: then nobody waits.
        if (const auto conn = weak.lock(); conn && !conn->dead) service(conn);
    };
}

void ctl_server::deliver(connection& c) {
    while (!c.replies.empty() && c.replies.front()->line) {
        c.out += *c.replies.front()->line;
        c.replies.pop_front();
    }
}

void ctl_server::flush_out(connection& c) {
    while (!c.out.empty()) {
        const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c.out.erase(0, static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            return kill(c, n < 0 && peer_gone(errno) ? nullptr : "write error");
        }
    }
    const bool want = !c.out.empty();
    if (want == c.writing) return;
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.fd = c.fd;
    if (::epoll_ctl(out_epfd_, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, c.fd, &ev) != 0)
        return kill(c, "epoll_ctl");
    c.writing = want;
}

// Read only while the client has room for more answers: a client that sends
// without reading replies stalls itself, not the server.
void ctl_server::update_interest(connection& c) {
    const bool want = !c.dead && !c.eof && c.replies.size() < limits_.inflight_per_client &&
                      c.out.size() < limits_.out_buffer;
    if (want && !c.reading) {
        loop_.add(c.fd, [this, fd = c.fd] { on_readable(fd); });
        c.reading = true;
    } else if (!want && c.reading) {
        loop_.remove(c.fd);
        c.reading = false;
    }
}

// Ends a connection. `why` == nullptr: an ordinary close (client left).
// The caller must hold a shared_ptr to `c`: the map entry goes here.
void ctl_server::kill(connection& c, const char* why) {
    if (c.dead) return;
    c.dead = true;
    if (why) {
        ++counters_.dropped_clients;
        if (log_limit_.allow()) spdlog::warn("ctl: dropping a client: {}", why);
    }
    if (c.reading) loop_.remove(c.fd);
    if (c.writing) ::epoll_ctl(out_epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
    c.reading = c.writing = false;
    c.replies.clear();
    const int fd = c.fd;
    ::close(fd);
    conns_.erase(fd);
}

}  // namespace vifkit::ctrlfront
