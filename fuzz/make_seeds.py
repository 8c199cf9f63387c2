#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/seeds/{idx,checkpoint} (each < 10 KB).

Generated valid IDX files (3 images, 3 labels, a 2x3x4 file), their gzip forms, a gzip with
every optional header field, and prefixes of the real MNIST test files: a truncated images
header and the first bytes of the gzip streams. The real files come from $MNIST_DIR (default
../shared/data/mnist relative to the repository root); they are only read. Deterministic:
running it again gives the same bytes.

Checkpoints are small safetensors files as the engine writes them (F32 weights [in, out], a
U32 counter, sorted metadata), written here by hand: 8-byte little-endian header length, the
JSON header padded with spaces to a multiple of 8, the data.
"""
import json
import gzip
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "seeds", "idx")
CHECKPOINT_OUT = os.path.join(HERE, "seeds", "checkpoint")
MNIST = os.environ.get("MNIST_DIR") or os.path.join(HERE, "..", "..", "shared", "data", "mnist")


def images(count, rows, cols):
    pixels = bytes((i * 37 + i // 7) % 256 for i in range(count * rows * cols))
    return struct.pack(">IIII", 0x803, count, rows, cols) + pixels


def labels(values):
    return struct.pack(">II", 0x801, len(values)) + bytes(values)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def gz_all_fields(data):
    """gzip with FEXTRA, FNAME, FCOMMENT and FHCRC set."""
    flags = 0x04 | 0x08 | 0x10 | 0x02
    header = b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\x02\x03"
    header += struct.pack("<H", 4) + b"AB\x00\x00" + b"labels\0" + b"a comment\0"
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflate.compress(data) + deflate.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data))


def safetensors(tensors, metadata):
    """tensors: (name, dtype, shape, data bytes), in name order."""
    header, offset, data = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = dict(sorted(metadata.items()))
    for name, dtype, shape, raw in sorted(tensors):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32s(values):
    return struct.pack(f"<{len(values)}f", *values)


def checkpoints():
    mlp = [
        ("layers.0.weight", "F32", [4, 3], f32s([i / 8 - 0.7 for i in range(12)])),
        ("layers.0.bias", "F32", [3], f32s([0.5, -0.25, 0.0])),
        ("layers.1.weight", "F32", [3, 2], f32s([1e-30, -3e30, 2.5, 1.0, -1.0, 0.125])),
        ("layers.1.bias", "F32", [2], f32s([0.0, 1.0])),
    ]
    state = [
        ("trainer.step", "U32", [1], struct.pack("<I", 937)),
        ("trainer.adam.m.layers.0.bias", "F32", [3], f32s([0.01, 0.02, -0.03])),
    ]
    return {
        "mlp.safetensors": safetensors(mlp, {"layout": "weights [in, out]", "epoch": "3"}),
        "mlp-with-state.safetensors": safetensors(mlp + state, {"layout": "weights [in, out]"}),
        "no-metadata.safetensors": safetensors(mlp[:2], None),
        "empty.safetensors": safetensors([], {}),
        "scalar-and-empty.safetensors": safetensors(
            [("a", "F32", [], f32s([2.0])), ("b", "U32", [0, 5], b"")], {"k": "v"}
        ),
        "f16.safetensors": safetensors([("half", "F16", [2], b"\x00\x3c\x00\xc0")], None),
        "nan.safetensors": safetensors([("w", "F32", [2], f32s([1.0, float("nan")]))], None),
    }


def main():
    os.makedirs(CHECKPOINT_OUT, exist_ok=True)
    for name, data in checkpoints().items():
        assert len(data) < 10_000, name
        with open(os.path.join(CHECKPOINT_OUT, name), "wb") as f:
            f.write(data)
        print(f"{len(data):6} checkpoint/{name}")
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "images-3x28x28.idx": images(3, 28, 28),
        "images-3x28x28.idx.gz": gz(images(3, 28, 28)),
        "images-2x3x4.idx": images(2, 3, 4),
        "labels-3.idx": labels([7, 2, 1]),
        "labels-3.idx.gz": gz(labels([7, 2, 1])),
        "labels-3-all-header-fields.gz": gz_all_fields(labels([7, 2, 1])),
        "labels-6-wide.idx": labels([0, 9, 10, 200, 254, 3]),
    }
    for name, prefix, stored in [
        ("t10k-images-idx3-ubyte.gz", "t10k-images-header-truncated.idx", 12),
        ("t10k-images-idx3-ubyte.gz", "t10k-images-head.gz", -2048),
        ("t10k-labels-idx1-ubyte.gz", "t10k-labels-head.gz", -512),
    ]:
        path = os.path.join(MNIST, name)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: set MNIST_DIR to a directory with the MNIST .gz files")
        with open(path, "rb") as f:
            data = f.read()
        # Positive: that many bytes of the decompressed file; negative: of the stored one.
        seeds[prefix] = gzip.decompress(data)[:stored] if stored > 0 else data[:-stored]
    for name, data in seeds.items():
        assert len(data) < 10_000, name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{len(data):6} {name}")


if __name__ == "__main__":
    main()
