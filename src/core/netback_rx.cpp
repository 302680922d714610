// Backend guest-receive path: host port -> backlog -> grant copy into the
// frontend's posted buffers. Responses go into the same slots as the requests
// they consume (netif-spec §4.4). A packet starts only when the slots it needs
// are posted (stall detection compares against the slots needed, XSA-392);
// the backlog is capped in bytes.
#include <algorithm>

#include "netback_vif.hpp"

namespace vifkit::core {

namespace {
constexpr int rounds_per_event = 64;
constexpr std::size_t backlog_max_frames = 1024;

unsigned slots_for(std::size_t len) {
    return static_cast<unsigned>(std::max<std::size_t>(1, (len + page_size - 1) / page_size));
}
}  // namespace

bool netback_vif::fill_rx_backlog(backend_queue& q) {
    if (scratch_.empty()) scratch_.resize(abi::max_tx_size + 1);
    bool got = false;
    for (unsigned i = 0; i < cfg_.batch; ++i) {
        if (q.rx_backlog_bytes >= cfg_.rx_backlog_bytes || q.rx_backlog.size() >= backlog_max_frames) break;
        const long n = port_->recv(scratch_);
        if (n <= 0) break;
        frame_buf f;
        f.data.assign(scratch_.begin(), scratch_.begin() + n);
        f.len = static_cast<std::uint32_t>(n);
        q.rx_backlog_bytes += f.len;
        q.rx_backlog.push_back(std::move(f));
        got = true;
    }
    return got;
}

void netback_vif::on_port_readable() {
    if (!connected_ || disabled_) return;
    for (auto& q : queues_) process_rx(q);  // single queue: every frame goes to queue 0
}

void netback_vif::process_rx(backend_queue& q) {
    for (int round = 0; round < rounds_per_event; ++round) {
        if (!rx_round(q)) break;
        if (!connected_ || disabled_) return;
    }
    if (!connected_ || disabled_) return;
    // Stop polling the host port while the backlog is full: the kernel queue
    // holds (and eventually drops) the rest; an rx event resumes us.
    const bool full = q.rx_backlog_bytes >= cfg_.rx_backlog_bytes || q.rx_backlog.size() >= backlog_max_frames;
    if (full && port_watched_) {
        loop_.remove(port_->fd());
        port_watched_ = false;
    } else if (!full && !port_watched_) {
        loop_.add(port_->fd(), [this] { on_port_readable(); });
        port_watched_ = true;
    }
}

bool netback_vif::rx_round(backend_queue& q) {
    const bool filled = fill_rx_backlog(q);
    if (q.rx_backlog.empty()) return false;
    copy_ops_.clear();
    pkt_ops_.clear();
    std::size_t nframes = 0;
    std::uint32_t avail = 0;
    for (auto it = q.rx_backlog.begin(); it != q.rx_backlog.end() && nframes < cfg_.batch; ++it, ++nframes) {
        const unsigned need = slots_for(it->len);
        if (need > 1 && !frontend_sg_) break;  // handled below as a drop
        if (avail < need) {
            if (!q.rx->wait_for_requests(need)) {
                ++q.c.rx_stalls;  // woken by the frontend once `need` buffers are posted
                break;
            }
            const auto u = q.rx->pending_requests();
            if (u.status == ring::ring_status::overflow) {
                fatal(q, "rx ring overflow (req_prod - rsp_prod > ring size)");
                return false;
            }
            avail = u.count;
        }
        const std::size_t begin = copy_ops_.size();
        for (unsigned s = 0; s < need; ++s) {
            const abi::rx_request r = q.rx->take_request();
            platform::copy_op op;
            op.direction = platform::copy_op::dir::to_peer;
            op.ref = r.gref;
            op.offset = 0;
            op.len = static_cast<std::uint16_t>(std::min<std::size_t>(page_size, it->len - s * page_size));
            op.local = it->data.data() + s * page_size;
            op.status = gnt_status::okay;
            copy_ops_.push_back(op);
            rx_ids_.push_back(r.id);  // echoed in the response written to this same slot
        }
        avail -= need;
        pkt_ops_.push_back({begin, copy_ops_.size()});
    }
    if (!copy_ops_.empty()) {
        svc_.mapper->copy(front_dom_, copy_ops_);
        q.c.grant_copies += copy_ops_.size();
        ++q.c.copy_batches;
    }
    for (std::size_t i = 0; i < pkt_ops_.size(); ++i) {
        bool ok = true;
        for (std::size_t k = pkt_ops_[i].begin; k < pkt_ops_[i].end; ++k)
            ok = ok && copy_ops_[k].status == gnt_status::okay;
        for (std::size_t k = pkt_ops_[i].begin; k < pkt_ops_[i].end; ++k) {
            abi::rx_response rsp{};
            rsp.id = rx_ids_[k];
            rsp.offset = 0;
            rsp.flags = (k + 1 < pkt_ops_[i].end) ? abi::rxf::more_data : 0;
            rsp.status = ok ? static_cast<std::int16_t>(copy_ops_[k].len) : abi::rsp::error;
            q.rx->put_response(rsp);
        }
        const auto& f = q.rx_backlog.front();
        if (ok) {
            ++q.c.rx_packets;
            q.c.rx_bytes += f.len;
        } else {
            ++q.c.rx_errors;
            ++q.c.grant_errors;
        }
        q.rx_backlog_bytes -= f.len;
        q.rx_backlog.pop_front();
    }
    rx_ids_.clear();
    const bool progressed = !pkt_ops_.empty();
    // A frame the frontend cannot take (multi-slot without feature-sg) is dropped.
    if (pkt_ops_.size() == nframes && !q.rx_backlog.empty() && slots_for(q.rx_backlog.front().len) > 1 &&
        !frontend_sg_) {
        ++q.c.rx_drops;
        q.rx_backlog_bytes -= q.rx_backlog.front().len;
        q.rx_backlog.pop_front();
        if (q.rx->push_responses()) notify(q, q.rx_port);
        return true;
    }
    if (progressed && q.rx->push_responses()) notify(q, q.rx_port);
    return progressed || filled;
}

}  // namespace vifkit::core
