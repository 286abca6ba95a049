"""label_smoothing on every loss name: the targets become Y (1 - eps) + eps / 2
(Keras' rule) inside the kernels, rounded once to the operands' dtype, and the
target's gradient is the plain one there times 1 - eps.  Checked against the
float64 references of tests/reference.py at the smoothed target, against the
plain loss called with the smoothed target (the same bits), both modes."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor
from mindspore import nn as msnn

from ms_bce import mint, nn, ops
from tests import reference as ref
from tests.conftest import call, grads, to_np

EPS = 0.1


def operands(shape=(6, 7), seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 4).astype(np.float32)
    y = (rng.random(shape) > 0.5).astype(np.float32)
    w = rng.uniform(0.5, 2.0, shape[-1:]).astype(np.float32)
    p = rng.uniform(0.5, 3.0, shape[-1:]).astype(np.float32)
    return x, y, w, p


def smoothed(y, eps, dtype=np.float32):
    return (y.astype(np.float64) * (1 - eps) + eps / 2).astype(dtype)


def probabilities(x):
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32)


class Functional(msnn.Cell):
    """A functional name in the current mode (a Cell: graph mode compiles it)."""

    def __init__(self, fn, reduction, eps):
        super().__init__()
        self.fn, self.reduction, self.eps = fn, reduction, eps

    def construct(self, *args):
        if self.eps is None:
            return self.fn(*args, reduction=self.reduction)
        return self.fn(*args, reduction=self.reduction, label_smoothing=self.eps)


def _logit(x, y, w, p):
    return Tensor(x), Tensor(y), Tensor(w), Tensor(p)


def _prob(x, y, w, p):
    return Tensor(probabilities(x)), Tensor(y), Tensor(w)


def _two(x, y, w, p):
    return Tensor(x), Tensor(y)


def _prob2(x, y, w, p):
    return Tensor(probabilities(x)), Tensor(y)


def _fn(fn, args, reduction):
    return lambda x, y, w, p, eps: call(Functional(fn, reduction, eps), *args(x, y, w, p))


def _cell(make, args):
    return lambda x, y, w, p, eps: call(make() if eps is None else make(label_smoothing=eps), *args(x, y, w, p))


# every public name: call(x, y, w, p, eps) in the current mode; eps None: without the keyword
def _cases():
    return {
        "ops.binary_cross_entropy_with_logits": _fn(ops.binary_cross_entropy_with_logits, _logit, "none"),
        "ops.BCEWithLogitsLoss": _cell(lambda **k: ops.BCEWithLogitsLoss("sum", **k), _logit),
        "ops.binary_cross_entropy": _fn(ops.binary_cross_entropy, _prob, "none"),
        "ops.BinaryCrossEntropy": _cell(lambda **k: ops.BinaryCrossEntropy("mean", **k), _prob),
        "ops.SigmoidCrossEntropyWithLogits": _cell(ops.SigmoidCrossEntropyWithLogits, _two),
        "ops.multilabel_soft_margin_loss": _fn(ops.multilabel_soft_margin_loss, _two, "none"),
        "ops.sigmoid_focal_loss": _fn(ops.sigmoid_focal_loss, _two, "none"),
        "nn.BCEWithLogitsLoss": _cell(lambda **k: nn.BCEWithLogitsLoss("none", **k), _two),
        "nn.BCELoss": _cell(lambda **k: nn.BCELoss(reduction="none", **k), _prob2),
        "nn.SigmoidFocalLoss": _cell(nn.SigmoidFocalLoss, _two),
        "nn.MultiLabelSoftMarginLoss": _cell(nn.MultiLabelSoftMarginLoss, _two),
        "mint.nn.functional.binary_cross_entropy_with_logits":
            _fn(mint.nn.functional.binary_cross_entropy_with_logits, _two, "none"),
        "mint.nn.functional.binary_cross_entropy": _fn(mint.nn.functional.binary_cross_entropy, _prob2, "sum"),
        "mint.nn.BCEWithLogitsLoss": _cell(lambda **k: mint.nn.BCEWithLogitsLoss(reduction="none", **k), _two),
        "mint.nn.BCELoss": _cell(lambda **k: mint.nn.BCELoss(reduction="none", **k), _prob2),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_name_equals_the_loss_at_the_smoothed_target(name, mode):
    """The same bits as the plain call with the smoothed targets (formed in double, rounded once)."""
    x, y, w, p = operands()
    call = CASES[name]
    got = to_np(call(x, y, w, p, EPS))
    want = to_np(call(x, smoothed(y, EPS), w, p, None))
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, to_np(call(x, y, w, p, None)))  # it does change the loss


@pytest.mark.parametrize("name", sorted(CASES))
def test_zero_smoothing_is_the_plain_loss(name, mode):
    x, y, w, p = operands(seed=1)
    call = CASES[name]
    np.testing.assert_array_equal(to_np(call(x, y, w, p, 0.0)), to_np(call(x, y, w, p, None)))


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.3, 1.0])
def test_value_and_gradients_against_float64(eps, mode):
    """BCEWithLogitsLoss with weight and pos_weight: the float64 reference at the smoothed target;
    dY = the reference's dY there times 1 - eps (eps = 1: every target 1/2 and dY = 0)."""
    x, y, w, p = operands(seed=2)
    ys = smoothed(y, eps).astype(np.float64)
    xd, wd, pd = (v.astype(np.float64) for v in (x, w, p))
    args = [Tensor(v) for v in (x, y, w, p)]

    def loss(a, b, c, d):
        return ops.binary_cross_entropy_with_logits(a, b, c, d, reduction="mean", label_smoothing=eps)

    got = to_np(call(loss, *args))
    np.testing.assert_allclose(got, ref.bce_with_logits(xd, ys, wd, pd, "mean"), rtol=2e-6)
    g = grads(loss, (0, 1, 2, 3), *args)
    want = ref.bce_with_logits_grads(xd, ys, wd, pd, "mean", np.float64(1.0))
    want = [want[0], want[1] * (1 - eps), want[2], want[3]]
    for k, (gk, wk) in enumerate(zip(g, want)):
        np.testing.assert_allclose(to_np(gk), wk, rtol=1e-5, atol=1e-9, err_msg=f"gradient {k}")
    if eps == 1.0:
        assert not np.any(to_np(g[1]))


def test_focal_gradient_of_the_target_by_finite_differences():
    """The focal loss is not linear in the target: dY through the smoothing, against central
    differences of the float64 reference in Y."""
    x, y, _, _ = operands(shape=(40,), seed=3)
    y = np.random.default_rng(4).random(40).astype(np.float32)
    eps = 0.2
    g = ms.grad(lambda a, b: ops.sigmoid_focal_loss(a, b, reduction="sum", label_smoothing=eps),
                grad_position=1)(Tensor(x), Tensor(y))
    h = 1e-6
    xd, yd = x.astype(np.float64), y.astype(np.float64)

    def f(yy):
        return ref.sigmoid_focal(xd, yy * (1 - eps) + eps / 2, None, None, 0.25, 2.0, "none")

    fd = (f(yd + h) - f(yd - h)) / (2 * h)
    np.testing.assert_allclose(to_np(g), fd, rtol=2e-4, atol=1e-6)


def test_float16_operands():
    x, y, w, p = operands(seed=5)
    got = ops.binary_cross_entropy_with_logits(Tensor(x, ms.float16), Tensor(y, ms.float16), reduction="none",
                                               label_smoothing=EPS)
    want = ops.binary_cross_entropy_with_logits(Tensor(x, ms.float16), Tensor(smoothed(y, EPS, np.float16)),
                                                reduction="none")
    assert got.dtype == ms.float16
    np.testing.assert_array_equal(to_np(got), to_np(want))


def test_keras_rule():
    """Keras' BinaryCrossentropy(label_smoothing=eps): y * (1 - eps) + 0.5 * eps, then the loss."""
    x = np.array([[2.0, -1.0], [0.5, -3.0]], np.float32)
    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    ys = y * (1 - 0.2) + 0.5 * 0.2
    xd = x.astype(np.float64)
    want = np.mean(np.maximum(xd, 0) - xd * ys + np.log1p(np.exp(-np.abs(xd))))
    got = to_np(ops.binary_cross_entropy_with_logits(Tensor(x), Tensor(y), label_smoothing=0.2))
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("value,error,text", [
    (True, TypeError, "'label_smoothing' must be a float, but got bool"),
    ("0.1", TypeError, "'label_smoothing' must be a float, but got str"),
    (-0.1, ValueError, r"'label_smoothing' must be in \[0, 1\], but got -0.1"),
    (1.5, ValueError, r"'label_smoothing' must be in \[0, 1\], but got 1.5"),
    (float("nan"), ValueError, r"'label_smoothing' must be in \[0, 1\], but got nan"),
])
def test_errors_at_the_call(value, error, text, mode):
    x, y, _, _ = operands()
    with pytest.raises(error, match=r"For 'binary_cross_entropy_with_logits', " + text):
        to_np(call(Functional(ops.binary_cross_entropy_with_logits, "mean", value), Tensor(x), Tensor(y)))
    with pytest.raises(error, match=r"For 'BCELoss', " + text):
        nn.BCELoss(label_smoothing=value)
    with pytest.raises(error, match=r"For 'SigmoidFocalLoss', " + text):
        nn.SigmoidFocalLoss(label_smoothing=value)
