"""The conv layer kind in the golden model (sim/model/conv.py) and its geometry
(hw/layers/conv.py), against plain loops written from the ONNX definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.conv import ConvGeometry, MapLayout, Pool
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.model import FixedLayer, GoldenModel
from reuse_accel.sim.model.conv import ConvLayer

CONFIG = AccelConfig(lanes=4, clusters=16, max_layers=4, max_neurons=512, weight_depth=4096)


def loop_conv(maps, weights, biases, geometry):
    """``maps`` (H, W, C) integers -> (OH, OW, C') sums, one tap at a time."""
    oh, ow = geometry.conv_size
    top, left = geometry.padding[0], geometry.padding[1]
    out = np.zeros((oh, ow, geometry.out_channels), dtype=object)
    for oy, ox, o in itertools.product(range(oh), range(ow), range(geometry.out_channels)):
        total = int(biases[o])
        for c, ky, kx in itertools.product(range(geometry.channels),
                                           range(geometry.kernel[0]), range(geometry.kernel[1])):
            y = oy * geometry.stride[0] + ky - top
            x = ox * geometry.stride[1] + kx - left
            if 0 <= y < geometry.height and 0 <= x < geometry.width:
                total += int(weights[o, c, ky, kx]) * int(maps[y, x, c])
        out[oy, ox, o] = total
    return out


def loop_pool(maps, pool):
    """``maps`` (H, W, C) integers -> pooled, from the ONNX MaxPool/AveragePool definitions;
    an average rounds half up."""
    height, width, channels = maps.shape
    ph, pw = pool.out_size(height, width)
    top, left, bottom, right = pool.padding
    out = np.zeros((ph, pw, channels), dtype=object)
    for py, px, c in itertools.product(range(ph), range(pw), range(channels)):
        cells, padded = [], 0
        for ky, kx in itertools.product(range(pool.kernel[0]), range(pool.kernel[1])):
            y, x = py * pool.stride[0] + ky - top, px * pool.stride[1] + kx - left
            if 0 <= y < height and 0 <= x < width:
                cells.append(int(maps[y, x, c]))
            elif -top <= y < height + bottom and -left <= x < width + right:
                padded += 1
        if pool.mode == "max":
            out[py, px, c] = max(cells)
        else:
            divisor = len(cells) + (padded if pool.count_include_pad else 0)
            out[py, px, c] = (2 * sum(cells) + divisor) // (2 * divisor)
    return out


GEOMETRIES = [
    ConvGeometry(3, 5, 7, 5, (3, 3), (1, 1), (1, 1, 1, 1)),
    ConvGeometry(2, 7, 6, 3, (3, 2), (2, 1), (0, 2, 1, 0)),
    ConvGeometry(1, 9, 9, 6, (5, 5), (2, 2), (2, 2, 2, 2),
                 Pool("max", (2, 2), (2, 2))),
    ConvGeometry(5, 6, 6, 4, (1, 1), (2, 2), (0, 0, 0, 0),
                 Pool("avg", (3, 3), (1, 1), (1, 1, 1, 1), count_include_pad=False)),
    ConvGeometry(4, 1, 11, 5, (1, 3), (1, 2), (0, 1, 0, 2),
                 Pool("avg", (1, 2), (1, 2), (0, 1, 0, 0), count_include_pad=True), dims=1),
    ConvGeometry(3, 4, 5, 9, (2, 2), (1, 1), (0, 0, 0, 0), Pool("avg", (3, 4), (1, 1))),
]


def fixed_conv(geometry, rng, *, shift=4, relu=True):
    weights = rng.integers(CONFIG.weight_min, CONFIG.weight_max + 1,
                           (geometry.out_channels, geometry.channels, *geometry.kernel))
    biases = rng.integers(-4000, 4000, geometry.out_channels)
    centroids = np.sort(rng.choice(np.arange(-600, 600), CONFIG.clusters, replace=False))
    return FixedLayer(weights, biases, centroids, shift, relu, LayerKind.CONV, geometry)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=range(len(GEOMETRIES)))
def test_conv_forward_update_and_readout_match_loops(geometry):
    rng = np.random.default_rng(3)
    layer = fixed_conv(geometry, rng)
    kind = ConvLayer(CONFIG, layer)
    old = rng.integers(-300, 300, geometry.inputs)
    new = np.where(rng.random(geometry.inputs) < 0.3, rng.integers(-300, 300, geometry.inputs),
                   old)
    shape = (geometry.height, geometry.width, geometry.channels)
    expected = loop_conv(new.reshape(shape), layer.weights, layer.biases, geometry)
    sums = kind.forward(old)
    changed = new != old
    kind.update(sums, changed, new - old)
    assert sums.tolist() == expected.reshape(-1).tolist()
    assert kind.forward(new).tolist() == sums.tolist()
    # Readout: round, shift, ReLU, saturate, then pool.
    acc = sums.astype(np.int64).reshape(*geometry.conv_size, -1)
    activated = np.clip(np.maximum((acc + 8) >> 4, 0), CONFIG.act_min, CONFIG.act_max)
    pooled = activated if geometry.pool is None else loop_pool(activated, geometry.pool)
    values, saturated = kind.readout(sums)
    assert values.tolist() == pooled.reshape(-1).tolist()
    assert saturated == int((np.maximum((acc + 8) >> 4, 0) > CONFIG.act_max).sum())
    assert values.shape == (geometry.outputs,)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=range(len(GEOMETRIES)))
def test_conv_work_counts_kernel_taps_inside_the_output(geometry):
    """Each input's MAC items are the output positions that read it (counted tap by tap)
    times the output groups; its MACs, those positions times the output channels."""
    oh, ow = geometry.conv_size
    reach = np.zeros((geometry.height, geometry.width), np.int64)
    for oy, ox, ky, kx in itertools.product(range(oh), range(ow), range(geometry.kernel[0]),
                                            range(geometry.kernel[1])):
        y = oy * geometry.stride[0] + ky - geometry.padding[0]
        x = ox * geometry.stride[1] + kx - geometry.padding[1]
        if 0 <= y < geometry.height and 0 <= x < geometry.width:
            reach[y, x] += 1
    assert geometry.outputs_per_input().tolist() == reach.tolist()
    groups = -(-geometry.out_channels // CONFIG.lanes)
    kind = ConvLayer(CONFIG, fixed_conv(geometry, np.random.default_rng(0)))
    mask = np.random.default_rng(1).random(geometry.inputs) < 0.5
    per_input = np.repeat(reach.reshape(-1), geometry.channels)
    assert kind.weight_rows(mask) == int(per_input[mask].sum()) * groups
    assert kind.macs(mask) == int(per_input[mask].sum()) * geometry.out_channels


def test_conv_weight_rows_follow_the_documented_layout():
    geometry = GEOMETRIES[1]
    weights = np.arange(3 * 2 * 3 * 2).reshape(3, 2, 3, 2)
    rows = geometry.weight_rows(4, weights)
    assert rows.shape == (geometry.weight_row_count(4), 4) == (12, 4)
    for g, ky, kx, c in itertools.product(range(1), range(3), range(2), range(2)):
        row = ((g * 3 + ky) * 2 + kx) * 2 + c
        assert rows[row].tolist() == [*weights[:, c, ky, kx].tolist(), 0]


def test_map_layout_puts_each_position_in_whole_rows():
    layout = MapLayout(positions=3, channels=6)
    assert layout.rows(4) == 6
    assert layout.stored_index(4).tolist() == [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13,
                                               16, 17, 18, 19, 20, 21]
    assert MapLayout(1, 10).stored_index(4).tolist() == list(range(10))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_conv_delta_updates_equal_from_scratch_on_any_sequence(data):
    """A hypothesis property: over a sequence of frames, the golden model with reuse (delta
    updates of the stored sums) gives the outputs of the same model run from scratch on every
    frame, for any conv geometry with a pool and a dense layer after it."""
    channels = data.draw(st.integers(1, 5), "channels")
    height = data.draw(st.integers(1, 7), "height")
    width = data.draw(st.integers(1, 7), "width")
    kh = data.draw(st.integers(1, height + 1), "kh")
    kw = data.draw(st.integers(1, width + 1), "kw")
    stride = (data.draw(st.integers(1, 3), "sh"), data.draw(st.integers(1, 3), "sw"))
    padding = tuple(data.draw(st.integers(0, 2), f"pad{n}") for n in range(4))
    if height + padding[0] + padding[2] < kh or width + padding[1] + padding[3] < kw:
        padding = (kh, kw, 0, 0)
    geometry = ConvGeometry(channels, height, width, data.draw(st.integers(1, 6), "out"),
                            (kh, kw), stride, padding)
    if data.draw(st.booleans(), "pooled"):
        oh, ow = geometry.conv_size
        kernel = (data.draw(st.integers(1, oh), "pkh"), data.draw(st.integers(1, ow), "pkw"))
        pool = Pool(data.draw(st.sampled_from(["max", "avg"]), "mode"), kernel,
                    (data.draw(st.integers(1, 2), "psh"), data.draw(st.integers(1, 2), "psw")),
                    (0, kernel[1] - 1, kernel[0] - 1, 0), data.draw(st.booleans(), "include"))
        geometry = ConvGeometry(channels, height, width, geometry.out_channels, (kh, kw),
                                stride, padding, pool)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), "seed"))
    conv = fixed_conv(geometry, rng, shift=3)
    dense = FixedLayer(rng.integers(-128, 128, (3, geometry.outputs)),
                       rng.integers(-1000, 1000, 3),
                       np.sort(rng.choice(np.arange(-600, 600), 16, replace=False)), 4, False)
    frames = np.empty((5, geometry.inputs), np.int64)
    frames[0] = rng.integers(0, 16, geometry.inputs)
    for t in range(1, 5):
        frames[t] = np.where(rng.random(geometry.inputs) < 0.3,
                             rng.integers(0, 16, geometry.inputs), frames[t - 1])
    reuse = GoldenModel(CONFIG, [conv, dense])
    scratch = GoldenModel(CONFIG, [conv, dense])
    scratch.set_mode(baseline=True)
    for frame in frames:
        got, want = reuse.frame(frame), scratch.frame(frame)
        for mine, theirs in zip(got.activations, want.activations):
            assert mine.tolist() == theirs.tolist()
        assert (got.changed_inputs <= want.changed_inputs).all()
        assert (got.weight_rows <= want.weight_rows).all()
        assert (got.cycles <= want.cycles)
