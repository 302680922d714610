// Frontend handshake, grants and teardown (netif-spec §5). Data path: netfront_io.cpp.
#include "vifkit/core/netfront.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "vifkit/core/xenbus_fsm.hpp"
#include "vifkit/wire/xs_values.hpp"

namespace vifkit::core {

using abi::xenbus_state;

netfront::netfront(util::event_loop& loop, platform::services& svc, platform::store& store, netfront_config cfg)
    : loop_(loop), svc_(svc), store_(store), cfg_(std::move(cfg)) {
    cfg_.rx_buffers = std::min(cfg_.rx_buffers, ring::rx_ring_types::size);
    cfg_.tx_buffers = std::min(cfg_.tx_buffers, ring::tx_ring_types::size);
    cfg_.queues = std::clamp(cfg_.queues, 1u, 64u);
    cfg_.response_budget = std::clamp(cfg_.response_budget, 1u, 65536u);
    scratch_.resize(abi::max_tx_size + 1);
    rx_batch_.reserve(ring::rx_ring_types::size);
    held_.resize(abi::max_tx_size + 1);
}

netfront::~netfront() {
    if (started_) shutdown(std::chrono::milliseconds(0));
}

bool netfront::start() {
    front_path_ = fmt::format("{}/device/vif/{}", store_.domain_path(svc_.self), cfg_.devid);
    auto bp = store_.read(front_path_ + "/backend");
    auto bid = store_.read(front_path_ + "/backend-id");
    const std::uint32_t bdom = bid ? wire::parse_u32(*bid).value_or(UINT32_MAX) : UINT32_MAX;
    if (!bp || bp->empty() || bdom >= domid_self) {
        spdlog::error("netfront: {} has no usable backend/backend-id (run vifkit-attach first)", front_path_);
        return false;
    }
    back_path_ = *bp;
    back_dom_ = static_cast<domid_t>(bdom);
    std::string err;
    port_ = io::open_port(cfg_.port_spec, &err);
    if (port_ && !cfg_.pcap_path.empty()) port_ = io::with_capture(std::move(port_), cfg_.pcap_path, &err);
    if (!port_) {
        spdlog::error("netfront: cannot open guest port {}: {}", cfg_.port_spec, err);
        return false;
    }
    started_ = true;
    if (!cfg_.ctl_socket.empty()) start_ctl_socket();
    loop_.add(svc_.evtchn->fd(), [this] { on_event_channel(); });
    loop_.add(store_.fd(), [this] { on_watch(); });
    apply_mtu();
    set_state(xenbus_state::initialising);
    store_.watch(back_path_ + "/state", "backend-state");
    store_.watch(back_path_ + "/carrier", "backend-carrier");
    spdlog::info("netfront: {} -> backend {} (domain {}), guest port {}", front_path_, back_path_, back_dom_,
                 port_->describe());
    return true;
}

void netfront::on_watch() {
    bool changed = false, carrier = false;
    for (int i = 0; i < 4096; ++i) {  // bounded drain
        auto ev = store_.next_watch();
        if (!ev) break;
        changed = changed || ev->second == "backend-state";
        carrier = carrier || ev->second == "backend-carrier";
    }
    if (changed) on_backend_changed();
    if (carrier) read_carrier();
}

void netfront::set_state(xenbus_state s) {
    if (state_ == s && s != xenbus_state::initialising) return;
    if (state_ != s)
        spdlog::info("netfront: frontend {} -> {}", abi::to_string(state_), abi::to_string(s));
    state_ = s;
    store_.write(front_path_ + "/state", std::to_string(static_cast<int>(s)));
}

void netfront::on_backend_changed() {
    std::optional<xenbus_state> bs;
    if (auto v = store_.read(back_path_ + "/state")) {
        bs = abi::parse_xenbus_state(*v);
        if (!bs) {
            // Not a state at all: a broken backend, not a missing one (which we wait out).
            ++bad_backend_states_;
            if (log_limit_.allow()) spdlog::warn("netfront: backend wrote state '{}'", *v);
            if (connected_) return fault("invalid backend state");
        }
    }
    const fsm_step st = frontend_on_backend(state_, bs, connected_);
    if (st.action == fsm_action::disconnect || st.action == fsm_action::fatal) {
        if (connected_) ++backend_closes_;
        disconnect();
        release_grants();
    }
    if (st.action == fsm_action::start && !backend_connected_) {
        backend_connected_ = true;
        ++connects_;
        spdlog::info("netfront: backend connected, link up ({} queue{}; backend sg={} gso4={} gso6={} csum6={} "
                     "mcast={})",
                     queues_.size(), queues_.size() == 1 ? "" : "s", backend_sg_, to_backend_.gso4, to_backend_.gso6,
                     to_backend_.csum6, back_.mcast);
        for (auto& q : queues_) post_rx_buffers(q);
        register_static(0);
        read_carrier();
        mcast_sent_.clear();
        if (back_.mcast && cfg_.multicast_control) {
            if (!mcast_timer_) mcast_timer_.emplace(loop_, [this] { sync_multicast(); });
            mcast_timer_->arm_every(std::chrono::seconds(1));
            sync_multicast();
        }
    }
    for (std::uint8_t i = 0; i < st.count; ++i) {
        if (st.path[i] == xenbus_state::closed) {
            release_grants();  // the backend has let go of them (it is Closing/Closed)
            set_state(xenbus_state::closed);
            if (reconnect_pending_) {
                reconnect_pending_ = false;
                set_state(xenbus_state::initialising);
            }
            continue;
        }
        if (st.action == fsm_action::connect && st.path[i] == xenbus_state::connected) {
            if (!connect()) {
                disconnect();
                release_grants();
                set_state(xenbus_state::closed);
                return;
            }
            continue;  // state Connected was written inside the key transaction
        }
        set_state(st.path[i]);
    }
}

void netfront::read_backend_features() {
    auto flag = [this](const char* key) {
        auto v = store_.read(back_path_ + "/" + key);
        if (!v) return false;
        auto f = wire::parse_flag(*v);
        if (!f) {
            ++bad_backend_keys_;
            if (log_limit_.allow()) spdlog::warn("netfront: backend {}='{}' is not 0 or 1; taken as 0", key, *v);
        }
        return f.value_or(false);
    };
    backend_sg_ = flag("feature-sg");
    back_.gso4 = flag("feature-gso-tcpv4");
    back_.gso6 = flag("feature-gso-tcpv6");
    back_.csum6 = flag("feature-ipv6-csum-offload");
    back_.mcast = flag("feature-multicast-control");
    back_.dyn_mcast = flag("feature-dynamic-multicast-control");
    // Guest transmit: every netback takes partial IPv4 checksums (csum_blank);
    // IPv6 ones and GSO only when advertised; GSO needs several slots (sg).
    to_backend_.csum4 = true;
    to_backend_.csum6 = back_.csum6;
    to_backend_.gso4 = back_.gso4 && backend_sg_;
    to_backend_.gso6 = back_.gso6 && backend_sg_ && back_.csum6;
    to_guest_ = offload_accept::from_caps(port_->offload_caps());
    // The guest's kernel hands us only what the backend takes (it segments
    // and checksums the rest itself).
    if (int rc = port_->set_offload(to_backend_.caps()); rc < 0)
        spdlog::warn("netfront: cannot set guest port offloads: {}", std::strerror(-rc));
}

void netfront::sync_multicast() {
    // Mirror the guest port's multicast groups into the backend's filter with
    // MCAST_ADD/DEL dummy requests (at most 64: the backend refuses more).
    if (!connected() || !back_.mcast || !cfg_.multicast_control) return;
    const auto groups = port_->multicast_groups();
    if (!groups) return;
    for (auto it = mcast_sent_.begin(); it != mcast_sent_.end();) {
        if (std::find(groups->begin(), groups->end(), *it) != groups->end()) {
            ++it;
        } else if (send_mcast(false, *it)) {
            it = mcast_sent_.erase(it);
        } else {
            return;  // ring full: next tick
        }
    }
    for (const auto& g : *groups) {
        if (mcast_sent_.size() >= 64) break;
        if (std::find(mcast_sent_.begin(), mcast_sent_.end(), g) != mcast_sent_.end()) continue;
        if (!send_mcast(true, g)) return;
        mcast_sent_.push_back(g);
    }
}

void netfront::read_carrier() {
    // B/carrier (netif-spec §5.1): "0" = link down, absent or anything else = up.
    auto v = store_.read(back_path_ + "/carrier");
    const bool up = !v || *v != "0";
    if (up == carrier_) return;
    carrier_ = up;
    spdlog::info("netfront: backend carrier {}", up ? "on" : "off");
    if (int rc = port_->set_carrier(up); rc < 0 && rc != -EOPNOTSUPP && rc != -ENOTTY && log_limit_.allow())
        spdlog::warn("netfront: cannot show carrier on the guest port: {}", std::strerror(-rc));
}

void netfront::apply_mtu() {
    // F/mtu (toolstack; default 1500) sets the guest interface's MTU, capped
    // at 1500 when the backend cannot take multi-slot packets.
    auto v = store_.read(front_path_ + "/mtu");
    if (!v) return;
    auto mtu = wire::parse_u32(*v);
    if (!mtu || *mtu < 68 || *mtu > abi::max_tx_size - abi::eth_hlen) {
        spdlog::warn("netfront: ignoring unusable mtu '{}'", *v);
        return;
    }
    unsigned want = *mtu;
    if (connected_ && !backend_sg_ && want > 1500) want = 1500;
    const int rc = port_->set_mtu(static_cast<int>(want));
    if (rc == 0)
        spdlog::info("netfront: guest port mtu {}", want);
    else if (rc != -EOPNOTSUPP)
        spdlog::warn("netfront: cannot set mtu {}: {}", want, std::strerror(-rc));
}

bool netfront::connect() {
    read_backend_features();
    auto rxcopy = store_.read(back_path_ + "/feature-rx-copy");
    if (!rxcopy || !wire::parse_flag(*rxcopy).value_or(false)) {
        spdlog::error("netfront: backend lacks feature-rx-copy");
        return false;
    }
    // Queues: what we want, capped by what the backend offers (absent = 1).
    unsigned max_q = 1;
    if (auto m = store_.read(back_path_ + "/multi-queue-max-queues")) {
        const auto v = wire::parse_u32(*m);
        if (!v || *v == 0) {
            ++bad_backend_keys_;
            spdlog::warn("netfront: backend multi-queue-max-queues '{}' is invalid; one queue", *m);
        }
        max_q = std::clamp(v.value_or(1u), 1u, 64u);
    }
    auto split = store_.read(back_path_ + "/feature-split-event-channels");
    const bool use_split = cfg_.use_split_event_channels && split && wire::parse_flag(*split).value_or(false);
    queues_.clear();
    queues_.resize(std::min(cfg_.queues, max_q));
    for (auto& q : queues_)
        if (!setup_queue(q, use_split)) return false;
    if (!setup_ctrl()) return false;
    if (!write_keys()) return false;
    connected_ = true;
    apply_mtu();  // capped now that the backend's feature-sg is known
    return true;
}

bool netfront::setup_queue(queue& q, bool split) {
    // Rings: zeroed and initialised before they are granted.
    if (!svc_.sharer->share_pages(back_dom_, q.ring_pages, true)) {
        spdlog::error("netfront: cannot grant ring pages");
        return false;
    }
    q.rings_granted = true;
    q.tx.emplace(q.ring_pages[0].addr);
    q.rx.emplace(q.ring_pages[1].addr);
    q.tx->init();
    q.rx->init();
    std::vector<platform::shared_page> pages(cfg_.tx_buffers);
    if (!svc_.sharer->share_pages(back_dom_, pages, false)) {  // tx: backend only reads
        spdlog::error("netfront: cannot grant {} tx pages (guest memory or grant table full?)", pages.size());
        return false;
    }
    for (std::size_t i = 0; i < pages.size(); ++i) {
        q.tx_bufs.push_back({pages[i], false});
        q.tx_free.push_back(static_cast<std::uint16_t>(pages.size() - 1 - i));
    }
    pages.assign(cfg_.rx_buffers, {});
    if (!svc_.sharer->share_pages(back_dom_, pages, true)) {  // rx: backend writes
        spdlog::error("netfront: cannot grant {} rx pages (guest memory or grant table full?)", pages.size());
        return false;
    }
    for (auto& p : pages) q.rx_bufs.push_back({p, false});
    q.rx_frame.resize(abi::max_tx_size + page_size);
    auto t = svc_.evtchn->alloc_unbound(back_dom_);
    if (!t) {
        spdlog::error("netfront: cannot allocate an event channel: {}", std::strerror(errno));
        return false;
    }
    q.tx_port = q.rx_port = *t;
    q.ports_bound = true;
    if (split) {
        auto r = svc_.evtchn->alloc_unbound(back_dom_);
        if (!r) return false;
        q.rx_port = *r;
    }
    return true;
}

bool netfront::write_queue_keys(const queue& q, const std::string& dir, platform::xs_tx t) {
    const auto w = [&](const char* k, const std::string& v) { return store_.write(dir + "/" + k, v, t); };
    bool ok = w("tx-ring-ref", std::to_string(q.ring_pages[0].ref)) &&
              w("rx-ring-ref", std::to_string(q.ring_pages[1].ref));
    if (q.rx_port != q.tx_port)
        return ok && w("event-channel-tx", std::to_string(q.tx_port)) &&
               w("event-channel-rx", std::to_string(q.rx_port));
    return ok && w("event-channel", std::to_string(q.tx_port));
}

void netfront::remove_stale_keys(platform::xs_tx t) {
    // Ring keys of an earlier connection (other queue layout, a control ring the
    // backend no longer offers) name revoked grants and closed ports: a backend
    // reading them would map whatever those grefs name now. Only current keys stay.
    static constexpr std::string_view per_connection[] = {
        "multi-queue-num-queues", "tx-ring-ref", "rx-ring-ref", "event-channel", "event-channel-tx",
        "event-channel-rx", "ctrl-ring-ref", "event-channel-ctrl"};
    const auto dir = store_.directory(front_path_, t);
    if (!dir) return;
    for (const auto& k : *dir)
        if (k.starts_with("queue-") || std::find(std::begin(per_connection), std::end(per_connection), k) !=
                                           std::end(per_connection))
            store_.rm(front_path_ + "/" + k, t);
}

bool netfront::write_keys() {
    for (int attempt = 0; attempt < 16; ++attempt) {
        auto t = store_.begin();
        if (!t) return false;
        const auto w = [&](const char* k, const std::string& v) { return store_.write(front_path_ + "/" + k, v, *t); };
        remove_stale_keys(*t);
        const auto flag = [&](const char* k, bool on) { return w(k, on ? "1" : "0"); };
        // Features (netif-spec §5.1); GSO needs sg and the matching csum offload.
        const bool gso4 = cfg_.gso_tcpv4 && cfg_.feature_sg && cfg_.csum_offload;
        const bool gso6 = cfg_.gso_tcpv6 && cfg_.feature_sg && cfg_.ipv6_csum_offload;
        bool ok = w("request-rx-copy", "1") && flag("feature-rx-notify", cfg_.rx_notify) &&
                  flag("feature-sg", cfg_.feature_sg) && flag("feature-gso-tcpv4", gso4) &&
                  flag("feature-gso-tcpv6", gso6) && flag("feature-no-csum-offload", !cfg_.csum_offload) &&
                  flag("feature-ipv6-csum-offload", cfg_.ipv6_csum_offload) &&
                  flag("request-multicast-control", cfg_.multicast_control && back_.mcast);
        if (queues_.size() == 1) {
            ok = ok && write_queue_keys(queues_[0], front_path_, *t);
        } else {
            // With several queues the ring keys live only under queue-N (netif-spec §5.1).
            ok = ok && w("multi-queue-num-queues", std::to_string(queues_.size()));
            for (std::size_t i = 0; i < queues_.size() && ok; ++i)
                ok = write_queue_keys(queues_[i], fmt::format("{}/queue-{}", front_path_, i), *t);
        }
        // The control ring must be advertised before we go Connected (§5.1).
        if (ctrl_)
            ok = ok && w("ctrl-ring-ref", std::to_string(ctrl_page_.ref)) &&
                 w("event-channel-ctrl", std::to_string(ctrl_port_));
        ok = ok && w("state", std::to_string(static_cast<int>(xenbus_state::connected)));
        if (!ok) {
            store_.abort(*t);
            return false;
        }
        if (store_.commit(*t)) {
            spdlog::info("netfront: frontend {} -> Connected ({} queue{}, rings {}/{}, ports {}/{})",
                         abi::to_string(state_), queues_.size(), queues_.size() == 1 ? "" : "s",
                         queues_[0].ring_pages[0].ref, queues_[0].ring_pages[1].ref, queues_[0].tx_port,
                         queues_[0].rx_port);
            state_ = xenbus_state::connected;
            return true;
        }
        if (errno != EAGAIN) return false;
    }
    return false;
}

void netfront::disconnect() {
    watch_port(false);
    teardown_ctrl();
    for (auto& q : queues_) {
        if (q.ports_bound) {
            svc_.evtchn->unbind(q.tx_port);
            if (q.rx_port != q.tx_port) svc_.evtchn->unbind(q.rx_port);
            q.ports_bound = false;
        }
        q.rx_in_chain = q.rx_extra_next = q.rx_bad = false;
        q.rx_len = q.rx_slots = 0;
        q.rx_flags = 0;
        q.rx_gso_type = 0;
    }
    held_len_ = 0;
    if (mcast_timer_) mcast_timer_->cancel();
    if (connected_) spdlog::info("netfront: disconnected");
    connected_ = backend_connected_ = false;
}

void netfront::release_grants() {
    // Revoke only what the backend no longer maps. A page it still holds is
    // leaked, never reused (XSA-396), and counted.
    std::vector<platform::shared_page> pages;
    if (ctrl_granted_) {
        pages.push_back(ctrl_page_);
        pages.push_back(list_page_);
        ctrl_granted_ = false;
    }
    static_fallback_ = false;
    for (auto& q : queues_) {
        if (q.rings_granted) pages.insert(pages.end(), std::begin(q.ring_pages), std::end(q.ring_pages));
        for (auto& b : q.tx_bufs) pages.push_back(b.page);
        for (auto& b : q.rx_bufs) pages.push_back(b.page);
        q.tx.reset();
        q.rx.reset();
        q.rings_granted = false;
        q.tx_bufs.clear();
        q.rx_bufs.clear();
        q.tx_free.clear();
    }
    if (!pages.empty()) {
        std::vector<gnt_status> st(pages.size());
        const std::size_t done = svc_.sharer->unshare(pages, st);
        if (done != pages.size()) {
            leaked_pages_ += pages.size() - done;
            spdlog::error("netfront: backend still maps {} granted pages; leaking them", pages.size() - done);
        }
    }
}

void netfront::reconnect() {
    spdlog::info("netfront: reconnecting");
    disconnect();
    reconnect_pending_ = true;
    set_state(xenbus_state::closing);
    // The backend answers Closing with Closing; we then release our grants,
    // go Closed and Initialising, and the backend's InitWait reconnects us.
    on_backend_changed();
}

void netfront::shutdown(std::chrono::milliseconds wait) {
    if (!started_) return;
    unregister_static(std::min(wait, std::chrono::milliseconds(1000)));
    disconnect();
    set_state(xenbus_state::closing);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
        auto v = store_.read(back_path_ + "/state");
        auto bs = v ? abi::parse_xenbus_state(*v) : std::nullopt;
        if (!bs || *bs == xenbus_state::closed || *bs == xenbus_state::closing || *bs == xenbus_state::init_wait)
            break;
        loop_.run_once(std::chrono::milliseconds(20));
    }
    // Our backend disconnects (unmaps, unbinds) before it writes Closing.
    release_grants();
    set_state(xenbus_state::closed);
    store_.unwatch(back_path_ + "/state", "backend-state");
    loop_.remove(svc_.evtchn->fd());
    loop_.remove(store_.fd());
    ctl_server_.reset();
    bridge_.reset();
    started_ = false;
}

void netfront::fault(const char* why) {
    if (!queues_.empty()) ++queues_[0].c.peer_faults;
    spdlog::error("netfront: backend error: {}; disconnecting", why);
    disconnect();
    set_state(xenbus_state::closing);
}

nlohmann::json netfront::stats() const {
    nlohmann::json qs = nlohmann::json::array();
    for (const auto& q : queues_) {
        nlohmann::json j = q.c;
        j["static_grants"] = q.static_refs.size();
        qs.push_back(j);
    }
    nlohmann::json ctrl;
    if (ctrl_) {
        const auto c = ctrl_->get_counters();
        ctrl = {{"sent", c.sent}, {"completed", c.completed}, {"bad_responses", c.bad_responses},
                {"timeouts", c.timeouts}, {"outstanding", ctrl_->outstanding()}};
    }
    return {{"path", front_path_},
            {"state", abi::to_string(state_)},
            {"connected", connected()},
            {"port", port_ ? port_->describe() : ""},
            {"granted_pages", svc_.sharer->shared_count()},
            {"event_channels", svc_.evtchn->bound_count()},
            {"leaked_pages", leaked_pages_},
            {"connects", connects_},
            {"backend_closes", backend_closes_},
            {"bad_backend_states", bad_backend_states_},
            {"bad_backend_keys", bad_backend_keys_},
            {"ctrl_ring", ctrl_.has_value()},
            {"ctrl", ctrl},
            {"carrier", carrier_},
            {"multicast_addresses", mcast_sent_.size()},
            {"multicast_updates", mcast_updates_},
            {"offloads_to_backend", {{"csum4", to_backend_.csum4}, {"csum6", to_backend_.csum6},
                                     {"gso4", to_backend_.gso4}, {"gso6", to_backend_.gso6}}},
            {"static_grants", static_registered()},
            {"static_fallback", static_fallback_},
            {"queues", qs}};
}

}  // namespace vifkit::core
