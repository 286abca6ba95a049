"""Loss cells mirroring ``mindspore.mint.nn``: argument order and Cell state only."""
from ... import _docs, _validate
from ...ops import _LossCell, _logits_loss, _probability_loss
from . import functional

__all__ = ["BCEWithLogitsLoss", "BCELoss", "functional"]

_NAMES = ("input", "target", "weight", "pos_weight")


@_docs.shared_sections
class BCEWithLogitsLoss(_LossCell):
    r"""
    Binary cross entropy with logits as a loss cell, with mint's argument order. Mirrors
    :class:`mindspore.mint.nn.BCEWithLogitsLoss`; the computation is that of
    :func:`ms_bce.ops.binary_cross_entropy_with_logits`.

    With :math:`X` = `input`, :math:`Y` = `target`, :math:`W` = `weight` and :math:`P` = `pos_weight`
    (each 1 when not given), broadcast to the shape of `input`:

    .. math::
        L = W \left[ (1 - Y)\,\mathrm{softplus}(X) + P\,Y\,\mathrm{softplus}(-X) \right]

    ``'none'`` returns :math:`L`, ``'mean'`` :math:`\sum L / N` (:math:`N` the number of
    elements, not the sum of the weights), ``'sum'`` :math:`\sum L`.

    Args:
        weight (Tensor, optional): Rescaling weight, broadcastable to the input's shape.
            Default: ``None``.
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN
        pos_weight (Tensor, optional): Weight of positive examples, broadcastable to the
            input's shape. Default: ``None``.

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
        TypeError: If `reduction` is not a str, an argument is not a Tensor, or a dtype is
            not float16, float32 or bfloat16.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``, if the
            shape of `target` differs from that of `input`, or if `weight` or `pos_weight`
            can not be broadcast to it.
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import mindspore
        >>> from ms_bce import mint
        >>> input = mindspore.tensor([[-0.8, 1.2, 0.7], [-0.1, -0.4, 0.7]])
        >>> target = mindspore.tensor([[0.3, 0.8, 1.2], [-0.6, 0.1, 2.2]])
        >>> loss = mint.nn.BCEWithLogitsLoss()
        >>> output = loss(input, target)
        >>> print(output)
        0.3463612
    """

    def __init__(self, weight=None, reduction='mean', pos_weight=None, *, label_smoothing=0.0):
        super().__init__("BCEWithLogitsLoss", reduction, weight, pos_weight, label_smoothing)

    def construct(self, input, target, mask=None):
        return _logits_loss("BCEWithLogitsLoss", _NAMES, input, target, self.weight, self.pos_weight,
                            self.reduction, label_smoothing=self.label_smoothing, mask=mask)


@_docs.shared_sections
class BCELoss(_LossCell):
    r"""
    Binary cross entropy on probabilities as a loss cell, with mint's argument names.
    Mirrors :class:`mindspore.mint.nn.BCELoss`; the computation, gradients and errors are
    those of :func:`ms_bce.ops.binary_cross_entropy`, with bfloat16 accepted as well (as
    mint documents; MindSpore's CPU kernel has none).

    With :math:`p` = `input`, :math:`Y` = `target`, :math:`W` = `weight` (1 when not given,
    broadcast to the shape of `input`) and :math:`\epsilon = 10^{-12}`:

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
        - **input** (Tensor) - Probabilities, any shape; float16, float32 or bfloat16.
        - **target** (Tensor) - The shape and dtype of `input`.
        MASK_INPUT

    Outputs:
        Tensor with the dtype of `input`: its shape for ``'none'``, else 0-d.

    Raises:
        TypeError: If `weight` is neither a Tensor nor ``None``, an input is not a Tensor, a
            dtype is not float16, float32 or bfloat16 or differs from that of `input`, or
            `reduction` is not a str.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``, the
            shape of `target` differs from that of `input`, or `weight` can not be
            broadcast to it.
        RuntimeError: If an element of `input` is outside [0, 1] (NaN excepted: it gives NaN),
            naming the first such value and its flat index (as 'logits'): when the result is read
            (PyNative) or at the step (graph mode).
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import mindspore
        >>> from ms_bce import mint
        >>> input = mindspore.tensor([[0.1, 0.2, 0.3], [0.5, 0.7, 0.9]], mindspore.float32)
        >>> target = mindspore.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], mindspore.float32)
        >>> weight = mindspore.tensor([[1.0, 2.0, 3.0], [4.0, 3.3, 2.2]], mindspore.float32)
        >>> loss = mint.nn.BCELoss(weight, reduction='mean')
        >>> print(loss(input, target))
        1.8952923
    """

    def __init__(self, weight=None, reduction='mean', *, label_smoothing=0.0):
        super().__init__("BCELoss", reduction, weight, label_smoothing=label_smoothing)

    def construct(self, input, target, mask=None):
        return _probability_loss("BCELoss", _NAMES, _validate.FLOAT16_32_BF16, input, target, self.weight,
                                 self.reduction, self.label_smoothing, mask)
