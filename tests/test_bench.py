"""The benchmark command runs and reports every case, with the floors it
measures in the same run (tiny sizes here; the figures in the README come
from a full run); the floor operators compute what they say."""
import ctypes
import json

import mindspore as ms
import numpy as np
import pytest

from ms_bce import _kernels, bench
from tests.abi import BAD_SHAPE, OK, as_float64, launch, to_bfloat16


def test_bench_runs_and_writes_results(tmp_path, capsys):
    try:
        assert bench.main(["--sizes", "16,2000", "--repeats", "2", "--dtypes", "float32,float16",
                           "--out", str(tmp_path), "--scaling", "--variants-size", "3000",
                           "--linear", "40,4,64", "--linear-repeats", "2"]) == 0
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    result = json.loads((tmp_path / "results.json").read_text())
    rows = result["rows"]
    assert [(r["dtype"], r["n"]) for r in rows] == [("float32", 16), ("float32", 2000), ("float16", 16),
                                                    ("float16", 2000)]
    for row in rows:
        for mode in ("pynative", "graph"):
            for key in [f"floor_{f}_{mode}" for f in ("read", "read_write", "train")] + \
                       [f"{impl}_{mode}_{case}" for impl in ("ms_bce", "builtin") for case in bench.CASES]:
                assert row[key] > 0, key
        for key in ("floor_train_unwrapped_graph", "ms_bce_graph_forward_backward_unwrapped",
                    "builtin_graph_forward_backward_unwrapped"):
            assert row[key] > 0, key
        assert "ms_bce_pynative_forward_backward_unwrapped" not in row  # graph mode's only
    assert set(result["scaling"]["threads"]) >= {"1"} and result["scaling"]["n"] == 2000
    for times in result["scaling"]["threads"].values():
        assert set(times) == {"floor_read", "floor_read_write", "floor_train", "floor_train_unwrapped",
                              "ms_bce_forward", "ms_bce_forward_none", "ms_bce_forward_backward",
                              "ms_bce_forward_backward_unwrapped"}
    assert set(result["arithmetic"]) == {"forward", "dx", "floor_read"}
    assert result["variants"]["n"] == 3000
    variants = result["variants"]["rows"]
    assert set(variants) == set(bench.VARIANTS)
    for name, (fused, composed) in bench.VARIANTS.items():
        assert set(variants[name]) == {"fused"} | ({"composed"} if composed else set())
        for times in variants[name].values():
            assert set(times) == {"forward", "forward_backward"} and all(t > 0 for t in times.values())
    # in cache the loss costs more per element than reading its inputs, and some
    assert 0 < result["arithmetic"]["floor_read"] < result["arithmetic"]["forward"] < 1e3
    out = capsys.readouterr().out
    assert "machine:" in out and "built-in" in out and "x floor" in out and "training-step floor" in out
    assert "composition / fused" in out
    assert "called without a Cell" in out and "arithmetic alone" in out and "x the graph read floor" in out
    table = (tmp_path / "bench.md").read_text().splitlines()
    assert table[0].startswith("Machine: ")
    # a header, a rule and one line per (dtype, size, mode, case)
    assert len([line for line in table if line.startswith("| float")]) == 4 * 2 * 3
    linear = result["linear"]
    assert linear["shape"] == [40, 4, 64] and linear["chunk_rows"] == 40  # one chunk: fewer than 256 rows
    for variant in bench.LINEAR_VARIANTS:
        for case in ("forward", "training_step"):
            r = linear[variant][case]
            assert len(r["times"]) == 2 and all(t > 0 for t in r["times"]) and r["peak_mib"] >= 0
    assert linear["fused"]["forward"]["loss"] == pytest.approx(linear["unfused"]["forward"]["loss"], rel=1e-5)
    assert linear["fused"]["training_step"]["loss"] == pytest.approx(linear["unfused"]["forward"]["loss"], rel=1e-5)
    assert linear["ratios"]["loss_relative_difference"] <= 1e-5
    assert "fused / unfused" in out and "| loss |" in "\n".join(table)


def test_linear_only_writes_its_table(tmp_path):
    assert bench.main(["--linear-only", "--linear", "24,4,32", "--linear-repeats", "1", "--linear-chunk-size", "5",
                       "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "linear.json").read_text())
    assert result["chunk_size"] == 5 and result["chunk_rows"] == 5
    assert result["ratios"]["loss_relative_difference"] <= 1e-5
    table = (tmp_path / "linear.md").read_text()
    assert "training step: peak memory above the inputs" in table and "| loss |" in table


def test_floor_of_each_case():
    row = {"floor_read_graph": 2.0, "floor_read_write_graph": 3.0}
    assert [bench.floor_of(row, "graph", c) for c in bench.CASES] == [2.0, 3.0, 5.0]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_floor_operators_compute_what_they_say(dtype):
    lib = ctypes.CDLL(_kernels.library_path("CPU"))
    rng = np.random.default_rng(5)
    values = []
    for _ in range(4):  # two chunks of small integers summing to 100: exact in every dtype
        half = rng.integers(-4, 5, 35_000).astype(np.float32)
        values.append(np.concatenate([half, -half]))
        values[-1][:100] += 1
    stored = [to_bfloat16(v) if dtype == "bfloat16" else v.astype(dtype) for v in values]
    total = np.zeros((), stored[0].dtype)
    assert launch(lib, "ms_bce_floor_read", stored + [total]) == OK
    assert float(as_float64(total)) == 400.0
    out = np.zeros_like(stored[0])
    assert launch(lib, "ms_bce_floor_read_write", stored[:3] + [out]) == OK
    np.testing.assert_array_equal(as_float64(out), values[0] + values[1] + values[2])
    assert launch(lib, "ms_bce_floor_read_write", stored[:2] + [out[:10]]) == BAD_SHAPE


def test_floor_operators_through_mindspore(mode):
    x, y, w, p = (ms.Tensor(np.full((5, 3), v, np.float32)) for v in (1.0, 2.0, 3.0, 4.0))
    floors = bench._floor_cases(w, p, mode)
    assert float(floors["floor_read"](x, y).asnumpy()) == 150.0
    np.testing.assert_array_equal(floors["floor_read_write"](x, y).asnumpy(), np.full((5, 3), 10.0))
    value, dx = floors["floor_train"](x, y)  # (a training step: value_and_grad inside a Cell)
    assert float(value.asnumpy()) == 150.0
    np.testing.assert_array_equal(dx.asnumpy(), np.full((5, 3), 10.0))


def test_training_step_cell_gives_value_and_grad_results(mode):
    """The benchmark's training step (value_and_grad inside a Cell) computes
    what value_and_grad called directly computes."""
    rng = np.random.default_rng(6)
    x, y, w, p = (ms.Tensor(rng.uniform(0.1, 1.0, (4, 3)).astype(np.float32)) for _ in range(4))
    import ms_bce
    cases = bench._mindspore_cases(ms_bce.ops.binary_cross_entropy_with_logits, x, y, w, p, mode)
    value_and_grad = ms.value_and_grad(bench._Loss(ms_bce.ops.binary_cross_entropy_with_logits, w, p),
                                       grad_position=0)
    want_value, want_dx = value_and_grad(x, y)
    got_value, got_dx = cases["forward_backward"]()
    assert float(got_value.asnumpy()) == float(want_value.asnumpy())
    np.testing.assert_array_equal(got_dx.asnumpy(), want_dx.asnumpy())
    assert ("forward_backward_unwrapped" in cases) == (mode == "graph")


def test_variant_rows_compare_like_with_like():
    """Each variant's composition of MindSpore ops computes what its fused kernel computes."""
    rng = np.random.default_rng(0)
    shape = (4, bench._CLASSES)  # rows of the class-weighted variants
    x = ms.Tensor(rng.normal(scale=2.0, size=shape).astype(np.float32))
    y = ms.Tensor((rng.random(shape) < 0.3).astype(np.float32))
    keep = ms.Tensor(rng.random(shape) < 0.7)
    for name, (fused, composed) in bench.VARIANTS.items():
        args = (x, y, keep) if name.startswith("mask") else (x, y)
        if composed is not None:
            np.testing.assert_allclose(fused(*args).asnumpy(), composed(*args).asnumpy(), rtol=1e-5, err_msg=name)
