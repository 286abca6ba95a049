"""ms_bce inside MindSpore's own distributed training.

Data parallelism: ``examples/distributed_train.py`` launched by ``msrun`` with
two CPU workers over loopback must end with identical parameters on both
ranks, equal to a single-process run on the whole batch: one launch of two
workers, or two node launches of one worker each (as on two hosts), and with
shards of unequal size (``'sum'`` over the whole batch's element count, summed
gradients; per-rank ``'mean'`` averaged is shown to be off).  Semi-auto and auto
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


def msrun_args(log_dir, port, local_workers=WORKERS, node_rank=None):
    """msrun's options for a job of WORKERS workers with its scheduler on
    127.0.0.1:port, `local_workers` of them started by this launch (as node
    `node_rank` of the job, when given), logs in log_dir."""
    node = [] if node_rank is None else [f"--node_rank={node_rank}"]
    return [f"--worker_num={WORKERS}", f"--local_worker_num={local_workers}", *node, "--master_addr=127.0.0.1",
            f"--master_port={port}", "--join=True", f"--log_dir={log_dir}", f"--cluster_time_out={TIMEOUT_S // 2}"]


def run_launches(launches, tmp_path, env, timeout=TIMEOUT_S):
    """Starts the launches (each a (command, log_dir) pair) at once and waits
    for them all, bounded by timeout; returns each one's output, or fails with
    the tail of every log once any of them fails or time is up.  Whatever
    happens, nothing they started is left running."""
    procs, outputs = [], []
    try:
        for index, (cmd, _) in enumerate(launches):
            # output to a file, not a pipe: a launch not read from must never block on a full pipe.
            # cwd=tmp_path: whatever MindSpore writes into its working directory goes with tmp_path.
            outputs.append(tmp_path / f"launch_{index}.out")
            with open(outputs[-1], "w", encoding="utf-8") as out:
                procs.append(subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        deadline = time.monotonic() + timeout
        while (any(p.poll() is None for p in procs) and not any(p.poll() for p in procs)
               and time.monotonic() < deadline):
            time.sleep(0.2)
    finally:
        for proc in procs:
            kill_launch(proc)
    codes = [p.returncode for p in procs]
    texts = [path.read_text(encoding="utf-8", errors="replace") for path in outputs]
    if codes != [0] * len(launches):
        what = (f"msrun did not finish within {timeout} s" if time.monotonic() >= deadline
                else f"msrun exited with {', '.join(map(str, codes))}")
        reports = [f"=== {' '.join(map(str, cmd))}\n(exit {code})\n{text[-3000:]}\n{log_tails(log_dir)}"
                   for (cmd, log_dir), code, text in zip(launches, codes, texts)]
        pytest.fail(f"{what}:\n" + "\n".join(reports))
    return texts


def run_msrun(msrun, script, script_args, tmp_path, env, timeout=TIMEOUT_S):
    """`msrun --worker_num=2 --local_worker_num=2 ... script`: both workers from
    one launch; returns msrun's output (see run_launches)."""
    log_dir = tmp_path / "msrun_logs"
    cmd = [msrun, *msrun_args(log_dir, free_port()), str(script), *script_args]
    return run_launches([(cmd, log_dir)], tmp_path, env, timeout)[0]


# msrun as on a host other than the master's.  msrun starts the scheduler where
# --master_addr is one of the host's own addresses: on a second host, the first
# host's address is not, but 127.0.0.1 is local to every launch on this machine,
# so a second plain msrun would start a second scheduler, which fails to bind
# the port the first one holds and makes that msrun exit 1 (though its worker
# trains).  This launcher is msrun with that one answer given as on a second host.
OTHER_HOST_MSRUN = """\
import sys
from mindspore.parallel.cluster.process_entity import _api
from mindspore.parallel.cluster.run import main
if not callable(getattr(_api, "_is_local_ip", None)):
    sys.exit("MindSpore's msrun changed: mindspore.parallel.cluster.process_entity._api._is_local_ip is gone")
_api._is_local_ip = lambda address: False
sys.argv[0] = "msrun"
sys.exit(main())
"""


def run_msrun_two_nodes(msrun, script, script_args, tmp_path, env, timeout=TIMEOUT_S):
    """Two node launches at once, node_rank 0 and 1 with one worker each
    (`--worker_num=2 --local_worker_num=1`), one port, logs in node_<n>_logs;
    node 1 as on another host (OTHER_HOST_MSRUN).  Returns their outputs."""
    port = free_port()
    launches = []
    for node in range(WORKERS):
        log_dir = tmp_path / f"node_{node}_logs"
        launcher = [msrun] if node == 0 else [sys.executable, "-c", OTHER_HOST_MSRUN]
        launches.append(([*launcher, *msrun_args(log_dir, port, local_workers=1, node_rank=node), str(script),
                          *script_args], log_dir))
    return run_launches(launches, tmp_path, env, timeout)


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


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The single-process run's saved results (run once for this module)."""
    tmp_path = tmp_path_factory.mktemp("single")
    run_single(tmp_path / "out", tmp_path, launch_env(tmp_path))
    return np.load(tmp_path / "out" / "single.npz")


def load_ranks(out_dir):
    return [np.load(out_dir / f"rank_{r}.npz") for r in range(WORKERS)]


PARAMETERS = ["net.hidden.bias", "net.hidden.weight", "net.out.bias", "net.out.weight"]


def check_ranks_against_single(ranks, single, whole_batch_losses=lambda losses: np.mean(losses, axis=0)):
    """(a) the ranks end bit-identical; (b) equal to the single-process run.
    whole_batch_losses: the whole batch's loss at each step from the ranks'
    (the mean of equal shards' 'mean' losses, by default)."""
    assert sorted(k for k in single.files if k.startswith("net.")) == PARAMETERS
    for rank in ranks:
        assert sorted(rank.files) == sorted(single.files)
    # each rank trained on its own rows of the batch, all of them ...
    assert not np.allclose(ranks[0]["losses"], ranks[1]["losses"], rtol=1e-3)
    assert sum(int(r["examples"]) for r in ranks) == int(single["examples"]) == 64
    # ... and the ranks' losses make up the whole batch's, step by step
    np.testing.assert_allclose(whole_batch_losses([r["losses"] for r in ranks]), single["losses"], rtol=1e-5)
    # training moved the parameters (so (b) is not met by parameters left at their start)
    assert single["losses"][-1] < single["losses"][0] - 0.05
    assert np.all(np.diff(single["losses"]) < 0)
    for name in PARAMETERS:
        # (a) the all-reduced gradient is the same on both ranks: bit-identical parameters
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=f"{name} differs between ranks")
        # (b) all-reduced shard gradients == whole-batch gradient, up to float32 rounding
        np.testing.assert_allclose(ranks[0][name], single[name], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}: msrun ranks differ from the single-process run")


def test_data_parallel_msrun_matches_single_process(msrun, tmp_path, single):
    """Two msrun CPU workers, DATA_PARALLEL with gradients_mean, graph mode,
    ms_bce.nn.BCEWithLogitsLoss with pos_weight, SGD: (a) both ranks end with
    identical parameters; (b) they equal one process trained on the whole batch."""
    out_dir = tmp_path / "out"
    run_msrun(msrun, EXAMPLE, ["--out", str(out_dir)], tmp_path, launch_env(tmp_path))
    ranks = load_ranks(out_dir)
    assert all(str(r["loss_class"]) == "ms_bce.nn.BCEWithLogitsLoss" for r in ranks + [single])
    assert [int(r["examples"]) for r in ranks] == [32, 32]
    check_ranks_against_single(ranks, single)


def test_data_parallel_msrun_with_builtin_loss_switched_by_patch(msrun, tmp_path, single):
    """The same training written with MindSpore's own nn.BCEWithLogitsLoss, switched
    with ms_bce.patch(): the workers build ms_bce's loss, and (a) and (b) hold
    against the single-process ms_bce run."""
    out_dir = tmp_path / "out"
    run_msrun(msrun, EXAMPLE, ["--out", str(out_dir), "--loss", "builtin", "--patch"], tmp_path,
              launch_env(tmp_path))
    ranks = load_ranks(out_dir)
    assert [str(r["loss_class"]) for r in ranks] == ["ms_bce.nn.BCEWithLogitsLoss"] * WORKERS
    check_ranks_against_single(ranks, single)


def test_data_parallel_two_msrun_nodes_match_single_process(msrun, tmp_path, single):
    """msrun across nodes, here two node launches on this machine at once
    (--node_rank 0 and 1, one worker each, master 127.0.0.1): node 0 runs the
    scheduler and rank 0, node 1 only rank 1, both launches exit 0, and (a)
    and (b) hold as for one launch of two workers."""
    out_dir = tmp_path / "out"
    outputs = run_msrun_two_nodes(msrun, EXAMPLE, ["--out", str(out_dir)], tmp_path, launch_env(tmp_path))
    assert ["Start scheduler process" in output for output in outputs] == [True, False]
    assert sorted(os.listdir(tmp_path / "node_0_logs")) == ["scheduler.log", "worker_0.log"]
    assert sorted(os.listdir(tmp_path / "node_1_logs")) == ["worker_1.log"]
    for node in range(WORKERS):  # each node's worker is the rank node_rank * local_worker_num + 0
        log = (tmp_path / f"node_{node}_logs" / f"worker_{node}.log").read_text(encoding="utf-8", errors="replace")
        assert f"[rank_{node}] 32 examples" in log
    check_ranks_against_single(load_ranks(out_dir), single)


def test_uneven_shards_sum_over_whole_batch_count_match_single_process(msrun, tmp_path, single):
    """--uneven: ranks on 21 and 43 rows, each loss the 'sum' over its rows
    divided by the whole batch's element count, gradients summed
    (gradients_mean=False): the ranks' losses add up to the whole batch's
    'mean', and (a) and (b) hold."""
    out_dir = tmp_path / "out"
    run_msrun(msrun, EXAMPLE, ["--out", str(out_dir), "--uneven"], tmp_path, launch_env(tmp_path))
    ranks = load_ranks(out_dir)
    assert [int(r["examples"]) for r in ranks] == [21, 43]
    check_ranks_against_single(ranks, single, whole_batch_losses=lambda losses: np.sum(losses, axis=0))


def test_uneven_shards_with_per_rank_mean_and_gradients_mean_differ_from_single_process(msrun, tmp_path, single):
    """--uneven --naive, the pitfall: per-rank 'mean' on 21 and 43 rows with
    gradients_mean=True weighs each of rank 0's rows 43/21 times as much as
    each of rank 1's.  The ranks stay bit-identical and start from the whole
    batch's loss, but end measurably off the single-process parameters."""
    out_dir = tmp_path / "out"
    run_msrun(msrun, EXAMPLE, ["--out", str(out_dir), "--uneven", "--naive"], tmp_path, launch_env(tmp_path))
    ranks = load_ranks(out_dir)
    assert [int(r["examples"]) for r in ranks] == [21, 43]
    # the first step's loss, before any update: the example-weighted mean of the shards' means is the batch's
    weighted = (21 * ranks[0]["losses"] + 43 * ranks[1]["losses"]) / 64
    np.testing.assert_allclose(weighted[0], single["losses"][0], rtol=1e-5)
    # from the second step on, the parameters (updated by the wrong gradient) are not the single run's
    assert np.all(np.abs(weighted[1:] - single["losses"][1:]) > 1e-3)
    for name in PARAMETERS:
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=f"{name} differs between ranks")
        # off by far more than the tolerance (rtol 1e-5) the exact recipe meets
        assert np.abs(ranks[0][name] - single[name]).max() > 1e-3 * np.abs(single[name]).max(), name


SLEEPER = """\
import os, sys, time
pid_dir = sys.argv[1]
with open(os.path.join(pid_dir, os.environ.get("MS_ROLE", "none") + "_" + str(os.getpid())), "w"):
    pass
if os.environ.get("MS_ROLE") == "MS_WORKER" and sys.argv[2:] == [os.environ.get("RANK_ID")]:
    deadline = time.monotonic() + 30  # the failing rank: once the scheduler and both workers run, exit 3
    while len(os.listdir(pid_dir)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    sys.exit(3)
time.sleep(600)
"""


def process_alive(pid):
    """True while pid runs (a zombie awaiting its parent's wait does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def sleeper(tmp_path):
    """The SLEEPER script and the empty folder where each of its runs leaves its role and pid."""
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    return script, pid_dir


def check_scheduler_and_workers_ran_and_are_gone(pid_dir):
    started = [p.name.rpartition("_") for p in pid_dir.iterdir()]  # (role, _, pid) of each script run
    assert sorted(role for role, _, _ in started) == ["MS_SCHED", "MS_WORKER", "MS_WORKER"]
    pids = [int(pid) for _, _, pid in started]
    deadline = time.monotonic() + 10
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if process_alive(pid)]


@pytest.mark.parametrize("run", [run_msrun, run_msrun_two_nodes], ids=["one_launch", "two_nodes"])
def test_launch_past_its_time_limit_fails_and_leaves_no_process(msrun, tmp_path, run):
    """A job that never ends: the test fails at the limit with the logs, and
    msrun's scheduler and workers (each in a session of its own) are gone,
    from one launch or from two node launches."""
    script, pid_dir = sleeper(tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"msrun did not finish within 12 s(.|\n)*worker_0.log"):
        run(msrun, script, [str(pid_dir)], tmp_path, launch_env(tmp_path), timeout=12)
    check_scheduler_and_workers_ran_and_are_gone(pid_dir)


def test_two_node_launch_failing_on_one_node_stops_the_other_at_once(msrun, tmp_path):
    """Rank 1 (node 1) exits 3 while rank 0 would run for ever: node 1's msrun
    exits 1, node 0 is killed then and there, not at the time limit, and the
    failure shows both launches' logs."""
    script, pid_dir = sleeper(tmp_path)
    began = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"msrun exited with -9, 1:(.|\n)*worker_0.log(.|\n)*"
                                                    r"worker_1.log"):
        run_msrun_two_nodes(msrun, script, [str(pid_dir), "1"], tmp_path, launch_env(tmp_path))
    assert time.monotonic() - began < TIMEOUT_S / 4
    check_scheduler_and_workers_ran_and_are_gone(pid_dir)


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
