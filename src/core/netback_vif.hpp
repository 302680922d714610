// One backend vif: handshake state, rings, event channels and the data path.
// Private to src/core (netback.cpp owns the instances).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frame_fifo.hpp"
#include "offload_path.hpp"
#include "vifkit/core/counters.hpp"
#include "vifkit/core/credit.hpp"
#include "vifkit/core/mcast_filter.hpp"
#include "vifkit/util/timer.hpp"
#include "vifkit/core/netback.hpp"
#include "vifkit/core/xenbus_fsm.hpp"
#include "vifkit/ring/ring.hpp"
#include "vifkit/util/log.hpp"
#include "vifkit/wire/tx_decoder.hpp"

namespace vifkit::core {

// Frames a queue's rx backlog may hold (its byte cap is netback_config::rx_backlog_bytes).
inline constexpr std::size_t rx_backlog_frames = 1024;

// Frame buffer for one guest-transmit packet of a batch. Allocated once per
// vif and not initialised, so only the bytes packets really use become resident.
struct frame_buf {
    std::unique_ptr<std::byte[]> data;  // max_tx_size + 1 bytes
    std::uint32_t len = 0;
};

struct backend_queue {
    std::optional<ring::back_ring<ring::tx_ring_types>> tx;
    std::optional<ring::back_ring<ring::rx_ring_types>> rx;
    platform::map_op tx_ring_map{}, rx_ring_map{};
    evtchn_port_t tx_port = 0, rx_port = 0;  // equal when not split
    bool ports_bound = false;
    std::vector<abi::tx_request> tx_window;  // private copies not yet decoded
    frame_fifo rx_backlog;                    // frames waiting for rx requests (capped)
    // rx stall detection: since when the head packet has waited for buffers
    // (zero = not waiting), and whether the queue was declared stalled
    std::chrono::steady_clock::time_point rx_wait_since{};
    bool rx_stalled = false;
    queue_counters c;
};

class netback_vif {
public:
    netback_vif(util::event_loop& loop, platform::services& svc, platform::store& store,
                const netback_config& cfg, domid_t front_dom, unsigned devid, std::string backend_path);
    ~netback_vif();

    // Create: read toolstack keys, write features, go InitWait. False = unusable.
    bool probe();
    // The frontend's state node changed.
    void on_frontend_changed();
    // An event arrived on one of our ports.
    void on_event(evtchn_port_t port);
    [[nodiscard]] bool owns_port(evtchn_port_t p) const;
    // Disconnect and go Closed (process shutdown or backend node removed).
    void close();

    [[nodiscard]] domid_t front_domid() const { return front_dom_; }
    [[nodiscard]] unsigned devid() const { return devid_; }
    [[nodiscard]] const std::string& frontend_path() const { return front_path_; }
    // Store watches this vif needs, as (path, token); tokens are "<kind>:<domid>:<devid>".
    [[nodiscard]] std::vector<std::pair<std::string, std::string>> watches() const;
    // A watch of kind "front" (frontend state), "rate", "mtu" or "mcast" fired.
    void on_watch(std::string_view kind);
    [[nodiscard]] nlohmann::json stats() const;
    // Busy-poll pass over this vif's rings and host port (netback::poll).
    bool poll();

private:
    // handshake
    void set_state(xenbus_state s);
    bool write_features();
    bool connect();
    bool connect_queue(backend_queue& q, const std::string& qpath);
    bool connect_ctrl();
    void disconnect_ctrl();
    void process_ctrl();
    void process_ctrl_deferred(backend_queue&);
    void mark_window_in_flight(int delta);
    void disconnect();
    void fatal(backend_queue& q, const char* why);
    // data path (netback_tx.cpp / netback_rx.cpp)
    void process_tx(backend_queue& q);
    // The queue's static grant table, or nullptr when it has no entries.
    ctrl::gref_table* static_table(backend_queue& q);
    bool tx_round(backend_queue& q);
    void copy_tx_batch(backend_queue& q, std::size_t npkts);
    void respond_tx(backend_queue& q, const wire::tx_packet& p, std::size_t win_base, std::int16_t st);
    void process_rx(backend_queue& q);
    bool rx_round(backend_queue& q);
    std::size_t pull_from_port();
    [[nodiscard]] bool backlog_full(const backend_queue& q) const;
    // Queue for a frame from the host (backend -> guest steering).
    [[nodiscard]] ctrl::backend_handler::steer steer(std::span<const std::byte> frame) const;
    void on_port_readable();
    void notify(backend_queue& q, evtchn_port_t port);
    // offloads, rate, multicast, carrier, stall (netback_vif.cpp / _rx / _tx)
    void read_frontend_features();
    void read_rate();
    void apply_mtu();
    void read_mcast_request();
    void update_carrier();
    void housekeeping();
    bool credit_allows(backend_queue& q, std::uint32_t len);
    // Hand a guest packet to the host port (offloads resolved); false = dropped as malformed.
    bool send_to_host(backend_queue& q, std::span<std::byte> frame, const io::offload& m);
    void queue_for_guest_on(backend_queue& q, std::span<std::byte> frame, const io::offload& m,
                            const ctrl::backend_handler::steer& st);
    void check_unstall(backend_queue& q);

    util::event_loop& loop_;
    platform::services& svc_;
    platform::store& store_;
    const netback_config& cfg_;
    domid_t front_dom_;
    unsigned devid_;
    std::string back_path_, front_path_;
    xenbus_state state_ = xenbus_state::initialising;
    // Found at probe a frontend of an earlier backend instance (we were restarted):
    // wait_closed = we are Closing until it lets go of its old rings; wait_reconnect
    // = we are InitWait and its Closed is expected (it reconnects on our InitWait).
    enum class restart : std::uint8_t { none, wait_closed, wait_reconnect };
    restart restart_ = restart::none;
    bool connected_ = false;
    bool disabled_ = false;
    bool frontend_sg_ = false;
    // What the frontend said it takes on guest receive (netif-spec §5.1)
    struct frontend_features {
        bool gso4 = false, gso6 = false;
        bool csum4 = true;   // !feature-no-csum-offload
        bool csum6 = false;  // feature-ipv6-csum-offload
        bool rx_notify = false;
        bool mcast = false;  // request-multicast-control
    } front_;
    offload_accept to_guest_, to_host_;  // what guest receive / the host port take
    mcast_filter mcast_;
    credit_scheduler credit_;
    bool credit_blocked_ = false;  // guest transmit waits for the credit timer
    std::optional<util::timer> credit_timer_, rx_poll_timer_, housekeeping_timer_;
    std::string carrier_written_;  // last value of B/carrier we wrote
    std::unique_ptr<std::byte[]> seg_scratch_;  // software segmentation, one segment
    std::unique_ptr<io::packet_port> port_;
    bool port_watched_ = false;
    std::vector<backend_queue> queues_;
    // control ring (netif-spec §2): present when the frontend created one
    std::optional<ring::back_ring<ring::ctrl_ring_types>> ctrl_;
    platform::map_op ctrl_map_{};
    evtchn_port_t ctrl_port_ = 0;
    bool ctrl_bound_ = false;
    std::unique_ptr<ctrl::backend_handler> handler_;
    // raw mode: all of the frontend's memory, mapped at connect
    std::unique_ptr<platform::foreign_view> raw_;
    // tx batch scratch (allocated once)
    std::vector<frame_buf> bufs_;
    std::vector<platform::copy_op> copy_ops_;
    std::vector<platform::map_op> map_ops_;
    struct pending_pkt {
        wire::tx_packet pkt;
        std::size_t win_base;
    };
    std::vector<pending_pkt> batch_;
    util::rate_limited log_limit_;
    // Deferred continuations hold a weak reference: a vif destroyed meanwhile is skipped.
    std::shared_ptr<netback_vif*> self_ = std::make_shared<netback_vif*>(this);
    void defer(void (netback_vif::*fn)(backend_queue&), std::size_t qi);
    struct pkt_ops {
        std::size_t begin, end;
    };
    std::vector<pkt_ops> pkt_ops_;
    // memcpy-able slots of a tx batch (static grants, raw): prefetched first, copied after
    struct direct_copy {
        std::byte* dst;
        const std::byte* src;
        std::uint16_t len;
    };
    std::vector<direct_copy> direct_;
    void queue_direct(std::byte* dst, const std::byte* src, std::uint16_t len, bool to_peer);
    std::unique_ptr<std::byte[]> scratch_;  // one frame read from the host port
    struct rx_slot {
        std::uint16_t id;   // request id, echoed in the response (same slot)
        std::uint16_t len;  // bytes for this slot
        int op;             // index in copy_ops_, or -1 when served by a static mapping
        std::uint8_t extra;  // extra slot type (GSO, HASH; no data), 0 = data slot
    };
    std::vector<rx_slot> rx_slots_;  // slots of the current rx round
};

}  // namespace vifkit::core
