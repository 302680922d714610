#include "broker_registry.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <system_error>

#include "protocol.hpp"

namespace vifkit::emu::detail {

namespace {

// How long the broker waits for a live mapper's entry lock when releasing a dead
// domain's pins. A mapper stopped while holding one must not hang the broker.
constexpr std::chrono::milliseconds release_lock_timeout{20};

}  // namespace

registry::registry(const broker::limits& lim) : lim_(lim) {
    const std::size_t bytes = round_to_pages(directory_slots * sizeof(directory_slot));
    dir_fd_ = make_memfd("vifkit-emu-directory", bytes);
    if (!dir_fd_ || seal_size(dir_fd_.get()) < 0)
        throw std::system_error(errno, std::generic_category(), "broker: directory memfd");
    dir_ = mapping::map(dir_fd_.get(), bytes, PROT_READ | PROT_WRITE);
    dir_ro_fd_ = reopen_readonly(dir_fd_.get());
    if (!dir_ || !dir_ro_fd_)
        throw std::system_error(errno, std::generic_category(), "broker: directory mapping");
}

int registry::check(const registration& r) const {
    if (r.mem_pages == 0 || r.mem_pages > lim_.max_mem_pages) return EINVAL;
    if (r.entries <= first_free_gref || r.entries > lim_.max_grant_entries) return EINVAL;
    const std::uint64_t bytes = r.mem_pages * page_size;
    if (r.base == 0 || r.base % page_size != 0 || r.base > UINTPTR_MAX - bytes) return EINVAL;
    if (doms_.size() >= lim_.max_domains) return ENOSPC;
    return 0;
}

int registry::pick(std::uint32_t want, domid_t& out) const {
    if (want == domid_invalid) {
        // Lowest free domid from 1; 0 is the backend/driver domain and only by request.
        domid_t id = 1;
        for (auto it = doms_.upper_bound(0); it != doms_.end() && it->first == id; ++it) ++id;
        if (id >= directory_slots) return ENOSPC;
        out = id;
        return 0;
    }
    if (want >= directory_slots) return EINVAL;
    if (doms_.count(static_cast<domid_t>(want)) != 0) return EEXIST;
    out = static_cast<domid_t>(want);
    return 0;
}

int registry::adopt_memory(domain_rec& d, unique_fd memfd) const {
    const int fd = memfd.get();
    // Only a memfd can be sealed against shrinking; an unsealed file could be
    // truncated under the mappers, turning their next access into SIGBUS.
    const int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0) return EINVAL;
    if ((seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) != 0) return EINVAL;
    constexpr int need = F_SEAL_SHRINK | F_SEAL_GROW;
    if ((seals & F_SEAL_SEAL) == 0) {
        if (::fcntl(fd, F_ADD_SEALS, need | F_SEAL_SEAL) < 0) return EINVAL;
    } else if ((seals & need) != need) {
        return EINVAL;
    }
    struct stat st{};
    if (::fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return EINVAL;
    if (static_cast<std::uint64_t>(st.st_size) < d.mem_pages * page_size) return EINVAL;
    d.mem_fd = std::move(memfd);
    return 0;
}

int registry::make_tables(domain_rec& d) const {
    const std::size_t tbytes = round_to_pages(d.entries * sizeof(grant_entry_v1));
    const std::size_t abytes = round_to_pages(active_table_bytes(d.entries));
    d.table_fd = make_memfd("vifkit-grant-table", tbytes);
    d.active_fd = make_memfd("vifkit-active-grants", abytes);
    if (!d.table_fd || !d.active_fd) return ENOMEM;
    if (seal_size(d.table_fd.get()) < 0 || seal_size(d.active_fd.get()) < 0) return ENOMEM;
    d.table = mapping::map(d.table_fd.get(), tbytes, PROT_READ | PROT_WRITE);
    d.active = mapping::map(d.active_fd.get(), abytes, PROT_READ | PROT_WRITE);
    if (!d.table || !d.active) return ENOMEM;
    if (int rc = init_active_table(d.active.get(), d.entries); rc < 0) return -rc;
    d.view = grant_table_view(grant_words(d.table.get(), d.entries), d.active.get(), d.mem_pages);
    return 0;
}

int registry::add(registration r, domid_t& out) {
    if (int err = check(r); err != 0) return err;
    domid_t id = 0;
    if (int err = pick(r.want, id); err != 0) return err;
    auto d = std::make_unique<domain_rec>();
    d->id = id;
    d->pid = r.pid;
    d->mem_pages = r.mem_pages;
    d->entries = r.entries;
    d->base = r.base;
    if (int err = adopt_memory(*d, std::move(r.memfd)); err != 0) return err;
    if (int err = make_tables(*d); err != 0) return err;
    // Lets mappers tell "peer exited" apart from "pid reused by someone else".
    d->pidfd = unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, r.pid, 0)));
    d->generation = next_generation_++;
    if (next_generation_ == 0) next_generation_ = 1;  // 0 means "not registered"
    publish(id, d->generation, d->pid);
    doms_.emplace(id, std::move(d));
    out = id;
    return 0;
}

void registry::remove(domid_t id) {
    auto it = doms_.find(id);
    if (it == doms_.end()) return;
    publish(id, 0, 0);
    doms_.erase(it);
    // Xen releases a dying domain's maptrack; here that means its pins.
    for (auto& [other, d] : doms_) d->view.release_holder(id, release_lock_timeout);
}

const domain_rec* registry::find(domid_t id) const {
    auto it = doms_.find(id);
    return it == doms_.end() ? nullptr : it->second.get();
}

std::optional<domid_t> registry::domid_of_pid(pid_t pid) const {
    for (const auto& [id, d] : doms_)
        if (d->pid == pid) return id;
    return std::nullopt;
}

void registry::publish(domid_t id, std::uint32_t generation, pid_t pid) {
    auto* slots = static_cast<directory_slot*>(dir_.get());
    std::atomic_ref<std::int32_t>(slots[id].pid).store(pid, std::memory_order_relaxed);
    std::atomic_ref<std::uint32_t>(slots[id].generation).store(generation, std::memory_order_release);
}

}  // namespace vifkit::emu::detail
