// A small control-ring backend for the bridge and vifkit-ctl tests: answers
// the gref messages the way netif-spec §1.4/§1.5 recommends, reading the list
// page from fake_grants (the pages the bridge granted), and NOT_SUPPORTED
// to everything else. Types in `silent` are never answered.
#pragma once
#include <set>

#include "ctrlfront_test_support.hpp"
#include "vifkit/ctrlfront/ctl_protocol.hpp"

namespace vifkit::ctrlfront::test {

class fake_ctrl_backend {
public:
    fake_ctrl_backend(void* ring_page, fake_grants& grants) : back_(ring_page), grants_(grants) {}

    std::set<std::uint16_t> silent;
    std::set<std::uint32_t> mapped;  // refs added with ADD
    std::uint32_t capacity = 1024;
    std::uint64_t served = 0;
    abi::ctrl_request last{};  // the last request seen

    // Answer everything pending; true if the frontend must be notified.
    bool serve() {
        for (const auto& r : back_.take_all()) {
            ++served;
            last = r;
            if (silent.count(r.type) != 0) continue;
            const auto [status, data] = answer(r);
            back_.answer(r, status, data);
        }
        const bool notify = back_.push();
        (void)back_.rearm();
        return notify;
    }

private:
    std::pair<std::uint32_t, std::uint32_t> answer(const abi::ctrl_request& r) {
        namespace t = abi::ctrl_type;
        namespace s = abi::ctrl_status;
        if (r.type == t::get_gref_mapping_size)
            return {r.data[0] == 0 ? s::success : s::invalid_parameter,
                    r.data[0] == 0 ? capacity - static_cast<std::uint32_t>(mapped.size()) : 0};
        if (r.type == t::add_gref_mapping || r.type == t::del_gref_mapping) {
            if (r.data[0] != 0 || r.data[2] == 0 || r.data[2] > 512) return {s::invalid_parameter, 0};
            auto it = grants_.pages.find(r.data[1]);
            if (it == grants_.pages.end() || !it->second.writable) return {s::invalid_parameter, 0};
            // Copy the list once, validate, then act (netif-spec §1.5 double fetch).
            auto list = parse_gref_list_page(it->second.bytes, r.data[2]);
            if (!list) return {s::invalid_parameter, 0};
            return r.type == t::add_gref_mapping ? add(*list) : del(*list, it->second.bytes);
        }
        return {s::not_supported, 0};
    }
    std::pair<std::uint32_t, std::uint32_t> add(const std::vector<abi::gref_entry>& list) {
        for (const auto& e : list)
            if (mapped.count(e.ref) != 0) return {abi::ctrl_status::invalid_parameter, 0};  // all or nothing
        for (const auto& e : list) mapped.insert(e.ref);
        return {abi::ctrl_status::success, 0};
    }
    std::pair<std::uint32_t, std::uint32_t> del(std::vector<abi::gref_entry> list, std::vector<std::uint8_t>& page) {
        std::uint32_t removed = 0;
        for (auto& e : list) {
            const bool ok = mapped.erase(e.ref) != 0;
            e.status = static_cast<std::uint16_t>(ok ? abi::ctrl_status::success : abi::ctrl_status::invalid_parameter);
            removed += ok ? 1 : 0;
        }
        const auto bytes = gref_list_page(list);
        std::copy(bytes.begin(), bytes.end(), page.begin());
        return {abi::ctrl_status::success, removed};
    }

    hand_backend back_;
    fake_grants& grants_;
};

}  // namespace vifkit::ctrlfront::test
