#include "hostile_frontend.hpp"

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace vifkit::test {

namespace {
constexpr std::size_t grant_entries = 256;

std::uint32_t load(const std::uint32_t& v) {
    return std::atomic_ref<std::uint32_t>(const_cast<std::uint32_t&>(v)).load(std::memory_order_acquire);
}
void store(std::uint32_t& v, std::uint32_t x) {
    std::atomic_ref<std::uint32_t>(v).store(x, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
}
template <class Entry>
Entry* slot_of(ring::sring_header* h, std::uint32_t idx, std::size_t entry_size) {
    auto* base = reinterpret_cast<std::byte*>(h) + sizeof(ring::sring_header);
    return reinterpret_cast<Entry*>(base + (idx & (256u - 1)) * entry_size);
}
}  // namespace

hostile_frontend::hostile_frontend(emu_env& env, domid_t domid, unsigned devid, std::size_t data_pages)
    : front_path("/local/domain/" + std::to_string(domid) + "/device/vif/" + std::to_string(devid)),
      back_path("/local/domain/0/backend/vif/" + std::to_string(domid) + "/" + std::to_string(devid)),
      env_(env), ndata_(data_pages) {
    dom_ = emu::domain::attach(env.broker_sock, domid, data_pages + 8, grant_entries);
    sharer_ = dom_->make_sharer();
    evtchn_ = dom_->make_event_channels();
}

hostile_frontend::~hostile_frontend() {
    if (sharer_ && !pages_.empty()) {
        std::vector<gnt_status> st(pages_.size());
        sharer_->unshare(pages_, st);  // a grant still mapped stays leaked: harmless here
    }
    evtchn_.reset();
    sharer_.reset();
    dom_.reset();
}

bool hostile_frontend::prepare(domid_t backend_domid) {
    if (prepared_) return true;
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

abi::tx_request* hostile_frontend::tx_slot(std::uint32_t idx) const {
    return slot_of<abi::tx_request>(tx_, idx, sizeof(ring::tx_ring_types::entry));
}
abi::rx_request* hostile_frontend::rx_slot(std::uint32_t idx) const {
    return slot_of<abi::rx_request>(rx_, idx, sizeof(ring::rx_ring_types::entry));
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

void hostile_frontend::notify() {
    if (prepared_) evtchn_->notify(port_);
}

std::vector<abi::tx_response> hostile_frontend::tx_responses() {
    std::vector<abi::tx_response> out;
    const std::uint32_t prod = load(tx_->rsp_prod);
    if (prod - tx_rsp_cons_ > ring::tx_ring_types::size) return out;  // nonsense from the backend
    while (tx_rsp_cons_ != prod) {
        abi::tx_response r;
        std::memcpy(&r, tx_slot(tx_rsp_cons_++), sizeof r);
        out.push_back(r);
    }
    return out;
}

std::vector<abi::tx_response> hostile_frontend::wait_tx_responses(std::size_t n, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (load(tx_->rsp_prod) - tx_rsp_cons_ < n && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return tx_responses();
}

std::byte* hostile_frontend::data_page(std::size_t i) const { return static_cast<std::byte*>(data_.at(i).addr); }
grant_ref_t hostile_frontend::data_ref(std::size_t i) const { return data_.at(i).ref; }
grant_ref_t hostile_frontend::ungranted_ref() const { return static_cast<grant_ref_t>(grant_entries - 3); }

}  // namespace vifkit::test
