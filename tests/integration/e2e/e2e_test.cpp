// End-to-end tests over the emulated platform, with separate processes:
// vifkit-xenstored (+ broker), vifkit-back, vifkit-front, vifkit-attach.
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <thread>

#include "emu_harness.hpp"
#include "traffic_checks.hpp"
#include "vifkit/ctrl/toeplitz.hpp"

namespace vifkit::test {
namespace {

struct running_vif {
    child front;
    std::unique_ptr<io::packet_port> host;   // driver side of the backend's host port
    std::unique_ptr<io::packet_port> guest;  // driver side of the frontend's guest port
};

running_vif bring_up(emu_env& env, unsigned guest, const std::vector<std::string>& front_args = {}) {
    running_vif v;
    EXPECT_TRUE(env.attach(guest));
    v.front = env.start_frontend(guest, front_args);
    EXPECT_TRUE(env.wait_connected(guest)) << env.log("back") << env.log("front" + std::to_string(guest));
    v.host = connect_port(env.backend_port(guest));
    v.guest = connect_port(env.frontend_port(guest));
    EXPECT_TRUE(v.host && v.guest);
    return v;
}

TEST(EndToEnd, HundredThousandPacketsEachWayCopyModeStaticGrantsOff) {
    // Backend started with static grants disabled: the frontend falls back to
    // ordinary grants and every slot costs one grant copy.
    emu_env env;
    child back = env.start_backend({"--mode", "copy", "--no-static-grants"});
    auto v = bring_up(env, 1);
    ASSERT_TRUE(v.host && v.guest);
    constexpr std::uint64_t n = 100000;
    expect_clean(pump(*v.guest, *v.host, n, 11), n);  // guest transmit
    expect_clean(pump(*v.host, *v.guest, n, 22), n);  // guest receive
    auto st = env.stats(back, "back");
    ASSERT_TRUE(st);
    const auto* vif = find_vif(*st, 1);
    ASSERT_NE(vif, nullptr);
    const auto& q = (*vif)["queues"][0];
    EXPECT_EQ(q["tx_packets"], n);
    EXPECT_EQ(q["rx_packets"], n);
    EXPECT_EQ(q["peer_faults"], 0);
    EXPECT_EQ(q["grant_errors"], 0);
    // Copy mode: one grant copy per slot (one slot per frame here), in batches.
    EXPECT_EQ(q["grant_copies"], 2 * n);
    EXPECT_EQ(q["static_hits"], 0);
    EXPECT_LT(q["copy_batches"].get<std::uint64_t>(), 2 * n);
    auto fst = env.stats(v.front, "front1");
    ASSERT_TRUE(fst);
    EXPECT_EQ((*fst)["static_fallback"], true);
    EXPECT_EQ((*fst)["static_grants"], 0);
}

TEST(EndToEnd, HundredThousandPacketsEachWayStaticGrantsZeroGrantOps) {
    emu_env env;
    child back = env.start_backend();
    auto v = bring_up(env, 1);
    ASSERT_TRUE(v.host && v.guest);
    // The frontend registers its pools after Connected: wait for it.
    ASSERT_TRUE(wait_static_grants(env, v.front, "front1", 512, 5s)) << env.log("front1") << env.log("back");
    auto before = env.stats(back, "back");
    ASSERT_TRUE(before);
    const auto& q0 = (*find_vif(*before, 1))["queues"][0];
    constexpr std::uint64_t n = 100000;
    expect_clean(pump(*v.guest, *v.host, n, 12), n);
    expect_clean(pump(*v.host, *v.guest, n, 23), n);
    auto st = env.stats(back, "back");
    ASSERT_TRUE(st);
    const auto& q = (*find_vif(*st, 1))["queues"][0];
    EXPECT_EQ(q["tx_packets"], n);
    EXPECT_EQ(q["rx_packets"], n);
    // Fast path: every slot served by a persistent mapping, no grant operation.
    EXPECT_EQ(q["static_hits"], 2 * n);
    EXPECT_EQ(q["static_fallbacks"], 0);
    EXPECT_EQ(q["grant_copies"], q0["grant_copies"]);
    EXPECT_EQ(q["grant_maps"], q0["grant_maps"]);
    EXPECT_EQ(q["grant_unmaps"], q0["grant_unmaps"]);
    const auto& ctrl = (*find_vif(*st, 1))["ctrl"];
    EXPECT_EQ(ctrl["static_grants"]["mapped"], 512) << ctrl.dump();
}

TEST(EndToEnd, MapModeCarriesTrafficAndUnmapsEverything) {
    emu_env env;
    child back = env.start_backend({"--mode", "map", "--no-static-grants"});
    auto v = bring_up(env, 1);
    ASSERT_TRUE(v.host && v.guest);
    constexpr std::uint64_t n = 20000;
    expect_clean(pump(*v.guest, *v.host, n, 33), n);
    expect_clean(pump(*v.host, *v.guest, n, 44), n);
    auto st = env.stats(back, "back");
    ASSERT_TRUE(st);
    const auto& q = (*find_vif(*st, 1))["queues"][0];
    EXPECT_EQ(q["grant_maps"].get<std::uint64_t>(), n + 3);  // + tx, rx and ctrl ring pages
    EXPECT_EQ(q["grant_unmaps"].get<std::uint64_t>(), n);    // rings still mapped
    EXPECT_EQ((*st)["grant_mappings"], 3);
}

// Busy polling on both ends (--poll busy): no notifications are needed, every
// frame still arrives intact and in order, static grants still serve every slot.
TEST(EndToEnd, BusyPollBothEndsCarriesTrafficIntact) {
    emu_env env;
    child back = env.start_backend({"--poll", "busy"});
    auto v = bring_up(env, 1, {"--poll", "busy"});
    ASSERT_TRUE(v.host && v.guest);
    ASSERT_TRUE(wait_static_grants(env, v.front, "front1", 512, 5s)) << env.log("front1");
    auto before = env.stats(back, "back");
    ASSERT_TRUE(before);
    const auto n0 = (*find_vif(*before, 1))["queues"][0]["notifies_sent"].get<std::uint64_t>();
    constexpr std::uint64_t n = 20000;
    expect_clean(pump(*v.guest, *v.host, n, 61), n);
    expect_clean(pump(*v.host, *v.guest, n, 62), n);
    auto st = env.stats(back, "back");
    ASSERT_TRUE(st);
    const auto& q = (*find_vif(*st, 1))["queues"][0];
    EXPECT_EQ(q["tx_packets"], n);
    EXPECT_EQ(q["rx_packets"], n);
    EXPECT_EQ(q["static_hits"], 2 * n);
    EXPECT_EQ(q["peer_faults"], 0);
    // The busy frontend never re-arms rsp_event: the backend stops notifying.
    EXPECT_LT(q["notifies_sent"].get<std::uint64_t>() - n0, n / 100) << q.dump();
}

// Busy backend with an event-driven frontend, and the other way round.
TEST(EndToEnd, BusyBackendWithEventFrontendAndViceVersa) {
    for (const bool busy_back : {true, false}) {
        emu_env env;
        child back = env.start_backend({"--poll", busy_back ? "busy" : "event"});
        auto v = bring_up(env, 1, {"--poll", busy_back ? "event" : "busy"});
        ASSERT_TRUE(v.host && v.guest);
        constexpr std::uint64_t n = 10000;
        expect_clean(pump(*v.guest, *v.host, n, 63), n);
        expect_clean(pump(*v.host, *v.guest, n, 64), n);
    }
}

// Raw mode (benchmark ceiling): the frontend's memory mapped once, no grant
// operation at all, and data still intact.
TEST(EndToEnd, RawModeCarriesTrafficWithoutGrantOps) {
    emu_env env;
    child back = env.start_backend({"--mode", "raw", "--no-static-grants"});
    auto v = bring_up(env, 1);
    ASSERT_TRUE(v.host && v.guest);
    auto before = env.stats(back, "back");
    ASSERT_TRUE(before);
    const auto& q0 = (*find_vif(*before, 1))["queues"][0];
    constexpr std::uint64_t n = 20000;
    expect_clean(pump(*v.guest, *v.host, n, 65), n);
    expect_clean(pump(*v.host, *v.guest, n, 66), n);
    auto st = env.stats(back, "back");
    ASSERT_TRUE(st);
    const auto& q = (*find_vif(*st, 1))["queues"][0];
    EXPECT_EQ(q["tx_packets"], n);
    EXPECT_EQ(q["rx_packets"], n);
    EXPECT_EQ(q["grant_copies"], q0["grant_copies"]);
    EXPECT_EQ(q["grant_maps"], q0["grant_maps"]);
    EXPECT_EQ(q["static_hits"], 0);
}

TEST(EndToEnd, FrontendReconnectsAfterSighupAndAfterRestart) {
    emu_env env;
    child back = env.start_backend();
    auto v = bring_up(env, 1);
    ASSERT_TRUE(v.host && v.guest);
    expect_clean(pump(*v.guest, *v.host, 2000, 1), 2000);
    // In-process reconnect: Closing -> Closed -> Initialising -> Connected.
    v.front.signal(SIGHUP);
    auto second_connect = [&] {
        for (int i = 0; i < 100; ++i) {
            auto st = env.stats(v.front, "front1");
            if (st && (*st)["connects"] == 2 && (*st)["connected"] == true) return true;
            std::this_thread::sleep_for(100ms);
        }
        return false;
    };
    ASSERT_TRUE(second_connect()) << env.log("back") << env.log("front1");
    ASSERT_TRUE(env.wait_connected(1));
    expect_clean(pump(*v.guest, *v.host, 2000, 2), 2000);
    expect_clean(pump(*v.host, *v.guest, 2000, 3), 2000);
    // Clean stop: the frontend DELs its static grants, closes, and revokes
    // everything; the backend goes Closed and lets go of everything.
    v.front.stop();
    {
        std::ifstream f(env.stats_path("front1"));  // written at exit
        auto fin = nlohmann::json::parse(f, nullptr, false);
        ASSERT_FALSE(fin.is_discarded()) << env.log("front1");
        EXPECT_EQ(fin["static_grants"], 0) << "DEL before revoke";
        EXPECT_EQ(fin["leaked_pages"], 0);
        EXPECT_EQ(fin["granted_pages"], 0);
        EXPECT_EQ(fin["ctrl"].is_null(), true);  // control ring torn down
    }
    ASSERT_TRUE(env.wait_value("/local/domain/0/backend/vif/1/0/state", "6", 10s)) << env.log("back");
    auto st = env.stats(back, "back");
    ASSERT_TRUE(st);
    EXPECT_EQ((*st)["grant_mappings"], 0);
    EXPECT_EQ((*st)["event_channels"], 0);
    // A new frontend process for the same guest (re-attached by the toolstack) connects again.
    v.guest.reset();
    v.host.reset();  // a stale driver connection would keep receiving the backend's frames
    auto v2 = bring_up(env, 1);
    ASSERT_TRUE(v2.host && v2.guest);
    expect_clean(pump(*v2.guest, *v2.host, 2000, 4), 2000);
    expect_clean(pump(*v2.host, *v2.guest, 2000, 5), 2000);
}

TEST(EndToEnd, KillNineFrontendLeavesNothingMappedAndOtherVifKeepsServing) {
    emu_env env;
    child back = env.start_backend();
    auto a = bring_up(env, 1);
    auto b = bring_up(env, 2);
    ASSERT_TRUE(a.host && a.guest && b.host && b.guest);
    expect_clean(pump(*a.guest, *a.host, 1000, 7), 1000);
    expect_clean(pump(*b.guest, *b.host, 1000, 8), 1000);
    auto before = env.stats(back, "back");
    ASSERT_TRUE(before);
    const auto maps_per_vif = (*before)["grant_mappings"].get<int>() / 2;
    const auto ports_per_vif = (*before)["event_channels"].get<int>() / 2;
    EXPECT_GE(maps_per_vif, 3);  // tx + rx + ctrl rings, plus static grants once registered
    EXPECT_GE(ports_per_vif, 1);
    a.front.signal(SIGKILL);
    ASSERT_TRUE(a.front.wait(5s));
    ASSERT_TRUE(env.wait_value("/local/domain/0/backend/vif/1/0/state", "6", 10s)) << env.log("back");
    auto after = env.stats(back, "back");
    ASSERT_TRUE(after);
    EXPECT_EQ((*after)["grant_mappings"], maps_per_vif);   // only vif 2's rings
    EXPECT_EQ((*after)["event_channels"], ports_per_vif);  // only vif 2's ports
    EXPECT_TRUE(back.alive());
    expect_clean(pump(*b.guest, *b.host, 5000, 9), 5000);
    expect_clean(pump(*b.host, *b.guest, 5000, 10), 5000);
}

}  // namespace
}  // namespace vifkit::test

namespace vifkit::test {
namespace {

// Run vifkit-ctl against a frontend's control socket; returns its JSON reply.
nlohmann::json ctl(emu_env& env, const std::string& sock, std::vector<std::string> args) {
    std::vector<std::string> argv{bin_dir() + "/vifkit-ctl", "--socket", sock, "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string out = env.dir + "/ctl.out";
    std::remove(out.c_str());
    child c(argv, out);
    auto rc = c.wait(10s);
    EXPECT_TRUE(rc && *rc <= 1) << env.log("ctl");  // 1 = a non-SUCCESS status, checked by the caller
    std::ifstream f(out);
    std::string line, last;
    while (std::getline(f, line))
        if (!line.empty() && line[0] == '{') last = line;
    return last.empty() ? nlohmann::json() : nlohmann::json::parse(last);
}

std::vector<std::byte> tcp4_frame(std::uint32_t src, std::uint32_t dst, std::uint16_t sport, std::uint16_t dport) {
    std::vector<std::uint8_t> f(14 + 20 + 20 + 10, 0);
    const std::uint8_t eth[14] = {0x00, 0x16, 0x3e, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x09, 0x08, 0x00};
    std::memcpy(f.data(), eth, 14);
    std::uint8_t* ip = f.data() + 14;
    ip[0] = 0x45;
    ip[2] = 0;
    ip[3] = 50;  // total length
    ip[8] = 64;  // ttl
    ip[9] = 6;   // TCP
    for (int i = 0; i < 4; ++i) {
        ip[12 + i] = static_cast<std::uint8_t>(src >> (24 - 8 * i));
        ip[16 + i] = static_cast<std::uint8_t>(dst >> (24 - 8 * i));
    }
    std::uint8_t* tcp = ip + 20;
    tcp[0] = static_cast<std::uint8_t>(sport >> 8);
    tcp[1] = static_cast<std::uint8_t>(sport);
    tcp[2] = static_cast<std::uint8_t>(dport >> 8);
    tcp[3] = static_cast<std::uint8_t>(dport);
    tcp[12] = 0x50;
    std::vector<std::byte> out(f.size());
    std::memcpy(out.data(), f.data(), f.size());
    return out;
}

TEST(EndToEnd, MultiQueueSpreadFollowsTheHashMappingTable) {
    emu_env env;
    child back = env.start_backend({"--max-queues", "4"});
    const std::string sock = env.dir + "/ctl.sock";
    auto v = bring_up(env, 1, {"--queues", "4", "--ctl-socket", sock});
    ASSERT_TRUE(v.host && v.guest);
    ASSERT_EQ(env.read("/local/domain/1/device/vif/0/multi-queue-num-queues"), "4");
    ASSERT_TRUE(env.read("/local/domain/1/device/vif/0/queue-3/tx-ring-ref"));
    EXPECT_FALSE(env.read("/local/domain/1/device/vif/0/tx-ring-ref"));  // only under queue-N with >1 queue

    static const std::uint8_t key[40] = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
                                         0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
                                         0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
                                         0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
    std::string key_hex;
    for (auto b : key) key_hex += fmt::format("{:02x}", b);
    const unsigned table[8] = {3, 1, 2, 0, 3, 3, 1, 2};
    EXPECT_EQ(ctl(env, sock, {"set_hash_algorithm", "1"})["status"], 0);
    EXPECT_EQ(ctl(env, sock, {"set_hash_flags", "15"})["status"], 0);
    EXPECT_EQ(ctl(env, sock, {"--page-hex", key_hex, "--page-arg", "0", "set_hash_key", "0", "40"})["status"], 0);
    EXPECT_EQ(ctl(env, sock, {"set_hash_mapping_size", "8"})["status"], 0);
    EXPECT_EQ(ctl(env, sock, {"--u32s", "3,1,2,0,3,3,1,2", "--page-arg", "0", "set_hash_mapping", "0", "8", "0"})["status"], 0);
    // An entry >= num_queues is refused and the table kept (XSA-270).
    EXPECT_EQ(ctl(env, sock, {"--u32s", "4", "--page-arg", "0", "set_hash_mapping", "0", "1", "0"})["status"], 2);

    auto before = env.stats(back, "back");
    ASSERT_TRUE(before);
    std::array<std::uint64_t, 4> base{};
    for (int q = 0; q < 4; ++q) base[q] = (*find_vif(*before, 1))["queues"][q]["rx_packets"];

    // 400 flows, 3 frames each, host -> guest.
    std::array<std::uint64_t, 4> expected{};
    std::vector<std::byte> buf(io::max_frame_size);
    std::uint64_t sent = 0, received = 0;
    for (std::uint32_t flow = 0; flow < 400; ++flow) {
        const std::uint32_t src = 0x0a000001 + flow * 7919, dst = 0x0a640002;
        const std::uint16_t sport = static_cast<std::uint16_t>(1024 + flow * 13), dport = 5201;
        std::uint8_t in[12];
        for (int i = 0; i < 4; ++i) {
            in[i] = static_cast<std::uint8_t>(src >> (24 - 8 * i));
            in[4 + i] = static_cast<std::uint8_t>(dst >> (24 - 8 * i));
        }
        in[8] = static_cast<std::uint8_t>(sport >> 8);
        in[9] = static_cast<std::uint8_t>(sport);
        in[10] = static_cast<std::uint8_t>(dport >> 8);
        in[11] = static_cast<std::uint8_t>(dport);
        const std::uint32_t h = ctrl::toeplitz_hash(key, in);
        const auto frame = tcp4_frame(src, dst, sport, dport);
        for (int k = 0; k < 3; ++k) {
            ASSERT_TRUE(v.host->send(frame));
            ++sent;
            expected[table[h % 8]] += 1;
        }
        // keep at most ~64 frames in flight
        while (sent - received > 60) {
            pollfd p{v.guest->fd(), POLLIN, 0};
            ASSERT_GT(::poll(&p, 1, 10000), 0) << "guest stopped receiving";
            while (v.guest->recv(buf) > 0) ++received;
        }
    }
    for (int i = 0; i < 1000 && received < sent; ++i) {
        pollfd p{v.guest->fd(), POLLIN, 0};
        ::poll(&p, 1, 10);
        while (v.guest->recv(buf) > 0) ++received;
    }
    EXPECT_EQ(received, sent);
    auto st = env.stats(back, "back");
    ASSERT_TRUE(st);
    for (int q = 0; q < 4; ++q)
        EXPECT_EQ((*find_vif(*st, 1))["queues"][q]["rx_packets"].get<std::uint64_t>() - base[q], expected[q])
            << "queue " << q;
    auto fst = env.stats(v.front, "front1");
    ASSERT_TRUE(fst);
    std::uint64_t extras = 0;
    for (const auto& q : (*fst)["queues"]) extras += q["rx_hash_extras"].get<std::uint64_t>();
    EXPECT_EQ(extras, sent);  // every packet carried its Toeplitz hash to the guest
    EXPECT_EQ((*fst)["static_grants"], 4 * 512);
}

TEST(EndToEnd, BadNumQueuesIsRefusedCleanly) {
    emu_env env;
    child back = env.start_backend({"--max-queues", "2"});
    ASSERT_TRUE(env.attach(1));
    // A hostile "frontend": writes keys by hand as dom0 would let it.
    const std::string f = "/local/domain/1/device/vif/0";
    for (const char* bad : {"0", "3", "two"}) {
        ASSERT_TRUE(env.wait_value("/local/domain/0/backend/vif/1/0/state", "2"));
        env.store().write(f + "/multi-queue-num-queues", bad);
        env.store().write(f + "/request-rx-copy", "1");
        env.store().write(f + "/state", "4");
        ASSERT_TRUE(env.wait_value("/local/domain/0/backend/vif/1/0/state", "5")) << bad << env.log("back");
        EXPECT_TRUE(back.alive());
        // Reset: the frontend closes, then starts over.
        env.store().write(f + "/state", "6");
        ASSERT_TRUE(env.wait_value("/local/domain/0/backend/vif/1/0/state", "6"));
        env.store().write(f + "/state", "1");
    }
    EXPECT_NE(env.log("back").find("refusing multi-queue-num-queues"), std::string::npos);
    auto st = env.stats(back, "back");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->at("vifs")[0]["queues"][0]["peer_faults"], 3);  // each refusal counted
}

}  // namespace
}  // namespace vifkit::test

namespace vifkit::test {
namespace {

// Regression: when the frontend's per-event response budget runs out, the
// rest must still be processed (the event was not re-armed, so none will come).
// A tiny budget makes every burst exceed it.
TEST(EndToEnd, BurstBeyondPerEventBudgetDoesNotStall) {
    emu_env env;
    child back = env.start_backend();
    auto v = bring_up(env, 1, {"--response-budget", "3"});
    ASSERT_TRUE(v.host && v.guest);
    std::vector<std::byte> frame(64, std::byte{0x5a}), buf(io::max_frame_size);
    for (int i = 0; i < 30000; ++i) (void)v.host->send(frame);  // as fast as the socket takes them
    // Drain until quiet, then ordinary traffic must still flow both ways.
    auto last = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - last < 300ms) {
        pollfd p{v.guest->fd(), POLLIN, 0};
        if (::poll(&p, 1, 50) > 0)
            while (v.guest->recv(buf) > 0) last = std::chrono::steady_clock::now();
    }
    expect_clean(pump(*v.host, *v.guest, 5000, 31), 5000);
    expect_clean(pump(*v.guest, *v.host, 5000, 32), 5000);
}

}  // namespace
}  // namespace vifkit::test
