"""ms_bce: binary cross entropy losses for MindSpore on our own kernels.

``ms_bce.ops``, ``ms_bce.nn`` and ``ms_bce.mint`` mirror the MindSpore names of
the same spelling; each is backed by ``mindspore.ops.Custom(func_type="aot")``
operators over C++ kernels built at install time.
"""
from . import mint, nn, ops
from ._kernels import get_num_threads, set_num_threads
from ._version import __version__

__all__ = ["ops", "nn", "mint", "set_num_threads", "get_num_threads", "__version__"]
