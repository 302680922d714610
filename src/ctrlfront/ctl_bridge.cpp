#include "vifkit/ctrlfront/ctl_bridge.hpp"

#include <algorithm>

namespace vifkit::ctrlfront {

ctl_bridge::ctl_bridge(hooks h) : hooks_(std::make_shared<hooks>(std::move(h))) {}

void ctl_bridge::attach(ctrl_client* client, expiry_timer* timer) {
    client_ = client;
    timer_ = client ? timer : nullptr;
}

ctl_server::handler ctl_bridge::handler() {
    return [this](const ctl_request& req, ctl_server::reply_fn reply) { handle(req, std::move(reply)); };
}

void ctl_bridge::handle(const ctl_request& req, ctl_server::reply_fn reply) {
    if (req.op == ctl_op::stats) return reply(format_stats(stats()));
    if (!client_) return reply(format_error("control ring not connected"));
    if (client_->broken()) return reply(format_error("control ring broken by the backend"));
    send(req, std::move(reply));
}

void ctl_bridge::send(const ctl_request& req, ctl_server::reply_fn reply) {
    std::array<std::uint32_t, 3> data = req.data;
    std::optional<granted_page> page;
    if (req.page) {
        page = hooks_->grant_page ? hooks_->grant_page(req.page_writable) : std::nullopt;
        if (!page || page->bytes.size() < req.page->size())
            return reply(format_error("cannot grant a page for the request"));
        std::fill(page->bytes.begin(), page->bytes.end(), std::uint8_t{0});
        std::copy(req.page->begin(), req.page->end(), page->bytes.begin());
        data[req.page_arg] = page->gref;
    }
    const std::size_t page_len = req.page ? req.page->size() : 0;
    auto on_done = [h = hooks_, page, page_len, reply](const abi::ctrl_response& rsp) {
        ctl_reply r{rsp.id, rsp.type, rsp.status, rsp.data, std::nullopt};
        if (page) {
            r.page_after.emplace(page->bytes.begin(), page->bytes.begin() + static_cast<std::ptrdiff_t>(page_len));
            if (h->release_page) h->release_page(page->gref);
        }
        reply(format_reply(r));
    };
    if (!client_->send(req.type, data, std::move(on_done), req.timeout)) {
        if (page && hooks_->release_page) hooks_->release_page(page->gref);
        return reply(format_error("control ring full"));
    }
    if (client_->flush() && hooks_->notify) hooks_->notify();
    if (timer_) timer_->arm();
}

nlohmann::json ctl_bridge::stats() const {
    nlohmann::json j{{"connected", client_ != nullptr}};
    if (client_) {
        const auto c = client_->get_counters();
        j["broken"] = client_->broken();
        j["outstanding"] = client_->outstanding();
        j["sent"] = c.sent;
        j["completed"] = c.completed;
        j["bad_responses"] = c.bad_responses;
        j["timeouts"] = c.timeouts;
        j["late_responses"] = c.late_responses;
        j["cancelled"] = c.cancelled;
    }
    if (hooks_->stats) j.update(hooks_->stats());
    return j;
}

}  // namespace vifkit::ctrlfront
