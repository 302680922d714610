// netback driver: discovers vifs under /local/domain/<self>/backend/vif,
// dispatches xenstore watch events and event-channel events to them.
#include "vifkit/core/netback.hpp"

#include <fmt/format.h>

#include "netback_vif.hpp"
#include "vifkit/wire/xs_values.hpp"

namespace vifkit::core {

namespace {
constexpr std::size_t max_vifs = 1024;  // bound on what the store can make us create
}

netback::netback(util::event_loop& loop, platform::services& svc, platform::store& store, netback_config cfg)
    : loop_(loop), svc_(svc), store_(store), cfg_(std::move(cfg)),
      base_(fmt::format("/local/domain/{}/backend/{}", svc.self, cfg_.backend_type)) {}

netback::~netback() { shutdown(); }

void netback::start() {
    if (started_) return;
    started_ = true;
    loop_.add(svc_.evtchn->fd(), [this] { on_event_channel(); });
    loop_.add(store_.fd(), [this] {
        // Drain watch events; rescan on any change (bounded by max_vifs).
        bool rescan_needed = false;
        for (int i = 0; i < 4096; ++i) {
            auto ev = store_.next_watch();
            if (!ev) break;
            const auto& [path, token] = *ev;
            if (token == "backend")
                rescan_needed = true;
            else
                on_watch_event(token);
        }
        if (rescan_needed) rescan();
    });
    store_.mkdir(base_);
    store_.watch(base_, "backend");
    rescan();
}

void netback::rescan() {
    // Present devices: base/<domid>/<devid> with a "frontend" key.
    std::set<std::pair<domid_t, unsigned>> present;
    if (auto doms = store_.directory(base_)) {
        for (const auto& d : *doms) {
            auto dom = wire::parse_u32(d);
            if (!dom || *dom >= domid_self) continue;
            auto devs = store_.directory(base_ + "/" + d);
            if (!devs) continue;
            for (const auto& dv : *devs) {
                auto dev = wire::parse_u32(dv);
                if (!dev || present.size() >= max_vifs) continue;
                const std::string path = base_ + "/" + d + "/" + dv;
                if (store_.read(path + "/frontend")) present.insert({static_cast<domid_t>(*dom), *dev});
            }
        }
    }
    // Removed devices (toolstack detach): disconnect and forget.
    for (auto it = vifs_.begin(); it != vifs_.end();) {
        if (present.count(it->first)) {
            ++it;
            continue;
        }
        spdlog::info("vif{}.{}: backend node removed, destroying", it->first.first, it->first.second);
        for (const auto& [path, token] : it->second->watches()) store_.unwatch(path, token);
        it->second->close();
        it = vifs_.erase(it);
    }
    for (const auto& key : present) {
        if (vifs_.count(key)) continue;
        const std::string path = fmt::format("{}/{}/{}", base_, key.first, key.second);
        auto vif = std::make_unique<netback_vif>(loop_, svc_, store_, cfg_, key.first, key.second, path);
        if (!vif->probe()) continue;  // logged; retried on the next change under base_
        for (const auto& [p, token] : vif->watches()) store_.watch(p, token);
        vifs_.emplace(key, std::move(vif));
    }
}

void netback::on_watch_event(const std::string& token) {
    // "<kind>:<domid>:<devid>" (netback_vif::watches)
    const auto c1 = token.find(':');
    const auto c2 = token.find(':', c1 == std::string::npos ? c1 : c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) return;
    const auto dom = wire::parse_u32(std::string_view(token).substr(c1 + 1, c2 - c1 - 1));
    const auto dev = wire::parse_u32(std::string_view(token).substr(c2 + 1));
    if (!dom || !dev || *dom >= domid_self) return;
    auto it = vifs_.find({static_cast<domid_t>(*dom), *dev});
    if (it != vifs_.end()) it->second->on_watch(std::string_view(token).substr(0, c1));
}

void netback::on_event_channel() {
    // Bounded per wake-up; a port we do not know is a stale event (cheap no-op).
    for (int i = 0; i < 1024; ++i) {
        auto port = svc_.evtchn->pending();
        if (!port) break;
        for (auto& [key, vif] : vifs_) {
            if (vif->owns_port(*port)) {
                vif->on_event(*port);
                break;
            }
        }
        svc_.evtchn->unmask(*port);
    }
}

const char* to_string(tx_mode m) {
    switch (m) {
    case tx_mode::copy: return "copy";
    case tx_mode::map: return "map";
    case tx_mode::raw: return "raw";
    }
    return "?";
}

bool netback::poll() {
    bool work = false;
    for (auto& [key, vif] : vifs_) work = vif->poll() || work;
    return work;
}

void netback::shutdown() {
    for (auto& [key, vif] : vifs_) vif->close();
    vifs_.clear();
    if (started_) {
        loop_.remove(svc_.evtchn->fd());
        loop_.remove(store_.fd());
        store_.unwatch(base_, "backend");
        started_ = false;
    }
}

nlohmann::json netback::stats() const {
    nlohmann::json vifs = nlohmann::json::array();
    for (const auto& [key, vif] : vifs_) vifs.push_back(vif->stats());
    return {{"vifs", vifs},
            {"grant_mappings", svc_.mapper->mapped_count()},
            {"event_channels", svc_.evtchn->bound_count()}};
}

}  // namespace vifkit::core
