"""Multi-label training with many labels: the fused head against the unfused one.

A small model (a hidden layer, then a head over 10^4 labels) trained in graph
mode with TrainOneStepCell on synthetic data, twice: with
ms_bce.nn.LinearBCEWithLogitsLoss (the head's matrix product and the loss fused,
computed over row chunks: the (batch, labels) logits never exist whole), and with
nn.Dense + ms_bce.nn.BCEWithLogitsLoss (the logits and their gradient whole).  Both
start from the same weights; it prints their losses, step times and peak memory
(the process's resident high-water mark above what it held before training; each
head trains in a fresh process) side by side.

    python examples/many_labels.py [--labels 10000] [--batch 2048] [--steps 8]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

import ms_bce

HEADS = ("fused", "unfused")


class Model(nn.Cell):
    """features -> hidden (ReLU) -> the head's loss: fused, or nn.Dense and the loss cell."""

    def __init__(self, head, features, hidden, labels, chunk_size=None):
        super().__init__()
        self.hidden = nn.Dense(features, hidden, activation="relu")
        self.fused = head == "fused"
        if self.fused:
            self.head = ms_bce.nn.LinearBCEWithLogitsLoss(hidden, labels, chunk_size=chunk_size)
        else:
            self.head = nn.Dense(hidden, labels)
            self.loss = ms_bce.nn.BCEWithLogitsLoss()

    def construct(self, x, y):
        h = self.hidden(x)
        if self.fused:
            return self.head(h, y)
        return self.loss(self.head(h), ops.cast(y, ms.float32))


def synthetic(samples, features, labels, seed=0):
    """Inputs and sparse bool labels from a random linear teacher (about 2 % positive)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features), dtype=np.float32)
    teacher = rng.standard_normal((features, labels), dtype=np.float32)
    y = (x @ teacher) > 2.05 * np.sqrt(features)
    return x, y


def _memory():
    """(resident MiB, high-water mark MiB) of this process (Linux)."""
    with open("/proc/self/status", encoding="utf-8") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def train(head, args):
    """Trains one head in this process; {'losses', 'step_ms', 'peak_mib'}."""
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(0)
    x, y = synthetic(args.batch, args.features, args.labels)
    model = Model(head, args.features, args.hidden, args.labels, args.chunk_size)
    # the same initial weights for both heads: the fused head's Parameters are named as nn.Dense's
    rng = np.random.default_rng(1)
    for p in model.trainable_params():
        p.set_data(Tensor((rng.standard_normal(p.shape) * 0.05).astype(np.float32)))
    step = nn.TrainOneStepCell(model, nn.SGD(model.trainable_params(), learning_rate=args.lr))
    xt, yt = Tensor(x), Tensor(y)
    step.compile(xt, yt)
    try:  # the high-water mark from here on (Linux 4.0+)
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
    except OSError:
        pass
    base = _memory()[0]
    losses, times = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        losses.append(float(step(xt, yt).asnumpy()))
        times.append((time.perf_counter() - start) * 1e3)
    return {"losses": losses, "step_ms": times, "peak_mib": _memory()[1] - base}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2.0)
    parser.add_argument("--chunk-size", type=int, default=None, help="the fused head's rows per chunk")
    parser.add_argument("--head", choices=HEADS, help="train this head here (otherwise each in a fresh process)")
    args = parser.parse_args(argv)
    if args.head:
        print(json.dumps(train(args.head, args)))
        return None
    results = {}
    for head in HEADS:
        cmd = [sys.executable, os.path.abspath(__file__), "--head", head] + (argv if argv is not None else sys.argv[1:])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "GLOG_v": "3"})
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        results[head] = json.loads(lines[-1])
    fused, unfused = results["fused"], results["unfused"]
    print(f"{args.batch} samples, {args.features} features -> {args.hidden} hidden -> {args.labels} labels, "
          f"graph mode, TrainOneStepCell(SGD), {args.steps} steps")
    print(f"{'step':>4}  {'fused loss':>12}  {'unfused loss':>12}  {'fused ms':>9}  {'unfused ms':>10}")
    for i, (a, b, ta, tb) in enumerate(zip(fused["losses"], unfused["losses"], fused["step_ms"], unfused["step_ms"])):
        print(f"{i + 1:>4}  {a:12.8f}  {b:12.8f}  {ta:9.1f}  {tb:10.1f}")
    ratio = statistics.median(fused["step_ms"]) / statistics.median(unfused["step_ms"])
    print(f"median step: fused {statistics.median(fused['step_ms']):.1f} ms, unfused "
          f"{statistics.median(unfused['step_ms']):.1f} ms ({ratio:.2f}x)")
    print(f"peak memory above the model and data: fused {fused['peak_mib']:.0f} MiB, unfused "
          f"{unfused['peak_mib']:.0f} MiB (logits alone: {args.batch * args.labels * 4 / 2 ** 20:.0f} MiB)")
    return results


if __name__ == "__main__":
    main()
