// End-to-end tests over the emulated platform, with separate processes:
// vifkit-xenstored (+ broker), vifkit-back, vifkit-front, vifkit-attach.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "emu_harness.hpp"

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

void expect_clean(const traffic_result& r, std::uint64_t n) {
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.sent, n);
    EXPECT_EQ(r.received, n);
    EXPECT_EQ(r.corrupted, 0u);
    EXPECT_EQ(r.out_of_order, 0u);
}

const nlohmann::json* find_vif(const nlohmann::json& back, unsigned guest) {
    for (const auto& v : back["vifs"])
        if (v["domid"] == guest) return &v;
    return nullptr;
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
    bool registered = false;
    for (int i = 0; i < 100 && !registered; ++i) {
        auto fst = env.stats(v.front, "front1");
        registered = fst && (*fst)["static_grants"] == 512;
        if (!registered) std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(registered) << env.log("front1") << env.log("back");
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
    // Clean stop: the frontend closes, the backend goes Closed and lets go of everything.
    v.front.stop();
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
