"""The ONNX importer on recurrent models (LSTM, GRU), against onnxruntime: PyTorch's exports
by both exporters, batch-first either way, models built with onnx.helper for every supported
form, the refusals of everything else, and the accelerator's refusal to run them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import reuse_accel.data
from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.recurrent import RecurrentShape
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.model import FixedLayer, GoldenModel
from reuse_accel.sw.cli import main
from reuse_accel.sw.compiler import ModelFitError, check_fits, compile_model, size_config
from reuse_accel.sw.driver import Driver
from reuse_accel.sw.network import InputError, Layer, Network, load_labels
from reuse_accel.sw.onnx_import import load_onnx, network_from_onnx

DATA = Path(__file__).resolve().parents[1] / "data"
FEATURES, HIDDEN = 5, 7


def init(name, array, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(array, dtype), name)


def run_onnxruntime(proto_or_path, frames, *, batch_first=False, output_batch_first=None):
    """The model's outputs over ``frames`` (T, features) as one sequence of batch 1, (T, out);
    the input (and, unless ``output_batch_first`` says otherwise, the output) batch first or
    time first."""
    source = proto_or_path if isinstance(proto_or_path, str) else \
        proto_or_path.SerializeToString()
    session = onnxruntime.InferenceSession(source)
    x = (frames[None] if batch_first else frames[:, None]).astype(np.float32)
    y = session.run(None, {"x": x})[0]
    output_batch_first = batch_first if output_batch_first is None else output_batch_first
    return y[0] if output_batch_first else y[:, 0]


def assert_close(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("first", ["seq", "batch"])
@pytest.mark.parametrize("form", ["classic", "dynamo"])
def test_exported_recurrent_models_match_onnxruntime(kind, first, form):
    """data/make_onnx_fixtures.py: two stacked layers (5 inputs, hidden 7) and a Linear(7, 3)
    on every step. The classic export has symbolic time and batch axes (11 steps here); the
    dynamo export is fixed at its example's 6 steps, which the importer does not keep: the
    network runs any number of frames, one time step each."""
    path = str(DATA / f"{kind}_{first}_first_{form}.onnx")
    network = load_onnx(path)
    cell = LayerKind.LSTM if kind == "lstm" else LayerKind.GRU
    assert network.input_shape == (FEATURES,)
    assert [(layer.kind, layer.recurrent, layer.inputs, layer.outputs)
            for layer in network.layers] == [
        (cell, RecurrentShape(kind, FEATURES, HIDDEN), FEATURES, HIDDEN),
        (cell, RecurrentShape(kind, HIDDEN, HIDDEN), HIDDEN, HIDDEN),
        (LayerKind.DENSE, None, HIDDEN, 3)]
    steps = 11 if form == "classic" else 6
    frames = np.random.default_rng(3).normal(size=(steps, FEATURES))
    expected = run_onnxruntime(path, frames, batch_first=first == "batch")
    assert_close(network.forward(frames), expected)
    if form == "dynamo":
        # A longer sequence: its first 6 steps are the 6-step run's.
        longer = np.concatenate([frames, frames[::-1]])
        assert_close(network.forward(longer)[:steps], expected)


# -- every form, built with onnx.helper ---------------------------------------------------------

def recurrent_model(op, *, layout=0, attributes=None, bias=True, states=(), extra=(),
                    transpose=False, outputs=("y",), opset=17, seed=0):
    """``x`` -> op (hidden 7) -> Squeeze of the direction axis -> MatMul by a (7, 2) weight.
    ``states``: (input name, array) initial states or peepholes; ``extra``: more nodes."""
    rng = np.random.default_rng(seed)
    gates = 4 if op == "LSTM" else 3
    inputs = ["x_seq" if transpose else "x", "W", "R", "B" if bias else ""]
    initializers = [init("W", rng.normal(0, 0.5, (1, gates * HIDDEN, FEATURES))),
                    init("R", rng.normal(0, 0.5, (1, gates * HIDDEN, HIDDEN))),
                    init("fc", rng.normal(0, 0.5, (HIDDEN, 2))),
                    init("squeeze_axes", [2 if layout else 1], np.int64)]
    if bias:
        initializers.append(init("B", rng.normal(0, 0.3, (1, 2 * gates * HIDDEN))))
    slots = {"sequence_lens": 4, "initial_h": 5, "initial_c": 6, "P": 7}
    for name, array in states:
        while len(inputs) <= slots[name]:
            inputs.append("")
        inputs[slots[name]] = name
        if array is not None:
            initializers.append(init(name, array, np.int32 if name == "sequence_lens"
                                     else np.float32))
    attributes = {"hidden_size": HIDDEN, **({"layout": layout} if layout else {}),
                  **(attributes or {})}
    if op == "GRU":
        attributes.setdefault("linear_before_reset", 1)
    nodes = ([helper.make_node("Transpose", ["x"], ["x_seq"], perm=[1, 0, 2])]
             if transpose else [])
    nodes += [helper.make_node(op, inputs, ["Y", *outputs[1:]], name="rnn", **attributes),
              helper.make_node("Squeeze", ["Y", "squeeze_axes"], ["h"]),
              *extra]
    if not any(node.output[0] == "y" for node in extra):
        nodes.append(helper.make_node("MatMul", ["h", "fc"], ["y"]))
    shape = ["N", "T", FEATURES] if layout or transpose else ["T", "N", FEATURES]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


ZEROS = np.zeros((1, 1, HIDDEN))


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("case", ["plain", "no bias", "zero states", "batch-first transpose"])
def test_recurrent_forms_match_onnxruntime(op, case):
    states = [("initial_h", ZEROS)]
    if op == "LSTM":
        states += [("initial_c", ZEROS), ("P", np.zeros((1, 3 * HIDDEN)))]
    proto = recurrent_model(op, bias=case != "no bias",
                            states=states if case == "zero states" else (),
                            transpose=case == "batch-first transpose")
    network = network_from_onnx(proto)
    frames = np.random.default_rng(5).normal(size=(9, FEATURES))
    # The transposed model reads (N, T, features) and returns (T, N, 2).
    expected = run_onnxruntime(proto, frames, batch_first=case == "batch-first transpose",
                               output_batch_first=False)
    assert_close(network.forward(frames), expected)


def test_a_reshape_that_merges_time_and_batch():
    """PyTorch's ``out.reshape(-1, H)`` before a Linear: (T, N, H) to (T * N, H), each frame
    still one time step (the batch is 1)."""
    shape = init("merged", [-1, HIDDEN], np.int64)
    proto = recurrent_model("LSTM", extra=[
        helper.make_node("Reshape", ["h", "merged"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["y"])])
    proto.graph.initializer.append(shape)
    frames = np.random.default_rng(9).normal(size=(7, FEATURES))
    session = onnxruntime.InferenceSession(proto.SerializeToString())
    expected = session.run(None, {"x": frames[:, None].astype(np.float32)})[0]
    assert expected.shape == (7, 2)
    assert_close(network_from_onnx(proto).forward(frames), expected)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_the_batchwise_layout_matches_onnxs_reference(op):
    """``layout = 1`` (the sequence read as (N, T, features), Y as (N, T, 1, H)): onnxruntime
    does not implement it, so ONNX's reference implementation is the oracle."""
    proto = recurrent_model(op, layout=1)
    frames = np.random.default_rng(6).normal(size=(8, FEATURES))
    expected = ReferenceEvaluator(proto).run(None, {"x": frames[None].astype(np.float32)})[0]
    assert_close(network_from_onnx(proto).forward(frames), expected[0])


def test_gru_weights_keep_the_candidates_recurrent_part_apart():
    """A GRU's four groups of sums: z and r over [x ; h], the candidate's n_x over x only and
    n_h over h only, each with its own bias (ONNX's Wb_h and Rb_h), so that r can multiply
    n_h."""
    proto = recurrent_model("GRU")
    weights = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    layer = network_from_onnx(proto).layers[0]
    w, r, b = weights["W"][0], weights["R"][0], weights["B"][0]
    h = HIDDEN
    np.testing.assert_array_equal(layer.weight[:2 * h], np.hstack([w[:2 * h], r[:2 * h]]))
    np.testing.assert_array_equal(layer.weight[2 * h:3 * h],
                                  np.hstack([w[2 * h:], np.zeros((h, h))]))
    np.testing.assert_array_equal(layer.weight[3 * h:], np.hstack([np.zeros((h, FEATURES)),
                                                                   r[2 * h:]]))
    np.testing.assert_allclose(layer.bias, np.concatenate(
        [b[:2 * h] + b[3 * h:5 * h], b[2 * h:3 * h], b[5 * h:]]))


# -- what is refused --------------------------------------------------------------------------

def refused(proto, message):
    with pytest.raises(InputError) as error:
        network_from_onnx(proto)
    assert str(error.value) == message


STREAMING = ("only 'forward' is supported: a bidirectional or reverse layer needs the whole "
             "sequence before its first output, which streaming one frame per time step cannot "
             "give")


def test_bidirectional_and_reverse_layers_are_refused():
    refused(recurrent_model("LSTM", attributes={"direction": "bidirectional"}),
            f"LSTM node 'rnn' has direction='bidirectional'; {STREAMING}")
    refused(recurrent_model("GRU", attributes={"direction": "reverse"}),
            f"GRU node 'rnn' has direction='reverse'; {STREAMING}")


def test_peepholes_and_nonzero_initial_states_are_refused():
    refused(recurrent_model("LSTM", states=[("P", np.ones((1, 3 * HIDDEN)))]),
            "LSTM node 'rnn' has peepholes (input P); only an LSTM without peepholes is "
            "supported")
    refused(recurrent_model("GRU", states=[("initial_h", np.full((1, 1, HIDDEN), 0.5))]),
            "GRU node 'rnn' has a nonzero initial_h; only a zero initial state is supported (a "
            "sequence starts from h = 0, c = 0)")
    refused(recurrent_model("LSTM", states=[("initial_c", np.ones((1, 1, HIDDEN)))]),
            "LSTM node 'rnn' has a nonzero initial_c; only a zero initial state is supported "
            "(a sequence starts from h = 0, c = 0)")
    refused(recurrent_model("LSTM", states=[("sequence_lens", [4])]),
            "LSTM node 'rnn' takes sequence_lens; only whole sequences (no sequence_lens "
            "input) are supported")


def test_attributes_other_than_pytorchs_are_refused():
    refused(recurrent_model("GRU", attributes={"linear_before_reset": 0}),
            "GRU node 'rnn' has linear_before_reset=0: its candidate gate multiplies r into h "
            "before the recurrent weights, so that product changes whenever r does and cannot "
            "be corrected by deltas; only linear_before_reset=1 (PyTorch's GRU) is supported")
    refused(recurrent_model("LSTM", attributes={"activations": ["Sigmoid", "Relu", "Tanh"]}),
            "LSTM node 'rnn' has activations=['Sigmoid', 'Relu', 'Tanh']; only the defaults "
            "['Sigmoid', 'Tanh', 'Tanh'] are supported")
    refused(recurrent_model("GRU", attributes={"clip": 3.0}),
            "GRU node 'rnn' has clip=3.0; only the default activations without a clip are "
            "supported")
    refused(recurrent_model("LSTM", attributes={"input_forget": 1}),
            "LSTM node 'rnn' has input_forget=1 (coupled input and forget gates); only "
            "input_forget=0 is supported")


def test_the_final_state_outputs_and_other_ops_on_a_sequence_are_refused():
    refused(recurrent_model("LSTM", outputs=("y", "Y_h")),
            "LSTM node 'rnn' has its output 'Y_h' used; only its first output (the values per "
            "frame) is supported")
    refused(recurrent_model("GRU", extra=[helper.make_node("Relu", ["h"], ["y"])]),
            "Relu node #2 (unnamed) acts on the output of GRU node 'rnn'; a recurrent layer's "
            "output has its cell's activations: only a ReLU after a Conv, Gemm or MatMul is "
            "supported")
    refused(recurrent_model("LSTM", extra=[helper.make_node("Flatten", ["h"], ["y"])]),
            "Flatten node #2 (unnamed) takes (T, N, 7), a sequence; after a recurrent layer "
            "only dense layers (MatMul, Gemm with Add), Relu and the sequence's Transpose, "
            "Squeeze and Reshape are supported")


def test_the_gateware_backends_and_generate_refuse_a_recurrent_model(tmp_path, capsys):
    """The golden model runs recurrent layers; the gateware does not have them yet: the RTL
    backends and generate --model stop before building anything, naming the layer."""
    model = str(DATA / "lstm_seq_first_classic.onnx")
    network = load_onnx(model)
    frames = np.random.default_rng(0).normal(size=(4, FEATURES))
    compiled = compile_model(network, size_config(network), frames)
    message = ("layer 0 (LSTM) is of a kind the gateware does not have yet (it has dense and "
               "conv layers)")
    with pytest.raises(InputError) as error:
        Driver(compiled, backend="verilator")
    assert str(error.value) == f"{message}; run the model with --backend golden"
    np.save(tmp_path / "frames.npy", frames)
    code = main(["run", model, str(tmp_path / "frames.npy"), "--backend", "icarus"])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert captured.err == f"reuse-accel: error: {message}; run the model with --backend golden\n"
    code = main(["generate", "--model", model, "-o", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert captured.err == (f"reuse-accel: error: {message}; run the model with reuse-accel run "
                            "--backend golden\n")
    assert not (tmp_path / "out").exists()


def test_the_shipped_speech_lstm_imports_and_scores_as_trained():
    """data/make_speech_lstm.py: LSTM(40, 64) and Linear(64, 11) over the demo sentence's 40
    log mel energies per frame (the centre of each spliced speech_frames.npy row). The float
    network equals onnxruntime, and its frame accuracy is what PyTorch measured when training
    (speech_lstm.json)."""
    folder = Path(reuse_accel.data.__file__).parent
    meta = json.loads((folder / "speech_lstm.json").read_text())
    network = load_onnx(folder / "speech_lstm.onnx")
    assert [(layer.kind, layer.inputs, layer.outputs) for layer in network.layers] == [
        (LayerKind.LSTM, 40, 64), (LayerKind.DENSE, 64, 11)]
    assert meta["input"] == "speech_frames.npy[:, 200:240]"
    frames = np.load(folder / "speech_frames.npy")[:, 200:240].astype(np.float64)
    labels = np.load(folder / "speech_labels.npy")
    outputs = network.forward(frames)
    assert_close(outputs, run_onnxruntime(str(folder / "speech_lstm.onnx"), frames))
    assert round(float(np.mean(outputs.argmax(axis=1) == labels)), 4) == \
        meta["frame_accuracy_float"]["demo"]


def test_the_shipped_speech_lstm_runs_on_the_golden_model(tmp_path, capsys):
    """The demo sentence through the LSTM on hardware sized for it (16 clusters), calibrated
    on the training voices: the report names the kind, counts x and h as the layer's inputs,
    and the frame accuracy stays within 3 points of the float network's 93.9% (measured:
    91.1%; 32 clusters give 93.1%)."""
    folder = Path(reuse_accel.data.__file__).parent
    np.save(tmp_path / "frames.npy", np.load(folder / "speech_frames.npy")[:, 200:240])
    np.save(tmp_path / "calibration.npy",
            np.load(folder / "speech_calibration.npy")[:, 200:240])
    report_path = tmp_path / "report.json"
    code = main(["run", str(folder / "speech_lstm.onnx"), str(tmp_path / "frames.npy"),
                 "--labels", str(folder / "speech_labels.npy"), "--calibration",
                 str(tmp_path / "calibration.npy"), "--json", str(report_path)])
    assert code == 0
    assert "    0 lstm  40 -> 64 " in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    summary, first = report["summary"], report["layers"][0]
    assert (first["kind"], first["inputs"], first["outputs"]) == ("lstm", 40, 64)
    changed = sum(frame["changed_inputs"][0] for frame in report["frames"][1:])
    assert first["input_similarity"] == pytest.approx(
        1 - changed / ((40 + 64) * (summary["frames"] - 1)))
    assert summary["float_accuracy"] == pytest.approx(0.9393, abs=1e-4)
    assert summary["accuracy"] >= summary["float_accuracy"] - 0.03
    assert summary["speedup"] > 1.5


# -- the errors of malformed recurrent graphs, layers and data ---------------------------------

def graph(nodes, initializers, shape=("T", "N", FEATURES), outputs=("y",)):
    model = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        initializers)
    return helper.make_model(model, opset_imports=[helper.make_opsetid("", 17)])


def lstm_parts(hidden=HIDDEN, weight_rows=4 * HIDDEN):
    rng = np.random.default_rng(0)
    return [init("W", rng.normal(size=(1, weight_rows, FEATURES))),
            init("R", rng.normal(size=(1, weight_rows, hidden))),
            init("fc", rng.normal(size=(hidden, 2))),
            init("one", [1], np.int64)]


def test_malformed_recurrent_graphs_name_the_node_and_the_fix():
    lstm = helper.make_node("LSTM", ["xr", "W", "R"], ["Y"], name="rnn", hidden_size=HIDDEN)
    refused(graph([helper.make_node("Relu", ["x"], ["xr"], name="act"), lstm,
                   helper.make_node("Squeeze", ["Y", "one"], ["h"]),
                   helper.make_node("MatMul", ["h", "fc"], ["y"])], lstm_parts()),
            "LSTM node 'rnn' reads its sequence from Relu node 'act'; the first recurrent node "
            "must read the model input, transposed at most")
    refused(graph([helper.make_node("Transpose", ["x"], ["xr"], name="swap", perm=[0, 2, 1]),
                   lstm], lstm_parts()),
            "Transpose node 'swap' moves the features of the sequence (perm=[0, 2, 1]); only "
            "the time and batch axes may move")
    refused(graph([helper.make_node("LSTM", ["x", "W", "R"], ["Y"], name="rnn",
                                    hidden_size=HIDDEN),
                   helper.make_node("MatMul", ["Y", "fc"], ["y"])], lstm_parts()),
            "the model output 'y' keeps the direction axis (axis 1) of LSTM node 'rnn''s "
            "output; add a Squeeze of that axis after it")
    no_size = helper.make_node("LSTM", ["x", "W", "R"], ["Y"], name="rnn")
    refused(graph([no_size], lstm_parts(), outputs=("Y",)),
            "LSTM node 'rnn' has no hidden_size attribute; export it with hidden_size set "
            "(PyTorch always sets it)")
    wrong = helper.make_node("LSTM", ["x", "W", "R"], ["Y"], name="rnn", hidden_size=8)
    refused(graph([wrong], lstm_parts(), outputs=("Y",)),
            "the weight 'W' of LSTM node 'rnn' has shape (1, 28, 5), not (1, 32, 5) for "
            "hidden_size=8 over 5 inputs")
    computed = helper.make_node("LSTM", ["x", "W", "R", "Bx"], ["Y"], name="rnn",
                                hidden_size=HIDDEN)
    refused(graph([helper.make_node("Identity", ["x"], ["Bx"]), computed], lstm_parts(),
                  outputs=("Y",)),
            "LSTM node 'rnn' takes its bias B from the model input; only a constant bias is "
            "supported")


def test_ops_on_a_sequence_that_are_not_supported_name_the_node():
    refused(graph([helper.make_node("Flatten", ["x"], ["flat"], name="early"),
                   helper.make_node("LSTM", ["x", "W", "R"], ["Y"], name="rnn",
                                    hidden_size=HIDDEN)], lstm_parts(), outputs=("Y",)),
            "Flatten node 'early' takes (T, N, 5), the input sequence; before the first "
            "recurrent layer only the sequence's Transpose is supported")
    refused(recurrent_model("LSTM", extra=[
        helper.make_node("Transpose", ["h"], ["t"], name="swap", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["t", "fc"], ["y"])]),
        "Transpose node 'swap' transposes (T, N, 7) with perm=[0, 2, 1]; only a Transpose of "
        "a sequence's time, batch and direction axes is supported")
    refused(recurrent_model("GRU", extra=[
        helper.make_node("Squeeze", ["h", "squeeze_axes"], ["s"], name="again"),
        helper.make_node("MatMul", ["s", "fc"], ["y"])]),
        "Squeeze node 'again' squeezes axes [1] of (T, N, 7); only a Squeeze of a recurrent "
        "node's direction axis is supported")
    shape = init("shape4", [1, -1, HIDDEN, 1], np.int64)
    proto = recurrent_model("LSTM", extra=[
        helper.make_node("Reshape", ["h", "shape4"], ["r"], name="odd"),
        helper.make_node("MatMul", ["r", "fc"], ["y"])])
    proto.graph.initializer.append(shape)
    refused(proto, "Reshape node 'odd' reshapes (T, N, 7) to (1, -1, 7, 1); a sequence may "
                   "only be reshaped to (T, N, features)")


def test_malformed_recurrent_layers_and_state_tables_are_refused():
    shape = RecurrentShape("lstm", FEATURES, HIDDEN)
    weight, bias = np.zeros((4 * HIDDEN, FEATURES + HIDDEN)), np.zeros(4 * HIDDEN)
    for kwargs, message in [
            ({"kind": LayerKind.DENSE, "recurrent": shape},
             "DENSE layers take no recurrent shape"),
            ({"kind": LayerKind.LSTM},
             "LSTM layers need RecurrentShape('lstm', inputs, hidden), not None"),
            ({"kind": LayerKind.GRU, "recurrent": shape},
             f"GRU layers need RecurrentShape('gru', inputs, hidden), not {shape}"),
            ({"kind": LayerKind.LSTM, "recurrent": shape, "activation": "relu"},
             "a recurrent layer's cell has its own activations; its activation must be "
             "'identity'")]:
        with pytest.raises(InputError) as error:
            Layer(weight, bias, **kwargs)
        assert str(error.value) == message
    network = Network((FEATURES,), [Layer(weight, bias, kind=LayerKind.LSTM, recurrent=shape)])
    # x: 5 inputs in row 0 of 8 lanes, h from row 1: 8 + 7 slots.
    with pytest.raises(ModelFitError) as error:
        check_fits(AccelConfig(max_neurons=10), network)
    assert str(error.value) == (
        "layer 0 has 15 input slots (its 5 inputs and 7 hidden values, each from a new row of "
        "8 lanes) but the hardware holds at most 10 per layer (max_neurons); generate hardware "
        "with max_neurons >= 15")
    config = AccelConfig()
    table = np.arange(config.clusters)
    layer = FixedLayer(weights=np.zeros((4 * HIDDEN, FEATURES + HIDDEN), np.int64),
                       biases=np.zeros(4 * HIDDEN, np.int64), centroids=table, shift=0,
                       relu=False, kind=LayerKind.LSTM, recurrent=shape)
    with pytest.raises(ValueError) as error:
        GoldenModel(config, [layer])
    assert str(error.value) == ("layer 0 (LSTM) needs hidden_centroids, a table of 16 "
                                "centroids for h_t-1 like its centroids for x_t")


def test_integer_targets_are_refused_as_labels(tmp_path):
    path = tmp_path / "onehot.npy"
    np.save(path, np.eye(3, dtype=np.int64)[[0, 2, 1, 1]])
    with pytest.raises(InputError) as error:
        load_labels(path, 4, 3)
    assert str(error.value) == (
        f"labels in {str(path)!r} are 4 x 3 integers; give class labels as 4 integers, one "
        "per frame (for one-hot rows, labels.argmax(axis=1)), or real targets as floats")
