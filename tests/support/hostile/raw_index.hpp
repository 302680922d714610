// Raw access to a shared ring's index words for the hostile peers: they
// publish and read indices like a real peer (acquire/release, full fence
// after a store), but never validate anything.
#pragma once
#include <atomic>
#include <cstdint>

namespace vifkit::test::raw {

inline std::uint32_t load(const std::uint32_t& v) {
    return std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(v)).load(std::memory_order_acquire);
}
inline void store(std::uint32_t& v, std::uint32_t x) {
    std::atomic_ref<std::uint32_t>(v).store(x, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace vifkit::test::raw
