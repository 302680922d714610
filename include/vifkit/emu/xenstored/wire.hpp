// The xenstore wire protocol (xen/io/xs_wire.h): a 16-byte header
// {type, req_id, tx_id, len} followed by `len` payload bytes, len <= 4096.
//
// Everything here is a pure function over bytes: no I/O, no exceptions, so the
// decoder can be fuzzed. Peer input is decoded into a typed `request` whose
// argument count and NUL termination are already checked per message type;
// the engine never looks at raw payload bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vifkit::emu::xs {

// Values of enum xsd_sockmsg_type; pinned against xs_wire.h in wire.cpp.
enum class msg_type : std::uint32_t {
    control = 0,
    directory = 1,
    read = 2,
    get_perms = 3,
    watch = 4,
    unwatch = 5,
    transaction_start = 6,
    transaction_end = 7,
    introduce = 8,
    release = 9,
    get_domain_path = 10,
    write = 11,
    mkdir = 12,
    rm = 13,
    set_perms = 14,
    watch_event = 15,
    error = 16,
    is_domain_introduced = 17,
    resume = 18,
    set_target = 19,
    // 20 was XS_RESTRICT, removed from the protocol.
    reset_watches = 21,
    directory_part = 22,
};
inline constexpr std::uint32_t msg_type_count = 23;  // XS_TYPE_COUNT

const char* to_string(msg_type t) noexcept;

// Mirrors struct xsd_sockmsg (host byte order: both ends are on this machine).
struct header {
    std::uint32_t type = 0;
    std::uint32_t req_id = 0;
    std::uint32_t tx_id = 0;
    std::uint32_t len = 0;
};
inline constexpr std::size_t header_size = 16;
inline constexpr std::size_t payload_max = 4096;     // XENSTORE_PAYLOAD_MAX
inline constexpr std::size_t abs_path_max = 3072;    // XENSTORE_ABS_PATH_MAX
inline constexpr std::size_t rel_path_max = 2048;    // XENSTORE_REL_PATH_MAX

enum class header_status {
    ok,
    incomplete,  // fewer than header_size bytes: wait for more
    too_long,    // len > payload_max: the stream cannot be trusted, drop the peer
};

struct header_result {
    header_status status = header_status::incomplete;
    header hdr{};
};

// Reads the first header_size bytes of `bytes`. Never reads past the span.
[[nodiscard]] header_result parse_header(std::span<const std::uint8_t> bytes) noexcept;

// A request whose shape has been checked for its type.
struct request {
    msg_type type = msg_type::error;
    std::uint32_t req_id = 0;
    std::uint32_t tx_id = 0;
    // NUL-terminated string arguments (without their NULs), in order.
    std::vector<std::string_view> args;
    // WRITE: the value bytes after the path's NUL (may hold NULs). CONTROL: the
    // bytes after the command. Empty otherwise.
    std::string_view data;
};

struct decode_result {
    int error = 0;  // 0, or the errno to answer with (EINVAL, ENOSYS)
    request req;    // valid when error == 0; views into the payload passed in
};

// Decodes one complete frame's payload (payload.size() must equal hdr.len).
// On error the caller answers XS_ERROR echoing hdr.req_id/tx_id.
[[nodiscard]] decode_result decode(const header& hdr,
                                   std::span<const std::uint8_t> payload);

// Splits `payload` into its NUL-terminated strings. Bytes after the last NUL
// are not a string; `trailing` reports whether there were any.
std::vector<std::string_view> split_strings(std::string_view payload, bool* trailing = nullptr);

// A complete frame (header + payload) ready to send. `payload` must be
// <= payload_max; callers check that first (see engine::reply).
std::string encode(msg_type type, std::uint32_t req_id, std::uint32_t tx_id,
                   std::string_view payload);

// The xenstored error string for an errno ("ENOENT" ...); EINVAL for anything
// the protocol has no name for, as xenstored does.
const char* error_name(int errnum) noexcept;
// The reverse, as libxenstore maps it; EINVAL for unknown strings.
int error_from_name(std::string_view name) noexcept;

}  // namespace vifkit::emu::xs
