// Flow -> queue choice when no hash mapping was configured by the frontend:
// each sender keeps a flow on one queue (netif-spec §5.1 leaves the mapping to
// the sender). Toeplitz over the same tuples as the control ring's hashing,
// with the well-known default RSS key.
#pragma once
#include <cstddef>
#include <span>

namespace vifkit::core {

[[nodiscard]] unsigned flow_queue(std::span<const std::byte> frame, unsigned nqueues);

}  // namespace vifkit::core
