// Test support for the emulated hypervisor: real child processes, a command
// channel to each, a broker running in its own process, and a "remote domain"
// (a child attached as a domain and driven by commands). Shared by
// tests/unit/emu and tests/integration/emu.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vifkit/emu/broker.hpp"
#include "vifkit/emu/grant_entry.hpp"
#include "vifkit/util/event_loop.hpp"

namespace vifkit::emu::test {

inline constexpr std::chrono::milliseconds default_timeout{10000};

// A fresh unix socket path under /tmp, short enough for sun_path.
std::string socket_path(std::string_view tag);

// One end of a SOCK_SEQPACKET socketpair between the test and a child process.
// Failures (timeout, EOF, size mismatch) throw std::runtime_error.
class channel {
public:
    channel() = default;
    explicit channel(int fd) : fd_(fd) {}
    channel(channel&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    channel& operator=(channel&& o) noexcept;
    ~channel();

    [[nodiscard]] int fd() const { return fd_; }
    void send(const void* p, std::size_t n);
    void recv(void* p, std::size_t n, std::chrono::milliseconds timeout = default_timeout);
    // Non-blocking: false when nothing is queued.
    bool try_recv(void* p, std::size_t n);

    template <class T>
    void put(const T& v) { send(&v, sizeof(T)); }
    template <class T>
    T get(std::chrono::milliseconds timeout = default_timeout) {
        T v{};
        recv(&v, sizeof(T), timeout);
        return v;
    }

private:
    int fd_ = -1;
};

// A forked child running fn(channel); its exit code is fn's return value (an
// escaping exception exits 100). The child closes every inherited fd except its
// channel end, so it holds no broker socket or domain connection of the test.
class child {
public:
    static child spawn(const std::function<int(channel&)>& fn);
    child(child&& o) noexcept;
    child& operator=(child&&) = delete;
    ~child();  // SIGKILL + reap when still running

    [[nodiscard]] pid_t pid() const { return pid_; }
    channel& chan() { return chan_; }
    // Exit code, or 128 + signal. Throws on timeout.
    int wait(std::chrono::milliseconds timeout = default_timeout);
    // SIGKILL and reap.
    void kill9();

private:
    child() = default;
    pid_t pid_ = -1;
    int pidfd_ = -1;
    bool reaped_ = false;
    int status_ = 0;
    channel chan_;
};

// Dispatch `loop` until pred() holds (true) or `timeout` passes (false).
// Each fd in `wake_fds` (e.g. a child's channel) also wakes the loop, so pred()
// is re-checked as soon as a message arrives there.
bool pump_until(util::event_loop& loop, const std::function<bool()>& pred,
                std::initializer_list<int> wake_fds = {},
                std::chrono::milliseconds timeout = default_timeout);

// A broker in its own process (own event loop); hook calls are reported back.
class broker_process {
public:
    struct event {
        std::uint32_t up = 0;  // 1 = on_domain_up, 0 = on_domain_gone
        domid_t id = 0;
    };
    broker_process();
    explicit broker_process(const broker::limits& lim);
    ~broker_process();
    [[nodiscard]] const std::string& path() const { return path_; }
    // Next hook event, in order. Throws on timeout.
    event next_event(std::chrono::milliseconds timeout = default_timeout);
    // Skip events until on_domain_gone(id).
    void wait_gone(domid_t id);

private:
    std::string path_;
    std::optional<child> child_;
};

// A child process attached as a domain, driven through its channel. Every call
// is a synchronous command; failures inside the child come back as values.
class remote_domain {
public:
    // Throws std::runtime_error carrying the child's attach errno on failure.
    remote_domain(const std::string& broker_path, domid_t want = domid_invalid,
                  std::size_t mem_pages = 64, std::size_t grant_entries = 64);

    [[nodiscard]] domid_t id() const { return id_; }
    [[nodiscard]] pid_t pid() const { return child_->pid(); }
    void kill9() { child_->kill9(); }
    // Orderly exit; returns the child's exit code.
    int quit();

    // --- granting side (this child's own pages) ---
    std::vector<grant_ref_t> share(domid_t peer, std::size_t n, bool writable);
    std::vector<gnt_status> unshare(std::span<const grant_ref_t> refs);
    void fill(grant_ref_t ref, std::uint8_t byte);
    std::vector<std::uint8_t> read(grant_ref_t ref, std::uint16_t off, std::uint16_t len);
    grant_entry_v1 entry(grant_ref_t ref);
    void write_entry(grant_ref_t ref, const grant_entry_v1& e);
    // Hostile: munmap the granted page from the child's own address space.
    void drop_page(grant_ref_t ref);
    std::size_t shared_count();

    // --- mapping side (peers' pages, held in the child) ---
    std::vector<gnt_status> map(domid_t peer, std::span<const grant_ref_t> refs, bool readonly);
    // Fill every page this child has mapped with `byte`.
    void write_mapped(std::uint8_t byte);
    std::vector<gnt_status> unmap_all();
    std::size_t mapped_count();

    // --- event channels ---
    // nullopt: failed, with the errno in last_errno().
    std::optional<evtchn_port_t> alloc_unbound(domid_t remote);
    std::optional<evtchn_port_t> bind(domid_t remote, evtchn_port_t port);
    int notify(evtchn_port_t port);
    // poll() on the handle's fd for up to `wait`.
    bool readable(std::chrono::milliseconds wait);
    std::optional<evtchn_port_t> pending();
    int unmask(evtchn_port_t port);
    int unbind(evtchn_port_t port);
    std::size_t bound_count();
    [[nodiscard]] int last_errno() const { return last_errno_; }

    struct command;
    struct reply;

private:
    reply call(const command& c);

    std::optional<child> child_;
    domid_t id_ = domid_invalid;
    int last_errno_ = 0;
};

}  // namespace vifkit::emu::test
