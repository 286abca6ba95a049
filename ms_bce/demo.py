"""The main job: train a small multi-label classifier in graph mode with
ms_bce's BCEWithLogitsLoss, then the same with MindSpore's built-in, and show
the two side by side.

    python -m ms_bce.demo [--epochs N] [--seed S] [--mode graph|pynative]
"""
import argparse
import time

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

import ms_bce

N_FEATURES, N_CLASSES, N_HIDDEN = 32, 8, 64


def make_data(seed, n_train=4096, n_test=1024):
    """Multi-label data from a random two-layer teacher; rare and common classes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_train + n_test, N_FEATURES)).astype(np.float32)
    w1 = rng.normal(size=(N_FEATURES, 48)) / np.sqrt(N_FEATURES)
    w2 = rng.normal(size=(48, N_CLASSES)) / np.sqrt(48)
    bias = np.linspace(-2.5, 0.5, N_CLASSES)  # class frequencies from ~5% to ~60%
    logits = np.tanh(x @ w1) @ w2 * 3.0 + bias
    y = (logits + 0.3 * rng.normal(size=logits.shape) > 0).astype(np.float32)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


class Classifier(nn.Cell):
    """A two-layer multi-label classifier whose initial weights depend on `seed`
    only (biases zero: MindSpore's default bias is random)."""

    def __init__(self, seed, n_features=N_FEATURES, n_classes=N_CLASSES, n_hidden=N_HIDDEN):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.hidden = nn.Dense(n_features, n_hidden, bias_init="zeros", weight_init=Tensor(
            rng.normal(0, 1 / np.sqrt(n_features), (n_hidden, n_features)).astype(np.float32)))
        self.out = nn.Dense(n_hidden, n_classes, bias_init="zeros", weight_init=Tensor(
            rng.normal(0, 1 / np.sqrt(n_hidden), (n_classes, n_hidden)).astype(np.float32)))
        self.act = nn.ReLU()

    def construct(self, x):
        return self.out(self.act(self.hidden(x)))


class WithLoss(nn.Cell):
    """net followed by loss(logits, labels)."""

    def __init__(self, net, loss):
        super().__init__()
        self.net = net
        self.loss = loss

    def construct(self, x, y):
        return self.loss(self.net(x), y)


def metrics(net, loss, x, y):
    """(loss, per-label accuracy, macro recall) on a data set."""
    logits = net(Tensor(x))
    value = float(loss(logits, Tensor(y)).asnumpy())
    pred = logits.asnumpy() > 0
    accuracy = float(np.mean(pred == (y > 0.5)))
    recall = float(np.mean([(pred[:, c] & (y[:, c] > 0.5)).sum() / max((y[:, c] > 0.5).sum(), 1)
                            for c in range(N_CLASSES)]))
    return value, accuracy, recall


def train(name, loss, data, epochs, seed, batch=256, log=print):
    """Trains a fresh classifier with `loss`; returns per-step losses and results."""
    (x, y), (xt, yt) = data
    net = Classifier(seed)
    step = nn.TrainOneStepCell(WithLoss(net, loss), nn.Adam(net.trainable_params(), learning_rate=3e-3))
    step.set_train()
    order = np.random.default_rng(seed + 1)
    batches = [order.permutation(len(x)) for _ in range(epochs)]
    losses, step_seconds = [], []
    for epoch in range(epochs):
        epoch_losses = []
        for i in range(0, len(x), batch):
            idx = batches[epoch][i:i + batch]
            xb, yb = Tensor(x[idx]), Tensor(y[idx])
            start = time.perf_counter()
            epoch_losses.append(float(step(xb, yb).asnumpy()))
            step_seconds.append(time.perf_counter() - start)
        losses.extend(epoch_losses)
        test_loss, acc, rec = metrics(net, loss, xt, yt)
        log(f"  [{name:>8}] epoch {epoch + 1:2d}/{epochs}  train loss {np.mean(epoch_losses):.4f}  "
            f"test loss {test_loss:.4f}  label accuracy {acc:.3f}  macro recall {rec:.3f}")
    # the first step includes compiling the graph
    return np.array(losses), metrics(net, loss, xt, yt), (step_seconds[0], float(np.median(step_seconds[1:])))


def pos_weight_gradient(pos_weight, data):
    """d(loss)/d(pos_weight) on the test set for ms_bce and the built-in."""
    (_, _), (xt, yt) = data
    logits = Tensor(np.random.default_rng(0).normal(size=yt.shape).astype(np.float32))
    target = Tensor(yt)

    def ours(p):
        return ms_bce.ops.binary_cross_entropy_with_logits(logits, target, None, p)

    def builtin(p):
        return ms.ops.binary_cross_entropy_with_logits(logits, target, None, p)
    return ms.grad(ours)(pos_weight).asnumpy(), ms.grad(builtin)(pos_weight).asnumpy()


def _rounded(values, digits):
    return [round(float(v), digits) for v in values]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=("graph", "pynative"), default="graph")
    args = parser.parse_args(argv)
    ms.set_context(mode=ms.GRAPH_MODE if args.mode == "graph" else ms.PYNATIVE_MODE)

    data = make_data(args.seed)
    y = data[0][1]
    # pos_weight: negatives per positive in each class, the usual choice for imbalance
    pos_weight = Tensor(((len(y) - y.sum(0)) / np.maximum(y.sum(0), 1)).astype(np.float32))
    print(f"ms_bce {ms_bce.__version__} demo: {len(y)} examples, {N_FEATURES} features, {N_CLASSES} labels "
          f"(positives per label {_rounded(y.mean(0), 2)}), {args.mode} mode, {args.epochs} epochs")
    print(f"pos_weight = {_rounded(pos_weight.asnumpy(), 2)}")

    print("\ntraining with ms_bce.nn.BCEWithLogitsLoss")
    ours = train("ms_bce", ms_bce.nn.BCEWithLogitsLoss(pos_weight=pos_weight), data, args.epochs, args.seed)
    print("training with mindspore.nn.BCEWithLogitsLoss (built-in)")
    theirs = train("built-in", nn.BCEWithLogitsLoss(pos_weight=pos_weight), data, args.epochs, args.seed)

    (l_ours, (t_ours, a_ours, r_ours), s_ours), (l_theirs, (t_theirs, a_theirs, r_theirs), s_theirs) = ours, theirs
    print("\n                         ms_bce      built-in")
    print(f"first step loss      {l_ours[0]:10.5f}    {l_theirs[0]:10.5f}")
    print(f"final step loss      {l_ours[-1]:10.5f}    {l_theirs[-1]:10.5f}")
    print(f"test loss            {t_ours:10.5f}    {t_theirs:10.5f}")
    print(f"label accuracy       {a_ours:10.4f}    {a_theirs:10.4f}")
    print(f"macro recall         {r_ours:10.4f}    {r_theirs:10.4f}")
    print(f"first step (ms)      {1e3 * s_ours[0]:10.1f}    {1e3 * s_theirs[0]:10.1f}   (graph compile included)")
    print(f"later steps (ms)     {1e3 * s_ours[1]:10.2f}    {1e3 * s_theirs[1]:10.2f}   (median, whole training step)")
    rel = np.max(np.abs(l_ours - l_theirs) / np.abs(l_theirs))
    print(f"largest relative difference between the two loss trajectories over {len(l_ours)} steps: {rel:.2e}")
    g_ours, g_theirs = pos_weight_gradient(pos_weight, data)
    print(f"d loss / d pos_weight   ms_bce:   {_rounded(g_ours, 5)}")
    print(f"                        built-in: {_rounded(g_theirs, 5)}")
    ok = rel < 1e-3 and l_ours[-1] < l_ours[0]
    print(f"\nresult: the loss went from {l_ours[0]:.4f} to {l_ours[-1]:.4f} "
          f"({1 - l_ours[-1] / l_ours[0]:.0%} lower); " +
          ("ms_bce and the built-in agree." if ok else "UNEXPECTED: the trajectories differ or the loss did not fall."))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
