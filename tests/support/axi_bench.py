"""A cocotb testbench driving the accelerator's AXI4-Stream ports with cocotbext-axi.

Not a pytest module: :meth:`CocotbTransport.run_module` runs it in the simulator. The job
(JSON, path in ``REUSE_ACCEL_COCOTB_JOB``) holds the commands, each a list of words sent as one
``AxiStreamFrame`` (``tlast`` on its last word, which the accelerator ignores), the number of
responses, the stream width, and the seeds of the random pauses of the source and the sink.
The bench receives frames with an ``AxiStreamSink`` (a frame ends at ``tlast``) and watches the
same port with an ``AxiStreamMonitor``, and writes both as lists of words.
"""

import itertools
import json
import os
import random
import warnings
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout
from cocotbext.axi import (
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamMonitor,
    AxiStreamSink,
    AxiStreamSource,
)

JOB_ENV = "REUSE_ACCEL_COCOTB_JOB"

# cocotbext-axi 0.1.28 still calls cocotb 1.x handle methods (setimmediatevalue), which cocotb
# 2.x deprecates; the suite turns warnings into errors. Silence those raised from its modules
# only: everything of ours stays strict.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi\.")


def pauses(seed: int, rate: float):
    """An endless pause pattern: each cycle paused with probability ``rate``."""
    rng = random.Random(seed)
    return itertools.cycle([rng.random() < rate for _ in range(4099)])


def to_words(frame: AxiStreamFrame, word_bytes: int) -> list[int]:
    data = bytes(frame.tdata)
    return [int.from_bytes(data[n:n + word_bytes], "little")
            for n in range(0, len(data), word_bytes)]


@cocotb.test()
async def axi_stream_exchange(dut):
    """Send the job's commands as frames, collect its responses as frames."""
    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    word_bytes = job["stream_width"] // 8
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
    monitor = AxiStreamMonitor(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
    source.set_pause_generator(pauses(job["seed"], job["source_pause"]))
    sink.set_pause_generator(pauses(job["seed"] + 1, job["sink_pause"]))
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    for command in job["commands"]:
        data = b"".join(word.to_bytes(word_bytes, "little") for word in command)
        await source.send(AxiStreamFrame(data))
    received, watched = [], []
    for _ in range(job["responses"]):
        frame = await with_timeout(sink.recv(), job["timeout_us"], "us")
        received.append(to_words(frame, word_bytes))
    for _ in range(job["responses"]):
        watched.append(to_words(await monitor.recv(), word_bytes))
    await ClockCycles(dut.clk, 20)
    Path(job["result"]).write_text(json.dumps(
        {"error": None, "frames": received, "monitored": watched,
         "left_over": sink.count()}))
