"""The sigmoid focal loss (ms_bce.ops.sigmoid_focal_loss, ms_bce.nn.SigmoidFocalLoss):
values and every gradient against the float64 reference (tests/reference.py),
which is itself checked against torchvision's formula written out in NumPy and
against float64 finite differences; both modes; the tails and small gamma,
where the composition of MindSpore ops loses accuracy or returns NaN; errors
at the call."""
import re

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, ops as ms_ops

import ms_bce
from ms_bce import _kernels
from tests import reference as ref
from tests.conftest import (DTYPES, call, check_close, check_reduced_gradient, elementwise_tol, grads, reduced_tol,
                            sum_scale, to_ms, to_np)

GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
ALPHAS = (-1.0, 0.25)


def operands(shape=(6, 7), seed=0, scale=4.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=scale, size=shape)
    y = rng.uniform(0.0, 1.0, size=shape)
    y.reshape(-1)[: y.size // 2] = rng.integers(0, 2, y.size // 2)  # hard labels and soft ones
    w = rng.uniform(0.5, 2.0, size=shape[-1:])
    p = rng.uniform(0.5, 3.0, size=shape[-1:])
    return x, y, w, p


def focal(api, alpha, gamma, reduction, w=None, p=None):
    """loss(x, y) through the function or the cell."""
    if api == "ops.sigmoid_focal_loss":
        def loss(x, y):
            return ms_bce.ops.sigmoid_focal_loss(x, y, alpha, gamma, reduction, weight=w, pos_weight=p)
        return loss
    return ms_bce.nn.SigmoidFocalLoss(alpha, gamma, reduction, weight=w, pos_weight=p)


APIS = ("ops.sigmoid_focal_loss", "nn.SigmoidFocalLoss")


# ------------------------------------------------- the reference itself ---

@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", ALPHAS + (0.75,))
def test_reference_is_torchvisions_formula(alpha, gamma):
    """Away from the tails (where 1 - p_t cancels) the stable reference is torchvision's definition."""
    x, y, _, _ = operands(scale=2.0)
    np.testing.assert_allclose(ref.sigmoid_focal(x, y, alpha=alpha, gamma=gamma),
                               ref.sigmoid_focal_torchvision(x, y, alpha, gamma), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", ALPHAS + (0.75,))
def test_reference_gradients_are_the_derivatives(alpha, gamma):
    """The analytic reference gradients against central differences of the reference loss in float64."""
    x, y, w, p = operands(seed=1, scale=3.0)
    want = ref.sigmoid_focal_grads(x, y, w, p, alpha, gamma, "sum")
    h = 1e-6
    for k, (name, v) in enumerate((("x", x), ("y", y), ("w", w), ("p", p))):
        fd = np.zeros_like(v)
        for i in np.ndindex(v.shape):
            args = [x, y, w, p]
            up, down = v.copy(), v.copy()
            up[i] += h
            down[i] -= h
            args[k] = up
            hi = ref.sigmoid_focal(*args, alpha=alpha, gamma=gamma, reduction="sum")
            args[k] = down
            lo = ref.sigmoid_focal(*args, alpha=alpha, gamma=gamma, reduction="sum")
            fd[i] = (hi - lo) / (2 * h)
        np.testing.assert_allclose(want[k], fd, rtol=2e-5, atol=2e-6, err_msg=f"d{name}")


# ------------------------------------------------------ values, gradients ---

@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_values_and_all_gradients_match_the_reference(mode, alpha, gamma, reduction):
    x, y, w, p = operands()
    t = [to_ms(v) for v in (x, y, w, p)]
    q = [to_np(v) for v in t]

    def loss(a, b, c, d):
        return ms_bce.ops.sigmoid_focal_loss(a, b, alpha, gamma, reduction, weight=c, pos_weight=d)

    scales = ref.sigmoid_focal_scales(q[0], q[1], np.broadcast_to(q[2], x.shape), np.broadcast_to(q[3], x.shape),
                                      alpha, gamma, np.ones(x.shape))
    got = to_np(call(loss, *t))
    want = ref.sigmoid_focal(*q, alpha=alpha, gamma=gamma, reduction=reduction)
    if reduction == "none":
        check_close(got, want, ms.float32, elementwise_tol(scales[0], ms.float32), "loss")
    else:
        check_close(got, want, ms.float32, reduced_tol(want, sum_scale(scales[0], reduction, x.size), ms.float32),
                    "loss")
    dout = np.random.default_rng(5).uniform(-2, 2, x.shape) if reduction == "none" else 1.0
    want_g = ref.sigmoid_focal_grads(*q, alpha, gamma, reduction, dout)
    g_scale = ref.sigmoid_focal_scales(q[0], q[1], np.broadcast_to(q[2], x.shape), np.broadcast_to(q[3], x.shape),
                                       alpha, gamma, np.abs(ref.incoming_grad(dout, x.shape, reduction)))
    dout_t = to_ms(dout)

    def weighted(a, b, c, d):  # (an incoming gradient that is not 1)
        return (loss(a, b, c, d) * dout_t).sum()

    got_g = grads(weighted if reduction == "none" else loss, (0, 1, 2, 3), *t)
    for k, name in enumerate(("dx", "dy")):
        check_close(to_np(got_g[k]), want_g[k], ms.float32, elementwise_tol(g_scale[1 + k], ms.float32), name)
    for k, name in ((2, "dw"), (3, "dp")):
        scale = ref.reduce_to_shape(g_scale[1 + k], q[k].shape)
        check_reduced_gradient(to_np(got_g[k]), want_g[k], scale, q[k].shape, x.shape, ms.float32, name)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs(mode, dtype):
    ms_dtype, ulps = DTYPES[dtype]
    x, y, _, _ = operands(seed=2)
    t = [to_ms(v, ms_dtype) for v in (x, y)]
    q = [to_np(v) for v in t]
    def loss(a, b):
        return ms_bce.ops.sigmoid_focal_loss(a, b, 0.25, 2.0)

    def summed(a, b):
        return ms_bce.ops.sigmoid_focal_loss(a, b, 0.25, 2.0, "sum")

    got = call(loss, *t)
    assert got.dtype == ms_dtype
    scale = ref.sigmoid_focal_scales(q[0], q[1], np.ones(x.shape), np.ones(x.shape), 0.25, 2.0, np.ones(x.shape))
    check_close(to_np(got), ref.sigmoid_focal(*q), ms_dtype, elementwise_tol(scale[0], ms_dtype), "loss")
    dx = grads(summed, 0, *t)
    assert dx.dtype == ms_dtype
    want = ref.sigmoid_focal_grads(*q, reduction="sum")[0]
    check_close(to_np(dx), want, ms_dtype, elementwise_tol(scale[1], ms_dtype), "dx")


def test_mixed_dtypes_compute_in_the_widest(mode):
    x, y, _, _ = operands(seed=3)

    def loss(a, b):
        return ms_bce.ops.sigmoid_focal_loss(a, b, reduction="mean")

    got = call(loss, to_ms(x, ms.float16), to_ms(y))
    assert got.dtype == ms.float32
    want = ref.sigmoid_focal(to_np(to_ms(x, ms.float16)), to_np(to_ms(y)), reduction="mean")
    np.testing.assert_allclose(to_np(got), want, rtol=1e-6)


@pytest.mark.parametrize("alpha", ALPHAS + (0.9,))
def test_gamma_zero_is_bce_with_logits_times_alpha_t(mode, alpha):
    x, y, w, p = operands(seed=4)
    t = [to_ms(v) for v in (x, y, w, p)]

    def focal_loss(a, b, c, d):
        return ms_bce.ops.sigmoid_focal_loss(a, b, alpha, 0.0, weight=c, pos_weight=d)

    def bce_loss(a, b, c, d):
        return ms_bce.ops.binary_cross_entropy_with_logits(a, b, c, d, "none")

    got = call(focal_loss, *t)
    bce = call(bce_loss, *t)
    q = to_np(t[1])
    alpha_t = alpha * q + (1 - alpha) * (1 - q) if alpha >= 0 else 1.0
    np.testing.assert_allclose(to_np(got), alpha_t * to_np(bce), rtol=2e-6, atol=1e-30)


def test_agrees_with_the_composition_of_mindspore_ops(mode):
    """What a user writes today (torchvision's steps as MindSpore ops), where it is accurate."""
    x, y, _, _ = operands(seed=5, scale=2.0)
    t = [to_ms(v) for v in (x, y)]

    def composed(a, b):
        prob = ms_ops.sigmoid(a)
        ce = ms_ops.binary_cross_entropy_with_logits(a, b, ms_ops.ones_like(a), ms_ops.ones_like(a), "none")
        p_t = prob * b + (1 - prob) * (1 - b)
        return (0.25 * b + 0.75 * (1 - b)) * ce * (1 - p_t) ** 2

    def fused(a, b):
        return ms_bce.ops.sigmoid_focal_loss(a, b)

    np.testing.assert_allclose(to_np(call(fused, *t)), to_np(call(composed, *t)), rtol=2e-5, atol=1e-7)


# --------------------------------------------------- tails and small gamma ---

def test_tails_keep_their_relative_accuracy(mode):
    """A confident right prediction: 1 - p_t = sigmoid(-20) = 2.06e-9; torchvision's 1 - p_t
    is 0 in float32 there (the loss 0), ms_bce's is its value to float32 accuracy."""
    x = np.array([20.0, -20.0, 25.0, -15.0, 8.0])
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    def loss(a, b):
        return ms_bce.ops.sigmoid_focal_loss(a, b, 0.25, 2.0)

    got = to_np(call(loss, to_ms(x), to_ms(y)))
    want = ref.sigmoid_focal(x, y, alpha=0.25, gamma=2.0)
    assert np.all(want > 0)
    np.testing.assert_allclose(got, want, rtol=4 * 2.0 ** -23)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0])
def test_gradients_are_finite_where_one_minus_p_t_vanishes(mode, gamma):
    """gamma < 1: d(1 - p_t)^gamma alone is infinite at 1 - p_t = 0 (autodiff of the composition gives
    inf * 0 = NaN, optax #1346); the loss's gradient there is its limit, finite."""
    x = np.array([30.0, -30.0, 90.0, -100.0, np.inf, -np.inf, 1e4, 0.0])
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    t = [to_ms(v) for v in (x, y)]

    def loss(a, b):
        return ms_bce.ops.sigmoid_focal_loss(a, b, 0.25, gamma)

    def summed(a, b):
        return ms_bce.ops.sigmoid_focal_loss(a, b, 0.25, gamma, "sum")

    dx, dy = grads(summed, (0, 1), *t)
    want_dx, want_dy, _, _ = ref.sigmoid_focal_grads(x, y, alpha=0.25, gamma=gamma, reduction="sum")
    assert np.all(np.isfinite(to_np(dx)))
    # (gamma = 0 is BCE-with-logits: the target's gradient at an infinite logit is -x, infinite)
    assert np.all(np.isfinite(to_np(dy)[np.isfinite(x) | (gamma > 0)]))
    np.testing.assert_allclose(to_np(dx), want_dx, rtol=1e-6, atol=1e-37)
    np.testing.assert_allclose(to_np(dy), want_dy, rtol=1e-6, atol=1e-37)
    np.testing.assert_allclose(to_np(call(loss, *t)), ref.sigmoid_focal(x, y, alpha=0.25, gamma=gamma), rtol=1e-6, atol=1e-37)


def test_composition_gradient_is_nan_where_ms_bce_is_finite():
    """The motivation, pinned: MindSpore autodiff of (1 - p_t) ** 0.5 at a saturated logit."""
    x, y = to_ms(np.array([100.0])), to_ms(np.array([1.0]))

    def composed(a, b):
        prob = ms_ops.sigmoid(a)
        ce = ms_ops.binary_cross_entropy_with_logits(a, b, ms_ops.ones_like(a), ms_ops.ones_like(a), "none")
        return (ce * (1 - (prob * b + (1 - prob) * (1 - b))) ** 0.5).sum()

    assert np.isnan(to_np(ms.grad(composed)(x, y))).all()
    dx = ms.grad(lambda a, b: ms_bce.ops.sigmoid_focal_loss(a, b, -1.0, 0.5, "sum"))(x, y)
    assert to_np(dx)[0] == 0.0


# -------------------------------------------------------------- the cell ---

def test_cell_trains_its_weight_in_graph_mode(mode):
    """The cell with a Parameter weight inside a TrainOneStepCell-like step: the weight's gradient is exact."""
    x, y, w, _ = operands(seed=6)
    weight = ms.Parameter(to_ms(w), name="w")
    loss = ms_bce.nn.SigmoidFocalLoss(0.25, 2.0, "mean", weight=weight)
    got = to_np(loss(to_ms(x), to_ms(y)))
    q = [to_np(to_ms(v)) for v in (x, y, w)]
    np.testing.assert_allclose(got, ref.sigmoid_focal(q[0], q[1], q[2], reduction="mean"), rtol=1e-6)
    step = ms.value_and_grad(loss, None, loss.trainable_params())
    value, (dw,) = step(to_ms(x), to_ms(y))
    np.testing.assert_allclose(to_np(value), got, rtol=1e-7)
    np.testing.assert_allclose(to_np(dw), ref.sigmoid_focal_grads(q[0], q[1], q[2], reduction="mean")[2], rtol=1e-5)


def test_cell_defaults_are_torchvisions_with_mean():
    loss = ms_bce.nn.SigmoidFocalLoss()
    assert (loss.alpha, loss.gamma, loss.reduction) == (0.25, 2.0, "mean")


def test_parameters_reach_the_kernel_as_float32():
    t = _kernels.params_tensor("sigmoid_focal", 0.25, 2.0)
    assert t.dtype == ms.float32 and to_np(t).tolist() == [0.25, 2.0, 0.0]  # then the label smoothing


def test_no_ascend_kernel_yet(monkeypatch):
    monkeypatch.setattr(_kernels, "device_target", lambda: "Ascend")
    with pytest.raises(RuntimeError, match=re.escape("For 'SigmoidFocalLoss', ms_bce has no Ascend kernel yet; "
                                                     "use the CPU or GPU device target.")):
        _kernels.LossForward("sigmoid_focal", "mean", False, False)


# ---------------------------------------------------------------- errors ---

GOOD = {"x": to_ms(np.zeros((2, 3))), "y": to_ms(np.zeros((2, 3))), "alpha": 0.25, "gamma": 2.0, "reduction": "mean"}


def invoke(api, **bad):
    a = {**GOOD, **bad}
    loss = focal(api, a["alpha"], a["gamma"], a["reduction"])

    def f():
        return loss(a["x"], a["y"])
    return call(f)


def raises(exc, text):
    return pytest.raises(exc, match=re.escape(text))


@pytest.mark.parametrize("api", APIS)
class TestErrors:
    def op(self, api):
        return "sigmoid_focal_loss" if api.startswith("ops.") else "SigmoidFocalLoss"

    def test_alpha_not_a_float(self, mode, api):
        with raises(TypeError, f"For '{self.op(api)}', 'alpha' must be a float, but got bool."):
            invoke(api, alpha=True)
        with raises(TypeError, f"For '{self.op(api)}', 'alpha' must be a float, but got str."):
            invoke(api, alpha="0.25")

    def test_alpha_not_finite(self, mode, api):
        with raises(ValueError, f"For '{self.op(api)}', 'alpha' must be a finite float, but got nan."):
            invoke(api, alpha=float("nan"))

    def test_gamma_negative_or_not_finite(self, mode, api):
        with raises(ValueError, f"For '{self.op(api)}', 'gamma' must be a finite float >= 0, but got -0.5."):
            invoke(api, gamma=-0.5)
        with raises(ValueError, f"For '{self.op(api)}', 'gamma' must be a finite float >= 0, but got inf."):
            invoke(api, gamma=float("inf"))

    def test_gamma_not_a_float(self, mode, api):
        with raises(TypeError, f"For '{self.op(api)}', 'gamma' must be a float, but got NoneType."):
            invoke(api, gamma=None)

    def test_reduction(self, mode, api):
        with raises(ValueError, f"For '{self.op(api)}', 'reduction' must be one of ['none', 'mean', 'sum', "
                                "'weighted_mean'], but got 'max'."):
            invoke(api, reduction="max")

    def test_inputs_not_a_tensor(self, mode, api):
        with raises(TypeError, f"For '{self.op(api)}', 'inputs' must be a Tensor, but got float."):
            invoke(api, x=1.5)

    def test_targets_shape(self, mode, api):
        with raises(ValueError, f"For '{self.op(api)}', the shape of 'targets' must be the same as the shape of "
                                "'inputs' (2, 3), but got (3, 2)."):
            invoke(api, y=to_ms(np.zeros((3, 2))))

    def test_targets_dtype(self, mode, api):
        with raises(TypeError, f"For '{self.op(api)}', the dtype of 'targets' must be one of [float16, float32, "
                               "bfloat16], but got int32."):
            invoke(api, y=Tensor(np.zeros((2, 3), np.int32)))


# ----------------------------------------------------------- both paths ---

@pytest.fixture
def simd_path():
    yield _kernels.set_simd_path
    _kernels.set_simd_path("auto")


@pytest.mark.parametrize("gamma", [0.5, 1.5, 2.0, 3.0])
def test_vector_and_portable_paths_give_the_reference(simd_path, gamma):
    """The AVX2 path (double lanes: q^gamma by squaring for a whole gamma, else exp(gamma log q)) and the
    portable path (the GPU's maths) against the reference, over every logit range and soft and hard
    labels, with the specials the vector path hands to the portable one; a whole gamma gives the same bits."""
    rng = np.random.default_rng(7)
    n = 5000
    x = rng.normal(scale=8.0, size=n)
    x[:12] = [np.inf, -np.inf, np.nan, 0.0, 1e4, -1e4, 100.0, -100.0, 88.0, -88.0, 1e-30, -1e-30]
    y = rng.uniform(0.0, 1.0, n)
    y[::3], y[1::3] = 1.0, 0.0
    w, p = rng.uniform(0.2, 2.0, n), rng.uniform(0.2, 3.0, n)
    t = [to_ms(v) for v in (x, y, w, p)]
    q = [to_np(v) for v in t]

    def loss(a, b, c, d):
        return ms_bce.ops.sigmoid_focal_loss(a, b, 0.25, gamma, "sum", weight=c, pos_weight=d)

    def none(a, b, c, d):
        return ms_bce.ops.sigmoid_focal_loss(a, b, 0.25, gamma, weight=c, pos_weight=d)

    scales = ref.sigmoid_focal_scales(*q, 0.25, gamma, np.ones(n))
    want = ref.sigmoid_focal(*q, alpha=0.25, gamma=gamma)
    want_g = ref.sigmoid_focal_grads(*q, 0.25, gamma, "sum")
    got = {}
    for path in ("avx2", "scalar"):
        simd_path(path)
        got[path] = [to_np(none(*t))] + [to_np(g) for g in ms.grad(loss, grad_position=(0, 1, 2, 3))(*t)]
        check_close(got[path][0], want, ms.float32, elementwise_tol(scales[0], ms.float32), f"{path} loss")
        for k, name in enumerate(("dx", "dy", "dw", "dp")):
            check_close(got[path][1 + k], want_g[k], ms.float32, elementwise_tol(scales[1 + k], ms.float32),
                        f"{path} {name}")
    if gamma == int(gamma):
        for a, b in zip(got["avx2"], got["scalar"]):
            np.testing.assert_array_equal(a, b)
