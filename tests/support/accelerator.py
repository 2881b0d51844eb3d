"""Command exchanges with the accelerator top in Amaranth's simulator, decoded per command, and
the comparisons the tests of the top (``tests/hw/test_top.py``, ``tests/hw/test_no_reuse.py``)
make against :class:`GoldenModel`."""

from __future__ import annotations

import gc
import warnings

import numpy as np
from amaranth.hdl import UnusedElaboratable

from reuse_accel.hw import protocol
from reuse_accel.sim.amaranth import AmaranthTransport
from reuse_accel.sim.model import FrameResult
from reuse_accel.sw.commands import Batch, DeviceError, split_responses

COUNTERS = ("layer_cycles", "changed_inputs", "out_of_range", "weight_rows", "macs",
            "saturated_outputs")


def simulate(batch: Batch, **transport_options):
    """Run the batch through the simulated accelerator.

    A design that cannot be elaborated or simulated fails the test here, after collecting its
    half-built modules: their "created but never used" warnings would otherwise surface (as
    errors) in whichever test runs next.
    """
    # No command keeps the output idle for more than a few hundred cycles: a hang fails fast.
    transport_options.setdefault("timeout", 3000)
    try:
        return AmaranthTransport(batch.config, **transport_options).exchange(
            batch.words, len(batch.expected))
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        gc.collect()
    raise AssertionError(f"the accelerator could not be simulated: {failure}")


def run(batch: Batch, **transport_options) -> list:
    """Send the batch; return one decoded result per command, or the DeviceError it raised."""
    exchange = simulate(batch, **transport_options)
    responses = split_responses(exchange.words, len(batch.expected))
    results = []
    for expected, response in zip(batch.expected, responses):
        single = Batch(batch.config, expected=[expected])
        try:
            results.append(single.decode([response])[0])
        except DeviceError as error:
            results.append(error)
    return results


def frames_of(results: list) -> list[FrameResult]:
    return [result for result in results if isinstance(result, FrameResult)]


def statuses_of(results: list) -> list[dict]:
    return [result for result in results if isinstance(result, dict)]


def errors_of(results: list) -> list[DeviceError]:
    return [result for result in results if isinstance(result, DeviceError)]


def assert_frame_equal(got: FrameResult, want: FrameResult, label: str) -> None:
    assert got.cycles == want.cycles, f"{label}: cycles {got.cycles} != {want.cycles}"
    np.testing.assert_array_equal(got.outputs, want.outputs, err_msg=f"{label}: outputs")
    for name in COUNTERS:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name),
                                      err_msg=f"{label}: {name}")


def no_device_errors(results: list) -> None:
    assert not errors_of(results), [str(error) for error in errors_of(results)]


def command_words(words: list[int]) -> list[list[int]]:
    """Cut a command word stream into its commands (header and payload), by the headers'
    lengths."""
    commands, position = [], 0
    while position < len(words):
        length = protocol.parse_header(words[position])[2]
        commands.append(words[position:position + 1 + length])
        position += 1 + length
    return commands


def split_commands(words: list[int]) -> list[tuple]:
    """(opcode, length, first two control fields) of each command in a word stream."""
    return [(protocol.parse_header(command[0])[0], len(command) - 1,
             [word & 0xFFFFFFFF for word in command[1:3]]) for command in command_words(words)]
