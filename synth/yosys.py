"""Yosys: the synthesis script per target, running it, and reading what it made.

:func:`run_yosys` writes the script of :func:`yosys_script` into the work directory (which holds
the design as ``design.il``) and runs it; the script leaves ``stat.json`` (cells by type),
``muls_before.il`` (the multiplications before technology mapping), ``memories.il`` (the
memories before mapping), the log, and on an FPGA ``netlist.json`` for nextpnr (and on
``generic`` ``stat_cmos.txt``, the CMOS transistor estimate). The readers below turn those
files into the parts of a :class:`~reuse_accel.synth.report.SynthReport`.

Memories' initial contents are dropped when they are all zeros (:data:`DROP_ZERO_INIT`):
Amaranth 0.5 writes ``init=[]`` as explicit zeros, the gateware writes every memory before it
reads it, and neither an ASIC SRAM nor an iCE40 SPRAM has initial contents (Yosys rejects
SPRAM for a memory with an initializer: "does not support initialization"). A design with a
non-zero initializer keeps it.

ECP5 LUTs are mapped with abc9, after ``opt_clean -purge``: without it Yosys 0.70's abc9 failed
an assertion on some netlists (the default configuration among them). Should it still fail,
:func:`run_yosys` maps with the classic ``abc -lut 4:7`` instead and says so in the mapper it
returns; two builds whose LUTs are compared must then both be mapped so (``lut_mapper="abc"``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .devices import DSP_CELLS
from .report import MemoryMapping, Multiplier
from .tools import ToolError, run_tool, tool_failed

__all__ = [
    "DROP_ZERO_INIT", "KEEP_REGISTERS", "yosys_script", "run_yosys", "rtlil_zero_init",
    "rtlil_memories",
    "dumped_cells", "dumped_memories", "dumped_multipliers", "memory_mappings", "cmos_transistors",
    "stat_cells", "dsp_by_signal",
]

KEEP_REGISTERS = "setattr -set keep 1 a:keep %ci1 c:* %i"
"""Yosys command run after reading the design (here and in the board builds): a register whose
signal the gateware marks ``keep`` (Amaranth puts the attribute on the wire) keeps its cell, so
that register copies made to cut a long route (the weight memory's per-bank row registers) are
not merged back into one."""
DROP_ZERO_INIT = "delete t:$meminit_v2"
"""Yosys command run after reading the design (here and in the board builds): Amaranth writes
every memory's (all-zero) initial contents; the gateware writes each memory before reading it,
and Yosys maps a memory with initial contents neither to iCE40 SPRAM nor to ASIC SRAM."""

# memory_libmap cell names -> what the memory became.
MAPPED_KIND = {
    "$__ICE40_RAM4K_": "bram", "$__ICE40_SPRAM_": "spram", "$__DP16KD_": "bram",
    "$__PDPW16KD_": "bram", "$__TRELLIS_DPR16X4_": "lutram",
}


def yosys_script(target: str, top: str, *, keep_memories: list[str] | None,
                 drop_zero_init: bool = True, lut_mapper: str = "abc9") -> str:
    """The Yosys script; ``dump`` files record multipliers and memories before mapping."""
    dump_muls = "tee -q -o muls_before.il dump t:$mul"
    dump_mems = "tee -q -o memories.il dump t:$mem_v2"
    lines = ["read_rtlil design.il"]
    if drop_zero_init:
        lines.append(DROP_ZERO_INIT)
    lines.append(KEEP_REGISTERS)
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
        f"{synth} -run map_ram:map_luts",
        # Wires left over from the earlier passes made abc9's reintegration fail an assertion
        # on some ECP5 netlists (Yosys 0.70, ABC_OPS_REINTEGRATE); purged first, it maps them.
        "opt_clean -purge",
        *((f"{synth} -run map_luts: -json netlist.json",) if lut_mapper == "abc9" else (
            "techmap -map +/lattice/latches_map.v",
            "abc -lut 4:7 -dress",
            "clean",
            f"{synth} -run map_cells: -json netlist.json")),
        "tee -q -o stat.json stat -json",
    ]
    return "\n".join(lines) + "\n"


def run_yosys(target: str, top: str, workdir: Path, *, keep_memories: list[str],
              drop_zero_init: bool, timeout: float | None,
              lut_mapper: str = "abc9") -> tuple[Path, str]:
    """Run the script of ``target`` on ``workdir/design.il``; returns the log and the LUT
    mapper used (``abc`` on ``generic``; on an FPGA ``abc9`` unless it failed, see above, or
    on the ECP5 ``abc`` when ``lut_mapper`` asks for it: two designs compared LUT for LUT must be
    mapped alike, and there the classic mapper gives about 15% more LUTs than abc9).

    Raises :class:`~reuse_accel.synth.tools.ToolError` when Yosys fails.
    """
    if lut_mapper not in ("abc9", "abc"):
        raise ValueError(f"lut_mapper must be 'abc9' or 'abc', not {lut_mapper!r}")
    def yosys(script: str, log_name: str) -> Path:
        script_name = log_name.replace(".log", ".ys")
        (workdir / script_name).write_text(script)
        code, _ = run_tool("yosys", ["-q", "-l", log_name, "-s", script_name],
                           cwd=workdir, log_name=log_name + ".out", timeout=timeout)
        log_path = workdir / log_name
        if code != 0:
            raise tool_failed("yosys", log_path if log_path.exists()
                              else workdir / (log_name + ".out"), code)
        return log_path

    if target != "ecp5":
        lut_mapper = "abc" if target == "generic" else "abc9"
    elif lut_mapper == "abc":
        return yosys(yosys_script(target, top, keep_memories=keep_memories,
                                  drop_zero_init=drop_zero_init, lut_mapper="abc"),
                     "yosys.log"), "abc"
    try:
        log_path = yosys(yosys_script(target, top, keep_memories=keep_memories,
                                      drop_zero_init=drop_zero_init), "yosys.log")
    except ToolError as error:
        # Yosys 0.70's abc9 fails an assertion when it reintegrates some ECP5 netlists
        # (`GetSize(conn.first) == GetSize(conn.second)` in ABC_OPS_REINTEGRATE); the classic
        # abc LUT mapper (as synth_ecp5 used before abc9) maps them.
        log = error.log_path.read_text(errors="replace") if error.log_path.exists() else ""
        if target != "ecp5" or "ABC_OPS_REINTEGRATE" not in log or "Assert" not in log:
            raise
        lut_mapper = "abc (abc9 failed an assertion)"
        log_path = yosys(yosys_script(target, top, keep_memories=keep_memories,
                                      drop_zero_init=drop_zero_init, lut_mapper="abc"),
                         "yosys_abc.log")
    return log_path, lut_mapper


_CELL = re.compile(r"^\s*cell (\S+) (\S+)$")
_PARAM = re.compile(r"^\s*parameter \\(\w+) (.*)$")
_CONNECT = re.compile(r"^\s*connect \\(\w+) (.*)$")


def dumped_cells(path: Path) -> list[dict]:
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


def dumped_memories(workdir: Path) -> list[dict]:
    """The memories before mapping (``memories.il``): name, depth, width, bits, ports."""
    memories = []
    for cell in dumped_cells(workdir / "memories.il"):
        params = cell["params"]
        depth, width = int(params["SIZE"]), int(params["WIDTH"])
        memories.append({"name": _memid(cell), "depth": depth, "width": width,
                         "bits": depth * width, "read_ports": int(params["RD_PORTS"]),
                         "write_ports": int(params["WR_PORTS"])})
    return memories


def dumped_multipliers(workdir: Path) -> list[Multiplier]:
    """The multiplications before mapping (``muls_before.il``) with operands of 2 bits or more."""
    muls = []
    for cell in dumped_cells(workdir / "muls_before.il"):
        a_width, b_width = int(cell["params"]["A_WIDTH"]), int(cell["params"]["B_WIDTH"])
        if min(a_width, b_width) >= 2:
            muls.append(Multiplier(cell=cell["name"].lstrip("\\"), a_width=a_width,
                                   b_width=b_width, signed=bool(cell["params"].get("A_SIGNED"))))
    return muls


_LIBMAP = re.compile(r"^mapping memory \S+?\.(\S+) via (\S+)$")
_FFMAP = re.compile(r"^using FF mapping for memory \S+?\.(\S+)$")


def memory_mappings(log_path: Path, memories: list[dict], *, generic_macros=()) \
        -> list[MemoryMapping]:
    """What each of ``memories`` became, from Yosys's log (``memory_libmap`` lines); the names
    in ``generic_macros`` stay SRAM macros."""
    mapped = {}
    if log_path.exists():
        for line in log_path.read_text(errors="replace").splitlines():
            if match := _LIBMAP.match(line):
                mapped[match[1]] = (MAPPED_KIND.get(match[2], match[2]), match[2])
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


def cmos_transistors(path: Path) -> tuple[int | None, bool]:
    """``stat -tech cmos``'s transistor estimate and whether it is partial (``+``)."""
    match = re.findall(r"Estimated number of transistors:\s+(\d+)(\+?)",
                       path.read_text() if path.exists() else "")
    if not match:
        return None, False
    count, partial = match[-1]
    return int(count), partial == "+"


def stat_cells(path: Path) -> dict:
    """Cells by type from ``stat -json``."""
    stat = json.loads(path.read_text())
    cells = dict(stat["design"]["num_cells_by_type"])
    cells.pop("$scopeinfo", None)
    return cells


_NET_END = re.compile(r"_(SB_|TRELLIS_|MULT18X18D|ALU54B|CCU2C|LUT4|PFUMX|L6MUX21|DP16KD)")


def dsp_by_signal(workdir: Path, target: str) -> dict:
    """DSP cells counted by the signal they drive (the front of the cell name, which Yosys
    derives from the net the cell drives, e.g. ``tile.mac.s2_products``)."""
    netlist = json.loads((workdir / "netlist.json").read_text())
    counts: dict[str, int] = {}
    for module in netlist["modules"].values():
        for name, cell in module.get("cells", {}).items():
            if cell["type"] in DSP_CELLS[target]:
                signal = _NET_END.split(name, maxsplit=1)[0]
                counts[signal] = counts.get(signal, 0) + 1
    return dict(sorted(counts.items()))


