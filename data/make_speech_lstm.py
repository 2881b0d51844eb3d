"""Train the speech demo's LSTM: spoken-word frame classification, one 10 ms frame per step.

What it does
------------
1. Synthesizes the same training and test sentences as ``make_speech.py`` (espeak-ng, the same
   voices, words, speeds, pitches and seeds) and computes the same features, without the
   context splice: per 10 ms frame the 40 Kaldi-style log mel filterbank energies with
   per-utterance mean normalisation. The recurrent layer supplies the context the MLP took
   from its ±5 spliced frames (from the past only: the layer is causal).
2. Trains in PyTorch an ``LSTM(40, 64)`` and a ``Linear(64, 11)`` on every frame of the
   training voices' utterances (whole utterances, cross entropy), and reports frame accuracy
   on them, on the held-out voice's sentences and on the demo sentence. The global input
   standardisation used for training is folded into the LSTM's input weights and biases, so
   the exported network takes the features directly.
3. Exports it with ``torch.onnx.export`` (the classic exporter, with symbolic time and batch
   axes) to ``speech_lstm.onnx``, and checks that the shipped demo features are these features:
   the centre 40 values of each ``speech_frames.npy`` row (frame offset 0 of the splice).

Outputs (in the directory of this script)
-----------------------------------------
speech_lstm.onnx    the LSTM, input ``x`` (T, N, 40), output (T, N, 11) class scores
speech_lstm.json    metadata: features, model, optimizer, accuracies

Run
---
PyTorch and espeak-ng (Debian ``espeak-ng``) are needed only to regenerate the model::

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch onnx numpy scipy
    /tmp/torchenv/bin/python data/make_speech_lstm.py

The script is seeded; the synthesis is deterministic for a given espeak-ng version.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from make_speech import (
    CLASSES,
    CONTEXT,
    NUM_MEL,
    SEED,
    TEST_VOICE,
    espeak_version,
    fbank,
    make_utterance,
    sentence_jobs,
)
from torch import nn

OUT_DIR = Path(__file__).resolve().parent
HIDDEN = 64
EPOCHS = 40
BATCH = 16            # utterances per step
LR = 3e-3


class SpeechLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(NUM_MEL, HIDDEN)
        self.out = nn.Linear(HIDDEN, len(CLASSES))

    def forward(self, x):
        return self.out(self.lstm(x)[0])


def utterance_features(waveform: np.ndarray) -> np.ndarray:
    """The 40 log mel energies of every frame, mean-normalised over the utterance."""
    feats = fbank(waveform)
    return (feats - feats.mean(axis=0)).astype(np.float32)


def build(jobs: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """(features, labels) of every utterance endpointing accepted."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: make_utterance(*job), jobs))
    return [(utterance_features(x), y) for x, y in (r for r in results if r is not None)]


def padded(utterances, mean, std):
    """A (T, B, 40) batch of standardised features and (T, B) labels, -1 past each end."""
    steps = max(len(y) for _, y in utterances)
    x = np.zeros((steps, len(utterances), NUM_MEL), np.float32)
    y = np.full((steps, len(utterances)), -1, np.int64)
    for b, (features, labels) in enumerate(utterances):
        x[:len(labels), b] = (features - mean) / std
        y[:len(labels), b] = labels
    return torch.from_numpy(x), torch.from_numpy(y)


def accuracy(model, utterances, mean, std) -> float:
    x, y = padded(utterances, mean, std)
    with torch.no_grad():
        predicted = model(x).argmax(dim=-1)
    valid = y >= 0
    return float((predicted[valid] == y[valid]).float().mean())


def main() -> int:
    started = time.time()
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    # The same sentences as make_speech.py.
    train_voices, jobs, test_jobs = sentence_jobs(np.random.default_rng(SEED))
    print(f"synthesizing {len(jobs)} training and {len(test_jobs)} test sentences ...")
    train, test = build(jobs), build(test_jobs)

    spliced = np.load(OUT_DIR / "speech_frames.npy")
    demo_x = spliced[:, CONTEXT * NUM_MEL:(CONTEXT + 1) * NUM_MEL]
    demo = [(demo_x, np.load(OUT_DIR / "speech_labels.npy"))]

    frames = np.concatenate([features for features, _ in train])
    mean = frames.mean(axis=0)
    std = frames.std(axis=0) + 1e-5
    model = SpeechLSTM()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, EPOCHS)
    order = np.random.default_rng(SEED + 2)
    print(f"training on {len(frames)} frames of {len(train)} utterances ...")
    for epoch in range(EPOCHS):
        model.train()
        shuffled = order.permutation(len(train))
        total = 0.0
        for start in range(0, len(train), BATCH):
            x, y = padded([train[i] for i in shuffled[start:start + BATCH]], mean, std)
            loss = nn.functional.cross_entropy(model(x).reshape(-1, len(CLASSES)),
                                               y.reshape(-1), ignore_index=-1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        schedule.step()
        if (epoch + 1) % 10 == 0:
            model.eval()
            print(f"epoch {epoch + 1}: loss {total / -(-len(train) // BATCH):.4f}, held-out "
                  f"voice {accuracy(model, test, mean, std):.4f}")
    model.eval()
    scores = {"train": accuracy(model, train, mean, std),
              "test": accuracy(model, test, mean, std),
              "demo": accuracy(model, demo, mean, std)}
    print("frame accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))

    # Fold the standardisation into the input weights: W (x - m) / s = (W / s) x - W (m / s).
    with torch.no_grad():
        weight = model.lstm.weight_ih_l0
        scale = torch.from_numpy(1 / std)
        model.lstm.bias_ih_l0 -= weight @ torch.from_numpy(mean / std)
        weight *= scale
    folded = accuracy(model, demo, np.zeros(NUM_MEL, np.float32), np.ones(NUM_MEL, np.float32))
    assert abs(folded - scores["demo"]) < 1e-9, (folded, scores["demo"])

    path = OUT_DIR / "speech_lstm.onnx"
    example = torch.from_numpy(demo_x[:, None])
    torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["x"],
                      output_names=["scores"], opset_version=17,
                      dynamic_axes={"x": {0: "time", 1: "batch"},
                                    "scores": {0: "time", 1: "batch"}})
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    (OUT_DIR / "speech_lstm.json").write_text(json.dumps({
        "description": "espeak-ng spoken-word frame classification by an LSTM, one 10 ms frame "
                       "per time step; made by data/make_speech_lstm.py",
        "classes": CLASSES,
        "features": f"{NUM_MEL} log mel filterbank energies per frame, per-utterance mean "
                    "normalisation (make_speech.py's, without the splice): the centre "
                    f"{NUM_MEL} values of each speech_frames.npy row",
        "input": f"speech_frames.npy[:, {CONTEXT * NUM_MEL}:{(CONTEXT + 1) * NUM_MEL}]",
        "input_columns": [CONTEXT * NUM_MEL, (CONTEXT + 1) * NUM_MEL],
        "model": f"LSTM({NUM_MEL}, {HIDDEN}), Linear({HIDDEN}, {len(CLASSES)}) on every step; "
                 "input standardisation folded into the LSTM's input weights",
        "optimizer": f"adam lr {LR} (cosine), {BATCH} utterances per step, {EPOCHS} epochs, "
                     f"seed {SEED}, cross entropy over every frame",
        "train_voices": train_voices,
        "test_voice": TEST_VOICE,
        "train_utterances": len(train),
        "test_utterances": len(test),
        "frame_accuracy_float": {name: round(value, 4) for name, value in scores.items()},
        "espeak_ng_version": espeak_version(),
    }, indent=1) + "\n")
    print(f"done in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
