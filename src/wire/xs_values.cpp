#include "vifkit/wire/xs_values.hpp"

#include <charconv>

#include <fmt/format.h>

namespace vifkit::wire {

std::optional<std::uint32_t> parse_u32(std::string_view s) {
    if (s.empty() || s.size() > 10) return std::nullopt;
    std::uint32_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

std::optional<bool> parse_flag(std::string_view s) {
    if (s == "0") return false;
    if (s == "1") return true;
    return std::nullopt;
}

std::optional<std::array<std::uint8_t, 6>> parse_mac(std::string_view s) {
    if (s.size() != 17) return std::nullopt;
    std::array<std::uint8_t, 6> mac{};
    for (std::size_t i = 0; i < 6; ++i) {
        const char* b = s.data() + i * 3;
        if (i < 5 && b[2] != ':') return std::nullopt;
        auto [p, ec] = std::from_chars(b, b + 2, mac[i], 16);
        if (ec != std::errc() || p != b + 2) return std::nullopt;
    }
    return mac;
}

std::string format_mac(const std::array<std::uint8_t, 6>& m) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
}

namespace {

// Whole-string decimal u64, at most 20 digits, no sign.
std::optional<std::uint64_t> parse_u64(std::string_view s) {
    if (s.empty() || s.size() > 20) return std::nullopt;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

}  // namespace

std::optional<rate_limit> parse_rate(std::string_view s) {
    const auto comma = s.find(',');
    if (comma == std::string_view::npos) return std::nullopt;
    const auto bytes = parse_u64(s.substr(0, comma));
    const auto usec = parse_u64(s.substr(comma + 1));  // a second ',' fails here
    if (!bytes || !usec || *bytes == 0 || *usec == 0) return std::nullopt;
    return rate_limit{*bytes, *usec};
}

}  // namespace vifkit::wire
