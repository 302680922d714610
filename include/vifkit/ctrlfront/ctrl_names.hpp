// Names, numbers and data[] meanings of the control-ring messages
// (netif-spec §1.4 static grants, §2.1-2.3 hash messages), for logs, the
// local control socket and vifkit-ctl's --help.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace vifkit::ctrlfront {

// Local status markers handed to a ctrl_client callback when no response came
// from the backend. They never appear on the wire: real statuses are 0..3
// (abi::ctrl_status), and a backend echoing one of these is simply an
// unknown status to us.
namespace local_status {
inline constexpr std::uint32_t timeout = 0xFFFFFFFFu;    // deadline passed (expire())
inline constexpr std::uint32_t cancelled = 0xFFFFFFFEu;  // cancel_all() (disconnect)
}  // namespace local_status

// One known message type.
struct type_info {
    std::uint16_t type;
    const char* name;        // lower case, e.g. "get_gref_mapping_size"
    const char* data_help;   // meaning of request data[0..2]
    const char* reply_help;  // meaning of the response data
    int page_arg;            // data[] index carrying a gref of a page, or -1
    bool page_writable;      // must that page be granted writable (backend writes it)?
};

// All types from INVALID (0) to DEL_GREF_MAPPING (10), in numeric order.
[[nodiscard]] std::span<const type_info> known_types() noexcept;
// nullptr for a type we have no name for.
[[nodiscard]] const type_info* find_type(std::uint16_t type) noexcept;

// "get_gref_mapping_size" etc.; "unknown" for other values.
[[nodiscard]] const char* type_name(std::uint16_t type) noexcept;
// "SUCCESS", "NOT_SUPPORTED", "INVALID_PARAMETER", "BUFFER_OVERFLOW", the local
// markers "TIMEOUT" / "CANCELLED"; "UNKNOWN" for other values.
[[nodiscard]] const char* status_name(std::uint32_t status) noexcept;

// A type from its name (any case, with or without the XEN_NETIF_CTRL_TYPE_
// prefix) or its number (decimal or 0x hex, 0..65535).
[[nodiscard]] std::optional<std::uint16_t> parse_type(std::string_view text) noexcept;
// A status from its name (any case, with or without XEN_NETIF_CTRL_STATUS_) or number.
[[nodiscard]] std::optional<std::uint32_t> parse_status(std::string_view text) noexcept;
// An unsigned 32-bit number: decimal or 0x/0X hex, no sign, no spaces.
[[nodiscard]] std::optional<std::uint32_t> parse_u32(std::string_view text) noexcept;

}  // namespace vifkit::ctrlfront
