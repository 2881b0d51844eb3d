"""Conv layers on the accelerator top in Amaranth's simulator, bit- and cycle-exact against the
golden model: conv -> conv -> dense with partial changes, padding, strides, max and average
pools, a 1-D stack and channel counts that leave padding lanes, with reuse and without; a
repeated frame and a new sequence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support.accelerator import assert_frame_equal, frames_of, no_device_errors, run
from support.networks import CONV_NETWORKS, conv_network, similar_frames
from support.rtl import CONV as CONFIG

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sim.model import GoldenModel
from reuse_accel.sw.commands import Batch


@pytest.mark.parametrize("name", CONV_NETWORKS)
@pytest.mark.parametrize("reuse", [True, False], ids=["reuse", "no-reuse"])
def test_conv_network_matches_golden_model(reuse, name):
    config = CONFIG if reuse else dataclasses.replace(CONFIG, reuse=False)
    rng = np.random.default_rng(7)
    layers = conv_network(config, name, rng)
    if not reuse:
        layers = [dataclasses.replace(layer, centroids=np.zeros(0, np.int64))
                  for layer in layers]
        frames = rng.integers(-40, 40, (2, layers[0].inputs))
    else:
        frames = similar_frames(config, layers[0].inputs, 4, 0.2, rng)
    batch = Batch(config)
    batch.load(layers)
    batch.begin_sequence()
    for frame in frames:
        batch.frame(frame, layers)
    results = run(batch, timeout=20_000)
    no_device_errors(results)
    got = frames_of(results)
    model = GoldenModel(config, layers)
    assert len(got) == len(frames)
    for t, (result, frame) in enumerate(zip(got, frames)):
        assert_frame_equal(result, model.frame(frame), f"frame {t}")
    if reuse:
        # Partial changes reach every layer.
        assert all(0 < result.changed_inputs[0] < layers[0].inputs for result in got[1:])
        assert any(0 < result.changed_inputs[1] < layers[1].inputs for result in got[1:])


def test_a_repeated_frame_changes_nothing_and_a_new_sequence_starts_from_scratch():
    """With reuse: a frame equal to the one before changes no input of any layer and reads no
    weight; after BEGIN_SEQUENCE the same frame is computed from scratch, every input changed,
    to the same outputs."""
    rng = np.random.default_rng(11)
    layers = conv_network(CONFIG, "max-pool", rng)
    frames = similar_frames(CONFIG, layers[0].inputs, 2, 0.2, rng)
    batch = Batch(CONFIG)
    batch.load(layers)
    batch.begin_sequence()
    batch.frame(frames[0], layers)
    batch.frame(frames[1], layers)
    batch.frame(frames[1], layers)
    batch.begin_sequence()
    batch.frame(frames[1], layers)
    results = run(batch, timeout=20_000)
    no_device_errors(results)
    got = frames_of(results)
    model = GoldenModel(CONFIG, layers)
    expected = [model.frame(frames[0]), model.frame(frames[1]), model.frame(frames[1])]
    model.begin_sequence()
    expected.append(model.frame(frames[1]))
    for t, (result, want) in enumerate(zip(got, expected, strict=True)):
        assert_frame_equal(result, want, f"frame {t}")
    assert got[2].changed_inputs.tolist() == [0, 0, 0]
    assert got[2].weight_rows.tolist() == [0, 0, 0]
    assert got[2].outputs.tolist() == got[1].outputs.tolist() == got[3].outputs.tolist()
    assert got[3].changed_inputs.tolist() == [layer.inputs for layer in layers]


def test_set_conv_checks_its_field_and_value():
    from support.accelerator import errors_of

    from reuse_accel.hw import protocol
    from reuse_accel.hw.protocol import Error, Opcode

    def set_conv(batch, layer, *words):
        batch.raw([protocol.header(Opcode.SET_CONV, layer, len(words)), *words],
                  Opcode.SET_CONV)

    size = protocol.CONV_FIELDS.index("y.size")      # coordinate_bits(7) = 4 bits
    batch = Batch(CONFIG)
    set_conv(batch, 0, size, 15)                     # passes
    set_conv(batch, 0, size, 16)                     # too wide for the field
    set_conv(batch, 0, len(protocol.CONV_FIELDS), 0)  # no such field
    set_conv(batch, 3, size, 1)                      # no such layer
    set_conv(batch, 0, size, 1, 0)                   # a payload word too many
    results = run(batch)
    assert results[0] is None
    assert [error.error for error in errors_of(results)] == [
        Error.BAD_PARAMETER, Error.BAD_PARAMETER, Error.BAD_LAYER, Error.BAD_LENGTH]
    # Hardware without conv layers has no conv descriptors.
    plain = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                        centroid_width=10, max_layers=2, max_neurons=16, weight_depth=64)
    batch = Batch(plain)
    set_conv(batch, 0, size, 1)
    assert [error.error for error in errors_of(run(batch))] == [Error.UNSUPPORTED]
