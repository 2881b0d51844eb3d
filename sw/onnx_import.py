"""ONNX models (as ``torch.onnx.export`` writes them) to a :class:`~.network.Network`.

The graph must compute one chain of conv and dense layers from one input:

- ``Conv`` (1-D or 2-D; any kernel, stride and padding, ``auto_pad`` included; dilation 1 and
  one group), optionally followed by an ``Add`` of a per-channel constant: a conv layer;
- ``BatchNormalization`` (inference) right after a ``Conv``, ``Gemm`` or ``MatMul``: folded
  into its weights and bias;
- ``MaxPool``, ``AveragePool`` (``ceil_mode = 0``, either ``count_include_pad``) and
  ``GlobalAveragePool`` after a conv layer (its activation, if any, comes first): the layer's
  pool. A ``ReduceMean`` over every spatial axis is a ``GlobalAveragePool`` (the dynamo
  exporter's ``AdaptiveAvgPool(1)``). A ``Relu`` after a ``MaxPool`` runs before it (they
  commute);
- ``Gemm`` (``transA = 0``, either ``transB``; ``alpha`` and ``beta`` are folded into the
  weights and the bias), or ``MatMul`` by a constant weight matrix, optionally followed by an
  ``Add`` of a constant bias: a dense layer;
- ``Relu`` after a layer: its activation (a layer without one is linear);
- ``Flatten`` (``axis = 1``) and ``Reshape`` to ``(N, features)``: the dense layers take their
  input flattened in C order (channels first, as PyTorch does);
- ``Identity`` and ``Dropout`` (inference: identity);
- ``LSTM`` and ``GRU`` (forward, batch 1, default activations, no clip, no peepholes, a zero
  or absent initial state, ``input_forget = 0``; a GRU with ``linear_before_reset = 1``,
  PyTorch's form): a recurrent layer (:mod:`reuse_accel.hw.layers.recurrent`). The graph
  input is then a sequence, ``(T, N, features)`` or ``(N, T, features)`` (``batch_first``; the
  ``Transpose`` nodes between the input and the first recurrent node say which), and each frame
  is one time step. ``Transpose`` may move the time, batch and direction axes, ``Squeeze`` and
  ``Reshape`` may drop the direction axis (size 1), and dense layers after a recurrent layer
  act on every time step.

Local functions (as some exporters write blocks of a model) are inlined first.

The graph input is ``(N, *input_shape)``, ``N`` the batch dimension (symbolic, or 1); the
network runs one frame of ``input_shape`` at a time, so wherever the graph reads the batch size
(``Shape``) it is 1 (and the number of time steps of a sequence input, the length it was
exported with, or 1 if that is symbolic). Initializers and constant subgraphs (``Constant``,
``Shape`` of a computed tensor, and any node whose inputs are all constant, such as a
``Transpose`` or ``Cast`` of an initializer or a ``Concat`` of shapes) are evaluated with
:class:`onnx.reference.ReferenceEvaluator` and folded.

Anything else raises :class:`~.network.InputError` before anything runs: an unsupported op
names its type, its node and the supported ops; a shape that does not chain names the node,
the tensors and their shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import inliner, numpy_helper
from onnx.reference import ReferenceEvaluator

from reuse_accel.hw.layers.conv import ConvGeometry, Pool
from reuse_accel.hw.layers.recurrent import RecurrentShape
from reuse_accel.hw.protocol import LayerKind

from .network import InputError, Layer, Network, check_real

__all__ = ["SUPPORTED_OPS", "load_onnx", "network_from_onnx"]

SUPPORTED_OPS = ("Conv", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
                 "ReduceMean", "Gemm", "MatMul", "Add", "Relu", "Identity", "Dropout", "Flatten",
                 "Reshape", "LSTM", "GRU", "Transpose", "Squeeze")
"""Ops that may act on tensors computed from the input (constant subgraphs may use any op)."""

_SUPPORTED_TEXT = (f"supported ops are {', '.join(SUPPORTED_OPS)} (BatchNormalization and Add "
                   "only right after a Conv, MatMul or Gemm, pools only after a Conv, "
                   "ReduceMean only over a Conv's spatial axes, Reshape only to (N, "
                   "features), Transpose and Squeeze only of a sequence's time, batch and "
                   "direction axes); constant subgraphs are folded")
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16")


@dataclass(frozen=True)
class _Pending:
    """A layer being assembled: ``open`` while it may still take a bias or a batch norm (no
    activation or pool yet). ``geometry`` is a conv layer's (its pool included), None for a
    dense layer."""

    weight: np.ndarray
    bias: np.ndarray
    activation: str
    node: str
    open: bool
    geometry: ConvGeometry | None = None
    recurrent: RecurrentShape | None = None

    @property
    def outputs(self) -> int:
        return self.weight.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the layer's output, per frame."""
        if self.recurrent is not None:
            return self.recurrent.output_shape
        return (self.outputs,) if self.geometry is None else self.geometry.output_shape


@dataclass(frozen=True)
class _Value:
    """A tensor computed from the graph input: its shape per frame, the layers so far, and the
    ONNX axes before the per-frame ones (``prefix``): ``"N"`` the batch, and for a sequence
    ``"T"`` its time steps and ``"D"`` a recurrent node's directions (always 1)."""

    shape: tuple[int, ...]
    layers: tuple[_Pending, ...] = ()
    prefix: tuple[str, ...] = ("N",)

    @property
    def features(self) -> int:
        return prod(self.shape)

    @property
    def last_open(self) -> bool:
        return bool(self.layers) and self.layers[-1].open

    @property
    def is_last_output(self) -> bool:
        """Whether this is the last layer's output as it computed it (not flattened)."""
        return bool(self.layers) and self.shape == self.layers[-1].shape

    def with_layer(self, layer: _Pending) -> _Value:
        closed = self.layers
        if self.last_open:
            closed = closed[:-1] + (replace(closed[-1], open=False),)
        return _Value(layer.shape, closed + (layer,), self.prefix)

    def with_last(self, **changes) -> _Value:
        last = replace(self.layers[-1], **changes)
        shape = last.shape if self.is_last_output else self.shape
        return _Value(shape, self.layers[:-1] + (last,), self.prefix)


def load_onnx(path: str | Path) -> Network:
    """Read ``MODEL.onnx`` and convert it (see the module docstring)."""
    path = Path(path)
    name = f"model file {str(path)!r}"
    if path.is_dir():
        raise InputError(f"{name} is a directory, not an ONNX model")
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise InputError(f"{name} does not exist") from None
    except (DecodeError, ValueError, RuntimeError, OSError) as error:
        raise InputError(f"{name} is not an ONNX model ({error}); export it with "
                         "torch.onnx.export") from None
    if not model.graph.node and not model.graph.input:
        raise InputError(f"{name} is not an ONNX model (it holds no graph); export it with "
                         "torch.onnx.export")
    return network_from_onnx(model)


def network_from_onnx(model) -> Network:
    """Convert an :class:`onnx.ModelProto` (see the module docstring)."""
    if model.functions:
        model = inliner.inline_local_functions(model)
    graph = model.graph
    opset = next((entry.version for entry in model.opset_import
                  if entry.domain in ("", "ai.onnx")), None)
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    if graph.sparse_initializer:
        raise InputError("the model has sparse initializers; export it with dense weights")
    values: dict[str, _Value] = {}

    inputs = [value for value in graph.input if value.name not in constants]
    if len(inputs) != 1:
        listed = ", ".join(repr(value.name) for value in inputs) or "none"
        raise InputError(f"the model has {len(inputs)} inputs ({listed}); the accelerator "
                         "takes one input tensor")
    graph_input = inputs[0]
    prefix = _sequence_prefix(graph, graph_input.name)
    input_shape, steps = _input_shape(graph_input, prefix)
    values[graph_input.name] = _Value(input_shape, prefix=prefix)
    consumed = {name for node in graph.node for name in node.input} | \
        {value.name for value in graph.output}

    for index, node in enumerate(graph.node):
        label = _label(node, index)
        present = [name for name in node.input if name]
        for name in present:
            if name not in constants and name not in values:
                raise InputError(
                    f"{label} reads {name!r}, which is neither the model input, an "
                    "initializer, nor the output of a node before it")
        data = [name for name in present if name in values]
        if not data:
            _fold(node, label, constants, opset)
            continue
        if node.op_type == "Shape" and node.domain in ("", "ai.onnx"):
            constants[node.output[0]] = _shape_of(node, values[data[0]], steps)
            continue
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            op = node.op_type if node.domain in ("", "ai.onnx") else \
                f"{node.domain}.{node.op_type}"
            raise InputError(f"unsupported ONNX op {op} ({label}); {_SUPPORTED_TEXT}")
        extra = [name for name in node.output[1:] if name and name in consumed]
        if extra:
            raise InputError(f"{label} has its output {extra[0]!r} used; only its first "
                             "output (the values per frame) is supported")
        handler = _HANDLERS[node.op_type]
        values[node.output[0]] = handler(node, label, values, constants)

    if len(graph.output) != 1:
        listed = ", ".join(repr(value.name) for value in graph.output)
        raise InputError(f"the model has {len(graph.output)} outputs ({listed}); the "
                         "accelerator computes one output tensor")
    output = graph.output[0].name
    if output not in values:
        raise InputError(f"the model output {output!r} does not depend on the model input")
    result = values[output]
    if not result.layers:
        raise InputError(f"the model computes no layer between its input and its output "
                         f"{output!r}: it needs a Gemm or a MatMul")
    if "D" in result.prefix:
        source = next(layer.node for layer in reversed(result.layers)
                      if layer.recurrent is not None)
        raise InputError(f"the model output {output!r} keeps the direction axis (axis "
                         f"{result.prefix.index('D')}) of {source}'s output; add a Squeeze of "
                         "that axis after it")
    return Network(input_shape, [_layer(layer) for layer in result.layers])


def _layer(layer: _Pending) -> Layer:
    if layer.recurrent is not None:
        kind = LayerKind.LSTM if layer.recurrent.cell == "lstm" else LayerKind.GRU
    else:
        kind = LayerKind.DENSE if layer.geometry is None else LayerKind.CONV
    return Layer(layer.weight, layer.bias, layer.activation, kind,
                 names=(f"the weight of {layer.node}", f"the bias of {layer.node}"),
                 geometry=layer.geometry, recurrent=layer.recurrent)


def _label(node, index: int) -> str:
    """How errors name the graph's node number ``index``."""
    return (f"{node.op_type} node {node.name!r}" if node.name else
            f"{node.op_type} node #{index} (unnamed)")


def _sequence_prefix(graph, input_name: str) -> tuple[str, ...]:
    """The graph input's leading axes: ``("N",)``, or for a model with a recurrent node the
    time and batch axes in the order they reach the first one (through ``Transpose`` and
    ``Identity`` nodes), which reads them as ``layout`` says."""
    first = next((node for node in graph.node if node.op_type in ("LSTM", "GRU")), None)
    if first is None:
        return ("N",)
    roles = ["N", "T"] if _attributes(first).get("layout", 0) else ["T", "N"]
    producers = {name: node for node in graph.node for name in node.output}
    index = {id(node): number for number, node in enumerate(graph.node)}
    name = first.input[0]
    while name != input_name:
        node = producers.get(name)
        if node is None or node.op_type not in ("Transpose", "Identity"):
            what = "an initializer" if node is None else _label(node, index[id(node)])
            raise InputError(f"{_label(first, index[id(first)])} reads its sequence from "
                             f"{what}; the first recurrent node must read the model input, "
                             "transposed at most")
        if node.op_type == "Transpose":
            perm = list(_attributes(node).get("perm", [2, 1, 0]))
            if perm[2:] != [2] or sorted(perm) != [0, 1, 2]:
                raise InputError(f"{_label(node, index[id(node)])} moves the features of the "
                                 f"sequence (perm={perm}); only the time and batch axes may "
                                 "move")
            before = [""] * 2
            for position, source in enumerate(perm[:2]):
                before[source] = roles[position]
            roles = before
        name = node.input[0]
    return tuple(roles)


def _input_shape(value, prefix: tuple[str, ...]) -> tuple[tuple[int, ...], int]:
    """The graph input's shape per frame (without its batch and time dimensions), and the
    number of time steps it was exported with (1 if symbolic or not a sequence)."""
    name = repr(value.name)
    if not value.type.HasField("tensor_type"):
        raise InputError(f"the model input {name} is not a tensor")
    tensor = value.type.tensor_type
    element = onnx.TensorProto.DataType.Name(tensor.elem_type)
    if element not in _FLOAT_TYPES:
        raise InputError(f"the model input {name} holds {element}; the accelerator takes "
                         "real-valued (float) frames")
    if not tensor.HasField("shape"):
        raise InputError(f"the model input {name} has no shape; export it with a fixed "
                         "input shape (N, ...)")
    dims = [dim.dim_value if dim.HasField("dim_value") else dim.dim_param or "?"
            for dim in tensor.shape.dim]
    shown = "(" + ", ".join(str(dim) for dim in dims) + ("," if len(dims) == 1 else "") + ")"
    if len(prefix) > 1 and len(dims) != 3:
        raise InputError(f"the model input {name} has shape {shown}; a recurrent model takes "
                         "a sequence of vectors, (T, N, features) or (N, T, features)")
    if len(dims) < 2:
        raise InputError(f"the model input {name} has shape {shown}; the accelerator needs a "
                         "batch dimension first, (N, features...)")
    batch = dims[prefix.index("N")]
    if isinstance(batch, int) and batch != 1:
        raise InputError(f"the model input {name} has a fixed batch of {batch}, shape "
                         f"{shown}; export it with a batch of 1 or a symbolic batch dimension")
    for position, dim in enumerate(dims[len(prefix):], start=len(prefix)):
        if not isinstance(dim, int) or dim < 1:
            fixed = ("batch dimension" if len(prefix) == 1 else
                     "batch and time dimensions")
            raise InputError(
                f"the model input {name} has shape {shown}: dimension {position} is "
                f"{dim!r}, not a fixed size; export it with a fixed shape except for the "
                f"{fixed}")
    steps = dims[prefix.index("T")] if "T" in prefix else 1
    return tuple(dims[len(prefix):]), steps if isinstance(steps, int) else 1


def _fold(node, label: str, constants: dict, opset: int | None) -> None:
    """Evaluate a node whose inputs are all constant and keep its outputs as constants."""
    opsets = {"": opset} if opset is not None else None
    feeds = {name: constants[name] for name in node.input if name}
    try:
        results = ReferenceEvaluator(node, opsets=opsets).run(None, feeds)
    except Exception as error:   # the evaluator raises whatever the op raises
        raise InputError(f"{label} computes a constant that cannot be evaluated ({error}); "
                         f"{_SUPPORTED_TEXT}") from None
    for name, result in zip(node.output, results):
        if name:
            constants[name] = np.asarray(result)


def _shape_of(node, value: _Value, steps: int) -> np.ndarray:
    """``Shape`` of a computed tensor, for one frame (batch 1; a sequence's ``steps``)."""
    shape = [steps if axis == "T" else 1 for axis in value.prefix] + list(value.shape)
    attributes = _attributes(node)
    return np.array(shape[slice(attributes.get("start", 0), attributes.get("end", len(shape)))],
                    dtype=np.int64)


def _attributes(node) -> dict:
    return {attribute.name: onnx.helper.get_attribute_value(attribute)
            for attribute in node.attribute}


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["N", *(str(size) for size in shape)]) + ")"


def _vector(node, label: str, value: _Value) -> int:
    """Features of a per-frame vector; a shape error for anything with more dimensions."""
    if len(value.shape) != 1:
        raise InputError(
            f"{label} takes a tensor of shape {_shape_text(value.shape)}; dense layers take "
            f"vectors: flatten it to (N, {value.features}) first with Flatten or Reshape")
    return value.shape[0]


def _weights(node, label: str, name: str, constants: dict) -> np.ndarray:
    if name not in constants:
        raise InputError(f"{label} multiplies two computed tensors; only weights that are "
                         "constants (initializers) are supported")
    return check_real(constants[name], f"the weight {name!r} of {label}")


def _bias(label: str, name: str, constant, outputs: int) -> np.ndarray:
    constant = check_real(constant, f"the bias {name!r} of {label}")
    try:
        fits = np.broadcast_shapes(constant.shape, (1, outputs)) == (1, outputs)
    except ValueError:
        fits = False
    if not fits:
        raise InputError(f"the bias {name!r} of {label} has shape {constant.shape}, which "
                         f"does not broadcast to the layer's {outputs} outputs")
    return np.broadcast_to(constant, (1, outputs))[0].copy()


# -- op handlers: (node, label, values, constants) -> the output value ------------------------

def _pass_through(node, label, values, constants) -> _Value:
    return values[node.input[0]]


def _dropout(node, label, values, constants) -> _Value:
    if len(node.input) > 2 and node.input[2]:
        mode = node.input[2]
        if mode in values or bool(np.asarray(constants[mode]).any()):
            raise InputError(f"{label} runs in training mode; export the model in inference "
                             "mode (model.eval())")
    return values[node.input[0]]


def _flatten(node, label, values, constants) -> _Value:
    value = values[node.input[0]]
    _not_a_sequence(label, value)
    rank = len(value.shape) + 1
    axis = _attributes(node).get("axis", 1)
    if (axis + rank if axis < 0 else axis) != 1:
        raise InputError(f"{label} has axis={axis}; only axis=1 (keep the batch dimension, "
                         "flatten the rest) is supported")
    return _Value((value.features,), value.layers)


def _reshape(node, label, values, constants) -> _Value:
    value = values[node.input[0]]
    target = node.input[1]
    if target not in constants:
        raise InputError(f"{label} takes its target shape from the model input; only a "
                         "constant shape is supported")
    shape = [int(size) for size in np.asarray(constants[target]).reshape(-1)]
    allowzero = _attributes(node).get("allowzero", 0)
    if value.prefix != ("N",):
        return _reshape_sequence(node, label, value, shape, allowzero)
    # One frame at a time: the batch is 1.
    source = [1, *value.shape]
    resolved = []
    for position, size in enumerate(shape):
        if size == 0 and not allowzero:
            size = source[position] if position < len(source) else None
        resolved.append(size)
    if resolved.count(-1) == 1 and None not in resolved:
        known = prod(size for size in resolved if size != -1)
        if known and value.features % known == 0:
            resolved[resolved.index(-1)] = value.features // known
    if resolved != [1, value.features]:
        raise InputError(
            f"{label} reshapes {_shape_text(value.shape)} to {tuple(shape)}; only a reshape to "
            f"a vector per frame, (N, {value.features}), is supported")
    return _Value((value.features,), value.layers)


def _reshape_sequence(node, label, value: _Value, shape: list[int], allowzero) -> _Value:
    """A Reshape of a sequence: it keeps the time and batch axes in their order, or merges
    them (``(-1, features)``: the batch is 1), and drops the direction axis (size 1); the
    per-frame part becomes a vector."""
    kept = tuple(axis for axis in value.prefix if axis != "D")
    text = _value_text(value)
    if len(shape) == 2 and len(kept) == 2 and shape[0] != 0 and \
            (shape[1] == value.features or shape[1] == -1 != shape[0]):
        # (-1, features): time and batch (1) merged, as PyTorch's out.reshape(-1, H) writes.
        return _Value((value.features,), value.layers, ("T",))
    source = [None if axis == "T" else 1 for axis in value.prefix] + list(value.shape)
    if len(shape) != len(kept) + 1:
        raise InputError(f"{label} reshapes {text} to {tuple(shape)}; a sequence may only "
                         f"be reshaped to {_axes_text(kept)}, features)")
    resolved = []
    for position, size in enumerate(shape):
        if size == 0 and not allowzero:
            size = source[position] if position < len(source) else -2
        resolved.append(size)
    for position, axis in enumerate(kept):
        # The time axis is as long as the export's (the graph's constant says so) or copied.
        if axis == "N" and resolved[position] not in (1, -1) or \
                axis == "T" and resolved[position] is not None and resolved[position] < -1:
            raise InputError(f"{label} reshapes {text} to {tuple(shape)}; a sequence may only "
                             f"be reshaped to {_axes_text(kept)}, features)")
    if resolved[-1] not in (value.features, -1) or \
            [size for size in resolved if size == -1].count(-1) > 1:
        raise InputError(f"{label} reshapes {text} to {tuple(shape)}; a sequence may only be "
                         f"reshaped to {_axes_text(kept)}, {value.features})")
    return _Value((value.features,), value.layers, kept)


def _transpose(node, label, values, constants) -> _Value:
    """A Transpose that moves only a sequence's time, batch and direction axes."""
    value = values[node.input[0]]
    rank = len(value.prefix) + len(value.shape)
    perm = list(_attributes(node).get("perm", range(rank - 1, -1, -1)))
    count = len(value.prefix)
    if value.prefix == ("N",) or sorted(perm) != list(range(rank)) or \
            perm[count:] != list(range(count, rank)):
        raise InputError(f"{label} transposes {_value_text(value)} with perm={perm}; only a "
                         "Transpose of a sequence's time, batch and direction axes is "
                         "supported")
    return replace(value, prefix=tuple(value.prefix[source] for source in perm[:count]))


def _axes(node, label: str, constants: dict) -> list[int]:
    """The axes of a Squeeze or ReduceMean: a constant second input (newer opsets) or the
    ``axes`` attribute."""
    if len(node.input) > 1 and node.input[1]:
        if node.input[1] not in constants:
            raise InputError(f"{label} takes its axes from the model input; only constant "
                             "axes are supported")
        return [int(axis) for axis in np.asarray(constants[node.input[1]]).reshape(-1)]
    return list(_attributes(node).get("axes", []))


def _squeeze(node, label, values, constants) -> _Value:
    """A Squeeze of a recurrent node's direction axis."""
    value = values[node.input[0]]
    axes = _axes(node, label, constants)
    rank = len(value.prefix) + len(value.shape)
    axes = sorted({axis % rank for axis in axes})
    if not axes or any(axis >= len(value.prefix) or value.prefix[axis] != "D"
                       for axis in axes):
        raise InputError(f"{label} squeezes axes {axes or 'of size 1'} of "
                         f"{_value_text(value)}; only a Squeeze of a recurrent node's direction "
                         "axis is supported")
    prefix = tuple(axis for position, axis in enumerate(value.prefix) if position not in axes)
    return replace(value, prefix=prefix)


_RECURRENT_GATES = {"LSTM": 4, "GRU": 3}
_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def _recurrent(node, label, values, constants) -> _Value:
    """An LSTM or GRU node: a recurrent layer over the sequence it reads, one time step per
    frame (see :mod:`reuse_accel.hw.layers.recurrent` for the weight layout)."""
    op = node.op_type
    attributes = _attributes(node)
    names = list(node.input) + [""] * (8 - len(node.input))
    x, w, r, b, lengths, initial_h = names[:6]
    if x not in values:
        raise InputError(f"{label} runs over a constant sequence; only the computed tensor "
                         "as X is supported")
    value = values[x]
    layout = attributes.get("layout", 0)
    expected = ("N", "T") if layout else ("T", "N")
    if value.prefix != expected or len(value.shape) != 1:
        raise InputError(f"{label} (layout={layout}) reads {_value_text(value)}; it needs a "
                         f"sequence {_axes_text(expected)}, features)")
    direction = attributes.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction != "forward":
        raise InputError(f"{label} has direction={direction!r}; only 'forward' is supported: "
                         "a bidirectional or reverse layer needs the whole sequence before its "
                         "first output, which streaming one frame per time step cannot give")
    activations = [name.decode() if isinstance(name, bytes) else name
                   for name in attributes.get("activations", _DEFAULT_ACTIVATIONS[op])]
    if [name.lower() for name in activations] != \
            [name.lower() for name in _DEFAULT_ACTIVATIONS[op]]:
        raise InputError(f"{label} has activations={activations}; only the defaults "
                         f"{_DEFAULT_ACTIVATIONS[op]} are supported")
    for name in ("activation_alpha", "activation_beta", "clip"):
        if name in attributes:
            raise InputError(f"{label} has {name}={attributes[name]}; only the default "
                             "activations without a clip are supported")
    if op == "LSTM" and attributes.get("input_forget", 0):
        raise InputError(f"{label} has input_forget=1 (coupled input and forget gates); only "
                         "input_forget=0 is supported")
    if op == "GRU" and attributes.get("linear_before_reset", 0) != 1:
        raise InputError(f"{label} has linear_before_reset=0: its candidate gate multiplies "
                         "r into h before the recurrent weights, so that product changes "
                         "whenever r does and cannot be corrected by deltas; only "
                         "linear_before_reset=1 (PyTorch's GRU) is supported")
    if lengths:
        raise InputError(f"{label} takes sequence_lens; only whole sequences (no "
                         "sequence_lens input) are supported")
    states = [(initial_h, "initial_h")] + ([(names[6], "initial_c")] if op == "LSTM" else [])
    for name, what in states:
        if not name:
            continue
        if name not in constants:
            raise InputError(f"{label} takes its {what} from the model input; only a zero "
                             "initial state is supported (a sequence starts from h = 0, c = 0)")
        if np.any(np.asarray(constants[name]) != 0):
            raise InputError(f"{label} has a nonzero {what}; only a zero initial state is "
                             "supported (a sequence starts from h = 0, c = 0)")
    if op == "LSTM" and names[7]:
        if names[7] not in constants or np.any(np.asarray(constants[names[7]]) != 0):
            raise InputError(f"{label} has peepholes (input P); only an LSTM without "
                             "peepholes is supported")
    if "hidden_size" not in attributes:
        raise InputError(f"{label} has no hidden_size attribute; export it with hidden_size "
                         "set (PyTorch always sets it)")
    hidden = int(attributes["hidden_size"])
    gates = _RECURRENT_GATES[op]
    features = value.shape[0]
    weight = _weights(node, label, w, constants)
    recurrent = _weights(node, label, r, constants)
    for name, array, width in ((w, weight, features), (r, recurrent, hidden)):
        if array.shape != (1, gates * hidden, width):
            raise InputError(f"the weight {name!r} of {label} has shape {array.shape}, not "
                             f"(1, {gates * hidden}, {width}) for hidden_size={hidden} over "
                             f"{features} inputs")
    bias = np.zeros(2 * gates * hidden)
    if b:
        if b not in constants:
            raise InputError(f"{label} takes its bias B from the model input; only a constant "
                             "bias is supported")
        bias = check_real(constants[b], f"the bias {b!r} of {label}").reshape(-1)
        if bias.shape != (2 * gates * hidden,):
            raise InputError(f"the bias {b!r} of {label} has {bias.size} values, not "
                             f"{2 * gates * hidden}")
    weight, recurrent = weight[0], recurrent[0]
    input_bias, recurrent_bias = bias[:gates * hidden], bias[gates * hidden:]
    if op == "LSTM":
        # Gates i, o, f, c over [x ; h].
        matrix = np.concatenate([weight, recurrent], axis=1)
        total = input_bias + recurrent_bias
        shape = RecurrentShape("lstm", features, hidden)
    else:
        # z and r over [x ; h]; the candidate's input part n_x over x and recurrent part n_h
        # over h, apart.
        z_r = slice(0, 2 * hidden)
        n = slice(2 * hidden, 3 * hidden)
        matrix = np.zeros((4 * hidden, features + hidden))
        matrix[z_r, :features], matrix[z_r, features:] = weight[z_r], recurrent[z_r]
        matrix[2 * hidden:3 * hidden, :features] = weight[n]
        matrix[3 * hidden:, features:] = recurrent[n]
        total = np.concatenate([input_bias[z_r] + recurrent_bias[z_r], input_bias[n],
                                recurrent_bias[n]])
        shape = RecurrentShape("gru", features, hidden)
    layer = _Pending(matrix, total, "identity", label, False, recurrent=shape)
    # Y: (T, directions, N, H), or (N, T, directions, H) with layout 1.
    prefix = ("N", "T", "D") if layout else ("T", "D", "N")
    return replace(value.with_layer(layer), prefix=prefix)


def _not_a_sequence(label: str, value: _Value) -> None:
    if value.prefix == ("N",):
        return
    if any(layer.recurrent is not None for layer in value.layers):
        raise InputError(f"{label} takes {_value_text(value)}, a sequence; after a recurrent "
                         "layer only dense layers (MatMul, Gemm with Add), Relu and the "
                         "sequence's Transpose, Squeeze and Reshape are supported")
    raise InputError(f"{label} takes {_value_text(value)}, the input sequence; before the "
                     "first recurrent layer only the sequence's Transpose is supported")


def _axes_text(axes: tuple[str, ...]) -> str:
    return "(" + ", ".join(axes)


def _value_text(value: _Value) -> str:
    names = [axis if axis != "D" else "1" for axis in value.prefix]
    return "(" + ", ".join(names + [str(size) for size in value.shape]) + ")"


def _gemm(node, label, values, constants) -> _Value:
    a, b = node.input[0], node.input[1]
    c = node.input[2] if len(node.input) > 2 else ""
    if a not in values:
        raise InputError(f"{label} multiplies a constant by the computed tensor; only "
                         "tensor x weights (the computed tensor as A) is supported")
    attributes = _attributes(node)
    alpha, beta = attributes.get("alpha", 1.0), attributes.get("beta", 1.0)
    trans_a, trans_b = attributes.get("transA", 0), attributes.get("transB", 0)
    if trans_a:
        raise InputError(f"{label} has transA={trans_a}, which would multiply across the "
                         "batch; only transA=0 is supported")
    if c in values:
        raise InputError(f"{label} adds a computed tensor as C; only a constant bias is "
                         "supported")
    value = values[a]
    features = _vector(node, label, value)
    weight = _weights(node, label, b, constants)
    if weight.ndim != 2:
        raise InputError(f"the weight {b!r} of {label} has shape {weight.shape}; Gemm needs "
                         "a 2-D B")
    matrix = weight.T if trans_b else weight              # (inputs, outputs)
    if matrix.shape[0] != features:
        raise InputError(
            f"the weight {b!r} of {label} has shape {weight.shape} (transB={trans_b}), so it "
            f"takes {matrix.shape[0]} inputs, but the tensor it multiplies has "
            f"{_shape_text(value.shape)}")
    outputs = matrix.shape[1]
    bias = _bias(label, c, constants[c], outputs) * beta if c else np.zeros(outputs)
    return value.with_layer(_Pending(alpha * matrix.T, bias, "identity", label, True))


def _matmul(node, label, values, constants) -> _Value:
    a, b = node.input
    if a not in values:
        raise InputError(f"{label} multiplies a constant by the computed tensor; only "
                         "tensor x weights (the computed tensor on the left) is supported")
    value = values[a]
    features = _vector(node, label, value)
    weight = _weights(node, label, b, constants)
    if weight.ndim != 2:
        raise InputError(f"the weight {b!r} of {label} has shape {weight.shape}; a dense "
                         "layer needs a 2-D (inputs, outputs) matrix")
    if weight.shape[0] != features:
        raise InputError(
            f"the weight {b!r} of {label} has shape {weight.shape}, so it takes "
            f"{weight.shape[0]} inputs, but the tensor it multiplies has "
            f"{_shape_text(value.shape)}")
    return value.with_layer(_Pending(weight.T, np.zeros(weight.shape[1]), "identity", label,
                                     True))


def _add(node, label, values, constants) -> _Value:
    computed = [name for name in node.input if name in values]
    if len(computed) != 1:
        raise InputError(f"{label} adds two computed tensors; only a constant bias right "
                         "after a Conv, MatMul or Gemm is supported")
    value = values[computed[0]]
    constant = next(name for name in node.input if name != computed[0])
    if not value.last_open or not value.is_last_output:
        where = "the model input" if not value.layers else \
            f"the output of {value.layers[-1].node} after its activation, pool or reshape"
        raise InputError(f"{label} adds a constant to {where}; only a bias right after a "
                         "Conv, MatMul or Gemm is supported")
    last = value.layers[-1]
    if last.geometry is None:
        bias = _bias(label, constant, constants[constant], last.outputs)
    else:
        bias = _channel_constant(label, constant, constants[constant], value.shape,
                                 "a bias")
    return value.with_last(bias=last.bias + bias)


def _channel_constant(label: str, name: str, constant, shape: tuple[int, ...],
                      what: str) -> np.ndarray:
    """A constant that acts on a (C, ...) map one channel at a time: its C values."""
    constant = check_real(constant, f"the constant {name!r} of {label}")
    target = (1, *shape)
    try:
        fits = np.broadcast_shapes(constant.shape, target) == target
    except ValueError:
        fits = False
    per_channel = fits and bool(np.all(
        np.broadcast_to(constant, target).reshape(shape[0], -1) ==
        np.broadcast_to(constant, target).reshape(shape[0], -1)[:, :1]))
    if not per_channel:
        ones = ", ".join("1" for _ in shape[1:])
        raise InputError(f"the constant {name!r} of {label} has shape {constant.shape}; as "
                         f"{what} of a map of shape {_shape_text(shape)} it must hold one "
                         f"value per channel, shape ({shape[0]}, {ones})")
    return np.broadcast_to(constant, target).reshape(shape[0], -1)[:, 0].copy()


def _relu(node, label, values, constants) -> _Value:
    value = values[node.input[0]]
    if not value.layers:
        raise InputError(f"{label} acts on the model input; the accelerator applies ReLU "
                         "only after a layer (Conv, Gemm or MatMul)")
    last = value.layers[-1]
    if last.recurrent is not None and value.is_last_output:
        raise InputError(f"{label} acts on the output of {last.node}; a recurrent layer's "
                         "output has its cell's activations: only a ReLU after a Conv, Gemm "
                         "or MatMul is supported")
    if value.last_open:
        return value.with_last(activation="relu", open=False)
    if last.activation == "identity":      # closed without an activation: by a pool
        if last.geometry.pool.mode == "max":
            # ReLU commutes with a max: it runs before the pool.
            return value.with_last(activation="relu")
        raise InputError(
            f"{label} follows the AveragePool after {last.node}, which has no activation; the "
            "accelerator applies ReLU before the pool: move the ReLU before the AveragePool")
    return value          # a ReLU of a ReLU output (a new layer always starts open)


def _batch_norm(node, label, values, constants) -> _Value:
    value = values[node.input[0]]
    attributes = _attributes(node)
    if attributes.get("training_mode", 0) or len([name for name in node.output if name]) > 1:
        raise InputError(f"{label} runs in training mode; export the model in inference "
                         "mode (model.eval())")
    if not value.last_open or not value.is_last_output:
        where = "the model input" if not value.layers else \
            f"the output of {value.layers[-1].node} after its activation, pool or reshape"
        raise InputError(f"{label} normalizes {where}; only a BatchNormalization right after "
                         "a Conv, Gemm or MatMul is supported (it is folded into its weights)")
    parameters = []
    for name in node.input[1:5]:
        if name not in constants:
            raise InputError(f"{label} takes its parameter {name!r} from the model input; "
                             "only constant parameters can be folded")
        parameters.append(check_real(constants[name], f"the parameter {name!r} of {label}"))
    channels = value.shape[0]
    for name, parameter in zip(node.input[1:5], parameters):
        if parameter.shape != (channels,):
            raise InputError(f"the parameter {name!r} of {label} has shape {parameter.shape}, "
                             f"not ({channels},) for the {channels} channels it normalizes")
    scale, shift, mean, variance = parameters
    factor = scale / np.sqrt(variance + attributes.get("epsilon", 1e-5))
    last = value.layers[-1]
    weight = last.weight * factor.reshape(-1, *([1] * (last.weight.ndim - 1)))
    return value.with_last(weight=weight, bias=(last.bias - mean) * factor + shift)


def _spatial(label: str, value: _Value, op: str) -> int:
    """Spatial dimensions (1 or 2) of a map an op takes; a shape error otherwise."""
    _not_a_sequence(label, value)
    if len(value.shape) not in (2, 3):
        kind = "a vector" if len(value.shape) == 1 else f"{len(value.shape) - 1}-D"
        raise InputError(f"{label} takes a tensor of shape {_shape_text(value.shape)} "
                         f"({kind}); {op} takes a 1-D (N, C, W) or 2-D (N, C, H, W) map")
    return len(value.shape) - 1


def _window(node, label: str, attributes: dict, kernel: tuple[int, ...],
            size: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The strides and the (begin..., end...) pads of a Conv or pool, ``auto_pad`` resolved;
    dilations other than 1 are refused."""
    dims = len(kernel)
    dilations = tuple(attributes.get("dilations", [1] * dims))
    if any(dilation != 1 for dilation in dilations):
        raise InputError(f"{label} has dilations={list(dilations)}; only dilation 1 is "
                         "supported")
    strides = tuple(attributes.get("strides", [1] * dims))
    if len(strides) != dims or min(strides) < 1:
        raise InputError(f"{label} has strides={list(strides)}, not {dims} positive values")
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        total = [max((-(-length // stride) - 1) * stride + width - length, 0)
                 for length, stride, width in zip(size, strides, kernel)]
        small = [amount // 2 for amount in total]
        large = [amount - half for amount, half in zip(total, small)]
        pads = tuple(small + large) if auto_pad == "SAME_UPPER" else tuple(large + small)
    elif auto_pad == "VALID":
        pads = (0,) * (2 * dims)
    elif auto_pad == "NOTSET":
        pads = tuple(attributes.get("pads", [0] * (2 * dims)))
        if len(pads) != 2 * dims or min(pads) < 0:
            raise InputError(f"{label} has pads={list(pads)}, not {2 * dims} values >= 0")
    else:
        raise InputError(f"{label} has auto_pad={auto_pad!r}; supported are NOTSET, VALID, "
                         "SAME_UPPER and SAME_LOWER")
    return strides, pads


def _as_2d(values: tuple[int, ...], fill: int) -> tuple[int, int]:
    return (fill, values[0]) if len(values) == 1 else tuple(values)


def _pads_2d(pads: tuple[int, ...]) -> tuple[int, int, int, int]:
    """ONNX (begin..., end...) pads as (top, left, bottom, right)."""
    if len(pads) == 2:
        return (0, pads[0], 0, pads[1])
    return (pads[0], pads[1], pads[2], pads[3])


def _conv(node, label, values, constants) -> _Value:
    x, w = node.input[0], node.input[1]
    b = node.input[2] if len(node.input) > 2 else ""
    if x not in values:
        raise InputError(f"{label} convolves a constant; only the computed tensor as X is "
                         "supported")
    value = values[x]
    dims = _spatial(label, value, "Conv")
    weight = _weights(node, label, w, constants)
    if b in values:
        raise InputError(f"{label} takes its bias from a computed tensor; only a constant "
                         "bias is supported")
    attributes = _attributes(node)
    group = attributes.get("group", 1)
    if group != 1:
        raise InputError(f"{label} has group={group}; only group=1 is supported (no grouped "
                         "or depthwise convolution)")
    channels, size = value.shape[0], value.shape[1:]
    if weight.ndim != dims + 2 or weight.shape[1] != channels:
        raise InputError(
            f"the weight {w!r} of {label} has shape {weight.shape}; a Conv over "
            f"{_shape_text(value.shape)} needs (M, {channels}, "
            f"{', '.join('k' * dims)})")
    kernel = tuple(weight.shape[2:])
    declared = tuple(attributes.get("kernel_shape", kernel))
    if declared != kernel:
        raise InputError(f"{label} has kernel_shape={list(declared)} but its weight {w!r} has "
                         f"shape {weight.shape}")
    strides, pads = _window(node, label, attributes, kernel, size)
    outputs = weight.shape[0]
    bias = np.zeros(outputs)
    if b:
        bias = check_real(constants[b], f"the bias {b!r} of {label}")
        if bias.shape != (outputs,):
            raise InputError(f"the bias {b!r} of {label} has shape {bias.shape}, not "
                             f"({outputs},)")
    try:
        geometry = ConvGeometry(channels, *_as_2d(size, 1), outputs, _as_2d(kernel, 1),
                                _as_2d(strides, 1), _pads_2d(pads), dims=dims)
    except ValueError as error:
        raise InputError(f"{label}: {error}") from None
    if dims == 1:
        weight = weight[:, :, None, :]
    return value.with_layer(_Pending(weight, bias, "identity", label, True, geometry))


def _reduce_mean(node, label, values, constants) -> _Value:
    """``ReduceMean`` over every spatial axis (how the dynamo exporter writes
    ``AdaptiveAvgPool(1)``): a global average pool, flattened unless ``keepdims``."""
    value = values[node.input[0]]
    attributes = _attributes(node)
    axes = _axes(node, label, constants)
    rank = len(value.shape) + 1
    spatial = set(range(2, rank))
    if len(value.shape) not in (2, 3) or {axis % rank for axis in axes} != spatial:
        raise InputError(f"{label} averages over axes {axes} of a tensor of shape "
                         f"{_shape_text(value.shape)}; only a mean over every spatial axis "
                         "of a Conv's map (a global average pool) is supported")
    pooled = _pool(node, label, values, constants, global_pool=True)
    if attributes.get("keepdims", 1):
        return pooled
    return _Value((pooled.shape[0],), pooled.layers)


def _pool(node, label, values, constants, global_pool: bool = False) -> _Value:
    value = values[node.input[0]]
    op = node.op_type
    dims = _spatial(label, value, op)
    last = value.layers[-1] if value.layers else None
    if last is None or last.geometry is None or not value.is_last_output:
        source = "the model input" if last is None else f"the output of {last.node}"
        raise InputError(f"{label} pools {source}; the accelerator pools only a Conv's "
                         "output, in its readout")
    if last.geometry.pool is not None:
        raise InputError(f"{label} pools the output of {last.node}, which is pooled already; "
                         "the accelerator runs one pool after each Conv")
    if len([name for name in node.output if name]) > 1:
        raise InputError(f"{label} returns the indices of its maxima; only the pooled values "
                         "are supported")
    size = value.shape[1:]
    attributes = _attributes(node)
    if global_pool or op == "GlobalAveragePool":
        kernel, strides, pads, include = tuple(size), (1,) * dims, (0,) * (2 * dims), False
    else:
        kernel = tuple(attributes.get("kernel_shape", ()))
        if len(kernel) != dims:
            raise InputError(f"{label} has kernel_shape={list(kernel)}, not {dims} values for "
                             f"a map of shape {_shape_text(value.shape)}")
        if attributes.get("ceil_mode", 0):
            raise InputError(f"{label} has ceil_mode=1; only ceil_mode=0 (PyTorch's default) "
                             "is supported")
        strides, pads = _window(node, label, attributes, kernel, size)
        include = bool(attributes.get("count_include_pad", 0))
    mode = "max" if op == "MaxPool" else "avg"
    include = include and any(pads)
    try:
        pool = Pool(mode, _as_2d(kernel, 1), _as_2d(strides, 1), _pads_2d(pads), include)
        geometry = replace(last.geometry, pool=pool)
    except ValueError as error:
        raise InputError(f"{label}: {error}") from None
    pooled = value.with_last(geometry=geometry, open=False)
    return pooled


_HANDLERS = {
    "Gemm": _gemm, "MatMul": _matmul, "Add": _add, "Relu": _relu, "Identity": _pass_through,
    "Dropout": _dropout, "Flatten": _flatten, "Reshape": _reshape, "Conv": _conv,
    "BatchNormalization": _batch_norm, "MaxPool": _pool, "AveragePool": _pool,
    "GlobalAveragePool": _pool, "ReduceMean": _reduce_mean, "LSTM": _recurrent,
    "GRU": _recurrent, "Transpose": _transpose, "Squeeze": _squeeze,
}
