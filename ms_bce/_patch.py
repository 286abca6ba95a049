"""The drop-in switch: ``patch()`` makes MindSpore's own names resolve to
ms_bce's, ``unpatch()`` puts MindSpore's back.

Patching replaces module attributes: after ``ms_bce.patch()``,
``mindspore.nn.BCEWithLogitsLoss`` *is* ``ms_bce.nn.BCEWithLogitsLoss`` and so
on for every name in ``NAMES``, in every public module through which MindSpore
exposes the same object (``ALIASES``).  Whatever a name held when it was
patched is saved and put back by ``unpatch()``.

What it cannot reach (see docs/patching.rst):

- a name bound before ``patch()`` (``from mindspore.nn import BCELoss``) keeps
  the object it was bound to (but see below), and an instance made before
  ``patch()`` stays the built-in;
- a graph compiled before ``patch()`` keeps the built-in: MindSpore resolves
  names while it compiles a graph and then reuses the compiled graph.

MindSpore's own ``nn.BCEWithLogitsLoss``, ``nn.BCELoss``,
``nn.MultiLabelSoftMarginLoss``, ``mint.nn.BCELoss`` and ``mint.nn.functional``
losses call ``mindspore.ops.<function>`` (or
``mindspore.ops.function.<function>``) when they run, so while patched even
those built-in objects compute with ms_bce's kernels (in PyNative at each call,
in graph mode when a graph is compiled).

The defining modules (``mindspore.ops.function.nn_func``,
``mindspore.ops.auto_generate``, ``mindspore.ops.operations.nn_ops``,
``mindspore.nn.loss.loss``) are left alone: training code does not import from
them, and MindSpore's own internals (vmap rules, ``mint.nn`` cells) build
primitives from them, which must stay MindSpore's primitives.

The switch is process-wide (module attributes are shared by all threads).
``patch`` and ``unpatch`` hold a lock, so concurrent calls cannot corrupt the
saved originals, but code running or compiling in other threads sees names
change under it: patch before starting training threads.
"""
import importlib
import threading

from . import mint, nn, ops

__all__ = ["patch", "unpatch", "is_patched", "patched_names"]

# MindSpore name -> the ms_bce object it resolves to while patched.
NAMES = {
    "mindspore.ops.binary_cross_entropy_with_logits": ops.binary_cross_entropy_with_logits,
    "mindspore.ops.BCEWithLogitsLoss": ops.BCEWithLogitsLoss,
    "mindspore.ops.binary_cross_entropy": ops.binary_cross_entropy,
    "mindspore.ops.BinaryCrossEntropy": ops.BinaryCrossEntropy,
    "mindspore.nn.BCEWithLogitsLoss": nn.BCEWithLogitsLoss,
    "mindspore.nn.BCELoss": nn.BCELoss,
    "mindspore.mint.nn.BCEWithLogitsLoss": mint.nn.BCEWithLogitsLoss,
    "mindspore.mint.nn.BCELoss": mint.nn.BCELoss,
    "mindspore.mint.nn.functional.binary_cross_entropy_with_logits":
        mint.nn.functional.binary_cross_entropy_with_logits,
    "mindspore.mint.nn.functional.binary_cross_entropy": mint.nn.functional.binary_cross_entropy,
    "mindspore.ops.SigmoidCrossEntropyWithLogits": ops.SigmoidCrossEntropyWithLogits,
    "mindspore.ops.multilabel_soft_margin_loss": ops.multilabel_soft_margin_loss,
    "mindspore.nn.MultiLabelSoftMarginLoss": nn.MultiLabelSoftMarginLoss,
}

# Other public modules that expose the very same MindSpore objects, and which
# training code imports from (``from mindspore.ops import operations as P``,
# ``from mindspore.ops import functional as F``, ``from mindspore.nn.loss
# import BCELoss``): alias -> the name in NAMES it mirrors.
ALIASES = {
    "mindspore.ops.function.binary_cross_entropy_with_logits": "mindspore.ops.binary_cross_entropy_with_logits",
    "mindspore.ops.function.binary_cross_entropy": "mindspore.ops.binary_cross_entropy",
    "mindspore.ops.functional.binary_cross_entropy_with_logits": "mindspore.ops.binary_cross_entropy_with_logits",
    "mindspore.ops.functional.binary_cross_entropy": "mindspore.ops.binary_cross_entropy",
    "mindspore.ops.operations.BCEWithLogitsLoss": "mindspore.ops.BCEWithLogitsLoss",
    "mindspore.ops.operations.BinaryCrossEntropy": "mindspore.ops.BinaryCrossEntropy",
    "mindspore.nn.loss.BCEWithLogitsLoss": "mindspore.nn.BCEWithLogitsLoss",
    "mindspore.nn.loss.BCELoss": "mindspore.nn.BCELoss",
    "mindspore.ops.operations.SigmoidCrossEntropyWithLogits": "mindspore.ops.SigmoidCrossEntropyWithLogits",
    "mindspore.ops.function.multilabel_soft_margin_loss": "mindspore.ops.multilabel_soft_margin_loss",
    "mindspore.ops.functional.multilabel_soft_margin_loss": "mindspore.ops.multilabel_soft_margin_loss",
    "mindspore.nn.loss.MultiLabelSoftMarginLoss": "mindspore.nn.MultiLabelSoftMarginLoss",
}

_lock = threading.RLock()
_saved = {}  # dotted name -> what it held before patch(); empty when not patched


def _targets():
    """(dotted name, module, attribute, replacement) for every name patched."""
    replacements = dict(NAMES)
    replacements.update({alias: NAMES[name] for alias, name in ALIASES.items()})
    for dotted, replacement in replacements.items():
        module_name, _, attr = dotted.rpartition(".")
        module = importlib.import_module(module_name)
        if not hasattr(module, attr):
            raise RuntimeError(f"ms_bce.patch(): MindSpore has no '{dotted}' (ms_bce mirrors MindSpore 2.10).")
        yield dotted, module, attr, replacement


class _Restore:
    """Returned by patch(): as a context manager, it puts back on exit (also
    on an exception) the state found when patch() was called."""

    def __init__(self, was_patched):
        self._was_patched = was_patched

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._was_patched:
            unpatch()
        return False

    def __repr__(self):
        return f"<ms_bce.patch: {len(_saved)} MindSpore names resolve to ms_bce>"


def patch():
    """Make MindSpore's own loss names resolve to ms_bce's.

    After ``ms_bce.patch()``, ``mindspore.nn.BCEWithLogitsLoss`` is
    ``ms_bce.nn.BCEWithLogitsLoss``, ``mindspore.ops.binary_cross_entropy_with_logits``
    is ``ms_bce.ops.binary_cross_entropy_with_logits``, and so on for every
    MindSpore name that an ms_bce name mirrors, in every public module that
    exposes it (``ms_bce.patched_names()`` lists them while patched), so that
    existing training code uses ms_bce's kernels without other change.
    Calling it again changes nothing. ``ms_bce.unpatch()`` reverses it.

    Used as a context manager, ``with ms_bce.patch(): ...`` patches for the
    block and, on leaving it (by an exception too), restores the state found
    on entry: names patched before the block stay patched.

    Names bound before the call (``from mindspore.nn import BCELoss``),
    instances created before it and graphs compiled before it are not
    changed; see "Switching existing code" in the documentation.

    Returns:
        A context manager restoring the previous state on exit.

    Examples:
        >>> import mindspore
        >>> import ms_bce
        >>> with ms_bce.patch():
        ...     print(mindspore.nn.BCEWithLogitsLoss is ms_bce.nn.BCEWithLogitsLoss)
        True
        >>> print(mindspore.nn.BCEWithLogitsLoss is ms_bce.nn.BCEWithLogitsLoss)
        False
    """
    with _lock:
        was_patched = bool(_saved)
        if not was_patched:
            targets = list(_targets())  # all resolved first: a missing name patches nothing
            for dotted, module, attr, replacement in targets:
                _saved[dotted] = (module, attr, getattr(module, attr))
                setattr(module, attr, replacement)
        return _Restore(was_patched)


def unpatch():
    """Put back what ``patch()`` replaced. Without an earlier ``patch()`` it does nothing.

    Examples:
        >>> import mindspore
        >>> import ms_bce
        >>> _ = ms_bce.patch()
        >>> print(ms_bce.is_patched(), mindspore.ops.BCEWithLogitsLoss is ms_bce.ops.BCEWithLogitsLoss)
        True True
        >>> ms_bce.unpatch()
        >>> print(ms_bce.is_patched(), mindspore.ops.BCEWithLogitsLoss is ms_bce.ops.BCEWithLogitsLoss)
        False False
    """
    with _lock:
        for module, attr, original in _saved.values():
            setattr(module, attr, original)
        _saved.clear()


def is_patched():
    """True while MindSpore's names resolve to ms_bce's (between ``patch()`` and ``unpatch()``).

    Examples:
        >>> import ms_bce
        >>> with ms_bce.patch():
        ...     print(ms_bce.is_patched())
        True
        >>> print(ms_bce.is_patched())
        False
    """
    return bool(_saved)


def patched_names():
    """The dotted MindSpore names currently patched (empty when not patched).

    Examples:
        >>> import ms_bce
        >>> with ms_bce.patch():
        ...     names = ms_bce.patched_names()
        >>> print(len(names), names[0])
        25 mindspore.ops.binary_cross_entropy_with_logits
        >>> print(ms_bce.patched_names())
        ()
    """
    with _lock:
        return tuple(_saved)
