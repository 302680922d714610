#include "vifkit/io/tap_port.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vifkit::io {
namespace {

std::string errno_text(const char* what, int err) {
    return std::string(what) + ": " + std::strerror(err);
}

// Interface ioctls (SIOC*IF*) go through any socket of the device's namespace; a
// unix datagram socket works even where IPv4 is disabled.
int ifreq_ioctl(unsigned long request, ifreq* ifr) {
    const int s = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    const int rc = ::ioctl(s, request, ifr) < 0 ? -errno : 0;
    ::close(s);
    return rc;
}

int set_link_up(const std::string& ifname) {
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size() + 1);
    if (int rc = ifreq_ioctl(SIOCGIFFLAGS, &ifr); rc < 0) return rc;
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    return ifreq_ioctl(SIOCSIFFLAGS, &ifr);
}

}  // namespace

std::unique_ptr<tap_port> tap_port::open(const std::string& name, std::string* error) {
    auto fail = [error](std::string msg) -> std::unique_ptr<tap_port> {
        if (error) *error = std::move(msg);
        return nullptr;
    };
    if (name.empty() || name.size() >= IFNAMSIZ) {
        return fail("tap: interface name must be 1.." + std::to_string(IFNAMSIZ - 1) +
                    " characters: '" + name + "'");
    }
    const int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return fail(errno_text("tap: open /dev/net/tun", errno));

    ifreq ifr{};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    std::memcpy(ifr.ifr_name, name.c_str(), name.size() + 1);
    if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
        const int err = errno;
        ::close(fd);
        return fail(errno_text(("tap: TUNSETIFF " + name).c_str(), err));
    }
    // The kernel may have expanded a "%d" pattern; use the name it chose from here on.
    std::unique_ptr<tap_port> port(new tap_port(fd, std::string(ifr.ifr_name)));
    if (int rc = set_link_up(port->ifname_); rc < 0) {
        return fail(errno_text(("tap: set " + port->ifname_ + " up").c_str(), -rc));
    }
    return port;
}

tap_port::~tap_port() { ::close(fd_); }

int tap_port::set_mtu(int mtu) {
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, ifname_.c_str(), ifname_.size() + 1);
    ifr.ifr_mtu = mtu;
    return ifreq_ioctl(SIOCSIFMTU, &ifr);
}

long tap_port::recv(std::span<std::byte> buf) {
    // A one-byte spill slot after buf makes an oversized frame visible whichever way
    // the kernel reports it (full length or bytes copied): the read exceeds buf.
    std::byte spill[1];
    iovec iov[2] = {{buf.data(), buf.size()}, {spill, sizeof spill}};
    const ssize_t n = ::readv(fd_, iov, 2);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
        const int err = errno;
        ++stats_.rx_errors;
        if (log_limit_.allow()) SPDLOG_WARN("{}: read failed: {}", describe(), std::strerror(err));
        return -err;
    }
    if (static_cast<std::size_t>(n) > buf.size()) {
        ++stats_.rx_errors;
        if (log_limit_.allow()) {
            SPDLOG_WARN("{}: dropped frame larger than the {}-byte buffer", describe(),
                        buf.size());
        }
        return 0;
    }
    ++stats_.rx_frames;
    stats_.rx_bytes += static_cast<std::uint64_t>(n);
    return n;
}

bool tap_port::send(std::span<const std::byte> frame) {
    const ssize_t n = ::write(fd_, frame.data(), frame.size());
    if (n < 0 || static_cast<std::size_t>(n) != frame.size()) {
        // EAGAIN (queue full), EIO (link down) and EINVAL (runt frame) all mean the
        // frame is lost; the stack above retransmits what matters.
        ++stats_.tx_drops;
        if (n < 0 && errno != EAGAIN && log_limit_.allow()) {
            SPDLOG_WARN("{}: write failed: {}", describe(), std::strerror(errno));
        }
        return false;
    }
    ++stats_.tx_frames;
    stats_.tx_bytes += frame.size();
    return true;
}

}  // namespace vifkit::io
