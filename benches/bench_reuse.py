"""Reuse efficiency on the shipped speech sequence: measured speedup against the ideal.

Ideal speedup = dense lane-cycles / changed lane-cycles, summed over layers and frames.
Target: measured >= 0.9 x ideal (quantizing and comparing overlap the MACs).

    python benches/bench_reuse.py [--backend golden|verilator|icarus|amaranth]
"""

import argparse
import sys
import time

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sw.cli import demo_data
from reuse_accel.sw.compiler import compile_model
from reuse_accel.sw.driver import Driver
from reuse_accel.sw.report import build_report

TARGET = 0.90


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="golden")
    parser.add_argument("--frames", type=int)
    args = parser.parse_args()

    data = demo_data()
    frames = data["frames"][:args.frames] if args.frames else data["frames"]
    compiled = compile_model(data["model"], AccelConfig(), data["calibration"])
    driver = Driver(compiled, backend=args.backend)
    build_seconds = driver.prepare()
    started = time.perf_counter()
    reuse, baseline = driver.run(frames)
    seconds = time.perf_counter() - started
    summary = build_report(reuse, baseline, backend=args.backend)["summary"]
    efficiency = summary["reuse_efficiency"]
    print(f"reuse efficiency, speech demo ({len(frames)} frames), backend {args.backend}")
    print(f"  input similarity {summary['input_similarity']:.1%}, computation reuse "
          f"{summary['computation_reuse']:.1%}")
    print(f"  cycles {summary['cycles']} vs {summary['baseline_cycles']} without reuse: "
          f"speedup {summary['speedup']:.3f}x, ideal {summary['ideal_speedup']:.3f}x")
    if driver.last_exchange is not None:
        cycles = driver.last_exchange.cycles
        print(f"  simulation: {cycles} cycles in {seconds:.1f} s, {cycles / seconds:.0f} "
              f"cycles/s (build {build_seconds:.1f} s)")
    print(f"  efficiency {efficiency:.1%} of ideal (target >= {TARGET:.0%}): "
          f"{'met' if efficiency >= TARGET else 'MISSED'}")
    return 0 if efficiency >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
