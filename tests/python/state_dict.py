"""PyTorch's side of tests/torch_interop.rs, with numpy and safetensors only (no PyTorch).

It reads a state_dict the engine exported the way `torch.nn.Module.load_state_dict(strict=True)`
would check it -- exactly the names and shapes the lecture's `Net` (fc1, fc2, ...) or an
`nn.Sequential(Linear, ReLU, Linear, ...)` of the given widths has, weights [out, in] -- and
computes the forward pass PyTorch computes, x @ W.T + b with ReLU between the layers, in
float64. Or it writes a state_dict from Python for the engine to read.

  forward MODEL NAMING WIDTHS INPUTS        prints {"logits": [[...], ...]} as JSON
  rewrite MODEL OUT NAMING WIDTHS INPUTS LABELS
      reads MODEL (Net naming), scales it without changing its function (ReLU is positively
      homogeneous: W1, b1 times 2 and W2 times 0.5, ...), saves it to OUT under NAMING with
      safetensors.numpy.save_file, and prints {"correct": n, "margins": [...]}: its float64
      forward pass's correct count on the inputs and each row's gap between its two largest
      logits.

WIDTHS is comma-separated (784,128,10); INPUTS raw little-endian float32 rows of WIDTHS[0]
values, already normalised; LABELS raw bytes.
"""

import json
import sys

import numpy as np
from safetensors.numpy import load_file, save_file


def names(naming, layers):
    """PyTorch's state_dict keys of an MLP with `layers` Linear layers and ReLU between."""
    keys = []
    for i in range(layers):
        prefix = f"fc{i + 1}" if naming == "net" else f"{2 * i}"
        keys += [f"{prefix}.weight", f"{prefix}.bias"]
    return keys


def expected_shapes(naming, widths):
    shapes = {}
    for i, (inp, out) in enumerate(zip(widths, widths[1:])):
        prefix = f"fc{i + 1}" if naming == "net" else f"{2 * i}"
        shapes[f"{prefix}.weight"] = (out, inp)
        shapes[f"{prefix}.bias"] = (out,)
    return shapes


def load_strict(path, naming, widths):
    """The tensors of `path`, refused as load_state_dict(strict=True) would refuse them."""
    tensors = load_file(path)
    shapes = expected_shapes(naming, widths)
    missing = sorted(set(shapes) - set(tensors))
    unexpected = sorted(set(tensors) - set(shapes))
    if missing or unexpected:
        sys.exit(f"{path}: missing keys {missing}, unexpected keys {unexpected}")
    for key, shape in shapes.items():
        if tuple(tensors[key].shape) != shape:
            sys.exit(f"{path}: {key} is {tuple(tensors[key].shape)}, the module's is {shape}")
        if tensors[key].dtype != np.float32:
            sys.exit(f"{path}: {key} is {tensors[key].dtype}, not float32")
    return [
        (tensors[k_w].astype(np.float64), tensors[k_b].astype(np.float64))
        for k_w, k_b in zip(names(naming, len(widths) - 1)[::2], names(naming, len(widths) - 1)[1::2])
    ]


def forward(layers, x):
    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i + 1 < len(layers):
            h = np.maximum(h, 0.0)
    return h


def read_inputs(path, width):
    return np.fromfile(path, dtype="<f4").astype(np.float64).reshape(-1, width)


def main(argv):
    command = argv[1]
    if command == "forward":
        model, naming, widths, inputs = argv[2:6]
        widths = [int(w) for w in widths.split(",")]
        layers = load_strict(model, naming, widths)
        logits = forward(layers, read_inputs(inputs, widths[0]))
        print(json.dumps({"logits": logits.tolist()}))
    elif command == "rewrite":
        model, out, naming, widths, inputs, labels = argv[2:8]
        widths = [int(w) for w in widths.split(",")]
        layers = load_strict(model, "net", widths)
        scaled = []
        for i, (w, b) in enumerate(layers):
            factor = 2.0 if i == 0 else (0.5 if i == 1 else 1.0)
            scaled.append((w * factor, b * factor))
        tensors = {}
        for i, (w, b) in enumerate(scaled):
            prefix = f"fc{i + 1}" if naming == "net" else f"{2 * i}"
            tensors[f"{prefix}.weight"] = w.astype(np.float32)
            tensors[f"{prefix}.bias"] = b.astype(np.float32)
        save_file(tensors, out, metadata={"format": "pt"})
        # The function of what was saved (float32 values), in float64.
        saved = load_strict(out, naming, widths)
        logits = forward(saved, read_inputs(inputs, widths[0]))
        truth = np.fromfile(labels, dtype=np.uint8)[: len(logits)]
        top2 = np.sort(logits, axis=1)[:, -2:]
        print(json.dumps({
            "correct": int((logits.argmax(axis=1) == truth).sum()),
            "margins": (top2[:, 1] - top2[:, 0]).tolist(),
        }))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
