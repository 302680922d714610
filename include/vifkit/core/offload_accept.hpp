// Which offloads a next hop (a packet port, or the peer across the ring) takes.
#pragma once
#include "vifkit/io/packet_port.hpp"

namespace vifkit::core {

// Offloads a next hop accepts.
struct offload_accept {
    bool csum4 = false, csum6 = false;  // partial TCP/UDP checksums over IPv4 / IPv6
    bool gso4 = false, gso6 = false;    // TCPv4 / TCPv6 super-frames (sg implied)

    // From a port's capability bits (io::offload_cap): what send_offload() takes.
    static offload_accept from_caps(unsigned caps) {
        const bool c = (caps & io::offload_cap::csum) != 0;
        return {c, c, c && (caps & io::offload_cap::tso4) != 0, c && (caps & io::offload_cap::tso6) != 0};
    }
    // As offload_cap bits (for io::packet_port::set_offload).
    [[nodiscard]] unsigned caps() const {
        unsigned c = 0;
        if (csum4 || csum6) c |= io::offload_cap::csum;
        if (gso4) c |= io::offload_cap::tso4;
        if (gso6) c |= io::offload_cap::tso6;
        return c;
    }
};

}  // namespace vifkit::core
