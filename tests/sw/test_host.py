"""Host side: float network files, frame checks, the model compiler, the driver and reports.

Expected values are computed here from the documented definitions (independent float forward
passes, a nearest-centroid quantizer written from the documented rule, the timing docstring's
dense-layer formula), not read back from the code under test.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.accelerator import command_words, split_commands
from support.networks import every_input_cycles, random_network

from reuse_accel.hw import protocol
from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.protocol import LayerKind, Opcode
from reuse_accel.sim.model import FrameResult, GoldenModel
from reuse_accel.sw.commands import Batch, ProtocolError
from reuse_accel.sw.compiler import ModelFitError, check_fits, compile_model, size_config
from reuse_accel.sw.driver import (
    BoardMismatchError,
    Driver,
    config_from_status,
    read_board_config,
)
from reuse_accel.sw.network import InputError, Network, check_frames
from reuse_accel.sw.report import build_report

RTL_CONFIG = AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=3)


# -- helpers ----------------------------------------------------------------------------------

def float_network(sizes, rng, scale=0.5) -> dict:
    arrays = {}
    for number, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:])):
        arrays[f"w{number}"] = rng.normal(0.0, scale, (outputs, inputs))
        arrays[f"b{number}"] = rng.normal(0.0, 0.2, outputs)
    return arrays


def forward_layers(arrays: dict, frames: np.ndarray) -> list[np.ndarray]:
    """Inputs of every layer and the output last: ReLU between layers, last layer linear."""
    count = len(arrays) // 2
    values = [np.asarray(frames, np.float64)]
    for number in range(count):
        out = values[-1] @ arrays[f"w{number}"].T + arrays[f"b{number}"]
        values.append(np.maximum(out, 0.0) if number < count - 1 else out)
    return values


def nearest_index(values, centroids) -> np.ndarray:
    """The documented quantizer rule: nearest centroid, a tie goes to the lower one."""
    values = np.asarray(values, np.int64)[..., None]
    centroids = np.asarray(centroids, np.int64)
    distance = np.abs(values - centroids)
    return np.argmin(distance, axis=-1)   # argmin returns the first (lower) of equal ones


def save(path, **arrays):
    np.savez(path, **arrays)
    return path


def assert_results_equal(got: FrameResult, want: FrameResult, label: str) -> None:
    assert got.cycles == want.cycles, label
    for name in ("outputs", "layer_cycles", "changed_inputs", "out_of_range", "weight_rows",
                 "macs", "saturated_outputs"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name),
                                      err_msg=f"{label}: {name}")


# -- Network.load (.npz) ----------------------------------------------------------------------

def test_load_round_trip(tmp_path):
    arrays = float_network([5, 4, 3], np.random.default_rng(0))
    network = Network.load(save(tmp_path / "m.npz", **arrays))
    assert network.sizes == [5, 4, 3]
    for number in range(2):
        layer = network.layers[number]
        np.testing.assert_array_equal(layer.weight, arrays[f"w{number}"])
        np.testing.assert_array_equal(layer.bias, arrays[f"b{number}"])
        assert layer.kind is LayerKind.DENSE
        assert layer.activation == ("relu" if number == 0 else "identity")
    assert network.input_shape == (5,)
    frames = np.random.default_rng(1).normal(size=(3, 5))
    np.testing.assert_allclose(network.forward(frames), forward_layers(arrays, frames)[-1])


def test_load_missing_file(tmp_path):
    path = tmp_path / "absent.npz"
    with pytest.raises(InputError, match=re.escape(f"model file {str(path)!r} does not exist")):
        Network.load(path)


def test_load_not_an_archive(tmp_path):
    path = tmp_path / "model.npz"
    path.write_text("w0 = [[1, 2]]\n")
    with pytest.raises(InputError, match="^" + re.escape(
            f"model file {str(path)!r} is a text file, not a NumPy .npz archive; read the text "
            "with numpy.loadtxt and write the array with numpy.savez") + "$"):
        Network.load(path)
    path.write_bytes(bytes(range(256)))
    with pytest.raises(InputError, match="^" + re.escape(
            f"model file {str(path)!r} is not a NumPy .npz archive (it lacks the NumPy or zip "
            "header); write the array with numpy.savez") + "$"):
        Network.load(path)
    with pytest.raises(InputError, match="^" + re.escape(
            f"model file {str(tmp_path)!r} is a directory, not a NumPy .npz archive") + "$"):
        Network.load(tmp_path)


def test_load_single_npy_array_is_not_an_archive(tmp_path):
    """A plain .npy array (np.save instead of np.savez) is an input error like any other
    file that is not an .npz archive, not a crash."""
    path = tmp_path / "weights.npy"
    np.save(path, np.zeros((3, 5)))
    with pytest.raises(InputError, match="^" + re.escape(
            f"model file {str(path)!r} is a single array, not a NumPy .npz archive of "
            "w0, b0, w1, b1, ... (save it with numpy.savez)")):
        Network.load(path)


def test_load_archive_errors(tmp_path):
    rng = np.random.default_rng(2)
    good = float_network([5, 3, 2], rng)
    path = tmp_path / "m.npz"
    name = repr(str(path))
    cases = [
        ({"b0": good["b0"]},
         f"model file {name} has no w0: expected arrays w0, b0, w1, b1, ..."),
        ({"w0": good["w0"], "b0": good["b0"], "w1": good["w1"]},
         f"model file {name} has w1 but no b1"),
        ({**good, "scale": np.ones(1)},
         f"model file {name} has unexpected arrays scale: expected w0..w1 and b0..b1 only"),
        ({"w0": good["w0"], "b0": good["b0"], "w2": good["w1"], "b2": good["b1"]},
         f"model file {name} has unexpected arrays b2, w2: expected w0..w0 and b0..b0 only"),
        ({**good, "w0": good["w0"] > 0}, "w0 must hold real numbers, not bool"),
        ({**good, "b1": np.array([1j, 0])}, "b1 must hold real numbers, not complex128"),
        ({**good, "b1": np.array(["a", "b"])}, "b1 must hold real numbers, not <U1"),
        ({**good, "b0": np.zeros(4)}, "b0 must have shape (3,) to match w0 (3, 5), not (4,)"),
        ({**good, "b0": np.zeros((3, 1))},
         "b0 must have shape (3,) to match w0 (3, 5), not (3, 1)"),
        ({**good, "w0": np.zeros(5)}, "w0 must be a 2-D (outputs, inputs) array, not shape (5,)"),
        ({**good, "w1": np.zeros((2, 4))}, "w1 takes 4 inputs but layer 0 has 3 outputs"),
        ({**good, "w0": np.where(np.arange(15).reshape(3, 5) == 7, np.nan, good["w0"])},
         "w0 contains NaN or infinite values"),
        ({**good, "b1": np.array([0.0, np.inf])}, "b1 contains NaN or infinite values"),
    ]
    for arrays, message in cases:
        save(path, **arrays)
        with pytest.raises(InputError, match=re.escape(message) + "$"):
            Network.load(path)


# -- check_frames -----------------------------------------------------------------------------

def shape_message(inputs, shape, source="frames"):
    return (f"{source} must have shape (T, {inputs}) with T >= 1 for a model with {inputs} "
            f"inputs, not {shape}")


@pytest.mark.parametrize("frames, message", [
    (np.zeros((3, 4)), shape_message(5, (3, 4))),
    (np.zeros(5), shape_message(5, (5,))),
    (np.zeros((0, 5)), shape_message(5, (0, 5))),
    (np.zeros((2, 5, 1)), shape_message(5, (2, 5, 1))),
    (np.full((2, 5), "x"), "frames must hold real numbers, not <U1"),
    (np.array([[None] * 5]), "frames must hold real numbers, not object"),
    (np.ones((2, 5), bool), "frames must hold real numbers, not bool"),
])
def test_check_frames_rejects_shape_and_type(frames, message):
    with pytest.raises(InputError, match=re.escape(message) + "$"):
        check_frames(frames, 5)


def test_check_frames_reports_non_finite_values_with_position():
    frames = np.zeros((4, 5))
    frames[1, 3] = np.nan
    frames[2, 0] = np.inf
    frames[3, 4] = -np.inf
    with pytest.raises(InputError, match=re.escape(
            "frames contain 3 NaN or infinite values (first at frame 1, input 3); clean or "
            "impute them before running") + "$"):
        check_frames(frames, 5)
    with pytest.raises(InputError, match=re.escape(
            "calibration frames contain 1 NaN or infinite values (first at frame 0, input 2)")):
        check_frames(np.array([[0.0, 1.0, np.nan]]), 3, source="calibration frames")


def test_check_frames_accepts_integers_as_floats():
    checked = check_frames(np.arange(10, dtype=np.int16).reshape(2, 5), 5)
    assert checked.dtype == np.float64
    np.testing.assert_array_equal(checked, np.arange(10).reshape(2, 5))


# -- compile_model ----------------------------------------------------------------------------

def network_of(sizes, seed=3) -> Network:
    arrays = float_network(sizes, np.random.default_rng(seed))
    count = len(sizes) - 1
    return Network.from_weights([arrays[f"w{n}"] for n in range(count)],
                        [arrays[f"b{n}"] for n in range(count)])


@pytest.mark.parametrize("sizes, config, message", [
    ([5, 4, 4, 3], AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=2),
     "the model has 3 layers but the hardware holds at most 2 (max_layers); generate "
     "hardware with max_layers >= 3"),
    ([5, 9, 2], AccelConfig(lanes=4, max_neurons=8, weight_depth=512, max_layers=3),
     "layer 0 has 9 outputs but the hardware holds at most 8 per layer (max_neurons); "
     "generate hardware with max_neurons >= 9"),
    ([5, 6, 12], AccelConfig(lanes=4, max_neurons=8, weight_depth=512, max_layers=3),
     "layer 1 has 12 outputs but the hardware holds at most 8 per layer (max_neurons); "
     "generate hardware with max_neurons >= 12"),
    ([10, 3], AccelConfig(lanes=4, max_neurons=8, weight_depth=512, max_layers=3),
     "layer 0 has 10 inputs but the hardware holds at most 8 per layer (max_neurons); "
     "generate hardware with max_neurons >= 10"),
    # 20 inputs x ceil(13 / 4) groups + 13 x ceil(6 / 4) = 80 + 26 = 106 rows
    ([20, 13, 6], AccelConfig(lanes=4, max_neurons=32, weight_depth=100, max_layers=3),
     "the model needs 106 weight-memory rows of 4 weights but the hardware has 100 "
     "(weight_depth); generate hardware with weight_depth >= 106"),
])
def test_model_fit_errors(sizes, config, message):
    calibration = np.zeros((2, sizes[0]))
    with pytest.raises(ModelFitError, match=re.escape(message) + "$") as error:
        compile_model(network_of(sizes), config, calibration)
    assert isinstance(error.value, InputError)


def test_model_that_exactly_fits_compiles():
    # 20 x 4 + 13 x 2 = 106 rows, max_neurons 20, 2 layers: every limit met with equality
    config = AccelConfig(lanes=4, max_neurons=20, weight_depth=106, max_layers=2)
    compiled = compile_model(network_of([20, 13, 6]), config, np.eye(20))
    assert [layer.weights.shape for layer in compiled.layers] == [(13, 20), (6, 13)]


def test_compiled_layers_follow_the_documented_formats():
    config = AccelConfig(lanes=4, clusters=16, max_neurons=32, weight_depth=512, max_layers=3)
    rng = np.random.default_rng(4)
    arrays = float_network([6, 10, 7, 3], rng)
    network = Network.from_weights([arrays[f"w{n}"] for n in range(3)],
                           [arrays[f"b{n}"] for n in range(3)])
    calibration = rng.uniform(-1.5, 2.0, (40, 6))
    compiled = compile_model(network, config, calibration)
    layer_inputs = forward_layers(arrays, calibration)
    scale = 1 << config.act_frac
    for number, layer in enumerate(compiled.layers):
        weight, bias = arrays[f"w{number}"], arrays[f"b{number}"]
        # Weights: the largest shift at which the largest weight fits weight_width.
        largest = np.max(np.abs(weight))
        assert largest * 2.0 ** layer.shift <= config.weight_max
        assert largest * 2.0 ** (layer.shift + 1) > config.weight_max
        assert layer.weights.min() >= config.weight_min
        assert layer.weights.max() <= config.weight_max
        np.testing.assert_array_equal(layer.weights, np.rint(weight * 2.0 ** layer.shift))
        np.testing.assert_array_equal(
            layer.biases, np.rint(bias * 2.0 ** (config.act_frac + layer.shift)))
        assert layer.relu == (number < 2)
        # Centroids: K strictly ascending levels spread linearly over the calibrated range.
        low, high = layer_inputs[number].min(), layer_inputs[number].max()
        centroids = layer.centroids
        assert len(centroids) == config.clusters
        assert np.all(np.diff(centroids) > 0)
        assert centroids[0] == np.rint(low * scale)
        assert centroids[-1] == np.rint(high * scale)
        linear = np.linspace(low, high, config.clusters) * scale
        assert np.max(np.abs(centroids - linear)) <= 0.5
    assert compiled.saturated_weights == 0 and compiled.saturated_biases == 0


def test_quantize_frames_counts_out_of_range_and_saturated_values():
    config = AccelConfig(lanes=4, clusters=16, max_neurons=32, weight_depth=512, max_layers=3)
    calibration = np.array([[-1.0, 0.5, 0.0], [1.0, -0.5, 0.25]])
    compiled = compile_model(network_of([3, 2]), config, calibration)
    centroids = compiled.layers[0].centroids
    assert (centroids[0], centroids[-1]) == (-256, 256)
    act_max = config.act_max / 256                   # 127.996...: the format's largest value
    frames = np.array([
        [-1.0, 1.0, 0.3],            # inside the calibrated range (ends included)
        [1.5, -1.25, 0.0],           # two outside, not saturated
        [300.0, -300.0, 0.9],        # two saturate the activation format (and are outside)
        [act_max, 0.0, -1.0],        # outside but representable
    ])
    indices, outside = compiled.quantize_frames(frames)
    np.testing.assert_array_equal(outside, [0, 2, 2, 1])
    fixed = np.clip(np.rint(frames * 256), config.act_min, config.act_max)
    np.testing.assert_array_equal(indices, nearest_index(fixed, centroids))
    np.testing.assert_array_equal(indices[:, :2], [[0, 15], [15, 0], [15, 0], [15, 7]])


def test_fixed_point_output_is_close_to_the_float_network():
    """GoldenModel on the compiled model vs the float network, on the calibration frames.

    Error bound, per frame and neuron, with q = 2**-act_frac and, per layer, d the largest
    gap between adjacent centroids:

    - Layer inputs: the float value a lies in the calibrated range (these are the calibration
      frames); the hardware sees a fixed-point a' with |a' - a| <= e (e = q/2 for frames
      rounded to fixed point, else the previous layer's bound). If a' is inside the table,
      its nearest centroid c' is within d/2 of it; if outside, c' is the end centroid and a
      lies between them up to the rounding of the table's ends. So
      |c' - a| <= u = e + d/2 + q/2.
    - A neuron computes sum w'_i c'_i + b' with w' = W / 2**shift, |w' - w| <= 2**-(shift+1)
      (round to nearest) and |b' - b| <= q 2**-(shift+1). Since
      w'c' - wa = w'(c' - a) + (w' - w) a, its error is at most
      sum |w'_i| u_i + 2**-(shift+1) sum |a_i| + q 2**-(shift+1), plus q/2 for rounding the
      sum to the activation format. Nothing saturates (checked below).
    - ReLU never increases an error, and where the float pre-activation is below minus the
      bound both the float and the fixed-point output are exactly 0.
    """
    config = AccelConfig(lanes=4, clusters=64, max_neurons=32, weight_depth=512, max_layers=3)
    rng = np.random.default_rng(5)
    arrays = float_network([6, 10, 4], rng)
    network = Network.from_weights([arrays["w0"], arrays["w1"]], [arrays["b0"], arrays["b1"]])
    frames = rng.uniform(-1.0, 1.0, (30, 6))
    compiled = compile_model(network, config, frames)
    q = 2.0 ** -config.act_frac
    layer_inputs = forward_layers(arrays, frames)
    bound = np.full(frames.shape, q / 2)                 # (frames, neurons) of this layer
    for number, layer in enumerate(compiled.layers):
        gap = np.max(np.diff(layer.centroids)) * q
        input_error = bound + gap / 2 + q / 2
        weights = layer.weights * 2.0 ** -layer.shift
        step = 2.0 ** -(layer.shift + 1)
        bound = (input_error @ np.abs(weights).T
                 + step * np.abs(layer_inputs[number]).sum(axis=1)[:, None]
                 + q * step + q / 2)
        if layer.relu:
            pre = layer_inputs[number] @ arrays[f"w{number}"].T + arrays[f"b{number}"]
            bound = np.where(pre < -bound, 0.0, bound)
    indices, _ = compiled.quantize_frames(frames)
    outputs = np.stack([result.outputs for result in
                        GoldenModel(config, compiled.layers).run(indices)]) * q
    reference = layer_inputs[-1]
    assert max(np.max(np.abs(values)) for values in layer_inputs) < 100   # no saturation
    assert np.all(np.abs(outputs - reference) <= bound)
    assert bound.max() < 0.25 * np.max(np.abs(reference))   # the bound says something


# -- driver and report ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model():
    """A compiled [6, 5, 3] float MLP and 5 frames in which most inputs keep their value."""
    rng = np.random.default_rng(6)
    arrays = float_network([6, 5, 3], rng)
    network = Network.from_weights([arrays["w0"], arrays["w1"]], [arrays["b0"], arrays["b1"]])
    frames = np.empty((5, 6))
    frames[0] = rng.uniform(-1, 1, 6)
    for t in range(1, 5):
        frames[t] = np.where(rng.random(6) < 0.3, rng.uniform(-1, 1, 6), frames[t - 1])
    compiled = compile_model(network, RTL_CONFIG, frames)
    return arrays, compiled, frames


def test_driver_golden_and_amaranth_backends_agree(tiny_model):
    _, compiled, frames = tiny_model
    golden = Driver(compiled, backend="golden").run(frames)
    rtl = Driver(compiled, backend="amaranth").run(frames)
    for mode, (want, got) in enumerate(zip(golden, rtl)):
        assert got.baseline == want.baseline == bool(mode)
        assert len(got.frames) == len(want.frames) == len(frames)
        for t, (result, expected) in enumerate(zip(got.frames, want.frames)):
            assert_results_equal(result, expected, f"mode {mode} frame {t}")
        np.testing.assert_array_equal(got.outputs, want.outputs)
        assert got.cycles == want.cycles


def test_report_fields_follow_their_definitions(tiny_model):
    arrays, compiled, frames = tiny_model
    reuse, baseline = Driver(compiled, backend="golden").run(frames)
    report = build_report(reuse, baseline, backend="golden")
    config, layers = compiled.config, compiled.layers
    count = len(frames)
    inputs = [layer.inputs for layer in layers]
    outputs = [layer.outputs for layer in layers]

    # Every layer's cluster indices per frame, from the documented quantizer rule.
    fixed = np.clip(np.rint(frames * 256), config.act_min, config.act_max)
    indices = [nearest_index(fixed, layers[0].centroids)]
    golden = GoldenModel(config, layers).run(indices[0])
    for number in range(1, len(layers)):
        values = np.stack([result.activations[number - 1] for result in golden])
        indices.append(nearest_index(values, layers[number].centroids))
    unchanged = [int(np.sum(index[1:] == index[:-1])) for index in indices]
    changed = [np.concatenate(([inputs[n]], np.sum(index[1:] != index[:-1], axis=1)))
               for n, index in enumerate(indices)]

    summary = report["summary"]
    assert summary["frames"] == count
    assert summary["input_similarity"] == pytest.approx(
        sum(unchanged) / (sum(inputs) * (count - 1)))
    assert 0 < summary["input_similarity"] < 1
    macs = sum(int(changed[n].sum()) * outputs[n] for n in range(len(layers)))
    dense_macs = count * sum(i * o for i, o in zip(inputs, outputs))
    assert summary["computation_reuse"] == pytest.approx(1 - macs / dense_macs)
    assert summary["cycles"] == sum(result.cycles for result in reuse.frames)
    # Dense layer cycles from the README's formula, plus 1 per frame.
    groups = [config.groups(o) for o in outputs]
    dense = sum(every_input_cycles(inputs, groups)) + 1
    assert summary["baseline_cycles"] == count * dense
    assert summary["speedup"] == pytest.approx(count * dense / summary["cycles"])
    assert summary["speedup"] > 1
    reference = forward_layers(arrays, frames)[-1]
    got_outputs = np.array(report["outputs"])
    assert got_outputs.shape == (count, 3)
    np.testing.assert_array_equal(got_outputs, reuse.outputs)
    assert summary["max_abs_error_vs_float"] == pytest.approx(
        np.max(np.abs(got_outputs - reference)))

    assert [layer["inputs"] for layer in report["layers"]] == inputs
    assert [layer["outputs"] for layer in report["layers"]] == outputs
    for n, layer in enumerate(report["layers"]):
        assert layer["input_similarity"] == pytest.approx(
            unchanged[n] / (inputs[n] * (count - 1)))
        assert layer["computation_reuse"] == pytest.approx(
            1 - changed[n].sum() / (count * inputs[n]))
    assert len(report["frames"]) == count
    for t, frame in enumerate(report["frames"]):
        assert frame["changed_inputs"] == [int(changed[n][t]) for n in range(len(layers))]
        assert frame["baseline_cycles"] == dense
        assert frame["cycles"] == reuse.frames[t].cycles
    assert report["config"]["lanes"] == 4 and report["config"]["clusters"] == 16

    # Weight rows per layer and frame: changed inputs x output groups with reuse, every input
    # without; the ideal speedup is the ratio of their sums.
    assert [layer["kind"] for layer in report["layers"]] == ["dense", "dense"]
    rows = np.array([[int(changed[n][t]) * groups[n] for n in range(len(layers))]
                     for t in range(count)])
    assert [frame["weight_rows"] for frame in report["frames"]] == rows.tolist()
    dense_rows = [i * g for i, g in zip(inputs, groups)]
    assert [frame["baseline_weight_rows"] for frame in report["frames"]] == [dense_rows] * count
    assert summary["ideal_speedup"] == pytest.approx(count * sum(dense_rows) / rows.sum())
    assert summary["reuse_efficiency"] == pytest.approx(
        summary["speedup"] / summary["ideal_speedup"])
    np.testing.assert_allclose(report["reference_outputs"], reference, rtol=1e-12)


# -- property ---------------------------------------------------------------------------------

PROPERTY_CONFIG = AccelConfig(lanes=4, clusters=8, max_neurons=16, weight_depth=256,
                              max_layers=3)


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(sizes=st.lists(st.integers(1, 16), min_size=2, max_size=4),
       seed=st.integers(0, 2**32 - 1),
       steps=st.lists(st.tuples(st.booleans(), st.integers(0, 2**32 - 1)), min_size=1,
                      max_size=6),
       change=st.floats(0.0, 1.0))
def test_property_golden_reuse_equals_from_scratch(sizes, seed, steps, change):
    """Whatever the sequence (and wherever it restarts), reusing the previous frame's sums
    gives exactly the outputs of computing every frame from scratch."""
    layers = random_network(PROPERTY_CONFIG, sizes, np.random.default_rng(seed))
    reuse = GoldenModel(PROPERTY_CONFIG, layers)
    scratch = GoldenModel(PROPERTY_CONFIG, layers)
    scratch.baseline = True
    previous = None
    for restart, frame_seed in steps:
        rng = np.random.default_rng(frame_seed)
        fresh = rng.integers(0, PROPERTY_CONFIG.clusters, sizes[0])
        indices = fresh if previous is None else np.where(rng.random(sizes[0]) < change,
                                                          fresh, previous)
        if restart:
            reuse.begin_sequence()
        got, want = reuse.frame(indices), scratch.frame(indices)
        np.testing.assert_array_equal(got.outputs, want.outputs)
        for mine, theirs in zip(got.activations, want.activations):
            np.testing.assert_array_equal(mine, theirs)
        expected_changed = sizes[0] if previous is None or restart else \
            int(np.count_nonzero(indices != previous))
        assert got.changed_inputs[0] == expected_changed
        np.testing.assert_array_equal(want.changed_inputs, sizes[:-1])
        previous = indices


# -- limits of the protocol and the number formats ---------------------------------------------

def test_load_commands_fit_the_length_field_at_64_lanes():
    """A 64-lane row of 8-bit weights takes 16 words; chunks must stay within 65535 words."""
    config = AccelConfig(lanes=64, max_neurons=4200, weight_depth=1 << 16)
    rng = np.random.default_rng(5)
    layers = random_network(config, [4200, 64], rng)
    batch = Batch(config)
    batch.load(layers)
    commands = split_commands(batch.words)
    lengths = [length for opcode, length, _ in commands if opcode == Opcode.LOAD_WEIGHTS]
    assert max(lengths) <= protocol.MAX_LENGTH
    rows = sum(control[1] for opcode, _, control in commands if opcode == Opcode.LOAD_WEIGHTS)
    assert rows == 4200 * config.groups(64)
    assert len(lengths) == 2   # 4200 rows of 16 words need two commands


def test_zero_weights_keep_their_biases():
    """The layer shift must leave room for the biases, whatever the weights."""
    network = Network.from_weights([np.zeros((3, 4))], [np.array([1.0, -2.5, 0.75])])
    compiled = compile_model(network, AccelConfig(), np.ones((2, 4)))
    assert compiled.saturated_biases == 0
    run, _ = Driver(compiled).run(np.ones((2, 4)))
    np.testing.assert_array_equal(run.outputs, [[1.0, -2.5, 0.75]] * 2)


def test_small_weights_with_large_biases_do_not_saturate():
    config = AccelConfig()
    weights = np.full((2, 3), 1e-4)
    biases = np.array([100.0, -60.0])
    compiled = compile_model(Network.from_weights([weights], [biases]), config, np.zeros((1, 3)))
    layer = compiled.layers[0]
    assert compiled.saturated_biases == 0
    # The bias at the product scale act_frac + shift must round-trip within half a step.
    scale = 2.0 ** (config.act_frac + layer.shift)
    np.testing.assert_allclose(layer.biases / scale, biases, atol=0.5 / scale)


def test_layer0_out_of_range_is_in_the_frame_results(tiny_model):
    _, full, frames = tiny_model
    compiled = compile_model(full.network, RTL_CONFIG, frames[:1])
    reuse, _ = Driver(compiled).run(frames)
    _, expected = compiled.quantize_frames(frames)
    assert [int(frame.out_of_range[0]) for frame in reuse.frames] == expected.tolist()
    assert expected[1:].sum() > 0   # calibrated on frame 0 only: later frames fall outside


def test_golden_backend_takes_no_transport_options(tiny_model):
    _, compiled, _ = tiny_model
    with pytest.raises(ValueError, match=re.escape(
            "the golden backend has no transport; options ['stall_input'] apply to RTL "
            "backends only")):
        Driver(compiled, backend="golden", stall_input=0.5)


@pytest.mark.parametrize("transport", ["amaranth", "verilator"])
@pytest.mark.parametrize("options, error, message", [
    ({"stall_input": 1.0}, ValueError, "stall_input must be in [0, 1), not 1.0"),
    ({"stall_output": -0.1}, ValueError, "stall_output must be in [0, 1), not -0.1"),
    ({"timeout": 0}, ValueError, "timeout must be a positive integer, not 0"),
])
def test_transports_reject_bad_host_settings(transport, options, error, message):
    from reuse_accel.sw.driver import make_transport
    with pytest.raises(error, match=re.escape(message)):
        make_transport(transport, RTL_CONFIG, **options)


def test_transports_need_an_accel_config():
    from reuse_accel.sim.amaranth import AmaranthTransport
    with pytest.raises(TypeError, match=re.escape("config must be an AccelConfig, not 8")):
        AmaranthTransport(8)


# -- the SET_LAYER flags ------------------------------------------------------------------------

def test_set_layer_flags_carry_shift_activation_and_kind(tiny_model):
    _, compiled, _ = tiny_model
    batch = Batch(RTL_CONFIG)
    batch.load(compiled.layers)
    flags = [control for opcode, _, control in split_commands(batch.words)
             if opcode == Opcode.SET_LAYER]
    words = [word for word in split_commands_words(batch.words, Opcode.SET_LAYER)]
    assert len(flags) == len(words) == 2
    for layer, payload in zip(compiled.layers, words):
        decoded = protocol.LayerFlags.from_bits(payload[3])
        assert (decoded.shift, decoded.relu, decoded.kind) == \
            (layer.shift, int(layer.relu), LayerKind.DENSE)
        assert payload[3] == layer.shift | int(layer.relu) << 8 | 0 << 16


def split_commands_words(words, opcode):
    """The payload words of every command with this opcode."""
    for command in command_words(words):
        if protocol.parse_header(command[0])[0] == opcode:
            yield command[1:]


# -- hardware sized for the model -------------------------------------------------------------

def test_size_config_raises_only_the_capacities_the_model_needs():
    # The speech demo's 440-128-128-11 fits the defaults: nothing changes.
    assert size_config(network_of([440, 128, 128, 11])) == AccelConfig()
    # 600 inputs: max_neurons 600; 600 x ceil(700/8) + 700 x ceil(20/8) = 52800 + 2100 rows.
    sized = size_config(network_of([600, 700, 20]))
    assert sized == AccelConfig(max_neurons=700, weight_depth=54900)
    # Six small layers: max_layers 6 only.
    assert size_config(network_of([3, 3, 3, 3, 3, 3, 3])) == AccelConfig(max_layers=6)
    # Another base keeps its other parameters and is never lowered.
    base = AccelConfig(lanes=4, clusters=8, max_neurons=32, weight_depth=512, max_layers=3,
                       reuse=False)
    assert size_config(network_of([5, 40, 3]), base) == dataclasses.replace(base,
                                                                            max_neurons=40)
    # 30 x ceil(30/4) + 30 x ceil(3/4) = 240 + 30 rows
    assert size_config(network_of([30, 30, 3]), dataclasses.replace(base, weight_depth=200)) \
        == dataclasses.replace(base, weight_depth=270)
    assert size_config(network_of([5, 4]), base) == base


def test_size_config_says_when_no_hardware_holds_the_model():
    network = Network.from_weights([np.zeros((2, 70000))], [np.zeros(2)])
    with pytest.raises(InputError, match="^" + re.escape(
            "the model needs max_neurons = 70000, weight_depth = 70000, which is not a valid "
            "configuration: max_neurons must be between 1 and 65535, not 70000") + "$"):
        size_config(network)


def test_fit_errors_name_the_parameter_and_the_value():
    config = AccelConfig(lanes=4, max_neurons=8, weight_depth=512, max_layers=3)
    with pytest.raises(ModelFitError) as error:
        check_fits(config, network_of([5, 9, 2]), hardware="the board")
    assert (error.value.parameter, error.value.required) == ("max_neurons", 9)
    assert error.value.problem == ("layer 0 has 9 outputs but the board holds at most 8 per "
                                   "layer (max_neurons)")


# -- the board's configuration from STATUS ----------------------------------------------------

@pytest.mark.parametrize("config", [
    RTL_CONFIG,
    AccelConfig(lanes=2, clusters=8, act_width=12, act_frac=5, weight_width=6,
                centroid_width=14, max_layers=2, max_neurons=20, weight_depth=100,
                stream_width=64, reuse=False),
], ids=["reuse", "no-reuse"])
def test_board_configuration_is_read_from_status(config):
    """STATUS of the gateware in Amaranth's simulator gives back exactly its AccelConfig."""
    from reuse_accel.sim.amaranth import AmaranthTransport
    transport = AmaranthTransport(AccelConfig(stream_width=config.stream_width))
    transport.config = config            # the gateware simulated is the board's
    assert read_board_config(transport) == config


def test_status_of_something_else_is_a_protocol_error():
    status = dict.fromkeys(protocol.STATUS_FIELDS, 0)
    with pytest.raises(ProtocolError, match="^" + re.escape(
            "the STATUS response has magic 0x00000000, not 0x52414343: the device is not a "
            "reuse-accel accelerator") + "$"):
        config_from_status(status)
    status.update(magic=protocol.MAGIC, version=protocol.VERSION + 1)
    with pytest.raises(ProtocolError, match=re.escape(
            f"the accelerator speaks protocol version {protocol.VERSION + 1}, this host version "
            f"{protocol.VERSION}")):
        config_from_status(status)
    status.update(version=protocol.VERSION, lanes=3, clusters=16, act_width=16, act_frac=8,
                  weight_width=8, centroid_width=16, max_layers=2, max_neurons=8,
                  weight_depth=64, stream_width=32, weight_bank_width=4, max_height=1,
                  max_width=1)
    with pytest.raises(ProtocolError, match="^" + re.escape(
            "the accelerator reports parameters that are not a valid configuration: lanes "
            "must be a power of two, not 3") + "$"):
        config_from_status(status)


class BoardOnAmaranth:
    """A stand-in for a serial transport: the accelerator of ``board`` in Amaranth's
    simulator, under a name like a port's."""

    def __init__(self, board: AccelConfig):
        from reuse_accel.sim.amaranth import AmaranthTransport
        self.port = "/dev/ttyFAKE0"
        self.config = AccelConfig(stream_width=board.stream_width)
        self._board = AmaranthTransport(board)
        self.exchanges = 0

    def exchange(self, words, responses):
        self.exchanges += 1
        return self._board.exchange(words, responses)


def test_serial_driver_refuses_a_board_of_another_configuration(tiny_model):
    _, compiled, frames = tiny_model
    board = dataclasses.replace(RTL_CONFIG, lanes=8, max_neurons=16)
    transport = BoardOnAmaranth(board)
    driver = Driver(compiled, backend="serial", transport=transport)
    with pytest.raises(BoardMismatchError, match="^" + re.escape(
            "the accelerator on /dev/ttyFAKE0 was built with lanes = 8 (not 4), max_neurons = "
            "16 (not 32): compile the model for the board's configuration "
            "(read_board_config)") + "$"):
        driver.run(frames)
    assert transport.exchanges == 1          # STATUS only: nothing was loaded


def test_serial_driver_runs_on_a_board_of_its_configuration(tiny_model):
    _, compiled, frames = tiny_model
    transport = BoardOnAmaranth(RTL_CONFIG)
    got, _ = Driver(compiled, backend="serial", transport=transport).run(frames,
                                                                         baseline_too=False)
    want, _ = Driver(compiled).run(frames, baseline_too=False)
    for t, (result, expected) in enumerate(zip(got.frames, want.frames)):
        assert_results_equal(result, expected, f"frame {t}")
    assert transport.exchanges == 2 and transport.config == RTL_CONFIG
