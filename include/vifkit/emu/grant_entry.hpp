// Grant entry v1 as the emulated hypervisor stores it: the same 8-byte layout as
// xen/grant_table.h `grant_entry_v1_t` (netif-spec §6.1). The layout and the GTF_*
// values are pinned against the Xen header in src/platform/emu/hv/grant_words.cpp.
#pragma once
#include <cstdint>

#include "vifkit/platform/types.hpp"

namespace vifkit::emu {

struct grant_entry_v1 {
    std::uint16_t flags = 0;  // GTF_*
    domid_t domid = 0;        // domain allowed to access the frame
    std::uint32_t frame = 0;  // page index inside the granter's guest memory
};

// GTF_* flags (xen/grant_table.h).
namespace gtf {
inline constexpr std::uint16_t invalid = 0;
inline constexpr std::uint16_t permit_access = 1;
inline constexpr std::uint16_t accept_transfer = 2;
inline constexpr std::uint16_t transitive = 3;
inline constexpr std::uint16_t type_mask = 3;
inline constexpr std::uint16_t readonly = 1U << 2;
inline constexpr std::uint16_t reading = 1U << 3;  // set by the hypervisor while pinned
inline constexpr std::uint16_t writing = 1U << 4;  // set by the hypervisor while pinned writable
inline constexpr std::uint16_t sub_page = 1U << 8;
}  // namespace gtf

// Grant refs 0-7 are reserved (0 console, 1 xenstore); sharers start here.
inline constexpr grant_ref_t first_free_gref = 8;

}  // namespace vifkit::emu
