// Grant-table interfaces, batch-first, one status per operation (style habit 7).
//
//  grant_sharer  - frontend side: grant our own pages to a peer, revoke them.
//  grant_mapper  - backend side: map/unmap a peer's grants, grant-copy batches.
//
// Implemented by platform/emu (emulated Xen, multi-process) and platform/xen
// (libxengntshr / libxengnttab).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "vifkit/platform/types.hpp"

namespace vifkit::platform {

// One page of our own memory, granted to a peer.
struct shared_page {
    grant_ref_t ref = 0;
    void* addr = nullptr;  // our local address of the page (page aligned)
};

class grant_sharer {
public:
    virtual ~grant_sharer() = default;
    // Allocate pages.size() zeroed pages and grant each to `peer`. All or nothing:
    // returns false and fills nothing on failure.
    [[nodiscard]] virtual bool share_pages(domid_t peer, std::span<shared_page> pages,
                                           bool writable) = 0;
    // Revoke each grant and free its page. A grant still mapped or being
    // copied by the peer (GTF_reading/GTF_writing set) cannot be revoked: its
    // status is gnt_status::eagain and the page stays granted (XSA-396: never
    // reuse such a page). Returns the number revoked.
    virtual std::size_t unshare(std::span<const shared_page> pages,
                                std::span<gnt_status> status) = 0;
    // Pages currently granted by this sharer.
    [[nodiscard]] virtual std::size_t shared_count() const = 0;
};

// One grant map/unmap operation (GNTTABOP_map_grant_ref / unmap_grant_ref).
struct map_op {
    grant_ref_t ref = 0;
    bool readonly = false;
    void* addr = nullptr;      // OUT of map, IN to unmap
    std::uint64_t handle = 0;  // OUT of map, IN to unmap
    gnt_status status = gnt_status::general_error;  // OUT
};

// One grant-copy segment (GNTTABOP_copy). Exactly one side is foreign: the
// peer's grant `ref` at `offset`; the other side is our local memory.
struct copy_op {
    enum class dir : std::uint8_t { from_peer, to_peer };
    dir direction = dir::from_peer;
    grant_ref_t ref = 0;
    std::uint16_t offset = 0;  // within the granted page
    std::uint16_t len = 0;     // offset + len <= page_size
    void* local = nullptr;
    gnt_status status = gnt_status::general_error;  // OUT
};

// A privileged, unchecked view of a peer's memory (what dom0 gets from
// xenforeignmemory): the benchmark's "raw" mode, the ceiling of the design.
// page() translates a grant ref through the peer's grant table with NO check
// of flags, domid or permissions and no pin. Only the bounds of the table and
// of the peer's memory are checked, so a bad ref cannot reach outside it.
class foreign_view {
public:
    virtual ~foreign_view() = default;
    // The peer page `ref` currently names, or nullptr if out of range.
    [[nodiscard]] virtual std::byte* page(grant_ref_t ref) = 0;
};

class grant_mapper {
public:
    virtual ~grant_mapper() = default;
    // Map each op's grant from domain `peer`. Ops fail independently.
    virtual void map(domid_t peer, std::span<map_op> ops) = 0;
    // Unmap ops previously mapped (addr + handle). Ops fail independently.
    virtual void unmap(std::span<map_op> ops) = 0;
    // Grant-copy a batch to/from `peer`'s granted pages: validate every
    // segment, then move the data for the whole batch in one go.
    virtual void copy(domid_t peer, std::span<copy_op> ops) = 0;
    // Grant mappings currently held.
    [[nodiscard]] virtual std::size_t mapped_count() const = 0;
    // Map all of `peer`'s memory for raw (unchecked) access. nullptr when the
    // platform does not offer it (default) or the peer is unknown.
    [[nodiscard]] virtual std::unique_ptr<foreign_view> open_foreign(domid_t /*peer*/) { return nullptr; }
};

}  // namespace vifkit::platform
