// Node permissions as xenstored keeps them. perms[0] names the owner and the
// access everyone else gets by default; later entries are per-domain ACLs.
// Privileged callers (dom0 / the toolstack) and the owner get everything.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vifkit/platform/types.hpp"

namespace vifkit::emu::xs {

// Access bits (XS_PERM_* in xenstore_lib.h).
inline constexpr unsigned access_none = 0x0;
inline constexpr unsigned access_read = 0x1;
inline constexpr unsigned access_write = 0x2;
inline constexpr unsigned access_owner = 0x8;

struct perm {
    domid_t id = 0;
    unsigned access = access_none;  // access_read | access_write subset
    friend bool operator==(const perm&, const perm&) = default;
};
using perm_list = std::vector<perm>;  // never empty for a stored node

// Who is making a request. A connection with no domid from the resolver is
// the privileged toolstack; domid 0 is privileged too.
struct caller {
    domid_t id = 0;
    bool privileged = true;

    static caller dom0() { return {}; }
    static caller domain(domid_t d) { return {d, d == 0}; }
};

// "r5" -> {5, read}. Letters n/r/w/b; domid decimal, no sign, no junk.
std::optional<perm> parse_perm(std::string_view s);
// {5, read} -> "r5".
std::string format_perm(const perm& p);

// The access `who` has to a node with `perms` (xenstored perm_for_conn).
unsigned access_for(const caller& who, const perm_list& perms) noexcept;

}  // namespace vifkit::emu::xs
