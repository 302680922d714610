#include "vifkit/platform/store.hpp"

// libxenstore's headers have no extern "C" guard of their own.
extern "C" {
#include <xenstore.h>
}

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <limits>

namespace vifkit::platform {

namespace {

// libxenstore hands out malloc'd memory; free() it without disturbing errno.
struct c_free {
    void operator()(void* p) const noexcept {
        const int saved = errno;
        std::free(p);
        errno = saved;
    }
};
template <class T>
using c_ptr = std::unique_ptr<T, c_free>;

std::optional<unsigned> to_xs_perm(char c) {
    switch (c) {
    case 'n': return XS_PERM_NONE;
    case 'r': return XS_PERM_READ;
    case 'w': return XS_PERM_WRITE;
    case 'b': return XS_PERM_READ | XS_PERM_WRITE;
    default: return std::nullopt;
    }
}

char from_xs_perm(unsigned p) {
    switch (p & (XS_PERM_READ | XS_PERM_WRITE)) {
    case XS_PERM_READ: return 'r';
    case XS_PERM_WRITE: return 'w';
    case XS_PERM_READ | XS_PERM_WRITE: return 'b';
    default: return 'n';
    }
}

}  // namespace

std::unique_ptr<store> store::open() {
    xs_handle* h = xs_open(0);
    if (h == nullptr) return nullptr;
    return std::unique_ptr<store>(new store(h));
}

store::~store() { xs_close(h_); }

std::optional<std::string> store::read(const std::string& path, xs_tx t) {
    unsigned len = 0;
    c_ptr<char> v(static_cast<char*>(xs_read(h_, t, path.c_str(), &len)));
    if (!v) return std::nullopt;
    return std::string(v.get(), len);
}

bool store::write(const std::string& path, std::string_view value, xs_tx t) {
    return xs_write(h_, t, path.c_str(), value.data(), static_cast<unsigned>(value.size()));
}

bool store::mkdir(const std::string& path, xs_tx t) { return xs_mkdir(h_, t, path.c_str()); }

bool store::rm(const std::string& path, xs_tx t) { return xs_rm(h_, t, path.c_str()); }

std::optional<std::vector<std::string>> store::directory(const std::string& path, xs_tx t) {
    unsigned num = 0;
    c_ptr<char*> list(xs_directory(h_, t, path.c_str(), &num));
    if (!list) return std::nullopt;
    std::vector<std::string> out;
    out.reserve(num);
    for (unsigned i = 0; i < num; ++i) out.emplace_back(list.get()[i]);
    return out;
}

bool store::set_perms(const std::string& path, std::span<const store_perm> perms, xs_tx t) {
    std::vector<xs_permissions> native(perms.size());
    for (std::size_t i = 0; i < perms.size(); ++i) {
        const auto p = to_xs_perm(perms[i].perm);
        if (!p) {
            errno = EINVAL;
            return false;
        }
        native[i].id = perms[i].id;
        native[i].perms = *p;
    }
    return xs_set_permissions(h_, t, path.c_str(), native.data(),
                              static_cast<unsigned>(native.size()));
}

std::optional<std::vector<store_perm>> store::get_perms(const std::string& path, xs_tx t) {
    unsigned num = 0;
    c_ptr<xs_permissions> list(xs_get_permissions(h_, t, path.c_str(), &num));
    if (!list) return std::nullopt;
    std::vector<store_perm> out;
    out.reserve(num);
    for (unsigned i = 0; i < num; ++i)
        out.push_back(store_perm{static_cast<domid_t>(list.get()[i].id),
                                 from_xs_perm(list.get()[i].perms)});
    return out;
}

std::optional<xs_tx> store::begin() {
    const xs_transaction_t t = xs_transaction_start(h_);
    if (t == XBT_NULL) return std::nullopt;
    return t;
}

bool store::commit(xs_tx t) { return xs_transaction_end(h_, t, false); }

void store::abort(xs_tx t) { (void)xs_transaction_end(h_, t, true); }

bool store::watch(const std::string& path, const std::string& token) {
    return xs_watch(h_, path.c_str(), token.c_str());
}

bool store::unwatch(const std::string& path, const std::string& token) {
    return xs_unwatch(h_, path.c_str(), token.c_str());
}

int store::fd() { return xs_fileno(h_); }

std::optional<std::pair<std::string, std::string>> store::next_watch() {
    c_ptr<char*> ev(xs_check_watch(h_));
    if (!ev) return std::nullopt;
    return std::pair<std::string, std::string>(ev.get()[XS_WATCH_PATH], ev.get()[XS_WATCH_TOKEN]);
}

std::string store::domain_path(domid_t d) {
    c_ptr<char> p(xs_get_domain_path(h_, d));
    return p ? std::string(p.get()) : std::string();
}

std::optional<long long> store::parse_int(std::string_view s) {
    long long v = 0;
    const char* first = s.data();
    const char* last = s.data() + s.size();
    const auto [end, ec] = std::from_chars(first, last, v);
    if (s.empty() || ec == std::errc::invalid_argument || end != last) {
        errno = EINVAL;
        return std::nullopt;
    }
    if (ec == std::errc::result_out_of_range) {
        errno = ERANGE;
        return std::nullopt;
    }
    return v;
}

std::optional<long long> store::read_int(const std::string& path, xs_tx t) {
    const auto v = read(path, t);
    if (!v) return std::nullopt;
    return parse_int(*v);
}

std::string store::read_or(const std::string& path, std::string_view fallback, xs_tx t) {
    auto v = read(path, t);
    return v ? std::move(*v) : std::string(fallback);
}

}  // namespace vifkit::platform
