"""The demo end to end: wall time of ``reuse-accel demo`` with a fresh Verilator build.

Target: under 3 minutes on a 2-core machine, Verilator build included. Prints the build time
and the Verilator simulation rate in cycles/s (from the demo's report).

    python benches/bench_demo.py [--backend verilator|icarus]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 180.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="verilator")
    args = parser.parse_args()
    command = Path(sys.executable).with_name("reuse-accel")
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, REUSE_ACCEL_BUILD=str(Path(scratch) / "build"))
        out = Path(scratch) / "demo"
        started = time.perf_counter()
        subprocess.run([str(command), "demo", "--backend", args.backend, "--out", str(out)],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        report = json.loads((out / "report.json").read_text())
    simulation = report["summary"]["simulation"]
    print(f"demo, backend {args.backend}, fresh build")
    print(f"  wall time {seconds:.1f} s (target < {TARGET_SECONDS:.0f} s): "
          f"{'met' if seconds < TARGET_SECONDS else 'MISSED'}")
    print(f"  build {simulation['build_seconds']:.1f} s (Verilog generation included)")
    print(f"  simulation {simulation['cycles']} cycles in {simulation['seconds']:.1f} s: "
          f"{simulation['cycles_per_second']:.0f} cycles/s")
    return 0 if seconds < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
