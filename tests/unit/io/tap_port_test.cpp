// "tap:" against the real kernel, inside a network namespace this test creates, so
// nothing it sends can leave the namespace. The test thread enters the namespace only
// while the tap is created and configured, then returns to where it was.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#include "io_test_helpers.hpp"
#include "vifkit/io/packet_port.hpp"
#include "vifkit/io/tap_port.hpp"

namespace vifkit::io {
namespace {

// TEST-NET-1 addresses: the namespace's own side and a made-up neighbour.
constexpr std::array<std::uint8_t, 4> ns_ip = {192, 0, 2, 1};
constexpr std::array<std::uint8_t, 4> peer_ip = {192, 0, 2, 2};
constexpr std::array<std::uint8_t, 6> peer_mac = {0x02, 0, 0, 0, 0, 0x02};
constexpr std::uint16_t echo_id = 0x7d1f;

bool run(const std::string& cmd) { return std::system(cmd.c_str()) == 0; }

// A namespace created with `ip netns add` and deleted at scope exit; the calling thread
// can step into it with enter() and is moved back by the destructor.
class test_netns {
public:
    test_netns() : name_("vifkit-iotest-" + std::to_string(::getpid())) {
        created_ = run("ip netns add " + name_ + " 2>/dev/null");
    }
    ~test_netns() {
        if (home_fd_ >= 0) {
            ::setns(home_fd_, CLONE_NEWNET);
            ::close(home_fd_);
        }
        if (created_) run("ip netns del " + name_);
    }
    test_netns(const test_netns&) = delete;
    test_netns& operator=(const test_netns&) = delete;

    [[nodiscard]] bool created() const { return created_; }
    [[nodiscard]] const std::string& name() const { return name_; }
    bool enter() {
        home_fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        const int fd = ::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
        const bool ok = home_fd_ >= 0 && fd >= 0 && ::setns(fd, CLONE_NEWNET) == 0;
        if (fd >= 0) ::close(fd);
        return ok;
    }

private:
    std::string name_;
    bool created_ = false;
    int home_fd_ = -1;
};

bool tun_available() {
    const int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

std::uint16_t inet_checksum(std::span<const std::byte> data) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i + 1 < data.size(); i += 2) {
        sum += (std::to_integer<std::uint32_t>(data[i]) << 8) |
               std::to_integer<std::uint32_t>(data[i + 1]);
    }
    if (data.size() % 2 != 0) sum += std::to_integer<std::uint32_t>(data.back()) << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

void put16(std::vector<std::byte>& f, std::size_t off, std::uint16_t v) {
    f[off] = static_cast<std::byte>(v >> 8);
    f[off + 1] = static_cast<std::byte>(v & 0xff);
}

template <std::size_t N>
void put(std::vector<std::byte>& f, std::size_t off, const std::array<std::uint8_t, N>& v) {
    for (std::size_t i = 0; i < N; ++i) f[off + i] = static_cast<std::byte>(v[i]);
}

// Ethernet + IPv4 + ICMP echo request from the neighbour to the namespace's address.
std::vector<std::byte> echo_request(const std::array<std::uint8_t, 6>& dst_mac,
                                    std::uint16_t seq) {
    constexpr std::size_t eth = 14, ip = 20, icmp = 8, payload = 32;
    std::vector<std::byte> f(eth + ip + icmp + payload);
    put(f, 0, dst_mac);
    put(f, 6, peer_mac);
    put16(f, 12, 0x0800);
    f[eth] = std::byte{0x45};                         // IPv4, 20-byte header
    put16(f, eth + 2, ip + icmp + payload);           // total length
    f[eth + 8] = std::byte{64};                       // TTL
    f[eth + 9] = std::byte{1};                        // ICMP
    put(f, eth + 12, peer_ip);
    put(f, eth + 16, ns_ip);
    put16(f, eth + 10, inet_checksum(std::span(f).subspan(eth, ip)));
    f[eth + ip] = std::byte{8};                       // echo request
    put16(f, eth + ip + 4, echo_id);
    put16(f, eth + ip + 6, seq);
    for (std::size_t i = 0; i < payload; ++i) {
        f[eth + ip + icmp + i] = static_cast<std::byte>(i + seq);
    }
    put16(f, eth + ip + 2, inet_checksum(std::span(f).subspan(eth + ip)));
    return f;
}

// True if `f` is the kernel's echo reply to echo_request(_, seq).
bool is_echo_reply(std::span<const std::byte> f, std::uint16_t seq) {
    constexpr std::size_t eth = 14, ip = 20;
    const auto u8 = [&](std::size_t i) { return std::to_integer<std::uint8_t>(f[i]); };
    const auto u16 = [&](std::size_t i) {
        return static_cast<std::uint16_t>(u8(i) << 8 | u8(i + 1));
    };
    if (f.size() < eth + ip + 8 + 32 || u16(12) != 0x0800 || u8(eth) != 0x45 || u8(eth + 9) != 1) {
        return false;
    }
    bool addressed = true;
    for (std::size_t i = 0; i < peer_mac.size(); ++i) addressed &= u8(i) == peer_mac[i];
    bool payload_echoed = true;
    for (std::size_t i = 0; i < 32; ++i) {
        payload_echoed &= f[eth + ip + 8 + i] == static_cast<std::byte>(i + seq);
    }
    return addressed && u8(eth + ip) == 0 && u16(eth + ip + 4) == echo_id &&
           u16(eth + ip + 6) == seq && payload_echoed;
}

ifreq query(const std::string& ifname, unsigned long request) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    const int s = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::ioctl(s, request, &ifr), 0) << ifname << " ioctl " << request;
    ::close(s);
    return ifr;
}

class TapPort : public ::testing::Test {
protected:
    void SetUp() override {
        if (!tun_available()) GTEST_SKIP() << "/dev/net/tun unavailable";
        if (!ns_.created()) GTEST_SKIP() << "cannot create a network namespace";
        ASSERT_TRUE(ns_.enter());
    }
    test_netns ns_;
    std::vector<std::byte> buf_ = std::vector<std::byte>(max_frame_size);
};

TEST_F(TapPort, KernelAnswersAnEchoWrittenToTheTap) {
    std::string err;
    auto port = open_port("tap:vkio%d:mtu=1400", &err);
    ASSERT_TRUE(port) << err;
    const std::string ifname = port->describe().substr(4);
    EXPECT_EQ(ifname.rfind("vkio", 0), 0u) << ifname;  // "%d" was expanded
    EXPECT_NE(query(ifname, SIOCGIFFLAGS).ifr_flags & IFF_UP, 0);
    EXPECT_EQ(query(ifname, SIOCGIFMTU).ifr_mtu, 1400);
    std::array<std::uint8_t, 6> mac{};
    const ifreq hw = query(ifname, SIOCGIFHWADDR);
    std::memcpy(mac.data(), hw.ifr_hwaddr.sa_data, mac.size());
    // A permanent neighbour entry lets the kernel reply without an ARP round first.
    ASSERT_TRUE(run("ip -n " + ns_.name() + " addr add 192.0.2.1/24 dev " + ifname));
    ASSERT_TRUE(run("ip -n " + ns_.name() + " neigh replace 192.0.2.2 lladdr 02:00:00:00:00:02"
                    " dev " + ifname + " nud permanent"));

    ASSERT_TRUE(port->send(echo_request(mac, 1)));
    bool answered = false;
    // Other frames (IPv6 autoconfiguration chatter) may come first; skip them.
    for (int i = 0; i < 100 && !answered; ++i) {
        const long n = test::recv_wait(*port, buf_, 1000);
        ASSERT_GT(n, 0) << "no reply from the kernel";
        answered = is_echo_reply(std::span(buf_).first(static_cast<std::size_t>(n)), 1);
    }
    EXPECT_TRUE(answered);
    EXPECT_EQ(port->get_stats().tx_frames, 1u);
    EXPECT_GE(port->get_stats().rx_frames, 1u);
    EXPECT_EQ(port->get_stats().rx_errors, 0u);

    // A frame larger than the buffer given to recv() is dropped and counted.
    ASSERT_TRUE(port->send(echo_request(mac, 2)));
    ASSERT_TRUE(test::wait_readable(port->fd(), 1000));
    std::fill(buf_.begin(), buf_.end(), std::byte{0xa5});
    EXPECT_EQ(port->recv(std::span(buf_).first(16)), 0);
    EXPECT_EQ(port->get_stats().rx_errors, 1u);
    EXPECT_TRUE(std::all_of(buf_.begin() + 16, buf_.begin() + 256,
                            [](std::byte b) { return b == std::byte{0xa5}; }));
}

TEST_F(TapPort, SpecOptionsAreChecked) {
    std::string err;
    EXPECT_EQ(open_port("tap:vkio%d:mtu=abc", &err), nullptr);
    EXPECT_NE(err.find("unknown option"), std::string::npos) << err;
    EXPECT_EQ(open_port("tap:vkio%d:speed=10", &err), nullptr);
    EXPECT_NE(err.find("unknown option"), std::string::npos) << err;
    EXPECT_EQ(open_port("tap:vkio%d:mtu=20", &err), nullptr);  // below the minimum
    EXPECT_NE(err.find("mtu"), std::string::npos) << err;
}

TEST_F(TapPort, DeviceGoesAwayWithThePort) {
    std::string err;
    auto tap = tap_port::open("vkio%d", false, &err);
    ASSERT_TRUE(tap) << err;
    const std::string ifname = tap->ifname();
    EXPECT_EQ(tap->describe(), "tap:" + ifname);
    EXPECT_EQ(tap->set_mtu(9000), 0);
    EXPECT_EQ(query(ifname, SIOCGIFMTU).ifr_mtu, 9000);
    tap.reset();
    EXPECT_FALSE(run("ip -n " + ns_.name() + " link show dev " + ifname + " >/dev/null 2>&1"));
}

}  // namespace
}  // namespace vifkit::io
