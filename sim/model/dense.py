"""The dense (fully-connected) layer kind in the golden model.

A dense layer's address generator sends every changed input ``i`` to all ``G = ceil(outputs /
L)`` output groups: weight rows ``base + i * G + g``, one per cycle. So a frame with ``c``
changed inputs reads ``c * G`` weight rows and performs ``c * outputs`` multiply-accumulates,
and its cycle count is :func:`reuse_accel.sim.timing.layer_cycles` of its change mask (over
the rows its inputs take: a vector's, or those of the conv layer's map it flattens).

:class:`DenseLayer` holds what the hardware computes for one loaded layer: the integer forward
from scratch, the delta update of the stored sums, and the counters of a frame.

Integer sums are evaluated in float64: every product and partial sum is an integer below
2**53 (``AccelConfig`` caps the accumulator at 53 bits), so BLAS gives exact results.
"""

from __future__ import annotations

import numpy as np

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.timing import layer_cycles

from .readout import activate_counted

__all__ = ["KIND", "DenseLayer"]

KIND = LayerKind.DENSE


class DenseLayer:
    """One dense layer as the hardware runs it.

    Parameters
    ----------
    config : AccelConfig
        The hardware.
    layer : FixedLayer
        The loaded layer: ``weights`` (outputs, inputs) and ``biases`` (outputs,), integers.
    """

    kind = KIND

    def __init__(self, config: AccelConfig, layer):
        self.config = config
        self.layout = layer.input_layout
        self.inputs = layer.inputs
        self.fan_in = layer.inputs
        self.outputs = layer.outputs
        self.groups = config.groups(layer.outputs)
        self.sums = layer.outputs
        self.shift = layer.shift
        self.relu = layer.relu
        self.biases = layer.biases
        self.weights = np.asarray(layer.weights, dtype=np.float64)

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Pre-activation sums from scratch: ``biases + weights @ values`` (float64 integers).
        """
        return self.biases + self.weights @ np.asarray(values).astype(np.float64)

    def update(self, sums: np.ndarray, changed: np.ndarray, delta: np.ndarray) -> None:
        """Add the changed inputs' contributions ``weights[:, i] * delta[i]`` to ``sums``."""
        if changed.any():
            # A dense matrix-vector product over the masked deltas streams the weights
            # once; gathering the changed columns costs more than it saves.
            sums += self.weights @ np.where(changed, delta, 0)

    def cycles(self, changed: np.ndarray, *, unstable: np.ndarray | None = None,
               last: bool) -> int:
        """Cycles of the layer, given the mask of its changed inputs, the mask of the inputs
        that left their interval (with reuse; ``changed`` by default), and whether it is the
        frame's last (whose readout does not overlap a next layer)."""
        return layer_cycles(self.config, changed, self.outputs, unstable=unstable, last=last,
                            layout=self.layout)

    def readout(self, sums: np.ndarray) -> tuple[np.ndarray, int]:
        """The layer's outputs and how many of them saturated."""
        values, clamped = activate_counted(sums, self.shift, self.relu, self.config)
        return values, int(clamped.sum())

    def weight_rows(self, changed: np.ndarray) -> int:
        """Weight rows the MAC array reads for the ``changed`` inputs (a mask)."""
        return int(np.count_nonzero(changed)) * self.groups

    def macs(self, changed: np.ndarray) -> int:
        """Multiply-accumulates for the ``changed`` inputs (a mask)."""
        return int(np.count_nonzero(changed)) * self.outputs
