// Backend side of the netif control ring (netif-spec §1, §2): executes one
// control request against the vif's hash configuration and static-grant tables.
//
// The caller owns the ring: it copies each request out of the shared page once
// (ring::copy_request), passes the private copy here, and pushes the returned
// response. Everything a request points at in frontend memory (hash key, mapping
// table, gref lists) is grant-copied into private memory exactly once, validated
// there, and only then committed (copy -> validate -> commit; XSA-155, XSA-270).
//
// Behaviour follows Linux netback for messages 1-7 and the Xen 4.10 netif.h text
// plus netif-spec §1.5 recommendations for 8-10:
//  * unknown types (0, >= 11): NOT_SUPPORTED, data 0.
//  * static grants disabled: types 8-10 answer NOT_SUPPORTED, data 0, before any
//    parameter check.
//  * ADD is all-or-nothing; it only reads the list page, so a read-only list
//    grant is accepted. Per-entry status is not written for ADD.
//  * DEL needs a writable list page. Before unmapping anything the handler
//    probes write access with a zero-length grant copy in the same batch as the
//    list read, so a read-only/ungranted list fails with nothing removed. If the
//    final status write-back still fails (the frontend revoked the list grant
//    mid-request), the response is INVALID_PARAMETER but the entries already
//    unmapped stay unmapped, and response data still counts them.
//  * DEL response status is SUCCESS whenever the list was processed and the
//    statuses written back, even if some entries failed (their own status says
//    INVALID_PARAMETER: not in this queue's table, duplicated in the list, or in
//    flight). data = number actually unmapped.
//
// Not thread-safe: handle(), select_queue(), the tables and the data path must be
// serialised by the caller (one event loop per vif). The grant_mapper must
// outlive the handler.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "vifkit/abi/netif.hpp"
#include "vifkit/ctrl/gref_table.hpp"
#include "vifkit/ctrl/toeplitz.hpp"
#include "vifkit/platform/grant.hpp"
#include "vifkit/util/log.hpp"

namespace vifkit::ctrl {

struct static_grant_limits {
    bool enabled = true;
    unsigned per_queue = 1024;  // table capacity per queue (<= max_static_per_queue)
    unsigned per_vif = 4096;    // mappings across all queues
};

// One gref list fills at most one page (netif-spec §1.3).
inline constexpr unsigned max_gref_list = page_size / sizeof(abi::gref_entry);  // 512
// Linux netback: XEN_NETBK_MAX_HASH_MAPPING_SIZE.
inline constexpr unsigned max_hash_mapping_size = 128;
// SET_HASH_MAPPING copies at most one page of u32 entries.
inline constexpr unsigned max_hash_mapping_copy = page_size / sizeof(std::uint32_t);  // 1024
// Sanity cap on our own configuration (memory for the tables is allocated up front).
inline constexpr unsigned max_static_per_queue = 1u << 16;

class backend_handler {
public:
    // Throws std::invalid_argument when num_queues == 0 or
    // lim.per_queue > max_static_per_queue (our configuration, not peer input).
    backend_handler(platform::grant_mapper& mapper, domid_t frontend, unsigned num_queues,
                    static_grant_limits lim);
    ~backend_handler();  // unmap_all()
    backend_handler(const backend_handler&) = delete;
    backend_handler& operator=(const backend_handler&) = delete;

    // `req` is a private copy. Returns the response with id and type echoed.
    [[nodiscard]] abi::ctrl_response handle(const abi::ctrl_request& req);

    // Unmaps every static mapping of every queue (disconnect). Entries still in
    // flight are unmapped too (counted as teardown_inflight): stop the data path
    // first. Afterwards the frontend can revoke its grants.
    void unmap_all();

    // Data-path lookup table of `queue` (< num_queues(), else std::out_of_range).
    [[nodiscard]] gref_table& table(unsigned queue);
    [[nodiscard]] const gref_table& table(unsigned queue) const;

    // Backend -> guest queue selection (netif-spec §2.3, Linux xenvif_select_queue):
    // algorithm NONE -> {0, false}; otherwise hash the frame (no applicable type:
    // has_hash = false and hash 0 is used for the choice, as Linux does); mapping
    // size 0 -> hash % num_queues, else mapping[hash % size].
    struct steer {
        unsigned queue = 0;
        bool has_hash = false;
        std::uint32_t hash = 0;
        std::uint8_t hash_type = 0;   // hash_type:: mask (1, 2, 4, 8); 0 without hash
        std::uint8_t extra_type = 0;  // the same as the rx HASH extra's `type` byte
                                      // (_XEN_NETIF_CTRL_HASH_TYPE_* bit number)
    };
    [[nodiscard]] steer select_queue(std::span<const std::byte> frame) const;

    // Requests by type and status, static maps/unmaps, grant copies, hash state.
    [[nodiscard]] nlohmann::json stats() const;
    // Static mappings held across all queues.
    [[nodiscard]] std::size_t mapped() const { return total_mapped_; }
    // What GET_GREF_MAPPING_SIZE answers: min(per-queue free, per-vif free).
    [[nodiscard]] std::size_t free_entries(unsigned queue) const;

    // Current hash configuration (read-only views).
    [[nodiscard]] std::uint32_t hash_algorithm() const { return alg_; }
    [[nodiscard]] std::uint32_t hash_flags() const { return flags_; }
    [[nodiscard]] std::span<const std::uint8_t> hash_key() const { return key_; }
    [[nodiscard]] std::span<const std::uint32_t> hash_mapping() const {
        return std::span(mapping_[sel_]).first(mapping_size_);
    }
    [[nodiscard]] unsigned num_queues() const { return num_queues_; }
    [[nodiscard]] domid_t frontend() const { return frontend_; }

private:
    struct result {
        std::uint32_t status = abi::ctrl_status::success;
        std::uint32_t data = 0;
    };
    // Request-count buckets: types 0..10, then one bucket for unknown types.
    static constexpr std::size_t type_buckets = abi::ctrl_type::del_gref_mapping + 2;
    static constexpr std::size_t status_buckets = abi::ctrl_status::buffer_overflow + 1;

    result dispatch(const abi::ctrl_request& req);
    // Hash messages (backend_handler.cpp).
    result get_hash_flags() const;
    result set_hash_flags(std::uint32_t flags);
    result set_hash_key(grant_ref_t ref, std::uint32_t len);
    result set_hash_mapping_size(std::uint32_t size);
    result set_hash_mapping(grant_ref_t ref, std::uint32_t len, std::uint32_t off);
    result set_hash_algorithm(std::uint32_t alg);
    // Static grants (backend_gref.cpp).
    result get_gref_mapping_size(std::uint32_t queue) const;
    result add_gref_mapping(std::uint32_t queue, grant_ref_t list_ref, std::uint32_t count);
    result del_gref_mapping(std::uint32_t queue, grant_ref_t list_ref, std::uint32_t count);
    bool copy_list(grant_ref_t list_ref, std::uint32_t count, bool need_writable);
    bool validate_add(unsigned queue, std::uint32_t count);
    // Sets list_[i].status: INVALID_PARAMETER for repeats of an earlier entry's
    // ref, SUCCESS otherwise. Returns the number of repeats.
    std::size_t flag_duplicates(std::uint32_t count);
    bool map_list(std::uint32_t count);
    void commit_add(unsigned queue, std::uint32_t count);
    std::uint32_t unmap_listed(unsigned queue, std::uint32_t count);
    void unmap_batch(std::size_t n);
    void unmap_queue(gref_table& t);

    // One grant-copy batch; counts copies and failures. True if every op succeeded.
    bool grant_copy(std::span<platform::copy_op> ops);
    result invalid(const char* what);

    platform::grant_mapper& mapper_;
    const domid_t frontend_;
    const unsigned num_queues_;
    const static_grant_limits lim_;

    // Hash state (netif-spec §2.3). mapping_ is double-buffered (XSA-270).
    std::uint32_t alg_ = hash_algorithm::none;
    std::uint32_t flags_ = 0;
    std::array<std::uint8_t, max_hash_key_size> key_{};
    std::array<std::array<std::uint32_t, max_hash_mapping_size>, 2> mapping_{};
    unsigned sel_ = 0;
    std::uint32_t mapping_size_ = 0;

    // Static grants.
    std::vector<gref_table> tables_;
    std::size_t total_mapped_ = 0;

    // Scratch, sized once: no allocation per request.
    std::array<abi::gref_entry, max_gref_list> list_{};
    std::array<std::uint64_t, max_gref_list> sorted_{};
    std::array<std::uint16_t, max_gref_list> op_entry_{};  // map_ops_[k] -> list_ index
    std::vector<platform::map_op> map_ops_;

    struct counters {
        std::array<std::array<std::uint64_t, status_buckets>, type_buckets> requests{};
        std::uint64_t static_maps = 0;         // successful map ops
        std::uint64_t static_unmaps = 0;       // successful unmap ops
        std::uint64_t map_errors = 0;          // map ops that failed (ADD rolled back)
        std::uint64_t unmap_errors = 0;        // unmap ops that failed (our bug or platform)
        std::uint64_t add_rollbacks = 0;       // ADDs undone after a map failure
        std::uint64_t del_busy = 0;            // DEL entries refused: in flight
        std::uint64_t teardown_inflight = 0;   // unmapped by unmap_all() while in flight
        std::uint64_t grant_copies = 0;        // copy ops issued
        std::uint64_t copy_errors = 0;         // copy ops that failed
    } c_;
    util::rate_limited log_limit_;
};

}  // namespace vifkit::ctrl
