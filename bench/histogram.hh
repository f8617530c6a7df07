// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstdint>

namespace rp::bench {

// A log-linear histogram of nanosecond values (HdrHistogram's layout with 64
// sub-buckets per power of two: under 1.6 % relative error), fixed size, so
// recording never allocates.
class Histogram {
  public:
    static constexpr int sub_bits = 6;
    static constexpr int sub_count = 1 << sub_bits;
    static constexpr int bucket_count = (64 - sub_bits + 1) * sub_count;

    void record(std::uint64_t v) noexcept;
    void merge(const Histogram& o) noexcept;
    // The value at quantile q in [0, 1] (a bucket midpoint, never above max()).
    std::uint64_t quantile(double q) const noexcept;
    std::uint64_t count() const noexcept { return count_; }
    // Values recorded in buckets that start at or above `v` (so within the
    // bucket error of `v`).
    std::uint64_t count_from(std::uint64_t v) const noexcept;
    std::uint64_t max() const noexcept { return max_; }
    double mean() const noexcept;

    static int index_of(std::uint64_t v) noexcept;
    static std::uint64_t lowest_in(int index) noexcept;
    static std::uint64_t width_of(int index) noexcept;

  private:
    std::array<std::uint64_t, bucket_count> counts_{};
    std::uint64_t count_ = 0;
    std::uint64_t max_ = 0;
    long double sum_ = 0;
};

} // namespace rp::bench
