"""Dense efficiency: with reuse off, how busy are the L MAC lanes on a 440-256-256-16 MLP?

Busy share = multiply-accumulates performed / (L * cycles), from the hardware's counters.
By default the golden model supplies the counters (its cycle counts equal the RTL's, which the
RTL tests check); ``--backend verilator`` measures the generated Verilog itself.

    python benches/bench_dense.py [--backend golden|verilator|icarus|amaranth] [--frames N]
"""

import argparse
import sys

import numpy as np

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sw.compiler import compile_model
from reuse_accel.sw.driver import Driver
from reuse_accel.sw.network import Network

SIZES = [440, 256, 256, 16]
TARGET = 0.99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="golden")
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()

    config = AccelConfig()
    rng = np.random.default_rng(0)
    network = Network.from_weights(
        [rng.normal(0, 1 / np.sqrt(i), (o, i)) for i, o in zip(SIZES[:-1], SIZES[1:])],
        [rng.normal(0, 0.1, o) for o in SIZES[1:]])
    frames = rng.normal(0, 1, (args.frames, SIZES[0]))
    compiled = compile_model(network, config, frames)
    _, baseline = Driver(compiled, backend=args.backend).run(frames)

    macs = sum(int(frame.macs.sum()) for frame in baseline.frames)
    cycles = baseline.cycles
    busy = macs / (config.lanes * cycles)
    print(f"dense efficiency, {'-'.join(map(str, SIZES))}, {config.lanes} lanes, "
          f"reuse off, backend {args.backend}")
    print(f"  frames {len(baseline.frames)}, MACs {macs}, cycles {cycles} "
          f"({cycles // len(baseline.frames)} per frame)")
    for n, layer in enumerate(compiled.layers):
        layer_cycles = int(baseline.frames[0].layer_cycles[n])
        layer_macs = layer.inputs * layer.outputs
        print(f"  layer {n}: {layer.inputs}x{layer.outputs}, {layer_cycles} cycles, "
              f"lanes busy {layer_macs / (config.lanes * layer_cycles):.2%}")
    print(f"  lanes busy {busy:.2%} (target >= {TARGET:.0%}): "
          f"{'met' if busy >= TARGET else 'MISSED'}")
    return 0 if busy >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
