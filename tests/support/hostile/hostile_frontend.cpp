#include "hostile_frontend.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "raw_index.hpp"

namespace vifkit::test {

namespace {
constexpr std::size_t grant_entries = 256;

using raw::load;
using raw::store;
template <class Types>
typename Types::request* slot_of(ring::sring_header* h, std::uint32_t idx) {
    auto* base = reinterpret_cast<std::byte*>(h) + sizeof(ring::sring_header);
    return reinterpret_cast<typename Types::request*>(base + (idx & (Types::size - 1)) * sizeof(typename Types::entry));
}
// Responses [cons, rsp_prod) of a ring, consumed in order (read once each).
template <class Types>
std::vector<typename Types::response> take_responses(ring::sring_header* h, std::uint32_t& cons) {
    std::vector<typename Types::response> out;
    const std::uint32_t prod = load(h->rsp_prod);
    if (prod - cons > Types::size) return out;  // nonsense from the backend
    while (cons != prod) {
        typename Types::response r;
        std::memcpy(&r, slot_of<Types>(h, cons++), sizeof r);
        out.push_back(r);
    }
    return out;
}
bool wait_rsp(ring::sring_header* h, std::uint32_t cons, std::size_t n, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (load(h->rsp_prod) - cons < n) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}
}  // namespace

hostile_frontend::hostile_frontend(emu_env& env, domid_t domid, unsigned devid, std::size_t data_pages)
    : front_path("/local/domain/" + std::to_string(domid) + "/device/vif/" + std::to_string(devid)),
      back_path("/local/domain/0/backend/vif/" + std::to_string(domid) + "/" + std::to_string(devid)),
      env_(env), ndata_(data_pages) {
    dom_ = emu::domain::attach(env.broker_sock, domid, data_pages + 24, grant_entries);
    sharer_ = dom_->make_sharer();
    evtchn_ = dom_->make_event_channels();
}

hostile_frontend::~hostile_frontend() {
    if (sharer_ && !pages_.empty()) {
        std::vector<gnt_status> st(pages_.size());
        sharer_->unshare(pages_, st);  // a grant still mapped stays leaked: harmless here
    }
    if (sharer_) {
        std::vector<platform::shared_page> rest = extra_;
        if (ctrl_page_.addr) rest.push_back(ctrl_page_);
        std::vector<gnt_status> st(rest.size());
        sharer_->unshare(rest, st);
    }
    evtchn_.reset();
    sharer_.reset();
    dom_.reset();
}

bool hostile_frontend::prepare(domid_t backend_domid) {
    if (prepared_) return true;
    backend_ = backend_domid;
    pages_.resize(2 + ndata_);
    if (!sharer_->share_pages(backend_domid, pages_, true)) {
        pages_.clear();
        return false;
    }
    tx_ = static_cast<ring::sring_header*>(pages_[0].addr);
    rx_ = static_cast<ring::sring_header*>(pages_[1].addr);
    for (auto* h : {tx_, rx_}) {
        std::memset(static_cast<void*>(h), 0, ring::ring_page_size);
        h->req_event = 1;
        h->rsp_event = 1;
    }
    data_.assign(pages_.begin() + 2, pages_.end());
    auto p = evtchn_->alloc_unbound(backend_domid);
    if (!p) return false;
    port_ = *p;
    if (want_ctrl_) {
        if (!sharer_->share_pages(backend_domid, std::span(&ctrl_page_, 1), true)) return false;
        ctrl_ = static_cast<ring::sring_header*>(ctrl_page_.addr);
        std::memset(static_cast<void*>(ctrl_), 0, ring::ring_page_size);
        ctrl_->req_event = 1;
        ctrl_->rsp_event = 1;
        auto c = evtchn_->alloc_unbound(backend_domid);
        if (!c) return false;
        ctrl_port_ = *c;
    }
    prepared_ = true;
    return true;
}

bool hostile_frontend::write_keys(bool ring_refs) {
    auto& s = env_.store();
    bool ok = s.write(front_path + "/request-rx-copy", "1") && s.write(front_path + "/feature-sg", "1") &&
              s.write(front_path + "/feature-rx-notify", "1") &&
              s.write(front_path + "/event-channel", std::to_string(port_));
    if (ok && ring_refs)
        ok = s.write(front_path + "/tx-ring-ref", std::to_string(pages_[0].ref)) &&
             s.write(front_path + "/rx-ring-ref", std::to_string(pages_[1].ref));
    if (ok && ctrl_)
        ok = s.write(front_path + "/ctrl-ring-ref", std::to_string(ctrl_page_.ref)) &&
             s.write(front_path + "/event-channel-ctrl", std::to_string(ctrl_port_));
    return ok;
}

bool hostile_frontend::set_state(int state) { return env_.store().write(front_path + "/state", std::to_string(state)); }

int hostile_frontend::backend_state() {
    auto v = env_.read(back_path + "/state");
    if (!v) return -1;
    try {
        return std::stoi(*v);
    } catch (const std::exception&) {
        return -1;
    }
}

bool hostile_frontend::wait_backend_state(int state, std::chrono::milliseconds timeout) {
    return env_.wait_value(back_path + "/state", std::to_string(state), timeout);
}

bool hostile_frontend::connect(domid_t backend_domid) {
    if (!wait_backend_state(2)) return false;
    if (!prepare(backend_domid) || !write_keys()) return false;
    if (!set_state(4)) return false;
    return wait_backend_state(4);
}

bool hostile_frontend::close() {
    if (!set_state(6)) return false;
    return wait_backend_state(6);
}

abi::tx_request* hostile_frontend::tx_slot(std::uint32_t idx) const { return slot_of<ring::tx_ring_types>(tx_, idx); }
abi::rx_request* hostile_frontend::rx_slot(std::uint32_t idx) const { return slot_of<ring::rx_ring_types>(rx_, idx); }
abi::ctrl_request* hostile_frontend::ctrl_slot(std::uint32_t idx) const {
    return slot_of<ring::ctrl_ring_types>(ctrl_, idx);
}

void hostile_frontend::push_tx(std::span<const abi::tx_request> reqs) {
    std::uint32_t prod = load(tx_->req_prod);
    for (const auto& r : reqs) std::memcpy(tx_slot(prod++), &r, sizeof r);
    store(tx_->req_prod, prod);
    notify();
}

void hostile_frontend::set_req_prod(std::uint32_t v) {
    store(tx_->req_prod, v);
    notify();
}

void hostile_frontend::post_rx(unsigned n) {
    std::uint32_t prod = load(rx_->req_prod);
    for (unsigned i = 0; i < n; ++i, ++prod) {
        abi::rx_request r{};
        r.id = static_cast<std::uint16_t>(prod & 255u);
        r.gref = data_[data_.size() - 1 - (i % data_.size())].ref;
        std::memcpy(rx_slot(prod), &r, sizeof r);
    }
    store(rx_->req_prod, prod);
    notify();
}

void hostile_frontend::push_rx(std::span<const abi::rx_request> reqs) {
    std::uint32_t prod = load(rx_->req_prod);
    for (const auto& r : reqs) std::memcpy(rx_slot(prod++), &r, sizeof r);
    store(rx_->req_prod, prod);
    notify();
}

void hostile_frontend::set_rx_req_prod(std::uint32_t v) {
    store(rx_->req_prod, v);
    notify();
}

void hostile_frontend::notify() {
    if (prepared_) evtchn_->notify(port_);
}

std::vector<abi::tx_response> hostile_frontend::tx_responses() {
    return take_responses<ring::tx_ring_types>(tx_, tx_rsp_cons_);
}

std::vector<abi::tx_response> hostile_frontend::wait_tx_responses(std::size_t n, std::chrono::milliseconds timeout) {
    wait_rsp(tx_, tx_rsp_cons_, n, timeout);
    return tx_responses();
}

std::vector<abi::rx_response> hostile_frontend::rx_responses() {
    return take_responses<ring::rx_ring_types>(rx_, rx_rsp_cons_);
}

std::vector<abi::rx_response> hostile_frontend::wait_rx_responses(std::size_t n, std::chrono::milliseconds timeout) {
    wait_rsp(rx_, rx_rsp_cons_, n, timeout);
    return rx_responses();
}

void hostile_frontend::push_ctrl(std::span<const abi::ctrl_request> reqs) {
    std::uint32_t prod = load(ctrl_->req_prod);
    for (const auto& r : reqs) std::memcpy(ctrl_slot(prod++), &r, sizeof r);
    store(ctrl_->req_prod, prod);
    notify_ctrl();
}

void hostile_frontend::set_ctrl_req_prod(std::uint32_t v) {
    store(ctrl_->req_prod, v);
    notify_ctrl();
}

void hostile_frontend::notify_ctrl() {
    if (prepared_ && ctrl_) evtchn_->notify(ctrl_port_);
}

std::vector<abi::ctrl_response> hostile_frontend::ctrl_responses() {
    return take_responses<ring::ctrl_ring_types>(ctrl_, ctrl_rsp_cons_);
}

std::vector<abi::ctrl_response> hostile_frontend::wait_ctrl_responses(std::size_t n,
                                                                      std::chrono::milliseconds timeout) {
    wait_rsp(ctrl_, ctrl_rsp_cons_, n, timeout);
    return ctrl_responses();
}

std::optional<abi::ctrl_response> hostile_frontend::ctrl_call(std::uint16_t type, std::uint32_t d0,
                                                              std::uint32_t d1, std::uint32_t d2) {
    if (!ctrl_) return std::nullopt;
    abi::ctrl_request r{};
    r.id = ctrl_next_id_++;
    r.type = type;
    r.data[0] = d0;
    r.data[1] = d1;
    r.data[2] = d2;
    push_ctrl(std::span(&r, 1));
    auto rsps = wait_ctrl_responses(1);
    if (rsps.size() != 1 || rsps[0].id != r.id) return std::nullopt;
    return rsps[0];
}

std::optional<platform::shared_page> hostile_frontend::share_extra(bool writable, std::optional<domid_t> peer) {
    platform::shared_page p;
    if (!sharer_->share_pages(peer.value_or(backend_), std::span(&p, 1), writable)) return std::nullopt;
    extra_.push_back(p);
    return p;
}

gnt_status hostile_frontend::revoke(grant_ref_t ref) {
    auto match = [ref](const platform::shared_page& p) { return p.ref == ref; };
    platform::shared_page page{};
    if (auto it = std::find_if(pages_.begin(), pages_.end(), match); it != pages_.end()) page = *it;
    else if (auto e = std::find_if(extra_.begin(), extra_.end(), match); e != extra_.end()) page = *e;
    else if (ctrl_page_.addr && ctrl_page_.ref == ref) page = ctrl_page_;
    else return gnt_status::bad_gntref;
    gnt_status st = gnt_status::general_error;
    sharer_->unshare(std::span(&page, 1), std::span(&st, 1));
    if (st == gnt_status::okay) std::erase_if(extra_, match);
    return st;
}

std::byte* hostile_frontend::data_page(std::size_t i) const { return static_cast<std::byte*>(data_.at(i).addr); }
grant_ref_t hostile_frontend::data_ref(std::size_t i) const { return data_.at(i).ref; }
grant_ref_t hostile_frontend::ungranted_ref() const { return static_cast<grant_ref_t>(grant_entries - 3); }

}  // namespace vifkit::test
