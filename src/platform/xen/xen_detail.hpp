// Internal classes of platform/xen (one per platform interface).
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "vifkit/platform/event_channel.hpp"
#include "vifkit/platform/grant.hpp"

// The Xen library headers have no extern "C" of their own.
extern "C" {
#include <xenevtchn.h>
#include <xengnttab.h>
}

namespace vifkit::platform::xen::detail {

// A /dev/xen/* open failure, phrased for a person.
[[noreturn]] void throw_open_error(const char* device, const char* call, int err);

// libxengntshr (gntalloc): one page per share so that each can be revoked alone.
class sharer final : public grant_sharer {
public:
    sharer();  // throws std::runtime_error
    ~sharer() override;
    sharer(const sharer&) = delete;
    sharer& operator=(const sharer&) = delete;

    [[nodiscard]] bool share_pages(domid_t peer, std::span<shared_page> pages, bool writable) override;
    std::size_t unshare(std::span<const shared_page> pages, std::span<gnt_status> status) override;
    [[nodiscard]] std::size_t shared_count() const override { return shared_.size(); }

private:
    xengntshr_handle* h_;
    std::unordered_map<grant_ref_t, void*> shared_;  // ref -> our mapping
};

// libxengnttab (gntdev): map one page per op (independent failures and unmaps),
// grant copy in batches.
class mapper final : public grant_mapper {
public:
    explicit mapper(unsigned max_grants);  // throws std::runtime_error
    ~mapper() override;
    mapper(const mapper&) = delete;
    mapper& operator=(const mapper&) = delete;

    void map(domid_t peer, std::span<map_op> ops) override;
    void unmap(std::span<map_op> ops) override;
    void copy(domid_t peer, std::span<copy_op> ops) override;
    [[nodiscard]] std::size_t mapped_count() const override { return maps_.size(); }

private:
    xengnttab_handle* h_;
    std::uint64_t next_handle_ = 1;
    struct mapping {
        void* addr;
    };
    std::unordered_map<std::uint64_t, mapping> maps_;
    std::vector<std::uint32_t> seg_index_;  // copy op index of each segment
    std::vector<xengnttab_grant_copy_segment_t> segs_;
};

// libxenevtchn (/dev/xen/evtchn), fd switched to non-blocking.
class evtchn final : public event_channels {
public:
    evtchn();  // throws std::runtime_error
    ~evtchn() override;
    evtchn(const evtchn&) = delete;
    evtchn& operator=(const evtchn&) = delete;

    [[nodiscard]] int fd() const override { return fd_; }
    [[nodiscard]] std::optional<evtchn_port_t> alloc_unbound(domid_t remote) override;
    [[nodiscard]] std::optional<evtchn_port_t> bind_interdomain(domid_t remote,
                                                                evtchn_port_t remote_port) override;
    int notify(evtchn_port_t local) override;
    [[nodiscard]] std::optional<evtchn_port_t> pending() override;
    int unmask(evtchn_port_t local) override;
    int unbind(evtchn_port_t local) override;
    [[nodiscard]] std::size_t bound_count() const override { return ports_.size(); }

private:
    xenevtchn_handle* h_;
    int fd_;
    std::unordered_map<evtchn_port_t, bool> ports_;
};

// errno from gntdev / gntalloc -> the nearest GNTST_* status.
gnt_status status_from_errno(int err);

}  // namespace vifkit::platform::xen::detail
