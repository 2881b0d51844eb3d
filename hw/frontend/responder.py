"""Responder: every response, word by word, with ``last`` on its final word.

Contract
--------
- ``reply``: the response to send (:func:`.layouts.reply_layout`). Its header is loaded into
  the output register in the cycle the reply is accepted (``reply.ready`` is high when that
  register is free): ``opcode | 0x80`` with the command's layer and the payload length, or
  ``0xFF`` with the error code and no payload.
- Then the payload: a FRAME's output rows (``output_rows`` rows of L activations, each read
  from the I/O buffer through ``result_read`` and sent in ``ceil(L / floor(W / act_width))``
  words) and its counter row (``frame_cycles`` and every layer's ``counters``, for
  ``layer_count`` layers); a STATUS's ``status`` row.
- ``o``: the response words, registered; ``o.payload.last`` marks the final word of every
  response.
- ``done``: pulses when the final word of a response enters the output register.
- Throughput: one word per cycle, but for two cycles per output row (its read from the I/O
  buffer and its register) and one between the rows and the counters, and one after the last
  word.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import protocol
from ..config import COUNTER_WIDTH, AccelConfig, check_config
from ..protocol import Opcode
from ..tile import frame_cycles_shape, layer_counters_layout
from .layouts import reply_layout, word_layout

__all__ = ["Responder"]


class _State(enum.Enum, shape=2):
    IDLE = 0
    ROWS = 1
    FIELDS = 2


class Responder(wiring.Component):
    """Response words out of replies, the I/O buffer, the counters and the status row."""

    latency = 1
    """Cycles from a reply's acceptance to its header on ``o`` (the output register)."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        act_row = data.ArrayLayout(signed(config.act_width), config.lanes)
        super().__init__({
            "reply": In(stream.Signature(reply_layout(config))),
            "o": Out(stream.Signature(word_layout(config))),
            "done": Out(1),
            "result_read": In(memory.ReadPort.Signature(addr_width=config.row_bits,
                                                         shape=act_row)),
            "output_rows": In(config.row_count_bits),
            "layer_count": In(range(config.max_layers + 1)),
            "frame_cycles": In(frame_cycles_shape(config)),
            "counters": In(data.ArrayLayout(layer_counters_layout(config), config.max_layers)),
            "status": In(data.ArrayLayout(unsigned(COUNTER_WIDTH),
                                          len(protocol.STATUS_FIELDS))),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        W = config.stream_width
        per_word32 = W // COUNTER_WIDTH
        act_words = protocol.words_per_row(config.lanes, config.act_width, W)
        status_words = protocol.words_per_row(len(protocol.STATUS_FIELDS), COUNTER_WIDTH, W)

        counter_sources = [self.frame_cycles]
        for layer in range(config.max_layers):
            counter_sources += [getattr(self.counters[layer], name)
                                for name in protocol.LAYER_COUNTERS]
        counter_fields = 1 + len(protocol.LAYER_COUNTERS) * self.layer_count
        counter_words = (counter_fields + per_word32 - 1) // per_word32

        # The output register.
        out_word = Signal(W)
        out_last = Signal()
        out_valid = Signal()
        out_free = ~self.o.valid | self.o.ready
        with m.If(out_free):
            m.d.sync += [self.o.valid.eq(out_valid), self.o.payload.data.eq(out_word),
                         self.o.payload.last.eq(out_last)]
        m.d.comb += self.done.eq(out_valid & out_last & out_free)

        state = Signal(_State)
        status = Signal()              # the fields are the status row, not the counters
        row = Signal(config.row_count_bits)
        row_ready = Signal()           # the row's read was issued
        row_held = Signal()            # the row is in row_data
        row_data = Signal.like(self.result_read.data)
        row_word = Signal(range(max(act_words, 1) + 1))
        longest = max(status_words, protocol.words_per_row(
            protocol.counter_fields(config.max_layers), COUNTER_WIDTH, W))
        field_word = Signal(range(longest + 1))
        field_words = Signal(range(longest + 1))

        # A read port's enable rests high; read only when a row is fetched, so that the row's
        # data holds while its words are sent.
        m.d.comb += self.result_read.en.eq(0)
        reply = self.reply.payload
        with m.Switch(state):
            with m.Case(_State.IDLE):
                header = Signal(protocol.Header)
                frame = (reply.error == 0) & (reply.opcode == Opcode.FRAME)
                status_reply = (reply.error == 0) & (reply.opcode == Opcode.STATUS)
                with m.If(reply.error != 0):
                    m.d.comb += [header.code.eq(protocol.RESPONSE_ERROR),
                                 header.arg.eq(reply.error)]
                with m.Else():
                    m.d.comb += [header.code.eq(reply.opcode | protocol.RESPONSE_OK),
                                 header.arg.eq(reply.layer)]
                    with m.If(frame):
                        m.d.comb += header.length.eq(self.output_rows * act_words + counter_words)
                    with m.Elif(status_reply):
                        m.d.comb += header.length.eq(status_words)
                m.d.comb += [
                    self.reply.ready.eq(out_free),
                    out_valid.eq(self.reply.valid),
                    out_word.eq(header),
                    out_last.eq(~frame & ~status_reply),
                ]
                with m.If(self.reply.valid & out_free):
                    m.d.sync += [row.eq(0), row_ready.eq(0), row_held.eq(0), row_word.eq(0),
                                 field_word.eq(0), status.eq(status_reply)]
                    with m.If(frame):
                        m.d.sync += [state.eq(_State.ROWS), field_words.eq(counter_words)]
                    with m.Elif(status_reply):
                        m.d.sync += [state.eq(_State.FIELDS), field_words.eq(status_words)]
            with m.Case(_State.ROWS):
                # A registered read of the row, the row registered (the block RAM's output and
                # the word choice would otherwise share one cycle), then its words.
                with m.If(row == self.output_rows):
                    m.d.sync += state.eq(_State.FIELDS)
                with m.Elif(~row_ready):
                    m.d.comb += [self.result_read.addr.eq(row), self.result_read.en.eq(1)]
                    m.d.sync += row_ready.eq(1)
                with m.Elif(~row_held):
                    m.d.sync += [row_data.eq(self.result_read.data), row_held.eq(1)]
                with m.Else():
                    per_word = W // config.act_width
                    bits = row_data.as_value()
                    words = [bits[n * per_word * config.act_width:
                                  (n + 1) * per_word * config.act_width]
                             for n in range(act_words)]
                    m.d.comb += [out_valid.eq(1), out_word.eq(Array(words)[row_word])]
                    with m.If(out_free):
                        with m.If(row_word == act_words - 1):
                            m.d.sync += [row_word.eq(0), row_ready.eq(0), row_held.eq(0),
                                         row.eq(row + 1)]
                        with m.Else():
                            m.d.sync += row_word.eq(row_word + 1)
            with m.Case(_State.FIELDS):
                with m.If(field_word == field_words):
                    m.d.sync += state.eq(_State.IDLE)
                with m.Else():
                    status_source = Array(self.status[n] for n in range(len(self.status)))
                    counter_source = Array(counter_sources)
                    parts = []
                    for n in range(per_word32):
                        index = field_word * per_word32 + n
                        parts.append(Mux(status, status_source[index], counter_source[index]))
                    m.d.comb += [out_valid.eq(1), out_word.eq(Cat(*parts)),
                                 out_last.eq(field_word == field_words - 1)]
                    with m.If(out_free):
                        m.d.sync += field_word.eq(field_word + 1)
        return m
