// Seeds for fuzz_backend, each run through the fuzz target's own harness
// (fuzz/backend_harness.hpp: the emulator's broker, the vifkit-xenstored engine
// and core::netback in this process) to check that it reaches what it is
// meant to: connected vifs that move packets in each main configuration, the
// control ring with static grants, and the refusals, so that the fuzzer starts
// from deep states. With VIFKIT_FUZZ_SEED_DIR set, each seed is also written
// to <dir>/backend/ (tests/support/fuzz_seed.hpp).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend_harness.hpp"
#include "backend_input.hpp"
#include "fuzz_seed.hpp"
#include "vifkit/abi/netif.hpp"

namespace vifkit::test {
namespace {

using namespace fuzz::backend_input;
using json = nlohmann::json;

// An Ethernet + IPv4 + UDP frame of n bytes (n >= 42), payload pattern bytes.
std::vector<std::uint8_t> udp_frame(std::size_t n) {
    std::vector<std::uint8_t> f(n);
    for (std::size_t i = 0; i < n; ++i) f[i] = static_cast<std::uint8_t>(i * 7);
    const std::uint8_t hdr[] = {0x00, 0x16, 0x3e, 0x00, 0x01, 0x00, 0x00, 0x16, 0x3e, 0x00, 0x01, 0xff, 0x08, 0x00,
                                0x45, 0x00, static_cast<std::uint8_t>((n - 14) >> 8),
                                static_cast<std::uint8_t>(n - 14), 0, 0, 0x40, 0, 64, 17, 0, 0,
                                10, 0, 0, 1, 10, 0, 0, 2};
    std::memcpy(f.data(), hdr, sizeof hdr);
    return f;
}

// The same with TCP (ACK, data offset 5) instead of UDP (n >= 54).
std::vector<std::uint8_t> tcp_frame(std::size_t n) {
    auto f = udp_frame(n);
    f[23] = 6;
    f[46] = 0x50;
    f[47] = 0x10;
    return f;
}

struct tx_slot {
    std::uint8_t page;
    std::uint16_t flags;
    std::uint16_t id;
    std::uint16_t size;
};

// Requests into the tx ring on `ring_page`, then req_prod.
void tx_ring(builder& b, std::uint8_t ring_page, const std::vector<tx_slot>& reqs) {
    for (std::size_t i = 0; i < reqs.size(); ++i) {
        const abi::tx_request r{page_ref(reqs[i].page), 0, reqs[i].flags, reqs[i].id, reqs[i].size};
        b.put_struct(ring_page, static_cast<std::uint16_t>(ring_entries_offset + sizeof r * i), r);
    }
    b.put_struct(ring_page, 0, static_cast<std::uint32_t>(reqs.size()));
}

// One rx buffer per data page, then req_prod.
void rx_ring(builder& b, std::uint8_t ring_page, const std::vector<std::uint8_t>& pages) {
    for (std::size_t i = 0; i < pages.size(); ++i) {
        const abi::rx_request r{static_cast<std::uint16_t>(i), 0, page_ref(pages[i])};
        b.put_struct(ring_page, static_cast<std::uint16_t>(ring_entries_offset + sizeof r * i), r);
    }
    b.put_struct(ring_page, 0, static_cast<std::uint32_t>(pages.size()));
}

void ctrl_ring(builder& b, std::uint8_t ring_page, const std::vector<abi::ctrl_request>& reqs) {
    for (std::size_t i = 0; i < reqs.size(); ++i)
        b.put_struct(ring_page, static_cast<std::uint16_t>(ring_entries_offset + sizeof(abi::ctrl_request) * i),
                     reqs[i]);
    b.put_struct(ring_page, 0, static_cast<std::uint32_t>(reqs.size()));
}

// The frontend keys of one queue (tx ring page 0, rx ring page 1, port 0, or
// split ports 0/1), rx-copy, sg and rx-notify.
void single_queue(builder& b, bool split = false) {
    b.resource("tx-ring-ref", 0).resource("rx-ring-ref", 1);
    if (split)
        b.resource("event-channel-tx", 0).resource("event-channel-rx", 1);
    else
        b.resource("event-channel", 0);
    b.write("request-rx-copy", "1").write("feature-sg", "1").write("feature-rx-notify", "1");
}

// A seed that starts with a one-queue frontend going to Connected.
builder connected_one_queue(std::uint8_t cfg0 = cfg::sg | cfg::split, std::uint8_t gen_size = 0) {
    builder b(cfg0, gen_size);
    single_queue(b);
    b.set_state(4);
    return b;
}

// Two packets on the tx ring (60 bytes in one slot; 300 bytes over two slots),
// two rx buffers, a notification, a pump.
void traffic(builder& b, std::uint8_t tx_page = 0, std::uint8_t rx_page = 1, std::uint8_t port = 0,
             std::vector<std::uint8_t> data = {2, 3, 4}, std::vector<std::uint8_t> rx = {5, 6}) {
    const auto big = udp_frame(300);
    b.put(data[0], 0, udp_frame(60));
    b.put(data[1], 0, std::span(big).first(200));
    b.put(data[2], 0, std::span(big).subspan(200));
    tx_ring(b, tx_page, {{data[0], 0, 0, 60}, {data[1], abi::txf::more_data, 1, 300}, {data[2], 0, 2, 100}});
    rx_ring(b, rx_page, rx);
    b.signal(port).run();
}

// `frame` from data page 2 as one tx slot with `flags` and a GSO tcpv4 extra
// of `mss` in the next slot (tx ring on page 0), signalled and pumped.
void gso_tcpv4_packet(builder& b, const std::vector<std::uint8_t>& frame, std::uint16_t flags, std::uint16_t mss) {
    b.put(2, 0, frame);
    tx_ring(b, 0, {{2, static_cast<std::uint16_t>(flags | abi::txf::extra_info), 0,
                    static_cast<std::uint16_t>(frame.size())}});
    abi::extra_info e{};
    e.type = abi::extra_type::gso;
    e.u.gso.size = mss;
    e.u.gso.type = abi::gso_type::tcpv4;
    b.put_struct(0, ring_entries_offset + sizeof(abi::tx_request), e);
    b.put_struct(0, 0, std::uint32_t{2});  // req_prod past the extra
    b.signal(0).run();
}

const json& the_vif(const json& st) {
    static const json none;
    if (!st.contains("vifs") || st["vifs"].size() != 1) return none;
    return st["vifs"][0];
}

std::uint64_t sum(const json& vif, const char* counter) {
    std::uint64_t n = 0;
    for (const auto& q : vif["queues"]) n += q[counter].get<std::uint64_t>();
    return n;
}

// Write the seed out (when asked to) and run it.
json run(const builder& b) {
    write_fuzz_seed("backend", std::as_bytes(std::span(b.bytes())));
    return fuzz::backend_run(b.bytes());
}

void expect_connected(const json& vif, std::size_t queues) {
    ASSERT_FALSE(vif.is_null()) << "no vif";
    EXPECT_EQ(vif["connected"], true) << vif.dump(1);
    EXPECT_EQ(vif["disabled"], false);
    EXPECT_EQ(vif["queues"].size(), queues);
    EXPECT_EQ(sum(vif, "peer_faults"), 0u);
}

// The two packets of traffic() crossed the tx ring and were answered.
void expect_tx_traffic(const json& vif) {
    EXPECT_EQ(sum(vif, "tx_packets"), 2u) << vif.dump(1);
    EXPECT_EQ(sum(vif, "tx_bytes"), 360u);
    EXPECT_EQ(sum(vif, "tx_errors"), 0u);
}

TEST(BackendSeeds, CopyModeOneQueue) {
    builder b = connected_one_queue();
    traffic(b);
    const json vif = the_vif(run(b));
    expect_connected(vif, 1);
    expect_tx_traffic(vif);
    EXPECT_GE(sum(vif, "grant_copies"), 3u);
    EXPECT_EQ(sum(vif, "grant_maps"), 2u);  // the two rings
}

TEST(BackendSeeds, CopyModeSplitEventChannels) {
    builder b(cfg::sg | cfg::split);
    single_queue(b, true);
    b.set_state(4);
    traffic(b);
    b.signal(1);
    const json vif = the_vif(run(b));
    expect_connected(vif, 1);
    expect_tx_traffic(vif);
}

TEST(BackendSeeds, MapModeWithFramesTowardsTheGuest) {
    builder b = connected_one_queue(cfg::map | cfg::sg | cfg::split | cfg::gen_port, 20);  // gen frames: 134 bytes
    traffic(b);
    const json vif = the_vif(run(b));
    expect_connected(vif, 1);
    expect_tx_traffic(vif);
    EXPECT_EQ(sum(vif, "grant_maps"), 2u + 3u);  // rings, then one map per tx slot
    EXPECT_EQ(sum(vif, "rx_packets"), 2u);       // one per posted buffer
    EXPECT_EQ(sum(vif, "rx_bytes"), 2u * 134u);
}

TEST(BackendSeeds, GsoTcpv4Extra) {
    builder b(cfg::sg | cfg::split);
    single_queue(b);
    b.write("feature-gso-tcpv4", "1").set_state(4);  // GSO advertised before Connected
    gso_tcpv4_packet(b, tcp_frame(400), abi::txf::csum_blank, 100);
    const json vif = the_vif(run(b));
    expect_connected(vif, 1);
    // The null host port takes no GSO: segmented in software, 346 payload
    // bytes at MSS 100 are four frames to the host.
    EXPECT_EQ(sum(vif, "gso_segmented"), 1u) << vif.dump(1);
    EXPECT_EQ(sum(vif, "tx_packets"), 4u);
    EXPECT_EQ(sum(vif, "gso_errors"), 0u);
}

TEST(BackendSeeds, GsoExtraOnUdpIsRefused) {
    builder b(cfg::sg | cfg::split);
    single_queue(b);
    b.write("feature-gso-tcpv4", "1").set_state(4);  // GSO advertised before Connected
    gso_tcpv4_packet(b, udp_frame(200), 0, 1400);
    const json vif = the_vif(run(b));
    expect_connected(vif, 1);
    EXPECT_EQ(sum(vif, "gso_errors"), 1u) << vif.dump(1);
    EXPECT_EQ(sum(vif, "tx_packets"), 0u);
}

TEST(BackendSeeds, TwoQueues) {
    builder b(cfg::sg | cfg::split | cfg::queues(2));
    b.write("multi-queue-num-queues", "2")
        .resource("queue-0/tx-ring-ref", 0).resource("queue-0/rx-ring-ref", 1).resource("queue-0/event-channel", 0)
        .resource("queue-1/tx-ring-ref", 2).resource("queue-1/rx-ring-ref", 3).resource("queue-1/event-channel", 1)
        .write("request-rx-copy", "1").write("feature-sg", "1").set_state(4);
    traffic(b, 0, 1, 0, {4, 5, 6}, {7});
    const json vif = the_vif(run(b));
    expect_connected(vif, 2);
    expect_tx_traffic(vif);
    EXPECT_EQ(vif["queues"][0]["tx_packets"], 2u);
}

// Control ring with static grants: hash messages, then page 5 registered as a
// static grant (its gref list on page 6), a packet sent from it with no grant
// operation, and the grant removed again.
TEST(BackendSeeds, ControlRingAndStaticGrants) {
    builder b(cfg::sg | cfg::split | cfg::ctrl_ring | cfg::static_grants);
    single_queue(b);
    b.resource("ctrl-ring-ref", 7).resource("event-channel-ctrl", 2).set_state(4);
    b.put_struct(6, 0, abi::gref_entry{page_ref(5), 0, 0});
    ctrl_ring(b, 7, {{1, abi::ctrl_type::set_hash_algorithm, {1, 0, 0}},  // Toeplitz
                     {2, abi::ctrl_type::get_hash_flags, {0, 0, 0}},
                     {3, abi::ctrl_type::get_gref_mapping_size, {0, 0, 0}},
                     {4, abi::ctrl_type::add_gref_mapping, {0, page_ref(6), 1}}});
    b.signal(2).run();
    b.put(5, 0, udp_frame(80));
    tx_ring(b, 0, {{5, 0, 0, 80}});
    b.signal(0).run();
    const json before = the_vif(run(b));
    expect_connected(before, 1);
    const json& ctrl = before["ctrl"];
    EXPECT_EQ(ctrl["requests"]["get_hash_flags"]["success"], 1u) << ctrl.dump(1);
    EXPECT_EQ(ctrl["requests"]["get_gref_mapping_size"]["success"], 1u);
    EXPECT_EQ(ctrl["requests"]["add_gref_mapping"]["success"], 1u);
    EXPECT_EQ(ctrl["requests"]["set_hash_algorithm"]["success"], 1u);
    EXPECT_EQ(ctrl["static_grants"]["mapped"], 1u);
    EXPECT_EQ(sum(before, "tx_packets"), 1u);
    EXPECT_EQ(sum(before, "static_hits"), 1u);

    // The same, then DEL: the mapping goes again before teardown.
    ctrl_ring(b, 7, {{1, abi::ctrl_type::set_hash_algorithm, {1, 0, 0}},
                     {2, abi::ctrl_type::get_hash_flags, {0, 0, 0}},
                     {3, abi::ctrl_type::get_gref_mapping_size, {0, 0, 0}},
                     {4, abi::ctrl_type::add_gref_mapping, {0, page_ref(6), 1}},
                     {5, abi::ctrl_type::del_gref_mapping, {0, page_ref(6), 1}}});
    b.signal(2).run();
    const json after = the_vif(run(b));
    expect_connected(after, 1);
    EXPECT_EQ(after["ctrl"]["requests"]["del_gref_mapping"]["success"], 1u) << after["ctrl"].dump(1);
    EXPECT_EQ(after["ctrl"]["static_grants"]["mapped"], 0u);
}

TEST(BackendSeeds, TooManyQueuesIsRefused) {
    builder b(cfg::sg | cfg::split);
    b.write("multi-queue-num-queues", "9");
    single_queue(b);
    b.set_state(4);
    const json vif = the_vif(run(b));
    ASSERT_FALSE(vif.is_null());
    EXPECT_EQ(vif["connected"], false) << vif.dump(1);
    EXPECT_GE(sum(vif, "peer_faults"), 1u);
}

TEST(BackendSeeds, MissingRxCopyIsRefused) {
    builder b(cfg::sg | cfg::split);
    b.resource("tx-ring-ref", 0).resource("rx-ring-ref", 1).resource("event-channel", 0).set_state(4);
    const json vif = the_vif(run(b));
    ASSERT_FALSE(vif.is_null());
    EXPECT_EQ(vif["connected"], false) << vif.dump(1);
    EXPECT_GE(sum(vif, "peer_faults"), 1u);
}

// Connected, Closing, Closed, Initialising, Connected again.
TEST(BackendSeeds, Reconnect) {
    builder b = connected_one_queue();
    traffic(b);
    b.set_state(5).set_state(6).set_state(1).set_state(4).signal(0);
    const json vif = the_vif(run(b));
    expect_connected(vif, 1);
}

// A ring page revoked while netback maps it: refused, the vif keeps working.
TEST(BackendSeeds, RevokeWhileMapped) {
    builder b = connected_one_queue();
    b.unshare(0).unshare(1);
    traffic(b);
    const json vif = the_vif(run(b));
    expect_connected(vif, 1);
    expect_tx_traffic(vif);
}

}  // namespace
}  // namespace vifkit::test
