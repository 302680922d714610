// platform/xen on a machine without Xen (CI): opening fails with a message
// that says what is missing; the tools offer --platform and fail cleanly.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "vifkit/platform/xen.hpp"

namespace {

using namespace vifkit;

bool on_xen() {
    struct stat st {};
    return ::stat("/dev/xen/evtchn", &st) == 0 || ::stat("/dev/xen/gntdev", &st) == 0;
}

struct run_result {
    int status = -1;
    std::string out;
};

// Run a shell command line, stdout and stderr together.
run_result run(const std::string& cmd) {
    run_result r;
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf{};
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

std::string bin(const char* tool) {
    const char* d = std::getenv("VIFKIT_BIN_DIR");
    return std::string(d ? d : ".") + "/" + tool;
}

TEST(XenPlatform, DevicesAbsentIsReportedWithTheDevice) {
    if (on_xen()) GTEST_SKIP() << "running on Xen";
    std::string why;
    EXPECT_FALSE(platform::xen::devices_present(&why));
    EXPECT_NE(why.find("/dev/xen/"), std::string::npos) << why;
    EXPECT_NE(why.find("No such file"), std::string::npos) << why;
}

TEST(XenPlatform, OpenServicesThrowsAClearError) {
    if (on_xen()) GTEST_SKIP() << "running on Xen";
    for (const bool backend : {true, false}) {
        platform::xen::open_options o;
        o.mapper = backend;
        o.sharer = !backend;
        try {
            auto svc = platform::xen::open_services(0, o);
            FAIL() << "open_services succeeded without Xen";
        } catch (const std::runtime_error& e) {
            const std::string m = e.what();
            EXPECT_NE(m.find("platform xen"), std::string::npos) << m;
            EXPECT_NE(m.find("/dev/xen/"), std::string::npos) << m;
            EXPECT_NE(m.find("not running on Xen"), std::string::npos) << m;
        }
    }
}

TEST(XenPlatform, ToolsListThePlatformOption) {
    for (const char* tool : {"vifkit-back", "vifkit-front"}) {
        const auto r = run(bin(tool) + " --help");
        EXPECT_EQ(r.status, 0) << tool << ": " << r.out;
        EXPECT_NE(r.out.find("--platform"), std::string::npos) << tool << ": " << r.out;
        EXPECT_NE(r.out.find("xen"), std::string::npos) << tool;
        EXPECT_NE(r.out.find("emu"), std::string::npos) << tool;
    }
    EXPECT_NE(run(bin("vifkit-back") + " --help").out.find("--backend-type"), std::string::npos);
}

TEST(XenPlatform, ToolsRejectAnUnknownPlatform) {
    for (const char* tool : {"vifkit-back", "vifkit-front"}) {
        const auto r = run(bin(tool) + " --platform kvm");
        EXPECT_NE(r.status, 0) << tool << ": " << r.out;
    }
}

TEST(XenPlatform, EmuStillNeedsABroker) {
    for (const char* tool : {"vifkit-back", "vifkit-front"}) {
        const auto r = run(bin(tool) + " --platform emu");
        EXPECT_EQ(r.status, 2) << tool << ": " << r.out;
        EXPECT_NE(r.out.find("--broker is required"), std::string::npos) << tool << ": " << r.out;
    }
}

TEST(XenPlatform, ToolsOnXenFailCleanlyWithoutXen) {
    if (on_xen()) GTEST_SKIP() << "running on Xen";
    for (const char* tool : {"vifkit-back", "vifkit-front"}) {
        const auto r = run(bin(tool) + " --platform xen --log-level error");
        EXPECT_EQ(r.status, 1) << tool << ": " << r.out;
        EXPECT_NE(r.out.find("not running on Xen"), std::string::npos) << tool << ": " << r.out;
        EXPECT_NE(r.out.find("/dev/xen/"), std::string::npos) << tool << ": " << r.out;
    }
}

}  // namespace
