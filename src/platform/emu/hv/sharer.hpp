// grant_sharer over an emulated domain's own memory and grant table
// (libxengntshr-like): pages come from the domain's free list, are zeroed before
// being granted (XSA-403) and are reused only after a successful revoke (XSA-396).
#pragma once
#include <cstdint>
#include <unordered_map>

#include "domain_core.hpp"
#include "vifkit/platform/grant.hpp"

namespace vifkit::emu::detail {

class sharer final : public platform::grant_sharer {
public:
    explicit sharer(domain_core& d) : d_(d) {}
    // Revokes what it can; pages still mapped by a peer are leaked, never reused.
    ~sharer() override;

    [[nodiscard]] bool share_pages(domid_t peer, std::span<platform::shared_page> pages,
                                   bool writable) override;
    std::size_t unshare(std::span<const platform::shared_page> pages,
                        std::span<gnt_status> status) override;
    [[nodiscard]] std::size_t shared_count() const override { return granted_.size(); }

private:
    domain_core& d_;
    std::unordered_map<grant_ref_t, std::uint32_t> granted_;  // ref -> frame
};

}  // namespace vifkit::emu::detail
