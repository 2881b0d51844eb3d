"""Command decoder: header and control row in, decoded commands and their payload out.

Contract
--------
- ``i``: the command word stream. A command is a :class:`~reuse_accel.hw.protocol.Header` word,
  the opcode's control row (32-bit fields) and the rest of its ``length`` words.
- ``command``: one decoded command (:func:`.layouts.command_layout`) after its control row.
  An unknown opcode (``UNKNOWN_OPCODE``) or a length shorter than the control row
  (``BAD_LENGTH``) reads no control row: every word after the header is payload.
- ``payload``: then exactly the command's remaining words, passed through (``i.ready`` follows
  ``payload.ready``), ``last`` on the final one, so the framing never slips whatever the
  command holds. The command's ``words`` field counts them down once the command is taken.
- ``done``: the response to the command has been sent; only then is the next header read
  (one command at a time).
- ``i.ready`` depends on registers and ``payload.ready`` only, never on ``i.valid``.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import COUNTER_WIDTH, AccelConfig, check_config
from ..protocol import Error, Header, Opcode, control_words
from .layouts import CONTROL_SLOTS, command_layout, word_layout

__all__ = ["CommandDecoder"]


class _State(enum.Enum, shape=3):
    HEADER = 0
    CONTROL = 1
    COMMAND = 2
    PAYLOAD = 3
    WAIT = 4


class CommandDecoder(wiring.Component):
    """Parse a command's header and control row; pass its payload on."""

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        super().__init__({
            "i": In(stream.Signature(config.stream_width)),
            "command": Out(stream.Signature(command_layout(config))),
            "payload": Out(stream.Signature(word_layout(config))),
            "done": In(1),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        per_word = config.stream_width // COUNTER_WIDTH
        needed = {op: control_words(config, op) for op in Opcode}

        state = Signal(_State)
        command = self.command.payload
        words = command.words           # words of the command still to come, once counted down
        control_word = Signal(range(max(needed.values()) + 1))
        control_length = Signal.like(control_word)

        word = self.i.payload
        take = self.i.valid & self.i.ready

        # A control word is held in a register, with a one-hot flag for its slots, and lands
        # in them in the next cycle: the slots' enables then come from registers, not from the
        # word count and the input's handshake.
        control_words_max = max(needed.values())
        held_word = Signal.like(word)
        held_slots = Signal(max(control_words_max, 1))
        m.d.sync += held_slots.eq(0)
        for index in range(control_words_max):
            with m.If(held_slots[index]):
                for n in range(per_word):
                    slot = index * per_word + n
                    if slot < CONTROL_SLOTS:
                        m.d.sync += command.control[slot].eq(
                            held_word[COUNTER_WIDTH * n:COUNTER_WIDTH * (n + 1)])

        m.d.comb += [
            self.command.valid.eq(state == _State.COMMAND),
            self.payload.payload.data.eq(word),
            self.payload.payload.last.eq(words == 1),
        ]

        with m.Switch(state):
            with m.Case(_State.HEADER):
                m.d.comb += self.i.ready.eq(1)
                header = Header(word[:32])
                known = Signal()
                needs = Signal.like(control_word)
                with m.Switch(header.code):
                    for op in Opcode:
                        with m.Case(op):
                            m.d.comb += [known.eq(1), needs.eq(needed[op])]
                with m.If(take):
                    m.d.sync += [
                        command.opcode.eq(header.code),
                        command.layer.eq(header.arg),
                        command.control.eq(0),
                        words.eq(header.length),
                        control_word.eq(0),
                        control_length.eq(needs),
                        state.eq(_State.CONTROL),
                    ]
                    # Without a control row to read, every word of the command is payload.
                    with m.If(~known):
                        m.d.sync += [command.error.eq(Error.UNKNOWN_OPCODE),
                                     state.eq(_State.COMMAND)]
                    with m.Elif(header.length < needs):
                        m.d.sync += [command.error.eq(Error.BAD_LENGTH),
                                     state.eq(_State.COMMAND)]
                    with m.Else():
                        m.d.sync += command.error.eq(0)
            with m.Case(_State.CONTROL):
                m.d.comb += self.i.ready.eq(control_word != control_length)
                with m.If(control_word == control_length):
                    m.d.sync += state.eq(_State.COMMAND)
                with m.Elif(take):
                    m.d.sync += [control_word.eq(control_word + 1), words.eq(words - 1),
                                 held_word.eq(word), held_slots.eq(1 << control_word)]
            with m.Case(_State.COMMAND):
                with m.If(self.command.ready):
                    with m.If(words == 0):
                        m.d.sync += state.eq(_State.WAIT)
                    with m.Else():
                        m.d.sync += state.eq(_State.PAYLOAD)
            with m.Case(_State.PAYLOAD):
                m.d.comb += [
                    self.payload.valid.eq(self.i.valid),
                    self.i.ready.eq(self.payload.ready),
                ]
                with m.If(take):
                    m.d.sync += words.eq(words - 1)
                    with m.If(words == 1):
                        m.d.sync += state.eq(_State.WAIT)
            with m.Case(_State.WAIT):
                with m.If(self.done):
                    m.d.sync += state.eq(_State.HEADER)
        return m
