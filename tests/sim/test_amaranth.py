"""The Amaranth simulator behind the driver's transport API (:mod:`reuse_accel.sim.amaranth`):
its timeout counts cycles without a transfer in either direction."""

from __future__ import annotations

import re

import numpy as np
import pytest
from support.accelerator import split_commands
from support.networks import random_network

from reuse_accel.hw import protocol
from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.protocol import Opcode
from reuse_accel.sim.amaranth import AmaranthTransport
from reuse_accel.sw.commands import Batch, split_responses

RTL_CONFIG = AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=3)


# -- the Amaranth transport's timeout ------------------------------------------------------------

def test_amaranth_timeout_counts_transfers_in_both_directions():
    """A LOAD_WEIGHTS payload of 258 words takes longer than the 100-cycle timeout without a
    response word: still progress, since the accelerator accepts a word every cycle."""
    layers = random_network(RTL_CONFIG, [32, 32], np.random.default_rng(9))
    batch = Batch(RTL_CONFIG)
    batch.load(layers)
    longest = max(length for _, length, _ in split_commands(batch.words))
    assert longest == 2 + 32 * 8 > 100      # control row [start, rows], then the rows
    exchange = AmaranthTransport(RTL_CONFIG, timeout=100).exchange(batch.words,
                                                                   len(batch.expected))
    assert batch.decode(split_responses(exchange.words, len(batch.expected))) == \
        [None] * len(batch.expected)


def test_amaranth_timeout_reports_a_hang():
    """A header that promises more payload than comes: nothing moves either way. (The
    STATUS before it is answered: a header and 21 fields.)"""
    words = [protocol.header(Opcode.STATUS), protocol.header(Opcode.SET_MODE, 0, 3), 0]
    with pytest.raises(TimeoutError, match="^" + re.escape(
            "no response word for 50 cycles: the accelerator hangs (no command word moved "
            "either; 3 of 3 command words and 22 response words through)") + "$"):
        AmaranthTransport(RTL_CONFIG, timeout=50).exchange(words, 2)
