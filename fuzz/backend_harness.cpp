// fuzz_backend's harness: the whole backend (core::netback: xenbus handshake, ring
// mapping, tx/rx/ctrl processing) in process, over the emulated platform, with
// the frontend domain driven by the fuzzer.
//
// Everything runs on the fuzzer's thread:
//  * the hypervisor is the emulator's own: an emu::broker on an event loop of
//    this thread, and emu::domain clients (grant tables, grant map = mmap,
//    grant copy = process_vm_readv/writev, eventfd event channels) attached
//    to it with an RPC pump that runs the broker's loop between each request
//    and its reply (emu::domain::attach), so the broker protocol, its fd
//    passing and every check of the emulator are the ones vifkit-xenstored runs;
//  * xenstore is the vifkit-xenstored engine behind an in-process libxenstore
//    (inproc_xenstore.hpp: platform::store's xs_* calls become function calls
//    into emu::xs::engine, with libxenstore's request and reply encoding), so
//    watch events are delivered before a write returns.
// (It used to run vifkit-xenstored and the broker on a helper thread behind
// their unix sockets, at ~40 inputs/s; inputs mean the same as then.)
//
// Set up once: the broker, xenstore (the broker's hooks introduce and release
// domains), and the backend domain 0. Per input: a fresh frontend domain 1
// (8 granted pages, 4 unbound event channels), the vif's B/frontend and
// F/state nodes, a fresh netback with its own xenstore connection, then the
// input's operations, then teardown. After teardown the backend must hold no
// grant mapping and no event channel (in its own books and in the broker's),
// every page the frontend granted must be revocable (nothing left pinned),
// the broker must have seen the frontend domain go, xenstore must be back to
// its initial node count with only the toolstack's connection open, and no fd
// may be left open, so nothing leaks into the next input.
//
// The input format is in backend_input.hpp.
// Debug aids: VIFKIT_FUZZ_LOG=<spdlog level> shows netback's log,
// VIFKIT_FUZZ_TIMING=1 prints where each input's time goes.
//
// Writes of F/state (the only frontend key netback watches) are followed by a
// pump, so each state change is seen in order; other keys are read when it is.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "backend_harness.hpp"
#include "backend_input.hpp"
#include "inproc_xenstore.hpp"
#include "input_reader.hpp"
#include "vifkit/core/netback.hpp"
#include "vifkit/emu/broker.hpp"
#include "vifkit/emu/domain.hpp"
#include "vifkit/platform/platform.hpp"
#include "vifkit/platform/store.hpp"
#include "vifkit/util/event_loop.hpp"
#include "vifkit/util/log.hpp"

namespace {

using namespace vifkit;
using namespace std::chrono_literals;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_backend: %s\n", what.c_str());
    std::abort();
}

constexpr domid_t back_id = 0;
constexpr domid_t front_id = 1;
// Guest sizes: pages of memory, grant entries.
constexpr std::size_t dom_mem_pages = 16;
constexpr std::size_t dom_grant_entries = 64;

using namespace fuzz::backend_input;

std::string& scratch_dir() {
    static std::string dir;
    return dir;
}

// The emulated hypervisor: emu::broker, served on this thread by pump().
class hypervisor {
public:
    explicit hypervisor(fuzz::inproc_xenstore& xs) {
        char tmpl[] = "/tmp/vifkit-fuzz-XXXXXX";
        if (!::mkdtemp(tmpl)) fail("mkdtemp");
        scratch_dir() = tmpl;
        std::atexit([] {  // libFuzzer ends with exit(): drop the socket's directory
            std::error_code ec;
            std::filesystem::remove_all(scratch_dir(), ec);
        });
        broker_.emplace(loop_, scratch_dir() + "/broker.sock",
                        emu::broker::hooks{[&xs](domid_t d) { xs.introduce_domain(d); },
                                           [&xs](domid_t d) { xs.release_domain(d); }});
    }
    // Serve every request the broker has queued (and those its answers lead to).
    void pump() {
        for (int i = 0; i < 1024; ++i)
            if (loop_.run_once(0ms) == 0) return;
        fail("the broker never went idle");
    }
    std::unique_ptr<emu::domain> attach(domid_t id) {
        return emu::domain::attach(broker_->socket_path(), id, dom_mem_pages, dom_grant_entries,
                                   [this] { pump(); });
    }
    [[nodiscard]] const emu::broker& broker() const { return *broker_; }

private:
    util::event_loop loop_;
    std::optional<emu::broker> broker_;
};

struct globals {
    fuzz::inproc_xenstore& xs = fuzz::install_inproc_xenstore();
    hypervisor hv{xs};
    std::unique_ptr<emu::domain> back;
    platform::services svc;                 // the backend domain's
    std::unique_ptr<platform::store> tool;  // the toolstack's and the frontend's xenstore writes
    std::size_t xs_nodes = 0;               // xenstore's size between inputs
    std::size_t fds = 0;                    // open fds between inputs (0: not known yet)
};
globals* g = nullptr;

// Open fds of the kinds an input creates (memfds, epoll sets, eventfds,
// timerfds, sockets); `names` gets " fd->target" for each. Pipes, /dev/null and
// files are libFuzzer's and the sanitizers' (the symbolizer it starts the
// first time it prints NEW_FUNC keeps two pipes open).
std::size_t open_fds(std::string* names = nullptr) {
    std::size_t n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) fail("opendir /proc/self/fd");
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.' || std::atoi(e->d_name) == ::dirfd(d)) continue;
        char target[256] = {};
        const std::string link = std::string("/proc/self/fd/") + e->d_name;
        if (::readlink(link.c_str(), target, sizeof target - 1) < 0) continue;
        const std::string_view t(target);
        if (!t.starts_with("anon_inode:") && !t.starts_with("/memfd:") && !t.starts_with("socket:")) continue;
        ++n;
        if (names) *names += fmt::format(" {}->{}", e->d_name, t);
    }
    ::closedir(d);
    return n;
}

// One input's frontend domain and netback.
class session {
public:
    explicit session(const std::uint8_t* data, std::size_t size) : in_(data, size) {}

    void lap(const char* what) {
        if (!timing) return;
        const auto now = std::chrono::steady_clock::now();
        std::fprintf(stderr, "  %-10s %6.3f ms  %4llu xenstore requests, %3llu watch events\n", what,
                     std::chrono::duration<double, std::milli>(now - t_).count(),
                     static_cast<unsigned long long>(g->xs.requests() - xs_requests_),
                     static_cast<unsigned long long>(g->xs.watch_events() - xs_events_));
        t_ = now;
        xs_requests_ = g->xs.requests();
        xs_events_ = g->xs.watch_events();
    }

    nlohmann::json run() {
        std::uint8_t b0 = 0, b1 = 0;
        in_.get(b0);
        in_.get(b1);
        lap("begin");
        // A fresh domain (the broker's on_domain_up hook introduces it to xenstore).
        front_ = g->hv.attach(front_id);
        sharer_ = front_->make_sharer();
        evtchn_ = front_->make_event_channels();
        if (!sharer_->share_pages(back_id, pages_, true)) fail("share_pages");
        for (std::size_t i = 0; i < nr_pages; ++i)  // what seeds rely on (backend_input.hpp)
            if (pages_[i].ref != page_ref(i)) fail(fmt::format("page {} granted as ref {}", i, pages_[i].ref));
        for (auto& p : ports_) {
            auto port = evtchn_->alloc_unbound(back_id);
            if (!port) fail("alloc_unbound");
            p = *port;
        }
        lap("attach");
        F_ = fmt::format("/local/domain/{}/device/vif/0", front_id);
        B_ = fmt::format("/local/domain/{}/backend/vif/{}/0", back_id, front_id);
        write_vif_nodes();
        lap("nodes");

        core::netback_config cfg;
        cfg.mode = (b0 & cfg::map) ? core::tx_mode::map : core::tx_mode::copy;
        cfg.feature_sg = (b0 & cfg::sg) != 0;
        cfg.split_event_channels = (b0 & cfg::split) != 0;
        cfg.ctrl_ring = (b0 & cfg::ctrl_ring) != 0;
        cfg.static_grants.enabled = (b0 & cfg::static_grants) != 0;
        cfg.max_queues = ((b0 >> 5) & 3u) + 1;
        cfg.port_template = (b0 & cfg::gen_port) ? fmt::format("gen:{}:count=8", 14 + 6 * unsigned{b1}) : "null";
        cfg.batch = 8;
        cfg.rx_backlog_bytes = 64u << 10;

        nb_store_ = platform::store::open();
        if (!nb_store_) fail("store::open");
        loop_.emplace();
        nb_.emplace(*loop_, g->svc, *nb_store_, cfg);
        nb_->start();
        pump();
        lap("start");

        for (unsigned steps = 0; !in_.empty() && steps < max_steps; ++steps) step();
        for (std::size_t i = 0; i < nr_ports; ++i) evtchn_->notify(ports_[i]);
        pump();
        nlohmann::json stats = nb_->stats();
        lap("ops");
        teardown();
        return stats;
    }

private:
    void write(const std::string& path, std::string_view v) {
        if (!g->tool->write(path, v)) fail("xenstore write " + path);
    }
    void write_vif_nodes() {
        // The part of vifkit-attach's nodes (netif-spec §5.1) netback reads:
        // B/frontend names the frontend, F/state starts the handshake. No
        // perms: every client of this xenstore is privileged.
        write(B_ + "/frontend", F_);
        write(F_ + "/state", "1");
    }

    // Run netback until it has nothing left to do. Watch events and event
    // channel notifications are delivered synchronously (queued on netback's
    // xenstore handle / pending on its event-channel fd before the write or
    // notify returns), so everything sent so far is seen here, in order.
    void pump() {
        for (int i = 0; i < 64; ++i)
            if (loop_->run_once(0ms) == 0) break;
    }

    void step() {
        std::uint8_t code = 0, a = 0, b = 0;
        in_.get(code);
        switch (code % 8) {
        case op::key: {
            if (!in_.get(a) || !in_.get(b)) return;
            const auto v = in_.take(b);
            write(F_ + "/" + front_keys[a % nr_keys].name,
                  std::string_view(reinterpret_cast<const char*>(v.data()), v.size()));
            if (a % nr_keys == 0) pump();  // netback watches F/state only
            break;
        }
        case op::resource: {
            if (!in_.get(a) || !in_.get(b)) return;
            const front_key& k = front_keys[a % nr_keys];
            std::uint32_t v = b;
            if (k.kind == key_kind::ring) v = pages_[b % nr_pages].ref;
            if (k.kind == key_kind::port) v = ports_[b % nr_ports];
            write(F_ + "/" + k.name, std::to_string(v));
            if (a % nr_keys == 0) pump();
            break;
        }
        case op::rm:
            if (!in_.get(a)) return;
            g->tool->rm(F_ + "/" + front_keys[a % nr_keys].name);
            if (a % nr_keys == 0) pump();
            break;
        case op::page: {
            std::uint16_t off = 0;
            if (!in_.get(a) || !in_.get(off) || !in_.get(b)) return;
            off = static_cast<std::uint16_t>(off % page_size);
            const auto bytes = in_.take(std::min<std::size_t>(b, page_size - off));
            auto* p = pages_[a % nr_pages].addr;
            if (p) std::memcpy(static_cast<char*>(p) + off, bytes.data(), bytes.size());
            break;
        }
        case op::notify:
            if (!in_.get(a)) return;
            evtchn_->notify(ports_[a % nr_ports]);
            pump();
            break;
        case op::pump: pump(); break;
        case op::revoke: {
            if (!in_.get(a)) return;
            auto& p = pages_[a % nr_pages];
            if (!p.addr) return;
            gnt_status st{};
            if (sharer_->unshare(std::span(&p, 1), std::span(&st, 1)) == 1) p = {};
            break;
        }
        case op::state:
            if (!in_.get(a)) return;
            write(F_ + "/state", std::to_string(a % 9));
            pump();
            break;
        }
    }

    void teardown() {
        nb_.reset();  // shutdown(): every vif closed, mappings and ports released
        loop_.reset();
        nb_store_.reset();
        lap("shutdown");
        if (g->svc.mapper->mapped_count() != 0)
            fail(fmt::format("backend still holds {} grant mappings after shutdown", g->svc.mapper->mapped_count()));
        if (g->svc.evtchn->bound_count() != 0)
            fail(fmt::format("backend still holds {} event channels after shutdown", g->svc.evtchn->bound_count()));
        if (const auto n = g->hv.broker().port_count(back_id); n != 0)
            fail(fmt::format("the broker still has {} ports of the backend after shutdown", n));
        // Drain notifications the frontend sent to ports that are gone now.
        while (auto p = g->svc.evtchn->pending()) g->svc.evtchn->unmask(*p);
        g->tool->rm(fmt::format("/local/domain/{}/backend", back_id));
        evtchn_.reset();
        // Every grant is revoked (a pinned one would be refused and leaked).
        sharer_.reset();
        if (front_->free_pages() != dom_mem_pages)
            fail(fmt::format("{} of the frontend's pages still granted (pinned) after shutdown",
                             dom_mem_pages - front_->free_pages()));
        // The frontend domain goes: its broker connection closes; the broker
        // closes its ports and releases it from xenstore (on_domain_gone).
        front_.reset();
        g->hv.pump();
        // A grant call against the gone domain: the mapper drops its cached
        // view of it (and with it the domain's memory).
        g->svc.mapper->copy(front_id, {});
        if (g->hv.broker().domain_count() != 1)
            fail(fmt::format("{} domains registered after teardown (want the backend only)",
                             g->hv.broker().domain_count()));
        if (g->xs.handle_count() != 1)
            fail(fmt::format("{} xenstore connections open between inputs (want the toolstack's only)",
                             g->xs.handle_count()));
        if (g->xs.node_count() != g->xs_nodes)
            fail(fmt::format("xenstore holds {} nodes after teardown, {} before the input", g->xs.node_count(),
                             g->xs_nodes));
        // Every fd an input opened (guest memory, epoll sets, eventfds, timerfds,
        // the host port) is closed again: compared with the count after the first input.
        const std::size_t fds = open_fds();
        if (g->fds == 0) g->fds = fds;
        if (fds != g->fds) {
            std::string names;
            (void)open_fds(&names);
            fail(fmt::format("{} fds open after teardown, {} after the first input:{}", fds, g->fds, names));
        }
        lap("detach");
    }

    fuzz::input_reader in_;
    const bool timing = std::getenv("VIFKIT_FUZZ_TIMING") != nullptr;
    std::chrono::steady_clock::time_point t_ = std::chrono::steady_clock::now();
    std::uint64_t xs_requests_ = 0, xs_events_ = 0;
    std::unique_ptr<emu::domain> front_;
    std::unique_ptr<platform::grant_sharer> sharer_;
    std::unique_ptr<platform::event_channels> evtchn_;
    std::array<platform::shared_page, nr_pages> pages_{};
    std::array<evtchn_port_t, nr_ports> ports_{};
    std::string F_, B_;
    std::unique_ptr<platform::store> nb_store_;
    std::optional<util::event_loop> loop_;
    std::optional<core::netback> nb_;
};

}  // namespace

namespace vifkit::fuzz {

void backend_init() {
    if (g) return;
    g = new globals{};  // never destroyed: libFuzzer exits the process
    g->back = g->hv.attach(back_id);
    g->svc = g->back->make_services();
    g->tool = platform::store::open();
    if (!g->tool) fail("cannot open the toolstack's xenstore connection");
    if (!fuzz::inproc_xenstore::owns(g->tool->native()))
        fail("platform::store did not get inproc_xenstore's xs_open (libxenstore not interposed)");
    g->xs_nodes = g->xs.node_count();
}

nlohmann::json backend_run(std::span<const std::uint8_t> input) {
    backend_init();
    if (input.size() < 2) return {};
    return session(input.data(), input.size()).run();
}

}  // namespace vifkit::fuzz
