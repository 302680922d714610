// File-descriptor and mapping helpers for the emulated hypervisor: owned fds,
// owned mmaps, memfds with size seals, and SOCK_SEQPACKET messages carrying fds.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

namespace vifkit::emu::detail {

class unique_fd {
public:
    unique_fd() = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        reset(o.release());
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept;
    explicit operator bool() const noexcept { return fd_ >= 0; }

private:
    int fd_ = -1;
};

// An owned mmap; empty when mapping failed (errno set).
class mapping {
public:
    mapping() = default;
    static mapping map(int fd, std::size_t len, int prot, off_t offset = 0);
    mapping(mapping&& o) noexcept
        : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)) {}
    mapping& operator=(mapping&& o) noexcept;
    mapping(const mapping&) = delete;
    mapping& operator=(const mapping&) = delete;
    ~mapping() { reset(); }

    void reset() noexcept;
    [[nodiscard]] void* get() const noexcept { return addr_; }
    [[nodiscard]] std::size_t size() const noexcept { return len_; }
    explicit operator bool() const noexcept { return addr_ != nullptr; }

private:
    void* addr_ = nullptr;
    std::size_t len_ = 0;
};

[[nodiscard]] constexpr std::size_t round_to_pages(std::size_t bytes) {
    return (bytes + 4095) & ~std::size_t{4095};
}

// A sealable memfd of `bytes` bytes (zero filled). Invalid fd + errno on failure.
unique_fd make_memfd(const char* name, std::size_t bytes);
// Forbid shrinking and growing (a peer shrinking a memfd would make every mapper
// of it fault with SIGBUS) and lock the seals. 0 or -errno.
int seal_size(int fd);
// A second, read-only open of `fd` (via /proc/self/fd): its holder cannot map it
// writable. Invalid fd + errno on failure.
unique_fd reopen_readonly(int fd);

// Send one datagram with `fds` attached (MSG_NOSIGNAL, plus `flags`). 0 or -errno.
int send_msg(int sock, const void* buf, std::size_t len, std::span<const int> fds,
             int flags = 0);
// Receive one datagram. Returns its length (0 = peer closed) or -errno. Received
// fds are appended to `fds` (CLOEXEC). `truncated` is set when data or fds did not
// fit (the extra fds are closed by the kernel or by us).
ssize_t recv_msg(int sock, void* buf, std::size_t len, std::vector<unique_fd>& fds,
                 bool& truncated, int flags = 0);

// Send / receive a trivially copyable message struct.
template <class T>
int send_struct(int sock, const T& m, std::span<const int> fds = {}, int flags = 0) {
    return send_msg(sock, &m, sizeof(T), fds, flags);
}

// Max fds any emulator message carries.
inline constexpr std::size_t max_msg_fds = 4;

}  // namespace vifkit::emu::detail
