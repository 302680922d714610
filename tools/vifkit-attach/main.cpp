// vifkit-attach: the toolstack step that `xl network-attach` performs: write
// the frontend and backend nodes of a vif (netif-spec §5.1) with the right
// owners, or remove them (--detach).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "tool_common.hpp"
#include "vifkit/platform/store.hpp"
#include "vifkit/util/log.hpp"
#include "vifkit/wire/xs_values.hpp"

namespace {

using namespace vifkit;

struct vif_spec {
    unsigned guest, backend, devid;
    std::string mac;
    unsigned mtu;
};

bool write_nodes(platform::store& s, const vif_spec& v, const std::string& F, const std::string& B,
                 platform::xs_tx t) {
    const bool fresh_backend = !s.read(B + "/state", t);
    // Directories first, with their owners: F owned by the guest and readable
    // by the backend, B the other way round. Keys written below inherit them.
    const platform::store_perm fperm[] = {{static_cast<domid_t>(v.guest), 'n'}, {static_cast<domid_t>(v.backend), 'r'}};
    const platform::store_perm bperm[] = {{static_cast<domid_t>(v.backend), 'n'}, {static_cast<domid_t>(v.guest), 'r'}};
    bool ok = s.mkdir(F, t) && s.set_perms(F, fperm, t) && s.mkdir(B, t) && s.set_perms(B, bperm, t);
    auto w = [&](const std::string& path, const std::string& val) { return s.write(path, val, t); };
    ok = ok && w(F + "/backend", B) && w(F + "/backend-id", std::to_string(v.backend)) &&
         w(F + "/handle", std::to_string(v.devid)) && w(F + "/mac", v.mac) && w(F + "/state", "1") &&
         w(F + "/mtu", std::to_string(v.mtu)) && w(F + "/trusted", "1");
    ok = ok && w(B + "/frontend", F) && w(B + "/frontend-id", std::to_string(v.guest)) && w(B + "/online", "1") &&
         w(B + "/script", "") && w(B + "/mac", v.mac) && w(B + "/handle", std::to_string(v.devid)) &&
         w(B + "/type", "vif") && w(B + "/mtu", std::to_string(v.mtu));
    if (fresh_backend) ok = ok && w(B + "/state", "1") && w(B + "/hotplug-status", "");
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"vifkit-attach: create (or remove) a vif's xenstore nodes, as `xl network-attach` does."};
    std::string store_sock, mac, log_level = "info";
    vif_spec v{1, 0, 0, "", 1500};
    bool detach = false;
    app.add_option("--store", store_sock, "xenstored socket (sets XENSTORED_PATH)");
    app.add_option("--guest", v.guest, "Frontend (guest) domain id")->required();
    app.add_option("--backend", v.backend, "Backend domain id")->capture_default_str();
    app.add_option("--devid", v.devid, "Device id")->capture_default_str();
    app.add_option("--mac", v.mac, "Guest MAC (default 00:16:3e:00:<guest>:<devid>)");
    app.add_option("--mtu", v.mtu, "MTU written to the mtu nodes")->check(CLI::Range(68u, 65535u))->capture_default_str();
    app.add_flag("--detach", detach, "Remove the vif's frontend and backend nodes instead");
    app.add_option("--log-level", log_level)->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    util::init_logging("vifkit-attach", log_level);
    tools::use_store_socket(store_sock);
    if (v.mac.empty()) v.mac = fmt::format("00:16:3e:00:{:02x}:{:02x}", v.guest & 0xff, v.devid & 0xff);
    if (!wire::parse_mac(v.mac)) {
        spdlog::error("bad --mac '{}'", v.mac);
        return 2;
    }
    auto s = platform::store::open();
    if (!s) {
        spdlog::error("cannot connect to xenstored: {}", std::strerror(errno));
        return 1;
    }
    const std::string F = fmt::format("/local/domain/{}/device/vif/{}", v.guest, v.devid);
    const std::string B = fmt::format("/local/domain/{}/backend/vif/{}/{}", v.backend, v.guest, v.devid);
    for (int attempt = 0; attempt < 16; ++attempt) {
        auto t = s->begin();
        if (!t) break;
        const bool ok = detach ? (s->rm(F, *t), s->rm(B, *t), true) : write_nodes(*s, v, F, B, *t);
        if (!ok) {
            s->abort(*t);
            spdlog::error("writing vif nodes failed: {}", std::strerror(errno));
            return 1;
        }
        if (s->commit(*t)) {
            spdlog::info("{} vif {}.{}: frontend {} backend {}", detach ? "detached" : "attached", v.guest, v.devid, F, B);
            return 0;
        }
        if (errno != EAGAIN) break;
    }
    spdlog::error("transaction failed: {}", std::strerror(errno));
    return 1;
}
