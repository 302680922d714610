#include "domain_core.hpp"

#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace vifkit::emu::detail {

namespace {

[[noreturn]] void fail(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), "emu::domain::attach: " + what);
}

unique_fd connect_broker(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) fail(ENAMETOOLONG, path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    unique_fd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!s) fail(errno, "socket");
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
        fail(errno, "connect " + path);
    return s;
}

}  // namespace

bool peer_info::exited() const {
    if (!pidfd) return false;
    pollfd p{pidfd.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;  // a pidfd turns readable when the process exits
}

std::unique_ptr<domain_core> domain_core::attach(const std::string& path, domid_t want,
                                                 std::size_t mem_pages, std::size_t entries,
                                                 std::function<void()> pump) {
    if (mem_pages == 0 || entries <= first_free_gref) fail(EINVAL, "sizes");
    std::unique_ptr<domain_core> d(new domain_core);
    d->pump_ = std::move(pump);
    unique_fd memfd = make_memfd("vifkit-guest", mem_pages * page_size);
    if (!memfd) fail(errno, "memfd");
    d->memory_ = mapping::map(memfd.get(), mem_pages * page_size, PROT_READ | PROT_WRITE);
    if (!d->memory_) fail(errno, "mmap guest memory");
    d->mem_pages_ = mem_pages;
    // Grant copies reach our memory with process_vm_{readv,writev} from the mapper's
    // process; under Yama ptrace_scope=1 that needs an explicit opt-in. Without
    // Yama this fails with EINVAL, which is fine.
    (void)::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    d->sock_ = connect_broker(path);
    d->do_register(want, memfd.get(), entries);
    d->free_frames_.reserve(mem_pages);
    for (std::size_t f = mem_pages; f-- > 0;) d->free_frames_.push_back(static_cast<std::uint32_t>(f));
    for (std::size_t r = entries; r-- > first_free_gref;) d->free_refs_.push_back(static_cast<grant_ref_t>(r));
    return d;
}

void domain_core::do_register(domid_t want, int memfd, std::size_t entries) {
    register_req req{};
    req.h.type = msg_type::register_req;
    req.want_domid = want;
    req.pid = ::getpid();
    req.mem_pages = mem_pages_;
    req.grant_entries = entries;
    req.base = reinterpret_cast<std::uintptr_t>(memory_.get());
    req.h.seq = ++seq_;
    // Sent by hand rather than through call(): this request carries an fd.
    const int fd_arr[] = {memfd};
    if (int rc = send_struct(sock_.get(), req, fd_arr); rc < 0) fail(-rc, "send register");
    if (pump_) pump_();
    register_rsp rsp{};
    std::vector<unique_fd> fds;
    bool trunc = false;
    const ssize_t n = recv_msg(sock_.get(), &rsp, sizeof(rsp), fds, trunc);
    if (n < 0) fail(static_cast<int>(-n), "recv register reply");
    if (static_cast<std::size_t>(n) != sizeof(rsp) || trunc ||
        rsp.h.type != msg_type::register_rsp || rsp.h.seq != req.h.seq)
        fail(EPROTO, "bad register reply");
    if (rsp.err != 0) fail(rsp.err, "broker refused registration");
    if (fds.size() != 2) fail(EPROTO, "register reply fds");
    table_map_ = mapping::map(fds[0].get(), round_to_pages(entries * sizeof(grant_entry_v1)),
                              PROT_READ | PROT_WRITE);
    directory_ = mapping::map(fds[1].get(), round_to_pages(directory_slots * sizeof(directory_slot)),
                              PROT_READ);
    if (!table_map_ || !directory_) fail(errno, "mmap grant table / directory");
    table_ = grant_words(table_map_.get(), entries);
    id_ = static_cast<domid_t>(rsp.domid);
    generation_ = rsp.generation;
}

int domain_core::call_raw(void* req, std::size_t req_len, msg_header& h, msg_type want,
                          void* rsp, std::size_t rsp_len, std::vector<unique_fd>& fds) {
    std::lock_guard lk(rpc_mu_);
    h.seq = ++seq_;
    if (int rc = send_msg(sock_.get(), req, req_len, {}); rc < 0) return rc;
    if (pump_) pump_();
    bool trunc = false;
    const ssize_t n = recv_msg(sock_.get(), rsp, rsp_len, fds, trunc);
    if (n < 0) return static_cast<int>(n);
    if (n == 0) return -ECONNRESET;
    msg_header got;
    std::memcpy(&got, rsp, sizeof(got));
    if (trunc || static_cast<std::size_t>(n) != rsp_len || got.type != want || got.seq != h.seq) {
        fds.clear();
        return -EPROTO;
    }
    return 0;
}

bool domain_core::broker_lost() {
    std::lock_guard lk(rpc_mu_);  // not in the middle of someone's reply
    std::byte b;
    const ssize_t n = ::recv(sock_.get(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    // Under rpc_mu_ no reply is due: a byte here breaks the protocol, 0 is a hang-up.
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

std::uint32_t domain_core::directory_generation(domid_t id) const {
    if (id >= directory_slots) return 0;
    auto* slots = static_cast<directory_slot*>(directory_.get());
    // Read-only mapping: atomic loads only.
    return std::atomic_ref<std::uint32_t>(slots[id].generation).load(std::memory_order_acquire);
}

std::shared_ptr<peer_info> domain_core::fetch_peer(domid_t id) {
    peer_req req{};
    req.h.type = msg_type::peer_req;
    req.domid = id;
    peer_rsp rsp{};
    std::vector<unique_fd> fds;
    if (int rc = call(req, msg_type::peer_rsp, rsp, fds); rc < 0) {
        errno = -rc;
        return nullptr;
    }
    if (rsp.err != 0 || fds.size() != (rsp.has_pidfd != 0 ? 4U : 3U)) {
        errno = rsp.err != 0 ? rsp.err : EPROTO;
        return nullptr;
    }
    auto p = std::make_shared<peer_info>();
    p->id = id;
    p->generation = rsp.generation;
    p->pid = rsp.pid;
    p->mem_pages = rsp.mem_pages;
    p->base = rsp.base;
    const std::size_t entries = rsp.grant_entries;
    p->grant_entries = entries;
    p->table = mapping::map(fds[1].get(), round_to_pages(entries * sizeof(grant_entry_v1)),
                            PROT_READ | PROT_WRITE);
    p->active = mapping::map(fds[2].get(), round_to_pages(active_table_bytes(entries)),
                             PROT_READ | PROT_WRITE);
    if (!p->table || !p->active) return nullptr;
    p->mem_fd = std::move(fds[0]);
    if (rsp.has_pidfd != 0) p->pidfd = std::move(fds[3]);
    p->view = grant_table_view(grant_words(p->table.get(), entries), p->active.get(), p->mem_pages);
    return p;
}

std::byte* domain_core::page(std::uint32_t frame) const {
    if (frame >= mem_pages_) return nullptr;
    return static_cast<std::byte*>(memory_.get()) + std::size_t{frame} * page_size;
}

bool domain_core::alloc(std::span<std::uint32_t> frames, std::span<grant_ref_t> refs) {
    std::lock_guard lk(alloc_mu_);
    if (free_frames_.size() < frames.size() || free_refs_.size() < refs.size()) return false;
    for (auto& f : frames) {
        f = free_frames_.back();
        free_frames_.pop_back();
    }
    for (auto& r : refs) {
        r = free_refs_.back();
        free_refs_.pop_back();
    }
    return true;
}

void domain_core::release(std::uint32_t frame, grant_ref_t ref) {
    std::lock_guard lk(alloc_mu_);
    free_frames_.push_back(frame);
    free_refs_.push_back(ref);
}

std::size_t domain_core::free_pages() const {
    std::lock_guard lk(alloc_mu_);
    return free_frames_.size();
}

std::size_t domain_core::free_refs() const {
    std::lock_guard lk(alloc_mu_);
    return free_refs_.size();
}

}  // namespace vifkit::emu::detail
