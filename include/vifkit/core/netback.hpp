// vifkit netback: the backend of the netif protocol, as a library.
//
// One `netback` serves every vif whose backend directory appears under
// /local/domain/<self>/backend/vif/<frontend-domid>/<devid> (written by the
// toolstack, e.g. `vifkit-attach`). Per vif it walks the xenbus handshake
// (xenbus_fsm.hpp), maps the frontend's tx/rx rings, binds the event channels
// and moves packets between the rings and a host packet_port.
//
// Threading: single-threaded, driven by a util::event_loop.
// Failure model: a hostile or broken frontend disables its own vif (counted,
// logged, state Closing) and never affects another vif or the process.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "vifkit/ctrl/backend_handler.hpp"
#include "vifkit/io/packet_port.hpp"
#include "vifkit/platform/platform.hpp"
#include "vifkit/platform/store.hpp"
#include "vifkit/util/event_loop.hpp"

namespace vifkit::core {

// How the backend reaches the frontend's buffers when no static grant covers them.
//   copy - grant copy (one validated batch per round);
//   map  - grant map, memcpy, unmap (guest transmit; receive still copies);
//   raw  - benchmark ceiling: all of the frontend's memory mapped once, grant
//          refs translated with no check at all (emulated platform only).
enum class tx_mode : std::uint8_t { copy, map, raw };
[[nodiscard]] const char* to_string(tx_mode m);

struct netback_config {
    tx_mode mode = tx_mode::copy;
    // Host port spec per vif; "{domid}" and "{devid}" are substituted
    // (e.g. "tap:vif{domid}.{devid}", "unix:/run/vifkit/{domid}.{devid}.sock").
    std::string port_template = "tap:vif{domid}.{devid}";
    std::string pcap_template;        // optional capture file per vif, same substitutions
    std::size_t rx_backlog_bytes = 4u << 20;  // per-queue cap on frames waiting for rx buffers
    unsigned batch = 32;              // packets per grant batch
    bool feature_sg = true;           // advertise feature-sg (multi-slot tx and rx)
    // Offloads advertised to the frontend (netif-spec §5.1). Off = the key is
    // written as "0": the frontend must not send GSO / partial IPv6 checksums.
    bool feature_gso_tcpv4 = true;
    bool feature_gso_tcpv6 = true;
    bool feature_ipv6_csum_offload = true;
    // feature-multicast-control and feature-dynamic-multicast-control: MCAST_ADD/DEL
    // extras fill a per-vif list (at most 64) that filters guest-receive multicast.
    bool multicast_control = true;
    // A queue whose frontend posts too few rx buffers for the next packet for
    // this long is declared stalled: its backlog is dropped and carrier goes to
    // 0 until buffers come back (Linux rx_stall_timeout_msecs). A frontend
    // without feature-rx-notify is polled for new buffers every rx_poll_interval.
    std::chrono::milliseconds rx_stall_timeout{60000};
    std::chrono::milliseconds rx_poll_interval{10};
    bool split_event_channels = true; // advertise feature-split-event-channels
    unsigned max_queues = 4;          // multi-queue-max-queues (1 = do not advertise)
    bool ctrl_ring = true;            // advertise feature-ctrl-ring (hashing, static grants)
    ctrl::static_grant_limits static_grants;  // GET/ADD/DEL_GREF_MAPPING; enabled = false -> NOT_SUPPORTED
    // Device type served: /local/domain/<self>/backend/<backend_type>/... ("vif";
    // a private name such as QEMU's "qnic" keeps the kernel netback away).
    std::string backend_type = "vif";
    // Write hotplug-status=connected before InitWait (real Xen without a
    // hotplug script that does it; harmless elsewhere).
    bool write_hotplug_status = false;
    // Busy polling: the caller runs poll() in a loop; the rings' event indices
    // are not re-armed, so the frontend stops sending notifications.
    bool busy_poll = false;
};

class netback_vif;

class netback {
public:
    netback(util::event_loop& loop, platform::services& svc, platform::store& store,
            netback_config cfg);
    ~netback();
    netback(const netback&) = delete;
    netback& operator=(const netback&) = delete;

    // Start watching our backend/vif directory.
    void start();
    // Disconnect every vif (state Closed) and release all resources.
    void shutdown();
    // Busy-poll mode: one pass over every connected vif's rings and host port.
    // True if any packet or request moved. Events and watches still need the
    // event loop (run_once) now and then.
    bool poll();

    // Stats for every vif: {"vifs":[{"domid":..,"devid":..,"state":..,"queues":[{counters}]}],
    // "grant_mappings":N, "event_channels":N}.
    [[nodiscard]] nlohmann::json stats() const;
    [[nodiscard]] std::size_t vif_count() const { return vifs_.size(); }

private:
    void rescan();
    void on_event_channel();
    void on_watch_event(const std::string& token);

    util::event_loop& loop_;
    platform::services& svc_;
    platform::store& store_;
    netback_config cfg_;
    std::string base_;  // /local/domain/<self>/backend/<backend_type>
    std::map<std::pair<domid_t, unsigned>, std::unique_ptr<netback_vif>> vifs_;
    bool started_ = false;
};

}  // namespace vifkit::core
