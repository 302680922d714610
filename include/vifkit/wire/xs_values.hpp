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

// The toolstack's transmit rate limit, B/rate = "BYTES,USEC" (libxl writes
// "%"PRIu64",%"PRIu32 and only when USEC > 0): the guest may send BYTES every
// USEC microseconds. An absent key means unlimited; the caller decides that.
struct rate_limit {
    std::uint64_t bytes = 0;
    std::uint64_t usec = 0;
    bool operator==(const rate_limit&) const = default;
};
// "BYTES,USEC": two decimal u64s (no sign, space or junk), both > 0. Linux's
// xen_net_read_rate is laxer (simple_strtoul: wraps on overflow, takes "0") and
// treats a value it cannot parse as unlimited.
std::optional<rate_limit> parse_rate(std::string_view s);

}  // namespace vifkit::wire
