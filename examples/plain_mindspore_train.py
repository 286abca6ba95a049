"""An ordinary MindSpore training script: it knows nothing of ms_bce.

It trains a small multi-label classifier with MindSpore's own loss names only
(nn.BCEWithLogitsLoss with pos_weight, ops.binary_cross_entropy_with_logits
with a per-class weight, nn.BCELoss, ops.BCEWithLogitsLoss and
mint.nn.functional.binary_cross_entropy_with_logits).  Run it as it is, then
switched to ms_bce's kernels without editing it:

    python examples/plain_mindspore_train.py [--mode graph|pynative] [--steps N]
    python -m ms_bce.run examples/plain_mindspore_train.py [--mode graph|pynative] [--steps N]

(the second is the same as adding ``import ms_bce; ms_bce.patch()`` at its top).
"""
import argparse

import mindspore as ms
import numpy as np
from mindspore import mint, nn, ops

N_FEATURES, N_HIDDEN, N_CLASSES = 16, 32, 5


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    teacher = rng.normal(size=(N_FEATURES, N_CLASSES)) / np.sqrt(N_FEATURES)
    bias = np.linspace(-1.5, 0.5, N_CLASSES)  # rare and common labels
    y = (x @ teacher * 2.0 + bias + 0.3 * rng.normal(size=(n, N_CLASSES)) > 0).astype(np.float32)
    return x, y


class Net(nn.Cell):
    def __init__(self, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.fc1 = nn.Dense(N_FEATURES, N_HIDDEN, bias_init="zeros", weight_init=ms.Tensor(
            rng.normal(0, N_FEATURES ** -0.5, (N_HIDDEN, N_FEATURES)).astype(np.float32)))
        self.fc2 = nn.Dense(N_HIDDEN, N_CLASSES, bias_init="zeros", weight_init=ms.Tensor(
            rng.normal(0, N_HIDDEN ** -0.5, (N_CLASSES, N_HIDDEN)).astype(np.float32)))
        self.relu = nn.ReLU()

    def construct(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def class_weighted_bce(logits, labels, class_weight):
    """A per-class weighted term, through the functional API."""
    return ops.binary_cross_entropy_with_logits(logits, labels, class_weight, None, 'mean')


class NetWithLoss(nn.Cell):
    def __init__(self, net, pos_weight, class_weight):
        super().__init__()
        self.net = net
        self.bce_logits = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.bce_probs = nn.BCELoss(reduction='mean')
        self.class_weight = class_weight

    def construct(self, x, y):
        logits = self.net(x)
        loss = self.bce_logits(logits, y)
        loss = loss + 0.5 * class_weighted_bce(logits, y, self.class_weight)
        return loss + 0.1 * self.bce_probs(ops.sigmoid(logits), y)


def evaluate(net, x, y):
    """Held-out losses through the primitive and the mint functional."""
    logits = net(x)
    summed = ops.BCEWithLogitsLoss(reduction='sum')(logits, y, None, None)
    mean = mint.nn.functional.binary_cross_entropy_with_logits(logits, y)
    return float(summed.asnumpy()), float(mean.asnumpy())


def train(mode, steps, batch, seed):
    """Trains for `steps` steps; returns the per-step losses, the held-out losses and the net."""
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    x, y = make_data(batch * 4 + 256, seed)
    (x, y), (xt, yt) = (x[:-256], y[:-256]), (x[-256:], y[-256:])
    pos_weight = ms.Tensor(((len(y) - y.sum(0)) / np.maximum(y.sum(0), 1)).astype(np.float32))
    class_weight = ms.Tensor(np.linspace(0.5, 1.5, N_CLASSES).astype(np.float32))
    net = Net(seed)
    net_with_loss = NetWithLoss(net, pos_weight, class_weight)
    step = nn.TrainOneStepCell(net_with_loss, nn.Adam(net.trainable_params(), learning_rate=1e-2))
    step.set_train()
    losses = []
    for i in range(steps):
        lo = (i * batch) % len(x)
        losses.append(float(step(ms.Tensor(x[lo:lo + batch]), ms.Tensor(y[lo:lo + batch])).asnumpy()))
    return np.array(losses), evaluate(net, ms.Tensor(xt), ms.Tensor(yt)), net_with_loss


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="multi-label training with MindSpore's loss names")
    parser.add_argument("--mode", choices=("graph", "pynative"), default="graph")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    losses, held_out, net_with_loss = train(args.mode, args.steps, args.batch, args.seed)
    loss_class = type(net_with_loss.bce_logits)
    print(f"{args.mode} mode, {args.steps} steps, loss cell {loss_class.__module__}.{loss_class.__name__}")
    print(f"training loss {losses[0]:.5f} -> {losses[-1]:.5f}; held-out sum {held_out[0]:.4f}, "
          f"mean {held_out[1]:.5f}")
