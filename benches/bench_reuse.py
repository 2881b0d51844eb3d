"""Reuse efficiency on the shipped sequences: measured speedup against the ideal.

Ideal speedup = the MAC array's weight-row cycles without reuse over those with reuse, summed
over layers and frames (the report's ``summary.ideal_speedup``); efficiency = measured speedup
over ideal. Targets:

- ``speech``: the speech MLP (440-128-128-11, 16 clusters) on its held-out sentence, >= 0.99;
- ``traffic``: an MLP over 24x32 frames (768-128-16, 32 clusters) of a static-camera traffic
  video (``data/make_traffic.py``), where about 93% of the first layer's inputs repeat, >= 0.95.
  The hardware is sized for the model (``size_config``).
- ``video``: the video demo (``reuse-accel demo --workload video``), the traffic-density CNN
  (two 3x3 conv layers with max pools, two dense layers; ``data/make_traffic_cnn.py``) on the
  same video, 16 clusters, hardware sized for it, >= 0.95.

    python benches/bench_reuse.py [--workload speech|traffic|video|all] [--backend golden|
                                  verilator|icarus|amaranth] [--frames N]
"""

import argparse
import json
import sys
import time
from importlib import resources

import numpy as np

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sw.cli import demo_data
from reuse_accel.sw.compiler import compile_model, size_config
from reuse_accel.sw.driver import Driver
from reuse_accel.sw.network import Network
from reuse_accel.sw.report import build_report


def speech():
    data = demo_data()
    return data["model"], data["frames"], data["calibration"], AccelConfig(), 0.99


def traffic():
    with resources.as_file(resources.files("reuse_accel.data")) as path:
        model = Network.load(path / "traffic_mlp.npz")
        pixels = np.load(path / "traffic_frames.npy")
        meta = json.loads((path / "traffic.json").read_text())
    frames = pixels.reshape(len(pixels), -1).astype(np.float32) / 255
    assert meta["input"] == "frames.reshape(T, 768) / 255"
    return model, frames, frames, size_config(model, AccelConfig(clusters=32)), 0.95


def video():
    data = demo_data("video")
    model = data["model"]
    return model, data["frames"], data["calibration"], size_config(model), 0.95


WORKLOADS = {"speech": speech, "traffic": traffic, "video": video}


def measure(name: str, backend: str, frame_limit: int | None) -> bool:
    model, frames, calibration, config, target = WORKLOADS[name]()
    frames = frames[:frame_limit] if frame_limit else frames
    compiled = compile_model(model, config, calibration)
    driver = Driver(compiled, backend=backend)
    build_seconds = driver.prepare()
    started = time.perf_counter()
    reuse, baseline = driver.run(frames)
    seconds = time.perf_counter() - started
    report = build_report(reuse, baseline, backend=backend)
    summary = report["summary"]
    efficiency = summary["reuse_efficiency"]
    kinds = "CNN" if any(layer.geometry for layer in model.layers) else "MLP"
    print(f"reuse efficiency, {name} ({len(frames)} frames, {kinds} "
          f"{'-'.join(map(str, model.sizes))}, {config.clusters} clusters), backend {backend}")
    print(f"  input similarity {summary['input_similarity']:.1%}, computation reuse "
          f"{summary['computation_reuse']:.1%}")
    for number, layer in enumerate(report["layers"]):
        rows = sum(frame["weight_rows"][number] for frame in report["frames"])
        print(f"  layer {number} ({layer['kind']}): similarity {layer['input_similarity']:.1%}, "
              f"cycles {layer['cycles']} vs {layer['baseline_cycles']}; with reuse the MAC "
              f"array is busy {rows / layer['cycles']:.1%} of the layer's cycles")
    print(f"  cycles {summary['cycles']} vs {summary['baseline_cycles']} without reuse: "
          f"speedup {summary['speedup']:.3f}x, ideal {summary['ideal_speedup']:.3f}x")
    if driver.last_exchange is not None:
        cycles = driver.last_exchange.cycles
        print(f"  simulation: {cycles} cycles in {seconds:.1f} s, {cycles / seconds:.0f} "
              f"cycles/s (build {build_seconds:.1f} s)")
    met = efficiency >= target
    print(f"  efficiency {efficiency:.1%} of ideal (target >= {target:.0%}): "
          f"{'met' if met else 'MISSED'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    parser.add_argument("--backend", default="golden")
    parser.add_argument("--frames", type=int)
    args = parser.parse_args()
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    results = [measure(name, args.backend, args.frames) for name in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
