#include "seqpacket_port.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vifkit::io::detail {
namespace {

// A busy listener could otherwise be kept accepting forever by a connect loop.
constexpr int max_accepts_per_call = 16;
// While the current peer keeps the port busy, still look for a replacement this often.
constexpr unsigned accept_interval = 64;

enum class rx_kind { frame, none, oversized, empty_frame, hangup, error };
struct rx_outcome {
    rx_kind kind;
    long value;  // frame length for rx_kind::frame, errno for rx_kind::error
};

bool peer_hung_up(int fd) {
    pollfd p{fd, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP)) != 0;
}

// One recvmsg: MSG_TRUNC in msg_flags tells an oversized datagram apart from one that
// fits exactly; the kernel has discarded the rest, so buf is never overrun.
rx_outcome seqpacket_recv(int fd, std::span<std::byte> buf) {
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return {rx_kind::none, 0};
        if (errno == ECONNRESET || errno == ENOTCONN) return {rx_kind::hangup, 0};
        return {rx_kind::error, errno};
    }
    if ((msg.msg_flags & MSG_TRUNC) != 0) return {rx_kind::oversized, 0};
    if (n > 0) return {rx_kind::frame, n};
    // Zero bytes is either end-of-stream or a zero-length datagram.
    return {peer_hung_up(fd) ? rx_kind::hangup : rx_kind::empty_frame, 0};
}

enum class tx_kind { sent, dropped, hangup };

tx_kind seqpacket_send(int fd, std::span<const std::byte> frame, int* err) {
    // MSG_NOSIGNAL: a vanished peer must not kill us with SIGPIPE.
    if (::send(fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
        return tx_kind::sent;
    }
    *err = errno;
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) return tx_kind::hangup;
    return tx_kind::dropped;
}

bool is_transient(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS; }

void count_rx(packet_port::stats& s, long n) {
    ++s.rx_frames;
    s.rx_bytes += static_cast<std::uint64_t>(n);
}

void count_tx(packet_port::stats& s, std::size_t n) {
    ++s.tx_frames;
    s.tx_bytes += n;
}

// Handles the outcomes that are the same for every seqpacket port. Returns true if
// `o` was one of them and *ret holds recv()'s result.
bool handle_common(const rx_outcome& o, std::span<std::byte> buf, const std::string& desc,
                   packet_port::stats& s, util::rate_limited& limit, long* ret) {
    *ret = 0;
    switch (o.kind) {
    case rx_kind::frame:
        count_rx(s, o.value);
        *ret = o.value;
        return true;
    case rx_kind::none:
        return true;
    case rx_kind::oversized:
        ++s.rx_errors;
        if (limit.allow()) {
            SPDLOG_WARN("{}: dropped frame larger than the {}-byte buffer", desc, buf.size());
        }
        return true;
    case rx_kind::empty_frame:
        ++s.rx_errors;
        if (limit.allow()) SPDLOG_WARN("{}: dropped zero-length frame", desc);
        return true;
    default:
        return false;
    }
}

bool fill_sockaddr(const std::string& path, sockaddr_un* sa, std::string* error) {
    // sun_path must hold the path and its terminating NUL.
    if (path.empty() || path.size() >= sizeof(sa->sun_path)) {
        if (error) {
            *error = "unix: path must be 1.." + std::to_string(sizeof(sa->sun_path) - 1) +
                     " bytes: '" + path + "'";
        }
        return false;
    }
    *sa = sockaddr_un{};
    sa->sun_family = AF_UNIX;
    std::memcpy(sa->sun_path, path.c_str(), path.size() + 1);
    return true;
}

bool set_error(std::string* error, const std::string& what, int err) {
    if (error) *error = what + ": " + std::strerror(err);
    return false;
}

// A socket file left by an earlier run blocks bind(); remove it. Anything else at the
// path is someone's file and stays, failing the open instead.
bool remove_stale_socket(const std::string& path, std::string* error) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) {
        return errno == ENOENT || set_error(error, "unix: stat " + path, errno);
    }
    if (!S_ISSOCK(st.st_mode)) {
        if (error) *error = "unix: " + path + " exists and is not a socket";
        return false;
    }
    return ::unlink(path.c_str()) == 0 || set_error(error, "unix: unlink " + path, errno);
}

int listen_at(const std::string& path, std::string* error) {
    sockaddr_un sa;
    if (!fill_sockaddr(path, &sa, error) || !remove_stale_socket(path, error)) return -1;
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error(error, "unix: socket", errno);
        return -1;
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) < 0 ||
        ::listen(fd, 8) < 0) {
        set_error(error, "unix: bind/listen " + path, errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

bool epoll_add(int epoll_fd, int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0;
}

}  // namespace

// ---- seqpacket_port ----

seqpacket_port::~seqpacket_port() { ::close(fd_); }

long seqpacket_port::recv(std::span<std::byte> buf) {
    const rx_outcome o = seqpacket_recv(fd_, buf);
    long ret = 0;
    if (handle_common(o, buf, desc_, stats_, log_limit_, &ret)) return ret;
    const int err = o.kind == rx_kind::hangup ? ECONNRESET : static_cast<int>(o.value);
    if (o.kind != rx_kind::hangup || !hung_up_) {
        ++stats_.rx_errors;
        if (log_limit_.allow()) SPDLOG_WARN("{}: receive failed: {}", desc_, std::strerror(err));
    }
    hung_up_ = hung_up_ || o.kind == rx_kind::hangup;
    return -err;
}

bool seqpacket_port::send(std::span<const std::byte> frame) {
    int err = 0;
    if (seqpacket_send(fd_, frame, &err) == tx_kind::sent) {
        count_tx(stats_, frame.size());
        return true;
    }
    ++stats_.tx_drops;
    if (!is_transient(err) && log_limit_.allow()) {
        SPDLOG_WARN("{}: send failed: {}", desc_, std::strerror(err));
    }
    return false;
}

std::unique_ptr<packet_port> open_unix_connect(const std::string& path, std::string* error) {
    sockaddr_un sa;
    if (!fill_sockaddr(path, &sa, error)) return nullptr;
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error(error, "unix-connect: socket", errno);
        return nullptr;
    }
    // A unix connect completes at once or fails (EAGAIN: listener backlog full).
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) < 0) {
        set_error(error, "unix-connect: connect " + path, errno);
        ::close(fd);
        return nullptr;
    }
    return std::make_unique<seqpacket_port>(fd, "unix-connect:" + path);
}

// ---- unix_listen_port ----

std::unique_ptr<unix_listen_port> unix_listen_port::open(const std::string& path,
                                                         std::string* error) {
    const int listen_fd = listen_at(path, error);
    if (listen_fd < 0) return nullptr;
    const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0 || !epoll_add(epoll_fd, listen_fd)) {
        set_error(error, "unix: epoll", errno);
        if (epoll_fd >= 0) ::close(epoll_fd);
        ::close(listen_fd);
        ::unlink(path.c_str());
        return nullptr;
    }
    std::unique_ptr<unix_listen_port> port(new unix_listen_port(listen_fd, epoll_fd, path));
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        port->sock_dev_ = st.st_dev;
        port->sock_ino_ = st.st_ino;
    }
    return port;
}

unix_listen_port::~unix_listen_port() {
    if (conn_fd_ >= 0) ::close(conn_fd_);
    ::close(listen_fd_);
    ::close(epoll_fd_);
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == sock_dev_ && st.st_ino == sock_ino_) {
        ::unlink(path_.c_str());
    }
}

bool unix_listen_port::accept_pending() {
    recvs_since_accept_ = 0;
    int newest = -1;
    for (int i = 0; i < max_accepts_per_call; ++i) {
        const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            // EAGAIN is the normal end; anything else (EMFILE, ECONNABORTED) is retried
            // on the next call, since the listening socket stays readable.
            if (errno != EAGAIN && errno != EWOULDBLOCK && log_limit_.allow()) {
                SPDLOG_WARN("{}: accept failed: {}", desc_, std::strerror(errno));
            }
            break;
        }
        if (newest >= 0) ::close(newest);  // an even newer peer replaces it at once
        newest = c;
    }
    if (newest < 0) return false;
    install_peer(newest);
    return conn_fd_ >= 0;
}

void unix_listen_port::install_peer(int conn_fd) {
    if (conn_fd_ >= 0) {
        if (log_limit_.allow()) SPDLOG_INFO("{}: new peer replaces the current one", desc_);
        drop_peer();
    }
    if (!epoll_add(epoll_fd_, conn_fd)) {
        if (log_limit_.allow()) {
            SPDLOG_WARN("{}: cannot watch new peer: {}", desc_, std::strerror(errno));
        }
        ::close(conn_fd);
        return;
    }
    conn_fd_ = conn_fd;
}

void unix_listen_port::drop_peer() {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, conn_fd_, nullptr);
    ::close(conn_fd_);
    conn_fd_ = -1;
}

long unix_listen_port::receive_from_peer(std::span<std::byte> buf) {
    ++recvs_since_accept_;
    const rx_outcome o = seqpacket_recv(conn_fd_, buf);
    long ret = 0;
    if (handle_common(o, buf, desc_, stats_, log_limit_, &ret)) return ret;
    // A lost peer is not an error of this port: it goes back to waiting for the next.
    if (o.kind == rx_kind::error) {
        ++stats_.rx_errors;
        if (log_limit_.allow()) {
            SPDLOG_WARN("{}: receive failed, dropping peer: {}", desc_,
                        std::strerror(static_cast<int>(o.value)));
        }
    }
    drop_peer();
    return 0;
}

long unix_listen_port::recv(std::span<std::byte> buf) {
    bool tried_accept = false;
    if (conn_fd_ < 0 || recvs_since_accept_ >= accept_interval) {
        tried_accept = true;
        accept_pending();
    }
    if (conn_fd_ < 0) return 0;
    long n = receive_from_peer(buf);
    // Nothing from the current peer: a waiting peer may replace it now.
    if (n == 0 && !tried_accept && accept_pending()) n = receive_from_peer(buf);
    return n;
}

bool unix_listen_port::send(std::span<const std::byte> frame) {
    if (conn_fd_ < 0) accept_pending();
    if (conn_fd_ < 0) {
        ++stats_.tx_drops;  // nobody to deliver to yet
        return false;
    }
    int err = 0;
    switch (seqpacket_send(conn_fd_, frame, &err)) {
    case tx_kind::sent:
        count_tx(stats_, frame.size());
        return true;
    case tx_kind::hangup:
        drop_peer();
        break;
    case tx_kind::dropped:
        if (!is_transient(err) && log_limit_.allow()) {
            SPDLOG_WARN("{}: send failed: {}", desc_, std::strerror(err));
        }
        break;
    }
    ++stats_.tx_drops;
    return false;
}

}  // namespace vifkit::io::detail
