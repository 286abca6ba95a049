"""Device-only: MindSpore is not installable on the GPU machine (offline), but
the GPU kernel tests need only ms_bce._kernels.library_path and NumPy/CuPy.
Any `mindspore...` import yields a module whose attributes are MagicMocks."""
import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from unittest import mock


class _Meta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return mock.MagicMock(name=name)


def _init(self, *args, **kwargs):
    pass


# subpackages ms_bce imports by `from mindspore import nn` (the stub module,
# so `nn.Cell` is a real class to subclass, not a MagicMock)
_SUBMODULES = {"nn", "ops", "mint", "context", "common", "communication", "parallel", "train"}


class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in _SUBMODULES:
            value = importlib.import_module(f"{self.__name__}.{name}")
        elif name[:1].isupper():  # classes (subclassed by ms_bce): real classes
            value = _Meta(name, (), {"__init__": _init, "__getattr__": lambda self, n: mock.MagicMock(name=n)})
        else:
            value = mock.MagicMock(name=f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname == "mindspore" or fullname.startswith("mindspore."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _Module(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())
