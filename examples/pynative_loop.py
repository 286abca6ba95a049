"""A PyNative training loop with mindspore.value_and_grad and
ms_bce.mint.nn.functional.binary_cross_entropy_with_logits.

    python examples/pynative_loop.py [--steps 200] [--loss ms_bce|builtin]

`--loss builtin` runs the same loop with MindSpore's
mindspore.mint.nn.functional.binary_cross_entropy_with_logits, for comparison:
the losses agree to float32 rounding.
"""
import argparse

import mindspore as ms
import numpy as np
from mindspore import Tensor, mint, nn

import ms_bce

N_FEATURES, N_HIDDEN, N_LABELS = 12, 32, 4


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    teacher = rng.normal(size=(N_FEATURES, N_LABELS)) / np.sqrt(N_FEATURES)
    bias = np.array([-2.0, -1.0, 0.0, 0.5])  # rare to common labels
    y = (x @ teacher * 2.0 + bias + 0.3 * rng.normal(size=(n, N_LABELS)) > 0).astype(np.float32)
    return x, y


def make_net(seed):
    rng = np.random.default_rng(seed)

    def dense(n_in, n_out):
        return nn.Dense(n_in, n_out, bias_init="zeros", weight_init=Tensor(
            rng.normal(0, n_in ** -0.5, (n_out, n_in)).astype(np.float32)))
    return nn.SequentialCell(dense(N_FEATURES, N_HIDDEN), nn.ReLU(), dense(N_HIDDEN, N_LABELS))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss", choices=("ms_bce", "builtin"), default="ms_bce")
    args = parser.parse_args(argv)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    bce = (ms_bce.mint.nn.functional.binary_cross_entropy_with_logits if args.loss == "ms_bce"
           else mint.nn.functional.binary_cross_entropy_with_logits)

    x, y = make_data(args.batch * 16, args.seed)
    pos_weight = Tensor(((len(y) - y.sum(0)) / np.maximum(y.sum(0), 1)).astype(np.float32))
    net = make_net(args.seed)
    optimizer = nn.Adam(net.trainable_params(), learning_rate=1e-2)

    def forward(xb, yb):
        return bce(net(xb), yb, None, 'mean', pos_weight)

    grad_fn = ms.value_and_grad(forward, None, optimizer.parameters)
    losses = []
    report_every = max(args.steps // 5, 1)
    for step in range(args.steps):
        lo = (step * args.batch) % len(x)
        loss, grads = grad_fn(Tensor(x[lo:lo + args.batch]), Tensor(y[lo:lo + args.batch]))
        optimizer(grads)
        losses.append(float(loss.asnumpy()))
        if (step + 1) % report_every == 0:
            print(f"[{args.loss}] step {step + 1}/{args.steps}  "
                  f"mean loss of the last {report_every} steps {np.mean(losses[-report_every:]):.4f}")
    return np.array(losses)


if __name__ == "__main__":
    main()
