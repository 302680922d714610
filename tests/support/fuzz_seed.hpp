// Seed corpus for the libFuzzer targets in fuzz/: unit tests hand interesting
// inputs (already in the target's input format) to write_fuzz_seed(). Nothing
// happens unless the environment variable VIFKIT_FUZZ_SEED_DIR names a
// directory; then the input lands in <dir>/<target>/<hash>, so identical inputs
// collapse into one file (libFuzzer's corpus naming habit).
//
//   VIFKIT_FUZZ_SEED_DIR=/tmp/seeds build/bin/tx_decoder_test
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>

namespace vifkit::test {

inline void write_fuzz_seed(const char* target, std::span<const std::byte> input) {
    const char* dir = std::getenv("VIFKIT_FUZZ_SEED_DIR");
    if (dir == nullptr || *dir == '\0' || input.empty()) return;
    // 64-bit FNV-1a of the content: stable names, duplicates written once.
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const std::byte b : input) h = (h ^ static_cast<std::uint8_t>(b)) * 0x100000001b3ull;
    char name[17];
    std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(h));
    const std::filesystem::path d = std::filesystem::path(dir) / target;
    std::error_code ec;
    std::filesystem::create_directories(d, ec);
    std::ofstream out(d / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(input.data()), static_cast<std::streamsize>(input.size()));
}

inline void write_fuzz_seed(const char* target, const std::string& input) {
    write_fuzz_seed(target, std::as_bytes(std::span(input.data(), input.size())));
}

}  // namespace vifkit::test
