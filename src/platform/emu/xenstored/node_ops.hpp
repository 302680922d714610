// The node operations (READ, WRITE, MKDIR, RM, DIRECTORY[_PART], GET/SET_PERMS)
// against a view, with xenstored's permission and errno rules. Internal to
// vifkit_xenstored: the engine decides which view and fires the changes.
//
// Every operation validates and checks quotas before it modifies anything, so
// a failed request leaves the view untouched.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vifkit/emu/xenstored/limits.hpp"
#include "vifkit/emu/xenstored/perms.hpp"
#include "vifkit/emu/xenstored/tree.hpp"

namespace vifkit::emu::xs::ops {

struct env {
    const caller& who;
    view& v;
    const limits& lim;
    std::vector<change>& changes;  // appended on success
};

// Each returns 0 or an errno for the XS_ERROR reply.
int read(env& e, std::string_view name, std::string& reply);
int write(env& e, std::string_view name, std::string_view value);
int mkdir(env& e, std::string_view name);
int rm(env& e, std::string_view name);
int directory(env& e, std::string_view name, std::string& reply);
int directory_part(env& e, std::string_view name, std::string_view offset, std::string& reply);
int get_perms(env& e, std::string_view name, std::string& reply);
int set_perms(env& e, std::string_view name, std::span<const std::string_view> perms);

// The node at `path` if `who` holds all of `need` on it. Otherwise nullptr and
// `err`: EACCES, or ENOENT only if the nearest existing ancestor grants some
// of `need` (so absence does not leak through unreadable parents).
const node* lookup(env& e, const std::string& path, unsigned need, int& err);

}  // namespace vifkit::emu::xs::ops
