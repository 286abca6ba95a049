// BCELoss (binary cross entropy on probabilities) on the CPU: forward per
// reduction and one fused backward giving the gradients of the probabilities,
// the targets and the weight.
//
// MindSpore 2.10's rule (found by experiment; tests/test_bce.py pins it):
//   L = -W [ Y log(a) + (1 - Y) log(b) ],  a = p + eps,  b = (1 - p) + eps,
// with eps = float32(1e-12) added inside each log (no clamp: p = 0, Y = 1 gives
// -log(eps) = 27.631021).  Each element is computed in float32 arithmetic, as
// the built-in computes it (so results, and the documented examples, agree
// with it); float16 and bfloat16 inputs are computed in float32 too, where the
// built-in's float16 kernel loses eps and returns inf at p = 0 or 1.  Sums are
// accumulated in double.  PyTorch instead clamps each log at -100.  p outside
// [0, 1] gives NaN where a or b is negative (the built-in raises a deferred
// RuntimeError).
//
// Gradients are the exact derivatives of this forward (the built-in's are not:
// it returns 0 at p = 0, Y = 0 and an infinite target gradient at p = 0 or 1):
//   dL/dp = W [ (1 - Y) / b - Y / a ]     (finite at p = 0 and 1: +-1/eps)
//   dL/dY = W [ log(b) - log(a) ]          (finite at p = 0 and 1)
//   dL/dW = -[ Y log(a) + (1 - Y) log(b) ]
#include "loss_driver.h"

namespace ms_bce {

struct Bce {
  static constexpr const char *kName = "BCELoss";
  static constexpr float kEps = 1e-12f;

  // Y log(a) + (1 - Y) log(b), in float32: the negated, unweighted loss (= -dL/dW).
  static float log_likelihood(float y, float la, float lb) { return mul0(y, la) + mul0(1.0f - y, lb); }

  // The driver hands over float32-representable values as double: exact casts.
  static double value(double pd, double yd, double wd, double /*unused*/) {
    const float p = static_cast<float>(pd), y = static_cast<float>(yd), w = static_cast<float>(wd);
    return -mul0(w, log_likelihood(y, std::log(p + kEps), std::log((1.0f - p) + kEps)));
  }

  static Grad grad(double pd, double yd, double wd, double /*unused*/, double gd) {
    const float p = static_cast<float>(pd), y = static_cast<float>(yd), w = static_cast<float>(wd);
    const float g = static_cast<float>(gd);
    const float a = p + kEps, b = (1.0f - p) + kEps;
    const float la = std::log(a), lb = std::log(b);
    Grad r;
    r.dx = mul0(g, mul0(w, mul0(1.0f - y, 1.0f / b) - mul0(y, 1.0f / a)));
    r.dy = mul0(g, mul0(w, lb - la));
    r.dw = -mul0(g, log_likelihood(y, la, lb));
    r.dp = 0.0;
    return r;
  }
};

}  // namespace ms_bce

// bce_{forward,backward}_{none,mean,sum}{,_w}
MS_BCE_EXPORT_REDUCTIONS(ms_bce::Bce, bce, false, false, )
MS_BCE_EXPORT_REDUCTIONS(ms_bce::Bce, bce, true, false, _w)
