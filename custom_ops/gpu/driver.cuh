// The entry points of the GPU library, written once over a Backend that runs
// two kinds of parallel loop:
//   be.elementwise(n, fn)          fn(i, acc) for every i in [0, n)
//   be.reduce<K>(plan, src, sink)  the ReducePlan's threads and block trees
// CudaBackend (cuda_backend.cuh) launches them as kernels on MindSpore's
// stream; HostBackend (host_backend.h) runs the very same functors and index
// arithmetic in plain loops, so that the test suite can check everything but
// the launch itself on a machine without a GPU.
//
// Operand layout, checks and status codes: ../common/aot_abi.h; the entry
// points themselves are generated from ../common/losses.def (Entry below is
// their runner; each .cu file exports the losses it selects).
#ifndef MS_BCE_GPU_DRIVER_CUH_
#define MS_BCE_GPU_DRIVER_CUH_

#include <stddef.h>
#include <stdint.h>

#include <type_traits>

#include "../common/aot_abi.h"
#include "bce_math.cuh"  // (defines MS_BCE_HD, which params.h uses)
#include "indexing.cuh"
#include "../common/params.h"

namespace ms_bce {
namespace gpu {

// ------------------------------------------------------------ functors ---

// The operands of one call: x, y contiguous; w, p read in place through
// the broadcast layout, and the mask m (bool bytes) through its own; theta,
// the loss's scalar parameters and then the drivers' options (params.h):
// eps, the label smoothing, at theta[eps_index] -- y is smoothed as the CPU
// driver smooths it (rounded once to T).
template <class T, bool HW, bool HP, bool HM = false>
struct Operands {
  const T *x, *y, *w, *p;
  const uint8_t *m;
  const float *theta;
  int eps_index;
  OperandLayout layout, mask_layout;

  MS_BCE_HD double eps() const { return theta[eps_index]; }

  // False where the mask drops element i (its values are then not read):
  // the functors give it 0, and nothing to any sum.
  MS_BCE_HD bool kept(int64_t i) const {
    if constexpr (HM) {
      int64_t off[kMaxOperands];
      mask_layout.offsets(i, off);
      return m[off[0]] != 0;
    } else {
      (void)i;
      return true;
    }
  }

  MS_BCE_HD void load(int64_t i, double *xv, double *yv, double *wv, double *pv) const {
    *xv = to_float(x[i]);
    *yv = to_float(y[i]);
    const double e = eps();
    if (e != 0.0) *yv = to_float(store_as<T>(smooth_target(*yv, e)));
    *wv = 1.0;
    *pv = 1.0;
    if constexpr (HW || HP) {
      int64_t off[kMaxOperands];
      layout.offsets(i, off);
      if (HW) *wv = to_float(w[off[0]]);
      if (HP) *pv = to_float(p[off[HW ? 1 : 0]]);
    }
  }
};

// forward, 'none': out[i] = L(i) (0 where the mask drops it)
template <class Loss, class T, bool HW, bool HP, bool HM>
struct ForwardElementwise {
  Operands<T, HW, HP, HM> in;
  T *out;
  MS_BCE_HD void operator()(int64_t i, double * /*acc*/) const {
    if (!in.kept(i)) {
      out[i] = store_as<T>(0.0);
      return;
    }
    double x, y, w, p;
    in.load(i, &x, &y, &w, &p);
    out[i] = store_as<T>(loss_value<Loss>(in.theta, x, y, w, p));
  }
};

// forward, 'mean'/'sum': acc += L(i); precise: each L(i) in double (a
// reduction of at most kPreciseReductionMax elements, as the CPU library)
template <class Loss, class T, bool HW, bool HP, bool HM>
struct ForwardSum {
  Operands<T, HW, HP, HM> in;
  bool precise;
  MS_BCE_HD void operator()(int64_t i, double *acc) const {
    if (!in.kept(i)) return;
    double x, y, w, p;
    in.load(i, &x, &y, &w, &p);
    acc[0] += loss_value<Loss>(in.theta, x, y, w, p, precise);
  }
};

// backward: writes the element-wise gradients it is given pointers for
// (dx, dy, and dw/dp of full-size operands, whose offset is i) and adds
// the broadcast operands' contributions to acc: K = 0 none, K = 1 the one
// that first_is_w names, K = 2 dw then dp.
template <class Loss, class T, bool HW, bool HP, bool HM, int K>
struct BackwardElement {
  Operands<T, HW, HP, HM> in;
  const T *dout;
  bool per_element_g;  // 'none': G = dout[i]; else G = dout[0] / divisor
  double divisor;      // numel for 'mean', 1 for 'sum'; a masked 'mean': *kept * divisor
  T *dx, *dy, *dw_full, *dp_full;  // null: not written here
  bool first_is_w;
  const double *kept = nullptr;  // a masked 'mean': the mask's kept values (device scratch)

  MS_BCE_HD void operator()(int64_t i, double *acc) const {
    if (!in.kept(i)) {  // dropped: every gradient 0, whatever dout holds there
      const T zero = store_as<T>(0.0);
      if (dx) dx[i] = zero;
      if (dy) dy[i] = zero;
      if (dw_full) dw_full[i] = zero;
      if (dp_full) dp_full[i] = zero;
      return;
    }
    double x, y, w, p;
    in.load(i, &x, &y, &w, &p);
    const double g = per_element_g ? static_cast<double>(to_float(dout[i]))
                                   : static_cast<double>(to_float(dout[0])) / (kept ? *kept * divisor : divisor);
    const Grad gr = loss_grad<Loss>(in.theta, x, y, w, p, g);
    if (dx) dx[i] = store_as<T>(gr.dx);
    if (dy) {  // with label smoothing: times 1 - eps, rounded again (the CPU driver's scale_target_gradient)
      const double e = in.eps();
      dy[i] = e != 0.0 ? store_as<T>(static_cast<double>(to_float(store_as<T>(gr.dy))) * (1.0 - e)) : store_as<T>(gr.dy);
    }
    if (dw_full) dw_full[i] = store_as<T>(gr.dw);
    if (dp_full) dp_full[i] = store_as<T>(gr.dp);
    if constexpr (K == 1) acc[0] += first_is_w ? gr.dw : gr.dp;
    if constexpr (K == 2) {
      acc[0] += gr.dw;
      acc[1] += gr.dp;
    }
  }
};

// Where a reduction's sums go: a chunk's partial sums (partial[k] set), or
// the results, rounded once to T (out[k][o] = sum / divisor; a masked
// 'mean': sum / (*kept * divisor)).
template <class T, int K>
struct ReduceSink {
  T *out[2];
  double divisor;
  double *partial[2];
  int64_t outputs;
  const double *kept = nullptr;
  MS_BCE_HD void operator()(int64_t o, int64_t chunk, const double *acc) const {
    for (int k = 0; k < K; ++k) {
      if (partial[k]) partial[k][chunk * outputs + o] = acc[k];
      else out[k][o] = store_as<T>(acc[k] / (kept ? *kept * divisor : divisor));
    }
  }
};

// The mask's own kept values (nonzero bytes), summed: a masked 'mean' divides
// by them times the elements each mask value reaches.
struct KeptSource {
  const uint8_t *m;
  MS_BCE_HD void operator()(int64_t i, double *acc) const { acc[0] += m[i] != 0 ? 1.0 : 0.0; }
};

// The second pass reads the partial sums back.
template <int K>
struct PartialSource {
  const double *partial[2];
  MS_BCE_HD void operator()(int64_t i, double *acc) const {
    for (int k = 0; k < K; ++k) acc[k] += partial[k][i];
  }
};

// -------------------------------------------------------------- driver ---

// Scratch from the backend, released however the call ends.
template <class Backend>
struct Scratch {
  Backend &be;
  void *ptr = nullptr;
  explicit Scratch(Backend &b) : be(b) {}
  ~Scratch() {
    if (ptr) be.release(ptr);
  }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
};

// A reduction into out[0..K) of T: one pass when the plan has one chunk,
// else chunk partials (K * chunks * outputs doubles, bounded by the plan:
// chunks > 1 only when the outputs need fewer than kTargetBlocks blocks)
// and a second pass that sums them in chunk order.  Deterministic either way.
template <int K, class T, class Backend, class Src>
Status run_reduction(Backend &be, const ReducePlan &plan, const Src &src, T *out0, T *out1, double divisor,
                     const double *kept = nullptr) {
  ReduceSink<T, K> sink{{out0, out1}, divisor, {nullptr, nullptr}, plan.outputs, kept};
  if (plan.chunks == 1) return be.template reduce<K>(plan, src, sink);
  const size_t per = static_cast<size_t>(plan.chunks) * static_cast<size_t>(plan.outputs);
  Scratch<Backend> scratch(be);
  if (Status st = be.alloc(K * per * sizeof(double), &scratch.ptr)) return st;
  double *base = static_cast<double *>(scratch.ptr);
  ReduceSink<T, K> to_partials{{out0, out1}, divisor, {base, K == 2 ? base + per : nullptr}, plan.outputs, kept};
  if (Status st = be.template reduce<K>(plan, src, to_partials)) return st;
  const PartialSource<K> partials{{base, K == 2 ? base + per : nullptr}};
  return be.template reduce<K>(make_partials_plan(plan.outputs, plan.chunks), partials, sink);
}

template <class T, bool HW, bool HP, bool HM>
Operands<T, HW, HP, HM> make_operands(const Args &a, OperandSet ops) {
  const Shape *bcast[kMaxOperands] = {nullptr, nullptr};
  int n = 0;
  if (HW) bcast[n++] = &a.shape[ops.weight()];
  if (HP) bcast[n++] = &a.shape[ops.pos_weight()];
  Operands<T, HW, HP, HM> in;
  in.x = static_cast<const T *>(a.params[0]);
  in.y = static_cast<const T *>(a.params[1]);
  in.w = HW ? static_cast<const T *>(a.params[ops.weight()]) : nullptr;
  in.p = HP ? static_cast<const T *>(a.params[ops.pos_weight()]) : nullptr;
  in.m = HM ? static_cast<const uint8_t *>(a.params[ops.mask()]) : nullptr;
  in.theta = theta_of(ops, a.params);
  in.eps_index = ops.np - kOptions;
  in.layout = make_operand_layout(a.shape[0], bcast, n);
  if (HM) {
    const Shape *mask[kMaxOperands] = {&a.shape[ops.mask()], nullptr};
    in.mask_layout = make_operand_layout(a.shape[0], mask, 1);
  }
  return in;
}

// A masked 'mean' (HM): the number of the mask's own kept values, into
// device scratch (*kept; the caller multiplies by numel / the mask's numel).
template <bool HM, class Backend>
Status count_kept(Backend &be, Reduction red, const Args &a, OperandSet ops, Scratch<Backend> *scratch,
                  const double **kept, double *per_value) {
  *kept = nullptr;
  *per_value = 1.0;
  if (!HM || red != Reduction::kMean) return kOk;
  const Shape &ms = a.shape[ops.mask()];
  if (Status st = be.alloc(sizeof(double), &scratch->ptr)) return st;
  double *count = static_cast<double *>(scratch->ptr);
  if (ms.numel == 0) {
    if (Status st = be.store_one(count, 0.0)) return st;
  } else {
    const Shape scalar;
    if (Status st = run_reduction<1>(be, make_reduce_plan(ms, scalar), KeptSource{static_cast<const uint8_t *>(
                                         a.params[ops.mask()])}, count, static_cast<double *>(nullptr), 1.0)) {
      return st;
    }
    *per_value = static_cast<double>(a.shape[0].numel / ms.numel);  // (an exact quotient: m broadcasts)
  }
  *kept = count;
  return kOk;
}

template <class Loss, class T, bool HW, bool HP, bool HM, class Backend>
Status forward(Backend &be, Reduction red, const Args &a) {
  constexpr OperandSet kOps = kOperandsOf<Loss, HW, HP, HM>;
  constexpr int kIn = kOps.inputs();
  const Operands<T, HW, HP, HM> in = make_operands<T, HW, HP, HM>(a, kOps);
  T *out = static_cast<T *>(a.params[kIn]);
  const int64_t n = a.shape[0].numel;
  if (red == Reduction::kNone) {
    return n == 0 ? kOk : be.elementwise(n, ForwardElementwise<Loss, T, HW, HP, HM>{in, out});
  }
  const double divisor = red == Reduction::kMean ? static_cast<double>(n) : 1.0;
  if (n == 0) {
    const double zero = 0.0;
    return be.store_one(out, store_as<T>(zero / divisor));  // mean: 0/0 = NaN; sum: 0
  }
  // a masked 'mean' divides by the kept elements' number (0 kept: 0/0 = NaN)
  Scratch<Backend> scratch(be);
  const double *kept;
  double per_value;
  if (Status st = count_kept<HM>(be, red, a, kOps, &scratch, &kept, &per_value)) return st;
  const Shape scalar;  // rank 0: sum everything into one output
  return run_reduction<1>(be, make_reduce_plan(a.shape[0], scalar), ForwardSum<Loss, T, HW, HP, HM>{in, n <= kPreciseReductionMax}, out,
                          static_cast<T *>(nullptr), kept ? per_value : divisor, kept);
}

template <class Loss, class T, bool HW, bool HP, bool HM, class Backend>
Status backward(Backend &be, Direction dir, Reduction red, const Args &a) {
  constexpr OperandSet ops = kOperandsOf<Loss, HW, HP, HM>;
  constexpr int kDout = ops.inputs();
  const bool all = dir == Direction::kBackward;
  const int64_t n = a.shape[0].numel;
  // the fused backward writes every gradient; a one-output one, its gradient only
  auto output = [&](Direction d, int slot) {
    return all ? static_cast<T *>(a.params[kDout + 1 + slot])
               : (dir == d ? static_cast<T *>(a.params[kDout + 1]) : nullptr);
  };
  T *dx = output(Direction::kBackwardInput, 0);
  T *dy = output(Direction::kBackwardTarget, 1);
  T *dw = HW ? output(Direction::kBackwardWeight, 2) : nullptr;
  T *dp = HP ? output(Direction::kBackwardPosWeight, 2 + HW) : nullptr;
  const Shape &w_shape = a.shape[ops.weight()];
  const Shape &p_shape = a.shape[ops.pos_weight()];
  if (n == 0) {  // empty input: dw and dp (possibly non-empty, e.g. (C,) over (0, C)) are zero
    if (dw && w_shape.numel > 0) {
      if (Status st = be.zero(dw, static_cast<size_t>(w_shape.numel) * sizeof(T))) return st;
    }
    if (dp && p_shape.numel > 0) {
      if (Status st = be.zero(dp, static_cast<size_t>(p_shape.numel) * sizeof(T))) return st;
    }
    return kOk;
  }
  // a broadcast operand's gradient is a reduction; a full-size one is element-wise
  const bool w_reduced = dw && w_shape.numel < n;
  const bool p_reduced = dp && p_shape.numel < n;

  Scratch<Backend> scratch(be);
  const double *kept;
  double per_value;
  if (Status st = count_kept<HM>(be, red, a, ops, &scratch, &kept, &per_value)) return st;
  BackwardElement<Loss, T, HW, HP, HM, 0> base{make_operands<T, HW, HP, HM>(a, ops),
                                           static_cast<const T *>(a.params[kDout]),
                                           red == Reduction::kNone,
                                           kept ? per_value : (red == Reduction::kMean ? static_cast<double>(n) : 1.0),
                                           dx, dy, w_reduced ? nullptr : dw, p_reduced ? nullptr : dp, true, kept};
  if (!w_reduced && !p_reduced) return be.elementwise(n, base);

  auto with_k = [&base](auto k_tag, bool first_is_w) {
    constexpr int K = decltype(k_tag)::value;
    BackwardElement<Loss, T, HW, HP, HM, K> e{base.in, base.dout, base.per_element_g, base.divisor,
                                          base.dx, base.dy, base.dw_full, base.dp_full, first_is_w, base.kept};
    return e;
  };
  using One = std::integral_constant<int, 1>;
  using Two = std::integral_constant<int, 2>;
  // One pass visits every element once: it writes dx, dy (and full-size
  // gradients) and reduces the first broadcast operand -- both of them when
  // they are broadcast along the same dimensions.
  const Shape &first = w_reduced ? w_shape : p_shape;
  const ReducePlan plan = make_reduce_plan(a.shape[0], first);
  if (w_reduced && p_reduced && same_broadcast_pattern(a.shape[0], w_shape, p_shape)) {
    return run_reduction<2>(be, plan, with_k(Two{}, true), dw, dp, 1.0);
  }
  if (Status st = run_reduction<1>(be, plan, with_k(One{}, w_reduced), w_reduced ? dw : dp,
                                   static_cast<T *>(nullptr), 1.0)) {
    return st;
  }
  if (!(w_reduced && p_reduced)) return kOk;
  // pos_weight broadcast differently from weight: a second pass for dp only
  BackwardElement<Loss, T, HW, HP, HM, 1> dp_only = with_k(One{}, false);
  dp_only.dx = dp_only.dy = dp_only.dw_full = dp_only.dp_full = nullptr;
  return run_reduction<1>(be, make_reduce_plan(a.shape[0], p_shape), dp_only, dp, static_cast<T *>(nullptr), 1.0);
}

// One entry point: checks everything the ABI promises to check, then runs.
template <class Loss, bool HW, bool HP, bool HM, class Backend>
int run_entry(Backend &be, Direction dir, Reduction red, int nparam, void **params, int *ndims, int64_t **shapes,
              const char **dtypes) {
  constexpr OperandSet ops = kOperandsOf<Loss, HW, HP, HM>;
  Args a;
  if (Status st = read_args(nparam, param_count(dir, ops), params, ndims, shapes, dtypes, &a, ops.theta(),
                            ops.mask())) {
    return st;
  }
  if (Status st = check_call_shapes(dir, red, ops, a.shape)) return st;
  try {
    if (Status st = be.check_pointers(a)) return st;
    switch (a.dtype) {
      case DType::kFloat32:
        return dir == Direction::kForward ? forward<Loss, float, HW, HP, HM>(be, red, a)
                                          : backward<Loss, float, HW, HP, HM>(be, dir, red, a);
      case DType::kFloat16:
        return dir == Direction::kForward ? forward<Loss, Half, HW, HP, HM>(be, red, a)
                                          : backward<Loss, Half, HW, HP, HM>(be, dir, red, a);
      case DType::kBFloat16:
        return dir == Direction::kForward ? forward<Loss, BFloat16, HW, HP, HM>(be, red, a)
                                          : backward<Loss, BFloat16, HW, HP, HM>(be, dir, red, a);
    }
    return kBadDtype;
  } catch (...) {
    return kInternal;  // nothing may unwind into MindSpore's kernel launcher
  }
}

// The runner of the GPU library's entry points (../common/exports.h): a
// kernel on Backend, constructed from MindSpore's stream argument.
template <class Backend>
struct Entry {
  template <class Loss, Direction D, Reduction R, bool HW, bool HP, bool HM>
  static int run(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream,
                 void *extra) {
    (void)extra;
    Backend be(stream);
    return run_entry<Loss, HW, HP, HM>(be, D, R, nparam, params, ndims, shapes, dtypes);
  }
};

}  // namespace gpu
}  // namespace ms_bce

// Where ../common/export_losses.inc finds the policies losses.def names.
#define MS_BCE_POLICY_NAMESPACE ms_bce::gpu

#endif  // MS_BCE_GPU_DRIVER_CUH_
