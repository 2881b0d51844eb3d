"""Input serializer: rows of L values in, the selected lanes out one per cycle.

Contract
--------
- ``i``: stream of rows: L ``values`` of ``lane_shape``, the ``mask`` of lanes to pass on, the
  row number and ``last`` on a layer's final row.
- ``o``: stream of the selected lanes, one per cycle at most, in ascending order: the input
  number ``row * L + lane`` and the lane's value.
- ``done``: high in the cycle the ``last`` row leaves.
- Latency :attr:`InputSerializer.latency` (1): a row accepted at one edge offers its first lane
  in the next cycle. A row spends ``max(selected lanes, 1)`` cycles in the serializer and the
  next row is accepted in the cycle its last lane is taken, so no bubbles are added and the gap
  between two lanes passed on is the same whether or not the consumer stalled (the cycle model
  in :mod:`reuse_accel.sim.timing` relies on this).

Hardware generated without reuse feeds it the activation rows with every real lane selected;
with reuse, the :class:`~reuse_accel.hw.core.change_detector.ChangeDetector` feeds it the lanes
whose cluster changed.
"""

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config

__all__ = ["InputSerializer"]


class InputSerializer(wiring.Component):
    """One selected lane per cycle out of rows of L values.

    Parameters
    ----------
    config : AccelConfig
    lane_shape : shape-like
        Shape of one lane's value.
    """

    latency = 1
    """Cycles from a row's acceptance to its first lane on ``o``."""

    def __init__(self, config: AccelConfig, *, lane_shape):
        self._config = check_config(config)
        lanes = config.lanes
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "values": data.ArrayLayout(lane_shape, lanes),
                "mask": unsigned(lanes),
                "row": unsigned(config.row_bits),
                "last": unsigned(1),
            }))),
            "o": Out(stream.Signature(data.StructLayout({
                "input": unsigned(config.input_bits),
                "value": lane_shape,
            }))),
            "done": Out(1),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        lanes = self._config.lanes

        valid = Signal()
        mask = Signal(lanes)                  # the selected lanes not yet passed on
        values = Signal.like(self.i.payload.values)
        row = Signal.like(self.i.payload.row)
        last = Signal()
        # The lowest selected lane and its value, registered: found when a row arrives or a lane
        # leaves, so that the output comes straight from registers.
        head = Signal(range(lanes))
        head_value = Signal.like(self.o.payload.value)

        def lowest(bits):
            found = Signal(range(lanes))
            for lane in reversed(range(lanes)):
                with m.If(bits[lane]):
                    m.d.comb += found.eq(lane)
            return found

        single = (mask & (mask - 1)) == 0
        free = ~valid | (mask == 0) | (single & self.o.ready)

        m.d.comb += [
            self.o.valid.eq(valid & (mask != 0)),
            self.o.payload.input.eq(Cat(head, row)),
            self.o.payload.value.eq(head_value),
            self.done.eq(valid & last & free),
            self.i.ready.eq(free),
        ]
        with m.If(free):
            m.d.sync += valid.eq(self.i.valid)
            with m.If(self.i.valid):
                first = lowest(self.i.payload.mask)
                m.d.sync += [
                    mask.eq(self.i.payload.mask),
                    values.eq(self.i.payload.values),
                    row.eq(self.i.payload.row),
                    last.eq(self.i.payload.last),
                    head.eq(first),
                    head_value.eq(self.i.payload.values[first]),
                ]
        with m.Elif(self.o.valid & self.o.ready):
            rest = mask & ~(Const(1, lanes) << head)
            following = lowest(rest)
            m.d.sync += [mask.eq(rest), head.eq(following), head_value.eq(values[following])]
        return m
