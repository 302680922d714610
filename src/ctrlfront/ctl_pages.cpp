// Hex text and the little-endian page layouts carried by ctl requests
// (gref list: netif-spec §1.3; hash mapping: §2.3).
#include <stdexcept>

#include "vifkit/ctrlfront/ctl_protocol.hpp"
#include "vifkit/ctrlfront/ctrl_names.hpp"

namespace vifkit::ctrlfront {

namespace {

constexpr std::size_t gref_entry_bytes = 8;
constexpr std::size_t max_u32_values = ctl_max_page_bytes / 4;

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void put_le(std::vector<std::uint8_t>& out, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint32_t get_le(std::span<const std::uint8_t> in, std::size_t at, int bytes) {
    std::uint32_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint32_t>(in[at + i]) << (8 * i);
    return v;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Splits "a,b,c" into trimmed tokens; nullopt on an empty token or more than max_items.
std::optional<std::vector<std::string_view>> split_list(std::string_view text, std::size_t max_items) {
    std::vector<std::string_view> out;
    for (;;) {
        const std::size_t comma = text.find(',');
        const std::string_view tok = trim(text.substr(0, comma));
        if (tok.empty() || out.size() == max_items) return std::nullopt;
        out.push_back(tok);
        if (comma == std::string_view::npos) return out;
        text.remove_prefix(comma + 1);
    }
}

}  // namespace

std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (const std::uint8_t b : bytes) {
        s.push_back(digits[b >> 4]);
        s.push_back(digits[b & 0xF]);
    }
    return s;
}

std::optional<std::vector<std::uint8_t>> from_hex(std::string_view text, std::size_t max_bytes) {
    if (text.empty() || text.size() % 2 != 0 || text.size() / 2 > max_bytes) return std::nullopt;
    std::vector<std::uint8_t> out(text.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return out;
}

std::vector<std::uint8_t> gref_list_page(std::span<const abi::gref_entry> entries) {
    if (entries.size() > ctl_max_gref_entries)
        throw std::length_error("gref list: more than 512 entries do not fit a page");
    std::vector<std::uint8_t> out;
    out.reserve(entries.size() * gref_entry_bytes);
    for (const auto& e : entries) {
        put_le(out, e.ref, 4);
        put_le(out, e.flags, 2);
        put_le(out, e.status, 2);
    }
    return out;
}

std::optional<std::vector<abi::gref_entry>> parse_gref_list_page(std::span<const std::uint8_t> page,
                                                                 std::size_t count) {
    if (count > ctl_max_gref_entries || page.size() / gref_entry_bytes < count) return std::nullopt;
    std::vector<abi::gref_entry> out(count);
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t at = i * gref_entry_bytes;
        out[i].ref = get_le(page, at, 4);
        out[i].flags = static_cast<std::uint16_t>(get_le(page, at + 4, 2));
        out[i].status = static_cast<std::uint16_t>(get_le(page, at + 6, 2));
    }
    return out;
}

parsed<std::vector<abi::gref_entry>> parse_gref_list(std::string_view text) {
    using list = std::vector<abi::gref_entry>;
    const auto tokens = split_list(text, ctl_max_gref_entries);
    if (!tokens) return {std::nullopt, "gref list: 1..512 comma-separated entries \"ref[:ro|:rw]\""};
    list out;
    for (std::string_view tok : *tokens) {
        abi::gref_entry e{};
        if (const std::size_t colon = tok.find(':'); colon != std::string_view::npos) {
            const std::string_view flag = tok.substr(colon + 1);
            if (flag == "ro") e.flags = abi::gref_flag_readonly;
            else if (flag != "rw") return {std::nullopt, "gref list: flag must be :ro or :rw"};
            tok = tok.substr(0, colon);
        }
        const auto ref = parse_u32(tok);
        if (!ref) return {std::nullopt, "gref list: bad grant reference \"" + std::string(tok.substr(0, 16)) + "\""};
        e.ref = *ref;
        out.push_back(e);
    }
    return {std::move(out), {}};
}

std::vector<std::uint8_t> u32_list_page(std::span<const std::uint32_t> values) {
    if (values.size() > max_u32_values) throw std::length_error("u32 list: more than 1024 values");
    std::vector<std::uint8_t> out;
    out.reserve(values.size() * 4);
    for (const std::uint32_t v : values) put_le(out, v, 4);
    return out;
}

parsed<std::vector<std::uint32_t>> parse_u32_list(std::string_view text) {
    const auto tokens = split_list(text, max_u32_values);
    if (!tokens) return {std::nullopt, "u32 list: 1..1024 comma-separated numbers"};
    std::vector<std::uint32_t> out;
    for (const std::string_view tok : *tokens) {
        const auto v = parse_u32(tok);
        if (!v) return {std::nullopt, "u32 list: bad number \"" + std::string(tok.substr(0, 16)) + "\""};
        out.push_back(*v);
    }
    return {std::move(out), {}};
}

}  // namespace vifkit::ctrlfront
