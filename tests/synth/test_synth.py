"""Synthesis flow, reports, reuse overhead, SDC and the ``synth`` subcommand.

The synthesis runs (Yosys for ``generic`` and ``ice40``, nextpnr for ``ice40`` with reuse) use
a tiny configuration and run once per module, two at a time (about a minute and a half on
two cores); they are ordinary tests, so ``make test`` runs them.
"""

import argparse
import dataclasses
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import ROOT

from reuse_accel.hw.config import AccelConfig
from reuse_accel.synth import command
from reuse_accel.synth.devices import DEFAULT_CLOCK_MHZ, DEVICES, SynthInputError, board_clock_pin
from reuse_accel.synth.flow import has_reuse_option, no_reuse, synthesize
from reuse_accel.synth.nextpnr import critical_path
from reuse_accel.synth.report import reuse_overhead
from reuse_accel.synth.sdc import generate_sdc
from reuse_accel.synth.tools import ToolError
from reuse_accel.synth.yosys import run_yosys

TINY = AccelConfig(lanes=2, clusters=4, max_neurons=16, weight_depth=64, max_layers=2,
                   act_width=8, act_frac=4, weight_width=4, centroid_width=8)

needs_reuse_option = pytest.mark.skipif(not has_reuse_option(),
                                        reason="AccelConfig has no 'reuse' field yet")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Tiny-config reports: generic and ice40 (placed and routed), with and without reuse."""
    root = tmp_path_factory.mktemp("synth")
    jobs = {"ice40": (TINY, "ice40", True), "generic": (TINY, "generic", True)}
    if has_reuse_option():
        jobs["ice40_no_reuse"] = (no_reuse(TINY), "ice40", False)
        jobs["generic_no_reuse"] = (no_reuse(TINY), "generic", True)

    def run(name):
        config, target, place = jobs[name]
        return synthesize(config, target, workdir=root / name, place_and_route=place)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(jobs, pool.map(run, jobs), strict=True))


# -- report contents ---------------------------------------------------------------------------

def test_ice40_maps_lane_multipliers_to_dsp_and_memories_to_bram(reports):
    report = reports["ice40"]
    assert report.device == "iCE40UP5K" and report.target == "ice40"
    # weight (4 bits) x delta (centroid_width + 1 = 9 bits) fits one 16x16 SB_MAC16 per lane.
    assert report.dsp_by_signal["accel.tile.mac.s2_products"] == TINY.lanes
    assert report.dsps == sum(report.dsp_by_signal.values()) == report.cells["SB_MAC16"]
    kinds = {memory.name.removeprefix("accel."): memory.mapped_to for memory in report.memories}
    banks = [f"tile.mac.weights{bank}" for bank in range(TINY.weight_banks)]
    for name in (*banks, "tile.mac.biases", "tile.mac.sums", "tile.buffer.banks"):
        assert kinds[name] == "bram", (name, kinds)
    # The weight memory is split into banks of weight_bank_width bits of the row, each with its
    # own row register; the banks hold the whole row.
    widths = []
    for name in banks:
        weights = next(m for m in report.memories if m.name.endswith(name))
        assert weights.depth == TINY.weight_depth
        widths.append(weights.width)
    assert widths[:-1] == [TINY.weight_bank_width] * (len(banks) - 1)
    assert sum(widths) == TINY.lanes * TINY.weight_width
    assert report.bram_blocks == report.cells["SB_RAM40_4K"] >= 4
    assert report.bram_bits == report.bram_blocks * 4096


def test_ice40_timing_fields_are_consistent(reports):
    report = reports["ice40"]
    assert report.fits is True and report.fit_reason is None
    assert report.clock_mhz == DEFAULT_CLOCK_MHZ["ice40"]
    assert report.fmax_mhz > 0
    assert report.timing_met == (report.fmax_mhz >= report.clock_mhz)
    path = report.critical_path
    assert path.from_cell and path.to_cell and path.logic_levels >= 1
    assert path.delay_ns == pytest.approx(path.logic_ns + path.routing_ns, abs=0.01)
    # nextpnr's Fmax is the inverse of its worst register-to-register path.
    assert 1000 / path.delay_ns == pytest.approx(report.fmax_mhz, rel=0.05)
    assert report.pnr_utilization["ICESTORM_LC"]["available"] == DEVICES["ice40"].luts


def test_ice40_utilization_is_against_device_totals(reports):
    report = reports["ice40"]
    device = DEVICES["ice40"]
    assert report.luts == report.cells["SB_LUT4"]
    assert report.ffs == sum(n for cell, n in report.cells.items() if cell.startswith("SB_DFF"))
    assert report.utilization["luts"] == pytest.approx(report.luts / device.luts, abs=1e-4)
    assert report.utilization["dsps"] == pytest.approx(report.dsps / device.dsps, abs=1e-4)
    # The placed design cannot use fewer logic cells than it has LUTs.
    assert report.pnr_utilization["ICESTORM_LC"]["used"] >= report.luts


def test_generic_counts_cells_and_transistors(reports):
    report = reports["generic"]
    assert report.device is None and report.fmax_mhz is None and report.timing_met is None
    assert report.transistors > sum(report.cells.values())
    assert report.ffs == sum(n for cell, n in report.cells.items() if "DFF" in cell) > 0
    # Every memory of the tiny config is below the SRAM-macro threshold: flip-flops.
    assert report.memories and all(m.mapped_to == "ff" for m in report.memories)
    assert report.sram_macro_bits == 0
    multiplier_widths = {(m.a_width, m.b_width) for m in report.multipliers}
    assert (TINY.weight_width, TINY.delta_width) in multiplier_widths


def test_report_is_json_and_carries_config(reports, tmp_path):
    report = reports["ice40"]
    document = json.loads(json.dumps(report.to_dict()))
    assert document["config"]["lanes"] == TINY.lanes
    assert document["reuse"] is True
    assert document["critical_path"]["to_cell"] == report.critical_path.to_cell
    assert Path(document["logs"]["yosys"]).exists() and Path(document["logs"]["nextpnr"]).exists()
    assert "iCE40UP5K" in report.summary()


# -- reuse against no reuse --------------------------------------------------------------------

@needs_reuse_option
@pytest.mark.parametrize("target", ["ice40", "generic"])
def test_no_reuse_build_is_smaller(reports, target):
    reuse, plain = reports[target], reports[f"{target}_no_reuse"]
    assert reuse.reuse is True and plain.reuse is False
    assert plain.ffs < reuse.ffs
    assert plain.memory_bits < reuse.memory_bits
    if target == "ice40":
        assert plain.luts < reuse.luts
        assert plain.fits is None and plain.fmax_mhz is None  # not placed
    else:
        assert plain.transistors < reuse.transistors
    # Without reuse there are no centroid tables and no input-state memory.
    names = {m.name.removeprefix("accel.") for m in plain.memories}
    assert "tile.detector.state" not in names
    assert "tile.detector.state" in {m.name.removeprefix("accel.") for m in reuse.memories}


@needs_reuse_option
def test_reuse_overhead_percentages(reports):
    reuse, plain = reports["ice40"], reports["ice40_no_reuse"]
    overhead = reuse_overhead(reuse, plain)
    assert overhead["luts"] == pytest.approx(100 * (reuse.luts / plain.luts - 1), abs=0.01)
    assert overhead["ffs"] > 0
    generic = reuse_overhead(reports["generic"], reports["generic_no_reuse"])
    assert generic["transistors"] > 0 and generic["total_transistors"] > 0
    with pytest.raises(SynthInputError, match="with reuse and one without"):
        reuse_overhead(plain, reuse)
    with pytest.raises(SynthInputError, match="different targets"):
        reuse_overhead(reuse, reports["generic_no_reuse"])


# -- errors ------------------------------------------------------------------------------------

def test_unknown_target_names_the_choices(tmp_path):
    with pytest.raises(SynthInputError, match=r"unknown synthesis target 'vhdl'.*generic, "
                                              r"ice40, ecp5"):
        synthesize(TINY, "vhdl", workdir=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("clock", [0, -5, "fast", 1e6])
def test_bad_clock_is_an_input_error(clock, tmp_path):
    with pytest.raises(SynthInputError, match="clock_mhz"):
        synthesize(TINY, "ice40", clock_mhz=clock, workdir=tmp_path)


def test_config_too_big_for_the_device_does_not_fit(tmp_path):
    # 2**18 rows of 2 x 4-bit weights: 2 Mbit, more than the UP5K's EBR and SPRAM together.
    big = dataclasses.replace(TINY, weight_depth=1 << 18)
    report = synthesize(big, "ice40", workdir=tmp_path)
    assert report.fits is False
    assert "device has" in report.fit_reason
    assert report.fmax_mhz is None and report.timing_met is None
    assert "does NOT fit" in report.summary()


# -- SDC ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mhz", [100, 24, 37.5])
def test_sdc_period_matches_clock(mhz):
    sdc = generate_sdc(AccelConfig(), mhz)
    period = float(re.search(r"create_clock -name clk -period ([\d.]+) \[get_ports clk\]",
                             sdc)[1])
    assert period == pytest.approx(1000 / mhz, abs=5e-4)
    delays = [float(x) for x in re.findall(r"set_(?:input|output)_delay -clock clk ([\d.]+)",
                                           sdc)]
    assert delays == [pytest.approx(0.4 * period, abs=5e-4)] * 2
    assert "s_axis_tdata[*]" in sdc and "m_axis_tdata[*]" in sdc and "rst" in sdc


def test_sdc_rejects_bad_budget():
    with pytest.raises(ValueError, match="io_budget"):
        generate_sdc(AccelConfig(), 100, io_budget=1.5)


def test_committed_sdc_is_the_generators_output():
    committed = (ROOT / "constraints" / "reuse_accel.sdc").read_text()
    assert committed == generate_sdc(AccelConfig(), 100.0)


def test_clock_pins_are_the_boards_clock_inputs():
    assert board_clock_pin("ice40") == "35"  # iCEBreaker 12 MHz oscillator
    assert board_clock_pin("ecp5") == "G2"  # ULX3S 25 MHz oscillator


def test_board_configs_are_valid():
    for path in (ROOT / "synth" / "configs").glob("*.toml"):
        AccelConfig.from_toml(path)


# -- CLI ---------------------------------------------------------------------------------------

def _parse(argv):
    parser = argparse.ArgumentParser(prog="reuse-accel")
    command.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_rejects_unknown_target(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(["synth", "--target", "vhdl"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'vhdl'" in capsys.readouterr().err


def test_cli_missing_config_is_exit_2(capsys, tmp_path):
    args = _parse(["synth", "--target", "generic", "--config", str(tmp_path / "none.toml")])
    assert args.handler(args) == 2
    assert re.search(r"error: configuration file .*none\.toml' does not exist",
                     capsys.readouterr().err)


def test_cli_tool_failure_is_exit_3(capsys, monkeypatch, tmp_path):
    def failing(*args, **kwargs):
        raise ToolError("yosys", tmp_path / "yosys.log", "yosys failed (exit code 1); log x")

    monkeypatch.setattr(command, "synthesize", failing)
    args = _parse(["synth", "--target", "generic"])
    assert args.handler(args) == 3
    assert "error: yosys failed" in capsys.readouterr().err


def test_cli_writes_report_verilog_and_sdc(reports, monkeypatch, tmp_path, capsys):
    calls = []

    def fake(config, target, **kwargs):
        calls.append((config, target, kwargs))
        return reports["ice40"]

    monkeypatch.setattr(command, "synthesize", fake)
    config_path = tmp_path / "tiny.toml"
    config_path.write_text(TINY.to_toml())
    out = tmp_path / "out"
    args = _parse(["synth", "--target", "ice40", "--config", str(config_path), "--clock-mhz",
                   "30", "--json", str(tmp_path / "r.json"), "--out", str(out)])
    assert args.handler(args) == 0
    config, target, kwargs = calls[0]
    assert config == TINY and target == "ice40" and kwargs["clock_mhz"] == 30
    assert kwargs["workdir"] == out / "ice40"
    assert json.loads((tmp_path / "r.json").read_text())["target"] == "ice40"
    assert "create_clock -name clk -period 33.333" in (out / "reuse_accel.sdc").read_text()
    assert "module reuse_accel" in (out / "reuse_accel.v").read_text()
    assert "Fmax" in capsys.readouterr().out


@needs_reuse_option
def test_cli_no_reuse_passes_reuse_false(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(command, "synthesize",
                        lambda config, target, **kw: seen.append(config) or (_ for _ in ()).throw(
                            SynthInputError("stop")))
    args = _parse(["synth", "--target", "generic", "--no-reuse"])
    assert args.handler(args) == 2
    assert seen[0].reuse is False


def test_critical_path_is_the_clocks_not_an_unconstrained_ports():
    # nextpnr's report lists paths from and to the unconstrained ports (its <async> domain)
    # beside the clock's; only the clock's sets Fmax, even when a port's path is longer.
    clock = "posedge $glbnet$clk$TRELLIS_IO_IN"

    def path(source, sink, delays):
        return {"from": source, "to": sink, "path": [
            {"type": kind, "delay": delay, "from": {"cell": f"c{n}"}, "to": {"cell": f"c{n + 1}"}}
            for n, (kind, delay) in enumerate(delays)]}

    report = {"critical_paths": [
        path(clock, clock, [("clk-to-q", 0.5), ("routing", 3.0), ("logic", 0.4),
                            ("routing", 4.0), ("setup", 0.1)]),
        path("<async>", clock, [("routing", 20.0), ("setup", 0.1)]),
        path(clock, "<async>", [("clk-to-q", 0.5), ("routing", 9.0)]),
    ]}
    found = critical_path(report)
    assert (found.from_cell, found.to_cell) == ("c0", "c5")
    assert (found.delay_ns, found.logic_ns, found.routing_ns) == (8.0, 1.0, 7.0)
    assert found.logic_levels == 1


def test_run_yosys_rejects_an_unknown_lut_mapper(tmp_path):
    with pytest.raises(ValueError, match=r"^lut_mapper must be 'abc9' or 'abc', not 'abc10'$"):
        run_yosys("ecp5", "top", tmp_path, keep_memories=[], drop_zero_init=True, timeout=1,
                  lut_mapper="abc10")
