#include "fd.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace vifkit::emu::detail {

void unique_fd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

mapping mapping::map(int fd, std::size_t len, int prot, off_t offset) {
    mapping m;
    void* p = ::mmap(nullptr, len, prot, MAP_SHARED, fd, offset);
    if (p == MAP_FAILED) return m;
    m.addr_ = p;
    m.len_ = len;
    return m;
}

mapping& mapping::operator=(mapping&& o) noexcept {
    if (this != &o) {
        reset();
        addr_ = std::exchange(o.addr_, nullptr);
        len_ = std::exchange(o.len_, 0);
    }
    return *this;
}

void mapping::reset() noexcept {
    if (addr_ != nullptr) ::munmap(addr_, len_);
    addr_ = nullptr;
    len_ = 0;
}

unique_fd make_memfd(const char* name, std::size_t bytes) {
    unique_fd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd) return fd;
    if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) < 0) return unique_fd{};
    return fd;
}

int seal_size(int fd) {
    if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) return -errno;
    return 0;
}

unique_fd reopen_readonly(int fd) {
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    return unique_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

int send_msg(int sock, const void* buf, std::size_t len, std::span<const int> fds,
             int flags) {
    if (fds.size() > max_msg_fds) return -EINVAL;
    iovec iov{const_cast<void*>(buf), len};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * max_msg_fds)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds.empty()) {
        msg.msg_control = ctl;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    for (;;) {
        const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
        if (n >= 0) return static_cast<std::size_t>(n) == len ? 0 : -EMSGSIZE;
        if (errno != EINTR) return -errno;
    }
}

namespace {

// Take ownership of every fd in the control data, even ones we will refuse.
void collect_fds(msghdr& msg, std::vector<unique_fd>& fds) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < n; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            fds.emplace_back(fd);
        }
    }
}

}  // namespace

ssize_t recv_msg(int sock, void* buf, std::size_t len, std::vector<unique_fd>& fds,
                 bool& truncated, int flags) {
    iovec iov{buf, len};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * max_msg_fds)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof(ctl);
    ssize_t n;
    do {
        n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    collect_fds(msg, fds);
    truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    return n;
}

}  // namespace vifkit::emu::detail
