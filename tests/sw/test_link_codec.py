"""The link's host side (:mod:`reuse_accel.sw.link_codec`): CRC, frame encoding and decoding,
the HELLO word, and the error messages."""

from __future__ import annotations

import random

import pytest

from reuse_accel.hw.link import Kind, hello_word
from reuse_accel.sw.link_codec import (
    CRC,
    FrameError,
    LinkInfo,
    crc16,
    decode_frame,
    encode_reply,
    encode_request,
    parse_hello,
)


def test_crc16_ccitt_false_check_value():
    # The catalogued check value of CRC-16/CCITT-FALSE (a.k.a. CRC-16/IBM-3740).
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF
    assert (CRC.data_width, CRC.residue()) == (8, 0)


def _bitwise_crc(data: bytes) -> int:
    """Polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR, bit by bit."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


@pytest.mark.parametrize("length", [1, 2, 255, 1030])
def test_crc16_is_the_documented_polynomial(length):
    data = random.Random(length).randbytes(length)
    assert crc16(data) == _bitwise_crc(data)


def test_request_bytes_are_exact():
    frame = encode_request(Kind.SEND, 0x12, [0x04030201, 0xA0B0C0D0], word_bytes=4)
    body = bytes([0x01, 0x12, 0x02, 0x01, 0x02, 0x03, 0x04, 0xD0, 0xC0, 0xB0, 0xA0])
    assert frame == bytes([0xA5]) + body + crc16(body).to_bytes(2, "big")
    poll = encode_request(Kind.POLL, 7, count=200, word_bytes=8)
    assert poll[:4] == bytes([0xA5, 0x02, 7, 200]) and len(poll) == 6
    # Appending the CRC high byte first leaves a zero residue, which the gateware checks.
    assert crc16(frame[1:]) == 0


def test_reply_round_trip_with_wide_words():
    words = [0x0123456789ABCDEF, 0, (1 << 64) - 1]
    frame = encode_reply(Kind.DATA, 200, words, word_bytes=8)
    decoded = decode_frame(frame, word_bytes=8)
    assert (decoded.kind, decoded.seq, decoded.count, decoded.words) == (
        Kind.DATA, 200, 3, tuple(words))


@pytest.mark.parametrize("damage, message", [
    (lambda f: f[:3], r"^frame cut short: 3 bytes, a header has 4$"),
    (lambda f: b"\x5b" + f[1:], r"^bad sync byte 0x5b, expected 0x5a$"),
    (lambda f: f[:1] + b"\x99" + f[2:], r"^unknown frame kind 0x99$"),
    (lambda f: f[:-1], r"^frame cut short: 9 of 10 bytes \(DATA, count 1\)$"),
    (lambda f: f + b"\x00", r"^1 bytes after the end of the frame \(DATA, count 1\)$"),
    (lambda f: f[:5] + bytes([f[5] ^ 0x08]) + f[6:],
     r"^CRC mismatch: received 0x[0-9a-f]{4}, computed 0x[0-9a-f]{4}$"),
])
def test_decode_errors_name_the_problem(damage, message):
    frame = encode_reply(Kind.DATA, 1, [0x11223344], word_bytes=4)      # 4 + 4 + 2 bytes
    with pytest.raises(FrameError, match=message):
        decode_frame(damage(frame), word_bytes=4)


def test_crc_mismatch_reports_both_values():
    frame = bytearray(encode_reply(Kind.ACK, 3, word_bytes=4))
    frame[2] ^= 0x01                                     # seq 3 -> 2
    good = crc16(bytes([Kind.ACK, 3, 0]))
    bad = crc16(bytes([Kind.ACK, 2, 0]))
    with pytest.raises(FrameError, match=f"^CRC mismatch: received {good:#06x}, "
                                         f"computed {bad:#06x}$"):
        decode_frame(bytes(frame), word_bytes=4)


@pytest.mark.parametrize("call, message", [
    (lambda: encode_request(Kind.ACK, 0, word_bytes=4),
     r"^a request kind must be SEND, POLL or HELLO, not <Kind.ACK: 129>$"),
    (lambda: encode_request(Kind.POLL, 0, [1], word_bytes=4),
     r"^only SEND carries words, not POLL$"),
    (lambda: encode_request(Kind.SEND, 256, [1], word_bytes=4),
     r"^seq must be an integer in 0\.\.255, not 256$"),
    (lambda: encode_request(Kind.SEND, 0, range(256), word_bytes=4),
     r"^count must be an integer in 0\.\.255, not 256$"),
    (lambda: encode_request(Kind.SEND, 0, [1 << 32], word_bytes=4),
     r"^payload word 0x100000000 does not fit 32 bits$"),
])
def test_encoder_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_hello_word_fields():
    word = hello_word(32, 256, 1024)
    # Bits 15..0 "LK", 23..16 chunk, 27..24 and 31..28 log2 of the depths.
    assert word == 0x4C4B | 32 << 16 | 8 << 24 | 10 << 28
    assert parse_hello(word) == LinkInfo(chunk=32, input_depth=256, output_depth=1024)
    with pytest.raises(FrameError, match=r"^HELLO_OK word 0x52414343 lacks the link magic "
                                         r"0x4c4b$"):
        parse_hello(0x52414343)
    with pytest.raises(FrameError, match=r"^HELLO_OK word 0x88004c4b reports a chunk of 0 "
                                         r"words$"):
        parse_hello(0x88004C4B)
