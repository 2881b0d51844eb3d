"""The command front end: the protocol of :mod:`reuse_accel.hw.protocol` around the tile.

Ports: ``i``, a ``lib.stream`` of ``stream_width``-bit command words; ``o``, a ``lib.stream`` of
response words with ``last`` on the final word of every response; ``tile``, the
:class:`~reuse_accel.hw.tile.ProcessingTile`'s ports, driven from here.

It reads a header, then the command's control row (32-bit fields), validates the command, then
either drains its payload and answers with an error, or routes its payload rows into the tile's
memories, runs it, and answers. One command is handled at a time; the input stream is not
ready while a frame computes or a response is being sent. ``i.ready`` and ``o.valid`` depend on
registers only.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .. import protocol
from ..config import COUNTER_WIDTH, AccelConfig, check_config
from ..layers import layer_descriptor_layout
from ..protocol import Error, Opcode
from ..tile import tile_signature

__all__ = ["CommandFrontend", "response_word_layout"]


def response_word_layout(config: AccelConfig) -> data.StructLayout:
    """A word of the response stream: the word and whether it ends its response."""
    return data.StructLayout({"data": config.stream_width, "last": 1})


class _State(enum.Enum, shape=4):
    HEADER = 0
    CONTROL = 1
    VALIDATE = 2
    DATA = 3
    DRAIN = 4
    COMPUTE = 5
    RESPOND_HEADER = 6
    RESPOND_ROWS = 7
    RESPOND_FIELDS = 8


class CommandFrontend(wiring.Component):
    """The command protocol: decode, validate, route payloads, run frames, respond.

    Parameters
    ----------
    config : AccelConfig
        The hardware parameters; every size and width follows from them.
    """

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        super().__init__({
            "i": In(stream.Signature(config.stream_width)),
            "o": Out(stream.Signature(response_word_layout(config))),
            "tile": Out(tile_signature(config).flip()),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        W = config.stream_width
        lanes = config.lanes
        per_word32 = W // COUNTER_WIDTH

        tile = self.tile

        # Words per data row of every payload kind, and of each command's control row.
        weight_words = protocol.row_words(config, Opcode.LOAD_WEIGHTS)
        bias_words = protocol.row_words(config, Opcode.LOAD_BIASES)
        centroid_words = protocol.row_words(config, Opcode.LOAD_CENTROIDS) if config.reuse else 0
        index_words = protocol.row_words(config, Opcode.FRAME)
        act_words = protocol.words_per_row(lanes, config.act_width, W)
        control_words = {op: protocol.control_words(config, op) for op in Opcode}
        max_row_words = max(weight_words, bias_words, centroid_words, index_words)

        # Network state.
        descriptors = Signal(data.ArrayLayout(layer_descriptor_layout(config),
                                              config.max_layers))
        configured = Signal(config.max_layers)
        layer_count = Signal(range(config.max_layers + 1))
        net_valid = Signal()
        # Hardware without reuse is always in baseline mode.
        baseline = Signal(init=int(not config.reuse))
        reuse_valid = Signal()
        errors = Signal(COUNTER_WIDTH)
        m.d.comb += [
            tile.layers.eq(descriptors),
            tile.layer_count.eq(layer_count),
            tile.from_scratch.eq(baseline | ~reuse_valid if config.reuse else 1),
        ]

        # Command state.
        state = Signal(_State)
        opcode = Signal(8)
        layer_arg = Signal(8)
        length = Signal(16)
        remaining = Signal(16)
        control_fields = max(protocol.CONTROL_FIELDS.values())
        control = Signal(data.ArrayLayout(unsigned(COUNTER_WIDTH), control_fields + per_word32))
        control_index = Signal(range(8))
        error = Signal(8)
        # The words of a row before its last (the last is used as it arrives).
        row_buffer = Array(Signal(W, name=f"row_word{n}")
                           for n in range(max(1, max_row_words - 1)))
        row_word = Signal(range(max_row_words + 1))
        row_count = Signal(COUNTER_WIDTH)
        layer_ok = layer_arg < config.max_layers

        known = Signal()
        needed_control = Signal(range(8))
        with m.Switch(opcode):
            for op in Opcode:
                with m.Case(op):
                    m.d.comb += [known.eq(1), needed_control.eq(control_words[op])]

        # Input side.
        word = self.i.payload
        take = self.i.valid & self.i.ready
        fields32 = [word[COUNTER_WIDTH * n:COUNTER_WIDTH * (n + 1)] for n in range(per_word32)]

        def payload_row(words, field_width, fields):
            """Fields of a row whose last word is arriving now."""
            per_word = W // field_width
            parts = [row_buffer[n][:per_word * field_width] for n in range(words - 1)]
            parts.append(word[:per_word * field_width])
            bits = Cat(*parts)
            return [bits[n * field_width:(n + 1) * field_width] for n in range(fields)]

        def fail(code):
            m.d.sync += [error.eq(code), state.eq(_State.DRAIN)]

        # Ready only in cycles that consume the word: never swallow the next command.
        with m.Switch(state):
            with m.Case(_State.HEADER):
                m.d.comb += self.i.ready.eq(1)
            with m.Case(_State.CONTROL):
                m.d.comb += self.i.ready.eq(known & (length >= needed_control) &
                                            (control_index != needed_control))
            with m.Case(_State.DATA, _State.DRAIN):
                m.d.comb += self.i.ready.eq(remaining != 0)

        # Response side: a registered output word.
        out_word = Signal(W)
        out_last = Signal()
        out_valid = Signal()
        out_free = ~self.o.valid | self.o.ready
        with m.If(out_free):
            m.d.sync += [self.o.valid.eq(out_valid), self.o.payload.data.eq(out_word),
                         self.o.payload.last.eq(out_last)]

        response_length = Signal(16)
        response_row = Signal(config.group_count_bits)
        response_word = Signal(range(max(act_words, 1) + 1))
        response_rows = Signal(config.group_count_bits)
        row_ready = Signal()
        field_word = Signal(16)
        field_words = Signal(16)

        last_layer = descriptors[(layer_count - 1).as_unsigned()]
        output_rows = (last_layer.outputs + lanes - 1) >> exact_log2(lanes)
        counter_fields = [tile.frame_cycles]
        for layer in range(config.max_layers):
            counter_fields += [getattr(tile.counters[layer], name)
                               for name in protocol.LAYER_COUNTERS]
        counter_field_count = 1 + len(protocol.LAYER_COUNTERS) * layer_count
        counter_word_count = (counter_field_count + per_word32 - 1) // per_word32
        status_values = {
            "magic": protocol.MAGIC, "version": protocol.VERSION, "lanes": lanes,
            "clusters": config.clusters, "act_width": config.act_width,
            "act_frac": config.act_frac, "weight_width": config.weight_width,
            "centroid_width": config.centroid_width, "max_layers": config.max_layers,
            "max_neurons": config.max_neurons, "weight_depth": config.weight_depth,
            "stream_width": W,
            "flags": (Mux(net_valid, protocol.STATUS_FLAG_NET_VALID, 0) |
                      Mux(reuse_valid & ~baseline, protocol.STATUS_FLAG_REUSE_VALID, 0) |
                      Mux(baseline, protocol.STATUS_FLAG_BASELINE, 0) |
                      (protocol.STATUS_FLAG_REUSE_BUILD if config.reuse else 0)),
            "errors": errors,
        }
        status_fields = [status_values[name] for name in protocol.STATUS_FIELDS]
        status_words = protocol.words_per_row(len(status_fields), COUNTER_WIDTH, W)
        field_source = Array(counter_fields)
        status_source = Array(
            [Const(v, COUNTER_WIDTH) if isinstance(v, int) else v for v in status_fields])

        def validate():
            """One cycle: check the command against the hardware, apply SET_* commands."""
            lanes = config.lanes
            lane_bits = exact_log2(lanes)
            layer_index = layer_arg[:config.layer_bits]
            m.d.sync += [row_word.eq(0), row_count.eq(0)]

            def accept(data_follows=False):
                m.d.sync += state.eq(_State.DATA if data_follows else _State.RESPOND_HEADER)

            with m.Switch(opcode):
                with m.Case(Opcode.STATUS):
                    with m.If(length != 0):
                        fail(Error.BAD_LENGTH)
                    with m.Else():
                        accept()
                with m.Case(Opcode.BEGIN_SEQUENCE):
                    with m.If(length != 0):
                        fail(Error.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += reuse_valid.eq(0)
                        accept()
                with m.Case(Opcode.SET_MODE):
                    with m.If(length != control_words[Opcode.SET_MODE]):
                        fail(Error.BAD_LENGTH)
                    with m.Elif(control[0][1:] != 0):
                        fail(Error.BAD_PARAMETER)
                    if not config.reuse:
                        with m.Elif(~control[0][0]):
                            fail(Error.UNSUPPORTED)
                    with m.Else():
                        m.d.sync += [baseline.eq(control[0][0]), reuse_valid.eq(0)]
                        accept()
                with m.Case(Opcode.SET_NET):
                    count = control[0]
                    chained = Const(1)
                    for layer in range(config.max_layers):
                        present = (layer >= count) | configured[layer]
                        linked = (layer == 0) | (layer >= count) | \
                            (descriptors[layer].inputs == descriptors[layer - 1].outputs) \
                            if layer else Const(1)
                        chained = chained & present & linked
                    with m.If(length != control_words[Opcode.SET_NET]):
                        fail(Error.BAD_LENGTH)
                    with m.Elif((count == 0) | (count > config.max_layers)):
                        fail(Error.BAD_PARAMETER)
                    with m.Elif(~chained):
                        fail(Error.BAD_NETWORK)
                    with m.Else():
                        m.d.sync += [layer_count.eq(count), net_valid.eq(1), reuse_valid.eq(0)]
                        accept()
                with m.Case(Opcode.SET_LAYER):
                    inputs, outputs, weight_base = (control[n] for n in range(3))
                    flags = protocol.LayerFlags(control[3])
                    kind = flags.kind.as_value()
                    known_kind = Const(0)
                    for member in protocol.LayerKind:
                        known_kind = known_kind | (kind == member.value)
                    # The extent is computed on fields narrowed to their valid ranges: a field
                    # beyond its range fails the check anyway, and the product of two 32-bit
                    # fields would cost several DSP blocks and the longest path of the design.
                    neuron_bits = config.neuron_count_bits
                    narrow_groups = (outputs[:neuron_bits] + lanes - 1) >> lane_bits
                    extent = (weight_base[:config.weight_row_bits] +
                              inputs[:neuron_bits] * narrow_groups)
                    with m.If(length != control_words[Opcode.SET_LAYER]):
                        fail(Error.BAD_LENGTH)
                    with m.Elif(~layer_ok):
                        fail(Error.BAD_LAYER)
                    with m.Elif((inputs == 0) | (inputs > config.max_neurons) |
                                (outputs == 0) | (outputs > config.max_neurons) |
                                (flags.shift > config.max_shift) | (flags.reserved != 0) |
                                (flags.unused != 0) | ~known_kind |
                                (weight_base >= config.weight_depth) |
                                (extent > config.weight_depth)):
                        fail(Error.BAD_PARAMETER)
                    with m.Else():
                        descriptor = descriptors[layer_index]
                        m.d.sync += [
                            descriptor.inputs.eq(inputs),
                            descriptor.outputs.eq(outputs),
                            descriptor.weight_base.eq(weight_base),
                            descriptor.shift.eq(flags.shift),
                            descriptor.relu.eq(flags.relu),
                            descriptor.kind.eq(flags.kind),
                            configured.bit_select(layer_index, 1).eq(1),
                            net_valid.eq(0),
                            reuse_valid.eq(0),
                        ]
                        accept()
                with m.Case(Opcode.LOAD_CENTROIDS):
                    if not config.reuse:
                        fail(Error.UNSUPPORTED)
                    else:
                        with m.If(length != centroid_words):
                            fail(Error.BAD_LENGTH)
                        with m.Elif(~layer_ok):
                            fail(Error.BAD_LAYER)
                        with m.Else():
                            m.d.sync += [net_valid.eq(0), reuse_valid.eq(0)]
                            accept(data_follows=True)
                with m.Case(Opcode.LOAD_WEIGHTS, Opcode.LOAD_BIASES):
                    start, rows = control[0], control[1]
                    is_weights = opcode == Opcode.LOAD_WEIGHTS
                    payload_words = Mux(is_weights, rows * weight_words, rows * bias_words)
                    depth = Mux(is_weights, config.weight_depth, config.max_groups)
                    with m.If(length != control_words[Opcode.LOAD_WEIGHTS] + payload_words):
                        fail(Error.BAD_LENGTH)
                    with m.Elif(~is_weights & ~layer_ok):
                        fail(Error.BAD_LAYER)
                    with m.Elif((start >= depth) | (rows > depth - start)):
                        fail(Error.BAD_ADDRESS)
                    with m.Else():
                        m.d.sync += [net_valid.eq(0), reuse_valid.eq(0)]
                        accept(data_follows=True)
                with m.Case(Opcode.FRAME):
                    first = descriptors[0]
                    rows = (first.inputs + lanes - 1) >> lane_bits
                    with m.If(~net_valid):
                        fail(Error.NOT_READY)
                    with m.Elif(length != rows * index_words):
                        fail(Error.BAD_LENGTH)
                    with m.Else():
                        accept(data_follows=True)

        with m.Switch(state):
            with m.Case(_State.HEADER):
                with m.If(take):
                    fields = protocol.Header(word[:32])
                    m.d.sync += [
                        opcode.eq(fields.code),
                        layer_arg.eq(fields.arg),
                        length.eq(fields.length),
                        remaining.eq(fields.length),
                        control_index.eq(0),
                        control.eq(0),
                        error.eq(0),
                        state.eq(_State.CONTROL),
                    ]
            with m.Case(_State.CONTROL):
                with m.If(~known):
                    fail(Error.UNKNOWN_OPCODE)
                with m.Elif(length < needed_control):
                    fail(Error.BAD_LENGTH)
                with m.Elif(control_index == needed_control):
                    m.d.sync += state.eq(_State.VALIDATE)
                with m.Elif(take):
                    m.d.sync += [
                        remaining.eq(remaining - 1),
                        control_index.eq(control_index + 1),
                    ]
                    for index in range(max(control_words.values())):
                        with m.If(control_index == index):
                            for n, value in enumerate(fields32):
                                if index * per_word32 + n < control_fields:
                                    m.d.sync += control[index * per_word32 + n].eq(value)
            with m.Case(_State.VALIDATE):
                validate()
            with m.Case(_State.DATA):
                with m.If(remaining == 0):
                    with m.If(opcode == Opcode.FRAME):
                        m.d.comb += tile.start.eq(1)
                        m.d.sync += state.eq(_State.COMPUTE)
                    with m.Else():
                        m.d.sync += state.eq(_State.RESPOND_HEADER)
                with m.Elif(take):
                    m.d.sync += remaining.eq(remaining - 1)
                    row_end = Signal()
                    with m.Switch(opcode):
                        for op, words in ((Opcode.LOAD_WEIGHTS, weight_words),
                                          (Opcode.LOAD_BIASES, bias_words),
                                          (Opcode.LOAD_CENTROIDS, centroid_words),
                                          (Opcode.FRAME, index_words)):
                            if not words:
                                continue
                            with m.Case(op):
                                m.d.comb += row_end.eq(row_word == words - 1)
                    with m.If(row_end):
                        m.d.sync += [row_word.eq(0), row_count.eq(row_count + 1)]
                    with m.Else():
                        m.d.sync += [row_word.eq(row_word + 1), row_buffer[row_word].eq(word)]
                    start = control[0]
                    with m.Switch(opcode):
                        with m.Case(Opcode.LOAD_WEIGHTS):
                            fields = payload_row(weight_words, config.weight_width, lanes)
                            m.d.comb += [
                                tile.weight_write.addr.eq(start + row_count),
                                tile.weight_write.en.eq(row_end),
                            ]
                            for lane, value in enumerate(fields):
                                m.d.comb += tile.weight_write.data[lane].eq(value)
                        with m.Case(Opcode.LOAD_BIASES):
                            fields = payload_row(bias_words, config.bias_width, lanes)
                            m.d.comb += [
                                tile.bias_write.addr.eq(Cat((start + row_count)[:config.row_bits],
                                                            layer_arg[:config.layer_bits])),
                                tile.bias_write.en.eq(row_end),
                            ]
                            for lane, value in enumerate(fields):
                                m.d.comb += tile.bias_write.data[lane].eq(value)
                        with m.Case(Opcode.LOAD_CENTROIDS):
                            if config.reuse:
                                fields = payload_row(centroid_words, config.centroid_width,
                                                     config.clusters)
                                m.d.comb += [
                                    tile.centroid_write.addr.eq(layer_arg),
                                    tile.centroid_write.en.eq(row_end),
                                ]
                                for index, value in enumerate(fields):
                                    m.d.comb += tile.centroid_write.data[index].eq(value)
                        with m.Case(Opcode.FRAME):
                            fields = payload_row(index_words, config.frame_input_width, lanes)
                            m.d.comb += [
                                tile.fill.addr.eq(row_count),
                                tile.fill.en.eq(row_end),
                            ]
                            for lane, value in enumerate(fields):
                                m.d.comb += tile.fill.data[lane].eq(value)
            with m.Case(_State.DRAIN):
                with m.If(remaining == 0):
                    m.d.sync += [state.eq(_State.RESPOND_HEADER), errors.eq(errors + 1)]
                with m.Elif(take):
                    m.d.sync += remaining.eq(remaining - 1)
            with m.Case(_State.COMPUTE):
                with m.If(tile.done):
                    m.d.sync += [reuse_valid.eq(1), state.eq(_State.RESPOND_HEADER)]
            with m.Case(_State.RESPOND_HEADER):
                response = Signal(protocol.Header)
                has_payload = (error == 0) & ((opcode == Opcode.FRAME) |
                                              (opcode == Opcode.STATUS))
                m.d.comb += [out_valid.eq(1), out_word.eq(response), out_last.eq(~has_payload)]
                with m.If(error != 0):
                    m.d.comb += [response.code.eq(protocol.RESPONSE_ERROR),
                                 response.arg.eq(error)]
                with m.Else():
                    with m.Switch(opcode):
                        with m.Case(Opcode.FRAME):
                            m.d.comb += response_length.eq(
                                output_rows * act_words + counter_word_count)
                        with m.Case(Opcode.STATUS):
                            m.d.comb += response_length.eq(status_words)
                    m.d.comb += [response.code.eq(opcode | protocol.RESPONSE_OK),
                                 response.arg.eq(layer_arg),
                                 response.length.eq(response_length)]
                with m.If(out_free):
                    m.d.sync += [
                        response_row.eq(0),
                        response_rows.eq(output_rows),
                        response_word.eq(0),
                        row_ready.eq(0),
                        field_word.eq(0),
                    ]
                    with m.If((error == 0) & (opcode == Opcode.FRAME)):
                        m.d.sync += [state.eq(_State.RESPOND_ROWS),
                                     field_words.eq(counter_word_count)]
                    with m.Elif((error == 0) & (opcode == Opcode.STATUS)):
                        m.d.sync += [state.eq(_State.RESPOND_FIELDS),
                                     field_words.eq(status_words)]
                    with m.Else():
                        m.d.sync += state.eq(_State.HEADER)
            with m.Case(_State.RESPOND_ROWS):
                # A registered read of the row, then its words; the read port holds its data
                # while not enabled.
                with m.If(response_row == response_rows):
                    m.d.sync += state.eq(_State.RESPOND_FIELDS)
                with m.Elif(~row_ready):
                    m.d.comb += [tile.result_read.addr.eq(response_row),
                                 tile.result_read.en.eq(1)]
                    m.d.sync += row_ready.eq(1)
                with m.Else():
                    m.d.comb += tile.result_read.en.eq(0)
                    per_word = W // config.act_width
                    row_bits = tile.result_read.data.as_value()
                    words = [row_bits[n * per_word * config.act_width:
                                      (n + 1) * per_word * config.act_width]
                             for n in range(act_words)]
                    m.d.comb += [out_valid.eq(1), out_word.eq(Array(words)[response_word])]
                    with m.If(out_free):
                        with m.If(response_word == act_words - 1):
                            m.d.sync += [response_word.eq(0), row_ready.eq(0),
                                         response_row.eq(response_row + 1)]
                        with m.Else():
                            m.d.sync += response_word.eq(response_word + 1)
            with m.Case(_State.RESPOND_FIELDS):
                source = opcode == Opcode.STATUS
                with m.If(field_word == field_words):
                    m.d.sync += state.eq(_State.HEADER)
                with m.Else():
                    parts = []
                    for n in range(per_word32):
                        index = field_word * per_word32 + n
                        parts.append(Mux(source, status_source[index], field_source[index]))
                    m.d.comb += [out_valid.eq(1), out_word.eq(Cat(*parts)),
                                 out_last.eq(field_word == field_words - 1)]
                    with m.If(out_free):
                        m.d.sync += field_word.eq(field_word + 1)
        return m
