// TAP device port: frames go to and from the host kernel's network stack through
// /dev/net/tun. The device lives as long as the port (it is not made persistent) and
// is created in the network namespace of the calling thread.
#pragma once
#include <memory>
#include <string>

#include "vifkit/io/packet_port.hpp"
#include "vifkit/util/log.hpp"

namespace vifkit::io {

class tap_port final : public packet_port {
public:
    // Create (or attach to) TAP `name` (IFF_TAP|IFF_NO_PI, non-blocking) and set the
    // link up. `name` may be a pattern such as "vif%d". nullptr + *error on failure.
    [[nodiscard]] static std::unique_ptr<tap_port> open(const std::string& name,
                                                        std::string* error);
    ~tap_port() override;

    // Set the device MTU (SIOCSIFMTU). 0 or -errno.
    int set_mtu(int mtu);
    // The name the kernel gave the device.
    [[nodiscard]] const std::string& ifname() const { return ifname_; }

    [[nodiscard]] int fd() const override { return fd_; }
    [[nodiscard]] long recv(std::span<std::byte> buf) override;
    bool send(std::span<const std::byte> frame) override;
    [[nodiscard]] std::string describe() const override { return "tap:" + ifname_; }
    [[nodiscard]] stats get_stats() const override { return stats_; }

private:
    tap_port(int fd, std::string ifname) : fd_(fd), ifname_(std::move(ifname)) {}

    int fd_;
    std::string ifname_;
    stats stats_;
    util::rate_limited log_limit_;
};

}  // namespace vifkit::io
