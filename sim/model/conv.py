"""The convolutional layer kind in the golden model.

A conv layer (:mod:`reuse_accel.hw.layers.conv` has its geometry) takes its input map channels
last, one value per input ``(y, x, c)``, and keeps one pre-activation sum per conv output
``(oy, ox, o)``, channels last too. A changed input with delta ``d`` adds ``weight[:, c, ky,
kx] * d`` to every output position whose receptive field holds it: ``items(y, x)`` MAC items
(weight rows) of L outputs each. Adding the convolution of the map of deltas (zero where
nothing changed) to the stored sums is that update, computed at once.

The readout activates every sum (rounding, shift, ReLU or identity, saturation, as for a dense
layer), then pools the activated map: a max, or an average rounded half up by exact division
by the window's divisor (:meth:`~reuse_accel.hw.layers.conv.Pool.apply`). It reads each
window's cells inside the map, one row of L sums per cycle, the windows one after the other
after a setup cycle: the layer's readout takes ``sum(cells) * G' + 1 + READOUT +
POOL_LATENCY`` cycles and the next layer starts after it.
Without a pool the readout is a dense layer's: ``OH * OW * G'`` rows, overlapping the next
layer as :func:`~reuse_accel.sim.timing.layer_cycles` says.

Integer sums are evaluated in float64, exact below 2**53 as for the dense kind.
"""

from __future__ import annotations

from math import prod

import numpy as np

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.conv import POOL_LATENCY, PoolWalker
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.hw.tile import ProcessingTile
from reuse_accel.sim.timing import READOUT, scan_cycles

from .readout import activate_counted

__all__ = ["KIND", "ConvLayer"]

KIND = LayerKind.CONV

POOL_SETUP = PoolWalker.setup_latency
"""The pooled readout's setup cycle before its first window."""


class ConvLayer:
    """One conv layer as the hardware runs it.

    Parameters
    ----------
    config : AccelConfig
        The hardware.
    layer : FixedLayer
        The loaded layer: ``weights`` (C', C, kh, kw), ``biases`` (C',) and ``geometry``.
    """

    kind = KIND

    def __init__(self, config: AccelConfig, layer):
        geometry = layer.geometry
        self.config = config
        self.geometry = geometry
        self.inputs = geometry.inputs
        self.fan_in = geometry.inputs
        self.outputs = geometry.outputs
        self.shift = layer.shift
        self.relu = layer.relu
        self.weights = np.asarray(layer.weights, dtype=np.float64)
        self.biases = np.tile(np.asarray(layer.biases, dtype=np.float64),
                              prod(geometry.conv_size))
        self.layout = geometry.input_layout
        self.items = geometry.items_per_input(config.lanes)
        self.products = np.repeat(geometry.outputs_per_input().reshape(-1),
                                  geometry.channels) * geometry.out_channels
        groups = config.groups(geometry.out_channels)
        self.readout_rows = int(geometry.readout_cells().sum()) * groups

    @property
    def sums(self) -> int:
        """Pre-activation sums the layer keeps."""
        return self.geometry.sums

    def _correlate(self, values: np.ndarray) -> np.ndarray:
        geometry = self.geometry
        maps = np.asarray(values, dtype=np.float64).reshape(
            1, geometry.height, geometry.width, geometry.channels)
        return geometry.correlate(maps, self.weights).reshape(-1)

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Pre-activation sums from scratch (float64 integers, channels last)."""
        return self.biases + self._correlate(values)

    def update(self, sums: np.ndarray, changed: np.ndarray, delta: np.ndarray) -> None:
        """Add the changed inputs' contributions to ``sums``."""
        if changed.any():
            sums += self._correlate(np.where(changed, delta, 0))

    def readout(self, sums: np.ndarray) -> tuple[np.ndarray, int]:
        """The layer's outputs (channels last) and how many sums saturated when activated:
        with a pool, as the readout reads them, once for every window that holds them."""
        values, clamped = activate_counted(sums, self.shift, self.relu, self.config)
        pool = self.geometry.pool
        if pool is not None:
            oh, ow = self.geometry.conv_size
            values = pool.apply(values.reshape(1, oh, ow, -1), exact=True).reshape(-1)
            counted = pool.window_sums(clamped.reshape(1, oh, ow, -1).astype(np.int64))
            return values, int(counted.sum())
        return values, int(clamped.sum())

    def cycles(self, changed: np.ndarray, *, unstable: np.ndarray | None = None,
               last: bool) -> int:
        """Cycles of the layer: the scan, then the readout. Without a pool the readout is a
        dense layer's (one row of L sums per cycle, overlapping the next layer); with one it
        reads every window's cells and the next layer starts after it."""
        scan = scan_cycles(self.config, changed, self.items, self.layout, unstable=unstable,
                           pipelined=True)
        if self.geometry.pool is not None:
            return scan + self.readout_rows + POOL_SETUP + READOUT + POOL_LATENCY
        if last:
            return scan + self.readout_rows + READOUT
        return scan + ProcessingTile.readout_lead(self.config, self.readout_rows)

    def weight_rows(self, changed: np.ndarray) -> int:
        """Weight rows the MAC array reads for the changed inputs."""
        return int(self.items[changed].sum())

    def macs(self, changed: np.ndarray) -> int:
        """Multiply-accumulates for the changed inputs."""
        return int(self.products[changed].sum())
