#include "vifkit/emu/xenstored/tree.hpp"

#include <algorithm>
#include <cerrno>

#include "vifkit/emu/xenstored/path.hpp"

namespace vifkit::emu::xs {

namespace {

const perm_list dom0_only{perm{0, access_none}};

domid_t owner_of(const node& n) { return n.perms.empty() ? 0 : n.perms.front().id; }

}  // namespace

void merge_change(std::vector<change>& list, std::map<std::string, std::size_t>& index,
                  change ch) {
    auto [it, fresh] = index.emplace(ch.path, list.size());
    if (fresh) {
        list.push_back(std::move(ch));
        return;
    }
    change& kept = list[it->second];
    kept.exact = kept.exact && ch.exact;
    if (!kept.old_perms) kept.old_perms = kept.perms;
    kept.perms = std::move(ch.perms);
    kept.parent_perms = std::move(ch.parent_perms);
}

// ---- tree ----------------------------------------------------------------

tree::tree() {
    store("/", node{"", dom0_only, {"local", "tool"}, no_generation});
    store("/local", node{"", dom0_only, {"domain"}, no_generation});
    store("/local/domain", node{"", dom0_only, {}, no_generation});
    store("/tool", node{"", dom0_only, {"xenstored"}, no_generation});
    store("/tool/xenstored", node{"", dom0_only, {}, no_generation});
    // The '@' watch paths carry permissions too (who may watch them), kept as
    // nodes no directory lists, as current xenstored does.
    store(std::string(introduce_domain_path), node{"", dom0_only, {}, no_generation});
    store(std::string(release_domain_path), node{"", dom0_only, {}, no_generation});
}

const node* tree::find(const std::string& path) const {
    auto it = nodes_.find(path);
    return it == nodes_.end() ? nullptr : &it->second;
}

void tree::store(const std::string& path, node n) {
    n.generation = ++generation_;
    auto it = nodes_.find(path);
    if (it == nodes_.end()) {
        account(nullptr, &n);
        nodes_.emplace(path, std::move(n));
    } else {
        account(&it->second, &n);
        it->second = std::move(n);
    }
}

bool tree::modify(const std::string& path, const std::function<void(node&)>& fn) {
    auto it = nodes_.find(path);
    if (it == nodes_.end()) return false;
    account(&it->second, nullptr);
    fn(it->second);
    it->second.generation = ++generation_;
    account(nullptr, &it->second);
    return true;
}

void tree::erase(const std::string& path) {
    auto it = nodes_.find(path);
    if (it == nodes_.end()) return;
    account(&it->second, nullptr);
    nodes_.erase(it);
}

std::size_t tree::owned_by(domid_t d) const {
    auto it = owned_.find(d);
    return it == owned_.end() ? 0 : it->second;
}

void tree::account(const node* before, const node* after) {
    if (before) {
        auto it = owned_.find(owner_of(*before));
        if (it != owned_.end() && it->second > 0 && --it->second == 0) owned_.erase(it);
    }
    if (after) ++owned_[owner_of(*after)];
}

std::string tree::check() const {
    std::unordered_map<domid_t, std::size_t> owners;
    for (const auto& [path, n] : nodes_) {
        if (n.perms.empty()) return "no perms: " + path;
        ++owners[owner_of(n)];
        for (const auto& c : n.children)
            if (nodes_.count(child_path(path, c)) == 0) return "missing child: " + child_path(path, c);
        if (path == "/" || is_special_path(path)) continue;
        auto parent = nodes_.find(parent_of(path));
        if (parent == nodes_.end()) return "orphan: " + path;
        const auto& kids = parent->second.children;
        if (std::count(kids.begin(), kids.end(), basename_of(path)) != 1)
            return "not listed once by its parent: " + path;
    }
    if (owners != owned_) return "ownership counts out of step";
    return {};
}

// ---- transaction -----------------------------------------------------------

transaction::transaction(tree& t, std::uint32_t id, std::size_t max_accessed)
    : tree_(t), id_(id), max_accessed_(max_accessed) {}

const node* transaction::peek(const std::string& path) const {
    auto it = overlay_.find(path);
    if (it != overlay_.end()) return it->second ? &*it->second : nullptr;
    return tree_.find(path);
}

void transaction::record(const std::string& path) {
    if (overlay_.count(path) != 0 || seen_.count(path) != 0) return;
    if (max_accessed_ != 0 && seen_.size() >= max_accessed_) {
        // Unrecorded accesses would escape the conflict check: doom the commit.
        fail(ENOSPC);
        return;
    }
    const node* n = tree_.find(path);
    seen_.emplace(path, n ? n->generation : no_generation);
}

const node* transaction::get(const std::string& path) {
    record(path);
    return peek(path);
}

void transaction::adjust_owner(const node* before, const node* after) {
    if (before) --owned_delta_[owner_of(*before)];
    if (after) ++owned_delta_[owner_of(*after)];
}

void transaction::put(const std::string& path, node n) {
    record(path);
    adjust_owner(peek(path), &n);
    overlay_[path] = std::move(n);
}

bool transaction::update(const std::string& path, const std::function<void(node&)>& fn) {
    record(path);
    auto it = overlay_.find(path);
    if (it == overlay_.end()) {
        const node* base = tree_.find(path);
        if (base == nullptr) return false;
        it = overlay_.emplace(path, *base).first;
    }
    if (!it->second) return false;  // deleted in this transaction
    adjust_owner(&*it->second, nullptr);
    fn(*it->second);
    adjust_owner(nullptr, &*it->second);
    return true;
}

void transaction::erase(const std::string& path) {
    record(path);
    adjust_owner(peek(path), nullptr);
    overlay_[path] = std::nullopt;
}

long transaction::owned_delta(domid_t d) const {
    auto it = owned_delta_.find(d);
    return it == owned_delta_.end() ? 0 : it->second;
}

std::size_t transaction::owned_by(domid_t d) const {
    const long total = static_cast<long>(tree_.owned_by(d)) + owned_delta(d);
    return total < 0 ? 0 : static_cast<std::size_t>(total);
}

void transaction::queue(change c) { merge_change(events_, event_index_, std::move(c)); }

std::vector<change> transaction::take_events() {
    event_index_.clear();
    return std::move(events_);
}

int transaction::commit() {
    if (failed_ != 0) return failed_;
    for (const auto& [path, gen] : seen_) {
        const node* now = tree_.find(path);
        if ((now ? now->generation : no_generation) != gen) return EAGAIN;
    }
    for (auto& [path, n] : overlay_) {
        if (n) tree_.store(path, std::move(*n));
        else tree_.erase(path);
    }
    overlay_.clear();
    return 0;
}

}  // namespace vifkit::emu::xs
