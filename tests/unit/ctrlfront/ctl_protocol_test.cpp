// The local control protocol: strict request parsing, reply formatting and
// parsing, hex, and the page layouts (gref list: netif-spec §1.3).
#include <gtest/gtest.h>

#include <string>

#include "vifkit/abi/netif.hpp"
#include "vifkit/ctrlfront/ctl_protocol.hpp"
#include "vifkit/ctrlfront/ctrl_names.hpp"

namespace vifkit::ctrlfront {
namespace {

using json = nlohmann::json;

ctl_request must_parse(const std::string& line) {
    auto r = parse_request(line);
    EXPECT_TRUE(r) << line << " -> " << r.error;
    return r ? *r.value : ctl_request{};
}

void expect_rejected(const std::string& line, const std::string& error_part = "") {
    const auto r = parse_request(line);
    EXPECT_FALSE(r) << "accepted: " << line;
    EXPECT_FALSE(r.error.empty());
    if (!error_part.empty()) {
        EXPECT_NE(r.error.find(error_part), std::string::npos) << r.error;
    }
}

TEST(ctl_request_parse, minimal_send_gets_defaults) {
    const auto r = must_parse(R"({"op":"send","type":"get_gref_mapping_size"})");
    EXPECT_EQ(r.op, ctl_op::send);
    EXPECT_EQ(r.type, abi::ctrl_type::get_gref_mapping_size);
    EXPECT_EQ(r.data, (std::array<std::uint32_t, 3>{0, 0, 0}));
    EXPECT_FALSE(r.page.has_value());
    EXPECT_EQ(r.timeout, ctl_default_timeout);
}

TEST(ctl_request_parse, full_send) {
    const auto r = must_parse(
        R"({"op":"send","type":9,"data":[1,2,4294967295],"page":"0a0B","page_arg":2,"page_writable":false,"timeout_ms":250})");
    EXPECT_EQ(r.type, 9);
    EXPECT_EQ(r.data, (std::array<std::uint32_t, 3>{1, 2, 0xFFFFFFFFu}));
    ASSERT_TRUE(r.page.has_value());
    EXPECT_EQ(*r.page, (std::vector<std::uint8_t>{0x0a, 0x0b}));
    EXPECT_EQ(r.page_arg, 2u);
    EXPECT_FALSE(r.page_writable);
    EXPECT_EQ(r.timeout.count(), 250);
}

TEST(ctl_request_parse, short_data_is_zero_filled) {
    EXPECT_EQ(must_parse(R"({"op":"send","type":1,"data":[5]})").data, (std::array<std::uint32_t, 3>{5, 0, 0}));
    EXPECT_EQ(must_parse(R"({"op":"send","type":1,"data":[]})").data, (std::array<std::uint32_t, 3>{0, 0, 0}));
}

TEST(ctl_request_parse, page_defaults_come_from_the_type) {
    auto r = must_parse(R"({"op":"send","type":"add_gref_mapping","page":"00"})");
    EXPECT_EQ(r.page_arg, 1u);
    EXPECT_TRUE(r.page_writable);
    r = must_parse(R"({"op":"send","type":"set_hash_key","page":"00"})");
    EXPECT_EQ(r.page_arg, 0u);
    EXPECT_FALSE(r.page_writable);
    expect_rejected(R"({"op":"send","type":"get_hash_flags","page":"00"})", "page_arg");
    r = must_parse(R"({"op":"send","type":200,"page":"00","page_arg":2})");
    EXPECT_EQ(r.page_arg, 2u);
    EXPECT_FALSE(r.page_writable);
}

TEST(ctl_request_parse, largest_page_fits_the_line_limit) {
    const std::string hex(2 * ctl_max_page_bytes, 'f');
    const auto r = must_parse(R"({"op":"send","type":9,"page":")" + hex + R"("})");
    ASSERT_TRUE(r.page.has_value());
    EXPECT_EQ(r.page->size(), ctl_max_page_bytes);
    expect_rejected(R"({"op":"send","type":9,"page":")" + hex + R"(ff"})", "page");
}

TEST(ctl_request_parse, stats) {
    EXPECT_EQ(must_parse(R"({"op":"stats"})").op, ctl_op::stats);
    expect_rejected(R"({"op":"stats","type":1})", "stats");
}

TEST(ctl_request_parse, rejects_bad_framing) {
    expect_rejected("", "JSON");
    expect_rejected("garbage", "JSON");
    expect_rejected(R"({"op":"send")", "JSON");
    expect_rejected(R"([{"op":"stats"}])", "object");
    expect_rejected(R"("stats")", "object");
    expect_rejected("42", "object");
    expect_rejected(R"({"op":"stats"} {"op":"stats"})", "JSON");
    expect_rejected(R"({"op":"send","type":1,"data":[[[[1]]]]})", "nested");
    expect_rejected(std::string(100, '[') + std::string(100, ']'), "nested");
}

TEST(ctl_request_parse, rejects_oversized_line) {
    std::string line = R"({"op":"send","type":1,"pad":")";
    line += std::string(ctl_max_line, 'x') + R"("})";
    expect_rejected(line, "16 KiB");
}

TEST(ctl_request_parse, rejects_each_bad_field) {
    const char* cases[][2] = {
        {R"({"type":1})", "op"},
        {R"({"op":1})", "op"},
        {R"({"op":"reboot"})", "op"},
        {R"({"op":"send"})", "type"},
        {R"({"op":"send","type":1,"extra":0})", "unknown field"},
        {R"({"op":"send","type":"no_such_type"})", "type"},
        {R"({"op":"send","type":-1})", "type"},
        {R"({"op":"send","type":65536})", "type"},
        {R"({"op":"send","type":1.5})", "type"},
        {R"({"op":"send","type":true})", "type"},
        {R"({"op":"send","type":null})", "type"},
        {R"({"op":"send","type":1,"data":5})", "data"},
        {R"({"op":"send","type":1,"data":[1,2,3,4]})", "data"},
        {R"({"op":"send","type":1,"data":[-1]})", "data"},
        {R"({"op":"send","type":1,"data":[4294967296]})", "data"},
        {R"({"op":"send","type":1,"data":[1.0]})", "data"},
        {R"({"op":"send","type":1,"data":["1"]})", "data"},
        {R"({"op":"send","type":9,"page":5})", "page"},
        {R"({"op":"send","type":9,"page":"abc"})", "page"},
        {R"({"op":"send","type":9,"page":"zz"})", "page"},
        {R"({"op":"send","type":9,"page":""})", "page"},
        {R"({"op":"send","type":9,"page":"0 0"})", "page"},
        {R"({"op":"send","type":9,"page":"00","page_arg":3})", "page_arg"},
        {R"({"op":"send","type":9,"page":"00","page_arg":-1})", "page_arg"},
        {R"({"op":"send","type":9,"page":"00","page_arg":"1"})", "page_arg"},
        {R"({"op":"send","type":9,"page_arg":1})", "need \"page\""},
        {R"({"op":"send","type":9,"page":"00","page_writable":1})", "page_writable"},
        {R"({"op":"send","type":9,"page_writable":true})", "need \"page\""},
        {R"({"op":"send","type":1,"timeout_ms":0})", "timeout_ms"},
        {R"({"op":"send","type":1,"timeout_ms":600001})", "timeout_ms"},
        {R"({"op":"send","type":1,"timeout_ms":"5"})", "timeout_ms"},
        {R"({"op":"send","type":1,"timeout_ms":1.5})", "timeout_ms"},
    };
    for (const auto& c : cases) expect_rejected(c[0], c[1]);
}

TEST(ctl_request_format, round_trips_through_parse) {
    ctl_request req;
    req.op = ctl_op::send;
    req.type = abi::ctrl_type::del_gref_mapping;
    req.data = {3, 0, 2};
    req.page = std::vector<std::uint8_t>{1, 2, 3, 0xff};
    req.page_arg = 1;
    req.page_writable = true;
    req.timeout = std::chrono::milliseconds(1234);
    const std::string line = to_line(format_request(req));
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    const auto back = must_parse(line.substr(0, line.size() - 1));
    EXPECT_EQ(back.type, req.type);
    EXPECT_EQ(back.data, req.data);
    EXPECT_EQ(back.page, req.page);
    EXPECT_EQ(back.page_arg, req.page_arg);
    EXPECT_EQ(back.page_writable, req.page_writable);
    EXPECT_EQ(back.timeout, req.timeout);
    EXPECT_EQ(must_parse(format_request(ctl_request{}).dump()).op, ctl_op::stats);
}

TEST(ctl_reply_format, has_names_and_round_trips) {
    ctl_reply r{7, abi::ctrl_type::get_gref_mapping_size, abi::ctrl_status::success, 1024, std::nullopt};
    const json j = format_reply(r);
    EXPECT_EQ(j["ok"], true);
    EXPECT_EQ(j["type_name"], "get_gref_mapping_size");
    EXPECT_EQ(j["status_name"], "SUCCESS");
    EXPECT_FALSE(j.contains("page_after"));
    auto p = parse_response(j.dump());
    ASSERT_TRUE(p) << p.error;
    ASSERT_TRUE(p.value->ok);
    ASSERT_TRUE(p.value->reply.has_value());
    EXPECT_EQ(p.value->reply->id, 7);
    EXPECT_EQ(p.value->reply->data, 1024u);
    r.status = local_status::timeout;
    r.page_after = std::vector<std::uint8_t>{0xde, 0xad};
    p = parse_response(format_reply(r).dump());
    ASSERT_TRUE(p) << p.error;
    EXPECT_EQ(p.value->reply->status, local_status::timeout);
    EXPECT_EQ(p.value->reply->page_after, r.page_after);
    EXPECT_EQ(format_reply(r)["status_name"], "TIMEOUT");
}

TEST(ctl_reply_format, errors_and_stats_round_trip) {
    auto p = parse_response(format_error("control ring full").dump());
    ASSERT_TRUE(p);
    EXPECT_FALSE(p.value->ok);
    EXPECT_EQ(p.value->error, "control ring full");
    p = parse_response(format_stats(json{{"sent", 3}}).dump());
    ASSERT_TRUE(p);
    ASSERT_TRUE(p.value->stats.has_value());
    EXPECT_EQ((*p.value->stats)["sent"], 3);
}

TEST(ctl_reply_parse, rejects_malformed_replies) {
    for (const char* bad : {"", "nope", "[]", R"({"error":"x"})", R"({"ok":"true"})", R"({"ok":false})",
                            R"({"ok":false,"error":5})", R"({"ok":true})", R"({"ok":true,"stats":[]})",
                            R"({"ok":true,"id":1,"type":1,"status":0})",
                            R"({"ok":true,"id":65536,"type":1,"status":0,"data":0})",
                            R"({"ok":true,"id":1,"type":1,"status":4294967296,"data":0})",
                            R"({"ok":true,"id":1,"type":1,"status":0,"data":-1})",
                            R"({"ok":true,"id":1,"type":1,"status":0,"data":0,"page_after":"x"})",
                            R"({"ok":true,"id":1,"type":1,"status":0,"data":0,"page_after":7})"})
        EXPECT_FALSE(parse_response(bad)) << bad;
    EXPECT_FALSE(parse_response(std::string(ctl_max_reply_line + 1, ' ')));
}

TEST(ctl_line, invalid_utf8_is_replaced_not_thrown) {
    const std::string bad = std::string("bad \xff\xfe bytes");
    std::string line;
    EXPECT_NO_THROW(line = to_line(format_error(bad)));
    EXPECT_EQ(line.back(), '\n');
    EXPECT_TRUE(parse_response(line.substr(0, line.size() - 1)));
}

TEST(ctl_hex, round_trip_and_strictness) {
    const std::vector<std::uint8_t> bytes{0x00, 0x7f, 0x80, 0xff};
    EXPECT_EQ(to_hex(bytes), "007f80ff");
    EXPECT_EQ(from_hex("007F80fF"), bytes);
    EXPECT_FALSE(from_hex("").has_value());
    EXPECT_FALSE(from_hex("0").has_value());
    EXPECT_FALSE(from_hex("0g").has_value());
    EXPECT_FALSE(from_hex("0x00").has_value());
    EXPECT_FALSE(from_hex("aabb", 1).has_value());
    EXPECT_TRUE(from_hex("aa", 1).has_value());
}

TEST(gref_list_page, layout_is_little_endian_8_bytes_per_entry) {
    const abi::gref_entry e[] = {{0x04030201u, abi::gref_flag_readonly, 0}, {0x00000010u, 0, 2}};
    const auto page = gref_list_page(e);
    EXPECT_EQ(page, (std::vector<std::uint8_t>{1, 2, 3, 4, 1, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 2, 0}));
}

TEST(gref_list_page, round_trips_up_to_512_entries) {
    std::vector<abi::gref_entry> in(ctl_max_gref_entries);
    for (std::size_t i = 0; i < in.size(); ++i)
        in[i] = {static_cast<std::uint32_t>(0x10000 + i * 7), static_cast<std::uint16_t>(i % 2),
                 static_cast<std::uint16_t>(i % 4)};
    const auto page = gref_list_page(in);
    EXPECT_EQ(page.size(), 4096u);
    const auto out = parse_gref_list_page(page, in.size());
    ASSERT_TRUE(out.has_value());
    for (std::size_t i = 0; i < in.size(); ++i) {
        EXPECT_EQ((*out)[i].ref, in[i].ref);
        EXPECT_EQ((*out)[i].flags, in[i].flags);
        EXPECT_EQ((*out)[i].status, in[i].status);
    }
    in.push_back({});
    EXPECT_THROW((void)gref_list_page(in), std::length_error);
}

TEST(gref_list_page, parse_checks_bounds) {
    const std::vector<std::uint8_t> page(16);
    EXPECT_TRUE(parse_gref_list_page(page, 2).has_value());
    EXPECT_FALSE(parse_gref_list_page(page, 3).has_value());
    EXPECT_FALSE(parse_gref_list_page(std::vector<std::uint8_t>(8192), 513).has_value());
    EXPECT_TRUE(parse_gref_list_page(page, 0).has_value());
}

TEST(gref_list_text, parses_refs_and_flags) {
    const auto r = parse_gref_list("10, 11:ro,0x20:rw");
    ASSERT_TRUE(r) << r.error;
    ASSERT_EQ(r.value->size(), 3u);
    EXPECT_EQ((*r.value)[0].ref, 10u);
    EXPECT_EQ((*r.value)[0].flags, 0);
    EXPECT_EQ((*r.value)[1].flags, abi::gref_flag_readonly);
    EXPECT_EQ((*r.value)[2].ref, 0x20u);
    EXPECT_EQ((*r.value)[2].flags, 0);
    for (const char* bad : {"", ",", "10,", "10,,11", "10:rx", "10:", "abc", "-1", "4294967296", "1:ro:ro"})
        EXPECT_FALSE(parse_gref_list(bad)) << bad;
    std::string many = "1";
    for (int i = 0; i < 512; ++i) many += ",1";
    EXPECT_FALSE(parse_gref_list(many)) << "513 entries";
}

TEST(u32_list, page_and_text) {
    const auto r = parse_u32_list("0,1,0xFFFFFFFF");
    ASSERT_TRUE(r) << r.error;
    EXPECT_EQ(u32_list_page(*r.value),
              (std::vector<std::uint8_t>{0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}));
    EXPECT_FALSE(parse_u32_list("1,x"));
    EXPECT_FALSE(parse_u32_list(""));
    EXPECT_THROW((void)u32_list_page(std::vector<std::uint32_t>(1025)), std::length_error);
}

}  // namespace
}  // namespace vifkit::ctrlfront
