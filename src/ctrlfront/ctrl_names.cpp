#include "vifkit/ctrlfront/ctrl_names.hpp"

#include <array>
#include <cctype>
#include <charconv>

#include "vifkit/abi/netif.hpp"

namespace vifkit::ctrlfront {

namespace {

namespace t = abi::ctrl_type;

// netif-spec §2.3 (hash messages) and §1.4 (gref messages).
constexpr std::array<type_info, 11> types{{
    {t::invalid, "invalid", "unused", "none: backends answer NOT_SUPPORTED", -1, false},
    {t::get_hash_flags, "get_hash_flags", "unused",
     "supported hash types (bit0 ipv4, bit1 ipv4_tcp, bit2 ipv6, bit3 ipv6_tcp)", -1, false},
    {t::set_hash_flags, "set_hash_flags", "d0 = hash type mask (0 disables)", "none", -1, false},
    {t::set_hash_key, "set_hash_key", "d0 = gref of page holding the key, d1 = key length (0 clears, max 40)",
     "none", 0, false},
    {t::get_hash_mapping_size, "get_hash_mapping_size", "unused",
     "max mapping table entries (0 = modulo only)", -1, false},
    {t::set_hash_mapping_size, "set_hash_mapping_size", "d0 = table entries (0 = modulo mode)", "none",
     -1, false},
    {t::set_hash_mapping, "set_hash_mapping",
     "d0 = gref of page of u32 queue numbers, d1 = entry count, d2 = table offset (entries)", "none", 0,
     false},
    {t::set_hash_algorithm, "set_hash_algorithm", "d0 = algorithm (0 none, 1 toeplitz)", "none", -1,
     false},
    {t::get_gref_mapping_size, "get_gref_mapping_size", "d0 = queue index",
     "free gref mapping slots of the queue (0 = unsupported)", -1, false},
    {t::add_gref_mapping, "add_gref_mapping",
     "d0 = queue, d1 = gref of page holding the gref list, d2 = entry count (1..512)",
     "none (all or nothing)", 1, true},
    {t::del_gref_mapping, "del_gref_mapping",
     "d0 = queue, d1 = gref of page holding the gref list, d2 = entry count (1..512)",
     "entries unmapped; per-entry status in the list page", 1, true},
}};

bool iequal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto ca = static_cast<unsigned char>(a[i]);
        const auto cb = static_cast<unsigned char>(b[i]);
        if (std::tolower(ca) != std::tolower(cb)) return false;
    }
    return true;
}

std::string_view strip_prefix(std::string_view text, std::string_view prefix) noexcept {
    if (text.size() > prefix.size() && iequal(text.substr(0, prefix.size()), prefix))
        return text.substr(prefix.size());
    return text;
}

struct status_entry {
    std::uint32_t value;
    const char* name;
};
constexpr std::array<status_entry, 6> statuses{{
    {abi::ctrl_status::success, "SUCCESS"},
    {abi::ctrl_status::not_supported, "NOT_SUPPORTED"},
    {abi::ctrl_status::invalid_parameter, "INVALID_PARAMETER"},
    {abi::ctrl_status::buffer_overflow, "BUFFER_OVERFLOW"},
    {local_status::timeout, "TIMEOUT"},
    {local_status::cancelled, "CANCELLED"},
}};

}  // namespace

std::span<const type_info> known_types() noexcept { return types; }

const type_info* find_type(std::uint16_t type) noexcept {
    return type < types.size() ? &types[type] : nullptr;
}

const char* type_name(std::uint16_t type) noexcept {
    const type_info* info = find_type(type);
    return info ? info->name : "unknown";
}

const char* status_name(std::uint32_t status) noexcept {
    for (const auto& s : statuses)
        if (s.value == status) return s.name;
    return "UNKNOWN";
}

std::optional<std::uint32_t> parse_u32(std::string_view text) noexcept {
    int base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        text.remove_prefix(2);
        base = 16;
    }
    if (text.empty() || text.size() > 10) return std::nullopt;
    std::uint32_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return v;
}

std::optional<std::uint16_t> parse_type(std::string_view text) noexcept {
    if (!text.empty() && std::isdigit(static_cast<unsigned char>(text[0]))) {
        const auto v = parse_u32(text);
        if (!v || *v > 0xFFFFu) return std::nullopt;
        return static_cast<std::uint16_t>(*v);
    }
    const std::string_view bare = strip_prefix(text, "XEN_NETIF_CTRL_TYPE_");
    for (const auto& info : types)
        if (iequal(bare, info.name)) return info.type;
    return std::nullopt;
}

std::optional<std::uint32_t> parse_status(std::string_view text) noexcept {
    if (!text.empty() && std::isdigit(static_cast<unsigned char>(text[0]))) return parse_u32(text);
    const std::string_view bare = strip_prefix(text, "XEN_NETIF_CTRL_STATUS_");
    for (const auto& s : statuses)
        if (iequal(bare, s.name)) return s.value;
    return std::nullopt;
}

}  // namespace vifkit::ctrlfront
