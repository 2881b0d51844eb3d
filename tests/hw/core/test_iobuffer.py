"""IOBuffer: fill and write both write the input bank, swap exchanges the banks, read latency 1."""

import random

from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.core.iobuffer import IOBuffer

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                     centroid_width=10, max_layers=2, max_neurons=16, weight_depth=64)
ROWS = CONFIG.max_groups  # 4 rows of 4 values per bank


def row(seed):
    rng = random.Random(seed)
    return [rng.randint(CONFIG.act_min, CONFIG.act_max) for _ in range(CONFIG.lanes)]


def simulate(cycles):
    """Drive one dict of port values per cycle; return read.data after each cycle's edge.

    Keys: ``fill``/``write`` ``(addr, row)``, ``swap``, ``read`` (an address; absent
    means read.en low).
    """
    dut = IOBuffer(CONFIG)
    results = []

    async def bench(ctx):
        for step in cycles:
            for name in ("fill", "write"):
                port = getattr(dut, name)
                if name in step:
                    addr, data = step[name]
                    ctx.set(port.addr, addr)
                    ctx.set(port.data, data)
                    ctx.set(port.en, 1)
                else:
                    ctx.set(port.en, 0)
            ctx.set(dut.swap, step.get("swap", 0))
            ctx.set(dut.read.en, "read" in step)
            ctx.set(dut.read.addr, step.get("read", 0))
            before = list(ctx.get(dut.read.data))
            await ctx.tick()
            results.append((before, list(ctx.get(dut.read.data))))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def test_fill_then_read_with_one_cycle_latency():
    rows = [row(n) for n in range(ROWS)]
    steps = [{"fill": (n, rows[n])} for n in range(ROWS)]
    steps += [{"read": n} for n in (2, 0, 3, 1)]
    results = simulate(steps)
    reads = results[ROWS:]
    # the data of the address presented in a cycle appears after that cycle's edge, not before
    assert [after for _, after in reads] == [rows[2], rows[0], rows[3], rows[1]]
    assert [before for before, _ in reads[1:]] == [rows[2], rows[0], rows[3]]


def test_read_enable_low_holds_the_data():
    rows = [row(10 + n) for n in range(2)]
    results = simulate([{"fill": (0, rows[0])}, {"fill": (1, rows[1])}, {"read": 1},
                        {}, {}, {"read": 0}])
    assert [after for _, after in results[2:]] == [rows[1], rows[1], rows[1], rows[0]]


def test_a_readout_after_swap_fills_the_new_input_bank_and_keeps_the_old():
    """A layer's readout swaps the banks as it starts and writes the new input bank, which the
    next layer reads; the previous inputs stay in the other bank."""
    inputs = [row(20 + n) for n in range(ROWS)]
    outputs = [row(30 + n) for n in range(ROWS)]
    steps = [{"fill": (n, inputs[n])} for n in range(ROWS)]
    steps += [{"read": n} for n in range(ROWS)]          # the filled bank
    steps += [{"swap": 1}]
    steps += [{"write": (n, outputs[n])} for n in range(ROWS)]
    steps += [{"read": n} for n in range(ROWS)]          # the written bank
    steps += [{"swap": 1}]
    steps += [{"read": n} for n in range(ROWS)]          # and back
    results = [after for _, after in simulate(steps)]
    assert results[ROWS:2 * ROWS] == inputs
    base = 3 * ROWS + 1
    assert results[base:base + ROWS] == outputs
    assert results[base + ROWS + 1:] == inputs


def test_a_row_written_is_read_in_the_next_cycle():
    """The next layer reads a row the cycle after the readout wrote it."""
    written = row(60)
    steps = [{"swap": 1}, {"write": (2, written)}, {"read": 2}]
    assert [after for _, after in simulate(steps)][2] == written


def test_fill_after_swap_writes_the_new_input_bank():
    first = row(40)
    second = row(41)
    steps = [{"fill": (0, first)}, {"swap": 1}, {"fill": (0, second)}, {"read": 0},
             {"swap": 1}, {"read": 0}]
    results = [after for _, after in simulate(steps)]
    assert results[3] == second
    assert results[5] == first


@st.composite
def operations(draw):
    # Start from known contents in both banks (bank 0 holds 100+n, bank 1 200+n).
    steps = [{"fill": (n, row(100 + n))} for n in range(ROWS)] + [{"swap": 1}]
    steps += [{"fill": (n, row(200 + n))} for n in range(ROWS)] + [{"swap": 1}]
    for _ in range(draw(st.integers(1, 60))):
        step = {}
        kind = draw(st.sampled_from(["fill", "write", "none"]))
        if kind != "none":
            step[kind] = (draw(st.integers(0, ROWS - 1)), row(draw(st.integers(0, 10 ** 6))))
        if draw(st.booleans()):
            step["read"] = draw(st.integers(0, ROWS - 1))
        if draw(st.integers(0, 5)) == 0:
            step["swap"] = 1
        if kind != "none" and step.get("read") == step[kind][0]:
            del step["read"]   # read-during-write of the same row is not part of the contract
        steps.append(step)
    return steps


@settings(max_examples=25, deadline=None)
@given(operations())
def test_random_operations_match_two_bank_model(steps):
    results = simulate(steps)
    banks = [[[0] * CONFIG.lanes for _ in range(ROWS)] for _ in range(2)]
    input_bank = 0
    data = None
    for step, (_, after) in zip(steps, results):
        if "read" in step:
            data = list(banks[input_bank][step["read"]])
        if "fill" in step:
            addr, value = step["fill"]
            banks[input_bank][addr] = value
        if "write" in step:
            addr, value = step["write"]
            banks[input_bank][addr] = value
        if step.get("swap"):
            input_bank ^= 1
        if data is not None:
            assert after == data
