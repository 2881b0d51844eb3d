"""Hardware generated without reuse (``AccelConfig(reuse=False)``): the same accelerator with
the quantizer, centroid tables, comparator memory and stored sums removed, computing every layer
densely on fixed-point activations. Checked bit-exact and cycle-exact against the golden model
in Amaranth's simulator and on Verilator, with the protocol's answers to the commands it lacks.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from amaranth.back import rtlil
from support.accelerator import (
    assert_frame_equal,
    errors_of,
    frames_of,
    no_device_errors,
    run,
    statuses_of,
)
from support.networks import every_input_cycles, random_network

from reuse_accel.hw.config import AccelConfig, ConfigError
from reuse_accel.hw.protocol import Error, Opcode
from reuse_accel.hw.top import Accelerator
from reuse_accel.sim.model import GoldenModel
from reuse_accel.sw.commands import Batch

CONFIG = AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=3, reuse=False)

# STATUS flags, as documented in hw/protocol.py.
BASELINE = 1 << 2
REUSE_BUILD = 1 << 3


def activation_frames(config: AccelConfig, inputs: int, count: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Fixed-point activations spanning the whole signed range, the extremes included."""
    frames = rng.integers(config.act_min, config.act_max + 1, (count, inputs))
    frames[0, :2] = config.act_min, config.act_max
    return frames


def dense_reference(layers, values: np.ndarray, config: AccelConfig) -> np.ndarray:
    """The documented number format, written out in Python integers (no NumPy BLAS)."""
    values = [int(v) for v in values]
    for layer in layers:
        out = []
        for row, bias in zip(layer.weights, layer.biases):
            acc = int(bias) + sum(int(w) * v for w, v in zip(row, values))
            shifted = (acc + ((1 << layer.shift) >> 1)) >> layer.shift
            if layer.relu:
                shifted = max(shifted, 0)
            out.append(min(max(shifted, config.act_min), config.act_max))
        values = out
    return np.array(values)


@pytest.mark.parametrize("sizes", [[10, 9, 6, 3], [7, 4], [9, 1, 5]])
def test_dense_frames_match_model_and_reference(sizes):
    rng = np.random.default_rng(sum(sizes))
    layers = random_network(CONFIG, sizes, rng, shift=4)
    frames = activation_frames(CONFIG, sizes[0], 3, rng)
    batch = Batch(CONFIG)
    batch.load(layers)
    batch.begin_sequence()
    for frame in frames:
        batch.frame(frame, layers)
    results = run(batch)
    no_device_errors(results)
    got = frames_of(results)
    model = GoldenModel(CONFIG, layers)
    for t, (result, frame) in enumerate(zip(got, frames)):
        assert_frame_equal(result, model.frame(frame), f"frame {t}")
        np.testing.assert_array_equal(result.outputs, dense_reference(layers, frame, CONFIG))
        # Every input of every layer is applied (no quantizer stages), plus the done cycle.
        groups = [CONFIG.groups(n) for n in sizes[1:]]
        expected = every_input_cycles(sizes[:-1], groups, reuse=False)
        np.testing.assert_array_equal(result.layer_cycles, expected)
        assert result.cycles == sum(expected) + 1
        np.testing.assert_array_equal(result.changed_inputs, sizes[:-1])
        np.testing.assert_array_equal(result.out_of_range, 0)


def test_commands_of_the_reuse_logic_are_unsupported():
    rng = np.random.default_rng(3)
    layers = random_network(CONFIG, [6, 5], rng)
    batch = Batch(CONFIG)
    batch.load(layers)
    batch.status()
    batch.raw([0x0005 | 1 << 16, 0x1234], Opcode.LOAD_CENTROIDS)   # one word of centroids
    batch.set_mode(baseline=False)
    batch.set_mode(baseline=True)
    batch.status()
    results = run(batch)
    errors = errors_of(results)
    assert [str(error) for error in errors] == [
        "the accelerator rejected LOAD_CENTROIDS: UNSUPPORTED (the hardware was generated "
        "without reuse (no centroids, baseline only) or without conv layers (max_kernel = 0))",
        "the accelerator rejected SET_MODE: UNSUPPORTED (the hardware was generated "
        "without reuse (no centroids, baseline only) or without conv layers (max_kernel = 0))",
    ]
    assert all(error.error == Error.UNSUPPORTED for error in errors)
    first, second = statuses_of(results)
    assert first["flags"] & (BASELINE | REUSE_BUILD) == BASELINE
    assert second["errors"] == 2
    # The network survived the rejected commands (rejected commands change no state).
    assert first["flags"] & 1 and second["flags"] & 1


def test_reuse_build_reports_its_reuse_logic():
    config = dataclasses.replace(CONFIG, reuse=True)
    batch = Batch(config)
    batch.status()
    (status,) = statuses_of(run(batch))
    assert status["flags"] & (BASELINE | REUSE_BUILD) == REUSE_BUILD


def memory_bits(config: AccelConfig) -> dict[str, tuple[int, int]]:
    """Each memory of the elaborated design: (width, depth), from the RTLIL netlist."""
    text = rtlil.convert(Accelerator(config), name="top")
    found = re.findall(r"^\s*memory width (\d+) size (\d+) \\(\w+)", text, re.M)
    return {name: (int(width), int(size)) for width, size, name in found}


def test_reuse_logic_is_absent_from_the_design():
    with_reuse = memory_bits(dataclasses.replace(CONFIG, reuse=True))
    without = memory_bits(CONFIG)
    L, groups = CONFIG.lanes, CONFIG.max_groups
    # The reuse build keeps per layer: centroid tables, every input's state (its centroid, the
    # two ends of its interval of doubled values, two bits wider than a centroid, and whether it
    # is outside the range), every layer's sums.
    assert with_reuse["centroids"] == (CONFIG.clusters * CONFIG.centroid_width, 4)
    input_state = CONFIG.centroid_width + 2 * (CONFIG.centroid_width + 2) + 1
    assert with_reuse["state"] == (L * input_state, CONFIG.max_layers * groups)
    assert with_reuse["sums"] == (L * CONFIG.acc_width, CONFIG.max_layers * groups)
    # Without reuse: no tables, no previous indices, one layer of sums; the rest unchanged.
    assert "centroids" not in without and "state" not in without
    assert without["sums"] == (L * CONFIG.acc_width, groups)
    weight_banks = [name for name in with_reuse if name.startswith("weights")]
    assert weight_banks == [f"weights{bank}" for bank in range(len(weight_banks))]
    for name in (*weight_banks, "biases", "banks"):
        assert without[name] == with_reuse[name]


def test_model_refuses_reuse_mode_and_out_of_range_inputs():
    layers = random_network(CONFIG, [4, 2], np.random.default_rng(0))
    model = GoldenModel(CONFIG, layers)
    with pytest.raises(ValueError, match=r"^the hardware was generated without reuse \(reuse = "
                       r"false\) and only runs in baseline mode; generate it with reuse = true "
                       r"to reuse computation$"):
        model.set_mode(baseline=False)
    with pytest.raises(ValueError, match=r"^fixed-point activations must be in \[-32768, 32767\], "
                       r"not -32769..0$"):
        model.frame(np.array([-32769, 0, 0, 0]))


def test_reuse_field_must_be_a_bool_and_round_trips_through_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"^reuse must be true or false, not 1$"):
        AccelConfig(reuse=1)
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.to_toml())
    assert "reuse = false" in path.read_text().splitlines()
    assert AccelConfig.from_toml(path) == CONFIG


@pytest.mark.rtl
def test_dense_frames_on_verilator_match_model(rtl_build_root):
    from reuse_accel.sim.cocotb.transport import CocotbTransport
    from reuse_accel.sw.commands import split_responses

    sizes = [22, 13, 11, 6]
    rng = np.random.default_rng(7)
    layers = random_network(CONFIG, sizes, rng, shift=4)
    frames = activation_frames(CONFIG, sizes[0], 4, rng)
    batch = Batch(CONFIG)
    batch.load(layers)
    for frame in frames:
        batch.frame(frame, layers)
    transport = CocotbTransport(CONFIG, "verilator", build_dir=rtl_build_root)
    exchange = transport.exchange(batch.words, len(batch.expected))
    results = batch.decode(split_responses(exchange.words, len(batch.expected)))
    model = GoldenModel(CONFIG, layers)
    for t, (result, frame) in enumerate(zip(frames_of(results), frames)):
        assert_frame_equal(result, model.frame(frame), f"frame {t}")
        np.testing.assert_array_equal(result.outputs, dense_reference(layers, frame, CONFIG))
