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
    // Create (or attach to) TAP `name` (IFF_TAP|IFF_NO_PI, non-blocking; with
    // IFF_VNET_HDR when `vnet`) and set the link up. `name` may be a pattern such
    // as "vif%d". nullptr + *error on failure.
    [[nodiscard]] static std::unique_ptr<tap_port> open(const std::string& name, bool vnet,
                                                        std::string* error);
    ~tap_port() override;

    // Set the device MTU (SIOCSIFMTU). 0 or -errno.
    int set_mtu(int mtu) override;
    // The name the kernel gave the device.
    [[nodiscard]] const std::string& ifname() const { return ifname_; }

    [[nodiscard]] int fd() const override { return fd_; }
    [[nodiscard]] long recv(std::span<std::byte> buf) override;
    bool send(std::span<const std::byte> frame) override;
    [[nodiscard]] std::string describe() const override { return "tap:" + ifname_; }
    [[nodiscard]] stats get_stats() const override { return stats_; }
    [[nodiscard]] unsigned offload_caps() const override;
    int set_offload(unsigned caps) override;
    [[nodiscard]] long recv_offload(std::span<std::byte> buf, offload& meta) override;
    bool send_offload(std::span<const std::byte> frame, const offload& meta) override;
    [[nodiscard]] bool link_up() const override;
    int set_carrier(bool up) override;
    [[nodiscard]] std::optional<std::vector<std::array<std::uint8_t, 6>>> multicast_groups() const override;

private:
    tap_port(int fd, std::string ifname, bool vnet) : fd_(fd), ifname_(std::move(ifname)), vnet_(vnet) {}
    long read_frame(std::span<std::byte> buf, offload& meta);

    int fd_;
    std::string ifname_;
    bool vnet_;
    unsigned offloads_ = 0;  // accepted from the kernel (set_offload)
    stats stats_;
    util::rate_limited log_limit_;
};

}  // namespace vifkit::io
