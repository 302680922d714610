// Internal: the "gen:" traffic-source port (see gen_port.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vifkit/io/packet_port.hpp"

namespace vifkit::io::detail {

class gen_port final : public packet_port {
public:
    // spec = what follows "gen:". nullptr + *error on a bad spec.
    [[nodiscard]] static std::unique_ptr<packet_port> open(std::string_view spec, std::string* error);
    ~gen_port() override;

    [[nodiscard]] int fd() const override { return efd_; }
    [[nodiscard]] long recv(std::span<std::byte> buf) override;
    bool send(std::span<const std::byte> frame) override;
    [[nodiscard]] std::string describe() const override { return desc_; }
    [[nodiscard]] stats get_stats() const override { return stats_; }

private:
    gen_port(std::size_t size, unsigned flows, std::uint64_t count, int efd);

    std::size_t size_;
    unsigned flows_;
    std::uint64_t count_;  // 0 = endless
    std::uint64_t produced_ = 0;
    unsigned flow_ = 0;             // next flow (source address)
    std::uint16_t base_csum_ = 0;   // IPv4 header checksum of the template (flow 0)
    int efd_;
    std::vector<std::byte> tmpl_;
    std::string desc_;
    stats stats_;
};

}  // namespace vifkit::io::detail
