// Names and numbers of control messages (netif-spec §1.2, §2.1).
#include <gtest/gtest.h>

#include <string>

#include "vifkit/abi/netif.hpp"
#include "vifkit/ctrlfront/ctrl_names.hpp"

namespace vifkit::ctrlfront {
namespace {

TEST(ctrl_names, every_spec_type_has_its_name_and_number) {
    const std::pair<std::uint16_t, const char*> expected[] = {
        {0, "invalid"},
        {1, "get_hash_flags"},
        {2, "set_hash_flags"},
        {3, "set_hash_key"},
        {4, "get_hash_mapping_size"},
        {5, "set_hash_mapping_size"},
        {6, "set_hash_mapping"},
        {7, "set_hash_algorithm"},
        {8, "get_gref_mapping_size"},
        {9, "add_gref_mapping"},
        {10, "del_gref_mapping"},
    };
    ASSERT_EQ(known_types().size(), std::size(expected));
    for (const auto& [num, name] : expected) {
        EXPECT_STREQ(type_name(num), name);
        EXPECT_EQ(parse_type(name), num) << name;
        ASSERT_NE(find_type(num), nullptr);
        EXPECT_EQ(find_type(num)->type, num);
        EXPECT_NE(std::string(find_type(num)->data_help), "");
    }
    EXPECT_STREQ(type_name(11), "unknown");
    EXPECT_STREQ(type_name(0xFFFF), "unknown");
    EXPECT_EQ(find_type(11), nullptr);
}

TEST(ctrl_names, page_arguments_follow_the_spec) {
    EXPECT_EQ(find_type(abi::ctrl_type::set_hash_key)->page_arg, 0);
    EXPECT_EQ(find_type(abi::ctrl_type::set_hash_mapping)->page_arg, 0);
    EXPECT_EQ(find_type(abi::ctrl_type::add_gref_mapping)->page_arg, 1);
    EXPECT_EQ(find_type(abi::ctrl_type::del_gref_mapping)->page_arg, 1);
    EXPECT_EQ(find_type(abi::ctrl_type::get_gref_mapping_size)->page_arg, -1);
    // §1.3: the table page must be writable (backend writes status).
    EXPECT_TRUE(find_type(abi::ctrl_type::add_gref_mapping)->page_writable);
    EXPECT_TRUE(find_type(abi::ctrl_type::del_gref_mapping)->page_writable);
    EXPECT_FALSE(find_type(abi::ctrl_type::set_hash_key)->page_writable);
}

TEST(ctrl_names, status_names_include_local_markers) {
    EXPECT_STREQ(status_name(abi::ctrl_status::success), "SUCCESS");
    EXPECT_STREQ(status_name(abi::ctrl_status::not_supported), "NOT_SUPPORTED");
    EXPECT_STREQ(status_name(abi::ctrl_status::invalid_parameter), "INVALID_PARAMETER");
    EXPECT_STREQ(status_name(abi::ctrl_status::buffer_overflow), "BUFFER_OVERFLOW");
    EXPECT_STREQ(status_name(local_status::timeout), "TIMEOUT");
    EXPECT_STREQ(status_name(local_status::cancelled), "CANCELLED");
    EXPECT_STREQ(status_name(4), "UNKNOWN");
    EXPECT_EQ(local_status::timeout, 0xFFFFFFFFu);
    EXPECT_EQ(parse_status("invalid_parameter"), abi::ctrl_status::invalid_parameter);
    EXPECT_EQ(parse_status("XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW"), abi::ctrl_status::buffer_overflow);
    EXPECT_EQ(parse_status("timeout"), local_status::timeout);
    EXPECT_EQ(parse_status("3"), 3u);
    EXPECT_FALSE(parse_status("nope").has_value());
}

TEST(ctrl_names, parse_type_accepts_names_in_any_case_and_numbers) {
    EXPECT_EQ(parse_type("GET_GREF_MAPPING_SIZE"), 8);
    EXPECT_EQ(parse_type("XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING"), 9);
    EXPECT_EQ(parse_type("xen_netif_ctrl_type_del_gref_mapping"), 10);
    EXPECT_EQ(parse_type("Set_Hash_Key"), 3);
    EXPECT_EQ(parse_type("8"), 8);
    EXPECT_EQ(parse_type("0x0a"), 10);
    EXPECT_EQ(parse_type("65535"), 0xFFFF);
    EXPECT_EQ(parse_type("0"), 0);
}

TEST(ctrl_names, parse_type_rejects_everything_else) {
    for (const char* bad : {"", "65536", "0x10000", "-1", "+1", "8x", "0x", " 8", "8 ", "foo",
                            "XEN_NETIF_CTRL_TYPE_", "get_gref_mapping_siz", "get_gref_mapping_size2"})
        EXPECT_FALSE(parse_type(bad).has_value()) << "'" << bad << "'";
}

TEST(ctrl_names, parse_u32_bounds) {
    EXPECT_EQ(parse_u32("4294967295"), 0xFFFFFFFFu);
    EXPECT_EQ(parse_u32("0xFFFFFFFF"), 0xFFFFFFFFu);
    EXPECT_EQ(parse_u32("0XfF"), 0xFFu);
    EXPECT_EQ(parse_u32("0"), 0u);
    for (const char* bad : {"", "4294967296", "0x100000000", "-0", "+1", "1.0", "0x", "1e3", "00000000001"})
        EXPECT_FALSE(parse_u32(bad).has_value()) << "'" << bad << "'";
}

}  // namespace
}  // namespace vifkit::ctrlfront
