// AVX2 + FMA + F16C building blocks (8 float32 lanes): loads and stores of
// every storage type, the vector maths the losses need, and the double
// accumulation of sums.  Compiled for those instructions whatever the build
// flags (target pragma); called only after a run-time CPU check
// (cpu_has_avx2()), so one library serves every x86-64 machine.
//
// Accuracy, measured exhaustively against double libm over every float32 of
// the domains (tests/test_vector_math.py re-checks a dense sample):
//   exp_normal: e^t for t in [-87.5, 0] (lanes_avx2.h)       <= 1.08 ULP
//   log1p_unit: log1p(e) for e in [0, 1]                      <= 1.00 ULP
//   log_via_double: log(a) for a > 0, evaluated in double     correctly rounded
//                   (to float) except in rare near-halfway cases
// NaN passes through; no -ffast-math: inf and NaN keep their IEEE meaning.
#ifndef MS_BCE_CPU_SIMD_AVX2_H_
#define MS_BCE_CPU_SIMD_AVX2_H_

#include "common.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MS_BCE_HAVE_AVX2_PATH 1
#include <immintrin.h>

#include <type_traits>

// Code between MS_BCE_AVX2_BEGIN and MS_BCE_AVX2_END is compiled for AVX2 +
// FMA + F16C (the losses put their vector kernels there).
#if defined(__clang__)
#define MS_BCE_AVX2_BEGIN \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,f16c\"))), apply_to = function)")
#define MS_BCE_AVX2_END _Pragma("clang attribute pop")
#else
#define MS_BCE_AVX2_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,f16c\")")
#define MS_BCE_AVX2_END _Pragma("GCC pop_options")
#endif

MS_BCE_AVX2_BEGIN

// The vector helpers are forced inline: GCC's size heuristics otherwise turned
// exp/log1p and the loop bodies into a call per 8 elements (3x slower).
#define MS_BCE_VINLINE inline __attribute__((always_inline))

namespace ms_bce {
namespace avx2 {

constexpr int kLanes = 8;

// ------------------------------------------------------------ load/store ---

MS_BCE_VINLINE __m256 load(const float *p) { return _mm256_loadu_ps(p); }
MS_BCE_VINLINE __m256 load(const Half *p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))); }
MS_BCE_VINLINE __m256 load(const BFloat16 *p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

MS_BCE_VINLINE void store(float *p, __m256 v) { _mm256_storeu_ps(p, v); }
MS_BCE_VINLINE void store(Half *p, __m256 v) {  // round to nearest even, as half_from_float
  _mm_storeu_si128(reinterpret_cast<__m128i *>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
MS_BCE_VINLINE void store(BFloat16 *p, __m256 v) {  // round to nearest even; NaN stays a quiet NaN (as bfloat16_from_float)
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  r = _mm256_blendv_epi8(r, quiet, nan);
  // pack the low 16 bits of the 8 lanes
  const __m256i packed = _mm256_packus_epi32(_mm256_and_si256(r, _mm256_set1_epi32(0xFFFF)), _mm256_setzero_si256());
  const __m256i ordered = _mm256_permute4x64_epi64(packed, 0x08);  // lanes 0-3 and 4-7 side by side
  _mm_storeu_si128(reinterpret_cast<__m128i *>(p), _mm256_castsi256_si128(ordered));
}

// Loads/stores of a partial vector (n < 8 elements) through a padded buffer,
// so the tail of a run goes through exactly the same arithmetic.
template <class T>
MS_BCE_VINLINE __m256 load_partial(const T *p, int64_t n) {
  T buf[kLanes] = {};
  for (int64_t i = 0; i < n; ++i) buf[i] = p[i];
  return load(buf);
}
template <class T>
MS_BCE_VINLINE void store_partial(T *p, __m256 v, int64_t n) {
  T buf[kLanes];
  store(buf, v);
  for (int64_t i = 0; i < n; ++i) p[i] = buf[i];
}

// m elements from p (m = 8, or fewer at a segment's tail).
template <class T>
MS_BCE_VINLINE __m256 load_n(const T *p, int64_t m) { return m == kLanes ? load(p) : load_partial(p, m); }
template <class T>
MS_BCE_VINLINE void store_n(T *p, __m256 v, int64_t m) {
  if (m == kLanes) store(p, v);
  else store_partial(p, v, m);
}

// A weight or pos_weight of a segment: its own storage where it is full-size
// (native; float16 through F16C), else the driver's float32 copy.
template <class T>
MS_BCE_VINLINE __m256 load_operand(const T *native, const float *copy, int64_t i, int64_t m) {
  return native ? load_n(native + i, m) : load_n(copy + i, m);
}

// Lanes [0, m) set.
MS_BCE_VINLINE __m256 lane_mask(int64_t m) {
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(m)),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

// body(i, m) for i = 0, 8, 16, ... with m = 8 elements (fewer for the tail).
template <class Body>
MS_BCE_VINLINE void for_each_vector(int64_t n, Body &&body) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) body(i, kLanes);
  if (i < n) body(i, n - i);
}

// -------------------------------------------------------------- helpers ---

MS_BCE_VINLINE __m256 splat(float v) { return _mm256_set1_ps(v); }
MS_BCE_VINLINE __m256 is_nan(__m256 v) { return _mm256_cmp_ps(v, v, _CMP_UNORD_Q); }
MS_BCE_VINLINE bool any(__m256 mask) { return _mm256_movemask_ps(mask) != 0; }
MS_BCE_VINLINE __m256 abs(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
MS_BCE_VINLINE __m256 neg(__m256 v) { return _mm256_xor_ps(v, _mm256_set1_ps(-0.0f)); }
MS_BCE_VINLINE __m256 neg_abs(__m256 v) { return _mm256_or_ps(v, _mm256_set1_ps(-0.0f)); }  // -|v|
MS_BCE_VINLINE __m256 select(__m256 mask, __m256 if_true, __m256 if_false) { return _mm256_blendv_ps(if_false, if_true, mask); }

// a * b with 0 * inf = 0 (NaN still propagates): the scalar mul0, lane-wise.
MS_BCE_VINLINE __m256 mul0(__m256 a, __m256 b) {
  const __m256 r = _mm256_mul_ps(a, b);
  const __m256 r_nan = is_nan(r);
  if (!any(r_nan)) return r;  // the common case: one compare
  const __m256 input_nan = _mm256_or_ps(is_nan(a), is_nan(b));
  return select(_mm256_andnot_ps(input_nan, r_nan), _mm256_setzero_ps(), r);
}

// Adds the 8 lanes of v to two double accumulators (lanes 0-3, 4-7).
MS_BCE_VINLINE void accumulate(__m256d *lo, __m256d *hi, __m256 v) {
  *lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  *hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

// The accumulators' total, lanes summed in a fixed order.
MS_BCE_VINLINE double total(__m256d lo, __m256d hi) {
  alignas(32) double a[4], b[4];
  _mm256_store_pd(a, lo);
  _mm256_store_pd(b, hi);
  return ((a[0] + b[0]) + (a[1] + b[1])) + ((a[2] + b[2]) + (a[3] + b[3]));
}

// -------------------------------------------------------------- maths ---

// exp_normal(__m256) and log1p_unit(__m256), the float32 maths, are in
// lanes_avx2.h: written once (../common/vmath_functions.inc) for these 8 lanes,
// the portable float and CUDA.

// ---------------------------------------------------- 4 double lanes ---
// Small 'mean'/'sum' reductions of the logits loss are computed in double
// (Segment::precise): a float32 element is off by up to a few ulp, which can
// move a short mean across a rounding boundary (the seed example's lies 0.22
// ulp from one); large reductions stay in float32, within docs/numerics.rst's 1e-6.

MS_BCE_VINLINE __m256d splat_pd(double v) { return _mm256_set1_pd(v); }
MS_BCE_VINLINE __m256d is_nan_pd(__m256d v) { return _mm256_cmp_pd(v, v, _CMP_UNORD_Q); }
MS_BCE_VINLINE __m256d mul0_pd(__m256d a, __m256d b) {
  const __m256d r = _mm256_mul_pd(a, b);
  const __m256d r_nan = is_nan_pd(r);
  if (_mm256_movemask_pd(r_nan) == 0) return r;
  const __m256d input_nan = _mm256_or_pd(is_nan_pd(a), is_nan_pd(b));
  return _mm256_blendv_pd(r, _mm256_setzero_pd(), _mm256_andnot_pd(input_nan, r_nan));
}

// e^t for t <= 0 in double (relative error ~2e-14), subnormal results
// included and 0 where double's exp underflows (t < -745.13), as std::exp and
// the scalar path: an infinite weight times e^-746 is then 0 * inf = 0 there
// too, not inf.  NaN passes.
MS_BCE_VINLINE __m256d exp_nonpos_pd(__m256d t) {
  const __m256d tc = _mm256_max_pd(t, splat_pd(-746.0));  // below: e^t < 2^-1076 rounds to 0
  const __m256d n = _mm256_round_pd(_mm256_mul_pd(tc, splat_pd(1.4426950408889634)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(n, splat_pd(0.6931471805598903), tc);  // ln2 with 11 low bits zero
  r = _mm256_fnmadd_pd(n, splat_pd(5.497923018708371e-14), r);
  __m256d p = splat_pd(2.7576204628023803e-07);
  p = _mm256_fmadd_pd(p, r, splat_pd(2.762504874619337e-06));
  p = _mm256_fmadd_pd(p, r, splat_pd(2.4801626759217302e-05));
  p = _mm256_fmadd_pd(p, r, splat_pd(0.00019841208872770967));
  p = _mm256_fmadd_pd(p, r, splat_pd(0.001388888883798069));
  p = _mm256_fmadd_pd(p, r, splat_pd(0.008333333353641345));
  p = _mm256_fmadd_pd(p, r, splat_pd(0.04166666666681404));
  p = _mm256_fmadd_pd(p, r, splat_pd(0.16666666666648453));
  p = _mm256_fmadd_pd(p, r, splat_pd(0.5000000000000001));
  p = _mm256_fmadd_pd(p, _mm256_mul_pd(r, r), r);
  p = _mm256_add_pd(p, splat_pd(1.0));
  // 2^n, n in [-1077, 0], as 2^n1 (built in the exponent field) times 2^-128
  // when n < -1022, so subnormal results are rounded once
  const __m128i n32 = _mm256_cvtpd_epi32(n);
  const __m256i n64 = _mm256_cvtepi32_epi64(n32);
  const __m256i small = _mm256_cmpgt_epi64(_mm256_set1_epi64x(-1022), n64);
  const __m256i n1 = _mm256_add_epi64(n64, _mm256_and_si256(small, _mm256_set1_epi64x(128)));
  const __m256d scale = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(n1, _mm256_set1_epi64x(1023)), 52));
  const __m256d scale2 = _mm256_blendv_pd(splat_pd(1.0), splat_pd(2.938735877055719e-39), _mm256_castsi256_pd(small));  // 2^-128
  const __m256d res = _mm256_mul_pd(_mm256_mul_pd(p, scale), scale2);
  return _mm256_blendv_pd(res, t, is_nan_pd(t));
}

// log1p(e) for e in [0, 1] in double: 2 atanh(s), s = e / (2 + e) (relative
// error ~1e-15).  NaN passes.
MS_BCE_VINLINE __m256d log1p_unit_pd(__m256d e) {
  const __m256d s = _mm256_div_pd(e, _mm256_add_pd(splat_pd(2.0), e));
  const __m256d t = _mm256_mul_pd(s, s);
  __m256d q = splat_pd(0.029257971153721085);
  q = _mm256_fmadd_pd(q, t, splat_pd(0.07610866576563023));
  q = _mm256_fmadd_pd(q, t, splat_pd(0.06308717490631996));
  q = _mm256_fmadd_pd(q, t, splat_pd(0.07728255253976705));
  q = _mm256_fmadd_pd(q, t, splat_pd(0.09088961745646887));
  q = _mm256_fmadd_pd(q, t, splat_pd(0.1111116766030492));
  q = _mm256_fmadd_pd(q, t, splat_pd(0.1428571348511265));
  q = _mm256_fmadd_pd(q, t, splat_pd(0.20000000004298973));
  q = _mm256_fmadd_pd(q, t, splat_pd(0.33333333333329523));
  const __m256d a = _mm256_fmadd_pd(_mm256_mul_pd(s, t), q, s);
  return _mm256_add_pd(a, a);
}

// The low and high 4 lanes of 8 floats as doubles, and back.
MS_BCE_VINLINE __m256d low_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
MS_BCE_VINLINE __m256d high_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
MS_BCE_VINLINE __m256 to_ps(__m256d lo, __m256d hi) { return _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)); }

// Stores m (<= 8) doubles held as two halves of 4.
MS_BCE_VINLINE void store_pd_n(double *p, __m256d lo, __m256d hi, int64_t m) {
  if (m == kLanes) {
    _mm256_storeu_pd(p, lo);
    _mm256_storeu_pd(p + 4, hi);
    return;
  }
  alignas(32) double buf[kLanes];
  _mm256_store_pd(buf, lo);
  _mm256_store_pd(buf + 4, hi);
  for (int64_t i = 0; i < m; ++i) p[i] = buf[i];
}

// dst[i] = store_as<T>(src[i]) for i < n (rounded to float32, then to T, as
// the scalar path): full-size weight/pos_weight gradients leaving their
// double contributions.
template <class T>
inline void store_doubles(T *dst, const double *src, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store(dst + i, to_ps(_mm256_loadu_pd(src + i), _mm256_loadu_pd(src + i + 4)));
  for (; i < n; ++i) dst[i] = store_as<T>(src[i]);
}

// The number of nonzero bytes of m[0 .. n), n a multiple of 32: a mask's
// kept values, 32 at a time.
inline int64_t count_nonzero_bytes(const uint8_t *m, int64_t n) {
  int64_t zeros = 0;
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t i = 0; i < n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(m + i));
    zeros += __builtin_popcount(static_cast<unsigned>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, zero))));
  }
  return n - zeros;
}

// keep[i] = 1.0f where m[i] != 0, else 0.0f, for i < n, n a multiple of 8: a
// full-size mask's bytes as the vector path reads them, 8 at a time.
inline void mask_to_floats(const uint8_t *m, float *keep, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t i = 0; i < n; i += kLanes) {
    const __m256i bytes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(m + i)));
    const __m256 dropped = _mm256_castsi256_ps(_mm256_cmpeq_epi32(bytes, zero));
    _mm256_storeu_ps(keep + i, _mm256_andnot_ps(dropped, one));
  }
}

// Double lanes [0, m) of the low (first) and high (second) halves of 8.
MS_BCE_VINLINE __m256d lane_mask_pd(int64_t m, bool high) {
  const double base = high ? 4.0 : 0.0;
  return _mm256_cmp_pd(_mm256_setr_pd(base, base + 1, base + 2, base + 3), splat_pd(static_cast<double>(m)),
                       _CMP_LT_OQ);
}

// log(a) of 4 doubles, a > 0 finite (subnormal doubles do not occur: a comes
// from float32).  a = 2^k m, m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s),
// s = (m - 1)/(m + 1), |s| <= 0.1716, series to s^15 (error < 2^-44).
MS_BCE_VINLINE __m256d log_pd(__m256d a) {
  const __m256i bits = _mm256_castpd_si256(a);
  // exponent and mantissa in [1, 2)
  __m256i k = _mm256_sub_epi64(_mm256_srli_epi64(bits, 52), _mm256_set1_epi64x(1023));
  __m256d m = _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi64x(0x000FFFFFFFFFFFFFll)),
                                                  _mm256_set1_epi64x(0x3FF0000000000000ll)));
  const __m256d big = _mm256_cmp_pd(m, _mm256_set1_pd(1.4142135623730951), _CMP_GT_OQ);
  m = _mm256_blendv_pd(m, _mm256_mul_pd(m, _mm256_set1_pd(0.5)), big);
  k = _mm256_add_epi64(k, _mm256_and_si256(_mm256_castpd_si256(big), _mm256_set1_epi64x(1)));
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d s = _mm256_div_pd(_mm256_sub_pd(m, one), _mm256_add_pd(m, one));
  const __m256d t = _mm256_mul_pd(s, s);
  __m256d q = _mm256_set1_pd(1.0 / 15);
  q = _mm256_fmadd_pd(q, t, _mm256_set1_pd(1.0 / 13));
  q = _mm256_fmadd_pd(q, t, _mm256_set1_pd(1.0 / 11));
  q = _mm256_fmadd_pd(q, t, _mm256_set1_pd(1.0 / 9));
  q = _mm256_fmadd_pd(q, t, _mm256_set1_pd(1.0 / 7));
  q = _mm256_fmadd_pd(q, t, _mm256_set1_pd(1.0 / 5));
  q = _mm256_fmadd_pd(q, t, _mm256_set1_pd(1.0 / 3));
  const __m256d log_m = _mm256_mul_pd(_mm256_set1_pd(2.0), _mm256_fmadd_pd(_mm256_mul_pd(s, t), q, s));
  // k to double: k is small (|k| < 1100), so via 32-bit conversion of the low words
  const __m128i k32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(k, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6)));
  const __m256d kd = _mm256_cvtepi32_pd(k32);
  return _mm256_fmadd_pd(kd, _mm256_set1_pd(0.6931471805599453), log_m);
}

// log(a) for 8 float lanes, a >= 0 or NaN, evaluated in double and rounded
// once: correctly rounded but in rare near-halfway cases; log(0) = -inf,
// log(negative) = NaN, log(inf) = inf, NaN passes.
MS_BCE_VINLINE __m256 log_via_double(__m256 a) {
  const __m256d lo = log_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)));
  const __m256d hi = log_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
  __m256 r = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
  const __m256 zero = _mm256_setzero_ps();
  r = select(_mm256_cmp_ps(a, zero, _CMP_EQ_OQ), splat(-INFINITY), r);
  r = select(_mm256_cmp_ps(a, zero, _CMP_LT_OQ), splat(NAN), r);
  r = select(_mm256_cmp_ps(a, splat(INFINITY), _CMP_EQ_OQ), splat(INFINITY), r);
  return select(is_nan(a), a, r);
}

}  // namespace avx2
}  // namespace ms_bce

MS_BCE_AVX2_END

#endif  // x86-64

namespace ms_bce {
// True when this CPU runs the AVX2 path (AVX2, FMA and F16C).
inline bool cpu_has_avx2() {
#if defined(MS_BCE_HAVE_AVX2_PATH)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
  return has;
#else
  return false;
#endif
}
}  // namespace ms_bce

#endif  // MS_BCE_CPU_SIMD_AVX2_H_
