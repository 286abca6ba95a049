"""Functions mirroring ``mindspore.mint.nn.functional`` (mint's argument order)."""
from ... import _docs, _validate
from ...ops import _logits_loss, _probability_loss

__all__ = ["binary_cross_entropy_with_logits", "binary_cross_entropy"]

_NAMES = ("input", "target", "weight", "pos_weight")


@_docs.shared_sections
def binary_cross_entropy_with_logits(input, target, weight=None, reduction='mean', pos_weight=None, *,
                                     label_smoothing=0.0, mask=None):
    r"""
    Binary cross entropy between the sigmoid of `input` and `target`. Mirrors
    :func:`mindspore.mint.nn.functional.binary_cross_entropy_with_logits`, whose argument
    order differs from :func:`ms_bce.ops.binary_cross_entropy_with_logits`: `reduction`
    comes before `pos_weight`. Same computation, gradients, dtypes (float16, float32,
    bfloat16) and errors as that function.

    With :math:`X` = `input`, :math:`Y` = `target`, :math:`W` = `weight` and :math:`P` = `pos_weight`
    (each 1 when not given), broadcast to the shape of `input`:

    .. math::
        L = W \left[ (1 - Y)\,\mathrm{softplus}(X) + P\,Y\,\mathrm{softplus}(-X) \right]

    ``'none'`` returns :math:`L`, ``'mean'`` :math:`\sum L / N` (:math:`N` the number of
    elements, not the sum of the weights), ``'sum'`` :math:`\sum L`.

    Args:
        input (Tensor): Logits, any shape.
        target (Tensor): Targets, the shape of `input`.
        weight (Tensor, optional): Broadcastable to the shape of `input`. Default: ``None``.
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN
        pos_weight (Tensor, optional): Broadcastable to the shape of `input`. Default: ``None``.

    Keyword Args:
        OPTIONS
        MASK

    Returns:
        Tensor of the promoted (widest) dtype of the operands, of the shape of `input` for
        ``'none'``, else 0-d.

    Raises:
        TypeError: If `input`, `target`, `weight` or `pos_weight` is not a Tensor, or its
            dtype is not float16, float32 or bfloat16, or `reduction` is not a str.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, ``'weighted_mean'``, if the
            shape of `target` differs from that of `input`, or if `weight` or `pos_weight`
            can not be broadcast to it.
        OPTIONS_RAISES

    Supported Platforms:
        PLATFORMS

    Examples:
        >>> import mindspore
        >>> import numpy as np
        >>> from mindspore import Tensor
        >>> from ms_bce import mint
        >>> input = Tensor(np.array([[-0.8, 1.2, 0.7], [-0.1, -0.4, 0.7]]), mindspore.float32)
        >>> target = Tensor(np.array([[0.3, 0.8, 1.2], [-0.6, 0.1, 2.2]]), mindspore.float32)
        >>> weight = Tensor(np.array([1.0, 1.0, 1.0]), mindspore.float32)
        >>> pos_weight = Tensor(np.array([1.0, 1.0, 1.0]), mindspore.float32)
        >>> output = mint.nn.functional.binary_cross_entropy_with_logits(input, target, weight, 'mean', pos_weight)
        >>> print(output)
        0.3463612
    """
    return _logits_loss("binary_cross_entropy_with_logits", _NAMES, input, target, weight, pos_weight, reduction,
                        label_smoothing=label_smoothing, mask=mask)


@_docs.shared_sections
def binary_cross_entropy(input, target, weight=None, reduction='mean', *, label_smoothing=0.0, mask=None):
    r"""
    Binary cross entropy on probabilities. Mirrors
    :func:`mindspore.mint.nn.functional.binary_cross_entropy`; the computation (MindSpore's
    :math:`\epsilon = 10^{-12}` inside each logarithm), gradients, dtypes (float16,
    float32) and errors are those of :func:`ms_bce.ops.binary_cross_entropy`.

    With :math:`p` = `input`, :math:`Y` = `target`, :math:`W` = `weight` (1 when not given,
    broadcast to the shape of `input`) and :math:`\epsilon = 10^{-12}`:

    .. math::
        L = -W \left[ Y \log(p + \epsilon) + (1 - Y) \log((1 - p) + \epsilon) \right]

    ``'none'`` returns :math:`L`, ``'mean'`` :math:`\sum L / N`, ``'sum'`` :math:`\sum L`.

    Args:
        input (Tensor): Probabilities, any shape; float16 or float32.
        target (Tensor): Targets, the shape and dtype of `input`.
        weight (Tensor, optional): Rescaling weight of the dtype of `input`, broadcastable
            to its shape. Default: ``None``.
        reduction (str, optional): ``'none'``, ``'mean'``, ``'sum'`` or ``'weighted_mean'``. Default: ``'mean'``.
            WEIGHTED_MEAN

    Keyword Args:
        OPTIONS
        MASK

    Returns:
        Tensor with the dtype of `input`, of its shape for ``'none'``, else 0-d.

    Raises:
        TypeError: If `input`, `target` or `weight` is not a Tensor, or its dtype is neither
            float16 nor float32 or differs from that of `input`, or `reduction` is not a str.
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
        >>> import numpy as np
        >>> from mindspore import Tensor
        >>> from ms_bce import mint
        >>> input = Tensor(np.array([0.2, 0.7, 0.1]), mindspore.float32)
        >>> target = Tensor(np.array([0., 1., 0.]), mindspore.float32)
        >>> weight = Tensor(np.array([1, 2, 2]), mindspore.float32)
        >>> output = mint.nn.functional.binary_cross_entropy(input, target, weight)
        >>> print(output)
        0.38240486
    """
    return _probability_loss("binary_cross_entropy", _NAMES, _validate.FLOAT16_32, input, target, weight, reduction,
                             label_smoothing, mask)
