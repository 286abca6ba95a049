"""Loss cells mirroring ``mindspore.nn``: argument order and Cell state only;
the computation is that of ``ms_bce.ops``."""
import math as _math

from mindspore import Parameter as _Parameter
from mindspore import dtype as _mstype
from mindspore import nn as _ms_nn
from mindspore.common.initializer import HeUniform as _HeUniform
from mindspore.common.initializer import Uniform as _Uniform
from mindspore.common.initializer import initializer as _initializer

from . import _docs, _validate
from .ops import (_FOCAL_NAMES, _focal_loss, _linear_loss, _LossCell, _logits_loss, _multilabel_loss,
                  _probability_loss)

__all__ = ["BCEWithLogitsLoss", "BCELoss", "MultiLabelSoftMarginLoss", "SigmoidFocalLoss", "LinearBCEWithLogitsLoss"]

# how these cells name input, target, weight, pos_weight (their construct's
# arguments, as in MindSpore 2.10: nn.BCEWithLogitsLoss takes input, target;
# nn.BCELoss logits, labels), also in error messages
_LOGITS_NAMES = ("input", "target", "weight", "pos_weight")
_NAMES = ("logits", "labels", "weight", "pos_weight")


@_docs.shared_sections
class BCEWithLogitsLoss(_LossCell):
    r"""
    Binary cross entropy with logits as a loss cell. Mirrors
    :class:`mindspore.nn.BCEWithLogitsLoss`; the computation is that of
    :func:`ms_bce.ops.binary_cross_entropy_with_logits`.

    Unlike MindSpore's, `weight` and `pos_weight` may be ``Parameter`` objects: their
    gradients are exact, so they can be learned.

    With :math:`X` = `input`, :math:`Y` = `target`, :math:`W` = `weight` and :math:`P` = `pos_weight`
    (each 1 when not given), broadcast to the shape of `input`:

    .. math::
        L = W \left[ (1 - Y)\,\mathrm{softplus}(X) + P\,Y\,\mathrm{softplus}(-X) \right]

    ``'none'`` returns :math:`L`, ``'mean'`` :math:`\sum L / N` (:math:`N` the number of
    elements, not the sum of the weights), ``'sum'`` :math:`\sum L`.

    Args:
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN
        weight (Tensor, optional): Rescaling weight, broadcastable to the input's shape.
            Default: ``None``.
        pos_weight (Tensor, optional): Weight of positive examples, broadcastable to the
            input's shape (typically one value per class). Default: ``None``.

    Keyword Args:
        OPTIONS

    Inputs:
        - **input** (Tensor) - Logits, any shape; float16, float32 or bfloat16.
        - **target** (Tensor) - The shape of `input`; float16, float32 or bfloat16.
        MASK_INPUT

    Outputs:
        Tensor of the promoted (widest) dtype of the operands: the shape of `input` for
        ``'none'``, else 0-d.

    Raises:
        TypeError: If `reduction` is not a str, `weight` or `pos_weight` is neither a Tensor
            nor ``None``, an input is not a Tensor, or a dtype is not float16, float32 or
            bfloat16.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``, if the
            shape of `target` differs from that of `input`, or if `weight` or `pos_weight`
            can not be broadcast to it.
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import mindspore as ms
        >>> import numpy as np
        >>> from ms_bce import nn
        >>> input = ms.Tensor(np.array([[-0.8, 1.2, 0.7], [-0.1, -0.4, 0.7]]).astype(np.float32))
        >>> target = ms.Tensor(np.array([[0.3, 0.8, 1.2], [-0.6, 0.1, 2.2]]).astype(np.float32))
        >>> loss = nn.BCEWithLogitsLoss()
        >>> output = loss(input, target)
        >>> print(output)
        0.3463612
    """

    def __init__(self, reduction='mean', weight=None, pos_weight=None, *, label_smoothing=0.0):
        super().__init__("BCEWithLogitsLoss", reduction, weight, pos_weight, label_smoothing)

    def construct(self, input, target, mask=None):
        return _logits_loss("BCEWithLogitsLoss", _LOGITS_NAMES, input, target, self.weight, self.pos_weight,
                            self.reduction, label_smoothing=self.label_smoothing, mask=mask)


@_docs.shared_sections
class BCELoss(_LossCell):
    r"""
    Binary cross entropy on probabilities as a loss cell. Mirrors
    :class:`mindspore.nn.BCELoss`; the computation (MindSpore's :math:`\epsilon = 10^{-12}`
    added inside each logarithm, PyTorch's -100 clamp not used), gradients and errors are
    those of :func:`ms_bce.ops.binary_cross_entropy`.

    `weight` broadcasts to the shape of the input (MindSpore documents a weight of the
    input's shape; its built-in accepts a broadcastable one but misreads it), and may be a
    ``Parameter`` (its gradient is exact).

    With :math:`p` = `logits`, :math:`Y` = `labels`, :math:`W` = `weight` (1 when not given,
    broadcast to the shape of `logits`) and :math:`\epsilon = 10^{-12}`:

    .. math::
        L = -W \left[ Y \log(p + \epsilon) + (1 - Y) \log((1 - p) + \epsilon) \right]

    ``'none'`` returns :math:`L`, ``'mean'`` :math:`\sum L / N`, ``'sum'`` :math:`\sum L`.

    Args:
        weight (Tensor, optional): Rescaling weight of the input's dtype, broadcastable to
            its shape. Default: ``None``.
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN

    Keyword Args:
        OPTIONS

    Inputs:
        - **logits** (Tensor) - Probabilities (the output of a sigmoid), any shape; float16
          or float32.
        - **labels** (Tensor) - The shape and dtype of `logits`.
        MASK_INPUT

    Outputs:
        Tensor with the dtype of `logits`: its shape for ``'none'``, else 0-d.

    Raises:
        TypeError: If `weight` is neither a Tensor nor ``None``, an input is not a Tensor,
            or a dtype is not float16 or float32 or differs from that of `logits`.
        TypeError: If `reduction` is not a str.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``.
        ValueError: If the shape of `labels` differs from that of `logits`, or `weight` can
            not be broadcast to it.
        RuntimeError: If an element of `logits` is outside [0, 1] (NaN excepted: it gives NaN),
            naming the first such value and its flat index: when the result is read
            (PyNative) or at the step (graph mode).
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import mindspore as ms
        >>> import numpy as np
        >>> from ms_bce import nn
        >>> weight = ms.Tensor(np.array([[1.0, 2.0, 3.0], [4.0, 3.3, 2.2]]), ms.float32)
        >>> loss = nn.BCELoss(weight=weight, reduction='mean')
        >>> logits = ms.Tensor(np.array([[0.1, 0.2, 0.3], [0.5, 0.7, 0.9]]), ms.float32)
        >>> labels = ms.Tensor(np.array([[0, 1, 0], [0, 0, 1]]), ms.float32)
        >>> output = loss(logits, labels)
        >>> print(output)
        1.8952923
    """

    def __init__(self, weight=None, reduction='mean', *, label_smoothing=0.0):
        super().__init__("BCELoss", reduction, weight, label_smoothing=label_smoothing)

    def construct(self, logits, labels, mask=None):
        return _probability_loss("BCELoss", _NAMES, _validate.FLOAT16_32, logits, labels, self.weight,
                                 self.reduction, self.label_smoothing, mask)



@_docs.shared_sections
class SigmoidFocalLoss(_LossCell):
    r"""
    The sigmoid focal loss as a loss cell: constructed with `alpha`, `gamma` and `reduction`,
    called ``loss(inputs, targets)``. The computation, gradients and errors are those of
    :func:`ms_bce.ops.sigmoid_focal_loss` (torchvision's definition, computed stably; MindSpore
    has no such cell: its :class:`mindspore.nn.FocalLoss` is the softmax focal loss).

    With :math:`X` = `inputs`, :math:`Y` = `targets`, :math:`W` = `weight`, :math:`P` =
    `pos_weight` (each 1 when not given) and :math:`1 - p_t = Y\,\sigma(-X) + (1 - Y)\,\sigma(X)`:

    .. math::
        L = W\,\alpha_t \left[(1 - Y)\,\mathrm{softplus}(X) + P\,Y\,\mathrm{softplus}(-X)\right]
        (1 - p_t)^{\gamma}, \qquad \alpha_t = \alpha Y + (1 - \alpha)(1 - Y) \text{ (1 if } \alpha < 0)

    ``'none'`` returns :math:`L`, ``'mean'`` :math:`\sum L / N`, ``'sum'`` :math:`\sum L`.

    Args:
        alpha (float, optional): Weight of the positive class; negative: no weighting.
            Default: ``0.25``.
        gamma (float, optional): The focusing exponent, >= 0. Default: ``2.0``.
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN
        weight (Tensor, optional): Rescaling weight, broadcastable to the input's shape; may be
            a ``Parameter`` (its gradient is exact). Default: ``None``.
        pos_weight (Tensor, optional): Weight of the positive term of the cross entropy,
            broadcastable to the input's shape. Default: ``None``.

    Keyword Args:
        OPTIONS

    Inputs:
        - **inputs** (Tensor) - Logits, any shape; float16, float32 or bfloat16.
        - **targets** (Tensor) - Targets in [0, 1], the shape of `inputs`.
        MASK_INPUT

    Outputs:
        Tensor of the promoted (widest) dtype of the operands: the shape of `inputs` for
        ``'none'``, else 0-d.

    Raises:
        TypeError: If `alpha` or `gamma` is not a float (or int), `reduction` is not a str,
            `weight` or `pos_weight` is neither a Tensor nor ``None``, an input is not a Tensor,
            or a dtype is not float16, float32 or bfloat16.
        ValueError: If `alpha` is not finite, `gamma` is not finite or negative, `reduction` is
            not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``, the shape of `targets` differs from
            that of `inputs`, or `weight` or `pos_weight` can not be broadcast to it.
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS_NO_ASCEND

    Examples:
        >>> import mindspore as ms
        >>> import numpy as np
        >>> from ms_bce import nn
        >>> inputs = ms.Tensor(np.array([[2.0, -1.0, 0.5], [-3.0, 4.0, 0.0]]), ms.float32)
        >>> targets = ms.Tensor(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), ms.float32)
        >>> loss = nn.SigmoidFocalLoss()
        >>> print(loss(inputs, targets))
        0.49732032
    """

    def __init__(self, alpha=0.25, gamma=2.0, reduction='mean', weight=None, pos_weight=None, *, label_smoothing=0.0):
        super().__init__("SigmoidFocalLoss", reduction, weight, pos_weight, label_smoothing)
        _validate.check_float("SigmoidFocalLoss", "alpha", alpha)
        _validate.check_float("SigmoidFocalLoss", "gamma", gamma, minimum=0)
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def construct(self, inputs, targets, mask=None):
        return _focal_loss("SigmoidFocalLoss", _FOCAL_NAMES, inputs, targets, self.alpha, self.gamma,
                           self.reduction, self.weight, self.pos_weight, self.label_smoothing, mask)
# MindSpore 2.10's MultiLabelSoftMarginLoss.construct takes (x, target)
_MULTILABEL_NAMES = ("x", "target", "weight")


@_docs.shared_sections
class MultiLabelSoftMarginLoss(_ms_nn.Cell):
    r"""
    Multi-label soft margin loss as a loss cell. Mirrors
    :class:`mindspore.nn.MultiLabelSoftMarginLoss`; the computation, gradients and
    accuracy are those of :func:`ms_bce.ops.multilabel_soft_margin_loss` (BCEWithLogitsLoss
    with a per-class weight, averaged over the last axis), finite for :math:`|x|` above 88
    where MindSpore's built-in returns inf or NaN.

    With :math:`X` = `x` and :math:`Y` = `target` of shape :math:`(\ldots, C)` and
    :math:`W` = `weight` (1 when not given) broadcast to that shape, each row's loss is

    .. math::
        \ell = \frac{1}{C} \sum_{j=1}^{C} W_j \left[ Y_j\,\mathrm{softplus}(-X_j)
        + (1 - Y_j)\,\mathrm{softplus}(X_j) \right]

    ``'none'`` returns :math:`\ell` per row (shape ``x.shape[:-1]``), ``'mean'`` their
    mean, ``'sum'`` their sum.

    `x` may have any rank from 1, as in MindSpore, whose cell calls its functional form
    (its docstring says rank 2); `weight` may be a ``Parameter`` (its gradient is exact).
    `reduction` and the type of `weight` are checked at construction.

    Args:
        weight (Union[Tensor, int, float], optional): Rescaling weight of each class,
            broadcastable to the input's shape (typically :math:`(C,)`); an int or float
            weighs every class alike. Default: ``None``.
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN

    Keyword Args:
        OPTIONS

    Inputs:
        - **x** (Tensor) - Scores (logits) of shape :math:`(\ldots, C)`, rank at least 1;
          float16, float32 or bfloat16.
        - **target** (Tensor) - The shape of `x`; float16, float32 or bfloat16.
        MASK_INPUT

    Outputs:
        Tensor of the promoted (widest) dtype of the Tensor operands: of shape
        ``x.shape[:-1]`` for ``'none'``, else 0-d.

    Raises:
        TypeError: If `reduction` is not a str, `weight` is neither a Tensor, an int, a
            float nor ``None``, an input is not a Tensor, or a dtype is not float16,
            float32 or bfloat16.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``, if `x`
            is 0-d, if the shape of `target` differs from that of `x`, or if `weight` can
            not be broadcast to it.
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import mindspore as ms
        >>> from ms_bce import nn
        >>> x = ms.Tensor([[0.3, 0.6, 0.6], [0.9, 0.4, 0.2]])
        >>> target = ms.Tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
        >>> loss = nn.MultiLabelSoftMarginLoss(reduction='mean')
        >>> out = loss(x, target)
        >>> print(out.asnumpy())
        0.84693986
    """

    def __init__(self, weight=None, reduction='mean', *, label_smoothing=0.0):
        super().__init__()
        _validate.check_reduction("MultiLabelSoftMarginLoss", reduction)
        _validate.check_class_weight("MultiLabelSoftMarginLoss", "weight", weight)
        _validate.check_label_smoothing("MultiLabelSoftMarginLoss", label_smoothing)
        self.weight = weight
        self.reduction = reduction
        self.label_smoothing = float(label_smoothing)

    def construct(self, x, target, mask=None):
        return _multilabel_loss("MultiLabelSoftMarginLoss", _MULTILABEL_NAMES, x, target, self.weight,
                                self.reduction, self.label_smoothing, mask)


@_docs.shared_sections
class LinearBCEWithLogitsLoss(_ms_nn.Cell):
    r"""
    A multi-label classifier's last layer and its binary cross entropy with logits in one
    cell, computed without the :math:`(N, C)` logits in memory: it holds the layer's
    ``weight`` :math:`(C, H)` and ``bias`` :math:`(C,)` Parameters, and its call is
    :func:`ms_bce.ops.linear_binary_cross_entropy_with_logits` of the input and the target
    with them (row chunks, recomputed in the backward). ms_bce's own (MindSpore has none);
    it replaces ``nn.Dense(in_features, num_labels)`` followed by
    ``nn.BCEWithLogitsLoss(reduction, pos_weight=pos_weight)``, with the same
    initialisation as ``nn.Dense`` (He-uniform weight, bias uniform in
    :math:`\pm 1/\sqrt{H}`), and trains in ``TrainOneStepCell``. At inference, the logits
    are ``mindspore.ops.dense(input, cell.weight, cell.bias)``.

    With :math:`Z = X A^\top + b` (:math:`A` = ``weight``, :math:`b` = ``bias``),
    :math:`Y` = `target` and :math:`P` = `pos_weight`:

    .. math::
        L = (1 - Y)\,\mathrm{softplus}(Z) + P\,Y\,\mathrm{softplus}(-Z)

    reduced by `reduction` (``'mean'``: :math:`\sum L / (N C)`).

    Args:
        in_features (int): :math:`H`, the size of each input row.
        num_labels (int): :math:`C`, the number of labels.
        bias (bool, optional): Whether the layer has a bias. Default: ``True``.
        pos_weight (Tensor, optional): Weight of positive examples, broadcastable to
            :math:`(N, C)` (typically :math:`(C,)`); a ``Parameter`` is learned with the rest.
            Default: ``None``.
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            ``'weighted_mean'`` (elsewhere the mean normalised by the weights) equals ``'mean'``
            here: this loss has no per-element weight (`weight` is the layer's).
        chunk_size (int, optional): Rows of each chunk. Default: ``None`` (the rule of
            :func:`ms_bce.ops.linear_binary_cross_entropy_with_logits`).

    Keyword Args:
        OPTIONS

    Inputs:
        - **input** (Tensor) - :math:`(N, H)`; float16 or float32 (computed in the widest of
          it and the float32 Parameters).
        - **target** (Tensor) - :math:`(N, C)`; bool (a quarter of float32's bytes: cast a
          chunk at a time), float16, float32 or bfloat16.
        MASK_INPUT

    Outputs:
        Tensor: 0-d, or :math:`(N, C)` for ``'none'``.

    Raises:
        TypeError: If `in_features` or `num_labels` is not an int, `bias` not a bool,
            `pos_weight` neither a Tensor nor ``None``, `reduction` not a str, or
            `chunk_size` neither an int nor ``None``.
        ValueError: If `in_features`, `num_labels` or `chunk_size` is below 1, or
            `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``.
        TypeError: If `input` or `target` is not a Tensor of a dtype listed above.
        ValueError: If `input` is not :math:`(N, H)` or `target` not :math:`(N, C)` (the
            message gives the shapes of `input`, ``weight`` and `target`), or `mask` can
            not be broadcast to :math:`(N, C)`.
        RuntimeError: On Ascend (not verified there yet).
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS_NO_ASCEND

    Examples:
        >>> import mindspore
        >>> import numpy as np
        >>> from mindspore import Tensor
        >>> from ms_bce import nn
        >>> head = nn.LinearBCEWithLogitsLoss(in_features=2, num_labels=4)
        >>> print(head.weight.shape, head.bias.shape)
        (4, 2) (4,)
        >>> input = Tensor(np.array([[0.5, -1.0], [2.0, 0.3], [-0.7, 0.8]]), mindspore.float32)
        >>> target = Tensor(np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]]) > 0)
        >>> _ = head.weight.set_data(Tensor(np.array([[0.2, -0.4], [1.0, 0.5], [-0.3, 0.9], [0.6, 0.1]]), mindspore.float32))
        >>> _ = head.bias.set_data(Tensor(np.array([0.1, -0.2, 0.0, 0.3]), mindspore.float32))
        >>> print(head(input, target))
        0.7700698
        >>> optimizer = mindspore.nn.SGD(head.trainable_params(), learning_rate=0.5)
        >>> step = mindspore.nn.TrainOneStepCell(head, optimizer)
        >>> losses = [float(step(input, target).asnumpy()) for _ in range(3)]
        >>> print(np.round(losses, 4))
        [0.7701 0.7391 0.7101]
    """

    def __init__(self, in_features, num_labels, bias=True, pos_weight=None, reduction='mean', chunk_size=None, *,
                 label_smoothing=0.0):
        super().__init__()
        name = "LinearBCEWithLogitsLoss"
        _validate.check_positive_int(name, "in_features", in_features)
        _validate.check_positive_int(name, "num_labels", num_labels)
        _validate.check_bool(name, "bias", bias)
        _validate.check_optional_tensor(name, "pos_weight", pos_weight)
        _validate.check_reduction(name, reduction)
        _validate.check_chunk_size(name, chunk_size)
        _validate.check_label_smoothing(name, label_smoothing)
        # nn.Dense's initialisation (MindSpore 2.10): He-uniform weight, bias uniform in +-1/sqrt(in_features)
        self.weight = _Parameter(_initializer(_HeUniform(negative_slope=_math.sqrt(5)), [num_labels, in_features],
                                              _mstype.float32).init_data(), name="weight")
        self.bias = None
        if bias:
            self.bias = _Parameter(_initializer(_Uniform(1 / _math.sqrt(in_features)), [num_labels],
                                                _mstype.float32).init_data(), name="bias")
        self.pos_weight = pos_weight
        self.reduction = reduction
        self.chunk_size = chunk_size
        self.label_smoothing = float(label_smoothing)

    def construct(self, input, target, mask=None):
        return _linear_loss("LinearBCEWithLogitsLoss", input, self.weight, target, self.bias, self.pos_weight,
                            self.reduction, self.label_smoothing, mask, self.chunk_size)
