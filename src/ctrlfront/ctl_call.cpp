// Client side of the local control socket: one request, one reply line.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vifkit/ctrlfront/ctl_protocol.hpp"

namespace vifkit::ctrlfront {

namespace {

using clock = std::chrono::steady_clock;

class fd_guard {
public:
    explicit fd_guard(int fd) : fd_(fd) {}
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    [[nodiscard]] int get() const { return fd_; }

private:
    int fd_;
};

parsed<std::string> error(std::string msg) { return {std::nullopt, std::move(msg)}; }

// Waits for `events` on fd until `deadline`. False on timeout or poll error.
bool wait_for(int fd, short events, clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) return false;
        pollfd p{fd, events, 0};
        const int n = ::poll(&p, 1, static_cast<int>(left));
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) return false;
    }
}

// A connected non-blocking socket, or -1 with `err` set.
int connect_to(const std::string& path, std::string& err) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
        err = "bad socket path '" + path + "'";
        return -1;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        err = "cannot connect to " + path + ": " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

bool send_all(int fd, std::string_view data, clock::time_point deadline) {
    while (!data.empty()) {
        const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n > 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_for(fd, POLLOUT, deadline)) return false;
        } else if (!(n < 0 && errno == EINTR)) {
            return false;
        }
    }
    return true;
}

parsed<std::string> read_line(int fd, clock::time_point deadline) {
    std::string in;
    char buf[16 * 1024];
    for (;;) {
        if (const std::size_t nl = in.find('\n'); nl != std::string::npos) return {in.substr(0, nl), {}};
        if (in.size() > ctl_max_reply_line) return error("reply longer than 1 MiB");
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            in.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0) {
            return error("connection closed before the reply");
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait_for(fd, POLLIN, deadline)) return error("timed out waiting for the reply");
        } else if (errno != EINTR) {
            return error(std::string("read: ") + std::strerror(errno));
        }
    }
}

}  // namespace

parsed<std::string> ctl_call(const std::string& socket_path, const nlohmann::json& request,
                             std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    std::string err;
    const fd_guard fd(connect_to(socket_path, err));
    if (fd.get() < 0) return error(std::move(err));
    if (!send_all(fd.get(), to_line(request), deadline)) return error("cannot send the request");
    return read_line(fd.get(), deadline);
}

}  // namespace vifkit::ctrlfront
