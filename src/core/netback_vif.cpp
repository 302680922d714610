// Backend vif: handshake (netif-spec §5), ring mapping, teardown, stats.
// Data path: netback_tx.cpp (guest transmit) and netback_rx.cpp (guest receive).
#include "netback_vif.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "vifkit/wire/xs_values.hpp"

namespace vifkit::core {

namespace {

std::string substitute(std::string t, domid_t dom, unsigned devid) {
    auto rep = [&t](const std::string& key, const std::string& val) {
        for (auto pos = t.find(key); pos != std::string::npos; pos = t.find(key, pos + val.size()))
            t.replace(pos, key.size(), val);
    };
    rep("{domid}", std::to_string(dom));
    rep("{devid}", std::to_string(devid));
    return t;
}

}  // namespace

netback_vif::netback_vif(util::event_loop& loop, platform::services& svc, platform::store& store,
                         const netback_config& cfg, domid_t front_dom, unsigned devid,
                         std::string backend_path)
    : loop_(loop), svc_(svc), store_(store), cfg_(cfg), front_dom_(front_dom), devid_(devid),
      back_path_(std::move(backend_path)) {
    queues_.resize(1);  // resized at connect to multi-queue-num-queues
    bufs_.resize(cfg_.batch);
    for (auto& b : bufs_) b.data = std::make_unique_for_overwrite<std::byte[]>(abi::max_tx_size + 1);
    copy_ops_.reserve(cfg_.batch * (wire::tx_max_chain + 1));
    direct_.reserve(cfg_.batch * (wire::tx_max_chain + 1));
    map_ops_.reserve(cfg_.batch * (wire::tx_max_chain + 1));
    batch_.reserve(cfg_.batch);
}

netback_vif::~netback_vif() { close(); }

bool netback_vif::probe() {
    auto fp = store_.read(back_path_ + "/frontend");
    if (!fp || fp->empty() || fp->size() > 256) {
        spdlog::warn("vif{}.{}: no usable {}/frontend", front_dom_, devid_, back_path_);
        return false;
    }
    front_path_ = *fp;
    if (!write_features()) return false;
    const std::string spec = substitute(cfg_.port_template, front_dom_, devid_);
    std::string err;
    port_ = io::open_port(spec, &err);
    if (port_ && !cfg_.pcap_template.empty())
        port_ = io::with_capture(std::move(port_), substitute(cfg_.pcap_template, front_dom_, devid_), &err);
    if (!port_) {
        spdlog::error("vif{}.{}: cannot open host port {}: {}", front_dom_, devid_, spec, err);
        return false;
    }
    spdlog::info("vif{}.{}: frontend {}, host port {}", front_dom_, devid_, front_path_, port_->describe());
    if (cfg_.write_hotplug_status) store_.write(back_path_ + "/hotplug-status", "connected");
    // A frontend already past Initialising belongs to an earlier instance of this
    // backend (restarted, or killed with its state left at Connected): its ring keys
    // name grants that instance mapped, with ring indices we do not know. Never
    // adopt them: ask it to tear down (Closing), and offer InitWait once it is
    // Closed; a Closed frontend reconnects on our InitWait.
    std::optional<xenbus_state> fs;
    if (auto v = store_.read(front_path_ + "/state")) fs = abi::parse_xenbus_state(*v);
    if (fs == xenbus_state::connected || fs == xenbus_state::initialised || fs == xenbus_state::closing) {
        spdlog::info("vif{}.{}: frontend is {} from an earlier backend; asking it to reconnect", front_dom_,
                     devid_, abi::to_string(*fs));
        restart_ = restart::wait_closed;
        set_state(xenbus_state::closing);
        return true;
    }
    if (fs == xenbus_state::closed) restart_ = restart::wait_reconnect;
    set_state(xenbus_state::init_wait);
    return true;
}

bool netback_vif::write_features() {
    // One transaction, before InitWait (netif-spec §5.1); retry on EAGAIN.
    for (int attempt = 0; attempt < 16; ++attempt) {
        auto t = store_.begin();
        if (!t) return false;
        bool ok = store_.write(back_path_ + "/feature-rx-copy", "1", *t) &&
                  store_.write(back_path_ + "/feature-rx-flip", "0", *t) &&
                  store_.write(back_path_ + "/feature-sg", cfg_.feature_sg ? "1" : "0", *t) &&
                  store_.write(back_path_ + "/feature-split-event-channels",
                               cfg_.split_event_channels ? "1" : "0", *t);
        if (ok && cfg_.ctrl_ring) ok = store_.write(back_path_ + "/feature-ctrl-ring", "1", *t);
        if (ok && cfg_.max_queues > 1)
            ok = store_.write(back_path_ + "/multi-queue-max-queues", std::to_string(cfg_.max_queues), *t);
        if (!ok) {
            store_.abort(*t);
            return false;
        }
        if (store_.commit(*t)) return true;
        if (errno != EAGAIN) return false;
    }
    return false;
}

void netback_vif::set_state(xenbus_state s) {
    if (state_ == s) return;
    spdlog::info("vif{}.{}: backend {} -> {}", front_dom_, devid_, abi::to_string(state_), abi::to_string(s));
    state_ = s;
    store_.write(back_path_ + "/state", std::to_string(static_cast<int>(s)));
}

void netback_vif::on_frontend_changed() {
    std::optional<xenbus_state> fs;
    if (auto v = store_.read(front_path_ + "/state")) fs = abi::parse_xenbus_state(*v);
    if (restart_ != restart::none) {  // see probe()
        if (fs == xenbus_state::closed) {
            if (restart_ == restart::wait_closed) {
                set_state(xenbus_state::closed);
                set_state(xenbus_state::init_wait);
                restart_ = restart::wait_reconnect;
            }
            return;  // it reconnects on our InitWait
        }
        if (restart_ == restart::wait_closed &&
            (fs == xenbus_state::connected || fs == xenbus_state::initialised || fs == xenbus_state::closing))
            return;  // still on its old rings
        restart_ = restart::none;  // Initialising, Connected anew, gone...: the usual state machine
    }
    const fsm_step st = backend_on_frontend(state_, fs, connected_);
    if (st.action == fsm_action::fatal) {
        // A state netif does not use (InitWait, Reconfiguring...): a peer fault.
        ++queues_[0].c.peer_faults;
        spdlog::error("vif{}.{}: frontend state '{}' is invalid; closing", front_dom_, devid_,
                      store_.read(front_path_ + "/state").value_or(""));
    }
    if (st.action == fsm_action::disconnect || st.action == fsm_action::fatal) disconnect();
    for (std::uint8_t i = 0; i < st.count; ++i) {
        if (st.path[i] == xenbus_state::connected && st.action == fsm_action::connect) {
            if (!connect()) {
                // Missing or bad frontend keys, rings that cannot be mapped...:
                // counted as a peer fault (the reason was logged by connect()).
                ++queues_[0].c.peer_faults;
                disconnect();
                set_state(xenbus_state::closing);  // xenbus_dev_fatal
                return;
            }
        }
        set_state(st.path[i]);
    }
}

bool netback_vif::connect() {
    disabled_ = false;
    auto sg = store_.read(front_path_ + "/feature-sg");
    frontend_sg_ = sg && wire::parse_flag(*sg).value_or(false);
    auto rxcopy = store_.read(front_path_ + "/request-rx-copy");
    if (!rxcopy || !wire::parse_flag(*rxcopy).value_or(false)) {
        spdlog::error("vif{}.{}: frontend does not request rx-copy (flip mode is gone)", front_dom_, devid_);
        return false;
    }
    // multi-queue-num-queues: absent = 1; 0, above our maximum or not a number
    // is refused (Linux makes it fatal for the device).
    unsigned nq = 1;
    if (auto v = store_.read(front_path_ + "/multi-queue-num-queues")) {
        auto n = wire::parse_u32(*v);
        if (!n || *n == 0 || *n > std::max(1u, cfg_.max_queues)) {
            spdlog::error("vif{}.{}: refusing multi-queue-num-queues '{}' (max {})", front_dom_, devid_, *v,
                          std::max(1u, cfg_.max_queues));
            return false;
        }
        nq = *n;
    }
    queues_.resize(nq);
    for (std::size_t i = 0; i < queues_.size(); ++i) {
        // One queue: keys directly under F; several: only under F/queue-N (netif-spec §5.1).
        const std::string qpath = nq == 1 ? front_path_ : fmt::format("{}/queue-{}", front_path_, i);
        if (!connect_queue(queues_[i], qpath)) return false;
    }
    if (!connect_ctrl()) return false;
    if (cfg_.mode == tx_mode::raw) {
        raw_ = svc_.mapper->open_foreign(front_dom_);
        if (!raw_) {
            spdlog::error("vif{}.{}: raw mode: cannot map the frontend's memory (emulated platform only)",
                          front_dom_, devid_);
            return false;
        }
    }
    for (auto& q : queues_) q.rx_backlog.reset(cfg_.rx_backlog_bytes, rx_backlog_frames, abi::max_tx_size + 1);
    connected_ = true;
    if (!port_watched_ && !cfg_.busy_poll && port_->fd() >= 0) {  // "null" has no fd
        loop_.add(port_->fd(), [this] { on_port_readable(); });
        port_watched_ = true;
    }
    spdlog::info("vif{}.{}: connected ({} queue{}, sg={}, mode={})", front_dom_, devid_, queues_.size(),
                 queues_.size() == 1 ? "" : "s", frontend_sg_, to_string(cfg_.mode));
    return true;
}

bool netback_vif::connect_queue(backend_queue& q, const std::string& qpath) {
    auto txr = store_.read(qpath + "/tx-ring-ref");
    auto rxr = store_.read(qpath + "/rx-ring-ref");
    auto txref = txr ? wire::parse_u32(*txr) : std::nullopt;
    auto rxref = rxr ? wire::parse_u32(*rxr) : std::nullopt;
    if (!txref || !rxref) {
        spdlog::error("vif{}.{}: missing or bad ring refs under {}", front_dom_, devid_, qpath);
        return false;
    }
    std::optional<std::uint32_t> ptx, prx;
    if (auto single = store_.read(qpath + "/event-channel")) {
        ptx = prx = wire::parse_u32(*single);
    } else if (cfg_.split_event_channels) {
        auto a = store_.read(qpath + "/event-channel-tx");
        auto b = store_.read(qpath + "/event-channel-rx");
        if (a && b) {
            ptx = wire::parse_u32(*a);
            prx = wire::parse_u32(*b);
        }
    }
    if (!ptx || !prx) {
        spdlog::error("vif{}.{}: missing or bad event channel under {}", front_dom_, devid_, qpath);
        return false;
    }
    platform::map_op ops[2];
    ops[0].ref = *txref;
    ops[1].ref = *rxref;
    svc_.mapper->map(front_dom_, ops);
    q.c.grant_maps += 2;
    q.tx_ring_map = ops[0];
    q.rx_ring_map = ops[1];
    if (ops[0].status != gnt_status::okay || ops[1].status != gnt_status::okay) {
        spdlog::error("vif{}.{}: cannot map rings: tx {}, rx {}", front_dom_, devid_, to_string(ops[0].status),
                      to_string(ops[1].status));
        return false;
    }
    q.tx.emplace(ops[0].addr);
    q.rx.emplace(ops[1].addr);
    if (q.tx->check_attach() != ring::ring_status::ok || q.rx->check_attach() != ring::ring_status::ok) {
        spdlog::error("vif{}.{}: ring indices inconsistent at attach (req_prod - rsp_prod > size)", front_dom_,
                      devid_);
        return false;  // counted once, as a peer fault, by on_frontend_changed()
    }
    auto t = svc_.evtchn->bind_interdomain(front_dom_, *ptx);
    if (!t) {
        spdlog::error("vif{}.{}: cannot bind event channel {}", front_dom_, devid_, *ptx);
        return false;
    }
    q.tx_port = q.rx_port = *t;
    q.ports_bound = true;
    if (*prx != *ptx) {
        auto r = svc_.evtchn->bind_interdomain(front_dom_, *prx);
        if (!r) {
            spdlog::error("vif{}.{}: cannot bind event channel {}", front_dom_, devid_, *prx);
            return false;
        }
        q.rx_port = *r;
    }
    q.tx_window.clear();
    q.tx_window.reserve(ring::tx_ring_types::size);
    return true;
}

void netback_vif::disconnect() {
    if (port_watched_) {
        loop_.remove(port_->fd());
        port_watched_ = false;
    }
    disconnect_ctrl();
    for (auto& q : queues_) {
        if (q.ports_bound) {
            svc_.evtchn->unbind(q.tx_port);
            if (q.rx_port != q.tx_port) svc_.evtchn->unbind(q.rx_port);
            q.ports_bound = false;
        }
        q.tx.reset();
        q.rx.reset();
        platform::map_op ops[2];
        std::size_t n = 0;
        if (q.tx_ring_map.status == gnt_status::okay) ops[n++] = q.tx_ring_map;
        if (q.rx_ring_map.status == gnt_status::okay) ops[n++] = q.rx_ring_map;
        if (n) {
            svc_.mapper->unmap(std::span(ops, n));
            q.c.grant_unmaps += n;
        }
        q.tx_ring_map = {};
        q.rx_ring_map = {};
        q.tx_window.clear();
        q.rx_backlog.release();
    }
    raw_.reset();
    if (connected_) spdlog::info("vif{}.{}: disconnected", front_dom_, devid_);
    connected_ = false;
}

void netback_vif::close() {
    disconnect();
    if (state_ != xenbus_state::closed) set_state(xenbus_state::closed);
}

void netback_vif::fatal(backend_queue& q, const char* why) {
    // Hostile or broken frontend: disable this vif only (two-tier verdicts,
    // style habit 4). Teardown happens here, in a safe context (XSA-90).
    ++q.c.peer_faults;
    spdlog::error("vif{}.{}: fatal frontend error: {}; disabling vif", front_dom_, devid_, why);
    disabled_ = true;
    disconnect();
    set_state(xenbus_state::closing);
}

bool netback_vif::owns_port(evtchn_port_t p) const {
    if (ctrl_bound_ && ctrl_port_ == p) return true;
    for (const auto& q : queues_)
        if (q.ports_bound && (q.tx_port == p || q.rx_port == p)) return true;
    return false;
}

void netback_vif::on_event(evtchn_port_t port) {
    if (ctrl_bound_ && port == ctrl_port_ && connected_ && !disabled_) process_ctrl();
    for (auto& q : queues_) {
        if (!connected_ || disabled_) return;
        if (!q.ports_bound || (q.tx_port != port && q.rx_port != port)) continue;
        ++q.c.events_received;
        if (q.tx_port == port) process_tx(q);
        if (connected_ && q.rx_port == port) process_rx(q);
    }
}

bool netback_vif::poll() {
    if (!connected_ || disabled_) return false;
    // Like event mode, leave the host port alone while a backlog is full: the
    // port's own queue holds (or drops) the rest, at no cost to us.
    const bool full = std::any_of(queues_.begin(), queues_.end(), [this](const auto& x) { return backlog_full(x); });
    bool work = !full && pull_from_port() > 0;
    for (auto& q : queues_) {
        if (!connected_ || disabled_) return work;
        const auto before = q.tx->req_cons();
        process_tx(q);
        if (!connected_ || disabled_) return work;
        work = work || q.tx->req_cons() != before;
        if (!q.rx_backlog.empty()) {
            const auto rx_before = q.rx->req_cons();
            process_rx(q);
            work = work || (connected_ && q.rx->req_cons() != rx_before);
        }
    }
    return work;
}

void netback_vif::notify(backend_queue& q, evtchn_port_t port) {
    if (svc_.evtchn->notify(port) == 0) ++q.c.notifies_sent;
}

nlohmann::json netback_vif::stats() const {
    nlohmann::json qs = nlohmann::json::array();
    for (const auto& q : queues_) qs.push_back(q.c);
    return {{"domid", front_dom_},
            {"devid", devid_},
            {"state", abi::to_string(state_)},
            {"connected", connected_},
            {"disabled", disabled_},
            {"port", port_ ? port_->describe() : ""},
            {"queues", qs},
            {"ctrl_ring", ctrl_.has_value()},
            {"ctrl", handler_ ? handler_->stats() : nlohmann::json()}};
}

}  // namespace vifkit::core
