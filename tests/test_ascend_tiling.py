"""The Ascend C operators without CANN: their tiling arithmetic
(custom_ops/ascend/op_host/bce_tiling_math.h) and the kernel's index walk
(op_kernel/bce_walker.h), compiled with g++ and checked for any size, tail
tiles and every broadcast case; how the kernel sums broadcast gradients per
core and combines the partials; the operator project ops.py generates (into
a temporary folder, as build.sh does into its build folder) against the loss
registry and the Python registration; the build script's refusal without
CANN.  The Ascend C vector code itself is not compiled here (no CANN
toolkit): see custom_ops/ascend/README.md."""
import ctypes
import glob
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from ms_bce import _kernels, _losses
from tests import gpu_support as gs
from tests import reference as ref

ROOT = gs.ROOT
ASCEND = os.path.join(ROOT, "custom_ops", "ascend")
FORWARD, BACKWARD = 0, 1
NONE, MEAN, SUM = 0, 1, 2
ABSENT, FULL, ONE_ELEMENT, GATHER_UB, GATHER_GM = 0, 1, 2, 3, 4
NO_GRAD, DIRECT, ACCUM_UB, ACCUM_GM = 0, 1, 2, 3
UB_910B = 192 * 1024
FIELDS = ("n", "blockDim", "perCore", "tileLen", "rank", "wMode", "pMode", "dwMode", "dpMode", "wNumel", "pNumel",
          "wSlot", "pSlot", "wsLoss", "wsDw", "wsDp", "wsBytes", "ubBytes")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    cxx = gs.find_cxx()
    target = str(tmp_path_factory.mktemp("ascend") / "libascend_tiling_check.so")
    cmd = [cxx, "-std=c++17", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror",
           os.path.join(ROOT, "tests", "native", "ascend_tiling_check.cc"), "-o", target]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return ctypes.CDLL(target)


def i64(values):
    a = np.array(values, np.int64).reshape(-1)
    return a, a.ctypes.data_as(ctypes.POINTER(ctypes.c_int64))


def shape_args(x, w, p):
    """(rank, pointer) for x, w, p; None for an absent operand."""
    keep = []
    args = []
    for s in (x, w, p):
        arr, ptr = i64(s if s is not None else [0])
        keep.append(arr)
        args += [len(s) if s is not None else -1, ptr]
    return args, keep


def plan(lib, x, w=None, p=None, direction=FORWARD, reduction=NONE, dtype_bytes=4, cores=40, ub=UB_910B):
    args, keep = shape_args(x, w, p)
    out = np.zeros(len(FIELDS) + 48, np.int64)
    msg = ctypes.create_string_buffer(256)
    rc = lib.ascend_plan(*args, direction, reduction, dtype_bytes, ctypes.c_int64(cores), ctypes.c_int64(ub),
                         out.ctypes.data_as(ctypes.c_void_p), msg, 256)
    if rc:
        return msg.value.decode()
    result = dict(zip(FIELDS, out[:len(FIELDS)].tolist()))
    result["extent"] = out[len(FIELDS):len(FIELDS) + 16].tolist()
    return result


def walk(lib, x, w=None, p=None, direction=FORWARD, reduction=NONE, dtype_bytes=4, cores=40, ub=UB_910B):
    args, keep = shape_args(x, w, p)
    n = int(np.prod(x))
    w_off, p_off, core, visits = (np.zeros(max(n, 1), np.int64) for _ in range(4))
    bad = lib.ascend_walk(*args, direction, reduction, dtype_bytes, ctypes.c_int64(cores), ctypes.c_int64(ub),
                          *[a.ctypes.data_as(ctypes.c_void_p) for a in (w_off, p_off, core, visits)])
    return bad, w_off[:n], p_off[:n], core[:n], visits[:n]


def check_plan_invariants(pl, n, cores, ub, dtype_bytes):
    assert pl["n"] == n
    assert 1 <= pl["blockDim"] <= cores
    if n == 0:
        assert pl["blockDim"] == 1 and pl["perCore"] == 0
        return
    assert pl["perCore"] % 64 == 0, "core ranges start 256-byte aligned"
    assert (pl["blockDim"] - 1) * pl["perCore"] < n <= pl["blockDim"] * pl["perCore"], "no idle core, all covered"
    assert pl["tileLen"] % 64 == 0 and 64 <= pl["tileLen"] <= 8192
    assert pl["ubBytes"] <= ub, "the kernel's buffers fit in UB"
    budget = max(n * dtype_bytes, 1 << 20)
    assert pl["wsBytes"] <= budget + pl["blockDim"] * 32, "the workspace is bounded"
    loss_bytes = pl["wsBytes"] - pl["blockDim"] * (pl["wSlot"] + pl["pSlot"]) * 4
    assert loss_bytes in (0, pl["blockDim"] * 32), "one 32-byte loss partial per core, or none"
    regions = sorted((start, start + size) for start, size in (
        (pl["wsLoss"], loss_bytes), (pl["wsDw"], pl["blockDim"] * pl["wSlot"] * 4),
        (pl["wsDp"], pl["blockDim"] * pl["pSlot"] * 4)) if size)
    for (a0, a1), (b0, _) in zip(regions, regions[1:]):
        assert a1 <= b0, "workspace regions overlap"
    assert all(end <= pl["wsBytes"] for _, end in regions)


SIZES = [0, 1, 2, 63, 64, 65, 4095, 4096, 4097, 8191, 8193, 100003, 1000003, 2 ** 21 + 17]


@pytest.mark.parametrize("cores", [1, 8, 48])
@pytest.mark.parametrize("dtype_bytes", [2, 4])
@pytest.mark.parametrize("direction", [FORWARD, BACKWARD])
def test_cores_and_tiles_cover_any_size_with_tails(lib, cores, dtype_bytes, direction):
    for n in SIZES:
        pl = plan(lib, [n], direction=direction, reduction=SUM, dtype_bytes=dtype_bytes, cores=cores)
        check_plan_invariants(pl, n, cores, UB_910B, dtype_bytes)
        bad, _, _, core, visits = walk(lib, [n], direction=direction, reduction=SUM, dtype_bytes=dtype_bytes,
                                       cores=cores)
        assert bad == 0
        assert (visits == 1).all(), f"n={n}: every element exactly once"
        if n:
            assert (np.diff(core) >= 0).all() and core[-1] == pl["blockDim"] - 1, "contiguous ranges, all used"


@pytest.mark.parametrize("n", [2 ** 31 + 5, 10 ** 10 + 7, 2 ** 40 + 3])
def test_huge_inputs_plan_without_overflow(lib, n):
    for shape in ([n], [n // 1000, 1000]):
        total = int(np.prod(shape))
        pl = plan(lib, shape, direction=BACKWARD, reduction=MEAN, dtype_bytes=2, cores=48)
        check_plan_invariants(pl, total, 48, UB_910B, 2)
        last = total - (pl["blockDim"] - 1) * pl["perCore"]
        assert 0 < last <= pl["perCore"]
        tail = (last - 1) % pl["tileLen"] + 1
        assert 1 <= tail <= pl["tileLen"]


CASES = [c for c in gs.BROADCAST_CASES] + [
    ((4, 5, 6, 7), (5, 1, 7), (1, 1, 1, 7)),
    ((3, 1, 4), (1, 1, 4), (3, 1, 1)),
    ((2, 3, 4, 5, 6), (3, 1, 5, 1), (2, 1, 1, 1, 6)),
    ((64, 2), (64, 1), (2,)),
    ((3, 20000), (1, 20000), (3, 1)),      # a weight too large for UB: gathered from global memory
    ((50000, 3), (50000, 1), (3,)),        # a gradient too large for UB: summed in the workspace
    ((257, 4099), (4099,), (257, 1)),      # tails everywhere
]


@pytest.mark.parametrize("case", CASES, ids=gs.case_id)
@pytest.mark.parametrize("present", ["w", "p", "wp"])
def test_walk_reads_broadcast_operands_in_place(lib, case, present):
    x, w, p = case
    w, p = (w if "w" in present else None), (p if "p" in present else None)
    n = int(np.prod(x))
    for cores in (1, 7, 40):
        bad, w_off, p_off, _, visits = walk(lib, x, w, p, direction=BACKWARD, cores=cores)
        assert bad == 0 and (visits == 1).all()
        for got, shape in ((w_off, w), (p_off, p)):
            if shape is None:
                continue
            want = np.broadcast_to(np.arange(int(np.prod(shape))).reshape(shape), x).reshape(-1)
            np.testing.assert_array_equal(got, want)
    pl = plan(lib, x, w, p, direction=BACKWARD)
    check_plan_invariants(pl, n, 40, UB_910B, 4)
    for shape, mode in ((w, pl["wMode"]), (p, pl["pMode"])):
        if shape is None:
            assert mode == ABSENT
            continue
        size = int(np.prod(shape))
        expected = FULL if size == n else ONE_ELEMENT if size == 1 else GATHER_UB if size * 4 <= 16384 else GATHER_GM
        assert mode == expected, (shape, mode)


@pytest.mark.parametrize("case", [c for c in CASES if np.prod(c[0]) > 0], ids=gs.case_id)
def test_broadcast_gradients_are_summed_per_core_then_in_core_order(lib, case):
    """The kernel's scheme for dW/dP of broadcast operands, with the maths
    replaced by given contributions: exact in double, within 1e-6 relative
    with the kernel's Kahan float32 sums."""
    x, w, p = case
    n = int(np.prod(x))
    rng = np.random.default_rng(0)
    args, keep = shape_args(x, w, p)
    for operand, shape in ((0, w), (1, p)):
        if int(np.prod(shape)) == n:
            continue  # full-size: element-wise, nothing to sum
        contrib = rng.uniform(0.0, 2.0, n)
        want = ref.reduce_to_shape(contrib.reshape(x), shape).reshape(-1)
        for cores in (1, 5, 48):
            for in_double, rtol in ((1, 1e-12), (0, 1e-6)):
                got = np.full(int(np.prod(shape)), np.nan)
                bad = lib.ascend_grad_sum(*args, 4, ctypes.c_int64(cores), ctypes.c_int64(UB_910B), operand,
                                          contrib.ctypes.data_as(ctypes.c_void_p), got.ctypes.data_as(ctypes.c_void_p),
                                          in_double)
                assert bad == 0
                np.testing.assert_allclose(got, want, rtol=rtol)


def test_large_broadcast_gradient_uses_fewer_cores_to_bound_the_workspace(lib):
    x, w = (50000, 3), (50000, 1)
    pl = plan(lib, x, w, None, direction=BACKWARD, dtype_bytes=2, cores=48)
    assert pl["dwMode"] == ACCUM_GM
    assert pl["wsBytes"] <= max(150000 * 2, 1 << 20)
    assert pl["blockDim"] < 48
    small = plan(lib, x, None, (3,), direction=BACKWARD, dtype_bytes=2, cores=48)
    assert small["dpMode"] == ACCUM_UB and small["blockDim"] == -(-150000 // small["perCore"])


def test_empty_input_plans_one_core_and_no_tiles(lib):
    pl = plan(lib, [0, 4], [4], [1, 4], direction=BACKWARD, reduction=MEAN)
    assert pl["n"] == 0 and pl["blockDim"] == 1 and pl["perCore"] == 0


def test_shapes_the_python_layer_refuses_are_refused(lib):
    assert plan(lib, [3, 4], [5]) == "'weight' does not broadcast to 'input'"
    assert plan(lib, [3, 4], None, [2, 4]) == "'pos_weight' does not broadcast to 'input'"
    assert plan(lib, [3, -1]) == "negative dimension"


def test_directions_and_reductions_without_operators_are_refused(lib):
    assert plan(lib, [3, 4], direction=2) == "unknown direction"
    assert plan(lib, [3, 4], reduction=3) == "unknown reduction"


def test_half_bits_widen_exactly(lib):
    lib.ascend_half_bits_to_float_bits.restype = ctypes.c_uint32
    bits = np.arange(65536, dtype=np.uint16)
    got = np.array([lib.ascend_half_bits_to_float_bits(ctypes.c_uint16(int(b))) for b in bits[::37]], np.uint32)
    want = bits[::37].view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got.view(np.float32), want)


# ---------------------------------------------- the generated operator project ---
# On Ascend the Python layer calls the forward and the fused backward only
# (ms_bce/_kernels.py, _init_ascend: also in graph mode), so these are the
# directions with Ascend operators.
ASCEND_DIRECTIONS = ("forward", "backward")
GENERATED = "// Generated by custom_ops/ascend/ops.py"


def ascend_entries():
    losses = [loss for loss, spec in _losses.LOSSES.items() if spec.ascend]
    return [e for e in _losses.entry_points(losses, masks=(False,)) if e.direction in ASCEND_DIRECTIONS]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The operator project, written as build.sh writes it (with the loss
    registry of the ms_bce under test)."""
    out = tmp_path_factory.mktemp("ascend_project") / "project"
    proc = subprocess.run([sys.executable, os.path.join(ASCEND, "ops.py"), str(out), "--registry", _losses.__file__],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(f"{len(ascend_entries())} operators")
    return out


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_project_holds_the_headers_and_one_kernel_file_per_operator(project):
    headers = {os.path.relpath(p, ASCEND) for sub in ("op_host", "op_kernel")
               for p in glob.glob(os.path.join(ASCEND, sub, "*.h"))}
    kernels = {os.path.join("op_kernel", e.name + ".cpp") for e in ascend_entries()}
    written = {os.path.relpath(os.path.join(d, f), project) for d, _, fs in os.walk(project) for f in fs}
    assert written == headers | kernels | {os.path.join("op_host", "bce_ops.cpp")}
    for rel in headers:
        assert read(os.path.join(project, rel)) == read(os.path.join(ASCEND, rel))


def test_no_generated_file_is_kept_in_the_source_tree():
    for path in glob.glob(os.path.join(ASCEND, "**", "*"), recursive=True):
        if os.path.isfile(path) and not path.endswith(".pyc"):
            assert not read(path).startswith(GENERATED), path


def test_kernel_functions_match_the_registry_and_the_python_registration(project):
    for e in ascend_entries():
        source = read(os.path.join(project, "op_kernel", e.name + ".cpp"))
        assert source.startswith(GENERATED)
        inputs, outputs = _kernels.ascend_io_names(e.direction, e.has_weight, e.has_pos_weight)
        name, signature = re.search(r"void (\w+)\((.*)\)", source).groups()
        assert name == e.name
        assert [a.split()[-1] for a in signature.split(", ")] == inputs + outputs + ["workspace", "tiling"]
        # bce_kernel.h's fixed input slots, the outputs in order
        slots = re.search(r"in\[5\] = \{(.*)\};", source).group(1).split(", ")
        assert slots == [n if n in inputs else "nullptr" for n in ("x", "target", "weight", "pos_weight", "dout")]
        assert re.search(r"out\[4\] = \{(.*)\};", source).group(1).split(", ") == (outputs + ["nullptr"] * 4)[:4]
        run = re.search(r"Run<(.*)>\(in, out, workspace, tiling_data\)", source).group(1).split(", ")
        assert run == ["true" if e.loss == "bce_with_logits" else "false", "DTYPE_X",
                       str(bool(e.has_weight)).lower(), str(bool(e.has_pos_weight)).lower(),
                       "ms_bce_ascend::k" + e.direction.capitalize(), "ms_bce_ascend::k" + e.reduction.capitalize()]


def test_op_defs_match_the_registry_and_the_python_registration(project):
    """One OpDef per entry point of the Ascend directions, no other: the
    operator type MindSpore looks up, the input and output names it registers."""
    source = read(os.path.join(project, "op_host", "bce_ops.cpp"))
    classes = re.findall(r'class (\w+) : public ms_bce_ascend::BceOpDef \{.*?BceOpDef\(name, \{(.*?)\}, \{(.*?)\},\s*'
                         r'ms_bce_ascend::BceTiling<(.*?)>,\s*ms_bce_ascend::BceInferShape<(.*?)>\) \{\}', source, re.S)
    entries = ascend_entries()
    assert len(classes) == len(entries)
    by_type = {c[0]: c[1:] for c in classes}
    for e in entries:
        op_type = _kernels.entry_point(e.loss, e.direction, e.reduction, e.has_weight, e.has_pos_weight, "Ascend")
        assert op_type == _kernels.ascend_op_name(e.name)
        inputs, outputs, tiling, infer = by_type.pop(op_type)
        want_in, want_out = _kernels.ascend_io_names(e.direction, e.has_weight, e.has_pos_weight)
        assert re.findall(r'"(\w+)"', inputs) == want_in and re.findall(r'"(\w+)"', outputs) == want_out
        assert tiling == infer == (f"ms_bce_ascend::k{e.direction.capitalize()}, "
                                   f"ms_bce_ascend::k{e.reduction.capitalize()}, "
                                   f"{str(bool(e.has_weight)).lower()}, {str(bool(e.has_pos_weight)).lower()}")
        assert f"REGISTER_TILING_DATA_CLASS({op_type}, BceTilingData)\n" in source
        assert f"OP_ADD({op_type});\n" in source
    assert not by_type
    assert len(re.findall(r"REGISTER_TILING_DATA_CLASS\(", source)) == len(re.findall(r"OP_ADD\(", source)) \
        == len(entries)


def test_generator_refuses_the_source_tree_and_a_used_folder(tmp_path):
    ops = os.path.join(ASCEND, "ops.py")
    (tmp_path / "stale.cpp").write_text("")
    before = sorted(os.listdir(os.path.join(ASCEND, "op_kernel")))
    for out, why in ((os.path.join(ASCEND, "op_kernel"), "are not written into custom_ops/ascend"),
                     (str(tmp_path), "not an empty folder (stale operator files would be built)")):
        proc = subprocess.run([sys.executable, ops, out], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 1 and why in proc.stderr, proc.stderr
    assert sorted(os.listdir(os.path.join(ASCEND, "op_kernel"))) == before
    assert os.listdir(tmp_path) == ["stale.cpp"]


def test_build_script_without_cann_says_so_and_fails():
    env = {**os.environ, "ASCEND_HOME_PATH": "/nonexistent/cann"}
    proc = subprocess.run(["bash", os.path.join(ASCEND, "build.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "ms_bce: no CANN toolkit at '/nonexistent/cann' (set ASCEND_HOME_PATH): the Ascend C operators are " \
           "not built." in proc.stderr


def test_a_loss_not_marked_for_ascend_gets_no_operators_and_a_clear_error(tmp_path, monkeypatch):
    """A new loss may come to the CPU and GPU first: the generator leaves it out
    (the registry's `ascend` flag), and asking for it on Ascend says so."""
    text = read(_losses.__file__).replace(
        '    "bce": Loss("bce", "BCELoss", ("weight",), (), ascend=True),',
        '    "bce": Loss("bce", "BCELoss", ("weight",), (), ascend=True),\n'
        '    "focal": Loss("focal", "SigmoidFocalLoss", ("weight", "pos_weight"), ("alpha", "gamma"), ascend=False),')
    assert '"focal"' in text
    registry = tmp_path / "_losses.py"
    registry.write_text(text, encoding="utf-8")
    out = tmp_path / "project"
    proc = subprocess.run([sys.executable, os.path.join(ASCEND, "ops.py"), str(out), "--registry", str(registry)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(f"{len(ascend_entries())} operators")
    assert not glob.glob(str(out / "**" / "focal_*"), recursive=True)
    monkeypatch.setitem(_losses.LOSSES, "focal", _losses.Loss("focal", "SigmoidFocalLoss", ("weight",), (), False))
    with pytest.raises(RuntimeError, match="For 'SigmoidFocalLoss', ms_bce has no Ascend kernel yet"):
        _kernels._init_ascend(None, "focal", "forward", "mean", False, False)
