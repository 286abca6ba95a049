// The forward and backward drivers shared by both losses: argument checks,
// chunks on the thread pool, broadcast operands as float32 views, gradient
// sums over broadcast dimensions, deterministic reductions.  A loss supplies
// only its element maths, as a policy struct:
//
//   struct Loss {
//     static constexpr const char *kName;                       // for messages
//     static constexpr bool kUnitIntervalInput;  // optional: x must lie in [0, 1] (NaN passes),
//     static constexpr const char *kInputName;   // and x's name in the message
//     static double value(double x, double y, double w, double p);          // portable path
//     static Grad grad(double x, double y, double w, double p, double g);
//     template <class T, bool HW, bool HP> static void forward_avx2(const Segment<T> &);
//     template <class T, bool HW, bool HP, int kOut> static void backward_avx2(const Segment<T> &);
//   };
//
// Operand layout of the entry points (HW/HP: weight/pos_weight present):
//   forward            : x, y, [w], [p]        -> out (x's shape, or 0-d for mean/sum)
//   backward           : x, y, [w], [p], dout  -> dx, dy, [dw], [dp] (each its input's shape)
//   backward_input     : x, y, [w], [p], dout  -> dx
//   backward_target    : x, y, [w], [p], dout  -> dy
//   backward_weight    : x, y,  w,  [p], dout  -> dw
//   backward_pos_weight: x, y, [w],  p,  dout  -> dp
// The fused backward serves PyNative (which runs a bprop whole); graph mode
// uses the one-output kernels, because it drops an op nobody uses only when
// the op has a single output (seen with MindSpore 2.10), so training pays for
// dx alone.
// x and y have one shape; w and p broadcast to it and are read in place.
#ifndef MS_BCE_CPU_LOSS_DRIVER_H_
#define MS_BCE_CPU_LOSS_DRIVER_H_

#include <atomic>
#include <optional>
#include <tuple>
#include <type_traits>

#include "common.h"
#include "parallel.h"
#include "simd_avx2.h"

namespace ms_bce {

enum class Reduction { kNone, kMean, kSum };

// Gradients of one element: dw and dp are this element's contributions,
// summed over broadcast dimensions by the driver.
struct Grad {
  double dx, dy, dw, dp;
};

// Which gradients a backward entry point produces (a bit mask), in this order.
enum GradOutput : int { kGradInput = 1, kGradTarget = 2, kGradWeight = 4, kGradPosWeight = 8 };

template <bool HW, bool HP>
constexpr int kAllGrads = kGradInput | kGradTarget | (HW ? kGradWeight : 0) | (HP ? kGradPosWeight : 0);

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

// One-output backward kernels: the gradient has the shape of input k.
template <class Loss, bool HW, bool HP, int k>
std::vector<int64_t> gradient_infer_shape(int *ndims, int64_t **shapes) {
  return infer_operand_shapes<Loss, HW, HP>(ndims, shapes)[k];
}

template <class Loss, Reduction R, bool HW, bool HP>
std::vector<std::vector<int64_t>> backward_infer_shape(int *ndims, int64_t **shapes) {
  return infer_operand_shapes<Loss, HW, HP>(ndims, shapes);  // each gradient has its input's shape
}

// ------------------------------------------------------------- segments ---

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
  bool precise = false;  // a reduction small enough (one chunk) to compute each element in double
  // backward: the incoming gradient per element (g, 'none') or one value
  const T *g = nullptr;
  double g_scalar = 0.0;                 // 'mean': dout / numel, unrounded
  T *dx = nullptr, *dy = nullptr;        // nullptr when not wanted
  double *dw = nullptr, *dp = nullptr;   // contributions, unrounded; nullptr when not wanted
};

// The portable path: the loss's scalar element functions (double arithmetic).
template <class Loss, class T, bool HW, bool HP>
void forward_segment_scalar(const Segment<T> &s) {
  double acc = 0.0;
  for (int64_t i = 0; i < s.n; ++i) {
    const double v = Loss::value(to_float(s.x[i]), to_float(s.y[i]), HW ? s.w[i] : 1.0, HP ? s.p[i] : 1.0);
    if (s.out) s.out[i] = store_as<T>(v);
    else acc += v;
  }
  if (!s.out) *s.sum += acc;
}

template <class Loss, class T, bool HW, bool HP>
void backward_segment_scalar(const Segment<T> &s) {
  for (int64_t i = 0; i < s.n; ++i) {
    const double g = s.g ? static_cast<double>(to_float(s.g[i])) : s.g_scalar;
    const Grad r = Loss::grad(to_float(s.x[i]), to_float(s.y[i]), HW ? s.w[i] : 1.0, HP ? s.p[i] : 1.0, g);
    if (s.dx) s.dx[i] = store_as<T>(r.dx);
    if (s.dy) s.dy[i] = store_as<T>(r.dy);
    if (s.dw) s.dw[i] = r.dw;
    if (s.dp) s.dp[i] = r.dp;
  }
}

// A segment on the vector path where this CPU has one, else the portable one.
template <class Loss, class T, bool HW, bool HP>
void forward_segment(const Segment<T> &s, bool vector) {
#if defined(MS_BCE_HAVE_AVX2_PATH)
  if (vector) {
    Loss::template forward_avx2<T, HW, HP>(s);
    return;
  }
#endif
  (void)vector;
  forward_segment_scalar<Loss, T, HW, HP>(s);
}

template <class Loss, class T, bool HW, bool HP, int kOut>
void backward_segment(const Segment<T> &s, bool vector) {
#if defined(MS_BCE_HAVE_AVX2_PATH)
  if (vector) {
    Loss::template backward_avx2<T, HW, HP, kOut>(s);
    return;
  }
#endif
  (void)vector;
  backward_segment_scalar<Loss, T, HW, HP>(s);
}

// --------------------------------------------------- broadcast operands ---

// How a broadcast operand's offset follows the flat index f of the input.
enum class OperandKind {
  kFull,      // offset = f (no dimension broadcast)
  kScalar,    // one value
  kPeriodic,  // offset = f mod period: the operand is the input's trailing dims (per class, ...)
  kGeneral,   // anything else (per sample (N, 1), mixed): gathered through its strides
};

constexpr int64_t kPeriodMax = 4096;  // periodic operands up to this size are expanded once per chunk

struct OperandInfo {
  OperandKind kind = OperandKind::kFull;
  int64_t numel = 1;
  bool monotone = true;  // kGeneral: the offset never decreases as f grows
  BroadcastLayout layout;
};

inline OperandInfo classify_operand(const Shape &input, const Shape &operand) {
  OperandInfo info;
  info.numel = operand.numel;
  const Shape *ops[1] = {&operand};
  info.layout = make_layout(input, ops, 1);
  const BroadcastLayout &l = info.layout;
  if (operand.numel == input.numel) {
    info.kind = OperandKind::kFull;
  } else if (operand.numel == 1) {
    info.kind = OperandKind::kScalar;
  } else if (l.rank == 2 && l.stride[0][0] == 0 && l.stride[0][1] == 1 && operand.numel <= kPeriodMax) {
    info.kind = OperandKind::kPeriodic;
  } else {
    info.kind = OperandKind::kGeneral;
    for (int d = 1; d < l.rank; ++d) {
      if (l.stride[0][d - 1] < l.extent[d] * l.stride[0][d]) info.monotone = false;  // a carry goes back
    }
  }
  return info;
}

// Offset of flat index f in an operand (kGeneral, kPeriodic).
inline int64_t operand_offset(const BroadcastLayout &l, int64_t f) {
  int64_t off = 0;
  for (int d = l.rank - 1; d >= 0; --d) {
    off += (f % l.extent[d]) * l.stride[0][d];
    f /= l.extent[d];
  }
  return off;
}

// The float32 values of one broadcast operand for successive segments of a
// chunk, read in place (float32, full size) or through a small buffer.
template <class T>
class OperandView {
 public:
  OperandView(const T *data, const OperandInfo &info) : data_(data), info_(info) {
    if (info.kind == OperandKind::kScalar) {
      buf_.assign(kSegment, to_float(data[0]));
    } else if (info.kind == OperandKind::kPeriodic) {
      // period * (segments' worth + one) values, so any phase has kSegment ahead
      const int64_t p = info.numel;
      buf_.resize(p * ((kSegment + p - 1) / p + 1));
      for (size_t i = 0; i < buf_.size(); ++i) buf_[i] = to_float(data[i % p]);
    } else if (!(info.kind == OperandKind::kFull && std::is_same<T, float>::value)) {
      buf_.resize(kSegment);
    }
  }

  // The operand's own values from flat index f0 when it is full-size (the
  // vector kernels load any storage type), else nullptr.
  const T *native(int64_t f0) const { return info_.kind == OperandKind::kFull ? data_ + f0 : nullptr; }

  const float *segment(int64_t f0, int64_t n) {
    switch (info_.kind) {
      case OperandKind::kScalar:
        return buf_.data();
      case OperandKind::kPeriodic:
        return buf_.data() + f0 % info_.numel;
      case OperandKind::kFull:
        if constexpr (std::is_same<T, float>::value) {
          return data_ + f0;
        } else {
          for (int64_t i = 0; i < n; ++i) buf_[i] = to_float(data_[f0 + i]);
          return buf_.data();
        }
      case OperandKind::kGeneral:
        for_each_run(info_.layout, f0, f0 + n, [&](const Run &r) {
          for (int64_t i = 0; i < r.len; ++i) buf_[r.flat - f0 + i] = to_float(data_[r.off[0] + i * r.step[0]]);
        });
        return buf_.data();
    }
    return nullptr;
  }

 private:
  const T *data_;
  const OperandInfo &info_;
  std::vector<float> buf_;
};

// A full-size operand's gradient: its n double contributions stored as T.
template <class T>
void store_contributions(T *dst, const double *src, int64_t n, bool vector) {
#if defined(MS_BCE_HAVE_AVX2_PATH)
  if (vector) return avx2::store_doubles(dst, src, n);
#endif
  (void)vector;
  for (int64_t i = 0; i < n; ++i) dst[i] = store_as<T>(src[i]);
}

// One chunk's sums of a broadcast operand's gradient contributions, over
// offsets [lo, lo + sum.size()).
struct ChunkGradient {
  int64_t lo = 0;
  std::vector<double> sum;
};

// Adds a segment's contributions c[0 .. n) (flat indices f0 ..) to a chunk's
// sums: kScalar into one value, kPeriodic into an expanded buffer folded at
// the chunk's end (fold_periodic), kGeneral at each element's offset.
inline void add_contributions(const OperandInfo &info, const double *c, int64_t f0, int64_t n, ChunkGradient *g) {
  switch (info.kind) {
    case OperandKind::kScalar: {
      double s = 0.0;
      for (int64_t i = 0; i < n; ++i) s += c[i];
      g->sum[0] += s;
      return;
    }
    case OperandKind::kPeriodic: {
      double *e = g->sum.data() + f0 % info.numel;
      for (int64_t i = 0; i < n; ++i) e[i] += c[i];
      return;
    }
    case OperandKind::kGeneral:
      for_each_run(info.layout, f0, f0 + n, [&](const Run &r) {
        double *e = g->sum.data() + (r.off[0] - g->lo);
        for (int64_t i = 0; i < r.len; ++i) e[i * r.step[0]] += c[r.flat - f0 + i];
      });
      return;
    case OperandKind::kFull:
      return;  // written in place by the driver
  }
}

// Chunk sums for an operand over flat indices [begin, end): the buffer and
// the range of offsets it covers.
inline ChunkGradient chunk_gradient(const OperandInfo &info, int64_t begin, int64_t end) {
  ChunkGradient g;
  switch (info.kind) {
    case OperandKind::kScalar:
      g.sum.assign(1, 0.0);
      break;
    case OperandKind::kPeriodic:  // expanded like OperandView's buffer, folded later
      g.sum.assign(info.numel * ((kSegment + info.numel - 1) / info.numel + 1), 0.0);
      break;
    case OperandKind::kGeneral:
      if (info.monotone && end > begin) {
        g.lo = operand_offset(info.layout, begin);
        g.sum.assign(operand_offset(info.layout, end - 1) - g.lo + 1, 0.0);
      } else {
        g.sum.assign(info.numel, 0.0);
      }
      break;
    case OperandKind::kFull:
      break;
  }
  return g;
}

// Folds a periodic chunk's expanded sums to one value per offset.
inline void fold_periodic(const OperandInfo &info, ChunkGradient *g) {
  if (info.kind != OperandKind::kPeriodic) return;
  std::vector<double> folded(info.numel, 0.0);
  for (size_t i = 0; i < g->sum.size(); ++i) folded[i % info.numel] += g->sum[i];
  g->sum.swap(folded);
}

// The segment of flat indices [f0, min(f0 + kSegment, end)) with its inputs
// set: x, y, and weight/pos_weight (wv/pv; their own storage where full-size
// on the vector path, else the views' float32 values).
template <class T, bool HW, bool HP>
Segment<T> segment_operands(const T *x, const T *y, std::optional<OperandView<T>> &wv,
                            std::optional<OperandView<T>> &pv, int64_t f0, int64_t end, bool vector) {
  Segment<T> s;
  s.n = std::min(kSegment, end - f0);
  s.x = x + f0;
  s.y = y + f0;
  if (HW && !(vector && (s.w_native = wv->native(f0)))) s.w = wv->segment(f0, s.n);
  if (HP && !(vector && (s.p_native = pv->native(f0)))) s.p = pv->segment(f0, s.n);
  return s;
}

// ---------------------------------------------------------- input domain ---

// A loss whose first input is a probability (BCELoss) declares
// kUnitIntervalInput = true: a value outside [0, 1] is refused (kOutOfRange)
// instead of giving NaN steps later, as PyTorch and MindSpore's built-in
// refuse it; NaN passes (it gives NaN).
template <class Loss>
constexpr bool unit_interval_input() {
  if constexpr (requires { Loss::kUnitIntervalInput; }) return Loss::kUnitIntervalInput;
  else return false;
}

// Index of the first of x[0 .. n) outside [0, 1] (NaN is not), or -1.  The
// first loop is branch-free (it vectorises): in range is the common case.
template <class T>
int64_t first_outside_unit_interval(const T *x, int64_t n) {
  bool outside = false;
  for (int64_t i = 0; i < n; ++i) {
    const float v = to_float(x[i]);
    outside |= (v < 0.0f) | (v > 1.0f);
  }
  if (!outside) return -1;
  for (int64_t i = 0; i < n; ++i) {
    const float v = to_float(x[i]);
    if (v < 0.0f || v > 1.0f) return i;
  }
  return -1;
}

// Per chunk, the flat index of its first input outside the domain (-1: none).
// Chunks cover ascending index ranges, so the first chunk that found one
// holds the first in the whole input, whatever the thread count.
// `enabled` false: no check (the fused backward: see backward()).
template <class Loss, class T>
class DomainCheck {
 public:
  DomainCheck(int64_t chunks, bool enabled) : first_(unit_interval_input<Loss>() && enabled ? chunks : 0, -1) {}

  // false (and the index kept) if segment [f0, f0 + n) of x holds a value outside
  bool segment_ok(int64_t c, const T *x, int64_t f0, int64_t n) {
    if constexpr (!unit_interval_input<Loss>()) return true;
    if (first_.empty()) return true;
    const int64_t k = first_outside_unit_interval(x + f0, n);
    if (k < 0) return true;
    first_[c] = f0 + k;
    return false;
  }

  // kOutOfRange (with its message) for the first value outside, else kOk
  int status(const T *x) const {
    if constexpr (unit_interval_input<Loss>()) {
      for (const int64_t f : first_) {
        if (f >= 0) return out_of_range(Loss::kName, Loss::kInputName, to_float(x[f]), f);
      }
    }
    (void)x;
    return kOk;
  }

 private:
  std::vector<int64_t> first_;
};

// ----------------------------------------------------------------- chunks ---

// Work is split into chunks that depend only on the sizes: at least
// kChunkMin elements each (below that, one thread does everything) and at
// most kMaxChunks; fewer when the chunks' gradient sums of a large broadcast
// operand would exceed a quarter of the input's element count.
constexpr int64_t kChunkMin = int64_t{1} << 16;
constexpr int64_t kMaxChunks = 64;

inline int64_t chunk_count(int64_t n, const OperandInfo *reduced, int n_reduced) {
  int64_t chunks = std::min(kMaxChunks, std::max<int64_t>(1, n / kChunkMin));
  const int64_t budget = std::max<int64_t>(n / 4, int64_t{1} << 20);
  for (int k = 0; k < n_reduced; ++k) {
    const OperandInfo &info = reduced[k];
    if (info.kind == OperandKind::kGeneral && !info.monotone) {
      chunks = std::min(chunks, std::max<int64_t>(1, budget / std::max<int64_t>(1, info.numel)));
    }
  }
  return chunks;
}

// Chunk c covers flat indices [begin, end); chunk sizes are multiples of kSegment.
inline void chunk_range(int64_t n, int64_t chunks, int64_t c, int64_t *begin, int64_t *end) {
  const int64_t per = ((n + chunks - 1) / chunks + kSegment - 1) / kSegment * kSegment;
  *begin = std::min(n, c * per);
  *end = std::min(n, (c + 1) * per);
}

// Runs body(c) for every chunk on the kernel thread pool; the first nonzero
// Status (or exception) is returned.
template <class Body>
int run_chunks(int64_t chunks, Body &&body) {
  std::atomic<int> status{kOk};
  parallel_for(chunks, num_threads(), [&](int64_t c) {
    try {
      body(c);
    } catch (const std::bad_alloc &) {
      status.store(kNoMemory);
    } catch (...) {
      status.store(kInternal);
    }
  });
  return status.load();
}

// ---------------------------------------------------------------- drivers ---

template <bool HW, bool HP>
void operand_infos(const Shape *s, OperandInfo *w, OperandInfo *p) {
  if (HW) *w = classify_operand(s[0], s[Operands<HW, HP>::kWeight]);
  if (HP) *p = classify_operand(s[0], s[Operands<HW, HP>::kPosWeight]);
}

template <class Loss, Reduction R, bool HW, bool HP>
int forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  constexpr int kIn = Operands<HW, HP>::kCount;
  Args a;
  if (Status st = read_args(nparam, kIn + 1, params, ndims, shapes, dtypes, &a)) return st;
  if (Status st = check_operand_shapes<HW, HP>(a.shape)) return st;
  const Shape &out_shape = a.shape[kIn];
  if (R == Reduction::kNone ? !(out_shape == a.shape[0]) : out_shape.rank != 0) return kBadShape;
  const int64_t n = a.shape[0].numel;
  return guarded([&] {
    OperandInfo wi, pi;
    operand_infos<HW, HP>(a.shape, &wi, &pi);
    const int64_t chunks = chunk_count(n, nullptr, 0);
    const bool vector = simd_path() == SimdPath::kAvx2;
    return dispatch_dtype(a.dtype, [&]<class T>() {
      const T *x = static_cast<const T *>(params[0]);
      const T *y = static_cast<const T *>(params[1]);
      T *out = static_cast<T *>(params[kIn]);
      std::vector<double> partial(chunks, 0.0);
      DomainCheck<Loss, T> domain(chunks, true);
      const int st = run_chunks(chunks, [&](int64_t c) {
        int64_t begin, end;
        chunk_range(n, chunks, c, &begin, &end);
        std::optional<OperandView<T>> wv, pv;
        if (HW) wv.emplace(static_cast<const T *>(params[Operands<HW, HP>::kWeight]), wi);
        if (HP) pv.emplace(static_cast<const T *>(params[Operands<HW, HP>::kPosWeight]), pi);
        for (int64_t f0 = begin; f0 < end; f0 += kSegment) {
          if (!domain.segment_ok(c, x, f0, std::min(kSegment, end - f0))) return;
          Segment<T> s = segment_operands<T, HW, HP>(x, y, wv, pv, f0, end, vector);
          if (R == Reduction::kNone) s.out = out + f0;
          else s.sum = &partial[c];
          s.precise = R != Reduction::kNone && n <= kChunkMin;
          forward_segment<Loss, T, HW, HP>(s, vector);
        }
      });
      if (st != kOk) return st;
      if (const int bad = domain.status(x)) return bad;
      if (R != Reduction::kNone) {
        const double sum = combine_in_order(partial);
        // mean of an empty tensor is 0/0 = NaN, its sum 0
        out[0] = store_as<T>(R == Reduction::kMean ? sum / static_cast<double>(n) : sum);
      }
      return static_cast<int>(kOk);
    });
  });
}

// kOut: which gradients (GradOutput bits), written to the outputs in that order.
template <class Loss, Reduction R, bool HW, bool HP, int kOut>
int backward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  constexpr int kIn = Operands<HW, HP>::kCount;
  constexpr int kDout = kIn;
  constexpr bool kDx = kOut & kGradInput, kDy = kOut & kGradTarget;
  constexpr bool kDw = HW && (kOut & kGradWeight), kDp = HP && (kOut & kGradPosWeight);
  constexpr int kNumOut = kDx + kDy + kDw + kDp;
  // output slot of each gradient and the input whose shape it has
  constexpr int kSlotDy = kDout + 1 + kDx, kSlotDw = kSlotDy + kDy, kSlotDp = kSlotDw + kDw;
  Args a;
  if (Status st = read_args(nparam, kIn + 1 + kNumOut, params, ndims, shapes, dtypes, &a)) return st;
  if (Status st = check_operand_shapes<HW, HP>(a.shape)) return st;
  if (R == Reduction::kNone ? !(a.shape[kDout] == a.shape[0]) : a.shape[kDout].rank != 0) return kBadShape;
  if ((kDx && !(a.shape[kDout + 1] == a.shape[0])) || (kDy && !(a.shape[kSlotDy] == a.shape[1])) ||
      (kDw && !(a.shape[kSlotDw] == a.shape[Operands<HW, HP>::kWeight])) ||
      (kDp && !(a.shape[kSlotDp] == a.shape[Operands<HW, HP>::kPosWeight]))) {
    return kBadShape;  // each gradient has its input's shape
  }
  const int64_t n = a.shape[0].numel;
  return guarded([&] {
    OperandInfo wi, pi;
    operand_infos<HW, HP>(a.shape, &wi, &pi);
    OperandInfo reduced[2];
    int n_reduced = 0;
    if (kDw) reduced[n_reduced++] = wi;
    if (kDp) reduced[n_reduced++] = pi;
    const int64_t chunks = chunk_count(n, reduced, n_reduced);
    const bool vector = simd_path() == SimdPath::kAvx2;
    return dispatch_dtype(a.dtype, [&]<class T>() {
      const T *x = static_cast<const T *>(params[0]);
      const T *y = static_cast<const T *>(params[1]);
      const T *dout = static_cast<const T *>(params[kDout]);
      T *dx = kDx ? static_cast<T *>(params[kDout + 1]) : nullptr;
      T *dy = kDy ? static_cast<T *>(params[kSlotDy]) : nullptr;
      T *dw = kDw ? static_cast<T *>(params[kSlotDw]) : nullptr;
      T *dp = kDp ? static_cast<T *>(params[kSlotDp]) : nullptr;
      // for mean/sum the incoming gradient is one value, spread over all elements
      double g_all = 0.0;
      if (R != Reduction::kNone) {
        g_all = to_float(dout[0]);
        if (R == Reduction::kMean) g_all /= static_cast<double>(n);
      }
      std::vector<ChunkGradient> wsum(dw && wi.kind != OperandKind::kFull ? chunks : 0);
      std::vector<ChunkGradient> psum(dp && pi.kind != OperandKind::kFull ? chunks : 0);
      // The one-output gradient kernels (graph mode, where the forward may be
      // pruned) check the domain; the fused backward does not: it serves
      // PyNative, which always runs the forward first, whose check reports the
      // error once (a second report would surface at a later, unrelated read).
      DomainCheck<Loss, T> domain(chunks, kOut != kAllGrads<HW, HP>);
      const int st = run_chunks(chunks, [&](int64_t c) {
        int64_t begin, end;
        chunk_range(n, chunks, c, &begin, &end);
        std::optional<OperandView<T>> wv, pv;
        if (HW) wv.emplace(static_cast<const T *>(params[Operands<HW, HP>::kWeight]), wi);
        if (HP) pv.emplace(static_cast<const T *>(params[Operands<HW, HP>::kPosWeight]), pi);
        if (!wsum.empty()) wsum[c] = chunk_gradient(wi, begin, end);
        if (!psum.empty()) psum[c] = chunk_gradient(pi, begin, end);
        double cw[kSegment], cp[kSegment];
        for (int64_t f0 = begin; f0 < end; f0 += kSegment) {
          if (!domain.segment_ok(c, x, f0, std::min(kSegment, end - f0))) return;
          Segment<T> s = segment_operands<T, HW, HP>(x, y, wv, pv, f0, end, vector);
          if (R == Reduction::kNone) s.g = dout + f0;
          s.g_scalar = g_all;
          if (dx) s.dx = dx + f0;
          if (dy) s.dy = dy + f0;
          if (dw) s.dw = cw;
          if (dp) s.dp = cp;
          backward_segment<Loss, T, HW, HP, kOut>(s, vector);
          if (dw) {
            if (wi.kind == OperandKind::kFull) store_contributions(dw + f0, cw, s.n, vector);
            else add_contributions(wi, cw, f0, s.n, &wsum[c]);
          }
          if (dp) {
            if (pi.kind == OperandKind::kFull) store_contributions(dp + f0, cp, s.n, vector);
            else add_contributions(pi, cp, f0, s.n, &psum[c]);
          }
        }
        if (!wsum.empty()) fold_periodic(wi, &wsum[c]);
        if (!psum.empty()) fold_periodic(pi, &psum[c]);
      });
      if (st != kOk) return st;
      if (const int bad = domain.status(x)) return bad;
      // chunk sums combined in chunk order: the same bits whatever the threads
      for (auto [sums, out, numel] : {std::tuple{&wsum, dw, wi.numel}, std::tuple{&psum, dp, pi.numel}}) {
        if (out == nullptr || (sums->empty() && n > 0)) continue;  // absent, or written in place
        std::vector<double> total(numel, 0.0);
        for (const ChunkGradient &g : *sums) {
          for (size_t i = 0; i < g.sum.size(); ++i) total[g.lo + i] += g.sum[i];
        }
        for (int64_t i = 0; i < numel; ++i) out[i] = store_as<T>(total[i]);
      }
      return static_cast<int>(kOk);
    });
  });
}

}  // namespace ms_bce

// Exports the entry points (and their InferShape functions) of one loss for
// one reduction and one operand set, named <prefix>_<direction>_<reduction><suffix>.
#define MS_BCE_EXPORT_GRADIENT(Loss, prefix, R, rname, HW, HP, suffix, direction, kOut, input)                 \
  MS_BCE_KERNEL(prefix##_##direction##_##rname##suffix) {                                                      \
    (void)stream;                                                                                              \
    return ms_bce::report(                                                                                     \
        ms_bce::backward<Loss, ms_bce::Reduction::R, HW, HP, kOut>(nparam, params, ndims, shapes, dtypes), extra); \
  }                                                                                                            \
  MS_BCE_INFER(prefix##_##direction##_##rname##suffix) {                                                       \
    (void)extra;                                                                                               \
    return ms_bce::gradient_infer_shape<Loss, HW, HP, input>(ndims, shapes);                                   \
  }

#define MS_BCE_EXPORT_VARIANT(Loss, prefix, R, rname, HW, HP, suffix)                                            \
  MS_BCE_KERNEL(prefix##_forward_##rname##suffix) {                                                              \
    (void)stream;                                                                                                \
    return ms_bce::report(ms_bce::forward<Loss, ms_bce::Reduction::R, HW, HP>(nparam, params, ndims, shapes, dtypes), \
                          extra);                                                                                \
  }                                                                                                              \
  MS_BCE_INFER(prefix##_forward_##rname##suffix) {                                                               \
    (void)extra;                                                                                                 \
    return ms_bce::forward_infer_shape<Loss, ms_bce::Reduction::R, HW, HP>(ndims, shapes);                       \
  }                                                                                                              \
  MS_BCE_KERNEL(prefix##_backward_##rname##suffix) {                                                             \
    (void)stream;                                                                                                \
    return ms_bce::report(ms_bce::backward<Loss, ms_bce::Reduction::R, HW, HP, ms_bce::kAllGrads<HW, HP>>(        \
                              nparam, params, ndims, shapes, dtypes),                                            \
                          extra);                                                                                \
  }                                                                                                              \
  MS_BCE_INFER_MULTI(prefix##_backward_##rname##suffix) {                                                        \
    (void)extra;                                                                                                 \
    return ms_bce::backward_infer_shape<Loss, ms_bce::Reduction::R, HW, HP>(ndims, shapes);                      \
  }                                                                                                              \
  MS_BCE_EXPORT_GRADIENT(Loss, prefix, R, rname, HW, HP, suffix, backward_input, ms_bce::kGradInput, 0)          \
  MS_BCE_EXPORT_GRADIENT(Loss, prefix, R, rname, HW, HP, suffix, backward_target, ms_bce::kGradTarget, 1)

#define MS_BCE_EXPORT_REDUCTIONS(Loss, prefix, HW, HP, suffix)          \
  MS_BCE_EXPORT_VARIANT(Loss, prefix, kNone, none, HW, HP, suffix)      \
  MS_BCE_EXPORT_VARIANT(Loss, prefix, kMean, mean, HW, HP, suffix)      \
  MS_BCE_EXPORT_VARIANT(Loss, prefix, kSum, sum, HW, HP, suffix)

// The weight's and the pos_weight's one-output gradient kernels, for the
// operand sets that have them.
#define MS_BCE_EXPORT_WEIGHT_GRADIENTS(Loss, prefix, HW, HP, suffix)                                                  \
  MS_BCE_EXPORT_GRADIENT(Loss, prefix, kNone, none, HW, HP, suffix, backward_weight, ms_bce::kGradWeight, 2)          \
  MS_BCE_EXPORT_GRADIENT(Loss, prefix, kMean, mean, HW, HP, suffix, backward_weight, ms_bce::kGradWeight, 2)          \
  MS_BCE_EXPORT_GRADIENT(Loss, prefix, kSum, sum, HW, HP, suffix, backward_weight, ms_bce::kGradWeight, 2)
#define MS_BCE_EXPORT_POS_WEIGHT_GRADIENTS(Loss, prefix, HW, HP, suffix)                                              \
  MS_BCE_EXPORT_GRADIENT(Loss, prefix, kNone, none, HW, HP, suffix, backward_pos_weight, ms_bce::kGradPosWeight,     \
                         2 + HW)                                                                                       \
  MS_BCE_EXPORT_GRADIENT(Loss, prefix, kMean, mean, HW, HP, suffix, backward_pos_weight, ms_bce::kGradPosWeight,     \
                         2 + HW)                                                                                       \
  MS_BCE_EXPORT_GRADIENT(Loss, prefix, kSum, sum, HW, HP, suffix, backward_pos_weight, ms_bce::kGradPosWeight,       \
                         2 + HW)

#endif  // MS_BCE_CPU_LOSS_DRIVER_H_
