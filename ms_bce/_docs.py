"""Docstring sections every public name shares, written once.

A docstring's ``Supported Platforms:`` section holds the single line
``PLATFORMS``; ``shared_sections`` replaces it with ``PLATFORMS_TEXT`` (in the
docstring's own indentation), a ``Keyword Args:`` line ``OPTIONS`` with
``OPTIONS_TEXT``, a line ``WEIGHTED_MEAN`` under `reduction` with
``WEIGHTED_MEAN_TEXT``, and a line ``MASK`` (functions' keyword arguments) or
``MASK_INPUT`` (cells' inputs) with the mask's text, and a last line
``OPTIONS_RAISES`` of ``Raises:`` with those options' errors, so the API pages, ``help()`` and the README's
"Platforms" table cannot drift apart: tests/test_docs.py checks every public
name carries it.
"""
import re

# What each device target's kernels have been verified to do (README "Platforms").
PLATFORMS_TEXT = """\
``CPU`` ``GPU`` ``Ascend``

- ``CPU``: verified through MindSpore, in PyNative and graph mode (the whole test suite).
- ``GPU``: the CUDA kernels were run on an NVIDIA H100 through ctypes, not through
  MindSpore's GPU runtime (which needs CUDA 11 runtimes the test machines lack).
- ``Ascend``: Ascend C sources; not compiled here (no CANN toolkit)."""

# The same for a loss with no Ascend kernel yet (its registry entry's ascend=False).
PLATFORMS_NO_ASCEND_TEXT = """\
``CPU`` ``GPU``

- ``CPU``: verified through MindSpore, in PyNative and graph mode (the whole test suite).
- ``GPU``: the CUDA kernels are built and tested on the host (the same element maths as the CPU's);
  not yet run on a device.
- ``Ascend``: no kernel yet (a RuntimeError at the call)."""

# The options every loss name takes beyond MindSpore's arguments (keyword-only),
# for its "Keyword Args:" section: the line OPTIONS.
OPTIONS_TEXT = r"""label_smoothing (float, optional): Smooths the targets to
    :math:`Y (1 - \varepsilon) + \varepsilon / 2` (Keras' rule), :math:`\varepsilon` in
    [0, 1], inside the fused kernels (no extra pass over the targets): the smoothed target is
    formed in double precision and rounded once to the operands' dtype, and the target's
    gradient is the loss's gradient there times :math:`1 - \varepsilon`. A bool or a
    non-number raises TypeError, a value outside [0, 1] (or NaN) ValueError. Not on Ascend
    (a RuntimeError unless 0). Default: ``0.0`` (the targets as given, bit for bit)."""

# The reduction every loss name takes beyond MindSpore's three, for the text
# under its `reduction` argument: the line WEIGHTED_MEAN.
WEIGHTED_MEAN_TEXT = r"""``'weighted_mean'`` (ms_bce's own) divides the sum by the sum of
`weight` broadcast to the elements, :math:`\sum L / \sum W` (the mean normalised by the
weights, PyTorch #2180), and is ``'mean'`` when there is no `weight`. It is computed as the
kernels' mean divided by the weight's own mean in double precision (float32 on Ascend): no
second pass over the elements, no overflow of a 16-bit sum. The weight's gradient has the
quotient rule's term. All-zero weights give NaN, as an empty mean does."""

# The mask every loss name takes: a keyword argument of the functions (the line
# MASK under "Keyword Args:") and an input of the cells (MASK_INPUT under "Inputs:").
_MASK_BODY = r"""which elements count: bool (or a float Tensor, whose nonzero
    elements are kept), broadcastable to the shape of the input. Where it is false an element
    contributes exactly 0 to the loss and to every gradient, whatever its input, target, weight
    or incoming gradient holds (NaN and inf included); the kernels read the mask in place (no
    copy of the kept elements). ``'mean'`` then divides by the number of kept elements and
    ``'weighted_mean'`` by :math:`\sum W M` (NaN when nothing is kept). Not on Ascend (a
    RuntimeError)."""
MASK_TEXT = "mask (Tensor, optional): The mask of " + _MASK_BODY + " Default: ``None`` (every element)."
MASK_INPUT_TEXT = "- **mask** (Tensor, optional) - The mask of " + _MASK_BODY + " Default: ``None``."

# The errors of those options, for the end of every "Raises:" section: the line OPTIONS_RAISES.
OPTIONS_RAISES_TEXT = """\
TypeError: If `label_smoothing` is a bool or not a number, or `mask` is neither a Tensor nor
    ``None``, or its dtype is not bool, float16, float32 or bfloat16.
ValueError: If `label_smoothing` is outside [0, 1] (or NaN), or the shape of `mask` can not
    be broadcast to that of the input.
RuntimeError: On Ascend, if `label_smoothing` is not 0 or a `mask` is given."""

_MARKER = re.compile(r"^([ \t]*)(PLATFORMS|PLATFORMS_NO_ASCEND|OPTIONS|OPTIONS_RAISES|WEIGHTED_MEAN|MASK|MASK_INPUT)"
                     r"[ \t]*$", re.M)


def shared_sections(obj):
    """Decorator: obj's docstring with its PLATFORMS (and OPTIONS) lines expanded."""
    doc = obj.__doc__ or ""
    if not _MARKER.search(doc):
        raise AssertionError(f"{obj.__qualname__}'s docstring has no PLATFORMS line in 'Supported Platforms:'")
    texts = {"PLATFORMS": PLATFORMS_TEXT, "PLATFORMS_NO_ASCEND": PLATFORMS_NO_ASCEND_TEXT, "OPTIONS": OPTIONS_TEXT,
             "OPTIONS_RAISES": OPTIONS_RAISES_TEXT, "WEIGHTED_MEAN": WEIGHTED_MEAN_TEXT, "MASK": MASK_TEXT, "MASK_INPUT": MASK_INPUT_TEXT}
    obj.__doc__ = _MARKER.sub(lambda m: "\n".join(m.group(1) + line if line else "" for line in
                                                  texts[m.group(2)].splitlines()), doc)
    return obj
