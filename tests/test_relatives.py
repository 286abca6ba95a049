"""MindSpore's three relatives of BCEWithLogitsLoss, on ms_bce's kernels:
ops.SigmoidCrossEntropyWithLogits (elementwise, no reduction) and
ops.multilabel_soft_margin_loss / nn.MultiLabelSoftMarginLoss (BCEWithLogitsLoss
with a per-class weight, averaged over the last axis).  Values and gradients
against the float64 reference (tests/reference.py) with an incoming gradient
that is not 1, per dtype, in both modes; agreement with MindSpore's built-ins
where those are finite; the far tails where they are not.  The error table of
these names is in tests/test_errors.py."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor

import ms_bce
from tests import reference as ref
from tests.conftest import DTYPES, ULPS, call, check_close, grads, quantize, to_ms, to_np, ulp_of

# (dtype, relative bar of the averaged results): the kernels' rounding of each
# element or sum, and one more rounding of the incoming gradient or of the
# division by C where the 16-bit dtypes do it (spec section 6's bars plus one)
RELATIVE = {"float32": (ms.float32, 2.0 ** -20), "float16": (ms.float16, 2.0 ** -10),
            "bfloat16": (ms.bfloat16, 2.0 ** -7)}


def averaged_tol(expected, scale, dtype):
    """The bar of a row mean or a reduction: relative to the terms' size, plus
    the result's own rounding."""
    rel = {d: r for d, r in RELATIVE.values()}[dtype]
    with np.errstate(invalid="ignore", over="ignore"):
        return rel * np.where(np.isfinite(scale), scale, 0.0) + ulp_of(expected, dtype)


def elementwise_grad_tol(scale, dtype):
    """An elementwise gradient: the kernel's bar (ULPS) plus one ULP for the
    incoming gradient's rounding after the division by C (16-bit dtypes)."""
    return (ULPS[dtype] + 1) * ulp_of(scale, dtype)


def rng_inputs(seed, shape, low=-10.0, high=10.0, binary=False):
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, shape)
    y = (rng.random(shape) > 0.5).astype(np.float64) if binary else rng.random(shape)
    return x, y


def scaled(loss, g):
    """sum(loss * g) in float32: the loss is not the last layer."""
    return (ms.ops.cast(loss, ms.float32) * g).sum()


# ------------------------------------------- SigmoidCrossEntropyWithLogits ---

SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4), (2, 0)]


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_sigmoid_cross_entropy_values_and_gradients_match_reference(mode, dtype_name, shape):
    dtype = DTYPES[dtype_name][0]
    x, y = rng_inputs(1, shape, -30.0, 30.0)
    g = np.random.default_rng(2).uniform(-2.0, 2.0, shape)
    xq, yq, gq = (quantize(a, dtype) for a in (x, y, g))
    op = ms_bce.ops.SigmoidCrossEntropyWithLogits()
    out = call(op, to_ms(x, dtype), to_ms(y, dtype))
    assert out.dtype == dtype and out.shape == shape
    loss_scale, dx_scale, dy_scale, _, _ = ref.logits_scales(xq, yq, None, None, gq, "none")
    check_close(to_np(out), ref.sigmoid_cross_entropy_with_logits(xq, yq), dtype,
                ULPS[dtype] * ulp_of(loss_scale, dtype), "loss")
    g_ms = to_ms(gq, dtype)

    def f(a, b):
        return scaled(op(a, b), g_ms)
    dx, dy = grads(f, (0, 1), to_ms(x, dtype), to_ms(y, dtype))
    ex, ey, _, _ = ref.bce_with_logits_grads(xq, yq, reduction="none", dout=gq)
    check_close(to_np(dx), ex, dtype, ULPS[dtype] * ulp_of(dx_scale, dtype), "dX")
    check_close(to_np(dy), ey, dtype, ULPS[dtype] * ulp_of(dy_scale, dtype), "dY")


@pytest.mark.parametrize("dtype", [ms.float32, ms.float16], ids=str)
def test_sigmoid_cross_entropy_agrees_with_builtin(mode, dtype):
    x, y = rng_inputs(3, (16, 9))
    xt, yt = to_ms(x, dtype), to_ms(y, dtype)
    ours_op, builtin_op = ms_bce.ops.SigmoidCrossEntropyWithLogits(), ms.ops.SigmoidCrossEntropyWithLogits()
    ours, builtin = call(ours_op, xt, yt), call(builtin_op, xt, yt)
    assert ours.dtype == builtin.dtype == dtype and ours.shape == builtin.shape == (16, 9)
    rtol, atol = (1e-5, 1e-6) if dtype == ms.float32 else (2e-3, 2e-3)  # the built-in's float16 kernel rounds more
    np.testing.assert_allclose(to_np(ours), to_np(builtin), rtol=rtol, atol=atol)

    def f_ours(a, b):
        return ours_op(a, b).sum()

    def f_builtin(a, b):
        return builtin_op(a, b).sum()
    np.testing.assert_allclose(to_np(grads(f_ours, 0, xt, yt)), to_np(grads(f_builtin, 0, xt, yt)),
                               rtol=rtol, atol=atol)


def test_sigmoid_cross_entropy_label_gradient_is_exact_where_builtin_gives_zeros(mode):
    """dL/dY = softplus(-X) - softplus(X) = -X; MindSpore 2.10's built-in returns zeros."""
    x = to_ms([[-0.8, 1.2, 0.7], [-0.1, -0.4, 0.7]])
    y = to_ms([[0.3, 0.8, 1.2], [-0.6, 0.1, 2.2]])
    ours_op, builtin_op = ms_bce.ops.SigmoidCrossEntropyWithLogits(), ms.ops.SigmoidCrossEntropyWithLogits()

    def f_ours(a, b):
        return ours_op(a, b).sum()

    def f_builtin(a, b):
        return builtin_op(a, b).sum()
    assert not to_np(grads(f_builtin, 1, x, y)).any()
    np.testing.assert_array_equal(to_np(grads(f_ours, 1, x, y)), -to_np(x))


def test_sigmoid_cross_entropy_infinite_logits_cost_nothing_where_builtin_gives_nan(mode):
    x = to_ms([np.inf, -np.inf, 20.0, -100.0])
    y = to_ms([1.0, 0.0, 1.0, 0.0])
    builtin = to_np(call(ms.ops.SigmoidCrossEntropyWithLogits(), x, y))
    assert np.isnan(builtin[:2]).all()
    ours = to_np(call(ms_bce.ops.SigmoidCrossEntropyWithLogits(), x, y))
    check_close(ours, ref.sigmoid_cross_entropy_with_logits(to_np(x), to_np(y)), ms.float32,
                4 * ulp_of(ref.sigmoid_cross_entropy_with_logits(to_np(x), to_np(y)), ms.float32), "loss")
    assert ours[0] == 0.0 and ours[1] == 0.0 and ours[3] > 0.0  # 3.78e-44: the subnormal tail is kept


def test_sigmoid_cross_entropy_mixed_dtypes_are_computed_in_the_widest(mode):
    """The built-in refuses float16 logits with float32 labels; ms_bce promotes, and
    each gradient has its operand's dtype."""
    x, y = rng_inputs(4, (4, 3))
    op = ms_bce.ops.SigmoidCrossEntropyWithLogits()
    xt, yt = to_ms(x, ms.float16), to_ms(y, ms.float32)
    out = call(op, xt, yt)
    assert out.dtype == ms.float32
    xq, yq = quantize(x, ms.float16), quantize(y, ms.float32)
    check_close(to_np(out), ref.sigmoid_cross_entropy_with_logits(xq, yq), ms.float32,
                4 * ulp_of(ref.bce_with_logits_scale(xq, yq), ms.float32), "loss")

    def f(a, b):
        return op(a, b).sum()
    dx, dy = grads(f, (0, 1), xt, yt)
    assert dx.dtype == ms.float16 and dy.dtype == ms.float32
    out_bf = call(op, to_ms(x, ms.bfloat16), to_ms(y, ms.float16))
    assert out_bf.dtype == ms.float32


def test_sigmoid_cross_entropy_is_bce_with_logits_none_bit_for_bit(mode):
    x, y = rng_inputs(5, (5, 7), -50.0, 50.0)
    xt, yt = to_ms(x), to_ms(y)

    def bce_none(a, b):
        return ms_bce.ops.binary_cross_entropy_with_logits(a, b, None, None, "none")
    np.testing.assert_array_equal(to_np(call(ms_bce.ops.SigmoidCrossEntropyWithLogits(), xt, yt)),
                                  to_np(call(bce_none, xt, yt)))


# ---------------------------------------------- multilabel_soft_margin_loss ---

APIS = ["ops.multilabel_soft_margin_loss", "nn.MultiLabelSoftMarginLoss"]


def multilabel(api, weight, reduction):
    """The loss of (x, y) through `api`, weight a call argument (ops) or the
    cell's state (nn)."""
    if api == "ops.multilabel_soft_margin_loss":
        def f(x, y):
            return ms_bce.ops.multilabel_soft_margin_loss(x, y, weight, reduction)
        return f
    return ms_bce.nn.MultiLabelSoftMarginLoss(weight, reduction)


def builtin_multilabel(api, weight, reduction):
    if api == "ops.multilabel_soft_margin_loss":
        def f(x, y):
            return ms.ops.multilabel_soft_margin_loss(x, y, weight, reduction)
        return f
    return ms.nn.MultiLabelSoftMarginLoss(weight, reduction)


# how the weight is given: None, a Tensor per class, a Tensor of the input's
# shape, a Tensor broadcast along the rows, an int, a float
WEIGHTS = ["None", "per class", "full", "per row", "int", "float"]


def make_weight(kind, shape, seed=7):
    rng = np.random.default_rng(seed)
    return {"None": None, "per class": rng.uniform(0.25, 2.0, shape[-1:]), "full": rng.uniform(0.25, 2.0, shape),
            "per row": rng.uniform(0.25, 2.0, shape[:-1] + (1,)), "int": 3, "float": 0.375}[kind]


def as_weight(w, dtype):
    return to_ms(w, dtype) if isinstance(w, np.ndarray) else w


def ref_weight(w, dtype):
    return quantize(w, dtype) if isinstance(w, np.ndarray) else w


def out_shape(shape, reduction):
    return shape[:-1] if reduction == "none" else ()


@pytest.mark.parametrize("dtype_name", list(RELATIVE))
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("shape", [(6, 5), (7,), (2, 3, 4)], ids=str)
def test_multilabel_values_and_gradients_match_reference(mode, dtype_name, reduction, weight, shape):
    """Values and the gradients of input, target and a Tensor weight, with an
    incoming gradient that is not 1, against the float64 reference."""
    dtype = RELATIVE[dtype_name][0]
    x, y = rng_inputs(11, shape, -12.0, 12.0)
    w = make_weight(weight, shape)
    g = np.random.default_rng(12).uniform(0.5, 2.0, out_shape(shape, reduction))
    xq, yq, wq, gq = quantize(x, dtype), quantize(y, dtype), ref_weight(w, dtype), quantize(g, dtype)
    wt = as_weight(w, dtype)
    out = call(multilabel("ops.multilabel_soft_margin_loss", wt, reduction), to_ms(x, dtype), to_ms(y, dtype))
    assert out.dtype == dtype and out.shape == out_shape(shape, reduction)
    expected = ref.multilabel_soft_margin_loss(xq, yq, wq, reduction)
    check_close(to_np(out), expected, dtype, averaged_tol(expected, ref.multilabel_scale(xq, yq, wq, reduction), dtype),
                "loss")

    g_ms = to_ms(gq, dtype)
    operands = [to_ms(x, dtype), to_ms(y, dtype)] + ([wt] if isinstance(w, np.ndarray) else [])

    def f2(a, b):
        return scaled(ms_bce.ops.multilabel_soft_margin_loss(a, b, wt, reduction), g_ms)

    def f3(a, b, c):
        return scaled(ms_bce.ops.multilabel_soft_margin_loss(a, b, c, reduction), g_ms)
    got = grads(f3 if len(operands) == 3 else f2, tuple(range(len(operands))), *operands)
    ex, ey, ew = ref.multilabel_soft_margin_loss_grads(xq, yq, wq if isinstance(w, np.ndarray) else
                                                       (None if w is None else np.float64(w)), reduction, gq)
    rows = int(np.prod(shape[:-1]))
    g_elem = (np.broadcast_to(gq[..., None], shape) if reduction == "none" else
              np.broadcast_to(gq / (rows if reduction == "mean" else 1), shape)) / shape[-1]
    w_elem = None if w is None else np.broadcast_to(np.asarray(wq, np.float64), shape)
    _, dx_scale, dy_scale, dw_scale, _ = ref.logits_scales(xq, yq, w_elem, None, g_elem, "none")
    check_close(to_np(got[0]), ex, dtype, elementwise_grad_tol(dx_scale, dtype), "dX")
    check_close(to_np(got[1]), ey, dtype, elementwise_grad_tol(dy_scale, dtype), "dY")
    if isinstance(w, np.ndarray):
        assert got[2].shape == w.shape and got[2].dtype == dtype
        dw_sum_scale = ref.reduce_to_shape(dw_scale, w.shape)
        check_close(to_np(got[2]), ew, dtype, averaged_tol(ew, dw_sum_scale, dtype), "dW")


@pytest.mark.parametrize("weight", WEIGHTS)
def test_multilabel_mean_is_bce_with_logits_mean_bit_for_bit(mode, weight):
    """'mean' is the mean of the rows' means: the mean over every element."""
    x, y = rng_inputs(13, (9, 6), binary=True)
    w = as_weight(make_weight(weight, (9, 6)), ms.float32)
    bce_w = to_ms(np.float32(w)) if isinstance(w, (int, float)) else w

    def bce_mean(a, b):
        return ms_bce.ops.binary_cross_entropy_with_logits(a, b, bce_w, None, "mean")
    ours = call(multilabel("ops.multilabel_soft_margin_loss", w, "mean"), to_ms(x), to_ms(y))
    np.testing.assert_array_equal(to_np(ours), to_np(call(bce_mean, to_ms(x), to_ms(y))))


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@pytest.mark.parametrize("weight", ["None", "per class", "int", "float"])
def test_multilabel_agrees_with_builtin_where_it_is_finite(mode, api, reduction, weight):
    """Random logits in [-10, 10] (the built-in's log(exp(-x) + 1) is finite
    there), binary and fractional targets: values and the gradients of input,
    target and a Tensor weight."""
    for binary in (True, False):
        x, y = rng_inputs(17, (8, 5), binary=binary)
        w = as_weight(make_weight(weight, (8, 5)), ms.float32)
        xt, yt = to_ms(x), to_ms(y)
        ours = call(multilabel(api, w, reduction), xt, yt)
        builtin = call(builtin_multilabel(api, w, reduction), xt, yt)
        assert np.isfinite(to_np(builtin)).all()
        assert ours.shape == builtin.shape and ours.dtype == builtin.dtype == ms.float32
        # the built-in's log(1 + exp(-x)) in float32 is off by up to half a float32
        # ULP of 1 where exp(-x) is small: an absolute bar besides the relative one
        np.testing.assert_allclose(to_np(ours), to_np(builtin), rtol=1e-5, atol=1e-6)
        if isinstance(w, Tensor):
            def f_ours(a, b, c):
                return ms_bce.ops.multilabel_soft_margin_loss(a, b, c, reduction).sum()

            def f_builtin(a, b, c):
                return ms.ops.multilabel_soft_margin_loss(a, b, c, reduction).sum()
            ours_g, builtin_g = grads(f_ours, (0, 1, 2), xt, yt, w), grads(f_builtin, (0, 1, 2), xt, yt, w)
        else:
            loss_ours, loss_builtin = multilabel(api, w, reduction), builtin_multilabel(api, w, reduction)

            def f_ours(a, b):
                return loss_ours(a, b).sum()

            def f_builtin(a, b):
                return loss_builtin(a, b).sum()
            ours_g, builtin_g = grads(f_ours, (0, 1), xt, yt), grads(f_builtin, (0, 1), xt, yt)
        for name, a, b in zip(("dX", "dY", "dW"), ours_g, builtin_g):
            np.testing.assert_allclose(to_np(a), to_np(b), rtol=1e-5, atol=1e-6, err_msg=name)


# the brief's far-tail case (the loss itself is a float32 subnormal, 1.84e-42) and
# one of normal size (215.8 and 231.7): MindSpore's built-in gives NaN or inf for both
FAR_TAILS = [([-200.0, 200.0, -95.0], [0.0, 1.0, 0.0]), ([[-200.0, 200.0, 95.0], [-95.0, 300.0, 89.0]],
                                                         [[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@pytest.mark.parametrize("case", range(len(FAR_TAILS)))
def test_multilabel_far_tails_are_finite_and_accurate_where_builtin_is_not(mode, api, reduction, case):
    x, y = (np.array(a, np.float64) for a in FAR_TAILS[case])
    w = np.array([1.0, 2.0, 0.5])
    xt, yt, wt = to_ms(x), to_ms(y), to_ms(w)
    builtin = to_np(call(builtin_multilabel(api, wt, reduction), xt, yt))
    assert not np.isfinite(builtin).all()
    ours = to_np(call(multilabel(api, wt, reduction), xt, yt))
    expected = ref.multilabel_soft_margin_loss(x, y, w, reduction)
    tol = averaged_tol(expected, ref.multilabel_scale(x, y, w, reduction), ms.float32)
    if mode == "graph" and reduction != "mean":
        # MindSpore's graph runtime flushes subnormal results of its own operators
        # (the division by C) to zero; 'mean' is the kernel's alone
        expected = np.where(np.abs(expected) < np.finfo(np.float32).tiny, 0.0, expected)
    check_close(ours, expected, ms.float32, tol, "loss")
    assert np.isfinite(ours).all()

    def f(a, b, c):
        return ms_bce.ops.multilabel_soft_margin_loss(a, b, c, reduction).sum()
    dx, dy, dw = grads(f, (0, 1, 2), xt, yt, wt)
    ex, ey, ew = ref.multilabel_soft_margin_loss_grads(x, y, w, reduction, np.ones(out_shape(x.shape, reduction)))
    for name, got, want in (("dX", dx, ex), ("dY", dy, ey), ("dW", dw, ew)):
        got = to_np(got)
        assert np.isfinite(got).all(), name
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=np.finfo(np.float32).tiny, err_msg=name)


def test_multilabel_tail_weight_gradient_is_exact_where_builtin_rounds_it_away(mode):
    """x = 20 with y = 1 costs 2.06e-9: the built-in's log(exp(-20) + 1) is 0 in
    float32, so its weight gradient for that class is 0; ms_bce's is exact."""
    x, y, w = to_ms([20.0, -20.0, 5.0]), to_ms([1.0, 0.0, 1.0]), to_ms([1.0, 2.0, 0.5])

    def f_ours(c):
        return ms_bce.ops.multilabel_soft_margin_loss(x, y, c, "sum")

    def f_builtin(c):
        return ms.ops.multilabel_soft_margin_loss(x, y, c, "sum")
    builtin = to_np(grads(f_builtin, 0, w))
    assert builtin[0] == 0.0 and builtin[1] == 0.0
    _, _, expected = ref.multilabel_soft_margin_loss_grads(to_np(x), to_np(y), to_np(w), "sum")
    np.testing.assert_allclose(to_np(grads(f_ours, 0, w)), expected, rtol=1e-6)
    assert expected[0] > 6.8e-10


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("weight", ["int", "float", "per class"])
def test_multilabel_number_weight_takes_the_operands_dtype(mode, dtype_name, weight):
    """An int or float weight becomes a Tensor of the operands' dtype (no promotion);
    a float32 Tensor weight promotes the result to float32, as BCEWithLogitsLoss does."""
    dtype = RELATIVE[dtype_name][0]
    x, y = rng_inputs(19, (3, 4))
    w = make_weight(weight, (3, 4))
    out = call(multilabel("ops.multilabel_soft_margin_loss", as_weight(w, ms.float32), "none"),
               to_ms(x, dtype), to_ms(y, dtype))
    assert out.dtype == (ms.float32 if weight == "per class" else dtype)
    assert out.shape == (3,)


def test_multilabel_empty_inputs(mode):
    """No rows: 'none' is empty, 'sum' 0, 'mean' NaN; rows of no class have loss NaN (0 / 0)."""
    f_none = multilabel("ops.multilabel_soft_margin_loss", None, "none")
    f_sum = multilabel("ops.multilabel_soft_margin_loss", None, "sum")
    f_mean = multilabel("ops.multilabel_soft_margin_loss", None, "mean")
    e, e0 = to_ms(np.zeros((0, 3))), to_ms(np.zeros((2, 0)))
    assert call(f_none, e, e).shape == (0,)
    assert to_np(call(f_sum, e, e)) == 0.0
    assert np.isnan(to_np(call(f_mean, e, e)))
    none0 = to_np(call(f_none, e0, e0))
    assert none0.shape == (2,) and np.isnan(none0).all()
    np.testing.assert_array_equal(np.isnan(ref.multilabel_soft_margin_loss(np.zeros((2, 0)), np.zeros((2, 0)),
                                                                           reduction="none")), [True, True])


def test_multilabel_documented_example_within_a_few_ulp_of_every_published_value():
    """The example's 'mean': ms_bce prints the float64 value rounded to float32;
    MindSpore's page prints 0.84693956 and its CPU built-in 0.8469397."""
    x = Tensor([[0.3, 0.6, 0.6], [0.9, 0.4, 0.2]])
    y = Tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    ours = ms_bce.ops.multilabel_soft_margin_loss(x, y)
    assert str(ours.asnumpy()) == "0.84693986"
    assert str(ms_bce.nn.MultiLabelSoftMarginLoss()(x, y).asnumpy()) == "0.84693986"
    exact = ref.multilabel_soft_margin_loss(to_np(x), to_np(y))
    assert ours.asnumpy() == np.float32(exact)
    builtin = ms.ops.multilabel_soft_margin_loss(x, y).asnumpy()
    spacing = np.spacing(np.float32(exact))
    for published in (np.float32(0.84693956), builtin):
        assert abs(float(published) - float(ours.asnumpy())) <= 5 * spacing


def test_nn_cell_learns_a_parameter_weight_with_the_exact_gradient(mode):
    x, y = rng_inputs(23, (6, 4), binary=True)
    w0 = np.array([0.5, 1.0, 1.5, 2.0])
    weight = Parameter(to_ms(w0), name="class_weight")
    loss = ms_bce.nn.MultiLabelSoftMarginLoss(weight=weight, reduction='sum')
    grad = ms.grad(loss, grad_position=None, weights=[weight])(to_ms(x), to_ms(y))
    _, _, expected = ref.multilabel_soft_margin_loss_grads(quantize(x, ms.float32), y, w0, "sum")
    check_close(to_np(grad[0]), expected, ms.float32,
                averaged_tol(expected, ref.reduce_to_shape(ref.bce_with_logits_scale(quantize(x, ms.float32), y, w0)
                                                           / 4, (4,)), ms.float32), "dW")


def test_nn_cell_takes_mindspore_2_10_argument_names():
    """construct(x, target), as MindSpore 2.10's cell (its docs announce `input`
    for a later version); weight and reduction as keywords."""
    x = Tensor([[0.3, 0.6, 0.6], [0.9, 0.4, 0.2]])
    y = Tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    loss = ms_bce.nn.MultiLabelSoftMarginLoss(weight=2, reduction='none')
    out = loss(x=x, target=y)
    np.testing.assert_allclose(to_np(out), 2 * ref.multilabel_soft_margin_loss(to_np(x), to_np(y), reduction="none"),
                               rtol=1e-6)
