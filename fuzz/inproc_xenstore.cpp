// In-process libxenstore over emu::xs::engine: see inproc_xenstore.hpp.
// The behaviour of each xs_* function follows libxenstore (tools/libs/store/xs.c
// in Xen 4.17): same request payloads, same reply post-processing.
#include "inproc_xenstore.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

// libxenstore's headers have no extern "C" guard of their own.
extern "C" {
#include <xenstore.h>
}

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "vifkit/emu/xenstored/engine.hpp"
#include "vifkit/emu/xenstored/wire.hpp"

namespace xs = vifkit::emu::xs;

struct xs_handle {
    xs::conn_id conn = 0;
    int efd = -1;                     // readable while `events` is non-empty
    std::deque<std::string> events;   // watch event payloads: "path\0token\0"
    std::size_t event_bytes = 0;      // as the daemon counts them: frames
    bool have_reply = false;
    std::uint32_t reply_type = 0;
    std::string reply;                // the last reply's body (capacity reused)
    std::string req;                  // the request payload being built (capacity reused)
};

namespace vifkit::fuzz {

namespace {

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "inproc_xenstore: %s\n", what);
    std::abort();
}

void signal_fd(int efd) {
    const std::uint64_t one = 1;
    if (::write(efd, &one, sizeof one) != sizeof one) die("eventfd write");
}

void drain_fd(int efd) {
    std::uint64_t v = 0;
    (void)!::read(efd, &v, sizeof v);  // EAGAIN when already clear: fine
}

}  // namespace

struct inproc_xenstore::impl {
    xs::limits lim;
    std::mutex mu;
    std::unordered_map<xs::conn_id, xs_handle*> handles;
    xs::engine eng{[this](xs::conn_id c, xs::msg_type type, std::uint32_t, std::uint32_t,
                          std::string_view payload) { deliver(c, type, payload); },
                   lim};

    // Called by the engine (under mu) for every message to connection c.
    void deliver(xs::conn_id c, xs::msg_type type, std::string_view payload) {
        auto it = handles.find(c);
        if (it == handles.end()) return;  // closed meanwhile
        xs_handle& h = *it->second;
        if (type == xs::msg_type::watch_event) {
            // vifkit-xenstored's bound for a client that does not read (server.cpp
            // drop_oldest_events): the oldest queued events go first.
            const std::size_t frame = xs::header_size + payload.size();
            while (!h.events.empty() && h.event_bytes + frame > lim.event_queue_bytes) {
                h.event_bytes -= xs::header_size + h.events.front().size();
                h.events.pop_front();
            }
            const bool was_empty = h.events.empty();
            h.events.emplace_back(payload);
            h.event_bytes += frame;
            if (was_empty) signal_fd(h.efd);
            return;
        }
        if (h.have_reply) die("engine sent two replies to one request");
        h.have_reply = true;
        h.reply_type = static_cast<std::uint32_t>(type);
        h.reply.assign(payload);
    }
};

namespace {

inproc_xenstore::impl* g_impl = nullptr;

inproc_xenstore::impl& get() {
    if (!g_impl) die("xs_* called before install_inproc_xenstore()");
    return *g_impl;
}

// libxenstore xs_talkv(): one request; its reply body (valid until the
// handle's next request) or nullptr + errno.
const std::string* talk(xs_handle* h, xs_transaction_t t, xs::msg_type type, std::string_view payload) {
    if (payload.size() > xs::payload_max) {
        errno = E2BIG;
        return nullptr;
    }
    auto& p = get();
    int err = 0;
    {
        std::lock_guard lock(p.mu);
        h->have_reply = false;
        xs::header hdr;
        hdr.type = static_cast<std::uint32_t>(type);
        hdr.req_id = 0;
        hdr.tx_id = t;
        hdr.len = static_cast<std::uint32_t>(payload.size());
        p.eng.handle_frame(h->conn, hdr,
                           std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()));
        if (!h->have_reply) die("engine sent no reply");
        if (h->reply_type == static_cast<std::uint32_t>(xs::msg_type::error)) {
            const std::string_view body(h->reply);
            err = xs::error_from_name(body.substr(0, body.find('\0')));
        } else if (h->reply_type != static_cast<std::uint32_t>(type)) {
            die("reply of another type than the request");  // libxenstore: EBADF, connection dropped
        }
    }
    if (err != 0) {
        errno = err;
        return nullptr;
    }
    return &h->reply;
}

// The request payload "<a>\0" or "<a>\0<b>\0", built in the handle's buffer.
std::string_view strings(xs_handle* h, std::string_view a, std::optional<std::string_view> b = std::nullopt) {
    h->req.assign(a).push_back('\0');
    if (b) h->req.append(*b).push_back('\0');
    return h->req;
}

// malloc'd copy with a NUL appended (libxenstore replies).
char* to_c(const std::string& s) {
    char* r = static_cast<char*>(std::malloc(s.size() + 1));
    if (!r) die("malloc");
    std::memcpy(r, s.data(), s.size());
    r[s.size()] = '\0';
    return r;
}

unsigned count_strings(const std::string& s) {
    unsigned n = 0;
    for (char c : s) n += c == '\0';
    return n;
}

// libxenstore xs_directory_common(): one block, the pointer array then the strings.
char** to_string_array(const std::string& strings, unsigned* num) {
    *num = count_strings(strings);
    const std::size_t ptrs = sizeof(char*) * std::size_t{*num};
    char** arr = static_cast<char**>(std::malloc(ptrs + strings.size() + 1));
    if (!arr) die("malloc");
    char* p = reinterpret_cast<char*>(arr) + ptrs;
    std::memcpy(p, strings.data(), strings.size());
    p[strings.size()] = '\0';
    for (unsigned i = 0; i < *num; ++i) {
        arr[i] = p;
        p += std::strlen(p) + 1;
    }
    return arr;
}

// libxenstore xs_directory_part(): the child list in pieces, restarted when the
// node's generation changes in between.
char** directory_part(xs_handle* h, xs_transaction_t t, const char* path, unsigned* num) {
    std::string list, gen;
    for (std::size_t off = 0;;) {
        const std::string offstr = std::to_string(off);
        const std::string* r = talk(h, t, xs::msg_type::directory_part, strings(h, path, offstr));
        if (!r) {
            if (errno == ENOSYS) errno = E2BIG;
            return nullptr;
        }
        const std::string rgen = r->substr(0, r->find('\0'));
        if (off != 0 && rgen != gen) {
            list.clear();
            off = 0;
            continue;
        }
        gen = rgen;
        const std::string part = r->substr(std::min(r->size(), rgen.size() + 1));
        list.resize(off);
        list += part;
        off += part.size();
        if (off <= 1 || list[off - 2] == '\0') break;
    }
    if (list.size() > 1) list.pop_back();  // the end marker
    return to_string_array(list, num);
}

}  // namespace

inproc_xenstore& install_inproc_xenstore() {
    static inproc_xenstore* once = [] {
        g_impl = new inproc_xenstore::impl;  // never destroyed: libFuzzer exits the process
        return new inproc_xenstore(g_impl);
    }();
    return *once;
}

void inproc_xenstore::introduce_domain(domid_t d) {
    std::lock_guard lock(p_->mu);
    p_->eng.introduce_domain(d);
}

void inproc_xenstore::release_domain(domid_t d) {
    std::lock_guard lock(p_->mu);
    p_->eng.release_domain(d);
}

std::size_t inproc_xenstore::handle_count() const {
    std::lock_guard lock(p_->mu);
    return p_->handles.size();
}

std::size_t inproc_xenstore::node_count() const {
    std::lock_guard lock(p_->mu);
    return p_->eng.nodes().size();
}

std::string inproc_xenstore::check() const {
    std::lock_guard lock(p_->mu);
    return p_->eng.nodes().check();
}

std::uint64_t inproc_xenstore::requests() const {
    std::lock_guard lock(p_->mu);
    return p_->eng.counters().requests;
}

std::uint64_t inproc_xenstore::watch_events() const {
    std::lock_guard lock(p_->mu);
    return p_->eng.counters().watch_events;
}

bool inproc_xenstore::owns(const xs_handle* h) {
    if (!g_impl || !h) return false;
    std::lock_guard lock(g_impl->mu);
    auto it = g_impl->handles.find(h->conn);
    return it != g_impl->handles.end() && it->second == h;
}

}  // namespace vifkit::fuzz

// ---- libxenstore's API (the subset platform::store uses) ----

using vifkit::fuzz::get;
using vifkit::fuzz::talk;
using vifkit::fuzz::strings;
using vifkit::fuzz::to_c;

extern "C" {

struct xs_handle* xs_open(unsigned long) {
    auto& p = get();
    auto* h = new xs_handle;
    h->efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->efd < 0) {
        const int e = errno;
        delete h;
        errno = e;
        return nullptr;
    }
    std::lock_guard lock(p.mu);
    h->conn = p.eng.connect(xs::caller::dom0());
    p.handles.emplace(h->conn, h);
    return h;
}

void xs_close(struct xs_handle* h) {
    if (!h) return;
    auto& p = get();
    {
        std::lock_guard lock(p.mu);
        p.eng.disconnect(h->conn);  // drops its watches and open transactions
        p.handles.erase(h->conn);
    }
    ::close(h->efd);
    delete h;
}

void* xs_read(struct xs_handle* h, xs_transaction_t t, const char* path, unsigned int* len) {
    const std::string* r = talk(h, t, xs::msg_type::read, strings(h, path));
    if (!r) return nullptr;
    if (len) *len = static_cast<unsigned>(r->size());
    return to_c(*r);
}

bool xs_write(struct xs_handle* h, xs_transaction_t t, const char* path, const void* data, unsigned int len) {
    (void)strings(h, path);
    h->req.append(static_cast<const char*>(data), len);
    return talk(h, t, xs::msg_type::write, h->req) != nullptr;
}

bool xs_mkdir(struct xs_handle* h, xs_transaction_t t, const char* path) {
    return talk(h, t, xs::msg_type::mkdir, strings(h, path)) != nullptr;
}

bool xs_rm(struct xs_handle* h, xs_transaction_t t, const char* path) {
    return talk(h, t, xs::msg_type::rm, strings(h, path)) != nullptr;
}

char** xs_directory(struct xs_handle* h, xs_transaction_t t, const char* path, unsigned int* num) {
    const std::string* r = talk(h, t, xs::msg_type::directory, strings(h, path));
    if (!r) {
        if (errno != E2BIG) return nullptr;
        return vifkit::fuzz::directory_part(h, t, path, num);
    }
    return vifkit::fuzz::to_string_array(*r, num);
}

struct xs_permissions* xs_get_permissions(struct xs_handle* h, xs_transaction_t t, const char* path,
                                          unsigned int* num) {
    const std::string* r = talk(h, t, xs::msg_type::get_perms, strings(h, path));
    if (!r) return nullptr;
    const unsigned n = vifkit::fuzz::count_strings(*r);
    auto* out = static_cast<xs_permissions*>(std::malloc(sizeof(xs_permissions) * (n ? n : 1)));
    if (!out) vifkit::fuzz::die("malloc");
    // xs_strings_to_perms(): "<letter><domid>", letters w r b n.
    const char* s = r->c_str();
    for (unsigned i = 0; i < n; ++i, s += std::strlen(s) + 1) {
        switch (*s) {
        case 'w': out[i].perms = XS_PERM_WRITE; break;
        case 'r': out[i].perms = XS_PERM_READ; break;
        case 'b': out[i].perms = XS_PERM_READ | XS_PERM_WRITE; break;
        case 'n': out[i].perms = XS_PERM_NONE; break;
        default: std::free(out); errno = EINVAL; return nullptr;
        }
        char* end = nullptr;
        out[i].id = static_cast<unsigned>(std::strtol(s + 1, &end, 0));
        if (*end != '\0' || s[1] == '\0') {
            std::free(out);
            errno = EINVAL;
            return nullptr;
        }
    }
    *num = n;
    return out;
}

bool xs_set_permissions(struct xs_handle* h, xs_transaction_t t, const char* path, struct xs_permissions* perms,
                        unsigned int num_perms) {
    std::string payload(path, std::strlen(path) + 1);
    for (unsigned i = 0; i < num_perms; ++i) {
        // xs_perm_to_string(): only the read/write bits name a letter.
        char c;
        switch (perms[i].perms & (XS_PERM_READ | XS_PERM_WRITE)) {
        case XS_PERM_WRITE: c = 'w'; break;
        case XS_PERM_READ: c = 'r'; break;
        case XS_PERM_READ | XS_PERM_WRITE: c = 'b'; break;
        default: c = 'n'; break;
        }
        payload += c;
        payload += std::to_string(static_cast<int>(perms[i].id));
        payload += '\0';
    }
    return talk(h, t, xs::msg_type::set_perms, payload) != nullptr;
}

bool xs_watch(struct xs_handle* h, const char* path, const char* token) {
    return talk(h, XBT_NULL, xs::msg_type::watch, strings(h, path, token)) != nullptr;
}

bool xs_unwatch(struct xs_handle* h, const char* path, const char* token) {
    return talk(h, XBT_NULL, xs::msg_type::unwatch, strings(h, path, token)) != nullptr;
}

int xs_fileno(struct xs_handle* h) { return h->efd; }

char** xs_check_watch(struct xs_handle* h) {
    auto& p = get();
    std::string ev;
    {
        std::lock_guard lock(p.mu);
        if (h->events.empty()) {
            errno = EAGAIN;
            return nullptr;
        }
        ev = std::move(h->events.front());
        h->events.pop_front();
        h->event_bytes -= xs::header_size + ev.size();
        if (h->events.empty()) vifkit::fuzz::drain_fd(h->efd);
    }
    unsigned n = 0;
    char** arr = vifkit::fuzz::to_string_array(ev, &n);
    if (n < 2) vifkit::fuzz::die("watch event with fewer than two strings");  // libxenstore asserts
    return arr;
}

xs_transaction_t xs_transaction_start(struct xs_handle* h) {
    const std::string* r = talk(h, XBT_NULL, xs::msg_type::transaction_start, std::string_view("", 1));
    if (!r) return XBT_NULL;
    return static_cast<xs_transaction_t>(std::strtoul(r->c_str(), nullptr, 0));
}

bool xs_transaction_end(struct xs_handle* h, xs_transaction_t t, bool abort) {
    return talk(h, t, xs::msg_type::transaction_end, abort ? std::string_view("F", 2) : std::string_view("T", 2)) !=
           nullptr;
}

char* xs_get_domain_path(struct xs_handle* h, unsigned int domid) {
    const std::string* r = talk(h, XBT_NULL, xs::msg_type::get_domain_path, strings(h, std::to_string(domid)));
    return r ? to_c(*r) : nullptr;
}

}  // extern "C"
