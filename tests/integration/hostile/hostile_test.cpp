// Hostile-frontend tests: a hand-written frontend (guest 1) feeds vifkit-back
// malformed rings and handshakes while a real vifkit-front (guest 2) keeps
// passing traffic. Every case checks, where it applies:
//  (a) the backend process is alive; (b) the legit vif still carries traffic;
//  (c) the bad vif is disabled (backend Closing) or the request is rejected with
//      the spec's status; (d) a counter moved; (e) once the bad frontend closes,
//      the backend holds only the legit vif's grant mappings and event channels.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <span>
#include <thread>
#include <tuple>

#include "emu_harness.hpp"
#include "hostile_frontend.hpp"
#include "offload_frames.hpp"

namespace vifkit::test {
namespace {

constexpr unsigned bad_guest = 1;
constexpr unsigned good_guest = 2;

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
    // TCPv6 GSO and multicast control are not advertised: the cases that
    // use them check that unadvertised extras are fatal.
    virtual std::vector<std::string> backend_args() const { return {"--disable", "gso-tcpv6,multicast-control"}; }

    void SetUp() override {
        back_ = env_.start_backend(backend_args());
        ASSERT_TRUE(env_.attach(good_guest));
        front2_ = env_.start_frontend(good_guest);
        ASSERT_TRUE(env_.wait_connected(good_guest)) << env_.log("back") << env_.log("front2");
        host2_ = connect_port(env_.backend_port(good_guest));
        guest2_ = connect_port(env_.frontend_port(good_guest));
        ASSERT_TRUE(host2_ && guest2_);
        // The legit frontend registers its static grants after Connected: wait
        // until that settles before taking the baseline.
        ASSERT_TRUE(wait_static_grants(env_, front2_, "front2", 512)) << env_.log("front2");
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
        // tx + rx ring (+ ctrl ring)
        EXPECT_EQ((*st)["grant_mappings"].get<long>(), base_maps_ + (bad_->ctrl_shared() ? 3 : 2));
        EXPECT_GT((*st)["event_channels"].get<long>(), base_ports_);
        if (!host1_) host1_ = connect_port(env_.backend_port(bad_guest));
        ASSERT_TRUE(host1_);
    }
    // The same with a control ring.
    void connect_bad_ctrl() {
        bad_->enable_ctrl();
        connect_bad();
    }

    // The hostile vif's stats object.
    nlohmann::json bad_vif() {
        auto st = env_.stats(back_, "back");
        if (!st) return {};
        const auto* v = find_vif(*st, bad_guest);
        return v ? *v : nlohmann::json();
    }
    // Control requests of `type` answered with `status` (backend_handler stats).
    std::uint64_t ctrl_count(const char* type, const char* status) {
        auto v = bad_vif();
        if (!v.is_object() || !v["ctrl"].is_object()) return 0;
        return v["ctrl"]["requests"][type][status].get<std::uint64_t>();
    }
    std::uint64_t static_stat(const char* name) {
        auto v = bad_vif();
        if (!v.is_object() || !v["ctrl"].is_object()) return 0;
        return v["ctrl"]["static_grants"][name].get<std::uint64_t>();
    }
    long grant_mappings() {
        auto st = env_.stats(back_, "back");
        return st ? (*st)["grant_mappings"].get<long>() : -1;
    }
    // Poll the stats until counter(name) >= v.
    bool wait_counter(const char* name, std::uint64_t v, std::chrono::milliseconds timeout = 5s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (counter(name) < v) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(5ms);
        }
        return true;
    }

    // (c) for handshake refusals: the backend went Closing without connecting,
    // counted one peer fault and holds nothing of the bad vif.
    void expect_refused(const char* log_text) {
        EXPECT_TRUE(bad_->wait_backend_state(5)) << env_.log("back");
        EXPECT_NE(env_.log("back").find(log_text), std::string::npos) << env_.log("back");
        auto st = env_.stats(back_, "back");
        ASSERT_TRUE(st);
        const auto* v = find_vif(*st, bad_guest);
        ASSERT_NE(v, nullptr);
        EXPECT_EQ((*v)["connected"], false);
        EXPECT_EQ((*v)["queues"][0]["peer_faults"], 1);
        EXPECT_EQ((*st)["grant_mappings"].get<long>(), base_maps_);
        EXPECT_EQ((*st)["event_channels"].get<long>(), base_ports_);
    }
    // Legit keys, then `key` overwritten with `value` (empty key: none), then Connected.
    void connect_with_key(const std::string& key, const std::string& value) {
        ASSERT_TRUE(bad_->wait_backend_state(2));
        ASSERT_TRUE(bad_->prepare());
        ASSERT_TRUE(bad_->write_keys());
        if (!key.empty()) {
            ASSERT_TRUE(env_.store().write(bad_->front_path + "/" + key, value));
        }
        ASSERT_TRUE(bad_->set_state(4));
    }

    // A packet that must come through: one slot, `len` bytes of page `page`.
    void expect_tx_works(std::size_t page, std::uint16_t id, std::uint16_t len = 120) {
        const auto want = fill(page, 0, len, static_cast<std::uint8_t>(id));
        const abi::tx_request r[] = {txreq(bad_->data_ref(page), 0, 0, id, len)};
        bad_->push_tx(r);
        const auto rsps = bad_->wait_tx_responses(1);
        ASSERT_EQ(rsps.size(), 1u) << env_.log("back");
        EXPECT_EQ(rsps[0].id, id);
        EXPECT_EQ(rsps[0].status, abi::rsp::okay);
        EXPECT_EQ(recv_host1(), want);
    }
    // Every response is ERROR, ids in order from id0 (data slots only).
    static void expect_all(const std::vector<abi::tx_response>& rsps, std::size_t n, std::uint16_t id0,
                           std::int16_t status) {
        ASSERT_EQ(rsps.size(), n);
        for (std::size_t i = 0; i < n; ++i) {
            EXPECT_EQ(rsps[i].id, id0 + i) << "slot " << i;
            EXPECT_EQ(rsps[i].status, status) << "slot " << i;
        }
    }
    // A frame from the host to the hostile guest.
    std::vector<std::byte> send_host1(std::size_t len, std::uint8_t seed) {
        std::vector<std::byte> f(len);
        for (std::size_t k = 0; k < len; ++k) f[k] = static_cast<std::byte>(seed ^ (k * 13));
        const std::uint8_t hdr[14] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0x09, 0, 0, 0, seed, 0x88, 0xb5};
        std::memcpy(f.data(), hdr, 14);
        EXPECT_TRUE(host1_->send(f));
        return f;
    }
    // A chain: first slot (page 0, 100 bytes of its own) + `further` slots of `frag` bytes.
    std::vector<abi::tx_request> chain(unsigned further, std::uint16_t frag, std::uint16_t id0,
                                       std::vector<std::byte>* frame = nullptr) {
        std::vector<abi::tx_request> reqs;
        auto head = fill(0, 0, 100, static_cast<std::uint8_t>(id0));
        if (frame) *frame = head;
        reqs.push_back(txreq(bad_->data_ref(0), 0, further ? abi::txf::more_data : 0, id0,
                             static_cast<std::uint16_t>(100 + further * frag)));
        for (unsigned i = 1; i <= further; ++i) {
            auto part = fill(i, 0, frag, static_cast<std::uint8_t>(id0 + i));
            if (frame) frame->insert(frame->end(), part.begin(), part.end());
            reqs.push_back(txreq(bad_->data_ref(i), 0, i < further ? abi::txf::more_data : 0,
                                 static_cast<std::uint16_t>(id0 + i), frag));
        }
        return reqs;
    }
    // A gref list page holding `refs` (flags `flags` each).
    platform::shared_page gref_list(std::initializer_list<grant_ref_t> refs, bool writable = true,
                                    std::uint16_t flags = 0) {
        auto p = bad_->share_extra(writable);
        EXPECT_TRUE(p);
        if (!p) return {};
        std::vector<abi::gref_entry> list;
        for (auto r : refs) list.push_back({r, flags, 0xFFFF});
        std::memcpy(p->addr, list.data(), list.size() * sizeof(abi::gref_entry));
        return *p;
    }
    abi::gref_entry list_entry(const platform::shared_page& p, std::size_t i) {
        abi::gref_entry e;
        std::memcpy(&e, static_cast<const std::byte*>(p.addr) + i * sizeof e, sizeof e);
        return e;
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
        if (bad_) {
            EXPECT_TRUE(bad_->close()) << "backend did not reach Closed\n" << env_.log("back");
        }
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

// Linux netfront sends TCP/UDP with NETTXF_csum_blank: the backend completes
// the checksum in its private copy, so the host gets a valid segment. Broken
// headers under csum_blank are an ERROR for that packet only.
TEST_F(Hostile, CsumBlankIsCompletedAndBrokenHeadersAreDropped) {
    connect_bad();
    // IPv4/TCP, 100 bytes: 14 Ethernet + 20 IP + 20 TCP + 46 payload, checksum field garbage.
    auto f = fill(0, 0, 100, 9);
    const std::uint8_t l3[] = {0x08, 0x00, 0x45, 0, 0, 86, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
    std::memcpy(f.data() + 12, l3, sizeof l3);
    std::memcpy(bad_->data_page(0), f.data(), f.size());
    const abi::tx_request ok_req[] = {txreq(bad_->data_ref(0), 0, abi::txf::csum_blank, 40, 100)};
    bad_->push_tx(ok_req);
    auto rsps = bad_->wait_tx_responses(1);
    ASSERT_EQ(rsps.size(), 1u);
    EXPECT_EQ(rsps[0].status, abi::rsp::okay);
    const auto got = recv_host1();
    ASSERT_EQ(got.size(), 100u);
    // Receiver's check: pseudo-header + segment sums to 0xFFFF.
    std::uint32_t sum = 0;
    auto add16 = [&](std::size_t at) { sum += std::to_integer<std::uint32_t>(got[at]) << 8 | std::to_integer<std::uint32_t>(got[at + 1]); };
    for (std::size_t i = 26; i < 34; i += 2) add16(i);
    sum += 6 + 66;
    for (std::size_t i = 34; i < 100; i += 2) add16(i);
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    EXPECT_EQ(sum, 0xFFFFu);
    EXPECT_EQ(counter("csum_completed"), 1u);
    // Now an IP total length beyond the frame under csum_blank: ERROR, counted, vif stays up.
    f[16] = std::byte{0x40};
    std::memcpy(bad_->data_page(1), f.data(), f.size());
    const abi::tx_request bad_req[] = {txreq(bad_->data_ref(1), 0, abi::txf::csum_blank, 41, 100)};
    bad_->push_tx(bad_req);
    rsps = bad_->wait_tx_responses(1);
    ASSERT_EQ(rsps.size(), 1u);
    EXPECT_EQ(rsps[0].status, abi::rsp::error);
    EXPECT_EQ(counter("csum_errors"), 1u);
    EXPECT_EQ(counter("tx_packets"), 1u);
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


// ======================= tx ring indices =======================

TEST_F(Hostile, TxReqProdGoingBackwardsIsFatal) {
    connect_bad();
    expect_tx_works(0, 1);
    // req_prod moves back behind what the backend already consumed.
    bad_->set_req_prod(bad_->tx_shared()->req_prod - 5);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_EQ(counter("tx_packets"), 1u);
    EXPECT_NE(env_.log("back").find("tx ring overflow"), std::string::npos);
    finish();
}

TEST_F(Hostile, TxReqProdJumpingFarAheadIsFatal) {
    connect_bad();
    bad_->set_req_prod(bad_->tx_shared()->rsp_prod + 0x80000000u);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_EQ(counter("tx_drops"), 0u);
    finish();
}

TEST_F(Hostile, TxRingFullOfEmptyRequestsIsAnsweredWithErrors) {
    connect_bad();
    // A whole ring (exactly `size`, not more) of zeroed slots: gref 0, size 0.
    bad_->set_req_prod(bad_->tx_shared()->rsp_prod + ring::tx_ring_types::size);
    const auto rsps = bad_->wait_tx_responses(ring::tx_ring_types::size);
    ASSERT_EQ(rsps.size(), ring::tx_ring_types::size) << env_.log("back");
    for (const auto& r : rsps) EXPECT_EQ(r.status, abi::rsp::error);
    EXPECT_EQ(counter("tx_drops"), ring::tx_ring_types::size);
    EXPECT_EQ(counter("grant_errors"), 0u);  // dropped before any grant access
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    expect_tx_works(1, 300);
    finish();
}

// ======================= slot chains (first slot + N further) =======================

TEST_F(Hostile, EighteenFurtherSlotsNineteenTotalAreDelivered) {
    connect_bad();
    std::vector<std::byte> want;
    const auto reqs = chain(18, 50, 400, &want);
    ASSERT_EQ(reqs.size(), 19u);
    bad_->push_tx(reqs);
    expect_all(bad_->wait_tx_responses(reqs.size()), reqs.size(), 400, abi::rsp::okay);
    EXPECT_EQ(recv_host1(), want);
    EXPECT_EQ(counter("tx_packets"), 1u);
    EXPECT_EQ(counter("tx_drops"), 0u);
    finish();
}

TEST_F(Hostile, TwentyFurtherSlotsTwentyOneTotalAreDroppedWithError) {
    connect_bad();
    const auto reqs = chain(20, 50, 500);
    ASSERT_EQ(reqs.size(), 21u);
    bad_->push_tx(reqs);
    expect_all(bad_->wait_tx_responses(reqs.size()), reqs.size(), 500, abi::rsp::error);
    EXPECT_EQ(counter("tx_drops"), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    expect_tx_works(25, 600);  // the vif goes on
    finish();
}

TEST_F(Hostile, ThirtyFurtherSlotsAreFatal) {
    connect_bad();
    const auto reqs = chain(30, 40, 700);
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_NE(env_.log("back").find("too many slots"), std::string::npos);
    finish();
}

// ======================= slot geometry =======================

TEST_F(Hostile, FirstSlotCrossingThePageIsFatal) {
    connect_bad();
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 4000, 0, 1, 200)};
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("crosses page boundary"), std::string::npos);
    finish();
}

TEST_F(Hostile, ZeroSizeSingleSlotIsDroppedWithoutGrantAccess) {
    connect_bad();
    // Ungranted gref too: a zero-size packet must be dropped before any grant op.
    const abi::tx_request reqs[] = {txreq(bad_->ungranted_ref(), 0, 0, 3, 0)};
    bad_->push_tx(reqs);
    expect_all(bad_->wait_tx_responses(1), 1, 3, abi::rsp::error);
    EXPECT_EQ(counter("tx_drops"), 1u);
    EXPECT_EQ(counter("grant_errors"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    finish();
}

TEST_F(Hostile, FirstFragmentShorterThanHeaderInChainIsDropped) {
    connect_bad();
    fill(0, 0, 10, 1);
    // total 100, second fragment 90: the first slot carries only 10 bytes.
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::more_data, 1, 100),
                                    txreq(bad_->data_ref(1), 0, 0, 2, 90)};
    bad_->push_tx(reqs);
    expect_all(bad_->wait_tx_responses(2), 2, 1, abi::rsp::error);
    EXPECT_EQ(counter("tx_drops"), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    expect_tx_works(2, 3);
    finish();
}

TEST_F(Hostile, FragmentLargerThanPacketIsDropped) {
    connect_bad();
    fill(0, 0, 100, 1);
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::more_data, 1, 100),
                                    txreq(bad_->data_ref(1), 0, 0, 2, 200)};
    bad_->push_tx(reqs);
    expect_all(bad_->wait_tx_responses(2), 2, 1, abi::rsp::error);
    EXPECT_EQ(counter("tx_drops"), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    finish();
}

// ======================= extras =======================

abi::tx_request extra_slot(std::uint8_t type, std::uint8_t flags, std::uint16_t gso_size = 0,
                           std::uint8_t gso_type = 0) {
    abi::extra_info e{};
    e.type = type;
    e.flags = flags;
    if (type == abi::extra_type::gso) {
        e.u.gso.size = gso_size;
        e.u.gso.type = gso_type;
    }
    abi::tx_request r{};
    std::memcpy(&r, &e, sizeof e);
    return r;
}

TEST_F(Hostile, ExtraTypeAboveMaxIsFatal) {
    connect_bad();
    fill(0, 0, 100, 5);
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::extra_info, 1, 100),
                                    extra_slot(abi::extra_type::max, 0)};
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("bad extra type"), std::string::npos);
    finish();
}

TEST_F(Hostile, GsoExtraWithSizeZeroIsFatal) {
    connect_bad();
    fill(0, 0, 100, 5);
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::extra_info, 1, 100),
                                    extra_slot(abi::extra_type::gso, 0, 0, abi::gso_type::tcpv4)};
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("GSO size 0"), std::string::npos);
    finish();
}

TEST_F(Hostile, GsoExtraNotAdvertisedIsFatal) {
    connect_bad();
    fill(0, 0, 100, 5);
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::extra_info, 1, 100),
                                    extra_slot(abi::extra_type::gso, 0, 1448, abi::gso_type::tcpv6)};
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("unadvertised GSO type"), std::string::npos);
    finish();
}

TEST_F(Hostile, MulticastExtraWithoutFeatureIsFatal) {
    connect_bad();
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::extra_info, 1, 0),
                                    extra_slot(abi::extra_type::mcast_add, 0)};
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("multicast extra without feature"), std::string::npos);
    finish();
}

TEST_F(Hostile, TooManyChainedExtrasIsFatal) {
    connect_bad();
    fill(0, 0, 100, 5);
    std::vector<abi::tx_request> reqs{txreq(bad_->data_ref(0), 0, abi::txf::extra_info, 1, 100)};
    for (int i = 0; i < 6; ++i) reqs.push_back(extra_slot(abi::extra_type::hash, abi::extra_flag::more));
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("too many extra slots"), std::string::npos);
    finish();
}

TEST_F(Hostile, ExtraFlagFollowedByDataSlotIsFatal) {
    connect_bad();
    fill(0, 0, 100, 5);
    // The next slot is an ordinary request: read as an extra, its type is the
    // low byte of the gref.
    ASSERT_GE(bad_->data_ref(1) & 0xFFu, abi::extra_type::max);
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::extra_info, 1, 100),
                                    txreq(bad_->data_ref(1), 0, 0, 2, 60)};
    bad_->push_tx(reqs);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    finish();
}

TEST_F(Hostile, MissingExtraAtRingEndIsHeldThenNonExtraSlotIsFatal) {
    connect_bad();
    fill(0, 0, 100, 5);
    const abi::tx_request first[] = {txreq(bad_->data_ref(0), 0, abi::txf::extra_info, 1, 100)};
    bad_->push_tx(first);
    // The chain runs past req_prod: held, unanswered, vif up.
    ASSERT_TRUE(wait_counter("tx_incomplete", 1)) << env_.log("back");
    EXPECT_TRUE(bad_->tx_responses().empty());
    EXPECT_EQ(bad_->backend_state(), 4);
    EXPECT_EQ(counter("peer_faults"), 0u);
    // What follows is not an extra.
    ASSERT_GE(bad_->data_ref(1) & 0xFFu, abi::extra_type::max);
    const abi::tx_request next[] = {txreq(bad_->data_ref(1), 0, 0, 2, 60)};
    bad_->push_tx(next);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    finish();
}

TEST_F(Hostile, ClosedWithPartialChainHeldReleasesEverything) {
    connect_bad();
    fill(0, 0, 100, 5);
    const abi::tx_request first[] = {txreq(bad_->data_ref(0), 0, abi::txf::more_data, 1, 160)};
    bad_->push_tx(first);
    ASSERT_TRUE(wait_counter("tx_incomplete", 1)) << env_.log("back");
    EXPECT_TRUE(bad_->tx_responses().empty());
    finish();  // Closed with the half chain in the backend's window
    EXPECT_EQ(counter("peer_faults"), 0u);
}

// ======================= double fetch =======================

// A thread keeps rewriting `size` (bytes 10-11 of every tx slot, never the
// 4 bytes a response overwrites) while packets go through. The backend copies
// each request once: every packet gets one verdict, and what it delivers
// matches the size it validated.
TEST_F(Hostile, DoubleFetchOfSizeGivesOneConsistentVerdict) {
    connect_bad();
    const auto want = fill(0, 0, 60, 0x33);
    std::atomic<bool> stop{false};
    std::thread racer([&] {
        const std::uint16_t sizes[] = {60, 10, 0, 60, 13};
        for (unsigned k = 0; !stop.load(std::memory_order_relaxed); ++k)
            for (std::uint32_t i = 0; i < ring::tx_ring_types::size; ++i)
                std::atomic_ref<std::uint16_t>(bad_->tx_slot(i)->size).store(sizes[(k + i) % 5],
                                                                              std::memory_order_relaxed);
    });
    unsigned okay = 0, error = 0, frames = 0;
    for (unsigned round = 0; round < 40; ++round) {
        std::vector<abi::tx_request> reqs;
        for (unsigned i = 0; i < 8; ++i)
            reqs.push_back(txreq(bad_->data_ref(0), 0, 0, static_cast<std::uint16_t>(round * 8 + i), 60));
        bad_->push_tx(reqs);
        const auto rsps = bad_->wait_tx_responses(8);
        ASSERT_EQ(rsps.size(), 8u) << env_.log("back");
        // Drops are answered at decode, good packets after their batch: the
        // order may differ (allowed), but each id is answered exactly once.
        std::vector<unsigned> ids;
        for (const auto& r : rsps) ids.push_back(r.id);
        std::sort(ids.begin(), ids.end());
        for (unsigned i = 0; i < 8; ++i) EXPECT_EQ(ids[i], round * 8 + i);
        for (unsigned i = 0; i < 8; ++i) {
            if (rsps[i].status == abi::rsp::okay) ++okay;
            else if (rsps[i].status == abi::rsp::error) ++error;
            else ADD_FAILURE() << "status " << rsps[i].status;
        }
        for (;;) {
            const auto f = recv_host1(okay > frames ? 2000ms : 0ms);
            if (f.empty()) break;
            ++frames;
            EXPECT_EQ(f, want);  // only the 60-byte version is ever delivered
        }
    }
    stop = true;
    racer.join();
    EXPECT_EQ(frames, okay);
    EXPECT_EQ(okay + error, 320u);
    EXPECT_EQ(counter("tx_packets"), okay);
    EXPECT_EQ(counter("tx_drops"), error);
    EXPECT_GT(counter("tx_packets") + counter("tx_drops"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    finish();
}

// Same with `offset` of a following slot flipping between legal and crossing
// the page (fatal): each packet is either delivered whole or the vif goes.
TEST_F(Hostile, DoubleFetchOfOffsetIsEitherDeliveredOrFatal) {
    connect_bad();
    std::vector<std::byte> want = fill(0, 0, 100, 0x44);
    const auto part = fill(1, 0, 200, 0x55);
    want.insert(want.end(), part.begin(), part.end());
    std::atomic<bool> stop{false};
    std::thread racer([&] {
        for (unsigned k = 0; !stop.load(std::memory_order_relaxed); ++k)
            for (std::uint32_t i = 0; i < ring::tx_ring_types::size; i += 2)
                std::atomic_ref<std::uint16_t>(bad_->tx_slot(i + 1)->offset)
                    .store((k + i) % 50 == 0 ? 4000 : 0, std::memory_order_relaxed);
    });
    unsigned delivered = 0;
    bool disabled = false;
    for (unsigned p = 0; p < 200 && !disabled; ++p) {
        const abi::tx_request reqs[] = {
            txreq(bad_->data_ref(0), 0, abi::txf::more_data, static_cast<std::uint16_t>(2 * p), 300),
            txreq(bad_->data_ref(1), 0, 0, static_cast<std::uint16_t>(2 * p + 1), 200)};
        bad_->push_tx(reqs);
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        std::vector<abi::tx_response> got;
        while (got.size() < 2 && !disabled && std::chrono::steady_clock::now() < deadline) {
            auto r = bad_->wait_tx_responses(2 - got.size(), 20ms);
            got.insert(got.end(), r.begin(), r.end());
            disabled = bad_->backend_state() == 5;
        }
        if (got.size() == 2) {
            EXPECT_EQ(got[0].status, abi::rsp::okay);
            EXPECT_EQ(got[1].status, abi::rsp::okay);
            EXPECT_EQ(recv_host1(), want);
            ++delivered;
        } else {
            ASSERT_TRUE(disabled) << "packet neither answered nor fatal\n" << env_.log("back");
            EXPECT_TRUE(got.empty());  // no half answer
        }
    }
    stop = true;
    racer.join();
    EXPECT_EQ(counter("tx_packets"), delivered);
    EXPECT_EQ(counter("tx_drops"), 0u);
    if (disabled) {
        expect_disabled();
        EXPECT_EQ(counter("peer_faults"), 1u);
    } else {
        EXPECT_EQ(counter("peer_faults"), 0u);
    }
    EXPECT_GT(counter("tx_packets") + counter("peer_faults"), 0u);
    finish();
}

// ======================= grants =======================

TEST_F(Hostile, GrefOutsideTheGrantTableGetsError) {
    connect_bad();
    const abi::tx_request bogus[] = {txreq(0xFFFFFF00u, 0, 0, 4, 60)};
    bad_->push_tx(bogus);
    expect_all(bad_->wait_tx_responses(1), 1, 4, abi::rsp::error);
    EXPECT_EQ(counter("grant_errors"), 1u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    expect_tx_works(1, 5);
    finish();
}

TEST_F(Hostile, GrantToAnotherDomainGetsError) {
    connect_bad();
    fill(3, 0, 60, 1);
    auto e = bad_->domain().read_grant(bad_->data_ref(3));
    ASSERT_TRUE(e);
    const auto orig = *e;
    e->domid = 7;  // granted to somebody else, not to the backend
    ASSERT_TRUE(bad_->domain().write_grant(bad_->data_ref(3), *e));
    const abi::tx_request r[] = {txreq(bad_->data_ref(3), 0, 0, 8, 60)};
    bad_->push_tx(r);
    expect_all(bad_->wait_tx_responses(1), 1, 8, abi::rsp::error);
    EXPECT_EQ(counter("grant_errors"), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    ASSERT_TRUE(bad_->domain().write_grant(bad_->data_ref(3), orig));
    expect_tx_works(3, 9);
    finish();
}

TEST_F(Hostile, RevokingMappedRingsIsRefused) {
    connect_bad();
    // The backend holds both ring pages mapped: the grant table refuses.
    EXPECT_EQ(bad_->revoke(bad_->tx_ring_ref()), gnt_status::eagain);
    EXPECT_EQ(bad_->revoke(bad_->rx_ring_ref()), gnt_status::eagain);
    EXPECT_GE(counter("grant_maps"), 2u);
    expect_tx_works(0, 1);  // nothing changed for the backend
    EXPECT_EQ(bad_->backend_state(), 4);
    finish();
    // Unmapped at disconnect: now it works.
    EXPECT_EQ(bad_->revoke(bad_->tx_ring_ref()), gnt_status::okay);
}

TEST_F(Hostile, GrantRevokedBeforeTheChainCompletesGetsError) {
    connect_bad();
    auto page = bad_->share_extra(true);
    ASSERT_TRUE(page);
    const abi::tx_request first[] = {txreq(page->ref, 0, abi::txf::more_data, 1, 160)};
    bad_->push_tx(first);
    ASSERT_TRUE(wait_counter("tx_incomplete", 1)) << env_.log("back");
    // Copy mode: the backend has not touched the page yet, so revocation works.
    ASSERT_EQ(bad_->revoke(page->ref), gnt_status::okay);
    const abi::tx_request next[] = {txreq(bad_->data_ref(1), 0, 0, 2, 60)};
    bad_->push_tx(next);
    expect_all(bad_->wait_tx_responses(2), 2, 1, abi::rsp::error);
    EXPECT_EQ(counter("grant_errors"), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    finish();
}

// ======================= control ring =======================

namespace ct = abi::ctrl_type;
namespace cs = abi::ctrl_status;

TEST_F(Hostile, CtrlListPageNotGrantedIsInvalid) {
    connect_bad_ctrl();
    auto r = bad_->ctrl_call(ct::add_gref_mapping, 0, bad_->ungranted_ref(), 1);
    ASSERT_TRUE(r) << env_.log("back");
    EXPECT_EQ(r->status, cs::invalid_parameter);
    r = bad_->ctrl_call(ct::del_gref_mapping, 0, bad_->ungranted_ref(), 1);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::invalid_parameter);
    EXPECT_EQ(ctrl_count("add_gref_mapping", "invalid_parameter"), 1u);
    EXPECT_EQ(ctrl_count("del_gref_mapping", "invalid_parameter"), 1u);
    EXPECT_EQ(static_stat("mapped"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    finish();
}

TEST_F(Hostile, CtrlGrefListLongerThan512IsInvalid) {
    connect_bad_ctrl();
    const auto list = gref_list({bad_->data_ref(0)});
    for (std::uint32_t count : {513u, 0xFFFFFFFFu, 0u}) {
        auto r = bad_->ctrl_call(ct::add_gref_mapping, 0, list.ref, count);
        ASSERT_TRUE(r) << env_.log("back");
        EXPECT_EQ(r->status, cs::invalid_parameter) << count;
    }
    auto r = bad_->ctrl_call(ct::del_gref_mapping, 0, list.ref, 513);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::invalid_parameter);
    EXPECT_EQ(ctrl_count("add_gref_mapping", "invalid_parameter"), 3u);
    EXPECT_EQ(ctrl_count("del_gref_mapping", "invalid_parameter"), 1u);
    auto v = bad_vif();
    EXPECT_EQ(v["ctrl"]["grant_copies"], 0);  // rejected before touching the page
    EXPECT_EQ(static_stat("mapped"), 0u);
    finish();
}

TEST_F(Hostile, CtrlAddWithDuplicateGrefsMapsNothing) {
    connect_bad_ctrl();
    const auto list = gref_list({bad_->data_ref(0), bad_->data_ref(1), bad_->data_ref(0)});
    auto r = bad_->ctrl_call(ct::add_gref_mapping, 0, list.ref, 3);
    ASSERT_TRUE(r) << env_.log("back");
    EXPECT_EQ(r->status, cs::invalid_parameter);
    EXPECT_EQ(ctrl_count("add_gref_mapping", "invalid_parameter"), 1u);
    EXPECT_EQ(static_stat("mapped"), 0u);
    EXPECT_EQ(grant_mappings(), base_maps_ + 3);
    finish();
}

TEST_F(Hostile, CtrlAddOfAlreadyMappedGrefIsInvalid) {
    connect_bad_ctrl();
    const auto list = gref_list({bad_->data_ref(0)});
    auto r = bad_->ctrl_call(ct::add_gref_mapping, 0, list.ref, 1);
    ASSERT_TRUE(r) << env_.log("back");
    EXPECT_EQ(r->status, cs::success);
    r = bad_->ctrl_call(ct::add_gref_mapping, 0, list.ref, 1);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::invalid_parameter);
    EXPECT_EQ(ctrl_count("add_gref_mapping", "invalid_parameter"), 1u);
    EXPECT_EQ(static_stat("mapped"), 1u);
    EXPECT_EQ(grant_mappings(), base_maps_ + 4);
    finish();  // the static mapping goes at disconnect
}

TEST_F(Hostile, CtrlAddWithUngrantedEntryRollsBack) {
    connect_bad_ctrl();
    const auto list = gref_list({bad_->data_ref(0), bad_->ungranted_ref(), bad_->data_ref(1)});
    auto r = bad_->ctrl_call(ct::add_gref_mapping, 0, list.ref, 3);
    ASSERT_TRUE(r) << env_.log("back");
    EXPECT_EQ(r->status, cs::invalid_parameter);
    EXPECT_EQ(static_stat("add_rollbacks"), 1u);
    EXPECT_EQ(static_stat("map_errors"), 1u);
    EXPECT_EQ(static_stat("mapped"), 0u);
    EXPECT_EQ(grant_mappings(), base_maps_ + 3);
    finish();
}

TEST_F(Hostile, CtrlBadQueueIndexOrEntryFlagsAreInvalid) {
    connect_bad_ctrl();
    auto r = bad_->ctrl_call(ct::get_gref_mapping_size, 1);
    ASSERT_TRUE(r) << env_.log("back");
    EXPECT_EQ(r->status, cs::invalid_parameter);
    const auto list = gref_list({bad_->data_ref(0)});
    r = bad_->ctrl_call(ct::add_gref_mapping, 1, list.ref, 1);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::invalid_parameter);
    r = bad_->ctrl_call(ct::del_gref_mapping, 0xFFFFFFFFu, list.ref, 1);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::invalid_parameter);
    const auto flagged = gref_list({bad_->data_ref(1)}, true, 0x8000);
    r = bad_->ctrl_call(ct::add_gref_mapping, 0, flagged.ref, 1);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::invalid_parameter);
    EXPECT_EQ(ctrl_count("get_gref_mapping_size", "invalid_parameter"), 1u);
    EXPECT_EQ(ctrl_count("add_gref_mapping", "invalid_parameter"), 2u);
    EXPECT_EQ(static_stat("mapped"), 0u);
    finish();
}

TEST_F(Hostile, CtrlDelOfInFlightGrefIsRefused) {
    connect_bad_ctrl();
    const auto list = gref_list({bad_->data_ref(0)});
    auto r = bad_->ctrl_call(ct::add_gref_mapping, 0, list.ref, 1);
    ASSERT_TRUE(r) << env_.log("back");
    ASSERT_EQ(r->status, cs::success);
    // Half a chain on the statically mapped page: in flight until completed.
    std::vector<std::byte> want = fill(0, 0, 100, 0x21);
    const abi::tx_request first[] = {txreq(bad_->data_ref(0), 0, abi::txf::more_data, 1, 160)};
    bad_->push_tx(first);
    ASSERT_TRUE(wait_counter("tx_incomplete", 1)) << env_.log("back");
    r = bad_->ctrl_call(ct::del_gref_mapping, 0, list.ref, 1);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::success);
    EXPECT_EQ(r->data, 0u);  // nothing unmapped
    EXPECT_EQ(list_entry(list, 0).status, cs::invalid_parameter);
    EXPECT_EQ(static_stat("del_busy"), 1u);
    EXPECT_EQ(static_stat("mapped"), 1u);
    // Completing the chain uses the (still present) static mapping.
    const auto part = fill(1, 0, 60, 0x22);
    want.insert(want.end(), part.begin(), part.end());
    const abi::tx_request next[] = {txreq(bad_->data_ref(1), 0, 0, 2, 60)};
    bad_->push_tx(next);
    expect_all(bad_->wait_tx_responses(2), 2, 1, abi::rsp::okay);
    EXPECT_EQ(recv_host1(), want);
    EXPECT_GE(counter("static_hits"), 1u);
    // Now it may go.
    r = bad_->ctrl_call(ct::del_gref_mapping, 0, list.ref, 1);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::success);
    EXPECT_EQ(r->data, 1u);
    EXPECT_EQ(list_entry(list, 0).status, cs::success);
    EXPECT_EQ(static_stat("mapped"), 0u);
    finish();
}

TEST_F(Hostile, CtrlDelWithReadOnlyListPageIsInvalid) {
    connect_bad_ctrl();
    const auto ro = gref_list({bad_->data_ref(0)}, false);
    auto r = bad_->ctrl_call(ct::add_gref_mapping, 0, ro.ref, 1);  // ADD only reads: fine
    ASSERT_TRUE(r) << env_.log("back");
    ASSERT_EQ(r->status, cs::success);
    r = bad_->ctrl_call(ct::del_gref_mapping, 0, ro.ref, 1);  // DEL writes statuses back
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::invalid_parameter);
    EXPECT_EQ(ctrl_count("del_gref_mapping", "invalid_parameter"), 1u);
    EXPECT_EQ(static_stat("mapped"), 1u);  // nothing removed
    finish();
}

TEST_F(Hostile, RevokingAStaticallyMappedPageIsRefused) {
    connect_bad_ctrl();
    auto page = bad_->share_extra(true);
    ASSERT_TRUE(page);
    const auto list = gref_list({page->ref});
    auto r = bad_->ctrl_call(ct::add_gref_mapping, 0, list.ref, 1);
    ASSERT_TRUE(r) << env_.log("back");
    ASSERT_EQ(r->status, cs::success);
    EXPECT_EQ(bad_->revoke(page->ref), gnt_status::eagain);  // XSA-396: still mapped
    EXPECT_EQ(static_stat("maps"), 1u);
    r = bad_->ctrl_call(ct::del_gref_mapping, 0, list.ref, 1);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::success);
    EXPECT_EQ(bad_->revoke(page->ref), gnt_status::okay);
    EXPECT_EQ(static_stat("unmaps"), 1u);
    finish();
}

TEST_F(Hostile, CtrlHashMappingOutOfRangeIsInvalid) {
    connect_bad_ctrl();
    auto r = bad_->ctrl_call(ct::set_hash_algorithm, 1);  // Toeplitz
    ASSERT_TRUE(r) << env_.log("back");
    ASSERT_EQ(r->status, cs::success);
    r = bad_->ctrl_call(ct::set_hash_mapping_size, 8);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, cs::success);
    auto page = bad_->share_extra(false);
    ASSERT_TRUE(page);
    const std::uint32_t table[4] = {0, 0, 1, 0};  // queue 1 of a single-queue vif
    std::memcpy(page->addr, table, sizeof table);
    struct {
        std::uint32_t len, off;
    } bad[] = {{4, 0}, {4, 6}, {2, 0xFFFFFFFFu}, {2000, 0}};
    for (auto b : bad) {
        r = bad_->ctrl_call(ct::set_hash_mapping, page->ref, b.len, b.off);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, cs::invalid_parameter) << b.len << "@" << b.off;
    }
    r = bad_->ctrl_call(ct::set_hash_mapping_size, 129);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::invalid_parameter);
    EXPECT_EQ(ctrl_count("set_hash_mapping", "invalid_parameter"), 4u);
    EXPECT_EQ(ctrl_count("set_hash_mapping_size", "invalid_parameter"), 1u);
    // A valid table still goes in afterwards.
    r = bad_->ctrl_call(ct::set_hash_mapping, page->ref, 2, 0);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::success);
    finish();
}

TEST_F(Hostile, CtrlHashKeyLongerThan40BytesIsInvalid) {
    connect_bad_ctrl();
    auto page = bad_->share_extra(false);
    ASSERT_TRUE(page);
    for (std::uint32_t len : {41u, 4096u, 0xFFFFFFFFu}) {
        auto r = bad_->ctrl_call(ct::set_hash_key, page->ref, len);
        ASSERT_TRUE(r) << env_.log("back");
        EXPECT_EQ(r->status, cs::invalid_parameter) << len;
    }
    auto r = bad_->ctrl_call(ct::set_hash_key, bad_->ungranted_ref(), 40);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::invalid_parameter);
    r = bad_->ctrl_call(ct::set_hash_key, page->ref, 40);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, cs::success);
    EXPECT_EQ(ctrl_count("set_hash_key", "invalid_parameter"), 4u);
    EXPECT_EQ(ctrl_count("set_hash_key", "success"), 1u);
    finish();
}

TEST_F(Hostile, CtrlUnknownTypesAreNotSupported) {
    connect_bad_ctrl();
    for (std::uint16_t type : {std::uint16_t{0}, std::uint16_t{11}, std::uint16_t{0xFFFF}}) {
        auto r = bad_->ctrl_call(type, 1, 2, 3);
        ASSERT_TRUE(r) << env_.log("back");
        EXPECT_EQ(r->type, type);
        EXPECT_EQ(r->status, cs::not_supported);
        EXPECT_EQ(r->data, 0u);
    }
    EXPECT_EQ(ctrl_count("invalid", "not_supported"), 1u);
    EXPECT_EQ(ctrl_count("unknown", "not_supported"), 2u);
    EXPECT_EQ(bad_->backend_state(), 4);
    finish();
}

TEST_F(Hostile, CtrlRingOverflowIsFatal) {
    connect_bad_ctrl();
    bad_->set_ctrl_req_prod(bad_->ctrl_shared()->rsp_prod + ring::ctrl_ring_types::size + 1);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("ctrl ring overflow"), std::string::npos);
    finish();
}

TEST_F(Hostile, CtrlRingRefNotGrantedRefusesConnect) {
    bad_->enable_ctrl();
    connect_with_key("ctrl-ring-ref", std::to_string(bad_->ungranted_ref()));
    expect_refused("cannot map ctrl ring");
    finish();
}

TEST_F(Hostile, CtrlEventChannelNotANumberRefusesConnect) {
    bad_->enable_ctrl();
    connect_with_key("event-channel-ctrl", "ctrl");
    expect_refused("bad ctrl-ring-ref / event-channel-ctrl");
    finish();
}

// ======================= event storms =======================

TEST_F(Hostile, EventStormOnEmptyRingsIsHarmless) {
    connect_bad_ctrl();
    for (int i = 0; i < 5000; ++i) {
        bad_->notify();
        if (i % 4 == 0) bad_->notify_ctrl();
    }
    ASSERT_TRUE(wait_counter("events_received", 1)) << env_.log("back");
    EXPECT_TRUE(bad_->tx_responses().empty());
    EXPECT_TRUE(bad_->ctrl_responses().empty());
    EXPECT_EQ(counter("tx_drops"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    expect_tx_works(0, 1);  // still responsive
    finish();
}

TEST_F(Hostile, EventStormWithGarbageBeyondReqProdIsIgnored) {
    connect_bad();
    // Garbage in every slot, but req_prod does not move: none of it is a request.
    for (std::uint32_t i = 0; i < ring::tx_ring_types::size; ++i) {
        std::memset(static_cast<void*>(bad_->tx_slot(i)), 0xA5, sizeof(abi::tx_request));
        std::memset(static_cast<void*>(bad_->rx_slot(i)), 0x5A, sizeof(abi::rx_request));
    }
    for (int i = 0; i < 5000; ++i) bad_->notify();
    ASSERT_TRUE(wait_counter("events_received", 1)) << env_.log("back");
    EXPECT_TRUE(bad_->tx_responses().empty());
    EXPECT_EQ(counter("tx_drops"), 0u);
    EXPECT_EQ(counter("grant_errors"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    expect_tx_works(0, 1);
    finish();
}

TEST_F(Hostile, EventStormDuringLegitTrafficDoesNotDisturbIt) {
    connect_bad_ctrl();
    std::atomic<bool> stop{false};
    std::thread storm([&] {
        while (!stop.load(std::memory_order_relaxed)) {
            bad_->notify();
            bad_->notify_ctrl();
        }
    });
    const auto r = pump(*guest2_, *host2_, 2000, 77);
    stop = true;
    storm.join();
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.received, 2000u);
    EXPECT_EQ(r.corrupted, 0u);
    EXPECT_EQ(r.out_of_order, 0u);
    EXPECT_GE(counter("events_received"), 1u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    finish();
}

// ======================= handshake =======================

TEST_F(Hostile, NumQueuesZeroIsRefused) {
    connect_with_key("multi-queue-num-queues", "0");
    expect_refused("refusing multi-queue-num-queues");
    finish();
}

TEST_F(Hostile, NumQueuesAboveMaximumIsRefused) {
    connect_with_key("multi-queue-num-queues", "5");  // backend max is 4
    expect_refused("refusing multi-queue-num-queues");
    finish();
}

TEST_F(Hostile, NumQueuesNotANumberIsRefused) {
    connect_with_key("multi-queue-num-queues", "two");
    expect_refused("refusing multi-queue-num-queues");
    finish();
}

TEST_F(Hostile, NumQueuesEmptyIsRefused) {
    connect_with_key("multi-queue-num-queues", "");
    expect_refused("refusing multi-queue-num-queues");
    finish();
}

TEST_F(Hostile, NumQueuesWithTrailingGarbageIsRefused) {
    connect_with_key("multi-queue-num-queues", "4x");
    expect_refused("refusing multi-queue-num-queues");
    finish();
}

TEST_F(Hostile, NumQueuesNegativeIsRefused) {
    connect_with_key("multi-queue-num-queues", "-1");
    expect_refused("refusing multi-queue-num-queues");
    finish();
}

TEST_F(Hostile, MultiQueueWithKeysOutsideQueueDirsIsRefused) {
    connect_with_key("multi-queue-num-queues", "2");  // keys sit in F, not F/queue-N
    expect_refused("missing or bad ring refs");
    finish();
}

TEST_F(Hostile, RingRefNotGrantedRefusesConnect) {
    connect_with_key("tx-ring-ref", std::to_string(bad_->ungranted_ref()));
    expect_refused("cannot map rings");
    finish();
}

TEST_F(Hostile, RingRefNotANumberRefusesConnect) {
    connect_with_key("rx-ring-ref", "0x9");
    expect_refused("missing or bad ring refs");
    finish();
}

TEST_F(Hostile, ReadOnlyRingGrantRefusesConnect) {
    ASSERT_TRUE(bad_->wait_backend_state(2));
    ASSERT_TRUE(bad_->prepare());
    auto ro = bad_->share_extra(false);
    ASSERT_TRUE(ro);
    connect_with_key("rx-ring-ref", std::to_string(ro->ref));
    expect_refused("cannot map rings");
    finish();
}

TEST_F(Hostile, RingIndicesInconsistentAtAttachRefuseConnect) {
    ASSERT_TRUE(bad_->wait_backend_state(2));
    ASSERT_TRUE(bad_->prepare());
    bad_->tx_shared()->req_prod = 1000;  // 1000 requests outstanding on a 256-slot ring
    connect_with_key("", "");
    expect_refused("ring indices inconsistent at attach");  // and counted once
    bad_->tx_shared()->req_prod = 0;
    finish();
}

TEST_F(Hostile, EventChannelNotANumberRefusesConnect) {
    connect_with_key("event-channel", "seven");
    expect_refused("missing or bad event channel");
    finish();
}

TEST_F(Hostile, EventChannelUnboundPortRefusesConnect) {
    connect_with_key("event-channel", "1000");
    expect_refused("cannot bind event channel");
    finish();
}

TEST_F(Hostile, EventChannelForAnotherDomainRefusesConnect) {
    ASSERT_TRUE(bad_->wait_backend_state(2));
    ASSERT_TRUE(bad_->prepare());
    auto other = bad_->evtchn().alloc_unbound(7);  // only domain 7 may bind it
    ASSERT_TRUE(other);
    connect_with_key("event-channel", std::to_string(*other));
    expect_refused("cannot bind event channel");
    finish();
}

TEST_F(Hostile, RequestRxCopyOffRefusesConnect) {
    connect_with_key("request-rx-copy", "0");
    expect_refused("does not request rx-copy");
    finish();
}

TEST_F(Hostile, ReconfiguringFrontendStateIsFatal) {
    connect_bad();
    ASSERT_TRUE(bad_->set_state(7));  // Reconfiguring: netif does not use it
    EXPECT_TRUE(bad_->wait_backend_state(5)) << env_.log("back");
    auto v = bad_vif();
    EXPECT_EQ(v["connected"], false);
    EXPECT_EQ(grant_mappings(), base_maps_);
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("is invalid"), std::string::npos);
    finish();
}

TEST_F(Hostile, RapidConnectDisconnectCyclesReturnToBaseline) {
    constexpr int cycles = 20;
    for (int c = 0; c < cycles; ++c) {
        if (c == 0) {
            connect_bad();
        } else {
            ASSERT_TRUE(bad_->set_state(4));
            ASSERT_TRUE(bad_->wait_backend_state(4)) << "cycle " << c << "\n" << env_.log("back");
        }
        expect_tx_works(c % 8, static_cast<std::uint16_t>(c));
        ASSERT_TRUE(bad_->close()) << "cycle " << c;
        auto st = env_.stats(back_, "back");
        ASSERT_TRUE(st);
        ASSERT_EQ((*st)["grant_mappings"].get<long>(), base_maps_) << "cycle " << c;
        ASSERT_EQ((*st)["event_channels"].get<long>(), base_ports_) << "cycle " << c;
    }
    EXPECT_EQ(counter("tx_packets"), static_cast<std::uint64_t>(cycles));
    EXPECT_EQ(counter("grant_unmaps"), 2u * cycles);
    EXPECT_EQ(counter("peer_faults"), 0u);
    finish();
}

TEST_F(Hostile, ReconnectThroughInitialisingWhileConnected) {
    connect_bad();
    for (int c = 0; c < 5; ++c) {
        ASSERT_TRUE(bad_->set_state(1));
        ASSERT_TRUE(bad_->wait_backend_state(2)) << "cycle " << c << "\n" << env_.log("back");
        EXPECT_EQ(grant_mappings(), base_maps_);
        ASSERT_TRUE(bad_->set_state(4));
        ASSERT_TRUE(bad_->wait_backend_state(4)) << "cycle " << c;
        expect_tx_works(c, static_cast<std::uint16_t>(c + 1));
    }
    EXPECT_EQ(counter("grant_unmaps"), 10u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    finish();
}

// ======================= rx =======================

TEST_F(Hostile, RxBogusGrefGetsErrorStatus) {
    connect_bad();
    const abi::rx_request bogus[] = {{7, 0, bad_->ungranted_ref()}};
    bad_->push_rx(bogus);
    send_host1(100, 1);
    auto rsps = bad_->wait_rx_responses(1);
    ASSERT_EQ(rsps.size(), 1u) << env_.log("back");
    EXPECT_EQ(rsps[0].id, 7);
    EXPECT_EQ(rsps[0].status, abi::rsp::error);
    EXPECT_EQ(counter("rx_errors"), 1u);
    EXPECT_EQ(counter("grant_errors"), 1u);
    // A good buffer next: the following frame arrives intact.
    const abi::rx_request good[] = {{8, 0, bad_->data_ref(5)}};
    bad_->push_rx(good);
    const auto f = send_host1(150, 2);
    rsps = bad_->wait_rx_responses(1);
    ASSERT_EQ(rsps.size(), 1u);
    EXPECT_EQ(rsps[0].id, 8);
    ASSERT_EQ(rsps[0].status, 150);
    EXPECT_EQ(std::memcmp(bad_->data_page(5) + rsps[0].offset, f.data(), f.size()), 0);
    EXPECT_EQ(counter("rx_packets"), 1u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    finish();
}

TEST_F(Hostile, RxReadOnlyGrefGetsErrorStatus) {
    connect_bad();
    auto ro = bad_->share_extra(false);
    ASSERT_TRUE(ro);
    const abi::rx_request reqs[] = {{3, 0, ro->ref}};
    bad_->push_rx(reqs);
    send_host1(100, 1);
    const auto rsps = bad_->wait_rx_responses(1);
    ASSERT_EQ(rsps.size(), 1u) << env_.log("back");
    EXPECT_EQ(rsps[0].id, 3);
    EXPECT_EQ(rsps[0].status, abi::rsp::error);
    EXPECT_EQ(counter("rx_errors"), 1u);
    EXPECT_EQ(counter("grant_errors"), 1u);
    EXPECT_EQ(counter("rx_packets"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    finish();
}

TEST_F(Hostile, RxGrefGrantedToAnotherDomainGetsErrorStatus) {
    connect_bad();
    auto other = bad_->share_extra(true, domid_t{7});
    ASSERT_TRUE(other);
    const abi::rx_request reqs[] = {{4, 0, other->ref}};
    bad_->push_rx(reqs);
    send_host1(100, 1);
    const auto rsps = bad_->wait_rx_responses(1);
    ASSERT_EQ(rsps.size(), 1u) << env_.log("back");
    EXPECT_EQ(rsps[0].status, abi::rsp::error);
    EXPECT_EQ(counter("rx_errors"), 1u);
    EXPECT_EQ(counter("grant_errors"), 1u);
    finish();
}

TEST_F(Hostile, RxReqProdOverflowIsFatal) {
    connect_bad();
    bad_->set_rx_req_prod(bad_->rx_shared()->rsp_prod + ring::rx_ring_types::size + 44);
    send_host1(100, 1);  // the backend looks at the rx ring when it has a frame
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_NE(env_.log("back").find("rx ring overflow"), std::string::npos);
    finish();
}

TEST_F(Hostile, RxReqProdGoingBackwardsIsFatal) {
    connect_bad();
    bad_->post_rx(2);
    send_host1(100, 1);
    ASSERT_EQ(bad_->wait_rx_responses(1).size(), 1u) << env_.log("back");
    bad_->set_rx_req_prod(bad_->rx_shared()->req_prod - 10);
    send_host1(100, 2);
    send_host1(100, 3);
    expect_disabled();
    EXPECT_EQ(counter("peer_faults"), 1u);
    EXPECT_EQ(counter("rx_packets"), 1u);
    finish();
}

TEST_F(Hostile, RxWithoutBuffersStallsThenDeliversWhenPosted) {
    connect_bad();
    for (int i = 0; i < 50; ++i) send_host1(200, static_cast<std::uint8_t>(i));
    ASSERT_TRUE(wait_counter("rx_stalls", 1)) << env_.log("back");
    EXPECT_EQ(counter("rx_packets"), 0u);
    bad_->post_rx(64);
    const auto rsps = bad_->wait_rx_responses(50);
    ASSERT_EQ(rsps.size(), 50u) << env_.log("back");
    for (const auto& r : rsps) EXPECT_EQ(r.status, 200);
    EXPECT_EQ(counter("rx_packets"), 50u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    finish();
}


// ======================= partial setups must release what they took =======================

TEST_F(Hostile, MultiQueueWithSecondQueueMissingKeysReleasesTheFirst) {
    ASSERT_TRUE(bad_->wait_backend_state(2));
    ASSERT_TRUE(bad_->prepare());
    ASSERT_TRUE(bad_->write_keys(/*ring_refs=*/false));
    auto& s = env_.store();
    const std::string q0 = bad_->front_path + "/queue-0";
    ASSERT_TRUE(s.rm(bad_->front_path + "/event-channel"));
    ASSERT_TRUE(s.write(q0 + "/tx-ring-ref", std::to_string(bad_->tx_ring_ref())));
    ASSERT_TRUE(s.write(q0 + "/rx-ring-ref", std::to_string(bad_->rx_ring_ref())));
    ASSERT_TRUE(s.write(q0 + "/event-channel", std::to_string(bad_->port())));
    ASSERT_TRUE(s.write(bad_->front_path + "/queue-1", ""));
    ASSERT_TRUE(s.write(bad_->front_path + "/multi-queue-num-queues", "2"));
    ASSERT_TRUE(bad_->set_state(4));
    // queue-0 was mapped and bound before queue-1 turned out empty.
    expect_refused("missing or bad ring refs");
    EXPECT_NE(env_.log("back").find("queue-1"), std::string::npos);
    EXPECT_EQ(counter("grant_unmaps"), 2u);
    finish();
}

TEST_F(Hostile, SplitEventChannelWithUnboundRxPortReleasesTheTxPort) {
    ASSERT_TRUE(bad_->wait_backend_state(2));
    ASSERT_TRUE(bad_->prepare());
    ASSERT_TRUE(bad_->write_keys());
    auto& s = env_.store();
    ASSERT_TRUE(s.rm(bad_->front_path + "/event-channel"));
    ASSERT_TRUE(s.write(bad_->front_path + "/event-channel-tx", std::to_string(bad_->port())));
    ASSERT_TRUE(s.write(bad_->front_path + "/event-channel-rx", "999"));
    ASSERT_TRUE(bad_->set_state(4));
    expect_refused("cannot bind event channel 999");
    finish();
}

TEST_F(Hostile, CtrlRingSharingTheTxRingPageIsContained) {
    bad_->enable_ctrl();
    ASSERT_TRUE(bad_->wait_backend_state(2));
    ASSERT_TRUE(bad_->prepare());
    connect_with_key("ctrl-ring-ref", std::to_string(bad_->tx_ring_ref()));
    ASSERT_TRUE(bad_->wait_backend_state(4)) << env_.log("back");
    host1_ = connect_port(env_.backend_port(bad_guest));
    ASSERT_TRUE(host1_);
    EXPECT_EQ(grant_mappings(), base_maps_ + 3);  // the tx page twice + rx
    // Both rings now read the same indices and overlapping slots: whatever the
    // backend makes of it, it stays bounded and contained to this vif.
    fill(0, 0, 80, 3);
    const abi::tx_request r[] = {txreq(bad_->data_ref(0), 0, 0, 1, 80)};
    bad_->push_tx(r);
    bad_->notify_ctrl();
    (void)bad_->wait_tx_responses(1, 500ms);
    EXPECT_GE(counter("grant_maps"), 3u);
    finish();
}

TEST_F(Hostile, CtrlFullRingOfRequestsIsAllAnswered) {
    connect_bad_ctrl();
    // 128 zeroed requests (type 0) published at once, then the same again.
    for (int round = 0; round < 2; ++round) {
        bad_->set_ctrl_req_prod(bad_->ctrl_shared()->rsp_prod + ring::ctrl_ring_types::size);
        const auto rsps = bad_->wait_ctrl_responses(ring::ctrl_ring_types::size);
        ASSERT_EQ(rsps.size(), ring::ctrl_ring_types::size) << env_.log("back");
        for (const auto& r : rsps) EXPECT_EQ(r.status, cs::not_supported);
        // The responses overwrote the requests: zero them again for round 2.
        for (std::uint32_t i = 0; i < ring::ctrl_ring_types::size; ++i)
            std::memset(static_cast<void*>(bad_->ctrl_slot(i)), 0, sizeof(abi::ctrl_request));
    }
    EXPECT_EQ(ctrl_count("invalid", "not_supported"), 2u * ring::ctrl_ring_types::size);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    finish();
}


TEST_F(Hostile, FrontendDomainDestroyedWhileConnectedIsReleased) {
    connect_bad();
    bad_->post_rx(8);
    expect_tx_works(0, 1);
    const std::string front = bad_->front_path, back = bad_->back_path;
    bad_.reset();  // the domain goes away while the backend maps its rings
    send_host1(100, 1);  // rx into a dead domain: must fail cleanly
    env_.store().rm(front);  // the toolstack cleans up (if the store did not already)
    EXPECT_FALSE(env_.read(front + "/state"));
    EXPECT_TRUE(env_.wait_value(back + "/state", "6", 5s)) << env_.log("back");
    auto st = env_.stats(back_, "back");
    ASSERT_TRUE(st);
    const auto* v = find_vif(*st, bad_guest);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ((*v)["connected"], false);
    EXPECT_GE((*v)["queues"][0]["grant_unmaps"].get<std::uint64_t>(), 2u);
    finish();  // alive, baseline, legit vif still fine
}

// ======================= offloads: GSO on guest transmit =======================

// Lay `frame` out over data pages 0.. of `fe` (a whole page per slot) and build
// its request chain: the first request (size = the whole frame; `flags` plus
// extra_info, and more_data when more pages follow), the `extra` slot, then one
// request per further page. Ids count up from id0 over the data slots.
std::vector<abi::tx_request> offload_chain(hostile_frontend& fe, const std::vector<std::byte>& frame,
                                           std::uint16_t flags, std::uint16_t id0, const abi::tx_request& extra) {
    const std::size_t pages = (frame.size() + 4095) / 4096;
    for (std::size_t p = 0; p < pages; ++p)
        std::memcpy(fe.data_page(p), frame.data() + p * 4096, std::min<std::size_t>(4096, frame.size() - p * 4096));
    std::vector<abi::tx_request> reqs;
    reqs.push_back(txreq(fe.data_ref(0), 0,
                         static_cast<std::uint16_t>(flags | abi::txf::extra_info | (pages > 1 ? abi::txf::more_data : 0)),
                         id0, static_cast<std::uint16_t>(frame.size())));
    reqs.push_back(extra);
    for (std::size_t p = 1; p < pages; ++p)
        reqs.push_back(txreq(fe.data_ref(p), 0, p + 1 < pages ? abi::txf::more_data : 0,
                             static_cast<std::uint16_t>(id0 + p),
                             static_cast<std::uint16_t>(std::min<std::size_t>(4096, frame.size() - p * 4096))));
    return reqs;
}

// The responses to an offload_chain(): `status` on every data slot, NULL on the extra.
void expect_chain_answered(const std::vector<abi::tx_response>& rsps, std::size_t n, std::uint16_t id0,
                           std::int16_t status) {
    ASSERT_EQ(rsps.size(), n);
    EXPECT_EQ(rsps[0].id, id0);
    EXPECT_EQ(rsps[0].status, status);
    EXPECT_EQ(rsps[1].status, abi::rsp::null_);
    for (std::size_t k = 2; k < n; ++k) {
        EXPECT_EQ(rsps[k].id, id0 + k - 1) << "slot " << k;
        EXPECT_EQ(rsps[k].status, status) << "slot " << k;
    }
}

TEST_F(Hostile, GsoTcpv4OnIpv6UdpOrTruncatedHeadersIsAnsweredErrorAndNotSent) {
    connect_bad();
    auto cut = ip4_frame(9000 - tcp4_hdr_len, 1, 1);  // IP total length 8986 ...
    cut.resize(1000);                                 // ... in a 1000-byte frame
    struct {
        const char* name;
        std::vector<std::byte> frame;
    } const cases[] = {
        {"tcp/ipv6", tcp6_frame(5000)},
        {"udp/ipv4", ip4_frame(5000, 1, 1, 17)},
        {"truncated tcp/ipv4", cut},
    };
    std::uint16_t id = 100;
    std::uint64_t n = 0;
    for (const auto& c : cases) {
        const auto reqs = offload_chain(*bad_, c.frame, abi::txf::csum_blank, id,
                                        extra_slot(abi::extra_type::gso, 0, 1448, abi::gso_type::tcpv4));
        bad_->push_tx(reqs);
        const auto rsps = bad_->wait_tx_responses(reqs.size());
        SCOPED_TRACE(c.name);
        expect_chain_answered(rsps, reqs.size(), id, abi::rsp::error);
        ++n;
        EXPECT_EQ(counter("gso_errors"), n) << env_.log("back");
        EXPECT_EQ(bad_->backend_state(), 4);  // an ERROR, not a fault
        id = static_cast<std::uint16_t>(id + 10);
    }
    EXPECT_TRUE(recv_host1(300ms).empty()) << "a refused GSO frame reached the host";
    EXPECT_EQ(counter("tx_errors"), 3u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_EQ(counter("gso_segmented"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    expect_tx_works(20, 900);
    finish();
}

TEST_F(Hostile, GsoTcpv4SuperFrameIsSegmentedForAHostPortWithoutOffloads) {
    connect_bad();
    constexpr std::size_t mss = 1448, payload = 9000 - tcp4_hdr_len;  // 8946 bytes: 7 segments
    // Sequence number and IP id close to wrapping: both advance modulo their width.
    const auto f = ip4_frame(payload, 0xFFFFE000u, 0xFFFD);
    const auto reqs = offload_chain(*bad_, f, abi::txf::csum_blank, 1,
                                    extra_slot(abi::extra_type::gso, 0, mss, abi::gso_type::tcpv4));
    ASSERT_EQ(reqs.size(), 4u);  // 3 data slots + the GSO extra
    bad_->push_tx(reqs);
    expect_chain_answered(bad_->wait_tx_responses(reqs.size()), reqs.size(), 1, abi::rsp::okay);
    constexpr std::size_t nseg = (payload + mss - 1) / mss;
    static_assert(nseg == 7);
    for (std::size_t i = 0; i < nseg; ++i) {
        const auto s = recv_host1();
        ASSERT_FALSE(s.empty()) << "segment " << i << " missing\n" << env_.log("back");
        expect_tcp4_segment(s, f, i, mss);
    }
    EXPECT_TRUE(recv_host1(300ms).empty()) << "more than ceil(payload / mss) segments";
    EXPECT_EQ(counter("gso_segmented"), 1u);
    EXPECT_EQ(counter("tx_packets"), nseg);
    EXPECT_EQ(counter("gso_tx"), 0u);  // the plain host port never gets a super-frame
    EXPECT_EQ(counter("gso_errors"), 0u);
    EXPECT_EQ(counter("tx_errors"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    finish();
}

TEST_F(Hostile, GsoWithMssOneIsBoundedAndTheBackendStaysResponsive) {
    connect_bad();
    constexpr std::size_t payload = 9000 - tcp4_hdr_len;  // up to 8946 one-byte segments
    const auto f = ip4_frame(payload, 77, 1);
    const auto reqs = offload_chain(*bad_, f, abi::txf::csum_blank, 1,
                                    extra_slot(abi::extra_type::gso, 0, 1, abi::gso_type::tcpv4));
    bad_->push_tx(reqs);
    // Segmentation ends either with every segment sent or, once the host
    // port's socket is full, with a counted drop; the packet is answered OKAY.
    expect_chain_answered(bad_->wait_tx_responses(reqs.size(), 30s), reqs.size(), 1, abi::rsp::okay);
    std::size_t got = 0;
    for (;;) {
        const auto s = recv_host1(500ms);
        if (s.empty()) break;
        expect_tcp4_segment(s, f, got, 1);
        ++got;
        if (HasFailure()) break;  // one report, not thousands
    }
    ::testing::Test::RecordProperty("segments_received", static_cast<int>(got));
    EXPECT_GE(got, 1u);
    EXPECT_LE(got, payload);
    EXPECT_EQ(counter("tx_packets"), got) << "every segment that left reached the host, in order";
    if (got < payload) {
        EXPECT_GE(counter("tx_drops"), 1u) << "segmentation stopped without a counted drop";
    } else {
        EXPECT_EQ(counter("gso_segmented"), 1u);
    }
    EXPECT_EQ(counter("gso_errors"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    expect_tx_works(20, 50);  // the vif goes on
    finish();
}

// ======================= multicast control (advertised) =======================

using mac_t = std::array<std::uint8_t, 6>;

abi::tx_request mcast_slot(std::uint8_t type, const mac_t& mac, std::uint8_t flags = 0) {
    abi::extra_info e{};
    e.type = type;
    e.flags = flags;
    std::memcpy(e.u.mcast.addr, mac.data(), mac.size());
    abi::tx_request r{};
    std::memcpy(&r, &e, sizeof e);
    return r;
}
mac_t group(std::uint8_t n) { return {0x01, 0x00, 0x5e, 0x00, 0x01, n}; }

// vifkit-back with every feature advertised (multicast control, TCPv6 GSO).
class HostileAllFeatures : public Hostile {
protected:
    std::vector<std::string> backend_args() const override { return {}; }

    // One dummy request (size 0) with an MCAST_ADD/DEL extra; its status.
    std::int16_t mcast(std::uint8_t type, const mac_t& mac, std::uint16_t id) {
        const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::extra_info, id, 0),
                                        mcast_slot(type, mac)};
        bad_->push_tx(reqs);
        const auto rsps = bad_->wait_tx_responses(2);
        EXPECT_EQ(rsps.size(), 2u) << env_.log("back");
        if (rsps.size() != 2) return 99;
        EXPECT_EQ(rsps[0].id, id);
        EXPECT_EQ(rsps[1].status, abi::rsp::null_);
        return rsps[0].status;
    }
    // A frame from the host to the hostile guest, to `dst`.
    std::vector<std::byte> send_host1_to(const mac_t& dst, std::size_t len, std::uint8_t seed) {
        std::vector<std::byte> f(len);
        for (std::size_t k = 0; k < len; ++k) f[k] = static_cast<std::byte>(seed ^ (k * 13));
        std::memcpy(f.data(), dst.data(), 6);
        const std::uint8_t rest[8] = {0x02, 0x02, 0x09, 0, 0, seed, 0x88, 0xb5};
        std::memcpy(f.data() + 6, rest, sizeof rest);
        EXPECT_TRUE(host1_->send(f));
        return f;
    }
    std::uint64_t mcast_addresses() {
        auto v = bad_vif();
        return v.is_object() ? v["multicast_addresses"].get<std::uint64_t>() : 0;
    }
};

TEST_F(HostileAllFeatures, SixtyFifthMulticastAddIsRefusedAndDelMakesRoom) {
    connect_bad();
    // 65 dummy MCAST_ADD requests of distinct groups, published at once.
    std::vector<abi::tx_request> reqs;
    for (std::uint16_t i = 0; i < 65; ++i) {
        reqs.push_back(txreq(bad_->data_ref(0), 0, abi::txf::extra_info, i, 0));
        reqs.push_back(mcast_slot(abi::extra_type::mcast_add, group(static_cast<std::uint8_t>(i))));
    }
    bad_->push_tx(reqs);
    const auto rsps = bad_->wait_tx_responses(reqs.size());
    ASSERT_EQ(rsps.size(), reqs.size()) << env_.log("back");
    for (std::size_t i = 0; i < 65; ++i) {
        EXPECT_EQ(rsps[2 * i].id, i);
        EXPECT_EQ(rsps[2 * i].status, i < 64 ? abi::rsp::okay : abi::rsp::error) << "add " << i;
        EXPECT_EQ(rsps[2 * i + 1].status, abi::rsp::null_) << "extra of add " << i;
    }
    EXPECT_EQ(counter("mcast_adds"), 65u);
    EXPECT_EQ(counter("mcast_errors"), 1u);
    EXPECT_EQ(mcast_addresses(), 64u);
    // DEL one, then a new ADD fits again.
    EXPECT_EQ(mcast(abi::extra_type::mcast_del, group(3), 200), abi::rsp::okay);
    EXPECT_EQ(counter("mcast_dels"), 1u);
    EXPECT_EQ(mcast_addresses(), 63u);
    EXPECT_EQ(mcast(abi::extra_type::mcast_add, group(99), 201), abi::rsp::okay);
    EXPECT_EQ(counter("mcast_adds"), 66u);
    EXPECT_EQ(counter("mcast_errors"), 1u);
    EXPECT_EQ(mcast_addresses(), 64u);
    // Nothing was transmitted for any of them.
    EXPECT_TRUE(recv_host1(300ms).empty());
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    expect_tx_works(20, 300);
    finish();
}

// An MCAST_ADD extra on a request that carries data (size > 0): vifkit-back
// treats it like Linux netback does, as a control request. The address is
// added, every slot is answered OKAY (the extra NULL), and the data is NOT
// transmitted: nothing reaches the host port.
TEST_F(HostileAllFeatures, MulticastAddOnADataRequestIsAnsweredAndNotTransmitted) {
    connect_bad();
    fill(0, 0, 100, 4);
    const abi::tx_request reqs[] = {txreq(bad_->data_ref(0), 0, abi::txf::extra_info, 10, 100),
                                    mcast_slot(abi::extra_type::mcast_add, group(1))};
    bad_->push_tx(reqs);
    const auto rsps = bad_->wait_tx_responses(2);
    ASSERT_EQ(rsps.size(), 2u) << env_.log("back");
    EXPECT_EQ(rsps[0].id, 10);
    EXPECT_EQ(rsps[0].status, abi::rsp::okay);
    EXPECT_EQ(rsps[1].status, abi::rsp::null_);
    EXPECT_TRUE(recv_host1(300ms).empty()) << "the data of a multicast control request was transmitted";
    EXPECT_EQ(counter("mcast_adds"), 1u);
    EXPECT_EQ(mcast_addresses(), 1u);
    EXPECT_EQ(counter("tx_packets"), 0u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    EXPECT_EQ(bad_->backend_state(), 4);
    expect_tx_works(20, 11);  // the next ordinary packet goes out
    finish();
}

TEST_F(HostileAllFeatures, MulticastFilterPassesJoinedGroupsAndBroadcastOnly) {
    // request-multicast-control=1 among the keys, before Connected.
    connect_with_key("request-multicast-control", "1");
    ASSERT_TRUE(bad_->wait_backend_state(4)) << env_.log("back");
    host1_ = connect_port(env_.backend_port(bad_guest));
    ASSERT_TRUE(host1_);
    ASSERT_EQ(bad_vif()["multicast_filter"], true) << env_.log("back");
    ASSERT_EQ(mcast(abi::extra_type::mcast_add, group(7), 1), abi::rsp::okay);
    const abi::rx_request bufs[] = {{1, 0, bad_->data_ref(10)}, {2, 0, bad_->data_ref(11)},
                                    {3, 0, bad_->data_ref(12)}, {4, 0, bad_->data_ref(13)}};
    bad_->push_rx(bufs);
    // The joined group arrives.
    auto f = send_host1_to(group(7), 120, 1);
    auto rsps = bad_->wait_rx_responses(1);
    ASSERT_EQ(rsps.size(), 1u) << env_.log("back");
    EXPECT_EQ(rsps[0].id, 1);
    ASSERT_EQ(rsps[0].status, 120);
    EXPECT_EQ(std::memcmp(bad_->data_page(10) + rsps[0].offset, f.data(), f.size()), 0);
    // Another group is held back (counted) ...
    send_host1_to(group(8), 130, 2);
    ASSERT_TRUE(wait_counter("mcast_filtered", 1)) << env_.log("back");
    // ... broadcast passes, and lands in the next buffer: nothing came in between.
    f = send_host1_to({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 140, 3);
    rsps = bad_->wait_rx_responses(1);
    ASSERT_EQ(rsps.size(), 1u) << env_.log("back");
    EXPECT_EQ(rsps[0].id, 2);
    ASSERT_EQ(rsps[0].status, 140);
    EXPECT_EQ(std::memcmp(bad_->data_page(11) + rsps[0].offset, f.data(), f.size()), 0);
    // Leaving the group filters it too.
    ASSERT_EQ(mcast(abi::extra_type::mcast_del, group(7), 2), abi::rsp::okay);
    send_host1_to(group(7), 150, 4);
    ASSERT_TRUE(wait_counter("mcast_filtered", 2)) << env_.log("back");
    // Unicast always passes.
    f = send_host1_to({0x02, 0, 0, 0, 0, 0x01}, 160, 5);
    rsps = bad_->wait_rx_responses(1);
    ASSERT_EQ(rsps.size(), 1u) << env_.log("back");
    EXPECT_EQ(rsps[0].id, 3);
    ASSERT_EQ(rsps[0].status, 160);
    EXPECT_EQ(std::memcmp(bad_->data_page(12) + rsps[0].offset, f.data(), f.size()), 0);
    EXPECT_EQ(counter("mcast_filtered"), 2u);
    EXPECT_EQ(counter("rx_packets"), 3u);
    EXPECT_EQ(counter("peer_faults"), 0u);
    finish();
}

}  // namespace
}  // namespace vifkit::test
