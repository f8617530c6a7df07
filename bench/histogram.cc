// SPDX-License-Identifier: Apache-2.0
#include "histogram.hh"

#include <algorithm>
#include <bit>
#include <cmath>

namespace rp::bench {

int Histogram::index_of(std::uint64_t v) noexcept {
    if (v < sub_count) {
        return static_cast<int>(v);
    }
    int msb = 63 - std::countl_zero(v);
    int shift = msb - sub_bits;
    return (shift + 1) * sub_count + static_cast<int>((v >> shift) & (sub_count - 1));
}

std::uint64_t Histogram::lowest_in(int index) noexcept {
    if (index < sub_count) {
        return static_cast<std::uint64_t>(index);
    }
    int shift = index / sub_count - 1;
    std::uint64_t sub = static_cast<std::uint64_t>(index % sub_count);
    return (sub_count + sub) << shift;
}

std::uint64_t Histogram::width_of(int index) noexcept {
    return index < sub_count ? 1 : std::uint64_t{1} << (index / sub_count - 1);
}

void Histogram::record(std::uint64_t v) noexcept {
    ++counts_[static_cast<std::size_t>(index_of(v))];
    ++count_;
    max_ = std::max(max_, v);
    sum_ += static_cast<long double>(v);
}

void Histogram::merge(const Histogram& o) noexcept {
    for (std::size_t i = 0; i < counts_.size(); ++i) {
        counts_[i] += o.counts_[i];
    }
    count_ += o.count_;
    max_ = std::max(max_, o.max_);
    sum_ += o.sum_;
}

std::uint64_t Histogram::quantile(double q) const noexcept {
    if (count_ == 0) {
        return 0;
    }
    q = std::clamp(q, 0.0, 1.0);
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    rank = std::max<std::uint64_t>(rank, 1);
    std::uint64_t seen = 0;
    for (int i = 0; i < bucket_count; ++i) {
        seen += counts_[static_cast<std::size_t>(i)];
        if (seen >= rank) {
            return std::min(max_, lowest_in(i) + width_of(i) / 2);
        }
    }
    return max_;
}

std::uint64_t Histogram::count_from(std::uint64_t v) const noexcept {
    std::uint64_t n = 0;
    for (int i = index_of(v); i < bucket_count; ++i) {
        n += counts_[static_cast<std::size_t>(i)];
    }
    return n;
}

double Histogram::mean() const noexcept {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

} // namespace rp::bench
