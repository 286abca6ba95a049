// Two losses for the tests, with scalar element maths only (no vector
// path), written once for the CPU driver (tests/native/scalar_loss_check.cc)
// and the GPU driver on its host backend (tests/native/gpu_host_check.cc):
// each library's Grad is the template argument.  MS_BCE_HD: the library's
// host/device marker (empty for the CPU).
#ifndef MS_BCE_TESTS_NATIVE_TEST_LOSSES_H_
#define MS_BCE_TESTS_NATIVE_TEST_LOSSES_H_

#ifndef MS_BCE_HD
#define MS_BCE_HD
#endif

namespace ms_bce_test {

// L = W P (X - Y)^2: every operand enters, so every gradient is checked.
template <class Grad>
struct SquaredError {
  static constexpr const char *kName = "SquaredErrorForTest";
  MS_BCE_HD static double value(double x, double y, double w, double p) { return w * p * (x - y) * (x - y); }
  MS_BCE_HD static Grad grad(double x, double y, double w, double p, double g) {
    const double d = x - y;
    return Grad{2.0 * g * w * p * d, -2.0 * g * w * p * d, g * p * d * d, g * w * d * d};
  }
};

// L = A W P (X - Y - B)^2 with two scalar parameters, theta = (A, B), in
// that order (custom_ops/common/params.h).
template <class Grad>
struct ScaledSquaredError {
  static constexpr const char *kName = "ScaledSquaredErrorForTest";
  static constexpr int kParams = 2;
  MS_BCE_HD static double value(double x, double y, double w, double p, const float *theta) {
    const double d = x - y - theta[1];
    return theta[0] * w * p * d * d;
  }
  MS_BCE_HD static Grad grad(double x, double y, double w, double p, double g, const float *theta) {
    const double a = theta[0], d = x - y - theta[1];
    return Grad{2.0 * g * a * w * p * d, -2.0 * g * a * w * p * d, g * a * p * d * d, g * a * w * d * d};
  }
};

}  // namespace ms_bce_test

#endif  // MS_BCE_TESTS_NATIVE_TEST_LOSSES_H_
