// vifkit-back: the netif backend (netback) as a process.
#include <algorithm>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>

#include "tool_common.hpp"
#include "vifkit/core/netback.hpp"
#include "vifkit/emu/domain.hpp"
#include "vifkit/io/packet_port.hpp"
#include "vifkit/platform/store.hpp"
#include "vifkit/util/log.hpp"

int main(int argc, char** argv) {
    using namespace vifkit;
    CLI::App app{
        "vifkit-back: Xen netif backend (netback) in userspace.\n"
        "Serves every vif whose backend directory appears under\n"
        "/local/domain/<domid>/backend/vif/<guest>/<devid> (see vifkit-attach),\n"
        "moving packets between the guest's rings and a host port.\n"
        "--platform xen runs it on real Xen in dom0 or a driver domain (with the\n"
        "kernel xen-netback not loaded, or with a private --backend-type)."};
    std::string broker, store_sock, mode = "copy", port_tmpl = "tap:vif{domid}.{devid}", pcap_tmpl;
    std::string stats_file, log_level = "info", platform_name = "emu", backend_type = "vif";
    unsigned domid = 0, batch = 32, max_queues = 4, static_per_queue = 1024, static_per_vif = 4096;
    bool no_ctrl_ring = false, no_static = false;
    std::vector<std::string> disabled;
    unsigned stall_ms = 60000;
    std::size_t backlog_kib = 4096;
    std::size_t mem_pages = 256;
    app.add_option("--platform", platform_name, tools::platform_help)
        ->check(CLI::IsMember({"emu", "xen"}))
        ->capture_default_str();
    app.add_option("--broker", broker, "Emulated Xen: broker socket of vifkit-xenstored (required with --platform emu)");
    app.add_option("--store", store_sock, "xenstored socket (sets XENSTORED_PATH)");
    app.add_option("--domid", domid, "Our domain id (the backend/driver domain; on xen: read from xenstore if not given)")
        ->capture_default_str();
    app.add_option("--backend-type", backend_type,
                   "Device type served: backend/<NAME>/<domid>/<devid> (vif; or a private name, as QEMU's qnic)")
        ->capture_default_str();
    app.add_option("--mode", mode,
                   "Data path for buffers no static grant covers: copy (grant copy), map (grant map on\n"
                   "guest transmit), raw (benchmark ceiling: the guest's memory mapped once, NO grant\n"
                   "checks; emulated platform only)")
        ->check(CLI::IsMember({"copy", "map", "raw"}))
        ->capture_default_str();
    std::string poll_mode = "event";
    app.add_option("--poll", poll_mode,
                   "event: sleep until an event channel or port wakes us (default);\n"
                   "busy: spin on the rings and ports (one CPU at 100%, no notifications)")
        ->check(CLI::IsMember({"event", "busy"}))
        ->capture_default_str();
    app.add_option("--port", port_tmpl,
                   "Host port per vif; {domid} and {devid} are substituted.\n" + io::usage())
        ->capture_default_str();
    app.add_option("--pcap", pcap_tmpl, "Capture each vif's host side to this pcap file ({domid}/{devid} substituted)");
    app.add_option("--batch", batch, "Packets per grant batch")->check(CLI::Range(1u, 256u))->capture_default_str();
    app.add_option("--max-queues", max_queues, "multi-queue-max-queues to advertise (1 = single queue)")
        ->check(CLI::Range(1u, 64u))->capture_default_str();
    app.add_flag("--no-ctrl-ring", no_ctrl_ring, "Do not advertise feature-ctrl-ring (no hashing, no static grants)");
    app.add_flag("--no-static-grants", no_static, "Answer GET/ADD/DEL_GREF_MAPPING with NOT_SUPPORTED");
    app.add_option("--disable", disabled,
                   "Features not to advertise (comma-separated): sg, gso-tcpv4, gso-tcpv6,\n"
                   "ipv6-csum-offload, multicast-control")
        ->delimiter(',')
        ->check(CLI::IsMember({"sg", "gso-tcpv4", "gso-tcpv6", "ipv6-csum-offload", "multicast-control"}));
    app.add_option("--rx-backlog-kib", backlog_kib,
                   "Per-queue cap, in KiB, on frames from the host waiting for the guest's rx buffers")
        ->check(CLI::Range(std::size_t{64}, std::size_t{1} << 20))
        ->capture_default_str();
    app.add_option("--rx-stall-timeout", stall_ms,
                   "ms a queue may wait for rx buffers before it is declared stalled (backlog dropped, carrier 0)")
        ->check(CLI::Range(100u, 3600000u))
        ->capture_default_str();
    app.add_option("--static-per-queue", static_per_queue, "Static grant mappings allowed per queue")
        ->check(CLI::Range(0u, 65536u))->capture_default_str();
    app.add_option("--static-per-vif", static_per_vif, "Static grant mappings allowed per vif")
        ->check(CLI::Range(0u, 262144u))->capture_default_str();
    app.add_option("--mem-pages", mem_pages, "Guest memory of our emulated domain, in pages")->capture_default_str();
    app.add_option("--stats-file", stats_file, "Write stats JSON here on SIGUSR1 and at exit ('-' = stdout)");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    const bool on_xen = platform_name == "xen";
    if (!on_xen && broker.empty()) {
        std::fprintf(stderr, "vifkit-back: --broker is required with --platform emu\n");
        return 2;
    }
    if (backend_type.empty() || backend_type.find('/') != std::string::npos) {
        std::fprintf(stderr, "vifkit-back: bad --backend-type '%s'\n", backend_type.c_str());
        return 2;
    }

    util::init_logging("vifkit-back", log_level);
    tools::use_store_socket(store_sock);
    try {
        auto session = on_xen ? tools::open_xen(app.count("--domid") ? std::optional<domid_t>(static_cast<domid_t>(domid))
                                                                      : std::nullopt,
                                                true)
                              : tools::open_emu(broker, static_cast<domid_t>(domid), mem_pages, 4096);
        auto& svc = session.svc;
        auto& store = session.store;
        util::event_loop loop;
        core::netback_config cfg;
        cfg.mode = mode == "map" ? core::tx_mode::map : mode == "raw" ? core::tx_mode::raw : core::tx_mode::copy;
        cfg.busy_poll = poll_mode == "busy";
        cfg.port_template = port_tmpl;
        cfg.pcap_template = pcap_tmpl;
        cfg.batch = batch;
        cfg.max_queues = max_queues;
        cfg.ctrl_ring = !no_ctrl_ring;
        cfg.static_grants.enabled = !no_static;
        cfg.static_grants.per_queue = static_per_queue;
        cfg.static_grants.per_vif = static_per_vif;
        cfg.backend_type = backend_type;
        const auto off = [&](const char* f) { return std::find(disabled.begin(), disabled.end(), f) != disabled.end(); };
        cfg.feature_sg = !off("sg");
        cfg.feature_gso_tcpv4 = !off("gso-tcpv4");
        cfg.feature_gso_tcpv6 = !off("gso-tcpv6");
        cfg.feature_ipv6_csum_offload = !off("ipv6-csum-offload");
        cfg.multicast_control = !off("multicast-control");
        cfg.rx_stall_timeout = std::chrono::milliseconds(stall_ms);
        cfg.rx_backlog_bytes = backlog_kib * 1024;
        cfg.write_hotplug_status = on_xen;  // no hotplug script is needed to bring the vif up
        core::netback nb(loop, svc, *store, cfg);
        auto dump = [&] { tools::dump_stats(stats_file, nb.stats(), "vifkit-back"); };
        tools::install_signals(loop, {[&] { loop.stop(); }, dump, {}});
        bool broker_lost = false;
        tools::watch_broker(loop, session, "vifkit-back", broker_lost);
        nb.start();
        spdlog::info("domain {} ({}) serving {}/backend/{}", svc.self, platform_name, store->domain_path(svc.self),
                     backend_type);
        tools::run_loop(loop, cfg.busy_poll, [&] { return nb.poll(); });
        nb.shutdown();
        dump();
        if (!stats_file.empty() && stats_file != "-") tools::write_json("-", nb.stats());
        if (broker_lost) return 1;
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return 1;
    }
    return 0;
}
