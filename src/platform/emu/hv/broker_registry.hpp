// The broker's domain registry: domid allocation, validation of a registering
// domain's guest memory, creation of its grant table and active table, the
// directory every domain maps read-only, and cleanup when a domain goes away.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>

#include "active_table.hpp"
#include "fd.hpp"
#include "vifkit/emu/broker.hpp"

namespace vifkit::emu::detail {

struct domain_rec {
    domid_t id = 0;
    std::uint32_t generation = 0;
    pid_t pid = 0;
    std::size_t mem_pages = 0;
    std::size_t entries = 0;
    std::uint64_t base = 0;
    unique_fd mem_fd;
    unique_fd table_fd;
    unique_fd active_fd;
    unique_fd pidfd;
    mapping table;
    mapping active;
    grant_table_view view;
};

// What a client asked for, already decoded from the wire.
struct registration {
    std::uint32_t want = domid_invalid;
    pid_t pid = 0;
    std::uint64_t mem_pages = 0;
    std::uint64_t entries = 0;
    std::uint64_t base = 0;
    unique_fd memfd;
};

class registry {
public:
    explicit registry(const broker::limits& lim);  // throws std::system_error

    // Validate and register. 0 with `out` set, or an errno value for the client.
    int add(registration r, domid_t& out);
    // Forget `id`: its pins on other domains' grants are released, its directory
    // slot cleared, its domid free again.
    void remove(domid_t id);

    [[nodiscard]] const domain_rec* find(domid_t id) const;
    [[nodiscard]] std::optional<domid_t> domid_of_pid(pid_t pid) const;
    [[nodiscard]] std::size_t count() const { return doms_.size(); }
    [[nodiscard]] int directory_fd() const { return dir_ro_fd_.get(); }

private:
    [[nodiscard]] int check(const registration& r) const;
    [[nodiscard]] int pick(std::uint32_t want, domid_t& out) const;
    [[nodiscard]] int adopt_memory(domain_rec& d, unique_fd memfd) const;
    [[nodiscard]] int make_tables(domain_rec& d) const;
    void publish(domid_t id, std::uint32_t generation, pid_t pid);

    broker::limits lim_;
    std::map<domid_t, std::unique_ptr<domain_rec>> doms_;
    unique_fd dir_fd_;
    unique_fd dir_ro_fd_;
    mapping dir_;
    std::uint32_t next_generation_ = 1;
};

}  // namespace vifkit::emu::detail
