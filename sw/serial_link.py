"""Word transport over a serial line to a :class:`~reuse_accel.hw.link.UartAccelerator`.

:class:`SerialTransport` has the interface of
:class:`~reuse_accel.sim.amaranth.AmaranthTransport`: ``exchange(words, responses)`` sends the
command words and returns an :class:`~reuse_accel.sw.transports.Exchange` holding the words of
``responses`` responses (counted by :class:`~reuse_accel.sw.transports.ResponseCounter`, as in
every transport). A real line has no cycle counts: ``input_cycles``/``output_cycles`` stay empty.

How it talks (the link protocol of :mod:`reuse_accel.hw.link`, frames of :mod:`.link_codec`)
--------------------------------------------------------------------------------------------
- HELLO on first use: resets the device and learns its chunk size and buffer depths.
- SEND the command words in chunks of at most ``min(chunk, input buffer depth)`` words; on
  BUSY (input buffer full), POLL to drain the accelerator's responses, then SEND again.
- POLL until every response has arrived. A POLL never asks for more words than the responses
  still need, so words of later responses are never taken from the device.
- Every request waits ``timeout`` seconds for a complete reply. A reply that does not come, is
  cut short, fails its CRC, or does not match the request (kind, seq) makes the transport send
  the same request again, with the same ``seq``: the device answers a repeated SEND without
  storing it twice and a repeated POLL with the same words. After ``retries`` tries it raises
  :class:`LinkError`, naming the port, what went wrong and what to check.
- ``watchdog`` seconds without a response word (and without a SEND being accepted) raise
  :class:`LinkError` rather than polling forever.

:attr:`SerialTransport.stats` counts requests, retries, NAKs, BUSY replies, CRC errors, replies
that never came or came cut short, and malformed replies, over the transport's life.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from reuse_accel.hw.config import AccelConfig
from reuse_accel.hw.link import REPLY_SYNC, Kind

from .link_codec import (
    HEADER_BYTES,
    FrameError,
    LinkInfo,
    decode_frame,
    encode_request,
    frame_length,
    parse_hello,
)
from .transports import Exchange, ResponseCounter

__all__ = ["LinkError", "LinkStats", "SerialTransport"]


class LinkError(RuntimeError):
    """The serial link failed: no device, a line too noisy to get through, or a device that
    stopped producing responses."""


@dataclass
class LinkStats:
    """Link statistics, cumulative over a transport's life."""

    requests: int = 0       # requests written, retries included
    retries: int = 0        # requests written again after a failed attempt
    naks: int = 0           # NAK replies (the device got a corrupt or cut-off request)
    busy: int = 0           # BUSY replies (the input buffer was full)
    crc_errors: int = 0     # replies that failed their CRC
    timeouts: int = 0       # replies that did not come, or came cut short, within the timeout
    bad_replies: int = 0    # replies with a bad sync, kind, seq or count
    polls: int = 0          # POLL requests that got their DATA
    words_sent: int = 0     # command words the device accepted
    words_received: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class _Failure(Exception):
    """One failed attempt at a request; ``str()`` says what happened."""

    def __init__(self, text: str, counter: str, silent: bool = False):
        super().__init__(text)
        self.counter = counter
        self.silent = silent        # nothing at all came back


class SerialTransport:
    """The accelerator behind a UART, through pyserial.

    Parameters
    ----------
    config : AccelConfig
        The hardware parameters (its ``stream_width`` sets the bytes per word).
    port : str
        A serial device (``/dev/ttyUSB0``, a pseudo-terminal) or a pyserial URL.
    baudrate : int
        Line rate; must match the bitstream's ``clock / clocks_per_bit``.
    timeout : float
        Seconds to wait for a complete reply to one request.
    retries : int
        Tries per request before giving up with :class:`LinkError`.
    watchdog : float
        Seconds without any response word (or accepted SEND) before :class:`LinkError`.
    poll_interval : float
        Seconds to sleep after a POLL that brought no words.
    """

    def __init__(self, config: AccelConfig, port: str, *, baudrate: int = 1_000_000,
                 timeout: float = 0.1, retries: int = 5, watchdog: float = 5.0,
                 poll_interval: float = 0.0):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        if not isinstance(port, str) or not port:
            raise ValueError(f"port must be a serial device path or URL, not {port!r}")
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise ValueError(f"baudrate must be a positive integer, not {baudrate!r}")
        for name, value in (("timeout", timeout), ("watchdog", watchdog)):
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if not isinstance(poll_interval, int | float) or poll_interval < 0:
            raise ValueError(f"poll_interval must be a number of seconds >= 0, not "
                             f"{poll_interval!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise ValueError(f"retries must be a positive integer, not {retries!r}")
        self.config = config
        self.port = port
        self.baudrate = baudrate
        self.timeout = float(timeout)
        self.retries = retries
        self.watchdog = float(watchdog)
        self.poll_interval = float(poll_interval)
        self.word_bytes = config.stream_width // 8
        self.stats = LinkStats()
        self.info: LinkInfo | None = None
        self._serial = None
        self._send_seq = 0
        self._poll_seq = 0

    # -- the line ---------------------------------------------------------------------------

    def open(self) -> None:
        """Open the port (done by the first exchange)."""
        if self._serial is not None:
            return
        import serial

        try:
            self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate,
                                                 timeout=self.timeout)
        except (serial.SerialException, ValueError) as error:
            raise LinkError(f"cannot open {self.port} ({error}): check the port name and that "
                            "no other program holds it") from None

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def _read(self, size: int, deadline: float) -> bytes:
        """Up to ``size`` bytes, fewer if the deadline passes."""
        data = bytearray()
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._serial.timeout = left
            data += self._serial.read(size - len(data))
        return bytes(data)

    def _read_reply(self, deadline: float) -> bytes:
        skipped = 0
        while True:
            first = self._read(1, deadline)
            if not first:
                if skipped:
                    raise _Failure(f"{skipped} stray bytes and no reply sync byte", "timeouts")
                raise _Failure("no reply", "timeouts", silent=True)
            if first[0] == REPLY_SYNC:
                break
            skipped += 1
        header = first + self._read(HEADER_BYTES - 1, deadline)
        if len(header) == HEADER_BYTES:
            rest = frame_length(header[3], self.word_bytes) - HEADER_BYTES
            frame = header + self._read(rest, deadline)
        else:
            frame = header
        if len(frame) < HEADER_BYTES or \
                len(frame) < frame_length(frame[3], self.word_bytes):
            raise _Failure(f"reply cut short after {len(frame)} bytes", "timeouts")
        return frame

    def _attempt(self, kind: Kind, seq: int, request: bytes, count: int):
        self._serial.reset_input_buffer()
        self._serial.write(request)
        self._serial.flush()
        self.stats.requests += 1
        data = self._read_reply(time.monotonic() + self.timeout)
        try:
            reply = decode_frame(data, word_bytes=self.word_bytes)
        except FrameError as error:
            counter = "crc_errors" if "CRC" in str(error) else "bad_replies"
            raise _Failure(f"corrupt reply: {error}", counter) from None
        if reply.kind == Kind.NAK:
            raise _Failure("NAK: the device received a corrupt or cut-off request", "naks")
        expected = {Kind.SEND: (Kind.ACK, Kind.BUSY), Kind.POLL: (Kind.DATA,),
                    Kind.HELLO: (Kind.HELLO_OK,)}[kind]
        if reply.kind not in expected or reply.seq != seq:
            raise _Failure(f"a {Kind(reply.kind).name} reply with seq {reply.seq} to "
                           f"{kind.name} seq {seq}", "bad_replies")
        if reply.count > count:
            raise _Failure(f"{reply.count} words in a reply to a request for {count}",
                           "bad_replies")
        return reply

    def _request(self, kind: Kind, seq: int, words=(), count: int = 0):
        """Send one request until it gets a matching reply; the reply :class:`Frame`."""
        request = encode_request(kind, seq, words, word_bytes=self.word_bytes,
                                 count=None if kind == Kind.SEND else count)
        expected = {Kind.SEND: 0, Kind.POLL: count, Kind.HELLO: 1}[kind]   # most reply words
        failures = []
        for attempt in range(self.retries):
            if attempt:
                self.stats.retries += 1
            try:
                return self._attempt(kind, seq, request, expected)
            except _Failure as failure:
                setattr(self.stats, failure.counter, getattr(self.stats, failure.counter) + 1)
                failures.append(failure)
        tries = f"{self.retries} {'try' if self.retries == 1 else 'tries'}"
        if all(failure.silent for failure in failures):
            raise LinkError(f"no reply from {self.port} after {tries}: is the bitstream "
                            f"loaded and the baud rate {self.baudrate}?")
        raise LinkError(
            f"{kind.name} to {self.port} failed after {tries} (last: {failures[-1]}): the line "
            f"loses or corrupts bytes; check the cable and its ground, or lower the baud rate "
            f"(now {self.baudrate}) in both the bitstream and the host")

    # -- link operations --------------------------------------------------------------------

    def reset(self) -> LinkInfo:
        """HELLO: reset the accelerator, its buffers and the link; returns the device's
        :class:`LinkInfo`."""
        self.open()
        reply = self._request(Kind.HELLO, 0, count=1)
        if reply.count != 1:
            self.stats.bad_replies += 1
            raise LinkError(f"the device on {self.port} answered HELLO with {reply.count} "
                            "words instead of 1: load the UartAccelerator bitstream")
        try:
            self.info = parse_hello(reply.words[0])
        except FrameError as error:
            raise LinkError(f"the device on {self.port} is not a reuse-accel serial link "
                            f"({error}): load the UartAccelerator bitstream") from None
        self._send_seq = 0
        self._poll_seq = 0
        return self.info

    def exchange(self, words: list[int], responses: int) -> Exchange:
        """Send ``words`` and collect ``responses`` responses (header plus payload each)."""
        if self.info is None:
            self.reset()
        info = self.info
        words = [int(word) for word in words]
        limit = 1 << self.config.stream_width
        for word in words:
            if not 0 <= word < limit:
                raise ValueError(f"command word {word:#x} does not fit "
                                 f"{self.config.stream_width} bits")
        send_size = min(info.chunk, info.input_depth)
        result = Exchange(words=[])
        sent = 0
        counter = ResponseCounter(responses)
        last_progress = time.monotonic()
        while sent < len(words) or counter.remaining:
            progress = False
            busy = False
            if sent < len(words):
                chunk = words[sent:sent + send_size]
                reply = self._request(Kind.SEND, self._send_seq, chunk)
                if reply.kind == Kind.ACK:
                    self._send_seq = (self._send_seq + 1) & 0xFF
                    sent += len(chunk)
                    self.stats.words_sent += len(chunk)
                    progress = True
                else:
                    self.stats.busy += 1
                    busy = True
            if counter.remaining and (busy or sent == len(words)):
                reply = self._request(Kind.POLL, self._poll_seq,
                                      count=min(counter.words_needed, info.chunk))
                self._poll_seq = (self._poll_seq + 1) & 0xFF
                self.stats.polls += 1
                self.stats.words_received += len(reply.words)
                result.words.extend(reply.words)
                for word in reply.words:
                    counter.feed(word)
                if reply.words:
                    progress = True
                elif self.poll_interval:
                    time.sleep(self.poll_interval)
            now = time.monotonic()
            if progress:
                last_progress = now
            elif now - last_progress > self.watchdog:
                raise LinkError(
                    f"the accelerator behind {self.port} produced no response word for "
                    f"{self.watchdog:g} s ({responses - counter.remaining} of {responses} "
                    f"responses and {sent} of {len(words)} command words through): it hangs "
                    "or the command stream is malformed; call reset() (HELLO) before resending,"
                    " or raise watchdog= for long computations")
        return result
