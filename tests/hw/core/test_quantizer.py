"""CentroidQuantizer against sim.model.quantized_state (whose own rule tests/sim/test_model.py
checks against brute force), by hand, and with bubbles between values."""


import numpy as np
from amaranth.hdl import unsigned
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st
from support.streams import Lockstep, StreamSink, StreamSource, always, random_pattern

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.core.quantizer import CentroidQuantizer
from reuse_accel.sim.model import quantized_state

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                     centroid_width=10, max_layers=2, max_neurons=16, weight_depth=64)
CONFIG16 = AccelConfig(lanes=4, clusters=16, act_width=8, act_frac=4, weight_width=6,
                       centroid_width=10, max_layers=2, max_neurons=32, weight_depth=64)
LATENCY = {8: 4, 16: 5}   # one stage per index bit of the binary search, one for the centroid
TAG_BITS = 8
# The open ends of an interval: the extremes of centroid_width + 2 = 12 bits.
LOWEST, HIGHEST = -2048, 2047


def simulate(config, centroids, values, *, bypass=False, ready=always, offer=always,
             extra_cycles=8):
    """Stream ``values`` through a quantizer, tags 0, 1, 2, ...

    ``ready(cycle)`` and ``offer(cycle)`` give o.ready and whether the source may raise
    i.valid (once raised, valid and payload hold until the transfer). Returns the input
    transfer cycles, the output transfers ``(cycle, (centroid, low, high, outside), tag)``, and
    every cycle's ``(o.valid, o.ready, o.payload)`` sample.
    """
    dut = CentroidQuantizer(config, tag_shape=unsigned(TAG_BITS))
    source = StreamSource(dut.i, [{"value": int(v), "tag": n % (1 << TAG_BITS)}
                                  for n, v in enumerate(values)], offer=offer)
    sink = StreamSink(dut.o, ready=ready)

    async def bench(ctx):
        ctx.set(dut.centroids, [int(c) for c in centroids])
        ctx.set(dut.bypass, bypass)
        await ctx.tick()  # the thresholds are registered: one cycle before the first value
        steps = Lockstep(source, sink)
        idle_after_done = 0
        while idle_after_done < extra_cycles:
            await steps.tick(ctx)
            if len(sink.transfers) >= len(values) and source.done:
                assert ctx.get(dut.idle)
                idle_after_done += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    emitted = [(cycle, (payload.centroid, payload.interval.low, payload.interval.high,
                        payload.outside), payload.tag)
               for cycle, payload in sink.transfers]
    return source.transfers, emitted, sink.trace


def expected(config, values, centroids, *, bypass=False):
    state = quantized_state(np.array(values), np.array(centroids), config, bypass=bypass)
    return [(int(c), int(lo), int(hi), int(out)) for c, lo, hi, out in
            zip(state.centroid, state.low, state.high, state.outside)]


def results(emitted):
    return [result for _, result, _ in emitted]


def values_of(config, count):
    return st.lists(st.integers(config.act_min, config.act_max), min_size=1, max_size=count)


def ascending_tables(config):
    """Strictly ascending, non-uniform centroid tables within the centroid range."""
    return st.lists(st.integers(config.centroid_min // 4, config.centroid_max // 4),
                    min_size=config.clusters, max_size=config.clusters,
                    unique=True).map(sorted)


# -- the gateware ------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.data())
def test_centroids_and_intervals_match_golden(data):
    config = data.draw(st.sampled_from([CONFIG, CONFIG16]))
    centroids = data.draw(ascending_tables(config))
    values = data.draw(values_of(config, 40))
    accepted, emitted, _ = simulate(config, centroids, values)
    assert results(emitted) == expected(config, values, centroids)
    assert [tag for *_, tag in emitted] == list(range(len(values)))
    # o.ready high: one value per cycle in, one per cycle out, exactly LATENCY cycles later
    assert accepted == list(range(len(values)))
    assert [cycle for cycle, *_ in emitted] == [cycle + LATENCY[config.clusters]
                                                for cycle in accepted]


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_any_table_follows_the_golden_rule(data):
    # The threshold rule is defined for any table (unsorted, repeated, full-range entries).
    centroids = data.draw(st.lists(st.integers(CONFIG.centroid_min, CONFIG.centroid_max),
                                   min_size=CONFIG.clusters, max_size=CONFIG.clusters))
    values = data.draw(values_of(CONFIG, 24))
    _, emitted, _ = simulate(CONFIG, centroids, values)
    assert results(emitted) == expected(CONFIG, values, centroids)


def test_hand_computed_values():
    # Non-uniform table; thresholds (sums of neighbours) -60 -25 -5 3 13 40 90, and the
    # narrowed ends 2 * -40 - 1 = -81 and 2 * 60 = 120.
    centroids = [-40, -20, -5, 0, 3, 10, 30, 60]
    values = [-128, -41, -40, 1, 12, 60, 61, 127, -13, 6, 20, 21]
    _, emitted, _ = simulate(CONFIG, centroids, values)
    assert results(emitted) == [
        (-40, LOWEST, -81, 1),   # below centroid[0]: outside, the open interval below
        (-40, LOWEST, -81, 1),
        (-40, -81, -60, 0),      # centroid[0] itself is inside: (-81, -60]
        (0, -5, 3, 0),           # 2 is above -60, -25, -5: index 3
        (10, 13, 40, 0),         # 24: index 5
        (60, 90, 120, 0),        # the top centroid is inside: (90, 120]
        (60, 120, HIGHEST, 1),   # above it: outside
        (60, 120, HIGHEST, 1),
        (-20, -60, -25, 0),      # -13: 7 from -20, 8 from -5
        (3, 3, 13, 0),           # 6: 3 from 3, 4 from 10
        (10, 13, 40, 0),         # 20 is half-way between 10 and 30: lower
        (30, 40, 90, 0),
    ]


def test_tie_goes_to_lower_centroid():
    # Every value sits exactly half-way between two neighbouring centroids.
    centroids = [-64, -32, -16, 0, 8, 24, 56, 120]
    midpoints = [(a + b) // 2 for a, b in zip(centroids, centroids[1:])]
    assert all(2 * m == a + b for m, a, b in zip(midpoints, centroids, centroids[1:]))
    _, emitted, _ = simulate(CONFIG, centroids, midpoints)
    assert [centroid for centroid, *_ in results(emitted)] == centroids[:-1]
    # one above the mid-point goes up
    _, emitted, _ = simulate(CONFIG, centroids, [m + 1 for m in midpoints])
    assert [centroid for centroid, *_ in results(emitted)] == centroids[1:]


def test_bypass_looks_up_the_index():
    # The table is far from the values, so a value not bypassed would quantize differently
    # and count as outside. An index's interval holds its double alone.
    centroids = [200, 210, 220, 230, 240, 250, 260, 270]
    values = [0, 1, 2, 3, 4, 5, 6, 7, 7, 0]
    accepted, emitted, _ = simulate(CONFIG, centroids, values, bypass=True)
    assert results(emitted) == [(centroids[v], 2 * v - 1, 2 * v, 0) for v in values]
    assert [cycle for cycle, *_ in emitted] == [cycle + LATENCY[8] for cycle in accepted]


@settings(max_examples=6, deadline=None)
@given(st.lists(st.integers(0, 15), min_size=1, max_size=24), ascending_tables(CONFIG16))
def test_bypass_random(values, centroids):
    _, emitted, _ = simulate(CONFIG16, centroids, values, bypass=True)
    assert results(emitted) == expected(CONFIG16, values, centroids, bypass=True)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_bubbles_keep_every_value_exactly_latency_cycles_inside(data):
    # The pipeline never stalls (both streams always ready): whatever the gaps between values,
    # each leaves exactly LATENCY cycles after it entered, in order, none lost or duplicated.
    config = CONFIG
    centroids = data.draw(ascending_tables(config))
    values = data.draw(values_of(config, 30))
    seed = data.draw(st.integers(0, 2 ** 32 - 1))
    offer_rate = data.draw(st.sampled_from([0.2, 0.5, 1.0]))
    accepted, emitted, trace = simulate(config, centroids, values,
                                        offer=random_pattern(seed, offer_rate))
    assert results(emitted) == expected(config, values, centroids)
    assert [tag for *_, tag in emitted] == list(range(len(values)))
    assert [cycle for cycle, *_ in emitted] == [cycle + LATENCY[8] for cycle in accepted]
    assert sum(valid for valid, *_ in trace) == len(values)
