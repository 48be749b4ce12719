"""Torch reference timing for the Curia slice preprocessing (resize + z-score), 2 threads.

Usage: python3 torch_preprocess_bench.py <slices.f32> <n> <h> <w> <out.f32> <reps>
Reads n float32 slices (h x w), times per-slice F.interpolate(bicubic, antialias) + z-score,
writes the first processed slice to <out.f32> and prints one JSON line.
"""
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def preprocess(x: torch.Tensor) -> torch.Tensor:
    y = F.interpolate(x, size=(512, 512), mode="bicubic", align_corners=False, antialias=True)
    mean = y.mean(dim=(-2, -1), keepdim=True)
    std = y.std(dim=(-2, -1), keepdim=True)
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
    return (y - mean) / std


def main() -> None:
    path, n, h, w, out, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    torch.set_num_threads(2)
    x = torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(n, 1, h, w))
    with torch.no_grad():
        preprocess(x[0:1]).numpy().astype(np.float32).tofile(out)
        t0 = time.perf_counter()
        for _ in range(reps):
            for i in range(n):
                preprocess(x[i : i + 1])
        per_slice = n * reps / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(reps):
            for i in range(0, n, 16):
                preprocess(x[i : i + 16])
        batched = n * reps / (time.perf_counter() - t0)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "per_slice": per_slice, "batched16": batched}))


if __name__ == "__main__":
    main()
