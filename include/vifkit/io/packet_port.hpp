// packet_port: where a netback's host side (or a netfront's guest side) exchanges
// Ethernet frames with the outside world. One port = one frame stream, used from one
// thread. Every call is non-blocking; a caller polls fd() and then drains recv().
//
// Ports never crash on what the far side sends: oversized frames, resets and
// disconnects are counted in stats and logged (rate-limited), never fatal.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>

namespace vifkit::io {

// Largest frame a port has to carry: a 64 KiB GSO payload plus the Ethernet header.
// Callers size their receive buffers with this to never lose a frame.
inline constexpr std::size_t max_frame_size = 65535 + 14;

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

    // Human-readable origin, e.g. "tap:vif1.0", "unix:/run/x.sock".
    [[nodiscard]] virtual std::string describe() const = 0;

    [[nodiscard]] virtual stats get_stats() const = 0;
};

// Open a port from a spec string (see usage()):
//   "tap:NAME[:mtu=N]"   TAP device via /dev/net/tun (IFF_TAP|IFF_NO_PI), link set up.
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
