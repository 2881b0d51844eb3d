"""The generated Verilog in Verilator and Icarus Verilog, through cocotb
(:class:`reuse_accel.sim.cocotb.transport.CocotbTransport`).

Every exchange is checked against :class:`GoldenModel`: bit-exact outputs, exact counters and
exact frame cycle counts, and, cycle for cycle, against :class:`AmaranthTransport`. Each
simulator is built once per configuration (and kept between sessions while the gateware does
not change); each exchange is one simulator run, so the tests share a few long exchanges.

Frame latency
-------------
Without backpressure a FRAME's response header leaves exactly ``FRAME_LATENCY + cycles``
cycles after the FRAME's last payload word, ``cycles`` being the frame's own cycle count (the
tile's ``frame_cycles`` counter, which the model predicts). From ``hw/frontend/`` and
``hw/tile.py``, with the last word accepted at edge ``T``:

- edge ``T + 1``: the payload router, its last word taken, pulses ``tile.start``; the tile
  leaves IDLE and clears its counters;
- edges ``T + 2 .. D``: the tile is busy (SETUP, SCAN, READOUT per layer, then DONE) and
  ``frame_cycles`` counts each of these ``cycles = D - T - 1`` edges; at edge ``D`` the router
  sees ``done`` and moves to REPLY;
- edge ``D + 1``: the responder takes the reply and registers the header into ``o.payload``;
  ``o.valid`` rises;
- edge ``D + 2``: the header transfers (the host is ready).

So the header moves at ``T + cycles + 3``.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.networks import random_network, similar_frames
from support.rtl import NETWORKS, SIMULATORS, SMALL, WIDE

from reuse_accel.hw import protocol
from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.frontend import FRAME_RESPONSE_LATENCY
from reuse_accel.hw.protocol import Opcode
from reuse_accel.sim.amaranth import AmaranthTransport
from reuse_accel.sim.cocotb import transport as cocotb_transport
from reuse_accel.sim.cocotb.bench import payload_length
from reuse_accel.sim.cocotb.transport import CocotbTransport, SimulationError
from reuse_accel.sim.model import FrameResult, GoldenModel
from reuse_accel.sw.commands import Batch, DeviceError, split_responses
from reuse_accel.sw.transports import Exchange

pytestmark = pytest.mark.rtl

FRAME_LATENCY = FRAME_RESPONSE_LATENCY
"""Cycles of a FRAME beyond its own cycle count: start, output register, transfer."""


COUNTERS = ("layer_cycles", "changed_inputs", "out_of_range", "weight_rows", "macs",
            "saturated_outputs")


# -- helpers ----------------------------------------------------------------------------------

class Script:
    """Commands for the accelerator, with what the golden model predicts for each of them."""

    def __init__(self, config: AccelConfig, layers):
        self.config = config
        self.layers = layers
        self.batch = Batch(config)
        self.model = GoldenModel(config, layers)
        self.predicted: list[FrameResult | None] = []   # per command
        self.last_words: dict[int, int] = {}            # FRAME command -> its last word
        self.labels: dict[int, str] = {}                # FRAME command -> description

    def _added(self) -> None:
        self.predicted += [None] * (len(self.batch.expected) - len(self.predicted))

    def load(self) -> None:
        self.batch.load(self.layers)
        self.model.begin_sequence()
        self._added()

    def begin_sequence(self) -> None:
        self.batch.begin_sequence()
        self.model.begin_sequence()
        self._added()

    def set_mode(self, *, baseline: bool) -> None:
        # SET_MODE also makes the reuse state stale: the next frame starts from scratch.
        self.batch.set_mode(baseline=baseline)
        self.model.set_mode(baseline=baseline)
        self._added()

    def status(self) -> None:
        self.batch.status()
        self._added()

    def raw(self, words: list[int], opcode: int) -> None:
        self.batch.raw(words, opcode)
        self._added()

    def frame(self, indices, label: str) -> int:
        """A FRAME command; returns its command number."""
        self.batch.frame(indices, self.layers)
        number = len(self.batch.expected) - 1
        self.predicted.append(self.model.frame(indices))
        self.last_words[number] = len(self.batch.words) - 1
        self.labels[number] = label
        return number

    def frames(self, frames, label: str) -> list[int]:
        return [self.frame(indices, f"{label} frame {t}") for t, indices in enumerate(frames)]


def decode(script: Script, exchange: Exchange) -> list:
    """One result per command: FrameResult, dict (STATUS), None, or the DeviceError raised."""
    responses = split_responses(exchange.words, len(script.batch.expected))
    results = []
    for expected, response in zip(script.batch.expected, responses):
        single = Batch(script.config, expected=[expected])
        try:
            results.append(single.decode([response])[0])
        except DeviceError as error:
            results.append(error)
    return results


def header_positions(script: Script, exchange: Exchange) -> list[int]:
    """Index in the response words of each command's response header."""
    responses = split_responses(exchange.words, len(script.batch.expected))
    return list(np.cumsum([0] + [len(response) for response in responses[:-1]]))


def assert_frame_equal(got, want: FrameResult, label: str) -> None:
    assert isinstance(got, FrameResult), f"{label}: got {got!r}"
    assert got.cycles == want.cycles, f"{label}: cycles {got.cycles} != {want.cycles}"
    np.testing.assert_array_equal(got.outputs, want.outputs, err_msg=f"{label}: outputs")
    for name in COUNTERS:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name),
                                      err_msg=f"{label}: {name}")


def assert_matches_model(script: Script, results: list) -> None:
    for number, want in enumerate(script.predicted):
        if want is not None:
            assert_frame_equal(results[number], want, script.labels[number])
        else:
            assert not isinstance(results[number], DeviceError), str(results[number])


def assert_frame_latency(script: Script, exchange: Exchange) -> None:
    headers = header_positions(script, exchange)
    for number, last_word in script.last_words.items():
        latency = exchange.output_cycles[headers[number]] - exchange.input_cycles[last_word]
        assert latency == FRAME_LATENCY + script.predicted[number].cycles, \
            f"{script.labels[number]}: header {latency} cycles after the last word, " \
            f"{script.predicted[number].cycles} frame cycles"


def all_inputs(layers) -> list[int]:
    return [layer.inputs for layer in layers]


def sequence_script(config: AccelConfig) -> tuple[Script, dict[str, list[int]]]:
    """A network, then sequences of every similarity, a restart inside a sequence, and the same
    frames in baseline and in reuse mode. Returns the script and its FRAME commands by part."""
    rng = np.random.default_rng(2024 + config.lanes)
    layers = random_network(config, NETWORKS[config], rng)
    inputs = layers[0].inputs
    script = Script(config, layers)
    parts = {}
    script.load()
    for change in (0.0, 0.1, 0.5, 1.0):
        script.begin_sequence()
        frames = similar_frames(config, inputs, 4, change, rng)
        parts[f"change {change}"] = script.frames(frames, f"change {change}")
    restart = similar_frames(config, inputs, 4, 0.1, rng)
    parts["restart"] = script.frames(restart[:2], "restart")
    script.begin_sequence()
    parts["restart"] += script.frames(restart[2:], "restarted")
    shared = similar_frames(config, inputs, 3, 0.3, rng)
    script.set_mode(baseline=True)
    parts["baseline"] = script.frames(shared, "baseline")
    script.set_mode(baseline=False)
    parts["reuse"] = script.frames(shared, "reuse")
    script.status()
    return script, parts


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=SIMULATORS)
def simulator(request) -> str:
    return request.param


@pytest.fixture(scope="module", params=[SMALL, WIDE], ids=["small", "wide"])
def config(request) -> AccelConfig:
    return request.param


@pytest.fixture(scope="module")
def transport(rtl_build_root, config, simulator):
    """Makes transports of this config and simulator; the first one builds."""
    def make(**options) -> CocotbTransport:
        return CocotbTransport(config, simulator, build_dir=rtl_build_root, **options)
    make().build()
    return make


@pytest.fixture(scope="module")
def sequences(config):
    return sequence_script(config)


@pytest.fixture(scope="module")
def sequence_run(transport, sequences):
    """The sequence script through the simulator, without backpressure."""
    script, _ = sequences
    exchange = transport().exchange(script.batch.words, len(script.batch.expected))
    return exchange, decode(script, exchange)


@pytest.fixture(scope="module")
def amaranth_sequence_run(sequences):
    script, _ = sequences
    return AmaranthTransport(script.config).exchange(script.batch.words,
                                                     len(script.batch.expected))


# -- against the golden model -----------------------------------------------------------------

def test_sequences_match_model(sequences, sequence_run):
    script, _ = sequences
    assert_matches_model(script, sequence_run[1])


def test_first_frames_count_every_input(sequences, sequence_run):
    script, parts = sequences
    results = sequence_run[1]
    firsts = [frames[0] for name, frames in parts.items() if name.startswith("change")]
    for number in firsts + [parts["restart"][2], parts["reuse"][0]]:
        np.testing.assert_array_equal(results[number].changed_inputs, all_inputs(script.layers),
                                      err_msg=script.labels[number])


def test_identical_frames_change_nothing(sequences, sequence_run):
    script, parts = sequences
    results = sequence_run[1]
    first, *repeats = parts["change 0.0"]
    for number in repeats:
        np.testing.assert_array_equal(results[number].changed_inputs, 0)
        np.testing.assert_array_equal(results[number].macs, 0)
        np.testing.assert_array_equal(results[number].outputs, results[first].outputs)
        assert results[number].cycles < results[first].cycles


def test_baseline_mode_recomputes_everything(sequences, sequence_run):
    script, parts = sequences
    results = sequence_run[1]
    for baseline, reuse in zip(parts["baseline"], parts["reuse"]):
        np.testing.assert_array_equal(results[baseline].outputs, results[reuse].outputs)
        np.testing.assert_array_equal(results[baseline].changed_inputs,
                                      all_inputs(script.layers))
    later = parts["reuse"][1:]
    assert sum(results[n].cycles for n in later) < \
        sum(results[n].cycles for n in parts["baseline"][1:])
    status = results[-1]
    assert status["flags"] == (protocol.STATUS_FLAG_NET_VALID | protocol.STATUS_FLAG_REUSE_VALID
                               | protocol.STATUS_FLAG_REUSE_BUILD)
    assert status["errors"] == 0


def test_frame_latency(sequences, sequence_run):
    script, _ = sequences
    assert_frame_latency(script, sequence_run[0])


def test_frame_latency_in_amaranth(sequences, amaranth_sequence_run):
    script, _ = sequences
    assert_frame_latency(script, amaranth_sequence_run)


def test_same_cycles_as_amaranth(sequence_run, amaranth_sequence_run):
    assert sequence_run[0] == amaranth_sequence_run


def test_backpressure(transport, config, simulator):
    """Random stalls on both streams: results exact (the counters ignore host stalls), and
    cycle for cycle the same run as in Amaranth's simulator."""
    rng = np.random.default_rng(7)
    layers = random_network(config, NETWORKS[config], rng)
    script = Script(config, layers)
    script.load()
    script.begin_sequence()
    script.frames(similar_frames(config, layers[0].inputs, 5, 0.3, rng), "stalled")
    script.status()
    options = dict(stall_input=0.3, stall_output=0.3, seed=11)
    exchange = transport(**options).exchange(script.batch.words, len(script.batch.expected))
    assert_matches_model(script, decode(script, exchange))
    if config == SMALL:
        assert exchange == AmaranthTransport(config, **options).exchange(
            script.batch.words, len(script.batch.expected))


def test_error_responses_keep_framing(transport, config):
    """Malformed commands are drained and answered with an error; what follows still works."""
    rng = np.random.default_rng(5)
    layers = random_network(config, NETWORKS[config], rng)
    frames = similar_frames(config, layers[0].inputs, 3, 0.3, rng)
    script = Script(config, layers)
    early = Batch(config)
    early.frame(frames[0], layers)
    script.raw(early.words, Opcode.FRAME)               # before any network
    script.load()
    unknown = len(script.batch.expected)
    script.raw([protocol.header(0x42, 0, 2), 0xDEAD, 0xBEEF], 0x42)
    script.begin_sequence()
    first = script.frame(frames[1], "after an unknown opcode")
    bad_length = len(script.batch.expected)
    length = protocol.expected_length(config, Opcode.FRAME, inputs=layers[0].inputs)
    script.raw([protocol.header(Opcode.FRAME, 0, length + 1)] + [0] * (length + 1),
               Opcode.FRAME)
    second = script.frame(frames[2], "after a bad length")
    script.status()
    exchange = transport().exchange(script.batch.words, len(script.batch.expected))
    results = decode(script, exchange)
    errors = {number: str(result) for number, result in enumerate(results)
              if isinstance(result, DeviceError)}
    assert errors == {
        0: "the accelerator rejected FRAME: NOT_READY (frame sent before a valid SET_NET)",
        unknown: "the accelerator rejected opcode 0x42: UNKNOWN_OPCODE (unknown opcode)",
        bad_length: "the accelerator rejected FRAME: BAD_LENGTH "
                    "(payload length does not match the command)",
    }
    for number in (first, second):
        assert_frame_equal(results[number], script.predicted[number], script.labels[number])
    assert results[-1]["errors"] == 3


# -- the transport itself ---------------------------------------------------------------------

def test_hang_is_reported(transport):
    """A command whose payload never comes: the bench stops after `timeout` idle cycles."""
    words = [protocol.header(Opcode.SET_MODE, 0, 2), 0]
    with pytest.raises(TimeoutError, match=r"no transfer for 300 cycles .* 2 of 2 command "
                                           r"words and 0 response words.*log .*sim\.log"):
        transport(timeout=300).exchange(words, 1)


def test_build_is_reused(rtl_build_root, monkeypatch):
    transport = CocotbTransport(SMALL, "verilator", build_dir=rtl_build_root)
    transport.build()
    artifact = transport.sim_dir / "reuse_accel"
    built = artifact.stat().st_mtime_ns
    monkeypatch.setattr(cocotb_transport, "_verified", {})
    fresh = CocotbTransport(SMALL, "verilator", build_dir=rtl_build_root)
    fresh.build()
    assert fresh.build_seconds == 0
    assert artifact.stat().st_mtime_ns == built


def test_missing_icarus_names_the_fix(monkeypatch):
    monkeypatch.setattr(cocotb_transport.shutil, "which", lambda name: None)
    with pytest.raises(SimulationError, match=r"apt-get install iverilog"):
        CocotbTransport(SMALL, "icarus")


def test_unknown_simulator():
    with pytest.raises(ValueError, match=r"simulator must be one of verilator, icarus, "
                                         r"not 'questa'"):
        CocotbTransport(SMALL, "questa")


def test_bench_reads_header_lengths_as_the_protocol_does():
    for length in (0, 1, 517, 0xFFFF):
        word = protocol.header(Opcode.FRAME | protocol.RESPONSE_OK, 3, length) | 0xABC << 32
        assert payload_length(word) == protocol.parse_header(word)[2] == length
