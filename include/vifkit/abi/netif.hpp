// Wire structs of the netif protocol (xen/io/netif.h, Xen 4.10+), as plain data.
// Layouts are pinned against Xen's own header in src/abi/layout_check.cpp
// (netif-spec §1.3, §2.1, §4.1). No bitfields, no methods (style habit 9).
#pragma once
#include <cstdint>
#include <type_traits>

namespace vifkit::abi {

// ---- tx (guest -> backend), netif-spec §4.1 ----
struct tx_request {
    std::uint32_t gref;
    std::uint16_t offset;
    std::uint16_t flags;  // txf::*
    std::uint16_t id;
    std::uint16_t size;
};
struct tx_response {
    std::uint16_t id;
    std::int16_t status;  // rsp::*
};

// ---- rx (backend -> guest) ----
struct rx_request {
    std::uint16_t id;
    std::uint16_t pad;
    std::uint32_t gref;
};
struct rx_response {
    std::uint16_t id;
    std::uint16_t offset;
    std::uint16_t flags;  // rxf::*
    std::int16_t status;  // > 0 bytes, else rsp::* / GNTST_*
};

// ---- extra info (occupies one tx or rx slot) ----
struct extra_gso {
    std::uint16_t size;  // MSS
    std::uint8_t type;   // gso_type::*
    std::uint8_t pad;
    std::uint16_t features;
};
struct extra_mcast {
    std::uint8_t addr[6];
};
struct extra_hash {
    std::uint8_t type;
    std::uint8_t algorithm;
    std::uint8_t value[4];  // LSB first
};
struct extra_info {
    std::uint8_t type;   // extra_type::*
    std::uint8_t flags;  // extra_flag::more
    union {
        extra_gso gso;
        extra_mcast mcast;
        extra_hash hash;
        std::uint16_t pad[3];
    } u;
};

// ---- control ring (netif-spec §2.1) ----
struct ctrl_request {
    std::uint16_t id;
    std::uint16_t type;
    std::uint32_t data[3];
};
struct ctrl_response {
    std::uint16_t id;
    std::uint16_t type;
    std::uint32_t status;
    std::uint32_t data;
};
// Static grants table entry (netif-spec §1.3).
struct gref_entry {
    std::uint32_t ref;
    std::uint16_t flags;
    std::uint16_t status;
};

namespace txf {
inline constexpr std::uint16_t csum_blank = 1u << 0;
inline constexpr std::uint16_t data_validated = 1u << 1;
inline constexpr std::uint16_t more_data = 1u << 2;
inline constexpr std::uint16_t extra_info = 1u << 3;
}  // namespace txf
namespace rxf {
inline constexpr std::uint16_t data_validated = 1u << 0;
inline constexpr std::uint16_t csum_blank = 1u << 1;
inline constexpr std::uint16_t more_data = 1u << 2;
inline constexpr std::uint16_t extra_info = 1u << 3;
inline constexpr std::uint16_t gso_prefix = 1u << 4;
}  // namespace rxf
namespace rsp {
inline constexpr std::int16_t dropped = -2;
inline constexpr std::int16_t error = -1;
inline constexpr std::int16_t okay = 0;
inline constexpr std::int16_t null_ = 1;
}  // namespace rsp
namespace extra_type {
inline constexpr std::uint8_t none = 0;
inline constexpr std::uint8_t gso = 1;
inline constexpr std::uint8_t mcast_add = 2;
inline constexpr std::uint8_t mcast_del = 3;
inline constexpr std::uint8_t hash = 4;
inline constexpr std::uint8_t max = 5;
}  // namespace extra_type
namespace extra_flag {
inline constexpr std::uint8_t more = 1u << 0;
}
namespace gso_type {
inline constexpr std::uint8_t none = 0;
inline constexpr std::uint8_t tcpv4 = 1;
inline constexpr std::uint8_t tcpv6 = 2;
}  // namespace gso_type
namespace ctrl_type {
inline constexpr std::uint16_t invalid = 0;
inline constexpr std::uint16_t get_hash_flags = 1;
inline constexpr std::uint16_t set_hash_flags = 2;
inline constexpr std::uint16_t set_hash_key = 3;
inline constexpr std::uint16_t get_hash_mapping_size = 4;
inline constexpr std::uint16_t set_hash_mapping_size = 5;
inline constexpr std::uint16_t set_hash_mapping = 6;
inline constexpr std::uint16_t set_hash_algorithm = 7;
inline constexpr std::uint16_t get_gref_mapping_size = 8;
inline constexpr std::uint16_t add_gref_mapping = 9;
inline constexpr std::uint16_t del_gref_mapping = 10;
}  // namespace ctrl_type
namespace ctrl_status {
inline constexpr std::uint32_t success = 0;
inline constexpr std::uint32_t not_supported = 1;
inline constexpr std::uint32_t invalid_parameter = 2;
inline constexpr std::uint32_t buffer_overflow = 3;
}  // namespace ctrl_status
inline constexpr std::uint16_t gref_flag_readonly = 1u << 0;

inline constexpr std::uint32_t max_tx_size = 0xFFFF;     // XEN_NETIF_MAX_TX_SIZE
inline constexpr unsigned nr_slots_min = 18;             // XEN_NETIF_NR_SLOTS_MIN
inline constexpr unsigned eth_hlen = 14;

// Layouts (netif-spec §4.1, §2.1, §1.3); also cross-checked against Xen's header.
static_assert(sizeof(tx_request) == 12 && alignof(tx_request) == 4);
static_assert(sizeof(tx_response) == 4);
static_assert(sizeof(rx_request) == 8);
static_assert(sizeof(rx_response) == 8);
static_assert(sizeof(extra_info) == 8);
static_assert(sizeof(ctrl_request) == 16);
static_assert(sizeof(ctrl_response) == 12);
static_assert(sizeof(gref_entry) == 8);
static_assert(std::is_trivially_copyable_v<tx_request> && std::is_trivially_copyable_v<extra_info>);

}  // namespace vifkit::abi
