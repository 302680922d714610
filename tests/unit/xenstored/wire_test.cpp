// The pure layers: wire framing/decoding, path rules, permission strings.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "vifkit/emu/xenstored/path.hpp"
#include "vifkit/emu/xenstored/perms.hpp"
#include "vifkit/emu/xenstored/wire.hpp"
#include "xs_test_util.hpp"

namespace vifkit::emu::xs {
namespace {

using test::strings;

std::span<const std::uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// The decoded request views the payload, so payloads are kept for the whole run.
decode_result decode_str(msg_type t, std::string payload, std::uint32_t tx = 0) {
    static std::deque<std::string> keep;
    keep.push_back(std::move(payload));
    const std::string& p = keep.back();
    const header h{static_cast<std::uint32_t>(t), 9, tx, static_cast<std::uint32_t>(p.size())};
    if (p.size() <= payload_max) test::write_xs_fuzz_seed(encode(t, 9, tx, p));
    return decode(h, bytes(p));
}

TEST(XsWire, HeaderNeedsSixteenBytes) {
    const std::string frame = encode(msg_type::read, 1, 2, strings({"/a"}));
    EXPECT_EQ(parse_header(bytes(frame.substr(0, 15))).status, header_status::incomplete);
    EXPECT_EQ(parse_header({}).status, header_status::incomplete);
    const auto r = parse_header(bytes(frame));
    ASSERT_EQ(r.status, header_status::ok);
    EXPECT_EQ(r.hdr.type, static_cast<std::uint32_t>(msg_type::read));
    EXPECT_EQ(r.hdr.req_id, 1u);
    EXPECT_EQ(r.hdr.tx_id, 2u);
    EXPECT_EQ(r.hdr.len, 3u);
}

TEST(XsWire, LengthOverPayloadMaxIsFatal) {
    header h{2, 0, 0, static_cast<std::uint32_t>(payload_max + 1)};
    std::string raw(sizeof(h), '\0');
    std::memcpy(raw.data(), &h, sizeof(h));
    EXPECT_EQ(parse_header(bytes(raw)).status, header_status::too_long);
    h.len = payload_max;
    std::memcpy(raw.data(), &h, sizeof(h));
    EXPECT_EQ(parse_header(bytes(raw)).status, header_status::ok);
}

TEST(XsWire, EncodeRoundTripsThroughDecode) {
    const std::string frame = encode(msg_type::write, 5, 6, strings({"/a/b"}) + "val");
    const auto h = parse_header(bytes(frame));
    ASSERT_EQ(h.status, header_status::ok);
    const auto d = decode(h.hdr, bytes(frame).subspan(header_size));
    ASSERT_EQ(d.error, 0);
    EXPECT_EQ(d.req.type, msg_type::write);
    EXPECT_EQ(d.req.req_id, 5u);
    EXPECT_EQ(d.req.tx_id, 6u);
    ASSERT_EQ(d.req.args.size(), 1u);
    EXPECT_EQ(d.req.args[0], "/a/b");
    EXPECT_EQ(d.req.data, "val");
}

TEST(XsWire, WriteValueMayHoldNuls) {
    const std::string payload = strings({"/a"}) + std::string("x\0y\0", 4);
    const auto d = decode_str(msg_type::write, payload);
    ASSERT_EQ(d.error, 0);
    EXPECT_EQ(d.req.data, std::string_view("x\0y\0", 4));
}

TEST(XsWire, WriteWithoutPathNulIsEinval) {
    EXPECT_EQ(decode_str(msg_type::write, "/a").error, EINVAL);
    EXPECT_EQ(decode_str(msg_type::write, "").error, EINVAL);
}

TEST(XsWire, OneArgRequestsNeedExactlyOneTerminatedString) {
    EXPECT_EQ(decode_str(msg_type::read, strings({"/a"})).error, 0);
    EXPECT_EQ(decode_str(msg_type::read, "/a").error, EINVAL);                  // no NUL
    EXPECT_EQ(decode_str(msg_type::read, "").error, EINVAL);                    // empty
    EXPECT_EQ(decode_str(msg_type::read, strings({"/a", "/b"})).error, EINVAL); // two
    EXPECT_EQ(decode_str(msg_type::rm, strings({"/a"}) + "x").error, EINVAL);   // junk after
}

TEST(XsWire, WatchNeedsPathAndToken) {
    const auto ok = decode_str(msg_type::watch, strings({"/a", "tok"}));
    ASSERT_EQ(ok.error, 0);
    EXPECT_EQ(ok.req.args[1], "tok");
    EXPECT_EQ(decode_str(msg_type::watch, strings({"/a"})).error, EINVAL);
    EXPECT_EQ(decode_str(msg_type::watch, strings({"/a", "t", "x"})).error, EINVAL);
    EXPECT_EQ(decode_str(msg_type::unwatch, strings({"/a"}) + "tok").error, EINVAL);
}

TEST(XsWire, SetPermsNeedsAtLeastOnePerm) {
    EXPECT_EQ(decode_str(msg_type::set_perms, strings({"/a", "n0"})).error, 0);
    EXPECT_EQ(decode_str(msg_type::set_perms, strings({"/a", "n0", "r5"})).error, 0);
    EXPECT_EQ(decode_str(msg_type::set_perms, strings({"/a"})).error, EINVAL);
}

TEST(XsWire, IntroduceNeedsThreeStrings) {
    EXPECT_EQ(decode_str(msg_type::introduce, strings({"5", "0", "1"})).error, 0);
    EXPECT_EQ(decode_str(msg_type::introduce, strings({"5", "0"})).error, EINVAL);
}

TEST(XsWire, TransactionStartIgnoresPayload) {
    EXPECT_EQ(decode_str(msg_type::transaction_start, strings({""})).error, 0);
    EXPECT_EQ(decode_str(msg_type::transaction_start, "").error, 0);
}

TEST(XsWire, NonRequestTypesAreEnosys) {
    EXPECT_EQ(decode_str(msg_type::watch_event, strings({"/a", "t"})).error, ENOSYS);
    EXPECT_EQ(decode_str(msg_type::error, strings({"EINVAL"})).error, ENOSYS);
    const std::string p = strings({"/a"});
    for (std::uint32_t t : {20u, 23u, 0xffffu, 0xffffffffu}) {
        const header h{t, 1, 0, static_cast<std::uint32_t>(p.size())};
        EXPECT_EQ(decode(h, bytes(p)).error, ENOSYS) << t;
    }
}

TEST(XsWire, DecodeRejectsLengthMismatch) {
    const std::string p = strings({"/a"});
    const header h{static_cast<std::uint32_t>(msg_type::read), 1, 0, 99};
    EXPECT_EQ(decode(h, bytes(p)).error, EINVAL);
}

TEST(XsWire, DecodeErrorStillCarriesIdsForTheReply) {
    const auto d = decode_str(msg_type::read, "junk", 4);
    EXPECT_EQ(d.error, EINVAL);
    EXPECT_EQ(d.req.req_id, 9u);
    EXPECT_EQ(d.req.tx_id, 4u);
}

TEST(XsWire, SplitStringsReportsTrailingBytes) {
    bool trailing = false;
    auto v = split_strings(std::string_view("a\0bc\0d", 6), &trailing);
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[0], "a");
    EXPECT_EQ(v[1], "bc");
    EXPECT_TRUE(trailing);
    v = split_strings(std::string_view("\0\0", 2), &trailing);
    EXPECT_EQ(v.size(), 2u);
    EXPECT_FALSE(trailing);
}

TEST(XsWire, ErrorNamesMatchXenstored) {
    EXPECT_STREQ(error_name(ENOENT), "ENOENT");
    EXPECT_STREQ(error_name(EACCES), "EACCES");
    EXPECT_STREQ(error_name(EAGAIN), "EAGAIN");
    EXPECT_STREQ(error_name(E2BIG), "E2BIG");
    EXPECT_STREQ(error_name(ENOTTY), "EINVAL");  // no protocol name: EINVAL
    EXPECT_EQ(error_from_name("ENOSPC"), ENOSPC);
    EXPECT_EQ(error_from_name("EWHATEVER"), EINVAL);
}

TEST(XsPath, ValidNames) {
    EXPECT_TRUE(is_valid_path("/"));
    EXPECT_TRUE(is_valid_path("/local/domain/0/backend/vif/5/0"));
    EXPECT_TRUE(is_valid_path("/a-b_c@d/E9"));
    EXPECT_FALSE(is_valid_path(""));
    EXPECT_FALSE(is_valid_path("a/b"));
    EXPECT_FALSE(is_valid_path("/a/"));
    EXPECT_FALSE(is_valid_path("/a//b"));
    EXPECT_FALSE(is_valid_path("/a b"));
    EXPECT_FALSE(is_valid_path("/a.b"));
    EXPECT_FALSE(is_valid_path("/" + std::string(abs_path_max, 'x')));
    EXPECT_TRUE(is_valid_path("/" + std::string(abs_path_max - 1, 'x')));
}

TEST(XsPath, CanonicalizeRelativeAndSpecial) {
    EXPECT_EQ(canonicalize("device/vif/0", 5, false), "/local/domain/5/device/vif/0");
    EXPECT_EQ(canonicalize("/abs", 5, false), "/abs");
    EXPECT_EQ(canonicalize("", 5, false), std::nullopt);
    EXPECT_EQ(canonicalize("bad/", 5, false), std::nullopt);
    EXPECT_EQ(canonicalize(std::string(rel_path_max + 1, 'x'), 5, false), std::nullopt);
    EXPECT_EQ(canonicalize("@releaseDomain", 0, true), "@releaseDomain");
    EXPECT_EQ(canonicalize("@releaseDomain", 0, false), std::nullopt);
    EXPECT_EQ(canonicalize("@other", 0, true), std::nullopt);
}

TEST(XsPath, Ancestry) {
    EXPECT_EQ(parent_of("/a/b"), "/a");
    EXPECT_EQ(parent_of("/a"), "/");
    EXPECT_EQ(basename_of("/a/b"), "b");
    EXPECT_EQ(child_path("/", "x"), "/x");
    EXPECT_TRUE(is_at_or_below("/a/b", "/a"));
    EXPECT_TRUE(is_at_or_below("/a", "/a"));
    EXPECT_FALSE(is_at_or_below("/ab", "/a"));
    EXPECT_TRUE(is_at_or_below("/x", "/"));
    EXPECT_FALSE(is_at_or_below("@releaseDomain", "/"));
}

TEST(XsPermStrings, ParseAndFormat) {
    EXPECT_EQ(parse_perm("r5"), (perm{5, access_read}));
    EXPECT_EQ(parse_perm("b0"), (perm{0, access_read | access_write}));
    EXPECT_EQ(parse_perm("n65535"), (perm{65535, access_none}));
    EXPECT_EQ(parse_perm("w12"), (perm{12, access_write}));
    EXPECT_EQ(parse_perm("x5"), std::nullopt);
    EXPECT_EQ(parse_perm("r"), std::nullopt);
    EXPECT_EQ(parse_perm("r-1"), std::nullopt);
    EXPECT_EQ(parse_perm("r5x"), std::nullopt);
    EXPECT_EQ(parse_perm("r65536"), std::nullopt);
    EXPECT_EQ(format_perm({7, access_read | access_write}), "b7");
    EXPECT_EQ(format_perm({0, access_none}), "n0");
}

TEST(XsPermStrings, OwnerAclDefaultAndPrivilege) {
    const perm_list p{{5, access_none}, {6, access_read}, {7, access_read | access_write}};
    const unsigned all = access_read | access_write | access_owner;
    EXPECT_EQ(access_for(caller::dom0(), p), all);
    EXPECT_EQ(access_for(caller::domain(5), p), all);
    EXPECT_EQ(access_for(caller::domain(6), p), access_read);
    EXPECT_EQ(access_for(caller::domain(7), p), access_read | access_write);
    EXPECT_EQ(access_for(caller::domain(8), p), access_none);
    const perm_list readable{{0, access_read}};
    EXPECT_EQ(access_for(caller::domain(8), readable), access_read);
    EXPECT_TRUE(caller::domain(0).privileged);
}

}  // namespace
}  // namespace vifkit::emu::xs
