// The unit a loss's element maths works on (Segment, Grad) and the choice
// between its vector and its portable path.  A loss supplies only its
// element maths, as a policy struct (ms_bce::<Policy> of its losses.def line):
//
//   struct Loss {
//     static constexpr const char *kName;        // the operator in messages
//     static constexpr bool kUnitIntervalInput;  // optional: x must lie in [0, 1] (NaN passes),
//     static constexpr const char *kInputName;   // and x's name in the message (domain_check.h)
//     static double value(double x, double y, double w, double p);  // portable path
//     static Grad grad(double x, double y, double w, double p, double g);
//     static double value_precise(double x, double y, double w, double p);  // optional: small reductions
//     // optional, both or neither (without them the loss runs the portable path only):
//     template <class T, bool HW, bool HP> static void forward_avx2(const Segment<T> &);
//     template <class T, bool HW, bool HP, int kOut> static void backward_avx2(const Segment<T> &);
//   };
//
// A loss with scalar parameters (a focal loss's gamma) declares kParams and
// takes `const float *theta` last in value() and grad() (../common/params.h);
// its vector functions read them from Segment::theta.
#ifndef MS_BCE_CPU_SEGMENT_H_
#define MS_BCE_CPU_SEGMENT_H_

#include <cstdint>

#include "common.h"
#include "lanes_avx2.h"

namespace ms_bce {

// Which gradients a backward entry point produces (a bit mask), in this order.
enum GradOutput : int { kGradInput = 1, kGradTarget = 2, kGradWeight = 4, kGradPosWeight = 8 };

template <bool HW, bool HP>
constexpr int kAllGrads = kGradInput | kGradTarget | (HW ? kGradWeight : 0) | (HP ? kGradPosWeight : 0);

// The gradients a backward direction produces.
template <bool HW, bool HP>
constexpr int grad_outputs(Direction dir) {
  switch (dir) {
    case Direction::kBackward: return kAllGrads<HW, HP>;
    case Direction::kBackwardInput: return kGradInput;
    case Direction::kBackwardTarget: return kGradTarget;
    case Direction::kBackwardWeight: return kGradWeight;
    case Direction::kBackwardPosWeight: return kGradPosWeight;
    case Direction::kForward: break;
  }
  return 0;
}

// The unit a loss kernel works on: up to kSegment consecutive elements (flat
// indices f0 .. f0 + n - 1).  x, y and the full-size outputs are contiguous;
// weight and pos_weight arrive as contiguous float32 views of their broadcast
// values (nullptr when absent), whatever their shape; weight/pos_weight
// gradients leave as per-element contributions in double for the driver to sum.
constexpr int64_t kSegment = 1024;

template <class T>
struct Segment {
  int64_t n = 0;
  const T *x = nullptr, *y = nullptr;
  const float *w = nullptr, *p = nullptr;
  // the vector path: a full-size weight/pos_weight read in its own storage
  // type instead (w/p are then nullptr)
  const T *w_native = nullptr, *p_native = nullptr;
  // forward: out for 'none', else the sum is added to *sum
  T *out = nullptr;
  double *sum = nullptr;
  bool precise = false;  // a reduction small enough (kPreciseReductionMax) to compute each element in double
  const float *theta = nullptr;  // the loss's scalar parameters (kParams of them; nullptr: none)
  // The drivers' element options.  keep: 1/0 per element where a mask
  // drops elements (nullptr: all kept); eps: the label smoothing.  The
  // vector path applies both in its lanes (inputs_avx2.h's Inputs: a policy
  // reads its inputs through it and its results leave through kept()); on
  // the portable path ChunkOperands has already made the smoothed targets
  // and the dropped elements' stand-ins, and the driver zeroes their results.
  const float *keep = nullptr;
  double eps = 0.0;
  // backward: the incoming gradient per element (g, 'none') or one value
  const T *g = nullptr;
  double g_scalar = 0.0;                 // 'mean': dout / numel, unrounded
  T *dx = nullptr, *dy = nullptr;        // nullptr when not wanted
  double *dw = nullptr, *dp = nullptr;   // contributions, unrounded; nullptr when not wanted
};

// The portable path: the loss's scalar element functions (../common/element_math.h).
template <class Loss, class T, bool HW, bool HP>
void forward_segment_scalar(const Segment<T> &s) {
  double acc = 0.0;
  for (int64_t i = 0; i < s.n; ++i) {
    const double v = loss_value<Loss>(s.theta, to_float(s.x[i]), to_float(s.y[i]), HW ? s.w[i] : 1.0,
                                      HP ? s.p[i] : 1.0, s.precise);
    if (s.out) s.out[i] = store_as<T>(v);
    else acc += v;
  }
  if (!s.out) *s.sum += acc;
}

template <class Loss, class T, bool HW, bool HP>
void backward_segment_scalar(const Segment<T> &s) {
  for (int64_t i = 0; i < s.n; ++i) {
    const double g = s.g ? static_cast<double>(to_float(s.g[i])) : s.g_scalar;
    const Grad r =
        loss_grad<Loss>(s.theta, to_float(s.x[i]), to_float(s.y[i]), HW ? s.w[i] : 1.0, HP ? s.p[i] : 1.0, g);
    if (s.dx) s.dx[i] = store_as<T>(r.dx);
    if (s.dy) s.dy[i] = store_as<T>(r.dy);
    if (s.dw) s.dw[i] = r.dw;
    if (s.dp) s.dp[i] = r.dp;
  }
}

// True when the loss has a vector path (both AVX2 functions); the drivers
// take it only then, so a loss with scalar maths alone builds and runs.
template <class Loss>
constexpr bool has_vector_path() {
  return requires(const Segment<float> &s) {
    Loss::template forward_avx2<float, false, false>(s);
    Loss::template backward_avx2<float, false, false, kGradInput>(s);
  };
}

// A segment on the vector path where this CPU and the loss have one, else
// the portable one.
template <class Loss, class T, bool HW, bool HP>
void forward_segment(const Segment<T> &s, bool vector) {
#if defined(MS_BCE_HAVE_AVX2_PATH)
  if constexpr (has_vector_path<Loss>()) {
    if (vector) {
      Loss::template forward_avx2<T, HW, HP>(s);
      return;
    }
  }
#endif
  (void)vector;
  forward_segment_scalar<Loss, T, HW, HP>(s);
}

template <class Loss, class T, bool HW, bool HP, int kOut>
void backward_segment(const Segment<T> &s, bool vector) {
#if defined(MS_BCE_HAVE_AVX2_PATH)
  if constexpr (has_vector_path<Loss>()) {
    if (vector) {
      Loss::template backward_avx2<T, HW, HP, kOut>(s);
      return;
    }
  }
#endif
  (void)vector;
  backward_segment_scalar<Loss, T, HW, HP>(s);
}

}  // namespace ms_bce

#endif  // MS_BCE_CPU_SEGMENT_H_
