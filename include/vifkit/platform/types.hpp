// Basic Xen scalar types and grant-table status codes shared by every platform.
// Mirrors xen/grant_table.h (GNTST_*) and xen/xen.h (domid_t); see netif-spec §6.2.
#pragma once
#include <cstdint>

namespace vifkit {

using domid_t = std::uint16_t;
using grant_ref_t = std::uint32_t;
using evtchn_port_t = std::uint32_t;

inline constexpr std::size_t page_size = 4096;
inline constexpr domid_t domid_self = 0x7FF0;     // DOMID_SELF
inline constexpr domid_t domid_invalid = 0x7FF4;  // DOMID_INVALID

// GNTST_* from xen/grant_table.h. Values are pinned by static_asserts in abi/.
enum class gnt_status : std::int16_t {
    okay = 0,
    general_error = -1,
    bad_domain = -2,
    bad_gntref = -3,
    bad_handle = -4,
    bad_virt_addr = -5,
    bad_dev_addr = -6,
    no_device_space = -7,
    permission_denied = -8,
    bad_page = -9,
    bad_copy_arg = -10,
    address_too_big = -11,
    eagain = -12,
    no_space = -13,
};

const char* to_string(gnt_status s) noexcept;

}  // namespace vifkit
