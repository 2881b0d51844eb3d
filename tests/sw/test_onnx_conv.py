"""The ONNX importer on convolutional models, against onnxruntime; and conv models compiled and
run on the golden backend."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.conv import MapLayout, Pool
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sw.cli import main
from reuse_accel.sw.compiler import ModelFitError, compile_model, size_config
from reuse_accel.sw.driver import Driver
from reuse_accel.sw.network import InputError
from reuse_accel.sw.onnx_import import load_onnx, network_from_onnx

DATA = Path(__file__).resolve().parents[1] / "data"


def init(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def weights(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).normal(0, 0.5, shape)


def conv_model(nodes, initializers, input_shape, *, opset=17):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def onnxruntime_outputs(proto, frames):
    session = onnxruntime.InferenceSession(proto.SerializeToString())
    return np.concatenate([session.run(None, {"x": frame[None].astype(np.float32)})[0]
                           .reshape(1, -1) for frame in frames])


def assert_matches_onnxruntime(proto, input_shape, frames=3):
    network = network_from_onnx(proto)
    data = np.random.default_rng(7).normal(size=(frames, *input_shape))
    expected = onnxruntime_outputs(proto, data)
    got = network.forward(data)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    return network


# -- torch.onnx.export's forms ----------------------------------------------------------------

@pytest.mark.parametrize("form", ["classic", "dynamo"])
def test_exported_2d_cnn_matches_onnxruntime(form):
    """data/make_onnx_fixtures.py: Conv2d, BatchNorm2d, ReLU, MaxPool2d, a strided Conv2d with
    asymmetric kernel and padding, AvgPool2d with padding, a 1x1 Conv2d, AdaptiveAvgPool2d(1)
    (GlobalAveragePool or ReduceMean), Flatten, Linear."""
    path = DATA / f"cnn2d_{form}.onnx"
    network = load_onnx(path)
    frames = np.random.default_rng(1).normal(size=(4, 3, 12, 16))
    session = onnxruntime.InferenceSession(str(path))
    expected = np.concatenate([session.run(None, {"x": f[None].astype(np.float32)})[0]
                               for f in frames])
    np.testing.assert_allclose(network.forward(frames), expected, rtol=1e-5,
                               atol=1e-6 * np.abs(expected).max())
    assert [(layer.kind, layer.input_shape, layer.output_shape, layer.activation)
            for layer in network.layers] == [
        (LayerKind.CONV, (3, 12, 16), (8, 6, 8), "relu"),
        (LayerKind.CONV, (8, 6, 8), (12, 4, 5), "relu"),
        (LayerKind.CONV, (12, 4, 5), (6, 1, 1), "relu"),
        (LayerKind.DENSE, (6,), (5,), "identity")]
    pools = [layer.geometry.pool for layer in network.layers[:3]]
    assert pools == [Pool("max", (2, 2), (2, 2)),
                     Pool("avg", (2, 2), (1, 1), (1, 1, 1, 1), count_include_pad=True),
                     Pool("avg", (4, 5), (1, 1))]
    second = network.layers[1].geometry
    assert (second.kernel, second.stride, second.padding) == ((3, 5), (2, 2), (1, 2, 1, 2))


@pytest.mark.parametrize("form", ["classic", "dynamo"])
def test_exported_1d_cnn_matches_onnxruntime(form):
    path = DATA / f"cnn1d_{form}.onnx"
    network = load_onnx(path)
    frames = np.random.default_rng(2).normal(size=(4, 4, 40))
    session = onnxruntime.InferenceSession(str(path))
    expected = np.concatenate([session.run(None, {"x": f[None].astype(np.float32)})[0]
                               for f in frames])
    np.testing.assert_allclose(network.forward(frames), expected, rtol=1e-5,
                               atol=1e-6 * np.abs(expected).max())
    assert [(layer.kind, layer.input_shape, layer.output_shape) for layer in network.layers] == [
        (LayerKind.CONV, (4, 40), (6, 10)), (LayerKind.CONV, (6, 10), (8, 8)),
        (LayerKind.DENSE, (64,), (10,)), (LayerKind.DENSE, (10,), (3,))]
    first = network.layers[0].geometry
    assert (first.dims, first.kernel, first.stride, first.padding, first.pool) == (
        1, (1, 5), (1, 2), (0, 2, 0, 2), Pool("max", (1, 3), (1, 2), (0, 1, 0, 1)))


# -- every attribute, built with onnx.helper ----------------------------------------------------

def conv(x, w, out, b=None, **attributes):
    return helper.make_node("Conv", [x, w] + ([b] if b else []), [out], **attributes)


CASES = {
    "asymmetric pads and strides, no bias": (
        [conv("x", "w", "c", pads=[0, 2, 1, 1], strides=[2, 3]),
         helper.make_node("Flatten", ["c"], ["y"])],
        [init("w", weights(4, 3, 3, 4))], (3, 9, 11)),
    "auto_pad SAME_UPPER": (
        [conv("x", "w", "y", "b", auto_pad="SAME_UPPER", strides=[2, 2])],
        [init("w", weights(2, 3, 4, 3)), init("b", weights(2))], (3, 7, 8)),
    "auto_pad SAME_LOWER": (
        [conv("x", "w", "y", "b", auto_pad="SAME_LOWER", strides=[1, 2])],
        [init("w", weights(2, 3, 4, 2)), init("b", weights(2))], (3, 7, 8)),
    "auto_pad VALID and kernel_shape": (
        [conv("x", "w", "y", auto_pad="VALID", kernel_shape=[3, 3])],
        [init("w", weights(2, 1, 3, 3))], (1, 6, 5)),
    "1-D conv with pads": (
        [conv("x", "w", "c", "b", pads=[3, 1], strides=[2]),
         helper.make_node("Relu", ["c"], ["y"])],
        [init("w", weights(5, 2, 4)), init("b", weights(5))], (2, 17)),
    "batch norm with epsilon after a conv": (
        [conv("x", "w", "c", "b", pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c", "s", "t", "m", "v"], ["n"],
                          epsilon=1e-3),
         helper.make_node("Relu", ["n"], ["y"])],
        [init("w", weights(3, 2, 3, 3)), init("b", weights(3)), init("s", weights(3) + 1),
         init("t", weights(3, seed=1)), init("m", weights(3, seed=2)),
         init("v", np.abs(weights(3, seed=3)) + 0.5)], (2, 5, 6)),
    "per-channel Add as the bias": (
        [conv("x", "w", "c"), helper.make_node("Add", ["c", "b"], ["y"])],
        [init("w", weights(3, 2, 2, 2)), init("b", weights(3, 1, 1))], (2, 4, 4)),
    "max pool with pads and strides, ReLU after it": (
        [conv("x", "w", "c", "b"),
         helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[3, 2], pads=[1, 0, 2, 1],
                          strides=[2, 1]),
         helper.make_node("Relu", ["p"], ["y"])],
        [init("w", weights(3, 2, 2, 2)), init("b", weights(3))], (2, 8, 7)),
    "average pool counting padding": (
        [conv("x", "w", "c", "b"), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("AveragePool", ["r"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                          strides=[2, 2], count_include_pad=1)],
        [init("w", weights(3, 2, 2, 2)), init("b", weights(3))], (2, 8, 7)),
    "average pool not counting padding": (
        [conv("x", "w", "c", "b"),
         helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[2, 3], pads=[1, 2, 0, 1],
                          strides=[1, 2])],
        [init("w", weights(3, 2, 2, 2)), init("b", weights(3))], (2, 8, 7)),
    "1-D average pool": (
        [conv("x", "w", "c", "b"),
         helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[3], strides=[2])],
        [init("w", weights(3, 2, 2)), init("b", weights(3))], (2, 15)),
    "global average pool, flatten, gemm, batch norm": (
        [conv("x", "w", "c", "b"), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["g"]),
         helper.make_node("Flatten", ["g"], ["f"]),
         helper.make_node("Gemm", ["f", "w1", "b1"], ["h"], transB=1),
         helper.make_node("BatchNormalization", ["h", "s", "t", "m", "v"], ["y"])],
        [init("w", weights(4, 2, 3, 3)), init("b", weights(4)), init("w1", weights(5, 4)),
         init("b1", weights(5)), init("s", weights(5) + 1), init("t", weights(5, seed=1)),
         init("m", weights(5, seed=2)), init("v", np.abs(weights(5, seed=3)) + 0.5)],
        (2, 6, 5)),
    "ReduceMean over the spatial axes without keepdims": (
        [conv("x", "w", "c", "b"),
         helper.make_node("ReduceMean", ["c", "axes"], ["m"], keepdims=0),
         helper.make_node("Gemm", ["m", "w1"], ["y"])],
        [init("w", weights(4, 2, 3, 3)), init("b", weights(4)), init("w1", weights(4, 3)),
         numpy_helper.from_array(np.array([-1, 2], np.int64), "axes")], (2, 6, 5), 18),
    "ReduceMean with axes as an attribute": (
        [conv("x", "w", "c", "b"),
         helper.make_node("ReduceMean", ["c"], ["y"], axes=[2, 3])],
        [init("w", weights(4, 2, 3, 3)), init("b", weights(4))], (2, 6, 5), 13),
    "conv stack into dense layers": (
        [conv("x", "w", "c", "b", pads=[1, 1, 1, 1], strides=[2, 2]),
         helper.make_node("Relu", ["c"], ["r"]),
         conv("r", "w1", "c1", "b1", pads=[0, 1, 0, 1]),
         helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("MaxPool", ["r1"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("MatMul", ["f", "w2"], ["m"]),
         helper.make_node("Add", ["m", "b2"], ["y"])],
        [init("w", weights(4, 3, 3, 3)), init("b", weights(4)), init("w1", weights(6, 4, 3, 3)),
         init("b1", weights(6)), init("w2", weights(6 * 2 * 4, 7)), init("b2", weights(7))],
        (3, 13, 15)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_conv_ops_match_onnxruntime(name):
    nodes, initializers, shape, *opset = CASES[name]
    proto = conv_model(nodes, initializers, shape, opset=opset[0] if opset else 17)
    network = assert_matches_onnxruntime(proto, shape)
    assert network.layers[0].kind is LayerKind.CONV


# -- errors -------------------------------------------------------------------------------------

W = [init("w", weights(3, 2, 3, 3)), init("b", weights(3))]
ERRORS = {
    "group": ([conv("x", "w", "y", group=2, name="grouped")],
              [init("w", weights(4, 1, 3, 3))],
              "Conv node 'grouped' has group=2; only group=1 is supported (no grouped or "
              "depthwise convolution)"),
    "dilation": ([conv("x", "w", "y", dilations=[2, 2], name="dilated")], W,
                 "Conv node 'dilated' has dilations=[2, 2]; only dilation 1 is supported"),
    "ceil_mode": ([conv("x", "w", "c"),
                   helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2], ceil_mode=1,
                                    name="ceiling")], W,
                  "MaxPool node 'ceiling' has ceil_mode=1; only ceil_mode=0 (PyTorch's "
                  "default) is supported"),
    "pool dilation": ([conv("x", "w", "c"),
                       helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2],
                                        dilations=[1, 2], name="spread")], W,
                      "MaxPool node 'spread' has dilations=[1, 2]; only dilation 1 is "
                      "supported"),
    "pool on the input": ([helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2],
                                            name="early"), conv("p", "w", "y")], W,
                          "MaxPool node 'early' pools the model input; the accelerator pools "
                          "only a Conv's output, in its readout"),
    "two pools": ([conv("x", "w", "c", name="conv"),
                   helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2]),
                   helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[2, 2],
                                    name="again")], W,
                  "AveragePool node 'again' pools the output of Conv node 'conv', which is "
                  "pooled already; the accelerator runs one pool after each Conv"),
    "batch norm after relu": (
        [conv("x", "w", "c", name="conv"), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("BatchNormalization", ["r", "b", "b", "b", "v"], ["y"],
                          name="late")], W + [init("v", np.ones(3))],
        "BatchNormalization node 'late' normalizes the output of Conv node 'conv' after its "
        "activation, pool or reshape; only a BatchNormalization right after a Conv, Gemm or "
        "MatMul is supported (it is folded into its weights)"),
    "relu after an average pool": (
        [conv("x", "w", "c", name="conv"),
         helper.make_node("AveragePool", ["c"], ["p"], kernel_shape=[2, 2]),
         helper.make_node("Relu", ["p"], ["y"], name="after")], W,
        "Relu node 'after' follows the AveragePool after Conv node 'conv', which has no "
        "activation; the accelerator applies ReLU before the pool: move the ReLU before the "
        "AveragePool"),
    "max pool indices": ([conv("x", "w", "c"),
                          helper.make_node("MaxPool", ["c"], ["y", "i"], kernel_shape=[2, 2],
                                           name="indexed")], W,
                         "MaxPool node 'indexed' returns the indices of its maxima; only the "
                         "pooled values are supported"),
    "bias per position": ([conv("x", "w", "c", name="conv"),
                           helper.make_node("Add", ["c", "p"], ["y"], name="bias")],
                          W + [init("p", weights(3, 4, 5))],
                          "the constant 'p' of Add node 'bias' has shape (3, 4, 5); as a bias "
                          "of a map of shape (N, 3, 4, 5) it must hold one value per channel, "
                          "shape (3, 1, 1)"),
    "mean over channels": ([conv("x", "w", "c"),
                            helper.make_node("ReduceMean", ["c"], ["y"], axes=[1],
                                             name="squash")], W,
                           "ReduceMean node 'squash' averages over axes [1] of a tensor of "
                           "shape (N, 3, 4, 5); only a mean over every spatial axis of a Conv's "
                           "map (a global average pool) is supported"),
    "conv of a vector": ([helper.make_node("Flatten", ["x"], ["f"]),
                          conv("f", "w", "y", name="flat")], W,
                         "Conv node 'flat' takes a tensor of shape (N, 84) (a vector); Conv "
                         "takes a 1-D (N, C, W) or 2-D (N, C, H, W) map"),
    "kernel_shape mismatch": ([conv("x", "w", "y", kernel_shape=[2, 2], name="odd")], W,
                              "Conv node 'odd' has kernel_shape=[2, 2] but its weight 'w' has "
                              "shape (3, 2, 3, 3)"),
    "channels mismatch": ([conv("x", "w", "y", name="wide")], [init("w", weights(3, 4, 3, 3))],
                          "the weight 'w' of Conv node 'wide' has shape (3, 4, 3, 3); a Conv "
                          "over (N, 2, 6, 7) needs (M, 2, k, k)"),
    "kernel larger than the map": ([conv("x", "w", "y", name="big")],
                                   [init("w", weights(3, 2, 7, 3))],
                                   "Conv node 'big': a 7 x 3 kernel does not fit the 6 x 7 map "
                                   "padded by (0, 0, 0, 0)"),
    "gemm on a map": ([conv("x", "w", "c"),
                       helper.make_node("Gemm", ["c", "w1"], ["y"], name="fc")],
                      W + [init("w1", weights(60, 2))],
                      "Gemm node 'fc' takes a tensor of shape (N, 3, 4, 5); dense layers take "
                      "vectors: flatten it to (N, 60) first with Flatten or Reshape"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_conv_import_errors_name_the_node_and_attribute(name):
    nodes, initializers, message = ERRORS[name]
    proto = conv_model(nodes, initializers, (2, 6, 7))
    with pytest.raises(InputError, match="^" + re.escape(message) + "$"):
        network_from_onnx(proto)


def test_3d_conv_is_refused():
    proto = conv_model([conv("x", "w", "y", name="volume")],
                       [init("w", weights(2, 1, 2, 2, 2))], (1, 4, 4, 4))
    with pytest.raises(InputError, match="^" + re.escape(
            "Conv node 'volume' takes a tensor of shape (N, 1, 4, 4, 4) (3-D); Conv takes a "
            "1-D (N, C, W) or 2-D (N, C, H, W) map") + "$"):
        network_from_onnx(proto)


# -- compiled and run -------------------------------------------------------------------------

def assert_runs_equal(rtl, golden, rtl_baseline, golden_baseline):
    """The RTL's runs, with reuse and without, give the golden model's outputs and counters."""
    for got, want in ((rtl, golden), (rtl_baseline, golden_baseline)):
        assert got.outputs.tolist() == want.outputs.tolist()
        for ours, theirs in zip(got.frames, want.frames):
            assert ours.cycles == theirs.cycles
            for name in ("layer_cycles", "changed_inputs", "out_of_range", "weight_rows",
                         "macs", "saturated_outputs"):
                assert getattr(ours, name).tolist() == getattr(theirs, name).tolist(), name


def exact_network(pool=True):
    """A conv, ReLU, max pool, flatten, dense network whose fixed-point arithmetic is exact:
    conv weights are multiples of 1/16, dense weights integers, frames multiples of 1/16
    (without the pool, ``pool=False``)."""
    rng = np.random.default_rng(5)
    w = rng.integers(-32, 33, (4, 2, 3, 3)) / 16
    w1 = rng.integers(-2, 3, (3, 4 * 3 * 4 if pool else 4 * 6 * 8)).astype(float)
    pooling = ([helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2])]
               if pool else [helper.make_node("Identity", ["r"], ["p"])])
    proto = conv_model(
        [conv("x", "w", "c", "b", pads=[1, 0, 1, 1], strides=[1, 2]),
         helper.make_node("Relu", ["c"], ["r"]),
         *pooling,
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Gemm", ["f", "w1", "b1"], ["y"], transB=1)],
        [init("w", w), init("b", rng.integers(-8, 9, 4) / 16), init("w1", w1),
         init("b1", rng.integers(-8, 9, 3) / 4)], (2, 6, 17))
    frames = rng.integers(-24, 25, (6, 2, 6, 17)) / 16
    return network_from_onnx(proto), frames


def test_conv_model_runs_exactly_in_fixed_point_with_channels_last_storage():
    """Without reuse the fixed point is exact here, so the golden model's outputs equal the
    float network's: the frames, the dense weight columns and the outputs are permuted
    between ONNX's channels-first order and the hardware's channels-last order consistently."""
    network, frames = exact_network()
    config = size_config(network, AccelConfig(reuse=False))
    compiled = compile_model(network, config, frames)
    run, _ = Driver(compiled).run(frames)
    assert run.outputs.tolist() == network.forward(frames).tolist()
    dense = compiled.layers[1]
    # Column (y, x, c) of the compiled dense layer is PyTorch's column (c, y, x).
    assert dense.weights[:, (1 * 4 + 2) * 4 + 3].tolist() == \
        (network.layers[1].weight[:, 3 * 12 + 1 * 4 + 2] * (1 << compiled.layers[1].shift)
         ).tolist()


def test_conv_model_with_reuse_equals_its_baseline_and_counts_work():
    network, frames = exact_network()
    frames = np.repeat(frames, 2, axis=0)          # every other frame repeats the one before
    compiled = compile_model(network, size_config(network), frames)
    run, baseline = Driver(compiled).run(frames)
    assert run.outputs.tolist() == baseline.outputs.tolist()
    geometry = network.layers[0].geometry
    per_input = np.repeat(geometry.outputs_per_input().reshape(-1), 2)
    assert baseline.frames[0].weight_rows[0] == per_input.sum()        # 4 channels: 1 group
    assert baseline.frames[0].macs[0] == per_input.sum() * 4
    for t in range(1, len(frames), 2):
        assert run.frames[t].changed_inputs.tolist() == [0, 0]
        assert run.frames[t].weight_rows.tolist() == [0, 0]
        assert run.frames[t].cycles < run.frames[t - 1].cycles


@pytest.mark.parametrize("backend", ["amaranth", "verilator"])
def test_a_dense_layer_over_a_map_with_padding_lanes_runs_on_the_rtl(backend):
    """exact_network on 8 lanes: the dense layer flattens 12 pooled positions of 4 channels,
    each position a row whose last 4 lanes are padding. The rows' real lanes come from the map
    (SET_CONV's channel_rows and channel_lanes for the dense layer), the weights sit by buffer
    slot (92 slots, zero columns for the padding), and only the 48 real inputs count: outputs
    and counters equal the golden model's, with and without reuse, and without reuse the
    float network's (the fixed point is exact here)."""
    network, frames = exact_network()
    for reuse in (True, False):
        config = size_config(network, AccelConfig(reuse=reuse))
        compiled = compile_model(network, config, frames)
        dense = compiled.layers[1]
        assert dense.input_map == MapLayout(12, 4) and dense.input_layout.span(8) == 92
        rtl, rtl_baseline = Driver(compiled, backend=backend).run(frames[:3])
        golden, golden_baseline = Driver(compiled).run(frames[:3])
        assert_runs_equal(rtl, golden, rtl_baseline, golden_baseline)
        assert max(frame.changed_inputs[1] for frame in rtl_baseline.frames) == 48
        if not reuse:
            assert rtl.outputs.tolist() == network.forward(frames[:3]).tolist()


@pytest.mark.parametrize("pool,backend", [
    (True, "amaranth"), (False, "amaranth"), (True, "verilator"),
    pytest.param(True, "icarus", marks=pytest.mark.skipif(
        shutil.which("iverilog") is None,
        reason="Icarus Verilog (iverilog) is not installed: apt-get install iverilog")),
], ids=["max-pool-amaranth", "no-pool-amaranth", "max-pool-verilator", "max-pool-icarus"])
def test_onnx_conv_model_on_the_rtl_equals_the_golden_model(pool, backend):
    """The ONNX conv model, with its max pool and without, on 4-lane hardware sized for it, in
    Amaranth's simulator and (with the pool) its Verilog in Verilator and Icarus: frames packed
    channels last, the shape sent with SET_CONV, the outputs and every counter as the golden
    model gives them."""
    network, frames = exact_network(pool=pool)
    compiled = compile_model(network, size_config(network, AccelConfig(lanes=4)), frames)
    assert compiled.config.max_kernel == 3
    rtl, rtl_baseline = Driver(compiled, backend=backend).run(frames[:3])
    golden, golden_baseline = Driver(compiled).run(frames[:3])
    assert_runs_equal(rtl, golden, rtl_baseline, golden_baseline)


@pytest.mark.parametrize("backend", [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        shutil.which("iverilog") is None,
        reason="Icarus Verilog (iverilog) is not installed: apt-get install iverilog")),
])
def test_exported_1d_cnn_on_the_rtl_equals_the_golden_model(backend):
    """The exported 1-D CNN (two Conv1d with stride, padding and a padded MaxPool1d, then two
    Linear) on 4-lane hardware sized for it, over frames where one repeats the frame before:
    outputs and every counter as the golden model gives them, the repeated frame changing no
    input of any layer."""
    network = load_onnx(DATA / "cnn1d_dynamo.onnx")
    frames = np.cumsum(np.random.default_rng(8).normal(size=(3, 4, 40)) * 0.4, axis=0)
    frames = np.concatenate([frames[:2], frames[1:2], frames[2:]])
    compiled = compile_model(network, size_config(network, AccelConfig(lanes=4)), frames)
    rtl, rtl_baseline = Driver(compiled, backend=backend).run(frames)
    golden, golden_baseline = Driver(compiled).run(frames)
    assert_runs_equal(rtl, golden, rtl_baseline, golden_baseline)
    assert rtl.frames[2].changed_inputs.tolist() == [0, 0, 0, 0]


def test_cli_runs_a_cnn_on_the_golden_backend_and_reports_kinds_and_shapes(tmp_path, capsys):
    frames = np.cumsum(np.random.default_rng(0).normal(size=(5, 3, 12, 16)) * 0.2, axis=0)
    np.save(tmp_path / "frames.npy", frames)
    report_path = tmp_path / "report.json"
    code = main(["run", str(DATA / "cnn2d_classic.onnx"), str(tmp_path / "frames.npy"),
                 "--json", str(report_path)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[1].split() == ["layer", "kind", "shape", "similarity", "reuse", "cycles",
                              "baseline", "out-of-range", "saturated"]
    assert [line.split()[:5] for line in out[2:6]] == [
        ["0", "conv", "3x12x16", "->", "8x6x8"], ["1", "conv", "8x6x8", "->", "12x4x5"],
        ["2", "conv", "12x4x5", "->", "6x1x1"], ["3", "dense", "6", "->", "5"]]
    report = json.loads(report_path.read_text())
    first, last = report["layers"][0], report["layers"][3]
    assert (first["kind"], first["input_shape"], first["output_shape"], first["kernel"],
            first["stride"], first["padding"]) == ("conv", [3, 12, 16], [8, 6, 8], [3, 3],
                                                   [1, 1], [1, 1, 1, 1])
    assert first["pool"] == {"mode": "max", "kernel": [2, 2], "stride": [2, 2],
                             "padding": [0, 0, 0, 0], "count_include_pad": False}
    assert (last["kind"], last["input_shape"], "kernel" in last) == ("dense", [6], False)
    assert np.array(report["reference_outputs"]).shape == (5, 5)
    network = load_onnx(DATA / "cnn2d_classic.onnx")
    assert np.allclose(report["reference_outputs"], network.forward(frames))
    frame_rows = [sum(frame["baseline_weight_rows"]) for frame in report["frames"]]
    assert report["summary"]["ideal_speedup"] == pytest.approx(
        sum(frame_rows) / sum(sum(frame["weight_rows"]) for frame in report["frames"]))


@pytest.mark.parametrize("backend", [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        shutil.which("iverilog") is None,
        reason="Icarus Verilog (iverilog) is not installed: apt-get install iverilog")),
])
def test_exported_cnn_with_average_pools_on_the_rtl_equals_the_golden_model(backend):
    """The exported 2-D CNN (data/make_onnx_fixtures.py) on 4-lane hardware sized for it: a max
    pool, an average pool whose divisor counts the padding (every window divides by 4, even
    where only one of its cells is inside the map), and a global average over 4 x 5 (divisor
    20), each rounded half up in the readout as the golden model rounds it; outputs and every
    counter equal, with and without reuse."""
    network = load_onnx(DATA / "cnn2d_dynamo.onnx")
    frames = np.cumsum(np.random.default_rng(4).normal(size=(3, 3, 12, 16)) * 0.3, axis=0)
    compiled = compile_model(network, size_config(network, AccelConfig(lanes=4)), frames)
    assert compiled.config.max_kernel == 5
    rtl, rtl_baseline = Driver(compiled, backend=backend).run(frames)
    golden, golden_baseline = Driver(compiled).run(frames)
    assert_runs_equal(rtl, golden, rtl_baseline, golden_baseline)
    assert np.abs(golden.outputs - network.forward(frames)).max() < 0.1


def test_hardware_without_room_for_the_conv_model_names_the_parameter():
    """exact_network: a 2 x 6 x 17 map, a 3 x 3 conv with stride 1 x 2 (6 x 8 outputs of 4
    channels) and a 2 x 2 max pool, then a dense layer of 48 inputs; 8 lanes. Its largest map
    is the input, 102 positions of one row; the layers' inputs take 102 + 12 rows of input
    state (the dense layer's, one per pooled position); their sums 48 + 1 rows."""
    network, frames = exact_network()
    sized = size_config(network)
    cases = [
        (AccelConfig(), "layer 0 has a 3 x 3 kernel with stride 1 x 2 and a 2 x 2 pool with "
         "stride 2 x 2 but the hardware has no conv layers (max_kernel); generate hardware "
         "with max_kernel >= 3"),
        (dataclasses.replace(sized, max_height=5), "layer 0 takes a 6 x 17 map but the "
         "hardware holds maps up to 5 x 17 (max_height); generate hardware with max_height >= 6"),
        (dataclasses.replace(sized, buffer_depth=64), "the model needs 102 rows of 8 values in "
         "each I/O buffer bank (the largest map) but the hardware has 64 (buffer_depth); "
         "generate hardware with buffer_depth >= 102"),
        (dataclasses.replace(sized, state_depth=100), "the model needs 114 rows of 8 values of "
         "input state (every layer's inputs) but the hardware has 100 (state_depth); generate "
         "hardware with state_depth >= 114"),
        (dataclasses.replace(sized, sum_depth=40), "the model needs 49 rows of 8 values of sums "
         "(every layer's outputs before pooling) but the hardware has 40 (sum_depth); generate "
         "hardware with sum_depth >= 49"),
        # The dense layer's inputs sit by buffer slot: 12 rows of 8 lanes, the last 4 of each
        # padding (92 slots up to the last value), and so do its weight rows; the conv layer's
        # weights take 2 x 3 x 3 rows.
        (dataclasses.replace(sized, max_neurons=64), "layer 1 has 92 input slots (a map of 48 "
         "values, each position in whole rows of 8 lanes) but the hardware holds at most 64 per "
         "layer (max_neurons); generate hardware with max_neurons >= 92"),
        (dataclasses.replace(sized, weight_depth=100), "the model needs 110 weight-memory rows "
         "of 8 weights but the hardware has 100 (weight_depth); generate hardware with "
         "weight_depth >= 110"),
    ]
    for config, message in cases:
        with pytest.raises(ModelFitError, match="^" + re.escape(message) + "$"):
            compile_model(network, config, frames)
    assert (sized.max_kernel, sized.max_height, sized.max_width, sized.buffer_depth) == \
        (3, 6, 17, 102)


def test_rtl_backends_refuse_padding_as_large_as_the_kernel():
    proto = conv_model([conv("x", "w", "y", "b", pads=[3, 1, 1, 1])],
                       [init("w", weights(2, 1, 3, 3)), init("b", weights(2))], (1, 6, 6))
    network = network_from_onnx(proto)
    frames = np.random.default_rng(2).normal(size=(2, 1, 6, 6))
    compiled = compile_model(network, size_config(network), frames)
    Driver(compiled).run(frames)          # the golden model runs it
    with pytest.raises(InputError, match="^" + re.escape(
            "layer 0 cannot run on the gateware: padding (3, 1, 1, 1) must be smaller than the "
            "kernel (3, 3) (an output whose window is all padding would never start from its "
            "bias); run the model with --backend golden") + "$"):
        Driver(compiled, backend="verilator")
