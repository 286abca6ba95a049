// BCELoss (binary cross entropy on probabilities) on the CPU: its AVX2 path
// (the portable element maths is ../common/element_math.h's) and its entry points (forward, the fused and the
// one-output backwards: gradients of the probabilities, targets and weight).
//
// MindSpore 2.10's rule (found by experiment; tests/test_bce.py pins it):
//   L = -W [ Y log(a) + (1 - Y) log(b) ],  a = p + eps,  b = (1 - p) + eps,
// with eps = float32(1e-12) added inside each log (no clamp: p = 0, Y = 1 gives
// -log(eps) = 27.631021).  Each element is computed in float32 arithmetic, as
// the built-in computes float32 inputs, with correctly rounded logarithms (evaluated in
// double): results, and the documented examples, agree with it (its glibc
// logf differs from correct rounding in ~0.8% of arguments, by one ulp of the
// log); float16 and bfloat16 inputs are computed in float32 too, where the
// built-in's float16 kernel loses eps and returns inf at p = 0 or 1.  Sums are
// accumulated in double.  PyTorch instead clamps each log at -100.  p outside
// [0, 1] is refused by the driver (kOutOfRange, naming the first such value
// and its index: kUnitIntervalInput), as PyTorch and the built-in refuse it;
// NaN gives NaN.
//
// Gradients are the exact derivatives of this forward (the built-in's are not:
// it returns 0 at p = 0, Y = 0 and an infinite target gradient at p = 0 or 1):
//   dL/dp = W [ (1 - Y) / b - Y / a ]     (finite at p = 0 and 1: +-1/eps)
//   dL/dY = W [ log(b) - log(a) ]          (finite at p = 0 and 1)
//   dL/dW = -[ Y log(a) + (1 - Y) log(b) ]
#include "inputs_avx2.h"
#include "loss_driver.h"

namespace ms_bce {

struct Bce : element::Bce {
  template <class T, bool HW, bool HP>
  static void forward_avx2(const Segment<T> &s);
  template <class T, bool HW, bool HP, int kOut>
  static void backward_avx2(const Segment<T> &s);
};

#if defined(MS_BCE_HAVE_AVX2_PATH)
MS_BCE_AVX2_BEGIN

// The same float32 operations, 8 lanes, in the same order (no FMA), so the
// vector and portable paths agree; a NaN lane redoes the vector with mul0.
template <class T, bool HW, bool HP>
void Bce::forward_avx2(const Segment<T> &s) {
  using namespace avx2;
  const __m256 one = splat(1.0f), eps = splat(element::Bce::eps());
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
  const Inputs<T, HW, HP> in(s);
  for_each_vector(s.n, [&](int64_t i, int64_t m) __attribute__((always_inline)) {
    const Lanes v = in.load(i, m);
    const __m256 p = v.x, y = v.y;
    const __m256 la = log_via_double(_mm256_add_ps(p, eps));
    const __m256 lb = log_via_double(_mm256_add_ps(_mm256_sub_ps(one, p), eps));
    const __m256 omy = _mm256_sub_ps(one, y);
    __m256 ll = _mm256_add_ps(_mm256_mul_ps(y, la), _mm256_mul_ps(omy, lb));
    __m256 l = HW ? neg(_mm256_mul_ps(v.w, ll)) : neg(ll);
    if (any(is_nan(l))) {
      ll = _mm256_add_ps(mul0(y, la), mul0(omy, lb));
      l = HW ? neg(mul0(v.w, ll)) : neg(ll);
    }
    l = in.kept(v, l);
    if (s.out) store_n(s.out + i, l, m);
    else accumulate(&lo, &hi, m == kLanes ? l : select(lane_mask(m), l, _mm256_setzero_ps()));
  });
  if (!s.out) *s.sum += total(lo, hi);
}

template <class T, bool HW, bool HP, int kOut>
void Bce::backward_avx2(const Segment<T> &s) {
  using namespace avx2;
  constexpr bool kDx = kOut & kGradInput, kDy = kOut & kGradTarget, kDw = HW && (kOut & kGradWeight);
  const __m256 one = splat(1.0f), eps = splat(element::Bce::eps());
  const Inputs<T, HW, HP> in(s);
  for_each_vector(s.n, [&](int64_t i, int64_t m) __attribute__((always_inline)) {
    const Lanes v = in.load(i, m);
    const __m256 p = v.x, y = v.y, w = v.w;
    const __m256 g = s.g ? in.gradient(v, i, m) : splat(static_cast<float>(s.g_scalar));
    const __m256 a = _mm256_add_ps(p, eps), b = _mm256_add_ps(_mm256_sub_ps(one, p), eps);
    const __m256 omy = _mm256_sub_ps(one, y);
    __m256 ra, rb, la, lb, dx, dy, dw;
    __m256 nan = _mm256_setzero_ps();
    if constexpr (kDx) {
      ra = _mm256_div_ps(one, a);
      rb = _mm256_div_ps(one, b);
      dx = _mm256_mul_ps(g, _mm256_mul_ps(w, _mm256_sub_ps(_mm256_mul_ps(omy, rb), _mm256_mul_ps(y, ra))));
      nan = _mm256_or_ps(nan, dx);
    }
    if constexpr (kDy || kDw) {
      la = log_via_double(a);
      lb = log_via_double(b);
    }
    if constexpr (kDy) {
      dy = _mm256_mul_ps(g, _mm256_mul_ps(w, _mm256_sub_ps(lb, la)));
      nan = _mm256_or_ps(nan, dy);
    }
    if constexpr (kDw) {
      dw = neg(_mm256_mul_ps(g, _mm256_add_ps(_mm256_mul_ps(y, la), _mm256_mul_ps(omy, lb))));
      nan = _mm256_or_ps(nan, dw);
    }
    if (any(is_nan(nan))) {  // NaN in any output shows in their OR
      if constexpr (kDx) dx = mul0(g, mul0(w, _mm256_sub_ps(mul0(omy, rb), mul0(y, ra))));
      if constexpr (kDy) dy = mul0(g, mul0(w, _mm256_sub_ps(lb, la)));
      if constexpr (kDw) dw = neg(mul0(g, _mm256_add_ps(mul0(y, la), mul0(omy, lb))));
    }
    if constexpr (kDx) store_n(s.dx + i, in.kept(v, dx), m);
    if constexpr (kDy) store_n(s.dy + i, in.target_gradient(v, dy), m);
    if constexpr (kDw) in.store_kept(s.dw + i, v, low_pd(dw), high_pd(dw), m);
  });
}

MS_BCE_AVX2_END
#endif  // MS_BCE_HAVE_AVX2_PATH

}  // namespace ms_bce

// This file's entry points: losses.def's bce line (every direction, reduction and operand set).
#define MS_BCE_EXPORTS_bce MS_BCE_SELECTED
#include "../common/export_losses.inc"
