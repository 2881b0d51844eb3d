"""Host protocol: header words, payload packing and command lengths."""

import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reuse_accel.hw.config import AccelConfig, ConfigError
from reuse_accel.hw.protocol import (
    LAYER_COUNTERS,
    Opcode,
    counter_fields,
    expected_length,
    header,
    pack_rows,
    parse_header,
    unpack_rows,
    words_per_row,
)

# -- header ----------------------------------------------------------------------------------


def test_header_bit_positions():
    # opcode in bits 7..0, layer in 15..8, length in 31..16
    assert header(0x09, 0x02, 0x1234) == 0x1234_02_09
    assert header(Opcode.STATUS) == 0x0000_00_01
    assert header(0x85, 0, 1) == 0x0001_00_85
    assert header(0xFF, 0x07, 0) == 0x0000_07_FF
    assert header(0x00, 0x00, 0xFFFF) == 0xFFFF_00_00


def test_header_masks_code_and_argument_to_a_byte():
    assert header(0x1_03, 0x2_05, 7) == 0x0007_05_03


@pytest.mark.parametrize("length", [65536, 1 << 20, -1])
def test_header_length_out_of_range(length):
    message = f"payload length must be below 65536 words, not {length}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        header(0x01, 0, length)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 65535),
       st.integers(0, (1 << 224) - 1))
def test_parse_header_inverts_header_and_ignores_high_bits(code, arg, length, high):
    word = header(code, arg, length)
    assert word < 1 << 32
    assert parse_header(word) == (code, arg, length)
    assert parse_header(word | high << 32) == (code, arg, length)


# -- payload packing -------------------------------------------------------------------------


def test_pack_fields_little_endian_inside_a_word():
    assert pack_rows([[0x01, 0x02, 0x03]], 8, 32) == [0x00_03_02_01]
    assert pack_rows([0x11, 0x22, 0x33, 0x44], 8, 32) == [0x44_33_22_11]


def test_pack_signed_values_in_twos_complement():
    assert pack_rows([[-1, 2, -8, 7]], 4, 32) == [0x7_8_2_F]
    assert pack_rows([[-(1 << 31)]], 32, 32) == [0x8000_0000]


def test_pack_row_spanning_words_pads_with_zero():
    # Five 8-bit fields, four per 32-bit word: two words per row, the second holds one field.
    words = pack_rows([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], 8, 32)
    assert words == [0x04030201, 0x00000005, 0x09080706, 0x0000000A]


def test_pack_unused_high_bits_stay_zero():
    # 12-bit fields: two per 32-bit word, bits 31..24 unused even for all-ones values.
    assert pack_rows([[-1, -1, -1]], 12, 32) == [0x00FF_FFFF, 0x0000_0FFF]
    # 24-bit biases in 64-bit words: two per word.
    assert pack_rows([[-2, 1, 3]], 24, 64) == [0x000001_FFFFFE, 0x000003]


def test_unpack_rejects_wrong_word_count():
    message = "expected 4 words for 2 rows, got 3"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        unpack_rows([0, 0, 0], 2, 5, 8, 32, signed=False)


def test_unpack_unsigned_and_signed():
    words = [0x7_8_2_F]
    assert unpack_rows(words, 1, 4, 4, 32, signed=True).tolist() == [[-1, 2, -8, 7]]
    assert unpack_rows(words, 1, 4, 4, 32, signed=False).tolist() == [[15, 2, 8, 7]]


def reference_words(values, field_width, stream_width):
    """The documented packing, bit by bit: rows of ceil(n / floor(W / b)) words."""
    per_word = stream_width // field_width
    words = []
    for row in values:
        for start in range(0, len(row), per_word):
            word = 0
            for slot, value in enumerate(row[start:start + per_word]):
                word |= (value % (1 << field_width)) << (slot * field_width)
            words.append(word)
    return words


@st.composite
def packings(draw):
    stream_width = draw(st.sampled_from([32, 64, 128]))
    # up to the widest field the protocol carries: a bias of 18 + 32 bits
    field_width = draw(st.integers(1, min(stream_width, 50)))
    signed = draw(st.booleans())
    rows = draw(st.integers(1, 4))
    fields = draw(st.integers(1, 20))
    if signed:
        low, high = -(1 << (field_width - 1)), (1 << (field_width - 1)) - 1
    else:
        low, high = 0, (1 << field_width) - 1
    values = draw(st.lists(st.lists(st.integers(low, high), min_size=fields, max_size=fields),
                           min_size=rows, max_size=rows))
    return stream_width, field_width, signed, values


@settings(max_examples=300, deadline=None)
@given(packings())
def test_pack_unpack_round_trip(packing):
    stream_width, field_width, signed, values = packing
    rows, fields = len(values), len(values[0])
    words = pack_rows(values, field_width, stream_width)
    per_row = -(-fields // (stream_width // field_width))
    assert len(words) == rows * per_row == rows * words_per_row(fields, field_width,
                                                                stream_width)
    assert all(0 <= word < 1 << stream_width for word in words)
    assert words == reference_words(values, field_width, stream_width)
    unpacked = unpack_rows(words, rows, fields, field_width, stream_width, signed=signed)
    assert unpacked.shape == (rows, fields)
    assert unpacked.tolist() == values


def test_pack_accepts_numpy_arrays():
    values = np.array([[-3, 4], [5, -6]], dtype=np.int16)
    words = pack_rows(values, 16, 32)
    assert words == [0x0004_FFFD, 0xFFFA_0005]
    assert unpack_rows(words, 2, 2, 16, 32, signed=True).tolist() == values.tolist()


# -- command lengths -------------------------------------------------------------------------

SMALL = AccelConfig(lanes=4, clusters=16, act_width=8, act_frac=4, weight_width=8,
                    centroid_width=16, max_layers=2, max_neurons=32, weight_depth=64)
# index 4 bits, bias 24 bits


@pytest.mark.parametrize("stream_width,lengths", [
    # STATUS, SET_NET, SET_LAYER, SET_MODE, LOAD_CENTROIDS, BEGIN_SEQUENCE
    (32, (0, 1, 4, 1, 8, 0)),
    (64, (0, 1, 2, 1, 4, 0)),
    (128, (0, 1, 1, 1, 2, 0)),
])
def test_expected_length_of_fixed_commands(stream_width, lengths):
    config = replace(SMALL, stream_width=stream_width)
    opcodes = (Opcode.STATUS, Opcode.SET_NET, Opcode.SET_LAYER, Opcode.SET_MODE,
               Opcode.LOAD_CENTROIDS, Opcode.BEGIN_SEQUENCE)
    assert tuple(expected_length(config, opcode) for opcode in opcodes) == lengths


@pytest.mark.parametrize("stream_width,rows,weights,biases", [
    # control row [start, rows] then rows of 4 weights (8 bit) / 4 biases (24 bit)
    (32, 0, 2, 2),
    (32, 3, 2 + 3, 2 + 3 * 4),
    (64, 3, 1 + 3, 1 + 3 * 2),
    (128, 5, 1 + 5, 1 + 5 * 1),
])
def test_expected_length_of_loads(stream_width, rows, weights, biases):
    config = replace(SMALL, stream_width=stream_width)
    assert expected_length(config, Opcode.LOAD_WEIGHTS, rows=rows) == weights
    assert expected_length(config, Opcode.LOAD_BIASES, rows=rows) == biases


@pytest.mark.parametrize("lanes,inputs,stream_width,words", [
    (4, 1, 32, 1), (4, 4, 32, 1), (4, 5, 32, 2), (4, 32, 32, 8),
    (16, 32, 32, 4),   # 16 x 4-bit indices = 64 bits: 2 words per row, 2 rows
    (16, 32, 64, 2),
    (16, 17, 128, 2),
])
def test_expected_length_of_frame(lanes, inputs, stream_width, words):
    config = replace(SMALL, lanes=lanes, stream_width=stream_width)
    assert expected_length(config, Opcode.FRAME, inputs=inputs) == words


def test_expected_length_matches_packed_payloads():
    # What the host sends is what expected_length announces.
    for stream_width in (32, 64, 128):
        config = replace(SMALL, stream_width=stream_width)
        W, L = stream_width, config.lanes
        rows = 3
        weights = pack_rows([[0, rows]], 32, W) + pack_rows(np.zeros((rows, L)), 8, W)
        biases = pack_rows([[0, rows]], 32, W) + pack_rows(np.zeros((rows, L)), 24, W)
        layer = pack_rows([[8, 4, 0, 6]], 32, W)
        frame = pack_rows(np.zeros((3, L)), config.index_width, W)
        centroids = pack_rows(np.arange(16), 16, W)
        assert expected_length(config, Opcode.LOAD_WEIGHTS, rows=rows) == len(weights)
        assert expected_length(config, Opcode.LOAD_BIASES, rows=rows) == len(biases)
        assert expected_length(config, Opcode.SET_LAYER) == len(layer)
        assert expected_length(config, Opcode.FRAME, inputs=12) == len(frame)
        assert expected_length(config, Opcode.LOAD_CENTROIDS) == len(centroids)


@st.composite
def accepted_configs(draw):
    params = dict(
        lanes=draw(st.sampled_from([1, 4, 8])),
        clusters=draw(st.sampled_from([4, 16])),
        weight_width=draw(st.integers(2, 18)),
        centroid_width=draw(st.integers(16, 32)),
        act_width=16,
        max_neurons=draw(st.integers(1, 64)),
        stream_width=draw(st.sampled_from([32, 64])),
    )
    try:
        return AccelConfig(**params)
    except ConfigError:
        assume(False)


@settings(max_examples=100, deadline=None)
@given(accepted_configs())
def test_every_accepted_config_can_carry_its_payloads(config):
    # A configuration the generator accepts must be loadable over its own protocol: one bias
    # row (L fields of bias_width bits) packs into expected_length words and round-trips.
    biases = [[config.bias_max if lane % 2 else config.bias_min
               for lane in range(config.lanes)]]
    length = expected_length(config, Opcode.LOAD_BIASES, rows=1)
    control = pack_rows([[0, 1]], 32, config.stream_width)
    words = pack_rows(biases, config.bias_width, config.stream_width)
    assert length == len(control) + len(words)
    assert unpack_rows(words, 1, config.lanes, config.bias_width, config.stream_width,
                       signed=True).tolist() == biases


def test_counter_fields():
    # the frame's total cycle count, then the per-layer counters of every layer
    assert LAYER_COUNTERS == ("cycles", "changed_inputs", "out_of_range", "weight_rows",
                              "macs", "saturated_outputs")
    assert [counter_fields(layers) for layers in (1, 2, 4)] == [7, 13, 25]


def test_opcodes_match_the_table():
    assert {op.name: op.value for op in Opcode} == {
        "STATUS": 1, "SET_NET": 2, "SET_LAYER": 3, "SET_MODE": 4, "LOAD_CENTROIDS": 5,
        "LOAD_WEIGHTS": 6, "LOAD_BIASES": 7, "BEGIN_SEQUENCE": 8, "FRAME": 9, "SET_CONV": 10,
    }


@pytest.mark.parametrize("params,bits", [
    (dict(weight_width=18, centroid_width=16), 34),               # 34-bit biases, 32-bit words
    (dict(weight_width=8, centroid_width=32, act_width=16), 40),  # 40-bit biases
])
def test_bias_wider_than_a_stream_word_is_rejected(params, bits):
    # A bias field must fit one stream word, or no bias row could be packed.
    message = (f"biases are {bits} bits (weight_width + centroid_width) and must fit one "
               "stream word of stream_width=32 bits; raise stream_width or narrow weight_width "
               "or centroid_width")
    with pytest.raises(ConfigError, match=re.escape(message)):
        AccelConfig(**params)
    wider = AccelConfig(**params, stream_width=64)
    control = len(pack_rows([[0, 1]], 32, wider.stream_width))
    assert expected_length(wider, Opcode.LOAD_BIASES, rows=1) == control + wider.lanes
