// Fixture for backend_handler conformance tests: a broker process, a frontend
// domain in its own process (ctrl_frontend.hpp) and the backend (domid 0) in the
// test process, with a real emulated grant_mapper.
#pragma once
#include <gtest/gtest.h>

#include <memory>

#include "ctrl_frontend.hpp"
#include "emu_test_support.hpp"
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
    }

    // One request through handle(); checks the id/type echo.
    abi::ctrl_response call(std::uint16_t type, std::uint32_t d0 = 0, std::uint32_t d1 = 0,
                            std::uint32_t d2 = 0) {
        const abi::ctrl_request req{next_id_++, type, {d0, d1, d2}};
        const auto rsp = h_->handle(req);
        EXPECT_EQ(rsp.id, req.id);
        EXPECT_EQ(rsp.type, req.type);
        return rsp;
    }

    std::uint64_t copies() const { return h_->stats()["grant_copies"].get<std::uint64_t>(); }
};

}  // namespace vifkit::ctrl::test
