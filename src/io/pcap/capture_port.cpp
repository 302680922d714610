// with_capture(): a decorator that tees every frame through a port into a pcap file.
#include <pcap/pcap.h>
#include <sys/time.h>

#include <ctime>

#include "vifkit/io/packet_port.hpp"
#include "vifkit/util/log.hpp"

namespace vifkit::io {
namespace {

// Flush at least this often while frames flow, so a crash or a live reader
// (tcpdump -r on a growing file) loses little.
constexpr unsigned flush_every_frames = 64;
constexpr long flush_every_ns = 100'000'000;

class capture_port final : public packet_port {
public:
    capture_port(std::unique_ptr<packet_port> inner, pcap_t* dead, pcap_dumper_t* dumper,
                 std::string path)
        : inner_(std::move(inner)), dead_(dead), dumper_(dumper), path_(std::move(path)) {}
    ~capture_port() override {
        pcap_dump_close(dumper_);  // flushes
        pcap_close(dead_);
    }

    [[nodiscard]] int fd() const override { return inner_->fd(); }
    [[nodiscard]] long recv(std::span<std::byte> buf) override;
    bool send(std::span<const std::byte> frame) override;
    [[nodiscard]] std::string describe() const override {
        return inner_->describe() + " (capture " + path_ + ")";
    }
    [[nodiscard]] stats get_stats() const override { return inner_->get_stats(); }
    [[nodiscard]] unsigned offload_caps() const override { return inner_->offload_caps(); }
    int set_offload(unsigned caps) override { return inner_->set_offload(caps); }
    [[nodiscard]] long recv_offload(std::span<std::byte> buf, offload& meta) override;
    bool send_offload(std::span<const std::byte> frame, const offload& meta) override;
    [[nodiscard]] bool link_up() const override { return inner_->link_up(); }
    int set_carrier(bool up) override { return inner_->set_carrier(up); }
    int set_mtu(int mtu) override { return inner_->set_mtu(mtu); }
    [[nodiscard]] std::optional<std::vector<std::array<std::uint8_t, 6>>> multicast_groups() const override {
        return inner_->multicast_groups();
    }

private:
    long recorded(std::span<std::byte> buf, long n);
    void record(std::span<const std::byte> frame);
    void flush();

    std::unique_ptr<packet_port> inner_;
    pcap_t* dead_;
    pcap_dumper_t* dumper_;
    std::string path_;
    unsigned unflushed_ = 0;
    timespec last_flush_{};
    util::rate_limited log_limit_;
};

long capture_port::recv(std::span<std::byte> buf) { return recorded(buf, inner_->recv(buf)); }

long capture_port::recv_offload(std::span<std::byte> buf, offload& meta) {
    return recorded(buf, inner_->recv_offload(buf, meta));
}

bool capture_port::send_offload(std::span<const std::byte> frame, const offload& meta) {
    const bool sent = inner_->send_offload(frame, meta);
    if (sent) record(frame);
    return sent;
}

long capture_port::recorded(std::span<std::byte> buf, long n) {
    if (n > 0) {
        record(buf.first(static_cast<std::size_t>(n)));
    } else if (unflushed_ > 0) {
        flush();  // the caller has drained the port: a good moment to write out
    }
    return n;
}

bool capture_port::send(std::span<const std::byte> frame) {
    // Only frames that actually left are recorded; drops show up in the stats.
    const bool sent = inner_->send(frame);
    if (sent) record(frame);
    return sent;
}

void capture_port::record(std::span<const std::byte> frame) {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    pcap_pkthdr hdr{};
    hdr.ts.tv_sec = now.tv_sec;
    hdr.ts.tv_usec = static_cast<suseconds_t>(now.tv_nsec / 1000);
    hdr.caplen = static_cast<bpf_u_int32>(frame.size());
    hdr.len = hdr.caplen;
    // SAFETY: pcap_dump only reads caplen bytes from the frame; the first argument is
    // the dumper, passed as u_char* by libpcap's callback-shaped signature.
    pcap_dump(reinterpret_cast<u_char*>(dumper_), &hdr,
              reinterpret_cast<const u_char*>(frame.data()));
    ++unflushed_;
    const long elapsed_ns =
        (now.tv_sec - last_flush_.tv_sec) * 1'000'000'000L + (now.tv_nsec - last_flush_.tv_nsec);
    if (unflushed_ >= flush_every_frames || elapsed_ns >= flush_every_ns) flush();
}

void capture_port::flush() {
    ::clock_gettime(CLOCK_REALTIME, &last_flush_);
    unflushed_ = 0;
    if (pcap_dump_flush(dumper_) != 0 && log_limit_.allow()) {
        SPDLOG_WARN("{}: writing capture {} failed", inner_->describe(), path_);
    }
}

}  // namespace

std::unique_ptr<packet_port> with_capture(std::unique_ptr<packet_port> inner,
                                          const std::string& pcap_path, std::string* error) {
    if (!inner) {
        if (error) *error = "capture: no port to wrap";
        return nullptr;
    }
    // The snap length covers the largest frame a port carries, so nothing is cut.
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, static_cast<int>(max_frame_size));
    if (dead == nullptr) {
        if (error) *error = "capture: pcap_open_dead failed";
        return nullptr;
    }
    pcap_dumper_t* dumper = pcap_dump_open(dead, pcap_path.c_str());
    if (dumper == nullptr) {
        if (error) *error = "capture: " + std::string(pcap_geterr(dead));
        pcap_close(dead);
        return nullptr;
    }
    return std::make_unique<capture_port>(std::move(inner), dead, dumper, pcap_path);
}

}  // namespace vifkit::io
