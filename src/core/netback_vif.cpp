// Backend vif: handshake (netif-spec §5), ring mapping, teardown, stats.
// Data path: netback_tx.cpp (guest transmit) and netback_rx.cpp (guest receive).
#include "netback_vif.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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
    read_rate();
    apply_mtu();
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
        auto flag = [&](const char* key, bool on) { return ok && store_.write(back_path_ + "/" + key, on ? "1" : "0", *t); };
        ok = flag("feature-gso-tcpv4", cfg_.feature_gso_tcpv4);
        ok = flag("feature-gso-tcpv6", cfg_.feature_gso_tcpv6);
        ok = flag("feature-ipv6-csum-offload", cfg_.feature_ipv6_csum_offload);
        ok = flag("feature-multicast-control", cfg_.multicast_control);
        ok = flag("feature-dynamic-multicast-control", cfg_.multicast_control);
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

std::vector<std::pair<std::string, std::string>> netback_vif::watches() const {
    const std::string id = fmt::format(":{}:{}", front_dom_, devid_);
    std::vector<std::pair<std::string, std::string>> w{{front_path_ + "/state", "front" + id},
                                                       {back_path_ + "/rate", "rate" + id},
                                                       {back_path_ + "/mtu", "mtu" + id}};
    if (cfg_.multicast_control) w.emplace_back(front_path_ + "/request-multicast-control", "mcast" + id);
    return w;
}

void netback_vif::on_watch(std::string_view kind) {
    if (kind == "front") return on_frontend_changed();
    if (kind == "rate") return read_rate();
    if (kind == "mtu") return apply_mtu();
    if (kind == "mcast" && connected_) return read_mcast_request();  // dynamic multicast control
}

void netback_vif::read_frontend_features() {
    // Absent keys take the defaults of netif-spec §5.1; a value that is not
    // "0"/"1" counts as absent (and is logged).
    auto flag = [this](const char* key, bool dflt) {
        auto v = store_.read(front_path_ + "/" + key);
        if (!v) return dflt;
        auto f = wire::parse_flag(*v);
        if (!f && log_limit_.allow())
            spdlog::warn("vif{}.{}: ignoring frontend {}='{}' (not 0 or 1)", front_dom_, devid_, key, *v);
        return f.value_or(dflt);
    };
    frontend_sg_ = flag("feature-sg", false);
    front_.gso4 = flag("feature-gso-tcpv4", false);
    front_.gso6 = flag("feature-gso-tcpv6", false);
    front_.csum4 = !flag("feature-no-csum-offload", false);
    front_.csum6 = flag("feature-ipv6-csum-offload", false);
    front_.rx_notify = flag("feature-rx-notify", false);
    // GSO super-frames need several slots: only with feature-sg (Linux netback
    // drops the gso features without it, as it does for csum ones without csum).
    to_guest_.csum4 = front_.csum4;
    to_guest_.csum6 = front_.csum6;
    to_guest_.gso4 = front_.gso4 && frontend_sg_ && front_.csum4;
    to_guest_.gso6 = front_.gso6 && frontend_sg_ && front_.csum6;
    to_host_ = offload_accept::from_caps(port_->offload_caps());
    // Let the host kernel hand us only what the guest takes: it segments and
    // checksums the rest itself, cheaper than us doing it afterwards.
    if (int rc = port_->set_offload(to_guest_.caps()); rc < 0)
        spdlog::warn("vif{}.{}: cannot set host port offloads: {}", front_dom_, devid_, std::strerror(-rc));
    read_mcast_request();
}

void netback_vif::read_mcast_request() {
    auto v = store_.read(front_path_ + "/request-multicast-control");
    const bool on = cfg_.multicast_control && v && wire::parse_flag(*v).value_or(false);
    if (on != mcast_.enabled())
        spdlog::info("vif{}.{}: multicast filtering {}", front_dom_, devid_, on ? "on" : "off");
    mcast_.set_enabled(on);
}

void netback_vif::read_rate() {
    // B/rate = "bytes,usec" written by the toolstack (libxl vif rate=); absent
    // = unlimited, unparsable = unlimited and logged (it is not the guest's key).
    auto v = store_.read(back_path_ + "/rate");
    std::optional<wire::rate_limit> r;
    if (v && !v->empty()) {
        r = wire::parse_rate(*v);
        if (!r) spdlog::warn("vif{}.{}: ignoring unusable rate '{}' (want BYTES,USEC)", front_dom_, devid_, *v);
    }
    credit_.set(r);
    if (r) spdlog::info("vif{}.{}: guest transmit limited to {} bytes per {} us", front_dom_, devid_, r->bytes, r->usec);
    if (credit_blocked_ && credit_timer_) credit_timer_->arm_after(std::chrono::nanoseconds(0));
}

void netback_vif::apply_mtu() {
    // B/mtu (toolstack) sets the host interface's MTU; without feature-sg the
    // guest cannot take frames above one page, so the MTU is capped at 1500
    // (as Linux netback does).
    auto v = store_.read(back_path_ + "/mtu");
    if (!v || !port_) return;
    auto mtu = wire::parse_u32(*v);
    if (!mtu || *mtu < 68 || *mtu > abi::max_tx_size - abi::eth_hlen) {
        spdlog::warn("vif{}.{}: ignoring unusable mtu '{}'", front_dom_, devid_, *v);
        return;
    }
    unsigned want = *mtu;
    if (connected_ && !frontend_sg_ && want > 1500) want = 1500;
    const int rc = port_->set_mtu(static_cast<int>(want));
    if (rc == 0)
        spdlog::info("vif{}.{}: host port mtu {}", front_dom_, devid_, want);
    else if (rc != -EOPNOTSUPP)
        spdlog::warn("vif{}.{}: cannot set mtu {}: {}", front_dom_, devid_, want, std::strerror(-rc));
}

void netback_vif::update_carrier() {
    // B/carrier: "1" while connected with the host link up and no queue
    // stalled, else "0" (netif-spec §5.1; absent means up).
    const bool stalled = std::any_of(queues_.begin(), queues_.end(), [](const auto& q) { return q.rx_stalled; });
    const std::string v = connected_ && !disabled_ && port_ && port_->link_up() && !stalled ? "1" : "0";
    if (v == carrier_written_) return;
    if (store_.write(back_path_ + "/carrier", v)) {
        carrier_written_ = v;
        spdlog::info("vif{}.{}: carrier {}", front_dom_, devid_, v == "1" ? "on" : "off");
    }
}

void netback_vif::housekeeping() {
    // Once a second: rx stall detection and the carrier.
    if (!connected_ || disabled_) return;
    const auto now = std::chrono::steady_clock::now();
    for (auto& q : queues_) {
        if (q.rx_stalled) check_unstall(q);
        if (q.rx_stalled || q.rx_wait_since == std::chrono::steady_clock::time_point{}) continue;
        if (now - q.rx_wait_since < cfg_.rx_stall_timeout) continue;
        q.rx_stalled = true;
        ++q.c.rx_stalled;
        q.c.stall_drops += q.rx_backlog.size();
        spdlog::warn("vif{}.{}: queue {} stalled: no rx buffers for {} ms; dropping {} queued frames, carrier off",
                     front_dom_, devid_, &q - queues_.data(), cfg_.rx_stall_timeout.count(), q.rx_backlog.size());
        q.rx_backlog.clear();
        q.rx_wait_since = {};
    }
    update_carrier();
}

bool netback_vif::connect() {
    disabled_ = false;
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
    read_frontend_features();
    connected_ = true;
    apply_mtu();  // capped now that feature-sg is known
    if (!credit_timer_) credit_timer_.emplace(loop_, [this] {
        credit_blocked_ = false;
        for (std::size_t i = 0; i < queues_.size() && connected_ && !disabled_; ++i) process_tx(queues_[i]);
    });
    if (!rx_poll_timer_) rx_poll_timer_.emplace(loop_, [this] {
        for (std::size_t i = 0; i < queues_.size() && connected_ && !disabled_; ++i)
            if (!queues_[i].rx_backlog.empty()) process_rx(queues_[i]);
    });
    if (!housekeeping_timer_) housekeeping_timer_.emplace(loop_, [this] { housekeeping(); });
    housekeeping_timer_->arm_every(std::chrono::seconds(1));
    update_carrier();
    if (!port_watched_ && !cfg_.busy_poll && port_->fd() >= 0) {  // "null" has no fd
        loop_.add(port_->fd(), [this] { on_port_readable(); });
        port_watched_ = true;
    }
    spdlog::info("vif{}.{}: connected ({} queue{}, mode={}; frontend sg={} gso4={} gso6={} csum4={} csum6={} "
                 "rx-notify={} mcast={})",
                 front_dom_, devid_, queues_.size(), queues_.size() == 1 ? "" : "s", to_string(cfg_.mode),
                 frontend_sg_, front_.gso4, front_.gso6, front_.csum4, front_.csum6, front_.rx_notify,
                 mcast_.enabled());
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
        q.rx_wait_since = {};
        q.rx_stalled = false;
    }
    raw_.reset();
    for (auto* t : {&credit_timer_, &rx_poll_timer_, &housekeeping_timer_})
        if (*t) (*t)->cancel();
    credit_blocked_ = false;
    mcast_.clear();
    mcast_.set_enabled(false);
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
            {"carrier", carrier_written_ == "1"},
            {"multicast_filter", mcast_.enabled()},
            {"multicast_addresses", mcast_.size()},
            {"offloads_to_guest", {{"csum4", to_guest_.csum4}, {"csum6", to_guest_.csum6},
                                   {"gso4", to_guest_.gso4}, {"gso6", to_guest_.gso6}}},
            {"ctrl", handler_ ? handler_->stats() : nlohmann::json()}};
}

}  // namespace vifkit::core
