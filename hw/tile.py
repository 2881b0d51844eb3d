"""Processing tile: sequences a frame through the layers of the loaded network.

Per layer it runs, overlapped in one pipeline::

    I/O buffer (input bank) -> change detector (interval test per lane, then the inputs that
    left their interval one at a time through the quantizer) -> address generator of the
    layer's kind -> delta MAC array

then streams the layer's sums through the activation into the other bank and swaps the banks.
Hardware generated without reuse has the input serializer in place of the change detector; the
tile chooses between them once, at generation.

Contract
--------
- ``layers``, ``layer_count``: the network (held stable by the top while a frame runs).
- ``from_scratch``: sampled at ``start``; every input counts as changed (first frame of a
  sequence, or baseline mode).
- ``start``: the host has filled the input bank with layer 0's cluster indices (through
  ``fill``). ``done`` pulses when the last layer's outputs are in the input bank, where
  ``result_read`` reads them while the tile is idle.
- Per layer the tile spends :attr:`ProcessingTile.setup_latency` setup cycles (centroid-table
  read, layer parameters latched), the scan-and-MAC phase, and the readout;
  :mod:`reuse_accel.sim.timing` gives the exact cycle count.
- Counters (per layer and per frame) are cleared at ``start`` and valid after ``done``.

Each layer's input state and sums follow the previous layer's in their memories: the tile keeps
the running bases. In hardware with conv layers a :class:`~reuse_accel.hw.layers.conv.
ConvScanner` follows the row reader (each row's position, a conv layer's real lanes, the conv
address generator's tables), and a conv layer with a pool is read out by a
:class:`~reuse_accel.hw.layers.conv.PoolWalker`; the next layer starts once that readout is
done instead of overlapping it.

Without reuse (``AccelConfig.reuse`` false) there are no quantizer and no centroid tables; the
input bank holds activations for every layer, layer 0's included, and every layer computes from
scratch.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig, check_config
from .core.change_detector import ChangeDetector
from .core.iobuffer import IOBuffer
from .core.layouts import position_layout
from .core.mac import DeltaMacArray
from .core.popcount import popcount
from .core.register import SkidBuffer
from .core.row_reader import RowReader
from .core.rows import last_row_mask, row_count
from .core.serializer import InputSerializer
from .layers import gateware_kinds, layer_descriptor_layout
from .layers.conv import ConvScanner, PoolWalker
from .protocol import LAYER_COUNTERS, LayerKind, PoolCode

__all__ = ["ProcessingTile", "frame_cycles_shape", "layer_counters_layout", "tile_signature"]


def layer_counters_layout(config: AccelConfig) -> data.StructLayout:
    """One counter per name in :data:`reuse_accel.hw.protocol.LAYER_COUNTERS`, each as wide as
    the largest count a layer of this hardware can reach (it is sent zero-extended to 32 bits):
    none can wrap, and none costs 32 flip-flops and a 32-bit adder where a few bits do."""
    inputs, items = config.max_inputs, config.max_items_per_input
    bounds = {
        "cycles": config.layer_cycle_bound,
        "changed_inputs": inputs,
        "out_of_range": inputs,
        "weight_rows": inputs * items,
        "macs": inputs * items * config.lanes,
        "saturated_outputs": max(inputs, config.sum_rows * config.lanes),
    }
    return data.StructLayout({name: unsigned(bounds[name].bit_length())
                              for name in LAYER_COUNTERS})


def frame_cycles_shape(config: AccelConfig):
    """The frame cycle counter: every layer at its bound, and the done cycle."""
    return unsigned((config.max_layers * config.layer_cycle_bound + 1).bit_length())


def tile_signature(config: AccelConfig) -> wiring.Signature:
    """The ports of a :class:`ProcessingTile` of this configuration (the command front end
    drives their flip)."""
    lanes = config.lanes
    act_row = data.ArrayLayout(signed(config.act_width), lanes)
    members = {
        "layers": In(data.ArrayLayout(layer_descriptor_layout(config), config.max_layers)),
        "layer_count": In(range(config.max_layers + 1)),
        "from_scratch": In(1),
        "start": In(1),
        "done": Out(1),
        "frame_cycles": Out(frame_cycles_shape(config)),
        "counters": Out(data.ArrayLayout(layer_counters_layout(config), config.max_layers)),
        "fill": Out(memory.WritePort.Signature(addr_width=config.row_bits, shape=act_row)),
        "result_read": Out(memory.ReadPort.Signature(addr_width=config.row_bits,
                                                     shape=act_row)),
        "weight_write": Out(memory.WritePort.Signature(
            addr_width=config.weight_row_bits,
            shape=data.ArrayLayout(signed(config.weight_width), lanes))),
        "bias_write": Out(memory.WritePort.Signature(
            addr_width=config.group_bits + config.layer_bits,
            shape=data.ArrayLayout(signed(config.bias_width), lanes))),
    }
    if config.reuse:
        members["centroid_write"] = Out(memory.WritePort.Signature(
            addr_width=config.layer_bits,
            shape=data.ArrayLayout(signed(config.centroid_width), config.clusters)))
    return wiring.Signature(members)


class _State(enum.Enum, shape=3):
    IDLE = 0
    SETUP = 1
    SCAN = 2
    LEAD = 3      # a layer's readout runs; the next layer starts when the lead is over
    FINISH = 4   # the last layer's readout runs
    DONE = 5
    POOLING = 6  # a pooled layer's readout runs; the next layer starts after it


class ProcessingTile(wiring.Component):
    """Layer sequencer around the I/O buffer, quantizer, change detector, address generators
    and MAC array."""

    setup_latency = 1
    """Cycles per layer before its first row is read: the centroid table read, the layer's
    parameters latched."""

    done_latency = 1
    """Cycles per frame after the last layer: the done cycle."""

    @staticmethod
    def fill_latency(config: AccelConfig) -> int:
        """Cycles from the end of setup to a layer's first row in the serializer: the row
        reader's buffer read and the row's skid buffer, then the change detector's state read and
        compared row (with reuse) and the serializer."""
        if config.reuse:
            return RowReader.latency + SkidBuffer.latency + ChangeDetector.fill_latency
        return RowReader.latency + SkidBuffer.latency + InputSerializer.latency

    @staticmethod
    def quantize_latency(config: AccelConfig) -> int:
        """Stages from a lane leaving the serializer to its offer to the address generator: the
        change detector's quantizer and queue write with reuse, none without."""
        return ChangeDetector.quantize_latency(config) if config.reuse else 0

    @classmethod
    def lead_margin(cls, config: AccelConfig) -> int:
        """Cycles from the start of a layer's setup to the earliest sum read of its first MAC
        item, less one: setup, fill, the quantizer stages, the fastest address generator, the MAC
        array's item register and weight read."""
        generator = min(module.AddressGenerator.latency
                        for module in gateware_kinds(config).values())
        return (cls.setup_latency + cls.fill_latency(config) + cls.quantize_latency(config) +
                generator + DeltaMacArray.sum_read_latency - 1)

    @classmethod
    def readout_lead(cls, config: AccelConfig, groups: int) -> int:
        """Cycles from the start of a layer's readout of ``groups`` rows to the next layer's
        setup: the first row must be written before the next layer reads it
        (:attr:`DeltaMacArray.readout_latency`), and the next layer's first sum read must come
        after the readout's last (``groups`` reads)."""
        return max(DeltaMacArray.readout_latency, groups - cls.lead_margin(config))

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        super().__init__(tile_signature(config))

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes

        m.submodules.buffer = buffer = IOBuffer(config)
        m.submodules.reader = reader = RowReader(config)
        m.submodules.mac = mac = DeltaMacArray(config)
        if config.reuse:
            m.submodules.detector = detector = ChangeDetector(config)
            m.submodules.centroids = centroids = memory.Memory(
                shape=data.ArrayLayout(signed(config.centroid_width), config.clusters),
                depth=1 << config.layer_bits, init=[])
            centroid_read = centroids.read_port()
            wiring.connect(m, wiring.flipped(self.centroid_write), centroids.write_port())
            changed = detector.o
        else:
            m.submodules.serializer = serializer = InputSerializer(
                config, lane_shape=signed(config.act_width),
                tag_shape=position_layout(config) if config.conv else None)
            # The row leaves the block RAM's output through a skid buffer, which also cuts the
            # ready chain from the MAC array back to the buffer's read enable.
            m.submodules.row_register = row_register = SkidBuffer(serializer.i.payload.shape())
            wiring.connect(m, row_register.o, serializer.i)
            changed = serializer.o

        wiring.connect(m, wiring.flipped(self.fill), buffer.fill)
        wiring.connect(m, wiring.flipped(self.weight_write), mac.weight_write)
        wiring.connect(m, wiring.flipped(self.bias_write), mac.bias_write)
        wiring.connect(m, mac.act, buffer.write)

        state = Signal(_State)
        layer = Signal(config.layer_bits)
        from_scratch = Signal()
        descriptor = self.layers[layer]
        kind = Signal.like(descriptor.kind)

        # The running layer's parameters, latched in SETUP.
        in_rows = Signal(config.row_count_bits)
        out_rows = Signal(config.row_count_bits)
        pooled = Signal()                           # a conv layer with a pool
        sum_rows = Signal(config.sum_row_bits)      # the rows of sums it keeps
        last_output_lanes = Signal(lanes)
        shift = Signal(range(config.max_shift + 1))
        relu = Signal()

        # Where the running layer's rows start in the input-state and sum memories: each layer's
        # after the previous layer's.
        state_base = Signal(config.state_row_bits)
        sum_base = Signal(config.sum_row_bits)

        generators = self._dispatch(m, changed, mac, descriptor, sum_base, kind, from_scratch,
                                    setup=state == _State.SETUP)
        generators_idle = Const(1)
        for generator in generators.values():
            generators_idle = generators_idle & generator.idle

        if config.reuse:
            m.d.comb += [
                centroid_read.addr.eq(layer),
                centroid_read.en.eq(state == _State.SETUP),
                detector.centroids.eq(centroid_read.data),
                detector.bypass.eq(layer == 0),
                detector.first.eq(from_scratch),
                detector.base.eq(state_base),
            ]
        m.d.comb += [
            mac.layer.eq(layer),
            mac.sum_base.eq(sum_base),
            mac.readout_rows.eq(out_rows),
            mac.shift.eq(shift),
            mac.relu.eq(relu),
        ]

        # The row reader has the input bank's read port while the layer scans; the host's
        # result reads have it otherwise.
        m.d.comb += [
            reader.start.eq(state == _State.SETUP),
            reader.inputs.eq(descriptor.inputs),
            reader.active.eq(state == _State.SCAN),
            reader.read.data.eq(buffer.read.data),
            self.result_read.data.eq(buffer.read.data),
        ]
        with m.If(state == _State.SCAN):
            m.d.comb += [buffer.read.addr.eq(reader.read.addr),
                         buffer.read.en.eq(reader.read.en)]
        with m.Else():
            m.d.comb += [buffer.read.addr.eq(self.result_read.addr),
                         buffer.read.en.eq(self.result_read.en)]
        if config.conv:
            # The scanner follows the rows the reader reads: their positions, a conv layer's
            # real lanes, and the conv generator's tables.
            m.submodules.scanner = scanner = ConvScanner(config)
            conv_generator = generators[LayerKind.CONV]
            wiring.connect(m, scanner.y_write, conv_generator.y_table)
            wiring.connect(m, scanner.x_write, conv_generator.x_table)
            # A pooled layer's readout walks its windows.
            m.submodules.pool_walker = walker = PoolWalker(config)
            m.d.comb += [
                walker.conv.eq(descriptor.conv),
                walker.base.eq(sum_base),
                walker.start.eq(mac.readout_start & pooled),
                mac.readout_pool.eq(pooled),
                mac.pool_cell.eq(walker.cell),
            ]
            m.d.comb += [
                scanner.conv.eq(descriptor.conv),
                scanner.start.eq(state == _State.SETUP),
                scanner.advance.eq(reader.advance),
                # A conv layer's map, or the map a dense layer flattens.
                reader.map.eq((kind == LayerKind.CONV.value) |
                              (descriptor.conv.channel_rows != 0)),
                reader.position.eq(scanner.position),
                reader.map_lanes.eq(scanner.lanes),
            ]
        rows = reader.o
        if config.reuse:
            # The row leaves the block RAM through a skid buffer before the change detector
            # compares it, which also cuts the ready chain from the MAC array back to the
            # buffer's read enable.
            m.submodules.row_register = row_register = SkidBuffer(rows.payload.shape())
            wiring.connect(m, rows, row_register.i)
            m.d.comb += [
                detector.i.valid.eq(row_register.o.valid),
                detector.i.payload.values.eq(row_register.o.payload.values),
                detector.i.payload.row.eq(row_register.o.payload.tag.row),
                detector.i.payload.lanes.eq(row_register.o.payload.tag.lanes),
                detector.i.payload.last.eq(row_register.o.payload.tag.last),
                row_register.o.ready.eq(detector.i.ready),
            ]
            if config.conv:
                m.d.comb += detector.i.payload.position.eq(row_register.o.payload.tag.position)
            scan_end = detector.done
        else:
            m.d.comb += [
                row_register.i.valid.eq(rows.valid),
                row_register.i.payload.values.eq(rows.payload.values),
                row_register.i.payload.mask.eq(rows.payload.tag.lanes),
                row_register.i.payload.row.eq(rows.payload.tag.row),
                row_register.i.payload.last.eq(rows.payload.tag.last),
                rows.ready.eq(row_register.i.ready),
            ]
            if config.conv:
                m.d.comb += row_register.i.payload.tag.eq(rows.payload.tag.position)
            scan_end = serializer.done

        # The layer whose readout runs, and its output rows, latched as the readout starts.
        readout_layer = Signal.like(layer)
        readout_rows = Signal.like(out_rows)
        readout_last_lanes = Signal.like(last_output_lanes)
        readout_pooled = Signal()
        lead = Signal(range(max(config.buffer_rows, DeltaMacArray.readout_latency) + 1))
        self._count(m, state, layer, readout_layer, readout_rows, readout_last_lanes,
                    readout_pooled, mac, changed, detector.outside if config.reuse else None)

        scan_done = Signal()
        with m.If(scan_end):
            m.d.sync += scan_done.eq(1)

        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(self.start):
                    m.d.sync += [
                        state.eq(_State.SETUP),
                        layer.eq(0),
                        state_base.eq(0),
                        sum_base.eq(0),
                        from_scratch.eq(self.from_scratch),
                        self.frame_cycles.eq(0),
                        self.counters.eq(0),
                    ]
            with m.Case(_State.SETUP):
                m.d.sync += [
                    kind.eq(descriptor.kind),
                    in_rows.eq(row_count(descriptor.inputs, lanes)),
                    out_rows.eq(row_count(descriptor.outputs, lanes)),
                    sum_rows.eq(row_count(descriptor.outputs, lanes)),
                ]
                if config.conv:
                    conv_layer = descriptor.kind == LayerKind.CONV.value
                    m.d.sync += pooled.eq(conv_layer & (descriptor.conv.pool != PoolCode.NONE))
                    with m.If(conv_layer):
                        m.d.sync += sum_rows.eq(descriptor.conv.sum_rows)
                m.d.sync += [
                    last_output_lanes.eq(last_row_mask(descriptor.outputs, lanes)),
                    shift.eq(descriptor.shift),
                    relu.eq(descriptor.relu),
                    scan_done.eq(0),
                    state.eq(_State.SCAN),
                ]
            with m.Case(_State.SCAN):
                with m.If(scan_done & generators_idle & mac.idle):
                    # The readout starts; the next layer reads its outputs from the other bank
                    # as they arrive, once the lead is over.
                    m.d.comb += [mac.readout_start.eq(1), buffer.swap.eq(1)]
                    m.d.sync += [readout_layer.eq(layer), readout_rows.eq(out_rows),
                                 readout_last_lanes.eq(last_output_lanes),
                                 readout_pooled.eq(pooled)]
                    with m.If(layer == self.layer_count - 1):
                        m.d.sync += state.eq(_State.FINISH)
                    with m.Elif(pooled):
                        m.d.sync += state.eq(_State.POOLING)
                    with m.Else():
                        margin = self.lead_margin(config)
                        minimum = DeltaMacArray.readout_latency
                        m.d.sync += [
                            state.eq(_State.LEAD),
                            lead.eq(Mux(out_rows > margin + minimum, out_rows - margin - 2,
                                        minimum - 2)),
                        ]
            with m.Case(_State.LEAD, _State.POOLING):
                with m.If(Mux(state == _State.LEAD, lead == 0, mac.readout_done)):
                    m.d.sync += [layer.eq(layer + 1), state.eq(_State.SETUP),
                                 state_base.eq(state_base + in_rows)]
                    if config.reuse:
                        m.d.sync += sum_base.eq(sum_base + sum_rows)
                with m.Else():
                    m.d.sync += lead.eq(lead - 1)
            with m.Case(_State.FINISH):
                with m.If(mac.readout_done):
                    m.d.sync += state.eq(_State.DONE)
            with m.Case(_State.DONE):
                m.d.comb += self.done.eq(1)
                m.d.sync += state.eq(_State.IDLE)
        return m

    def _count(self, m, state, layer, readout_layer, readout_rows, readout_last_lanes,
               readout_pooled, mac, changed, outside):
        """The running layer's counters, the saturated outputs of the layer whose readout
        runs, and the frame's cycle count. Each layer's counters add to themselves when their
        layer is selected (no multiplexer reads a counter of a dynamic layer), and the saturated
        outputs of a row are counted a cycle after it is written, before the frame's done."""
        config = self._config
        lanes = config.lanes
        with m.If(state != _State.IDLE):
            m.d.sync += self.frame_cycles.eq(self.frame_cycles + 1)
        running = (state != _State.IDLE) & (state != _State.DONE)
        # A pooled readout counts every cell it reads (padding lanes hold zeros, which no
        # activation clamps).
        real = Mux(~readout_pooled & (mac.act.addr == readout_rows - 1), readout_last_lanes,
                   Const(-1, lanes))
        saturated_valid = Signal()
        saturated_layer = Signal.like(readout_layer)
        saturated_count = Signal(range(lanes + 1))
        m.d.sync += [
            saturated_valid.eq(mac.saturated_valid),
            saturated_layer.eq(readout_layer),
            saturated_count.eq(popcount(mac.saturated & real)),
        ]
        took_changed = changed.valid & changed.ready
        took_item = mac.items.valid & mac.items.ready
        for index in range(config.max_layers):
            counters = self.counters[index]
            selected = layer == index
            with m.If(running & selected):
                m.d.sync += counters.cycles.eq(counters.cycles + 1)
            if outside is not None:
                with m.If(selected):
                    m.d.sync += counters.out_of_range.eq(counters.out_of_range + outside)
            with m.If(saturated_valid & (saturated_layer == index)):
                m.d.sync += counters.saturated_outputs.eq(
                    counters.saturated_outputs + saturated_count)
            with m.If(took_changed & selected):
                m.d.sync += counters.changed_inputs.eq(counters.changed_inputs + 1)
            with m.If(took_item & selected):
                m.d.sync += [
                    counters.weight_rows.eq(counters.weight_rows + 1),
                    counters.macs.eq(counters.macs + mac.items.payload.real_lanes),
                ]

    def _dispatch(self, m, changed, mac, descriptor, sum_base, kind, from_scratch, *, setup):
        """Changed inputs to the address generator of the running layer's ``kind``, and its
        MAC items to the array; every generator latches its layer in the ``setup`` cycle of a
        layer of its kind."""
        items_valid, changed_ready = Const(0), Const(0)
        generators = {}
        for layer_kind, kind_module in gateware_kinds(self._config).items():
            generator = kind_module.AddressGenerator(self._config)
            m.submodules[f"{layer_kind.name.lower()}_generator"] = generator
            generators[layer_kind] = generator
            selected = kind == layer_kind.value
            m.d.comb += [
                generator.descriptor.eq(descriptor),
                generator.sum_base.eq(sum_base),
                generator.from_scratch.eq(from_scratch),
                generator.start.eq(setup & (descriptor.kind == layer_kind.value)),
                generator.i.valid.eq(changed.valid & selected),
                generator.i.payload.eq(changed.payload),
                generator.o.ready.eq(mac.items.ready & selected),
            ]
            with m.If(selected):
                m.d.comb += mac.items.payload.eq(generator.o.payload)
            items_valid = items_valid | (generator.o.valid & selected)
            changed_ready = changed_ready | (generator.i.ready & selected)
        m.d.comb += [mac.items.valid.eq(items_valid), changed.ready.eq(changed_ready)]
        return generators
