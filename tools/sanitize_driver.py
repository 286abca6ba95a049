"""The ctypes half of tools/sanitize.py, run by it in a process with the
sanitizer runtimes preloaded (no MindSpore here: numpy, tests/abi.py and the
float64 reference only).  Every kernel entry point is called:

- validly, for every dtype, a zero-size, 0-d, odd and above-chunk input, every
  broadcast class of weight/pos_weight (none, scalar, full, per class,
  per sample, general, a period above the expanded-buffer size), both SIMD
  paths and 1 and 2 threads: return code 0, values within a loose bar of the
  float64 reference (NaN and inf where it has them; tests/test_properties.py
  holds the real bars) and bit-identical to the installed library;
- malformed: every way common.h's checks refuse a call, each with its Status
  code and the outputs left as they were.

Prints one line of counts; exits nonzero (or the sanitizer aborts) on failure.
"""
import collections
import ctypes
import json

import numpy as np

from tests import reference as ref
from tests.abi import (BAD_DTYPE, BAD_PARAM_COUNT, BAD_RANK, BAD_SHAPE, NULL_DATA, OK, OUT_OF_RANGE, as_float64,
                       last_error, launch, launch_null_arrays, load_registry, to_bfloat16)

DTYPES = ("float32", "float16", "bfloat16")
# the loss registry (ms_bce/_losses.py, loaded by path: ms_bce imports MindSpore)
REGISTRY = load_registry()
CALLS = {"valid": 0, "malformed": 0, "settings": 0}
# per loss: the float64 oracles of its forward, (x, y, w, p, reduction) -> loss, and of its
# gradients, (x, y, w, p, reduction, dout) -> (dx, dy, dw, dp) (None where it has no such
# operand); and whether its input is a probability (refused outside [0, 1]: drive_out_of_range)
Oracle = collections.namedtuple("Oracle", "forward grads probabilities")
ORACLES = {
    "bce_with_logits": Oracle(ref.bce_with_logits, ref.bce_with_logits_grads, False),
    "bce": Oracle(lambda x, y, w, p, r: ref.bce(x, y, w, r),
                  lambda x, y, w, p, r, g: ref.bce_grads(x, y, w, r, g) + (None,), True),
    "sigmoid_focal": Oracle(lambda x, y, w, p, r: ref.sigmoid_focal(x, y, w, p, 0.25, 1.5, r),
                            lambda x, y, w, p, r, g: ref.sigmoid_focal_grads(x, y, w, p, 0.25, 1.5, r, g), False),
}
# the scalar parameters (the t operand, float32, the registry's order) passed to a loss that has them,
# the values its oracle above assumes
PARAMS = {"sigmoid_focal": (0.25, 1.5)}
# the label smoothing every call passes (the drivers' option after the parameters in t): nonzero, so
# that its smoothed-target buffer runs under the sanitizers; the reference smooths as the drivers do
SMOOTHING = float(np.float32(0.1))


def scalars(loss):
    """The t operand's values: the loss's parameters, then the drivers' options (label smoothing)."""
    return PARAMS.get(loss, ()) + (SMOOTHING,)


class Entry:
    """What an entry point's name says (the registry's parse_entry): loss,
    direction, reduction, operands; ValueError for a name it does not know."""

    def __init__(self, name):
        e = REGISTRY.parse_entry(name)
        self.name, self.loss, self.direction, self.reduction = e.name, e.loss, e.direction, e.reduction
        self.has_w, self.has_p, self.has_m = e.has_weight, e.has_pos_weight, e.has_mask
        self.n_in = REGISTRY.n_operands(self.has_w, self.has_p)
        self.n_m = int(self.has_m)  # the mask operand (bool), after the operands
        self.n_t = int(bool(REGISTRY.scalars(self.loss)))  # the t operand, after the mask
        self.t_index = self.n_in + self.n_m
        self.n_args = self.n_in + self.n_m + self.n_t  # the inputs before dout
        # a one-output backward's gradient, as an index into the reference's (dx, dy, dw, dp);
        # None: forward or the fused backward
        one = REGISTRY.ONE_GRADIENT.get(self.direction)
        self.gradient = None if one is None else REGISTRY.OPERANDS.index(one)
        self.n_out = self.n_in if self.direction == "backward" else 1
        if self.loss not in ORACLES:
            raise ValueError(f"{name}: the sanitizer driver has no float64 oracle for {self.loss!r} (ORACLES)")
        if REGISTRY.LOSSES[self.loss].params and self.loss not in PARAMS:
            raise ValueError(f"{name}: the sanitizer driver has no values for {self.loss!r}'s parameters (PARAMS)")
        self.oracle = ORACLES[self.loss]


def store(a, dtype):
    a = np.asarray(a, np.float32)
    if dtype == "float32":
        return a.copy(order="C")
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return a.astype(np.float16)
    return to_bfloat16(a)


def empty_like_dtype(shape, dtype, fill=np.nan):
    return store(np.full(shape, fill, np.float32), dtype)


def make_operands(entry, dtype, x_shape, w_shape, p_shape, rng, special=0.05):
    """Inputs (x, y[, w][, p][, dout]) of the entry point, stored in dtype."""
    if not entry.oracle.probabilities:  # logits
        x = rng.normal(scale=6.0, size=x_shape).astype(np.float32)
        specials = np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, 100.0, -100.0, 1e4])
    else:
        x = rng.uniform(0.0, 1.0, x_shape).astype(np.float32)
        specials = np.float32([0.0, 1.0, 1e-13, np.nan])  # outside [0, 1]: drive_out_of_range
    mask = rng.random(x_shape) < special
    x[mask] = rng.choice(specials, int(mask.sum()))
    y = rng.random(x_shape).astype(np.float32)
    y[rng.random(x_shape) < special] = 1.0
    ops = [x, y]
    if entry.has_w:
        ops.append(rng.uniform(0.2, 2.0, w_shape).astype(np.float32))
    if entry.has_p:
        ops.append(rng.uniform(0.2, 3.0, p_shape).astype(np.float32))
    if entry.direction != "forward":
        ops.append(rng.uniform(-2, 2, x_shape if entry.reduction == "none" else ()).astype(np.float32))
    stored = [store(a, dtype) for a in ops]
    if entry.n_t:  # t: float32 whatever dtype the others have
        stored.insert(entry.n_in, np.array(scalars(entry.loss), np.float32))
    if entry.has_m:  # the mask: bool, full-size or broadcast like the weight, some of it false
        m_shape = x_shape if rng.random() < 0.5 else w_shape
        stored.insert(entry.n_in, np.asarray(rng.random(m_shape) < 0.7))
    return stored


def output_shapes(entry, x_shape, w_shape, p_shape):
    if entry.direction == "forward":
        return [x_shape if entry.reduction == "none" else ()]
    if entry.gradient is not None:  # one gradient, in its operand's shape
        return [(x_shape, x_shape, w_shape, p_shape)[entry.gradient]]
    return [x_shape, x_shape] + ([w_shape] if entry.has_w else []) + ([p_shape] if entry.has_p else [])


def reference(entry, ops):
    """The float64 reference of every output, with a scale for the bar."""
    vals = [as_float64(a) for a in ops]
    x = vals[0]
    # the smoothed target, rounded to the operands' dtype as the drivers round it (by way of float32)
    dtype = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}.get(ops[1].dtype, "bfloat16")
    y = as_float64(store(vals[1] * (1.0 - SMOOTHING) + 0.5 * SMOOTHING, dtype))
    k = 2
    w = vals[k] if entry.has_w else None
    k += entry.has_w
    p = vals[k] if entry.has_p else None
    k += entry.has_p
    keep = np.broadcast_to(ops[k], x.shape) if entry.has_m else None
    k += entry.n_m + entry.n_t
    g = vals[k] if entry.direction != "forward" else None
    w_shape, p_shape = np.shape(w), np.shape(p)
    if keep is not None:
        # a dropped element: the kernels' stand-ins (x = y = 1/2, pos_weight 1, weight 0) and a zero
        # incoming gradient, so that it adds exactly 0 everywhere (the weight's contribution masked too)
        x, y = np.where(keep, x, 0.5), np.where(keep, y, 0.5)
        w = np.where(keep, 1.0 if w is None else w, 0.0)
        p = None if p is None else np.where(keep, p, 1.0)
        if g is not None and entry.reduction == "none":
            g = np.where(keep, g, 0.0)
    reduction = entry.reduction
    kept = None
    if keep is not None and reduction == "mean":  # a masked mean: over the kept elements' number
        reduction, kept = "sum", float(np.count_nonzero(keep))
    with np.errstate(all="ignore"):
        if entry.direction == "forward":
            out = entry.oracle.forward(x, y, w, p, reduction)
            return [out if kept is None else np.float64(out) / kept]
        if kept is not None:
            g = np.float64(g) / kept
        grads = list(entry.oracle.grads(x, y, w, p, reduction, g))  # (dx, dy, dw, dp)
        if keep is not None:
            grads[2] = ref.reduce_to_shape(np.where(keep, grads[2], 0.0), w_shape) if entry.has_w else None
            if entry.has_p:
                grads[3] = ref.reduce_to_shape(grads[3], p_shape)
        grads[1] = grads[1] * (1.0 - SMOOTHING)  # dY'/dY
        if entry.gradient is not None:
            assert grads[entry.gradient] is not None, entry.name
            return [grads[entry.gradient]]
        return [v for v in grads if v is not None]


def loosely_equal(actual, expected, dtype):
    """NaN and inf where the reference has them; finite values within 1e-4 (float32)
    or 3e-2 (16-bit) of max(|expected|, the largest finite |expected| * 1e-3), or
    half a subnormal spacing of the dtype."""
    a, e = as_float64(actual), np.asarray(expected, np.float64)
    if a.shape != e.shape:
        return False
    if not np.array_equal(np.isnan(a), np.isnan(e)):
        return False
    inf = np.isinf(e)
    if not np.array_equal(a[inf], e[inf]):
        return False
    fin = np.isfinite(e)
    if not fin.any():
        return True
    floor = 1e-3 * np.max(np.abs(e[fin])) + 1e-30
    rtol = 1e-4 if dtype == "float32" else 3e-2
    # and within half the spacing of the dtype's subnormals (a result below float16's 6e-8 keeps no digits)
    floor = np.maximum(floor, {"float32": 0.0, "float16": 2.0 ** -25, "bfloat16": 2.0 ** -134}[dtype] / rtol)
    # results that overflow a 16-bit dtype are inf there
    ok = np.abs(a[fin] - e[fin]) <= rtol * np.maximum(np.abs(e[fin]), floor)
    return bool(np.all(ok | (np.isinf(a[fin]) & (np.abs(e[fin]) > 6e4) & (dtype == "float16"))))


def within_one_ulp(actual, expected, dtype):
    """|actual - expected| at most one unit in the last place of the dtype at expected: the
    target's gradient under label smoothing, rounded twice (the loss's gradient at the smoothed
    target, then its product with 1 - eps: documented), which in a 16-bit dtype's subnormals
    is more than loosely_equal's half spacing."""
    a, e = as_float64(actual), np.asarray(expected, np.float64)
    if a.shape != e.shape or not np.array_equal(np.isnan(a), np.isnan(e)):
        return False
    fin = np.isfinite(e)
    if not np.array_equal(a[~fin & ~np.isnan(e)], e[~fin & ~np.isnan(e)]):
        return False
    mag = np.abs(e[fin])
    if dtype == "float16":
        spacing = np.spacing(mag.astype(np.float16)).astype(np.float64)
    elif dtype == "bfloat16":
        spacing = np.spacing(mag.astype(np.float32)).astype(np.float64) * 2.0 ** 16
    else:
        spacing = np.spacing(mag.astype(np.float32)).astype(np.float64)
    return bool(np.all(np.abs(a[fin] - e[fin]) <= spacing))


def same_bits(a, b):
    """Bit-identical, except that NaNs may differ in sign and payload (which
    NaN of a sum of two survives is the compiler's choice of operand order)."""
    nan_a, nan_b = np.isnan(as_float64(a)), np.isnan(as_float64(b))
    return np.array_equal(nan_a, nan_b) and a[~nan_a].tobytes() == b[~nan_b].tobytes()


def set_path(libs, path, threads):
    for lib in libs:
        assert lib.ms_bce_set_simd_path({"auto": 0, "scalar": 1, "avx2": 2}[path]) == OK
        assert lib.ms_bce_set_num_threads(threads) == OK


# (x shape, weight shape, pos_weight shape): every operand class of loss_driver.h
VALID_SHAPES = [
    ((), (), ()),
    ((7,), (7,), (1,)),
    ((3, 5), (5,), (3, 1)),
    ((2, 3, 4), (3, 1), (2, 1, 4)),
    ((0, 4), (4,), (1, 4)),
    ((4, 0), (1,), ()),
]
BIG_SHAPES = [
    ((300, 257), (257,), (300, 1)),         # several chunks: periodic and per-sample operands
    ((3, 5000, 7), (5000, 1), (1, 7)),      # general strided (non-monotone), per class
    ((20, 5000), (5000,), None),            # a period above the expanded-buffer limit
]


def drive_out_of_range(san, plain, entry, ops, outs, dtype, rng, what):
    """BCELoss with probabilities outside [0, 1] at two random places: both
    libraries return OUT_OF_RANGE naming the first (the message path runs
    under the sanitizers too)."""
    x = as_float64(ops[0]).reshape(-1).copy()
    # (with a mask, among the kept elements: a dropped one is not checked)
    kept = np.flatnonzero(np.broadcast_to(ops[entry.n_in], ops[0].shape)) if entry.has_m else np.arange(x.size)
    if kept.size == 0:
        return []
    first, later = sorted(rng.choice(kept, size=2, replace=kept.size < 2))
    x[later] = 1.5
    x[first] = -0.5
    bad = [store(x.reshape(ops[0].shape), dtype)] + ops[1:]
    want = f"but got -0.5 at index {first}."
    failures = []
    for lib in (san, plain):
        rc = launch(lib, entry.name, bad + [o.copy() for o in outs])
        CALLS["valid"] += 1
        if rc != OUT_OF_RANGE or not last_error(lib).endswith(want):
            failures.append(f"{what}, outside [0, 1]: returned {rc} ({last_error(lib)!r}), expected {OUT_OF_RANGE} "
                            f"'... {want}'")
    return failures


def drive_valid(san, plain, entries):
    rng = np.random.default_rng(0)
    failures = []
    for entry in entries:
        cases = [(s, d, path, t) for s in VALID_SHAPES for d in DTYPES for path in ("avx2", "scalar") for t in (1,)]
        cases += [(s, "float32", path, t) for s in BIG_SHAPES for path in ("avx2", "scalar") for t in (1, 2)]
        for (x_shape, w_shape, p_shape), dtype, path, threads in cases:
            if entry.has_p and p_shape is None:
                continue
            set_path((san, plain), path, threads)
            ops = make_operands(entry, dtype, x_shape, w_shape, p_shape, rng)
            outs = [empty_like_dtype(s, dtype) for s in output_shapes(entry, x_shape, w_shape, p_shape)]
            outs_plain = [o.copy() for o in outs]
            rc = launch(san, entry.name, ops + outs)
            rc_plain = launch(plain, entry.name, ops + outs_plain)
            CALLS["valid"] += 1
            what = f"{entry.name} {dtype} {x_shape} {w_shape} {p_shape} {path} {threads} threads"
            if rc != OK or rc_plain != OK:
                failures.append(f"{what}: return codes {rc}, {rc_plain}")
                continue
            # (not the fused backward: it leaves the domain check to the forward)
            if entry.oracle.probabilities and ops[0].size and entry.direction != "backward":
                failures += drive_out_of_range(san, plain, entry, ops, outs, dtype, rng, what)
            for k, (o, op, e) in enumerate(zip(outs, outs_plain, reference(entry, ops))):
                if not same_bits(o, op):
                    failures.append(f"{what}: output {k} differs from the installed library's")
                target_gradient = entry.gradient == 1 or (entry.direction == "backward" and k == 1)
                if not loosely_equal(o, e, dtype) and not (target_gradient and within_one_ulp(o, e, dtype)):
                    failures.append(f"{what}: output {k} differs from the reference")
    return failures


def drive_malformed(san, entries):
    """Each malformed call returns its Status and leaves the outputs as they were."""
    failures = []
    rng = np.random.default_rng(1)

    def expect(entry, code, arrays, what, **kw):
        n_out = len(arrays) - (entry.n_args + (entry.direction != "forward"))
        assert n_out == entry.n_out, (entry.name, n_out)
        before = [a.copy() for a in arrays[-n_out:]]
        rc = launch(san, entry.name, arrays, **kw)
        CALLS["malformed"] += 1
        if rc != code:
            failures.append(f"{entry.name} {what}: returned {rc}, expected {code}")
        elif any(a.tobytes() != b.tobytes() for a, b in zip(arrays[-n_out:], before)):
            failures.append(f"{entry.name} {what}: refused but wrote its outputs")

    for entry in entries:
        x_shape, w_shape, p_shape = (3, 4), (4,), (3, 1)
        ops = make_operands(entry, "float32", x_shape, w_shape, p_shape, rng)
        outs = [empty_like_dtype(s, "float32", 7.0) for s in output_shapes(entry, x_shape, w_shape, p_shape)]
        arrays = ops + outs
        n = len(arrays)
        shapes = [a.shape for a in arrays]
        for bad_n in (n - 1, n + 1, 0, -1, 1 << 30):
            expect(entry, BAD_PARAM_COUNT, arrays, f"nparam={bad_n}", nparam=bad_n)
        for which in ("params", "ndims", "shapes", "dtypes"):
            rc = launch_null_arrays(san, entry.name, n, which)
            CALLS["malformed"] += 1
            if rc != NULL_DATA:
                failures.append(f"{entry.name} NULL {which}: returned {rc}, expected {NULL_DATA}")
        valid_names = ["bool" if entry.has_m and i == entry.n_in else "float32" for i in range(n)]
        for i in range(n):
            expect(entry, NULL_DATA, arrays, f"NULL data {i}", null=(i,))
            for bad in ("float64", "int8", "", "Float32", "float32 ", "bfloat", None):
                names = list(valid_names)
                names[i] = bad
                expect(entry, BAD_DTYPE, arrays, f"dtype {i}={bad!r}", dtypes=names)
            names = list(valid_names)
            names[i] = "float16"
            expect(entry, BAD_DTYPE, arrays, f"mixed dtype {i}", dtypes=names)
            for nd, sh in ((-1, [3, 4]), (17, [1] * 17), (1 << 20, [1]), (2, "null")):
                ndims = [a.ndim for a in arrays]
                ndims[i] = nd
                s = list(shapes)
                s[i] = sh  # "null": a NULL shape pointer with a nonzero rank
                expect(entry, BAD_RANK, arrays, f"rank {nd} (shape {sh}) at {i}", ndims=ndims, shapes=s)
            for sh in ([3, -4], [1 << 40, 1 << 40], [1 << 61], [0, 1 << 62, 1 << 62], [-1]):
                s = list(shapes)
                s[i] = sh
                ndims = [a.ndim for a in arrays]
                ndims[i] = len(sh)
                expect(entry, BAD_RANK, arrays, f"shape {sh} at {i}", ndims=ndims, shapes=s)
        # shapes that do not fit together: a target of another shape, a weight that does not
        # broadcast (or has a higher rank), outputs and gradients of the wrong shape
        mism = [(1, [4, 3]), (1, [3, 4, 1])]
        if entry.has_w:
            mism += [(2, [3]), (2, [1, 3, 4])]
        if entry.has_p:
            mism += [(2 + entry.has_w, [2, 1])]
        if entry.has_m:  # a mask that does not broadcast
            mism += [(entry.n_in, [4, 3]), (entry.n_in, [1, 3, 4])]
        if entry.n_t:  # t holds exactly the loss's scalars, in one dimension
            mism += [(entry.t_index, [len(scalars(entry.loss)) + 1]), (entry.t_index, [1, len(scalars(entry.loss))])]
        first_out = entry.n_args + (entry.direction != "forward")
        if entry.direction != "forward":
            mism += [(entry.n_args, [3, 5] if entry.reduction == "none" else [1])]
        mism += [(first_out, [4, 3] if entry.reduction == "none" or entry.direction != "forward" else [1])]
        if entry.direction == "backward":
            mism += [(first_out + 1, [3, 5])]
            if entry.has_w:
                mism += [(first_out + 2, [3, 4])]
            if entry.has_p:
                mism += [(first_out + 2 + entry.has_w, [3, 4])]
        elif entry.direction in ("backward_weight", "backward_pos_weight"):
            # the gradient of a broadcast operand has that operand's shape, not the input's
            mism += [(first_out, [3, 4])]
        for i, sh in mism:
            s = list(shapes)
            s[i] = sh
            ndims = [a.ndim for a in arrays]
            ndims[i] = len(sh)
            expect(entry, BAD_SHAPE, arrays, f"shape {sh} at {i}", ndims=ndims, shapes=s)
        # a rank-16 input of ones is fine
        ones = [1] * 16
        x1 = [np.ones([1] * 16, np.float32) for _ in range(entry.n_in + (entry.direction != "forward"))]
        if entry.direction != "forward" and entry.reduction != "none":
            x1[-1] = np.ones((), np.float32)
        if entry.n_t:
            x1.insert(entry.n_in, np.array(scalars(entry.loss), np.float32))
        if entry.has_m:
            x1.insert(entry.n_in, np.ones([1] * 16, np.bool_))
        o1 = [np.zeros(s, np.float32) for s in output_shapes(entry, tuple(ones), tuple(ones), tuple(ones))]
        rc = launch(san, entry.name, x1 + o1)
        CALLS["malformed"] += 1
        if rc != OK:
            failures.append(f"{entry.name} rank 16: returned {rc}, expected {OK}")
    return failures


def drive_settings(san):
    failures = []
    checks = [(san.ms_bce_set_num_threads, (-1,), BAD_PARAM_COUNT), (san.ms_bce_set_num_threads, (3,), OK),
              (san.ms_bce_set_num_threads, (0,), OK), (san.ms_bce_set_simd_path, (3,), BAD_PARAM_COUNT),
              (san.ms_bce_set_simd_path, (-1,), BAD_PARAM_COUNT), (san.ms_bce_set_simd_path, (0,), OK)]
    for fn, args, code in checks:
        fn.restype = ctypes.c_int
        CALLS["settings"] += 1
        if fn(*args) != code:
            failures.append(f"{fn.__name__}{args} != {code}")
    san.ms_bce_get_num_threads.restype = ctypes.c_int
    san.ms_bce_get_simd_path.restype = ctypes.c_int
    CALLS["settings"] += 2
    if san.ms_bce_get_num_threads() < 1 or san.ms_bce_get_simd_path() not in (1, 2):
        failures.append("get_num_threads / get_simd_path")
    vm = san.ms_bce_vector_math
    vm.restype = ctypes.c_int
    vm.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    src = np.linspace(-20, 0, 1003).astype(np.float32)
    dst = np.zeros_like(src)
    for fn_code, args, code in [(0, (src.ctypes.data, dst.ctypes.data, src.size), OK),
                                (1, (src.ctypes.data, dst.ctypes.data, 0), OK),
                                (2, (None, None, 0), OK), (3, (src.ctypes.data, dst.ctypes.data, 5), BAD_PARAM_COUNT),
                                (0, (src.ctypes.data, dst.ctypes.data, -1), BAD_PARAM_COUNT),
                                (0, (None, dst.ctypes.data, 5), BAD_PARAM_COUNT)]:
        CALLS["settings"] += 1
        rc = vm(fn_code, *args)
        if rc != code and not (rc == BAD_DTYPE and code == OK):  # BAD_DTYPE: no AVX2 on this CPU
            failures.append(f"ms_bce_vector_math({fn_code}, ...) = {rc}, expected {code}")
    if vm(0, src.ctypes.data, dst.ctypes.data, src.size) == OK and \
            not np.allclose(dst, np.exp(src.astype(np.float64)), rtol=1e-6, atol=0):
        failures.append("ms_bce_vector_math exp values")
    return failures


def drive_floors(san, plain, names):
    """The benchmark's floor operators (custom_ops/cpu/floor.cc): valid calls of
    1..4 inputs, every dtype, both SIMD paths, sizes up to two chunks, against
    NumPy and bit-identical to the installed library; malformed calls refused
    with their Status, outputs untouched."""
    rng = np.random.default_rng(2)
    failures = []
    for name in names:
        write = name.endswith("read_write")
        for dtype in DTYPES:
            for n in (0, 1, 7, 1000, 140_000):
                for k in (1, 2, 4):
                    for path in ("avx2", "scalar"):
                        set_path((san, plain), path, 2)
                        ins = [store(rng.uniform(-1, 1, n), dtype) for _ in range(k)]
                        outs = [empty_like_dtype((n,) if write else (), dtype) for _ in range(2)]
                        rcs = [launch(lib, name, ins + [o]) for lib, o in zip((san, plain), outs)]
                        CALLS["valid"] += 1
                        what = f"{name} {dtype} n={n} k={k} {path}"
                        want = sum(as_float64(a) for a in ins) if write else sum(as_float64(a).sum() for a in ins)
                        if rcs != [OK, OK]:
                            failures.append(f"{what}: return codes {rcs}")
                        elif not same_bits(outs[0], outs[1]):
                            failures.append(f"{what}: differs from the installed library's")
                        elif not np.allclose(as_float64(outs[0]), want, rtol=2e-2 if dtype != "float32" else 1e-5,
                                             atol=1e-3 * max(1, n) ** 0.5):
                            failures.append(f"{what}: differs from NumPy's")
        x = np.ones((3, 4), np.float32)
        out = np.full((3, 4) if write else (), 7.0, np.float32)
        bad = [([x, out], {"nparam": 1}, BAD_PARAM_COUNT), ([x] * 5 + [out], {}, BAD_PARAM_COUNT),
               ([x, np.ones((4, 3), np.float32), out], {}, BAD_SHAPE),
               ([x, np.full((4,) if write else (1,), 7.0, np.float32)], {}, BAD_SHAPE),
               ([x, x, out], {"dtypes": ["float32", "float16", "float32"]}, BAD_DTYPE),
               ([x, out], {"dtypes": ["float64", "float32"]}, BAD_DTYPE),
               ([x, x, out], {"null": (1,)}, NULL_DATA)]
        for arrays, kw, code in bad:
            before = arrays[-1].copy()
            rc = launch(san, name, arrays, **kw)
            CALLS["malformed"] += 1
            if rc != code or arrays[-1].tobytes() != before.tobytes():
                failures.append(f"{name} malformed {kw or [a.shape for a in arrays]}: returned {rc}, expected {code}"
                                + ("" if arrays[-1].tobytes() == before.tobytes() else ", and wrote its output"))
    return failures


def main(lib_path, plain_path, names_json):
    names = json.load(open(names_json, encoding="utf-8"))
    san, plain = ctypes.CDLL(lib_path), ctypes.CDLL(plain_path)
    for lib in (san, plain):
        lib.ms_bce_set_simd_path.restype = lib.ms_bce_set_num_threads.restype = ctypes.c_int
    entries = [Entry(n) for n in names["kernels"]]
    failures = drive_valid(san, plain, entries)
    failures += drive_malformed(san, entries)
    failures += drive_settings(san)
    failures += drive_floors(san, plain, names.get("floors", []))
    print(f"ctypes driver: {len(entries)} entry points and {len(names.get('floors', []))} floor operators; "
          f"{CALLS['valid']} valid calls (3 dtypes, both SIMD paths, "
          f"1 and 2 threads), {CALLS['malformed']} malformed calls, {CALLS['settings']} settings calls; "
          f"{len(failures)} failures")
    for f in failures[:50]:
        print("  " + f)
    return 1 if failures else 0
