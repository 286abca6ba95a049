// The storage types of the GPU kernels, as __host__ __device__ code, and the
// loss policies they run: the element maths is ../common/element_math.h's,
// the CPU library's portable path (the test suite compiles this header on the
// host, g++ without CUDA, and checks it against tests/reference.py and the
// CPU library).
//
// The library is built without --use_fast_math and with --fmad=false, so the
// device performs exactly the IEEE operations written (denormals kept, no
// contraction into FMA; the float32 steps use CUDA's _rn intrinsics,
// ../common/lanes.h); only the device's double exp/log1p/log, which serve the
// rare results float32 cannot carry and BCELoss's logs, differ from glibc's
// (CUDA documents <= 1-2 ulp in double; BCELoss's float32 logs are rounded
// from double, so they agree with the CPU library's but in rare near-halfway
// cases).
#ifndef MS_BCE_GPU_BCE_MATH_CUH_
#define MS_BCE_GPU_BCE_MATH_CUH_

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define MS_BCE_HD __host__ __device__
#else
#include <cmath>
#define MS_BCE_HD
#endif
#include "../common/element_math.h"
#if !defined(__CUDA_ARCH__)
#include "../common/float16.h"  // the host conversions: the CPU library's algorithms
#endif

namespace ms_bce {
namespace gpu {

// ------------------------------------------------------- storage types ---

// float16 and bfloat16 as raw bits: the same 2-byte layout as cuda's __half
// and __nv_bfloat16, converted exactly below.
struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

// Host conversions: ../common/float16.h; device conversions are CUDA's exact,
// round-to-nearest-even intrinsics.
MS_BCE_HD inline float to_float(float f) { return f; }
MS_BCE_HD inline float to_float(Half h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h.bits));
#else
  return half_bits_to_float(h.bits);
#endif
}
MS_BCE_HD inline float to_float(BFloat16 b) {
#if defined(__CUDA_ARCH__)
  return __bfloat162float(__ushort_as_bfloat16(b.bits));
#else
  return bfloat16_bits_to_float(b.bits);
#endif
}

// Results are handed over in double; each storage type rounds from there
// (via float, as the CPU library does).
template <class T> struct Store;
template <> struct Store<float> {
  MS_BCE_HD static float from(double v) { return static_cast<float>(v); }
};
template <> struct Store<double> {  // (a masked mean's count of kept elements, in device scratch)
  MS_BCE_HD static double from(double v) { return v; }
};
template <> struct Store<Half> {
  MS_BCE_HD static Half from(double v) {
#if defined(__CUDA_ARCH__)
    return Half{__half_as_ushort(__float2half_rn(static_cast<float>(v)))};
#else
    return Half{float_to_half_bits(static_cast<float>(v))};
#endif
  }
};
template <> struct Store<BFloat16> {
  MS_BCE_HD static BFloat16 from(double v) {
#if defined(__CUDA_ARCH__)
    return BFloat16{__bfloat16_as_ushort(__float2bfloat16_rn(static_cast<float>(v)))};
#else
    return BFloat16{float_to_bfloat16_bits(static_cast<float>(v))};
#endif
  }
};
template <class T> MS_BCE_HD inline T store_as(double v) { return Store<T>::from(v); }

// ------------------------------------------------------- element maths ---

// Written once for both libraries: ../common/element_math.h.
using ms_bce::Grad;
using ms_bce::mul0;
using BceWithLogits = element::BceWithLogits;
using Bce = element::Bce;
using SigmoidFocal = element::SigmoidFocal;

}  // namespace gpu
}  // namespace ms_bce

#endif  // MS_BCE_GPU_BCE_MATH_CUH_
