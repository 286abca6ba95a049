"""Multi-label classification trained in graph mode with TrainOneStepCell and
ms_bce.nn.BCEWithLogitsLoss (pos_weight for the rare labels).

    python examples/multilabel_graph.py [--epochs 5] [--samples 4096] [--loss ms_bce|builtin]

`--loss builtin` trains the same model with mindspore.nn.BCEWithLogitsLoss, for
comparison: the two runs give the same losses to float32 rounding.
"""
import argparse

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

import ms_bce

N_FEATURES, N_HIDDEN, N_LABELS = 24, 48, 6


def make_data(n, seed):
    """Inputs and 0/1 labels from a random teacher; label frequencies from ~5% to ~50%."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    teacher = rng.normal(size=(N_FEATURES, N_LABELS)) / np.sqrt(N_FEATURES)
    bias = np.linspace(-2.5, 0.0, N_LABELS)
    y = (x @ teacher * 3.0 + bias + 0.3 * rng.normal(size=(n, N_LABELS)) > 0).astype(np.float32)
    return x, y


class Classifier(nn.Cell):
    """Two dense layers; initial weights from `seed` only."""

    def __init__(self, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.hidden = nn.Dense(N_FEATURES, N_HIDDEN, bias_init="zeros", weight_init=Tensor(
            rng.normal(0, N_FEATURES ** -0.5, (N_HIDDEN, N_FEATURES)).astype(np.float32)))
        self.out = nn.Dense(N_HIDDEN, N_LABELS, bias_init="zeros", weight_init=Tensor(
            rng.normal(0, N_HIDDEN ** -0.5, (N_LABELS, N_HIDDEN)).astype(np.float32)))
        self.relu = nn.ReLU()

    def construct(self, x):
        return self.out(self.relu(self.hidden(x)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss", choices=("ms_bce", "builtin"), default="ms_bce")
    args = parser.parse_args(argv)
    ms.set_context(mode=ms.GRAPH_MODE)

    x, y = make_data(args.samples + 512, args.seed)
    (x, y), (x_test, y_test) = (x[:-512], y[:-512]), (x[-512:], y[-512:])
    # pos_weight: negatives per positive for each label, the usual choice for rare labels
    pos_weight = Tensor(((len(y) - y.sum(0)) / np.maximum(y.sum(0), 1)).astype(np.float32))
    loss_class = ms_bce.nn.BCEWithLogitsLoss if args.loss == "ms_bce" else nn.BCEWithLogitsLoss
    loss_fn = loss_class(pos_weight=pos_weight)

    net = Classifier(args.seed)
    train_step = nn.TrainOneStepCell(nn.WithLossCell(net, loss_fn),
                                     nn.Adam(net.trainable_params(), learning_rate=3e-3))
    train_step.set_train()
    order = np.random.default_rng(args.seed + 1)
    losses = []
    for epoch in range(args.epochs):
        perm = order.permutation(len(x))
        epoch_losses = [float(train_step(Tensor(x[idx]), Tensor(y[idx])).asnumpy())
                        for idx in (perm[i:i + args.batch] for i in range(0, len(x), args.batch))]
        losses.extend(epoch_losses)
        logits = net(Tensor(x_test)).asnumpy()
        recall = np.mean([((logits[:, c] > 0) & (y_test[:, c] > 0)).sum() / max((y_test[:, c] > 0).sum(), 1)
                          for c in range(N_LABELS)])
        print(f"[{args.loss}] epoch {epoch + 1}/{args.epochs}  train loss {np.mean(epoch_losses):.4f}  "
              f"label accuracy {np.mean((logits > 0) == (y_test > 0)):.3f}  macro recall {recall:.3f}")
    return np.array(losses)


if __name__ == "__main__":
    main()
