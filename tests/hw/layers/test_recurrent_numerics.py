"""The recurrent cells' fixed-point element-wise stage: the sigmoid table, its error against
the float functions over the whole activation range, and the LSTM and GRU cells against their
float forms."""

import math

import numpy as np
import pytest

from reuse_accel.hw.layers.recurrent import (
    RecurrentShape,
    fixed_sigmoid,
    fixed_tanh,
    gru_cell,
    lstm_cell,
    recurrent_step,
    sigmoid_table,
)

ACT_FRAC, ACT_MIN, ACT_MAX = 8, -(1 << 15), (1 << 15) - 1
ONE = 1 << ACT_FRAC


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_the_sigmoid_table_holds_the_middle_of_each_step():
    """1024 entries over [-8, 8) in steps of 1/64; entry k is σ((k - 512 + 0.5) / 64) in
    1/256ths: hand-computed at the ends and around 0."""
    table = sigmoid_table(ACT_FRAC)
    assert len(table) == 1024
    assert table[0] == 0 and table[1023] == 256
    assert table[480] == round(256 / (1 + math.exp(31.5 / 64))) == 97
    assert table[512] == 128          # σ(1/128) = 0.50195: 128.49999 in 1/256ths
    assert table[576] == round(256 / (1 + math.exp(-64.5 / 64))) == 188
    assert np.all(np.diff(table) >= 0)
    # Values are floored to the step: 0 and 3/256 (below 1/64) read entry 512, 4/256 entry
    # 513, -1/256 entry 511.
    assert fixed_sigmoid(np.array([0, 3, 4, -1]), ACT_FRAC).tolist() == \
        [table[512], table[512], table[513], table[511]]
    # Beyond the table's range the ends hold.
    assert fixed_sigmoid(np.array([ACT_MIN, ACT_MAX]), ACT_FRAC).tolist() == [0, 256]


def test_the_functions_error_against_float_over_the_activation_range():
    """Every 16-bit activation: the error is at most half a step times the largest slope plus
    half an output unit, σ: 1/128 · 1/4 + 1/512 = 1/256; tanh = 2σ(2a) - 1 doubles it."""
    values = np.arange(ACT_MIN, ACT_MAX + 1)
    x = values / ONE
    sigmoid_error = np.abs(fixed_sigmoid(values, ACT_FRAC) / ONE - sigmoid(x)).max()
    tanh_error = np.abs(fixed_tanh(values, ACT_FRAC) / ONE - np.tanh(x)).max()
    assert sigmoid_error <= 1 / 256 and tanh_error <= 2 / 256
    assert sigmoid_error == pytest.approx(0.003906, abs=1e-6)
    assert tanh_error == pytest.approx(0.007812, abs=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_cells_follow_their_float_forms(cell):
    """Random gate pre-activations in [-4, 4] and states in [-1, 1]: the fixed-point cell
    stays within 0.03 of the float one (a few table errors through two products)."""
    rng = np.random.default_rng(3)
    hidden = 200
    gates = np.rint(rng.uniform(-4, 4, (4, hidden)) * ONE).astype(np.int64)
    previous = np.rint(rng.uniform(-1, 1, hidden) * ONE).astype(np.int64)
    shape = RecurrentShape(cell, 1, hidden)
    float_h, float_c = recurrent_step(shape, gates.reshape(-1) / ONE, previous / ONE,
                                      previous / ONE)
    if cell == "lstm":
        h, c = lstm_cell(gates, previous, ACT_FRAC, ACT_MIN, ACT_MAX)
        assert np.abs(c / ONE - float_c).max() < 0.03
    else:
        h = gru_cell(gates, previous, ACT_FRAC, ACT_MIN, ACT_MAX)
    assert np.abs(h / ONE - float_h).max() < 0.03
    assert np.abs(h).max() <= ONE


def test_hand_computed_cells():
    """Gates at 0: σ reads entry 512 (128/256), tanh 2 · 128 - 256 = 0. LSTM from c = 1.0:
    c' = round(128 · 256 / 256) + round(128 · 0 / 256) = 128, tanh(128/256) = 2 · σ(1.0) - 256
    = 2 · entry 576 - 256 = 120, h = round(128 · 120 / 256) = 60. GRU from h = 1.0:
    n = tanh(0 + 0) = 0, h' = 0 + round(128 · 256 / 256) = 128."""
    zeros = np.zeros((4, 1), np.int64)
    h, c = lstm_cell(zeros, np.array([ONE]), ACT_FRAC, ACT_MIN, ACT_MAX)
    assert (h.tolist(), c.tolist()) == ([60], [128])
    assert gru_cell(zeros, np.array([ONE]), ACT_FRAC, ACT_MIN, ACT_MAX).tolist() == [128]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("gaps", [False, True], ids=["back-to-back", "with-gaps"])
def test_the_elementwise_stage_gateware_equals_the_cells(cell, gaps):
    """ElementwiseStage in Amaranth's simulator: groups of 4 lanes, their four gate rows one
    per cycle (back to back, or with idle cycles between rows), random activations over the
    whole 12-bit range; every group's h (and c) equals lstm_cell's or gru_cell's, ``latency``
    cycles after its gate-3 row."""
    from amaranth.sim import Simulator

    from reuse_accel.hw.config import AccelConfig
    from reuse_accel.hw.layers.recurrent import ElementwiseStage

    config = AccelConfig(lanes=4, act_width=12, act_frac=8)
    low, high = config.act_min, config.act_max
    rng = np.random.default_rng(4 if cell == "lstm" else 5)
    groups = 6
    gates = rng.integers(low, high + 1, (groups, 4, 4))
    gates[:, :, 0] = [low, high, 0, -1]             # the table's ends and around zero
    states = rng.integers(low, high + 1, (groups, 4)) if cell == "lstm" else \
        rng.integers(-ONE, ONE + 1, (groups, 4))
    dut = ElementwiseStage(config)
    schedule = []                                   # (cycle, group, gate)
    cycle = 1
    for group in range(groups):
        for gate in range(4):
            schedule.append((cycle, group, gate))
            cycle += 1 + int(gaps and rng.random() < 0.5)
    seen = []

    async def bench(ctx):
        ctx.set(dut.gru, int(cell == "gru"))
        rows = {when: (group, gate) for when, group, gate in schedule}
        for now in range(cycle + 10):
            if now in rows:
                group, gate = rows[now]
                ctx.set(dut.i, {"valid": 1, "gate": gate, "values": gates[group, gate].tolist(),
                                "state": states[group].tolist()})
            else:
                ctx.set(dut.i.valid, 0)
            await ctx.tick()
            out = ctx.get(dut.o)
            if out.valid:
                seen.append((now + 1, [out.hidden[k] for k in range(4)],
                             [out.cell[k] for k in range(4)]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    args = (config.act_frac, low, high)
    expected = []
    for group in range(groups):
        when = next(w for w, g, k in schedule if g == group and k == 3)
        if cell == "lstm":
            h, c = lstm_cell(gates[group], states[group], *args)
            expected.append((when + ElementwiseStage.latency, h.tolist(), c.tolist()))
        else:
            h = gru_cell(gates[group], states[group], *args)
            expected.append((when + ElementwiseStage.latency, h.tolist()))
    got = [entry if cell == "lstm" else entry[:2] for entry in seen]
    assert got == expected
