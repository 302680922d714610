// packet_port: where a netback's host side (or a netfront's guest side) exchanges
// Ethernet frames with the outside world. One port = one frame stream, used from one
// thread. Every call is non-blocking; a caller polls fd() and then drains recv().
//
// Ports never crash on what the far side sends: oversized frames, resets and
// disconnects are counted in stats and logged (rate-limited), never fatal.
#pragma once
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>
#include <array>
#include <span>
#include <string>
#include <utility>

namespace vifkit::io {

// Largest frame a port has to carry: a 64 KiB GSO payload plus the Ethernet header.
// Callers size their receive buffers with this to never lose a frame.
inline constexpr std::size_t max_frame_size = 65535 + 14;

// Offload state travelling with a frame (netif-spec §4.2-4.4; on a TAP it is the
// virtio_net_hdr of IFF_VNET_HDR). Ports that cannot carry it (offload_caps() == 0)
// only ever see plain frames: the caller finishes checksums and segments first.
struct offload {
    enum class csum : std::uint8_t {
        none,     // nothing known about the L4 checksum: the receiver verifies it
        partial,  // L4 checksum field holds the pseudo-header sum only (netif
                  // csum_blank, Linux CHECKSUM_PARTIAL): someone must complete it
        valid,    // the checksum is known good (netif data_validated)
    };
    // GSO type, numbered as netif's XEN_NETIF_GSO_TYPE_*.
    enum class gso : std::uint8_t { none = 0, tcpv4 = 1, tcpv6 = 2 };
    csum l4 = csum::none;
    gso gso_type = gso::none;
    std::uint16_t gso_size = 0;  // MSS when gso_type != none
    [[nodiscard]] bool plain() const { return l4 != csum::partial && gso_type == gso::none; }
};

// What a port's send_offload()/recv_offload() carry, and what set_offload() may enable.
namespace offload_cap {
inline constexpr unsigned csum = 1;  // partial checksums
inline constexpr unsigned tso4 = 2;  // TCPv4 GSO super-frames (needs csum)
inline constexpr unsigned tso6 = 4;  // TCPv6 GSO super-frames (needs csum)
}  // namespace offload_cap

class packet_port {
public:
    struct stats {
        std::uint64_t rx_frames = 0;
        std::uint64_t rx_bytes = 0;
        std::uint64_t tx_frames = 0;
        std::uint64_t tx_bytes = 0;
        std::uint64_t rx_errors = 0;  // truncated (oversized) frames, receive failures
        std::uint64_t tx_drops = 0;   // frames send() refused: no peer, queue full, error
    };

    packet_port() = default;
    virtual ~packet_port() = default;
    packet_port(const packet_port&) = delete;
    packet_port& operator=(const packet_port&) = delete;

    // One fd for a single-fd, level-triggered poller: readable when recv() may have
    // work to do (a frame, or for "unix:" a connecting peer). -1 if it never will.
    [[nodiscard]] virtual int fd() const = 0;

    // Receive one frame into buf. Returns its length, 0 when nothing is available,
    // or -errno on error. A connected port ("unix-connect:", mem pair) whose peer has
    // gone away returns -ECONNRESET from then on; "unix:" instead drops the peer and
    // waits for the next one.
    // A frame longer than buf is dropped: it returns 0 and counts an rx_error;
    // nothing is written past buf.
    [[nodiscard]] virtual long recv(std::span<std::byte> buf) = 0;

    // Send one frame. True if it left; false if it was dropped (counted in tx_drops).
    virtual bool send(std::span<const std::byte> frame) = 0;

    // Offloads this port can carry (offload_cap bits; 0 = plain frames only).
    [[nodiscard]] virtual unsigned offload_caps() const { return 0; }
    // Choose which of offload_caps() the far side may use towards us (TUNSETOFFLOAD
    // on a TAP: the host kernel segments and checksums what we do not accept).
    // recv_offload() only reports offloads enabled here; send_offload() accepts
    // every cap regardless. Returns 0 or -errno.
    virtual int set_offload(unsigned caps) {
        (void)caps;
        return 0;
    }
    // recv() with the frame's offload state. Ports without offloads report a plain frame.
    [[nodiscard]] virtual long recv_offload(std::span<std::byte> buf, offload& meta) {
        meta = {};
        return recv(buf);
    }
    // send() with offload state. The caller passes only offloads in offload_caps()
    // (a port without caps gets plain frames, on which this equals send()).
    virtual bool send_offload(std::span<const std::byte> frame, const offload& meta) {
        (void)meta;
        return send(frame);
    }
    // Carrier of the far side as the port sees it (a TAP that is administratively
    // down is "down"). Ports without a notion of link are always up.
    [[nodiscard]] virtual bool link_up() const { return true; }
    // Set the MTU of the far side's interface (a TAP's). 0, or -errno
    // (-EOPNOTSUPP for ports without an interface).
    virtual int set_mtu(int mtu) {
        (void)mtu;
        return -EOPNOTSUPP;
    }
    // Link-layer multicast groups joined on the far side's interface (a TAP's
    // list in /proc/net/dev_mcast), or nullopt when the port has no such list.
    [[nodiscard]] virtual std::optional<std::vector<std::array<std::uint8_t, 6>>> multicast_groups() const {
        return std::nullopt;
    }
    // Show the far side a carrier change (TUNSETCARRIER on a TAP: the guest's
    // eth0 goes NO-CARRIER when the backend reports carrier 0). 0 or -errno.
    virtual int set_carrier(bool up) {
        (void)up;
        return 0;
    }

    // Human-readable origin, e.g. "tap:vif1.0", "unix:/run/x.sock".
    [[nodiscard]] virtual std::string describe() const = 0;

    [[nodiscard]] virtual stats get_stats() const = 0;
};

// Open a port from a spec string (see usage()):
//   "tap:NAME[:mtu=N][:plain]"
//                        TAP device via /dev/net/tun (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR),
//                        link set up: checksum and TCP segmentation offload pass to
//                        and from the host kernel (offload_caps() = csum|tso4|tso6;
//                        until set_offload() the kernel hands us plain frames).
//                        ":plain" opens it without IFF_VNET_HDR (no offloads).
//                        NAME may hold a "%d" pattern; describe() shows the real name.
//   "unix:PATH"          listen on a SOCK_SEQPACKET unix socket at PATH (a stale socket
//                        file is replaced; other files are left alone and fail the
//                        open). One peer at a time: a newly connecting peer replaces
//                        the old one, whose unread frames are discarded. send() drops
//                        (counted) while no peer is connected.
//                        fd() is an epoll fd covering the listening socket and the
//                        current connection, so a single-fd poller sees both; recv()
//                        accepts pending connections internally, so call it whenever
//                        fd() is readable even if it then returns 0.
//   "unix-connect:PATH"  connect to such a listening socket (test drivers, tools).
//   "unix:PATH:vnet", "unix-connect:PATH:vnet"
//                        the same, each datagram prefixed by a 10-byte virtio_net_hdr
//                        (as a TAP with IFF_VNET_HDR): offloads pass through.
//   "null"               discards everything sent; never receives.
//   "gen:SIZE[:flows=N][:count=N]"
//                        traffic source for benchmarks: recv() always has an
//                        IPv4/UDP frame of SIZE bytes (source address cycling
//                        over N flows, a sequence number in the payload), until
//                        COUNT frames (0/absent = endless); no syscall per frame.
//                        send() discards.
// One datagram carries one frame on the unix forms.
// Returns nullptr and sets *error (if error is non-null) on failure.
[[nodiscard]] std::unique_ptr<packet_port> open_port(const std::string& spec,
                                                     std::string* error);

// Help text describing the spec forms, for a tool's --help.
[[nodiscard]] std::string usage();

// Two connected in-process ports (socketpair SOCK_SEQPACKET): what one sends, the
// other receives. For tests and benches. Both null if the sockets cannot be created.
[[nodiscard]] std::pair<std::unique_ptr<packet_port>, std::unique_ptr<packet_port>>
make_mem_pair();

// Wrap `inner` so that every frame it receives, and every frame it sends successfully,
// is also written to a pcap file (DLT_EN10MB) at pcap_path. fd(), recv(), send() and
// stats behave exactly as inner's. The file is flushed when recv() finds the port
// idle, at least every 64 frames or 100 ms of traffic, and when the port is destroyed.
// Returns nullptr and sets *error if the file cannot be created (inner is destroyed).
[[nodiscard]] std::unique_ptr<packet_port> with_capture(std::unique_ptr<packet_port> inner,
                                                        const std::string& pcap_path,
                                                        std::string* error);

}  // namespace vifkit::io
