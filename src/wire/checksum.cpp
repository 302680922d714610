#include "vifkit/wire/checksum.hpp"

#include "vifkit/wire/offload.hpp"

#include <cstddef>

namespace vifkit::wire {
namespace {

std::uint16_t be16(const std::byte* p) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) << 8 | std::to_integer<unsigned>(p[1]));
}

}  // namespace

std::uint16_t fold(std::uint32_t s) {
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return static_cast<std::uint16_t>(s);
}

std::uint16_t internet_checksum(std::span<const std::byte> data, std::uint32_t sum) {
    return static_cast<std::uint16_t>(~fold(ones_sum(data, sum)));
}

std::uint32_t ones_sum(std::span<const std::byte> data, std::uint32_t sum) {
    std::uint64_t s = sum;
    std::size_t i = 0;
    for (; i + 1 < data.size(); i += 2) s += be16(data.data() + i);
    if (i < data.size()) s += std::to_integer<std::uint32_t>(data[i]) << 8;
    while (s >> 32) s = (s & 0xFFFFFFFFu) + (s >> 32);
    return static_cast<std::uint32_t>(s);
}

csum_result complete_l4_checksum(std::span<std::byte> frame) {
    // The shared parser (offload.cpp); like before, the TCP data offset is not
    // checked: the checksum covers the whole segment whatever it says.
    const l4_location loc = detail::parse_l4(frame);
    if (!loc) return loc.status;
    const l4_info& i = loc.info;
    std::byte* const field = frame.data() + i.csum_offset;
    field[0] = field[1] = std::byte{0};
    const std::span<const std::byte> segment(frame.data() + i.l4_offset, i.l4_len);
    std::uint16_t c = internet_checksum(segment, detail::pseudo_header_sum(frame, i));
    if (i.proto == 17 && c == 0) c = 0xFFFF;  // 0 means "no checksum" for UDP
    field[0] = static_cast<std::byte>(c >> 8);
    field[1] = static_cast<std::byte>(c);
    return csum_result::done;
}

}  // namespace vifkit::wire
