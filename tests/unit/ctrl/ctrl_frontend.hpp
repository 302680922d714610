// A frontend domain in its own process for control-ring tests: it grants pages
// to the backend (the test process, domid 0), writes arbitrary bytes into them
// (gref lists, hash keys, mapping tables), reads them back, and revokes grants.
// Built on the emu test support (child processes + channels + broker).
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "emu_test_support.hpp"
#include "vifkit/abi/netif.hpp"
#include "vifkit/emu/grant_entry.hpp"

namespace vifkit::ctrl::test {

class frontend_process {
public:
    static constexpr std::size_t max_refs = 1024;

    // Attaches a domain with `mem_pages` pages and `grant_entries` grant refs.
    frontend_process(const std::string& broker_path, std::size_t mem_pages = 1200,
                     std::size_t grant_entries = 2048);
    ~frontend_process();

    [[nodiscard]] domid_t id() const { return id_; }

    // Grant n (<= max_refs) zeroed pages to `peer`. Throws on failure.
    std::vector<grant_ref_t> share(domid_t peer, std::size_t n, bool writable);
    // Revoke; per-ref GNTST status (eagain while the backend still maps it).
    std::vector<gnt_status> unshare(std::span<const grant_ref_t> refs);
    // Write / read bytes of one of our granted pages (off + len <= page_size).
    void write(grant_ref_t ref, std::uint16_t off, std::span<const std::uint8_t> bytes);
    std::vector<std::uint8_t> read(grant_ref_t ref, std::uint16_t off, std::uint16_t len);
    // Our grant-table entry (flags show GTF_reading / GTF_writing while mapped).
    emu::grant_entry_v1 entry(grant_ref_t ref);
    std::size_t shared_count();

    // Helpers for struct xen_netif_gref lists at offset 0 of a page.
    void write_list(grant_ref_t page, std::span<const abi::gref_entry> list);
    std::vector<abi::gref_entry> read_list(grant_ref_t page, std::size_t n);

    struct command;
    struct reply;

private:
    reply call(const command& c);

    std::optional<emu::test::child> child_;
    domid_t id_ = domid_invalid;
};

// Build a list: refs with the given flags, status pre-set to 0xFFFF so a
// write-back is visible.
std::vector<abi::gref_entry> make_list(std::span<const grant_ref_t> refs, std::uint16_t flags = 0);

}  // namespace vifkit::ctrl::test
