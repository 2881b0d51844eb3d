"""DenseAddressGenerator: MAC items per changed input, the group-major weight layout, timing."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from support.streams import Lockstep, StreamSink, StreamSource, always, random_pattern

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.dense import DenseAddressGenerator, items_per_input, weight_rows
from reuse_accel.hw.protocol import LayerKind

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                     centroid_width=10, max_layers=2, max_neurons=16, weight_depth=256)
L = CONFIG.lanes


def simulate(layers, *, ready=always, offer=always, sum_base=0):
    """Run layers back to back: each is (descriptor, from_scratch, [(input, delta), ...]), all
    with their sums from row ``sum_base``.

    Returns per layer the items as (cycle, weight_row, sum_row, delta, init, real_lanes) and
    the cycles at which inputs were accepted; every item's bias row is checked to be its
    output group."""
    dut = DenseAddressGenerator(CONFIG)
    results = []

    async def bench(ctx):
        cycle = 0
        for descriptor, from_scratch, inputs in layers:
            ctx.set(dut.descriptor, descriptor)
            ctx.set(dut.from_scratch, from_scratch)
            ctx.set(dut.sum_base, sum_base)
            ctx.set(dut.start, 1)
            await ctx.tick()
            cycle += 1
            ctx.set(dut.start, 0)
            source = StreamSource(dut.i, [{"input": number, "delta": delta}
                                          for number, delta in inputs], offer=offer)
            sink = StreamSink(dut.o, ready=ready)
            steps = Lockstep(source, sink, cycle=cycle)
            expected = len(inputs) * items_per_input(CONFIG, descriptor["outputs"])
            while len(sink.transfers) < expected:
                await steps.tick(ctx)
                assert steps.cycle < 10_000
            cycle = steps.cycle
            ctx.set(dut.i.valid, 0)
            for _, item in sink.transfers:
                assert item.bias_row == item.sum_row - sum_base
            items = [(edge, item.weight_row, item.sum_row, item.delta, item.init,
                      item.real_lanes) for edge, item in sink.transfers]
            results.append((items, source.transfers))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def descriptor(inputs, outputs, weight_base=0):
    return {"inputs": inputs, "outputs": outputs, "weight_base": weight_base, "shift": 0,
            "relu": 0, "kind": LayerKind.DENSE.value}


def test_weight_rows_are_group_major():
    weights = np.arange(6 * 3).reshape(6, 3)     # 6 outputs (2 groups of 4), 3 inputs
    rows = weight_rows(CONFIG, weights)
    assert rows.tolist() == [
        [0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11],       # group 0: outputs 0..3 of input i
        [12, 15, 0, 0], [13, 16, 0, 0], [14, 17, 0, 0],   # group 1: outputs 4, 5 and padding
    ]


def test_items_of_each_changed_input():
    # 7 inputs, 6 outputs: two groups, the second with two real lanes; weights from row 40.
    # Its sums start at row 4 (as layer 1, after layer 0's four rows).
    layer = descriptor(7, 6, weight_base=40)
    [(items, accepted)] = simulate([(layer, False, [(2, 11), (5, -3), (6, 100)])],
                                   sum_base=4)
    rows = 4
    assert [item[1:] for item in items] == [
        (40 + 2, rows, 11, 0, 4), (40 + 7 + 2, rows + 1, 11, 0, 2),
        (40 + 5, rows, -3, 0, 4), (40 + 7 + 5, rows + 1, -3, 0, 2),
        (40 + 6, rows, 100, 0, 4), (40 + 7 + 6, rows + 1, 100, 0, 2),
    ]
    # One item per cycle: the next input is accepted in the cycle of the last item.
    cycles = [item[0] for item in items]
    assert cycles == list(range(cycles[0], cycles[0] + 6))
    assert accepted == [cycles[0] - 1, cycles[1], cycles[3]]


def test_from_scratch_first_input_starts_every_row_from_the_biases():
    layer = descriptor(3, 9)                    # three groups, the last with one lane
    first, later = simulate([(layer, True, [(0, 5), (1, 6), (2, 7)]),
                             (layer, False, [(1, 1)])])
    assert [item[1:] for item in first[0]] == [
        (0, 0, 5, 1, 4), (3, 1, 5, 1, 4), (6, 2, 5, 1, 1),
        (1, 0, 6, 0, 4), (4, 1, 6, 0, 4), (7, 2, 6, 0, 1),
        (2, 0, 7, 0, 4), (5, 1, 7, 0, 4), (8, 2, 7, 0, 1),
    ]
    assert [item[4] for item in later[0]] == [0, 0, 0]


@pytest.mark.parametrize("seed", range(4))
def test_backpressure_and_gaps_keep_every_item_in_order(seed):
    rng = random.Random(seed)
    layers = []
    for _ in range(3):
        inputs, outputs = rng.randint(1, 16), rng.randint(1, 16)
        base = rng.randint(0, 100)
        changed = sorted(rng.sample(range(inputs), rng.randint(1, inputs)))
        layers.append((descriptor(inputs, outputs, base), rng.random() < 0.5,
                       [(n, rng.randint(-512, 511)) for n in changed]))
    results = simulate(layers, ready=random_pattern(seed + 100, 0.4),
                       offer=random_pattern(seed + 200, 0.5))
    for (layer, scratch, changed), (items, _) in zip(layers, results):
        groups = -(-layer["outputs"] // L)
        last_lanes = layer["outputs"] - (groups - 1) * L
        expected = [(layer["weight_base"] + g * layer["inputs"] + n, g, delta,
                     int(scratch and k == 0), last_lanes if g == groups - 1 else L)
                    for k, (n, delta) in enumerate(changed) for g in range(groups)]
        assert [item[1:] for item in items] == expected
