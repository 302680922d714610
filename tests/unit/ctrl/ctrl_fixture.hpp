// Fixture for backend_handler conformance tests: a broker process, a frontend
// domain in its own process (ctrl_frontend.hpp) and the backend (domid 0) in the
// test process, with a real emulated grant_mapper.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "ctrl_frontend.hpp"
#include "emu_test_support.hpp"
#include "fuzz_seed.hpp"
#include "vifkit/ctrl/backend_handler.hpp"
#include "vifkit/emu/domain.hpp"

namespace vifkit::ctrl::test {

inline constexpr unsigned default_queues = 2;

class CtrlFixture : public ::testing::Test {
protected:
    emu::test::broker_process broker_;
    frontend_process front_{broker_.path()};
    std::unique_ptr<emu::domain> back_ = emu::domain::attach(broker_.path(), 0, 16, 64);
    std::unique_ptr<platform::grant_mapper> mapper_ = back_->make_mapper();
    std::unique_ptr<backend_handler> h_ =
        std::make_unique<backend_handler>(*mapper_, front_.id(), default_queues, static_grant_limits{});
    std::uint16_t next_id_ = 1;

    void reset_handler(static_grant_limits lim, unsigned queues = default_queues) {
        h_.reset();
        h_ = std::make_unique<backend_handler>(*mapper_, front_.id(), queues, lim);
        if (seeding_) {  // fuzz_ctrl_handler "reset" record
            seed_ += '\x04';
            seed_ += static_cast<char>(((queues - 1) & 3) | (lim.enabled ? 0 : 4));
            put16(static_cast<std::uint16_t>(std::min(lim.per_queue, 0xFFFFu)));
            put16(static_cast<std::uint16_t>(std::min(lim.per_vif, 0xFFFFu)));
        }
    }

    // One request through handle(); checks the id/type echo.
    abi::ctrl_response call(std::uint16_t type, std::uint32_t d0 = 0, std::uint32_t d1 = 0,
                            std::uint32_t d2 = 0) {
        const abi::ctrl_request req{next_id_++, type, {d0, d1, d2}};
        if (seeding_) record_seed(req);
        const auto rsp = h_->handle(req);
        EXPECT_EQ(rsp.id, req.id);
        EXPECT_EQ(rsp.type, req.type);
        return rsp;
    }

    std::uint64_t copies() const { return h_->stats()["grant_copies"].get<std::uint64_t>(); }

    // ---- Seed corpus for fuzz/fuzz_ctrl_handler.cpp (VIFKIT_FUZZ_SEED_DIR) ----
    // Every request is recorded together with the frontend pages it names (the
    // page itself, and for ADD/DEL the refs its list names), in the fuzzer's
    // record format; the test's whole sequence becomes one seed.
    const bool seeding_ = std::getenv("VIFKIT_FUZZ_SEED_DIR") != nullptr;
    std::string seed_ = std::string(1, static_cast<char>(default_queues - 1));
    std::set<grant_ref_t> seeded_refs_;

    void TearDown() override {
        if (seeding_) vifkit::test::write_fuzz_seed("ctrl_handler", seed_);
    }
    void put16(std::uint16_t v) { seed_.append(reinterpret_cast<const char*>(&v), sizeof v); }
    void put32(std::uint32_t v) { seed_.append(reinterpret_cast<const char*>(&v), sizeof v); }
    // A "page" record for `ref` if the frontend has it granted (contents trimmed
    // of trailing zeros when with_data, else just the grant).
    bool seed_page(grant_ref_t ref, bool with_data) {
        try {
            const auto e = front_.entry(ref);
            if ((e.flags & emu::gtf::permit_access) == 0) return false;
            std::vector<std::uint8_t> bytes;
            if (with_data) {
                bytes = front_.read(ref, 0, static_cast<std::uint16_t>(page_size));
                while (!bytes.empty() && bytes.back() == 0) bytes.pop_back();
            }
            seed_ += '\x01';
            put32(ref);
            seed_ += static_cast<char>((e.flags & emu::gtf::readonly) ? 0 : 1);
            put16(0);
            put16(static_cast<std::uint16_t>(bytes.size()));
            seed_.append(bytes.begin(), bytes.end());
            return true;
        } catch (const std::exception&) {
            return false;  // not a ref of the frontend's table
        }
    }
    void record_seed(const abi::ctrl_request& req) {
        for (const std::uint32_t ref : {req.data[0], req.data[1]}) {
            if (!seed_page(ref, true)) continue;
            if ((req.type != abi::ctrl_type::add_gref_mapping && req.type != abi::ctrl_type::del_gref_mapping) ||
                ref != req.data[1])
                continue;
            const auto n = std::min<std::uint32_t>(req.data[2], 64);  // the first entries suffice
            const auto raw = front_.read(ref, 0, static_cast<std::uint16_t>(n * sizeof(abi::gref_entry)));
            for (std::uint32_t i = 0; i < n; ++i) {
                abi::gref_entry g;
                std::memcpy(&g, raw.data() + i * sizeof g, sizeof g);
                if (seeded_refs_.insert(g.ref).second) seed_page(g.ref, false);
            }
        }
        seed_ += '\x00';
        seed_.append(reinterpret_cast<const char*>(&req), sizeof req);
    }
};

}  // namespace vifkit::ctrl::test
