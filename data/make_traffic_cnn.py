"""Train the video demo's CNN on the traffic sequence and export it to ONNX.

What it does
------------
1. Reads the shipped static-camera traffic frames and their density labels
   (``traffic_frames.npy``, ``traffic_labels.npy``, made by ``make_traffic.py`` from the
   ``mvtb-data`` video: 350 gray frames of 24x32; per frame, the share of moving-vehicle pixels
   in each cell of a 4x4 grid over the road, from a background model of the video itself).
2. Trains a small CNN in PyTorch on alternate blocks of ``SPLIT_BLOCK`` frames (the same split
   as the MLP) to estimate the 16 densities from one frame scaled to [0, 1]::

       Conv2d(1, 8, 3, padding=1) - BatchNorm2d - ReLU - MaxPool2d(2)      8 x 12 x 16
       Conv2d(8, 16, 3, padding=1) - BatchNorm2d - ReLU - MaxPool2d(2)    16 x 6 x 8
       Flatten - Linear(768, 32) - ReLU - Linear(32, 16)

   The targets are standardised for training (the densities are small: mean 0.05) and the
   standardisation is folded into the last layer, so the exported network outputs densities.
   Reports the mean absolute error on the other blocks beside the error of always predicting
   the training mean.
3. Exports it with ``torch.onnx.export`` (the dynamo exporter, batch 1) to ``traffic_cnn.onnx``
   with its batch norms, which the importer folds into the convolutions.

Outputs (in the directory of this script)
-----------------------------------------
traffic_cnn.onnx    the trained CNN, input ``x`` of shape (1, 1, 24, 32), output (1, 16)
traffic_cnn.json    metadata: source, task, architecture, split, optimizer, errors

Run
---
PyTorch is not a dependency of the project; run this in an environment that has it::

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch onnx onnxscript numpy
    /tmp/torchenv/bin/python data/make_traffic_cnn.py

The script is seeded and deterministic on one machine (torch's CPU kernels, one thread).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

OUT_DIR = Path(__file__).resolve().parent
SEED = 1234
SPLIT_BLOCK = 25           # frames 0-24 train, 25-49 test, 50-74 train, ...
EPOCHS = 200
BATCH = 25
LR = 1e-3
WEIGHT_DECAY = 1e-2


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 6 * 8, 32), nn.ReLU(), nn.Linear(32, 16))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, EPOCHS)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), BATCH):
            batch = order[start:start + BATCH]
            loss = nn.functional.mse_loss(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss) * len(batch)
        schedule.step()
        if (epoch + 1) % 40 == 0:
            print(f"epoch {epoch + 1}: training loss {total / len(x):.5f}")


def main() -> int:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    frames = np.load(OUT_DIR / "traffic_frames.npy")
    labels = np.load(OUT_DIR / "traffic_labels.npy")
    x = torch.from_numpy(frames[:, None].astype(np.float32) / 255)
    y = torch.from_numpy(labels)
    is_train = torch.from_numpy((np.arange(len(x)) // SPLIT_BLOCK) % 2 == 0)
    model = make_model()
    mean, scale = y[is_train].mean(dim=0), y[is_train].std()
    train(model, x[is_train], (y[is_train] - mean) / scale)
    last = model[-1]
    with torch.no_grad():
        last.weight.mul_(scale)
        last.bias.mul_(scale).add_(mean)
    model.eval()
    with torch.no_grad():
        predicted = model(x).numpy()
    test = ~is_train.numpy()
    mae = float(np.mean(np.abs(predicted[test] - labels[test])))
    train_mae = float(np.mean(np.abs(predicted[~test] - labels[~test])))
    mean_predictor = float(np.mean(np.abs(labels[~test].mean(axis=0) - labels[test])))
    print(f"density MAE: train {train_mae:.4f}, test {mae:.4f} "
          f"(predicting the training mean: {mean_predictor:.4f})")

    path = OUT_DIR / "traffic_cnn.onnx"
    program = torch.onnx.export(model, (x[:1],), dynamo=True, input_names=["x"],
                                output_names=["density"])
    program.save(str(path), external_data=False)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    (OUT_DIR / "traffic_cnn.json").write_text(json.dumps({
        "source": "traffic_frames.npy and traffic_labels.npy (see traffic.json)",
        "task": "traffic density: share of moving-vehicle pixels in each cell of a 4x4 grid",
        "input": "frames[:, None] / 255, shape (T, 1, 24, 32)",
        "architecture": str(model).splitlines(),
        "split": f"alternate blocks of {SPLIT_BLOCK} frames, train first",
        "split_block": SPLIT_BLOCK,
        "optimizer": (f"adamw lr {LR} (cosine), weight decay {WEIGHT_DECAY}, batch {BATCH}, "
                      f"{EPOCHS} epochs, seed {SEED}, mean squared error on standardised "
                      "densities"),
        "mae": {"train": train_mae, "test": mae, "test_mean_predictor": mean_predictor},
    }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
