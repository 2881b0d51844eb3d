"""The recurrent layer kinds (LSTM, GRU) in the golden model.

A recurrent layer is a dense product over its ``F + H`` inputs ``[x_t ; h_{t-1}]``
(:mod:`reuse_accel.hw.layers.recurrent`), so its change detection, delta update and counters
are a dense layer's over both halves: a changed input (of ``x`` or of ``h``) reads ``4 * Gh``
weight rows (``Gh = ceil(H / L)`` rows per gate) and performs ``4 * H`` multiply-accumulates;
a GRU's input reads ``3 * Gh`` and performs ``3 * H`` (its candidate keeps ``n_x`` over ``x``
and ``n_h`` over ``h`` apart: the fourth gate's weights of each input are zeros, skipped).
``x_t`` is quantized with the layer's centroid table, ``h_{t-1}`` with its own.

Each frame the element-wise stage then runs in full: the gate sums are rounded, shifted and
saturated like a linear dense layer's outputs, and ``lstm_cell`` or ``gru_cell``
(:mod:`reuse_accel.hw.layers.recurrent`) gives ``h_t`` (and ``c_t``),
which is the layer's output and its recurrent input at the next frame. ``h`` and ``c`` start
from zero with every sequence.

Cycles: the scan of the ``ceil(F / L) + Gh`` input rows with ``4 * Gh`` (GRU ``3 * Gh``) items
per changed input (:func:`~reuse_accel.sim.timing.scan_cycles`), then the element-wise stage,
``GATES`` sum reads per group of L hidden units and
:data:`~reuse_accel.hw.layers.recurrent.ELEMENTWISE_LATENCY`: ``4 * Gh +
ELEMENTWISE_LATENCY`` cycles, after which the next layer starts.
"""

from __future__ import annotations

import numpy as np

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.recurrent import ELEMENTWISE_LATENCY, GATES, gru_cell, lstm_cell
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.timing import scan_cycles

from .readout import activate_counted

__all__ = ["RecurrentLayer"]


class RecurrentLayer:
    """One LSTM or GRU layer as the hardware runs it, with its hidden (and cell) state.

    Parameters
    ----------
    config : AccelConfig
        The hardware.
    layer : FixedLayer
        The loaded layer: ``weights`` (4H, F + H), ``biases`` (4H,), ``recurrent`` its shape.
    """

    kind = (LayerKind.LSTM, LayerKind.GRU)

    def __init__(self, config: AccelConfig, layer):
        shape = layer.recurrent
        self.config = config
        self.shape = shape
        self.inputs = shape.inputs
        self.fan_in = shape.fan_in
        self.outputs = shape.hidden
        self.sums = shape.sums
        self.shift = layer.shift
        self.relu = False
        self.biases = layer.biases
        self.weights = np.asarray(layer.weights, dtype=np.float64)
        self.layout = shape.layout
        self.items = shape.items_per_input(config.lanes)
        self.readout_rows = shape.sum_rows(config.lanes)
        self.reset()

    def reset(self) -> None:
        """A new sequence: ``h = 0`` and ``c = 0``."""
        self.hidden = np.zeros(self.shape.hidden, np.int64)
        self.cell = np.zeros(self.shape.hidden, np.int64)

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Gate sums from scratch over ``[x ; h]`` (float64 integers)."""
        return self.biases + self.weights @ np.asarray(values).astype(np.float64)

    def update(self, sums: np.ndarray, changed: np.ndarray, delta: np.ndarray) -> None:
        if changed.any():
            sums += self.weights @ np.where(changed, delta, 0)

    def readout(self, sums: np.ndarray) -> tuple[np.ndarray, int]:
        """The element-wise stage: the new hidden state (the layer's outputs, also kept for
        the next frame) and how many gate activations saturated."""
        config = self.config
        gates, clamped = activate_counted(sums, self.shift, False, config)
        gates = gates.reshape(GATES, self.shape.hidden)
        if self.shape.cell == "lstm":
            self.hidden, self.cell = lstm_cell(gates, self.cell, config.act_frac,
                                               config.act_min, config.act_max)
        else:
            self.hidden = gru_cell(gates, self.hidden, config.act_frac, config.act_min,
                                   config.act_max)
        return self.hidden.copy(), int(clamped.sum())

    def cycles(self, changed: np.ndarray, *, unstable: np.ndarray | None = None,
               last: bool) -> int:
        """The scan of ``x`` and ``h`` rows, then the element-wise stage (the next layer
        starts after it)."""
        scan = scan_cycles(self.config, changed, self.items, self.layout, unstable=unstable)
        return scan + self.readout_rows + ELEMENTWISE_LATENCY

    def weight_rows(self, changed: np.ndarray) -> int:
        return int(np.count_nonzero(changed)) * self.items

    def macs(self, changed: np.ndarray) -> int:
        return int(np.count_nonzero(changed)) * self.shape.gates_per_input * self.outputs
