"""Synthesis benchmark: resources, Fmax and reuse overhead against the project's targets.

Runs, with and without the reuse logic:

- the default configuration on ``generic`` and ``ecp5`` (target: LFE5U-85F at >= 100 MHz);
- the iCEBreaker configuration (``synth/configs/icebreaker.toml``) on ``generic`` and
  ``ice40`` (target: fits the iCE40UP5K, <= 5280 LUT4 and <= 8 DSPs, at >= 30 MHz);
- the CNN configuration (``synth/configs/cnn.toml``: conv layers with 3 x 3 kernels over maps
  up to 24 x 32) on ``ecp5``, checked against the ECP5's clock and overhead targets too;

and checks the reuse overhead (target: at most 15 % more LUTs on the ECP5, 20 % on the iCE40).
For each missed target it prints by how much and why (critical path: start and end, logic
levels, routing share; or the dominant resource), then a markdown table for the README.

    python benches/bench_synth.py [--jobs 2] [--out build/synth] [--only generic,ice40,cnn]

Reports and tool logs go to ``--out`` (one directory per run, ``report.json`` inside).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reuse_accel.hw.config import AccelConfig
from reuse_accel.synth.devices import DEVICES
from reuse_accel.synth.flow import has_reuse_option, synthesize
from reuse_accel.synth.report import reuse_overhead

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "synth" / "configs" / "icebreaker.toml"
CNN = ROOT / "synth" / "configs" / "cnn.toml"
ECP5_MHZ = 100.0
ICE40_MHZ = 30.0
MAX_REUSE_LUT_OVERHEAD = {"ecp5": 15.0, "ice40": 20.0}
"""Largest reuse overhead in LUTs, percent, per FPGA target."""


def _runs(only: set[str] | None):
    default, small = AccelConfig(), AccelConfig.from_toml(SMALL)
    cnn = AccelConfig.from_toml(CNN)
    variants = (True, False) if has_reuse_option() else (True,)
    runs = []
    for label, config, targets in (("default", default, ("ecp5", "generic")),
                                   ("icebreaker", small, ("ice40", "generic")),
                                   ("cnn", cnn, ("ecp5",))):
        for target in targets:
            if only and target not in only and label not in only:
                continue
            for reuse in variants:
                chosen = config if reuse else dataclasses.replace(config, reuse=False)
                runs.append((label, target, reuse, chosen))
    return runs


def _why(report) -> str:
    if report.fits is False:
        return report.fit_reason
    path = report.critical_path
    if path is None:
        return "no timing"
    return (f"critical path {path.delay_ns:.1f} ns, {path.logic_levels} logic levels "
            f"({path.logic_ns:.1f} ns logic, {path.routing_ns:.1f} ns routing), "
            f"{path.from_cell} -> {path.to_cell}")


def _dominant(report) -> str:
    if not report.utilization:
        return ""
    name, share = max(report.utilization.items(), key=lambda item: item[1])
    return f"dominant resource {name} at {100 * share:.0f}% of the device"


def check_targets(results: dict) -> list[str]:
    """Lines describing each missed target (empty when all are met)."""
    missed = []
    for (label, target, reuse), report in results.items():
        mode = "with reuse" if reuse else "without reuse"
        if target == "ecp5":
            if report.fits is False:
                missed.append(f"{label} on ECP5 {mode}: does not fit: {report.fit_reason}")
            elif report.fmax_mhz is not None and report.fmax_mhz < ECP5_MHZ:
                missed.append(f"{label} on ECP5 {mode}: Fmax {report.fmax_mhz:.1f} MHz, "
                              f"{ECP5_MHZ - report.fmax_mhz:.1f} MHz "
                              f"({ECP5_MHZ / report.fmax_mhz:.2f}x) short of {ECP5_MHZ:g} MHz; "
                              f"{_why(report)}")
        if target == "ice40":
            device = DEVICES["ice40"]
            for name, limit in (("luts", device.luts), ("dsps", device.dsps),
                                ("bram_blocks", device.bram_blocks)):
                value = getattr(report, name)
                if value > limit:
                    missed.append(f"{label} on iCE40UP5K {mode}: {value} {name}, {value - limit} "
                                  f"over the device's {limit} ({100 * value / limit:.0f}%)")
            if report.fits is False and not missed:
                missed.append(f"{label} on iCE40UP5K {mode}: {report.fit_reason}")
            if report.fmax_mhz is not None and report.fmax_mhz < ICE40_MHZ:
                missed.append(f"{label} on iCE40UP5K {mode}: Fmax {report.fmax_mhz:.1f} MHz, "
                              f"{ICE40_MHZ - report.fmax_mhz:.1f} MHz short of {ICE40_MHZ:g} "
                              f"MHz; {_why(report)}")
            if report.fits is False:
                missed.append(f"  ({_dominant(report)}; memories outside block RAM: "
                              f"{[m.name for m in report.memories if m.mapped_to == 'ff']})")
    for (label, target, reuse), report in results.items():
        plain = results.get((label, target, False))
        if not reuse or plain is None or report.luts is None:
            continue
        overhead = reuse_overhead(report, plain)["luts"]
        limit = MAX_REUSE_LUT_OVERHEAD.get(target)
        if overhead is not None and limit is not None and overhead > limit:
            missed.append(f"{label} on {target}: reuse adds {overhead:.1f}% LUTs, "
                          f"{overhead - limit:.1f} points over {limit:g}%")
    return missed


def _cell(value, fmt="{}"):
    return "–" if value is None else fmt.format(value)


def markdown_table(results: dict) -> str:
    lines = ["| config | target | reuse | LUT4 | FF | BRAM blocks | SPRAM | DSP | memory bits "
             "| transistors (logic) | Fmax (MHz) | fits | LUT / FF / transistor overhead |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (label, target, reuse), report in results.items():
        overhead = ""
        plain = results.get((label, target, False))
        if reuse and plain is not None:
            o = reuse_overhead(report, plain)
            overhead = " / ".join(_cell(o[name], "{:+.1f}%")
                                  for name in ("luts", "ffs", "transistors"))
        lines.append(
            f"| {label} | {target} | {'on' if reuse else 'off'} | {_cell(report.luts)} "
            f"| {report.ffs} | {_cell(report.bram_blocks)} | {_cell(report.spram_blocks)} "
            f"| {_cell(report.dsps)} | {report.memory_bits} | {_cell(report.transistors)} "
            f"| {_cell(report.fmax_mhz, '{:.1f}')} | {_cell(report.fits)} | {overhead} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--out", default=str(ROOT / "build" / "synth"),
                        help="reports and tool logs (default build/synth)")
    parser.add_argument("--only", help="comma-separated targets (generic, ice40, ecp5) or "
                                       "configurations (default, icebreaker, cnn) to run "
                                       "(default: all)")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    out = Path(args.out)
    print("$ python benches/bench_synth.py " + shlex.join(argv if argv is not None
                                                          else sys.argv[1:]))
    runs = _runs(only)

    def run(job, lut_mapper="abc9"):
        label, target, reuse, config = job
        workdir = out / f"{label}-{target}-{'reuse' if reuse else 'noreuse'}"
        started = time.perf_counter()
        report = synthesize(config, target, workdir=workdir, lut_mapper=lut_mapper)
        (workdir / "synth_report.json").write_text(json.dumps(report.to_dict(), indent=1))
        print(f"[{time.perf_counter() - started:6.0f} s] {label} {target} "
              f"reuse={'on' if reuse else 'off'} done", flush=True)
        return (label, target, reuse), report

    started = time.perf_counter()
    # Longest runs first, so the two workers finish together.
    order = sorted(runs, key=lambda job: (job[1] != "ecp5", job[1] == "generic"))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = dict(pool.map(run, order))
    # The overhead compares LUT counts: when abc9 failed on one build of a pair and the classic
    # mapper stepped in, map the other build with it too.
    for job in runs:
        label, target, reuse, _ = job
        other = done.get((label, target, not reuse))
        if other is not None and (other.lut_mapper or "").startswith("abc ") and \
                done[(label, target, reuse)].lut_mapper == "abc9":
            print(f"{label} {target}: abc9 failed on the other build; mapping this one with "
                  "abc too, so that their LUTs compare", flush=True)
            done.update([run(job, "abc")])
    results = {(label, target, reuse): done[(label, target, reuse)]
               for label, target, reuse, _ in runs}
    print(f"\n{len(runs)} runs in {time.perf_counter() - started:.0f} s\n")
    for report in results.values():
        print(report.summary())
        print()
    for (label, target, reuse), report in results.items():
        plain = results.get((label, target, False))
        if reuse and plain is not None:
            overhead = {k: v for k, v in reuse_overhead(report, plain).items() if v is not None}
            print(f"reuse overhead, {label} on {target}: " +
                  ", ".join(f"{k} {v:+.1f}%" for k, v in overhead.items()))
    missed = check_targets(results)
    print("\nmissed targets:" if missed else "\nall targets met")
    for line in missed:
        print("  " + line)
    print()
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
