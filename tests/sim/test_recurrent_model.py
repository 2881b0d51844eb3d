"""The golden model of recurrent layers (LSTM, GRU): the delta updates against a plain
step-by-step computation of the same fixed-point network, reuse against the baseline on any
sequence, the state across frames and sequences, the counters and the cycle formula."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.recurrent import (
    ELEMENTWISE_LATENCY,
    RecurrentShape,
    gru_cell,
    lstm_cell,
)
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.model import FixedLayer, GoldenModel, activate, quantize

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=12, act_frac=8, weight_width=6,
                     centroid_width=12, max_layers=2, max_neurons=64, weight_depth=4096)
F, H = 5, 6


def recurrent_layer(cell: str, rng, *, inputs=F, shift=5) -> FixedLayer:
    span = 1 << CONFIG.act_frac
    return FixedLayer(
        weights=rng.integers(CONFIG.weight_min, CONFIG.weight_max + 1, (4 * H, inputs + H)),
        biases=rng.integers(-(span << shift) // 4, (span << shift) // 4, 4 * H),
        centroids=np.sort(rng.choice(np.arange(-span, span), CONFIG.clusters, replace=False)),
        hidden_centroids=np.sort(rng.choice(np.arange(-span, span), CONFIG.clusters,
                                            replace=False)),
        shift=shift, relu=False, kind=LayerKind.LSTM if cell == "lstm" else LayerKind.GRU,
        recurrent=RecurrentShape(cell, inputs, H))


def step_by_step(layer: FixedLayer, frames: np.ndarray) -> np.ndarray:
    """Every frame from scratch, written out: x's centroids (frames are indices), h_{t-1}
    quantized with its table, the gate sums, their activation, the cell."""
    h = np.zeros(H, np.int64)
    c = np.zeros(H, np.int64)
    outputs = []
    for indices in frames:
        x = layer.centroids[indices]
        hq = layer.hidden_centroids[quantize(h, layer.hidden_centroids)[0]]
        sums = layer.biases + layer.weights @ np.concatenate([x, hq])
        gates = activate(sums, layer.shift, False, CONFIG).reshape(4, H)
        args = (CONFIG.act_frac, CONFIG.act_min, CONFIG.act_max)
        if layer.recurrent.cell == "lstm":
            h, c = lstm_cell(gates, c, *args)
        else:
            h = gru_cell(gates, h, *args)
        outputs.append(h)
    return np.array(outputs)


def run(layer, frames, *, baseline=False, model=None):
    model = model or GoldenModel(CONFIG, [layer])
    model.set_mode(baseline=baseline)
    model.begin_sequence()
    return model, model.run(frames)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_reuse_follows_the_step_by_step_computation(cell):
    """Frames that change a few inputs at a time: with reuse the layer corrects its gate sums
    by the deltas of x and of h only, and its outputs are those of computing every step from
    scratch; a repeated frame changes no x input, but h still changes."""
    rng = np.random.default_rng(1)
    layer = recurrent_layer(cell, rng)
    frames = np.repeat(rng.integers(0, CONFIG.clusters, (6, F)), 2, axis=0)
    _, results = run(layer, frames)
    expected = step_by_step(layer, frames)
    assert np.array_equal([result.outputs for result in results], expected)
    assert results[0].changed_inputs.tolist() == [F + H]     # from scratch: all of x and h
    gates = 4 if cell == "lstm" else 3        # a GRU's input skips the other half's candidate
    for t in range(1, len(frames)):
        x_changed = int(np.count_nonzero(layer.centroids[frames[t]] !=
                                         layer.centroids[frames[t - 1]]))
        assert results[t].changed_inputs[0] >= x_changed
        assert results[t].weight_rows[0] == results[t].changed_inputs[0] * gates * 2  # Gh = 2
        assert results[t].macs[0] == results[t].changed_inputs[0] * gates * H


@settings(max_examples=25, deadline=None)
@given(data=st.data(), cell=st.sampled_from(["lstm", "gru"]))
def test_reuse_equals_the_baseline_on_any_sequence(data, cell):
    """For any weights and any sequence of frames, the delta updates give the outputs of the
    baseline mode, which computes every frame from scratch."""
    seed = data.draw(st.integers(0, 2**32 - 1), "seed")
    rng = np.random.default_rng(seed)
    layer = recurrent_layer(cell, rng)
    count = data.draw(st.integers(1, 8), "frames")
    change = data.draw(st.floats(0, 1), "change")
    frames = np.empty((count, F), np.int64)
    frames[0] = rng.integers(0, CONFIG.clusters, F)
    for t in range(1, count):
        frames[t] = np.where(rng.random(F) < change, rng.integers(0, CONFIG.clusters, F),
                             frames[t - 1])
    _, reuse = run(layer, frames)
    _, baseline = run(layer, frames, baseline=True)
    assert [r.outputs.tolist() for r in reuse] == [b.outputs.tolist() for b in baseline]


def test_a_new_sequence_starts_from_a_zero_state():
    """After BEGIN_SEQUENCE the same frames give the same outputs: h and c start from zero
    again; without it they carry on from the last frame."""
    rng = np.random.default_rng(2)
    layer = recurrent_layer("lstm", rng)
    frames = rng.integers(0, CONFIG.clusters, (4, F))
    model, first = run(layer, frames)
    model.begin_sequence()
    again = model.run(frames)
    carried = model.run(frames)
    assert [r.outputs.tolist() for r in first] == [r.outputs.tolist() for r in again]
    assert [r.outputs.tolist() for r in carried] != [r.outputs.tolist() for r in first]
    assert np.array_equal(carried[0].outputs, step_by_step(layer, np.concatenate(
        [frames, frames]))[4])


def test_cycles_of_a_frame_computed_from_scratch():
    """Every input of x and h changed, written out (README's formula): the scan of F + H
    inputs with 3 * Gh = 6 items each (a GRU), Q = log2(8) + 2 = 5 quantizer stages,
    ``inputs * items + 12 + Q``, then the element-wise stage, 4 * Gh = 8 sum reads and its
    latency; the frame adds its done cycle."""
    rng = np.random.default_rng(3)
    layer = recurrent_layer("gru", rng)
    frames = rng.integers(0, CONFIG.clusters, (2, F))
    _, results = run(layer, frames, baseline=True)
    stages = 3 + 2
    expected = (F + H) * 6 + 12 + stages + 8 + ELEMENTWISE_LATENCY
    assert results[0].layer_cycles.tolist() == [expected]
    assert results[0].cycles == expected + 1
