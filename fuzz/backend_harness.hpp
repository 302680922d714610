// fuzz_backend's harness (backend_harness.cpp): the whole core::netback in
// process over the emulated platform, driven by one input per call (the
// format is in backend_input.hpp). Used by the libFuzzer target and by the
// unit test that writes and checks the seed corpus. Single-threaded; a broken
// invariant (anything left mapped, bound, pinned, registered, stored or open
// after an input) aborts the process with a message.
#pragma once
#include <cstdint>
#include <span>

#include <nlohmann/json.hpp>

namespace vifkit::fuzz {

// The broker, xenstore and the backend domain 0, once per process (the first
// backend_run() does it too).
void backend_init();

// One input: a fresh frontend domain and netback, the input's operations, then
// teardown and its checks. Returns netback's stats as they were after the
// operations, before teardown (null for an input shorter than its header).
nlohmann::json backend_run(std::span<const std::uint8_t> input);

}  // namespace vifkit::fuzz
