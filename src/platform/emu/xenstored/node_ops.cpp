#include "node_ops.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>

#include "vifkit/emu/xenstored/path.hpp"
#include "vifkit/emu/xenstored/wire.hpp"

namespace vifkit::emu::xs::ops {

namespace {

// Walks up to the nearest existing ancestor (bounded by the path depth; "/"
// always exists) and hides `err` behind EACCES unless it grants part of `need`.
int errno_from_ancestors(env& e, std::string path, int err, unsigned need) {
    while (path != "/") {
        path = parent_of(path);
        if (const node* a = e.v.get(path))
            return (access_for(e.who, a->perms) & need) != 0 ? err : EACCES;
    }
    return EACCES;
}

perm_list parent_perms(env& e, const std::string& path) {
    if (path == "/" || is_special_path(path)) return {};
    const node* p = e.v.get(parent_of(path));
    return p ? p->perms : perm_list{};
}

void record_change(env& e, const std::string& path, const perm_list& perms, bool exact,
                   std::optional<perm_list> old_perms = std::nullopt) {
    e.changes.push_back(change{path, exact, perms, parent_perms(e, path), std::move(old_perms)});
}

// Quotas for an unprivileged caller creating `count` nodes, one holding `value`.
int check_create_quota(env& e, std::size_t count, std::string_view value) {
    if (e.who.privileged) return 0;
    if (value.size() > e.lim.value_max) return ENOSPC;
    if (e.v.owned_by(e.who.id) + count > e.lim.nodes_per_domain) return ENOSPC;
    return 0;
}

// Creates `path` and any missing ancestors, each inheriting its parent's
// permissions; an unprivileged creator becomes the owner (xenstored construct_node).
int create_node(env& e, const std::string& path, std::string_view value) {
    std::vector<std::string> missing{path};
    std::string top = parent_of(path);
    const node* existing = e.v.get(top);
    while (existing == nullptr) {  // bounded: one step per path component
        if (top == "/") return EINVAL;  // no root: refuse rather than loop
        missing.push_back(top);
        top = parent_of(top);
        existing = e.v.get(top);
    }
    if (int err = check_create_quota(e, missing.size(), value)) return err;

    // The existing ancestor gains one child name, in place (a long child list
    // is never copied); each new node is stored once, already naming its one
    // child, and inherits its parent's permissions.
    perm_list perms = existing->perms;
    e.v.update(top, [&](node& p) { p.children.emplace_back(basename_of(missing.back())); });
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        node n;
        n.perms = perms;
        if (!e.who.privileged) n.perms.front().id = e.who.id;
        if (const auto below = std::next(it); below != missing.rend()) n.children.emplace_back(basename_of(*below));
        else n.value = value;
        perms = n.perms;
        e.v.put(*it, std::move(n));
    }
    record_change(e, path, perms, false);
    return 0;
}

// Removes `root` and everything below it; descendants fire exact events.
void remove_subtree(env& e, const std::string& root) {
    std::vector<std::string> order{root};
    for (std::size_t i = 0; i < order.size(); ++i) {  // bounded by the nodes in the store
        const node* n = e.v.get(order[i]);
        if (n == nullptr) continue;
        for (const auto& c : n->children) order.push_back(child_path(order[i], c));
    }
    // Deepest first, so each node's parent still exists when its event is built.
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        const node* n = e.v.get(*it);
        if (n == nullptr) continue;
        if (*it != root) record_change(e, *it, n->perms, true);
        e.v.erase(*it);
    }
}

std::optional<std::string> resolve(env& e, std::string_view name, bool allow_special = false) {
    return canonicalize(name, e.who.id, allow_special);
}

std::optional<std::size_t> parse_offset(std::string_view s) {
    std::size_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

std::string children_blob(const node& n) {
    std::string out;
    for (const auto& c : n.children) {
        out += c;
        out += '\0';
    }
    return out;
}

}  // namespace

const node* lookup(env& e, const std::string& path, unsigned need, int& err) {
    const node* n = e.v.get(path);
    if (n != nullptr) {
        if ((access_for(e.who, n->perms) & need) == need) return n;
        err = EACCES;
        return nullptr;
    }
    err = errno_from_ancestors(e, path, ENOENT, need);
    return nullptr;
}

int read(env& e, std::string_view name, std::string& reply) {
    auto path = resolve(e, name);
    if (!path) return EINVAL;
    int err = 0;
    const node* n = lookup(e, *path, access_read, err);
    if (n == nullptr) return err;
    reply = n->value;
    return 0;
}

int write(env& e, std::string_view name, std::string_view value) {
    auto path = resolve(e, name);
    if (!path) return EINVAL;
    int err = 0;
    const node* n = lookup(e, *path, access_write, err);
    if (n == nullptr) return err == ENOENT ? create_node(e, *path, value) : err;
    if (!e.who.privileged && value.size() > e.lim.value_max) return ENOSPC;
    const perm_list perms = n->perms;
    e.v.update(*path, [&](node& m) { m.value = value; });
    record_change(e, *path, perms, false);
    return 0;
}

int mkdir(env& e, std::string_view name) {
    auto path = resolve(e, name);
    if (!path) return EINVAL;
    int err = 0;
    if (lookup(e, *path, access_write, err) != nullptr) return 0;  // exists: fine, no event
    return err == ENOENT ? create_node(e, *path, {}) : err;
}

int rm(env& e, std::string_view name) {
    auto path = resolve(e, name);
    if (!path) return EINVAL;
    int err = 0;
    const node* n = lookup(e, *path, access_write, err);
    if (n == nullptr) {
        if (err != ENOENT) return err;
        // Removing what is not there succeeds if the parent exists (xenstored do_rm).
        return e.v.get(parent_of(*path)) != nullptr ? 0 : ENOENT;
    }
    if (*path == "/") return EINVAL;
    const std::string parent_path = parent_of(*path);
    const node* parent = e.v.get(parent_path);
    if (parent == nullptr) return EINVAL;  // orphan: cannot happen in a consistent tree
    record_change(e, *path, n->perms, false);  // before removal, while perms are visible
    remove_subtree(e, *path);
    const std::string_view child = basename_of(*path);
    e.v.update(parent_path, [&](node& p) {
        p.children.erase(std::remove(p.children.begin(), p.children.end(), child), p.children.end());
    });
    return 0;
}

int directory(env& e, std::string_view name, std::string& reply) {
    auto path = resolve(e, name);
    if (!path) return EINVAL;
    int err = 0;
    const node* n = lookup(e, *path, access_read, err);
    if (n == nullptr) return err;
    reply = children_blob(*n);
    return 0;
}

// Reply: "<generation>\0" then whole child names from byte `offset` of the
// child list; a final extra "\0" marks the end (xenstored send_directory_part).
int directory_part(env& e, std::string_view name, std::string_view offset, std::string& reply) {
    const auto off = parse_offset(offset);
    if (!off) return EINVAL;
    auto path = resolve(e, name);
    if (!path) return EINVAL;
    int err = 0;
    const node* n = lookup(e, *path, access_read, err);
    if (n == nullptr) return err;
    const std::string blob = children_blob(*n);
    reply = std::to_string(n->generation);
    reply += '\0';
    if (*off >= blob.size()) {
        reply += '\0';
        return 0;
    }
    const std::size_t room = payload_max - reply.size() - 1;
    std::size_t len = 0;
    while (*off + len < blob.size()) {  // bounded by the child list
        const std::size_t next = blob.find('\0', *off + len) + 1 - *off;
        if (next > room) break;
        len = next;
    }
    reply.append(blob, *off, len);
    if (*off + len == blob.size()) reply += '\0';
    return 0;
}

int get_perms(env& e, std::string_view name, std::string& reply) {
    auto path = resolve(e, name, true);
    if (!path) return EINVAL;
    int err = 0;
    const node* n = lookup(e, *path, access_read, err);
    if (n == nullptr) return err;
    for (const auto& p : n->perms) {
        reply += format_perm(p);
        reply += '\0';
    }
    return 0;
}

int set_perms(env& e, std::string_view name, std::span<const std::string_view> strs) {
    if (strs.empty()) return EINVAL;
    if (!e.who.privileged && strs.size() > e.lim.perms_per_node) return ENOSPC;
    perm_list perms;
    for (auto s : strs) {
        auto p = parse_perm(s);
        if (!p) return EINVAL;
        perms.push_back(*p);
    }
    auto path = resolve(e, name, true);
    if (!path) return EINVAL;
    int err = 0;
    const node* n = lookup(e, *path, access_write | access_owner, err);
    if (n == nullptr) return err;
    // Unprivileged owners may share their node but not give it away.
    if (!e.who.privileged && perms.front().id != n->perms.front().id) return EPERM;
    perm_list old = n->perms;
    e.v.update(*path, [&](node& m) { m.perms = perms; });
    if (!is_special_path(*path)) record_change(e, *path, perms, false, std::move(old));
    return 0;
}

}  // namespace vifkit::emu::xs::ops
