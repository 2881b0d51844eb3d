"""CentroidQuantizer against sim.model.quantize (whose own rule tests/sim/test_model.py checks
against brute force)."""


import numpy as np
from amaranth.hdl import unsigned
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st
from support.streams import Lockstep, StreamSink, StreamSource, always, random_pattern

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.core.quantizer import CentroidQuantizer
from reuse_accel.sim.model import quantize

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                     centroid_width=10, max_layers=2, max_neurons=16, weight_depth=64)
CONFIG16 = AccelConfig(lanes=4, clusters=16, act_width=8, act_frac=4, weight_width=6,
                       centroid_width=10, max_layers=2, max_neurons=32, weight_depth=64)
LATENCY = 2
TAG_BITS = 8


def simulate(config, centroids, rows, *, bypass=False, ready=always, offer=always,
             extra_cycles=8):
    """Stream ``rows`` (lists of L values) through a quantizer, tags 0, 1, 2, ...

    ``ready(cycle)`` and ``offer(cycle)`` give o.ready and whether the source may raise
    i.valid (once raised, valid and payload hold until the transfer). Returns the input
    transfer cycles, the output transfers ``(cycle, indices, outside, tag)``, and every cycle's
    ``(o.valid, o.ready, o.payload)`` sample.
    """
    dut = CentroidQuantizer(config, tag_shape=unsigned(TAG_BITS))
    source = StreamSource(dut.i, [{"values": [int(v) for v in row], "tag": n % (1 << TAG_BITS)}
                                  for n, row in enumerate(rows)], offer=offer)
    sink = StreamSink(dut.o, ready=ready)

    async def bench(ctx):
        ctx.set(dut.centroids, [int(c) for c in centroids])
        ctx.set(dut.bypass, bypass)
        await ctx.tick()  # the thresholds are registered: one cycle before the first row
        steps = Lockstep(source, sink)
        idle_after_done = 0
        while idle_after_done < extra_cycles:
            await steps.tick(ctx)
            if len(sink.transfers) >= len(rows) and source.done:
                idle_after_done += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    emitted = [(cycle, list(payload.indices), payload.outside, payload.tag)
               for cycle, payload in sink.transfers]
    return source.transfers, emitted, sink.trace


def expected_rows(rows, centroids):
    indices, outside = quantize(np.array(rows), np.array(centroids))
    masks = [sum(int(bit) << lane for lane, bit in enumerate(row)) for row in outside]
    return [(list(map(int, row)), mask) for row, mask in zip(indices, masks)]


def value_rows(config, count):
    act = st.integers(config.act_min, config.act_max)
    return st.lists(st.lists(act, min_size=config.lanes, max_size=config.lanes),
                    min_size=1, max_size=count)


def ascending_tables(config):
    """Strictly ascending, non-uniform centroid tables within the centroid range."""
    return st.lists(st.integers(config.centroid_min // 4, config.centroid_max // 4),
                    min_size=config.clusters, max_size=config.clusters,
                    unique=True).map(sorted)


# -- the gateware ------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.data())
def test_indices_and_outside_match_golden(data):
    config = data.draw(st.sampled_from([CONFIG, CONFIG16]))
    centroids = data.draw(ascending_tables(config))
    rows = data.draw(value_rows(config, 24))
    accepted, emitted, _ = simulate(config, centroids, rows)
    expected = expected_rows(rows, centroids)
    assert [(indices, outside) for _, indices, outside, _ in emitted] == expected
    assert [tag for *_, tag in emitted] == list(range(len(rows)))
    # o.ready high: one row per cycle in, one per cycle out, exactly LATENCY cycles later
    assert accepted == list(range(len(rows)))
    assert [cycle for cycle, *_ in emitted] == [cycle + LATENCY for cycle in accepted]


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_any_table_follows_the_golden_rule(data):
    # The threshold rule is defined for any table (unsorted, repeated, full-range entries).
    centroids = data.draw(st.lists(st.integers(CONFIG.centroid_min, CONFIG.centroid_max),
                                   min_size=CONFIG.clusters, max_size=CONFIG.clusters))
    rows = data.draw(value_rows(CONFIG, 12))
    _, emitted, _ = simulate(CONFIG, centroids, rows)
    assert [(indices, outside) for _, indices, outside, _ in emitted] == expected_rows(
        rows, centroids)


def test_hand_computed_rows():
    # Non-uniform table; thresholds (sums of neighbours) -60 -25 -5 3 13 40 90.
    centroids = [-40, -20, -5, 0, 3, 10, 30, 60]
    rows = [[-128, 1, 12, 127], [-40, 60, -30, 2], [-13, -12, 6, 7], [20, 21, 45, 46]]
    _, emitted, _ = simulate(CONFIG, centroids, rows)
    assert [(indices, outside) for _, indices, outside, _ in emitted] == [
        ([0, 3, 5, 7], 0b1001),
        ([0, 7, 0, 4], 0b0000),
        ([1, 2, 4, 5], 0b0000),   # -13: 7 from -20, 8 from -5; 6: 3 from 3, 4 from 10
        ([5, 6, 6, 7], 0b0000),   # 20 is half-way between 10 and 30: lower
    ]


def test_tie_goes_to_lower_index():
    # Every value sits exactly half-way between two neighbouring centroids.
    centroids = [-64, -32, -16, 0, 8, 24, 56, 120]
    midpoints = [(a + b) // 2 for a, b in zip(centroids, centroids[1:])]
    assert all(2 * m == a + b for m, a, b in zip(midpoints, centroids, centroids[1:]))
    rows = [midpoints[:4], midpoints[3:7]]
    _, emitted, _ = simulate(CONFIG, centroids, rows)
    assert [indices for _, indices, _, _ in emitted] == [[0, 1, 2, 3], [3, 4, 5, 6]]
    # one above the mid-point goes up
    _, emitted, _ = simulate(CONFIG, centroids, [[m + 1 for m in midpoints[:4]]])
    assert [indices for _, indices, _, _ in emitted] == [[1, 2, 3, 4]]


def test_outside_mask_edges():
    centroids = [-50, -20, -10, 0, 5, 10, 20, 50]
    rows = [[-51, -50, 50, 51], [-128, 127, 0, -49]]
    _, emitted, _ = simulate(CONFIG, centroids, rows)
    assert [(indices, outside) for _, indices, outside, _ in emitted] == [
        ([0, 0, 7, 7], 0b1001), ([0, 7, 3, 0], 0b0011)]


def test_bypass_passes_indices_through():
    # The table is far from the values, so a non-bypassed row would quantize differently
    # and count as outside.
    centroids = [200, 210, 220, 230, 240, 250, 260, 270]
    rows = [[0, 1, 2, 3], [4, 5, 6, 7], [7, 0, 7, 0], [3, 3, 3, 3]]
    accepted, emitted, _ = simulate(CONFIG, centroids, rows, bypass=True)
    assert [(indices, outside) for _, indices, outside, _ in emitted] == [
        (row, 0) for row in rows]
    assert [cycle for cycle, *_ in emitted] == [cycle + LATENCY for cycle in accepted]


@settings(max_examples=6, deadline=None)
@given(st.lists(st.lists(st.integers(0, 15), min_size=4, max_size=4), min_size=1,
                max_size=12), ascending_tables(CONFIG16))
def test_bypass_random(rows, centroids):
    _, emitted, _ = simulate(CONFIG16, centroids, rows, bypass=True)
    assert [(indices, outside) for _, indices, outside, _ in emitted] == [
        (row, 0) for row in rows]


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_backpressure_loses_and_duplicates_nothing(data):
    config = CONFIG
    centroids = data.draw(ascending_tables(config))
    rows = data.draw(value_rows(config, 20))
    seed = data.draw(st.integers(0, 2 ** 32 - 1))
    ready_rate = data.draw(st.sampled_from([0.2, 0.5, 0.8]))
    offer_rate = data.draw(st.sampled_from([0.5, 1.0]))
    accepted, emitted, trace = simulate(config, centroids, rows,
                                        ready=random_pattern(seed, ready_rate),
                                        offer=random_pattern(seed + 1, offer_rate))
    assert [(indices, outside) for _, indices, outside, _ in emitted] == expected_rows(
        rows, centroids)
    assert [tag for *_, tag in emitted] == list(range(len(rows)))
    # every row spends at least the pipeline latency inside
    assert all(out[0] >= cycle + LATENCY for out, cycle in zip(emitted, accepted))
    # stream rule on the output: once valid, valid and payload hold until the transfer
    for (valid, ready, payload), (next_valid, _, next_payload) in zip(trace, trace[1:]):
        if valid and not ready:
            assert next_valid and next_payload.as_value().value == payload.as_value().value


def test_stall_holds_two_rows_then_resumes_at_full_rate():
    centroids = [-40, -20, -5, 0, 3, 10, 30, 60]
    rows = [[n, -n, 2 * n, -2 * n] for n in range(10)]
    stalled = set(range(3, 9))  # o.ready low for six cycles
    accepted, emitted, trace = simulate(CONFIG, centroids, rows,
                                        ready=lambda cycle: cycle not in stalled)
    assert [(indices, outside) for _, indices, outside, _ in emitted] == expected_rows(
        rows, centroids)
    # Rows 1 and 2 wait in the output register and stage 1; input is refused until o.ready.
    assert accepted == [0, 1, 2] + list(range(9, 16))
    assert [cycle for cycle, *_ in emitted] == [2] + list(range(9, 18))


def test_two_rows_enter_a_stalled_pipeline_whatever_the_input_gaps():
    # A two-stage pipeline holds two rows while o.ready is low: the output register and
    # stage 1. A gap in the input must not cost a slot.
    centroids = [-40, -20, -5, 0, 3, 10, 30, 60]
    rows = [[n, n, n, n] for n in range(6)]
    offered = {0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}   # no row offered in 1, 2
    accepted, emitted, _ = simulate(CONFIG, centroids, rows,
                                    ready=lambda cycle: cycle >= 10,
                                    offer=lambda cycle: cycle in offered)
    # row 0 reaches the output register at cycle 2 and waits; row 1 enters stage 1 at 3
    assert accepted[:2] == [0, 3]
    assert accepted[2] == 10
    assert [(indices, outside) for _, indices, outside, _ in emitted] == expected_rows(
        rows, centroids)
