// libFuzzer target: wire::decode_tx_packet (netif-spec §4.3) over hostile rings.
//
// Input: byte 0 = limits (bit0 gso_tcpv4, bit1 gso_tcpv6, bit2 multicast_control;
// bits 3-7 pick where the producer starts in the 256-slot ring, so the copy-out
// wraps), then raw 12-byte tx requests as the frontend wrote them (a trailing
// partial request is ignored). Seeds: tests/unit/wire (tx_window.hpp).
//
// Like netback_tx.cpp, the requests are copied out of the ring once into a
// private window and packets are decoded from its front until the decoder asks
// for more or declares the frontend fatal. Every verdict is checked against the
// decoder's contract; a violation aborts (a finding).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "vifkit/abi/netif.hpp"
#include "vifkit/wire/tx_decoder.hpp"

namespace {

using namespace vifkit;
using wire::tx_verdict;

constexpr unsigned ring_size = 256;
constexpr std::uint32_t page = 4096;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_tx_decoder: contract violated: %s\n", what);
    std::abort();
}
#define CHECK(c) \
    do {         \
        if (!(c)) fail(#c); \
    } while (0)

void check(std::span<const abi::tx_request> w, const wire::tx_limits& lim, const wire::tx_decode& d) {
    const wire::tx_packet& p = d.pkt;
    if (d.verdict == tx_verdict::need_more) {
        // The longest chain the decoder may wait for fits in tx_max_chain slots.
        CHECK(w.size() < wire::tx_max_chain);
        return;
    }
    if (d.verdict == tx_verdict::fatal) return;
    CHECK(d.verdict == tx_verdict::ok || d.verdict == tx_verdict::drop);
    CHECK(p.consumed >= 1 && p.consumed <= w.size());
    CHECK(p.nr_slots >= 1 && p.nr_slots <= wire::tx_max_chain);
    CHECK(unsigned{p.nr_slots} + p.nr_extras == p.consumed);
    CHECK(p.data_index[0] == 0);
    for (unsigned s = 1; s < p.nr_slots; ++s) {
        CHECK(p.data_index[s] > p.data_index[s - 1]);
        CHECK(p.data_index[s] < p.consumed);
        const abi::tx_request& r = w[p.data_index[s]];
        CHECK(std::uint32_t{r.offset} + r.size <= page);  // else fatal, never ok/drop
    }
    CHECK(p.total_len == w[0].size);
    if ((w[0].flags & abi::txf::extra_info) == 0) CHECK(p.nr_extras == 0);
    // The verdict depends on the packet's own slots only.
    const wire::tx_decode again = wire::decode_tx_packet(w.first(p.consumed), lim);
    CHECK(again.verdict == d.verdict && again.pkt.consumed == p.consumed);
    if (d.verdict == tx_verdict::drop) return;
    CHECK(p.nr_slots - 1u <= lim.max_further_slots);
    if (p.has_mcast && p.total_len == 0) return;  // multicast dummy request
    CHECK(p.first_len >= abi::eth_hlen);
    CHECK(std::uint32_t{w[0].offset} + p.first_len <= page);
    std::uint32_t sum = p.first_len;
    for (unsigned s = 1; s < p.nr_slots; ++s) sum += w[p.data_index[s]].size;
    CHECK(sum == p.total_len);
    if (p.has_gso) CHECK(p.gso.size != 0 && (lim.gso_tcpv4 || lim.gso_tcpv6));
    if (p.has_mcast) CHECK(lim.multicast_control);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    wire::tx_limits lim;
    lim.gso_tcpv4 = (data[0] & 1) != 0;
    lim.gso_tcpv6 = (data[0] & 2) != 0;
    lim.multicast_control = (data[0] & 4) != 0;
    const unsigned start = (data[0] >> 3) * 8u;

    // The shared ring as the frontend left it, then netback's one-time copy-out.
    std::array<abi::tx_request, ring_size> ring{};
    const std::size_t n = std::min<std::size_t>((size - 1) / sizeof(abi::tx_request), ring_size);
    for (std::size_t i = 0; i < n; ++i)
        std::memcpy(&ring[(start + i) % ring_size], data + 1 + i * sizeof(abi::tx_request), sizeof(abi::tx_request));
    std::vector<abi::tx_request> window(n);
    for (std::size_t i = 0; i < n; ++i) window[i] = ring[(start + i) % ring_size];

    std::size_t pos = 0;
    while (true) {
        const auto w = std::span<const abi::tx_request>(window).subspan(pos);
        const wire::tx_decode d = wire::decode_tx_packet(w, lim);
        check(w, lim, d);
        if (d.verdict != tx_verdict::ok && d.verdict != tx_verdict::drop) break;
        pos += d.pkt.consumed;
    }
    return 0;
}
