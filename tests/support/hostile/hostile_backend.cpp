#include "hostile_backend.hpp"

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "raw_index.hpp"

namespace vifkit::test {

namespace {
constexpr std::size_t mem_pages = 8;
constexpr std::size_t grant_entries = 16;

using raw::load;
using raw::store;
template <class Types>
std::byte* entry(ring::sring_header* h, std::uint32_t idx) {
    if (!h) throw std::logic_error("hostile_backend: ring not mapped");
    return reinterpret_cast<std::byte*>(h) + sizeof(ring::sring_header) +
           (idx & (Types::size - 1)) * sizeof(typename Types::entry);
}
template <class T, class Types>
T read_entry(ring::sring_header* h, std::uint32_t idx) {
    T v;
    std::memcpy(&v, entry<Types>(h, idx), sizeof v);
    return v;
}
template <class Types, class T>
void write_entry(ring::sring_header* h, std::uint32_t idx, const T& v) {
    std::memcpy(entry<Types>(h, idx), &v, sizeof v);
}
std::optional<std::uint32_t> wait_index(const std::uint32_t* idx, std::uint32_t at_least,
                                        std::chrono::milliseconds timeout) {
    if (!idx) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const std::uint32_t v = load(*idx);
        if (static_cast<std::int32_t>(v - at_least) >= 0) return v;
        if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}
}  // namespace

hostile_backend::hostile_backend(emu_env& env, domid_t self_id, domid_t guest_id, unsigned devid)
    : self(self_id), guest(guest_id),
      front_path("/local/domain/" + std::to_string(guest_id) + "/device/vif/" + std::to_string(devid)),
      back_path("/local/domain/" + std::to_string(self_id) + "/backend/vif/" + std::to_string(guest_id) + "/" +
                std::to_string(devid)),
      env_(env) {
    dom_ = emu::domain::attach(env.broker_sock, self_id, mem_pages, grant_entries);
    mapper_ = dom_->make_mapper();
    evtchn_ = dom_->make_event_channels();
}

hostile_backend::~hostile_backend() {
    unmap_all();
    evtchn_.reset();
    mapper_.reset();
    dom_.reset();
}

bool hostile_backend::attach_vif() {
    child c({bin_dir() + "/vifkit-attach", "--store", env_.xs_sock, "--guest", std::to_string(guest), "--backend",
             std::to_string(self)},
            env_.dir + "/attach.log");
    auto rc = c.wait(std::chrono::seconds(10));
    return rc && *rc == 0;
}

bool hostile_backend::write(const std::string& key, const std::string& value) {
    return env_.store().write(back_path + "/" + key, value);
}
bool hostile_backend::remove(const std::string& key) { return env_.store().rm(back_path + "/" + key); }
bool hostile_backend::remove_backend_dir() { return env_.store().rm(back_path); }

bool hostile_backend::write_features(const features& f) {
    bool ok = write("feature-rx-copy", "1") && write("feature-sg", "1");
    if (f.split) ok = ok && write("feature-split-event-channels", "1");
    if (f.ctrl_ring) ok = ok && write("feature-ctrl-ring", "1");
    if (f.max_queues) ok = ok && write("multi-queue-max-queues", *f.max_queues);
    return ok;
}

std::optional<std::string> hostile_backend::front(const std::string& key) { return env_.read(front_path + "/" + key); }

int hostile_backend::frontend_state() {
    auto v = front("state");
    if (!v) return -1;
    auto n = platform::store::parse_int(*v);
    return n ? static_cast<int>(*n) : -1;
}

bool hostile_backend::wait_frontend_state(int state, std::chrono::milliseconds timeout) {
    return env_.wait_value(front_path + "/state", std::to_string(state), timeout);
}

bool hostile_backend::map_one(grant_ref_t ref, platform::map_op& op) {
    op = {};
    op.ref = ref;
    mapper_->map(guest, std::span(&op, 1));
    if (op.status != gnt_status::okay) {
        op.addr = nullptr;
        return false;
    }
    return true;
}

std::optional<evtchn_port_t> hostile_backend::bind(const std::string& key) {
    auto v = env_.read(key);
    if (!v) return std::nullopt;
    auto n = platform::store::parse_int(*v);
    if (!n || *n < 0) return std::nullopt;
    return evtchn_->bind_interdomain(guest, static_cast<evtchn_port_t>(*n));
}

bool hostile_backend::map_rings(bool with_ctrl) {
    unmap_all();
    std::vector<std::string> dirs;
    if (auto n = front("multi-queue-num-queues")) {
        auto k = platform::store::parse_int(*n);
        if (!k || *k < 1 || *k > 64) return false;
        for (long long i = 0; i < *k; ++i) dirs.push_back(front_path + "/queue-" + std::to_string(i));
    } else {
        dirs.push_back(front_path);
    }
    for (const auto& d : dirs) {
        queue_map m;
        auto tref = env_.read(d + "/tx-ring-ref"), rref = env_.read(d + "/rx-ring-ref");
        if (!tref || !rref) return false;
        auto t = platform::store::parse_int(*tref), r = platform::store::parse_int(*rref);
        if (!t || !r) return false;
        const bool tx_ok = map_one(static_cast<grant_ref_t>(*t), m.tx_op);
        const bool rx_ok = map_one(static_cast<grant_ref_t>(*r), m.rx_op);
        m.tx = static_cast<ring::sring_header*>(m.tx_op.addr);
        m.rx = static_cast<ring::sring_header*>(m.rx_op.addr);
        if (env_.read(d + "/event-channel-tx")) {
            auto tp = bind(d + "/event-channel-tx");
            auto rp = bind(d + "/event-channel-rx");
            m.split = true;
            if (tp) m.tx_port = *tp;
            if (rp) m.rx_port = *rp;
            if (!tp || !rp) {
                if (tp) evtchn_->unbind(*tp);
                if (rp) evtchn_->unbind(*rp);
                m.tx_port = m.rx_port = 0;
            }
        } else if (auto p = bind(d + "/event-channel")) {
            m.tx_port = m.rx_port = *p;
        }
        q_.push_back(m);
        if (!tx_ok || !rx_ok || m.tx_port == 0) return false;
    }
    if (auto c = with_ctrl ? front("ctrl-ring-ref") : std::nullopt) {
        auto ref = platform::store::parse_int(*c);
        if (!ref || !map_one(static_cast<grant_ref_t>(*ref), ctrl_op_)) return false;
        ctrl_ = static_cast<ring::sring_header*>(ctrl_op_.addr);
        auto p = bind(front_path + "/event-channel-ctrl");
        if (!p) return false;
        ctrl_port_ = *p;
        ctrl_bound_ = true;
    }
    return true;
}

void hostile_backend::unmap_all() {
    std::vector<platform::map_op> ops;
    for (auto& m : q_) {
        for (auto* op : {&m.tx_op, &m.rx_op})
            if (op->addr) ops.push_back(*op);
        if (m.tx_port) evtchn_->unbind(m.tx_port);
        if (m.split && m.rx_port && m.rx_port != m.tx_port) evtchn_->unbind(m.rx_port);
    }
    q_.clear();
    if (ctrl_op_.addr) ops.push_back(ctrl_op_);
    ctrl_op_ = {};
    ctrl_ = nullptr;
    if (ctrl_bound_) evtchn_->unbind(ctrl_port_);
    ctrl_bound_ = false;
    if (!ops.empty()) mapper_->unmap(ops);
}

bool hostile_backend::connect(const features& f, bool with_ctrl) {
    if (!write_features(f) || !set_state(2)) return false;
    if (!wait_frontend_state(4)) return false;
    if (!map_rings(with_ctrl)) return false;
    return set_state(4);
}

bool hostile_backend::close() {
    unmap_all();
    if (!set_state(5)) return false;
    const bool front_closed = wait_frontend_state(6);
    return set_state(6) && front_closed;
}

std::size_t hostile_backend::mapped() const { return mapper_->mapped_count(); }
std::size_t hostile_backend::ports() const { return evtchn_->bound_count(); }

abi::tx_request hostile_backend::tx_request_at(std::uint32_t idx, unsigned q) const {
    return read_entry<abi::tx_request, ring::tx_ring_types>(q_.at(q).tx, idx);
}
abi::rx_request hostile_backend::rx_request_at(std::uint32_t idx, unsigned q) const {
    return read_entry<abi::rx_request, ring::rx_ring_types>(q_.at(q).rx, idx);
}
abi::ctrl_request hostile_backend::ctrl_request_at(std::uint32_t idx) const {
    return read_entry<abi::ctrl_request, ring::ctrl_ring_types>(ctrl_, idx);
}
void hostile_backend::put_tx_response(std::uint32_t idx, const abi::tx_response& r, unsigned q) {
    write_entry<ring::tx_ring_types>(q_.at(q).tx, idx, r);
}
void hostile_backend::put_rx_response(std::uint32_t idx, const abi::rx_response& r, unsigned q) {
    write_entry<ring::rx_ring_types>(q_.at(q).rx, idx, r);
}
void hostile_backend::put_rx_extra(std::uint32_t idx, const abi::extra_info& e, unsigned q) {
    write_entry<ring::rx_ring_types>(q_.at(q).rx, idx, e);
}
void hostile_backend::put_ctrl_response(std::uint32_t idx, const abi::ctrl_response& r) {
    write_entry<ring::ctrl_ring_types>(ctrl_, idx, r);
}
void hostile_backend::set_tx_rsp_prod(std::uint32_t v, unsigned q) { store(q_.at(q).tx->rsp_prod, v); }
void hostile_backend::set_rx_rsp_prod(std::uint32_t v, unsigned q) { store(q_.at(q).rx->rsp_prod, v); }
void hostile_backend::set_ctrl_rsp_prod(std::uint32_t v) {
    if (!ctrl_) throw std::logic_error("hostile_backend: no ctrl ring");
    store(ctrl_->rsp_prod, v);
}

void hostile_backend::notify(unsigned q) {
    const auto& m = q_.at(q);
    if (m.tx_port) evtchn_->notify(m.tx_port);
    if (m.rx_port && m.rx_port != m.tx_port) evtchn_->notify(m.rx_port);
}
void hostile_backend::notify_ctrl() {
    if (ctrl_bound_) evtchn_->notify(ctrl_port_);
}

std::optional<std::uint32_t> hostile_backend::wait_tx_req_prod(std::uint32_t at_least,
                                                               std::chrono::milliseconds timeout, unsigned q) const {
    return wait_index(&q_.at(q).tx->req_prod, at_least, timeout);
}
std::optional<std::uint32_t> hostile_backend::wait_rx_req_prod(std::uint32_t at_least,
                                                               std::chrono::milliseconds timeout, unsigned q) const {
    return wait_index(&q_.at(q).rx->req_prod, at_least, timeout);
}
bool hostile_backend::wait_tx_consumed(std::uint32_t rsp_prod, std::chrono::milliseconds timeout, unsigned q) const {
    return wait_index(&q_.at(q).tx->rsp_event, rsp_prod + 1, timeout).has_value();
}
std::optional<std::uint32_t> hostile_backend::wait_ctrl_req_prod(std::uint32_t at_least,
                                                                 std::chrono::milliseconds timeout) const {
    return ctrl_ ? wait_index(&ctrl_->req_prod, at_least, timeout) : std::nullopt;
}

bool hostile_backend::copy_to_front(grant_ref_t ref, std::uint16_t offset, std::span<const std::byte> data) {
    platform::copy_op op{};
    op.direction = platform::copy_op::dir::to_peer;
    op.ref = ref;
    op.offset = offset;
    op.len = static_cast<std::uint16_t>(data.size());
    op.local = const_cast<std::byte*>(data.data());
    mapper_->copy(guest, std::span(&op, 1));
    return op.status == gnt_status::okay;
}

bool hostile_backend::copy_from_front(grant_ref_t ref, std::uint16_t offset, std::span<std::byte> out) {
    platform::copy_op op{};
    op.direction = platform::copy_op::dir::from_peer;
    op.ref = ref;
    op.offset = offset;
    op.len = static_cast<std::uint16_t>(out.size());
    op.local = out.data();
    mapper_->copy(guest, std::span(&op, 1));
    return op.status == gnt_status::okay;
}

bool hostile_backend::deliver_rx(std::uint32_t idx, std::span<const std::byte> frame, unsigned q) {
    const abi::rx_request req = rx_request_at(idx, q);
    if (!copy_to_front(req.gref, 0, frame)) return false;
    abi::rx_response r{};
    r.id = req.id;
    r.offset = 0;
    r.flags = 0;
    r.status = static_cast<std::int16_t>(frame.size());
    put_rx_response(idx, r, q);
    set_rx_rsp_prod(idx + 1, q);
    notify(q);
    return true;
}

}  // namespace vifkit::test
