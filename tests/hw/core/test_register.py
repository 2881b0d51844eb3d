"""StreamRegister and SkidBuffer: every payload once, in order, one per cycle, under random
offers and backpressure; the skid buffer's ready never follows the output's ready."""

import pytest
from amaranth.sim import Simulator
from support.streams import Lockstep, StreamSink, StreamSource, always, random_pattern

from reuse_accel.hw.core.register import SkidBuffer, StreamRegister

PAYLOADS = [(n * 37 + 11) % 256 for n in range(60)]


def _run(dut, offer, ready):
    source = StreamSource(dut.i, PAYLOADS, offer=offer)
    sink = StreamSink(dut.o, ready=ready)
    follows = []   # cycles in which i.ready changed with o.ready

    async def bench(ctx):
        steps = Lockstep(source, sink)
        while len(sink.transfers) < len(PAYLOADS):
            driven = ctx.get(dut.o.ready)
            seen = set()
            for o_ready in (0, 1):
                ctx.set(dut.o.ready, o_ready)
                seen.add(ctx.get(dut.i.ready))
            ctx.set(dut.o.ready, driven)
            if len(seen) > 1:
                follows.append(steps.cycle)
            await steps.tick(ctx)
            assert steps.cycle < 1000

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return source, sink, follows


@pytest.mark.parametrize("component", [StreamRegister, SkidBuffer])
def test_full_throughput_with_one_cycle_of_latency(component):
    source, sink, _ = _run(component(8), always, always)
    assert [payload for _, payload in sink.transfers] == PAYLOADS
    assert source.transfers == list(range(len(PAYLOADS)))
    assert [cycle for cycle, _ in sink.transfers] == [n + component.latency
                                                      for n in range(len(PAYLOADS))]


@pytest.mark.parametrize("component", [StreamRegister, SkidBuffer])
@pytest.mark.parametrize("seed", range(4))
def test_every_payload_once_in_order_under_stalls(component, seed):
    _, sink, _ = _run(component(8), random_pattern(seed, 0.6), random_pattern(seed + 7, 0.5))
    assert [payload for _, payload in sink.transfers] == PAYLOADS


@pytest.mark.parametrize("seed", range(4))
def test_skid_buffer_ready_never_follows_the_output(seed):
    """The skid buffer's ``i.ready`` depends on its state only (the register's follows
    ``o.ready`` in the same cycle whenever its output is full)."""
    *_, follows = _run(SkidBuffer(8), random_pattern(seed, 0.8), random_pattern(seed + 3, 0.5))
    assert follows == []
    *_, follows = _run(StreamRegister(8), random_pattern(seed, 0.8),
                       random_pattern(seed + 3, 0.5))
    assert follows != []
