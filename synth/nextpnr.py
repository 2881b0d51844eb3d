"""nextpnr: place and route a Yosys netlist on an FPGA target, read Fmax and the critical path.

:func:`place_and_route` runs nextpnr-ice40 or nextpnr-ecp5 (``--router router2``: on this
design it routes several times faster than router1 on the iCE40, at the same Fmax within
placement noise, and router1 had not finished the default configuration on the ECP5 in 8
minutes) on ``netlist.json`` in the work directory, with ``clk`` on the board's clock pin
(:func:`~reuse_accel.synth.devices.pin_constraints`) and ``--timing-allow-fail``, so a missed
clock target is a result. A design nextpnr cannot place is a result too (``fits`` false and
nextpnr's error as the reason); any other failure raises
:class:`~reuse_accel.synth.tools.ToolError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .devices import DEVICES, pin_constraints
from .report import CriticalPath
from .tools import run_tool, tool_failed

__all__ = ["Placement", "place_and_route", "critical_path", "fmax"]

# nextpnr's errors for a design that does not fit the device.
FIT_ERRORS = re.compile(
    r"(device only has|Unable to place|failed to place|too many|not enough|exceed|"
    r"Unable to find legal placement|No legal|Failed to expand region)", re.IGNORECASE)


def critical_path(report: dict) -> CriticalPath | None:
    """nextpnr's worst register-to-register path of the clock in its JSON ``report``: the path
    that sets Fmax. Paths from or to the unconstrained ports (nextpnr's ``<async>`` domain) do
    not limit the clock and are left out."""
    best = None
    for entry in report.get("critical_paths", []):
        if "<async>" in (entry.get("from"), entry.get("to")):
            continue
        steps = entry.get("path", [])
        if not steps:
            continue
        delay = sum(step.get("delay", 0.0) for step in steps)
        if best is None or delay > best[0]:
            best = (delay, steps)
    if best is None:
        return None
    delay, steps = best
    logic = sum(step.get("delay", 0.0) for step in steps if step.get("type") != "routing")
    cells = []
    for step in steps:
        for end in ("from", "to"):
            cell = step.get(end, {}).get("cell")
            if cell and (not cells or cells[-1] != cell):
                cells.append(cell)
    return CriticalPath(
        from_cell=steps[0].get("from", {}).get("cell", "?"),
        to_cell=steps[-1].get("to", {}).get("cell", "?"),
        delay_ns=round(delay, 3), logic_ns=round(logic, 3), routing_ns=round(delay - logic, 3),
        logic_levels=sum(1 for step in steps if step.get("type") == "logic"), cells=cells)


def fmax(report: dict) -> float | None:
    """Fmax of the design clock: the slowest clock net named after ``clk`` (nextpnr also times
    constant nets it promoted to global buffers, e.g. ``$PACKER_GND_NET``; those are skipped)."""
    clocks = {name: entry["achieved"] for name, entry in report.get("fmax", {}).items()
              if "clk" in name and "PACKER" not in name}
    return float(min(clocks.values())) if clocks else None


@dataclass
class Placement:
    """The outcome of :func:`place_and_route`."""

    log: Path
    fits: bool
    fit_reason: str | None = None
    fmax_mhz: float | None = None
    critical_path: CriticalPath | None = None
    utilization: dict = field(default_factory=dict)


def place_and_route(target: str, workdir: Path, *, clock_mhz: float, seed: int,
                    timeout: float | None) -> Placement:
    """Place and route ``workdir/netlist.json`` for ``target`` (``ice40`` or ``ecp5``) at a
    ``clock_mhz`` target with placer ``seed``; nextpnr's report goes to ``report.json``."""
    device = DEVICES[target]
    args = [*device.nextpnr_args, "--json", "netlist.json", "--freq", f"{clock_mhz:g}",
            "--report", "report.json", "--timing-allow-fail", "--seed", str(seed),
            "--router", "router2", *pin_constraints(target, workdir)]
    tool = f"nextpnr-{target}"
    code, log = run_tool(tool, args, cwd=workdir, log_name="nextpnr.log", timeout=timeout)
    if code != 0:
        errors = [line for line in log.read_text(errors="replace").splitlines()
                  if line.startswith("ERROR")]
        if errors and FIT_ERRORS.search(errors[-1]):
            return Placement(log=log, fits=False,
                             fit_reason=f"{tool}: {errors[-1].removeprefix('ERROR: ')}")
        raise tool_failed(tool, log, code)
    report = json.loads((workdir / "report.json").read_text())
    return Placement(log=log, fits=True, fmax_mhz=fmax(report),
                     critical_path=critical_path(report),
                     utilization=report.get("utilization", {}))
