"""ONNX models (as ``torch.onnx.export`` writes them) to a :class:`~.network.Network`.

The graph must compute one chain of dense layers from one input:

- ``Gemm`` (``transA = 0``, either ``transB``; ``alpha`` and ``beta`` are folded into the
  weights and the bias), or ``MatMul`` by a constant weight matrix, optionally followed by an
  ``Add`` of a constant bias: a dense layer;
- ``Relu`` after a layer: its activation (a layer without one is linear);
- ``Flatten`` (``axis = 1``) and ``Reshape`` to ``(N, features)``: the layers take the input
  flattened in C order;
- ``Identity`` and ``Dropout`` (inference: identity).

Local functions (as some exporters write blocks of a model) are inlined first.

The graph input is ``(N, *input_shape)``, ``N`` the batch dimension (symbolic, or 1); the
network runs one frame of ``input_shape`` at a time, so wherever the graph reads the batch size
(``Shape``) it is 1. Initializers and constant subgraphs (``Constant``, ``Shape`` of a computed
tensor, and any node whose inputs are all constant, such as a ``Transpose`` or ``Cast`` of an
initializer or a ``Concat`` of shapes) are evaluated with
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

from .network import InputError, Layer, Network, check_real

__all__ = ["SUPPORTED_OPS", "load_onnx", "network_from_onnx"]

SUPPORTED_OPS = ("Gemm", "MatMul", "Add", "Relu", "Identity", "Dropout", "Flatten", "Reshape")
"""Ops that may act on tensors computed from the input (constant subgraphs may use any op)."""

_SUPPORTED_TEXT = (f"supported ops are {', '.join(SUPPORTED_OPS)} (Add only as the bias of a "
                   "MatMul or Gemm, Reshape only to (N, features)); constant subgraphs are "
                   "folded")
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16")


@dataclass(frozen=True)
class _Dense:
    """A dense layer being assembled: ``open`` while it may still take a bias (no activation
    yet)."""

    weight: np.ndarray
    bias: np.ndarray
    activation: str
    node: str
    open: bool


@dataclass(frozen=True)
class _Value:
    """A tensor computed from the graph input: its shape per frame and the layers so far."""

    shape: tuple[int, ...]
    layers: tuple[_Dense, ...] = ()

    @property
    def features(self) -> int:
        return prod(self.shape)

    @property
    def last_open(self) -> bool:
        return bool(self.layers) and self.layers[-1].open

    def with_layer(self, layer: _Dense) -> _Value:
        closed = self.layers
        if self.last_open:
            closed = closed[:-1] + (replace(closed[-1], open=False),)
        return _Value((layer.weight.shape[0],), closed + (layer,))

    def with_last(self, **changes) -> _Value:
        return _Value(self.shape, self.layers[:-1] + (replace(self.layers[-1], **changes),))


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
    input_shape = _input_shape(graph_input)
    values[graph_input.name] = _Value(input_shape)

    for index, node in enumerate(graph.node):
        label = f"{node.op_type} node {node.name!r}" if node.name else \
            f"{node.op_type} node #{index} (unnamed)"
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
            constants[node.output[0]] = _shape_of(node, values[data[0]])
            continue
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            op = node.op_type if node.domain in ("", "ai.onnx") else \
                f"{node.domain}.{node.op_type}"
            raise InputError(f"unsupported ONNX op {op} ({label}); {_SUPPORTED_TEXT}")
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
    layers = [Layer(dense.weight, dense.bias, dense.activation,
                    names=(f"the weight of {dense.node}", f"the bias of {dense.node}"))
              for dense in result.layers]
    return Network(input_shape, layers)


def _input_shape(value) -> tuple[int, ...]:
    """The graph input's shape without its batch dimension."""
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
    if len(dims) < 2:
        raise InputError(f"the model input {name} has shape {shown}; the accelerator needs a "
                         "batch dimension first, (N, features...)")
    if isinstance(dims[0], int) and dims[0] != 1:
        raise InputError(f"the model input {name} has a fixed batch of {dims[0]}, shape "
                         f"{shown}; export it with a batch of 1 or a symbolic batch dimension")
    for position, dim in enumerate(dims[1:], start=1):
        if not isinstance(dim, int) or dim < 1:
            raise InputError(
                f"the model input {name} has shape {shown}: dimension {position} is "
                f"{dim!r}, not a fixed size; export it with a fixed shape except for the "
                "batch dimension")
    return tuple(dims[1:])


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


def _shape_of(node, value: _Value) -> np.ndarray:
    """``Shape`` of a computed tensor, for one frame (batch 1)."""
    shape = [1, *value.shape]
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
    return value.with_layer(_Dense(alpha * matrix.T, bias, "identity", label, True))


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
    return value.with_layer(_Dense(weight.T, np.zeros(weight.shape[1]), "identity", label,
                                   True))


def _add(node, label, values, constants) -> _Value:
    computed = [name for name in node.input if name in values]
    if len(computed) != 1:
        raise InputError(f"{label} adds two computed tensors; only a constant bias right "
                         "after a MatMul or Gemm is supported")
    value = values[computed[0]]
    constant = next(name for name in node.input if name != computed[0])
    if not value.last_open:
        where = "the model input" if not value.layers else \
            f"the output of {value.layers[-1].node} after its activation"
        raise InputError(f"{label} adds a constant to {where}; only a bias right after a "
                         "MatMul or Gemm is supported")
    last = value.layers[-1]
    bias = _bias(label, constant, constants[constant], last.weight.shape[0])
    return value.with_last(bias=last.bias + bias)


def _relu(node, label, values, constants) -> _Value:
    value = values[node.input[0]]
    if not value.layers:
        raise InputError(f"{label} acts on the model input; the accelerator applies ReLU "
                         "only after a layer (Gemm or MatMul)")
    if value.last_open:
        return value.with_last(activation="relu", open=False)
    return value          # a ReLU of a ReLU output (a new layer always starts open)


_HANDLERS = {
    "Gemm": _gemm, "MatMul": _matmul, "Add": _add, "Relu": _relu, "Identity": _pass_through,
    "Dropout": _dropout, "Flatten": _flatten, "Reshape": _reshape,
}
