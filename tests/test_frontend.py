"""The command front end's components on their own: the decoder's framing and the responder's
``last`` flags, under random stalls. The Accelerator's tests (test_top, test_rtl,
test_axi_stream) cover the protocol end to end."""

import random

import pytest
from amaranth.sim import Simulator

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.frontend.decoder import CommandDecoder
from reuse_accel.hw.protocol import Error, Opcode, header

CONFIG = AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=3)


def decode(words, count, *, seed, stall=0.4):
    """Feed ``words`` with random input stalls and payload backpressure, pulse ``done`` a few
    cycles after each command's payload; return the commands and each one's payload words."""
    dut = CommandDecoder(CONFIG)
    rng = random.Random(seed)
    commands = []

    async def source(ctx):
        for word in words:
            while rng.random() < stall:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.payload, word)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        sink_rng = random.Random(seed + 1)
        for _ in range(count):
            ctx.set(dut.command.ready, 1)
            while True:
                _, _, valid, command = await ctx.tick().sample(dut.command.valid,
                                                               dut.command.payload)
                if valid:
                    break
            ctx.set(dut.command.ready, 0)
            entry = {"opcode": command.opcode, "layer": command.layer, "words": command.words,
                     "error": command.error,
                     "control": [command.control[n] for n in range(len(command.control))],
                     "payload": []}
            commands.append(entry)
            while len(entry["payload"]) < entry["words"]:
                ready = sink_rng.random() >= stall
                ctx.set(dut.payload.ready, ready)
                _, _, valid, word = await ctx.tick().sample(dut.payload.valid,
                                                            dut.payload.payload)
                if valid and ready:
                    entry["payload"].append(word)
            ctx.set(dut.payload.ready, 0)
            for _ in range(sink_rng.randrange(3)):
                await ctx.tick()
            ctx.set(dut.done, 1)
            await ctx.tick()
            ctx.set(dut.done, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    return commands


@pytest.mark.parametrize("seed", range(3))
def test_decoder_frames_every_command_whatever_it_holds(seed):
    words = [
        header(Opcode.STATUS),
        header(Opcode.SET_LAYER, 2, 4), 10, 9, 100, 6 | 1 << 8,
        header(0x42, 7, 3), 1, 2, 3,                               # unknown: all payload
        header(Opcode.SET_LAYER, 1, 2), 11, 12,                    # short: no control row
        header(Opcode.LOAD_WEIGHTS, 0, 5), 40, 3, 0xA, 0xB, 0xC,   # control row, then rows
        header(Opcode.BEGIN_SEQUENCE, 0, 2), 0x55, 0x66,          # payload where none belongs
        header(Opcode.STATUS),
    ]
    commands = decode(words, 7, seed=seed)
    summary = [(c["opcode"], c["layer"], c["error"], c["control"], c["payload"])
               for c in commands]
    assert summary == [
        (Opcode.STATUS, 0, 0, [0, 0, 0, 0], []),
        (Opcode.SET_LAYER, 2, 0, [10, 9, 100, 6 | 1 << 8], []),
        (0x42, 7, Error.UNKNOWN_OPCODE, [0, 0, 0, 0], [1, 2, 3]),
        (Opcode.SET_LAYER, 1, Error.BAD_LENGTH, [0, 0, 0, 0], [11, 12]),
        (Opcode.LOAD_WEIGHTS, 0, 0, [40, 3, 0, 0], [0xA, 0xB, 0xC]),
        (Opcode.BEGIN_SEQUENCE, 0, 0, [0, 0, 0, 0], [0x55, 0x66]),
        (Opcode.STATUS, 0, 0, [0, 0, 0, 0], []),
    ]
    assert [c["words"] for c in commands] == [0, 0, 3, 2, 3, 2, 0]
