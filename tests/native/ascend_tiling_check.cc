// The Ascend C operators' host-testable parts compiled with g++ (no CANN),
// for tests/test_ascend_tiling.py: the tiling arithmetic
// (custom_ops/ascend/op_host/bce_tiling_math.h) and the kernel's index walk
// and range helpers (custom_ops/ascend/op_kernel/bce_walker.h), plus an
// emulation of how the kernel sums broadcast gradients per core and
// combines the core partials -- the kernel's loops with its vector maths
// replaced by given per-element values.
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../custom_ops/ascend/op_host/bce_tiling_math.h"

using namespace ms_bce_ascend;

#define CHECK_API extern "C" __attribute__((visibility("default")))

namespace {

Dims make_dims(int rank, const int64_t *d) {
  Dims out;
  out.rank = rank;
  for (int i = 0; i < rank; ++i) out.d[i] = d[i];
  return out;
}

// w_rank / p_rank < 0: operand absent
const char *plan_of(int x_rank, const int64_t *x, int w_rank, const int64_t *w, int p_rank, const int64_t *p, int dir,
                    int red, int dtype_bytes, int64_t cores, int64_t ub, TilingPlan *plan) {
  const Dims xd = make_dims(x_rank, x);
  const Dims wd = make_dims(w_rank < 0 ? 0 : w_rank, w);
  const Dims pd = make_dims(p_rank < 0 ? 0 : p_rank, p);
  return MakeTiling(xd, xd, w_rank < 0 ? nullptr : &wd, p_rank < 0 ? nullptr : &pd, dir, red, dtype_bytes, cores, ub,
                    plan);
}

}  // namespace

// The plan as numbers: n, blockDim, perCore, tileLen, rank, wMode, pMode,
// dwMode, dpMode, wNumel, pNumel, wSlot, pSlot, wsLoss, wsDw, wsDp, wsBytes,
// ubBytes; then extent[16], wStride[16], pStride[16].  Returns 0, or 1 with
// the error in msg.
CHECK_API int ascend_plan(int x_rank, const int64_t *x, int w_rank, const int64_t *w, int p_rank, const int64_t *p,
                          int dir, int red, int dtype_bytes, int64_t cores, int64_t ub, int64_t *out, char *msg,
                          int msg_len) {
  TilingPlan plan;
  const char *err = plan_of(x_rank, x, w_rank, w, p_rank, p, dir, red, dtype_bytes, cores, ub, &plan);
  if (err != nullptr) {
    std::strncpy(msg, err, static_cast<size_t>(msg_len - 1));
    msg[msg_len - 1] = '\0';
    return 1;
  }
  const int64_t v[] = {plan.n, plan.blockDim, plan.perCore, plan.tileLen, plan.rank, plan.wMode, plan.pMode,
                       plan.dwMode, plan.dpMode, plan.wNumel, plan.pNumel, plan.wSlot, plan.pSlot, plan.wsLoss,
                       plan.wsDw, plan.wsDp, plan.wsBytes, plan.ubBytes};
  int k = 0;
  for (int64_t e : v) out[k++] = e;
  for (int i = 0; i < kMaxDims; ++i) out[k++] = plan.extent[i];
  for (int i = 0; i < kMaxDims; ++i) out[k++] = plan.wStride[i];
  for (int i = 0; i < kMaxDims; ++i) out[k++] = plan.pStride[i];
  return 0;
}

// Walks every core and tile as the kernel does (CoreBegin/CoreLength/TileLen,
// Seek at each tile's start, Advance per element) and records, per flat
// index, the weight and pos_weight offsets, the core and the tile; counts
// visits.  Also checks the kernel's range helpers against the host's.
// Returns the number of inconsistencies found (0 expected).
CHECK_API int64_t ascend_walk(int x_rank, const int64_t *x, int w_rank, const int64_t *w, int p_rank,
                              const int64_t *p, int dir, int red, int dtype_bytes, int64_t cores, int64_t ub,
                              int64_t *w_off, int64_t *p_off, int64_t *core_of, int64_t *visits) {
  TilingPlan plan;
  if (plan_of(x_rank, x, w_rank, w, p_rank, p, dir, red, dtype_bytes, cores, ub, &plan) != nullptr) return -1;
  int64_t bad = 0;
  OperandWalker ww, pw;
  ww.Init(plan.rank, plan.extent, plan.wStride);
  pw.Init(plan.rank, plan.extent, plan.pStride);
  for (int64_t core = 0; core < plan.blockDim; ++core) {
    int64_t begin, len;
    CoreRange(plan, core, &begin, &len);
    if (begin != CoreBegin(plan.perCore, core) || len != CoreLength(plan.n, plan.perCore, core)) ++bad;
    const int64_t tiles = TileCount(plan, len);
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t count = TileLen(len, plan.tileLen, t);
      if (count != TileLength(plan, len, t) || count < 1 || count > plan.tileLen) ++bad;
      const int64_t start = begin + t * plan.tileLen;
      ww.Seek(start);
      pw.Seek(start);
      for (int64_t i = 0; i < count; ++i, ww.Advance(), pw.Advance()) {
        const int64_t flat = start + i;
        if (flat < 0 || flat >= plan.n) {
          ++bad;
          continue;
        }
        w_off[flat] = ww.off;
        p_off[flat] = pw.off;
        core_of[flat] = core;
        ++visits[flat];
      }
    }
  }
  return bad;
}

// How the kernel forms the gradient of a broadcast operand (operand = 0:
// weight, 1: pos_weight) from per-element contributions: each core sums its
// elements in order into its workspace slot (Kahan, in float32 as the
// kernel does -- or in double when in_double), then every core combines
// its share of the operand's elements over the cores in core order.
// Returns the number of inconsistencies found.
CHECK_API int64_t ascend_grad_sum(int x_rank, const int64_t *x, int w_rank, const int64_t *w, int p_rank,
                                  const int64_t *p, int dtype_bytes, int64_t cores, int64_t ub, int operand,
                                  const double *contrib, double *grad, int in_double) {
  TilingPlan plan;
  if (plan_of(x_rank, x, w_rank, w, p_rank, p, kBackward, kSum, dtype_bytes, cores, ub, &plan) != nullptr) return -1;
  const int32_t mode = operand == 0 ? plan.dwMode : plan.dpMode;
  const int64_t numel = operand == 0 ? plan.wNumel : plan.pNumel;
  const int64_t slot = operand == 0 ? plan.wSlot : plan.pSlot;
  const int64_t ws_base = operand == 0 ? plan.wsDw : plan.wsDp;
  int64_t bad = 0;
  if (mode != kAccumUb && mode != kAccumGm) return -2;
  if (slot < numel || slot % kPartialAlign != 0) ++bad;
  // the workspace, as floats (double when in_double)
  std::vector<double> ws(static_cast<size_t>(plan.wsBytes / 4), 0.0);
  OperandWalker walker;
  walker.Init(plan.rank, plan.extent, operand == 0 ? plan.wStride : plan.pStride);
  for (int64_t core = 0; core < plan.blockDim; ++core) {
    int64_t begin, len;
    CoreRange(plan, core, &begin, &len);
    std::vector<float> s(static_cast<size_t>(slot), 0.0f), c(static_cast<size_t>(slot), 0.0f);
    std::vector<double> sd(static_cast<size_t>(slot), 0.0);
    for (int64_t t = 0; t < TileCount(plan, len); ++t) {
      const int64_t start = begin + t * plan.tileLen;
      walker.Seek(start);
      for (int64_t i = 0; i < TileLen(len, plan.tileLen, t); ++i, walker.Advance()) {
        const int64_t off = walker.off;
        if (off < 0 || off >= numel) {
          ++bad;
          continue;
        }
        const double v = contrib[start + i];
        if (in_double) {
          sd[off] += v;
        } else {  // KahanAdd of the kernel
          const float y = static_cast<float>(v) - c[off];
          const float tt = s[off] + y;
          c[off] = (tt - s[off]) - y;
          s[off] = tt;
        }
      }
    }
    const int64_t base = (ws_base / 4) + core * slot;
    if ((base + slot) * 4 > plan.wsBytes) ++bad;
    for (int64_t j = 0; j < slot; ++j) {
      ws[static_cast<size_t>(base + j)] = in_double ? sd[j] : static_cast<double>(s[j] - c[j]);
    }
  }
  // CombineGradient: shares of the operand, cores added in order
  std::vector<int64_t> written(static_cast<size_t>(numel), 0);
  const int64_t share = AlignUp((numel + plan.blockDim - 1) / plan.blockDim, kPartialAlign);
  for (int64_t core = 0; core < plan.blockDim; ++core) {
    const int64_t first = core * share;
    const int64_t last = first + share < numel ? first + share : numel;
    for (int64_t j = first; j < last; ++j) {
      double acc = ws[static_cast<size_t>(ws_base / 4 + j)];
      if (!in_double) acc = static_cast<float>(acc);
      for (int64_t k = 1; k < plan.blockDim; ++k) {
        const double part = ws[static_cast<size_t>(ws_base / 4 + k * slot + j)];
        acc = in_double ? acc + part : static_cast<double>(static_cast<float>(acc) + static_cast<float>(part));
      }
      grad[j] = acc;
      ++written[static_cast<size_t>(j)];
    }
  }
  for (int64_t j = 0; j < numel; ++j) {
    if (written[static_cast<size_t>(j)] != 1) ++bad;
  }
  return bad;
}

CHECK_API uint32_t ascend_half_bits_to_float_bits(uint16_t h) { return HalfBitsToFloatBits(h); }
