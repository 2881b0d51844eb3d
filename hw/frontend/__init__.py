"""The command front end: the protocol of :mod:`reuse_accel.hw.protocol` around the tile.

Four components joined by streams, one command at a time::

    i ─► CommandDecoder ──command──► CommandChecker ──job──► PayloadRouter ──reply──► Responder ─► o
              │   └──────────────payload words──────────────────►│                       │
              └◄─────────────────────────── done ◄─────────────────────────────────────┘

- :class:`~.decoder.CommandDecoder` parses the header and control row and passes the payload
  on; it reads the next header only once the response is out.
- :class:`~.checker.CommandChecker` holds the network state and checks every command against
  the hardware: a command that passes is applied, one that fails becomes an error response.
- :class:`~.router.PayloadRouter` writes payload rows into the tile's memories (or drains
  them), starts frames and waits for them.
- :class:`~.responder.Responder` sends the header, output rows, counters or status row, with
  ``last`` on the final word.

Ports: ``i``, a ``lib.stream`` of ``stream_width``-bit command words; ``o``, a ``lib.stream``
of response words with ``last``; ``tile``, the
:class:`~reuse_accel.hw.tile.ProcessingTile`'s ports, driven from here. ``i.ready`` and
``o.valid`` depend on registers only; ``i.valid``, ``i.payload`` and ``o.ready`` reach only
skid buffers. Without output backpressure, a FRAME's response header leaves ``o``
:data:`FRAME_RESPONSE_LATENCY` cycles plus the frame's cycle count after its last word enters
``i``: the word passes the input skid buffer and the tile starts in the next cycle; after the
tile's last cycle the router sees ``done``, the header is registered, passes the output skid
buffer, then it moves.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AccelConfig, check_config
from ..core.register import SkidBuffer
from ..tile import tile_signature
from .checker import CommandChecker
from .decoder import CommandDecoder
from .layouts import word_layout
from .responder import Responder
from .router import PayloadRouter

__all__ = ["CommandFrontend", "FRAME_RESPONSE_LATENCY"]

FRAME_RESPONSE_LATENCY = (SkidBuffer.latency + PayloadRouter.start_latency +
                          PayloadRouter.reply_latency + Responder.latency + SkidBuffer.latency)
"""Cycles from a frame's last input word to its response header's transfer, beyond the frame's
own cycle count: the input skid buffer, the tile's start, the router's reply, the output
register, the output skid buffer."""


class CommandFrontend(wiring.Component):
    """The command protocol: decode, check, route payloads, run frames, respond.

    Parameters
    ----------
    config : AccelConfig
        The hardware parameters; every size and width follows from them.
    """

    def __init__(self, config: AccelConfig):
        self._config = check_config(config)
        super().__init__({
            "i": In(stream.Signature(config.stream_width)),
            "o": Out(stream.Signature(word_layout(config))),
            "tile": Out(tile_signature(config).flip()),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        tile = self.tile
        m.submodules.decoder = decoder = CommandDecoder(config)
        m.submodules.checker = checker = CommandChecker(config)
        m.submodules.router = router = PayloadRouter(config)
        m.submodules.responder = responder = Responder(config)

        # The input port's valid and data reach only this skid buffer, not the decoder's state.
        m.submodules.input = input_ = SkidBuffer(config.stream_width)
        wiring.connect(m, wiring.flipped(self.i), input_.i)
        wiring.connect(m, input_.o, decoder.i)
        wiring.connect(m, decoder.command, checker.command)
        wiring.connect(m, checker.job, router.job)
        wiring.connect(m, decoder.payload, router.payload)
        wiring.connect(m, router.reply, responder.reply)
        # The output port's ready reaches only this skid buffer, not the front end's state.
        m.submodules.output = output = SkidBuffer(word_layout(config))
        wiring.connect(m, responder.o, output.i)
        wiring.connect(m, output.o, wiring.flipped(self.o))
        m.d.comb += decoder.done.eq(responder.done)

        wiring.connect(m, router.fill, wiring.flipped(tile.fill))
        wiring.connect(m, router.weight_write, wiring.flipped(tile.weight_write))
        wiring.connect(m, router.bias_write, wiring.flipped(tile.bias_write))
        if config.reuse:
            wiring.connect(m, router.centroid_write, wiring.flipped(tile.centroid_write))
        wiring.connect(m, responder.result_read, wiring.flipped(tile.result_read))
        m.d.comb += [
            tile.start.eq(router.tile_start),
            router.tile_done.eq(tile.done),
            checker.frame_done.eq(tile.done),
            tile.layers.eq(checker.layers),
            tile.layer_count.eq(checker.layer_count),
            tile.from_scratch.eq(checker.from_scratch),
            responder.output_rows.eq(checker.output_rows),
            responder.layer_count.eq(checker.layer_count),
            responder.status.eq(checker.status),
            responder.frame_cycles.eq(tile.frame_cycles),
            responder.counters.eq(tile.counters),
        ]
        return m
