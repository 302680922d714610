// Serves ctl_server requests with a ctrl_client: what vifkit-front plugs
// between its local control socket and its control ring.
//
//   ctl_bridge bridge(hooks);                     // once
//   ctl_server server(loop, path, bridge.handler());
//   ... control ring connected:  bridge.attach(&client, &timer);
//   ... disconnect:              client.cancel_all(); bridge.detach();
//
// A send with a page gets a fresh page from hooks.grant_page, filled with the
// request's bytes; its gref goes into data[page_arg]. When the answer comes
// (or the request times out or is cancelled) the first page-length bytes are
// returned as page_after and the page goes back through hooks.release_page.
// After a timeout the backend may still be using the page: release_page must
// revoke the grant (and keep the page if revocation fails, XSA-396).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>

#include <nlohmann/json.hpp>

#include "vifkit/ctrlfront/ctl_protocol.hpp"
#include "vifkit/ctrlfront/ctrl_client.hpp"
#include "vifkit/ctrlfront/expiry_timer.hpp"

namespace vifkit::ctrlfront {

class ctl_bridge {
public:
    struct granted_page {
        std::uint32_t gref = 0;
        std::span<std::uint8_t> bytes;  // our mapping of the whole page (4096 bytes)
    };
    struct hooks {
        // Allocate a zeroed page and grant it to the backend (writable or
        // read-only). nullopt if that failed.
        std::function<std::optional<granted_page>(bool writable)> grant_page;
        // Revoke and free a page obtained from grant_page.
        std::function<void(std::uint32_t gref)> release_page;
        // Kick the control event channel (flush() asked for it).
        std::function<void()> notify;
        // Optional: extra fields merged into the stats reply.
        std::function<nlohmann::json()> stats;
    };

    explicit ctl_bridge(hooks h);

    // The client to use, or nullptr while the control ring is down (sends then
    // fail with "control ring not connected"). `timer` (optional) is re-armed
    // after every send.
    void attach(ctrl_client* client, expiry_timer* timer);
    void detach() { attach(nullptr, nullptr); }

    // Handles one request; the reply comes at once (errors, stats) or when
    // the ctrl_client calls back.
    void handle(const ctl_request& req, ctl_server::reply_fn reply);
    // handle() as a ctl_server::handler; the bridge must outlive the server.
    [[nodiscard]] ctl_server::handler handler();

    // The stats reply body: client counters plus hooks.stats().
    [[nodiscard]] nlohmann::json stats() const;

private:
    void send(const ctl_request& req, ctl_server::reply_fn reply);
    // Shared with pending callbacks, so a late callback never touches a dead bridge.
    std::shared_ptr<hooks> hooks_;
    ctrl_client* client_ = nullptr;
    expiry_timer* timer_ = nullptr;
};

}  // namespace vifkit::ctrlfront
