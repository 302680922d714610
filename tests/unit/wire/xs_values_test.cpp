// Strict parsers for peer-written xenstore values (netif-spec §5.1: grefs and
// event channels are decimal, feature flags "0"/"1", MACs "aa:bb:cc:dd:ee:ff",
// the toolstack's rate "BYTES,USEC").
// The writer is the (untrusted) peer, so anything but the exact form is refused.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "vifkit/wire/xs_values.hpp"

namespace vifkit::wire {
namespace {

using namespace std::string_view_literals;

// ---- §5.1 tx-ring-ref / rx-ring-ref / event-channel*: decimal u32 ----

TEST(Spec5_1_ParseU32, AcceptsTheWholeRange) {
    EXPECT_EQ(parse_u32("0"), std::optional<std::uint32_t>(0));
    EXPECT_EQ(parse_u32("1"), std::optional<std::uint32_t>(1));
    EXPECT_EQ(parse_u32("768"), std::optional<std::uint32_t>(768));
    EXPECT_EQ(parse_u32("4294967295"), std::optional<std::uint32_t>(4294967295u));
}

TEST(Spec5_1_ParseU32, RejectsOutOfRangeSignsSpacesHexAndJunk) {
    for (std::string_view s : {"4294967296"sv, "4294967300"sv, "99999999999"sv, ""sv, "-1"sv, "-0"sv, "+1"sv,
                               " 1"sv, "1 "sv, "1\n"sv, "0x10"sv, "0X10"sv, "12a"sv, "a12"sv, "1.0"sv, "1e3"sv,
                               "1,2"sv, "\0"sv, "1\0"sv}) {
        EXPECT_EQ(parse_u32(s), std::nullopt) << "'" << std::string(s) << "' (" << s.size() << " bytes)";
    }
}

TEST(Spec5_1_ParseU32, ReadsOnlyTheGivenView) {
    // A view into a longer buffer: the digits after it must not be read.
    const std::string buf = "12345";
    EXPECT_EQ(parse_u32(std::string_view(buf).substr(0, 2)), std::optional<std::uint32_t>(12));
}

// ---- §5.1 feature-* / request-rx-copy etc.: "0" or "1" ----

TEST(Spec5_1_ParseFlag, AcceptsOnlyZeroAndOne) {
    EXPECT_EQ(parse_flag("0"), std::optional<bool>(false));
    EXPECT_EQ(parse_flag("1"), std::optional<bool>(true));
    for (std::string_view s : {""sv, "2"sv, "00"sv, "01"sv, "10"sv, " 1"sv, "1 "sv, "1\n"sv, "true"sv, "false"sv,
                               "yes"sv, "-1"sv, "+1"sv, "\0"sv}) {
        EXPECT_EQ(parse_flag(s), std::nullopt) << "'" << std::string(s) << "'";
    }
}

// ---- §5.1 mac: "aa:bb:cc:dd:ee:ff" ----

TEST(Spec5_1_Mac, ParsesLowerAndUpperCaseHex) {
    using mac = std::array<std::uint8_t, 6>;
    EXPECT_EQ(parse_mac("00:16:3e:0a:bc:ff"), std::optional<mac>(mac{0x00, 0x16, 0x3e, 0x0a, 0xbc, 0xff}));
    EXPECT_EQ(parse_mac("00:16:3E:0A:BC:FF"), std::optional<mac>(mac{0x00, 0x16, 0x3e, 0x0a, 0xbc, 0xff}));
}

TEST(Spec5_1_Mac, FormatIsLowerCaseTwoDigitsColonSeparated) {
    EXPECT_EQ(format_mac({0x00, 0x16, 0x3e, 0x0a, 0xbc, 0xff}), "00:16:3e:0a:bc:ff");
    EXPECT_EQ(format_mac({0, 0, 0, 0, 0, 0}), "00:00:00:00:00:00");
    EXPECT_EQ(format_mac({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), "ff:ff:ff:ff:ff:ff");
}

TEST(Spec5_1_Mac, FormatThenParseRoundTrips) {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int i = 0; i < 2000; ++i) {
        std::array<std::uint8_t, 6> m{};
        for (auto& b : m) b = static_cast<std::uint8_t>(byte(rng));
        const std::string s = format_mac(m);
        ASSERT_EQ(s.size(), 17u);
        const auto back = parse_mac(s);
        ASSERT_TRUE(back.has_value()) << s;
        EXPECT_EQ(*back, m) << s;
        EXPECT_EQ(format_mac(*back), s);
    }
}

TEST(Spec5_1_Mac, RejectsAnythingButTheExactForm) {
    for (std::string_view s : {
             ""sv,
             "00:16:3e:0a:bc"sv,           // five octets
             "00:16:3e:0a:bc:ff:"sv,       // trailing separator
             "00:16:3e:0a:bc:ff:01"sv,     // seven octets
             "00-16-3e-0a-bc-ff"sv,        // wrong separator
             "00:16:3e:0a:bc-ff"sv,        // one wrong separator
             "0016.3e0a.bcff..."sv,        // Cisco style (padded to 17)
             "00:16:3e:0a:bc:fg"sv,        // not hex
             "0:16:3e:0a:bc:fff"sv,        // 17 bytes, misplaced colon
             "+0:16:3e:0a:bc:ff"sv,        // sign
             "-0:16:3e:0a:bc:ff"sv,
             " 0:16:3e:0a:bc:ff"sv,        // space
             "00:16:3e:0a:bc:f "sv,
             "0x:16:3e:0a:bc:ff"sv,        // hex prefix
             "00:16:3e:0a:bc:ff\n"sv,      // trailing newline
             "00::16:3e:0a:bc:f"sv,
             "00:16:3e:0a:bc:f\0"sv,       // embedded NUL
         }) {
        EXPECT_EQ(parse_mac(s), std::nullopt) << "'" << std::string(s) << "'";
    }
}

// ---- §5.1 B/rate: "BYTES,USEC" (libxl: "%"PRIu64",%"PRIu32, only when USEC > 0) ----

TEST(Spec5_1_Rate, ParsesBytesCommaMicroseconds) {
    EXPECT_EQ(parse_rate("10000,1000"), std::optional<rate_limit>(rate_limit{10000, 1000}));
    EXPECT_EQ(parse_rate("1,1"), std::optional<rate_limit>(rate_limit{1, 1}));
    // 10 Mbit/s in 50 ms slices (xapi's default timeslice): 62500 bytes per 50000 us.
    EXPECT_EQ(parse_rate("62500,50000"), std::optional<rate_limit>(rate_limit{62500, 50000}));
    // Leading zeros are still decimal (Linux's simple_strtoul, base 10, agrees).
    EXPECT_EQ(parse_rate("010,007"), std::optional<rate_limit>(rate_limit{10, 7}));
}

TEST(Spec5_1_Rate, AcceptsTheWholeU64RangeOnBothSides) {
    EXPECT_EQ(parse_rate("18446744073709551615,18446744073709551615"),
              std::optional<rate_limit>(rate_limit{UINT64_MAX, UINT64_MAX}));
    EXPECT_EQ(parse_rate("18446744073709551615,4294967295"),
              std::optional<rate_limit>(rate_limit{UINT64_MAX, 4294967295u}));
}

TEST(Spec5_1_Rate, RejectsOverflowInEitherField) {
    for (std::string_view s : {"18446744073709551616,1"sv, "1,18446744073709551616"sv,
                               "99999999999999999999,1"sv, "1,99999999999999999999"sv,
                               "000000000000000000001,1"sv /* 21 digits */}) {
        EXPECT_EQ(parse_rate(s), std::nullopt) << "'" << std::string(s) << "'";
    }
}

TEST(Spec5_1_Rate, RejectsZeroBytesOrZeroPeriod) {
    // Zero bytes would stall the guest forever; a zero period is a division by
    // zero (Linux: refill on every packet, i.e. no limit). Neither is a limit.
    for (std::string_view s : {"0,1000"sv, "10000,0"sv, "0,0"sv, "00,1"sv, "1,000"sv}) {
        EXPECT_EQ(parse_rate(s), std::nullopt) << "'" << std::string(s) << "'";
    }
}

TEST(Spec5_1_Rate, RejectsMissingFieldsSeparatorsSignsSpacesAndJunk) {
    for (std::string_view s : {
             ""sv, ","sv, "10000"sv, "10000,"sv, ",1000"sv,            // missing parts
             "10000,1000,"sv, "10000,1000,5"sv, "1,,2"sv,             // extra separators
             "10000;1000"sv, "10000 1000"sv, "10000.1000"sv,          // wrong separator
             "+10000,1000"sv, "-10000,1000"sv, "10000,+1000"sv, "10000,-1000"sv,
             " 10000,1000"sv, "10000 ,1000"sv, "10000, 1000"sv, "10000,1000 "sv,
             "10000,1000\n"sv, "\t10000,1000"sv,                     // whitespace
             "0x10,1000"sv, "10000,0x10"sv, "1e4,1000"sv, "10000,1000us"sv,
             "10000b,1000"sv, "10kB,1000"sv,                          // units / hex / junk
             "10000,1000\0"sv, "10000\0,1000"sv,                      // embedded NUL
         }) {
        EXPECT_EQ(parse_rate(s), std::nullopt) << "'" << std::string(s) << "' (" << s.size() << " bytes)";
    }
}

TEST(Spec5_1_Rate, ReadsOnlyTheGivenView) {
    const std::string buf = "10000,10009";
    EXPECT_EQ(parse_rate(std::string_view(buf).substr(0, 9)), std::optional<rate_limit>(rate_limit{10000, 100}));
}

TEST(Spec5_1_Rate, RoundTripsWhatLibxlWrites) {
    std::mt19937_64 rng(777);
    for (int i = 0; i < 2000; ++i) {
        const std::uint64_t bytes = rng() | 1;                          // PRIu64, nonzero
        const std::uint32_t usec = static_cast<std::uint32_t>(rng()) | 1;  // PRIu32, nonzero
        const std::string s = std::to_string(bytes) + "," + std::to_string(usec);
        const auto r = parse_rate(s);
        ASSERT_TRUE(r.has_value()) << s;
        EXPECT_EQ(r->bytes, bytes) << s;
        EXPECT_EQ(r->usec, usec) << s;
    }
}

}  // namespace
}  // namespace vifkit::wire
