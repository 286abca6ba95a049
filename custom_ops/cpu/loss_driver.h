// The forward and backward drivers shared by both losses.  A loss supplies
// only its element maths as a policy struct:
//
//   struct Loss {
//     static constexpr const char *kName;                       // for messages
//     static double value(double x, double y, double w, double p);
//     static Grad grad(double x, double y, double w, double p, double g);
//   };
//
// Operand layout of the entry points (HW/HP: weight/pos_weight present):
//   forward : x, y, [w], [p]        -> out (x's shape, or 0-d for mean/sum)
//   backward: x, y, [w], [p], dout  -> dx, dy, [dw], [dp] (each its input's shape)
// x and y have one shape; w and p broadcast to it and are read in place.
#ifndef MS_BCE_CPU_LOSS_DRIVER_H_
#define MS_BCE_CPU_LOSS_DRIVER_H_

#include "common.h"

namespace ms_bce {

enum class Reduction { kNone, kMean, kSum };

// Gradients of one element: dw and dp are this element's contributions,
// summed over broadcast dimensions by the driver.
struct Grad {
  double dx, dy, dw, dp;
};

// The input shapes of an entry point, checked: x == y, w/p broadcast to x.
template <bool HW, bool HP>
struct Operands {
  static constexpr int kCount = 2 + HW + HP;
  static constexpr int kWeight = 2;
  static constexpr int kPosWeight = 2 + HW;
};

template <bool HW, bool HP>
Status check_operand_shapes(const Shape *s) {
  if (!(s[1] == s[0])) return kBadShape;
  for (int k = 2; k < Operands<HW, HP>::kCount; ++k) {
    if (!broadcasts_to(s[k], s[0])) return kBadShape;
  }
  return kOk;
}

// InferShape sees shapes as MindSpore knows them: -1 for a size known only
// at run time, {-2} for an unknown rank.  Such sizes match anything here;
// the kernel checks the real shapes again.
constexpr int64_t kDynamicDim = -1;
constexpr int64_t kDynamicRank = -2;

inline bool is_dynamic_rank(const std::vector<int64_t> &s) { return s.size() == 1 && s[0] == kDynamicRank; }

inline bool dim_matches(int64_t operand, int64_t target) {
  return operand == target || operand == kDynamicDim || target == kDynamicDim;
}

inline bool infer_same_shape(const std::vector<int64_t> &a, const std::vector<int64_t> &b) {
  if (is_dynamic_rank(a) || is_dynamic_rank(b)) return true;
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!dim_matches(a[i], b[i])) return false;
  }
  return true;
}

inline bool infer_broadcasts_to(const std::vector<int64_t> &operand, const std::vector<int64_t> &target) {
  if (is_dynamic_rank(operand) || is_dynamic_rank(target)) return true;
  if (operand.size() > target.size()) return false;
  const size_t lead = target.size() - operand.size();
  for (size_t i = 0; i < operand.size(); ++i) {
    if (operand[i] != 1 && !dim_matches(operand[i], target[lead + i])) return false;
  }
  return true;
}

inline std::string infer_shape_string(const std::vector<int64_t> &s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + (s[i] < 0 ? std::string("None") : std::to_string(s[i]));
  return r + (s.size() == 1 ? ",)" : ")");
}

// Reads the input shapes MindSpore passes to an InferShape function and
// checks them; throws std::invalid_argument (MindSpore turns it into a Python
// RuntimeError) for shapes that do not fit, which with dynamic shapes are
// known only at run time.
template <class Loss, bool HW, bool HP>
std::vector<std::vector<int64_t>> infer_operand_shapes(const int *ndims, int64_t **shapes) {
  constexpr int kCount = Operands<HW, HP>::kCount;
  const std::string head = std::string("For '") + Loss::kName + "', ";
  if (ndims == nullptr || shapes == nullptr) throw std::invalid_argument(head + "no input shapes.");
  std::vector<std::vector<int64_t>> s;
  for (int k = 0; k < kCount; ++k) {
    if (ndims[k] < 0 || ndims[k] > kMaxRank || (ndims[k] > 0 && shapes[k] == nullptr)) {
      throw std::invalid_argument(head + "an input has an unsupported rank (at most " + std::to_string(kMaxRank) + ").");
    }
    s.emplace_back(shapes[k], shapes[k] + ndims[k]);
  }
  const char *names[] = {"input", "target", HW ? "weight" : "pos_weight", "pos_weight"};
  if (!infer_same_shape(s[1], s[0])) {
    throw std::invalid_argument(head + "the shape of 'target' must be the same as the shape of 'input' " +
                                infer_shape_string(s[0]) + ", but got " + infer_shape_string(s[1]) + ".");
  }
  for (int k = 2; k < kCount; ++k) {
    if (!infer_broadcasts_to(s[k], s[0])) {
      throw std::invalid_argument(head + "the shape of '" + names[k] + "' " + infer_shape_string(s[k]) +
                                  " can not broadcast to the shape of 'input' " + infer_shape_string(s[0]) + ".");
    }
  }
  return s;
}

template <class Loss, Reduction R, bool HW, bool HP>
std::vector<int64_t> forward_infer_shape(int *ndims, int64_t **shapes) {
  std::vector<std::vector<int64_t>> s = infer_operand_shapes<Loss, HW, HP>(ndims, shapes);
  return R == Reduction::kNone ? s[0] : std::vector<int64_t>{};
}

template <class Loss, Reduction R, bool HW, bool HP>
std::vector<std::vector<int64_t>> backward_infer_shape(int *ndims, int64_t **shapes) {
  return infer_operand_shapes<Loss, HW, HP>(ndims, shapes);  // each gradient has its input's shape
}

// Pointers to the operands of one call, typed.
template <class T, bool HW, bool HP>
struct OperandPtrs {
  const T *x, *y, *w, *p;
  explicit OperandPtrs(void **params) {
    x = static_cast<const T *>(params[0]);
    y = static_cast<const T *>(params[1]);
    w = HW ? static_cast<const T *>(params[Operands<HW, HP>::kWeight]) : nullptr;
    p = HP ? static_cast<const T *>(params[Operands<HW, HP>::kPosWeight]) : nullptr;
  }
  // Loads element i of x/y and the broadcast operands at their run offsets.
  void load(const Run &r, int64_t i, double *xv, double *yv, double *wv, double *pv) const {
    *xv = to_float(x[r.flat + i]);
    *yv = to_float(y[r.flat + i]);
    *wv = HW ? static_cast<double>(to_float(w[r.off[0] + i * r.step[0]])) : 1.0;
    *pv = HP ? static_cast<double>(to_float(p[r.off[HW ? 1 : 0] + i * r.step[HW ? 1 : 0]])) : 1.0;
  }
};

template <bool HW, bool HP>
BroadcastLayout operand_layout(const Shape *s) {
  const Shape *ops[2];
  int n = 0;
  if (HW) ops[n++] = &s[Operands<HW, HP>::kWeight];
  if (HP) ops[n++] = &s[Operands<HW, HP>::kPosWeight];
  return make_layout(s[0], ops, n);
}

template <class Loss, Reduction R, bool HW, bool HP>
int forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  constexpr int kIn = Operands<HW, HP>::kCount;
  Args a;
  if (Status st = read_args(nparam, kIn + 1, params, ndims, shapes, dtypes, &a)) return st;
  if (Status st = check_operand_shapes<HW, HP>(a.shape)) return st;
  const Shape &out_shape = a.shape[kIn];
  if (R == Reduction::kNone ? !(out_shape == a.shape[0]) : out_shape.rank != 0) return kBadShape;
  const BroadcastLayout layout = operand_layout<HW, HP>(a.shape);
  const int64_t n = a.shape[0].numel;
  return guarded([&] {
    return dispatch_dtype(a.dtype, [&]<class T>() {
      const OperandPtrs<T, HW, HP> in(params);
      T *out = static_cast<T *>(params[kIn]);
      if (R == Reduction::kNone) {
        for_each_run(layout, 0, n, [&](const Run &r) {
          for (int64_t i = 0; i < r.len; ++i) {
            double x, y, w, p;
            in.load(r, i, &x, &y, &w, &p);
            out[r.flat + i] = store_as<T>(Loss::value(x, y, w, p));
          }
        });
        return static_cast<int>(kOk);
      }
      std::vector<double> partial(tile_count(n), 0.0);
      for_each_tile(n, [&](int64_t t, int64_t begin, int64_t end) {
        double acc = 0.0;
        for_each_run(layout, begin, end, [&](const Run &r) {
          for (int64_t i = 0; i < r.len; ++i) {
            double x, y, w, p;
            in.load(r, i, &x, &y, &w, &p);
            acc += Loss::value(x, y, w, p);
          }
        });
        partial[t] = acc;
      });
      const double sum = combine_in_order(partial);
      // mean of an empty tensor is 0/0 = NaN, its sum 0
      out[0] = store_as<T>(R == Reduction::kMean ? sum / static_cast<double>(n) : sum);
      return static_cast<int>(kOk);
    });
  });
}

// Gradient of a broadcast operand: written in place when the operand is full
// size (each element touched once), otherwise summed in double, in flat-index
// order, over the broadcast dimensions.
template <class T>
struct ReducedGrad {
  T *out;
  int64_t numel;
  bool direct;
  std::vector<double> acc;
  ReducedGrad(T *o, int64_t operand_numel, int64_t total) : out(o), numel(operand_numel), direct(operand_numel == total) {
    if (!direct) acc.assign(static_cast<size_t>(operand_numel), 0.0);
  }
  void add(int64_t off, double v) {
    if (direct) out[off] = store_as<T>(v);
    else acc[off] += v;
  }
  void finish() {
    if (direct) return;
    for (int64_t i = 0; i < numel; ++i) out[i] = store_as<T>(acc[i]);
  }
};

template <class Loss, Reduction R, bool HW, bool HP>
int backward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  constexpr int kIn = Operands<HW, HP>::kCount;
  constexpr int kDout = kIn;
  Args a;
  if (Status st = read_args(nparam, 2 * kIn + 1, params, ndims, shapes, dtypes, &a)) return st;
  if (Status st = check_operand_shapes<HW, HP>(a.shape)) return st;
  if (R == Reduction::kNone ? !(a.shape[kDout] == a.shape[0]) : a.shape[kDout].rank != 0) return kBadShape;
  for (int k = 0; k < kIn; ++k) {
    if (!(a.shape[kDout + 1 + k] == a.shape[k])) return kBadShape;  // each gradient has its input's shape
  }
  const BroadcastLayout layout = operand_layout<HW, HP>(a.shape);
  const int64_t n = a.shape[0].numel;
  return guarded([&] {
    return dispatch_dtype(a.dtype, [&]<class T>() {
      const OperandPtrs<T, HW, HP> in(params);
      const T *dout = static_cast<const T *>(params[kDout]);
      T *dx = static_cast<T *>(params[kDout + 1]);
      T *dy = static_cast<T *>(params[kDout + 2]);
      ReducedGrad<T> dw(HW ? static_cast<T *>(params[kDout + 3]) : nullptr,
                        HW ? a.shape[Operands<HW, HP>::kWeight].numel : 0, n);
      ReducedGrad<T> dp(HP ? static_cast<T *>(params[kDout + 3 + HW]) : nullptr,
                        HP ? a.shape[Operands<HW, HP>::kPosWeight].numel : 0, n);
      // for mean/sum the incoming gradient is one value, spread over all elements
      double g_all = 0.0;
      if (R != Reduction::kNone) {
        g_all = to_float(dout[0]);
        if (R == Reduction::kMean) g_all /= static_cast<double>(n);
      }
      for_each_run(layout, 0, n, [&](const Run &r) {
        for (int64_t i = 0; i < r.len; ++i) {
          double x, y, w, p;
          in.load(r, i, &x, &y, &w, &p);
          const double g = R == Reduction::kNone ? static_cast<double>(to_float(dout[r.flat + i])) : g_all;
          const Grad gr = Loss::grad(x, y, w, p, g);
          dx[r.flat + i] = store_as<T>(gr.dx);
          dy[r.flat + i] = store_as<T>(gr.dy);
          if (HW) dw.add(r.off[0] + i * r.step[0], gr.dw);
          if (HP) dp.add(r.off[HW ? 1 : 0] + i * r.step[HW ? 1 : 0], gr.dp);
        }
      });
      if (HW) dw.finish();
      if (HP) dp.finish();
      return static_cast<int>(kOk);
    });
  });
}

}  // namespace ms_bce

// Exports the forward and backward entry points (and their InferShape
// functions) of one loss for one reduction and one operand set, named
// <prefix>_<forward|backward>_<reduction><suffix>.
#define MS_BCE_EXPORT_VARIANT(Loss, prefix, R, rname, HW, HP, suffix)                                            \
  MS_BCE_KERNEL(prefix##_forward_##rname##suffix) {                                                              \
    (void)stream; (void)extra;                                                                                   \
    return ms_bce::forward<Loss, ms_bce::Reduction::R, HW, HP>(nparam, params, ndims, shapes, dtypes);           \
  }                                                                                                              \
  MS_BCE_INFER(prefix##_forward_##rname##suffix) {                                                               \
    (void)extra;                                                                                                 \
    return ms_bce::forward_infer_shape<Loss, ms_bce::Reduction::R, HW, HP>(ndims, shapes);                       \
  }                                                                                                              \
  MS_BCE_KERNEL(prefix##_backward_##rname##suffix) {                                                             \
    (void)stream; (void)extra;                                                                                   \
    return ms_bce::backward<Loss, ms_bce::Reduction::R, HW, HP>(nparam, params, ndims, shapes, dtypes);          \
  }                                                                                                              \
  MS_BCE_INFER_MULTI(prefix##_backward_##rname##suffix) {                                                        \
    (void)extra;                                                                                                 \
    return ms_bce::backward_infer_shape<Loss, ms_bce::Reduction::R, HW, HP>(ndims, shapes);                      \
  }

#define MS_BCE_EXPORT_REDUCTIONS(Loss, prefix, HW, HP, suffix)          \
  MS_BCE_EXPORT_VARIANT(Loss, prefix, kNone, none, HW, HP, suffix)      \
  MS_BCE_EXPORT_VARIANT(Loss, prefix, kMean, mean, HW, HP, suffix)      \
  MS_BCE_EXPORT_VARIANT(Loss, prefix, kSum, sum, HW, HP, suffix)

#endif  // MS_BCE_CPU_LOSS_DRIVER_H_
