// What every ms_bce CPU kernel shares: argument checks, dtype handling, the
// broadcast layout used to read weight/pos_weight in place, and the fixed-tile
// reduction that makes sums deterministic.
//
// Entry points follow MindSpore's Custom AOT convention:
//   int f(int nparam, void **params, int *ndims, int64_t **shapes,
//         const char **dtypes, void *stream, void *extra)
// with inputs first, then outputs.  They never throw and never touch memory
// outside the tensors they were given: anything unexpected returns a nonzero
// Status (the Python layer validates first, so users see its messages).
#ifndef MS_BCE_CPU_COMMON_H_
#define MS_BCE_CPU_COMMON_H_

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace ms_bce {

enum Status : int {
  kOk = 0,
  kBadParamCount = 1,  // nparam differs from what the entry point takes
  kBadDtype = 2,       // unknown dtype string, or operands of different dtypes
  kBadShape = 3,       // shapes that do not match / broadcast as required
  kBadRank = 4,        // negative or too large rank, negative dimension
  kNullData = 5,       // a null pointer for a non-empty tensor
  kNoMemory = 6,       // scratch allocation failed
  kInternal = 7,       // an exception that should not happen
  // 8, 9: the GPU library's kCudaError, kNotDeviceMemory (custom_ops/common/aot_abi.h)
  kOutOfRange = 10,    // an input value outside the loss's domain (BCELoss: a probability outside [0, 1]);
                       // the message is in ms_bce_last_error()
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

struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

inline float bits_to_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t float_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// IEEE binary16 -> binary32, exact (subnormals, inf and NaN payloads kept).
inline float to_float(Half h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1Fu;
  uint32_t man = h.bits & 0x3FFu;
  if (exp == 0x1F) return bits_to_float(sign | 0x7F800000u | (man << 13));
  if (exp != 0) return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
  if (man == 0) return bits_to_float(sign);
  int e = -1;  // normalise a subnormal half
  do { man <<= 1; ++e; } while ((man & 0x400u) == 0);
  return bits_to_float(sign | static_cast<uint32_t>(112 - e) << 23 | ((man & 0x3FFu) << 13));
}

// binary32 -> binary16, round to nearest even; overflow gives inf, NaN stays NaN.
inline Half half_from_float(float f) {
  const uint32_t u = float_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // inf or NaN
    return Half{static_cast<uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u | ((abs >> 13) & 0x3FFu) : 0u))};
  }
  if (abs >= 0x477FF000u) return Half{static_cast<uint16_t>(sign | 0x7C00u)};  // rounds past 65504
  if (abs < 0x38800000u) {  // result is subnormal or zero: scale so the rounding is done by the FPU
    const float scaled = bits_to_float(abs) * 16777216.0f;  // 2^24: one half subnormal ulp becomes 1.0
    return Half{static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(scaled)))};
  }
  const uint32_t rounded = abs + 0xFFFu + ((abs >> 13) & 1u);  // round mantissa to 10 bits, ties to even
  return Half{static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13))};
}

inline float to_float(BFloat16 b) { return bits_to_float(static_cast<uint32_t>(b.bits) << 16); }

inline BFloat16 bfloat16_from_float(float f) {
  const uint32_t u = float_to_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return BFloat16{static_cast<uint16_t>((u >> 16) | 0x40u)};  // quiet NaN
  return BFloat16{static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16)};
}

inline float to_float(float f) { return f; }

// Results are formed in double; each storage type rounds from there.
template <class T> T store_as(double v);
template <> inline float store_as<float>(double v) { return static_cast<float>(v); }
template <> inline Half store_as<Half>(double v) { return half_from_float(static_cast<float>(v)); }
template <> inline BFloat16 store_as<BFloat16>(double v) { return bfloat16_from_float(static_cast<float>(v)); }

// Calls fn.template operator()<T>() for the storage type named by dtype.
template <class Fn>
int dispatch_dtype(DType dtype, Fn &&fn) {
  switch (dtype) {
    case DType::kFloat32: return fn.template operator()<float>();
    case DType::kFloat16: return fn.template operator()<Half>();
    case DType::kBFloat16: return fn.template operator()<BFloat16>();
  }
  return kBadDtype;
}

// ---------------------------------------------------------------- shapes ---

struct Shape {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t numel = 1;
  bool operator==(const Shape &o) const {
    return rank == o.rank && std::equal(dims, dims + rank, o.dims);
  }
};

// The largest element count accepted: its size in bytes, at up to 8 bytes an
// element (the double scratch of gradient sums), fits in int64, so no offset
// or pointer computed from it can overflow.
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

// ------------------------------------------------------ broadcast layout ---

// The iteration space of the input's shape with up to two operands read in
// place through element strides (0 along broadcast dimensions).  Adjacent
// dimensions that every operand walks contiguously are merged, so a
// full-size operand gives one flat dimension and a per-class vector gives two.
constexpr int kMaxBroadcast = 2;

struct BroadcastLayout {
  int rank = 0;
  int64_t extent[kMaxRank] = {};
  int64_t stride[kMaxBroadcast][kMaxRank] = {};
  int n_operands = 0;
  int64_t numel = 1;
};

inline BroadcastLayout make_layout(const Shape &out, const Shape *const *operands, int n_operands) {
  BroadcastLayout raw;
  raw.n_operands = n_operands;
  raw.numel = out.numel;
  for (int k = 0; k < n_operands; ++k) {
    const Shape &s = *operands[k];
    const int lead = out.rank - s.rank;
    int64_t step = 1;
    for (int d = out.rank - 1; d >= 0; --d) {
      const int64_t own = d >= lead ? s.dims[d - lead] : 1;
      raw.stride[k][d] = (own == 1 && out.dims[d] != 1) ? 0 : step;
      step *= own;
    }
  }
  BroadcastLayout l;
  l.n_operands = n_operands;
  l.numel = out.numel;
  for (int d = 0; d < out.rank; ++d) {
    if (out.dims[d] == 1) continue;  // size-1 dims carry no iteration
    bool merge = l.rank > 0;
    for (int k = 0; k < n_operands && merge; ++k) {
      merge = l.stride[k][l.rank - 1] == raw.stride[k][d] * out.dims[d];
    }
    if (merge) {
      l.extent[l.rank - 1] *= out.dims[d];
      for (int k = 0; k < n_operands; ++k) l.stride[k][l.rank - 1] = raw.stride[k][d];
    } else {
      l.extent[l.rank] = out.dims[d];
      for (int k = 0; k < n_operands; ++k) l.stride[k][l.rank] = raw.stride[k][d];
      ++l.rank;
    }
  }
  if (l.rank == 0) {  // 0-d or all-ones shape: one element
    l.rank = 1;
    l.extent[0] = 1;
    for (int k = 0; k < n_operands; ++k) l.stride[k][0] = 0;
  }
  return l;
}

// A run: `len` consecutive flat elements starting at `flat`, along which the
// broadcast operands advance by `step[k]` (0 or 1) from offset `off[k]`.
struct Run {
  int64_t flat;
  int64_t len;
  int64_t off[kMaxBroadcast];
  int64_t step[kMaxBroadcast];
};

// Calls fn(const Run&) for the runs covering flat indices [begin, end).
template <class Fn>
void for_each_run(const BroadcastLayout &l, int64_t begin, int64_t end, Fn &&fn) {
  if (begin >= end) return;
  const int last = l.rank - 1;
  int64_t idx[kMaxRank];
  int64_t off[kMaxBroadcast] = {0, 0};
  int64_t rem = begin;
  for (int d = last; d >= 0; --d) {
    idx[d] = rem % l.extent[d];
    rem /= l.extent[d];
    for (int k = 0; k < l.n_operands; ++k) off[k] += idx[d] * l.stride[k][d];
  }
  int64_t flat = begin;
  while (flat < end) {
    Run run;
    run.flat = flat;
    run.len = std::min(l.extent[last] - idx[last], end - flat);
    for (int k = 0; k < kMaxBroadcast; ++k) {
      run.off[k] = k < l.n_operands ? off[k] : 0;
      run.step[k] = k < l.n_operands ? l.stride[k][last] : 0;
    }
    fn(run);
    flat += run.len;
    // advance the multi-index past the run, carrying into outer dims
    for (int k = 0; k < l.n_operands; ++k) off[k] += run.len * l.stride[k][last];
    idx[last] += run.len;
    for (int d = last; d > 0 && idx[d] == l.extent[d]; --d) {
      for (int k = 0; k < l.n_operands; ++k) {
        off[k] -= l.extent[d] * l.stride[k][d];
        off[k] += l.stride[k][d - 1];
      }
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

// ------------------------------------------------------------- tiling ---

// Reductions are split into tiles whose boundaries depend on the element
// count only; tile partial sums are combined in tile order.  The result is
// therefore the same however the tiles are scheduled.
constexpr int64_t kTile = int64_t{1} << 15;

inline int64_t tile_count(int64_t numel) { return (numel + kTile - 1) / kTile; }

template <class Fn>
void for_each_tile(int64_t numel, Fn &&fn) {
  const int64_t tiles = tile_count(numel);
  for (int64_t t = 0; t < tiles; ++t) fn(t, t * kTile, std::min(numel, (t + 1) * kTile));
}

// Sum of per-tile partials in tile order (each partial itself summed in order).
inline double combine_in_order(const std::vector<double> &partials) {
  double s = 0.0;
  for (double p : partials) s += p;
  return s;
}

// ------------------------------------------------------- element maths ---

// a * b, except that an exactly-zero factor gives exactly zero even when the
// other is infinite (a term whose coefficient is zero contributes nothing).
// NaN still propagates.
template <class F>
inline F mul0(F a, F b) {
  const F r = a * b;
  return (r != r && a == a && b == b) ? F(0) : r;
}

// softplus(+-x) and sigmoid(+-x) of one logit from a single exp(-|x|):
//   softplus(z) = max(z, 0) + log1p(exp(-|z|))   (never exp of a large positive)
//   sigmoid(|x|) = 1 / (1 + e),  sigmoid(-|x|) = e / (1 + e)
// All four are exact in both tails; NaN gives NaN, +-inf gives 0/inf and 0/1.
struct Logistic {
  double e;  // exp(-|x|)
  double x;
  static Logistic of(double x) { return Logistic{std::exp(-std::fabs(x)), x}; }
  double log1p_e() const { return std::log1p(e); }
  double softplus_pos(double l) const { return (x > 0.0 ? x : 0.0) + l; }   // softplus(x), l = log1p_e()
  double softplus_neg(double l) const { return (x < 0.0 ? -x : 0.0) + l; }  // softplus(-x)
  double sigmoid_pos() const { return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e); }  // sigmoid(x)
  double sigmoid_neg() const { return x >= 0.0 ? e / (1.0 + e) : 1.0 / (1.0 + e); }  // sigmoid(-x)
};

// ------------------------------------------------------ argument access ---

// The tensors an entry point was called with, checked once.
struct Args {
  int nparam;
  void **params;
  Shape shape[kMaxParams];
  DType dtype;
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

// IEEE arithmetic for the scope of a kernel: round to nearest, subnormals
// neither flushed nor read as zero.  MindSpore's graph-mode runtime threads
// run with FTZ and DAZ set (MXCSR 0x9fe2 seen), which turned a float32 loss
// of 4.9e-40 into 0 and would read subnormal inputs as 0.
class IeeeFloatScope {
 public:
#if defined(__x86_64__) || defined(__i386__)
  IeeeFloatScope() : saved_(_mm_getcsr()) {
    constexpr unsigned kFlushToZero = 0x8000u, kDenormalsAreZero = 0x0040u, kRoundingMode = 0x6000u;
    _mm_setcsr(saved_ & ~(kFlushToZero | kDenormalsAreZero | kRoundingMode));
  }
  ~IeeeFloatScope() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#elif defined(__aarch64__)
  IeeeFloatScope() {
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(saved_));
    constexpr uint64_t kFlushToZero = 1ull << 24, kRoundingMode = 3ull << 22, kFlushToZero16 = 1ull << 19;
    const uint64_t ieee = saved_ & ~(kFlushToZero | kRoundingMode | kFlushToZero16);
    __asm__ __volatile__("msr fpcr, %0" : : "r"(ieee));
  }
  ~IeeeFloatScope() { __asm__ __volatile__("msr fpcr, %0" : : "r"(saved_)); }

 private:
  uint64_t saved_;
#endif
  IeeeFloatScope(const IeeeFloatScope &) = delete;
  IeeeFloatScope &operator=(const IeeeFloatScope &) = delete;
};

// Runs body() under IEEE arithmetic and turns any exception (allocation
// included) into a Status: nothing may unwind into MindSpore's kernel launcher.
template <class Fn>
int guarded(Fn &&body) {
  const IeeeFloatScope ieee;
  try {
    return body();
  } catch (const std::bad_alloc &) {
    return kNoMemory;
  } catch (...) {
    return kInternal;
  }
}

// ------------------------------------------------------ error messages ---

// The message of the last kOutOfRange of this thread (the thread that called
// the entry point), for ms_bce_last_error().
inline std::string &last_error() {
  static thread_local std::string message;
  return message;
}

// kOutOfRange with its message: "For '<op>', every element of '<arg>' must be
// in [0, 1], but got <value> at index <flat index>." (value: the shortest
// float32 text that reads back as it).
inline int out_of_range(const char *op, const char *arg, float value, int64_t index) {
  char text[32];
  const auto res = std::to_chars(text, text + sizeof(text), value);
  last_error() = std::string("For '") + op + "', every element of '" + arg + "' must be in [0, 1], but got " +
                 std::string(text, res.ptr) + " at index " + std::to_string(index) + ".";
  return kOutOfRange;
}

// The status an entry point returns.  A value outside the domain is the
// user's error, whose message must reach them: MindSpore's CPU kernel
// launcher (the only caller that passes a non-null `extra`, its AotExtra)
// calls the kernel inside try/catch(std::exception) and raises a Python
// RuntimeError that carries what(); a bare status would show only "Return
// value ... is 10".  Every other caller (ctypes: extra is nullptr) gets the
// status, the message in ms_bce_last_error(), and no exception.
inline int report(int status, void *extra) {
  if (status == kOutOfRange && extra != nullptr) throw std::runtime_error(last_error());
  return status;
}

}  // namespace ms_bce

// MindSpore's entry-point signatures.
#define MS_BCE_KERNEL(name)                                                                  \
  extern "C" __attribute__((visibility("default"))) int name(                              \
      int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream, \
      void *extra)
#define MS_BCE_INFER(name) \
  extern "C" __attribute__((visibility("default"))) std::vector<int64_t> name##InferShape(int *ndims, int64_t **shapes, void *extra)
#define MS_BCE_INFER_MULTI(name)                                                                   \
  extern "C" __attribute__((visibility("default"))) std::vector<std::vector<int64_t>> name##InferShape( \
      int *ndims, int64_t **shapes, void *extra)

#endif  // MS_BCE_CPU_COMMON_H_
