// core::mcast_filter: the backend's per-vif multicast filter for guest receive
// (feature-multicast-control, netif-spec §4.3 and §5.1). The frontend adds and
// removes addresses with MCAST_ADD / MCAST_DEL extras on dummy tx requests;
// filtering applies only once it wrote request-multicast-control = 1.
//
// Matches Linux netback (drivers/net/xen-netback/netback.c xenvif_mcast_add /
// _del / _match, interface.c xenvif_start_xmit):
//  - At most XEN_NETBK_MCAST_MAX = 64 entries; a further ADD is refused
//    (answered ERROR). Duplicates are NOT merged: each ADD takes an entry (so
//    64 ADDs of one address fill the list) and each DEL removes one, so an
//    address added twice still passes after one DEL.
//  - ADD takes any address, unicast included (Linux does not check); such an
//    entry is harmless, since unicast frames are never filtered.
//  - DEL of an absent address changes nothing (Linux answers OKAY anyway).
//  - The list is kept while filtering is off; only the verdict depends on it.
//  - Only multicast destinations are filtered (skb PACKET_MULTICAST): unicast
//    and broadcast always pass.
// Fixed storage: no allocation per call.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace vifkit::core {

class mcast_filter {
public:
    using mac = std::array<std::uint8_t, 6>;
    static constexpr std::size_t max_addresses = 64;  // Linux XEN_NETBK_MCAST_MAX

    // MCAST_ADD: false (answer ERROR) when all 64 entries are taken.
    bool add(const mac& addr) {
        if (count_ == max_addresses) return false;
        addrs_[count_++] = addr;
        return true;
    }
    // MCAST_DEL: removes one entry equal to `addr`; true if there was one.
    // (The frontend is answered OKAY either way.)
    bool remove(const mac& addr) {
        const auto end = addrs_.begin() + static_cast<std::ptrdiff_t>(count_);
        const auto it = std::find(addrs_.begin(), end, addr);
        if (it == end) return false;
        *it = addrs_[--count_];  // order is irrelevant: swap the last one in
        return true;
    }
    // Disconnect: forget every address (Linux xenvif_mcast_addr_list_free).
    void clear() { count_ = 0; }
    [[nodiscard]] std::size_t size() const { return count_; }
    [[nodiscard]] bool contains(const mac& addr) const {
        const auto end = addrs_.begin() + static_cast<std::ptrdiff_t>(count_);
        return std::find(addrs_.begin(), end, addr) != end;
    }

    // request-multicast-control: sampled at connect, or watched when the
    // backend offers feature-dynamic-multicast-control.
    void set_enabled(bool on) { enabled_ = on; }
    [[nodiscard]] bool enabled() const { return enabled_; }

    // Whether a frame for the guest passes, judged on its Ethernet destination
    // (the first 6 bytes). Frames too short to have one do not pass.
    [[nodiscard]] bool accepts(std::span<const std::byte> frame) const {
        if (frame.size() < 6) return false;
        if ((std::to_integer<unsigned>(frame[0]) & 0x01) == 0 || !enabled_) return true;  // unicast (I/G bit clear)
        mac dst{};
        std::memcpy(dst.data(), frame.data(), dst.size());
        if (dst == mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) return true;
        return contains(dst);
    }

private:
    std::array<mac, max_addresses> addrs_{};
    std::size_t count_ = 0;
    bool enabled_ = false;
};

}  // namespace vifkit::core
