#include "vifkit/core/steering.hpp"

#include <cstdint>

#include "vifkit/ctrl/toeplitz.hpp"

namespace vifkit::core {

namespace {
// The "Microsoft/Intel default RSS key" (netif-spec §2.5).
constexpr std::uint8_t default_key[40] = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
                                          0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
                                          0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
                                          0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
}  // namespace

unsigned flow_queue(std::span<const std::byte> frame, unsigned nqueues) {
    if (nqueues <= 1) return 0;
    const auto h = ctrl::hash_frame(frame, 0xF, default_key);
    return h ? h->value % nqueues : 0;
}

}  // namespace vifkit::core
