// frontend_process: a child attached as an emulated domain, serving commands
// from the test over its channel.
#include "ctrl_frontend.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>
#include <system_error>

#include "vifkit/emu/domain.hpp"

namespace vifkit::ctrl::test {

namespace {

enum class op : std::uint32_t { share = 1, unshare, write, read, entry, shared_count, quit };

}  // namespace

struct frontend_process::command {
    op code{};
    std::uint32_t a = 0;
    std::uint32_t b = 0;
    std::uint32_t n = 0;
    std::uint32_t refs[max_refs] = {};
    std::uint8_t data[page_size] = {};
};

struct frontend_process::reply {
    std::int32_t rc = 0;
    std::uint32_t n = 0;
    std::uint32_t vals[max_refs] = {};
    std::int16_t status[max_refs] = {};
    std::uint8_t data[page_size] = {};
    emu::grant_entry_v1 entry;
};

namespace {

using command = frontend_process::command;
using reply = frontend_process::reply;

struct server {
    std::unique_ptr<emu::domain> dom;
    std::unique_ptr<platform::grant_sharer> sharer;
    std::map<grant_ref_t, platform::shared_page> shared;

    bool in_page(const command& c) const {
        return shared.count(c.a) != 0 && c.b <= page_size && c.n <= page_size - c.b;
    }
    reply serve(const command& c);
    reply share(const command& c);
    reply unshare(const command& c);
};

reply server::share(const command& c) {
    reply r;
    std::vector<platform::shared_page> pages(std::min<std::size_t>(c.n, frontend_process::max_refs));
    if (!sharer->share_pages(static_cast<domid_t>(c.a), pages, c.b != 0)) {
        r.rc = -1;
        return r;
    }
    r.n = static_cast<std::uint32_t>(pages.size());
    for (std::size_t i = 0; i < pages.size(); ++i) {
        r.vals[i] = pages[i].ref;
        shared[pages[i].ref] = pages[i];
    }
    return r;
}

reply server::unshare(const command& c) {
    reply r;
    std::vector<platform::shared_page> pages;
    for (std::size_t i = 0; i < std::min<std::size_t>(c.n, frontend_process::max_refs); ++i) {
        const auto it = shared.find(c.refs[i]);
        pages.push_back(it != shared.end() ? it->second : platform::shared_page{c.refs[i]});
    }
    std::vector<gnt_status> st(pages.size());
    r.rc = static_cast<std::int32_t>(sharer->unshare(pages, st));
    r.n = static_cast<std::uint32_t>(pages.size());
    for (std::size_t i = 0; i < r.n; ++i) {
        r.status[i] = static_cast<std::int16_t>(st[i]);
        if (st[i] == gnt_status::okay) shared.erase(pages[i].ref);
    }
    return r;
}

reply server::serve(const command& c) {
    reply r;
    switch (c.code) {
    case op::share: return share(c);
    case op::unshare: return unshare(c);
    case op::write:
        if (!in_page(c)) { r.rc = -1; break; }
        std::memcpy(static_cast<std::uint8_t*>(shared[c.a].addr) + c.b, c.data, c.n);
        break;
    case op::read:
        if (!in_page(c)) { r.rc = -1; break; }
        r.n = c.n;
        std::memcpy(r.data, static_cast<const std::uint8_t*>(shared[c.a].addr) + c.b, c.n);
        break;
    case op::entry:
        if (auto e = dom->read_grant(c.a)) r.entry = *e; else r.rc = -1;
        break;
    default:
        r.vals[0] = static_cast<std::uint32_t>(sharer->shared_count());
        break;
    }
    return r;
}

int run(emu::test::channel& ch, const std::string& path, std::size_t pages, std::size_t entries) {
    server s;
    auto hello = std::make_unique<reply>();
    try {
        s.dom = emu::domain::attach(path, domid_invalid, pages, entries);
        s.sharer = s.dom->make_sharer();
        hello->vals[0] = s.dom->id();
    } catch (const std::system_error& e) {
        hello->rc = e.code().value();
    }
    ch.put(*hello);
    if (hello->rc != 0) return 1;
    auto c = std::make_unique<command>();
    for (;;) {
        ch.recv(c.get(), sizeof(command), std::chrono::hours(1));
        if (c->code == op::quit) return 0;
        const auto r = std::make_unique<reply>(s.serve(*c));
        ch.put(*r);
    }
}

std::unique_ptr<command> make(op code, std::uint32_t a = 0, std::uint32_t b = 0, std::uint32_t n = 0) {
    auto c = std::make_unique<command>();
    c->code = code;
    c->a = a;
    c->b = b;
    c->n = n;
    return c;
}

}  // namespace

frontend_process::frontend_process(const std::string& broker_path, std::size_t mem_pages,
                                   std::size_t grant_entries) {
    child_.emplace(emu::test::child::spawn([&](emu::test::channel& ch) {
        return run(ch, broker_path, mem_pages, grant_entries);
    }));
    auto hello = std::make_unique<reply>();
    child_->chan().recv(hello.get(), sizeof(reply));
    if (hello->rc != 0) throw std::runtime_error("frontend attach failed, errno " + std::to_string(hello->rc));
    id_ = static_cast<domid_t>(hello->vals[0]);
}

frontend_process::~frontend_process() {
    try {
        child_->chan().put(*make(op::quit));
        (void)child_->wait();
    } catch (...) {
        // The child destructor kills it.
    }
}

frontend_process::reply frontend_process::call(const command& c) {
    child_->chan().send(&c, sizeof(command));
    auto r = std::make_unique<reply>();
    child_->chan().recv(r.get(), sizeof(reply));
    return *r;
}

std::vector<grant_ref_t> frontend_process::share(domid_t peer, std::size_t n, bool writable) {
    if (n > max_refs) throw std::invalid_argument("share: too many pages");
    const auto r = std::make_unique<reply>(call(*make(op::share, peer, writable ? 1 : 0,
                                                      static_cast<std::uint32_t>(n))));
    if (r->rc != 0) throw std::runtime_error("share failed");
    return {r->vals, r->vals + r->n};
}

std::vector<gnt_status> frontend_process::unshare(std::span<const grant_ref_t> refs) {
    if (refs.size() > max_refs) throw std::invalid_argument("unshare: too many refs");
    auto c = make(op::unshare, 0, 0, static_cast<std::uint32_t>(refs.size()));
    std::copy(refs.begin(), refs.end(), c->refs);
    const auto r = std::make_unique<reply>(call(*c));
    std::vector<gnt_status> out;
    for (std::size_t i = 0; i < r->n; ++i) out.push_back(static_cast<gnt_status>(r->status[i]));
    return out;
}

void frontend_process::write(grant_ref_t ref, std::uint16_t off, std::span<const std::uint8_t> bytes) {
    if (bytes.size() > page_size) throw std::invalid_argument("write: too long");
    auto c = make(op::write, ref, off, static_cast<std::uint32_t>(bytes.size()));
    std::copy(bytes.begin(), bytes.end(), c->data);
    if (call(*c).rc != 0) throw std::runtime_error("write: bad ref or range");
}

std::vector<std::uint8_t> frontend_process::read(grant_ref_t ref, std::uint16_t off, std::uint16_t len) {
    const auto r = std::make_unique<reply>(call(*make(op::read, ref, off, len)));
    if (r->rc != 0) throw std::runtime_error("read: bad ref or range");
    return {r->data, r->data + r->n};
}

emu::grant_entry_v1 frontend_process::entry(grant_ref_t ref) {
    const auto r = std::make_unique<reply>(call(*make(op::entry, ref)));
    if (r->rc != 0) throw std::runtime_error("entry: ref outside the table");
    return r->entry;
}

std::size_t frontend_process::shared_count() {
    return std::make_unique<reply>(call(*make(op::shared_count)))->vals[0];
}

void frontend_process::write_list(grant_ref_t page, std::span<const abi::gref_entry> list) {
    std::vector<std::uint8_t> bytes(list.size() * sizeof(abi::gref_entry));
    if (!bytes.empty()) std::memcpy(bytes.data(), list.data(), bytes.size());
    write(page, 0, bytes);
}

std::vector<abi::gref_entry> frontend_process::read_list(grant_ref_t page, std::size_t n) {
    const auto bytes = read(page, 0, static_cast<std::uint16_t>(n * sizeof(abi::gref_entry)));
    std::vector<abi::gref_entry> out(n);
    if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
}

std::vector<abi::gref_entry> make_list(std::span<const grant_ref_t> refs, std::uint16_t flags) {
    std::vector<abi::gref_entry> out;
    for (const auto r : refs) out.push_back(abi::gref_entry{r, flags, 0xFFFF});
    return out;
}

}  // namespace vifkit::ctrl::test
