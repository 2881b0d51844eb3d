"""Change detector: keeps each layer's previous cluster indices and passes on what changed.

Contract
--------
- ``i``: stream of index rows: L cluster indices of one layer's inputs, the row number, the mask
  of lanes that hold real inputs, and ``last`` on the layer's final row. Rows of a layer arrive
  in order, starting with row 0.
- ``o``: stream of changed inputs (:func:`~reuse_accel.hw.core.layouts.changed_input_layout`),
  one per cycle at most, in ascending input order, with ``delta = centroid[new] -
  centroid[old]``.
- ``first``: every real input counts as changed and the old centroid is taken as 0 (first frame
  of a sequence, or baseline mode). ``layer``, ``first`` and ``centroids`` hold while a layer
  runs.
- ``done``: high in the cycle the ``last`` row leaves.
- The previous indices live in a memory of ``max_layers`` x ``max_groups`` rows; a row's entry
  is read as the row enters and written with the new indices as the row moves on to the
  :class:`~reuse_accel.hw.core.serializer.InputSerializer`.
- Latency :attr:`ChangeDetector.latency`: one cycle for the registered read of the previous
  indices, one for the compared row's register, then the serializer's. Only the lane leaving
  the serializer looks its two centroids up: one pair of K-way lookups instead of L.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config
from .layouts import changed_input_layout
from .register import StreamRegister
from .serializer import InputSerializer

__all__ = ["ChangeDetector"]


class ChangeDetector(wiring.Component):
    """Compare each input's cluster with the previous frame's; emit the changed ones."""

    latency = 1 + StreamRegister.latency + InputSerializer.latency
    """Cycles from a row's acceptance to its first changed input on ``o``."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        if not config.reuse:
            raise ValueError("the change detector is part of hardware generated with reuse; "
                             "without reuse the tile uses the InputSerializer alone")
        lanes = config.lanes
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "indices": data.ArrayLayout(unsigned(config.index_width), lanes),
                "row": unsigned(config.row_bits),
                "lanes": unsigned(lanes),
                "last": unsigned(1),
            }))),
            "o": Out(stream.Signature(changed_input_layout(config))),
            "layer": In(config.layer_bits),
            "first": In(1),
            "centroids": In(data.ArrayLayout(signed(config.centroid_width), config.clusters)),
            "done": Out(1),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes
        index_row = data.ArrayLayout(unsigned(config.index_width), lanes)
        pair = data.StructLayout({"new": unsigned(config.index_width),
                                  "old": unsigned(config.index_width)})

        m.submodules.previous = previous = memory.Memory(
            shape=index_row, depth=config.max_layers << config.row_bits, init=[])
        # Not transparent: a row's entry is read as the row enters and written as it moves on,
        # never in the same cycle for the same row.
        prev_read = previous.read_port()
        prev_write = previous.write_port()
        m.submodules.serializer = serializer = InputSerializer(config, lane_shape=pair)
        # The compared row is registered before the serializer picks its first lane: the
        # memory's output, the comparison and the lane choice would otherwise share one cycle.
        m.submodules.compared = compared = StreamRegister(serializer.i.payload.shape())
        wiring.connect(m, compared.o, serializer.i)

        # The row waits one cycle for its previous indices (registered read).
        valid = Signal()
        indices = Signal(index_row)
        row = Signal(config.row_bits)
        real = Signal(lanes)
        last = Signal()

        advance = ~valid | compared.i.ready
        m.d.comb += [
            self.i.ready.eq(advance),
            prev_read.en.eq(advance),
            prev_read.addr.eq(Cat(self.i.payload.row, self.layer)),
        ]
        with m.If(advance):
            m.d.sync += [
                valid.eq(self.i.valid),
                indices.eq(self.i.payload.indices),
                row.eq(self.i.payload.row),
                real.eq(self.i.payload.lanes),
                last.eq(self.i.payload.last),
            ]

        m.d.comb += [
            compared.i.valid.eq(valid),
            compared.i.payload.row.eq(row),
            compared.i.payload.last.eq(last),
            prev_write.addr.eq(Cat(row, self.layer)),
            prev_write.data.eq(indices),
            prev_write.en.eq(valid & compared.i.ready),
        ]
        for lane in range(lanes):
            old = prev_read.data[lane]
            m.d.comb += [
                compared.i.payload.values[lane].new.eq(indices[lane]),
                compared.i.payload.values[lane].old.eq(old),
                compared.i.payload.mask[lane].eq(
                    real[lane] & (self.first | (indices[lane] != old))),
            ]

        leaving = serializer.o.payload.value
        m.d.comb += [
            self.o.valid.eq(serializer.o.valid),
            serializer.o.ready.eq(self.o.ready),
            self.o.payload.input.eq(serializer.o.payload.input),
            self.o.payload.delta.eq(self.centroids[leaving.new] -
                                    Mux(self.first, 0, self.centroids[leaving.old])),
            self.done.eq(serializer.done),
        ]
        return m
