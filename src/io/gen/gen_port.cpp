// "gen:SIZE[:flows=N][:count=N]": an in-process traffic source, the way
// testpmd's txonly engine is one. recv() hands out IPv4/UDP frames of SIZE
// bytes built from one template: the source address cycles through `flows`
// addresses (so multi-queue steering spreads them) and the payload starts with
// a 64-bit sequence number. No syscall and no allocation per frame. send()
// discards (it is a sink as well, like "null").
//
// fd() is an eventfd that stays readable while frames remain, so a
// level-triggered poller keeps calling recv(); after `count` frames it is
// drained and the port goes quiet for good.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <string_view>
#include <vector>

#include "gen_port.hpp"

#include "vifkit/wire/checksum.hpp"

namespace vifkit::io::detail {
namespace {

constexpr std::size_t eth_hlen = 14, ip_hlen = 20, udp_hlen = 8;
constexpr std::size_t l4_payload = eth_hlen + ip_hlen + udp_hlen;  // 42

void put16(std::byte* p, std::uint16_t v) {
    p[0] = static_cast<std::byte>(v >> 8);
    p[1] = static_cast<std::byte>(v);
}

bool parse_uint(std::string_view s, std::uint64_t& out) {
    return !s.empty() && std::from_chars(s.data(), s.data() + s.size(), out).ptr == s.data() + s.size();
}

}  // namespace

gen_port::gen_port(std::size_t size, unsigned flows, std::uint64_t count, int efd)
    : size_(size), flows_(flows), count_(count), efd_(efd), tmpl_(size),
      desc_("gen:" + std::to_string(size)) {
    // Ethernet: locally administered unicast MACs, type IPv4.
    const std::uint8_t dst[6] = {0x02, 0x00, 0x5e, 0x00, 0x00, 0x02};
    const std::uint8_t src[6] = {0x02, 0x00, 0x5e, 0x00, 0x00, 0x01};
    std::memcpy(tmpl_.data(), dst, 6);
    std::memcpy(tmpl_.data() + 6, src, 6);
    put16(tmpl_.data() + 12, 0x0800);
    for (std::size_t i = eth_hlen; i < size_; ++i) tmpl_[i] = static_cast<std::byte>(i * 7);
    if (size_ < l4_payload) return;  // too short for IP: just the pattern
    std::byte* ip = tmpl_.data() + eth_hlen;
    ip[0] = std::byte{0x45};
    ip[1] = std::byte{0};
    put16(ip + 2, static_cast<std::uint16_t>(std::min<std::size_t>(size_ - eth_hlen, 0xFFFF)));
    put16(ip + 4, 0);
    put16(ip + 6, 0x4000);  // DF
    ip[8] = std::byte{64};
    ip[9] = std::byte{17};  // UDP
    put16(ip + 10, 0);
    const std::uint8_t saddr[4] = {10, 214, 0, 0}, daddr[4] = {10, 214, 1, 1};
    std::memcpy(ip + 12, saddr, 4);
    std::memcpy(ip + 16, daddr, 4);
    std::byte* udp = ip + ip_hlen;
    put16(udp, 9000);
    put16(udp + 2, 9001);
    put16(udp + 4, static_cast<std::uint16_t>(std::min<std::size_t>(size_ - eth_hlen - ip_hlen, 0xFFFF)));
    put16(udp + 6, 0);  // no UDP checksum (allowed for IPv4)
    base_csum_ = wire::internet_checksum({ip, ip_hlen});
    put16(ip + 10, base_csum_);
}

gen_port::~gen_port() {
    if (efd_ >= 0) ::close(efd_);
}

std::unique_ptr<packet_port> gen_port::open(std::string_view spec, std::string* error) {
    auto fail = [error](std::string msg) -> std::unique_ptr<packet_port> {
        if (error) *error = std::move(msg);
        return nullptr;
    };
    // SIZE[:flows=N][:count=N]
    const auto colon = spec.find(':');
    std::uint64_t size = 0, flows = 64, count = 0;
    if (!parse_uint(spec.substr(0, colon), size) || size < eth_hlen || size > max_frame_size)
        return fail("gen: SIZE must be " + std::to_string(eth_hlen) + ".." + std::to_string(max_frame_size) +
                    ", got '" + std::string(spec.substr(0, colon)) + "'");
    std::string_view rest = colon == std::string_view::npos ? std::string_view{} : spec.substr(colon + 1);
    for (bool more = colon != std::string_view::npos; more;) {
        const auto next = rest.find(':');
        const std::string_view opt = rest.substr(0, next);
        more = next != std::string_view::npos;
        if (more) rest = rest.substr(next + 1);
        if (opt.starts_with("flows=") && parse_uint(opt.substr(6), flows) && flows >= 1 && flows <= 65536) continue;
        if (opt.starts_with("count=") && parse_uint(opt.substr(6), count)) continue;
        return fail("gen: bad option '" + std::string(opt) + "' (want flows=1..65536 or count=N)");
    }
    const int efd = ::eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) return fail(std::string("gen: eventfd: ") + std::strerror(errno));
    return std::unique_ptr<packet_port>(new gen_port(size, static_cast<unsigned>(flows), count, efd));
}

long gen_port::recv(std::span<std::byte> buf) {
    if (count_ != 0 && produced_ >= count_) return 0;
    if (buf.size() < size_) {
        ++stats_.rx_errors;  // the caller's buffer cannot take our frame
        return 0;
    }
    std::memcpy(buf.data(), tmpl_.data(), size_);
    if (size_ >= l4_payload) {
        std::byte* ip = buf.data() + eth_hlen;
        const auto flow = static_cast<std::uint16_t>(flow_);
        if (++flow_ == flows_) flow_ = 0;
        put16(ip + 14, flow);  // 10.214.<flow hi>.<flow lo>
        // The template's checksum covers source .0.0; add the flow (RFC 1624).
        std::uint32_t sum = static_cast<std::uint16_t>(~base_csum_) + std::uint32_t{flow};
        sum = (sum & 0xFFFF) + (sum >> 16);
        put16(ip + 10, static_cast<std::uint16_t>(~sum));
        const std::size_t room = std::min<std::size_t>(size_ - l4_payload, sizeof produced_);
        std::memcpy(buf.data() + l4_payload, &produced_, room);
    }
    ++produced_;
    ++stats_.rx_frames;
    stats_.rx_bytes += size_;
    if (count_ != 0 && produced_ == count_) {
        std::uint64_t v;
        [[maybe_unused]] const auto r = ::read(efd_, &v, sizeof v);  // no longer readable
    }
    return static_cast<long>(size_);
}

bool gen_port::send(std::span<const std::byte> frame) {
    ++stats_.tx_frames;
    stats_.tx_bytes += frame.size();
    return true;
}

}  // namespace vifkit::io::detail
