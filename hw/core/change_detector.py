"""Change detector: finds the inputs whose cluster changed since the previous frame.

Contract
--------
- ``i``: stream of value rows: L fixed-point values of one layer's inputs (cluster indices for
  layer 0, with ``bypass``), the row number, the mask of lanes that hold real inputs, and
  ``last`` on the layer's final row. Rows of a layer arrive in order, starting with row 0.
- ``o``: stream of changed inputs (:func:`~reuse_accel.hw.core.layouts.changed_input_layout`),
  one per cycle at most, in ascending input order, with ``delta = centroid[new] -
  centroid[old]``. An input counts as changed when its centroid differs from the previous
  frame's.
- ``first``: every real input counts as changed and the old centroid is taken as 0 (first frame
  of a sequence, or baseline mode). ``layer``, ``first``, ``bypass`` and ``centroids`` hold
  while a layer runs.
- ``done``: high for one cycle once the ``last`` row has left and no input is in flight.
- ``outside``: how many inputs were found outside the calibrated range, counted (registered)
  :attr:`ChangeDetector.outside_latency` cycles after the row or input they are in left its
  stage (so up to a cycle after ``done``); added up over a layer, the inputs outside it in this
  frame.

How
---
Each input's state lives in a memory of ``max_layers`` x ``max_groups`` rows of L lanes: its
centroid, ``outside`` flag and the interval of doubled values that quantize alike
(:class:`~reuse_accel.hw.core.quantizer.CentroidQuantizer`). A row's state is read as the row
enters; every lane whose doubled value is still inside its interval is unchanged (two
comparisons per lane, no quantization). The other lanes leave the
:class:`~reuse_accel.hw.core.serializer.InputSerializer` one per cycle into one shared
quantizer; the quantized input's new state is written back to its lane, and it is passed on
when its centroid changed (a lane that only crossed into or out of the calibrated range is not).

Timing: :attr:`ChangeDetector.fill_latency` cycles from a row's acceptance to its first lane
leaving the serializer, then :meth:`ChangeDetector.quantize_latency` stages to the output (the
quantizer and the delta register), which close up around bubbles. :mod:`reuse_accel.sim.timing`
models both.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..config import AccelConfig, check_config
from .compare import less_than
from .layouts import changed_input_layout
from .popcount import popcount
from .quantizer import CentroidQuantizer, interval_layout
from .register import SkidBuffer
from .serializer import InputSerializer

__all__ = ["ChangeDetector", "input_state_layout"]


def input_state_layout(config: AccelConfig) -> data.StructLayout:
    """What the change detector keeps of one input between frames."""
    return data.StructLayout({
        "centroid": signed(config.centroid_width),
        "interval": interval_layout(config),
        "outside": unsigned(1),
    })


class ChangeDetector(wiring.Component):
    """Compare each input with the interval of its previous cluster; emit the changed ones."""

    fill_latency = 2 + SkidBuffer.latency + InputSerializer.latency
    """Cycles from a row's acceptance to its first lane leaving the serializer: the registered
    read of the row's state, the state's register, the compared row's register, the
    serializer."""

    @staticmethod
    def quantize_latency(config: AccelConfig) -> int:
        """Stages from a lane leaving the serializer to its offer on ``o``: the quantizer and
        the delta register."""
        return CentroidQuantizer.latency(config) + 1

    outside_latency = 2
    """Cycles from a row's (or an input's) handshake to its count on ``outside``."""

    done_latency = 1
    """Cycles from the last row leaving the serializer, or the last input leaving the delta
    register, to ``done``."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        if not config.reuse:
            raise ValueError("the change detector is part of hardware generated with reuse; "
                             "without reuse the tile uses the InputSerializer alone")
        lanes = config.lanes
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "values": data.ArrayLayout(signed(config.act_width), lanes),
                "row": unsigned(config.row_bits),
                "lanes": unsigned(lanes),
                "last": unsigned(1),
            }))),
            "o": Out(stream.Signature(changed_input_layout(config))),
            "layer": In(config.layer_bits),
            "first": In(1),
            "bypass": In(1),
            "centroids": In(data.ArrayLayout(signed(config.centroid_width), config.clusters)),
            "done": Out(1),
            "outside": Out(range(lanes + 2)),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes
        lane_bits = exact_log2(lanes)
        row_state = data.ArrayLayout(input_state_layout(config), lanes)

        m.submodules.state = state = memory.Memory(
            shape=row_state, depth=config.max_layers << config.row_bits, init=[])
        # Not transparent: a row's state is read as the row enters and its lanes are written
        # after they leave the quantizer, never in the same cycle for the same row.
        state_read = state.read_port()
        state_write = state.write_port(granularity=1)
        # The value is on the critical path into the quantizer; the previous centroid is not.
        m.submodules.serializer = serializer = InputSerializer(
            config, lane_shape=signed(config.act_width),
            side_shape=signed(config.centroid_width))
        # The compared row is registered before the serializer picks its first lane (the
        # comparison and the lane choice would otherwise share one cycle) in a skid buffer, whose
        # registered ready cuts the chain from the address generator's ready through the
        # quantizer stages and the serializer back to the state memory's read enable.
        m.submodules.compared = compared = SkidBuffer(serializer.i.payload.shape())
        wiring.connect(m, compared.o, serializer.i)
        m.submodules.quantizer = quantizer = CentroidQuantizer(
            config, tag_shape=data.StructLayout({"input": unsigned(config.input_bits),
                                                 "previous": signed(config.centroid_width)}))

        # The row waits one cycle for its state (registered read), then one more with the state
        # registered beside it: the block RAM's output and the interval tests would otherwise
        # share one cycle (14.8 ns on the ECP5).
        read_valid = Signal()
        read_values = Signal(data.ArrayLayout(signed(config.act_width), lanes))
        read_row = Signal(config.row_bits)
        read_real = Signal(lanes)
        read_last = Signal()
        valid = Signal()
        values = Signal.like(read_values)
        row = Signal.like(read_row)
        real = Signal(lanes)
        last = Signal()
        state_row = Signal.like(state_read.data)

        advance = ~valid | compared.i.ready
        read_advance = ~read_valid | advance
        m.d.comb += [
            self.i.ready.eq(read_advance),
            state_read.en.eq(read_advance),
            state_read.addr.eq(Cat(self.i.payload.row, self.layer)),
        ]
        with m.If(read_advance):
            m.d.sync += [
                read_valid.eq(self.i.valid),
                read_values.eq(self.i.payload.values),
                read_row.eq(self.i.payload.row),
                read_real.eq(self.i.payload.lanes),
                read_last.eq(self.i.payload.last),
            ]
        with m.If(advance):
            m.d.sync += [
                valid.eq(read_valid),
                values.eq(read_values),
                row.eq(read_row),
                real.eq(read_real),
                last.eq(read_last),
                state_row.eq(state_read.data),
            ]

        kept = Signal(lanes)     # lanes still inside their interval
        m.d.comb += [
            compared.i.valid.eq(valid),
            compared.i.payload.row.eq(row),
            compared.i.payload.last.eq(last),
            compared.i.payload.mask.eq(real & ~kept),
        ]
        for lane in range(lanes):
            previous = state_row[lane]
            doubled = values[lane] << 1
            m.d.comb += [
                kept[lane].eq(~self.first & less_than(previous.interval.low, doubled) &
                              ~less_than(previous.interval.high, doubled)),
                compared.i.payload.values[lane].eq(values[lane]),
                compared.i.payload.sides[lane].eq(previous.centroid),
            ]
        # The outside inputs among those kept, registered before they are counted.
        kept_outside = Signal(lanes)
        with m.If(valid & compared.i.ready):
            m.d.sync += kept_outside.eq(
                Cat(state_row[lane].outside for lane in range(lanes)) & kept & real)
        with m.Else():
            m.d.sync += kept_outside.eq(0)

        # One lane at a time through the quantizer.
        leaving = serializer.o.payload
        m.d.comb += [
            quantizer.centroids.eq(self.centroids),
            quantizer.bypass.eq(self.bypass),
            quantizer.i.valid.eq(serializer.o.valid),
            quantizer.i.payload.value.eq(leaving.value),
            quantizer.i.payload.tag.input.eq(leaving.input),
            quantizer.i.payload.tag.previous.eq(leaving.side),
            serializer.o.ready.eq(quantizer.i.ready),
        ]

        # The delta register; an input whose centroid did not change is dropped here.
        delta_valid = Signal()
        changed = Signal()
        delta_input = Signal(config.input_bits)
        delta = Signal(signed(config.delta_width))
        delta_advance = ~delta_valid | ~changed | self.o.ready
        quantized = quantizer.o.payload
        old = Mux(self.first, 0, quantized.tag.previous)
        m.d.comb += quantizer.o.ready.eq(delta_advance)
        with m.If(delta_advance):
            m.d.sync += [
                delta_valid.eq(quantizer.o.valid),
                changed.eq(self.first | (quantized.centroid != quantized.tag.previous)),
                delta_input.eq(quantized.tag.input),
                delta.eq(quantized.centroid - old),
            ]
        m.d.comb += [
            self.o.valid.eq(delta_valid & changed),
            self.o.payload.input.eq(delta_input),
            self.o.payload.delta.eq(delta),
        ]

        # The quantized lane's new state, written back as it moves on.
        lane_state = state_write.data[0].shape()
        new_state = Signal(lane_state)
        m.d.comb += [
            new_state.centroid.eq(quantized.centroid),
            new_state.interval.eq(quantized.interval),
            new_state.outside.eq(quantized.outside),
            state_write.addr.eq(Cat(quantized.tag.input[lane_bits:], self.layer)),
            state_write.en.eq(Mux(quantizer.o.valid & delta_advance,
                                  Const(1, lanes) << quantized.tag.input[:lane_bits], 0)),
        ]
        for lane in range(lanes):
            m.d.comb += state_write.data[lane].eq(new_state)
        item_outside = Signal()
        m.d.sync += [
            item_outside.eq(quantizer.o.valid & delta_advance & quantized.outside),
            self.outside.eq(popcount(kept_outside) + item_outside),
        ]

        # Done once the last row has left the serializer and nothing is in flight.
        finishing = Signal()
        with m.If(serializer.done):
            m.d.sync += finishing.eq(1)
        with m.If(finishing & quantizer.idle & ~delta_valid):
            m.d.comb += self.done.eq(1)
            m.d.sync += finishing.eq(0)
        return m
