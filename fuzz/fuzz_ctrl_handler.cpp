// libFuzzer target: ctrl::backend_handler (netif-spec §1, §2), the backend's
// control-message handler, with the frontend's pages (hash key, mapping table,
// gref lists and the pages they name) under the fuzzer's control.
//
// Input: byte 0 = configuration (bits 0-1 num_queues - 1, bit 2 static grants
// disabled), then records; the low bits of a record's first byte select it:
//   0 request   16 bytes: struct xen_netif_ctrl_request, raw
//   1 page      u32 ref, u8 flags (bit0 writable, bit1 map fails, bit2 copy
//               fails), u16 offset, u16 len, len bytes: grant `ref` (if not yet)
//               and write the bytes into its page
//   2 revoke    u32 ref: the frontend revokes (refused while mapped, as Xen does)
//   3 steer     u8 len + frame bytes: backend_handler::select_queue()
//   4 reset     config byte, u16 per_queue, u16 per_vif: a new handler
//   5 inflight  u8 queue, u32 ref: the data path takes a reference on a mapping
// Multi-byte fields are little-endian. Seeds: tests/unit/ctrl (ctrl_fixture.hpp).
//
// The grant_mapper is an in-process fake over page-sized heap blocks (ASan
// sees any access past a page). It aborts on an unmap of something the handler
// never mapped; after every request the handler's bookkeeping must match the
// mapper's, and tearing the handler down must release every mapping.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "input_reader.hpp"
#include "vifkit/abi/netif.hpp"
#include "vifkit/ctrl/backend_handler.hpp"
#include "vifkit/platform/grant.hpp"
#include "vifkit/util/log.hpp"

namespace {

using namespace vifkit;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_ctrl_handler: %s\n", what);
    std::abort();
}
#define CHECK(c) \
    do {         \
        if (!(c)) fail("check failed: " #c); \
    } while (0)

constexpr domid_t front_id = 7;
constexpr std::size_t max_grants = 64;

struct page_deleter {
    void operator()(std::byte* p) const { std::free(p); }
};

class fake_mapper final : public platform::grant_mapper {
public:
    struct grant {
        std::unique_ptr<std::byte, page_deleter> page;
        bool writable = false;
        bool map_fails = false;
        bool copy_fails = false;
        unsigned maps = 0;
    };

    grant* find(grant_ref_t ref) {
        auto it = grants_.find(ref);
        return it == grants_.end() ? nullptr : &it->second;
    }
    grant* share(grant_ref_t ref, std::uint8_t flags) {
        grant* g = find(ref);
        if (!g) {
            if (grants_.size() >= max_grants) return nullptr;
            g = &grants_[ref];
            g->page.reset(static_cast<std::byte*>(std::aligned_alloc(page_size, page_size)));
            std::memset(g->page.get(), 0, page_size);
        }
        g->writable = (flags & 1) != 0;
        g->map_fails = (flags & 2) != 0;
        g->copy_fails = (flags & 4) != 0;
        return g;
    }
    void revoke(grant_ref_t ref) {
        auto it = grants_.find(ref);
        if (it != grants_.end() && it->second.maps == 0) grants_.erase(it);
    }

    void map(domid_t peer, std::span<platform::map_op> ops) override {
        for (auto& op : ops) {
            grant* g = peer == front_id ? find(op.ref) : nullptr;
            if (!g) {
                op.status = peer == front_id ? gnt_status::bad_gntref : gnt_status::bad_domain;
            } else if (g->map_fails) {
                op.status = gnt_status::no_space;
            } else if (!op.readonly && !g->writable) {
                op.status = gnt_status::permission_denied;
            } else {
                op.handle = ++next_handle_;
                op.addr = g->page.get();
                handles_[op.handle] = {op.ref, op.addr};
                ++g->maps;
                op.status = gnt_status::okay;
            }
        }
    }
    void unmap(std::span<platform::map_op> ops) override {
        for (auto& op : ops) {
            auto it = handles_.find(op.handle);
            if (it == handles_.end() || it->second.addr != op.addr) fail("unmap of a handle that is not mapped");
            grant* g = find(it->second.ref);
            CHECK(g && g->maps > 0);
            --g->maps;
            handles_.erase(it);
            op.status = gnt_status::okay;
        }
    }
    void copy(domid_t peer, std::span<platform::copy_op> ops) override {
        for (auto& op : ops) {
            grant* g = peer == front_id ? find(op.ref) : nullptr;
            if (!g) {
                op.status = gnt_status::bad_gntref;
            } else if (std::uint32_t{op.offset} + op.len > page_size) {
                op.status = gnt_status::bad_copy_arg;
            } else if (g->copy_fails) {
                op.status = gnt_status::general_error;
            } else if (op.direction == platform::copy_op::dir::to_peer && !g->writable) {
                op.status = gnt_status::permission_denied;
            } else {
                if (op.len != 0) {
                    CHECK(op.local != nullptr);
                    std::byte* remote = g->page.get() + op.offset;
                    if (op.direction == platform::copy_op::dir::from_peer)
                        std::memcpy(op.local, remote, op.len);
                    else
                        std::memcpy(remote, op.local, op.len);
                }
                op.status = gnt_status::okay;
            }
        }
    }
    [[nodiscard]] std::size_t mapped_count() const override { return handles_.size(); }

private:
    struct mapping {
        grant_ref_t ref;
        void* addr;
    };
    std::map<grant_ref_t, grant> grants_;
    std::map<std::uint64_t, mapping> handles_;
    std::uint64_t next_handle_ = 0;
};

using reader = fuzz::input_reader;

std::unique_ptr<ctrl::backend_handler> make_handler(fake_mapper& m, std::uint8_t cfg, unsigned per_queue,
                                                    unsigned per_vif) {
    ctrl::static_grant_limits lim;
    lim.enabled = (cfg & 4) == 0;
    lim.per_queue = std::min(per_queue, 1024u);
    lim.per_vif = std::min(per_vif, 4096u);
    return std::make_unique<ctrl::backend_handler>(m, front_id, (cfg & 3u) + 1, lim);
}

void check_books(const ctrl::backend_handler& h, const fake_mapper& m) {
    CHECK(h.mapped() == m.mapped_count());
    std::size_t sum = 0;
    for (unsigned q = 0; q < h.num_queues(); ++q) sum += h.table(q).size();
    CHECK(sum == h.mapped());
    CHECK(h.hash_mapping().size() <= ctrl::max_hash_mapping_size);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    util::init_logging("fuzz_ctrl_handler", "off");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    reader in(data, size);
    std::uint8_t cfg = 0;
    if (!in.get(cfg)) return 0;
    fake_mapper m;
    auto h = make_handler(m, cfg, 1024, 4096);
    std::vector<std::pair<unsigned, grant_ref_t>> inflight;
    auto release_inflight = [&] {
        for (auto [q, ref] : inflight)
            if (auto* e = h->table(q).find(ref)) ctrl::gref_table::release(*e);
        inflight.clear();
    };
    for (unsigned steps = 0; !in.empty() && steps < 256; ++steps) {
        std::uint8_t op = 0;
        in.get(op);
        switch (op % 6) {
        case 0: {
            abi::ctrl_request req{};
            if (!in.get(req)) break;
            const abi::ctrl_response rsp = h->handle(req);
            CHECK(rsp.id == req.id && rsp.type == req.type);
            CHECK(rsp.status <= abi::ctrl_status::buffer_overflow);
            check_books(*h, m);
            break;
        }
        case 1: {
            std::uint32_t ref = 0;
            std::uint8_t flags = 0;
            std::uint16_t off = 0, len = 0;
            if (!in.get(ref) || !in.get(flags) || !in.get(off) || !in.get(len)) break;
            off = static_cast<std::uint16_t>(off % page_size);
            const auto bytes = in.take(std::min<std::size_t>(len, page_size - off));
            if (auto* g = m.share(ref, flags)) std::memcpy(g->page.get() + off, bytes.data(), bytes.size());
            break;
        }
        case 2: {
            std::uint32_t ref = 0;
            if (in.get(ref)) m.revoke(ref);
            break;
        }
        case 3: {
            std::uint8_t len = 0;
            if (!in.get(len)) break;
            const auto frame = in.take(len);
            const auto s = h->select_queue(std::as_bytes(frame));
            CHECK(s.queue < h->num_queues());
            if (!s.has_hash) CHECK(s.hash_type == 0);
            break;
        }
        case 4: {
            std::uint8_t c = 0;
            std::uint16_t pq = 0, pv = 0;
            if (!in.get(c) || !in.get(pq) || !in.get(pv)) break;
            release_inflight();
            h.reset();
            CHECK(m.mapped_count() == 0);
            h = make_handler(m, c, pq, pv);
            break;
        }
        case 5: {
            std::uint8_t q = 0;
            std::uint32_t ref = 0;
            if (!in.get(q) || !in.get(ref)) break;
            q = static_cast<std::uint8_t>(q % h->num_queues());
            if (auto* e = h->table(q).find(ref)) {
                ctrl::gref_table::acquire(*e);
                inflight.emplace_back(q, ref);
            }
            break;
        }
        }
    }
    (void)h->stats();
    h.reset();  // unmap_all(): in-flight entries are torn down too
    CHECK(m.mapped_count() == 0);
    return 0;
}
