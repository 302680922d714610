// Test helpers for the ring unit tests: a real 4096-byte ring page, raw
// (possibly hostile) access to the shared header and slots, deterministic
// request/response contents, and a helper that drives a front ring to a high
// index through its public API only.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#include "vifkit/abi/netif.hpp"
#include "vifkit/ring/ring.hpp"


namespace vifkit::ring::test {


struct page_free {
    void operator()(void* p) const noexcept { std::free(p); }
};
using page_ptr = std::unique_ptr<void, page_free>;

// One page-aligned ring page, pre-filled with garbage so that tests notice
// anything init() fails to clear.
inline page_ptr make_page(std::uint8_t fill = 0xA5) {
    void* p = std::aligned_alloc(ring_page_size, ring_page_size);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, fill, ring_page_size);
    return page_ptr(p);
}

inline sring_header* header(void* page) { return static_cast<sring_header*>(page); }

// The slot array as a peer sees it (single-threaded tests only).
template <class Types>
typename Types::entry* slots(void* page) {
    return reinterpret_cast<typename Types::entry*>(static_cast<std::byte*>(page) + sizeof(sring_header));
}

// A frontend that writes slots and req_prod directly (simulated or hostile peer).
template <class Types>
void raw_put_request(void* page, std::uint32_t idx, const typename Types::request& r) {
    std::memcpy(&slots<Types>(page)[idx & (Types::size - 1)].req, &r, sizeof r);
}
template <class Types>
void raw_put_response(void* page, std::uint32_t idx, const typename Types::response& r) {
    std::memcpy(&slots<Types>(page)[idx & (Types::size - 1)].rsp, &r, sizeof r);
}

// Deterministic contents derived from a sequence number: every field differs
// between neighbouring sequence numbers, so a wrong slot or a torn copy shows.
inline abi::tx_request make_tx_request(std::uint32_t seq) {
    abi::tx_request r{};
    r.gref = seq;
    r.offset = static_cast<std::uint16_t>((seq * 7u) & 0xFFFu);
    r.flags = static_cast<std::uint16_t>(seq & 0xFu);
    r.id = static_cast<std::uint16_t>(seq * 3u);
    r.size = static_cast<std::uint16_t>(seq ^ 0x5A5Au);
    return r;
}
inline abi::tx_response make_tx_response(std::uint32_t seq) {
    abi::tx_response r{};
    r.id = static_cast<std::uint16_t>(seq * 3u);
    r.status = static_cast<std::int16_t>(static_cast<int>(seq % 4u) - 2);  // -2..1: dropped..null
    return r;
}
inline abi::rx_request make_rx_request(std::uint32_t seq) {
    abi::rx_request r{};
    r.id = static_cast<std::uint16_t>(seq);
    r.pad = 0;
    r.gref = 0x80000000u | seq;
    return r;
}
inline abi::rx_response make_rx_response(std::uint32_t seq) {
    abi::rx_response r{};
    r.id = static_cast<std::uint16_t>(seq);
    r.offset = static_cast<std::uint16_t>(seq & 0x7FFu);
    r.flags = static_cast<std::uint16_t>(seq & 0x1Fu);
    r.status = static_cast<std::int16_t>(seq & 0xFFFu);
    return r;
}
inline abi::ctrl_request make_ctrl_request(std::uint32_t seq) {
    abi::ctrl_request r{};
    r.id = static_cast<std::uint16_t>(seq);
    r.type = static_cast<std::uint16_t>(seq % 11u);
    r.data[0] = seq;
    r.data[1] = ~seq;
    r.data[2] = seq * 2654435761u;
    return r;
}
inline abi::ctrl_response make_ctrl_response(std::uint32_t seq) {
    abi::ctrl_response r{};
    r.id = static_cast<std::uint16_t>(seq);
    r.type = static_cast<std::uint16_t>(seq % 11u);
    r.status = seq % 4u;
    r.data = seq ^ 0xDEADBEEFu;
    return r;
}

// Byte-wise equality of two wire structs (none of them has padding).
template <class T>
::testing::AssertionResult same_bytes(const T& got, const T& want) {
    static_assert(std::has_unique_object_representations_v<T>);
    if (std::memcmp(&got, &want, sizeof(T)) == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "wire struct differs from the expected contents";
}

// The front ring has no "attach": the only way to reach a high index is to run
// the protocol. Drive a freshly initialised front (through its public API
// only) until both private indices equal `target`, playing a backend that
// answers every request by publishing rsp_prod. ~2^32 slot writes for a target
// near the wrap: a couple of seconds in an optimised build, so use it once per test.
// The shared header is left for the caller to set up.
template <class Types>
void advance_front(front_ring<Types>& front, std::uint32_t target) {
    // Work on a local copy whose address never escapes, so the compiler can
    // keep its indices in registers while slot writes go to the page.
    front_ring<Types> f = front;
    const typename Types::request filler{};
    while (f.req_prod_pvt() != target) {
        const std::uint32_t n = std::min<std::uint32_t>(target - f.req_prod_pvt(), Types::size);
        for (std::uint32_t i = 0; i < n; ++i) f.put_request(filler);
        f.shared()->rsp_prod = f.req_prod_pvt();
        for (std::uint32_t i = 0; i < n; ++i) (void)f.take_response();
    }
    front = f;
}

}  // namespace vifkit::ring::test
