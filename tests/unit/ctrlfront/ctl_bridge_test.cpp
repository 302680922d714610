// ctl_bridge: ctl requests -> ctrl_client -> a fake backend on the same ring
// page -> replies, including granted pages and timeouts via expiry_timer.
#include "ctrlfront_test_support.hpp"
#include "fake_ctrl_backend.hpp"
#include "vifkit/ctrlfront/ctl_bridge.hpp"

namespace vifkit::ctrlfront::test {
namespace {

using json = nlohmann::json;

class ctl_bridge_test : public ::testing::Test {
protected:
    void SetUp() override { bridge.attach(&client, &timer); }

    ctl_request req(const std::string& line) {
        auto r = parse_request(line);
        EXPECT_TRUE(r) << r.error;
        return r ? *r.value : ctl_request{};
    }
    ctl_server::reply_fn collect() {
        return [this](json j) { replies.push_back(std::move(j)); };
    }
    // The backend's event: serve, and deliver responses as the ctrl event would.
    void backend_runs() {
        (void)backend.serve();
        ASSERT_TRUE(client.on_event());
    }

    util::event_loop loop;
    page_ptr page = make_page();
    fake_grants grants;
    int notifies = 0;
    ctrl_client client{page.get()};
    fake_ctrl_backend backend{page.get(), grants};
    expiry_timer timer{loop, client};
    ctl_bridge bridge{grants.hooks([this] { ++notifies; })};
    std::vector<json> replies;
};

TEST_F(ctl_bridge_test, plain_send_is_answered) {
    bridge.handle(req(R"({"op":"send","type":"get_gref_mapping_size","data":[0]})"), collect());
    EXPECT_EQ(notifies, 1);
    EXPECT_TRUE(replies.empty());
    backend_runs();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0]["ok"], true);
    EXPECT_EQ(replies[0]["type_name"], "get_gref_mapping_size");
    EXPECT_EQ(replies[0]["status_name"], "SUCCESS");
    EXPECT_EQ(replies[0]["data"], 1024);
    EXPECT_FALSE(replies[0].contains("page_after"));
}

TEST_F(ctl_bridge_test, gref_pages_are_granted_filled_and_returned) {
    const abi::gref_entry add[] = {{500, abi::gref_flag_readonly, 0}, {501, 0, 0}};
    // No page_arg / page_writable: the type's defaults apply (data[1], writable).
    ctl_request r = req(json{{"op", "send"}, {"type", "add_gref_mapping"}, {"data", {0, 0, 2}},
                             {"page", to_hex(gref_list_page(add))}}.dump());
    EXPECT_EQ(r.page_arg, 1u);
    bridge.handle(r, collect());
    ASSERT_EQ(grants.pages.size(), 1u);
    EXPECT_TRUE(grants.pages.begin()->second.writable);
    backend_runs();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0]["status_name"], "SUCCESS");
    EXPECT_EQ(backend.mapped, (std::set<std::uint32_t>{500, 501}));
    EXPECT_TRUE(grants.pages.empty()) << "page released after the answer";

    const abi::gref_entry del[] = {{501, 0, 0}, {999, 0, 0}};
    r.type = abi::ctrl_type::del_gref_mapping;
    r.page = gref_list_page(del);
    bridge.handle(r, collect());
    backend_runs();
    ASSERT_EQ(replies.size(), 2u);
    EXPECT_EQ(replies[1]["data"], 1);
    const auto after = from_hex(replies[1]["page_after"].get<std::string>());
    ASSERT_TRUE(after.has_value());
    const auto entries = parse_gref_list_page(*after, 2);
    ASSERT_TRUE(entries.has_value());
    EXPECT_EQ((*entries)[0].status, abi::ctrl_status::success);
    EXPECT_EQ((*entries)[1].status, abi::ctrl_status::invalid_parameter);
    EXPECT_EQ(grants.granted, grants.released);
}

TEST_F(ctl_bridge_test, page_bytes_reach_the_backend_at_data_page_arg) {
    backend.silent.insert(200);
    bridge.handle(req(R"({"op":"send","type":200,"data":[7,7,7],"page":"c0ffee","page_arg":2})"), collect());
    ASSERT_EQ(grants.pages.size(), 1u);
    const auto& [gref, pg] = *grants.pages.begin();
    EXPECT_FALSE(pg.writable);
    EXPECT_EQ(pg.bytes[0], 0xc0);
    EXPECT_EQ(pg.bytes[2], 0xee);
    EXPECT_TRUE(std::all_of(pg.bytes.begin() + 3, pg.bytes.end(), [](std::uint8_t b) { return b == 0; }));
    hand_backend peek(page.get());
    const auto reqs = peek.take_all();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].data[0], 7u);
    EXPECT_EQ(reqs[0].data[1], 7u);
    EXPECT_EQ(reqs[0].data[2], gref);
}

TEST_F(ctl_bridge_test, silent_backend_times_out_through_the_timer) {
    backend.silent.insert(abi::ctrl_type::set_hash_key);
    bridge.handle(req(R"({"op":"send","type":"set_hash_key","data":[0,3],"page":"010203","timeout_ms":30})"),
                  collect());
    backend_runs();
    EXPECT_TRUE(replies.empty());
    ASSERT_TRUE(pump_until(loop, [&] { return !replies.empty(); }, 2s));
    EXPECT_EQ(replies[0]["ok"], true);
    EXPECT_EQ(replies[0]["status_name"], "TIMEOUT");
    EXPECT_EQ(replies[0]["page_after"], "010203");
    EXPECT_TRUE(grants.pages.empty());
    EXPECT_EQ(client.get_counters().timeouts, 1u);
}

TEST_F(ctl_bridge_test, cancel_all_then_detach) {
    backend.silent.insert(abi::ctrl_type::add_gref_mapping);
    bridge.handle(req(R"({"op":"send","type":"add_gref_mapping","data":[0,0,1],"page":"0100000000000000"})"),
                  collect());
    client.cancel_all();
    bridge.detach();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0]["status_name"], "CANCELLED");
    EXPECT_TRUE(grants.pages.empty());
    bridge.handle(req(R"({"op":"send","type":1})"), collect());
    EXPECT_EQ(replies[1]["ok"], false);
    EXPECT_EQ(replies[1]["error"], "control ring not connected");
    bridge.handle(req(R"({"op":"stats"})"), collect());
    EXPECT_EQ(replies[2]["stats"]["connected"], false);
}

TEST_F(ctl_bridge_test, full_ring_and_grant_failure_are_errors_without_leaks) {
    backend.silent.insert(abi::ctrl_type::get_hash_flags);
    for (std::uint32_t i = 0; i < ctrl_client::ring_size; ++i)
        bridge.handle(req(R"({"op":"send","type":"get_hash_flags"})"), collect());
    bridge.handle(req(R"({"op":"send","type":"set_hash_key","page":"00"})"), collect());
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0]["error"], "control ring full");
    EXPECT_EQ(grants.granted, 1u);
    EXPECT_TRUE(grants.pages.empty());
    client.cancel_all();
    (void)backend.serve();
    ASSERT_TRUE(client.on_event());
    grants.fail = true;
    replies.clear();
    bridge.handle(req(R"({"op":"send","type":"set_hash_key","page":"00"})"), collect());
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0]["error"], "cannot grant a page for the request");
}

TEST_F(ctl_bridge_test, broken_ring_is_reported) {
    header(page.get())->rsp_prod = 1000;
    EXPECT_FALSE(client.on_event());
    bridge.handle(req(R"({"op":"send","type":1})"), collect());
    EXPECT_EQ(replies[0]["error"], "control ring broken by the backend");
    bridge.handle(req(R"({"op":"stats"})"), collect());
    EXPECT_EQ(replies[1]["stats"]["broken"], true);
}

TEST_F(ctl_bridge_test, stats_merge_client_counters_and_hook) {
    ctl_bridge::hooks h = grants.hooks([] {});
    h.stats = [] { return json{{"queues", 1}}; };
    ctl_bridge b2(std::move(h));
    b2.attach(&client, nullptr);
    b2.handle(req(R"({"op":"send","type":"get_hash_flags"})"), collect());
    backend_runs();
    b2.handle(req(R"({"op":"stats"})"), collect());
    const json s = replies.back()["stats"];
    EXPECT_EQ(s["connected"], true);
    EXPECT_EQ(s["sent"], 1);
    EXPECT_EQ(s["completed"], 1);
    EXPECT_EQ(s["outstanding"], 0);
    EXPECT_EQ(s["queues"], 1);
    EXPECT_EQ(replies[0]["status_name"], "NOT_SUPPORTED");
}

}  // namespace
}  // namespace vifkit::ctrlfront::test
