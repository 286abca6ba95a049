// The input domain check of a loss whose input is a probability (BCELoss):
// the first value outside [0, 1], found per chunk, reported as kOutOfRange
// with its message (../common/errors.h).
#ifndef MS_BCE_CPU_DOMAIN_CHECK_H_
#define MS_BCE_CPU_DOMAIN_CHECK_H_

#include <cstdint>
#include <vector>

#include "common.h"

namespace ms_bce {

// A loss whose first input is a probability (BCELoss) declares
// kUnitIntervalInput = true: a value outside [0, 1] is refused (kOutOfRange)
// instead of giving NaN steps later, as PyTorch and MindSpore's built-in
// refuse it; NaN passes (it gives NaN).
template <class Loss>
constexpr bool unit_interval_input() {
  if constexpr (requires { Loss::kUnitIntervalInput; }) return Loss::kUnitIntervalInput;
  else return false;
}

// Index of the first of x[0 .. n) outside [0, 1] (NaN is not), or -1.  The
// first loop is branch-free (it vectorises): in range is the common case.
template <class T>
int64_t first_outside_unit_interval(const T *x, int64_t n) {
  bool outside = false;
  for (int64_t i = 0; i < n; ++i) {
    const float v = to_float(x[i]);
    outside |= (v < 0.0f) | (v > 1.0f);
  }
  if (!outside) return -1;
  for (int64_t i = 0; i < n; ++i) {
    const float v = to_float(x[i]);
    if (v < 0.0f || v > 1.0f) return i;
  }
  return -1;
}

// Per chunk, the flat index of its first input outside the domain (-1: none).
// Chunks cover ascending index ranges, so the first chunk that found one
// holds the first in the whole input, whatever the thread count.
// `enabled` false: no check (the fused backward: see backward()).
template <class Loss, class T>
class DomainCheck {
 public:
  DomainCheck(int64_t chunks, bool enabled) : first_(unit_interval_input<Loss>() && enabled ? chunks : 0, -1) {}

  // false (and the index kept) if segment [f0, f0 + n) of x holds a value outside
  // keep: a mask's 1/0 per element of the segment (nullptr: all kept); a
  // dropped element is not checked
  bool segment_ok(int64_t c, const T *x, int64_t f0, int64_t n, const float *keep = nullptr) {
    if constexpr (!unit_interval_input<Loss>()) return true;
    if (first_.empty()) return true;
    for (int64_t from = 0; from < n;) {
      const int64_t k = first_outside_unit_interval(x + f0 + from, n - from);
      if (k < 0) return true;
      if (keep == nullptr || keep[from + k] != 0.0f) {
        first_[c] = f0 + from + k;
        return false;
      }
      from += k + 1;
    }
    return true;
  }

  // kOutOfRange (with its message) for the first value outside, else kOk
  int status(const T *x) const {
    if constexpr (unit_interval_input<Loss>()) {
      for (const int64_t f : first_) {
        if (f >= 0) return out_of_range(Loss::kName, Loss::kInputName, to_float(x[f]), f);
      }
    }
    (void)x;
    return kOk;
  }

 private:
  std::vector<int64_t> first_;
};

}  // namespace ms_bce

#endif  // MS_BCE_CPU_DOMAIN_CHECK_H_
