"""Data-parallel training with ms_bce's loss under MindSpore's own launcher.

Trains a small multi-label classifier for a few steps in graph mode with
``ms_bce.nn.BCEWithLogitsLoss`` (with a per-class ``pos_weight``) and plain SGD,
the whole batch split between the workers, and saves each worker's final
parameters to ``<out>/rank_<r>.npz``.  Launched on one machine with two CPU
workers over loopback:

    msrun --worker_num=2 --local_worker_num=2 --master_port=8118 --join=True \\
        --log_dir=msrun_logs examples/distributed_train.py --out dist_out

(msrun starts each worker as ``python <script>``: run it with the environment
that has ms_bce installed activated.)  Each rank prints its losses, on its own
half of the batch, and a digest of its final parameters: the digests are equal.

``--single`` runs the same training in one process on the whole batch, without
``msrun``, and saves ``<out>/single.npz``: with ``'mean'`` reduction and
``gradients_mean=True`` the averaged gradient of the equal halves is the
gradient of the whole batch, so every rank must end with these parameters (to
float32 rounding).  ``tests/test_distributed.py`` runs both and compares.

Across machines, start one ``msrun`` per host, every one with the total
``--worker_num``, its own ``--local_worker_num`` and ``--node_rank``, and the
first host's address as ``--master_addr`` (that host also runs the scheduler):

    host A:  msrun --worker_num=8 --local_worker_num=4 --node_rank=0 --master_addr=<A> \\
                 --master_port=8118 --join=True --log_dir=msrun_logs examples/distributed_train.py --out dist_out
    host B:  the same with --node_rank=1

(each host's ``--out`` then holds its own ranks' files).

``--uneven`` gives the ranks shards of different sizes (in proportion
1 : 2 : ... : workers).  Then each rank's ``'mean'`` divides by its own shard's
element count, and averaging those gradients is not the gradient of the whole
batch's mean.  The exact recipe, for shards of any size: each rank's loss is the
``'sum'`` over its shard divided by the whole batch's element count (which every
rank knows), and the gradients are summed across ranks, ``gradients_mean=False``.
The ranks' losses then add up to the whole batch's, and the parameters again
equal ``--single``'s.  ``--uneven --naive`` keeps per-rank ``'mean'`` and
``gradients_mean=True`` on the uneven shards, to show that it does not.

``--loss builtin`` writes the loss as MindSpore's own ``nn.BCEWithLogitsLoss``;
with ``--patch`` the script first calls ``ms_bce.patch()``, so that same line
builds ms_bce's loss: an unchanged training script switched with one line.

Nothing here is specific to ms_bce except the loss: MindSpore's
``TrainOneStepCell`` all-reduces the gradients in ``DATA_PARALLEL`` mode, and the
loss, computed on each worker's own rows, needs no sharding strategy.
"""
import argparse
import hashlib
import os

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

import ms_bce

N_EXAMPLES, N_FEATURES, N_HIDDEN, N_CLASSES = 64, 12, 16, 5
LEARNING_RATE = 0.5


def whole_batch(seed):
    """The fixed whole batch: multi-label targets from a random linear teacher,
    rare and common classes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_EXAMPLES, N_FEATURES)).astype(np.float32)
    teacher = rng.normal(size=(N_FEATURES, N_CLASSES))
    bias = np.linspace(-1.5, 0.5, N_CLASSES)
    y = ((x @ teacher + bias + 0.5 * rng.normal(size=(N_EXAMPLES, N_CLASSES))) > 0).astype(np.float32)
    return x, y


def pos_weight_of(y):
    """Negatives per positive in each class, the usual choice for imbalance."""
    positives = y.sum(axis=0)
    return ((len(y) - positives) / np.maximum(positives, 1)).astype(np.float32)


class Classifier(nn.Cell):
    """Two dense layers; weights drawn from the seed, biases zero (MindSpore 2.x
    initialises Dense biases randomly unless told)."""

    def __init__(self, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.hidden = nn.Dense(N_FEATURES, N_HIDDEN, bias_init="zeros", weight_init=Tensor(
            rng.normal(0, 1 / np.sqrt(N_FEATURES), (N_HIDDEN, N_FEATURES)).astype(np.float32)))
        self.out = nn.Dense(N_HIDDEN, N_CLASSES, bias_init="zeros", weight_init=Tensor(
            rng.normal(0, 1 / np.sqrt(N_HIDDEN), (N_CLASSES, N_HIDDEN)).astype(np.float32)))
        self.act = nn.ReLU()

    def construct(self, x):
        return self.out(self.act(self.hidden(x)))


class WithLoss(nn.Cell):
    """The loss of the network's logits, divided by `denominator` (1 for
    reduction 'mean'; the whole batch's element count for 'sum' on a shard)."""

    def __init__(self, net, loss, denominator=1.0):
        super().__init__()
        self.net = net
        self.loss = loss
        self.denominator = denominator

    def construct(self, x, y):
        return self.loss(self.net(x), y) / self.denominator


def shard(rank, size, uneven):
    """The rows [start, stop) of the whole batch that `rank` of `size` trains
    on: equal parts, or with `uneven` parts in proportion 1 : 2 : ... : size."""
    if not uneven:
        if N_EXAMPLES % size:
            raise SystemExit(f"{N_EXAMPLES} examples do not split evenly between {size} workers")
        return rank * N_EXAMPLES // size, (rank + 1) * N_EXAMPLES // size
    triangle = size * (size + 1)  # twice 1 + 2 + ... + size
    start, stop = N_EXAMPLES * rank * (rank + 1) // triangle, N_EXAMPLES * (rank + 1) * (rank + 2) // triangle
    if start == stop:
        raise SystemExit(f"{N_EXAMPLES} examples are too few for uneven shards on {size} workers")
    return start, stop


def train(x, y, pos_weight, steps, seed, loss_name="ms_bce", reduction="mean", denominator=1.0):
    """`steps` SGD steps on (x, y) in the current parallel context; returns
    the network, the loss of each step (this worker's rows) and the loss cell."""
    net = Classifier(seed)
    if loss_name == "builtin":  # MindSpore's name: ms_bce's class once ms_bce.patch() ran
        loss = nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=Tensor(pos_weight))
    else:
        loss = ms_bce.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=Tensor(pos_weight))
    step = nn.TrainOneStepCell(WithLoss(net, loss, denominator),
                               nn.SGD(net.trainable_params(), learning_rate=LEARNING_RATE))
    step.set_train()
    xs, ys = Tensor(x), Tensor(y)
    losses = [float(step(xs, ys).asnumpy()) for _ in range(steps)]
    return net, losses, loss


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for rank_<r>.npz (or single.npz with --single)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--single", action="store_true",
                        help="one process on the whole batch (the reference), without msrun")
    parser.add_argument("--loss", choices=("ms_bce", "builtin"), default="ms_bce",
                        help="write the loss as ms_bce.nn.BCEWithLogitsLoss or as mindspore.nn.BCEWithLogitsLoss")
    parser.add_argument("--patch", action="store_true", help="call ms_bce.patch() first")
    parser.add_argument("--uneven", action="store_true",
                        help="shards of different sizes, with 'sum' over the whole batch's element count and "
                             "summed gradients")
    parser.add_argument("--naive", action="store_true",
                        help="with --uneven: per-rank 'mean' and gradients_mean=True instead (not the whole "
                             "batch's gradient)")
    args = parser.parse_args(argv)
    if args.naive and not args.uneven:
        parser.error("--naive goes with --uneven")
    if args.patch:
        ms_bce.patch()

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    x, y = whole_batch(args.seed)
    pos_weight = pos_weight_of(y)  # from the whole batch, so every worker uses the same one
    reduction, denominator = "mean", 1.0
    if args.single:
        name = "single"
    else:
        from mindspore.communication import get_group_size, get_rank, init
        init()
        rank, size = get_rank(), get_group_size()
        start, stop = shard(rank, size, args.uneven)
        x, y = x[start:stop], y[start:stop]
        name = f"rank_{rank}"
        if args.uneven and not args.naive:
            # Each rank's share of the whole batch's mean: summed over ranks, the
            # losses and their gradients are the whole batch's mean and its gradient.
            reduction, denominator = "sum", float(N_EXAMPLES * N_CLASSES)
            gradients_mean = False
        else:
            # Equal shards: the mean of the ranks' means is the whole batch's mean
            # (with --naive, on unequal shards, it is not).
            gradients_mean = True
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=gradients_mean)

    net, losses, loss = train(x, y, pos_weight, args.steps, args.seed, args.loss, reduction, denominator)
    os.makedirs(args.out, exist_ok=True)
    params = {p.name: p.asnumpy() for p in net.trainable_params()}
    loss_class = f"{type(loss).__module__}.{type(loss).__name__}"
    np.savez(os.path.join(args.out, name + ".npz"), losses=np.array(losses), loss_class=np.array(loss_class),
             examples=np.array(len(x)), **params)
    # equal digests on every rank: the ranks' parameters are bit-identical
    digest = hashlib.sha256(b"".join(params[k].tobytes() for k in sorted(params))).hexdigest()[:16]
    print(f"[{name}] {len(x)} examples, loss cell {loss_class}, losses {' '.join(f'{v:.5f}' for v in losses)}; "
          f"parameters sha256 "
          f"{digest}; saved {os.path.join(args.out, name + '.npz')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
