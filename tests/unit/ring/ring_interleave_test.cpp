// Deterministic interleavings for the notify hold-off (netif-spec §3.2).
//
// The lost wake-up races live between two instructions of one ring call:
//  - final check: "nothing pending" ... [peer pushes here] ... store event, fence, re-check;
//  - push: ... store prod ... [peer re-arms its event here] ... fence, load event.
// The stress tests hit these windows only by chance. Here the window is hit on
// purpose: our view of the ring page is made read-only just before the call,
// so the call's one store to the page (the event index, or the producer index)
// faults; the SIGSEGV handler plays the peer through a second, writable
// mapping of the same page, makes our view writable again and returns, and the
// faulting store is retried. The ring call must then still do the right thing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "ring_test_support.hpp"
#include "vifkit/ring/ring.hpp"

namespace vifkit::ring::test {
namespace {

using tx_front = front_ring<tx_ring_types>;
using tx_back = back_ring<tx_ring_types>;

// State shared with the signal handler. The fault is synchronous (our own
// store), so the handler runs at a known point, but it still only touches
// plain globals and makes syscalls.
void* g_view = nullptr;                    // our read-only-for-now mapping
sring_header* g_peer = nullptr;            // the peer's writable mapping
void (*g_peer_action)(sring_header*) = nullptr;
std::atomic<int> g_faults{0};

void on_segv(int, siginfo_t* info, void*) {
    auto* addr = static_cast<std::byte*>(info->si_addr);
    auto* base = static_cast<std::byte*>(g_view);
    if (g_view == nullptr || addr < base || addr >= base + ring_page_size) {
        signal(SIGSEGV, SIG_DFL);  // not ours: crash normally on return
        return;
    }
    g_faults.fetch_add(1);
    if (g_peer_action != nullptr) g_peer_action(g_peer);
    mprotect(g_view, ring_page_size, PROT_READ | PROT_WRITE);
}

// One ring page mapped twice (memfd): view() for the ring object under test,
// peer() for the simulated other end.
class Interleave : public ::testing::Test {
protected:
    void SetUp() override {
        fd_ = memfd_create("vifkit-ring-test", MFD_CLOEXEC);
        ASSERT_GE(fd_, 0);
        ASSERT_EQ(ftruncate(fd_, ring_page_size), 0);
        view_ = mmap(nullptr, ring_page_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        peer_ = mmap(nullptr, ring_page_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        ASSERT_NE(view_, MAP_FAILED);
        ASSERT_NE(peer_, MAP_FAILED);
        struct sigaction sa {};
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        ASSERT_EQ(sigaction(SIGSEGV, &sa, &old_), 0);
        g_view = view_;
        g_peer = static_cast<sring_header*>(peer_);
        g_faults = 0;
    }
    void TearDown() override {
        sigaction(SIGSEGV, &old_, nullptr);
        g_view = nullptr;
        g_peer = nullptr;
        g_peer_action = nullptr;
        if (view_ != MAP_FAILED) munmap(view_, ring_page_size);
        if (peer_ != MAP_FAILED) munmap(peer_, ring_page_size);
        if (fd_ >= 0) close(fd_);
    }
    // The next store through view() runs `action` as the peer first.
    void peer_acts_on_next_store(void (*action)(sring_header*)) {
        g_peer_action = action;
        ASSERT_EQ(mprotect(view_, ring_page_size, PROT_READ), 0);
    }
    sring_header* peer() { return static_cast<sring_header*>(peer_); }

    int fd_ = -1;
    void* view_ = MAP_FAILED;
    void* peer_ = MAP_FAILED;
    struct sigaction old_ {};
};

TEST_F(Interleave, MappingsAliasOnePage) {
    tx_front front(view_);
    front.init();
    EXPECT_EQ(peer()->req_event, 1u);
    peer()->rsp_prod = 7;
    EXPECT_EQ(front.shared()->rsp_prod, 7u);
    // The fault injection itself works: a store through the read-only view runs the action once.
    peer_acts_on_next_store([](sring_header* p) { p->rsp_event = 99; });
    front.shared()->pvt[0] = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);  // keep the store before the check
    EXPECT_EQ(g_faults.load(), 1);
    EXPECT_EQ(peer()->rsp_event, 99u);
    EXPECT_EQ(peer()->pvt[0], 1);
}

// The frontend pushes a request after the backend saw "nothing pending" but
// before its re-arm landed. Without the re-check the backend would sleep with
// a request queued and no notify coming (the frontend saw the old event).
TEST_F(Interleave, Spec3_2_FinalCheckForRequestsSeesAPushRacingTheReArm) {
    tx_front front(view_);
    front.init();
    tx_back back(view_);
    front.put_request(make_tx_request(0));
    EXPECT_TRUE(front.push_requests());
    EXPECT_TRUE(same_bytes(back.take_request(), make_tx_request(0)));
    // Now idle; the "frontend" pushes request 1 while the backend re-arms.
    peer_acts_on_next_store([](sring_header* p) {
        raw_put_request<tx_ring_types>(p, 1, make_tx_request(1));
        p->req_prod = 2;
    });
    EXPECT_TRUE(back.final_check_for_requests()) << "re-check after re-arming must see the racing push";
    EXPECT_EQ(g_faults.load(), 1) << "the store to req_event was the interleaving point";
    EXPECT_EQ(peer()->req_event, 2u);
    EXPECT_TRUE(same_bytes(back.take_request(), make_tx_request(1)));
}

TEST_F(Interleave, Spec3_2_FinalCheckForResponsesSeesAPushRacingTheReArm) {
    tx_front front(view_);
    front.init();
    front.put_request(make_tx_request(0));
    EXPECT_TRUE(front.push_requests());
    // The "backend" answers request 0 while the frontend re-arms rsp_event.
    peer_acts_on_next_store([](sring_header* p) {
        raw_put_response<tx_ring_types>(p, 0, make_tx_response(0));
        p->rsp_prod = 1;
    });
    EXPECT_TRUE(front.final_check_for_responses()) << "re-check after re-arming must see the racing response";
    EXPECT_EQ(g_faults.load(), 1);
    EXPECT_EQ(peer()->rsp_event, 1u);
    EXPECT_TRUE(same_bytes(front.take_response(), make_tx_response(0)));
}

// Same race for wait_for_requests(n): the frontend completes the batch while
// the backend arms req_event n ahead.
TEST_F(Interleave, Spec3_2_WaitForRequestsSeesAPushRacingTheReArm) {
    tx_front front(view_);
    front.init();
    tx_back back(view_);
    front.put_request(make_tx_request(0));
    EXPECT_TRUE(front.push_requests());
    peer_acts_on_next_store([](sring_header* p) {
        for (std::uint32_t i = 1; i < 4; ++i) raw_put_request<tx_ring_types>(p, i, make_tx_request(i));
        p->req_prod = 4;
    });
    EXPECT_TRUE(back.wait_for_requests(4)) << "re-check after arming must see the racing push";
    EXPECT_EQ(g_faults.load(), 1);
    EXPECT_EQ(peer()->req_event, 4u);
    EXPECT_EQ(back.pending_requests().count, 4u);
}

// The backend goes idle and re-arms while the frontend is publishing: its
// final check ran just before req_prod moved, so it found nothing and is about
// to sleep. The frontend must read req_event after publishing (full fence in
// between) and so see the re-arm and notify.
TEST_F(Interleave, Spec3_2_PushRequestsSeesAReArmRacingThePublish) {
    tx_front front(view_);
    front.init();
    tx_back back(view_);
    front.put_request(make_tx_request(0));
    EXPECT_TRUE(front.push_requests());
    (void)back.take_request();
    // Backend busy: event left behind, so an ordinary push would not notify.
    front.put_request(make_tx_request(1));
    EXPECT_FALSE(front.push_requests());
    (void)back.take_request();
    front.put_request(make_tx_request(2));
    peer_acts_on_next_store([](sring_header* p) {
        p->req_event = p->req_prod + 1;  // backend: "nothing pending", re-armed at req_cons + 1 = 3
    });
    EXPECT_TRUE(front.push_requests()) << "a re-arm that raced the publish must still be notified";
    EXPECT_EQ(g_faults.load(), 1) << "the store to req_prod was the interleaving point";
    EXPECT_EQ(peer()->req_prod, 3u);
}

TEST_F(Interleave, Spec3_2_PushResponsesSeesAReArmRacingThePublish) {
    tx_front front(view_);
    front.init();
    for (std::uint32_t i = 0; i < 3; ++i) front.put_request(make_tx_request(i));
    (void)front.push_requests();
    tx_back back(view_);
    for (std::uint32_t i = 0; i < 3; ++i) (void)back.take_request();
    back.put_response(make_tx_response(0));
    EXPECT_TRUE(back.push_responses());
    back.put_response(make_tx_response(1));
    EXPECT_FALSE(back.push_responses()) << "frontend busy: no re-arm yet";
    back.put_response(make_tx_response(2));
    peer_acts_on_next_store([](sring_header* p) {
        p->rsp_event = p->rsp_prod + 1;  // frontend reaped 0 and 1, found nothing, re-armed
    });
    EXPECT_TRUE(back.push_responses());
    EXPECT_EQ(g_faults.load(), 1);
    EXPECT_EQ(peer()->rsp_prod, 3u);
}

}  // namespace
}  // namespace vifkit::ring::test
