// Grant copy across real processes: validation and pinning per segment, one
// process_vm_readv / process_vm_writev per batch, per-op status.
#include <gtest/gtest.h>

#include <climits>
#include <cstring>

#include "emu_test_support.hpp"
#include "vifkit/emu/domain.hpp"

namespace vifkit::emu::test {
namespace {

using platform::copy_op;
constexpr auto from_peer = copy_op::dir::from_peer;
constexpr auto to_peer = copy_op::dir::to_peer;

class GrantCopy : public ::testing::Test {
protected:
    broker_process broker_;
    remote_domain front_{broker_.path()};
    std::unique_ptr<domain> back_ = domain::attach(broker_.path(), 0, 16, 64);
    std::unique_ptr<platform::grant_mapper> mapper_ = back_->make_mapper();

    static copy_op op(copy_op::dir d, grant_ref_t ref, std::uint16_t off, std::uint16_t len, void* local) {
        copy_op o;
        o.direction = d;
        o.ref = ref;
        o.offset = off;
        o.len = len;
        o.local = local;
        return o;
    }
};

TEST_F(GrantCopy, BatchCopiesBothDirections) {
    const auto refs = front_.share(0, 2, true);
    front_.fill(refs[0], 0x11);
    std::vector<std::uint8_t> in(200, 0), out(50, 0x77);
    std::vector<copy_op> ops = {op(from_peer, refs[0], 100, 200, in.data()),
                                op(to_peer, refs[1], 10, 50, out.data())};
    mapper_->copy(front_.id(), ops);
    EXPECT_EQ(ops[0].status, gnt_status::okay);
    EXPECT_EQ(ops[1].status, gnt_status::okay);
    EXPECT_EQ(in, std::vector<std::uint8_t>(200, 0x11));
    EXPECT_EQ(front_.read(refs[1], 10, 50), std::vector<std::uint8_t>(50, 0x77));
    EXPECT_EQ(front_.read(refs[1], 0, 10), std::vector<std::uint8_t>(10, 0));
    EXPECT_EQ(front_.read(refs[1], 60, 10), std::vector<std::uint8_t>(10, 0));
    // Pins are dropped once the batch is done.
    EXPECT_EQ(front_.entry(refs[0]).flags, gtf::permit_access);
    EXPECT_EQ(front_.entry(refs[1]).flags, gtf::permit_access);
    EXPECT_EQ(front_.unshare(refs), (std::vector<gnt_status>{gnt_status::okay, gnt_status::okay}));
}

TEST_F(GrantCopy, MixedBatchReportsPerOpStatus) {
    const auto rw = front_.share(0, 2, true);
    const auto ro = front_.share(0, 1, false);
    const auto other = front_.share(9, 1, true);
    front_.fill(rw[0], 0x21);
    front_.fill(ro[0], 0x31);
    std::vector<std::uint8_t> a(64), b(64), c(64, 0x99), d(64, 0x55);
    std::vector<copy_op> ops = {
        op(from_peer, rw[0], 0, 64, a.data()),      // good read
        op(from_peer, 500, 0, 64, b.data()),        // ref outside the table
        op(to_peer, ro[0], 0, 64, c.data()),        // write to a read-only grant
        op(from_peer, rw[0], 4000, 97, b.data()),   // offset + len > 4096
        op(from_peer, other[0], 0, 64, b.data()),   // granted to domain 9
        op(to_peer, rw[1], 4032, 64, d.data()),     // good write, ends at the page end
        op(from_peer, ro[0], 0, 0, nullptr),        // zero length: validated, no data
        op(from_peer, ro[0], 32, 16, b.data()),     // good read of a read-only grant
    };
    mapper_->copy(front_.id(), ops);
    const std::vector<gnt_status> want = {
        gnt_status::okay, gnt_status::bad_gntref, gnt_status::permission_denied,
        gnt_status::bad_copy_arg, gnt_status::permission_denied, gnt_status::okay,
        gnt_status::okay, gnt_status::okay};
    for (std::size_t i = 0; i < ops.size(); ++i) EXPECT_EQ(ops[i].status, want[i]) << "op " << i;
    EXPECT_EQ(a, std::vector<std::uint8_t>(64, 0x21));
    EXPECT_EQ(std::vector<std::uint8_t>(b.begin(), b.begin() + 16), std::vector<std::uint8_t>(16, 0x31));
    EXPECT_EQ(front_.read(ro[0], 0, 64), std::vector<std::uint8_t>(64, 0x31));  // untouched
    EXPECT_EQ(front_.read(rw[1], 4032, 64), std::vector<std::uint8_t>(64, 0x55));
    EXPECT_EQ(front_.entry(ro[0]).flags, gtf::permit_access | gtf::readonly);
}

TEST_F(GrantCopy, OffsetPlusLenBeyondPageIsBadCopyArg) {
    const auto refs = front_.share(0, 1, true);
    std::vector<std::uint8_t> buf(page_size);
    std::vector<copy_op> ops = {op(from_peer, refs[0], 1, 4096, buf.data()),
                                op(to_peer, refs[0], 4095, 2, buf.data()),
                                op(from_peer, refs[0], 0, 4096, buf.data())};
    mapper_->copy(front_.id(), ops);
    EXPECT_EQ(ops[0].status, gnt_status::bad_copy_arg);
    EXPECT_EQ(ops[1].status, gnt_status::bad_copy_arg);
    EXPECT_EQ(ops[2].status, gnt_status::okay);
}

TEST_F(GrantCopy, BatchLargerThanIovMaxIsSplit) {
    const auto refs = front_.share(0, 1, true);
    front_.fill(refs[0], 0x6C);
    constexpr std::size_t n = IOV_MAX + 300;
    std::vector<std::uint8_t> buf(n, 0);
    std::vector<copy_op> ops;
    for (std::size_t i = 0; i < n; ++i)
        ops.push_back(op(from_peer, refs[0], static_cast<std::uint16_t>(i % page_size), 1, &buf[i]));
    mapper_->copy(front_.id(), ops);
    for (const auto& o : ops) ASSERT_EQ(o.status, gnt_status::okay);
    EXPECT_EQ(buf, std::vector<std::uint8_t>(n, 0x6C));
    EXPECT_EQ(front_.entry(refs[0]).flags, gtf::permit_access);
}

TEST_F(GrantCopy, PageMissingFromGranterFailsOnlyThatSegment) {
    const auto refs = front_.share(0, 3, true);
    for (auto r : refs) front_.fill(r, 0x44);
    front_.drop_page(refs[1]);  // hostile granter unmaps a granted page
    std::vector<std::uint8_t> a(32), b(32), c(32);
    std::vector<copy_op> ops = {op(from_peer, refs[0], 0, 32, a.data()),
                                op(from_peer, refs[1], 0, 32, b.data()),
                                op(from_peer, refs[2], 0, 32, c.data())};
    mapper_->copy(front_.id(), ops);
    EXPECT_EQ(ops[0].status, gnt_status::okay);
    EXPECT_EQ(ops[1].status, gnt_status::general_error);
    EXPECT_EQ(ops[2].status, gnt_status::okay);
    EXPECT_EQ(c, std::vector<std::uint8_t>(32, 0x44));
}

TEST_F(GrantCopy, CopyFromDeadPeerReportsErrors) {
    const auto refs = front_.share(0, 1, true);
    std::vector<std::uint8_t> buf(16);
    std::vector<copy_op> ops = {op(from_peer, refs[0], 0, 16, buf.data()),
                                op(to_peer, refs[0], 0, 16, buf.data())};
    mapper_->copy(front_.id(), ops);  // caches the peer while it is alive
    ASSERT_EQ(ops[0].status, gnt_status::okay);
    const domid_t dead = front_.id();
    front_.kill9();  // reaped: gone before the broker has even noticed
    mapper_->copy(dead, ops);
    EXPECT_EQ(ops[0].status, gnt_status::bad_domain);
    EXPECT_EQ(ops[1].status, gnt_status::bad_domain);
    broker_.wait_gone(dead);
    mapper_->copy(dead, ops);
    EXPECT_EQ(ops[0].status, gnt_status::bad_domain);
}

TEST_F(GrantCopy, CopyIntoLocalReadOnlyMemoryFailsTheSegment) {
    const auto refs = front_.share(0, 1, true);
    platform::map_op m{refs[0], true};
    mapper_->map(front_.id(), std::span(&m, 1));
    ASSERT_EQ(m.status, gnt_status::okay);
    // Local destination is a read-only mapping: the kernel refuses, we report.
    std::vector<copy_op> ops = {op(from_peer, refs[0], 0, 8, m.addr)};
    mapper_->copy(front_.id(), ops);
    EXPECT_EQ(ops[0].status, gnt_status::general_error);
    mapper_->unmap(std::span(&m, 1));
    EXPECT_EQ(m.status, gnt_status::okay);
}

}  // namespace
}  // namespace vifkit::emu::test
