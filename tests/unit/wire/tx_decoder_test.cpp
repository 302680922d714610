// wire::decode_tx_packet against netif-spec §4.3 (guest transmit rules and
// Linux netback's verdicts). Windows are built with tx_window (tx_window.hpp).
#include <gtest/gtest.h>

#include <array>
#include <cstdint>

#include "tx_window.hpp"
#include "vifkit/abi/netif.hpp"
#include "vifkit/wire/tx_decoder.hpp"

namespace vifkit::wire {
namespace {

using testing::decode;
using testing::gso_extra;
using testing::hash_extra;
using testing::mcast_extra;
using testing::raw_extra;
using testing::tx_window;

tx_limits gso_limits() {
    tx_limits l;
    l.gso_tcpv4 = true;
    l.gso_tcpv6 = true;
    return l;
}

// Sum of the data lengths the packet describes (slot 0 counts first_len).
std::uint32_t sum_of_slots(const tx_window& w, const tx_packet& p) {
    std::uint32_t sum = p.first_len;
    for (unsigned s = 1; s < p.nr_slots; ++s) sum += w.reqs().at(p.data_index[s]).size;
    return sum;
}

// ---- §4.3 "Packet = first request [+ extras] [+ more requests]" ----

TEST(Spec4_3_TxChain, EmptyWindowNeedsMore) {
    const tx_window w;
    EXPECT_EQ(decode(w).verdict, tx_verdict::need_more);
}

TEST(Spec4_3_TxChain, SingleSlotPacketFirstLenIsSize) {
    tx_window w;
    w.packet(60, {}, {}, abi::txf::csum_blank | abi::txf::data_validated);
    const auto d = decode(w);
    ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
    EXPECT_EQ(d.pkt.total_len, 60u);
    EXPECT_EQ(d.pkt.first_len, 60u);
    EXPECT_EQ(d.pkt.nr_slots, 1u);
    EXPECT_EQ(d.pkt.nr_extras, 0u);
    EXPECT_EQ(d.pkt.consumed, 1u);
    EXPECT_EQ(d.pkt.data_index[0], 0u);
    EXPECT_EQ(d.pkt.flags, abi::txf::csum_blank | abi::txf::data_validated);
    EXPECT_FALSE(d.pkt.has_gso || d.pkt.has_hash || d.pkt.has_mcast);
}

TEST(Spec4_3_TxChain, MultiSlotFirstFragmentIsTotalMinusOthers) {
    tx_window w;
    w.packet(1000, {300, 200});
    const auto d = decode(w);
    ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
    EXPECT_EQ(d.pkt.total_len, 1000u);
    EXPECT_EQ(d.pkt.first_len, 500u);
    EXPECT_EQ(d.pkt.nr_slots, 3u);
    EXPECT_EQ(d.pkt.consumed, 3u);
    EXPECT_EQ(d.pkt.data_index[0], 0u);
    EXPECT_EQ(d.pkt.data_index[1], 1u);
    EXPECT_EQ(d.pkt.data_index[2], 2u);
    EXPECT_EQ(sum_of_slots(w, d.pkt), d.pkt.total_len);
    EXPECT_EQ(d.pkt.flags & abi::txf::more_data, abi::txf::more_data);
}

TEST(Spec4_3_TxChain, IncompleteChainNeedsMoreThenOk) {
    tx_window w;
    w.req(1000, abi::txf::more_data);
    EXPECT_EQ(decode(w).verdict, tx_verdict::need_more);
    w.req(300, abi::txf::more_data);
    EXPECT_EQ(decode(w).verdict, tx_verdict::need_more);
    w.req(200);
    const auto d = decode(w);
    ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
    EXPECT_EQ(d.pkt.nr_slots, 3u);
    EXPECT_EQ(d.pkt.consumed, 3u);
    EXPECT_EQ(d.pkt.first_len, 500u);
}

TEST(Spec4_3_TxChain, WindowWithTwoPacketsDecodesTheFirstOnly) {
    tx_window w;
    w.packet(100, {40}).packet(80);
    const auto a = decode(w);
    ASSERT_EQ(a.verdict, tx_verdict::ok) << a.reason;
    EXPECT_EQ(a.pkt.total_len, 100u);
    EXPECT_EQ(a.pkt.consumed, 2u);
    EXPECT_EQ(a.pkt.nr_slots, 2u);
    const auto b = decode_tx_packet(w.span().subspan(a.pkt.consumed), {});
    ASSERT_EQ(b.verdict, tx_verdict::ok) << b.reason;
    EXPECT_EQ(b.pkt.total_len, 80u);
    EXPECT_EQ(b.pkt.first_len, 80u);
    EXPECT_EQ(b.pkt.consumed, 1u);
}

// "a slot larger than the remaining packet size → drop"
TEST(Spec4_3_TxChain, FragmentLargerThanRemainingSizeDrops) {
    {
        tx_window w;
        w.packet(100, {50, 36});  // exactly fits: first slot keeps 14
        const auto d = decode(w);
        ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
        EXPECT_EQ(d.pkt.first_len, 14u);
    }
    {
        tx_window w;
        w.packet(100, {50, 51});  // one byte too many
        const auto d = decode(w);
        EXPECT_EQ(d.verdict, tx_verdict::drop);
        EXPECT_EQ(d.pkt.consumed, 3u);
        EXPECT_STRNE(d.reason, "");
    }
    {
        tx_window w;
        w.packet(50, {60});  // the first following slot alone exceeds the total
        const auto d = decode(w);
        EXPECT_EQ(d.verdict, tx_verdict::drop);
        EXPECT_EQ(d.pkt.consumed, 2u);
    }
}

TEST(Spec4_3_TxChain, DroppedPacketStillConsumesTheWholeChain) {
    tx_window w;
    w.packet(100, {200, 10, 10}).packet(60);
    const auto d = decode(w);
    EXPECT_EQ(d.verdict, tx_verdict::drop);
    EXPECT_EQ(d.pkt.consumed, 4u);  // the next packet starts right after
    const auto next = decode_tx_packet(w.span().subspan(d.pkt.consumed), {});
    ASSERT_EQ(next.verdict, tx_verdict::ok) << next.reason;
    EXPECT_EQ(next.pkt.total_len, 60u);
}

// "first size < 14 (ETH_HLEN) → ERROR"
TEST(Spec4_3_TxChain, FirstSizeBelowEthHlenDrops) {
    for (std::uint16_t size : {0, 1, 13}) {
        tx_window w;
        w.packet(size);
        const auto d = decode(w);
        EXPECT_EQ(d.verdict, tx_verdict::drop) << "size " << size;
        EXPECT_EQ(d.pkt.consumed, 1u);
    }
    tx_window w;
    w.packet(abi::eth_hlen);
    const auto d = decode(w);
    ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
    EXPECT_EQ(d.pkt.first_len, abi::eth_hlen);
}

// "zero-length fragments → answer OKAY (XSA-448)"
TEST(Spec4_3_TxChain, Xsa448ZeroSizeFollowingFragmentIsOk) {
    {
        tx_window w;
        w.packet(100, {0});
        const auto d = decode(w);
        ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
        EXPECT_EQ(d.pkt.nr_slots, 2u);
        EXPECT_EQ(d.pkt.first_len, 100u);
        EXPECT_EQ(d.pkt.consumed, 2u);
    }
    {
        tx_window w;
        w.packet(100, {0, 40, 0});
        const auto d = decode(w);
        ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
        EXPECT_EQ(d.pkt.nr_slots, 4u);
        EXPECT_EQ(d.pkt.first_len, 60u);
        EXPECT_EQ(sum_of_slots(w, d.pkt), 100u);
    }
}

// ---- §4.3 slot-count limits (XEN_NETBK_LEGACY_SLOTS_MAX 18, fatal_skb_slots 20) ----

TEST(Spec4_3_TxSlotLimits, DefaultsMatchLinuxNetback) {
    const tx_limits l;
    EXPECT_EQ(l.max_further_slots, 18u);
    EXPECT_EQ(l.fatal_slots, 20u);
    EXPECT_FALSE(l.gso_tcpv4 || l.gso_tcpv6 || l.multicast_control);
}

TEST(Spec4_3_TxSlotLimits, FirstPlusEighteenFurtherSlotsOk) {
    tx_window w;
    w.chain(18, 10);
    const auto d = decode(w);
    ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
    EXPECT_EQ(d.pkt.nr_slots, 19u);
    EXPECT_EQ(d.pkt.consumed, 19u);
    EXPECT_EQ(d.pkt.first_len, 64u);
    for (unsigned s = 0; s < d.pkt.nr_slots; ++s) EXPECT_EQ(d.pkt.data_index[s], s);
    EXPECT_EQ(sum_of_slots(w, d.pkt), d.pkt.total_len);
}

TEST(Spec4_3_TxSlotLimits, NineteenOrTwentyFurtherSlotsDropWithAllSlotsConsumed) {
    for (unsigned further : {19u, 20u}) {
        tx_window w;
        w.chain(further, 10).packet(60);  // a following packet must stay untouched
        const auto d = decode(w);
        EXPECT_EQ(d.verdict, tx_verdict::drop) << further;
        EXPECT_EQ(d.pkt.consumed, further + 1) << further;
        EXPECT_EQ(d.pkt.nr_slots, further + 1) << further;
        const auto next = decode_tx_packet(w.span().subspan(d.pkt.consumed), {});
        EXPECT_EQ(next.verdict, tx_verdict::ok) << further;
        EXPECT_EQ(next.pkt.total_len, 60u) << further;
    }
}

TEST(Spec4_3_TxSlotLimits, TwentyOneOrMoreFurtherSlotsFatal) {
    for (unsigned further : {21u, 22u, 25u}) {
        tx_window w;
        w.chain(further, 10);
        EXPECT_EQ(decode(w).verdict, tx_verdict::fatal) << further;
    }
    // The 20th further slot announcing a 21st is enough: no need to wait for it.
    tx_window w;
    w.chain(20, 10);
    w[20].flags |= abi::txf::more_data;
    EXPECT_EQ(decode(w).verdict, tx_verdict::fatal);
}

TEST(Spec4_3_TxSlotLimits, DropConsumesExtrasToo) {
    tx_window w;
    w.req(64 + 19 * 10, abi::txf::more_data | abi::txf::extra_info).extra(gso_extra(1400));
    for (unsigned i = 1; i <= 19; ++i) w.req(10, i < 19 ? abi::txf::more_data : 0);
    const auto d = decode(w, gso_limits());
    EXPECT_EQ(d.verdict, tx_verdict::drop);
    EXPECT_EQ(d.pkt.nr_extras, 1u);
    EXPECT_EQ(d.pkt.consumed, 21u);  // first + extra + 19
}

// ---- §4.3 "Every slot: offset + size ≤ 4096"; violations are fatal ----

TEST(Spec4_3_TxPageBounds, FollowingSlotCrossingPageIsFatal) {
    {
        tx_window w;
        w.req(1000, abi::txf::more_data).req(96, 0, 4000);  // ends exactly at 4096
        EXPECT_EQ(decode(w).verdict, tx_verdict::ok);
    }
    {
        tx_window w;
        w.req(1000, abi::txf::more_data).req(97, 0, 4000);
        EXPECT_EQ(decode(w).verdict, tx_verdict::fatal);
    }
    {
        tx_window w;  // zero-size slot, offset past the page
        w.req(100, abi::txf::more_data).req(0, 0, 4097);
        EXPECT_EQ(decode(w).verdict, tx_verdict::fatal);
    }
    {
        tx_window w;  // fatal wins over an earlier drop reason (oversized fragment)
        w.req(100, abi::txf::more_data).req(200, abi::txf::more_data).req(10, 0, 4090);
        EXPECT_EQ(decode(w).verdict, tx_verdict::fatal);
    }
}

TEST(Spec4_3_TxPageBounds, FirstSlotCrossingPageIsFatal) {
    {
        tx_window w;
        w.req(96, 0, 4000);
        EXPECT_EQ(decode(w).verdict, tx_verdict::ok);
    }
    {
        tx_window w;
        w.req(200, 0, 4000);
        EXPECT_EQ(decode(w).verdict, tx_verdict::fatal);
    }
    {
        // The first slot's effective length (total - others) is what must fit.
        tx_window w;
        w.req(1000, abi::txf::more_data, 3500).req(500);  // 3500 + 500 = 4000
        const auto d = decode(w);
        ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
        EXPECT_EQ(d.pkt.first_len, 500u);
    }
    {
        tx_window w;
        w.req(1000, abi::txf::more_data, 3600).req(500);  // 3600 + 500 > 4096
        EXPECT_EQ(decode(w).verdict, tx_verdict::fatal);
    }
}

// ---- §4.3 extras: GSO / HASH / MCAST, chained with EXTRA_FLAG_MORE ----

TEST(Spec4_3_TxExtras, GsoAcceptedWhenAdvertised) {
    struct {
        std::uint8_t type;
        bool v4, v6;
    } const cases[] = {{abi::gso_type::tcpv4, true, false}, {abi::gso_type::tcpv6, false, true}};
    for (const auto& c : cases) {
        tx_limits lim;
        lim.gso_tcpv4 = c.v4;
        lim.gso_tcpv6 = c.v6;
        tx_window w;
        w.packet(3000, {1000}, {gso_extra(1448, c.type)});
        const auto d = decode(w, lim);
        ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
        EXPECT_TRUE(d.pkt.has_gso);
        EXPECT_EQ(d.pkt.gso.size, 1448u);
        EXPECT_EQ(d.pkt.gso.type, c.type);
        EXPECT_EQ(d.pkt.nr_extras, 1u);
        EXPECT_EQ(d.pkt.consumed, 3u);
        EXPECT_EQ(d.pkt.data_index[1], 2u);
        EXPECT_EQ(d.pkt.first_len, 2000u);
    }
}

TEST(Spec4_3_TxExtras, GsoUnadvertisedOrInvalidTypeIsFatal) {
    tx_limits only_v4;
    only_v4.gso_tcpv4 = true;
    struct {
        tx_limits lim;
        std::uint8_t type;
    } const cases[] = {
        {tx_limits{}, abi::gso_type::tcpv4},  // nothing advertised
        {tx_limits{}, abi::gso_type::tcpv6},
        {only_v4, abi::gso_type::tcpv6},
        {gso_limits(), abi::gso_type::none},
        {gso_limits(), 3},
        {gso_limits(), 0xff},
    };
    for (const auto& c : cases) {
        tx_window w;
        w.packet(3000, {}, {gso_extra(1448, c.type)});
        const auto d = decode(w, c.lim);
        EXPECT_EQ(d.verdict, tx_verdict::fatal) << "type " << int(c.type);
        EXPECT_STRNE(d.reason, "");
    }
}

TEST(Spec4_3_TxExtras, GsoSizeZeroIsFatal) {
    tx_window w;
    w.packet(3000, {}, {gso_extra(0, abi::gso_type::tcpv4)});
    EXPECT_EQ(decode(w, gso_limits()).verdict, tx_verdict::fatal);
}

TEST(Spec4_3_TxExtras, ExtraTypeNoneOrAtLeastMaxIsFatal) {
    for (std::uint8_t type : {abi::extra_type::none, abi::extra_type::max, std::uint8_t{6}, std::uint8_t{0xff}}) {
        tx_limits lim = gso_limits();
        lim.multicast_control = true;
        tx_window w;
        w.packet(100, {}, {raw_extra(type)});
        EXPECT_EQ(decode(w, lim).verdict, tx_verdict::fatal) << "type " << int(type);
    }
}

// "missing extra → fatal" in Linux (it sees the whole ring); over a window
// copied so far, a missing extra means the chain is not complete yet.
TEST(Spec4_3_TxExtras, MissingExtraNeedsMore) {
    tx_window w;
    w.req(100, abi::txf::extra_info);
    EXPECT_EQ(decode(w, gso_limits()).verdict, tx_verdict::need_more);
    auto g = gso_extra(1400);
    g.flags = abi::extra_flag::more;  // announces a second extra
    w.extra(g);
    EXPECT_EQ(decode(w, gso_limits()).verdict, tx_verdict::need_more);
    w.extra(hash_extra(1, 1, 0x12345678));
    const auto d = decode(w, gso_limits());
    ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
    EXPECT_EQ(d.pkt.consumed, 3u);
}

TEST(Spec4_3_TxExtras, ChainedGsoAndHashExtrasOk) {
    tx_window w;
    w.packet(1500, {}, {gso_extra(1448), hash_extra(3, 1, 0xA1B2C3D4)});
    ASSERT_EQ(as_extra(w[1]).flags & abi::extra_flag::more, abi::extra_flag::more);
    ASSERT_EQ(as_extra(w[2]).flags & abi::extra_flag::more, 0);
    const auto d = decode(w, gso_limits());
    ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
    EXPECT_TRUE(d.pkt.has_gso);
    EXPECT_EQ(d.pkt.gso.size, 1448u);
    EXPECT_TRUE(d.pkt.has_hash);
    EXPECT_EQ(d.pkt.hash.type, 3u);
    EXPECT_EQ(d.pkt.hash.algorithm, 1u);
    EXPECT_EQ(d.pkt.hash.value[0], 0xD4u);  // LSB first
    EXPECT_EQ(d.pkt.hash.value[3], 0xA1u);
    EXPECT_EQ(d.pkt.nr_extras, 2u);
    EXPECT_EQ(d.pkt.nr_slots, 1u);
    EXPECT_EQ(d.pkt.consumed, 3u);
    EXPECT_EQ(d.pkt.first_len, 1500u);
}

// "flags on extras do not mean more_data": an extra slot whose bytes happen to
// have the more_data bit where a request keeps its flags ends nothing early or late.
TEST(Spec4_3_TxExtras, ExtraSlotBytesAreNotRequestFlags) {
    tx_window w;
    w.packet(100, {}, {hash_extra(1, 1, 0xFFFFFFFF)}).packet(60);
    ASSERT_NE(w[1].flags & abi::txf::more_data, 0) << "test premise: bytes 6..7 of the extra";
    const auto d = decode(w);
    ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
    EXPECT_EQ(d.pkt.consumed, 2u);
    EXPECT_EQ(d.pkt.nr_slots, 1u);
}

TEST(Spec4_3_TxExtras, MulticastExtraWithoutFeatureIsFatal) {
    for (std::uint8_t type : {abi::extra_type::mcast_add, abi::extra_type::mcast_del}) {
        tx_window w;
        w.packet(0, {}, {mcast_extra(type, {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01})});
        EXPECT_EQ(decode(w, gso_limits()).verdict, tx_verdict::fatal) << int(type);
    }
}

// "Multicast control: a dummy tx request with extra_info + MCAST_ADD/DEL extra"
TEST(Spec4_3_TxExtras, MulticastDummyRequestOkWithFeature) {
    const std::array<std::uint8_t, 6> addr{0x33, 0x33, 0x00, 0x00, 0x00, 0xfb};
    for (std::uint8_t type : {abi::extra_type::mcast_add, abi::extra_type::mcast_del}) {
        tx_limits lim;
        lim.multicast_control = true;
        tx_window w;
        w.packet(0, {}, {mcast_extra(type, addr)}).packet(60);
        const auto d = decode(w, lim);
        ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
        EXPECT_TRUE(d.pkt.has_mcast);
        EXPECT_EQ(d.pkt.mcast_type, type);
        EXPECT_EQ(d.pkt.total_len, 0u);
        for (int i = 0; i < 6; ++i) EXPECT_EQ(d.pkt.mcast.addr[i], addr[static_cast<std::size_t>(i)]);
        EXPECT_EQ(d.pkt.nr_extras, 1u);
        EXPECT_EQ(d.pkt.consumed, 2u);
    }
}

// ---- consumed / data_index bookkeeping (one response per slot, §4.3) ----

TEST(Spec4_3_TxSlots, ConsumedCountsDataAndExtrasAndDataIndexSkipsExtras) {
    tx_window w;
    w.packet(1000, {100, 200, 300}, {gso_extra(1448), hash_extra(1, 1, 7)}).packet(60);
    const auto d = decode(w, gso_limits());
    ASSERT_EQ(d.verdict, tx_verdict::ok) << d.reason;
    EXPECT_EQ(d.pkt.nr_extras, 2u);
    EXPECT_EQ(d.pkt.nr_slots, 4u);
    EXPECT_EQ(d.pkt.consumed, 6u);
    EXPECT_EQ(d.pkt.consumed, d.pkt.nr_slots + d.pkt.nr_extras);
    const std::array<std::uint8_t, 4> want{0, 3, 4, 5};
    for (std::size_t s = 0; s < want.size(); ++s) EXPECT_EQ(d.pkt.data_index[s], want[s]) << s;
    EXPECT_EQ(w[d.pkt.data_index[1]].size, 100u);
    EXPECT_EQ(w[d.pkt.data_index[3]].size, 300u);
    EXPECT_EQ(d.pkt.first_len, 400u);
    EXPECT_EQ(sum_of_slots(w, d.pkt), 1000u);
}

TEST(Spec4_3_TxSlots, DroppedPacketConsumedCountsExtras) {
    tx_window w;
    w.packet(10, {}, {gso_extra(1448)});  // < ETH_HLEN
    const auto d = decode(w, gso_limits());
    EXPECT_EQ(d.verdict, tx_verdict::drop);
    EXPECT_EQ(d.pkt.nr_extras, 1u);
    EXPECT_EQ(d.pkt.consumed, 2u);
}

TEST(Spec4_1_ExtraInfo, AsExtraReadsTheFirstEightBytesOfTheSlot) {
    const auto e = hash_extra(2, 1, 0x01020304);
    tx_window w;
    w.extra(e);
    const abi::extra_info back = as_extra(w[0]);
    EXPECT_EQ(back.type, abi::extra_type::hash);
    EXPECT_EQ(back.flags, 0u);
    EXPECT_EQ(back.u.hash.type, 2u);
    EXPECT_EQ(back.u.hash.algorithm, 1u);
    EXPECT_EQ(back.u.hash.value[0], 0x04u);
    EXPECT_EQ(back.u.hash.value[3], 0x01u);
}

}  // namespace
}  // namespace vifkit::wire
