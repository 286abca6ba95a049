// Index and bit arithmetic of the Ascend C kernels that needs no vector unit:
// plain C++ that the kernel compiles as __aicore__ functions (bce_kernel.h
// defines BCE_AICORE before including this) and the test suite compiles on
// the host (tests/native/ascend_tiling_check.cc) and checks against NumPy.
#ifndef MS_BCE_ASCEND_BCE_WALKER_H_
#define MS_BCE_ASCEND_BCE_WALKER_H_

#ifndef BCE_AICORE
#define BCE_AICORE  // host build: plain inline functions
#include <cstdint>
#endif

namespace ms_bce_ascend {

// Shared by op_host (tiling) and op_kernel: one definition.
constexpr int kMaxDims = 16;
constexpr int kWalkerMaxDims = kMaxDims;
constexpr int64_t kAlignElems = 64;       // 256 B of float32: one vector repeat, Compare's granule
constexpr int64_t kPartialAlign = 8;      // floats: one 32-byte block per core partial
constexpr int64_t kCombineElems = 2048;   // elements per step when the core partials are added

enum Direction : int32_t { kForward = 0, kBackward = 1 };  // the loss, or every gradient (fused)
enum Reduction : int32_t { kNone = 0, kMean = 1, kSum = 2 };
// how a weight/pos_weight operand is read
enum OperandMode : int32_t { kAbsent = 0, kFull = 1, kOneElement = 2, kGatherUb = 3, kGatherGm = 4 };
// how its gradient is formed: element-wise (full-size) or summed per core in UB or in the workspace
enum GradMode : int32_t { kNoGrad = 0, kDirect = 1, kAccumUb = 2, kAccumGm = 3 };

// The element offset of a broadcast operand for consecutive flat indices of
// the input, without a division per element: Seek divides once (at a tile's
// start), Advance steps to the next element and carries into outer
// dimensions (the CPU library's run walk, one element at a time).
struct OperandWalker {
  int32_t rank = 1;
  const int64_t *extent = nullptr;
  const int64_t *stride = nullptr;
  int64_t idx[kWalkerMaxDims] = {};
  int64_t off = 0;

  BCE_AICORE inline void Init(int32_t r, const int64_t *e, const int64_t *s) {
    rank = r;
    extent = e;
    stride = s;
  }
  BCE_AICORE inline void Seek(int64_t flat) {
    off = 0;
    for (int32_t d = rank - 1; d >= 0; --d) {
      idx[d] = d > 0 ? flat % extent[d] : flat;
      flat = d > 0 ? flat / extent[d] : 0;
      off += idx[d] * stride[d];
    }
  }
  BCE_AICORE inline void Advance() {
    const int32_t last = rank - 1;
    off += stride[last];
    ++idx[last];
    for (int32_t d = last; d > 0 && idx[d] == extent[d]; --d) {
      off -= extent[d] * stride[d];
      idx[d] = 0;
      ++idx[d - 1];
      off += stride[d - 1];
    }
  }
};

// A core's contiguous range of the input and its tiles (the host's
// CoreRange/TileLength, op_host/bce_tiling_math.h, recomputed in the kernel).
BCE_AICORE inline int64_t CoreBegin(int64_t perCore, int64_t core) { return core * perCore; }
BCE_AICORE inline int64_t CoreLength(int64_t n, int64_t perCore, int64_t core) {
  const int64_t rest = n - core * perCore;
  return rest <= 0 ? 0 : (rest < perCore ? rest : perCore);
}
BCE_AICORE inline int64_t TileLen(int64_t coreLen, int64_t tileLen, int64_t tile) {
  const int64_t rest = coreLen - tile * tileLen;
  return rest < tileLen ? rest : tileLen;
}
BCE_AICORE inline int64_t AlignUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

// Storage bits -> float32, exact (what a broadcast operand gathered from
// global memory by the scalar unit needs: its dtype's raw bits).
BCE_AICORE inline uint32_t HalfBitsToFloatBits(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  if (exp == 0x1F) return sign | 0x7F800000u | (man << 13);
  if (exp != 0) return sign | ((exp + 112) << 23) | (man << 13);
  if (man == 0) return sign;
  int32_t e = -1;  // normalise a subnormal half
  do {
    man <<= 1;
    ++e;
  } while ((man & 0x400u) == 0);
  return sign | static_cast<uint32_t>(112 - e) << 23 | ((man & 0x3FFu) << 13);
}
BCE_AICORE inline uint32_t BFloat16BitsToFloatBits(uint16_t b) { return static_cast<uint32_t>(b) << 16; }

}  // namespace ms_bce_ascend

#endif  // MS_BCE_ASCEND_BCE_WALKER_H_
