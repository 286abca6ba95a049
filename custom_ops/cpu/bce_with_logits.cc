// BCEWithLogitsLoss on the CPU: forward per reduction and one fused backward
// giving the gradients of logits, target, weight and pos_weight.
//
// Stable form (spec section 2): with sp(z) = max(z, 0) + log1p(exp(-|z|)),
//   L  = W * [ (1 - Y) * sp(X) + P * Y * sp(-X) ]
// which keeps full relative accuracy in both tails, unlike the seeds'
// (1 - Y) X + (1 + (P - 1) Y) sp(-X).  Products use mul0, so a zero
// coefficient times an infinite softplus is 0 (X = +inf, Y = 1 gives 0).
#include "loss_driver.h"

namespace ms_bce {

struct BceWithLogits {
  static constexpr const char *kName = "BCEWithLogitsLoss";

  // Unweighted loss: (1 - Y) sp(X) + P Y sp(-X).  It is also dL/dW.
  static double unweighted(double y, double p, double sp_pos, double sp_neg) {
    return mul0(1.0 - y, sp_pos) + mul0(mul0(p, y), sp_neg);
  }

  static double value(double x, double y, double w, double p) {
    const Logistic t = Logistic::of(x);
    const double l = t.log1p_e();
    return mul0(w, unweighted(y, p, t.softplus_pos(l), t.softplus_neg(l)));
  }

  static Grad grad(double x, double y, double w, double p, double g) {
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

}  // namespace ms_bce

// bce_with_logits_{forward,backward}_{none,mean,sum}{,_w,_p,_wp}
MS_BCE_EXPORT_REDUCTIONS(ms_bce::BceWithLogits, bce_with_logits, false, false, )
MS_BCE_EXPORT_REDUCTIONS(ms_bce::BceWithLogits, bce_with_logits, true, false, _w)
MS_BCE_EXPORT_REDUCTIONS(ms_bce::BceWithLogits, bce_with_logits, false, true, _p)
MS_BCE_EXPORT_REDUCTIONS(ms_bce::BceWithLogits, bce_with_logits, true, true, _wp)
