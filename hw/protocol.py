"""The host command protocol, shared by the gateware decoder and the host driver.

Both streams carry W-bit words (``AccelConfig.stream_width``). Every command is one header word
followed by exactly ``length`` payload words; the accelerator consumes all of them whatever
happens and answers every command with exactly one response (header plus payload). A command it
cannot execute is drained and answered with an error response, so the framing never slips and
the hardware never waits on a malformed command.

Header word (the low 32 bits of a word; higher bits are ignored)::

    bits  7..0   opcode (command) or response code
    bits 15..8   layer (command) or error code (error response)
    bits 31..16  length: payload words that follow

Response codes: ``opcode | 0x80`` for success (bits 15..8 echo the command's layer), ``0xFF``
for an error (bits 15..8 then hold an :class:`Error`, and the length is 0).

Payload packing: a payload is a sequence of *rows*; a row of ``n`` fields of ``b`` bits takes
``ceil(n / floor(W / b))`` words, fields little-endian inside a word, unused bits zero. Rows of
lane data hold L fields (one memory row), a centroid row holds K fields, and control rows hold
32-bit fields.

======================  =====  =========================================================
command                 code   payload
======================  =====  =========================================================
STATUS                  0x01   none; answers with the status row (see :data:`STATUS_FIELDS`)
SET_NET                 0x02   control row ``[layers]``; checks that the layers chain up
SET_LAYER               0x03   control row ``[inputs, outputs, weight_base, flags]``;
                               ``flags`` is a :class:`LayerFlags` (shift, relu, kind)
SET_MODE                0x04   control row ``[flags]``; ``flags = baseline``
LOAD_CENTROIDS          0x05   one row of K centroids
LOAD_WEIGHTS            0x06   control row ``[start, rows]``, then ``rows`` rows of L weights
LOAD_BIASES             0x07   control row ``[start, rows]``, then ``rows`` rows of L biases
BEGIN_SEQUENCE          0x08   none; the next frame computes from scratch
FRAME                   0x09   ``ceil(inputs / L)`` rows of L layer-0 inputs (cluster
                               indices; activations if generated without reuse);
                               answers with the output rows of the last layer then the
                               counter row (see :func:`counter_fields`)
SET_CONV                0x0A   control row ``[field, value]``: one field of a conv layer's
                               descriptor (:data:`CONV_FIELDS`); hardware without conv
                               layers answers :attr:`Error.UNSUPPORTED`
======================  =====  =========================================================

Hardware generated without reuse answers LOAD_CENTROIDS and SET_MODE with ``baseline = 0``
with :attr:`Error.UNSUPPORTED`.

Any SET_* or LOAD_* command also marks the reuse state stale, so the next frame computes from
scratch as after BEGIN_SEQUENCE; SET_LAYER, SET_CONV and LOAD_* also require a new SET_NET before
frames.
"""


import enum

import numpy as np
from amaranth.lib import data
from amaranth.lib import enum as hdl_enum

from .config import COUNTER_WIDTH, AccelConfig

__all__ = [
    "Opcode", "Error", "Header", "LayerFlags", "LayerKind", "PoolCode", "RESPONSE_ERROR",
    "RESPONSE_OK",
    "MAGIC", "VERSION", "STATUS_FIELDS", "LAYER_COUNTERS", "header", "parse_header",
    "words_per_row", "pack_rows", "unpack_rows", "counter_fields", "expected_length",
    "layer_flags", "CONTROL_FIELDS", "CONV_AXIS_FIELDS", "CONV_FIELDS", "POOL_AXIS_FIELDS",
    "MAX_LENGTH",
    "control_words", "row_words", "frame_response_length",
]

MAGIC = 0x52414343  # "RACC"
VERSION = 4
RESPONSE_OK = 0x80
RESPONSE_ERROR = 0xFF


class Opcode(enum.IntEnum):
    STATUS = 0x01
    SET_NET = 0x02
    SET_LAYER = 0x03
    SET_MODE = 0x04
    LOAD_CENTROIDS = 0x05
    LOAD_WEIGHTS = 0x06
    LOAD_BIASES = 0x07
    BEGIN_SEQUENCE = 0x08
    FRAME = 0x09
    SET_CONV = 0x0A


class LayerKind(hdl_enum.Enum, shape=8):
    """What a layer computes: which address generator turns its changed inputs into MAC work.
    """

    DENSE = 0
    CONV = 1
    LSTM = 2     # the golden model only, so far: no gateware
    GRU = 3      # the golden model only, so far: no gateware


class PoolCode(hdl_enum.Enum, shape=2):
    """SET_CONV's ``pool`` field: what follows a conv layer's activation in its readout."""

    NONE = 0
    MAX = 1
    AVG = 2                    # over the window's cells inside the map
    AVG_COUNTING_PADDING = 3   # over the whole window (count_include_pad)


class Header(data.Struct):
    """The low 32 bits of a command or response header word."""

    code: 8      # opcode of a command; ``opcode | RESPONSE_OK`` or RESPONSE_ERROR of a response
    arg: 8       # layer of a command; the echoed layer or the error code of a response
    length: 16   # payload words that follow


class LayerFlags(data.Struct):
    """The ``flags`` field of SET_LAYER (one 32-bit control field)."""

    shift: 8     # fractional bits of the layer's weights, at most ``AccelConfig.max_shift``
    relu: 1      # ReLU after the layer (identity otherwise)
    reserved: 7  # zero
    kind: LayerKind
    unused: 8    # zero


def layer_flags(shift: int, relu: bool, kind: LayerKind = LayerKind.DENSE) -> int:
    """The SET_LAYER ``flags`` word."""
    return LayerFlags.const({"shift": shift, "relu": int(relu), "kind": kind}).as_bits()


class Error(enum.IntEnum):
    """Error codes of an error response, with what the host should do about them."""

    UNKNOWN_OPCODE = 1
    BAD_LENGTH = 2
    BAD_LAYER = 3
    BAD_ADDRESS = 4
    BAD_PARAMETER = 5
    NOT_READY = 6
    BAD_NETWORK = 7
    UNSUPPORTED = 8

    @property
    def description(self) -> str:
        return _ERROR_TEXT[self]


_ERROR_TEXT = {
    Error.UNKNOWN_OPCODE: "unknown opcode",
    Error.BAD_LENGTH: "payload length does not match the command",
    Error.BAD_LAYER: "layer index beyond the hardware's max_layers",
    Error.BAD_ADDRESS: "memory rows beyond the hardware's capacity",
    Error.BAD_PARAMETER: "layer or mode parameter out of range",
    Error.NOT_READY: "frame sent before a valid SET_NET",
    Error.BAD_NETWORK: "layers missing or not chained (inputs of layer l != outputs of l-1)",
    Error.UNSUPPORTED: "the hardware was generated without reuse (no centroids, baseline "
                       "only) or without conv layers (max_kernel = 0)",
}

STATUS_FIELDS = (
    "magic", "version", "lanes", "clusters", "act_width", "act_frac", "weight_width",
    "centroid_width", "max_layers", "max_neurons", "weight_depth", "stream_width",
    "weight_bank_width", "max_kernel", "max_height", "max_width", "buffer_depth",
    "state_depth", "sum_depth", "flags", "errors",
)
"""Fields of the STATUS response's control row. ``flags``: bit 0 network valid, bit 1 reuse
state valid (the next frame reuses), bit 2 baseline mode, bit 3 the hardware has the reuse
logic (generated with ``reuse = true``). ``errors``: error responses sent."""

CONV_AXIS_FIELDS = (
    "size", "kernel", "stride", "last_out", "first_out", "first_tap", "weight_step",
    "first_weights", "walk_weights", "sum_step", "first_sums",
)
"""The fields of one axis of a conv layer (see
:func:`reuse_accel.hw.layers.descriptor.axis_layout`)."""

POOL_AXIS_FIELDS = ("kernel", "stride", "low", "count", "low_sums", "step")
"""The fields of one axis of a conv layer's pool (see
:func:`reuse_accel.hw.layers.descriptor.pool_axis_layout`)."""

CONV_FIELDS = (*(f"y.{name}" for name in CONV_AXIS_FIELDS),
               *(f"x.{name}" for name in CONV_AXIS_FIELDS),
               "channel_rows", "channel_lanes", "groups", "group_lanes", "group_weights",
               "sum_rows", "pool",
               *(f"pool_y.{name}" for name in POOL_AXIS_FIELDS),
               *(f"pool_x.{name}" for name in POOL_AXIS_FIELDS))
"""The fields SET_CONV sets, by number (see
:func:`reuse_accel.hw.layers.descriptor.conv_descriptor_layout`; the host computes them with
:func:`reuse_accel.hw.layers.conv.conv_descriptor`)."""

STATUS_FLAG_NET_VALID = 1
STATUS_FLAG_REUSE_VALID = 2
STATUS_FLAG_BASELINE = 4
STATUS_FLAG_REUSE_BUILD = 8

LAYER_COUNTERS = ("cycles", "changed_inputs", "out_of_range", "weight_rows", "macs",
                  "saturated_outputs")
"""Per-layer counters in a FRAME response, after the frame's total cycle count:
cycles, inputs that changed, inputs outside the calibrated range (end clusters), weight rows
read, multiply-accumulates, and outputs clamped to the activation range."""


def counter_fields(layers: int) -> int:
    """32-bit fields in a FRAME response's counter row."""
    return 1 + len(LAYER_COUNTERS) * layers


def header(code: int, arg: int = 0, length: int = 0) -> int:
    """A :class:`Header` word."""
    if not 0 <= length < 1 << 16:
        raise ValueError(f"payload length must be below 65536 words, not {length}")
    return Header.const({"code": code & 0xFF, "arg": arg & 0xFF, "length": length}).as_bits()


def parse_header(word: int) -> tuple[int, int, int]:
    """``(code, arg, length)`` of a header word (bits beyond the header are ignored)."""
    fields = Header.from_bits(int(word) & 0xFFFF_FFFF)
    return fields.code, fields.arg, fields.length


def words_per_row(fields: int, field_width: int, stream_width: int) -> int:
    per_word = stream_width // field_width
    return -(-fields // per_word)


def pack_rows(values, field_width: int, stream_width: int) -> list[int]:
    """Pack a (rows, fields) integer array into W-bit words, row by row.

    Signed values are stored in two's complement; values must already fit ``field_width``.
    """
    values = np.asarray(values, dtype=np.int64)
    if values.ndim == 1:
        values = values[None, :]
    rows, fields = values.shape
    per_word = stream_width // field_width
    per_row = -(-fields // per_word)
    padded = np.zeros((rows, per_row * per_word), dtype=object)
    padded[:, :fields] = values.astype(object) & ((1 << field_width) - 1)
    padded = padded.reshape(rows * per_row, per_word)
    words = np.zeros(rows * per_row, dtype=object)
    for slot in range(per_word):
        words |= padded[:, slot] << (slot * field_width)
    return [int(word) for word in words]


def unpack_rows(words, rows: int, fields: int, field_width: int, stream_width: int,
                signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_rows`: a (rows, fields) int64 array."""
    per_word = stream_width // field_width
    per_row = -(-fields // per_word)
    if len(words) != rows * per_row:
        raise ValueError(f"expected {rows * per_row} words for {rows} rows, got {len(words)}")
    words = np.array([int(word) for word in words], dtype=object)
    mask = (1 << field_width) - 1
    slots = np.stack([(words >> (slot * field_width)) & mask for slot in range(per_word)], 1)
    values = slots.reshape(rows, per_row * per_word)[:, :fields].astype(np.int64)
    if signed:
        values = np.where(values >= 1 << (field_width - 1), values - (1 << field_width), values)
    return values


CONTROL_FIELDS = {
    Opcode.SET_NET: 1, Opcode.SET_LAYER: 4, Opcode.SET_MODE: 1,
    Opcode.LOAD_WEIGHTS: 2, Opcode.LOAD_BIASES: 2, Opcode.SET_CONV: 2,
}
"""32-bit fields in each command's control row (commands not listed have none)."""

MAX_LENGTH = 0xFFFF
"""Largest payload of one command or response, in words (the 16-bit length field)."""


def control_words(config: AccelConfig, opcode: Opcode) -> int:
    """Words of a command's control row."""
    return words_per_row(CONTROL_FIELDS.get(opcode, 0), COUNTER_WIDTH, config.stream_width)


def row_words(config: AccelConfig, opcode: Opcode) -> int:
    """Words of one data row of a LOAD_* or FRAME payload."""
    W = config.stream_width
    return {
        Opcode.LOAD_CENTROIDS: words_per_row(config.clusters, config.centroid_width, W),
        Opcode.LOAD_WEIGHTS: words_per_row(config.lanes, config.weight_width, W),
        Opcode.LOAD_BIASES: words_per_row(config.lanes, config.bias_width, W),
        Opcode.FRAME: words_per_row(config.lanes, config.frame_input_width, W),
    }.get(opcode, 0)


def frame_response_length(config: AccelConfig, outputs: int, layers: int) -> int:
    """Payload words of a FRAME response: the output rows, then the counter row."""
    return (config.groups(outputs) * words_per_row(config.lanes, config.act_width,
                                                   config.stream_width)
            + words_per_row(counter_fields(layers), COUNTER_WIDTH, config.stream_width))


def expected_length(config: AccelConfig, opcode: Opcode, *, rows: int = 0,
                    inputs: int = 0) -> int:
    """Payload words of a well-formed command (``rows``: LOAD_*; ``inputs``: FRAME)."""
    if opcode == Opcode.LOAD_CENTROIDS:
        rows = 1
    elif opcode == Opcode.FRAME:
        rows = config.groups(inputs)
    return control_words(config, opcode) + rows * row_words(config, opcode)
