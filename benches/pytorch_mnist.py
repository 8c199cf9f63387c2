#!/usr/bin/env python3
"""The `mnist` example's runs trained by PyTorch on the CPU: the baselines beside the README's results.

`--model cnn` (the default) is `cargo run --release --example mnist -- --preset cnn`, trained the
same way: LeNet-5's shape (conv 8@5x5 pad 2, ReLU, 2x2 max pool, conv 16@5x5, ReLU, 2x2 max pool,
400-120-84-10 with ReLU), PyTorch's default initialisation, the official MNIST files normalised
with mean 0.5 / std 0.5, batches of 64 reshuffled every epoch, AdamW (lr 0.002, weight decay
0.01, PyTorch's betas and eps), the engine's one-cycle schedule evaluated per step (a cosine
warm-up from lr/25 over the first 30 % of steps, then a cosine down to lr/(25*10^4)), 8 epochs.
`--model lecture` is the lecture's run, the example's defaults: 784-128-10 with ReLU, plain SGD
at lr 0.001, 10 epochs, the same data and batches. Batches are sliced from tensors in memory (no
DataLoader), so the time is the training itself.

    python3 benches/pytorch_mnist.py [--model cnn|lecture] [--epochs N] [--threads N] [--mnist-dir DIR]
    python3 benches/pytorch_mnist.py --model cnn --evaluate runs/mnist/model_torch_sequential.safetensors

`--evaluate FILE` trains nothing: it loads a state_dict the engine exported into the same
PyTorch model (`load_state_dict(strict=True)`) and prints its test accuracy.

Needs `torch` and `numpy` (pip). MNIST is read from --mnist-dir, else $MNIST_DIR, else
data/mnist: the four `*-ubyte.gz` files the `mnist` example downloads.
"""

import argparse
import gzip
import math
import os
import time

try:
    import numpy as np
    import torch
    from torch import nn
except ImportError as missing:
    raise SystemExit(f"{missing}: this baseline needs PyTorch and numpy (pip install torch numpy)")


def read_idx(path):
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise SystemExit(f"{path}: {error}; point --mnist-dir or MNIST_DIR at the four "
                         "*-ubyte.gz files (the mnist example downloads them to data/mnist)")
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(directory, split):
    images = read_idx(os.path.join(directory, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(directory, f"{split}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).sub_(0.5).div_(0.5).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def lecture():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum().item()
            for i in range(0, len(x), 1000)
        )
    return correct / len(x)


def one_cycle(base, step, total):
    """src/nn/schedule.rs's `Schedule::OneCycle`, step by step."""
    def cosine(start, end, t):
        return end + (start - end) * (1.0 + math.cos(math.pi * t)) / 2.0

    warmup = int(total * 0.3)
    if step < warmup:
        return cosine(base / 25.0, base, step / warmup)
    span = total - 1 - warmup
    t = 1.0 if span <= 0 else min(max(step - warmup, 0) / span, 1.0)
    return cosine(base, base / 25.0 / 1e4, t)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["cnn", "lecture"], default="cnn")
    parser.add_argument("--epochs", type=int, help="default: 8 (cnn), 10 (lecture)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="0: PyTorch's default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mnist-dir", default=os.environ.get("MNIST_DIR", "data/mnist"))
    parser.add_argument("--evaluate", metavar="FILE", help="a state_dict to evaluate, not train")
    args = parser.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_x, train_y = load(args.mnist_dir, "train")
    test_x, test_y = load(args.mnist_dir, "t10k")
    if args.model == "cnn":
        model, epochs, base_lr = lenet(), args.epochs or 8, 0.002
        optimiser = torch.optim.AdamW(model.parameters(), lr=base_lr, weight_decay=0.01)
        schedule = one_cycle
    else:
        model, epochs, base_lr = lecture(), args.epochs or 10, 0.001
        optimiser = torch.optim.SGD(model.parameters(), lr=base_lr)
        schedule = lambda base, step, total: base
    loss_fn = nn.CrossEntropyLoss()
    if args.evaluate:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(args.evaluate), strict=True)
        print(f"{args.evaluate}: test accuracy {accuracy(model, test_x, test_y):.4f}")
        return
    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    total = steps_per_epoch * epochs
    print(f"{args.model}: PyTorch {torch.__version__} on the CPU, {torch.get_num_threads()} threads, "
          f"{sum(p.numel() for p in model.parameters())} parameters, {steps_per_epoch} steps/epoch")

    step, started = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train_x))
        loss_sum, epoch_start = 0.0, time.perf_counter()
        for first in range(0, len(train_x), args.batch_size):
            rows = order[first : first + args.batch_size]
            for group in optimiser.param_groups:
                group["lr"] = schedule(base_lr, step, total)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(train_x[rows]), train_y[rows])
            loss.backward()
            optimiser.step()
            loss_sum += loss.item() * len(rows)
            step += 1
        seconds = time.perf_counter() - epoch_start
        print(f"epoch {epoch}: train loss {loss_sum / len(train_x):.4f}, "
              f"test accuracy {accuracy(model, test_x, test_y):.4f}, {seconds:.1f} s "
              f"({seconds / steps_per_epoch * 1e3:.2f} ms/step), "
              f"{time.perf_counter() - started:.0f} s since the start")


if __name__ == "__main__":
    main()
