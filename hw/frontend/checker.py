"""Command checker: the network state, and every command checked against the hardware.

Contract
--------
- ``command``: decoded commands (:func:`.layouts.command_layout`), one at a time.
- ``job``: for each command, :attr:`CommandChecker.latency` cycles after it is offered, what to
  do with its payload (:func:`.layouts.job_layout`): the command itself, or the error that
  answers it (its payload is then drained). Five cycles, each ending in registers, while the
  command waits on ``command``: the costly terms of the rules (the network's chaining, the
  payload lengths, every field's range); a layer's weight extent (a product); the extent
  against the weight memory; the first failing rule; then the command is taken, applied if it
  passed, and its job issued. One command is in the checker at a time.
- A command that passes is applied as its job is issued: SET_LAYER configures a
  layer descriptor (clearing its conv fields: SET_CONV sets those of a conv layer, or of a
  dense layer over a map, after it), SET_CONV one of its conv fields, SET_NET checks that the
  layers chain up and validates the network, SET_MODE switches baseline mode, BEGIN_SEQUENCE
  (and any SET_* or LOAD_*) marks the reuse state stale, SET_LAYER and LOAD_* also mark the
  network invalid until the next SET_NET.
- ``frame_done``: a frame finished; the next one may reuse its state.
- ``layers``, ``layer_count``, ``from_scratch``: the network and mode, for the tile (stable while
  a frame runs, since one command is handled at a time).
- ``status``: the STATUS row (:data:`~reuse_accel.hw.protocol.STATUS_FIELDS`), ``output_rows``:
  rows of the last layer's outputs, for the responder (registered, one cycle behind the
  network).
- Errors are counted as they are found (each one is answered with one error response).
"""

from amaranth.hdl import Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import protocol
from ..config import COUNTER_WIDTH, AccelConfig, check_config
from ..core.rows import row_count
from ..layers import KIND_BITS, conv_field, gateware_kinds, layer_descriptor_layout
from ..protocol import Error, LayerKind, Opcode
from .layouts import command_layout, job_layout

__all__ = ["CommandChecker"]


class CommandChecker(wiring.Component):
    """Validate commands against the hardware and hold the network they configure."""

    latency = 5
    """Cycles from a command's offer to its job on ``job`` (while ``job`` is free)."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        super().__init__({
            "command": In(stream.Signature(command_layout(config))),
            "job": Out(stream.Signature(job_layout(config))),
            "frame_done": In(1),
            "layers": Out(data.ArrayLayout(layer_descriptor_layout(config), config.max_layers)),
            "layer_count": Out(range(config.max_layers + 1)),
            "from_scratch": Out(1),
            "status": Out(data.ArrayLayout(unsigned(COUNTER_WIDTH),
                                           len(protocol.STATUS_FIELDS))),
            "output_rows": Out(config.row_count_bits),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes

        configured = Signal(config.max_layers)
        net_valid = Signal()
        baseline = Signal(init=int(not config.reuse))   # no reuse logic: always baseline
        reuse_valid = Signal()
        errors = Signal(COUNTER_WIDTH)

        last_layer = self.layers[(self.layer_count - 1).as_unsigned()]
        m.d.comb += self.from_scratch.eq(baseline | ~reuse_valid if config.reuse else 1)
        # Registered: the last layer's descriptor is chosen by the layer count, and the result
        # feeds the responder's read enable. It settles one cycle after a SET_NET, long before
        # any FRAME's response.
        m.d.sync += self.output_rows.eq(row_count(last_layer.outputs, lanes))
        flags = (Mux(net_valid, protocol.STATUS_FLAG_NET_VALID, 0) |
                 Mux(reuse_valid & ~baseline, protocol.STATUS_FLAG_REUSE_VALID, 0) |
                 Mux(baseline, protocol.STATUS_FLAG_BASELINE, 0) |
                 (protocol.STATUS_FLAG_REUSE_BUILD if config.reuse else 0))
        values = {
            "magic": protocol.MAGIC, "version": protocol.VERSION, "lanes": lanes,
            "clusters": config.clusters, "act_width": config.act_width,
            "act_frac": config.act_frac, "weight_width": config.weight_width,
            "centroid_width": config.centroid_width, "max_layers": config.max_layers,
            "max_neurons": config.max_neurons, "weight_depth": config.weight_depth,
            "stream_width": config.stream_width, "weight_bank_width": config.weight_bank_width,
            "max_kernel": config.max_kernel, "max_height": config.max_height,
            "max_width": config.max_width, "buffer_depth": config.buffer_depth,
            "state_depth": config.state_depth,
            "sum_depth": config.sum_depth,
            "flags": flags, "errors": errors,
        }
        for index, name in enumerate(protocol.STATUS_FIELDS):
            m.d.comb += self.status[index].eq(values[name])

        # Cycle 1: the costly terms of the command's rules, registered while the command waits
        # on ``command`` (its payload holds until it is taken).
        command = self.command.payload
        measured = Signal()
        extended = Signal()
        bounded = Signal()
        checked = Signal()
        terms = self._terms(m, command, configured, take=self.command.valid & ~measured,
                            extend=measured & ~extended, bound=extended & ~bounded)
        with m.If(self.command.valid & ~measured):
            m.d.sync += measured.eq(1)
        # Cycle 2: a layer's weight extent, from the operands registered in cycle 1.
        with m.If(measured & ~extended):
            m.d.sync += extended.eq(1)
        # Cycle 3: the extent against the weight memory's depth.
        with m.If(extended & ~bounded):
            m.d.sync += bounded.eq(1)
        # Cycle 4: the first failing rule, registered.
        verdict = Signal(8)
        with m.If(bounded & ~checked):
            m.d.sync += [verdict.eq(self._check(m, command, terms, net_valid, configured)),
                         checked.eq(1)]
        # Cycle 5: the command is taken, applied if it passed, and its job issued.
        with m.If(self.frame_done):
            m.d.sync += reuse_valid.eq(1)
        job_free = ~self.job.valid | self.job.ready
        m.d.comb += self.command.ready.eq(checked & job_free)
        with m.If(job_free):
            m.d.sync += self.job.valid.eq(0)
        with m.If(self.command.valid & self.command.ready):
            m.d.sync += [
                measured.eq(0),
                extended.eq(0),
                bounded.eq(0),
                checked.eq(0),
                self.job.valid.eq(1),
                self.job.payload.opcode.eq(command.opcode),
                self.job.payload.layer.eq(command.layer),
                self.job.payload.start.eq(command.control[0]),
                self.job.payload.empty.eq(command.words == 0),
                self.job.payload.error.eq(verdict),
            ]
            with m.If(verdict != 0):
                m.d.sync += errors.eq(errors + 1)
            with m.Else():
                self._apply(m, command, configured, net_valid, baseline, reuse_valid)
        return m

    def _terms(self, m, command, configured, *, take, extend, bound):
        """The costly terms of the rules, registered while the command waits (``take``); a
        SET_LAYER's weight extent one cycle later (``extend``), from registered operands, and
        whether it fits the weight memory one more cycle later (``bound``)."""
        config = self._config
        lanes = config.lanes
        control = command.control
        bits = config.neuron_count_bits
        words = command.words
        terms = {
            "extent": Signal(config.weight_row_bits + 2 * config.neuron_count_bits, name="extent"),
            "extent_inputs": Signal(bits, name="extent_inputs"),
            "extent_outputs": Signal(bits, name="extent_outputs"),
            "extent_base": Signal(config.weight_row_bits, name="extent_base"),
            "extent_kind": Signal(KIND_BITS, name="extent_kind"),
            "extent_ok": Signal(name="extent_ok"),
            "net_count_ok": Signal(name="net_count_ok"),
            "known_kind": Signal(name="known_kind"),
            "chained": Signal(name="chained"),
            "load_length_ok": Signal(name="load_length_ok"),
            "load_address_ok": Signal(name="load_address_ok"),
            "layer_fields_ok": Signal(name="layer_fields_ok"),
            "frame_length_ok": Signal(name="frame_length_ok"),
            "conv_field_ok": Signal(name="conv_field_ok"),
        }
        conv_field_widths = []
        if config.conv:
            conv = self.layers[0].conv
            conv_field_widths = [len(Value.cast(conv_field(conv, name)))
                                 for name in protocol.CONV_FIELDS]
        fits = {width: Signal(name=f"conv_value_fits_{width}")
                for width in set(conv_field_widths)}
        with m.If(take):
            # SET_LAYER: only the kinds this hardware implements; the weights a layer of its
            # kind takes must end inside the weight memory.
            flags = protocol.LayerFlags(control[3])
            known_kind = Const(0)
            for kind in gateware_kinds(config):
                known_kind = known_kind | (flags.kind.as_value() == kind.value)
            m.d.sync += [
                terms["extent_inputs"].eq(control[0][:bits]),
                terms["extent_outputs"].eq(control[1][:bits]),
                terms["extent_base"].eq(control[2][:config.weight_row_bits]),
                terms["extent_kind"].eq(flags.kind.as_value()),
            ]
            # A dense layer has at most max_neurons inputs and outputs; a conv layer's maps
            # span at most the I/O buffer's slots.
            limit = config.max_neurons
            if config.conv:
                limit = Mux(flags.kind.as_value() == LayerKind.CONV.value,
                            config.buffer_rows * lanes, limit)
            m.d.sync += [
                terms["known_kind"].eq(known_kind),
                # Every SET_LAYER field in its range (the extent is compared in the next cycle).
                terms["layer_fields_ok"].eq(
                    (control[0] != 0) & (control[0] <= limit) &
                    (control[1] != 0) & (control[1] <= limit) &
                    (flags.shift <= config.max_shift) & (flags.reserved == 0) &
                    (flags.unused == 0) & known_kind &
                    (control[2] < config.weight_depth)),
            ]
            # SET_NET: every layer up to the count is configured and takes the previous one's
            # outputs.
            count = control[0]
            chained = Const(1)
            for layer in range(config.max_layers):
                present = (layer >= count) | configured[layer]
                linked = ((layer >= count) | (self.layers[layer].inputs ==
                                              self.layers[layer - 1].outputs)
                          if layer else Const(1))
                chained = chained & present & linked
            m.d.sync += [terms["chained"].eq(chained),
                         terms["net_count_ok"].eq((count != 0) & (count <= config.max_layers))]
            # LOAD_*: the payload is exactly the rows the control row announces.
            rows = control[1]
            # The fields are narrowed first (short carry chains keep this cycle short): more
            # rows than ``words`` can count never match it, and a row count or start row
            # beyond the deepest memory never fits.
            word_bits = len(words)
            counted = rows[:word_bits]
            m.d.sync += terms["load_length_ok"].eq(
                (rows[word_bits:] == 0) &
                (words == Mux(command.opcode == Opcode.LOAD_WEIGHTS,
                              counted * protocol.row_words(config, Opcode.LOAD_WEIGHTS),
                              counted * protocol.row_words(config, Opcode.LOAD_BIASES))))
            # LOAD_*: the rows fit their memory from the start row.
            depth_bits = max(config.weight_depth, config.max_groups).bit_length()
            start = control[0]
            short_start, short_rows = start[:depth_bits], rows[:depth_bits]
            depth = Mux(command.opcode == Opcode.LOAD_WEIGHTS, config.weight_depth,
                        config.max_groups)
            m.d.sync += terms["load_address_ok"].eq(
                (rows[depth_bits:] == 0) & (start[depth_bits:] == 0) &
                (short_start < depth) & (short_rows <= depth - short_start))
            # SET_CONV: whether the value fits each field width (the field is looked up in the
            # next cycle, from these registers).
            if config.conv:
                for width in sorted(set(conv_field_widths)):
                    m.d.sync += fits[width].eq(control[1][width:] == 0)
            # FRAME: layer 0's input rows.
            m.d.sync += terms["frame_length_ok"].eq(
                words == row_count(self.layers[0].inputs, lanes) *
                protocol.row_words(config, Opcode.FRAME))
        with m.If(extend):
            # SET_CONV: a field that exists, and a value that fits it.
            if config.conv:
                field_ok = Const(0)
                for index, width in enumerate(conv_field_widths):
                    field_ok = field_ok | ((control[0] == index) & fits[width])
                m.d.sync += terms["conv_field_ok"].eq(field_ok)
            for kind, module in gateware_kinds(config).items():
                with m.If(terms["extent_kind"] == kind.value):
                    m.d.sync += terms["extent"].eq(
                        terms["extent_base"] +
                        module.weight_extent(config, terms["extent_inputs"],
                                             terms["extent_outputs"]))
        with m.If(bound):
            m.d.sync += terms["extent_ok"].eq(terms["extent"] <= config.weight_depth)
        return terms

    def _check(self, m, command, terms, net_valid, configured):
        """The error that answers ``command`` (0 if it passes), combinationally from the
        command and its registered ``terms``."""
        config = self._config
        words = command.words
        control = command.control
        error = Signal(8)
        layer_ok = command.layer < config.max_layers

        def check(*rules):
            """The first failing (condition, error) pair sets the error."""
            with m.If(rules[0][0]):
                m.d.comb += error.eq(rules[0][1])
            for condition, code in rules[1:]:
                with m.Elif(condition):
                    m.d.comb += error.eq(code)

        with m.If(command.error != 0):
            m.d.comb += error.eq(command.error)
        with m.Else():
            with m.Switch(command.opcode):
                with m.Case(Opcode.STATUS, Opcode.BEGIN_SEQUENCE):
                    check((words != 0, Error.BAD_LENGTH))
                with m.Case(Opcode.SET_MODE):
                    rules = [(words != 0, Error.BAD_LENGTH),
                             (control[0][1:] != 0, Error.BAD_PARAMETER)]
                    if not config.reuse:
                        rules.append((~control[0][0], Error.UNSUPPORTED))
                    check(*rules)
                with m.Case(Opcode.SET_NET):
                    check((words != 0, Error.BAD_LENGTH),
                          (~terms["net_count_ok"], Error.BAD_PARAMETER),
                          (~terms["chained"], Error.BAD_NETWORK))
                with m.Case(Opcode.SET_LAYER):
                    check((words != 0, Error.BAD_LENGTH),
                          (~layer_ok, Error.BAD_LAYER),
                          (~terms["layer_fields_ok"] | ~terms["extent_ok"],
                           Error.BAD_PARAMETER))
                with m.Case(Opcode.LOAD_CENTROIDS):
                    if not config.reuse:
                        check((Const(1), Error.UNSUPPORTED))
                    else:
                        check((words != protocol.row_words(config, Opcode.LOAD_CENTROIDS),
                               Error.BAD_LENGTH),
                              (~layer_ok, Error.BAD_LAYER))
                with m.Case(Opcode.LOAD_WEIGHTS, Opcode.LOAD_BIASES):
                    weights = command.opcode == Opcode.LOAD_WEIGHTS
                    check((~terms["load_length_ok"], Error.BAD_LENGTH),
                          (~weights & ~layer_ok, Error.BAD_LAYER),
                          (~terms["load_address_ok"], Error.BAD_ADDRESS))
                with m.Case(Opcode.FRAME):
                    check((~net_valid, Error.NOT_READY),
                          (~terms["frame_length_ok"], Error.BAD_LENGTH))
                with m.Case(Opcode.SET_CONV):
                    if not config.conv:
                        check((Const(1), Error.UNSUPPORTED))
                    else:
                        check((words != 0, Error.BAD_LENGTH),
                              (~layer_ok, Error.BAD_LAYER),
                              (~terms["conv_field_ok"], Error.BAD_PARAMETER))
        return error

    def _apply(self, m, command, configured, net_valid, baseline, reuse_valid):
        """The state a command that passed changes, as it is accepted."""
        config = self._config
        control = command.control
        with m.Switch(command.opcode):
            with m.Case(Opcode.BEGIN_SEQUENCE):
                m.d.sync += reuse_valid.eq(0)
            with m.Case(Opcode.SET_MODE):
                m.d.sync += [baseline.eq(control[0][0]), reuse_valid.eq(0)]
            with m.Case(Opcode.SET_NET):
                m.d.sync += [self.layer_count.eq(control[0]), net_valid.eq(1),
                             reuse_valid.eq(0)]
            with m.Case(Opcode.SET_LAYER):
                layer = command.layer[:config.layer_bits]
                flags = protocol.LayerFlags(control[3])
                descriptor = self.layers[layer]
                m.d.sync += [
                    descriptor.inputs.eq(control[0]),
                    descriptor.outputs.eq(control[1]),
                    descriptor.weight_base.eq(control[2]),
                    descriptor.shift.eq(flags.shift),
                    descriptor.relu.eq(flags.relu),
                    descriptor.kind.eq(flags.kind.as_value()),
                    configured.bit_select(layer, 1).eq(1),
                    net_valid.eq(0),
                    reuse_valid.eq(0),
                ]
                if config.conv:
                    # SET_CONV commands follow for a conv layer, or a dense layer over a map.
                    m.d.sync += descriptor.conv.eq(0)
            with m.Case(Opcode.LOAD_CENTROIDS, Opcode.LOAD_WEIGHTS, Opcode.LOAD_BIASES):
                m.d.sync += [net_valid.eq(0), reuse_valid.eq(0)]
            with m.Case(Opcode.SET_CONV):
                if config.conv:
                    conv = self.layers[command.layer[:config.layer_bits]].conv
                    with m.Switch(control[0]):
                        for index, name in enumerate(protocol.CONV_FIELDS):
                            with m.Case(index):
                                field = conv_field(conv, name)
                                m.d.sync += field.eq(control[1][:len(Value.cast(field))])
                    m.d.sync += [net_valid.eq(0), reuse_valid.eq(0)]
