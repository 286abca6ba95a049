// The lane primitives of the element maths (vmath.h) for V = float: one
// float32 lane, on the host (C++17) and in CUDA device code (MS_BCE_HD).
// vmath.h's functions (vmath_functions.inc) are templates over a lane type V
// and call only the names below, unqualified: in ms_bce::vmath, V = float
// finds these overloads by ordinary lookup; 8 AVX2 lanes (F8) have their own
// in ms_bce::avx2, where custom_ops/cpu/lanes_avx2.h includes the same text.
//
// A lane type V comes with integer lanes I (decltype(as_int(v))) and a mask
// M; for V = float, I = int32_t and M = bool.  Every lane type provides:
//   V(c), I(c)             c in every lane
//   add sub mul div        one IEEE operation each, rounded once, never fused
//   fma(a, b, c)           a * b + c, rounded once
//   fnma(a, b, c)          -(a * b) + c, rounded once
//   max(a, b)              a > b ? a : b, as x86's maxps: b where either is NaN
//   neg(a), neg_abs(a)     -a and -|a| (the sign bit only: exact, NaN kept)
//   add(I, I)              wrapping 32-bit add
//   not_less(V, V) -> M    a >= b (false where either is NaN)
//   shl(I, n)              shift left by n bits (0 <= n < 32), zeros shifted in
//   as_float(I), as_int(V) the bits of one as the other
//   select(M, a, b)        a where M is set, else b
// Results are bit-identical across lane types for the same arguments (the
// tests check vmath.h's functions over every float32 of their domains).
//
// Fusion: device code uses CUDA's _rn intrinsics, which nvcc never contracts
// into an FMA whatever --fmad says.  Host compilers contract (under
// -ffp-contract=fast, GCC's default in GNU mode) only a multiply whose result
// feeds an add or subtract and nothing else; no multiply in vmath.h does, so
// the host results do not depend on that flag either.  (nvcc may turn max's
// ternary into max.f32, which also gives b for a NaN a, and may differ in the
// sign of a zero result only: max(x, 0) + l does not see it.)
// Rounding: round to nearest, on the host as the CPU kernels run
// (IeeeFloatScope) and always on the device.
#ifndef MS_BCE_COMMON_LANES_H_
#define MS_BCE_COMMON_LANES_H_

#include <math.h>
#include <stdint.h>
#include <string.h>

// As custom_ops/gpu/bce_math.cuh defines it (the same tokens: no redefinition).
// A .cu file must not include params.h first: it defines MS_BCE_HD empty.
#ifndef MS_BCE_HD
#if defined(__CUDACC__)
#define MS_BCE_HD __host__ __device__
#else
#define MS_BCE_HD
#endif
#endif

namespace ms_bce {
namespace vmath {

MS_BCE_HD inline float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
MS_BCE_HD inline float sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
MS_BCE_HD inline float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MS_BCE_HD inline float div(float a, float b) {  // IEEE division (also under nvcc's -prec-div=false)
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
MS_BCE_HD inline float fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return ::fmaf(a, b, c);
#endif
}
// -(a * b) + c = (-a) * b + c exactly: negation is exact, the one rounding is the FMA's.
MS_BCE_HD inline float fnma(float a, float b, float c) { return fma(-a, b, c); }
MS_BCE_HD inline float max(float a, float b) { return a > b ? a : b; }
MS_BCE_HD inline float neg(float a) { return -a; }
MS_BCE_HD inline float neg_abs(float a) { return -::fabsf(a); }
MS_BCE_HD inline int32_t add(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
MS_BCE_HD inline bool not_less(float a, float b) { return a >= b; }
MS_BCE_HD inline int32_t shl(int32_t a, int n) { return static_cast<int32_t>(static_cast<uint32_t>(a) << n); }
MS_BCE_HD inline float as_float(int32_t a) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(a);
#else
  float f;
  memcpy(&f, &a, sizeof f);
  return f;
#endif
}
MS_BCE_HD inline int32_t as_int(float a) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(a);
#else
  int32_t i;
  memcpy(&i, &a, sizeof i);
  return i;
#endif
}
MS_BCE_HD inline float select(bool m, float a, float b) { return m ? a : b; }

}  // namespace vmath
}  // namespace ms_bce

#endif  // MS_BCE_COMMON_LANES_H_
