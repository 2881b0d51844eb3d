"""Clusters against reuse and accuracy on the speech demo (golden model, cycle-exact).

For K = 8, 16, 32, 64 clusters per layer: input similarity, computation reuse, speedup over the
same hardware without reuse, frame accuracy and the largest output error against the float
network. Fewer clusters make more inputs repeat but quantize them more coarsely.

    python benches/bench_clusters.py
"""

import sys

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sw.cli import demo_data
from reuse_accel.sw.compiler import compile_model
from reuse_accel.sw.driver import Driver
from reuse_accel.sw.report import build_report


def main() -> int:
    data = demo_data()
    print(f"speech demo, {len(data['frames'])} frames, golden model; default hardware but K")
    print(f"{'K':>3} {'similarity':>10} {'reuse':>7} {'speedup':>8} {'accuracy':>8} "
          f"{'max |err|':>9}")
    for clusters in (8, 16, 32, 64):
        compiled = compile_model(data["model"], AccelConfig(clusters=clusters),
                                 data["calibration"])
        reuse, baseline = Driver(compiled).run(data["frames"])
        summary = build_report(reuse, baseline, backend="golden",
                               labels=data["labels"])["summary"]
        print(f"{clusters:>3} {summary['input_similarity']:>10.1%} "
              f"{summary['computation_reuse']:>7.1%} {summary['speedup']:>7.2f}x "
              f"{summary['accuracy']:>8.1%} {summary['max_abs_error_vs_float']:>9.3f}")
    print(f"float network accuracy {summary['float_accuracy']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
