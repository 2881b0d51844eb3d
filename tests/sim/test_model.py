"""GoldenModel: reuse equals from-scratch computation, counters, cycle formula, activate."""

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.networks import every_input_cycles, random_network, similar_frames

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.tile import ProcessingTile
from reuse_accel.sim.model import FixedLayer, GoldenModel, activate, quantize, quantized_state
from reuse_accel.sim.timing import (
    DONE,
    FILL,
    FILL_WITHOUT_REUSE,
    FRAME_OVERHEAD,
    GENERATOR,
    MAC_DRAIN,
    READOUT,
    SETUP,
    dense_layer_cycles,
    frame_cycles,
    layer_cycles,
)

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=12, act_frac=6, weight_width=6,
                     centroid_width=12, max_layers=3, max_neurons=32, weight_depth=1024)
NO_REUSE = dataclasses.replace(CONFIG, reuse=False)
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

    Returns per layer: input indices, outside count, activations, outside flags.
    """
    result = []
    indices = [int(i) for i in indices]
    outside = [False] * len(indices)
    values = []
    for number, layer in enumerate(layers):
        centroids = [int(c) for c in layer.centroids]
        if number > 0:
            pairs = [nearest(v, centroids) for v in values]
            indices = [index for index, _ in pairs]
            outside = [out for _, out in pairs]
        outside_count = sum(outside)
        inputs = [centroids[i] for i in indices]
        values = []
        for output in range(layer.outputs):
            acc = int(layer.biases[output]) + sum(
                int(layer.weights[output][i]) * inputs[i] for i in range(layer.inputs))
            values.append(reference_activation(acc, layer.shift, layer.relu, config))
        result.append((indices, outside_count, values, outside))
    return result


def formula_cycles(config, changed, outputs, last=True, unstable=None):
    """The layer's cycles from sim/timing.py's docstring, stepped cycle by cycle: the
    serializer walks the rows (a row without a lane to send takes one cycle) and hands its lanes
    on (with reuse) to the quantizer, which never stalls, and the queue behind it, whose head
    drops an input whose centroid did not change and hands a changed one to the address
    generator, busy for G cycles per input; the serializer hands a lane on only while fewer than
    Q + 1 are in flight, counted at the start of the cycle. Without reuse the serializer hands
    every lane to the generator itself."""
    lanes = config.lanes
    groups = -(-outputs // lanes)
    unstable = list(changed) if unstable is None else [a or b for a, b in zip(unstable, changed)]
    rows = -(-len(unstable) // lanes)
    depth = ProcessingTile.quantize_latency(config)
    done_delay = DONE if config.reuse else 0
    fill = FILL if config.reuse else FILL_WITHOUT_REUSE
    margin = 9 + depth if config.reuse else 6
    readout = groups + READOUT if last else max(READOUT, groups - margin)
    queue = [[changed[n] for n in range(row * lanes, min((row + 1) * lanes, len(unstable)))
              if unstable[n]] for row in range(rows)]
    flight = []                      # (first cycle at the queue's head, changed), in order
    generator_free = 0               # first cycle the generator takes a new input
    served = None                    # its last handshake
    row, row_start = 0, SETUP + fill  # the serializer's row and the cycle it arrived
    serializer_done = None
    cycle = 0
    while True:
        cycle += 1 if cycle else SETUP + fill
        room = len(flight) < depth + 1   # the count as registered at the start of the cycle
        # the queue's head and the generator
        if flight and flight[0][0] <= cycle and (not flight[0][1] or cycle >= generator_free):
            if flight.pop(0)[1]:
                generator_free, served = cycle + groups, cycle
        if serializer_done is None and cycle >= row_start:
            if queue[row]:
                if depth and room:
                    flight.append((cycle + depth, queue[row].pop(0)))
                elif not depth and cycle >= generator_free:
                    queue[row].pop(0)
                    generator_free, served = cycle + groups, cycle
            if not queue[row]:
                if row == rows - 1:
                    serializer_done = cycle
                else:
                    row, row_start = row + 1, cycle + 1
        if serializer_done is not None and not flight:
            end = cycle + 1 + done_delay    # the scan's end, as the tile registers it
            if served is not None:
                end = max(end, served + GENERATOR + groups - 1 + MAC_DRAIN)
            return end + readout


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
        assert [a.tolist() for a in result.activations] == [values for _, _, values, _ in
                                                            expected]
        assert result.outputs.tolist() == expected[-1][2]
        expected_counts = [layer[:3] for layer in expected]
        # counters
        if previous is None:
            changed = [layer.inputs for layer in layers]
        else:
            changed = [sum(a != b for a, b in zip(now[0], before[0]))
                       for now, before in zip(expected_counts, previous)]
        assert result.changed_inputs.tolist() == changed
        assert result.out_of_range.tolist() == [count for _, count, _ in expected_counts]
        groups = [-(-layer.outputs // config.lanes) for layer in layers]
        assert result.weight_rows.tolist() == [c * g for c, g in zip(changed, groups)]
        assert result.macs.tolist() == [c * layer.outputs for c, layer in zip(changed, layers)]
        # cycles from the documented formula, on the masks of changed inputs and of the inputs
        # that left their interval: for an ascending table, those whose index or whose being
        # outside the range changed
        cycles = []
        for number, ((now, _, _, out), layer) in enumerate(zip(expected, layers)):
            if previous is None:
                changed_mask = unstable = [True] * len(now)
            else:
                before, _, _, out_before = previous[number]
                changed_mask = [a != b for a, b in zip(now, before)]
                unstable = [c or (a != b) for c, a, b in zip(changed_mask, out, out_before)]
            cycles.append(formula_cycles(config, changed_mask, layer.outputs,
                                         last=number == len(layers) - 1, unstable=unstable))
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
            inputs, [CONFIG.groups(layer.outputs) for layer in layers], clusters=8)
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
    assert dense_layer_cycles(CONFIG, inputs, outputs) == inputs * groups + groups + 22
    assert layer_cycles(CONFIG, np.ones(inputs, bool), outputs) == inputs * groups + groups + 22


@pytest.mark.parametrize("inputs,outputs", [(1, 1), (4, 4), (5, 3), (16, 16), (32, 9)])
def test_layer_with_nothing_changed(inputs, outputs):
    # setup, fill, one serializer cycle per input row, the change detector's done, readout
    rows = -(-inputs // CONFIG.lanes)
    groups = -(-outputs // CONFIG.lanes)
    assert layer_cycles(CONFIG, np.zeros(inputs, bool), outputs) == 1 + 6 + rows + 1 + groups + 5


def test_model_cycles_of_an_unchanged_frame():
    layers, frames = make()
    model = GoldenModel(CONFIG, layers)
    first = model.frame(frames[0])
    assert first.layer_cycles.tolist() == [12 * 3 + 17 + 5, 9 * 2 + 2 + 22]
    assert first.cycles == 58 + 42 + 1
    repeat = model.frame(frames[0])
    assert repeat.layer_cycles.tolist() == [3 + 13, 3 + 2 + 13]
    assert repeat.cycles == 16 + 18 + 1


def test_single_change_cycles():
    # One changed input (input 5, row 1, rank 0) in a 12-input layer with 3 output groups:
    # setup, fill, u_0 = 1 (row 0 took one cycle), the 5 quantizer stages (3 index bits, the
    # centroid, the delta), then the longer of the serializer's rest S - u_0 + 1 = 3 and
    # G + MAC_DRAIN = 8, and the readout.
    changed = np.zeros(12, bool)
    changed[5] = True
    assert layer_cycles(CONFIG, changed, 12) == 1 + 6 + 1 + 5 + 8 + 3 + 5


def test_long_unchanged_tail_cycles():
    # Only input 0 of 32 changes and one output group: the serializer's walk over the other
    # seven rows (done S - u_0 + DONE = 9 cycles after input 0 left it) hides under its 5
    # quantizer stages and G + MAC_DRAIN = 6.
    changed = np.zeros(32, bool)
    changed[0] = True
    assert layer_cycles(CONFIG, changed, 4) == 1 + 6 + 0 + 5 + 6 + 1 + 5
    # Inputs 1-3 left their interval without changing centroid: the serializer spends a cycle
    # on each (row 0 takes 4 cycles, then 7 rows of one), they are quantized and dropped before
    # the address generator; the serializer ends last, S + DONE = 12 cycles after it started.
    unstable = changed.copy()
    unstable[[1, 2, 3]] = True
    assert layer_cycles(CONFIG, changed, 4, unstable=unstable) == 1 + 6 + 12 + 1 + 5


@st.composite
def change_masks(draw):
    """A mask of changed inputs and a superset of it, the inputs that left their interval."""
    inputs = draw(st.integers(1, 32))
    density = draw(st.sampled_from([0.05, 0.2, 0.5, 0.9]))
    dropped = draw(st.sampled_from([0.0, 0.3, 0.8]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    unstable = rng.random(inputs) < density
    changed = unstable & (rng.random(inputs) >= dropped)
    return changed.tolist(), unstable.tolist()


@settings(max_examples=400, deadline=None)
@given(change_masks(), st.integers(1, 32), st.booleans())
def test_layer_cycles_follow_the_documented_formula(masks, outputs, last):
    changed, unstable = masks
    assert layer_cycles(CONFIG, np.array(changed), outputs, unstable=np.array(unstable),
                        last=last) == formula_cycles(CONFIG, changed, outputs, last, unstable)
    assert layer_cycles(NO_REUSE, np.array(changed), outputs, last=last) == formula_cycles(
        NO_REUSE, changed, outputs, last)


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

    assert KINDS[LayerKind.DENSE] is DenseLayer
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
    assert (dense.weight_rows(changed), dense.macs(changed)) == (count * 2, count * 7)
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


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([CONFIG, CONFIG16]).flatmap(lambda config: st.tuples(
    st.just(config),
    st.lists(st.integers(-1000, 1000), min_size=config.clusters, max_size=config.clusters,
             unique=True).map(sorted),
    st.lists(st.integers(config.act_min, config.act_max), min_size=1, max_size=20))))
def test_quantized_state_interval_is_exactly_the_values_that_quantize_alike(case):
    # For an ascending table, the stored interval (low, high] of doubled values holds every
    # value with the same index and outside flag, and nothing else: its ends are the nearest
    # values that quantize differently, or the open ends of the state's width.
    config, centroids, values = case
    state = quantized_state(np.array(values), np.array(centroids), config)
    width = config.centroid_width + 2
    lowest, highest = -(1 << (width - 1)), (1 << (width - 1)) - 1

    def key(value):
        index, outside = brute_force(value, centroids)
        return index, outside

    for value, low, high in zip(values, state.low, state.high):
        assert low < 2 * value <= high
        first, last = int(low) // 2 + 1, int(high) // 2        # the values inside
        for inside in (first, last):
            if config.act_min <= inside <= config.act_max:
                assert key(inside) == key(value)
        if low == lowest:
            assert key(value)[1] and value < centroids[0]
        else:
            assert key(first - 1) != key(value)
        if high == highest:
            assert key(value)[1] and value > centroids[-1]
        else:
            assert key(last + 1) != key(value)


def test_quantized_state_of_indices_holds_the_index_alone():
    centroids = np.array([-7, -5, -3, -1, 1, 3, 5, 7])
    state = quantized_state(np.array([0, 3, 7]), centroids, CONFIG, bypass=True)
    assert state.centroid.tolist() == [-7, -1, 7]
    assert state.low.tolist() == [-1, 5, 13] and state.high.tolist() == [0, 6, 14]
    assert state.outside.tolist() == [False] * 3
