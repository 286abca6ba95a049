"""ms_bce inside MindSpore's own distributed training.

Data parallelism: ``examples/distributed_train.py`` launched by ``msrun`` with
two CPU workers over loopback must end with identical parameters on both
ranks, equal to a single-process run on the whole batch.  Semi-auto and auto
parallelism (sharding by strategy) are refused with a clear error.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

import ms_bce

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "distributed_train.py")
WORKERS = 2
TIMEOUT_S = 300


def find_msrun():
    """MindSpore's launcher: beside this interpreter (a virtual environment's
    bin/), else on PATH; None if absent."""
    beside = os.path.join(os.path.dirname(sys.executable), "msrun")
    return beside if os.access(beside, os.X_OK) else shutil.which("msrun")


def free_port():
    """A TCP port nobody listens on now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_env(tmp_path):
    """The environment for msrun and its workers: msrun starts each worker as
    `python script`, found on PATH, so PATH starts with a folder whose `python`
    runs this interpreter (a script that execs it: a symlink would lose the
    virtual environment, which Python finds beside the path it was started by);
    PYTHONPATH makes them import this checkout's ms_bce."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env.setdefault("GLOG_v", "3")
    return env


def child_pids(pid):
    """Direct children of pid, from /proc (msrun's workers)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:  # field 4, after "(comm)", is the parent
            children.append(int(entry))
    return children


def kill_launch(proc):
    """Ends msrun and everything it started.  msrun runs in its own session
    (start_new_session) with its scheduler; each worker it starts gets a session
    of its own (os.setsid), so their groups are killed one by one."""
    if proc.poll() is not None:
        return
    groups = {proc.pid}
    for child in child_pids(proc.pid):
        try:
            groups.add(os.getpgid(child))
        except ProcessLookupError:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def log_tails(log_dir, lines=40):
    """The last lines of every log msrun wrote, for a failure message."""
    parts = []
    for name in sorted(os.listdir(log_dir)) if os.path.isdir(log_dir) else []:
        with open(os.path.join(log_dir, name), encoding="utf-8", errors="replace") as f:
            tail = f.readlines()[-lines:]
        parts.append(f"--- {name} (last {len(tail)} lines)\n{''.join(tail)}")
    return "\n".join(parts) or f"(no logs in {log_dir})"


def run_msrun(msrun, script, script_args, tmp_path, env, timeout=TIMEOUT_S):
    """`msrun --worker_num=2 ... script` with a free port and logs under
    tmp_path, bounded by timeout; returns msrun's output or fails with the
    tail of every log.  Whatever happens, nothing it started is left running."""
    log_dir = tmp_path / "msrun_logs"
    cmd = [msrun, f"--worker_num={WORKERS}", f"--local_worker_num={WORKERS}", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "--join=True", f"--log_dir={log_dir}",
           f"--cluster_time_out={TIMEOUT_S // 2}", str(script), *script_args]
    # cwd=tmp_path: whatever MindSpore writes into its working directory goes with tmp_path
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        kill_launch(proc)
    if timed_out:
        output, _ = proc.communicate()
        pytest.fail(f"msrun did not finish within {timeout} s: {' '.join(cmd)}\n{output[-3000:]}\n"
                    f"{log_tails(log_dir)}")
    if proc.returncode != 0:
        pytest.fail(f"msrun exited with {proc.returncode}: {' '.join(cmd)}\n{output[-3000:]}\n{log_tails(log_dir)}")
    return output


def run_single(out_dir, tmp_path, env):
    """The single-process reference on the whole batch, in a subprocess (so
    this test process keeps its own MindSpore context)."""
    proc = subprocess.run([sys.executable, EXAMPLE, "--single", "--out", str(out_dir)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"single-process run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture
def msrun():
    path = find_msrun()
    if path is None:
        pytest.skip(f"MindSpore's launcher `msrun` is not installed (neither beside {sys.executable} nor on PATH)")
    return path


def check_ranks_against_single(ranks, single):
    """(a) the ranks end bit-identical; (b) equal to the single-process run."""
    names = [k for k in single.files if k not in ("losses", "loss_class")]
    assert sorted(names) == ["net.hidden.bias", "net.hidden.weight", "net.out.bias", "net.out.weight"]
    for rank in ranks:
        assert sorted(rank.files) == sorted(single.files)
    # each rank trained on its own half of the batch ...
    assert not np.allclose(ranks[0]["losses"], ranks[1]["losses"], rtol=1e-3)
    # ... and the mean of the halves' 'mean' losses is the whole batch's, step by step
    np.testing.assert_allclose((ranks[0]["losses"] + ranks[1]["losses"]) / 2, single["losses"], rtol=1e-5)
    # training moved the parameters (so (b) is not met by parameters left at their start)
    assert single["losses"][-1] < single["losses"][0] - 0.05
    assert np.all(np.diff(single["losses"]) < 0)
    for name in names:
        # (a) the all-reduced gradient is the same on both ranks: bit-identical parameters
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=f"{name} differs between ranks")
        # (b) averaged half-batch gradients == whole-batch gradient, up to float32 rounding
        np.testing.assert_allclose(ranks[0][name], single[name], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}: msrun ranks differ from the single-process run")


def test_data_parallel_msrun_matches_single_process(msrun, tmp_path):
    """Two msrun CPU workers, DATA_PARALLEL with gradients_mean, graph mode,
    ms_bce.nn.BCEWithLogitsLoss with pos_weight, SGD: (a) both ranks end with
    identical parameters; (b) they equal one process trained on the whole batch."""
    env = launch_env(tmp_path)
    out_dir = tmp_path / "out"
    run_msrun(msrun, EXAMPLE, ["--out", str(out_dir)], tmp_path, env)
    run_single(out_dir, tmp_path, env)
    ranks = [np.load(out_dir / f"rank_{r}.npz") for r in range(WORKERS)]
    single = np.load(out_dir / "single.npz")
    assert all(str(r["loss_class"]) == "ms_bce.nn.BCEWithLogitsLoss" for r in ranks + [single])
    check_ranks_against_single(ranks, single)


def test_data_parallel_msrun_with_builtin_loss_switched_by_patch(msrun, tmp_path):
    """The same training written with MindSpore's own nn.BCEWithLogitsLoss, switched
    with ms_bce.patch(): the workers build ms_bce's loss, and (a) and (b) hold
    against the single-process ms_bce run."""
    env = launch_env(tmp_path)
    out_dir = tmp_path / "out"
    run_msrun(msrun, EXAMPLE, ["--out", str(out_dir), "--loss", "builtin", "--patch"], tmp_path, env)
    run_single(out_dir, tmp_path, env)
    ranks = [np.load(out_dir / f"rank_{r}.npz") for r in range(WORKERS)]
    single = np.load(out_dir / "single.npz")
    assert [str(r["loss_class"]) for r in ranks] == ["ms_bce.nn.BCEWithLogitsLoss"] * WORKERS
    check_ranks_against_single(ranks, single)


SLEEPER = """\
import os, sys, time
with open(os.path.join(sys.argv[1], os.environ.get("MS_ROLE", "none") + "_" + str(os.getpid())), "w"):
    pass
time.sleep(600)
"""


def process_alive(pid):
    """True while pid runs (a zombie awaiting its parent's wait does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_launch_past_its_time_limit_fails_and_leaves_no_process(msrun, tmp_path):
    """A job that never ends: the test fails at the limit with the logs, and
    msrun's scheduler and workers (each in a session of its own) are gone."""
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    with pytest.raises(pytest.fail.Exception, match=r"msrun did not finish within 12 s(.|\n)*worker_0.log"):
        run_msrun(msrun, script, [str(pid_dir)], tmp_path, launch_env(tmp_path), timeout=12)
    started = [p.name.rpartition("_") for p in pid_dir.iterdir()]  # (role, _, pid) of each script run
    assert sorted(role for role, _, _ in started) == ["MS_SCHED", "MS_WORKER", "MS_WORKER"]
    pids = [int(pid) for _, _, pid in started]
    deadline = time.monotonic() + 10
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if process_alive(pid)]


# --------------------------------------------------- sharding parallel modes ---

SHARDING_MODES = (ms.ParallelMode.SEMI_AUTO_PARALLEL, ms.ParallelMode.AUTO_PARALLEL)


@pytest.fixture(params=SHARDING_MODES)
def sharding_mode(request):
    ms.set_auto_parallel_context(parallel_mode=request.param)
    yield request.param
    ms.reset_auto_parallel_context()
    ms.set_context(mode=ms.PYNATIVE_MODE)


class LossCell(nn.Cell):
    def __init__(self):
        super().__init__()
        self.loss = ms_bce.nn.BCEWithLogitsLoss(pos_weight=Tensor(np.array([2.0, 1.0, 0.5], np.float32)))

    def construct(self, x, y):
        return self.loss(x, y)


X = Tensor(np.zeros((4, 3), np.float32))


def test_sharding_parallel_modes_refused_at_the_call_in_pynative(sharding_mode):
    """Where MindSpore would run the loss eagerly, ms_bce refuses in Python at
    the call, saying what is supported."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    with pytest.raises(RuntimeError, match=(
            f"For 'BCEWithLogitsLoss', the parallel mode '{sharding_mode}' is not supported: ms_bce's Custom "
            r"operators have no sharding strategy. Use ParallelMode.DATA_PARALLEL \(with gradients_mean=True")):
        LossCell()(X, X)
    ms.reset_auto_parallel_context()
    # zero logits: every element's loss is log 2 (times pos_weight where the target is 1; here it is 0)
    assert float(LossCell()(X, X).asnumpy()) == pytest.approx(np.log(2.0), rel=1e-6)


def test_sharding_parallel_modes_refused_before_compiling_in_graph_mode(sharding_mode):
    """In graph mode MindSpore 2.10 itself refuses these modes on CPU, before it
    parses the graph (so before ms_bce's check could run): a clear RuntimeError,
    never a crash or a sharded loss."""
    ms.set_context(mode=ms.GRAPH_MODE)
    with pytest.raises(RuntimeError, match=(
            "Invalid communication backend: CPU for semi_auto_parallel/auto_parallel mode, currently only "
            "support Ascend/GPU backend")):
        LossCell()(X, X)
    ms.reset_auto_parallel_context()
    assert float(LossCell()(X, X).asnumpy()) == pytest.approx(np.log(2.0), rel=1e-6)


def test_sharding_parallel_mode_check_runs_while_the_graph_compiles(monkeypatch):
    """Where MindSpore would parse a graph under these modes (its Ascend and GPU
    backends), ms_bce's check refuses them at compile time: seen here by making
    the check read 'semi_auto_parallel' while MindSpore itself stays stand-alone."""
    monkeypatch.setattr(ms_bce._validate, "get_auto_parallel_context",
                        lambda key: "semi_auto_parallel" if key == "parallel_mode" else None)
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        with pytest.raises(RuntimeError, match="For 'BCEWithLogitsLoss', the parallel mode 'semi_auto_parallel' "
                                               "is not supported: ms_bce's Custom operators"):
            LossCell()(X, X)
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
