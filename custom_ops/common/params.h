// A loss's scalar parameters (a focal loss's gamma, a label-smoothing
// epsilon), shared by the CPU and the GPU library.  A policy that has any
// declares how many, and takes them as a last argument of its element
// functions:
//
//   static constexpr int kParams = 2;  // ms_bce/_losses.py lists their names, in this order
//   static double value(double x, double y, double w, double p, const float *theta);
//   static Grad grad(double x, double y, double w, double p, double g, const float *theta);
//   static double value_precise(double x, double y, double w, double p, const float *theta);  // optional
//
// They arrive as one more input, t (aot_abi.h's operand layout), a 1-D
// float32 tensor the drivers check and hand on as a pointer (host memory on
// the CPU, device memory on the GPU); a policy without kParams keeps the
// signatures without theta.  After the loss's own values t carries the
// drivers' options, kOptions of them, which every loss takes (ms_bce/_losses.py
// OPTIONS): theta[kParams] is the label smoothing epsilon, applied by the
// drivers (smooth_target, smoothed_target_grad), so a policy never sees it.  Host-only C++17, or host and device under nvcc
// (MS_BCE_HD, defined by the GPU library before it includes this).
#ifndef MS_BCE_COMMON_PARAMS_H_
#define MS_BCE_COMMON_PARAMS_H_

#include <math.h>

#include <type_traits>

#include "aot_abi.h"

#ifndef MS_BCE_HD
#define MS_BCE_HD
#endif

namespace ms_bce {

// Loss::kParams, or 0 when the policy declares none.
template <class Loss, class = void>
struct ParamCount : std::integral_constant<int, 0> {};
template <class Loss>
struct ParamCount<Loss, std::void_t<decltype(Loss::kParams)>> : std::integral_constant<int, Loss::kParams> {};

// The drivers' options in t, after the loss's own parameters: label smoothing.
constexpr int kOptions = 1;

// The operand set of a loss's entry points (HW, HP, HM: with weight,
// pos_weight, mask).
template <class Loss, bool HW, bool HP, bool HM = false>
constexpr OperandSet kOperandsOf{HW, HP, ParamCount<Loss>::value + kOptions, HM};

// A call's label smoothing epsilon (in [0, 1]: ms_bce/_validate.py checks it), from t.
template <class Loss>
MS_BCE_HD inline double label_smoothing_of(const float *theta) {
  return theta[ParamCount<Loss>::value];
}

// The smoothed target Y (1 - eps) + eps / 2 (Keras' rule), in double, one FMA:
// the caller rounds it once to the operands' dtype, as the composition
// does, so that eps = 0 gives Y itself.
MS_BCE_HD inline double smooth_target(double y, double eps) { return ::fma(y, 1.0 - eps, 0.5 * eps); }

// A call's scalar parameters, the t operand's data (nullptr: none).
inline const float *theta_of(OperandSet ops, void **params) {
  return ops.np > 0 ? static_cast<const float *>(params[ops.theta()]) : nullptr;
}

// True when the policy has value_precise (its loss in double, for small
// reductions: ../common/element_math.h, kPreciseReductionMax).
template <class Loss, class = void>
struct HasPreciseValue : std::false_type {};
template <class Loss>
struct HasPreciseValue<Loss, std::void_t<decltype(&Loss::value_precise)>> : std::true_type {};

// The policy's element functions, with theta where it takes it; precise:
// value_precise where the policy has one.
template <class Loss>
MS_BCE_HD inline double loss_value(const float *theta, double x, double y, double w, double p,
                                   bool precise = false) {
  if constexpr (HasPreciseValue<Loss>::value) {
    if (precise) {
      if constexpr (ParamCount<Loss>::value > 0) return Loss::value_precise(x, y, w, p, theta);
      else return Loss::value_precise(x, y, w, p);
    }
  }
  (void)precise;
  if constexpr (ParamCount<Loss>::value > 0) {
    return Loss::value(x, y, w, p, theta);
  } else {
    (void)theta;
    return Loss::value(x, y, w, p);
  }
}

template <class Loss>
MS_BCE_HD inline auto loss_grad(const float *theta, double x, double y, double w, double p, double g) {
  if constexpr (ParamCount<Loss>::value > 0) {
    return Loss::grad(x, y, w, p, g, theta);
  } else {
    (void)theta;
    return Loss::grad(x, y, w, p, g);
  }
}

}  // namespace ms_bce

#endif  // MS_BCE_COMMON_PARAMS_H_
