// Hostile-backend tests: a hand-written backend (driver domain 9) serves guest
// 1's vif and feeds the real vifkit-front malformed responses, indices, control
// answers, states and features, while a real vifkit-back / vifkit-front pair
// (guest 2) keeps passing traffic in the same emulated platform. Every case
// checks:
//  (a) the bad vifkit-front process is alive;
//  (b) the legit vif still carries traffic both ways;
//  (c) the bad vif is disabled (frontend Closing/Closed) or the response is
//      rejected (nothing bogus reaches the guest port);
//  (d) a counter moved in the bad frontend's stats;
//  (e) after teardown the hostile backend holds no mapping or port of the
//      frontend, and the frontend has no grant (beyond those it had to leak
//      because we kept them mapped) and no event channel left.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <thread>
#include <tuple>

#include "emu_harness.hpp"
#include "hostile_backend.hpp"
#include "offload_frames.hpp"

namespace vifkit::test {
namespace {

constexpr unsigned bad_guest = 1;
constexpr unsigned good_guest = 2;
constexpr domid_t hostile_dom = 9;
constexpr int st_init_wait = 2, st_connected = 4, st_closing = 5, st_closed = 6;

bool eventually(const auto& pred, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

// A unicast frame with a local experimental ethertype and a seed-derived payload.
std::vector<std::byte> make_frame(std::size_t len, std::uint8_t seed) {
    std::vector<std::byte> v(len);
    for (std::size_t k = 0; k < len; ++k) v[k] = static_cast<std::byte>(seed + k * 7);
    const std::uint8_t hdr[14] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0x01, 0, 0, 0, seed, 0x88, 0xb5};
    std::memcpy(v.data(), hdr, std::min<std::size_t>(len, 14));
    return v;
}

abi::rx_response rxrsp(std::uint16_t id, std::uint16_t offset, std::uint16_t flags, std::int16_t status) {
    abi::rx_response r{};
    r.id = id;
    r.offset = offset;
    r.flags = flags;
    r.status = status;
    return r;
}

class HostileBackend : public ::testing::Test {
protected:
    void SetUp() override {
        back_ = env_.start_backend();
        ASSERT_TRUE(env_.attach(good_guest));
        front2_ = env_.start_frontend(good_guest);
        ASSERT_TRUE(env_.wait_connected(good_guest)) << env_.log("back") << env_.log("front2");
        host2_ = connect_port(env_.backend_port(good_guest));
        guest2_ = connect_port(env_.frontend_port(good_guest));
        ASSERT_TRUE(host2_ && guest2_);
        hb_ = std::make_unique<hostile_backend>(env_, hostile_dom, static_cast<domid_t>(bad_guest));
        ASSERT_TRUE(hb_->attach_vif());
    }

    void TearDown() override {
        if (hb_) hb_->unmap_all();
    }

    // Start the bad vifkit-front (guest 1) against the hostile backend.
    void start_bad(const std::vector<std::string>& extra = {}) {
        front1_ = env_.start_frontend(bad_guest, extra);
    }

    // Handshake the hostile backend with the bad frontend; wait until the
    // frontend has posted its rx buffers; connect the guest side of its port.
    void connect_bad(const hostile_backend::features& f = {}, std::uint32_t rx_posted = 256) {
        if (!front1_.alive()) start_bad();
        ASSERT_TRUE(hb_->connect(f)) << log1();
        ASSERT_TRUE(hb_->wait_rx_req_prod(rx_posted)) << log1();
        if (!guest1_) guest1_ = connect_port(env_.frontend_port(bad_guest));
        ASSERT_TRUE(guest1_);
        ASSERT_TRUE(eventually([&] {
            auto s = stats1();
            return s && (*s)["connected"] == true;
        })) << log1();
    }

    std::string log1() const { return env_.log("front1"); }
    std::optional<nlohmann::json> stats1() { return env_.stats(front1_, "front1"); }
    // Top-level counter of the bad frontend.
    std::uint64_t top(const char* name) {
        auto s = stats1();
        return s && s->contains(name) && (*s)[name].is_number() ? (*s)[name].get<std::uint64_t>() : 0;
    }
    // Queue-0 counter of the bad frontend.
    std::uint64_t counter(const char* name) {
        auto s = stats1();
        if (!s || !(*s)["queues"].is_array() || (*s)["queues"].empty()) return 0;
        const auto& q = (*s)["queues"][0];
        return q.contains(name) ? q[name].get<std::uint64_t>() : 0;
    }
    std::uint64_t ctrl_counter(const char* name) {
        auto s = stats1();
        if (!s || !(*s)["ctrl"].is_object()) return 0;
        return (*s)["ctrl"].contains(name) ? (*s)["ctrl"][name].get<std::uint64_t>() : 0;
    }
    bool wait_counter(const char* name, std::uint64_t at_least, std::chrono::milliseconds t = 10s) {
        return eventually([&] { return counter(name) >= at_least; }, t);
    }

    // One frame from the bad frontend's guest port, or empty after `timeout`.
    std::vector<std::byte> recv_guest1(std::chrono::milliseconds timeout = 3s) {
        std::vector<std::byte> buf(io::max_frame_size);
        pollfd p{guest1_->fd(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {};
        const long n = guest1_->recv(buf);
        if (n <= 0) return {};
        buf.resize(static_cast<std::size_t>(n));
        return buf;
    }
    // Nothing arrives on the bad guest port within `t`.
    void expect_nothing_delivered(std::chrono::milliseconds t = 300ms) {
        EXPECT_TRUE(recv_guest1(t).empty()) << "a rejected response reached the guest";
    }

    // Next rx ring index we answer at (the frontend posted every slot).
    std::uint32_t rx_idx_ = 0;
    // Answer one rx slot with `r` (id defaults to the posted one), publish, notify.
    void rx_answer(const abi::rx_response& r) {
        hb_->put_rx_response(rx_idx_, r);
        hb_->set_rx_rsp_prod(++rx_idx_);
        hb_->notify();
    }
    std::uint16_t posted_id(std::uint32_t idx) { return hb_->rx_request_at(idx).id; }
    // A legitimate frame at the next rx slot; the guest must get it intact.
    void expect_rx_works(std::uint8_t seed = 99) {
        const auto f = make_frame(300, seed);
        ASSERT_TRUE(hb_->deliver_rx(rx_idx_++, f));
        EXPECT_EQ(recv_guest1(), f) << "the vif no longer receives\n" << log1();
    }

    // Guest 1 sends n frames; wait until they are on the tx ring.
    std::uint32_t tx_idx_ = 0;
    void guest_sends(unsigned n) {
        for (unsigned i = 0; i < n; ++i) ASSERT_TRUE(guest1_->send(make_frame(100 + i, static_cast<std::uint8_t>(i))));
        ASSERT_TRUE(hb_->wait_tx_req_prod(tx_idx_ + n)) << log1();
    }
    void tx_answer(std::uint16_t id, std::int16_t status) {
        hb_->put_tx_response(tx_idx_, {id, status});
        hb_->set_tx_rsp_prod(++tx_idx_);
        hb_->notify();
    }
    // A guest frame goes out and is answered OKAY; the buffer comes back.
    void expect_tx_works() {
        ASSERT_TRUE(guest1_->send(make_frame(200, 7)));
        ASSERT_TRUE(hb_->wait_tx_req_prod(tx_idx_ + 1)) << "the vif no longer transmits\n" << log1();
        const auto req = hb_->tx_request_at(tx_idx_);
        std::vector<std::byte> got(req.size);
        ASSERT_TRUE(hb_->copy_from_front(req.gref, req.offset, got));
        EXPECT_EQ(got, make_frame(200, 7));
        tx_answer(req.id, abi::rsp::okay);
    }

    // (c) for fatal cases: the frontend gave up on the vif (Closing), and
    // finishes closing once we let go.
    void expect_disabled() {
        expect_disabled_without_close();
        EXPECT_TRUE(hb_->close()) << "frontend did not reach Closed\n" << log1();
        EXPECT_EQ(counter("peer_faults"), 1u);
    }
    void expect_disabled_without_close() {
        EXPECT_TRUE(hb_->wait_frontend_state(st_closing)) << log1();
        auto s = stats1();
        ASSERT_TRUE(s);
        EXPECT_EQ((*s)["connected"], false);
        EXPECT_EQ((*s)["event_channels"], 0) << "ports kept after the fault";
    }

    // (a), (e), (b).
    void finish(std::uint64_t leaked = 0) {
        EXPECT_TRUE(front1_.alive()) << "vifkit-front died\n" << log1();
        // Close the bad vif if it is still up, as a well-behaved backend would.
        if (hb_->frontend_state() != st_closed) {
            EXPECT_TRUE(hb_->close()) << log1();
        }
        hb_->unmap_all();
        EXPECT_EQ(hb_->mapped(), 0u);
        EXPECT_EQ(hb_->ports(), 0u);
        auto s = stats1();
        ASSERT_TRUE(s) << log1();
        EXPECT_EQ((*s)["state"], "Closed");
        EXPECT_EQ((*s)["event_channels"], 0);
        EXPECT_EQ((*s)["leaked_pages"], leaked);
        EXPECT_EQ((*s)["granted_pages"], leaked) << "grants left behind";
        EXPECT_TRUE(front1_.alive());

        auto st2 = env_.stats(front2_, "front2");
        ASSERT_TRUE(st2);
        EXPECT_EQ((*st2)["connected"], true);
        EXPECT_EQ((*st2)["queues"][0]["peer_faults"], 0);
        for (auto [from, to, seed] : {std::tuple{guest2_.get(), host2_.get(), 101u},
                                      std::tuple{host2_.get(), guest2_.get(), 202u}}) {
            const auto r = pump(*from, *to, 300, seed);
            EXPECT_FALSE(r.timed_out);
            EXPECT_EQ(r.received, 300u);
            EXPECT_EQ(r.corrupted, 0u);
            EXPECT_EQ(r.out_of_order, 0u);
        }
        EXPECT_TRUE(back_.alive());
        EXPECT_TRUE(front2_.alive());
    }

    emu_env env_;
    child back_, front2_, front1_;
    std::unique_ptr<io::packet_port> host2_, guest2_, guest1_;
    std::unique_ptr<hostile_backend> hb_;
};

// ---------------------------------------------------------------- rx responses

TEST_F(HostileBackend, RxOffsetPlusStatusBeyondPageIsRejected) {
    connect_bad();
    const auto f = make_frame(300, 1);
    ASSERT_TRUE(hb_->copy_to_front(hb_->rx_request_at(0).gref, 0, f));
    rx_answer(rxrsp(posted_id(0), 3900, 0, 300));  // 3900 + 300 > 4096
    rx_answer(rxrsp(posted_id(1), 4095, 0, 2));    // one byte too far
    ASSERT_TRUE(wait_counter("rx_errors", 2)) << log1();
    expect_nothing_delivered();
    EXPECT_EQ(counter("rx_packets"), 0u);
    expect_rx_works();
    EXPECT_EQ(counter("rx_packets"), 1u);
    finish();
}

TEST_F(HostileBackend, RxNegativeStatusOutsideErrorCodesIsRejected) {
    connect_bad();
    for (std::int16_t status : {std::int16_t{-300}, std::int16_t{-32768}, abi::rsp::dropped, abi::rsp::error})
        rx_answer(rxrsp(posted_id(rx_idx_), 0, 0, status));
    ASSERT_TRUE(wait_counter("rx_errors", 4)) << log1();
    expect_nothing_delivered();
    EXPECT_EQ(counter("rx_packets"), 0u);
    expect_rx_works();
    finish();
}

TEST_F(HostileBackend, RxHugePositiveStatusIsRejected) {
    connect_bad();
    for (std::int16_t status : {std::int16_t{4097}, std::int16_t{30000}, std::int16_t{32767}})
        rx_answer(rxrsp(posted_id(rx_idx_), 0, 0, status));
    ASSERT_TRUE(wait_counter("rx_errors", 3)) << log1();
    expect_nothing_delivered();
    EXPECT_EQ(counter("rx_packets"), 0u);
    expect_rx_works();
    finish();
}

TEST_F(HostileBackend, RxResponseInTheWrongSlotIsRejected) {
    connect_bad();
    const auto f = make_frame(200, 2);
    ASSERT_TRUE(hb_->copy_to_front(hb_->rx_request_at(1).gref, 0, f));
    rx_answer(rxrsp(posted_id(1), 0, 0, 200));  // slot 0 answered with slot 1's buffer
    ASSERT_TRUE(wait_counter("bad_responses", 1)) << log1();
    EXPECT_EQ(counter("rx_errors"), 1u);
    expect_nothing_delivered();
    expect_rx_works();
    finish();
}

TEST_F(HostileBackend, RxIdNeverPostedIsRejected) {
    connect_bad();
    rx_answer(rxrsp(300, 0, 0, 100));     // no such buffer
    rx_answer(rxrsp(0xFFFF, 0, 0, 100));  // nor this one
    ASSERT_TRUE(wait_counter("bad_responses", 2)) << log1();
    EXPECT_EQ(counter("rx_errors"), 2u);
    expect_nothing_delivered();
    expect_rx_works();
    finish();
}

TEST_F(HostileBackend, RxDuplicateIdIsRejected) {
    connect_bad();
    const auto f = make_frame(150, 3);
    ASSERT_TRUE(hb_->copy_to_front(hb_->rx_request_at(0).gref, 0, f));
    const std::uint16_t id0 = posted_id(0);
    rx_answer(rxrsp(id0, 0, 0, 150));  // legitimate
    rx_answer(rxrsp(id0, 0, 0, 150));  // the same buffer again, in slot 1
    EXPECT_EQ(recv_guest1(), f);
    ASSERT_TRUE(wait_counter("bad_responses", 1)) << log1();
    EXPECT_EQ(counter("rx_packets"), 1u);
    EXPECT_EQ(counter("rx_errors"), 1u);
    expect_nothing_delivered();
    expect_rx_works();
    finish();
}

TEST_F(HostileBackend, RxRspProdOverflowIsFatal) {
    connect_bad();
    hb_->set_rx_rsp_prod(ring::rx_ring_types::size + 1);
    hb_->notify();
    expect_disabled();
    EXPECT_NE(log1().find("rx rsp_prod beyond the ring"), std::string::npos);
    finish();
}

TEST_F(HostileBackend, RxRspProdGoingBackwardsIsFatal) {
    connect_bad();
    expect_rx_works(1);
    expect_rx_works(2);
    hb_->set_rx_rsp_prod(1);  // behind what the frontend consumed
    hb_->notify();
    expect_disabled();
    EXPECT_EQ(counter("rx_packets"), 2u);
    finish();
}

TEST_F(HostileBackend, RxMoreDataChainLongerThanAllowedIsDropped) {
    connect_bad();
    constexpr unsigned slots = 25;  // > 18 (+1)
    for (unsigned i = 0; i < slots; ++i) {
        ASSERT_TRUE(hb_->copy_to_front(hb_->rx_request_at(rx_idx_).gref, 0, make_frame(1000, 4)));
        rx_answer(rxrsp(posted_id(rx_idx_), 0, i + 1 < slots ? abi::rxf::more_data : 0, 1000));
    }
    ASSERT_TRUE(wait_counter("rx_errors", 1)) << log1();
    EXPECT_EQ(counter("bad_responses"), 1u);
    expect_nothing_delivered();
    EXPECT_EQ(counter("rx_packets"), 0u);
    expect_rx_works();
    finish();
}

TEST_F(HostileBackend, RxMoreDataChainNeverEndingIsBounded) {
    connect_bad();
    // Three rings' worth of more_data slots, answered as the frontend re-posts.
    for (unsigned i = 0; i < 3 * ring::rx_ring_types::size; ++i) {
        ASSERT_TRUE(hb_->wait_rx_req_prod(rx_idx_ + 1)) << log1();
        rx_answer(rxrsp(posted_id(rx_idx_), 0, abi::rxf::more_data, 64));
    }
    // Everything consumed (and re-posted), nothing delivered, nothing broken.
    ASSERT_TRUE(hb_->wait_rx_req_prod(rx_idx_ + ring::rx_ring_types::size)) << log1();
    EXPECT_EQ(counter("bad_responses"), 1u);
    EXPECT_EQ(counter("rx_packets"), 0u);
    expect_nothing_delivered();
    EXPECT_EQ(top("connects"), 1u);
    EXPECT_TRUE(front1_.alive());
    finish();
}

TEST_F(HostileBackend, RxExtraInfoOfUnknownTypeIsRejected) {
    connect_bad();
    const auto f = make_frame(120, 5);
    ASSERT_TRUE(hb_->copy_to_front(hb_->rx_request_at(0).gref, 0, f));
    rx_answer(rxrsp(posted_id(0), 0, abi::rxf::extra_info, 120));
    abi::extra_info e{};
    e.type = 9;  // >= XEN_NETIF_EXTRA_TYPE_MAX
    hb_->put_rx_extra(rx_idx_, e);
    hb_->set_rx_rsp_prod(++rx_idx_);
    hb_->notify();
    ASSERT_TRUE(wait_counter("rx_errors", 1)) << log1();
    EXPECT_EQ(counter("bad_responses"), 1u);
    expect_nothing_delivered();
    EXPECT_EQ(counter("rx_packets"), 0u);
    expect_rx_works();
    finish();
}

// ---------------------------------------------------------------- tx responses

TEST_F(HostileBackend, TxRspProdOverflowIsFatal) {
    connect_bad();
    hb_->set_tx_rsp_prod(ring::tx_ring_types::size + 5);
    hb_->notify();
    expect_disabled();
    EXPECT_NE(log1().find("tx rsp_prod beyond the ring"), std::string::npos);
    finish();
}

TEST_F(HostileBackend, TxRspProdGoingBackwardsIsFatal) {
    connect_bad();
    expect_tx_works();
    expect_tx_works();
    ASSERT_TRUE(hb_->wait_tx_consumed(tx_idx_)) << log1();
    hb_->set_tx_rsp_prod(1);
    hb_->notify();
    expect_disabled();
    finish();
}

TEST_F(HostileBackend, TxResponsesBeyondRequestsAreFatal) {
    connect_bad();
    expect_tx_works();
    // Five answers to requests that were never made (still within one ring).
    for (int i = 0; i < 5; ++i) hb_->put_tx_response(tx_idx_ + static_cast<std::uint32_t>(i), {0, abi::rsp::okay});
    hb_->set_tx_rsp_prod(tx_idx_ + 5);
    hb_->notify();
    expect_disabled();
    EXPECT_NE(log1().find("tx: more responses than requests"), std::string::npos);
    finish();
}

TEST_F(HostileBackend, TxResponsesWithUnknownIdsAreRejected) {
    connect_bad();
    guest_sends(2);
    const auto r0 = hb_->tx_request_at(0), r1 = hb_->tx_request_at(1);
    std::uint16_t idle = 0;  // a buffer of the pool that is not in flight
    while (idle == r0.id || idle == r1.id) ++idle;
    tx_answer(999, abi::rsp::okay);  // outside the pool
    tx_answer(idle, abi::rsp::okay);
    ASSERT_TRUE(wait_counter("bad_responses", 2)) << log1();
    EXPECT_EQ(counter("tx_errors"), 0u);
    expect_tx_works();
    EXPECT_EQ(counter("bad_responses"), 2u);
    finish();
}

TEST_F(HostileBackend, TxDuplicateIdsAreRejected) {
    connect_bad();
    guest_sends(2);
    const auto r0 = hb_->tx_request_at(0);
    tx_answer(r0.id, abi::rsp::okay);
    tx_answer(r0.id, abi::rsp::okay);  // again, instead of the second request's id
    ASSERT_TRUE(wait_counter("bad_responses", 1)) << log1();
    expect_tx_works();
    EXPECT_EQ(counter("bad_responses"), 1u);
    finish();
}

TEST_F(HostileBackend, TxBadStatusValuesCountAsErrors) {
    connect_bad();
    guest_sends(3);
    const std::int16_t statuses[] = {7, -300, std::int16_t{-32768}};
    for (std::uint32_t i = 0; i < 3; ++i) tx_answer(hb_->tx_request_at(i).id, statuses[i]);
    ASSERT_TRUE(wait_counter("tx_errors", 3)) << log1();
    EXPECT_EQ(counter("bad_responses"), 0u);
    expect_tx_works();  // the buffers came back: the vif still transmits
    EXPECT_EQ(counter("tx_errors"), 3u);
    finish();
}

// ---------------------------------------------------------------- control ring

class HostileBackendCtrl : public HostileBackend {
protected:
    void connect_ctrl() {
        hostile_backend::features f;
        f.ctrl_ring = true;
        connect_bad(f);
        ASSERT_NE(hb_->ctrl_shared(), nullptr);
        // Static grant registration starts with GET_GREF_MAPPING_SIZE.
        ASSERT_TRUE(hb_->wait_ctrl_req_prod(1)) << log1();
        req_ = hb_->ctrl_request_at(0);
        ASSERT_EQ(req_.type, abi::ctrl_type::get_gref_mapping_size);
    }
    void ctrl_answer(std::uint16_t id, std::uint16_t type, std::uint32_t status, std::uint32_t data) {
        hb_->put_ctrl_response(ctrl_idx_, {id, type, status, data});
        hb_->set_ctrl_rsp_prod(++ctrl_idx_);
        hb_->notify_ctrl();
    }
    // The frontend timed the request out and fell back to ordinary grants,
    // while its data path kept working.
    void expect_fallback() {
        expect_rx_works(11);
        expect_tx_works();
        ASSERT_TRUE(eventually([&] { return ctrl_counter("timeouts") >= 1; }, 10s)) << log1();
        auto s = stats1();
        ASSERT_TRUE(s);
        EXPECT_EQ((*s)["static_fallback"], true);
        EXPECT_EQ((*s)["static_grants"], 0);
        EXPECT_EQ((*s)["connected"], true);
        expect_rx_works(12);
        expect_tx_works();
    }
    abi::ctrl_request req_{};
    std::uint32_t ctrl_idx_ = 0;
};

TEST_F(HostileBackendCtrl, UnknownIdIsIgnoredAndRequestTimesOut) {
    connect_ctrl();
    ctrl_answer(static_cast<std::uint16_t>(req_.id + 77), req_.type, abi::ctrl_status::success, 4096);
    ASSERT_TRUE(eventually([&] { return ctrl_counter("bad_responses") == 1; })) << log1();
    EXPECT_EQ(ctrl_counter("completed"), 0u);
    expect_fallback();
    finish();
}

TEST_F(HostileBackendCtrl, WrongTypeIsIgnoredAndRequestTimesOut) {
    connect_ctrl();
    ctrl_answer(req_.id, abi::ctrl_type::add_gref_mapping, abi::ctrl_status::success, 4096);
    ASSERT_TRUE(eventually([&] { return ctrl_counter("bad_responses") == 1; })) << log1();
    EXPECT_EQ(ctrl_counter("completed"), 0u);
    expect_fallback();
    finish();
}

TEST_F(HostileBackendCtrl, MoreResponsesThanRequestsIsFatal) {
    connect_ctrl();
    hb_->put_ctrl_response(0, {req_.id, req_.type, abi::ctrl_status::not_supported, 0});
    hb_->put_ctrl_response(1, {static_cast<std::uint16_t>(req_.id + 1), req_.type, abi::ctrl_status::success, 1});
    hb_->set_ctrl_rsp_prod(2);
    hb_->notify_ctrl();
    expect_disabled();
    EXPECT_NE(log1().find("more responses than requests"), std::string::npos);
    finish();
}

TEST_F(HostileBackendCtrl, NeverAnsweringTimesOutWithoutStallingTheDataPath) {
    connect_ctrl();
    expect_fallback();
    finish();
}

TEST_F(HostileBackendCtrl, FeatureCtrlRingWithoutAWorkingRing) {
    // Advertise the ring but never map it nor bind its port: nobody will answer.
    start_bad();
    hostile_backend::features f;
    f.ctrl_ring = true;
    ASSERT_TRUE(hb_->connect(f, /*with_ctrl=*/false)) << log1();
    ASSERT_TRUE(hb_->front("ctrl-ring-ref")) << "the frontend did not create its control ring";
    ASSERT_EQ(hb_->ctrl_shared(), nullptr);
    ASSERT_TRUE(hb_->wait_rx_req_prod(256)) << log1();
    guest1_ = connect_port(env_.frontend_port(bad_guest));
    ASSERT_TRUE(guest1_);
    expect_fallback();
    finish();
}

// ---------------------------------------------------------------- xenbus states

TEST_F(HostileBackend, StateFlappingReconnectsCleanly) {
    connect_bad();
    for (int round = 0; round < 3; ++round) {
        // Connected -> InitWait -> Connected: a connected frontend ignores both.
        ASSERT_TRUE(hb_->set_state(st_init_wait));
        ASSERT_TRUE(hb_->set_state(st_connected));
        ASSERT_TRUE(hb_->set_state(st_init_wait));
        ASSERT_TRUE(hb_->set_state(st_connected));
        expect_rx_works(static_cast<std::uint8_t>(20 + round));
        // -> Closing (having let go first): the frontend closes ...
        hb_->unmap_all();
        ASSERT_TRUE(hb_->set_state(st_closing));
        ASSERT_TRUE(hb_->wait_frontend_state(st_closed)) << log1();
        // ... and InitWait brings it back.
        rx_idx_ = tx_idx_ = 0;
        ASSERT_TRUE(hb_->connect()) << log1();
        ASSERT_TRUE(hb_->wait_rx_req_prod(256)) << log1();
        ASSERT_TRUE(eventually([&] { return top("connects") == static_cast<std::uint64_t>(round) + 2; })) << log1();
    }
    EXPECT_EQ(top("backend_closes"), 3u);
    EXPECT_EQ(top("leaked_pages"), 0u);
    expect_rx_works(30);
    expect_tx_works();
    finish();
}

TEST_F(HostileBackend, GarbageStatesDisableTheVif) {
    connect_bad();
    ASSERT_TRUE(hb_->set_state_raw("9"));
    expect_disabled_without_close();
    EXPECT_EQ(top("bad_backend_states"), 1u);
    std::uint64_t n = 1;
    for (const char* junk : {"abc", "", "4x", "-1"}) {
        ASSERT_TRUE(hb_->set_state_raw(junk));
        ++n;
        ASSERT_TRUE(eventually([&] { return top("bad_backend_states") == n; })) << junk << "\n" << log1();
    }
    EXPECT_TRUE(front1_.alive());
    EXPECT_TRUE(hb_->close()) << log1();
    EXPECT_EQ(counter("peer_faults"), 1u);
    finish();
}

TEST_F(HostileBackend, BackendVanishingClosesAndAReturningBackendReconnects) {
    connect_bad();
    expect_rx_works();
    // The backend domain goes away: mappings gone, Closed, nodes removed.
    hb_->unmap_all();
    ASSERT_TRUE(hb_->set_state(st_closed));
    ASSERT_TRUE(hb_->wait_frontend_state(st_closed)) << log1();
    ASSERT_TRUE(hb_->remove_backend_dir());
    ASSERT_TRUE(eventually([&] {
        auto s = stats1();
        return s && (*s)["granted_pages"] == 0 && (*s)["event_channels"] == 0;
    })) << log1();
    EXPECT_EQ(top("backend_closes"), 1u);
    EXPECT_TRUE(front1_.alive());
    // The toolstack re-creates the backend: the frontend connects again.
    ASSERT_TRUE(hb_->attach_vif());
    rx_idx_ = tx_idx_ = 0;
    ASSERT_TRUE(hb_->connect()) << log1();
    ASSERT_TRUE(hb_->wait_rx_req_prod(256)) << log1();
    ASSERT_TRUE(eventually([&] { return top("connects") == 2; })) << log1();
    expect_rx_works();
    expect_tx_works();
    finish();
}

TEST_F(HostileBackend, ClosingWhileStillMappingLeaksButNeverReuses) {
    connect_bad();
    // Closing, but the rings stay mapped (XSA-396): the frontend must not
    // revoke-and-reuse them.
    ASSERT_TRUE(hb_->set_state(st_closing));
    ASSERT_TRUE(hb_->wait_frontend_state(st_closed)) << log1();
    ASSERT_TRUE(eventually([&] { return top("leaked_pages") == 2; })) << log1();
    EXPECT_EQ(top("backend_closes"), 1u);
    EXPECT_NE(log1().find("leaking them"), std::string::npos);
    ASSERT_TRUE(hb_->set_state(st_closed));
    finish(/*leaked=*/2);
}

// ---------------------------------------------------------------- features

TEST_F(HostileBackend, BogusMaxQueuesValues) {
    start_bad({"--queues", "4"});
    struct {
        const char* value;
        unsigned queues;
        std::uint64_t bad_keys;
    } const cases[] = {{"0", 1, 1}, {"x", 1, 2}, {"99999", 4, 2}, {"-3", 1, 3}};
    std::uint64_t round = 0;
    for (const auto& c : cases) {
        hostile_backend::features f;
        f.max_queues = c.value;
        rx_idx_ = tx_idx_ = 0;
        connect_bad(f);
        ++round;
        EXPECT_EQ(hb_->queues(), c.queues) << c.value;
        auto s = stats1();
        ASSERT_TRUE(s);
        EXPECT_EQ((*s)["queues"].size(), c.queues) << c.value;
        EXPECT_EQ((*s)["bad_backend_keys"], c.bad_keys) << c.value;
        EXPECT_EQ((*s)["connects"], round);
        expect_rx_works(static_cast<std::uint8_t>(40 + round));
        // Let the frontend go, then come back with the next value.
        ASSERT_TRUE(hb_->close()) << log1();
        ASSERT_TRUE(eventually([&] {
            auto t = stats1();
            return t && (*t)["granted_pages"] == 0 && (*t)["event_channels"] == 0;
        })) << log1();
        ASSERT_TRUE(hb_->remove("multi-queue-max-queues"));
    }
    finish();
}

TEST_F(HostileBackend, ReconnectLeavesNoStaleRingKeys) {
    // First connection: two queues and a control ring ...
    start_bad({"--queues", "2"});
    hostile_backend::features f;
    f.ctrl_ring = true;
    f.max_queues = "2";
    connect_bad(f);
    EXPECT_EQ(hb_->queues(), 2u);
    ASSERT_TRUE(hb_->front("ctrl-ring-ref"));
    ASSERT_TRUE(hb_->front("queue-1/tx-ring-ref"));
    ASSERT_TRUE(hb_->close()) << log1();
    // ... then the backend offers neither: none of the old keys (naming revoked
    // grants and closed ports) may survive into the new connection.
    ASSERT_TRUE(hb_->remove("feature-ctrl-ring"));
    ASSERT_TRUE(hb_->remove("multi-queue-max-queues"));
    rx_idx_ = tx_idx_ = 0;
    connect_bad();
    EXPECT_EQ(hb_->queues(), 1u);
    EXPECT_EQ(hb_->ctrl_shared(), nullptr);
    for (const char* k : {"ctrl-ring-ref", "event-channel-ctrl", "multi-queue-num-queues", "queue-0", "queue-1"})
        EXPECT_FALSE(hb_->front(k)) << k << " survived the reconnect";
    EXPECT_TRUE(hb_->front("tx-ring-ref"));
    EXPECT_EQ(top("connects"), 2u);
    EXPECT_EQ(top("backend_closes"), 1u);
    expect_rx_works();
    expect_tx_works();
    finish();
}

// ---------------------------------------------------------------- rx GSO extras

abi::extra_info gso_extra(std::uint16_t size, std::uint8_t type) {
    abi::extra_info e{};
    e.type = abi::extra_type::gso;
    e.u.gso.size = size;
    e.u.gso.type = type;
    return e;
}

class HostileBackendGso : public HostileBackend {
protected:
    // Deliver `frame` the way a netback sends a GSO packet (netif-spec §4.4):
    // page-sized data slots from rx_idx_, the first with `flags` | extra_info
    // (and more_data while slots follow), the extra `e` in the slot right
    // after the first, then the other data slots; publish and notify.
    void rx_with_extra(const std::vector<std::byte>& frame, std::uint16_t flags, const abi::extra_info& e) {
        const std::size_t slots = (frame.size() + 4095) / 4096;
        std::uint32_t idx = rx_idx_;
        for (std::size_t k = 0; k < slots; ++k) {
            const std::size_t len = std::min<std::size_t>(4096, frame.size() - k * 4096);
            const auto req = hb_->rx_request_at(idx);
            ASSERT_TRUE(hb_->copy_to_front(req.gref, 0, std::span<const std::byte>(frame).subspan(k * 4096, len)));
            std::uint16_t fl = k + 1 < slots ? abi::rxf::more_data : 0;
            if (k == 0) fl |= flags | abi::rxf::extra_info;
            hb_->put_rx_response(idx++, rxrsp(req.id, 0, fl, static_cast<std::int16_t>(len)));
            if (k == 0) hb_->put_rx_extra(idx++, e);
        }
        rx_idx_ = idx;
        hb_->set_rx_rsp_prod(rx_idx_);
        hb_->notify();
    }
};

TEST_F(HostileBackendGso, RxGsoExtraThatWasNotAdvertisedIsRejected) {
    start_bad({"--disable", "gso-tcpv4,gso-tcpv6"});
    connect_bad();
    EXPECT_EQ(hb_->front("feature-gso-tcpv4").value_or(""), "0");
    EXPECT_EQ(hb_->front("feature-gso-tcpv6").value_or(""), "0");
    const auto f = ip4_frame(9000 - tcp4_hdr_len, 1, 1);
    rx_with_extra(f, abi::rxf::csum_blank, gso_extra(1448, abi::gso_type::tcpv4));
    rx_with_extra(f, abi::rxf::csum_blank, gso_extra(1448, abi::gso_type::tcpv6));
    ASSERT_TRUE(wait_counter("rx_errors", 2)) << log1();
    EXPECT_EQ(counter("gso_errors"), 2u);
    EXPECT_EQ(counter("bad_responses"), 2u);
    expect_nothing_delivered();
    EXPECT_EQ(counter("rx_packets"), 0u);
    EXPECT_EQ(counter("gso_segmented"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    expect_rx_works();
    EXPECT_EQ(counter("rx_packets"), 1u);
    finish();
}

TEST_F(HostileBackendGso, RxGsoExtraWithSizeZeroOrUnknownTypeIsRejected) {
    connect_bad();
    ASSERT_EQ(hb_->front("feature-gso-tcpv4").value_or(""), "1");
    const auto f = ip4_frame(6000, 1, 1);
    rx_with_extra(f, abi::rxf::csum_blank, gso_extra(0, abi::gso_type::tcpv4));
    rx_with_extra(f, abi::rxf::csum_blank, gso_extra(1448, 7));
    ASSERT_TRUE(wait_counter("rx_errors", 2)) << log1();
    EXPECT_EQ(counter("gso_errors"), 2u);
    EXPECT_EQ(counter("bad_responses"), 2u);
    expect_nothing_delivered();
    EXPECT_EQ(counter("rx_packets"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    expect_rx_works();
    finish();
}

TEST_F(HostileBackendGso, RxGsoSuperFrameIsSegmentedForAGuestPortWithoutOffloads) {
    connect_bad();
    constexpr std::size_t mss = 1448, payload = 9000 - tcp4_hdr_len;  // 3 data slots, 7 segments
    const auto f = ip4_frame(payload, 0x10000000u, 0x4242);
    rx_with_extra(f, abi::rxf::csum_blank, gso_extra(mss, abi::gso_type::tcpv4));
    ASSERT_EQ(rx_idx_, 4u);  // 3 data slots + the extra
    constexpr std::size_t nseg = (payload + mss - 1) / mss;
    static_assert(nseg == 7);
    for (std::size_t i = 0; i < nseg; ++i) {
        const auto s = recv_guest1();
        ASSERT_FALSE(s.empty()) << "segment " << i << " missing\n" << log1();
        expect_tcp4_segment(s, f, i, mss);
    }
    expect_nothing_delivered();
    ASSERT_TRUE(wait_counter("gso_segmented", 1)) << log1();
    EXPECT_EQ(counter("rx_packets"), nseg);
    EXPECT_EQ(counter("gso_rx"), 0u);  // the plain guest port never gets a super-frame
    EXPECT_EQ(counter("gso_errors"), 0u);
    EXPECT_EQ(counter("bad_responses"), 0u);
    EXPECT_EQ(counter("rx_errors"), 0u);
    expect_rx_works();
    finish();
}

}  // namespace
}  // namespace vifkit::test
