// core::mcast_filter: the backend's multicast list for feature-multicast-control
// (netif-spec §4.3: MCAST_ADD answered ERROR beyond XEN_NETBK_MCAST_MAX = 64,
// MCAST_DEL always OKAY), matched to Linux netback's xenvif_mcast_* behaviour.
#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "vifkit/core/mcast_filter.hpp"

namespace vifkit::core {
namespace {

using mac = mcast_filter::mac;

mac group(std::uint8_t n) { return {0x01, 0x00, 0x5e, 0x00, 0x00, n}; }  // IPv4 multicast MACs

std::vector<std::byte> frame_to(const mac& dst, std::size_t len = 64) {
    std::vector<std::byte> f(len, std::byte{0x5a});
    for (std::size_t i = 0; i < dst.size() && i < len; ++i) f[i] = static_cast<std::byte>(dst[i]);
    return f;
}

TEST(McastFilter, StartsEmptyAndDisabled) {
    mcast_filter m;
    EXPECT_EQ(m.size(), 0u);
    EXPECT_FALSE(m.enabled());
    EXPECT_EQ(mcast_filter::max_addresses, 64u);
}

TEST(McastFilter, AcceptsSixtyFourAddressesAndRefusesTheSixtyFifth) {
    mcast_filter m;
    for (int i = 0; i < 64; ++i) EXPECT_TRUE(m.add(group(static_cast<std::uint8_t>(i)))) << i;
    EXPECT_EQ(m.size(), 64u);
    EXPECT_FALSE(m.add(group(64)));
    EXPECT_FALSE(m.contains(group(64)));
    EXPECT_EQ(m.size(), 64u);
    for (int i = 0; i < 64; ++i) EXPECT_TRUE(m.contains(group(static_cast<std::uint8_t>(i)))) << i;
    // Removing one makes room for exactly one more.
    EXPECT_TRUE(m.remove(group(10)));
    EXPECT_TRUE(m.add(group(64)));
    EXPECT_FALSE(m.add(group(65)));
}

TEST(McastFilter, DuplicatesTakeAnEntryEachLikeLinux) {
    // Linux xenvif_mcast_add appends without looking for the address.
    mcast_filter m;
    EXPECT_TRUE(m.add(group(1)));
    EXPECT_TRUE(m.add(group(1)));
    EXPECT_EQ(m.size(), 2u);
    // ...and xenvif_mcast_del removes the first match only.
    EXPECT_TRUE(m.remove(group(1)));
    EXPECT_EQ(m.size(), 1u);
    EXPECT_TRUE(m.contains(group(1)));
    EXPECT_TRUE(m.remove(group(1)));
    EXPECT_FALSE(m.contains(group(1)));
    EXPECT_FALSE(m.remove(group(1)));
}

TEST(McastFilter, SixtyFourCopiesOfOneAddressFillTheList) {
    mcast_filter m;
    for (int i = 0; i < 64; ++i) ASSERT_TRUE(m.add(group(7)));
    EXPECT_FALSE(m.add(group(8)));
}

TEST(McastFilter, RemoveAbsentIsHarmlessAndRemoveThenReAddWorks) {
    mcast_filter m;
    EXPECT_FALSE(m.remove(group(3)));
    ASSERT_TRUE(m.add(group(1)));
    ASSERT_TRUE(m.add(group(2)));
    ASSERT_TRUE(m.add(group(3)));
    EXPECT_FALSE(m.remove(group(4)));
    EXPECT_EQ(m.size(), 3u);
    EXPECT_TRUE(m.remove(group(1)));  // the first: the others stay
    EXPECT_FALSE(m.contains(group(1)));
    EXPECT_TRUE(m.contains(group(2)));
    EXPECT_TRUE(m.contains(group(3)));
    EXPECT_TRUE(m.add(group(1)));
    EXPECT_TRUE(m.contains(group(1)));
    EXPECT_EQ(m.size(), 3u);
}

TEST(McastFilter, ClearForgetsEverything) {
    mcast_filter m;
    for (int i = 0; i < 64; ++i) ASSERT_TRUE(m.add(group(static_cast<std::uint8_t>(i))));
    m.clear();
    EXPECT_EQ(m.size(), 0u);
    EXPECT_FALSE(m.contains(group(0)));
    EXPECT_TRUE(m.add(group(0)));
}

TEST(McastFilter, UnicastAddIsAcceptedLikeLinuxAndHarmless) {
    mcast_filter m;
    const mac uni{0x00, 0x16, 0x3e, 0x01, 0x02, 0x03};
    EXPECT_TRUE(m.add(uni));
    EXPECT_TRUE(m.contains(uni));
    m.set_enabled(true);
    // Unicast traffic passes whether or not the address is listed.
    EXPECT_TRUE(m.accepts(frame_to(uni)));
    EXPECT_TRUE(m.accepts(frame_to({0x00, 0x16, 0x3e, 0x09, 0x09, 0x09})));
}

TEST(McastFilter, EnabledFilterPassesUnicastBroadcastAndListedGroupsOnly) {
    mcast_filter m;
    m.set_enabled(true);
    ASSERT_TRUE(m.add(group(1)));
    ASSERT_TRUE(m.add({0x33, 0x33, 0x00, 0x00, 0x00, 0x01}));  // IPv6 all-nodes

    EXPECT_TRUE(m.accepts(frame_to({0x00, 0x16, 0x3e, 0x0a, 0xbc, 0xff})));   // unicast
    EXPECT_TRUE(m.accepts(frame_to({0x02, 0x00, 0x00, 0x00, 0x00, 0x01})));   // locally administered unicast
    EXPECT_TRUE(m.accepts(frame_to({0xff, 0xff, 0xff, 0xff, 0xff, 0xff})));   // broadcast
    EXPECT_TRUE(m.accepts(frame_to(group(1))));
    EXPECT_TRUE(m.accepts(frame_to({0x33, 0x33, 0x00, 0x00, 0x00, 0x01})));
    EXPECT_FALSE(m.accepts(frame_to(group(2))));
    EXPECT_FALSE(m.accepts(frame_to({0x33, 0x33, 0xff, 0x00, 0x00, 0x01})));  // solicited-node
    EXPECT_FALSE(m.accepts(frame_to({0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e})));  // LLDP
    EXPECT_FALSE(m.accepts(frame_to({0xff, 0xff, 0xff, 0xff, 0xff, 0xfe})));  // not quite broadcast
    EXPECT_FALSE(m.accepts(frame_to({0x03, 0x00, 0x00, 0x00, 0x00, 0x00})));  // I/G set, U/L set

    // Match is on all six bytes.
    EXPECT_FALSE(m.accepts(frame_to({0x01, 0x00, 0x5e, 0x00, 0x01, 0x01})));
    EXPECT_FALSE(m.accepts(frame_to({0x01, 0x00, 0x5f, 0x00, 0x00, 0x01})));

    // Deleting the group stops it.
    ASSERT_TRUE(m.remove(group(1)));
    EXPECT_FALSE(m.accepts(frame_to(group(1))));
}

TEST(McastFilter, DisabledPassesAllMulticastButKeepsTheList) {
    mcast_filter m;
    ASSERT_TRUE(m.add(group(1)));
    EXPECT_TRUE(m.accepts(frame_to(group(1))));
    EXPECT_TRUE(m.accepts(frame_to(group(2))));
    EXPECT_TRUE(m.accepts(frame_to({0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e})));
    EXPECT_TRUE(m.accepts(frame_to({0xff, 0xff, 0xff, 0xff, 0xff, 0xff})));
    // Turning filtering on later uses the addresses added while it was off.
    m.set_enabled(true);
    EXPECT_TRUE(m.accepts(frame_to(group(1))));
    EXPECT_FALSE(m.accepts(frame_to(group(2))));
    m.set_enabled(false);
    EXPECT_TRUE(m.accepts(frame_to(group(2))));
    EXPECT_EQ(m.size(), 1u);
}

TEST(McastFilter, EnabledWithAnEmptyListDropsAllOtherMulticast) {
    mcast_filter m;
    m.set_enabled(true);
    EXPECT_FALSE(m.accepts(frame_to(group(1))));
    EXPECT_TRUE(m.accepts(frame_to({0xff, 0xff, 0xff, 0xff, 0xff, 0xff})));
}

TEST(McastFilter, ShortFramesAreRefused) {
    mcast_filter m;
    for (std::size_t len = 0; len < 6; ++len) {
        EXPECT_FALSE(m.accepts(frame_to({0x00, 0x16, 0x3e, 0x00, 0x00, 0x01}, len))) << len;
        EXPECT_FALSE(m.accepts(frame_to({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, len))) << len;
    }
    // Six bytes is enough to judge (the rest of the frame is not this filter's business).
    EXPECT_TRUE(m.accepts(frame_to({0x00, 0x16, 0x3e, 0x00, 0x00, 0x01}, 6)));
    m.set_enabled(true);
    ASSERT_TRUE(m.add(group(1)));
    EXPECT_TRUE(m.accepts(frame_to(group(1), 6)));
    EXPECT_FALSE(m.accepts(frame_to(group(1), 5)));
}

TEST(McastFilter, ListFullOfOtherGroupsStillDropsUnlisted) {
    mcast_filter m;
    m.set_enabled(true);
    for (int i = 0; i < 64; ++i) ASSERT_TRUE(m.add(group(static_cast<std::uint8_t>(i))));
    EXPECT_FALSE(m.add(group(200)));
    EXPECT_FALSE(m.accepts(frame_to(group(200))));  // refused ADD: its traffic is filtered out
    EXPECT_TRUE(m.accepts(frame_to(group(63))));
}

}  // namespace
}  // namespace vifkit::core
