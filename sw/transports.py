"""The word transport interface: how a batch of command words reaches an accelerator and comes
back.

A transport has ``exchange(words, responses)``: it sends the command words, waits for
``responses`` complete responses and returns an :class:`Exchange`, the response words and, for
simulated hardware, the cycle of every transfer (used to check the cycle model end to end).
:class:`ResponseCounter` counts responses as their words arrive; :func:`check_host_settings`
validates the settings every simulated transport shares.

The transports: :class:`~reuse_accel.sw.serial_link.SerialTransport` (a board on a serial port)
here in ``sw``; the simulator harnesses :class:`~reuse_accel.sim.amaranth.AmaranthTransport`
and :class:`~reuse_accel.sim.cocotb.transport.CocotbTransport` in ``sim``, which import this
module (it imports nothing of ``sim``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reuse_accel.hw import protocol
from reuse_accel.hw.config import AccelConfig

__all__ = ["Exchange", "ResponseCounter", "check_host_settings"]


@dataclass
class Exchange:
    """What came back from one batch."""

    words: list[int]
    input_cycles: list[int] = field(default_factory=list)   # cycle each command word moved
    output_cycles: list[int] = field(default_factory=list)  # cycle each response word moved
    cycles: int = 0                                          # simulated cycles in all
    lasts: list[bool] | None = None   # the stream's last flag of each response word, where
                                      # the transport sees it (simulated AXI4-Stream ports)

    def check_lasts(self) -> None:
        """Check that ``last`` marks exactly the final word of every response; raise
        :class:`~reuse_accel.sw.commands.ProtocolError` otherwise."""
        if self.lasts is None:
            return
        from .commands import ProtocolError

        expected = []
        left = 0
        for word in self.words:
            left = left - 1 if left else protocol.parse_header(word)[2]
            expected.append(left == 0)
        if len(self.lasts) != len(expected):
            raise ProtocolError(f"{len(self.lasts)} last flags for {len(expected)} words")
        for position, (got, want) in enumerate(zip(self.lasts, expected)):
            if got != want:
                raise ProtocolError(
                    f"m_axis_tlast is {int(got)} on response word {position}, which "
                    f"{'ends' if want else 'does not end'} its response")


class ResponseCounter:
    """Counts complete responses in a response word stream as its words arrive.

    ``remaining``: responses not yet complete; ``payload_left``: payload words of the current
    response still to come (0 when the next word is a header).
    """

    def __init__(self, responses: int):
        self.remaining = responses
        self.payload_left = 0

    def feed(self, word: int) -> None:
        if self.payload_left:
            self.payload_left -= 1
        else:
            self.payload_left = protocol.parse_header(word)[2]
        if self.payload_left == 0:
            self.remaining -= 1

    @property
    def words_needed(self) -> int:
        """Fewest words still to come: the current payload and a header per response left."""
        return self.payload_left + self.remaining - (1 if self.payload_left else 0)


def check_host_settings(config, stall_input: float, stall_output: float, timeout: int) -> None:
    """Validate the settings every simulated transport shares."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    for name, value in (("stall_input", stall_input), ("stall_output", stall_output)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), not {value!r}")
    if not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout must be a positive integer, not {timeout!r}")
