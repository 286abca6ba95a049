// The forward and backward drivers shared by every loss: argument checks,
// chunks on the thread pool, broadcast operands as float32 views, gradient
// sums over broadcast dimensions, deterministic reductions; and CpuEntry,
// the runner of the CPU library's entry points (../common/exports.h).  A
// loss supplies only its element maths, as a policy struct (segment.h); its
// .cc file ends by exporting its losses.def line:
//
//   #define MS_BCE_EXPORTS_<name> MS_BCE_SELECTED
//   #include "../common/export_losses.inc"
//
// Operand layout of the entry points: ../common/aot_abi.h.
#ifndef MS_BCE_CPU_LOSS_DRIVER_H_
#define MS_BCE_CPU_LOSS_DRIVER_H_

#include <tuple>
#include <vector>

#include "chunks.h"
#include "common.h"
#include "domain_check.h"
#include "operand_view.h"
#include "parallel.h"
#include "segment.h"

namespace ms_bce {

template <bool HW, bool HP, bool HM = false>
void operand_infos(const Shape *s, OperandInfo *w, OperandInfo *p, OperandInfo *m = nullptr) {
  constexpr OperandSet kOps{HW, HP, 0, HM};
  if (HW) *w = classify_operand(s[0], s[kOps.weight()]);
  if (HP) *p = classify_operand(s[0], s[kOps.pos_weight()]);
  if (HM) *m = classify_operand(s[0], s[kOps.mask()]);
}

// A masked 'mean''s divisor: the elements kept, the mask's own nonzero values
// times the number of elements each reaches (an exact quotient: the mask
// broadcasts to the input); 0 for an empty input (then 0/0 = NaN).
inline double kept_count(const void *mask, const Shape &shape, int64_t n) {
  if (shape.numel == 0 || n == 0) return 0.0;
  const uint8_t *m = static_cast<const uint8_t *>(mask);
  int64_t kept = 0, i = 0;
#if defined(MS_BCE_HAVE_AVX2_PATH)
  if (simd_path() == SimdPath::kAvx2) {  // whole blocks of 32 bytes; the loop below takes the rest
    i = shape.numel / 32 * 32;
    kept = avx2::count_nonzero_bytes(m, i);
  }
#endif
  for (; i < shape.numel; ++i) kept += m[i] != 0;
  return static_cast<double>(kept) * static_cast<double>(n / shape.numel);
}

// A segment's forward.  On the portable path, where a mask drops some of
// its elements (s.keep), with the stand-in weight ChunkOperands made,
// whatever HW (a dropped element's loss is 0 * finite: exactly 0, in a sum
// too), its 'none' values set to +0 there as well; the vector path does the
// same in its lanes (inputs_avx2.h).
template <class Loss, class T, bool HW, bool HP>
void forward_segment_with_options(const Segment<T> &s, bool vector) {
  if (s.keep == nullptr || vector) return forward_segment<Loss, T, HW, HP>(s, vector);
  forward_segment<Loss, T, true, HP>(s, vector);
  if (s.out) {
    for (int64_t i = 0; i < s.n; ++i) {
      if (s.keep[i] == 0.0f) s.out[i] = store_as<T>(0.0);
    }
  }
}

// A segment's backward, likewise: on the portable path each dropped
// element's gradients (and its weight/pos_weight contributions) set to +0,
// whatever the stand-ins gave and whatever the incoming gradient holds there
// (g_kept), and with label smoothing the target's gradient scaled.
template <class Loss, class T, bool HW, bool HP, int kOut>
void backward_segment_with_options(Segment<T> s, bool vector, T *g_kept, double eps) {
  if (vector) return backward_segment<Loss, T, HW, HP, kOut>(s, vector);
  if (s.keep && s.g) {  // a dropped element's incoming gradient: 0 (it may be inf)
    for (int64_t i = 0; i < s.n; ++i) g_kept[i] = s.keep[i] != 0.0f ? s.g[i] : store_as<T>(0.0);
    s.g = g_kept;
  }
  if (s.keep == nullptr) backward_segment<Loss, T, HW, HP, kOut>(s, vector);
  else backward_segment<Loss, T, true, HP, kOut>(s, vector);
  if (s.dy && eps != 0.0) scale_target_gradient(s.dy, s.n, eps);
  if (s.keep == nullptr) return;
  const T zero = store_as<T>(0.0);
  for (int64_t i = 0; i < s.n; ++i) {
    if (s.keep[i] != 0.0f) continue;
    if (s.dx) s.dx[i] = zero;
    if (s.dy) s.dy[i] = zero;
    if (s.dw) s.dw[i] = 0.0;
    if (s.dp) s.dp[i] = 0.0;
  }
}

template <class Loss, Reduction R, bool HW, bool HP, bool HM>
int forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  constexpr OperandSet kOps = kOperandsOf<Loss, HW, HP, HM>;
  constexpr int kIn = kOps.inputs();
  Args a;
  if (Status st = read_args(nparam, param_count(Direction::kForward, kOps), params, ndims, shapes, dtypes, &a,
                            kOps.theta(), kOps.mask())) {
    return st;
  }
  if (Status st = check_call_shapes(Direction::kForward, R, kOps, a.shape)) return st;
  const int64_t n = a.shape[0].numel;
  return guarded([&] {
    OperandInfo wi, pi, mi;
    operand_infos<HW, HP, HM>(a.shape, &wi, &pi, &mi);
    const int64_t chunks = chunk_count(n, nullptr, 0);
    const bool vector = has_vector_path<Loss>() && simd_path() == SimdPath::kAvx2;
    return dispatch_dtype(a.dtype, [&]<class T>() {
      const T *x = static_cast<const T *>(params[0]);
      T *out = static_cast<T *>(params[kIn]);
      const float *theta = theta_of(kOps, params);
      const double eps = label_smoothing_of<Loss>(theta);
      std::vector<double> partial(chunks, 0.0);
      DomainCheck<Loss, T> domain(chunks, true);
      const int st = run_chunks(chunks, [&](int64_t c) {
        int64_t begin, end;
        chunk_range(n, chunks, c, &begin, &end);
        ChunkOperands<T, HW, HP, HM> in(params, wi, pi, eps, vector, &mi);
        double chunk_sum = 0.0;  // this thread's own, stored once: partial[] shares cache lines between threads
        for (int64_t f0 = begin; f0 < end; f0 += kSegment) {
          Segment<T> s = in.segment(f0, end);
          if (!domain.segment_ok(c, x, f0, s.n, s.keep)) break;
          s.theta = theta;
          if (R == Reduction::kNone) s.out = out + f0;
          else s.sum = &chunk_sum;
          s.precise = R != Reduction::kNone && n <= kPreciseReductionMax;
          forward_segment_with_options<Loss, T, HW, HP>(s, vector);
        }
        partial[c] = chunk_sum;
      });
      if (st != kOk) return st;
      if (const int bad = domain.status(x)) return bad;
      if (R != Reduction::kNone) {
        const double sum = combine_in_order(partial);
        // mean of an empty tensor is 0/0 = NaN, its sum 0; a masked mean: over the kept elements
        const double count = HM ? kept_count(params[kOps.mask()], a.shape[kOps.mask()], n) : static_cast<double>(n);
        out[0] = store_as<T>(R == Reduction::kMean ? sum / count : sum);
      }
      return static_cast<int>(kOk);
    });
  });
}

// D: the fused backward or a one-output one; its gradients (GradOutput bits)
// are written to the outputs in that order.
template <class Loss, Reduction R, bool HW, bool HP, bool HM, Direction D>
int backward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  constexpr OperandSet kOps = kOperandsOf<Loss, HW, HP, HM>;
  constexpr int kOut = grad_outputs<HW, HP>(D);
  constexpr int kDout = kOps.inputs();
  constexpr bool kDx = kOut & kGradInput, kDy = kOut & kGradTarget;
  constexpr bool kDw = HW && (kOut & kGradWeight), kDp = HP && (kOut & kGradPosWeight);
  // output slot of each gradient
  constexpr int kSlotDy = kDout + 1 + kDx, kSlotDw = kSlotDy + kDy, kSlotDp = kSlotDw + kDw;
  Args a;
  if (Status st = read_args(nparam, param_count(D, kOps), params, ndims, shapes, dtypes, &a, kOps.theta(),
                            kOps.mask())) {
    return st;
  }
  if (Status st = check_call_shapes(D, R, kOps, a.shape)) return st;
  const int64_t n = a.shape[0].numel;
  return guarded([&] {
    OperandInfo wi, pi, mi;
    operand_infos<HW, HP, HM>(a.shape, &wi, &pi, &mi);
    OperandInfo reduced[2];
    int n_reduced = 0;
    if (kDw) reduced[n_reduced++] = wi;
    if (kDp) reduced[n_reduced++] = pi;
    const int64_t chunks = chunk_count(n, reduced, n_reduced);
    const bool vector = has_vector_path<Loss>() && simd_path() == SimdPath::kAvx2;
    return dispatch_dtype(a.dtype, [&]<class T>() {
      const T *x = static_cast<const T *>(params[0]);
      const T *dout = static_cast<const T *>(params[kDout]);
      const float *theta = theta_of(kOps, params);
      const double eps = label_smoothing_of<Loss>(theta);
      T *dx = kDx ? static_cast<T *>(params[kDout + 1]) : nullptr;
      T *dy = kDy ? static_cast<T *>(params[kSlotDy]) : nullptr;
      T *dw = kDw ? static_cast<T *>(params[kSlotDw]) : nullptr;
      T *dp = kDp ? static_cast<T *>(params[kSlotDp]) : nullptr;
      // for mean/sum the incoming gradient is one value, spread over all elements
      double g_all = 0.0;
      if (R != Reduction::kNone) {
        g_all = to_float(dout[0]);
        if (R == Reduction::kMean) {
          g_all /= HM ? kept_count(params[kOps.mask()], a.shape[kOps.mask()], n) : static_cast<double>(n);
        }
      }
      std::vector<ChunkGradient> wsum(dw && wi.kind != OperandKind::kFull ? chunks : 0);
      std::vector<ChunkGradient> psum(dp && pi.kind != OperandKind::kFull ? chunks : 0);
      // The one-output gradient kernels (graph mode, where the forward may be
      // pruned) check the domain; the fused backward does not: it serves
      // PyNative, which always runs the forward first, whose check reports the
      // error once (a second report would surface at a later, unrelated read).
      DomainCheck<Loss, T> domain(chunks, D != Direction::kBackward);
      const int st = run_chunks(chunks, [&](int64_t c) {
        int64_t begin, end;
        chunk_range(n, chunks, c, &begin, &end);
        ChunkOperands<T, HW, HP, HM> in(params, wi, pi, eps, vector, &mi);
        if (!wsum.empty()) wsum[c] = chunk_gradient(wi, begin, end);
        if (!psum.empty()) psum[c] = chunk_gradient(pi, begin, end);
        double cw[kSegment], cp[kSegment];
        std::vector<T> g_kept(HM && R == Reduction::kNone && !vector ? kSegment : 0);
        for (int64_t f0 = begin; f0 < end; f0 += kSegment) {
          Segment<T> s = in.segment(f0, end);
          if (!domain.segment_ok(c, x, f0, s.n, s.keep)) return;
          s.theta = theta;
          if (R == Reduction::kNone) s.g = dout + f0;
          s.g_scalar = g_all;
          if (dx) s.dx = dx + f0;
          if (dy) s.dy = dy + f0;
          if (dw) s.dw = cw;
          if (dp) s.dp = cp;
          backward_segment_with_options<Loss, T, HW, HP, kOut>(s, vector, g_kept.data(), eps);
          if (dw) {
            if (wi.kind == OperandKind::kFull) store_contributions(dw + f0, cw, s.n, vector);
            else add_contributions(wi, cw, f0, s.n, &wsum[c]);
          }
          if (dp) {
            if (pi.kind == OperandKind::kFull) store_contributions(dp + f0, cp, s.n, vector);
            else add_contributions(pi, cp, f0, s.n, &psum[c]);
          }
        }
        if (!wsum.empty()) fold_periodic(wi, &wsum[c]);
        if (!psum.empty()) fold_periodic(pi, &psum[c]);
      });
      if (st != kOk) return st;
      if (const int bad = domain.status(x)) return bad;
      // chunk sums combined in chunk order: the same bits whatever the threads
      for (auto [sums, out, numel] : {std::tuple{&wsum, dw, wi.numel}, std::tuple{&psum, dp, pi.numel}}) {
        if (out == nullptr || (sums->empty() && n > 0)) continue;  // absent, or written in place
        std::vector<double> total(numel, 0.0);
        for (const ChunkGradient &g : *sums) {
          for (size_t i = 0; i < g.sum.size(); ++i) total[g.lo + i] += g.sum[i];
        }
        for (int64_t i = 0; i < numel; ++i) out[i] = store_as<T>(total[i]);
      }
      return static_cast<int>(kOk);
    });
  });
}

// The runner of the CPU library's entry points: the driver of direction D;
// kOutOfRange reaches MindSpore's launcher as an exception (report()).
struct CpuEntry {
  template <class Loss, Direction D, Reduction R, bool HW, bool HP, bool HM>
  static int run(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream,
                 void *extra) {
    (void)stream;
    if constexpr (D == Direction::kForward) {
      return report(forward<Loss, R, HW, HP, HM>(nparam, params, ndims, shapes, dtypes), extra);
    } else {
      return report(backward<Loss, R, HW, HP, HM, D>(nparam, params, ndims, shapes, dtypes), extra);
    }
  }
};

}  // namespace ms_bce

// What ../common/export_losses.inc generates the CPU entry points from.
#define MS_BCE_RUNNER ms_bce::CpuEntry
#define MS_BCE_POLICY_NAMESPACE ms_bce

#endif  // MS_BCE_CPU_LOSS_DRIVER_H_
