// vifkit-front: the netif frontend (netfront) as a process: one emulated guest
// domain with one vif whose guest side is a packet port (a TAP = the guest's eth0).
#include <algorithm>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>

#include "tool_common.hpp"
#include "vifkit/core/netfront.hpp"
#include "vifkit/emu/domain.hpp"
#include "vifkit/io/packet_port.hpp"
#include "vifkit/platform/store.hpp"
#include "vifkit/util/log.hpp"

int main(int argc, char** argv) {
    using namespace vifkit;
    CLI::App app{
        "vifkit-front: Xen netif frontend (netfront) in userspace.\n"
        "Runs as emulated guest domain --domid and drives the vif\n"
        "/local/domain/<domid>/device/vif/<devid> written by vifkit-attach.\n"
        "--platform xen runs it in a real Xen domU (kernel xen-netfront not loaded),\n"
        "driving the vif the toolstack created (xl vif=[...])."};
    std::string broker, store_sock, port = "tap:eth0", pcap, stats_file, log_level = "info", ctl_socket;
    std::string platform_name = "emu";
    unsigned domid = 1, devid = 0, rx_buffers = 256, tx_buffers = 256;
    std::size_t mem_pages = 8192;
    bool no_split = false, no_ctrl_ring = false, no_static = false;
    std::vector<std::string> disabled;
    unsigned queues = 1, response_budget = 1024;
    app.add_option("--platform", platform_name, tools::platform_help)
        ->check(CLI::IsMember({"emu", "xen"}))
        ->capture_default_str();
    app.add_option("--broker", broker, "Emulated Xen: broker socket of vifkit-xenstored (required with --platform emu)");
    app.add_option("--store", store_sock, "xenstored socket (sets XENSTORED_PATH)");
    app.add_option("--domid", domid, "Our (guest) domain id (on xen: read from xenstore if not given)")->check(CLI::Range(1u, 0x7FEFu))->capture_default_str();
    app.add_option("--devid", devid, "vif device id")->capture_default_str();
    app.add_option("--port", port, "Guest-side port.\n" + io::usage())->capture_default_str();
    app.add_option("--pcap", pcap, "Capture the guest side to this pcap file");
    app.add_option("--rx-buffers", rx_buffers, "rx pages posted to the backend")->check(CLI::Range(1u, 256u))->capture_default_str();
    app.add_option("--tx-buffers", tx_buffers, "tx page pool")->check(CLI::Range(1u, 256u))->capture_default_str();
    app.add_option("--mem-pages", mem_pages, "Guest memory, in pages")->capture_default_str();
    app.add_flag("--no-split-event-channels", no_split, "Use one event channel even if the backend offers two");
    app.add_option("--queues", queues, "Queues wanted (capped by the backend's multi-queue-max-queues)")
        ->check(CLI::Range(1u, 64u))->capture_default_str();
    app.add_flag("--no-ctrl-ring", no_ctrl_ring, "Do not create a control ring even if the backend offers one");
    app.add_flag("--no-static-grants", no_static, "Do not register the page pools as static grants");
    app.add_option("--disable", disabled,
                   "Features not to advertise (comma-separated): sg, gso-tcpv4, gso-tcpv6,\n"
                   "csum-offload (writes feature-no-csum-offload=1), ipv6-csum-offload,\n"
                   "multicast-control, rx-notify")
        ->delimiter(',')
        ->check(CLI::IsMember({"sg", "gso-tcpv4", "gso-tcpv6", "csum-offload", "ipv6-csum-offload",
                               "multicast-control", "rx-notify"}));
    app.add_option("--response-budget", response_budget,
                   "Ring responses handled per event before yielding to the loop (event-storm bound)")
        ->check(CLI::Range(1u, 65536u))->capture_default_str();
    std::string poll_mode = "event";
    app.add_option("--poll", poll_mode,
                   "event: sleep until an event channel or the port wakes us (default);\n"
                   "busy: spin on the rings and the port (one CPU at 100%, no notifications)")
        ->check(CLI::IsMember({"event", "busy"}))
        ->capture_default_str();
    app.add_option("--ctl-socket", ctl_socket, "Serve vifkit-ctl on this unix socket (send control messages by hand)");
    app.add_option("--stats-file", stats_file, "Write stats JSON here on SIGUSR1 and at exit ('-' = stdout)");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")->capture_default_str();
    app.footer("Signals: SIGTERM/SIGINT close the vif cleanly; SIGUSR1 writes stats; SIGHUP reconnects.");
    CLI11_PARSE(app, argc, argv);
    const bool on_xen = platform_name == "xen";
    if (!on_xen && broker.empty()) {
        std::fprintf(stderr, "vifkit-front: --broker is required with --platform emu\n");
        return 2;
    }

    util::init_logging("vifkit-front", log_level);
    tools::use_store_socket(store_sock);
    try {
        auto session = on_xen ? tools::open_xen(app.count("--domid") ? std::optional<domid_t>(static_cast<domid_t>(domid))
                                                                      : std::nullopt,
                                                false)
                              : tools::open_emu(broker, static_cast<domid_t>(domid), mem_pages, 16384);
        auto& svc = session.svc;
        auto& store = session.store;
        util::event_loop loop;
        core::netfront_config cfg;
        cfg.devid = devid;
        cfg.port_spec = port;
        cfg.pcap_path = pcap;
        cfg.rx_buffers = rx_buffers;
        cfg.tx_buffers = tx_buffers;
        cfg.use_split_event_channels = !no_split;
        cfg.queues = queues;
        cfg.ctrl_ring = !no_ctrl_ring;
        cfg.static_grants = !no_static;
        cfg.ctl_socket = ctl_socket;
        cfg.response_budget = response_budget;
        cfg.busy_poll = poll_mode == "busy";
        const auto off = [&](const char* f) { return std::find(disabled.begin(), disabled.end(), f) != disabled.end(); };
        cfg.feature_sg = !off("sg");
        cfg.gso_tcpv4 = !off("gso-tcpv4");
        cfg.gso_tcpv6 = !off("gso-tcpv6");
        cfg.csum_offload = !off("csum-offload");
        cfg.ipv6_csum_offload = !off("ipv6-csum-offload");
        cfg.multicast_control = !off("multicast-control");
        cfg.rx_notify = !off("rx-notify");
        core::netfront nf(loop, svc, *store, cfg);
        auto dump = [&] { tools::dump_stats(stats_file, nf.stats(), "vifkit-front"); };
        tools::install_signals(loop, {[&] { loop.stop(); }, dump, [&] { nf.reconnect(); }});
        bool broker_lost = false;
        tools::watch_broker(loop, session, "vifkit-front", broker_lost);
        if (!nf.start()) return 1;
        tools::run_loop(loop, cfg.busy_poll, [&] { return nf.poll(); });
        nf.shutdown();
        dump();
        if (!stats_file.empty() && stats_file != "-") tools::write_json("-", nf.stats());
        if (broker_lost) return 1;
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return 1;
    }
    return 0;
}
