"""The NumPy MLP the data scripts train: forward pass, Adam(W) training, input-norm folding.

``make_speech.py`` (softmax cross-entropy) and ``make_traffic.py`` (mean squared error) share
it; each passes its loss as a function of the batch's outputs and targets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["forward", "train_mlp", "fold_input_norm"]

Loss = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]
"""(outputs, targets) -> (the batch's summed loss, its gradient with respect to the outputs)."""


def forward(params: list, x: np.ndarray) -> list:
    """Activations of every layer, the input first; params are (w, b) with w in (out, in)
    layout; ReLU between layers, linear output."""
    acts = [x]
    for i, (w, b) in enumerate(params):
        z = acts[-1] @ w.T + b
        acts.append(np.maximum(z, 0.0) if i < len(params) - 1 else z)
    return acts


def train_mlp(x: np.ndarray, y: np.ndarray, sizes: list[int], rng: np.random.Generator, *,
              loss: Loss, epochs: int, batch: int, lr: float, weight_decay: float = 0.0,
              report_every: int = 1) -> list:
    """He-initialised layers of ``sizes`` trained with Adam on mini-batches; with
    ``weight_decay``, decoupled decay of the weights (AdamW), not of the biases."""
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = (rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)).astype(np.float32)
        params.append((w, np.zeros(n_out, dtype=np.float32)))
    m = [[np.zeros_like(p) for p in layer] for layer in params]
    v = [[np.zeros_like(p) for p in layer] for layer in params]
    b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        loss_sum = 0.0
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            acts = forward(params, x[idx])
            batch_loss, grad = loss(acts[-1], y[idx])
            loss_sum += batch_loss
            step += 1
            for i in reversed(range(len(params))):
                w, b = params[i]
                gw, gb = grad.T @ acts[i], grad.sum(axis=0)
                if i > 0:
                    grad = (grad @ w) * (acts[i] > 0)
                lr_t = lr * np.sqrt(1 - b2 ** step) / (1 - b1 ** step)
                new = []
                for j, (p, g) in enumerate(((w, gw), (b, gb))):
                    m[i][j] = b1 * m[i][j] + (1 - b1) * g
                    v[i][j] = b2 * v[i][j] + (1 - b2) * g * g
                    updated = p - lr_t * m[i][j] / (np.sqrt(v[i][j]) + eps)
                    if j == 0 and weight_decay:
                        updated = updated - lr * weight_decay * p
                    new.append(updated.astype(np.float32))
                params[i] = tuple(new)
        if (epoch + 1) % report_every == 0:
            print(f"  epoch {epoch + 1:3d}: loss {loss_sum / len(x):.5f}")
    return params


def fold_input_norm(params: list, mean: np.ndarray, std: np.ndarray) -> list:
    """Exactly fold (x - mean) / std into the first layer."""
    w, b = params[0]
    w_f = w / std[None, :]
    b_f = b - w_f @ mean
    return [(w_f.astype(np.float32), b_f.astype(np.float32)), *params[1:]]
