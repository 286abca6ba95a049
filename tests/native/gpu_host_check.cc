// The GPU library's code compiled for the host (g++, no CUDA), for
// tests/test_gpu_host.py:
// - every entry point of custom_ops/gpu/, run by HostBackend (same functors,
//   index arithmetic and reduction order as the CUDA kernels), and those of
//   a test loss with scalar parameters (test_losses.h);
// - the pieces underneath, one by one: the element maths of bce_math.cuh,
//   the storage conversions, FastDivmod, the broadcast layout and the
//   reduction plans of indexing.cuh.
#include <cstdint>

#define MS_BCE_EXPORT_EVERY_LOSS  // every line of losses.def, not one loss's
#include "../../custom_ops/gpu/host_backend.h"
#include "../../custom_ops/common/export_losses.inc"
#include "test_losses.h"

// a loss with scalar parameters through the GPU driver (test_losses.h)
MS_BCE_EXPORT_LOSS(MS_BCE_RUNNER, ms_bce_test::ScaledSquaredError<ms_bce::gpu::Grad>, sqp_test, 1, 1)

using ms_bce::Shape;
using namespace ms_bce::gpu;

namespace {

Shape make_shape(int ndim, const int64_t *dims) {
  Shape s;
  ms_bce::read_shape(ndim, dims, &s);
  return s;
}

}  // namespace

#define HOST_CHECK extern "C" __attribute__((visibility("default")))

// ---------------------------------------------------------- element maths

HOST_CHECK void check_bce_with_logits_value(int64_t n, const double *x, const double *y, const double *w,
                                            const double *p, double *out) {
  for (int64_t i = 0; i < n; ++i) out[i] = BceWithLogits::value(x[i], y[i], w[i], p[i]);
}

HOST_CHECK void check_bce_with_logits_grad(int64_t n, const double *x, const double *y, const double *w,
                                           const double *p, const double *g, double *dx, double *dy, double *dw,
                                           double *dp) {
  for (int64_t i = 0; i < n; ++i) {
    const Grad r = BceWithLogits::grad(x[i], y[i], w[i], p[i], g[i]);
    dx[i] = r.dx, dy[i] = r.dy, dw[i] = r.dw, dp[i] = r.dp;
  }
}

HOST_CHECK void check_bce_value(int64_t n, const double *p, const double *y, const double *w, double *out) {
  for (int64_t i = 0; i < n; ++i) out[i] = Bce::value(p[i], y[i], w[i], 1.0);
}

HOST_CHECK void check_bce_grad(int64_t n, const double *p, const double *y, const double *w, const double *g,
                               double *dp, double *dy, double *dw) {
  for (int64_t i = 0; i < n; ++i) {
    const Grad r = Bce::grad(p[i], y[i], w[i], 1.0, g[i]);
    dp[i] = r.dx, dy[i] = r.dy, dw[i] = r.dw;
  }
}

// double -> storage type (via float, as the kernels store) -> float
HOST_CHECK void check_store(int dtype, int64_t n, const double *in, float *out) {
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == 0) out[i] = to_float(store_as<float>(in[i]));
    else if (dtype == 1) out[i] = to_float(store_as<Half>(in[i]));
    else out[i] = to_float(store_as<BFloat16>(in[i]));
  }
}

// ------------------------------------------------------ index arithmetic

HOST_CHECK void check_fastdivmod(int64_t d, int64_t n, const int64_t *in, int64_t *q, int64_t *r) {
  const FastDivmod f = FastDivmod::make(d);
  for (int64_t i = 0; i < n; ++i) {
    uint64_t qq, rr;
    f.divmod(static_cast<uint64_t>(in[i]), &qq, &rr);
    q[i] = static_cast<int64_t>(qq);
    r[i] = static_cast<int64_t>(rr);
  }
}

// offsets of weight (and pos_weight, when np_ == 2) for every element of x
HOST_CHECK int check_layout(int nx, const int64_t *x, int nw, const int64_t *w, int npw, const int64_t *pw,
                            int n_operands, int64_t *w_off, int64_t *p_off) {
  const Shape xs = make_shape(nx, x), ws = make_shape(nw, w), ps = make_shape(npw, pw);
  const Shape *ops[2] = {&ws, &ps};
  const OperandLayout l = make_operand_layout(xs, ops, n_operands);
  for (int64_t i = 0; i < xs.numel; ++i) {
    int64_t off[2];
    l.offsets(i, off);
    w_off[i] = off[0];
    p_off[i] = off[1];
  }
  return l.rank;
}

// A plan's numbers: outputs, per_output, bx, by, outputs_fastest, out_groups,
// grid_x, chunks, chunk_len, and of its partials plan (chunks > 1): bx, by, chunks.
HOST_CHECK void check_plan_info(int nx, const int64_t *x, int no, const int64_t *o, int64_t *info) {
  const ReducePlan p = make_reduce_plan(make_shape(nx, x), make_shape(no, o));
  const int64_t v[] = {p.outputs, p.per_output, p.bx, p.by, p.outputs_fastest, p.out_groups, p.grid_x, p.chunks,
                       p.chunk_len};
  for (int i = 0; i < 9; ++i) info[i] = v[i];
  const ReducePlan q = make_partials_plan(p.outputs, p.chunks);
  info[9] = q.bx;
  info[10] = q.by;
  info[11] = q.chunks;
}

namespace {

// Counts the visits of each element and sums, per output, the element's
// flat index and the output index the element belongs to.
struct VisitSource {
  int64_t *visits;
  MS_BCE_HD void operator()(int64_t flat, double *acc) const {
    ++visits[flat];
    acc[0] += static_cast<double>(flat);
    acc[1] += 1.0;
  }
};

struct RecordSink {
  double *sum_flat;
  double *count;
  int64_t *writes;
  void operator()(int64_t o, int64_t /*chunk*/, const double *acc) const {
    sum_flat[o] = acc[0];
    count[o] = acc[1];
    ++writes[o];
  }
};

}  // namespace

// Runs a plan's first pass through HostBackend::reduce with one chunk's
// worth of checks: every element visited once, every output written once
// per chunk; sums of flat indices per output (one chunk) for the caller
// to compare with numpy.
HOST_CHECK int check_plan_visits(int nx, const int64_t *x, int no, const int64_t *o, int64_t *visits,
                                 double *sum_flat, double *count, int64_t *writes) {
  const ReducePlan p = make_reduce_plan(make_shape(nx, x), make_shape(no, o));
  HostBackend be(nullptr);
  return be.reduce<2>(p, VisitSource{visits}, RecordSink{sum_flat, count, writes});
}

// flat_index(o, r) for every (o, r): the (outputs x per_output) map
HOST_CHECK void check_plan_flat(int nx, const int64_t *x, int no, const int64_t *o, int64_t *flat) {
  const ReducePlan p = make_reduce_plan(make_shape(nx, x), make_shape(no, o));
  for (int64_t out = 0; out < p.outputs; ++out) {
    for (int64_t r = 0; r < p.per_output; ++r) flat[out * p.per_output + r] = p.flat_index(out, r);
  }
}

// The InferShape functions the GPU library exports, behind a C interface:
// kind 0 forward, 1 backward, 2 backward_input.  Writes the output shapes
// (one after another, each ndim then dims) into out and returns how many
// int64 it wrote, or -1 with the exception's message in msg.
HOST_CHECK int64_t check_infer(int kind, int reduction, int hw, int hp, int loss, int *ndims, int64_t **shapes,
                               int64_t *out, char *msg, int msg_len) {
  const char *name = loss == 0 ? BceWithLogits::kName : Bce::kName;
  const ms_bce::OperandSet ops{hw != 0, hp != 0};
  const ms_bce::Reduction red = static_cast<ms_bce::Reduction>(reduction);
  try {
    std::vector<std::vector<int64_t>> result;
    if (kind == 0) result.push_back(ms_bce::forward_infer_shape(name, red, ops, ndims, shapes));
    else if (kind == 1) result = ms_bce::backward_infer_shape(name, ops, ndims, shapes);
    else result.push_back(ms_bce::gradient_infer_shape(name, ops, ms_bce::Direction::kBackwardInput, ndims, shapes));
    int64_t n = 0;
    for (const auto &s : result) {
      out[n++] = static_cast<int64_t>(s.size());
      for (int64_t d : s) out[n++] = d;
    }
    return n;
  } catch (const std::exception &e) {
    std::strncpy(msg, e.what(), static_cast<size_t>(msg_len - 1));
    msg[msg_len - 1] = '\0';
    return -1;
  }
}
