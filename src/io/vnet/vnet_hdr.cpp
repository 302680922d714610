#include "vnet_hdr.hpp"

#include <cstring>
#include <vector>

#include "vifkit/wire/checksum.hpp"
#include "vifkit/wire/offload.hpp"

namespace vifkit::io::detail {
namespace {

// Complete a checksum the generic way virtio describes it: one's-complement
// sum from csum_start to the end, stored at csum_start + csum_offset.
bool complete_generic(std::span<std::byte> frame, std::size_t start, std::size_t field) {
    if (start >= frame.size() || field + 2 > frame.size() || field < start) return false;
    const std::uint32_t s = wire::ones_sum(frame.subspan(start));
    std::uint32_t f = s;
    while (f >> 16) f = (f & 0xFFFF) + (f >> 16);
    const auto c = static_cast<std::uint16_t>(~f);
    frame[field] = static_cast<std::byte>(c >> 8);
    frame[field + 1] = static_cast<std::byte>(c);
    return true;
}

}  // namespace

vnet_verdict decode_vnet(const virtio_net_hdr& h, std::span<std::byte> frame, unsigned caps, offload& out) {
    out = {};
    // ECN (SKB_GSO_TCP_ECN) is never accepted: the TAP is not given
    // TUN_F_TSO_ECN, and neither io::offload nor netif can carry it (a TSO
    // next hop without it would copy CWR into every segment).
    if (h.gso_type & VIRTIO_NET_HDR_GSO_ECN) return vnet_verdict::bad_gso;
    const unsigned gso = h.gso_type;
    if (gso != VIRTIO_NET_HDR_GSO_NONE) {
        const bool v4 = gso == VIRTIO_NET_HDR_GSO_TCPV4 && (caps & offload_cap::tso4);
        const bool v6 = gso == VIRTIO_NET_HDR_GSO_TCPV6 && (caps & offload_cap::tso6);
        if ((!v4 && !v6) || h.gso_size == 0 || !(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) return vnet_verdict::bad_gso;
        const auto l4 = wire::locate_l4(frame);
        if (!l4 || l4.info.proto != 6 || l4.info.ip_version != (v4 ? 4 : 6)) return vnet_verdict::bad_gso;
        out.gso_type = v4 ? offload::gso::tcpv4 : offload::gso::tcpv6;
        out.gso_size = h.gso_size;
        out.l4 = offload::csum::partial;
        return vnet_verdict::ok;
    }
    if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        if (!(caps & offload_cap::csum)) return vnet_verdict::bad_csum;
        const std::size_t start = h.csum_start, field = start + h.csum_offset;
        const auto l4 = wire::locate_l4(frame);
        if (l4 && l4.info.l4_offset == start && l4.info.csum_offset == field) {
            out.l4 = offload::csum::partial;
            return vnet_verdict::ok;
        }
        return complete_generic(frame, start, field) ? vnet_verdict::ok : vnet_verdict::bad_csum;
    }
    if (h.flags & VIRTIO_NET_HDR_F_DATA_VALID) out.l4 = offload::csum::valid;
    return vnet_verdict::ok;
}

virtio_net_hdr encode_vnet(std::span<const std::byte> frame, const offload& m) {
    virtio_net_hdr h{};
    if (m.plain()) {
        if (m.l4 == offload::csum::valid) h.flags = VIRTIO_NET_HDR_F_DATA_VALID;
        return h;
    }
    const auto l4 = wire::locate_l4(frame);
    if (!l4) return h;
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.csum_start = l4.info.l4_offset;
    h.csum_offset = static_cast<std::uint16_t>(l4.info.csum_offset - l4.info.l4_offset);
    if (m.gso_type != offload::gso::none && l4.info.proto == 6) {
        h.gso_type = m.gso_type == offload::gso::tcpv4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
        h.gso_size = m.gso_size;
        h.hdr_len = l4.info.hdr_len;
    }
    return h;
}

namespace {

class vnet_port final : public packet_port {
public:
    explicit vnet_port(std::unique_ptr<packet_port> inner)
        : inner_(std::move(inner)), buf_(vnet_hdr_len + max_frame_size) {}
    [[nodiscard]] int fd() const override { return inner_->fd(); }
    [[nodiscard]] std::string describe() const override { return inner_->describe() + ":vnet"; }
    [[nodiscard]] stats get_stats() const override {
        stats s = inner_->get_stats();
        s.rx_errors += bad_headers_;
        return s;
    }
    [[nodiscard]] unsigned offload_caps() const override {
        return offload_cap::csum | offload_cap::tso4 | offload_cap::tso6;
    }
    int set_offload(unsigned caps) override {
        caps_ = caps & offload_caps();
        return 0;
    }
    long recv_offload(std::span<std::byte> buf, offload& meta) override {
        meta = {};
        for (int i = 0; i < 64; ++i) {  // skip (count) datagrams with unusable headers, bounded
            const long n = inner_->recv(buf_);
            if (n <= 0) return n;
            const auto len = static_cast<std::size_t>(n);
            if (len < vnet_hdr_len || len - vnet_hdr_len > buf.size()) {
                ++bad_headers_;
                continue;
            }
            virtio_net_hdr h;
            std::memcpy(&h, buf_.data(), sizeof h);
            const auto frame = buf.first(len - vnet_hdr_len);
            std::memcpy(frame.data(), buf_.data() + vnet_hdr_len, frame.size());
            if (decode_vnet(h, frame, caps_, meta) != vnet_verdict::ok) {
                ++bad_headers_;
                continue;
            }
            return static_cast<long>(frame.size());
        }
        return 0;
    }
    long recv(std::span<std::byte> buf) override {
        offload m;
        const long n = recv_offload(buf, m);
        if (n > 0 && !m.plain()) {
            ++bad_headers_;  // offloads were never enabled for a plain reader
            return 0;
        }
        return n;
    }
    bool send_offload(std::span<const std::byte> frame, const offload& meta) override {
        if (frame.size() > max_frame_size) return inner_->send(frame);  // counted as the inner port's drop
        const virtio_net_hdr h = encode_vnet(frame, meta);
        std::memcpy(buf_.data(), &h, sizeof h);
        std::memcpy(buf_.data() + vnet_hdr_len, frame.data(), frame.size());
        return inner_->send(std::span(buf_.data(), vnet_hdr_len + frame.size()));
    }
    bool send(std::span<const std::byte> frame) override { return send_offload(frame, offload{}); }

private:
    std::unique_ptr<packet_port> inner_;
    std::vector<std::byte> buf_;
    unsigned caps_ = 0;
    std::uint64_t bad_headers_ = 0;
};

}  // namespace

std::unique_ptr<packet_port> with_vnet(std::unique_ptr<packet_port> inner) {
    return std::make_unique<vnet_port>(std::move(inner));
}

}  // namespace vifkit::io::detail
