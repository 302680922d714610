// Test frames and the netif-spec §2.5 Toeplitz vectors, shared by the ctrl tests.
#pragma once
#include <arpa/inet.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

namespace vifkit::ctrl::test {

// "Microsoft/Intel default RSS key" (netif-spec §2.5).
inline constexpr std::array<std::uint8_t, 40> rss_key = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

struct vector_row {
    const char* src;
    std::uint16_t sport;
    const char* dst;
    std::uint16_t dport;
    std::uint32_t addr_hash;  // 2-tuple (8 / 32 byte input)
    std::uint32_t tcp_hash;   // 4-tuple (12 / 36 byte input)
};

inline constexpr vector_row ipv4_rows[] = {
    {"66.9.149.187", 2794, "161.142.100.80", 1766, 0x323e8fc2, 0x51ccc178},
    {"199.92.111.2", 14230, "65.69.140.83", 4739, 0xd718262a, 0xc626b0ea},
    {"24.19.198.95", 12898, "12.22.207.184", 38024, 0xd2d0a5de, 0x5c2b394a},
    {"38.27.205.30", 48228, "209.142.163.6", 2217, 0x82989176, 0xafc7327f},
    {"153.39.163.191", 44251, "202.188.127.2", 1303, 0x5d1809c5, 0x10e828a2},
};

inline constexpr vector_row ipv6_rows[] = {
    {"3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x2cc18cd5, 0x40207d3d},
    {"3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739, 0x0f0c461c, 0xdde51bbf},
    {"3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024,
     0x4b61e985, 0x02d1feef},
};

template <std::size_t N>
std::array<std::uint8_t, N> parse_addr(int af, const char* text) {
    std::array<std::uint8_t, N> a{};
    if (::inet_pton(af, text, a.data()) != 1) throw std::invalid_argument(text);
    return a;
}

// Hash input bytes for a row: addresses, then (with_ports) both ports, big-endian.
inline std::vector<std::uint8_t> hash_input(const vector_row& r, bool v6, bool with_ports) {
    std::vector<std::uint8_t> in;
    if (v6) {
        const auto s = parse_addr<16>(AF_INET6, r.src), d = parse_addr<16>(AF_INET6, r.dst);
        in.insert(in.end(), s.begin(), s.end());
        in.insert(in.end(), d.begin(), d.end());
    } else {
        const auto s = parse_addr<4>(AF_INET, r.src), d = parse_addr<4>(AF_INET, r.dst);
        in.insert(in.end(), s.begin(), s.end());
        in.insert(in.end(), d.begin(), d.end());
    }
    if (with_ports) {
        for (const std::uint16_t p : {r.sport, r.dport}) {
            in.push_back(static_cast<std::uint8_t>(p >> 8));
            in.push_back(static_cast<std::uint8_t>(p & 0xFF));
        }
    }
    return in;
}

// Frame builder: Ethernet [+ 802.1Q tags] + IPv4/IPv6 [+ ext headers] + L4 header.
class frame_builder {
public:
    frame_builder& vlan(std::uint16_t tpid = 0x8100) {
        tags_.push_back(tpid);
        return *this;
    }
    std::vector<std::byte> ipv4(const vector_row& r, std::uint8_t proto = 6, std::uint16_t frag = 0,
                                unsigned ihl = 5) const {
        auto f = ethernet(0x0800);
        const auto s = parse_addr<4>(AF_INET, r.src), d = parse_addr<4>(AF_INET, r.dst);
        const std::size_t l4 = 20;
        push(f, {static_cast<std::uint8_t>(0x40 | ihl), 0});
        push16(f, static_cast<std::uint16_t>(ihl * 4 + l4 + 8));  // total length
        push16(f, 0x1234);                                        // id
        push16(f, frag);
        push(f, {64, proto, 0, 0});
        push(f, s);
        push(f, d);
        for (unsigned i = 5; i < ihl; ++i) push(f, {1, 1, 1, 1});  // NOP options
        l4_header(f, r);
        return f;
    }
    // ext: (header type, total length in bytes) pairs, in order.
    std::vector<std::byte> ipv6(const vector_row& r, std::uint8_t proto = 6,
                                const std::vector<std::pair<std::uint8_t, std::size_t>>& ext = {}) const {
        auto f = ethernet(0x86DD);
        const auto s = parse_addr<16>(AF_INET6, r.src), d = parse_addr<16>(AF_INET6, r.dst);
        push(f, {0x60, 0, 0, 0});
        std::size_t ext_len = 0;
        for (const auto& e : ext) ext_len += e.second;
        push16(f, static_cast<std::uint16_t>(ext_len + 28));  // payload length
        push(f, {ext.empty() ? proto : ext.front().first, 64});
        push(f, s);
        push(f, d);
        for (std::size_t i = 0; i < ext.size(); ++i)
            ext_header(f, ext[i], i + 1 < ext.size() ? ext[i + 1].first : proto);
        l4_header(f, r);
        return f;
    }
    // Offset of the IP header.
    [[nodiscard]] std::size_t l3_offset() const { return 14 + 4 * tags_.size(); }

private:
    static void push(std::vector<std::byte>& f, std::initializer_list<std::uint8_t> b) {
        for (auto x : b) f.push_back(std::byte{x});
    }
    template <std::size_t N>
    static void push(std::vector<std::byte>& f, const std::array<std::uint8_t, N>& b) {
        for (auto x : b) f.push_back(std::byte{x});
    }
    static void push16(std::vector<std::byte>& f, std::uint16_t v) {
        push(f, {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v & 0xFF)});
    }
    std::vector<std::byte> ethernet(std::uint16_t type) const {
        std::vector<std::byte> f;
        push(f, {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2});
        for (auto tpid : tags_) {
            push16(f, tpid);
            push16(f, 0x0064);  // VLAN 100
        }
        push16(f, type);
        return f;
    }
    static void ext_header(std::vector<std::byte>& f, std::pair<std::uint8_t, std::size_t> e,
                           std::uint8_t next) {
        const std::size_t start = f.size();
        const bool ah = e.first == 51;
        const bool frag = e.first == 44;
        // Length byte: generic = len/8 - 1, AH = len/4 - 2, fragment = reserved 0.
        const auto len_byte = static_cast<std::uint8_t>(frag ? 0 : ah ? e.second / 4 - 2 : e.second / 8 - 1);
        push(f, {next, len_byte});
        while (f.size() - start < e.second) f.push_back(std::byte{0});
    }
    static void l4_header(std::vector<std::byte>& f, const vector_row& r) {
        push16(f, r.sport);
        push16(f, r.dport);
        for (int i = 0; i < 16; ++i) f.push_back(std::byte{0});  // rest of a 20-byte TCP header
        for (int i = 0; i < 8; ++i) f.push_back(std::byte{0xEE});  // payload
    }

    std::vector<std::uint16_t> tags_;
};

}  // namespace vifkit::ctrl::test
