// Shared helpers for the io tests: recognisable frames, short waits on a port's fd,
// and a private scratch directory.
#pragma once
#include <poll.h>

#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "vifkit/io/packet_port.hpp"

namespace vifkit::io::test {

// A frame whose every byte depends on `seed` and its offset, so a swapped, shifted or
// truncated frame never compares equal to the expected one.
inline std::vector<std::byte> make_frame(std::uint32_t seed, std::size_t size) {
    std::vector<std::byte> f(size);
    for (std::size_t i = 0; i < size; ++i) {
        f[i] = static_cast<std::byte>((seed * 131u + i * 7u + (i >> 8)) & 0xffu);
    }
    return f;
}

// Frame sizes from the minimum Ethernet header to a full 1500-byte MTU frame.
inline std::size_t frame_size_for(std::uint32_t i) { return 14 + (i * 37u) % 1501u; }

// True if fd turns readable within timeout_ms.
inline bool wait_readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

// Receive into buf, waiting up to timeout_ms for the port's fd. Returns recv()'s last
// result (0 if nothing arrived in time).
inline long recv_wait(packet_port& port, std::span<std::byte> buf, int timeout_ms = 1000) {
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        const long n = port.recv(buf);
        if (n != 0) return n;
        wait_readable(port.fd(), 10);
    }
    return 0;
}

// A fresh directory under /tmp, removed with everything in it at scope exit.
class temp_dir {
public:
    temp_dir() {
        char tmpl[] = "/tmp/vifkit-iotest-XXXXXX";
        const char* p = ::mkdtemp(tmpl);
        path_ = p ? p : "";
    }
    ~temp_dir() {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] bool ok() const { return !path_.empty(); }
    [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

}  // namespace vifkit::io::test
