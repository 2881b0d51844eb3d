"""Conv gateware: the axis tracker, the scanner, the address generator and the pool walker,
against the convolution's definition (which windows hold an input, the weight layout of
ConvGeometry.weight_rows, the sum rows channels last), the first touch of every sum row and
Pool.windows."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator
from support.streams import Lockstep, StreamSink, StreamSource, always, random_pattern

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.conv import (
    AxisTracker,
    ConvAddressGenerator,
    ConvGeometry,
    ConvScanner,
    Pool,
    PoolWalker,
    conv_descriptor,
)
from reuse_accel.hw.protocol import LayerKind

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                     centroid_width=10, max_layers=2, max_neurons=64, weight_depth=4096,
                     max_kernel=5, max_height=12, max_width=12, sum_depth=512,
                     buffer_depth=128)
L = CONFIG.lanes
SUM_BASE = 37
WEIGHT_BASE = 101


def windows(geometry, y, x):
    """The (oy, ox, ky, kx) of every output window holding input position (y, x), last output
    first: straight from the definition oy*sh + ky - top = y."""
    (kh, kw), (sh, sw) = geometry.kernel, geometry.stride
    top, left = geometry.padding[:2]
    oh, ow = geometry.conv_size
    return [(oy, ox, y + top - oy * sh, x + left - ox * sw)
            for oy in reversed(range(oh)) if 0 <= y + top - oy * sh < kh
            for ox in reversed(range(ow)) if 0 <= x + left - ox * sw < kw]


def expected_items(geometry, inputs, from_scratch):
    """The MAC items of ``inputs`` ((c, y, x, delta), ascending), as (weight_row, sum_row,
    bias_row, delta, init, real_lanes); ``init`` marks each sum row's first update."""
    channels, out_channels = geometry.channels, geometry.out_channels
    kh, kw = geometry.kernel
    ow = geometry.conv_size[1]
    groups = -(-out_channels // L)
    touched = set()
    items = []
    for c, y, x, delta in inputs:
        for oy, ox, ky, kx in windows(geometry, y, x):
            for g in range(groups):
                row = SUM_BASE + (oy * ow + ox) * groups + g
                init = from_scratch and row not in touched
                touched.add(row)
                items.append((WEIGHT_BASE + ((g * kh + ky) * kw + kx) * channels + c, row, g,
                              delta, int(init), L if g < groups - 1 else out_channels - g * L))
    return items


class Harness(wiring.Component):
    """A scanner writing the generator's tables, as in the tile."""

    def __init__(self):
        self.scanner = ConvScanner(CONFIG)
        self.generator = ConvAddressGenerator(CONFIG)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.scanner = self.scanner
        m.submodules.generator = self.generator
        wiring.connect(m, self.scanner.y_write, self.generator.y_table)
        wiring.connect(m, self.scanner.x_write, self.generator.x_table)
        m.d.comb += self.scanner.conv.eq(self.generator.descriptor.conv)
        return m


def descriptor(geometry):
    return {"inputs": 0, "outputs": 0, "weight_base": WEIGHT_BASE, "shift": 0, "relu": 0,
            "kind": LayerKind.CONV.value,
            "conv": conv_descriptor(CONFIG, geometry)}


def run(geometry, inputs, from_scratch, *, offer=always, ready=always):
    """Scan the layer's rows, then send ``inputs`` ((c, y, x, delta)) through the generator.
    Returns the rows' (position, lanes), the items and the inputs' handshake cycles."""
    dut = Harness()
    scanner, generator = dut.scanner, dut.generator
    gc = -(-geometry.channels // L)
    rows = geometry.height * geometry.width * gc
    payloads = []
    for c, y, x, delta in inputs:
        row = (y * geometry.width + x) * gc + c // L
        payloads.append({"input": row * L + c % L, "delta": delta,
                         "position": {"y": y, "x": x, "group": c // L}})
    result = {}

    async def bench(ctx):
        ctx.set(generator.descriptor, descriptor(geometry))
        ctx.set(generator.from_scratch, from_scratch)
        ctx.set(generator.sum_base, SUM_BASE)
        ctx.set(generator.start, 1)
        ctx.set(scanner.start, 1)
        await ctx.tick()
        ctx.set(generator.start, 0)
        ctx.set(scanner.start, 0)
        seen = []
        for _ in range(rows):
            position = ctx.get(scanner.position)
            seen.append(((position.y, position.x, position.group), ctx.get(scanner.lanes)))
            ctx.set(scanner.advance, 1)
            await ctx.tick()
        ctx.set(scanner.advance, 0)
        result["rows"] = seen
        source = StreamSource(generator.i, payloads, offer=offer)
        sink = StreamSink(generator.o, ready=ready)
        steps = Lockstep(source, sink)
        expected = len(expected_items(geometry, inputs, from_scratch))
        while not source.done or len(sink.transfers) < expected or ctx.get(generator.o.valid):
            await steps.tick(ctx)
            assert steps.cycle < 20_000
            if source.done and len(sink.transfers) == expected:
                for _ in range(4):         # nothing more may come
                    await steps.tick(ctx)
                break
        result["items"] = [(edge, item.weight_row, item.sum_row, item.bias_row, item.delta,
                            item.init, item.real_lanes) for edge, item in sink.transfers]
        result["accepted"] = source.transfers

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return result


def all_inputs(geometry, rng):
    return [(c, y, x, rng.randint(-100, 100)) for y in range(geometry.height)
            for x in range(geometry.width) for c in range(geometry.channels)]


GEOMETRIES = {
    "3x3 same": ConvGeometry(3, 5, 6, 5, (3, 3), (1, 1), (1, 1, 1, 1)),
    "5x5 stride 2": ConvGeometry(2, 9, 11, 4, (5, 5), (2, 2), (0, 0, 0, 0)),
    "asymmetric padding, stride 3x2": ConvGeometry(5, 10, 7, 9, (4, 3), (3, 2), (2, 0, 1, 2)),
    "stride past the kernel": ConvGeometry(1, 7, 8, 3, (2, 1), (3, 2), (1, 0, 0, 0)),
    "1-D": ConvGeometry(6, 1, 12, 6, (1, 5), (1, 1), (0, 2, 0, 2), dims=1),
    "1x1": ConvGeometry(8, 3, 4, 12, (1, 1), (1, 1), (0, 0, 0, 0)),
}


@pytest.mark.parametrize("name", GEOMETRIES)
def test_axis_tracker_follows_each_coordinate(name):
    geometry = GEOMETRIES[name]
    fields = conv_descriptor(CONFIG, geometry)
    for axis, size, low in (("y", geometry.height, geometry.padding[0]),
                            ("x", geometry.width, geometry.padding[1])):
        dut = AxisTracker(CONFIG, CONFIG.max_height if axis == "y" else CONFIG.max_width)
        values = fields[axis]
        out_count = values["last_out"] + 1
        seen = []

        async def bench(ctx, dut=dut, values=values, size=size, seen=seen):
            ctx.set(dut.axis, values)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.step, 1)
            for _ in range(size):
                entry = ctx.get(dut.entry)
                seen.append((entry.out, entry.tap, entry.weights, entry.sums, entry.first))
                await ctx.tick()

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        stride = values["stride"]
        expected = []
        for v in range(size):
            out = min(out_count - 1, (v + low) // stride)
            tap = v + low - out * stride
            expected.append((out, tap, tap * values["weight_step"] % (1 << CONFIG.weight_row_bits),
                             out * values["sum_step"], int(v == 0)))
        assert seen == expected, axis


@pytest.mark.parametrize("name", GEOMETRIES)
def test_every_input_of_a_scratch_frame(name):
    geometry = GEOMETRIES[name]
    inputs = all_inputs(geometry, random.Random(name))
    result = run(geometry, inputs, True)
    gc = -(-geometry.channels // L)
    last_lanes = (1 << (geometry.channels - (gc - 1) * L)) - 1
    assert result["rows"] == [((y, x, g), last_lanes if g == gc - 1 else (1 << L) - 1)
                              for y in range(geometry.height) for x in range(geometry.width)
                              for g in range(gc)]
    items = result["items"]
    assert [item[1:] for item in items] == expected_items(geometry, inputs, True)
    # Every sum row is started from its bias exactly once.
    oh, ow = geometry.conv_size
    groups = -(-geometry.out_channels // L)
    assert sorted(item[2] for item in items if item[5]) == list(
        range(SUM_BASE, SUM_BASE + oh * ow * groups))


@pytest.mark.parametrize("seed", range(6))
def test_changed_inputs_under_backpressure(seed):
    rng = random.Random(seed)
    geometry = list(GEOMETRIES.values())[seed % len(GEOMETRIES)]
    inputs = [entry for entry in all_inputs(geometry, rng) if rng.random() < 0.3]
    result = run(geometry, inputs, False, offer=random_pattern(seed, 0.6),
                 ready=random_pattern(seed + 50, 0.5))
    assert [item[1:] for item in result["items"]] == expected_items(geometry, inputs, False)


def test_items_follow_each_other_without_bubbles():
    """With inputs waiting and the MAC array ready, the first item comes `latency` cycles
    after the first input's handshake and the walker never idles: an input no window holds
    costs one cycle without an item."""
    # Odd columns are in no window; rows are in up to three; two output groups.
    geometry = ConvGeometry(1, 7, 9, 6, (3, 1), (1, 2), (1, 0, 1, 0))
    rng = random.Random(3)
    inputs = [(0, y, x, rng.randint(1, 9)) for y, x in [(0, 0), (0, 1), (2, 2), (2, 3),
                                                         (3, 4), (6, 6), (6, 7)]]
    counts = [len(windows(geometry, y, x)) * 2 for _, y, x, _ in inputs]
    assert counts == [4, 0, 6, 0, 6, 4, 0]
    result = run(geometry, inputs, False)
    first = result["accepted"][0] + ConvAddressGenerator.latency
    cycles, t = [], first
    for count in counts:
        cycles += list(range(t, t + count))
        t += max(count, 1)
    assert [item[0] for item in result["items"]] == cycles


POOLED = {
    "2x2": ConvGeometry(2, 8, 9, 6, (3, 3), (1, 1), (1, 1, 1, 1), Pool("max", (2, 2), (2, 2))),
    "3x3 stride 2 padded": ConvGeometry(
        1, 9, 10, 4, (2, 3), (1, 1), (0, 1, 1, 1), Pool("max", (3, 3), (2, 2), (1, 1, 0, 2))),
    "overlapping 3x2 stride 1x3": ConvGeometry(
        3, 7, 11, 9, (1, 1), (1, 1), (0, 0, 0, 0), Pool("max", (3, 2), (1, 3), (2, 1, 2, 1))),
    "1-D": ConvGeometry(4, 1, 12, 5, (1, 3), (1, 1), (0, 1, 0, 1), Pool("max", (1, 3), (1, 2)),
                        dims=1),
    "average 3x3 padded": ConvGeometry(
        2, 8, 9, 6, (3, 3), (1, 1), (1, 1, 1, 1), Pool("avg", (3, 3), (2, 2), (1, 1, 1, 2))),
    "average counting padding 2x3": ConvGeometry(
        1, 9, 10, 4, (2, 3), (1, 1), (0, 1, 1, 1),
        Pool("avg", (2, 3), (1, 2), (1, 2, 1, 0), count_include_pad=True)),
    "global average": ConvGeometry(3, 4, 5, 5, (1, 1), (1, 1), (0, 0, 0, 0),
                                   Pool("avg", (4, 5), (1, 1))),
    # A corner window of one cell and one group: walked in one cycle, the next right after.
    "one-cell corner": ConvGeometry(1, 3, 3, 4, (1, 1), (1, 1), (0, 0, 0, 0),
                                    Pool("avg", (2, 2), (2, 2), (1, 1, 1, 1))),
}


@pytest.mark.parametrize("name", POOLED)
def test_pool_walker_reads_every_windows_cells(name):
    """A setup cycle, then per pooled position and group the window's cells inside the map,
    row by row, the windows back to back, with the divisor of an average (the window's cells
    in the map, or its whole padded window), against Pool.windows."""
    geometry = POOLED[name]
    dut = PoolWalker(CONFIG)
    seen = []

    async def bench(ctx):
        ctx.set(dut.conv, conv_descriptor(CONFIG, geometry))
        ctx.set(dut.base, SUM_BASE)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(2000):
            cell = ctx.get(dut.cell)
            seen.append((cell.valid, cell.address, cell.first, cell.last, cell.row,
                         cell.average, cell.divisor, cell.done))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    oh, ow = geometry.conv_size
    groups = -(-geometry.out_channels // L)
    (row_start, row_stop), (col_start, col_stop), divisors = geometry.pool.windows(oh, ow)
    ph, pw = row_start.shape[0], col_start.shape[0]
    average = int(geometry.pool.mode == "avg")
    expected = [(0, None, None, None, None, None, None, 0)] * PoolWalker.setup_latency
    for py in range(ph):
        for px in range(pw):
            for g in range(groups):
                cells = [(cy, cx) for cy in range(row_start[py], row_stop[py])
                         for cx in range(col_start[px], col_stop[px])]
                # A max has no divisor; the walker gives the window's cells all the same.
                divisor = divisors[py, px] if average else len(cells)
                for k, (cy, cx) in enumerate(cells):
                    done = py == ph - 1 and px == pw - 1 and g == groups - 1 and \
                        k == len(cells) - 1
                    expected.append((1, SUM_BASE + (cy * ow + cx) * groups + g, int(k == 0),
                                     int(k == len(cells) - 1), (py * pw + px) * groups + g,
                                     average, divisor, int(done)))
    got = [entry if entry[0] else (0, None, None, None, None, None, None, entry[7])
           for entry in seen[:len(expected)]]
    assert got == expected
    assert not any(entry[0] for entry in seen[len(expected):])
