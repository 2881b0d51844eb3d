"""Host driver: run compiled models on any backend behind one API.

Backends
--------
``golden``     the NumPy golden model (no RTL)
``amaranth``   the generated gateware in Amaranth's Python simulator (no external tools)
``verilator``  the generated Verilog in Verilator through cocotb
``icarus``     the generated Verilog in Icarus Verilog through cocotb
``serial``     a board (or the UART top simulated behind a pseudo-terminal) on a serial port,
               through :class:`~reuse_accel.sw.serial_link.SerialTransport` (``port=...``)

Every RTL backend speaks the command protocol through a transport; the golden backend runs the
same sequence of operations on :class:`~reuse_accel.sim.model.GoldenModel`. All return the same
:class:`~reuse_accel.sim.model.FrameResult` per frame, so results compare one to one.

A board runs on the configuration its bitstream was built with: :func:`read_board_config`
asks it (STATUS), and the serial backend checks, before it loads anything, that the compiled
model was compiled for exactly that configuration.

Example
-------
>>> network = Network.load("model.onnx")            # or "model.npz"
>>> config = size_config(network)                   # AccelConfig() raised to hold the model
>>> compiled = compile_model(network, config, calibration=frames)
>>> run, baseline = Driver(compiled, backend="verilator").run(frames)
>>> run.outputs          # (T, outputs) floats as the accelerator computed them
>>> run.frames[3].changed_inputs
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from reuse_accel.hw import protocol
from reuse_accel.hw.config import AccelConfig, ConfigError
from reuse_accel.hw.layers import KINDS as GATEWARE_KINDS
from reuse_accel.hw.layers.conv import conv_descriptor
from reuse_accel.sim.model import FrameResult, GoldenModel

from .commands import Batch, ProtocolError, split_responses
from .compiler import CompiledModel
from .network import InputError

__all__ = ["BACKENDS", "BoardMismatchError", "Driver", "Run", "check_gateware_kinds",
           "config_from_status", "describe_difference", "make_transport", "read_board_config"]

BACKENDS = ("golden", "amaranth", "verilator", "icarus", "serial")


def make_transport(backend: str, config, **options):
    """The word transport of an RTL backend."""
    if backend == "amaranth":
        from reuse_accel.sim.amaranth import AmaranthTransport
        return AmaranthTransport(config, **options)
    if backend in ("verilator", "icarus"):
        from reuse_accel.sim.cocotb.transport import CocotbTransport
        return CocotbTransport(config, simulator=backend, **options)
    if backend == "serial":
        from .serial_link import SerialTransport
        if "port" not in options:
            raise ValueError("the serial backend needs port=... (e.g. /dev/ttyUSB0)")
        return SerialTransport(config, **options)
    raise ValueError(
        f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")


class BoardMismatchError(RuntimeError):
    """The model was compiled for another configuration than the board's."""


def check_gateware_kinds(layers, fix: str) -> None:
    """Raise :class:`InputError` for a layer of a kind the gateware does not have (the golden
    model runs every kind), naming it; ``fix`` says what to do instead."""
    for number, layer in enumerate(layers):
        if layer.kind not in GATEWARE_KINDS:
            kinds = " and ".join(kind.name.lower() for kind in GATEWARE_KINDS)
            raise InputError(f"layer {number} ({layer.kind.name}) is of a kind the gateware "
                             f"does not have yet (it has {kinds} layers); {fix}")


def _check_gateware_layer(compiled: CompiledModel, number: int) -> None:
    """Raise :class:`InputError` if layer ``number`` of the model is a form the gateware does
    not run (the golden model runs every form)."""
    config, layer = compiled.config, compiled.layers[number]
    geometry = layer.geometry
    fix = "run the model with --backend golden"
    if geometry is not None:
        try:
            conv_descriptor(config, geometry)
        except ValueError as error:
            raise InputError(f"layer {number} cannot run on the gateware: {error}; {fix}") \
                from None


def config_from_status(status: dict) -> AccelConfig:
    """The :class:`AccelConfig` an accelerator was generated with, from its decoded STATUS
    response (:data:`reuse_accel.hw.protocol.STATUS_FIELDS`; flag bit 3 says reuse)."""
    if status.get("magic") != protocol.MAGIC:
        raise ProtocolError(
            f"the STATUS response has magic {status.get('magic', 0):#010x}, not "
            f"{protocol.MAGIC:#010x}: the device is not a reuse-accel accelerator")
    if status.get("version") != protocol.VERSION:
        raise ProtocolError(
            f"the accelerator speaks protocol version {status.get('version')}, this host "
            f"version {protocol.VERSION}: rebuild the bitstream with this version")
    names = [field.name for field in dataclasses.fields(AccelConfig) if field.name != "reuse"]
    try:
        return AccelConfig(**{name: status[name] for name in names},
                           reuse=bool(status["flags"] & protocol.STATUS_FLAG_REUSE_BUILD))
    except ConfigError as error:
        raise ProtocolError(f"the accelerator reports parameters that are not a valid "
                            f"configuration: {error}") from None


def read_board_config(transport) -> AccelConfig:
    """Ask the accelerator behind ``transport`` for its configuration (one STATUS command).
    The transport's own ``config`` need only have the right ``stream_width``."""
    batch = Batch(transport.config)
    batch.status()
    exchange = transport.exchange(batch.words, 1)
    return config_from_status(batch.decode(split_responses(exchange.words, 1))[0])


def describe_difference(want: AccelConfig, have: AccelConfig) -> str:
    """``name = a (not b)`` for every parameter in which ``have`` differs from ``want``, values
    written as in a configuration file."""
    def text(value) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)
    return ", ".join(f"{field.name} = {text(getattr(have, field.name))} (not "
                     f"{text(getattr(want, field.name))})"
                     for field in dataclasses.fields(AccelConfig)
                     if getattr(want, field.name) != getattr(have, field.name))


@dataclass
class Run:
    """Results of one pass over a sequence of frames."""

    compiled: CompiledModel
    inputs: np.ndarray              # (T, *input_shape) float frames
    frames: list[FrameResult]
    baseline: bool

    @property
    def outputs(self) -> np.ndarray:
        """(T, outputs) floats."""
        return self.compiled.to_float(np.stack([frame.outputs for frame in self.frames]))

    @property
    def cycles(self) -> int:
        return int(sum(frame.cycles for frame in self.frames))


class Driver:
    """Runs a compiled model on a backend.

    Parameters
    ----------
    compiled : CompiledModel
    backend : str
        One of :data:`BACKENDS`.
    transport : optional
        A transport already made for this backend (e.g. the one :func:`read_board_config`
        used); otherwise the driver makes one.
    transport_options
        Passed to the RTL backend's transport (e.g. ``stall_input`` for random backpressure).
    """

    def __init__(self, compiled: CompiledModel, backend: str = "golden", *, transport=None,
                 **transport_options):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if backend == "golden" and (transport_options or transport is not None):
            raise ValueError(
                f"the golden backend has no transport; options "
                f"{sorted(transport_options) or ['transport']} apply to RTL backends only")
        if transport is not None and transport_options:
            raise ValueError("give either a transport or options to make one, not both")
        if backend != "golden":
            check_gateware_kinds(compiled.layers, "run the model with --backend golden")
            for number in range(len(compiled.layers)):
                _check_gateware_layer(compiled, number)
        self.compiled = compiled
        self.backend = backend
        if transport is None and backend != "golden":
            transport = make_transport(backend, compiled.config, **transport_options)
        self.transport = transport
        self.last_exchange = None
        self._board_checked = False

    def check_board(self) -> AccelConfig:
        """Serial backend: read the board's configuration (STATUS) and check that the model
        was compiled for it; :class:`BoardMismatchError` names the differences."""
        board = read_board_config(self.transport)
        if board != self.compiled.config:
            port = getattr(self.transport, "port", "the serial port")
            raise BoardMismatchError(
                f"the accelerator on {port} was built with "
                f"{describe_difference(self.compiled.config, board)}: compile the model for "
                "the board's configuration (read_board_config)")
        self.transport.config = board
        self._board_checked = True
        return board

    def prepare(self) -> float:
        """Build the backend's simulator if it needs one; returns the seconds it took."""
        build = getattr(self.transport, "build", None)
        if build is None:
            return 0.0
        started = time.perf_counter()
        build()
        return time.perf_counter() - started

    def run(self, frames: np.ndarray, *, baseline_too: bool = True) -> tuple[Run, Run | None]:
        """Run ``frames`` ((T, *input_shape) floats) as one sequence with reuse, and if
        ``baseline_too`` again in baseline mode (every input counted as changed).

        Hardware generated without reuse runs once, in baseline mode; that run stands for both.
        """
        indices, outside = self.compiled.quantize_frames(frames)
        if not self.compiled.config.reuse:
            results = self._execute(indices, (True,))
            run = Run(self.compiled, np.asarray(frames, np.float64),
                      self._host_out_of_range(results[0], outside), True)
            return run, (run if baseline_too else None)
        modes = (False, True) if baseline_too else (False,)
        results = self._execute(indices, modes)
        runs = [Run(self.compiled, np.asarray(frames, np.float64),
                    self._host_out_of_range(results_, outside), mode)
                for mode, results_ in zip(modes, results)]
        return runs[0], (runs[1] if baseline_too else None)

    @staticmethod
    def _host_out_of_range(results: list[FrameResult], outside) -> list[FrameResult]:
        """Layer 0 is quantized on the host, not in the hardware: its out-of-range count is
        the host's."""
        for frame, count in zip(results, outside):
            frame.out_of_range = frame.out_of_range.copy()
            frame.out_of_range[0] = count
        return results

    def _execute(self, indices: np.ndarray, modes) -> list[list[FrameResult]]:
        layers = self.compiled.layers
        if self.transport is None:
            model = GoldenModel(self.compiled.config, layers)
            results = []
            for mode in modes:
                model.set_mode(baseline=mode)
                model.begin_sequence()
                results.append(model.run(indices))
            return results
        if self.backend == "serial" and not self._board_checked:
            self.check_board()
        batch = Batch(self.compiled.config)
        batch.load(layers)
        for mode in modes:
            batch.set_mode(baseline=mode)
            batch.begin_sequence()
            for frame in indices:
                batch.frame(frame, layers)
        exchange = self.transport.exchange(batch.words, len(batch.expected))
        self.last_exchange = exchange
        exchange.check_lasts()
        decoded = [result for result in batch.decode(
            split_responses(exchange.words, len(batch.expected))) if isinstance(
                result, FrameResult)]
        count = len(indices)
        return [decoded[n * count:(n + 1) * count] for n in range(len(modes))]
