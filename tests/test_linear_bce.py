"""The fused linear + BCE-with-logits (ops.linear_binary_cross_entropy_with_logits,
nn.LinearBCEWithLogitsLoss): the loss and the gradients of input, weight, bias,
pos_weight and target equal the unfused composition (binary_cross_entropy_with_logits
of ops.dense) within float32 rounding (1e-5 relative on the loss, 1e-4 on the
gradients) and the float64 reference, for every reduction, with and without bias,
pos_weight, label smoothing and mask, chunked into several chunks, in both modes;
an incoming gradient that is not 1; the chunk rule; bool targets; empty and fully
masked inputs; the Cell trained by TrainOneStepCell; every error in both modes."""
import re

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor
from mindspore import nn as msnn
from mindspore import ops as msops

from ms_bce import nn, ops
from tests import reference as ref
from tests.conftest import FnCell, call, to_np

NAME = "linear_binary_cross_entropy_with_logits"
N, H, C = 13, 6, 9
CHUNK = 4  # 13 rows: chunks of 4, 4, 4 and 1


def operands(n=N, h=H, c=C, seed=0, pos_weight=None, mask=None):
    """x (n, h), w (c, h), float targets in [0, 1] with some exact 0 and 1, b (c,); pos_weight
    and mask of the shape asked for ('rows': (n, c), 'labels': (c,))."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, h)).astype(np.float32)
    w = (rng.normal(size=(c, h)) * 0.8).astype(np.float32)
    y = rng.random((n, c)).astype(np.float32)
    y[rng.random((n, c)) < 0.4] = 1.0
    y[rng.random((n, c)) < 0.3] = 0.0
    b = rng.normal(size=c).astype(np.float32)
    shapes = {"rows": (n, c), "labels": (c,), "column": (n, 1)}
    p = None if pos_weight is None else rng.uniform(0.5, 3.0, shapes[pos_weight]).astype(np.float32)
    m = None if mask is None else rng.random(shapes[mask]) < 0.7
    return x, w, y, b, p, m


def tensors(*arrays):
    return tuple(None if a is None else Tensor(a) for a in arrays)


class Fused(msnn.Cell):
    """The fused loss times a factor (the loss is not the last layer: an incoming gradient not 1)."""

    def __init__(self, reduction, has_bias, has_p, has_m, label_smoothing=0.0, chunk_size=CHUNK, factor=1.7):
        super().__init__()
        self.reduction, self.has_bias, self.has_p, self.has_m = reduction, has_bias, has_p, has_m
        self.label_smoothing, self.chunk_size, self.factor = label_smoothing, chunk_size, factor

    def construct(self, x, w, y, b, p, m):
        out = ops.linear_binary_cross_entropy_with_logits(
            x, w, y, b if self.has_bias else None, p if self.has_p else None, self.reduction,
            label_smoothing=self.label_smoothing, mask=m if self.has_m else None, chunk_size=self.chunk_size)
        return out * self.factor


class Unfused(Fused):
    """binary_cross_entropy_with_logits(ops.dense(x, w, b), y, ...) times the factor."""

    def construct(self, x, w, y, b, p, m):
        out = ops.binary_cross_entropy_with_logits(
            msops.dense(x, w, b if self.has_bias else None), y, None, p if self.has_p else None, self.reduction,
            label_smoothing=self.label_smoothing, mask=m if self.has_m else None)
        return out * self.factor


class Weighted(msnn.Cell):
    """sum(loss * G) of a 'none' loss cell: an incoming gradient G of the losses' shape."""

    def __init__(self, loss, g):
        super().__init__()
        self.loss, self.g = loss, Tensor(g)

    def construct(self, *args):
        return (self.loss(*args) * self.g).sum()


def value_and_grads(cell, args, positions):
    return ms.value_and_grad(cell, grad_position=positions)(*args)


def placeholders(x, w, y, b, p, m):
    """The six operands, absent ones as a 1-element stand-in (the cells skip them)."""
    one = np.ones(1, np.float32)
    return tensors(x, w, y, b, one if p is None else p, np.ones(1, bool) if m is None else m)


# (bias, pos_weight, label_smoothing, mask): every operand and option, alone and together
CONFIGS = {
    "plain": (False, None, 0.0, None),
    "bias": (True, None, 0.0, None),
    "bias_pos_weight_labels": (True, "labels", 0.0, None),
    "pos_weight_rows_smoothing": (False, "rows", 0.1, None),
    "bias_mask_rows": (True, None, 0.0, "rows"),
    "everything": (True, "labels", 0.2, "labels"),
    "everything_rows": (True, "column", 0.05, "rows"),
}
REDUCTIONS = ("mean", "sum", "weighted_mean")


def assert_rel(actual, expected, rtol, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.abs(expected).max()), 1e-30) if expected.size else 1.0
    err = float(np.abs(actual - expected).max()) if expected.size else 0.0
    assert err <= rtol * scale, f"{what}: max error {err} > {rtol} x {scale}"


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_loss_and_gradients_equal_the_unfused_composition_and_float64(mode, reduction, config):
    has_bias, pw, eps, mk = CONFIGS[config]
    x, w, y, b, p, m = operands(pos_weight=pw, mask=mk)
    args = placeholders(x, w, y, b, p, m)
    positions = (0, 1, 2) + ((3,) if has_bias else ()) + ((4,) if pw else ())
    flags = (reduction, has_bias, pw is not None, mk is not None, eps)
    fused_value, fused_grads = value_and_grads(Fused(*flags), args, positions)
    unfused_value, unfused_grads = value_and_grads(Unfused(*flags), args, positions)
    assert_rel(to_np(fused_value), to_np(unfused_value), 1e-5, "loss against the composition")
    want = 1.7 * ref.linear_bce_with_logits(x, w, y, b if has_bias else None, p, reduction, eps, m)
    assert_rel(to_np(fused_value), want, 1e-5, "loss against float64")
    grads64 = ref.linear_bce_with_logits_grads(x, w, y, b if has_bias else None, p, reduction, eps, m, dout=1.7)
    names = ("input", "weight", "target") + (("bias",) if has_bias else ()) + (("pos_weight",) if pw else ())
    expected64 = grads64[:3] + ((grads64[3],) if has_bias else ()) + ((grads64[4],) if pw else ())
    for name, got, composed, exact in zip(names, fused_grads, unfused_grads, expected64):
        assert got.shape == composed.shape and got.dtype == composed.dtype, name
        assert_rel(to_np(got), to_np(composed), 1e-4, f"d{name} against the composition")
        assert_rel(to_np(got), exact, 1e-4, f"d{name} against float64")


@pytest.mark.parametrize("config", ["bias_pos_weight_labels", "everything_rows"])
def test_reduction_none_is_the_composition_with_any_incoming_gradient(mode, config):
    """'none' returns the (N, C) losses (the unfused composition: no memory to gain)."""
    has_bias, pw, eps, mk = CONFIGS[config]
    x, w, y, b, p, m = operands(pos_weight=pw, mask=mk)
    args = placeholders(x, w, y, b, p, m)
    g = np.random.default_rng(5).normal(size=(N, C)).astype(np.float32)
    flags = ("none", has_bias, pw is not None, mk is not None, eps)
    losses = call(Fused(*flags, factor=1.0), *args)
    assert losses.shape == (N, C)
    assert_rel(to_np(losses), ref.linear_bce_with_logits(x, w, y, b if has_bias else None, p, "none", eps, m), 1e-5,
               "losses")
    got = value_and_grads(Weighted(Fused(*flags, factor=1.0), g), args, (0, 1, 2, 3))[1]
    want = ref.linear_bce_with_logits_grads(x, w, y, b if has_bias else None, p, "none", eps, m, dout=g)
    for name, a, e in zip(("input", "weight", "target", "bias"), got, want):
        if e is not None:
            assert_rel(to_np(a), e, 1e-4, name)


@pytest.mark.parametrize("chunk_size", [1, 3, 12, 13, 1000, None])
def test_the_result_does_not_depend_on_the_chunks(mode, chunk_size):
    x, w, y, b, p, m = operands(pos_weight="labels", mask="rows")
    args = placeholders(x, w, y, b, p, m)
    value, grads = value_and_grads(Fused("mean", True, True, True, 0.1, chunk_size), args, (0, 1, 3, 4))
    want_value = 1.7 * ref.linear_bce_with_logits(x, w, y, b, p, "mean", 0.1, m)
    assert_rel(to_np(value), want_value, 1e-5, "loss")
    dx, dw, _, db, dp = ref.linear_bce_with_logits_grads(x, w, y, b, p, "mean", 0.1, m, dout=1.7)
    for name, got, want in zip(("input", "weight", "bias", "pos_weight"), grads, (dx, dw, db, dp)):
        assert_rel(to_np(got), want, 1e-4, name)


def test_chunk_rule():
    rows = ops.linear_chunk_rows
    assert rows(8192, 512, 32768) == 256          # 32 chunks (ceil(C / H) = 64, at most 32)
    assert rows(8192, 512, 2048) == 2048          # ceil(C / H) = 4 chunks: each chunk's logits the input's size
    assert rows(8192, 512, 600) == 4096           # ceil(600 / 512) = 2 chunks
    assert rows(8192, 512, 512) == 8192           # C <= H: one chunk (the logits no larger than the input)
    assert rows(5, 2, 10 ** 6) == 5               # at least 256 rows a chunk: one chunk of 5
    assert rows(1000, 8, 10 ** 4) == 250          # ceil(1000 / 256) = 4 chunks of 250 rows
    assert rows(2048, 256, 10 ** 4) == 256        # examples/many_labels.py's head: 8 chunks
    assert rows(100, 8, 800, chunk_size=7) == 7   # chunk_size as given
    assert rows(100, 8, 800, chunk_size=500) == 100


def test_a_bool_target_gives_the_float_targets_loss_and_a_zero_target_gradient(mode):
    x, w, y, b, p, _ = operands(pos_weight="labels")
    y_bool = y > 0.5
    y_float = y_bool.astype(np.float32)
    cell = Fused("mean", True, True, False, 0.1)
    grads_of = (0, 1, 2, 3, 4)
    v_bool, g_bool = value_and_grads(cell, placeholders(x, w, y_bool, b, p, None), grads_of)
    v_float, g_float = value_and_grads(cell, placeholders(x, w, y_float, b, p, None), grads_of)
    np.testing.assert_array_equal(to_np(v_bool), to_np(v_float))
    for i in (0, 1, 3, 4):
        np.testing.assert_array_equal(g_bool[i].asnumpy(), g_float[i].asnumpy())
    assert g_bool[2].dtype == ms.bool_ and g_bool[2].shape == (N, C) and not g_bool[2].asnumpy().any()
    assert_rel(to_np(v_bool), 1.7 * ref.linear_bce_with_logits(x, w, y_float, b, p, "mean", 0.1), 1e-5, "loss")


def test_a_target_of_another_dtype_is_cast_per_chunk_and_its_gradient_has_its_dtype(mode):
    x, w, y, b, _, _ = operands()
    y16 = y.astype(np.float16)
    value, grads = value_and_grads(Fused("sum", True, False, False), placeholders(x, w, y16, b, None, None),
                                   (0, 2))
    assert value.dtype == ms.float32 and grads[1].dtype == ms.float16
    exact = ref.linear_bce_with_logits_grads(x, w, y16, b, reduction="sum", dout=1.7)
    assert_rel(to_np(value), 1.7 * ref.linear_bce_with_logits(x, w, y16, b, reduction="sum"), 1e-5, "loss")
    assert_rel(to_np(grads[0]), exact[0], 1e-4, "input")
    assert_rel(to_np(grads[1]), exact[2], 2e-3, "target (float16)")


def test_float16_operands_give_the_float16_composition(mode):
    x, w, y, b, _, _ = operands()
    args = tuple(Tensor(a.astype(np.float16)) for a in (x, w, y, b)) + tensors(np.ones(1, np.float32),
                                                                             np.ones(1, bool))
    fused, unfused = call(Fused("mean", True, False, False), *args), call(Unfused("mean", True, False, False), *args)
    assert fused.dtype == unfused.dtype == ms.float16
    assert abs(float(fused.asnumpy()) - float(unfused.asnumpy())) <= 2e-3 * abs(float(unfused.asnumpy()))


def test_a_chunk_with_nothing_kept_adds_nothing_and_nothing_kept_is_nan(mode):
    x, w, y, b, _, _ = operands()
    m = np.ones((N, C), bool)
    m[:CHUNK] = False  # the first chunk entirely dropped, with NaN in its input rows
    x_nan = x.copy()
    x_nan[:CHUNK] = np.nan
    value, grads = value_and_grads(Fused("mean", True, False, True), placeholders(x_nan, w, y, b, None, m), (0, 1, 3))
    assert_rel(to_np(value), 1.7 * ref.linear_bce_with_logits(x[CHUNK:], w, y[CHUNK:], b, reduction="mean"), 1e-5,
               "loss")
    dx, dw, _, db, _ = ref.linear_bce_with_logits_grads(x[CHUNK:], w, y[CHUNK:], b, reduction="mean", dout=1.7)
    assert not grads[0].asnumpy()[:CHUNK].any()
    assert_rel(to_np(grads[0])[CHUNK:], dx, 1e-4, "input")
    none_kept = call(Fused("mean", True, False, True), *placeholders(x, w, y, b, None, np.zeros((N, C), bool)))
    assert np.isnan(none_kept.asnumpy())


def test_empty_input(mode):
    x, w, y, b, _, _ = operands(n=0)
    args = placeholders(x, w, y, b, None, None)
    assert np.isnan(call(Fused("mean", True, False, False), *args).asnumpy())
    assert call(Fused("sum", True, False, False), *args).asnumpy() == 0


def test_called_from_pynative_and_from_a_jit_function_alike():
    """The function itself (no Cell of the caller's) in PyNative and under ms.jit."""
    x, w, y, b, p, _ = tensors(*operands(pos_weight="labels"))

    def loss(x, w, y, b, p):
        return ops.linear_binary_cross_entropy_with_logits(x, w, y, b, p, chunk_size=5)
    eager = ms.grad(loss, grad_position=(0, 1, 3))(x, w, y, b, p)
    jitted = ms.jit(ms.grad(loss, grad_position=(0, 1, 3)))(x, w, y, b, p)
    for a, e in zip(jitted, eager):
        np.testing.assert_allclose(a.asnumpy(), e.asnumpy(), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- the Cell ---

def test_cell_holds_the_head_and_equals_the_function(mode):
    head = nn.LinearBCEWithLogitsLoss(H, C, pos_weight=Tensor(np.full(C, 2.0, np.float32)), chunk_size=CHUNK)
    assert head.weight.shape == (C, H) and head.bias.shape == (C,)
    assert {p.name for p in head.trainable_params()} == {"weight", "bias"}
    bound = 1 / np.sqrt(H)  # nn.Dense's initialisation
    assert np.abs(head.bias.asnumpy()).max() <= bound and np.abs(head.weight.asnumpy()).max() <= bound
    x, _, y, _, _, _ = operands()
    got = call(head, Tensor(x), Tensor(y))
    want = ref.linear_bce_with_logits(x, head.weight.asnumpy(), y, head.bias.asnumpy(), np.full(C, 2.0), "mean")
    assert_rel(to_np(got), want, 1e-5, "loss")
    assert nn.LinearBCEWithLogitsLoss(H, C, bias=False).bias is None


class Model(msnn.Cell):
    """A backbone and a head: the fused loss cell or nn.Dense + ms_bce's BCEWithLogitsLoss."""

    def __init__(self, fused, weight, bias):
        super().__init__()
        self.backbone = msnn.Dense(H, H, weight_init=Tensor(np.eye(H, dtype=np.float32) * 0.9), bias_init="zeros")
        self.fused = fused
        if fused:
            self.head = nn.LinearBCEWithLogitsLoss(H, C, chunk_size=CHUNK)
        else:
            self.head = msnn.Dense(H, C)
            self.loss = nn.BCEWithLogitsLoss()
        self.head.weight.set_data(Tensor(weight))
        self.head.bias.set_data(Tensor(bias))

    def construct(self, x, y):
        h = msops.relu(self.backbone(x))
        if self.fused:
            return self.head(h, y)
        return self.loss(self.head(h), msops.cast(y, ms.float32))


@pytest.mark.parametrize("target_dtype", [np.float32, np.bool_])
def test_train_one_step_cell_trains_the_fused_head_as_the_unfused_one(mode, target_dtype):
    x, w, y, b, _, _ = operands()
    y = (y > 0.5).astype(target_dtype)
    steps = {}
    for fused in (True, False):
        model = Model(fused, w, b)
        step = msnn.TrainOneStepCell(model, msnn.SGD(model.trainable_params(), learning_rate=0.5))
        losses = [float(step(Tensor(x), Tensor(y)).asnumpy()) for _ in range(4)]
        steps[fused] = (losses, model.head.weight.asnumpy(), model.head.bias.asnumpy(),
                        model.backbone.weight.asnumpy())
    assert steps[True][0][-1] < steps[True][0][0]  # it learns
    np.testing.assert_allclose(steps[True][0], steps[False][0], rtol=1e-5)
    for a, e in zip(steps[True][1:], steps[False][1:]):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ errors ---

def _good():
    x, w, y, b, p, m = operands(pos_weight="labels", mask="labels")
    return dict(zip(("input", "weight", "target", "bias", "pos_weight", "mask"), tensors(x, w, y, b, p, m)),
                reduction="mean", chunk_size=None, label_smoothing=0.0)


def invoke(**bad):
    """The function called with bad arguments in place of good ones, every one a
    constant of the call (graph mode sees what PyNative sees)."""
    a = {**_good(), **bad}

    def f():
        return ops.linear_binary_cross_entropy_with_logits(
            a["input"], a["weight"], a["target"], a["bias"], a["pos_weight"], a["reduction"],
            label_smoothing=a["label_smoothing"], mask=a["mask"], chunk_size=a["chunk_size"])
    return FnCell(f)()


def raises(exc, text):
    return pytest.raises(exc, match=re.escape(text))


@pytest.mark.parametrize("arg, value, text", [
    ("input", 1.5, f"For '{NAME}', 'input' must be a Tensor, but got float."),
    ("weight", [[1.0]], f"For '{NAME}', 'weight' must be a Tensor, but got list."),
    ("target", 0, f"For '{NAME}', 'target' must be a Tensor, but got int."),
    ("bias", 2.0, f"For '{NAME}', 'bias' must be a Tensor, but got float."),
    ("pos_weight", 3, f"For '{NAME}', 'pos_weight' must be a Tensor, but got int."),
    ("mask", 1, f"For '{NAME}', 'mask' must be a Tensor, but got int."),
    ("reduction", 1, f"For '{NAME}', 'reduction' must be a str, but got int."),
    ("chunk_size", 2.0, f"For '{NAME}', 'chunk_size' must be an int or None, but got float."),
    ("chunk_size", True, f"For '{NAME}', 'chunk_size' must be an int or None, but got bool."),
    ("label_smoothing", "0.1", f"For '{NAME}', 'label_smoothing' must be a float, but got str."),
    ("input", Tensor(np.zeros((13, 6), np.int32)),
     f"For '{NAME}', the dtype of 'input' must be one of [float16, float32], but got int32."),
    ("weight", Tensor(np.zeros((9, 6), np.float64)),
     f"For '{NAME}', the dtype of 'weight' must be one of [float16, float32], but got float64."),
    ("bias", Tensor(np.zeros(9), ms.bfloat16),
     f"For '{NAME}', the dtype of 'bias' must be one of [float16, float32], but got bfloat16."),
    ("target", Tensor(np.zeros((13, 9), np.int32)),
     f"For '{NAME}', the dtype of 'target' must be one of [bool, float16, float32, bfloat16], but got int32."),
])
def test_type_errors(mode, arg, value, text):
    with raises(TypeError, text):
        invoke(**{arg: value})


@pytest.mark.parametrize("bad, text", [
    ({"reduction": "avg"}, f"For '{NAME}', 'reduction' must be one of ['none', 'mean', 'sum', 'weighted_mean'], "
                           "but got 'avg'."),
    ({"chunk_size": 0}, f"For '{NAME}', 'chunk_size' must be an int >= 1, but got 0."),
    ({"label_smoothing": 1.5}, f"For '{NAME}', 'label_smoothing' must be in [0, 1], but got 1.5."),
    ({"input": Tensor(np.zeros((13, 6, 1), np.float32))},
     f"For '{NAME}', the 'input' must be 2-D, (N, H), but got 'input' (13, 6, 1), 'weight' (9, 6) and "
     "'target' (13, 9)."),
    ({"weight": Tensor(np.zeros((9, 5), np.float32))},
     f"For '{NAME}', the 'weight' must be 2-D, (C, H) with H the last dimension of 'input', but got "
     "'input' (13, 6), 'weight' (9, 5) and 'target' (13, 9)."),
    ({"weight": Tensor(np.zeros(9, np.float32))},
     f"For '{NAME}', the 'weight' must be 2-D, (C, H) with H the last dimension of 'input', but got "
     "'input' (13, 6), 'weight' (9,) and 'target' (13, 9)."),
    ({"target": Tensor(np.zeros((13, 8), np.float32))},
     f"For '{NAME}', the shape of 'target' must be (N, C) = (13, 9), the rows of 'input' and of 'weight', "
     "but got 'input' (13, 6), 'weight' (9, 6) and 'target' (13, 8)."),
    ({"bias": Tensor(np.zeros(8, np.float32))},
     f"For '{NAME}', the shape of 'bias' must be (C,) = (9,), but got (8,) (with 'input' (13, 6), 'weight' "
     "(9, 6) and 'target' (13, 9))."),
    ({"pos_weight": Tensor(np.zeros(8, np.float32))},
     f"For '{NAME}', the shape of 'pos_weight' (8,) can not broadcast to the shape of 'target' (13, 9) "
     "(with 'input' (13, 6) and 'weight' (9, 6))."),
    ({"mask": Tensor(np.zeros((2, 9), bool))},
     f"For '{NAME}', the shape of 'mask' (2, 9) can not broadcast to the shape of 'target' (13, 9)."),
])
def test_value_errors(mode, bad, text):
    with raises(ValueError, text):
        invoke(**bad)


@pytest.mark.parametrize("kwargs, exc, text", [
    ({"in_features": 0}, ValueError, "For 'LinearBCEWithLogitsLoss', 'in_features' must be an int >= 1, but got 0."),
    ({"num_labels": 2.0}, TypeError, "For 'LinearBCEWithLogitsLoss', 'num_labels' must be an int, but got float."),
    ({"bias": 1}, TypeError, "For 'LinearBCEWithLogitsLoss', 'bias' must be a bool, but got int."),
    ({"pos_weight": [1.0]}, TypeError, "For 'LinearBCEWithLogitsLoss', 'pos_weight' must be a Tensor, but got list."),
    ({"reduction": "avg"}, ValueError, "For 'LinearBCEWithLogitsLoss', 'reduction' must be one of"),
    ({"chunk_size": -1}, ValueError, "For 'LinearBCEWithLogitsLoss', 'chunk_size' must be an int >= 1, but got -1."),
    ({"label_smoothing": -0.1}, ValueError, "For 'LinearBCEWithLogitsLoss', 'label_smoothing' must be in [0, 1]"),
])
def test_cell_construction_errors(kwargs, exc, text):
    args = {"in_features": H, "num_labels": C, **kwargs}
    with raises(exc, text):
        nn.LinearBCEWithLogitsLoss(**args)


def test_cell_call_errors_name_the_cell(mode):
    head = nn.LinearBCEWithLogitsLoss(H, C)
    x, _, y, _, _, _ = operands()
    with raises(ValueError, "For 'LinearBCEWithLogitsLoss', the 'weight' must be 2-D, (C, H) with H the last "
                            "dimension of 'input', but got 'input' (13, 5), 'weight' (9, 6) and 'target' (13, 9)."):
        call(head, Tensor(x[:, :5]), Tensor(y))
    with raises(TypeError, "For 'LinearBCEWithLogitsLoss', the dtype of 'target' must be one of [bool, float16, "
                           "float32, bfloat16], but got int64."):
        call(head, Tensor(x), Tensor(y.astype(np.int64)))


def test_rows_known_only_at_run_time_fall_back_to_the_composition():
    """Graph mode with set_inputs(N unknown): no chunks to plan, the composition's result."""
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        cell = Fused("mean", True, True, False, 0.0, chunk_size=4)
        one = Tensor(shape=[None, H], dtype=ms.float32)
        cell.set_inputs(one, Tensor(shape=[C, H], dtype=ms.float32), Tensor(shape=[None, C], dtype=ms.float32),
                        Tensor(shape=[C], dtype=ms.float32), Tensor(shape=[C], dtype=ms.float32),
                        Tensor(shape=[1], dtype=ms.bool_))
        for n in (13, 7):
            x, w, y, b, p, _ = operands(n=n, pos_weight="labels")
            got = cell(*placeholders(x, w, y, b, p, None))
            assert_rel(to_np(got), 1.7 * ref.linear_bce_with_logits(x, w, y, b, p, "mean"), 1e-5, f"loss, n={n}")
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
