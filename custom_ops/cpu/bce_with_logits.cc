// BCEWithLogitsLoss on the CPU: its AVX2 path and its entry points (forward,
// the fused and the one-output backwards).  The element maths, and the
// portable path, are ../common/element_math.h's (shared with the GPU):
//   L  = W * [ (1 - Y) * sp(X) + P * Y * sp(-X) ],  sp(z) = max(z, 0) + log1p(exp(-|z|))
// which keeps full relative accuracy in both tails, unlike the seeds'
// (1 - Y) X + (1 + (P - 1) Y) sp(-X).
#include "inputs_avx2.h"
#include "lanes_avx2.h"
#include "loss_driver.h"

namespace ms_bce {

struct BceWithLogits : element::BceWithLogits {
  template <class T, bool HW, bool HP>
  static void forward_avx2(const Segment<T> &s);
  template <class T, bool HW, bool HP, int kOut>
  static void backward_avx2(const Segment<T> &s);
};

#if defined(MS_BCE_HAVE_AVX2_PATH)
MS_BCE_AVX2_BEGIN

// The portable path's steps, 8 lanes (../common/element_math.h): the loss
// and the gradient of the logits in float32 (../common/bce_with_logits_math.inc,
// written once over a lane type: within ~3.6 ulp of its terms' size; dX's
// G W as an exact float32 pair, scale_by_gw); a vector with a lane the portable path would redo in
// double (NaN, infinite, below 2^-100, |x| > kFarTail) is redone in double,
// with mul0's conventions.  The other gradients compute exp(-|x|), log1p and
// 1/(1 + e) in float32 (<= 1.08, 1.00 and 0.5 ulp), every product and sum
// after them in double, rounded once: each result within ~2.6 ulp of its
// terms' size.  Small 'mean'/'sum' reductions compute everything in double
// (Segment::precise, kPreciseReductionMax).
namespace avx2 {
#define MS_BCE_VMATH_FN MS_BCE_VINLINE
#include "../common/bce_with_logits_math.inc"
#undef MS_BCE_VMATH_FN
}  // namespace avx2

namespace logits_avx2 {
using namespace avx2;

// True when a float32 vector must be redone in double (the forward's and
// dX's one test): a lane with |x| > element::kFarTail or NaN, or where u (the
// unweighted loss or dX) or r (its weighted value) is what element::suspect()
// names: NaN, infinite (an intermediate may have overflowed where the result
// does not: P = 3.3e38, Y = 1.2) or below 2^-100.  r's NaN shows in
// min(|u|, |r|), which is |r| where either is NaN.  Such results arise only
// from extreme operands, so this is rare.
// The lanes with |x| > element::kFarTail or x NaN.
MS_BCE_VINLINE __m256 far_lanes(__m256 x) {
  return _mm256_cmp_ps(abs(x), splat(element::kFarTail), _CMP_NLE_UQ);
}

MS_BCE_VINLINE bool redo(__m256 x, __m256 u, __m256 r) {
  const __m256 ar = abs(r);
  const __m256 small = _mm256_cmp_ps(_mm256_min_ps(abs(u), ar), splat(element::kTiny), _CMP_NGE_UQ);
  const __m256 inf = _mm256_cmp_ps(ar, splat(INFINITY), _CMP_EQ_OQ);
  return _mm256_movemask_ps(_mm256_or_ps(_mm256_or_ps(far_lanes(x), small), inf)) != 0;
}

// The lanes element::suspect() names: NaN, infinite or below element::kTiny.
MS_BCE_VINLINE __m256 suspect_lanes(__m256 v) {
  const __m256 a = abs(v);
  return _mm256_or_ps(_mm256_cmp_ps(a, splat(element::kTiny), _CMP_NGE_UQ),
                      _mm256_cmp_ps(a, splat(INFINITY), _CMP_EQ_OQ));
}

// The exact test, run only where redo() fired: the lanes that are far, have
// a suspect u, or a suspect weighted part (r_bad) other than an exact zero
// (exact_zero: the result is 0 because a weight or an incoming gradient is
// exactly 0, mul0's 0), so masked weights keep the float32 path.
MS_BCE_VINLINE bool redo_lanes(__m256 x, __m256 u, __m256 r_bad, __m256 exact_zero) {
  const __m256 bad = _mm256_or_ps(_mm256_or_ps(far_lanes(x), suspect_lanes(u)), _mm256_andnot_ps(exact_zero, r_bad));
  return _mm256_movemask_ps(bad) != 0;
}

MS_BCE_VINLINE __m256 is_zero(__m256 v) { return _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_EQ_OQ); }

MS_BCE_VINLINE __m256d max0_pd(__m256d v) { return _mm256_max_pd(v, _mm256_setzero_pd()); }
MS_BCE_VINLINE __m256d neg_pd(__m256d v) { return _mm256_xor_pd(v, splat_pd(-0.0)); }
MS_BCE_VINLINE bool any_nan_pd(__m256d v) { return _mm256_movemask_pd(is_nan_pd(v)) != 0; }

// The loss of 4 elements in double from x and l = log1p(exp(-|x|)).
MS_BCE_VINLINE __m256d loss_from_log1p(__m256d x, __m256d y, __m256d w, __m256d p, __m256d l, bool weighted) {
  const __m256d sp_pos = _mm256_add_pd(max0_pd(x), l);  // softplus(x)
  const __m256d sp_neg = _mm256_add_pd(max0_pd(neg_pd(x)), l);  // softplus(-x)
  const __m256d omy = _mm256_sub_pd(splat_pd(1.0), y);
  __m256d r = _mm256_fmadd_pd(omy, sp_pos, _mm256_mul_pd(_mm256_mul_pd(p, y), sp_neg));
  if (weighted) r = _mm256_mul_pd(w, r);
  if (!any_nan_pd(r)) return r;
  r = _mm256_add_pd(mul0_pd(omy, sp_pos), mul0_pd(mul0_pd(p, y), sp_neg));
  return weighted ? mul0_pd(w, r) : r;
}

// True when a lane's |x| > element::kFarTail (exp(-|x|) subnormal in
// float32): such vectors take exp and log1p in double.
MS_BCE_VINLINE bool any_far_tail(__m256 x) {
  return _mm256_movemask_ps(_mm256_cmp_ps(abs(x), splat(element::kFarTail), _CMP_GT_OQ)) != 0;
}

// e = exp(-|x|), r = 1 / (1 + e) and l = log1p(e) of 4 lanes, in double.
MS_BCE_VINLINE void logistic_pd(__m256d x, __m256d *e, __m256d *r, __m256d *l) {
  *e = exp_nonpos_pd(_mm256_or_pd(x, splat_pd(-0.0)));
  *r = _mm256_div_pd(splat_pd(1.0), _mm256_add_pd(splat_pd(1.0), *e));
  *l = log1p_unit_pd(*e);
}

// The loss of 4 elements in double throughout (small reductions, far tails, redone vectors).
MS_BCE_VINLINE __m256d loss_precise(__m256d x, __m256d y, __m256d w, __m256d p, bool weighted) {
  const __m256d l = log1p_unit_pd(exp_nonpos_pd(_mm256_or_pd(x, splat_pd(-0.0))));
  return loss_from_log1p(x, y, w, p, l, weighted);
}

// The kOut gradients (GradOutput bits) of 4 elements from e = exp(-|x|),
// r = 1/(1 + e) (when dx is wanted) and l = log1p(e) (when another is).
template <int kOut>
MS_BCE_VINLINE void grads(__m256d x, __m256d y, __m256d w, __m256d p, __m256d g, __m256d e, __m256d r, __m256d l,
                  __m256d *dx, __m256d *dy, __m256d *dw, __m256d *dp) {
  constexpr bool kDx = kOut & kGradInput, kSoftplus = kOut & ~kGradInput;
  const __m256d omy = _mm256_sub_pd(splat_pd(1.0), y);
  const __m256d py = _mm256_mul_pd(p, y);
  const __m256d gw = _mm256_mul_pd(g, w);
  __m256d sig_pos, sig_neg, sp_pos, sp_neg;
  __m256d nan = _mm256_setzero_pd();
  if constexpr (kDx) {
    const __m256d er = _mm256_mul_pd(e, r);
    const __m256d nonneg = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_GE_OQ);
    sig_pos = _mm256_blendv_pd(er, r, nonneg);
    sig_neg = _mm256_blendv_pd(r, er, nonneg);
    *dx = _mm256_mul_pd(gw, _mm256_fmsub_pd(omy, sig_pos, _mm256_mul_pd(py, sig_neg)));
    nan = _mm256_or_pd(nan, *dx);
  }
  if constexpr (kSoftplus) {
    sp_pos = _mm256_add_pd(max0_pd(x), l);
    sp_neg = _mm256_add_pd(max0_pd(neg_pd(x)), l);
  }
  if constexpr (kOut & kGradTarget) {
    *dy = _mm256_mul_pd(gw, _mm256_fmsub_pd(p, sp_neg, sp_pos));
    nan = _mm256_or_pd(nan, *dy);
  }
  if constexpr (kOut & kGradWeight) {
    *dw = _mm256_mul_pd(g, _mm256_fmadd_pd(omy, sp_pos, _mm256_mul_pd(py, sp_neg)));
    nan = _mm256_or_pd(nan, *dw);
  }
  if constexpr (kOut & kGradPosWeight) {
    *dp = _mm256_mul_pd(gw, _mm256_mul_pd(y, sp_neg));
    nan = _mm256_or_pd(nan, *dp);
  }
  if (!any_nan_pd(nan)) return;  // NaN in any output (or of NaN bits) shows here
  const __m256d py0 = mul0_pd(p, y);
  if constexpr (kDx) *dx = mul0_pd(g, mul0_pd(w, _mm256_sub_pd(mul0_pd(omy, sig_pos), mul0_pd(py0, sig_neg))));
  if constexpr (kOut & kGradTarget) *dy = mul0_pd(g, mul0_pd(w, _mm256_sub_pd(mul0_pd(p, sp_neg), sp_pos)));
  if constexpr (kOut & kGradWeight) *dw = mul0_pd(g, _mm256_add_pd(mul0_pd(omy, sp_pos), mul0_pd(py0, sp_neg)));
  if constexpr (kOut & kGradPosWeight) *dp = mul0_pd(g, mul0_pd(w, mul0_pd(y, sp_neg)));
}

}  // namespace logits_avx2

template <class T, bool HW, bool HP>
void BceWithLogits::forward_avx2(const Segment<T> &s) {
  using namespace avx2;
  const __m256 zero = _mm256_setzero_ps();
  __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
  // float32 results are added 4 vectors at a time before the double sums
  // (3 roundings: within 3 * 2^-24 of the terms' size, well inside 1e-6)
  __m256 pending = zero;
  int n_pending = 0;
  const Inputs<T, HW, HP> in(s);
  for_each_vector(s.n, [&](int64_t i, int64_t m) __attribute__((always_inline)) {
    const Lanes v = in.load(i, m);
    const __m256 x = v.x, y = v.y, w = v.w, p = v.p;
    __m256 r = zero;
    bool in_double = s.precise;
    if (!in_double) {
      const __m256 u = logits_unweighted(F8(x), F8(y), F8(p)).v;
      r = HW ? _mm256_mul_ps(w, u) : u;
      in_double = logits_avx2::redo(x, u, r) &&
                  logits_avx2::redo_lanes(x, u, logits_avx2::suspect_lanes(r),
                                          _mm256_and_ps(logits_avx2::is_zero(w), logits_avx2::is_zero(r)));
    }
    if (in_double) {
      __m256d lo = logits_avx2::loss_precise(low_pd(x), low_pd(y), low_pd(w), low_pd(p), HW);
      __m256d hi = logits_avx2::loss_precise(high_pd(x), high_pd(y), high_pd(w), high_pd(p), HW);
      in.kept(v, &lo, &hi);
      if (s.out) {
        store_n(s.out + i, to_ps(lo, hi), m);
      } else if (m < kLanes) {  // padded lanes do not count
        sum_lo = _mm256_add_pd(sum_lo, _mm256_and_pd(lo, lane_mask_pd(m, false)));
        sum_hi = _mm256_add_pd(sum_hi, _mm256_and_pd(hi, lane_mask_pd(m, true)));
      } else {
        sum_lo = _mm256_add_pd(sum_lo, lo);
        sum_hi = _mm256_add_pd(sum_hi, hi);
      }
      return;
    }
    r = in.kept(v, r);
    if (s.out) {
      store_n(s.out + i, r, m);
      return;
    }
    pending = _mm256_add_ps(pending, m < kLanes ? select(lane_mask(m), r, zero) : r);
    if (++n_pending == 4) {
      accumulate(&sum_lo, &sum_hi, pending);
      pending = zero;
      n_pending = 0;
    }
  });
  if (!s.out) {
    accumulate(&sum_lo, &sum_hi, pending);
    *s.sum += total(sum_lo, sum_hi);
  }
}

template <class T, bool HW, bool HP, int kOut>
void BceWithLogits::backward_avx2(const Segment<T> &s) {
  using namespace avx2;
  constexpr bool kDx = kOut & kGradInput, kSoftplus = kOut & ~kGradInput;
  const __m256 one = splat(1.0f);
  // 'mean'/'sum': G = dout / numel (a double) as a float32 pair (scale_by_gw)
  const float g_scalar_head = static_cast<float>(s.g_scalar);
  const __m256 g_head = splat(g_scalar_head), g_tail = splat(static_cast<float>(s.g_scalar - g_scalar_head));
  const __m256 zero_mask = _mm256_setzero_ps(), one_mask = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  const Inputs<T, HW, HP> in(s);
  for_each_vector(s.n, [&](int64_t i, int64_t m) __attribute__((always_inline)) {
    const Lanes v = in.load(i, m);
    const __m256 x = v.x, y = v.y, w = v.w, p = v.p;
    const __m256 g = s.g ? in.gradient(v, i, m) : g_head;
    // dX in float32, for the one-output gradient (graph mode's training step)
    // and the fused backward alike, so both give the same bits
    bool dx_done = false;
    if constexpr (kDx) {
      const __m256 d = logits_dx_unweighted(F8(x), F8(y), F8(p)).v;
      const __m256 dx = scale_by_gw(F8(g), F8(s.g ? _mm256_setzero_ps() : g_tail), F8(w), F8(d)).v;
      // G and G W tiny too: their float32 pair would lose its low part (g = 1e-40)
      const __m256 gw = _mm256_mul_ps(g, w);
      const __m256 smallest = _mm256_min_ps(abs(d), _mm256_min_ps(abs(g), abs(gw)));
      bool redo = logits_avx2::redo(x, smallest, dx);
      if (redo) {  // exactly: a zero G (given as 0, not rounded to it) or W with dX = 0 needs no double
        using namespace logits_avx2;
        const __m256 zero_factor = _mm256_or_ps(s.g ? is_zero(g) : (s.g_scalar == 0.0 ? one_mask : zero_mask),
                                                is_zero(w));
        const __m256 r_bad = _mm256_or_ps(_mm256_or_ps(suspect_lanes(g), suspect_lanes(gw)), suspect_lanes(dx));
        redo = redo_lanes(x, d, r_bad, _mm256_and_ps(zero_factor, is_zero(dx)));
      }
      if (!redo) {
        store_n(s.dx + i, in.kept(v, dx), m);
        dx_done = true;
      }
      if (kOut == kGradInput && dx_done) return;
    }
    // the double lanes: the other gradients, and dX where the float32 path declined
    const __m256d g_lo = s.g ? low_pd(g) : splat_pd(s.g_scalar), g_hi = s.g ? high_pd(g) : splat_pd(s.g_scalar);
    const bool far = logits_avx2::any_far_tail(x);
    __m256d e[2], r[2], l[2];
    if (far) {  // rare: exp and log1p in double
      logits_avx2::logistic_pd(low_pd(x), &e[0], &r[0], &l[0]);
      logits_avx2::logistic_pd(high_pd(x), &e[1], &r[1], &l[1]);
    } else {
      const __m256 ef = exp_normal(neg_abs(x));
      const __m256 rf = kDx ? _mm256_div_ps(one, _mm256_add_ps(one, ef)) : ef;
      const __m256 lf = kSoftplus ? log1p_unit(ef) : ef;
      e[0] = low_pd(ef), e[1] = high_pd(ef), r[0] = low_pd(rf), r[1] = high_pd(rf);
      l[0] = low_pd(lf), l[1] = high_pd(lf);
    }
    __m256d dx[2], dy[2], dw[2], dp[2];
    logits_avx2::grads<kOut>(low_pd(x), low_pd(y), low_pd(w), low_pd(p), g_lo, e[0], r[0], l[0],
                             &dx[0], &dy[0], &dw[0], &dp[0]);
    logits_avx2::grads<kOut>(high_pd(x), high_pd(y), high_pd(w), high_pd(p), g_hi, e[1], r[1], l[1],
                             &dx[1], &dy[1], &dw[1], &dp[1]);
    if constexpr (kDx) {
      if (!dx_done) store_n(s.dx + i, in.kept(v, to_ps(dx[0], dx[1])), m);
    }
    if constexpr (kOut & kGradTarget) store_n(s.dy + i, in.target_gradient(v, to_ps(dy[0], dy[1])), m);
    if constexpr (HW && (kOut & kGradWeight)) in.store_kept(s.dw + i, v, dw[0], dw[1], m);
    if constexpr (HP && (kOut & kGradPosWeight)) in.store_kept(s.dp + i, v, dp[0], dp[1], m);
  });
}

MS_BCE_AVX2_END
#endif  // MS_BCE_HAVE_AVX2_PATH

}  // namespace ms_bce

// This file's entry points: losses.def's bce_with_logits line (every direction, reduction and operand set).
#define MS_BCE_EXPORTS_bce_with_logits MS_BCE_SELECTED
#include "../common/export_losses.inc"
