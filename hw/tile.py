"""Processing tile: sequences a frame through the layers of the loaded network.

Per layer it runs, overlapped in one pipeline::

    I/O buffer (input bank) -> quantizer -> comparator -> delta MAC array

then streams the layer's sums through the activation into the other bank and swaps the banks.

Contract
--------
- ``layers``, ``layer_count``: the network (held stable by the top while a frame runs).
- ``from_scratch``: sampled at ``start``; every input counts as changed (first frame of a
  sequence, or baseline mode).
- ``start``: the host has filled the input bank with layer 0's cluster indices (through
  ``fill``). ``done`` pulses when the last layer's outputs are in the input bank, where
  ``result_read`` reads them while the tile is idle.
- Per layer the tile spends one setup cycle (centroid-table read, layer parameters latched), the
  scan-and-MAC phase, and the readout; :mod:`reuse_accel.sim.timing` gives the exact cycle
  count.
- Counters (per layer and per frame) are cleared at ``start`` and valid after ``done``.

Without reuse (``AccelConfig.reuse`` false) the rows go from the I/O buffer straight to the
comparator acting as the input serializer: no quantizer and no centroid tables; the input bank
holds activations for every layer, layer 0's included, and every layer computes from scratch.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .comparator import InputComparator, address_widths
from .config import COUNTER_WIDTH, AccelConfig, check_config
from .iobuffer import IOBuffer
from .mac import DeltaMacArray
from .protocol import LAYER_COUNTERS, LayerKind
from .quantizer import CentroidQuantizer, popcount

__all__ = ["ProcessingTile", "layer_descriptor_layout", "layer_counters_layout"]


def layer_descriptor_layout(config: AccelConfig) -> data.StructLayout:
    """A layer as configured by SET_LAYER."""
    widths = address_widths(config)
    neurons = unsigned(widths["input"] + 1)
    return data.StructLayout({
        "inputs": neurons,
        "outputs": neurons,
        "weight_base": unsigned(widths["weight_row"]),
        "shift": range(config.max_shift + 1),
        "relu": unsigned(1),
        "kind": LayerKind,
    })


def layer_counters_layout() -> data.StructLayout:
    """One counter per name in :data:`reuse_accel.hw.protocol.LAYER_COUNTERS`."""
    return data.StructLayout({name: unsigned(COUNTER_WIDTH) for name in LAYER_COUNTERS})


class _State(enum.Enum, shape=3):
    IDLE = 0
    SETUP = 1
    SCAN = 2
    READOUT = 3
    DONE = 4


class ProcessingTile(wiring.Component):
    """Layer sequencer around the quantizer, comparator, MAC array and I/O buffer."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        widths = address_widths(config)
        lanes = config.lanes
        act_row = data.ArrayLayout(signed(config.act_width), lanes)
        members = {
            "layers": In(data.ArrayLayout(layer_descriptor_layout(config), config.max_layers)),
            "layer_count": In(range(config.max_layers + 1)),
            "from_scratch": In(1),
            "start": In(1),
            "done": Out(1),
            "frame_cycles": Out(COUNTER_WIDTH),
            "counters": Out(data.ArrayLayout(layer_counters_layout(), config.max_layers)),
            "fill": Out(memory.WritePort.Signature(addr_width=widths["row"], shape=act_row)),
            "result_read": Out(memory.ReadPort.Signature(addr_width=widths["row"],
                                                         shape=act_row)),
            "weight_write": Out(memory.WritePort.Signature(
                addr_width=widths["weight_row"],
                shape=data.ArrayLayout(signed(config.weight_width), lanes))),
            "bias_write": Out(memory.WritePort.Signature(
                addr_width=widths["row"] + widths["layer"],
                shape=data.ArrayLayout(signed(config.bias_width), lanes))),
        }
        if config.reuse:
            members["centroid_write"] = Out(memory.WritePort.Signature(
                addr_width=widths["layer"],
                shape=data.ArrayLayout(signed(config.centroid_width), config.clusters)))
        super().__init__(members)

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes
        widths = address_widths(config)
        lane_bits = exact_log2(lanes)

        tag_layout = data.StructLayout({
            "row": unsigned(widths["row"]),
            "lanes": unsigned(lanes),
            "last": unsigned(1),
        })
        m.submodules.buffer = buffer = IOBuffer(config)
        m.submodules.comparator = comparator = InputComparator(config)
        m.submodules.mac = mac = DeltaMacArray(config)
        if config.reuse:
            m.submodules.quantizer = quantizer = CentroidQuantizer(config, tag_shape=tag_layout)
            m.submodules.centroids = centroids = memory.Memory(
                shape=data.ArrayLayout(signed(config.centroid_width), config.clusters),
                depth=1 << widths["layer"], init=[])
            centroid_read = centroids.read_port()
            wiring.connect(m, wiring.flipped(self.centroid_write), centroids.write_port())

        wiring.connect(m, wiring.flipped(self.fill), buffer.fill)
        wiring.connect(m, wiring.flipped(self.weight_write), mac.weight_write)
        wiring.connect(m, wiring.flipped(self.bias_write), mac.bias_write)
        wiring.connect(m, comparator.o, mac.items)
        wiring.connect(m, mac.act, buffer.write)

        state = Signal(_State)
        layer = Signal(widths["layer"])
        from_scratch = Signal()
        descriptor = self.layers[layer]

        # The running layer's parameters, latched in SETUP.
        in_rows = Signal(widths["groups"])
        out_groups = Signal(widths["groups"])
        outputs = Signal(widths["input"] + 1)
        last_lanes = Signal(lanes)
        last_output_lanes = Signal(lanes)
        shift = Signal(range(config.max_shift + 1))
        relu = Signal()

        if config.reuse:
            m.d.comb += [
                centroid_read.addr.eq(layer),
                centroid_read.en.eq(state == _State.SETUP),
                quantizer.centroids.eq(centroid_read.data),
                comparator.centroids.eq(centroid_read.data),
                quantizer.bypass.eq(layer == 0),
                comparator.first.eq(from_scratch),
            ]
        m.d.comb += [
            comparator.layer.eq(layer),
            comparator.weight_base.eq(descriptor.weight_base),
            comparator.groups.eq(out_groups),
            mac.layer.eq(layer),
            mac.groups.eq(out_groups),
            mac.from_scratch.eq(from_scratch),
            mac.shift.eq(shift),
            mac.relu.eq(relu),
        ]

        # Row source: reads the input bank row by row into the quantizer.
        source_row = Signal(widths["groups"])
        read_valid = Signal()
        read_tag = Signal(tag_layout)
        # The stage after the row source: the quantizer with reuse, the serializer without.
        row_sink = quantizer.i if config.reuse else comparator.i
        read_advance = ~read_valid | row_sink.ready
        issue = (state == _State.SCAN) & (source_row < in_rows)
        with m.If(state == _State.SCAN):
            m.d.comb += [
                buffer.read.addr.eq(source_row),
                buffer.read.en.eq(read_advance),
            ]
            with m.If(read_advance):
                m.d.sync += [
                    read_valid.eq(issue),
                    read_tag.row.eq(source_row),
                    read_tag.last.eq(source_row == in_rows - 1),
                    read_tag.lanes.eq(Mux(source_row == in_rows - 1, last_lanes,
                                          Const(-1, lanes))),
                ]
                with m.If(issue):
                    m.d.sync += source_row.eq(source_row + 1)
        with m.Else():
            m.d.comb += [
                buffer.read.addr.eq(self.result_read.addr),
                buffer.read.en.eq(self.result_read.en),
            ]
        m.d.comb += self.result_read.data.eq(buffer.read.data)
        if config.reuse:
            m.d.comb += [
                quantizer.i.valid.eq(read_valid),
                quantizer.i.payload.values.eq(buffer.read.data),
                quantizer.i.payload.tag.eq(read_tag),
                comparator.i.valid.eq(quantizer.o.valid),
                comparator.i.payload.indices.eq(quantizer.o.payload.indices),
                comparator.i.payload.row.eq(quantizer.o.payload.tag.row),
                comparator.i.payload.lanes.eq(quantizer.o.payload.tag.lanes),
                comparator.i.payload.last.eq(quantizer.o.payload.tag.last),
                quantizer.o.ready.eq(comparator.i.ready),
            ]
        else:
            m.d.comb += [
                comparator.i.valid.eq(read_valid),
                comparator.i.payload.indices.eq(buffer.read.data),
                comparator.i.payload.row.eq(read_tag.row),
                comparator.i.payload.lanes.eq(read_tag.lanes),
                comparator.i.payload.last.eq(read_tag.last),
            ]

        # Counters.
        counters = self.counters[layer]
        with m.If(state != _State.IDLE):
            m.d.sync += self.frame_cycles.eq(self.frame_cycles + 1)
        with m.If((state != _State.IDLE) & (state != _State.DONE)):
            m.d.sync += counters.cycles.eq(counters.cycles + 1)
        if config.reuse:
            with m.If(quantizer.o.valid & quantizer.o.ready):
                outside = quantizer.o.payload.outside & quantizer.o.payload.tag.lanes
                m.d.sync += counters.out_of_range.eq(counters.out_of_range + popcount(outside))
        with m.If(mac.act.en):
            real = Mux(mac.act.addr == out_groups - 1, last_output_lanes, Const(-1, lanes))
            m.d.sync += counters.saturated_outputs.eq(
                counters.saturated_outputs + popcount(mac.saturated & real))
        with m.If(mac.items.valid & mac.items.ready):
            m.d.sync += [
                counters.changed_inputs.eq(counters.changed_inputs + 1),
                counters.weight_rows.eq(counters.weight_rows + out_groups),
                counters.macs.eq(counters.macs + outputs),
            ]

        scan_done = Signal()
        with m.If(comparator.done):
            m.d.sync += scan_done.eq(1)

        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(self.start):
                    m.d.sync += [
                        state.eq(_State.SETUP),
                        layer.eq(0),
                        from_scratch.eq(self.from_scratch),
                        self.frame_cycles.eq(0),
                        self.counters.eq(0),
                    ]
            with m.Case(_State.SETUP):
                def final_row_lanes(count):
                    """Lanes that hold real values in the last row of ``count`` values."""
                    remainder = count[:lane_bits] if lane_bits else Const(0, 1)
                    return Mux(remainder == 0, Const(-1, lanes),
                               (Const(1, lanes + 1) << remainder) - 1)

                m.d.sync += [
                    in_rows.eq((descriptor.inputs + lanes - 1) >> lane_bits),
                    out_groups.eq((descriptor.outputs + lanes - 1) >> lane_bits),
                    outputs.eq(descriptor.outputs),
                    last_lanes.eq(final_row_lanes(descriptor.inputs)),
                    last_output_lanes.eq(final_row_lanes(descriptor.outputs)),
                    shift.eq(descriptor.shift),
                    relu.eq(descriptor.relu),
                    source_row.eq(0),
                    scan_done.eq(0),
                    state.eq(_State.SCAN),
                ]
                m.d.comb += comparator.start.eq(1)
            with m.Case(_State.SCAN):
                with m.If(scan_done & mac.idle):
                    m.d.comb += mac.readout_start.eq(1)
                    m.d.sync += state.eq(_State.READOUT)
            with m.Case(_State.READOUT):
                with m.If(mac.readout_done):
                    m.d.comb += buffer.swap.eq(1)
                    m.d.sync += layer.eq(layer + 1)
                    with m.If(layer == self.layer_count - 1):
                        m.d.sync += state.eq(_State.DONE)
                    with m.Else():
                        m.d.sync += state.eq(_State.SETUP)
            with m.Case(_State.DONE):
                m.d.comb += self.done.eq(1)
                m.d.sync += state.eq(_State.IDLE)
        return m
