"""Random fixed-point networks and frame sequences for the tests."""

from __future__ import annotations

import numpy as np

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sim.model import FixedLayer


def random_network(config: AccelConfig, sizes: list[int], rng: np.random.Generator,
                   *, shift: int = 6) -> list[FixedLayer]:
    """Layers of the given sizes with random weights, biases and ascending centroid tables.

    ``shift`` keeps activations in a range where the quantizer sees every cluster.
    """
    layers = []
    for number, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:])):
        weights = rng.integers(config.weight_min, config.weight_max + 1, (outputs, inputs))
        biases = rng.integers(-(1 << (config.act_frac + shift)), 1 << (config.act_frac + shift),
                              outputs)
        span = 1 << (config.act_frac + 2)
        centroids = np.sort(rng.choice(np.arange(-span, span), config.clusters, replace=False))
        layers.append(FixedLayer(weights=weights, biases=biases, centroids=centroids,
                                 shift=shift, relu=number < len(sizes) - 2))
    return layers


def similar_frames(config: AccelConfig, inputs: int, count: int, change: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Cluster-index frames where each index changes with probability ``change``."""
    frames = np.empty((count, inputs), np.int64)
    frames[0] = rng.integers(0, config.clusters, inputs)
    for t in range(1, count):
        flips = rng.random(inputs) < change
        frames[t] = np.where(flips, rng.integers(0, config.clusters, inputs), frames[t - 1])
    return frames


def every_input_cycles(inputs: list[int], groups: list[int], *, reuse: bool = True,
                       clusters: int = 16) -> list[int]:
    """Cycles of each layer of a frame in which every input changes, from the README's cycle
    formula (written out here, not taken from ``sim/timing.py``): with reuse, ``Q = log2(K) +
    2`` quantizer stages, ``inputs*G + G + 17 + Q`` for the last layer and ``inputs*G + 12 + Q +
    max(5, G - 9 - Q)`` for the others, whose readout overlaps the next layer; without reuse
    ``inputs*G + G + 14`` and ``inputs*G + 9 + max(5, G - 6)``."""
    if reuse:
        stages = (clusters - 1).bit_length() + 2
        head, margin = 12 + stages, 9 + stages
    else:
        head, margin = 9, 6
    cycles = [i * g + head + max(5, g - margin) for i, g in zip(inputs, groups)]
    cycles[-1] = inputs[-1] * groups[-1] + groups[-1] + head + 5
    return cycles
