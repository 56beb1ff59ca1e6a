// A log-bucketed latency histogram (HDR-like) for picker-bench: constant
// memory, no allocation when recording, mergeable across slots.
#ifndef PICKER_BENCH_LOAD_HISTOGRAM_H_
#define PICKER_BENCH_LOAD_HISTOGRAM_H_

#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace picker::bench {

// Values are nanoseconds. Each power of two is split into 32 sub-buckets, so
// a reported percentile is within about 3% of the exact sample, which is far
// below the run-to-run noise on a loopback benchmark.
class Histogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr uint64_t kSubCount = uint64_t{1} << kSubBits;
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSubCount;

  void Record(uint64_t value_ns) {
    ++buckets_[IndexOf(value_ns)];
    ++count_;
    sum_ += value_ns;
    if (value_ns > max_) max_ = value_ns;
  }

  void Merge(const Histogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    if (other.max_ > max_) max_ = other.max_;
  }

  uint64_t count() const { return count_; }
  double mean_ns() const { return count_ == 0 ? 0 : static_cast<double>(sum_) / count_; }
  uint64_t max_ns() const { return max_; }

  // The value at quantile q (0..1]: the middle of the bucket that holds the
  // ceil(q * count)-th smallest sample, capped at the largest sample.
  double Quantile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) {
        const double mid = MiddleOf(i);
        return mid > static_cast<double>(max_) ? static_cast<double>(max_) : mid;
      }
    }
    return static_cast<double>(max_);
  }

 private:
  static size_t IndexOf(uint64_t v) {
    if (v < kSubCount) return static_cast<size_t>(v);
    const int msb = 63 - std::countl_zero(v);
    const int shift = msb - kSubBits;
    const uint64_t sub = (v >> shift) & (kSubCount - 1);
    return static_cast<size_t>((shift + 1) * kSubCount + sub);
  }
  static double MiddleOf(size_t index) {
    if (index < kSubCount) return static_cast<double>(index);
    const int shift = static_cast<int>(index / kSubCount) - 1;
    const uint64_t sub = index % kSubCount;
    const double low = static_cast<double>((kSubCount + sub) << shift);
    return low + static_cast<double>(uint64_t{1} << shift) / 2;
  }

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
};

}  // namespace picker::bench

#endif  // PICKER_BENCH_LOAD_HISTOGRAM_H_
