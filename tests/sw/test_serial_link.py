"""End to end over a serial line: :class:`SerialTransport` (pyserial) talks through a
pseudo-terminal to the UART-wrapped accelerator simulated in Verilator
(:class:`PtySimulation`), on a clean line and on a line that drops, corrupts and truncates
bytes in both directions. Results are checked bit for bit against :class:`GoldenModel`."""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest
from support.networks import random_network, similar_frames

from reuse_accel.hw import protocol
from reuse_accel.hw.config import AccelConfig
from reuse_accel.sim.model import FrameResult, GoldenModel
from reuse_accel.sim.pty import Fault, PtySimulation
from reuse_accel.sw.commands import Batch, split_responses
from reuse_accel.sw.serial_link import LinkError, SerialTransport

pytestmark = pytest.mark.rtl

CONFIG = AccelConfig(lanes=2, max_neurons=32, weight_depth=256, max_layers=2)
SIZES = [12, 9, 5]
LINK = {"clocks_per_bit": 8, "chunk": 16, "fifo_depth": 64}
COUNTERS = ("layer_cycles", "changed_inputs", "out_of_range", "weight_rows", "macs",
            "saturated_outputs")


@pytest.fixture
def simulation(rtl_build_root):
    def make(**options):
        return PtySimulation(CONFIG, build_dir=rtl_build_root, **LINK, **options)
    return make


def workload(seed: int, frames: int = 5):
    rng = np.random.default_rng(seed)
    layers = random_network(CONFIG, SIZES, rng)
    indices = similar_frames(CONFIG, SIZES[0], frames, 0.3, rng)
    batch = Batch(CONFIG)
    batch.load(layers)
    batch.begin_sequence()
    for frame in indices:
        batch.frame(frame, layers)
    model = GoldenModel(CONFIG, layers)
    model.begin_sequence()
    return batch, model.run(indices)


def check_bit_exact(transport: SerialTransport, seed: int) -> None:
    batch, expected = workload(seed)
    exchange = transport.exchange(batch.words, len(batch.expected))
    results = [result for result in batch.decode(split_responses(
        exchange.words, len(batch.expected))) if isinstance(result, FrameResult)]
    assert len(results) == len(expected)
    for t, (got, want) in enumerate(zip(results, expected)):
        np.testing.assert_array_equal(got.outputs, want.outputs, err_msg=f"frame {t}")
        assert got.cycles == want.cycles, f"frame {t}"
        for name in COUNTERS:
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name),
                                          err_msg=f"frame {t} {name}")


def test_network_bit_exact_over_a_clean_line(simulation):
    sim = simulation()
    with sim as path, SerialTransport(CONFIG, path, timeout=2.0, retries=3) as transport:
        info = transport.reset()
        assert (info.chunk, info.input_depth, info.output_depth) == (16, 64, 64)
        check_bit_exact(transport, seed=1)
        # A second batch continues on the same device state (no HELLO in between).
        transport.exchange([protocol.header(protocol.Opcode.BEGIN_SEQUENCE)], 1)
        check_bit_exact(transport, seed=2)
        stats = transport.stats
    assert (stats.retries, stats.naks, stats.crc_errors, stats.timeouts,
            stats.bad_replies) == (0, 0, 0, 0, 0)
    assert sim.summary["applied"] == [] and sim.summary["error"] == 0


FAULTS = [
    Fault("to_device", 45, "drop"),
    Fault("to_device", 400, "flip", 0x10),
    Fault("to_device", 900, "truncate"),
    Fault("to_host", 30, "flip", 0x80),
    Fault("to_host", 150, "drop"),
    Fault("to_host", 330, "truncate"),
]


def test_network_bit_exact_over_a_lossy_line(simulation):
    sim = simulation(faults=FAULTS)
    with sim as path, SerialTransport(CONFIG, path, timeout=1.0, retries=6) as transport:
        check_bit_exact(transport, seed=3)
        stats = transport.stats
    applied = {(fault["direction"], fault["position"]) for fault in sim.summary["applied"]}
    assert applied == {(fault.direction, fault.position) for fault in FAULTS}
    assert stats.retries > 0 and stats.naks > 0
    assert stats.crc_errors + stats.timeouts + stats.bad_replies > 0
    assert sim.summary["error"] == 1                     # the device saw bad requests too


def test_corrupt_replies_exhaust_the_retries_with_a_clear_message(simulation):
    # A HELLO_OK reply is 10 bytes: flip a payload byte of each of the three tries.
    faults = [Fault("to_host", 10 * n + 5, "flip", 0x01) for n in range(3)]
    with simulation(faults=faults) as path:
        transport = SerialTransport(CONFIG, path, timeout=1.0, retries=3)
        with pytest.raises(LinkError, match=(
                rf"^HELLO to {re.escape(path)} failed after 3 tries \(last: corrupt reply: CRC "
                r"mismatch: received 0x[0-9a-f]{4}, computed 0x[0-9a-f]{4}\): the line loses "
                r"or corrupts bytes; check the cable and its ground, or lower the baud rate "
                r"\(now 1000000\) in both the bitstream and the host$")):
            transport.reset()
        transport.close()
    assert transport.stats.crc_errors == 3 and transport.stats.retries == 2


def test_a_silent_accelerator_trips_the_watchdog_and_hello_recovers(simulation):
    with simulation() as path, SerialTransport(CONFIG, path, timeout=1.0,
                                               watchdog=1.0) as transport:
        # A STATUS header that announces 3 payload words but brings 1: the accelerator waits
        # for the other 2 and never answers.
        broken = [protocol.header(protocol.Opcode.STATUS, 0, 3), 0]
        started = time.monotonic()
        with pytest.raises(LinkError, match=(
                rf"^the accelerator behind {re.escape(path)} produced no response word for 1 s "
                r"\(0 of 1 responses and 2 of 2 command words through\): it hangs or the "
                r"command stream is malformed; call reset\(\) \(HELLO\) before resending, or "
                r"raise watchdog= for long computations$")):
            transport.exchange(broken, 1)
        assert time.monotonic() - started < 5
        transport.reset()
        exchange = transport.exchange([protocol.header(protocol.Opcode.STATUS)], 1)
        fields = len(protocol.STATUS_FIELDS)
        assert exchange.words[:3] == [protocol.header(protocol.Opcode.STATUS | 0x80, 0, fields),
                                      protocol.MAGIC, protocol.VERSION]


def test_dead_line_raises_the_exact_error_in_bounded_time():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        transport = SerialTransport(CONFIG, path, timeout=0.2, retries=3)
        started = time.monotonic()
        with pytest.raises(LinkError, match=(
                rf"^no reply from {re.escape(path)} after 3 tries: is the bitstream loaded and "
                r"the baud rate 1000000\?$")):
            transport.exchange([protocol.header(protocol.Opcode.STATUS)], 1)
        assert time.monotonic() - started < 0.2 * 3 + 1.0
        assert transport.stats.timeouts == 3
        transport.close()
    finally:
        os.close(master)
        os.close(slave)
