// Hostile-frontend tests: a hand-written frontend (guest 1) feeds vifkit-back
// malformed rings and handshakes while a real vifkit-front (guest 2) keeps
// passing traffic. Every case checks, where it applies:
//  (a) the backend process is alive; (b) the legit vif still carries traffic;
//  (c) the bad vif is disabled (backend Closing) or the request is rejected with
//      the spec's status; (d) a counter moved; (e) once the bad frontend closes,
//      the backend holds only the legit vif's grant mappings and event channels.
#include <gtest/gtest.h>
#include <poll.h>

#include <cstring>
#include <thread>
#include <tuple>

#include "emu_harness.hpp"
#include "hostile_frontend.hpp"

namespace vifkit::test {
namespace {

constexpr unsigned bad_guest = 1;
constexpr unsigned good_guest = 2;

const nlohmann::json* find_vif(const nlohmann::json& back, unsigned guest) {
    for (const auto& v : back["vifs"])
        if (v["domid"] == guest) return &v;
    return nullptr;
}

abi::tx_request txreq(grant_ref_t gref, std::uint16_t offset, std::uint16_t flags, std::uint16_t id,
                      std::uint16_t size) {
    abi::tx_request r{};
    r.gref = gref;
    r.offset = offset;
    r.flags = flags;
    r.id = id;
    r.size = size;
    return r;
}

class Hostile : public ::testing::Test {
protected:
    void SetUp() override {
        back_ = env_.start_backend();
        ASSERT_TRUE(env_.attach(good_guest));
        front2_ = env_.start_frontend(good_guest);
        ASSERT_TRUE(env_.wait_connected(good_guest)) << env_.log("back") << env_.log("front2");
        host2_ = connect_port(env_.backend_port(good_guest));
        guest2_ = connect_port(env_.frontend_port(good_guest));
        ASSERT_TRUE(host2_ && guest2_);
        // The legit frontend registers its static grants after Connected: wait
        // until that settles before taking the baseline.
        bool registered = false;
        for (int i = 0; i < 200 && !registered; ++i) {
            auto fst = env_.stats(front2_, "front2");
            registered = fst && (*fst)["static_grants"] == 512;
            if (!registered) std::this_thread::sleep_for(50ms);
        }
        ASSERT_TRUE(registered) << env_.log("front2");
        auto st = env_.stats(back_, "back");
        ASSERT_TRUE(st);
        base_maps_ = (*st)["grant_mappings"].get<long>();
        base_ports_ = (*st)["event_channels"].get<long>();
        ASSERT_GE(base_maps_, 3);
        ASSERT_GE(base_ports_, 1);

        ASSERT_TRUE(env_.attach(bad_guest));
        bad_ = std::make_unique<hostile_frontend>(env_, static_cast<domid_t>(bad_guest));
    }

    // Connect the hostile frontend legitimately; its host port driver side too.
    void connect_bad() {
        ASSERT_TRUE(bad_->connect()) << env_.log("back");
        auto st = env_.stats(back_, "back");
        ASSERT_TRUE(st);
        EXPECT_EQ((*st)["grant_mappings"].get<long>(), base_maps_ + 2);  // tx + rx ring
        EXPECT_GT((*st)["event_channels"].get<long>(), base_ports_);
        host1_ = connect_port(env_.backend_port(bad_guest));
        ASSERT_TRUE(host1_);
    }

    // Counters of the hostile vif's queue 0.
    nlohmann::json bad_queue() {
        auto st = env_.stats(back_, "back");
        if (!st) return {};
        const auto* v = find_vif(*st, bad_guest);
        if (!v) return {};
        return (*v)["queues"][0];
    }

    std::uint64_t counter(const char* name) {
        auto q = bad_queue();
        return q.is_object() && q.contains(name) ? q[name].get<std::uint64_t>() : 0;
    }

    // (c) for fatal cases: the backend disabled the bad vif and let go of it at once.
    void expect_disabled() {
        EXPECT_TRUE(bad_->wait_backend_state(5)) << env_.log("back");
        auto st = env_.stats(back_, "back");
        ASSERT_TRUE(st);
        const auto* v = find_vif(*st, bad_guest);
        ASSERT_NE(v, nullptr);
        EXPECT_EQ((*v)["disabled"], true);
        EXPECT_EQ((*v)["connected"], false);
        EXPECT_EQ((*st)["grant_mappings"].get<long>(), base_maps_);
        EXPECT_EQ((*st)["event_channels"].get<long>(), base_ports_);
    }

    // (a), (e), (b): alive; bad frontend closes; nothing of it left; legit vif works.
    void finish() {
        EXPECT_TRUE(back_.alive()) << env_.log("back");
        EXPECT_TRUE(bad_->close()) << "backend did not reach Closed\n" << env_.log("back");
        auto st = env_.stats(back_, "back");
        ASSERT_TRUE(st);
        EXPECT_EQ((*st)["grant_mappings"].get<long>(), base_maps_);
        EXPECT_EQ((*st)["event_channels"].get<long>(), base_ports_);
        const auto* good = find_vif(*st, good_guest);
        ASSERT_NE(good, nullptr);
        EXPECT_EQ((*good)["connected"], true);
        EXPECT_EQ((*good)["queues"][0]["peer_faults"], 0);
        for (auto [from, to, seed] : {std::tuple{guest2_.get(), host2_.get(), 101u},
                                      std::tuple{host2_.get(), guest2_.get(), 202u}}) {
            const auto r = pump(*from, *to, 500, seed);
            EXPECT_FALSE(r.timed_out);
            EXPECT_EQ(r.received, 500u);
            EXPECT_EQ(r.corrupted, 0u);
            EXPECT_EQ(r.out_of_order, 0u);
        }
        EXPECT_TRUE(back_.alive());
    }

    // Fill `len` bytes of data page i from `off` with a pattern; returns the bytes.
    std::vector<std::byte> fill(std::size_t page, std::uint16_t off, std::size_t len, std::uint8_t seed) {
        std::vector<std::byte> v(len);
        for (std::size_t k = 0; k < len; ++k) v[k] = static_cast<std::byte>(seed + k * 7);
        if (len >= 14) {  // unicast destination, local experimental ethertype
            const std::uint8_t hdr[14] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0x01, 0, 0, 0, seed, 0x88, 0xb5};
            std::memcpy(v.data(), hdr, 14);
        }
        std::memcpy(bad_->data_page(page) + off, v.data(), len);
        return v;
    }

    // Wait for one frame on the hostile vif's host port.
    std::vector<std::byte> recv_host1(std::chrono::milliseconds timeout = 5s) {
        std::vector<std::byte> buf(io::max_frame_size);
        pollfd p{host1_->fd(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {};
        const long n = host1_->recv(buf);
        if (n <= 0) return {};
        buf.resize(static_cast<std::size_t>(n));
        return buf;
    }

    emu_env env_;
    child back_, front2_;
    std::unique_ptr<io::packet_port> host2_, guest2_, host1_;
    long base_maps_ = 0, base_ports_ = 0;
    std::unique_ptr<hostile_frontend> bad_;
};

TEST_F(Hostile, TxRingOverflowIsFatal) {
    connect_bad();
    const std::uint32_t rsp = bad_->tx_shared()->rsp_prod;
    bad_->set_req_prod(rsp + ring::tx_ring_types::size + 1);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("tx ring overflow"), std::string::npos);
    finish();
}

TEST_F(Hostile, NineteenFurtherSlotsAreDroppedWithErrorForEverySlot) {
    connect_bad();
    constexpr unsigned further = 19;
    std::vector<abi::tx_request> reqs;
    reqs.push_back(txreq(bad_->data_ref(0), 0, abi::txf::more_data, 100, 100 + further * 100));
    for (unsigned i = 1; i <= further; ++i)
        reqs.push_back(txreq(bad_->data_ref(i), 0, i < further ? abi::txf::more_data : 0,
                             static_cast<std::uint16_t>(100 + i), 100));
    bad_->push_tx(reqs);
    const auto rsps = bad_->wait_tx_responses(reqs.size());
    ASSERT_EQ(rsps.size(), reqs.size()) << env_.log("back");
    for (unsigned i = 0; i < rsps.size(); ++i) {
        EXPECT_EQ(rsps[i].id, 100 + i);
        EXPECT_EQ(rsps[i].status, abi::rsp::error) << "slot " << i;
    }
    EXPECT_EQ(counter("tx_drops"), 1u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);  // a drop, not a fault
    finish();
}

TEST_F(Hostile, TwentyOneFurtherSlotsAreFatal) {
    connect_bad();
    constexpr unsigned further = 21;
    std::vector<abi::tx_request> reqs;
    reqs.push_back(txreq(bad_->data_ref(0), 0, abi::txf::more_data, 0, 100 + further * 60));
    for (unsigned i = 1; i <= further; ++i)
        reqs.push_back(txreq(bad_->data_ref(i), 0, i < further ? abi::txf::more_data : 0,
                             static_cast<std::uint16_t>(i), 60));
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    finish();
}

TEST_F(Hostile, FollowingSlotCrossingThePageIsFatal) {
    connect_bad();
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::more_data, 1, 300),
                                    txreq(bad_->data_ref(1), 4000, 0, 2, 200)};
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("crosses page boundary"), std::string::npos);
    finish();
}

TEST_F(Hostile, FirstSlotShorterThanEthernetHeaderIsDropped) {
    connect_bad();
    fill(0, 0, 10, 3);
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, 0, 7, 10)};
    bad_->push_tx(reqs);
    const auto rsps = bad_->wait_tx_responses(1);
    ASSERT_EQ(rsps.size(), 1u) << env_.log("back");
    EXPECT_EQ(rsps[0].id, 7);
    EXPECT_EQ(rsps[0].status, abi::rsp::error);
    EXPECT_EQ(counter("tx_drops"), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    finish();
}

TEST_F(Hostile, UngrantedGrefGetsErrorAndVifStaysUp) {
    connect_bad();
    const abi::tx_request bogus[] = {txreq(bad_->ungranted_ref(), 0, 0, 9, 60)};
    bad_->push_tx(bogus);
    auto rsps = bad_->wait_tx_responses(1);
    ASSERT_EQ(rsps.size(), 1u) << env_.log("back");
    EXPECT_EQ(rsps[0].id, 9);
    EXPECT_EQ(rsps[0].status, abi::rsp::error);
    EXPECT_EQ(counter("grant_errors"), 1u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    // The vif still works: a good packet right after it goes through.
    const auto want = fill(2, 128, 200, 42);
    const abi::tx_request good[] = {txreq(bad_->data_ref(2), 128, 0, 10, 200)};
    bad_->push_tx(good);
    rsps = bad_->wait_tx_responses(1);
    ASSERT_EQ(rsps.size(), 1u);
    EXPECT_EQ(rsps[0].id, 10);
    EXPECT_EQ(rsps[0].status, abi::rsp::okay);
    EXPECT_EQ(recv_host1(), want);
    EXPECT_EQ(counter("tx_packets"), 1u);
    finish();
}

TEST_F(Hostile, ZeroSizeFollowingFragmentIsOkayAndPacketDelivered) {
    connect_bad();
    const auto want = fill(0, 0, 100, 77);
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::more_data, 20, 100),
                                    txreq(bad_->data_ref(1), 0, 0, 21, 0)};
    bad_->push_tx(reqs);
    const auto rsps = bad_->wait_tx_responses(2);
    ASSERT_EQ(rsps.size(), 2u) << env_.log("back");
    EXPECT_EQ(rsps[0].id, 20);
    EXPECT_EQ(rsps[0].status, abi::rsp::okay);
    EXPECT_EQ(rsps[1].id, 21);
    EXPECT_EQ(rsps[1].status, abi::rsp::okay);
    EXPECT_EQ(recv_host1(), want);
    EXPECT_EQ(counter("tx_packets"), 1u);
    EXPECT_EQ(counter("tx_drops"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    finish();
}

TEST_F(Hostile, ExtraInfoTypeZeroIsFatal) {
    connect_bad();
    fill(0, 0, 100, 5);
    abi::tx_request extra{};
    abi::extra_info e{};
    e.type = abi::extra_type::none;
    std::memcpy(&extra, &e, sizeof e);
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::extra_info, 30, 100), extra};
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_NE(env_.log("back").find("bad extra type"), std::string::npos);
    finish();
}

TEST_F(Hostile, ConnectedWithoutRingRefsMakesBackendClose) {
    ASSERT_TRUE(bad_->wait_backend_state(2));
    ASSERT_TRUE(bad_->prepare());
    ASSERT_TRUE(bad_->write_keys(/*ring_refs=*/false));
    ASSERT_TRUE(bad_->set_state(4));
    EXPECT_TRUE(bad_->wait_backend_state(5)) << env_.log("back");
    EXPECT_NE(env_.log("back").find("missing or bad ring refs"), std::string::npos);
    auto st = env_.stats(back_, "back");
    ASSERT_TRUE(st);
    const auto* v = find_vif(*st, bad_guest);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ((*v)["connected"], false);
    EXPECT_EQ((*v)["queues"][0]["peer_faults"], 1);  // the refusal is counted
    EXPECT_EQ((*st)["grant_mappings"].get<long>(), base_maps_);
    EXPECT_EQ((*st)["event_channels"].get<long>(), base_ports_);
    finish();
}

TEST_F(Hostile, ClosedStraightAfterConnectedReleasesEverything) {
    connect_bad();
    bad_->post_rx(64);
    // Keep some tx in flight too: a good packet, answered.
    fill(0, 0, 80, 9);
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, 0, 1, 80)};
    bad_->push_tx(reqs);
    ASSERT_EQ(bad_->wait_tx_responses(1).size(), 1u);
    // No Closing: straight to Closed.
    ASSERT_TRUE(bad_->set_state(6));
    EXPECT_TRUE(bad_->wait_backend_state(6)) << env_.log("back");
    auto st = env_.stats(back_, "back");
    ASSERT_TRUE(st);
    EXPECT_EQ((*st)["grant_mappings"].get<long>(), base_maps_);
    EXPECT_EQ((*st)["event_channels"].get<long>(), base_ports_);
    EXPECT_EQ(counter("peer_faults"), 0u);
    finish();  // close() again is a no-op: the backend is already Closed
}

}  // namespace
}  // namespace vifkit::test
