// The set of platform services a netback or netfront is given (injected; no
// singletons). Created by platform/emu (emu::domain) or platform/xen.
#pragma once
#include <memory>

#include "vifkit/platform/event_channel.hpp"
#include "vifkit/platform/grant.hpp"

namespace vifkit::platform {

struct services {
    domid_t self = 0;
    std::unique_ptr<grant_sharer> sharer;   // frontend: our pages to a peer
    std::unique_ptr<grant_mapper> mapper;   // backend: peer pages to us
    std::unique_ptr<event_channels> evtchn;
};

}  // namespace vifkit::platform
