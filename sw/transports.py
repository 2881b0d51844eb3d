"""Word transports: how a batch of command words reaches an accelerator and comes back.

Every transport takes the command words and the number of responses to wait for, and returns
an :class:`Exchange`: the response words and, for simulated hardware, the cycle of every
transfer (used to check the cycle model end to end).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from reuse_accel.hw import protocol
from reuse_accel.hw.config import AccelConfig

__all__ = ["Exchange", "ResponseCounter", "AmaranthTransport", "check_host_settings"]


@dataclass
class Exchange:
    """What came back from one batch."""

    words: list[int]
    input_cycles: list[int] = field(default_factory=list)   # cycle each command word moved
    output_cycles: list[int] = field(default_factory=list)  # cycle each response word moved
    cycles: int = 0                                          # simulated cycles in all


class ResponseCounter:
    """Counts complete responses in a response word stream as its words arrive.

    ``remaining``: responses not yet complete; ``payload_left``: payload words of the current
    response still to come (0 when the next word is a header).
    """

    def __init__(self, responses: int):
        self.remaining = responses
        self.payload_left = 0

    def feed(self, word: int) -> None:
        if self.payload_left:
            self.payload_left -= 1
        else:
            self.payload_left = protocol.parse_header(word)[2]
        if self.payload_left == 0:
            self.remaining -= 1

    @property
    def words_needed(self) -> int:
        """Fewest words still to come: the current payload and a header per response left."""
        return self.payload_left + self.remaining - (1 if self.payload_left else 0)


def check_host_settings(config, stall_input: float, stall_output: float, timeout: int) -> None:
    """Validate the settings every simulated transport shares."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    for name, value in (("stall_input", stall_input), ("stall_output", stall_output)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), not {value!r}")
    if not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout must be a positive integer, not {timeout!r}")


class AmaranthTransport:
    """Runs the accelerator in Amaranth's Python simulator (no external tools).

    Parameters
    ----------
    config : AccelConfig
    stall_input, stall_output : float
        Probability of the host withholding ``valid`` (input) or ``ready`` (output) in a
        cycle: random backpressure, seeded by ``seed``.
    timeout : int
        Cycles without a transfer in either direction (no command word accepted and no
        response word received) after which the run stops with a :class:`TimeoutError`.
    vcd : str, optional
        Write a waveform to this file.
    """

    def __init__(self, config: AccelConfig, *, stall_input=0.0, stall_output=0.0, seed=0,
                 timeout=100_000, vcd=None):
        check_host_settings(config, stall_input, stall_output, timeout)
        self.config = config
        self.stall_input = stall_input
        self.stall_output = stall_output
        self.seed = seed
        self.timeout = timeout
        self.vcd = vcd

    def exchange(self, words: list[int], responses: int) -> Exchange:
        from amaranth.sim import Simulator

        from reuse_accel.hw.top import Accelerator

        dut = Accelerator(self.config)
        result = Exchange(words=[])
        rng_in = random.Random(self.seed)
        rng_out = random.Random(self.seed + 1)
        # Cycle of the last transfer in either direction: a long command payload that the
        # accelerator keeps accepting is progress, not a hang.
        last_transfer = [0]

        async def source(ctx):
            cycle = 0
            for word in words:
                while self.stall_input and rng_in.random() < self.stall_input:
                    ctx.set(dut.i.valid, 0)
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.i.payload, word)
                ctx.set(dut.i.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.i.ready)
                    cycle += 1
                    if ready:
                        break
                result.input_cycles.append(cycle)
                last_transfer[0] = max(last_transfer[0], cycle)
            ctx.set(dut.i.valid, 0)

        async def sink(ctx):
            cycle = 0
            counter = ResponseCounter(responses)
            while counter.remaining:
                ready = not (self.stall_output and rng_out.random() < self.stall_output)
                ctx.set(dut.o.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                cycle += 1
                if ready and valid:
                    word = int(payload)
                    result.words.append(word)
                    result.output_cycles.append(cycle)
                    last_transfer[0] = cycle
                    counter.feed(word)
                elif cycle - last_transfer[0] > self.timeout:
                    raise TimeoutError(
                        f"no response word for {self.timeout} cycles: the accelerator hangs "
                        f"(no command word moved either; {len(result.input_cycles)} of "
                        f"{len(words)} command words and {len(result.words)} response words "
                        f"through)")
            ctx.set(dut.o.ready, 0)
            result.cycles = cycle

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(source, background=True)
        sim.add_testbench(sink)
        if self.vcd:
            with sim.write_vcd(self.vcd):
                sim.run()
        else:
            sim.run()
        return result
