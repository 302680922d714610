// fuzz_backend's input format, shared by the harness (backend_harness.cpp,
// which decodes it) and the unit test that writes the seed corpus
// (tests/unit/fuzz/backend_seeds_test.cpp, which encodes it).
//
// Input: 2 header bytes, then operations.
//   byte 0: bit0 tx mode map (else copy), bit1 feature-sg, bit2 split event
//           channels, bit3 ctrl ring, bit4 static grants, bits 5-6 max queues - 1,
//           bit7 host port "gen" (frames towards the guest) instead of "null"
//   byte 1: gen frame size = 14 + 6 * byte 1
// Operations (first byte % 8), frontend keys by index into front_keys[]:
//   0 key       u8 key, u8 len, value bytes: write F/<key>
//   1 resource  u8 key, u8 r: write F/<key> = ref of page r % 8 (ring-ref keys),
//               port r % 4 (event-channel keys) or r (others), in decimal
//   2 rm        u8 key
//   3 page      u8 page, u16 offset, u8 len, bytes: write into a granted page
//               (pages are rings or data: the sring header is at offset 0,
//               ring entries from offset 64)
//   4 notify    u8 port: the frontend signals port % 4
//   5 pump      run netback until it is idle
//   6 revoke    u8 page: the frontend revokes page % 8 (refused while mapped)
//   7 state     u8 s: write F/state = s % 9
// Multi-byte fields are little-endian. Page i is granted as ref
// first_free_gref + i (the harness checks), so ring contents can name pages.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "vifkit/emu/grant_entry.hpp"

namespace vifkit::fuzz::backend_input {

inline constexpr std::size_t nr_pages = 8;
inline constexpr std::size_t nr_ports = 4;
inline constexpr std::size_t max_steps = 64;  // operations per input; the rest is ignored

// Header byte 0.
namespace cfg {
inline constexpr std::uint8_t map = 1, sg = 2, split = 4, ctrl_ring = 8, static_grants = 16, gen_port = 0x80;
inline constexpr std::uint8_t queues(unsigned n) { return static_cast<std::uint8_t>(((n - 1) & 3u) << 5); }
}  // namespace cfg

enum op : std::uint8_t { key = 0, resource = 1, rm = 2, page = 3, notify = 4, pump = 5, revoke = 6, state = 7 };

enum class key_kind { ring, port, other };
struct front_key {
    const char* name;
    key_kind kind;
};
inline constexpr front_key front_keys[] = {
    {"state", key_kind::other},
    {"tx-ring-ref", key_kind::ring},
    {"rx-ring-ref", key_kind::ring},
    {"event-channel", key_kind::port},
    {"event-channel-tx", key_kind::port},
    {"event-channel-rx", key_kind::port},
    {"multi-queue-num-queues", key_kind::other},
    {"queue-0/tx-ring-ref", key_kind::ring},
    {"queue-0/rx-ring-ref", key_kind::ring},
    {"queue-0/event-channel", key_kind::port},
    {"queue-1/tx-ring-ref", key_kind::ring},
    {"queue-1/rx-ring-ref", key_kind::ring},
    {"queue-1/event-channel", key_kind::port},
    {"feature-sg", key_kind::other},
    {"request-rx-copy", key_kind::other},
    {"feature-rx-notify", key_kind::other},
    {"feature-gso-tcpv4", key_kind::other},
    {"feature-gso-tcpv6", key_kind::other},
    {"feature-no-csum-offload", key_kind::other},
    {"ctrl-ring-ref", key_kind::ring},
    {"event-channel-ctrl", key_kind::port},
    {"feature-multicast-control", key_kind::other},
    {"feature-ctrl-ring", key_kind::other},
    {"queue-0/event-channel-tx", key_kind::port},
    {"queue-0/event-channel-rx", key_kind::port},
    {"mtu", key_kind::other},
};
inline constexpr std::size_t nr_keys = sizeof front_keys / sizeof front_keys[0];

// The grant ref of page i.
inline constexpr grant_ref_t page_ref(std::size_t i) { return static_cast<grant_ref_t>(emu::first_free_gref + i); }

// Where ring entries start in a shared ring page (after the sring header).
inline constexpr std::uint16_t ring_entries_offset = 64;

// Encoder, for seeds: each call appends one operation (page() as many as its
// bytes need). Throws std::invalid_argument for an unknown key name.
class builder {
public:
    builder(std::uint8_t cfg0, std::uint8_t gen_size = 0) : bytes_{cfg0, gen_size} {}

    builder& write(std::string_view k, std::string_view value) {
        bytes_.push_back(op::key);
        bytes_.push_back(index_of(k));
        bytes_.push_back(static_cast<std::uint8_t>(value.size()));
        bytes_.insert(bytes_.end(), value.begin(), value.end());
        return *this;
    }
    // A ring-ref key names page r, an event-channel key port r.
    builder& resource(std::string_view k, std::uint8_t r) { return append({op::resource, index_of(k), r}); }
    builder& remove(std::string_view k) { return append({op::rm, index_of(k)}); }
    builder& put(std::uint8_t pg, std::uint16_t offset, std::span<const std::uint8_t> data) {
        while (!data.empty()) {
            const std::size_t n = std::min<std::size_t>(data.size(), 255);
            append({op::page, pg, static_cast<std::uint8_t>(offset), static_cast<std::uint8_t>(offset >> 8),
                    static_cast<std::uint8_t>(n)});
            bytes_.insert(bytes_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
            data = data.subspan(n);
            offset = static_cast<std::uint16_t>(offset + n);
        }
        return *this;
    }
    template <class T>
    builder& put_struct(std::uint8_t pg, std::uint16_t offset, const T& v) {
        std::uint8_t raw[sizeof(T)];
        std::memcpy(raw, &v, sizeof(T));
        return put(pg, offset, raw);
    }
    builder& signal(std::uint8_t port) { return append({op::notify, port}); }
    builder& run() { return append({op::pump}); }
    builder& unshare(std::uint8_t pg) { return append({op::revoke, pg}); }
    builder& set_state(std::uint8_t s) { return append({op::state, s}); }

    [[nodiscard]] const std::vector<std::uint8_t>& bytes() const { return bytes_; }

private:
    builder& append(std::initializer_list<std::uint8_t> b) {
        bytes_.insert(bytes_.end(), b);
        return *this;
    }
    static std::uint8_t index_of(std::string_view k) {
        for (std::size_t i = 0; i < nr_keys; ++i)
            if (k == front_keys[i].name) return static_cast<std::uint8_t>(i);
        throw std::invalid_argument("fuzz_backend has no frontend key " + std::string(k));
    }

    std::vector<std::uint8_t> bytes_;
};

}  // namespace vifkit::fuzz::backend_input
