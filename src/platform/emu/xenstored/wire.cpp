#include "vifkit/emu/xenstored/wire.hpp"

#include <cerrno>
#include <cstring>
// xs_wire.h only defines its errno-name table when EINVAL is visible.
#include <xen/io/xs_wire.h>

namespace vifkit::emu::xs {

static_assert(sizeof(xsd_sockmsg) == header_size);
static_assert(sizeof(header) == header_size);
static_assert(offsetof(header, type) == offsetof(xsd_sockmsg, type));
static_assert(offsetof(header, req_id) == offsetof(xsd_sockmsg, req_id));
static_assert(offsetof(header, tx_id) == offsetof(xsd_sockmsg, tx_id));
static_assert(offsetof(header, len) == offsetof(xsd_sockmsg, len));
static_assert(payload_max == XENSTORE_PAYLOAD_MAX);
static_assert(abs_path_max == XENSTORE_ABS_PATH_MAX);
static_assert(rel_path_max == XENSTORE_REL_PATH_MAX);
static_assert(msg_type_count == XS_TYPE_COUNT);
static_assert(static_cast<std::uint32_t>(msg_type::control) == XS_CONTROL);
static_assert(static_cast<std::uint32_t>(msg_type::directory) == XS_DIRECTORY);
static_assert(static_cast<std::uint32_t>(msg_type::read) == XS_READ);
static_assert(static_cast<std::uint32_t>(msg_type::get_perms) == XS_GET_PERMS);
static_assert(static_cast<std::uint32_t>(msg_type::watch) == XS_WATCH);
static_assert(static_cast<std::uint32_t>(msg_type::unwatch) == XS_UNWATCH);
static_assert(static_cast<std::uint32_t>(msg_type::transaction_start) == XS_TRANSACTION_START);
static_assert(static_cast<std::uint32_t>(msg_type::transaction_end) == XS_TRANSACTION_END);
static_assert(static_cast<std::uint32_t>(msg_type::introduce) == XS_INTRODUCE);
static_assert(static_cast<std::uint32_t>(msg_type::release) == XS_RELEASE);
static_assert(static_cast<std::uint32_t>(msg_type::get_domain_path) == XS_GET_DOMAIN_PATH);
static_assert(static_cast<std::uint32_t>(msg_type::write) == XS_WRITE);
static_assert(static_cast<std::uint32_t>(msg_type::mkdir) == XS_MKDIR);
static_assert(static_cast<std::uint32_t>(msg_type::rm) == XS_RM);
static_assert(static_cast<std::uint32_t>(msg_type::set_perms) == XS_SET_PERMS);
static_assert(static_cast<std::uint32_t>(msg_type::watch_event) == XS_WATCH_EVENT);
static_assert(static_cast<std::uint32_t>(msg_type::error) == XS_ERROR);
static_assert(static_cast<std::uint32_t>(msg_type::is_domain_introduced) ==
              XS_IS_DOMAIN_INTRODUCED);
static_assert(static_cast<std::uint32_t>(msg_type::resume) == XS_RESUME);
static_assert(static_cast<std::uint32_t>(msg_type::set_target) == XS_SET_TARGET);
static_assert(static_cast<std::uint32_t>(msg_type::reset_watches) == XS_RESET_WATCHES);
static_assert(static_cast<std::uint32_t>(msg_type::directory_part) == XS_DIRECTORY_PART);

namespace {

// How a request type lays out its payload.
enum class shape {
    unknown,      // not a request: ENOSYS
    none,         // payload ignored (TRANSACTION_START, RESET_WATCHES)
    one,          // exactly one string, NUL-terminated, nothing after it
    two,          // exactly two strings, nothing after them
    at_least_two, // SET_PERMS: path + one or more perms
    three_plus,   // INTRODUCE: domid, mfn, port (extra strings ignored, as xenstored)
    path_data,    // WRITE: path NUL then raw bytes
    cmd_data,     // CONTROL: command NUL then raw bytes
};

shape shape_of(std::uint32_t type) noexcept {
    switch (static_cast<msg_type>(type)) {
    case msg_type::directory:
    case msg_type::read:
    case msg_type::get_perms:
    case msg_type::mkdir:
    case msg_type::rm:
    case msg_type::transaction_end:
    case msg_type::get_domain_path:
    case msg_type::is_domain_introduced:
    case msg_type::release:
    case msg_type::resume: return shape::one;
    case msg_type::watch:
    case msg_type::unwatch:
    case msg_type::directory_part:
    case msg_type::set_target: return shape::two;
    case msg_type::set_perms: return shape::at_least_two;
    case msg_type::introduce: return shape::three_plus;
    case msg_type::write: return shape::path_data;
    case msg_type::control: return shape::cmd_data;
    case msg_type::transaction_start:
    case msg_type::reset_watches: return shape::none;
    case msg_type::watch_event:
    case msg_type::error: return shape::unknown;
    }
    return shape::unknown;
}

// Splits off the first NUL-terminated string; false if there is no NUL.
bool take_first(std::string_view payload, std::string_view& first, std::string_view& rest) {
    const auto nul = payload.find('\0');
    if (nul == std::string_view::npos) return false;
    first = payload.substr(0, nul);
    rest = payload.substr(nul + 1);
    return true;
}

int fill_args(shape s, std::string_view payload, request& req) {
    if (s == shape::none) return 0;
    if (s == shape::path_data || s == shape::cmd_data) {
        std::string_view first;
        if (!take_first(payload, first, req.data)) return EINVAL;
        req.args.push_back(first);
        return 0;
    }
    bool trailing = false;
    req.args = split_strings(payload, &trailing);
    const std::size_t n = req.args.size();
    switch (s) {
    case shape::one: return (n == 1 && !trailing) ? 0 : EINVAL;
    case shape::two: return (n == 2 && !trailing) ? 0 : EINVAL;
    case shape::at_least_two: return (n >= 2 && !trailing) ? 0 : EINVAL;
    case shape::three_plus: return n >= 3 ? 0 : EINVAL;
    default: return EINVAL;
    }
}

}  // namespace

const char* to_string(msg_type t) noexcept {
    switch (t) {
    case msg_type::control: return "CONTROL";
    case msg_type::directory: return "DIRECTORY";
    case msg_type::read: return "READ";
    case msg_type::get_perms: return "GET_PERMS";
    case msg_type::watch: return "WATCH";
    case msg_type::unwatch: return "UNWATCH";
    case msg_type::transaction_start: return "TRANSACTION_START";
    case msg_type::transaction_end: return "TRANSACTION_END";
    case msg_type::introduce: return "INTRODUCE";
    case msg_type::release: return "RELEASE";
    case msg_type::get_domain_path: return "GET_DOMAIN_PATH";
    case msg_type::write: return "WRITE";
    case msg_type::mkdir: return "MKDIR";
    case msg_type::rm: return "RM";
    case msg_type::set_perms: return "SET_PERMS";
    case msg_type::watch_event: return "WATCH_EVENT";
    case msg_type::error: return "ERROR";
    case msg_type::is_domain_introduced: return "IS_DOMAIN_INTRODUCED";
    case msg_type::resume: return "RESUME";
    case msg_type::set_target: return "SET_TARGET";
    case msg_type::reset_watches: return "RESET_WATCHES";
    case msg_type::directory_part: return "DIRECTORY_PART";
    }
    return "UNKNOWN";
}

header_result parse_header(std::span<const std::uint8_t> bytes) noexcept {
    header_result r;
    if (bytes.size() < header_size) return r;
    std::memcpy(&r.hdr, bytes.data(), header_size);
    r.status = r.hdr.len > payload_max ? header_status::too_long : header_status::ok;
    return r;
}

decode_result decode(const header& hdr, std::span<const std::uint8_t> payload) {
    decode_result out;
    out.req.req_id = hdr.req_id;
    out.req.tx_id = hdr.tx_id;
    if (payload.size() != hdr.len || hdr.len > payload_max) {
        out.error = EINVAL;
        return out;
    }
    const shape s = shape_of(hdr.type);
    if (s == shape::unknown) {
        out.error = ENOSYS;  // xenstored: "Client unknown operation"
        return out;
    }
    out.req.type = static_cast<msg_type>(hdr.type);
    const std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
    out.error = fill_args(s, text, out.req);
    return out;
}

std::vector<std::string_view> split_strings(std::string_view payload, bool* trailing) {
    std::vector<std::string_view> out;
    // Bounded: each iteration consumes at least one byte of a <= 4 KiB payload.
    while (!payload.empty()) {
        std::string_view first;
        std::string_view rest;
        if (!take_first(payload, first, rest)) break;
        out.push_back(first);
        payload = rest;
    }
    if (trailing) *trailing = !payload.empty();
    return out;
}

std::string encode(msg_type type, std::uint32_t req_id, std::uint32_t tx_id,
                   std::string_view payload) {
    header h{static_cast<std::uint32_t>(type), req_id, tx_id,
             static_cast<std::uint32_t>(payload.size())};
    std::string frame(header_size + payload.size(), '\0');
    std::memcpy(frame.data(), &h, header_size);
    if (!payload.empty()) std::memcpy(frame.data() + header_size, payload.data(), payload.size());
    return frame;
}

const char* error_name(int errnum) noexcept {
    for (const auto& e : xsd_errors)
        if (e.errnum == errnum) return e.errstring;
    return "EINVAL";
}

int error_from_name(std::string_view name) noexcept {
    for (const auto& e : xsd_errors)
        if (name == e.errstring) return e.errnum;
    return EINVAL;
}

}  // namespace vifkit::emu::xs
