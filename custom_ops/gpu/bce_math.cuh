// The per-element mathematics of both losses and the storage types, as
// __host__ __device__ functions: the GPU kernels call them on the device, and
// the test suite compiles this same header on the host (g++, without CUDA) and
// checks it against tests/reference.py and the CPU library.
//
// Formulas and conventions are the CPU kernels' (custom_ops/cpu/bce_with_logits.cc,
// custom_ops/cpu/bce.cc), operation for operation:
// - BCEWithLogitsLoss in double, stable softplus form, mul0 (0 * inf = 0);
// - BCELoss in float32 per element, eps = float32(1e-12) inside each log;
// - results formed in double and rounded once to the storage type.
// The library is built without --use_fast_math and with --fmad=false, so the
// device performs exactly these IEEE operations (denormals kept, no
// contraction into FMA); only the device's double exp/log1p/log differ from
// glibc's (CUDA documents <= 1-2 ulp in double; BCELoss's float32 logs are
// rounded from double, so they agree with the CPU library's but in rare
// near-halfway cases).
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

// Results are formed in double; each storage type rounds from there (via
// float, as the CPU library does).
template <class T> struct Store;
template <> struct Store<float> {
  MS_BCE_HD static float from(double v) { return static_cast<float>(v); }
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

// a * b, except that an exactly-zero factor gives exactly zero even when the
// other is infinite (a term whose coefficient is zero contributes nothing).
// NaN still propagates.
template <class F>
MS_BCE_HD inline F mul0(F a, F b) {
  const F r = a * b;
  return (r != r && a == a && b == b) ? F(0) : r;
}

// softplus(+-x) and sigmoid(+-x) of one logit from a single exp(-|x|):
//   softplus(z) = max(z, 0) + log1p(exp(-|z|))   (never exp of a large positive)
//   sigmoid(|x|) = 1 / (1 + e),  sigmoid(-|x|) = e / (1 + e)
// All four are exact in both tails; NaN gives NaN, +-inf gives 0/inf and 0/1.
struct Logistic {
  double e;  // exp(-|x|)
  double x;
  MS_BCE_HD static Logistic of(double x) { return Logistic{::exp(-::fabs(x)), x}; }
  MS_BCE_HD double log1p_e() const { return ::log1p(e); }
  MS_BCE_HD double softplus_pos(double l) const { return (x > 0.0 ? x : 0.0) + l; }   // softplus(x), l = log1p_e()
  MS_BCE_HD double softplus_neg(double l) const { return (x < 0.0 ? -x : 0.0) + l; }  // softplus(-x)
  MS_BCE_HD double sigmoid_pos() const { return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e); }  // sigmoid(x)
  MS_BCE_HD double sigmoid_neg() const { return x >= 0.0 ? e / (1.0 + e) : 1.0 / (1.0 + e); }  // sigmoid(-x)
};

// Gradients of one element: dw and dp are this element's contributions,
// summed over broadcast dimensions by the driver.
struct Grad {
  double dx, dy, dw, dp;
};

// BCEWithLogitsLoss, stable form (docs/numerics.rst), with sp(z) = softplus(z):
//   L = W [ (1 - Y) sp(X) + P Y sp(-X) ]
struct BceWithLogits {
  static constexpr const char *kName = "BCEWithLogitsLoss";

  // Unweighted loss: (1 - Y) sp(X) + P Y sp(-X).  It is also dL/dW.
  MS_BCE_HD static double unweighted(double y, double p, double sp_pos, double sp_neg) {
    return mul0(1.0 - y, sp_pos) + mul0(mul0(p, y), sp_neg);
  }

  MS_BCE_HD static double value(double x, double y, double w, double p) {
    const Logistic t = Logistic::of(x);
    const double l = t.log1p_e();
    return mul0(w, unweighted(y, p, t.softplus_pos(l), t.softplus_neg(l)));
  }

  MS_BCE_HD static Grad grad(double x, double y, double w, double p, double g) {
    const Logistic t = Logistic::of(x);
    const double l = t.log1p_e();
    const double sp_pos = t.softplus_pos(l), sp_neg = t.softplus_neg(l);
    const double py = mul0(p, y);
    Grad r;
    // dX = G W [(1 - Y) sigmoid(X) - P Y sigmoid(-X)]: no cancellation in either tail
    r.dx = mul0(g, mul0(w, mul0(1.0 - y, t.sigmoid_pos()) - mul0(py, t.sigmoid_neg())));
    // dY = G W [P sp(-X) - sp(X)]  (= G W [-X + (P - 1) sp(-X)])
    r.dy = mul0(g, mul0(w, mul0(p, sp_neg) - sp_pos));
    r.dw = mul0(g, unweighted(y, p, sp_pos, sp_neg));
    r.dp = mul0(g, mul0(w, mul0(y, sp_neg)));
    return r;
  }
};

// BCELoss, MindSpore 2.10's rule, each element in float32:
//   L = -W [ Y log(a) + (1 - Y) log(b) ],  a = p + eps,  b = (1 - p) + eps
// with exact derivatives of that guarded forward (finite at p = 0 and 1).
struct Bce {
  static constexpr const char *kName = "BCELoss";

  // eps = float32(1e-12); a literal, not a static member, so device code needs no symbol
  MS_BCE_HD static float eps() { return 1e-12f; }

  // Y log(a) + (1 - Y) log(b), in float32: the negated, unweighted loss (= -dL/dW).
  MS_BCE_HD static float log_likelihood(float y, float la, float lb) { return mul0(y, la) + mul0(1.0f - y, lb); }

  // log of a float32, correctly rounded: evaluated in double, as the CPU library does
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

}  // namespace gpu
}  // namespace ms_bce

#endif  // MS_BCE_GPU_BCE_MATH_CUH_
