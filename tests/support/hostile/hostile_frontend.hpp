// A netfront written by hand inside the test process, for hostile-peer tests.
//
// It attaches to the emulated hypervisor as a guest domain, shares its own tx and
// rx ring pages plus some data pages with the backend, allocates one event
// channel and writes the frontend keys and states straight into xenstore (through
// the harness's dom0 store connection). After that the test owns the shared
// rings: it may write any slot and any index, notify, and read what came back.
// Nothing here validates anything: that is the point.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "emu_harness.hpp"
#include "vifkit/abi/netif.hpp"
#include "vifkit/emu/domain.hpp"
#include "vifkit/platform/platform.hpp"
#include "vifkit/ring/ring.hpp"

namespace vifkit::test {

class hostile_frontend {
public:
    // Attaches as domain `domid` (the toolstack entries must exist: env.attach(domid)).
    hostile_frontend(emu_env& env, domid_t domid, unsigned devid = 0, std::size_t data_pages = 32);
    ~hostile_frontend();
    hostile_frontend(const hostile_frontend&) = delete;
    hostile_frontend& operator=(const hostile_frontend&) = delete;

    // Call before prepare(): also create a control ring (one shared page and its
    // own event channel); write_keys() then advertises ctrl-ring-ref and
    // event-channel-ctrl, as a real frontend does before going Connected.
    void enable_ctrl() { want_ctrl_ = true; }
    // Share rings + data pages with `backend_domid` and allocate the event channel
    // (and the control ring, if enabled). Idempotent. False on failure.
    bool prepare(domid_t backend_domid = 0);
    // Write the F keys (request-rx-copy, feature-sg, event-channel and, unless
    // told otherwise, tx-ring-ref / rx-ring-ref; plus the ctrl keys when enabled).
    // Call prepare() first.
    bool write_keys(bool ring_refs = true);
    // Write F/state.
    bool set_state(int state);
    // Backend state (B/state) as an int, -1 if unreadable.
    int backend_state();
    bool wait_backend_state(int state, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Full legitimate handshake: wait for backend InitWait, prepare, keys, Connected,
    // wait for backend Connected.
    bool connect(domid_t backend_domid = 0);
    // Frontend Closed, wait for backend Closed.
    bool close();

    // ---- raw ring access (the test may write anything) ----
    [[nodiscard]] ring::sring_header* tx_shared() const { return tx_; }
    [[nodiscard]] ring::sring_header* rx_shared() const { return rx_; }
    [[nodiscard]] abi::tx_request* tx_slot(std::uint32_t idx) const;
    [[nodiscard]] abi::rx_request* rx_slot(std::uint32_t idx) const;
    // Write requests at req_prod (as the frontend last published it), bump req_prod, notify.
    void push_tx(std::span<const abi::tx_request> reqs);
    // Publish an arbitrary req_prod (tx ring) and notify.
    void set_req_prod(std::uint32_t v);
    // Post n rx buffers (data pages from the end of the pool), bump rx req_prod, notify.
    void post_rx(unsigned n);
    void notify();
    // Write rx requests at the rx req_prod, bump it, notify.
    void push_rx(std::span<const abi::rx_request> reqs);
    // Publish an arbitrary rx req_prod and notify.
    void set_rx_req_prod(std::uint32_t v);
    // Rx responses produced since the last call, consumed in order.
    std::vector<abi::rx_response> rx_responses();
    std::vector<abi::rx_response> wait_rx_responses(std::size_t n,
                                                    std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // Responses produced since the last call (tx ring), consumed in order.
    std::vector<abi::tx_response> tx_responses();
    // Wait until at least n new tx responses are there, then return them all.
    std::vector<abi::tx_response> wait_tx_responses(std::size_t n,
                                                    std::chrono::milliseconds timeout = std::chrono::seconds(5));

    // ---- control ring (enable_ctrl() before prepare()) ----
    [[nodiscard]] ring::sring_header* ctrl_shared() const { return ctrl_; }
    [[nodiscard]] abi::ctrl_request* ctrl_slot(std::uint32_t idx) const;
    // Write requests at the ctrl req_prod, bump it, notify the ctrl port.
    void push_ctrl(std::span<const abi::ctrl_request> reqs);
    // Publish an arbitrary ctrl req_prod and notify.
    void set_ctrl_req_prod(std::uint32_t v);
    void notify_ctrl();
    std::vector<abi::ctrl_response> ctrl_responses();
    std::vector<abi::ctrl_response> wait_ctrl_responses(std::size_t n,
                                                        std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // One request (fresh id), then wait for its response; nullopt on timeout.
    std::optional<abi::ctrl_response> ctrl_call(std::uint16_t type, std::uint32_t d0 = 0, std::uint32_t d1 = 0,
                                                std::uint32_t d2 = 0);

    // ---- event channels ----
    [[nodiscard]] evtchn_port_t port() const { return port_; }
    [[nodiscard]] evtchn_port_t ctrl_port() const { return ctrl_port_; }
    [[nodiscard]] platform::event_channels& evtchn() { return *evtchn_; }

    // ---- pages ----
    // Share one more zeroed page (writable or read-only) with `peer` (default:
    // the backend). nullopt when out of memory or grant refs.
    std::optional<platform::shared_page> share_extra(bool writable, std::optional<domid_t> peer = std::nullopt);
    // Try to revoke one of our grants (ring, data or extra page). okay = revoked
    // (do not touch the page again); eagain = still mapped by the peer.
    gnt_status revoke(grant_ref_t ref);
    [[nodiscard]] grant_ref_t tx_ring_ref() const { return pages_.at(0).ref; }
    [[nodiscard]] grant_ref_t rx_ring_ref() const { return pages_.at(1).ref; }
    [[nodiscard]] grant_ref_t ctrl_ring_ref() const { return ctrl_page_.ref; }
    [[nodiscard]] std::size_t data_pages() const { return data_.size(); }
    [[nodiscard]] std::byte* data_page(std::size_t i) const;
    [[nodiscard]] grant_ref_t data_ref(std::size_t i) const;
    [[nodiscard]] emu::domain& domain() { return *dom_; }
    // A grant ref inside our table that we never granted.
    [[nodiscard]] grant_ref_t ungranted_ref() const;

    const std::string front_path, back_path;

private:
    emu_env& env_;
    std::size_t ndata_;
    std::unique_ptr<emu::domain> dom_;
    std::unique_ptr<platform::grant_sharer> sharer_;
    std::unique_ptr<platform::event_channels> evtchn_;
    std::vector<platform::shared_page> pages_;  // [0] tx ring, [1] rx ring, then data
    std::vector<platform::shared_page> data_;
    std::vector<platform::shared_page> extra_;  // share_extra()
    platform::shared_page ctrl_page_{};
    ring::sring_header* tx_ = nullptr;
    ring::sring_header* rx_ = nullptr;
    ring::sring_header* ctrl_ = nullptr;
    evtchn_port_t port_ = 0, ctrl_port_ = 0;
    domid_t backend_ = 0;
    bool want_ctrl_ = false;
    bool prepared_ = false;
    std::uint32_t tx_rsp_cons_ = 0, rx_rsp_cons_ = 0, ctrl_rsp_cons_ = 0;
    std::uint16_t ctrl_next_id_ = 0;
};

}  // namespace vifkit::test
