// vifkit-ctl: send one control-ring message through a running vifkit-front
// (its local control socket, see ctrlfront/ctl_protocol.hpp) and print the
// backend's answer; or print the frontend's control-ring stats.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "vifkit/ctrlfront/ctl_protocol.hpp"
#include "vifkit/ctrlfront/ctrl_names.hpp"
#include "vifkit/util/log.hpp"

namespace {

using namespace vifkit;
using namespace vifkit::ctrlfront;

constexpr int exit_success = 0;  // the backend answered SUCCESS (or stats printed)
constexpr int exit_status = 1;   // the backend answered another status, or timed out
constexpr int exit_error = 2;    // usage, connection or frontend error

struct options {
    std::string socket;
    std::vector<std::string> command;  // type|stats, d0, d1, d2
    std::string page_hex, grefs, u32s;
    int page_arg = -1;
    bool page_ro = false, page_rw = false, json = false;
    unsigned timeout_ms = 5000;
};

std::string footer() {
    std::string s = "Message types (name or number; data[] given as d0 d1 d2, decimal or 0x hex):\n";
    for (const auto& t : known_types()) {
        s += "  " + std::to_string(t.type) + " " + t.name + "\n      request: " + t.data_help +
             "\n      reply data: " + t.reply_help + "\n";
    }
    s += "Page arguments: --page-hex/--grefs/--u32s put their bytes into a fresh granted page\n"
         "whose gref goes into data[--page-arg] (default: the type's gref argument). The count\n"
         "argument (set_hash_key d1 = bytes, set_hash_mapping d1 = values, add/del d2 = entries)\n"
         "is filled in unless given. --grefs prints each entry's status from the page afterwards\n"
         "(not for add_gref_mapping, which does not use them); other pages are printed as hex.\n"
         "Statuses: SUCCESS, NOT_SUPPORTED, INVALID_PARAMETER, BUFFER_OVERFLOW; TIMEOUT and\n"
         "CANCELLED are the frontend's own (no answer in time / control ring went down).\n"
         "Exit status: 0 SUCCESS, 1 any other status, 2 error.\n"
         "Examples:\n"
         "  vifkit-ctl --socket /run/vifkit-front.ctl get_gref_mapping_size 0\n"
         "  vifkit-ctl --socket /run/vifkit-front.ctl add_gref_mapping 0 --grefs 100:ro,101,102\n"
         "  vifkit-ctl --socket /run/vifkit-front.ctl stats";
    return s;
}

// Which data[] index counts the page's contents, and in units of how many bytes.
struct count_arg {
    int index;
    std::size_t unit;
};
std::optional<count_arg> count_arg_of(std::uint16_t type) {
    namespace t = abi::ctrl_type;
    if (type == t::set_hash_key) return count_arg{1, 1};
    if (type == t::set_hash_mapping) return count_arg{1, 4};
    if (type == t::add_gref_mapping || type == t::del_gref_mapping) return count_arg{2, 8};
    return std::nullopt;
}

// The page bytes from whichever page option was given (or none). Throws on bad input.
std::optional<std::vector<std::uint8_t>> page_bytes(const options& o) {
    if (!o.page_hex.empty()) {
        auto b = from_hex(o.page_hex);
        if (!b) throw std::invalid_argument("--page-hex: need 1..4096 bytes as hex, two digits per byte");
        return b;
    }
    if (!o.grefs.empty()) {
        auto list = parse_gref_list(o.grefs);
        if (!list) throw std::invalid_argument("--grefs: " + list.error);
        return gref_list_page(*list.value);
    }
    if (!o.u32s.empty()) {
        auto list = parse_u32_list(o.u32s);
        if (!list) throw std::invalid_argument("--u32s: " + list.error);
        return u32_list_page(*list.value);
    }
    return std::nullopt;
}

void apply_page(const options& o, ctl_request& req, std::size_t given_data) {
    req.page = page_bytes(o);
    if (!req.page) {
        if (o.page_arg >= 0 || o.page_ro || o.page_rw)
            throw std::invalid_argument("--page-arg/--page-ro/--page-rw need a page option");
        return;
    }
    const type_info* info = find_type(req.type);
    const int arg = o.page_arg >= 0 ? o.page_arg : (info ? info->page_arg : -1);
    if (arg < 0) throw std::invalid_argument("this type has no page argument: give --page-arg");
    req.page_arg = static_cast<unsigned>(arg);
    req.page_writable = o.page_rw || (!o.page_ro && info && info->page_writable);
    if (const auto c = count_arg_of(req.type); c && given_data <= static_cast<std::size_t>(c->index))
        req.data[static_cast<std::size_t>(c->index)] = static_cast<std::uint32_t>(req.page->size() / c->unit);
}

ctl_request build_request(const options& o) {
    ctl_request req;
    if (o.command.front() == "stats") {
        if (o.command.size() > 1) throw std::invalid_argument("stats takes no arguments");
        return req;
    }
    req.op = ctl_op::send;
    const auto type = parse_type(o.command.front());
    if (!type) throw std::invalid_argument("unknown message type '" + o.command.front() + "' (see --help)");
    req.type = *type;
    if (o.command.size() > 4) throw std::invalid_argument("at most three data words (d0 d1 d2)");
    for (std::size_t i = 1; i < o.command.size(); ++i) {
        const auto v = parse_u32(o.command[i]);
        if (!v) throw std::invalid_argument("bad data word '" + o.command[i] + "'");
        req.data[i - 1] = *v;
    }
    req.timeout = std::chrono::milliseconds(o.timeout_ms);
    apply_page(o, req, o.command.size() - 1);
    return req;
}

int print_reply(const options& o, const ctl_reply& r) {
    const type_info* info = find_type(r.type);
    const std::string name = info ? info->name : "type " + std::to_string(r.type);
    std::printf("%s -> %s data=%u\n", name.c_str(), status_name(r.status), r.data);
    // ADD does not use the per-entry status (netif-spec §1.4): only print them for others.
    if (r.page_after && !o.grefs.empty() && r.type != abi::ctrl_type::add_gref_mapping) {
        const auto entries = parse_gref_list_page(*r.page_after, r.page_after->size() / 8);
        for (std::size_t i = 0; entries && i < entries->size(); ++i) {
            const auto& e = (*entries)[i];
            std::printf("  [%zu] ref=%u %s status=%s\n", i, e.ref,
                        (e.flags & abi::gref_flag_readonly) ? "ro" : "rw", status_name(e.status));
        }
    } else if (r.page_after && o.grefs.empty()) {
        std::printf("page_after=%s\n", to_hex(*r.page_after).c_str());
    }
    return r.status == abi::ctrl_status::success ? exit_success : exit_status;
}

int run(const options& o) {
    const ctl_request req = build_request(o);
    // The frontend answers by the request's own deadline; allow for scheduling.
    const auto wait = req.timeout + std::chrono::seconds(2);
    const auto line = ctl_call(o.socket, format_request(req), wait);
    if (!line) {
        std::fprintf(stderr, "vifkit-ctl: %s\n", line.error.c_str());
        return exit_error;
    }
    if (o.json) std::printf("%s\n", line.value->c_str());
    const auto rsp = parse_response(*line.value);
    if (!rsp) {
        std::fprintf(stderr, "vifkit-ctl: bad reply from the frontend: %s\n", rsp.error.c_str());
        return exit_error;
    }
    if (!rsp.value->ok) {
        std::fprintf(stderr, "vifkit-ctl: frontend: %s\n", rsp.value->error.c_str());
        return exit_error;
    }
    if (rsp.value->stats) {
        if (!o.json) std::printf("%s\n", rsp.value->stats->dump(2).c_str());
        return exit_success;
    }
    if (o.json) return rsp.value->reply->status == abi::ctrl_status::success ? exit_success : exit_status;
    return print_reply(o, *rsp.value->reply);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"vifkit-ctl: send a netif control-ring message through a running vifkit-front"};
    options o;
    app.add_option("--socket", o.socket, "vifkit-front's control socket")->required();
    app.add_option("command", o.command, "<type> [d0 [d1 [d2]]]  or  stats")->required();
    auto* hex = app.add_option("--page-hex", o.page_hex, "Page contents as hex (at most 4096 bytes)");
    auto* grefs = app.add_option("--grefs", o.grefs, "Gref list page: \"ref[:ro],ref,...\" (1..512 entries)");
    auto* u32s = app.add_option("--u32s", o.u32s, "Page of little-endian u32 values: \"v,v,...\"");
    hex->excludes(grefs)->excludes(u32s);
    grefs->excludes(u32s);
    app.add_option("--page-arg", o.page_arg, "data[] index that receives the page's gref")->check(CLI::Range(0, 2));
    auto* ro = app.add_flag("--page-ro", o.page_ro, "Grant the page read-only");
    app.add_flag("--page-rw", o.page_rw, "Grant the page writable")->excludes(ro);
    app.add_option("--timeout-ms", o.timeout_ms, "Give up on the backend after this long")
        ->check(CLI::Range(1u, ctl_max_timeout_ms))
        ->capture_default_str();
    app.add_flag("--json", o.json, "Print the raw JSON reply");
    app.footer(footer());
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? exit_success : exit_error;  // --help is 0; usage errors are 2
    }

    util::init_logging("vifkit-ctl", "warn");
    try {
        return run(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vifkit-ctl: %s\n", e.what());
        return exit_error;
    }
}
