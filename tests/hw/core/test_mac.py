"""DeltaMacArray: exact sums (with forwarding hazards), activation readout and timing."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st
from support.streams import Lockstep, StreamSource

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.core.mac import DeltaMacArray, average_divider
from reuse_accel.sim.model import activate

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                     centroid_width=10, max_layers=2, max_neurons=16, weight_depth=128)
L = CONFIG.lanes
GROUPS = CONFIG.max_groups                         # each layer's sum rows follow the last's
ROW_BITS = CONFIG.row_bits                         # bias rows: (layer, row)
MAC_DRAIN = DeltaMacArray.latency                 # last item's handshake -> idle
READOUT_LATENCY = DeltaMacArray.readout_latency   # readout start -> first row written


def reference_activation(acc, shift, relu, config=CONFIG):
    """Round half up at the shift, ReLU or identity, saturate (config docstring)."""
    value = (acc + (2 ** (shift - 1) if shift else 0)) // 2 ** shift
    if relu:
        value = max(value, 0)
    return min(max(value, -(2 ** (config.act_width - 1))), 2 ** (config.act_width - 1) - 1)


class Reference:
    """The array's memories at the contract level: sums[layer, group] += w[row + g] * delta."""

    def __init__(self):
        self.weights = {}
        self.biases = {}
        self.sums = {}

    def item(self, layer, groups, from_scratch, number, delta, weight_row):
        for group in range(groups):
            if from_scratch and number == 0:
                start = self.biases[(layer, group)]
            else:
                start = self.sums[(layer, group)]
            weights = self.weights[weight_row + group]
            self.sums[(layer, group)] = [s + w * delta for s, w in zip(start, weights)]


class Bench:
    """Operations run in order in one simulation; results are filled in as it runs."""

    def __init__(self, config=CONFIG):
        self.config = config
        self.dut = DeltaMacArray(config)
        self.ops = []

    def load_weights(self, rows):
        self.ops.append(("weights", dict(rows)))

    def load_biases(self, rows):
        self.ops.append(("biases", dict(rows)))

    def items(self, layer, groups, from_scratch, items, offer=None):
        record = {"layer": layer, "groups": groups, "from_scratch": from_scratch,
                  "items": list(items), "offer": offer or (lambda cycle: True),
                  "handshakes": [], "idle_low": [], "idle_at": None}
        self.ops.append(("items", record))
        return record

    def readout(self, layer, groups, shift, relu):
        record = {"layer": layer, "groups": groups, "shift": shift, "relu": relu,
                  "start": None, "writes": [], "done": []}
        self.ops.append(("readout", record))
        return record

    def run(self):
        dut = self.dut

        async def bench(ctx):
            cycle = 0
            for kind, op in self.ops:
                if kind in ("weights", "biases"):
                    port = dut.weight_write if kind == "weights" else dut.bias_write
                    for addr, row in op.items():
                        ctx.set(port.addr, addr)
                        ctx.set(port.data, [int(v) for v in row])
                        ctx.set(port.en, 1)
                        await ctx.tick()
                        cycle += 1
                    ctx.set(port.en, 0)
                elif kind == "items":
                    # Each changed input becomes ``groups`` MAC items, rows weight_row + g and
                    # the layer's sum rows g; the first input of a from-scratch pass starts
                    # from the biases.
                    ctx.set(dut.layer, op["layer"])
                    mac_items = [
                        {"weight_row": weight_row + group,
                         "sum_row": op["layer"] * GROUPS + group, "bias_row": group,
                         "delta": delta,
                         "init": op["from_scratch"] and number == 0, "real_lanes": L}
                        for number, delta, weight_row in op["items"]
                        for group in range(op["groups"])]
                    source = StreamSource(dut.items, mac_items, offer=op["offer"])
                    steps = Lockstep(source, cycle=cycle)
                    steps.drive(ctx)
                    # ``idle`` is read before each edge, with the cycle's item offered: it
                    # must fall with the first handshake and rise MAC_DRAIN cycles after the
                    # last, so every cycle in between is checked, not only the transfers.
                    while True:
                        idle = ctx.get(dut.idle)
                        if source.done and idle:
                            op["idle_at"] = steps.cycle
                            break
                        if source.transfers and not idle:
                            op["idle_low"].append(steps.cycle)
                        await steps.tick(ctx)
                        assert steps.cycle < 100_000
                    cycle = steps.cycle
                    op["handshakes"] = source.transfers
                    ctx.set(dut.items.valid, 0)
                else:
                    ctx.set(dut.sum_base, op["layer"] * GROUPS)
                    ctx.set(dut.readout_rows, op["groups"])
                    ctx.set(dut.shift, op["shift"])
                    ctx.set(dut.relu, op["relu"])
                    op["start"] = cycle
                    ctx.set(dut.readout_start, 1)
                    for _ in range(op["groups"] + 6):
                        _, _, en, addr, data, done = await ctx.tick().sample(
                            dut.act.en, dut.act.addr, dut.act.data, dut.readout_done)
                        ctx.set(dut.readout_start, 0)
                        if en:
                            op["writes"].append((cycle, addr, list(data)))
                        if done:
                            op["done"].append(cycle)
                        cycle += 1

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()


def bias_address(layer, group):
    return layer << ROW_BITS | group


def check_readout(record, sums):
    """Rows 0..G-1 written at start+3 .. start+G+2, readout_done on the last, values exact."""
    start, groups = record["start"], record["groups"]
    assert [(cycle, addr) for cycle, addr, _ in record["writes"]] == [
        (start + READOUT_LATENCY + group, group) for group in range(groups)]
    assert record["done"] == [start + READOUT_LATENCY + groups - 1]
    for (_, group, values) in record["writes"]:
        acc = sums[(record["layer"], group)]
        expected = [reference_activation(a, record["shift"], record["relu"]) for a in acc]
        assert values == expected
        golden = activate(np.array(acc), record["shift"], record["relu"], CONFIG)
        assert values == golden.tolist()


def check_items_timing(record):
    """Every item accepted in the cycle it is offered, back to back; idle MAC_DRAIN cycles
    after the last, and not before."""
    handshakes = record["handshakes"]
    assert len(handshakes) == len(record["items"]) * record["groups"]
    assert handshakes == list(range(handshakes[0], handshakes[0] + len(handshakes)))
    assert record["idle_at"] == handshakes[-1] + MAC_DRAIN
    assert record["idle_low"] == list(range(handshakes[0] + 1, record["idle_at"]))


# -- directed ----------------------------------------------------------------------------------

@pytest.mark.parametrize("groups", [1, 2, 3])
def test_back_to_back_items_on_the_same_rows(groups):
    # Every item updates all of the layer's rows: consecutive reads of a row being written.
    rng = random.Random(groups)
    bench = Bench()
    ref = Reference()
    inputs = 16
    weights = {row: [rng.randint(CONFIG.weight_min, CONFIG.weight_max) for _ in range(L)]
               for row in range(inputs * groups)}
    biases = {bias_address(0, g): [rng.randint(-1000, 1000) for _ in range(L)]
              for g in range(groups)}
    ref.weights.update(weights)
    ref.biases.update({(0, g): biases[bias_address(0, g)] for g in range(groups)})
    bench.load_weights(weights)
    bench.load_biases(biases)
    records, readouts = [], []
    for frame in range(2):
        items = [(n, rng.randint(CONFIG.centroid_min, CONFIG.centroid_max), n * groups)
                 for n in range(inputs)]
        records.append(bench.items(0, groups, frame == 0, items))
        for item in items:
            ref.item(0, groups, frame == 0, *item)
        expected = dict(ref.sums)
        readouts.append((bench.readout(0, groups, 10, False), expected))
    bench.run()
    for record in records:
        check_items_timing(record)
    for record, sums in readouts:
        check_readout(record, sums)


def test_single_group_hazard_with_gaps():
    # groups = 1, items hitting row 0 with gaps of 0, 1 and 2 cycles between them.
    bench = Bench()
    ref = Reference()
    weights = {n: [n + 1, -(n + 1), 2 * n - 5, 31 - n] for n in range(8)}
    ref.weights.update(weights)
    ref.biases[(1, 0)] = [7, -7, 100, -100]
    bench.load_weights(weights)
    bench.load_biases({bias_address(1, 0): ref.biases[(1, 0)]})
    pattern = [True, True, False, True, False, False, True, True, True, False, True]
    items = [(n, 50 * n - 200, n) for n in range(8)]
    record = bench.items(1, 1, True, items, offer=lambda cycle: pattern[cycle % len(pattern)])
    for item in items:
        ref.item(1, 1, True, *item)
    readout = bench.readout(1, 1, 6, False)
    bench.run()
    assert len(record["handshakes"]) == 8
    exact = [sum(weights[n][lane] * (50 * n - 200) for n in range(8)) + ref.biases[(1, 0)][lane]
             for lane in range(L)]
    assert ref.sums[(1, 0)] == exact
    check_readout(readout, ref.sums)


def test_sums_are_exact_through_a_shift():
    # shift 6 brings the sums of 8 inputs into the activation range.
    bench = Bench()
    weights = {n: [n + 1, -(n + 1), 2 * n - 5, 31 - n] for n in range(8)}
    bench.load_weights(weights)
    bench.load_biases({bias_address(0, 0): [512, -512, 0, 1023]})
    items = [(n, 50 * n - 200, n) for n in range(8)]
    bench.items(0, 1, True, items)
    readout = bench.readout(0, 1, 6, False)
    bench.run()
    exact = [sum(weights[n][lane] * (50 * n - 200) for n in range(8)) + bias
             for lane, bias in enumerate([512, -512, 0, 1023])]
    assert exact == [1712, -1712, 3800, -6577]
    # (x + 32) >> 6, rounded half up: 27.25, -26.25, 59.875, -102.27
    assert readout["writes"][0][2] == [27, -27, 59, -103]


def test_from_scratch_restarts_from_the_biases():
    bench = Bench()
    weights = {0: [1, 2, 3, 4], 1: [-1, -2, -3, -4]}
    bench.load_weights(weights)
    bench.load_biases({bias_address(0, 0): [1000, 2000, -3000, 0]})
    bench.items(0, 1, True, [(0, 10, 0), (1, 20, 1)])
    first = bench.readout(0, 1, 0, False)
    # not from scratch: adds to the stored sums
    bench.items(0, 1, False, [(1, -5, 1)])
    second = bench.readout(0, 1, 4, False)
    # from scratch again: input 0 starts from the biases, the history is dropped
    bench.items(0, 1, True, [(0, 3, 0), (1, 4, 1)])
    third = bench.readout(0, 1, 4, False)
    # from scratch but the item is not input 0: it adds to the stored sums
    bench.items(0, 1, True, [(1, 1, 1)])
    fourth = bench.readout(0, 1, 4, False)
    bench.run()
    sums1 = [1000 + 10 - 20, 2000 + 20 - 40, -3000 + 30 - 60, 0 + 40 - 80]
    sums2 = [s + 5 * k for s, k in zip(sums1, [1, 2, 3, 4])]
    sums3 = [1000 + 3 - 4, 2000 + 6 - 8, -3000 + 9 - 12, 0 + 12 - 16]
    sums4 = [s - k for s, k in zip(sums3, [1, 2, 3, 4])]
    check_readout(first, {(0, 0): sums1})
    check_readout(second, {(0, 0): sums2})
    check_readout(third, {(0, 0): sums3})
    check_readout(fourth, {(0, 0): sums4})
    # (998 + 8) >> 4, (1996 + 8) >> 4, (-3006 + 8) >> 4 saturated, (-8 + 8) >> 4
    assert [values for _, _, values in fourth["writes"]] == [[62, 125, -128, 0]]


def test_layers_have_separate_sums():
    bench = Bench()
    bench.load_weights({0: [1, 1, 1, 1], 1: [2, 2, 2, 2]})
    bench.load_biases({bias_address(0, 0): [0, 1, 2, 3], bias_address(1, 0): [10, 20, 30, 40]})
    bench.items(0, 1, True, [(0, 5, 0)])
    bench.items(1, 1, True, [(0, 7, 1)])
    bench.items(0, 1, False, [(3, 1, 0)])
    zero = bench.readout(0, 1, 0, False)
    one = bench.readout(1, 1, 0, False)
    bench.run()
    check_readout(zero, {(0, 0): [6, 7, 8, 9]})
    check_readout(one, {(1, 0): [24, 34, 44, 54]})


def test_activation_rounding_shift_relu_and_saturation():
    # Zero weights: from scratch, the sums are the biases themselves.
    bench = Bench()
    groups = 4
    bench.load_weights({row: [0] * L for row in range(groups)})
    values = [-32768, -1000, -129, -128,
              -7, -6, -5, -3,
              -2, -1, 0, 1,
              127, 128, 32767, 3]
    biases = {bias_address(0, g): values[g * L:(g + 1) * L] for g in range(groups)}
    bench.load_biases(biases)
    bench.items(0, groups, True, [(0, 0, 0)])
    settings_ = [(0, False), (0, True), (1, False), (1, True), (2, False), (3, True),
                 (8, False), (15, False), (15, True), (CONFIG.max_shift, False)]
    readouts = [bench.readout(0, groups, shift, relu) for shift, relu in settings_]
    bench.run()
    sums = {(0, g): values[g * L:(g + 1) * L] for g in range(groups)}
    for readout in readouts:
        check_readout(readout, sums)
    identity = [row for _, _, row in readouts[0]["writes"]]
    assert identity[0] == [-128, -128, -128, -128]           # saturates low
    assert identity[3] == [127, 127, 127, 3]                 # 127 passes, 128 saturates
    relu = [row for _, _, row in readouts[1]["writes"]]
    assert relu[0] == [0, 0, 0, 0]
    halves = [row for _, _, row in readouts[2]["writes"]]    # shift 1: x/2, ties up
    assert halves[1] == [-3, -3, -2, -1]                     # -7 -6 -5 -3
    assert halves[2] == [-1, 0, 0, 1]                        # -2 -1 0 1


def test_accumulator_extremes_do_not_overflow():
    # 16 inputs of weight -32 and centroid -512 (plus the largest bias) reach the top of the
    # documented accumulator range; weight 31 / -32 with centroid -512 / 511 the bottom.
    groups = 4
    inputs = 16
    bench = Bench()
    top = {n * groups + g: [CONFIG.weight_min] * L for n in range(inputs)
           for g in range(groups)}
    bench.load_weights(top)
    bench.load_biases({bias_address(0, g): [CONFIG.bias_max] * 2 + [CONFIG.bias_min] * 2
                       for g in range(groups)})
    deltas = [CONFIG.centroid_min] * inputs
    bench.items(0, groups, True, [(n, deltas[n], n * groups) for n in range(inputs)])
    readouts = [bench.readout(0, groups, shift, False)
                for shift in (CONFIG.max_shift, 12, 0)]
    # Replace every input's centroid: the lanes move towards the most negative sum.
    bench.items(0, groups, False, [(n, CONFIG.centroid_max - CONFIG.centroid_min, n * groups)
                                   for n in range(inputs)])
    readouts += [bench.readout(0, groups, shift, False) for shift in (CONFIG.max_shift, 0)]
    bench.run()
    high = CONFIG.bias_max + inputs * CONFIG.weight_min * CONFIG.centroid_min
    low_bias = CONFIG.bias_min + inputs * CONFIG.weight_min * CONFIG.centroid_min
    assert high == 294911 and high < 2 ** (CONFIG.acc_width - 1)
    first = {(0, g): [high, high, low_bias, low_bias] for g in range(groups)}
    for readout in readouts[:3]:
        check_readout(readout, first)
    final_high = CONFIG.bias_max + inputs * CONFIG.weight_min * CONFIG.centroid_max
    final_low = CONFIG.bias_min + inputs * CONFIG.weight_min * CONFIG.centroid_max
    assert final_low == -294400 and final_low >= -(2 ** (CONFIG.acc_width - 1))
    second = {(0, g): [final_high] * 2 + [final_low] * 2 for g in range(groups)}
    for readout in readouts[3:]:
        check_readout(readout, second)
    assert readouts[0]["writes"][0][2] == [9, 9, 7, 7]
    assert readouts[3]["writes"][0][2] == [-7, -7, -9, -9]


def test_readout_of_each_group_in_order():
    groups = 4
    bench = Bench()
    bench.load_weights({g: [0] * L for g in range(groups)})
    bench.load_biases({bias_address(1, g): [10 * g + lane for lane in range(L)]
                       for g in range(groups)})
    bench.items(1, groups, True, [(0, 0, 0)])
    readout = bench.readout(1, groups, 0, False)
    short = bench.readout(1, 2, 0, True)   # a layer with two groups reads two rows
    bench.run()
    sums = {(1, g): [10 * g + lane for lane in range(L)] for g in range(groups)}
    check_readout(readout, sums)
    check_readout(short, sums)
    assert [addr for _, addr, _ in short["writes"]] == [0, 1]


# -- random ------------------------------------------------------------------------------------

@st.composite
def scenarios(draw):
    rng = random.Random(draw(st.integers(0, 2 ** 32 - 1)))
    layers = []
    for layer in range(2):
        groups = draw(st.integers(1, CONFIG.max_groups))
        inputs = draw(st.integers(1, CONFIG.max_neurons))
        layers.append((layer, groups, inputs, 64 * layer))
    gaps = draw(st.sampled_from([0.0, 0.3]))
    frames = draw(st.integers(2, 3))
    restart = draw(st.integers(1, frames))   # a from-scratch frame in the middle, or none
    change = draw(st.sampled_from([0.1, 0.5, 1.0]))
    return rng, layers, gaps, frames, restart, change


@settings(max_examples=35, deadline=None)
@given(scenarios())
def test_random_delta_sequences_match_reference(scenario):
    rng, layers, gaps, frames, restart, change = scenario
    bench = Bench()
    ref = Reference()
    weights, biases = {}, {}
    for layer, groups, inputs, base in layers:
        for row in range(base, base + inputs * groups):
            weights[row] = [rng.randint(CONFIG.weight_min, CONFIG.weight_max) for _ in range(L)]
        for g in range(groups):
            biases[bias_address(layer, g)] = [rng.randint(CONFIG.bias_min, CONFIG.bias_max)
                                              for _ in range(L)]
            ref.biases[(layer, g)] = biases[bias_address(layer, g)]
    ref.weights.update(weights)
    bench.load_weights(weights)
    bench.load_biases(biases)
    offer_bits = [rng.random() >= gaps for _ in range(50_000)]
    centroid = {}   # (layer, input) -> the centroid the sums currently hold
    records, readouts = [], []
    for frame in range(frames):
        scratch = frame in (0, restart)
        for layer, groups, inputs, base in layers:
            items = []
            for number in range(inputs):
                if scratch or rng.random() < change:
                    new = rng.randint(CONFIG.centroid_min, CONFIG.centroid_max)
                    old = 0 if scratch else centroid[(layer, number)]
                    if scratch or new != old:
                        items.append((number, new - old, base + number * groups))
                    centroid[(layer, number)] = new
            if items:
                records.append(bench.items(layer, groups, scratch, items,
                                           offer=lambda cycle: offer_bits[cycle]))
            for item in items:
                ref.item(layer, groups, scratch, *item)
            for _ in range(2):
                shift = rng.randint(0, CONFIG.max_shift)
                relu = rng.random() < 0.5
                readouts.append((bench.readout(layer, groups, shift, relu), dict(ref.sums)))
    bench.run()
    for record in records:
        assert len(record["handshakes"]) == len(record["items"]) * record["groups"]
        if gaps == 0:
            check_items_timing(record)
    for readout, sums in readouts:
        check_readout(readout, sums)


@pytest.mark.parametrize("max_kernel,act_width", [(3, 16), (5, 8), (2, 12)])
def test_average_divider_divides_every_numerator_exactly(max_kernel, act_width):
    """The readout's reciprocal table gives floor(n / d) for every divisor and every numerator
    the pool stage can form (below max_kernel**2 * 2**act_width), checked exhaustively."""
    config = AccelConfig(max_kernel=max_kernel, max_height=8, max_width=8, act_width=act_width,
                         act_frac=act_width // 2)
    shift, reciprocals = average_divider(config)
    largest = max_kernel ** 2
    assert len(reciprocals) == largest + 1
    numerators = np.arange(largest << act_width, dtype=np.int64)
    assert numerators[-1] < 1 << config.pool_numerator_bits
    for divisor in range(1, largest + 1):
        quotients = (numerators * reciprocals[divisor]) >> shift
        assert np.array_equal(quotients, numerators // divisor), divisor
