// Frontend control ring (netif-spec §2) and static grants (§1): after the
// backend is Connected, each queue's page pools are registered with
// GET_GREF_MAPPING_SIZE + ADD_GREF_MAPPING (rx pages writable, tx pages
// read-only), in batches of at most 512 and never more than GET returned.
// NOT_SUPPORTED or 0 means ordinary grants: the data path is the same pool
// either way. On shutdown the pools are DELeted before they are revoked.
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "vifkit/core/netfront.hpp"

namespace vifkit::core {

namespace {
constexpr std::uint32_t max_list = page_size / sizeof(abi::gref_entry);  // 512
}

bool netfront::setup_ctrl() {
    auto f = store_.read(back_path_ + "/feature-ctrl-ring");
    if (!cfg_.ctrl_ring || !f || f != "1") return true;  // optional feature
    platform::shared_page pages[2];
    if (!svc_.sharer->share_pages(back_dom_, pages, true)) return false;  // ring + list page (backend writes statuses)
    ctrl_page_ = pages[0];
    list_page_ = pages[1];
    ctrl_granted_ = true;
    ctrl_.emplace(ctrl_page_.addr);
    ctrl_timer_.emplace(loop_, *ctrl_);
    auto p = svc_.evtchn->alloc_unbound(back_dom_);
    if (!p) return false;
    ctrl_port_ = *p;
    ctrl_bound_ = true;
    if (bridge_) bridge_->attach(&*ctrl_, &*ctrl_timer_);
    return true;
}

void netfront::teardown_ctrl() {
    if (ctrl_) ctrl_->cancel_all();  // pending vifkit-ctl replies: CANCELLED, pages released
    if (bridge_) bridge_->detach();
    ctrl_timer_.reset();
    ctrl_.reset();
    if (ctrl_bound_) {
        svc_.evtchn->unbind(ctrl_port_);
        ctrl_bound_ = false;
    }
}

void netfront::flush_ctrl() {
    if (ctrl_timer_) ctrl_timer_->arm();
    if (ctrl_ && ctrl_->flush() && svc_.evtchn->notify(ctrl_port_) == 0 && !queues_.empty())
        ++queues_[0].c.notifies_sent;
}

void netfront::on_ctrl_event() {
    if (!ctrl_) return;
    if (!ctrl_->on_event()) return fault("control ring: rsp_prod beyond the ring");
    if (ctrl_ && ctrl_->more_pending()) loop_.defer([this] { on_ctrl_event(); });
    flush_ctrl();  // callbacks may have queued follow-up requests
}

void netfront::register_static(std::size_t qi) {
    if (!ctrl_ || !cfg_.static_grants || static_fallback_ || qi >= queues_.size()) return;
    if (queues_[qi].static_done) return register_static(qi + 1);
    // GET before every ADD batch: never ADD more than the backend has free (§1.5).
    const bool sent = ctrl_->send(
        abi::ctrl_type::get_gref_mapping_size, {static_cast<std::uint32_t>(qi), 0, 0},
        [this, qi](const abi::ctrl_response& r) {
            if (qi >= queues_.size()) return;
            if (r.status != abi::ctrl_status::success || r.data == 0) {
                if (qi == 0 && queues_[qi].static_refs.empty()) {
                    static_fallback_ = true;
                    spdlog::info("netfront: static grants unavailable (status {}, size {}); ordinary grants",
                                 ctrlfront::status_name(r.status), r.data);
                }
                queues_[qi].static_done = true;
                return register_static(qi + 1);
            }
            add_static_batch(qi, r.data);
        });
    if (!sent) spdlog::warn("netfront: control ring full, static grant registration postponed");
    flush_ctrl();
}

void netfront::add_static_batch(std::size_t qi, std::uint32_t free) {
    queue& q = queues_[qi];
    // Pool order: rx pages (writable) first, then tx pages (read-only).
    const std::size_t total = q.rx_bufs.size() + q.tx_bufs.size();
    const std::size_t n = std::min<std::size_t>({free, max_list, total - q.static_next});
    if (n == 0) {
        q.static_done = true;
        return register_static(qi + 1);
    }
    auto* list = static_cast<abi::gref_entry*>(list_page_.addr);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t k = q.static_next + i;
        const bool rx = k < q.rx_bufs.size();
        const auto& page = rx ? q.rx_bufs[k].page : q.tx_bufs[k - q.rx_bufs.size()].page;
        list[i] = {page.ref, static_cast<std::uint16_t>(rx ? 0 : abi::gref_flag_readonly), 0};
    }
    const bool sent = ctrl_->send(abi::ctrl_type::add_gref_mapping,
                                  {static_cast<std::uint32_t>(qi), list_page_.ref, static_cast<std::uint32_t>(n)},
                                  [this, qi, n](const abi::ctrl_response& r) {
                                      if (qi >= queues_.size()) return;
                                      queue& q = queues_[qi];
                                      if (r.status != abi::ctrl_status::success) {
                                          spdlog::warn("netfront: ADD_GREF_MAPPING queue {} failed: {}", qi,
                                                       ctrlfront::status_name(r.status));
                                          q.static_done = true;
                                          return register_static(qi + 1);
                                      }
                                      // From our own pools, not from the (backend-writable) list page.
                                      for (std::size_t i = 0; i < n; ++i) {
                                          const std::size_t k = q.static_next + i;
                                          q.static_refs.push_back(k < q.rx_bufs.size()
                                                                      ? q.rx_bufs[k].page.ref
                                                                      : q.tx_bufs[k - q.rx_bufs.size()].page.ref);
                                      }
                                      q.static_next += n;
                                      register_static(qi);  // next batch (GET first)
                                  });
    if (!sent) q.static_done = true;
    flush_ctrl();
}

std::size_t netfront::static_registered() const {
    std::size_t n = 0;
    for (const auto& q : queues_) n += q.static_refs.size();
    return n;
}

void netfront::unregister_static(std::chrono::milliseconds wait) {
    // DEL before revoke: while the backend keeps a page mapped it cannot be
    // revoked (and must never be reused, XSA-396).
    if (!ctrl_ || static_registered() == 0) return;
    for (std::size_t qi = 0; qi < queues_.size(); ++qi) {
        auto& refs = queues_[qi].static_refs;
        while (!refs.empty() && ctrl_) {
            const std::size_t n = std::min<std::size_t>(refs.size(), max_list);
            auto* list = static_cast<abi::gref_entry*>(list_page_.addr);
            for (std::size_t i = 0; i < n; ++i) list[i] = {refs[refs.size() - n + i], 0, 0};
            // Shared with the callback: after a timeout it may still run later
            // (cancel_all() at teardown), when this frame is gone.
            auto status = std::make_shared<std::optional<std::uint32_t>>();
            if (!ctrl_->send(abi::ctrl_type::del_gref_mapping,
                             {static_cast<std::uint32_t>(qi), list_page_.ref, static_cast<std::uint32_t>(n)},
                             [status](const abi::ctrl_response& r) { *status = r.status; }))
                break;
            flush_ctrl();
            const auto deadline = std::chrono::steady_clock::now() + wait;
            while (!*status && ctrl_ && std::chrono::steady_clock::now() < deadline)
                loop_.run_once(std::chrono::milliseconds(10));
            // No answer or a failure: keep the refs recorded; the revoke that
            // follows reports (and leaks) whatever the backend still maps.
            if (*status != abi::ctrl_status::success) break;
            refs.resize(refs.size() - n);
        }
    }
}

void netfront::start_ctl_socket() {
    ctrlfront::ctl_bridge::hooks h;
    h.grant_page = [this](bool writable) -> std::optional<ctrlfront::ctl_bridge::granted_page> {
        platform::shared_page pg{};
        if (!svc_.sharer->share_pages(back_dom_, std::span(&pg, 1), writable)) return std::nullopt;
        ctl_pages_.push_back(pg);
        return ctrlfront::ctl_bridge::granted_page{pg.ref, {static_cast<std::uint8_t*>(pg.addr), page_size}};
    };
    h.release_page = [this](std::uint32_t gref) {
        auto it = std::find_if(ctl_pages_.begin(), ctl_pages_.end(), [gref](const auto& p) { return p.ref == gref; });
        if (it == ctl_pages_.end()) return;
        gnt_status st;
        if (svc_.sharer->unshare(std::span(&*it, 1), std::span(&st, 1)) != 1) {
            ++leaked_pages_;  // still mapped by the backend: never reuse it (XSA-396)
            spdlog::warn("netfront: backend still maps vifkit-ctl page gref {}; leaking it", gref);
        }
        ctl_pages_.erase(it);
    };
    h.notify = [this] {
        if (ctrl_bound_ && svc_.evtchn->notify(ctrl_port_) == 0 && !queues_.empty()) ++queues_[0].c.notifies_sent;
    };
    h.stats = [this] { return stats(); };
    bridge_ = std::make_unique<ctrlfront::ctl_bridge>(std::move(h));
    ctl_server_ = std::make_unique<ctrlfront::ctl_server>(loop_, cfg_.ctl_socket, bridge_->handler());
    spdlog::info("netfront: vifkit-ctl socket {}", cfg_.ctl_socket);
}

}  // namespace vifkit::core
