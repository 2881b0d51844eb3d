"""ONNX import (``sw/onnx_import.py``): every supported form against onnxruntime, every error
with its message, the PyTorch exporters' output, and imported models on the RTL.

Models are built with ``onnx.helper``; the reference is always onnxruntime running the same
file, one frame (batch 1) at a time, and for a symbolic batch also all frames at once.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from support import DATA

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sim.model import GoldenModel
from reuse_accel.sw.compiler import compile_model
from reuse_accel.sw.driver import Driver
from reuse_accel.sw.network import InputError, Network
from reuse_accel.sw.onnx_import import SUPPORTED_OPS

SUPPORTED = ("supported ops are Conv, BatchNormalization, MaxPool, AveragePool, "
             "GlobalAveragePool, ReduceMean, Gemm, MatMul, Add, Relu, Identity, Dropout, "
             "Flatten, Reshape, LSTM, GRU, Transpose, Squeeze (BatchNormalization and Add only "
             "right after a Conv, MatMul or Gemm, pools only after a Conv, ReduceMean only over "
             "a Conv's spatial axes, Reshape only to (N, features), Transpose and Squeeze only "
             "of a sequence's time, batch and direction axes); constant subgraphs are folded")


# -- helpers ----------------------------------------------------------------------------------

def weights(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed + sum(shape)).normal(0, 0.5, shape).astype(dtype)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def model(nodes, initializers=(), *, input_shape=("N", 6), inputs=None, outputs=("y",),
          opset=17, input_type=TensorProto.FLOAT):
    """A model with input ``x`` of ``input_shape`` (or the given value infos)."""
    if inputs is None:
        inputs = [helper.make_tensor_value_info("x", input_type, list(input_shape))]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", "outputs"])
               for name in outputs]
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def save(tmp_path, proto, name="model.onnx") -> Path:
    path = tmp_path / name
    onnx.save(proto, str(path))
    return path


def onnxruntime_outputs(path: Path, frames: np.ndarray, *, whole_batch=False) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    frames = frames.astype(np.float32)
    if whole_batch:
        return session.run(None, {name: frames})[0]
    return np.concatenate([session.run(None, {name: frames[t:t + 1]})[0]
                           for t in range(len(frames))])


def assert_matches(got: np.ndarray, want: np.ndarray) -> None:
    """Equal within 1e-5 relative, and 1e-5 of the largest output absolute: onnxruntime
    computes in float32, so an output that nearly cancels carries float32 rounding of the
    terms it sums."""
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.max(np.abs(want)))


def frames_for(shape, count=7, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (count, *shape)).astype(np.float32)


# -- every supported form against onnxruntime --------------------------------------------------

def gemm_trans_b():
    # y = relu(0.5 * x W0^T + 2 * b0) W1 * 1.5 + 0.25 * c1, transB 1 then 0, C (1, 3)
    return model([
        helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], name="fc0", transB=1, alpha=0.5,
                         beta=2.0),
        helper.make_node("Relu", ["h"], ["r"], name="relu0"),
        helper.make_node("Gemm", ["r", "w1", "b1"], ["y"], name="fc1", transB=0, alpha=1.5,
                         beta=0.25),
    ], [init("w0", weights(5, 6)), init("b0", weights(5)), init("w1", weights(5, 3)),
        init("b1", weights(1, 3))]), (6,)


def gemm_without_bias():
    return model([
        helper.make_node("Gemm", ["x", "w0"], ["y"], name="fc0", transB=0, alpha=-0.75),
    ], [init("w0", weights(6, 4))]), (6,)


def matmul_add():
    # The bias as the first operand of the second Add, a scalar-broadcast bias of shape (1,).
    return model([
        helper.make_node("MatMul", ["x", "w0"], ["m0"], name="mm0"),
        helper.make_node("Add", ["m0", "b0"], ["h"], name="add0"),
        helper.make_node("Relu", ["h"], ["r"], name="relu0"),
        helper.make_node("MatMul", ["r", "w1"], ["m1"], name="mm1"),
        helper.make_node("Add", ["b1", "m1"], ["a1"], name="add1"),
        helper.make_node("MatMul", ["a1", "w2"], ["m2"], name="mm2"),
        helper.make_node("Add", ["m2", "b2"], ["y"], name="add2"),
    ], [init("w0", weights(6, 8)), init("b0", weights(8)), init("w1", weights(8, 5)),
        init("b1", weights(1, 5)), init("w2", weights(5, 2)), init("b2", weights(1))]), (6,)


def flatten_chw():
    return model([
        helper.make_node("Flatten", ["x"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "w0", "b0"], ["h"], name="fc0", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu0"),
        helper.make_node("Gemm", ["r", "w1", "b1"], ["y"], name="fc1", transB=1),
    ], [init("w0", weights(7, 24)), init("b0", weights(7)), init("w1", weights(4, 7)),
        init("b1", weights(4))], input_shape=("batch", 2, 3, 4)), (2, 3, 4)


def reshape_constant():
    # The target shape from a Constant node, with 0 copying the batch dimension.
    return model([
        helper.make_node("Constant", [], ["shape"], name="shape",
                         value=init("shape_value", np.array([0, -1], np.int64))),
        helper.make_node("Reshape", ["x", "shape"], ["f"], name="reshape"),
        helper.make_node("MatMul", ["f", "w0"], ["m"], name="mm0"),
        helper.make_node("Add", ["m", "b0"], ["y"], name="add0"),
    ], [init("w0", weights(12, 5)), init("b0", weights(5))], input_shape=("N", 3, 4)), (3, 4)


def reshape_from_shape():
    # x.view(x.size(0), -1) as the classic exporter writes it: Shape, Gather, Unsqueeze,
    # Concat, on a static batch of 1.
    return model([
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["f"], name="reshape"),
        helper.make_node("Gemm", ["f", "w0", "b0"], ["y"], name="fc0", transB=1),
    ], [init("zero", np.array(0, np.int64)), init("axes", np.array([0], np.int64)),
        init("minus_one", np.array([-1], np.int64)), init("w0", weights(3, 6)),
        init("b0", weights(3))], input_shape=(1, 2, 3)), (2, 3)


def dropout_identity_relu_at_the_end():
    return model([
        helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], name="fc0", transB=1),
        helper.make_node("Dropout", ["h", "ratio"], ["d"], name="drop"),
        helper.make_node("Identity", ["d"], ["i"], name="same"),
        helper.make_node("Relu", ["i"], ["r"], name="relu0"),
        helper.make_node("Relu", ["r"], ["rr"], name="relu_again"),
        helper.make_node("Dropout", ["rr"], ["d1", "mask"], name="drop1"),
        helper.make_node("Gemm", ["d1", "w1", "b1"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["y"], name="relu1"),
    ], [init("w0", weights(9, 6)), init("b0", weights(9)), init("ratio", np.float32(0.4)),
        init("w1", weights(4, 9)), init("b1", weights(4))]), (6,)


def linear_layers_back_to_back():
    # Two layers without an activation between them stay two layers.
    return model([
        helper.make_node("MatMul", ["x", "w0"], ["m0"], name="mm0"),
        helper.make_node("MatMul", ["m0", "w1"], ["m1"], name="mm1"),
        helper.make_node("Add", ["m1", "b1"], ["y"], name="add1"),
    ], [init("w0", weights(6, 5)), init("w1", weights(5, 3)), init("b1", weights(3))]), (6,)


def folded_constants():
    # Weights through Transpose and Cast of initializers, a bias from a Constant node.
    return model([
        helper.make_node("Transpose", ["w0_t"], ["w0"], name="transpose", perm=[1, 0]),
        helper.make_node("Cast", ["w1_half"], ["w1"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Constant", [], ["b1"], name="bias",
                         value=init("b1_value", weights(3))),
        helper.make_node("MatMul", ["x", "w0"], ["m0"], name="mm0"),
        helper.make_node("Relu", ["m0"], ["r"], name="relu0"),
        helper.make_node("MatMul", ["r", "w1"], ["m1"], name="mm1"),
        helper.make_node("Add", ["m1", "b1"], ["y"], name="add1"),
    ], [init("w0_t", weights(5, 6)), init("w1_half", weights(5, 3, dtype=np.float16))]), (6,)


FORMS = [gemm_trans_b, gemm_without_bias, matmul_add, flatten_chw, reshape_constant,
         reshape_from_shape, dropout_identity_relu_at_the_end, linear_layers_back_to_back,
         folded_constants]


@pytest.mark.parametrize("form", FORMS, ids=[form.__name__ for form in FORMS])
def test_float_forward_equals_onnxruntime(tmp_path, form):
    proto, input_shape = form()
    onnx.checker.check_model(proto)
    path = save(tmp_path, proto)
    network = Network.load(path)
    assert network.input_shape == input_shape
    frames = frames_for(input_shape)
    want = onnxruntime_outputs(path, frames)
    assert_matches(network.forward(frames), want)
    if proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param:     # a symbolic batch
        assert_matches(network.forward(frames),
                       onnxruntime_outputs(path, frames, whole_batch=True))


def test_local_functions_are_inlined(tmp_path):
    block = helper.make_function(
        "local", "Block", ["a", "w", "b"], ["out"],
        [helper.make_node("Gemm", ["a", "w", "b"], ["g"], transB=1),
         helper.make_node("Relu", ["g"], ["out"])], [helper.make_opsetid("", 17)])
    proto = model([helper.make_node("Block", ["x", "w0", "b0"], ["h"], domain="local",
                                    name="block"),
                   helper.make_node("Gemm", ["h", "w1", "b1"], ["y"], name="fc1", transB=1)],
                  W0 + [init("w1", weights(3, 5)), init("b1", weights(3))])
    proto.functions.append(block)
    proto.opset_import.append(helper.make_opsetid("local", 1))
    onnx.checker.check_model(proto)
    path = save(tmp_path, proto)
    network = Network.load(path)
    assert [layer.activation for layer in network.layers] == ["relu", "identity"]
    frames = frames_for((6,))
    assert_matches(network.forward(frames), onnxruntime_outputs(path, frames))


def test_layers_kinds_and_activations_follow_the_graph(tmp_path):
    network = Network.load(save(tmp_path, dropout_identity_relu_at_the_end()[0]))
    assert network.sizes == [6, 9, 4]
    assert [layer.activation for layer in network.layers] == ["relu", "relu"]
    network = Network.load(save(tmp_path, linear_layers_back_to_back()[0]))
    assert network.sizes == [6, 5, 3]
    assert [layer.activation for layer in network.layers] == ["identity", "identity"]
    np.testing.assert_array_equal(network.layers[0].bias, np.zeros(5))


def test_gemm_alpha_and_beta_are_folded_exactly(tmp_path):
    network = Network.load(save(tmp_path, gemm_trans_b()[0]))
    np.testing.assert_array_equal(network.layers[0].weight,
                                  0.5 * weights(5, 6).astype(np.float64))
    np.testing.assert_array_equal(network.layers[0].bias, 2.0 * weights(5).astype(np.float64))
    np.testing.assert_array_equal(network.layers[1].weight,
                                  1.5 * weights(5, 3).astype(np.float64).T)
    np.testing.assert_array_equal(network.layers[1].bias,
                                  0.25 * weights(1, 3).astype(np.float64)[0])


# -- the PyTorch exporters ----------------------------------------------------------------------

@pytest.mark.parametrize("name, batch", [("mlp_classic.onnx", "batch"),
                                         ("mlp_dynamo.onnx", 1),
                                         ("mlp_dynamo_batch.onnx", "batch")])
def test_torch_exports_import_and_match_onnxruntime(name, batch):
    """Flatten + Linear(24, 10) + ReLU + Dropout + Linear(10, 5) on (N, 2, 3, 4), exported by
    data/make_onnx_fixtures.py."""
    path = DATA / name
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert (dims[0].dim_param or dims[0].dim_value) == batch
    network = Network.load(path)
    assert network.input_shape == (2, 3, 4)
    assert network.sizes == [24, 10, 5]
    assert [layer.activation for layer in network.layers] == ["relu", "identity"]
    frames = frames_for((2, 3, 4), count=9)
    assert_matches(network.forward(frames), onnxruntime_outputs(path, frames))


def test_both_exporters_give_the_same_network():
    classic, dynamo = (Network.load(DATA / name) for name in ("mlp_classic.onnx",
                                                                "mlp_dynamo.onnx"))
    for mine, theirs in zip(classic.layers, dynamo.layers):
        np.testing.assert_array_equal(mine.weight, theirs.weight)
        np.testing.assert_array_equal(mine.bias, theirs.bias)


# -- errors ---------------------------------------------------------------------------------

def gemm(name="fc0", a="x", w="w0", b="b0", out="y", **attributes):
    return helper.make_node("Gemm", [a, w, b], [out], name=name, transB=1, **attributes)


W0 = [init("w0", weights(5, 6)), init("b0", weights(5))]


def unsupported(op, node):
    return f"unsupported ONNX op {op} ({node}); {SUPPORTED}"


ERRORS = {
    "sigmoid, unnamed": (model([gemm(out="h"), helper.make_node("Sigmoid", ["h"], ["y"])], W0),
                         unsupported("Sigmoid", "Sigmoid node #1 (unnamed)")),
    "other domain": (model([helper.make_node("FusedGemm", ["x", "w0", "b0"], ["y"],
                                             name="fused", domain="com.microsoft")], W0),
                     unsupported("com.microsoft.FusedGemm", "FusedGemm node 'fused'")),
    "residual add": (model([gemm(out="h"), helper.make_node("Relu", ["h"], ["r"], name="r"),
                            gemm(name="fc1", a="r", w="w1", b="b1", out="g"),
                            helper.make_node("Add", ["g", "r"], ["y"], name="skip")],
                           W0 + [init("w1", weights(5, 5)), init("b1", weights(5))]),
                     "Add node 'skip' adds two computed tensors; only a constant bias right "
                     "after a Conv, MatMul or Gemm is supported"),
    "add after relu": (model([gemm(out="h"), helper.make_node("Relu", ["h"], ["r"], name="r"),
                              helper.make_node("Add", ["r", "b0"], ["y"], name="late")], W0),
                       "Add node 'late' adds a constant to the output of Gemm node 'fc0' after "
                       "its activation, pool or reshape; only a bias right after a Conv, MatMul "
                       "or Gemm is supported"),
    "add to input": (model([helper.make_node("Add", ["x", "c"], ["a"], name="shift"),
                            gemm(a="a")], W0 + [init("c", weights(6))]),
                     "Add node 'shift' adds a constant to the model input; only a bias right "
                     "after a Conv, MatMul or Gemm is supported"),
    "relu on input": (model([helper.make_node("Relu", ["x"], ["r"], name="early"),
                             gemm(a="r")], W0),
                      "Relu node 'early' acts on the model input; the accelerator applies "
                      "ReLU only after a layer (Conv, Gemm or MatMul)"),
    "matmul chain": (model([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
                           [init("w", weights(5, 4))]),
                     "the weight 'w' of MatMul node 'fc' has shape (5, 4), so it takes 5 "
                     "inputs, but the tensor it multiplies has (N, 6)"),
    "second matmul chain": (model([helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
                                   helper.make_node("MatMul", ["h", "v"], ["y"], name="out")],
                                  [init("w", weights(6, 4)), init("v", weights(3, 2))]),
                            "the weight 'v' of MatMul node 'out' has shape (3, 2), so it takes "
                            "3 inputs, but the tensor it multiplies has (N, 4)"),
    "gemm chain": (model([gemm(w="w")], [init("w", weights(6, 5)), init("b0", weights(5))]),
                   "the weight 'w' of Gemm node 'fc0' has shape (6, 5) (transB=1), so it takes "
                   "5 inputs, but the tensor it multiplies has (N, 6)"),
    "gemm transA": (model([gemm(transA=1)], W0),
                    "Gemm node 'fc0' has transA=1, which would multiply across the batch; only "
                    "transA=0 is supported"),
    "gemm bias": (model([gemm(b="b")], [init("w0", weights(5, 6)), init("b", weights(4))]),
                  "the bias 'b' of Gemm node 'fc0' has shape (4,), which does not broadcast to "
                  "the layer's 5 outputs"),
    "add bias": (model([helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
                        helper.make_node("Add", ["m", "b"], ["y"], name="bias")],
                       [init("w", weights(6, 3)), init("b", weights(2, 3))]),
                 "the bias 'b' of Add node 'bias' has shape (2, 3), which does not broadcast "
                 "to the layer's 3 outputs"),
    "gemm computed C": (model([gemm(out="h"), helper.make_node("Relu", ["h"], ["r"], name="r"),
                               gemm(name="fc1", a="r", w="w1", b="r", out="y")],
                              W0 + [init("w1", weights(5, 5))]),
                        "Gemm node 'fc1' adds a computed tensor as C; only a constant bias is "
                        "supported"),
    "gemm constant A": (model([helper.make_node("Gemm", ["w0", "x"], ["y"], name="fc0")],
                              [init("w0", weights(5, 6))], input_shape=("N", 6)),
                        "Gemm node 'fc0' multiplies a constant by the computed tensor; only "
                        "tensor x weights (the computed tensor as A) is supported"),
    "gemm 3-d weight": (model([gemm(w="w")], [init("w", weights(5, 6, 1)),
                                                 init("b0", weights(5))]),
                        "the weight 'w' of Gemm node 'fc0' has shape (5, 6, 1); Gemm needs a "
                        "2-D B"),
    "matmul left constant": (model([helper.make_node("MatMul", ["w", "x"], ["y"], name="fc")],
                                   [init("w", weights(4, 6))]),
                             "MatMul node 'fc' multiplies a constant by the computed tensor; "
                             "only tensor x weights (the computed tensor on the left) is "
                             "supported"),
    "matmul of two tensors": (model([helper.make_node("MatMul", ["x", "x"], ["y"], name="sq")]),
                              "MatMul node 'sq' multiplies two computed tensors; only weights "
                              "that are constants (initializers) are supported"),
    "matmul 3-d weight": (model([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
                                [init("w", weights(2, 6, 3))]),
                          "the weight 'w' of MatMul node 'fc' has shape (2, 6, 3); a dense "
                          "layer needs a 2-D (inputs, outputs) matrix"),
    "matmul on a 3-d tensor": (model([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
                                     [init("w", weights(4, 3))], input_shape=("N", 2, 4)),
                               "MatMul node 'fc' takes a tensor of shape (N, 2, 4); dense "
                               "layers take vectors: flatten it to (N, 8) first with Flatten "
                               "or Reshape"),
    "flatten axis": (model([helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=2),
                            gemm(a="f")], W0, input_shape=("N", 2, 3)),
                     "Flatten node 'flat' has axis=2; only axis=1 (keep the batch dimension, "
                     "flatten the rest) is supported"),
    "reshape to a matrix": (model([helper.make_node("Reshape", ["x", "s"], ["f"], name="rs"),
                                   gemm(a="f")], W0 + [init("s", np.array([0, 2, 3]))],
                                  input_shape=("N", 6)),
                            "Reshape node 'rs' reshapes (N, 6) to (0, 2, 3); only a reshape to "
                            "a vector per frame, (N, 6), is supported"),
    "reshape without batch": (model([helper.make_node("Reshape", ["x", "s"], ["f"], name="rs"),
                                     gemm(a="f")], W0 + [init("s", np.array([6]))],
                                    input_shape=("N", 2, 3)),
                              "Reshape node 'rs' reshapes (N, 2, 3) to (6,); only a reshape to "
                              "a vector per frame, (N, 6), is supported"),
    "reshape to a computed shape": (model([helper.make_node("Flatten", ["x"], ["f"], name="fl"),
                                           helper.make_node("Reshape", ["x", "f"], ["g"],
                                                            name="rs"),
                                           gemm(a="g")], W0),
                                    "Reshape node 'rs' takes its target shape from the model "
                                    "input; only a constant shape is supported"),
    "dropout training": (model([gemm(out="h"),
                                helper.make_node("Dropout", ["h", "", "train"], ["y"],
                                                 name="drop")],
                               W0 + [init("train", np.array(True))]),
                         "Dropout node 'drop' runs in training mode; export the model in "
                         "inference mode (model.eval())"),
    "dropout mask used": (model([gemm(out="h"),
                                 helper.make_node("Dropout", ["h"], ["d", "mask"], name="drop"),
                                 helper.make_node("Cast", ["mask"], ["y"], name="cast",
                                                  to=TensorProto.FLOAT)], W0),
                          "Dropout node 'drop' has its output 'mask' used; only its first "
                          "output (the values per frame) is supported"),
    "unknown constant op": (model([helper.make_node("NoSuchOp", ["b0"], ["c"], name="odd"),
                                   gemm(b="c")], W0),
                            "NoSuchOp node 'odd' computes a constant that cannot be evaluated "
                            "(No registered schema for operator 'NoSuchOp' and domain ''. Did "
                            "you recompile the sources after updating the repository?); "
                            + SUPPORTED),
    "two inputs": (model([gemm()], W0, inputs=[
                       helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6]),
                       helper.make_tensor_value_info("h", TensorProto.FLOAT, ["N", 6])]),
                   "the model has 2 inputs ('x', 'h'); the accelerator takes one input tensor"),
    "two outputs": (model([gemm(out="h"), helper.make_node("Relu", ["h"], ["y"], name="r")], W0,
                          outputs=("h", "y")),
                    "the model has 2 outputs ('h', 'y'); the accelerator computes one output "
                    "tensor"),
    "fixed batch": (model([gemm()], W0, input_shape=(4, 6)),
                    "the model input 'x' has a fixed batch of 4, shape (4, 6); export it with a "
                    "batch of 1 or a symbolic batch dimension"),
    "symbolic feature": (model([gemm()], W0, input_shape=("N", "features")),
                         "the model input 'x' has shape (N, features): dimension 1 is "
                         "'features', not a fixed size; export it with a fixed shape except "
                         "for the batch dimension"),
    "no batch": (model([gemm()], W0, input_shape=(6,)),
                 "the model input 'x' has shape (6,); the accelerator needs a batch dimension "
                 "first, (N, features...)"),
    "input without a shape": (model([gemm()], W0, inputs=[
                                  helper.make_tensor_value_info("x", TensorProto.FLOAT, None)]),
                              "the model input 'x' has no shape; export it with a fixed input "
                              "shape (N, ...)"),
    "input not a tensor": (model([gemm()], W0, inputs=[
                               helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT,
                                                                      None)]),
                           "the model input 'x' is not a tensor"),
    "integer input": (model([gemm()], W0, input_type=TensorProto.INT64),
                      "the model input 'x' holds INT64; the accelerator takes real-valued "
                      "(float) frames"),
    "constant output": (model([helper.make_node("Identity", ["b0"], ["y"], name="id"),
                               gemm(out="h")], W0),
                        "the model output 'y' does not depend on the model input"),
    "no layer": (model([helper.make_node("Flatten", ["x"], ["y"], name="flat")]),
                 "the model computes no layer between its input and its output 'y': it needs a "
                 "Gemm or a MatMul"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_import_errors_name_the_problem(tmp_path, name):
    proto, message = ERRORS[name]
    path = save(tmp_path, proto)
    with pytest.raises(InputError, match="^" + re.escape(message) + "$"):
        Network.load(path)


def test_sparse_initializers_are_refused(tmp_path):
    proto = model([gemm()], W0[1:])
    proto.graph.sparse_initializer.append(helper.make_sparse_tensor(
        init("w0", np.array([1.0], np.float32)), init("w0_indices", np.array([3])), [5, 6]))
    with pytest.raises(InputError, match="^" + re.escape(
            "the model has sparse initializers; export it with dense weights") + "$"):
        Network.load(save(tmp_path, proto))


def test_the_supported_ops_are_those_the_message_lists():
    assert SUPPORTED.startswith("supported ops are " + ", ".join(SUPPORTED_OPS) + " (")


def test_files_that_are_not_onnx_models(tmp_path):
    missing = tmp_path / "absent.onnx"
    with pytest.raises(InputError, match="^" + re.escape(
            f"model file {str(missing)!r} does not exist") + "$"):
        Network.load(missing)
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    with pytest.raises(InputError, match="^" + re.escape(
            f"model file {str(folder)!r} is a directory, not an ONNX model") + "$"):
        Network.load(folder)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="^" + re.escape(
            f"model file {str(empty)!r} is not an ONNX model (it holds no graph); export it "
            "with torch.onnx.export") + "$"):
        Network.load(empty)
    text = tmp_path / "text.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(InputError, match="^" + re.escape(
            f"model file {str(text)!r} is not an ONNX model (") + ".*" + re.escape(
            "); export it with torch.onnx.export") + "$"):
        Network.load(text)


# -- imported models on the hardware -------------------------------------------------------------

RTL_CONFIG = AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=3)
SIMULATORS = [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        shutil.which("iverilog") is None,
        reason="Icarus Verilog (iverilog) is not installed: apt-get install iverilog")),
]


@pytest.fixture(scope="module")
def imported():
    """The classic export compiled for the small RTL configuration, on 6 frames in which most
    inputs keep their value."""
    network = Network.load(DATA / "mlp_classic.onnx")
    rng = np.random.default_rng(11)
    frames = np.empty((6, 2, 3, 4))
    frames[0] = rng.normal(0, 1, (2, 3, 4))
    for t in range(1, 6):
        frames[t] = np.where(rng.random((2, 3, 4)) < 0.25, rng.normal(0, 1, (2, 3, 4)),
                             frames[t - 1])
    return compile_model(network, RTL_CONFIG, frames), frames


def test_imported_model_on_the_golden_model(imported):
    compiled, frames = imported
    run, baseline = Driver(compiled).run(frames)
    indices, _ = compiled.quantize_frames(frames)
    model = GoldenModel(RTL_CONFIG, compiled.layers)
    for result, want in zip(run.frames, model.run(indices)):
        np.testing.assert_array_equal(result.outputs, want.outputs)
        assert result.cycles == want.cycles
    reference = compiled.network.forward(frames)
    assert np.max(np.abs(run.outputs - reference)) < 0.1 * np.max(np.abs(reference))
    assert run.cycles < baseline.cycles


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_imported_model_bit_exact_on_the_rtl(imported, simulator, rtl_build_root):
    compiled, frames = imported
    want = Driver(compiled).run(frames)
    got = Driver(compiled, backend=simulator, build_dir=rtl_build_root).run(frames)
    for mode, (mine, theirs) in enumerate(zip(got, want)):
        for t, (result, expected) in enumerate(zip(mine.frames, theirs.frames)):
            label = f"{simulator} mode {mode} frame {t}"
            np.testing.assert_array_equal(result.outputs, expected.outputs, err_msg=label)
            assert result.cycles == expected.cycles, label
            for name in ("layer_cycles", "changed_inputs", "out_of_range", "weight_rows",
                         "macs", "saturated_outputs"):
                np.testing.assert_array_equal(getattr(result, name), getattr(expected, name),
                                              err_msg=f"{label}: {name}")
