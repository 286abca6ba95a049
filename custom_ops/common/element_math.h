// The per-element mathematics of every loss, written once: the CPU
// library's portable path (custom_ops/cpu/*.cc derive their policies from
// these structs and add the AVX2 path, which takes the same float32 steps 8
// lanes at a time) and the GPU kernels (custom_ops/gpu/bce_math.cuh names
// them), host C++17 or host and device under nvcc (MS_BCE_HD).
//
// BCEWithLogitsLoss: the loss and the gradient of the logits in float32
// (bce_with_logits_math.inc over V = float: the AVX2 path's very operations,
// so both give the same bits); the gradients of the targets, weight and
// pos_weight from exp/log1p/reciprocal in float32 and the products after
// them in double, as the AVX2 path.  What float32 cannot carry is redone in
// double, as the vector path redoes a vector: |x| > kFarTail, where
// exp(-|x|) becomes subnormal; a result that is NaN (0 * inf: mul0's 0),
// infinite (an intermediate overflowed) or below 2^-100.
//
// BCELoss: float32 per element, logs correctly rounded (evaluated in
// double), MindSpore 2.10's eps rule.
//
// SigmoidFocalLoss: in double, its two scalar parameters (alpha, gamma) from
// the t operand (params.h).
#ifndef MS_BCE_COMMON_ELEMENT_MATH_H_
#define MS_BCE_COMMON_ELEMENT_MATH_H_

#include <math.h>
#include <stdint.h>

#include "vmath.h"  // (lanes.h: MS_BCE_HD)

namespace ms_bce {

namespace vmath {
#define MS_BCE_VMATH_FN MS_BCE_HD inline
#include "bce_with_logits_math.inc"
#undef MS_BCE_VMATH_FN
}  // namespace vmath

// Gradients of one element: dw and dp are this element's contributions,
// summed over broadcast dimensions by the driver.
struct Grad {
  double dx, dy, dw, dp;
};

// a * b, except that an exactly-zero factor gives exactly zero even when the
// other is infinite (a term whose coefficient is zero contributes nothing).
// NaN still propagates.
template <class F>
MS_BCE_HD inline F mul0(F a, F b) {
  const F r = a * b;
  return (r != r && a == a && b == b) ? F(0) : r;
}

// 'mean'/'sum' reductions of at most this many elements compute each element
// in double (value_precise): a float32 element is off by up to a few ulp,
// which can move a short mean across a rounding boundary (the seed example's
// lies 0.22 ulp from one); larger ones stay within docs/numerics.rst's 1e-6.
constexpr int64_t kPreciseReductionMax = int64_t{1} << 16;

namespace element {

// Beyond this |x|, exp(-|x|) is subnormal in float32 (or 0): the far tail's
// terms would lose their relative accuracy, which a large weight, pos_weight
// or incoming gradient brings back into range (x = 120, y = 1, w = 1e30:
// 7.7e-23), so they are computed in double.
constexpr float kFarTail = 87.0f;

// Below this magnitude a float32 result may carry subnormal terms or
// products, which cost accuracy: 2^-100.
constexpr float kTiny = 7.888609052210118e-31f;

// A float32 result that must be redone in double: NaN, infinite, or below
// kTiny (0 included).
MS_BCE_HD inline bool suspect(float r) {
  const float a = ::fabsf(r);
  return !(a >= kTiny) || a == INFINITY;
}

// e = exp(-|x|), r = 1 / (1 + e), l = log1p(e) of one logit.
struct Logistic {
  double e, r, l;
  // float32 (vmath: <= 1.08, 0.5, 1.00 ulp), for |x| <= kFarTail
  MS_BCE_HD static Logistic of_float(float x) {
    const float e = vmath::exp_normal(vmath::neg_abs(x));
    return Logistic{e, vmath::div(1.0f, vmath::add(1.0f, e)), vmath::log1p_unit(e)};
  }
  MS_BCE_HD static Logistic of_double(double x) {
    const double e = ::exp(-::fabs(x));
    return Logistic{e, 1.0 / (1.0 + e), ::log1p(e)};
  }
};

// BCEWithLogitsLoss, stable form (docs/numerics.rst), sp(z) = softplus(z):
//   L = W [ (1 - Y) sp(X) + P Y sp(-X) ]
struct BceWithLogits {
  static constexpr const char *kName = "BCEWithLogitsLoss";

  // In double throughout, mul0's conventions (small reductions, and the
  // results float32 cannot carry).
  MS_BCE_HD static double value_precise(double x, double y, double w, double p) {
    const double l = Logistic::of_double(x).l;
    const double sp_pos = (x > 0.0 ? x : 0.0) + l, sp_neg = (x < 0.0 ? -x : 0.0) + l;
    return mul0(w, mul0(1.0 - y, sp_pos) + mul0(mul0(p, y), sp_neg));
  }

  // The driver hands over float32-representable values as double: exact casts.
  MS_BCE_HD static double value(double x, double y, double w, double p) {
    const float xf = static_cast<float>(x);
    if (::fabsf(xf) > kFarTail) return value_precise(x, y, w, p);
    const float u = vmath::logits_unweighted(xf, static_cast<float>(y), static_cast<float>(p));
    if (suspect(u)) return value_precise(x, y, w, p);
    const float wf = static_cast<float>(w), r = vmath::mul(wf, u);
    // an exact 0 from a zero weight (mul0's 0) needs no double: masked weights stay float32
    return suspect(r) && !(wf == 0.0f && r == 0.0f) ? value_precise(x, y, w, p) : r;
  }

  MS_BCE_HD static Grad grad(double x, double y, double w, double p, double g) {
    const float xf = static_cast<float>(x);
    const bool far = ::fabsf(xf) > kFarTail;
    Grad r = grad_from(x, y, w, p, g, far ? Logistic::of_double(x) : Logistic::of_float(xf));
    if (!far) {  // dX in float32, G ('mean': dout / numel, unrounded) as a float32 pair
      const float d = vmath::logits_dx_unweighted(xf, static_cast<float>(y), static_cast<float>(p));
      const float g_head = static_cast<float>(g), g_tail = static_cast<float>(g - g_head);
      const float wf = static_cast<float>(w), dx = vmath::scale_by_gw(g_head, g_tail, wf, d);
      // G and G W tiny too: their float32 pair would lose its low part (g = 1e-40);
      // an exact 0 from a zero G (given as 0, not rounded to it) or W needs no double
      const bool exact_zero = (g == 0.0 || wf == 0.0f) && dx == 0.0f;
      if (!suspect(d) && (exact_zero || (!suspect(dx) && !suspect(g_head) && !suspect(vmath::mul(g_head, wf)))))
        r.dx = dx;
    }
    return r;
  }

  // All four gradients from t's e, r, l, in double:
  //   dX = G W [(1 - Y) sigmoid(X) - P Y sigmoid(-X)]   (no cancellation in either tail)
  //   dY = G W [P sp(-X) - sp(X)],  dW = G [(1 - Y) sp(X) + P Y sp(-X)],  dP = G W Y sp(-X)
  MS_BCE_HD static Grad grad_from(double x, double y, double w, double p, double g, Logistic t) {
    const double omy = 1.0 - y, py = p * y, gw = g * w, er = t.e * t.r;
    const double sig_pos = x >= 0.0 ? t.r : er, sig_neg = x >= 0.0 ? er : t.r;
    const double sp_pos = (x > 0.0 ? x : 0.0) + t.l, sp_neg = (x < 0.0 ? -x : 0.0) + t.l;
    Grad r{gw * ::fma(omy, sig_pos, -(py * sig_neg)), gw * ::fma(p, sp_neg, -sp_pos),
           g * ::fma(omy, sp_pos, py * sp_neg), gw * (y * sp_neg)};
    if (r.dx == r.dx && r.dy == r.dy && r.dw == r.dw && r.dp == r.dp) return r;
    const double py0 = mul0(p, y);  // NaN: 0 * inf somewhere, or a NaN operand
    r.dx = mul0(g, mul0(w, mul0(omy, sig_pos) - mul0(py0, sig_neg)));
    r.dy = mul0(g, mul0(w, mul0(p, sp_neg) - sp_pos));
    r.dw = mul0(g, mul0(omy, sp_pos) + mul0(py0, sp_neg));
    r.dp = mul0(g, mul0(w, mul0(y, sp_neg)));
    return r;
  }
};

// BCELoss, MindSpore 2.10's rule (custom_ops/cpu/bce.cc has the story),
// each element in float32:
//   L = -W [ Y log(a) + (1 - Y) log(b) ],  a = p + eps,  b = (1 - p) + eps
// with exact derivatives of that guarded forward (finite at p = 0 and 1).
struct Bce {
  static constexpr const char *kName = "BCELoss";
  // probabilities outside [0, 1] are refused (kOutOfRange), as PyTorch and the built-in refuse them
  static constexpr bool kUnitIntervalInput = true;
  static constexpr const char *kInputName = "logits";  // MindSpore's name in four of the five APIs

  // eps = float32(1e-12); a literal, not a static member, so device code needs no symbol
  MS_BCE_HD static float eps() { return 1e-12f; }

  // Y log(a) + (1 - Y) log(b), in float32: the negated, unweighted loss (= -dL/dW).
  MS_BCE_HD static float log_likelihood(float y, float la, float lb) { return mul0(y, la) + mul0(1.0f - y, lb); }

  // log of a float32, correctly rounded (but in rare near-halfway cases): evaluated in double
  MS_BCE_HD static float log_rounded(float a) { return static_cast<float>(::log(static_cast<double>(a))); }

  // The driver hands over float32-representable values as double: exact casts.
  MS_BCE_HD static double value(double pd, double yd, double wd, double /*unused*/) {
    const float p = static_cast<float>(pd), y = static_cast<float>(yd), w = static_cast<float>(wd);
    return -mul0(w, log_likelihood(y, log_rounded(p + eps()), log_rounded((1.0f - p) + eps())));
  }

  MS_BCE_HD static Grad grad(double pd, double yd, double wd, double /*unused*/, double gd) {
    const float p = static_cast<float>(pd), y = static_cast<float>(yd), w = static_cast<float>(wd);
    const float g = static_cast<float>(gd);
    const float a = p + eps(), b = (1.0f - p) + eps();
    const float la = log_rounded(a), lb = log_rounded(b);
    Grad r;
    r.dx = mul0(g, mul0(w, mul0(1.0f - y, 1.0f / b) - mul0(y, 1.0f / a)));
    r.dy = mul0(g, mul0(w, lb - la));
    r.dw = -mul0(g, log_likelihood(y, la, lb));
    r.dp = 0.0;
    return r;
  }
};

// The sigmoid focal loss (Lin et al. 2017, torchvision's sigmoid_focal_loss)
// over BCEWithLogitsLoss's cross entropy, weight and pos_weight included:
//   ce = (1 - Y) sp(X) + P Y sp(-X),   q = 1 - p_t = Y sigmoid(-X) + (1 - Y) sigmoid(X)
//   a = alpha Y + (1 - alpha)(1 - Y) where alpha >= 0, else 1
//   L = W a ce q^gamma
// q is a sum of two non-negative terms for Y in [0, 1] (no cancellation, full
// relative accuracy in both tails, unlike 1 - p_t), and its derivatives carry
// ce q^(gamma - 1) as (ce / q) q^gamma, 0 where q is 0: the limit for every
// gamma >= 0 (ce vanishes with q), so gamma < 1 gives no inf * 0 (optax #1346).
// Everything in double, mul0's conventions (a term whose coefficient is an
// exact 0 contributes 0).  Parameters theta = (alpha, gamma), ms_bce/_losses.py's order.
struct SigmoidFocal {
  static constexpr const char *kName = "SigmoidFocalLoss";
  static constexpr int kParams = 2;

  struct Terms {
    double sig_pos, sig_neg, sp_pos, sp_neg, ce, q, f, a;
  };

  // gamma as an int when it is whole and in [0, 16] (power squares for those), else -1
  MS_BCE_HD static int whole_gamma(double gamma) {
    return gamma >= 0.0 && gamma <= 16.0 && gamma == ::floor(gamma) ? static_cast<int>(gamma) : -1;
  }

  // q^gamma: by squaring for a whole gamma (the usual 2: a third of pow's time), else pow
  // (pow(q, 0) = 1, q = 0 and NaN included, as here)
  MS_BCE_HD static double power(double q, double gamma) {
    const int whole = whole_gamma(gamma);
    if (whole < 0) return ::pow(q, gamma);
    double r = 1.0, b = q;
    for (int n = whole; n > 0; n >>= 1, b *= b)
      if (n & 1) r *= b;
    return r;
  }

  MS_BCE_HD static Terms terms(double x, double y, double p, const float *theta) {
    const double alpha = theta[0], gamma = theta[1];
    const Logistic t = Logistic::of_double(x);
    const double er = t.e * t.r;
    Terms s;
    s.sig_pos = x >= 0.0 ? t.r : er;
    s.sig_neg = x >= 0.0 ? er : t.r;
    s.sp_pos = (x > 0.0 ? x : 0.0) + t.l;
    s.sp_neg = (x < 0.0 ? -x : 0.0) + t.l;
    s.ce = mul0(1.0 - y, s.sp_pos) + mul0(mul0(p, y), s.sp_neg);
    s.q = y * s.sig_neg + (1.0 - y) * s.sig_pos;
    s.f = power(s.q, gamma);
    s.a = alpha >= 0.0 ? alpha * y + (1.0 - alpha) * (1.0 - y) : 1.0;
    return s;
  }

  MS_BCE_HD static double value(double x, double y, double w, double p, const float *theta) {
    const Terms s = terms(x, y, p, theta);
    return mul0(w, mul0(s.a, mul0(s.ce, s.f)));
  }

  //   dX = G W a [ce' f + gamma (ce / q) f (1 - 2Y) sigmoid(X) sigmoid(-X)],  ce' = (1 - Y) sigmoid(X) - P Y sigmoid(-X)
  //   dY = G W [a' ce f + a (P sp(-X) - sp(X)) f + a gamma (ce / q) f (sigmoid(-X) - sigmoid(X))],  a' = 2 alpha - 1 or 0
  //   dW = G a ce f,   dP = G W a Y sp(-X) f
  MS_BCE_HD static Grad grad(double x, double y, double w, double p, double g, const float *theta) {
    const double alpha = theta[0], gamma = theta[1];
    const Terms s = terms(x, y, p, theta);
    const double cq = s.q != 0.0 ? mul0(s.ce / s.q, s.f) : 0.0;  // ce q^(gamma - 1)
    const double gw = mul0(g, w), ga = mul0(gw, s.a);
    const double dce_dx = mul0(1.0 - y, s.sig_pos) - mul0(mul0(p, y), s.sig_neg);
    const double dq_dx = (1.0 - 2.0 * y) * (s.sig_pos * s.sig_neg);
    const double da = alpha >= 0.0 ? 2.0 * alpha - 1.0 : 0.0;
    Grad r;
    r.dx = mul0(ga, mul0(dce_dx, s.f) + mul0(gamma, mul0(cq, dq_dx)));
    r.dy = mul0(gw, mul0(da, mul0(s.ce, s.f)) + mul0(s.a, mul0(mul0(p, s.sp_neg) - s.sp_pos, s.f)) +
                        mul0(s.a, mul0(gamma, mul0(cq, s.sig_neg - s.sig_pos))));
    r.dw = mul0(mul0(g, s.a), mul0(s.ce, s.f));
    r.dp = mul0(ga, mul0(mul0(y, s.sp_neg), s.f));
    return r;
  }
};

}  // namespace element
}  // namespace ms_bce

#endif  // MS_BCE_COMMON_ELEMENT_MATH_H_
