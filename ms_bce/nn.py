"""Loss cells mirroring ``mindspore.nn``: argument order and Cell state only;
the computation is that of ``ms_bce.ops``."""
from mindspore import nn as _ms_nn

from . import _validate
from .ops import _logits_loss

__all__ = ["BCEWithLogitsLoss"]

_NAMES = ("logits", "labels", "weight", "pos_weight")


class BCEWithLogitsLoss(_ms_nn.Cell):
    r"""
    Binary cross entropy with logits as a loss cell. Mirrors
    :class:`mindspore.nn.BCEWithLogitsLoss`; the computation is that of
    :func:`ms_bce.ops.binary_cross_entropy_with_logits`.

    Unlike MindSpore's, `weight` and `pos_weight` may be ``Parameter`` objects: their
    gradients are exact, so they can be learned.

    Args:
        reduction (str, optional): ``'none'``, ``'mean'`` or ``'sum'``. Default: ``'mean'``.
        weight (Tensor, optional): Rescaling weight, broadcastable to the logits' shape.
            Default: ``None``.
        pos_weight (Tensor, optional): Weight of positive examples, broadcastable to the
            logits' shape (typically one value per class). Default: ``None``.

    Inputs:
        - **logits** (Tensor) - Any shape; float16, float32 or bfloat16.
        - **labels** (Tensor) - The shape of `logits`; float16, float32 or bfloat16.

    Outputs:
        Tensor with the dtype of `logits`: its shape for ``'none'``, else 0-d.

    Raises:
        TypeError: If `reduction` is not a str, `weight` or `pos_weight` is neither a Tensor
            nor ``None``, an input is not a Tensor, or a dtype is not float16, float32 or
            bfloat16.
        ValueError: If `reduction` is not one of ``'none'``, ``'mean'``, ``'sum'``, if the
            shape of `labels` differs from that of `logits`, or if `weight` or `pos_weight`
            can not be broadcast to it.

    Supported Platforms:
        ``CPU``

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

    def __init__(self, reduction='mean', weight=None, pos_weight=None):
        super().__init__()
        _validate.check_reduction("BCEWithLogitsLoss", reduction)
        _validate.check_optional_tensor("BCEWithLogitsLoss", "weight", weight)
        _validate.check_optional_tensor("BCEWithLogitsLoss", "pos_weight", pos_weight)
        self.reduction = reduction
        self.weight = weight
        self.pos_weight = pos_weight

    def construct(self, logits, labels):
        return _logits_loss("BCEWithLogitsLoss", _NAMES, logits, labels, self.weight, self.pos_weight,
                            self.reduction)
