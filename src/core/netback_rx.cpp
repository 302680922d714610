// Backend guest-receive path: host port -> per-queue backlog -> grant copy
// into the frontend's posted buffers. Responses go into the same slots as the
// requests they consume (netif-spec §4.4). A packet starts only when the slots
// it needs are posted (stall detection compares against the slots needed,
// XSA-392); each queue's backlog is capped in bytes.
#include <algorithm>
#include <cstring>

#include "netback_vif.hpp"

namespace vifkit::core {

namespace {
constexpr int rounds_per_event = 64;
constexpr std::size_t scratch_len = abi::max_tx_size + 1;

unsigned slots_for(std::size_t len) {
    return static_cast<unsigned>(std::max<std::size_t>(1, (len + page_size - 1) / page_size));
}
}  // namespace

bool netback_vif::backlog_full(const backend_queue& q) const { return q.rx_backlog.full(); }

std::size_t netback_vif::pull_from_port() {
    if (!scratch_) scratch_ = std::make_unique_for_overwrite<std::byte[]>(scratch_len);
    std::size_t got = 0;
    for (unsigned i = 0; i < cfg_.batch; ++i) {
        io::offload m;
        const long n = port_->recv_offload(std::span(scratch_.get(), scratch_len), m);
        if (n <= 0) break;
        const auto frame = std::span<std::byte>(scratch_.get(), static_cast<std::size_t>(n));
        const auto st = steer(frame);
        backend_queue& q = queues_[st.queue];
        if (q.rx_stalled) {
            ++q.c.stall_drops;  // carrier is off: nothing queues for a stalled frontend
            continue;
        }
        if (!mcast_.accepts(frame)) {
            ++q.c.mcast_filtered;  // a multicast group the guest did not join
            continue;
        }
        queue_for_guest_on(q, frame, m, st);
        ++got;
    }
    return got;
}

void netback_vif::queue_for_guest_on(backend_queue& q, std::span<std::byte> frame, const io::offload& m,
                                     const ctrl::backend_handler::steer& st) {
    // What the frontend does not take is finished here: checksums completed,
    // super-frames segmented (netif-spec §4.4; the host kernel was told the
    // same through set_offload, so this is the exception).
    if (!seg_scratch_ && m.gso_type != io::offload::gso::none)
        seg_scratch_ = std::make_unique_for_overwrite<std::byte[]>(seg_scratch_len);
    resolve_offload(frame, m, to_guest_, std::span(seg_scratch_.get(), seg_scratch_ ? seg_scratch_len : 0), q.c,
                    [&](std::span<const std::byte> f, const io::offload& fm) {
                        frame_fifo::meta fmeta{st.has_hash, st.extra_type, st.hash};
                        if (fm.l4 == io::offload::csum::partial)
                            fmeta.rx_flags = abi::rxf::csum_blank | abi::rxf::data_validated;
                        else if (fm.l4 == io::offload::csum::valid)
                            fmeta.rx_flags = abi::rxf::data_validated;
                        fmeta.gso_type = static_cast<std::uint8_t>(fm.gso_type);
                        fmeta.gso_size = fm.gso_size;
                        if (!q.rx_backlog.push(f, fmeta)) {
                            ++q.c.backlog_drops;
                            return false;
                        }
                        return true;
                    });
}

void netback_vif::check_unstall(backend_queue& q) {
    // Buffers for a packet of the largest size the frontend takes are posted
    // again: carrier back on.
    if (!q.rx_stalled || !q.rx) return;
    const auto u = q.rx->pending_requests();
    const unsigned want = frontend_sg_ ? abi::nr_slots_min + 1 : 2;
    if (u.status != ring::ring_status::ok || u.count < want) return;
    q.rx_stalled = false;
    spdlog::info("vif{}.{}: queue {} has rx buffers again", front_dom_, devid_, &q - queues_.data());
    update_carrier();
}

void netback_vif::on_port_readable() {
    if (!connected_ || disabled_) return;
    pull_from_port();
    for (auto& q : queues_) {
        if (!connected_ || disabled_) return;
        if (!q.rx_backlog.empty()) process_rx(q);
    }
}

void netback_vif::process_rx(backend_queue& q) {
    if (q.rx_stalled) check_unstall(q);
    int round = 0;
    for (; round < rounds_per_event; ++round) {
        if (!rx_round(q)) break;
        if (!connected_ || disabled_) return;
    }
    if (!connected_ || disabled_) return;
    // Budget spent with frames still queued: continue next iteration (no
    // event may come for them, the port may be empty by now).
    if (cfg_.busy_poll) return;  // poll() comes back; the port is not in the event loop
    if (round == rounds_per_event && !q.rx_backlog.empty())
        defer(&netback_vif::process_rx, static_cast<std::size_t>(&q - queues_.data()));
    // Stop polling the host port while a backlog is full: the kernel queue
    // holds (and eventually drops) the rest; an rx event resumes us.
    const bool full = std::any_of(queues_.begin(), queues_.end(), [this](const auto& x) { return backlog_full(x); });
    if (full && port_watched_) {
        loop_.remove(port_->fd());
        port_watched_ = false;
    } else if (!full && !port_watched_ && port_->fd() >= 0) {
        loop_.add(port_->fd(), [this] { on_port_readable(); });
        port_watched_ = true;
    }
}

bool netback_vif::rx_round(backend_queue& q) {
    if (q.rx_backlog.empty()) return false;
    copy_ops_.clear();
    pkt_ops_.clear();
    rx_slots_.clear();
    direct_.clear();
    ctrl::gref_table* static_tbl = static_table(q);
    std::uint32_t avail = 0;
    for (std::size_t fi = 0; fi < q.rx_backlog.size() && pkt_ops_.size() < cfg_.batch; ++fi) {
        const frame_fifo::entry* it = &q.rx_backlog.at(fi);
        const unsigned data_slots = slots_for(it->len);
        if (data_slots > 1 && !frontend_sg_) break;  // dropped below, once what precedes it is sent
        const unsigned extras = (it->m.has_hash ? 1u : 0u) + (it->m.gso_type ? 1u : 0u);
        const unsigned need = data_slots + extras;  // + GSO and HASH extra slots
        if (avail < need) {
            if (!q.rx->wait_for_requests(need)) {
                // Woken by the frontend once `need` buffers are posted (or polled,
                // for a frontend without feature-rx-notify); stalled if it takes
                // longer than rx_stall_timeout (housekeeping).
                ++q.c.rx_stalls;
                if (q.rx_wait_since == std::chrono::steady_clock::time_point{})
                    q.rx_wait_since = std::chrono::steady_clock::now();
                if (!front_.rx_notify && rx_poll_timer_ && !rx_poll_timer_->armed())
                    rx_poll_timer_->arm_after(cfg_.rx_poll_interval);
                break;
            }
            const auto u = q.rx->pending_requests();
            if (u.status == ring::ring_status::overflow) {
                fatal(q, "rx ring overflow (req_prod - rsp_prod > ring size)");
                return false;
            }
            avail = u.count;
        }
        const std::size_t begin = rx_slots_.size();
        for (unsigned s = 0; s < data_slots; ++s) {
            const abi::rx_request r = q.rx->take_request();
            const auto len = static_cast<std::uint16_t>(std::min<std::size_t>(page_size, it->len - s * page_size));
            const std::byte* src = q.rx_backlog.data(*it) + s * page_size;
            const std::size_t slot = rx_slots_.size();
            rx_slots_.push_back({r.id, len, -1, 0});  // response goes to this same slot
            if (s == 0) {
                // Extras follow the first data slot, each using up a request (§4.4):
                // GSO first, then HASH (Linux's order).
                if (it->m.gso_type) rx_slots_.push_back({q.rx->take_request().id, 0, -1, abi::extra_type::gso});
                if (it->m.has_hash) rx_slots_.push_back({q.rx->take_request().id, 0, -1, abi::extra_type::hash});
            }
            if (raw_) {
                // raw mode (benchmark ceiling): no grant check at all
                if (std::byte* pg = raw_->page(r.gref)) {
                    queue_direct(pg, src, len, true);
                    continue;
                }
            } else if (static_tbl) {
                if (auto* e = static_tbl->find(r.gref)) {
                    if (!e->readonly) {  // static grant: write through the persistent mapping
                        queue_direct(static_cast<std::byte*>(e->addr), src, len, true);
                        ++q.c.static_hits;
                        continue;
                    }
                    ++q.c.static_fallbacks;  // read-only mapping: rx needs write, so grant copy
                }
            }
            platform::copy_op op;
            op.direction = platform::copy_op::dir::to_peer;
            op.ref = r.gref;
            op.offset = 0;
            op.len = len;
            op.local = const_cast<std::byte*>(src);
            rx_slots_[slot].op = static_cast<int>(copy_ops_.size());
            copy_ops_.push_back(op);
        }
        pkt_ops_.push_back({begin, rx_slots_.size()});
        avail -= need;
    }
    for (const auto& d : direct_) std::memcpy(d.dst, d.src, d.len);  // prefetched above
    direct_.clear();
    if (raw_) {
        for (auto& op : copy_ops_) op.status = gnt_status::bad_gntref;  // ref outside the table or memory
    } else if (!copy_ops_.empty()) {
        svc_.mapper->copy(front_dom_, copy_ops_);
        q.c.grant_copies += copy_ops_.size();
        ++q.c.copy_batches;
    }
    for (const auto& po : pkt_ops_) {
        bool ok = true;
        for (std::size_t k = po.begin; k < po.end; ++k)
            ok = ok && (rx_slots_[k].op < 0 || copy_ops_[static_cast<std::size_t>(rx_slots_[k].op)].status == gnt_status::okay);
        const auto& f = q.rx_backlog.front();
        std::size_t last_data = po.begin;
        for (std::size_t k = po.begin; k < po.end; ++k)
            if (!rx_slots_[k].extra) last_data = k;
        for (std::size_t k = po.begin; k < po.end; ++k) {
            const rx_slot& sl = rx_slots_[k];
            if (sl.extra) {
                abi::extra_info e{};
                e.type = sl.extra;
                if (k + 1 < po.end && rx_slots_[k + 1].extra) e.flags = abi::extra_flag::more;
                if (sl.extra == abi::extra_type::gso) {
                    e.u.gso.size = f.m.gso_size;
                    e.u.gso.type = f.m.gso_type;
                } else {
                    e.u.hash.type = f.m.hash_type;
                    e.u.hash.algorithm = static_cast<std::uint8_t>(ctrl::hash_algorithm::toeplitz);
                    for (int b = 0; b < 4; ++b) e.u.hash.value[b] = static_cast<std::uint8_t>(f.m.hash >> (8 * b));  // LSB first
                }
                abi::rx_response rsp;
                static_assert(sizeof rsp == sizeof e);
                std::memcpy(&rsp, &e, sizeof rsp);
                q.rx->put_response(rsp);
                continue;
            }
            abi::rx_response rsp{};
            rsp.id = sl.id;
            rsp.offset = 0;
            rsp.flags = k < last_data ? abi::rxf::more_data : 0;
            if (k == po.begin) {
                rsp.flags |= f.m.rx_flags;  // csum_blank / data_validated
                if (f.m.has_hash || f.m.gso_type) rsp.flags |= abi::rxf::extra_info;
            }
            rsp.status = ok ? static_cast<std::int16_t>(sl.len) : abi::rsp::error;
            q.rx->put_response(rsp);
        }
        if (ok) {
            ++q.c.rx_packets;
            q.c.rx_bytes += f.len;
            if (f.m.gso_type) ++q.c.gso_rx;
        } else {
            ++q.c.rx_errors;
            ++q.c.grant_errors;
        }
        q.rx_backlog.pop();
    }
    bool progressed = !pkt_ops_.empty();
    if (progressed) q.rx_wait_since = {};
    // A frame the frontend cannot take (multi-slot without feature-sg) is dropped.
    if (!q.rx_backlog.empty() && slots_for(q.rx_backlog.front().len) > 1 && !frontend_sg_) {
        ++q.c.rx_drops;
        q.rx_backlog.pop();
        progressed = true;
    }
    if (progressed && q.rx->push_responses()) notify(q, q.rx_port);
    return progressed;
}

}  // namespace vifkit::core
