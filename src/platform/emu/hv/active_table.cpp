#include "active_table.hpp"

#include <atomic>
#include <cerrno>
#include <ctime>

namespace vifkit::emu::detail {

namespace {

// Xen gives up on an entry the granter keeps rewriting after a few tries.
constexpr int set_status_retries = 4;
// A pin count no honest backend reaches; guards the counters against overflow.
constexpr std::uint32_t max_pins = 1U << 24;

// Lock guard for a robust mutex. A previous holder that died left the counters in
// a state where GTF bits may be set with no pin (safe: the page leaks), never the
// reverse, because pin sets the bit before counting and unpin counts before clearing.
class entry_lock {
public:
    explicit entry_lock(pthread_mutex_t& m) : m_(&m) { finish(pthread_mutex_lock(m_)); }
    entry_lock(pthread_mutex_t& m, std::chrono::milliseconds timeout) : m_(&m) {
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        const auto ns = ts.tv_nsec + timeout.count() * 1'000'000;
        ts.tv_sec += static_cast<time_t>(ns / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        finish(pthread_mutex_timedlock(m_, &ts));
    }
    ~entry_lock() {
        if (ok_) pthread_mutex_unlock(m_);
    }
    entry_lock(const entry_lock&) = delete;
    entry_lock& operator=(const entry_lock&) = delete;
    [[nodiscard]] bool ok() const { return ok_; }

private:
    void finish(int rc) {
        if (rc == EOWNERDEAD) rc = pthread_mutex_consistent(m_);
        ok_ = rc == 0;
    }
    pthread_mutex_t* m_;
    bool ok_ = false;
};

std::uint32_t load(std::uint32_t& v) {
    return std::atomic_ref<std::uint32_t>(v).load(std::memory_order_relaxed);
}
void store(std::uint32_t& v, std::uint32_t x) {
    std::atomic_ref<std::uint32_t>(v).store(x, std::memory_order_relaxed);
}

}  // namespace

int init_active_table(void* base, std::size_t entries) {
    pthread_mutexattr_t attr;
    if (int rc = pthread_mutexattr_init(&attr); rc != 0) return -rc;
    int rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    auto* act = static_cast<active_entry*>(base);
    for (std::size_t i = 0; rc == 0 && i < entries; ++i) rc = pthread_mutex_init(&act[i].lock, &attr);
    pthread_mutexattr_destroy(&attr);
    return -rc;
}

gnt_status grant_table_view::set_status(grant_ref_t ref, domid_t self, bool writable) const {
    auto c = words_.combo(ref);
    std::uint32_t cur = c.load(std::memory_order_acquire);
    for (int i = 0; i < set_status_retries; ++i) {
        const std::uint16_t flags = combo_flags(cur);
        if ((flags & gtf::type_mask) != gtf::permit_access || combo_domid(cur) != self)
            return gnt_status::permission_denied;
        if (writable && (flags & gtf::readonly) != 0) return gnt_status::permission_denied;
        const std::uint32_t want = cur | gtf::reading | (writable ? gtf::writing : 0U);
        if (c.compare_exchange_strong(cur, want, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
            return gnt_status::okay;
    }
    return gnt_status::general_error;  // the granter keeps rewriting the entry
}

grant_table_view::pin_result grant_table_view::pin(grant_ref_t ref, domid_t self, bool writable) {
    if (!words_.in_range(ref)) return {gnt_status::bad_gntref};
    active_entry& act = act_[ref];
    entry_lock lk(act.lock);
    if (!lk.ok()) return {gnt_status::general_error};
    const std::uint32_t pins = load(act.pins);
    if (pins != 0 && act.holder != self) return {gnt_status::permission_denied};
    if (pins >= max_pins) return {gnt_status::general_error};
    if (auto st = set_status(ref, self, writable); st != gnt_status::okay) return {st};
    // The frame is read only after GTF_reading is committed (the granter can no
    // longer revoke), and latched: later granter rewrites do not move a pin.
    const std::uint32_t frame =
        pins != 0 ? act.frame : words_.frame(ref).load(std::memory_order_acquire);
    if (frame >= mem_pages_) {
        // Only reachable on the first pin, so we set both bits ourselves.
        words_.combo(ref).fetch_and(~std::uint32_t{gtf::reading | gtf::writing});
        return {gnt_status::bad_page};
    }
    act.frame = frame;
    act.holder = self;
    if (writable) store(act.writers, load(act.writers) + 1);
    store(act.pins, pins + 1);
    return {gnt_status::okay, frame};
}

void grant_table_view::unpin(grant_ref_t ref, bool writable) {
    if (!words_.in_range(ref)) return;
    active_entry& act = act_[ref];
    entry_lock lk(act.lock);
    if (!lk.ok()) return;
    const std::uint32_t pins = load(act.pins);
    if (pins == 0) return;  // released by the broker already
    std::uint32_t writers = load(act.writers);
    if (writable && writers != 0) store(act.writers, --writers);
    store(act.pins, pins - 1);
    std::uint32_t clear = 0;
    if (writers == 0) clear |= gtf::writing;
    if (pins == 1) clear |= gtf::reading;
    if (clear != 0) words_.combo(ref).fetch_and(~clear, std::memory_order_acq_rel);
}

std::size_t grant_table_view::release_holder(domid_t holder, std::chrono::milliseconds timeout) {
    std::size_t released = 0;
    for (grant_ref_t ref = 0; ref < words_.entries(); ++ref) {
        active_entry& act = act_[ref];
        if (load(act.pins) == 0) continue;  // cheap pre-check; re-checked under the lock
        entry_lock lk(act.lock, timeout);
        if (!lk.ok() || load(act.pins) == 0 || act.holder != holder) continue;
        store(act.pins, 0);
        store(act.writers, 0);
        words_.combo(ref).fetch_and(~std::uint32_t{gtf::reading | gtf::writing},
                                    std::memory_order_acq_rel);
        ++released;
    }
    return released;
}

}  // namespace vifkit::emu::detail
