// Index arithmetic of the GPU kernels, as __host__ __device__ code that the
// test suite also compiles and checks on the host:
// - FastDivmod: 64-bit division by a run-time constant with a multiply-high
//   (a hardware 64-bit divide costs ~70 instructions per element on a GPU);
// - OperandLayout: where weight and pos_weight are read, in place, for an
//   element of the input (broadcast strides, 0 along broadcast dimensions);
// - ReducePlan: how a sum over broadcast dimensions (or over everything, for
//   'mean'/'sum') is split into threads, blocks and chunks.  Every choice in
//   it depends on the shapes only, never on the device, so the summation
//   order -- and the result -- is the same on every run and every GPU.
#ifndef MS_BCE_GPU_INDEXING_CUH_
#define MS_BCE_GPU_INDEXING_CUH_

#include <stdint.h>

#include "../common/aot_abi.h"
#include "../common/broadcast.h"
#include "bce_math.cuh"

namespace ms_bce {
namespace gpu {

constexpr int kBlock = 256;            // threads per block, every kernel
constexpr int kMaxGroups = kMaxRank / 2;  // kept and reduced dimension groups alternate
constexpr int64_t kTargetBlocks = 2048;   // blocks a reduction aims for (H100: 132 SMs x 8 x 2 waves)
constexpr int64_t kMinPerThread = 16;     // elements a reduction thread sums at least, when it can
constexpr int64_t kMaxChunks = 65535;     // gridDim.y limit

MS_BCE_HD inline uint64_t mulhi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

// n / d and n % d for 0 <= n < 2^63 and 1 <= d < 2^63 (Granlund & Montgomery,
// "Division by invariant integers using multiplication", 1994):
//   s = ceil(log2 d),  m = floor(2^(64+s) / d) + 1 - 2^64  (< 2^64),
//   n / d = (mulhi(n, m) + n) >> s
// exact for every n < 2^64 when computed without overflow; mulhi(n, m) < n and
// n < 2^63 keep the sum below 2^64.  Tested on the host against '/'.
struct FastDivmod {
  uint64_t divisor = 1;
  uint64_t magic = 1;
  unsigned shift = 0;

  static FastDivmod make(int64_t d) {  // host only
    FastDivmod f;
    f.divisor = static_cast<uint64_t>(d < 1 ? 1 : d);
    f.shift = 0;
    while ((uint64_t{1} << f.shift) < f.divisor) ++f.shift;
    const unsigned __int128 one = 1;
    f.magic = static_cast<uint64_t>((one << (64 + f.shift)) / f.divisor + 1 - (one << 64));
    return f;
  }
  MS_BCE_HD uint64_t div(uint64_t n) const { return (mulhi64(n, magic) + n) >> shift; }
  MS_BCE_HD void divmod(uint64_t n, uint64_t *q, uint64_t *r) const {
    *q = div(n);
    *r = n - *q * divisor;
  }
};

// ------------------------------------------------------ operand layout ---

// The input's shape with up to two broadcast operands (weight, pos_weight)
// read through element strides, merged as the CPU library merges them
// (../common/broadcast.h), so a full-size or 0-d operand gives one flat
// dimension (no division per element) and a per-class vector gives two (one
// division).
constexpr int kMaxOperands = kMaxBroadcast;

struct OperandLayout : MergedDims {
  int n_operands = 0;
  FastDivmod div[kMaxRank];

  // Element offsets of the operands for flat index `flat` of the input.
  MS_BCE_HD void offsets(int64_t flat, int64_t off[kMaxOperands]) const {
    off[0] = 0;
    off[1] = 0;
    uint64_t rem = static_cast<uint64_t>(flat);
    for (int d = rank - 1; d > 0; --d) {  // the outermost index is what remains: no division
      uint64_t q, i;
      div[d].divmod(rem, &q, &i);
      off[0] += static_cast<int64_t>(i) * stride[0][d];
      off[1] += static_cast<int64_t>(i) * stride[1][d];
      rem = q;
    }
    off[0] += static_cast<int64_t>(rem) * stride[0][0];
    off[1] += static_cast<int64_t>(rem) * stride[1][0];
  }
};

inline OperandLayout make_operand_layout(const Shape &out, const Shape *const *operands, int n_operands) {
  OperandLayout l;
  static_cast<MergedDims &>(l) = merge_broadcast_dims(out, operands, n_operands);
  l.n_operands = n_operands;
  for (int d = 0; d < l.rank; ++d) l.div[d] = FastDivmod::make(l.extent[d]);
  return l;
}

// --------------------------------------------------------- reduce plan ---

// A sum of per-element values of the input into `outputs` results, each
// the sum over `per_output` elements: the gradient of a broadcast operand
// (one output per operand element, summed over the dimensions along which it
// is broadcast), or the 'mean'/'sum' loss (one output, summed over all).
//
// The input's dimensions (size-1 ones dropped) are "kept" (the operand varies
// along them) or "reduced" (it is broadcast along them); adjacent dimensions
// of one kind are merged into a group.  Output o and reduced index r then name
// the input element  flat = kept_offset(o) + red_offset(r),  where o and r are
// row-major indices over the kept and the reduced groups; o is also the
// operand's own flat index.  (o, r) -> flat is a bijection.
//
// Threads: a block of kBlock = bx * by threads takes bx consecutive outputs
// and, for each, by threads along r; blockIdx.y picks one of `chunks`
// consecutive ranges of r (chunk_len each).  Thread (tx, ty) sums, in
// increasing r, the elements r = chunk_begin + ty + k * by; the by partial
// sums of an output are combined by a fixed shared-memory tree; with one
// chunk that is the result, otherwise each chunk's sum is stored and a second
// pass (a plan of the same kind over the partials) sums them in chunk order.
// Consecutive threads take consecutive outputs when the input's innermost
// group is kept, consecutive r otherwise: either way a warp reads
// consecutive addresses.
struct ReducePlan {
  int64_t outputs = 1;     // O
  int64_t per_output = 1;  // R
  int n_kept = 0, n_red = 0;
  int64_t kept_extent[kMaxGroups] = {}, kept_xstride[kMaxGroups] = {};
  FastDivmod kept_div[kMaxGroups];
  int64_t red_extent[kMaxGroups] = {}, red_xstride[kMaxGroups] = {};
  FastDivmod red_div[kMaxGroups];
  int bx = 1, by = kBlock;         // threads along outputs, along r
  bool outputs_fastest = false;    // lane order within a block
  int64_t out_groups = 1;          // ceil(O / bx): blocks needed along the outputs
  int64_t grid_x = 1;              // blocks launched along the outputs (grid-stride beyond)
  int64_t chunks = 1;              // C = gridDim.y
  int64_t chunk_len = 1;           // L

  MS_BCE_HD int64_t kept_offset(int64_t o) const {
    return group_offset(o, n_kept, kept_div, kept_xstride);
  }
  MS_BCE_HD int64_t red_offset(int64_t r) const {
    return group_offset(r, n_red, red_div, red_xstride);
  }
  MS_BCE_HD int64_t flat_index(int64_t o, int64_t r) const { return kept_offset(o) + red_offset(r); }

  MS_BCE_HD void thread_pos(int tid, int *tx, int *ty) const {
    if (outputs_fastest) {
      *tx = tid % bx;
      *ty = tid / bx;
    } else {
      *ty = tid % by;
      *tx = tid / by;
    }
  }

 private:
  MS_BCE_HD static int64_t group_offset(int64_t index, int n, const FastDivmod *div, const int64_t *xstride) {
    if (n == 0) return 0;
    int64_t off = 0;
    uint64_t rem = static_cast<uint64_t>(index);
    for (int g = n - 1; g > 0; --g) {
      uint64_t q, i;
      div[g].divmod(rem, &q, &i);
      off += static_cast<int64_t>(i) * xstride[g];
      rem = q;
    }
    return off + static_cast<int64_t>(rem) * xstride[0];
  }
};

// The elements one thread sums: chunk `chunk`, lane `ty`, output `o`.
// `src(flat, acc)` adds the element's value(s) to acc (and may write
// element-wise outputs as a side effect: each element is visited once).
template <class Src>
MS_BCE_HD inline void reduce_thread(const ReducePlan &p, const Src &src, int64_t o, int64_t chunk, int ty,
                                    double *acc) {
  const int64_t begin = chunk * p.chunk_len;
  const int64_t end = begin + p.chunk_len < p.per_output ? begin + p.chunk_len : p.per_output;
  const int64_t base = p.kept_offset(o);
  for (int64_t r = begin + ty; r < end; r += p.by) src(base + p.red_offset(r), acc);
}

inline int64_t pow2_at_least(int64_t v) {
  int64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Threads, blocks and chunks for a plan whose groups are set.  inner_kept:
// the input's innermost group is kept; inner_extent: that group's extent.
inline void choose_launch(ReducePlan *p, bool inner_kept, int64_t inner_extent, bool single_chunk) {
  p->outputs_fastest = inner_kept;
  if (inner_kept) {
    // a warp spans up to 32 consecutive outputs; the rest of the block goes along r
    const int64_t bx0 = pow2_at_least(inner_extent < 32 ? inner_extent : 32);
    int64_t by = kBlock / bx0;
    const int64_t r2 = pow2_at_least(p->per_output);
    if (r2 < by) by = r2;
    p->by = static_cast<int>(by);
    p->bx = static_cast<int>(kBlock / by);
  } else {
    // a warp spans consecutive r of one output (or of a few short ones)
    const int64_t by = pow2_at_least(inner_extent < kBlock ? inner_extent : kBlock);
    p->by = static_cast<int>(by);
    p->bx = static_cast<int>(kBlock / by);
  }
  p->out_groups = ceil_div(p->outputs, p->bx);
  p->grid_x = p->out_groups < (int64_t{1} << 30) ? p->out_groups : (int64_t{1} << 30);
  int64_t chunks = 1;
  if (!single_chunk) {
    const int64_t useful = ceil_div(p->per_output, p->by * kMinPerThread);  // more leaves threads idle
    chunks = ceil_div(kTargetBlocks, p->out_groups);
    if (chunks > useful) chunks = useful;
    if (chunks > kMaxChunks) chunks = kMaxChunks;
    if (chunks < 1) chunks = 1;
  }
  p->chunk_len = ceil_div(p->per_output, chunks);
  if (p->chunk_len < 1) p->chunk_len = 1;
  p->chunks = ceil_div(p->per_output, p->chunk_len);  // no empty chunk
  if (p->chunks < 1) p->chunks = 1;
}

// The plan that sums the input (shape x, non-empty) into the shape of an
// operand that broadcasts to it; operand = 0-d gives the full sum.
inline ReducePlan make_reduce_plan(const Shape &x, const Shape &operand) {
  ReducePlan p;
  int64_t xstride[kMaxRank];
  int64_t step = 1;
  for (int d = x.rank - 1; d >= 0; --d) {
    xstride[d] = step;
    step *= x.dims[d];
  }
  const int lead = x.rank - operand.rank;
  int last_kind = -1;  // 1 kept, 0 reduced
  int64_t inner_extent = 1;
  for (int d = 0; d < x.rank; ++d) {
    if (x.dims[d] == 1) continue;
    const int64_t own = d >= lead ? operand.dims[d - lead] : 1;
    const int kind = own == 1 ? 0 : 1;
    int64_t *extent = kind ? p.kept_extent : p.red_extent;
    int64_t *xs = kind ? p.kept_xstride : p.red_xstride;
    int &n = kind ? p.n_kept : p.n_red;
    if (kind == last_kind) {  // adjacent in a row-major input: merge into the group
      extent[n - 1] *= x.dims[d];
      xs[n - 1] = xstride[d];
    } else {
      extent[n] = x.dims[d];
      xs[n] = xstride[d];
      ++n;
    }
    last_kind = kind;
    inner_extent = extent[n - 1];
  }
  p.outputs = 1;
  p.per_output = 1;
  for (int g = 0; g < p.n_kept; ++g) {
    p.kept_div[g] = FastDivmod::make(p.kept_extent[g]);
    p.outputs *= p.kept_extent[g];
  }
  for (int g = 0; g < p.n_red; ++g) {
    p.red_div[g] = FastDivmod::make(p.red_extent[g]);
    p.per_output *= p.red_extent[g];
  }
  choose_launch(&p, last_kind == 1, inner_extent, false);
  return p;
}

// The second pass: `chunks` partial sums of each of `outputs` results, stored
// at partial[c * outputs + o], summed in chunk order by one chunk.
inline ReducePlan make_partials_plan(int64_t outputs, int64_t chunks) {
  ReducePlan p;
  p.n_kept = 1;
  p.kept_extent[0] = outputs;
  p.kept_xstride[0] = 1;
  p.kept_div[0] = FastDivmod::make(outputs);
  p.n_red = 1;
  p.red_extent[0] = chunks;
  p.red_xstride[0] = outputs;
  p.red_div[0] = FastDivmod::make(chunks);
  p.outputs = outputs;
  p.per_output = chunks;
  if (outputs == 1) {
    choose_launch(&p, false, chunks, true);  // one output: a block along the chunks
  } else {
    choose_launch(&p, true, outputs, true);
  }
  return p;
}

// True when two operands are broadcast along the same dimensions of x, so
// one plan reduces both (their gradients then come from one pass).
inline bool same_broadcast_pattern(const Shape &x, const Shape &a, const Shape &b) {
  for (int d = 0; d < x.rank; ++d) {
    if (x.dims[d] == 1) continue;
    const int64_t da = d >= x.rank - a.rank ? a.dims[d - (x.rank - a.rank)] : 1;
    const int64_t db = d >= x.rank - b.rank ? b.dims[d - (x.rank - b.rank)] : 1;
    if ((da == 1) != (db == 1)) return false;
  }
  return true;
}

}  // namespace gpu
}  // namespace ms_bce

#endif  // MS_BCE_GPU_INDEXING_CUH_
