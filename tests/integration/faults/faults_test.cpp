// Faults: processes dying at arbitrary points, over the emulated platform.
//
//  - vifkit-front killed with SIGKILL at >= 100 random points of its life (start,
//    xenbus handshake, static-grant registration, steady traffic): the backend
//    must let go of every mapping and event channel each time and keep serving
//    another vif.
//  - vifkit-back stopped (SIGTERM) or killed (SIGKILL) and started again: the
//    same vifkit-front process reconnects and carries traffic again.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "emu_harness.hpp"
#include "traffic_checks.hpp"

namespace vifkit::test {
namespace {

using clk = std::chrono::steady_clock;

const std::string back_state_1 = "/local/domain/0/backend/vif/1/0/state";

bool eventually(std::chrono::milliseconds timeout, const auto& pred, std::chrono::milliseconds step = 20ms) {
    const auto deadline = clk::now() + timeout;
    while (!pred()) {
        if (clk::now() > deadline) return false;
        std::this_thread::sleep_for(step);
    }
    return true;
}

// The frontend's own view: connected, and all its pools registered as static grants.
bool front_ready(emu_env& env, child& front, const std::string& who, int connects, std::uint64_t static_grants) {
    return eventually(15s, [&] {
        auto st = env.stats(front, who);
        return st && (*st)["connected"] == true && (*st)["connects"].get<int>() >= connects &&
               (*st)["static_grants"].get<std::uint64_t>() == static_grants;
    }, 50ms);
}

unsigned iterations() {
    if (const char* e = std::getenv("VIFKIT_KILL9_ITERATIONS")) {
        const long n = std::strtol(e, nullptr, 10);
        if (n > 0) return static_cast<unsigned>(n);
    }
    return 100;
}

TEST(Faults, KillNineFrontendAtRandomPointsReleasesEverything) {
    emu_env env;
    child back = env.start_backend();
    ASSERT_TRUE(env.attach(2));
    child legit = env.start_frontend(2);
    ASSERT_TRUE(env.wait_connected(2)) << env.log("back") << env.log("front2");
    auto host = connect_port(env.backend_port(2));
    auto guest = connect_port(env.frontend_port(2));
    ASSERT_TRUE(host && guest);
    // 256 tx + 256 rx pages of its one queue.
    ASSERT_TRUE(front_ready(env, legit, "front2", 1, 512)) << env.log("front2");
    expect_clean(pump(*guest, *host, 200, 1), 200);
    auto base = env.stats(back, "back");
    ASSERT_TRUE(base);
    const auto base_maps = (*base)["grant_mappings"].get<std::uint64_t>();
    const auto base_ports = (*base)["event_channels"].get<std::uint64_t>();
    ASSERT_GE(base_maps, 3u + 512u);  // rings + ctrl ring + static grants
    ASSERT_GE(base_ports, 1u);

    const unsigned n = iterations();
    const std::uint32_t seed = std::random_device{}();
    std::printf("[faults] kill -9 iterations %u, seed %u (delay uniform 0..300 ms; every other one 0..40 ms, "
                "the start and handshake)\n", n, seed);
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> delay_ms(0, 300), early_ms(0, 40);
    // Where each frontend was when it died, as seen by the backend just before.
    std::map<std::string, unsigned> died;
    std::uint64_t max_maps_seen = 0;
    const auto t0 = clk::now();
    for (unsigned i = 0; i < n; ++i) {
        ASSERT_TRUE(env.attach(1)) << "iteration " << i;
        env.frontend_port_spec = "gen:256";  // traffic from the start: deaths mid-traffic too
        child victim = env.start_frontend(1);
        env.frontend_port_spec.clear();
        const int d = i % 2 ? early_ms(rng) : delay_ms(rng);
        std::this_thread::sleep_for(std::chrono::milliseconds(d));
        // Freeze it where it is, look at the backend's view of vif 1, then kill it.
        victim.signal(SIGSTOP);
        std::string point = "before-backend-probe";
        if (auto st = env.stats(back, "back")) {
            max_maps_seen = std::max(max_maps_seen, (*st)["grant_mappings"].get<std::uint64_t>());
            if (const auto* v = find_vif(*st, 1)) {
                const bool connected = (*v)["connected"] == true;
                std::uint64_t mapped = 0;
                if (!(*v)["ctrl"].is_null()) mapped = (*v)["ctrl"]["static_grants"]["mapped"].get<std::uint64_t>();
                std::uint64_t tx = 0;
                for (const auto& q : (*v)["queues"])  // no peer on vif 1's host port: dropped there
                    tx += q["tx_packets"].get<std::uint64_t>() + q["tx_drops"].get<std::uint64_t>();
                const auto fs = env.read("/local/domain/1/device/vif/0/state").value_or("-");
                if (!connected && fs != "4")
                    point = "starting(front " + fs + ")";  // process start, before its Connected
                else if (!connected)
                    point = "handshake(back " + (*v)["state"].get<std::string>() + ")";
                else if (mapped < 512)
                    point = "connected,static-registering";
                else
                    point = tx > 0 ? "steady-traffic" : "connected,static-done";
            }
        }
        ++died[point];
        victim.signal(SIGKILL);
        ASSERT_TRUE(victim.wait(5s)) << "iteration " << i;
        // Back to the baseline: only the legit vif's mappings and ports remain.
        std::uint64_t maps = 0, ports = 0;
        const bool released = eventually(10s, [&] {
            auto s = env.read(back_state_1);
            if (s == "3" || s == "4") return false;  // not torn down yet
            auto st = env.stats(back, "back");
            if (!st) return false;
            maps = (*st)["grant_mappings"].get<std::uint64_t>();
            ports = (*st)["event_channels"].get<std::uint64_t>();
            return maps == base_maps && ports == base_ports;
        });
        ASSERT_TRUE(released) << "iteration " << i << " (killed at " << point << ", after " << d
                              << " ms): backend still holds " << maps << " mappings / " << ports
                              << " event channels, baseline " << base_maps << " / " << base_ports << "\n"
                              << env.log("back");
        ASSERT_TRUE(back.alive()) << env.log("back");
        if ((i + 1) % 10 == 0) {
            expect_clean(pump(*guest, *host, 200, 100 + i), 200);
            expect_clean(pump(*host, *guest, 200, 200 + i), 200);
            ASSERT_FALSE(::testing::Test::HasFailure()) << "legit vif broken after iteration " << i;
        }
    }
    const double secs = std::chrono::duration<double>(clk::now() - t0).count();
    std::string dist;
    for (const auto& [k, c] : died) dist += " " + k + "=" + std::to_string(c);
    std::printf("[faults] summary: %u kill -9 iterations in %.1f s, all released to baseline (%llu mappings, "
                "%llu event channels; peak seen %llu mappings); died at:%s\n",
                n, secs, static_cast<unsigned long long>(base_maps), static_cast<unsigned long long>(base_ports),
                static_cast<unsigned long long>(max_maps_seen), dist.c_str());
    // The legit vif still has its static grants and carries traffic.
    ASSERT_TRUE(front_ready(env, legit, "front2", 1, 512));
    expect_clean(pump(*guest, *host, 1000, 7), 1000);
    expect_clean(pump(*host, *guest, 1000, 8), 1000);
}

// Restart vifkit-back with `sig`; the same vifkit-front must reconnect.
void backend_restart(int sig) {
    emu_env env;
    child back = env.start_backend();
    ASSERT_TRUE(env.attach(1));
    child front = env.start_frontend(1);
    ASSERT_TRUE(env.wait_connected(1)) << env.log("back") << env.log("front1");
    auto guest = connect_port(env.frontend_port(1));
    auto host = connect_port(env.backend_port(1));
    ASSERT_TRUE(host && guest);
    ASSERT_TRUE(front_ready(env, front, "front1", 1, 512)) << env.log("front1");
    expect_clean(pump(*guest, *host, 1000, 1), 1000);
    expect_clean(pump(*host, *guest, 1000, 2), 1000);

    for (int round = 0; round < 2; ++round) {
        back.signal(sig);
        ASSERT_TRUE(back.wait(10s)) << env.log("back");
        host.reset();  // the old backend's host port is gone
        back = env.start_backend();
        // The frontend notices, tears down and connects again: a second (third) connect.
        ASSERT_TRUE(front_ready(env, front, "front1", 2 + round, 512))
            << "round " << round << "\n"
            << env.log("back") << env.log("front1");
        ASSERT_TRUE(env.wait_connected(1));
        ASSERT_TRUE(front.alive());
        host = connect_port(env.backend_port(1));
        ASSERT_TRUE(host);
        expect_clean(pump(*guest, *host, 2000, 10 + round), 2000);
        expect_clean(pump(*host, *guest, 2000, 20 + round), 2000);
        auto fst = env.stats(front, "front1");
        ASSERT_TRUE(fst);
        // Everything the dead backend mapped was let go of: nothing leaked.
        EXPECT_EQ((*fst)["leaked_pages"], 0) << env.log("front1");
        auto bst = env.stats(back, "back");
        ASSERT_TRUE(bst);
        const auto* v = find_vif(*bst, 1);
        ASSERT_NE(v, nullptr);
        EXPECT_EQ((*v)["ctrl"]["static_grants"]["mapped"], 512);
    }
}

TEST(Faults, FrontendReconnectsAfterBackendSigtermAndRestart) { backend_restart(SIGTERM); }

TEST(Faults, FrontendReconnectsAfterBackendSigkillAndRestart) { backend_restart(SIGKILL); }

// The pid of the vifkit-xenstored serving `sock` (emu_env keeps its child private).
pid_t xenstored_pid(const std::string& sock) {
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream f(e.path() / "cmdline");
        std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        if (cmd.find("vifkit-xenstored") != std::string::npos && cmd.find(sock) != std::string::npos)
            return static_cast<pid_t>(std::stol(name));
    }
    return -1;
}

TEST(Faults, StoreAndBrokerDeathMakesBothToolsExitWithAClearError) {
    // vifkit-xenstored is the store and the emulated hypervisor: when it dies, every
    // domain, grant and event channel is gone and a restarted one knows none of
    // them. Both tools must notice and exit with an error, not serve on blindly.
    emu_env env;
    child back = env.start_backend();
    ASSERT_TRUE(env.attach(1));
    child front = env.start_frontend(1);
    ASSERT_TRUE(env.wait_connected(1)) << env.log("back") << env.log("front1");
    const pid_t xs = xenstored_pid(env.xs_sock);
    ASSERT_GT(xs, 0);
    ASSERT_EQ(::kill(xs, SIGKILL), 0);
    const auto rb = back.wait(10s);
    const auto rf = front.wait(10s);
    ASSERT_TRUE(rb && rf) << "still running after the broker died\n" << env.log("back") << env.log("front1");
    EXPECT_EQ(*rb, 1);
    EXPECT_EQ(*rf, 1);
    EXPECT_NE(env.log("back").find("lost the connection to the emulated hypervisor"), std::string::npos)
        << env.log("back");
    EXPECT_NE(env.log("front1").find("lost the connection to the emulated hypervisor"), std::string::npos)
        << env.log("front1");
}

}  // namespace
}  // namespace vifkit::test
