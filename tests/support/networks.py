"""Random fixed-point networks and frame sequences for the tests."""

from __future__ import annotations

import numpy as np

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.conv import ConvGeometry, Pool
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.model import FixedLayer


def random_layer(config: AccelConfig, shape: tuple[int, ...], rng: np.random.Generator, *,
                 shift: int, relu: bool, geometry: ConvGeometry | None = None) -> FixedLayer:
    """One layer with random weights of ``shape`` ((outputs, inputs), or (C', C, kh, kw) for a
    conv ``geometry``), biases and an ascending centroid table. ``shift`` keeps activations in
    a range where the quantizer sees every cluster."""
    weights = rng.integers(config.weight_min, config.weight_max + 1, shape)
    biases = rng.integers(-(1 << (config.act_frac + shift)), 1 << (config.act_frac + shift),
                          shape[0])
    span = 1 << (config.act_frac + 2)
    centroids = np.sort(rng.choice(np.arange(-span, span), config.clusters, replace=False))
    kind = LayerKind.DENSE if geometry is None else LayerKind.CONV
    return FixedLayer(weights=weights, biases=biases, centroids=centroids, shift=shift,
                      relu=relu, kind=kind, geometry=geometry)


def random_network(config: AccelConfig, sizes: list[int], rng: np.random.Generator,
                   *, shift: int = 6) -> list[FixedLayer]:
    """Dense layers of the given sizes (ReLU but the last) with random weights, biases and
    ascending centroid tables."""
    return [random_layer(config, (outputs, inputs), rng, shift=shift,
                         relu=number < len(sizes) - 2)
            for number, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:]))]


CONV_NETWORKS = {
    # 3 x 6 x 7 -> (3 x 3, padding 1) -> 6 x 6 x 7 -> (3 x 2, stride 2 x 3, padding 0/1)
    # -> 8 x 2 x 3 -> dense 5. Three input channels and six output channels leave padding
    # lanes in 4-lane rows.
    "strided": (ConvGeometry(3, 6, 7, 6, (3, 3), (1, 1), (1, 1, 1, 1)),
                ConvGeometry(6, 6, 7, 8, (3, 2), (2, 3), (0, 1, 0, 0))),
    # 3 x 6 x 7 -> (3 x 3, padding 1) -> 6 x 6 x 7 -> max pool (3 x 3, stride 2, padding 1,
    # overlapping and clipped windows) -> 6 x 3 x 4 -> (2 x 2) -> 8 x 2 x 3 -> dense 5.
    "max-pool": (ConvGeometry(3, 6, 7, 6, (3, 3), (1, 1), (1, 1, 1, 1),
                              Pool("max", (3, 3), (2, 2), (1, 1, 1, 1))),
                 ConvGeometry(6, 3, 4, 8, (2, 2))),
    # The same with average pools: 3 x 3 over the cells in the map (divisors 4, 6 and 9),
    # then a global average of the second layer's 2 x 3 map, into dense 5.
    "average-pool": (ConvGeometry(3, 6, 7, 6, (3, 3), (1, 1), (1, 1, 1, 1),
                                  Pool("avg", (3, 3), (2, 2), (1, 1, 1, 1))),
                     ConvGeometry(6, 3, 4, 8, (2, 2), pool=Pool("avg", (2, 3), (1, 1)))),
    # 1-D: 4 x 30 -> (1 x 5, stride 2, padding 2) -> 6 x 15 -> max pool (1 x 3, stride 2,
    # padding 1) -> 6 x 8 -> (1 x 3) -> 8 x 6 -> dense 5.
    "1-d": (ConvGeometry(4, 1, 30, 6, (1, 5), (1, 2), (0, 2, 0, 2),
                         Pool("max", (1, 3), (1, 2), (0, 1, 0, 1)), dims=1),
            ConvGeometry(6, 1, 8, 8, (1, 3), dims=1)),
}
"""Two conv layers into a dense layer of 5 outputs, per name; :func:`conv_network` builds
them."""


def conv_network(config: AccelConfig, name: str, rng: np.random.Generator) -> list[FixedLayer]:
    """The :data:`CONV_NETWORKS` network ``name`` with random weights, biases and centroids."""
    layers = [random_layer(config, (geometry.out_channels, geometry.channels,
                                    *geometry.kernel), rng, shift=5, relu=True,
                           geometry=geometry)
              for geometry in CONV_NETWORKS[name]]
    inputs = CONV_NETWORKS[name][-1].outputs
    return layers + [random_layer(config, (5, inputs), rng, shift=5, relu=False)]


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
