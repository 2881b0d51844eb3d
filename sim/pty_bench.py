"""cocotb bench: the UART-wrapped accelerator behind a pseudo-terminal (see :mod:`.pty`).

The top level is :class:`~reuse_accel.hw.link.UartAccelerator` (ports ``clk``, ``rst``,
``rx``, ``tx``, ``busy``, ``error``). The bench opens a pty, sets it raw, writes the slave's
path to the job's ``pty_file`` (atomically: the launcher waits for it) and bridges bytes:

- to the device: bytes the host writes to the pty are driven onto ``rx`` as 8N1 bits, each
  ``clocks_per_bit`` clock periods long (one simulator wake per bit);
- to the host: a falling edge on ``tx`` starts a byte, sampled in the middle of each bit, and
  the byte is written to the pty.

The pty is read without blocking, every byte time while the host is quiet; after a long quiet
spell the bench also sleeps up to a millisecond in ``select`` so an idle simulation does not
spin a core. Faults from the job (drop, flip, truncate at byte positions counted from 0 in
each direction over the whole session) are applied on the way; a summary of the bytes moved
and the faults applied goes to the job's ``summary`` file at the end.

The run ends when the job's ``stop_file`` appears, the launcher process (``parent_pid``) is
gone, or the pty reports an error.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import select
import time
import tty
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, First, Timer
from cocotb.utils import get_sim_steps

JOB_ENV = "REUSE_ACCEL_PTY_JOB"
CLOCK_PERIOD_NS = 10
RESET_EDGES = 3
QUIET_POLLS = 32            # polls without traffic before the bench sleeps between polls


def _parent_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Faults:
    """Faults of one direction, by byte position."""

    def __init__(self, faults: list[dict], direction: str):
        self.by_position = {fault["position"]: fault for fault in faults
                            if fault["direction"] == direction}
        self.position = 0
        self.applied: list[dict] = []

    def apply(self, byte: int) -> tuple[int | None, bool]:
        """The byte to pass on (None: dropped) and whether to truncate from here."""
        fault = self.by_position.get(self.position)
        self.position += 1
        if fault is None:
            return byte, False
        self.applied.append(fault)
        if fault["action"] == "flip":
            return byte ^ fault["mask"], False
        return None, fault["action"] == "truncate"


class PtyBridge:
    def __init__(self, dut, job: dict):
        self.dut = dut
        self.job = job
        self.cpb = int(job["clocks_per_bit"])
        self.period = get_sim_steps(CLOCK_PERIOD_NS, "ns")
        self.bit = self.cpb * self.period
        self.to_device = _Faults(job["faults"], "to_device")
        self.to_host = _Faults(job["faults"], "to_host")
        self.queue: collections.deque[int] = collections.deque()
        self.pending = bytearray()              # bytes for the host not yet written
        self.last_tx = 0                        # sim time of the last byte from the device
        self.stopping = False
        self.bytes_to_device = 0
        self.bytes_to_host = 0
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        path = Path(job["pty_file"])
        temporary = path.with_suffix(".tmp")
        temporary.write_text(os.ttyname(self.slave))
        temporary.replace(path)

    async def reset(self) -> None:
        dut = self.dut
        Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns", impl="gpi").start(start_high=False)
        dut.rst.value = 1
        dut.rx.value = 1
        await ClockCycles(dut.clk, RESET_EDGES + 1, rising=False)
        dut.rst.value = 0

    def _stop_requested(self) -> bool:
        return (Path(self.job["stop_file"]).exists()
                or not _parent_alive(int(self.job["parent_pid"])))

    def _flush(self) -> None:
        if not self.pending:
            return
        try:
            written = os.write(self.master, self.pending)
        except BlockingIOError:
            return
        except OSError:
            self.stopping = True
            return
        del self.pending[:written]

    def _read(self, wait: float) -> bytes:
        if wait:
            select.select([self.master], [], [], wait)
        try:
            return os.read(self.master, 4096)
        except BlockingIOError:
            return b""
        except OSError as error:
            if error.errno == errno.EIO:
                self.stopping = True
                return b""
            raise

    async def drive(self) -> None:
        """Bytes from the pty onto ``rx``."""
        dut = self.dut
        quiet = 0
        while not self.stopping:
            if self.queue:
                byte = self.queue.popleft()
                for level in [0] + [(byte >> n) & 1 for n in range(8)] + [1]:
                    dut.rx.value = level
                    await Timer(self.bit, "step")
                quiet = 0
                continue
            self._flush()
            tx_quiet = get_sim_time("step") - self.last_tx > 20 * 10 * self.bit
            data = self._read(0.001 if quiet > QUIET_POLLS and tx_quiet else 0.0)
            if data:
                truncating = False
                for byte in data:
                    self.bytes_to_device += 1
                    byte, truncate = self.to_device.apply(byte)
                    truncating = truncating or truncate
                    if byte is not None and not truncating:
                        self.queue.append(byte)
                continue
            quiet += 1
            if quiet % QUIET_POLLS == 0 and self._stop_requested():
                self.stopping = True
                break
            await Timer(10 * self.bit, "step")

    async def monitor(self) -> None:
        """Bytes from ``tx`` to the pty."""
        dut = self.dut
        falling = dut.tx.falling_edge
        # Mid-bit, half a clock period off the edges at which tx changes.
        first = (self.cpb // 2) * self.period + self.period // 2
        truncating = False
        while True:
            if truncating:
                # Drop bytes until the device pauses for two byte times.
                fired = await First(falling, Timer(20 * self.bit, "step"))
                if fired is not falling:
                    truncating = False
                    await falling
            else:
                await falling
            await Timer(first, "step")
            if dut.tx.value:
                continue                                  # not a start bit
            byte = 0
            for n in range(8):
                await Timer(self.bit, "step")
                byte |= int(dut.tx.value) << n
            await Timer(self.bit, "step")
            if not dut.tx.value:
                continue                                  # framing error: the device's bug
            self.last_tx = get_sim_time("step")
            self.bytes_to_host += 1
            byte, truncate = self.to_host.apply(byte)
            truncating = truncating or truncate
            if byte is not None and not truncating:
                self.pending.append(byte)
                self._flush()

    def summary(self) -> dict:
        return {
            "bytes_to_device": self.bytes_to_device,
            "bytes_to_host": self.bytes_to_host,
            "applied": self.to_device.applied + self.to_host.applied,
            "error": int(self.dut.error.value),
        }

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


@cocotb.test()
async def serve_pty(dut):
    """Serve the pty until the launcher stops the run."""
    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    bridge = PtyBridge(dut, job)
    started = time.perf_counter()
    try:
        await bridge.reset()
        cocotb.start_soon(bridge.monitor())
        await bridge.drive()
    finally:
        summary = bridge.summary()
        summary["seconds"] = time.perf_counter() - started
        summary["simulated_ns"] = get_sim_time("ns")
        Path(job["summary"]).write_text(json.dumps(summary))
        bridge.close()
