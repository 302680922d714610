// open_port(): spec-string dispatch, plus the two ports too small for a file of their
// own ("null" and the in-process pair).
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <string_view>

#include "gen/gen_port.hpp"
#include "loop/seqpacket_port.hpp"
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

// "NAME" or "NAME:mtu=N". ':' cannot occur in a Linux interface name, so it is a safe
// separator.
std::unique_ptr<packet_port> open_tap_spec(std::string_view rest, std::string* error) {
    const auto colon = rest.find(':');
    auto port = tap_port::open(std::string(rest.substr(0, colon)), error);
    if (!port || colon == std::string_view::npos) return port;

    const std::string_view opt = rest.substr(colon + 1);
    constexpr std::string_view key = "mtu=";
    int mtu = 0;
    const char* first = opt.data() + key.size();
    const char* last = opt.data() + opt.size();
    if (!opt.starts_with(key) || std::from_chars(first, last, mtu).ptr != last || mtu <= 0) {
        return fail(error, "tap: unknown option '" + std::string(opt) + "' (want mtu=N)");
    }
    if (const int rc = port->set_mtu(mtu); rc < 0) {
        return fail(error, "tap: set mtu " + std::to_string(mtu) + ": " + std::strerror(-rc));
    }
    return port;
}

}  // namespace

std::unique_ptr<packet_port> open_port(const std::string& spec, std::string* error) {
    const std::string_view s = spec;
    if (s == "null") return std::make_unique<null_port>();
    if (s.starts_with("gen:")) return detail::gen_port::open(s.substr(4), error);
    if (s.starts_with("tap:")) return open_tap_spec(s.substr(4), error);
    if (s.starts_with("unix:")) return detail::unix_listen_port::open(spec.substr(5), error);
    if (s.starts_with("unix-connect:")) return detail::open_unix_connect(spec.substr(13), error);
    return fail(error, "unknown port spec '" + spec + "'\n" + usage());
}

std::string usage() {
    return "Packet port specs:\n"
           "  tap:NAME[:mtu=N]     TAP device NAME (created if needed, \"%d\" allowed),\n"
           "                       link set up, MTU optionally set\n"
           "  unix:PATH            listen on a SOCK_SEQPACKET unix socket at PATH, one\n"
           "                       frame per datagram; a new peer replaces the old one\n"
           "  unix-connect:PATH    connect to a \"unix:\" port at PATH\n"
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
