#include "vifkit/emu/xenstored/perms.hpp"

#include <charconv>
#include <limits>

namespace vifkit::emu::xs {

std::optional<perm> parse_perm(std::string_view s) {
    if (s.size() < 2) return std::nullopt;
    perm p;
    switch (s.front()) {
    case 'n': p.access = access_none; break;
    case 'r': p.access = access_read; break;
    case 'w': p.access = access_write; break;
    case 'b': p.access = access_read | access_write; break;
    default: return std::nullopt;
    }
    const std::string_view digits = s.substr(1);
    if (digits.front() < '0' || digits.front() > '9') return std::nullopt;  // no sign
    unsigned long v = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
    if (v > std::numeric_limits<domid_t>::max()) return std::nullopt;
    p.id = static_cast<domid_t>(v);
    return p;
}

std::string format_perm(const perm& p) {
    char c = 'n';
    const unsigned rw = p.access & (access_read | access_write);
    if (rw == (access_read | access_write)) c = 'b';
    else if (rw == access_read) c = 'r';
    else if (rw == access_write) c = 'w';
    return c + std::to_string(p.id);
}

unsigned access_for(const caller& who, const perm_list& perms) noexcept {
    constexpr unsigned all = access_read | access_write | access_owner;
    if (who.privileged) return all;
    if (perms.empty()) return access_none;  // cannot happen for stored nodes; deny
    if (perms.front().id == who.id) return all;
    for (std::size_t i = 1; i < perms.size(); ++i)
        if (perms[i].id == who.id) return perms[i].access & (access_read | access_write);
    return perms.front().access & (access_read | access_write);
}

}  // namespace vifkit::emu::xs
