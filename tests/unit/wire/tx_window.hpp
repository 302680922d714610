// Test helpers for wire::decode_tx_packet: a builder for private request
// windows (netif-spec §4.3) and the seed-corpus writer for fuzz_tx_decoder.
#pragma once
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "fuzz_seed.hpp"
#include "vifkit/abi/netif.hpp"
#include "vifkit/wire/tx_decoder.hpp"

namespace vifkit::wire::testing {

// Ring slots in order, as the backend copied them out of the shared ring.
class tx_window {
public:
    // One raw data request (flags exactly as given).
    tx_window& req(std::uint16_t size, std::uint16_t flags = 0, std::uint16_t offset = 0) {
        abi::tx_request r{};
        r.gref = 0x1000u + static_cast<std::uint32_t>(reqs_.size());
        r.offset = offset;
        r.flags = flags;
        r.id = static_cast<std::uint16_t>(reqs_.size());
        r.size = size;
        reqs_.push_back(r);
        return *this;
    }
    // One raw extra slot (flags exactly as given in `e`).
    tx_window& extra(const abi::extra_info& e) {
        abi::tx_request r{};
        std::memcpy(&r, &e, sizeof e);
        reqs_.push_back(r);
        return *this;
    }
    // A well-formed packet: first request with size = total, then the extras
    // (chained with EXTRA_FLAG_MORE on all but the last), then one following
    // request per entry of `frags` (more_data on all but the last).
    tx_window& packet(std::uint16_t total, std::initializer_list<std::uint16_t> frags = {},
                      std::initializer_list<abi::extra_info> extras = {}, std::uint16_t first_flags = 0) {
        std::uint16_t f = first_flags;
        if (frags.size() != 0) f |= abi::txf::more_data;
        if (extras.size() != 0) f |= abi::txf::extra_info;
        req(total, f);
        std::size_t i = 0;
        for (abi::extra_info e : extras) {
            if (++i < extras.size()) e.flags |= abi::extra_flag::more;
            else e.flags = static_cast<std::uint8_t>(e.flags & ~abi::extra_flag::more);
            extra(e);
        }
        i = 0;
        for (std::uint16_t s : frags) req(s, ++i < frags.size() ? abi::txf::more_data : 0);
        return *this;
    }
    // `n` following fragments of `each` bytes after a first request whose
    // own share is `first_share` bytes (so total = first_share + n * each).
    tx_window& chain(unsigned n, std::uint16_t each, std::uint16_t first_share = 64) {
        req(static_cast<std::uint16_t>(first_share + n * each), n ? abi::txf::more_data : 0);
        for (unsigned i = 1; i <= n; ++i) req(each, i < n ? abi::txf::more_data : 0);
        return *this;
    }

    abi::tx_request& operator[](std::size_t i) { return reqs_.at(i); }
    std::size_t size() const { return reqs_.size(); }
    std::span<const abi::tx_request> span() const { return reqs_; }
    const std::vector<abi::tx_request>& reqs() const { return reqs_; }

private:
    std::vector<abi::tx_request> reqs_;
};

inline abi::extra_info gso_extra(std::uint16_t mss, std::uint8_t type = abi::gso_type::tcpv4) {
    abi::extra_info e{};
    e.type = abi::extra_type::gso;
    e.u.gso.size = mss;
    e.u.gso.type = type;
    return e;
}
inline abi::extra_info hash_extra(std::uint8_t type, std::uint8_t alg, std::uint32_t value) {
    abi::extra_info e{};
    e.type = abi::extra_type::hash;
    e.u.hash.type = type;
    e.u.hash.algorithm = alg;
    for (int i = 0; i < 4; ++i) e.u.hash.value[i] = static_cast<std::uint8_t>(value >> (8 * i));  // LSB first
    return e;
}
inline abi::extra_info mcast_extra(std::uint8_t type, std::array<std::uint8_t, 6> addr) {
    abi::extra_info e{};
    e.type = type;
    std::memcpy(e.u.mcast.addr, addr.data(), 6);
    return e;
}
inline abi::extra_info raw_extra(std::uint8_t type, std::uint8_t flags = 0) {
    abi::extra_info e{};
    e.type = type;
    e.flags = flags;
    return e;
}

// Seed corpus for fuzz/fuzz_tx_decoder.cpp (written only when
// VIFKIT_FUZZ_SEED_DIR is set, see tests/support/fuzz_seed.hpp). Format: one
// byte of limits (bit0 gso_tcpv4, bit1 gso_tcpv6, bit2 multicast_control), then
// the window's raw 12-byte requests.
inline void maybe_write_corpus(std::span<const abi::tx_request> w, const tx_limits& lim) {
    std::string in(1, static_cast<char>((lim.gso_tcpv4 ? 1 : 0) | (lim.gso_tcpv6 ? 2 : 0) |
                                        (lim.multicast_control ? 4 : 0)));
    in.append(reinterpret_cast<const char*>(w.data()), w.size_bytes());
    vifkit::test::write_fuzz_seed("tx_decoder", in);
}

inline tx_decode decode(const tx_window& w, const tx_limits& lim = {}) {
    const tx_decode d = decode_tx_packet(w.span(), lim);
    maybe_write_corpus(w.span(), lim);
    return d;
}

inline const char* name(tx_verdict v) {
    switch (v) {
    case tx_verdict::ok: return "ok";
    case tx_verdict::drop: return "drop";
    case tx_verdict::fatal: return "fatal";
    case tx_verdict::need_more: return "need_more";
    }
    return "?";
}

}  // namespace vifkit::wire::testing

namespace vifkit::wire {
// gtest prints verdicts by name.
inline void PrintTo(tx_verdict v, std::ostream* os) { *os << testing::name(v); }
}  // namespace vifkit::wire
