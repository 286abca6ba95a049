"""BCEWithLogitsLoss forward: every public name, reduction, broadcast pattern and
dtype against the float64 reference, in PyNative and graph mode."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

import ms_bce
from tests import reference as ref
from tests.conftest import DTYPES, assert_rel, assert_ulps, call, grads, quantize, to_ms, to_np

# (input shape, weight shape or None, pos_weight shape or None)
BROADCASTS = [
    ((4, 5), None, None),
    ((4, 5), (4, 5), (4, 5)),        # full size
    ((4, 5), (5,), (5,)),            # per class along the last axis
    ((4, 5), (1, 5), None),
    ((4, 5), (4, 1), (5,)),          # column weight, per-class pos_weight
    ((4, 5), (), ()),                # 0-d
    ((4, 5), (1,), (1, 1)),
    ((2, 3, 4), (3, 1), (4,)),
    ((2, 3, 4), (2, 1, 1), (1, 3, 1)),
    ((7,), (7,), None),
    ((), (), ()),                    # 0-d input
    ((3, 1, 2), None, (3, 1, 1)),
]


def make_inputs(seed, x_shape, w_shape, p_shape, soft=True):
    """Logits across the sigmoid's whole useful range, soft or hard targets,
    positive weights (None where not given)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=4.0, size=x_shape)
    y = rng.random(x_shape) if soft else (rng.random(x_shape) > 0.5).astype(np.float64)
    w = None if w_shape is None else rng.uniform(0.2, 2.0, w_shape)
    p = None if p_shape is None else rng.uniform(0.5, 3.0, p_shape)
    return x, y, w, p


# Every public spelling: a builder taking (weight, pos_weight, reduction) and
# returning a callable loss(input, target).  Defs, not lambdas: graph mode parses them.
def ops_functional(w, p, reduction):
    def loss(x, y):
        return ms_bce.ops.binary_cross_entropy_with_logits(x, y, w, p, reduction)
    return loss


def mint_functional(w, p, reduction):
    def loss(x, y):
        return ms_bce.mint.nn.functional.binary_cross_entropy_with_logits(x, y, w, reduction, p)
    return loss


def ops_primitive(w, p, reduction):
    op = ms_bce.ops.BCEWithLogitsLoss(reduction)

    def loss(x, y):
        return op(x, y, w, p)
    return loss


def nn_cell(w, p, reduction):
    return ms_bce.nn.BCEWithLogitsLoss(reduction, w, p)


def mint_cell(w, p, reduction):
    return ms_bce.mint.nn.BCEWithLogitsLoss(w, reduction, p)


APIS = {
    "ops.binary_cross_entropy_with_logits": ops_functional,
    "mint.nn.functional.binary_cross_entropy_with_logits": mint_functional,
    "ops.BCEWithLogitsLoss": ops_primitive,
    "nn.BCEWithLogitsLoss": nn_cell,
    "mint.nn.BCEWithLogitsLoss": mint_cell,
}


def run_api(api, x, y, w, p, reduction):
    """The API's loss of (x, y) in the current mode (w, p Tensors or None)."""
    return call(APIS[api](w, p, reduction), x, y)


def expected_and_scale(x, y, w, p, reduction):
    return ref.bce_with_logits(x, y, w, p, reduction), ref.reduce(ref.bce_with_logits_scale(x, y, w, p), reduction)


@pytest.mark.parametrize("api", list(APIS))
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
def test_every_api_name_matches_reference(mode, api, reduction):
    x, y, w, p = make_inputs(1, (6, 5), (5,), (5,))
    out = run_api(api, to_ms(x), to_ms(y), to_ms(w), to_ms(p), reduction)
    assert out.dtype == ms.float32
    assert out.shape == ((6, 5) if reduction == "none" else ())
    xq, yq, wq, pq = (quantize(a, ms.float32) for a in (x, y, w, p))
    expected, scale = expected_and_scale(xq, yq, wq, pq, reduction)
    assert_ulps(to_np(out), expected, ms.float32, 4, scale=scale)


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
def test_broadcast_patterns_and_dtypes_match_reference(mode, shapes, reduction, dtype_name):
    dtype, ulps = DTYPES[dtype_name]
    x, y, w, p = make_inputs(2, *shapes)
    xs, ys, ws, ps = (None if a is None else to_ms(a, dtype) for a in (x, y, w, p))
    out = call(ops_functional(ws, ps, reduction), xs, ys)
    assert out.dtype == dtype
    assert out.shape == (shapes[0] if reduction == "none" else ())
    xq, yq, wq, pq = (None if a is None else quantize(a, dtype) for a in (x, y, w, p))
    expected = ref.bce_with_logits(xq, yq, wq, pq, reduction)
    # targets in [0, 1] and positive weights: no cancellation, the bar is relative
    assert_ulps(to_np(out), expected, dtype, ulps, what=f"{dtype_name} {reduction}")


def test_seed_example_for_every_name(mode):
    """The seeds' documented example (soft and out-of-range targets) prints 0.3463612."""
    x = Tensor(np.array([[-0.8, 1.2, 0.7], [-0.1, -0.4, 0.7]]), ms.float32)
    y = Tensor(np.array([[0.3, 0.8, 1.2], [-0.6, 0.1, 2.2]]), ms.float32)
    w = Tensor(np.array([1.0, 1.0, 1.0]), ms.float32)
    p = Tensor(np.array([1.0, 1.0, 1.0]), ms.float32)
    for api in APIS:
        out = run_api(api, x, y, w, p, "mean")
        assert str(out) == "0.3463612", api


def test_out_of_range_targets_within_absolute_bar(mode):
    """Targets outside [0, 1]: error within 4 ULP of |(1-Y) sp(X)| + |P Y sp(-X)|."""
    rng = np.random.default_rng(3)
    x = rng.normal(scale=6.0, size=(50, 8))
    y = rng.uniform(-3.0, 4.0, size=(50, 8))
    p = rng.uniform(0.1, 5.0, size=(8,))
    xq, yq, pq = (quantize(a, ms.float32) for a in (x, y, p))
    out = call(ops_functional(None, to_ms(p), "none"), to_ms(x), to_ms(y))
    assert_ulps(to_np(out), ref.bce_with_logits(xq, yq, None, pq, "none"), ms.float32, 4,
                scale=ref.bce_with_logits_scale(xq, yq, None, pq))


def test_logits_over_whole_float32_range_within_4_ulp(mode):
    """Logits spanning every binade of float32 (both signs), targets 0, 1 and soft."""
    mags = np.float32(2.0) ** np.arange(-149, 128, 0.5, dtype=np.float32).astype(np.float64)
    mags = mags[np.isfinite(mags.astype(np.float32))]
    x = np.concatenate([mags, -mags, [0.0, np.finfo(np.float32).max, -np.finfo(np.float32).max]])
    for y_value in (0.0, 1.0, 0.25, 0.999):
        y = np.full_like(x, y_value)
        xq, yq = quantize(x, ms.float32), quantize(y, ms.float32)
        out = call(ops_functional(None, None, "none"), to_ms(x), to_ms(y))
        assert_ulps(to_np(out), ref.bce_with_logits(xq, yq, reduction="none"), ms.float32, 4, what=f"y={y_value}")


def test_extreme_logits_are_exact(mode):
    """x = +-1e4 and +-inf: agreeing label gives exactly 0 (not NaN), disagreeing
    gives |x| or inf; a zero coefficient times an infinite softplus is 0."""
    x = np.array([1e4, 1e4, -1e4, -1e4, np.inf, np.inf, -np.inf, -np.inf, 1e4])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.5])
    out = to_np(call(ops_functional(None, None, "none"), to_ms(x), to_ms(y)))
    np.testing.assert_array_equal(out, [0.0, 1e4, 0.0, 1e4, 0.0, np.inf, 0.0, np.inf, 5e3])


def test_tails_keep_relative_accuracy(mode):
    """Where the seeds' form cancels (x very negative, y = 0) and where the built-in
    returns 0 (x = 37.43, y = 1), the stable form keeps every digit."""
    x = np.array([-30.0, -60.0, -87.0, 37.43, 60.0, 100.0])
    y = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    out = to_np(call(ops_functional(None, None, "none"), to_ms(x), to_ms(y)))
    xq = quantize(x, ms.float32)
    expected = np.log1p(np.exp(np.where(y == 0, xq, -xq)))  # softplus(+-x) in float64, tiny here
    assert np.all(expected > 0)
    assert_ulps(out, expected, ms.float32, 4)


def test_stable_form_equals_seed_form_for_finite_inputs():
    rng = np.random.default_rng(4)
    x, y = rng.normal(scale=3, size=100), rng.uniform(-1, 2, size=100)
    w, p = rng.uniform(0.1, 2, size=100), rng.uniform(0.1, 4, size=100)
    np.testing.assert_allclose(ref.bce_with_logits(x, y, w, p, "none"), ref.bce_with_logits_seed_form(x, y, w, p),
                               rtol=1e-12, atol=1e-12)


def test_nan_propagates_from_every_operand(mode):
    x = np.array([np.nan, 0.5, 0.5, 0.5, 0.5])
    y = np.array([1.0, np.nan, 1.0, 0.0, 1.0])
    w = np.array([1.0, 1.0, np.nan, 1.0, 1.0])
    p = np.array([1.0, 1.0, 1.0, np.nan, 1.0])
    out = to_np(call(ops_functional(to_ms(w), to_ms(p), "none"), to_ms(x), to_ms(y)))
    np.testing.assert_array_equal(np.isnan(out), [True, True, True, True, False])
    for reduction in ("mean", "sum"):
        assert np.isnan(to_np(call(ops_functional(to_ms(w), to_ms(p), reduction), to_ms(x), to_ms(y))))


def test_nan_only_where_an_input_is_nan(mode):
    """Infinite logits with any label and zero weights never produce NaN."""
    x = np.array([np.inf, -np.inf, np.inf, -np.inf, 3.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    w = np.array([0.0, 0.0, 0.0, 0.0, 0.0])
    p = np.array([0.0, 0.0, 0.0, 0.0, 0.0])
    out = to_np(call(ops_functional(to_ms(w), to_ms(p), "none"), to_ms(x), to_ms(y)))
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("reduction,expected", [("none", None), ("mean", np.nan), ("sum", 0.0)])
def test_empty_input(mode, reduction, expected):
    x = np.zeros((0, 3))
    out = call(ops_functional(to_ms(np.ones(3)), None, reduction), to_ms(x), to_ms(x))
    if reduction == "none":
        assert out.shape == (0, 3)
    else:
        assert out.shape == ()
        np.testing.assert_array_equal(to_np(out), expected)


def test_zero_dimensional_input(mode):
    out = call(ops_functional(None, None, "none"), to_ms(np.array(0.5)), to_ms(np.array(1.0)))
    assert out.shape == ()
    assert_ulps(to_np(out), ref.bce_with_logits(0.5, 1.0, reduction="none"), ms.float32, 4)


# (x, y, weight, pos_weight) dtypes -> the result's: the widest operand's, as PyTorch promotes
# (float16 with bfloat16 gives float32); None: operand absent
F16, F32, BF16 = ms.float16, ms.float32, ms.bfloat16
PROMOTIONS = [
    ((F16, F32, None, None), F32),
    ((F32, F16, None, None), F32),
    ((BF16, F16, None, None), F32),
    ((F16, F16, None, F32), F32),
    ((F16, F16, F32, F16), F32),
    ((BF16, BF16, BF16, None), BF16),
    ((F16, F16, F16, F16), F16),
]


@pytest.mark.parametrize("dtypes,result", PROMOTIONS)
def test_mixed_dtypes_compute_in_and_return_the_widest(mode, dtypes, result):
    x_dt, y_dt, w_dt, p_dt = dtypes
    x, y, w, p = make_inputs(5, (3, 4), (4,), (4,))
    wt = None if w_dt is None else to_ms(w, w_dt)
    pt = None if p_dt is None else to_ms(p, p_dt)
    out = call(ops_functional(wt, pt, "none"), to_ms(x, x_dt), to_ms(y, y_dt))
    assert out.dtype == result
    expected = ref.bce_with_logits(quantize(x, x_dt), quantize(y, y_dt), None if w_dt is None else quantize(w, w_dt),
                                   None if p_dt is None else quantize(p, p_dt), "none")
    assert_ulps(to_np(out), expected, result, {F32: 4, F16: 1, BF16: 1}[result])


@pytest.mark.parametrize("api", list(APIS))
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
def test_amp_float16_logits_with_float32_labels_give_the_builtins_float32_loss(mode, api, reduction):
    """An AMP model's float16 logits with float32 labels (mindcv's training code):
    the loss is float32, as MindSpore's built-in and PyTorch return it, and equal
    to the built-in's value; gradients come back in each operand's own dtype."""
    x, y, _, _ = make_inputs(9, (6, 5), None, None, soft=False)
    xt, yt = to_ms(x, F16), to_ms(y, F32)
    out = call(APIS[api](None, None, reduction), xt, yt)

    def builtin_loss(a, b):
        return ms.ops.binary_cross_entropy_with_logits(a, b, None, None, reduction)
    builtin = call(builtin_loss, xt, yt)
    assert out.dtype == builtin.dtype == F32
    expected = ref.bce_with_logits(quantize(x, F16), quantize(y, F32), reduction=reduction)
    assert_ulps(to_np(out), expected, F32, 4)
    # the built-in's float32 result is good to about 1e-4 relative only (its float16 path)
    np.testing.assert_allclose(to_np(out), to_np(builtin), rtol=1e-3, atol=1e-6)
    dx, dy = grads(APIS[api](None, None, "sum"), (0, 1), xt, yt)
    assert (dx.dtype, dy.dtype) == (F16, F32)


def test_float32_logits_with_float16_targets_promote_where_the_builtin_follows_the_target(mode):
    """The one documented difference: MindSpore's built-in returns the target's
    dtype (float16 here); ms_bce the widest (float32), as PyTorch."""
    x, y, _, _ = make_inputs(10, (4, 3), None, None, soft=False)
    xt, yt = to_ms(x, F32), to_ms(y, F16)
    ours = call(ops_functional(None, None, "mean"), xt, yt)

    def builtin_loss(a, b):
        return ms.ops.binary_cross_entropy_with_logits(a, b, None, None, "mean")
    builtin = call(builtin_loss, xt, yt)
    assert (ours.dtype, builtin.dtype) == (F32, F16)
    assert_ulps(to_np(ours), ref.bce_with_logits(quantize(x, F32), quantize(y, F16)), F32, 4)


def test_weighted_mean_divides_by_element_count_not_weight_sum(mode):
    x, y = np.zeros((2, 2)), np.zeros((2, 2))
    w = np.array([1.0, 3.0])
    out = to_np(call(ops_functional(to_ms(w), None, "mean"), to_ms(x), to_ms(y)))
    assert_rel(out, np.log(2.0) * (1 + 3 + 1 + 3) / 4, 1e-7)


@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
def test_agrees_with_mindspore_builtin(mode, reduction):
    """Moderate inputs, where MindSpore's built-in is right: the two agree."""
    x, y, w, p = make_inputs(6, (8, 6), (8, 1), (6,), soft=False)
    args = [to_ms(a) for a in (x, y, w, p)]

    def builtin(a, b):
        return ms.ops.binary_cross_entropy_with_logits(a, b, args[2], args[3], reduction)
    ours = to_np(call(ops_functional(args[2], args[3], reduction), args[0], args[1]))
    theirs = to_np(call(builtin, args[0], args[1]))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_results_do_not_depend_on_earlier_calls(mode):
    """No state from an earlier call with another shape (the built-in's PyNative
    'mean' gradient reuses a stale element count)."""
    f = ops_functional(None, None, "mean")
    first = []
    for shape in ((3, 4), (5, 7), (3, 4), (1,), (5, 7)):
        x, y, _, _ = make_inputs(7, shape, None, None)
        out = float(to_np(call(f, to_ms(x), to_ms(y))))
        assert_ulps(out, ref.bce_with_logits(quantize(x, ms.float32), quantize(y, ms.float32)), ms.float32, 4)
        first.append(out)
    assert first[0] == first[2] and first[1] == first[4]
