"""One-stage stream pipeline registers: :class:`StreamRegister` and :class:`SkidBuffer`.

Contract
--------
- ``i`` -> ``o``, payloads of any shape, in order, none lost or duplicated.
- Latency :attr:`StreamRegister.latency` (1): a payload accepted at one edge is offered on ``o``
  in the next cycle. Throughput one per cycle; ``i.ready`` is ``~o.valid | o.ready`` (the
  ``lib.stream`` pipeline-register rule), so it holds its payload while ``o`` stalls.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer", "StreamRegister"]


class StreamRegister(wiring.Component):
    """One register stage on a stream of ``shape`` payloads."""

    latency = 1
    """Cycles from a payload's acceptance to its offer on ``o``."""

    def __init__(self, shape):
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        return m


class SkidBuffer(wiring.Component):
    """One register stage on a stream of ``shape`` payloads whose ``i.ready`` is a register.

    Contract
    --------
    - ``i`` -> ``o``, in order, none lost or duplicated; latency :attr:`SkidBuffer.latency` (1),
      throughput one per cycle.
    - ``i.ready`` depends on this stage's state only, never on ``o.ready``: a payload that
      arrives while ``o`` stalls waits in a second (skid) register, and ``i.ready`` drops only
      while that register is full. A long combinational ready chain is cut here, at the cost of
      one payload register more than :class:`StreamRegister`.
    """

    latency = 1
    """Cycles from a payload's acceptance to its offer on ``o``."""

    def __init__(self, shape):
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal.like(self.i.payload)
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~self.o.valid | self.o.ready):
            with m.If(skid_valid):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(skid), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
