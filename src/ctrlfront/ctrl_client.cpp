#include "vifkit/ctrlfront/ctrl_client.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace vifkit::ctrlfront {

namespace {

// Clears a flag when leaving scope (also if a callback throws).
struct flag_guard {
    bool& flag;
    explicit flag_guard(bool& f) : flag(f) { flag = true; }
    ~flag_guard() { flag = false; }
    flag_guard(const flag_guard&) = delete;
    flag_guard& operator=(const flag_guard&) = delete;
};

}  // namespace

ctrl_client::ctrl_client(void* ring_page) : ring_(ring_page) { ring_.init(); }

std::optional<std::uint16_t> ctrl_client::allocate_id() {
    // At most max_outstanding + ring_size ids are taken, so this ends quickly.
    for (std::uint32_t tries = 0; tries <= 0xFFFFu; ++tries) {
        const std::uint16_t id = next_id_++;
        if (table_.count(id) != 0) continue;
        if (std::find(retired_.begin(), retired_.end(), id) != retired_.end()) continue;
        return id;
    }
    return std::nullopt;
}

bool ctrl_client::send(std::uint16_t type, std::array<std::uint32_t, 3> data, callback cb,
                       std::chrono::milliseconds timeout) {
    if (broken_ || table_.size() >= max_outstanding || ring_.free_requests() == 0) return false;
    const auto id = allocate_id();
    if (!id) return false;
    abi::ctrl_request req{};
    req.id = *id;
    req.type = type;
    for (std::size_t i = 0; i < data.size(); ++i) req.data[i] = data[i];
    ring_.put_request(req);
    table_.emplace(*id, pending{type, clock::now() + timeout, std::move(cb)});
    ++counters_.sent;
    return true;
}

bool ctrl_client::flush() {
    pushed_ = ring_.req_prod_pvt();
    return ring_.push_requests();
}

bool ctrl_client::fault(const char* why) {
    if (!broken_) spdlog::error("ctrl ring: backend fault: {}; the ring is no longer used", why);
    broken_ = true;
    more_pending_ = false;
    return false;
}

bool ctrl_client::on_event() {
    if (broken_) return false;
    if (in_event_) return true;  // re-entered from a callback: the outer call goes on
    const flag_guard guard(in_event_);
    more_pending_ = false;
    std::uint32_t budget = batch_limit;
    for (;;) {
        const auto u = ring_.pending_responses();
        if (u.status == ring::ring_status::overflow) return fault("rsp_prod more than a ring ahead");
        // One response per published request: more is a backend inventing answers,
        // and would let rsp_cons run past our own producer index.
        if (u.count > pushed_ - ring_.rsp_cons()) return fault("more responses than requests");
        if (u.count == 0) {
            if (ring_.final_check_for_responses()) continue;
            return true;
        }
        for (std::uint32_t n = u.count; n > 0; --n) {
            if (budget == 0) {
                more_pending_ = true;
                return true;
            }
            --budget;
            handle(ring_.take_response());
            if (broken_) return false;
        }
    }
}

void ctrl_client::handle(const abi::ctrl_response& rsp) {
    auto it = table_.find(rsp.id);
    if (it == table_.end()) {
        if (take_retired(rsp.id)) {
            ++counters_.late_responses;
            return;
        }
        ++counters_.bad_responses;
        if (log_limit_.allow()) spdlog::warn("ctrl ring: response with unknown id {} ignored", rsp.id);
        return;
    }
    if (it->second.type != rsp.type) {
        ++counters_.bad_responses;
        if (log_limit_.allow())
            spdlog::warn("ctrl ring: response id {} has type {}, request had {}: ignored", rsp.id,
                         rsp.type, it->second.type);
        return;
    }
    callback cb = std::move(it->second.cb);
    table_.erase(it);
    ++counters_.completed;
    if (cb) cb(rsp);
}

bool ctrl_client::take_retired(std::uint16_t id) {
    const auto it = std::find(retired_.begin(), retired_.end(), id);
    if (it == retired_.end()) return false;
    retired_.erase(it);
    return true;
}

void ctrl_client::retire(std::uint16_t id) {
    if (retired_.size() >= ring_size) retired_.pop_front();
    retired_.push_back(id);
}

void ctrl_client::fail(std::uint16_t id, pending&& p, std::uint32_t status) {
    abi::ctrl_response rsp{};
    rsp.id = id;
    rsp.type = p.type;
    rsp.status = status;
    rsp.data = 0;
    if (p.cb) p.cb(rsp);
}

void ctrl_client::expire(clock::time_point now) {
    std::vector<std::pair<std::uint16_t, pending>> due;
    for (auto it = table_.begin(); it != table_.end();) {
        if (it->second.deadline <= now) {
            due.emplace_back(it->first, std::move(it->second));
            it = table_.erase(it);
        } else {
            ++it;
        }
    }
    std::sort(due.begin(), due.end(),
              [](const auto& a, const auto& b) { return a.second.deadline < b.second.deadline; });
    // Retire every id before any callback runs: a callback may send at once.
    for (const auto& d : due) retire(d.first);
    counters_.timeouts += due.size();
    if (!due.empty() && log_limit_.allow())
        spdlog::warn("ctrl ring: {} request(s) timed out (backend not answering)", due.size());
    for (auto& [id, p] : due) fail(id, std::move(p), local_status::timeout);
}

void ctrl_client::cancel_all() {
    std::vector<std::pair<std::uint16_t, pending>> all;
    all.reserve(table_.size());
    for (auto& [id, p] : table_) all.emplace_back(id, std::move(p));
    table_.clear();
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& a : all) retire(a.first);
    counters_.cancelled += all.size();
    for (auto& [id, p] : all) fail(id, std::move(p), local_status::cancelled);
}

std::optional<ctrl_client::clock::time_point> ctrl_client::next_deadline() const {
    std::optional<clock::time_point> best;
    for (const auto& [id, p] : table_)
        if (!best || p.deadline < *best) best = p.deadline;
    return best;
}

}  // namespace vifkit::ctrlfront
