"""Bit-exact, cycle-exact NumPy model of the reuse accelerator.

:class:`GoldenModel` holds what the hardware holds (per layer: weights, biases, centroids,
previous cluster indices and previous pre-activation sums; weights and biases only for hardware
generated without reuse) and runs frames exactly as the RTL does: the same integer arithmetic,
the same quantizer rule, the same counters, and the same cycle count.

This package holds what every layer kind shares (the quantizer, the change detection, the
activation, the sequencing of layers and frames); one module per kind (:mod:`.dense`) holds
that kind's integer forward, delta update, counters and cycle count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
from threadpoolctl import ThreadpoolController

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers import input_layout
from reuse_accel.hw.layers.conv import ConvGeometry, MapLayout
from reuse_accel.hw.layers.recurrent import RecurrentShape, SegmentLayout
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.timing import frame_cycles

from .conv import ConvLayer
from .dense import DenseLayer
from .readout import activate
from .recurrent import RecurrentLayer

__all__ = ["FixedLayer", "FrameResult", "GoldenModel", "InputState", "KINDS", "activate",
           "quantize", "quantized_state"]

KINDS = {LayerKind.DENSE: DenseLayer, LayerKind.CONV: ConvLayer, LayerKind.LSTM: RecurrentLayer,
         LayerKind.GRU: RecurrentLayer}
"""The golden model of each layer kind."""


@dataclass
class FixedLayer:
    """One layer as loaded into the hardware (all integers).

    ``kind`` says what the layer computes (:class:`~reuse_accel.hw.protocol.LayerKind`). A
    dense layer's ``weights`` is (outputs, inputs) like a PyTorch ``Linear``, its inputs in
    channels-last order when they come from a conv layer's map; a conv layer's is (C', C,
    kh, kw) and ``geometry`` gives its shape. ``centroids`` has K entries (none for hardware
    generated without reuse); ``relu`` selects ReLU after the layer (identity otherwise). A
    dense layer over a conv layer's map of several positions has that map in ``input_map``:
    the I/O buffer holds its inputs position by position, in whole rows. An LSTM or GRU
    layer's ``weights`` is (4H, F + H) over ``[x_t ; h_{t-1}]``, ``recurrent`` its shape, and
    ``hidden_centroids`` the table that quantizes ``h_{t-1}`` (``centroids`` quantizes ``x_t``).
    """

    weights: np.ndarray
    biases: np.ndarray
    centroids: np.ndarray
    shift: int
    relu: bool
    kind: LayerKind = LayerKind.DENSE
    geometry: ConvGeometry | None = None
    input_map: MapLayout | None = None
    recurrent: RecurrentShape | None = None
    hidden_centroids: np.ndarray | None = None

    @property
    def inputs(self) -> int:
        shape = self.geometry if self.geometry is not None else self.recurrent
        return self.weights.shape[1] if shape is None else shape.inputs

    @property
    def outputs(self) -> int:
        shape = self.geometry if self.geometry is not None else self.recurrent
        return self.weights.shape[0] if shape is None else shape.outputs

    @property
    def input_layout(self) -> MapLayout | SegmentLayout:
        """How the layer's inputs sit in rows (a vector is one position)."""
        return input_layout(self)

    @property
    def output_layout(self) -> MapLayout:
        """How the layer's outputs sit in the I/O buffer."""
        return (MapLayout(1, self.outputs) if self.geometry is None
                else self.geometry.output_layout)


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def quantize(values: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster index of each fixed-point value, as the RTL computes it, and the mask of values
    outside ``[centroid[0], centroid[K-1]]`` (the calibrated range; they land in the end
    clusters).

    The index is found by binary search over the thresholds ``centroid[k-1] + centroid[k]``
    (k = 1..K-1) with ``2 * value``: for an ascending table, the number of thresholds below
    it, which is the nearest centroid, a value half-way between two going to the lower one.
    """
    index, _, _, outside = _search(values, centroids)
    return index, outside


def _search(values, centroids):
    """The quantizer's binary search: index, the interval ``(low, high]`` it narrowed to
    (starting from ``(2 * centroid[0] - 1, 2 * centroid[K-1]]``), and ``outside``."""
    values = np.asarray(values, dtype=np.int64)
    centroids = np.asarray(centroids, dtype=np.int64)
    # The hardware's K is a power of two; a shorter table searches as if padded with thresholds
    # above every value.
    size = 1 << (len(centroids) - 1).bit_length()
    thresholds = np.full(size, np.iinfo(np.int64).max)
    thresholds[0] = 0
    thresholds[1:len(centroids)] = centroids[:-1] + centroids[1:]
    doubled = 2 * values
    index = np.zeros(values.shape, np.int64)
    low = np.full(values.shape, 2 * centroids[0] - 1)
    high = np.full(values.shape, 2 * centroids[-1])
    step = size >> 1
    while step:
        threshold = thresholds[index | step]
        above = threshold < doubled
        index = np.where(above, index | step, index)
        low = np.where(above, threshold, low)
        high = np.where(above, high, threshold)
        step >>= 1
    outside = (values < centroids[0]) | (values > centroids[-1])
    return index, low, high, outside


@dataclass
class InputState:
    """What the change detector keeps of each input of a layer between frames: its centroid,
    whether it was outside the calibrated range, and the interval ``(low, high]`` of doubled
    values that quantize alike (:class:`~reuse_accel.hw.core.quantizer.CentroidQuantizer`)."""

    centroid: np.ndarray
    low: np.ndarray
    high: np.ndarray
    outside: np.ndarray

    @classmethod
    def empty(cls, inputs: int) -> InputState:
        zeros = np.zeros(inputs, np.int64)
        return cls(zeros, zeros.copy(), zeros.copy(), np.zeros(inputs, bool))

    def keeps(self, values: np.ndarray) -> np.ndarray:
        """The inputs whose doubled value is still inside their interval."""
        doubled = 2 * np.asarray(values, dtype=np.int64)
        return (self.low < doubled) & (doubled <= self.high)

    def update(self, moved: np.ndarray, new: InputState) -> None:
        """Take the state of the inputs numbered ``moved`` from ``new``, which holds theirs
        in that order."""
        for name in ("centroid", "low", "high", "outside"):
            getattr(self, name)[moved] = getattr(new, name)


def quantized_state(values: np.ndarray, centroids: np.ndarray, config: AccelConfig, *,
                    bypass: bool = False) -> InputState:
    """The state the quantizer gives each value: the centroid of its index (:func:`quantize`),
    ``outside``, and the interval its binary search narrowed to: between the thresholds around
    its index for an ascending table, ``2 * centroid[0] - 1`` and ``2 * centroid[K-1]`` at the
    table's ends, the open interval beyond them for a value outside; ``(2v - 1, 2v]`` with
    ``bypass`` (the value is an index)."""
    values = np.asarray(values, dtype=np.int64)
    centroids = np.asarray(centroids, dtype=np.int64)
    width = config.interval_width
    lowest, highest = -(1 << (width - 1)), (1 << (width - 1)) - 1
    doubled = 2 * values
    if bypass:
        index = values & ((1 << config.index_width) - 1)
        return InputState(centroids[index], doubled - 1, doubled, np.zeros(values.shape, bool))
    index, low, high, _ = _search(values, centroids)
    below = values < centroids[0]
    beyond = values > centroids[-1]
    bottom, top = 2 * centroids[0] - 1, 2 * centroids[-1]
    low = np.where(below, lowest, np.where(beyond, top, low))
    high = np.where(below, bottom, np.where(beyond, highest, high))
    return InputState(centroids[index], low, high, below | beyond)


@dataclass
class FrameResult:
    """Outputs and counters of one frame, as the hardware reports them."""

    outputs: np.ndarray  # last layer, fixed point
    cycles: int
    layer_cycles: np.ndarray
    changed_inputs: np.ndarray
    out_of_range: np.ndarray
    weight_rows: np.ndarray
    macs: np.ndarray
    saturated_outputs: np.ndarray
    activations: list = field(default_factory=list)  # every layer's outputs, fixed point
    # Per layer, the changed inputs among a recurrent layer's h_{t-1} (0 for other kinds).
    changed_hidden: np.ndarray | None = None


class GoldenModel:
    """The accelerator's state and behaviour, frame by frame.

    Parameters
    ----------
    config : AccelConfig
        The hardware this models.
    layers : list of FixedLayer
        The loaded network.
    """

    def __init__(self, config: AccelConfig, layers: list[FixedLayer]):
        self.config = config
        self.layers = layers
        self.baseline = not config.reuse
        for number, layer in enumerate(layers):
            if layer.kind not in KINDS:
                raise ValueError(f"layer {number} is of kind {layer.kind!r}, which the golden "
                                 f"model does not know")
            if layer.recurrent is not None and config.reuse and (
                    layer.hidden_centroids is None or
                    len(layer.hidden_centroids) != len(layer.centroids)):
                raise ValueError(f"layer {number} ({layer.kind.name}) needs hidden_centroids, "
                                 f"a table of {len(layer.centroids)} centroids for h_t-1 "
                                 "like its centroids for x_t")
        self._kinds = [KINDS[layer.kind](config, layer) for layer in layers]
        self._segments = [self._input_segments(number, layer) for number, layer in
                          enumerate(layers)]
        self._state = [InputState.empty(kind.fan_in) for kind in self._kinds]
        self._acc = [np.zeros(kind.sums, np.float64) for kind in self._kinds]
        self._reuse_valid = False

    @staticmethod
    def _input_segments(number: int, layer: FixedLayer) -> list:
        """How a layer's inputs are quantized: ``(start, stop, centroids, bypass)`` per
        segment; a recurrent layer's ``h_{t-1}`` with its own table (layer 0's ``x`` arrives
        as indices)."""
        centroids = np.asarray(layer.centroids, dtype=np.int64)
        segments = [(0, layer.inputs, centroids, number == 0)]
        if layer.recurrent is not None:
            hidden = layer.hidden_centroids if layer.hidden_centroids is not None else []
            segments.append((layer.inputs, layer.recurrent.fan_in,
                             np.asarray(hidden, dtype=np.int64), False))
        return segments

    def begin_sequence(self) -> None:
        """Forget the previous frame: the next one computes everything from the biases, and
        recurrent layers start from ``h = 0``, ``c = 0``."""
        self._reuse_valid = False
        for kind in self._kinds:
            if isinstance(kind, RecurrentLayer):
                kind.reset()

    def set_mode(self, *, baseline: bool) -> None:
        """Switch baseline mode; like the hardware's SET_MODE, the next frame starts over."""
        if not baseline and not self.config.reuse:
            raise ValueError(
                "the hardware was generated without reuse (reuse = false) and only runs in "
                "baseline mode; generate it with reuse = true to reuse computation")
        self.baseline = baseline
        self.begin_sequence()

    def frame(self, indices: np.ndarray) -> FrameResult:
        """Run one frame whose layer-0 inputs are the cluster ``indices`` (the fixed-point
        activations for hardware generated without reuse).

        The matrix products run on one BLAS thread: a frame's products are small, and BLAS
        threads that wait for a busy core slow the model down several times over."""
        with _blas().limit(limits=1, user_api="blas"):
            return self._frame(indices)

    def _frame(self, indices: np.ndarray) -> FrameResult:
        config = self.config
        indices = np.asarray(indices, dtype=np.int64)
        what = "cluster indices" if config.reuse else "fixed-point activations"
        low, high = (0, config.clusters - 1) if config.reuse else (config.act_min,
                                                                      config.act_max)
        if indices.shape != (self.layers[0].inputs,):
            raise ValueError(
                f"frame must hold {self.layers[0].inputs} {what}, "
                f"not an array of shape {indices.shape}")
        if indices.size and (indices.min() < low or indices.max() > high):
            raise ValueError(
                f"{what} must be in [{low}, {high}], not "
                f"{int(indices.min())}..{int(indices.max())}")
        if not config.reuse:
            return self._dense_frame(indices)
        from_scratch = self.baseline or not self._reuse_valid
        n = len(self.layers)
        masks = []
        outside_counts = np.zeros(n, np.int64)
        saturated_counts = np.zeros(n, np.int64)
        cycles = np.zeros(n, np.int64)
        activations = []
        values = None
        for number, kind in enumerate(self._kinds):
            state = self._state[number]
            inputs = indices if number == 0 else values
            if isinstance(kind, RecurrentLayer):
                inputs = np.concatenate([inputs, kind.hidden])
            if from_scratch:
                unstable = np.ones(kind.fan_in, bool)
                previous = np.zeros(kind.fan_in, np.int64)
                self._acc[number][:] = kind.biases
            else:
                unstable = ~state.keeps(inputs)
                previous = state.centroid.copy()
            # Only the inputs that left their interval pass the quantizer.
            delta = np.zeros(kind.fan_in, np.int64)
            for start, stop, centroids, bypass in self._segments[number]:
                moved = start + np.flatnonzero(unstable[start:stop])
                new = quantized_state(inputs[moved], centroids, config, bypass=bypass)
                state.update(moved, new)
                delta[moved] = new.centroid - previous[moved]
            moved = np.flatnonzero(unstable)
            changed = unstable.copy()
            if not from_scratch:
                changed[moved] = delta[moved] != 0
            outside_counts[number] = int(state.outside.sum())
            kind.update(self._acc[number], changed, delta)
            masks.append(changed)
            cycles[number] = kind.cycles(changed, unstable=unstable, last=number == n - 1)
            values, saturated_counts[number] = kind.readout(self._acc[number])
            activations.append(values)
        self._reuse_valid = True
        return self._result(cycles, masks, outside_counts, saturated_counts, activations)

    def _dense_frame(self, values: np.ndarray) -> FrameResult:
        """A frame on hardware generated without reuse: every layer on the activations."""
        n = len(self.layers)
        cycles = np.zeros(n, np.int64)
        saturated_counts = np.zeros(n, np.int64)
        activations = []
        masks = []
        for number, kind in enumerate(self._kinds):
            if isinstance(kind, RecurrentLayer):
                values = np.concatenate([values, kind.hidden])
            acc = kind.forward(values)
            masks.append(np.ones(kind.fan_in, bool))
            cycles[number] = kind.cycles(masks[-1], last=number == n - 1)
            values, saturated_counts[number] = kind.readout(acc)
            activations.append(values)
        return self._result(cycles, masks, np.zeros(n, np.int64), saturated_counts,
                            activations)

    def _result(self, cycles, masks, outside_counts, saturated_counts,
                activations) -> FrameResult:
        """The frame's counters as the hardware reports them, from the per-layer masks of
        changed inputs and counts."""
        rows, macs = zip(*((kind.weight_rows(mask), kind.macs(mask))
                           for kind, mask in zip(self._kinds, masks)))
        return FrameResult(
            outputs=activations[-1],
            cycles=frame_cycles(cycles),
            layer_cycles=cycles,
            changed_inputs=np.array([int(mask.sum()) for mask in masks], np.int64),
            out_of_range=outside_counts,
            weight_rows=np.array(rows, np.int64),
            macs=np.array(macs, np.int64),
            saturated_outputs=saturated_counts,
            activations=activations,
            changed_hidden=np.array([int(mask[kind.inputs:].sum())
                                     if isinstance(kind, RecurrentLayer) else 0
                                     for kind, mask in zip(self._kinds, masks)], np.int64),
        )

    def run(self, frames: np.ndarray) -> list[FrameResult]:
        return [self.frame(indices) for indices in frames]
