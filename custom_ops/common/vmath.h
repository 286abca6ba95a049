// The float32 element maths written once for every lane type V: one float on
// the host (the CPU scalar path) and on the device (CUDA), 8 AVX2 lanes in the
// CPU library.  The functions are vmath_functions.inc's, here in ms_bce::vmath
// for V = float (lanes.h's primitives); ../cpu/lanes_avx2.h includes the same
// text into ms_bce::avx2 for V = F8.  Each is one sequence of IEEE operations
// over primitives found unqualified, so the same bits for every input
// whatever V (tests/test_vmath_lanes.py checks every float32 of both
// domains, float against the AVX2 lanes).
//
//   float vmath::exp_normal(float t);   F8 avx2::exp_normal(F8 t);
//   float vmath::log1p_unit(float e);   F8 avx2::log1p_unit(F8 e);
//
// Accuracy, measured exhaustively against double libm:
//   exp_normal: e^t for t in [-87.5, 0] (results from 1e-38)  <= 1.08 ULP
//   log1p_unit: log1p(e) for e in [0, 1]                      <= 1.00 ULP
// NaN passes through; no fast-math: inf and NaN keep their IEEE meaning.
// Host C++17, or host and device under nvcc (MS_BCE_HD).
#ifndef MS_BCE_COMMON_VMATH_H_
#define MS_BCE_COMMON_VMATH_H_

#include "lanes.h"

namespace ms_bce {
namespace vmath {

#define MS_BCE_VMATH_FN MS_BCE_HD inline
#include "vmath_functions.inc"
#undef MS_BCE_VMATH_FN

}  // namespace vmath
}  // namespace ms_bce

#endif  // MS_BCE_COMMON_VMATH_H_
