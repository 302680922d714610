// Frontend handshake, grants and teardown (netif-spec §5). Data path: netfront_io.cpp.
#include "vifkit/core/netfront.hpp"

#include <fmt/format.h>

#include "vifkit/core/xenbus_fsm.hpp"
#include "vifkit/wire/xs_values.hpp"

namespace vifkit::core {

using abi::xenbus_state;

netfront::netfront(util::event_loop& loop, platform::services& svc, platform::store& store, netfront_config cfg)
    : loop_(loop), svc_(svc), store_(store), cfg_(std::move(cfg)) {
    cfg_.rx_buffers = std::min(cfg_.rx_buffers, ring::rx_ring_types::size);
    cfg_.tx_buffers = std::min(cfg_.tx_buffers, ring::tx_ring_types::size);
    rx_frame_.resize(abi::max_tx_size + page_size);
    scratch_.resize(abi::max_tx_size + 1);
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
    loop_.add(svc_.evtchn->fd(), [this] { on_event_channel(); });
    loop_.add(store_.fd(), [this] { on_watch(); });
    set_state(xenbus_state::initialising);
    store_.watch(back_path_ + "/state", "backend-state");
    spdlog::info("netfront: {} -> backend {} (domain {}), guest port {}", front_path_, back_path_, back_dom_,
                 port_->describe());
    return true;
}

void netfront::on_watch() {
    bool changed = false;
    for (int i = 0; i < 4096; ++i) {  // bounded drain
        auto ev = store_.next_watch();
        if (!ev) break;
        changed = changed || ev->second == "backend-state";
    }
    if (changed) on_backend_changed();
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
    if (auto v = store_.read(back_path_ + "/state")) bs = abi::parse_xenbus_state(*v);
    const fsm_step st = frontend_on_backend(state_, bs, connected_);
    if (st.action == fsm_action::disconnect || st.action == fsm_action::fatal) {
        disconnect();
        release_grants();
    }
    if (st.action == fsm_action::start && !backend_connected_) {
        backend_connected_ = true;
        ++connects_;
        spdlog::info("netfront: backend connected, link up");
        post_rx_buffers();
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

bool netfront::connect() {
    auto sg = store_.read(back_path_ + "/feature-sg");
    backend_sg_ = sg && wire::parse_flag(*sg).value_or(false);
    auto rxcopy = store_.read(back_path_ + "/feature-rx-copy");
    if (!rxcopy || !wire::parse_flag(*rxcopy).value_or(false)) {
        spdlog::error("netfront: backend lacks feature-rx-copy");
        return false;
    }
    if (!grant_pages()) return false;
    auto split = store_.read(back_path_ + "/feature-split-event-channels");
    const bool use_split = cfg_.use_split_event_channels && split && wire::parse_flag(*split).value_or(false);
    auto t = svc_.evtchn->alloc_unbound(back_dom_);
    if (!t) return false;
    tx_port_ = rx_port_ = *t;
    ports_bound_ = true;
    if (use_split) {
        auto r = svc_.evtchn->alloc_unbound(back_dom_);
        if (!r) return false;
        rx_port_ = *r;
    }
    if (!write_keys()) return false;
    connected_ = true;
    return true;
}

bool netfront::grant_pages() {
    // Rings: zeroed and initialised before they are granted.
    if (!svc_.sharer->share_pages(back_dom_, ring_pages_, true)) {
        spdlog::error("netfront: cannot grant ring pages");
        return false;
    }
    rings_granted_ = true;
    tx_.emplace(ring_pages_[0].addr);
    rx_.emplace(ring_pages_[1].addr);
    tx_->init();
    rx_->init();
    std::vector<platform::shared_page> pages(cfg_.tx_buffers);
    if (!svc_.sharer->share_pages(back_dom_, pages, false)) return false;  // tx: backend only reads
    tx_bufs_.clear();
    tx_free_.clear();
    for (std::size_t i = 0; i < pages.size(); ++i) {
        tx_bufs_.push_back({pages[i], false});
        tx_free_.push_back(static_cast<std::uint16_t>(pages.size() - 1 - i));
    }
    pages.assign(cfg_.rx_buffers, {});
    if (!svc_.sharer->share_pages(back_dom_, pages, true)) return false;  // rx: backend writes
    rx_bufs_.clear();
    for (auto& p : pages) rx_bufs_.push_back({p, false});
    return true;
}

bool netfront::write_keys() {
    const bool split = rx_port_ != tx_port_;
    for (int attempt = 0; attempt < 16; ++attempt) {
        auto t = store_.begin();
        if (!t) return false;
        const auto w = [&](const char* k, const std::string& v) { return store_.write(front_path_ + "/" + k, v, *t); };
        bool ok = w("tx-ring-ref", std::to_string(ring_pages_[0].ref)) &&
                  w("rx-ring-ref", std::to_string(ring_pages_[1].ref)) && w("request-rx-copy", "1") &&
                  w("feature-rx-notify", "1") && w("feature-sg", "1");
        if (split)
            ok = ok && w("event-channel-tx", std::to_string(tx_port_)) &&
                 w("event-channel-rx", std::to_string(rx_port_));
        else
            ok = ok && w("event-channel", std::to_string(tx_port_));
        ok = ok && w("state", std::to_string(static_cast<int>(xenbus_state::connected)));
        if (!ok) {
            store_.abort(*t);
            return false;
        }
        if (store_.commit(*t)) {
            spdlog::info("netfront: frontend {} -> Connected (rings {}/{}, ports {}/{})", abi::to_string(state_),
                         ring_pages_[0].ref, ring_pages_[1].ref, tx_port_, rx_port_);
            state_ = xenbus_state::connected;
            return true;
        }
        if (errno != EAGAIN) return false;
    }
    return false;
}

void netfront::disconnect() {
    watch_port(false);
    if (ports_bound_) {
        svc_.evtchn->unbind(tx_port_);
        if (rx_port_ != tx_port_) svc_.evtchn->unbind(rx_port_);
        ports_bound_ = false;
    }
    if (connected_) spdlog::info("netfront: disconnected");
    connected_ = backend_connected_ = false;
    rx_in_chain_ = rx_extra_next_ = rx_bad_ = false;
    rx_len_ = rx_slots_ = 0;
}

void netfront::release_grants() {
    // Revoke only what the backend no longer maps. A page it still holds is
    // leaked, never reused (XSA-396), and counted.
    std::vector<platform::shared_page> pages;
    if (rings_granted_) pages.insert(pages.end(), std::begin(ring_pages_), std::end(ring_pages_));
    for (auto& b : tx_bufs_) pages.push_back(b.page);
    for (auto& b : rx_bufs_) pages.push_back(b.page);
    if (!pages.empty()) {
        std::vector<gnt_status> st(pages.size());
        const std::size_t done = svc_.sharer->unshare(pages, st);
        if (done != pages.size()) {
            leaked_pages_ += pages.size() - done;
            spdlog::error("netfront: backend still maps {} granted pages; leaking them", pages.size() - done);
        }
    }
    tx_.reset();
    rx_.reset();
    rings_granted_ = false;
    tx_bufs_.clear();
    rx_bufs_.clear();
    tx_free_.clear();
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
    started_ = false;
}

void netfront::fault(const char* why) {
    ++c_.peer_faults;
    spdlog::error("netfront: backend error: {}; disconnecting", why);
    disconnect();
    set_state(xenbus_state::closing);
}

nlohmann::json netfront::stats() const {
    return {{"path", front_path_},
            {"state", abi::to_string(state_)},
            {"connected", connected()},
            {"port", port_ ? port_->describe() : ""},
            {"granted_pages", svc_.sharer->shared_count()},
            {"event_channels", svc_.evtchn->bound_count()},
            {"leaked_pages", leaked_pages_},
            {"connects", connects_},
            {"queues", nlohmann::json::array({c_})}};
}

}  // namespace vifkit::core
