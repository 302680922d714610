// Backend guest-transmit path: requests -> (grant copy | grant map) -> host port.
// Requests are copied out of the ring once into tx_window, decoded by
// wire::decode_tx_packet (netif-spec §4.3), then moved in batches: one grant
// copy call (or one map + one unmap call) per batch of packets.
#include <algorithm>
#include <cstring>

#include "netback_vif.hpp"
#include "vifkit/wire/checksum.hpp"
#include "vifkit/wire/offload.hpp"
#include "vifkit/wire/xs_values.hpp"

namespace vifkit::core {

namespace {
constexpr int rounds_per_event = 64;  // bounded work per wake-up (XSA-332)
}

void netback_vif::defer(void (netback_vif::*fn)(backend_queue&), std::size_t qi) {
    std::weak_ptr<netback_vif*> weak = self_;
    loop_.defer([weak, fn, qi] {
        if (auto s = weak.lock()) {
            netback_vif* v = *s;
            if (v->connected_ && !v->disabled_ && qi < v->queues_.size()) (v->*fn)(v->queues_[qi]);
        }
    });
}

ctrl::gref_table* netback_vif::static_table(backend_queue& q) {
    if (!handler_) return nullptr;
    auto& t = handler_->table(static_cast<unsigned>(&q - queues_.data()));
    return t.size() ? &t : nullptr;
}

void netback_vif::process_tx(backend_queue& q) {
    for (int round = 0; round < rounds_per_event; ++round) {
        if (credit_blocked_) return;  // the credit timer resumes us (rate limit)
        if (!tx_round(q)) {
            if (!connected_ || disabled_) return;
            if (cfg_.busy_poll) return;  // polled again soon; req_event stays unarmed
            if (!q.tx->final_check_for_requests()) return;  // event re-armed, nothing left
        }
    }
    if (!cfg_.busy_poll) defer(&netback_vif::process_tx, static_cast<std::size_t>(&q - queues_.data()));
}

bool netback_vif::tx_round(backend_queue& q) {
    const auto u = q.tx->pending_requests();
    if (u.status == ring::ring_status::overflow) {
        fatal(q, "tx ring overflow (req_prod - rsp_prod > ring size)");
        return false;
    }
    const std::size_t room = ring::tx_ring_types::size - q.tx_window.size();
    const std::size_t n = std::min<std::size_t>(u.count, room);
    for (std::size_t i = 0; i < n; ++i) q.tx_window.push_back(q.tx->take_request());

    wire::tx_limits lim;
    lim.gso_tcpv4 = cfg_.feature_gso_tcpv4;
    lim.gso_tcpv6 = cfg_.feature_gso_tcpv6;
    lim.multicast_control = cfg_.multicast_control;
    batch_.clear();
    std::size_t pos = 0;
    while (batch_.size() < cfg_.batch && pos < q.tx_window.size()) {
        const auto d = wire::decode_tx_packet(std::span(q.tx_window).subspan(pos), lim);
        if (d.verdict == wire::tx_verdict::need_more) {
            if (q.tx_window.size() - pos >= ring::tx_ring_types::size) {
                fatal(q, "tx chain longer than the ring");
                return false;
            }
            if (n > 0) ++q.c.tx_incomplete;  // held, unanswered, until the rest is published
            break;
        }
        if (d.verdict == wire::tx_verdict::fatal) {
            fatal(q, d.reason);
            return false;
        }
        if (d.verdict == wire::tx_verdict::drop) {
            ++q.c.tx_drops;
            if (log_limit_.allow())
                spdlog::warn("vif{}.{}: dropping guest packet: {}", front_dom_, devid_, d.reason);
            respond_tx(q, d.pkt, pos, abi::rsp::error);
        } else if (d.pkt.has_mcast) {
            // Control-only dummy request (netif-spec §4.3): answered at once,
            // nothing is transmitted. ADD beyond 64 addresses is an ERROR.
            std::array<std::uint8_t, 6> mac;
            std::memcpy(mac.data(), d.pkt.mcast.addr, mac.size());
            std::int16_t st = abi::rsp::okay;
            if (d.pkt.mcast_type == abi::extra_type::mcast_add) {
                ++q.c.mcast_adds;
                if (!mcast_.add(mac)) {
                    st = abi::rsp::error;
                    ++q.c.mcast_errors;
                    if (log_limit_.allow())
                        spdlog::warn("vif{}.{}: refusing multicast address {}: list full ({}) or not multicast",
                                     front_dom_, devid_, wire::format_mac(mac), mcast_.size());
                }
            } else {
                ++q.c.mcast_dels;
                mcast_.remove(mac);
            }
            respond_tx(q, d.pkt, pos, st);
        } else {
            if (!credit_.unlimited() && !credit_allows(q, d.pkt.total_len)) break;  // held until the credit timer
            batch_.push_back({d.pkt, pos});
        }
        pos += d.pkt.consumed;
    }
    if (!batch_.empty()) copy_tx_batch(q, batch_.size());
    q.tx_window.erase(q.tx_window.begin(), q.tx_window.begin() + static_cast<std::ptrdiff_t>(pos));
    if (q.tx->push_responses()) notify(q, q.tx_port);
    return pos > 0 || n > 0;
}

bool netback_vif::credit_allows(backend_queue& q, std::uint32_t len) {
    const auto now = std::chrono::steady_clock::now();
    if (credit_.try_consume(len, now)) return true;
    ++q.c.credit_waits;
    credit_blocked_ = true;
    credit_timer_->arm_after(std::max(std::chrono::nanoseconds(1), credit_.next_refill() - now));
    return false;
}

bool netback_vif::send_to_host(backend_queue& q, std::span<std::byte> frame, const io::offload& m) {
    if (!seg_scratch_ && m.gso_type != io::offload::gso::none)
        seg_scratch_ = std::make_unique_for_overwrite<std::byte[]>(seg_scratch_len);
    const auto r = resolve_offload(frame, m, to_host_, std::span(seg_scratch_.get(), seg_scratch_ ? seg_scratch_len : 0),
                                   q.c, [&](std::span<const std::byte> f, const io::offload& fm) {
                                       if (port_->send_offload(f, fm)) {
                                           ++q.c.tx_packets;
                                           q.c.tx_bytes += f.size();
                                           if (fm.gso_type != io::offload::gso::none) ++q.c.gso_tx;
                                           return true;
                                       }
                                       ++q.c.tx_drops;
                                       return false;
                                   });
    if (r == offload_outcome::dropped) {
        ++q.c.tx_errors;
        if (log_limit_.allow())
            spdlog::warn("vif{}.{}: dropping guest packet: its headers do not allow the offload it asked for",
                         front_dom_, devid_);
        return false;
    }
    return true;
}

void netback_vif::queue_direct(std::byte* dst, const std::byte* src, std::uint16_t len, bool to_peer) {
    // Prefetch the frontend's side: the line it last wrote (tx) or will read (rx).
    if (to_peer)
        __builtin_prefetch(dst, 1);
    else
        __builtin_prefetch(src, 0);
    direct_.push_back({dst, src, len});
}

void netback_vif::copy_tx_batch(backend_queue& q, std::size_t npkts) {
    copy_ops_.clear();
    direct_.clear();
    pkt_ops_.clear();
    ctrl::gref_table* static_tbl = static_table(q);
    for (std::size_t i = 0; i < npkts; ++i) {
        const auto& [p, base] = batch_[i];
        std::byte* dst = bufs_[i].data.get();
        std::uint32_t off = 0;
        const std::size_t begin = copy_ops_.size();
        for (unsigned s = 0; s < p.nr_slots; ++s) {
            const abi::tx_request& r = q.tx_window[base + p.data_index[s]];
            const std::uint16_t len = s == 0 ? p.first_len : r.size;
            if (len == 0) continue;  // zero-size slot: OKAY, no grant access (XSA-448)
            // Slots reachable without a grant operation are copied in a second
            // pass, after every source has been prefetched: the cache misses on
            // pages the frontend just wrote overlap instead of queueing up.
            if (raw_) {
                // raw mode (benchmark ceiling): no grant check at all
                if (const std::byte* pg = raw_->page(r.gref)) {
                    queue_direct(dst + off, pg + r.offset, len, false);
                    off += len;
                    continue;
                }
            } else if (static_tbl) {
                // Static grant: the page is persistently mapped, no grant operation.
                // offset + len <= 4096 was checked by the decoder.
                if (const auto* e = static_tbl->find(r.gref)) {
                    queue_direct(dst + off, static_cast<const std::byte*>(e->addr) + r.offset, len, false);
                    ++q.c.static_hits;
                    off += len;
                    continue;
                }
            }
            platform::copy_op op;
            op.direction = platform::copy_op::dir::from_peer;
            op.ref = r.gref;
            op.offset = r.offset;
            op.len = len;
            op.local = dst + off;
            copy_ops_.push_back(op);
            off += len;
        }
        bufs_[i].len = off;
        pkt_ops_.push_back({begin, copy_ops_.size()});
    }
    for (const auto& d : direct_) std::memcpy(d.dst, d.src, d.len);
    direct_.clear();
    if (copy_ops_.empty()) {
        // every slot was served from static mappings (or raw)
    } else if (raw_) {
        for (auto& op : copy_ops_) op.status = gnt_status::bad_gntref;  // ref outside the table or memory
    } else if (cfg_.mode == tx_mode::copy) {
        svc_.mapper->copy(front_dom_, copy_ops_);
        q.c.grant_copies += copy_ops_.size();
        ++q.c.copy_batches;
    } else {
        // Map mode: map every slot read-only, copy out, unmap (one batch each way).
        map_ops_.clear();
        for (const auto& op : copy_ops_) {
            platform::map_op m;
            m.ref = op.ref;
            m.readonly = true;
            map_ops_.push_back(m);
        }
        svc_.mapper->map(front_dom_, map_ops_);
        q.c.grant_maps += map_ops_.size();
        std::size_t mapped = 0;
        for (std::size_t k = 0; k < map_ops_.size(); ++k) {
            copy_ops_[k].status = map_ops_[k].status;
            if (map_ops_[k].status != gnt_status::okay) continue;
            std::memcpy(copy_ops_[k].local, static_cast<const std::byte*>(map_ops_[k].addr) + copy_ops_[k].offset,
                        copy_ops_[k].len);
            map_ops_[mapped++] = map_ops_[k];
        }
        svc_.mapper->unmap(std::span(map_ops_.data(), mapped));
        q.c.grant_unmaps += mapped;
    }
    for (std::size_t i = 0; i < npkts; ++i) {
        bool ok = true;
        for (std::size_t k = pkt_ops_[i].begin; k < pkt_ops_[i].end; ++k)
            ok = ok && copy_ops_[k].status == gnt_status::okay;
        const auto& [p, base] = batch_[i];
        if (!ok) {
            ++q.c.tx_errors;
            ++q.c.grant_errors;
            if (log_limit_.allow())
                spdlog::warn("vif{}.{}: grant access failed for a guest packet", front_dom_, devid_);
            respond_tx(q, p, base, abi::rsp::error);
            continue;
        }
        // Offload state the guest gave the packet (netif-spec §4.3): csum_blank =
        // partial checksum, data_validated = checksum known good, a GSO extra =
        // a TCP super-frame.
        const auto frame = std::span(bufs_[i].data.get(), bufs_[i].len);
        io::offload m;
        if (p.flags & abi::txf::csum_blank)
            m.l4 = io::offload::csum::partial;
        else if (p.flags & abi::txf::data_validated)
            m.l4 = io::offload::csum::valid;
        if (p.has_gso) {
            m.gso_type = static_cast<io::offload::gso>(p.gso.type);  // tcpv4/tcpv6: checked by the decoder
            m.gso_size = p.gso.size;
        }
        // A packet whose headers contradict its offload flags is answered ERROR.
        respond_tx(q, p, base, send_to_host(q, frame, m) ? abi::rsp::okay : abi::rsp::error);
    }
}

void netback_vif::respond_tx(backend_queue& q, const wire::tx_packet& p, std::size_t base, std::int16_t st) {
    const auto& w = q.tx_window;
    q.tx->put_response({w[base].id, st});
    for (unsigned e = 1; e <= p.nr_extras; ++e) q.tx->put_response({w[base + e].id, abi::rsp::null_});
    for (unsigned s = 1; s < p.nr_slots; ++s) q.tx->put_response({w[base + p.data_index[s]].id, st});
}

}  // namespace vifkit::core
