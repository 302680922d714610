// open_port(): spec-string dispatch, plus the two ports too small for a file of their
// own ("null" and the in-process pair).
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <string_view>

#include "gen/gen_port.hpp"
#include "loop/seqpacket_port.hpp"
#include "vnet/vnet_hdr.hpp"
#include "vifkit/io/packet_port.hpp"
#include "vifkit/io/tap_port.hpp"

namespace vifkit::io {
namespace {

class null_port final : public packet_port {
public:
    [[nodiscard]] int fd() const override { return -1; }
    [[nodiscard]] long recv(std::span<std::byte>) override { return 0; }
    bool send(std::span<const std::byte> frame) override {
        // Discarding is this port's job, so it is a successful send, not a drop.
        ++stats_.tx_frames;
        stats_.tx_bytes += frame.size();
        return true;
    }
    [[nodiscard]] std::string describe() const override { return "null"; }
    [[nodiscard]] stats get_stats() const override { return stats_; }

private:
    stats stats_;
};

std::unique_ptr<packet_port> fail(std::string* error, std::string msg) {
    if (error) *error = std::move(msg);
    return nullptr;
}

// "NAME[:mtu=N][:plain]". ':' cannot occur in a Linux interface name, so it is a
// safe separator.
std::unique_ptr<packet_port> open_tap_spec(std::string_view rest, std::string* error) {
    const auto colon = rest.find(':');
    const std::string name(rest.substr(0, colon));
    int mtu = 0;
    bool vnet = true;
    std::string_view opts = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    while (!opts.empty()) {
        const auto next = opts.find(':');
        const std::string_view opt = opts.substr(0, next);
        opts = next == std::string_view::npos ? std::string_view{} : opts.substr(next + 1);
        constexpr std::string_view key = "mtu=";
        if (opt == "plain") {
            vnet = false;
            continue;
        }
        const char* first = opt.data() + key.size();
        const char* last = opt.data() + opt.size();
        if (!opt.starts_with(key) || std::from_chars(first, last, mtu).ptr != last || mtu <= 0) {
            return fail(error, "tap: unknown option '" + std::string(opt) + "' (want mtu=N or plain)");
        }
    }
    auto port = tap_port::open(name, vnet, error);
    if (!port) return nullptr;
    if (mtu > 0) {
        if (const int rc = port->set_mtu(mtu); rc < 0)
            return fail(error, "tap: set mtu " + std::to_string(mtu) + ": " + std::strerror(-rc));
    }
    return port;
}

// A unix spec's path, and whether it ends in ":vnet".
std::pair<std::string, bool> unix_spec(std::string_view rest) {
    constexpr std::string_view suffix = ":vnet";
    if (rest.ends_with(suffix)) return {std::string(rest.substr(0, rest.size() - suffix.size())), true};
    return {std::string(rest), false};
}

}  // namespace

std::unique_ptr<packet_port> open_port(const std::string& spec, std::string* error) {
    const std::string_view s = spec;
    if (s == "null") return std::make_unique<null_port>();
    if (s.starts_with("gen:")) return detail::gen_port::open(s.substr(4), error);
    if (s.starts_with("tap:")) return open_tap_spec(s.substr(4), error);
    if (s.starts_with("unix:")) {
        const auto [path, vnet] = unix_spec(s.substr(5));
        std::unique_ptr<packet_port> p = detail::unix_listen_port::open(path, error);
        return vnet && p ? detail::with_vnet(std::move(p)) : std::move(p);
    }
    if (s.starts_with("unix-connect:")) {
        const auto [path, vnet] = unix_spec(s.substr(13));
        auto p = detail::open_unix_connect(path, error);
        return vnet && p ? detail::with_vnet(std::move(p)) : std::move(p);
    }
    return fail(error, "unknown port spec '" + spec + "'\n" + usage());
}

std::string usage() {
    return "Packet port specs:\n"
           "  tap:NAME[:mtu=N][:plain]\n"
           "                       TAP device NAME (created if needed, \"%d\" allowed),\n"
           "                       link set up, MTU optionally set; checksum and TCP\n"
           "                       segmentation offloads pass to/from the kernel through\n"
           "                       IFF_VNET_HDR (\"plain\": without it, no offloads)\n"
           "  unix:PATH[:vnet]     listen on a SOCK_SEQPACKET unix socket at PATH, one\n"
           "                       frame per datagram; a new peer replaces the old one;\n"
           "                       \":vnet\": each datagram starts with a virtio_net_hdr\n"
           "  unix-connect:PATH[:vnet]  connect to a \"unix:\" port at PATH\n"
           "  null                 discard everything sent, never receive\n"
           "  gen:SIZE[:flows=N][:count=N]\n"
           "                       traffic source (benchmarks): receives IPv4/UDP frames\n"
           "                       of SIZE bytes from N source addresses (default 64),\n"
           "                       endless or COUNT frames; discards what is sent\n";
}

std::pair<std::unique_ptr<packet_port>, std::unique_ptr<packet_port>> make_mem_pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) {
        return {nullptr, nullptr};
    }
    return {std::make_unique<detail::seqpacket_port>(fds[0], "mem:a"),
            std::make_unique<detail::seqpacket_port>(fds[1], "mem:b")};
}

}  // namespace vifkit::io
