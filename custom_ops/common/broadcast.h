// The iteration space of the input's shape with up to two operands (weight,
// pos_weight) broadcast to it and read in place through element strides (0
// along broadcast dimensions), shared by the CPU and the GPU library
// (host-only C++17).  Adjacent dimensions that every operand walks
// contiguously are merged, so a full-size or 0-d operand gives one flat
// dimension and a per-class vector gives two.
#ifndef MS_BCE_COMMON_BROADCAST_H_
#define MS_BCE_COMMON_BROADCAST_H_

#include <cstdint>

#include "aot_abi.h"

namespace ms_bce {

constexpr int kMaxBroadcast = 2;

struct MergedDims {
  int rank = 0;  // merged dimensions, >= 1 once made
  int64_t extent[kMaxRank] = {};
  int64_t stride[kMaxBroadcast][kMaxRank] = {};
};

inline MergedDims merge_broadcast_dims(const Shape &out, const Shape *const *operands, int n_operands) {
  int64_t raw[kMaxBroadcast][kMaxRank] = {};
  for (int k = 0; k < n_operands; ++k) {
    const Shape &s = *operands[k];
    const int lead = out.rank - s.rank;
    int64_t step = 1;
    for (int d = out.rank - 1; d >= 0; --d) {
      const int64_t own = d >= lead ? s.dims[d - lead] : 1;
      raw[k][d] = (own == 1 && out.dims[d] != 1) ? 0 : step;
      step *= own;
    }
  }
  MergedDims l;
  for (int d = 0; d < out.rank; ++d) {
    if (out.dims[d] == 1) continue;  // size-1 dims carry no iteration
    bool merge = l.rank > 0;
    for (int k = 0; k < n_operands && merge; ++k) merge = l.stride[k][l.rank - 1] == raw[k][d] * out.dims[d];
    if (merge) {
      l.extent[l.rank - 1] *= out.dims[d];
      for (int k = 0; k < n_operands; ++k) l.stride[k][l.rank - 1] = raw[k][d];
    } else {
      l.extent[l.rank] = out.dims[d];
      for (int k = 0; k < n_operands; ++k) l.stride[k][l.rank] = raw[k][d];
      ++l.rank;
    }
  }
  if (l.rank == 0) {  // 0-d or all-ones shape: one element
    l.rank = 1;
    l.extent[0] = 1;
    for (int k = 0; k < n_operands; ++k) l.stride[k][0] = 0;
  }
  return l;
}

}  // namespace ms_bce

#endif  // MS_BCE_COMMON_BROADCAST_H_
