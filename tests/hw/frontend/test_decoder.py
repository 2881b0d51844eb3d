"""CommandDecoder: every command framed by its header's length whatever it holds, under random
input stalls and payload backpressure. The Accelerator's tests (tests/hw/test_top.py,
tests/sim/cocotb/) cover the whole front end end to end."""

import pytest
from amaranth.sim import Simulator
from support.streams import Lockstep, StreamSink, StreamSource, random_pattern

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.frontend.decoder import CommandDecoder
from reuse_accel.hw.protocol import Error, Opcode, header

CONFIG = AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=3)

WORDS = [
    header(Opcode.STATUS),
    header(Opcode.SET_LAYER, 2, 4), 10, 9, 100, 6 | 1 << 8,
    header(0x42, 7, 3), 1, 2, 3,                               # unknown: every word payload
    header(Opcode.SET_LAYER, 1, 2), 11, 12,                    # short: no control row read
    header(Opcode.LOAD_WEIGHTS, 0, 5), 40, 3, 0xA, 0xB, 0xC,   # control row, then rows
    header(Opcode.BEGIN_SEQUENCE, 0, 2), 0x55, 0x66,           # payload where none belongs
    header(Opcode.STATUS),
]
EXPECTED = [   # opcode, layer, error, control row, payload words
    (Opcode.STATUS, 0, 0, [0, 0, 0, 0], []),
    (Opcode.SET_LAYER, 2, 0, [10, 9, 100, 6 | 1 << 8], []),
    (0x42, 7, Error.UNKNOWN_OPCODE, [0, 0, 0, 0], [1, 2, 3]),
    (Opcode.SET_LAYER, 1, Error.BAD_LENGTH, [0, 0, 0, 0], [11, 12]),
    (Opcode.LOAD_WEIGHTS, 0, 0, [40, 3, 0, 0], [0xA, 0xB, 0xC]),
    (Opcode.BEGIN_SEQUENCE, 0, 0, [0, 0, 0, 0], [0x55, 0x66]),
    (Opcode.STATUS, 0, 0, [0, 0, 0, 0], []),
]


@pytest.mark.parametrize("seed", range(3))
def test_decoder_frames_every_command_whatever_it_holds(seed):
    dut = CommandDecoder(CONFIG)
    words = StreamSource(dut.i, WORDS, offer=random_pattern(seed, 0.6))
    commands = StreamSink(dut.command, ready=random_pattern(seed + 1, 0.7))
    payload = StreamSink(dut.payload, ready=random_pattern(seed + 2, 0.6))
    decoded = []
    done_cycles = []   # the edge at which each command's done was high

    async def bench(ctx):
        steps = Lockstep(words, commands, payload)
        done_at = None
        while len(done_cycles) < len(EXPECTED):
            ctx.set(dut.done, steps.cycle == done_at)
            if steps.cycle == done_at:
                done_cycles.append(done_at)
            # The next header waits for the response: no word moves until done.
            await steps.tick(ctx)
            assert steps.cycle < 2000
            if len(commands.transfers) > len(decoded) and done_at is None:
                command = commands.transfers[len(decoded)][1]
                taken = sum(len(entry[4]) for entry in decoded)
                words_so_far = [word.data for _, word in payload.transfers[taken:]]
                lasts = [word.last for _, word in payload.transfers[taken:]]
                if len(words_so_far) == command.words:
                    # last marks the command's final payload word, and only that one.
                    assert lasts == [n == command.words - 1 for n in range(command.words)]
                    decoded.append((command.opcode, command.layer, command.error,
                                    [command.control[n] for n in range(4)], words_so_far))
                    done_at = steps.cycle + 2 + seed   # the response takes a while
            elif done_at is not None and steps.cycle > done_at:
                done_at = None

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert decoded == EXPECTED
    assert words.done and len(payload.transfers) == 10
    # One command at a time: the next header is taken only after the previous command's done.
    headers = [words.transfers[n] for n in (0, 1, 6, 10, 13, 19, 22)]
    assert len(done_cycles) == len(EXPECTED)
    assert all(header > done for header, done in zip(headers[1:], done_cycles))
