"""The accelerator top (:class:`reuse_accel.hw.top.Accelerator`) in Amaranth's simulator.

Every test sends a :class:`Batch` of command words through :class:`AmaranthTransport` and checks
the decoded responses against :class:`GoldenModel` (bit-exact outputs, exact counters and cycle
counts) or against the protocol's documented error responses. The designs are tiny (4 lanes,
at most 32 neurons) because the Python simulator runs about 2k cycles per second.
"""

from __future__ import annotations

import dataclasses
import gc
import re
import warnings

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.accelerator import (
    COUNTERS,
    assert_frame_equal,
    errors_of,
    frames_of,
    no_device_errors,
    run,
    simulate,
    statuses_of,
)
from support.networks import random_network, similar_frames

from reuse_accel.hw import protocol
from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.protocol import Error, Opcode
from reuse_accel.sim.amaranth import AmaranthTransport
from reuse_accel.sim.model import GoldenModel
from reuse_accel.sw.commands import Batch, DeviceError, split_responses

CONFIG = AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=3)

# STATUS flags, as documented in hw/protocol.py.
NET_VALID = 1 << 0
REUSE_VALID = 1 << 1
BASELINE = 1 << 2
REUSE_BUILD = 1 << 3   # set by every reuse build, whatever its state

# -- helpers ----------------------------------------------------------------------------------

def load_commands(config: AccelConfig, layers) -> list[tuple[int, int, list[int]]]:
    """The commands :meth:`Batch.load` sends, as ``(opcode, layer, words)``, for re-sending
    single ones."""
    batch = Batch(config)
    batch.load(layers)
    commands, position = [], 0
    while position < len(batch.words):
        opcode, layer, length = protocol.parse_header(batch.words[position])
        commands.append((opcode, layer, batch.words[position:position + 1 + length]))
        position += 1 + length
    return commands


def resend(batch: Batch, commands, opcode: Opcode, layer: int = 0) -> None:
    """Append the first loading command with this opcode and layer again."""
    for code, number, words in commands:
        if code == opcode and number == layer:
            batch.raw(words, opcode)
            return
    raise LookupError(f"no {opcode.name} for layer {layer}")


def header(opcode: int, layer: int = 0, length: int = 0) -> int:
    """A header word, packed here as the protocol docstring lays it out."""
    return opcode | layer << 8 | length << 16


def changed_count(frames: np.ndarray, t: int) -> int:
    """Layer-0 inputs whose cluster index differs from the previous frame's."""
    return int(np.count_nonzero(frames[t] != frames[t - 1]))


# -- end to end against the golden model ------------------------------------------------------

SEQUENCE_CASES = {
    # 3 = max_layers layers; 10 inputs and 9 outputs are not multiples of the 4 lanes; the
    # last layer has one output group (3 <= lanes): back-to-back updates of one sum row.
    "max_layers": (CONFIG, [10, 9, 6, 3]),
    "one_layer": (CONFIG, [7, 3]),
    # The smallest legal max_layers (AccelConfig accepts 1..16).
    "one_layer_on_max_layers_1": (AccelConfig(lanes=4, max_neurons=32, weight_depth=512,
                                              max_layers=1), [7, 3]),
    # Every layer has a single output group: each changed input reads, adds and writes the
    # same sum row in consecutive cycles (the MAC's forwarding path).
    "single_group": (CONFIG, [9, 4, 2]),
    # Two 32-bit control and counter fields per stream word, a whole row per word.
    "stream_width_64": (AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=3,
                                    stream_width=64), [6, 5, 4]),
}


@pytest.mark.parametrize("case", SEQUENCE_CASES.values(), ids=SEQUENCE_CASES.keys())
def test_sequence_matches_golden_model(case):
    config, sizes = case
    rng = np.random.default_rng(sum(sizes))
    layers = random_network(config, sizes, rng)
    frames = similar_frames(config, sizes[0], 5, 0.3, rng)
    batch = Batch(config)
    batch.load(layers)
    batch.begin_sequence()
    for frame in frames:
        batch.frame(frame, layers)
    results = run(batch)
    no_device_errors(results)
    got = frames_of(results)
    model = GoldenModel(config, layers)
    assert len(got) == len(frames)
    for t, (result, frame) in enumerate(zip(got, frames)):
        assert_frame_equal(result, model.frame(frame), f"frame {t}")
    # The sequence really exercises reuse: partial changes, counted per input.
    assert got[0].changed_inputs[0] == sizes[0]
    for t in range(1, len(frames)):
        assert got[t].changed_inputs[0] == changed_count(frames, t)
    assert 0 < sum(result.changed_inputs[0] for result in got[1:]) < 4 * sizes[0]
    if len(sizes) > 2:
        assert any(result.changed_inputs[1] < sizes[1] for result in got[1:])


def test_reuse_and_baseline_give_identical_outputs():
    sizes = [10, 9, 6, 3]
    rng = np.random.default_rng(11)
    layers = random_network(CONFIG, sizes, rng)
    frames = similar_frames(CONFIG, sizes[0], 4, 0.25, rng)
    batch = Batch(CONFIG)
    batch.load(layers)
    for baseline in (False, True):
        batch.set_mode(baseline=baseline)
        batch.begin_sequence()
        for frame in frames:
            batch.frame(frame, layers)
    results = run(batch)
    no_device_errors(results)
    got = frames_of(results)
    reuse, baseline = got[:len(frames)], got[len(frames):]
    model = GoldenModel(CONFIG, layers)
    model.baseline = True
    for t, (with_reuse, without, frame) in enumerate(zip(reuse, baseline, frames)):
        np.testing.assert_array_equal(with_reuse.outputs, without.outputs)
        np.testing.assert_array_equal(without.changed_inputs, sizes[:-1])
        np.testing.assert_array_equal(
            without.macs, np.multiply(sizes[:-1], sizes[1:]))
        assert_frame_equal(without, model.frame(frame), f"baseline frame {t}")
    assert sum(r.cycles for r in reuse) < sum(r.cycles for r in baseline)


def test_sequence_controls_reset_and_keep_reuse():
    """BEGIN_SEQUENCE mid-sequence computes from scratch, a repeated frame changes nothing,
    and every SET_* / LOAD_* command makes the next frame compute from scratch."""
    sizes = [10, 9, 3]
    rng = np.random.default_rng(5)
    layers = random_network(CONFIG, sizes, rng)
    frames = similar_frames(CONFIG, sizes[0], 12, 0.3, rng)
    commands = load_commands(CONFIG, layers)
    model = GoldenModel(CONFIG, layers)
    batch = Batch(CONFIG)
    batch.load(layers)
    expected = []          # golden results, in order
    scratch = []           # whether each frame must compute from scratch
    status_flags = []      # expected STATUS flags, in order

    def frame(t, from_scratch):
        if from_scratch:
            model.begin_sequence()
        batch.frame(frames[t], layers)
        expected.append(model.frame(frames[t]))
        scratch.append(from_scratch)

    def status(flags):
        batch.status()
        status_flags.append(flags | REUSE_BUILD)

    frame(0, True)
    frame(1, False)
    frame(1, False)                                # the same frame again
    batch.begin_sequence()
    frame(2, True)
    frame(3, False)
    # Each command that marks the reuse state stale, then (when it also invalidated the
    # network) SET_NET, then a frame that must start from scratch.
    batch.set_mode(baseline=False)
    status(NET_VALID)
    frame(4, True)
    frame(5, False)
    resend(batch, commands, Opcode.SET_NET)
    status(NET_VALID)
    frame(6, True)
    next_frame = 7
    for opcode, layer in ((Opcode.SET_LAYER, 1), (Opcode.LOAD_CENTROIDS, 1),
                          (Opcode.LOAD_WEIGHTS, 0), (Opcode.LOAD_BIASES, 1)):
        resend(batch, commands, opcode, layer)
        status(0)
        resend(batch, commands, Opcode.SET_NET)
        frame(next_frame, True)
        next_frame += 1
    results = run(batch)
    no_device_errors(results)
    got = frames_of(results)
    assert [status["flags"] for status in statuses_of(results)] == status_flags

    assert len(got) == len(expected)
    for t, (result, want, from_scratch) in enumerate(zip(got, expected, scratch)):
        assert_frame_equal(result, want, f"frame {t}")
        if from_scratch:
            np.testing.assert_array_equal(result.changed_inputs, sizes[:-1])
    # The repeated frame: nothing changed in any layer, outputs as before, no MACs.
    repeated = got[2]
    np.testing.assert_array_equal(repeated.changed_inputs, [0, 0])
    np.testing.assert_array_equal(repeated.macs, [0, 0])
    np.testing.assert_array_equal(repeated.outputs, got[1].outputs)
    # The frame after the one that followed BEGIN_SEQUENCE reuses again.
    assert got[4].changed_inputs[0] == changed_count(frames, 3)


def test_reloading_another_network_starts_afresh():
    """A second network loaded over the first computes exactly like a fresh device."""
    rng = np.random.default_rng(8)
    first = random_network(CONFIG, [10, 9, 3], rng)
    second = random_network(CONFIG, [6, 5, 7, 2], rng)
    frames_first = similar_frames(CONFIG, 10, 2, 0.3, rng)
    frames_second = similar_frames(CONFIG, 6, 3, 0.3, rng)
    batch = Batch(CONFIG)
    batch.load(first)
    for frame in frames_first:
        batch.frame(frame, first)
    batch.load(second)
    for frame in frames_second:
        batch.frame(frame, second)
    results = run(batch)
    no_device_errors(results)
    got = frames_of(results)[len(frames_first):]
    model = GoldenModel(CONFIG, second)
    for t, (result, frame) in enumerate(zip(got, frames_second)):
        assert_frame_equal(result, model.frame(frame), f"frame {t}")


# -- STATUS -----------------------------------------------------------------------------------

def test_status_reports_config_flags_and_errors():
    config = CONFIG
    rng = np.random.default_rng(3)
    layers = random_network(config, [6, 5, 3], rng)
    frames = similar_frames(config, 6, 3, 0.3, rng)
    commands = load_commands(config, layers)
    batch = Batch(config)
    flags = []

    def status(expected_flags):
        batch.status()
        flags.append(expected_flags | REUSE_BUILD)

    status(0)                                         # power-on
    batch.load(layers)
    status(NET_VALID)
    batch.frame(frames[0], layers)
    status(NET_VALID | REUSE_VALID)
    batch.begin_sequence()
    status(NET_VALID)
    batch.frame(frames[1], layers)
    status(NET_VALID | REUSE_VALID)
    batch.set_mode(baseline=True)
    status(NET_VALID | BASELINE)
    batch.set_mode(baseline=False)
    status(NET_VALID)
    batch.frame(frames[2], layers)
    batch.raw([header(0x42)], 0x42)                    # error 1
    status(NET_VALID | REUSE_VALID)
    batch.raw([header(Opcode.STATUS, 0, 1), 0], Opcode.STATUS)   # error 2
    resend(batch, commands, Opcode.SET_LAYER, 1)
    status(0)
    batch.raw([header(Opcode.FRAME, 0, 2), 0, 0], Opcode.FRAME)  # error 3: NOT_READY
    resend(batch, commands, Opcode.SET_NET)
    status(NET_VALID)
    results = run(batch)
    statuses = statuses_of(results)
    assert [status["flags"] for status in statuses] == flags
    assert [status["errors"] for status in statuses] == [0] * 7 + [1, 2, 3]
    assert len(errors_of(results)) == 3
    magic = int.from_bytes(b"RACC", "big")
    for status in statuses:
        assert status["magic"] == magic
        assert status["version"] == 4
        parameters = [field.name for field in dataclasses.fields(AccelConfig)]
        assert set(protocol.STATUS_FIELDS) == {"magic", "version", "flags", "errors",
                                               *parameters} - {"reuse"}
        for name in parameters:
            if name != "reuse":
                assert status[name] == getattr(config, name), name


def test_status_reuse_flag_is_clear_in_baseline_mode():
    """Flags bit 1 means "the next frame reuses" (hw/protocol.py); in baseline mode the next
    frame never reuses, so the bit must stay clear after a baseline frame."""
    rng = np.random.default_rng(4)
    layers = random_network(CONFIG, [6, 3], rng)
    frames = similar_frames(CONFIG, 6, 2, 0.3, rng)
    batch = Batch(CONFIG)
    batch.load(layers)
    batch.set_mode(baseline=True)
    batch.frame(frames[0], layers)
    batch.status()
    batch.frame(frames[1], layers)
    results = run(batch)
    no_device_errors(results)
    after = frames_of(results)[1]
    assert after.changed_inputs[0] == 6                # the next frame did not reuse ...
    # ... as STATUS says.
    assert statuses_of(results)[0]["flags"] == NET_VALID | BASELINE | REUSE_BUILD


# -- response packing -------------------------------------------------------------------------

def pack_fields(values, width: int, stream_width: int) -> list[int]:
    """Fields little-endian in W-bit words, unused bits zero (the protocol docstring)."""
    per_word = stream_width // width
    words = []
    for first in range(0, len(values), per_word):
        word = 0
        for slot, value in enumerate(values[first:first + per_word]):
            word |= (int(value) & ((1 << width) - 1)) << (slot * width)
        words.append(word)
    return words


@pytest.mark.parametrize("stream_width", [32, 64, 96])
def test_responses_are_packed_with_unused_bits_zero(stream_width):
    """The raw FRAME and STATUS response words, packed independently of the code under test:
    header, output rows, counter row (3 layers: 16 fields) and status row (15 fields); every
    bit a field does not use is zero."""
    config = AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=3,
                         stream_width=stream_width)
    rng = np.random.default_rng(6)
    layers = random_network(config, [7, 6, 5, 3], rng)
    frame = similar_frames(config, 7, 1, 0.0, rng)[0]
    batch = Batch(config)
    batch.load(layers)
    batch.frame(frame, layers)
    batch.raw([header(0x42)], 0x42)
    batch.status()
    responses = split_responses(simulate(batch).words, len(batch.expected))
    frame_response, status_response = responses[-3], responses[-1]

    want = GoldenModel(config, layers).frame(frame)
    outputs = np.zeros(4, np.int64)
    outputs[:3] = want.outputs
    counters = [want.cycles]
    for layer in range(3):
        counters += [int(getattr(want, name)[layer]) for name in COUNTERS]
    payload = pack_fields(outputs, config.act_width, stream_width) + \
        pack_fields(counters, 32, stream_width)
    assert frame_response == [header(Opcode.FRAME | 0x80, 0, len(payload))] + payload

    # magic, version 4, lanes .. weight_bank_width, max_kernel 0, max_height and max_width 1,
    # buffer_depth, state_depth and sum_depth 0 (derived), flags, one error
    status = [int.from_bytes(b"RACC", "big"), 4, 4, 16, 16, 8, 8, 16, 3, 32, 512,
              stream_width, 4, 0, 1, 1, 0, 0, 0, NET_VALID | REUSE_VALID | REUSE_BUILD, 1]
    payload = pack_fields(status, 32, stream_width)
    assert status_response == [header(Opcode.STATUS | 0x80, 0, len(payload))] + payload


def test_status_of_a_128_cluster_device():
    """clusters = 128 is the largest legal configuration; the simulated device answers STATUS."""
    config = AccelConfig(lanes=4, clusters=128, max_neurons=32, weight_depth=512,
                         max_layers=3)
    batch = Batch(config)
    batch.status()
    status = run(batch)[0]
    assert status["clusters"] == 128
    assert status["flags"] == REUSE_BUILD


def test_header_bits_above_32_are_ignored():
    """With 64-bit words, bits 63..32 of a header do not affect the command."""
    config = SEQUENCE_CASES["stream_width_64"][0]
    rng = np.random.default_rng(12)
    layers = random_network(config, [6, 3], rng)
    frame = similar_frames(config, 6, 1, 0.0, rng)[0]
    batch = Batch(config)
    batch.load(layers)
    frame_header = len(batch.words)
    batch.frame(frame, layers)
    assert protocol.parse_header(batch.words[frame_header])[0] == Opcode.FRAME
    batch.words[frame_header] |= 0xDEADBEEF << 32
    batch.raw([header(Opcode.STATUS) | 0x12345678 << 32], Opcode.STATUS)
    results = run(batch)
    no_device_errors(results)
    assert_frame_equal(frames_of(results)[0], GoldenModel(config, layers).frame(frame), "frame")
    assert statuses_of(results)[0]["stream_width"] == 64


# -- error paths ------------------------------------------------------------------------------

ERROR_SIZES = [10, 9, 3]   # two layers of a max_layers=3 device; layer 2 stays unconfigured

# A payload made of words that would be valid commands if the hardware parsed them: a drained
# payload that slipped into the command stream would add responses and break the framing.
DECOY = [header(Opcode.STATUS), header(Opcode.BEGIN_SEQUENCE), header(Opcode.STATUS)]


def control(*fields: int) -> list[int]:
    return pack_fields(fields, 32, 32)


def rejected(opcode: str, error: str, text: str) -> str:
    return f"the accelerator rejected {opcode}: {error} ({text})"


LENGTH = "payload length does not match the command"
LAYER = "layer index beyond the hardware's max_layers"
ADDRESS = "memory rows beyond the hardware's capacity"
PARAMETER = "layer or mode parameter out of range"

# Words per payload row of CONFIG with 32-bit words: 16 centroids of 16 bits take 8 words, a
# weight row (4 x 8 bits) 1 word, a bias row (4 x 24 bits, one per word) 4 words, an index row
# (4 x 4 bits) 1 word.
CENTROID_WORDS, WEIGHT_WORDS, BIAS_WORDS = 8, 1, 4

ERROR_CASES = {
    "unknown_opcode_with_payload": (
        0x42, [header(0x42, 0, 3)] + DECOY, Error.UNKNOWN_OPCODE,
        "the accelerator rejected opcode 0x42: UNKNOWN_OPCODE (unknown opcode)"),
    "opcode_zero": (
        0x00, [header(0x00, 0, 0)], Error.UNKNOWN_OPCODE,
        "the accelerator rejected opcode 0x00: UNKNOWN_OPCODE (unknown opcode)"),
    "status_with_payload": (
        Opcode.STATUS, [header(Opcode.STATUS, 0, 3)] + DECOY, Error.BAD_LENGTH,
        rejected("STATUS", "BAD_LENGTH", LENGTH)),
    "begin_sequence_with_payload": (
        Opcode.BEGIN_SEQUENCE, [header(Opcode.BEGIN_SEQUENCE, 0, 1), header(Opcode.STATUS)],
        Error.BAD_LENGTH, rejected("BEGIN_SEQUENCE", "BAD_LENGTH", LENGTH)),
    "set_mode_without_payload": (
        Opcode.SET_MODE, [header(Opcode.SET_MODE, 0, 0)], Error.BAD_LENGTH,
        rejected("SET_MODE", "BAD_LENGTH", LENGTH)),
    "set_mode_too_long": (
        Opcode.SET_MODE, [header(Opcode.SET_MODE, 0, 2), 0, header(Opcode.STATUS)],
        Error.BAD_LENGTH, rejected("SET_MODE", "BAD_LENGTH", LENGTH)),
    "set_net_too_long": (
        Opcode.SET_NET, [header(Opcode.SET_NET, 0, 2), 2, header(Opcode.STATUS)],
        Error.BAD_LENGTH, rejected("SET_NET", "BAD_LENGTH", LENGTH)),
    "set_layer_short": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 3)] + control(10, 9, 0),
        Error.BAD_LENGTH, rejected("SET_LAYER", "BAD_LENGTH", LENGTH)),
    "load_centroids_short": (
        Opcode.LOAD_CENTROIDS,
        [header(Opcode.LOAD_CENTROIDS, 0, CENTROID_WORDS - 1)] + DECOY + [0] * 4,
        Error.BAD_LENGTH, rejected("LOAD_CENTROIDS", "BAD_LENGTH", LENGTH)),
    "load_centroids_long": (
        Opcode.LOAD_CENTROIDS,
        [header(Opcode.LOAD_CENTROIDS, 0, CENTROID_WORDS + 1)] + [0] * 6 + DECOY,
        Error.BAD_LENGTH, rejected("LOAD_CENTROIDS", "BAD_LENGTH", LENGTH)),
    "load_weights_rows_mismatch": (
        Opcode.LOAD_WEIGHTS,
        [header(Opcode.LOAD_WEIGHTS, 0, 2 + WEIGHT_WORDS)] + control(0, 2) + [0],
        Error.BAD_LENGTH, rejected("LOAD_WEIGHTS", "BAD_LENGTH", LENGTH)),
    "load_weights_without_control_row": (
        Opcode.LOAD_WEIGHTS, [header(Opcode.LOAD_WEIGHTS, 0, 1), 0], Error.BAD_LENGTH,
        rejected("LOAD_WEIGHTS", "BAD_LENGTH", LENGTH)),
    "load_biases_rows_mismatch": (
        Opcode.LOAD_BIASES,
        [header(Opcode.LOAD_BIASES, 0, 2 + BIAS_WORDS - 1)] + control(0, 1) + DECOY,
        Error.BAD_LENGTH, rejected("LOAD_BIASES", "BAD_LENGTH", LENGTH)),
    "frame_short": (
        Opcode.FRAME, [header(Opcode.FRAME, 0, 2), 0, 0], Error.BAD_LENGTH,
        rejected("FRAME", "BAD_LENGTH", LENGTH)),
    "frame_long": (
        Opcode.FRAME, [header(Opcode.FRAME, 0, 4)] + DECOY + [0], Error.BAD_LENGTH,
        rejected("FRAME", "BAD_LENGTH", LENGTH)),
    "set_layer_beyond_max_layers": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 3, 4)] + control(3, 4, 200, 6),
        Error.BAD_LAYER, rejected("SET_LAYER", "BAD_LAYER", LAYER)),
    "load_centroids_beyond_max_layers": (
        Opcode.LOAD_CENTROIDS,
        [header(Opcode.LOAD_CENTROIDS, 3, CENTROID_WORDS)] + list(range(CENTROID_WORDS)),
        Error.BAD_LAYER, rejected("LOAD_CENTROIDS", "BAD_LAYER", LAYER)),
    "load_centroids_layer_255": (
        Opcode.LOAD_CENTROIDS,
        [header(Opcode.LOAD_CENTROIDS, 255, CENTROID_WORDS)] + list(range(CENTROID_WORDS)),
        Error.BAD_LAYER, rejected("LOAD_CENTROIDS", "BAD_LAYER", LAYER)),
    "load_biases_beyond_max_layers": (
        Opcode.LOAD_BIASES,
        [header(Opcode.LOAD_BIASES, 3, 2 + BIAS_WORDS)] + control(0, 1) + [1] * BIAS_WORDS,
        Error.BAD_LAYER, rejected("LOAD_BIASES", "BAD_LAYER", LAYER)),
    "load_weights_past_weight_depth": (
        Opcode.LOAD_WEIGHTS,
        [header(Opcode.LOAD_WEIGHTS, 0, 2 + 2 * WEIGHT_WORDS)] + control(511, 2) + [1, 1],
        Error.BAD_ADDRESS, rejected("LOAD_WEIGHTS", "BAD_ADDRESS", ADDRESS)),
    "load_weights_start_at_weight_depth": (
        Opcode.LOAD_WEIGHTS, [header(Opcode.LOAD_WEIGHTS, 0, 2)] + control(512, 0),
        Error.BAD_ADDRESS, rejected("LOAD_WEIGHTS", "BAD_ADDRESS", ADDRESS)),
    "load_biases_past_max_groups": (
        Opcode.LOAD_BIASES,
        [header(Opcode.LOAD_BIASES, 0, 2 + 2 * BIAS_WORDS)] + control(7, 2) + [1] * 8,
        Error.BAD_ADDRESS, rejected("LOAD_BIASES", "BAD_ADDRESS", ADDRESS)),
    "load_biases_start_at_max_groups": (
        Opcode.LOAD_BIASES,
        [header(Opcode.LOAD_BIASES, 0, 2 + BIAS_WORDS)] + control(8, 1) + [1] * 4,
        Error.BAD_ADDRESS, rejected("LOAD_BIASES", "BAD_ADDRESS", ADDRESS)),
    "set_layer_zero_inputs": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 4)] + control(0, 9, 0, 6),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_layer_zero_outputs": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 4)] + control(10, 0, 0, 6),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_layer_too_many_inputs": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 4)] + control(33, 9, 0, 6),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_layer_too_many_outputs": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 1, 4)] + control(9, 33, 30, 6),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_layer_shift_above_max_shift": (
        # max_shift = weight_width + centroid_width - 1 = 23
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 4)] + control(10, 9, 0, 24),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_layer_reserved_flag_bit_9": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 4)] + control(10, 9, 0, 6 | 1 << 9),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_layer_reserved_flag_bit_31": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 4)] + control(10, 9, 0, 6 | 1 << 31),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_layer_unknown_kind": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 4)] + control(10, 9, 0, 6 | 7 << 16),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_layer_unused_flag_byte": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 4)] + control(10, 9, 0, 6 | 1 << 24),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_layer_weight_base_at_depth": (
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 4)] + control(1, 1, 512, 6),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_layer_weights_past_depth": (
        # 10 inputs x 3 groups = 30 rows from row 483 end at 513 > 512
        Opcode.SET_LAYER, [header(Opcode.SET_LAYER, 0, 4)] + control(10, 9, 483, 6),
        Error.BAD_PARAMETER, rejected("SET_LAYER", "BAD_PARAMETER", PARAMETER)),
    "set_mode_reserved_bit": (
        Opcode.SET_MODE, [header(Opcode.SET_MODE, 0, 1)] + control(3),
        Error.BAD_PARAMETER, rejected("SET_MODE", "BAD_PARAMETER", PARAMETER)),
    "set_net_zero_layers": (
        Opcode.SET_NET, [header(Opcode.SET_NET, 0, 1)] + control(0),
        Error.BAD_PARAMETER, rejected("SET_NET", "BAD_PARAMETER", PARAMETER)),
    "set_net_beyond_max_layers": (
        Opcode.SET_NET, [header(Opcode.SET_NET, 0, 1)] + control(4),
        Error.BAD_PARAMETER, rejected("SET_NET", "BAD_PARAMETER", PARAMETER)),
    "set_net_unconfigured_layer": (
        Opcode.SET_NET, [header(Opcode.SET_NET, 0, 1)] + control(3),
        Error.BAD_NETWORK, rejected(
            "SET_NET", "BAD_NETWORK",
            "layers missing or not chained (inputs of layer l != outputs of l-1)")),
}


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_error_response_keeps_framing_and_state(case):
    """A rejected command is drained and answered with its error; it changes nothing: the
    following STATUS counts one error and shows the network and reuse state as before, and
    the following frame reuses the previous one exactly as the golden model does."""
    opcode, words, code, message = case
    rng = np.random.default_rng(9)
    layers = random_network(CONFIG, ERROR_SIZES, rng)
    frames = similar_frames(CONFIG, ERROR_SIZES[0], 2, 0.3, rng)
    batch = Batch(CONFIG)
    batch.load(layers)
    batch.frame(frames[0], layers)
    batch.raw(words, opcode)
    batch.status()
    batch.frame(frames[1], layers)
    results = run(batch)
    errors = errors_of(results)
    assert len(errors) == 1
    assert str(errors[0]) == message
    assert errors[0].error == code
    assert isinstance(results[-3], DeviceError)
    status = results[-2]
    assert status["errors"] == 1
    assert status["flags"] == NET_VALID | REUSE_VALID | REUSE_BUILD
    model = GoldenModel(CONFIG, layers)
    model.frame(frames[0])
    assert_frame_equal(results[-1], model.frame(frames[1]), "frame after the error")


def test_limits_are_accepted():
    """The largest legal values of each checked parameter are accepted (no off-by-one)."""
    batch = Batch(CONFIG)
    batch.raw([header(Opcode.SET_LAYER, 0, 4)] + control(5, 32, 0, 0), Opcode.SET_LAYER)
    batch.raw([header(Opcode.SET_LAYER, 1, 4)] + control(32, 32, 40, 0), Opcode.SET_LAYER)
    # 32 inputs x 8 groups from row 256 end exactly at weight_depth = 512; shift = 23.
    batch.raw([header(Opcode.SET_LAYER, 2, 4)] + control(32, 32, 512 - 32 * 8, 23 | 1 << 8),
              Opcode.SET_LAYER)
    batch.raw([header(Opcode.LOAD_WEIGHTS, 0, 3)] + control(511, 1) + [0x7F7F7F7F],
              Opcode.LOAD_WEIGHTS)
    batch.raw([header(Opcode.LOAD_BIASES, 2, 6)] + control(7, 1) + [1, 2, 3, 4],
              Opcode.LOAD_BIASES)
    batch.raw([header(Opcode.LOAD_CENTROIDS, 2, 8)] + [0] * 8, Opcode.LOAD_CENTROIDS)
    batch.raw([header(Opcode.SET_NET, 0, 1)] + control(3), Opcode.SET_NET)
    batch.raw([header(Opcode.SET_MODE, 0, 1)] + control(1), Opcode.SET_MODE)
    batch.status()
    results = run(batch)
    no_device_errors(results)
    assert results[-1]["errors"] == 0
    assert results[-1]["flags"] == NET_VALID | BASELINE | REUSE_BUILD


def test_not_ready_before_set_net():
    rng = np.random.default_rng(10)
    layers = random_network(CONFIG, ERROR_SIZES, rng)
    frames = similar_frames(CONFIG, ERROR_SIZES[0], 2, 0.3, rng)
    batch = Batch(CONFIG)
    batch.frame(frames[0], layers)                     # nothing loaded yet
    commands = load_commands(CONFIG, layers)
    for _, _, words in commands[:-1]:                  # everything but SET_NET
        batch.raw(words, Opcode(protocol.parse_header(words[0])[0]))
    batch.frame(frames[0], layers)                     # loaded, but no SET_NET
    resend(batch, commands, Opcode.SET_NET)
    batch.frame(frames[1], layers)
    results = run(batch)
    message = rejected("FRAME", "NOT_READY", "frame sent before a valid SET_NET")
    assert isinstance(results[0], DeviceError)
    assert str(results[0]) == message
    assert isinstance(results[-3], DeviceError)
    assert str(results[-3]) == message
    assert len(errors_of(results)) == 2
    assert_frame_equal(results[-1], GoldenModel(CONFIG, layers).frame(frames[1]), "frame")


@pytest.mark.parametrize("opcode", [Opcode.SET_LAYER, Opcode.LOAD_CENTROIDS,
                                    Opcode.LOAD_WEIGHTS, Opcode.LOAD_BIASES])
def test_not_ready_after_a_command_invalidated_the_network(opcode):
    rng = np.random.default_rng(13)
    layers = random_network(CONFIG, ERROR_SIZES, rng)
    frames = similar_frames(CONFIG, ERROR_SIZES[0], 3, 0.3, rng)
    commands = load_commands(CONFIG, layers)
    batch = Batch(CONFIG)
    batch.load(layers)
    batch.frame(frames[0], layers)
    resend(batch, commands, opcode, 0)
    batch.frame(frames[1], layers)
    resend(batch, commands, Opcode.SET_NET)
    batch.frame(frames[2], layers)
    results = run(batch)
    errors = errors_of(results)
    assert [str(error) for error in errors] == [
        rejected("FRAME", "NOT_READY", "frame sent before a valid SET_NET")]
    assert isinstance(results[-3], DeviceError)
    model = GoldenModel(CONFIG, layers)
    model.frame(frames[0])
    model.begin_sequence()
    assert_frame_equal(results[-1], model.frame(frames[2]), "frame after SET_NET")


def test_bad_network_on_chain_mismatch():
    """SET_LAYER 1 with 8 inputs after a layer 0 of 9 outputs: SET_NET refuses the chain;
    restoring layer 1 and SET_NET again gives a working network."""
    rng = np.random.default_rng(14)
    layers = random_network(CONFIG, ERROR_SIZES, rng)
    frames = similar_frames(CONFIG, ERROR_SIZES[0], 2, 0.3, rng)
    commands = load_commands(CONFIG, layers)
    batch = Batch(CONFIG)
    batch.load(layers)
    batch.frame(frames[0], layers)
    batch.raw([header(Opcode.SET_LAYER, 1, 4)] + control(8, 3, 30, 6), Opcode.SET_LAYER)
    batch.raw([header(Opcode.SET_NET, 0, 1)] + control(2), Opcode.SET_NET)
    batch.status()
    resend(batch, commands, Opcode.SET_LAYER, 1)
    resend(batch, commands, Opcode.SET_NET)
    batch.frame(frames[1], layers)
    results = run(batch)
    errors = errors_of(results)
    assert [str(error) for error in errors] == [rejected(
        "SET_NET", "BAD_NETWORK",
        "layers missing or not chained (inputs of layer l != outputs of l-1)")]
    assert errors[0].error == Error.BAD_NETWORK
    assert results[-4]["flags"] == REUSE_BUILD and results[-4]["errors"] == 1
    model = GoldenModel(CONFIG, layers)
    assert_frame_equal(results[-1], model.frame(frames[1]), "frame")


def test_header_promising_missing_words_times_out():
    """The host's own framing error, not a hang on a malformed command: a header whose
    length claims more payload than the host sends leaves the hardware waiting for the
    promised words (the protocol has no way to tell them from late ones), so the transport's
    timeout fires. Commands before it were answered normally."""
    batch = Batch(CONFIG)
    batch.status()
    batch.raw([header(Opcode.SET_MODE, 0, 3), 0], Opcode.SET_MODE)
    transport = AmaranthTransport(CONFIG, timeout=60)
    with pytest.raises(TimeoutError, match=re.escape(
            "no response word for 60 cycles: the accelerator hangs")):
        transport.exchange(batch.words, len(batch.expected))


# -- backpressure -----------------------------------------------------------------------------

@pytest.mark.parametrize("stall_input, stall_output, seed", [(0.3, 0.5, 1), (0.5, 0.3, 2)])
def test_random_backpressure_keeps_results_exact(stall_input, stall_output, seed):
    sizes = [10, 9, 6, 3]
    rng = np.random.default_rng(20 + seed)
    layers = random_network(CONFIG, sizes, rng)
    frames = similar_frames(CONFIG, sizes[0], 4, 0.3, rng)
    batch = Batch(CONFIG)
    batch.load(layers)
    batch.begin_sequence()
    for frame in frames[:2]:
        batch.frame(frame, layers)
    batch.raw([header(0x42, 0, 2), header(Opcode.STATUS), 0], 0x42)
    for frame in frames[2:]:
        batch.frame(frame, layers)
    batch.status()
    results = run(batch, stall_input=stall_input, stall_output=stall_output, seed=seed)
    model = GoldenModel(CONFIG, layers)
    for t, (result, frame) in enumerate(zip(frames_of(results), frames)):
        assert_frame_equal(result, model.frame(frame), f"frame {t}")
    assert len(frames_of(results)) == len(frames)
    assert [error.error for error in errors_of(results)] == [Error.UNKNOWN_OPCODE]
    assert results[-1]["errors"] == 1


# -- property ---------------------------------------------------------------------------------

@st.composite
def networks_and_sequences(draw):
    lanes = draw(st.sampled_from([1, 2, 4]))
    clusters = draw(st.sampled_from([2, 4, 16]))
    config = AccelConfig(lanes=lanes, clusters=clusters, max_neurons=12, weight_depth=512,
                         max_layers=3)
    sizes = draw(st.lists(st.integers(1, 12), min_size=2, max_size=4))
    seed = draw(st.integers(0, 2**32 - 1))
    count = draw(st.integers(2, 4))
    steps = []
    previous = None
    for _ in range(count):
        kind = draw(st.sampled_from(["new", "repeat", "begin"]) if previous else st.just("new"))
        if kind == "repeat":
            indices = previous
        else:
            indices = draw(st.lists(st.integers(0, clusters - 1), min_size=sizes[0],
                                    max_size=sizes[0]))
        steps.append((kind == "begin", indices))
        previous = indices
    return config, sizes, seed, steps


@settings(max_examples=6, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(networks_and_sequences())
def test_property_rtl_matches_golden_model(case):
    config, sizes, seed, steps = case
    layers = random_network(config, sizes, np.random.default_rng(seed), shift=3)
    model = GoldenModel(config, layers)
    batch = Batch(config)
    batch.load(layers)
    expected = []
    for begin, indices in steps:
        if begin:
            batch.begin_sequence()
            model.begin_sequence()
        batch.frame(np.array(indices), layers)
        expected.append(model.frame(np.array(indices)))
    results = run(batch)
    no_device_errors(results)
    got = frames_of(results)
    assert len(got) == len(expected)
    for t, (result, want) in enumerate(zip(got, expected)):
        assert_frame_equal(result, want, f"frame {t}")


@pytest.mark.parametrize("component", [
    "hw.top.Accelerator", "hw.tile.ProcessingTile", "hw.core.quantizer.CentroidQuantizer",
    "hw.core.change_detector.ChangeDetector", "hw.core.serializer.InputSerializer",
    "hw.core.mac.DeltaMacArray", "hw.core.iobuffer.IOBuffer", "hw.core.activation.Activation",
    "hw.layers.dense.DenseAddressGenerator", "hw.core.row_reader.RowReader",
])
def test_components_reject_a_config_that_is_not_an_accel_config(component):
    import importlib
    module, name = component.rsplit(".", 1)
    cls = getattr(importlib.import_module(f"reuse_accel.{module}"), name)
    extra = {"CentroidQuantizer": {"tag_shape": 1},
             "InputSerializer": {"lane_shape": 8}}.get(name, {})
    message = "config must be an AccelConfig, not {'lanes': 4}"
    with pytest.raises(TypeError, match=re.escape(message)):
        cls({"lanes": 4}, **extra)
    # The rejected, half-built component is never elaborated; collect it here, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        gc.collect()


def test_clamped_outputs_are_counted_on_real_lanes_only():
    """Outputs beyond the activation range are clamped and counted, high and low; padding
    lanes of the last output group never count, whatever the host loaded there."""
    config = CONFIG
    rng = np.random.default_rng(21)
    layers = random_network(config, [6, 7, 5], rng)
    # Layer 0 (ReLU): huge positive biases clamp high, huge negative ones are ReLU zeros.
    layers[0].biases[:] = [config.bias_max, config.bias_min] * 3 + [0]
    # Layer 1 (identity): both ends clamp.
    layers[1].biases[:] = [config.bias_max, config.bias_min, 0, config.bias_max, 0]
    frames = similar_frames(config, 6, 3, 0.5, rng)
    batch = Batch(config)
    batch.load(layers)
    # Garbage biases in the padding lanes of layer 1's last group (outputs 5..7).
    padded = np.full((1, config.lanes), config.bias_max)
    padded[0, 0] = layers[1].biases[4]
    batch._rows(Opcode.LOAD_BIASES, 1, padded, config.bias_width, 1)
    batch._command(Opcode.SET_NET, payload=batch._control(2))
    batch.begin_sequence()
    for frame in frames:
        batch.frame(frame, layers)
    results = frames_of(run(batch))
    model = GoldenModel(config, layers)
    for t, (result, frame) in enumerate(zip(results, frames)):
        expected = model.frame(frame)
        assert_frame_equal(result, expected, f"frame {t}")
    # Shifting the largest bias by at most 23 bits still exceeds 16-bit activations.
    assert results[0].saturated_outputs[0] >= 3
    assert results[0].saturated_outputs[1] >= 3
