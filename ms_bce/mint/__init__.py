"""Names mirroring ``mindspore.mint``."""
from . import nn

__all__ = ["nn"]
