"""The UART-wrapped accelerator in RTL simulation behind a pseudo-terminal.

:class:`PtySimulation` builds :class:`~reuse_accel.hw.link.UartAccelerator` with Verilator (or
Icarus) through cocotb, once per configuration and link parameters (cached like
:class:`~reuse_accel.sim.cocotb.transport.CocotbTransport` builds, in the per-user cache or
``$REUSE_ACCEL_BUILD``), starts the simulation in a subprocess running the bench of
:mod:`.pty_bench`, waits for the pty it opens and yields the pty's path; any serial program,
:class:`~reuse_accel.sw.serial_link.SerialTransport` included, then talks to the simulated
hardware as to a board. Leaving the ``with`` block stops the simulation (a stop file, then
SIGTERM and SIGKILL to its process group if it does not end) and reads its summary.

Faults (:class:`Fault`) make the line lossy at chosen byte positions, counted from 0 in each
direction over the whole session: ``drop`` a byte, ``flip`` bits of it (``mask``), or
``truncate`` (drop it and the rest of the burst: the rest of what the host wrote, or the rest
of the reply up to a pause of two byte times).

By hand::

    python -m reuse_accel.sim.pty --clocks-per-bit 8     # prints the pty path; Ctrl-C ends
    python -m reuse_accel.sim.pty --config hw.toml --fault to_host:40:flip:0x04
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.link import check_link_options

from .cocotb.transport import (
    TIMESCALE,
    TOPLEVEL,
    CocotbTransport,
    SimulationError,
    _tail,
    _tool_environment,
    build_key,
    verilator_ports,
)
from .pty_bench import JOB_ENV

__all__ = ["Fault", "PtySimulation", "UartBuild"]

BENCH_MODULE = "reuse_accel.sim.pty_bench"
DIRECTIONS = ("to_device", "to_host")
IDLE_BYTES = 8          # the bench never pauses mid-request for more than ~2 byte times
ACTIONS = ("drop", "flip", "truncate")


@dataclass(frozen=True)
class Fault:
    """A line fault at byte ``position`` (from 0) of one direction."""

    direction: str
    position: int
    action: str = "drop"
    mask: int = 0x01            # bits flipped by ``flip``

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"fault direction must be one of {', '.join(DIRECTIONS)}, not "
                             f"{self.direction!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"fault action must be one of {', '.join(ACTIONS)}, not "
                             f"{self.action!r}")
        if not isinstance(self.position, int) or self.position < 0:
            raise ValueError(f"fault position must be an integer >= 0, not {self.position!r}")
        if self.action == "flip" and not 1 <= self.mask <= 0xFF:
            raise ValueError(f"a flip needs a mask in 1..255, not {self.mask!r}")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``direction:position:action[:mask]``, e.g. ``to_host:40:flip:0x04``."""
        parts = text.split(":")
        if not 3 <= len(parts) <= 4:
            raise ValueError(f"a fault is direction:position:action[:mask], not {text!r}")
        mask = int(parts[3], 0) if len(parts) == 4 else 0x01
        return cls(parts[0], int(parts[1]), parts[2], mask)


class UartBuild(CocotbTransport):
    """Build (only) of the UART-wrapped accelerator; see :class:`CocotbTransport` for caching.

    The Verilog's module keeps the name ``reuse_accel`` so the build machinery is shared.
    """

    verilator_ports = verilator_ports(("clk", "rst", "rx", "tx", "busy", "error"))

    def __init__(self, config: AccelConfig, simulator: str = "verilator", *,
                 clocks_per_bit: int, chunk: int, fifo_depth: int,
                 idle_bytes: int = IDLE_BYTES, build_dir=None):
        super().__init__(config, simulator, build_dir=build_dir)
        # Fail here, with the link's own messages, rather than in the build.
        check_link_options(config.stream_width, clocks_per_bit=clocks_per_bit, chunk=chunk,
                           fifo_depth=fifo_depth, idle_bytes=idle_bytes)
        self.link_options = {"clocks_per_bit": clocks_per_bit, "chunk": chunk,
                             "fifo_depth": fifo_depth, "idle_bytes": idle_bytes}
        key = build_key(config, extra=self._build_key())
        self.directory = self.directory.parent / f"uart-{simulator}-{key}"

    def _build_key(self) -> str:
        return json.dumps(self.link_options, sort_keys=True)

    def _generate(self) -> str:
        from reuse_accel.hw.link import generate_uart_verilog

        options = dict(self.link_options)
        return generate_uart_verilog(self.config, options.pop("clocks_per_bit"),
                                     name=TOPLEVEL, **options)

    def exchange(self, words, responses):
        raise TypeError("UartBuild only builds; talk to the simulation through PtySimulation")


class PtySimulation:
    """Context manager: the UART-wrapped accelerator simulated behind a pty; yields its path.

    Parameters
    ----------
    config : AccelConfig
    clocks_per_bit : int
        Bit time in clock cycles (small values simulate faster; at least 4).
    chunk, fifo_depth, idle_bytes
        Link parameters (:class:`~reuse_accel.hw.link.Link`).
    faults : sequence of Fault
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    build_dir : path, optional
    startup_timeout : float
        Seconds to wait for the pty (the build comes before and is not counted).

    After the block, :attr:`summary` holds the bench's counts (bytes each way, faults applied,
    the ``error`` flag, wall and simulated time) and :attr:`log` the simulator's log.
    """

    def __init__(self, config: AccelConfig, *, clocks_per_bit: int = 8, chunk: int = 16,
                 fifo_depth: int = 64, idle_bytes: int = IDLE_BYTES, faults=(),
                 simulator: str = "verilator", build_dir=None, startup_timeout: float = 30.0):
        self.faults = [fault if isinstance(fault, Fault) else Fault(*fault) for fault in faults]
        self.build = UartBuild(config, simulator, clocks_per_bit=clocks_per_bit, chunk=chunk,
                               fifo_depth=fifo_depth, idle_bytes=idle_bytes,
                               build_dir=build_dir)
        self.clocks_per_bit = clocks_per_bit
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.directory: Path | None = None
        self.log: Path | None = None
        self.summary: dict | None = None
        self.path: str | None = None

    def __enter__(self) -> str:
        self.build.build()
        runs = self.build.directory / "runs"
        runs.mkdir(exist_ok=True)
        self.directory = Path(tempfile.mkdtemp(prefix="pty-", dir=runs))
        self.log = self.directory / "sim.log"
        job = {
            "clocks_per_bit": self.clocks_per_bit,
            "faults": [asdict(fault) for fault in self.faults],
            "pty_file": str(self.directory / "pty"),
            "stop_file": str(self.directory / "stop"),
            "summary": str(self.directory / "summary.json"),
            "parent_pid": os.getpid(),
            "simulator": self.build.simulator,
            "sim_dir": str(self.build.sim_dir),
            "run_dir": str(self.directory),
        }
        job_path = self.directory / "job.json"
        job_path.write_text(json.dumps(job))
        with open(self.directory / "launcher.log", "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reuse_accel.sim.pty", "--serve", str(job_path)],
                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        pty_file = Path(job["pty_file"])
        deadline = time.monotonic() + self.startup_timeout
        try:
            while not pty_file.exists():
                if self.process.poll() is not None:
                    raise SimulationError(
                        f"the {self.build.simulator} simulation ended before opening its pty; "
                        f"log {self.log}:\n{_tail(self.log)}\n{_tail(self._launcher_log)}")
                if time.monotonic() > deadline:
                    raise SimulationError(
                        f"the {self.build.simulator} simulation opened no pty within "
                        f"{self.startup_timeout:g} s; log {self.log}:\n{_tail(self.log)}")
                time.sleep(0.02)
            self.path = pty_file.read_text()
        except BaseException:
            self._stop()
            raise
        return self.path

    @property
    def _launcher_log(self) -> Path:
        return self.directory / "launcher.log"

    def __exit__(self, *exc) -> None:
        self._stop()

    def _stop(self) -> None:
        process = self.process
        if process is None:
            return
        Path(self.directory / "stop").touch()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(process.pid, sig)     # the launcher and its simulator
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.process = None
        try:
            self.summary = json.loads((self.directory / "summary.json").read_text())
        except (OSError, ValueError):
            self.summary = None


def _serve(job_path: str) -> int:
    """Run the built simulation with the pty bench (in the launcher's subprocess)."""
    from cocotb_tools.check_results import get_results

    job = json.loads(Path(job_path).read_text())
    run_dir = Path(job["run_dir"])
    build = CocotbTransport.__new__(CocotbTransport)     # only for its runner
    build.simulator = job["simulator"]
    runner = build._runner()
    with _tool_environment(job["simulator"]):
        runner.test(
            test_module=BENCH_MODULE,
            hdl_toplevel=TOPLEVEL,
            hdl_toplevel_lang="verilog",
            build_dir=job["sim_dir"],
            test_dir=run_dir,
            results_xml=str(run_dir / "results.xml"),
            extra_env={JOB_ENV: job_path},
            timescale=TIMESCALE,
            log_file=run_dir / "sim.log",
        )
    tests, failed = get_results(run_dir / "results.xml")
    return 0 if tests == 1 and not failed else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reuse_accel.sim.pty",
        description="Simulate the UART-wrapped accelerator behind a pseudo-terminal.")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--config", help="hardware config (TOML); default AccelConfig()")
    parser.add_argument("--clocks-per-bit", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--fifo-depth", type=int, default=64)
    parser.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    parser.add_argument("--fault", action="append", default=[], type=Fault.parse,
                        help="direction:position:action[:mask], e.g. to_host:40:flip:0x04")
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args.serve)
    config = AccelConfig.from_toml(args.config) if args.config else AccelConfig()
    simulation = PtySimulation(config, clocks_per_bit=args.clocks_per_bit, chunk=args.chunk,
                               fifo_depth=args.fifo_depth, faults=args.fault,
                               simulator=args.simulator, startup_timeout=120)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)       # `kill` ends it as cleanly as Ctrl-C
    with simulation as path:
        print(f"{path}  (clocks_per_bit {args.clocks_per_bit}; Ctrl-C ends)", flush=True)
        try:
            while simulation.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    print(json.dumps(simulation.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
