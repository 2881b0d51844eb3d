"""The serial link: the accelerator's command words over a lossy byte line (UART), its frame
format and the gateware of the device side. The host's frame codec is
:mod:`reuse_accel.sw.link_codec`, which takes the sync bytes, the kinds and the HELLO word from
here.

A stop-and-wait ARQ. The host is the master: it sends a request and waits for the reply; the
device answers every well-formed request with exactly one reply and never speaks otherwise.

Frames (all fields one byte; words little endian, ``W / 8`` bytes each, ``W`` =
``AccelConfig.stream_width``; the CRC is CRC-16/CCITT-FALSE, polynomial 0x1021, initial value
0xFFFF, no reflection, no final XOR, over ``kind .. payload``, sent high byte first; both sides
take it from ``amaranth.lib.crc.catalog.CRC16_CCITT_FALSE``)::

    request  0xA5  kind  seq  count  [count words: SEND only]  crc_hi  crc_lo
    reply    0x5A  kind  seq  count  [count words]             crc_hi  crc_lo

==========  =====  ==========================================================================
request     kind   meaning
==========  =====  ==========================================================================
SEND        0x01   ``count`` command words for the accelerator. ACK: stored (or a duplicate:
                   the same ``seq`` as the last stored SEND, not stored again); BUSY: the
                   input buffer has no room for ``count`` words, nothing stored, retry later.
POLL        0x02   ``count`` = most words the host wants. DATA with up to
                   ``min(count, chunk)`` response words. A new ``seq`` releases the words of
                   the previous POLL; the same ``seq`` resends exactly those words.
HELLO       0x03   resets the accelerator, both buffers and the link state; HELLO_OK with one
                   word: :func:`hello_word`.
==========  =====  ==========================================================================

==========  =====  ==========================================================================
reply       kind   payload
==========  =====  ==========================================================================
ACK         0x81   none (``count`` 0)
DATA        0x82   ``count`` response words
HELLO_OK    0x83   one word: magic, chunk, buffer depths (:func:`hello_word`)
NAK         0xC0   none: the request's CRC failed, or it stopped mid-frame for the idle
                   timeout (``seq`` then echoes what was received, or a stale value)
BUSY        0xC1   none: SEND refused, input buffer full
==========  =====  ==========================================================================

Replies echo the request's ``seq``. Bytes that are not a request's sync byte, and requests of
an unknown kind, are skipped; bytes that arrive while the device is replying are dropped. The
host keeps separate sequence counters for SEND and POLL, so a new request of a kind always
differs from the previous one.
"""

from __future__ import annotations

import enum

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.crc import catalog
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .uart import check_clocks_per_bit

__all__ = [
    "REQUEST_SYNC", "REPLY_SYNC", "Kind", "REQUESTS", "LINK_MAGIC", "DEFAULT_CHUNK",
    "DEFAULT_FIFO_DEPTH", "DEFAULT_IDLE_BYTES", "MAX_COUNT", "hello_word", "check_link_options",
    "InputBuffer", "ReplayBuffer", "Link", "UartAccelerator", "generate_uart_verilog",
]

REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
LINK_MAGIC = 0x4C4B          # "LK", bits 15..0 of the HELLO_OK word
MAX_COUNT = 0xFF             # the count field is one byte
DEFAULT_CHUNK = 32
DEFAULT_FIFO_DEPTH = 256     # 256 x 32 bits: two iCE40 block RAMs per buffer
DEFAULT_IDLE_BYTES = 250    # 2.5 ms at 1 Mbaud: longer than a USB-serial adapter's packet gap


class Kind(enum.IntEnum):
    """Request and reply kinds."""

    SEND = 0x01
    POLL = 0x02
    HELLO = 0x03
    ACK = 0x81
    DATA = 0x82
    HELLO_OK = 0x83
    NAK = 0xC0
    BUSY = 0xC1


REQUESTS = (Kind.SEND, Kind.POLL, Kind.HELLO)


# -- shared with the host ---------------------------------------------------------------------

def hello_word(chunk: int, input_depth: int, output_depth: int) -> int:
    """The HELLO_OK payload: ``LINK_MAGIC[15:0] | chunk[23:16] | log2(input depth)[27:24] |
    log2(output depth)[31:28]``."""
    return (LINK_MAGIC | chunk << 16 | exact_log2(input_depth) << 24
            | exact_log2(output_depth) << 28)


# -- gateware ---------------------------------------------------------------------------------

def _check_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2 \
            or depth & (depth - 1) or depth > 1 << 15:
        raise ValueError(f"fifo_depth must be a power of two from 2 to 32768, not {depth!r}")
    return depth


def check_link_options(width, *, clocks_per_bit, chunk, fifo_depth, idle_bytes) -> None:
    """Validate the parameters of a :class:`Link` (errors name the parameter and the rule)."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 8 or width % 8:
        raise ValueError(f"width must be a positive multiple of 8 bits, not {width!r}")
    check_clocks_per_bit(clocks_per_bit)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= MAX_COUNT:
        raise ValueError(f"chunk must be an integer in 1..{MAX_COUNT} words (the count "
                         f"field is one byte), not {chunk!r}")
    _check_depth(fifo_depth)
    if fifo_depth < chunk:
        raise ValueError(f"fifo_depth ({fifo_depth}) must be at least chunk ({chunk}): a "
                         "DATA reply is kept in the output buffer until the next POLL")
    if isinstance(idle_bytes, bool) or not isinstance(idle_bytes, int) or idle_bytes < 2:
        raise ValueError(f"idle_bytes must be an integer of at least 2, not {idle_bytes!r}")


class InputBuffer(wiring.Component):
    """Host-to-accelerator word buffer whose writes become visible only when committed.

    Words written with ``w_en`` go to a speculative tail; ``commit`` publishes them to ``r``,
    ``rollback`` discards them. ``free`` counts the words the committed contents leave room
    for. ``r`` is a FIFO stream (``valid`` from registers only). Contract: a commit comes at
    least one cycle after the last write it publishes, and never in a cycle with ``w_en``
    (the block RAM's read of a word must follow its write).

    Parameters
    ----------
    width : int
        Word width.
    depth : int
        Words (a power of two; one block RAM row per word).
    """

    def __init__(self, width: int, depth: int):
        self._width = width
        self._depth = _check_depth(depth)
        super().__init__({
            "w_data": In(width),
            "w_en": In(1),
            "commit": In(1),
            "rollback": In(1),
            "free": Out(range(depth + 1)),
            "r": Out(stream.Signature(width)),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        bits = exact_log2(depth)
        m.submodules.memory = mem = memory.Memory(shape=self._width, depth=depth, init=[])
        write = mem.write_port()
        read = mem.read_port(transparent_for=())
        tail = Signal(bits + 1)         # speculative write pointer
        committed = Signal(bits + 1)
        head = Signal(bits + 1)

        m.d.comb += [write.addr.eq(tail[:bits]), write.data.eq(self.w_data),
                     write.en.eq(self.w_en)]
        with m.If(self.rollback):
            m.d.sync += tail.eq(committed)
        with m.Elif(self.w_en):
            m.d.sync += tail.eq(tail + 1)
        with m.If(self.commit):
            m.d.sync += committed.eq(tail)
        used = Signal(bits + 1)
        m.d.comb += [used.eq(committed - head), self.free.eq(depth - used)]

        # Read ahead: the port always reads the word at the head after this cycle's transfer.
        take = self.r.valid & self.r.ready
        next_head = Signal(bits + 1)
        m.d.comb += [
            self.r.valid.eq(committed != head),
            self.r.payload.eq(read.data),
            next_head.eq(head + take),
            read.addr.eq(next_head[:bits]),
        ]
        m.d.sync += head.eq(next_head)
        return m


class ReplayBuffer(wiring.Component):
    """Accelerator-to-host word buffer that keeps words until the host confirms them.

    ``w`` fills it (``ready`` from registers only, while fewer than ``depth`` words are kept).
    The kept words start at a base; ``level`` counts them. ``data`` is the word at
    ``base + index`` one cycle after ``index`` is presented (a block RAM read), so words can be
    sent twice. ``release`` drops the first ``release_count`` words (``release_count <=
    level``).

    Parameters
    ----------
    width : int
    depth : int
        A power of two.
    """

    def __init__(self, width: int, depth: int):
        self._width = width
        self._depth = _check_depth(depth)
        super().__init__({
            "w": In(stream.Signature(width)),
            "level": Out(range(depth + 1)),
            "index": In(range(depth)),
            "data": Out(width),
            "release": In(1),
            "release_count": In(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        bits = exact_log2(depth)
        m.submodules.memory = mem = memory.Memory(shape=self._width, depth=depth, init=[])
        write = mem.write_port()
        read = mem.read_port(transparent_for=())
        tail = Signal(bits + 1)
        base = Signal(bits + 1)
        used = Signal(bits + 1)
        m.d.comb += [
            used.eq(tail - base),
            self.level.eq(used),
            self.w.ready.eq(used != depth),
            write.addr.eq(tail[:bits]),
            write.data.eq(self.w.payload),
            write.en.eq(self.w.valid & self.w.ready),
            read.addr.eq((base + self.index)[:bits]),
            self.data.eq(read.data),
        ]
        with m.If(write.en):
            m.d.sync += tail.eq(tail + 1)
        with m.If(self.release):
            m.d.sync += base.eq(base + self.release_count)
        return m


class Link(wiring.Component):
    """The device side of the link: request parser, reply sender and the two word buffers.

    Parameters
    ----------
    width : int
        Stream word width W (a multiple of 8).
    clocks_per_bit : int
        UART bit time in cycles (sets the idle timeout).
    chunk : int
        Most words in one DATA reply (1..255).
    fifo_depth : int
        Words in each buffer (a power of two, at least ``chunk``).
    idle_bytes : int
        A request that receives no byte for ``idle_bytes`` byte times (``10 * clocks_per_bit``
        cycles each) is abandoned with a NAK.

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the UART receiver; always ready (a byte arriving while the link replies is
        dropped).
    tx : Out(stream.Signature(8))
        Bytes to the UART transmitter.
    down : Out(stream.Signature(W))
        Committed SEND words, in order, to the accelerator's ``i``.
    up : In(stream.Signature(W))
        The accelerator's ``o``; taken whenever the output buffer has room.
    line_error : In(1)
        A framing error from the receiver (sets ``error``).
    clear : Out(1)
        One-cycle pulse when a HELLO is executed: reset the accelerator with it (the buffers
        and the link state are reset here).
    busy : Out(1)
        A request or reply is in progress, or SEND words wait for the accelerator.
    error : Out(1)
        Sticky: a NAK was sent (CRC mismatch, idle timeout) or the line had a framing error
        since the last HELLO.

    Latency: the reply's sync byte is offered to ``tx`` 2 cycles after the request's last CRC
    byte is taken from ``rx`` (3 for a POLL with a new ``seq``). Throughput: the line's.
    """

    def __init__(self, width: int, *, clocks_per_bit: int, chunk: int = DEFAULT_CHUNK,
                 fifo_depth: int = DEFAULT_FIFO_DEPTH, idle_bytes: int = DEFAULT_IDLE_BYTES):
        check_link_options(width, clocks_per_bit=clocks_per_bit, chunk=chunk,
                           fifo_depth=fifo_depth, idle_bytes=idle_bytes)
        self._width = width
        self._clocks_per_bit = clocks_per_bit
        self._chunk = chunk
        self._fifo_depth = fifo_depth
        self._idle_bytes = idle_bytes
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "down": Out(stream.Signature(width)),
            "up": In(stream.Signature(width)),
            "line_error": In(1),
            "clear": Out(1),
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def chunk(self) -> int:
        return self._chunk

    @property
    def fifo_depth(self) -> int:
        return self._fifo_depth

    @property
    def idle_cycles(self) -> int:
        """Cycles without a byte after which a request is abandoned."""
        return self._idle_bytes * 10 * self._clocks_per_bit

    @property
    def hello(self) -> int:
        """The HELLO_OK payload word."""
        return hello_word(self._chunk, self._fifo_depth, self._fifo_depth)

    def elaborate(self, platform):
        m = Module()
        W = self._width
        word_bytes = W // 8
        chunk = self._chunk
        clear = self.clear

        inbuf = InputBuffer(W, self._fifo_depth)
        outbuf = ReplayBuffer(W, self._fifo_depth)
        m.submodules.input_buffer = ResetInserter(clear)(inbuf)
        m.submodules.output_buffer = ResetInserter(clear)(outbuf)
        wiring.connect(m, inbuf.r, wiring.flipped(self.down))
        wiring.connect(m, wiring.flipped(self.up), outbuf.w)
        # One CRC register serves both directions: a request and its reply never overlap.
        m.submodules.crc = crc = catalog.CRC16_CCITT_FALSE(data_width=8).create()

        byte = self.rx.payload
        got = self.rx.valid
        m.d.comb += [self.rx.ready.eq(1),
                     crc.data.eq(Mux(self.tx.valid, self.tx.payload, byte))]

        # Request fields.
        kind = Signal(8)
        seq = Signal(8)
        count = Signal(8)
        words_left = Signal(8)
        byte_index = Signal(range(word_bytes))
        assembled = Signal(W - 8)          # the bytes of a word before its last, little endian
        store = Signal()                   # this SEND is new and fits: write its words
        duplicate = Signal()
        # Link state.
        last_send = Signal(8)
        last_send_valid = Signal()
        last_poll = Signal(8)
        last_poll_valid = Signal()
        inflight = Signal(range(chunk + 1))   # words of the last DATA, kept for a resend
        # Reply.
        reply_kind = Signal(8)
        reply_count = Signal(8)
        reply_word = Signal(8)
        reply_byte = Signal(range(word_bytes))
        idle = Signal(range(self.idle_cycles + 1))
        error = Signal()
        m.d.comb += self.error.eq(error)

        def reply(code, words=0):
            m.d.sync += [reply_kind.eq(code), reply_count.eq(words), reply_word.eq(0),
                         reply_byte.eq(0)]
            m.next = "TX_SYNC"

        def nak():
            m.d.comb += inbuf.rollback.eq(1)
            m.d.sync += error.eq(1)
            reply(Kind.NAK)

        with m.If(self.line_error):
            m.d.sync += error.eq(1)

        m.d.comb += outbuf.index.eq(reply_word)
        word = Mux(reply_kind == Kind.HELLO_OK, Const(self.hello, W), outbuf.data)
        word_byte = word.word_select(reply_byte, 8)
        tx_take = self.tx.valid & self.tx.ready

        receiving = Signal()               # inside a request, after its sync byte
        timed_out = Signal()
        with m.If(~receiving | got):
            m.d.sync += idle.eq(0)
        with m.Else():
            m.d.sync += idle.eq(idle + 1)
        m.d.comb += timed_out.eq(receiving & (idle == self.idle_cycles))

        with m.FSM() as fsm:
            with m.State("SYNC"):
                with m.If(got & (byte == REQUEST_SYNC)):
                    m.d.comb += crc.start.eq(1)
                    m.next = "KIND"
            with m.State("KIND"):
                with m.If(timed_out):
                    nak()
                with m.Elif(got):
                    with m.If((byte == Kind.SEND) | (byte == Kind.POLL) | (byte == Kind.HELLO)):
                        m.d.comb += crc.valid.eq(1)
                        m.d.sync += kind.eq(byte)
                        m.next = "SEQ"
                    with m.Elif(byte == REQUEST_SYNC):
                        m.d.comb += crc.start.eq(1)      # resynchronise on this byte
                    with m.Else():
                        m.next = "SYNC"
            with m.State("SEQ"):
                with m.If(timed_out):
                    nak()
                with m.Elif(got):
                    m.d.comb += crc.valid.eq(1)
                    m.d.sync += seq.eq(byte)
                    m.next = "COUNT"
            with m.State("COUNT"):
                is_send = kind == Kind.SEND
                is_duplicate = is_send & last_send_valid & (seq == last_send)
                with m.If(timed_out):
                    nak()
                with m.Elif(got):
                    m.d.comb += crc.valid.eq(1)
                    m.d.sync += [
                        count.eq(byte),
                        words_left.eq(byte),
                        byte_index.eq(0),
                        duplicate.eq(is_duplicate),
                        store.eq(is_send & ~is_duplicate & (inbuf.free >= byte)),
                    ]
                    with m.If(is_send & (byte != 0)):
                        m.next = "PAYLOAD"
                    with m.Else():
                        m.next = "CRC_HI"
            with m.State("PAYLOAD"):
                with m.If(timed_out):
                    nak()
                with m.Elif(got):
                    m.d.comb += crc.valid.eq(1)
                    with m.If(byte_index == word_bytes - 1):
                        m.d.comb += [inbuf.w_data.eq(Cat(assembled, byte)),
                                     inbuf.w_en.eq(store)]
                        m.d.sync += [byte_index.eq(0), words_left.eq(words_left - 1)]
                        with m.If(words_left == 1):
                            m.next = "CRC_HI"
                    with m.Else():
                        m.d.sync += [byte_index.eq(byte_index + 1),
                                     assembled.eq(Cat(assembled[8:], byte))]
            with m.State("CRC_HI"):
                with m.If(timed_out):
                    nak()
                with m.Elif(got):
                    m.d.comb += crc.valid.eq(1)
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                with m.If(timed_out):
                    nak()
                with m.Elif(got):
                    m.d.comb += crc.valid.eq(1)
                    m.next = "EXECUTE"
            with m.State("EXECUTE"):
                # The CRC register now holds the residue of kind..crc: 0 for a good frame.
                with m.If(~crc.match_detected):
                    nak()
                with m.Elif(kind == Kind.SEND):
                    with m.If(duplicate):
                        reply(Kind.ACK)
                    with m.Elif(store):
                        m.d.comb += inbuf.commit.eq(1)
                        m.d.sync += [last_send.eq(seq), last_send_valid.eq(1)]
                        reply(Kind.ACK)
                    with m.Else():
                        reply(Kind.BUSY)
                with m.Elif(kind == Kind.POLL):
                    with m.If(last_poll_valid & (seq == last_poll)):
                        reply(Kind.DATA, inflight)
                    with m.Else():
                        m.d.comb += [outbuf.release.eq(1), outbuf.release_count.eq(inflight)]
                        m.d.sync += [last_poll.eq(seq), last_poll_valid.eq(1)]
                        m.next = "PICK"
                with m.Else():
                    m.d.comb += clear.eq(1)
                    m.d.sync += [last_send_valid.eq(0), last_poll_valid.eq(0), inflight.eq(0),
                                 error.eq(0)]
                    reply(Kind.HELLO_OK, 1)
            with m.State("PICK"):
                # The released words are gone from the level: send what the host and one chunk
                # allow.
                level = outbuf.level
                wanted = Mux(count < chunk, count, chunk)
                words = Mux(level < wanted, level, wanted)
                m.d.sync += inflight.eq(words)
                reply(Kind.DATA, words)

            with m.State("TX_SYNC"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(REPLY_SYNC),
                             crc.start.eq(1)]
                with m.If(tx_take):
                    m.next = "TX_KIND"
            with m.State("TX_KIND"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(reply_kind),
                             crc.valid.eq(tx_take)]
                with m.If(tx_take):
                    m.next = "TX_SEQ"
            with m.State("TX_SEQ"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(seq),
                             crc.valid.eq(tx_take)]
                with m.If(tx_take):
                    m.next = "TX_COUNT"
            with m.State("TX_COUNT"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(reply_count),
                             crc.valid.eq(tx_take)]
                with m.If(tx_take):
                    with m.If(reply_count != 0):
                        m.next = "TX_FETCH"
                    with m.Else():
                        m.next = "TX_CRC_HI"
            with m.State("TX_FETCH"):
                # The buffer's read port presents the word at reply_word in the next cycle.
                m.next = "TX_DATA"
            with m.State("TX_DATA"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(word_byte),
                             crc.valid.eq(tx_take)]
                with m.If(tx_take):
                    with m.If(reply_byte == word_bytes - 1):
                        m.d.sync += [reply_byte.eq(0), reply_word.eq(reply_word + 1)]
                        with m.If(reply_word == reply_count - 1):
                            m.next = "TX_CRC_HI"
                        with m.Else():
                            m.next = "TX_FETCH"
                    with m.Else():
                        m.d.sync += reply_byte.eq(reply_byte + 1)
            with m.State("TX_CRC_HI"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(crc.crc[8:])]
                with m.If(tx_take):
                    m.next = "TX_CRC_LO"
            with m.State("TX_CRC_LO"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(crc.crc[:8])]
                with m.If(tx_take):
                    m.next = "SYNC"
        m.d.comb += [
            receiving.eq(fsm.ongoing("KIND") | fsm.ongoing("SEQ") | fsm.ongoing("COUNT") |
                         fsm.ongoing("PAYLOAD") | fsm.ongoing("CRC_HI") |
                         fsm.ongoing("CRC_LO")),
            self.busy.eq(~fsm.ongoing("SYNC") | self.down.valid),
        ]
        return m


class UartAccelerator(wiring.Component):
    """The accelerator behind a UART: :class:`UartRx`, :class:`UartTx`, :class:`Link` and
    :class:`~reuse_accel.hw.top.Accelerator`, whose reset also follows a HELLO.

    Parameters
    ----------
    config : AccelConfig
    clocks_per_bit : int
        ``clk_frequency / baudrate``, at least 4 (e.g. 12 for 12 MHz and 1 Mbaud).
    chunk, fifo_depth, idle_bytes
        See :class:`Link`.

    Attributes
    ----------
    rx : In(1)
        Serial input (from the host's TX; asynchronous, idle high).
    tx : Out(1)
        Serial output (to the host's RX; idle high).
    busy : Out(1)
        The link is inside a request or reply, or the accelerator has input waiting.
    error : Out(1)
        Sticky until the next HELLO: a framing error, a CRC mismatch or a cut-off request.

    The generated Verilog also has ``clk`` and ``rst`` (synchronous, active high). Nothing in it
    waits on the host: the input buffer drains into the accelerator and the accelerator's
    responses drain into the output buffer in the background.
    """

    def __init__(self, config, *, clocks_per_bit: int, chunk: int = DEFAULT_CHUNK,
                 fifo_depth: int = DEFAULT_FIFO_DEPTH, idle_bytes: int = DEFAULT_IDLE_BYTES):
        from .config import check_config

        self._config = check_config(config)
        self._link = Link(config.stream_width, clocks_per_bit=clocks_per_bit, chunk=chunk,
                          fifo_depth=fifo_depth, idle_bytes=idle_bytes)
        self._clocks_per_bit = clocks_per_bit
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def config(self):
        return self._config

    @property
    def link(self) -> Link:
        return self._link

    def elaborate(self, platform):
        from .top import Accelerator
        from .uart import UartRx, UartTx

        m = Module()
        link = self._link
        m.submodules.uart_rx = uart_rx = UartRx(clocks_per_bit=self._clocks_per_bit)
        m.submodules.uart_tx = uart_tx = UartTx(clocks_per_bit=self._clocks_per_bit)
        m.submodules.link = link
        accelerator = Accelerator(self._config)
        m.submodules.accelerator = ResetInserter(link.clear)(accelerator)
        m.d.comb += [
            uart_rx.rx.eq(self.rx),
            self.tx.eq(uart_tx.tx),
            link.line_error.eq(uart_rx.framing_error),
            self.busy.eq(link.busy),
            self.error.eq(link.error),
        ]
        wiring.connect(m, uart_rx.o, link.rx)
        wiring.connect(m, link.tx, uart_tx.i)
        m.d.comb += [
            accelerator.s_axis_tdata.eq(link.down.payload),
            accelerator.s_axis_tvalid.eq(link.down.valid),
            link.down.ready.eq(accelerator.s_axis_tready),
            link.up.payload.eq(accelerator.m_axis_tdata),
            link.up.valid.eq(accelerator.m_axis_tvalid),
            accelerator.m_axis_tready.eq(link.up.ready),
        ]
        return m


def generate_uart_verilog(config, clocks_per_bit: int, name: str = "reuse_accel_uart",
                          **link_options) -> str:
    """Verilog of :class:`UartAccelerator` (ports ``clk``, ``rst``, ``rx``, ``tx``, ``busy``,
    ``error``; no timescale). ``link_options``: ``chunk``, ``fifo_depth``, ``idle_bytes``."""
    from amaranth.back import verilog

    top = UartAccelerator(config, clocks_per_bit=clocks_per_bit, **link_options)
    return verilog.convert(top, name=name, emit_src=False)
