"""Operators mirroring ``mindspore.ops``: the real definitions.

Each public name validates its arguments (``_validate``), casts the operands
to one compute dtype, and calls the Custom AOT operator of ``_kernels`` whose
bprop is our fused backward kernel.  ``nn`` and ``mint`` are thin re-spellings
of these.
"""
import functools as _functools

from mindspore import Tensor as _Tensor
from mindspore import dtype as _mstype
from mindspore import nn as _ms_nn
from mindspore import ops as _ms_ops
from mindspore.ops import constexpr as _constexpr
from mindspore.ops import operations as _P
from mindspore.ops._primitive_cache import _get_cache_prim

from . import _docs, _kernels, _validate

__all__ = ["BCEWithLogitsLoss", "binary_cross_entropy_with_logits", "BinaryCrossEntropy", "binary_cross_entropy",
           "SigmoidCrossEntropyWithLogits", "multilabel_soft_margin_loss", "sigmoid_focal_loss",
           "linear_binary_cross_entropy_with_logits"]

_FUNCTIONAL_NAMES = ("input", "target", "weight", "pos_weight")
_PRIMITIVE_NAMES = ("logits", "label", "weight", "pos_weight")
_BCE_NAMES = ("logits", "labels", "weight", "pos_weight")
_FOCAL_NAMES = ("inputs", "targets", "weight", "pos_weight")  # torchvision's


class _LossCell(_ms_nn.Cell):
    """State of the loss cells of ``nn`` and ``mint``: reduction, weight,
    pos_weight and label_smoothing, validated at construction (as MindSpore's
    loss cells do)."""

    def __init__(self, op_name, reduction, weight, pos_weight=None, label_smoothing=0.0):
        super().__init__()
        _validate.check_reduction(op_name, reduction)
        _validate.check_optional_tensor(op_name, "weight", weight)
        _validate.check_optional_tensor(op_name, "pos_weight", pos_weight)
        _validate.check_label_smoothing(op_name, label_smoothing)
        self.reduction = reduction
        self.weight = weight
        self.pos_weight = pos_weight
        self.label_smoothing = float(label_smoothing)


def _forward_op(loss, reduction, has_weight, has_pos_weight, has_mask=False):
    """The forward Custom op: cached per arguments in PyNative; created while
    a graph compiles, with the bprop that lets graph mode prune unused gradients."""
    return _get_cache_prim(_kernels.LossForward)(loss, reduction, has_weight, has_pos_weight,
                                                 _validate.compiling(_validate.compile_marker), has_mask)


def _cast(tensor, dtype):
    return tensor if tensor.dtype == dtype else _ms_ops.cast(tensor, dtype)


def _compute_dtype(*operands):
    """The widest float dtype of the operands given (None and bool ones skipped).
    Mixed dtypes are computed in it (the casts are MindSpore ops, so autodiff
    casts the gradients back), and the result has it: the promotion of PyTorch
    and of the built-in's mixed-precision case."""
    dtypes = ()
    for operand in operands:
        if operand is not None and operand.dtype != _mstype.bool_:
            dtypes = dtypes + (operand.dtype,)
    return _validate.widest_float(dtypes)


def _scalars_operand(op_name, loss, params, label_smoothing, has_mask=False):
    """The kernels' last operand, t: the loss's scalar parameters' values and
    the label smoothing (one cached tensor per value in PyNative); None on
    Ascend, whose operators take none (nor a mask: a RuntimeError there)."""
    _validate.check_label_smoothing(op_name, label_smoothing)
    if not _validate.check_options_device(op_name, label_smoothing, has_mask):
        return None
    if _validate.compiling(_validate.compile_marker):
        return _kernels.params_tensor(loss, *params, label_smoothing=float(label_smoothing))
    return _kernels.cached_params_tensor(loss, params, float(label_smoothing))


@_constexpr
def _plain_reduction(reduction):
    """reduction as a plain str (validated as a str before): a subclass (numpy.str_, or
    one whose == lies) must name a real reduction, or the kernels' table refuses it."""
    return str.__str__(reduction)


def _kernel_reduction(reduction):
    """The kernels' reduction for a call's (a plain str): 'weighted_mean' is
    their 'mean' rescaled (_call_mean); with no weight and no mask, that
    'mean' itself, the same bits."""
    return "mean" if reduction == "weighted_mean" else reduction


def _as_mask(mask):
    """The kernels' mask: bool, read in place; a float mask keeps its nonzero elements."""
    return mask if mask.dtype == _mstype.bool_ else _ms_ops.cast(mask, _mstype.bool_)


def _call_mean(mean, reduction, weight, mask):
    """The kernels' 'mean' -- sum(L) / N, or over the kept elements, sum(L) /
    sum(M), with a mask (they count them) -- turned into the call's: the
    weighted mean sum(L) / sum(W M) is that times mean(M) / mean(W M) (mean(M)
    = 1 without a mask), each mean over its tensors' own broadcast shape: each
    of their values reaches the same number of elements, so nothing passes
    over the N elements again (with a full-size mask, one pass over it); and a
    mean, unlike a sum, does not overflow a 16-bit dtype first.  The means are
    taken in float64 (float32 on Ascend); MindSpore ops, so autodiff gives the
    weight the quotient rule's term.  A product with a reciprocal, not a
    division: MindSpore 2.10's CPU Div returns -inf for NaN / 0 (an empty input
    with all-zero weights)."""
    if reduction != "weighted_mean" or weight is None:
        return mean
    acc = _validate.accumulation_dtype()
    w = _cast(weight, acc)
    if mask is None:
        return _cast(_cast(mean, acc) * _ms_ops.reciprocal(_ms_ops.mean(w)), mean.dtype)
    m = _cast(mask, acc)
    return _cast(_cast(mean, acc) * _ms_ops.mean(m) * _ms_ops.reciprocal(_ms_ops.mean(w * m)), mean.dtype)


def _run(op, operands, mask, t, reduction, weight):
    """The forward op called with the operands, then the mask (bool) and t
    where present; its 'mean' turned into the call's reduction (_call_mean)."""
    if mask is not None:
        mask = _as_mask(mask)
        operands = operands + (mask,)
    if t is not None:
        operands = operands + (t,)
    return _call_mean(op(*operands), reduction, weight, mask)


def _logits_loss(op_name, names, input, target, weight, pos_weight, reduction, loss="bce_with_logits", params=(),
                 label_smoothing=0.0, mask=None):
    """BCEWithLogitsLoss (or another loss on logits with its operands, such
    as the focal loss, with its scalar parameters' values) for every public
    spelling: op_name and names (input, target, weight, pos_weight as that
    API calls them) go into the error messages."""
    _validate.check_loss_args(op_name, names, _validate.FLOAT16_32_BF16, input, target, weight, pos_weight,
                              reduction, same_dtype=False)
    _validate.check_mask(op_name, names[0], mask, input)
    reduction = _plain_reduction(reduction)
    t = _scalars_operand(op_name, loss, params, label_smoothing, mask is not None)
    compute = _compute_dtype(input, target, weight, pos_weight)
    x = _cast(input, compute)
    y = _cast(target, compute)
    op = _forward_op(loss, _kernel_reduction(reduction), weight is not None, pos_weight is not None, mask is not None)
    operands = (x, y)
    if weight is not None:
        weight = _cast(weight, compute)
        operands = operands + (weight,)
    if pos_weight is not None:
        operands = operands + (_cast(pos_weight, compute),)
    return _run(op, operands, mask, t, reduction, weight)


@_docs.shared_sections
def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None, reduction='mean', *,
                                     label_smoothing=0.0, mask=None):
    r"""
    Binary cross entropy between the sigmoid of `input` (logits) and `target`, computed
    by ms_bce's fused C++ kernels. Mirrors :func:`mindspore.ops.binary_cross_entropy_with_logits`.

    With :math:`X` = `input`, :math:`Y` = `target`, :math:`W` = `weight` and :math:`P` =
    `pos_weight` (each 1 when not given), broadcast to the shape of `input`:

    .. math::
        L = W \left[ (1 - Y)\,\mathrm{softplus}(X) + P\,Y\,\mathrm{softplus}(-X) \right],
        \qquad \mathrm{softplus}(z) = \max(z, 0) + \log(1 + e^{-|z|})

    which equals :math:`-W[P Y \log\sigma(X) + (1 - Y)\log(1 - \sigma(X))]` and keeps full
    relative accuracy in both tails. A term whose coefficient is exactly zero contributes
    exactly zero, so an infinite logit with the agreeing label gives 0 (not NaN).
    Targets are not restricted to [0, 1].

    ``'mean'`` returns :math:`\sum L / N` with :math:`N` the number of elements: the plain
    mean of the weighted losses, as in MindSpore and PyTorch, not divided by the sum of the
    weights (ms_bce's ``'weighted_mean'`` is). ``'sum'`` returns :math:`\sum L`. Sums are
    accumulated in double precision in a fixed order, so they are deterministic and accurate
    to 1e-6 relative at any size.

    The gradients of all four inputs are exact, including those of `weight` and
    `pos_weight`, summed back to their own shapes (MindSpore's built-in returns zeros for
    those two).

    Args:
        input (Tensor): Logits, any shape. float16, float32 or bfloat16.
        target (Tensor): Targets, the shape of `input`. float16, float32 or bfloat16.
        weight (Tensor, optional): Rescaling weight, broadcastable to the shape of `input`.
            Default: ``None`` (all ones).
        pos_weight (Tensor, optional): Weight of positive examples, broadcastable to the
            shape of `input` (typically one value per class, along the last axis).
            Default: ``None`` (all ones).
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN

    Keyword Args:
        OPTIONS
        MASK

    Returns:
        Tensor of the promoted (widest) dtype of the operands (float16 with bfloat16 gives
        float32), of the shape of `input` for ``'none'``, else 0-d. Operands of different
        float dtypes are computed in that dtype; each gradient has its operand's own dtype.

    Raises:
        TypeError: If `input`, `target`, `weight` or `pos_weight` is not a Tensor.
        TypeError: If the dtype of any of them is not float16, float32 or bfloat16.
        TypeError: If `reduction` is not a str.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``.
        ValueError: If the shape of `target` differs from the shape of `input`.
        ValueError: If `weight` or `pos_weight` can not be broadcast to the shape of `input`.
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import mindspore
        >>> import numpy as np
        >>> from mindspore import Tensor
        >>> from ms_bce import ops
        >>> input = Tensor(np.array([[-0.8, 1.2, 0.7], [-0.1, -0.4, 0.7]]), mindspore.float32)
        >>> target = Tensor(np.array([[0.3, 0.8, 1.2], [-0.6, 0.1, 2.2]]), mindspore.float32)
        >>> weight = Tensor(np.array([1.0, 1.0, 1.0]), mindspore.float32)
        >>> pos_weight = Tensor(np.array([1.0, 1.0, 1.0]), mindspore.float32)
        >>> output = ops.binary_cross_entropy_with_logits(input, target, weight, pos_weight)
        >>> print(output)
        0.3463612
        >>> # the targets smoothed to y * 0.9 + 0.05 inside the kernel
        >>> print(ops.binary_cross_entropy_with_logits(input, target, label_smoothing=0.1))
        0.38752788
        >>> # the sum divided by the sum of the weights broadcast to (2, 3): 8, not 6
        >>> class_weight = Tensor(np.array([2.0, 1.0, 1.0]), mindspore.float32)
        >>> print(ops.binary_cross_entropy_with_logits(input, target, class_weight, reduction='weighted_mean'))
        0.40920806
        >>> # the mean over the four kept elements only
        >>> keep = Tensor(np.array([[True, True, False], [True, False, True]]))
        >>> print(ops.binary_cross_entropy_with_logits(input, target, mask=keep))
        0.31549147
    """
    return _logits_loss("binary_cross_entropy_with_logits", _FUNCTIONAL_NAMES,
                        input, target, weight, pos_weight, reduction, label_smoothing=label_smoothing, mask=mask)


@_docs.shared_sections
class BCEWithLogitsLoss(_ms_nn.Cell):
    r"""
    Binary cross entropy with logits as an operator: constructed once with `reduction`,
    called ``op(logits, label, weight, pos_weight)``. Mirrors
    :class:`mindspore.ops.BCEWithLogitsLoss`; usable inside ``Cell.construct`` in graph
    mode, under ``mindspore.jit`` and ``mindspore.vmap``. The computation is that of
    :func:`ms_bce.ops.binary_cross_entropy_with_logits`.

    (It is a ``Cell`` rather than a ``Primitive`` so that `weight` and `pos_weight` may be
    ``None``, as MindSpore 2.10's primitive allows, and so that ``vmap`` accepts it.)

    With :math:`X` = `logits`, :math:`Y` = `label`, :math:`W` = `weight` and :math:`P` = `pos_weight`
    (each 1 when not given), broadcast to the shape of `logits`:

    .. math::
        L = W \left[ (1 - Y)\,\mathrm{softplus}(X) + P\,Y\,\mathrm{softplus}(-X) \right]

    ``'none'`` returns :math:`L`, ``'mean'`` :math:`\sum L / N` (:math:`N` the number of
    elements, not the sum of the weights), ``'sum'`` :math:`\sum L`.

    Args:
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN

    Keyword Args:
        OPTIONS

    Inputs:
        - **logits** (Tensor) - Any shape; float16, float32 or bfloat16.
        - **label** (Tensor) - The shape of `logits`; float16, float32 or bfloat16.
        - **weight** (Tensor) - Broadcastable to the shape of `logits`, or ``None``.
        - **pos_weight** (Tensor) - Broadcastable to the shape of `logits`, or ``None``.
        MASK_INPUT

    Outputs:
        Tensor of the promoted (widest) dtype of the operands: the shape of `logits` for
        ``'none'``, else 0-d.

    Raises:
        TypeError: If `reduction` is not a str, or an input is not a Tensor, or an
            input's dtype is not float16, float32 or bfloat16.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``, if
            `label`'s shape differs from `logits`'s, or if `weight` or `pos_weight` can
            not be broadcast to it.
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import mindspore
        >>> import numpy as np
        >>> from mindspore import Tensor
        >>> from ms_bce import ops
        >>> input = Tensor(np.array([[-0.8, 1.2, 0.7], [-0.1, -0.4, 0.7]]), mindspore.float32)
        >>> target = Tensor(np.array([[0.3, 0.8, 1.2], [-0.6, 0.1, 2.2]]), mindspore.float32)
        >>> weight = Tensor(np.array([1.0, 1.0, 1.0]), mindspore.float32)
        >>> pos_weight = Tensor(np.array([1.0, 1.0, 1.0]), mindspore.float32)
        >>> loss = ops.BCEWithLogitsLoss()
        >>> output = loss(input, target, weight, pos_weight)
        >>> print(output)
        0.3463612
    """

    def __init__(self, reduction='mean', *, label_smoothing=0.0):
        super().__init__()
        _validate.check_reduction("BCEWithLogitsLoss", reduction)
        _validate.check_label_smoothing("BCEWithLogitsLoss", label_smoothing)
        self.reduction = reduction
        self.label_smoothing = float(label_smoothing)

    def construct(self, logits, label, weight=None, pos_weight=None, mask=None):
        return _logits_loss("BCEWithLogitsLoss", _PRIMITIVE_NAMES, logits, label, weight, pos_weight,
                            self.reduction, label_smoothing=self.label_smoothing, mask=mask)


def _probability_loss(op_name, names, allowed, input, target, weight, reduction, label_smoothing=0.0, mask=None):
    """BCELoss for every public spelling: op_name and names (input, target,
    weight as that API calls them) go into the error messages; allowed: the
    dtypes that API documents.  Target and weight must have input's dtype."""
    _validate.check_loss_args(op_name, names, allowed, input, target, weight, None, reduction, same_dtype=True)
    _validate.check_mask(op_name, names[0], mask, input)
    reduction = _plain_reduction(reduction)
    t = _scalars_operand(op_name, "bce", (), label_smoothing, mask is not None)
    op = _forward_op("bce", _kernel_reduction(reduction), weight is not None, False, mask is not None)
    operands = (input, target) if weight is None else (input, target, weight)
    return _run(op, operands, mask, t, reduction, weight)


@_docs.shared_sections
def binary_cross_entropy(logits, labels, weight=None, reduction='mean', *, label_smoothing=0.0, mask=None):
    r"""
    Binary cross entropy between probabilities `logits` and targets `labels`, computed by
    ms_bce's fused C++ kernels. Mirrors :func:`mindspore.ops.binary_cross_entropy`.

    With :math:`p` = `logits`, :math:`Y` = `labels`, :math:`W` = `weight` (1 when not
    given, broadcast to the shape of `logits`) and :math:`\epsilon = 10^{-12}`:

    .. math::
        L = -W \left[ Y \log(p + \epsilon) + (1 - Y) \log((1 - p) + \epsilon) \right]

    This is MindSpore 2.10's rule, found by experiment and matched: :math:`\epsilon` is
    added inside each logarithm (no clamp), and :math:`p + \epsilon` and
    :math:`(1 - p) + \epsilon` are formed in float32 as the built-in forms them, so
    :math:`p = 0, Y = 1` gives :math:`-\log\epsilon = 27.631021`. The logarithms and
    the rest are evaluated in double precision, so float16 inputs at :math:`p = 0` or
    :math:`1` give a finite loss (the built-in adds :math:`\epsilon` in float16, where it
    vanishes, and returns inf). PyTorch differs: it clamps each logarithm at -100, so
    :math:`p = 0, Y = 1` gives 100 there. A probability outside :math:`[0, 1]` raises a
    RuntimeError naming the first one and its flat index, as PyTorch and the built-in
    refuse it; NaN gives NaN.

    ``'mean'`` divides the sum by the number of elements (``'weighted_mean'`` by the sum of
    the weights); the mean of an empty tensor is NaN and its sum 0. A `weight` that broadcasts is
    applied with broadcasting (the built-in accepts such a weight but misreads it).

    Gradients are the exact derivatives of this forward, for all three inputs:
    :math:`\partial L/\partial p = W[(1 - Y)/((1 - p) + \epsilon) - Y/(p + \epsilon)]`,
    finite at :math:`p = 0` and :math:`1`;
    :math:`\partial L/\partial Y = W[\log((1 - p) + \epsilon) - \log(p + \epsilon)]`;
    :math:`\partial L/\partial W = L / W`, summed back to the shape of `weight` (the
    built-in returns zeros for the weight).

    Args:
        logits (Tensor): Probabilities, any shape; float16 or float32.
        labels (Tensor): Targets, the shape and dtype of `logits`.
        weight (Tensor, optional): Rescaling weight of the dtype of `logits`, broadcastable
            to its shape. Default: ``None``.
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN

    Keyword Args:
        OPTIONS
        MASK

    Returns:
        Tensor with the dtype of `logits`, of its shape for ``'none'``, else 0-d.

    Raises:
        TypeError: If `logits`, `labels` or `weight` is not a Tensor.
        TypeError: If the dtype of `logits`, `labels` or `weight` is neither float16 nor
            float32, or `labels` or `weight` has another dtype than `logits`.
        TypeError: If `reduction` is not a str.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``.
        ValueError: If the shape of `labels` differs from that of `logits`, or `weight`
            can not be broadcast to it.
        RuntimeError: If an element of `logits` is outside [0, 1] (NaN excepted: it gives NaN),
            naming the first such value and its flat index: when the result is read
            (PyNative) or at the step (graph mode).
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import mindspore
        >>> import numpy as np
        >>> from mindspore import Tensor
        >>> from ms_bce import ops
        >>> logits = Tensor(np.array([0.2, 0.7, 0.1]), mindspore.float32)
        >>> labels = Tensor(np.array([0., 1., 0.]), mindspore.float32)
        >>> weight = Tensor(np.array([1, 2, 2]), mindspore.float32)
        >>> output = ops.binary_cross_entropy(logits, labels, weight)
        >>> print(output)
        0.38240486
    """
    return _probability_loss("binary_cross_entropy", _BCE_NAMES, _validate.FLOAT16_32, logits, labels, weight,
                             reduction, label_smoothing, mask)


@_docs.shared_sections
class BinaryCrossEntropy(_ms_nn.Cell):
    r"""
    Binary cross entropy on probabilities as an operator: constructed once with
    `reduction`, called ``op(logits, labels, weight)`` (`weight` may be ``None``). Mirrors
    :class:`mindspore.ops.BinaryCrossEntropy`; the computation, gradients and errors are
    those of :func:`ms_bce.ops.binary_cross_entropy` (`reduction` is checked at
    construction).

    With :math:`p` = `logits`, :math:`Y` = `labels`, :math:`W` = `weight` (1 when not given,
    broadcast to the shape of `logits`) and :math:`\epsilon = 10^{-12}`:

    .. math::
        L = -W \left[ Y \log(p + \epsilon) + (1 - Y) \log((1 - p) + \epsilon) \right]

    ``'none'`` returns :math:`L`, ``'mean'`` :math:`\sum L / N`, ``'sum'`` :math:`\sum L`.

    Args:
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN

    Keyword Args:
        OPTIONS

    Inputs:
        - **logits** (Tensor) - Probabilities, any shape; float16 or float32.
        - **labels** (Tensor) - The shape and dtype of `logits`.
        - **weight** (Tensor) - The dtype of `logits`, broadcastable to its shape; or ``None``.
        MASK_INPUT

    Outputs:
        Tensor with the dtype of `logits`: its shape for ``'none'``, else 0-d.

    Raises:
        TypeError: If `reduction` is not a str, an input is not a Tensor, or a dtype is not
            float16 or float32 or differs from that of `logits`.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``, the
            shape of `labels` differs from that of `logits`, or `weight` can not be
            broadcast to it.
        RuntimeError: If an element of `logits` is outside [0, 1] (NaN excepted: it gives NaN),
            naming the first such value and its flat index: when the result is read
            (PyNative) or at the step (graph mode).
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import mindspore
        >>> import numpy as np
        >>> from mindspore import Tensor
        >>> from ms_bce import ops
        >>> binary_cross_entropy = ops.BinaryCrossEntropy()
        >>> logits = Tensor(np.array([0.2, 0.7, 0.1]), mindspore.float32)
        >>> labels = Tensor(np.array([0., 1., 0.]), mindspore.float32)
        >>> weight = Tensor(np.array([1, 2, 2]), mindspore.float32)
        >>> output = binary_cross_entropy(logits, labels, weight)
        >>> print(output)
        0.38240486
    """

    def __init__(self, reduction='mean', *, label_smoothing=0.0):
        super().__init__()
        _validate.check_reduction("BinaryCrossEntropy", reduction)
        _validate.check_label_smoothing("BinaryCrossEntropy", label_smoothing)
        self.reduction = reduction
        self.label_smoothing = float(label_smoothing)

    def construct(self, logits, labels, weight=None, mask=None):
        return _probability_loss("BinaryCrossEntropy", _BCE_NAMES, _validate.FLOAT16_32, logits, labels, weight,
                                 self.reduction, self.label_smoothing, mask)


def _focal_loss(op_name, names, inputs, targets, alpha, gamma, reduction, weight, pos_weight, label_smoothing=0.0,
                mask=None):
    """The sigmoid focal loss for both spellings (the function and the cell)."""
    _validate.check_float(op_name, "alpha", alpha)
    _validate.check_float(op_name, "gamma", gamma, minimum=0)
    return _logits_loss(op_name, names, inputs, targets, weight, pos_weight, reduction, loss="sigmoid_focal",
                        params=(float(alpha), float(gamma)), label_smoothing=label_smoothing, mask=mask)


@_docs.shared_sections
def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction='none', *, weight=None, pos_weight=None,
                       label_smoothing=0.0, mask=None):
    r"""
    The sigmoid focal loss of Lin et al., "Focal Loss for Dense Object Detection" (2017), as
    :func:`torchvision.ops.sigmoid_focal_loss` defines it, computed by ms_bce's fused kernels:
    binary cross entropy with logits scaled down where the prediction is already good.
    MindSpore has no such function (its :class:`mindspore.nn.FocalLoss` is the softmax one).

    With :math:`X` = `inputs`, :math:`Y` = `targets`, :math:`W` = `weight` and :math:`P` =
    `pos_weight` (each 1 when not given, broadcast to the shape of `inputs`):

    .. math::
        L = W\,\alpha_t\,\mathrm{ce}\,(1 - p_t)^{\gamma}

        \mathrm{ce} = (1 - Y)\,\mathrm{softplus}(X) + P\,Y\,\mathrm{softplus}(-X)

        1 - p_t = Y\,\sigma(-X) + (1 - Y)\,\sigma(X)

        \alpha_t = \alpha Y + (1 - \alpha)(1 - Y) \text{ if } \alpha \ge 0, \text{ else } 1

    With `weight` and `pos_weight` absent this is torchvision's definition exactly;
    :math:`\gamma = 0` gives BCE-with-logits times :math:`\alpha_t`. It is computed in a stable
    form: :math:`1 - p_t` as a sum of two non-negative terms (torchvision's ``1 - p_t`` cancels
    in the tails), the cross entropy by softplus, everything in double precision. The gradients
    of all four operands are exact and finite for every :math:`\gamma \ge 0`, including
    :math:`\gamma < 1`, where the derivative of :math:`(1 - p_t)^\gamma` alone is infinite as
    :math:`1 - p_t \to 0` (autodiff of the composition returns NaN there; ms_bce carries
    :math:`\mathrm{ce}\,(1 - p_t)^{\gamma - 1}` as its limit, 0).

    Args:
        inputs (Tensor): Logits, any shape. float16, float32 or bfloat16.
        targets (Tensor): Targets in [0, 1] (binary labels, or soft ones), the shape of `inputs`.
            float16, float32 or bfloat16.
        alpha (float, optional): Weight of the positive class in [0, 1]; a negative value
            turns the weighting off. Default: ``0.25``.
        gamma (float, optional): The focusing exponent, >= 0. Default: ``2.0``.
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'none'``
            WEIGHTED_MEAN
            (torchvision's default).

    Keyword Args:
        weight (Tensor, optional): Rescaling weight, broadcastable to the shape of `inputs`.
            Default: ``None``.
        pos_weight (Tensor, optional): Weight of the positive term of the cross entropy,
            broadcastable to the shape of `inputs` (typically one value per class). Default: ``None``.
        OPTIONS
        MASK

    Returns:
        Tensor of the promoted (widest) dtype of the operands, of the shape of `inputs` for
        ``'none'``, else 0-d.

    Raises:
        TypeError: If `inputs`, `targets`, `weight` or `pos_weight` is not a Tensor, or its dtype
            is not float16, float32 or bfloat16.
        TypeError: If `alpha` or `gamma` is not a float (or int), or `reduction` not a str.
        ValueError: If `alpha` is not finite, or `gamma` is not finite or is negative.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``.
        ValueError: If the shape of `targets` differs from that of `inputs`, or `weight` or
            `pos_weight` can not be broadcast to it.
        RuntimeError: On Ascend (no kernel yet).
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS_NO_ASCEND

    Examples:
        >>> import mindspore
        >>> import numpy as np
        >>> from mindspore import Tensor
        >>> from ms_bce import ops
        >>> inputs = Tensor(np.array([[2.0, -1.0, 0.5], [-3.0, 4.0, 0.0]]), mindspore.float32)
        >>> targets = Tensor(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), mindspore.float32)
        >>> output = ops.sigmoid_focal_loss(inputs, targets, reduction='mean')
        >>> print(output)
        0.49732032
        >>> print(ops.sigmoid_focal_loss(inputs, targets, alpha=-1.0, gamma=0.0))
        [[0.12692802 0.3132617  0.474077  ]
         [0.04858735 4.01815    0.6931472 ]]
    """
    return _focal_loss("sigmoid_focal_loss", _FOCAL_NAMES, inputs, targets, alpha, gamma, reduction, weight,
                       pos_weight, label_smoothing, mask)


# ------------------------------------------- relatives of BCEWithLogitsLoss ---
#
# MindSpore names whose loss is BCEWithLogitsLoss's with another face: computed
# by the same kernels (no C++ of their own), so they share its accuracy and
# its exact gradients.

_SIGMOID_NAMES = ("logits", "label", "weight", "pos_weight")
_MULTILABEL_NAMES = ("input", "target", "weight", "pos_weight")


@_docs.shared_sections
class SigmoidCrossEntropyWithLogits(_ms_nn.Cell):
    r"""
    Elementwise binary cross entropy between the sigmoid of `logits` and `label`, no
    reduction: constructed with no arguments, called ``op(logits, label)``. Mirrors
    :class:`mindspore.ops.SigmoidCrossEntropyWithLogits`; computed by ms_bce's
    BCEWithLogitsLoss kernel with ``reduction='none'``, so it equals
    ``ms_bce.ops.binary_cross_entropy_with_logits(logits, label, reduction='none')``.

    (It is a ``Cell`` rather than a ``Primitive``, as :class:`ms_bce.ops.BCEWithLogitsLoss`
    is; usable in PyNative, inside ``Cell.construct`` in graph mode and under ``mindspore.jit``.)

    With :math:`X` = `logits` and :math:`Y` = `label`:

    .. math::
        L = (1 - Y)\,\mathrm{softplus}(X) + Y\,\mathrm{softplus}(-X),
        \qquad \mathrm{softplus}(z) = \max(z, 0) + \log(1 + e^{-|z|})

    which equals MindSpore's :math:`-[Y \ln\sigma(X) + (1 - Y)\ln(1 - \sigma(X))]` and
    keeps full relative accuracy in both tails; an infinite logit with the agreeing label
    gives 0 (the built-in gives NaN). Labels are not restricted to [0, 1].

    Gradients of both inputs are exact: :math:`\partial L/\partial X = \sigma(X) - Y`
    and :math:`\partial L/\partial Y = \mathrm{softplus}(-X) - \mathrm{softplus}(X) = -X`
    (MindSpore 2.10's built-in returns zeros for the label).

    dtypes: MindSpore's built-in takes float16 or float32 (its CPU kernel also float64),
    `label` of the dtype of `logits`. ms_bce takes float16, float32 and bfloat16, as its
    other logits losses do, and operands of different dtypes are computed in the widest
    (the built-in refuses them); float64 is refused (the kernels have no float64).

    Keyword Args:
        OPTIONS

    Inputs:
        - **logits** (Tensor) - Any shape; float16, float32 or bfloat16.
        - **label** (Tensor) - The shape of `logits`; float16, float32 or bfloat16.
        MASK_INPUT

    Outputs:
        Tensor of the shape of `logits` and of the promoted (widest) dtype of the two
        (the dtype of `logits` when they agree).

    Raises:
        TypeError: If `logits` or `label` is not a Tensor, or its dtype is not float16,
            float32 or bfloat16.
        ValueError: If the shape of `label` differs from the shape of `logits`.
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import numpy as np
        >>> from mindspore import Tensor
        >>> from ms_bce import ops
        >>> logits = Tensor(np.array([[-0.8, 1.2, 0.7], [-0.1, -0.4, 0.7]]).astype(np.float32))
        >>> labels = Tensor(np.array([[0.3, 0.8, 1.2], [-0.6, 0.1, 2.2]]).astype(np.float32))
        >>> sigmoid = ops.SigmoidCrossEntropyWithLogits()
        >>> output = sigmoid(logits, labels)
        >>> print(output)
        [[ 0.6111007   0.5032824   0.263186  ]
         [ 0.58439666  0.55301523 -0.4368139 ]]

        (MindSpore's page prints 0.26318604, 0.5530153 and -0.43681398 for the last three:
        both within 3 float32 ULP of the float64 values, 0.26318602, 0.55301525, -0.43681397.)
    """

    def __init__(self, *, label_smoothing=0.0):
        super().__init__()
        _validate.check_label_smoothing("SigmoidCrossEntropyWithLogits", label_smoothing)
        self.label_smoothing = float(label_smoothing)

    def construct(self, logits, label, mask=None):
        return _logits_loss("SigmoidCrossEntropyWithLogits", _SIGMOID_NAMES, logits, label, None, None, "none",
                            label_smoothing=self.label_smoothing, mask=mask)


def _multilabel_loss(op_name, names, input, target, weight, reduction, label_smoothing=0.0, mask=None):
    """multilabel_soft_margin_loss for every public spelling: BCEWithLogitsLoss
    with `weight`, averaged over the last axis (the classes), then reduced.
    names: input, target, weight as that API calls them."""
    _validate.check_multilabel_args(op_name, names, input, target, weight, reduction)
    if weight is not None and not isinstance(weight, _Tensor):
        # a Python number weighs every class alike: a 0-d Tensor of the operands' dtype
        # (by way of float32: graph mode's ScalarToTensor makes no bfloat16)
        weight = _cast(_ms_ops.scalar_to_tensor(weight, _mstype.float32),
                       _compute_dtype(input, target))
    names = names[:3] + ("pos_weight",)
    out = _logits_loss(op_name, names, input, target, weight, None, reduction, label_smoothing=label_smoothing,
                       mask=mask)
    if reduction in ("mean", "weighted_mean"):
        # the mean over rows of (row sum / C) is the mean over all elements; the
        # weighted mean is over the elements' terms too
        return out
    if reduction == "sum":
        return out / input.shape[-1]
    # the row means accumulated in float32 (one rounding to a 16-bit dtype at the end)
    return _cast(_ms_ops.mean(_cast(out, _mstype.float32), -1), out.dtype)


@_docs.shared_sections
def multilabel_soft_margin_loss(input, target, weight=None, reduction='mean', *, label_smoothing=0.0, mask=None):
    r"""
    Multi-label soft margin loss: binary cross entropy with logits per class, averaged
    over the classes (the last axis), computed by ms_bce's BCEWithLogitsLoss kernels.
    Mirrors :func:`mindspore.ops.multilabel_soft_margin_loss`.

    With :math:`X` = `input` and :math:`Y` = `target` of shape :math:`(\ldots, C)`,
    :math:`W` = `weight` (1 when not given) broadcast to that shape, and
    :math:`\mathrm{softplus}(z) = \max(z, 0) + \log(1 + e^{-|z|})`, each row's loss is

    .. math::
        \ell = \frac{1}{C} \sum_{j=1}^{C} W_j \left[ Y_j\,\mathrm{softplus}(-X_j)
        + (1 - Y_j)\,\mathrm{softplus}(X_j) \right]

    MindSpore's definition, :math:`-\frac{1}{C}\sum_j W_j[Y_j \log\sigma(X_j) + (1 - Y_j)
    \log(1 - \sigma(X_j))]`, in a stable form: MindSpore's built-in evaluates
    :math:`\log(e^{-x} + 1)`, which overflows float32 for :math:`|x|` above about 88 and
    returns inf or NaN there (:math:`x = 200, y = 0`: inf; :math:`x = -200, y = 0`: NaN);
    ms_bce's is finite and keeps full relative accuracy in both tails.

    ``'none'`` returns :math:`\ell` per row, of shape ``input.shape[:-1]`` (0-d for a
    1-D `input`: one row); ``'mean'`` the mean of the rows' losses, which is the mean of
    all :math:`N` elements' weighted losses, exactly
    ``ms_bce.ops.binary_cross_entropy_with_logits(input, target, weight, None, 'mean')``;
    ``'sum'`` the sum of the rows' losses (the BCEWithLogitsLoss ``'sum'`` divided by
    :math:`C`). ``'weighted_mean'``: the weighted mean of the element terms,
    :math:`\sum_{ij} W_j L_{ij} / \sum_{ij} W_j` (the ``'mean'`` without `weight`). With `mask`
    a dropped element's term is 0: ``'none'`` gives each row the sum of its kept terms over
    :math:`C`, ``'mean'`` the mean of the kept terms.
    The kernels accumulate sums in double precision; the row means of ``'none'`` are
    accumulated in float32 by MindSpore's ``mean``. In graph mode
    MindSpore's runtime flushes subnormal numbers to zero in its own operators, so a row
    loss below float32's smallest normal number (1.2e-38) from ``'none'`` or ``'sum'``
    (whose division by :math:`C` is a MindSpore operator) is 0 there; ``'mean'`` is
    computed whole by the kernel and keeps it, as PyNative keeps all three.

    Gradients of `input`, `target` and a Tensor `weight` are exact (our fused backward
    kernel), the weight's summed back to its own shape, so a per-class `weight` can be a
    learned ``Parameter``.

    `input` may have any rank from 1 (MindSpore's functional form takes any rank of at
    least 1, its ``nn`` docstring says 2); a 0-d `input` has no class axis and is refused.
    Unlike the built-in, `target` must have the shape of `input` (the built-in broadcasts it).

    Args:
        input (Tensor): Scores (logits) of shape :math:`(\ldots, C)`, rank at least 1;
            float16, float32 or bfloat16.
        target (Tensor): Targets, the shape of `input`; float16, float32 or bfloat16.
        weight (Union[Tensor, int, float], optional): Rescaling weight of each class,
            broadcastable to the shape of `input` (typically :math:`(C,)`). An int or float
            weighs every class alike and becomes a 0-d Tensor of the operands' dtype.
            Default: ``None`` (all ones).
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN

    Keyword Args:
        OPTIONS
        MASK

    Returns:
        Tensor of the promoted (widest) dtype of the Tensor operands: of shape
        ``input.shape[:-1]`` for ``'none'``, else 0-d.

    Raises:
        TypeError: If `input` or `target` is not a Tensor, or `weight` is neither a
            Tensor, an int, a float nor ``None``.
        TypeError: If the dtype of `input`, `target` or a Tensor `weight` is not float16,
            float32 or bfloat16.
        TypeError: If `reduction` is not a str.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``.
        ValueError: If `input` is 0-d.
        ValueError: If the shape of `target` differs from the shape of `input`, or
            `weight` can not be broadcast to it.
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> from mindspore import Tensor
        >>> from ms_bce import ops
        >>> input = Tensor([[0.3, 0.6, 0.6], [0.9, 0.4, 0.2]])
        >>> target = Tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
        >>> loss = ops.multilabel_soft_margin_loss(input, target, reduction='mean')
        >>> print(loss.asnumpy())
        0.84693986

        This is the float64 value (0.8469398618) rounded to float32. MindSpore's page prints
        0.84693956 and its CPU built-in here 0.8469397: 5 and 3 float32 ULP below it.
    """
    return _multilabel_loss("multilabel_soft_margin_loss", _MULTILABEL_NAMES, input, target, weight, reduction,
                            label_smoothing, mask)


# ------------------------------------------- fused linear + BCE-with-logits ---
#
# The loss of input @ weight.T + bias over row chunks: a chunk's logits are
# made, reduced by the BCE kernel and dropped, and the backward makes them
# again (recompute), so at most one chunk's (rows, C) logits and their
# gradient exist at a time.  docs/design.md says why recompute and why this rule.

_LINEAR_NAME = "linear_binary_cross_entropy_with_logits"
LINEAR_MAX_CHUNKS = 32
LINEAR_MIN_ROWS = 256


def linear_chunk_rows(n, h, c, chunk_size=None):
    """Rows per chunk for input (n, h) and weight (c, h): chunk_size (at most n)
    when given; else n split into k = min(32, ceil(c / h), ceil(n / 256))
    chunks of equal rows (the last one shorter), so that a chunk's logits, rows
    x c, are about the input's own size, n x h (one chunk when c <= h: the
    logits are no larger than the input then), a chunk's matrix products have
    256 rows or more (smaller ones use the cores less well), and a graph
    unrolls at most 32 chunks."""
    if chunk_size is not None:
        return max(1, min(int(chunk_size), n))
    chunks = max(1, min(LINEAR_MAX_CHUNKS, -(-c // max(h, 1)), -(-n // LINEAR_MIN_ROWS)))
    return max(1, -(-n // chunks))


def _has_rows(shape, n):
    """Whether an operand broadcast to (n, C) has a row axis of its own (it is then sliced per chunk)."""
    return len(shape) == 2 and shape[0] == n and n > 1


class _LinearBCE(_ms_nn.Cell):
    """The fused loss for one configuration, called (x, w, y, b, p, m) with
    x (N, H), w (C, H) and b (C,) (or None) of one dtype, y (N, C) of any
    target dtype (cast chunk by chunk: a bool target is read as 1 byte an
    element), p broadcastable to (N, C) of x's dtype (or None), m a mask
    broadcastable to (N, C) (or None).  Its 0-d result: the 'sum', or the
    'mean' (over the kept elements with a mask), of x's dtype.

    Each chunk's forward is one MatMul and the BCE kernel ('sum', or 'mean'
    rescaled by the chunk's share of the elements, so a 16-bit sum never
    overflows where the whole mean would not); the chunks' results are summed
    in float64.  The bprop recomputes each chunk's logits and takes their
    gradient from the BCE backward kernel, then dx_c = dz w, dw += dz^T x_c,
    db += the column sums of dz.  ops.depend chains the chunks, so that graph
    mode's scheduler cannot make every chunk's logits before it reduces the
    first (the chunks are independent otherwise).  In graph mode each gradient
    of the BCE kernel is its own one-output op (``_kernels._make_split_bprop``):
    the target's (N, C) gradient is not computed unless it is used."""

    def __init__(self, bounds, c, mean, has_bias, has_pos_weight, pos_weight_rows, has_mask, mask_rows, bool_target,
                 label_smoothing, for_graph):
        super().__init__()
        self.bounds = bounds
        self.n = bounds[-1][1]
        self.c = c
        self.mean = mean
        self.has_bias = has_bias
        self.has_pos_weight = has_pos_weight
        self.pos_weight_rows = pos_weight_rows
        self.has_mask = has_mask
        self.mask_rows = mask_rows
        self.bool_target = bool_target
        self.split = for_graph or bool_target  # one-output gradient ops; else the fused backward (PyNative)
        reduction = "mean" if mean else "sum"
        loss = "bce_with_logits"
        device = _kernels.device_target()
        self.forward = _kernels.LossForward(loss, reduction, False, has_pos_weight, False, has_mask)
        if self.split:
            def one(direction):
                return _kernels.LossBackward(loss, reduction, False, has_pos_weight, device, direction, has_mask)
            self.grad_logits = one("backward_input")
            self.grad_target = None if bool_target else one("backward_target")
            self.grad_pos_weight = one("backward_pos_weight") if has_pos_weight else None
        else:
            self.backward = _kernels.LossBackward(loss, reduction, False, has_pos_weight, device, has_mask=has_mask)
        self.t = _kernels.params_tensor(loss, label_smoothing=float(label_smoothing))
        self.logits = _P.MatMul(transpose_b=True)    # x_c w^T
        self.weight_grad = _P.MatMul(transpose_a=True)  # dz^T x_c
        self.acc = _validate.accumulation_dtype()
        self.zeros_like = _P.ZerosLike()

    def _logits(self, x, w, b, s, e, after):
        """The chunk's inputs (rows s:e, sliced after `after` is computed) and logits.
        The operand waits, not the slice (depend(x[s:e], after) lets graph mode make
        every chunk's slice at the start: measured, every target slice alive at once)."""
        x_c = _ms_ops.depend(x, after)[s:e]
        z = self.logits(x_c, w)
        if self.has_bias:
            z = _ms_ops.bias_add(z, b)
        return x_c, z

    def _operands(self, z, y, p, m, s, e, after):
        """The BCE kernel's operands for rows s:e: (z, y_c[, p_c][, m_c], t)."""
        y_c = _cast(_ms_ops.depend(y, after)[s:e], z.dtype)
        operands = (z, y_c)
        if self.has_pos_weight:
            operands = operands + ((_ms_ops.depend(p, after)[s:e] if self.pos_weight_rows else p),)
        if self.has_mask:
            operands = operands + (self._chunk_mask(m, s, e, after),)
        return operands + (self.t,)

    def _chunk_mask(self, m, s, e, after):
        m_c = _ms_ops.depend(m, after)[s:e] if self.mask_rows else m
        return _as_mask(m_c)

    def _kept(self, m_c, rows):
        """Kept elements of `rows` rows (float64) of a mask m_c that broadcasts to them:
        its own count times the elements each of its values reaches (for a mask
        with a row axis, rows=1: it is the chunk's own)."""
        rows = rows if len(m_c.shape) < 2 or m_c.shape[0] == 1 else m_c.shape[0]
        reach = rows * self.c / m_c.size if m_c.size else 0.0
        return _ms_ops.cast(_ms_ops.cast(m_c, _mstype.int32).sum(), self.acc) * reach

    def _shares(self, m):
        """(each chunk's share of the result, the reciprocal of the kept total or
        None): for a 'sum' 1; for a mean the chunk's rows over N without a mask,
        with one the chunk's kept count (float64), the mean's denominator the
        kept total (its reciprocal: NaN for none kept, as an empty mean)."""
        if not self.mean:
            return tuple(1.0 for _ in self.bounds), None
        if not self.has_mask:
            return tuple((e - s) / self.n for s, e in self.bounds), None
        if not self.mask_rows:
            whole = self._kept(_as_mask(m), 1)  # per row
            kept = tuple(whole * (e - s) for s, e in self.bounds)
        else:
            # each chunk's count after the previous one's (one chunk's mask copies at a time)
            kept = (self._kept(_as_mask(m[self.bounds[0][0]:self.bounds[0][1]]), 1),)
            for s, e in self.bounds[1:]:
                kept = kept + (self._kept(_as_mask(_ms_ops.depend(m, kept[-1])[s:e]), 1),)
        return kept, _ms_ops.reciprocal(_ms_ops.addn(kept) if len(kept) > 1 else kept[0])

    def _scaled(self, loss, share):
        """A chunk's kernel result (float64) times its share; a masked chunk with
        nothing kept has a NaN mean (0 / 0) and a share of 0: it adds 0."""
        if self.mean and self.has_mask:
            return _ms_ops.select(share > 0, loss * share, _ms_ops.zeros_like(loss))
        if self.mean:
            return loss * share
        return loss

    def _chunk_dout(self, dout, share, inverse):
        """The kernel's incoming gradient for a chunk: dout times its share (over the kept total)."""
        if self.mean and self.has_mask:
            return _ms_ops.cast(_ms_ops.cast(dout, self.acc) * share * inverse, dout.dtype)
        if self.mean:
            return dout * share
        return dout

    # The chunks are unrolled in the source of construct and bprop (_unrolled):
    # MindSpore 2.10 compiles a Python `for` over them into a loop graph, and
    # its parameter elimination then fails ("The start_offset is 5, which
    # exceeds the number of new args 4") when the gradients are taken with
    # respect to Parameters (TrainOneStepCell) and a loop-carried value goes
    # unused.  Each chunk is a call of the methods below with a constant index.

    def _zero(self):
        return _ms_ops.zeros((), self.acc)

    def _forward_chunk(self, x, w, y, b, p, m, i, shares, total):
        """total plus chunk i's share of the result (its rows sliced after total is computed)."""
        s, e = self.bounds[i]
        z = self._logits(x, w, b, s, e, total)[1]
        loss = _ms_ops.cast(self.forward(*self._operands(z, y, p, m, s, e, total)), self.acc)
        return total + self._scaled(loss, shares[i])

    def _forward_result(self, total, inverse, x):
        if inverse is not None:
            total = total * inverse
        return _ms_ops.cast(total, x.dtype)

    def _kernel_grads(self, operands):
        """(dz, dy_c or None, dp_c or None): the BCE kernel's gradients of a chunk."""
        if not self.split:
            grads = self.backward(*operands)
            return grads[0], grads[1], (grads[2] if self.has_pos_weight else None)
        dy_c = None if self.bool_target else self.grad_target(*operands)
        dp_c = self.grad_pos_weight(*operands) if self.has_pos_weight else None
        return self.grad_logits(*operands), dy_c, dp_c

    def _grad_start(self, w, b, p):
        """The accumulated gradients before the first chunk: dw (None: the first
        chunk's product is its start, no (C, H) zeros), db and (without a row axis) dp."""
        dw = None
        db = self.zeros_like(b) if self.has_bias else None
        dp = self.zeros_like(p) if self.has_pos_weight and not self.pos_weight_rows else None
        return dw, db, dp

    def _backward_chunk(self, x, w, y, b, p, m, dout, i, shares, inverse, dw, db, dp):
        """Chunk i's (dx_c, dy_c, dp_c, dw, db, dp): its own gradients and the
        accumulated ones (its rows sliced after the previous chunk's dw)."""
        s, e = self.bounds[i]
        after = dout  # the first chunk waits for nothing
        if i > 0:
            after = dw
        x_c, z = self._logits(x, w, b, s, e, after)
        operands = self._operands(z, y, p, m, s, e, after) + (self._chunk_dout(dout, shares[i], inverse),)
        dz, dy_c, dp_c = self._kernel_grads(operands)
        if i > 0:
            dw = dw + self.weight_grad(dz, x_c)
        else:
            dw = self.weight_grad(dz, x_c)
        if self.has_bias:
            db = db + dz.sum(0)
        if self.has_pos_weight and not self.pos_weight_rows:
            dp = dp + dp_c
        return _ms_ops.matmul(dz, w), dy_c, dp_c, dw, db, dp

    def _grad_result(self, y, m, dxs, dys, dps, dw, db, dp):
        """bprop's gradients of (x, w, y, b, p, m) from the chunks' and the accumulated ones."""
        dx = _concat_rows(dxs)
        dy = self.zeros_like(y) if self.bool_target else _cast(_concat_rows(dys), y.dtype)
        if self.has_pos_weight and self.pos_weight_rows:
            dp = _concat_rows(dps)
        dm = self.zeros_like(m) if self.has_mask else None
        return dx, dw, dy, db, dp, dm


@_functools.lru_cache(maxsize=None)
def _unrolled(k):
    """_LinearBCE for k chunks: construct and bprop with the chunks written out."""
    forward = ["shares, inverse = self._shares(m)", "total = self._zero()"]
    forward += [f"total = self._forward_chunk(x, w, y, b, p, m, {i}, shares, total)" for i in range(k)]
    forward += ["return self._forward_result(total, inverse, x)"]
    backward = ["shares, inverse = self._shares(m)", "dw, db, dp = self._grad_start(w, b, p)"]
    backward += [f"dx{i}, dy{i}, dp{i}, dw, db, dp = self._backward_chunk(x, w, y, b, p, m, dout, {i}, shares, "
                 "inverse, dw, db, dp)" for i in range(k)]
    chunks = ", ".join(f"{{0}}{i}" for i in range(k)) + ("," if k == 1 else "")
    backward += [f"return self._grad_result(y, m, ({chunks.format('dx')}), ({chunks.format('dy')}), "
                 f"({chunks.format('dp')}), dw, db, dp)"]
    args = ("self", "x", "w", "y", "b", "p", "m")
    methods = {"construct": _kernels._bprop_factory(args, tuple(forward), (), "construct")(),
               "bprop": _kernels._bprop_factory(args + ("out", "dout"), tuple(backward), (), "bprop")()}
    return type(f"_LinearBCE{k}", (_LinearBCE,), methods)


def _concat_rows(chunks):
    return _ms_ops.concat(chunks, 0) if len(chunks) > 1 else chunks[0]


@_functools.lru_cache(maxsize=256)
def _linear_cell(bounds, *config):
    """One _LinearBCE per configuration (PyNative makes no new Cell per call;
    graph mode calls this while it compiles)."""
    return _unrolled(len(bounds))(bounds, *config)


@_constexpr
def _linear_plan(n, h, c, chunk_size):
    """The chunks' (start, stop) rows, or None for the unfused composition
    (a row count known only at run time, or no rows)."""
    if n is None or n <= 0 or c is None or c < 0 or h is None or h < 0:
        return None
    rows = linear_chunk_rows(n, h, c, chunk_size)
    return tuple((s, min(s + rows, n)) for s in range(0, n, rows))


@_constexpr
def _rows_of(shape, n):
    return _has_rows(shape, n)


def _linear_loss(op_name, input, weight, target, bias, pos_weight, reduction, label_smoothing, mask, chunk_size):
    """The fused linear + BCE-with-logits for both spellings (the function and the cell)."""
    _validate.check_linear_args(op_name, input, weight, target, bias, pos_weight, reduction, chunk_size)
    _validate.check_mask(op_name, "target", mask, target)
    _validate.check_label_smoothing(op_name, label_smoothing)
    _validate.check_not_ascend(op_name)
    reduction = _plain_reduction(reduction)
    compute = _compute_dtype(input, weight, target, bias, pos_weight)  # (a bool target does not count)
    x = _cast(input, compute)
    w = _cast(weight, compute)
    b = None if bias is None else _cast(bias, compute)
    p = None if pos_weight is None else _cast(pos_weight, compute)
    plan = _linear_plan(input.shape[0], input.shape[1], weight.shape[0], chunk_size)
    if reduction == "none" or plan is None:
        # the (N, C) losses are the result: the composition itself (no memory to gain)
        y = _cast(target, compute)
        return _logits_loss(op_name, _FUNCTIONAL_NAMES, _ms_ops.dense(x, w, b), y, None, p, reduction,
                            label_smoothing=label_smoothing, mask=mask)
    n = input.shape[0]
    cell = _linear_cell(plan, weight.shape[0], reduction in ("mean", "weighted_mean"), bias is not None, pos_weight is not None,
                        pos_weight is not None and _rows_of(pos_weight.shape, n), mask is not None,
                        mask is not None and _rows_of(mask.shape, n), target.dtype == _mstype.bool_,
                        float(label_smoothing), _validate.compiling(_validate.compile_marker))
    return cell(x, w, target, b, p, mask)


@_docs.shared_sections
def linear_binary_cross_entropy_with_logits(input, weight, target, bias=None, pos_weight=None, reduction='mean', *,
                                            label_smoothing=0.0, mask=None, chunk_size=None):
    r"""
    Binary cross entropy with logits of a linear layer's output, fused and computed over
    row chunks, so that the :math:`(N, C)` logits and their gradient are never held whole:
    the loss of a multi-label classifier's last layer with many labels. ms_bce's own
    (MindSpore has none); equal, within float32 rounding, to
    ``binary_cross_entropy_with_logits(ops.dense(input, weight, bias), target, None,
    pos_weight, reduction)``.

    With :math:`X` = `input` :math:`(N, H)`, :math:`A` = `weight` :math:`(C, H)`,
    :math:`b` = `bias` (0 when not given), :math:`Y` = `target` and :math:`P` = `pos_weight`
    (1 when not given), the logits are :math:`Z = X A^\top + b` and

    .. math::
        L = (1 - Y)\,\mathrm{softplus}(Z) + P\,Y\,\mathrm{softplus}(-Z),
        \qquad \mathrm{softplus}(z) = \max(z, 0) + \log(1 + e^{-|z|})

    How it is computed: the rows are cut into chunks; a chunk's logits are one matrix
    product, reduced at once by the fused BCE kernel and dropped. The backward makes each
    chunk's logits again (one more matrix product: recomputing costs less than keeping
    them), takes their gradient :math:`G` from the fused backward kernel and forms
    :math:`\partial X = G A` per chunk, :math:`\partial A = \sum G^\top X`,
    :math:`\partial b = \sum G` and :math:`\partial P`. At most one chunk's
    :math:`(\mathrm{rows}, C)` logits and their gradient exist at a time, in PyNative and in
    graph mode (the chunks are chained so that graph mode runs them in turn). Measured at
    :math:`N = 8192, H = 512, C = 32768` (README, Benchmark): a small fraction of the
    composition's peak memory, for about one more matrix product of time.

    `chunk_size` ``None`` takes the rule of ``ms_bce.ops.linear_chunk_rows``: the rows
    cut into :math:`k = \min(32, \lceil C / H \rceil, \lceil N / 256 \rceil)` chunks of equal
    size (the last one shorter), so that a chunk's logits are about the size of `input`
    itself, one chunk when :math:`C \le H` (the logits are then no larger than the input), a
    chunk has 256 rows or more (smaller matrix products use the cores less well), and graph
    mode, which unrolls the chunks, compiles at most 32. An int gives the rows of each chunk.
    Results do not depend on it beyond float32 rounding (each chunk's sum is exact to
    double precision; the chunks' results are added in float64).

    ``'mean'`` is :math:`\sum L / (N C)`, over the kept elements with `mask`;
    ``'weighted_mean'`` is the same (there is no `weight` here). ``'none'`` returns the
    :math:`(N, C)` losses: that is the composition itself, with no memory gained.
    The gradients of `input`, `weight`, `bias`, `pos_weight` and `target` are exact. In
    graph mode each is computed only where it is used: the target's :math:`(N, C)` gradient
    costs nothing in training; PyNative, which runs a backward whole, computes it too
    (zeros, and no pass, for a bool `target`). A shape known only at run time (graph mode,
    ``set_inputs``) has no chunks to plan and falls back to the composition.

    Args:
        input (Tensor): The layer's input, :math:`(N, H)`; float16 or float32.
        weight (Tensor): The layer's weight, :math:`(C, H)`; float16 or float32.
        target (Tensor): Targets, :math:`(N, C)`; float16, float32, bfloat16 or bool (read
            a chunk at a time, so a bool target is a quarter of a float32 one's bytes).
        bias (Tensor, optional): The layer's bias, :math:`(C,)`. Default: ``None``.
        pos_weight (Tensor, optional): Weight of positive examples, broadcastable to
            :math:`(N, C)` (typically one value per label, :math:`(C,)`). Default: ``None``.
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            ``'weighted_mean'`` (elsewhere the mean normalised by the weights) equals ``'mean'``
            here: this loss has no per-element weight (`weight` is the layer's).

    Keyword Args:
        OPTIONS
        MASK
        chunk_size (int, optional): Rows of each chunk, at least 1. Default: ``None`` (the
            rule above).

    Returns:
        Tensor of the promoted (widest) float dtype of the operands (a bool `target` does
        not count): 0-d, or :math:`(N, C)` for ``'none'``. Each gradient has its operand's dtype.

    Raises:
        TypeError: If `input`, `weight`, `target`, `bias`, `pos_weight` or `mask` is not a Tensor.
        TypeError: If the dtype of `input`, `weight`, `bias` or `pos_weight` is not float16 or
            float32 (MindSpore's CPU MatMul has no bfloat16), or that of `target` not bool,
            float16, float32 or bfloat16.
        TypeError: If `reduction` is not a str, or `chunk_size` neither an int nor ``None``.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``.
        ValueError: If `chunk_size` is below 1.
        ValueError: If `input` is not 2-D, `weight` not :math:`(C, H)`, `target` not
            :math:`(N, C)` or `bias` not :math:`(C,)` (the messages give the shapes of
            `input`, `weight` and `target`), or `pos_weight` or `mask` can not be broadcast to
            :math:`(N, C)`.
        RuntimeError: On Ascend (not verified there yet).
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS_NO_ASCEND

    Examples:
        >>> import mindspore
        >>> import numpy as np
        >>> from mindspore import Tensor
        >>> from ms_bce import ops
        >>> input = Tensor(np.array([[0.5, -1.0], [2.0, 0.3], [-0.7, 0.8]]), mindspore.float32)
        >>> weight = Tensor(np.array([[0.2, -0.4], [1.0, 0.5], [-0.3, 0.9], [0.6, 0.1]]), mindspore.float32)
        >>> bias = Tensor(np.array([0.1, -0.2, 0.0, 0.3]), mindspore.float32)
        >>> target = Tensor(np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]]), mindspore.float32)
        >>> loss = ops.linear_binary_cross_entropy_with_logits(input, weight, target, bias, chunk_size=2)
        >>> print(loss)
        0.7700698
        >>> # the same as the composition it replaces
        >>> logits = mindspore.ops.dense(input, weight, bias)
        >>> print(ops.binary_cross_entropy_with_logits(logits, target))
        0.7700698
        >>> # a bool target, a per-label pos_weight, and the gradients of input, weight and bias
        >>> labels = target > 0.5
        >>> pos_weight = Tensor(np.array([1.0, 2.0, 3.0, 1.0]), mindspore.float32)
        >>> def f(input, weight, bias):
        ...     return ops.linear_binary_cross_entropy_with_logits(input, weight, labels, bias, pos_weight)
        >>> grads = mindspore.grad(f, grad_position=(0, 1, 2))(input, weight, bias)
        >>> print(grads[2])
        [-0.02912592 -0.08698829 -0.06408148  0.07787225]
    """
    return _linear_loss(_LINEAR_NAME, input, weight, target, bias, pos_weight, reduction, label_smoothing, mask,
                        chunk_size)
