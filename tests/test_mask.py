"""mask= on every loss name: a bool (or 0/1 float) Tensor broadcastable to the
input; where it is false the element contributes exactly 0 to the loss and to
every gradient whatever its logit, target, weight or incoming gradient holds
(NaN and inf included), 'mean' divides by the number of kept elements (NaN
when none is kept) and 'weighted_mean' by sum(W M).  The kernels read the
mask in place (the *_m entry points).  Checked against the float64
references of tests/reference.py and against the plain call, both modes."""
import mindspore as ms
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mindspore import Tensor
from mindspore import nn as msnn

from ms_bce import _kernels, mint, nn, ops
from tests import reference as ref
from tests.conftest import call, grads, to_np


def operands(shape=(6, 7), seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 4).astype(np.float32)
    y = rng.random(shape).astype(np.float32)
    w = rng.uniform(0.5, 2.0, shape[-1:]).astype(np.float32)
    p = rng.uniform(0.5, 3.0, shape[-1:]).astype(np.float32)
    m = rng.random(shape) < 0.6
    return x, y, w, p, m


def probabilities(x):
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32)


class Functional(msnn.Cell):
    """A functional name with a reduction and a mask (None: without the keyword), in the current mode."""

    def __init__(self, fn, reduction, with_mask):
        super().__init__()
        self.fn, self.reduction, self.with_mask = fn, reduction, with_mask

    def construct(self, x, y, m):
        if self.with_mask:
            return self.fn(x, y, reduction=self.reduction, mask=m)
        return self.fn(x, y, reduction=self.reduction)


class CellCall(msnn.Cell):
    """A loss cell called (x, y) or (x, y, mask=m)."""

    def __init__(self, loss, with_mask):
        super().__init__()
        self.loss, self.with_mask = loss, with_mask

    def construct(self, x, y, m):
        if self.with_mask:
            return self.loss(x, y, mask=m)
        return self.loss(x, y)


class OpCall(msnn.Cell):
    """ops.BCEWithLogitsLoss / BinaryCrossEntropy: (x, y, None[, None], mask)."""

    def __init__(self, op, with_mask, n_none):
        super().__init__()
        self.op, self.with_mask, self.n_none = op, with_mask, n_none

    def construct(self, x, y, m):
        if self.n_none == 2:
            return self.op(x, y, None, None, m) if self.with_mask else self.op(x, y, None, None)
        return self.op(x, y, None, m) if self.with_mask else self.op(x, y, None)


def _fn(fn, reduction, probs=False):
    return lambda with_mask: Functional(fn, reduction, with_mask), probs


def _cell(make, probs=False):
    return lambda with_mask: CellCall(make(), with_mask), probs


def _op(make, n_none, probs=False):
    return lambda with_mask: OpCall(make(), with_mask, n_none), probs


def _focal_fn(x, y, reduction="none", mask=None):
    return ops.sigmoid_focal_loss(x, y, 0.25, 2.0, reduction, mask=mask)


def _nn_bce():
    return nn.BCELoss(reduction="none")


def _mint_bce():
    return mint.nn.BCELoss(reduction="none")


def _mint_logits():
    return mint.nn.BCEWithLogitsLoss(reduction="none")


def _nn_logits():
    return nn.BCEWithLogitsLoss("none")


def _ops_logits():
    return ops.BCEWithLogitsLoss("none")


def _ops_bce():
    return ops.BinaryCrossEntropy("none")


def _nn_focal():
    return nn.SigmoidFocalLoss(reduction="none")


def _nn_multilabel():
    return nn.MultiLabelSoftMarginLoss(reduction="sum")


def _sigmoid_ce():
    return ops.SigmoidCrossEntropyWithLogits()


# name: (make(with_mask) -> Cell(x, y, m), whether x is a probability); 'none' where the name has it
CASES = {
    "ops.binary_cross_entropy_with_logits": _fn(ops.binary_cross_entropy_with_logits, "none"),
    "ops.BCEWithLogitsLoss": _op(_ops_logits, 2),
    "ops.binary_cross_entropy": _fn(ops.binary_cross_entropy, "none", True),
    "ops.BinaryCrossEntropy": _op(_ops_bce, 1, True),
    "ops.SigmoidCrossEntropyWithLogits": _cell(_sigmoid_ce),
    "ops.multilabel_soft_margin_loss": _fn(ops.multilabel_soft_margin_loss, "none"),
    "ops.sigmoid_focal_loss": _fn(_focal_fn, "none"),
    "nn.BCEWithLogitsLoss": _cell(_nn_logits),
    "nn.BCELoss": _cell(_nn_bce, True),
    "nn.SigmoidFocalLoss": _cell(_nn_focal),
    "nn.MultiLabelSoftMarginLoss": _cell(_nn_multilabel),
    "mint.nn.functional.binary_cross_entropy_with_logits":
        _fn(mint.nn.functional.binary_cross_entropy_with_logits, "none"),
    "mint.nn.functional.binary_cross_entropy": _fn(mint.nn.functional.binary_cross_entropy, "none", True),
    "mint.nn.BCEWithLogitsLoss": _cell(_mint_logits),
    "mint.nn.BCELoss": _cell(_mint_bce, True),
}
ELEMENTWISE = sorted(n for n in CASES if "multilabel" not in n.lower())


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_name_zeroes_the_dropped_elements(name, mode):
    """'none': the plain call's values where kept (bit for bit), 0 where dropped, whatever
    the dropped elements hold; the gradients of x and y likewise."""
    make, probs = CASES[name]
    x, y, _, _, m = operands()
    if probs:
        x = probabilities(x)
    plain = to_np(call(make(False), Tensor(x), Tensor(y), Tensor(m)))
    xb, yb = x.copy(), y.copy()
    xb[~m] = np.nan if not probs else 7.0  # (a probability outside [0, 1]: not checked where dropped)
    yb[~m] = np.inf
    got = to_np(call(make(True), Tensor(xb), Tensor(yb), Tensor(m)))
    np.testing.assert_array_equal(got, np.where(m, plain, 0))
    g = grads(make(True), (0, 1), Tensor(xb), Tensor(yb), Tensor(m))
    g_plain = grads(make(False), (0, 1), Tensor(x), Tensor(y), Tensor(m))
    for k in range(2):
        np.testing.assert_array_equal(to_np(g[k]), np.where(m, to_np(g_plain[k]), 0), err_msg=f"gradient {k}")


@pytest.mark.parametrize("name", ["ops.multilabel_soft_margin_loss", "nn.MultiLabelSoftMarginLoss"])
def test_multilabel_rows_sum_the_kept_terms(name, mode):
    """Each row: the sum of its kept element terms over C (the dropped ones count 0)."""
    make, _ = CASES[name]
    x, y, _, _, m = operands(seed=1)
    got = to_np(call(make(True), Tensor(x), Tensor(y), Tensor(m)))
    terms = np.where(m, ref.bce_with_logits(x, y, None, None, "none"), 0)
    want = terms.mean(-1) if "ops." in name else terms.mean(-1).sum()
    np.testing.assert_allclose(got, want, rtol=2e-6)


@pytest.mark.parametrize("mshape", [(6, 7), (7,), (6, 1), (), (1, 7)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "weighted_mean"])
def test_values_and_gradients_against_float64(mshape, reduction, mode):
    """BCEWithLogitsLoss with weight and pos_weight and a broadcast mask: the float64 loss
    over the kept elements, 'mean' over their number, 'weighted_mean' over sum(W M); the
    gradients of all four operands (the mask has none)."""
    x, y, w, p, _ = operands(seed=2)
    m = np.random.default_rng(3).random(mshape) < 0.5
    if not m.any():
        m.flat[0] = True
    mb = np.broadcast_to(m, x.shape)
    xd, yd, wd, pd = (v.astype(np.float64) for v in (x, y, w, p))
    keep = mb.astype(np.float64)
    elementwise = ref.bce_with_logits(xd, yd, wd, pd, "none") * keep
    denominator = {"none": 1.0, "sum": 1.0, "mean": keep.sum(),
                   "weighted_mean": (np.broadcast_to(wd, x.shape) * keep).sum()}[reduction]
    want = elementwise if reduction == "none" else elementwise.sum() / denominator

    def loss(a, b, c, e, k):
        return ops.binary_cross_entropy_with_logits(a, b, c, e, reduction=reduction, mask=k)

    args = [Tensor(v) for v in (x, y, w, p)] + [Tensor(m)]
    np.testing.assert_allclose(to_np(call(loss, *args)), want, rtol=3e-7, atol=1e-30)
    dout = np.float64(1.0) if reduction == "none" else 1.0 / denominator
    dx, dy, dw, dp = ref.bce_with_logits_grads(xd, yd, wd, pd, "none", np.ones(x.shape) * dout * keep)
    g = grads(loss, (0, 1, 2, 3), *args)
    want_g = [dx, dy, dw, dp]
    if reduction == "weighted_mean":  # the quotient rule's term: d/dW of sum(W M)
        want_g[2] = dw - elementwise.sum() / denominator ** 2 * ref.reduce_to_shape(keep, w.shape)
    for k, (gk, wk) in enumerate(zip(g, want_g)):
        np.testing.assert_allclose(to_np(gk), wk, rtol=2e-5, atol=1e-7 * np.max(np.abs(wk)), err_msg=f"gradient {k}")


def test_nan_and_inf_under_the_mask_change_nothing(mode):
    """Every operand NaN or inf where dropped (the weight and pos_weight full-size): the same
    loss and gradients as with finite values there, and exact zeros in the dropped gradients."""
    x, y, _, _, m = operands(seed=4)
    rng = np.random.default_rng(5)
    w = rng.uniform(0.5, 2, x.shape).astype(np.float32)
    p = rng.uniform(0.5, 2, x.shape).astype(np.float32)
    bad = [v.copy() for v in (x, y, w, p)]
    for k, v in enumerate(bad):
        v[~m] = (np.nan, np.inf, -np.inf, np.nan)[k]

    def loss(a, b, c, e, k):
        return ops.binary_cross_entropy_with_logits(a, b, c, e, reduction="sum", mask=k)

    clean = [Tensor(v) for v in (x, y, w, p)] + [Tensor(m)]
    dirty = [Tensor(v) for v in bad] + [Tensor(m)]
    np.testing.assert_array_equal(to_np(call(loss, *dirty)), to_np(call(loss, *clean)))
    for k, (gd, gc) in enumerate(zip(grads(loss, (0, 1, 2, 3), *dirty), grads(loss, (0, 1, 2, 3), *clean))):
        np.testing.assert_array_equal(to_np(gd), to_np(gc), err_msg=f"gradient {k}")
        assert not np.any(to_np(gd)[~m]), k


def test_an_infinite_incoming_gradient_where_dropped():
    """The fused backward kernel itself, 'none': dout = inf at the dropped elements gives 0 there."""
    x, y, _, _, m = operands(seed=6)
    dout = np.where(m, 1.5, np.inf).astype(np.float32)
    t = _kernels.params_tensor("bce_with_logits")
    for device_mask in (True,):
        bwd = _kernels.LossBackward("bce_with_logits", "none", False, False, "CPU", has_mask=device_mask)
        dx, dy = bwd(Tensor(x), Tensor(y), Tensor(m), t, Tensor(dout))
        want = ref.bce_with_logits_grads(x, y, None, None, "none", np.where(m, 1.5, 0.0))
        np.testing.assert_allclose(to_np(dx), want[0], rtol=1e-6, atol=1e-30)
        np.testing.assert_allclose(to_np(dy), want[1], rtol=1e-6, atol=1e-30)
        assert not np.any(to_np(dx)[~m]) and not np.any(to_np(dy)[~m])


def test_nothing_kept_gives_nan_for_the_means(mode):
    x, y, _, _, _ = operands()
    none = np.zeros(x.shape, bool)
    for reduction, want in (("mean", np.nan), ("weighted_mean", np.nan), ("sum", 0.0)):
        out = to_np(call(Functional(ops.binary_cross_entropy_with_logits, reduction, True),
                         Tensor(x), Tensor(y), Tensor(none)))
        np.testing.assert_equal(out, np.float32(want), err_msg=reduction)


def test_a_float_mask_keeps_its_nonzero_elements(mode):
    x, y, _, _, m = operands(seed=7)
    fn = Functional(ops.binary_cross_entropy_with_logits, "mean", True)
    as_bool = to_np(call(fn, Tensor(x), Tensor(y), Tensor(m)))
    for dtype in (np.float32, np.float16):
        np.testing.assert_array_equal(to_np(call(fn, Tensor(x), Tensor(y), Tensor(m.astype(dtype)))), as_bool)


def test_probabilities_outside_the_unit_interval_only_where_kept_raise(mode):
    x, y, _, _, m = operands(seed=8)
    p = probabilities(x)
    p[~m] = -3.0
    fn = Functional(ops.binary_cross_entropy, "mean", True)
    got = to_np(call(fn, Tensor(p), Tensor(y), Tensor(m)))
    want = np.sum(np.where(m, ref.bce(np.where(m, p, 0.5), y, None, "none"), 0)) / m.sum()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    k = int(np.flatnonzero(m)[0])
    p.flat[k] = 1.5
    with pytest.raises(RuntimeError, match=rf"every element of 'logits' must be in \[0, 1\], but got 1.5 at index {k}"):
        to_np(call(fn, Tensor(p), Tensor(y), Tensor(m)))


def test_focal_and_smoothing_with_a_mask(mode):
    """The options together: the focal loss at smoothed targets over the kept elements."""
    x, y, _, _, m = operands(seed=9)
    def loss(a, b, k):
        return ops.sigmoid_focal_loss(a, b, 0.25, 2.0, "mean", label_smoothing=0.1, mask=k)

    got = to_np(call(loss, Tensor(x), Tensor(y), Tensor(m)))
    ys = (y.astype(np.float64) * 0.9 + 0.05).astype(np.float32)
    want = np.sum(np.where(m, ref.sigmoid_focal(x, ys, None, None, 0.25, 2.0, "none"), 0)) / m.sum()
    np.testing.assert_allclose(got, want, rtol=2e-6)


def test_training_step_in_graph_mode_with_dynamic_shapes():
    """A Cell with a per-batch mask: one compiled graph, the gradient of the logits right."""
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        loss = nn.BCEWithLogitsLoss()
        net = ms.value_and_grad(CellCall(loss, True), grad_position=0)

        class Step(msnn.Cell):
            def __init__(self):
                super().__init__()
                self.net = net

            def construct(self, x, y, m):
                return self.net(x, y, m)

        step = Step()
        step.set_inputs(Tensor(shape=[None, 7], dtype=ms.float32), Tensor(shape=[None, 7], dtype=ms.float32),
                        Tensor(shape=[None, 7], dtype=ms.bool_))
        for rows in (3, 5):
            x, y, _, _, m = operands(shape=(rows, 7), seed=rows)
            value, dx = step(Tensor(x), Tensor(y), Tensor(m))
            keep = m.astype(np.float64)
            np.testing.assert_allclose(to_np(value), np.sum(ref.bce_with_logits(x, y, None, None, "none") * keep)
                                       / keep.sum(), rtol=3e-7)
            want = ref.bce_with_logits_grads(x, y, None, None, "none", keep / keep.sum())[0]
            np.testing.assert_allclose(to_np(dx), want, rtol=2e-6, atol=1e-12)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.mark.parametrize("mask,error,text", [
    (1, TypeError, "For 'binary_cross_entropy_with_logits', 'mask' must be a Tensor, but got int"),
    (np.ones((6, 7), np.int32), TypeError, "For 'binary_cross_entropy_with_logits', the dtype of 'mask' must be"),
    (np.ones((7, 6), bool), ValueError, r"For 'binary_cross_entropy_with_logits', the shape of 'mask' \(7, 6\) can "
                                        r"not broadcast to the shape of 'input' \(6, 7\)"),
])
def test_errors_at_the_call(mask, error, text, mode):
    x, y, _, _, _ = operands()
    m = Tensor(mask) if isinstance(mask, np.ndarray) else mask

    def loss(a, b):
        return ops.binary_cross_entropy_with_logits(a, b, mask=m)

    with pytest.raises(error, match=text):
        to_np(call(loss, Tensor(x), Tensor(y)))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_shapes_masks_and_values(data):
    """Random shapes (zero-size ones too), every broadcast of the mask, NaN/inf and huge values
    where dropped, every reduction, both logits names and the focal loss: the float64 result
    over the kept elements (NaN for a mean of none) and dX, 0 wherever dropped."""
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), label="shape")
    mshape = data.draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=len(shape), min_side=0), label="mshape")
    mshape = tuple(1 if shape[len(shape) - len(mshape) + i] != d else d for i, d in enumerate(mshape))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    m = rng.random(mshape) < data.draw(st.sampled_from([0.0, 0.5, 1.0]), label="kept")
    keep = np.broadcast_to(m, shape)
    x = np.array(rng.normal(size=shape) * 10, np.float32)  # (np.array: a 0-d array, not a scalar)
    y = np.array(rng.random(shape), np.float32)
    x[~keep] = rng.choice(np.float32([np.nan, np.inf, -np.inf, 3e38]), int((~keep).sum()))
    y[~keep] = np.nan
    reduction = data.draw(st.sampled_from(["none", "mean", "sum"]), label="reduction")
    name = data.draw(st.sampled_from(["ops", "mint", "focal"]), label="name")
    fn = {"ops": ops.binary_cross_entropy_with_logits, "mint": mint.nn.functional.binary_cross_entropy_with_logits,
          "focal": _focal_fn}[name]
    value, dx = ms.value_and_grad(lambda a, b, k: fn(a, b, reduction=reduction, mask=k),
                                  grad_position=0)(Tensor(x), Tensor(y), Tensor(m))
    xs, ys = np.where(keep, x, 0.5), np.where(keep, y, 0.5)
    if name == "focal":
        elementwise = ref.sigmoid_focal(xs, ys, None, None, 0.25, 2.0, "none")
        dx_all = ref.sigmoid_focal_grads(xs, ys, None, None, 0.25, 2.0, "none", np.ones(shape))[0]
    else:
        elementwise = ref.bce_with_logits(xs, ys, None, None, "none")
        dx_all = ref.bce_with_logits_grads(xs, ys, None, None, "none", np.ones(shape))[0]
    elementwise = np.where(keep, elementwise, 0.0)
    kept = keep.sum()
    scale = {"none": 1.0, "sum": 1.0, "mean": 1.0 / kept if kept else np.nan}[reduction]
    want = elementwise if reduction == "none" else np.sum(elementwise) * scale
    np.testing.assert_allclose(to_np(value), want, rtol=2e-6, atol=1e-30)
    want_dx = np.where(keep, dx_all * (1.0 if reduction != "mean" else scale), 0.0)
    if reduction == "mean" and not kept:
        want_dx = np.zeros(shape)  # nothing kept: every dropped gradient 0
    np.testing.assert_allclose(to_np(dx), want_dx, rtol=2e-5, atol=1e-30)
    assert not np.any(to_np(dx)[~keep])
