"""Golden-model speed on a PilotNet-shaped CNN, idle and with the other core busy.

The network has AutoPilot's (PilotNet's) shape: a 3x66x200 input, five conv layers (24, 36
and 48 channels at 5x5 stride 2, then 64 and 64 at 3x3) and dense layers 1164-100-50-10-1,
with random weights. The frames are the shipped static-camera traffic video (24x32 gray)
upsampled to 66x200 and repeated on three channels, so the similarity between frames is the
video's.

Targets: at least 30 frames/s with reuse on, counters and cycle prediction included; and with
the other core busy (a spinning process), at least 80% of that.

    python benches/bench_golden_cnn.py [--frames N]
"""

import argparse
import sys
import time
from importlib import resources

import numpy as np
from busy import other_core_busy

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.layers.conv import ConvGeometry
from reuse_accel.hw.protocol import LayerKind
from reuse_accel.sim.model import GoldenModel
from reuse_accel.sw.compiler import compile_model, size_config
from reuse_accel.sw.network import Layer, Network

TARGET = 30.0
LOADED_SHARE = 0.8
INPUT = (3, 66, 200)
CONVS = [(24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1)]
DENSE = [1164, 100, 50, 10, 1]


def pilotnet(rng: np.random.Generator) -> Network:
    layers = []
    channels, height, width = INPUT
    for out, kernel, stride in CONVS:
        geometry = ConvGeometry(channels, height, width, out, (kernel, kernel), (stride, stride))
        fan_in = channels * kernel * kernel
        layers.append(Layer(rng.normal(0, np.sqrt(2 / fan_in), (out, channels, kernel, kernel)),
                            rng.normal(0, 0.05, out), "relu", LayerKind.CONV,
                            geometry=geometry))
        channels, (height, width) = out, geometry.out_size
    inputs = channels * height * width
    for number, out in enumerate(DENSE):
        layers.append(Layer(rng.normal(0, np.sqrt(2 / inputs), (out, inputs)),
                            rng.normal(0, 0.05, out),
                            "relu" if number < len(DENSE) - 1 else "identity"))
        inputs = out
    return Network(INPUT, layers)


def video(count: int) -> np.ndarray:
    """The traffic video, upsampled to 66x200 (nearest rows, linear columns), 3 channels."""
    with resources.as_file(resources.files("reuse_accel.data")) as path:
        frames = np.load(path / "traffic_frames.npy").astype(np.float64) / 255
    frames = np.resize(frames, (count, 24, 32))
    rows = np.linspace(0, 23, INPUT[1]).round().astype(int)
    columns = np.linspace(0, 31, INPUT[2])
    low = np.floor(columns).astype(int)
    high = np.minimum(low + 1, 31)
    part = columns - low
    picked = frames[:, rows]
    wide = picked[:, :, low] * (1 - part) + picked[:, :, high] * part
    return np.repeat(wide[:, None], 3, axis=1)


def measure(model: GoldenModel, indices: np.ndarray) -> tuple[float, list]:
    model.begin_sequence()
    started = time.perf_counter()
    results = model.run(indices)
    return len(indices) / (time.perf_counter() - started), results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()

    network = pilotnet(np.random.default_rng(0))
    frames = video(args.frames)
    config = size_config(network, AccelConfig(clusters=32))
    compiled = compile_model(network, config, frames[:60])
    indices, _ = compiled.quantize_frames(frames)
    model = GoldenModel(config, compiled.layers)
    measure(model, indices[:5])                     # warm up

    idle, results = measure(model, indices)
    with other_core_busy():
        loaded, _ = measure(model, indices)

    inputs = np.array([layer.inputs for layer in network.layers])
    changed = np.sum([r.changed_inputs for r in results[1:]], axis=0)
    similarity = 1 - changed / (inputs * (len(frames) - 1))
    parameters = sum(layer.weight.size + layer.bias.size for layer in network.layers)
    met_idle, met_loaded = idle >= TARGET, loaded >= LOADED_SHARE * idle
    print(f"golden model, PilotNet shape ({parameters / 1e6:.2f}M parameters), "
          f"{len(frames)} frames of the traffic video at 3x66x200")
    print(f"  idle: {idle:.1f} frames/s (target >= {TARGET:.0f}): "
          f"{'met' if met_idle else 'MISSED'}")
    print(f"  other core busy: {loaded:.1f} frames/s, {loaded / idle:.0%} of idle (target >= "
          f"{LOADED_SHARE:.0%}): {'met' if met_loaded else 'MISSED'}")
    print("  input similarity per layer: "
          + " ".join(f"{value:.0%}" for value in similarity))
    return 0 if met_idle and met_loaded else 1


if __name__ == "__main__":
    sys.exit(main())
