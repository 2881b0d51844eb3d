"""The ``reuse-accel synth`` subcommand.

::

    reuse-accel synth --target generic|ice40|ecp5 [--config CONFIG.toml] [--no-reuse]
                      [--clock-mhz F] [--json REPORT.json] [--out DIR]

prints a summary of the synthesis report, writes it as JSON (``--json``) and, into ``--out``,
the Verilog, the SDC, the resolved ``config.toml``, ``report.json`` and the tool work directory
(``<target>/``: RTLIL, scripts, netlist, logs). Exit codes: 0 done (also when the design does
not fit or misses timing: that is the report), 2 bad input, 3 a tool failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reuse_accel.hw.config import AccelConfig, ConfigError

from .devices import DEFAULT_CLOCK_MHZ, TARGETS, SynthInputError
from .flow import no_reuse, synthesize
from .sdc import generate_sdc
from .tools import ToolError

__all__ = ["register", "cmd_synth"]


def _clock(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 2000:
        raise argparse.ArgumentTypeError(f"must be a clock in MHz in (0, 2000], not {text!r}")
    return value


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``synth`` subcommand to the CLI's ``add_subparsers()`` object."""
    parser = subparsers.add_parser(
        "synth", help="synthesize (and place and route) the accelerator, report resources",
        description="Synthesize the accelerator with Yosys (and nextpnr on FPGAs) and report "
                    "resources, memory and DSP mapping, Fmax and the critical path.")
    parser.add_argument("--target", required=True, choices=TARGETS,
                        help="generic gates (ASIC estimate), iCE40UP5K or ECP5-85F")
    parser.add_argument("--config", help="hardware configuration (TOML, [accelerator])")
    parser.add_argument("--no-reuse", action="store_true",
                        help="leave out the reuse logic (to measure its cost)")
    parser.add_argument("--clock-mhz", type=_clock, metavar="F",
                        help="clock target in MHz (default: "
                        + ", ".join(f"{t} {f:g}" for t, f in DEFAULT_CLOCK_MHZ.items()) + ")")
    parser.add_argument("--json", metavar="REPORT.json", help="write the report to this file")
    parser.add_argument("--out", metavar="DIR",
                        help="write Verilog, SDC, config, report and tool logs here")
    parser.set_defaults(handler=cmd_synth)
    return parser


def _error(message: str, code: int) -> int:
    print(f"reuse-accel: error: {message}", file=sys.stderr)
    return code


def cmd_synth(args) -> int:
    """Run the flow for parsed ``args``; returns the exit code."""
    try:
        config = AccelConfig.from_toml(args.config) if args.config else AccelConfig()
        if args.no_reuse:
            config = no_reuse(config)
    except (ConfigError, SynthInputError) as error:
        return _error(str(error), 2)
    clock_mhz = args.clock_mhz or DEFAULT_CLOCK_MHZ[args.target]
    out = Path(args.out) if args.out else None
    workdir = out / args.target if out else None
    try:
        report = synthesize(config, args.target, clock_mhz=clock_mhz, workdir=workdir)
    except SynthInputError as error:
        return _error(str(error), 2)
    except ToolError as error:
        return _error(str(error), 3)
    print(report.summary())
    document = json.dumps(report.to_dict(), indent=1)
    if out:
        from reuse_accel.hw.top import generate_verilog

        out.mkdir(parents=True, exist_ok=True)
        (out / "reuse_accel.v").write_text(generate_verilog(config))
        (out / "reuse_accel.sdc").write_text(generate_sdc(config, clock_mhz))
        (out / "config.toml").write_text(config.to_toml())
        (out / "report.json").write_text(document)
        print(f"Verilog, SDC, config and report written to {out}; tool logs in {workdir}")
    if args.json:
        Path(args.json).write_text(document)
        print(f"report written to {args.json}")
    return 0
