#include "vifkit/emu/xenstored/engine.hpp"

#include <cerrno>
#include <charconv>
#include <optional>

#include "node_ops.hpp"
#include "vifkit/emu/xenstored/path.hpp"

namespace vifkit::emu::xs {

namespace {

bool privileged_only(msg_type t) {
    switch (t) {
    case msg_type::control:
    case msg_type::introduce:
    case msg_type::release:
    case msg_type::is_domain_introduced:
    case msg_type::resume:
    case msg_type::set_target: return true;
    default: return false;
    }
}

std::optional<domid_t> parse_domid(std::string_view s) {
    unsigned v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || v > 0xFFFF)
        return std::nullopt;
    return static_cast<domid_t>(v);
}

std::string with_nul(std::string s) {
    s += '\0';
    return s;
}

const std::string ok_reply("OK", 3);  // "OK\0", xenstored send_ack

}  // namespace

// Operations without a result answer "OK" on success.
int engine::acked(int err, outcome& out) {
    if (err == 0) out.reply = ok_reply;
    return err;
}

engine::engine(send_fn send, limits lim) : send_(std::move(send)), limits_(lim) {}

engine::~engine() = default;

conn_id engine::connect(caller who) {
    const conn_id id = next_conn_++;
    conns_[id].who = who;
    return id;
}

void engine::disconnect(conn_id c) { conns_.erase(c); }

void engine::set_caller(conn_id c, caller who) {
    auto it = conns_.find(c);
    if (it != conns_.end()) it->second.who = who;
}

std::size_t engine::watch_count(conn_id c) const {
    auto it = conns_.find(c);
    return it == conns_.end() ? 0 : it->second.watches.size();
}

std::size_t engine::transaction_count(conn_id c) const {
    auto it = conns_.find(c);
    return it == conns_.end() ? 0 : it->second.txs.size();
}

void engine::handle_frame(conn_id c, const header& hdr, std::span<const std::uint8_t> payload) {
    const decode_result d = decode(hdr, payload);
    if (d.error == 0) {
        handle(c, d.req);
        return;
    }
    ++counters_.malformed;
    if (log_limit_.allow())
        spdlog::warn("xenstored: conn {}: undecodable request type {} len {}: {}", c, hdr.type,
                     hdr.len, error_name(d.error));
    reply_error(c, d.req, d.error);
}

void engine::handle(conn_id c, const request& req) {
    auto it = conns_.find(c);
    if (it == conns_.end()) return;
    connection& conn = it->second;
    ++counters_.requests;
    if (privileged_only(req.type) && !conn.who.privileged) return reply_error(c, req, EACCES);

    // WATCH/UNWATCH ignore the transaction id, as in xenstored.
    transaction* tx = nullptr;
    if (req.tx_id != 0 && req.type != msg_type::watch && req.type != msg_type::unwatch) {
        auto t = conn.txs.find(req.tx_id);
        if (t == conn.txs.end()) return reply_error(c, req, ENOENT);
        tx = t->second.get();
    }
    outcome out;
    const int err = dispatch(conn, tx, req, out);
    if (err != 0) return reply_error(c, req, err);
    if (out.reply.size() > payload_max) return reply_error(c, req, E2BIG);
    // TRANSACTION_END and RESET_WATCHES may have destroyed the transaction.
    if (tx != nullptr) {
        auto t = conn.txs.find(req.tx_id);
        tx = t == conn.txs.end() ? nullptr : t->second.get();
    }
    // Like xenstored, watch events caused by a change go out before its ack.
    if (tx != nullptr) {
        for (auto& ch : out.changes) tx->queue(std::move(ch));
    } else {
        fire_all(std::move(out.changes));
    }
    send_(c, req.type, req.req_id, req.tx_id, out.reply);
    if (!out.initial_event.empty()) {
        ++counters_.watch_events;
        send_(c, msg_type::watch_event, 0, 0, out.initial_event);
    }
}

int engine::dispatch(connection& conn, transaction* tx, const request& req, outcome& out) {
    switch (req.type) {
    case msg_type::watch: return op_watch(conn, req, out);
    case msg_type::unwatch: return acked(op_unwatch(conn, req), out);
    case msg_type::reset_watches:
        conn.watches.clear();
        conn.txs.clear();
        return acked(0, out);
    case msg_type::transaction_start: return op_transaction_start(conn, req, out);
    case msg_type::transaction_end: return acked(op_transaction_end(conn, tx, req), out);
    case msg_type::get_domain_path:
    case msg_type::introduce:
    case msg_type::release:
    case msg_type::is_domain_introduced: return op_domain(conn, req, out);
    case msg_type::control:
    case msg_type::resume:
    case msg_type::set_target: return ENOSYS;
    default: return node_op(conn, tx, req, out);
    }
}

int engine::node_op(connection& conn, transaction* tx, const request& req, outcome& out) {
    view& v = tx != nullptr ? static_cast<view&>(*tx) : live_;
    ops::env e{conn.who, v, limits_, out.changes};
    const auto& a = req.args;
    int err = EINVAL;
    switch (req.type) {
    case msg_type::read: return ops::read(e, a[0], out.reply);
    case msg_type::directory: return ops::directory(e, a[0], out.reply);
    case msg_type::directory_part: return ops::directory_part(e, a[0], a[1], out.reply);
    case msg_type::get_perms: return ops::get_perms(e, a[0], out.reply);
    case msg_type::write: err = ops::write(e, a[0], req.data); break;
    case msg_type::mkdir: err = ops::mkdir(e, a[0]); break;
    case msg_type::rm: err = ops::rm(e, a[0]); break;
    case msg_type::set_perms:
        err = ops::set_perms(e, a[0], std::span(a).subspan(1));
        break;
    default: return ENOSYS;
    }
    return acked(err, out);
}

int engine::op_watch(connection& conn, const request& req, outcome& out) {
    const std::string_view name = req.args[0];
    const std::string_view token = req.args[1];
    auto path = canonicalize(name, conn.who.id, true);
    if (!path) return EINVAL;
    for (const auto& w : conn.watches)
        if (w.path == *path && w.token == token) return EEXIST;
    if (conn.watches.size() >= limits_.watches_per_connection) return E2BIG;
    const bool relative = name.front() != '/' && name.front() != '@';
    const std::size_t strip = relative ? domain_path(conn.who.id).size() + 1 : 0;
    conn.watches.push_back(watch{*path, std::string(token), strip});
    out.reply = ok_reply;
    // xenstored fires every new watch once, so clients need no separate initial read.
    out.initial_event = with_nul(std::string(name)) + with_nul(std::string(token));
    return 0;
}

int engine::op_unwatch(connection& conn, const request& req) {
    auto path = canonicalize(req.args[0], conn.who.id, true);
    if (!path) return EINVAL;
    for (auto it = conn.watches.begin(); it != conn.watches.end(); ++it) {
        if (it->path == *path && it->token == req.args[1]) {
            conn.watches.erase(it);
            return 0;
        }
    }
    return ENOENT;
}

int engine::op_transaction_start(connection& conn, const request& req, outcome& out) {
    if (req.tx_id != 0) return EBUSY;  // no nesting
    if (conn.txs.size() >= limits_.transactions_per_connection) return ENOSPC;
    // Bounded: at most transactions_per_connection ids are taken.
    while (conn.next_tx == 0 || conn.txs.count(conn.next_tx) != 0) ++conn.next_tx;
    const std::uint32_t id = conn.next_tx++;
    const std::size_t max_nodes = conn.who.privileged ? 0 : limits_.transaction_nodes;
    conn.txs.emplace(id, std::make_unique<transaction>(tree_, id, max_nodes));
    out.reply = with_nul(std::to_string(id));
    return 0;
}

int engine::op_transaction_end(connection& conn, transaction* tx, const request& req) {
    const std::string_view arg = req.args[0];
    if (arg != "T" && arg != "F") return EINVAL;
    if (tx == nullptr) return ENOENT;
    // The transaction ends here whatever the outcome; EAGAIN means "start over".
    auto node = conn.txs.extract(tx->id());
    std::unique_ptr<transaction> owned = std::move(node.mapped());
    if (arg == "F") return 0;
    const long gained = owned->owned_delta(conn.who.id);
    if (!conn.who.privileged && gained > 0 &&
        tree_.owned_by(conn.who.id) + static_cast<std::size_t>(gained) > limits_.nodes_per_domain)
        return ENOSPC;
    if (int err = owned->commit()) {
        if (err == EAGAIN) ++counters_.conflicts;
        return err;
    }
    ++counters_.commits;
    fire_all(owned->take_events());
    return 0;
}

int engine::op_domain(connection& conn, const request& req, outcome& out) {
    (void)conn;
    const auto d = parse_domid(req.args[0]);
    if (!d) return EINVAL;
    switch (req.type) {
    case msg_type::get_domain_path: out.reply = with_nul(domain_path(*d)); return 0;
    case msg_type::is_domain_introduced:
        out.reply = with_nul(is_introduced(*d) ? "T" : "F");
        return 0;
    case msg_type::introduce: introduce_domain(*d); return acked(0, out);
    case msg_type::release:
        if (!is_introduced(*d) || *d == 0) return ENOENT;
        release_domain(*d);
        return acked(0, out);
    default: return ENOSYS;
    }
}

void engine::introduce_domain(domid_t d) {
    std::vector<change> changes;
    const caller toolstack = caller::dom0();
    ops::env e{toolstack, live_, limits_, changes};
    const std::string home = domain_path(d);
    if (tree_.find(home) == nullptr && ops::mkdir(e, home) == 0) {
        node n = *tree_.find(home);
        n.perms = perm_list{perm{d, access_none}};
        tree_.store(home, std::move(n));
        changes.back().perms = perm_list{perm{d, access_none}};
    }
    introduced_.insert(d);
    fire_all(std::move(changes));
    fire(change{std::string(introduce_domain_path), false,
                tree_.find(std::string(introduce_domain_path))->perms, {}, std::nullopt});
}

void engine::release_domain(domid_t d) {
    if (d == 0) return;  // dom0 hosts the store; it is never released
    std::vector<change> changes;
    const caller toolstack = caller::dom0();
    ops::env e{toolstack, live_, limits_, changes};
    (void)ops::rm(e, domain_path(d));  // absent is fine
    introduced_.erase(d);
    fire_all(std::move(changes));
    fire(change{std::string(release_domain_path), false,
                tree_.find(std::string(release_domain_path))->perms, {}, std::nullopt});
}

bool engine::is_introduced(domid_t d) const { return d == 0 || introduced_.count(d) != 0; }

namespace {

// xenstored watch_permitted(): the watcher must be able to read the node or its
// parent, before or (for set_perms) after the change.
bool watch_permitted(const caller& who, const change& ch) {
    if (ch.old_perms && (access_for(who, *ch.old_perms) & access_read)) return true;
    if (access_for(who, ch.perms) & access_read) return true;
    return !ch.parent_perms.empty() && (access_for(who, ch.parent_perms) & access_read);
}

}  // namespace

void engine::fire(const change& ch) {
    for (auto& [id, conn] : conns_) {
        int permitted = -1;  // unknown until a watch matches
        for (const auto& w : conn.watches) {
            const bool match = ch.exact ? w.path == ch.path : is_at_or_below(ch.path, w.path);
            if (!match) continue;
            if (permitted < 0) permitted = watch_permitted(conn.who, ch) ? 1 : 0;
            if (permitted == 0) break;
            send_event(id, std::string_view(ch.path).substr(w.strip), w.token);
        }
    }
}

void engine::fire_all(std::vector<change> changes) {
    // One event per node, as xenstored's transaction commit does.
    std::map<std::string, std::size_t> index;
    std::vector<change> unique;
    for (auto& ch : changes) merge_change(unique, index, std::move(ch));
    for (const auto& ch : unique) fire(ch);
}

void engine::send_event(conn_id c, std::string_view path, std::string_view token) {
    std::string payload;
    payload.reserve(path.size() + token.size() + 2);
    payload.append(path).append(1, '\0').append(token).append(1, '\0');
    if (payload.size() > payload_max) return;  // xenstored drops over-long events too
    ++counters_.watch_events;
    send_(c, msg_type::watch_event, 0, 0, payload);
}

void engine::count_error(int err) {
    ++counters_.error_replies;
    if (err == EACCES || err == EPERM) ++counters_.denied;
    if (err == ENOSPC || err == E2BIG) ++counters_.quota_refusals;
}

void engine::reply_error(conn_id c, const request& req, int err) {
    count_error(err);
    send_(c, msg_type::error, req.req_id, req.tx_id, with_nul(error_name(err)));
}

}  // namespace vifkit::emu::xs
