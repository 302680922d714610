// grant_mapper over libxengnttab (/dev/xen/gntdev).
//
// map(): one xengnttab_map_grant_ref() per op, so each op succeeds or fails on
// its own and can be unmapped on its own (a batched map_grant_refs is one
// mapping that fails and unmaps as a whole). gntdev reports a failed map as an
// errno, not a GNTST code; status_from_errno() picks the nearest status.
//
// copy(): segments that fail our own checks (offset + len beyond the page, no
// local buffer) get bad_copy_arg and are left out; the rest go to the
// hypervisor in one xengnttab_grant_copy() (GNTTABOP_copy), which fills a
// GNTST status per segment. If the ioctl itself fails, every segment of the
// batch gets the errno's status.
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "vifkit/util/log.hpp"
#include "xen_detail.hpp"

namespace vifkit::platform::xen::detail {

mapper::mapper(unsigned max_grants) : h_(xengnttab_open(nullptr, 0)) {
    if (!h_) throw_open_error("/dev/xen/gntdev", "xengnttab_open", errno);
    if (max_grants != 0 && xengnttab_set_max_grants(h_, max_grants) != 0)
        spdlog::debug("platform xen: xengnttab_set_max_grants({}): {}", max_grants, std::strerror(errno));
}

mapper::~mapper() {
    for (const auto& [handle, m] : maps_) xengnttab_unmap(h_, m.addr, 1);
    xengnttab_close(h_);
}

void mapper::map(domid_t peer, std::span<map_op> ops) {
    for (auto& op : ops) {
        op.addr = nullptr;
        op.handle = 0;
        if (peer >= domid_self) {
            op.status = gnt_status::bad_domain;
            continue;
        }
        const int prot = PROT_READ | (op.readonly ? 0 : PROT_WRITE);
        void* addr = xengnttab_map_grant_ref(h_, peer, op.ref, prot);
        if (!addr) {
            op.status = status_from_errno(errno);
            continue;
        }
        const std::uint64_t handle = next_handle_++;
        if (next_handle_ == 0) next_handle_ = 1;  // handle 0 is never valid
        maps_.emplace(handle, mapping{addr});
        op.addr = addr;
        op.handle = handle;
        op.status = gnt_status::okay;
    }
}

void mapper::unmap(std::span<map_op> ops) {
    for (auto& op : ops) {
        auto it = maps_.find(op.handle);
        if (op.handle == 0 || it == maps_.end()) {
            op.status = gnt_status::bad_handle;
            continue;
        }
        if (it->second.addr != op.addr) {  // Xen: host_addr must match the handle
            op.status = gnt_status::general_error;
            continue;
        }
        if (xengnttab_unmap(h_, op.addr, 1) != 0) {
            op.status = status_from_errno(errno);
            continue;
        }
        maps_.erase(it);
        op.status = gnt_status::okay;
    }
}

void mapper::copy(domid_t peer, std::span<copy_op> ops) {
    segs_.clear();
    seg_index_.clear();
    for (std::size_t i = 0; i < ops.size(); ++i) {
        copy_op& op = ops[i];
        if (peer >= domid_self) {
            op.status = gnt_status::bad_domain;
            continue;
        }
        if (std::size_t{op.offset} + op.len > page_size || (op.len != 0 && op.local == nullptr)) {
            op.status = gnt_status::bad_copy_arg;
            continue;
        }
        xengnttab_grant_copy_segment_t seg;
        std::memset(&seg, 0, sizeof seg);
        if (op.direction == copy_op::dir::from_peer) {
            seg.source.foreign.ref = op.ref;
            seg.source.foreign.offset = op.offset;
            seg.source.foreign.domid = peer;
            seg.dest.virt = op.local;
            seg.flags = GNTCOPY_source_gref;
        } else {
            seg.source.virt = op.local;
            seg.dest.foreign.ref = op.ref;
            seg.dest.foreign.offset = op.offset;
            seg.dest.foreign.domid = peer;
            seg.flags = GNTCOPY_dest_gref;
        }
        seg.len = op.len;
        seg.status = static_cast<std::int16_t>(gnt_status::general_error);
        segs_.push_back(seg);
        seg_index_.push_back(static_cast<std::uint32_t>(i));
    }
    if (segs_.empty()) return;
    if (xengnttab_grant_copy(h_, static_cast<std::uint32_t>(segs_.size()), segs_.data()) != 0) {
        const gnt_status st = status_from_errno(errno);
        for (auto idx : seg_index_) ops[idx].status = st;
        return;
    }
    for (std::size_t k = 0; k < segs_.size(); ++k)
        ops[seg_index_[k]].status = static_cast<gnt_status>(segs_[k].status);
}

}  // namespace vifkit::platform::xen::detail
