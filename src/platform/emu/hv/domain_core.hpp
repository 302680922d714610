// Client side of one emulated domain: the broker connection (synchronous RPC),
// the guest memory, the own grant table and the page / grant-ref allocators. The
// sharer, mapper and event-channel objects made by emu::domain all use it.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "active_table.hpp"
#include "fd.hpp"
#include "grant_words.hpp"
#include "protocol.hpp"

namespace vifkit::emu::detail {

// A mapper's view of one registration of a peer domain. Kept alive by every
// mapping made through it, so unmapping after the peer re-registered still
// unpins the right (old) table.
struct peer_info {
    domid_t id = 0;
    std::uint32_t generation = 0;
    pid_t pid = 0;
    std::size_t mem_pages = 0;
    std::size_t grant_entries = 0;
    std::uintptr_t base = 0;
    unique_fd mem_fd;
    unique_fd pidfd;  // may be invalid when pidfd_open was unavailable to the broker
    mapping table;
    mapping active;
    grant_table_view view;

    // True when the peer process has exited (so its pid must not be used again).
    [[nodiscard]] bool exited() const;
};

class domain_core {
public:
    // Throws std::system_error (see emu::domain::attach, also for `pump`).
    static std::unique_ptr<domain_core> attach(const std::string& path, domid_t want,
                                               std::size_t mem_pages, std::size_t entries,
                                               std::function<void()> pump = {});

    [[nodiscard]] domid_t id() const { return id_; }
    [[nodiscard]] std::uint32_t generation() const { return generation_; }

    // One request/reply with the broker (thread safe). The reply must be exactly
    // a `Rsp` of type `want` with the request's seq. 0 or -errno (transport or
    // protocol failure; the broker's own verdict is in rsp.err).
    template <class Req, class Rsp>
    int call(Req& req, msg_type want, Rsp& rsp, std::vector<unique_fd>& fds) {
        return call_raw(&req, sizeof(Req), req.h, want, &rsp, sizeof(Rsp), fds);
    }

    // The broker connection: readable only when the broker closed it (it never
    // speaks unasked). broker_lost(): it did (or the connection failed).
    [[nodiscard]] int broker_fd() const { return sock_.get(); }
    [[nodiscard]] bool broker_lost();

    // Generation of `id` in the broker's directory: 0 = not registered.
    [[nodiscard]] std::uint32_t directory_generation(domid_t id) const;
    // Ask the broker for a peer's current registration. nullptr + errno on failure.
    [[nodiscard]] std::shared_ptr<peer_info> fetch_peer(domid_t id);

    [[nodiscard]] std::size_t mem_pages() const { return mem_pages_; }
    [[nodiscard]] std::byte* page(std::uint32_t frame) const;
    [[nodiscard]] const grant_words& table() const { return table_; }

    // Take frames.size() free pages and refs.size() free grant refs, all or nothing.
    [[nodiscard]] bool alloc(std::span<std::uint32_t> frames, std::span<grant_ref_t> refs);
    // Give back a revoked grant's page and ref.
    void release(std::uint32_t frame, grant_ref_t ref);
    [[nodiscard]] std::size_t free_pages() const;
    [[nodiscard]] std::size_t free_refs() const;

private:
    domain_core() = default;
    void do_register(domid_t want, int memfd, std::size_t entries);
    int call_raw(void* req, std::size_t req_len, msg_header& h, msg_type want, void* rsp,
                 std::size_t rsp_len, std::vector<unique_fd>& fds);

    domid_t id_ = domid_invalid;
    std::uint32_t generation_ = 0;
    unique_fd sock_;
    std::function<void()> pump_;  // runs the broker between a request and its reply
    std::mutex rpc_mu_;
    std::uint32_t seq_ = 0;

    mapping memory_;
    std::size_t mem_pages_ = 0;
    mapping table_map_;
    grant_words table_;
    mapping directory_;

    mutable std::mutex alloc_mu_;
    std::vector<std::uint32_t> free_frames_;
    std::vector<grant_ref_t> free_refs_;
};

}  // namespace vifkit::emu::detail
