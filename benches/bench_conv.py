"""Conv efficiency: with reuse off, how busy is the MAC array on a 3x3, 8->16-channel conv over
a 32x32 map?

Busy share = the MAC array's weight-row cycles (one per MAC item: L output channels of one
kernel tap of one input) over the layer's cycles, from the hardware's counters. The layer is
the frame's only one, so its count includes the setup, the pipeline's fill and drain, and the
readout of its 32 x 32 x 2 sum rows. Target: >= 90%.

By default the golden model supplies the counters (its cycle counts equal the RTL's, which the
RTL tests check); ``--backend verilator`` measures the generated Verilog itself.

    python benches/bench_conv.py [--backend golden|verilator|icarus|amaranth] [--frames N]
"""

import argparse
import sys

import numpy as np

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.conv import ConvGeometry
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sw.compiler import compile_model, size_config
from reuse_accel.sw.driver import Driver
from reuse_accel.sw.network import Layer, Network

CHANNELS, OUT_CHANNELS, SIZE, KERNEL = 8, 16, 32, 3
TARGET = 0.90


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="golden")
    parser.add_argument("--frames", type=int, default=2)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    geometry = ConvGeometry(CHANNELS, SIZE, SIZE, OUT_CHANNELS, (KERNEL, KERNEL), (1, 1),
                            (1, 1, 1, 1))
    network = Network((CHANNELS, SIZE, SIZE), [Layer(
        rng.normal(0, 1 / np.sqrt(CHANNELS * KERNEL * KERNEL),
                   (OUT_CHANNELS, CHANNELS, KERNEL, KERNEL)),
        rng.normal(0, 0.1, OUT_CHANNELS), "relu", LayerKind.CONV, geometry=geometry)])
    config = size_config(network, AccelConfig(reuse=False))
    frames = rng.normal(0, 1, (args.frames, CHANNELS, SIZE, SIZE))
    compiled = compile_model(network, config, frames)
    _, baseline = Driver(compiled, backend=args.backend).run(frames)

    rows = sum(int(frame.weight_rows.sum()) for frame in baseline.frames)
    layer_cycles = sum(int(frame.layer_cycles.sum()) for frame in baseline.frames)
    busy = rows / layer_cycles
    print(f"conv efficiency, {KERNEL}x{KERNEL} conv {CHANNELS}->{OUT_CHANNELS} channels over "
          f"{SIZE}x{SIZE} (padding 1), {config.lanes} lanes, reuse off, backend {args.backend}")
    print(f"  frames {len(baseline.frames)}, weight rows {rows} "
          f"({rows // len(baseline.frames)} per frame), layer cycles {layer_cycles}, frame "
          f"cycles {baseline.cycles}")
    print(f"  MAC array busy {busy:.2%} of the layer's cycles (target >= {TARGET:.0%}): "
          f"{'met' if busy >= TARGET else 'MISSED'}")
    return 0 if busy >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
