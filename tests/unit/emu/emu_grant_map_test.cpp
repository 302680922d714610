// Grant map/unmap and revoke across real processes: the test process is the
// backend (domid 0, the mapper), children are granting domains.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "emu_test_support.hpp"
#include "vifkit/emu/domain.hpp"

namespace vifkit::emu::test {
namespace {

using platform::map_op;

// Permissions of the mapping containing `addr`, from /proc/self/maps ("rw-s").
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

class GrantMap : public ::testing::Test {
protected:
    broker_process broker_;
    remote_domain front_{broker_.path()};
    std::unique_ptr<domain> back_ = domain::attach(broker_.path(), 0, 16, 64);
    std::unique_ptr<platform::grant_mapper> mapper_ = back_->make_mapper();

    map_op map_one(grant_ref_t ref, bool readonly, domid_t peer = domid_invalid) {
        map_op op{ref, readonly};
        mapper_->map(peer == domid_invalid ? front_.id() : peer, std::span(&op, 1));
        return op;
    }
    gnt_status unmap_one(map_op op) {
        mapper_->unmap(std::span(&op, 1));
        return op.status;
    }
    std::uint16_t flags(grant_ref_t ref) { return front_.entry(ref).flags; }
};

TEST_F(GrantMap, WriteThroughMappingIsVisibleToGranter) {
    const auto refs = front_.share(0, 1, true);
    ASSERT_EQ(refs.size(), 1U);
    EXPECT_GE(refs[0], first_free_gref);
    auto op = map_one(refs[0], false);
    ASSERT_EQ(op.status, gnt_status::okay);
    EXPECT_EQ(mapper_->mapped_count(), 1U);
    EXPECT_EQ(perms_of(op.addr), "rw-s");
    std::memset(op.addr, 0xAB, page_size);
    EXPECT_EQ(front_.read(refs[0], 4000, 16), std::vector<std::uint8_t>(16, 0xAB));
    front_.fill(refs[0], 0x5A);
    EXPECT_EQ(static_cast<std::uint8_t*>(op.addr)[123], 0x5A);
    EXPECT_EQ(unmap_one(op), gnt_status::okay);
    EXPECT_EQ(mapper_->mapped_count(), 0U);
}

TEST_F(GrantMap, SharedPagesAreZeroedBeforeGranting) {
    auto refs = front_.share(0, 1, true);
    front_.fill(refs[0], 0xEE);
    ASSERT_EQ(front_.unshare(refs), std::vector<gnt_status>{gnt_status::okay});
    // The freed page is reused for the next grant, which must not leak 0xEE (XSA-403).
    refs = front_.share(0, 1, true);
    EXPECT_EQ(front_.read(refs[0], 0, 64), std::vector<std::uint8_t>(64, 0));
}

TEST_F(GrantMap, ReadOnlyGrantMappedWritableIsDenied) {
    const auto refs = front_.share(0, 1, false);
    EXPECT_EQ(map_one(refs[0], false).status, gnt_status::permission_denied);
    EXPECT_EQ(flags(refs[0]), gtf::permit_access | gtf::readonly);  // no pin left behind
    const auto op = map_one(refs[0], true);
    ASSERT_EQ(op.status, gnt_status::okay);
    EXPECT_EQ(perms_of(op.addr), "r--s");
    EXPECT_EQ(unmap_one(op), gnt_status::okay);
}

TEST_F(GrantMap, GrantForAnotherDomainIsDenied) {
    const auto refs = front_.share(5, 1, true);
    EXPECT_EQ(map_one(refs[0], false).status, gnt_status::permission_denied);
    EXPECT_EQ(map_one(refs[0], true).status, gnt_status::permission_denied);
    EXPECT_EQ(mapper_->mapped_count(), 0U);
}

TEST_F(GrantMap, InvalidOrTransitiveEntryIsDenied) {
    front_.write_entry(20, {gtf::invalid, 0, 1});
    EXPECT_EQ(map_one(20, true).status, gnt_status::permission_denied);
    front_.write_entry(21, {gtf::transitive, 0, 1});
    EXPECT_EQ(map_one(21, true).status, gnt_status::permission_denied);
}

TEST_F(GrantMap, RefOutsideTableIsBadGntref) {
    EXPECT_EQ(map_one(64, true).status, gnt_status::bad_gntref);  // table has 64 entries
    EXPECT_EQ(map_one(0xFFFFFFFFU, true).status, gnt_status::bad_gntref);
}

TEST_F(GrantMap, FrameOutsideGuestMemoryIsBadPage) {
    front_.write_entry(30, {gtf::permit_access, 0, 64});  // guest memory has 64 pages
    EXPECT_EQ(map_one(30, false).status, gnt_status::bad_page);
    front_.write_entry(31, {gtf::permit_access, 0, 0xFFFFFFFFU});
    EXPECT_EQ(map_one(31, true).status, gnt_status::bad_page);
    EXPECT_EQ(flags(30), gtf::permit_access);  // the pin was undone
}

TEST_F(GrantMap, UnknownDomainIsBadDomain) {
    EXPECT_EQ(map_one(first_free_gref, true, 77).status, gnt_status::bad_domain);
}

TEST_F(GrantMap, RevokeWhileMappedIsEagainAndPageStaysGranted) {
    const auto refs = front_.share(0, 1, true);
    const auto op = map_one(refs[0], false);
    ASSERT_EQ(op.status, gnt_status::okay);
    EXPECT_EQ(front_.unshare(refs), std::vector<gnt_status>{gnt_status::eagain});
    EXPECT_EQ(front_.shared_count(), 1U);
    EXPECT_EQ(flags(refs[0]) & gtf::type_mask, gtf::permit_access);
    // Still granted: the mapping keeps working.
    std::memset(op.addr, 0x42, 8);
    EXPECT_EQ(front_.read(refs[0], 0, 8), std::vector<std::uint8_t>(8, 0x42));
    EXPECT_EQ(unmap_one(op), gnt_status::okay);
    EXPECT_EQ(front_.unshare(refs), std::vector<gnt_status>{gnt_status::okay});
    EXPECT_EQ(front_.shared_count(), 0U);
    EXPECT_EQ(flags(refs[0]), 0);
}

TEST_F(GrantMap, ReadingAndWritingFlagsFollowPins) {
    const auto refs = front_.share(0, 1, true);
    EXPECT_EQ(flags(refs[0]), gtf::permit_access);
    const auto rw = map_one(refs[0], false);
    EXPECT_EQ(flags(refs[0]), gtf::permit_access | gtf::reading | gtf::writing);
    const auto ro = map_one(refs[0], true);
    ASSERT_EQ(ro.status, gnt_status::okay);
    EXPECT_EQ(unmap_one(rw), gnt_status::okay);
    EXPECT_EQ(flags(refs[0]), gtf::permit_access | gtf::reading);
    EXPECT_EQ(unmap_one(ro), gnt_status::okay);
    EXPECT_EQ(flags(refs[0]), gtf::permit_access);
}

TEST_F(GrantMap, StaleOrWrongHandlesAreRejected) {
    const auto refs = front_.share(0, 1, true);
    auto op = map_one(refs[0], true);
    ASSERT_EQ(op.status, gnt_status::okay);
    map_op wrong_addr = op;
    wrong_addr.addr = static_cast<char*>(op.addr) + page_size;
    EXPECT_EQ(unmap_one(wrong_addr), gnt_status::general_error);
    map_op bogus = op;
    bogus.handle = 0;
    EXPECT_EQ(unmap_one(bogus), gnt_status::bad_handle);
    EXPECT_EQ(unmap_one(op), gnt_status::okay);
    EXPECT_EQ(unmap_one(op), gnt_status::bad_handle);  // already unmapped
}

TEST_F(GrantMap, BatchOpsFailIndependently) {
    const auto rw = front_.share(0, 2, true);
    const auto ro = front_.share(0, 1, false);
    std::vector<map_op> ops = {{rw[0], false}, {ro[0], false}, {999, true}, {rw[1], true}};
    mapper_->map(front_.id(), ops);
    EXPECT_EQ(ops[0].status, gnt_status::okay);
    EXPECT_EQ(ops[1].status, gnt_status::permission_denied);
    EXPECT_EQ(ops[2].status, gnt_status::bad_gntref);
    EXPECT_EQ(ops[3].status, gnt_status::okay);
    EXPECT_EQ(mapper_->mapped_count(), 2U);
    std::vector<map_op> done = {ops[0], ops[3]};
    mapper_->unmap(done);
    EXPECT_EQ(done[0].status, gnt_status::okay);
    EXPECT_EQ(done[1].status, gnt_status::okay);
}

TEST_F(GrantMap, MappingSurvivesGranterDeathAndUnmapsCleanly) {
    const auto refs = front_.share(0, 1, true);
    front_.fill(refs[0], 0x33);
    const auto op = map_one(refs[0], false);
    ASSERT_EQ(op.status, gnt_status::okay);
    const domid_t dead = front_.id();
    front_.kill9();
    broker_.wait_gone(dead);
    EXPECT_EQ(static_cast<std::uint8_t*>(op.addr)[7], 0x33);  // the page outlives its owner
    EXPECT_EQ(unmap_one(op), gnt_status::okay);
    EXPECT_EQ(map_one(refs[0], true, dead).status, gnt_status::bad_domain);
}

TEST_F(GrantMap, MapperNoticesGranterRestartedWithSameDomid) {
    remote_domain first(broker_.path(), 7);
    auto refs = first.share(0, 1, true);
    first.fill(refs[0], 0x11);
    auto op = map_one(refs[0], true, 7);
    ASSERT_EQ(op.status, gnt_status::okay);
    EXPECT_EQ(static_cast<std::uint8_t*>(op.addr)[0], 0x11);
    EXPECT_EQ(unmap_one(op), gnt_status::okay);
    EXPECT_EQ(first.quit(), 0);
    broker_.wait_gone(7);

    remote_domain second(broker_.path(), 7);
    const auto refs2 = second.share(0, 1, true);
    ASSERT_EQ(refs2, refs);  // same ref number, different registration
    second.fill(refs2[0], 0x22);
    op = map_one(refs2[0], true, 7);
    ASSERT_EQ(op.status, gnt_status::okay);
    EXPECT_EQ(static_cast<std::uint8_t*>(op.addr)[0], 0x22);
    EXPECT_EQ(unmap_one(op), gnt_status::okay);
}

TEST_F(GrantMap, SharerIsAllOrNothing) {
    // 64 entries - 8 reserved = 56 refs; 64 pages.
    EXPECT_TRUE(front_.share(0, 32, true).size() == 32);
    EXPECT_TRUE(front_.share(0, 32, true).empty());
    EXPECT_EQ(front_.shared_count(), 32U);
    EXPECT_EQ(front_.share(0, 24, true).size(), 24U);
}

}  // namespace
}  // namespace vifkit::emu::test
