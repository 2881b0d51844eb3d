"""Input comparator: keeps each layer's previous cluster indices and passes on what changed.

Contract
--------
- ``i``: stream of index rows (L cluster indices of one layer's inputs, the row number, the mask
  of lanes that hold real inputs, and ``last`` on the layer's final row). Rows of a layer must
  arrive in order, starting with row 0, after a ``start`` pulse.
- ``o``: stream of changed inputs, one per cycle at most, in ascending input order: the input
  number, ``delta = centroid[new] - centroid[old]`` and the input's first weight-memory row
  ``weight_base + input * groups`` (a running sum per row plus ``lane * groups``, a small
  multiplier).
- ``first``: every real input counts as changed and the old centroid is taken as 0 (first frame
  of a sequence, or baseline mode).
- ``done``: high in the cycle the ``last`` row leaves the serializer.
- The previous indices live in a memory of ``max_layers`` x ``max_groups`` rows; each row is
  read when it enters and written with the new indices when it moves on.

Without reuse (``AccelConfig.reuse`` false) the same component is the input serializer of a
dense accelerator: ``indices`` carries the signed activations themselves, every real lane is
passed on with ``delta`` = the activation, and there is no previous-index memory and no centroid
table (``centroids`` and ``first`` are absent).

Timing: a row is accepted one cycle after it enters (registered read of the previous indices),
then spends ``max(changed_lanes, 1)`` cycles in the serializer, stalling upstream while its
changed inputs wait for ``o.ready``. No bubbles are added, so the gap between two changed inputs
is the same whether or not the consumer stalled (the cycle model in :mod:`reuse_accel.sim.timing`
relies on this).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from .config import AccelConfig, check_config

__all__ = ["InputComparator", "address_widths", "changed_input_layout", "input_row_layout"]


def address_widths(config: AccelConfig) -> dict:
    """Widths of the row, layer, input-number and weight-row addresses."""
    row = max(1, ceil_log2(config.max_groups))
    return {
        "row": row,
        "layer": max(1, ceil_log2(config.max_layers)),
        "input": row + exact_log2(config.lanes),
        "weight_row": max(1, ceil_log2(config.weight_depth)),
        "groups": ceil_log2(config.max_groups + 1),
    }


def input_row_layout(config: AccelConfig) -> data.ArrayLayout:
    """A row of L inputs as the comparator takes them: cluster indices with reuse, signed
    activations without."""
    if config.reuse:
        return data.ArrayLayout(unsigned(config.index_width), config.lanes)
    return data.ArrayLayout(signed(config.act_width), config.lanes)


def changed_input_layout(config: AccelConfig) -> data.StructLayout:
    """Payload of the comparator-to-MAC stream: one changed input."""
    widths = address_widths(config)
    return data.StructLayout({
        "input": unsigned(widths["input"]),
        "delta": signed(config.delta_width),
        "weight_row": unsigned(widths["weight_row"]),
    })


class InputComparator(wiring.Component):
    """Compare each input's cluster with the previous frame's; emit the changed ones."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        widths = address_widths(config)
        lanes = config.lanes
        members = {
            "i": In(stream.Signature(data.StructLayout({
                "indices": input_row_layout(config),
                "row": unsigned(widths["row"]),
                "lanes": unsigned(lanes),
                "last": unsigned(1),
            }))),
            "o": Out(stream.Signature(changed_input_layout(config))),
            "start": In(1),
            "layer": In(widths["layer"]),
            "weight_base": In(widths["weight_row"]),
            "groups": In(widths["groups"]),
            "done": Out(1),
        }
        if config.reuse:
            members["first"] = In(1)
            members["centroids"] = In(
                data.ArrayLayout(signed(config.centroid_width), config.clusters))
        super().__init__(members)

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes
        widths = address_widths(config)
        index_row = input_row_layout(config)

        if config.reuse:
            m.submodules.previous = previous = memory.Memory(
                shape=index_row, depth=config.max_layers << widths["row"], init=[])
            prev_read = previous.read_port()
            prev_write = previous.write_port()

        # Stage A: the row waits for its previous indices (registered read).
        a_valid = Signal()
        a_indices = Signal(index_row)
        a_row = Signal(widths["row"])
        a_lanes = Signal(lanes)
        a_last = Signal()

        # Stage B: the serializer, holding the row's remaining changed lanes.
        b_valid = Signal()
        b_mask = Signal(lanes)
        # With reuse the row keeps its new and old indices and only the lane leaving the
        # serializer looks its two centroids up: one pair of K-way lookups instead of L.
        b_inputs = Signal(index_row)
        b_old = Signal(index_row)
        b_first = Signal()
        b_row = Signal(widths["row"])
        b_last = Signal()
        b_weight_row = Signal(widths["weight_row"] + 1)
        next_weight_row = Signal(widths["weight_row"] + 1)

        lowest = Signal(range(lanes))
        for lane in reversed(range(lanes)):
            with m.If(b_mask[lane]):
                m.d.comb += lowest.eq(lane)
        single = (b_mask & (b_mask - 1)) == 0
        b_free = ~b_valid | (b_mask == 0) | (single & self.o.ready)

        m.d.comb += [
            self.o.valid.eq(b_valid & (b_mask != 0)),
            self.o.payload.input.eq(Cat(lowest, b_row)),
            self.o.payload.delta.eq(
                self.centroids[b_inputs[lowest]] -
                Mux(b_first, 0, self.centroids[b_old[lowest]]) if config.reuse
                else b_inputs[lowest]),
            self.o.payload.weight_row.eq(b_weight_row + lowest * self.groups),
            self.done.eq(b_valid & b_last & b_free),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += b_mask.eq(b_mask & ~(Const(1, lanes) << lowest))

        a_advance = ~a_valid | b_free
        m.d.comb += self.i.ready.eq(a_advance)
        if config.reuse:
            m.d.comb += [
                prev_read.en.eq(a_advance),
                prev_read.addr.eq(Cat(self.i.payload.row, self.layer)),
            ]
        with m.If(a_advance):
            m.d.sync += [
                a_valid.eq(self.i.valid),
                a_indices.eq(self.i.payload.indices),
                a_row.eq(self.i.payload.row),
                a_lanes.eq(self.i.payload.lanes),
                a_last.eq(self.i.payload.last),
            ]

        with m.If(self.start):
            m.d.sync += next_weight_row.eq(self.weight_base)
        with m.Elif(b_free):
            m.d.sync += b_valid.eq(a_valid)
            with m.If(a_valid):
                if config.reuse:
                    m.d.comb += [
                        prev_write.en.eq(1),
                        prev_write.addr.eq(Cat(a_row, self.layer)),
                        prev_write.data.eq(a_indices),
                    ]
                m.d.sync += [
                    b_row.eq(a_row),
                    b_last.eq(a_last),
                    b_weight_row.eq(next_weight_row),
                    next_weight_row.eq(next_weight_row + (self.groups << exact_log2(lanes))),
                ]
                m.d.sync += b_inputs.eq(a_indices)
                if not config.reuse:
                    m.d.sync += b_mask.eq(a_lanes)
                else:
                    m.d.sync += [b_old.eq(prev_read.data), b_first.eq(self.first)]
                    for lane in range(lanes):
                        changed = a_lanes[lane] & (self.first | (a_indices[lane] !=
                                                                 prev_read.data[lane]))
                        m.d.sync += b_mask[lane].eq(changed)
        return m
