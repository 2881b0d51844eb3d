"""Model compiler: float network -> fixed-point layers and centroid tables for the hardware.

- Weights: per layer, the largest ``shift`` (fractional bits) at which the largest weight still
  fits ``weight_width`` and the largest bias, at the product scale ``act_frac + shift``, still
  fits ``bias_width``; rounded to nearest (anything that still saturates is counted).
- Centroid tables: calibrated on frames. Each layer's inputs (the frames for layer 0, the float
  activations for the others) span ``[lo, hi]``; the K centroids are K uniform levels from
  ``lo`` to ``hi``, the end levels on the range ends (linear quantization; a ReLU layer's 0
  stays exactly 0). Values outside the calibrated range fall in the end clusters and are
  counted.
- Layer 0 is quantized on the host (:meth:`CompiledModel.quantize_frames`) with the same rule as
  the hardware quantizer, and sent as cluster indices.
- Maps are stored channels last (:mod:`reuse_accel.hw.layers.conv`): the frames are permuted on
  the way in, the outputs on the way out (:meth:`CompiledModel.to_float`), and a dense layer
  that takes a flattened map gets its weight columns permuted to match (PyTorch flattens
  channels first).
- Hardware generated without reuse (``AccelConfig.reuse`` false) has no centroid tables: the
  layers get empty tables and layer 0 is sent as fixed-point activations.
- Capacity: :func:`check_fits` says which capacity (``max_layers``, ``max_neurons``,
  ``weight_depth``) a model exceeds and the smallest value that holds it; :func:`size_config`
  raises a configuration's capacities to hold a model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import prod

import numpy as np

from reuse_accel.hw.config import AccelConfig, ConfigError
from reuse_accel.hw.layers.conv import MapLayout
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.model import FixedLayer, quantize

from .commands import layer_weight_rows
from .network import InputError, Network, check_frames

__all__ = ["CompiledModel", "ModelFitError", "capacities", "check_fits", "compile_model",
           "memory_rows", "size_config"]

CAPACITIES = ("max_layers", "max_neurons", "weight_depth", "max_kernel", "max_height",
              "max_width")
"""The :class:`AccelConfig` parameters that say how large a model the hardware holds."""

MEMORY_DEPTHS = {"buffer_depth": "buffer_rows", "state_depth": "state_rows",
                 "sum_depth": "sum_rows"}
"""The memory depths a model may need beyond what ``max_layers`` and ``max_neurons`` give
(parameter: the :class:`AccelConfig` property with the depth in effect)."""


class ModelFitError(InputError):
    """The model does not fit the generated hardware.

    ``problem`` says what does not fit, ``parameter`` names the capacity to raise and
    ``required`` the smallest value that holds the model; the message adds the fix.
    """

    def __init__(self, problem: str, parameter: str, required: int):
        self.problem = problem
        self.parameter = parameter
        self.required = required
        super().__init__(f"{problem}; generate hardware with {parameter} >= {required}")


@dataclass
class CompiledModel:
    config: AccelConfig
    network: Network
    layers: list[FixedLayer]
    ranges: list[tuple[float, float]]
    saturated_weights: int
    saturated_biases: int

    @property
    def scale(self) -> float:
        """Fixed-point units per 1.0 of activation."""
        return float(1 << self.config.act_frac)

    def to_fixed(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Round to the activation format; returns the values and the mask of saturated ones."""
        config = self.config
        fixed = np.rint(np.asarray(values, np.float64) * self.scale)
        saturated = (fixed < config.act_min) | (fixed > config.act_max)
        return np.clip(fixed, config.act_min, config.act_max).astype(np.int64), saturated

    def quantize_frames(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Layer-0 inputs of each (T, *input_shape) frame as the hardware takes them, (T,
        inputs) in channels-last order, and per frame the number of inputs outside the
        calibrated range (including any that saturated the activation format). The inputs are
        cluster indices, or for hardware generated without reuse the fixed-point activations
        (and the count is of saturated inputs only)."""
        frames = check_frames(frames, self.network.input_shape)
        order = channels_last(self.network.input_shape)
        fixed, saturated = self.to_fixed(frames.reshape(len(frames), self.network.inputs)[
            :, order])
        if not self.config.reuse:
            return fixed, saturated.sum(axis=1)
        indices, outside = quantize(fixed, self.layers[0].centroids)
        return indices, (outside | saturated).sum(axis=1)

    def to_float(self, outputs: np.ndarray) -> np.ndarray:
        """The network's float outputs, (T, outputs) in ONNX's order, from the last layer's
        fixed-point outputs (channels last)."""
        order = np.argsort(channels_last(self.network.layers[-1].output_shape))
        return np.asarray(outputs, np.float64)[..., order] / self.scale


def channels_last(shape: tuple[int, ...]) -> np.ndarray:
    """The permutation that takes a ``(C, *positions)`` tensor flattened in C order (ONNX's
    channels-first order) to channels-last order: ``flat[order]``. A vector stays as it is."""
    size = prod(shape)
    if len(shape) < 2:
        return np.arange(size)
    return np.arange(size).reshape(shape[0], -1).T.reshape(-1)


def _neurons(layer, lanes: int) -> list[tuple[str, int]]:
    """What ``max_neurons`` bounds in a layer: a dense layer's inputs (the buffer slots they
    span, for a map whose channels leave padding lanes) and outputs; a conv layer's fan-in (its
    accumulators' width follows from it). A conv layer's maps are bounded by the conv
    capacities of the gateware."""
    if layer.recurrent is not None:
        shape = layer.recurrent
        return [(f"input slots (its {shape.inputs} inputs and {shape.hidden} hidden values, "
                 f"each from a new row of {lanes} lanes)", layer.input_layout.span(lanes)),
                ("gate sums (4 gates of its hidden size in whole rows)",
                 shape.sum_rows(lanes) * lanes)]
    if layer.geometry is None:
        span = layer.input_layout.span(lanes)
        inputs = ("inputs" if span == layer.inputs else
                  f"input slots (a map of {layer.inputs} values, each position in whole rows "
                  f"of {lanes} lanes)")
        return [(inputs, span), ("outputs", layer.outputs)]
    geometry = layer.geometry
    return [("inputs per output (channels x kernel)",
             geometry.channels * geometry.kernel[0] * geometry.kernel[1])]


def _layouts(layer) -> tuple[MapLayout, MapLayout]:
    """How a layer's inputs and outputs sit in the I/O buffer."""
    if layer.geometry is None:
        return layer.input_layout, MapLayout(1, layer.outputs)
    return layer.geometry.input_layout, layer.geometry.output_layout


def memory_rows(network: Network, config: AccelConfig) -> dict[str, int]:
    """Rows of L values the model needs in each memory of :data:`MEMORY_DEPTHS` on hardware
    like ``config``: the largest map in the I/O buffer; with reuse every layer's inputs in the
    input-state memory and every layer's sums (a conv layer's before its pool) in the sum
    memory, without reuse no input state and the largest layer's sums."""
    lanes = config.lanes
    layouts = [_layouts(layer) for layer in network.layers]
    # A recurrent layer's h_{t-1} comes from its own memory: only x_t is in the I/O buffer.
    buffered = [(MapLayout(1, layer.inputs), outputs) if layer.recurrent is not None
                else (inputs, outputs) for layer, (inputs, outputs) in zip(network.layers,
                                                                          layouts)]
    sums = [prod(layer.geometry.conv_size) * -(-layer.geometry.out_channels // lanes)
            if layer.geometry is not None else
            layer.recurrent.sum_rows(lanes) if layer.recurrent is not None else
            -(-layer.outputs // lanes)
            for layer in network.layers]
    return {
        "buffer_depth": max(layout.rows(lanes) for pair in buffered for layout in pair),
        "state_depth": (sum(inputs.rows(lanes) for inputs, _ in layouts) if config.reuse
                        else 0),
        "sum_depth": sum(sums) if config.reuse else max(sums),
    }


def _kernel_side(geometry) -> int:
    """The largest kernel side or stride of a conv layer and its pool."""
    sides = [*geometry.kernel, *geometry.stride]
    if geometry.pool is not None:
        sides += [*geometry.pool.kernel, *geometry.pool.stride]
    return max(sides)


def capacities(network: Network, config: AccelConfig) -> dict[str, int]:
    """The smallest value of each capacity parameter (:data:`CAPACITIES`) that holds
    ``network`` on hardware otherwise like ``config`` (the weight rows depend on its lanes);
    the conv capacities are 0 and 1 for a model without conv layers."""
    geometries = [layer.geometry for layer in network.layers if layer.geometry is not None]
    return {
        "max_layers": len(network.layers),
        "max_neurons": max(count for layer in network.layers
                           for _, count in _neurons(layer, config.lanes)),
        "weight_depth": sum(layer_weight_rows(config, layer) for layer in network.layers),
        "max_kernel": max((_kernel_side(g) for g in geometries), default=0),
        "max_height": max((g.height for g in geometries), default=1),
        "max_width": max((g.width for g in geometries), default=1),
    }


def check_fits(config: AccelConfig, network: Network, hardware: str = "the hardware") -> None:
    """Raise :class:`ModelFitError` if ``network`` cannot be loaded into this hardware
    (``hardware`` names it in the message)."""
    layers = len(network.layers)
    if layers > config.max_layers:
        raise ModelFitError(
            f"the model has {layers} layers but {hardware} holds at most {config.max_layers} "
            "(max_layers)", "max_layers", layers)
    for number, layer in enumerate(network.layers):
        for what, count in _neurons(layer, config.lanes):
            if count > config.max_neurons:
                raise ModelFitError(
                    f"layer {number} has {count} {what} but {hardware} holds at most "
                    f"{config.max_neurons} per layer (max_neurons)", "max_neurons", count)
    rows = sum(layer_weight_rows(config, layer) for layer in network.layers)
    if rows > config.weight_depth:
        raise ModelFitError(
            f"the model needs {rows} weight-memory rows of {config.lanes} weights but "
            f"{hardware} has {config.weight_depth} (weight_depth)", "weight_depth", rows)
    for number, layer in enumerate(network.layers):
        geometry = layer.geometry
        if geometry is None:
            continue
        side = _kernel_side(geometry)
        if side > config.max_kernel:
            held = (f"takes kernels and strides up to {config.max_kernel}" if config.conv
                    else "has no conv layers")
            pool = ("" if geometry.pool is None else
                    f" and a {geometry.pool.kernel[0]} x {geometry.pool.kernel[1]} pool with "
                    f"stride {geometry.pool.stride[0]} x {geometry.pool.stride[1]}")
            raise ModelFitError(
                f"layer {number} has a {geometry.kernel[0]} x {geometry.kernel[1]} kernel with "
                f"stride {geometry.stride[0]} x {geometry.stride[1]}{pool} but {hardware} "
                f"{held} (max_kernel)", "max_kernel", side)
        for name, size in (("max_height", geometry.height), ("max_width", geometry.width)):
            if size > getattr(config, name):
                raise ModelFitError(
                    f"layer {number} takes a {geometry.height} x {geometry.width} map but "
                    f"{hardware} holds maps up to {config.max_height} x {config.max_width} "
                    f"({name})", name, size)
    what = {"buffer_depth": "in each I/O buffer bank (the largest map)",
            "state_depth": "of input state (every layer's inputs)",
            "sum_depth": "of sums (every layer's outputs before pooling)"}
    for name, rows in memory_rows(network, config).items():
        held = getattr(config, MEMORY_DEPTHS[name])
        if rows > held:
            raise ModelFitError(
                f"the model needs {rows} rows of {config.lanes} values {what[name]} but "
                f"{hardware} has {held} ({name})", name, rows)


def size_config(network: Network, base: AccelConfig | None = None) -> AccelConfig:
    """``base`` (default: ``AccelConfig()``) with each capacity raised, where the model needs
    it, to the smallest value that holds ``network``; capacities are never lowered.

    Raises :class:`InputError` if no valid configuration holds the model.
    """
    base = AccelConfig() if base is None else base
    needed = capacities(network, base)
    raised = {name: max(getattr(base, name), needed[name]) for name in CAPACITIES}
    try:
        config = dataclasses.replace(base, **raised)
        for name, rows in memory_rows(network, config).items():
            if rows > getattr(config, MEMORY_DEPTHS[name]):
                raised[name] = rows
        return dataclasses.replace(config, **raised)
    except ConfigError as error:
        wanted = ", ".join(f"{name} = {value}" for name, value in raised.items()
                           if value != getattr(base, name))
        raise InputError(f"the model needs {wanted}, which is not a valid configuration: "
                         f"{error}") from None


def _layer_shift(config: AccelConfig, weight: np.ndarray, bias: np.ndarray) -> int:
    """Most fractional bits at which the weights and the biases still fit their widths."""
    shift = config.max_shift
    largest_weight = float(np.max(np.abs(weight)))
    if largest_weight:
        shift = min(shift, int(np.floor(np.log2(config.weight_max / largest_weight))))
    largest_bias = float(np.max(np.abs(bias)))
    if largest_bias:
        shift = min(shift, int(np.floor(np.log2(config.bias_max / largest_bias)))
                    - config.act_frac)
    return max(0, shift)


def _linear_centroids(config: AccelConfig, low: float, high: float) -> np.ndarray:
    scale = 1 << config.act_frac
    levels = np.rint(np.linspace(low, high, config.clusters) * scale).astype(np.int64)
    levels = np.clip(levels, config.act_min, config.act_max)
    # Rounding a narrow range can merge levels: keep the table strictly ascending.
    for k in range(1, len(levels)):
        levels[k] = max(levels[k], levels[k - 1] + 1)
    if levels[-1] > config.centroid_max:
        levels -= levels[-1] - config.centroid_max
    return levels


def compile_model(network: Network, config: AccelConfig,
                  calibration: np.ndarray) -> CompiledModel:
    """Fixed-point layers and linear centroid tables calibrated on ``calibration`` frames,
    (T, *input_shape)."""
    check_fits(config, network)
    calibration = check_frames(calibration, network.input_shape, source="calibration frames")
    layer_inputs = network.layer_inputs(calibration)
    layers, ranges = [], []
    saturated_weights = saturated_biases = 0
    shape = network.input_shape
    for number, layer in enumerate(network.layers):
        weight, bias = layer.weight, layer.bias
        if layer.kind is LayerKind.DENSE:
            # The layer's inputs arrive channels last.
            weight = weight[:, channels_last(shape)]
        shape = layer.output_shape
        shift = _layer_shift(config, weight, bias)
        fixed_weight = np.rint(weight * (1 << shift))
        saturated_weights += int(((fixed_weight < config.weight_min) |
                                  (fixed_weight > config.weight_max)).sum())
        fixed_weight = np.clip(fixed_weight, config.weight_min, config.weight_max)
        fixed_bias = np.rint(bias * float(1 << (config.act_frac + shift)))
        saturated_biases += int(((fixed_bias < config.bias_min) |
                                 (fixed_bias > config.bias_max)).sum())
        fixed_bias = np.clip(fixed_bias, config.bias_min, config.bias_max)
        low, high = float(layer_inputs[number].min()), float(layer_inputs[number].max())
        ranges.append((low, high))
        hidden_centroids = None
        if layer.recurrent is not None:
            # h_{t-1}: the layer's outputs one step late, from zero.
            hidden = layer_inputs[number + 1]
            hidden_centroids = (_linear_centroids(config, min(0.0, float(hidden.min())),
                                                  max(0.0, float(hidden.max())))
                                if config.reuse else np.zeros(0, np.int64))
        layers.append(FixedLayer(
            weights=fixed_weight.astype(np.int64),
            biases=fixed_bias.astype(np.int64),
            centroids=(_linear_centroids(config, low, high) if config.reuse
                       else np.zeros(0, np.int64)),
            shift=shift,
            relu=layer.relu,
            kind=layer.kind,
            geometry=layer.geometry,
            input_map=layer.input_map,
            recurrent=layer.recurrent,
            hidden_centroids=hidden_centroids,
        ))
    return CompiledModel(config=config, network=network, layers=layers, ranges=ranges,
                         saturated_weights=saturated_weights, saturated_biases=saturated_biases)
