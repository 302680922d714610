// platform/xen: vifkit's platform services on real Xen, over the Linux
// /dev/xen devices through libxengnttab (gntdev), libxengntshr (gntalloc) and
// libxenevtchn (evtchn). The store is libxenstore's default connection
// (platform::store::open()), as on the emulator.
#pragma once
#include <optional>
#include <string>

#include "vifkit/platform/platform.hpp"
#include "vifkit/platform/store.hpp"

namespace vifkit::platform::xen {

// Which services to open. A backend needs the mapper (gntdev) and event
// channels; a frontend needs the sharer (gntalloc) and event channels.
struct open_options {
    bool sharer = true;
    bool mapper = true;
    // Grant mappings allowed on the gntdev handle (xengnttab_set_max_grants);
    // 0 leaves the driver default.
    unsigned max_grants = 0;
};

// Open the Xen services of this domain, whose id is `self`. Throws
// std::runtime_error naming the device that could not be opened (for example
// "/dev/xen/evtchn: No such file or directory (not running on Xen, or the
// xen-evtchn module is not loaded)").
services open_services(domid_t self, const open_options& opts = {});

// Our own domain id as xenstore reports it (the relative key "domid"; dom0's is
// written by xen-init-dom0). nullopt + errno when it cannot be read.
std::optional<domid_t> self_domid(store& s);

// Quick check that the Xen devices exist. False with a reason otherwise.
bool devices_present(std::string* why = nullptr);

}  // namespace vifkit::platform::xen
