"""ChangeDetector: changed inputs, deltas, per-layer memory, serializer timing."""

import random
from dataclasses import dataclass, field

from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st
from support.streams import Lockstep, StreamSink, StreamSource, always

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.core.change_detector import ChangeDetector

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                     centroid_width=10, max_layers=2, max_neurons=16, weight_depth=256)
L = CONFIG.lanes
FULL = (1 << L) - 1


@dataclass
class Pass:
    """One pass of a layer through the change detector: its settings and its rows."""

    layer: int
    first: bool
    centroids: list
    rows: list            # lists of L indices
    inputs: int           # real inputs: the last row's lanes beyond it are masked out
    # filled in by the simulation
    row_cycles: list = field(default_factory=list)
    offers: list = field(default_factory=list)     # first cycle each item was offered
    items: list = field(default_factory=list)      # (cycle, input, delta)
    done_cycles: list = field(default_factory=list)

    def lane_mask(self, row):
        real = min(L, self.inputs - row * L)
        return (1 << real) - 1


def simulate(config, passes, *, ready=always, settle=4):
    """Run the passes back to back in one simulation (start pulse, rows, wait for done)."""
    dut = ChangeDetector(config)

    async def bench(ctx):
        cycle = 0
        for job in passes:
            ctx.set(dut.layer, job.layer)
            ctx.set(dut.first, job.first)
            ctx.set(dut.centroids, job.centroids)
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 0)
            await ctx.tick()
            cycle += 1
            source = StreamSource(dut.i, [
                {"indices": indices, "row": row, "lanes": job.lane_mask(row),
                 "last": row == len(job.rows) - 1} for row, indices in enumerate(job.rows)])
            sink = StreamSink(dut.o, ready=ready)
            steps = Lockstep(source, sink, cycle=cycle)
            after_done = 0
            while after_done < settle:
                cycle, done = await steps.tick(ctx, dut.done)
                if done:
                    job.done_cycles.append(cycle)
                if job.done_cycles:
                    after_done += 1
                assert cycle < 100_000
            cycle = steps.cycle
            job.row_cycles = source.transfers
            job.offers = sink.offers
            job.items = [(edge, item.input, item.delta) for edge, item in sink.transfers]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return passes


def reference(passes):
    """Expected items of every pass, from the contract: changed real inputs, ascending."""
    previous = {}
    expected = []
    for job in passes:
        c = job.centroids
        items = []
        for row, indices in enumerate(job.rows):
            old = previous.get((job.layer, row), [0] * L)
            for lane in range(L):
                number = row * L + lane
                if number >= job.inputs:
                    continue
                if job.first or indices[lane] != old[lane]:
                    delta = c[indices[lane]] - (0 if job.first else c[old[lane]])
                    items.append((number, delta))
            previous[(job.layer, row)] = list(indices)
        expected.append(items)
    return expected


def serializer_slots(job, items):
    """u_k of every item (cycles after the first row reaches the serializer) and S."""
    changed = [[number for number, *_ in items if number // L == row]
               for row in range(len(job.rows))]
    slots, start = [], 0
    for numbers in changed:
        slots += [start + rank for rank in range(len(numbers))]
        start += max(len(numbers), 1)
    return slots, start


def check_pass(job, expected):
    """Exactly the expected items, every row taken, one done pulse."""
    assert [item[1:] for item in job.items] == expected
    assert len(job.row_cycles) == len(job.rows)
    assert len(job.done_cycles) == 1


def check_timing_ready(job, expected):
    """o.ready always high: item k leaves at T0 + 3 + u_k, done at T0 + 2 + S."""
    first_row = job.row_cycles[0]
    slots, total = serializer_slots(job, expected)
    assert [cycle for cycle, *_ in job.items] == [first_row + 3 + u for u in slots]
    assert job.done_cycles == [first_row + 2 + total]


def check_timing_stalled(job, expected):
    """Any o.ready: the gaps between items are the serializer's, measured from transfers."""
    first_row = job.row_cycles[0]
    slots, total = serializer_slots(job, expected)
    if not slots:
        assert job.done_cycles == [first_row + 2 + total]
        return
    assert job.offers[0] == first_row + 3 + slots[0]
    transfers = [cycle for cycle, *_ in job.items]
    for k in range(len(slots) - 1):
        assert job.offers[k + 1] == transfers[k] + slots[k + 1] - slots[k]
    assert job.done_cycles == [transfers[-1] + total - 1 - slots[-1]]


def random_centroids(rng):
    return [rng.randint(CONFIG.centroid_min, CONFIG.centroid_max)
            for _ in range(CONFIG.clusters)]


def random_rows(rng, inputs):
    rows = -(-inputs // L)
    return [[rng.randrange(CONFIG.clusters) for _ in range(L)] for _ in range(rows)]


# -- directed ----------------------------------------------------------------------------------

def test_first_pass_emits_every_real_input():
    centroids = [-512, -100, -3, 0, 7, 90, 300, 511]
    rows = [[0, 1, 2, 3], [4, 5, 6, 7], [7, 3, 0, 5]]
    job = Pass(layer=0, first=True, centroids=centroids, rows=rows, inputs=10)
    simulate(CONFIG, [job])
    expected = [(n, centroids[rows[n // L][n % L]]) for n in range(10)]
    assert [item[1:] for item in job.items] == expected
    check_timing_ready(job, expected)
    # 10 inputs in rows of 4, 4 and 2 (lanes 2 and 3 of row 2 masked): serializer 4+4+2
    assert job.done_cycles == [job.row_cycles[0] + 2 + 10]


def test_second_pass_emits_only_changes_with_centroid_differences():
    centroids = [-500, -40, -7, 0, 5, 60, 200, 511]
    frame1 = [[0, 1, 2, 3], [4, 5, 6, 7], [1, 1, 1, 1], [2, 2, 2, 2]]
    frame2 = [[0, 7, 2, 3], [4, 5, 6, 7], [1, 0, 1, 6], [2, 2, 2, 2]]
    jobs = [Pass(layer=1, first=True, centroids=centroids, rows=frame1, inputs=16),
            Pass(layer=1, first=False, centroids=centroids, rows=frame2, inputs=16)]
    simulate(CONFIG, jobs)
    assert [item[1:] for item in jobs[1].items] == [
        (1, 511 - (-40)),
        (9, -500 - (-40)),
        (11, 200 - (-40)),
    ]
    for job, expected in zip(jobs, reference(jobs)):
        check_timing_ready(job, expected)
    # rows 0 and 2 hold one and two changes, rows 1 and 3 none: serializer 1 + 1 + 2 + 1
    assert jobs[1].done_cycles == [jobs[1].row_cycles[0] + 2 + 5]


def test_unchanged_layer_emits_nothing_and_takes_one_cycle_per_row():
    centroids = list(range(-40, 40, 10))
    rows = [[1, 2, 3, 4], [5, 6, 7, 0], [3, 3, 3, 3]]
    jobs = [Pass(layer=0, first=True, centroids=centroids, rows=rows, inputs=12),
            Pass(layer=0, first=False, centroids=centroids, rows=rows, inputs=12)]
    simulate(CONFIG, jobs)
    assert jobs[1].items == []
    assert jobs[1].done_cycles == [jobs[1].row_cycles[0] + 2 + 3]


def test_masked_lanes_are_never_emitted():
    centroids = [-50, -20, -5, 0, 5, 20, 50, 100]
    frame1 = [[1, 2, 3, 4], [5, 0, 0, 0]]
    frame2 = [[1, 2, 3, 4], [5, 7, 7, 7]]   # only the masked lanes of row 1 change
    jobs = [Pass(layer=0, first=True, centroids=centroids, rows=frame1, inputs=5),
            Pass(layer=0, first=False, centroids=centroids, rows=frame2, inputs=5)]
    simulate(CONFIG, jobs)
    assert [item[1] for item in jobs[0].items] == [0, 1, 2, 3, 4]
    assert jobs[1].items == []


def test_previous_indices_are_kept_per_layer():
    c0 = [-400, -300, -200, -100, 100, 200, 300, 400]
    c1 = [-7, -5, -3, -1, 1, 3, 5, 7]
    layer0 = [[0, 1, 2, 3], [4, 5, 6, 7]]
    layer1 = [[7, 6, 5, 4], [3, 2, 1, 0]]
    jobs = [
        Pass(layer=0, first=True, centroids=c0, rows=layer0, inputs=8),
        Pass(layer=1, first=True, centroids=c1, rows=layer1, inputs=8),
        # second frame: layer 0 repeats its own indices (not layer 1's), layer 1 changes one
        Pass(layer=0, first=False, centroids=c0, rows=layer0, inputs=8),
        Pass(layer=1, first=False, centroids=c1, rows=[[7, 6, 5, 4], [3, 2, 1, 7]], inputs=8),
    ]
    simulate(CONFIG, jobs)
    assert jobs[2].items == []
    assert [item[1:] for item in jobs[3].items] == [(7, c1[7] - c1[0])]


def test_first_overrides_history():
    centroids = [-9, -6, -3, 0, 3, 6, 9, 12]
    rows = [[2, 2, 2, 2]]
    jobs = [Pass(layer=0, first=True, centroids=centroids, rows=rows, inputs=4),
            Pass(layer=0, first=True, centroids=centroids, rows=rows, inputs=4)]
    simulate(CONFIG, jobs)
    assert [item[1:] for item in jobs[1].items] == [(n, -3) for n in range(4)]


def test_extreme_deltas():
    centroids = [CONFIG.centroid_min, CONFIG.centroid_max, 0, 1, 2, 3, 4, 5]
    jobs = [Pass(layer=0, first=True, centroids=centroids, rows=[[0, 1, 0, 1]], inputs=4),
            Pass(layer=0, first=False, centroids=centroids, rows=[[1, 0, 0, 1]], inputs=4)]
    simulate(CONFIG, jobs)
    span = CONFIG.centroid_max - CONFIG.centroid_min
    assert [item[1:3] for item in jobs[0].items] == [
        (0, CONFIG.centroid_min), (1, CONFIG.centroid_max), (2, CONFIG.centroid_min),
        (3, CONFIG.centroid_max)]
    assert [item[1:3] for item in jobs[1].items] == [(0, span), (1, -span)]


# -- random ------------------------------------------------------------------------------------

@st.composite
def scenarios(draw):
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = random.Random(seed)
    sizes = [draw(st.integers(1, CONFIG.max_neurons)) for _ in range(2)]
    change = draw(st.sampled_from([0.0, 0.2, 0.6]))
    centroids = [random_centroids(rng) for _ in range(2)]
    previous = [random_rows(rng, size) for size in sizes]
    jobs = []
    for frame in range(draw(st.integers(2, 3))):
        for layer in draw(st.permutations([0, 1])):
            if frame:
                rows = [[rng.randrange(CONFIG.clusters) if rng.random() < change else index
                         for index in row] for row in previous[layer]]
            else:
                rows = previous[layer]
            previous[layer] = rows
            jobs.append(Pass(layer=layer, first=frame == 0, centroids=centroids[layer],
                             rows=rows, inputs=sizes[layer]))
    ready_rate = draw(st.sampled_from([1.0, 0.7, 0.3]))
    return jobs, ready_rate, seed


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_random_frames_match_reference_and_timing(scenario):
    jobs, ready_rate, seed = scenario
    rng = random.Random(seed ^ 0x5A5A)
    ready_bits = [rng.random() < ready_rate for _ in range(20_000)]
    simulate(CONFIG, jobs, ready=lambda cycle: ready_bits[cycle])
    for job, expected in zip(jobs, reference(jobs)):
        check_pass(job, expected)
        check_timing_stalled(job, expected)
        if ready_rate == 1.0:
            check_timing_ready(job, expected)
