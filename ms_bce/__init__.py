"""ms_bce: binary cross entropy losses for MindSpore on our own kernels.

``ms_bce.ops``, ``ms_bce.nn`` and ``ms_bce.mint`` mirror the MindSpore names of
the same spelling; each is backed by ``mindspore.ops.Custom(func_type="aot")``
operators over C++ kernels built at install time.  ``ms_bce.patch()`` makes
MindSpore's own names resolve to these (``ms_bce.unpatch()`` reverses it).
"""
from . import mint, nn, ops
from ._kernels import get_num_threads, set_num_threads
from ._patch import is_patched, patch, patched_names, unpatch
from ._version import __version__

__all__ = ["ops", "nn", "mint", "patch", "unpatch", "is_patched", "patched_names", "set_num_threads",
           "get_num_threads", "__version__"]
