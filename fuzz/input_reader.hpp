// A cursor over a fuzz input, for the fuzz targets' decoders: fixed-size
// fields are copied out (little-endian, as the targets' formats say), byte
// runs are taken as far as the input goes.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace vifkit::fuzz {

class input_reader {
public:
    input_reader(const std::uint8_t* d, std::size_t n) : d_(d), n_(n) {}
    [[nodiscard]] bool empty() const { return pos_ >= n_; }
    [[nodiscard]] std::size_t left() const { return n_ - pos_; }
    // Copies k bytes out, or nothing (false) when fewer are left.
    bool bytes(void* out, std::size_t k) {
        if (left() < k) return false;
        std::memcpy(out, d_ + pos_, k);
        pos_ += k;
        return true;
    }
    template <class T>
    bool get(T& v) { return bytes(&v, sizeof v); }
    // Up to k bytes (fewer at the end of the input).
    std::span<const std::uint8_t> take(std::size_t k) {
        k = std::min(k, left());
        auto s = std::span(d_ + pos_, k);
        pos_ += k;
        return s;
    }

private:
    const std::uint8_t* d_;
    std::size_t n_;
    std::size_t pos_ = 0;
};

}  // namespace vifkit::fuzz
