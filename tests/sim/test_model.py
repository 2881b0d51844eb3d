"""GoldenModel: reuse equals from-scratch computation, counters, cycle formula, activate."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.networks import every_input_cycles, random_network, similar_frames

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sim.model import FixedLayer, GoldenModel, activate, quantize
from reuse_accel.sim.timing import (
    FILL,
    FRAME_OVERHEAD,
    MAC_DRAIN,
    READOUT,
    SETUP,
    dense_layer_cycles,
    frame_cycles,
    layer_cycles,
)

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=12, act_frac=6, weight_width=6,
                     centroid_width=12, max_layers=3, max_neurons=32, weight_depth=1024)
CONFIG16 = AccelConfig(lanes=4, clusters=16, act_width=12, act_frac=6, weight_width=8,
                       centroid_width=14, max_layers=3, max_neurons=32, weight_depth=1024)

# Pipeline constants as the timing docstring states them.
# The pipeline constants the gateware states (sim/timing.py composes them from the components'
# latencies); the per-input formula below is rebuilt independently of sim/timing.py's code.


# -- independent references --------------------------------------------------------------------

def reference_activation(acc, shift, relu, config):
    value = (acc + (2 ** (shift - 1) if shift else 0)) // 2 ** shift
    if relu:
        value = max(value, 0)
    return min(max(value, config.act_min), config.act_max)


def nearest(value, centroids):
    """Nearest centroid of an ascending table, ties to the lower index; outside flag."""
    distances = [abs(value - int(c)) for c in centroids]
    return distances.index(min(distances)), not centroids[0] <= value <= centroids[-1]


def reference_frame(config, layers, indices):
    """Every layer computed from scratch with Python integers.

    Returns per layer: input indices, outside count, activations.
    """
    result = []
    indices = [int(i) for i in indices]
    outside_count = 0
    values = []
    for number, layer in enumerate(layers):
        centroids = [int(c) for c in layer.centroids]
        if number > 0:
            pairs = [nearest(v, centroids) for v in values]
            indices = [index for index, _ in pairs]
            outside_count = sum(out for _, out in pairs)
        inputs = [centroids[i] for i in indices]
        values = []
        for output in range(layer.outputs):
            acc = int(layer.biases[output]) + sum(
                int(layer.weights[output][i]) * inputs[i] for i in range(layer.inputs))
            values.append(reference_activation(acc, layer.shift, layer.relu, config))
        result.append((indices, outside_count, values))
    return result


def formula_cycles(config, changed, outputs, last=True):
    """The per-layer cycle formula of sim/timing.py's docstring, term by term."""
    lanes = config.lanes
    groups = -(-outputs // lanes)
    rows = -(-len(changed) // lanes)
    readout = groups + READOUT if last else max(READOUT, groups - 11)
    per_row = [int(sum(changed[row * lanes:(row + 1) * lanes])) for row in range(rows)]
    slots, start = [], 0
    for count in per_row:
        slots += [start + rank for rank in range(count)]
        start += max(count, 1)
    total = start
    if not slots:
        return SETUP + FILL + total + readout
    handshakes = sum(max(b - a, groups) for a, b in zip(slots, slots[1:]))
    return (SETUP + FILL + slots[0] + handshakes + max(total - slots[-1], groups + MAC_DRAIN)
            + readout)


# -- strategies --------------------------------------------------------------------------------

@st.composite
def networks(draw):
    config = draw(st.sampled_from([CONFIG, CONFIG16]))
    depth = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, config.max_neurons)) for _ in range(depth + 1)]
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    shift = draw(st.integers(4, 8))
    layers = random_network(config, sizes, rng, shift=shift)
    count = draw(st.integers(2, 6))
    change = draw(st.sampled_from([0.0, 0.1, 0.4, 1.0]))
    frames = similar_frames(config, sizes[0], count, change, rng)
    return config, layers, frames


@st.composite
def hand_networks(draw):
    """Networks drawn value by value: any weights, biases, shifts and ReLU choices."""
    config = CONFIG
    depth = draw(st.integers(1, 2))
    sizes = [draw(st.integers(1, 9)) for _ in range(depth + 1)]
    layers = []
    for inputs, outputs in zip(sizes, sizes[1:]):
        weights = draw(st.lists(st.lists(st.integers(config.weight_min, config.weight_max),
                                         min_size=inputs, max_size=inputs),
                                min_size=outputs, max_size=outputs))
        biases = draw(st.lists(st.integers(config.bias_min, config.bias_max),
                               min_size=outputs, max_size=outputs))
        centroids = sorted(draw(st.lists(st.integers(-2000, 2000), min_size=config.clusters,
                                         max_size=config.clusters, unique=True)))
        layers.append(FixedLayer(weights=np.array(weights), biases=np.array(biases),
                                 centroids=np.array(centroids),
                                 shift=draw(st.integers(0, config.max_shift)),
                                 relu=draw(st.booleans())))
    frames = draw(st.lists(st.lists(st.integers(0, config.clusters - 1), min_size=sizes[0],
                                    max_size=sizes[0]), min_size=2, max_size=5))
    return config, layers, np.array(frames)


def check_sequence(config, layers, frames):
    reuse = GoldenModel(config, layers)
    previous = None
    for frame in frames:
        result = reuse.frame(frame)
        scratch = GoldenModel(config, layers).frame(frame)
        expected = reference_frame(config, layers, frame)
        # the core property: reuse gives exactly the from-scratch result, every layer
        assert result.outputs.tolist() == scratch.outputs.tolist()
        assert [a.tolist() for a in result.activations] == [a.tolist()
                                                            for a in scratch.activations]
        assert [a.tolist() for a in result.activations] == [values for *_, values in expected]
        assert result.outputs.tolist() == expected[-1][2]
        # counters
        if previous is None:
            changed = [layer.inputs for layer in layers]
        else:
            changed = [sum(a != b for a, b in zip(now[0], before[0]))
                       for now, before in zip(expected, previous)]
        assert result.changed_inputs.tolist() == changed
        assert result.out_of_range.tolist() == [count for _, count, _ in expected]
        groups = [-(-layer.outputs // config.lanes) for layer in layers]
        assert result.weight_rows.tolist() == [c * g for c, g in zip(changed, groups)]
        assert result.macs.tolist() == [c * layer.outputs for c, layer in zip(changed, layers)]
        # cycles from the documented formula, on the masks of changed inputs
        masks = []
        for layer_number, (now, _, _) in enumerate(expected):
            if previous is None:
                masks.append([True] * len(now))
            else:
                masks.append([a != b for a, b in zip(now, previous[layer_number][0])])
        cycles = [formula_cycles(config, mask, layer.outputs, last=n == len(layers) - 1)
                  for n, (mask, layer) in enumerate(zip(masks, layers))]
        assert result.layer_cycles.tolist() == cycles
        assert result.cycles == sum(cycles) + FRAME_OVERHEAD
        previous = expected


@settings(max_examples=60, deadline=None)
@given(networks())
def test_reuse_equals_from_scratch_on_any_sequence(network):
    check_sequence(*network)


@settings(max_examples=40, deadline=None)
@given(hand_networks())
def test_reuse_equals_from_scratch_hand_drawn_networks(network):
    check_sequence(*network)


def test_reuse_equals_from_scratch_long_sequence():
    rng = np.random.default_rng(7)
    layers = random_network(CONFIG16, [32, 24, 16, 10], rng)
    frames = similar_frames(CONFIG16, 32, 40, 0.15, rng)
    check_sequence(CONFIG16, layers, frames)


# -- modes ---------------------------------------------------------------------------------------

def make(seed=3, sizes=(12, 9, 5)):
    rng = np.random.default_rng(seed)
    layers = random_network(CONFIG, list(sizes), rng)
    frames = similar_frames(CONFIG, sizes[0], 6, 0.3, rng)
    return layers, frames


def test_baseline_gives_identical_outputs_and_counts_every_input():
    layers, frames = make()
    reuse = GoldenModel(CONFIG, layers)
    baseline = GoldenModel(CONFIG, layers)
    baseline.baseline = True
    inputs = [layer.inputs for layer in layers]
    for frame in frames:
        a, b = reuse.frame(frame), baseline.frame(frame)
        assert a.outputs.tolist() == b.outputs.tolist()
        assert b.changed_inputs.tolist() == inputs
        assert b.layer_cycles.tolist() == every_input_cycles(
            inputs, [CONFIG.groups(layer.outputs) for layer in layers])
    # reuse saved work on the later frames
    assert a.changed_inputs.sum() < b.changed_inputs.sum()


def test_first_frame_counts_every_input_as_changed():
    layers, frames = make()
    result = GoldenModel(CONFIG, layers).frame(frames[0])
    assert result.changed_inputs.tolist() == [12, 9]
    assert result.weight_rows.tolist() == [12 * 3, 9 * 2]
    assert result.macs.tolist() == [12 * 9, 9 * 5]


def test_begin_sequence_recomputes_from_scratch():
    layers, frames = make()
    model = GoldenModel(CONFIG, layers)
    model.frame(frames[0])
    repeat = model.frame(frames[0])
    assert repeat.changed_inputs.tolist() == [0, 0]
    model.begin_sequence()
    again = model.frame(frames[0])
    assert again.changed_inputs.tolist() == [12, 9]
    assert again.outputs.tolist() == repeat.outputs.tolist()
    # and the sequence continues reusing afterwards
    assert model.frame(frames[0]).changed_inputs.tolist() == [0, 0]


def test_run_is_frame_by_frame():
    layers, frames = make()
    results = GoldenModel(CONFIG, layers).run(frames)
    model = GoldenModel(CONFIG, layers)
    assert [r.outputs.tolist() for r in results] == [
        model.frame(f).outputs.tolist() for f in frames]


@pytest.mark.parametrize("shape", [(11,), (13,), (1, 12), (12, 1), ()])
def test_frame_of_the_wrong_shape(shape):
    layers, _ = make()
    model = GoldenModel(CONFIG, layers)
    message = f"frame must hold 12 cluster indices, not an array of shape {shape}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model.frame(np.zeros(shape, np.int64))


def test_frame_accepts_a_list():
    layers, frames = make()
    a = GoldenModel(CONFIG, layers).frame(frames[0].tolist())
    b = GoldenModel(CONFIG, layers).frame(frames[0])
    assert a.outputs.tolist() == b.outputs.tolist()


# -- timing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("inputs,outputs", [(1, 1), (4, 4), (5, 3), (16, 16), (32, 9),
                                            (7, 32), (32, 32)])
def test_dense_layer_cycles(inputs, outputs):
    groups = -(-outputs // CONFIG.lanes)
    assert dense_layer_cycles(CONFIG, inputs, outputs) == inputs * groups + groups + 19
    assert layer_cycles(CONFIG, np.ones(inputs, bool), outputs) == inputs * groups + groups + 19


@pytest.mark.parametrize("inputs,outputs", [(1, 1), (4, 4), (5, 3), (16, 16), (32, 9)])
def test_layer_with_nothing_changed(inputs, outputs):
    # setup, fill, one serializer cycle per input row, the groups, readout
    rows = -(-inputs // CONFIG.lanes)
    groups = -(-outputs // CONFIG.lanes)
    assert layer_cycles(CONFIG, np.zeros(inputs, bool), outputs) == 1 + 8 + rows + groups + 5


def test_model_cycles_of_an_unchanged_frame():
    layers, frames = make()
    model = GoldenModel(CONFIG, layers)
    first = model.frame(frames[0])
    assert first.layer_cycles.tolist() == [12 * 3 + 14 + 5, 9 * 2 + 2 + 19]
    assert first.cycles == 55 + 39 + 1
    repeat = model.frame(frames[0])
    assert repeat.layer_cycles.tolist() == [3 + 14, 3 + 2 + 14]
    assert repeat.cycles == 17 + 19 + 1


def test_single_change_cycles():
    # One changed input (input 5, row 1, rank 0) in a 12-input layer with 3 output groups:
    # u_0 = 1 (row 0 took one cycle); tail = max(S - u_0, G + 5) = max(3 - 1, 8).
    changed = np.zeros(12, bool)
    changed[5] = True
    assert layer_cycles(CONFIG, changed, 12) == 1 + 8 + 1 + 0 + 8 + 3 + 5


def test_long_unchanged_tail_cycles():
    # Only input 0 of 32 changes and one output group: the serializer still walks the other
    # seven rows, so the tail is S - u_0 = 8 cycles, longer than G + MAC_DRAIN = 6.
    changed = np.zeros(32, bool)
    changed[0] = True
    assert layer_cycles(CONFIG, changed, 4) == 1 + 8 + 0 + 0 + 8 + 1 + 5


@st.composite
def change_masks(draw):
    inputs = draw(st.integers(1, 32))
    density = draw(st.sampled_from([0.05, 0.2, 0.5, 0.9]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return (np.random.default_rng(seed).random(inputs) < density).tolist()


@settings(max_examples=400, deadline=None)
@given(change_masks(), st.integers(1, 32))
def test_layer_cycles_follow_the_documented_formula(changed, outputs):
    assert layer_cycles(CONFIG, np.array(changed), outputs) == formula_cycles(
        CONFIG, changed, outputs)


def test_frame_cycles_add_the_done_cycle():
    assert frame_cycles([10, 20, 30]) == 61
    assert frame_cycles(np.array([5])) == 6


# -- quantize and activate -----------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.integers(-(2 ** 30), 2 ** 30), st.integers(0, CONFIG.max_shift), st.booleans())
def test_activate_rounds_shifts_and_saturates(acc, shift, relu):
    assert activate(np.array([acc]), shift, relu, CONFIG).tolist() == [
        reference_activation(acc, shift, relu, CONFIG)]


def test_activate_examples():
    acc = np.array([-9, -8, -6, -5, -2, 0, 2, 5, 6, 7, 10 ** 6, -(10 ** 6)])
    assert activate(acc, 2, False, CONFIG).tolist() == [-2, -2, -1, -1, 0, 0, 1, 1, 2, 2,
                                                        CONFIG.act_max, CONFIG.act_min]
    assert activate(acc, 2, True, CONFIG).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 2, 2,
                                                       CONFIG.act_max, 0]
    assert activate(acc, 0, False, CONFIG).tolist() == [-9, -8, -6, -5, -2, 0, 2, 5, 6, 7,
                                                        2047, -2048]


def test_quantize_shapes_follow_the_values():
    indices, outside = quantize(np.zeros((2, 3), np.int64), np.array([-1, 0, 1]))
    assert indices.shape == outside.shape == (2, 3)
    assert indices.tolist() == [[1] * 3] * 2


def test_frame_rejects_indices_outside_the_clusters():
    config = AccelConfig(lanes=4, clusters=8, max_neurons=16, weight_depth=64)
    model = GoldenModel(config, random_network(config, [5, 3], np.random.default_rng(0)))
    for bad, shown in (([0, 1, 8, 2, 3], "0..8"), ([-1, 0, 0, 0, 0], "-1..0")):
        with pytest.raises(ValueError, match=re.escape(
                f"cluster indices must be in [0, 7], not {shown}")):
            model.frame(np.array(bad))


def test_set_mode_makes_the_next_frame_start_over():
    config = AccelConfig(lanes=4, clusters=8, max_neurons=16, weight_depth=64)
    rng = np.random.default_rng(1)
    model = GoldenModel(config, random_network(config, [5, 3], rng))
    frame = similar_frames(config, 5, 1, 0.0, rng)[0]
    model.frame(frame)
    assert model.frame(frame).changed_inputs.tolist() == [0]
    model.set_mode(baseline=False)
    assert model.frame(frame).changed_inputs.tolist() == [5]
    model.set_mode(baseline=True)
    assert model.frame(frame).changed_inputs.tolist() == [5]
    assert model.frame(frame).changed_inputs.tolist() == [5]


def test_clamped_outputs_are_counted():
    """A one-input identity layer: output = (bias + w * c) >> shift, clamped to 16 bits."""
    config = AccelConfig(lanes=4, clusters=2, max_neurons=8, weight_depth=16)
    layer = FixedLayer(weights=np.zeros((4, 1), np.int64),
                       biases=np.array([40000, -40000, 32767, -32768]) << 2,
                       centroids=np.array([0, 1]), shift=2, relu=False)
    result = GoldenModel(config, [layer]).frame(np.array([0]))
    assert result.outputs.tolist() == [32767, -32768, 32767, -32768]
    assert result.saturated_outputs.tolist() == [2]
    layer.relu = True
    result = GoldenModel(config, [layer]).frame(np.array([0]))
    assert result.outputs.tolist() == [32767, 0, 32767, 0]
    assert result.saturated_outputs.tolist() == [1]


# -- the dense kind --------------------------------------------------------------------------------

def test_dense_kind_forward_update_and_counters():
    """sim/model/dense.py: the forward from scratch, the delta update of the sums, the weight
    rows, MACs and cycles of a changed-input mask, against plain integer arithmetic."""
    from reuse_accel.hw.protocol import LayerKind
    from reuse_accel.sim.model import KINDS
    from reuse_accel.sim.model.dense import DenseLayer

    assert KINDS == {LayerKind.DENSE: DenseLayer}
    rng = np.random.default_rng(12)
    layer = random_network(CONFIG, [10, 7], rng)[0]
    assert layer.kind is LayerKind.DENSE
    dense = DenseLayer(CONFIG, layer)
    old = rng.integers(-300, 300, 10)
    new = np.where(rng.random(10) < 0.4, rng.integers(-300, 300, 10), old)
    weights = [[int(w) for w in row] for row in layer.weights]
    scratch = [int(b) + sum(w * int(v) for w, v in zip(row, old))
               for row, b in zip(weights, layer.biases)]
    assert dense.forward(old).tolist() == scratch
    sums = dense.forward(old)
    changed = new != old
    dense.update(sums, changed, new - old)
    assert sums.tolist() == dense.forward(new).tolist()
    count = int(changed.sum())
    assert (dense.weight_rows(count), dense.macs(count)) == (count * 2, count * 7)
    assert dense.cycles(changed, last=True) == formula_cycles(CONFIG, changed.tolist(), 7)
    assert dense.cycles(changed, last=False) == formula_cycles(CONFIG, changed.tolist(), 7,
                                                               last=False)


def test_a_layer_kind_the_model_does_not_know():
    layer = random_network(CONFIG, [4, 3], np.random.default_rng(0))[0]
    layer.kind = "lstm"
    with pytest.raises(ValueError, match="^" + re.escape(
            "layer 0 is of kind 'lstm', which the golden model does not know") + "$"):
        GoldenModel(CONFIG, [layer])


# -- quantize: the golden rule itself --------------------------------------------------------------

def brute_force(value, centroids):
    """argmin |value - c|, ties to the lower index, and the outside flag."""
    distances = [abs(value - c) for c in centroids]
    index = distances.index(min(distances))
    return index, value < min(centroids) or value > max(centroids)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=2, max_size=32, unique=True).map(sorted),
       st.lists(st.integers(-1500, 1500), min_size=1, max_size=20))
def test_quantize_is_nearest_centroid_ties_to_lower(centroids, values):
    indices, outside = quantize(np.array(values), np.array(centroids))
    assert indices.shape == outside.shape == (len(values),)
    for value, index, out in zip(values, indices, outside):
        assert (int(index), bool(out)) == brute_force(value, centroids)


def test_quantize_tie_goes_to_lower_index():
    centroids = [-30, -10, 0, 10, 30]
    indices, outside = quantize(np.array([-20, -5, 5, 20, -30, 30]), np.array(centroids))
    assert indices.tolist() == [0, 1, 2, 3, 0, 4]
    assert outside.tolist() == [False] * 6


def test_quantize_out_of_range_lands_in_end_clusters():
    indices, outside = quantize(np.array([-100, -11, 11, 100]), np.array([-10, 0, 10]))
    assert indices.tolist() == [0, 0, 2, 2]
    assert outside.tolist() == [True, True, True, True]
