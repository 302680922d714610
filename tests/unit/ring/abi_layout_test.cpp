// ABI views against the numbers in netif-spec §1.3, §2.1, §3.1, §4.1-4.2, §6.1.
// src/abi/layout_check.cpp pins the same structs to Xen's own headers at
// compile time; these tests restate the spec's numbers independently so a
// change to either side is caught with a readable message.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "vifkit/abi/grant_table.hpp"
#include "vifkit/abi/netif.hpp"
#include "vifkit/ring/ring.hpp"

namespace vifkit::abi {
namespace {

template <class T>
constexpr bool plain_wire_v = std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T> &&
                              std::has_unique_object_representations_v<T>;

TEST(AbiLayout, Spec4_1_TxRequest) {
    EXPECT_EQ(sizeof(tx_request), 12u);
    EXPECT_EQ(alignof(tx_request), 4u);
    EXPECT_EQ(offsetof(tx_request, gref), 0u);
    EXPECT_EQ(offsetof(tx_request, offset), 4u);
    EXPECT_EQ(offsetof(tx_request, flags), 6u);
    EXPECT_EQ(offsetof(tx_request, id), 8u);
    EXPECT_EQ(offsetof(tx_request, size), 10u);
    EXPECT_TRUE(plain_wire_v<tx_request>);
}

TEST(AbiLayout, Spec4_1_TxResponse) {
    EXPECT_EQ(sizeof(tx_response), 4u);
    EXPECT_EQ(offsetof(tx_response, id), 0u);
    EXPECT_EQ(offsetof(tx_response, status), 2u);
    EXPECT_TRUE(std::is_signed_v<decltype(tx_response::status)>);
    EXPECT_TRUE(plain_wire_v<tx_response>);
}

TEST(AbiLayout, Spec4_1_RxRequest) {
    EXPECT_EQ(sizeof(rx_request), 8u);
    EXPECT_EQ(offsetof(rx_request, id), 0u);
    EXPECT_EQ(offsetof(rx_request, pad), 2u);
    EXPECT_EQ(offsetof(rx_request, gref), 4u);
    EXPECT_TRUE(plain_wire_v<rx_request>);
}

TEST(AbiLayout, Spec4_1_RxResponse) {
    EXPECT_EQ(sizeof(rx_response), 8u);
    EXPECT_EQ(offsetof(rx_response, id), 0u);
    EXPECT_EQ(offsetof(rx_response, offset), 2u);
    EXPECT_EQ(offsetof(rx_response, flags), 4u);
    EXPECT_EQ(offsetof(rx_response, status), 6u);
    EXPECT_TRUE(std::is_signed_v<decltype(rx_response::status)>);
    EXPECT_TRUE(plain_wire_v<rx_response>);
}

TEST(AbiLayout, Spec4_1_ExtraInfoAndUnionMembers) {
    EXPECT_EQ(sizeof(extra_info), 8u);
    EXPECT_EQ(alignof(extra_info), 2u);
    EXPECT_EQ(offsetof(extra_info, type), 0u);
    EXPECT_EQ(offsetof(extra_info, flags), 1u);
    EXPECT_EQ(offsetof(extra_info, u), 2u);
    EXPECT_EQ(sizeof(extra_info::u), 6u);
    // gso {u16 size @2; u8 type @4; u8 pad @5; u16 features @6}
    EXPECT_EQ(sizeof(extra_gso), 6u);
    EXPECT_EQ(offsetof(extra_info, u.gso.size), 2u);
    EXPECT_EQ(offsetof(extra_info, u.gso.type), 4u);
    EXPECT_EQ(offsetof(extra_info, u.gso.pad), 5u);
    EXPECT_EQ(offsetof(extra_info, u.gso.features), 6u);
    // mcast {u8 addr[6] @2}
    EXPECT_EQ(sizeof(extra_mcast), 6u);
    EXPECT_EQ(offsetof(extra_info, u.mcast.addr), 2u);
    EXPECT_EQ(sizeof(extra_mcast::addr), 6u);
    // hash {u8 type @2; u8 algorithm @3; u8 value[4] @4..7}
    EXPECT_EQ(sizeof(extra_hash), 6u);
    EXPECT_EQ(offsetof(extra_info, u.hash.type), 2u);
    EXPECT_EQ(offsetof(extra_info, u.hash.algorithm), 3u);
    EXPECT_EQ(offsetof(extra_info, u.hash.value), 4u);
    EXPECT_EQ(sizeof(extra_hash::value), 4u);
    EXPECT_EQ(offsetof(extra_info, u.pad), 2u);
    EXPECT_TRUE(std::is_trivially_copyable_v<extra_info>);
    // An extra occupies one slot of either ring.
    EXPECT_LE(sizeof(extra_info), sizeof(ring::tx_ring_types::entry));
    EXPECT_LE(sizeof(extra_info), sizeof(ring::rx_ring_types::entry));
}

TEST(AbiLayout, Spec2_1_CtrlRequestAndResponse) {
    EXPECT_EQ(sizeof(ctrl_request), 16u);
    EXPECT_EQ(offsetof(ctrl_request, id), 0u);
    EXPECT_EQ(offsetof(ctrl_request, type), 2u);
    EXPECT_EQ(offsetof(ctrl_request, data), 4u);
    EXPECT_EQ(offsetof(ctrl_request, data[1]), 8u);
    EXPECT_EQ(offsetof(ctrl_request, data[2]), 12u);
    EXPECT_TRUE(plain_wire_v<ctrl_request>);

    EXPECT_EQ(sizeof(ctrl_response), 12u);
    EXPECT_EQ(offsetof(ctrl_response, id), 0u);
    EXPECT_EQ(offsetof(ctrl_response, type), 2u);
    EXPECT_EQ(offsetof(ctrl_response, status), 4u);
    EXPECT_EQ(offsetof(ctrl_response, data), 8u);
    EXPECT_TRUE(plain_wire_v<ctrl_response>);
}

TEST(AbiLayout, Spec1_3_GrefEntry) {
    EXPECT_EQ(sizeof(gref_entry), 8u);
    EXPECT_EQ(offsetof(gref_entry, ref), 0u);
    EXPECT_EQ(offsetof(gref_entry, flags), 4u);
    EXPECT_EQ(offsetof(gref_entry, status), 6u);
    EXPECT_EQ(4096u / sizeof(gref_entry), 512u);  // max entries per ADD/DEL message
    EXPECT_TRUE(plain_wire_v<gref_entry>);
}

TEST(AbiLayout, Spec6_1_GrantEntryV1) {
    EXPECT_EQ(sizeof(grant_entry_v1), 8u);
    EXPECT_EQ(offsetof(grant_entry_v1, flags), 0u);
    EXPECT_EQ(offsetof(grant_entry_v1, domid), 2u);
    EXPECT_EQ(offsetof(grant_entry_v1, frame), 4u);
    EXPECT_EQ(grant_entries_per_page, 512u);
    EXPECT_EQ(reserved_grant_entries, 8u);
    EXPECT_EQ(gtf::invalid, 0);
    EXPECT_EQ(gtf::permit_access, 1);
    EXPECT_EQ(gtf::accept_transfer, 2);
    EXPECT_EQ(gtf::transitive, 3);
    EXPECT_EQ(gtf::type_mask, 3);
    EXPECT_EQ(gtf::readonly, 0x4);
    EXPECT_EQ(gtf::reading, 0x8);
    EXPECT_EQ(gtf::writing, 0x10);
    EXPECT_EQ(gtf::sub_page, 0x100);
}

TEST(AbiLayout, Spec3_1_SringHeader) {
    using ring::sring_header;
    EXPECT_EQ(sizeof(sring_header), 64u);
    EXPECT_EQ(offsetof(sring_header, req_prod), 0u);
    EXPECT_EQ(offsetof(sring_header, req_event), 4u);
    EXPECT_EQ(offsetof(sring_header, rsp_prod), 8u);
    EXPECT_EQ(offsetof(sring_header, rsp_event), 12u);
    EXPECT_EQ(offsetof(sring_header, pvt), 16u);
    EXPECT_EQ(sizeof(sring_header::pvt), 4u);
    EXPECT_EQ(offsetof(sring_header, pad), 20u);
    EXPECT_EQ(sizeof(sring_header::pad), 44u);
    EXPECT_EQ(ring::ring_page_size, 4096u);
}

TEST(AbiLayout, Spec3_1_RingEntrySizesAndSlotCounts) {
    EXPECT_EQ(sizeof(ring::tx_ring_types::entry), 12u);
    EXPECT_EQ(sizeof(ring::rx_ring_types::entry), 8u);
    EXPECT_EQ(sizeof(ring::ctrl_ring_types::entry), 16u);
    EXPECT_EQ(ring::tx_ring_types::size, 256u);
    EXPECT_EQ(ring::rx_ring_types::size, 256u);
    EXPECT_EQ(ring::ctrl_ring_types::size, 128u);
    // The front/back views agree with the types they are built from.
    EXPECT_EQ(ring::front_ring<ring::tx_ring_types>::size, 256u);
    EXPECT_EQ(ring::back_ring<ring::ctrl_ring_types>::size, 128u);
    // Every slot fits in the page.
    EXPECT_LE(64u + 256u * sizeof(ring::tx_ring_types::entry), 4096u);
    EXPECT_LE(64u + 256u * sizeof(ring::rx_ring_types::entry), 4096u);
    EXPECT_LE(64u + 128u * sizeof(ring::ctrl_ring_types::entry), 4096u);
}

TEST(AbiConstants, Spec4_2_TxAndRxFlagBits) {
    EXPECT_EQ(txf::csum_blank, 0x1);
    EXPECT_EQ(txf::data_validated, 0x2);
    EXPECT_EQ(txf::more_data, 0x4);
    EXPECT_EQ(txf::extra_info, 0x8);
    EXPECT_EQ(rxf::data_validated, 0x1);
    EXPECT_EQ(rxf::csum_blank, 0x2);
    EXPECT_EQ(rxf::more_data, 0x4);
    EXPECT_EQ(rxf::extra_info, 0x8);
    EXPECT_EQ(rxf::gso_prefix, 0x10);
}

TEST(AbiConstants, Spec4_2_CsumBitsSwapBetweenTxAndRx) {
    EXPECT_NE(txf::csum_blank, rxf::csum_blank);
    EXPECT_NE(txf::data_validated, rxf::data_validated);
    EXPECT_EQ(txf::csum_blank, rxf::data_validated);
    EXPECT_EQ(txf::data_validated, rxf::csum_blank);
    // The other bits keep their positions.
    EXPECT_EQ(txf::more_data, rxf::more_data);
    EXPECT_EQ(txf::extra_info, rxf::extra_info);
}

TEST(AbiConstants, Spec4_2_ResponseStatusExtraAndGso) {
    EXPECT_EQ(rsp::dropped, -2);
    EXPECT_EQ(rsp::error, -1);
    EXPECT_EQ(rsp::okay, 0);
    EXPECT_EQ(rsp::null_, 1);
    EXPECT_EQ(extra_type::none, 0);
    EXPECT_EQ(extra_type::gso, 1);
    EXPECT_EQ(extra_type::mcast_add, 2);
    EXPECT_EQ(extra_type::mcast_del, 3);
    EXPECT_EQ(extra_type::hash, 4);
    EXPECT_EQ(extra_type::max, 5);  // Xen's header: no XDP type
    EXPECT_EQ(extra_flag::more, 0x1);
    EXPECT_EQ(gso_type::none, 0);
    EXPECT_EQ(gso_type::tcpv4, 1);
    EXPECT_EQ(gso_type::tcpv6, 2);
    EXPECT_EQ(max_tx_size, 0xFFFFu);
    EXPECT_EQ(nr_slots_min, 18u);
    EXPECT_EQ(eth_hlen, 14u);
}

TEST(AbiConstants, Spec2_1_CtrlTypesAndStatus) {
    EXPECT_EQ(ctrl_type::invalid, 0);
    EXPECT_EQ(ctrl_type::get_hash_flags, 1);
    EXPECT_EQ(ctrl_type::set_hash_flags, 2);
    EXPECT_EQ(ctrl_type::set_hash_key, 3);
    EXPECT_EQ(ctrl_type::get_hash_mapping_size, 4);
    EXPECT_EQ(ctrl_type::set_hash_mapping_size, 5);
    EXPECT_EQ(ctrl_type::set_hash_mapping, 6);
    EXPECT_EQ(ctrl_type::set_hash_algorithm, 7);
    EXPECT_EQ(ctrl_type::get_gref_mapping_size, 8);
    EXPECT_EQ(ctrl_type::add_gref_mapping, 9);
    EXPECT_EQ(ctrl_type::del_gref_mapping, 10);
    EXPECT_EQ(ctrl_status::success, 0u);
    EXPECT_EQ(ctrl_status::not_supported, 1u);
    EXPECT_EQ(ctrl_status::invalid_parameter, 2u);
    EXPECT_EQ(ctrl_status::buffer_overflow, 3u);
    EXPECT_EQ(gref_flag_readonly, 0x1);
}

}  // namespace
}  // namespace vifkit::abi
