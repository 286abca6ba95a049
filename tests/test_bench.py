"""The benchmark command runs and reports every case (tiny sizes here; the
figures in the README come from a full run)."""
import json

import mindspore as ms

from ms_bce import bench


def test_bench_runs_and_writes_results(tmp_path, capsys):
    try:
        assert bench.main(["--sizes", "16,2000", "--repeats", "2", "--dtypes", "float32,float16",
                           "--out", str(tmp_path)]) == 0
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["dtype"], r["n"]) for r in rows] == [("float32", 16), ("float32", 2000), ("float16", 16),
                                                    ("float16", 2000)]
    for row in rows:
        for key in ("ms_bce_graph_forward", "builtin_pynative_forward_backward", "numpy_read_floor"):
            assert row[key] > 0
    out = capsys.readouterr().out
    assert "machine:" in out and "built-in" in out
    table = (tmp_path / "bench.md").read_text().splitlines()
    assert table[0].startswith("Machine: ")
    # a header, a rule and one line per (dtype, size, mode, case)
    assert len([line for line in table if line.startswith("| float")]) == 4 * 2 * 2
