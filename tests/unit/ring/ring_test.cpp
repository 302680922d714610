// Ring mechanics (netif-spec §3) on a real 4096-byte page shared by a
// front_ring and a back_ring: initialisation, produce/consume with content,
// notify hold-off and final checks, free space, overflow detection against a
// hostile peer, and copy-once.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "ring_test_support.hpp"
#include "vifkit/ring/ring.hpp"

namespace vifkit::ring::test {
namespace {

using tx_front = front_ring<tx_ring_types>;
using tx_back = back_ring<tx_ring_types>;
constexpr std::uint32_t tx_size = tx_ring_types::size;

// A page with an initialised front and a back attached to it.
struct tx_pair {
    page_ptr page = make_page();
    tx_front front{page.get()};
    tx_back back = [this] {
        front.init();
        return tx_back(page.get());
    }();
    sring_header* hdr() { return header(page.get()); }

    void send(std::uint32_t first_seq, std::uint32_t n) {
        for (std::uint32_t i = 0; i < n; ++i) front.put_request(make_tx_request(first_seq + i));
    }
    // Backend consumes everything pending and answers it.
    std::uint32_t serve_all(std::uint32_t first_seq) {
        const auto u = back.pending_requests();
        EXPECT_EQ(u.status, ring_status::ok);
        for (std::uint32_t i = 0; i < u.count; ++i) {
            EXPECT_TRUE(same_bytes(back.take_request(), make_tx_request(first_seq + i)));
            back.put_response(make_tx_response(first_seq + i));
        }
        return u.count;
    }
    std::uint32_t reap_all(std::uint32_t first_seq) {
        const auto u = front.pending_responses();
        EXPECT_EQ(u.status, ring_status::ok);
        for (std::uint32_t i = 0; i < u.count; ++i)
            EXPECT_TRUE(same_bytes(front.take_response(), make_tx_response(first_seq + i)));
        return u.count;
    }
};

// ---- §3.1 initialisation and attach ----

TEST(Ring, Spec3_1_InitZeroesPageAndArmsBothEvents) {
    auto page = make_page(0xA5);
    tx_front front(page.get());
    front.init();
    const sring_header* h = header(page.get());
    EXPECT_EQ(h->req_prod, 0u);
    EXPECT_EQ(h->rsp_prod, 0u);
    EXPECT_EQ(h->req_event, 1u);
    EXPECT_EQ(h->rsp_event, 1u);
    for (std::uint8_t b : h->pvt) EXPECT_EQ(b, 0);
    for (std::uint8_t b : h->pad) EXPECT_EQ(b, 0);
    const auto* bytes = static_cast<const std::uint8_t*>(page.get());
    std::size_t nonzero = 0;
    for (std::size_t i = sizeof(sring_header); i < ring_page_size; ++i) nonzero += bytes[i] != 0;
    EXPECT_EQ(nonzero, 0u) << "slot area not cleared";
    EXPECT_EQ(front.free_requests(), tx_size);
    EXPECT_EQ(front.req_prod_pvt(), 0u);
    EXPECT_EQ(front.rsp_cons(), 0u);
    EXPECT_EQ(front.shared(), h);
}

TEST(Ring, Spec3_1_InitResetsAFrontThatWasInUse) {
    tx_pair p;
    p.send(0, 10);
    (void)p.front.push_requests();
    p.front.init();
    EXPECT_EQ(p.front.req_prod_pvt(), 0u);
    EXPECT_EQ(p.front.free_requests(), tx_size);
    EXPECT_EQ(p.hdr()->req_prod, 0u);
    EXPECT_EQ(p.hdr()->req_event, 1u);
}

TEST(Ring, Spec3_1_BackAttachesAtRspProd) {
    auto page = make_page(0);
    sring_header* h = header(page.get());
    constexpr std::uint32_t base = 1000;  // slot 1000 & 255 = 232: the batch wraps the slot array
    h->rsp_prod = base;
    h->req_prod = base + 40;
    h->req_event = base + 1;
    h->rsp_event = base + 1;
    for (std::uint32_t i = 0; i < 40; ++i) raw_put_request<tx_ring_types>(page.get(), base + i, make_tx_request(i));
    tx_back back(page.get());
    EXPECT_EQ(back.req_cons(), base);
    EXPECT_EQ(back.rsp_prod_pvt(), base);
    EXPECT_EQ(back.check_attach(), ring_status::ok);
    const auto u = back.pending_requests();
    EXPECT_EQ(u.status, ring_status::ok);
    ASSERT_EQ(u.count, 40u);
    for (std::uint32_t i = 0; i < 40; ++i) EXPECT_TRUE(same_bytes(back.take_request(), make_tx_request(i)));
    EXPECT_EQ(back.req_cons(), base + 40);
    EXPECT_EQ(back.pending_requests().count, 0u);
}

// ---- produce / consume with content ----

TEST(Ring, TxRoundTripPreservesContentAndOrder) {
    tx_pair p;
    p.send(100, 10);
    EXPECT_EQ(p.hdr()->req_prod, 0u) << "put_request must not publish";
    EXPECT_EQ(p.back.pending_requests().count, 0u);
    (void)p.front.push_requests();
    EXPECT_EQ(p.hdr()->req_prod, 10u);
    EXPECT_EQ(p.serve_all(100), 10u);
    EXPECT_EQ(p.back.req_cons(), 10u);
    EXPECT_EQ(p.hdr()->rsp_prod, 0u) << "put_response must not publish";
    EXPECT_EQ(p.front.pending_responses().count, 0u);
    (void)p.back.push_responses();
    EXPECT_EQ(p.hdr()->rsp_prod, 10u);
    EXPECT_EQ(p.reap_all(100), 10u);
    EXPECT_EQ(p.front.rsp_cons(), 10u);
    EXPECT_EQ(p.front.free_requests(), tx_size);
}

TEST(Ring, RxFullRingRoundTripAnswersInTheRequestSlot) {
    auto page = make_page();
    front_ring<rx_ring_types> front(page.get());
    front.init();
    back_ring<rx_ring_types> back(page.get());
    constexpr std::uint32_t n = rx_ring_types::size;
    for (std::uint32_t lap = 0; lap < 3; ++lap) {
        for (std::uint32_t i = 0; i < n; ++i) front.put_request(make_rx_request(lap * n + i));
        EXPECT_EQ(front.free_requests(), 0u);
        (void)front.push_requests();
        const auto u = back.pending_requests();
        ASSERT_EQ(u.status, ring_status::ok);
        ASSERT_EQ(u.count, n);
        for (std::uint32_t i = 0; i < n; ++i) {
            const std::uint32_t slot = back.req_cons();
            const auto req = back.take_request();
            EXPECT_TRUE(same_bytes(req, make_rx_request(lap * n + i)));
            // §4.4: the response goes into the slot of the request it consumes.
            EXPECT_EQ(back.rsp_prod_pvt(), slot);
            back.put_response(make_rx_response(req.id));
        }
        (void)back.push_responses();
        for (std::uint32_t i = 0; i < n; ++i) {
            EXPECT_EQ(front.next_response_index(), lap * n + i);
            EXPECT_TRUE(same_bytes(front.take_response(), make_rx_response(static_cast<std::uint16_t>(lap * n + i))));
        }
        EXPECT_EQ(front.free_requests(), n);
    }
}

TEST(Ring, CtrlRingHas128SlotsAndRoundTrips) {
    auto page = make_page();
    front_ring<ctrl_ring_types> front(page.get());
    front.init();
    back_ring<ctrl_ring_types> back(page.get());
    EXPECT_EQ(front.free_requests(), 128u);
    for (std::uint32_t i = 0; i < 128; ++i) front.put_request(make_ctrl_request(i));
    EXPECT_EQ(front.free_requests(), 0u);
    (void)front.push_requests();
    ASSERT_EQ(back.pending_requests().count, 128u);
    for (std::uint32_t i = 0; i < 128; ++i) {
        EXPECT_TRUE(same_bytes(back.take_request(), make_ctrl_request(i)));
        back.put_response(make_ctrl_response(i));
    }
    (void)back.push_responses();
    ASSERT_EQ(front.pending_responses().count, 128u);
    for (std::uint32_t i = 0; i < 128; ++i) EXPECT_TRUE(same_bytes(front.take_response(), make_ctrl_response(i)));
    // Second lap reuses slot 0.
    front.put_request(make_ctrl_request(500));
    (void)front.push_requests();
    EXPECT_TRUE(same_bytes(back.take_request(), make_ctrl_request(500)));
    EXPECT_TRUE(same_bytes(slots<ctrl_ring_types>(front.shared())[0].req, make_ctrl_request(500)));
}

// ---- §3.1 free space ----

TEST(Ring, Spec3_1_FreeRequestsCountsUnansweredSlots) {
    tx_pair p;
    EXPECT_EQ(p.front.free_requests(), tx_size);
    p.send(0, 3);
    EXPECT_EQ(p.front.free_requests(), tx_size - 3) << "unpushed requests occupy slots";
    (void)p.front.push_requests();
    EXPECT_EQ(p.front.free_requests(), tx_size - 3);
    EXPECT_EQ(p.serve_all(0), 3u);
    EXPECT_EQ(p.front.free_requests(), tx_size - 3) << "consumed but unanswered still occupy slots";
    (void)p.back.push_responses();
    EXPECT_EQ(p.front.free_requests(), tx_size - 3) << "answered but not reaped still occupy slots";
    (void)p.front.take_response();
    EXPECT_EQ(p.front.free_requests(), tx_size - 2);
    EXPECT_EQ(p.reap_all(1), 2u);
    EXPECT_EQ(p.front.free_requests(), tx_size);
    p.send(3, tx_size);
    EXPECT_EQ(p.front.free_requests(), 0u);
}

// ---- §3.2 notify hold-off: requests ----

TEST(Ring, Spec3_2_PushRequestsNotifiesOnlyWhenCrossingReqEvent) {
    tx_pair p;
    p.send(0, 1);
    EXPECT_TRUE(p.front.push_requests()) << "first push crosses req_event = 1";
    p.send(1, 1);
    EXPECT_FALSE(p.front.push_requests()) << "backend has not re-armed";
    p.send(2, 5);
    EXPECT_FALSE(p.front.push_requests());
    EXPECT_EQ(p.serve_all(0), 7u);
    EXPECT_FALSE(p.back.final_check_for_requests());
    EXPECT_EQ(p.hdr()->req_event, 8u) << "re-armed at req_cons + 1";
    p.send(7, 1);
    EXPECT_TRUE(p.front.push_requests()) << "push after the re-arm notifies";
    p.send(8, 1);
    EXPECT_FALSE(p.front.push_requests());
}

TEST(Ring, Spec3_2_MultiRequestPushNotifiesOnceWhenEventInsideBatch) {
    tx_pair p;
    p.send(0, 50);
    EXPECT_TRUE(p.front.push_requests()) << "event 1 lies inside (0, 50]";
    EXPECT_EQ(p.serve_all(0), 50u);
    EXPECT_FALSE(p.back.final_check_for_requests());
    p.send(50, 100);
    EXPECT_TRUE(p.front.push_requests()) << "event 51 lies inside (50, 150]";
    p.send(150, 100);
    EXPECT_FALSE(p.front.push_requests()) << "event 51 lies before (150, 250]";
}

TEST(Ring, Spec3_2_EmptyPushNeverNotifies) {
    tx_pair p;
    EXPECT_FALSE(p.front.push_requests()) << "nothing new, even though req_event = 1 is armed";
    EXPECT_EQ(p.hdr()->req_prod, 0u);
    p.send(0, 1);
    EXPECT_TRUE(p.front.push_requests());
    EXPECT_FALSE(p.front.push_requests());
}

TEST(Ring, Spec3_2_FinalCheckForRequestsKeepsEventWhileWorkIsPending) {
    tx_pair p;
    p.send(0, 4);
    (void)p.front.push_requests();
    const std::uint32_t before = p.hdr()->req_event;
    EXPECT_TRUE(p.back.final_check_for_requests()) << "work pending: don't sleep";
    EXPECT_EQ(p.hdr()->req_event, before) << "no re-arm while there is work";
    (void)p.back.take_request();
    EXPECT_TRUE(p.back.final_check_for_requests());
    EXPECT_EQ(p.serve_all(1), 3u);
    EXPECT_FALSE(p.back.final_check_for_requests()) << "idle: safe to sleep";
    EXPECT_EQ(p.hdr()->req_event, p.back.req_cons() + 1);
    // Idempotent while idle.
    EXPECT_FALSE(p.back.final_check_for_requests());
    EXPECT_EQ(p.hdr()->req_event, 5u);
}

TEST(Ring, Spec3_2_BatchingWithEventFurtherAheadSuppressesNotifies) {
    tx_pair p;
    // The backend asks to be woken only when 8 more requests are queued.
    p.hdr()->req_event = p.back.req_cons() + 8;
    for (std::uint32_t i = 0; i < 7; ++i) {
        p.send(i, 1);
        EXPECT_FALSE(p.front.push_requests()) << "request " << i;
    }
    p.send(7, 1);
    EXPECT_TRUE(p.front.push_requests()) << "the 8th request reaches req_event";
    p.send(8, 1);
    EXPECT_FALSE(p.front.push_requests());
    EXPECT_EQ(p.serve_all(0), 9u);
    // A single push jumping over the event notifies exactly once.
    p.hdr()->req_event = p.back.req_cons() + 20;
    p.send(9, 5);
    EXPECT_FALSE(p.front.push_requests());
    p.send(14, 30);
    EXPECT_TRUE(p.front.push_requests());
    p.send(44, 1);
    EXPECT_FALSE(p.front.push_requests());
}

// wait_for_requests(n): a consumer that needs n requests at once (a
// multi-slot rx packet) arms req_event n ahead instead of 1.
TEST(Ring, Spec3_2_WaitForRequestsArmsTheEventNeededAhead) {
    tx_pair p;
    p.send(0, 2);
    EXPECT_TRUE(p.front.push_requests());
    EXPECT_TRUE(p.back.wait_for_requests(2)) << "already available";
    EXPECT_TRUE(p.back.wait_for_requests(1));
    EXPECT_FALSE(p.back.wait_for_requests(5));
    EXPECT_EQ(p.hdr()->req_event, p.back.req_cons() + 5);
    p.send(2, 1);
    EXPECT_FALSE(p.front.push_requests()) << "3 of 5";
    p.send(3, 1);
    EXPECT_FALSE(p.front.push_requests()) << "4 of 5";
    p.send(4, 1);
    EXPECT_TRUE(p.front.push_requests()) << "the 5th request is the one to notify";
    EXPECT_TRUE(p.back.wait_for_requests(5));
    EXPECT_EQ(p.serve_all(0), 5u);
    // After consuming, the event is relative to the new req_cons.
    EXPECT_FALSE(p.back.wait_for_requests(3));
    EXPECT_EQ(p.hdr()->req_event, 8u);
    p.send(5, 3);
    EXPECT_TRUE(p.front.push_requests());
}

TEST(Ring, Spec3_2_WaitForRequestsReportsAFaultAsReady) {
    tx_pair p;
    p.hdr()->req_prod = tx_size + 1;
    EXPECT_TRUE(p.back.wait_for_requests(3)) << "don't sleep on a faulty ring";
    EXPECT_EQ(p.back.pending_requests().status, ring_status::overflow);
}

// ---- §3.2 notify hold-off: responses (symmetric) ----

TEST(Ring, Spec3_2_PushResponsesNotifiesOnlyWhenCrossingRspEvent) {
    tx_pair p;
    p.send(0, 10);
    (void)p.front.push_requests();
    auto u = p.back.pending_requests();
    ASSERT_EQ(u.count, 10u);
    for (std::uint32_t i = 0; i < 10; ++i) (void)p.back.take_request();
    p.back.put_response(make_tx_response(0));
    EXPECT_TRUE(p.back.push_responses()) << "first response crosses rsp_event = 1";
    p.back.put_response(make_tx_response(1));
    EXPECT_FALSE(p.back.push_responses()) << "frontend has not re-armed";
    EXPECT_FALSE(p.back.push_responses()) << "empty push";
    EXPECT_EQ(p.reap_all(0), 2u);
    EXPECT_FALSE(p.front.final_check_for_responses());
    EXPECT_EQ(p.hdr()->rsp_event, 3u) << "re-armed at rsp_cons + 1";
    for (std::uint32_t i = 2; i < 5; ++i) p.back.put_response(make_tx_response(i));
    EXPECT_TRUE(p.back.push_responses()) << "push after the re-arm notifies";
    EXPECT_TRUE(p.front.final_check_for_responses()) << "responses pending: don't sleep";
    EXPECT_EQ(p.hdr()->rsp_event, 3u) << "no re-arm while there is work";
    EXPECT_EQ(p.reap_all(2), 3u);
    // Batching: wake the frontend only after 4 more responses.
    p.hdr()->rsp_event = p.front.rsp_cons() + 4;
    for (std::uint32_t i = 5; i < 8; ++i) {
        p.back.put_response(make_tx_response(i));
        EXPECT_FALSE(p.back.push_responses()) << "response " << i;
    }
    p.back.put_response(make_tx_response(8));
    EXPECT_TRUE(p.back.push_responses()) << "4th response reaches rsp_event";
    p.back.put_response(make_tx_response(9));
    EXPECT_FALSE(p.back.push_responses());
    EXPECT_EQ(p.reap_all(5), 5u);
    EXPECT_FALSE(p.front.final_check_for_responses());
    EXPECT_EQ(p.front.free_requests(), tx_size);
}

// ---- §3.1 overflow: hostile frontend ----

TEST(Ring, Spec3_1_HostileReqProdBeyondSizeIsOverflow) {
    tx_pair p;
    p.hdr()->req_prod = p.hdr()->rsp_prod + tx_size + 1;
    const auto u = p.back.pending_requests();
    EXPECT_EQ(u.status, ring_status::overflow);
    EXPECT_EQ(u.count, 0u) << "nothing to consume from an over-full ring";
    EXPECT_EQ(p.back.check_attach(), ring_status::overflow);
    EXPECT_TRUE(p.back.final_check_for_requests()) << "a fault must not look like 'idle, go to sleep'";
    EXPECT_EQ(p.back.req_cons(), 0u);
}

TEST(Ring, Spec3_1_ReqProdExactlyOneRingAheadIsNotOverflow) {
    tx_pair p;
    p.hdr()->req_prod = tx_size;
    EXPECT_EQ(p.back.check_attach(), ring_status::ok);
    const auto u = p.back.pending_requests();
    EXPECT_EQ(u.status, ring_status::ok);
    EXPECT_EQ(u.count, tx_size);
}

TEST(Ring, Spec3_1_ReqProdBehindRspProdIsOverflow) {
    auto page = make_page(0);
    sring_header* h = header(page.get());
    h->rsp_prod = 500;
    h->req_prod = 499;  // moved backwards: claims 2^32 - 1 outstanding
    tx_back back(page.get());
    EXPECT_EQ(back.check_attach(), ring_status::overflow);
    EXPECT_EQ(back.pending_requests().status, ring_status::overflow);
}

TEST(Ring, Spec3_1_CheckAttachAtNonZeroRspProd) {
    auto page = make_page(0);
    sring_header* h = header(page.get());
    h->rsp_prod = 70000;
    h->req_prod = 70000 + tx_size;
    {
        tx_back back(page.get());
        EXPECT_EQ(back.check_attach(), ring_status::ok);
    }
    h->req_prod = 70000 + tx_size + 1;
    tx_back back(page.get());
    EXPECT_EQ(back.check_attach(), ring_status::overflow);
}

TEST(Ring, Spec3_1_OverflowIsJudgedAgainstPrivateRspProd) {
    // The check uses rsp_prod_pvt (our own answers), not the shared rsp_prod
    // the peer could rewrite.
    tx_pair p;
    p.send(0, 10);
    (void)p.front.push_requests();
    EXPECT_EQ(p.serve_all(0), 10u);  // rsp_prod_pvt = 10, responses not yet pushed
    p.hdr()->req_prod = 10 + tx_size;
    EXPECT_EQ(p.back.pending_requests().status, ring_status::ok);
    EXPECT_EQ(p.back.pending_requests().count, tx_size);
    p.hdr()->req_prod = 10 + tx_size + 1;
    EXPECT_EQ(p.back.pending_requests().status, ring_status::overflow);
    p.hdr()->rsp_prod = 0xFFFF0000u;  // hostile rewrite of a backend-owned field changes nothing
    EXPECT_EQ(p.back.pending_requests().status, ring_status::overflow);
}

// §3.1: unconsumed = min(req_prod - req_cons, size - (req_cons - rsp_prod_pvt)).
TEST(Ring, Spec3_1_PendingRequestsBoundedByFreeResponseSpace) {
    tx_pair p;
    // A full ring, published in one go: req_prod - rsp_prod_pvt == size.
    p.send(0, tx_size);
    (void)p.front.push_requests();
    auto u = p.back.pending_requests();
    EXPECT_EQ(u.status, ring_status::ok);
    EXPECT_EQ(u.count, tx_size);
    for (std::uint32_t i = 0; i < 100; ++i) (void)p.back.take_request();
    u = p.back.pending_requests();
    EXPECT_EQ(u.status, ring_status::ok);
    EXPECT_EQ(u.count, tx_size - 100);
    // Answer 60 of them: response space grows, but there are still only 156 requests.
    for (std::uint32_t i = 0; i < 60; ++i) p.back.put_response(make_tx_response(i));
    u = p.back.pending_requests();
    EXPECT_EQ(u.count, tx_size - 100);
    // Answering all consumed ones: still exactly what the frontend published.
    for (std::uint32_t i = 60; i < 100; ++i) p.back.put_response(make_tx_response(i));
    u = p.back.pending_requests();
    EXPECT_EQ(u.status, ring_status::ok);
    EXPECT_EQ(u.count, tx_size - 100);
    // One more published request than the free response space is an overflow.
    p.hdr()->req_prod = p.back.rsp_prod_pvt() + tx_size + 1;
    EXPECT_EQ(p.back.pending_requests().status, ring_status::overflow);
}

// A hostile frontend rewinds req_prod below req_cons but not below
// rsp_prod_pvt: req_prod - rsp_prod_pvt looks fine, but req_prod - req_cons
// claims ~2^32 outstanding. This must be a fault, not up to `size` stale slots
// handed out as new requests (Linux netback: "Impossible number of requests").
TEST(Ring, Spec3_1_ReqProdRewoundBehindReqConsIsOverflow) {
    tx_pair p;
    p.send(0, 100);
    (void)p.front.push_requests();
    for (std::uint32_t i = 0; i < 100; ++i) (void)p.back.take_request();
    for (std::uint32_t i = 0; i < 60; ++i) p.back.put_response(make_tx_response(i));
    ASSERT_EQ(p.back.req_cons(), 100u);
    ASSERT_EQ(p.back.rsp_prod_pvt(), 60u);
    p.hdr()->req_prod = 90;  // 90 - 60 = 30 <= size, but 90 - 100 wraps
    const auto u = p.back.pending_requests();
    EXPECT_EQ(u.status, ring_status::overflow);
    EXPECT_EQ(u.count, 0u);
    EXPECT_TRUE(p.back.final_check_for_requests()) << "a fault must not look like 'idle'";
    p.hdr()->req_prod = 100;  // back where it was: fine again
    EXPECT_EQ(p.back.pending_requests().status, ring_status::ok);
    EXPECT_EQ(p.back.pending_requests().count, 0u);
}

// ---- §3.1 overflow: hostile backend ----

TEST(Ring, Spec3_1_HostileRspProdBeyondSizeIsOverflow) {
    tx_pair p;
    p.hdr()->rsp_prod = p.front.rsp_cons() + tx_size + 1;
    const auto u = p.front.pending_responses();
    EXPECT_EQ(u.status, ring_status::overflow);
    EXPECT_EQ(u.count, 0u);
    EXPECT_TRUE(p.front.final_check_for_responses()) << "a fault must not look like 'idle'";
    p.hdr()->rsp_prod = p.front.rsp_cons() + tx_size;
    EXPECT_EQ(p.front.pending_responses().status, ring_status::ok);
    EXPECT_EQ(p.front.pending_responses().count, tx_size);
    p.hdr()->rsp_prod = p.front.rsp_cons() - 1;  // moved backwards
    EXPECT_EQ(p.front.pending_responses().status, ring_status::overflow);
}

TEST(Ring, Spec3_1_HostileRspProdAfterSomeTrafficIsOverflow) {
    tx_pair p;
    for (std::uint32_t lap = 0; lap < 5; ++lap) {
        p.send(lap * 200, 200);
        (void)p.front.push_requests();
        EXPECT_EQ(p.serve_all(lap * 200), 200u);
        (void)p.back.push_responses();
        EXPECT_EQ(p.reap_all(lap * 200), 200u);
    }
    EXPECT_EQ(p.front.rsp_cons(), 1000u);
    p.hdr()->rsp_prod = 1000 + tx_size + 1;
    EXPECT_EQ(p.front.pending_responses().status, ring_status::overflow);
}

// ---- copy-once (XSA-155) ----

TEST(Ring, TakeRequestReturnsACopyImmuneToLaterSlotWrites) {
    tx_pair p;
    const auto original = make_tx_request(77);
    p.front.put_request(original);
    (void)p.front.push_requests();
    const auto got = p.back.take_request();
    EXPECT_TRUE(same_bytes(got, original));
    // The hostile frontend rewrites the slot after the backend read it.
    auto& slot = slots<tx_ring_types>(p.page.get())[0].req;
    std::memset(&slot, 0xEE, sizeof slot);
    slot.size = 1;
    EXPECT_TRUE(same_bytes(got, original));
    EXPECT_EQ(got.size, original.size);
    EXPECT_EQ(got.gref, 77u);
}

TEST(Ring, TakeResponseReturnsACopyImmuneToLaterSlotWrites) {
    tx_pair p;
    p.send(0, 1);
    (void)p.front.push_requests();
    (void)p.back.take_request();
    const auto original = make_tx_response(5);
    p.back.put_response(original);
    (void)p.back.push_responses();
    const auto got = p.front.take_response();
    EXPECT_TRUE(same_bytes(got, original));
    auto& slot = slots<tx_ring_types>(p.page.get())[0].rsp;
    slot.id = 0xFFFF;
    slot.status = 0x7FFF;
    EXPECT_TRUE(same_bytes(got, original));
}

TEST(Ring, TakeRequestReadsTheSlotAtReqConsModuloSize) {
    auto page = make_page(0);
    sring_header* h = header(page.get());
    h->rsp_prod = 3 * tx_size + 5;
    h->req_prod = h->rsp_prod + 2;
    raw_put_request<tx_ring_types>(page.get(), 5, make_tx_request(1));
    raw_put_request<tx_ring_types>(page.get(), 6, make_tx_request(2));
    tx_back back(page.get());
    EXPECT_TRUE(same_bytes(back.take_request(), make_tx_request(1)));
    EXPECT_TRUE(same_bytes(back.take_request(), make_tx_request(2)));
}

TEST(Ring, ResponsesDoNotClobberUnconsumedNeighbourSlots) {
    // tx responses (4 bytes) share 12-byte slots with requests: writing a
    // response must only touch its own slot.
    tx_pair p;
    p.send(0, 3);
    (void)p.front.push_requests();
    (void)p.back.take_request();
    p.back.put_response(make_tx_response(0));
    auto* s = slots<tx_ring_types>(p.page.get());
    EXPECT_TRUE(same_bytes(s[1].req, make_tx_request(1)));
    EXPECT_TRUE(same_bytes(s[2].req, make_tx_request(2)));
    EXPECT_TRUE(same_bytes(p.back.take_request(), make_tx_request(1)));
}

}  // namespace
}  // namespace vifkit::ring::test
