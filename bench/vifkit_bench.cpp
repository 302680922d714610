// vifkit-bench: packet rate of the real vifkit-back / vifkit-front processes over
// the emulated Xen platform (vifkit-xenstored + broker).
//
// Per case (mode x size x direction x poll) a fresh emulated platform is started
// with the test harness (tests/support/emu_harness) and the vif is connected.
//
// --traffic gen (default), like testpmd's txonly/rxonly: the entry process has a
// "gen:SIZE" port (an in-process frame source) and the exit process a "null"
// port (a counting sink); the processes are pinned to separate CPUs and nothing
// else runs. pps = the exit process's own packet counter over --seconds (its
// SIGUSR1 stats, time-stamped by the process).
//
//   tx (guest transmit): gen -> netfront -> tx ring -> netback -> null
//   rx (guest receive):  gen -> netback -> rx ring -> netfront -> null
//
// --traffic unix: driver threads in this process send frames into one "unix:"
// SEQPACKET port and count them at the other (adds two socket hops per frame).
//
// The backend's counters over the same interval give the grant operations per
// packet. One JSON object per case goes to stdout.
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "emu_harness.hpp"
#include "vifkit/wire/checksum.hpp"

namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
namespace fs = std::filesystem;
using vifkit::test::child;
using vifkit::test::emu_env;
using nlohmann::json;

constexpr unsigned guest_domid = 1;
constexpr unsigned flows = 64;  // distinct IPv4 sources, so that --queues > 1 spreads the load

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted.store(true); }

// ---- options ----

struct options {
    std::vector<std::string> modes{"copy", "map", "static", "raw"};
    std::vector<std::size_t> sizes{64, 1500, 65535};
    std::vector<std::string> directions{"tx", "rx"};
    std::vector<std::string> polls{"busy"};
    std::string traffic = "gen";
    std::string dpdk;  // anchor script: run it for each size/direction too
    double seconds = 3.0;
    double warmup = 0.5;
    unsigned queues = 1;
    bool json_only = false;
    bool table = false;
    bool pin = true;
    std::string plot;
};

struct bench_case {
    std::string mode;
    std::size_t size = 0;
    std::string direction;
    unsigned queues = 1;
    std::string poll = "busy";
};

std::vector<std::string> backend_args(const std::string& mode, unsigned queues, const std::string& poll) {
    std::vector<std::string> a{"--max-queues", std::to_string(queues), "--poll", poll};
    // raw: the frontend's memory mapped once, no grant check at all (the ceiling)
    if (mode == "raw") a.insert(a.end(), {"--mode", "raw", "--no-static-grants"});
    if (mode == "copy") a.insert(a.end(), {"--mode", "copy", "--no-static-grants"});
    if (mode == "map") a.insert(a.end(), {"--mode", "map", "--no-static-grants"});
    // static: the backend's defaults (copy mode, static grants on); the frontend
    // registers its tx/rx pools, so the data path needs no grant operation.
    return a;
}

// ---- frames ----

std::uint16_t ip_checksum(const std::uint8_t* p, std::size_t n) {
    return vifkit::wire::internet_checksum(std::as_bytes(std::span(p, n)));
}

// An Ethernet frame of exactly `size` bytes (no FCS, as testpmd's --txpkts). From 42
// bytes on it is IPv4/UDP, source 10.1.0.<flow>, so the Toeplitz steering of both
// ends spreads flows over queues; smaller frames carry a local experimental ethertype.
std::vector<std::byte> make_frame(std::size_t size, unsigned flow) {
    std::vector<std::uint8_t> f(size, 0);
    const std::uint8_t eth[12] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x01, 0x00, 0x00, 0x00,
                                  static_cast<std::uint8_t>(flow)};
    std::memcpy(f.data(), eth, 12);
    if (size >= 42) {
        f[12] = 0x08;
        f[13] = 0x00;
        std::uint8_t* ip = f.data() + 14;
        const std::size_t ip_len = size - 14;
        ip[0] = 0x45;
        ip[2] = static_cast<std::uint8_t>(ip_len >> 8);
        ip[3] = static_cast<std::uint8_t>(ip_len);
        ip[6] = 0x40;  // DF
        ip[8] = 64;
        ip[9] = 17;  // UDP
        const std::uint8_t src[4] = {10, 1, 0, static_cast<std::uint8_t>(flow + 1)};
        const std::uint8_t dst[4] = {10, 2, 0, 1};
        std::memcpy(ip + 12, src, 4);
        std::memcpy(ip + 16, dst, 4);
        const std::uint16_t c = ip_checksum(ip, 20);
        ip[10] = static_cast<std::uint8_t>(c >> 8);
        ip[11] = static_cast<std::uint8_t>(c);
        std::uint8_t* udp = ip + 20;
        const std::size_t udp_len = ip_len - 20;
        const std::uint16_t sport = static_cast<std::uint16_t>(10000 + flow);
        udp[0] = static_cast<std::uint8_t>(sport >> 8);
        udp[1] = static_cast<std::uint8_t>(sport);
        udp[2] = 0x27;  // 9999
        udp[3] = 0x0f;
        udp[4] = static_cast<std::uint8_t>(udp_len >> 8);
        udp[5] = static_cast<std::uint8_t>(udp_len);  // checksum 0: none
        for (std::size_t i = 42; i < size; ++i) f[i] = static_cast<std::uint8_t>(i * 7 + flow);
    } else {
        if (size > 12) f[12] = 0x88;
        if (size > 13) f[13] = 0xb5;
        for (std::size_t i = 14; i < size; ++i) f[i] = static_cast<std::uint8_t>(i * 7 + flow);
    }
    std::vector<std::byte> out(size);
    std::memcpy(out.data(), f.data(), size);
    return out;
}

// ---- processes ----

// A field of /proc/PID/status in KiB: "VmRSS" (all resident memory, shared
// libraries included) or "RssAnon" (the process's own heap and stacks).
std::optional<long> status_kib(pid_t pid, const std::string& field = "VmRSS") {
    if (pid <= 0) return std::nullopt;
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind(field + ":", 0) == 0) return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
    }
    return std::nullopt;
}
std::optional<long> rss_kib(pid_t pid) { return status_kib(pid); }

std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    return cpus;
}

bool pin_tid(pid_t tid, const std::vector<int>& cpus) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus) CPU_SET(c, &set);
    return ::sched_setaffinity(tid, sizeof set, &set) == 0;
}

// Every thread of a process (a later thread inherits from its creator).
bool pin_process(pid_t pid, int cpu) {
    bool ok = true;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec))
        ok = pin_tid(static_cast<pid_t>(std::stol(e.path().filename().string())), {cpu}) && ok;
    return ok && !ec;
}

// CPU placement with --pin. Backend and frontend each get a CPU of their own. With
// three or more CPUs the driver's two threads share the rest; with two (this
// machine) there is nothing left, so each driver thread joins the process it talks
// to: the sender shares a CPU with the process whose entry port it fills, the
// receiver with the process whose exit port it drains. That keeps each socket's
// two ends on one CPU (warm caches, no cross-CPU wakeup on the driver hop) and
// leaves the ring hop, the thing measured, as the only cross-CPU path.
struct placement {
    bool active = false;
    int back = -1, front = -1;
    std::vector<int> sender, receiver;
    std::string describe;
};

placement plan_pinning(const std::string& direction) {
    placement p;
    const auto cpus = allowed_cpus();
    if (cpus.size() < 2) {
        p.describe = "not pinned: fewer than 2 CPUs";
        return p;
    }
    p.active = true;
    p.back = cpus[0];
    p.front = cpus[1];
    if (cpus.size() >= 3) {
        const std::vector<int> rest(cpus.begin() + 2, cpus.end());
        p.sender = p.receiver = rest;
    } else if (direction == "tx") {
        p.sender = {p.front};
        p.receiver = {p.back};
    } else {
        p.sender = {p.back};
        p.receiver = {p.front};
    }
    auto list = [](const std::vector<int>& v) {
        std::string s;
        for (int c : v) s += (s.empty() ? "" : ",") + std::to_string(c);
        return s;
    };
    p.describe = "back=" + std::to_string(p.back) + " front=" + std::to_string(p.front) +
                 " sender=" + list(p.sender) + " receiver=" + list(p.receiver);
    return p;
}

// ---- stats ----

struct back_counters {
    std::uint64_t tx_packets = 0, rx_packets = 0, entry_rx = 0;
    std::uint64_t packets = 0, ring_packets = 0, bytes = 0, copies = 0, maps = 0, unmaps = 0, batches = 0, static_hits = 0;
    std::uint64_t drops = 0, grant_errors = 0, peer_faults = 0;
    std::int64_t mono_ns = 0;  // when the process took the counters
    bool found = false;
};

back_counters sum_backend(const std::optional<json>& st) {
    back_counters c;
    if (!st || !st->contains("vifs")) return c;
    auto u = [](const json& q, const char* k) { return q.contains(k) ? q[k].get<std::uint64_t>() : 0; };
    c.mono_ns = st->value("monotonic_ns", std::int64_t{0});
    for (const auto& vif : (*st)["vifs"]) {
        if (!vif.contains("domid") || vif["domid"] != guest_domid) continue;
        c.found = true;
        for (const auto& q : vif["queues"]) {
            c.packets += u(q, "tx_packets") + u(q, "rx_packets");
            c.tx_packets += u(q, "tx_packets");
            c.rx_packets += u(q, "rx_packets");
            // frames the host port handed to the backend (rx direction's entry)
            c.entry_rx += u(q, "rx_packets") + u(q, "rx_drops") + u(q, "rx_errors") + u(q, "backlog_drops");
            // Packets that went through the rings (and their grant operations),
            // whether the far port then took them or dropped them.
            c.ring_packets += u(q, "tx_packets") + u(q, "tx_drops") + u(q, "tx_errors") + u(q, "rx_packets") +
                              u(q, "rx_drops") + u(q, "rx_errors");
            c.bytes += u(q, "tx_bytes") + u(q, "rx_bytes");
            c.copies += u(q, "grant_copies");
            c.maps += u(q, "grant_maps");
            c.unmaps += u(q, "grant_unmaps");
            c.batches += u(q, "copy_batches");
            c.static_hits += u(q, "static_hits");
            c.drops += u(q, "tx_drops") + u(q, "rx_drops") + u(q, "backlog_drops");
            c.grant_errors += u(q, "grant_errors");
            c.peer_faults += u(q, "peer_faults");
        }
    }
    return c;
}

struct front_counters {
    std::uint64_t tx_packets = 0, tx_drops = 0, rx_packets = 0;
    std::int64_t mono_ns = 0;
    bool found = false;
};

front_counters sum_frontend(const std::optional<json>& st) {
    front_counters c;
    if (!st || !st->contains("queues")) return c;
    c.found = true;
    c.mono_ns = st->value("monotonic_ns", std::int64_t{0});
    for (const auto& q : (*st)["queues"]) {
        c.tx_packets += q.value("tx_packets", std::uint64_t{0});
        c.tx_drops += q.value("tx_drops", std::uint64_t{0});
        c.rx_packets += q.value("rx_packets", std::uint64_t{0});
    }
    return c;
}

double round_to(double x, int digits) {
    const double m = std::pow(10.0, digits);
    return std::round(x * m) / m;
}

// ---- one case ----

struct counters {
    alignas(64) std::atomic<std::uint64_t> sent{0};
    alignas(64) std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> received_bytes{0};
    std::atomic<std::uint64_t> bad_size{0};
    alignas(64) std::atomic<bool> stop_send{false};
    std::atomic<bool> stop_recv{false};
};

void sender_loop(vifkit::io::packet_port& port, const std::vector<std::vector<std::byte>>& frames, counters& c,
                 const std::vector<int>& cpus) {
    if (!cpus.empty()) pin_tid(0, cpus);
    std::uint64_t n = 0;
    unsigned flow = 0;
    while (!c.stop_send.load(std::memory_order_relaxed)) {
        if (port.send(frames[flow])) {
            flow = (flow + 1) % frames.size();
            c.sent.store(++n, std::memory_order_relaxed);
            continue;
        }
        // Socket full: wait until it drains (bounded, so that stop is seen).
        pollfd p{port.fd(), POLLOUT, 0};
        ::poll(&p, 1, 10);
    }
}

void receiver_loop(vifkit::io::packet_port& port, std::size_t size, counters& c, const std::vector<int>& cpus) {
    if (!cpus.empty()) pin_tid(0, cpus);
    std::vector<std::byte> buf(vifkit::io::max_frame_size);
    std::uint64_t n = 0, bytes = 0, bad = 0;
    while (!c.stop_recv.load(std::memory_order_relaxed)) {
        pollfd p{port.fd(), POLLIN, 0};
        ::poll(&p, 1, 20);
        for (;;) {
            const long r = port.recv(buf);
            if (r <= 0) break;
            if (static_cast<std::size_t>(r) != size) ++bad;
            ++n;
            bytes += static_cast<std::uint64_t>(r);
            c.received_bytes.store(bytes, std::memory_order_relaxed);
            c.received.store(n, std::memory_order_relaxed);
        }
        c.bad_size.store(bad, std::memory_order_relaxed);
    }
}

// Send one frame every 10 ms until one arrives at the other end: both driver
// connections have been accepted and the path works end to end.
bool prime(vifkit::io::packet_port& in, vifkit::io::packet_port& out, const std::vector<std::byte>& frame,
           std::uint64_t& sent, std::uint64_t& received) {
    std::vector<std::byte> buf(vifkit::io::max_frame_size);
    const auto deadline = clk::now() + 10s;
    while (clk::now() < deadline && !g_interrupted) {
        if (in.send(frame)) ++sent;
        pollfd p{out.fd(), POLLIN, 0};
        ::poll(&p, 1, 10);
        bool got = false;
        for (long r; (r = out.recv(buf)) > 0;) {
            ++received;
            got = true;
        }
        if (got) {
            // Let stragglers of the priming arrive, so the measured run starts clean.
            std::this_thread::sleep_for(50ms);
            for (long r; (r = out.recv(buf)) > 0;) ++received;
            return true;
        }
    }
    return false;
}

std::string tail(const std::string& s, std::size_t n = 1500) { return s.size() > n ? s.substr(s.size() - n) : s; }

// --traffic gen: the entry process generates (gen:SIZE), the exit process
// counts and discards (null). No driver in between: pps is the exit process's
// own counter over the interval, timed by the process's own clock.
json measure_gen(json j, const bench_case& bc, const options& opt, emu_env& env, child& back, child& front,
                 const std::function<json(const std::string&)>& fail) {
    const std::string front_who = "front" + std::to_string(guest_domid);
    const bool tx = bc.direction == "tx";
    if (opt.pin) {
        const auto cpus = allowed_cpus();
        if (cpus.size() >= 2) {
            const bool ok = pin_process(back.pid(), cpus[0]) && pin_process(front.pid(), cpus[1]);
            j["pinning"] = "back=" + std::to_string(cpus[0]) + " front=" + std::to_string(cpus[1]) +
                           (ok ? "" : " (pinning failed)");
        } else {
            j["pinning"] = "not pinned: fewer than 2 CPUs";
        }
    }
    struct sample {
        back_counters b;
        front_counters f;
    };
    auto take = [&](sample& s) {
        s.b = sum_backend(env.stats(back, "back"));
        s.f = sum_frontend(env.stats(front, front_who));
        return s.b.found && s.f.found;
    };
    auto exit_count = [tx](const sample& s) { return tx ? s.b.tx_packets : s.f.rx_packets; };
    auto entry_count = [tx](const sample& s) { return tx ? s.f.tx_packets + s.f.tx_drops : s.b.entry_rx; };
    auto exit_ns = [tx](const sample& s) { return tx ? s.b.mono_ns : s.f.mono_ns; };
    auto exit_bytes_per = static_cast<double>(bc.size);

    const auto warm_end = clk::now() + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(opt.warmup));
    while (clk::now() < warm_end && !g_interrupted) std::this_thread::sleep_for(10ms);
    sample s0, s1;
    if (!take(s0)) return fail("cannot read the tools' stats");
    const std::string label = bc.mode + " " + std::to_string(bc.size) + "B " + bc.direction + " " + bc.poll;
    const auto t0 = clk::now();
    const auto t_end = t0 + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(opt.seconds));
    sample last = s0;
    bool stalled = false;
    while (!g_interrupted) {
        const auto next = std::min(t_end, clk::now() + 1s);
        while (clk::now() < next && !g_interrupted) std::this_thread::sleep_for(10ms);
        sample cur;
        if (!take(cur)) return fail("cannot read the tools' stats");
        const double dt = static_cast<double>(exit_ns(cur) - exit_ns(last)) / 1e9;
        const std::uint64_t d = exit_count(cur) - exit_count(last);
        if (d == 0 && dt >= 0.5) stalled = true;  // half a second or more without a packet out
        if (!opt.json_only && dt > 0) {
            std::fprintf(stderr, "\r[%s] %4.1f/%.0fs  %11.0f pps   ", label.c_str(),
                         std::chrono::duration<double>(clk::now() - t0).count(), opt.seconds,
                         static_cast<double>(d) / dt);
            std::fflush(stderr);
        }
        last = cur;
        if (clk::now() >= t_end) break;
    }
    s1 = last;
    if (!opt.json_only) std::fprintf(stderr, "\r%*s\r", 110, "");

    const double secs = static_cast<double>(exit_ns(s1) - exit_ns(s0)) / 1e9;
    const std::uint64_t out = exit_count(s1) - exit_count(s0);
    const std::uint64_t in = entry_count(s1) - entry_count(s0);
    const double pps = secs > 0 ? static_cast<double>(out) / secs : 0.0;
    j["pps"] = std::llround(pps);
    j["gbps"] = round_to(pps * exit_bytes_per * 8.0 / 1e9, 4);
    j["seconds"] = round_to(secs, 3);
    j["measured_received"] = out;
    j["sent"] = in;            // frames the entry process took from its generator in the interval
    j["received"] = out;       // frames the exit process delivered to its sink in the interval
    j["lost"] = in >= out ? in - out : 0;  // in flight at the edges, or dropped (see backend_drops)
    j["stalled"] = stalled;
    const std::uint64_t pk = s1.b.ring_packets - s0.b.ring_packets;
    auto per = [pk](std::uint64_t n) {
        return pk ? json(round_to(static_cast<double>(n) / static_cast<double>(pk), 4)) : json(nullptr);
    };
    const std::uint64_t ops = (s1.b.copies - s0.b.copies) + (s1.b.maps - s0.b.maps) + (s1.b.unmaps - s0.b.unmaps);
    j["backend_packets"] = s1.b.packets - s0.b.packets;
    j["backend_ring_packets"] = pk;
    j["grant_ops_per_packet"] = per(ops);
    j["grant_copies_per_packet"] = per(s1.b.copies - s0.b.copies);
    j["grant_maps_per_packet"] = per(s1.b.maps - s0.b.maps);
    j["copy_batches_per_packet"] = per(s1.b.batches - s0.b.batches);
    j["static_hits_per_packet"] = per(s1.b.static_hits - s0.b.static_hits);
    j["backend_drops"] = s1.b.drops;
    j["backend_grant_errors"] = s1.b.grant_errors;
    j["backend_peer_faults"] = s1.b.peer_faults;
    auto opt_json = [](std::optional<long> v) { return v ? json(*v) : json(nullptr); };
    j["backend_rss_kib"] = opt_json(rss_kib(back.pid()));
    j["backend_rss_anon_kib"] = opt_json(status_kib(back.pid(), "RssAnon"));
    j["frontend_rss_kib"] = opt_json(rss_kib(front.pid()));
    if (g_interrupted) j["interrupted"] = true;
    if (!back.alive() || !front.alive()) return fail("a tool exited during the run");
    return j;
}

json run_case(const bench_case& bc, const options& opt) {
    json j{{"mode", bc.mode},           {"size", bc.size},         {"queues", bc.queues},
           {"direction", bc.direction}, {"poll", bc.poll},         {"traffic", opt.traffic}};
    auto fail = [&](const std::string& why, emu_env* env) {
        j["error"] = why;
        if (env) std::cerr << "\n--- back.log ---\n" << tail(env->log("back")) << "\n--- front" << guest_domid
                           << ".log ---\n" << tail(env->log("front" + std::to_string(guest_domid))) << "\n";
        return j;
    };
    std::optional<emu_env> env;
    try {
        env.emplace();
    } catch (const std::exception& e) {
        return fail(std::string("emulated platform did not start: ") + e.what(), nullptr);
    }
    if (opt.traffic == "gen") {
        const std::string gen = "gen:" + std::to_string(bc.size);
        env->backend_port_spec = bc.direction == "tx" ? "null" : gen;
        env->frontend_port_spec = bc.direction == "tx" ? gen : "null";
    }
    child back = env->start_backend(backend_args(bc.mode, bc.queues, bc.poll));
    if (!env->attach(guest_domid)) return fail("vifkit-attach failed", &*env);
    child front = env->start_frontend(guest_domid, {"--queues", std::to_string(bc.queues), "--poll", bc.poll});
    if (!env->wait_connected(guest_domid)) return fail("vif did not connect", &*env);

    // Static mode: the frontend registers its pools after Connected; wait for it
    // (or for its fallback), so that no measured packet uses an ordinary grant.
    std::uint64_t static_grants = 0;
    bool static_fallback = false;
    if (bc.mode == "static") {
        const std::uint64_t want = 512ull * bc.queues;  // tx + rx pool pages per queue
        std::uint64_t last = 0;
        auto stable_since = clk::now();
        const auto deadline = clk::now() + 10s;
        while (clk::now() < deadline && !g_interrupted) {
            auto fst = env->stats(front, "front" + std::to_string(guest_domid));
            if (fst) {
                static_grants = fst->value("static_grants", std::uint64_t{0});
                static_fallback = fst->value("static_fallback", false);
            }
            if (static_fallback || static_grants >= want) break;
            if (static_grants != last) {
                last = static_grants;
                stable_since = clk::now();
            } else if (static_grants > 0 && clk::now() - stable_since > 1s) {
                break;  // limits (--static-per-vif) may cap it below `want`
            }
            std::this_thread::sleep_for(50ms);
        }
        if (static_grants == 0) return fail("static grants were not registered", &*env);
    }
    if (bc.mode == "static") {
        j["static_grants"] = static_grants;
        j["static_fallback"] = static_fallback;
    }
    if (opt.traffic == "gen")
        return measure_gen(j, bc, opt, *env, back, front,
                           [&](const std::string& why) { return fail(why, &*env); });

    auto host = vifkit::test::connect_port(env->backend_port(guest_domid));
    auto guest = vifkit::test::connect_port(env->frontend_port(guest_domid));
    if (!host || !guest) return fail("cannot connect to the tools' unix ports", &*env);
    vifkit::io::packet_port& in = bc.direction == "tx" ? *guest : *host;
    vifkit::io::packet_port& out = bc.direction == "tx" ? *host : *guest;

    std::vector<std::vector<std::byte>> frames;
    for (unsigned f = 0; f < flows; ++f) frames.push_back(make_frame(bc.size, f));

    std::uint64_t prime_sent = 0, prime_received = 0;
    if (!prime(in, out, frames[0], prime_sent, prime_received))
        return fail("no frame of " + std::to_string(bc.size) + " bytes got through in 10 s", &*env);

    placement pl;
    if (opt.pin) {
        pl = plan_pinning(bc.direction);
        if (pl.active) {
            if (!pin_process(back.pid(), pl.back) || !pin_process(front.pid(), pl.front))
                pl.describe += " (pinning failed: " + std::string(std::strerror(errno)) + ")";
        }
        j["pinning"] = pl.describe;
    }

    counters c;
    std::thread rx_thread(receiver_loop, std::ref(out), bc.size, std::ref(c), pl.receiver);
    std::thread tx_thread(sender_loop, std::ref(in), std::cref(frames), std::ref(c), pl.sender);

    const auto start = clk::now();
    const std::string label =
        bc.mode + " " + std::to_string(bc.size) + "B " + bc.direction + " q" + std::to_string(bc.queues);
    // Longest time without a received frame inside the measured interval: a vif
    // that stops moving packets (lost wake-up, stall) shows up here, not only as low pps.
    bool measuring = false;
    std::uint64_t gap_seen = 0;
    clk::time_point gap_since{}, gap_max_start{};
    clk::duration gap_max{};
    auto sample_gap = [&] {
        if (!measuring) return;
        const auto now = clk::now();
        const std::uint64_t r = c.received.load(std::memory_order_relaxed);
        if (r != gap_seen) {
            gap_seen = r;
            gap_since = now;
        } else if (now - gap_since > gap_max) {
            gap_max = now - gap_since;
            gap_max_start = gap_since;
        }
    };
    auto sleep_until = [&](clk::time_point t) {
        while (clk::now() < t && !g_interrupted) {
            std::this_thread::sleep_for(std::min<clk::duration>(10ms, t - clk::now()));
            sample_gap();
        }
    };
    sleep_until(start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(opt.warmup)));

    const auto t0 = clk::now();
    const std::uint64_t r0 = c.received.load(), b0 = c.received_bytes.load();
    measuring = true;
    gap_seen = r0;
    gap_since = t0;
    const auto st0 = sum_backend(env->stats(back, "back"));
    const auto t_end = t0 + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(opt.seconds));
    auto last_tick = t0;
    std::uint64_t last_r = r0;
    while (clk::now() < t_end && !g_interrupted) {
        sleep_until(std::min(t_end, last_tick + 1s));
        const auto now = clk::now();
        if (!opt.json_only && now - last_tick >= 1s) {
            const std::uint64_t r = c.received.load();
            const double dt = std::chrono::duration<double>(now - last_tick).count();
            std::fprintf(stderr, "\r[%s] %4.1f/%.0fs  %10.0f pps  sent %llu  received %llu   ", label.c_str(),
                         std::chrono::duration<double>(now - t0).count(), opt.seconds,
                         static_cast<double>(r - last_r) / dt, static_cast<unsigned long long>(c.sent.load()),
                         static_cast<unsigned long long>(r));
            std::fflush(stderr);
            last_tick = now;
            last_r = r;
        }
    }
    sample_gap();
    measuring = false;
    const auto t1 = clk::now();
    const std::uint64_t r1 = c.received.load(), b1 = c.received_bytes.load();
    const auto st1 = sum_backend(env->stats(back, "back"));

    // Stop sending, let the pipeline drain (until 300 ms pass without a frame).
    c.stop_send = true;
    tx_thread.join();
    {
        std::uint64_t seen = c.received.load();
        auto quiet_since = clk::now();
        const auto deadline = clk::now() + 5s;
        while (clk::now() < deadline) {
            std::this_thread::sleep_for(20ms);
            const std::uint64_t now_seen = c.received.load();
            if (now_seen != seen) {
                seen = now_seen;
                quiet_since = clk::now();
            } else if (clk::now() - quiet_since > 300ms) {
                break;
            }
        }
    }
    c.stop_recv = true;
    rx_thread.join();
    if (!opt.json_only) std::fprintf(stderr, "\r%*s\r", 110, "");

    const auto st_end = sum_backend(env->stats(back, "back"));
    const auto back_rss = rss_kib(back.pid());
    const auto front_rss = rss_kib(front.pid());

    const double secs = std::chrono::duration<double>(t1 - t0).count();
    const std::uint64_t win = r1 - r0;
    const double pps = secs > 0 ? static_cast<double>(win) / secs : 0.0;
    const double gbps = secs > 0 ? static_cast<double>(b1 - b0) * 8.0 / secs / 1e9 : 0.0;
    const std::uint64_t sent = c.sent.load() + prime_sent;
    const std::uint64_t received = c.received.load() + prime_received;

    j["pps"] = std::llround(pps);
    j["gbps"] = round_to(gbps, 4);
    j["seconds"] = round_to(secs, 3);
    j["measured_received"] = win;
    j["sent"] = sent;
    j["received"] = received;
    j["lost"] = sent >= received ? sent - received : 0;
    j["bad_size"] = c.bad_size.load();
    const auto gap_ms = std::chrono::duration_cast<std::chrono::milliseconds>(gap_max).count();
    j["max_gap_ms"] = gap_ms;
    // No frame for a second or more while the sender kept offering: the vif stalled.
    j["stalled"] = gap_ms >= 1000;
    if (gap_ms >= 1000)
        j["stalled_at_s"] = round_to(std::chrono::duration<double>(gap_max_start - t0).count(), 2);
    if (st0.found && st1.found) {
        const std::uint64_t pk = st1.ring_packets - st0.ring_packets;
        const std::uint64_t ops = (st1.copies - st0.copies) + (st1.maps - st0.maps) + (st1.unmaps - st0.unmaps);
        // Per packet that went through the rings; null when none did (a stall).
        auto per = [pk](std::uint64_t n) {
            return pk ? json(round_to(static_cast<double>(n) / static_cast<double>(pk), 4)) : json(nullptr);
        };
        j["backend_packets"] = st1.packets - st0.packets;
        j["backend_ring_packets"] = pk;
        j["grant_ops_per_packet"] = per(ops);
        j["grant_copies_per_packet"] = per(st1.copies - st0.copies);
        j["grant_maps_per_packet"] = per(st1.maps - st0.maps);
        j["copy_batches_per_packet"] = per(st1.batches - st0.batches);
        j["static_hits_per_packet"] = per(st1.static_hits - st0.static_hits);
    } else {
        j["grant_ops_per_packet"] = nullptr;
        j["static_hits_per_packet"] = nullptr;
    }
    if (st_end.found) {
        j["backend_drops"] = st_end.drops;
        j["backend_grant_errors"] = st_end.grant_errors;
        j["backend_peer_faults"] = st_end.peer_faults;
    }
    j["backend_rss_kib"] = back_rss ? json(*back_rss) : json(nullptr);
    j["frontend_rss_kib"] = front_rss ? json(*front_rss) : json(nullptr);
    if (g_interrupted) j["interrupted"] = true;
    if (!back.alive() || !front.alive()) return fail("a tool exited during the run", &*env);
    return j;
}

// ---- output ----

std::string fmt_num(const json& v, int prec = 0) {
    if (v.is_null()) return "-";
    char b[64];
    if (v.is_number_float() || prec > 0) std::snprintf(b, sizeof b, "%.*f", prec, v.get<double>());
    else std::snprintf(b, sizeof b, "%lld", static_cast<long long>(v.get<double>()));
    return b;
}

std::string table(const std::vector<json>& results) {
    // pps relative to the copy, map, raw and DPDK rows of the same size/direction
    // (same run). DPDK rows have no poll mode; vifkit rows compare within a poll mode.
    auto key = [](const json& r, const std::string& poll) {
        return std::to_string(r["size"].get<std::size_t>()) + "/" + r["direction"].get<std::string>() + "/" +
               std::to_string(r["queues"].get<unsigned>()) + "/" + poll;
    };
    std::map<std::string, double> ref[4];  // copy, map, raw, dpdk
    const char* ref_mode[4] = {"copy", "map", "raw", "dpdk"};
    for (const auto& r : results) {
        if (!r.contains("pps") || r.contains("error")) continue;
        for (int i = 0; i < 4; ++i)
            if (r["mode"] == ref_mode[i]) ref[i][key(r, i == 3 ? "-" : r.value("poll", "-"))] = r["pps"].get<double>();
    }
    auto ratio = [&](const json& r, int i) -> std::string {
        if (r["mode"] == ref_mode[i] || r["mode"] == "dpdk") return "-";
        auto it = ref[i].find(key(r, i == 3 ? "-" : r.value("poll", "-")));
        if (it == ref[i].end() || it->second <= 0) return "-";
        char b[32];
        std::snprintf(b, sizeof b, "%.2f", r["pps"].get<double>() / it->second);
        return b;
    };
    std::ostringstream o;
    char line[400];
    const char* hfmt = "%-6s %6s %-3s %-5s %11s %8s %6s %6s %6s %6s %9s %9s %9s %9s %9s %s\n";
    std::snprintf(line, sizeof line, hfmt, "mode", "size", "dir", "poll", "pps", "Gbit/s", "xcopy", "xmap", "xraw",
                  "xdpdk", "gops/pkt", "static/p", "back_KiB", "back_anon", "front_KiB", "note");
    o << line;
    for (const auto& r : results) {
        const std::string mode = r["mode"], dir = r["direction"], poll = r.value("poll", "-");
        if (r.contains("error")) {
            std::snprintf(line, sizeof line, "%-6s %6zu %-3s %-5s  error: %s\n", mode.c_str(),
                          r["size"].get<std::size_t>(), dir.c_str(), poll.c_str(),
                          r["error"].get<std::string>().c_str());
            o << line;
            continue;
        }
        std::string note = r.value("stalled", false) ? "STALLED" : "";
        if (r.contains("note")) note += r["note"].get<std::string>();
        auto num = [&](const char* k, int prec = 0) { return r.contains(k) ? fmt_num(r[k], prec) : std::string("-"); };
        std::snprintf(line, sizeof line, hfmt, mode.c_str(), std::to_string(r["size"].get<std::size_t>()).c_str(),
                      dir.c_str(), poll.c_str(), num("pps").c_str(), num("gbps", 3).c_str(), ratio(r, 0).c_str(),
                      ratio(r, 1).c_str(), ratio(r, 2).c_str(), ratio(r, 3).c_str(),
                      num("grant_ops_per_packet", 3).c_str(), num("static_hits_per_packet", 3).c_str(),
                      num("backend_rss_kib").c_str(), num("backend_rss_anon_kib").c_str(),
                      num("frontend_rss_kib").c_str(), note.c_str());
        o << line;
    }
    return o.str();
}

// The DPDK reference (vhost-user <-> virtio-user, testpmd txonly/rxonly) for
// one size and direction: runs the anchor script, parses its last line
// "dpdk vhost-user rx_pps=N ...".
json run_dpdk(const std::string& script, std::size_t size, const std::string& dir, double seconds) {
    json j{{"mode", "dpdk"}, {"size", size}, {"direction", dir}, {"queues", 1}, {"poll", "-"}};
    const int secs = std::max(1, static_cast<int>(std::lround(seconds)));
    const std::string cmd = "bash '" + script + "' " + std::to_string(size) + " " + std::to_string(secs) + " " + dir +
                            " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) {
        j["error"] = "cannot run " + script;
        return j;
    }
    std::string out, last;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) {
        out += buf;
        std::string l = buf;
        while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
        if (!l.empty()) last = l;
    }
    const int rc = ::pclose(p);
    const auto at = last.find("rx_pps=");
    if (rc != 0 || last.rfind("dpdk vhost-user", 0) != 0 || at == std::string::npos) {
        j["error"] = "anchor failed (exit " + std::to_string(rc) + "): " + tail(out, 300);
        return j;
    }
    const double pps = std::strtod(last.c_str() + at + 7, nullptr);
    j["pps"] = std::llround(pps);
    j["gbps"] = round_to(pps * static_cast<double>(size) * 8.0 / 1e9, 4);
    j["anchor"] = last;
    return j;
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

// Clustered bars: one group per size/direction/queues, one bar per mode.
bool plot(const std::vector<json>& results, const std::string& png, std::string* why) {
    if (!have_gnuplot()) {
        *why = "gnuplot not found";
        return false;
    }
    std::vector<std::string> modes, groups;
    std::map<std::pair<std::string, std::string>, double> pps;
    for (const auto& r : results) {
        if (r.contains("error")) continue;
        const std::string poll = r.value("poll", "-");
        const std::string m = r["mode"].get<std::string>() + (poll == "-" || poll == "busy" ? "" : " " + poll);
        const std::string g = std::to_string(r["size"].get<std::size_t>()) + "B " + r["direction"].get<std::string>() +
                              " q" + std::to_string(r["queues"].get<unsigned>());
        if (std::find(modes.begin(), modes.end(), m) == modes.end()) modes.push_back(m);
        if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
        pps[{g, m}] = r["pps"].get<double>();
    }
    if (groups.empty()) {
        *why = "no successful case to plot";
        return false;
    }
    char dtmpl[] = "/tmp/vifkit-bench-plot.XXXXXX";
    if (!::mkdtemp(dtmpl)) {
        *why = "mkdtemp failed";
        return false;
    }
    const std::string dir = dtmpl, dat = dir + "/data.dat", gp = dir + "/plot.gp";
    {
        std::ofstream d(dat);  // no header row: titles come from the plot command
        for (const auto& g : groups) {
            d << '"' << g << '"';
            for (const auto& m : modes) {
                auto it = pps.find({g, m});
                d << ' ';
                if (it == pps.end()) d << '?';
                else d << it->second;
            }
            d << '\n';
        }
    }
    {
        std::ofstream s(gp);
        s << "set terminal pngcairo size 1000,560 noenhanced font ',10'\n"
          << "set output '" << png << "'\n"
          << "set datafile missing '?'\n"
          << "set title 'vifkit-bench: packets per second (emulated Xen)'\n"
          << "set ylabel 'packets/s'\nset grid ytics\nset key top right\n"
          << "set style data histograms\nset style histogram clustered gap 1\n"
          << "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset yrange [0:*]\n"
          << "set xtics rotate by -20\nset offsets 0.4, 0.4, 0, 0\n";
        s << "plot ";
        for (std::size_t i = 0; i < modes.size(); ++i) {
            s << (i ? ", " : "") << "'" << dat << "' using " << (i + 2);
            if (i == 0) s << ":xtic(1)";
            s << " title '" << modes[i] << "'";
        }
        s << '\n';
    }
    const int rc = std::system(("gnuplot '" + gp + "' 2>'" + dir + "/err'").c_str());
    std::error_code ec;
    if (rc != 0) {
        std::ifstream e(dir + "/err");
        std::stringstream ss;
        ss << e.rdbuf();
        *why = "gnuplot failed: " + ss.str();
        fs::remove_all(dir, ec);
        return false;
    }
    fs::remove_all(dir, ec);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "vifkit-bench: packet rate of vifkit-back + vifkit-front over the emulated Xen platform.\n"
        "Each case starts vifkit-xenstored (broker), vifkit-back, vifkit-attach and vifkit-front\n"
        "(from this executable's directory, or $VIFKIT_BIN_DIR), each pinned to its own CPU. The\n"
        "entry process generates fixed-size frames (port gen:SIZE), the exit process counts them\n"
        "(port null). Prints one JSON object per case on stdout."};
    options opt;
    std::vector<std::string> modes, directions;
    std::vector<std::size_t> sizes;
    app.add_option("--mode", modes,
                   "copy: grant copy, no static grants; map: grant map (guest transmit), no static grants;\n"
                   "static: backend defaults with static grants (persistent mappings);\n"
                   "raw: no grant checks at all, the frontend's memory mapped once (the design's ceiling);\n"
                   "all = the four. Repeatable or comma-separated. Default: all")
        ->delimiter(',')
        ->check(CLI::IsMember({"copy", "map", "static", "raw", "all"}));
    std::vector<std::string> polls;
    app.add_option("--poll", polls,
                   "busy: both processes spin on their rings (no notifications); event: they sleep in epoll\n"
                   "and wake on event channels (the tools' default); both = a case of each. Default: busy")
        ->delimiter(',')
        ->check(CLI::IsMember({"event", "busy", "both"}));
    app.add_option("--traffic", opt.traffic,
                   "gen: in-process generator and sink ports (gen:SIZE / null), no driver;\n"
                   "unix: driver threads here send into one unix port and count at the other")
        ->check(CLI::IsMember({"gen", "unix"}))
        ->capture_default_str();
    app.add_option("--dpdk", opt.dpdk,
                   "Also run this DPDK anchor script (dpdk-vhost-anchor.sh SIZE SECONDS DIR) for each\n"
                   "size and direction, and show vifkit's pps relative to it (xdpdk)");
    app.add_option("--size", sizes, "Ethernet frame length in bytes, no FCS (14..65535). Repeatable. Default: 64,1500,65535")
        ->delimiter(',')
        ->check(CLI::Range(std::size_t{14}, std::size_t{65535}));
    app.add_option("--direction", directions,
                   "tx: guest transmit (frontend guest port -> backend host port); rx: guest receive\n"
                   "(the reverse); both = a tx case and an rx case. Repeatable. Default: both")
        ->delimiter(',')
        ->check(CLI::IsMember({"tx", "rx", "both"}));
    app.add_option("--seconds", opt.seconds, "Measured seconds per case")->check(CLI::Range(0.1, 3600.0))->capture_default_str();
    app.add_option("--warmup", opt.warmup, "Warm-up seconds before measuring")->check(CLI::Range(0.0, 60.0))->capture_default_str();
    app.add_option("--queues", opt.queues, "Queues (frontend --queues, backend --max-queues)")
        ->check(CLI::Range(1u, 64u))
        ->capture_default_str();
    app.add_flag("--json", opt.json_only, "Machine output: only the JSON lines on stdout, no progress line");
    app.add_flag("--table", opt.table, "Also print a human-readable table (to stderr with --json)");
    bool no_pin = false;
    app.add_flag("--pin", opt.pin,
                 "Pin backend and frontend to separate CPUs (sched_setaffinity; the default). With\n"
                 "--traffic unix and 2 CPUs the driver's sender joins the process it feeds and its\n"
                 "receiver the one it drains");
    app.add_flag("--no-pin", no_pin, "Let the scheduler place everything");
    app.add_option("--plot", opt.plot, "Write a bar chart of pps per mode/size/direction to this PNG (needs gnuplot)");
    CLI11_PARSE(app, argc, argv);

    auto expand = [](const std::vector<std::string>& in, const std::string& all_word,
                     const std::vector<std::string>& all) {
        std::vector<std::string> out;
        for (const auto& v : in.empty() ? std::vector<std::string>{all_word} : in) {
            for (const auto& x : v == all_word ? all : std::vector<std::string>{v})
                if (std::find(out.begin(), out.end(), x) == out.end()) out.push_back(x);
        }
        return out;
    };
    opt.modes = expand(modes, "all", {"copy", "map", "static", "raw"});
    if (!polls.empty()) opt.polls = expand(polls, "both", {"busy", "event"});
    if (no_pin) opt.pin = false;
    opt.directions = expand(directions, "both", {"tx", "rx"});
    if (!sizes.empty()) {
        opt.sizes.clear();
        for (auto s : sizes)
            if (std::find(opt.sizes.begin(), opt.sizes.end(), s) == opt.sizes.end()) opt.sizes.push_back(s);
    }

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);

    std::vector<json> results;
    bool ok = true;
    auto report = [&](json r) {
        std::cout << r.dump() << std::endl;
        if (r.contains("error")) {
            ok = false;
            std::cerr << "case " << r["mode"].get<std::string>() << " " << r["size"] << " "
                      << r["direction"].get<std::string>() << ": " << r["error"].get<std::string>() << "\n";
        }
        results.push_back(std::move(r));
    };
    // Size and direction outermost: the cases compared with each other run
    // back to back, on the same machine state.
    for (auto s : opt.sizes) {
        for (const auto& d : opt.directions) {
            if (!opt.dpdk.empty() && !g_interrupted) {
                if (!opt.json_only) std::fprintf(stderr, "[dpdk %zuB %s] running the anchor...\r", s, d.c_str());
                report(run_dpdk(opt.dpdk, s, d, opt.seconds));
            }
            for (const auto& poll : opt.polls)
                for (const auto& m : opt.modes)
                    if (!g_interrupted) report(run_case({m, s, d, opt.queues, poll}, opt));
        }
    }
    if (opt.table) (opt.json_only ? std::cerr : std::cout) << table(results) << std::flush;
    if (!opt.plot.empty()) {
        std::string why;
        if (plot(results, opt.plot, &why)) {
            if (!opt.json_only) std::cerr << "plot written to " << opt.plot << "\n";
        } else {
            std::cerr << "no plot: " << why << "\n";
        }
    }
    if (g_interrupted) return 130;
    return ok ? 0 : 1;
}
