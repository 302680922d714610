// Pins vifkit's ABI views to Xen's public headers from libxen-dev: every size
// and offset in netif-spec §3-4 (and §1.3, §2.1, §6.1) is asserted here at
// compile time, so a mismatch fails the build.
#include <cstddef>
#include <cstdint>
// clang-format off
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/event_channel.h>
#include <xen/io/netif.h>
#include <xen/io/xenbus.h>
// clang-format on

#include <charconv>

#include "vifkit/abi/grant_table.hpp"
#include "vifkit/abi/netif.hpp"
#include "vifkit/abi/xenbus.hpp"
#include "vifkit/platform/types.hpp"
#include "vifkit/ring/ring.hpp"

namespace vifkit::abi {

using xen_extra_info = struct netif_extra_info;
using xen_ctrl_request = struct xen_netif_ctrl_request;
using xen_ctrl_response = struct xen_netif_ctrl_response;
using xen_gref = struct xen_netif_gref;

#define VIFKIT_SAME_FIELD(ours, theirs, field)                                      \
    static_assert(offsetof(ours, field) == offsetof(theirs, field), #field " offset"); \
    static_assert(sizeof(ours::field) == sizeof(theirs::field), #field " size")

// tx request: gref 0:4, offset 4:2, flags 6:2, id 8:2, size 10:2
static_assert(sizeof(tx_request) == sizeof(netif_tx_request_t));
VIFKIT_SAME_FIELD(tx_request, netif_tx_request_t, gref);
VIFKIT_SAME_FIELD(tx_request, netif_tx_request_t, offset);
VIFKIT_SAME_FIELD(tx_request, netif_tx_request_t, flags);
VIFKIT_SAME_FIELD(tx_request, netif_tx_request_t, id);
VIFKIT_SAME_FIELD(tx_request, netif_tx_request_t, size);
static_assert(offsetof(tx_request, offset) == 4 && offsetof(tx_request, id) == 8 &&
              offsetof(tx_request, size) == 10);
// tx response: id 0:2, status 2:2
static_assert(sizeof(tx_response) == sizeof(netif_tx_response_t));
VIFKIT_SAME_FIELD(tx_response, netif_tx_response_t, id);
VIFKIT_SAME_FIELD(tx_response, netif_tx_response_t, status);
// rx request: id 0:2, pad 2:2, gref 4:4
static_assert(sizeof(rx_request) == sizeof(netif_rx_request_t));
VIFKIT_SAME_FIELD(rx_request, netif_rx_request_t, id);
VIFKIT_SAME_FIELD(rx_request, netif_rx_request_t, gref);
static_assert(offsetof(rx_request, gref) == 4);
// rx response: id 0:2, offset 2:2, flags 4:2, status 6:2
static_assert(sizeof(rx_response) == sizeof(netif_rx_response_t));
VIFKIT_SAME_FIELD(rx_response, netif_rx_response_t, id);
VIFKIT_SAME_FIELD(rx_response, netif_rx_response_t, offset);
VIFKIT_SAME_FIELD(rx_response, netif_rx_response_t, flags);
VIFKIT_SAME_FIELD(rx_response, netif_rx_response_t, status);
static_assert(offsetof(rx_response, status) == 6);
// extra info: type 0:1, flags 1:1, union 2:6
static_assert(sizeof(extra_info) == sizeof(struct netif_extra_info));
VIFKIT_SAME_FIELD(extra_info, xen_extra_info, type);
VIFKIT_SAME_FIELD(extra_info, xen_extra_info, flags);
static_assert(offsetof(extra_info, u) == offsetof(struct netif_extra_info, u) &&
              offsetof(extra_info, u) == 2);
static_assert(offsetof(extra_info, u.gso.size) == offsetof(struct netif_extra_info, u.gso.size));
static_assert(offsetof(extra_info, u.gso.type) == offsetof(struct netif_extra_info, u.gso.type));
static_assert(offsetof(extra_info, u.gso.features) ==
              offsetof(struct netif_extra_info, u.gso.features));
static_assert(offsetof(extra_info, u.mcast.addr) == offsetof(struct netif_extra_info, u.mcast.addr));
static_assert(offsetof(extra_info, u.hash.type) == offsetof(struct netif_extra_info, u.hash.type));
static_assert(offsetof(extra_info, u.hash.algorithm) ==
              offsetof(struct netif_extra_info, u.hash.algorithm));
static_assert(offsetof(extra_info, u.hash.value) == offsetof(struct netif_extra_info, u.hash.value));
// control ring
static_assert(sizeof(ctrl_request) == sizeof(struct xen_netif_ctrl_request));
VIFKIT_SAME_FIELD(ctrl_request, xen_ctrl_request, id);
VIFKIT_SAME_FIELD(ctrl_request, xen_ctrl_request, type);
VIFKIT_SAME_FIELD(ctrl_request, xen_ctrl_request, data);
static_assert(sizeof(ctrl_response) == sizeof(struct xen_netif_ctrl_response));
VIFKIT_SAME_FIELD(ctrl_response, xen_ctrl_response, id);
VIFKIT_SAME_FIELD(ctrl_response, xen_ctrl_response, type);
VIFKIT_SAME_FIELD(ctrl_response, xen_ctrl_response, status);
VIFKIT_SAME_FIELD(ctrl_response, xen_ctrl_response, data);
static_assert(sizeof(gref_entry) == sizeof(struct xen_netif_gref));
VIFKIT_SAME_FIELD(gref_entry, xen_gref, ref);
VIFKIT_SAME_FIELD(gref_entry, xen_gref, flags);
VIFKIT_SAME_FIELD(gref_entry, xen_gref, status);
// grant entry v1
static_assert(sizeof(grant_entry_v1) == sizeof(grant_entry_v1_t));
VIFKIT_SAME_FIELD(grant_entry_v1, grant_entry_v1_t, flags);
VIFKIT_SAME_FIELD(grant_entry_v1, grant_entry_v1_t, domid);
VIFKIT_SAME_FIELD(grant_entry_v1, grant_entry_v1_t, frame);

// Constants
static_assert(txf::csum_blank == NETTXF_csum_blank && txf::data_validated == NETTXF_data_validated &&
              txf::more_data == NETTXF_more_data && txf::extra_info == NETTXF_extra_info);
static_assert(rxf::data_validated == NETRXF_data_validated && rxf::csum_blank == NETRXF_csum_blank &&
              rxf::more_data == NETRXF_more_data && rxf::extra_info == NETRXF_extra_info &&
              rxf::gso_prefix == NETRXF_gso_prefix);
static_assert(rsp::dropped == NETIF_RSP_DROPPED && rsp::error == NETIF_RSP_ERROR &&
              rsp::okay == NETIF_RSP_OKAY && rsp::null_ == NETIF_RSP_NULL);
static_assert(extra_type::none == XEN_NETIF_EXTRA_TYPE_NONE && extra_type::gso == XEN_NETIF_EXTRA_TYPE_GSO &&
              extra_type::mcast_add == XEN_NETIF_EXTRA_TYPE_MCAST_ADD &&
              extra_type::mcast_del == XEN_NETIF_EXTRA_TYPE_MCAST_DEL &&
              extra_type::hash == XEN_NETIF_EXTRA_TYPE_HASH && extra_type::max == XEN_NETIF_EXTRA_TYPE_MAX);
static_assert(extra_flag::more == XEN_NETIF_EXTRA_FLAG_MORE);
static_assert(gso_type::tcpv4 == XEN_NETIF_GSO_TYPE_TCPV4 && gso_type::tcpv6 == XEN_NETIF_GSO_TYPE_TCPV6);
static_assert(ctrl_type::get_gref_mapping_size == XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE &&
              ctrl_type::add_gref_mapping == XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING &&
              ctrl_type::del_gref_mapping == XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING &&
              ctrl_type::set_hash_algorithm == XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM &&
              ctrl_type::set_hash_mapping == XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING);
static_assert(ctrl_status::success == XEN_NETIF_CTRL_STATUS_SUCCESS &&
              ctrl_status::not_supported == XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED &&
              ctrl_status::invalid_parameter == XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER &&
              ctrl_status::buffer_overflow == XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
static_assert(gref_flag_readonly == XEN_NETIF_CTRLF_GREF_readonly);
static_assert(max_tx_size == XEN_NETIF_MAX_TX_SIZE && nr_slots_min == XEN_NETIF_NR_SLOTS_MIN);
static_assert(gtf::permit_access == GTF_permit_access && gtf::readonly == GTF_readonly &&
              gtf::reading == GTF_reading && gtf::writing == GTF_writing && gtf::type_mask == GTF_type_mask &&
              gtf::sub_page == GTF_sub_page);
static_assert(static_cast<int>(xenbus_state::connected) == XenbusStateConnected &&
              static_cast<int>(xenbus_state::init_wait) == XenbusStateInitWait &&
              static_cast<int>(xenbus_state::closed) == XenbusStateClosed &&
              static_cast<int>(xenbus_state::reconfigured) == XenbusStateReconfigured);
static_assert(static_cast<int>(gnt_status::no_space) == GNTST_no_space &&
              static_cast<int>(gnt_status::permission_denied) == GNTST_permission_denied &&
              static_cast<int>(gnt_status::bad_copy_arg) == GNTST_bad_copy_arg &&
              static_cast<int>(gnt_status::bad_gntref) == GNTST_bad_gntref &&
              static_cast<int>(gnt_status::eagain) == GNTST_eagain);
static_assert(GNTTAB_NR_RESERVED_ENTRIES == reserved_grant_entries);
static_assert(sizeof(domid_t) == sizeof(::domid_t) && sizeof(grant_ref_t) == sizeof(::grant_ref_t) &&
              sizeof(evtchn_port_t) == sizeof(::evtchn_port_t));

// Shared ring page layout (netif-spec §3.1) and slot counts.
static_assert(sizeof(ring::sring_header) == offsetof(netif_tx_sring, ring));
static_assert(offsetof(ring::sring_header, req_prod) == offsetof(netif_tx_sring, req_prod));
static_assert(offsetof(ring::sring_header, req_event) == offsetof(netif_tx_sring, req_event));
static_assert(offsetof(ring::sring_header, rsp_prod) == offsetof(netif_tx_sring, rsp_prod));
static_assert(offsetof(ring::sring_header, rsp_event) == offsetof(netif_tx_sring, rsp_event));
static_assert(sizeof(union netif_tx_sring_entry) == sizeof(ring::tx_ring_types::entry));
static_assert(sizeof(union netif_rx_sring_entry) == sizeof(ring::rx_ring_types::entry));
static_assert(sizeof(union xen_netif_ctrl_sring_entry) == sizeof(ring::ctrl_ring_types::entry));
static_assert(ring::tx_ring_types::size == 256 && ring::rx_ring_types::size == 256 &&
              ring::ctrl_ring_types::size == 128);

#undef VIFKIT_SAME_FIELD

std::optional<xenbus_state> parse_xenbus_state(std::string_view s) {
    if (s.empty() || s.size() > 2) return std::nullopt;
    int v = -1;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 0 || v > 8) return std::nullopt;
    return static_cast<xenbus_state>(v);
}

}  // namespace vifkit::abi
