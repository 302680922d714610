// libFuzzer target: the whole backend (core::netback) over the emulated
// platform, with the frontend domain driven by the fuzzer. The harness is
// backend_harness.hpp, the input format backend_input.hpp; the seed corpus is
// written by tests/unit/fuzz/backend_seeds_test.cpp.
// VIFKIT_FUZZ_LOG=<spdlog level> shows netback's log, VIFKIT_FUZZ_TIMING=1
// prints where each input's time goes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "backend_harness.hpp"
#include "vifkit/util/log.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    const char* level = std::getenv("VIFKIT_FUZZ_LOG");
    vifkit::util::init_logging("fuzz_backend", level ? level : "off");
    vifkit::fuzz::backend_init();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    (void)vifkit::fuzz::backend_run(std::span(data, size));
    return 0;
}
