#include "vifkit/emu/broker.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "broker_evtchn.hpp"
#include "broker_registry.hpp"
#include "fd.hpp"
#include "protocol.hpp"
#include "vifkit/util/log.hpp"

namespace vifkit::emu {

using namespace detail;

namespace {

struct client {
    unique_fd fd;
    pid_t pid = 0;
    std::optional<domid_t> dom;
};

sockaddr_un make_addr(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path))
        throw std::system_error(ENAMETOOLONG, std::generic_category(), "broker: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

// Replace a stale socket file, refuse to steal a live broker's.
void clear_stale(const sockaddr_un& addr) {
    struct stat st{};
    if (::stat(addr.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode)) return;
    unique_fd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0)
        throw std::system_error(EADDRINUSE, std::generic_category(), "broker: socket in use");
    ::unlink(addr.sun_path);
}

unique_fd listen_on(const std::string& path) {
    const sockaddr_un addr = make_addr(path);
    clear_stale(addr);
    unique_fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s) throw std::system_error(errno, std::generic_category(), "broker: socket");
    if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0 ||
        ::listen(s.get(), 64) < 0)
        throw std::system_error(errno, std::generic_category(), "broker: bind " + path);
    return s;
}

template <class T>
T decode(const std::byte* buf) {
    T m;
    std::memcpy(&m, buf, sizeof(T));
    return m;
}

}  // namespace

struct broker::state {
    state(util::event_loop& l, std::string p, hooks h, limits lim)
        : loop(l), path(std::move(p)), hk(std::move(h)), reg(lim), ev(lim.max_ports),
          max_clients(lim.max_domains * 2 + 8) {}

    util::event_loop& loop;
    std::string path;
    hooks hk;
    registry reg;
    evtchn_switch ev;
    std::size_t max_clients;
    unique_fd listener;
    std::unordered_map<int, std::unique_ptr<client>> clients;
    util::rate_limited log_limit;

    void on_accept();
    void on_readable(int fd);
    void disconnect(int fd, const char* why);
    bool dispatch(client& c, const std::byte* buf, std::size_t n, std::vector<unique_fd>& fds);
    bool on_register(client& c, const register_req& m, std::vector<unique_fd>& fds);
    bool on_peer(client& c, const peer_req& m);
    bool on_evtchn_alloc(client& c, const evtchn_alloc_req& m);
    bool on_evtchn_bind(client& c, const evtchn_bind_req& m);
    bool on_evtchn_close(client& c, const evtchn_close_req& m);
    bool evtchn_reply(client& c, const msg_header& h, const evtchn_switch::result& r);
    void call_hook(const std::function<void(domid_t)>& f, domid_t id);
};

void broker::state::on_accept() {
    // Bounded: one pass drains at most the listen backlog.
    for (int i = 0; i < 64; ++i) {
        unique_fd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) return;
        ucred cred{};
        socklen_t len = sizeof(cred);
        if (clients.size() >= max_clients ||
            ::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
            continue;  // closes it
        auto c = std::make_unique<client>();
        c->pid = cred.pid;
        const int raw = fd.get();
        c->fd = std::move(fd);
        clients.emplace(raw, std::move(c));
        loop.add(raw, [this, raw] { on_readable(raw); });
    }
}

void broker::state::on_readable(int fd) {
    auto it = clients.find(fd);
    if (it == clients.end()) return;
    std::array<std::byte, max_msg_size> buf;
    std::vector<unique_fd> fds;
    bool trunc = false;
    const ssize_t n = recv_msg(fd, buf.data(), buf.size(), fds, trunc, MSG_DONTWAIT);
    if (n == -EAGAIN) return;
    if (n <= 0) return disconnect(fd, nullptr);
    if (trunc) return disconnect(fd, "oversized message");
    if (!dispatch(*it->second, buf.data(), static_cast<std::size_t>(n), fds))
        disconnect(fd, "malformed message");
}

void broker::state::disconnect(int fd, const char* why) {
    auto it = clients.find(fd);
    if (it == clients.end()) return;
    std::unique_ptr<client> c = std::move(it->second);
    clients.erase(it);
    loop.remove(fd);
    if (why != nullptr && log_limit.allow())
        spdlog::warn("emu broker: dropping client pid {}: {}", c->pid, why);
    if (!c->dom) return;
    ev.close_all(*c->dom);
    reg.remove(*c->dom);
    call_hook(hk.on_domain_gone, *c->dom);
}

void broker::state::call_hook(const std::function<void(domid_t)>& f, domid_t id) {
    if (!f) return;
    try {
        f(id);
    } catch (const std::exception& e) {
        spdlog::error("emu broker: hook for domain {} failed: {}", id, e.what());
    }
}

bool broker::state::dispatch(client& c, const std::byte* buf, std::size_t n,
                             std::vector<unique_fd>& fds) {
    if (n < sizeof(msg_header)) return false;
    const auto h = decode<msg_header>(buf);
    // Only a registration may carry an fd, and nothing else before it.
    if (h.type == msg_type::register_req)
        return n == sizeof(register_req) && fds.size() == 1 && !c.dom &&
               on_register(c, decode<register_req>(buf), fds);
    if (!c.dom || !fds.empty()) return false;
    switch (h.type) {
    case msg_type::peer_req:
        return n == sizeof(peer_req) && on_peer(c, decode<peer_req>(buf));
    case msg_type::evtchn_alloc_req:
        return n == sizeof(evtchn_alloc_req) && on_evtchn_alloc(c, decode<evtchn_alloc_req>(buf));
    case msg_type::evtchn_bind_req:
        return n == sizeof(evtchn_bind_req) && on_evtchn_bind(c, decode<evtchn_bind_req>(buf));
    case msg_type::evtchn_close_req:
        return n == sizeof(evtchn_close_req) && on_evtchn_close(c, decode<evtchn_close_req>(buf));
    default:
        return false;
    }
}

bool broker::state::on_register(client& c, const register_req& m, std::vector<unique_fd>& fds) {
    register_rsp rsp{};
    rsp.h = {msg_type::register_rsp, m.h.seq};
    registration r;
    r.want = m.want_domid;
    r.pid = m.pid;
    r.mem_pages = m.mem_pages;
    r.entries = m.grant_entries;
    r.base = m.base;
    r.memfd = std::move(fds[0]);
    domid_t id = 0;
    // The pid is used for process_vm_* by every mapper: it must be the sender's own.
    rsp.err = m.pid != c.pid ? EPERM : reg.add(std::move(r), id);
    if (rsp.err != 0) return send_struct(c.fd.get(), rsp, {}, MSG_DONTWAIT) == 0;
    c.dom = id;
    rsp.domid = id;
    rsp.generation = reg.find(id)->generation;
    // Announce before replying: once the domain knows its id, it is introduced.
    call_hook(hk.on_domain_up, id);
    const int out[] = {reg.find(id)->table_fd.get(), reg.directory_fd()};
    return send_struct(c.fd.get(), rsp, out, MSG_DONTWAIT) == 0;
}

bool broker::state::on_peer(client& c, const peer_req& m) {
    peer_rsp rsp{};
    rsp.h = {msg_type::peer_rsp, m.h.seq};
    const domain_rec* d = m.domid < directory_slots ? reg.find(static_cast<domid_t>(m.domid)) : nullptr;
    if (d == nullptr) {
        rsp.err = ESRCH;
        return send_struct(c.fd.get(), rsp, {}, MSG_DONTWAIT) == 0;
    }
    rsp.generation = d->generation;
    rsp.pid = d->pid;
    rsp.has_pidfd = d->pidfd ? 1 : 0;
    rsp.mem_pages = d->mem_pages;
    rsp.grant_entries = d->entries;
    rsp.base = d->base;
    const int out[] = {d->mem_fd.get(), d->table_fd.get(), d->active_fd.get(), d->pidfd.get()};
    const std::span<const int> fds(out, d->pidfd ? 4 : 3);
    return send_struct(c.fd.get(), rsp, fds, MSG_DONTWAIT) == 0;
}

bool broker::state::evtchn_reply(client& c, const msg_header& h, const evtchn_switch::result& r) {
    evtchn_rsp rsp{};
    rsp.h = {msg_type::evtchn_rsp, h.seq};
    rsp.err = r.err;
    rsp.port = r.port;
    const int out[] = {r.own, r.target};
    return send_struct(c.fd.get(), rsp, r.err == 0 ? std::span<const int>(out) : std::span<const int>(),
                       MSG_DONTWAIT) == 0;
}

bool broker::state::on_evtchn_alloc(client& c, const evtchn_alloc_req& m) {
    evtchn_switch::result r{EINVAL};
    if (m.remote < directory_slots || m.remote == domid_self)
        r = ev.alloc_unbound(*c.dom, static_cast<domid_t>(m.remote));
    return evtchn_reply(c, m.h, r);
}

bool broker::state::on_evtchn_bind(client& c, const evtchn_bind_req& m) {
    evtchn_switch::result r{ESRCH};
    const bool self = m.remote == domid_self;
    if (self || (m.remote < directory_slots && reg.find(static_cast<domid_t>(m.remote)) != nullptr))
        r = ev.bind(*c.dom, static_cast<domid_t>(m.remote), m.remote_port);
    return evtchn_reply(c, m.h, r);
}

bool broker::state::on_evtchn_close(client& c, const evtchn_close_req& m) {
    status_rsp rsp{};
    rsp.h = {msg_type::status_rsp, m.h.seq};
    rsp.err = ev.close(*c.dom, m.port);
    return send_struct(c.fd.get(), rsp, {}, MSG_DONTWAIT) == 0;
}

broker::broker(util::event_loop& loop, std::string socket_path, hooks h)
    : broker(loop, std::move(socket_path), std::move(h), limits{}) {}

broker::broker(util::event_loop& loop, std::string socket_path, hooks h, limits l)
    : s_(std::make_unique<state>(loop, std::move(socket_path), std::move(h), l)) {
    s_->listener = listen_on(s_->path);
    state* s = s_.get();
    loop.add(s->listener.get(), [s] { s->on_accept(); });
}

broker::~broker() {
    for (auto& [fd, c] : s_->clients) s_->loop.remove(fd);
    s_->loop.remove(s_->listener.get());
    ::unlink(s_->path.c_str());
}

std::optional<domid_t> broker::domid_of_pid(pid_t pid) const { return s_->reg.domid_of_pid(pid); }

std::size_t broker::domain_count() const { return s_->reg.count(); }

std::size_t broker::port_count(domid_t id) const { return s_->ev.port_count(id); }

const std::string& broker::socket_path() const { return s_->path; }

}  // namespace vifkit::emu
