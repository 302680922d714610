// Backend control ring (netif-spec §2): map the frontend's ring, answer every
// request through ctrl::backend_handler (hashing, static grants), and steer
// backend->guest traffic to queues.
#include "netback_vif.hpp"
#include "vifkit/core/steering.hpp"
#include "vifkit/wire/xs_values.hpp"

namespace vifkit::core {

namespace {
constexpr unsigned ctrl_requests_per_event = 128;  // one ring's worth (bounded work)
}

bool netback_vif::connect_ctrl() {
    // Without a control ring the frontend gets no hashing and no static grants.
    auto ref = store_.read(front_path_ + "/ctrl-ring-ref");
    auto evt = store_.read(front_path_ + "/event-channel-ctrl");
    handler_ = std::make_unique<ctrl::backend_handler>(*svc_.mapper, front_dom_,
                                                       static_cast<unsigned>(queues_.size()), cfg_.static_grants);
    if (!cfg_.ctrl_ring || (!ref && !evt)) return true;
    auto gref = ref ? wire::parse_u32(*ref) : std::nullopt;
    auto port = evt ? wire::parse_u32(*evt) : std::nullopt;
    if (!gref || !port) {
        spdlog::error("vif{}.{}: bad ctrl-ring-ref / event-channel-ctrl", front_dom_, devid_);
        return false;
    }
    platform::map_op op;
    op.ref = *gref;
    svc_.mapper->map(front_dom_, std::span(&op, 1));
    ++queues_[0].c.grant_maps;
    if (op.status != gnt_status::okay) {
        spdlog::error("vif{}.{}: cannot map ctrl ring: {}", front_dom_, devid_, to_string(op.status));
        return false;
    }
    ctrl_map_ = op;
    ctrl_.emplace(op.addr);
    if (ctrl_->check_attach() != ring::ring_status::ok) {  // counted by on_frontend_changed()
        spdlog::error("vif{}.{}: ctrl ring indices inconsistent at attach", front_dom_, devid_);
        return false;
    }
    auto local = svc_.evtchn->bind_interdomain(front_dom_, *port);
    if (!local) {
        spdlog::error("vif{}.{}: cannot bind ctrl event channel {}", front_dom_, devid_, *port);
        return false;
    }
    ctrl_port_ = *local;
    ctrl_bound_ = true;
    return true;
}

void netback_vif::disconnect_ctrl() {
    if (handler_) handler_->unmap_all();  // every static mapping goes on disconnect
    handler_.reset();
    if (ctrl_bound_) {
        svc_.evtchn->unbind(ctrl_port_);
        ctrl_bound_ = false;
    }
    ctrl_.reset();
    if (ctrl_map_.status == gnt_status::okay) {
        svc_.mapper->unmap(std::span(&ctrl_map_, 1));
        if (!queues_.empty()) ++queues_[0].c.grant_unmaps;
    }
    ctrl_map_ = {};
}

// A gref named by a request we copied but have not answered yet is in flight:
// DEL must refuse it (netif-spec §1.4). Only a partial chain can wait in a
// tx window across events, so the windows are the whole in-flight set.
void netback_vif::mark_window_in_flight(int delta) {
    for (std::size_t qi = 0; qi < queues_.size(); ++qi) {
        auto& table = handler_->table(static_cast<unsigned>(qi));
        for (const auto& r : queues_[qi].tx_window)
            if (auto* e = table.find(r.gref)) e->inflight = static_cast<std::uint32_t>(e->inflight + delta);
    }
}

void netback_vif::process_ctrl() {
    if (!ctrl_ || !handler_) return;
    for (unsigned n = 0; n < ctrl_requests_per_event;) {
        const auto u = ctrl_->pending_requests();
        if (u.status == ring::ring_status::overflow) {
            fatal(queues_[0], "ctrl ring overflow (req_prod - rsp_prod > ring size)");
            return;
        }
        for (std::uint32_t i = 0; i < u.count && n < ctrl_requests_per_event; ++i, ++n) {
            const abi::ctrl_request req = ctrl_->take_request();  // the one read of this slot
            const bool del = req.type == abi::ctrl_type::del_gref_mapping;
            if (del) mark_window_in_flight(+1);
            const abi::ctrl_response rsp = handler_->handle(req);
            if (del) mark_window_in_flight(-1);
            ctrl_->put_response(rsp);
        }
        if (ctrl_->push_responses() && svc_.evtchn->notify(ctrl_port_) == 0) ++queues_[0].c.notifies_sent;
        if (!ctrl_->final_check_for_requests()) return;
    }
    defer(&netback_vif::process_ctrl_deferred, 0);
}

void netback_vif::process_ctrl_deferred(backend_queue&) { process_ctrl(); }

ctrl::backend_handler::steer netback_vif::steer(std::span<const std::byte> frame) const {
    // The frontend configured hashing on the control ring: its algorithm and
    // mapping decide, and the hash goes to the guest in an rx HASH extra.
    if (handler_ && handler_->hash_algorithm() != ctrl::hash_algorithm::none) {
        auto s = handler_->select_queue(frame);
        if (s.queue >= queues_.size()) s.queue = 0;
        return s;
    }
    // Otherwise our own per-flow choice (the sender's, netif-spec §5.1).
    ctrl::backend_handler::steer s;
    s.queue = flow_queue(frame, static_cast<unsigned>(queues_.size()));
    return s;
}

}  // namespace vifkit::core
