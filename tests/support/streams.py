"""Drive ``amaranth.lib.stream`` interfaces from Amaranth testbenches.

The stream rules (``docs/stdlib/stream.rst``): a payload transfers at a clock edge where
``valid`` and ``ready`` are both high; once a source raises ``valid``, ``valid`` and ``payload``
hold until that transfer; a source never waits for ``ready`` before raising ``valid``.

Two ways to drive a stream, after Glasgow's test helpers and amaranth's stream docs:

- :func:`stream_put` and :func:`stream_get`: one transfer each, awaited in a testbench. For
  tests that only care about the payloads and their order.
- :class:`StreamSource` and :class:`StreamSink`, stepped one clock edge at a time by a
  :class:`Lockstep`: for tests that assert timing. The source offers its payloads in order and
  pauses as an ``offer`` pattern says; the sink applies backpressure as a ``ready`` pattern
  says; both record the cycle of every transfer, and the sink checks the stream rule on what
  it receives. :func:`random_pattern` makes seeded random patterns.

Cycles are numbered by the :class:`Lockstep`: cycle ``n`` is the ``n``-th clock edge it waits
for, counting from its ``cycle`` argument. "A transfer in cycle ``n``" means ``valid`` and
``ready`` were both high at that edge. Every model drives its signals for cycle ``n`` right
after edge ``n - 1``, so a testbench that reads a combinational output between two
:meth:`Lockstep.tick` calls sees it as the next edge will.

Example::

    source = StreamSource(dut.i, rows, offer=random_pattern(seed, 0.5))
    sink = StreamSink(dut.o, ready=random_pattern(seed + 1, 0.7))
    steps = Lockstep(source, sink)
    while len(sink.transfers) < len(rows):
        await steps.tick(ctx)
    assert source.transfers[0] == 0 and sink.transfers[0][0] == latency
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Lockstep", "StreamSink", "StreamSource", "always", "random_pattern", "stream_get",
           "stream_put"]

Pattern = Callable[[int], bool]
"""Whether something may happen in a cycle, given the cycle's number."""


def always(cycle: int) -> bool:
    """The pattern that never pauses."""
    return True


def random_pattern(seed: int, rate: float) -> Pattern:
    """A pattern that is true in a fraction ``rate`` of the cycles, at random.

    Cycle ``n``'s value is the ``n``-th draw ``random.Random(seed).random() < rate``, whatever
    order the cycles are asked in, so a test replays exactly from its seed.
    """
    rng = random.Random(seed)
    bits: list[bool] = []

    def pattern(cycle: int) -> bool:
        while len(bits) <= cycle:
            bits.append(rng.random() < rate)
        return bits[cycle]

    return pattern


async def stream_put(ctx, stream, payload) -> None:
    """Offer ``payload`` on ``stream`` until it transfers; ``valid`` is low afterwards.

    Returns after the clock edge of the transfer. Called again at once, the next payload is
    offered in the very next cycle, so consecutive calls stream at full rate.
    """
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Take one payload from ``stream`` (``ready`` high until it transfers, low afterwards).

    Returns the payload after the clock edge of the transfer. Called again at once, ``ready``
    stays high across the edge, so consecutive calls never stall the source.
    """
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def _bits(payload) -> int:
    """A sampled payload as an integer (views sample as ``data.Const``)."""
    return payload.as_value().value if hasattr(payload, "as_value") else int(payload)


class StreamSource:
    """Offers ``payloads`` on ``stream`` in order, one per transfer.

    Parameters
    ----------
    stream : stream.Interface
        The design's input stream: the source drives ``valid`` and ``payload``.
    payloads : iterable
        Values for ``payload`` (whatever ``ctx.set`` takes for its shape).
    offer : callable
        ``offer(cycle)``: whether the source may raise ``valid`` in that cycle. A payload once
        offered holds until it transfers, whatever ``offer`` says next (the stream rule).

    Attributes
    ----------
    transfers : list of int
        The cycle of every transfer, in order.
    """

    def __init__(self, stream, payloads, *, offer: Pattern = always):
        self.stream = stream
        self.payloads = list(payloads)
        self.offer = offer
        self.transfers: list[int] = []
        self._holding = False

    @property
    def done(self) -> bool:
        """Every payload has transferred."""
        return len(self.transfers) == len(self.payloads)

    def drive(self, ctx, cycle: int) -> None:
        self._holding = not self.done and (self._holding or bool(self.offer(cycle)))
        ctx.set(self.stream.valid, self._holding)
        if self._holding:
            ctx.set(self.stream.payload, self.payloads[len(self.transfers)])

    def signals(self) -> tuple:
        return self.stream.valid, self.stream.ready

    def record(self, cycle: int, valid, ready) -> None:
        if valid and ready:
            self.transfers.append(cycle)
            self._holding = False


class StreamSink:
    """Takes payloads from ``stream``, with backpressure, and checks the stream rule.

    Parameters
    ----------
    stream : stream.Interface
        The design's output stream: the sink drives ``ready``, unless the stream is
        ``always_ready`` (then it takes every payload, and ``ready`` must be left as ``always``).
    ready : callable
        ``ready(cycle)``: the value of ``ready`` in that cycle.

    Attributes
    ----------
    transfers : list of (int, payload)
        The cycle and the payload of every transfer, in order.
    offers : list of int
        The cycle each payload was first offered (``valid`` high), one per payload.
    trace : list of (valid, ready, payload)
        What every cycle's edge saw.

    A payload offered and not taken must be offered again, unchanged, in the next cycle the
    sink records; anything else fails the test where it happens.
    """

    def __init__(self, stream, *, ready: Pattern = always):
        if stream.signature.always_ready and ready is not always:
            raise ValueError("an always_ready stream cannot be given backpressure")
        self.stream = stream
        self.ready = ready
        self.transfers: list[tuple] = []
        self.offers: list[int] = []
        self.trace: list[tuple] = []
        self._waiting = None     # the payload offered and not taken, as an integer

    def drive(self, ctx, cycle: int) -> None:
        if not self.stream.signature.always_ready:
            ctx.set(self.stream.ready, bool(self.ready(cycle)))

    def signals(self) -> tuple:
        return self.stream.valid, self.stream.ready, self.stream.payload

    def record(self, cycle: int, valid, ready, payload) -> None:
        self.trace.append((valid, ready, payload))
        if self._waiting is not None:
            assert valid and _bits(payload) == self._waiting, (
                f"cycle {cycle}: a payload offered and not taken was withdrawn or changed "
                f"(valid {valid}, payload {_bits(payload):#x}, was {self._waiting:#x})")
        elif valid:
            self.offers.append(cycle)
        if valid and ready:
            self.transfers.append((cycle, payload))
        self._waiting = _bits(payload) if valid and not ready else None


class Lockstep:
    """Steps stream models (:class:`StreamSource`, :class:`StreamSink`) one clock edge at a
    time, numbering the cycles.

    Parameters
    ----------
    *models
        The sources and sinks to drive and record.
    cycle : int
        The number of the next clock edge: ``0``, or where an earlier phase of the test left
        its count.

    Attributes
    ----------
    cycle : int
        The number of the next clock edge.
    """

    def __init__(self, *models, cycle: int = 0):
        self.models = models
        self.cycle = cycle
        self._driven = None

    def drive(self, ctx) -> None:
        """Set every model's signals for the next edge (done by :meth:`tick` too; call it
        to read a combinational output before the first tick)."""
        if self._driven != self.cycle:
            for model in self.models:
                model.drive(ctx, self.cycle)
            self._driven = self.cycle

    async def tick(self, ctx, *signals) -> tuple:
        """Wait for the next clock edge, recording the models' transfers at it.

        Returns ``(cycle, *values)``: the number of that edge and the values ``signals`` had
        at it. The models drive the following cycle before this returns.
        """
        self.drive(ctx)
        watched = [signal for model in self.models for signal in model.signals()]
        _, _, *values = await ctx.tick().sample(*watched, *signals)
        cycle, position = self.cycle, 0
        for model in self.models:
            count = len(model.signals())
            model.record(cycle, *values[position:position + count])
            position += count
        self.cycle += 1
        self.drive(ctx)
        return (cycle, *values[position:])
