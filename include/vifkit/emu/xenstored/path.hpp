// Xenstore node names: validation, relative-path resolution, ancestry.
// Rules as xenstored's is_valid_nodename(): absolute, characters
// [A-Za-z0-9-/_@], no trailing '/' (except "/"), no "//", bounded length.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "vifkit/platform/types.hpp"

namespace vifkit::emu::xs {

// Watch-only pseudo paths fired by domain introduction and release.
inline constexpr std::string_view introduce_domain_path = "@introduceDomain";
inline constexpr std::string_view release_domain_path = "@releaseDomain";

bool is_valid_path(std::string_view path) noexcept;
bool is_special_path(std::string_view path) noexcept;  // the two '@' paths above

// "/local/domain/<id>": the home of domain `id` and the base of its relative paths.
std::string domain_path(domid_t id);

// Resolves a client-supplied name: absolute names pass through, relative ones
// are taken below domain_path(self). nullopt if the result is not a valid
// node name (EINVAL to the client). Special '@' names only if allow_special.
std::optional<std::string> canonicalize(std::string_view name, domid_t self, bool allow_special);

// "/a/b" -> "/a"; "/a" -> "/"; "/" -> "/".
std::string parent_of(std::string_view path);
// Last component; "" for "/".
std::string_view basename_of(std::string_view path) noexcept;
// "/a" + "b" -> "/a/b"; "/" + "b" -> "/b".
std::string child_path(std::string_view parent, std::string_view name);
// True if `path` equals `ancestor` or lies below it ("/" is everyone's ancestor).
bool is_at_or_below(std::string_view path, std::string_view ancestor) noexcept;

}  // namespace vifkit::emu::xs
