"""Input serializer: rows of L values in, the selected lanes out one per cycle.

Contract
--------
- ``i``: stream of rows: L ``values`` of ``lane_shape``, the ``mask`` of lanes to pass on, the
  row number and ``last`` on a layer's final row.
- ``o``: stream of the selected lanes, one per cycle at most, in ascending order: the input
  number ``row * L + lane`` and the lane's value.
- ``tag`` (with a ``tag_shape``): a value per row that leaves with each of its lanes.
- ``side`` (with a ``side_shape``): a second value per lane that travels with the row and
  leaves with its lane, for fields off the critical path. ``value`` comes straight from a
  register (chosen as the lane is); ``side`` is chosen from the held row in the cycle it leaves
  (one AND-OR tree instead of two and a register).
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

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config
from .onehot import encode, lowest, select

__all__ = ["InputSerializer"]


class InputSerializer(wiring.Component):
    """One selected lane per cycle out of rows of L values.

    Parameters
    ----------
    config : AccelConfig
    lane_shape : shape-like
        Shape of one lane's value.
    side_shape : shape-like or None
        Shape of one lane's side value (none by default).
    tag_shape : shape-like or None
        Shape of a row's ``tag``, which leaves with each of its lanes (none by default).
    """

    latency = 1
    """Cycles from a row's acceptance to its first lane on ``o``."""

    def __init__(self, config: AccelConfig, *, lane_shape, side_shape=None, tag_shape=None):
        self._config = check_config(config)
        self._side = side_shape is not None
        self._tag = tag_shape is not None
        lanes = config.lanes
        row = {
            "values": data.ArrayLayout(lane_shape, lanes),
            "mask": unsigned(lanes),
            "row": unsigned(config.row_bits),
            "last": unsigned(1),
        }
        lane = {"input": unsigned(config.input_bits), "value": lane_shape}
        if self._side:
            row["sides"] = data.ArrayLayout(side_shape, lanes)
            lane["side"] = side_shape
        if self._tag:
            row["tag"] = lane["tag"] = tag_shape
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(row))),
            "o": Out(stream.Signature(data.StructLayout(lane))),
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
        # leaves, so that the output comes straight from registers. The lane is found as a
        # one-hot code (the lowest set bit, ``bits & -bits``, one carry chain) that selects its
        # value through an AND-OR tree: an index and a multiplexer cost several times more.
        head = Signal(lanes)
        head_value = Signal.like(self.o.payload.value)

        first = Signal(lanes)       # the lowest selected lane of an arriving row
        rest = Signal(lanes)        # the lanes left once the head leaves
        following = Signal(lanes)   # the lowest of them
        m.d.comb += [
            first.eq(lowest(self.i.payload.mask)),
            rest.eq(mask & ~head),
            following.eq(lowest(rest)),
        ]

        # Whether no lane, or at most one, is left: registered with the mask, so that taking the
        # next row depends on ``o.ready`` and three registers only.
        none = Signal()
        single = Signal()
        free = ~valid | none | (single & self.o.ready)

        m.d.comb += [
            self.o.valid.eq(valid & ~none),
            self.o.payload.input.eq(Cat(encode(head), row)),
            self.o.payload.value.eq(head_value),
            self.done.eq(valid & last & free),
            self.i.ready.eq(free),
        ]
        if self._tag:
            tag = Signal.like(self.i.payload.tag)
            m.d.comb += self.o.payload.tag.eq(tag)
            with m.If(free & self.i.valid):
                m.d.sync += tag.eq(self.i.payload.tag)
        if self._side:
            sides = Signal.like(self.i.payload.sides)
            m.d.comb += self.o.payload.side.eq(select(head, list(sides)))
            with m.If(free):
                m.d.sync += sides.eq(self.i.payload.sides)
        with m.If(free):
            m.d.sync += valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += [
                    mask.eq(self.i.payload.mask),
                    none.eq(self.i.payload.mask == 0),
                    single.eq(first == self.i.payload.mask),
                    values.eq(self.i.payload.values),
                    row.eq(self.i.payload.row),
                    last.eq(self.i.payload.last),
                    head.eq(first),
                    head_value.eq(select(first, list(self.i.payload.values))),
                ]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += [mask.eq(rest), none.eq(rest == 0), single.eq(following == rest),
                         head.eq(following),
                         head_value.eq(select(following, list(values)))]
        return m
