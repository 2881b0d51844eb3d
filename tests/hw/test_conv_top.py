"""Conv layers on the accelerator top in Amaranth's simulator, bit- and cycle-exact against the
golden model: conv -> conv -> dense with partial changes, padding, strides, a max pool and
channel counts that leave padding lanes, with reuse and without."""

from __future__ import annotations

import numpy as np
import pytest
from support.accelerator import assert_frame_equal, frames_of, no_device_errors, run

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.conv import ConvGeometry, Pool
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.model import FixedLayer, GoldenModel
from reuse_accel.sw.commands import Batch

CONFIG = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                     centroid_width=10, max_layers=3, max_neurons=64, weight_depth=1024,
                     max_kernel=3, max_height=7, max_width=8, buffer_depth=96,
                     state_depth=160, sum_depth=128)


def conv_layer(config, geometry, rng, *, shift=5, relu=True):
    weights = rng.integers(config.weight_min, config.weight_max + 1,
                           (geometry.out_channels, geometry.channels, *geometry.kernel))
    biases = rng.integers(-(1 << (config.act_frac + shift)), 1 << (config.act_frac + shift),
                          geometry.out_channels)
    span = 1 << (config.act_frac + 2)
    centroids = np.sort(rng.choice(np.arange(-span, span), config.clusters, replace=False))
    return FixedLayer(weights=weights, biases=biases, centroids=centroids, shift=shift,
                      relu=relu, kind=LayerKind.CONV, geometry=geometry)


def dense_layer(config, inputs, outputs, rng, *, shift=5):
    weights = rng.integers(config.weight_min, config.weight_max + 1, (outputs, inputs))
    biases = rng.integers(-(1 << (config.act_frac + shift)), 1 << (config.act_frac + shift),
                          outputs)
    span = 1 << (config.act_frac + 2)
    centroids = np.sort(rng.choice(np.arange(-span, span), config.clusters, replace=False))
    return FixedLayer(weights=weights, biases=biases, centroids=centroids, shift=shift,
                      relu=False)


def pooled_network(config, rng):
    """3 x 6 x 7 -> (3 x 3, padding 1) -> 6 x 6 x 7 -> max pool (3 x 3, stride 2, padding 1,
    overlapping and clipped windows) -> 6 x 3 x 4 -> (2 x 2) -> 8 x 2 x 3 -> dense 5."""
    first = ConvGeometry(3, 6, 7, 6, (3, 3), (1, 1), (1, 1, 1, 1),
                         Pool("max", (3, 3), (2, 2), (1, 1, 1, 1)))
    second = ConvGeometry(6, 3, 4, 8, (2, 2))
    return [conv_layer(config, first, rng), conv_layer(config, second, rng),
            dense_layer(config, second.outputs, 5, rng)]


def network(config, rng):
    """3 x 6 x 7 -> (3 x 3, padding 1) -> 6 x 6 x 7 -> (3 x 2, stride 2 x 3, padding 0/1)
    -> 8 x 2 x 3 -> dense 5. Three input channels and six output channels leave padding lanes
    in the 4-lane rows."""
    first = ConvGeometry(3, 6, 7, 6, (3, 3), (1, 1), (1, 1, 1, 1))
    second = ConvGeometry(6, 6, 7, 8, (3, 2), (2, 3), (0, 1, 0, 0))
    return [conv_layer(config, first, rng), conv_layer(config, second, rng),
            dense_layer(config, second.outputs, 5, rng)]


def similar(rng, inputs, count, change, clusters):
    frames = np.empty((count, inputs), np.int64)
    frames[0] = rng.integers(0, clusters, inputs)
    for t in range(1, count):
        flips = rng.random(inputs) < change
        frames[t] = np.where(flips, rng.integers(0, clusters, inputs), frames[t - 1])
    return frames


@pytest.mark.parametrize("make", [network, pooled_network], ids=["strided", "max-pool"])
@pytest.mark.parametrize("reuse", [True, False], ids=["reuse", "no-reuse"])
def test_conv_network_matches_golden_model(reuse, make):
    config = CONFIG if reuse else AccelConfig(**{**CONFIG.__dict__, "reuse": False})
    rng = np.random.default_rng(7)
    layers = make(config, rng)
    if not reuse:
        layers = [FixedLayer(weights=layer.weights, biases=layer.biases,
                             centroids=np.zeros(0, np.int64), shift=layer.shift,
                             relu=layer.relu, kind=layer.kind, geometry=layer.geometry)
                  for layer in layers]
        frames = rng.integers(-40, 40, (2, layers[0].inputs))
    else:
        frames = similar(rng, layers[0].inputs, 4, 0.2, config.clusters)
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
