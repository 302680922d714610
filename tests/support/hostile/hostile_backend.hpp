// A netback written by hand inside the test process, for hostile-peer tests of
// the frontend.
//
// It attaches to the emulated hypervisor as its own backend (driver) domain,
// owns the vif's backend directory (vifkit-attach --backend <our domid>, so no
// vifkit-back serves it), writes backend keys and states straight into
// xenstore (any value, any moment), maps the frontend's tx/rx (and ctrl) rings
// through its grant mapper and binds the frontend's event channels. After that
// the test owns the shared rings: it may write any response, any index, and
// notify. Nothing here validates anything: that is the point.
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

// Backend feature keys hostile_backend::write_features() writes: always
// feature-rx-copy 1 and feature-sg 1, plus these.
struct backend_features {
    bool split = false;                     // feature-split-event-channels 1
    bool ctrl_ring = false;                 // feature-ctrl-ring 1
    std::optional<std::string> max_queues;  // multi-queue-max-queues, written verbatim
};

class hostile_backend {
public:
    // Attaches as domain `self` (a driver domain id no other process uses) to
    // serve guest `guest`'s vif `devid`.
    hostile_backend(emu_env& env, domid_t self, domid_t guest, unsigned devid = 0);
    ~hostile_backend();
    hostile_backend(const hostile_backend&) = delete;
    hostile_backend& operator=(const hostile_backend&) = delete;

    // Toolstack step: vifkit-attach --guest <guest> --backend <self>.
    bool attach_vif();

    // ---- xenstore (backend side) ----
    bool write(const std::string& key, const std::string& value);  // B/<key>
    bool remove(const std::string& key);                             // B/<key>
    bool remove_backend_dir();                                       // B itself
    bool set_state(int state) { return write("state", std::to_string(state)); }
    bool set_state_raw(const std::string& v) { return write("state", v); }
    using features = backend_features;
    bool write_features(const features& f);
    std::optional<std::string> front(const std::string& key);  // F/<key>
    int frontend_state();                                       // -1 if absent/unparsable
    bool wait_frontend_state(int state, std::chrono::milliseconds timeout = std::chrono::seconds(10));

    // ---- connection ----
    // Map the rings named in the frontend keys (single or multi-queue, ctrl
    // ring if advertised) and bind its event channels. False if anything fails
    // (whatever was mapped stays mapped until unmap_all()). with_ctrl = false:
    // leave an advertised control ring alone (not mapped, port not bound).
    bool map_rings(bool with_ctrl = true);
    // Unmap every ring, unbind every port.
    void unmap_all();
    // Legitimate handshake: features, InitWait, wait for the frontend's
    // Connected, map (see map_rings), Connected.
    bool connect(const features& f = {}, bool with_ctrl = true);
    // The usual reaction to a frontend going Closing (or to our own decision to
    // close): unmap, Closing, wait for the frontend's Closed, Closed.
    bool close();

    [[nodiscard]] std::size_t mapped() const;  // grant mappings held
    [[nodiscard]] std::size_t ports() const;   // event channels bound
    [[nodiscard]] unsigned queues() const { return static_cast<unsigned>(q_.size()); }

    // ---- raw ring access (queue 0 unless told) ----
    [[nodiscard]] ring::sring_header* tx_shared(unsigned q = 0) const { return q_.at(q).tx; }
    [[nodiscard]] ring::sring_header* rx_shared(unsigned q = 0) const { return q_.at(q).rx; }
    [[nodiscard]] ring::sring_header* ctrl_shared() const { return ctrl_; }
    [[nodiscard]] abi::tx_request tx_request_at(std::uint32_t idx, unsigned q = 0) const;
    [[nodiscard]] abi::rx_request rx_request_at(std::uint32_t idx, unsigned q = 0) const;
    [[nodiscard]] abi::ctrl_request ctrl_request_at(std::uint32_t idx) const;
    void put_tx_response(std::uint32_t idx, const abi::tx_response& r, unsigned q = 0);
    void put_rx_response(std::uint32_t idx, const abi::rx_response& r, unsigned q = 0);
    void put_rx_extra(std::uint32_t idx, const abi::extra_info& e, unsigned q = 0);
    void put_ctrl_response(std::uint32_t idx, const abi::ctrl_response& r);
    // Publish an arbitrary rsp_prod (no notification).
    void set_tx_rsp_prod(std::uint32_t v, unsigned q = 0);
    void set_rx_rsp_prod(std::uint32_t v, unsigned q = 0);
    void set_ctrl_rsp_prod(std::uint32_t v);
    // Kick the frontend (tx and rx port of queue q / the ctrl port).
    void notify(unsigned q = 0);
    void notify_ctrl();

    // Wait until the frontend's req_prod reaches `at_least` (unsigned distance
    // from `from`); the value reached, or nullopt on timeout.
    std::optional<std::uint32_t> wait_tx_req_prod(std::uint32_t at_least,
                                                  std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                                  unsigned q = 0) const;
    std::optional<std::uint32_t> wait_rx_req_prod(std::uint32_t at_least,
                                                  std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                                  unsigned q = 0) const;
    // Wait until the frontend has consumed tx responses up to `rsp_prod`
    // (its rsp_event, re-armed after each batch, reaches rsp_prod + 1).
    bool wait_tx_consumed(std::uint32_t rsp_prod, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                          unsigned q = 0) const;
    std::optional<std::uint32_t> wait_ctrl_req_prod(std::uint32_t at_least,
                                                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

    // Grant-copy bytes into / out of a frontend page (no mapping kept).
    bool copy_to_front(grant_ref_t ref, std::uint16_t offset, std::span<const std::byte> data);
    bool copy_from_front(grant_ref_t ref, std::uint16_t offset, std::span<std::byte> out);

    // Deliver one legitimate frame (single slot) into the rx buffer posted at
    // ring index `idx`, answer it there and publish + notify. False if the copy failed.
    bool deliver_rx(std::uint32_t idx, std::span<const std::byte> frame, unsigned q = 0);

    const domid_t self, guest;
    const std::string front_path, back_path;

private:
    struct queue_map {
        platform::map_op tx_op{}, rx_op{};
        ring::sring_header* tx = nullptr;
        ring::sring_header* rx = nullptr;
        evtchn_port_t tx_port = 0, rx_port = 0;  // our local ports (equal when not split)
        bool split = false;
    };
    bool map_one(grant_ref_t ref, platform::map_op& op);
    std::optional<evtchn_port_t> bind(const std::string& key);

    emu_env& env_;
    std::unique_ptr<emu::domain> dom_;
    std::unique_ptr<platform::grant_mapper> mapper_;
    std::unique_ptr<platform::event_channels> evtchn_;
    std::vector<queue_map> q_;
    platform::map_op ctrl_op_{};
    ring::sring_header* ctrl_ = nullptr;
    evtchn_port_t ctrl_port_ = 0;
    bool ctrl_bound_ = false;
};

}  // namespace vifkit::test
