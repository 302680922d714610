#include "vifkit/io/tap_port.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "../vnet/vnet_hdr.hpp"
#include "vifkit/wire/checksum.hpp"

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

std::unique_ptr<tap_port> tap_port::open(const std::string& name, bool vnet, std::string* error) {
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
    ifr.ifr_flags = static_cast<short>(IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0));
    std::memcpy(ifr.ifr_name, name.c_str(), name.size() + 1);
    if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
        const int err = errno;
        ::close(fd);
        return fail(errno_text(("tap: TUNSETIFF " + name).c_str(), err));
    }
    if (vnet) {
        int len = static_cast<int>(detail::vnet_hdr_len);
        // No offload accepted until set_offload(): the kernel completes checksums
        // and segments before handing us frames.
        if (::ioctl(fd, TUNSETVNETHDRSZ, &len) < 0 || ::ioctl(fd, TUNSETOFFLOAD, 0u) < 0) {
            const int err = errno;
            ::close(fd);
            return fail(errno_text(("tap: vnet header on " + name).c_str(), err));
        }
    }
    // The kernel may have expanded a "%d" pattern; use the name it chose from here on.
    std::unique_ptr<tap_port> port(new tap_port(fd, std::string(ifr.ifr_name), vnet));
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

unsigned tap_port::offload_caps() const {
    return vnet_ ? offload_cap::csum | offload_cap::tso4 | offload_cap::tso6 : 0;
}

int tap_port::set_offload(unsigned caps) {
    caps &= offload_caps();
    if (!(caps & offload_cap::csum)) caps = 0;  // TSO needs checksum offload
    unsigned tun = 0;
    if (caps & offload_cap::csum) tun |= TUN_F_CSUM;
    if (caps & offload_cap::tso4) tun |= TUN_F_TSO4;
    if (caps & offload_cap::tso6) tun |= TUN_F_TSO6;
    if (vnet_ && ::ioctl(fd_, TUNSETOFFLOAD, tun) < 0) return -errno;
    offloads_ = caps;
    return 0;
}

bool tap_port::link_up() const {
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, ifname_.c_str(), ifname_.size() + 1);
    if (ifreq_ioctl(SIOCGIFFLAGS, &ifr) < 0) return false;
    return (ifr.ifr_flags & IFF_UP) != 0;
}

int tap_port::set_carrier(bool up) {
    int on = up ? 1 : 0;
    return ::ioctl(fd_, TUNSETCARRIER, &on) < 0 ? -errno : 0;
}

std::optional<std::vector<std::array<std::uint8_t, 6>>> tap_port::multicast_groups() const {
    // Lines "index name users global hex-address", per network namespace.
    std::FILE* f = std::fopen("/proc/net/dev_mcast", "re");
    if (!f) return std::nullopt;
    std::vector<std::array<std::uint8_t, 6>> out;
    char line[256];
    while (std::fgets(line, sizeof line, f) && out.size() < 4096) {
        int index = 0, users = 0, global = 0;
        char name[IFNAMSIZ + 1] = {}, hex[65] = {};
        if (std::sscanf(line, "%d %16s %d %d %64s", &index, name, &users, &global, hex) != 5) continue;
        if (ifname_ != name || std::strlen(hex) != 12) continue;
        std::array<std::uint8_t, 6> mac{};
        bool ok = true;
        for (std::size_t i = 0; i < 6 && ok; ++i) {
            unsigned v = 0;
            ok = std::sscanf(hex + 2 * i, "%2x", &v) == 1;
            mac[i] = static_cast<std::uint8_t>(v);
        }
        if (ok && (mac[0] & 1)) out.push_back(mac);
    }
    std::fclose(f);
    return out;
}

long tap_port::read_frame(std::span<std::byte> buf, offload& meta) {
    meta = {};
    // A one-byte spill slot after buf makes an oversized frame visible whichever way
    // the kernel reports it (full length or bytes copied): the read exceeds buf.
    std::byte spill[1];
    detail::virtio_net_hdr h{};
    iovec iov[3] = {{&h, sizeof h}, {buf.data(), buf.size()}, {spill, sizeof spill}};
    const int first = vnet_ ? 0 : 1;
    ssize_t n = ::readv(fd_, iov + first, 3 - first);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
        const int err = errno;
        ++stats_.rx_errors;
        if (log_limit_.allow()) SPDLOG_WARN("{}: read failed: {}", describe(), std::strerror(err));
        return -err;
    }
    if (vnet_) {
        if (static_cast<std::size_t>(n) < sizeof h) {
            ++stats_.rx_errors;
            return 0;
        }
        n -= static_cast<ssize_t>(sizeof h);
    }
    if (static_cast<std::size_t>(n) > buf.size()) {
        ++stats_.rx_errors;
        if (log_limit_.allow()) {
            SPDLOG_WARN("{}: dropped frame larger than the {}-byte buffer", describe(),
                        buf.size());
        }
        return 0;
    }
    if (vnet_ && detail::decode_vnet(h, buf.first(static_cast<std::size_t>(n)), offloads_, meta) !=
                     detail::vnet_verdict::ok) {
        ++stats_.rx_errors;
        if (log_limit_.allow())
            SPDLOG_WARN("{}: dropped frame with an unusable virtio header (flags {}, gso type {})", describe(),
                        h.flags, h.gso_type);
        return 0;
    }
    ++stats_.rx_frames;
    stats_.rx_bytes += static_cast<std::uint64_t>(n);
    return n;
}

long tap_port::recv_offload(std::span<std::byte> buf, offload& meta) { return read_frame(buf, meta); }

long tap_port::recv(std::span<std::byte> buf) {
    offload m;
    const long n = read_frame(buf, m);
    if (n <= 0 || m.plain()) return n;
    // A plain reader while offloads are on: finish the checksum; a GSO frame cannot be.
    if (m.gso_type == offload::gso::none &&
        wire::complete_l4_checksum(buf.first(static_cast<std::size_t>(n))) != wire::csum_result::malformed)
        return n;
    ++stats_.rx_errors;
    return 0;
}

bool tap_port::send(std::span<const std::byte> frame) { return send_offload(frame, offload{}); }

bool tap_port::send_offload(std::span<const std::byte> frame, const offload& meta) {
    detail::virtio_net_hdr h{};
    if (vnet_) h = detail::encode_vnet(frame, meta);
    iovec iov[2] = {{&h, sizeof h}, {const_cast<std::byte*>(frame.data()), frame.size()}};
    const int first = vnet_ ? 0 : 1;
    const std::size_t want = frame.size() + (vnet_ ? sizeof h : 0);
    const ssize_t n = ::writev(fd_, iov + first, 2 - first);
    if (n < 0 || static_cast<std::size_t>(n) != want) {
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
