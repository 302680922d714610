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
#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vifkit/abi/xenbus.hpp"
#include "vifkit/core/counters.hpp"
#include "vifkit/ctrlfront/ctl_bridge.hpp"
#include "vifkit/ctrlfront/ctrl_client.hpp"
#include "vifkit/ctrlfront/expiry_timer.hpp"
#include "vifkit/core/offload_accept.hpp"
#include "vifkit/io/packet_port.hpp"
#include "vifkit/platform/platform.hpp"
#include "vifkit/platform/store.hpp"
#include "vifkit/ring/ring.hpp"
#include "vifkit/util/event_loop.hpp"
#include "vifkit/util/log.hpp"
#include "vifkit/util/timer.hpp"

namespace vifkit::core {

struct netfront_config {
    unsigned devid = 0;
    std::string port_spec = "tap:eth0";
    std::string pcap_path;                 // optional capture of the guest side
    unsigned rx_buffers = 256;             // pages posted to the rx ring (<= ring size)
    unsigned tx_buffers = 256;             // tx page pool (<= ring size)
    bool use_split_event_channels = true;  // if the backend offers them
    unsigned queues = 1;                   // wanted; capped by multi-queue-max-queues
    bool ctrl_ring = true;                 // create the control ring if the backend offers one
    bool static_grants = true;             // register the page pools with ADD_GREF_MAPPING
    std::string ctl_socket;                // local socket for vifkit-ctl (empty = none)
    unsigned response_budget = 1024;       // responses handled per event before yielding (XSA-391)
    // Busy polling: the caller runs poll() in a loop; rsp_event is not re-armed
    // (no notifications from the backend) and the guest port is read by poll().
    bool busy_poll = false;
    // Features we advertise (netif-spec §5.1). Each is used only if the backend
    // offers its side too.
    bool feature_sg = true;          // feature-sg: multi-slot packets on receive
    bool gso_tcpv4 = true;           // feature-gso-tcpv4 (needs sg and csum offload)
    bool gso_tcpv6 = true;           // feature-gso-tcpv6 (needs sg and ipv6 csum offload)
    bool csum_offload = true;        // false: write feature-no-csum-offload=1
    bool ipv6_csum_offload = true;   // feature-ipv6-csum-offload
    bool multicast_control = true;   // request-multicast-control (if offered); the
                                     // guest port's multicast list is synced to the backend
    bool rx_notify = true;           // feature-rx-notify
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
    // Busy-poll mode: one pass over the rings and the guest port. True if
    // anything moved. Events and watches still need the loop's run_once().
    bool poll();

private:
    struct buffer {
        platform::shared_page page;
        bool in_flight = false;
    };
    // One queue: its own rings, event channels and page pools (netif-spec §5.1 queue-N).
    struct queue {
        platform::shared_page ring_pages[2]{};  // tx, rx
        bool rings_granted = false;
        std::optional<ring::front_ring<ring::tx_ring_types>> tx;
        std::optional<ring::front_ring<ring::rx_ring_types>> rx;
        evtchn_port_t tx_port = 0, rx_port = 0;  // equal when not split
        bool ports_bound = false;
        std::vector<buffer> tx_bufs, rx_bufs;
        // Buffer posted at each rx ring slot: a response lands in the slot of
        // its request, and an extra's response carries no id (netif-spec §4.4).
        std::array<std::uint16_t, ring::rx_ring_types::size> rx_slot_buf{};
        std::vector<std::uint16_t> tx_free;  // free tx buffer ids
        // partially received rx chain (frame assembled from several slots)
        std::vector<std::byte> rx_frame;
        std::uint32_t rx_len = 0;
        unsigned rx_slots = 0;       // data slots in the current chain
        bool rx_bad = false;         // current chain had an error: drop it at its end
        bool rx_in_chain = false;    // more_data seen, chain continues
        bool rx_extra_next = false;  // next slot is an extra_info
        std::uint16_t rx_flags = 0;  // current chain's first data slot's flags (csum bits)
        std::uint8_t rx_gso_type = 0;    // GSO extra of the current chain (0 = none)
        std::uint16_t rx_gso_size = 0;
        std::vector<grant_ref_t> static_refs;  // pool grefs the backend keeps mapped
        std::size_t static_next = 0;           // next pool page to register
        bool static_done = false;
        queue_counters c;
    };
    void on_backend_changed();
    void on_watch();
    void on_event_channel();
    void set_state(abi::xenbus_state s);
    bool connect();
    bool setup_queue(queue& q, bool split);
    bool write_keys();
    void remove_stale_keys(platform::xs_tx t);
    bool write_queue_keys(const queue& q, const std::string& dir, platform::xs_tx t);
    void disconnect();
    void release_grants();
    void fault(const char* why);
    void post_rx_buffers(queue& q);
    void process_tx_responses(queue& q);
    void process_rx_responses(queue& q);
    void defer_responses(queue& q);
    void take_rx_response(queue& q, std::uint32_t slot, const abi::rx_response& r);
    void finish_rx_chain(queue& q);
    void on_port_readable();
    bool send_frame(queue& q, std::span<const std::byte> frame, const io::offload& m);
    bool transmit(std::span<std::byte> frame, const io::offload& m, std::uint64_t& queued);
    // offloads, carrier, mtu, multicast (netfront.cpp)
    void read_backend_features();
    void read_carrier();
    void apply_mtu();
    void sync_multicast();
    bool send_mcast(bool add, const std::array<std::uint8_t, 6>& mac);
    [[nodiscard]] std::size_t pick_queue(std::span<const std::byte> frame) const;
    void watch_port(bool on);
    // control ring and static grants (netfront_ctrl.cpp)
    bool setup_ctrl();
    void teardown_ctrl();
    void on_ctrl_event();
    void flush_ctrl();
    void register_static(std::size_t qi);
    void add_static_batch(std::size_t qi, std::uint32_t free);
    void unregister_static(std::chrono::milliseconds wait);
    [[nodiscard]] std::size_t static_registered() const;
    void notify(queue& q, evtchn_port_t port);

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
    std::vector<queue> queues_;
    platform::shared_page ctrl_page_{}, list_page_{};
    bool ctrl_granted_ = false;
    std::optional<ctrlfront::ctrl_client> ctrl_;
    std::optional<ctrlfront::expiry_timer> ctrl_timer_;  // control request timeouts
    evtchn_port_t ctrl_port_ = 0;
    bool ctrl_bound_ = false;
    // vifkit-ctl: local socket -> bridge -> control ring
    std::unique_ptr<ctrlfront::ctl_bridge> bridge_;
    std::unique_ptr<ctrlfront::ctl_server> ctl_server_;
    std::vector<platform::shared_page> ctl_pages_;  // pages granted for vifkit-ctl requests
    void start_ctl_socket();
    bool static_fallback_ = false;  // backend said NOT_SUPPORTED / 0: ordinary grants only
    std::vector<std::byte> scratch_;
    std::vector<std::pair<std::uint32_t, abi::rx_response>> rx_batch_;  // responses of one pass (slot, copy)
    std::vector<std::byte> held_;  // a guest frame waiting for tx buffers
    std::size_t held_len_ = 0;
    io::offload held_meta_;
    // What the backend takes on guest transmit / what the guest port takes.
    struct backend_features {
        bool gso4 = false, gso6 = false, csum6 = false, mcast = false, dyn_mcast = false;
    } back_;
    offload_accept to_backend_, to_guest_;
    bool carrier_ = true;  // B/carrier (absent = up)
    std::optional<util::timer> mcast_timer_;
    std::vector<std::array<std::uint8_t, 6>> mcast_sent_;  // addresses the backend has (ADD answered)
    std::uint64_t mcast_updates_ = 0;  // MCAST_ADD/DEL requests sent
    std::unique_ptr<std::byte[]> seg_scratch_;
    std::uint64_t leaked_pages_ = 0;  // grants the backend would not release (XSA-396)
    std::uint64_t connects_ = 0;      // handshakes completed (reconnects = connects - 1)
    std::uint64_t backend_closes_ = 0;      // backend closed (or failed) while we were connected
    std::uint64_t bad_backend_states_ = 0;  // B/state values that are not a state at all
    std::uint64_t bad_backend_keys_ = 0;    // unparsable / out-of-range backend feature values
    util::rate_limited log_limit_;
    // Deferred continuations hold a weak reference to us (skipped once we are gone).
    std::shared_ptr<netfront*> self_ = std::make_shared<netfront*>(this);
};

}  // namespace vifkit::core
