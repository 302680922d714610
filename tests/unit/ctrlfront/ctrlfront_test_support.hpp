// Test doubles for the ctrlfront tests: a ring page, a hand-driven backend
// end of the control ring over the same page, a fake grant table for the
// bridge's pages, a temporary directory and a unix-socket test client that
// pumps an event loop while it waits.
#pragma once
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vifkit/abi/netif.hpp"
#include "vifkit/ctrlfront/ctl_bridge.hpp"
#include "vifkit/ring/ring.hpp"
#include "vifkit/util/event_loop.hpp"

namespace vifkit::ctrlfront::test {

using namespace std::chrono_literals;
using ctrl_back = ring::back_ring<ring::ctrl_ring_types>;

struct page_free {
    void operator()(void* p) const noexcept { std::free(p); }
};
using page_ptr = std::unique_ptr<void, page_free>;

// A page-aligned page pre-filled with garbage, so tests see what init() clears.
inline page_ptr make_page(std::uint8_t fill = 0xA5) {
    void* p = std::aligned_alloc(4096, 4096);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, fill, 4096);
    return page_ptr(p);
}

inline ring::sring_header* header(void* page) { return static_cast<ring::sring_header*>(page); }

// Raw response slot `idx` of the page (a hostile backend writing directly).
inline abi::ctrl_response& rsp_slot(void* page, std::uint32_t idx) {
    auto* entries = reinterpret_cast<ring::ctrl_ring_types::entry*>(static_cast<std::byte*>(page) +
                                                                    sizeof(ring::sring_header));
    return entries[idx & (ring::ctrl_ring_types::size - 1)].rsp;
}

// The backend end, driven by hand: take requests, answer them in any order.
class hand_backend {
public:
    explicit hand_backend(void* page) : ring_(page) {}
    std::vector<abi::ctrl_request> take_all() {
        std::vector<abi::ctrl_request> out;
        auto u = ring_.pending_requests();
        EXPECT_EQ(u.status, ring::ring_status::ok);
        for (; u.count > 0; --u.count) out.push_back(ring_.take_request());
        return out;
    }
    void answer(std::uint16_t id, std::uint16_t type, std::uint32_t status, std::uint32_t data) {
        ring_.put_response(abi::ctrl_response{id, type, status, data});
    }
    void answer(const abi::ctrl_request& r, std::uint32_t status, std::uint32_t data) {
        answer(r.id, r.type, status, data);
    }
    bool push() { return ring_.push_responses(); }
    bool rearm() { return ring_.final_check_for_requests(); }
    ctrl_back& ring() { return ring_; }

private:
    ctrl_back ring_;
};

// Pages "granted" by the bridge: gref -> page bytes.
struct fake_grants {
    struct page {
        std::vector<std::uint8_t> bytes = std::vector<std::uint8_t>(4096);
        bool writable = false;
    };
    std::map<std::uint32_t, page> pages;
    std::uint32_t next_ref = 100;
    std::uint64_t granted = 0, released = 0;
    bool fail = false;

    ctl_bridge::hooks hooks(std::function<void()> notify) {
        ctl_bridge::hooks h;
        h.grant_page = [this](bool writable) -> std::optional<ctl_bridge::granted_page> {
            if (fail) return std::nullopt;
            const std::uint32_t ref = next_ref++;
            auto& p = pages[ref];
            p.writable = writable;
            ++granted;
            return ctl_bridge::granted_page{ref, std::span<std::uint8_t>(p.bytes)};
        };
        h.release_page = [this](std::uint32_t ref) {
            EXPECT_EQ(pages.erase(ref), 1u) << "release of a page not granted: " << ref;
            ++released;
        };
        h.notify = std::move(notify);
        return h;
    }
};

// A fresh directory, removed with its contents at the end.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "vifkit-cf-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
        path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

// Pump `loop` until `done()` or the timeout; returns done().
inline bool pump_until(util::event_loop& loop, const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        loop.run_once(5ms);
    }
    return true;
}

// A unix-socket client for a server living in the same thread's loop.
class sock_client {
public:
    explicit sock_client(const std::string& path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
        connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~sock_client() { close(); }
    sock_client(const sock_client&) = delete;
    sock_client& operator=(const sock_client&) = delete;

    [[nodiscard]] bool connected() const { return connected_; }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
    // Writes everything (pumping the loop if the socket is full). False on error.
    bool send(util::event_loop& loop, std::string_view data) {
        while (!data.empty()) {
            const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n > 0) data.remove_prefix(static_cast<std::size_t>(n));
            else if (n < 0 && errno == EAGAIN) loop.run_once(5ms);
            else return false;
        }
        return true;
    }
    // Next line (without '\n'), pumping the loop; nullopt on EOF or timeout.
    std::optional<std::string> read_line(util::event_loop& loop, std::chrono::milliseconds timeout = 5s) {
        std::optional<std::string> line;
        pump_until(loop, [&] {
            fill();
            if (const auto nl = in_.find('\n'); nl != std::string::npos) {
                line = in_.substr(0, nl);
                in_.erase(0, nl + 1);
                return true;
            }
            return eof_;
        }, timeout);
        return line;
    }
    // True once the server closed the connection (after any buffered lines).
    bool wait_eof(util::event_loop& loop, std::chrono::milliseconds timeout = 5s) {
        return pump_until(loop, [&] { fill(); return eof_; }, timeout);
    }
    [[nodiscard]] const std::string& buffered() const { return in_; }

private:
    void fill() {
        char buf[4096];
        for (;;) {
            const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) in_.append(buf, static_cast<std::size_t>(n));
            else {
                if (n == 0 || (errno != EAGAIN && errno != EINTR)) eof_ = true;
                return;
            }
        }
    }
    int fd_ = -1;
    bool connected_ = false;
    bool eof_ = false;
    std::string in_;
};

}  // namespace vifkit::ctrlfront::test
