// vifkit netfront: the frontend of the netif protocol, as a library.
//
// It owns one vif (/local/domain/<self>/device/vif/<devid>), walks the xenbus
// handshake against the backend named in its `backend` key, grants its rings
// and a fixed pool of buffer pages (tx pages read-only, rx pages writable,
// recycled: no grant operation per packet on the frontend side), and moves
// frames between the rings and a guest-side packet_port (a TAP that plays the
// guest's eth0, or a unix socket for tests).
//
// The backend is not trusted either (XSA-391/396/403): responses are copied
// once and validated; a bad response is counted and the device disconnects.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vifkit/abi/xenbus.hpp"
#include "vifkit/core/counters.hpp"
#include "vifkit/io/packet_port.hpp"
#include "vifkit/platform/platform.hpp"
#include "vifkit/platform/store.hpp"
#include "vifkit/ring/ring.hpp"
#include "vifkit/util/event_loop.hpp"
#include "vifkit/util/log.hpp"

namespace vifkit::core {

struct netfront_config {
    unsigned devid = 0;
    std::string port_spec = "tap:eth0";
    std::string pcap_path;                 // optional capture of the guest side
    unsigned rx_buffers = 256;             // pages posted to the rx ring (<= ring size)
    unsigned tx_buffers = 256;             // tx page pool (<= ring size)
    bool use_split_event_channels = true;  // if the backend offers them
};

class netfront {
public:
    netfront(util::event_loop& loop, platform::services& svc, platform::store& store, netfront_config cfg);
    ~netfront();
    netfront(const netfront&) = delete;
    netfront& operator=(const netfront&) = delete;

    // Read our device keys, open the guest port, watch the backend. False = unusable (logged).
    bool start();
    // Disconnect and go through Initialising again (as on resume or kexec).
    void reconnect();
    // Close cleanly: Closing, wait (bounded) for the backend to let go, revoke grants, Closed.
    void shutdown(std::chrono::milliseconds wait = std::chrono::seconds(5));

    [[nodiscard]] bool connected() const { return connected_ && backend_connected_; }
    [[nodiscard]] abi::xenbus_state state() const { return state_; }
    [[nodiscard]] nlohmann::json stats() const;

private:
    struct buffer {
        platform::shared_page page;
        bool in_flight = false;
    };
    void on_backend_changed();
    void on_watch();
    void on_event_channel();
    void set_state(abi::xenbus_state s);
    bool connect();
    bool grant_pages();
    bool write_keys();
    void disconnect();
    void release_grants();
    void fault(const char* why);
    void post_rx_buffers();
    void process_tx_responses();
    void process_rx_responses();
    void take_rx_response(const abi::rx_response& r);
    void finish_rx_chain();
    void on_port_readable();
    bool send_frame(std::span<const std::byte> frame);
    void watch_port(bool on);
    void notify(evtchn_port_t port);

    util::event_loop& loop_;
    platform::services& svc_;
    platform::store& store_;
    netfront_config cfg_;
    std::string front_path_, back_path_;
    domid_t back_dom_ = 0;
    abi::xenbus_state state_ = abi::xenbus_state::initialising;
    bool connected_ = false, backend_connected_ = false, backend_sg_ = false;
    bool port_watched_ = false, started_ = false, reconnect_pending_ = false;
    std::unique_ptr<io::packet_port> port_;
    // shared state with the backend
    platform::shared_page ring_pages_[2]{};  // tx, rx
    bool rings_granted_ = false;
    std::optional<ring::front_ring<ring::tx_ring_types>> tx_;
    std::optional<ring::front_ring<ring::rx_ring_types>> rx_;
    evtchn_port_t tx_port_ = 0, rx_port_ = 0;
    bool ports_bound_ = false;
    std::vector<buffer> tx_bufs_, rx_bufs_;
    std::vector<std::uint16_t> tx_free_;  // free tx buffer ids
    // partially received rx chain (frame assembled from several slots)
    std::vector<std::byte> rx_frame_;
    std::uint32_t rx_len_ = 0;
    unsigned rx_slots_ = 0;       // data slots in the current chain
    bool rx_bad_ = false;         // current chain had an error: drop it at its end
    bool rx_in_chain_ = false;    // more_data seen, chain continues
    bool rx_extra_next_ = false;  // next slot is an extra_info
    std::vector<std::byte> scratch_;
    queue_counters c_;
    std::uint64_t leaked_pages_ = 0;
    std::uint64_t connects_ = 0;  // handshakes completed (reconnects = connects - 1)  // grants the backend would not release (XSA-396)
    util::rate_limited log_limit_;
};

}  // namespace vifkit::core
