#include "vifkit/emu/xenstored/path.hpp"

#include <fmt/format.h>

#include "vifkit/emu/xenstored/wire.hpp"

namespace vifkit::emu::xs {

namespace {

bool valid_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '/' || c == '_' || c == '@';
}

}  // namespace

bool is_valid_path(std::string_view path) noexcept {
    if (path.empty() || path.front() != '/') return false;
    if (path.size() > abs_path_max) return false;
    if (path.size() > 1 && path.back() == '/') return false;
    if (path.find("//") != std::string_view::npos) return false;
    for (char c : path)
        if (!valid_char(c)) return false;
    return true;
}

bool is_special_path(std::string_view path) noexcept {
    return path == introduce_domain_path || path == release_domain_path;
}

std::string domain_path(domid_t id) { return fmt::format("/local/domain/{}", id); }

std::optional<std::string> canonicalize(std::string_view name, domid_t self,
                                        bool allow_special) {
    if (!name.empty() && name.front() == '@') {
        if (allow_special && is_special_path(name)) return std::string(name);
        return std::nullopt;
    }
    std::string full;
    if (!name.empty() && name.front() == '/') {
        full = name;
    } else {
        // Relative names are limited separately so that a long domain prefix
        // cannot turn a legal relative name into an over-long absolute one silently.
        if (name.empty() || name.size() > rel_path_max) return std::nullopt;
        full = child_path(domain_path(self), name);
    }
    if (!is_valid_path(full)) return std::nullopt;
    return full;
}

std::string parent_of(std::string_view path) {
    const auto slash = path.rfind('/');
    if (slash == std::string_view::npos || slash == 0) return "/";
    return std::string(path.substr(0, slash));
}

std::string_view basename_of(std::string_view path) noexcept {
    const auto slash = path.rfind('/');
    if (slash == std::string_view::npos) return path;
    return path.substr(slash + 1);
}

std::string child_path(std::string_view parent, std::string_view name) {
    std::string out(parent);
    if (out != "/") out += '/';
    out += name;
    return out;
}

bool is_at_or_below(std::string_view path, std::string_view ancestor) noexcept {
    if (ancestor == "/") return !path.empty() && path.front() == '/';
    if (path.substr(0, ancestor.size()) != ancestor) return false;
    return path.size() == ancestor.size() || path[ancestor.size()] == '/';
}

}  // namespace vifkit::emu::xs
