"""The GPU library's code, compiled for the host (tests/native/gpu_host_check.cc,
g++, no CUDA) and checked where no GPU exists: every entry point through the
host backend -- the same functors, broadcast indexing and deterministic
reduction order as the CUDA kernels -- against the float64 reference and the
CPU library, for every dtype, reduction and broadcast case; and the pieces
underneath one by one (element maths, storage rounding, FastDivmod, the
broadcast layout, the reduction plans, InferShape).

What this cannot check: the kernel launches themselves, the device's
exp/log1p/logf and conversion intrinsics (tests/test_gpu_kernels.py does,
on a machine with a GPU)."""
import ctypes
import math

import numpy as np
import pytest

from ms_bce import _kernels
from tests import gpu_support as gs
from tests import reference as ref
from tests.abi import BAD_DTYPE, BAD_SHAPE, OK, launch

# the t operand of every loss entry point: its scalars (label smoothing 0 here)
T0 = np.zeros(1, np.float32)


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory):
    return ctypes.CDLL(gs.build_host_check(str(tmp_path_factory.mktemp("gpu_host_check"))))


@pytest.fixture(scope="module")
def cpu_lib():
    """The CPU library on its portable path, whose double-precision element
    maths the GPU code mirrors operation for operation (the AVX2 path is held
    to the spec's bars instead: tests/test_kernel_paths.py)."""
    _kernels.set_simd_path("scalar")
    yield ctypes.CDLL(_kernels.library_path("CPU"))
    _kernels.set_simd_path("auto")


def dptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def elementwise_outputs(direction, reduction, n_outputs, x_size, out_sizes):
    """Which outputs are formed element by element (no sum): those must equal
    the CPU library's bit for bit; summed ones may differ in the last place."""
    if direction == "forward":
        return [reduction == "none"]
    return [i < 2 or out_sizes[i] == x_size for i in range(n_outputs)]


# ---------------------------------------------------------- entry points ---

@pytest.mark.parametrize("dtype", gs.DTYPES)
@pytest.mark.parametrize("reduction", gs.REDUCTIONS)
@pytest.mark.parametrize("case", gs.BROADCAST_CASES, ids=gs.case_id)
@pytest.mark.parametrize("loss", gs.LOSSES)
def test_entry_points_match_reference_and_cpu_library(host_lib, cpu_lib, loss, case, reduction, dtype):
    """forward, backward and backward_input of every operand set: within the
    spec's bars of the float64 reference, element-wise outputs bit-identical
    to the CPU library's, sums within one unit in the last place of it."""
    x, y, w_full, p_full = gs.make_operands(loss, case)
    dout = gs.incoming(case, reduction)
    mem = gs.HostMemory()
    for has_w, has_p in gs.OPERAND_SETS[loss]:
        w, p = (w_full if has_w else None), (p_full if has_p else None)
        got = gs.run_entry_points(host_lib, mem, loss, x, y, w, p, reduction, dout, dtype)
        gs.check_against_reference(loss, x, y, w, p, reduction, dout, dtype, got)
        cpu = gs.run_entry_points(cpu_lib, mem, loss, x, y, w, p, reduction, dout, dtype,
                                  directions=("forward", "backward"))
        q = [None if a is None else gs.quantize(a, dtype) for a in (x, y, w, p)]
        s_loss, *s_grads = gs.scales(loss, *q, reduction, gs.quantize(dout, dtype))
        for direction in ("forward", "backward"):
            status, outs = cpu[direction]
            assert status == gs.OK
            mine = got[direction][1]
            out_scales = [s_loss] if direction == "forward" else \
                [s_grads[0], s_grads[1]] + [s_grads[k] for k in (2, 3) if q[k] is not None]
            exact = elementwise_outputs(direction, reduction, len(outs), np.size(x), [o.size for o in outs])
            for i, (a, b, s, must_match) in enumerate(zip(mine, outs, out_scales, exact)):
                what = f"{loss} {direction}[{i}] {dtype} {reduction} w={has_w} p={has_p}"
                if must_match:
                    assert a.tobytes() == b.tobytes(), f"{what}: differs from the CPU library"
                else:
                    gs.assert_close(a, b, gs.ulp(b, dtype) + 1e-13 * np.asarray(s), what + " vs CPU")


MASK_CASES = (((5, 3), (5, 3)), ((5, 3), (3,)), ((2, 3, 4), (2, 1, 4)), ((37, 129), (37, 1)),
              ((300, 1000), (1000,)), ((0, 4), (4,)), ((7,), ()))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("reduction", gs.REDUCTIONS)
@pytest.mark.parametrize("case", MASK_CASES, ids=str)
@pytest.mark.parametrize("loss", gs.LOSSES)
def test_masked_entry_points_match_the_cpu_library(host_lib, cpu_lib, loss, case, reduction, dtype):
    """The *_m entry points on the host backend: the CPU library's results (element-wise
    outputs bit for bit, sums within an ULP), 0 at every dropped element of every
    element-wise output whatever x, y, w, p hold there (NaN here), and the results of
    the unmasked entry points where kept."""
    shape, mshape = case
    rng = np.random.default_rng(11)
    x, y, w_full, p_full = gs.make_operands(loss, (shape, shape[-1:], shape[-1:]))
    mask = rng.random(mshape) < 0.6
    dropped = ~np.broadcast_to(mask, shape)
    x, y = np.array(x, np.float64), np.array(y, np.float64)
    x[dropped], y[dropped] = np.nan, np.nan
    dout = gs.incoming((shape,), reduction)
    mem = gs.HostMemory()
    for has_w, has_p in gs.OPERAND_SETS[loss]:
        w, p = (w_full if has_w else None), (p_full if has_p else None)
        got = gs.run_entry_points(host_lib, mem, loss, x, y, w, p, reduction, dout, dtype, mask=mask)
        cpu = gs.run_entry_points(cpu_lib, mem, loss, x, y, w, p, reduction, dout, dtype, mask=mask)
        what = f"{loss} {dtype} {reduction} w={has_w} p={has_p}"
        for direction in gs.DIRECTIONS:
            if direction not in got:
                continue
            (st_g, outs_g), (st_c, outs_c) = got[direction], cpu[direction]
            assert st_g == st_c == gs.OK, (what, direction, st_g, st_c)
            for i, (a, b) in enumerate(zip(outs_g, outs_c)):
                if a.shape == shape and (direction != "forward" or reduction == "none"):
                    assert a.tobytes() == b.tobytes(), f"{what} {direction}[{i}]"
                    assert not np.any(a[dropped]), f"{what} {direction}[{i}]: not 0 where dropped"
                else:
                    np.testing.assert_allclose(a, b, rtol=2e-6 if dtype == "float32" else 2e-3, atol=1e-30,
                                               err_msg=f"{what} {direction}[{i}]")


def test_repeated_calls_are_bit_identical(host_lib):
    case = ((300, 1000), (1000,), (1,))
    x, y, w, p = gs.make_operands("bce_with_logits", case)
    runs = [gs.run_entry_points(host_lib, gs.HostMemory(), "bce_with_logits", x, y, w, p, "mean", 1.7, "float32")
            for _ in range(2)]
    for direction in gs.DIRECTIONS:
        for a, b in zip(runs[0][direction][1], runs[1][direction][1]):
            assert a.tobytes() == b.tobytes()


def test_sum_of_many_elements_is_accurate(host_lib):
    """The two-stage reduction at 2 * 10^6 elements: within 1e-6 of math.fsum."""
    rng = np.random.default_rng(3)
    n = 2 * 10 ** 6
    x = rng.normal(scale=5.0, size=n).astype(np.float32)
    y = rng.random(n).astype(np.float32)
    out = np.zeros((), np.float32)
    assert gs.call(host_lib, "bce_with_logits_forward_sum", gs.HostMemory(), [x, y, T0, out], ["float32"] * 4) == gs.OK
    exact = math.fsum(ref.bce_with_logits(x, y, reduction="none"))
    assert abs(float(out) - exact) <= 1e-6 * exact


def test_out_of_range_targets_and_special_values(host_lib, cpu_lib):
    """Soft and out-of-range targets, NaN and infinite logits, element-wise:
    identical to the CPU library."""
    x = np.array([np.nan, np.inf, -np.inf, np.inf, -np.inf, 0.0, 3.0, -3.0, 1e-40, 88.0], np.float32)
    y = np.array([0.5, 1.0, 0.0, 0.0, 1.0, 1.2, -0.6, 2.2, 0.5, 1.0], np.float32)
    outs = []
    for lib in (host_lib, cpu_lib):
        out = np.zeros_like(x)
        assert gs.call(lib, "bce_with_logits_forward_none", gs.HostMemory(), [x, y, T0, out], ["float32"] * 4) == gs.OK
        outs.append(out)
    assert outs[0].tobytes() == outs[1].tobytes()
    expected = ref.bce_with_logits(x, y, reduction="none")
    np.testing.assert_array_equal(np.isnan(outs[0]), np.isnan(expected))
    assert outs[0][1] == 0.0 and outs[0][2] == 0.0 and outs[0][3] == np.inf and outs[0][4] == np.inf


# ------------------------------------------------------- element maths ---

def logit_grid():
    """float32 logits over the whole range: both signs, subnormals to the
    largest finite, zeros and infinities."""
    mags = np.geomspace(1e-45, 3.4e38, 4000).astype(np.float32)
    return np.concatenate([mags, -mags, np.float32([0.0, -0.0, np.inf, -np.inf])]).astype(np.float64)


def f32(a):
    with np.errstate(over="ignore"):
        return a.astype(np.float32)


def test_logits_maths_over_the_whole_float_range(host_lib):
    """The GPU's BceWithLogits (common/element_math.h), rounded to float32:
    within 4 ULP of the float64 reference (of the terms' size where they
    cancel) for targets in [0, 1], logits from subnormal to the largest float
    and infinite."""
    x = logit_grid()
    for yv, wv, pv in ((0.0, 1.0, 1.0), (1.0, 1.0, 1.0), (0.3, 1.0, 1.0), (0.7, 2.5, 0.25), (1.0, 0.5, 4.0)):
        y, w, p = (np.full_like(x, v) for v in (yv, wv, pv))
        g = np.full_like(x, 1.25)
        out = np.empty_like(x)
        host_lib.check_bce_with_logits_value(ctypes.c_int64(x.size), dptr(x), dptr(y), dptr(w), dptr(p), dptr(out))
        want = gs.representable(ref.bce_with_logits(x, y, w, p, "none"), "float32")
        gs.assert_close(f32(out), want, 4 * gs.ulp(want, "float32"), f"loss y={yv}")
        dx, dy, dw, dp = (np.empty_like(x) for _ in range(4))
        host_lib.check_bce_with_logits_grad(ctypes.c_int64(x.size), dptr(x), dptr(y), dptr(w), dptr(p), dptr(g),
                                            dptr(dx), dptr(dy), dptr(dw), dptr(dp))
        wdx, wdy, _, _ = (gs.representable(a, "float32") for a in ref.bce_with_logits_grads(x, y, w, p, "none", g))
        # the spec's bars: 4 ULP of the size of each formula's terms (dX's cancel for 0 < y < 1)
        sdx = 1.25 * wv * ((1 - yv) * ref.sigmoid(x) + pv * yv * ref.sigmoid(-x))
        sdy = 1.25 * wv * (pv * ref.softplus(-x) + ref.softplus(x))
        gs.assert_close(f32(dx), wdx, 4 * gs.ulp(sdx, "float32"), f"dx y={yv}")
        gs.assert_close(f32(dy), wdy, 4 * gs.ulp(sdy, "float32"), f"dy y={yv}")
        wdw = gs.representable(ref.mul0(g, ref.bce_with_logits_unweighted(x, y, p)), "float32")
        gs.assert_close(f32(dw), wdw, 4 * gs.ulp(wdw, "float32"), f"dw y={yv}")


def test_bce_maths_matches_reference_and_stays_finite_at_0_and_1(host_lib):
    p = np.concatenate([np.float32([0.0, 1.0, 1e-13, 1e-45, 0.5, 1 - 2 ** -24]),
                        np.linspace(0, 1, 1001, dtype=np.float32)]).astype(np.float64)
    for yv in (0.0, 1.0, 0.25):
        y, w, g = np.full_like(p, yv), np.full_like(p, 1.5), np.full_like(p, -0.75)
        out = np.empty_like(p)
        host_lib.check_bce_value(ctypes.c_int64(p.size), dptr(p), dptr(y), dptr(w), dptr(out))
        want = ref.bce(p, y, w, "none")
        gs.assert_close(out.astype(np.float32), want, 4 * gs.ulp(ref.bce_scale(p, y, w), "float32"), f"y={yv}")
        assert np.isfinite(out).all()
        dp, dy, dw = (np.empty_like(p) for _ in range(3))
        host_lib.check_bce_grad(ctypes.c_int64(p.size), dptr(p), dptr(y), dptr(w), dptr(g), dptr(dp), dptr(dy),
                                dptr(dw))
        assert np.isfinite(dp).all() and np.isfinite(dy).all()
        wdp, wdy, _ = ref.bce_grads(p, y, w, "none", g)
        a, b = ref.bce_guarded(p)
        gs.assert_close(dp.astype(np.float32), wdp, 4 * gs.ulp(0.75 * 1.5 * (np.abs(1 - y) / b + y / a), "float32"),
                        f"dp y={yv}")


@pytest.mark.parametrize("dtype,code", [("float32", 0), ("float16", 1), ("bfloat16", 2)])
def test_storage_rounds_to_nearest_even_like_numpy(host_lib, dtype, code):
    rng = np.random.default_rng(5)
    v = np.concatenate([rng.normal(scale=10.0 ** rng.integers(-8, 8, 5000)),
                        [0.0, -0.0, np.inf, -np.inf, 65504.0, 65520.0, 1e5, 6e-8, 3e-8, 1e-40, 3.4e38, 1e39,
                         1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8]])
    out = np.empty(v.size, np.float32)
    host_lib.check_store(ctypes.c_int(code), ctypes.c_int64(v.size), dptr(v), dptr(out))
    with np.errstate(over="ignore"):
        v32 = v.astype(np.float32)
    np.testing.assert_array_equal(out.astype(np.float64), gs.quantize(v32, dtype))


# ---------------------------------------------------- index arithmetic ---

@pytest.mark.parametrize("d", [1, 2, 3, 5, 7, 10, 127, 128, 129, 1000, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1,
                               10 ** 9 + 7, 2 ** 32 + 15, 3 ** 39, 2 ** 62, 2 ** 62 + 1, 2 ** 63 - 1])
def test_fastdivmod_equals_integer_division(host_lib, d):
    rng = np.random.default_rng(d % 1000)
    n = np.concatenate([rng.integers(0, 2 ** 63 - 1, 20000, dtype=np.int64),
                        rng.integers(0, 2 ** 20, 2000, dtype=np.int64),
                        np.array([0, 1, d - 1, min(d, 2 ** 63 - 1), 2 ** 63 - 1, 2 ** 63 - 2], np.int64),
                        (np.arange(1, 50, dtype=np.int64) * d if d < 2 ** 56 else np.array([d], np.int64))])
    n = n[n >= 0]
    q, r = np.empty_like(n), np.empty_like(n)
    host_lib.check_fastdivmod(ctypes.c_int64(d), ctypes.c_int64(n.size), dptr(n), dptr(q), dptr(r))
    want_q = np.array([int(v) // d for v in n.tolist()], dtype=object)
    assert [int(v) for v in q.tolist()] == list(want_q)
    assert [int(v) for v in r.tolist()] == [int(v) % d for v in n.tolist()]


LAYOUT_CASES = [c for c in gs.BROADCAST_CASES] + [
    ((4, 5, 6, 7), (5, 1, 7), (1, 1, 1, 7)),
    ((3, 1, 4), (1, 1, 4), (3, 1, 1)),
    ((2, 3, 4, 5, 6), (3, 1, 5, 1), (2, 1, 1, 1, 6)),
    ((64, 2), (64, 1), (2,)),
]


def ints(shape):
    a = np.array(shape, np.int64)
    return a, a.ctypes.data_as(ctypes.POINTER(ctypes.c_int64))


@pytest.mark.parametrize("case", LAYOUT_CASES, ids=gs.case_id)
def test_operand_layout_reads_broadcast_operands_in_place(host_lib, case):
    x_shape, w_shape, p_shape = case
    keep = [ints(s) for s in (x_shape, w_shape, p_shape)]  # the arrays must outlive the pointers
    xp, wp, pp = (k[1] for k in keep)
    n = int(np.prod(x_shape))
    w_off, p_off = np.empty(max(n, 1), np.int64), np.empty(max(n, 1), np.int64)
    rank = host_lib.check_layout(len(x_shape), xp, len(w_shape), wp, len(p_shape), pp, 2, dptr(w_off), dptr(p_off))
    for got, shape in ((w_off[:n], w_shape), (p_off[:n], p_shape)):
        want = np.broadcast_to(np.arange(int(np.prod(shape))).reshape(shape), x_shape).reshape(-1)
        np.testing.assert_array_equal(got, want)
    if all(int(np.prod(s)) in (1, n) for s in (w_shape, p_shape)):
        assert rank == 1  # full-size or one-element operands: one flat dimension, no division


PLAN_CASES = [(c[0], c[1]) for c in LAYOUT_CASES if np.prod(c[0]) > 0] + \
             [(c[0], c[2]) for c in LAYOUT_CASES if np.prod(c[0]) > 0] + \
             [((1000003,), ()), ((3, 100000), (3, 1)), ((100000, 3), (3,)), ((7, 5), ())]


@pytest.mark.parametrize("case", PLAN_CASES, ids=lambda c: gs.case_id((c[0], c[1], ())))
def test_reduce_plan_visits_every_element_once_and_names_the_operand_element(host_lib, case):
    x_shape, o_shape = case
    keep = [ints(s) for s in (x_shape, o_shape)]
    xp, op = (k[1] for k in keep)
    n = int(np.prod(x_shape))
    info = np.empty(12, np.int64)
    host_lib.check_plan_info(len(x_shape), xp, len(o_shape), op, dptr(info))
    outputs, per_output, bx, by, outputs_fastest, out_groups, grid_x, chunks, chunk_len = info[:9].tolist()
    assert outputs == int(np.prod(o_shape)) and outputs * per_output == n
    assert bx * by == 256 and by & (by - 1) == 0
    assert (chunks - 1) * chunk_len < per_output <= chunks * chunk_len and 1 <= chunks <= 65535
    assert out_groups == -(-outputs // bx) and grid_x <= out_groups
    assert chunks == 1 or chunks * outputs <= 2 * 2048 * 256  # bounded scratch for the partial sums
    assert info[9] * info[10] == 256 and info[11] == 1  # the partials pass is one chunk
    if outputs * per_output <= 4 * 10 ** 6:
        flat = np.empty(n, np.int64)
        host_lib.check_plan_flat(len(x_shape), xp, len(o_shape), op, dptr(flat))
        np.testing.assert_array_equal(np.sort(flat), np.arange(n))  # a bijection
        operand_index = np.broadcast_to(np.arange(outputs).reshape(o_shape), x_shape).reshape(-1)
        np.testing.assert_array_equal(operand_index[flat.reshape(outputs, per_output)],
                                      np.repeat(np.arange(outputs), per_output).reshape(outputs, per_output))
    visits = np.zeros(n, np.int64)
    sum_flat, count = np.zeros(outputs), np.zeros(outputs)
    writes = np.zeros(outputs, np.int64)
    host_lib.check_plan_visits(len(x_shape), xp, len(o_shape), op, dptr(visits), dptr(sum_flat), dptr(count),
                               dptr(writes))
    assert (visits == 1).all(), "an element was visited other than once"
    assert (writes == chunks).all(), "every output gets one sum per chunk"
    if chunks == 1:
        operand_index = np.broadcast_to(np.arange(outputs).reshape(o_shape), x_shape).reshape(-1)
        np.testing.assert_array_equal(count, np.bincount(operand_index, minlength=outputs))
        np.testing.assert_array_equal(sum_flat, np.bincount(operand_index, weights=np.arange(n), minlength=outputs))


# ---------------------------------------------------------- InferShape ---

def infer(host_lib, kind, reduction, hw, hp, shapes, loss=0):
    arrays = [np.array(s, np.int64).reshape(-1) for s in shapes]
    nd = (ctypes.c_int * len(arrays))(*[len(s) for s in shapes])
    ptrs = (ctypes.POINTER(ctypes.c_int64) * len(arrays))(
        *[a.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)) for a in arrays])
    out = np.zeros(128, np.int64)
    msg = ctypes.create_string_buffer(512)
    n = host_lib.check_infer(kind, reduction, hw, hp, loss, nd, ptrs, dptr(out), msg, 512)
    if n < 0:
        return msg.value.decode()
    result, i = [], 0
    while i < n:
        result.append(tuple(out[i + 1:i + 1 + out[i]].tolist()))
        i += 1 + out[i]
    return result


def test_infer_shape_gives_each_output_shape(host_lib):
    host_lib.check_infer.restype = ctypes.c_int64
    x, w, p = (4, 3), (3,), (1, 3)
    assert infer(host_lib, 0, 0, 1, 1, [x, x, w, p]) == [x]           # forward 'none'
    assert infer(host_lib, 0, 1, 1, 1, [x, x, w, p]) == [()]          # forward 'mean'
    assert infer(host_lib, 1, 2, 1, 1, [x, x, w, p]) == [x, x, w, p]  # backward
    assert infer(host_lib, 2, 2, 1, 1, [x, x, w, p]) == [x]           # backward_input
    assert infer(host_lib, 0, 0, 0, 0, [(-1, 3), (4, -1)]) == [(-1, 3)]  # dynamic sizes match anything
    assert infer(host_lib, 0, 0, 0, 0, [x, (3, 4)]) == (
        "For 'BCEWithLogitsLoss', the shape of 'target' must be the same as the shape of 'input' (4, 3), "
        "but got (3, 4).")
    assert infer(host_lib, 0, 0, 1, 0, [x, x, (2,)], loss=1) == (
        "For 'BCELoss', the shape of 'weight' (2,) can not broadcast to the shape of 'input' (4, 3).")


# ---------------------------------------------------------- error codes ---

def test_malformed_calls_return_the_cpu_library_codes(host_lib, cpu_lib):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    y = rng.random((3, 4)).astype(np.float32)
    w = np.ones(4, np.float32)
    out = np.zeros((), np.float32)
    mem = gs.HostMemory()
    f32 = ["float32"] * 4
    calls = [
        (("bce_with_logits_forward_sum_w", [x, y, w, out], f32), {"nparam": 3}),
        (("bce_with_logits_forward_sum", [x, y, w, out], f32), {}),
        (("bce_with_logits_forward_sum", [x, y, out], ["float64"] * 3), {}),
        (("bce_with_logits_forward_sum", [x, y, out], ["float32", "float16", "float32"]), {}),
        (("bce_with_logits_forward_sum", [x, y.reshape(4, 3), out], f32[:3]), {}),
        (("bce_with_logits_forward_sum_w", [x, y, np.ones(3, np.float32), out], f32), {}),
        (("bce_with_logits_forward_none", [x, y, np.zeros(3, np.float32)], f32[:3]), {}),
        (("bce_with_logits_forward_sum", [x, y, out], f32[:3]), {"shapes": [[3, -4], [3, -4], []]}),
        (("bce_with_logits_forward_sum", [x, y, out], f32[:3]), {"shapes": [[2 ** 40, 2 ** 40]] * 2 + [[]]}),
        (("bce_with_logits_forward_sum", [x, y, out], f32[:3]), {"null": (1,)}),
        (("bce_forward_mean_w", [x, y, out], f32[:3]), {}),
        (("bce_with_logits_backward_sum_w", [x, y, w, out, x.copy(), x.copy(), np.zeros(1, np.float32)],
          ["float32"] * 7), {}),
    ]
    for (name, tensors, dtypes), kw in calls:
        mine = gs.call(host_lib, name, mem, tensors, dtypes, **kw)
        theirs = gs.call(cpu_lib, name, mem, tensors, dtypes, **kw)
        assert mine == theirs != gs.OK, (name, kw, mine, theirs)
    assert out == 0.0  # untouched
    dx = np.zeros_like(x)
    assert gs.call(host_lib, "bce_with_logits_backward_input_sum", mem, [x, y, T0, out, dx, dx], ["float32"] * 6) == \
        gs.BAD_PARAM_COUNT
    assert gs.call(host_lib, "bce_with_logits_backward_input_sum", mem, [x, y, T0, np.zeros(1, np.float32), dx],
                   ["float32"] * 5) == gs.BAD_SHAPE


# ---------------------------------------------------------- scalar parameters ---

@pytest.fixture(scope="module")
def param_loss_cpu(test_losses_library):
    """The CPU driver's build of the same test loss (tests/native/scalar_loss_check.cc)."""
    return ctypes.CDLL(test_losses_library)


@pytest.mark.parametrize("reduction", gs.REDUCTIONS)
def test_scalar_parameters_through_the_gpu_driver(host_lib, param_loss_cpu, reduction):
    """The test loss with parameters (A, B) (tests/native/test_losses.h) run by the GPU driver
    on the host backend gives the CPU driver's results, label smoothing included, and both
    checks of t."""
    rng = np.random.default_rng(4)
    shape = (33, 7)
    x, y = (rng.normal(size=shape).astype(np.float32) for _ in range(2))
    w = rng.uniform(0.5, 2, (7,)).astype(np.float32)
    p = rng.uniform(0.5, 2, (33, 1)).astype(np.float32)
    t = np.array([0.75, -0.25, 0.2], np.float32)  # (A, B), then a label smoothing of 0.2
    dout = (rng.normal(size=shape) if reduction == "none" else np.array(1.5)).astype(np.float32)
    out_shape = shape if reduction == "none" else ()
    results = []
    for lib in (host_lib, param_loss_cpu):
        out = np.zeros(out_shape, np.float32)
        assert launch(lib, f"sqp_test_forward_{reduction}_wp", [x, y, w, p, t, out]) == OK
        g = [np.zeros_like(a) for a in (x, y, w, p)]
        assert launch(lib, f"sqp_test_backward_{reduction}_wp", [x, y, w, p, t, dout, *g]) == OK
        results.append([out, *g])
        assert launch(lib, f"sqp_test_forward_{reduction}_wp", [x, y, w, p, t[:1], out]) == BAD_SHAPE
        assert launch(lib, f"sqp_test_forward_{reduction}", [x, y, t.astype(np.float16), out]) == BAD_DTYPE
    for gpu, cpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=2e-6, atol=1e-7)
    ys = y.astype(np.float64) * (1 - 0.2) + 0.2 / 2  # Keras' smoothing rule
    d = x - ys - (-0.25)
    want = 0.75 * w * p * d * d
    want = want if reduction == "none" else (want.mean() if reduction == "mean" else want.sum())
    np.testing.assert_allclose(results[0][0], want, rtol=1e-5)
