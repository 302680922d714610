// Frontend data path. tx: frames from the guest port are copied into pages of
// the queue's read-only tx pool; rx: the writable rx pool is posted and
// recycled. Every backend response is copied once and validated before use
// (netif-spec §4.4 frontend checks; XSA-391 event storms: bounded work).
#include <algorithm>
#include <cstring>

#include "offload_path.hpp"
#include "vifkit/core/netfront.hpp"
#include "vifkit/core/steering.hpp"
#include "vifkit/wire/checksum.hpp"
#include "vifkit/wire/rx_decoder.hpp"

namespace vifkit::core {

void netfront::notify(queue& q, evtchn_port_t port) {
    if (svc_.evtchn->notify(port) == 0) ++q.c.notifies_sent;
}

void netfront::watch_port(bool on) {
    // busy: poll() reads the port; a port without an fd ("null") never has input
    if (on == port_watched_ || !port_ || cfg_.busy_poll || port_->fd() < 0) return;
    if (on)
        loop_.add(port_->fd(), [this] { on_port_readable(); });
    else
        loop_.remove(port_->fd());
    port_watched_ = on;
}

void netfront::post_rx_buffers(queue& q) {
    if (!q.rx) return;
    unsigned posted = 0;
    for (std::size_t i = 0; i < q.rx_bufs.size() && q.rx->free_requests() > 0; ++i) {
        auto& b = q.rx_bufs[i];
        if (b.in_flight) continue;
        q.rx_slot_buf[q.rx->req_prod_pvt() & (ring::rx_ring_types::size - 1)] = static_cast<std::uint16_t>(i);
        q.rx->put_request({static_cast<std::uint16_t>(i), 0, b.page.ref});
        b.in_flight = true;
        ++posted;
    }
    if (posted && q.rx->push_requests()) notify(q, q.rx_port);  // feature-rx-notify
    if (backend_connected_) watch_port(true);
}

void netfront::on_event_channel() {
    for (int i = 0; i < 64; ++i) {  // bounded per wake-up
        auto port = svc_.evtchn->pending();
        if (!port) break;
        if (ctrl_bound_ && *port == ctrl_port_) on_ctrl_event();
        for (auto& q : queues_) {
            if (!connected_) break;
            if (!q.ports_bound || (*port != q.tx_port && *port != q.rx_port)) continue;
            ++q.c.events_received;
            process_tx_responses(q);
            if (connected_) process_rx_responses(q);
        }
        svc_.evtchn->unmask(*port);
    }
}

void netfront::defer_responses(queue& q) {
    // The per-event budget ran out with work left: rsp_event was not re-armed,
    // so no event will come for it. Continue on the next loop iteration.
    std::weak_ptr<netfront*> weak = self_;
    const std::size_t qi = static_cast<std::size_t>(&q - queues_.data());
    loop_.defer([weak, qi] {
        auto s = weak.lock();
        if (!s) return;
        netfront* nf = *s;
        if (!nf->connected_ || qi >= nf->queues_.size()) return;
        nf->process_tx_responses(nf->queues_[qi]);
        if (nf->connected_) nf->process_rx_responses(nf->queues_[qi]);
    });
}

void netfront::process_tx_responses(queue& q) {
    for (int n = 0; q.tx;) {
        if (n >= static_cast<int>(cfg_.response_budget)) {
            if (!cfg_.busy_poll) defer_responses(q);
            break;
        }
        const auto u = q.tx->pending_responses();
        if (u.status == ring::ring_status::overflow) return fault("tx rsp_prod beyond the ring");
        if (u.count > q.tx->req_prod_pvt() - q.tx->rsp_cons()) return fault("tx: more responses than requests");
        for (std::uint32_t i = 0; i < u.count; ++i, ++n) {
            const abi::tx_response r = q.tx->take_response();
            if (r.status == abi::rsp::null_) continue;  // answer to an extra slot
            if (r.id >= q.tx_bufs.size() || !q.tx_bufs[r.id].in_flight) {
                ++q.c.bad_responses;
                if (log_limit_.allow()) spdlog::warn("netfront: tx response with unknown id {}", r.id);
                continue;
            }
            q.tx_bufs[r.id].in_flight = false;
            q.tx_free.push_back(r.id);
            if (r.status != abi::rsp::okay) ++q.c.tx_errors;
        }
        if (cfg_.busy_poll || !q.tx->final_check_for_responses()) break;  // busy: rsp_event stays unarmed
    }
    if (!q.tx_free.empty() && backend_connected_) {
        watch_port(true);
        if (held_len_) on_port_readable();  // send the held-back frame now
    }
}

void netfront::take_rx_response(queue& q, std::uint32_t slot, const abi::rx_response& r) {
    // The buffer is the one we posted in this slot; a data response must also
    // echo its id (a response in the wrong slot is a backend error). The checks
    // are wire::decode_rx_slot's; this applies its verdict.
    const std::uint16_t id = q.rx_slot_buf[slot & (ring::rx_ring_types::size - 1)];
    const bool posted = id < q.rx_bufs.size() && q.rx_bufs[id].in_flight;
    // The first data slot of a chain carries the packet's flags.
    if (!q.rx_in_chain && !q.rx_extra_next) q.rx_flags = r.flags;
    wire::rx_chain c{q.rx_len, q.rx_slots, q.rx_bad, q.rx_in_chain, q.rx_extra_next};
    const wire::rx_slot s = wire::decode_rx_slot(c, r, posted, id, q.rx_frame.size());
    q.rx_len = c.len;
    q.rx_slots = c.slots;
    q.rx_bad = c.bad;
    q.rx_in_chain = c.in_chain;
    q.rx_extra_next = c.extra_next;
    if (s.what == wire::rx_slot::kind::no_buffer) {
        ++q.c.bad_responses;
        if (log_limit_.allow()) spdlog::warn("netfront: rx response in a slot with no posted buffer");
        return;
    }
    auto& b = q.rx_bufs[id];
    b.in_flight = false;  // recycled by post_rx_buffers()
    if (s.hash_extra) ++q.c.rx_hash_extras;
    if (s.wrong_id) {
        ++q.c.bad_responses;  // data response in the wrong slot
        if (log_limit_.allow()) spdlog::warn("netfront: rx response id {} in the slot of buffer {}", r.id, id);
    }
    if (s.what == wire::rx_slot::kind::extra) {
        abi::extra_info e;
        std::memcpy(&e, &r, sizeof e);
        if (e.type == abi::extra_type::none || e.type >= abi::extra_type::max) {
            ++q.c.bad_responses;  // extra type out of range: drop the packet (netif-spec §4.4)
            q.rx_bad = true;
        } else if (e.type == abi::extra_type::gso) {
            // Only a type we advertised, with an MSS (netif-spec §4.4 frontend checks).
            const bool v4 = e.u.gso.type == abi::gso_type::tcpv4 && cfg_.gso_tcpv4;
            const bool v6 = e.u.gso.type == abi::gso_type::tcpv6 && cfg_.gso_tcpv6;
            if ((!v4 && !v6) || e.u.gso.size == 0 || !cfg_.feature_sg) {
                ++q.c.bad_responses;
                ++q.c.gso_errors;
                if (log_limit_.allow())
                    spdlog::warn("netfront: rx GSO extra type {} size {} refused", e.u.gso.type, e.u.gso.size);
                q.rx_bad = true;
            } else {
                q.rx_gso_type = e.u.gso.type;
                q.rx_gso_size = e.u.gso.size;
            }
        }
    } else if (s.what == wire::rx_slot::kind::data && q.rx_slots == wire::rx_max_slots + 1) {
        ++q.c.bad_responses;  // the chain just exceeded the slot limit: dropped at its end
    }
    if (s.copy_len != 0)
        std::memcpy(q.rx_frame.data() + s.copy_at, static_cast<const std::byte*>(b.page.addr) + s.copy_offset,
                    s.copy_len);
    if (s.chain_done) finish_rx_chain(q);
}

void netfront::finish_rx_chain(queue& q) {
    if (q.rx_bad || q.rx_len < abi::eth_hlen) {
        ++q.c.rx_errors;
    } else {
        // The backend's offload state (netif-spec §4.4): csum_blank = partial
        // checksum (Linux netback passes local traffic on like that), data_validated
        // = known good, a GSO extra = a TCP super-frame. The guest port gets what it
        // takes; the rest is finished here.
        io::offload m;
        if (q.rx_flags & abi::rxf::csum_blank)
            m.l4 = io::offload::csum::partial;
        else if (q.rx_flags & abi::rxf::data_validated)
            m.l4 = io::offload::csum::valid;
        if (q.rx_gso_type) {
            m.gso_type = static_cast<io::offload::gso>(q.rx_gso_type);
            m.gso_size = q.rx_gso_size;
        }
        if (!seg_scratch_ && q.rx_gso_type) seg_scratch_ = std::make_unique_for_overwrite<std::byte[]>(seg_scratch_len);
        const auto r = resolve_offload(std::span(q.rx_frame.data(), q.rx_len), m, to_guest_,
                                       std::span(seg_scratch_.get(), seg_scratch_ ? seg_scratch_len : 0), q.c,
                                       [&](std::span<const std::byte> f, const io::offload& fm) {
                                           if (port_->send_offload(f, fm)) {
                                               ++q.c.rx_packets;
                                               q.c.rx_bytes += f.size();
                                               if (fm.gso_type != io::offload::gso::none) ++q.c.gso_rx;
                                               return true;
                                           }
                                           ++q.c.rx_drops;
                                           return false;
                                       });
        if (r == offload_outcome::dropped) ++q.c.rx_errors;
    }
    q.rx_flags = 0;
    q.rx_gso_type = 0;
    q.rx_len = q.rx_slots = 0;
    q.rx_bad = false;
}

void netfront::process_rx_responses(queue& q) {
    for (int n = 0; q.rx;) {
        if (n >= static_cast<int>(cfg_.response_budget)) {
            if (!cfg_.busy_poll) defer_responses(q);
            break;
        }
        const auto u = q.rx->pending_responses();
        if (u.status == ring::ring_status::overflow) return fault("rx rsp_prod beyond the ring");
        if (u.count > q.rx->req_prod_pvt() - q.rx->rsp_cons()) return fault("rx: more responses than requests");
        // Copy the responses out first and prefetch the buffers they name, so
        // the misses on pages the backend just wrote overlap; then handle them.
        rx_batch_.clear();
        for (std::uint32_t i = 0; i < u.count; ++i) {
            const std::uint32_t slot = q.rx->next_response_index();
            const abi::rx_response r = q.rx->take_response();
            const std::uint16_t id = q.rx_slot_buf[slot & (ring::rx_ring_types::size - 1)];
            if (id < q.rx_bufs.size()) __builtin_prefetch(static_cast<const std::byte*>(q.rx_bufs[id].page.addr) + (r.offset & (page_size - 1)));
            rx_batch_.push_back({slot, r});
        }
        for (const auto& [slot, r] : rx_batch_) {
            take_rx_response(q, slot, r);
            ++n;
        }
        post_rx_buffers(q);
        if (!q.rx || cfg_.busy_poll || !q.rx->final_check_for_responses()) break;
    }
}

bool netfront::send_frame(queue& q, std::span<const std::byte> frame, const io::offload& m) {
    const std::size_t len = frame.size();
    const unsigned slots = static_cast<unsigned>(std::max<std::size_t>(1, (len + page_size - 1) / page_size));
    if (slots > 1 && (!backend_sg_ || slots > abi::nr_slots_min)) {
        ++q.c.tx_drops;  // too big for what the backend accepts
        return true;
    }
    const bool gso = m.gso_type != io::offload::gso::none;
    const unsigned ring_slots = slots + (gso ? 1u : 0u);  // + the GSO extra
    if (q.tx_free.size() < slots || q.tx->free_requests() < ring_slots) return false;
    std::uint16_t csum_flags = 0;
    if (m.l4 == io::offload::csum::partial)
        csum_flags = abi::txf::csum_blank | abi::txf::data_validated;
    else if (m.l4 == io::offload::csum::valid)
        csum_flags = abi::txf::data_validated;
    for (unsigned s = 0; s < slots; ++s) {
        const std::uint16_t id = q.tx_free.back();
        q.tx_free.pop_back();
        // The next frame's page: the backend read it last, so writing it misses.
        if (!q.tx_free.empty()) __builtin_prefetch(q.tx_bufs[q.tx_free.back()].page.addr, 1);
        q.tx->prefetch_request_slot(8);
        auto& b = q.tx_bufs[id];
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
        if (s == 0) r.flags |= csum_flags | (gso ? abi::txf::extra_info : 0);
        q.tx->put_request(r);
        if (s == 0 && gso) {
            // The GSO extra follows the first request (netif-spec §4.3).
            abi::extra_info e{};
            e.type = abi::extra_type::gso;
            e.u.gso.size = m.gso_size;
            e.u.gso.type = static_cast<std::uint8_t>(m.gso_type);
            abi::tx_request x{};
            static_assert(sizeof e <= sizeof x);
            std::memcpy(&x, &e, sizeof e);
            q.tx->put_request(x);
            ++q.c.gso_tx;
        }
    }
    ++q.c.tx_packets;
    q.c.tx_bytes += len;
    return true;
}

bool netfront::poll() {
    if (!connected()) return false;
    bool work = false;
    std::uint64_t sent = 0;
    for (auto& q : queues_) {
        const auto tx0 = q.tx->rsp_cons(), rx0 = q.rx->rsp_cons();
        process_tx_responses(q);
        if (!connected()) return work;
        process_rx_responses(q);
        if (!connected()) return work;
        work = work || q.tx->rsp_cons() != tx0 || q.rx->rsp_cons() != rx0;
        sent += q.c.tx_packets + q.c.tx_drops;
    }
    on_port_readable();
    if (!connected()) return work;
    for (const auto& q : queues_) sent -= q.c.tx_packets + q.c.tx_drops;
    return work || sent != 0;
}

std::size_t netfront::pick_queue(std::span<const std::byte> frame) const {
    return flow_queue(frame, static_cast<unsigned>(queues_.size()));
}

void netfront::on_port_readable() {
    if (!connected()) return watch_port(false);
    std::uint64_t queued = 0;  // bit per queue with new requests (queues <= 64)
    // A frame held back because its queue ran out of tx buffers goes first.
    if (held_len_ && !transmit(std::span(held_.data(), held_len_), held_meta_, queued)) return;
    held_len_ = 0;
    for (int i = 0; i < 64; ++i) {
        io::offload m;
        const long n = port_->recv_offload(scratch_, m);
        if (n <= 0) break;
        const auto frame = std::span<std::byte>(scratch_.data(), static_cast<std::size_t>(n));
        if (!transmit(frame, m, queued)) {
            // Backpressure instead of loss: keep the frame, stop reading the
            // port until tx responses free buffers on that queue.
            std::copy(frame.begin(), frame.end(), held_.begin());
            held_len_ = frame.size();
            held_meta_ = m;
            break;
        }
    }
    for (std::size_t i = 0; i < queues_.size(); ++i)
        if ((queued >> i & 1u) && queues_[i].tx->push_requests()) notify(queues_[i], queues_[i].tx_port);
}

bool netfront::transmit(std::span<std::byte> frame, const io::offload& m, std::uint64_t& queued) {
    const std::size_t qi = pick_queue(frame);
    queue& q = queues_[qi];
    if (frame.size() < abi::eth_hlen) {
        ++q.c.tx_drops;  // runt
        return true;
    }
    if (!carrier_) {
        ++q.c.carrier_drops;  // the backend reports no carrier (netif-spec §5.1)
        return true;
    }
    // What the backend does not take (e.g. GSO it did not advertise) is
    // finished here; the guest port was told the same, so this is rare.
    bool held = false, sent_any = false;
    if (!seg_scratch_ && m.gso_type != io::offload::gso::none)
        seg_scratch_ = std::make_unique_for_overwrite<std::byte[]>(seg_scratch_len);
    resolve_offload(frame, m, to_backend_, std::span(seg_scratch_.get(), seg_scratch_ ? seg_scratch_len : 0), q.c,
                    [&](std::span<const std::byte> f, const io::offload& fm) {
                        if (send_frame(q, f, fm)) {
                            sent_any = true;
                            return true;
                        }
                        if (!sent_any)
                            held = true;  // nothing sent yet: hold the whole frame
                        else
                            ++q.c.tx_drops;  // the ring filled in the middle of a segmented frame
                        return false;
                    });
    if (held) {
        watch_port(false);  // resumed by process_tx_responses()
        return false;
    }
    queued |= std::uint64_t{1} << qi;
    return true;
}

bool netfront::send_mcast(bool add, const std::array<std::uint8_t, 6>& mac) {
    // A "dummy" request carrying only an MCAST_ADD/DEL extra (netif-spec §4.3),
    // on queue 0; the backend answers it at once and transmits nothing.
    queue& q = queues_[0];
    if (q.tx_free.empty() || q.tx->free_requests() < 2) return false;
    const std::uint16_t id = q.tx_free.back();
    q.tx_free.pop_back();
    q.tx_bufs[id].in_flight = true;  // the response frees the id
    abi::tx_request r{};
    r.gref = q.tx_bufs[id].page.ref;
    r.id = id;
    r.flags = abi::txf::extra_info;
    r.size = 0;
    q.tx->put_request(r);
    abi::extra_info e{};
    e.type = add ? abi::extra_type::mcast_add : abi::extra_type::mcast_del;
    std::memcpy(e.u.mcast.addr, mac.data(), mac.size());
    abi::tx_request x{};
    std::memcpy(&x, &e, sizeof e);
    q.tx->put_request(x);
    if (q.tx->push_requests()) notify(q, q.tx_port);
    ++mcast_updates_;
    return true;
}

}  // namespace vifkit::core
