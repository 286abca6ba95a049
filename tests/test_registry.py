"""The loss registry (ms_bce/_losses.py) against what is built: its entry
points are exactly the kernel functions the CPU library exports (and the GPU
library, where it was built), each with its ``<name>InferShape``;
``_kernels.entry_point`` refuses every combination the registry has no kernel
for; the bprops of every operand set have the fixed arity MindSpore needs;
and the copy that MindSpore-free modules load by path
(``tests.abi.load_registry``) is the same table."""
import ctypes
import inspect
import itertools
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest

from ms_bce import _kernels
from ms_bce import _losses as registry
from tests.abi import BAD_PARAM_COUNT, BAD_SHAPE, OK, launch, load_registry

# the library's other exports: the settings functions (ms_bce_*) and toolchain
# symbols (_init, _fini, mangled C++ names _Z...)
NOT_KERNELS = ("_", "ms_bce_")


def nm_symbols(path):
    """Defined dynamic symbols by ``nm -D --defined-only``; None without a working nm."""
    nm = shutil.which("nm")
    if nm is None:
        return None
    proc = subprocess.run([nm, "-D", "--defined-only", path], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return {m.group(1) for m in re.finditer(r"^[0-9a-fA-F]+ \S (\S+)$", proc.stdout, re.M)}


def elf_symbols(path):
    """Defined global and weak symbols of an ELF64 little-endian file's
    dynamic symbol table (.dynsym), read directly; None for another format."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # ELFCLASS64, ELFDATA2LSB
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    # (sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = set()
    for sec in (s for s in sections if s[1] == 11):  # SHT_DYNSYM
        strtab_offset = sections[sec[6]][4]
        for off in range(sec[4] + sec[9], sec[4] + sec[5], sec[9]):  # (entry 0 is the null symbol)
            st_name, st_info, _, st_shndx, _, _ = struct.unpack_from("<IBBHQQ", data, off)
            if st_shndx != 0 and st_info >> 4 in (1, 2, 10):  # defined; GLOBAL, WEAK, GNU_UNIQUE
                end = data.index(b"\0", strtab_offset + st_name)
                names.add(data[strtab_offset + st_name:end].decode())
    return names


def exported(path):
    """(kernel functions, InferShape functions) the library exports."""
    names = nm_symbols(path)
    if names is None:
        names = elf_symbols(path)
    if names is None:
        pytest.skip(f"cannot list the symbols of {path}: no nm, and not an ELF64 little-endian file")
    ours = {n for n in names if not n.startswith(NOT_KERNELS)}
    infer = {n for n in ours if n.endswith("InferShape")}
    return ours - infer, infer


def expected_exports():
    names = [e.name for e in registry.entry_points()]
    assert len(names) == len(set(names)), "two registry entries share a name"
    return set(names), {n + "InferShape" for n in names}


def gpu_library():
    try:
        return _kernels.library_path("GPU")
    except RuntimeError as e:
        pytest.skip(f"the GPU library is not built here ({str(e).split(':')[0]})")


def test_cpu_library_exports_exactly_the_registry_entry_points():
    kernels, infer = exported(_kernels.library_path("CPU"))
    want_kernels, want_infer = expected_exports()
    assert sorted(kernels - want_kernels) == [], "exported but not in the registry"
    assert sorted(want_kernels - kernels) == [], "in the registry but not exported"
    assert infer == want_infer


def test_gpu_library_exports_exactly_the_registry_entry_points():
    kernels, infer = exported(gpu_library())
    want_kernels, want_infer = expected_exports()
    assert sorted(kernels - want_kernels) == [], "exported but not in the registry"
    assert sorted(want_kernels - kernels) == [], "in the registry but not exported"
    assert infer == want_infer


@pytest.mark.parametrize("loss", list(registry.LOSSES))
def test_kernels_take_the_registry_scalar_parameters(loss):
    """Every loss's kernels take a t operand of its registry scalars: its
    scalar parameters, then the drivers' options (custom_ops/common/params.h)."""
    lib = ctypes.CDLL(_kernels.library_path("CPU"))
    x = np.full((3,), 0.5, np.float32)
    out = np.zeros((3,), np.float32)
    n = len(registry.scalars(loss))
    assert registry.scalars(loss) == registry.LOSSES[loss].params + ("label_smoothing",)
    name = registry.entry_name(loss, "forward", "none", False, False)
    assert launch(lib, name, [x, x, np.zeros((n,), np.float32), out]) == OK
    assert launch(lib, name, [x, x, np.zeros((n + 1,), np.float32), out]) == BAD_SHAPE
    assert launch(lib, name, [x, x, out]) == BAD_PARAM_COUNT


def test_elf_reader_agrees_with_nm():
    """The fallback used where nm is missing lists what nm lists."""
    path = _kernels.library_path("CPU")
    from_nm, from_elf = nm_symbols(path), elf_symbols(path)
    if from_nm is None or from_elf is None:
        pytest.skip("needs both nm and an ELF64 little-endian library")
    assert from_elf == from_nm


def test_entry_point_refuses_every_combination_without_a_kernel():
    """Every (loss, direction, reduction, operands), unknown loss and direction
    included: a kernel's path and name where the registry has one, else the
    documented ValueError."""
    cpu = _kernels.library_path("CPU")
    refused = set()
    for loss, direction, reduction, hw, hp in itertools.product(
            tuple(registry.LOSSES) + ("focal",), registry.DIRECTIONS + ("backward_sideways",), registry.REDUCTIONS,
            (False, True), (False, True)):
        combo = (loss, direction, reduction, hw, hp)
        if registry.has_kernel(*combo):
            name = registry.entry_name(*combo)
            assert _kernels.entry_point(*combo, "CPU") == f"{cpu}:{name}"
            assert _kernels.entry_point(*combo, "Ascend") == _kernels.ascend_op_name(name)
            assert registry.parse_entry(name) == registry.Entry(name, *combo)
            continue
        refused.add(combo)
        for device in ("CPU", "Ascend"):
            with pytest.raises(ValueError, match=re.escape(f"ms_bce has no kernel for {combo}")):
                _kernels.entry_point(*combo, device)
    assert {("bce", "forward", "mean", False, True),  # BCELoss has no pos_weight
            ("bce_with_logits", "backward_weight", "sum", False, True),  # no weight, no weight gradient
            ("bce_with_logits", "backward_pos_weight", "none", True, False),
            ("focal", "forward", "mean", False, False)} <= refused
    with pytest.raises(ValueError, match=re.escape("For 'BCELoss', 'reduction' must be one of "
                                                   "['none', 'mean', 'sum'], but got 'avg'.")):
        _kernels.entry_point("bce", "forward", "avg", False, False)
    with pytest.raises(ValueError, match="ms_bce has no entry point named 'bce_forward_mean_p'"):
        registry.parse_entry("bce_forward_mean_p")


def test_kernels_and_path_loaded_copies_read_the_one_registry():
    assert _kernels.LOSSES == tuple(registry.LOSSES)
    assert _kernels.DIRECTIONS is registry.DIRECTIONS and _kernels.REDUCTIONS is registry.REDUCTIONS
    assert _kernels._LOSS_NAMES == {name: loss.display for name, loss in registry.LOSSES.items()}
    loaded = load_registry()
    assert loaded.LOSSES == registry.LOSSES
    assert [tuple(e) for e in loaded.entry_points()] == [tuple(e) for e in registry.entry_points()]


SECOND_ORDER = ("For '{}', second-order gradients are not supported: ms_bce's backward kernel has no derivative of "
                "its own. Differentiate the loss once.")


@pytest.mark.parametrize("loss", list(registry.LOSSES))
def test_bprops_have_the_fixed_arity_of_each_operand_set(loss):
    """MindSpore calls a bprop with exactly (operands..., out, dout) (the
    backward's: (operands..., dout, out, ddout)) and graph mode parses its
    source: the bprops, written once and compiled per arity, have both."""
    for (hw, hp), hm in ((s, m) for s in registry.operand_sets(loss) for m in registry.MASKS):
        # (named by position; m, the mask, after them; t, the scalar parameters and options, last)
        operands = ["x", "y", "w", "p"][:registry.n_operands(hw, hp)] + ["m"] * hm + ["t"]
        for for_graph in (False, True):
            bprop = _kernels.LossForward(loss, "mean", hw, hp, for_graph, has_mask=hm).bprop
            assert list(inspect.signature(bprop).parameters) == operands + ["out", "dout"]
            assert inspect.getsource(bprop).lstrip().startswith(f"def bprop({', '.join(operands)}, out, dout):")
        backward = _kernels.LossBackward(loss, "sum", hw, hp, "CPU", has_mask=hm)
        assert list(inspect.signature(backward.bprop).parameters) == operands + ["dout", "out", "ddout"]
        assert "raise RuntimeError(" in inspect.getsource(backward.bprop)
        with pytest.raises(RuntimeError) as info:
            backward.bprop(*range(len(operands) + 3))
        assert str(info.value) == SECOND_ORDER.format(registry.LOSSES[loss].display)


def test_bprop_source_is_found_without_a_folder_for_its_file(monkeypatch):
    """Where no temporary folder can be made, the source is in linecache alone."""
    monkeypatch.setattr(_kernels, "_bprop_folder", lambda: None)
    _kernels._bprop_factory.cache_clear()
    try:
        bprop = _kernels._make_second_order_bprop("BCELoss", 3)
        assert bprop.__code__.co_filename.startswith("<ms_bce._kernels bprop_")
        assert "raise RuntimeError(" in inspect.getsource(bprop)
    finally:
        _kernels._bprop_factory.cache_clear()
