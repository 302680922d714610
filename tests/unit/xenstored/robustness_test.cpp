// Hostile input: many random (seeded, so reproducible) frames from dom0 and
// guests. Every request must get exactly one reply echoing its ids, and the
// tree must stay structurally consistent.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "xs_test_util.hpp"

namespace vifkit::emu::xs {
namespace {

using test::harness;

class frame_gen {
public:
    explicit frame_gen(std::uint32_t seed) : rng_(seed) {}

    std::string path() {
        static const char* parts[] = {"a", "b", "local", "domain", "5", "6", "device", "x@y", "bad.c"};
        std::string p = pick(4) == 0 ? "" : "/";  // sometimes relative
        const int depth = 1 + pick(4);
        for (int i = 0; i < depth; ++i) p += std::string(i ? "/" : "") + parts[pick(9)];
        if (pick(20) == 0) p += "/";  // invalid
        if (pick(30) == 0) p = "@releaseDomain";
        return p;
    }
    std::string arg() {
        switch (pick(6)) {
        case 0: return "T";
        case 1: return "F";
        case 2: return std::to_string(pick(10));
        case 3: return std::string(1, "nrwbq"[pick(5)]) + std::to_string(pick(8));
        default: return path();
        }
    }
    std::string payload(msg_type t) {
        std::string p;
        if (pick(15) == 0) {  // raw junk, NULs included
            const int n = pick(64);
            for (int i = 0; i < n; ++i) p += static_cast<char>(pick(256));
            return p;
        }
        if (t == msg_type::transaction_end) return test::strings({pick(4) ? "T" : arg()});
        p = test::strings({path()});
        switch (t) {
        case msg_type::write: return p + std::string(pick(40), 'v');
        case msg_type::set_perms: return p + perms();
        case msg_type::watch:
        case msg_type::unwatch:
        case msg_type::directory_part: return p + test::strings({arg()});
        default: break;
        }
        const int extra = pick(4) == 0 ? 1 + pick(2) : 0;  // mostly well-formed
        for (int i = 0; i < extra; ++i) p += test::strings({arg()});
        return p;
    }
    std::string perms() {
        std::string p;
        const int n = 1 + pick(3);
        for (int i = 0; i < n; ++i)
            p += test::strings({std::string(1, "nrwbq"[pick(5)]) + std::to_string(pick(8))});
        return p;
    }
    std::uint32_t type() { return pick(10) == 0 ? pick(40) : pick(23); }
    int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

private:
    std::mt19937 rng_;
};

TEST(XsRobustness, RandomFramesGetOneReplyEachAndKeepTheTreeConsistent) {
    limits lim;
    lim.nodes_per_domain = 50;
    harness h(lim);
    h.eng().introduce_domain(5);
    const conn_id conns[] = {h.connect(), h.connect(caller::domain(5)), h.connect(caller::domain(6))};
    frame_gen gen(12345);
    std::map<conn_id, std::vector<std::uint32_t>> open_tx;  // per connection
    std::vector<int> succeeded(24, 0);
    for (std::uint32_t i = 1; i <= 20000; ++i) {
        const conn_id c = conns[gen.pick(3)];
        const std::uint32_t type = gen.type();
        const bool ends = type == static_cast<std::uint32_t>(msg_type::transaction_end);
        auto& mine = open_tx[c];
        std::uint32_t tx = 0;
        if (!mine.empty() && gen.pick(ends ? 4 : 3) != 1) tx = mine[gen.pick(static_cast<int>(mine.size()))];
        if (gen.pick(50) == 0) tx = 1000 + gen.pick(5);  // unknown id
        const auto m = h.raw(c, static_cast<msg_type>(type), gen.payload(static_cast<msg_type>(type)), tx, i);
        ASSERT_EQ(m.req_id, i);
        ASSERT_EQ(m.tx_id, tx);
        if (type == static_cast<std::uint32_t>(msg_type::transaction_start) && !m.is_error())
            mine.push_back(static_cast<std::uint32_t>(std::stoul(m.text())));
        if (ends && (!m.is_error() || m.error() == "EAGAIN"))  // either way it is over
            mine.erase(std::remove(mine.begin(), mine.end(), tx), mine.end());
        if (type == static_cast<std::uint32_t>(msg_type::reset_watches) && !m.is_error()) mine.clear();
        if (!m.is_error()) ++succeeded[type < 23 ? type : 23];
        if (i % 1000 == 0) {
            ASSERT_EQ(h.eng().nodes().check(), "") << "after frame " << i;
            for (auto cc : conns) (void)h.events(cc);
        }
    }
    // The generator must reach the interesting paths, not just error replies.
    for (auto t : {msg_type::read, msg_type::write, msg_type::mkdir, msg_type::rm,
                   msg_type::directory, msg_type::set_perms, msg_type::watch,
                   msg_type::transaction_end})
        EXPECT_GT(succeeded[static_cast<std::size_t>(t)], 10) << to_string(t);
    EXPECT_GT(h.eng().counters().malformed, 0u);
    EXPECT_GT(h.eng().counters().denied, 0u);
    // Still fully functional.
    EXPECT_EQ(h.outcome(h.write(conns[0], "/after", "ok")), "OK");
    h.eng().introduce_domain(7);
    const conn_id g7 = h.connect(caller::domain(7));
    EXPECT_EQ(h.outcome(h.write(g7, "fresh", "1")), "OK");
    EXPECT_EQ(h.read(conns[0], "/after"), "ok");
    EXPECT_LE(h.eng().nodes().owned_by(5), lim.nodes_per_domain);
    EXPECT_LE(h.eng().nodes().owned_by(6), lim.nodes_per_domain);
}

TEST(XsRobustness, TransactionsUnderRandomInterleavingStayConsistent) {
    harness h;
    const conn_id a = h.connect();
    const conn_id b = h.connect();
    frame_gen gen(777);
    int commits = 0;
    int conflicts = 0;
    for (int round = 0; round < 500; ++round) {
        const auto t = h.begin(a);
        for (int k = 0; k < 4; ++k) {
            const std::string p = "/t/" + std::to_string(gen.pick(6)) + "/" + std::to_string(gen.pick(3));
            switch (gen.pick(4)) {
            case 0: (void)h.read(a, p, t); break;
            case 1: h.write(a, p, "a", t); break;
            case 2: h.call(a, msg_type::rm, {p}, t); break;
            default: (void)h.ls(a, "/t", t); break;
            }
            if (gen.pick(3) == 0) h.write(b, "/t/" + std::to_string(gen.pick(6)), "b");
            if (gen.pick(5) == 0) h.call(b, msg_type::rm, {"/t/" + std::to_string(gen.pick(6))});
        }
        const std::string r = h.end(a, t);
        ASSERT_TRUE(r == "OK" || r == "E:EAGAIN") << r;
        (r == "OK" ? commits : conflicts)++;
        ASSERT_EQ(h.eng().nodes().check(), "") << "round " << round;
    }
    EXPECT_GT(commits, 0);
    EXPECT_GT(conflicts, 0);
}

}  // namespace
}  // namespace vifkit::emu::xs
