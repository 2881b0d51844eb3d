"""Delta MAC array: corrects the stored pre-activation sums with each changed input.

Contract
--------
- ``items``: stream of changed inputs (see :func:`reuse_accel.hw.comparator.changed_input_layout`).
  For each one the array reads the input's ``groups`` weight rows, L weights at a time, and adds
  ``weight * delta`` into the layer's L-wide accumulator rows: one row per cycle, so an input
  takes ``groups`` cycles and the next one is accepted in the cycle its predecessor issues its
  last row (no bubble).
- ``from_scratch``: input 0 of the layer starts from the biases instead of the stored sums (the
  comparator marks every input changed in that mode, so input 0 always comes first).
- Pipeline: issue (weight, sum and bias reads) -> multiply -> add and write. A sum row written in
  the cycle after a read of the same row was issued is forwarded to it, so results are exact
  even when consecutive inputs update the same rows (``groups`` of 1 or 2).
- ``idle``: no input in flight; the sums are final.
- ``readout_start``: streams the layer's ``groups`` sum rows through the activation (round,
  ``>> shift``, ReLU or identity, saturate) to ``act`` (a write port into the I/O buffer).
  Rows are written in cycles ``start+3 .. start+groups+2``; ``readout_done`` marks the last,
  and ``saturated`` flags the lanes of the row being written that were clamped to the
  activation range (ReLU zeroing a negative sum is not clamping).
- ``weight_write``, ``bias_write``: host loading ports (a weight row is written one cycle after
  it is presented).

The sums of every layer are kept (``max_layers`` x ``max_groups`` rows) so that the next frame
can correct them. Without reuse (``AccelConfig.reuse`` false) only the running layer's sums are
needed: ``max_groups`` rows, each layer starting from its biases.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .comparator import address_widths, changed_input_layout
from .config import AccelConfig, check_config

__all__ = ["DeltaMacArray"]


class DeltaMacArray(wiring.Component):
    """L-lane delta multiply-accumulate array with its weight, bias and sum memories."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        widths = address_widths(config)
        lanes = config.lanes
        bias_address = widths["row"] + widths["layer"]
        super().__init__({
            "items": In(stream.Signature(changed_input_layout(config))),
            "layer": In(widths["layer"]),
            "groups": In(widths["groups"]),
            "from_scratch": In(1),
            "shift": In(range(config.max_shift + 1)),
            "relu": In(1),
            "idle": Out(1),
            "readout_start": In(1),
            "readout_done": Out(1),
            "saturated": Out(lanes),
            "act": In(memory.WritePort.Signature(
                addr_width=widths["row"],
                shape=data.ArrayLayout(signed(config.act_width), lanes))),
            "weight_write": Out(memory.WritePort.Signature(
                addr_width=widths["weight_row"],
                shape=data.ArrayLayout(signed(config.weight_width), lanes))),
            "bias_write": Out(memory.WritePort.Signature(
                addr_width=bias_address,
                shape=data.ArrayLayout(signed(config.bias_width), lanes))),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes
        widths = address_widths(config)
        sum_row = data.ArrayLayout(signed(config.acc_width), lanes)
        bias_depth = config.max_layers << widths["row"]
        sum_depth = bias_depth if config.reuse else 1 << widths["row"]

        def sum_address(group):
            return Cat(group, self.layer) if config.reuse else group

        m.submodules.weights = weights = memory.Memory(
            shape=data.ArrayLayout(signed(config.weight_width), lanes),
            depth=config.weight_depth, init=[])
        m.submodules.biases = biases = memory.Memory(
            shape=data.ArrayLayout(signed(config.bias_width), lanes), depth=bias_depth, init=[])
        m.submodules.sums = sums = memory.Memory(shape=sum_row, depth=sum_depth, init=[])
        weight_read = weights.read_port()
        bias_read = biases.read_port()
        sum_write = sums.write_port()
        sum_read = sums.read_port(transparent_for=(sum_write,))
        weight_write, bias_write = weights.write_port(), biases.write_port()
        m.d.comb += [bias_write.addr.eq(self.bias_write.addr),
                     bias_write.data.eq(self.bias_write.data),
                     bias_write.en.eq(self.bias_write.en)]
        # The host loads weights only while no frame runs, so the weight memory's read and write
        # ports share one address: a single-port RAM (iCE40 SPRAM, an ASIC single-port macro).
        # Host writes are registered first: the address multiplexer of a large memory then
        # depends on registers only, not on the command decoder.
        host_en = Signal()
        host_addr = Signal.like(self.weight_write.addr)
        host_data = Signal.like(self.weight_write.data)
        m.d.sync += [host_en.eq(self.weight_write.en), host_addr.eq(self.weight_write.addr),
                     host_data.eq(self.weight_write.data)]
        m.d.comb += [weight_write.data.eq(host_data), weight_write.en.eq(host_en)]
        weight_address = Signal(len(weight_read.addr))

        # Issue stage: the input being applied, one weight row per cycle.
        cur_valid = Signal()
        cur_row = Signal(widths["weight_row"])
        cur_group = Signal(widths["row"])
        cur_delta = Signal(signed(config.delta_width))
        cur_init = Signal()
        cur_last = Signal()   # cur_group == groups - 1, registered: it drives items.ready

        m.d.comb += self.items.ready.eq(~cur_valid | cur_last)
        with m.If(self.items.valid & self.items.ready):
            m.d.sync += [
                cur_valid.eq(1),
                cur_row.eq(self.items.payload.weight_row),
                cur_group.eq(0),
                cur_last.eq(self.groups == 1),
                cur_delta.eq(self.items.payload.delta),
                cur_init.eq(self.from_scratch & (self.items.payload.input == 0)),
            ]
        with m.Elif(cur_valid & ~cur_last):
            m.d.sync += [cur_row.eq(cur_row + 1), cur_group.eq(cur_group + 1),
                         cur_last.eq(cur_group + 2 == self.groups)]
        with m.Else():
            m.d.sync += cur_valid.eq(0)

        # Readout state shares the sum read port.
        ro_active = Signal()
        ro_group = Signal(widths["row"])
        ro_last = ro_group == self.groups - 1
        with m.If(self.readout_start):
            m.d.sync += [ro_active.eq(1), ro_group.eq(0)]
        with m.Elif(ro_active):
            m.d.sync += ro_group.eq(ro_group + 1)
            with m.If(ro_last):
                m.d.sync += ro_active.eq(0)

        m.d.comb += [
            weight_address.eq(Mux(host_en, host_addr, cur_row)),
            weight_read.addr.eq(weight_address),
            weight_read.en.eq(~host_en),   # a single port reads or writes
            weight_write.addr.eq(weight_address),
            bias_read.addr.eq(Cat(cur_group, self.layer)),
            sum_read.addr.eq(sum_address(Mux(ro_active, ro_group, cur_group))),
        ]

        # Multiply stage.
        s1_valid = Signal()
        s1_group = Signal(widths["row"])
        s1_delta = Signal(signed(config.delta_width))
        s1_init = Signal()
        m.d.sync += [
            s1_valid.eq(cur_valid),
            s1_group.eq(cur_group),
            s1_delta.eq(cur_delta),
            s1_init.eq(cur_init),
        ]
        s2_valid = Signal()
        s2_group = Signal(widths["row"])
        s2_init = Signal()
        s2_products = Signal(data.ArrayLayout(
            signed(config.weight_width + config.delta_width), lanes))
        s2_sums = Signal(sum_row)
        m.d.sync += [
            s2_valid.eq(s1_valid),
            s2_group.eq(s1_group),
            s2_init.eq(s1_init),
        ]
        for lane in range(lanes):
            m.d.sync += [
                s2_products[lane].eq(weight_read.data[lane] * s1_delta),
                s2_sums[lane].eq(Mux(s1_init, bias_read.data[lane], sum_read.data[lane])),
            ]

        # Add-and-write stage, with forwarding of the previous cycle's write, which the read
        # (issued two cycles ago) could not see.
        last_write_valid = Signal()
        last_write_addr = Signal(len(sum_write.addr))
        last_write_data = Signal(sum_row)
        write_addr = sum_address(s2_group)
        forward = ~s2_init & last_write_valid & (last_write_addr == write_addr)
        m.d.comb += [
            sum_write.addr.eq(write_addr),
            sum_write.en.eq(s2_valid),
        ]
        for lane in range(lanes):
            previous = Mux(forward, last_write_data[lane], s2_sums[lane])
            m.d.comb += sum_write.data[lane].eq(previous + s2_products[lane])
        m.d.sync += [
            last_write_valid.eq(s2_valid),
            last_write_addr.eq(write_addr),
            last_write_data.eq(sum_write.data),
        ]
        m.d.comb += self.idle.eq(~cur_valid & ~s1_valid & ~s2_valid)

        # Readout: sum row -> activation -> I/O buffer.
        r1_valid = Signal()
        r1_group = Signal(widths["row"])
        r1_last = Signal()
        m.d.sync += [r1_valid.eq(ro_active), r1_group.eq(ro_group), r1_last.eq(ro_last)]
        act_last = Signal()
        m.d.sync += [
            self.act.en.eq(r1_valid),
            self.act.addr.eq(r1_group),
            act_last.eq(r1_valid & r1_last),
        ]
        m.d.comb += self.readout_done.eq(act_last)
        rounding = (Const(1, config.max_shift + 1) << self.shift) >> 1
        for lane in range(lanes):
            rounded = Signal(signed(config.acc_width + 1), name=f"rounded{lane}")
            shifted = Signal(signed(config.acc_width + 1), name=f"shifted{lane}")
            m.d.comb += [
                rounded.eq(sum_read.data[lane] + rounding),
                shifted.eq(rounded >> self.shift),
            ]
            m.d.sync += self.saturated[lane].eq(0)
            with m.If(self.relu & (shifted < 0)):
                m.d.sync += self.act.data[lane].eq(0)
            with m.Elif(shifted > config.act_max):
                m.d.sync += [self.act.data[lane].eq(config.act_max),
                             self.saturated[lane].eq(1)]
            with m.Elif(shifted < config.act_min):
                m.d.sync += [self.act.data[lane].eq(config.act_min),
                             self.saturated[lane].eq(1)]
            with m.Else():
                m.d.sync += self.act.data[lane].eq(shifted)
        return m
