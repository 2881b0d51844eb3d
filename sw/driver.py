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

Example
-------
>>> network = FloatNetwork.load("model.npz")
>>> compiled = compile_model(network, AccelConfig(), calibration=frames)
>>> run = Driver(compiled, backend="verilator").run(frames)
>>> run.outputs          # (T, outputs) floats as the accelerator computed them
>>> run.frames[3].changed_inputs
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from reuse_accel.sim.model import FrameResult, GoldenModel

from .commands import Batch, split_responses
from .compiler import CompiledModel

__all__ = ["BACKENDS", "Driver", "Run", "make_transport"]

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


@dataclass
class Run:
    """Results of one pass over a sequence of frames."""

    compiled: CompiledModel
    inputs: np.ndarray              # (T, inputs) float frames
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
    transport_options
        Passed to the RTL backend's transport (e.g. ``stall_input`` for random backpressure).
    """

    def __init__(self, compiled: CompiledModel, backend: str = "golden", **transport_options):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if backend == "golden" and transport_options:
            raise ValueError(
                f"the golden backend has no transport; options {sorted(transport_options)} "
                "apply to RTL backends only")
        self.compiled = compiled
        self.backend = backend
        self.transport = None if backend == "golden" else \
            make_transport(backend, compiled.config, **transport_options)
        self.last_exchange = None

    def prepare(self) -> float:
        """Build the backend's simulator if it needs one; returns the seconds it took."""
        build = getattr(self.transport, "build", None)
        if build is None:
            return 0.0
        started = time.perf_counter()
        build()
        return time.perf_counter() - started

    def run(self, frames: np.ndarray, *, baseline_too: bool = True) -> tuple[Run, Run | None]:
        """Run ``frames`` (T, inputs floats) as one sequence with reuse, and if
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
        batch = Batch(self.compiled.config)
        batch.load(layers)
        for mode in modes:
            batch.set_mode(baseline=mode)
            batch.begin_sequence()
            for frame in indices:
                batch.frame(frame, layers)
        exchange = self.transport.exchange(batch.words, len(batch.expected))
        self.last_exchange = exchange
        decoded = [result for result in batch.decode(
            split_responses(exchange.words, len(batch.expected))) if isinstance(
                result, FrameResult)]
        count = len(indices)
        return [decoded[n * count:(n + 1) * count] for n in range(len(modes))]
