"""Delta MAC array: applies MAC items to the stored pre-activation sums.

Contract
--------
- ``items``: stream of MAC items (:func:`~reuse_accel.hw.core.layouts.mac_item_layout`), one
  accepted every cycle (``ready`` is always high): ``sums[sum_row] += weights[weight_row]
  * delta`` on L lanes, starting from ``biases[layer, bias_row]`` instead of the stored sums when
  ``init`` is set. The array knows nothing of layer shapes: a layer kind's address generator
  decides which rows an input touches.
- Pipeline: item register (and a row address register per weight bank) -> weight read ->
  weight register, bias and sum reads -> multiply -> add and write. A sum row written in the
  cycle after a read of the same row was issued is forwarded to it, so results are exact even
  when consecutive items update the same row.
- ``idle``: no item offered or in flight; the sums are final. :attr:`DeltaMacArray.latency`
  cycles after the last item's handshake.
- ``readout_start``: streams the ``readout_rows`` sum rows from ``sum_base`` through the
  :class:`~reuse_accel.hw.core.activation.Activation` to ``act`` (a write port into the I/O
  buffer). Row ``r`` is written in cycle ``start + readout_latency + r`` (cycle ``start`` being
  the one with ``readout_start`` high); ``readout_done`` marks the last, and ``saturated`` flags
  the lanes of the row being written that were clamped to the activation range. The readout
  latches ``sum_base``, ``shift``, ``relu`` and ``readout_rows`` at its start, so the next layer's
  parameters may be applied while it runs. It shares the sum memory's read port with the
  items: start it only while ``idle``, read at least one row (``readout_rows >= 1``), and let
  no item's sum read (:attr:`DeltaMacArray.sum_read_latency` cycles after its handshake) fall
  in the readout's read cycles, ``start + 1 .. start + readout_rows``.
- Pooled readout (hardware with conv layers): with ``readout_pool`` at ``readout_start`` the
  array reads the cells ``pool_cell`` names instead (one per cycle, from a
  :class:`~reuse_accel.hw.layers.conv.PoolWalker`), activates each and keeps the running
  maximum and sum of its window; the window's maximum, or its average (the sum divided by the
  cell's ``divisor``, rounded half up), is written
  :data:`~reuse_accel.hw.layers.conv.POOL_LATENCY` cycles after a plain row would be, to the
  cell's ``row``, and
  ``readout_done`` comes with the ``done`` cell's. ``saturated_valid`` marks every cycle whose
  ``saturated`` lanes belong to a row or cell read (with a plain readout, the rows written).
- ``weight_write``, ``bias_write``: host loading ports (a weight row is written one cycle after
  it is presented; weights are loaded only while no frame runs).

The sums of every layer are kept (``AccelConfig.sum_rows`` rows, each layer's after the
previous layer's) so that the next frame can correct them. Without reuse (``AccelConfig.reuse``
false) only the running layer's sums are needed, each layer starting from its biases. Bias row
``r`` of ``layer`` is at address ``(layer, r)``.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config
from .activation import Activation
from .layouts import mac_item_layout, pool_cell_layout

__all__ = ["DeltaMacArray", "average_divider"]


def average_divider(config: AccelConfig) -> tuple[int, list[int]]:
    """The average pool's exact division by a window's divisor ``d`` (1 .. ``max_kernel**2``),
    as a multiply by a reciprocal: the shift ``s`` and the table ``m[d] = ceil(2**s / d)`` (0
    for d = 0). For every numerator ``0 <= n < 2**N``, ``N`` the bits of the largest one
    (:attr:`AccelConfig.pool_numerator_bits`), ``(n * m[d]) >> s == n // d``: with ``s = N +
    ceil(log2(dmax))`` the product's error ``n * (m[d] - 2**s / d) / 2**s`` stays below
    ``1 / d``."""
    largest = config.max_pool_cells
    shift = config.pool_numerator_bits + (largest - 1).bit_length()
    return shift, [0] + [-(-(1 << shift) // d) for d in range(1, largest + 1)]


class DeltaMacArray(wiring.Component):
    """L-lane delta multiply-accumulate array with its weight, bias and sum memories."""

    latency = 5
    """Cycles from the last item's handshake to ``idle``: the item register, the weight read,
    the weight register and the bias and sum reads, multiply, add and write, idle."""

    sum_read_latency = 2
    """Cycles from an item's handshake to its bias and sum reads: the item register, the weight
    read."""

    readout_latency = 2 + Activation.latency
    """Cycles from ``readout_start`` to the first row written: the readout's row register, the
    sum read, the activation."""

    pool_latency = 4
    """Cycles a pooled window's result adds to a plain row's (hardware with conv layers): the
    window's result register, the numerator and reciprocal register, the partial products'
    register and the product register of :meth:`_pool_stage` (a max takes the same path)."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        lanes = config.lanes
        members = {
            "items": In(stream.Signature(mac_item_layout(config))),
            "layer": In(config.layer_bits),
            "sum_base": In(config.sum_row_bits),
            "shift": In(range(config.max_shift + 1)),
            "relu": In(1),
            "idle": Out(1),
            "readout_start": In(1),
            "readout_rows": In(config.row_count_bits),
            "readout_done": Out(1),
            "saturated": Out(lanes),
            "saturated_valid": Out(1),
            "act": In(memory.WritePort.Signature(
                addr_width=config.row_bits,
                shape=data.ArrayLayout(signed(config.act_width), lanes))),
            "weight_write": Out(memory.WritePort.Signature(
                addr_width=config.weight_row_bits,
                shape=data.ArrayLayout(signed(config.weight_width), lanes))),
            "bias_write": Out(memory.WritePort.Signature(
                addr_width=config.group_bits + config.layer_bits,
                shape=data.ArrayLayout(signed(config.bias_width), lanes))),
        }
        if config.conv:
            members["readout_pool"] = In(1)
            members["pool_cell"] = In(pool_cell_layout(config))
        super().__init__(members)

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes
        sum_row = data.ArrayLayout(signed(config.acc_width), lanes)
        bias_depth = config.max_layers << config.group_bits
        m.submodules.biases = biases = memory.Memory(
            shape=data.ArrayLayout(signed(config.bias_width), lanes), depth=bias_depth, init=[])
        m.submodules.sums = sums = memory.Memory(shape=sum_row, depth=config.sum_rows, init=[])
        m.submodules.activation = activation = Activation(config)
        bias_read = biases.read_port()
        sum_write = sums.write_port()
        sum_read = sums.read_port(transparent_for=(sum_write,))
        bias_write = biases.write_port()
        m.d.comb += [bias_write.addr.eq(self.bias_write.addr),
                     bias_write.data.eq(self.bias_write.data),
                     bias_write.en.eq(self.bias_write.en)]
        item = self.items.payload
        m.d.comb += self.items.ready.eq(1)

        # Stage 0: the item, registered. The weight memory is split into banks of
        # ``weight_bank_width`` bits of the row, each a memory of its own with its own copy of
        # the row address register: a large memory's block RAMs spread over the device, and one
        # register driving all their addresses is the longest route of the design (15.9 ns on
        # the ECP5 with a register for 32 block RAMs). The copies carry ``keep`` so that
        # synthesis does not merge them back (the project's Yosys flow turns the attribute on a
        # register's wire into one on its cell). The host loads weights only while no frame
        # runs, so a bank's read and write ports share the address register: a single-port RAM
        # (iCE40 SPRAM, an ASIC single-port macro), with host writes one cycle after they are
        # presented.
        s0_valid = Signal()
        s0_row = Signal(config.sum_row_bits)
        s0_bias_row = Signal(config.group_bits)
        s0_delta = Signal(signed(config.delta_width))
        s0_init = Signal()
        m.d.sync += [
            s0_valid.eq(self.items.valid),
            s0_row.eq(item.sum_row),
            s0_bias_row.eq(item.bias_row),
            s0_delta.eq(item.delta),
            s0_init.eq(item.init),
        ]
        host_bits = self.weight_write.data.as_value()
        weight_bits = []
        bank_width = config.weight_bank_width
        row_width = lanes * config.weight_width
        for bank, first in enumerate(range(0, row_width, bank_width)):
            width = min(bank_width, row_width - first)
            m.submodules[f"weights{bank}"] = weights = memory.Memory(
                shape=width, depth=config.weight_depth, init=[])
            read, write = weights.read_port(), weights.write_port()
            address = Signal.like(item.weight_row, name=f"weight_address{bank}",
                                  attrs={"keep": 1})
            load = Signal(name=f"weight_load{bank}", attrs={"keep": 1})
            load_data = Signal(width, name=f"weight_load_data{bank}")
            m.d.sync += [
                address.eq(Mux(self.weight_write.en, self.weight_write.addr, item.weight_row)),
                load.eq(self.weight_write.en),
                load_data.eq(host_bits[first:first + width]),
            ]
            m.d.comb += [
                read.addr.eq(address),
                read.en.eq(~load),   # a single port reads or writes
                write.addr.eq(address),
                write.data.eq(load_data),
                write.en.eq(load),
            ]
            weight_bits.append(read.data)

        # Readout state shares the sum read port.
        ro_active = Signal()
        ro_row = Signal(config.row_bits)
        ro_rows = Signal.like(self.readout_rows)
        ro_address = Signal(config.sum_row_bits)     # sum_base + ro_row
        ro_shift = Signal.like(self.shift)
        ro_relu = Signal()
        ro_last = ro_row == ro_rows - 1
        pooled = self.readout_pool if config.conv else 0
        with m.If(self.readout_start):
            m.d.sync += [ro_active.eq(~pooled), ro_row.eq(0), ro_rows.eq(self.readout_rows),
                         ro_address.eq(self.sum_base), ro_shift.eq(self.shift),
                         ro_relu.eq(self.relu)]
        with m.Elif(ro_active):
            m.d.sync += [ro_row.eq(ro_row + 1), ro_address.eq(ro_address + 1)]
            with m.If(ro_last):
                m.d.sync += ro_active.eq(0)

        # Stage 1: the weights are on the banks' outputs; the bias and sum reads are issued.
        s1_valid = Signal()
        s1_row = Signal(config.sum_row_bits)
        s1_bias_row = Signal(config.group_bits)
        s1_delta = Signal(signed(config.delta_width))
        s1_init = Signal()
        m.d.sync += [
            s1_valid.eq(s0_valid),
            s1_row.eq(s0_row),
            s1_bias_row.eq(s0_bias_row),
            s1_delta.eq(s0_delta),
            s1_init.eq(s0_init),
        ]
        m.d.comb += [
            bias_read.addr.eq(Cat(s1_bias_row, self.layer)),
            sum_read.addr.eq(Mux(ro_active, ro_address,
                                 Mux(self.pool_cell.valid, self.pool_cell.address, s1_row)
                                 if config.conv else s1_row)),
        ]

        # Multiply stage: the weights, registered next to the multipliers (the banks' outputs
        # come from block RAMs spread over the device), times the delta.
        sm_valid = Signal()
        sm_row = Signal(config.sum_row_bits)
        sm_delta = Signal(signed(config.delta_width))
        sm_init = Signal()
        sm_weights = Signal(data.ArrayLayout(signed(config.weight_width), lanes))
        m.d.sync += [
            sm_valid.eq(s1_valid),
            sm_row.eq(s1_row),
            sm_delta.eq(s1_delta),
            sm_init.eq(s1_init),
            sm_weights.eq(Cat(*weight_bits)),
        ]
        s2_valid = Signal()
        s2_row = Signal(config.sum_row_bits)
        s2_init = Signal()
        s2_products = Signal(data.ArrayLayout(
            signed(config.weight_width + config.delta_width), lanes))
        s2_sums = Signal(sum_row)
        m.d.sync += [
            s2_valid.eq(sm_valid),
            s2_row.eq(sm_row),
            s2_init.eq(sm_init),
        ]
        for lane in range(lanes):
            m.d.sync += [
                s2_products[lane].eq(sm_weights[lane] * sm_delta),
                s2_sums[lane].eq(Mux(sm_init, bias_read.data[lane], sum_read.data[lane])),
            ]

        # Add-and-write stage, with forwarding of the previous cycle's write, which the read
        # (issued two cycles ago) could not see. Whether to forward is decided a stage early,
        # from the rows of this item and the one ahead of it (items of one layer follow each
        # other; between layers the array idles for the readout).
        last_write_data = Signal(sum_row)
        forward = Signal()
        m.d.sync += forward.eq(~sm_init & s2_valid & (s2_row == sm_row))
        m.d.comb += [
            sum_write.addr.eq(s2_row),
            sum_write.en.eq(s2_valid),
        ]
        for lane in range(lanes):
            previous = Mux(forward, last_write_data[lane], s2_sums[lane])
            m.d.comb += sum_write.data[lane].eq(previous + s2_products[lane])
        m.d.sync += [
            last_write_data.eq(sum_write.data),
        ]
        m.d.comb += self.idle.eq(~self.items.valid & ~s0_valid & ~s1_valid & ~sm_valid & ~s2_valid)

        # Readout: sum row -> activation -> I/O buffer. A pooled readout's cells (with conv
        # layers) take the same path, their window's maximum one register later.
        r1_valid = Signal()
        r1_row = Signal(config.row_bits)
        r1_last = Signal()
        cell_layout = pool_cell_layout(config).members if config.conv else {}
        r1_cell = Signal(data.StructLayout({
            "pool": 1, "first": 1, "close": 1, "average": cell_layout.get("average", 1),
            "divisor": cell_layout.get("divisor", 1)}))
        m.d.sync += [r1_valid.eq(ro_active), r1_row.eq(ro_row), r1_last.eq(ro_last)]
        if config.conv:
            cell = self.pool_cell
            with m.If(cell.valid):
                m.d.sync += [r1_valid.eq(1), r1_row.eq(cell.row), r1_last.eq(cell.done)]
            m.d.sync += [r1_cell.pool.eq(cell.valid), r1_cell.first.eq(cell.first),
                         r1_cell.close.eq(cell.last), r1_cell.average.eq(cell.average),
                         r1_cell.divisor.eq(cell.divisor)]
        # The row's write follows its sums through the activation's pipeline.
        valid, row, last, flags = r1_valid, r1_row, r1_valid & r1_last, r1_cell
        for stage in range(Activation.latency):
            delayed = (Signal(name=f"act_valid{stage}"),
                       Signal(config.row_bits, name=f"act_row{stage}"),
                       Signal(name=f"act_last{stage}"),
                       Signal.like(r1_cell, name=f"act_cell{stage}"))
            m.d.sync += [delayed[0].eq(valid), delayed[1].eq(row), delayed[2].eq(last),
                         delayed[3].eq(flags)]
            valid, row, last, flags = delayed
        m.d.comb += [
            activation.acc.eq(sum_read.data),
            activation.shift.eq(ro_shift),
            activation.relu.eq(ro_relu),
            self.act.en.eq(valid & ~flags.pool),
            self.act.addr.eq(row),
            self.act.data.eq(activation.o),
            self.saturated.eq(activation.saturated),
            self.saturated_valid.eq(valid),
            self.readout_done.eq(last & ~flags.pool),
        ]
        if config.conv:
            self._pool_stage(m, activation.o, valid, row, last, flags)
        return m

    def _pool_stage(self, m, values, valid, row, last, flags):
        """A pooled readout's windows (with conv layers): the activated cells' running maximum
        and sum, then, for an average, the exact division by the window's divisor as a multiply
        by its reciprocal (:func:`average_divider`), rounded half
        up. The window's result is written :attr:`pool_latency` cycles after its last cell's
        activation."""
        config = self._config
        lanes, width = config.lanes, config.act_width
        largest_divisor = config.max_pool_cells
        shift, reciprocals = average_divider(config)
        act_row = data.ArrayLayout(signed(width), lanes)
        total_row = data.ArrayLayout(signed(width + largest_divisor.bit_length()), lanes)
        numerator_row = data.ArrayLayout(config.pool_numerator_bits, lanes)
        product_row = data.ArrayLayout(config.pool_numerator_bits + shift + 1, lanes)
        # The reciprocal in two parts, so that each partial product maps to few DSP blocks
        # and the carry chain that adds them gets a cycle of its own.
        split = min(18, shift)
        partial_row = data.ArrayLayout(config.pool_numerator_bits + split, lanes)

        # The window so far, including this cell.
        best, total = Signal(act_row), Signal(total_row)
        largest, summed = Signal(act_row), Signal(total_row)
        for lane in range(lanes):
            value = values[lane]
            m.d.comb += [
                largest[lane].eq(Mux(flags.first | (value > best[lane]), value, best[lane])),
                summed[lane].eq(Mux(flags.first, 0, total[lane]) + value),
            ]
        with m.If(valid & flags.pool):
            m.d.sync += [best.eq(largest), total.eq(summed)]

        def stage(name, **fields):
            """One pipeline register of the window's result and what goes with it."""
            layout = data.StructLayout({"en": 1, "done": 1, "row": config.row_bits,
                                        "average": 1, "maximum": act_row, **fields})
            return Signal(layout, name=name)

        p1 = stage("pool_window", total=total_row, divisor=range(largest_divisor + 1))
        m.d.sync += [
            p1.en.eq(valid & flags.pool & flags.close), p1.done.eq(valid & flags.pool & last),
            p1.row.eq(row), p1.average.eq(flags.average), p1.maximum.eq(largest),
            p1.total.eq(summed), p1.divisor.eq(flags.divisor),
        ]
        # The numerator total + divisor * 2**(width-1) + divisor // 2 is never negative;
        # its quotient is the rounded average plus 2**(width-1).
        p2 = stage("pool_numerator", numerator=numerator_row, reciprocal=shift + 1)
        table = Array(Const(value, shift + 1) for value in reciprocals)
        m.d.sync += [p2.en.eq(p1.en), p2.done.eq(p1.done), p2.row.eq(p1.row),
                     p2.average.eq(p1.average), p2.maximum.eq(p1.maximum),
                     p2.reciprocal.eq(table[p1.divisor])]
        for lane in range(lanes):
            m.d.sync += p2.numerator[lane].eq(
                p1.total[lane] + (p1.divisor << (width - 1)) + (p1.divisor >> 1))
        p3 = stage("pool_partials", low=partial_row,
                   high=data.ArrayLayout(config.pool_numerator_bits + shift + 1 - split, lanes))
        m.d.sync += [p3.en.eq(p2.en), p3.done.eq(p2.done), p3.row.eq(p2.row),
                     p3.average.eq(p2.average), p3.maximum.eq(p2.maximum)]
        for lane in range(lanes):
            m.d.sync += [p3.low[lane].eq(p2.numerator[lane] * p2.reciprocal[:split]),
                         p3.high[lane].eq(p2.numerator[lane] * p2.reciprocal[split:])]
        p4 = stage("pool_product", product=product_row)
        m.d.sync += [p4.en.eq(p3.en), p4.done.eq(p3.done), p4.row.eq(p3.row),
                     p4.average.eq(p3.average), p4.maximum.eq(p3.maximum)]
        for lane in range(lanes):
            m.d.sync += p4.product[lane].eq(p3.low[lane] + (p3.high[lane] << split))
        result = Signal(act_row)
        for lane in range(lanes):
            m.d.comb += result[lane].eq(Mux(p4.average,
                                            (p4.product[lane] >> shift) - (1 << (width - 1)),
                                            p4.maximum[lane]))
        with m.If(p4.en):
            m.d.comb += [self.act.en.eq(1), self.act.addr.eq(p4.row), self.act.data.eq(result)]
        with m.If(p4.done):
            m.d.comb += self.readout_done.eq(1)
