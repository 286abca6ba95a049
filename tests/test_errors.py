"""Every row of the spec's error table, for every public name, in PyNative and
graph mode: the exception type and a MindSpore-style message naming the
operator and the argument, raised by the call itself (the result is never
read: MindSpore's built-in defers several of these until it is)."""
import re

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from tests.conftest import call, to_ms
from tests.test_bce_with_logits_forward import APIS

# API -> (name in messages, argument names: input, target, weight, pos_weight)
NAMES = {
    "ops.binary_cross_entropy_with_logits": ("binary_cross_entropy_with_logits",
                                             ("input", "target", "weight", "pos_weight")),
    "mint.nn.functional.binary_cross_entropy_with_logits": ("binary_cross_entropy_with_logits",
                                                            ("input", "target", "weight", "pos_weight")),
    "ops.BCEWithLogitsLoss": ("BCEWithLogitsLoss", ("logits", "label", "weight", "pos_weight")),
    "nn.BCEWithLogitsLoss": ("BCEWithLogitsLoss", ("input", "target", "weight", "pos_weight")),
    "mint.nn.BCEWithLogitsLoss": ("BCEWithLogitsLoss", ("input", "target", "weight", "pos_weight")),
}

GOOD = {"x": to_ms(np.zeros((2, 3))), "y": to_ms(np.zeros((2, 3))), "w": to_ms(np.ones(3)), "p": to_ms(np.ones((2, 1))),
        "reduction": "mean"}


def invoke(api, **bad):
    """Builds the API's loss (cells validate at construction) and calls it, with
    the given arguments replacing good ones; every argument reaches the call as
    a constant, so graph mode sees exactly what PyNative sees."""
    a = {**GOOD, **bad}
    loss = APIS[api](a["w"], a["p"], a["reduction"])

    def f():
        return loss(a["x"], a["y"])
    return call(f)


def raises(exc, pattern):
    return pytest.raises(exc, match=re.escape(pattern))


@pytest.mark.parametrize("api", list(APIS))
class TestErrorTable:
    def test_input_not_a_tensor(self, mode, api):
        op, names = NAMES[api]
        with raises(TypeError, f"For '{op}', '{names[0]}' must be a Tensor, but got float."):
            invoke(api, x=1.5)

    def test_target_not_a_tensor(self, mode, api):
        op, names = NAMES[api]
        with raises(TypeError, f"For '{op}', '{names[1]}' must be a Tensor, but got list."):
            invoke(api, y=[[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])

    def test_weight_not_a_tensor(self, mode, api):
        op, names = NAMES[api]
        with raises(TypeError, f"For '{op}', '{names[2]}' must be a Tensor, but got float."):
            invoke(api, w=2.0)

    def test_pos_weight_not_a_tensor(self, mode, api):
        op, names = NAMES[api]
        with raises(TypeError, f"For '{op}', '{names[3]}' must be a Tensor, but got int."):
            invoke(api, p=3)

    def test_input_dtype_outside_documented_set(self, mode, api):
        op, names = NAMES[api]
        with raises(TypeError, f"For '{op}', the dtype of '{names[0]}' must be one of [float16, float32, bfloat16], "
                               "but got int32."):
            invoke(api, x=Tensor(np.zeros((2, 3), np.int32)))

    def test_target_dtype_outside_documented_set(self, mode, api):
        op, names = NAMES[api]
        with raises(TypeError, f"For '{op}', the dtype of '{names[1]}' must be one of [float16, float32, bfloat16], "
                               "but got float64."):
            invoke(api, y=Tensor(np.zeros((2, 3), np.float64)))

    def test_weight_dtypes_outside_documented_set(self, mode, api):
        op, names = NAMES[api]
        with raises(TypeError, f"the dtype of '{names[2]}' must be one of [float16, float32, bfloat16], but got bool."):
            invoke(api, w=Tensor(np.ones(3, np.bool_)))
        with raises(TypeError, f"the dtype of '{names[3]}' must be one of [float16, float32, bfloat16], but got int64."):
            invoke(api, p=Tensor(np.ones(3, np.int64)))

    def test_reduction_not_a_str(self, mode, api):
        op, _ = NAMES[api]
        op = "BCEWithLogitsLoss" if api.endswith("Loss") else op
        with raises(TypeError, f"For '{op}', 'reduction' must be a str, but got int."):
            invoke(api, reduction=1)
        with raises(TypeError, "'reduction' must be a str, but got NoneType."):
            invoke(api, reduction=None)

    def test_reduction_not_a_known_value(self, mode, api):
        op, _ = NAMES[api]
        with raises(ValueError, f"For '{op}', 'reduction' must be one of ['none', 'mean', 'sum', 'weighted_mean'], but got 'avg'."):
            invoke(api, reduction="avg")
        with raises(ValueError, "but got 'Mean'."):
            invoke(api, reduction="Mean")

    def test_weight_not_broadcastable(self, mode, api):
        op, names = NAMES[api]
        with raises(ValueError, f"For '{op}', the shape of '{names[2]}' (4,) can not broadcast to the shape of "
                                f"'{names[0]}' (2, 3)."):
            invoke(api, w=to_ms(np.ones(4)))

    def test_pos_weight_not_broadcastable(self, mode, api):
        op, names = NAMES[api]
        with raises(ValueError, f"For '{op}', the shape of '{names[3]}' (3, 2) can not broadcast to the shape of "
                                f"'{names[0]}' (2, 3)."):
            invoke(api, p=to_ms(np.ones((3, 2))))
        with raises(ValueError, f"the shape of '{names[3]}' (1, 2, 3) can not broadcast"):
            invoke(api, p=to_ms(np.ones((1, 2, 3))))  # broadcasting would grow the result

    def test_target_shape_differs(self, mode, api):
        op, names = NAMES[api]
        with raises(ValueError, f"For '{op}', the shape of '{names[1]}' must be the same as the shape of "
                                f"'{names[0]}' (2, 3), but got (3, 2)."):
            invoke(api, y=to_ms(np.zeros((3, 2))))
        with raises(ValueError, "but got (1, 3)."):
            invoke(api, y=to_ms(np.zeros((1, 3))))  # broadcastable is not enough for the target


def test_pynative_errors_raise_at_the_call_not_when_read():
    """A PyNative call with a bad shape raises before returning: nothing is
    launched (a kernel error would surface only when the result is read)."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    import ms_bce
    with pytest.raises(ValueError):
        ms_bce.ops.binary_cross_entropy_with_logits(GOOD["x"], to_ms(np.zeros(3)))
    # the process and the op are still usable afterwards
    out = ms_bce.ops.binary_cross_entropy_with_logits(GOOD["x"], GOOD["y"])
    np.testing.assert_allclose(out.asnumpy(), np.log(2.0), rtol=1e-7)


# ------------------------------------------------------- the BCELoss family ---

from tests.test_bce import APIS as BCE_APIS  # noqa: E402

# API -> (name in messages, argument names, documented dtypes in messages)
BCE_NAMES = {
    "ops.binary_cross_entropy": ("binary_cross_entropy", ("logits", "labels", "weight"), "float16, float32"),
    "ops.BinaryCrossEntropy": ("BinaryCrossEntropy", ("logits", "labels", "weight"), "float16, float32"),
    "mint.nn.functional.binary_cross_entropy": ("binary_cross_entropy", ("input", "target", "weight"),
                                                "float16, float32"),
    "nn.BCELoss": ("BCELoss", ("logits", "labels", "weight"), "float16, float32"),
    "mint.nn.BCELoss": ("BCELoss", ("input", "target", "weight"), "float16, float32, bfloat16"),
}

BCE_GOOD = {"p": to_ms(np.full((2, 3), 0.5)), "y": to_ms(np.zeros((2, 3))), "w": to_ms(np.ones((2, 3))),
            "reduction": "mean"}


def invoke_bce(api, **bad):
    a = {**BCE_GOOD, **bad}
    loss = BCE_APIS[api](a["w"], a["reduction"])

    def f():
        return loss(a["p"], a["y"])
    return call(f)


@pytest.mark.parametrize("api", list(BCE_APIS))
class TestBCEErrorTable:
    def test_inputs_not_tensors(self, mode, api):
        op, names, _ = BCE_NAMES[api]
        with raises(TypeError, f"For '{op}', '{names[0]}' must be a Tensor, but got float."):
            invoke_bce(api, p=0.5)
        with raises(TypeError, f"For '{op}', '{names[1]}' must be a Tensor, but got ndarray."):
            invoke_bce(api, y=np.zeros((2, 3), np.float32))
        with raises(TypeError, f"For '{op}', '{names[2]}' must be a Tensor, but got list."):
            invoke_bce(api, w=[1.0, 2.0, 3.0])

    def test_dtypes_outside_documented_set(self, mode, api):
        op, names, allowed = BCE_NAMES[api]
        with raises(TypeError, f"For '{op}', the dtype of '{names[0]}' must be one of [{allowed}], but got int32."):
            invoke_bce(api, p=Tensor(np.zeros((2, 3), np.int32)), y=Tensor(np.zeros((2, 3), np.int32)))
        with raises(TypeError, f"the dtype of '{names[0]}' must be one of [{allowed}], but got float64."):
            invoke_bce(api, p=Tensor(np.zeros((2, 3), np.float64)), y=Tensor(np.zeros((2, 3), np.float64)))
        if "bfloat16" not in allowed:
            with raises(TypeError, f"the dtype of '{names[0]}' must be one of [{allowed}], but got bfloat16."):
                invoke_bce(api, p=BCE_GOOD["p"].astype(ms.bfloat16), y=BCE_GOOD["y"].astype(ms.bfloat16),
                           w=BCE_GOOD["w"].astype(ms.bfloat16))

    def test_target_and_weight_must_have_the_input_dtype(self, mode, api):
        op, names, _ = BCE_NAMES[api]
        with raises(TypeError, f"For '{op}', the dtype of '{names[1]}' must be the same as the dtype of "
                               f"'{names[0]}' (float32), but got float16."):
            invoke_bce(api, y=BCE_GOOD["y"].astype(ms.float16))
        with raises(TypeError, f"the dtype of '{names[2]}' must be the same as the dtype of '{names[0]}' "
                               "(float32), but got float16."):
            invoke_bce(api, w=BCE_GOOD["w"].astype(ms.float16))

    def test_reduction(self, mode, api):
        op, _, _ = BCE_NAMES[api]
        with raises(TypeError, "'reduction' must be a str, but got int."):
            invoke_bce(api, reduction=1)
        with raises(ValueError, f"For '{op}', 'reduction' must be one of ['none', 'mean', 'sum', 'weighted_mean'], but got 'avg'."):
            invoke_bce(api, reduction="avg")
        with raises(ValueError, "but got 'MEAN'."):  # the built-in's functional forms accept it
            invoke_bce(api, reduction="MEAN")

    def test_shapes(self, mode, api):
        op, names, _ = BCE_NAMES[api]
        with raises(ValueError, f"For '{op}', the shape of '{names[1]}' must be the same as the shape of "
                                f"'{names[0]}' (2, 3), but got (3,)."):
            invoke_bce(api, y=to_ms(np.zeros(3)))
        with raises(ValueError, f"For '{op}', the shape of '{names[2]}' (4,) can not broadcast to the shape of "
                                f"'{names[0]}' (2, 3)."):
            invoke_bce(api, w=to_ms(np.ones(4)))


# ------------------------------------ the relatives of BCEWithLogitsLoss ---

import ms_bce  # noqa: E402


def _multilabel_functional(w, reduction):
    def f(x, y):
        return ms_bce.ops.multilabel_soft_margin_loss(x, y, w, reduction)
    return f


def _multilabel_cell(w, reduction):
    return ms_bce.nn.MultiLabelSoftMarginLoss(w, reduction)


MULTILABEL_APIS = {"ops.multilabel_soft_margin_loss": _multilabel_functional,
                   "nn.MultiLabelSoftMarginLoss": _multilabel_cell}
# API -> (name in messages, argument names: input, target, weight)
MULTILABEL_NAMES = {"ops.multilabel_soft_margin_loss": ("multilabel_soft_margin_loss", ("input", "target", "weight")),
                    "nn.MultiLabelSoftMarginLoss": ("MultiLabelSoftMarginLoss", ("x", "target", "weight"))}


def invoke_multilabel(api, **bad):
    a = {**GOOD, **bad}
    loss = MULTILABEL_APIS[api](a["w"], a["reduction"])

    def f():
        return loss(a["x"], a["y"])
    return call(f)


@pytest.mark.parametrize("api", list(MULTILABEL_APIS))
class TestMultilabelErrorTable:
    def test_inputs_not_tensors(self, mode, api):
        op, names = MULTILABEL_NAMES[api]
        with raises(TypeError, f"For '{op}', '{names[0]}' must be a Tensor, but got float."):
            invoke_multilabel(api, x=1.5)
        with raises(TypeError, f"For '{op}', '{names[1]}' must be a Tensor, but got list."):
            invoke_multilabel(api, y=[[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])

    def test_weight_neither_a_tensor_nor_a_number(self, mode, api):
        op, names = MULTILABEL_NAMES[api]
        with raises(TypeError, f"For '{op}', '{names[2]}' must be a Tensor, int or float, but got str."):
            invoke_multilabel(api, w="1")
        with raises(TypeError, f"For '{op}', '{names[2]}' must be a Tensor, int or float, but got bool."):
            invoke_multilabel(api, w=True)
        with raises(TypeError, f"For '{op}', '{names[2]}' must be a Tensor, int or float, but got list."):
            invoke_multilabel(api, w=[1.0, 2.0, 3.0])

    def test_dtypes_outside_documented_set(self, mode, api):
        op, names = MULTILABEL_NAMES[api]
        with raises(TypeError, f"For '{op}', the dtype of '{names[0]}' must be one of [float16, float32, bfloat16], "
                               "but got int32."):
            invoke_multilabel(api, x=Tensor(np.zeros((2, 3), np.int32)))
        with raises(TypeError, f"For '{op}', the dtype of '{names[1]}' must be one of [float16, float32, bfloat16], "
                               "but got float64."):
            invoke_multilabel(api, y=Tensor(np.zeros((2, 3), np.float64)))
        with raises(TypeError, f"For '{op}', the dtype of '{names[2]}' must be one of [float16, float32, bfloat16], "
                               "but got int64."):
            invoke_multilabel(api, w=Tensor(np.ones(3, np.int64)))

    def test_reduction(self, mode, api):
        op, _ = MULTILABEL_NAMES[api]
        with raises(TypeError, f"For '{op}', 'reduction' must be a str, but got int."):
            invoke_multilabel(api, reduction=1)
        with raises(TypeError, f"For '{op}', 'reduction' must be a str, but got NoneType."):
            invoke_multilabel(api, reduction=None)
        with raises(ValueError, f"For '{op}', 'reduction' must be one of ['none', 'mean', 'sum', 'weighted_mean'], but got 'avg'."):
            invoke_multilabel(api, reduction="avg")
        with raises(ValueError, "but got 'MEAN'."):
            invoke_multilabel(api, reduction="MEAN")

    def test_shapes(self, mode, api):
        op, names = MULTILABEL_NAMES[api]
        with raises(ValueError, f"For '{op}', the shape of '{names[1]}' must be the same as the shape of "
                                f"'{names[0]}' (2, 3), but got (3,)."):
            invoke_multilabel(api, y=to_ms(np.zeros(3)))  # the built-in broadcasts it
        with raises(ValueError, f"For '{op}', the shape of '{names[2]}' (4,) can not broadcast to the shape of "
                                f"'{names[0]}' (2, 3)."):
            invoke_multilabel(api, w=to_ms(np.ones(4)))

    def test_zero_dimensional_input_has_no_class_axis(self, mode, api):
        op, names = MULTILABEL_NAMES[api]
        with raises(ValueError, f"For '{op}', the rank of '{names[0]}' must be at least 1, but got 0."):
            invoke_multilabel(api, x=to_ms(np.float32(0.5)), y=to_ms(np.float32(1.0)), w=None)


SIGMOID_GOOD = {"x": GOOD["x"], "y": GOOD["y"]}


def invoke_sigmoid(**bad):
    a = {**SIGMOID_GOOD, **bad}
    op = ms_bce.ops.SigmoidCrossEntropyWithLogits()

    def f():
        return op(a["x"], a["y"])
    return call(f)


class TestSigmoidCrossEntropyErrorTable:
    def test_inputs_not_tensors(self, mode):
        with raises(TypeError, "For 'SigmoidCrossEntropyWithLogits', 'logits' must be a Tensor, but got float."):
            invoke_sigmoid(x=1.5)
        with raises(TypeError, "For 'SigmoidCrossEntropyWithLogits', 'label' must be a Tensor, but got ndarray."):
            invoke_sigmoid(y=np.zeros((2, 3), np.float32))

    def test_dtypes_outside_documented_set(self, mode):
        with raises(TypeError, "For 'SigmoidCrossEntropyWithLogits', the dtype of 'logits' must be one of "
                               "[float16, float32, bfloat16], but got int32."):
            invoke_sigmoid(x=Tensor(np.zeros((2, 3), np.int32)))
        with raises(TypeError, "For 'SigmoidCrossEntropyWithLogits', the dtype of 'label' must be one of "
                               "[float16, float32, bfloat16], but got float64."):  # the built-in's CPU kernel takes it
            invoke_sigmoid(y=Tensor(np.zeros((2, 3), np.float64)))

    def test_label_shape_differs(self, mode):
        with raises(ValueError, "For 'SigmoidCrossEntropyWithLogits', the shape of 'label' must be the same as the "
                                "shape of 'logits' (2, 3), but got (3,)."):
            invoke_sigmoid(y=to_ms(np.zeros(3)))

    def test_takes_no_construction_arguments(self):
        with pytest.raises(TypeError):
            ms_bce.ops.SigmoidCrossEntropyWithLogits('none')  # pylint: disable=too-many-function-args
