// Control-ring hash messages (types 1-7) and queue selection against a real
// emulated frontend (netif-spec §2.3, Linux netback column; XSA-270 for
// SET_HASH_MAPPING). One test per message for the valid case and each
// invalid parameter or boundary.
#include <cstring>

#include "ctrl_fixture.hpp"
#include "frames.hpp"

namespace vifkit::ctrl::test {
namespace {

namespace ty = abi::ctrl_type;
namespace st = abi::ctrl_status;

constexpr unsigned queues = 4;

class CtrlHash : public CtrlFixture {
protected:
    CtrlHash() { reset_handler(static_grant_limits{}, queues); }

    // A page granted to the backend holding `bytes` at offset 0.
    grant_ref_t page_with(std::span<const std::uint8_t> bytes, bool writable = true) {
        const auto ref = front_.share(0, 1, writable).at(0);
        front_.write(ref, 0, bytes);
        return ref;
    }
    grant_ref_t page_with_table(std::span<const std::uint32_t> entries) {
        std::vector<std::uint8_t> b(entries.size() * 4);
        if (!b.empty()) std::memcpy(b.data(), entries.data(), b.size());
        return page_with(b);
    }
    void enable_toeplitz(std::uint32_t flags = hash_type::all) {
        ASSERT_EQ(call(ty::set_hash_algorithm, hash_algorithm::toeplitz).status, st::success);
        ASSERT_EQ(call(ty::set_hash_flags, flags).status, st::success);
        ASSERT_EQ(call(ty::set_hash_key, page_with(rss_key), 40).status, st::success);
    }
    std::vector<std::uint32_t> mapping() const {
        const auto m = h_->hash_mapping();
        return {m.begin(), m.end()};
    }
};

// ---- unknown types ----

TEST_F(CtrlHash, UnknownTypesAreNotSupported) {
    for (const std::uint16_t type : {std::uint16_t{0}, std::uint16_t{11}, std::uint16_t{12},
                                     std::uint16_t{0xFFFF}}) {
        const auto rsp = call(type, 1, 2, 3);
        EXPECT_EQ(rsp.status, st::not_supported) << type;
        EXPECT_EQ(rsp.data, 0U) << type;
    }
    const auto s = h_->stats()["requests"];
    EXPECT_EQ(s["invalid"]["not_supported"], 1);
    EXPECT_EQ(s["unknown"]["not_supported"], 3);
}

// ---- SET_HASH_ALGORITHM ----

TEST_F(CtrlHash, SetAlgorithmAcceptsToeplitzAndNone) {
    EXPECT_EQ(h_->hash_algorithm(), hash_algorithm::none);  // default
    EXPECT_EQ(call(ty::set_hash_algorithm, hash_algorithm::toeplitz).status, st::success);
    EXPECT_EQ(h_->hash_algorithm(), hash_algorithm::toeplitz);
    EXPECT_EQ(call(ty::set_hash_algorithm, hash_algorithm::none).status, st::success);
    EXPECT_EQ(h_->hash_algorithm(), hash_algorithm::none);
}

TEST_F(CtrlHash, SetAlgorithmRejectsUnknown) {
    ASSERT_EQ(call(ty::set_hash_algorithm, hash_algorithm::toeplitz).status, st::success);
    for (const std::uint32_t alg : {2U, 0xFFFFFFFFU}) {
        EXPECT_EQ(call(ty::set_hash_algorithm, alg).status, st::invalid_parameter) << alg;
        EXPECT_EQ(h_->hash_algorithm(), hash_algorithm::toeplitz);  // unchanged
    }
}

// ---- GET_HASH_FLAGS ----

TEST_F(CtrlHash, GetFlagsNotSupportedWithAlgorithmNone) {
    const auto rsp = call(ty::get_hash_flags);
    EXPECT_EQ(rsp.status, st::not_supported);
    EXPECT_EQ(rsp.data, 0U);
}

TEST_F(CtrlHash, GetFlagsReportsAllFourTypes) {
    ASSERT_EQ(call(ty::set_hash_algorithm, hash_algorithm::toeplitz).status, st::success);
    const auto rsp = call(ty::get_hash_flags);
    EXPECT_EQ(rsp.status, st::success);
    EXPECT_EQ(rsp.data, 0xFU);
}

// ---- SET_HASH_FLAGS ----

TEST_F(CtrlHash, SetFlagsValid) {
    ASSERT_EQ(call(ty::set_hash_algorithm, hash_algorithm::toeplitz).status, st::success);
    EXPECT_EQ(call(ty::set_hash_flags, hash_type::ipv4 | hash_type::ipv6_tcp).status, st::success);
    EXPECT_EQ(h_->hash_flags(), hash_type::ipv4 | hash_type::ipv6_tcp);
    EXPECT_EQ(call(ty::set_hash_flags, 0).status, st::success);  // 0 disables
    EXPECT_EQ(h_->hash_flags(), 0U);
}

TEST_F(CtrlHash, SetFlagsRejectsUnknownBits) {
    ASSERT_EQ(call(ty::set_hash_algorithm, hash_algorithm::toeplitz).status, st::success);
    ASSERT_EQ(call(ty::set_hash_flags, hash_type::ipv4).status, st::success);
    for (const std::uint32_t f : {0x10U, 0x1FU, 0x80000000U}) {
        EXPECT_EQ(call(ty::set_hash_flags, f).status, st::invalid_parameter) << f;
        EXPECT_EQ(h_->hash_flags(), hash_type::ipv4);
    }
}

TEST_F(CtrlHash, SetFlagsRejectedWithAlgorithmNone) {
    EXPECT_EQ(call(ty::set_hash_flags, hash_type::ipv4).status, st::invalid_parameter);
    EXPECT_EQ(h_->hash_flags(), 0U);
}

// ---- SET_HASH_KEY ----

TEST_F(CtrlHash, SetKeyCopiesFromTheFrontendPage) {
    const auto ref = page_with(rss_key);
    EXPECT_EQ(call(ty::set_hash_key, ref, 40).status, st::success);
    EXPECT_TRUE(std::equal(rss_key.begin(), rss_key.end(), h_->hash_key().begin()));
    // Copied once: later writes to the page change nothing.
    front_.write(ref, 0, std::vector<std::uint8_t>(40, 0x11));
    EXPECT_TRUE(std::equal(rss_key.begin(), rss_key.end(), h_->hash_key().begin()));
}

TEST_F(CtrlHash, SetKeyLongerThan40IsInvalid) {
    ASSERT_EQ(call(ty::set_hash_key, page_with(rss_key), 40).status, st::success);
    const auto copies_before = copies();
    const auto other = page_with(std::vector<std::uint8_t>(64, 0x22));
    for (const std::uint32_t len : {41U, 4096U, 0xFFFFFFFFU})
        EXPECT_EQ(call(ty::set_hash_key, other, len).status, st::invalid_parameter) << len;
    EXPECT_EQ(copies(), copies_before);  // rejected before any grant access
    EXPECT_TRUE(std::equal(rss_key.begin(), rss_key.end(), h_->hash_key().begin()));
}

TEST_F(CtrlHash, SetKeyShortZeroFillsTheRest) {
    ASSERT_EQ(call(ty::set_hash_key, page_with(std::vector<std::uint8_t>(40, 0x55)), 40).status, st::success);
    ASSERT_EQ(call(ty::set_hash_key, page_with(std::span(rss_key).first(4)), 4).status, st::success);
    const auto k = h_->hash_key();
    EXPECT_TRUE(std::equal(k.begin(), k.begin() + 4, rss_key.begin()));
    EXPECT_TRUE(std::all_of(k.begin() + 4, k.end(), [](std::uint8_t b) { return b == 0; }));
    // netif-spec §2.5 short-key check: 4-byte key on the row-1 IPv4/TCP input.
    ASSERT_EQ(call(ty::set_hash_algorithm, hash_algorithm::toeplitz).status, st::success);
    ASSERT_EQ(call(ty::set_hash_flags, hash_type::all).status, st::success);
    const auto s = h_->select_queue(frame_builder{}.ipv4(ipv4_rows[0]));
    EXPECT_TRUE(s.has_hash);
    EXPECT_EQ(s.hash, 0x166bbb34U);
}

TEST_F(CtrlHash, SetKeyZeroLengthClearsTheKey) {
    enable_toeplitz();
    const auto f = frame_builder{}.ipv4(ipv4_rows[0]);
    ASSERT_EQ(h_->select_queue(f).hash, ipv4_rows[0].tcp_hash);
    const auto copies_before = copies();
    EXPECT_EQ(call(ty::set_hash_key, 0xDEAD, 0).status, st::success);  // no page needed
    EXPECT_EQ(copies(), copies_before);
    EXPECT_TRUE(std::all_of(h_->hash_key().begin(), h_->hash_key().end(), [](std::uint8_t b) { return b == 0; }));
    const auto s = h_->select_queue(f);
    EXPECT_TRUE(s.has_hash);
    EXPECT_EQ(s.hash, 0U);
    EXPECT_EQ(s.queue, 0U);
}

TEST_F(CtrlHash, SetKeyFromUngrantedPageIsInvalidAndKeepsTheKey) {
    ASSERT_EQ(call(ty::set_hash_key, page_with(rss_key), 40).status, st::success);
    EXPECT_EQ(call(ty::set_hash_key, 1500, 40).status, st::invalid_parameter);   // never granted
    EXPECT_EQ(call(ty::set_hash_key, 1 << 20, 40).status, st::invalid_parameter);  // outside table
    const auto to_other = front_.share(9, 1, true).at(0);  // granted to another domain
    EXPECT_EQ(call(ty::set_hash_key, to_other, 8).status, st::invalid_parameter);
    EXPECT_TRUE(std::equal(rss_key.begin(), rss_key.end(), h_->hash_key().begin()));
    EXPECT_GE(h_->stats()["copy_errors"].get<int>(), 3);
}

TEST_F(CtrlHash, SetKeyFromReadOnlyPageIsAllowed) {
    // Spec: the key page "may be read-only"; the backend only reads it.
    const auto ro = page_with(rss_key, false);
    EXPECT_EQ(call(ty::set_hash_key, ro, 40).status, st::success);
    EXPECT_TRUE(std::equal(rss_key.begin(), rss_key.end(), h_->hash_key().begin()));
    EXPECT_EQ(front_.unshare(std::vector<grant_ref_t>{ro}),
              std::vector<gnt_status>{gnt_status::okay});  // the copy left no pin behind
}

// ---- GET_HASH_MAPPING_SIZE / SET_HASH_MAPPING_SIZE ----

TEST_F(CtrlHash, GetMappingSizeIs128) {
    const auto rsp = call(ty::get_hash_mapping_size);
    EXPECT_EQ(rsp.status, st::success);
    EXPECT_EQ(rsp.data, 128U);
}

TEST_F(CtrlHash, SetMappingSizeValidZeroFills) {
    ASSERT_EQ(call(ty::set_hash_mapping_size, 8).status, st::success);
    const std::vector<std::uint32_t> t = {1, 2, 3, 1, 2, 3, 1, 2};
    ASSERT_EQ(call(ty::set_hash_mapping, page_with_table(t), 8, 0).status, st::success);
    ASSERT_EQ(mapping(), t);
    EXPECT_EQ(call(ty::set_hash_mapping_size, 128).status, st::success);  // the maximum
    EXPECT_EQ(mapping(), std::vector<std::uint32_t>(128, 0));
    EXPECT_EQ(call(ty::set_hash_mapping_size, 0).status, st::success);  // modulo mode
    EXPECT_TRUE(mapping().empty());
}

TEST_F(CtrlHash, SetMappingSizeAbove128IsInvalid) {
    ASSERT_EQ(call(ty::set_hash_mapping_size, 16).status, st::success);
    for (const std::uint32_t n : {129U, 4096U, 0xFFFFFFFFU})
        EXPECT_EQ(call(ty::set_hash_mapping_size, n).status, st::invalid_parameter) << n;
    EXPECT_EQ(mapping().size(), 16U);
}

// ---- SET_HASH_MAPPING ----

TEST_F(CtrlHash, SetMappingValidAndSubTablesKeepUntouchedRanges) {
    ASSERT_EQ(call(ty::set_hash_mapping_size, 8).status, st::success);
    const std::vector<std::uint32_t> a = {3, 2, 1, 0};
    ASSERT_EQ(call(ty::set_hash_mapping, page_with_table(a), 4, 2).status, st::success);
    EXPECT_EQ(mapping(), (std::vector<std::uint32_t>{0, 0, 3, 2, 1, 0, 0, 0}));
    const std::vector<std::uint32_t> b = {1, 1};
    ASSERT_EQ(call(ty::set_hash_mapping, page_with_table(b), 2, 6).status, st::success);
    EXPECT_EQ(mapping(), (std::vector<std::uint32_t>{0, 0, 3, 2, 1, 0, 1, 1}));
    // Zero entries: nothing to copy, success, nothing changes.
    EXPECT_EQ(call(ty::set_hash_mapping, 0xDEAD, 0, 8).status, st::success);
    EXPECT_EQ(mapping(), (std::vector<std::uint32_t>{0, 0, 3, 2, 1, 0, 1, 1}));
}

TEST_F(CtrlHash, SetMappingEntryOutOfRangeKeepsTheOldTable) {
    ASSERT_EQ(call(ty::set_hash_mapping_size, 4).status, st::success);
    const std::vector<std::uint32_t> good = {1, 2, 3, 0};
    ASSERT_EQ(call(ty::set_hash_mapping, page_with_table(good), 4, 0).status, st::success);
    for (const std::uint32_t bad_q : {queues, queues + 1, 0xFFFFFFFFU}) {
        const std::vector<std::uint32_t> bad = {0, 1, bad_q, 2};
        EXPECT_EQ(call(ty::set_hash_mapping, page_with_table(bad), 4, 0).status, st::invalid_parameter);
        EXPECT_EQ(mapping(), good);
    }
    // Only the copied range is validated against num_queues, and it is applied.
    const std::vector<std::uint32_t> last = {queues - 1};
    EXPECT_EQ(call(ty::set_hash_mapping, page_with_table(last), 1, 3).status, st::success);
    EXPECT_EQ(mapping(), (std::vector<std::uint32_t>{1, 2, 3, queues - 1}));
}

TEST_F(CtrlHash, SetMappingOffsetPlusLengthOverflowIsInvalid) {
    ASSERT_EQ(call(ty::set_hash_mapping_size, 128).status, st::success);
    const auto ref = page_with_table(std::vector<std::uint32_t>(4, 1));
    const auto copies_before = copies();
    EXPECT_EQ(call(ty::set_hash_mapping, ref, 2, 0xFFFFFFFFU).status, st::invalid_parameter);
    EXPECT_EQ(call(ty::set_hash_mapping, ref, 0xFFFFFFFFU, 1).status, st::invalid_parameter);
    EXPECT_EQ(copies(), copies_before);
}

TEST_F(CtrlHash, SetMappingBeyondTableSizeIsInvalid) {
    ASSERT_EQ(call(ty::set_hash_mapping_size, 8).status, st::success);
    const auto ref = page_with_table(std::vector<std::uint32_t>(16, 1));
    EXPECT_EQ(call(ty::set_hash_mapping, ref, 9, 0).status, st::invalid_parameter);
    EXPECT_EQ(call(ty::set_hash_mapping, ref, 1, 8).status, st::invalid_parameter);
    EXPECT_EQ(call(ty::set_hash_mapping, ref, 4, 5).status, st::invalid_parameter);
    EXPECT_EQ(call(ty::set_hash_mapping, ref, 8, 0).status, st::success);  // exactly the table
    EXPECT_EQ(mapping(), std::vector<std::uint32_t>(8, 1));
    ASSERT_EQ(call(ty::set_hash_mapping_size, 0).status, st::success);
    EXPECT_EQ(call(ty::set_hash_mapping, ref, 1, 0).status, st::invalid_parameter);  // modulo mode
}

TEST_F(CtrlHash, SetMappingMoreThanAPageIsInvalid) {
    ASSERT_EQ(call(ty::set_hash_mapping_size, 128).status, st::success);
    EXPECT_EQ(call(ty::set_hash_mapping, page_with_table({}), 1025, 0).status, st::invalid_parameter);
    EXPECT_EQ(mapping(), std::vector<std::uint32_t>(128, 0));
}

TEST_F(CtrlHash, SetMappingFromUngrantedPageKeepsTheOldTable) {
    ASSERT_EQ(call(ty::set_hash_mapping_size, 4).status, st::success);
    const std::vector<std::uint32_t> good = {3, 3, 3, 3};
    ASSERT_EQ(call(ty::set_hash_mapping, page_with_table(good), 4, 0).status, st::success);
    EXPECT_EQ(call(ty::set_hash_mapping, 1700, 4, 0).status, st::invalid_parameter);
    EXPECT_EQ(mapping(), good);
}

// ---- select_queue ----

TEST_F(CtrlHash, SelectQueueWithAlgorithmNoneIsQueueZeroWithoutHash) {
    const auto s = h_->select_queue(frame_builder{}.ipv4(ipv4_rows[0]));
    EXPECT_EQ(s.queue, 0U);
    EXPECT_FALSE(s.has_hash);
}

TEST_F(CtrlHash, SelectQueueModuloMode) {
    enable_toeplitz();
    for (const auto& r : ipv4_rows) {
        const auto s = h_->select_queue(frame_builder{}.ipv4(r));
        EXPECT_TRUE(s.has_hash);
        EXPECT_EQ(s.hash, r.tcp_hash);
        EXPECT_EQ(s.hash_type, hash_type::ipv4_tcp);
        EXPECT_EQ(s.extra_type, 1);  // _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP
        EXPECT_EQ(s.queue, r.tcp_hash % queues);
    }
    for (const auto& r : ipv6_rows) {
        const auto s = h_->select_queue(frame_builder{}.ipv6(r, 17));  // UDP: address hash
        EXPECT_EQ(s.hash, r.addr_hash);
        EXPECT_EQ(s.hash_type, hash_type::ipv6);
        EXPECT_EQ(s.extra_type, 2);
        EXPECT_EQ(s.queue, r.addr_hash % queues);
    }
}

TEST_F(CtrlHash, SelectQueueTableMode) {
    enable_toeplitz();
    ASSERT_EQ(call(ty::set_hash_mapping_size, 128).status, st::success);
    std::vector<std::uint32_t> t(128);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::uint32_t>((i * 7 + 1) % queues);
    ASSERT_EQ(call(ty::set_hash_mapping, page_with_table(t), 128, 0).status, st::success);
    for (const auto& r : ipv4_rows) {
        const auto s = h_->select_queue(frame_builder{}.ipv4(r));
        EXPECT_EQ(s.queue, t[r.tcp_hash % 128]);
    }
    // A frame with no applicable type steers with hash 0 (Linux clears the skb hash).
    auto arp = frame_builder{}.ipv4(ipv4_rows[0]);
    arp[13] = std::byte{0x06};
    const auto s = h_->select_queue(arp);
    EXPECT_FALSE(s.has_hash);
    EXPECT_EQ(s.queue, t[0]);
}

TEST_F(CtrlHash, SelectQueueHonoursTheEnabledTypes) {
    enable_toeplitz(hash_type::ipv4);
    const auto& r = ipv4_rows[1];
    const auto s = h_->select_queue(frame_builder{}.ipv4(r));
    EXPECT_EQ(s.hash, r.addr_hash);
    EXPECT_EQ(s.hash_type, hash_type::ipv4);
    EXPECT_FALSE(h_->select_queue(frame_builder{}.ipv6(ipv6_rows[0])).has_hash);
}

TEST_F(CtrlHash, StatsCountRequestsByTypeAndStatus) {
    (void)call(ty::get_hash_flags);                                    // not_supported
    (void)call(ty::set_hash_algorithm, hash_algorithm::toeplitz);      // success
    (void)call(ty::set_hash_algorithm, 7);                             // invalid
    (void)call(ty::get_hash_flags);                                    // success
    const auto s = h_->stats();
    EXPECT_EQ(s["requests"]["get_hash_flags"]["not_supported"], 1);
    EXPECT_EQ(s["requests"]["get_hash_flags"]["success"], 1);
    EXPECT_EQ(s["requests"]["set_hash_algorithm"]["success"], 1);
    EXPECT_EQ(s["requests"]["set_hash_algorithm"]["invalid_parameter"], 1);
    EXPECT_EQ(s["hash"]["algorithm"], hash_algorithm::toeplitz);
}

}  // namespace
}  // namespace vifkit::ctrl::test
