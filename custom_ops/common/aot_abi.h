// The host side of MindSpore's Custom AOT ABI as ms_bce uses it, shared by
// the CPU and the GPU library: status codes, dtype strings, shape and
// argument checks, the operand layout, and the export attribute.  Host-only
// C++17 (no device code), so that nvcc's host pass, g++ -std=c++17 (the GPU
// host check) and the CPU library's C++20 all compile it.
//
// Entry points:
//   int f(int nparam, void **params, int *ndims, int64_t **shapes,
//         const char **dtypes, void *stream, void *extra)
// with inputs first, then outputs.  They never throw into MindSpore (except
// report()'s one documented case, errors.h) and never touch memory outside
// the tensors they were given: anything unexpected returns a nonzero Status
// (the Python layer validates first, so users see its messages).
#ifndef MS_BCE_COMMON_AOT_ABI_H_
#define MS_BCE_COMMON_AOT_ABI_H_

#include <cstdint>
#include <cstring>

namespace ms_bce {

// One numbering for both libraries (tests/abi.py and tests/gpu_support.py read it).
enum Status : int {
  kOk = 0,
  kBadParamCount = 1,    // nparam differs from what the entry point takes
  kBadDtype = 2,         // unknown dtype string, or operands of different dtypes
  kBadShape = 3,         // shapes that do not match / broadcast as required
  kBadRank = 4,          // negative or too large rank, negative dimension, too many elements
  kNullData = 5,         // a null pointer for a non-empty tensor
  kNoMemory = 6,         // scratch allocation failed
  kInternal = 7,         // an exception that should not happen
  kCudaError = 8,        // GPU only: a CUDA runtime call or kernel launch failed (no device, bad stream, ...)
  kNotDeviceMemory = 9,  // GPU only: a tensor pointer that is not device (or managed) memory
  kOutOfRange = 10,      // CPU only: an input value outside the loss's domain (BCELoss: a probability
                         // outside [0, 1]); the message is in ms_bce_last_error() (errors.h)
};

constexpr int kMaxRank = 16;
constexpr int kMaxParams = 13;  // inputs + outputs of the widest entry point (backward: 7 + 4)

// ---------------------------------------------------------------- dtypes ---

enum class DType { kFloat16, kFloat32, kBFloat16 };

inline bool parse_dtype(const char *s, DType *out) {
  if (s == nullptr) return false;
  if (std::strcmp(s, "float32") == 0) { *out = DType::kFloat32; return true; }
  if (std::strcmp(s, "float16") == 0) { *out = DType::kFloat16; return true; }
  if (std::strcmp(s, "bfloat16") == 0) { *out = DType::kBFloat16; return true; }
  return false;
}

// ---------------------------------------------------------------- shapes ---

struct Shape {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t numel = 1;
  bool operator==(const Shape &o) const {
    if (rank != o.rank) return false;
    for (int i = 0; i < rank; ++i) {
      if (dims[i] != o.dims[i]) return false;
    }
    return true;
  }
};

// The largest element count accepted: its size in bytes, at up to 8 bytes an
// element (the CPU's double scratch of gradient sums), fits in int64, so no
// offset or pointer computed from it can overflow.
constexpr int64_t kMaxNumel = INT64_MAX / 8;

// Reads and checks one tensor's shape: rank in [0, kMaxRank], dims >= 0, and
// the product of the nonzero dims at most kMaxNumel (bounding that product,
// not only the element count, keeps the strides of an empty (0, 2^62, 2^62)
// from overflowing).
inline Status read_shape(int ndim, const int64_t *dims, Shape *out) {
  if (ndim < 0 || ndim > kMaxRank) return kBadRank;
  if (ndim > 0 && dims == nullptr) return kBadRank;
  out->rank = ndim;
  int64_t extent = 1;
  bool empty = false;
  for (int i = 0; i < ndim; ++i) {
    if (dims[i] < 0) return kBadRank;
    out->dims[i] = dims[i];
    if (dims[i] == 0) {
      empty = true;
    } else {
      if (extent > kMaxNumel / dims[i]) return kBadRank;
      extent *= dims[i];
    }
  }
  out->numel = empty ? 0 : extent;
  return kOk;
}

// True when `operand` broadcasts to exactly `target` (numpy.broadcast_to rules).
inline bool broadcasts_to(const Shape &operand, const Shape &target) {
  if (operand.rank > target.rank) return false;
  const int lead = target.rank - operand.rank;
  for (int i = 0; i < operand.rank; ++i) {
    const int64_t d = operand.dims[i];
    if (d != 1 && d != target.dims[lead + i]) return false;
  }
  return true;
}

// The tensors an entry point was called with, checked once.
struct Args {
  int nparam = 0;
  void **params = nullptr;
  Shape shape[kMaxParams];
  DType dtype = DType::kFloat32;
};

// Checks the parameter count, every shape, and that all tensors share one
// known dtype (but the scalar parameters at index theta, float32 whatever
// the others, and the mask at index mask, bool; -1: none); then that every
// non-empty tensor has data.
inline Status read_args(int nparam, int expected, void **params, int *ndims, int64_t **shapes,
                        const char **dtypes, Args *a, int theta = -1, int mask = -1) {
  if (nparam != expected || expected > kMaxParams) return kBadParamCount;
  if (params == nullptr || ndims == nullptr || shapes == nullptr || dtypes == nullptr) return kNullData;
  a->nparam = nparam;
  a->params = params;
  bool first = true;
  for (int i = 0; i < nparam; ++i) {
    const Status s = read_shape(ndims[i], shapes[i], &a->shape[i]);
    if (s != kOk) return s;
    if (i == mask) {
      if (dtypes[i] == nullptr || std::strcmp(dtypes[i], "bool") != 0) return kBadDtype;
      if (a->shape[i].numel > 0 && params[i] == nullptr) return kNullData;
      continue;
    }
    DType d;
    if (!parse_dtype(dtypes[i], &d)) return kBadDtype;
    if (i == theta) {
      if (d != DType::kFloat32) return kBadDtype;
    } else if (first) {
      a->dtype = d;
      first = false;
    } else if (d != a->dtype) {
      return kBadDtype;
    }
    if (a->shape[i].numel > 0 && params[i] == nullptr) return kNullData;
  }
  return kOk;
}

// -------------------------------------------------------- operand layout ---

// Operand layout of the entry points (w, p, m: weight, pos_weight, mask, when
// the operand set has them; t: the loss's scalar parameters, when it has any):
//   forward            : x, y, [w], [p], [m], [t]        -> out (x's shape, or 0-d for mean/sum)
//   backward           : x, y, [w], [p], [m], [t], dout  -> dx, dy, [dw], [dp] (each its input's shape)
//   backward_input     : x, y, [w], [p], [m], [t], dout  -> dx
//   backward_target    : x, y, [w], [p], [m], [t], dout  -> dy
//   backward_weight    : x, y,  w,  [p], [m], [t], dout  -> dw
//   backward_pos_weight: x, y, [w],  p,  [m], [t], dout  -> dp
// x and y have one shape; w, p and m broadcast to it and are read in place.
// m is bool (one byte a value, 0 or 1): an element where it is 0 is ignored,
// contributing exactly 0 to the loss and to every gradient whatever x, y, w
// and p hold there, and 'mean' divides by the number of kept elements (the
// mask's own nonzero values times the elements each reaches); m has no gradient.
// t is a 1-D float32 tensor of the loss's kParams values (params.h), in the
// order of its ms_bce/_losses.py `params`, whatever the other tensors'
// dtype: plain floats, so no std:: type crosses the ABI; it has no gradient.
// The fused backward serves PyNative (which runs a bprop whole); graph mode
// uses the one-output kernels, because it drops an op nobody uses only when
// the op has a single output (seen with MindSpore 2.10), so training pays for
// dx alone.
enum class Reduction { kNone, kMean, kSum };
enum class Direction { kForward, kBackward, kBackwardInput, kBackwardTarget, kBackwardWeight, kBackwardPosWeight };

struct OperandSet {
  bool hw, hp;
  int np = 0;       // the loss's scalar parameters (0: no t operand)
  bool hm = false;  // a mask operand
  // the operands with a gradient: x, y[, w][, p]
  constexpr int count() const { return 2 + hw + hp; }
  constexpr int weight() const { return 2; }
  constexpr int pos_weight() const { return 2 + hw; }
  // m's index (-1: none), t's (-1: none), and every input before out or dout
  constexpr int mask() const { return hm ? count() : -1; }
  constexpr int theta() const { return np > 0 ? count() + hm : -1; }
  constexpr int inputs() const { return count() + hm + (np > 0); }
};

inline Status check_operand_shapes(OperandSet ops, const Shape *s) {
  if (!(s[1] == s[0])) return kBadShape;
  for (int k = 2; k < ops.count() + ops.hm; ++k) {  // w, p and m
    if (!broadcasts_to(s[k], s[0])) return kBadShape;
  }
  if (ops.np > 0 && !(s[ops.theta()].rank == 1 && s[ops.theta()].dims[0] == ops.np)) return kBadShape;
  return kOk;
}

// The operand whose gradient a one-output backward gives (0 for the others).
constexpr int gradient_operand(Direction dir, OperandSet ops) {
  switch (dir) {
    case Direction::kBackwardTarget: return 1;
    case Direction::kBackwardWeight: return ops.weight();
    case Direction::kBackwardPosWeight: return ops.pos_weight();
    default: return 0;
  }
}

// Every shape check of one call: operands, then out or dout and the gradients.
inline Status check_call_shapes(Direction dir, Reduction red, OperandSet ops, const Shape *s) {
  if (Status st = check_operand_shapes(ops, s)) return st;
  const int n_in = ops.inputs();
  if (dir == Direction::kForward) {
    const Shape &out = s[n_in];
    return (red == Reduction::kNone ? out == s[0] : out.rank == 0) ? kOk : kBadShape;
  }
  const Shape &dout = s[n_in];
  if (!(red == Reduction::kNone ? dout == s[0] : dout.rank == 0)) return kBadShape;
  if (dir != Direction::kBackward) {  // one gradient, of its input's shape
    return s[n_in + 1] == s[gradient_operand(dir, ops)] ? kOk : kBadShape;
  }
  for (int k = 0; k < ops.count(); ++k) {
    if (!(s[n_in + 1 + k] == s[k])) return kBadShape;  // each gradient has its input's shape
  }
  return kOk;
}

// nparam of an entry point (-1: no such entry point).
constexpr int param_count(Direction dir, OperandSet ops) {
  switch (dir) {
    case Direction::kForward: return ops.inputs() + 1;
    case Direction::kBackward: return ops.inputs() + 1 + ops.count();
    case Direction::kBackwardInput:
    case Direction::kBackwardTarget: return ops.inputs() + 2;
    case Direction::kBackwardWeight: return ops.hw ? ops.inputs() + 2 : -1;
    case Direction::kBackwardPosWeight: return ops.hp ? ops.inputs() + 2 : -1;
  }
  return -1;
}

}  // namespace ms_bce

// A function the library exports (the build hides everything else).
#define MS_BCE_EXPORT extern "C" __attribute__((visibility("default")))

// MindSpore's kernel signature.
#define MS_BCE_KERNEL(name)                                                                                    \
  MS_BCE_EXPORT int name(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream, \
                         void *extra)

#endif  // MS_BCE_COMMON_AOT_ABI_H_
