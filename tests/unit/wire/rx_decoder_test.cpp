// wire::decode_rx_slot: the frontend's checks on guest-receive responses
// (netif-spec §4.4), one slot at a time against the buffers it posted.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_seed.hpp"
#include "vifkit/abi/netif.hpp"
#include "vifkit/wire/rx_decoder.hpp"

namespace vifkit::wire {
namespace {

constexpr std::size_t frame_cap = abi::max_tx_size + 4096;  // netfront's rx_frame

// Feeds responses through one chain state, records what came out, and writes
// the sequence as a fuzz_rx_response seed (byte 0: capacity choice, then per
// slot {u8 ctl: bit0 posted, bit1 posted id = response id, else ctl >> 2; the
// 8-byte response}).
class rx_feed {
public:
    explicit rx_feed(std::size_t cap = frame_cap) : cap_(cap), seed_(1, cap == frame_cap ? '\0' : '\1') {}
    ~rx_feed() { vifkit::test::write_fuzz_seed("rx_response", seed_); }
    rx_feed(const rx_feed&) = delete;
    rx_feed& operator=(const rx_feed&) = delete;

    rx_slot slot(abi::rx_response r, bool posted = true) { return slot_as(r, posted, r.id); }
    rx_slot slot_as(abi::rx_response r, bool posted, std::uint16_t posted_id) {
        std::uint8_t ctl = posted ? 1 : 0;
        if (posted_id == r.id) ctl |= 2;
        else ctl = static_cast<std::uint8_t>(ctl | ((posted_id & 0x3F) << 2));
        seed_ += static_cast<char>(ctl);
        seed_.append(reinterpret_cast<const char*>(&r), sizeof r);
        const rx_slot s = decode_rx_slot(c_, r, posted, posted_id, cap_);
        if (s.chain_done) {
            done_.push_back(rx_chain_ok(c_));
            c_ = {};
        }
        return s;
    }
    rx_chain& chain() { return c_; }
    const std::vector<bool>& delivered() const { return done_; }

private:
    std::size_t cap_;
    std::string seed_;
    rx_chain c_;
    std::vector<bool> done_;
};

abi::rx_response data(std::uint16_t id, std::int16_t status, std::uint16_t flags = 0, std::uint16_t offset = 0) {
    return {id, offset, flags, status};
}
abi::rx_response extra(std::uint8_t type, bool more = false) {
    abi::extra_info e{};
    e.type = type;
    e.flags = more ? abi::extra_flag::more : 0;
    abi::rx_response r;
    std::memcpy(&r, &e, sizeof r);
    return r;
}

TEST(Spec4_4_RxChain, SingleSlotFrameIsCopiedAndDelivered) {
    rx_feed f;
    const auto s = f.slot(data(3, 60, 0, 100));
    EXPECT_EQ(s.what, rx_slot::kind::data);
    EXPECT_EQ(s.copy_offset, 100);
    EXPECT_EQ(s.copy_len, 60);
    EXPECT_EQ(s.copy_at, 0u);
    EXPECT_TRUE(s.chain_done);
    EXPECT_EQ(f.delivered(), std::vector<bool>{true});
}

TEST(Spec4_4_RxChain, MultiSlotFrameAppendsInOrder) {
    rx_feed f;
    EXPECT_FALSE(f.slot(data(0, 4000, abi::rxf::more_data)).chain_done);
    const auto s = f.slot(data(1, 500, 0, 96));
    EXPECT_EQ(s.copy_at, 4000u);
    EXPECT_TRUE(s.chain_done);
    EXPECT_EQ(f.delivered(), std::vector<bool>{true});
}

TEST(Spec4_4_RxChain, RuntFrameIsNotDelivered) {
    rx_feed f;
    EXPECT_TRUE(f.slot(data(0, 13)).chain_done);
    EXPECT_EQ(f.delivered(), std::vector<bool>{false});
}

TEST(Spec4_4_RxChain, NegativeStatusMarksTheChainBad) {
    rx_feed f;
    const auto s = f.slot(data(0, abi::rsp::error, abi::rxf::more_data));
    EXPECT_EQ(s.copy_len, 0);
    EXPECT_TRUE(f.chain().bad);
    f.slot(data(1, 100));
    EXPECT_EQ(f.delivered(), std::vector<bool>{false});
}

TEST(Spec4_4_RxChain, SlotCrossingThePageIsBadAndNotCopied) {
    rx_feed f;
    const auto s = f.slot(data(0, 200, 0, 4000));
    EXPECT_EQ(s.copy_len, 0);
    EXPECT_EQ(f.delivered(), std::vector<bool>{false});
    rx_feed g;
    EXPECT_EQ(g.slot(data(0, 96, 0, 4000)).copy_len, 96);  // exactly to the end is fine
}

TEST(Spec4_4_RxChain, FrameOverflowIsBad) {
    rx_feed f(100);
    f.slot(data(0, 80, abi::rxf::more_data));
    const auto s = f.slot(data(1, 40));
    EXPECT_EQ(s.copy_len, 0);
    EXPECT_EQ(f.delivered(), std::vector<bool>{false});
}

TEST(Spec4_4_RxChain, TooManySlotsIsBad) {
    rx_feed f;
    for (unsigned i = 0; i < rx_max_slots; ++i) f.slot(data(static_cast<std::uint16_t>(i), 100, abi::rxf::more_data));
    EXPECT_FALSE(f.chain().bad);
    f.slot(data(99, 100));
    EXPECT_EQ(f.delivered(), std::vector<bool>{false});
}

TEST(Spec4_4_RxChain, ResponseWithoutPostedBufferIsBadButNotDone) {
    rx_feed f;
    const auto s = f.slot(data(0, 60), false);
    EXPECT_EQ(s.what, rx_slot::kind::no_buffer);
    EXPECT_FALSE(s.chain_done);
    EXPECT_TRUE(f.chain().bad);
    f.slot(data(1, 60));
    EXPECT_EQ(f.delivered(), std::vector<bool>{false});
}

TEST(Spec4_4_RxChain, WrongIdIsBad) {
    rx_feed f;
    const auto s = f.slot_as(data(5, 60), true, 6);
    EXPECT_TRUE(s.wrong_id);
    EXPECT_EQ(f.delivered(), std::vector<bool>{false});
}

TEST(Spec4_4_RxExtras, ExtrasFollowTheFirstDataSlot) {
    rx_feed f;
    EXPECT_FALSE(f.slot(data(0, 60, abi::rxf::extra_info)).chain_done);
    const auto e1 = f.slot(extra(abi::extra_type::gso, true));
    EXPECT_EQ(e1.what, rx_slot::kind::extra);
    EXPECT_FALSE(e1.chain_done);
    const auto e2 = f.slot(extra(abi::extra_type::hash));
    EXPECT_TRUE(e2.hash_extra);
    EXPECT_TRUE(e2.chain_done);
    EXPECT_EQ(f.delivered(), std::vector<bool>{true});
}

TEST(Spec4_4_RxExtras, ExtraThenMoreDataSlots) {
    rx_feed f;
    f.slot(data(0, 1000, abi::rxf::extra_info | abi::rxf::more_data));
    EXPECT_FALSE(f.slot(extra(abi::extra_type::gso)).chain_done);
    const auto s = f.slot(data(2, 500));
    EXPECT_EQ(s.copy_at, 1000u);
    EXPECT_TRUE(s.chain_done);
    EXPECT_EQ(f.delivered(), std::vector<bool>{true});
}

TEST(Spec4_4_RxExtras, ExtraInfoOnALaterSlotIsIgnored) {
    rx_feed f;
    f.slot(data(0, 1000, abi::rxf::more_data));
    const auto s = f.slot(data(1, 100, abi::rxf::extra_info));
    EXPECT_TRUE(s.chain_done);
    EXPECT_EQ(f.delivered(), std::vector<bool>{true});
}

}  // namespace
}  // namespace vifkit::wire
