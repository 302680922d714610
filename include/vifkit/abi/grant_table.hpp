// Grant entry v1 and GTF_* flags (xen/grant_table.h; netif-spec §6.1).
#pragma once
#include <cstdint>

namespace vifkit::abi {

struct grant_entry_v1 {
    std::uint16_t flags;
    std::uint16_t domid;
    std::uint32_t frame;
};
static_assert(sizeof(grant_entry_v1) == 8);

namespace gtf {
inline constexpr std::uint16_t invalid = 0;
inline constexpr std::uint16_t permit_access = 1;
inline constexpr std::uint16_t accept_transfer = 2;
inline constexpr std::uint16_t transitive = 3;
inline constexpr std::uint16_t type_mask = 3;
inline constexpr std::uint16_t readonly = 1u << 2;
inline constexpr std::uint16_t reading = 1u << 3;
inline constexpr std::uint16_t writing = 1u << 4;
inline constexpr std::uint16_t sub_page = 1u << 8;
}  // namespace gtf

inline constexpr std::uint32_t grant_entries_per_page = 4096 / sizeof(grant_entry_v1);
inline constexpr std::uint32_t reserved_grant_entries = 8;  // GNTTAB_NR_RESERVED_ENTRIES

}  // namespace vifkit::abi
