"""The BCELoss family (binary cross entropy on probabilities): every public name,
reduction, broadcast weight and dtype against the float64 reference of
MindSpore 2.10's rule, its boundaries, all three gradients, agreement with the
built-in where it is right, and the relation to BCEWithLogitsLoss."""
import re

import mindspore as ms
import numpy as np
import pytest

import ms_bce
from tests import reference as ref
from tests.conftest import DTYPES, assert_rel, assert_ulps, call, grads, quantize, to_ms, to_np


# Every public spelling: a builder taking (weight, reduction) and returning loss(p, y).
def ops_functional(w, reduction):
    def loss(p, y):
        return ms_bce.ops.binary_cross_entropy(p, y, w, reduction)
    return loss


def ops_primitive(w, reduction):
    op = ms_bce.ops.BinaryCrossEntropy(reduction)

    def loss(p, y):
        return op(p, y, w)
    return loss


def mint_functional(w, reduction):
    def loss(p, y):
        return ms_bce.mint.nn.functional.binary_cross_entropy(p, y, w, reduction)
    return loss


def nn_cell(w, reduction):
    return ms_bce.nn.BCELoss(w, reduction)


def mint_cell(w, reduction):
    return ms_bce.mint.nn.BCELoss(w, reduction)


APIS = {
    "ops.binary_cross_entropy": ops_functional,
    "ops.BinaryCrossEntropy": ops_primitive,
    "mint.nn.functional.binary_cross_entropy": mint_functional,
    "nn.BCELoss": nn_cell,
    "mint.nn.BCELoss": mint_cell,
}

BROADCASTS = [
    ((4, 5), None),
    ((4, 5), (4, 5)),
    ((4, 5), (5,)),
    ((4, 5), (4, 1)),
    ((4, 5), ()),
    ((2, 3, 4), (3, 1)),
    ((7,), (1,)),
    ((), ()),
]

# p at and near MindSpore's guard: exact zeros and ones, values below, at and
# above eps, where 1 - p rounds to 1 in float32, and 1 - 2^-24.
BOUNDARY_P = np.array([0.0, 1e-13, 1e-12, 2e-12, 1e-11, 1e-8, 2.0 ** -25, 1e-6, 0.5,
                       1 - 1e-6, 1 - 2.0 ** -24, 1.0], np.float32)


def make_inputs(seed, p_shape, w_shape):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, p_shape)
    p = np.where(rng.random(p_shape) < 0.15, rng.choice(BOUNDARY_P, p_shape), p)
    y = rng.random(p_shape)
    w = None if w_shape is None else rng.uniform(0.2, 2.0, w_shape)
    return p, y, w


def run(api, p, y, w, reduction):
    return call(APIS[api](w, reduction), p, y)


@pytest.mark.parametrize("api", list(APIS))
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
def test_every_api_name_matches_reference(mode, api, reduction):
    p, y, w = make_inputs(1, (6, 5), (5,))
    out = run(api, to_ms(p), to_ms(y), to_ms(w), reduction)
    assert out.dtype == ms.float32 and out.shape == ((6, 5) if reduction == "none" else ())
    q = [quantize(a, ms.float32) for a in (p, y, w)]
    assert_ulps(to_np(out), ref.bce(*q, reduction), ms.float32, 4)


@pytest.mark.parametrize("dtype_name", ["float32", "float16"])
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
def test_broadcast_weights_and_dtypes_match_reference(mode, shapes, reduction, dtype_name):
    """A weight that broadcasts is applied with broadcasting (the built-in accepts it
    and reads past its end)."""
    dtype, ulps = DTYPES[dtype_name]
    p, y, w = make_inputs(2, *shapes)
    out = run("ops.binary_cross_entropy", to_ms(p, dtype), to_ms(y, dtype), None if w is None else to_ms(w, dtype),
              reduction)
    assert out.dtype == dtype
    q = [None if a is None else quantize(a, dtype) for a in (p, y, w)]
    assert_ulps(to_np(out), ref.bce(*q, reduction), dtype, ulps)


def test_bfloat16_where_mint_documents_it(mode):
    p, y, w = make_inputs(3, (3, 4), (4,))
    out = call(ms_bce.mint.nn.BCELoss(to_ms(w, ms.bfloat16), "none"), to_ms(p, ms.bfloat16), to_ms(y, ms.bfloat16))
    assert out.dtype == ms.bfloat16
    q = [quantize(a, ms.bfloat16) for a in (p, y, w)]
    assert_ulps(to_np(out), ref.bce(*q, reduction="none"), ms.bfloat16, 1)


def test_seed_example_for_every_name(mode):
    """MindSpore's nn.BCELoss page: prints 1.8952923."""
    weight = ms.Tensor(np.array([[1.0, 2.0, 3.0], [4.0, 3.3, 2.2]]), ms.float32)
    logits = ms.Tensor(np.array([[0.1, 0.2, 0.3], [0.5, 0.7, 0.9]]), ms.float32)
    labels = ms.Tensor(np.array([[0, 1, 0], [0, 0, 1]]), ms.float32)
    for api in APIS:
        assert str(run(api, logits, labels, weight, "mean")) == "1.8952923", api


def test_boundary_values_follow_mindspore_rule(mode):
    """eps = float32(1e-12) added inside each log, the guarded arguments formed in
    float32: the built-in's values at the boundaries, exactly."""
    p = np.repeat(BOUNDARY_P, 3)
    y = np.tile(np.array([0.0, 1.0, 0.5], np.float32), len(BOUNDARY_P))
    out = to_np(run("nn.BCELoss", to_ms(p), to_ms(y), None, "none"))
    assert_ulps(out, ref.bce(p, y, reduction="none"), ms.float32, 4)
    by = {(float(pp), float(yy)): float(o) for pp, yy, o in zip(p, y, out)}
    assert by[(0.0, 1.0)] == 27.63102149963379                # -log(eps), not PyTorch's 100
    assert by[(1.0, 0.0)] == 27.63102149963379
    assert by[(float(np.float32(1e-13)), 1.0)] == 27.53571128845215   # -log(1e-13 + eps): added, not clamped
    assert by[(float(np.float32(1 - 2.0 ** -24)), 0.0)] == 16.635515213012695
    assert by[(0.0, 0.0)] == 0.0 and by[(1.0, 1.0)] == 0.0   # a perfect prediction costs nothing
    assert np.all(np.isfinite(out))


def test_boundary_values_equal_builtin(mode):
    p = np.repeat(BOUNDARY_P, 3)
    y = np.tile(np.array([0.0, 1.0, 0.5], np.float32), len(BOUNDARY_P))

    def builtin(a, b):
        return ms.ops.binary_cross_entropy(a, b, None, "none")
    ours = to_np(run("ops.binary_cross_entropy", to_ms(p), to_ms(y), None, "none"))
    np.testing.assert_array_equal(ours, to_np(call(builtin, to_ms(p), to_ms(y))))


def test_float16_stays_finite_at_zero_and_one(mode):
    """Computed in float32: eps survives (MindSpore's float16 kernel returns inf/NaN)."""
    p = np.array([0.0, 0.0, 1.0, 1.0], np.float16)
    y = np.array([1.0, 0.0, 0.0, 1.0], np.float16)
    out = to_np(run("nn.BCELoss", to_ms(p, ms.float16), to_ms(y, ms.float16), None, "none"))
    np.testing.assert_array_equal(out, np.float16([27.631021, 0.0, 27.631021, 0.0]).astype(np.float64))


def range_message(value, index):
    return (f"For 'BCELoss', every element of 'logits' must be in [0, 1], but got {value} at index {index}.")


def out_of_range_p(shape=(4, 5)):
    """Probabilities in [0, 1] but for -0.73 at flat index 12 and 1.5 at 17 (and NaN at 3)."""
    p = np.random.default_rng(7).uniform(0.0, 1.0, shape).astype(np.float32)
    p.flat[3] = np.nan
    p.flat[12] = -0.73
    p.flat[17] = 1.5
    return p


@pytest.mark.parametrize("api", list(APIS))
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
def test_probabilities_outside_unit_interval_raise_naming_the_first(mode, api, reduction):
    """As PyTorch and the built-in refuse them: a RuntimeError naming the
    operator, the argument, the first offending value and its flat index, no
    later than when the result is read (PyNative) and at the step (graph)."""
    p = out_of_range_p()
    y = np.random.default_rng(8).random(p.shape)
    w = to_ms(np.full(5, 0.5))
    with pytest.raises(RuntimeError, match=re.escape(range_message(-0.73, 12))):
        to_np(call(APIS[api](w, reduction), to_ms(p), to_ms(y)))


@pytest.mark.parametrize("api", list(APIS))
def test_gradient_of_out_of_range_probabilities_raises(mode, api):
    """A gradient call refuses them too (the backward kernels check as the forward does)."""
    p = out_of_range_p()
    y = np.random.default_rng(8).random(p.shape)
    with pytest.raises(RuntimeError, match=re.escape(range_message(-0.73, 12))):
        g = grads(APIS[api](None, "mean"), (0, 1), to_ms(p), to_ms(y))
        [to_np(t) for t in g]


@pytest.mark.parametrize("dtype_name,value", [("float16", "-0.72998047"), ("bfloat16", "-0.73046875")])
def test_out_of_range_message_shows_the_value_the_kernel_read(mode, dtype_name, value):
    """16-bit probabilities: the message shows the stored value (shortest float32 text)."""
    dtype = DTYPES[dtype_name][0]
    p = out_of_range_p()
    y = np.ones(p.shape)
    with pytest.raises(RuntimeError, match=re.escape(range_message(value, 12))):
        to_np(call(APIS["mint.nn.BCELoss"](None, "sum"), to_ms(p, dtype), to_ms(p * 0 + y, dtype)))


@pytest.mark.parametrize("threads", [1, 2])
def test_first_out_of_range_index_does_not_depend_on_threads(threads):
    """Many chunks (4 * 2^16 elements), offending values in the last chunks: the
    message names the first in flat order whatever thread finds which."""
    n = 4 * 2 ** 16 + 5
    p = np.full(n, 0.25, np.float32)
    p[n - 1] = -2.0
    p[3 * 2 ** 16 + 7] = 1.0000001
    p[2 * 2 ** 16 + 1] = np.nan
    ms_bce.set_num_threads(threads)
    try:
        for reduction in ref.REDUCTIONS:
            with pytest.raises(RuntimeError, match=re.escape(range_message("1.0000001", 3 * 2 ** 16 + 7))):
                to_np(ms_bce.ops.binary_cross_entropy(to_ms(p), to_ms(p), None, reduction))
    finally:
        ms_bce.set_num_threads(0)


def test_nan_and_the_interval_ends_are_accepted(mode):
    """NaN gives NaN (no error); 0 and 1 themselves are in the domain, and
    after an error the same operator computes the next call normally."""
    p = np.array([0.0, 1.0, np.nan, 0.5, 2.0 ** -149, 1 - 2.0 ** -24], np.float32)
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0], np.float32)
    out = to_np(run("ops.binary_cross_entropy", to_ms(p), to_ms(y), None, "none"))
    np.testing.assert_array_equal(np.isnan(out), [False, False, True, False, False, False])
    ok = ~np.isnan(p)
    assert_ulps(out[ok], ref.bce(p[ok], y[ok], reduction="none"), ms.float32, 4)


def test_pynative_operator_works_after_an_out_of_range_call():
    """PyNative keeps no state from the error: the next call computes normally."""
    loss = ms_bce.nn.BCELoss()
    with pytest.raises(RuntimeError, match="must be in \\[0, 1\\]"):
        to_np(loss(to_ms(out_of_range_p()), to_ms(np.ones((4, 5)))))
    p = np.full((4, 5), 0.25)
    assert_ulps(to_np(loss(to_ms(p), to_ms(np.ones((4, 5))))), ref.bce(quantize(p, ms.float32), np.ones((4, 5))),
                ms.float32, 4)


def test_targets_outside_unit_interval_follow_formula(mode):
    p, _, _ = make_inputs(4, (20,), None)
    y = np.random.default_rng(5).uniform(-2.0, 3.0, 20)
    q = [quantize(a, ms.float32) for a in (p, y)]
    out = to_np(run("ops.binary_cross_entropy", to_ms(p), to_ms(y), None, "none"))
    assert_ulps(out, ref.bce(*q, reduction="none"), ms.float32, 4, scale=ref.bce_scale(*q))


@pytest.mark.parametrize("shape", [(1,), (1, 1), ()])
def test_one_element_mean_and_sum_are_not_doubled(mode, shape):
    """The built-in doubles 'mean' and 'sum' of a one-element input."""
    p, y = np.full(shape, 0.3), np.full(shape, 1.0)
    for reduction in ("mean", "sum"):
        out = to_np(run("nn.BCELoss", to_ms(p), to_ms(y), None, reduction))
        assert_ulps(out, ref.bce(quantize(p, ms.float32), y, reduction=reduction), ms.float32, 4)
        np.testing.assert_allclose(out, -np.log(np.float32(0.3)), rtol=1e-6)


@pytest.mark.parametrize("reduction,expected", [("mean", np.nan), ("sum", 0.0)])
def test_empty_input(mode, reduction, expected):
    """The built-in returns whatever was in memory."""
    e = np.zeros((0, 3))
    np.testing.assert_array_equal(to_np(run("ops.binary_cross_entropy", to_ms(e), to_ms(e), to_ms(np.ones(3)),
                                            reduction)), expected)


# ---------------------------------------------------------------- gradients ---

def weighted_bce(reduction, has_w, g):
    def scaled(loss):
        return (ms.ops.cast(loss, ms.float32) * g).sum()

    def f2(p, y):
        return scaled(ms_bce.ops.binary_cross_entropy(p, y, None, reduction))

    def f3(p, y, w):
        return scaled(ms_bce.ops.binary_cross_entropy(p, y, w, reduction))
    return f3 if has_w else f2


def kernel_grads(p, y, w, reduction, g, dtype=ms.float32):
    operands = [to_ms(a, dtype) for a in (p, y, w) if a is not None]
    out = grads(weighted_bce(reduction, w is not None, to_ms(quantize(g, dtype))), tuple(range(len(operands))),
                *operands)
    out = [to_np(t) for t in out]
    return out[0], out[1], (out[2] if w is not None else None)


def incoming(seed, shape, reduction):
    rng = np.random.default_rng(seed)
    return rng.uniform(-2.0, 2.0, shape) if reduction == "none" else np.float64(rng.uniform(0.3, 3.0))


def grad_scales(p, y, w, reduction, g):
    """Sums of the absolute values of each gradient formula's terms."""
    wb = np.broadcast_to(1.0 if w is None else w, np.shape(p))
    gb = np.abs(ref.incoming_grad(g, np.shape(p), reduction))
    a, b = ref.bce_guarded(p)
    la, lb = np.log(a), np.log(b)
    sdp = gb * np.abs(wb) * (np.abs(1 - y) / b + np.abs(y) / a)
    sdy = gb * np.abs(wb) * (np.abs(la) + np.abs(lb))
    sdw = None if w is None else ref.reduce_to_shape(gb * ref.bce_scale(p, y), np.shape(w))
    return sdp, sdy, sdw


@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
def test_all_three_gradients_match_analytic_formulas(mode, shapes, reduction):
    p, y, w = make_inputs(6, *shapes)
    g = incoming(7, shapes[0], reduction)
    q = [None if a is None else quantize(a, ms.float32) for a in (p, y, w, g)]
    got = kernel_grads(p, y, w, reduction, g)
    want = ref.bce_grads(*q[:3], reduction, q[3])
    for name, a, e, s in zip(("dp", "dY", "dW"), got, want, grad_scales(*q[:3], reduction, q[3])):
        if e is None:
            assert a is None
        elif name == "dW":
            assert_rel(a, e, 1e-6, scale=s, what=name)
        else:
            assert_ulps(a, e, ms.float32, 4, scale=s, what=name)


def test_gradients_finite_at_the_guard_and_equal_to_builtin_where_it_is_right(mode):
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 0.5], np.float32)
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 1.0], np.float32)
    dp, dy, _ = kernel_grads(p, y, None, "sum", np.float64(1.0))
    assert np.all(np.isfinite(dp)) and np.all(np.isfinite(dy))
    np.testing.assert_allclose(dp[[0, 1]], [-1 / np.float32(1e-12), 1 / np.float32(1e-12)], rtol=1e-6)
    # p = 0, Y = 0 and p = 1, Y = 1: the derivative of the guarded forward is +-1
    # (the built-in's (p - Y) / max(p (1 - p), eps) form gives 0 there)
    np.testing.assert_array_equal(dp[[2, 3]], [1.0, -1.0])
    # the target's gradient at p = 0 and 1 is log(b) - log(a) = +-27.63 (the built-in: +-inf)
    np.testing.assert_allclose(dy[:4], [27.631021, -27.631021, 27.631021, -27.631021], rtol=1e-6)

    def builtin(a, b):
        return ms.ops.binary_cross_entropy(a, b, None, "sum")
    theirs = to_np(grads(builtin, 0, to_ms(p), to_ms(y)))
    right = [0, 1, 4, 5]  # finite in the built-in and consistent with its forward
    np.testing.assert_allclose(dp[right], theirs[right], rtol=1e-6)


def test_gradients_agree_with_builtin_away_from_the_guard(mode):
    rng = np.random.default_rng(8)
    p, y = rng.uniform(0.01, 0.99, (6, 5)), rng.random((6, 5))
    g = incoming(9, (6, 5), "none")
    ps, ys, gs = to_ms(p), to_ms(y), to_ms(g)

    def builtin(a, b):
        return (ms.ops.binary_cross_entropy(a, b, None, "none") * gs).sum()

    def ours(a, b):
        return (ms_bce.ops.binary_cross_entropy(a, b, None, "none") * gs).sum()
    mine, theirs = grads(ours, (0, 1), ps, ys), grads(builtin, (0, 1), ps, ys)
    np.testing.assert_allclose(to_np(mine[0]), to_np(theirs[0]), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(to_np(mine[1]), to_np(theirs[1]), rtol=1e-4, atol=1e-5)  # built-in: SIMD Log


def test_reference_gradients_match_float64_finite_differences():
    p, y, w = make_inputs(10, (3, 4), (4,))
    p = np.clip(p, 0.05, 0.95)
    g = incoming(11, (3, 4), "none")
    analytic = ref.bce_grads(p, y, w, "none", g)

    def total(pp, yy, ww):  # the exact formula in float64 (the guard's float32 rounding aside)
        return np.sum(-ww * (yy * np.log(pp + 1e-12) + (1 - yy) * np.log(1 - pp + 1e-12)) * g)
    args = [p, y, w]
    for k, a in enumerate(analytic):
        numeric = np.zeros_like(args[k])
        for i in np.ndindex(args[k].shape):
            plus, minus = [v.copy() for v in args], [v.copy() for v in args]
            plus[k][i] += 1e-6
            minus[k][i] -= 1e-6
            numeric[i] = (total(*plus) - total(*minus)) / 2e-6
        np.testing.assert_allclose(a, numeric, rtol=1e-5, atol=1e-6, err_msg=f"operand {k}")


def test_weight_gradient_is_true_and_learnable(mode):
    """dW = L / W summed to the weight's shape (the built-in returns zeros)."""
    p, y, w = make_inputs(12, (8, 3), (3,))
    wp = ms.Parameter(to_ms(w), name="w")
    loss = ms_bce.nn.BCELoss(wp, "mean")
    got = ms.grad(loss, grad_position=None, weights=[wp])(to_ms(p), to_ms(y))
    q = [quantize(a, ms.float32) for a in (p, y, w)]
    assert_rel(to_np(got[0]), ref.bce_grads(*q, "mean")[2], 1e-6)


# --------------------------------------------------- relation to the logits ---

def test_sigmoid_then_bce_agrees_with_bce_with_logits_away_from_saturation(mode):
    """|x| <= 4: float32's 1 - sigmoid(x) keeps its relative accuracy to ~1e-5 there
    (it loses a factor e^|x|; saturation is where it is all lost)."""
    rng = np.random.default_rng(13)
    x, y = rng.uniform(-4.0, 4.0, (50, 4)), rng.random((50, 4))

    def via_sigmoid(a, b):
        return ms_bce.nn.BCELoss(reduction="none")(ms.ops.sigmoid(a), b)

    def direct(a, b):
        return ms_bce.ops.binary_cross_entropy_with_logits(a, b, reduction="none")
    np.testing.assert_allclose(to_np(call(via_sigmoid, to_ms(x), to_ms(y))), to_np(call(direct, to_ms(x), to_ms(y))),
                               rtol=1e-5, atol=1e-6)


def test_logits_loss_stays_exact_where_sigmoid_then_bce_saturates(mode):
    """sigmoid(x) rounds to 1 in float32 past x ~ 17 (and to 1 in float16 past ~8):
    sigmoid + BCELoss then returns the guard's -log(eps) = 27.63 whatever x, while
    the logits loss keeps the true value x, finite, in every dtype."""
    x = np.array([20.0, 40.0, 100.0, 1e4], np.float32)
    y = np.zeros(4, np.float32)

    def via_sigmoid(a, b):
        return ms_bce.nn.BCELoss(reduction="none")(ms.ops.sigmoid(a), b)

    def direct(a, b):
        return ms_bce.ops.binary_cross_entropy_with_logits(a, b, reduction="none")
    saturated = to_np(call(via_sigmoid, to_ms(x), to_ms(y)))
    np.testing.assert_allclose(saturated, 27.631021, rtol=1e-6)
    np.testing.assert_array_equal(to_np(call(direct, to_ms(x), to_ms(y))), x)
    x16 = np.array([12.0, 30.0, 1000.0], np.float16)
    exact16 = to_np(call(direct, to_ms(x16, ms.float16), to_ms(np.zeros(3), ms.float16)))
    np.testing.assert_array_equal(exact16, x16.astype(np.float64))
    assert np.all(np.isfinite(to_np(call(via_sigmoid, to_ms(x16, ms.float16), to_ms(np.zeros(3), ms.float16)))))


# ------------------------------------------------------------------ graph ---

def test_dynamic_shapes(mode):
    net = ms_bce.ops.BinaryCrossEntropy("mean")
    if mode == "graph":
        net.set_inputs(ms.Tensor(shape=[None, 3], dtype=ms.float32), ms.Tensor(shape=[None, 3], dtype=ms.float32),
                       ms.Tensor(shape=[3], dtype=ms.float32))
    for n in (2, 9, 1):
        p, y, w = make_inputs(n, (n, 3), (3,))
        q = [quantize(a, ms.float32) for a in (p, y, w)]
        assert_ulps(to_np(net(to_ms(p), to_ms(y), to_ms(w))), ref.bce(*q), ms.float32, 4)


def test_training_with_sigmoid_and_bce_loss_matches_builtin():
    from ms_bce.demo import Classifier, WithLoss
    from tests.test_graph_mode import multilabel_data
    x, y = multilabel_data()

    class SigmoidBCE(ms.nn.Cell):
        def __init__(self, loss):
            super().__init__()
            self.loss = loss

        def construct(self, logits, labels):
            return self.loss(ms.ops.sigmoid(logits), labels)

    def train(loss):
        net = Classifier(1, x.shape[1], y.shape[1])
        step = ms.nn.TrainOneStepCell(WithLoss(net, SigmoidBCE(loss)), ms.nn.Adam(net.trainable_params(), 0.02))
        return np.array([float(step(ms.Tensor(x), ms.Tensor(y)).asnumpy()) for _ in range(30)])
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        ours, theirs = train(ms_bce.nn.BCELoss()), train(ms.nn.BCELoss())
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    assert ours[-1] < 0.6 * ours[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
