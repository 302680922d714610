// vifkit-soak: long-running load over many vifs of one vifkit-back, checking that
// nothing is lost or corrupted and that memory stays flat.
//
// One emulated platform (tests/support/emu_harness), one vifkit-back
// (--max-queues Q) and one vifkit-front per guest (guests 1..V, --queues Q), all
// over the default "unix:" ports. This process drives both directions of every
// vif at once from one poll loop:
//
//   guest transmit: guest port -> netfront -> tx ring -> netback -> host port
//   guest receive:  host port -> netback -> rx ring -> netfront -> guest port
//
// Each frame is IPv4/UDP (varied source address and port, so that the Toeplitz
// steering of both ends uses every queue) and carries the vif, the direction, a
// sequence number and a checksum of its payload. Frames of different flows may be
// reordered across queues, so loss is counted with a per-direction bitmap of the
// received sequence numbers, not by order. The sender is windowed (at most
// --window frames in flight per vif and direction), so unix socket backpressure
// never drops a frame.
//
// Every --report-seconds (default 60 s) and at the end: elapsed, frames
// sent/received/lost/corrupted per direction (summed over vifs), pps, and the
// RSS of vifkit-back and of all vifkit-front processes together. At the end a
// JSON summary; the exit status is 0 only if nothing was lost or corrupted.
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "emu_harness.hpp"
#include "vifkit/wire/checksum.hpp"

namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using nlohmann::json;
using vifkit::test::child;
using vifkit::test::emu_env;

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted.store(true); }

constexpr std::uint32_t magic = 0x534f414b;  // "SOAK"
constexpr unsigned flows_per_vif = 16;
constexpr std::size_t hdr_len = 14 + 20 + 8;              // Ethernet + IPv4 + UDP
constexpr std::size_t meta_len = 4 + 2 + 1 + 1 + 8 + 4;   // magic, vif, dir, flow, seq, checksum
constexpr std::size_t min_frame = hdr_len + meta_len;

std::uint32_t mix(std::uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

// FNV-1a over the payload after the checksum field.
std::uint32_t fnv1a(const std::uint8_t* p, std::size_t n) {
    std::uint32_t h = 2166136261U;
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619U;
    return h;
}

std::uint16_t ip_checksum(const std::uint8_t* p, std::size_t n) {
    return vifkit::wire::internet_checksum(std::as_bytes(std::span(p, n)));
}

void put16(std::uint8_t* p, std::uint32_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) {
    put16(p, v >> 16);
    put16(p + 2, v);
}
std::uint32_t get16(const std::uint8_t* p) { return (std::uint32_t(p[0]) << 8) | p[1]; }
std::uint32_t get32(const std::uint8_t* p) { return (get16(p) << 16) | get16(p + 2); }

// dir 0 = guest transmit, 1 = guest receive.
void build_frame(std::vector<std::byte>& out, unsigned vif, unsigned dir, std::uint64_t seq) {
    const std::uint32_t r = mix(static_cast<std::uint32_t>(seq * 2654435761U) ^ (vif << 20) ^ (dir << 30));
    const unsigned flow = r % flows_per_vif;
    const std::size_t size = min_frame + (r >> 8) % (1514 - min_frame + 1);
    out.resize(size);
    auto* f = reinterpret_cast<std::uint8_t*>(out.data());
    const std::uint8_t eth[14] = {0x02, 0x00, 0x00, 0x00, static_cast<std::uint8_t>(dir), 0x01,
                                  0x02, 0x01, 0x00, static_cast<std::uint8_t>(vif), static_cast<std::uint8_t>(dir),
                                  static_cast<std::uint8_t>(flow), 0x08, 0x00};
    std::memcpy(f, eth, 14);
    std::uint8_t* ip = f + 14;
    std::memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, static_cast<std::uint32_t>(size - 14));
    ip[6] = 0x40;  // DF
    ip[8] = 64;
    ip[9] = 17;  // UDP
    const std::uint8_t src[4] = {10, static_cast<std::uint8_t>(1 + dir), static_cast<std::uint8_t>(vif),
                                 static_cast<std::uint8_t>(flow + 1)};
    const std::uint8_t dst[4] = {10, static_cast<std::uint8_t>(2 - dir), static_cast<std::uint8_t>(vif), 1};
    std::memcpy(ip + 12, src, 4);
    std::memcpy(ip + 16, dst, 4);
    put16(ip + 10, ip_checksum(ip, 20));
    std::uint8_t* udp = ip + 20;
    put16(udp, 20000 + flow * 7);
    put16(udp + 2, 9999);
    put16(udp + 4, static_cast<std::uint32_t>(size - 34));
    put16(udp + 6, 0);  // no UDP checksum
    std::uint8_t* m = f + hdr_len;
    put32(m, magic);
    put16(m + 4, vif);
    m[6] = static_cast<std::uint8_t>(dir);
    m[7] = static_cast<std::uint8_t>(flow);
    put32(m + 8, static_cast<std::uint32_t>(seq >> 32));
    put32(m + 12, static_cast<std::uint32_t>(seq));
    std::uint8_t* body = m + meta_len;
    const std::size_t body_len = size - min_frame;
    std::uint32_t x = r;
    for (std::size_t i = 0; i < body_len; ++i) {
        if ((i & 3) == 0) x = mix(x + static_cast<std::uint32_t>(i));
        body[i] = static_cast<std::uint8_t>(x >> ((i & 3) * 8));
    }
    // the checksum covers vif, dir, flow, seq and the body
    put32(m + 16, fnv1a(m + 4, 12) ^ fnv1a(body, body_len));
}

// Returns the sequence number if the frame is intact and belongs to (vif, dir).
std::optional<std::uint64_t> check_frame(std::span<const std::byte> fr, unsigned vif, unsigned dir) {
    if (fr.size() < min_frame || fr.size() > 1514) return std::nullopt;
    const auto* f = reinterpret_cast<const std::uint8_t*>(fr.data());
    const std::uint8_t* m = f + hdr_len;
    if (get32(m) != magic || get16(m + 4) != vif || m[6] != dir) return std::nullopt;
    const std::uint64_t seq = (std::uint64_t(get32(m + 8)) << 32) | get32(m + 12);
    const std::uint8_t* body = m + meta_len;
    const std::size_t body_len = fr.size() - min_frame;
    if (get32(m + 16) != (fnv1a(m + 4, 12) ^ fnv1a(body, body_len))) return std::nullopt;
    // and the whole frame must be exactly what was sent (headers included)
    std::vector<std::byte> want;
    build_frame(want, vif, dir, seq);
    if (want.size() != fr.size() || std::memcmp(want.data(), fr.data(), fr.size()) != 0) return std::nullopt;
    return seq;
}

struct stream {
    vifkit::io::packet_port* from = nullptr;
    vifkit::io::packet_port* to = nullptr;
    unsigned vif = 0, dir = 0;
    std::uint64_t sent = 0, received = 0, corrupted = 0, duplicates = 0;
    std::vector<std::uint64_t> seen;  // bitmap of received sequence numbers
    clk::time_point last_rx = clk::now();
    std::uint64_t written_off = 0;  // frames presumed lost after a stall (window credit given back)

    [[nodiscard]] std::uint64_t in_flight() const { return sent - received - written_off; }
    bool mark(std::uint64_t seq) {
        if (seq >= sent) return false;
        const std::size_t w = seq / 64;
        if (w >= seen.size()) seen.resize(std::max<std::size_t>(w + 1, seen.size() * 2), 0);
        const std::uint64_t bit = std::uint64_t{1} << (seq % 64);
        if (seen[w] & bit) return false;
        seen[w] |= bit;
        return true;
    }
};

struct vif_ports {
    child front;
    std::unique_ptr<vifkit::io::packet_port> host, guest;
};

long rss_kib(pid_t pid) {
    if (pid <= 0) return 0;
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return 0;
}

struct totals {
    std::uint64_t sent = 0, received = 0, corrupted = 0, duplicates = 0, in_flight = 0, written_off = 0;
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"vifkit-soak: many vifs, both directions, for a long time; checks loss, corruption and RSS"};
    unsigned vifs = 32, queues = 2, window = 64;
    double minutes = 10, seconds = 0, report_seconds = 60, warmup_seconds = 60, stall_seconds = 10;
    app.add_option("--vifs", vifs, "Guests (one vifkit-front each)")->check(CLI::Range(1u, 200u))->capture_default_str();
    app.add_option("--queues", queues, "Queues per vif (vifkit-back --max-queues, vifkit-front --queues)")
        ->check(CLI::Range(1u, 8u))
        ->capture_default_str();
    app.add_option("--minutes", minutes, "Duration")->capture_default_str();
    app.add_option("--seconds", seconds, "Duration in seconds (overrides --minutes)");
    app.add_option("--window", window, "Frames in flight per vif and direction")->check(CLI::Range(1u, 4096u))->capture_default_str();
    app.add_option("--report-seconds", report_seconds, "Progress line interval (capped to a fifth of a short run)")
        ->capture_default_str();
    app.add_option("--warmup-seconds", warmup_seconds, "RSS samples before this are not the flatness baseline (capped to a fifth of a short run)")
        ->capture_default_str();
    app.add_option("--stall-seconds", stall_seconds, "A stream without progress this long counts its frames in flight as lost")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    const double total_s = seconds > 0 ? seconds : minutes * 60;
    report_seconds = std::max(1.0, std::min(report_seconds, total_s / 5));
    warmup_seconds = std::min(warmup_seconds, total_s / 5);

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);

    std::unique_ptr<emu_env> env;
    try {
        env = std::make_unique<emu_env>();
    } catch (const std::exception& e) {
        std::cerr << "vifkit-soak: " << e.what() << "\n";
        return 2;
    }
    child back = env->start_backend({"--max-queues", std::to_string(queues)});
    std::vector<vif_ports> v(vifs);
    for (unsigned g = 1; g <= vifs; ++g) {
        if (!env->attach(g)) {
            std::cerr << "vifkit-soak: attach guest " << g << " failed\n" << env->log("attach");
            return 2;
        }
        v[g - 1].front = env->start_frontend(g, {"--queues", std::to_string(queues)});
    }
    for (unsigned g = 1; g <= vifs; ++g) {
        if (!env->wait_connected(g, 0, 60s)) {
            std::cerr << "vifkit-soak: vif " << g << " did not connect\n"
                      << env->log("back") << env->log("front" + std::to_string(g));
            return 2;
        }
        v[g - 1].host = vifkit::test::connect_port(env->backend_port(g));
        v[g - 1].guest = vifkit::test::connect_port(env->frontend_port(g));
        if (!v[g - 1].host || !v[g - 1].guest) {
            std::cerr << "vifkit-soak: cannot connect the ports of vif " << g << "\n";
            return 2;
        }
    }
    std::fprintf(stderr, "vifkit-soak: %u vifs x %u queues connected, running %.0f s (window %u per direction)\n", vifs,
                 queues, total_s, window);

    std::vector<stream> streams;
    streams.reserve(2 * vifs);
    for (unsigned g = 1; g <= vifs; ++g) {
        stream tx;
        tx.from = v[g - 1].guest.get();
        tx.to = v[g - 1].host.get();
        tx.vif = g;
        tx.dir = 0;
        streams.push_back(std::move(tx));
        stream rx;
        rx.from = v[g - 1].host.get();
        rx.to = v[g - 1].guest.get();
        rx.vif = g;
        rx.dir = 1;
        streams.push_back(std::move(rx));
    }
    std::vector<pollfd> pfds(streams.size());
    for (std::size_t i = 0; i < streams.size(); ++i) pfds[i] = {streams[i].to->fd(), POLLIN, 0};

    auto sum = [&](unsigned dir) {
        totals t;
        for (const auto& s : streams) {
            if (s.dir != dir) continue;
            t.sent += s.sent;
            t.received += s.received;
            t.corrupted += s.corrupted;
            t.duplicates += s.duplicates;
            t.in_flight += s.in_flight();
            t.written_off += s.written_off;
        }
        return t;
    };
    auto front_rss = [&] {
        long kib = 0;
        for (auto& p : v) kib += rss_kib(p.front.pid());
        return kib;
    };

    json samples = json::array();
    const auto start = clk::now();
    auto next_report = start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(report_seconds));
    const auto end = start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(total_s));
    std::uint64_t last_frames = 0;
    auto last_time = start;
    bool procs_ok = true;

    auto report = [&](bool final_line) {
        const auto now = clk::now();
        const double el = std::chrono::duration<double>(now - start).count();
        const totals t = sum(0), r = sum(1);
        const std::uint64_t frames = t.received + r.received;
        const double dt = std::chrono::duration<double>(now - last_time).count();
        const double pps = final_line ? (el > 0 ? static_cast<double>(frames) / el : 0)
                                      : (dt > 0 ? static_cast<double>(frames - last_frames) / dt : 0);
        last_frames = frames;
        last_time = now;
        const long brss = rss_kib(back.pid()), frss = front_rss();
        if (!final_line || samples.empty() || el - samples.back()["elapsed_s"].get<double>() > 1.0)
            samples.push_back({{"elapsed_s", el}, {"back_rss_kib", brss}, {"front_rss_kib", frss}, {"pps", pps}});
        // lost so far = frames written off after a stall (frames in flight are not lost yet)
        std::printf(
            "%s%7.1fs  tx: sent %llu recv %llu lost %llu corrupt %llu | rx: sent %llu recv %llu lost %llu corrupt %llu | "
            "%.0f pps | rss back %ld KiB, fronts %ld KiB\n",
            final_line ? "final " : "", el, static_cast<unsigned long long>(t.sent),
            static_cast<unsigned long long>(t.received),
            static_cast<unsigned long long>(final_line ? t.sent - t.received : t.written_off),
            static_cast<unsigned long long>(t.corrupted), static_cast<unsigned long long>(r.sent),
            static_cast<unsigned long long>(r.received),
            static_cast<unsigned long long>(final_line ? r.sent - r.received : r.written_off),
            static_cast<unsigned long long>(r.corrupted), pps, brss, frss);
        std::fflush(stdout);
    };

    std::vector<std::byte> frame, buf(vifkit::io::max_frame_size);
    auto drain = [&](stream& s) {
        for (;;) {
            const long n = s.to->recv(buf);
            if (n <= 0) break;
            auto seq = check_frame(std::span(buf.data(), static_cast<std::size_t>(n)), s.vif, s.dir);
            if (!seq) {
                ++s.corrupted;
                continue;
            }
            if (!s.mark(*seq)) {
                ++s.duplicates;
                continue;
            }
            ++s.received;
            if (s.written_off > 0 && s.sent - s.received < s.written_off) s.written_off = s.sent - s.received;
            s.last_rx = clk::now();
        }
    };

    while (clk::now() < end && !g_interrupted.load()) {
        for (auto& s : streams) {
            // a little at a time, so that every stream gets its turn
            for (unsigned k = 0; k < 16 && s.in_flight() < window; ++k) {
                build_frame(frame, s.vif, s.dir, s.sent);
                if (!s.from->send(frame)) break;  // socket full: wait for the other side
                if (s.in_flight() == 0) s.last_rx = clk::now();
                ++s.sent;
            }
        }
        ::poll(pfds.data(), pfds.size(), 5);
        const auto now = clk::now();
        for (std::size_t i = 0; i < streams.size(); ++i) {
            auto& s = streams[i];
            if (pfds[i].revents & POLLIN) drain(s);
            if (s.in_flight() > 0 && now - s.last_rx > std::chrono::duration<double>(stall_seconds)) {
                std::fprintf(stderr, "vifkit-soak: vif %u %s stalled with %llu frames in flight\n", s.vif,
                             s.dir == 0 ? "tx" : "rx", static_cast<unsigned long long>(s.in_flight()));
                s.written_off += s.in_flight();
                s.last_rx = now;
            }
        }
        if (now >= next_report) {
            report(false);
            next_report += std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(report_seconds));
            if (!back.alive()) procs_ok = false;
            for (auto& p : v)
                if (!p.front.alive()) procs_ok = false;
            if (!procs_ok) {
                std::fprintf(stderr, "vifkit-soak: a vifkit process died\n");
                break;
            }
        }
    }
    // Let the frames in flight arrive.
    const auto drain_end = clk::now() + 5s;
    for (;;) {
        std::uint64_t pending = 0;
        for (const auto& s : streams) pending += s.sent - s.received;
        if (pending == 0 || clk::now() > drain_end) break;
        ::poll(pfds.data(), pfds.size(), 20);
        for (std::size_t i = 0; i < streams.size(); ++i)
            if (pfds[i].revents & POLLIN) drain(streams[i]);
    }
    report(true);

    const totals t = sum(0), r = sum(1);
    const std::uint64_t lost = (t.sent - t.received) + (r.sent - r.received);
    const std::uint64_t corrupted = t.corrupted + r.corrupted + t.duplicates + r.duplicates;
    // RSS flatness: last sample vs the first sample after the warm-up.
    auto flat = [&](const char* key) {
        const double el_end = samples.back()["elapsed_s"].get<double>();
        const json* base = &samples.front();
        for (const auto& s : samples)
            if (s["elapsed_s"].get<double>() >= warmup_seconds - 0.5 || s["elapsed_s"].get<double>() >= el_end) {
                base = &s;
                break;
            }
        const long a = (*base)[key].get<long>(), b = samples.back()[key].get<long>();
        const long diff = b > a ? b - a : 0;
        return json{{"baseline_kib", a}, {"last_kib", b}, {"baseline_elapsed_s", (*base)["elapsed_s"]},
                    {"flat", diff <= 1024 || static_cast<double>(diff) <= 0.10 * static_cast<double>(a)}};
    };
    const double el = std::chrono::duration<double>(clk::now() - start).count();
    auto dir_json = [](const totals& d) {
        return json{{"sent", d.sent},
                    {"received", d.received},
                    {"lost", d.sent - d.received},
                    {"corrupted", d.corrupted},
                    {"duplicates", d.duplicates}};
    };
    json bstats = nullptr;
    if (auto st = env->stats(back, "back")) {
        // Per queue index, summed over vifs: both queues must have carried traffic.
        json per_queue = json::array();
        for (const auto& vif : (*st)["vifs"]) {
            const auto& qs = vif["queues"];
            for (std::size_t i = 0; i < qs.size(); ++i) {
                while (per_queue.size() <= i) per_queue.push_back({{"tx_packets", 0}, {"rx_packets", 0}});
                for (const char* k : {"tx_packets", "rx_packets"})
                    per_queue[i][k] = per_queue[i][k].get<std::uint64_t>() + qs[i].value(k, std::uint64_t{0});
            }
        }
        bstats = {{"grant_mappings", (*st)["grant_mappings"]},
                  {"event_channels", (*st)["event_channels"]},
                  {"per_queue", per_queue}};
    }
    const json back_flat = flat("back_rss_kib"), front_flat = flat("front_rss_kib");
    const bool ok = lost == 0 && corrupted == 0 && procs_ok && !g_interrupted.load();
    json summary{{"vifs", vifs},
                 {"queues", queues},
                 {"window", window},
                 {"seconds", el},
                 {"tx", dir_json(t)},
                 {"rx", dir_json(r)},
                 {"lost", lost},
                 {"corrupted", corrupted},
                 {"pps_avg", el > 0 ? static_cast<double>(t.received + r.received) / el : 0.0},
                 {"processes_alive", procs_ok},
                 {"interrupted", g_interrupted.load()},
                 {"backend", bstats},
                 {"rss_samples", samples},
                 {"rss_back", back_flat},
                 {"rss_fronts", front_flat},
                 {"rss_flat", back_flat["flat"].get<bool>() && front_flat["flat"].get<bool>()},
                 {"ok", ok}};
    std::printf("%s\n", summary.dump().c_str());
    std::fflush(stdout);
    return ok ? 0 : 1;
}
