"""Command line: ``reuse-accel generate | run | demo | synth | build``.

Every problem a user can fix (a file that is missing or of the wrong kind, a model the hardware
cannot hold, an output path that cannot be written) is an error message and exit code 2, found
before any long run starts; a failure of the hardware or of a simulator is exit code 3.

Hardware sizing: without ``--config``, ``run`` and ``demo`` on the simulation backends and
``generate --model`` start from ``AccelConfig()`` and raise each capacity (``max_layers``,
``max_neurons``, ``weight_depth``) to the smallest value that holds the model. With
``--config`` the file's parameters are used as they are. With ``--port`` the board's own
parameters are read from it (STATUS).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import re
import shutil
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from reuse_accel.hw.board import BOARDS
from reuse_accel.hw.config import AccelConfig, ConfigError
from reuse_accel.hw.layers import KINDS as GATEWARE_KINDS
from reuse_accel.hw.top import DEFAULT_TOP, generate_verilog
from reuse_accel.sim.cocotb.transport import SimulationError
from reuse_accel.synth import command as synth_command
from reuse_accel.synth.bitstream import BoardBuildError, board_config, build_bitstream

from .commands import DeviceError, ProtocolError
from .compiler import ModelFitError, check_fits, compile_model, size_config
from .driver import (
    BACKENDS,
    BoardMismatchError,
    Driver,
    check_gateware_kinds,
    describe_difference,
    make_transport,
    read_board_config,
)
from .network import InputError, Network, load_frames, load_labels
from .report import build_report, format_summary, out_of_range_warnings, score
from .serial_link import LinkError

__all__ = ["main", "demo_data", "WORKLOADS"]

DEFAULT_BAUD = 1_000_000
SIMULATION_BACKENDS = tuple(backend for backend in BACKENDS if backend != "serial")
DEFAULT_BACKEND = {"run": "golden", "demo": "verilator"}


# -- configurations ---------------------------------------------------------------------------

def _config(args) -> AccelConfig:
    """The ``--config`` file (or the defaults), with ``--no-reuse`` applied."""
    config = AccelConfig.from_toml(args.config) if args.config else AccelConfig()
    if getattr(args, "no_reuse", False):
        config = dataclasses.replace(config, reuse=False)
    return config


def _model_config(args, network: Network) -> AccelConfig:
    """The hardware to run ``network`` on: the ``--config`` file, which must hold it, or the
    defaults raised to hold it."""
    if not args.config:
        reuse = not getattr(args, "no_reuse", False)
        return size_config(network, AccelConfig(reuse=reuse))
    config = _config(args)
    try:
        check_fits(config, network)
    except ModelFitError as error:
        raise InputError(
            f"{error.problem}; raise {error.parameter} to {error.required} or more in the "
            f"[accelerator] table of {str(args.config)!r}, or drop --config to size the "
            "hardware for the model") from None
    return config


def describe_config(config: AccelConfig) -> str:
    """One line: the parameters that say what the generated accelerator is."""
    conv = (f", max_kernel {config.max_kernel}, maps up to {config.max_height} x "
            f"{config.max_width}, buffer_depth {config.buffer_rows}, state_depth "
            f"{config.state_rows}, sum_depth {config.sum_rows}" if config.conv else "")
    return (f"{config.lanes} lanes, {config.clusters} clusters, max_layers "
            f"{config.max_layers}, max_neurons {config.max_neurons}, weight_depth "
            f"{config.weight_depth}{conv}{'' if config.reuse else ', without reuse'}")


# -- output paths, checked before anything runs -----------------------------------------------

def _check_output_file(option: str, path: str | None) -> None:
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {str(path)!r} is a directory; give a file name, e.g. "
                         f"{str(path / 'report.json')!r}")
    parent = path.parent
    if not parent.exists():
        raise InputError(f"{option} {str(path)!r}: the directory {str(parent)!r} does not "
                         "exist; create it first or choose another path")
    if not parent.is_dir():
        raise InputError(f"{option} {str(path)!r}: {str(parent)!r} is a file, not a directory")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{option} {str(path)!r}: the directory {str(parent)!r} is not "
                         "writable")


def _check_output_dir(option: str, path: str | None) -> None:
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {str(path)!r} is a file, not a directory; give a "
                         "directory (it is created if it does not exist)")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{option} {str(path)!r} cannot be created: {str(existing)!r} is a "
                         "file")
    if not os.access(existing, os.W_OK):
        raise InputError(f"{option} {str(path)!r}: the directory {str(existing)!r} is not "
                         "writable")


def _write_design(config: AccelConfig, out: Path, verilog: str | None = None, *,
                  top: str = DEFAULT_TOP) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    verilog_path = out / f"{top}.v"
    verilog_path.write_text(verilog if verilog is not None
                            else generate_verilog(config, name=top))
    (out / "config.toml").write_text(config.to_toml())
    return verilog_path


# -- generate ---------------------------------------------------------------------------------

def cmd_generate(args) -> int:
    _check_output_dir("-o", args.output)
    if args.model:
        network = Network.load(args.model)
        check_gateware_kinds(network.layers, "run the model with reuse-accel run --backend "
                                             "golden")
        config = _model_config(args, network)
    else:
        config = _config(args)
    path = _write_design(config, Path(args.output), top=args.top)
    if args.model:
        print(f"accelerator: {describe_config(config)}")
    print(f"wrote {path} and {Path(args.output) / 'config.toml'}")
    return 0


# -- run and demo -----------------------------------------------------------------------------

def _check_simulator(backend: str) -> None:
    if backend == "icarus" and shutil.which("iverilog") is None:
        raise InputError("--backend icarus needs Icarus Verilog (iverilog), which is not on "
                         "PATH: install it (apt-get install iverilog; version 11 or later) or "
                         "use --backend verilator")


def _waves_options(backend: str, waves: str | None) -> dict:
    if not waves:
        return {}
    if backend not in ("amaranth", "verilator", "icarus"):
        raise InputError("--waves needs an RTL backend (amaranth, verilator or icarus)")
    if backend == "amaranth":
        return {"vcd": str(Path(waves) / "reuse_accel.vcd")}
    return {"waves": True}


def _run(network: Network, frames: np.ndarray, config: AccelConfig, backend: str, *,
         calibration: np.ndarray, labels=None, waves: str | None = None, transport=None,
         port: str | None = None, baudrate: int | None = None) -> tuple[dict, Driver]:
    """Compile, run with and without reuse, and build the report. ``transport``: the board's
    (serial backend), already asked for its configuration."""
    options = _waves_options(backend, waves)
    if waves:
        Path(waves).mkdir(parents=True, exist_ok=True)
    compiled = compile_model(network, config, calibration)
    if transport is not None:
        driver = Driver(compiled, backend=backend, transport=transport)
    else:
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


def _board(args, network: Network):
    """The serial transport to ``--port`` and the configuration the board reports."""
    provisional = AccelConfig.from_toml(args.config) if args.config else AccelConfig()
    options = {"port": args.port, "baudrate": args.baud}
    if args.link_timeout is not None:
        options["timeout"] = args.link_timeout
    transport = make_transport("serial", provisional, **options)
    config = read_board_config(transport)
    transport.config = config
    if args.config and config != provisional:
        raise InputError(
            f"--config {str(args.config)!r} does not match the accelerator on {args.port}, "
            f"which was built with {describe_difference(provisional, config)}; drop --config: "
            "a board's configuration is read from the board")
    try:
        check_fits(config, network, hardware=f"the accelerator on {args.port}")
    except ModelFitError as error:
        raise InputError(
            f"{error.problem}; build a bitstream whose configuration has {error.parameter} "
            f">= {error.required} (reuse-accel build --config CONFIG.toml)") from None
    return transport, config


def cmd_run(args) -> int:
    _check_output_file("--json", args.json)
    _check_output_dir("--waves", args.waves)
    backend = args.backend
    if args.port:
        if backend not in ("golden", "serial"):
            raise InputError(f"--port runs on a board; it cannot be combined with --backend "
                             f"{backend}")
        backend = "serial"
    elif backend == "serial":
        raise InputError("the serial backend needs --port (e.g. --port /dev/ttyUSB0)")
    _check_simulator(backend)
    _waves_options(backend, args.waves)
    network = Network.load(args.model)
    if backend != "golden":
        check_gateware_kinds(network.layers, "run the model with --backend golden")
    frames = load_frames(args.frames, network.input_shape)
    calibration = (load_frames(args.calibration, network.input_shape, "calibration frames")
                   if args.calibration else frames)
    labels = (load_labels(args.labels, len(frames), network.outputs) if args.labels
              else None)
    transport = None
    if backend == "serial":
        transport, config = _board(args, network)
        source = f"read from the board on {args.port}"
    else:
        config = _model_config(args, network)
        source = f"from {args.config}" if args.config else "sized for the model"
    print(f"accelerator: {describe_config(config)} ({source})")
    report, _ = _run(network, frames, config, backend, calibration=calibration,
                     labels=labels, waves=args.waves, transport=transport, port=args.port,
                     baudrate=args.baud)
    print(format_summary(report))
    if args.calibration:
        # Calibrated on the run's own frames, the float inputs of every layer lie inside their
        # ranges by construction: only fixed-point rounding at a range's ends can fall outside
        # (by a least significant bit), which is no reason to recalibrate.
        for warning in out_of_range_warnings(report):
            print(f"reuse-accel: warning: {warning}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"report written to {args.json}")
    return 0


WORKLOADS = ("speech", "video", "lstm")
"""The shipped demos: ``speech``, an MLP classifying spoken words in 10 ms speech frames,
``video``, a CNN estimating traffic density in the frames of a static-camera video, and
``lstm``, an LSTM classifying the same speech one frame per time step."""




def demo_data(workload: str = "speech") -> dict:
    """A shipped demo (see :data:`WORKLOADS`): its model, frames, labels, calibration frames,
    metadata, a line that describes it, and the mask of its frames held out of training."""
    folder = resources.files("reuse_accel.data")
    with resources.as_file(folder) as path:
        if workload == "lstm":
            meta = json.loads((path / "speech_lstm.json").read_text())
            speech = json.loads((path / "speech.json").read_text())
            columns = slice(*meta["input_columns"])     # the splice's centre frame
            frames = np.load(path / "speech_frames.npy")[:, columns]
            model = Network.load(path / "speech_lstm.onnx")
            return {
                "model": model, "frames": frames,
                "labels": np.load(path / "speech_labels.npy"),
                "calibration": np.load(path / "speech_calibration.npy")[:, columns],
                "meta": meta,
                "title": (f"speech: \"{speech['sentence']}\" (frames of 10 ms, held-out "
                          f"voice {speech['test_voice']}); "
                          f"{', '.join(_layer_text(layer) for layer in model.layers)}, one "
                          "frame per time step"),
                "held_out": np.ones(len(frames), bool),
            }
        if workload == "speech":
            model = Network.load(path / "speech_mlp.npz")
            meta = json.loads((path / "speech.json").read_text())
            frames = np.load(path / "speech_frames.npy")
            return {
                "model": model, "frames": frames, "labels": np.load(path / "speech_labels.npy"),
                "calibration": np.load(path / "speech_calibration.npy"), "meta": meta,
                "title": (f"speech: \"{meta['sentence']}\" (frames of 10 ms, held-out voice "
                          f"{meta['test_voice']}); MLP {'-'.join(map(str, model.sizes))}"),
                "held_out": np.ones(len(frames), bool),
            }
        model = Network.load(path / "traffic_cnn.onnx")
        meta = json.loads((path / "traffic_cnn.json").read_text())
        pixels = np.load(path / "traffic_frames.npy")
    frames = pixels[:, None].astype(np.float64) / 255
    held_out = (np.arange(len(frames)) // meta["split_block"]) % 2 == 1
    return {
        "model": model, "frames": frames, "labels": np.load(path / "traffic_labels.npy"),
        "calibration": frames[~held_out], "meta": meta,
        "title": (f"video: static-camera traffic (24 x 32 gray frames at 30 fps), "
                  f"{meta['task']}; CNN "
                  f"{', '.join(_layer_text(layer) for layer in model.layers)}"),
        "held_out": held_out,
    }


def _layer_text(layer) -> str:
    if layer.recurrent is not None:
        return f"{layer.kind.name} {layer.inputs}-{layer.outputs}"
    if layer.kind.name == "CONV":
        return f"conv {layer.geometry.kernel[0]}x{layer.geometry.kernel[-1]} " \
               f"{'x'.join(map(str, layer.output_shape))}"
    return f"dense {layer.outputs}"


def cmd_demo(args) -> int:
    out = Path(args.out)
    _check_output_dir("--out", args.out)
    _check_output_dir("--waves", args.waves)
    data = demo_data(args.workload)
    # A model the gateware cannot run yet runs on the golden model unless --backend says.
    golden_only = any(layer.kind not in GATEWARE_KINDS for layer in data["model"].layers)
    backend = args.backend or ("golden" if golden_only else DEFAULT_BACKEND["demo"])
    _check_simulator(backend)
    _waves_options(backend, args.waves)
    if backend != "golden":
        check_gateware_kinds(data["model"].layers, "run the demo with --backend golden")
    config = _model_config(args, data["model"])
    frames = data["frames"][:args.frames] if args.frames else data["frames"]
    labels = data["labels"][:len(frames)]
    print(f"{data['title']}; {len(frames)} frames")
    started = time.perf_counter()
    report, driver = _run(data["model"], frames, config, backend,
                          calibration=data["calibration"], labels=labels, waves=args.waves)
    if golden_only:
        out.mkdir(parents=True, exist_ok=True)
        print(f"accelerator: {describe_config(config)} (the golden model; the gateware does "
              "not have recurrent layers yet)")
    else:
        built = getattr(driver.transport, "verilog_path", None)
        verilog_path = _write_design(config, out, built.read_text() if built else None)
        print(f"accelerator: {describe_config(config)}; Verilog in {verilog_path}")
    print(format_summary(report))
    held_out = data["held_out"][:len(frames)]
    if not held_out.all() and held_out.any():
        outputs = np.array(report["outputs"])[held_out]
        reference = np.array(report["reference_outputs"])[held_out]
        held = score(outputs, reference, labels[held_out])
        report["summary"]["held_out"] = {"frames": int(held_out.sum()), **held}
        print(f"held-out frames ({held_out.sum()}): mean |error| vs labels "
              f"{held['mean_abs_error']:.4f} (float network {held['float_mean_abs_error']:.4f})")
    for warning in out_of_range_warnings(report):
        print(f"reuse-accel: warning: {warning}", file=sys.stderr)
    report_path = out / "report.json"
    report_path.write_text(json.dumps(report, indent=1))
    print(f"report written to {report_path} ({time.perf_counter() - started:.1f} s)")
    return 0


# -- build ------------------------------------------------------------------------------------

def cmd_build(args) -> int:
    out = Path(args.out or f"out/{args.board}")
    _check_output_dir("--out", str(out))
    config = AccelConfig.from_toml(args.config) if args.config else board_config(args.board)
    started = time.perf_counter()
    bitstream = build_bitstream(config, args.board, out, baudrate=args.baud)
    (out / "config.toml").write_text(config.to_toml())
    print(f"bitstream for {args.board} written to {bitstream} "
          f"({time.perf_counter() - started:.0f} s); UART at {args.baud} baud, 8N1")
    print(f"run a model on it: reuse-accel run MODEL.npz FRAMES.npy --port /dev/ttyUSB0 "
          f"--baud {args.baud}")
    return 0


# -- arguments --------------------------------------------------------------------------------

def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _module_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise argparse.ArgumentTypeError(
            f"must be a Verilog module name (a letter or _, then letters, digits or _), "
            f"not {text!r}")
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _demo_backend(text: str) -> str:
    if text == "serial":
        raise argparse.ArgumentTypeError(
            "demo runs on a simulator (golden, amaranth, verilator or icarus) and has no "
            "--port; to run a model on a board use: reuse-accel run MODEL FRAMES.npy --port "
            "PORT")
    if text not in SIMULATION_BACKENDS:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(SIMULATION_BACKENDS)}, not {text!r}")
    return text


def _version() -> str:
    try:
        return importlib.metadata.version("reuse-accel")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reuse-accel",
        description="Generate, simulate and drive a DNN accelerator that reuses computation "
                    "across consecutive inputs.",
        epilog=f"Default backends: run {DEFAULT_BACKEND['run']} (the golden model), demo "
               f"{DEFAULT_BACKEND['demo']}.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser(
        "generate", help="write the Verilog and resolved config",
        description="Write the accelerator's Verilog and its resolved configuration. With "
                    "--model and without --config, the default configuration with its "
                    "capacities raised to hold the model.")
    generate.add_argument("--config", help="hardware configuration (TOML, [accelerator])")
    generate.add_argument("--model", help="size the hardware for this model (.npz or .onnx)")
    generate.add_argument("-o", "--output", required=True, help="output directory")
    generate.add_argument("--no-reuse", action="store_true",
                          help="leave out the reuse logic (a dense accelerator, for comparison)")
    generate.add_argument("--top", type=_module_name, default=DEFAULT_TOP, metavar="NAME",
                          help="name of the top module, and the prefix of its submodules, so "
                               "that designs of two configurations can live in one design "
                               f"(default {DEFAULT_TOP}; the file is NAME.v)")
    generate.set_defaults(handler=cmd_generate)

    run = commands.add_parser(
        "run", help=f"run a float model on a sequence of frames (default backend: "
                    f"{DEFAULT_BACKEND['run']})",
        description="Run a float model on a sequence of frames, with and without reuse, and "
                    "report outputs, reuse and cycles. Without --config the hardware is sized "
                    "for the model; with --port it is the board's.")
    run.add_argument("model", help="MODEL.npz with float arrays w0, b0, w1, b1, ..., or "
                                   "MODEL.onnx (exported by torch.onnx.export)")
    run.add_argument("frames", help="FRAMES.npy, real array of shape (T, inputs) for an .npz "
                                    "model, (T, *input shape without the batch) for ONNX")
    run.add_argument("--config", help="hardware configuration (TOML, [accelerator]); "
                                      "default: sized for the model")
    run.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND["run"],
                     help="where to run (default: %(default)s)")
    run.add_argument("--json", help="write the full report to this file")
    run.add_argument("--calibration", help="frames to calibrate centroid tables on "
                                           "(default: FRAMES)")
    run.add_argument("--labels", help="per-frame class labels (.npy) to report accuracy")
    run.add_argument("--waves", metavar="DIR", help="record a waveform of the RTL run in DIR")
    run.add_argument("--port", help="run on a board on this serial port (e.g. /dev/ttyUSB0); "
                                    "its configuration is read from the board")
    run.add_argument("--baud", type=_positive, default=DEFAULT_BAUD,
                     help=f"serial rate of --port (default {DEFAULT_BAUD})")
    run.add_argument("--link-timeout", type=_seconds, metavar="SECONDS",
                     help="seconds to wait for each reply on --port before retrying "
                          "(default 0.1; more for a simulated board)")
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser(
        "demo", help=f"run a shipped demo: speech MLP, video CNN or speech LSTM (default "
                     f"backend: {DEFAULT_BACKEND['demo']})",
        description="Run a shipped demo on hardware sized for its model, with and without "
                    "reuse, and write the design and a report: speech, an MLP classifying "
                    "spoken words in 10 ms frames of a held-out voice; video, a CNN "
                    "estimating the traffic density in a static-camera video; lstm, an LSTM "
                    "classifying the same speech one frame per time step (on the golden "
                    "model: the gateware does not have recurrent layers yet).")
    demo.add_argument("--workload", choices=WORKLOADS, default="speech",
                      help="which demo (default: %(default)s)")
    demo.add_argument("--config", help="hardware configuration (TOML, [accelerator]); "
                                       "default: sized for the model")
    demo.add_argument("--backend", type=_demo_backend,
                      metavar="{" + ",".join(SIMULATION_BACKENDS) + "}",
                      help=f"simulator to run on (default: {DEFAULT_BACKEND['demo']}; golden "
                           "for lstm)")
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
            BoardBuildError, BoardMismatchError) as error:
        print(f"reuse-accel: hardware error: {error}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
