// ctrl_client against a hand-driven backend ring over the same page
// (netif-spec §2.1: one response per request, out of order, matched by id;
// §3: ring mechanics, notification hold-off, ill-behaved backend check).
#include <algorithm>
#include <random>
#include <set>

#include "ctrlfront_test_support.hpp"
#include "vifkit/ctrlfront/ctrl_client.hpp"

namespace vifkit::ctrlfront::test {
namespace {

using clock = ctrl_client::clock;
namespace ct = abi::ctrl_type;
namespace cs = abi::ctrl_status;

struct got {
    std::vector<abi::ctrl_response> rsps;
    ctrl_client::callback cb() {
        return [this](const abi::ctrl_response& r) { rsps.push_back(r); };
    }
};

class ctrl_client_test : public ::testing::Test {
protected:
    page_ptr page = make_page();
    ctrl_client client{page.get()};
    hand_backend back{page.get()};
    got g;
};

TEST_F(ctrl_client_test, constructor_initialises_the_ring_page) {
    const auto* h = header(page.get());
    EXPECT_EQ(h->req_prod, 0u);
    EXPECT_EQ(h->rsp_prod, 0u);
    EXPECT_EQ(h->req_event, 1u);
    EXPECT_EQ(h->rsp_event, 1u);
    const auto* pad = reinterpret_cast<const std::uint8_t*>(h->pad);
    EXPECT_TRUE(std::all_of(pad, pad + sizeof h->pad, [](std::uint8_t b) { return b == 0; }));
    EXPECT_EQ(client.outstanding(), 0u);
    EXPECT_FALSE(client.next_deadline().has_value());
}

TEST_F(ctrl_client_test, send_flush_notify_and_complete) {
    ASSERT_TRUE(client.send(ct::get_gref_mapping_size, {0, 0, 0}, g.cb()));
    EXPECT_EQ(client.outstanding(), 1u);
    EXPECT_EQ(header(page.get())->req_prod, 0u) << "nothing is published before flush()";
    EXPECT_TRUE(client.flush()) << "req_event = 1: the first request needs a kick";
    const auto reqs = back.take_all();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].type, ct::get_gref_mapping_size);
    back.answer(reqs[0], cs::success, 1024);
    EXPECT_TRUE(back.push()) << "rsp_event = 1: the first response needs a kick";
    ASSERT_TRUE(client.on_event());
    ASSERT_EQ(g.rsps.size(), 1u);
    EXPECT_EQ(g.rsps[0].id, reqs[0].id);
    EXPECT_EQ(g.rsps[0].status, cs::success);
    EXPECT_EQ(g.rsps[0].data, 1024u);
    EXPECT_EQ(client.outstanding(), 0u);
    const auto c = client.get_counters();
    EXPECT_EQ(c.sent, 1u);
    EXPECT_EQ(c.completed, 1u);
    EXPECT_EQ(c.bad_responses, 0u);
    EXPECT_EQ(header(page.get())->rsp_event, 2u) << "on_event re-arms rsp_event = rsp_cons + 1";
}

TEST_F(ctrl_client_test, flush_notifies_only_when_the_backend_asked) {
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
    EXPECT_TRUE(client.flush());
    EXPECT_FALSE(client.flush()) << "nothing new";
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
    EXPECT_FALSE(client.flush()) << "backend has not re-armed req_event yet";
    EXPECT_EQ(back.take_all().size(), 2u);
    EXPECT_FALSE(back.rearm());
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
    EXPECT_TRUE(client.flush()) << "backend re-armed: kick";
}

TEST_F(ctrl_client_test, request_carries_type_and_data) {
    ASSERT_TRUE(client.send(ct::set_hash_mapping, {7, 0xFFFFFFFFu, 42}, g.cb()));
    (void)client.flush();
    const auto reqs = back.take_all();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].type, ct::set_hash_mapping);
    EXPECT_EQ(reqs[0].data[0], 7u);
    EXPECT_EQ(reqs[0].data[1], 0xFFFFFFFFu);
    EXPECT_EQ(reqs[0].data[2], 42u);
}

TEST_F(ctrl_client_test, out_of_order_responses_match_by_id) {
    std::map<std::uint16_t, std::uint32_t> by_type;  // type -> data delivered
    for (std::uint16_t t : {ct::get_hash_flags, ct::get_hash_mapping_size, ct::get_gref_mapping_size})
        ASSERT_TRUE(client.send(t, {}, [&by_type, t](const abi::ctrl_response& r) {
            EXPECT_EQ(r.type, t);
            by_type[t] = r.data;
        }));
    (void)client.flush();
    auto reqs = back.take_all();
    ASSERT_EQ(reqs.size(), 3u);
    std::reverse(reqs.begin(), reqs.end());
    for (const auto& r : reqs) back.answer(r, cs::success, 1000u + r.type);
    (void)back.push();
    ASSERT_TRUE(client.on_event());
    EXPECT_EQ(by_type.size(), 3u);
    for (const auto& [t, d] : by_type) EXPECT_EQ(d, 1000u + t);
    EXPECT_EQ(client.get_counters().completed, 3u);
}

TEST_F(ctrl_client_test, unknown_id_is_counted_and_ignored) {
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
    (void)client.flush();
    const auto reqs = back.take_all();
    back.answer(static_cast<std::uint16_t>(reqs[0].id + 1), reqs[0].type, cs::success, 1);
    (void)back.push();
    ASSERT_TRUE(client.on_event());
    EXPECT_TRUE(g.rsps.empty());
    EXPECT_EQ(client.get_counters().bad_responses, 1u);
    EXPECT_EQ(client.outstanding(), 1u);
}

TEST_F(ctrl_client_test, duplicate_response_is_counted_once_delivered_once) {
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
    (void)client.flush();
    const auto reqs = back.take_all();
    back.answer(reqs[0], cs::success, 1);
    back.answer(reqs[0], cs::success, 2);  // the same id again, in reqs[1]'s slot
    (void)back.push();
    ASSERT_TRUE(client.on_event());
    ASSERT_EQ(g.rsps.size(), 1u);
    EXPECT_EQ(g.rsps[0].data, 1u);
    EXPECT_EQ(client.get_counters().bad_responses, 1u);
    EXPECT_EQ(client.outstanding(), 1u);
}

TEST_F(ctrl_client_test, type_mismatch_is_counted_and_request_stays_outstanding) {
    ASSERT_TRUE(client.send(ct::get_gref_mapping_size, {}, g.cb(), 100ms));
    (void)client.flush();
    const auto reqs = back.take_all();
    back.answer(reqs[0].id, ct::del_gref_mapping, cs::success, 7);
    (void)back.push();
    ASSERT_TRUE(client.on_event());
    EXPECT_TRUE(g.rsps.empty());
    EXPECT_EQ(client.get_counters().bad_responses, 1u);
    EXPECT_EQ(client.outstanding(), 1u);
    client.expire(clock::now() + 1s);  // it can still only time out
    ASSERT_EQ(g.rsps.size(), 1u);
    EXPECT_EQ(g.rsps[0].status, local_status::timeout);
}

TEST_F(ctrl_client_test, rsp_prod_overflow_breaks_the_ring) {
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
    (void)client.flush();
    header(page.get())->rsp_prod = ctrl_client::ring_size + 1;
    EXPECT_FALSE(client.on_event());
    EXPECT_TRUE(client.broken());
    EXPECT_FALSE(client.on_event()) << "stays broken";
    EXPECT_FALSE(client.send(ct::get_hash_flags, {}, g.cb()));
    EXPECT_TRUE(g.rsps.empty());
    client.cancel_all();  // what the caller does on disconnect
    ASSERT_EQ(g.rsps.size(), 1u);
    EXPECT_EQ(g.rsps[0].status, local_status::cancelled);
}

TEST_F(ctrl_client_test, more_responses_than_published_requests_breaks_the_ring) {
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
    (void)client.flush();
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));  // queued, not published
    const auto reqs = back.take_all();
    ASSERT_EQ(reqs.size(), 1u);
    back.answer(reqs[0], cs::success, 0);
    back.answer(static_cast<std::uint16_t>(reqs[0].id + 1), reqs[0].type, cs::success, 0);
    (void)back.push();
    EXPECT_FALSE(client.on_event());
    EXPECT_TRUE(client.broken());
    EXPECT_TRUE(g.rsps.empty()) << "the fault is seen before any response is used";
}

TEST_F(ctrl_client_test, expire_fails_due_requests_with_the_timeout_marker) {
    const auto t0 = clock::now();
    ASSERT_TRUE(client.send(ct::set_hash_algorithm, {1, 0, 0}, g.cb(), 100ms));
    (void)client.flush();
    client.expire(t0);
    EXPECT_TRUE(g.rsps.empty());
    client.expire(t0 + 200ms);
    ASSERT_EQ(g.rsps.size(), 1u);
    EXPECT_EQ(g.rsps[0].status, local_status::timeout);
    EXPECT_EQ(g.rsps[0].type, ct::set_hash_algorithm);
    EXPECT_EQ(g.rsps[0].data, 0u);
    EXPECT_STREQ(status_name(g.rsps[0].status), "TIMEOUT");
    EXPECT_EQ(client.get_counters().timeouts, 1u);
    EXPECT_EQ(client.outstanding(), 0u);
    EXPECT_FALSE(client.next_deadline().has_value());
    // The backend answers late: counted, not delivered, not "bad".
    const auto reqs = back.take_all();
    back.answer(reqs[0], cs::success, 0);
    (void)back.push();
    ASSERT_TRUE(client.on_event());
    EXPECT_EQ(g.rsps.size(), 1u);
    EXPECT_EQ(client.get_counters().late_responses, 1u);
    EXPECT_EQ(client.get_counters().bad_responses, 0u);
}

TEST_F(ctrl_client_test, timed_out_id_is_not_reused_while_its_answer_may_come) {
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb(), 1ms));
    (void)client.flush();
    const auto first = back.take_all().at(0);
    client.expire(clock::now() + 1s);
    std::set<std::uint16_t> ids;
    for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
        (void)client.flush();
        const auto r = back.take_all().at(0);
        EXPECT_NE(r.id, first.id);
        back.answer(r, cs::success, 0);
        (void)back.push();
        ASSERT_TRUE(client.on_event());
    }
}

TEST_F(ctrl_client_test, next_deadline_is_the_earliest) {
    const auto t0 = clock::now();
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb(), 300ms));
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb(), 100ms));
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb(), 200ms));
    const auto t1 = clock::now();
    auto d = client.next_deadline();
    ASSERT_TRUE(d.has_value());
    EXPECT_GE(*d, t0 + 100ms);
    EXPECT_LE(*d, t1 + 100ms);
    client.expire(t1 + 150ms);
    EXPECT_EQ(g.rsps.size(), 1u);
    d = client.next_deadline();
    ASSERT_TRUE(d.has_value());
    EXPECT_GE(*d, t0 + 200ms);
    EXPECT_LE(*d, t1 + 200ms);
}

TEST_F(ctrl_client_test, cancel_all_fails_everything_with_the_cancel_marker) {
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
    (void)client.flush();
    client.cancel_all();
    ASSERT_EQ(g.rsps.size(), 3u);
    for (const auto& r : g.rsps) EXPECT_EQ(r.status, local_status::cancelled);
    EXPECT_EQ(client.outstanding(), 0u);
    EXPECT_EQ(client.get_counters().cancelled, 3u);
    client.cancel_all();
    EXPECT_EQ(g.rsps.size(), 3u) << "each callback runs exactly once";
}

TEST_F(ctrl_client_test, full_ring_refuses_send_until_a_response_frees_a_slot) {
    std::set<std::uint16_t> ids;
    for (std::uint32_t i = 0; i < ctrl_client::ring_size; ++i)
        ASSERT_TRUE(client.send(ct::get_hash_flags, {i, 0, 0}, g.cb())) << i;
    EXPECT_FALSE(client.send(ct::get_hash_flags, {}, g.cb()));
    EXPECT_EQ(client.outstanding(), ctrl_client::ring_size);
    (void)client.flush();
    const auto reqs = back.take_all();
    ASSERT_EQ(reqs.size(), ctrl_client::ring_size);
    for (const auto& r : reqs) ids.insert(r.id);
    EXPECT_EQ(ids.size(), ctrl_client::ring_size) << "ids unique among outstanding";
    back.answer(reqs[5], cs::success, 0);
    (void)back.push();
    ASSERT_TRUE(client.on_event());
    EXPECT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
    EXPECT_FALSE(client.send(ct::get_hash_flags, {}, g.cb()));
}

TEST_F(ctrl_client_test, timed_out_requests_keep_their_ring_slots) {
    for (std::uint32_t i = 0; i < ctrl_client::ring_size; ++i)
        ASSERT_TRUE(client.send(ct::get_hash_flags, {}, g.cb(), 1ms));
    (void)client.flush();
    client.expire(clock::now() + 1s);
    EXPECT_EQ(client.outstanding(), 0u);
    EXPECT_FALSE(client.send(ct::get_hash_flags, {}, g.cb())) << "the backend still owns every slot";
    for (const auto& r : back.take_all()) back.answer(r, cs::success, 0);
    (void)back.push();
    ASSERT_TRUE(client.on_event());
    EXPECT_EQ(client.get_counters().late_responses, ctrl_client::ring_size);
    EXPECT_TRUE(client.send(ct::get_hash_flags, {}, g.cb()));
}

TEST_F(ctrl_client_test, callback_may_send_the_next_request) {
    int chain = 0;
    std::function<void(const abi::ctrl_response&)> next = [&](const abi::ctrl_response&) {
        if (++chain < 5) {
            ASSERT_TRUE(client.send(ct::get_hash_flags, {}, next));
            (void)client.flush();
        }
    };
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, next));
    (void)client.flush();
    for (int round = 0; round < 5; ++round) {
        for (const auto& r : back.take_all()) back.answer(r, cs::success, 0);
        (void)back.push();
        ASSERT_TRUE(client.on_event());
    }
    EXPECT_EQ(chain, 5);
    EXPECT_EQ(client.outstanding(), 0u);
}

TEST_F(ctrl_client_test, on_event_is_bounded_per_call) {
    // Each callback makes the backend answer a new request at once, so the
    // ring never runs dry within one on_event() call.
    int delivered = 0;
    std::function<void(const abi::ctrl_response&)> refill = [&](const abi::ctrl_response&) {
        if (++delivered >= 300) return;
        ASSERT_TRUE(client.send(ct::get_hash_flags, {}, refill));
        (void)client.flush();
        for (const auto& r : back.take_all()) back.answer(r, cs::success, 0);
        (void)back.push();
    };
    ASSERT_TRUE(client.send(ct::get_hash_flags, {}, refill));
    (void)client.flush();
    for (const auto& r : back.take_all()) back.answer(r, cs::success, 0);
    (void)back.push();
    ASSERT_TRUE(client.on_event());
    EXPECT_EQ(delivered, static_cast<int>(ctrl_client::batch_limit));
    EXPECT_TRUE(client.more_pending());
    while (client.more_pending()) ASSERT_TRUE(client.on_event());
    EXPECT_EQ(delivered, 300);
}

TEST_F(ctrl_client_test, ten_thousand_cycles_across_ring_wrap_out_of_order) {
    std::mt19937 rng(12345);
    std::uint32_t sent = 0, matched = 0;
    while (sent < 10000) {
        const std::uint32_t batch = 1 + rng() % 40;
        for (std::uint32_t i = 0; i < batch && sent < 10000; ++i, ++sent) {
            const std::uint32_t tag = sent;
            ASSERT_TRUE(client.send(ct::get_hash_mapping_size, {tag, 0, 0},
                                    [&matched, tag](const abi::ctrl_response& r) {
                                        EXPECT_EQ(r.status, cs::success);
                                        EXPECT_EQ(r.data, tag ^ 0x5A5A5A5Au);
                                        ++matched;
                                    }));
        }
        (void)client.flush();
        auto reqs = back.take_all();
        std::shuffle(reqs.begin(), reqs.end(), rng);
        for (const auto& r : reqs) back.answer(r, cs::success, r.data[0] ^ 0x5A5A5A5Au);
        (void)back.push();
        (void)back.rearm();
        ASSERT_TRUE(client.on_event());
    }
    EXPECT_EQ(matched, 10000u);
    EXPECT_EQ(client.outstanding(), 0u);
    EXPECT_EQ(header(page.get())->req_prod, 10000u) << "the 128-slot ring wrapped many times";
    const auto c = client.get_counters();
    EXPECT_EQ(c.sent, 10000u);
    EXPECT_EQ(c.completed, 10000u);
    EXPECT_EQ(c.bad_responses, 0u);
}

TEST_F(ctrl_client_test, hostile_slot_contents_are_read_once_and_checked) {
    ASSERT_TRUE(client.send(ct::get_gref_mapping_size, {}, g.cb()));
    (void)client.flush();
    const auto r = back.take_all().at(0);
    // Write the response slot directly, as a hostile backend could, with a
    // status we do not know: it is passed through as data, never trusted as size.
    rsp_slot(page.get(), 0) = abi::ctrl_response{r.id, r.type, 0x12345678u, 0xFFFFFFFFu};
    header(page.get())->rsp_prod = 1;
    ASSERT_TRUE(client.on_event());
    ASSERT_EQ(g.rsps.size(), 1u);
    EXPECT_EQ(g.rsps[0].status, 0x12345678u);
    EXPECT_STREQ(status_name(g.rsps[0].status), "UNKNOWN");
}

}  // namespace
}  // namespace vifkit::ctrlfront::test
