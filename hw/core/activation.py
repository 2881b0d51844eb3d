"""Activation: a row of L sums to a row of L activations.

Contract
--------
- ``acc``: L accumulators at the product scale; ``shift``: the layer's weight fractional bits;
  ``relu``: ReLU (identity otherwise). ``shift`` and ``relu`` hold while a layer's rows pass.
- ``o``: ``saturate(act((sum + 2**(shift-1)) >> shift))`` per lane (no rounding term when
  ``shift`` is 0), saturated to ``act_width`` bits; ``saturated``: the lanes that were clamped
  to the activation range (ReLU zeroing a negative sum is not clamping).
- Latency :attr:`Activation.latency` (3), throughput one row per cycle, no stalls: an ``acc``
  row in one cycle is on ``o`` three cycles later. The sums are registered as they arrive
  (they come from a block RAM's output), then shifted, then rounded, ReLU'd and saturated.
  Rounding needs no addition of its own: ``(sum + 2**(shift-1)) >> shift`` is ``t >> 1`` plus
  the last bit of ``t = (2 * sum) >> shift``, one variable shift and one increment.
  Saturation looks at the bits above the activation width (all equal to the sign, or the
  value is out of range) rather than comparing the whole result with the range's ends.

The golden model's :func:`reuse_accel.sim.model.activate` is the same function.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config

__all__ = ["Activation"]


class Activation(wiring.Component):
    """Round, shift, ReLU or identity, and saturate, on L lanes, in three pipeline stages."""

    latency = 3
    """Cycles from ``acc`` to ``o``."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        lanes = config.lanes
        super().__init__({
            "acc": In(data.ArrayLayout(signed(config.acc_width), lanes)),
            "shift": In(range(config.max_shift + 1)),
            "relu": In(1),
            "o": Out(data.ArrayLayout(signed(config.act_width), lanes)),
            "saturated": Out(lanes),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        width = config.act_width
        for lane in range(config.lanes):
            registered = Signal(signed(config.acc_width), name=f"acc{lane}")
            doubled = Signal(signed(config.acc_width + 1), name=f"doubled{lane}")
            shifted = Signal(signed(config.acc_width + 1), name=f"shifted{lane}")
            m.d.comb += shifted.eq((doubled >> 1) + doubled[0])
            m.d.sync += [
                registered.eq(self.acc[lane]),
                doubled.eq((registered << 1) >> self.shift),
            ]
            sign = shifted[-1]
            upper = shifted[width - 1:]            # the sign bit of the output and above
            high = ~sign & (upper != 0)            # above act_max
            low = sign & ~upper.all()              # below act_min
            m.d.sync += self.saturated[lane].eq(0)
            with m.If(self.relu & sign):
                m.d.sync += self.o[lane].eq(0)
            with m.Elif(high):
                m.d.sync += [self.o[lane].eq(config.act_max), self.saturated[lane].eq(1)]
            with m.Elif(low):
                m.d.sync += [self.o[lane].eq(config.act_min), self.saturated[lane].eq(1)]
            with m.Else():
                m.d.sync += self.o[lane].eq(shifted[:width])
        return m
