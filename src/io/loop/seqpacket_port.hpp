// Internal: ports over AF_UNIX SOCK_SEQPACKET sockets, where one datagram carries one
// frame. Used by make_mem_pair() and the "unix:" / "unix-connect:" specs.
#pragma once
#include <sys/types.h>

#include <memory>
#include <string>

#include "vifkit/io/packet_port.hpp"
#include "vifkit/util/log.hpp"

namespace vifkit::io::detail {

// A connected socket: one end of a socketpair, or the connecting side of "unix-connect:".
class seqpacket_port final : public packet_port {
public:
    seqpacket_port(int fd, std::string desc) : fd_(fd), desc_(std::move(desc)) {}
    ~seqpacket_port() override;

    [[nodiscard]] int fd() const override { return fd_; }
    [[nodiscard]] long recv(std::span<std::byte> buf) override;
    bool send(std::span<const std::byte> frame) override;
    [[nodiscard]] std::string describe() const override { return desc_; }
    [[nodiscard]] stats get_stats() const override { return stats_; }

private:
    int fd_;
    std::string desc_;
    stats stats_;
    bool hung_up_ = false;  // report (count, log) a vanished peer only once
    util::rate_limited log_limit_;
};

// The listening side of "unix:": one peer at a time, the newest wins.
class unix_listen_port final : public packet_port {
public:
    [[nodiscard]] static std::unique_ptr<unix_listen_port> open(const std::string& path,
                                                                std::string* error);
    ~unix_listen_port() override;

    // The epoll fd covering the listening socket and the current peer.
    [[nodiscard]] int fd() const override { return epoll_fd_; }
    [[nodiscard]] long recv(std::span<std::byte> buf) override;
    bool send(std::span<const std::byte> frame) override;
    [[nodiscard]] std::string describe() const override { return desc_; }
    [[nodiscard]] stats get_stats() const override { return stats_; }

private:
    unix_listen_port(int listen_fd, int epoll_fd, std::string path)
        : listen_fd_(listen_fd),
          epoll_fd_(epoll_fd),
          path_(std::move(path)),
          desc_("unix:" + path_) {}

    bool accept_pending();
    void install_peer(int conn_fd);
    void drop_peer();
    long receive_from_peer(std::span<std::byte> buf);

    int listen_fd_;
    int epoll_fd_;
    int conn_fd_ = -1;
    std::string path_;
    std::string desc_;  // built once: logging must not allocate per frame
    dev_t sock_dev_ = 0;  // identity of the socket file we bound, so the destructor
    ino_t sock_ino_ = 0;  // never unlinks a newer listener's socket
    unsigned recvs_since_accept_ = 0;
    stats stats_;
    util::rate_limited log_limit_;
};

[[nodiscard]] std::unique_ptr<packet_port> open_unix_connect(const std::string& path,
                                                             std::string* error);

}  // namespace vifkit::io::detail
