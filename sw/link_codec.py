"""The host side of the serial link's frames: encoding requests, decoding replies, the HELLO word.

The frame format, the kinds and the device's behaviour are specified in
:mod:`reuse_accel.hw.link`; this module encodes and decodes exactly those bytes (it is also the
reference the gateware's replies are tested against)::

    request  0xA5  kind  seq  count  [count words: SEND only]  crc_hi  crc_lo
    reply    0x5A  kind  seq  count  [count words]             crc_hi  crc_lo

Words are little endian, ``word_bytes`` bytes each. The CRC is :data:`CRC`, the same
``amaranth.lib.crc.catalog.CRC16_CCITT_FALSE`` the gateware instantiates, over ``kind ..
payload``, sent high byte first, so a good frame's CRC over ``kind .. crc_lo`` is 0 (the
residue the gateware checks). Every malformed input raises an error naming the problem:
:class:`ValueError` for a field out of range on encoding, :class:`FrameError` for a received
frame with a bad sync byte, an unknown kind, a wrong length or a bad CRC.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.lib.crc import catalog

from reuse_accel.hw.link import LINK_MAGIC, REPLY_SYNC, REQUEST_SYNC, REQUESTS, Kind

__all__ = [
    "CRC", "HEADER_BYTES", "CRC_BYTES", "crc16", "encode_frame", "encode_request",
    "encode_reply", "frame_length", "Frame", "FrameError", "decode_frame", "LinkInfo",
    "parse_hello",
]

CRC = catalog.CRC16_CCITT_FALSE(data_width=8)
"""The link's CRC parameters (bytes in, 16 bits out), as the gateware's ``Link`` uses them."""
HEADER_BYTES = 4             # sync, kind, seq, count
CRC_BYTES = 2


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (:data:`CRC`)."""
    return CRC.compute(data)


def _check_field(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be an integer in 0..255, not {value!r}")
    return value


def encode_frame(sync: int, kind: int, seq: int, words=(), *, word_bytes: int,
                 count: int | None = None) -> bytes:
    """One frame: ``sync kind seq count words crc``; ``count`` defaults to ``len(words)``."""
    words = [int(word) for word in words]
    count = len(words) if count is None else count
    _check_field("seq", seq)
    _check_field("count", count)
    if words and count != len(words):
        raise ValueError(f"count {count} does not match the {len(words)} payload words")
    body = bytearray([_check_field("kind", int(kind)), seq, count])
    for word in words:
        if not 0 <= word < 1 << (8 * word_bytes):
            raise ValueError(f"payload word {word:#x} does not fit {8 * word_bytes} bits")
        body += word.to_bytes(word_bytes, "little")
    crc = crc16(body)
    return bytes([sync]) + bytes(body) + crc.to_bytes(2, "big")


def encode_request(kind: Kind, seq: int, words=(), *, word_bytes: int,
                   count: int | None = None) -> bytes:
    """A host request. SEND carries ``words``; POLL gives the words it wants as ``count``."""
    if kind not in REQUESTS:
        raise ValueError(f"a request kind must be SEND, POLL or HELLO, not {kind!r}")
    if kind != Kind.SEND and words:
        raise ValueError(f"only SEND carries words, not {Kind(kind).name}")
    return encode_frame(REQUEST_SYNC, kind, seq, words, word_bytes=word_bytes,
                        count=count if kind != Kind.SEND else None)


def encode_reply(kind: Kind, seq: int, words=(), *, word_bytes: int) -> bytes:
    """A device reply (used by the tests as the reference for the gateware)."""
    return encode_frame(REPLY_SYNC, kind, seq, words, word_bytes=word_bytes)


def frame_length(count: int, word_bytes: int) -> int:
    """Bytes of a frame with ``count`` payload words."""
    return HEADER_BYTES + count * word_bytes + CRC_BYTES


class FrameError(ValueError):
    """A received frame is malformed: bad sync byte, cut short, unknown kind or bad CRC."""


@dataclass(frozen=True)
class Frame:
    """A decoded frame (``kind`` a :class:`~reuse_accel.hw.link.Kind`)."""

    sync: int
    kind: int
    seq: int
    count: int
    words: tuple[int, ...]


def decode_frame(data: bytes, *, word_bytes: int, sync: int = REPLY_SYNC) -> Frame:
    """Decode one complete frame whose payload is ``count`` words (every reply, a SEND).

    Raises :class:`FrameError` naming what is wrong.
    """
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise FrameError(f"frame cut short: {len(data)} bytes, a header has {HEADER_BYTES}")
    if data[0] != sync:
        raise FrameError(f"bad sync byte {data[0]:#04x}, expected {sync:#04x}")
    kind, seq, count = data[1], data[2], data[3]
    try:
        kind = Kind(kind)
    except ValueError:
        raise FrameError(f"unknown frame kind {kind:#04x}") from None
    expected = frame_length(count, word_bytes)
    if len(data) < expected:
        raise FrameError(f"frame cut short: {len(data)} of {expected} bytes "
                         f"({Kind(kind).name}, count {count})")
    if len(data) > expected:
        raise FrameError(f"{len(data) - expected} bytes after the end of the frame "
                         f"({Kind(kind).name}, count {count})")
    received = int.from_bytes(data[-2:], "big")
    computed = crc16(data[1:-2])
    if received != computed:
        raise FrameError(f"CRC mismatch: received {received:#06x}, computed {computed:#06x}")
    payload = data[HEADER_BYTES:-2]
    words = tuple(int.from_bytes(payload[n:n + word_bytes], "little")
                  for n in range(0, len(payload), word_bytes))
    return Frame(sync=data[0], kind=kind, seq=seq, count=count, words=words)


@dataclass(frozen=True)
class LinkInfo:
    """What a device reports in HELLO_OK."""

    chunk: int          # most words per DATA reply
    input_depth: int    # words the input buffer holds (largest SEND that can be stored)
    output_depth: int   # words the output buffer holds


def parse_hello(word: int) -> LinkInfo:
    """Inverse of :func:`~reuse_accel.hw.link.hello_word`; :class:`FrameError` if the magic is
    wrong or the chunk is 0."""
    if word & 0xFFFF != LINK_MAGIC:
        raise FrameError(f"HELLO_OK word {word:#x} lacks the link magic {LINK_MAGIC:#06x}")
    chunk = (word >> 16) & 0xFF
    if chunk == 0:
        raise FrameError(f"HELLO_OK word {word:#x} reports a chunk of 0 words")
    return LinkInfo(chunk=chunk, input_depth=1 << ((word >> 24) & 0xF),
                    output_depth=1 << ((word >> 28) & 0xF))
