"""The float network: one description of a model, whichever file it came from.

A :class:`Network` is the shape of one input frame (without the batch dimension) and an ordered
list of :class:`Layer` s, each of a kind (:class:`~reuse_accel.hw.protocol.LayerKind`: dense
or conv) with its float weights, bias and activation (``relu`` or ``identity``), and for a conv
layer its geometry and pool (:class:`~reuse_accel.hw.layers.conv.ConvGeometry`). It is the float
reference that accuracy is measured against (:meth:`Network.forward`) and what the compiler
calibrates on (:meth:`Network.layer_inputs`). Tensors are in ONNX's order (channels first); a
dense layer takes its input flattened in C order, as ``torch.flatten`` and ONNX ``Flatten`` do.

Loaders
-------
- ``MODEL.npz`` (:meth:`Network.load_npz`): arrays ``w0, b0, w1, b1, ...``; ``w{i}`` has shape
  (outputs, inputs) as in a PyTorch ``Linear``; ReLU sits between layers and the last layer is
  linear; the input is a vector of ``w0``'s inputs.
- ``MODEL.onnx`` (:func:`reuse_accel.sw.onnx_import.load_onnx`): a model exported by
  ``torch.onnx.export``.

:meth:`Network.load` picks the loader from the file name. Every problem with a file raises
:class:`InputError`, whose message names the problem and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from pathlib import Path

import numpy as np

from reuse_accel.hw.layers import input_layout
from reuse_accel.hw.layers.conv import ConvGeometry, MapLayout
from reuse_accel.hw.layers.recurrent import RecurrentShape, SegmentLayout, recurrent_step
from reuse_accel.hw.protocol import LayerKind

__all__ = ["ACTIVATIONS", "InputError", "Layer", "Network", "RECURRENT_KINDS", "check_frames",
           "check_real", "load_frames", "load_labels"]

ACTIVATIONS = ("relu", "identity")
"""What may follow a layer."""


class InputError(ValueError):
    """A model or frame file the accelerator cannot take; the message says what to fix."""


def check_real(array, name: str) -> np.ndarray:
    """``array`` as float64 if it holds real numbers (integers or floats, not bool, complex,
    strings or objects); :class:`InputError` otherwise."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise InputError(f"{name} must hold real numbers, not {array.dtype}")
    return array.astype(np.float64)


@dataclass(eq=False)
class Layer:
    """One float layer.

    Parameters
    ----------
    weight : ndarray
        A dense layer's weights, (outputs, inputs) like a PyTorch ``Linear``; a conv layer's,
        ``(C', C, kh, kw)`` (a 1-D conv's ``(C', C, k)`` is taken as ``(C', C, 1, k)``); a
        recurrent layer's, ``(4H, inputs + H)`` over ``[x_t ; h_{t-1}]``
        (:mod:`reuse_accel.hw.layers.recurrent` gives the gate layout).
    bias : ndarray
        (outputs,) for a dense layer, ``(C',)`` for a conv layer, ``(4H,)`` for a recurrent
        layer.
    activation : str
        ``"relu"`` or ``"identity"``, applied to the layer's output (before a conv layer's
        pool); a recurrent layer's cell has its own (``"identity"``).
    kind : LayerKind
        What the layer computes.
    names : (str, str)
        How the weight and the bias are called where they came from (``("w0", "b0")``, or the
        ONNX node), for error messages.
    geometry : ConvGeometry
        A conv layer's shape (:mod:`reuse_accel.hw.layers.conv`); None for a dense layer.
    input_map : MapLayout
        For a dense layer after a conv layer with several output positions, the map it takes
        flattened (set by :class:`Network`); None otherwise.
    recurrent : RecurrentShape
        An LSTM or GRU layer's shape; None for the other kinds. Each frame is one time step.
    """

    weight: np.ndarray
    bias: np.ndarray
    activation: str = "identity"
    kind: LayerKind = LayerKind.DENSE
    names: tuple[str, str] = ("the weight", "the bias")
    geometry: ConvGeometry | None = None
    input_map: MapLayout | None = None
    recurrent: RecurrentShape | None = None

    def __post_init__(self):
        weight_name, bias_name = self.names
        if self.kind not in RECURRENT_KINDS and self.kind not in (LayerKind.DENSE,
                                                                 LayerKind.CONV):
            raise InputError(f"layer kind {self.kind!r} is not supported")
        if (self.geometry is None) != (self.kind is not LayerKind.CONV):
            raise InputError("a conv layer needs its geometry and other layers have none")
        cell = RECURRENT_KINDS.get(self.kind)
        if cell is None and self.recurrent is not None:
            raise InputError(f"{self.kind.name} layers take no recurrent shape")
        if cell is not None and (self.recurrent is None or self.recurrent.cell != cell):
            raise InputError(f"{self.kind.name} layers need RecurrentShape({cell!r}, inputs, "
                             f"hidden), not {self.recurrent}")
        if self.recurrent is not None and self.activation != "identity":
            raise InputError("a recurrent layer's cell has its own activations; its "
                             "activation must be 'identity'")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"the activation must be one of {', '.join(ACTIVATIONS)}, not "
                             f"{self.activation!r}")
        self.weight = check_real(self.weight, weight_name)
        self.bias = check_real(self.bias, bias_name)
        if self.recurrent is not None:
            expected = (self.recurrent.sums, self.recurrent.fan_in)
            if self.weight.shape != expected:
                raise InputError(f"{weight_name} must have shape {expected} (4 x hidden, "
                                 f"inputs + hidden), not {self.weight.shape}")
        elif self.geometry is None:
            if self.weight.ndim != 2:
                raise InputError(f"{weight_name} must be a 2-D (outputs, inputs) array, not "
                                 f"shape {self.weight.shape}")
        else:
            geometry = self.geometry
            if self.weight.ndim == 3 and geometry.dims == 1:
                self.weight = self.weight[:, :, None, :]
            expected = (geometry.out_channels, geometry.channels, *geometry.kernel)
            if self.weight.shape != expected:
                raise InputError(f"{weight_name} must have shape {expected} for the layer's "
                                 f"geometry, not {self.weight.shape}")
        if self.bias.shape != (self.weight.shape[0],):
            raise InputError(
                f"{bias_name} must have shape ({self.weight.shape[0]},) to match "
                f"{weight_name} {self.weight.shape}, not {self.bias.shape}")
        for name, array in ((weight_name, self.weight), (bias_name, self.bias)):
            if not np.all(np.isfinite(array)):
                raise InputError(f"{name} contains NaN or infinite values")

    @property
    def inputs(self) -> int:
        return self._shape.inputs if self._shape is not None else self.weight.shape[1]

    @property
    def outputs(self) -> int:
        return self._shape.outputs if self._shape is not None else self.weight.shape[0]

    @property
    def _shape(self) -> ConvGeometry | RecurrentShape | None:
        return self.geometry if self.geometry is not None else self.recurrent

    @property
    def input_layout(self) -> MapLayout | SegmentLayout:
        """How the layer's inputs sit in the I/O buffer: a conv layer's map, the map a dense
        layer flattens, or a vector (one position)."""
        return input_layout(self)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input frame as ONNX sees it (``(inputs,)`` for a dense layer)."""
        return (self.inputs,) if self.geometry is None else self.geometry.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.outputs,) if self.geometry is None else self.geometry.output_shape

    @property
    def relu(self) -> bool:
        return self.activation == "relu"

    def forward(self, values: np.ndarray) -> np.ndarray:
        """The layer's outputs for (T, inputs) ``values``, flattened in C order. A recurrent
        layer takes them as one sequence of T time steps from a zero state."""
        geometry = self.geometry
        if self.recurrent is not None:
            return self._sequence(values)
        if geometry is None:
            out = values @ self.weight.T + self.bias
            return np.maximum(out, 0.0) if self.relu else out
        count = len(values)
        maps = values.reshape(count, geometry.channels, geometry.height,
                              geometry.width).transpose(0, 2, 3, 1)
        out = geometry.correlate(maps, self.weight) + self.bias
        if self.relu:
            out = np.maximum(out, 0.0)
        if geometry.pool is not None:
            out = geometry.pool.apply(out, exact=False)
        return out.transpose(0, 3, 1, 2).reshape(count, -1)


    def _sequence(self, values: np.ndarray) -> np.ndarray:
        shape = self.recurrent
        inputs = shape.inputs
        # The input half of every step's product at once; the recurrent half step by step.
        driven = values @ self.weight[:, :inputs].T + self.bias
        recurrent = self.weight[:, inputs:]
        hidden = np.zeros(shape.hidden)
        state = np.zeros(shape.hidden)
        out = np.empty((len(values), shape.hidden))
        for t, sums in enumerate(driven):
            hidden, state = recurrent_step(shape, sums + recurrent @ hidden, state, hidden)
            out[t] = hidden
        return out


RECURRENT_KINDS = {LayerKind.LSTM: "lstm", LayerKind.GRU: "gru"}
"""The recurrent layer kinds and their cells."""


@dataclass(eq=False)
class Network:
    """A float network: the input frame's shape and the layers that follow one another.

    ``input_shape`` excludes the batch dimension; the first layer takes its
    ``prod(input_shape)`` values flattened in C order.
    """

    input_shape: tuple[int, ...]
    layers: list[Layer] = field(default_factory=list)

    def __post_init__(self):
        self.input_shape = tuple(int(size) for size in self.input_shape)
        self.layers = list(self.layers)
        if not self.input_shape or min(self.input_shape) < 1:
            raise InputError(f"the input shape must hold positive sizes, not "
                             f"{self.input_shape}")
        if not self.layers:
            raise InputError("the model has no layers")
        shape = self.input_shape
        for number, layer in enumerate(self.layers):
            source = (f"the input shape {shape} holds {prod(shape)} values" if not number else
                      f"layer {number - 1} has {prod(shape)} outputs")
            if layer.geometry is not None and layer.input_shape != shape:
                raise InputError(f"{layer.names[0]} takes a map of shape {layer.input_shape} "
                                 f"but {source} of shape {shape}")
            if layer.inputs != prod(shape):
                raise InputError(f"{layer.names[0]} takes {layer.inputs} inputs but {source}")
            if layer.kind is LayerKind.DENSE:
                previous = self.layers[number - 1].geometry if number else None
                layer.input_map = (previous.output_layout if previous is not None and
                                   previous.output_layout.positions > 1 else None)
            shape = layer.output_shape

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_weights(cls, weights, biases) -> Network:
        """The ``.npz`` form: dense layers ``w{i}, b{i}``, ReLU between them, the last linear.
        """
        if not len(weights):
            raise InputError("the model has no layers: it needs at least w0 and b0")
        count = len(weights)
        layers = [Layer(weight, bias, "relu" if number < count - 1 else "identity",
                        names=(f"w{number}", f"b{number}"))
                  for number, (weight, bias) in enumerate(zip(weights, biases))]
        weight = layers[0].weight
        return cls((weight.shape[1],), layers)

    @classmethod
    def load(cls, path: str | Path) -> Network:
        """A model file: ``.onnx`` through the ONNX importer, anything else as ``.npz``."""
        path = Path(path)
        if path.suffix.lower() == ".onnx":
            from .onnx_import import load_onnx
            return load_onnx(path)
        return cls.load_npz(path)

    @classmethod
    def load_npz(cls, path: str | Path) -> Network:
        """``MODEL.npz`` with ``w0, b0, w1, b1, ...`` (see the module docstring)."""
        path = Path(path)
        archive = _np_load(path, "model", ".npz archive")
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise InputError(
                f"model file {str(path)!r} is a single array, not a NumPy .npz archive of "
                "w0, b0, w1, b1, ... (save it with numpy.savez)")
        with archive:
            names = set(archive.files)
            weights, biases = [], []
            while f"w{len(weights)}" in names:
                number = len(weights)
                if f"b{number}" not in names:
                    raise InputError(f"model file {str(path)!r} has w{number} but no b{number}")
                weights.append(check_real(archive[f"w{number}"], f"w{number}"))
                biases.append(check_real(archive[f"b{number}"], f"b{number}"))
            extra = sorted(names - {f"{kind}{n}" for n in range(len(weights)) for kind in "wb"})
            if not weights:
                raise InputError(
                    f"model file {str(path)!r} has no w0: expected arrays w0, b0, w1, b1, ...")
            if extra:
                raise InputError(
                    f"model file {str(path)!r} has unexpected arrays {', '.join(extra)}: "
                    f"expected w0..w{len(weights) - 1} and b0..b{len(weights) - 1} only")
        return cls.from_weights(weights, biases)

    def save_npz(self, path: str | Path) -> None:
        """Write the ``.npz`` form (float32); the network must have that form."""
        last = len(self.layers) - 1
        if len(self.input_shape) != 1 or any(
                layer.activation != ("relu" if number < last else "identity")
                for number, layer in enumerate(self.layers)):
            raise InputError("only a network of dense layers on a vector input with ReLU "
                             "between them and a linear last layer has an .npz form")
        arrays = {}
        for number, layer in enumerate(self.layers):
            arrays[f"w{number}"] = layer.weight.astype(np.float32)
            arrays[f"b{number}"] = layer.bias.astype(np.float32)
        np.savez(path, **arrays)

    # -- shapes -----------------------------------------------------------------------------

    @property
    def inputs(self) -> int:
        """Values in one input frame."""
        return prod(self.input_shape)

    @property
    def outputs(self) -> int:
        return self.layers[-1].outputs

    @property
    def sizes(self) -> list[int]:
        """Inputs of the first layer, then every layer's outputs."""
        return [self.layers[0].inputs] + [layer.outputs for layer in self.layers]

    # -- the float reference ----------------------------------------------------------------

    def layer_inputs(self, frames: np.ndarray) -> list[np.ndarray]:
        """The input of every layer for each frame, (T, inputs) each, and the network output
        last. ``frames`` is (T, *input_shape)."""
        frames = np.asarray(frames, dtype=np.float64)
        values = [frames.reshape(len(frames), self.inputs)]
        for layer in self.layers:
            values.append(layer.forward(values[-1]))
        return values

    def forward(self, frames: np.ndarray) -> np.ndarray:
        """(T, outputs) float outputs of (T, *input_shape) frames."""
        return self.layer_inputs(frames)[-1]


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"(T, {', '.join(str(size) for size in shape)})"


def check_frames(frames: np.ndarray, input_shape, source: str = "frames") -> np.ndarray:
    """Validate (T, *input_shape) frames of real numbers; returns them as float64.

    ``input_shape`` is a tuple, or an int for a vector input.
    """
    shape = (input_shape,) if isinstance(input_shape, int | np.integer) else tuple(input_shape)
    frames = np.asarray(frames)
    if not np.issubdtype(frames.dtype, np.number) or np.iscomplexobj(frames):
        raise InputError(f"{source} must hold real numbers, not {frames.dtype}")
    if frames.ndim < 1 or frames.shape[1:] != shape or frames.shape[0] == 0:
        model = (f"a model with {shape[0]} inputs" if len(shape) == 1
                 else f"a model whose input frame is {shape}")
        raise InputError(
            f"{source} must have shape {_shape_text(shape)} with T >= 1 for {model}, not "
            f"{frames.shape}")
    bad = ~np.isfinite(frames)
    if bad.any():
        t, *position = np.argwhere(bad)[0]
        where = position[0] if len(position) == 1 else tuple(int(p) for p in position)
        raise InputError(
            f"{source} contain {int(bad.sum())} NaN or infinite values (first at frame {t}, "
            f"input {where}); clean or impute them before running")
    return frames.astype(np.float64)


def load_frames(path: str | Path, input_shape, what: str = "frames") -> np.ndarray:
    """(T, *input_shape) frames from a ``.npy`` file (see :func:`check_frames`); ``what``
    names them in errors (``"calibration frames"``, say)."""
    path = Path(path)
    frames = _np_load(path, what, ".npy array")
    if not isinstance(frames, np.ndarray):
        frames.close()
        raise InputError(
            f"{what} file {str(path)!r} is an .npz archive; save the (T, inputs) array "
            "with numpy.save")
    return check_frames(frames, input_shape, source=f"{what} in {str(path)!r}")


def load_labels(path: str | Path, frames: int, outputs: int) -> np.ndarray:
    """Per-frame labels, for scoring the outputs: ``frames`` integer class labels (the report
    gives accuracy) or a real ``(frames, outputs)`` array of targets (the report gives the mean
    absolute error)."""
    path = Path(path)
    labels = _np_load(path, "labels", ".npy array")
    if isinstance(labels, np.ndarray):
        if labels.shape == (frames,) and np.issubdtype(labels.dtype, np.integer):
            return labels
        if labels.shape == (frames, outputs) and np.issubdtype(labels.dtype, np.floating):
            if np.isfinite(labels).all():
                return labels.astype(np.float64)
            raise InputError(f"labels in {str(path)!r} contain NaN or infinite values")
        if labels.shape == (frames, outputs) and np.issubdtype(labels.dtype, np.integer):
            raise InputError(
                f"labels in {str(path)!r} are {frames} x {outputs} integers; give class labels "
                f"as {frames} integers, one per frame (for one-hot rows, labels.argmax(axis=1)), "
                "or real targets as floats")
    shape = getattr(labels, "shape", "an archive")
    raise InputError(
        f"labels in {str(path)!r} must be {frames} integers (a class per frame) or "
        f"{frames} x {outputs} real targets (one per output), not {shape}")


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"


def _np_load(path: Path, what: str, kind: str):
    """``np.load`` with the errors a user can act on."""
    name = f"{what} file {str(path)!r}"
    if path.is_dir():
        raise InputError(f"{name} is a directory, not a NumPy {kind}")
    try:
        with open(path, "rb") as file:
            start = file.read(4096)
    except FileNotFoundError:
        raise InputError(f"{name} does not exist") from None
    except OSError as error:
        raise InputError(f"{name} cannot be read: {error.strerror}") from None
    save = "numpy.savez" if kind.endswith("archive") else "numpy.save"
    if not start:
        raise InputError(f"{name} is empty, not a NumPy {kind}")
    if not start.startswith((_NPY_MAGIC, _ZIP_MAGIC)):
        if _is_text(start):
            raise InputError(f"{name} is a text file, not a NumPy {kind}; read the text with "
                             f"numpy.loadtxt and write the array with {save}")
        raise InputError(f"{name} is not a NumPy {kind} (it lacks the NumPy or zip header); "
                         f"write the array with {save}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error):
            raise InputError(f"{name} holds Python objects (pickled data), not numbers; "
                             f"write a numeric array with {save}") from None
        raise InputError(f"{name} is not a NumPy {kind}: {error}") from None
    except (OSError, EOFError) as error:
        raise InputError(f"{name} is not a NumPy {kind}: {error}") from None


def _is_text(start: bytes) -> bool:
    """Whether a file's first bytes look like text (UTF-8 without control characters other
    than whitespace)."""
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError:
        # The 4096-byte window may cut a multi-byte character in two.
        try:
            text = start[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(char.isprintable() or char in "\t\n\r\f\v" for char in text)
