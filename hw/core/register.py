"""A one-stage stream pipeline register.

Contract
--------
- ``i`` -> ``o``, payloads of any shape, in order, none lost or duplicated.
- Latency :attr:`StreamRegister.latency` (1): a payload accepted at one edge is offered on ``o``
  in the next cycle. Throughput one per cycle; ``i.ready`` is ``~o.valid | o.ready`` (the
  ``lib.stream`` pipeline-register rule), so it holds its payload while ``o`` stalls.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamRegister"]


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
