"""Golden-model speed on a Kaldi-sized MLP (440-1024-1024-1024-1024-1000, ~4.6M parameters).

Targets: at least 100 frames/s (real time at 10 ms frames) with reuse on, on the shipped speech
frames (tiled to the requested length), counters and cycle prediction included; and with the
other core busy (a spinning process), at least 80% of that.

    python benches/bench_golden.py [--frames N]
"""

import argparse
import sys

import numpy as np
from busy import idle_and_loaded

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sim.model import GoldenModel
from reuse_accel.sw.cli import demo_data
from reuse_accel.sw.compiler import compile_model
from reuse_accel.sw.network import Network

SIZES = [440, 1024, 1024, 1024, 1024, 1000]
TARGET = 100.0
LOADED_SHARE = 0.8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    args = parser.parse_args()

    config = AccelConfig(max_layers=8, max_neurons=1024, weight_depth=1 << 20)
    rng = np.random.default_rng(0)
    network = Network.from_weights(
        [rng.normal(0, 1 / np.sqrt(i), (o, i)) for i, o in zip(SIZES[:-1], SIZES[1:])],
        [rng.normal(0, 0.1, o) for o in SIZES[1:]])
    parameters = sum(layer.weight.size + layer.bias.size for layer in network.layers)
    speech = demo_data()["frames"]
    frames = np.resize(speech, (args.frames, speech.shape[1]))
    compiled = compile_model(network, config, frames[:200])
    indices, _ = compiled.quantize_frames(frames)
    model = GoldenModel(config, compiled.layers)

    results, seconds, rate, loaded = idle_and_loaded(model, indices)
    changed = sum(int(r.changed_inputs.sum()) for r in results[1:])
    inputs = sum(SIZES[:-1]) * (len(frames) - 1)
    print(f"golden model, {'-'.join(map(str, SIZES))} ({parameters / 1e6:.2f}M parameters)")
    print(f"  {len(frames)} frames in {seconds:.2f} s: {rate:.0f} frames/s "
          f"(target >= {TARGET:.0f}): {'met' if rate >= TARGET else 'MISSED'}")
    print(f"  other core busy: {loaded:.0f} frames/s, {loaded / rate:.0%} of idle (target >= "
          f"{LOADED_SHARE:.0%}): {'met' if loaded >= LOADED_SHARE * rate else 'MISSED'}")
    print(f"  input similarity {1 - changed / inputs:.1%}, predicted cycles "
          f"{sum(r.cycles for r in results)}")
    return 0 if rate >= TARGET and loaded >= LOADED_SHARE * rate else 1


if __name__ == "__main__":
    sys.exit(main())
