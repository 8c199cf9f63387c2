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

  forward_sequential MODEL LAYERS SHAPE INPUTS [swap_kernel_axes]
      the same for an nn.Sequential of convolutional, pooling, dropout, flatten, ReLU and
      Linear layers, LAYERS as the engine describes them (conv(8,5,pad=2)-relu-maxpool(2)-
      flatten-linear(10)), SHAPE one example's (1,28,28); module i is layer i, as in PyTorch.
      Prints {"logits": [...], "bounds": [...]}: the float64 forward pass and, per logit, a
      bound on a float32 evaluation's error, carried through the layers (module doc of
      tests/torch_interop.rs). swap_kernel_axes first reads the first convolution's weight
      as a layout mistake would (height and width swapped), for the test to show it is caught.

WIDTHS is comma-separated (784,128,10); INPUTS raw little-endian float32 rows of WIDTHS[0]
values, already normalised; LABELS raw bytes.
"""

import json
import re
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
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


U = 2.0 ** -24  # float32's unit roundoff


def gamma(n):
    return n * U / (1.0 - n * U)


def pair(text):
    a, _, b = text.partition("x")
    return (int(a), int(b or a))


def parse_layers(text):
    """The engine's description, split at the dashes outside parentheses."""
    layers = []
    for item in re.findall(r"[a-z0-9]+(?:\([^)]*\))?", text):
        name, _, args = item.partition("(")
        positional, named = [], {}
        for arg in filter(None, args.rstrip(")").split(",")):
            key, eq, value = arg.partition("=")
            if eq:
                named[key] = value
            else:
                positional.append(key)
        layers.append((name, positional, named))
    return layers


def windows(h, kernel, stride, padding):
    """[N, C, OH, OW, kh, kw] views of h's zero-padded windows."""
    (ph, pw), (sh, sw) = padding, stride
    padded = np.pad(h, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    return sliding_window_view(padded, kernel, axis=(2, 3))[:, :, ::sh, ::sw]


def forward_sequential(tensors, layers, x):
    """PyTorch's forward pass in float64, and each output's error bound: an affine layer's
    float32 result is within gamma(k + 2) * (|W|.|h| + |b|) of its exact value on its inputs,
    plus |W| times the inputs' own errors; ReLU, max pooling (in its window) and flatten carry
    errors through unchanged in size, average pooling averages them, and dropout is the identity
    in evaluation. Every tensor is used once; what was not is reported, as strict loading does."""
    h, err, used = x, np.zeros_like(x), set()

    def parameter(i, name, shape):
        key = f"{i}.{name}"
        if key not in tensors:
            sys.exit(f"missing key {key}")
        if tuple(tensors[key].shape) != shape or tensors[key].dtype != np.float32:
            sys.exit(f"{key} is {tensors[key].dtype} {tensors[key].shape}, the module's is {shape}")
        used.add(key)
        return tensors[key].astype(np.float64)

    for i, (name, positional, named) in enumerate(layers):
        if name == "conv":
            out, kernel = int(positional[0]), pair(positional[1])
            stride, padding = pair(named.get("stride", "1")), pair(named.get("pad", "0"))
            w = parameter(i, "weight", (out, h.shape[1]) + kernel)
            b = parameter(i, "bias", (out,))
            patches = windows(h, kernel, stride, padding)
            k = h.shape[1] * kernel[0] * kernel[1]
            magnitude = np.einsum("nchwij,ocij->nohw", np.abs(patches), np.abs(w))
            carried = np.einsum("nchwij,ocij->nohw", windows(err, kernel, stride, padding), np.abs(w))
            h = np.einsum("nchwij,ocij->nohw", patches, w) + b[None, :, None, None]
            err = gamma(k + 2) * (magnitude + np.abs(b)[None, :, None, None]) + carried
        elif name in ("maxpool", "avgpool"):
            kernel = pair(positional[0])
            stride = pair(named.get("stride", positional[0]))
            padding = pair(named.get("pad", "0"))
            if name == "maxpool":
                if padding != (0, 0):
                    sys.exit("max pooling with padding is not modelled here")
                h = windows(h, kernel, stride, padding).max(axis=(4, 5))
                err = windows(err, kernel, stride, padding).max(axis=(4, 5))
            else:
                count = kernel[0] * kernel[1]
                magnitude = windows(np.abs(h), kernel, stride, padding).sum(axis=(4, 5)) / count
                h = windows(h, kernel, stride, padding).sum(axis=(4, 5)) / count
                err = windows(err, kernel, stride, padding).sum(axis=(4, 5)) / count \
                    + gamma(count + 1) * magnitude
        elif name == "relu":
            h = np.maximum(h, 0.0)
        elif name == "dropout":
            pass
        elif name == "flatten":
            h, err = h.reshape(len(h), -1), err.reshape(len(err), -1)
        elif name == "linear":
            out = int(positional[0])
            w = parameter(i, "weight", (out, h.shape[1]))
            b = parameter(i, "bias", (out,))
            magnitude = np.abs(h) @ np.abs(w).T + np.abs(b)
            carried = err @ np.abs(w).T
            h = h @ w.T + b
            err = gamma(w.shape[1] + 2) * magnitude + carried
        else:
            sys.exit(f"layer {i}: {name} is not modelled here")
    unexpected = sorted(set(tensors) - used)
    if unexpected:
        sys.exit(f"unexpected keys {unexpected}")
    return h, err


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
    elif command == "forward_sequential":
        model, layers, shape, inputs = argv[2:6]
        shape = tuple(int(d) for d in shape.split(","))
        x = read_inputs(inputs, int(np.prod(shape))).reshape((-1,) + shape)
        tensors = load_file(model)
        if argv[6:] == ["swap_kernel_axes"]:
            # The layout mistake the test must catch: the first convolution's kernel read
            # with its height and width swapped in memory.
            o, c, kh, kw = tensors["0.weight"].shape
            tensors["0.weight"] = tensors["0.weight"].reshape(o, c, kw, kh).transpose(0, 1, 3, 2).copy()
        logits, bounds = forward_sequential(tensors, parse_layers(layers), x)
        print(json.dumps({"logits": logits.tolist(), "bounds": bounds.tolist()}))
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
