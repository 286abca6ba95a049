// The InferShape functions of the Custom AOT ABI, shared by the CPU and the
// GPU library (host-only C++17).  MindSpore calls <entry point>InferShape to
// learn the output shapes; unlike the kernels it expects std::vector results
// (hence -D_GLIBCXX_USE_CXX11_ABI=0 in both builds) and a thrown
// std::invalid_argument for inputs that do not fit, which it raises in Python
// as a RuntimeError with the message.
#ifndef MS_BCE_COMMON_INFER_SHAPE_H_
#define MS_BCE_COMMON_INFER_SHAPE_H_

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "aot_abi.h"

namespace ms_bce {

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
// checks them; throws std::invalid_argument for shapes that do not fit,
// which with dynamic shapes are known only at run time.
inline std::vector<std::vector<int64_t>> infer_operand_shapes(const char *op_name, OperandSet ops, const int *ndims,
                                                              int64_t **shapes) {
  const int count = ops.count() + ops.hm;  // x, y[, w][, p][, m]
  const std::string head = std::string("For '") + op_name + "', ";
  if (ndims == nullptr || shapes == nullptr) throw std::invalid_argument(head + "no input shapes.");
  std::vector<std::vector<int64_t>> s;
  for (int k = 0; k < count; ++k) {
    if (ndims[k] < 0 || ndims[k] > kMaxRank || (ndims[k] > 0 && shapes[k] == nullptr)) {
      throw std::invalid_argument(head + "an input has an unsupported rank (at most " + std::to_string(kMaxRank) + ").");
    }
    s.emplace_back(shapes[k], shapes[k] + ndims[k]);
  }
  const char *optional[] = {"weight", "pos_weight", "mask"};
  const char *names[5] = {"input", "target"};
  int k_name = 2;
  if (ops.hw) names[k_name++] = optional[0];
  if (ops.hp) names[k_name++] = optional[1];
  if (ops.hm) names[k_name++] = optional[2];
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
  if (ops.np > 0) {  // the scalar parameters: (np,) float32
    const int t = ops.theta();
    if (ndims[t] != 1 || shapes[t] == nullptr || !dim_matches(shapes[t][0], ops.np)) {
      const int rank = ndims[t] > 0 && ndims[t] <= kMaxRank && shapes[t] != nullptr ? ndims[t] : 0;
      const std::vector<int64_t> got(shapes[t], shapes[t] + rank);
      throw std::invalid_argument(head + "the shape of its scalar parameters must be (" + std::to_string(ops.np) +
                                  ",), but got " + infer_shape_string(got) + ".");
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

// the fused backward: each gradient has its input's shape
inline std::vector<std::vector<int64_t>> backward_infer_shape(const char *op_name, OperandSet ops, int *ndims,
                                                              int64_t **shapes) {
  std::vector<std::vector<int64_t>> s = infer_operand_shapes(op_name, ops, ndims, shapes);
  s.resize(ops.count());  // the gradients: not the mask's
  return s;
}

// a one-output backward: the gradient has its input's shape
inline std::vector<int64_t> gradient_infer_shape(const char *op_name, OperandSet ops, Direction dir, int *ndims,
                                                 int64_t **shapes) {
  return infer_operand_shapes(op_name, ops, ndims, shapes)[gradient_operand(dir, ops)];
}

// What the InferShape function of a direction returns: one shape per output.
template <Direction D>
using InferResult =
    typename std::conditional<D == Direction::kBackward, std::vector<std::vector<int64_t>>, std::vector<int64_t>>::type;

// The InferShape function of one entry point.
template <Direction D, Reduction R>
InferResult<D> infer_shape(const char *op_name, OperandSet ops, int *ndims, int64_t **shapes) {
  if constexpr (D == Direction::kForward) return forward_infer_shape(op_name, R, ops, ndims, shapes);
  else if constexpr (D == Direction::kBackward) return backward_infer_shape(op_name, ops, ndims, shapes);
  else return gradient_infer_shape(op_name, ops, D, ndims, shapes);
}

}  // namespace ms_bce

// MindSpore's InferShape signature for entry point `name` of direction D.
#define MS_BCE_INFER(D, name) \
  MS_BCE_EXPORT ms_bce::InferResult<ms_bce::Direction::D> name##InferShape(int *ndims, int64_t **shapes, void *extra)

#endif  // MS_BCE_COMMON_INFER_SHAPE_H_
