"""What the GPU tests share: entry-point names, the broadcast cases, dtype
storage (bfloat16 as raw bits: NumPy has no bfloat16), a ctypes caller that
takes any memory (NumPy arrays on the host, CuPy arrays on a GPU), the
float64 expectations from tests/reference.py, and the tolerances.

Used by tests/test_gpu_host.py (the GPU code compiled for the host) and
tests/test_gpu_kernels.py (the CUDA library itself), and by
ms_bce/bench_gpu.py's correctness check.
"""
import ctypes
import os
import shutil
import subprocess

import numpy as np

from tests import reference as ref
from tests.abi import load_registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DTYPES = ("float32", "float16", "bfloat16")
ULPS = {"float32": 4, "float16": 1, "bfloat16": 1}  # spec section 6, against float64
# the loss registry (ms_bce/_losses.py, loaded by path: no MindSpore here)
REGISTRY = load_registry()
LOSSES = tuple(REGISTRY.LOSSES)
OPERAND_SETS = {loss: REGISTRY.operand_sets(loss) for loss in LOSSES}  # (has_weight, has_pos_weight) pairs
REDUCTIONS = REGISTRY.REDUCTIONS
DIRECTIONS = REGISTRY.DIRECTIONS
entry_name = REGISTRY.entry_name
# the scalar parameters the tests pass to a loss that has them (the t operand: float32, registry order)
PARAMS = {"sigmoid_focal": (0.25, 2.0)}  # (a whole gamma: the CPU vector path gives the portable bits)

# common.h / aot_abi.h Status
OK, BAD_PARAM_COUNT, BAD_DTYPE, BAD_SHAPE, BAD_RANK, NULL_DATA = 0, 1, 2, 3, 4, 5
CUDA_ERROR, NOT_DEVICE_MEMORY = 8, 9

# (x shape, weight shape, pos_weight shape): every way an operand can broadcast
BROADCAST_CASES = (
    ((), (), ()),                       # 0-d
    ((1,), (1,), (1,)),                 # one element
    ((7,), (7,), (1,)),                 # full-size weight, scalar-like pos_weight
    ((5, 3), (3,), (3,)),               # per-class vectors: one pass reduces both
    ((5, 3), (5, 1), (3,)),             # broadcast along different dims: a second pass for dP
    ((2, 3, 4), (1, 3, 1), (4,)),       # kept dimension between reduced ones
    ((2, 3, 4), (2, 1, 4), (2, 3, 4)),  # full-size pos_weight: written element-wise
    ((0, 4), (4,), (1, 4)),             # empty input: dW, dP are zeros of their own shapes
    ((37, 129), (129,), (37, 1)),       # odd sizes
    ((300, 1000), (1000,), (1,)),       # large enough for chunked, two-pass reductions
)


def case_id(case):
    return "x{}-w{}-p{}".format(*["x".join(map(str, s)) or "0d" for s in case])


def all_entry_names():
    """Every entry point the CPU and GPU libraries export (InferShape functions aside)."""
    return [e.name for e in REGISTRY.entry_points()]


# ------------------------------------------------------------- storage ---

def to_storage(values, dtype):
    """float64 values -> the array a kernel reads (bfloat16: uint16 bits,
    rounded to nearest even as the kernels round)."""
    a = np.asarray(values, np.float64)
    if dtype == "float32":
        with np.errstate(over="ignore"):
            return a.astype(np.float32)
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return a.astype(np.float16)
    with np.errstate(over="ignore", invalid="ignore"):
        u = np.ascontiguousarray(a.astype(np.float32)).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    return np.where(nan, (u >> 16) | 0x40, rounded).astype(np.uint16).reshape(a.shape)


def from_storage(stored, dtype):
    """The float64 values of a kernel's array."""
    a = np.asarray(stored)
    if dtype == "bfloat16":
        bits = a.reshape(-1).astype(np.uint32) << np.uint32(16)
        return bits.view(np.float32).astype(np.float64).reshape(a.shape)
    return a.astype(np.float64)


def storage_dtype(dtype):
    return {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}[dtype]


def quantize(values, dtype):
    return from_storage(to_storage(values, dtype), dtype)


def ulp(values, dtype):
    """Spacing of dtype at |values| (float64)."""
    v = np.abs(np.asarray(values, np.float64))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if dtype == "float32":
            return np.spacing(v.astype(np.float32)).astype(np.float64)
        if dtype == "float16":
            return np.spacing(v.astype(np.float16)).astype(np.float64)
        e = np.floor(np.log2(np.where(v > 0, v, 1.0)))
    return np.where(v >= 2.0 ** -126, 2.0 ** (e - 7), 2.0 ** -133)


def representable(want, dtype):
    """The float64 expectation, with values beyond the dtype's range replaced
    by the +-inf they correctly round to."""
    if want is None:
        return None
    stored = quantize(want, dtype)
    return np.where(np.isinf(stored) & np.isfinite(want), stored, want)


def assert_close(actual, expected, tol, what):
    """|actual - expected| <= tol elementwise; NaN exactly where expected is
    NaN; infinities equal."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan, err_msg=f"{what}: NaN positions differ")
    inf = np.isinf(expected)
    np.testing.assert_array_equal(actual[inf], expected[inf], err_msg=f"{what}: infinities differ")
    ok = ~(nan | inf)
    tol = np.broadcast_to(np.asarray(tol, np.float64), expected.shape)
    with np.errstate(invalid="ignore"):
        err = np.abs(actual - expected)
    bad = ok & ~(err <= tol)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} beyond tolerance; first at {i}: actual "
                             f"{actual.flat[i]!r}, expected {expected.flat[i]!r}, tol {tol.flat[i]!r}")


# ------------------------------------------------------------- calling ---

class HostMemory:
    """Tensors as NumPy arrays: for the CPU library and the host-compiled GPU code."""

    def put(self, array):
        return np.require(array, requirements="C")  # (ascontiguousarray makes 0-d arrays 1-d)

    def empty(self, shape, dtype, fill=0x5A):
        a = np.empty(shape, storage_dtype(dtype))
        a.reshape(-1).view(np.uint8)[...] = fill  # garbage: every output must be written
        return a

    @staticmethod
    def ptr(a):
        return a.ctypes.data

    @staticmethod
    def get(a):
        return np.asarray(a)

    def sync(self):
        pass

    stream = None


def call(lib, name, memory, tensors, dtypes, shapes=None, nparam=None, null=()):
    """Calls entry point `name` of lib with tensors (inputs then outputs) in
    `memory`; dtypes one name per tensor; shapes/nparam override what the
    tensors say; tensors whose index is in `null` get a NULL pointer.
    Returns the status code."""
    n = len(tensors)
    params = (ctypes.c_void_p * n)(*[None if i in null else memory.ptr(t) for i, t in enumerate(tensors)])
    shape_store = [np.array(s if s is not None else t.shape, np.int64).reshape(-1)
                   for t, s in zip(tensors, shapes or [None] * n)]
    c_ndims = (ctypes.c_int * n)(*[len(s) for s in shape_store])
    c_shapes = (ctypes.POINTER(ctypes.c_int64) * n)(
        *[s.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)) for s in shape_store])
    c_dtypes = (ctypes.c_char_p * n)(*[d.encode() for d in dtypes])
    fn = getattr(lib, name)
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                   ctypes.c_void_p, ctypes.c_void_p]
    return fn(n if nparam is None else nparam, params, c_ndims, c_shapes, c_dtypes, memory.stream, None)


# ---------------------------------------------------------- the maths ---

def make_operands(loss, case, seed=0):
    """float64 operands (x, y, w, p) for a broadcast case; x includes
    extreme values (logits) or exact 0 and 1 (probabilities)."""
    x_shape, w_shape, p_shape = case
    rng = np.random.default_rng(seed)
    if loss != "bce":  # logits
        x = rng.normal(scale=4.0, size=x_shape)
        extremes = np.array([0.0, -0.0, 1e-30, -1e-30, 17.5, -17.5, 40.0, -40.0, 100.0, -100.0, np.inf, -np.inf])
    else:
        x = rng.uniform(0.0, 1.0, size=x_shape)
        extremes = np.array([0.0, 1.0, 1e-13, 1.0 - 2 ** -24, 0.5, 1e-30])
    flat = x.reshape(-1)
    k = min(flat.size, extremes.size)
    flat[:k] = extremes[:k]
    y = rng.uniform(0.0, 1.0, size=x_shape)
    y.reshape(-1)[: min(y.size, 4)] = [0.0, 1.0, 1.0, 0.0][: min(y.size, 4)]
    w = rng.uniform(0.5, 2.0, size=w_shape)
    p = rng.uniform(0.5, 3.0, size=p_shape)
    return x, y, w, p


def incoming(case, reduction, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(-2.0, 2.0, case[0]) if reduction == "none" else np.float64(1.7)


def expected(loss, x, y, w, p, reduction, dout):
    """float64 (loss, (dx, dy, dw, dp)) of quantized operands; dw/dp None when absent."""
    if loss == "bce_with_logits":
        return (ref.bce_with_logits(x, y, w, p, reduction),
                ref.bce_with_logits_grads(x, y, w, p, reduction, dout))
    if loss == "sigmoid_focal":
        alpha, gamma = PARAMS[loss]
        return (ref.sigmoid_focal(x, y, w, p, alpha, gamma, reduction),
                ref.sigmoid_focal_grads(x, y, w, p, alpha, gamma, reduction, dout))
    dx, dy, dw = ref.bce_grads(x, y, w, reduction, dout)
    return ref.bce(x, y, w, reduction), (dx, dy, dw, None)


def scales(loss, x, y, w, p, reduction, dout):
    """Sizes the bars are relative to (sum of the absolute values of each
    formula's terms, as the CPU tests use), per output: (loss, dx, dy, dw, dp)."""
    xs, ys = np.asarray(x), np.asarray(y)
    wb = np.broadcast_to(1.0 if w is None else w, xs.shape)
    pb = np.broadcast_to(1.0 if p is None else p, xs.shape)
    gb = np.abs(ref.incoming_grad(dout, xs.shape, reduction))

    def reduced(v, like):
        return None if like is None else ref.reduce_to_shape(v, np.shape(like))

    if loss == "bce_with_logits":
        s_loss = ref.bce_with_logits_scale(xs, ys, w, p)
        sdx = gb * np.abs(wb) * (np.abs(1 - ys) * ref.sigmoid(xs) + np.abs(pb * ys) * ref.sigmoid(-xs))
        sdy = gb * np.abs(wb) * (np.abs(pb) * ref.softplus(-xs) + ref.softplus(xs))
        sdw = reduced(gb * ref.bce_with_logits_scale(xs, ys, None, pb), w)
        sdp = reduced(gb * np.abs(wb * ys) * ref.softplus(-xs), p)
    elif loss == "sigmoid_focal":
        s_loss, sdx, sdy, sdw, sdp = ref.sigmoid_focal_scales(xs, ys, wb, pb, *PARAMS[loss], gb)
        sdw, sdp = reduced(sdw, w), reduced(sdp, p)
    else:
        s_loss = ref.bce_scale(xs, ys, w)
        a, b = ref.bce_guarded(xs)
        with np.errstate(divide="ignore", invalid="ignore"):
            sdx = gb * np.abs(wb) * (np.abs(1 - ys) / b + np.abs(ys) / a)
            la, lb = np.log(a), np.log(b)
        sdy = gb * np.abs(wb) * (np.abs(la) + np.abs(lb))
        sdw = reduced(gb * ref.bce_scale(xs, ys, None), w)
        sdp = None
    if reduction != "none":
        s_loss = np.float64(np.sum(s_loss) / (xs.size if reduction == "mean" and xs.size else 1))
    return s_loss, sdx, sdy, sdw, sdp


def run_entry_points(lib, memory, loss, x, y, w, p, reduction, dout, dtype, directions=DIRECTIONS, mask=None):
    """Calls the forward, backward and backward_input entry points of lib for
    one case (with mask: a bool array, the *_m entry points); returns
    {direction: (status, [float64 outputs])}."""
    has_w, has_p = w is not None, p is not None
    operands = [a for a in (x, y, w, p) if a is not None]
    stored = [memory.put(to_storage(a, dtype)) for a in operands]
    stored_dtypes = [dtype] * len(stored)
    if mask is not None:  # after w and p, before t: one byte a value
        stored.append(memory.put(np.asarray(mask, dtype=np.bool_)))
        stored_dtypes.append("bool")
    # the t operand (the loss's parameters, then the label smoothing: 0 here), float32 whatever the operands' dtype
    stored.append(memory.put(np.array(PARAMS.get(loss, ()) + (0.0,), np.float32)))
    stored_dtypes.append("float32")
    g = memory.put(to_storage(dout, dtype))
    results = {}
    for direction in directions:
        name = entry_name(loss, direction, reduction, has_w, has_p, mask is not None)
        if not hasattr(lib, name):
            continue
        if direction == "forward":
            outs = [memory.empty(np.shape(x) if reduction == "none" else (), dtype)]
            tensors, dtypes = stored + outs, stored_dtypes + [dtype]
        else:
            grads_of = operands if direction == "backward" else \
                [operands[REGISTRY.gradient_index(direction, has_w)]]
            outs = [memory.empty(np.shape(a), dtype) for a in grads_of]
            tensors, dtypes = stored + [g] + outs, stored_dtypes + [dtype] * (1 + len(outs))
        status = call(lib, name, memory, tensors, dtypes)
        memory.sync()
        results[direction] = (status, [from_storage(memory.get(o), dtype) for o in outs])
    return results


def check_against_reference(loss, x, y, w, p, reduction, dout, dtype, results):
    """Every output within the spec's bars of the float64 reference: the
    per-dtype ULPs at the terms' scale, sums within 1e-6 relative (float32)."""
    q = [None if a is None else quantize(a, dtype) for a in (x, y, w, p)]
    g = quantize(dout, dtype)
    want_loss, want_grads = expected(loss, *q, reduction, g)
    s_loss, *s_grads = scales(loss, *q, reduction, g)
    ulps = ULPS[dtype]

    def bar(scale, summed):
        if summed and dtype == "float32":
            return 1e-6 * np.asarray(scale)
        return ulps * ulp(scale, dtype)

    want_loss = representable(want_loss, dtype)
    want_grads = [representable(g_, dtype) for g_ in want_grads]
    status, (out,) = results["forward"]
    assert status == OK, f"forward returned {status}"
    assert_close(out, want_loss, bar(s_loss, reduction != "none"), f"{dtype} {reduction} loss")
    status, grads = results["backward"]
    assert status == OK, f"backward returned {status}"
    present = [want_grads[0], want_grads[1]] + [want_grads[k] for k in (2, 3) if q[k] is not None]
    present_scales = [s_grads[0], s_grads[1]] + [s_grads[k] for k in (2, 3) if q[k] is not None]
    names = ["dx", "dy"] + [n for n, a in (("dw", q[2]), ("dp", q[3])) if a is not None]
    for name, got, want, scale in zip(names, grads, present, present_scales):
        summed = name in ("dw", "dp") and got.size < np.size(x)
        assert_close(got, want, bar(scale, summed), f"{dtype} {reduction} {name}")
    for direction in REGISTRY.ONE_GRADIENT:  # each one-output backward: the fused one's output, bit for bit
        if direction in results:
            status, (one,) = results[direction]
            assert status == OK, f"{direction} returned {status}"
            k = REGISTRY.gradient_index(direction, q[2] is not None)
            assert one.tobytes() == grads[k].tobytes(), f"{direction}'s gradient differs from backward's"


# ------------------------------------------------------------ building ---

def find_cxx():
    for name in ([os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]):
        path = shutil.which(name)
        if path:
            return path
    return None


def build_host_check(out_dir):
    """Compiles tests/native/gpu_host_check.cc (the GPU code, host backend)
    with the system C++ compiler; returns the library's path."""
    cxx = find_cxx()
    if cxx is None:
        raise RuntimeError("no C++ compiler to build tests/native/gpu_host_check.cc")
    target = os.path.join(out_dir, "libms_bce_gpu_host_check.so")
    cmd = [cxx, "-std=c++17", "-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-D_GLIBCXX_USE_CXX11_ABI=0",
           "-Wall", "-Wextra", "-Werror", os.path.join(ROOT, "tests", "native", "gpu_host_check.cc"), "-o", target]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling the GPU host check failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return target
