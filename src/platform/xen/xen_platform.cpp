// platform/xen: open the services, find our domain id.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "vifkit/platform/xen.hpp"
#include "xen_detail.hpp"

namespace vifkit::platform::xen {

namespace detail {

void throw_open_error(const char* device, const char* call, int err) {
    std::string msg = std::string("platform xen: ") + call + " failed: " + device + ": " + std::strerror(err);
    if (err == ENOENT || err == ENODEV || err == ENXIO)
        msg += " (not running on Xen, or the driver for this device is not loaded:"
               " /dev/xen/evtchn needs xen-evtchn, /dev/xen/gntdev xen-gntdev,"
               " /dev/xen/gntalloc xen-gntalloc)";
    else if (err == EACCES || err == EPERM)
        msg += " (run as root)";
    throw std::runtime_error(msg);
}

gnt_status status_from_errno(int err) {
    switch (err) {
    case ENOMEM: return gnt_status::no_space;
    case ENOSPC: return gnt_status::no_space;
    case EINVAL: return gnt_status::bad_gntref;
    case EFAULT: return gnt_status::bad_virt_addr;
    case EPERM:
    case EACCES: return gnt_status::permission_denied;
    case ESRCH: return gnt_status::bad_domain;
    case EAGAIN: return gnt_status::eagain;
    default: return gnt_status::general_error;
    }
}

}  // namespace detail

bool devices_present(std::string* why) {
    for (const char* dev : {"/dev/xen/evtchn", "/dev/xen/gntdev", "/dev/xen/gntalloc"}) {
        struct stat st {};
        if (::stat(dev, &st) != 0) {
            if (why) *why = std::string(dev) + ": " + std::strerror(errno);
            return false;
        }
    }
    return true;
}

services open_services(domid_t self, const open_options& opts) {
    services s;
    s.self = self;
    s.evtchn = std::make_unique<detail::evtchn>();
    if (opts.mapper) s.mapper = std::make_unique<detail::mapper>(opts.max_grants);
    if (opts.sharer) s.sharer = std::make_unique<detail::sharer>();
    return s;
}

std::optional<domid_t> self_domid(store& s) {
    auto v = s.read_int("domid");
    if (!v) return std::nullopt;
    if (*v < 0 || *v >= domid_self) {
        errno = ERANGE;
        return std::nullopt;
    }
    return static_cast<domid_t>(*v);
}

}  // namespace vifkit::platform::xen
