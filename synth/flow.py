"""Synthesis and place-and-route of the accelerator, with a report of what it became.

:func:`synthesize` elaborates an :class:`~reuse_accel.hw.config.AccelConfig` to RTLIL, runs
Yosys (:mod:`.yosys`) and, on FPGA targets, nextpnr (:mod:`.nextpnr`) from the pip-installed
YoWASP packages, keeps every log in a work directory, and returns a
:class:`~reuse_accel.synth.report.SynthReport` (counting rules in :mod:`.report`).

Targets (:mod:`.devices`)
-------------------------
``generic``
    ``synth -flatten`` to Yosys's internal gate library and ``stat -tech cmos`` (cell counts and
    a CMOS transistor estimate). Memories of at least ``sram_min_bits`` bits are kept as SRAM
    macros (an ASIC flow takes them from a memory compiler) and reported with their bits;
    smaller ones become flip-flops. No timing: the SDC of :mod:`.sdc` carries the clock target.
``ice40``
    iCE40UP5K, SG48 package (the iCEBreaker): ``synth_ice40 -dsp -spram``, then nextpnr-ice40.
    The package has 39 user I/Os, fewer than the accelerator's ports, so the design is placed
    inside :class:`~reuse_accel.synth.pins.SerialPayloadPins` (payloads on one pin each way;
    its flip-flops and LUTs are included in the counts).
``ecp5``
    LFE5U-85F, CABGA381, speed grade 6 (the ULX3S 85F): ``synth_ecp5``, then nextpnr-ecp5.

The RTLIL back end is used rather than Verilog: Amaranth writes a memory's initial contents
to Verilog as one ``initial`` statement per word, and Yosys's Verilog front end did not get
through the default 32768-row weight memory in 90 s, while it reads the RTLIL in seconds.

A design whose synthesized resources exceed the device, or that nextpnr cannot place, is a
result (``fits`` false, ``fit_reason`` says why), not an error. A tool that fails for any other
reason raises :class:`~reuse_accel.synth.tools.ToolError` naming the tool, its log and the
log's last lines.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
from pathlib import Path

from reuse_accel.hw.config import AccelConfig

from . import nextpnr
from .devices import (
    BRAM_CELLS,
    DEFAULT_CLOCK_MHZ,
    DEVICES,
    DSP_CELLS,
    SPRAM_CELLS,
    SynthInputError,
    check_target,
)
from .report import LUT4_PER_LUT_RAM, SynthReport
from .yosys import (
    cmos_transistors,
    dsp_by_signal,
    dumped_memories,
    dumped_multipliers,
    memory_mappings,
    rtlil_memories,
    rtlil_zero_init,
    run_yosys,
    stat_cells,
)

__all__ = ["SRAM_MIN_BITS", "synthesize", "no_reuse", "has_reuse_option", "design_rtlil"]

SRAM_MIN_BITS = 4096
"""Generic target: memories of at least this many bits stay SRAM macros."""


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



def _count(cells: dict, names) -> int:
    return sum(cells.get(name, 0) for name in names)



def synthesize(config: AccelConfig, target: str, *, clock_mhz: float | None = None,
               workdir: str | Path | None = None, top: str = "reuse_accel",
               sram_min_bits: int = SRAM_MIN_BITS, place_and_route: bool = True,
               seed: int = 1, timeout: float | None = 3600.0,
               lut_mapper: str = "abc9") -> SynthReport:
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
    lut_mapper : str
        ECP5 LUT mapper: ``abc9`` (default; the classic ``abc`` when abc9 fails) or ``abc``.
        Designs whose LUTs are compared must be mapped alike.

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
    check_target(target)
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

    started = time.perf_counter()
    macros: list[str] = []
    if target == "generic":
        macros = [name for name, bits in rtlil_memories(rtlil_text, top).items()
                  if bits >= sram_min_bits]
        for name in macros:
            if not re.fullmatch(r"[A-Za-z0-9_.\[\]]+", name):
                raise SynthInputError(f"memory {name!r} cannot be kept as an SRAM macro (its "
                                      "name needs escaping); raise sram_min_bits")
    log_path, lut_mapper = run_yosys(target, top, workdir, keep_memories=macros,
                                     drop_zero_init=rtlil_zero_init(rtlil_text),
                                     timeout=timeout, lut_mapper=lut_mapper)
    seconds["yosys"] = round(time.perf_counter() - started, 1)

    cells = stat_cells(workdir / "stat.json")
    memories = memory_mappings(log_path, dumped_memories(workdir), generic_macros=set(macros))
    multipliers = dumped_multipliers(workdir)
    memory_bits = sum(memory.bits for memory in memories)
    logs = {"yosys": str(log_path)}
    common = dict(target=target, config=config.to_dict(), reuse=_reuse_flag(config), top=top,
                  clock_mhz=clock_mhz, memories=memories, multipliers=multipliers, cells=cells,
                  memory_bits=memory_bits, logs=logs, seconds=seconds,
                  lut_mapper=lut_mapper)

    if target == "generic":
        transistors, partial = cmos_transistors(workdir / "stat_cmos.txt")
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
        lut_ram = cells.get("TRELLIS_DPR16X4", 0)
        luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0) + LUT4_PER_LUT_RAM * lut_ram
        ffs = cells.get("TRELLIS_FF", 0)
    bram_blocks = _count(cells, BRAM_CELLS[target])
    spram_blocks = _count(cells, SPRAM_CELLS[target])
    dsps = _count(cells, DSP_CELLS[target])
    used = {"luts": luts, "ffs": ffs, "bram_blocks": bram_blocks, "dsps": dsps}
    totals = {"luts": device.luts, "ffs": device.ffs, "bram_blocks": device.bram_blocks,
              "dsps": device.dsps}
    if device.spram_blocks:
        used["spram_blocks"] = spram_blocks
        totals["spram_blocks"] = device.spram_blocks
    utilization = {name: round(used[name] / totals[name], 4) for name in used}
    over = [f"{used[name]} {name} (device has {totals[name]})" for name in used
            if used[name] > totals[name]]

    fits, fit_reason, fmax, critical, pnr_utilization = True, None, None, None, {}
    if over:
        fits, fit_reason = False, "synthesis needs " + "; ".join(over)
    elif not place_and_route:
        fits = None
    else:
        started = time.perf_counter()
        placement = nextpnr.place_and_route(target, workdir, clock_mhz=clock_mhz, seed=seed,
                                            timeout=timeout)
        logs["nextpnr"] = str(placement.log)
        seconds["nextpnr"] = round(time.perf_counter() - started, 1)
        fits, fit_reason = placement.fits, placement.fit_reason
        fmax, critical = placement.fmax_mhz, placement.critical_path
        pnr_utilization = placement.utilization
    return SynthReport(
        device=device.name, package=device.package, fits=fits, fit_reason=fit_reason,
        luts=luts, ffs=ffs, lut_ram=lut_ram, bram_blocks=bram_blocks,
        bram_bits=bram_blocks * device.bram_block_bits, spram_blocks=spram_blocks,
        spram_bits=spram_blocks * device.spram_block_bits, dsps=dsps, utilization=utilization,
        pnr_utilization=pnr_utilization, fmax_mhz=fmax,
        timing_met=None if fmax is None else fmax >= clock_mhz, critical_path=critical,
        dsp_by_signal=dsp_by_signal(workdir, target),
        transistors=None, transistors_partial=None, sram_macro_bits=None, **common)


