// The sigmoid focal loss on the CPU: its AVX2 path and its entry points
// (forward, the fused and the one-output backwards).  The element maths, and
// the portable path, are ../common/element_math.h's SigmoidFocal (shared with
// the GPU), in double; its scalar parameters (alpha, gamma) arrive as the t
// operand (../common/params.h, Segment::theta).
#include "inputs_avx2.h"
#include "lanes_avx2.h"
#include "loss_driver.h"

namespace ms_bce {

struct SigmoidFocal : element::SigmoidFocal {
  template <class T, bool HW, bool HP>
  static void forward_avx2(const Segment<T> &s);
  template <class T, bool HW, bool HP, int kOut>
  static void backward_avx2(const Segment<T> &s);
};

#if defined(MS_BCE_HAVE_AVX2_PATH)
MS_BCE_AVX2_BEGIN

// The portable path's double steps, 4 lanes at a time, in the same order
// (no FMA where the portable path has none): q^gamma by the same squarings
// for a whole gamma up to 16 (the usual gamma = 2), else as
// exp(gamma log q).  exp, log1p and log are the vector path's double ones
// (relative error ~2e-14, ~1e-15 and ~6e-14, against glibc's correctly
// rounded ones), so a float32 result may differ from the portable path's in
// the last bit where the double value lies that close to a rounding
// boundary (for a whole gamma none did in 10^6 elements of every range: the
// tests compare both paths bit for bit there).  A vector with an infinite or
// NaN logit, a q outside [2^-1022, 1] for exp(gamma log q) (a target outside
// [0, 1], or q subnormal) or a result that is not finite is redone lane by
// lane by the portable path (mul0's conventions).
namespace focal_avx2 {
using namespace avx2;

struct Terms {
  __m256d sig_pos, sig_neg, sp_pos, sp_neg, ce, q, f, a;
  __m256d q_bad;  // lanes where exp(gamma log q) does not hold (whole gamma: none)
};

MS_BCE_VINLINE __m256d abs_pd(__m256d v) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), v); }
MS_BCE_VINLINE __m256d max0_pd(__m256d v) { return _mm256_max_pd(v, _mm256_setzero_pd()); }

// gamma: element::SigmoidFocal::whole_gamma's int (squarings as its power), else -1 and gamma_d the exponent
MS_BCE_VINLINE Terms terms(__m256d x, __m256d y, __m256d p, double alpha, int gamma, double gamma_d) {
  const __m256d one = splat_pd(1.0);
  const __m256d e = exp_nonpos_pd(_mm256_or_pd(x, splat_pd(-0.0)));  // exp(-|x|)
  const __m256d r = _mm256_div_pd(one, _mm256_add_pd(one, e)), l = log1p_unit_pd(e);
  const __m256d er = _mm256_mul_pd(e, r);
  const __m256d nonneg = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_GE_OQ);
  Terms s;
  s.sig_pos = _mm256_blendv_pd(er, r, nonneg);
  s.sig_neg = _mm256_blendv_pd(r, er, nonneg);
  s.sp_pos = _mm256_add_pd(max0_pd(x), l);
  s.sp_neg = _mm256_add_pd(max0_pd(_mm256_xor_pd(x, splat_pd(-0.0))), l);
  const __m256d omy = _mm256_sub_pd(one, y);
  s.ce = _mm256_add_pd(_mm256_mul_pd(omy, s.sp_pos), _mm256_mul_pd(_mm256_mul_pd(p, y), s.sp_neg));
  s.q = _mm256_add_pd(_mm256_mul_pd(y, s.sig_neg), _mm256_mul_pd(omy, s.sig_pos));
  s.q_bad = _mm256_setzero_pd();
  if (gamma >= 0) {
    __m256d f = one, b = s.q;
    for (int n = gamma; n > 0; n >>= 1, b = _mm256_mul_pd(b, b))
      if (n & 1) f = _mm256_mul_pd(f, b);
    s.f = f;
  } else {  // q = 0 gives 0 (gamma > 0 here); q in [2^-1022, 1] exp(gamma log q); the rest is redone
    const __m256d q_zero = _mm256_cmp_pd(s.q, _mm256_setzero_pd(), _CMP_EQ_OQ);
    const __m256d q_ok = _mm256_and_pd(_mm256_cmp_pd(s.q, splat_pd(2.2250738585072014e-308), _CMP_GE_OQ),
                                       _mm256_cmp_pd(s.q, one, _CMP_LE_OQ));
    const __m256d q_safe = _mm256_blendv_pd(one, s.q, q_ok);
    s.f = _mm256_blendv_pd(exp_nonpos_pd(_mm256_mul_pd(splat_pd(gamma_d), log_pd(q_safe))), _mm256_setzero_pd(),
                           q_zero);
    s.q_bad = _mm256_andnot_pd(_mm256_or_pd(q_ok, q_zero), _mm256_cmp_pd(s.q, s.q, _CMP_ORD_Q));
  }
  s.a = alpha >= 0.0 ? _mm256_add_pd(_mm256_mul_pd(splat_pd(alpha), y), _mm256_mul_pd(splat_pd(1.0 - alpha), omy))
                     : one;
  return s;
}

// A lane whose logit is infinite or NaN, whose v is not finite, or flagged in bad.
MS_BCE_VINLINE bool any_not_finite(__m256 x, __m256d v_lo, __m256d v_hi, __m256d bad_lo, __m256d bad_hi) {
  const __m256d inf = splat_pd(INFINITY);
  const __m256d bad = _mm256_or_pd(_mm256_or_pd(_mm256_cmp_pd(abs_pd(v_lo), inf, _CMP_NLT_UQ), bad_lo),
                                   _mm256_or_pd(_mm256_cmp_pd(abs_pd(v_hi), inf, _CMP_NLT_UQ), bad_hi));
  const __m256 bad_x = _mm256_cmp_ps(abs(x), splat(INFINITY), _CMP_NLT_UQ);
  return (_mm256_movemask_pd(bad) | _mm256_movemask_ps(bad_x)) != 0;
}

}  // namespace focal_avx2

template <class T, bool HW, bool HP>
void SigmoidFocal::forward_avx2(const Segment<T> &s) {
  using namespace avx2;
  const int gamma = whole_gamma(s.theta[1]);
  const double alpha = s.theta[0], gamma_d = s.theta[1];
  __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
  const Inputs<T, HW, HP> in(s);
  for_each_vector(s.n, [&](int64_t i, int64_t m) __attribute__((always_inline)) {
    const Lanes v = in.load(i, m);
    const __m256 x = v.x, y = v.y, w = v.w, p = v.p;
    __m256d l[2], bad[2];
    for (int h = 0; h < 2; ++h) {
      const __m256d xd = h ? high_pd(x) : low_pd(x), yd = h ? high_pd(y) : low_pd(y);
      const focal_avx2::Terms t = focal_avx2::terms(xd, yd, h ? high_pd(p) : low_pd(p), alpha, gamma, gamma_d);
      l[h] = _mm256_mul_pd(h ? high_pd(w) : low_pd(w), _mm256_mul_pd(t.a, _mm256_mul_pd(t.ce, t.f)));
      bad[h] = t.q_bad;
    }
    if (focal_avx2::any_not_finite(x, l[0], l[1], bad[0], bad[1])) {  // rare: the portable path, lane by lane
      alignas(32) float xs[kLanes], ys[kLanes], ws[kLanes], ps[kLanes];
      alignas(32) double vs[kLanes];
      _mm256_store_ps(xs, x), _mm256_store_ps(ys, y), _mm256_store_ps(ws, w), _mm256_store_ps(ps, p);
      for (int k = 0; k < kLanes; ++k) vs[k] = k < m ? value(xs[k], ys[k], ws[k], ps[k], s.theta) : 0.0;
      l[0] = _mm256_load_pd(vs), l[1] = _mm256_load_pd(vs + 4);
    }
    in.kept(v, &l[0], &l[1]);
    if (s.out) {
      store_n(s.out + i, to_ps(l[0], l[1]), m);
    } else if (m < kLanes) {  // padded lanes do not count
      sum_lo = _mm256_add_pd(sum_lo, _mm256_and_pd(l[0], lane_mask_pd(m, false)));
      sum_hi = _mm256_add_pd(sum_hi, _mm256_and_pd(l[1], lane_mask_pd(m, true)));
    } else {
      sum_lo = _mm256_add_pd(sum_lo, l[0]);
      sum_hi = _mm256_add_pd(sum_hi, l[1]);
    }
  });
  if (!s.out) *s.sum += total(sum_lo, sum_hi);
}

template <class T, bool HW, bool HP, int kOut>
void SigmoidFocal::backward_avx2(const Segment<T> &s) {
  using namespace avx2;
  constexpr bool kDx = kOut & kGradInput, kDy = kOut & kGradTarget;
  constexpr bool kDw = HW && (kOut & kGradWeight), kDp = HP && (kOut & kGradPosWeight);
  const int gamma = whole_gamma(s.theta[1]);
  const double alpha = s.theta[0], gamma_d = s.theta[1], da = alpha >= 0.0 ? 2.0 * alpha - 1.0 : 0.0;
  const __m256d zero = _mm256_setzero_pd(), one = splat_pd(1.0);
  const Inputs<T, HW, HP> in(s);
  for_each_vector(s.n, [&](int64_t i, int64_t m) __attribute__((always_inline)) {
    const Lanes v = in.load(i, m);
    const __m256 x = v.x, y = v.y, w = v.w, p = v.p;
    const __m256 gf = s.g ? in.gradient(v, i, m) : splat(0.0f);
    __m256d dx[2], dy[2], dw[2], dp[2];
    __m256d check[2] = {zero, zero};  // the sum of the wanted outputs: not finite where one is not
    __m256d bad[2];
    for (int h = 0; h < 2; ++h) {
      const __m256d xd = h ? high_pd(x) : low_pd(x), yd = h ? high_pd(y) : low_pd(y);
      const __m256d pd = h ? high_pd(p) : low_pd(p), wd = h ? high_pd(w) : low_pd(w);
      const __m256d g = s.g ? (h ? high_pd(gf) : low_pd(gf)) : splat_pd(s.g_scalar);
      const focal_avx2::Terms t = focal_avx2::terms(xd, yd, pd, alpha, gamma, gamma_d);
      bad[h] = t.q_bad;
      const __m256d gw = _mm256_mul_pd(g, wd), ga = _mm256_mul_pd(gw, t.a);
      const __m256d ce_f = _mm256_mul_pd(t.ce, t.f);
      __m256d cq = zero;  // ce q^(gamma - 1): (ce / q) q^gamma, 0 where q = 0
      if constexpr (kDx || kDy) {
        const __m256d q_zero = _mm256_cmp_pd(t.q, zero, _CMP_EQ_OQ);
        cq = _mm256_blendv_pd(_mm256_mul_pd(_mm256_div_pd(t.ce, t.q), t.f), zero, q_zero);
      }
      if constexpr (kDx) {
        const __m256d omy = _mm256_sub_pd(one, yd);
        const __m256d dce_dx = _mm256_sub_pd(_mm256_mul_pd(omy, t.sig_pos),
                                             _mm256_mul_pd(_mm256_mul_pd(pd, yd), t.sig_neg));
        const __m256d dq_dx = _mm256_mul_pd(_mm256_sub_pd(one, _mm256_mul_pd(splat_pd(2.0), yd)),
                                            _mm256_mul_pd(t.sig_pos, t.sig_neg));
        dx[h] = _mm256_mul_pd(ga, _mm256_add_pd(_mm256_mul_pd(dce_dx, t.f),
                                                _mm256_mul_pd(splat_pd(gamma_d), _mm256_mul_pd(cq, dq_dx))));
        check[h] = _mm256_add_pd(check[h], dx[h]);
      }
      if constexpr (kDy) {
        const __m256d dce_dy = _mm256_sub_pd(_mm256_mul_pd(pd, t.sp_neg), t.sp_pos);
        const __m256d sum = _mm256_add_pd(
            _mm256_add_pd(_mm256_mul_pd(splat_pd(da), ce_f), _mm256_mul_pd(t.a, _mm256_mul_pd(dce_dy, t.f))),
            _mm256_mul_pd(t.a, _mm256_mul_pd(splat_pd(gamma_d),
                                             _mm256_mul_pd(cq, _mm256_sub_pd(t.sig_neg, t.sig_pos)))));
        dy[h] = _mm256_mul_pd(gw, sum);
        check[h] = _mm256_add_pd(check[h], dy[h]);
      }
      if constexpr (kDw) {
        dw[h] = _mm256_mul_pd(_mm256_mul_pd(g, t.a), ce_f);
        check[h] = _mm256_add_pd(check[h], dw[h]);
      }
      if constexpr (kDp) {
        dp[h] = _mm256_mul_pd(ga, _mm256_mul_pd(_mm256_mul_pd(yd, t.sp_neg), t.f));
        check[h] = _mm256_add_pd(check[h], dp[h]);
      }
    }
    if (focal_avx2::any_not_finite(x, check[0], check[1], bad[0], bad[1])) {  // rare: the portable path, lane by lane
      alignas(32) float xs[kLanes], ys[kLanes], ws[kLanes], ps[kLanes], gs[kLanes];
      alignas(32) double vx[kLanes], vy[kLanes], vw[kLanes], vp[kLanes];
      _mm256_store_ps(xs, x), _mm256_store_ps(ys, y), _mm256_store_ps(ws, w), _mm256_store_ps(ps, p);
      _mm256_store_ps(gs, gf);
      for (int k = 0; k < kLanes; ++k) {
        const Grad r = k < m ? grad(xs[k], ys[k], ws[k], ps[k], s.g ? gs[k] : s.g_scalar, s.theta) : Grad{};
        vx[k] = r.dx, vy[k] = r.dy, vw[k] = r.dw, vp[k] = r.dp;
      }
      for (int h = 0; h < 2; ++h) {
        dx[h] = _mm256_load_pd(vx + 4 * h), dy[h] = _mm256_load_pd(vy + 4 * h);
        dw[h] = _mm256_load_pd(vw + 4 * h), dp[h] = _mm256_load_pd(vp + 4 * h);
      }
    }
    if constexpr (kDx) store_n(s.dx + i, in.kept(v, to_ps(dx[0], dx[1])), m);
    if constexpr (kDy) store_n(s.dy + i, in.target_gradient(v, to_ps(dy[0], dy[1])), m);
    if constexpr (kDw) in.store_kept(s.dw + i, v, dw[0], dw[1], m);
    if constexpr (kDp) in.store_kept(s.dp + i, v, dp[0], dp[1], m);
  });
}

MS_BCE_AVX2_END
#endif  // MS_BCE_HAVE_AVX2_PATH

}  // namespace ms_bce

// This file's entry points: losses.def's sigmoid_focal line (every direction, reduction and operand set).
#define MS_BCE_EXPORTS_sigmoid_focal MS_BCE_SELECTED
#include "../common/export_losses.inc"
