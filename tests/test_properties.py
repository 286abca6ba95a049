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

References.  Inputs are read back from the Tensors built (so float16 and
bfloat16 values are the quantised ones the kernel sees; they are built on
the host, with the values of MindSpore's Cast op, and no op launched).  The
logits family computes in double and rounds once, so its reference is the
spec's float64 formula.  The BCELoss family is specified as MindSpore 2.10's
rule in float32 arithmetic (docs/design.md): where one of that rule's float32
intermediates overflows or underflows float32's normal range (huge targets or
weights), the expected value is the rule evaluated in float32
(``bce_float32_*`` below); elsewhere it is the float64 reference, within the
same bars.
"""
import collections
import math
import os

import mindspore as ms
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mindspore import Tensor

import ms_bce
from ms_bce import _kernels
from tests import reference as ref
from tests.apis import BCE_APIS, LOGITS_APIS, loss_fn
from tests.conftest import FnCell, ulp

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

DTYPES = {"float32": ms.float32, "float16": ms.float16, "bfloat16": ms.bfloat16}
ULPS = {ms.float32: 4, ms.float16: 1, ms.bfloat16: 1}
NP_DTYPE = {ms.float32: np.float32, ms.float16: np.float16}


def tensor(a, dtype):
    """A Tensor of `dtype` from float32 values, rounded to nearest even by
    MindSpore's host conversion (the same values as its Cast op:
    test_numpy_rounding_matches_mindspore_cast), with no op launched."""
    return Tensor(np.asarray(a, np.float32), dtype=dtype)


def to_f64(t):
    """float64 values of a Tensor (bfloat16 reads back as MindSpore's numpy bfloat16)."""
    return t.asnumpy().astype(np.float64)


def bfloat16_rne(a):
    """float32 values rounded to bfloat16 (nearest even; overflow to inf), as float64."""
    a = np.asarray(a, np.float32)
    b = np.ascontiguousarray(a).view(np.uint32).astype(np.uint64)
    s16, one = np.uint64(16), np.uint64(1)
    r = ((b + np.uint64(0x7FFF) + ((b >> s16) & one)) >> s16 << s16).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(a), np.nan, r.astype(np.float64).reshape(a.shape))


def rounds_to(v, dtype):
    """float64 values as stored in dtype: rounded to float32, then to dtype
    (round to nearest even; overflow to inf), in NumPy."""
    with np.errstate(over="ignore", invalid="ignore"):
        v32 = np.asarray(v, np.float64).astype(np.float32)
        if dtype == ms.float32:
            return v32.astype(np.float64)
        if dtype == ms.float16:
            return v32.astype(np.float16).astype(np.float64)
    return bfloat16_rne(v32)


def check_close(actual, expected, dtype, tol, what, skip=None):
    """|actual - expected| <= tol elementwise; NaN exactly where expected is NaN,
    infinities equal; where expected is finite, an infinite actual is accepted
    only if some value within tol of expected rounds to it in dtype (overflow).
    Elements where `skip` is True (see `indeterminate`) are not checked."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if skip is not None and np.any(skip):
        keep = ~np.broadcast_to(skip, expected.shape)
        note(f"{what}: {int((~keep).sum())} indeterminate elements not checked")
        actual, expected = actual[keep], expected[keep]
        tol = np.broadcast_to(np.asarray(tol, np.float64), keep.shape)[keep]
    tol = np.broadcast_to(np.asarray(tol, np.float64), expected.shape)
    nan_e = np.isnan(expected)
    bad_nan = np.isnan(actual) != nan_e
    inf_e = np.isinf(expected)
    bad_inf = inf_e & (actual != expected)
    fin = ~nan_e & ~inf_e
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(actual - expected)
        lo, hi = rounds_to(expected - tol, dtype), rounds_to(expected + tol, dtype)
    overflow_ok = np.isinf(actual) & ((actual == lo) | (actual == hi))
    bad_val = fin & ~np.isnan(actual) & ~(err <= tol) & ~overflow_ok
    bad = bad_nan | bad_inf | bad_val
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} elements wrong; first at flat index {i}: "
                             f"actual {actual.flat[i]!r}, expected {expected.flat[i]!r}, tol {tol.flat[i]!r}")


DTYPE_MAX = {ms.float32: F32_MAX, ms.float16: 65504.0, ms.bfloat16: 3.3895313892515355e38}


def ulp_of(v, dtype):
    """ULP of dtype at |v|; beyond dtype's range, its largest finite number's
    (so that an expected value past the range may round to inf); 0 for NaN/inf."""
    v = np.abs(np.asarray(v, np.float64))
    v = np.where(np.isfinite(v), np.minimum(v, DTYPE_MAX[dtype]), 0.0)
    return ulp(v, dtype)


def elementwise_tol(scale, dtype):
    """The spec's elementwise bar: 4 float32 ULP, 1 float16/bfloat16 ULP, of the
    terms' size."""
    return ULPS[dtype] * ulp_of(scale, dtype)


def reduced_tol(expected, scale, dtype):
    """Sums: 1e-6 of the terms' total size, plus the result's own rounding."""
    with np.errstate(invalid="ignore", over="ignore"):
        return 1e-6 * np.where(np.isfinite(scale), scale, 0.0) + ulp_of(expected, dtype)


def amul(*factors):
    """|a| * |b| * ... with 0 * inf = 0 (the size of a product term)."""
    r = np.abs(np.asarray(factors[0], np.float64))
    for f in factors[1:]:
        r = ref.mul0(r, np.abs(np.asarray(f, np.float64)))
    return r


def indeterminate(value, scale, *multipliers, rel=1e-6, limit=math.inf):
    """Elements whose result no float64 reference determines: a sum of terms
    that cancels to within `rel` of the terms' size (out-of-range targets or
    probabilities of ~1e30 do this), multiplied by factors (weight,
    pos_weight, incoming gradient) that make the terms' size infinite or
    beyond `limit` (the output dtype's range).  The digits that decide such a
    product are below both the reference's and the kernel's rounding (x = 0,
    y = 1e30, w = inf: exactly inf * log 2, the float64 reference cancels to
    0 and gives 0; y = 2.4e25, w = 1e30: exactly 6.9e29, the reference 0, a
    kernel rounding residual times 1e30 overflows bfloat16)."""
    with np.errstate(invalid="ignore", over="ignore"):
        size = amul(scale, *[np.broadcast_to(np.asarray(m, np.float64), np.shape(value))
                             for m in multipliers if m is not None])
        cancels = np.isfinite(scale) & (np.abs(value) <= rel * np.abs(scale))
        return cancels & (size > limit)


def sum_scale(scale, reduction, n):
    total = np.sum(scale)
    return total / n if reduction == "mean" and n else total


def check_reduced_gradient(actual, expected, scale, op_shape, x_shape, dtype, what):
    """A broadcast operand's gradient is a sum over the broadcast dimensions;
    a full-size one is elementwise."""
    if int(np.prod(op_shape)) == int(np.prod(x_shape)):
        check_close(actual, expected, dtype, elementwise_tol(scale, dtype), what)
    else:
        check_close(actual, expected, dtype, reduced_tol(expected, scale, dtype), what)


def set_path(path, threads):
    _kernels.set_simd_path(path)
    ms_bce.set_num_threads(threads)


# ------------------------------------------------------ logits reference ---

def logits_scales(x, y, w, p, g, reduction):
    """The terms' sizes each bar is relative to (spec section 6), per element:
    loss, dX, dY, and the per-element contributions to dW, dP (mul0 products)."""
    xb, yb = x, y
    wb = np.broadcast_to(1.0 if w is None else w, x.shape)
    pb = np.broadcast_to(1.0 if p is None else p, x.shape)
    gb = ref.incoming_grad(g, x.shape, reduction)
    sp_pos, sp_neg = ref.softplus(xb), ref.softplus(-xb)
    loss = amul(wb, amul(1.0 - yb, sp_pos) + amul(pb, yb, sp_neg))
    dx = amul(gb, wb, amul(1.0 - yb, ref.sigmoid(xb)) + amul(pb, yb, ref.sigmoid(-xb)))
    dy = amul(gb, wb, amul(pb, sp_neg) + np.abs(sp_pos))
    dw = amul(gb, amul(1.0 - yb, sp_pos) + amul(pb, yb, sp_neg))
    dp = amul(gb, wb, yb, sp_neg)
    return loss, dx, dy, dw, dp


def logits_indeterminate(x, y, w, p, g, dtype):
    """`indeterminate` masks (elementwise, x's shape) of the loss, dX, dY and
    dW: each output's bracket of terms, and the infinite factors outside it.
    `dtype`: the outputs' dtype, or a tuple of the four (loss, dX, dY, dW)."""
    wb = np.broadcast_to(1.0 if w is None else w, x.shape)
    pb = np.broadcast_to(1.0 if p is None else p, x.shape)
    gb = np.broadcast_to(g, x.shape)
    sp_pos, sp_neg = ref.softplus(x), ref.softplus(-x)
    sig_pos, sig_neg = ref.sigmoid(x), ref.sigmoid(-x)
    with np.errstate(invalid="ignore", over="ignore"):
        omy = 1.0 - y
        u = ref.mul0(omy, sp_pos) + ref.mul0(ref.mul0(pb, y), sp_neg)
        su = amul(omy, sp_pos) + amul(pb, y, sp_neg)
        b = ref.mul0(omy, sig_pos) - ref.mul0(ref.mul0(pb, y), sig_neg)
        sb = amul(omy, sig_pos) + amul(pb, y, sig_neg)
        c = ref.mul0(pb, sp_neg) - sp_pos
        sc = amul(pb, sp_neg) + np.abs(sp_pos)
    lim = [DTYPE_MAX[d] for d in (dtype if isinstance(dtype, tuple) else (dtype,) * 4)]
    return (indeterminate(u, su, wb, rel=1e-5, limit=lim[0]), indeterminate(b, sb, gb, wb, rel=1e-5, limit=lim[1]),
            indeterminate(c, sc, gb, wb, rel=1e-5, limit=lim[2]), indeterminate(u, su, gb, rel=1e-5, limit=lim[3]))


# --------------------------------------------------------- BCE reference ---

FLT_MAX, FLT_MIN = float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)


def _mul0(a, b, dt):
    a, b = np.asarray(a, dt), np.asarray(b, dt)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        r = a * b
    return np.where(np.isnan(r) & ~np.isnan(a) & ~np.isnan(b), dt(0), r).astype(dt)


def bce_terms(p, y, w, g, dt):
    """MindSpore 2.10's BCELoss rule and its gradients, every operation in dt
    (float32: as the kernels compute it; float64: the reference), a and b
    formed in float32, logs correctly rounded: a dict of intermediates."""
    a, b = ref.bce_guarded(p)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        la, lb = np.log(a).astype(dt), np.log(b).astype(dt)
        y, w, g = np.asarray(y, dt), np.asarray(w, dt), np.asarray(g, dt)
        one = dt(1)
        t1, t2 = _mul0(y, la, dt), _mul0(one - y, lb, dt)
        ll = (t1 + t2).astype(dt)
        loss = -_mul0(w, ll, dt)
        ra, rb = (one / a.astype(dt)).astype(dt), (one / b.astype(dt)).astype(dt)
        t3, t4 = _mul0(one - y, rb, dt), _mul0(y, ra, dt)
        d = (t3 - t4).astype(dt)
        wd = _mul0(w, d, dt)
        dx = _mul0(g, wd, dt)
        dl = (lb - la).astype(dt)
        wdl = _mul0(w, dl, dt)
        dy = _mul0(g, wdl, dt)
        gll = _mul0(g, ll, dt)
        dw = -gll
    return {"t1": t1, "t2": t2, "ll": ll, "loss": loss, "ra": ra, "rb": rb, "t3": t3, "t4": t4, "d": d, "wd": wd,
            "dx": dx, "dl": dl, "wdl": wdl, "dy": dy, "gll": gll, "dw": dw}


def float32_exceptional(terms64, names):
    """Elements where one of the rule's intermediates leaves float32's normal
    range (overflow, or a nonzero value below the smallest normal): there the
    float32 evaluation, not the float64 one, is the specified result."""
    exc = np.zeros(np.shape(terms64["loss"]), bool)
    for k in names:
        v = np.abs(np.asarray(terms64[k], np.float64))
        exc |= (np.isfinite(v) & (v > FLT_MAX)) | ((v > 0) & (v < FLT_MIN))
    return exc


def bce_expected(p, y, w, g):
    """(loss, dp, dy, dw contributions, exceptional masks) elementwise: float64
    where float32 holds the rule's intermediates, the float32 rule elsewhere."""
    t32 = bce_terms(p, y, w, g, np.float32)
    t64 = bce_terms(p, y, w, g, np.float64)
    fwd_exc = float32_exceptional(t64, ("t1", "t2", "ll", "loss"))
    dx_exc = float32_exceptional(t64, ("ra", "rb", "t3", "t4", "d", "wd", "dx"))
    dy_exc = float32_exceptional(t64, ("dl", "wdl", "dy"))
    dw_exc = float32_exceptional(t64, ("t1", "t2", "ll", "gll"))
    pick = lambda k, exc: np.where(exc, t32[k].astype(np.float64), t64[k])  # noqa: E731
    return pick("loss", fwd_exc), pick("dx", dx_exc), pick("dy", dy_exc), pick("dw", dw_exc), fwd_exc


def bce_indeterminate(p, y, w, g, dtype):
    """`indeterminate` masks of the loss, dP, dY and dW (see logits_indeterminate):
    MindSpore's rule evaluated in float32 cancels to within ~1e-7 of its terms."""
    t = bce_terms(p, y, w, g, np.float64)
    a, b = ref.bce_guarded(p)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        la, lb = np.log(np.asarray(a, np.float64)), np.log(np.asarray(b, np.float64))
        sll = np.abs(t["t1"]) + np.abs(t["t2"])
        sd = np.abs(t["t3"]) + np.abs(t["t4"])
        sdl = np.abs(la) + np.abs(lb)
    lim = DTYPE_MAX[dtype]
    return (indeterminate(t["ll"], sll, w, rel=1e-5, limit=lim), indeterminate(t["d"], sd, g, w, rel=1e-5, limit=lim),
            indeterminate(t["dl"], sdl, g, w, rel=1e-5, limit=lim), indeterminate(t["ll"], sll, g, rel=1e-5, limit=lim))


def bce_scales(p, y, w, g):
    a, b = ref.bce_guarded(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        la, lb, ra, rb = np.log(a), np.log(b), 1.0 / a, 1.0 / b
    loss = amul(w, amul(y, la) + amul(1.0 - y, lb))
    dx = amul(g, w, amul(1.0 - y, rb) + amul(y, ra))
    dy = amul(g, w, np.abs(la) + np.abs(lb))
    dw = amul(g, amul(y, la) + amul(1.0 - y, lb))
    return loss, dx, dy, dw


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


def float32_text(v):
    """The shortest text that reads back as float32 v, fixed or scientific,
    whichever is shorter (fixed on a tie; in fixed, of the texts that short,
    the nearest to v: an integer's exact digits): C++'s std::to_chars."""
    v = np.float32(v)
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    fixed = np.format_float_positional(v, unique=True, trim="-")
    sci = np.format_float_scientific(v, unique=True, trim="-", exp_digits=2)
    if len(fixed) > len(sci):
        return sci
    return str(int(v)) if v == np.floor(v) else fixed


def domain_error_message(p):
    """BCELoss's message for probabilities p (the values the kernel sees) with
    one outside [0, 1]: the first such one in C order, and its flat index."""
    i = int(np.flatnonzero((p < 0) | (p > 1))[0])
    return (f"For 'BCELoss', every element of 'logits' must be in [0, 1], but got {float32_text(p.flat[i])} "
            f"at index {i}.")


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
        exc, pattern = ValueError, "'reduction' must be one of ['none', 'mean', 'sum'], but got"
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
