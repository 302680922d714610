// The node store, and the two ways a request sees it: live, or through a
// transaction's private overlay.
//
// Every modification stamps the node with a fresh, globally increasing
// generation. A transaction remembers the generation of each node the first
// time it touches it (read, list, write or delete; absent nodes count as
// generation 0) and its commit fails with EAGAIN if any of them differs at
// commit time. Reads inside a transaction therefore always describe the state
// the commit lands on, which is how xenstored's transactions behave.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "vifkit/emu/xenstored/perms.hpp"

namespace vifkit::emu::xs {

inline constexpr std::uint64_t no_generation = 0;

struct node {
    std::string value;                  // binary-safe
    perm_list perms;                    // never empty
    std::vector<std::string> children;  // names, in creation order (as xenstored lists them)
    std::uint64_t generation = no_generation;
};

// A modification that may fire watches. Permissions are captured when the
// change happens, because a removed node cannot be asked afterwards.
struct change {
    std::string path;
    bool exact = false;  // only watches on exactly `path` (descendants of a removed node)
    perm_list perms;         // the node's perms (before removal, for rm)
    perm_list parent_perms;  // a watcher may also see it through the parent
    std::optional<perm_list> old_perms;  // set_perms: losing access still notifies
};

// Appends `ch` to `list`, or folds it into the entry for the same path (found
// through `index`): a subtree event covers an exact one, the latest perms decide
// visibility and earlier ones count as old_perms. Keeps one entry per path, so a
// peer rewriting one node in a loop cannot grow the list.
void merge_change(std::vector<change>& list, std::map<std::string, std::size_t>& index,
                  change ch);

class tree {
public:
    // Starts with "/", "/local", "/local/domain", "/tool", "/tool/xenstored"
    // and the special "@introduceDomain"/"@releaseDomain" entries, all owned
    // by dom0 with no access for others.
    tree();

    [[nodiscard]] const node* find(const std::string& path) const;
    // Inserts or replaces `path`, stamping a fresh generation.
    void store(const std::string& path, node n);
    // Changes the node at `path` in place (no copy of its value or child list)
    // and stamps a fresh generation. False if there is no such node.
    bool modify(const std::string& path, const std::function<void(node&)>& fn);
    void erase(const std::string& path);

    [[nodiscard]] std::size_t owned_by(domid_t d) const;  // nodes whose perms[0] names d
    [[nodiscard]] std::size_t size() const { return nodes_.size(); }

    // Structural self-check for tests and fuzzers: every listed child exists,
    // every node is listed once by its parent, perms are never empty and the
    // ownership counts match. "" if consistent, else the first problem found.
    [[nodiscard]] std::string check() const;

private:
    void account(const node* before, const node* after);

    std::unordered_map<std::string, node> nodes_;
    std::unordered_map<domid_t, std::size_t> owned_;
    std::uint64_t generation_ = no_generation;
};

// The store as one request sees it.
class view {
public:
    virtual ~view() = default;
    // The node at `path` or nullptr. Counts as an access for conflict checks.
    virtual const node* get(const std::string& path) = 0;
    virtual void put(const std::string& path, node n) = 0;
    // Edits an existing node (a value, a child list entry, perms) without the
    // caller copying it. Counts as an access. False if there is no such node.
    virtual bool update(const std::string& path, const std::function<void(node&)>& fn) = 0;
    virtual void erase(const std::string& path) = 0;
    // Nodes owned by `d`, including this view's pending changes (quota checks).
    [[nodiscard]] virtual std::size_t owned_by(domid_t d) const = 0;
};

class live_view final : public view {
public:
    explicit live_view(tree& t) : tree_(t) {}
    const node* get(const std::string& path) override { return tree_.find(path); }
    void put(const std::string& path, node n) override { tree_.store(path, std::move(n)); }
    bool update(const std::string& path, const std::function<void(node&)>& fn) override {
        return tree_.modify(path, fn);
    }
    void erase(const std::string& path) override { tree_.erase(path); }
    [[nodiscard]] std::size_t owned_by(domid_t d) const override { return tree_.owned_by(d); }

private:
    tree& tree_;
};

class transaction final : public view {
public:
    // `max_accessed` bounds the nodes one transaction may touch (0 = unbounded);
    // beyond it the transaction is doomed to fail with ENOSPC at commit.
    transaction(tree& t, std::uint32_t id, std::size_t max_accessed);

    [[nodiscard]] std::uint32_t id() const { return id_; }

    const node* get(const std::string& path) override;
    void put(const std::string& path, node n) override;
    // Copies the node into the overlay on its first change in this transaction only.
    bool update(const std::string& path, const std::function<void(node&)>& fn) override;
    void erase(const std::string& path) override;
    [[nodiscard]] std::size_t owned_by(domid_t d) const override;

    // Net nodes gained by `d` if this commits.
    [[nodiscard]] long owned_delta(domid_t d) const;
    // Watch events, held back until commit.
    void queue(change c);
    [[nodiscard]] std::vector<change> take_events();
    // Makes the commit fail with `err` (a failed step left the overlay unusable).
    void fail(int err) { if (failed_ == 0) failed_ = err; }

    // 0 on success, EAGAIN if any node touched changed since, or the fail() errno.
    // Applies the overlay to the tree only on success.
    [[nodiscard]] int commit();

private:
    const node* peek(const std::string& path) const;
    void record(const std::string& path);
    void adjust_owner(const node* before, const node* after);

    tree& tree_;
    std::uint32_t id_;
    std::size_t max_accessed_;
    int failed_ = 0;
    std::unordered_map<std::string, std::optional<node>> overlay_;  // nullopt = deleted
    std::unordered_map<std::string, std::uint64_t> seen_;            // generation at first touch
    std::unordered_map<domid_t, long> owned_delta_;
    std::vector<change> events_;
    std::map<std::string, std::size_t> event_index_;
};

}  // namespace vifkit::emu::xs
