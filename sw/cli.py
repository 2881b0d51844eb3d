"""Command line: ``reuse-accel generate | run | demo | synth | build``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from reuse_accel.hw.board import BOARDS
from reuse_accel.hw.config import AccelConfig, ConfigError
from reuse_accel.hw.top import generate_verilog
from reuse_accel.sim.cocotb.transport import SimulationError
from reuse_accel.synth import command as synth_command
from reuse_accel.synth.bitstream import BoardBuildError, board_config, build_bitstream

from .commands import DeviceError, ProtocolError
from .compiler import compile_model
from .driver import BACKENDS, Driver
from .network import FloatNetwork, InputError, load_frames, load_labels
from .report import build_report, format_summary
from .serial_link import LinkError

__all__ = ["main", "demo_data"]

DEFAULT_BAUD = 1_000_000


def _config(args) -> AccelConfig:
    config = AccelConfig.from_toml(args.config) if args.config else AccelConfig()
    if getattr(args, "no_reuse", False):
        config = dataclasses.replace(config, reuse=False)
    return config


def _write_design(config: AccelConfig, out: Path, verilog: str | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    verilog_path = out / "reuse_accel.v"
    verilog_path.write_text(verilog if verilog is not None else generate_verilog(config))
    (out / "config.toml").write_text(config.to_toml())
    return verilog_path


def cmd_generate(args) -> int:
    config = _config(args)
    path = _write_design(config, Path(args.output))
    print(f"wrote {path} and {Path(args.output) / 'config.toml'}")
    return 0


def _run(network: FloatNetwork, frames: np.ndarray, config: AccelConfig, backend: str, *,
         calibration: np.ndarray, labels=None, waves: str | None = None,
         port: str | None = None, baudrate: int | None = None,
         link_timeout: float | None = None) -> tuple[dict, Driver]:
    options = {}
    if port:
        if backend not in ("golden", "serial"):
            raise InputError(f"--port runs on a board; it cannot be combined with --backend "
                             f"{backend}")
        backend = "serial"
        options = {"port": port, "baudrate": baudrate}
        if link_timeout is not None:
            options["timeout"] = link_timeout
    elif backend == "serial":
        raise InputError("the serial backend needs --port (e.g. --port /dev/ttyUSB0)")
    if waves:
        if backend == "golden":
            raise InputError("--waves needs an RTL backend (amaranth, verilator or icarus)")
        Path(waves).mkdir(parents=True, exist_ok=True)
        if backend == "amaranth":
            options["vcd"] = str(Path(waves) / "reuse_accel.vcd")
        else:
            options["waves"] = True
    compiled = compile_model(network, config, calibration)
    driver = Driver(compiled, backend=backend, **options)
    build_seconds = driver.prepare()
    started = time.perf_counter()
    reuse, baseline = driver.run(frames)
    seconds = time.perf_counter() - started
    simulation = board = None
    stats = getattr(driver.transport, "stats", None)
    if stats is not None:
        board = {"port": port, "baudrate": baudrate, "seconds": seconds,
                 "link": dataclasses.asdict(stats)}
    elif driver.last_exchange is not None:
        cycles = driver.last_exchange.cycles
        simulation = {"backend": backend, "cycles": cycles, "seconds": seconds,
                      "cycles_per_second": cycles / seconds, "build_seconds": build_seconds}
    report = build_report(reuse, baseline, backend=backend, labels=labels,
                          simulation=simulation, board=board)
    if waves:
        recorded = getattr(driver.transport, "last_waves", None)
        path = Path(options.get("vcd") or Path(waves) / recorded.name)
        if recorded is not None:
            shutil.copy(recorded, path)
        print(f"waveform written to {path}")
    return report, driver


def cmd_run(args) -> int:
    config = _config(args)
    network = FloatNetwork.load(args.model)
    frames = load_frames(args.frames, network.inputs)
    calibration = load_frames(args.calibration, network.inputs) if args.calibration else frames
    labels = load_labels(args.labels, len(frames)) if args.labels else None
    report, _ = _run(network, frames, config, args.backend, calibration=calibration,
                     labels=labels, waves=args.waves, port=args.port, baudrate=args.baud,
                     link_timeout=args.link_timeout)
    print(format_summary(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"report written to {args.json}")
    return 0


def demo_data() -> dict:
    """The shipped speech demo: model, frames, labels, calibration frames, metadata."""
    folder = resources.files("reuse_accel.data")
    with resources.as_file(folder) as path:
        return {
            "model": FloatNetwork.load(path / "speech_mlp.npz"),
            "frames": np.load(path / "speech_frames.npy"),
            "labels": np.load(path / "speech_labels.npy"),
            "calibration": np.load(path / "speech_calibration.npy"),
            "meta": json.loads((path / "speech.json").read_text()),
        }


def cmd_demo(args) -> int:
    config = _config(args)
    out = Path(args.out)
    data = demo_data()
    meta = data["meta"]
    frames = data["frames"][:args.frames] if args.frames else data["frames"]
    labels = data["labels"][:len(frames)]
    print(f"speech: \"{meta['sentence']}\" ({len(frames)} frames of 10 ms, held-out voice "
          f"{meta['test_voice']}); MLP {'-'.join(map(str, data['model'].sizes))}")
    started = time.perf_counter()
    report, driver = _run(data["model"], frames, config, args.backend,
                          calibration=data["calibration"], labels=labels, waves=args.waves)
    built = getattr(driver.transport, "verilog_path", None)
    verilog_path = _write_design(config, out, built.read_text() if built else None)
    print(f"accelerator: {config.lanes} lanes, {config.clusters} clusters; Verilog in "
          f"{verilog_path}")
    print(format_summary(report))
    report_path = out / "report.json"
    report_path.write_text(json.dumps(report, indent=1))
    print(f"report written to {report_path} ({time.perf_counter() - started:.1f} s)")
    return 0


def cmd_build(args) -> int:
    config = AccelConfig.from_toml(args.config) if args.config else board_config(args.board)
    out = Path(args.out or f"out/{args.board}")
    started = time.perf_counter()
    bitstream = build_bitstream(config, args.board, out, baudrate=args.baud)
    (out / "config.toml").write_text(config.to_toml())
    print(f"bitstream for {args.board} written to {bitstream} "
          f"({time.perf_counter() - started:.0f} s); UART at {args.baud} baud, 8N1")
    print(f"run a model on it: reuse-accel run MODEL.npz FRAMES.npy --config "
          f"{out / 'config.toml'} --port /dev/ttyUSB0 --baud {args.baud}")
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reuse-accel",
        description="Generate, simulate and drive a DNN accelerator that reuses computation "
                    "across consecutive inputs.")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write the Verilog and resolved config")
    generate.add_argument("--config", help="hardware configuration (TOML, [accelerator])")
    generate.add_argument("-o", "--output", required=True, help="output directory")
    generate.add_argument("--no-reuse", action="store_true",
                          help="leave out the reuse logic (a dense accelerator, for comparison)")
    generate.set_defaults(handler=cmd_generate)

    run = commands.add_parser("run", help="run a float MLP on a sequence of frames")
    run.add_argument("model", help="MODEL.npz with float arrays w0, b0, w1, b1, ...")
    run.add_argument("frames", help="FRAMES.npy, float array of shape (T, inputs)")
    run.add_argument("--config", help="hardware configuration (TOML, [accelerator])")
    run.add_argument("--backend", choices=BACKENDS, default="golden")
    run.add_argument("--json", help="write the full report to this file")
    run.add_argument("--calibration", help="frames to calibrate centroid tables on "
                                           "(default: FRAMES)")
    run.add_argument("--labels", help="per-frame class labels (.npy) to report accuracy")
    run.add_argument("--waves", metavar="DIR", help="record a waveform of the RTL run in DIR")
    run.add_argument("--port", help="run on a board on this serial port (e.g. /dev/ttyUSB0)")
    run.add_argument("--baud", type=_positive, default=DEFAULT_BAUD,
                     help=f"serial rate of --port (default {DEFAULT_BAUD})")
    run.add_argument("--link-timeout", type=_seconds, metavar="SECONDS",
                     help="seconds to wait for each reply on --port before retrying "
                          "(default 0.1; more for a simulated board)")
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser("demo", help="run the shipped speech demo on the RTL")
    demo.add_argument("--config", help="hardware configuration (TOML, [accelerator])")
    demo.add_argument("--backend", choices=BACKENDS, default="verilator")
    demo.add_argument("--out", default="out/demo", help="output directory")
    demo.add_argument("--frames", type=_positive, help="use only the first N frames")
    demo.add_argument("--waves", metavar="DIR", help="record a waveform of the RTL run in DIR")
    demo.set_defaults(handler=cmd_demo)

    synth_command.register(commands)

    build = commands.add_parser("build", help="build a bitstream for a board (open toolchain)")
    build.add_argument("--board", required=True, choices=BOARDS,
                       help="iCEBreaker (iCE40UP5K) or ULX3S (ECP5-85F)")
    build.add_argument("--config", help="hardware configuration (TOML, [accelerator]); "
                                        "default: the board's configuration")
    build.add_argument("--baud", type=_positive, default=DEFAULT_BAUD,
                       help=f"serial rate of the UART link (default {DEFAULT_BAUD})")
    build.add_argument("--out", help="build directory (default: out/<board>)")
    build.set_defaults(handler=cmd_build)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, InputError) as error:
        print(f"reuse-accel: error: {error}", file=sys.stderr)
        return 2
    except (DeviceError, ProtocolError, TimeoutError, SimulationError, LinkError,
            BoardBuildError) as error:
        print(f"reuse-accel: hardware error: {error}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
