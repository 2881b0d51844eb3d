"""Row reader: a layer's input rows out of the I/O buffer, one per cycle, as a stream.

Contract
--------
- ``start``: a layer begins; latches its ``inputs`` (the count of its input values), and the
  next row read is row 0.
- ``active``: rows may be read (the tile's scan phase); ``read`` drives the I/O buffer's read
  port while active.
- ``o``: the rows ``0 .. ceil(inputs / L) - 1`` in order: L values, and a tag with the row
  number, the mask of lanes that hold real inputs (the last row may be partial) and ``last`` on
  the final row. The values come straight from the buffer's registered read port, which holds
  them while ``o`` stalls.
- Latency :attr:`RowReader.latency`: the buffer's read latency; one row per cycle.
- In hardware with conv layers the tag also carries the row's ``position`` in a conv layer's
  map, and with ``map`` (a conv layer runs) its real lanes are ``map_lanes``: both describe
  the row about to be read (a :class:`~reuse_accel.hw.layers.conv.ConvScanner`'s), and
  ``advance`` is high in the cycle it is read.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config
from .iobuffer import IOBuffer
from .layouts import position_layout
from .rows import last_row_mask, row_count

__all__ = ["RowReader", "row_tag_layout"]


def row_tag_layout(config: AccelConfig) -> data.StructLayout:
    """What travels with a row of inputs: its number, its real lanes, whether it is the last,
    and (with conv layers) its position in a conv layer's map."""
    fields = {
        "row": unsigned(config.row_bits),
        "lanes": unsigned(config.lanes),
        "last": unsigned(1),
    }
    if config.conv:
        fields["position"] = position_layout(config)
    return data.StructLayout(fields)


class RowReader(wiring.Component):
    """Read a layer's input rows from the I/O buffer in order."""

    latency = IOBuffer.read_latency
    """Cycles from a row's read to its offer on ``o``."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        act_row = data.ArrayLayout(signed(config.act_width), config.lanes)
        members = {
            "start": In(1),
            "inputs": In(config.neuron_count_bits),
            "active": In(1),
            "read": In(memory.ReadPort.Signature(addr_width=config.row_bits, shape=act_row)),
            "o": Out(stream.Signature(data.StructLayout({
                "values": act_row,
                "tag": row_tag_layout(config),
            }))),
        }
        if config.conv:
            members.update({
                "map": In(1),
                "position": In(position_layout(config)),
                "map_lanes": In(config.lanes),
                "advance": Out(1),
            })
        super().__init__(members)

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes

        rows = Signal(config.row_count_bits)
        last_lanes = Signal(lanes)
        row = Signal(config.row_count_bits)
        with m.If(self.start):
            m.d.sync += [
                rows.eq(row_count(self.inputs, lanes)),
                last_lanes.eq(last_row_mask(self.inputs, lanes)),
                row.eq(0),
            ]

        # A row offered stays offered until taken, whether or not the reader stays active.
        advance = ~self.o.valid | self.o.ready
        issue = self.active & (row < rows)
        m.d.comb += [
            self.read.addr.eq(row),
            self.read.en.eq(self.active & advance),
            self.o.payload.values.eq(self.read.data),
        ]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(issue)
            with m.If(issue):
                final = row == rows - 1
                real = Mux(final, last_lanes, Const(-1, lanes))
                if config.conv:
                    real = Mux(self.map, self.map_lanes, real)
                    m.d.sync += self.o.payload.tag.position.eq(self.position)
                m.d.sync += [
                    self.o.payload.tag.row.eq(row),
                    self.o.payload.tag.last.eq(final),
                    self.o.payload.tag.lanes.eq(real),
                    row.eq(row + 1),
                ]
        if config.conv:
            m.d.comb += self.advance.eq(advance & issue)
        return m
