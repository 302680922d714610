// Free-running u32 indices across 2^32 (netif-spec §3.1: "all comparisons use
// unsigned 32-bit differences"): content, counts, notify decisions and
// overflow checks must not change when the indices wrap.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "ring_test_support.hpp"
#include "vifkit/ring/ring.hpp"

namespace vifkit::ring::test {
namespace {

using tx_front = front_ring<tx_ring_types>;
using tx_back = back_ring<tx_ring_types>;
constexpr std::uint32_t tx_size = tx_ring_types::size;
constexpr std::uint32_t near_wrap = 0xFFFFFFF0u;  // 16 requests before 2^32

// ---- backend attached to a page whose indices are near 2^32 ----

TEST(RingWrap, BackendAttachedNearWrapConsumesAcrossIt) {
    auto page = make_page(0);
    sring_header* h = header(page.get());
    // A ring that has already carried near_wrap requests, idle, both sides armed.
    h->req_prod = h->rsp_prod = near_wrap;
    h->req_event = h->rsp_event = near_wrap + 1;
    tx_back back(page.get());
    ASSERT_EQ(back.req_cons(), near_wrap);
    ASSERT_EQ(back.rsp_prod_pvt(), near_wrap);
    EXPECT_EQ(back.check_attach(), ring_status::ok);

    // A simulated frontend publishes batches of raw requests; the backend
    // drains and answers each batch. 15 first, so that req_cons lands on 0xFFFFFFFF.
    const std::vector<std::uint32_t> batches = {15, 1, 1, 30, 256, 7, 200, 100, 3};
    std::uint32_t prod = near_wrap;
    std::uint32_t seq = 0;
    bool straddled = false;
    for (std::uint32_t k : batches) {
        for (std::uint32_t i = 0; i < k; ++i)
            raw_put_request<tx_ring_types>(page.get(), prod + i, make_tx_request(seq + i));
        straddled |= (prod + k) < prod;
        prod += k;
        h->req_prod = prod;
        const auto u = back.pending_requests();
        ASSERT_EQ(u.status, ring_status::ok) << "batch " << k << " at seq " << seq;
        ASSERT_EQ(u.count, k);
        for (std::uint32_t i = 0; i < k; ++i) {
            EXPECT_TRUE(same_bytes(back.take_request(), make_tx_request(seq + i)));
            back.put_response(make_tx_response(seq + i));
        }
        (void)back.push_responses();
        EXPECT_EQ(h->rsp_prod, prod);
        for (std::uint32_t i = 0; i < k; ++i) {
            const auto& slot = slots<tx_ring_types>(page.get())[(prod - k + i) & (tx_size - 1)].rsp;
            EXPECT_TRUE(same_bytes(slot, make_tx_response(seq + i)));
        }
        EXPECT_FALSE(back.final_check_for_requests());
        EXPECT_EQ(h->req_event, back.req_cons() + 1);
        if (seq == 0) {
            EXPECT_EQ(back.req_cons(), 0xFFFFFFFFu);
            EXPECT_EQ(h->req_event, 0u) << "re-arm point itself wraps to 0";
        }
        seq += k;
    }
    EXPECT_TRUE(straddled);
    EXPECT_EQ(back.req_cons(), near_wrap + seq);
    EXPECT_LT(back.req_cons(), near_wrap) << "index wrapped";
}

TEST(RingWrap, OverflowChecksAcrossWrap) {
    auto page = make_page(0);
    sring_header* h = header(page.get());
    h->rsp_prod = near_wrap;
    h->req_prod = near_wrap + tx_size;  // == 0xF0 after the wrap: exactly full
    h->req_event = h->rsp_event = near_wrap + 1;
    tx_back back(page.get());
    EXPECT_EQ(h->req_prod, 0xF0u);
    EXPECT_EQ(back.check_attach(), ring_status::ok);
    auto u = back.pending_requests();
    EXPECT_EQ(u.status, ring_status::ok);
    EXPECT_EQ(u.count, tx_size);

    h->req_prod = near_wrap + tx_size + 1;  // hostile: one more than fits
    EXPECT_EQ(back.check_attach(), ring_status::overflow);
    EXPECT_EQ(back.pending_requests().status, ring_status::overflow);
    EXPECT_TRUE(back.final_check_for_requests());

    h->req_prod = near_wrap - 1;  // hostile: behind rsp_prod
    EXPECT_EQ(back.pending_requests().status, ring_status::overflow);

    // Consume across the wrap, then the bound is still against rsp_prod_pvt.
    h->req_prod = near_wrap + 40;
    for (int i = 0; i < 40; ++i) (void)back.take_request();
    EXPECT_EQ(back.req_cons(), 0x18u);
    u = back.pending_requests();
    EXPECT_EQ(u.status, ring_status::ok);
    EXPECT_EQ(u.count, 0u);
    h->req_prod = back.rsp_prod_pvt() + tx_size;
    u = back.pending_requests();
    EXPECT_EQ(u.status, ring_status::ok);
    EXPECT_EQ(u.count, tx_size - 40) << "bounded by free response space";
    h->req_prod = back.rsp_prod_pvt() + tx_size + 1;
    EXPECT_EQ(back.pending_requests().status, ring_status::overflow);
}

// ---- front and back both near 2^32 ----

// How a round arms the peer's event index before the producer pushes.
enum class arm {
    final_check,  // consumer drained and ran its final check (event = cons + 1): first push notifies
    none,         // consumer busy, no re-arm since the last notify: no push notifies
    ahead,        // consumer batches (event = cons + m): the push reaching m notifies
};

struct round_plan {
    std::uint32_t batch;
    arm req_arm;
    std::uint32_t req_m;  // for arm::ahead
    arm rsp_arm;
    std::uint32_t rsp_m;
};

class FrontBackNearWrap : public ::testing::Test {
protected:
    // Driving a front to near_wrap costs ~2^32 slot writes, so it is done once
    // per process; each test starts from a copy of that front on the same page
    // (CTest runs every test in its own process anyway).
    static void SetUpTestSuite() {
        // Under ASan this takes ~1 minute of CPU; it still runs there (no skips).
        shared_page_ = make_page();
        advanced_ = std::make_unique<tx_front>(shared_page_.get());
        advanced_->init();
        advance_front(*advanced_, near_wrap);
    }
    static void TearDownTestSuite() {
        advanced_.reset();
        shared_page_.reset();
    }

    void SetUp() override {
        ASSERT_EQ(front_.req_prod_pvt(), near_wrap);
        ASSERT_EQ(front_.rsp_cons(), near_wrap);
        std::memset(page_, 0, ring_page_size);
        sring_header* h = hdr();
        h->req_prod = h->rsp_prod = near_wrap;
        h->req_event = h->rsp_event = near_wrap + 1;
        back_ = std::make_unique<tx_back>(page_);
        ASSERT_EQ(back_->req_cons(), near_wrap);
        ASSERT_EQ(back_->check_attach(), ring_status::ok);
        ASSERT_EQ(front_.free_requests(), tx_size);
    }
    sring_header* hdr() { return header(page_); }

    void run_round(const round_plan& r) {
        SCOPED_TRACE(::testing::Message() << "round at seq " << seq_ << ", batch " << r.batch);
        tx_back& back = *back_;
        // -- requests: the backend arms, the frontend produces --
        if (r.req_arm == arm::final_check) {
            EXPECT_FALSE(back.final_check_for_requests());
            EXPECT_EQ(hdr()->req_event, back.req_cons() + 1);
        } else if (r.req_arm == arm::ahead) {
            hdr()->req_event = back.req_cons() + r.req_m;
        }
        const std::uint32_t before = front_.req_prod_pvt();
        if (r.req_arm == arm::ahead) {
            for (std::uint32_t i = 0; i < r.batch; ++i) {
                front_.put_request(make_tx_request(seq_ + i));
                EXPECT_EQ(front_.push_requests(), i + 1 == r.req_m) << "single push " << i;
            }
        } else {
            for (std::uint32_t i = 0; i < r.batch; ++i) front_.put_request(make_tx_request(seq_ + i));
            EXPECT_EQ(front_.push_requests(), r.req_arm == arm::final_check);
        }
        req_straddled_ |= front_.req_prod_pvt() < before;
        EXPECT_EQ(hdr()->req_prod, front_.req_prod_pvt());
        EXPECT_EQ(front_.free_requests(), tx_size - r.batch);

        // -- the backend consumes with content checks --
        const auto u = back.pending_requests();
        ASSERT_EQ(u.status, ring_status::ok);
        ASSERT_EQ(u.count, r.batch);
        for (std::uint32_t i = 0; i < r.batch; ++i)
            EXPECT_TRUE(same_bytes(back.take_request(), make_tx_request(seq_ + i)));
        EXPECT_EQ(back.pending_requests().count, 0u);

        // -- responses: the frontend arms, the backend produces --
        if (r.rsp_arm == arm::final_check) {
            EXPECT_FALSE(front_.final_check_for_responses());
            EXPECT_EQ(hdr()->rsp_event, front_.rsp_cons() + 1);
        } else if (r.rsp_arm == arm::ahead) {
            hdr()->rsp_event = front_.rsp_cons() + r.rsp_m;
        }
        const std::uint32_t cons_before = front_.rsp_cons();
        if (r.rsp_arm == arm::ahead) {
            for (std::uint32_t i = 0; i < r.batch; ++i) {
                back.put_response(make_tx_response(seq_ + i));
                EXPECT_EQ(back.push_responses(), i + 1 == r.rsp_m) << "single response push " << i;
            }
        } else {
            for (std::uint32_t i = 0; i < r.batch; ++i) back.put_response(make_tx_response(seq_ + i));
            EXPECT_EQ(back.push_responses(), r.rsp_arm == arm::final_check);
        }

        // -- the frontend reaps --
        const auto v = front_.pending_responses();
        ASSERT_EQ(v.status, ring_status::ok);
        ASSERT_EQ(v.count, r.batch);
        for (std::uint32_t i = 0; i < r.batch; ++i)
            EXPECT_TRUE(same_bytes(front_.take_response(), make_tx_response(seq_ + i)));
        rsp_straddled_ |= front_.rsp_cons() < cons_before;
        EXPECT_EQ(front_.free_requests(), tx_size);
        seq_ += r.batch;
    }

    static inline page_ptr shared_page_;
    static inline std::unique_ptr<tx_front> advanced_;
    void* page_ = shared_page_.get();
    tx_front front_ = advanced_ ? *advanced_ : tx_front(nullptr);
    std::unique_ptr<tx_back> back_;
    std::uint32_t seq_ = 0;
    bool req_straddled_ = false;
    bool rsp_straddled_ = false;
};

TEST_F(FrontBackNearWrap, ContentAndNotifyDecisionsSurviveTheWrap) {
    // The second round batches with an event index that itself lies past 2^32
    // (near_wrap + 10 + 13 == 7), and its single pushes cross the wrap.
    const std::vector<round_plan> plan = {
        {10, arm::final_check, 0, arm::final_check, 0},
        {20, arm::ahead, 13, arm::ahead, 9},
        {1, arm::final_check, 0, arm::none, 0},
        {17, arm::none, 0, arm::final_check, 0},
        {255, arm::final_check, 0, arm::ahead, 255},
        {256, arm::ahead, 1, arm::final_check, 0},
        {3, arm::none, 0, arm::none, 0},
        {100, arm::ahead, 64, arm::ahead, 100},
        {64, arm::final_check, 0, arm::final_check, 0},
        {2, arm::ahead, 2, arm::none, 0},
        {128, arm::none, 0, arm::ahead, 1},
        {200, arm::final_check, 0, arm::final_check, 0},
        {7, arm::ahead, 7, arm::final_check, 0},
        {256, arm::final_check, 0, arm::none, 0},
        {33, arm::none, 0, arm::ahead, 17},
    };
    for (const auto& r : plan) {
        run_round(r);
        if (HasFatalFailure()) return;
    }
    EXPECT_GE(seq_, 600u) << "several hundred requests across the wrap";
    EXPECT_TRUE(req_straddled_) << "a request push crossed 2^32";
    EXPECT_TRUE(rsp_straddled_) << "response reaping crossed 2^32";
    EXPECT_EQ(front_.req_prod_pvt(), near_wrap + seq_);
    EXPECT_LT(front_.req_prod_pvt(), near_wrap);
    EXPECT_EQ(back_->req_cons(), front_.req_prod_pvt());
    EXPECT_EQ(back_->rsp_prod_pvt(), front_.rsp_cons());
}

TEST_F(FrontBackNearWrap, FreeSpaceAndOverflowChecksAcrossTheWrap) {
    sring_header* h = hdr();
    // Fill the ring so that it straddles 2^32: 16 slots before, 240 after.
    for (std::uint32_t i = 0; i < tx_size; ++i) front_.put_request(make_tx_request(i));
    EXPECT_EQ(front_.free_requests(), 0u);
    EXPECT_TRUE(front_.push_requests());
    EXPECT_EQ(h->req_prod, 0xF0u);
    EXPECT_EQ(back_->check_attach(), ring_status::ok);
    auto u = back_->pending_requests();
    EXPECT_EQ(u.status, ring_status::ok);
    EXPECT_EQ(u.count, tx_size);
    for (std::uint32_t i = 0; i < 20; ++i) {
        EXPECT_TRUE(same_bytes(back_->take_request(), make_tx_request(i)));
        back_->put_response(make_tx_response(i));
    }
    EXPECT_TRUE(back_->push_responses());
    EXPECT_EQ(h->rsp_prod, 4u);
    EXPECT_EQ(front_.pending_responses().count, 20u);
    for (std::uint32_t i = 0; i < 20; ++i) EXPECT_TRUE(same_bytes(front_.take_response(), make_tx_response(i)));
    EXPECT_EQ(front_.free_requests(), 20u);

    // Hostile backend: rsp_prod more than a ring ahead of rsp_cons, across the wrap.
    const std::uint32_t saved_rsp = h->rsp_prod;
    h->rsp_prod = front_.rsp_cons() + tx_size + 1;
    EXPECT_EQ(front_.pending_responses().status, ring_status::overflow);
    EXPECT_TRUE(front_.final_check_for_responses());
    h->rsp_prod = front_.rsp_cons() - 1;  // behind: 0x3 -> claims 2^32 - 1
    EXPECT_EQ(front_.pending_responses().status, ring_status::overflow);
    h->rsp_prod = saved_rsp;
    EXPECT_EQ(front_.pending_responses().status, ring_status::ok);
    EXPECT_EQ(front_.pending_responses().count, 0u);

    // Hostile frontend: req_prod more than a ring ahead of rsp_prod_pvt.
    const std::uint32_t saved_req = h->req_prod;
    h->req_prod = back_->rsp_prod_pvt() + tx_size + 1;
    EXPECT_EQ(back_->check_attach(), ring_status::overflow);
    EXPECT_EQ(back_->pending_requests().status, ring_status::overflow);
    h->req_prod = saved_req;
    u = back_->pending_requests();
    EXPECT_EQ(u.status, ring_status::ok);
    EXPECT_EQ(u.count, tx_size - 20);
}

}  // namespace
}  // namespace vifkit::ring::test
