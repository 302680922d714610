// Frontend data path. tx: frames from the guest port are copied into pages of
// the read-only tx pool; rx: the writable rx pool is posted and recycled.
// Every backend response is copied once and validated before use
// (netif-spec §4.4 frontend checks; XSA-391 event storms: bounded work).
#include <algorithm>
#include <cstring>

#include "vifkit/core/netfront.hpp"

namespace vifkit::core {

namespace {
constexpr int max_responses_per_event = 4 * 256;
constexpr unsigned max_rx_slots = abi::nr_slots_min + 1;
}  // namespace

void netfront::notify(evtchn_port_t port) {
    if (svc_.evtchn->notify(port) == 0) ++c_.notifies_sent;
}

void netfront::watch_port(bool on) {
    if (on == port_watched_ || !port_) return;
    if (on)
        loop_.add(port_->fd(), [this] { on_port_readable(); });
    else
        loop_.remove(port_->fd());
    port_watched_ = on;
}

void netfront::post_rx_buffers() {
    if (!rx_) return;
    unsigned posted = 0;
    for (std::size_t i = 0; i < rx_bufs_.size() && rx_->free_requests() > 0; ++i) {
        auto& b = rx_bufs_[i];
        if (b.in_flight) continue;
        rx_->put_request({static_cast<std::uint16_t>(i), 0, b.page.ref});
        b.in_flight = true;
        ++posted;
    }
    if (posted && rx_->push_requests()) notify(rx_port_);  // feature-rx-notify
    if (backend_connected_) watch_port(true);
}

void netfront::on_event_channel() {
    for (int i = 0; i < 64; ++i) {  // bounded per wake-up
        auto port = svc_.evtchn->pending();
        if (!port) break;
        ++c_.events_received;
        if (connected_ && (*port == tx_port_ || *port == rx_port_)) {
            process_tx_responses();
            if (connected_) process_rx_responses();
        }
        svc_.evtchn->unmask(*port);
    }
}

void netfront::process_tx_responses() {
    for (int n = 0; n < max_responses_per_event && tx_;) {
        const auto u = tx_->pending_responses();
        if (u.status == ring::ring_status::overflow) return fault("tx rsp_prod beyond the ring");
        for (std::uint32_t i = 0; i < u.count; ++i, ++n) {
            const abi::tx_response r = tx_->take_response();
            if (r.status == abi::rsp::null_) continue;  // answer to an extra slot
            if (r.id >= tx_bufs_.size() || !tx_bufs_[r.id].in_flight) {
                ++c_.bad_responses;
                if (log_limit_.allow()) spdlog::warn("netfront: tx response with unknown id {}", r.id);
                continue;
            }
            tx_bufs_[r.id].in_flight = false;
            tx_free_.push_back(r.id);
            if (r.status != abi::rsp::okay) ++c_.tx_errors;
        }
        if (!tx_->final_check_for_responses()) break;
    }
    if (!tx_free_.empty() && backend_connected_) watch_port(true);
}

void netfront::take_rx_response(const abi::rx_response& r) {
    if (r.id >= rx_bufs_.size() || !rx_bufs_[r.id].in_flight) {
        ++c_.bad_responses;  // wrong slot / unknown id: never touch that buffer
        rx_bad_ = true;
        if (log_limit_.allow()) spdlog::warn("netfront: rx response with unknown id {}", r.id);
        return;
    }
    auto& b = rx_bufs_[r.id];
    b.in_flight = false;  // recycled by post_rx_buffers()
    if (rx_extra_next_) {
        // An extra_info slot (GSO/hash): its payload is not used by this frontend.
        abi::extra_info e;
        std::memcpy(&e, &r, sizeof e);
        rx_extra_next_ = (e.flags & abi::extra_flag::more) != 0;
        if (!rx_in_chain_ && !rx_extra_next_) finish_rx_chain();
        return;
    }
    const bool first = !rx_in_chain_;
    if (first && (r.flags & abi::rxf::extra_info)) rx_extra_next_ = true;
    rx_in_chain_ = (r.flags & abi::rxf::more_data) != 0;
    ++rx_slots_;
    if (r.status < 0 || static_cast<std::uint32_t>(r.offset) + static_cast<std::uint16_t>(r.status) > page_size ||
        rx_slots_ > max_rx_slots) {
        rx_bad_ = true;
    } else if (r.status > 0 && rx_len_ + static_cast<std::uint32_t>(r.status) <= rx_frame_.size()) {
        std::memcpy(rx_frame_.data() + rx_len_, static_cast<const std::byte*>(b.page.addr) + r.offset,
                    static_cast<std::size_t>(r.status));
        rx_len_ += static_cast<std::uint32_t>(r.status);
    } else {
        rx_bad_ = true;
    }
    if (!rx_in_chain_ && !rx_extra_next_) finish_rx_chain();
}

void netfront::finish_rx_chain() {
    if (rx_bad_ || rx_len_ < abi::eth_hlen) {
        ++c_.rx_errors;
    } else if (port_->send(std::span(rx_frame_.data(), rx_len_))) {
        ++c_.rx_packets;
        c_.rx_bytes += rx_len_;
    } else {
        ++c_.rx_drops;
    }
    rx_len_ = rx_slots_ = 0;
    rx_bad_ = false;
}

void netfront::process_rx_responses() {
    for (int n = 0; n < max_responses_per_event && rx_;) {
        const auto u = rx_->pending_responses();
        if (u.status == ring::ring_status::overflow) return fault("rx rsp_prod beyond the ring");
        for (std::uint32_t i = 0; i < u.count; ++i, ++n) take_rx_response(rx_->take_response());
        post_rx_buffers();
        if (!rx_ || !rx_->final_check_for_responses()) break;
    }
}

bool netfront::send_frame(std::span<const std::byte> frame) {
    const std::size_t len = frame.size();
    const unsigned slots = static_cast<unsigned>(std::max<std::size_t>(1, (len + page_size - 1) / page_size));
    if (slots > 1 && (!backend_sg_ || slots > abi::nr_slots_min)) {
        ++c_.tx_drops;  // too big for what the backend accepts
        return true;
    }
    if (tx_free_.size() < slots || tx_->free_requests() < slots) return false;
    for (unsigned s = 0; s < slots; ++s) {
        const std::uint16_t id = tx_free_.back();
        tx_free_.pop_back();
        auto& b = tx_bufs_[id];
        const std::size_t off = s * page_size;
        const std::size_t chunk = std::min(page_size, len - off);
        std::memcpy(b.page.addr, frame.data() + off, chunk);
        b.in_flight = true;
        abi::tx_request r{};
        r.gref = b.page.ref;
        r.offset = 0;
        r.flags = (s + 1 < slots) ? abi::txf::more_data : 0;
        r.id = id;
        r.size = static_cast<std::uint16_t>(s == 0 ? len : chunk);  // first slot: whole packet
        tx_->put_request(r);
    }
    ++c_.tx_packets;
    c_.tx_bytes += len;
    return true;
}

void netfront::on_port_readable() {
    if (!connected()) return watch_port(false);
    bool queued = false;
    for (int i = 0; i < 64; ++i) {
        if (tx_free_.empty() || tx_->free_requests() == 0) {
            watch_port(false);  // resumed when tx responses free buffers
            break;
        }
        const long n = port_->recv(scratch_);
        if (n <= 0) break;
        if (n < static_cast<long>(abi::eth_hlen)) {
            ++c_.tx_drops;
            continue;
        }
        if (!send_frame(std::span(scratch_.data(), static_cast<std::size_t>(n)))) {
            ++c_.tx_drops;  // not enough buffers for a multi-slot frame right now
            continue;
        }
        queued = true;
    }
    if (queued && tx_->push_requests()) notify(tx_port_);
}

}  // namespace vifkit::core
