// "unix:" (listening, one peer at a time) and "unix-connect:" ports.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "io_test_helpers.hpp"
#include "vifkit/io/packet_port.hpp"

namespace vifkit::io {
namespace {

using test::make_frame;
using test::recv_wait;

class UnixPort : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(dir_.ok());
        path_ = dir_.file("port.sock");
    }

    std::unique_ptr<packet_port> listen() {
        std::string err;
        auto p = open_port("unix:" + path_, &err);
        EXPECT_TRUE(p) << err;
        return p;
    }
    std::unique_ptr<packet_port> connect() {
        std::string err;
        auto p = open_port("unix-connect:" + path_, &err);
        EXPECT_TRUE(p) << err;
        return p;
    }
    // Sends one frame from `from` and checks that `to` receives exactly it.
    static void expect_delivered(packet_port& from, packet_port& to, std::uint32_t seed,
                                 std::size_t size) {
        const auto frame = make_frame(seed, size);
        ASSERT_TRUE(from.send(frame)) << from.describe() << " seed " << seed;
        std::vector<std::byte> buf(max_frame_size);
        ASSERT_EQ(recv_wait(to, buf), static_cast<long>(size)) << to.describe();
        EXPECT_TRUE(std::equal(frame.begin(), frame.end(), buf.begin()));
    }

    test::temp_dir dir_;
    std::string path_;
    std::vector<std::byte> buf_ = std::vector<std::byte>(max_frame_size);
};

TEST_F(UnixPort, RoundTripBothDirections) {
    auto server = listen();
    auto client = connect();
    ASSERT_TRUE(server && client);
    EXPECT_EQ(server->describe(), "unix:" + path_);
    EXPECT_EQ(client->describe(), "unix-connect:" + path_);
    for (std::uint32_t i = 0; i < 200; ++i) {
        expect_delivered(*client, *server, i, test::frame_size_for(i));
        expect_delivered(*server, *client, 1000 + i, test::frame_size_for(i + 1));
    }
    expect_delivered(*client, *server, 9, max_frame_size);
    EXPECT_EQ(server->get_stats().rx_frames, 201u);
    EXPECT_EQ(server->get_stats().tx_frames, 200u);
    EXPECT_EQ(client->get_stats().rx_frames, 200u);
}

TEST_F(UnixPort, SingleFdSeesConnectingPeerAndItsFrames) {
    auto server = listen();
    ASSERT_TRUE(server);
    ASSERT_GE(server->fd(), 0);
    EXPECT_FALSE(test::wait_readable(server->fd(), 0));
    auto client = connect();
    ASSERT_TRUE(client);
    EXPECT_TRUE(test::wait_readable(server->fd(), 1000));  // pending connection
    EXPECT_EQ(server->recv(buf_), 0);                       // accepts it
    EXPECT_FALSE(test::wait_readable(server->fd(), 0));
    ASSERT_TRUE(client->send(make_frame(1, 60)));
    EXPECT_TRUE(test::wait_readable(server->fd(), 1000));  // frame on the connection
    EXPECT_EQ(server->recv(buf_), 60);
}

TEST_F(UnixPort, SendBeforeAnyPeerConnectsDropsAndCounts) {
    auto server = listen();
    ASSERT_TRUE(server);
    EXPECT_FALSE(server->send(make_frame(1, 60)));
    EXPECT_FALSE(server->send(make_frame(2, 60)));
    EXPECT_EQ(server->get_stats().tx_drops, 2u);
    EXPECT_EQ(server->get_stats().tx_frames, 0u);
    EXPECT_EQ(server->recv(buf_), 0);
}

TEST_F(UnixPort, SendAcceptsAWaitingPeerItself) {
    // A send-only user never calls recv(); its first peer must still get frames.
    auto server = listen();
    auto client = connect();
    ASSERT_TRUE(server && client);
    expect_delivered(*server, *client, 3, 100);
    EXPECT_EQ(server->get_stats().tx_drops, 0u);
}

TEST_F(UnixPort, NewPeerReplacesTheOldOne) {
    auto server = listen();
    auto first = connect();
    ASSERT_TRUE(server && first);
    expect_delivered(*first, *server, 1, 60);

    auto second = connect();
    ASSERT_TRUE(second);
    expect_delivered(*second, *server, 2, 70);
    expect_delivered(*server, *second, 3, 80);
    // The first peer was disconnected and receives nothing more.
    EXPECT_EQ(recv_wait(*first, buf_, 50), -ECONNRESET);
    EXPECT_FALSE(first->send(make_frame(4, 60)));
    EXPECT_EQ(server->recv(buf_), 0);
    EXPECT_EQ(server->get_stats().rx_frames, 2u);
}

TEST_F(UnixPort, PeerLeavingIsNotFatalAndTheNextPeerIsServed) {
    auto server = listen();
    auto client = connect();
    ASSERT_TRUE(server && client);
    expect_delivered(*client, *server, 1, 60);
    client.reset();
    EXPECT_EQ(recv_wait(*server, buf_, 50), 0);  // hangup handled inside
    EXPECT_FALSE(test::wait_readable(server->fd(), 0));
    EXPECT_FALSE(server->send(make_frame(2, 60)));
    EXPECT_EQ(server->get_stats().tx_drops, 1u);
    EXPECT_EQ(server->get_stats().rx_errors, 0u);

    auto next = connect();
    ASSERT_TRUE(next);
    expect_delivered(*next, *server, 3, 90);
    expect_delivered(*server, *next, 4, 90);
}

TEST_F(UnixPort, OversizedFrameFromPeerIsDroppedAndCounted) {
    auto server = listen();
    auto client = connect();
    ASSERT_TRUE(server && client);
    ASSERT_TRUE(client->send(make_frame(1, 2000)));
    ASSERT_TRUE(client->send(make_frame(2, 500)));
    std::vector<std::byte> guarded(1024, std::byte{0x5a});
    const auto small = std::span(guarded).first(1000);
    EXPECT_EQ(recv_wait(*server, small, 50), 500);  // first frame dropped, second fits
    EXPECT_TRUE(std::all_of(guarded.begin() + 1000, guarded.end(),
                            [](std::byte x) { return x == std::byte{0x5a}; }));
    EXPECT_EQ(server->get_stats().rx_errors, 1u);
    EXPECT_EQ(server->get_stats().rx_frames, 1u);
}

TEST_F(UnixPort, StaleSocketFileIsReplaced) {
    {
        // What a crashed listener leaves behind: a bound socket file nobody serves.
        const int s = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path_.c_str(), sizeof sa.sun_path - 1);
        ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        ::close(s);
    }
    auto server = listen();
    auto client = connect();
    ASSERT_TRUE(server && client);
    expect_delivered(*client, *server, 1, 60);
}

TEST_F(UnixPort, ExistingRegularFileIsLeftAlone) {
    std::ofstream(path_) << "keep me";
    std::string err;
    EXPECT_EQ(open_port("unix:" + path_, &err), nullptr);
    EXPECT_NE(err.find("not a socket"), std::string::npos) << err;
    std::string content;
    std::getline(std::ifstream(path_), content);
    EXPECT_EQ(content, "keep me");
}

TEST_F(UnixPort, ClosingTheListenerRemovesItsSocketFile) {
    auto server = listen();
    ASSERT_TRUE(server);
    struct stat st {};
    EXPECT_EQ(::lstat(path_.c_str(), &st), 0);
    server.reset();
    EXPECT_NE(::lstat(path_.c_str(), &st), 0);
}

TEST_F(UnixPort, ConnectWithoutListenerFails) {
    std::string err;
    EXPECT_EQ(open_port("unix-connect:" + path_, &err), nullptr);
    EXPECT_FALSE(err.empty());
}

TEST_F(UnixPort, OverlongPathIsRejected) {
    std::string err;
    EXPECT_EQ(open_port("unix:/tmp/" + std::string(200, 'x'), &err), nullptr);
    EXPECT_NE(err.find("path"), std::string::npos) << err;
    EXPECT_EQ(open_port("unix:", &err), nullptr);
}

}  // namespace
}  // namespace vifkit::io
