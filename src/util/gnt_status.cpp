#include "vifkit/platform/types.hpp"

namespace vifkit {

const char* to_string(gnt_status s) noexcept {
    switch (s) {
    case gnt_status::okay: return "okay";
    case gnt_status::general_error: return "general_error";
    case gnt_status::bad_domain: return "bad_domain";
    case gnt_status::bad_gntref: return "bad_gntref";
    case gnt_status::bad_handle: return "bad_handle";
    case gnt_status::bad_virt_addr: return "bad_virt_addr";
    case gnt_status::bad_dev_addr: return "bad_dev_addr";
    case gnt_status::no_device_space: return "no_device_space";
    case gnt_status::permission_denied: return "permission_denied";
    case gnt_status::bad_page: return "bad_page";
    case gnt_status::bad_copy_arg: return "bad_copy_arg";
    case gnt_status::address_too_big: return "address_too_big";
    case gnt_status::eagain: return "eagain";
    case gnt_status::no_space: return "no_space";
    }
    return "unknown";
}

}  // namespace vifkit
