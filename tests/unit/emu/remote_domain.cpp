// remote_domain: a child process attached as an emulated domain, serving
// commands from the test over its channel.
#include <poll.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>
#include <system_error>

#include "emu_test_support.hpp"
#include "vifkit/emu/domain.hpp"

namespace vifkit::emu::test {

namespace {

constexpr std::size_t max_refs = 32;
constexpr std::size_t max_data = 64;

enum class op : std::uint32_t {
    share = 1, unshare, fill, read, entry, write_entry, drop_page, shared_count,
    map, write_mapped, unmap_all, mapped_count,
    alloc_unbound, bind, notify, readable, pending, unmask, unbind, bound_count,
    quit,
};

}  // namespace

struct remote_domain::command {
    op code{};
    std::uint32_t a = 0;
    std::uint32_t b = 0;
    std::uint32_t n = 0;
    std::uint32_t refs[max_refs] = {};
    grant_entry_v1 entry;
};

struct remote_domain::reply {
    std::int32_t rc = 0;
    std::uint32_t n = 0;
    std::uint32_t vals[max_refs] = {};
    std::int16_t status[max_refs] = {};
    std::uint8_t data[max_data] = {};
    grant_entry_v1 entry;
};

namespace {

using command = remote_domain::command;
using reply = remote_domain::reply;

// Everything the child holds as a domain.
struct server {
    std::unique_ptr<domain> dom;
    platform::services svc;
    std::map<grant_ref_t, platform::shared_page> shared;
    std::vector<platform::map_op> maps;

    reply grant_cmd(const command& c);
    reply map_cmd(const command& c);
    reply event_cmd(const command& c);
};

reply server::grant_cmd(const command& c) {
    reply r;
    switch (c.code) {
    case op::share: {
        std::vector<platform::shared_page> pages(std::min<std::size_t>(c.n, max_refs));
        r.rc = svc.sharer->share_pages(static_cast<domid_t>(c.a), pages, c.b != 0) ? 0 : -1;
        if (r.rc == 0) r.n = static_cast<std::uint32_t>(pages.size());
        for (std::size_t i = 0; i < r.n; ++i) {
            r.vals[i] = pages[i].ref;
            shared[pages[i].ref] = pages[i];
        }
        break;
    }
    case op::unshare: {
        std::vector<platform::shared_page> pages;
        for (std::size_t i = 0; i < std::min<std::size_t>(c.n, max_refs); ++i)
            pages.push_back(shared.count(c.refs[i]) ? shared[c.refs[i]] : platform::shared_page{c.refs[i]});
        std::vector<gnt_status> st(pages.size());
        r.rc = static_cast<std::int32_t>(svc.sharer->unshare(pages, st));
        r.n = static_cast<std::uint32_t>(pages.size());
        for (std::size_t i = 0; i < r.n; ++i) {
            r.status[i] = static_cast<std::int16_t>(st[i]);
            if (st[i] == gnt_status::okay) shared.erase(pages[i].ref);
        }
        break;
    }
    case op::fill:
        if (shared.count(c.a)) std::memset(shared[c.a].addr, static_cast<int>(c.b), page_size);
        else r.rc = -1;
        break;
    case op::read:
        if (!shared.count(c.a) || c.b + std::min<std::size_t>(c.n, max_data) > page_size) { r.rc = -1; break; }
        r.n = static_cast<std::uint32_t>(std::min<std::size_t>(c.n, max_data));
        std::memcpy(r.data, static_cast<std::uint8_t*>(shared[c.a].addr) + c.b, r.n);
        break;
    case op::entry:
        if (auto e = dom->read_grant(c.a)) r.entry = *e; else r.rc = -1;
        break;
    case op::write_entry:
        r.rc = dom->write_grant(c.a, c.entry) ? 0 : -1;
        break;
    case op::drop_page:
        // Hostile granter: the granted page vanishes from its address space.
        r.rc = shared.count(c.a) ? ::munmap(shared[c.a].addr, page_size) : -1;
        break;
    default:
        r.vals[0] = static_cast<std::uint32_t>(svc.sharer->shared_count());
        break;
    }
    return r;
}

reply server::map_cmd(const command& c) {
    reply r;
    switch (c.code) {
    case op::map: {
        std::vector<platform::map_op> ops(std::min<std::size_t>(c.n, max_refs));
        for (std::size_t i = 0; i < ops.size(); ++i) ops[i] = {c.refs[i], c.b != 0};
        svc.mapper->map(static_cast<domid_t>(c.a), ops);
        r.n = static_cast<std::uint32_t>(ops.size());
        for (std::size_t i = 0; i < ops.size(); ++i) {
            r.status[i] = static_cast<std::int16_t>(ops[i].status);
            if (ops[i].status == gnt_status::okay) maps.push_back(ops[i]);
        }
        break;
    }
    case op::write_mapped:
        for (auto& m : maps)
            if (!m.readonly) std::memset(m.addr, static_cast<int>(c.a), page_size);
        break;
    case op::unmap_all:
        svc.mapper->unmap(maps);
        r.n = static_cast<std::uint32_t>(std::min(maps.size(), max_refs));
        for (std::size_t i = 0; i < r.n; ++i) r.status[i] = static_cast<std::int16_t>(maps[i].status);
        maps.clear();
        break;
    default:
        r.vals[0] = static_cast<std::uint32_t>(svc.mapper->mapped_count());
        break;
    }
    return r;
}

std::int32_t port_or_errno(std::optional<evtchn_port_t> p) {
    return p ? static_cast<std::int32_t>(*p) : -errno;
}

reply server::event_cmd(const command& c) {
    reply r;
    auto& ev = *svc.evtchn;
    switch (c.code) {
    case op::alloc_unbound: r.rc = port_or_errno(ev.alloc_unbound(static_cast<domid_t>(c.a))); break;
    case op::bind: r.rc = port_or_errno(ev.bind_interdomain(static_cast<domid_t>(c.a), c.b)); break;
    case op::notify: r.rc = ev.notify(c.a); break;
    case op::readable: {
        pollfd p{ev.fd(), POLLIN, 0};
        r.rc = ::poll(&p, 1, static_cast<int>(c.a));
        break;
    }
    case op::pending: {
        const auto p = ev.pending();
        r.rc = p ? static_cast<std::int32_t>(*p) : -1;
        break;
    }
    case op::unmask: r.rc = ev.unmask(c.a); break;
    case op::unbind: r.rc = ev.unbind(c.a); break;
    default: r.vals[0] = static_cast<std::uint32_t>(ev.bound_count()); break;
    }
    return r;
}

int serve(channel& ch, const std::string& path, domid_t want, std::size_t pages,
          std::size_t entries) {
    server s;
    reply hello;
    try {
        s.dom = domain::attach(path, want, pages, entries);
        s.svc = s.dom->make_services();
        hello.vals[0] = s.dom->id();
    } catch (const std::system_error& e) {
        hello.rc = e.code().value();
    }
    ch.put(hello);
    if (hello.rc != 0) return 1;
    for (;;) {
        const auto c = ch.get<command>(std::chrono::hours(1));
        if (c.code == op::quit) return 0;
        if (c.code <= op::shared_count) ch.put(s.grant_cmd(c));
        else if (c.code <= op::mapped_count) ch.put(s.map_cmd(c));
        else ch.put(s.event_cmd(c));
    }
}

command make(op code, std::uint32_t a = 0, std::uint32_t b = 0) {
    command c;
    c.code = code;
    c.a = a;
    c.b = b;
    return c;
}

command with_refs(command c, std::span<const grant_ref_t> refs) {
    if (refs.size() > max_refs) throw std::invalid_argument("too many refs");
    c.n = static_cast<std::uint32_t>(refs.size());
    std::copy(refs.begin(), refs.end(), c.refs);
    return c;
}

std::vector<gnt_status> statuses(const reply& r) {
    std::vector<gnt_status> out;
    for (std::size_t i = 0; i < r.n; ++i) out.push_back(static_cast<gnt_status>(r.status[i]));
    return out;
}

}  // namespace

remote_domain::remote_domain(const std::string& broker_path, domid_t want,
                             std::size_t mem_pages, std::size_t grant_entries) {
    child_.emplace(child::spawn([&](channel& ch) {
        return serve(ch, broker_path, want, mem_pages, grant_entries);
    }));
    const auto hello = child_->chan().get<reply>();
    if (hello.rc != 0) throw std::runtime_error("attach failed, errno " + std::to_string(hello.rc));
    id_ = static_cast<domid_t>(hello.vals[0]);
}

int remote_domain::quit() {
    child_->chan().put(make(op::quit));
    return child_->wait();
}

remote_domain::reply remote_domain::call(const command& c) {
    child_->chan().put(c);
    return child_->chan().get<reply>();
}

std::vector<grant_ref_t> remote_domain::share(domid_t peer, std::size_t n, bool writable) {
    auto c = make(op::share, peer, writable ? 1 : 0);
    c.n = static_cast<std::uint32_t>(n);
    const auto r = call(c);
    return {r.vals, r.vals + r.n};
}

std::vector<gnt_status> remote_domain::unshare(std::span<const grant_ref_t> refs) {
    return statuses(call(with_refs(make(op::unshare), refs)));
}

void remote_domain::fill(grant_ref_t ref, std::uint8_t byte) {
    if (call(make(op::fill, ref, byte)).rc != 0) throw std::runtime_error("fill: ref not shared");
}

std::vector<std::uint8_t> remote_domain::read(grant_ref_t ref, std::uint16_t off, std::uint16_t len) {
    auto c = make(op::read, ref, off);
    c.n = len;
    const auto r = call(c);
    if (r.rc != 0) throw std::runtime_error("read: bad ref or range");
    return {r.data, r.data + r.n};
}

grant_entry_v1 remote_domain::entry(grant_ref_t ref) { return call(make(op::entry, ref)).entry; }

void remote_domain::write_entry(grant_ref_t ref, const grant_entry_v1& e) {
    auto c = make(op::write_entry, ref);
    c.entry = e;
    (void)call(c);
}

void remote_domain::drop_page(grant_ref_t ref) {
    if (call(make(op::drop_page, ref)).rc != 0) throw std::runtime_error("drop_page failed");
}

std::size_t remote_domain::shared_count() { return call(make(op::shared_count)).vals[0]; }

std::vector<gnt_status> remote_domain::map(domid_t peer, std::span<const grant_ref_t> refs, bool readonly) {
    return statuses(call(with_refs(make(op::map, peer, readonly ? 1 : 0), refs)));
}

void remote_domain::write_mapped(std::uint8_t byte) { (void)call(make(op::write_mapped, byte)); }

std::vector<gnt_status> remote_domain::unmap_all() { return statuses(call(make(op::unmap_all))); }

std::size_t remote_domain::mapped_count() { return call(make(op::mapped_count)).vals[0]; }

std::optional<evtchn_port_t> remote_domain::alloc_unbound(domid_t remote) {
    const auto r = call(make(op::alloc_unbound, remote));
    last_errno_ = r.rc < 0 ? -r.rc : 0;
    return r.rc < 0 ? std::nullopt : std::optional<evtchn_port_t>(r.rc);
}

std::optional<evtchn_port_t> remote_domain::bind(domid_t remote, evtchn_port_t port) {
    const auto r = call(make(op::bind, remote, port));
    last_errno_ = r.rc < 0 ? -r.rc : 0;
    return r.rc < 0 ? std::nullopt : std::optional<evtchn_port_t>(r.rc);
}

int remote_domain::notify(evtchn_port_t port) { return call(make(op::notify, port)).rc; }

bool remote_domain::readable(std::chrono::milliseconds wait) {
    return call(make(op::readable, static_cast<std::uint32_t>(wait.count()))).rc > 0;
}

std::optional<evtchn_port_t> remote_domain::pending() {
    const auto r = call(make(op::pending));
    return r.rc < 0 ? std::nullopt : std::optional<evtchn_port_t>(r.rc);
}

int remote_domain::unmask(evtchn_port_t port) { return call(make(op::unmask, port)).rc; }

int remote_domain::unbind(evtchn_port_t port) { return call(make(op::unbind, port)).rc; }

std::size_t remote_domain::bound_count() { return call(make(op::bound_count)).vals[0]; }

}  // namespace vifkit::emu::test
