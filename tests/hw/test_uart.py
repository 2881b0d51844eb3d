"""The UART PHY (:mod:`reuse_accel.hw.uart`) and the link gateware (:class:`Link`) in Amaranth's
simulator: waveforms bit for bit, reply bytes against the host's frame codec
(:mod:`reuse_accel.sw.link_codec`), and cycle counts where the contract states them.
"""

from __future__ import annotations

import gc
import random
import warnings

import pytest
from amaranth.hdl import Module, UnusedElaboratable
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from support.streams import Lockstep, StreamSink, stream_get, stream_put

from reuse_accel.hw import protocol
from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.link import Kind, Link, UartAccelerator, generate_uart_verilog
from reuse_accel.hw.uart import UartRx, UartTx
from reuse_accel.sw.link_codec import decode_frame, encode_reply, encode_request

WORD_BYTES = 4


def run(dut, *benches, background=()):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in background:
        sim.add_testbench(bench, background=True)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


def collect_rejected():
    """The components whose constructor raised are never elaborated; collect them quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        gc.collect()


def line_bits(byte: int, stop: int = 1) -> list[int]:
    """The 10 line levels of an 8N1 byte: start, data LSB first, stop."""
    return [0] + [(byte >> n) & 1 for n in range(8)] + [stop]


# -- UART PHY ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cpb", [4, 7])
def test_tx_waveform_is_exact(cpb):
    dut = UartTx(clocks_per_bit=cpb)
    levels = []

    async def bench(ctx):
        assert ctx.get(dut.tx) == 1 and ctx.get(dut.i.ready) == 1
        ctx.set(dut.i.payload, 0xB4)
        ctx.set(dut.i.valid, 1)
        await ctx.tick()                       # accepted at this edge
        ctx.set(dut.i.payload, 0x01)           # the next byte waits for ready
        for _ in range(10 * cpb):
            levels.append(ctx.get(dut.tx))
            assert ctx.get(dut.i.ready) == 0
            await ctx.tick()
        assert ctx.get(dut.i.ready) == 1       # exactly 10 bit times later
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(10 * cpb):
            levels.append(ctx.get(dut.tx))
            await ctx.tick()
        levels.append(ctx.get(dut.tx))

    run(dut, bench)
    expected = [level for bit in line_bits(0xB4) + line_bits(0x01) for level in [bit] * cpb]
    assert levels == expected + [1]


class _Loop(wiring.Component):
    """A transmitter wired to a receiver."""

    def __init__(self, cpb):
        self.cpb = cpb
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
                          "framing_errors": Out(16)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = UartTx(clocks_per_bit=self.cpb)
        m.submodules.rx = rx = UartRx(clocks_per_bit=self.cpb)
        m.d.comb += [rx.rx.eq(tx.tx), self.framing_errors.eq(rx.framing_errors)]
        wiring.connect(m, wiring.flipped(self.i), tx.i)
        wiring.connect(m, rx.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("cpb", [4, 5, 8, 13])
def test_bytes_round_trip(cpb):
    data = [0x00, 0xFF, 0x55, 0xAA, 0x80, 0x01] + random.Random(cpb).choices(range(256), k=10)
    dut = _Loop(cpb)
    received = []

    async def source(ctx):
        for byte in data:
            await stream_put(ctx, dut.i, byte)

    async def sink(ctx):
        for _ in data:
            received.append(await stream_get(ctx, dut.o))
        assert ctx.get(dut.framing_errors) == 0

    run(dut, sink, background=[source])
    assert received == data


def _drive_levels(ctx, dut, levels):
    async def drive():
        for level in levels:
            ctx.set(dut.rx, level)
            await ctx.tick()
    return drive()


@pytest.mark.parametrize("cpb", [4, 9])
def test_rx_latency_framing_error_and_recovery(cpb):
    dut = UartRx(clocks_per_bit=cpb)
    sink = StreamSink(dut.o)      # always ready: a receiver cannot hold the line back
    framing, count = [], []

    async def bench(ctx):
        steps = Lockstep(sink, cycle=1)     # edges counted from 1
        bad = [bit for bit in line_bits(0x3C, stop=0) for _ in range(cpb)]
        good = [bit for bit in line_bits(0xC3) for _ in range(cpb)]
        for level in bad + [1] * (3 * cpb) + good + [1] * (3 * cpb):
            ctx.set(dut.rx, level)
            edge, error = await steps.tick(ctx, dut.framing_error)
            if error:
                framing.append(edge)
        count.append(ctx.get(dut.framing_errors))

    run(dut, bench)
    # rx falls before edge 1: the synchronizer shows it after edge 2, the receiver leaves IDLE
    # at edge 3 and samples the start bit c//2 cycles later (at edge 3 + c//2, its (c//2+1)-th
    # cycle), the stop bit 9 bit times after that; the byte is visible from that edge on.
    start_good = 10 * cpb + 3 * cpb
    stop_sample = 3 + cpb // 2 + 9 * cpb
    assert framing == [stop_sample]                                # sampled at this edge
    assert sink.transfers == [(start_good + stop_sample + 1, 0xC3)]  # one edge after that
    assert count == [1]


@pytest.mark.parametrize("cpb", [4, 8])
def test_rx_rejects_glitches_shorter_than_half_a_bit(cpb):
    dut = UartRx(clocks_per_bit=cpb)
    sink = StreamSink(dut.o)

    async def bench(ctx):
        steps = Lockstep(sink)
        # Low for c//2 cycles: high again when the start bit is sampled, ignored.
        glitch = [0] * (cpb // 2) + [1] * (12 * cpb)
        # Low for c//2 + 1 cycles: a start bit followed by ones, so 0xFF.
        start = [0] * (cpb // 2 + 1) + [1] * (12 * cpb)
        good = [bit for bit in line_bits(0x5A) for _ in range(cpb)] + [1] * (2 * cpb)
        for level in glitch + good + start:
            ctx.set(dut.rx, level)
            await steps.tick(ctx)
        assert ctx.get(dut.framing_errors) == 0

    run(dut, bench)
    assert [byte for _, byte in sink.transfers] == [0x5A, 0xFF]


@pytest.mark.parametrize("cls", [UartRx, UartTx])
def test_clocks_per_bit_is_checked(cls):
    with pytest.raises(ValueError, match=r"^clocks_per_bit must be at least 4 for mid-bit "
                       r"sampling, not 3: lower the baud rate or raise the clock frequency$"):
        cls(clocks_per_bit=3)
    with pytest.raises(TypeError, match=r"^clocks_per_bit must be an integer \(clock frequency "
                       r"/ baud rate\), not 4\.5$"):
        cls(clocks_per_bit=4.5)
    collect_rejected()


# -- link gateware at the byte level ----------------------------------------------------------

class _LinkBench(wiring.Component):
    """The link with a stand-in accelerator: while ``loop`` is high every word sent down comes
    straight back up (as a response word); while it is low the accelerator takes nothing."""

    def __init__(self, **options):
        self.link = Link(8 * WORD_BYTES, **options)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "loop": In(1), "clear": Out(1), "error": Out(1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        wiring.connect(m, wiring.flipped(self.rx), link.rx)
        wiring.connect(m, link.tx, wiring.flipped(self.tx))
        m.d.comb += [
            link.up.valid.eq(link.down.valid & self.loop),
            link.up.payload.eq(link.down.payload),
            link.down.ready.eq(link.up.ready & self.loop),
            self.clear.eq(link.clear), self.error.eq(link.error), self.busy.eq(link.busy),
        ]
        return m


class _Host:
    """Drives request bytes and collects reply bytes, counting clock edges."""

    def __init__(self, dut):
        self.dut = dut
        self.tx_bytes: list[tuple[int, int]] = []     # (edge, byte) of every reply byte
        self.clears: list[int] = []
        self.edge = 0
        self.last_request_edge = 0

    async def collector(self, ctx):
        ctx.set(self.dut.tx.ready, 1)
        while True:
            _, _, valid, payload, clear = await ctx.tick().sample(
                self.dut.tx.valid, self.dut.tx.payload, self.dut.clear)
            self.edge += 1
            if valid:
                self.tx_bytes.append((self.edge, payload))
            if clear:
                self.clears.append(self.edge)

    async def send(self, ctx, data: bytes, gap: int = 1):
        for byte in data:
            ctx.set(self.dut.rx.payload, byte)
            ctx.set(self.dut.rx.valid, 1)
            await ctx.tick()
            self.last_request_edge = self.edge      # the collector has counted this edge
            assert ctx.get(self.dut.rx.ready) == 1
            ctx.set(self.dut.rx.valid, 0)
            if gap:
                await ctx.tick().repeat(gap)

    async def reply(self, ctx, limit: int = 5000):
        """The next complete reply frame: (edge of its sync byte, its bytes)."""
        for _ in range(limit):
            if len(self.tx_bytes) >= 4:
                length = 4 + self.tx_bytes[3][1] * WORD_BYTES + 2
                if len(self.tx_bytes) >= length:
                    frame, self.tx_bytes = self.tx_bytes[:length], self.tx_bytes[length:]
                    return frame[0][0], bytes(byte for _, byte in frame)
            await ctx.tick()
        raise AssertionError(f"no complete reply within {limit} cycles: {self.tx_bytes}")

    async def request(self, ctx, kind, seq, words=(), count=None):
        await self.send(ctx, encode_request(kind, seq, words, word_bytes=WORD_BYTES,
                                            count=count))
        return (await self.reply(ctx))[1]


def reply(kind, seq, words=()):
    return encode_reply(kind, seq, words, word_bytes=WORD_BYTES)


def run_link(script, **options):
    options.setdefault("clocks_per_bit", 4)
    dut = _LinkBench(**options)
    host = _Host(dut)

    async def bench(ctx):
        await script(ctx, host, dut)
        await ctx.tick().repeat(20)
        assert host.tx_bytes == [], "the link sent bytes nobody asked for"

    run(dut, bench, background=[host.collector])
    return host


def test_hello_reports_the_link_and_pulses_clear():
    async def script(ctx, host, dut):
        answer = await host.request(ctx, Kind.HELLO, 7)
        # Magic "LK", chunk 12, log2(depth 32) = 5 for both buffers.
        assert answer == reply(Kind.HELLO_OK, 7, [0x4C4B | 12 << 16 | 5 << 24 | 5 << 28])
        assert len(host.clears) == 1

    run_link(script, chunk=12, fifo_depth=32)


def test_send_then_poll_returns_the_words_in_order():
    words = [0x11223344, 0xDEADBEEF, 0x00000001]

    async def script(ctx, host, dut):
        ctx.set(dut.loop, 1)
        assert await host.request(ctx, Kind.SEND, 0, words) == reply(Kind.ACK, 0)
        assert await host.request(ctx, Kind.POLL, 0, count=8) == reply(Kind.DATA, 0, words)
        assert await host.request(ctx, Kind.POLL, 1, count=8) == reply(Kind.DATA, 1)

    run_link(script)


def test_duplicate_send_is_acknowledged_but_not_stored():
    async def script(ctx, host, dut):
        ctx.set(dut.loop, 1)
        assert await host.request(ctx, Kind.SEND, 4, [1, 2]) == reply(Kind.ACK, 4)
        assert await host.request(ctx, Kind.SEND, 4, [1, 2]) == reply(Kind.ACK, 4)
        assert await host.request(ctx, Kind.SEND, 5, [3]) == reply(Kind.ACK, 5)
        assert await host.request(ctx, Kind.POLL, 0, count=9) == reply(Kind.DATA, 0, [1, 2, 3])

    run_link(script)


def test_busy_when_the_input_buffer_is_full_then_accepted_after_draining():
    async def script(ctx, host, dut):
        assert await host.request(ctx, Kind.SEND, 0, range(10, 18)) == reply(Kind.ACK, 0)
        assert ctx.get(dut.busy) == 1                       # words wait for the accelerator
        assert await host.request(ctx, Kind.SEND, 1, [99]) == reply(Kind.BUSY, 1)
        ctx.set(dut.loop, 1)
        await ctx.tick().repeat(10)
        assert await host.request(ctx, Kind.SEND, 1, [99]) == reply(Kind.ACK, 1)
        # The output buffer (8 words) is full: the ninth word waits in the input buffer.
        assert await host.request(ctx, Kind.POLL, 0, count=16) == reply(
            Kind.DATA, 0, list(range(10, 18)))
        # Releasing them lets 99 in, but after this POLL picked its words: the next one.
        assert await host.request(ctx, Kind.POLL, 1, count=16) == reply(Kind.DATA, 1)
        assert await host.request(ctx, Kind.POLL, 2, count=16) == reply(Kind.DATA, 2, [99])

    run_link(script, fifo_depth=8, chunk=8)


def test_poll_resends_the_same_words_until_a_new_seq_and_respects_chunk():
    async def script(ctx, host, dut):
        ctx.set(dut.loop, 1)
        assert await host.request(ctx, Kind.SEND, 0, range(100, 107)) == reply(Kind.ACK, 0)
        first = reply(Kind.DATA, 3, [100, 101])
        assert await host.request(ctx, Kind.POLL, 3, count=2) == first
        # Lost DATA: the same seq gets the same words, whatever count it asks for now.
        assert await host.request(ctx, Kind.POLL, 3, count=200) == first
        assert await host.request(ctx, Kind.POLL, 4, count=200) == reply(
            Kind.DATA, 4, [102, 103, 104, 105])                # at most chunk = 4
        assert await host.request(ctx, Kind.POLL, 5, count=200) == reply(Kind.DATA, 5, [106])
        assert await host.request(ctx, Kind.POLL, 6, count=200) == reply(Kind.DATA, 6)

    run_link(script, chunk=4, fifo_depth=16)


def test_bad_crc_is_nakked_and_nothing_is_stored():
    async def script(ctx, host, dut):
        ctx.set(dut.loop, 1)
        good = encode_request(Kind.SEND, 9, [0xCAFE, 0xF00D], word_bytes=WORD_BYTES)
        bad = bytearray(good)
        bad[6] ^= 0x10                                  # a payload bit
        await host.send(ctx, bytes(bad))
        assert (await host.reply(ctx))[1] == reply(Kind.NAK, 9)
        assert ctx.get(dut.error) == 1
        assert await host.request(ctx, Kind.POLL, 0, count=8) == reply(Kind.DATA, 0)
        # The same seq again is new to the device: stored this time.
        await host.send(ctx, good)
        assert (await host.reply(ctx))[1] == reply(Kind.ACK, 9)
        assert await host.request(ctx, Kind.POLL, 1, count=8) == reply(
            Kind.DATA, 1, [0xCAFE, 0xF00D])

    run_link(script)


def test_reply_latency_in_cycles():
    async def script(ctx, host, dut):
        ctx.set(dut.loop, 1)
        for kind, seq, extra in ((Kind.SEND, 0, 0), (Kind.POLL, 0, 1), (Kind.POLL, 0, 0)):
            words = [5] if kind == Kind.SEND else ()
            await host.send(ctx, encode_request(kind, seq, words, word_bytes=WORD_BYTES,
                                                count=None if words else 4))
            sync_edge, _ = await host.reply(ctx)
            # EXECUTE, (PICK for a new POLL,) then the sync byte moves at the next edge.
            assert sync_edge - host.last_request_edge == 2 + extra, kind

    run_link(script)


@pytest.mark.parametrize("cut", [1, 3, 9])
def test_idle_timeout_nak_exactly_then_recovery(cut):
    cpb, idle_bytes = 5, 3

    async def script(ctx, host, dut):
        ctx.set(dut.loop, 1)
        request = encode_request(Kind.SEND, 2, [0x01020304, 0x05060708],
                                 word_bytes=WORD_BYTES)
        await host.send(ctx, request[:cut], gap=0)
        sync_edge, frame = await host.reply(ctx)
        assert frame[:2] == bytes([0x5A, Kind.NAK])
        decode_frame(frame, word_bytes=WORD_BYTES)              # a well-formed frame
        # idle_bytes byte times of 10 bits of cpb cycles without a byte, then NAK, then send.
        assert sync_edge - host.last_request_edge == idle_bytes * 10 * cpb + 2
        assert await host.request(ctx, Kind.SEND, 2, [0x01020304, 0x05060708]) == reply(
            Kind.ACK, 2)
        assert await host.request(ctx, Kind.POLL, 1, count=4) == reply(
            Kind.DATA, 1, [0x01020304, 0x05060708])

    run_link(script, clocks_per_bit=cpb, idle_bytes=idle_bytes)


def test_bad_sync_and_unknown_kinds_are_skipped():
    async def script(ctx, host, dut):
        ctx.set(dut.loop, 1)
        noise = bytes([0x00, 0x5A, 0xFF, 0xA5, 0x07, 0x13, 0xA5, 0xA5])
        await host.send(ctx, noise + encode_request(Kind.SEND, 1, [42], word_bytes=WORD_BYTES))
        assert (await host.reply(ctx))[1] == reply(Kind.ACK, 1)
        assert await host.request(ctx, Kind.POLL, 0, count=4) == reply(Kind.DATA, 0, [42])

    run_link(script)


def test_hello_resets_buffers_and_sequence_state():
    async def script(ctx, host, dut):
        assert await host.request(ctx, Kind.SEND, 1, [7, 8]) == reply(Kind.ACK, 1)
        ctx.set(dut.loop, 1)
        assert await host.request(ctx, Kind.POLL, 2, count=1) == reply(Kind.DATA, 2, [7])
        ctx.set(dut.loop, 0)
        assert await host.request(ctx, Kind.SEND, 3, [9]) == reply(Kind.ACK, 3)
        assert (await host.request(ctx, Kind.HELLO, 0))[1] == Kind.HELLO_OK
        ctx.set(dut.loop, 1)
        await ctx.tick().repeat(5)
        # Nothing left anywhere: not the unsent 9, not the kept 7, not the unpolled 8.
        assert await host.request(ctx, Kind.POLL, 2, count=8) == reply(Kind.DATA, 2)
        # Seq 3 is no longer the last SEND: stored again.
        assert await host.request(ctx, Kind.SEND, 3, [9]) == reply(Kind.ACK, 3)
        assert await host.request(ctx, Kind.POLL, 3, count=8) == reply(Kind.DATA, 3, [9])

    run_link(script)


@pytest.mark.parametrize("options, message", [
    ({"chunk": 0}, r"^chunk must be an integer in 1\.\.255 words \(the count field is one "
                   r"byte\), not 0$"),
    ({"fifo_depth": 48}, r"^fifo_depth must be a power of two from 2 to 32768, not 48$"),
    ({"chunk": 64, "fifo_depth": 32}, r"^fifo_depth \(32\) must be at least chunk \(64\): a "
                                      r"DATA reply is kept in the output buffer until the "
                                      r"next POLL$"),
    ({"idle_bytes": 1}, r"^idle_bytes must be an integer of at least 2, not 1$"),
])
def test_link_parameters_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        Link(32, clocks_per_bit=4, **options)
    collect_rejected()


# -- the whole UART-wrapped accelerator -------------------------------------------------------

def test_uart_accelerator_answers_status_over_the_line():
    """HELLO, then a STATUS command and a POLL, as UART bits through the real accelerator."""
    config = AccelConfig(lanes=2, max_neurons=8, weight_depth=16, max_layers=1)
    cpb = 4
    dut = UartAccelerator(config, clocks_per_bit=cpb, chunk=32, fifo_depth=32)
    received = bytearray()

    async def line_in(ctx, data):
        for level in (bit for byte in data for bit in line_bits(byte) for _ in range(cpb)):
            ctx.set(dut.rx, level)
            await ctx.tick()

    async def line_out(ctx):
        # Sample the middle of each bit after the start edge.
        # Plain ticks only: this bench is abandoned mid-wait when the test ends.
        while True:
            await ctx.tick()
            if ctx.get(dut.tx):
                continue
            for _ in range(cpb // 2):
                await ctx.tick()
            bits = []
            for _ in range(9):
                for _ in range(cpb):
                    await ctx.tick()
                bits.append(ctx.get(dut.tx))
            assert bits[8] == 1, "stop bit"
            received.append(sum(bit << n for n, bit in enumerate(bits[:8])))

    async def exchange(ctx, request):
        start = len(received)
        await line_in(ctx, request)
        for _ in range(1000 * cpb):
            if len(received) - start >= 4:
                length = 6 + received[start + 3] * WORD_BYTES
                if len(received) - start >= length:
                    return decode_frame(received[start:start + length], word_bytes=WORD_BYTES)
            await ctx.tick()
        raise AssertionError(f"no reply: {bytes(received[start:])!r}")

    async def bench(ctx):
        await ctx.tick().repeat(5)
        hello = await exchange(ctx, encode_request(Kind.HELLO, 0, word_bytes=WORD_BYTES))
        assert hello.kind == Kind.HELLO_OK
        status = protocol.header(protocol.Opcode.STATUS)
        ack = await exchange(ctx, encode_request(Kind.SEND, 0, [status],
                                                 word_bytes=WORD_BYTES))
        assert (ack.kind, ack.seq) == (Kind.ACK, 0)
        fields = len(protocol.STATUS_FIELDS)
        data = await exchange(ctx, encode_request(Kind.POLL, 0, count=1 + fields,
                                                  word_bytes=WORD_BYTES))
        assert data.kind == Kind.DATA and data.count == 1 + fields
        assert data.words[0] == (protocol.Opcode.STATUS | 0x80) | fields << 16
        assert data.words[1:4] == (0x52414343, protocol.VERSION, config.lanes)  # magic "RACC"
        assert ctx.get(dut.error) == 0

    run(dut, bench, background=[line_out])


def test_generated_verilog_has_the_uart_ports():
    config = AccelConfig(lanes=2, max_neurons=8, weight_depth=16, max_layers=1)
    text = generate_uart_verilog(config, 4, name="top", fifo_depth=16, chunk=8)
    header = text[text.index("module top("):].split(";")[0]
    assert sorted(port.strip() for port in header[len("module top("):-1].split(",")) == [
        "busy", "clk", "error", "rst", "rx", "tx"]

