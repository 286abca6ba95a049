#!/usr/bin/env bash
# Builds ms_bce's Ascend C operators into a CANN custom operator package with
# MindSpore's own custom_compiler, and installs it where MindSpore looks for
# custom operators.  Runs only where the CANN toolkit is installed; elsewhere
# it says so and exits with status 2.
#
#   custom_ops/ascend/build.sh                  # build; prints the .run package
#   custom_ops/ascend/build.sh --install DIR    # build and install under DIR
#                                               # (then: export ASCEND_CUSTOM_OPP_PATH=DIR/vendors/ms_bce:$ASCEND_CUSTOM_OPP_PATH)
#
# The operator project (op_host/, op_kernel/: the hand-written headers here
# and one generated file per operator) is written by ops.py from the loss
# registry (ms_bce/_losses.py) into the build directory, not into the source
# tree.  CANN is looked for in $ASCEND_HOME_PATH, else $ASCEND_CANN_PACKAGE_PATH,
# else /usr/local/Ascend/ascend-toolkit/latest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
install_dir=""
if [ "${1:-}" = "--install" ]; then
  install_dir="${2:?--install needs a directory}"
fi

cann="${ASCEND_HOME_PATH:-${ASCEND_CANN_PACKAGE_PATH:-/usr/local/Ascend/ascend-toolkit/latest}}"
has_cann() {  # the templates MindSpore's custom_compiler copies its build project from
  [ -d "$cann/tools/op_project_templates/ascendc" ] || [ -d "$cann/tools/msopgen/template" ]
}
if ! has_cann; then
  echo "ms_bce: no CANN toolkit at '$cann' (set ASCEND_HOME_PATH): the Ascend C operators are not built." >&2
  echo "ms_bce: they need CANN 8 (Atlas A2/A3, ascend910b / ascend910_93); the CPU and GPU kernels do not." >&2
  exit 2
fi

ms_dir="$(python3 -c 'import mindspore, os; print(os.path.dirname(mindspore.__file__))')"
work="$(mktemp -d)"
trap 'echo "ms_bce: build directory kept at $work"' EXIT
python3 "$here/ops.py" "$work/project"  # op_host/ and op_kernel/, generated operators included
cp -r "$ms_dir/lib/plugin/ascend/custom_compiler" "$work/"
cd "$work/custom_compiler"
args=(-o "$work/project/op_host" -k "$work/project/op_kernel" --vendor_name ms_bce --ascend_cann_package_path "$cann")
if [ -n "$install_dir" ]; then
  mkdir -p "$install_dir"
  args+=(-i --install_path "$(cd "$install_dir" && pwd)")
fi
python3 setup.py "${args[@]}"
ls "$work"/custom_compiler/CustomProject/build_out/*.run
