"""reduction='weighted_mean' on every loss name with a reduction: sum(L) / sum(W),
W the weight broadcast to the input's shape (1 when absent, where it is 'mean'
bit for bit).  Values and the gradients of every operand, the weight's with the
quotient rule's term, against float64 (tests/reference.py) and central finite
differences; both modes; dynamic shapes; all-zero weights; errors."""
import mindspore as ms
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mindspore import Tensor
from mindspore import nn as msnn

from ms_bce import mint, nn, ops
from tests import reference as ref
from tests.conftest import call, grads, to_np


def operands(shape=(6, 7), wshape=(7,), seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 4).astype(np.float32)
    y = rng.random(shape).astype(np.float32)
    w = rng.uniform(0.1, 3.0, wshape).astype(np.float32)
    p = rng.uniform(0.5, 3.0, shape[-1:]).astype(np.float32)
    return x, y, w, p


def probabilities(x):
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32)


class Functional(msnn.Cell):
    """A functional name with a fixed reduction, in the current mode."""

    def __init__(self, fn, reduction):
        super().__init__()
        self.fn, self.reduction = fn, reduction

    def construct(self, *args):
        return self.fn(*args, reduction=self.reduction)


class Focal(msnn.Cell):
    def __init__(self, reduction):
        super().__init__()
        self.reduction = reduction

    def construct(self, x, y, w):
        return ops.sigmoid_focal_loss(x, y, 0.25, 2.0, self.reduction, weight=w)


class WithWeight(msnn.Cell):
    """A loss cell constructed with its weight (nn, mint), called (x, y)."""

    def __init__(self, make, w, reduction):
        super().__init__()
        self.loss = make(Tensor(w), reduction)

    def construct(self, x, y):
        return self.loss(x, y)


def _logit_args(x, y, w, p):
    return Tensor(x), Tensor(y), Tensor(w)


def _prob_args(x, y, w, p):
    return Tensor(probabilities(x)), Tensor(y), Tensor(w)


def _elementwise_logits(x, y, w):
    return ref.bce_with_logits(x, y, w, None, "none")


def _elementwise_probs(x, y, w):
    return ref.bce(probabilities(x), y, w, "none")


def _elementwise_focal(x, y, w):
    return ref.sigmoid_focal(x, y, w, None, 0.25, 2.0, "none")


def _mint_bce_with_logits(w, r):
    return mint.nn.BCEWithLogitsLoss(weight=w, reduction=r)


def _mint_bce(w, r):
    return mint.nn.BCELoss(weight=w, reduction=r)


def _nn_bce(w, r):
    return nn.BCELoss(weight=w, reduction=r)


def _nn_bce_with_logits(w, r):
    return nn.BCEWithLogitsLoss(r, weight=w)


def _nn_focal(w, r):
    return nn.SigmoidFocalLoss(reduction=r, weight=w)


def _nn_multilabel(w, r):
    return nn.MultiLabelSoftMarginLoss(weight=w, reduction=r)


# name: (make(reduction) -> a Cell called with the args, args(x, y, w, p), float64 elementwise loss (x, y, w))
CASES = {
    "ops.binary_cross_entropy_with_logits":
        (lambda r: Functional(ops.binary_cross_entropy_with_logits, r), _logit_args, _elementwise_logits),
    "ops.binary_cross_entropy": (lambda r: Functional(ops.binary_cross_entropy, r), _prob_args, _elementwise_probs),
    "ops.multilabel_soft_margin_loss":
        (lambda r: Functional(ops.multilabel_soft_margin_loss, r), _logit_args, _elementwise_logits),
    "ops.sigmoid_focal_loss": (Focal, _logit_args, _elementwise_focal),
    "mint.nn.functional.binary_cross_entropy_with_logits":
        (lambda r: Functional(mint.nn.functional.binary_cross_entropy_with_logits, r), _logit_args,
         _elementwise_logits),
    "mint.nn.functional.binary_cross_entropy":
        (lambda r: Functional(mint.nn.functional.binary_cross_entropy, r), _prob_args, _elementwise_probs),
}
CELL_CASES = {
    "nn.BCEWithLogitsLoss": (_nn_bce_with_logits, _elementwise_logits, False),
    "nn.BCELoss": (_nn_bce, _elementwise_probs, True),
    "nn.SigmoidFocalLoss": (_nn_focal, _elementwise_focal, False),
    "nn.MultiLabelSoftMarginLoss": (_nn_multilabel, _elementwise_logits, False),
    "mint.nn.BCEWithLogitsLoss": (_mint_bce_with_logits, _elementwise_logits, False),
    "mint.nn.BCELoss": (_mint_bce, _elementwise_probs, True),
}


def weighted_mean64(elementwise, w, shape):
    """sum(L) / sum(W) in float64, W broadcast to shape."""
    return np.sum(elementwise) / np.sum(np.broadcast_to(w.astype(np.float64), shape))


@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_names(name, mode):
    make, args, elementwise = CASES[name]
    x, y, w, p = operands()
    a = args(x, y, w, p)
    got = to_np(call(make("weighted_mean"), *a))
    want = weighted_mean64(elementwise(x, y, w), w, x.shape)
    np.testing.assert_allclose(got, want, rtol=3e-7)
    # without a weight: the 'mean', bit for bit
    np.testing.assert_array_equal(to_np(call(make("weighted_mean"), *a[:2], None)),
                                  to_np(call(make("mean"), *a[:2], None)))


@pytest.mark.parametrize("name", sorted(CELL_CASES))
def test_cells(name, mode):
    make, elementwise, probs = CELL_CASES[name]
    x, y, w, _ = operands(seed=1)
    xin = probabilities(x) if probs else x
    got = to_np(call(WithWeight(make, w, "weighted_mean"), Tensor(xin), Tensor(y)))
    want = weighted_mean64(elementwise(x, y, w), w, x.shape)
    np.testing.assert_allclose(got, want, rtol=3e-7)


@pytest.mark.parametrize("wshape", [(7,), (6, 1), (6, 7), (), (1, 7)])
def test_gradients_of_every_operand(wshape, mode):
    """dX, dY, dP: the 'sum' gradients divided by D = sum(W); dW: that minus S / D^2
    times the number of elements each weight value is broadcast to (the quotient rule)."""
    x, y, w, p = operands(wshape=wshape, seed=2)
    xd, yd, wd, pd = (v.astype(np.float64) for v in (x, y, w, p))
    shape = np.broadcast_shapes(x.shape, wshape)
    d = np.sum(np.broadcast_to(wd, shape))
    s = ref.bce_with_logits(xd, yd, wd, pd, "sum")

    def loss(a, b, c, e):
        return ops.binary_cross_entropy_with_logits(a, b, c, e, reduction="weighted_mean")

    args = [Tensor(v) for v in (x, y, w, p)]
    np.testing.assert_allclose(to_np(call(loss, *args)), s / d, rtol=3e-7)
    g = grads(loss, (0, 1, 2, 3), *args)
    dx, dy, dw_sum, dp = ref.bce_with_logits_grads(xd, yd, wd, pd, "sum", 1.0 / d)
    quotient = s / d ** 2 * (np.prod(shape) / w.size)
    dw = dw_sum - quotient
    # dW is a difference of two terms (for a 0-d weight, which cancels out of the loss, they
    # cancel exactly): within float32 rounding of their size
    tol = {2: 1e-6 * (np.abs(dw_sum) + quotient)}
    for k, (gk, wk) in enumerate(zip(g, (dx, dy, dw, dp))):
        assert to_np(gk).shape == np.shape(wk)
        np.testing.assert_allclose(to_np(gk), wk, rtol=2e-5, atol=np.max(tol.get(k, 1e-9)), err_msg=f"gradient {k}")


def test_weight_gradient_by_finite_differences():
    """dW of the weighted mean against central differences of the float64 reference."""
    x, y, w, _ = operands(shape=(5, 4), wshape=(4,), seed=3)
    g = ms.grad(lambda a, b, c: ops.binary_cross_entropy_with_logits(a, b, c, reduction="weighted_mean"),
                grad_position=2)(Tensor(x), Tensor(y), Tensor(w))
    xd, yd, wd = (v.astype(np.float64) for v in (x, y, w))

    def f(ww):
        return weighted_mean64(ref.bce_with_logits(xd, yd, ww, None, "none"), ww, x.shape)

    h = 1e-6
    fd = np.array([(f(wd + h * e) - f(wd - h * e)) / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(to_np(g), fd, rtol=1e-4, atol=1e-8)


def test_all_zero_weights_give_nan(mode):
    """0 / 0, as the mean of an empty tensor; an empty input too."""
    x, y, _, _ = operands()
    zero = np.zeros(7, np.float32)
    out = call(Functional(ops.binary_cross_entropy_with_logits, "weighted_mean"), Tensor(x), Tensor(y), Tensor(zero))
    assert np.isnan(to_np(out))
    e = np.zeros((0, 7), np.float32)
    out = call(Functional(ops.binary_cross_entropy_with_logits, "weighted_mean"), Tensor(e), Tensor(e), Tensor(zero))
    assert np.isnan(to_np(out))


def test_float16_weights_summed_without_overflow(mode):
    """D is summed in float32 or wider: 4096 float16 weights of 60000 sum past float16's range."""
    x = np.zeros((4096,), np.float16)
    y = np.zeros((4096,), np.float16)
    w = np.full((4096,), 60000, np.float16)
    out = call(Functional(ops.binary_cross_entropy_with_logits, "weighted_mean"), Tensor(x), Tensor(y), Tensor(w))
    np.testing.assert_allclose(to_np(out).astype(np.float64), np.log(2), rtol=1e-3)


def test_multilabel_weighted_mean_is_over_the_elements(mode):
    """sum_ij W_j L_ij / sum_ij W_j: the weighted mean of the element terms (with no weight,
    the 'mean')."""
    x, y, w, _ = operands(seed=4)
    got = to_np(call(Functional(ops.multilabel_soft_margin_loss, "weighted_mean"), Tensor(x), Tensor(y), Tensor(w)))
    want = weighted_mean64(ref.bce_with_logits(x, y, w, None, "none"), w, x.shape)
    np.testing.assert_allclose(got, want, rtol=3e-7)


def test_dynamic_shape_in_graph_mode():
    """One compiled graph serves every batch size."""
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        net = Functional(ops.binary_cross_entropy_with_logits, "weighted_mean")
        dyn = Tensor(shape=[None, 7], dtype=ms.float32)
        net.set_inputs(dyn, dyn, Tensor(shape=[None, 7], dtype=ms.float32))
        for rows in (3, 5):
            x, y, w, _ = operands(shape=(rows, 7), wshape=(rows, 7), seed=rows)
            got = to_np(net(Tensor(x), Tensor(y), Tensor(w)))
            np.testing.assert_allclose(got, weighted_mean64(ref.bce_with_logits(x, y, w, None, "none"), w, x.shape),
                                       rtol=3e-7)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)


def test_unknown_reduction_names_the_new_value(mode):
    x, y, _, _ = operands()
    with pytest.raises(ValueError, match=r"For 'binary_cross_entropy_with_logits', 'reduction' must be one of "
                                         r"\['none', 'mean', 'sum', 'weighted_mean'\], but got 'weighted'"):
        to_np(call(Functional(ops.binary_cross_entropy_with_logits, "weighted"), Tensor(x), Tensor(y)))
    with pytest.raises(ValueError, match=r"For 'BCELoss', 'reduction' must be one of "
                                         r"\['none', 'mean', 'sum', 'weighted_mean'\], but got 'weighted'"):
        nn.BCELoss(reduction="weighted")


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_shapes_and_weights(data):
    """Random shapes (zero-size ones too), every broadcast of the weight, weights with zeros
    (all of them, sometimes), both logits names: the float64 sum(L) / sum(W) within float32
    rounding of sum|L| / sum(W), NaN exactly where sum(W) = 0; dX = the float64 one."""
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), label="shape")
    wshape = data.draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=len(shape), min_side=0), label="wshape")
    wshape = tuple(1 if shape[len(shape) - len(wshape) + i] != d else d for i, d in enumerate(wshape))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    x = (rng.normal(size=shape) * 10).astype(np.float32)
    y = rng.random(shape).astype(np.float32)
    w = (rng.uniform(0, 3, wshape) * (rng.random(wshape) < data.draw(st.sampled_from([0.0, 0.5, 1.0])))
         ).astype(np.float32)
    fn = data.draw(st.sampled_from([ops.binary_cross_entropy_with_logits,
                                    mint.nn.functional.binary_cross_entropy_with_logits]))
    got = ms.value_and_grad(lambda a, b, c: fn(a, b, c, reduction="weighted_mean"), grad_position=0)
    value, dx = got(Tensor(x), Tensor(y), Tensor(w))
    elementwise = ref.bce_with_logits(x, y, w, None, "none")
    d = np.sum(np.broadcast_to(w.astype(np.float64), shape))
    if d == 0:
        assert np.isnan(to_np(value))
        return
    np.testing.assert_allclose(to_np(value), np.sum(elementwise) / d, rtol=0,
                               atol=4e-7 * np.sum(np.abs(elementwise)) / d + 1e-45)
    want_dx = ref.bce_with_logits_grads(x, y, w, None, "sum", 1.0 / d)[0]
    np.testing.assert_allclose(to_np(dx), want_dx, rtol=2e-6, atol=1e-30)
