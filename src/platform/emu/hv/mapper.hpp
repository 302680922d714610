// grant_mapper for an emulated domain: the hypervisor side of grant map/unmap and
// grant copy against peers' grant tables (libxengnttab-like).
//
// map:   validate + pin the entry, then mmap that one page of the peer's memfd.
// copy:  validate + pin every segment of the batch, move the data with one
//        process_vm_readv (from_peer) and one process_vm_writev (to_peer) against
//        the peer process, then unpin. Reads run before writes: segments of one
//        batch must not depend on each other's data.
// Peer registrations are cached and checked against the broker's directory on
// every call, so a peer that restarted under the same domid is noticed; a call
// that misses the cache also drops the entries of peers that are gone.
#pragma once
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "domain_core.hpp"
#include "vifkit/platform/grant.hpp"

namespace vifkit::emu::detail {

class mapper final : public platform::grant_mapper {
public:
    explicit mapper(domain_core& d) : d_(d) {}
    ~mapper() override;  // unmaps whatever is still mapped

    void map(domid_t peer, std::span<platform::map_op> ops) override;
    void unmap(std::span<platform::map_op> ops) override;
    void copy(domid_t peer, std::span<platform::copy_op> ops) override;
    [[nodiscard]] std::size_t mapped_count() const override { return mapped_; }
    [[nodiscard]] std::unique_ptr<platform::foreign_view> open_foreign(domid_t peer) override;

private:
    // One live grant mapping (Xen's maptrack entry).
    struct track {
        std::shared_ptr<peer_info> peer;
        void* addr = nullptr;
        grant_ref_t ref = 0;
        bool readonly = false;
        std::uint32_t seq = 0;  // part of the handle: stale handles do not match
    };
    struct pinned {
        std::uint32_t op;
        std::uint32_t frame;
    };

    std::shared_ptr<peer_info> lookup(domid_t id);
    gnt_status map_one(const std::shared_ptr<peer_info>& p, platform::map_op& op);
    gnt_status unmap_one(const platform::map_op& op);
    void release(track& t);
    void pin_copies(peer_info& p, std::span<platform::copy_op> ops);
    void transfer(const peer_info& p, std::span<platform::copy_op> ops, bool to_peer);
    void transfer_chunk(const peer_info& p, std::span<platform::copy_op> ops,
                        std::span<const pinned> list, bool to_peer, std::size_t& next);

    domain_core& d_;
    std::unordered_map<domid_t, std::shared_ptr<peer_info>> peers_;
    std::vector<track> tracks_;
    std::vector<std::uint32_t> free_tracks_;
    std::size_t mapped_ = 0;
    std::uint32_t seq_ = 0;
    // Per-copy scratch, kept to avoid allocating on every batch.
    std::vector<pinned> pinned_;
    std::vector<pinned> dir_list_;
    std::vector<iovec> local_iov_;
    std::vector<iovec> remote_iov_;
};

}  // namespace vifkit::emu::detail
