"""BCEWithLogitsLoss gradients: all four inputs against the spec's analytic
formulas in float64 (with an incoming gradient that is not 1), against finite
differences, against MindSpore's built-in where it is right, in both modes."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor

import ms_bce
from tests import reference as ref
from tests.conftest import DTYPES, FnCell, assert_rel, assert_ulps, call, grads, quantize, to_ms, to_np
from tests.test_bce_with_logits_forward import BROADCASTS, make_inputs


def weighted_loss(reduction, has_w, has_p, g):
    """A function of (x, y[, w][, p]) whose output is sum(loss * g): the loss is
    not the last layer, so its incoming gradient is g (float32, rounded to the
    loss's dtype by the cast's backward), not 1."""
    def scaled(loss):
        return (ms.ops.cast(loss, ms.float32) * g).sum()

    def f2(x, y):
        return scaled(ms_bce.ops.binary_cross_entropy_with_logits(x, y, None, None, reduction))

    def f3w(x, y, w):
        return scaled(ms_bce.ops.binary_cross_entropy_with_logits(x, y, w, None, reduction))

    def f3p(x, y, p):
        return scaled(ms_bce.ops.binary_cross_entropy_with_logits(x, y, None, p, reduction))

    def f4(x, y, w, p):
        return scaled(ms_bce.ops.binary_cross_entropy_with_logits(x, y, w, p, reduction))
    return {(False, False): f2, (True, False): f3w, (False, True): f3p, (True, True): f4}[(has_w, has_p)]


def kernel_grads(x, y, w, p, reduction, g, dtype):
    """(dX, dY, dW, dP) from ms_bce in the current mode, as float64 arrays (None
    for an operand not given)."""
    operands = [to_ms(a, dtype) for a in (x, y, w, p) if a is not None]
    fn = weighted_loss(reduction, w is not None, p is not None, to_ms(quantize(g, dtype)))
    out = [to_np(t) for t in grads(fn, tuple(range(len(operands))), *operands)]
    dx, dy = out[0], out[1]
    dw = out[2] if w is not None else None
    dp = out[-1] if p is not None else None
    return dx, dy, dw, dp


def incoming(seed, x_shape, reduction):
    rng = np.random.default_rng(seed)
    return rng.uniform(-2.0, 2.0, x_shape) if reduction == "none" else np.float64(rng.uniform(0.3, 3.0))


def grad_scales(x, y, w, p, reduction, g):
    """Sizes the gradient bars are relative to: the sums of the absolute values
    of each formula's terms (the terms of dX and dY have opposite signs)."""
    xs, ys = np.asarray(x), np.asarray(y)
    wb = np.broadcast_to(1.0 if w is None else w, xs.shape)
    pb = np.broadcast_to(1.0 if p is None else p, xs.shape)
    gb = np.abs(ref.incoming_grad(g, xs.shape, reduction))
    sdx = gb * np.abs(wb) * (np.abs(1 - ys) * ref.sigmoid(xs) + np.abs(pb * ys) * ref.sigmoid(-xs))
    sdy = gb * np.abs(wb) * (np.abs(pb) * ref.softplus(-xs) + ref.softplus(xs))
    sdw = None if w is None else ref.reduce_to_shape(gb * ref.bce_with_logits_scale(xs, ys, None, pb), np.shape(w))
    sdp = None if p is None else ref.reduce_to_shape(gb * np.abs(wb * ys) * ref.softplus(-xs), np.shape(p))
    return sdx, sdy, sdw, sdp


def check_all_grads(x, y, w, p, reduction, g, dtype, ulps):
    q = [None if a is None else quantize(a, dtype) for a in (x, y, w, p, g)]
    got = kernel_grads(x, y, w, p, reduction, g, dtype)
    want = ref.bce_with_logits_grads(*q[:4], reduction, q[4])
    scales = grad_scales(*q[:4], reduction, q[4])
    for name, a, e, s, reduced in zip(("dX", "dY", "dW", "dP"), got, want, scales, (False, False, True, True)):
        if e is None:
            assert a is None
            continue
        assert a.shape == e.shape, name
        if reduced and dtype == ms.float32:
            assert_rel(a, e, 1e-6, scale=s, what=name)  # summed over broadcast dims in double
        else:
            assert_ulps(a, e, dtype, ulps, scale=s, what=name)


@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
def test_all_four_gradients_match_analytic_formulas(mode, shapes, reduction):
    x, y, w, p = make_inputs(10, *shapes)
    check_all_grads(x, y, w, p, reduction, incoming(11, shapes[0], reduction), ms.float32, 4)


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
def test_half_precision_gradients(mode, dtype_name, reduction):
    dtype, ulps = DTYPES[dtype_name]
    x, y, w, p = make_inputs(12, (6, 4), (6, 1), (4,))
    x = np.clip(x, -8, 8)  # keep sum(loss * g) well inside float16's range
    check_all_grads(x, y, w, p, reduction, incoming(13, (6, 4), reduction), dtype, ulps)


def test_weight_shapes_full_per_class_column_scalar(mode):
    """dW and dP summed back to full, per-class (C,), column (N,1) and scalar shapes."""
    for w_shape, p_shape in (((5, 3), (5, 3)), ((3,), (3,)), ((5, 1), (1, 3)), ((), ())):
        x, y, w, p = make_inputs(14, (5, 3), w_shape, p_shape)
        check_all_grads(x, y, w, p, "sum", incoming(15, (5, 3), "sum"), ms.float32, 4)


def test_gradients_at_zero_logit_and_tails(mode):
    """At X = 0, P = 1: dX = W (0.5 - Y); in the tails dX keeps relative accuracy."""
    x = np.array([0.0, 0.0, -40.0, 40.0, -100.0, 100.0])
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    dx, dy, _, _ = kernel_grads(x, y, None, None, "sum", np.float64(1.0), ms.float32)
    np.testing.assert_array_equal(dx[:2], [0.5, -0.5])
    expected = ref.bce_with_logits_grads(x, y, reduction="sum")[0]
    assert_ulps(dx, expected, ms.float32, 4)
    assert np.all(dx[2:4] != 0)  # sigmoid(-40) = 4.2e-18: not lost to 1 - sigmoid(40)


def test_gradients_at_infinite_logits_are_not_nan(mode):
    x = np.array([np.inf, -np.inf, np.inf, -np.inf])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    dx, dy, _, _ = kernel_grads(x, y, None, None, "none", np.ones(4), ms.float32)
    np.testing.assert_array_equal(dx, [0.0, 0.0, 1.0, -1.0])
    np.testing.assert_array_equal(dy, [-np.inf, np.inf, -np.inf, np.inf])


def test_empty_input_gradients(mode):
    x = np.zeros((0, 3))
    dx, dy, dw, dp = kernel_grads(x, x, np.ones(3), np.ones((1, 3)), "sum", np.float64(1.0), ms.float32)
    assert dx.shape == (0, 3) and dy.shape == (0, 3)
    np.testing.assert_array_equal(dw, np.zeros(3))
    np.testing.assert_array_equal(dp, np.zeros((1, 3)))


def test_reference_gradients_match_float64_finite_differences():
    """The analytic formulas the kernels are held to, checked by central
    differences of the float64 reference, for every operand and a broadcast."""
    x, y, w, p = make_inputs(16, (3, 4), (3, 1), (4,))
    g = incoming(17, (3, 4), "none")
    analytic = ref.bce_with_logits_grads(x, y, w, p, "none", g)

    def total(xx, yy, ww, pp):
        return np.sum(ref.bce_with_logits(xx, yy, ww, pp, "none") * g)
    args = [x, y, w, p]
    h = 1e-6
    for k, a in enumerate(analytic):
        numeric = np.zeros_like(args[k])
        for i in np.ndindex(args[k].shape):
            plus = [v.copy() for v in args]
            minus = [v.copy() for v in args]
            plus[k][i] += h
            minus[k][i] -= h
            numeric[i] = (total(*plus) - total(*minus)) / (2 * h)
        np.testing.assert_allclose(a, numeric, rtol=1e-7, atol=1e-8, err_msg=f"operand {k}")


def test_kernel_gradients_match_float32_finite_differences(mode):
    """Central differences through ms_bce itself (float32: step 1e-2, loose bar)."""
    x, y, w, p = make_inputs(18, (2, 3), (3,), (2, 1))
    x = np.clip(x, -3, 3)
    analytic = kernel_grads(x, y, w, p, "sum", np.float64(1.0), ms.float32)
    args = [x, y, w, p]
    # one cell for every evaluation: graph mode compiles it once (the shapes do not change)
    loss = FnCell(weighted_loss("sum", True, True, Tensor(1.0, ms.float32)))

    def total(vals):
        return float(to_np(loss(*[to_ms(v) for v in vals])))
    h = 1e-2
    for k in range(4):
        numeric = np.zeros_like(args[k])
        for i in np.ndindex(args[k].shape):
            plus = [v.copy() for v in args]
            minus = [v.copy() for v in args]
            plus[k][i] += h
            minus[k][i] -= h
            numeric[i] = (total(plus) - total(minus)) / (2 * h)
        np.testing.assert_allclose(analytic[k], numeric, rtol=5e-3, atol=5e-3, err_msg=f"operand {k}")


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_input_and_target_gradients_agree_with_builtin(mode, reduction):
    """dX and dY agree with MindSpore's built-in (which returns zeros for dW and dP,
    so those are not compared)."""
    x, y, w, p = make_inputs(19, (6, 4), (4,), (4,))
    g = incoming(20, (6, 4), reduction)
    xs, ys, ws, ps, gs = (to_ms(a) for a in (x, y, w, p, g))

    def builtin(a, b):
        return (ms.ops.binary_cross_entropy_with_logits(a, b, ws, ps, reduction) * gs).sum()

    def ours(a, b):
        return (ms_bce.ops.binary_cross_entropy_with_logits(a, b, ws, ps, reduction) * gs).sum()
    for mine, theirs in zip(grads(ours, (0, 1), xs, ys), grads(builtin, (0, 1), xs, ys)):
        np.testing.assert_allclose(to_np(mine), to_np(theirs), rtol=1e-5, atol=1e-6)


def test_learnable_pos_weight_parameter_gets_true_gradient(mode):
    """nn.BCEWithLogitsLoss accepts Parameter weights (MindSpore's refuses them,
    its weight gradients being zero): the gradient reaches the Parameter."""
    x, y, w, p = make_inputs(21, (8, 3), (3,), (3,))
    pw = Parameter(to_ms(p), name="pos_weight")
    loss = ms_bce.nn.BCEWithLogitsLoss("mean", to_ms(w), pw)
    got = ms.grad(loss, grad_position=None, weights=[pw])(to_ms(x), to_ms(y))
    q = [quantize(a, ms.float32) for a in (x, y, w, p)]
    expected = ref.bce_with_logits_grads(*q, "mean", 1.0)[3]
    assert_rel(to_np(got[0]), expected, 1e-6)


def test_second_order_gradient_raises_clear_error(mode):
    x = to_ms(np.array([[0.3, -0.2]]))

    def first(a):
        return ms.grad(lambda_free_loss)(a, x)
    with pytest.raises(RuntimeError, match="second-order gradients are not supported"):
        to_np(grads(first, 0, x))


def lambda_free_loss(a, b):
    return ms_bce.ops.binary_cross_entropy_with_logits(a, b)
