"""Which kernels a device target gets: the entry-point table, the GPU
library chosen when the target is GPU (and a clear error when it was not
built), the Ascend C operators registered by name when it is Ascend, and the
CPU library otherwise."""
import re

import pytest

from ms_bce import _kernels


def test_device_target_picks_cpu_gpu_or_ascend(monkeypatch):
    for target, expected in (("CPU", "CPU"), ("GPU", "GPU"), ("Ascend", "Ascend"), ("Other", "CPU")):
        monkeypatch.setattr(_kernels.context, "get_context", lambda key, t=target: t)
        assert _kernels.device_target() == expected


@pytest.mark.parametrize("device,library", [("CPU", "libms_bce_cpu"), ("GPU", "libms_bce_gpu")])
def test_entry_point_table_maps_to_the_device_library(device, library):
    try:
        path = _kernels.library_path(device)
    except RuntimeError:
        pytest.skip(f"the {device} library was not built here")
    func = _kernels.entry_point("bce_with_logits", "backward", "sum", True, True, device)
    assert func == f"{path}:bce_with_logits_backward_sum_wp"
    assert re.fullmatch(library + r"-[0-9a-f]{12}\.so", path.rpartition("/")[2])


def test_ascend_entries_are_operator_types():
    assert _kernels.entry_point("bce_with_logits", "forward", "mean", True, True, "Ascend") == \
        "BceWithLogitsForwardMeanWp"
    assert _kernels.entry_point("bce", "backward", "none", False, False, "Ascend") == "BceBackwardNone"
    with pytest.raises(ValueError):
        _kernels.entry_point("bce", "forward", "mean", False, True, "Ascend")  # BCELoss has no pos_weight


def test_missing_gpu_library_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(_kernels, "_LIB_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"GPU kernel library \(libms_bce_gpu-<hash>.so\) is missing .* "
                                           r"built only where nvcc is found .* MS_BCE_BUILD_GPU=1"):
        _kernels.library_path("GPU")
    monkeypatch.setattr(_kernels, "device_target", lambda: "GPU")
    with pytest.raises(RuntimeError, match="GPU kernel library"):
        _kernels.LossForward("bce_with_logits", "mean", False, False)


def test_gpu_target_builds_custom_ops_on_the_gpu_library(monkeypatch):
    try:
        path = _kernels.library_path("GPU")
    except RuntimeError:
        pytest.skip("the GPU library was not built here")
    monkeypatch.setattr(_kernels, "device_target", lambda: "GPU")
    op = _kernels.LossForward("bce", "sum", True, False)
    assert op.func == f"{path}:bce_forward_sum_w"


def test_ascend_target_registers_the_ascend_c_operators(monkeypatch):
    """Registration only (no Ascend here): operator type, input and output
    names as custom_ops/ascend/op_host declares them, the three dtypes."""
    monkeypatch.setattr(_kernels, "device_target", lambda: "Ascend")
    op = _kernels.LossForward("bce_with_logits", "mean", True, True)
    assert op.func == "BceWithLogitsForwardMeanWp"
    assert [i["name"] for i in op.reg_info["inputs"]] == ["x", "target", "weight", "pos_weight"]
    assert [o["name"] for o in op.reg_info["outputs"]] == ["y"]
    assert {row[0][0] for row in op.reg_info["dtype_format"]} == {"float16", "float32", "bfloat16"}
    assert op.reg_info["target"] == "Ascend"
    back = _kernels.LossBackward("bce", "none", True, False, "Ascend")
    assert back.func == "BceBackwardNoneW"
    assert [i["name"] for i in back.reg_info["inputs"]] == ["x", "target", "weight", "dout"]
    assert [o["name"] for o in back.reg_info["outputs"]] == ["dx", "dtarget", "dweight"]
