// Control-ring dispatch, hash messages (types 1-7) and queue selection.
// Message semantics: netif-spec §2.3, Linux column (drivers/net/xen-netback/hash.c).
#include "vifkit/ctrl/backend_handler.hpp"

#include <algorithm>
#include <bit>
#include <stdexcept>

namespace vifkit::ctrl {

// Guest tables (hash mapping, gref lists) are little-endian u32/u16 arrays that
// we copy byte for byte into host integers.
static_assert(std::endian::native == std::endian::little, "netif wire data is little-endian");

namespace st = abi::ctrl_status;
namespace ty = abi::ctrl_type;

backend_handler::backend_handler(platform::grant_mapper& mapper, domid_t frontend,
                                 unsigned num_queues, static_grant_limits lim)
    : mapper_(mapper), frontend_(frontend), num_queues_(num_queues), lim_(lim) {
    if (num_queues == 0) throw std::invalid_argument("backend_handler: num_queues == 0");
    if (lim.per_queue > max_static_per_queue)
        throw std::invalid_argument("backend_handler: per_queue static grant limit too large");
    tables_.reserve(num_queues);
    for (unsigned q = 0; q < num_queues; ++q) tables_.emplace_back(lim.enabled ? lim.per_queue : 0);
    map_ops_.reserve(max_gref_list);
}

backend_handler::~backend_handler() { unmap_all(); }

gref_table& backend_handler::table(unsigned queue) { return tables_.at(queue); }
const gref_table& backend_handler::table(unsigned queue) const { return tables_.at(queue); }

abi::ctrl_response backend_handler::handle(const abi::ctrl_request& req) {
    const result r = dispatch(req);
    const std::size_t bucket = std::min<std::size_t>(req.type, type_buckets - 1);
    ++c_.requests[bucket][std::min<std::size_t>(r.status, status_buckets - 1)];
    return abi::ctrl_response{req.id, req.type, r.status, r.data};
}

backend_handler::result backend_handler::dispatch(const abi::ctrl_request& req) {
    const auto& d = req.data;
    switch (req.type) {
    case ty::get_hash_flags: return get_hash_flags();
    case ty::set_hash_flags: return set_hash_flags(d[0]);
    case ty::set_hash_key: return set_hash_key(d[0], d[1]);
    case ty::get_hash_mapping_size: return {st::success, max_hash_mapping_size};
    case ty::set_hash_mapping_size: return set_hash_mapping_size(d[0]);
    case ty::set_hash_mapping: return set_hash_mapping(d[0], d[1], d[2]);
    case ty::set_hash_algorithm: return set_hash_algorithm(d[0]);
    case ty::get_gref_mapping_size: return get_gref_mapping_size(d[0]);
    case ty::add_gref_mapping: return add_gref_mapping(d[0], d[1], d[2]);
    case ty::del_gref_mapping: return del_gref_mapping(d[0], d[1], d[2]);
    default: return {st::not_supported, 0};  // incl. type 0 (INVALID); what Linux does
    }
}

backend_handler::result backend_handler::invalid(const char* what) {
    if (log_limit_.allow())
        spdlog::warn("ctrl: frontend dom{}: {} -> INVALID_PARAMETER", frontend_, what);
    return {st::invalid_parameter, 0};
}

bool backend_handler::grant_copy(std::span<platform::copy_op> ops) {
    mapper_.copy(frontend_, ops);
    bool ok = true;
    for (const auto& op : ops) {
        ++c_.grant_copies;
        if (op.status != gnt_status::okay) {
            ++c_.copy_errors;
            ok = false;
        }
    }
    return ok;
}

// ---- hash messages ----

backend_handler::result backend_handler::get_hash_flags() const {
    if (alg_ == hash_algorithm::none) return {st::not_supported, 0};
    return {st::success, hash_type::all};
}

backend_handler::result backend_handler::set_hash_flags(std::uint32_t flags) {
    if ((flags & ~hash_type::all) != 0) return invalid("SET_HASH_FLAGS: unknown bits");
    if (alg_ == hash_algorithm::none) return invalid("SET_HASH_FLAGS: algorithm NONE");
    flags_ = flags;
    return {};
}

backend_handler::result backend_handler::set_hash_algorithm(std::uint32_t alg) {
    if (alg != hash_algorithm::none && alg != hash_algorithm::toeplitz)
        return invalid("SET_HASH_ALGORITHM: unknown algorithm");
    alg_ = alg;
    return {};
}

backend_handler::result backend_handler::set_hash_key(grant_ref_t ref, std::uint32_t len) {
    // Linux answers INVALID_PARAMETER (not BUFFER_OVERFLOW) for an oversized key.
    if (len > max_hash_key_size) return invalid("SET_HASH_KEY: key longer than 40 bytes");
    std::array<std::uint8_t, max_hash_key_size> key{};  // missing octets are zero
    if (len != 0) {
        platform::copy_op op;
        op.direction = platform::copy_op::dir::from_peer;
        op.ref = ref;
        op.len = static_cast<std::uint16_t>(len);
        op.local = key.data();
        if (!grant_copy(std::span(&op, 1))) return invalid("SET_HASH_KEY: grant copy failed");
    }
    key_ = key;  // len 0 clears the key: every hash is then 0
    return {};
}

backend_handler::result backend_handler::set_hash_mapping_size(std::uint32_t size) {
    if (size > max_hash_mapping_size) return invalid("SET_HASH_MAPPING_SIZE: too large");
    mapping_[sel_].fill(0);  // the new table is zero-filled (all to queue 0)
    mapping_size_ = size;
    return {};
}

backend_handler::result backend_handler::set_hash_mapping(grant_ref_t ref, std::uint32_t len,
                                                          std::uint32_t off) {
    // XSA-270: check for wrap, bound by the table, and only ever write the shadow.
    if (off + len < off || off + len > mapping_size_ || len > max_hash_mapping_copy)
        return invalid("SET_HASH_MAPPING: bad offset/length");
    auto& shadow = mapping_[sel_ ^ 1u];
    shadow = mapping_[sel_];  // ranges outside [off, off+len) are kept
    if (len != 0) {
        platform::copy_op op;
        op.direction = platform::copy_op::dir::from_peer;
        op.ref = ref;
        op.len = static_cast<std::uint16_t>(len * sizeof(std::uint32_t));
        op.local = shadow.data() + off;
        if (!grant_copy(std::span(&op, 1))) return invalid("SET_HASH_MAPPING: grant copy failed");
    }
    // Validate the private copy (never the guest page), then commit by swapping.
    for (std::uint32_t i = off; i < off + len; ++i)
        if (shadow[i] >= num_queues_) return invalid("SET_HASH_MAPPING: queue out of range");
    sel_ ^= 1u;
    return {};
}

backend_handler::steer backend_handler::select_queue(std::span<const std::byte> frame) const {
    if (alg_ == hash_algorithm::none) return {};
    const auto h = hash_frame(frame, flags_, key_);
    // No applicable type: Linux clears the skb hash and steers with hash 0.
    const std::uint32_t v = h ? h->value : 0;
    steer s;
    s.queue = mapping_size_ == 0 ? v % num_queues_ : mapping_[sel_][v % mapping_size_];
    if (h) {
        s.has_hash = true;
        s.hash = v;
        s.hash_type = static_cast<std::uint8_t>(h->type);
        s.extra_type = extra_hash_type(h->type);
    }
    return s;
}

// ---- stats ----

namespace {

const char* type_name(std::size_t t) {
    static constexpr const char* names[] = {
        "invalid", "get_hash_flags", "set_hash_flags", "set_hash_key",
        "get_hash_mapping_size", "set_hash_mapping_size", "set_hash_mapping",
        "set_hash_algorithm", "get_gref_mapping_size", "add_gref_mapping",
        "del_gref_mapping", "unknown"};
    return t < std::size(names) ? names[t] : "unknown";
}

const char* status_name(std::size_t s) {
    static constexpr const char* names[] = {"success", "not_supported", "invalid_parameter",
                                            "buffer_overflow"};
    return s < std::size(names) ? names[s] : "other";
}

}  // namespace

nlohmann::json backend_handler::stats() const {
    nlohmann::json req = nlohmann::json::object();
    for (std::size_t t = 0; t < type_buckets; ++t)
        for (std::size_t s = 0; s < status_buckets; ++s)
            req[type_name(t)][status_name(s)] = c_.requests[t][s];
    nlohmann::json per_queue = nlohmann::json::array();
    for (const auto& t : tables_) per_queue.push_back(t.size());
    return nlohmann::json{
        {"requests", req},
        {"static_grants",
         {{"enabled", lim_.enabled}, {"mapped", total_mapped_}, {"per_queue", per_queue},
          {"maps", c_.static_maps}, {"unmaps", c_.static_unmaps},
          {"map_errors", c_.map_errors}, {"unmap_errors", c_.unmap_errors},
          {"add_rollbacks", c_.add_rollbacks}, {"del_busy", c_.del_busy},
          {"teardown_inflight", c_.teardown_inflight}}},
        {"grant_copies", c_.grant_copies},
        {"copy_errors", c_.copy_errors},
        {"hash", {{"algorithm", alg_}, {"flags", flags_}, {"mapping_size", mapping_size_}}},
    };
}

}  // namespace vifkit::ctrl
