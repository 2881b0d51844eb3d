"""The stream drivers of :mod:`support.streams`, on a wire, a FIFO and a rule-breaking source."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from support.streams import (
    Lockstep,
    StreamSink,
    StreamSource,
    random_pattern,
    stream_get,
    stream_put,
)


class _Wire(wiring.Component):
    """``o`` is ``i``: a transfer on one is a transfer on the other, in the same cycle."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
        edges = Signal(8)     # a register, so that the design has a clock to step
        m.d.sync += edges.eq(edges + 1)
        return m


class _Fickle(wiring.Component):
    """Breaks the stream rule: offers a counter every other cycle, whether taken or not."""

    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        count = Signal(8)
        m.d.sync += count.eq(count + 1)
        m.d.comb += [self.o.valid.eq(count[0]), self.o.payload.eq(count)]
        return m


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_random_pattern_replays_from_its_seed():
    pattern = random_pattern(7, 0.3)
    late = pattern(40)                        # asked out of order
    rng = random.Random(7)
    expected = [rng.random() < 0.3 for _ in range(64)]
    assert [pattern(cycle) for cycle in range(64)] == expected
    assert late == expected[40]
    assert 5 < sum(expected) < 30


def test_source_and_sink_on_a_wire_see_the_same_transfers():
    dut = _Wire()
    data = list(range(100, 140))
    source = StreamSource(dut.i, data, offer=random_pattern(1, 0.5))
    sink = StreamSink(dut.o, ready=random_pattern(2, 0.5))

    async def bench(ctx):
        steps = Lockstep(source, sink, cycle=10)
        while not source.done:
            await steps.tick(ctx)

    simulate(dut, bench)
    assert [payload for _, payload in sink.transfers] == data
    assert [cycle for cycle, _ in sink.transfers] == source.transfers
    assert source.transfers[0] >= 10 and source.transfers == sorted(set(source.transfers))
    # The source held every payload it offered (the sink checks that), and something waited.
    assert len(sink.offers) == len(data) and sink.offers != source.transfers
    assert all(offer <= cycle for offer, cycle in zip(sink.offers, source.transfers))


def test_full_rate_through_a_fifo_and_a_stall():
    dut = SyncFIFOBuffered(width=8, depth=4)
    data = list(range(1, 13))
    source = StreamSource(dut.w_stream, data)
    sink = StreamSink(dut.r_stream, ready=lambda cycle: not 4 <= cycle < 10)

    async def bench(ctx):
        steps = Lockstep(source, sink)
        while len(sink.transfers) < len(data):
            await steps.tick(ctx)

    simulate(dut, bench)
    assert [payload for _, payload in sink.transfers] == data
    # One word a cycle until the FIFO (4 entries and its output register) fills during the
    # stall, then one a cycle again.
    assert source.transfers[:5] == [0, 1, 2, 3, 4]
    assert [cycle for cycle, _ in sink.transfers][:2] == [2, 3]
    assert [cycle for cycle, _ in sink.transfers][-1] == 10 + len(data) - 3


def test_sink_fails_when_an_offered_payload_is_withdrawn():
    dut = _Fickle()
    sink = StreamSink(dut.o, ready=lambda cycle: False)

    async def bench(ctx):
        steps = Lockstep(sink)
        for _ in range(4):
            await steps.tick(ctx)

    with pytest.raises(AssertionError, match=r"^cycle 2: a payload offered and not taken was "
                                             r"withdrawn or changed"):
        simulate(dut, bench)


def test_stream_put_and_get_in_order():
    dut = SyncFIFOBuffered(width=8, depth=2)
    data = [5, 0, 255, 17, 42, 9]
    received = []

    async def source(ctx):
        for byte in data:
            await stream_put(ctx, dut.w_stream, byte)

    async def sink(ctx):
        for _ in data:
            received.append(await stream_get(ctx, dut.r_stream))
        assert ctx.get(dut.r_stream.valid) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert received == data
