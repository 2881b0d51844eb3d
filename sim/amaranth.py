"""The accelerator in Amaranth's Python simulator behind the driver's transport interface.

:class:`AmaranthTransport` needs no external tools: ``exchange(words, responses)`` simulates the
generated :class:`~reuse_accel.hw.top.Accelerator` from its initial state, drives the command
words into ``i`` and collects ``responses`` responses from ``o``, and returns a
:class:`~reuse_accel.sw.transports.Exchange` with the cycle of every transfer (cycle ``k`` is
the ``k``-th clock edge of the run), the reference the RTL simulators are compared with cycle
for cycle.
"""

from __future__ import annotations

import random

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sw.transports import Exchange, ResponseCounter, check_host_settings

__all__ = ["AmaranthTransport"]


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
        result = Exchange(words=[], lasts=[])
        rng_in = random.Random(self.seed)
        rng_out = random.Random(self.seed + 1)
        # Cycle of the last transfer in either direction: a long command payload that the
        # accelerator keeps accepting is progress, not a hang.
        last_transfer = [0]

        async def source(ctx):
            cycle = 0
            for word in words:
                while self.stall_input and rng_in.random() < self.stall_input:
                    ctx.set(dut.s_axis_tvalid, 0)
                    await ctx.tick()
                    cycle += 1
                ctx.set(dut.s_axis_tdata, word)
                ctx.set(dut.s_axis_tvalid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.s_axis_tready)
                    cycle += 1
                    if ready:
                        break
                result.input_cycles.append(cycle)
                last_transfer[0] = max(last_transfer[0], cycle)
            ctx.set(dut.s_axis_tvalid, 0)

        async def sink(ctx):
            cycle = 0
            counter = ResponseCounter(responses)
            while counter.remaining:
                ready = not (self.stall_output and rng_out.random() < self.stall_output)
                ctx.set(dut.m_axis_tready, ready)
                _, _, valid, payload, last = await ctx.tick().sample(
                    dut.m_axis_tvalid, dut.m_axis_tdata, dut.m_axis_tlast)
                cycle += 1
                if ready and valid:
                    word = int(payload)
                    result.words.append(word)
                    result.output_cycles.append(cycle)
                    result.lasts.append(bool(last))
                    last_transfer[0] = cycle
                    counter.feed(word)
                elif cycle - last_transfer[0] > self.timeout:
                    raise TimeoutError(
                        f"no response word for {self.timeout} cycles: the accelerator hangs "
                        f"(no command word moved either; {len(result.input_cycles)} of "
                        f"{len(words)} command words and {len(result.words)} response words "
                        f"through)")
            ctx.set(dut.m_axis_tready, 0)
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
