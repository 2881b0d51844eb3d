"""The AXI4-Stream ports under cocotbext-axi: AxiStreamSource, AxiStreamSink and
AxiStreamMonitor connected with ``from_prefix``, random pauses on both sides, ``tlast`` on the
last word of every response, results bit-exact against the golden model.

The bench is ``tests/support/axi_bench.py``; it runs on the same simulator build as the
transport's own bench (:meth:`CocotbTransport.run_module`).
"""

from __future__ import annotations

import numpy as np
import pytest
from support.accelerator import command_words
from support.networks import conv_network, random_network, similar_frames
from support.rtl import CONV, NETWORKS, SIMULATORS, SMALL, WIDE

from reuse_accel.hw import protocol
from reuse_accel.hw.protocol import Error
from reuse_accel.sim.cocotb.transport import CocotbTransport
from reuse_accel.sim.model import FrameResult, GoldenModel
from reuse_accel.sw.commands import Batch, DeviceError

pytestmark = pytest.mark.rtl



@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("config", [SMALL, WIDE, CONV], ids=["small", "wide", "conv"])
def test_cocotbext_axi_streams_with_pauses(rtl_build_root, config, simulator):
    """On the conv configuration the network is two conv layers with average pools into a
    dense layer (support.networks.CONV_NETWORKS)."""
    rng = np.random.default_rng(7)
    if config == CONV:
        layers = conv_network(config, "average-pool", rng)
    else:
        layers = random_network(config, NETWORKS[config], rng)
    frames = similar_frames(config, layers[0].inputs, 4, 0.3, rng)
    model = GoldenModel(config, layers)
    batch = Batch(config)
    batch.load(layers)
    batch.status()
    batch.raw([protocol.header(0x42, 0, 2), 5, 6], 0x42)   # unknown opcode: drained, error
    batch.begin_sequence()
    expected = []
    for indices in frames:
        batch.frame(indices, layers)
        expected.append(model.frame(indices))

    transport = CocotbTransport(config, simulator, build_dir=rtl_build_root)
    result = transport.run_module("support.axi_bench", {
        "commands": command_words(batch.words),
        "responses": len(batch.expected),
        "stream_width": config.stream_width,
        "seed": 3,
        "source_pause": 0.3,
        "sink_pause": 0.4,
        "timeout_us": 20_000,
    })

    responses = result["frames"]
    # tlast ends every response and nothing else: each sink frame is one whole response.
    assert len(responses) == len(batch.expected) and result["left_over"] == 0
    for response in responses:
        assert len(response) == 1 + protocol.parse_header(response[0])[2]
    assert result["monitored"] == responses

    error_position = [opcode for opcode, _ in batch.expected].index(0x42)
    assert protocol.parse_header(responses[error_position][0])[:2] == (
        protocol.RESPONSE_ERROR, Error.UNKNOWN_OPCODE)
    with pytest.raises(DeviceError, match="UNKNOWN_OPCODE"):
        batch.decode(responses)
    del batch.expected[error_position], responses[error_position]
    decoded = batch.decode(responses)
    status = next(item for item in decoded if isinstance(item, dict))
    assert status["magic"] == protocol.MAGIC and status["lanes"] == config.lanes
    got = [item for item in decoded if isinstance(item, FrameResult)]
    assert len(got) == len(expected)
    for t, (result_, want) in enumerate(zip(got, expected)):
        assert np.array_equal(result_.outputs, want.outputs), f"frame {t}"
        assert result_.cycles == want.cycles, f"frame {t}"
        for name in ("layer_cycles", "changed_inputs", "out_of_range", "weight_rows", "macs",
                     "saturated_outputs"):
            assert np.array_equal(getattr(result_, name), getattr(want, name)), (t, name)
