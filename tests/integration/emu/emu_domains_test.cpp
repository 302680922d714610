// Several emulated domains at once: a backend serving many frontends from one
// thread, a backend killed with mappings held, a frontend restarting under the
// same domid. Broker, frontends and (in one case) the backend are processes.
#include <gtest/gtest.h>
#include <poll.h>

#include <cstring>

#include "emu_test_support.hpp"
#include "vifkit/emu/domain.hpp"

namespace vifkit::emu::test {
namespace {

using platform::copy_op;
using platform::map_op;

bool readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
}

TEST(EmuDomains, OneBackendThreadServesManyFrontends) {
    broker_process broker;
    std::vector<std::unique_ptr<remote_domain>> fronts;
    for (int i = 0; i < 3; ++i) fronts.push_back(std::make_unique<remote_domain>(broker.path()));
    auto back = domain::attach(broker.path(), 0, 8, 32);
    auto svc = back->make_services();

    struct conn {
        std::vector<grant_ref_t> refs;
        evtchn_port_t fport = 0, bport = 0;
        std::vector<map_op> maps;
    };
    std::vector<conn> conns(fronts.size());
    for (std::size_t i = 0; i < fronts.size(); ++i) {
        conns[i].refs = fronts[i]->share(0, 4, true);
        ASSERT_EQ(conns[i].refs.size(), 4U);
        conns[i].fport = fronts[i]->alloc_unbound(0).value();
        conns[i].bport = svc.evtchn->bind_interdomain(fronts[i]->id(), conns[i].fport).value();
    }
    // Serve every frontend from this one thread: map, write, copy, notify.
    for (std::size_t i = 0; i < fronts.size(); ++i) {
        auto& c = conns[i];
        for (auto r : c.refs) c.maps.push_back({r, false});
        svc.mapper->map(fronts[i]->id(), c.maps);
        for (auto& m : c.maps) {
            ASSERT_EQ(m.status, gnt_status::okay);
            std::memset(m.addr, 0x10 + static_cast<int>(i), page_size);
        }
        std::vector<std::uint8_t> hdr(14, 0xE0 + static_cast<int>(i));
        copy_op cp;
        cp.direction = copy_op::dir::to_peer;
        cp.ref = c.refs[3];
        cp.len = static_cast<std::uint16_t>(hdr.size());
        cp.local = hdr.data();
        svc.mapper->copy(fronts[i]->id(), std::span(&cp, 1));
        ASSERT_EQ(cp.status, gnt_status::okay);
        ASSERT_EQ(svc.evtchn->notify(c.bport), 0);
    }
    EXPECT_EQ(svc.mapper->mapped_count(), 12U);
    for (std::size_t i = 0; i < fronts.size(); ++i) {
        auto& f = *fronts[i];
        EXPECT_TRUE(f.readable(default_timeout));
        EXPECT_EQ(f.pending(), conns[i].fport);
        const auto v = static_cast<std::uint8_t>(0x10 + i);
        EXPECT_EQ(f.read(conns[i].refs[0], 0, 64), std::vector<std::uint8_t>(64, v));
        EXPECT_EQ(f.read(conns[i].refs[3], 0, 14), std::vector<std::uint8_t>(14, 0xE0 + i));
        EXPECT_EQ(f.read(conns[i].refs[3], 14, 8), std::vector<std::uint8_t>(8, v));
        ASSERT_EQ(f.notify(conns[i].fport), 0);
    }
    // Replies from every frontend arrive on the one event fd.
    std::vector<evtchn_port_t> seen;
    for (std::size_t k = 0; k < fronts.size(); ++k) {
        ASSERT_TRUE(readable(svc.evtchn->fd(), 10000));
        const auto p = svc.evtchn->pending();
        ASSERT_TRUE(p);
        seen.push_back(*p);
    }
    std::sort(seen.begin(), seen.end());
    std::vector<evtchn_port_t> want;
    for (auto& c : conns) want.push_back(c.bport);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(seen, want);
    for (std::size_t i = 0; i < fronts.size(); ++i) {
        svc.mapper->unmap(conns[i].maps);
        for (auto& m : conns[i].maps) EXPECT_EQ(m.status, gnt_status::okay);
        EXPECT_EQ(fronts[i]->unshare(conns[i].refs), std::vector<gnt_status>(4, gnt_status::okay));
    }
    EXPECT_EQ(svc.mapper->mapped_count(), 0U);
}

TEST(EmuDomains, KilledBackendReleasesItsPins) {
    broker_process broker;
    remote_domain front(broker.path());
    remote_domain back(broker.path(), 0);
    const auto refs = front.share(0, 2, true);
    ASSERT_EQ(back.map(front.id(), refs, false), std::vector<gnt_status>(2, gnt_status::okay));
    back.write_mapped(0x7E);
    EXPECT_EQ(front.read(refs[1], 100, 4), std::vector<std::uint8_t>(4, 0x7E));
    EXPECT_EQ(front.unshare(refs), std::vector<gnt_status>(2, gnt_status::eagain));
    EXPECT_EQ(front.entry(refs[0]).flags, gtf::permit_access | gtf::reading | gtf::writing);

    back.kill9();
    broker.wait_gone(0);
    // Like Xen tearing down a dead domain's maptrack: the pins are gone.
    EXPECT_EQ(front.entry(refs[0]).flags, gtf::permit_access);
    EXPECT_EQ(front.unshare(refs), std::vector<gnt_status>(2, gnt_status::okay));
    EXPECT_EQ(front.shared_count(), 0U);
}

TEST(EmuDomains, FrontendRestartWithSameDomidReconnects) {
    broker_process broker;
    auto back = domain::attach(broker.path(), 0, 8, 32);
    auto svc = back->make_services();
    auto connect = [&](remote_domain& f, std::uint8_t fill) {
        const auto refs = f.share(0, 1, true);
        f.fill(refs[0], fill);
        const auto fp = f.alloc_unbound(0).value();
        const auto bp = svc.evtchn->bind_interdomain(f.id(), fp).value();
        map_op m{refs[0], true};
        svc.mapper->map(f.id(), std::span(&m, 1));
        EXPECT_EQ(m.status, gnt_status::okay);
        return std::tuple{m, fp, bp};
    };

    auto first = std::make_unique<remote_domain>(broker.path(), 5);
    auto [m1, fp1, bp1] = connect(*first, 0xA1);
    EXPECT_EQ(static_cast<std::uint8_t*>(m1.addr)[0], 0xA1);
    first->kill9();
    broker.wait_gone(5);
    EXPECT_EQ(svc.evtchn->notify(bp1), 0);  // peer gone: harmless
    svc.mapper->unmap(std::span(&m1, 1));
    EXPECT_EQ(m1.status, gnt_status::okay);
    EXPECT_EQ(svc.evtchn->unbind(bp1), 0);

    remote_domain second(broker.path(), 5);
    auto [m2, fp2, bp2] = connect(second, 0xB2);
    EXPECT_EQ(static_cast<std::uint8_t*>(m2.addr)[0], 0xB2);
    EXPECT_EQ(svc.evtchn->notify(bp2), 0);
    EXPECT_TRUE(second.readable(default_timeout));
    EXPECT_EQ(second.pending(), fp2);
    EXPECT_EQ(second.notify(fp2), 0);
    EXPECT_TRUE(readable(svc.evtchn->fd(), 10000));
    EXPECT_EQ(svc.evtchn->pending(), bp2);
    svc.mapper->unmap(std::span(&m2, 1));
    EXPECT_EQ(m2.status, gnt_status::okay);
}

}  // namespace
}  // namespace vifkit::emu::test
