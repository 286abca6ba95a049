// The tiling arithmetic of ms_bce's Ascend C operators, as plain C++17 with
// no CANN dependency: BceTiling (op_host/bce_op_def.h) calls it with the
// shapes and the platform's core count and UB size, and the test suite
// compiles it on the host (tests/native/ascend_tiling_check.cc) and checks it
// for any size, tail blocks and every broadcast case.
//
// The plan, for an input x of n elements (weight w and pos_weight p
// broadcast to x, read in place):
// - cores: x is split into blockDim contiguous ranges of perCore elements
//   (a multiple of kAlignElems, so every range starts 256-byte aligned; the
//   last range is shorter, possibly by more than a tile), blockDim <= cores;
// - tiles: each range is processed in tiles of tileLen elements (a multiple
//   of kAlignElems sized so the kernel's buffers fit in UB); the last tile
//   of a range is the tail, of length (len - 1) % tileLen + 1;
// - broadcast operands: their element offsets follow the merged broadcast
//   layout (extent, strides; 0 along broadcast dimensions); a full-size
//   operand is copied tile by tile, a one-element operand duplicated, any
//   other gathered element by element (from a copy in UB when it fits);
// - sums ('mean'/'sum', and the gradients of broadcast operands): each core
//   sums its range in a fixed order into its own slot of the workspace; after
//   a barrier the slots are added in core order.  Deterministic for a given
//   core count; no atomics.
#ifndef MS_BCE_ASCEND_BCE_TILING_MATH_H_
#define MS_BCE_ASCEND_BCE_TILING_MATH_H_

#include <cstdint>

#include "../op_kernel/bce_walker.h"  // the enums and constants the kernel shares

namespace ms_bce_ascend {

constexpr int64_t kMinPerCore = 4096;            // below this per core, use fewer cores
constexpr int64_t kMaxTile = 8192;
constexpr int64_t kUbReserveBytes = 16 * 1024;   // ReduceSum work area, scalars, alignment slack
constexpr int64_t kUbOperandBytes = 16 * 1024;   // a broadcast operand is kept in UB up to this size
constexpr int64_t kUbAccumBytes = 32 * 1024;     // a broadcast gradient is summed in UB up to this size
constexpr int64_t kMinWorkspaceBudget = int64_t{1} << 20;

struct Dims {
  int32_t rank = 0;
  int64_t d[kMaxDims] = {};
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= d[i];
    return n;
  }
};

// Everything the kernel needs (op_host copies it field by field into the
// registered TilingData, op_host/bce_tiling.h).
struct TilingPlan {
  int64_t n = 0;          // elements of x
  int64_t blockDim = 1;   // cores used
  int64_t perCore = 0;    // elements per core (the last core: the rest)
  int64_t tileLen = kAlignElems;
  // merged broadcast layout of w and p over x
  int32_t rank = 1;
  int64_t extent[kMaxDims] = {};
  int64_t wStride[kMaxDims] = {};
  int64_t pStride[kMaxDims] = {};
  int64_t wNumel = 0, pNumel = 0;
  int32_t wMode = kAbsent, pMode = kAbsent;
  int32_t dwMode = kNoGrad, dpMode = kNoGrad;
  // user workspace (bytes): per-core partial sums
  int64_t wsLoss = 0;     // blockDim slots of kPartialAlign floats ('mean'/'sum')
  int64_t wsDw = 0;       // blockDim slots of wSlot floats
  int64_t wsDp = 0;
  int64_t wSlot = 0, pSlot = 0;  // floats per core slot (numel rounded up to kPartialAlign)
  int64_t wsBytes = 0;
  int64_t ubBytes = 0;    // UB the kernel will use (for the tests)
};

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }

// numpy broadcasting of `operand` to exactly `x`
inline bool BroadcastsTo(const Dims &operand, const Dims &x) {
  if (operand.rank > x.rank) return false;
  const int lead = x.rank - operand.rank;
  for (int i = 0; i < operand.rank; ++i) {
    if (operand.d[i] != 1 && operand.d[i] != x.d[lead + i]) return false;
  }
  return true;
}

// The merged layout: dims of x (size-1 ones dropped) with the element
// strides of weight and pos_weight (those present), adjacent dims merged
// where every operand walks them contiguously (the CPU and GPU libraries'
// rule).  An absent operand has stride 0 everywhere and does not constrain
// merging.
inline void MakeLayout(const Dims &x, const Dims *w, const Dims *p, TilingPlan *plan) {
  const Dims *ops[2] = {w, p};
  int64_t raw[2][kMaxDims] = {};
  for (int k = 0; k < 2; ++k) {
    if (!ops[k]) continue;
    const int lead = x.rank - ops[k]->rank;
    int64_t step = 1;
    for (int dim = x.rank - 1; dim >= 0; --dim) {
      const int64_t own = dim >= lead ? ops[k]->d[dim - lead] : 1;
      raw[k][dim] = (own == 1 && x.d[dim] != 1) ? 0 : step;
      step *= own;
    }
  }
  int64_t *strides[2] = {plan->wStride, plan->pStride};
  int rank = 0;
  for (int dim = 0; dim < x.rank; ++dim) {
    if (x.d[dim] == 1) continue;
    bool merge = rank > 0;
    for (int k = 0; k < 2 && merge; ++k) {
      if (ops[k]) merge = strides[k][rank - 1] == raw[k][dim] * x.d[dim];
    }
    if (merge) {
      plan->extent[rank - 1] *= x.d[dim];
      for (int k = 0; k < 2; ++k) strides[k][rank - 1] = raw[k][dim];
    } else {
      plan->extent[rank] = x.d[dim];
      for (int k = 0; k < 2; ++k) strides[k][rank] = raw[k][dim];
      ++rank;
    }
  }
  if (rank == 0) {  // 0-d or all-ones shape: one element
    rank = 1;
    plan->extent[0] = 1;
    plan->wStride[0] = plan->pStride[0] = 0;
  }
  plan->rank = rank;
}

// UB bytes per tile element: inputs staged in their dtype, float32 working
// buffers (the kernel's BufferPlan must match), outputs staged in the dtype.
inline int64_t UbBytesPerElement(int32_t dir, int dtypeBytes) {
  return dir == kForward ? 5 * dtypeBytes + 12 * 4 + 1 * dtypeBytes + 1     // x y w p | 12 f32 | out | masks
                        : 5 * dtypeBytes + 20 * 4 + 4 * dtypeBytes + 1;    // x y w p g | 20 f32 | 4 grads
}

inline int32_t OperandModeOf(bool present, int64_t numel, int64_t n, int dtypeBytes) {
  if (!present) return kAbsent;
  if (numel == n) return kFull;
  if (numel == 1) return kOneElement;
  return numel * dtypeBytes <= kUbOperandBytes ? kGatherUb : kGatherGm;
}

// Fills plan; returns nullptr, or what is wrong with the shapes.
inline const char *MakeTiling(const Dims &x, const Dims &y, const Dims *w, const Dims *p, int32_t dir, int32_t red,
                              int dtypeBytes, int64_t cores, int64_t ubBytes, TilingPlan *plan) {
  *plan = TilingPlan();
  if (dir != kForward && dir != kBackward) return "unknown direction";
  if (red != kNone && red != kMean && red != kSum) return "unknown reduction";
  if (x.rank < 0 || x.rank > kMaxDims || y.rank != x.rank) return "the shape of 'target' differs from 'input'";
  for (int i = 0; i < x.rank; ++i) {
    if (x.d[i] < 0) return "negative dimension";
    if (y.d[i] != x.d[i]) return "the shape of 'target' differs from 'input'";
  }
  if (w && !BroadcastsTo(*w, x)) return "'weight' does not broadcast to 'input'";
  if (p && !BroadcastsTo(*p, x)) return "'pos_weight' does not broadcast to 'input'";
  if (cores < 1) cores = 1;
  const int64_t n = x.numel();
  plan->n = n;

  MakeLayout(x, w, p, plan);
  plan->wNumel = w ? w->numel() : 0;
  plan->pNumel = p ? p->numel() : 0;
  plan->wMode = OperandModeOf(w != nullptr, plan->wNumel, n, dtypeBytes);
  plan->pMode = OperandModeOf(p != nullptr, plan->pNumel, n, dtypeBytes);

  // gradients of w and p (backward only): element-wise when full-size, else sums
  if (dir == kBackward) {
    const auto gradMode = [&](bool present, int64_t numel) -> int32_t {
      if (!present) return kNoGrad;
      if (numel == n && n > 0) return kDirect;
      return 2 * numel * 4 <= kUbAccumBytes ? kAccumUb : kAccumGm;  // value and compensation
    };
    plan->dwMode = gradMode(w != nullptr, plan->wNumel);
    plan->dpMode = gradMode(p != nullptr, plan->pNumel);
  }

  // cores: contiguous, 64-element-aligned ranges of at least kMinPerCore
  int64_t blockDim = n == 0 ? 1 : CeilDiv(n, kMinPerCore);
  if (blockDim > cores) blockDim = cores;
  const bool reducesW = plan->dwMode == kAccumUb || plan->dwMode == kAccumGm;
  const bool reducesP = plan->dpMode == kAccumUb || plan->dpMode == kAccumGm;
  plan->wSlot = reducesW ? RoundUp(plan->wNumel, kPartialAlign) : 0;
  plan->pSlot = reducesP ? RoundUp(plan->pNumel, kPartialAlign) : 0;
  if (reducesW || reducesP) {
    // each core keeps a partial of the gradient: bound the workspace by
    // max(the input's size, 1 MiB), using fewer cores for large operands
    int64_t budget = n * dtypeBytes;
    if (budget < kMinWorkspaceBudget) budget = kMinWorkspaceBudget;
    int64_t perCoreBytes = (plan->wSlot + plan->pSlot) * 4;
    int64_t affordable = budget / perCoreBytes;
    if (affordable < 1) affordable = 1;
    if (blockDim > affordable) blockDim = affordable;
  }
  plan->perCore = n == 0 ? 0 : RoundUp(CeilDiv(n, blockDim), kAlignElems);
  plan->blockDim = n == 0 ? 1 : CeilDiv(n, plan->perCore);  // no core without elements

  // tiles: as long as the buffers allow, a multiple of kAlignElems
  int64_t fixed = kUbReserveBytes;
  if (plan->wMode == kGatherUb) fixed += RoundUp(plan->wNumel * dtypeBytes, 32);
  if (plan->pMode == kGatherUb) fixed += RoundUp(plan->pNumel * dtypeBytes, 32);
  if (plan->dwMode == kAccumUb) fixed += 2 * plan->wSlot * 4;
  if (plan->dpMode == kAccumUb) fixed += 2 * plan->pSlot * 4;
  const int64_t perElement = UbBytesPerElement(dir, dtypeBytes);
  int64_t tile = (ubBytes - fixed) / perElement / kAlignElems * kAlignElems;
  if (tile > kMaxTile) tile = kMaxTile;
  if (tile < kAlignElems) return "the unified buffer is too small for one tile";
  const int64_t longest = plan->perCore > 0 ? RoundUp(plan->perCore, kAlignElems) : kAlignElems;
  if (tile > longest) tile = longest;  // no tile longer than a core's range
  plan->tileLen = tile;
  plan->ubBytes = fixed + tile * perElement;

  // workspace: per-core partial sums
  int64_t offset = 0;
  if (dir == kForward && red != kNone) {
    plan->wsLoss = offset;
    offset += plan->blockDim * kPartialAlign * 4;
  }
  if (reducesW) {
    plan->wsDw = offset;
    offset += plan->blockDim * plan->wSlot * 4;
  }
  if (reducesP) {
    plan->wsDp = offset;
    offset += plan->blockDim * plan->pSlot * 4;
  }
  plan->wsBytes = offset;
  return nullptr;
}

// The range of core `core` and the tiles in it.
inline void CoreRange(const TilingPlan &plan, int64_t core, int64_t *begin, int64_t *len) {
  *begin = core * plan.perCore;
  int64_t rest = plan.n - *begin;
  if (rest < 0) rest = 0;
  *len = rest < plan.perCore ? rest : plan.perCore;
}

inline int64_t TileCount(const TilingPlan &plan, int64_t coreLen) { return CeilDiv(coreLen, plan.tileLen); }

inline int64_t TileLength(const TilingPlan &plan, int64_t coreLen, int64_t tile) {
  const int64_t rest = coreLen - tile * plan.tileLen;
  return rest < plan.tileLen ? rest : plan.tileLen;
}

}  // namespace ms_bce_ascend

#endif  // MS_BCE_ASCEND_BCE_TILING_MATH_H_
