"""Graph-mode use: training with TrainOneStepCell against the built-in's
trajectory, dynamic shapes, ms.jit and vmap."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

import ms_bce
from ms_bce.demo import Classifier, WithLoss
from tests import reference as ref
from tests.conftest import assert_rel, assert_ulps, quantize, to_ms, to_np
from tests.test_bce_with_logits_grad import grad_scales


@pytest.fixture
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


def multilabel_data(n=256, d=16, c=5, seed=0):
    """Labels from a random linear teacher, classes of different frequency."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    teacher = rng.normal(size=(d, c))
    bias = np.linspace(-2.0, 1.0, c)
    y = ((x @ teacher + bias + 0.5 * rng.normal(size=(n, c))) > 0).astype(np.float32)
    return x, y


def train(loss, steps=60, seed=1):
    x, y = multilabel_data()
    net = Classifier(seed, x.shape[1], y.shape[1])
    step = nn.TrainOneStepCell(WithLoss(net, loss), nn.Adam(net.trainable_params(), learning_rate=0.02))
    step.set_train()
    xs, ys = Tensor(x), Tensor(y)
    return np.array([float(step(xs, ys).asnumpy()) for _ in range(steps)])


def test_training_with_pos_weight_matches_builtin_trajectory(graph_mode):
    pos_weight = Tensor(np.array([3.0, 2.0, 1.0, 0.7, 0.5], np.float32))
    ours = train(ms_bce.nn.BCEWithLogitsLoss(pos_weight=pos_weight))
    builtin = train(nn.BCEWithLogitsLoss(pos_weight=pos_weight))
    assert ours[-1] < 0.4 * ours[0], ours
    # float32 rounding differences, amplified by 60 Adam steps, stay ~1e-5 of the starting loss
    np.testing.assert_allclose(ours, builtin, rtol=2e-4, atol=2e-5)


def test_training_in_pynative_matches_graph():
    pos_weight = Tensor(np.array([3.0, 2.0, 1.0, 0.7, 0.5], np.float32))
    ms.set_context(mode=ms.PYNATIVE_MODE)
    pynative = train(ms_bce.nn.BCEWithLogitsLoss(pos_weight=pos_weight), steps=10)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        graph = train(ms_bce.nn.BCEWithLogitsLoss(pos_weight=pos_weight), steps=10)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    np.testing.assert_allclose(pynative, graph, rtol=1e-5)


class PrimitiveLoss(nn.Cell):
    """ops.BCEWithLogitsLoss used the way MindSpore's primitive is: built once in
    __init__, called in construct with all four inputs."""

    def __init__(self, reduction):
        super().__init__()
        self.op = ms_bce.ops.BCEWithLogitsLoss(reduction)

    def construct(self, x, y, w, p):
        return self.op(x, y, w, p)


@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
def test_dynamic_shapes_forward_and_grad(graph_mode, reduction):
    """Cell.set_inputs with None dims: one compiled graph serves every batch size."""
    net = PrimitiveLoss(reduction)
    dyn = Tensor(shape=[None, None], dtype=ms.float32)
    net.set_inputs(dyn, dyn, Tensor(shape=[None], dtype=ms.float32), Tensor(shape=[None], dtype=ms.float32))
    grad = ms.grad(net, grad_position=(0, 1, 2, 3))
    rng = np.random.default_rng(2)
    for shape in ((4, 3), (7, 5), (64, 33), (1, 1)):
        x, y = rng.normal(size=shape), rng.random(shape)
        w, p = rng.uniform(0.5, 2, shape[1:]), rng.uniform(0.5, 2, shape[1:])
        args = [to_ms(a) for a in (x, y, w, p)]
        q = [quantize(a, ms.float32) for a in (x, y, w, p)]
        out = net(*args)
        assert out.shape == (shape if reduction == "none" else ())
        assert_ulps(to_np(out), ref.bce_with_logits(*q, reduction), ms.float32, 4)
        if reduction != "none":
            got = grad(*args)
            want = ref.bce_with_logits_grads(*q, reduction)
            scales = grad_scales(*q, reduction, 1.0)
            for name, a, e, s in zip(("dX", "dY", "dW", "dP"), got, want, scales):
                assert_rel(to_np(a), e, 1e-6, scale=s, what=name)


def test_dynamic_shapes_train_one_step(graph_mode):
    x, y = multilabel_data(n=96)
    net = Classifier(3, x.shape[1], y.shape[1])
    step = nn.TrainOneStepCell(WithLoss(net, ms_bce.nn.BCEWithLogitsLoss(pos_weight=to_ms(np.full(5, 2.0)))),
                               nn.SGD(net.trainable_params(), learning_rate=0.1))
    step.set_inputs(Tensor(shape=[None, 16], dtype=ms.float32), Tensor(shape=[None, 5], dtype=ms.float32))
    losses = [float(step(Tensor(x[:k]), Tensor(y[:k])).asnumpy()) for k in (32, 17, 96, 32, 5, 96)]
    assert all(np.isfinite(losses))
    assert losses[3] < losses[0]  # the same batch after two updates


def test_dynamic_shape_mismatch_known_only_at_run_time_raises(graph_mode):
    """With None dims the shapes are checked when known, in the C++ InferShape:
    a RuntimeError carrying the same message (MindSpore cannot raise ValueError
    from a running graph)."""
    net = PrimitiveLoss("mean")
    net.set_inputs(Tensor(shape=[None, 3], dtype=ms.float32), Tensor(shape=[None, 3], dtype=ms.float32),
                   Tensor(shape=[3], dtype=ms.float32), Tensor(shape=[3], dtype=ms.float32))
    ones = to_ms(np.ones(3))
    assert np.isfinite(to_np(net(to_ms(np.zeros((2, 3))), to_ms(np.zeros((2, 3))), ones, ones)))
    with pytest.raises(RuntimeError, match=r"the shape of 'target' must be the same as the shape of 'input' "
                                           r"\(2, 3\), but got \(4, 3\)"):
        to_np(net(to_ms(np.zeros((2, 3))), to_ms(np.zeros((4, 3))), ones, ones))


def test_static_shape_mismatch_raises_value_error_at_compile(graph_mode):
    net = PrimitiveLoss("mean")
    with pytest.raises(ValueError, match="can not broadcast"):
        net(to_ms(np.zeros((2, 3))), to_ms(np.zeros((2, 3))), to_ms(np.ones(4)), to_ms(np.ones(3)))


def test_ms_jit_function():
    @ms.jit
    def loss(x, y, p):
        return ms_bce.mint.nn.functional.binary_cross_entropy_with_logits(x, y, None, "sum", p)
    rng = np.random.default_rng(4)
    x, y, p = rng.normal(size=(5, 4)), rng.random((5, 4)), rng.uniform(1, 2, 4)
    q = [quantize(a, ms.float32) for a in (x, y, p)]
    assert_ulps(to_np(loss(to_ms(x), to_ms(y), to_ms(p))), ref.bce_with_logits(q[0], q[1], None, q[2], "sum"),
                ms.float32, 4)
    g = ms.grad(loss, grad_position=(0, 2))(to_ms(x), to_ms(y), to_ms(p))
    want = ref.bce_with_logits_grads(q[0], q[1], None, q[2], "sum")
    scales = grad_scales(q[0], q[1], None, q[2], "sum", 1.0)
    assert_rel(to_np(g[0]), want[0], 1e-6, scale=scales[0], what="dX")
    assert_rel(to_np(g[1]), want[3], 1e-6, scale=scales[3], what="dP")


OP = ms_bce.ops.BCEWithLogitsLoss("sum")


def test_primitive_object_inside_ms_jit():
    @ms.jit
    def loss(x, y):
        return OP(x, y, None, None)
    x = to_ms(np.array([[0.0, 1.0]]))
    assert_ulps(to_np(loss(x, x)), ref.bce_with_logits(np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]]),
                                                       reduction="sum"), ms.float32, 4)


@pytest.mark.parametrize("graph", [False, True])
def test_vmap_over_batch(graph):
    """vmap of the primitive-style op and of a function calling it: per-example losses."""
    ms.set_context(mode=ms.GRAPH_MODE if graph else ms.PYNATIVE_MODE)
    try:
        rng = np.random.default_rng(5)
        x, y, p = rng.normal(size=(6, 4)), rng.random((6, 4)), rng.uniform(1, 2, 4)
        q = [quantize(a, ms.float32) for a in (x, y, p)]
        op = ms_bce.ops.BCEWithLogitsLoss("mean")
        out = ms.vmap(op, in_axes=(0, 0, None, None))(to_ms(x), to_ms(y), None, to_ms(p))
        assert out.shape == (6,)
        want = np.array([ref.bce_with_logits(q[0][i], q[1][i], None, q[2], "mean") for i in range(6)])
        assert_ulps(to_np(out), want, ms.float32, 4)

        pt = to_ms(p)

        def per_row(a, b):
            return ms_bce.ops.binary_cross_entropy_with_logits(a, b, None, pt, "sum")
        out = ms.vmap(per_row, in_axes=(0, 0))(to_ms(x), to_ms(y))
        want = np.array([ref.bce_with_logits(q[0][i], q[1][i], None, q[2], "sum") for i in range(6)])
        assert_ulps(to_np(out), want, ms.float32, 4)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
