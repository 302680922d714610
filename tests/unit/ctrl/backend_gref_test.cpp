// Static grants (GET/ADD/DEL_GREF_MAPPING, netif-spec §1.4 with the §1.5
// recommendations) against a real emulated frontend in its own process: one
// test per message for the valid case and each invalid parameter or boundary.
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>

#include "ctrl_fixture.hpp"

namespace vifkit::ctrl::test {
namespace {

namespace ty = abi::ctrl_type;
namespace st = abi::ctrl_status;
namespace gtf = emu::gtf;

constexpr std::uint16_t ro = abi::gref_flag_readonly;
constexpr std::uint16_t untouched = 0xFFFF;  // make_list()'s status pre-set

// Permissions of our mapping containing `addr` ("rw-s" / "r--s").
std::string perms_of(const void* addr) {
    std::ifstream maps("/proc/self/maps");
    const auto a = reinterpret_cast<std::uintptr_t>(addr);
    for (std::string line; std::getline(maps, line);) {
        std::istringstream in(line);
        std::uintptr_t lo = 0, hi = 0;
        char dash = 0;
        std::string perms;
        in >> std::hex >> lo >> dash >> hi >> perms;
        if (a >= lo && a < hi) return perms;
    }
    return {};
}

class CtrlGref : public CtrlFixture {
protected:
    std::vector<grant_ref_t> grant(std::size_t n, bool writable = true) { return front_.share(0, n, writable); }

    grant_ref_t list_page(const std::vector<abi::gref_entry>& list, bool writable = true) {
        const auto page = front_.share(0, 1, writable).at(0);
        front_.write_list(page, list);
        return page;
    }
    abi::ctrl_response add(unsigned q, std::span<const grant_ref_t> refs, std::uint16_t flags = 0) {
        return call(ty::add_gref_mapping, q, list_page(make_list(refs, flags)),
                    static_cast<std::uint32_t>(refs.size()));
    }
    struct del_result {
        abi::ctrl_response rsp;
        std::vector<std::uint16_t> status;
    };
    del_result del(unsigned q, std::span<const grant_ref_t> refs) {
        const auto page = list_page(make_list(refs));
        const auto rsp = call(ty::del_gref_mapping, q, page, static_cast<std::uint32_t>(refs.size()));
        del_result r{rsp, {}};
        const auto list = front_.read_list(page, refs.size());
        for (std::size_t i = 0; i < list.size(); ++i) {
            EXPECT_EQ(list[i].ref, refs[i]);  // refs and flags written back unchanged
            r.status.push_back(list[i].status);
        }
        return r;
    }
    abi::ctrl_response get(std::uint32_t q) { return call(ty::get_gref_mapping_size, q); }

    void expect_no_mappings() {
        EXPECT_EQ(h_->mapped(), 0U);
        EXPECT_EQ(mapper_->mapped_count(), 0U);
        for (unsigned q = 0; q < h_->num_queues(); ++q) EXPECT_EQ(h_->table(q).size(), 0U);
    }
    // Every ref can be revoked: the backend holds no pin on any of them.
    void expect_revocable(std::span<const grant_ref_t> refs) {
        for (const auto s : front_.unshare(refs)) EXPECT_EQ(s, gnt_status::okay);
    }
    std::uint64_t stat(const char* name) const {
        return h_->stats()["static_grants"][name].get<std::uint64_t>();
    }
};

// A grant_mapper whose writes to the frontend (with data) fail, as if the
// frontend revoked the list grant between DEL's write probe and its write-back.
class no_writeback_mapper final : public platform::grant_mapper {
public:
    explicit no_writeback_mapper(platform::grant_mapper& real) : real_(real) {}
    void map(domid_t peer, std::span<platform::map_op> ops) override { real_.map(peer, ops); }
    void unmap(std::span<platform::map_op> ops) override { real_.unmap(ops); }
    void copy(domid_t peer, std::span<platform::copy_op> ops) override {
        std::vector<platform::copy_op> pass;
        std::vector<std::size_t> idx;
        for (std::size_t i = 0; i < ops.size(); ++i) {
            if (ops[i].direction == platform::copy_op::dir::to_peer && ops[i].len != 0) {
                ops[i].status = gnt_status::permission_denied;
                continue;
            }
            pass.push_back(ops[i]);
            idx.push_back(i);
        }
        real_.copy(peer, pass);
        for (std::size_t k = 0; k < pass.size(); ++k) ops[idx[k]].status = pass[k].status;
    }
    [[nodiscard]] std::size_t mapped_count() const override { return real_.mapped_count(); }

private:
    platform::grant_mapper& real_;
};

// ---- GET_GREF_MAPPING_SIZE ----

TEST_F(CtrlGref, GetOnFreshQueueIsThePerQueueLimit) {
    for (unsigned q = 0; q < default_queues; ++q) {
        const auto rsp = get(q);
        EXPECT_EQ(rsp.status, st::success);
        EXPECT_EQ(rsp.data, 1024U);
    }
    reset_handler({true, 8, 12});
    EXPECT_EQ(get(0).data, 8U);
    reset_handler({true, 64, 10});  // per-vif smaller than per-queue
    EXPECT_EQ(get(1).data, 10U);
}

TEST_F(CtrlGref, GetQueueOutOfRangeIsInvalid) {
    for (const std::uint32_t q : {default_queues, default_queues + 1, 0xFFFFFFFFU}) {
        const auto rsp = get(q);
        EXPECT_EQ(rsp.status, st::invalid_parameter) << q;
        EXPECT_EQ(rsp.data, 0U);
    }
}

TEST_F(CtrlGref, GetAfterAddsReturnsFreeEntries) {
    reset_handler({true, 16, 100});
    ASSERT_EQ(add(0, grant(5)).status, st::success);
    EXPECT_EQ(get(0).data, 11U);
    ASSERT_EQ(add(0, grant(3)).status, st::success);
    EXPECT_EQ(get(0).data, 8U);
    EXPECT_EQ(get(1).data, 16U);  // per-queue tables
}

TEST_F(CtrlGref, DisabledStaticGrantsAreNotSupported) {
    reset_handler({false, 1024, 4096});
    const auto refs = grant(2);
    const auto page = list_page(make_list(refs));
    for (const std::uint16_t type : {ty::get_gref_mapping_size, ty::add_gref_mapping, ty::del_gref_mapping}) {
        for (const std::uint32_t q : {0U, 99U}) {
            const auto rsp = call(type, q, page, 2);
            EXPECT_EQ(rsp.status, st::not_supported) << type;
            EXPECT_EQ(rsp.data, 0U);
        }
    }
    EXPECT_EQ(copies(), 0U);
    expect_no_mappings();
}

// ---- ADD_GREF_MAPPING ----

TEST_F(CtrlGref, AddOneEntryMapsItWritable) {
    const auto refs = grant(1);
    front_.write(refs[0], 100, std::vector<std::uint8_t>(16, 0xA5));
    const auto page = list_page(make_list(refs));
    const auto rsp = call(ty::add_gref_mapping, 0, page, 1);
    EXPECT_EQ(rsp.status, st::success);
    EXPECT_EQ(rsp.data, 0U);
    EXPECT_EQ(h_->mapped(), 1U);
    EXPECT_EQ(mapper_->mapped_count(), 1U);
    auto* e = h_->table(0).find(refs[0]);
    ASSERT_NE(e, nullptr);
    EXPECT_FALSE(e->readonly);
    EXPECT_EQ(perms_of(e->addr), "rw-s");
    EXPECT_EQ(static_cast<const std::uint8_t*>(e->addr)[100], 0xA5);
    std::memset(static_cast<std::uint8_t*>(e->addr) + 200, 0x3C, 8);  // rx-style write
    EXPECT_EQ(front_.read(refs[0], 200, 8), std::vector<std::uint8_t>(8, 0x3C));
    EXPECT_EQ(front_.entry(refs[0]).flags & (gtf::reading | gtf::writing), gtf::reading | gtf::writing);
    EXPECT_EQ(h_->table(1).find(refs[0]), nullptr);
    EXPECT_EQ(front_.read_list(page, 1)[0].status, untouched);  // ADD writes no status
}

TEST_F(CtrlGref, AddReadOnlyEntryIsMappedReadOnly) {
    const auto rw_grant = grant(1);
    const auto ro_grant = grant(1, false);
    ASSERT_EQ(add(0, rw_grant, ro).status, st::success);
    ASSERT_EQ(add(0, ro_grant, ro).status, st::success);
    for (const auto ref : {rw_grant[0], ro_grant[0]}) {
        const auto* e = h_->table(0).find(ref);
        ASSERT_NE(e, nullptr);
        EXPECT_TRUE(e->readonly);
        EXPECT_EQ(perms_of(e->addr), "r--s");
        EXPECT_EQ(front_.entry(ref).flags & (gtf::reading | gtf::writing), gtf::reading);
    }
}

TEST_F(CtrlGref, AddWritableEntryOfReadOnlyGrantFails) {
    const auto ro_grant = grant(1, false);
    EXPECT_EQ(add(0, ro_grant).status, st::invalid_parameter);
    expect_no_mappings();
    expect_revocable(ro_grant);
}

TEST_F(CtrlGref, AddCountZeroIsInvalid) {
    const auto page = list_page(make_list(grant(1)));
    EXPECT_EQ(call(ty::add_gref_mapping, 0, page, 0).status, st::invalid_parameter);
    EXPECT_EQ(copies(), 0U);
    expect_no_mappings();
}

TEST_F(CtrlGref, AddOneEntryIsTheMinimum) {
    const auto refs = grant(1);
    EXPECT_EQ(add(1, refs).status, st::success);
    EXPECT_EQ(h_->table(1).size(), 1U);
    EXPECT_EQ(copies(), 1U);  // the list page, copied once
}

TEST_F(CtrlGref, Add512EntriesFromOnePage) {
    const auto refs = grant(512);
    const auto rsp = add(0, refs);
    EXPECT_EQ(rsp.status, st::success);
    EXPECT_EQ(h_->mapped(), 512U);
    EXPECT_EQ(mapper_->mapped_count(), 512U);
    for (const auto r : refs) EXPECT_NE(h_->table(0).find(r), nullptr);
    EXPECT_EQ(get(0).data, 1024U - 512U);
    EXPECT_EQ(stat("maps"), 512U);
}

TEST_F(CtrlGref, Add513IsInvalidBeforeTouchingThePage) {
    const auto page = list_page(make_list(grant(4)));
    for (const std::uint32_t n : {513U, 4096U, 0xFFFFFFFFU})
        EXPECT_EQ(call(ty::add_gref_mapping, 0, page, n).status, st::invalid_parameter) << n;
    EXPECT_EQ(copies(), 0U);
    expect_no_mappings();
}

TEST_F(CtrlGref, AddMoreThanPerQueueFreeIsInvalid) {
    reset_handler({true, 4, 100});
    const auto refs = grant(6);
    EXPECT_EQ(add(0, std::span(refs).first(5)).status, st::invalid_parameter);
    EXPECT_EQ(copies(), 0U);  // count > free is checked before the page
    EXPECT_EQ(add(0, std::span(refs).first(4)).status, st::success);
    EXPECT_EQ(get(0).data, 0U);
    EXPECT_EQ(add(0, std::span(refs).subspan(4, 1)).status, st::invalid_parameter);
    EXPECT_EQ(h_->mapped(), 4U);
    EXPECT_EQ(add(1, std::span(refs).subspan(4, 2)).status, st::success);  // other queue has room
}

TEST_F(CtrlGref, PerVifLimitIsSharedAcrossQueues) {
    reset_handler({true, 8, 12});
    const auto refs = grant(14);
    const auto r = std::span(refs);
    ASSERT_EQ(add(0, r.first(8)).status, st::success);
    EXPECT_EQ(get(0).data, 0U);
    EXPECT_EQ(get(1).data, 4U);
    EXPECT_EQ(add(1, r.subspan(8, 5)).status, st::invalid_parameter);
    EXPECT_EQ(add(1, r.subspan(8, 4)).status, st::success);
    EXPECT_EQ(get(1).data, 0U);
    EXPECT_EQ(add(1, r.subspan(12, 1)).status, st::invalid_parameter);
    EXPECT_EQ(h_->mapped(), 12U);
    // Freeing two on queue 0 frees two for the vif.
    ASSERT_EQ(del(0, r.first(2)).rsp.data, 2U);
    EXPECT_EQ(get(0).data, 2U);
    EXPECT_EQ(get(1).data, 2U);
}

TEST_F(CtrlGref, AddWrongQueueIsInvalid) {
    const auto refs = grant(2);
    for (const std::uint32_t q : {default_queues, 0xFFFFFFFFU})
        EXPECT_EQ(call(ty::add_gref_mapping, q, list_page(make_list(refs)), 2).status, st::invalid_parameter);
    EXPECT_EQ(copies(), 0U);
    expect_no_mappings();
}

TEST_F(CtrlGref, AddFromUngrantedListPageIsInvalid) {
    const auto refs = grant(2);
    EXPECT_EQ(call(ty::add_gref_mapping, 0, 1500, 2).status, st::invalid_parameter);      // never granted
    EXPECT_EQ(call(ty::add_gref_mapping, 0, 1U << 24, 2).status, st::invalid_parameter);  // outside table
    const auto elsewhere = front_.share(9, 1, true).at(0);  // granted to another domain
    front_.write_list(elsewhere, make_list(refs));
    EXPECT_EQ(call(ty::add_gref_mapping, 0, elsewhere, 2).status, st::invalid_parameter);
    expect_no_mappings();
    expect_revocable(refs);
}

TEST_F(CtrlGref, AddFromReadOnlyListPageIsAccepted) {
    // ADD only reads the list (its per-entry status is unused), so a read-only
    // list grant is enough. Documented in backend_handler.hpp.
    const auto refs = grant(3);
    const auto page = list_page(make_list(refs), false);
    EXPECT_EQ(call(ty::add_gref_mapping, 0, page, 3).status, st::success);
    EXPECT_EQ(h_->mapped(), 3U);
}

TEST_F(CtrlGref, AddDuplicateWithinListIsInvalid) {
    const auto refs = grant(2);
    const std::vector<grant_ref_t> list = {refs[0], refs[1], refs[0]};
    EXPECT_EQ(add(0, list).status, st::invalid_parameter);
    expect_no_mappings();
    EXPECT_EQ(front_.entry(refs[0]).flags & gtf::reading, 0);
    EXPECT_EQ(stat("maps"), 0U);  // rejected before mapping
}

TEST_F(CtrlGref, AddDuplicateAgainstTableIsInvalid) {
    const auto refs = grant(2);
    ASSERT_EQ(add(0, std::span(refs).first(1)).status, st::success);
    const std::vector<grant_ref_t> list = {refs[1], refs[0]};
    EXPECT_EQ(add(0, list).status, st::invalid_parameter);
    EXPECT_EQ(h_->mapped(), 1U);
    EXPECT_EQ(mapper_->mapped_count(), 1U);
    EXPECT_EQ(h_->table(0).find(refs[1]), nullptr);
    // The same gref may be in another queue's table (tables are per queue).
    EXPECT_EQ(add(1, std::span(refs).first(1)).status, st::success);
}

TEST_F(CtrlGref, AddUnknownFlagsIsInvalid) {
    const auto refs = grant(1);
    for (const std::uint16_t flags : {std::uint16_t{0x2}, std::uint16_t{0x3}, std::uint16_t{0x8000}})
        EXPECT_EQ(add(0, refs, flags).status, st::invalid_parameter) << flags;
    expect_no_mappings();
}

TEST_F(CtrlGref, FailedAddLeavesZeroMappings) {
    auto refs = grant(6);
    refs.insert(refs.begin() + 3, 1900);  // not granted: its map fails mid-batch
    EXPECT_EQ(add(0, refs).status, st::invalid_parameter);
    expect_no_mappings();
    EXPECT_EQ(stat("maps"), 6U);
    EXPECT_EQ(stat("unmaps"), 6U);
    EXPECT_EQ(stat("map_errors"), 1U);
    EXPECT_EQ(stat("add_rollbacks"), 1U);
    refs.erase(refs.begin() + 3);
    expect_revocable(refs);
}

// ---- DEL_GREF_MAPPING ----

TEST_F(CtrlGref, DelRemovesAndWritesStatuses) {
    const auto refs = grant(3);
    ASSERT_EQ(add(0, refs).status, st::success);
    const auto r = del(0, refs);
    EXPECT_EQ(r.rsp.status, st::success);
    EXPECT_EQ(r.rsp.data, 3U);
    EXPECT_EQ(r.status, std::vector<std::uint16_t>(3, st::success));
    expect_no_mappings();
    expect_revocable(refs);
    EXPECT_EQ(get(0).data, 1024U);
}

TEST_F(CtrlGref, DelReportsEachEntry) {
    const auto refs = grant(3);
    ASSERT_EQ(add(0, std::span(refs).first(2)).status, st::success);
    // refs[2] was never added; refs[0] appears twice (only the first counts).
    const std::vector<grant_ref_t> list = {refs[0], refs[2], refs[1], refs[0], 0xFFFFFFFFU};
    const auto r = del(0, list);
    EXPECT_EQ(r.rsp.status, st::success);
    EXPECT_EQ(r.rsp.data, 2U);
    const std::vector<std::uint16_t> want = {st::success, st::invalid_parameter, st::success,
                                             st::invalid_parameter, st::invalid_parameter};
    EXPECT_EQ(r.status, want);
    expect_no_mappings();
}

TEST_F(CtrlGref, DelFromAnotherQueueDoesNotRemove) {
    const auto refs = grant(2);
    ASSERT_EQ(add(1, refs).status, st::success);
    const auto r = del(0, refs);
    EXPECT_EQ(r.rsp.status, st::success);
    EXPECT_EQ(r.rsp.data, 0U);
    EXPECT_EQ(r.status, std::vector<std::uint16_t>(2, st::invalid_parameter));
    EXPECT_EQ(h_->mapped(), 2U);
}

TEST_F(CtrlGref, DelCountZeroOr513IsInvalid) {
    const auto refs = grant(1);
    ASSERT_EQ(add(0, refs).status, st::success);
    const auto copies_before = copies();
    const auto page = list_page(make_list(refs));
    for (const std::uint32_t n : {0U, 513U, 0xFFFFFFFFU})
        EXPECT_EQ(call(ty::del_gref_mapping, 0, page, n).status, st::invalid_parameter) << n;
    EXPECT_EQ(copies(), copies_before);
    EXPECT_EQ(h_->mapped(), 1U);
}

TEST_F(CtrlGref, DelWrongQueueIsInvalid) {
    const auto refs = grant(1);
    ASSERT_EQ(add(0, refs).status, st::success);
    const auto copies_before = copies();
    const auto page = list_page(make_list(refs));
    EXPECT_EQ(call(ty::del_gref_mapping, default_queues, page, 1).status, st::invalid_parameter);
    EXPECT_EQ(copies(), copies_before);
    EXPECT_EQ(front_.read_list(page, 1)[0].status, untouched);
    EXPECT_EQ(h_->mapped(), 1U);
}

TEST_F(CtrlGref, Del512EntriesFromOnePage) {
    const auto refs = grant(512);
    ASSERT_EQ(add(0, refs).status, st::success);
    const auto r = del(0, refs);
    EXPECT_EQ(r.rsp.status, st::success);
    EXPECT_EQ(r.rsp.data, 512U);
    EXPECT_EQ(r.status, std::vector<std::uint16_t>(512, st::success));
    expect_no_mappings();
}

TEST_F(CtrlGref, DelOfInflightGrefIsRefusedUntilReleased) {
    const auto refs = grant(2);
    ASSERT_EQ(add(0, refs).status, st::success);
    auto* e = h_->table(0).find(refs[0]);
    ASSERT_NE(e, nullptr);
    gref_table::acquire(*e);  // the data path is using it
    const auto r = del(0, refs);
    EXPECT_EQ(r.rsp.status, st::success);
    EXPECT_EQ(r.rsp.data, 1U);
    EXPECT_EQ(r.status, (std::vector<std::uint16_t>{st::invalid_parameter, st::success}));
    EXPECT_EQ(h_->table(0).find(refs[0]), e);  // still mapped, same entry
    EXPECT_EQ(front_.unshare(std::span(refs).first(1)), std::vector<gnt_status>{gnt_status::eagain});
    EXPECT_EQ(stat("del_busy"), 1U);
    ASSERT_TRUE(gref_table::release(*e));
    const auto again = del(0, std::span(refs).first(1));
    EXPECT_EQ(again.rsp.data, 1U);
    EXPECT_EQ(again.status, std::vector<std::uint16_t>{st::success});
    expect_no_mappings();
    expect_revocable(refs);
}

TEST_F(CtrlGref, DelWithReadOnlyListPageRemovesNothing) {
    // Statuses cannot be written back to a read-only list: the write probe in
    // the list-read batch fails before anything is unmapped.
    const auto refs = grant(2);
    ASSERT_EQ(add(0, refs).status, st::success);
    const auto page = list_page(make_list(refs), false);
    const auto rsp = call(ty::del_gref_mapping, 0, page, 2);
    EXPECT_EQ(rsp.status, st::invalid_parameter);
    EXPECT_EQ(rsp.data, 0U);
    EXPECT_EQ(h_->mapped(), 2U);
    EXPECT_EQ(mapper_->mapped_count(), 2U);
    EXPECT_EQ(front_.read_list(page, 2)[0].status, untouched);
}

TEST_F(CtrlGref, DelFromUngrantedListPageIsInvalid) {
    const auto refs = grant(1);
    ASSERT_EQ(add(0, refs).status, st::success);
    EXPECT_EQ(call(ty::del_gref_mapping, 0, 1800, 1).status, st::invalid_parameter);
    EXPECT_EQ(h_->mapped(), 1U);
}

TEST_F(CtrlGref, DelWriteBackFailureKeepsWhatWasRemoved) {
    no_writeback_mapper wrap(*mapper_);
    h_.reset();
    h_ = std::make_unique<backend_handler>(wrap, front_.id(), default_queues, static_grant_limits{});
    const auto refs = grant(2);
    ASSERT_EQ(add(0, refs).status, st::success);
    const auto page = list_page(make_list(refs));
    const auto rsp = call(ty::del_gref_mapping, 0, page, 2);
    EXPECT_EQ(rsp.status, st::invalid_parameter);
    EXPECT_EQ(rsp.data, 2U);  // removed anyway: documented behaviour
    expect_no_mappings();
    expect_revocable(refs);
    EXPECT_EQ(front_.read_list(page, 2)[1].status, untouched);
    h_.reset();  // before `wrap` goes away
}

// ---- teardown ----

TEST_F(CtrlGref, UnmapAllReleasesEverything) {
    const auto refs = grant(20);
    const auto r = std::span(refs);
    ASSERT_EQ(add(0, r.first(12), 0).status, st::success);
    ASSERT_EQ(add(1, r.subspan(12), ro).status, st::success);
    gref_table::acquire(*h_->table(1).find(refs[15]));
    EXPECT_EQ(front_.unshare(r.first(1)), std::vector<gnt_status>{gnt_status::eagain});
    h_->unmap_all();
    expect_no_mappings();
    EXPECT_EQ(stat("teardown_inflight"), 1U);
    EXPECT_EQ(stat("unmaps"), 20U);
    EXPECT_EQ(get(0).data, 1024U);
    EXPECT_EQ(get(1).data, 1024U);
    expect_revocable(refs);
}

TEST_F(CtrlGref, DestructorUnmapsEverything) {
    const auto refs = grant(5);
    ASSERT_EQ(add(0, refs).status, st::success);
    EXPECT_EQ(mapper_->mapped_count(), 5U);
    h_.reset();
    EXPECT_EQ(mapper_->mapped_count(), 0U);
    expect_revocable(refs);
}

TEST_F(CtrlGref, StatsCountRequestsMapsAndCopies) {
    const auto refs = grant(4);
    ASSERT_EQ(add(0, refs).status, st::success);           // 1 copy
    ASSERT_EQ(del(0, std::span(refs).first(1)).rsp.data, 1U);  // 3 copies: read, probe, write-back
    (void)get(7);
    const auto s = h_->stats();
    EXPECT_EQ(s["requests"]["add_gref_mapping"]["success"], 1);
    EXPECT_EQ(s["requests"]["del_gref_mapping"]["success"], 1);
    EXPECT_EQ(s["requests"]["get_gref_mapping_size"]["invalid_parameter"], 1);
    EXPECT_EQ(s["static_grants"]["mapped"], 3);
    EXPECT_EQ(s["static_grants"]["maps"], 4);
    EXPECT_EQ(s["static_grants"]["unmaps"], 1);
    EXPECT_EQ(s["static_grants"]["per_queue"], (nlohmann::json{3, 0}));
    EXPECT_EQ(s["grant_copies"], 4);
    EXPECT_EQ(s["copy_errors"], 0);
}

}  // namespace
}  // namespace vifkit::ctrl::test
