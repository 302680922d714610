// The broker in this process (own event loop, pumped by the test); domains are
// child processes. Also hostile clients speaking the wire protocol by hand.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>

#include "emu_test_support.hpp"
#include "fd.hpp"
#include "protocol.hpp"
#include "vifkit/emu/domain.hpp"

namespace vifkit::emu::test {
namespace {

namespace d = vifkit::emu::detail;

struct attach_result {
    int err = 0;
    std::uint32_t domid = 0;
};

class Broker : public ::testing::Test {
protected:
    util::event_loop loop_;
    std::string path_ = socket_path("inproc");
    std::vector<domid_t> up_, gone_;
    broker broker_{loop_, path_, {[this](domid_t id) { up_.push_back(id); },
                                  [this](domid_t id) { gone_.push_back(id); }}};

    // A child that attaches as `want`, reports, then stays attached until told to exit.
    child start(domid_t want) {
        return child::spawn([path = path_, want](channel& ch) {
            attach_result r;
            std::unique_ptr<domain> dom;
            try {
                dom = domain::attach(path, want, 4, 16);
                r.domid = dom->id();
            } catch (const std::system_error& e) {
                r.err = e.code().value();
            }
            ch.put(r);
            (void)ch.get<int>(std::chrono::hours(1));
            return 0;
        });
    }
    attach_result result_of(child& c) {
        attach_result r;
        bool got = false;
        EXPECT_TRUE(pump_until(loop_, [&] { return got = got || c.chan().try_recv(&r, sizeof(r)); },
                               {c.chan().fd()}));
        return r;
    }
    bool gone(domid_t id) { return std::find(gone_.begin(), gone_.end(), id) != gone_.end(); }

    // A raw client connection to the broker.
    d::unique_fd raw_client() {
        d::unique_fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strcpy(addr.sun_path, path_.c_str());
        EXPECT_EQ(::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
        loop_.run_once(std::chrono::milliseconds(0));  // accept it
        return s;
    }
    // True once the broker has closed `s` (we read EOF).
    bool closed_by_broker(int s) {
        return pump_until(loop_, [s] {
            char b[64];
            const ssize_t n = ::recv(s, b, sizeof(b), MSG_DONTWAIT);
            return n == 0 || (n < 0 && errno == ECONNRESET);
        });
    }
    // Send a request and pump until its reply arrives.
    template <class Rsp>
    Rsp roundtrip(int s, const void* req, std::size_t len, std::span<const int> fds,
                  std::vector<d::unique_fd>& got_fds) {
        EXPECT_EQ(d::send_msg(s, req, len, fds), 0);
        Rsp rsp{};
        bool got = false;
        EXPECT_TRUE(pump_until(loop_, [&] {
            bool trunc = false;
            got = got || d::recv_msg(s, &rsp, sizeof(rsp), got_fds, trunc, MSG_DONTWAIT) > 0;
            return got;
        }));
        return rsp;
    }
    d::register_req reg_req(std::uint32_t want) {
        d::register_req r{};
        r.h = {d::msg_type::register_req, 1};
        r.want_domid = want;
        r.pid = ::getpid();
        r.mem_pages = 1;
        r.grant_entries = 16;
        r.base = 0x10000;
        return r;
    }
};

TEST_F(Broker, AllocatesDomidsAndRefusesDuplicates) {
    auto a = start(domid_invalid);
    EXPECT_EQ(result_of(a).domid, 1U);
    auto b = start(domid_invalid);
    EXPECT_EQ(result_of(b).domid, 2U);
    auto zero = start(0);
    EXPECT_EQ(result_of(zero).domid, 0U);
    auto zero2 = start(0);
    EXPECT_EQ(result_of(zero2).err, EEXIST);
    auto dup = start(2);
    EXPECT_EQ(result_of(dup).err, EEXIST);
    auto reserved = start(domid_self);
    EXPECT_EQ(result_of(reserved).err, EINVAL);
    EXPECT_EQ(broker_.domain_count(), 3U);
    EXPECT_EQ(up_, (std::vector<domid_t>{1, 2, 0}));
    EXPECT_EQ(broker_.domid_of_pid(a.pid()), 1);
    EXPECT_EQ(broker_.domid_of_pid(zero.pid()), 0);
    EXPECT_EQ(broker_.domid_of_pid(dup.pid()), std::nullopt);
    EXPECT_TRUE(gone_.empty());
}

TEST_F(Broker, KilledDomainIsGoneAndItsDomidReusable) {
    auto a = start(domid_invalid);
    ASSERT_EQ(result_of(a).domid, 1U);
    auto b = start(domid_invalid);
    ASSERT_EQ(result_of(b).domid, 2U);
    const pid_t pid = a.pid();
    a.kill9();
    EXPECT_TRUE(pump_until(loop_, [&] { return gone(1); }));
    EXPECT_EQ(gone_, std::vector<domid_t>{1});
    EXPECT_EQ(broker_.domid_of_pid(pid), std::nullopt);
    EXPECT_EQ(broker_.domain_count(), 1U);
    auto c = start(domid_invalid);
    EXPECT_EQ(result_of(c).domid, 1U);  // lowest free again
    auto d2 = start(2);
    EXPECT_EQ(result_of(d2).err, EEXIST);  // b is still alive
}

TEST_F(Broker, OrderlyExitIsGoneToo) {
    auto a = start(5);
    ASSERT_EQ(result_of(a).domid, 5U);
    a.chan().put(0);
    EXPECT_TRUE(pump_until(loop_, [&] { return gone(5); }));
    EXPECT_EQ(a.wait(), 0);
}

TEST_F(Broker, GarbageDisconnectsOnlyThatClient) {
    auto a = start(domid_invalid);
    ASSERT_EQ(result_of(a).domid, 1U);
    auto s = raw_client();
    const char junk[3] = {1, 2, 3};
    ASSERT_EQ(::send(s.get(), junk, sizeof(junk), 0), 3);
    EXPECT_TRUE(closed_by_broker(s.get()));
    EXPECT_EQ(broker_.domain_count(), 1U);
    EXPECT_TRUE(gone_.empty());
    auto b = start(domid_invalid);  // the broker still serves
    EXPECT_EQ(result_of(b).domid, 2U);
}

TEST_F(Broker, RequestsBeforeRegistrationDisconnect) {
    auto s = raw_client();
    d::peer_req req{{d::msg_type::peer_req, 1}, 0, 0};
    ASSERT_EQ(d::send_struct(s.get(), req), 0);
    EXPECT_TRUE(closed_by_broker(s.get()));
}

TEST_F(Broker, WrongSizeOrUnknownTypeDisconnects) {
    for (std::uint32_t type : {2U, 9U, 77U}) {
        auto s = raw_client();
        d::msg_header h{static_cast<d::msg_type>(type), 1};
        ASSERT_EQ(d::send_struct(s.get(), h), 0);
        EXPECT_TRUE(closed_by_broker(s.get())) << type;
    }
    auto s = raw_client();
    std::vector<char> big(4096, 0);
    ASSERT_EQ(d::send_msg(s.get(), big.data(), big.size(), {}), 0);
    EXPECT_TRUE(closed_by_broker(s.get()));
}

TEST_F(Broker, RegistrationWithoutMemfdDisconnects) {
    auto s = raw_client();
    const auto req = reg_req(domid_invalid);
    ASSERT_EQ(d::send_struct(s.get(), req), 0);  // no fd attached
    EXPECT_TRUE(closed_by_broker(s.get()));
}

TEST_F(Broker, RegistrationWithUnsealableFdIsRefused) {
    auto s = raw_client();
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    d::unique_fd r(p[0]), w(p[1]);
    const auto req = reg_req(domid_invalid);
    const int fds[] = {r.get()};
    std::vector<d::unique_fd> got;
    const auto rsp = roundtrip<d::register_rsp>(s.get(), &req, sizeof(req), fds, got);
    EXPECT_EQ(rsp.err, EINVAL);
    EXPECT_TRUE(got.empty());
    EXPECT_EQ(broker_.domain_count(), 0U);
}

TEST_F(Broker, RegistrationChecksSizesAndPid) {
    auto s = raw_client();
    auto mem = d::make_memfd("test", page_size);
    const int fds[] = {mem.get()};
    std::vector<d::unique_fd> got;
    auto req = reg_req(domid_invalid);
    req.mem_pages = 2;  // memfd holds only one page
    EXPECT_EQ(roundtrip<d::register_rsp>(s.get(), &req, sizeof(req), fds, got).err, EINVAL);
    req = reg_req(domid_invalid);
    req.grant_entries = 8;  // nothing left after the reserved refs
    EXPECT_EQ(roundtrip<d::register_rsp>(s.get(), &req, sizeof(req), fds, got).err, EINVAL);
    req = reg_req(domid_invalid);
    req.base = 0x10001;
    EXPECT_EQ(roundtrip<d::register_rsp>(s.get(), &req, sizeof(req), fds, got).err, EINVAL);
    req = reg_req(domid_invalid);
    req.pid = ::getpid() + 1;  // claims another process's memory for process_vm_*
    EXPECT_EQ(roundtrip<d::register_rsp>(s.get(), &req, sizeof(req), fds, got).err, EPERM);
    req = reg_req(domid_invalid);
    const auto ok = roundtrip<d::register_rsp>(s.get(), &req, sizeof(req), fds, got);
    EXPECT_EQ(ok.err, 0);
    EXPECT_EQ(got.size(), 2U);  // grant table + directory
    EXPECT_EQ(broker_.domid_of_pid(::getpid()), ok.domid);
}

TEST_F(Broker, RegisteredClientSendingGarbageIsGone) {
    auto s = raw_client();
    auto mem = d::make_memfd("test", page_size);
    const int fds[] = {mem.get()};
    std::vector<d::unique_fd> got;
    const auto req = reg_req(4);
    ASSERT_EQ(roundtrip<d::register_rsp>(s.get(), &req, sizeof(req), fds, got).err, 0);
    EXPECT_EQ(up_, std::vector<domid_t>{4});
    // Registering twice on one connection is a protocol error.
    ASSERT_EQ(d::send_struct(s.get(), req, fds), 0);
    EXPECT_TRUE(closed_by_broker(s.get()));
    EXPECT_EQ(gone_, std::vector<domid_t>{4});
    EXPECT_EQ(broker_.domain_count(), 0U);
}

TEST_F(Broker, PeerRequestsWithFdsDisconnect) {
    auto s = raw_client();
    auto mem = d::make_memfd("test", page_size);
    const int fds[] = {mem.get()};
    std::vector<d::unique_fd> got;
    const auto req = reg_req(domid_invalid);
    ASSERT_EQ(roundtrip<d::register_rsp>(s.get(), &req, sizeof(req), fds, got).err, 0);
    d::evtchn_close_req close{{d::msg_type::evtchn_close_req, 2}, 1, 0};
    ASSERT_EQ(d::send_struct(s.get(), close, fds), 0);  // an fd where none belongs
    EXPECT_TRUE(closed_by_broker(s.get()));
}

TEST_F(Broker, SecondBrokerOnLiveSocketIsRefused) {
    util::event_loop other;
    try {
        broker b(other, path_, {});
        FAIL() << "a live socket was taken over";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EADDRINUSE);
    }
}

// Memfds of guest memory open in this process (the broker's and mappers' copies).
std::size_t guest_memfds() {
    std::size_t n = 0;
    for (int fd = 0; fd < 4096; ++fd) {
        char target[256] = {};
        const std::string link = "/proc/self/fd/" + std::to_string(fd);
        if (::readlink(link.c_str(), target, sizeof target - 1) > 0 &&
            std::string_view(target).starts_with("/memfd:vifkit-guest"))
            ++n;
    }
    return n;
}

// Broker and domains on one thread (what the fuzz targets do): attach's pump
// runs the broker between each request and its reply. Everything else is the
// emulator as usual: grants, copies, event channels, a domain leaving.
TEST_F(Broker, DomainsOnTheBrokersThreadWithAPump) {
    const auto pump = [this] {
        while (loop_.run_once(std::chrono::milliseconds(0)) > 0) {}
    };
    auto front = domain::attach(path_, 1, 4, 16, pump);
    auto back = domain::attach(path_, 0, 4, 16, pump);
    EXPECT_EQ(up_, (std::vector<domid_t>{1, 0}));
    EXPECT_EQ(broker_.domain_count(), 2U);

    auto sharer = front->make_sharer();
    platform::shared_page pg{};
    ASSERT_TRUE(sharer->share_pages(0, std::span(&pg, 1), true));
    std::memcpy(pg.addr, "hello", 5);
    auto svc = back->make_services();
    platform::map_op m{pg.ref, false};
    svc.mapper->map(1, std::span(&m, 1));
    ASSERT_EQ(m.status, gnt_status::okay);
    EXPECT_EQ(std::memcmp(m.addr, "hello", 5), 0);
    std::memcpy(static_cast<char*>(m.addr) + 5, "!", 1);
    char buf[6] = {};
    platform::copy_op c{platform::copy_op::dir::from_peer, pg.ref, 0, 6, buf};
    svc.mapper->copy(1, std::span(&c, 1));
    ASSERT_EQ(c.status, gnt_status::okay);
    EXPECT_EQ(std::memcmp(buf, "hello!", 6), 0);
    gnt_status st{};
    EXPECT_EQ(sharer->unshare(std::span(&pg, 1), std::span(&st, 1)), 0U);  // mapped: refused
    svc.mapper->unmap(std::span(&m, 1));
    EXPECT_EQ(m.status, gnt_status::okay);

    auto fev = front->make_event_channels();
    const auto fport = fev->alloc_unbound(0);
    ASSERT_TRUE(fport);
    const auto bport = svc.evtchn->bind_interdomain(1, *fport);
    ASSERT_TRUE(bport);
    EXPECT_EQ(broker_.port_count(1), 1U);
    EXPECT_EQ(broker_.port_count(0), 1U);
    ASSERT_EQ(svc.evtchn->notify(*bport), 0);
    EXPECT_EQ(fev->pending(), fport);

    // The frontend leaves: the broker notices on its next pump. The backend's
    // mapper still caches the frontend's registration (and so its memory)
    // until one of its calls misses the cache, for whichever domain; then the
    // memory is let go.
    const std::size_t memfds = guest_memfds();
    fev.reset();
    sharer.reset();
    front.reset();
    pump();
    EXPECT_EQ(gone_, std::vector<domid_t>{1});
    EXPECT_EQ(broker_.domain_count(), 1U);
    EXPECT_EQ(broker_.port_count(1), 0U);
    EXPECT_EQ(guest_memfds(), memfds - 1);  // the broker's copy
    auto other = domain::attach(path_, 2, 4, 16, pump);
    EXPECT_EQ(guest_memfds(), memfds);      // + the broker's copy of domain 2
    svc.mapper->copy(2, {});                // a miss: the mapper caches domain 2 ...
    EXPECT_EQ(guest_memfds(), memfds);      // ... and drops domain 1
    c.status = gnt_status::okay;
    svc.mapper->copy(1, std::span(&c, 1));
    EXPECT_EQ(c.status, gnt_status::bad_domain);
    EXPECT_EQ(svc.evtchn->unbind(*bport), 0);
    EXPECT_EQ(broker_.port_count(0), 0U);
}

}  // namespace
}  // namespace vifkit::emu::test
