#include "emu_test_support.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <stdexcept>
#include <string>

namespace vifkit::emu::test {

namespace {

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::to_string(errno));
}

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    int rc;
    do {
        rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    return rc > 0;
}

}  // namespace

std::string socket_path(std::string_view tag) {
    static std::atomic<unsigned> counter{0};
    return "/tmp/vifkit-emu-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter++) + "-" + std::string(tag) + ".sock";
}

channel& channel::operator=(channel&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
}

channel::~channel() {
    if (fd_ >= 0) ::close(fd_);
}

void channel::send(const void* p, std::size_t n) {
    if (::send(fd_, p, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) fail("channel send");
}

void channel::recv(void* p, std::size_t n, std::chrono::milliseconds timeout) {
    if (!wait_readable(fd_, timeout)) throw std::runtime_error("channel recv: timeout");
    const ssize_t got = ::recv(fd_, p, n, 0);
    if (got != static_cast<ssize_t>(n)) fail("channel recv: got " + std::to_string(got));
}

bool channel::try_recv(void* p, std::size_t n) {
    const ssize_t got = ::recv(fd_, p, n, MSG_DONTWAIT);
    if (got < 0 && errno == EAGAIN) return false;
    if (got != static_cast<ssize_t>(n)) fail("channel try_recv: got " + std::to_string(got));
    return true;
}

child child::spawn(const std::function<int(channel&)>& fn) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) fail("socketpair");
    const pid_t pid = ::fork();
    if (pid < 0) fail("fork");
    if (pid == 0) {
        // Keep only our channel end (as fd 3): no inherited broker or domain sockets.
        if (sv[1] != 3 && ::dup2(sv[1], 3) < 0) ::_exit(99);
        ::close_range(4, ~0U, 0);
        int rc = 100;
        try {
            channel c(3);
            rc = fn(c);
        } catch (...) {
        }
        ::_exit(rc);
    }
    ::close(sv[1]);
    child c;
    c.pid_ = pid;
    c.pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    c.chan_ = channel(sv[0]);
    return c;
}

child::child(child&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), pidfd_(std::exchange(o.pidfd_, -1)),
      reaped_(o.reaped_), status_(o.status_), chan_(std::move(o.chan_)) {}

child::~child() {
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    if (pidfd_ >= 0) ::close(pidfd_);
}

int child::wait(std::chrono::milliseconds timeout) {
    if (!reaped_) {
        if (pidfd_ >= 0 && !wait_readable(pidfd_, timeout))
            throw std::runtime_error("child " + std::to_string(pid_) + " did not exit");
        if (::waitpid(pid_, &status_, 0) != pid_) fail("waitpid");
        reaped_ = true;
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

void child::kill9() {
    if (!reaped_) ::kill(pid_, SIGKILL);
    (void)wait();
}

bool pump_until(util::event_loop& loop, const std::function<bool()>& pred,
                std::initializer_list<int> wake_fds, std::chrono::milliseconds timeout) {
    for (int fd : wake_fds) loop.add(fd, [] {});
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool ok = pred();
    while (!ok && std::chrono::steady_clock::now() < deadline) {
        loop.run_once(std::chrono::milliseconds(50));
        ok = pred();
    }
    for (int fd : wake_fds) loop.remove(fd);
    return ok;
}

broker_process::broker_process() : broker_process(broker::limits{}) {}

broker_process::broker_process(const broker::limits& lim) : path_(socket_path("broker")) {
    child_.emplace(child::spawn([path = path_, lim](channel& ch) {
        util::event_loop loop;
        broker::hooks h;
        h.on_domain_up = [&ch](domid_t id) { ch.put(event{1, id}); };
        h.on_domain_gone = [&ch](domid_t id) { ch.put(event{0, id}); };
        broker b(loop, path, h, lim);
        ch.put(event{2, 0});  // listening
        loop.run();
        return 0;
    }));
    if (child_->chan().get<event>().up != 2) throw std::runtime_error("broker did not start");
}

broker_process::~broker_process() {
    child_.reset();
    ::unlink(path_.c_str());
}

broker_process::event broker_process::next_event(std::chrono::milliseconds timeout) {
    return child_->chan().get<event>(timeout);
}

void broker_process::wait_gone(domid_t id) {
    // Bounded by the channel timeout: each wait either yields an event or throws.
    for (;;) {
        const event e = next_event();
        if (e.up == 0 && e.id == id) return;
    }
}

}  // namespace vifkit::emu::test
