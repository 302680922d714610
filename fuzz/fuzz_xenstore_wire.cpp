// libFuzzer target: vifkit-xenstored's wire decoder and engine (xs_wire.h
// framing, per-type request decoding, the node tree, permissions, watches,
// transactions), fed raw client byte streams in process.
//
// Input: 4 bytes naming the caller of connections 0-3 (0 = dom0, else that
// domid, unprivileged), then chunks. A chunk is {u8 ctl, u8 len, len bytes}:
// the bytes are appended to connection (ctl & 3)'s input stream, which is then
// framed exactly as server.cpp does it (partial headers wait, a length over
// XENSTORE_PAYLOAD_MAX drops the connection). ctl bit 7 instead makes a
// toolstack call: (ctl >> 2) & 3 = 0 reconnect the connection, 1 introduce
// domain (ctl & 3) + 1, 2 release it. Seeds: tests/unit/xenstored.
//
// Every message the engine sends must be a well-formed frame within the payload
// limit, and replies must echo the request's ids.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "vifkit/emu/xenstored/engine.hpp"
#include "vifkit/emu/xenstored/wire.hpp"
#include "vifkit/util/log.hpp"

namespace {

using namespace vifkit;
using namespace vifkit::emu::xs;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_xenstore_wire: %s\n", what);
    std::abort();
}

struct conn {
    conn_id id = 0;
    caller who;
    std::string in;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    util::init_logging("fuzz_xenstore_wire", "off");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) return 0;
    std::optional<header> current;  // the request being handled
    std::size_t sent = 0;
    engine eng([&](conn_id, msg_type type, std::uint32_t req_id, std::uint32_t tx_id, std::string_view payload) {
        if (payload.size() > payload_max) fail("message payload over XENSTORE_PAYLOAD_MAX");
        const std::string frame = encode(type, req_id, tx_id, payload);
        const auto h = parse_header({reinterpret_cast<const std::uint8_t*>(frame.data()), frame.size()});
        if (h.status != header_status::ok || h.hdr.len != payload.size()) fail("unparseable frame sent");
        if (type != msg_type::watch_event && current && req_id != current->req_id) fail("reply with the wrong req_id");
        ++sent;
    });
    std::array<conn, 4> conns;
    for (std::size_t i = 0; i < conns.size(); ++i) {
        conns[i].who = data[i] == 0 ? caller::dom0() : caller::domain(data[i]);
        conns[i].id = eng.connect(conns[i].who);
    }
    std::size_t pos = 4;
    while (pos + 2 <= size) {
        const std::uint8_t ctl = data[pos];
        conn& c = conns[ctl & 3u];
        if (ctl & 0x80) {
            ++pos;
            const domid_t d = static_cast<domid_t>((ctl & 3u) + 1);
            switch ((ctl >> 2) & 3u) {
            case 0:
                eng.disconnect(c.id);
                c.id = eng.connect(c.who);
                c.in.clear();
                break;
            case 1: eng.introduce_domain(d); break;
            case 2: eng.release_domain(d); break;
            default: break;
            }
            continue;
        }
        const std::size_t len = std::min<std::size_t>(data[pos + 1], size - pos - 2);
        c.in.append(reinterpret_cast<const char*>(data + pos + 2), len);
        pos += 2 + len;
        // server.cpp's framing loop.
        std::size_t used = 0;
        while (true) {
            const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(c.in.data()) + used, c.in.size() - used);
            const header_result h = parse_header(bytes);
            if (h.status == header_status::incomplete) break;
            if (h.status == header_status::too_long) {
                eng.disconnect(c.id);  // the server drops such a client
                c.id = eng.connect(c.who);
                c.in.clear();
                used = 0;
                break;
            }
            if (bytes.size() < header_size + h.hdr.len) break;
            current = h.hdr;
            const std::size_t before = sent;
            eng.handle_frame(c.id, h.hdr, bytes.subspan(header_size, h.hdr.len));
            current.reset();
            // Every request gets an answer (reply or error), except transaction
            // and watch bookkeeping on a vanished connection, which cannot happen here.
            if (sent == before) fail("request without a reply");
            used += header_size + h.hdr.len;
        }
        c.in.erase(0, used);
    }
    return 0;
}
