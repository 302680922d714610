// gref_table: O(1) per-queue static grant table (fixed capacity, stable entries).
#include "vifkit/ctrl/gref_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <unordered_map>

namespace vifkit::ctrl::test {
namespace {

void* fake_addr(grant_ref_t ref) { return reinterpret_cast<void*>(std::uintptr_t{ref} * page_size + page_size); }

TEST(GrefTable, InsertFindErase) {
    gref_table t(4);
    EXPECT_EQ(t.capacity(), 4U);
    EXPECT_EQ(t.size(), 0U);
    EXPECT_EQ(t.find(8), nullptr);
    auto* e = t.insert(8, fake_addr(8), 77, true);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(t.find(8), e);
    EXPECT_EQ(e->ref, 8U);
    EXPECT_EQ(e->addr, fake_addr(8));
    EXPECT_EQ(e->handle, 77U);
    EXPECT_TRUE(e->readonly);
    EXPECT_EQ(e->inflight, 0U);
    EXPECT_EQ(t.size(), 1U);
    EXPECT_EQ(t.free(), 3U);
    const gref_table& ct = t;
    EXPECT_EQ(ct.find(8), e);
    EXPECT_TRUE(t.erase(8));
    EXPECT_FALSE(t.erase(8));
    EXPECT_EQ(t.find(8), nullptr);
    EXPECT_EQ(t.size(), 0U);
}

TEST(GrefTable, DuplicateInsertIsRefused) {
    gref_table t(4);
    ASSERT_NE(t.insert(9, fake_addr(9), 1, false), nullptr);
    EXPECT_EQ(t.insert(9, fake_addr(10), 2, true), nullptr);
    EXPECT_EQ(t.size(), 1U);
    EXPECT_EQ(t.find(9)->handle, 1U);
}

TEST(GrefTable, FullTableRefusesInsert) {
    gref_table t(3);
    for (grant_ref_t r = 100; r < 103; ++r) ASSERT_NE(t.insert(r, fake_addr(r), r, false), nullptr);
    EXPECT_EQ(t.insert(200, fake_addr(200), 0, false), nullptr);
    EXPECT_EQ(t.free(), 0U);
    EXPECT_TRUE(t.erase(101));
    EXPECT_NE(t.insert(200, fake_addr(200), 0, false), nullptr);
}

TEST(GrefTable, ZeroCapacityHoldsNothing) {
    gref_table t(0);
    EXPECT_EQ(t.capacity(), 0U);
    EXPECT_EQ(t.insert(1, fake_addr(1), 0, false), nullptr);
    EXPECT_EQ(t.find(1), nullptr);
    EXPECT_FALSE(t.erase(1));
}

TEST(GrefTable, ExtremeRefValues) {
    gref_table t(4);
    for (const grant_ref_t r : {0U, 0xFFFFFFFFU, 0xFFFFFFFEU, 0x80000000U})
        ASSERT_NE(t.insert(r, fake_addr(r & 0xFFFF), r, false), nullptr) << r;
    for (const grant_ref_t r : {0U, 0xFFFFFFFFU, 0xFFFFFFFEU, 0x80000000U}) {
        ASSERT_NE(t.find(r), nullptr) << r;
        EXPECT_EQ(t.find(r)->handle, r);
    }
}

// Random inserts/erases against a model: every lookup agrees, and an entry's
// address never changes while it is in the table (the data path holds entry*).
TEST(GrefTable, AgreesWithModelAndEntriesNeverMove) {
    constexpr std::size_t cap = 64;
    gref_table t(cap);
    std::unordered_map<grant_ref_t, gref_table::entry*> model;
    std::mt19937 rng(42);
    for (int step = 0; step < 200000; ++step) {
        // Small ref space: many collisions, many re-inserts.
        const grant_ref_t ref = rng() % 160;
        if (rng() % 2 == 0) {
            auto* e = t.insert(ref, fake_addr(ref), ref, false);
            const bool expect_ok = model.count(ref) == 0 && model.size() < cap;
            ASSERT_EQ(e != nullptr, expect_ok) << "step " << step;
            if (e) model[ref] = e;
        } else {
            ASSERT_EQ(t.erase(ref), model.erase(ref) == 1) << "step " << step;
        }
        if (step % 97 == 0) {
            ASSERT_EQ(t.size(), model.size());
            for (const auto& [r, e] : model) ASSERT_EQ(t.find(r), e) << "ref " << r;
        }
    }
}

TEST(GrefTable, ForEachVisitsEveryLiveEntryOnce) {
    gref_table t(16);
    for (grant_ref_t r = 1; r <= 10; ++r) ASSERT_NE(t.insert(r, fake_addr(r), r, false), nullptr);
    t.erase(3);
    t.erase(7);
    std::vector<grant_ref_t> seen;
    t.for_each([&](gref_table::entry& e) { seen.push_back(e.ref); });
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<grant_ref_t>{1, 2, 4, 5, 6, 8, 9, 10}));
}

TEST(GrefTable, ClearEmptiesAndAllowsReuse) {
    gref_table t(2);
    ASSERT_NE(t.insert(1, fake_addr(1), 1, false), nullptr);
    ASSERT_NE(t.insert(2, fake_addr(2), 2, false), nullptr);
    t.clear();
    EXPECT_EQ(t.size(), 0U);
    EXPECT_EQ(t.find(1), nullptr);
    EXPECT_NE(t.insert(1, fake_addr(1), 1, false), nullptr);
    EXPECT_NE(t.insert(3, fake_addr(3), 3, false), nullptr);
}

// Slots come from a high-water mark, freed ones first: churn never exceeds the
// capacity, entries do not move, and a cleared table fills to capacity again.
TEST(GrefTable, ChurnAndClearKeepCapacityAndAddresses) {
    constexpr std::size_t cap = 64;
    gref_table t(cap);
    std::vector<gref_table::entry*> first;
    for (grant_ref_t r = 0; r < cap; ++r) first.push_back(t.insert(r, fake_addr(r), r, false));
    EXPECT_EQ(t.insert(1000, fake_addr(1000), 0, false), nullptr);  // full
    // Free every other entry; new refs reuse exactly those slots.
    for (grant_ref_t r = 0; r < cap; r += 2) ASSERT_TRUE(t.erase(r));
    std::vector<gref_table::entry*> reused;
    for (grant_ref_t r = 0; r < cap; r += 2) reused.push_back(t.insert(5000 + r, fake_addr(r), r, false));
    std::sort(reused.begin(), reused.end());
    std::vector<gref_table::entry*> freed;
    for (std::size_t i = 0; i < cap; i += 2) freed.push_back(first[i]);
    std::sort(freed.begin(), freed.end());
    EXPECT_EQ(reused, freed);
    EXPECT_EQ(t.insert(1000, fake_addr(1000), 0, false), nullptr);  // full again
    for (grant_ref_t r = 1; r < cap; r += 2) EXPECT_EQ(t.find(r), first[r]);  // never moved
    std::size_t visited = 0;
    t.for_each([&](gref_table::entry&) { ++visited; });
    EXPECT_EQ(visited, cap);
    t.clear();
    EXPECT_EQ(t.free(), cap);
    visited = 0;
    t.for_each([&](gref_table::entry&) { ++visited; });
    EXPECT_EQ(visited, 0U);
    for (grant_ref_t r = 0; r < cap; ++r) {
        EXPECT_EQ(t.find(r), nullptr);
        EXPECT_EQ(t.find(5000 + r), nullptr);
        ASSERT_EQ(t.insert(9000 + r, fake_addr(r), r, false), first[r]);  // same slab, same order
    }
    EXPECT_EQ(t.insert(1000, fake_addr(1000), 0, false), nullptr);
    for (grant_ref_t r = 0; r < cap; ++r) EXPECT_EQ(t.find(9000 + r)->ref, 9000 + r);
}

TEST(GrefTable, AcquireReleaseCountInflight) {
    gref_table t(2);
    auto* e = t.insert(5, fake_addr(5), 5, false);
    ASSERT_NE(e, nullptr);
    gref_table::acquire(*e);
    gref_table::acquire(*e);
    EXPECT_EQ(e->inflight, 2U);
    EXPECT_TRUE(gref_table::release(*e));
    EXPECT_TRUE(gref_table::release(*e));
    EXPECT_FALSE(gref_table::release(*e));  // unbalanced: refused, stays 0
    EXPECT_EQ(e->inflight, 0U);
    {
        gref_use use(t.find(5));
        ASSERT_TRUE(use);
        EXPECT_EQ(use.get(), e);
        EXPECT_EQ(e->inflight, 1U);
    }
    EXPECT_EQ(e->inflight, 0U);
    gref_use none(t.find(6));
    EXPECT_FALSE(none);
}

}  // namespace
}  // namespace vifkit::ctrl::test
