"""A loss with scalar parameters, end to end through MindSpore: the test
loss sqp_test of tests/native/scalar_loss_check.cc (L = A W P (X - Y - B)^2,
parameters (A, B)) entered in the loss registry for the test, run by
ms_bce._kernels' LossForward in both modes with its gradients.  The
parameters travel as one trailing 1-D float32 tensor (params_tensor), with
a zero gradient; InferShape checks its shape."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from ms_bce import _kernels
from ms_bce import _losses as registry
from tests.conftest import grads, to_ms, to_np
from tests.test_scalar_only_loss import reduce_to, reference

LOSS = "sqp_test"
DISPLAY = "ScaledSquaredErrorForTest"
A, B = 0.75, -0.25


@pytest.fixture(scope="module")
def parameter_loss(test_losses_library):
    """The registry entry of the test loss, and its library standing in for the CPU library."""
    path = test_losses_library
    patch = pytest.MonkeyPatch()
    patch.setitem(registry.LOSSES, LOSS, registry.Loss(LOSS, DISPLAY, ("weight", "pos_weight"), ("scale", "shift"),
                                                       ascend=False))
    patch.setitem(_kernels._LOSS_NAMES, LOSS, DISPLAY)
    patch.setattr(_kernels, "library_path", lambda device="CPU": path)
    yield
    patch.undo()


def operands(shape=(8, 5), dtype=np.float32, seed=3):
    rng = np.random.default_rng(seed)
    x, y = (rng.normal(size=shape).astype(dtype) for _ in range(2))
    w = rng.uniform(0.5, 2, shape[-1:]).astype(dtype)
    p = rng.uniform(0.5, 2, shape).astype(dtype)
    return x, y, w, p


def expected(x, y, w, p, reduction):
    f64 = [v.astype(np.float64) for v in (x, y, w, p)]
    dout = np.ones(x.shape) if reduction == "none" else np.array(1.0)
    fwd, g = reference(f64[0] - B, f64[1], f64[2], f64[3], reduction, dout)
    g = [A * v for v in g]
    g[2] = reduce_to(g[2], w.shape)
    return A * fwd, g


class Loss(nn.Cell):
    def __init__(self, reduction, for_graph, theta=None):
        super().__init__()
        self.op = _kernels.LossForward(LOSS, reduction, True, True, for_graph=for_graph)
        self.theta = theta

    def construct(self, x, y, w, p, t=None):
        return self.op(x, y, w, p, self.theta if t is None else t)


class Summed(nn.Cell):
    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def construct(self, *args):
        return self.loss(*args).sum()


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_forward_and_gradients(parameter_loss, mode, reduction):
    x, y, w, p = operands()
    want, want_grads = expected(x, y, w, p, reduction)
    t = _kernels.params_tensor(LOSS, A, B)
    cell = Loss(reduction, mode == "graph")
    got = cell(*map(to_ms, (x, y, w, p)), t)
    np.testing.assert_allclose(to_np(got), want, rtol=1e-5, atol=1e-6)
    fn = Summed(Loss(reduction, mode == "graph"))
    g = grads(fn, (0, 1, 2, 3, 4), *map(to_ms, (x, y, w, p)), t)
    for got_g, want_g in zip(g[:4], want_grads):
        np.testing.assert_allclose(to_np(got_g), want_g, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(to_np(g[4]), np.zeros(3, np.float32))  # the parameters have no gradient


def test_parameters_held_by_the_cell(parameter_loss, mode):
    """The way a loss class keeps its hyper-parameters: t a constant of the cell, float16 operands."""
    x, y, w, p = operands(dtype=np.float16)
    want, _ = expected(x, y, w, p, "mean")
    cell = Loss("mean", mode == "graph", theta=_kernels.params_tensor(LOSS, A, B))
    got = cell(*(to_ms(v, ms.float16) for v in (x, y, w, p)))
    assert got.dtype == ms.float16
    np.testing.assert_allclose(to_np(got).astype(np.float64), want, rtol=2e-3)
    dx = ms.grad(cell, grad_position=0)(*(to_ms(v, ms.float16) for v in (x, y, w, p)))
    assert dx.dtype == ms.float16 and dx.shape == x.shape


def test_parameter_shape_is_checked(parameter_loss, mode):
    x, y, w, p = operands()
    cell = Loss("mean", mode == "graph")
    with pytest.raises((RuntimeError, ValueError),
                       match=rf"For '{DISPLAY}', the shape of its scalar parameters must be \(3,\), but got \(1,\)"):
        to_np(cell(*map(to_ms, (x, y, w, p)), Tensor(np.array([A], np.float32))))


def test_params_tensor_counts_the_values(parameter_loss):
    t = _kernels.params_tensor(LOSS, 1, 2.5)
    assert t.dtype == ms.float32 and t.shape == (3,)
    np.testing.assert_array_equal(to_np(t), [1.0, 2.5, 0.0])  # then the label smoothing
    np.testing.assert_array_equal(to_np(_kernels.params_tensor(LOSS, 1, 2.5, label_smoothing=0.25)), [1.0, 2.5, 0.25])
    with pytest.raises(ValueError, match=rf"For '{DISPLAY}', the scalar parameters are \['scale', 'shift'\], "
                                         r"but got 1 values\."):
        _kernels.params_tensor(LOSS, 1.0)


def test_registry_losses_with_parameters():
    """Of the shipped losses only the focal loss has scalar parameters, (alpha, gamma) in that order
    (element_math.h's SigmoidFocal reads theta[0], theta[1]); it has no Ascend kernel yet."""
    shipped = {name: loss for name, loss in registry.LOSSES.items() if name != LOSS}
    assert {name: loss.params for name, loss in shipped.items() if loss.params} == {"sigmoid_focal": ("alpha", "gamma")}
    assert not shipped["sigmoid_focal"].ascend
