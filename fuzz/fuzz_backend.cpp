// libFuzzer target: the whole backend (core::netback: xenbus handshake, ring
// mapping, tx/rx/ctrl processing) in process, over the emulated platform, with
// the frontend domain driven by the fuzzer.
//
// Set up once: an emulated broker and vifkit-xenstored (emu::broker +
// xs::server, one event loop on a helper thread; every xenstore client is
// privileged), and the backend domain 0. Per input: a fresh frontend domain
// (8 granted pages, 4 unbound event channels), the vif's B/frontend and F/state
// nodes, a fresh netback with its own xenstore connection, then the
// input's operations, then teardown. After teardown the backend must hold no
// grant mapping and no event channel, and the frontend domain must be gone,
// so nothing leaks into the next input.
//
// Input: 2 header bytes, then operations.
//   byte 0: bit0 tx mode map (else copy), bit1 feature-sg, bit2 split event
//           channels, bit3 ctrl ring, bit4 static grants, bits 5-6 max queues - 1,
//           bit7 host port "gen" (frames towards the guest) instead of "null"
//   byte 1: gen frame size = 14 + 6 * byte 1
// Operations (first byte % 8), frontend keys by index into front_keys[]:
//   0 key       u8 key, u8 len, value bytes: write F/<key>
//   1 resource  u8 key, u8 r: write F/<key> = ref of page r % 8 (ring-ref keys),
//               port r % 4 (event-channel keys) or r (others), in decimal
//   2 rm        u8 key
//   3 page      u8 page, u16 offset, u8 len, bytes: write into a granted page
//               (pages are rings or data: the sring header is at offset 0,
//               ring entries from offset 64)
//   4 notify    u8 port: the frontend signals port % 4
//   5 pump      run netback until it is idle
//   6 revoke    u8 page: the frontend revokes page % 8 (refused while mapped)
//   7 state     u8 s: write F/state = s % 9
// Debug aids: VIFKIT_FUZZ_LOG=<spdlog level> shows netback's log,
// VIFKIT_FUZZ_TIMING=1 prints where each input's time goes.
//
// Writes of F/state (the only frontend key netback watches) are followed by a
// pump, so each state change is seen in order; other keys are read when it is.
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "vifkit/core/netback.hpp"
#include "vifkit/emu/broker.hpp"
#include "vifkit/emu/domain.hpp"
#include "vifkit/emu/xenstored/server.hpp"
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

constexpr std::size_t nr_pages = 8;
constexpr std::size_t nr_ports = 4;
constexpr domid_t front_id = 1;

enum class key_kind { ring, port, other };
struct front_key {
    const char* name;
    key_kind kind;
};
constexpr front_key front_keys[] = {
    {"state", key_kind::other},
    {"tx-ring-ref", key_kind::ring},
    {"rx-ring-ref", key_kind::ring},
    {"event-channel", key_kind::port},
    {"event-channel-tx", key_kind::port},
    {"event-channel-rx", key_kind::port},
    {"multi-queue-num-queues", key_kind::other},
    {"queue-0/tx-ring-ref", key_kind::ring},
    {"queue-0/rx-ring-ref", key_kind::ring},
    {"queue-0/event-channel", key_kind::port},
    {"queue-1/tx-ring-ref", key_kind::ring},
    {"queue-1/rx-ring-ref", key_kind::ring},
    {"queue-1/event-channel", key_kind::port},
    {"feature-sg", key_kind::other},
    {"request-rx-copy", key_kind::other},
    {"feature-rx-notify", key_kind::other},
    {"feature-gso-tcpv4", key_kind::other},
    {"feature-gso-tcpv6", key_kind::other},
    {"feature-no-csum-offload", key_kind::other},
    {"ctrl-ring-ref", key_kind::ring},
    {"event-channel-ctrl", key_kind::port},
    {"feature-multicast-control", key_kind::other},
    {"feature-ctrl-ring", key_kind::other},
    {"queue-0/event-channel-tx", key_kind::port},
    {"queue-0/event-channel-rx", key_kind::port},
    {"mtu", key_kind::other},
};
constexpr std::size_t nr_keys = sizeof front_keys / sizeof front_keys[0];

std::string& scratch_dir() {
    static std::string dir;
    return dir;
}

// The emulated hypervisor and xenstored, on their own thread for the whole run.
class platform_thread {
public:
    platform_thread() {
        char tmpl[] = "/tmp/vifkit-fuzz-XXXXXX";
        if (!::mkdtemp(tmpl)) fail("mkdtemp");
        dir_ = tmpl;
        scratch_dir() = dir_;
        std::atexit([] {  // libFuzzer ends with exit(): drop the sockets' directory
            std::error_code ec;
            std::filesystem::remove_all(scratch_dir(), ec);
        });
        xs_path_ = dir_ + "/xs.sock";
        broker_path_ = dir_ + "/broker.sock";
        xs_.emplace(loop_, xs_path_);
        broker_.emplace(loop_, broker_path_,
                        emu::broker::hooks{[this](domid_t d) { xs_->introduce_domain(d); },
                                           [this](domid_t d) {
                                               xs_->release_domain(d);
                                               std::lock_guard lock(mu_);
                                               ++gone_;
                                               cv_.notify_all();
                                           }});
        thread_ = std::thread([this] { loop_.run(); });
    }
    // Never destroyed: libFuzzer exits the process.
    [[nodiscard]] const std::string& xs_path() const { return xs_path_; }
    [[nodiscard]] const std::string& broker_path() const { return broker_path_; }
    [[nodiscard]] std::uint64_t gone() {
        std::lock_guard lock(mu_);
        return gone_;
    }
    // Wait until the broker has seen `n` domains go.
    void wait_gone(std::uint64_t n) {
        std::unique_lock lock(mu_);
        if (!cv_.wait_for(lock, 10s, [&] { return gone_ >= n; })) fail("frontend domain never went away");
    }

private:
    std::string dir_, xs_path_, broker_path_;
    util::event_loop loop_;
    std::optional<emu::xs::server> xs_;
    std::optional<emu::broker> broker_;
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::uint64_t gone_ = 0;
};

struct globals {
    platform_thread plat;
    std::unique_ptr<emu::domain> back;
    platform::services svc;
    std::unique_ptr<platform::store> tool;  // the toolstack's and the frontend's xenstore writes
};
globals* g = nullptr;

class reader {
public:
    reader(const std::uint8_t* d, std::size_t n) : d_(d), n_(n) {}
    [[nodiscard]] bool empty() const { return pos_ >= n_; }
    bool u8(std::uint8_t& v) {
        if (pos_ >= n_) return false;
        v = d_[pos_++];
        return true;
    }
    bool u16(std::uint16_t& v) {
        if (n_ - pos_ < 2) return false;
        std::memcpy(&v, d_ + pos_, 2);
        pos_ += 2;
        return true;
    }
    std::string_view take(std::size_t k) {
        k = std::min(k, n_ - pos_);
        std::string_view s(reinterpret_cast<const char*>(d_ + pos_), k);
        pos_ += k;
        return s;
    }

private:
    const std::uint8_t* d_;
    std::size_t n_;
    std::size_t pos_ = 0;
};

// One input's frontend domain and netback.
class session {
public:
    explicit session(const std::uint8_t* data, std::size_t size) : in_(data, size) {}

    void lap(const char* what) {
        if (!timing) return;
        const auto now = std::chrono::steady_clock::now();
        std::fprintf(stderr, "  %-10s %6.2f ms\n", what, std::chrono::duration<double, std::milli>(now - t_).count());
        t_ = now;
    }

    void run() {
        std::uint8_t b0 = 0, b1 = 0;
        in_.u8(b0);
        in_.u8(b1);
        front_ = emu::domain::attach(g->plat.broker_path(), front_id, 16, 64);
        sharer_ = front_->make_sharer();
        evtchn_ = front_->make_event_channels();
        if (!sharer_->share_pages(0, pages_, true)) fail("share_pages");
        for (auto& p : ports_) {
            auto port = evtchn_->alloc_unbound(0);
            if (!port) fail("alloc_unbound");
            p = *port;
        }
        lap("attach");
        F_ = fmt::format("/local/domain/{}/device/vif/0", front_id);
        B_ = fmt::format("/local/domain/0/backend/vif/{}/0", front_id);
        write_vif_nodes();
        lap("nodes");

        core::netback_config cfg;
        cfg.mode = (b0 & 1) ? core::tx_mode::map : core::tx_mode::copy;
        cfg.feature_sg = (b0 & 2) != 0;
        cfg.split_event_channels = (b0 & 4) != 0;
        cfg.ctrl_ring = (b0 & 8) != 0;
        cfg.static_grants.enabled = (b0 & 16) != 0;
        cfg.max_queues = ((b0 >> 5) & 3u) + 1;
        cfg.port_template = (b0 & 0x80) ? fmt::format("gen:{}:count=8", 14 + 6 * unsigned{b1}) : "null";
        cfg.batch = 8;
        cfg.rx_backlog_bytes = 64u << 10;

        nb_store_ = platform::store::open();
        if (!nb_store_) fail("store::open");
        loop_.emplace();
        nb_.emplace(*loop_, g->svc, *nb_store_, cfg);
        nb_->start();
        pump();
        lap("start");

        for (unsigned steps = 0; !in_.empty() && steps < 64; ++steps) step();
        for (std::size_t i = 0; i < nr_ports; ++i) evtchn_->notify(ports_[i]);
        pump();
        (void)nb_->stats();
        lap("ops");
        teardown();
    }

private:
    void write(const std::string& path, std::string_view v) {
        if (!g->tool->write(path, v)) fail("xenstore write " + path);
    }
    void write_vif_nodes() {
        // The part of vifkit-attach's nodes (netif-spec §5.1) netback reads:
        // B/frontend names the frontend, F/state starts the handshake. No
        // perms: every client of this xenstored is privileged.
        write(B_ + "/frontend", F_);
        write(F_ + "/state", "1");
    }

    // Run netback until it has nothing left to do. The round trip on its own
    // xenstore connection first makes every watch event fired so far
    // visible to it (replies and events arrive in order).
    void pump() {
        (void)nb_store_->read("/");
        for (int i = 0; i < 64; ++i)
            if (loop_->run_once(0ms) == 0) break;
    }

    void step() {
        std::uint8_t op = 0, a = 0, b = 0;
        in_.u8(op);
        switch (op % 8) {
        case 0: {
            if (!in_.u8(a) || !in_.u8(b)) return;
            const auto v = in_.take(b);
            write(F_ + "/" + front_keys[a % nr_keys].name, v);
            if (a % nr_keys == 0) pump();  // netback watches F/state only
            break;
        }
        case 1: {
            if (!in_.u8(a) || !in_.u8(b)) return;
            const front_key& k = front_keys[a % nr_keys];
            std::uint32_t v = b;
            if (k.kind == key_kind::ring) v = pages_[b % nr_pages].ref;
            if (k.kind == key_kind::port) v = ports_[b % nr_ports];
            write(F_ + "/" + k.name, std::to_string(v));
            if (a % nr_keys == 0) pump();
            break;
        }
        case 2:
            if (!in_.u8(a)) return;
            g->tool->rm(F_ + "/" + front_keys[a % nr_keys].name);
            if (a % nr_keys == 0) pump();
            break;
        case 3: {
            std::uint16_t off = 0;
            if (!in_.u8(a) || !in_.u16(off) || !in_.u8(b)) return;
            off = static_cast<std::uint16_t>(off % page_size);
            const auto bytes = in_.take(std::min<std::size_t>(b, page_size - off));
            auto* p = pages_[a % nr_pages].addr;
            if (p) std::memcpy(static_cast<char*>(p) + off, bytes.data(), bytes.size());
            break;
        }
        case 4:
            if (!in_.u8(a)) return;
            evtchn_->notify(ports_[a % nr_ports]);
            pump();
            break;
        case 5: pump(); break;
        case 6: {
            if (!in_.u8(a)) return;
            auto& p = pages_[a % nr_pages];
            if (!p.addr) return;
            gnt_status st{};
            if (sharer_->unshare(std::span(&p, 1), std::span(&st, 1)) == 1) p = {};
            break;
        }
        case 7:
            if (!in_.u8(a)) return;
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
        // Drain notifications the frontend sent to ports that are gone now.
        while (auto p = g->svc.evtchn->pending()) g->svc.evtchn->unmask(*p);
        g->tool->rm("/local/domain/0/backend");
        const std::uint64_t gone = g->plat.gone();
        evtchn_.reset();
        sharer_.reset();
        front_.reset();  // detach: the broker frees domid 1 (and xenstored releases it)
        g->plat.wait_gone(gone + 1);
        lap("detach");
    }

    reader in_;
    const bool timing = std::getenv("VIFKIT_FUZZ_TIMING") != nullptr;
    std::chrono::steady_clock::time_point t_ = std::chrono::steady_clock::now();
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

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    util::init_logging("fuzz_backend", std::getenv("VIFKIT_FUZZ_LOG") ? std::getenv("VIFKIT_FUZZ_LOG") : "off");
    g = new globals{};
    ::setenv("XENSTORED_PATH", g->plat.xs_path().c_str(), 1);
    g->back = emu::domain::attach(g->plat.broker_path(), 0, 16, 64);
    g->svc = g->back->make_services();
    g->tool = platform::store::open();
    if (!g->tool) fail("cannot open the toolstack's xenstore connection");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    session(data, size).run();
    return 0;
}
