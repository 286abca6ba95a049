// The element maths of ../common/vmath.h for 8 float32 lanes (AVX2 + FMA):
// F8 (the floats), I8 (their 32-bit integer lanes) and M8 (a lane mask, all
// ones or all zeros per lane), the lane primitives of ../common/lanes.h for
// them, and ../common/vmath_functions.inc included here, in the AVX2 target
// region, as avx2::exp_normal(F8) and avx2::log1p_unit(F8), with the
// __m256 overloads the vector kernels call.  Each primitive is one
// instruction and everything is forced inline, so the functions compile to
// the instructions of the hand-written AVX2 maths they replaced (the same
// code, and the same bits over every float32: tests/test_vmath_lanes.py).
// The constructors are explicit: F8 and I8 never stand in for a bare __m256
// or float by accident.
// Compiled for AVX2 + FMA + F16C like the rest of the vector path; call only
// after cpu_has_avx2().
#ifndef MS_BCE_CPU_LANES_AVX2_H_
#define MS_BCE_CPU_LANES_AVX2_H_

#include "simd_avx2.h"

#if defined(MS_BCE_HAVE_AVX2_PATH)

MS_BCE_AVX2_BEGIN

namespace ms_bce {
namespace avx2 {

struct F8 {
  __m256 v;
  F8() = default;
  MS_BCE_VINLINE explicit F8(__m256 x) : v(x) {}
  MS_BCE_VINLINE explicit F8(float c) : v(_mm256_set1_ps(c)) {}
};

struct I8 {
  __m256i v;
  I8() = default;
  MS_BCE_VINLINE explicit I8(__m256i x) : v(x) {}
  MS_BCE_VINLINE explicit I8(int32_t c) : v(_mm256_set1_epi32(c)) {}
};

// A float-domain mask (what blendv_ps reads); integer compares cast to it for free.
struct M8 {
  __m256 v;
};

MS_BCE_VINLINE F8 add(F8 a, F8 b) { return F8(_mm256_add_ps(a.v, b.v)); }
MS_BCE_VINLINE F8 sub(F8 a, F8 b) { return F8(_mm256_sub_ps(a.v, b.v)); }
MS_BCE_VINLINE F8 mul(F8 a, F8 b) { return F8(_mm256_mul_ps(a.v, b.v)); }
MS_BCE_VINLINE F8 div(F8 a, F8 b) { return F8(_mm256_div_ps(a.v, b.v)); }
MS_BCE_VINLINE F8 fma(F8 a, F8 b, F8 c) { return F8(_mm256_fmadd_ps(a.v, b.v, c.v)); }
MS_BCE_VINLINE F8 fnma(F8 a, F8 b, F8 c) { return F8(_mm256_fnmadd_ps(a.v, b.v, c.v)); }
MS_BCE_VINLINE F8 max(F8 a, F8 b) { return F8(_mm256_max_ps(a.v, b.v)); }  // b where either is NaN
MS_BCE_VINLINE F8 neg(F8 a) { return F8(_mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f))); }
MS_BCE_VINLINE F8 neg_abs(F8 a) { return F8(_mm256_or_ps(a.v, _mm256_set1_ps(-0.0f))); }
MS_BCE_VINLINE I8 add(I8 a, I8 b) { return I8(_mm256_add_epi32(a.v, b.v)); }
MS_BCE_VINLINE M8 not_less(F8 a, F8 b) { return M8{_mm256_cmp_ps(a.v, b.v, _CMP_GE_OQ)}; }
MS_BCE_VINLINE I8 shl(I8 a, int n) { return I8(_mm256_slli_epi32(a.v, n)); }  // n a constant once inlined
MS_BCE_VINLINE F8 as_float(I8 a) { return F8(_mm256_castsi256_ps(a.v)); }
MS_BCE_VINLINE I8 as_int(F8 a) { return I8(_mm256_castps_si256(a.v)); }
MS_BCE_VINLINE F8 select(M8 m, F8 a, F8 b) { return F8(_mm256_blendv_ps(b.v, a.v, m.v)); }

// exp_normal(F8), log1p_unit(F8): the text vmath.h compiles for V = float.
#define MS_BCE_VMATH_FN MS_BCE_VINLINE
#include "../common/vmath_functions.inc"
#undef MS_BCE_VMATH_FN

// The same for bare __m256, as the vector kernels call them.
MS_BCE_VINLINE __m256 exp_normal(__m256 t) { return exp_normal(F8(t)).v; }
MS_BCE_VINLINE __m256 log1p_unit(__m256 e) { return log1p_unit(F8(e)).v; }

}  // namespace avx2
}  // namespace ms_bce

MS_BCE_AVX2_END

#endif  // MS_BCE_HAVE_AVX2_PATH

#endif  // MS_BCE_CPU_LANES_AVX2_H_
