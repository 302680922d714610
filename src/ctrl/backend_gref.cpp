// Static grants: GET/ADD/DEL_GREF_MAPPING (netif-spec §1.4, recommendations of
// §1.5, §7 corollary). Parameters are checked before any grant access; the gref
// list is grant-copied into list_ once and only that copy is used; every loop is
// bounded by max_gref_list (or a table's fixed capacity).
#include <algorithm>
#include <cassert>

#include "vifkit/ctrl/backend_handler.hpp"

namespace vifkit::ctrl {

namespace st = abi::ctrl_status;

std::size_t backend_handler::free_entries(unsigned queue) const {
    if (!lim_.enabled || queue >= num_queues_) return 0;
    const std::size_t vif_free = lim_.per_vif > total_mapped_ ? lim_.per_vif - total_mapped_ : 0;
    return std::min(tables_[queue].free(), vif_free);
}

backend_handler::result backend_handler::get_gref_mapping_size(std::uint32_t queue) const {
    if (!lim_.enabled) return {st::not_supported, 0};
    if (queue >= num_queues_) return {st::invalid_parameter, 0};
    // netif-spec §1.5: free slots (equals the maximum on a fresh queue).
    return {st::success, static_cast<std::uint32_t>(free_entries(queue))};
}

backend_handler::result backend_handler::add_gref_mapping(std::uint32_t queue, grant_ref_t list_ref,
                                                          std::uint32_t count) {
    if (!lim_.enabled) return {st::not_supported, 0};
    // Before touching the page: a list is one page at most, and never more than
    // the frontend may still map.
    if (queue >= num_queues_) return invalid("ADD_GREF_MAPPING: queue out of range");
    if (count == 0 || count > max_gref_list || count > free_entries(queue))
        return invalid("ADD_GREF_MAPPING: bad entry count");
    // Only reads the list: a read-only list grant is fine.
    if (!copy_list(list_ref, count, false)) return invalid("ADD_GREF_MAPPING: list page not readable");
    if (!validate_add(queue, count)) return invalid("ADD_GREF_MAPPING: bad list");
    if (!map_list(count)) return invalid("ADD_GREF_MAPPING: map failed, rolled back");
    commit_add(queue, count);
    return {st::success, 0};
}

backend_handler::result backend_handler::del_gref_mapping(std::uint32_t queue, grant_ref_t list_ref,
                                                          std::uint32_t count) {
    if (!lim_.enabled) return {st::not_supported, 0};
    if (queue >= num_queues_) return invalid("DEL_GREF_MAPPING: queue out of range");
    if (count == 0 || count > max_gref_list) return invalid("DEL_GREF_MAPPING: bad entry count");
    // The list must be writable (statuses go back): probed before unmapping anything.
    if (!copy_list(list_ref, count, true)) return invalid("DEL_GREF_MAPPING: list page not writable");
    const std::uint32_t removed = unmap_listed(queue, count);
    platform::copy_op op;
    op.direction = platform::copy_op::dir::to_peer;
    op.ref = list_ref;
    op.len = static_cast<std::uint16_t>(count * sizeof(abi::gref_entry));
    op.local = list_.data();
    if (!grant_copy(std::span(&op, 1))) {
        // Lost write access after the probe: what was unmapped stays unmapped.
        (void)invalid("DEL_GREF_MAPPING: status write-back failed");
        return {st::invalid_parameter, removed};
    }
    return {st::success, removed};
}

bool backend_handler::copy_list(grant_ref_t list_ref, std::uint32_t count, bool need_writable) {
    std::array<platform::copy_op, 2> ops{};
    ops[0].direction = platform::copy_op::dir::from_peer;
    ops[0].ref = list_ref;
    ops[0].len = static_cast<std::uint16_t>(count * sizeof(abi::gref_entry));  // <= page_size
    ops[0].local = list_.data();
    // Zero-length write: the grant is validated for writing but no data moves.
    ops[1].direction = platform::copy_op::dir::to_peer;
    ops[1].ref = list_ref;
    ops[1].len = 0;
    ops[1].local = list_.data();
    return grant_copy(std::span(ops).first(need_writable ? 2 : 1));
}

std::size_t backend_handler::flag_duplicates(std::uint32_t count) {
    // (ref, index) pairs sorted: within a run of one ref the lowest index comes
    // first and is the one kept. O(n log n), n <= 512.
    if (count == 0) return 0;
    for (std::uint32_t i = 0; i < count; ++i) sorted_[i] = (std::uint64_t{list_[i].ref} << 32) | i;
    std::sort(sorted_.begin(), sorted_.begin() + count);
    std::size_t dups = 0;
    list_[sorted_[0] & 0xFFFFFFFFu].status = static_cast<std::uint16_t>(st::success);
    for (std::uint32_t k = 1; k < count; ++k) {
        const bool dup = (sorted_[k] >> 32) == (sorted_[k - 1] >> 32);
        list_[sorted_[k] & 0xFFFFFFFFu].status =
            static_cast<std::uint16_t>(dup ? st::invalid_parameter : st::success);
        dups += dup ? 1 : 0;
    }
    return dups;
}

bool backend_handler::validate_add(unsigned queue, std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i) {
        if ((list_[i].flags & ~abi::gref_flag_readonly) != 0) return false;  // unknown flags
        if (tables_[queue].find(list_[i].ref) != nullptr) return false;       // already mapped
    }
    return flag_duplicates(count) == 0;  // repeated within the list
}

bool backend_handler::map_list(std::uint32_t count) {
    map_ops_.resize(count);  // reserved to max_gref_list: no allocation
    for (std::uint32_t i = 0; i < count; ++i) {
        map_ops_[i] = platform::map_op{};
        map_ops_[i].ref = list_[i].ref;
        map_ops_[i].readonly = (list_[i].flags & abi::gref_flag_readonly) != 0;
    }
    mapper_.map(frontend_, map_ops_);
    std::size_t ok = 0;
    for (std::uint32_t i = 0; i < count; ++i) {
        if (map_ops_[i].status != gnt_status::okay) continue;
        map_ops_[ok++] = map_ops_[i];  // compact the successes to the front
    }
    c_.static_maps += ok;
    c_.map_errors += count - ok;
    if (ok == count) return true;
    // All or nothing (netif-spec §1.4): undo the mappings that did succeed.
    ++c_.add_rollbacks;
    unmap_batch(ok);
    return false;
}

void backend_handler::commit_add(unsigned queue, std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i) {
        const auto& op = map_ops_[i];
        // Cannot fail: count <= free and no ref is present or repeated (validated).
        [[maybe_unused]] auto* e = tables_[queue].insert(op.ref, op.addr, op.handle, op.readonly);
        assert(e != nullptr);
    }
    total_mapped_ += count;
}

std::uint32_t backend_handler::unmap_listed(unsigned queue, std::uint32_t count) {
    gref_table& t = tables_[queue];
    flag_duplicates(count);
    map_ops_.clear();
    for (std::uint32_t i = 0; i < count; ++i) {
        if (list_[i].status != st::success) continue;  // repeated ref
        const gref_table::entry* e = t.find(list_[i].ref);
        const bool busy = e != nullptr && e->inflight != 0;
        c_.del_busy += busy ? 1 : 0;
        if (e == nullptr || busy) {  // not ADDed to this queue, or in use: keep it
            list_[i].status = static_cast<std::uint16_t>(st::invalid_parameter);
            continue;
        }
        platform::map_op op;
        op.ref = e->ref;
        op.readonly = e->readonly;
        op.addr = e->addr;
        op.handle = e->handle;
        op_entry_[map_ops_.size()] = static_cast<std::uint16_t>(i);
        map_ops_.push_back(op);  // <= max_gref_list: within the reservation
    }
    mapper_.unmap(map_ops_);
    std::uint32_t removed = 0;
    for (std::size_t k = 0; k < map_ops_.size(); ++k) {
        auto& status = list_[op_entry_[k]].status;
        if (map_ops_[k].status != gnt_status::okay) {
            // Still (possibly) mapped: keep it tracked so unmap_all() retries.
            ++c_.unmap_errors;
            status = static_cast<std::uint16_t>(st::invalid_parameter);
            continue;
        }
        ++c_.static_unmaps;
        t.erase(map_ops_[k].ref);
        ++removed;
    }
    total_mapped_ -= removed;
    return removed;
}

void backend_handler::unmap_batch(std::size_t n) {
    auto ops = std::span(map_ops_).first(n);
    mapper_.unmap(ops);
    for (const auto& op : ops) {
        if (op.status == gnt_status::okay) ++c_.static_unmaps;
        else ++c_.unmap_errors;
    }
}

void backend_handler::unmap_queue(gref_table& t) {
    map_ops_.clear();
    t.for_each([this](const gref_table::entry& e) {
        if (e.inflight != 0) ++c_.teardown_inflight;
        platform::map_op op;
        op.ref = e.ref;
        op.readonly = e.readonly;
        op.addr = e.addr;
        op.handle = e.handle;
        map_ops_.push_back(op);
        if (map_ops_.size() == max_gref_list) {  // flush in bounded batches
            unmap_batch(map_ops_.size());
            map_ops_.clear();
        }
    });
    unmap_batch(map_ops_.size());
    map_ops_.clear();
    // A failed unmap leaves nothing we could retry with: drop it either way.
    total_mapped_ -= t.size();
    t.clear();
}

void backend_handler::unmap_all() {
    for (auto& t : tables_) unmap_queue(t);
}

}  // namespace vifkit::ctrl
