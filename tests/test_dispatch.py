"""Which kernels a device target gets: the entry-point table, the GPU
library chosen when the target is GPU (and a clear error when it was not
built), and the CPU library otherwise."""
import re

import pytest

from ms_bce import _kernels


def test_device_target_picks_cpu_or_gpu(monkeypatch):
    for target, expected in (("CPU", "CPU"), ("GPU", "GPU"), ("Other", "CPU")):
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
