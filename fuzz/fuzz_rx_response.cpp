// libFuzzer target: wire::decode_rx_slot, netfront's checks on guest-receive
// responses (netif-spec §4.4), applied the way netfront_io.cpp applies them.
//
// Input: byte 0 = frame capacity (bit0 set: a 100-byte frame buffer, else
// netfront's max_tx_size + page), then 9-byte slots {u8 ctl, 8-byte
// rx_response}: ctl bit0 = a buffer is posted in the slot, bit1 = its id is
// the response's id, else the id is ctl >> 2. Seeds: tests/unit/wire.
//
// Posted pages and the frame are exactly-sized heap blocks, so a copy the
// decoder allows past either end is an ASan report; the chain bookkeeping is
// checked after every slot.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "vifkit/abi/netif.hpp"
#include "vifkit/wire/rx_decoder.hpp"

namespace {

using namespace vifkit;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_rx_response: contract violated: %s\n", what);
    std::abort();
}
#define CHECK(c) \
    do {         \
        if (!(c)) fail(#c); \
    } while (0)

constexpr std::size_t page = 4096;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::size_t cap = (data[0] & 1) ? 100 : abi::max_tx_size + page;
    std::vector<std::byte> frame(cap);  // exactly cap bytes: ASan bounds
    const auto posted_page = std::make_unique<std::byte[]>(page);
    std::memset(posted_page.get(), 0xA5, page);

    wire::rx_chain c;
    std::uint32_t expect_len = 0;
    for (std::size_t pos = 1; pos + 9 <= size; pos += 9) {
        const std::uint8_t ctl = data[pos];
        abi::rx_response r;
        std::memcpy(&r, data + pos + 1, sizeof r);
        const bool posted = (ctl & 1) != 0;
        const std::uint16_t posted_id = (ctl & 2) ? r.id : static_cast<std::uint16_t>(ctl >> 2);
        const wire::rx_chain before = c;
        const wire::rx_slot s = wire::decode_rx_slot(c, r, posted, posted_id, cap);
        switch (s.what) {
        case wire::rx_slot::kind::no_buffer:
            CHECK(!posted && c.bad && !s.chain_done && s.copy_len == 0);
            CHECK(c.len == before.len && c.slots == before.slots);
            break;
        case wire::rx_slot::kind::extra:
            CHECK(posted && before.extra_next && s.copy_len == 0 && c.len == before.len);
            break;
        case wire::rx_slot::kind::data:
            CHECK(posted && !before.extra_next && c.slots == before.slots + 1);
            CHECK(s.wrong_id == (r.id != posted_id));
            if (s.wrong_id) CHECK(c.bad);
            break;
        }
        if (s.copy_len != 0) {
            CHECK(std::size_t{s.copy_offset} + s.copy_len <= page);
            CHECK(std::size_t{s.copy_at} + s.copy_len <= cap);
            CHECK(s.copy_at == expect_len);
            CHECK(c.slots <= wire::rx_max_slots);
            std::memcpy(frame.data() + s.copy_at, posted_page.get() + s.copy_offset, s.copy_len);
            expect_len += s.copy_len;
        }
        CHECK(c.len == expect_len && c.len <= cap);
        if (s.chain_done) {
            CHECK(!c.in_chain && !c.extra_next);
            if (wire::rx_chain_ok(c)) {
                CHECK(c.len >= abi::eth_hlen && c.slots >= 1 && c.slots <= wire::rx_max_slots);
                CHECK(frame[0] == std::byte{0xA5} && frame[c.len - 1] == std::byte{0xA5});
            }
            c = {};
            expect_len = 0;
        }
    }
    return 0;
}
