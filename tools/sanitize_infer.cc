// The C++ half of tools/sanitize.py: calls every InferShape function of the
// sanitizer-built kernel library (they return std::vector and may throw
// std::invalid_argument, which ctypes cannot handle), and every kernel once
// with valid and once with malformed arguments, under AddressSanitizer,
// UndefinedBehaviorSanitizer and LeakSanitizer.
//
//   sanitize_infer LIB NAMES_JSON     (exit status 0 when every check passes)
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../custom_ops/common/aot_abi.h"

namespace {

using Shape = std::vector<int64_t>;
using InferOne = std::vector<int64_t> (*)(int *, int64_t **, void *);
using InferMany = std::vector<std::vector<int64_t>> (*)(int *, int64_t **, void *);
using Kernel = int (*)(int, void **, int *, int64_t **, const char **, void *, void *);

int failures = 0;
int calls = 0;

void fail(const std::string &what) {
  ++failures;
  std::printf("  FAILED %s\n", what.c_str());
}

// The names listed under "key" in the JSON file tools/sanitize.py writes.
std::vector<std::string> names(const std::string &json, const std::string &key) {
  std::vector<std::string> out;
  const size_t at = json.find("\"" + key + "\"");
  const size_t open = json.find('[', at), close = json.find(']', at);
  for (size_t i = json.find('"', open); i < close; i = json.find('"', i + 1)) {
    const size_t end = json.find('"', i + 1);
    out.push_back(json.substr(i + 1, end - i - 1));
    i = end;
  }
  return out;
}

// The entry point's name without "InferShape".
std::string base_of(const std::string &name) {
  const size_t cut = name.rfind("InferShape");
  return cut == std::string::npos ? name : name.substr(0, cut);
}

struct Operands {
  int n;          // x, y[, w][, p]
  bool has_w, has_p;
  int np;         // the t operand's length (the loss's scalar parameters and the drivers' options; 0: no t)
  bool has_m;     // a mask operand (bool), after p and before t
};

// "<loss>:<count>" of every loss: its t operand's length (the JSON's "parameters")
std::vector<std::string> parameter_losses;

Operands operands_of(const std::string &name) {
  const std::string base = base_of(name);
  const size_t last = base.rfind('_');
  std::string tail = base.substr(last + 1);
  const bool has_m = tail == "m" || tail == "wm" || tail == "pm" || tail == "wpm";
  if (has_m) tail.pop_back();
  const bool has_w = tail == "w" || tail == "wp", has_p = tail == "p" || tail == "wp";
  int np = 0;
  for (const std::string &entry : parameter_losses) {
    const size_t colon = entry.rfind(':');
    if (base.rfind(entry.substr(0, colon) + "_", 0) == 0) np = std::stoi(entry.substr(colon + 1));
  }
  return {2 + has_w + has_p, has_w, has_p, np, has_m};
}

// The fused backward (every gradient): <loss>_backward_<reduction>[_suffix], nothing between
// "backward" and the reduction (backward_input, _target, _weight and _pos_weight give one gradient).
bool is_multi(const std::string &name) {
  const std::string base = base_of(name);
  for (const char *r : {"_backward_none", "_backward_mean", "_backward_sum"}) {
    const size_t at = base.find(r);
    if (at == std::string::npos) continue;
    const size_t end = at + std::string(r).size();
    if (end == base.size() || base[end] == '_') return true;
  }
  return false;
}

// The input whose shape a one-output backward's gradient has (x 0, target 1, weight 2,
// pos_weight 2 + has_w), or -1 for a forward or the fused backward.
int gradient_operand(const std::string &name, const Operands &o) {
  const std::string base = base_of(name);
  if (base.find("_backward_input_") != std::string::npos) return 0;
  if (base.find("_backward_target_") != std::string::npos) return 1;
  if (base.find("_backward_weight_") != std::string::npos) return o.has_w ? 2 : -2;
  if (base.find("_backward_pos_weight_") != std::string::npos) return o.has_p ? 2 + o.has_w : -2;
  return -1;
}

bool is_reduced(const std::string &name) {
  return name.find("_forward_mean") != std::string::npos || name.find("_forward_sum") != std::string::npos;
}

std::string text(const std::vector<Shape> &shapes) {
  std::ostringstream s;
  for (const Shape &sh : shapes) {
    s << "(";
    for (int64_t d : sh) s << d << ",";
    s << ")";
  }
  return s.str();
}

// Calls an InferShape with these input shapes (nullptr for a NULL array).
// expect_ok: it returns `want`; otherwise it throws std::invalid_argument.
void infer_case(void *fn, const std::string &name, std::vector<Shape> in, bool expect_ok,
                const std::vector<Shape> &want, const char *what, bool null_ndims = false, bool null_shapes = false,
                int null_one = -1, int rank_override = -1000) {
  ++calls;
  std::vector<int> ndims;
  std::vector<int64_t *> ptrs;
  for (Shape &s : in) {
    ndims.push_back(static_cast<int>(s.size()));
    ptrs.push_back(s.empty() ? nullptr : s.data());
  }
  if (null_one >= 0) ptrs[null_one] = nullptr;
  if (rank_override != -1000) ndims[0] = rank_override;
  int *nd = null_ndims ? nullptr : ndims.data();
  int64_t **sh = null_shapes ? nullptr : ptrs.data();
  const std::string label = name + " " + what + " " + text(in);
  try {
    std::vector<Shape> got;
    if (is_multi(name)) {
      got = reinterpret_cast<InferMany>(fn)(nd, sh, nullptr);
    } else {
      got.push_back(reinterpret_cast<InferOne>(fn)(nd, sh, nullptr));
    }
    if (!expect_ok) fail(label + ": returned " + text(got) + ", expected std::invalid_argument");
    else if (got != want) fail(label + ": returned " + text(got) + ", expected " + text(want));
  } catch (const std::invalid_argument &e) {
    if (expect_ok) fail(label + ": threw " + e.what());
    else if (std::string(e.what()).find("For '") != 0) fail(label + ": message " + e.what());
  } catch (...) {
    fail(label + ": threw something other than std::invalid_argument");
  }
}

void drive_infer(void *lib, const std::string &name) {
  void *fn = dlsym(lib, name.c_str());
  if (fn == nullptr) return fail(name + ": not exported");
  const Operands o = operands_of(name);
  auto inputs = [&](Shape x, Shape y, Shape w, Shape p) {
    std::vector<Shape> in{x, y};
    if (o.has_w) in.push_back(w);
    if (o.has_p) in.push_back(p);
    if (o.has_m) in.push_back(w);  // the mask, broadcast as the weight is
    if (o.np > 0) in.push_back(Shape{o.np});
    return in;
  };
  // each gradient has its input's shape (as the caller passes it: dy the target's, which
  // can differ from the input's where dimensions are dynamic); a forward 'none' the
  // input's, a forward mean/sum 0-d
  const int k = gradient_operand(name, o);
  if (k == -2) return fail(name + ": a weight gradient without its operand");
  auto expected = [&](const std::vector<Shape> &in) {
    if (is_multi(name)) return std::vector<Shape>(in.begin(), in.begin() + o.n);  // (no gradient of t)
    if (k >= 0) return std::vector<Shape>{in[k]};
    return std::vector<Shape>{is_reduced(name) ? Shape{} : in[0]};
  };
  auto valid = [&](std::vector<Shape> in, const char *what) { infer_case(fn, name, in, true, expected(in), what); };
  valid(inputs({3, 4}, {3, 4}, {4}, {3, 1}), "static");
  valid(inputs({}, {}, {}, {}), "0-d");
  valid(inputs({0, 4}, {0, 4}, {1, 4}, {4}), "empty");
  valid(inputs({-1, 4}, {3, -1}, {4}, {-1, 1}), "dynamic");
  valid(inputs({-2}, {3, 4}, {5}, {-2}), "dynamic rank");
  Shape ones16(ms_bce::kMaxRank, 1);
  valid(inputs(ones16, ones16, {1}, {}), "rank 16");
  infer_case(fn, name, inputs({3, 4}, {4, 3}, {4}, {3, 1}), false, {}, "target differs");
  infer_case(fn, name, inputs({3, 4}, {3}, {4}, {3, 1}), false, {}, "target rank differs");
  if (o.has_w) infer_case(fn, name, inputs({3, 4}, {3, 4}, {5}, {1}), false, {}, "weight");
  if (o.has_w) infer_case(fn, name, inputs({3, 4}, {3, 4}, {1, 3, 4}, {1}), false, {}, "weight rank");
  if (o.has_p) infer_case(fn, name, inputs({3, 4}, {3, 4}, {1}, {2, 4}), false, {}, "pos_weight");
  if (o.has_m) {  // a mask that does not broadcast
    std::vector<Shape> bad = inputs({3, 4}, {3, 4}, {4}, {3, 1});
    bad[o.n] = Shape{2, 4};
    infer_case(fn, name, bad, false, {}, "mask");
  }
  if (o.np > 0) {  // t: exactly the loss's scalars, in one dimension
    std::vector<Shape> bad = inputs({3, 4}, {3, 4}, {4}, {3, 1});
    bad.back() = Shape{o.np + 1};
    infer_case(fn, name, bad, false, {}, "parameters' length");
    bad.back() = Shape{1, o.np};
    infer_case(fn, name, bad, false, {}, "parameters' rank");
  }
  Shape ones17(ms_bce::kMaxRank + 1, 1);
  infer_case(fn, name, inputs(ones17, ones17, {1}, {1}), false, {}, "rank 17");
  infer_case(fn, name, inputs({3, 4}, {3, 4}, {4}, {4}), false, {}, "negative rank", false, false, -1, -3);
  infer_case(fn, name, inputs({3, 4}, {3, 4}, {4}, {4}), false, {}, "NULL ndims", true);
  infer_case(fn, name, inputs({3, 4}, {3, 4}, {4}, {4}), false, {}, "NULL shapes", false, true);
  infer_case(fn, name, inputs({3, 4}, {3, 4}, {4}, {4}), false, {}, "NULL shape", false, false, 1);
}

// One valid and one malformed call of a kernel (float32), for LeakSanitizer.
void drive_kernel(void *lib, const std::string &name) {
  auto fn = reinterpret_cast<Kernel>(dlsym(lib, name.c_str()));
  if (fn == nullptr) return fail(name + ": not exported");
  const Operands o = operands_of(name);
  const bool forward = name.find("_forward_") != std::string::npos;
  const bool reduced = name.find("_mean") != std::string::npos || name.find("_sum") != std::string::npos;
  std::vector<Shape> shapes{{300, 300}, {300, 300}};  // 90000 elements: two chunks
  if (o.has_w) shapes.push_back({300});
  if (o.has_p) shapes.push_back({300, 1});
  if (o.has_m) shapes.push_back({300, 300});  // the mask (bool bytes: see below)
  if (o.np > 0) shapes.push_back({o.np});  // t (every value 0.25 below: alpha, gamma, label smoothing)
  if (!forward) shapes.push_back(reduced ? Shape{} : Shape{300, 300});
  if (forward) {
    shapes.push_back(reduced ? Shape{} : Shape{300, 300});
  } else if (is_multi(name)) {
    for (int k = 0; k < o.n; ++k) shapes.push_back(shapes[k]);
  } else {
    const int k = gradient_operand(name, o);
    if (k < 0) return fail(name + ": neither a forward, the fused backward nor a one-gradient backward");
    shapes.push_back(shapes[k]);  // that operand's gradient, in its shape
  }
  std::vector<std::vector<float>> data;
  std::vector<void *> params;
  std::vector<int> ndims;
  std::vector<int64_t *> ptrs;
  std::vector<const char *> dtypes;
  for (Shape &s : shapes) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    data.emplace_back(n, 0.25f);
    ndims.push_back(static_cast<int>(s.size()));
    ptrs.push_back(s.data());
    dtypes.push_back("float32");
  }
  // the mask: its bytes are those of the floats 0.25 (00 00 80 3e: half of them true), a bool each
  if (o.has_m) dtypes[o.n] = "bool";
  for (auto &d : data) params.push_back(d.data());
  ++calls;
  const int rc = fn(static_cast<int>(params.size()), params.data(), ndims.data(), ptrs.data(), dtypes.data(),
                    nullptr, nullptr);
  if (rc != 0) fail(name + ": valid call returned " + std::to_string(rc));
  dtypes[1] = "float64";
  ++calls;
  if (fn(static_cast<int>(params.size()), params.data(), ndims.data(), ptrs.data(), dtypes.data(), nullptr,
         nullptr) != ms_bce::kBadDtype) {
    fail(name + ": a float64 operand was not refused with kBadDtype");
  }
}

}  // namespace

// The benchmark's floor operators (custom_ops/cpu/floor.cc): read gives a
// 0-d shape, read_write its first input's; read_write refuses missing shapes.
void drive_floor_infer(void *lib, const std::string &name) {
  auto fn = reinterpret_cast<InferOne>(dlsym(lib, name.c_str()));
  if (fn == nullptr) {
    fail(name + ": not found");
    return;
  }
  const bool write = name.find("read_write") != std::string::npos;
  int64_t dims[2][3] = {{3, 4, 5}, {3, 4, 5}};
  int ndims[2] = {3, 3};
  int64_t *shapes[2] = {dims[0], dims[1]};
  ++calls;
  const Shape got = fn(ndims, shapes, nullptr);
  if (got != (write ? Shape{3, 4, 5} : Shape{})) fail(name + ": wrong shape");
  if (!write) return;
  ++calls;
  try {
    fn(nullptr, nullptr, nullptr);
    fail(name + ": accepted no shapes");
  } catch (const std::invalid_argument &) {
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s LIB NAMES_JSON\n", argv[0]);
    return 2;
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    std::fprintf(stderr, "dlopen: %s\n", dlerror());
    return 2;
  }
  std::ifstream in(argv[2]);
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string json = buf.str();
  const std::vector<std::string> infer = names(json, "infer"), kernels = names(json, "kernels");
  parameter_losses = names(json, "parameters");
  for (const std::string &n : infer) drive_infer(lib, n);
  for (const std::string &n : kernels) drive_kernel(lib, n);
  const std::vector<std::string> floor_infer = names(json, "floor_infer");
  for (const std::string &n : floor_infer) drive_floor_infer(lib, n);
  std::printf("InferShape driver: %zu InferShape functions (%zu of floor operators), %zu kernels, %d calls; "
              "%d failures\n", infer.size() + floor_infer.size(), floor_infer.size(), kernels.size(), calls,
              failures);
  dlclose(lib);
  return failures == 0 ? 0 : 1;
}
