// Tree operations and permissions, driven through the engine with chosen
// caller identities (dom0 and guests).
#include <gtest/gtest.h>

#include <string>

#include "xs_test_util.hpp"

namespace vifkit::emu::xs {
namespace {

using test::harness;
using test::strings;

class XsTree : public ::testing::Test {
protected:
    harness h;
    conn_id dom0 = h.connect();
};

TEST_F(XsTree, WriteCreatesMissingParents) {
    EXPECT_EQ(h.outcome(h.write(dom0, "/a/b/c", "v")), "OK");
    EXPECT_EQ(h.read(dom0, "/a/b/c"), "v");
    EXPECT_EQ(h.read(dom0, "/a/b"), "");
    EXPECT_EQ(h.ls(dom0, "/a"), "b");
    EXPECT_EQ(h.ls(dom0, "/"), "local,tool,a");
}

TEST_F(XsTree, RepliesEchoRequestAndTransactionIds) {
    const auto tx = h.begin(dom0);
    const auto m = h.raw(dom0, msg_type::read, strings({"/tool"}), tx, 4242);
    EXPECT_EQ(m.type, msg_type::read);
    EXPECT_EQ(m.req_id, 4242u);
    EXPECT_EQ(m.tx_id, tx);
    const auto e = h.raw(dom0, msg_type::read, strings({"/nope"}), 0, 99);
    EXPECT_EQ(e.type, msg_type::error);
    EXPECT_EQ(e.req_id, 99u);
    EXPECT_EQ(e.payload, std::string("ENOENT\0", 7));
}

TEST_F(XsTree, ReadMissingIsEnoent) { EXPECT_EQ(h.read(dom0, "/missing"), "E:ENOENT"); }

TEST_F(XsTree, DirectoryKeepsCreationOrder) {
    for (auto n : {"z", "a", "m"}) h.write(dom0, std::string("/d/") + n, "");
    EXPECT_EQ(h.ls(dom0, "/d"), "z,a,m");
}

TEST_F(XsTree, ValueIsBinarySafe) {
    const std::string v("a\0b\xff", 4);
    h.write(dom0, "/bin", v);
    EXPECT_EQ(h.call(dom0, msg_type::read, {"/bin"}).payload, v);
}

TEST_F(XsTree, MkdirOfExistingNodeKeepsValue) {
    h.write(dom0, "/m", "keep");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::mkdir, {"/m"})), "OK");
    EXPECT_EQ(h.read(dom0, "/m"), "keep");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::mkdir, {"/m/n/o"})), "OK");
    EXPECT_EQ(h.ls(dom0, "/m/n"), "o");
}

TEST_F(XsTree, RmRemovesTheWholeSubtree) {
    h.write(dom0, "/r/a/b", "1");
    h.write(dom0, "/r/c", "2");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::rm, {"/r"})), "OK");
    EXPECT_EQ(h.read(dom0, "/r/a/b"), "E:ENOENT");
    EXPECT_EQ(h.read(dom0, "/r"), "E:ENOENT");
    EXPECT_EQ(h.ls(dom0, "/"), "local,tool");
    EXPECT_EQ(h.eng().nodes().find("/r/a"), nullptr);
}

TEST_F(XsTree, RmOfMissingNodeNeedsOnlyItsParent) {
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::rm, {"/tool/absent"})), "OK");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::rm, {"/absent/child"})), "E:ENOENT");
}

TEST_F(XsTree, RmRootIsEinval) {
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::rm, {"/"})), "E:EINVAL");
}

TEST_F(XsTree, InvalidNamesAreEinval) {
    for (auto bad : {"/a/", "/a//b", "/a b", "", "/x.y"}) {
        EXPECT_EQ(h.read(dom0, bad), "E:EINVAL") << bad;
        EXPECT_EQ(h.outcome(h.write(dom0, bad, "v")), "E:EINVAL") << bad;
    }
    EXPECT_EQ(h.read(dom0, "@releaseDomain"), "E:EINVAL");
    EXPECT_EQ(h.outcome(h.write(dom0, "/" + std::string(abs_path_max, 'x'), "v")), "E:EINVAL");
}

TEST_F(XsTree, RelativePathsLiveInTheCallersHome) {
    h.eng().introduce_domain(5);
    const conn_id g = h.connect(caller::domain(5));
    EXPECT_EQ(h.outcome(h.write(g, "data/x", "1")), "OK");
    EXPECT_EQ(h.read(dom0, "/local/domain/5/data/x"), "1");
    EXPECT_EQ(h.read(dom0, "tool"), "E:ENOENT");  // dom0's home is /local/domain/0
}

TEST_F(XsTree, DirectoryPartPagesALargeDirectory) {
    std::vector<std::string> names;
    for (int i = 0; i < 300; ++i) {
        names.push_back("child-with-a-long-name-" + std::to_string(i));
        h.write(dom0, "/big/" + names.back(), "");
    }
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::directory, {"/big"})), "E:E2BIG");
    // Reassemble the way libxenstore does: offset into the child list, generation echoed.
    std::string all;
    std::string gen;
    for (int guard = 0; guard < 100; ++guard) {
        const auto m = h.call(dom0, msg_type::directory_part, {"/big", std::to_string(all.size())});
        ASSERT_FALSE(m.is_error()) << m.error();
        ASSERT_LE(m.payload.size(), payload_max);
        const std::string g(m.payload.c_str());
        if (gen.empty()) gen = g;
        ASSERT_EQ(g, gen);
        const std::string chunk = m.payload.substr(g.size() + 1);
        all += chunk;
        if (chunk.size() >= 2 && chunk[chunk.size() - 2] == '\0') break;
    }
    all.pop_back();  // the end marker
    const auto got = split_strings(all);
    ASSERT_EQ(got.size(), names.size());
    for (std::size_t i = 0; i < names.size(); ++i) EXPECT_EQ(got[i], names[i]);
    const auto past = h.call(dom0, msg_type::directory_part, {"/big", "999999"});
    EXPECT_EQ(past.payload, gen + std::string("\0\0", 2));
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::directory_part, {"/big", "x1"})), "E:EINVAL");
}

TEST_F(XsTree, GetDomainPath) {
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::get_domain_path, {"17"})), "/local/domain/17");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::get_domain_path, {"x"})), "E:EINVAL");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::get_domain_path, {"70000"})), "E:EINVAL");
}

TEST_F(XsTree, UnknownOperationIsEnosys) {
    EXPECT_EQ(h.outcome(h.raw(dom0, static_cast<msg_type>(20), strings({"/a"}))), "E:ENOSYS");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::control, {"print", "x"})), "E:ENOSYS");
    EXPECT_EQ(h.eng().counters().malformed, 1u);
}

// ---- permissions ----------------------------------------------------------

class XsPerms : public XsTree {
protected:
    void SetUp() override {
        h.eng().introduce_domain(5);
        h.eng().introduce_domain(6);
    }
    conn_id g5 = h.connect(caller::domain(5));
    conn_id g6 = h.connect(caller::domain(6));
};

TEST_F(XsPerms, GuestWritesItsHomeAndOwnsWhatItCreates) {
    EXPECT_EQ(h.outcome(h.write(g5, "/local/domain/5/device/vif/0/state", "1")), "OK");
    EXPECT_EQ(h.perms(dom0, "/local/domain/5/device/vif/0/state"), "n5");
    EXPECT_EQ(h.perms(dom0, "/local/domain/5/device"), "n5");
}

TEST_F(XsPerms, GuestCannotWriteOutsideItsHome) {
    EXPECT_EQ(h.outcome(h.write(g5, "/local/domain/6/x", "1")), "E:EACCES");
    EXPECT_EQ(h.outcome(h.write(g5, "/tool/x", "1")), "E:EACCES");
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::mkdir, {"/evil"})), "E:EACCES");
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::rm, {"/local/domain/6"})), "E:EACCES");
    EXPECT_EQ(h.read(dom0, "/local/domain/6/x"), "E:ENOENT");
    EXPECT_GE(h.eng().counters().denied, 4u);
}

TEST_F(XsPerms, GuestCannotReadWithoutReadPermission) {
    h.write(dom0, "/secret", "s");
    EXPECT_EQ(h.read(g5, "/secret"), "E:EACCES");
    EXPECT_EQ(h.ls(g5, "/"), "E:EACCES");
    EXPECT_EQ(h.perms(g5, "/secret"), "E:EACCES");
    EXPECT_EQ(h.read(g5, "/local/domain/6"), "E:EACCES");
}

TEST_F(XsPerms, AbsenceUnderUnreadableParentIsEacces) {
    // ENOENT would tell the guest what exists in dom0's private tree.
    EXPECT_EQ(h.read(g5, "/tool/nothing/here"), "E:EACCES");
    EXPECT_EQ(h.read(g5, "/local/domain/5/nothing"), "E:ENOENT");
}

TEST_F(XsPerms, AclGrantsAnotherDomainAccess) {
    h.write(g5, "/local/domain/5/shared", "x");
    EXPECT_EQ(h.read(g6, "/local/domain/5/shared"), "E:EACCES");
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::set_perms, {"/local/domain/5/shared", "n5", "r6"})),
              "OK");
    EXPECT_EQ(h.read(g6, "/local/domain/5/shared"), "x");
    EXPECT_EQ(h.outcome(h.write(g6, "/local/domain/5/shared", "y")), "E:EACCES");
    h.call(g5, msg_type::set_perms, {"/local/domain/5/shared", "n5", "b6"});
    EXPECT_EQ(h.outcome(h.write(g6, "/local/domain/5/shared", "y")), "OK");
    // 6 wrote an existing node: ownership stays with 5.
    EXPECT_EQ(h.perms(dom0, "/local/domain/5/shared"), "n5,b6");
}

TEST_F(XsPerms, NewNodesInheritParentPermsWithCreatorAsOwner) {
    h.write(dom0, "/backend/vif/5", "");
    h.call(dom0, msg_type::set_perms, {"/backend/vif/5", "n0", "b5", "r6"});
    EXPECT_EQ(h.outcome(h.write(dom0, "/backend/vif/5/0/mac", "m")), "OK");
    EXPECT_EQ(h.perms(dom0, "/backend/vif/5/0/mac"), "n0,b5,r6");  // dom0 keeps owner 0
    EXPECT_EQ(h.outcome(h.write(g5, "/backend/vif/5/0/state", "2")), "OK");
    EXPECT_EQ(h.perms(dom0, "/backend/vif/5/0/state"), "n5,b5,r6");
    EXPECT_EQ(h.read(g6, "/backend/vif/5/0/state"), "2");
}

TEST_F(XsPerms, OnlyTheOwnerSetsPermsAndCannotGiveNodesAway) {
    h.write(g5, "/local/domain/5/n", "x");
    h.call(g5, msg_type::set_perms, {"/local/domain/5/n", "n5", "b6"});
    // 6 can write but does not own the node.
    EXPECT_EQ(h.outcome(h.call(g6, msg_type::set_perms, {"/local/domain/5/n", "b6"})), "E:EACCES");
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::set_perms, {"/local/domain/5/n", "n6"})), "E:EPERM");
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::set_perms, {"/local/domain/5/n", "r5"})), "OK");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::set_perms, {"/local/domain/5/n", "n6"})), "OK");
    EXPECT_EQ(h.perms(dom0, "/local/domain/5/n"), "n6");
}

TEST_F(XsPerms, SetPermsRejectsBadStrings) {
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::set_perms, {"/tool", "q0"})), "E:EINVAL");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::set_perms, {"/tool", "r"})), "E:EINVAL");
    EXPECT_EQ(h.outcome(h.call(dom0, msg_type::set_perms, {"/missing", "r0"})), "E:ENOENT");
}

TEST_F(XsPerms, PrivilegedOperationsAreRefusedToGuests) {
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::introduce, {"9", "0", "0"})), "E:EACCES");
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::release, {"6"})), "E:EACCES");
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::is_domain_introduced, {"6"})), "E:EACCES");
    EXPECT_EQ(h.outcome(h.call(g5, msg_type::control, {"x"})), "E:EACCES");
    EXPECT_FALSE(h.eng().is_introduced(9));
}

TEST_F(XsPerms, IdentityCanChangeBetweenRequests) {
    const conn_id c = h.connect();
    EXPECT_EQ(h.outcome(h.write(c, "/tool/x", "1")), "OK");
    h.eng().set_caller(c, caller::domain(5));
    EXPECT_EQ(h.outcome(h.write(c, "/tool/y", "1")), "E:EACCES");
}

// ---- quotas ----------------------------------------------------------------

TEST(XsQuota, NodesPerDomain) {
    limits lim;
    lim.nodes_per_domain = 4;  // home counts as one
    harness h(lim);
    h.eng().introduce_domain(5);
    const conn_id g = h.connect(caller::domain(5));
    EXPECT_EQ(h.outcome(h.write(g, "a/b", "")), "OK");          // 3 owned
    EXPECT_EQ(h.outcome(h.write(g, "c/d", "")), "E:ENOSPC");    // would be 5
    EXPECT_EQ(h.read(g, "c"), "E:ENOENT");                      // nothing half-created
    EXPECT_EQ(h.outcome(h.write(g, "c", "")), "OK");            // 4
    EXPECT_EQ(h.outcome(h.write(g, "c", "overwrite ok")), "OK");
    h.call(g, msg_type::rm, {"a"});
    EXPECT_EQ(h.outcome(h.write(g, "e", "")), "OK");
    EXPECT_GE(h.eng().counters().quota_refusals, 1u);
    const conn_id dom0 = h.connect();
    EXPECT_EQ(h.outcome(h.write(dom0, "/x/y/z/w", "")), "OK");  // dom0 is not limited
}

TEST(XsQuota, ValueSizeAndPermCount) {
    limits lim;
    lim.value_max = 16;
    lim.perms_per_node = 2;
    harness h(lim);
    h.eng().introduce_domain(5);
    const conn_id g = h.connect(caller::domain(5));
    EXPECT_EQ(h.outcome(h.write(g, "v", std::string(16, 'x'))), "OK");
    EXPECT_EQ(h.outcome(h.write(g, "v", std::string(17, 'x'))), "E:ENOSPC");
    EXPECT_EQ(h.outcome(h.write(g, "w", std::string(17, 'x'))), "E:ENOSPC");
    EXPECT_EQ(h.outcome(h.call(g, msg_type::set_perms, {"v", "n5", "r1", "r2"})), "E:ENOSPC");
    EXPECT_EQ(h.outcome(h.call(g, msg_type::set_perms, {"v", "n5", "r1"})), "OK");
}

}  // namespace
}  // namespace vifkit::emu::xs
