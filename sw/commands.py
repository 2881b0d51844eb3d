"""Encoding of host commands and decoding of responses (see :mod:`reuse_accel.hw.protocol`).

A :class:`Batch` collects commands as words; each command yields exactly one response, which
:func:`split_responses` cuts out of the returned word stream and :class:`Batch` decodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reuse_accel.hw import protocol
from reuse_accel.hw.config import COUNTER_WIDTH, AccelConfig
from reuse_accel.hw.layers import KINDS
from reuse_accel.hw.layers.conv import conv_fields, map_fields
from reuse_accel.hw.protocol import Error, Opcode
from reuse_accel.sim.model import FixedLayer, FrameResult

__all__ = ["Batch", "DeviceError", "ProtocolError", "layer_weight_rows", "split_responses",
           "weight_bases"]

class DeviceError(RuntimeError):
    """The accelerator answered a command with an error response."""

    def __init__(self, opcode: int, error: int):
        self.opcode = opcode
        self.error = error
        try:
            text = Error(error).description
            name = Error(error).name
        except ValueError:
            text, name = "unknown error code", str(error)
        super().__init__(f"the accelerator rejected {_opcode_name(opcode)}: {name} ({text})")


def _opcode_name(opcode: int) -> str:
    try:
        return Opcode(opcode).name
    except ValueError:
        return f"opcode {opcode:#04x}"


class ProtocolError(RuntimeError):
    """The response stream does not follow the protocol (a broken link or a hardware bug)."""


def layer_weight_rows(config: AccelConfig, layer) -> int:
    """Weight-memory rows of L weights that a layer (anything with ``kind``, ``inputs``,
    ``outputs``, ``input_layout`` and ``geometry``) takes: for a dense layer, one per input
    slot (the padding lanes of a map it flattens included) and output group; for a conv layer,
    one per input channel, kernel tap and output group."""
    if layer.geometry is not None:
        return layer.geometry.weight_row_count(config.lanes)
    if layer.recurrent is not None:
        # One row per input slot and row of gate sums.
        return layer.input_layout.span(config.lanes) * layer.recurrent.sum_rows(config.lanes)
    if layer.kind not in KINDS:
        raise ValueError(f"no weight layout for layer kind {layer.kind!r}")
    return KINDS[layer.kind].weight_row_count(config, layer.input_layout.span(config.lanes),
                                              layer.outputs)


def weight_bases(config: AccelConfig, layers: list[FixedLayer]) -> list[int]:
    """Weight-memory row where each layer's weights start (layers packed back to back)."""
    bases, row = [], 0
    for layer in layers:
        bases.append(row)
        row += layer_weight_rows(config, layer)
    return bases


def _lane_rows(config: AccelConfig, values: np.ndarray) -> np.ndarray:
    """Pad a vector to whole rows of L values: shape (rows, L)."""
    rows = config.groups(len(values))
    padded = np.zeros(rows * config.lanes, np.int64)
    padded[:len(values)] = values
    return padded.reshape(rows, config.lanes)


def _weight_rows(config: AccelConfig, layer) -> np.ndarray:
    """A layer's weights as the rows its address generator reads. A dense layer's columns are
    its inputs' buffer slots: a map's padding lanes get zero columns, never read."""
    if layer.geometry is not None:
        return layer.geometry.weight_rows(config.lanes, layer.weights)
    layout = layer.input_layout
    weights = np.zeros((layer.outputs, layout.span(config.lanes)), np.int64)
    weights[:, layout.stored_index(config.lanes)] = layer.weights
    return KINDS[layer.kind].weight_rows(config, weights)


@dataclass
class Batch:
    """A sequence of commands to send in one go, and how to read their responses."""

    config: AccelConfig
    words: list[int] = field(default_factory=list)
    expected: list[tuple[Opcode, dict]] = field(default_factory=list)

    def _command(self, opcode: Opcode, layer: int = 0, payload=(), **context) -> None:
        payload = list(payload)
        self.words.append(protocol.header(opcode, layer, len(payload)))
        self.words.extend(payload)
        self.expected.append((opcode, context))

    def _control(self, *fields: int) -> list[int]:
        return protocol.pack_rows([list(fields)], COUNTER_WIDTH, self.config.stream_width)

    def raw(self, words: list[int], opcode: Opcode | int) -> None:
        """Append arbitrary words that form one command (for tests of the error paths)."""
        self.words.extend(words)
        self.expected.append((opcode, {}))

    # -- commands ---------------------------------------------------------------------------

    def status(self) -> None:
        self._command(Opcode.STATUS)

    def set_mode(self, *, baseline: bool) -> None:
        self._command(Opcode.SET_MODE, payload=self._control(int(baseline)))

    def begin_sequence(self) -> None:
        self._command(Opcode.BEGIN_SEQUENCE)

    def load(self, layers: list[FixedLayer]) -> None:
        """Every command that loads a network, ending with SET_NET. Each SET_LAYER's flags
        carry the layer's shift, activation and kind, and its inputs and outputs count the
        buffer slots they span (:meth:`~reuse_accel.hw.layers.conv.MapLayout.span`); a conv
        layer's shape follows in SET_CONV commands, one per field, and so does the map a dense
        layer flattens (:func:`~reuse_accel.hw.layers.conv.map_fields`)."""
        config = self.config
        W = config.stream_width
        lanes = config.lanes
        for number, (layer, base) in enumerate(zip(layers, weight_bases(config, layers))):
            flags = protocol.layer_flags(layer.shift, layer.relu, layer.kind)
            self._command(Opcode.SET_LAYER, number, self._control(
                layer.input_layout.span(lanes), layer.output_layout.span(lanes), base, flags))
            if layer.geometry is not None:
                for field, value in enumerate(conv_fields(config, layer.geometry)):
                    self._command(Opcode.SET_CONV, number, self._control(field, value))
            elif layer.input_map is not None:
                # A dense layer over a map: how its positions sit in rows.
                for name, value in map_fields(config, layer.input_map).items():
                    self._command(Opcode.SET_CONV, number,
                                  self._control(protocol.CONV_FIELDS.index(name), value))
            if config.reuse:
                self._command(Opcode.LOAD_CENTROIDS, number,
                              protocol.pack_rows([layer.centroids], config.centroid_width, W))
            biases = _lane_rows(config, np.asarray(layer.biases))
            self._rows(Opcode.LOAD_BIASES, number, biases, config.bias_width, 0)
            rows = _weight_rows(config, layer)
            self._rows(Opcode.LOAD_WEIGHTS, number, rows, config.weight_width, base)
        self._command(Opcode.SET_NET, payload=self._control(len(layers)))

    def _rows(self, opcode: Opcode, layer: int, rows: np.ndarray, width: int,
              start: int) -> None:
        # As many rows per command as the 16-bit length field allows.
        per_command = ((protocol.MAX_LENGTH - protocol.control_words(self.config, opcode))
                       // protocol.row_words(self.config, opcode))
        for first in range(0, len(rows), per_command):
            chunk = rows[first:first + per_command]
            payload = self._control(start + first, len(chunk))
            payload += protocol.pack_rows(chunk, width, self.config.stream_width)
            self._command(opcode, layer, payload)

    def frame(self, indices: np.ndarray, layers: list[FixedLayer]) -> None:
        """A FRAME command (layer-0 cluster indices, or activations for hardware generated
        without reuse, channels last); ``layers`` tells how to decode its response."""
        lanes = self.config.lanes
        rows = layers[0].input_layout.scatter(np.asarray(indices), lanes).reshape(-1, lanes)
        payload = protocol.pack_rows(rows, self.config.frame_input_width,
                                     self.config.stream_width)
        self._command(Opcode.FRAME, payload=payload, outputs=layers[-1].output_layout,
                      layers=len(layers))

    # -- responses --------------------------------------------------------------------------

    def decode(self, responses: list[list[int]]) -> list:
        """Check every response and return the results: a :class:`FrameResult` for each
        FRAME, a dict for each STATUS, ``None`` for the rest. Raises :class:`DeviceError` for
        the first error response."""
        if len(responses) != len(self.expected):
            raise ProtocolError(
                f"expected {len(self.expected)} responses, received {len(responses)}")
        return [self._decode_one(opcode, context, response)
                for (opcode, context), response in zip(self.expected, responses)]

    def _decode_one(self, opcode, context, response):
        config = self.config
        code, arg, length = protocol.parse_header(response[0])
        if code == protocol.RESPONSE_ERROR:
            raise DeviceError(opcode, arg)
        if code != (int(opcode) | protocol.RESPONSE_OK):
            raise ProtocolError(
                f"response code {code:#04x} does not answer {_opcode_name(opcode)}")
        payload = response[1:]
        W = config.stream_width
        if opcode == Opcode.STATUS:
            fields = protocol.unpack_rows(payload, 1, len(protocol.STATUS_FIELDS),
                                          COUNTER_WIDTH, W, signed=False)[0]
            return dict(zip(protocol.STATUS_FIELDS, (int(v) for v in fields)))
        if opcode != Opcode.FRAME:
            return None
        layout, layers = context["outputs"], context["layers"]
        rows = layout.rows(config.lanes)
        output_words = rows * protocol.words_per_row(config.lanes, config.act_width, W)
        values = layout.gather(protocol.unpack_rows(payload[:output_words], rows, config.lanes,
                                                    config.act_width, W,
                                                    signed=True).reshape(-1), config.lanes)
        fields = protocol.counter_fields(layers)
        counters = protocol.unpack_rows(payload[output_words:], 1, fields, COUNTER_WIDTH, W,
                                        signed=False)[0]
        per_layer = counters[1:].reshape(layers, len(protocol.LAYER_COUNTERS))
        fields = dict(zip(protocol.LAYER_COUNTERS, per_layer.T))
        fields["layer_cycles"] = fields.pop("cycles")
        return FrameResult(outputs=values, cycles=int(counters[0]), **fields)


def split_responses(words: list[int], count: int) -> list[list[int]]:
    """Cut ``count`` responses (header plus payload) out of a word stream."""
    responses, position = [], 0
    for _ in range(count):
        if position >= len(words):
            raise ProtocolError(
                f"the response stream ended after {len(responses)} of {count} responses")
        length = protocol.parse_header(words[position])[2]
        end = position + 1 + length
        if end > len(words):
            raise ProtocolError(
                f"response {len(responses)} is truncated: {end - len(words)} words missing")
        responses.append(words[position:end])
        position = end
    if position != len(words):
        raise ProtocolError(f"{len(words) - position} unexpected words after the responses")
    return responses
