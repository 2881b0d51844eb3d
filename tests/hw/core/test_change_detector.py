"""ChangeDetector: changed inputs, deltas, per-layer state, outside counts, timing."""

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
CONV_CONFIG = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                          centroid_width=10, max_layers=2, max_neurons=16, weight_depth=256,
                          max_kernel=3, max_height=5, max_width=7)
L = CONFIG.lanes
FILL = 4        # state read, state register, compared-row register, serializer
QUANTIZE = 5    # the quantizer's 3 + 1 stages (8 clusters) and the delta register


@dataclass
class Pass:
    """One pass of a layer through the change detector: its settings and its rows (cluster
    indices with ``bypass``, as for layer 0; fixed-point values otherwise)."""

    layer: int
    first: bool
    centroids: list
    rows: list            # lists of L values
    inputs: int           # real inputs: the last row's lanes beyond it are masked out
    bypass: bool = True
    # filled in by the simulation
    row_cycles: list = field(default_factory=list)
    items: list = field(default_factory=list)      # (cycle, input, delta)
    done_cycles: list = field(default_factory=list)
    outside: int = 0                               # the outside counts, added up
    positions: list = field(default_factory=list)  # (y, x, group) of each item (conv)

    def lane_mask(self, row):
        real = min(L, self.inputs - row * L)
        return (1 << real) - 1


def simulate(config, passes, *, ready=always, settle=4):
    """Run the passes back to back in one simulation (start pulse, rows, wait for done)."""
    dut = ChangeDetector(config)

    async def bench(ctx):
        cycle = 0
        for job in passes:
            ctx.set(dut.base, job.layer * config.max_groups)   # layer after layer
            ctx.set(dut.first, job.first)
            ctx.set(dut.bypass, job.bypass)
            ctx.set(dut.centroids, job.centroids)
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 0)
            await ctx.tick()
            cycle += 1
            rows = [{"values": values, "row": row, "lanes": job.lane_mask(row),
                     "last": row == len(job.rows) - 1} for row, values in enumerate(job.rows)]
            if config.conv:
                for row, payload in enumerate(rows):
                    payload["position"] = dict(zip(("y", "x", "group"), position_of(row)))
            source = StreamSource(dut.i, rows)
            sink = StreamSink(dut.o, ready=ready)
            steps = Lockstep(source, sink, cycle=cycle)
            after_done = 0
            while after_done < settle:
                cycle, done, outside = await steps.tick(ctx, dut.done, dut.outside)
                job.outside += outside
                if done:
                    job.done_cycles.append(cycle)
                if job.done_cycles:
                    after_done += 1
                assert cycle < 100_000
            cycle = steps.cycle
            job.row_cycles = source.transfers
            job.items = [(edge, item.input, item.delta) for edge, item in sink.transfers]
            if config.conv:
                job.positions = [(item.position.y, item.position.x, item.position.group)
                                 for _, item in sink.transfers]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return passes


def position_of(row):
    """An arbitrary position tag for a row, for hardware with conv layers."""
    return row % 5, (3 * row) % 7, row % 4


def nearest(value, centroids):
    """Nearest centroid of an ascending table, ties to the lower one, and whether the value
    is outside the table's range."""
    distances = [abs(value - c) for c in centroids]
    return centroids[distances.index(min(distances))], not centroids[0] <= value <= centroids[-1]


@dataclass
class Expected:
    items: list           # (input, delta)
    unstable: list        # input numbers that leave the serializer
    outside: int


def reference(passes):
    """Every pass's expected items, from the contract: the real inputs whose centroid changed,
    ascending; and the inputs sent to the quantizer: those whose cluster (an index, with bypass)
    or whose being outside the range changed, for an ascending table."""
    previous = {}
    expected = []
    for job in passes:
        result = Expected([], [], 0)
        for row, values in enumerate(job.rows):
            for lane in range(L):
                number = row * L + lane
                if number >= job.inputs:
                    continue
                value = values[lane]
                now = ((job.centroids[value], False, value) if job.bypass
                       else nearest(value, job.centroids) + (None,))
                old = previous.get((job.layer, number))
                centroid, outside = now[:2]
                result.outside += outside
                if job.first or old is None or now[:2] != old[:2] or (
                        job.bypass and now[2] != old[2]):
                    result.unstable.append(number)
                    base = 0 if job.first else old[0]
                    if job.first or centroid != base:
                        result.items.append((number, centroid - base))
                previous[(job.layer, number)] = now
        expected.append(result)
    return expected


def serializer_slots(job, numbers):
    """u_k of every input sent on (cycles after the first row reaches the serializer) and S."""
    per_row = [[n for n in numbers if n // L == row] for row in range(len(job.rows))]
    slots, start = [], 0
    for row_numbers in per_row:
        slots += [start + rank for rank in range(len(row_numbers))]
        start += max(len(row_numbers), 1)
    return slots, start


def check_pass(job, expected):
    """Exactly the expected items and outside count, every row taken, one done pulse."""
    assert [item[1:] for item in job.items] == expected.items
    assert job.outside == expected.outside
    assert len(job.row_cycles) == len(job.rows)
    assert len(job.done_cycles) == 1


def check_timing_ready(job, expected):
    """o.ready always high: the inputs sent on leave the serializer at T0 + FILL + u_k and
    are offered QUANTIZE cycles later; done one cycle after the serializer's last row and
    after the last input left."""
    first_row = job.row_cycles[0]
    slots, total = serializer_slots(job, expected.unstable)
    leave = dict(zip(expected.unstable, (first_row + FILL + u for u in slots)))
    assert [cycle for cycle, *_ in job.items] == [leave[number] + QUANTIZE
                                                  for number, _ in expected.items]
    last_row_left = first_row + FILL - 1 + total
    last_input = leave[expected.unstable[-1]] + QUANTIZE if slots else 0
    assert job.done_cycles == [max(last_row_left + 1, last_input + 1)]


def random_centroids(rng):
    return sorted(rng.sample(range(CONFIG.centroid_min // 4, CONFIG.centroid_max // 4),
                             CONFIG.clusters))


def random_rows(rng, inputs, bypass):
    rows = -(-inputs // L)
    if bypass:
        return [[rng.randrange(CONFIG.clusters) for _ in range(L)] for _ in range(rows)]
    return [[rng.randint(CONFIG.act_min, CONFIG.act_max) for _ in range(L)]
            for _ in range(rows)]


# -- directed ----------------------------------------------------------------------------------

def test_first_pass_emits_every_real_input():
    centroids = [-512, -100, -3, 0, 7, 90, 300, 511]
    rows = [[0, 1, 2, 3], [4, 5, 6, 7], [7, 3, 0, 5]]
    job = Pass(layer=0, first=True, centroids=centroids, rows=rows, inputs=10)
    simulate(CONFIG, [job])
    (expected,) = reference([job])
    assert expected.items == [(n, centroids[rows[n // L][n % L]]) for n in range(10)]
    check_pass(job, expected)
    check_timing_ready(job, expected)
    # 10 inputs in rows of 4, 4 and 2 (lanes 2 and 3 of row 2 masked): the last leaves the
    # serializer 9 cycles after the first, and the delta register QUANTIZE cycles later
    assert job.done_cycles == [job.row_cycles[0] + FILL + 9 + QUANTIZE + 1]


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
        check_pass(job, expected)
        check_timing_ready(job, expected)
    # rows 0 and 2 hold one and two changes, rows 1 and 3 none: input 11 leaves the serializer
    # 1 + 1 + 1 cycles after the first row arrived; done QUANTIZE + 1 cycles after
    assert jobs[1].done_cycles == [jobs[1].row_cycles[0] + FILL + 3 + QUANTIZE + 1]


def test_unchanged_layer_emits_nothing_and_takes_one_cycle_per_row():
    centroids = list(range(-40, 40, 10))
    rows = [[1, 2, 3, 4], [5, 6, 7, 0], [3, 3, 3, 3]]
    jobs = [Pass(layer=0, first=True, centroids=centroids, rows=rows, inputs=12),
            Pass(layer=0, first=False, centroids=centroids, rows=rows, inputs=12)]
    simulate(CONFIG, jobs)
    assert jobs[1].items == []
    # one serializer cycle per row, then done
    assert jobs[1].done_cycles == [jobs[1].row_cycles[0] + FILL - 1 + 3 + 1]


def test_masked_lanes_are_never_emitted():
    centroids = [-50, -20, -5, 0, 5, 20, 50, 100]
    frame1 = [[1, 2, 3, 4], [5, 0, 0, 0]]
    frame2 = [[1, 2, 3, 4], [5, 7, 7, 7]]   # only the masked lanes of row 1 change
    jobs = [Pass(layer=0, first=True, centroids=centroids, rows=frame1, inputs=5),
            Pass(layer=0, first=False, centroids=centroids, rows=frame2, inputs=5)]
    simulate(CONFIG, jobs)
    assert [item[1] for item in jobs[0].items] == [0, 1, 2, 3, 4]
    assert jobs[1].items == []


def test_state_is_kept_per_layer():
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


def test_values_that_stay_in_their_interval_are_not_quantized():
    # Thresholds (sums of neighbours) -60 -25 -5 3 13 40 90; the range is [-40, 60].
    centroids = [-40, -20, -5, 0, 3, 10, 30, 60]
    frame1 = [[-100, -40, 1, 12], [20, 21, 60, 100]]
    # Every value moves inside its interval: -100 -> -41 (both below the range), -40 -> -31
    # (2x = -62 is still above -81 and below -60), 1 -> -2, 12 -> 20, 20 -> 7, 21 -> 45,
    # 60 -> 46, 100 -> 61.
    frame2 = [[-41, -31, -2, 20], [7, 45, 46, 61]]
    # Crossing the range's ends keeps the centroid but not the interval: -40 -> -41 and
    # 60 -> 61 are quantized (and counted outside) without being sent on; 20 -> 45 changes.
    frame3 = [[-41, -41, -2, 45], [7, 45, 61, 61]]
    jobs = [Pass(layer=1, first=True, centroids=centroids, rows=rows, inputs=8, bypass=False)
            for rows in (frame1, frame2, frame3)]
    jobs[1].first = jobs[2].first = False
    simulate(CONFIG, jobs)
    expected = reference(jobs)
    for job, result in zip(jobs, expected):
        check_pass(job, result)
        check_timing_ready(job, result)
    assert [job.outside for job in jobs] == [2, 2, 4]
    assert expected[1].unstable == [] and jobs[1].items == []
    assert expected[2].unstable == [1, 3, 6]
    assert [item[1:] for item in jobs[2].items] == [(3, 30 - 10)]


# -- random ------------------------------------------------------------------------------------

@st.composite
def scenarios(draw):
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = random.Random(seed)
    sizes = [draw(st.integers(1, CONFIG.max_neurons)) for _ in range(2)]
    change = draw(st.sampled_from([0.0, 0.2, 0.6]))
    bypass = [True, draw(st.booleans())]
    centroids = [random_centroids(rng) for _ in range(2)]
    previous = [random_rows(rng, size, layer_bypass) for size, layer_bypass in zip(sizes, bypass)]
    jobs = []
    for frame in range(draw(st.integers(2, 3))):
        for layer in draw(st.permutations([0, 1])):
            if frame:
                fresh = random_rows(rng, sizes[layer], bypass[layer])
                rows = [[new if rng.random() < change else old for old, new in zip(row, again)]
                        for row, again in zip(previous[layer], fresh)]
            else:
                rows = previous[layer]
            previous[layer] = rows
            jobs.append(Pass(layer=layer, first=frame == 0, centroids=centroids[layer],
                             rows=rows, inputs=sizes[layer], bypass=bypass[layer]))
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
        if ready_rate == 1.0:
            check_timing_ready(job, expected)


@settings(max_examples=15, deadline=None)
@given(scenarios())
def test_conv_hardware_passes_each_rows_position_on_with_its_inputs(scenario):
    """With conv layers, every changed input leaves with its row's position; the rest is as
    without."""
    jobs, ready_rate, seed = scenario
    rng = random.Random(seed ^ 0x3C3C)
    ready_bits = [rng.random() < ready_rate for _ in range(20_000)]
    simulate(CONV_CONFIG, jobs, ready=lambda cycle: ready_bits[cycle])
    for job, expected in zip(jobs, reference(jobs)):
        check_pass(job, expected)
        assert job.positions == [position_of(item[1] // L) for item in job.items]
        if ready_rate == 1.0:
            check_timing_ready(job, expected)
