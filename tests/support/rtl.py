"""What the RTL tests share: the configurations they build (one simulator build each, cached)
and the simulators they run on."""

import shutil

import pytest

from reuse_accel.hw.config import AccelConfig

SMALL = AccelConfig(lanes=4, max_neurons=32, weight_depth=512, max_layers=3)
"""32-bit stream words."""
WIDE = AccelConfig(lanes=8, clusters=32, stream_width=64, max_neurons=64, weight_depth=1024,
                   max_layers=3)
"""64-bit stream words, 32 clusters."""
NETWORKS = {SMALL: [22, 13, 11, 6], WIDE: [37, 20, 17, 9]}
"""The layer sizes of the network each configuration runs."""
CONV = AccelConfig(lanes=4, clusters=8, act_width=8, act_frac=4, weight_width=6,
                   centroid_width=10, max_layers=3, max_neurons=64, weight_depth=1024,
                   max_kernel=5, max_height=7, max_width=30, buffer_depth=128,
                   state_depth=192, sum_depth=128)
"""Conv layers (:data:`support.networks.CONV_NETWORKS`), 8-bit activations."""

SIMULATORS = [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        shutil.which("iverilog") is None,
        reason="Icarus Verilog (iverilog) is not installed: apt-get install iverilog")),
]
"""Verilator always; Icarus where it is installed (CI installs it)."""
