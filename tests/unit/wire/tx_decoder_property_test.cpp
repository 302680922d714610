// Randomised property test for wire::decode_tx_packet (netif-spec §4.3): the
// decoder reads hostile input, so whatever the window holds it must not crash,
// must never claim more slots than it was given, and every `ok` it returns
// must describe a packet a backend can copy without further checks.
//
// Windows are well-formed packets (random extras, fragment counts, sizes and
// offsets) that are then damaged (random byte/field mutations, truncation), so
// every verdict is reached often. Seed: VIFKIT_PROPERTY_SEED or a fixed default.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tx_window.hpp"
#include "vifkit/abi/netif.hpp"
#include "vifkit/wire/tx_decoder.hpp"

namespace vifkit::wire {
namespace {

constexpr std::uint32_t page = 4096;
constexpr int iterations = 100'000;

class gen {
public:
    explicit gen(std::uint64_t seed) : rng_(seed) {}

    std::uint32_t below(std::uint32_t n) { return std::uniform_int_distribution<std::uint32_t>(0, n - 1)(rng_); }
    bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

    tx_limits limits() {
        tx_limits l;
        l.gso_tcpv4 = chance(0.6);
        l.gso_tcpv6 = chance(0.5);
        l.multicast_control = chance(0.5);
        return l;
    }

    std::uint16_t frag_size() {
        switch (below(6)) {
        case 0: return 0;
        case 1: return static_cast<std::uint16_t>(below(14));
        case 2: return static_cast<std::uint16_t>(below(200));
        case 3: return static_cast<std::uint16_t>(below(page + 1));
        case 4: return static_cast<std::uint16_t>(page);
        default: return static_cast<std::uint16_t>(below(2000));
        }
    }
    std::uint16_t offset_for(std::uint16_t size) {
        if (chance(0.05)) return static_cast<std::uint16_t>(below(0x10000));  // anywhere
        const std::uint32_t room = size <= page ? page - size : 0;
        return static_cast<std::uint16_t>(below(room + 1));
    }

    abi::extra_info some_extra() {
        abi::extra_info e{};
        switch (below(8)) {
        case 0:
        case 1:
        case 2:
            e.type = abi::extra_type::gso;
            e.u.gso.size = chance(0.1) ? 0 : static_cast<std::uint16_t>(1 + below(9000));
            e.u.gso.type = static_cast<std::uint8_t>(chance(0.9) ? 1 + below(2) : below(256));
            break;
        case 3:
        case 4:
            e.type = abi::extra_type::hash;
            e.u.hash.type = static_cast<std::uint8_t>(below(256));
            e.u.hash.algorithm = static_cast<std::uint8_t>(below(256));
            break;
        case 5:
        case 6:
            e.type = static_cast<std::uint8_t>(chance(0.5) ? abi::extra_type::mcast_add : abi::extra_type::mcast_del);
            for (auto& b : e.u.mcast.addr) b = static_cast<std::uint8_t>(below(256));
            break;
        default:
            e.type = static_cast<std::uint8_t>(below(256));  // mostly invalid
            break;
        }
        return e;
    }

    // Appends one packet that is valid for generous limits (before mutation).
    void packet(testing::tx_window& w) {
        const unsigned r = below(100);
        const unsigned nfrags = r < 40 ? 0 : r < 80 ? below(8) : r < 92 ? 15 + below(6) : below(26);
        const unsigned nextras = chance(0.3) ? 1 + below(chance(0.9) ? 2 : 6) : 0;
        std::vector<abi::tx_request> frags;
        std::uint32_t rest = 0;
        for (unsigned i = 0; i < nfrags; ++i) {
            abi::tx_request f{};
            f.size = frag_size();
            f.offset = offset_for(f.size);
            f.flags = static_cast<std::uint16_t>((i + 1 < nfrags ? abi::txf::more_data : 0) | (below(4) & 3));
            rest += f.size;
            frags.push_back(f);
        }
        std::uint32_t first_share = chance(0.05) ? 0 : std::min<std::uint32_t>(14 + below(1500), page);
        std::uint32_t total = rest + first_share;
        if (total > 0xFFFF) {  // keep it representable; the decoder will see oversized fragments
            total = 0xFFFF;
            first_share = 0;
        }
        const bool dummy = chance(0.03);
        abi::tx_request first{};
        first.size = static_cast<std::uint16_t>(dummy ? 0 : total);
        first.offset = offset_for(static_cast<std::uint16_t>(first_share));
        first.flags = static_cast<std::uint16_t>(below(4) & 3);
        if (nfrags) first.flags |= abi::txf::more_data;
        if (nextras || dummy) first.flags |= abi::txf::extra_info;
        first.gref = below(0xFFFFFFFF);
        w.req(first.size, first.flags, first.offset);
        const unsigned ne = dummy ? std::max(nextras, 1u) : nextras;
        for (unsigned i = 0; i < ne; ++i) {
            abi::extra_info e = some_extra();
            e.flags = static_cast<std::uint8_t>(i + 1 < ne ? abi::extra_flag::more : 0);
            w.extra(e);
        }
        for (const auto& f : frags) w.req(f.size, f.flags, f.offset);
    }

    void mutate(testing::tx_window& w) {
        if (w.size() == 0) return;
        abi::tx_request& r = w[below(static_cast<std::uint32_t>(w.size()))];
        switch (below(6)) {
        case 0: r.flags ^= static_cast<std::uint16_t>(1u << below(4)); break;
        case 1: r.size = static_cast<std::uint16_t>(below(0x10000)); break;
        case 2: r.offset = static_cast<std::uint16_t>(below(0x10000)); break;
        case 3: r.size = frag_size(); break;
        default: {  // one random byte anywhere in the slot (hits extra type/flags too)
            unsigned char bytes[sizeof r];
            std::memcpy(bytes, &r, sizeof r);
            bytes[below(sizeof r)] = static_cast<unsigned char>(below(256));
            std::memcpy(&r, bytes, sizeof r);
            break;
        }
        }
    }

    testing::tx_window window() {
        testing::tx_window w;
        packet(w);
        if (chance(0.3)) packet(w);  // a second packet behind the first
        const unsigned muts = below(10) < 5 ? 0 : 1 + below(3);
        for (unsigned i = 0; i < muts; ++i) mutate(w);
        if (chance(0.15) && w.size() > 0) {  // the backend copied only part of it so far
            testing::tx_window t;
            const std::size_t keep = below(static_cast<std::uint32_t>(w.size()));
            for (std::size_t i = 0; i < keep; ++i) {
                const auto& q = w.reqs()[i];
                t.req(q.size, q.flags, q.offset);
                t[i] = q;
            }
            return t;
        }
        return w;
    }

private:
    std::mt19937_64 rng_;
};

// Returns "" when every invariant holds, else what broke.
std::string check(std::span<const abi::tx_request> w, const tx_limits& lim, const tx_decode& d) {
    std::ostringstream err;
    const tx_packet& p = d.pkt;
    switch (d.verdict) {
    case tx_verdict::ok:
    case tx_verdict::drop:
        break;
    case tx_verdict::fatal:
    case tx_verdict::need_more:
        if (d.reason == nullptr || *d.reason == '\0') err << "fatal/need_more without a reason; ";
        return err.str();
    default:
        return "verdict out of range";
    }
    if (p.consumed < 1 || p.consumed > w.size()) err << "consumed " << int(p.consumed) << " of " << w.size() << "; ";
    if (p.consumed != p.nr_slots + p.nr_extras) err << "consumed != slots + extras; ";
    if (p.nr_slots < 1 || p.nr_slots > lim.fatal_slots + 1) err << "nr_slots " << int(p.nr_slots) << "; ";
    if (!err.str().empty()) return err.str();
    if (p.data_index[0] != 0) err << "data_index[0] != 0; ";
    for (unsigned s = 1; s < p.nr_slots; ++s)
        if (p.data_index[s] != p.nr_extras + s) err << "data_index[" << s << "] = " << int(p.data_index[s]) << "; ";
    for (unsigned i = 1; i <= p.nr_extras; ++i) {
        const auto t = as_extra(w[i]).type;
        if (t == abi::extra_type::none || t >= abi::extra_type::max) err << "extra " << i << " has type " << int(t) << "; ";
    }
    if (p.total_len != w[0].size) err << "total_len != first size; ";
    if (d.verdict == tx_verdict::drop) {
        if (d.reason == nullptr || *d.reason == '\0') err << "drop without a reason; ";
        return err.str();
    }

    // ok: a packet a backend may copy as described.
    if (*d.reason != '\0') err << "ok with a reason; ";
    if (p.nr_slots > 1 + lim.max_further_slots || p.nr_slots > 19) err << "ok with " << int(p.nr_slots) << " slots; ";
    if (p.has_gso) {
        if (p.gso.size == 0) err << "GSO size 0 accepted; ";
        const bool adv = (p.gso.type == abi::gso_type::tcpv4 && lim.gso_tcpv4) ||
                         (p.gso.type == abi::gso_type::tcpv6 && lim.gso_tcpv6);
        if (!adv) err << "unadvertised GSO type accepted; ";
    }
    if (p.has_mcast && !lim.multicast_control) err << "multicast without the feature; ";
    std::uint32_t sum = p.first_len;
    for (unsigned s = 1; s < p.nr_slots; ++s) {
        const auto& r = w[p.data_index[s]];
        sum += r.size;
        if (std::uint32_t{r.offset} + r.size > page) err << "slot " << s << " crosses the page; ";
    }
    if (sum != p.total_len) err << "slot lengths sum to " << sum << ", total " << p.total_len << "; ";
    // The multicast dummy carries no data (total 0): its first slot is never
    // read, so its offset is not checked (Linux answers it before any data check).
    const bool dummy = p.has_mcast && p.total_len == 0;
    if (!dummy) {
        if (p.total_len < abi::eth_hlen) err << "ok shorter than ETH_HLEN; ";
        if (std::uint32_t{w[0].offset} + p.first_len > page) err << "first slot crosses the page; ";
    }
    return err.str();
}

std::string dump(std::span<const abi::tx_request> w) {
    std::ostringstream o;
    for (std::size_t i = 0; i < w.size(); ++i) {
        const auto e = as_extra(w[i]);
        o << "  [" << i << "] size=" << w[i].size << " off=" << w[i].offset << " flags=0x" << std::hex << w[i].flags
          << " (as extra: type=" << std::dec << int(e.type) << " flags=" << int(e.flags) << ")\n";
    }
    return o.str();
}

TEST(Spec4_3_TxDecoderProperty, RandomWindowsKeepInvariants) {
    std::uint64_t seed = 0x5eed'f00d'2024ull;
    if (const char* s = std::getenv("VIFKIT_PROPERTY_SEED")) seed = std::strtoull(s, nullptr, 0);
    gen g(seed);
    int counts[4] = {};
    int ok_max_slots = 0, mcast_dummies = 0, ok_with_extras = 0;
    for (int it = 0; it < iterations; ++it) {
        const tx_limits lim = g.limits();
        const testing::tx_window w = g.window();
        const tx_decode d = decode_tx_packet(w.span(), lim);
        if (it < 24) testing::maybe_write_corpus(w.span(), lim);  // a few random fuzz seeds
        std::string why = check(w.span(), lim, d);
        if (why.empty() && (d.verdict == tx_verdict::ok || d.verdict == tx_verdict::drop)) {
            // The verdict depends only on the slots it consumed.
            const tx_decode again = decode_tx_packet(w.span().first(d.pkt.consumed), lim);
            if (again.verdict != d.verdict || again.pkt.consumed != d.pkt.consumed)
                why = "verdict changes when the window ends right after the packet";
        }
        if (!why.empty()) {
            ADD_FAILURE() << "seed " << seed << " iteration " << it << " verdict " << testing::name(d.verdict)
                          << " (" << d.reason << "): " << why << "\n"
                          << dump(w.span());
            return;
        }
        ++counts[static_cast<int>(d.verdict)];
        if (d.verdict == tx_verdict::ok) {
            ok_max_slots += d.pkt.nr_slots == 19;
            mcast_dummies += d.pkt.has_mcast && d.pkt.total_len == 0;
            ok_with_extras += d.pkt.nr_extras > 0;
        }
    }
    // The generator must actually reach every verdict and the interesting oks.
    EXPECT_GT(counts[static_cast<int>(tx_verdict::ok)], iterations / 20);
    EXPECT_GT(counts[static_cast<int>(tx_verdict::drop)], iterations / 50);
    EXPECT_GT(counts[static_cast<int>(tx_verdict::fatal)], iterations / 50);
    EXPECT_GT(counts[static_cast<int>(tx_verdict::need_more)], iterations / 50);
    EXPECT_GT(ok_max_slots, 0);
    EXPECT_GT(mcast_dummies, 0);
    EXPECT_GT(ok_with_extras, 0);
    RecordProperty("ok", counts[0]);
    RecordProperty("drop", counts[1]);
    RecordProperty("fatal", counts[2]);
    RecordProperty("need_more", counts[3]);
}

}  // namespace
}  // namespace vifkit::wire
