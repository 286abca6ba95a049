#!/bin/bash
# Runs the GPU library's device tests (tests/test_gpu_kernels.py) and the
# bandwidth benchmark on a GPU machine that has Python, NumPy, CuPy, pytest
# and the built library (ms_bce/_lib/libms_bce_gpu-*.so, e.g. copied from a
# machine with nvcc) but no MindSpore: those tests call the kernels through
# ctypes only, and tools/gpu_device/mindspore_stub.py stands in for MindSpore's
# modules so that `import ms_bce` succeeds.  With MindSpore installed, run
#   python -m pytest tests/test_gpu_kernels.py; python -m ms_bce.bench_gpu
# instead.
#   bash tools/gpu_device/run.sh            # tests, then the benchmark (float32, float16)
set -u
cd "$(dirname "$0")/../.."
stub_dir=$(mktemp -d)
printf 'import mindspore_stub  # noqa: F401\n' > "$stub_dir/sitecustomize.py"
export PYTHONPATH="$stub_dir:$PWD:$PWD/tools/gpu_device"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"
python3 -m pytest -q -p no:cacheprovider -rs tests/test_gpu_kernels.py
status=$?
python3 -m ms_bce.bench_gpu --dtype float32
python3 -m ms_bce.bench_gpu --dtype float16
rm -rf "$stub_dir"
exit $status
