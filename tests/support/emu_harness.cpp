#include "emu_harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace vifkit::test {

namespace fs = std::filesystem;

std::string bin_dir() {
    if (const char* d = std::getenv("VIFKIT_BIN_DIR")) return d;
    return (fs::path(fs::read_symlink("/proc/self/exe")).parent_path()).string();
}

child::child(const std::vector<std::string>& argv, const std::string& log_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
}

child& child::operator=(child&& o) noexcept {
    if (this != &o) {
        stop();
        pid_ = o.pid_;
        o.pid_ = -1;
    }
    return *this;
}

child::~child() { stop(); }

bool child::alive() {
    if (pid_ <= 0) return false;
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        pid_ = -1;
        return false;
    }
    return true;
}

void child::signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> child::wait(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int st = 0;
        const pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            pid_ = -1;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
        std::this_thread::sleep_for(10ms);
    }
}

void child::stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return;
    signal(SIGTERM);
    if (!wait(grace)) {
        signal(SIGKILL);
        wait(5s);
    }
}

namespace {
std::string make_dir() {
    char tmpl[] = "/tmp/vifkit-test.XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    return tmpl;
}
bool wait_until(std::chrono::milliseconds timeout, const auto& pred) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}
// A connection to the unix socket at `path` succeeds (it is listening).
bool accepts(const std::string& path, int type) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return false;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}
}  // namespace

emu_env::emu_env()
    : dir(make_dir()), xs_sock(dir + "/xs.sock"), broker_sock(dir + "/broker.sock") {
    xenstored_ = child({bin_dir() + "/vifkit-xenstored", "--socket", xs_sock, "--broker", broker_sock,
                        "--log-level", "warn"},
                       dir + "/xenstored.log");
    // The socket files appear at bind(), a moment before listen(): wait until
    // both really accept a connection.
    if (!wait_until(10s, [&] { return accepts(broker_sock, SOCK_SEQPACKET) && accepts(xs_sock, SOCK_STREAM); }))
        throw std::runtime_error("vifkit-xenstored did not start: " + log("xenstored"));
    ::setenv("XENSTORED_PATH", xs_sock.c_str(), 1);
    store_ = platform::store::open();
    if (!store_) throw std::runtime_error("cannot connect to vifkit-xenstored");
}

emu_env::~emu_env() {
    store_.reset();
    xenstored_.stop();
    std::error_code ec;
    if (!std::getenv("VIFKIT_KEEP_TEST_DIR")) fs::remove_all(dir, ec);
}

child emu_env::start_backend(const std::vector<std::string>& extra) {
    std::vector<std::string> argv{bin_dir() + "/vifkit-back", "--broker", broker_sock, "--store", xs_sock,
                                  "--port",
                                  backend_port_spec.empty() ? "unix:" + dir + "/back-{domid}.{devid}.sock"
                                                            : backend_port_spec,
                                  "--stats-file", stats_path("back"), "--log-level", "info"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return child(argv, dir + "/back.log");
}

child emu_env::start_frontend(unsigned domid, const std::vector<std::string>& extra) {
    const std::string who = "front" + std::to_string(domid);
    std::vector<std::string> argv{bin_dir() + "/vifkit-front", "--broker", broker_sock, "--store", xs_sock,
                                  "--domid", std::to_string(domid), "--port",
                                  frontend_port_spec.empty() ? "unix:" + frontend_port(domid) : frontend_port_spec,
                                  "--stats-file", stats_path(who), "--log-level", "info"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return child(argv, dir + "/" + who + ".log");
}

bool emu_env::attach(unsigned guest, unsigned devid, bool detach) {
    std::vector<std::string> argv{bin_dir() + "/vifkit-attach", "--store", xs_sock, "--guest",
                                  std::to_string(guest), "--devid", std::to_string(devid)};
    if (detach) argv.push_back("--detach");
    child c(argv, dir + "/attach.log");
    auto rc = c.wait(10s);
    return rc && *rc == 0;
}

std::string emu_env::backend_port(unsigned guest, unsigned devid) const {
    return dir + "/back-" + std::to_string(guest) + "." + std::to_string(devid) + ".sock";
}
std::string emu_env::frontend_port(unsigned guest) const { return dir + "/front-" + std::to_string(guest) + ".sock"; }
std::string emu_env::stats_path(const std::string& who) const { return dir + "/" + who + ".json"; }

std::optional<std::string> emu_env::read(const std::string& path) { return store_->read(path); }

bool emu_env::wait_value(const std::string& path, const std::string& value, std::chrono::milliseconds timeout) {
    return wait_until(timeout, [&] { return read(path) == value; });
}

bool emu_env::wait_connected(unsigned guest, unsigned devid, std::chrono::milliseconds timeout) {
    const std::string f = "/local/domain/" + std::to_string(guest) + "/device/vif/" + std::to_string(devid);
    const std::string b = "/local/domain/0/backend/vif/" + std::to_string(guest) + "/" + std::to_string(devid);
    return wait_until(timeout, [&] { return read(f + "/state") == "4" && read(b + "/state") == "4"; });
}

std::optional<nlohmann::json> emu_env::stats(child& c, const std::string& who) {
    const std::string path = stats_path(who);
    std::error_code ec;
    fs::remove(path, ec);
    c.signal(SIGUSR1);
    if (!wait_until(10s, [&] { return fs::exists(path); })) return std::nullopt;
    std::ifstream f(path);
    try {
        return nlohmann::json::parse(f);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string emu_env::log(const std::string& who) const {
    std::ifstream f(dir + "/" + who + ".log");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// ---- traffic ----

namespace {

std::uint32_t mix(std::uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}
std::size_t frame_size(std::uint32_t seed, std::uint32_t seq) { return 14 + mix(seed ^ (seq * 2654435761U)) % 1501; }

void build_frame(std::vector<std::byte>& f, std::uint32_t seed, std::uint32_t seq) {
    f.resize(frame_size(seed, seq));
    const std::uint8_t hdr[14] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  // dst: local unicast
                                  0x02, 0x01, static_cast<std::uint8_t>(seq >> 24), static_cast<std::uint8_t>(seq >> 16),
                                  static_cast<std::uint8_t>(seq >> 8), static_cast<std::uint8_t>(seq),
                                  0x88, 0xb5};  // local experimental ethertype
    std::memcpy(f.data(), hdr, 14);
    for (std::size_t i = 14; i < f.size(); ++i)
        f[i] = static_cast<std::byte>(mix(seed + seq * 131u + static_cast<std::uint32_t>(i)));
}

bool check_frame(std::span<const std::byte> f, std::uint32_t seed, std::uint32_t& seq) {
    if (f.size() < 14) return false;
    const auto* b = reinterpret_cast<const std::uint8_t*>(f.data());
    seq = (std::uint32_t(b[8]) << 24) | (std::uint32_t(b[9]) << 16) | (std::uint32_t(b[10]) << 8) | b[11];
    std::vector<std::byte> want;
    build_frame(want, seed, seq);
    return want.size() == f.size() && std::memcmp(want.data(), f.data(), f.size()) == 0;
}

}  // namespace

traffic_result pump(io::packet_port& from, io::packet_port& to, std::uint64_t count, std::uint32_t seed,
                    unsigned window, std::chrono::milliseconds stall_timeout) {
    traffic_result r;
    std::vector<std::byte> frame, buf(io::max_frame_size);
    std::uint32_t next_expected = 0;
    auto last_progress = std::chrono::steady_clock::now();
    while (r.received < count) {
        while (r.sent < count && r.sent - r.received < window) {
            build_frame(frame, seed, static_cast<std::uint32_t>(r.sent));
            if (!from.send(frame)) break;  // socket full: let the receiver catch up
            ++r.sent;
        }
        pollfd p{to.fd(), POLLIN, 0};
        ::poll(&p, 1, 100);
        for (;;) {
            const long n = to.recv(buf);
            if (n <= 0) break;
            std::uint32_t seq = 0;
            if (!check_frame(std::span(buf.data(), static_cast<std::size_t>(n)), seed, seq)) {
                ++r.corrupted;
            } else if (seq != next_expected) {
                ++r.out_of_order;
            }
            next_expected = seq + 1;
            ++r.received;
            last_progress = std::chrono::steady_clock::now();
        }
        if (std::chrono::steady_clock::now() - last_progress > stall_timeout) {
            r.timed_out = true;
            break;
        }
    }
    return r;
}

std::unique_ptr<io::packet_port> connect_port(const std::string& path, std::chrono::milliseconds timeout) {
    std::unique_ptr<io::packet_port> p;
    wait_until(timeout, [&] {
        std::string err;
        p = io::open_port("unix-connect:" + path, &err);
        return p != nullptr;
    });
    return p;
}

const nlohmann::json* find_vif(const nlohmann::json& back_stats, unsigned guest) {
    if (!back_stats.contains("vifs")) return nullptr;
    for (const auto& v : back_stats["vifs"])
        if (v["domid"] == guest) return &v;
    return nullptr;
}

bool wait_static_grants(emu_env& env, child& front, const std::string& who, std::uint64_t n,
                        std::chrono::milliseconds timeout) {
    return wait_until(timeout, [&] {
        auto st = env.stats(front, who);
        return st && (*st)["static_grants"] == n;
    });
}

}  // namespace vifkit::test
