// Compile-time pins of emu::grant_entry_v1 and gtf:: against xen/grant_table.h
// (netif-spec §6.1). Xen's header #defines grant_entry_v1, so our type is named
// through an alias taken before it is included.
#include <bit>
#include <cstddef>

#include "vifkit/emu/grant_entry.hpp"

namespace {
using our_entry = vifkit::emu::grant_entry_v1;
}

#include <stdint.h>  // the Xen headers expect the C names in the global namespace
#include <xen/xen.h>
#include <xen/grant_table.h>

namespace gtf = vifkit::emu::gtf;

static_assert(sizeof(our_entry) == sizeof(grant_entry_v1_t));
static_assert(offsetof(our_entry, flags) == offsetof(grant_entry_v1_t, flags));
static_assert(offsetof(our_entry, domid) == offsetof(grant_entry_v1_t, domid));
static_assert(offsetof(our_entry, frame) == offsetof(grant_entry_v1_t, frame));
static_assert(gtf::permit_access == GTF_permit_access && gtf::type_mask == GTF_type_mask);
static_assert(gtf::transitive == GTF_transitive && gtf::accept_transfer == GTF_accept_transfer);
static_assert(gtf::readonly == GTF_readonly && gtf::sub_page == GTF_sub_page);
static_assert(gtf::reading == GTF_reading && gtf::writing == GTF_writing);
// grant_words keeps flags in the low half of a 32-bit word: little-endian only.
static_assert(std::endian::native == std::endian::little);
