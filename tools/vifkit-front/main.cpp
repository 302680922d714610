// vifkit-front: the netif frontend (netfront) as a process: one emulated guest
// domain with one vif whose guest side is a packet port (a TAP = the guest's eth0).
#include <CLI/CLI.hpp>

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
        "/local/domain/<domid>/device/vif/<devid> written by vifkit-attach."};
    std::string broker, store_sock, port = "tap:eth0", pcap, stats_file, log_level = "info", ctl_socket;
    unsigned domid = 1, devid = 0, rx_buffers = 256, tx_buffers = 256;
    std::size_t mem_pages = 8192;
    bool no_split = false, no_ctrl_ring = false, no_static = false;
    unsigned queues = 1, response_budget = 1024;
    app.add_option("--broker", broker, "Emulated Xen: broker socket of vifkit-xenstored")->required();
    app.add_option("--store", store_sock, "xenstored socket (sets XENSTORED_PATH)");
    app.add_option("--domid", domid, "Our (guest) domain id")->check(CLI::Range(1u, 0x7FEFu))->capture_default_str();
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
    app.add_option("--response-budget", response_budget,
                   "Ring responses handled per event before yielding to the loop (event-storm bound)")
        ->check(CLI::Range(1u, 65536u))->capture_default_str();
    app.add_option("--ctl-socket", ctl_socket, "Serve vifkit-ctl on this unix socket (send control messages by hand)");
    app.add_option("--stats-file", stats_file, "Write stats JSON here on SIGUSR1 and at exit ('-' = stdout)");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")->capture_default_str();
    app.footer("Signals: SIGTERM/SIGINT close the vif cleanly; SIGUSR1 writes stats; SIGHUP reconnects.");
    CLI11_PARSE(app, argc, argv);

    util::init_logging("vifkit-front", log_level);
    tools::use_store_socket(store_sock);
    try {
        auto session = tools::open_emu(broker, static_cast<domid_t>(domid), mem_pages, 16384);
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
        core::netfront nf(loop, svc, *store, cfg);
        auto dump = [&] { tools::dump_stats(stats_file, nf.stats(), "vifkit-front"); };
        tools::install_signals(loop, {[&] { loop.stop(); }, dump, [&] { nf.reconnect(); }});
        if (!nf.start()) return 1;
        loop.run();
        nf.shutdown();
        dump();
        if (!stats_file.empty() && stats_file != "-") tools::write_json("-", nf.stats());
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return 1;
    }
    return 0;
}
