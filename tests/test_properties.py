"""Property tests (hypothesis): random shapes (rank 0-5, zero-size dimensions),
every broadcast pattern of weight and pos_weight that NumPy allows and several
it does not, float16/float32/bfloat16 (mixed, for the logits family), values
including 0, +-tiny, +-huge, +-inf and NaN, soft and out-of-range targets,
every reduction and public name, both SIMD paths and 1 or 2 threads: the
forward and every gradient against the float64 reference within the spec's
bars (section 6), NaN exactly where the reference is NaN, infinities equal,
the logits family's result in the operands' widest dtype, BCELoss's
RuntimeError (naming the first probability outside [0, 1] and its index)
where one is, and the documented exception where the arguments are invalid.

Profiles (``MS_BCE_HYPOTHESIS``): ``quick`` (default, part of the README's
test command, derandomised, about 15 s) and ``long`` (>= 10^5 examples:
``MS_BCE_HYPOTHESIS=long python -m pytest tests/test_properties.py``).  The
examples each test ran are printed in the terminal summary.

References (tests/reference.py) and bars (tests/conftest.py).  Inputs are
read back from the Tensors built (so float16 and bfloat16 values are the
quantised ones the kernel sees; they are built on the host, with the values
of MindSpore's Cast op, and no op launched).  The logits family computes in
double and rounds once, so its reference is the spec's float64 formula.  The
BCELoss family is specified as MindSpore 2.10's rule in float32 arithmetic
(docs/design.md): where one of that rule's float32 intermediates overflows or
underflows float32's normal range (huge targets or weights), the expected
value is the rule evaluated in float32 (``reference.bce_expected``);
elsewhere it is the float64 reference, within the same bars.  This file: the
value, shape and case strategies, the calls through each public name, and
the six test families (logits, BCELoss, invalid arguments, chunked sizes,
graph mode, the options: label smoothing, mask and 'weighted_mean' on the
logits, focal and BCELoss families) with the check of the oracle's rounding.
"""
import collections
import math
import os

import mindspore as ms
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mindspore import Tensor

import ms_bce
from ms_bce import _kernels
from tests import reference as ref
from tests.apis import BCE_APIS, LOGITS_APIS, loss_fn
from tests.conftest import DTYPE_MAX
from tests.conftest import DTYPES as DTYPE_ROWS
from tests.conftest import (FnCell, check_close, check_reduced_gradient, elementwise_tol, reduced_tol, rounds_to,
                            sum_scale)
from tests.reference import bce_expected, bce_scales, domain_error_message, logits_scales

# the float64 reference meets inf and NaN on purpose
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

PROFILE = os.environ.get("MS_BCE_HYPOTHESIS", "quick")
if PROFILE not in ("quick", "long"):
    raise ValueError(f"MS_BCE_HYPOTHESIS must be 'quick' or 'long', but got {PROFILE!r}")

# examples per test and profile; long: >= 10^5 in all
EXAMPLES = {
    "logits": {"quick": 250, "long": 42000},
    "bce": {"quick": 200, "long": 32000},
    "invalid": {"quick": 200, "long": 27000},
    "chunked": {"quick": 3, "long": 400},
    "graph": {"quick": 4, "long": 300},
    "options": {"quick": 150, "long": 30000},
}

# examples each test actually ran (shrinking included), for the terminal summary
RAN = collections.Counter()


def profile_settings(name):
    return settings(max_examples=EXAMPLES[name][PROFILE], deadline=None, derandomize=PROFILE == "quick",
                    database=None if PROFILE == "quick" else settings.default.database,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


@pytest.fixture(autouse=True)
def restore_settings():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    _kernels.set_simd_path("auto")
    ms_bce.set_num_threads(0)
    ms.set_context(mode=ms.PYNATIVE_MODE)


# ------------------------------------------------------------------ values ---

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal
INF, NAN = math.inf, math.nan

TINY = [1e-45, 3e-42, 1e-40, F32_TINY, 1e-30, 6e-8]
HUGE = [1e4, 65504.0, 7e4, 1e30, 3.3e38, F32_MAX]
LOGIT_SPECIALS = ([0.0, -0.0, 17.0, 37.43, 87.0, 88.0, 100.0, 120.0, 200.0] + TINY + HUGE
                  + [-v for v in [17.0, 37.43, 87.0, 88.0, 100.0, 120.0, 200.0] + TINY + HUGE] + [INF, -INF, NAN])
TARGET_SPECIALS = [0.0, 1.0, 0.5, -0.0, 1.2, -0.6, 2.2, -1.0, 2.0, 1e-45, 1 - 6e-8, 1e30, -1e30, F32_MAX, INF,
                   -INF, NAN]
WEIGHT_SPECIALS = [0.0, -0.0, 1.0, 0.5, 2.0, 3.0, -1.0, 1e-45, 1e-30, 1e30, 3.3e38, F32_MAX, INF, -INF, NAN]
PROB_SPECIALS = [0.0, 1.0, 1e-13, 1e-12, 2e-12, 1e-8, 2.0 ** -25, 1e-6, 0.5, 1 - 1e-6, 1 - 2.0 ** -24,
                 -1e-13, -1e-12, -0.5, 1.5, 1 + 1e-6, 1e-45, -1e-45, 1e30, -1e30, INF, -INF, NAN]
GRAD_SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e-40, -1e-30, 1e10, 1e30, -1e30, F32_MAX, INF, -INF, NAN]


def _f32(values):
    """The float32 values nearest (hypothesis wants elements a float32 array holds exactly)."""
    return [float(np.float32(v)) for v in values]


LOGIT_SPECIALS, TARGET_SPECIALS, WEIGHT_SPECIALS, PROB_SPECIALS, GRAD_SPECIALS = (
    _f32(v) for v in (LOGIT_SPECIALS, TARGET_SPECIALS, WEIGHT_SPECIALS, PROB_SPECIALS, GRAD_SPECIALS))

ANY_F32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
# the probabilities BCELoss accepts: [0, 1] and NaN
PROB_IN_SPECIALS = [v for v in PROB_SPECIALS if not (v < 0 or v > 1)]


def elements(specials, typical, extreme, any_value=ANY_F32):
    """Typical values only, or typical, special and any float32 values mixed."""
    if not extreme:
        return typical
    return st.one_of(typical, st.sampled_from(specials), any_value)


def value_strategies(extreme):
    return {
        "x": elements(LOGIT_SPECIALS, st.floats(-30, 30, width=32), extreme),
        "y": elements(TARGET_SPECIALS, st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1, width=32)), extreme),
        "y_out": elements(TARGET_SPECIALS, st.floats(-3, 4, width=32), extreme),
        "w": elements(WEIGHT_SPECIALS, st.floats(0, 4, width=32), extreme),
        "p": elements(PROB_SPECIALS, st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1, width=32)), extreme),
        "p_in": elements(PROB_IN_SPECIALS, st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1, width=32)),
                         extreme, st.floats(0, 1, width=32)),
        "g": elements(GRAD_SPECIALS, st.floats(-3, 3, width=32), extreme),
    }


VALUES = {extreme: value_strategies(extreme) for extreme in (False, True)}


def array(draw, shape, strategy):
    return draw(hnp.arrays(np.float32, shape, elements=strategy))


# ------------------------------------------------------------------ shapes ---

# the largest side per rank keeps examples small (<= 1296 elements)
MAX_SIDE = {0: 1, 1: 40, 2: 12, 3: 7, 4: 6, 5: 4}


@st.composite
def input_shapes(draw, max_rank=5):
    rank = draw(st.integers(0, max_rank))
    dims = [draw(st.integers(1, MAX_SIDE[rank])) for _ in range(rank)]
    if rank and draw(st.integers(0, 9)) == 0:  # a zero-size dimension in one example of ten
        dims[draw(st.integers(0, rank - 1))] = 0
    return tuple(dims)


@st.composite
def broadcast_shapes(draw, shape):
    """A shape that numpy.broadcast_to accepts for `shape`: trailing dims, each
    kept or 1 (scalar, full, per class, per sample, per channel ...)."""
    k = draw(st.integers(0, len(shape)))
    return tuple(d if draw(st.booleans()) else 1 for d in shape[len(shape) - k:])


@st.composite
def non_broadcast_shapes(draw, shape):
    """A shape numpy.broadcast_to rejects for `shape`: a wrong size in one
    dimension, or a rank above the input's (even with leading ones)."""
    base = list(draw(broadcast_shapes(shape)))
    if base and draw(st.booleans()):
        i = draw(st.integers(0, len(base) - 1))
        target = shape[len(shape) - len(base) + i]
        base[i] = draw(st.integers(0, 9).filter(lambda d: d not in (1, target)))
        return tuple(base)
    lead = draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))
    return tuple(lead) + tuple(shape)


def different_shape(draw, shape):
    """A target shape other than `shape` (broadcastable ones included)."""
    options = [shape + (1,), (2,) + shape, shape[1:] if shape else (1,)]
    if shape:
        options.append(shape[:-1] + (shape[-1] + 1,))
        options.append(tuple(1 for _ in shape) if any(d != 1 for d in shape) else shape + (2,))
    return draw(st.sampled_from([s for s in options if s != shape]))


# -------------------------------------------------------------- the APIs ---

# names (in messages) of each API: operator, input, target, weight, pos_weight
API_NAMES = {
    "ops.binary_cross_entropy_with_logits": ("binary_cross_entropy_with_logits", "input", "target", "weight",
                                             "pos_weight"),
    "mint.nn.functional.binary_cross_entropy_with_logits": ("binary_cross_entropy_with_logits", "input", "target",
                                                            "weight", "pos_weight"),
    "ops.BCEWithLogitsLoss": ("BCEWithLogitsLoss", "logits", "label", "weight", "pos_weight"),
    "nn.BCEWithLogitsLoss": ("BCEWithLogitsLoss", "input", "target", "weight", "pos_weight"),
    "mint.nn.BCEWithLogitsLoss": ("BCEWithLogitsLoss", "input", "target", "weight", "pos_weight"),
    "ops.binary_cross_entropy": ("binary_cross_entropy", "logits", "labels", "weight", None),
    "ops.BinaryCrossEntropy": ("BinaryCrossEntropy", "logits", "labels", "weight", None),
    "mint.nn.functional.binary_cross_entropy": ("binary_cross_entropy", "input", "target", "weight", None),
    "nn.BCELoss": ("BCELoss", "logits", "labels", "weight", None),
    "mint.nn.BCELoss": ("BCELoss", "input", "target", "weight", None),
}
GRAD_ALL = ms.ops.GradOperation(get_all=True, sens_param=True)

# APIs that take weight (and pos_weight) per call, so their gradients can be asked for
GRAD_APIS = {"ops.binary_cross_entropy_with_logits", "mint.nn.functional.binary_cross_entropy_with_logits",
             "ops.BCEWithLogitsLoss", "ops.binary_cross_entropy", "ops.BinaryCrossEntropy",
             "mint.nn.functional.binary_cross_entropy"}


_GRAD_FNS = {}


def grad_fn(api, reduction, has_w, has_p):
    """GRAD_ALL of the loss through `api` as a function of its Tensor operands
    (x, y[, w][, p]), built once per API, reduction and operand set."""
    key = (api, reduction, has_w, has_p)
    if key not in _GRAD_FNS:
        fn = loss_fn(api, None, None, reduction)

        def loss(*ops):
            it = iter(ops)
            a, b = next(it), next(it)
            c = next(it) if has_w else None
            d = next(it) if has_p else None
            return fn(a, b, c, d) if api in LOGITS_APIS else fn(a, b, c)
        _GRAD_FNS[key] = GRAD_ALL(FnCell(loss))
    return _GRAD_FNS[key]


def gradients(api, reduction, x, y, w, p, sens):
    """Gradients (Tensors, not read yet) of the loss for every Tensor operand
    (None for absent ones), with `sens` (a Tensor of the loss's dtype and
    shape) as its incoming gradient: the loss is not the last layer.  (Handed
    to the backward as is: a MindSpore Mul in between would flush a subnormal
    incoming gradient to zero.)"""
    operands = [t for t in (x, y, w, p) if t is not None]
    got = iter(grad_fn(api, reduction, w is not None, p is not None)(*operands, sens))
    return [next(got) if t is not None else None for t in (x, y, w, p)]


def read(tensors):
    """float64 values of Tensors (None stays None)."""
    return [None if t is None else to_f64(t) for t in tensors]


# ------------------------------------------------------- tensors, checks ---

# name -> MindSpore dtype (the bars: conftest.ULPS)
DTYPES = {name: dtype for name, (dtype, _ulps) in DTYPE_ROWS.items()}


def tensor(a, dtype):
    """A Tensor of `dtype` from float32 values, rounded to nearest even by
    MindSpore's host conversion (the same values as its Cast op:
    test_numpy_rounding_matches_mindspore_cast), with no op launched."""
    return Tensor(np.asarray(a, np.float32), dtype=dtype)


def to_f64(t):
    """float64 values of a Tensor (bfloat16 reads back as MindSpore's numpy bfloat16)."""
    return t.asnumpy().astype(np.float64)


def set_path(path, threads):
    _kernels.set_simd_path(path)
    ms_bce.set_num_threads(threads)


def logits_indeterminate(x, y, w, p, g, dtype):
    """reference.logits_indeterminate, the limits the range of `dtype` (the
    outputs' dtype, or a tuple of the four: loss, dX, dY, dW)."""
    limit = tuple(DTYPE_MAX[d] for d in dtype) if isinstance(dtype, tuple) else DTYPE_MAX[dtype]
    return ref.logits_indeterminate(x, y, w, p, g, limit)


def bce_indeterminate(p, y, w, g, dtype):
    """reference.bce_indeterminate, the limit the range of the outputs' `dtype`."""
    return ref.bce_indeterminate(p, y, w, g, DTYPE_MAX[dtype])


# ------------------------------------------------------------ the checks ---

def promoted(dtypes):
    """The logits family's result dtype: the widest of the operands' (float16
    with bfloat16 gives float32)."""
    return dtypes[0] if len(set(dtypes)) == 1 else ms.float32


def run_each(path, threads, run):
    """run() (a list of float64 arrays and Nones) with each thread count in
    `threads` (an int or a tuple): the results must not depend on it."""
    results = []
    for t in (threads,) if isinstance(threads, int) else threads:
        set_path(path, t)
        results.append(run())
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert (a is None) == (b is None) and (a is None or a.tobytes() == b.tobytes()), \
                f"{threads} threads differ"
    return results[0]


def check_logits(api, reduction, shapes, dtypes, arrays, path, threads, grads=True):
    """Runs one configuration of the logits family (with each thread count
    in `threads`) and checks forward and gradients against the float64
    reference."""
    x_shape, w_shape, p_shape = shapes
    tx, ty = tensor(arrays["x"], dtypes[0]), tensor(arrays["y"], dtypes[1])
    tw = None if w_shape is None else tensor(arrays["w"], dtypes[2])
    tp = None if p_shape is None else tensor(arrays["p"], dtypes[3])
    x, y = to_f64(tx), to_f64(ty)
    w = None if tw is None else to_f64(tw)
    p = None if tp is None else to_f64(tp)
    out_dtype = promoted([t.dtype for t in (tx, ty, tw, tp) if t is not None])
    tg = tensor(arrays["g"] if reduction == "none" else arrays["g0"], out_dtype) if grads else None

    def run():
        out = loss_fn(api, tw, tp, reduction)(tx, ty)
        assert out.dtype == out_dtype and out.shape == (x_shape if reduction == "none" else ())
        return read([out] + (gradients(api, reduction, tx, ty, tw, tp, tg) if grads else []))
    got = run_each(path, threads, run)
    expected = ref.bce_with_logits(x, y, w, p, reduction)
    n = int(np.prod(x_shape))
    g = to_f64(tg) if grads else 1.0
    # the loss's entries of these do not depend on the incoming gradient g
    s = logits_scales(x, y, w, p, g, reduction)
    gb = ref.incoming_grad(g, x_shape, reduction)
    # each gradient has its operand's dtype (computed in out_dtype, then cast)
    grad_dtypes = (out_dtype, tx.dtype, ty.dtype, out_dtype if tw is None else tw.dtype)
    skips = logits_indeterminate(x, y, w, p, gb, grad_dtypes) + (np.zeros(x_shape, bool),)
    if reduction == "none":
        check_close(got[0], expected, out_dtype, elementwise_tol(s[0], out_dtype), "loss", skips[0])
    else:
        total = sum_scale(s[0], reduction, n)
        check_close(got[0], expected, out_dtype, reduced_tol(expected, total, out_dtype), f"loss {reduction}",
                    skips[0].any())
    if not grads:
        return
    want = ref.bce_with_logits_grads(x, y, w, p, reduction, g)
    for k, (name, t) in enumerate(zip(("dx", "dy", "dw", "dp"), (tx, ty, tw, tp))):
        if t is None:
            assert got[k + 1] is None
            continue
        if k < 2:
            check_close(got[k + 1], want[k], t.dtype, elementwise_tol(s[k + 1], t.dtype), name, skips[k + 1])
        elif not skips[k + 1].any():  # a sum over broadcast dimensions: indeterminate if any term is
            scale = ref.reduce_to_shape(s[k + 1], t.shape)
            check_reduced_gradient(got[k + 1], want[k], scale, t.shape, x_shape, t.dtype, name)


def expect_runtime_error(call, message):
    """call() raises RuntimeError with `message`, at the latest when its
    results are read (PyNative runs the kernels asynchronously)."""
    with pytest.raises(RuntimeError) as info:
        result = call()
        for r in result if isinstance(result, (list, tuple)) else [result]:
            if isinstance(r, Tensor):
                r.asnumpy()
    assert message in str(info.value), str(info.value)


def check_bce(api, reduction, shapes, dtype, arrays, path, threads, grads=True):
    """The same for the BCELoss family (one dtype for all operands): values
    where every probability is in [0, 1] or NaN, else the RuntimeError."""
    x_shape, w_shape = shapes
    tx, ty = tensor(arrays["p"], dtype), tensor(arrays["y"], dtype)
    tw = None if w_shape is None else tensor(arrays["w"], dtype)
    tg = tensor(arrays["g"] if reduction == "none" else arrays["g0"], dtype) if grads else None
    p, y = to_f64(tx), to_f64(ty)
    w = None if tw is None else to_f64(tw)
    wb = np.broadcast_to(1.0 if w is None else w, x_shape)
    n = int(np.prod(x_shape))
    if np.any((p < 0) | (p > 1)):  # a probability outside [0, 1] (NaN is not): refused, forward and backward
        message = domain_error_message(p)
        event("BCELoss: a probability outside [0, 1] (the RuntimeError checked)")

        def refused():
            expect_runtime_error(lambda: loss_fn(api, tw, None, reduction)(tx, ty), message)
            if grads:
                expect_runtime_error(lambda: gradients(api, reduction, tx, ty, tw, None, tg), message)
            return []
        run_each(path, threads, refused)
        return

    def run():
        out = loss_fn(api, tw, None, reduction)(tx, ty)
        assert out.dtype == dtype and out.shape == (x_shape if reduction == "none" else ())
        return read([out] + (gradients(api, reduction, tx, ty, tw, None, tg)[:3] if grads else []))
    got = run_each(path, threads, run)
    # the kernel's per-element incoming gradient: g, or float32(g / numel) for 'mean' (float32 arithmetic);
    # the loss's entries below do not depend on it
    g = to_f64(tg) if grads else 1.0
    gk = np.broadcast_to(np.float64(np.float32(g / n)) if reduction == "mean" and n else g, x_shape)
    loss, dx, dy, dw, exc = bce_expected(p, y, wb, gk)
    s = bce_scales(p, y, wb, gk)
    skips = bce_indeterminate(p, y, wb, gk, dtype)
    if exc.any():
        note(f"float32-exceptional elements: {int(exc.sum())}")
    if reduction == "none":
        check_close(got[0], loss, dtype, elementwise_tol(s[0], dtype), "loss", skips[0])
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            total = np.sum(loss)
            expected = total if reduction == "sum" else (total / n if n else np.nan)
        check_close(got[0], expected, dtype, reduced_tol(expected, sum_scale(s[0], reduction, n), dtype),
                    f"loss {reduction}", skips[0].any())
    if not grads:
        return
    check_close(got[1], dx, dtype, elementwise_tol(s[1], dtype), "dp", skips[1])
    check_close(got[2], dy, dtype, elementwise_tol(s[2], dtype), "dy", skips[2])
    if tw is not None and not skips[3].any():  # a sum over broadcast dimensions: indeterminate if any term is
        check_reduced_gradient(got[3], ref.reduce_to_shape(dw, tw.shape), ref.reduce_to_shape(s[3], tw.shape),
                               tw.shape, x_shape, dtype, "dw")


# ------------------------------------------------------------- the tests ---

def test_numpy_rounding_matches_mindspore_cast():
    """The oracle's NumPy rounding (rounds_to) and the Tensors it builds
    (tensor: host conversion) give the values of MindSpore's Cast op, for
    every special value, every float16/bfloat16 halfway point and 2^17
    random float32 bit patterns."""
    halfway = np.concatenate([(np.arange(2 ** 16, dtype=np.uint32) << 16) | 0x8000,
                              (np.arange(2 ** 16, dtype=np.uint32) << 16) | 0x7FFF]).view(np.float32)
    f16_half = (np.arange(2 ** 16, dtype=np.uint16).view(np.float16).astype(np.float64)
                + np.spacing(np.arange(2 ** 16, dtype=np.uint16).view(np.float16)).astype(np.float64) / 2)
    bits = np.random.default_rng(0).integers(0, 2 ** 32, 2 ** 17, dtype=np.uint64).astype(np.uint32)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.concatenate([np.array(LOGIT_SPECIALS + TARGET_SPECIALS + WEIGHT_SPECIALS + PROB_SPECIALS
                                          + GRAD_SPECIALS, np.float32), halfway, f16_half.astype(np.float32),
                                 bits.view(np.float32)])
    for dtype in (ms.float16, ms.bfloat16):
        cast = Tensor(values).astype(dtype).astype(ms.float32).asnumpy().astype(np.float64)
        for what, got in (("rounds_to", rounds_to(values, dtype)), ("tensor", to_f64(tensor(values, dtype)))):
            same = (got == cast) | (np.isnan(got) & np.isnan(cast))
            assert same.all(), f"{what} {dtype}: {values[~same][:5]} -> {got[~same][:5]}, Cast: {cast[~same][:5]}"


def incoming_gradients(draw, v, x_shape, api, reduction):
    """The incoming gradient the gradient check uses (none where the API's
    gradients are not asked for): per element for 'none', a scalar else."""
    if api not in GRAD_APIS:
        return {"g": None, "g0": None}
    if reduction == "none":
        return {"g": array(draw, x_shape, v["g"]), "g0": None}
    return {"g": None, "g0": np.float32(draw(v["g"]))}


@st.composite
def logits_cases(draw, max_rank=5, dtypes=("float32", "float16", "bfloat16"), apis=None):
    """Shapes, dtypes and values (and, with `apis`, the API and reduction)."""
    x_shape = draw(input_shapes(max_rank))
    w_shape = draw(st.none() | broadcast_shapes(x_shape))
    p_shape = draw(st.none() | broadcast_shapes(x_shape))
    extreme = draw(st.booleans())
    v = VALUES[extreme]
    first = draw(st.sampled_from(dtypes))
    mixed = draw(st.integers(0, 3)) == 0
    dts = [DTYPES[draw(st.sampled_from(dtypes))] if mixed and k else DTYPES[first] for k in range(4)]
    arrays = {
        "x": array(draw, x_shape, v["x"]),
        "y": array(draw, x_shape, v["y_out"] if draw(st.booleans()) else v["y"]),
        "w": None if w_shape is None else array(draw, w_shape, v["w"]),
        "p": None if p_shape is None else array(draw, p_shape, v["w"]),
    }
    if apis is None:
        return (x_shape, w_shape, p_shape), dts, arrays
    reduction, api = draw(st.sampled_from(ref.REDUCTIONS)), draw(st.sampled_from(apis))
    arrays.update(incoming_gradients(draw, v, x_shape, api, reduction))
    return (x_shape, w_shape, p_shape), dts, arrays, reduction, api


@profile_settings("logits")
@given(case=logits_cases(apis=LOGITS_APIS), path=st.sampled_from(["avx2", "scalar"]),
       threads=st.sampled_from([1, 2]))
def test_logits_forward_and_gradients_match_reference(case, path, threads):
    RAN["logits"] += 1
    shapes, dts, arrays, reduction, api = case
    check_logits(api, reduction, shapes, dts, arrays, path, threads, grads=api in GRAD_APIS)


@st.composite
def bce_cases(draw, max_rank=5):
    x_shape = draw(input_shapes(max_rank))
    w_shape = draw(st.none() | broadcast_shapes(x_shape))
    extreme = draw(st.booleans())
    v = VALUES[extreme]
    arrays = {
        # half the extreme ones with probabilities in [0, 1] or NaN only (the others mostly raise)
        "p": array(draw, x_shape, v["p"] if draw(st.booleans()) else v["p_in"]),
        "y": array(draw, x_shape, v["y_out"] if draw(st.booleans()) else v["y"]),
        "w": None if w_shape is None else array(draw, w_shape, v["w"]),
    }
    reduction, api = draw(st.sampled_from(ref.REDUCTIONS)), draw(st.sampled_from(BCE_APIS))
    arrays.update(incoming_gradients(draw, v, x_shape, api, reduction))
    return (x_shape, w_shape), arrays, reduction, api


@profile_settings("bce")
@given(case=bce_cases(), dtype=st.sampled_from(["float32", "float16", "bfloat16"]),
       path=st.sampled_from(["avx2", "scalar"]), threads=st.sampled_from([1, 2]))
def test_bce_forward_and_gradients_match_reference(case, dtype, path, threads):
    shapes, arrays, reduction, api = case
    if dtype == "bfloat16" and api != "mint.nn.BCELoss":
        dtype = "float32"  # bfloat16 only where mint documents it (refused elsewhere: test_invalid_arguments)
    RAN["bce"] += 1
    check_bce(api, reduction, shapes, DTYPES[dtype], arrays, path, threads, grads=api in GRAD_APIS)


# ------------------------------------------------------ invalid arguments ---

FAULTS = ["target_shape", "weight_shape", "pos_weight_shape", "input_dtype", "target_dtype", "weight_dtype",
          "mixed_dtype", "reduction_type", "reduction_value", "input_type", "target_type", "weight_type",
          "rank"]
BAD_DTYPES = [ms.int32, ms.int64, ms.int8, ms.uint8, ms.bool_, ms.float64, ms.complex64]
NON_TENSORS = [1.5, 2, True, [0.0, 1.0], (0.5,), np.zeros(2, np.float32), np.float32(0.5), "x", ms.float32]
BAD_REDUCTION_TYPES = [1, 0.5, None, True, b"mean", ["mean"], ("sum",), {"mean"}, Tensor(1.0), np.int32(1)]
BAD_REDUCTION_VALUES = ["avg", "Mean", "SUM", "", "mean ", " none", "elementwise_mean", "batchmean", "nan", "mean\n"]


NP_OF = {ms.int32: np.int32, ms.int64: np.int64, ms.int8: np.int8, ms.uint8: np.uint8, ms.bool_: np.bool_,
         ms.float64: np.float64, ms.complex64: np.complex64, ms.float32: np.float32, ms.float16: np.float16}


def any_tensor(shape, dtype):
    """A Tensor of zeros of `dtype` (built on the host: no op launched)."""
    if dtype == ms.bfloat16:
        return Tensor(np.zeros(shape, np.float32), dtype=ms.bfloat16)
    return Tensor(np.zeros(shape, NP_OF[dtype]))


@profile_settings("invalid")
@given(data=st.data(), api=st.sampled_from(LOGITS_APIS + BCE_APIS), fault=st.sampled_from(FAULTS),
       reduction=st.sampled_from(ref.REDUCTIONS))
def test_invalid_arguments_raise_the_documented_exception(data, api, fault, reduction):
    """Every invalid argument gives the spec's exception (TypeError or
    ValueError, never a MindSpore internal error) with a message naming the
    operator and the argument, raised by the call (nothing is launched)."""
    logits = api in LOGITS_APIS
    if fault == "pos_weight_shape" and not logits:
        fault = "weight_shape"
    op, n_in, n_tg, n_w, n_p = API_NAMES[api]
    x_shape = data.draw(input_shapes(4))
    dtype = data.draw(st.sampled_from([ms.float32, ms.float16] + ([ms.bfloat16] if api == "mint.nn.BCELoss" or logits
                                                                  else [])))
    w_shape = data.draw(st.none() | broadcast_shapes(x_shape))
    p_shape = data.draw(st.none() | broadcast_shapes(x_shape)) if logits else None
    args = {"x": any_tensor(x_shape, dtype), "y": any_tensor(x_shape, dtype),
            "w": None if w_shape is None else any_tensor(w_shape, dtype),
            "p": None if p_shape is None else any_tensor(p_shape, dtype), "reduction": reduction}
    if fault == "target_shape":
        args["y"] = any_tensor(different_shape(data.draw, x_shape), dtype)
        exc, pattern = ValueError, f"For '{op}', the shape of '{n_tg}' must be the same as the shape of '{n_in}'"
    elif fault in ("weight_shape", "pos_weight_shape"):
        key, name = ("w", n_w) if fault == "weight_shape" else ("p", n_p)
        bad = data.draw(non_broadcast_shapes(x_shape))
        args[key] = any_tensor(bad, dtype)
        exc, pattern = ValueError, f"For '{op}', the shape of '{name}' {_text(bad)} can not broadcast to the shape " \
                                   f"of '{n_in}' {_text(x_shape)}."
    elif fault in ("input_dtype", "target_dtype", "weight_dtype"):
        key, name = {"input_dtype": ("x", n_in), "target_dtype": ("y", n_tg), "weight_dtype": ("w", n_w)}[fault]
        bad = data.draw(st.sampled_from(BAD_DTYPES + ([] if logits or api == "mint.nn.BCELoss" else [ms.bfloat16])))
        shape = x_shape if key != "w" else (w_shape if w_shape is not None else ())
        args[key] = any_tensor(shape, bad)
        if key == "x" and not logits:
            args["y"] = any_tensor(x_shape, bad)
            if args["w"] is not None:
                args["w"] = any_tensor(w_shape, bad)
        exc, pattern = TypeError, f"For '{op}', the dtype of '{name}' must be one of ["
    elif fault == "mixed_dtype":
        if logits:
            return  # the logits family computes mixed float dtypes in the widest (test_logits_*)
        other = ms.float16 if dtype != ms.float16 else ms.float32
        args["y"] = any_tensor(x_shape, other)
        exc, pattern = TypeError, f"For '{op}', the dtype of '{n_tg}' must be the same as the dtype of '{n_in}'"
    elif fault == "reduction_type":
        args["reduction"] = data.draw(st.sampled_from(BAD_REDUCTION_TYPES))
        exc, pattern = TypeError, "'reduction' must be a str, but got"
    elif fault == "reduction_value":
        args["reduction"] = data.draw(st.sampled_from(BAD_REDUCTION_VALUES) | st.text(max_size=6).filter(
            lambda s: s not in ref.REDUCTIONS))
        exc, pattern = ValueError, "'reduction' must be one of ['none', 'mean', 'sum', 'weighted_mean'], but got"
    elif fault in ("input_type", "target_type", "weight_type"):
        key, name = {"input_type": ("x", n_in), "target_type": ("y", n_tg), "weight_type": ("w", n_w)}[fault]
        args[key] = data.draw(st.sampled_from(NON_TENSORS))
        exc, pattern = TypeError, f"'{name}' must be a Tensor, but got"
    elif fault == "rank":
        rank = data.draw(st.integers(17, 20))
        args["x"] = any_tensor((1,) * rank, dtype)
        args["y"] = any_tensor((1,) * rank, dtype)
        exc, pattern = ValueError, f"For '{op}', the rank of '{n_in}' must be at most 16, but got {rank}."
    RAN["invalid"] += 1
    with pytest.raises(exc) as info:
        fn = loss_fn(api, args["w"], args["p"], args["reduction"])
        out = fn(args["x"], args["y"])
        out.asnumpy()  # were anything launched, a kernel error would surface here
    assert pattern in str(info.value), str(info.value)


def _text(shape):
    return str(tuple(shape))


# ---------------------------------------------------------- chunked sizes ---

@st.composite
def chunked_cases(draw):
    """More than the 64Ki-element chunk size: several chunks, both thread counts."""
    rank = draw(st.integers(1, 3))
    n_target = draw(st.integers(65537, 300000))
    if rank == 1:
        x_shape = (n_target,)
    else:
        last = draw(st.sampled_from([1, 3, 10, 37, 1000, 5000]))
        mid = draw(st.integers(1, 7)) if rank == 3 else 1
        x_shape = ((max(1, n_target // (last * mid)),) + ((mid,) if rank == 3 else ()) + (last,))
    w_shape = draw(st.none() | broadcast_shapes(x_shape))
    p_shape = draw(st.none() | broadcast_shapes(x_shape))
    # for BCELoss: 0 (probabilities in [0, 1] or NaN) or 1-3 outside [0, 1], anywhere (any chunk)
    outside = draw(st.integers(0, 3))
    return x_shape, w_shape, p_shape, draw(st.integers(0, 2 ** 32 - 1)), draw(st.floats(0, 0.2)), outside


def random_values(rng, shape, specials, lo, hi, special_fraction):
    a = rng.uniform(lo, hi, shape).astype(np.float32)
    mask = rng.random(shape) < special_fraction
    a[mask] = rng.choice(np.array(specials, np.float32), int(mask.sum()))
    return a


PROB_OUT_SPECIALS = [v for v in PROB_SPECIALS if v < 0 or v > 1]


@profile_settings("chunked")
@given(case=chunked_cases(), reduction=st.sampled_from(ref.REDUCTIONS), family=st.sampled_from(["logits", "bce"]),
       path=st.sampled_from(["avx2", "scalar"]), dtype=st.sampled_from(["float32", "float16"]))
def test_chunked_inputs_match_reference_and_do_not_depend_on_threads(case, reduction, family, path, dtype):
    """The forward and gradients with 1 and 2 threads: bitwise equal (or the
    same first probability outside [0, 1] named), and as the reference."""
    RAN["chunked"] += 1
    x_shape, w_shape, p_shape, seed, frac, outside = case
    rng = np.random.default_rng(seed)
    arrays = {
        "x": random_values(rng, x_shape, LOGIT_SPECIALS, -20, 20, frac),
        "p": random_values(rng, x_shape, PROB_IN_SPECIALS, 0, 1, frac),
        "y": random_values(rng, x_shape, TARGET_SPECIALS, 0, 1, frac),
        "w": None if w_shape is None else random_values(rng, w_shape, WEIGHT_SPECIALS, 0, 3, frac),
        "g": random_values(rng, x_shape, GRAD_SPECIALS, -2, 2, frac),
        "g0": random_values(rng, (), GRAD_SPECIALS, 0.5, 2, frac),
    }
    arrays["p_w"] = None if p_shape is None else random_values(rng, p_shape, WEIGHT_SPECIALS, 0, 3, frac)
    arrays["p"].flat[rng.integers(0, arrays["p"].size, outside)] = rng.choice(PROB_OUT_SPECIALS, outside)
    dt = DTYPES[dtype]
    if family == "logits":
        check_logits("ops.binary_cross_entropy_with_logits", reduction, (x_shape, w_shape, p_shape), [dt] * 4,
                     {"x": arrays["x"], "y": arrays["y"], "w": arrays["w"], "p": arrays["p_w"], "g": arrays["g"],
                      "g0": arrays["g0"]},
                     path, (1, 2))
    else:
        check_bce("ops.binary_cross_entropy", reduction, (x_shape, w_shape), dt,
                  {"p": arrays["p"], "y": arrays["y"], "w": arrays["w"], "g": arrays["g"], "g0": arrays["g0"]},
                  path, (1, 2))


# -------------------------------------------------------------- graph mode ---

@profile_settings("graph")
@given(case=logits_cases(max_rank=3, dtypes=("float32", "float16")), reduction=st.sampled_from(ref.REDUCTIONS),
       family=st.sampled_from(["logits", "bce"]), path=st.sampled_from(["avx2", "scalar"]))
def test_graph_mode_matches_reference(case, reduction, family, path):
    """A smaller check in GRAPH_MODE (each new shape compiles a graph): the
    forward and the input's gradient through a Cell."""
    RAN["graph"] += 1
    (x_shape, w_shape, p_shape), dts, arrays = case
    dt = dts[0]
    _kernels.set_simd_path(path)
    ms.set_context(mode=ms.GRAPH_MODE)
    if family == "logits":
        tx, ty = tensor(arrays["x"], dt), tensor(arrays["y"], dt)
        tw = None if w_shape is None else tensor(arrays["w"], dt)
        tp = None if p_shape is None else tensor(arrays["p"], dt)
        net = ms_bce.nn.BCEWithLogitsLoss(reduction, tw, tp)
    else:
        tx = tensor(np.clip(np.nan_to_num(arrays["y"], nan=0.5), 0, 1), dt)  # probabilities
        ty = tensor(arrays["x"], dt)
        tw = None if w_shape is None else tensor(arrays["w"], dt)
        tp = None
        net = ms_bce.nn.BCELoss(tw, reduction)
    x, y = to_f64(tx), to_f64(ty)
    w = None if tw is None else to_f64(tw)
    p = None if tp is None else to_f64(tp)
    # two cells: ms.grad of a cell that already ran in GRAPH_MODE failed to compile
    # once in 256 examples here (MindSpore parsed FnCell.__init__ as the function)
    out = to_f64(FnCell(net)(tx, ty))
    dx = to_f64(ms.grad(FnCell(net), grad_position=0)(tx, ty))
    n = int(np.prod(x_shape))
    if family == "logits":
        expected = ref.bce_with_logits(x, y, w, p, reduction)
        scale = logits_scales(x, y, w, p, 1.0, "none")[0]
        want_dx = ref.bce_with_logits_grads(x, y, w, p, reduction, 1.0)[0]
        dx_scale = logits_scales(x, y, w, p, 1.0, reduction)[1]
        skips = logits_indeterminate(x, y, w, p, ref.incoming_grad(1.0, x_shape, reduction), dt)
    else:
        wb = np.broadcast_to(1.0 if w is None else w, x_shape)
        gk = np.full(x_shape, np.float32(1.0 / n) if reduction == "mean" and n else 1.0)
        loss, want_dx, _, _, _ = bce_expected(x, y, wb, gk)
        with np.errstate(invalid="ignore", over="ignore"):
            expected = loss if reduction == "none" else (np.sum(loss) if reduction == "sum" else
                                                         (np.sum(loss) / n if n else np.nan))
        scale = bce_scales(x, y, wb, gk)[0]
        dx_scale = bce_scales(x, y, wb, gk)[1]
        skips = bce_indeterminate(x, y, wb, gk, dt)
    if reduction == "none":
        check_close(out, expected, dt, elementwise_tol(scale, dt), "graph loss", skips[0])
    else:
        check_close(out, expected, dt, reduced_tol(expected, sum_scale(scale, reduction, n), dt), "graph loss",
                    skips[0].any())
    check_close(dx, want_dx, dt, elementwise_tol(dx_scale, dt), "graph dx", skips[1])


# ------------------------------------------------------------- the options ---

FOCAL_GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]
FOCAL_ALPHAS = [-1.0, 0.25]
# values a dropped element may hold: it must change nothing
DROPPED_SPECIALS = _f32([NAN, INF, -INF, 3e38, -3e38])
OPTION_TOLS = {"float32": 3e-5, "float16": 4e-3, "bfloat16": 3e-2}
# half the spacing of each dtype's subnormals: a result there is within it
OPTION_FLOOR = {"float32": 2 ** -150, "float16": 2 ** -25, "bfloat16": 2 ** -134}


@st.composite
def option_cases(draw):
    """A loss family (logits, focal with its gamma and alpha, BCELoss), a shape
    (zero-size too), a mask of any broadcast shape keeping none, some or all,
    a weight (sometimes all zero) and pos_weight of any broadcast shape, the
    label smoothing at 0, at 1 or between, every reduction, a dtype."""
    family = draw(st.sampled_from(["logits", "focal", "bce"]))
    x_shape = draw(input_shapes(max_rank=3))
    m_shape = draw(broadcast_shapes(x_shape))
    w_shape = draw(st.none() | broadcast_shapes(x_shape))
    p_shape = None if family == "bce" else draw(st.none() | broadcast_shapes(x_shape))
    return {
        "family": family, "x_shape": x_shape, "m_shape": m_shape, "w_shape": w_shape, "p_shape": p_shape,
        "kept": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "zero_weight": w_shape is not None and draw(st.booleans()),
        "eps": draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0, width=32)),
        "reduction": draw(st.sampled_from(["none", "mean", "sum", "weighted_mean"])),
        "dtype": draw(st.sampled_from(["float32", "float16"] + ["bfloat16"] * (family != "bce"))),
        "gamma": draw(st.sampled_from(FOCAL_GAMMAS)), "alpha": draw(st.sampled_from(FOCAL_ALPHAS)),
        "seed": draw(st.integers(0, 2 ** 32 - 1)),
    }


def _option_loss(case):
    """The case's public function with its options, for ms.value_and_grad."""
    family, reduction, eps = case["family"], case["reduction"], case["eps"]

    def logits(x, y, m, w=None, p=None):
        return ms_bce.ops.binary_cross_entropy_with_logits(x, y, w, p, reduction, label_smoothing=eps, mask=m)

    def focal(x, y, m, w=None, p=None):
        return ms_bce.ops.sigmoid_focal_loss(x, y, case["alpha"], case["gamma"], reduction, weight=w, pos_weight=p,
                                             label_smoothing=eps, mask=m)

    def bce(x, y, m, w=None):
        return ms_bce.ops.binary_cross_entropy(x, y, w, reduction, label_smoothing=eps, mask=m)

    return {"logits": logits, "focal": focal, "bce": bce}[family]


def _option_reference(case, x, y, w, p, keep):
    """(value, [dx, dy, dw, dp]) in float64: the loss at the smoothed target
    (rounded to the dtype, as the kernels round it) over the kept elements,
    dropped ones standing in as 1/2; each gradient 0 where dropped, dY times
    1 - eps, and weighted_mean's quotient-rule term in dW."""
    family, reduction, eps, dt = case["family"], case["reduction"], float(case["eps"]), DTYPES[case["dtype"]]
    ys = to_f64(tensor((y * (1.0 - eps) + 0.5 * eps).astype(np.float32), dt))
    xs, ys = np.where(keep, x, 0.5), np.where(keep, ys, 0.5)
    k = keep.astype(np.float64)
    wb = np.broadcast_to(1.0 if w is None else w, x.shape)
    ws = None if w is None else np.where(keep, wb, 1.0)
    ps = None if p is None else np.where(keep, np.broadcast_to(p, x.shape), 1.0)
    if family == "logits":
        elementwise = ref.bce_with_logits(xs, ys, ws, ps, "none")
    elif family == "focal":
        elementwise = ref.sigmoid_focal(xs, ys, ws, ps, case["alpha"], case["gamma"], "none")
    else:
        elementwise = ref.bce(xs, ys, ws, "none")
    elementwise = elementwise * k
    denominator = {"none": 1.0, "sum": 1.0, "mean": k.sum(), "weighted_mean": (wb * k).sum()}[reduction]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = elementwise if reduction == "none" else elementwise.sum() / denominator
    g = k * (1.0 if reduction == "none" else 1.0 / denominator)
    if family == "logits":
        grads = list(ref.bce_with_logits_grads(xs, ys, ws, ps, "none", g))
    elif family == "focal":
        grads = list(ref.sigmoid_focal_grads(xs, ys, ws, ps, case["alpha"], case["gamma"], "none", g))
    else:
        grads = list(ref.bce_grads(xs, ys, ws, "none", g)) + [None]
    grads = [None if v is None else v * k for v in grads]  # a full-size dW/dP before its sum
    sizes = [None if v is None else np.max(np.abs(v), initial=0.0) for v in grads]  # what the bars are relative to
    if w is not None:  # the per-element dW (ref sums to the stand-ins' full shape) back to w's shape
        grads[2] = ref.reduce_to_shape(grads[2], np.shape(w))
        sizes[2] = np.max(np.abs(grads[2]), initial=0.0)
        if reduction == "weighted_mean":  # d/dW of 1 / sum(W M), nearly cancelling the first term
            quotient = elementwise.sum() / denominator ** 2 * ref.reduce_to_shape(k, np.shape(w))
            grads[2] = grads[2] - quotient
            sizes[2] = max(sizes[2], np.max(np.abs(quotient), initial=0.0))
    if p is not None:
        grads[3] = ref.reduce_to_shape(grads[3], np.shape(p))
        sizes[3] = np.max(np.abs(grads[3]), initial=0.0)
    grads[1] = grads[1] * (1.0 - eps)
    return value, grads, sizes


@profile_settings("options")
@given(case=option_cases(), path=st.sampled_from(["avx2", "scalar"]), threads=st.sampled_from([1, 2]))
def test_options_match_reference(case, path, threads):
    """label_smoothing, mask and reduction='weighted_mean' on the logits loss, the
    focal loss (gamma in {0, 0.5, 1, 2, 5}, alpha in {-1, 0.25}) and BCELoss,
    both SIMD paths, 1 or 2 threads: NaN, inf and huge values wherever an
    element is dropped change nothing; the value and every gradient as the
    float64 reference; NaN for a mean over nothing (kept or weighted)."""
    RAN["options"] += 1
    set_path(path, threads)
    rng = np.random.default_rng(case["seed"])
    family, shape, dt = case["family"], case["x_shape"], DTYPES[case["dtype"]]
    keep_small = rng.random(case["m_shape"]) < case["kept"]
    keep = np.broadcast_to(keep_small, shape)
    drop = ~keep

    def operand(op_shape, lo, hi):
        a = rng.uniform(lo, hi, op_shape).astype(np.float32)
        if tuple(op_shape) == tuple(shape):  # full-size: anything where dropped
            a[drop] = rng.choice(np.float32(DROPPED_SPECIALS), int(drop.sum()))
        return a

    x = operand(shape, 0.02, 0.98) if family == "bce" else operand(shape, -12.0, 12.0)
    y = operand(shape, 0.0, 1.0)
    w = None if case["w_shape"] is None else operand(case["w_shape"], 0.0, 2.0)
    if w is not None and case["zero_weight"]:
        w = np.zeros_like(w)
    p = None if case["p_shape"] is None else operand(case["p_shape"], 0.5, 3.0)
    tx, ty = tensor(x, dt), tensor(y, dt)
    tw = None if w is None else tensor(w, dt)
    tp = None if p is None else tensor(p, dt)
    args = [tx, ty, Tensor(keep_small)] + ([] if tw is None and tp is None else [tw]) + ([] if tp is None else [tp])
    positions = (0, 1) + ((3,) if tw is not None else ()) + ((4,) if tp is not None else ())
    value, got = ms.value_and_grad(_option_loss(case), grad_position=positions)(*args)
    want, want_grads, sizes = _option_reference(case, to_f64(tx), to_f64(ty), None if tw is None else to_f64(tw),
                                         None if tp is None else to_f64(tp), keep)
    note(f"want {want}, got {to_f64(value)}")
    tol, floor = OPTION_TOLS[case["dtype"]], OPTION_FLOOR[case["dtype"]]
    np.testing.assert_allclose(to_f64(value), want, rtol=tol, atol=tol * np.max(np.abs(want), initial=0.0) + floor)
    assert value.dtype == dt
    if np.ndim(want) == 0 and np.isnan(want):
        return  # a mean over nothing: NaN, its gradients with it
    wanted = [0, 1] + [2] * (tw is not None) + [3] * (tp is not None)
    for k, (g, j) in enumerate(zip(got, wanted)):
        g = to_f64(g)
        np.testing.assert_allclose(g, want_grads[j], rtol=tol, atol=tol * sizes[j] + floor,
                                   err_msg=f"gradient {positions[k]}")
        if k < 2:  # dX, dY: exactly +0 wherever dropped
            assert not np.any(g[drop]) and not np.any(np.signbit(g[drop])), f"gradient {positions[k]}"
