// Strict parsers for peer-written xenstore values (a frontend writes them, so
// they are untrusted input): whole-string decimal, no sign, no junk, bounded.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vifkit::wire {

// Decimal u32, e.g. a grant reference or event channel port ("0".."4294967295").
std::optional<std::uint32_t> parse_u32(std::string_view s);
// A boolean feature flag: "0" or "1" (absent = default, decided by the caller).
std::optional<bool> parse_flag(std::string_view s);
// A MAC address "aa:bb:cc:dd:ee:ff".
std::optional<std::array<std::uint8_t, 6>> parse_mac(std::string_view s);
std::string format_mac(const std::array<std::uint8_t, 6>& mac);

}  // namespace vifkit::wire
