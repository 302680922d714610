// vifkit::platform::store: a thin RAII wrapper over libxenstore, used on real
// Xen and on the emulator alike (libxenstore reads XENSTORED_PATH when a
// handle is opened, which points it at vifkit-xenstored).
//
// Failures return false / nullopt with errno set as libxenstore left it
// (ENOENT, EACCES, EAGAIN on a conflicting commit, ...). Values read back are
// peer-controlled strings: read_int() parses strictly.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vifkit/platform/types.hpp"

struct xs_handle;

namespace vifkit::platform {

struct store_perm {
    domid_t id;
    char perm;  // 'n' none, 'r' read, 'w' write, 'b' both
};

using xs_tx = std::uint32_t;
inline constexpr xs_tx no_tx = 0;

class store {
public:
    // xs_open(0). nullptr with errno set on failure.
    static std::unique_ptr<store> open();
    ~store();
    store(const store&) = delete;
    store& operator=(const store&) = delete;

    std::optional<std::string> read(const std::string& path, xs_tx t = no_tx);
    bool write(const std::string& path, std::string_view value, xs_tx t = no_tx);
    bool mkdir(const std::string& path, xs_tx t = no_tx);
    bool rm(const std::string& path, xs_tx t = no_tx);
    std::optional<std::vector<std::string>> directory(const std::string& path, xs_tx t = no_tx);
    // perms[0] is the owner and everyone else's default. EINVAL for a bad perm letter.
    bool set_perms(const std::string& path, std::span<const store_perm> perms, xs_tx t = no_tx);
    std::optional<std::vector<store_perm>> get_perms(const std::string& path, xs_tx t = no_tx);

    std::optional<xs_tx> begin();
    // false + errno on failure; EAGAIN means "conflict: start the transaction over".
    bool commit(xs_tx t);
    void abort(xs_tx t);

    bool watch(const std::string& path, const std::string& token);
    bool unwatch(const std::string& path, const std::string& token);
    // Readable when watch events are pending (xs_fileno).
    int fd();
    // Non-blocking: the next {path, token}, or nullopt (errno EAGAIN) if none.
    std::optional<std::pair<std::string, std::string>> next_watch();

    // "/local/domain/<d>" as the daemon reports it; empty on failure.
    std::string domain_path(domid_t d);

    // Whole-string signed decimal, nothing else (no spaces, no '+', no junk, no
    // overflow); nullopt (errno EINVAL or ERANGE) otherwise or if unreadable.
    std::optional<long long> read_int(const std::string& path, xs_tx t = no_tx);
    // The value, or `fallback` if it cannot be read.
    std::string read_or(const std::string& path, std::string_view fallback, xs_tx t = no_tx);

    // Parses like read_int() does; exposed for callers that already hold a value.
    static std::optional<long long> parse_int(std::string_view s);

    [[nodiscard]] xs_handle* native() const { return h_; }

private:
    explicit store(xs_handle* h) : h_(h) {}
    xs_handle* h_;
};

}  // namespace vifkit::platform
