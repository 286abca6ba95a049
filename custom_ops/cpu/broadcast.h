// How a weight/pos_weight operand broadcast to the input's shape is walked
// in place: the merged iteration space (BroadcastLayout), runs of flat
// indices along which each operand's offset advances by 0 or 1, and the
// classification the drivers use to pick the cheapest way to read it.
#ifndef MS_BCE_CPU_BROADCAST_H_
#define MS_BCE_CPU_BROADCAST_H_

#include <algorithm>
#include <cstdint>

#include "../common/broadcast.h"
#include "common.h"

namespace ms_bce {

// The merged iteration space of the input's shape and the broadcast
// operands (../common/broadcast.h), with the element count.
struct BroadcastLayout : MergedDims {
  int n_operands = 0;
  int64_t numel = 1;
};

inline BroadcastLayout make_layout(const Shape &out, const Shape *const *operands, int n_operands) {
  BroadcastLayout l;
  static_cast<MergedDims &>(l) = merge_broadcast_dims(out, operands, n_operands);
  l.n_operands = n_operands;
  l.numel = out.numel;
  return l;
}

// A run: `len` consecutive flat elements starting at `flat`, along which the
// broadcast operands advance by `step[k]` (0 or 1) from offset `off[k]`.
struct Run {
  int64_t flat;
  int64_t len;
  int64_t off[kMaxBroadcast];
  int64_t step[kMaxBroadcast];
};

// Calls fn(const Run&) for the runs covering flat indices [begin, end).
template <class Fn>
void for_each_run(const BroadcastLayout &l, int64_t begin, int64_t end, Fn &&fn) {
  if (begin >= end) return;
  const int last = l.rank - 1;
  int64_t idx[kMaxRank];
  int64_t off[kMaxBroadcast] = {0, 0};
  int64_t rem = begin;
  for (int d = last; d >= 0; --d) {
    idx[d] = rem % l.extent[d];
    rem /= l.extent[d];
    for (int k = 0; k < l.n_operands; ++k) off[k] += idx[d] * l.stride[k][d];
  }
  int64_t flat = begin;
  while (flat < end) {
    Run run;
    run.flat = flat;
    run.len = std::min(l.extent[last] - idx[last], end - flat);
    for (int k = 0; k < kMaxBroadcast; ++k) {
      run.off[k] = k < l.n_operands ? off[k] : 0;
      run.step[k] = k < l.n_operands ? l.stride[k][last] : 0;
    }
    fn(run);
    flat += run.len;
    // advance the multi-index past the run, carrying into outer dims
    for (int k = 0; k < l.n_operands; ++k) off[k] += run.len * l.stride[k][last];
    idx[last] += run.len;
    for (int d = last; d > 0 && idx[d] == l.extent[d]; --d) {
      for (int k = 0; k < l.n_operands; ++k) {
        off[k] -= l.extent[d] * l.stride[k][d];
        off[k] += l.stride[k][d - 1];
      }
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

// How a broadcast operand's offset follows the flat index f of the input.
enum class OperandKind {
  kFull,      // offset = f (no dimension broadcast)
  kScalar,    // one value
  kPeriodic,  // offset = f mod period: the operand is the input's trailing dims (per class, ...)
  kGeneral,   // anything else (per sample (N, 1), mixed): gathered through its strides
};

constexpr int64_t kPeriodMax = 4096;  // periodic operands up to this size are expanded once per chunk

struct OperandInfo {
  OperandKind kind = OperandKind::kFull;
  int64_t numel = 1;
  bool monotone = true;  // kGeneral: the offset never decreases as f grows
  BroadcastLayout layout;
};

inline OperandInfo classify_operand(const Shape &input, const Shape &operand) {
  OperandInfo info;
  info.numel = operand.numel;
  const Shape *ops[1] = {&operand};
  info.layout = make_layout(input, ops, 1);
  const BroadcastLayout &l = info.layout;
  if (operand.numel == input.numel) {
    info.kind = OperandKind::kFull;
  } else if (operand.numel == 1) {
    info.kind = OperandKind::kScalar;
  } else if (l.rank == 2 && l.stride[0][0] == 0 && l.stride[0][1] == 1 && operand.numel <= kPeriodMax) {
    info.kind = OperandKind::kPeriodic;
  } else {
    info.kind = OperandKind::kGeneral;
    for (int d = 1; d < l.rank; ++d) {
      if (l.stride[0][d - 1] < l.extent[d] * l.stride[0][d]) info.monotone = false;  // a carry goes back
    }
  }
  return info;
}

// Offset of flat index f in an operand (kGeneral, kPeriodic).
inline int64_t operand_offset(const BroadcastLayout &l, int64_t f) {
  int64_t off = 0;
  for (int d = l.rank - 1; d >= 0; --d) {
    off += (f % l.extent[d]) * l.stride[0][d];
    f /= l.extent[d];
  }
  return off;
}

}  // namespace ms_bce

#endif  // MS_BCE_CPU_BROADCAST_H_
