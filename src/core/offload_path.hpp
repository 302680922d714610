// Offload decisions shared by netback and netfront (netif-spec §4.2-4.4).
//
// A frame arrives with an io::offload state (from a TAP's virtio header, or a
// ring's csum flags and GSO extra) and goes to a next hop that accepts some
// offloads: a port (its enabled caps) or the peer across the ring (the
// features it advertised). What the next hop takes passes through untouched;
// the rest is finished here in software: a partial checksum is completed, a
// GSO super-frame is cut into MSS-sized segments with full checksums.
#pragma once
#include <cstdint>
#include <span>

#include "vifkit/core/counters.hpp"
#include "vifkit/core/offload_accept.hpp"
#include "vifkit/io/packet_port.hpp"
#include "vifkit/wire/checksum.hpp"
#include "vifkit/wire/offload.hpp"

namespace vifkit::core {

// Scratch a software segmentation needs for any MSS a peer may claim.
inline constexpr std::size_t seg_scratch_len = wire::segment_scratch_size(0xFFFF);

enum class offload_outcome : std::uint8_t { ok, dropped };

// Hand `frame` (with state m) to emit(std::span<const std::byte>, const io::offload&)
// as the next hop `a` can take it: unchanged, with its checksum completed, or
// as segments (written one at a time into `scratch`, segment_scratch_size
// bytes). Counts into `c`. `dropped` means the frame's headers did not allow
// what its state claimed (counted in csum_errors / gso_errors).
// emit's result (false = the next hop refused) stops segmentation early.
template <class Emit>
offload_outcome resolve_offload(std::span<std::byte> frame, const io::offload& m, const offload_accept& a,
                                std::span<std::byte> scratch, queue_counters& c, Emit&& emit) {
    if (m.gso_type != io::offload::gso::none) {
        // The headers must be what the GSO type claims: TCP over that IP version.
        const bool v4 = m.gso_type == io::offload::gso::tcpv4;
        const auto l4 = wire::locate_l4(frame);
        if (!l4 || l4.info.proto != 6 || l4.info.ip_version != (v4 ? 4 : 6) || m.gso_size == 0) {
            ++c.gso_errors;
            return offload_outcome::dropped;
        }
        if (v4 ? a.gso4 : a.gso6) {
            // A super-frame travels with a partial checksum (a sender that did not
            // say csum_blank gets its pseudo-header sum written, as Linux does).
            io::offload pass = m;
            if (pass.l4 != io::offload::csum::partial) {
                if (wire::set_partial_checksum(frame) != wire::csum_result::done) {
                    ++c.gso_errors;
                    return offload_outcome::dropped;
                }
                pass.l4 = io::offload::csum::partial;
            }
            emit(std::span<const std::byte>(frame), pass);
            return offload_outcome::ok;
        }
        const io::offload seg{io::offload::csum::valid, io::offload::gso::none, 0};
        const auto r = wire::segment_tcp(frame, static_cast<std::uint8_t>(m.gso_type), m.gso_size, scratch,
                                         [&](std::span<const std::byte> s) { return emit(s, seg); });
        if (r.result == wire::gso_result::stopped) return offload_outcome::ok;  // the next hop refused: emit counted it
        if (r.result != wire::gso_result::ok) {
            ++c.gso_errors;
            return offload_outcome::dropped;
        }
        ++c.gso_segmented;
        return offload_outcome::ok;
    }
    if (m.l4 == io::offload::csum::partial) {
        const auto l4 = wire::locate_l4(frame);
        if (l4 && (l4.info.ip_version == 4 ? a.csum4 : a.csum6)) {
            ++c.csum_offloaded;
            emit(std::span<const std::byte>(frame), m);
            return offload_outcome::ok;
        }
        // Not taken by the next hop, or headers locate_l4 finds too odd to hand
        // on (a TCP data offset out of range): complete it here, as leniently
        // as Linux's checksum setup does.
        if (wire::complete_l4_checksum(frame) != wire::csum_result::done) {
            ++c.csum_errors;
            return offload_outcome::dropped;
        }
        ++c.csum_completed;
        emit(std::span<const std::byte>(frame), io::offload{io::offload::csum::valid, io::offload::gso::none, 0});
        return offload_outcome::ok;
    }
    emit(std::span<const std::byte>(frame), m);
    return offload_outcome::ok;
}

}  // namespace vifkit::core
