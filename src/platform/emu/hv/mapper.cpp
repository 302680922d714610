#include "mapper.hpp"

#include <sys/mman.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>

namespace vifkit::emu::detail {

namespace {

using platform::copy_op;
using platform::map_op;

// Maptrack limit per mapper (Linux gntdev's default is in the same range).
constexpr std::size_t max_tracks = std::size_t{1} << 20;

std::uint64_t make_handle(std::uint32_t idx, std::uint32_t seq) {
    return (static_cast<std::uint64_t>(seq) << 32) | idx;
}

bool is_write(const copy_op& op) { return op.direction == copy_op::dir::to_peer; }

// The whole of a peer's memory, mapped once; grant refs translated through its
// table without any check but bounds (see platform::foreign_view).
class emu_foreign_view final : public platform::foreign_view {
public:
    emu_foreign_view(std::shared_ptr<peer_info> p, mapping mem)
        : peer_(std::move(p)), mem_(std::move(mem)),
          words_(peer_->table.get(), peer_->grant_entries) {}
    [[nodiscard]] std::byte* page(grant_ref_t ref) override {
        if (!words_.in_range(ref)) return nullptr;
        const std::uint32_t frame = words_.frame(ref).load(std::memory_order_relaxed);
        if (frame >= peer_->mem_pages) return nullptr;
        return static_cast<std::byte*>(mem_.get()) + std::size_t{frame} * page_size;
    }

private:
    std::shared_ptr<peer_info> peer_;
    mapping mem_;
    grant_words words_;
};

}  // namespace

mapper::~mapper() {
    for (auto& t : tracks_)
        if (t.seq != 0) release(t);
}

std::shared_ptr<peer_info> mapper::lookup(domid_t id) {
    const std::uint32_t gen = d_.directory_generation(id);
    auto it = peers_.find(id);
    if (it != peers_.end() && gen != 0 && it->second->generation == gen) return it->second;
    // A miss (rare: a new, gone or re-registered peer): drop every cached view
    // the directory no longer lists, so a dead guest's memory (its memfd) is not
    // kept alive by our cache. Live mappings hold their own reference.
    std::erase_if(peers_, [this](const auto& kv) {
        return d_.directory_generation(kv.first) != kv.second->generation;
    });
    if (gen == 0) return nullptr;
    auto p = d_.fetch_peer(id);
    if (p) peers_.emplace(id, p);
    return p;
}

void mapper::map(domid_t peer, std::span<map_op> ops) {
    auto p = lookup(peer);
    for (auto& op : ops) {
        op.addr = nullptr;
        op.handle = 0;
        op.status = p ? map_one(p, op) : gnt_status::bad_domain;
    }
}

gnt_status mapper::map_one(const std::shared_ptr<peer_info>& p, map_op& op) {
    if (free_tracks_.empty() && tracks_.size() >= max_tracks) return gnt_status::no_space;
    const bool writable = !op.readonly;
    const auto pr = p->view.pin(op.ref, d_.id(), writable);
    if (pr.status != gnt_status::okay) return pr.status;
    // The one place a peer page enters our address space: after validation, one
    // page, with the protection the grant allows.
    const int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void* addr = ::mmap(nullptr, page_size, prot, MAP_SHARED, p->mem_fd.get(),
                        static_cast<off_t>(pr.frame) * static_cast<off_t>(page_size));
    if (addr == MAP_FAILED) {
        p->view.unpin(op.ref, writable);
        return gnt_status::general_error;
    }
    std::uint32_t idx;
    if (!free_tracks_.empty()) {
        idx = free_tracks_.back();
        free_tracks_.pop_back();
    } else {
        idx = static_cast<std::uint32_t>(tracks_.size());
        tracks_.emplace_back();
    }
    if (++seq_ == 0) seq_ = 1;  // handle 0 is never valid
    tracks_[idx] = {p, addr, op.ref, op.readonly, seq_};
    op.addr = addr;
    op.handle = make_handle(idx, seq_);
    ++mapped_;
    return gnt_status::okay;
}

void mapper::unmap(std::span<map_op> ops) {
    for (auto& op : ops) op.status = unmap_one(op);
}

gnt_status mapper::unmap_one(const map_op& op) {
    const auto idx = static_cast<std::uint32_t>(op.handle & 0xFFFFFFFFU);
    const auto seq = static_cast<std::uint32_t>(op.handle >> 32);
    if (seq == 0 || idx >= tracks_.size() || tracks_[idx].seq != seq) return gnt_status::bad_handle;
    track& t = tracks_[idx];
    if (t.addr != op.addr) return gnt_status::general_error;  // Xen: host_addr must match
    release(t);
    free_tracks_.push_back(idx);
    return gnt_status::okay;
}

void mapper::release(track& t) {
    // Unmap before unpinning: once unpinned the granter may revoke and reuse the page.
    ::munmap(t.addr, page_size);
    t.peer->view.unpin(t.ref, !t.readonly);
    t = track{};
    --mapped_;
}

std::unique_ptr<platform::foreign_view> mapper::open_foreign(domid_t peer) {
    auto p = lookup(peer);
    if (!p) return nullptr;
    auto mem = mapping::map(p->mem_fd.get(), p->mem_pages * page_size, PROT_READ | PROT_WRITE);
    if (!mem) return nullptr;
    return std::make_unique<emu_foreign_view>(p, std::move(mem));
}

void mapper::copy(domid_t peer, std::span<copy_op> ops) {
    auto p = lookup(peer);
    if (!p) {
        for (auto& op : ops) op.status = gnt_status::bad_domain;
        return;
    }
    pin_copies(*p, ops);
    if (!pinned_.empty()) {
        if (p->exited()) {
            // Its pid may be reused: never aim process_vm_* at it again.
            for (const auto& pn : pinned_) ops[pn.op].status = gnt_status::bad_domain;
        } else {
            transfer(*p, ops, false);
            transfer(*p, ops, true);
        }
    }
    for (const auto& pn : pinned_) p->view.unpin(ops[pn.op].ref, is_write(ops[pn.op]));
}

void mapper::pin_copies(peer_info& p, std::span<copy_op> ops) {
    pinned_.clear();
    for (std::size_t i = 0; i < ops.size(); ++i) {
        copy_op& op = ops[i];
        if (std::size_t{op.offset} + op.len > page_size || (op.len != 0 && op.local == nullptr)) {
            op.status = gnt_status::bad_copy_arg;
            continue;
        }
        const auto pr = p.view.pin(op.ref, d_.id(), is_write(op));
        op.status = pr.status;
        if (pr.status == gnt_status::okay) pinned_.push_back({static_cast<std::uint32_t>(i), pr.frame});
    }
}

void mapper::transfer(const peer_info& p, std::span<copy_op> ops, bool to_peer) {
    dir_list_.clear();
    for (const auto& pn : pinned_) {
        const copy_op& op = ops[pn.op];
        if (op.len != 0 && is_write(op) == to_peer) dir_list_.push_back(pn);
    }
    // Every chunk consumes at least one segment, so this loop is bounded.
    std::size_t next = 0;
    while (next < dir_list_.size()) transfer_chunk(p, ops, dir_list_, to_peer, next);
}

void mapper::transfer_chunk(const peer_info& p, std::span<copy_op> ops,
                            std::span<const pinned> list, bool to_peer, std::size_t& next) {
    const std::size_t n = std::min<std::size_t>(IOV_MAX, list.size() - next);
    local_iov_.resize(n);
    remote_iov_.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
        const copy_op& op = ops[list[next + k].op];
        const std::uintptr_t remote = p.base + std::uintptr_t{list[next + k].frame} * page_size + op.offset;
        local_iov_[k] = {op.local, op.len};
        remote_iov_[k] = {reinterpret_cast<void*>(remote), op.len};
    }
    const ssize_t got = to_peer
        ? ::process_vm_writev(p.pid, local_iov_.data(), n, remote_iov_.data(), n, 0)
        : ::process_vm_readv(p.pid, local_iov_.data(), n, remote_iov_.data(), n, 0);
    if (got < 0 && errno != EFAULT) {
        // ESRCH: the peer process is gone. Anything else: nothing will get through.
        const auto st = errno == ESRCH ? gnt_status::bad_domain : gnt_status::general_error;
        for (; next < list.size(); ++next) ops[list[next].op].status = st;
        return;
    }
    // Segments are transferred in order; the one where the count stops faulted
    // (e.g. the peer unmapped its memory) and fails, possibly half copied.
    std::size_t done = 0;
    std::size_t k = 0;
    const std::size_t total = got < 0 ? 0 : static_cast<std::size_t>(got);
    while (k < n && done + ops[list[next + k].op].len <= total) done += ops[list[next + k++].op].len;
    next += k;
    if (k < n) ops[list[next++].op].status = gnt_status::general_error;
}

}  // namespace vifkit::emu::detail
