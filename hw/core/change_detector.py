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
  of a sequence, or baseline mode). ``base`` (where the layer's rows start in the state
  memory), ``first``, ``bypass`` and ``centroids`` hold while a layer runs.
- ``done``: high for one cycle once the ``last`` row has left and no input is in flight.
- ``outside``: how many inputs were found outside the calibrated range, counted (registered)
  :attr:`ChangeDetector.outside_latency` cycles after the row or input they are in left its
  stage (so up to a cycle after ``done``); added up over a layer, the inputs outside it in this
  frame.

How
---
Each input's state lives in a memory of ``AccelConfig.state_rows`` rows of L lanes (every
layer's rows after the previous layer's, the running layer's from ``base``): its centroid,
``outside`` flag and the interval of doubled values that quantize alike
(:class:`~reuse_accel.hw.core.quantizer.CentroidQuantizer`). A row's state is read as the row
enters; every lane whose doubled value is still inside its interval is unchanged (two
comparisons per lane, no quantization). The other lanes leave the
:class:`~reuse_accel.hw.core.serializer.InputSerializer` one per cycle into one shared
quantizer; the quantized input's new state is written back to its lane, and it is passed on
when its centroid changed (a lane that only crossed into or out of the calibrated range is not).

Every quantized input enters a queue with its delta and whether its centroid changed; the
queue's head is offered on ``o`` when it changed and dropped in one cycle when not. The
quantizer never stalls: the serializer hands an input on only while fewer than
:meth:`ChangeDetector.queue_depth` inputs are between it and ``o`` (a registered count of them),
so the queue always has room, and no ready signal runs from ``o`` through the quantizer back to
the state memory.

Timing: :attr:`ChangeDetector.fill_latency` cycles from a row's acceptance to its first lane
leaving the serializer, then :meth:`ChangeDetector.quantize_latency` cycles to the queue's head
(the quantizer and the queue's write), where it waits for ``o``; the serializer hands input
``k`` on no earlier than the cycle after input ``k - C`` left the head (``C`` the queue depth).
:mod:`reuse_accel.sim.timing` models both.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..config import AccelConfig, check_config
from .compare import less_than
from .layouts import changed_input_layout, position_layout
from .popcount import popcount
from .quantizer import CentroidQuantizer, interval_layout
from .register import StreamRegister
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

    fill_latency = 2 + StreamRegister.latency + InputSerializer.latency
    """Cycles from a row's acceptance to its first lane leaving the serializer: the registered
    read of the row's state, the state's register, the compared row's register, the
    serializer."""

    @staticmethod
    def quantize_latency(config: AccelConfig) -> int:
        """Cycles from a lane leaving the serializer to its earliest offer on ``o``: the
        quantizer and the queue's write."""
        return CentroidQuantizer.latency(config) + 1

    @classmethod
    def queue_depth(cls, config: AccelConfig) -> int:
        """Inputs at most between the serializer and ``o`` (in the quantizer or the queue):
        one more than :meth:`quantize_latency`, so that a count registered a cycle late still
        lets one input through every cycle."""
        return cls.quantize_latency(config) + 1

    outside_latency = 2
    """Cycles from a row's (or an input's) handshake to its count on ``outside``."""

    done_latency = 1
    """Cycles from the last row leaving the serializer, or the last input leaving the queue,
    to ``done``."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        if not config.reuse:
            raise ValueError("the change detector is part of hardware generated with reuse; "
                             "without reuse the tile uses the InputSerializer alone")
        lanes = config.lanes
        row = {
            "values": data.ArrayLayout(signed(config.act_width), lanes),
            "row": unsigned(config.row_bits),
            "lanes": unsigned(lanes),
            "last": unsigned(1),
        }
        if config.conv:
            row["position"] = position_layout(config)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(row))),
            "o": Out(stream.Signature(changed_input_layout(config))),
            "base": In(config.state_row_bits),
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
            shape=row_state, depth=config.state_rows, init=[])
        # Not transparent: a row's state is read as the row enters and its lanes are written
        # after they leave the quantizer, never in the same cycle for the same row.
        state_read = state.read_port()
        state_write = state.write_port(granularity=1)
        # The value is on the critical path into the quantizer; the previous centroid is not.
        position = position_layout(config) if config.conv else None
        m.submodules.serializer = serializer = InputSerializer(
            config, lane_shape=signed(config.act_width),
            side_shape=signed(config.centroid_width), tag_shape=position)
        # The compared row is registered before the serializer picks its first lane (the
        # comparison and the lane choice would otherwise share one cycle).
        m.submodules.compared = compared = StreamRegister(serializer.i.payload.shape())
        wiring.connect(m, compared.o, serializer.i)
        tag = {"input": unsigned(config.input_bits), "previous": signed(config.centroid_width)}
        if config.conv:
            tag["position"] = position
        m.submodules.quantizer = quantizer = CentroidQuantizer(
            config, tag_shape=data.StructLayout(tag))

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
            state_read.addr.eq(self.base + self.i.payload.row),
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

        if config.conv:
            # Where the row is in a conv layer's map: it travels with the row and leaves with
            # each of its lanes.
            read_position = Signal(position)
            row_position = Signal(position)
            with m.If(read_advance):
                m.d.sync += read_position.eq(self.i.payload.position)
            with m.If(advance):
                m.d.sync += row_position.eq(read_position)
            m.d.comb += compared.i.payload.tag.eq(row_position)

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

        # One lane at a time through the quantizer, while the queue has room for it: a count of
        # the inputs between the serializer and o, and whether it is below the queue's depth,
        # both registered.
        capacity = self.queue_depth(config)
        entry_fields = {"changed": unsigned(1), "input": unsigned(config.input_bits),
                        "delta": signed(config.delta_width)}
        if config.conv:
            entry_fields["position"] = position
        entry = data.StructLayout(entry_fields)
        m.submodules.queue = queue = SyncFIFO(width=entry.size, depth=capacity)
        quantized = quantizer.o.payload
        written = Signal(entry)
        head = entry(queue.r_data)
        in_flight = Signal(range(capacity + 1))
        room = Signal(init=1)
        leaving = serializer.o.payload
        handed = serializer.o.valid & room
        popped = queue.r_rdy & queue.r_en
        next_in_flight = Signal.like(in_flight)
        m.d.comb += next_in_flight.eq(in_flight + handed - popped)
        m.d.sync += [in_flight.eq(next_in_flight), room.eq(next_in_flight < capacity)]
        m.d.comb += [
            quantizer.centroids.eq(self.centroids),
            quantizer.bypass.eq(self.bypass),
            quantizer.i.valid.eq(handed),
            quantizer.i.payload.value.eq(leaving.value),
            quantizer.i.payload.tag.input.eq(leaving.input),
            quantizer.i.payload.tag.previous.eq(leaving.side),
            serializer.o.ready.eq(room),
        ]
        if config.conv:
            m.d.comb += [quantizer.i.payload.tag.position.eq(leaving.tag),
                         written.position.eq(quantized.tag.position),
                         self.o.payload.position.eq(head.position)]

        # Every quantized input is queued with its delta; the head is offered on o when its
        # centroid changed and dropped otherwise.
        old = Mux(self.first, 0, quantized.tag.previous)
        m.d.comb += [
            written.changed.eq(self.first | (quantized.centroid != quantized.tag.previous)),
            written.input.eq(quantized.tag.input),
            written.delta.eq(quantized.centroid - old),
            queue.w_data.eq(written),
            queue.w_en.eq(quantizer.o.valid),
            self.o.valid.eq(queue.r_rdy & head.changed),
            self.o.payload.input.eq(head.input),
            self.o.payload.delta.eq(head.delta),
            queue.r_en.eq(~head.changed | self.o.ready),
        ]

        # The quantized lane's new state, written back as it leaves the quantizer.
        lane_state = state_write.data[0].shape()
        new_state = Signal(lane_state)
        m.d.comb += [
            new_state.centroid.eq(quantized.centroid),
            new_state.interval.eq(quantized.interval),
            new_state.outside.eq(quantized.outside),
            state_write.addr.eq(self.base + quantized.tag.input[lane_bits:]),
            state_write.en.eq(Mux(quantizer.o.valid,
                                  Const(1, lanes) << quantized.tag.input[:lane_bits], 0)),
        ]
        for lane in range(lanes):
            m.d.comb += state_write.data[lane].eq(new_state)
        item_outside = Signal()
        m.d.sync += [
            item_outside.eq(quantizer.o.valid & quantized.outside),
            self.outside.eq(popcount(kept_outside) + item_outside),
        ]

        # Done once the last row has left the serializer and nothing is in flight.
        finishing = Signal()
        with m.If(serializer.done):
            m.d.sync += finishing.eq(1)
        with m.If(finishing & (in_flight == 0)):
            m.d.comb += self.done.eq(1)
            m.d.sync += finishing.eq(0)
        return m
