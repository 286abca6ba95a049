// The host side of MindSpore's Custom AOT ABI as ms_bce uses it, shared by
// every device library: status codes, dtype strings, shape checks and the
// InferShape functions.  Host-only C++17 (no device code), so that nvcc's
// host pass and plain g++ both compile it.
//
// It repeats, behaviour for behaviour, what custom_ops/cpu/common.h and
// custom_ops/cpu/loss_driver.h do for the CPU library (which does not include
// this header yet); the CPU side can switch to it and drop its copies.
//
// Entry points:
//   int f(int nparam, void **params, int *ndims, int64_t **shapes,
//         const char **dtypes, void *stream, void *extra)
// with inputs first, then outputs.  They never throw and never touch memory
// outside the tensors they were given: anything unexpected returns a nonzero
// Status (the Python layer validates first, so users see its messages).
#ifndef MS_BCE_COMMON_AOT_ABI_H_
#define MS_BCE_COMMON_AOT_ABI_H_

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace ms_bce {

enum Status : int {
  kOk = 0,
  kBadParamCount = 1,    // nparam differs from what the entry point takes
  kBadDtype = 2,         // unknown dtype string, or operands of different dtypes
  kBadShape = 3,         // shapes that do not match / broadcast as required
  kBadRank = 4,          // negative or too large rank, negative dimension
  kNullData = 5,         // a null pointer for a non-empty tensor
  kNoMemory = 6,         // scratch allocation failed
  kInternal = 7,         // an exception that should not happen
  kCudaError = 8,        // GPU only: a CUDA runtime call or kernel launch failed (no device, bad stream, ...)
  kNotDeviceMemory = 9,  // GPU only: a tensor pointer that is not device (or managed) memory
  // 10: the CPU library's kOutOfRange (custom_ops/cpu/common.h)
};

constexpr int kMaxRank = 16;
constexpr int kMaxParams = 12;  // inputs + outputs of the widest entry point (backward: 5 + 4)

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

// Reads and checks one tensor's shape: rank in [0, kMaxRank], dims >= 0,
// element count representable.
inline Status read_shape(int ndim, const int64_t *dims, Shape *out) {
  if (ndim < 0 || ndim > kMaxRank) return kBadRank;
  if (ndim > 0 && dims == nullptr) return kBadRank;
  out->rank = ndim;
  out->numel = 1;
  for (int i = 0; i < ndim; ++i) {
    if (dims[i] < 0) return kBadRank;
    out->dims[i] = dims[i];
    if (dims[i] != 0 && out->numel > INT64_MAX / dims[i]) return kBadRank;
    out->numel *= dims[i];
  }
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
// known dtype; then that every non-empty tensor has data.
inline Status read_args(int nparam, int expected, void **params, int *ndims, int64_t **shapes,
                        const char **dtypes, Args *a) {
  if (nparam != expected || expected > kMaxParams) return kBadParamCount;
  if (params == nullptr || ndims == nullptr || shapes == nullptr || dtypes == nullptr) return kNullData;
  a->nparam = nparam;
  a->params = params;
  for (int i = 0; i < nparam; ++i) {
    const Status s = read_shape(ndims[i], shapes[i], &a->shape[i]);
    if (s != kOk) return s;
    DType d;
    if (!parse_dtype(dtypes[i], &d)) return kBadDtype;
    if (i == 0) a->dtype = d;
    else if (d != a->dtype) return kBadDtype;
    if (a->shape[i].numel > 0 && params[i] == nullptr) return kNullData;
  }
  return kOk;
}

// Operand layout of the entry points (HW/HP: weight/pos_weight present):
//   forward       : x, y, [w], [p]        -> out (x's shape, or 0-d for mean/sum)
//   backward      : x, y, [w], [p], dout  -> dx, dy, [dw], [dp] (each its input's shape)
//   backward_input: x, y, [w], [p], dout  -> dx
// x and y have one shape; w and p broadcast to it and are read in place.
enum class Reduction { kNone, kMean, kSum };
// kBackward is the fused backward (every gradient); the others give one
// gradient each (graph mode drops the ones nobody uses: it never drops a
// multi-output op).
enum class Direction { kForward, kBackward, kBackwardInput, kBackwardTarget, kBackwardWeight, kBackwardPosWeight };

struct OperandSet {
  bool hw, hp;
  int count() const { return 2 + hw + hp; }
  int weight() const { return 2; }
  int pos_weight() const { return 2 + hw; }
};

inline Status check_operand_shapes(OperandSet ops, const Shape *s) {
  if (!(s[1] == s[0])) return kBadShape;
  for (int k = 2; k < ops.count(); ++k) {
    if (!broadcasts_to(s[k], s[0])) return kBadShape;
  }
  return kOk;
}

// Every shape check of one call: operands, dout, outputs.
// The operand whose gradient a one-output backward gives.
inline int gradient_operand(Direction dir, OperandSet ops) {
  switch (dir) {
    case Direction::kBackwardTarget: return 1;
    case Direction::kBackwardWeight: return ops.weight();
    case Direction::kBackwardPosWeight: return ops.pos_weight();
    default: return 0;
  }
}

inline Status check_call_shapes(Direction dir, Reduction red, OperandSet ops, const Shape *s) {
  if (Status st = check_operand_shapes(ops, s)) return st;
  const int n_in = ops.count();
  if (dir == Direction::kForward) {
    const Shape &out = s[n_in];
    return (red == Reduction::kNone ? out == s[0] : out.rank == 0) ? kOk : kBadShape;
  }
  const Shape &dout = s[n_in];
  if (!(red == Reduction::kNone ? dout == s[0] : dout.rank == 0)) return kBadShape;
  if (dir != Direction::kBackward) {  // one gradient, of its input's shape
    return s[n_in + 1] == s[gradient_operand(dir, ops)] ? kOk : kBadShape;
  }
  for (int k = 0; k < n_in; ++k) {
    if (!(s[n_in + 1 + k] == s[k])) return kBadShape;  // each gradient has its input's shape
  }
  return kOk;
}

inline int param_count(Direction dir, OperandSet ops) {
  switch (dir) {
    case Direction::kForward: return ops.count() + 1;
    case Direction::kBackward: return 2 * ops.count() + 1;
    case Direction::kBackwardInput:
    case Direction::kBackwardTarget: return ops.count() + 2;
    case Direction::kBackwardWeight: return ops.hw ? ops.count() + 2 : -1;
    case Direction::kBackwardPosWeight: return ops.hp ? ops.count() + 2 : -1;
  }
  return -1;
}

// --------------------------------------------------------- InferShape ---

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
inline std::vector<std::vector<int64_t>> infer_operand_shapes(const char *op_name, OperandSet ops, const int *ndims,
                                                              int64_t **shapes) {
  const int count = ops.count();
  const std::string head = std::string("For '") + op_name + "', ";
  if (ndims == nullptr || shapes == nullptr) throw std::invalid_argument(head + "no input shapes.");
  std::vector<std::vector<int64_t>> s;
  for (int k = 0; k < count; ++k) {
    if (ndims[k] < 0 || ndims[k] > kMaxRank || (ndims[k] > 0 && shapes[k] == nullptr)) {
      throw std::invalid_argument(head + "an input has an unsupported rank (at most " + std::to_string(kMaxRank) + ").");
    }
    s.emplace_back(shapes[k], shapes[k] + ndims[k]);
  }
  const char *names[] = {"input", "target", ops.hw ? "weight" : "pos_weight", "pos_weight"};
  if (!infer_same_shape(s[1], s[0])) {
    throw std::invalid_argument(head + "the shape of 'target' must be the same as the shape of 'input' " +
                                infer_shape_string(s[0]) + ", but got " + infer_shape_string(s[1]) + ".");
  }
  for (int k = 2; k < count; ++k) {
    if (!infer_broadcasts_to(s[k], s[0])) {
      throw std::invalid_argument(head + "the shape of '" + names[k] + "' " + infer_shape_string(s[k]) +
                                  " can not broadcast to the shape of 'input' " + infer_shape_string(s[0]) + ".");
    }
  }
  return s;
}

// forward: x's shape for 'none', 0-d otherwise
inline std::vector<int64_t> forward_infer_shape(const char *op_name, Reduction red, OperandSet ops, int *ndims,
                                                int64_t **shapes) {
  std::vector<std::vector<int64_t>> s = infer_operand_shapes(op_name, ops, ndims, shapes);
  return red == Reduction::kNone ? s[0] : std::vector<int64_t>{};
}

// backward: each gradient has its input's shape
inline std::vector<std::vector<int64_t>> backward_infer_shape(const char *op_name, OperandSet ops, int *ndims,
                                                              int64_t **shapes) {
  return infer_operand_shapes(op_name, ops, ndims, shapes);
}

// backward_input: dx has x's shape
// A one-output backward: the gradient has its input's shape.
inline std::vector<int64_t> gradient_infer_shape(const char *op_name, OperandSet ops, Direction dir, int *ndims,
                                                 int64_t **shapes) {
  return infer_operand_shapes(op_name, ops, ndims, shapes)[gradient_operand(dir, ops)];
}

inline std::vector<int64_t> backward_input_infer_shape(const char *op_name, OperandSet ops, int *ndims,
                                                       int64_t **shapes) {
  return gradient_infer_shape(op_name, ops, Direction::kBackwardInput, ndims, shapes);
}

}  // namespace ms_bce

// MindSpore's entry-point signatures.
#define MS_BCE_AOT_KERNEL(name)                                                                      \
  extern "C" __attribute__((visibility("default"))) int name(                                        \
      int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream, \
      void *extra)
#define MS_BCE_AOT_INFER(name)                                                          \
  extern "C" __attribute__((visibility("default"))) std::vector<int64_t> name##InferShape( \
      int *ndims, int64_t **shapes, void *extra)
#define MS_BCE_AOT_INFER_MULTI(name)                                                                 \
  extern "C" __attribute__((visibility("default"))) std::vector<std::vector<int64_t>> name##InferShape( \
      int *ndims, int64_t **shapes, void *extra)

#endif  // MS_BCE_COMMON_AOT_ABI_H_
