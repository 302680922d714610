// Pure parse/format of the local control protocol (see ctl_protocol.hpp).
#include <algorithm>

#include "vifkit/ctrlfront/ctl_protocol.hpp"
#include "vifkit/ctrlfront/ctrl_names.hpp"

namespace vifkit::ctrlfront {

namespace {

using json = nlohmann::json;

template <class T>
parsed<T> failure(std::string msg) {
    return parsed<T>{std::nullopt, std::move(msg)};
}

// Rejects deep nesting before nlohmann sees the text (bounded work and
// recursion whatever a client sends; a request needs depth 2).
bool nesting_ok(std::string_view text, int max_depth) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (const char ch : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (ch == '\\') escaped = true;
            else if (ch == '"') in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max_depth) return false;
        } else if (ch == ']' || ch == '}') {
            --depth;
        }
    }
    return true;
}

// A non-negative JSON integer not above `max`.
std::optional<std::uint64_t> as_uint(const json& v, std::uint64_t max) {
    std::uint64_t n = 0;
    if (v.is_number_unsigned()) n = v.get<std::uint64_t>();
    else if (v.is_number_integer() && v.get<std::int64_t>() >= 0) n = static_cast<std::uint64_t>(v.get<std::int64_t>());
    else return std::nullopt;
    if (n > max) return std::nullopt;
    return n;
}

std::string short_name(const std::string& key) {
    return key.size() <= 32 ? key : key.substr(0, 32) + "...";
}

parsed<std::uint16_t> field_type(const json& v) {
    if (v.is_string()) {
        if (const auto t = parse_type(v.get_ref<const std::string&>())) return {*t, {}};
        return failure<std::uint16_t>("unknown message type name");
    }
    if (const auto n = as_uint(v, 0xFFFF)) return {static_cast<std::uint16_t>(*n), {}};
    return failure<std::uint16_t>("\"type\" must be a type name or an integer 0..65535");
}

parsed<std::array<std::uint32_t, 3>> field_data(const json& v) {
    using arr = std::array<std::uint32_t, 3>;
    if (!v.is_array() || v.size() > 3) return failure<arr>("\"data\" must be an array of at most 3 integers");
    arr out{};
    for (std::size_t i = 0; i < v.size(); ++i) {
        const auto n = as_uint(v[i], 0xFFFFFFFFu);
        if (!n) return failure<arr>("\"data\" entries must be integers 0..4294967295");
        out[i] = static_cast<std::uint32_t>(*n);
    }
    return {out, {}};
}

// Fills the page fields of `req` from `j` (page, page_arg, page_writable).
std::string page_fields(const json& j, ctl_request& req) {
    const auto page = j.find("page");
    if (page == j.end()) {
        if (j.contains("page_arg") || j.contains("page_writable"))
            return "\"page_arg\"/\"page_writable\" need \"page\"";
        return {};
    }
    if (!page->is_string()) return "\"page\" must be a hex string";
    req.page = from_hex(page->get_ref<const std::string&>());
    if (!req.page) return "\"page\" must be 1..4096 bytes of hex (two digits per byte)";
    const type_info* info = find_type(req.type);
    if (const auto arg = j.find("page_arg"); arg != j.end()) {
        const auto n = as_uint(*arg, 2);
        if (!n) return "\"page_arg\" must be 0, 1 or 2";
        req.page_arg = static_cast<unsigned>(*n);
    } else if (info && info->page_arg >= 0) {
        req.page_arg = static_cast<unsigned>(info->page_arg);
    } else {
        return "\"page_arg\" is required: this type has no page argument";
    }
    if (const auto w = j.find("page_writable"); w != j.end()) {
        if (!w->is_boolean()) return "\"page_writable\" must be true or false";
        req.page_writable = w->get<bool>();
    } else {
        req.page_writable = info && info->page_writable;
    }
    return {};
}

parsed<ctl_request> parse_send(const json& j) {
    static constexpr std::array<std::string_view, 7> allowed{
        "op", "type", "data", "page", "page_arg", "page_writable", "timeout_ms"};
    for (const auto& [key, value] : j.items())
        if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
            return failure<ctl_request>("unknown field \"" + short_name(key) + "\"");
    ctl_request req;
    req.op = ctl_op::send;
    const auto type = j.find("type");
    if (type == j.end()) return failure<ctl_request>("send needs \"type\"");
    auto t = field_type(*type);
    if (!t) return failure<ctl_request>(std::move(t.error));
    req.type = *t.value;
    if (const auto d = j.find("data"); d != j.end()) {
        auto data = field_data(*d);
        if (!data) return failure<ctl_request>(std::move(data.error));
        req.data = *data.value;
    }
    if (std::string err = page_fields(j, req); !err.empty()) return failure<ctl_request>(std::move(err));
    if (const auto to = j.find("timeout_ms"); to != j.end()) {
        const auto n = as_uint(*to, ctl_max_timeout_ms);
        if (!n || *n == 0) return failure<ctl_request>("\"timeout_ms\" must be an integer 1..600000");
        req.timeout = std::chrono::milliseconds(*n);
    }
    return {std::move(req), {}};
}

// The send-reply fields of an ok response.
parsed<ctl_reply> reply_fields(const json& j) {
    ctl_reply r;
    const auto get = [&](const char* key, std::uint64_t max) -> std::optional<std::uint64_t> {
        const auto it = j.find(key);
        return it == j.end() ? std::nullopt : as_uint(*it, max);
    };
    const auto id = get("id", 0xFFFF), type = get("type", 0xFFFF);
    const auto status = get("status", 0xFFFFFFFFu), data = get("data", 0xFFFFFFFFu);
    if (!id || !type || !status || !data)
        return failure<ctl_reply>("reply needs integer \"id\", \"type\", \"status\", \"data\"");
    r.id = static_cast<std::uint16_t>(*id);
    r.type = static_cast<std::uint16_t>(*type);
    r.status = static_cast<std::uint32_t>(*status);
    r.data = static_cast<std::uint32_t>(*data);
    if (const auto p = j.find("page_after"); p != j.end()) {
        if (!p->is_string()) return failure<ctl_reply>("\"page_after\" must be a hex string");
        r.page_after = from_hex(p->get_ref<const std::string&>());
        if (!r.page_after) return failure<ctl_reply>("\"page_after\" is not 1..4096 bytes of hex");
    }
    return {std::move(r), {}};
}

}  // namespace

parsed<ctl_request> parse_request(std::string_view line) {
    if (line.size() > ctl_max_line) return failure<ctl_request>("request line longer than 16 KiB");
    if (!nesting_ok(line, 2)) return failure<ctl_request>("request nested too deeply");
    const json j = json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded()) return failure<ctl_request>("request is not valid JSON");
    if (!j.is_object()) return failure<ctl_request>("request must be a JSON object");
    const auto op = j.find("op");
    if (op == j.end() || !op->is_string()) return failure<ctl_request>("request needs a string \"op\"");
    if (*op == "stats") {
        if (j.size() != 1) return failure<ctl_request>("\"stats\" takes no other fields");
        return {ctl_request{}, {}};
    }
    if (*op != "send") return failure<ctl_request>("unknown \"op\" (send, stats)");
    return parse_send(j);
}

json format_request(const ctl_request& req) {
    if (req.op == ctl_op::stats) return json{{"op", "stats"}};
    json j{{"op", "send"},
           {"type", req.type},
           {"data", json::array({req.data[0], req.data[1], req.data[2]})},
           {"timeout_ms", req.timeout.count()}};
    if (req.page) {
        j["page"] = to_hex(*req.page);
        j["page_arg"] = req.page_arg;
        j["page_writable"] = req.page_writable;
    }
    return j;
}

parsed<ctl_response> parse_response(std::string_view line) {
    if (line.size() > ctl_max_reply_line) return failure<ctl_response>("reply longer than 1 MiB");
    if (!nesting_ok(line, 32)) return failure<ctl_response>("reply nested too deeply");
    const json j = json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return failure<ctl_response>("reply is not a JSON object");
    const auto ok = j.find("ok");
    if (ok == j.end() || !ok->is_boolean()) return failure<ctl_response>("reply needs a boolean \"ok\"");
    ctl_response r;
    r.ok = ok->get<bool>();
    if (!r.ok) {
        const auto err = j.find("error");
        if (err == j.end() || !err->is_string()) return failure<ctl_response>("error reply needs \"error\"");
        r.error = err->get<std::string>();
        return {std::move(r), {}};
    }
    if (const auto s = j.find("stats"); s != j.end()) {
        if (!s->is_object()) return failure<ctl_response>("\"stats\" must be an object");
        r.stats = *s;
        return {std::move(r), {}};
    }
    auto reply = reply_fields(j);
    if (!reply) return failure<ctl_response>(std::move(reply.error));
    r.reply = std::move(reply.value);
    return {std::move(r), {}};
}

json format_reply(const ctl_reply& reply) {
    json j{{"ok", true},
           {"id", reply.id},
           {"type", reply.type},
           {"type_name", type_name(reply.type)},
           {"status", reply.status},
           {"status_name", status_name(reply.status)},
           {"data", reply.data}};
    if (reply.page_after) j["page_after"] = to_hex(*reply.page_after);
    return j;
}

json format_error(std::string_view message) { return json{{"ok", false}, {"error", message}}; }

json format_stats(json stats) { return json{{"ok", true}, {"stats", std::move(stats)}}; }

std::string to_line(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace vifkit::ctrlfront
