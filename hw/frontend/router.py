"""Payload router: a checked command's payload rows into the tile's memories, then the frame.

Contract
--------
- ``job``: a checked command (:func:`.layouts.job_layout`); ``payload``: its payload words,
  ``last`` on the final one (none if the job is ``empty``). With an error every word is
  drained; otherwise the words are gathered into rows (``ceil(n / floor(W / b))`` words for a
  row of ``n`` fields of ``b`` bits) and each row is written as its last word arrives:
  LOAD_WEIGHTS and LOAD_BIASES rows from row ``start``, LOAD_CENTROIDS the layer's table,
  FRAME rows into the I/O buffer from row 0.
- After a FRAME's last word, ``tile_start`` pulses (in the next cycle) and the router waits for
  ``tile_done``.
- ``reply``: then the response to send (:func:`.layouts.reply_layout`). The job is taken
  (``job.ready``) with its reply: the router reads it where the checker holds it.
- ``payload.ready`` depends on registers only.
"""

from amaranth.hdl import Array, Cat, Module, Signal, signed
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config
from ..protocol import Opcode, row_words
from .layouts import job_layout, reply_layout, word_layout

__all__ = ["PayloadRouter"]


class _State(enum.Enum, shape=2):
    IDLE = 0
    ROUTE = 1
    COMPUTE = 2
    REPLY = 3


class PayloadRouter(wiring.Component):
    """Payload words to memory rows; runs frames."""

    start_latency = 1
    """Cycles from a FRAME's last payload word to ``tile_start``."""

    reply_latency = 1
    """Cycles from ``tile_done`` to the reply."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        lanes = config.lanes
        act_row = data.ArrayLayout(signed(config.act_width), lanes)
        members = {
            "job": In(stream.Signature(job_layout(config))),
            "payload": In(stream.Signature(word_layout(config))),
            "reply": Out(stream.Signature(reply_layout(config))),
            "fill": In(memory.WritePort.Signature(addr_width=config.row_bits, shape=act_row)),
            "weight_write": In(memory.WritePort.Signature(
                addr_width=config.weight_row_bits,
                shape=data.ArrayLayout(signed(config.weight_width), lanes))),
            "bias_write": In(memory.WritePort.Signature(
                addr_width=config.group_bits + config.layer_bits,
                shape=data.ArrayLayout(signed(config.bias_width), lanes))),
            "tile_start": Out(1),
            "tile_done": In(1),
        }
        if config.reuse:
            members["centroid_write"] = In(memory.WritePort.Signature(
                addr_width=config.layer_bits,
                shape=data.ArrayLayout(signed(config.centroid_width), config.clusters)))
        super().__init__(members)

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        W = config.stream_width
        # Words per row of each payload (none for commands without rows).
        rows = {op: row_words(config, op) for op in (
            Opcode.LOAD_WEIGHTS, Opcode.LOAD_BIASES, Opcode.LOAD_CENTROIDS, Opcode.FRAME)}
        if not config.reuse:
            del rows[Opcode.LOAD_CENTROIDS]
        longest = max(rows.values())

        state = Signal(_State)
        job = self.job.payload
        routed = Signal()               # the job's last payload word has been taken
        # The words of a row before its last (the last is used as it arrives).
        row_buffer = Array(Signal(W, name=f"row_word{n}") for n in range(max(1, longest - 1)))
        row_word = Signal(range(longest + 1))
        row_count = Signal(job.start.shape().width + 1)
        word = self.payload.payload.data
        take = self.payload.valid & self.payload.ready

        def row_fields(words, field_width, fields):
            """Fields of a row whose last word is arriving now."""
            per_word = W // field_width
            parts = [row_buffer[n][:per_word * field_width] for n in range(words - 1)]
            parts.append(word[:per_word * field_width])
            bits = Cat(*parts)
            return [bits[n * field_width:(n + 1) * field_width] for n in range(fields)]

        ports = self._write_ports(m, job, rows, row_count, row_fields)
        m.d.comb += [
            self.reply.payload.opcode.eq(job.opcode),
            self.reply.payload.layer.eq(job.layer),
            self.reply.payload.error.eq(job.error),
        ]
        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(self.job.valid):
                    m.d.sync += [routed.eq(job.empty), row_word.eq(0), row_count.eq(0),
                                 state.eq(_State.ROUTE)]
            with m.Case(_State.ROUTE):
                m.d.comb += self.payload.ready.eq(~routed)
                with m.If(routed):
                    with m.If((job.error == 0) & (job.opcode == Opcode.FRAME)):
                        m.d.comb += self.tile_start.eq(1)
                        m.d.sync += state.eq(_State.COMPUTE)
                    with m.Else():
                        m.d.sync += state.eq(_State.REPLY)
                with m.Elif(take):
                    m.d.sync += routed.eq(self.payload.payload.last)
                    row_end = Signal()
                    with m.Switch(job.opcode):
                        for op, words in rows.items():
                            with m.Case(op):
                                m.d.comb += row_end.eq(row_word == words - 1)
                    with m.If(row_end):
                        m.d.sync += [row_word.eq(0), row_count.eq(row_count + 1)]
                    with m.Else():
                        m.d.sync += [row_word.eq(row_word + 1), row_buffer[row_word].eq(word)]
                    with m.If(job.error == 0), m.Switch(job.opcode):
                        for op, port in ports.items():
                            with m.Case(op):
                                m.d.comb += port.en.eq(row_end)
            with m.Case(_State.COMPUTE):
                with m.If(self.tile_done):
                    m.d.sync += state.eq(_State.REPLY)
            with m.Case(_State.REPLY):
                m.d.comb += [self.reply.valid.eq(1), self.job.ready.eq(self.reply.ready)]
                with m.If(self.reply.ready):
                    m.d.sync += state.eq(_State.IDLE)
        return m

    def _write_ports(self, m, job, rows, row_count, row_fields):
        """Drive every loading port's address and data from the row whose last word arrives
        now, whatever the command (only a port's ``en`` depends on it, which keeps the command
        decode off the data paths); returns the port of each opcode."""
        config = self._config
        lanes = config.lanes
        start = job.start
        targets = {
            Opcode.LOAD_WEIGHTS: (self.weight_write, start + row_count, config.weight_width,
                                  lanes),
            Opcode.LOAD_BIASES: (self.bias_write,
                                 Cat((start + row_count)[:config.group_bits],
                                     job.layer[:config.layer_bits]), config.bias_width, lanes),
            Opcode.FRAME: (self.fill, row_count, config.frame_input_width, lanes),
        }
        if config.reuse:
            targets[Opcode.LOAD_CENTROIDS] = (self.centroid_write, job.layer,
                                              config.centroid_width, config.clusters)
        for op, (port, address, width, fields) in targets.items():
            m.d.comb += port.addr.eq(address)
            for index, value in enumerate(row_fields(rows[op], width, fields)):
                m.d.comb += port.data[index].eq(value)
        return {op: port for op, (port, *_) in targets.items()}
