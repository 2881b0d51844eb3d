"""The cocotb testbench behind :class:`reuse_accel.sim.cocotb.transport.CocotbTransport`.

Not a pytest module: the simulator loads it through cocotb, and the transport hands it a job
file (path in the ``REUSE_ACCEL_COCOTB_JOB`` environment variable) with the command words, the
number of responses to collect, the stall probabilities, the seed and the hang timeout. The
bench writes the response words, their ``tlast`` flags and the cycle of every transfer to the
result file the job names.

Timing contract (the same as :class:`~reuse_accel.sim.amaranth.AmaranthTransport`)
---------------------------------------------------------------------------------------
Reset is held for a few clock edges; cycle ``k`` is the ``k``-th rising edge after the last
edge with reset high, so the accelerator starts from its reset state exactly as Amaranth's
simulator starts from the initial state. A word's cycle is the edge at which ``valid & ready``
held. Random stalls use the same seeded generators, drawn the same way, as the Amaranth
transport, so a run gives the same cycles on both backends, with or without stalls.

How it stays fast
-----------------
The bench drives and samples at falling edges, half a period away from the rising edges where
the gateware acts, so there are no races. It is exact because the accelerator's
``s_axis_tready`` and ``m_axis_tvalid``/``tdata``/``tlast`` depend only on its registers (never
combinationally on ``s_axis_tvalid`` or ``m_axis_tready``), so they can be sampled before the
edge they qualify. When nothing can move (the accelerator computes: ``s_axis_tready`` and
``m_axis_tvalid`` low) the source and the sink sleep on their rising edges instead of stepping
every cycle, and cycle numbers come from simulation time. Python runs only in cycles that
transfer a word.
"""

from __future__ import annotations

import gc
import json
import os
import random
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, First, Timer
from cocotb.utils import get_sim_steps

JOB_ENV = "REUSE_ACCEL_COCOTB_JOB"
"""Environment variable holding the path of the job file (JSON)."""

CLOCK_PERIOD_NS = 10
RESET_EDGES = 3


def payload_length(header: int) -> int:
    """Payload words after a response header: bits 31..16 (:mod:`reuse_accel.hw.protocol`).

    Decoded here rather than with ``protocol.parse_header`` so that the simulator's Python
    does not import NumPy (a tenth of a second per run, and BLAS threads that spin).
    """
    return (header >> 16) & 0xFFFF


class _Hang(Exception):
    pass


class _Bench:
    """Source, sink and clock bookkeeping of one exchange."""

    def __init__(self, dut, job: dict):
        self.dut = dut
        self.words = [int(word) for word in job["words"]]
        self.responses = int(job["responses"])
        self.stall_input = float(job["stall_input"])
        self.stall_output = float(job["stall_output"])
        self.seed = int(job["seed"])
        self.timeout = int(job["timeout"])
        self.input_cycles: list[int] = []
        self.output_cycles: list[int] = []
        self.received: list[int] = []
        self.lasts: list[bool] = []
        self.last_transfer = 0
        self.period = 0       # clock period in simulator steps
        self.origin = 0       # time of the falling edge before cycle 1
        # Output stalls: one draw per cycle, as AmaranthTransport's sink draws them.
        self._ready_rng = random.Random(self.seed + 1)
        self._ready_drawn = 0
        self._ready = True

    def cycle(self) -> int:
        """Rising edges since reset, at a falling edge: the next edge is ``cycle() + 1``."""
        elapsed = get_sim_time("step") - self.origin
        if elapsed % self.period:
            raise RuntimeError(f"bench resumed off a falling edge ({elapsed} steps)")
        return elapsed // self.period

    def woke_at_rising_edge(self, name: str) -> None:
        """Check that a handshake signal changed at a rising edge, as the registered outputs
        of the accelerator must: otherwise sampling at falling edges would miss transfers."""
        if (get_sim_time("step") - self.origin) % self.period != self.period // 2:
            raise RuntimeError(f"{name} changed between clock edges; the bench assumes it "
                               "changes only with the clock")

    def sink_ready(self, cycle: int) -> bool:
        """Whether the host takes a response word at rising edge ``cycle``."""
        if not self.stall_output:
            return True
        while self._ready_drawn < cycle:
            self._ready = self._ready_rng.random() >= self.stall_output
            self._ready_drawn += 1
        return self._ready

    async def reset(self) -> None:
        dut = self.dut
        # The C++ clock of the GPI, also on Icarus: the bench never writes near a rising edge.
        clock = Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns", impl="gpi")
        self.period = get_sim_steps(CLOCK_PERIOD_NS, "ns")
        dut.rst.value = 1
        dut.s_axis_tvalid.value = 0
        dut.s_axis_tdata.value = 0
        dut.m_axis_tready.value = 0
        clock.start(start_high=False)
        # Falling edges only, so reset covers whole rising edges; the last one is cycle 0.
        await ClockCycles(dut.clk, RESET_EDGES + 1, rising=False)
        dut.rst.value = 0
        self.origin = get_sim_time("step")

    async def source(self) -> None:
        """Drive ``i``: each word after its seeded stall cycles, held until accepted."""
        dut = self.dut
        rng = random.Random(self.seed)
        falling = dut.clk.falling_edge
        ready_rise = dut.s_axis_tready.rising_edge
        for word in self.words:
            stalls = 0
            while self.stall_input and rng.random() < self.stall_input:
                stalls += 1
            if stalls:
                dut.s_axis_tvalid.value = 0
                await ClockCycles(dut.clk, stalls, rising=False)
            dut.s_axis_tdata.value = word
            dut.s_axis_tvalid.value = 1
            while not dut.s_axis_tready.value:
                # Not ready: the state is frozen for the input until ready rises at some
                # edge j; the word then moves at edge j + 1.
                await ready_rise
                self.woke_at_rising_edge("s_axis_tready")
                await falling
            cycle = self.cycle() + 1
            self.input_cycles.append(cycle)
            self.last_transfer = max(self.last_transfer, cycle)
            await falling
        dut.s_axis_tvalid.value = 0

    async def sink(self) -> None:
        """Take ``o``: collect ``responses`` responses, with seeded ready stalls."""
        dut = self.dut
        falling = dut.clk.falling_edge
        valid_rise = dut.m_axis_tvalid.rising_edge
        remaining_responses, remaining_words = self.responses, 0
        last_cycle = 0
        while remaining_responses:
            cycle = self.cycle()
            if dut.m_axis_tvalid.value:
                ready = self.sink_ready(cycle + 1)
                dut.m_axis_tready.value = ready
                if ready:
                    cycle += 1
                    if cycle <= last_cycle:
                        raise RuntimeError(f"cycle {cycle} counted twice")
                    last_cycle = self.last_transfer = cycle
                    word = dut.m_axis_tdata.value.to_unsigned()
                    self.received.append(word)
                    self.lasts.append(bool(dut.m_axis_tlast.value))
                    self.output_cycles.append(cycle)
                    if remaining_words:
                        remaining_words -= 1
                    else:
                        remaining_words = payload_length(word)
                    if remaining_words == 0:
                        remaining_responses -= 1
                await falling
                continue
            # Nothing to take before o.valid rises; hold ready (it only matters with valid).
            dut.m_axis_tready.value = 1
            deadline = self.last_transfer + self.timeout
            if cycle >= deadline:
                raise _Hang(
                    f"no transfer for {self.timeout} cycles (last at cycle "
                    f"{self.last_transfer}): the accelerator hangs after "
                    f"{len(self.input_cycles)} of {len(self.words)} command words and "
                    f"{len(self.received)} response words "
                    f"({self.responses - remaining_responses} of {self.responses} responses)")
            fired = await First(valid_rise, Timer((deadline - cycle) * self.period, "step"))
            if fired is valid_rise:
                self.woke_at_rising_edge("m_axis_tvalid")
                await falling
            # After the timer we are already at a falling edge: loop without waiting.
        dut.m_axis_tready.value = 0


@cocotb.test()
async def exchange_words(dut):
    """Send the job's command words and collect its responses."""
    start = time.perf_counter()
    job_path = Path(os.environ[JOB_ENV])
    job = json.loads(job_path.read_text())
    bench = _Bench(dut, job)
    # Everything alive now lives to the end: keep the collector from rescanning it while the
    # run allocates a few objects per transfer.
    gc.freeze()
    result = {"error": None}
    try:
        await bench.reset()
        cocotb.start_soon(bench.source())
        await bench.sink()
    except _Hang as hang:
        result["error"] = str(hang)
    result.update(
        words=bench.received,
        lasts=bench.lasts,
        input_cycles=bench.input_cycles,
        output_cycles=bench.output_cycles,
        cycles=bench.output_cycles[-1] if bench.output_cycles else 0,
        simulated_cycles=bench.cycle() if bench.period else 0,
        bench_seconds=time.perf_counter() - start,
    )
    Path(job["result"]).write_text(json.dumps(result))
    assert result["error"] is None, result["error"]
