"""The payloads of the streams that join the command front end's components.

``command`` (decoder -> checker): a parsed header and control row. ``job`` (checker ->
router): what to do with the payload that follows. ``reply`` (router -> responder): which
response to send.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data

from ..config import COUNTER_WIDTH, AccelConfig
from ..protocol import CONTROL_FIELDS

__all__ = ["command_layout", "job_layout", "reply_layout", "word_layout", "CONTROL_SLOTS"]

CONTROL_SLOTS = max(CONTROL_FIELDS.values())
"""32-bit fields of the longest control row."""


def command_layout(config: AccelConfig) -> data.StructLayout:
    """A command as decoded: opcode, layer, the control row's fields, the payload words that
    follow the control row, and a decoding error (0, ``UNKNOWN_OPCODE`` or ``BAD_LENGTH``;
    with an error no control row is read and every word of the command is payload)."""
    return data.StructLayout({
        "opcode": 8,
        "layer": 8,
        "control": data.ArrayLayout(unsigned(COUNTER_WIDTH), CONTROL_SLOTS),
        "words": 16,
        "error": 8,
    })


def job_layout(config: AccelConfig) -> data.StructLayout:
    """A checked command: the payload's destination follows from ``opcode`` (LOAD_* rows to a
    memory from row ``start``, FRAME rows to the I/O buffer); with an ``error`` the payload
    words are drained instead; ``empty``: the command has no payload words. ``start`` is
    narrowed to the deepest memory's address (a passing LOAD_* starts inside its memory)."""
    return data.StructLayout({
        "opcode": 8,
        "layer": 8,
        "start": max(config.weight_row_bits, config.row_bits),
        "empty": 1,
        "error": 8,
    })


def reply_layout(config: AccelConfig) -> data.StructLayout:
    """The response to send: to ``opcode`` (its ``layer`` echoed), or an ``error``."""
    return data.StructLayout({"opcode": 8, "layer": 8, "error": 8})


def word_layout(config: AccelConfig) -> data.StructLayout:
    """A stream word and whether it is the last of its command's payload or of its response."""
    return data.StructLayout({"data": config.stream_width, "last": 1})
