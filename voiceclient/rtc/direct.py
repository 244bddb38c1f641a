"""Audio RTP between the socket and voiceclient's own layers, without aiortc's per-packet coroutines and objects.

Profiled (py-spy, one call against `serve`), once Opus ran on the loop, most of a call's CPU was the Python around
each packet. Received, a packet went from aioice's datagram callback through an `asyncio.Queue` to a task that
awaited three coroutines (`RTCIceTransport._recv`, `Connection.recv`, `Connection.recvfrom`), then
`RTCDtlsTransport._recv_next` (which reads the clock through `datetime`), `RtpPacket.parse` (a packet object and a
dataclass of header extensions), the router, and `RTCRtpReceiver._handle_rtp_packet` (a `datetime` per packet for
its list of sources). Sent, a packet went down four coroutines (`_send_rtp`, `Connection.send`, `sendto`,
`StunProtocol.send_data`) to `DatagramTransport.sendto`.

`use_direct_rtp` takes both shorter ways for an audio call once it is connected:

- `DirectReceive` stands in aioice's connection for its `data_received`: an SRTP packet routed to an audio
  receiver whose jitter buffer is voiceclient's (`voiceclient.rtc.jitter`) is unprotected with pylibsrtp there
  and then, its header read with one `struct` call, its statistics fed to aiortc's own `StreamStatistics` (so
  the RTCP receiver reports are aiortc's), its source noted as aiortc notes it, and its payload pushed to the
  jitter buffer. Anything else (DTLS, SRTCP, another receiver, a header or extension aiortc would reject, a
  queue not yet drained, an emulated network or a wrapper around the receiver) takes aiortc's own path, in order.
- `DirectSend` protects a packet and hands it to the nominated pair's datagram transport, counting it as
  `_send_rtp` does; it is what `voiceclient.rtc.inline`'s audio sender loop calls.

Like the inline codec path, this relies on private parts of aiortc and aioice (their versions are pinned;
`tests/test_direct.py` fails if they move).
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import pylibsrtp
from aioice.ice import Connection, StunProtocol
from aiortc import clock
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics

from voiceclient.rtc.jitter import AdaptiveJitterBuffer

log = logging.getLogger(__name__)
_aiortc_log = logging.getLogger("aiortc.rtcdtlstransport")
_rtp_log = logging.getLogger("aiortc.rtcrtpreceiver")
_DTLS = "_RTCDtlsTransport__"
_RECEIVER = "_RTCRtpReceiver__"
_IDS = "_HeaderExtensionsMap__ids"
_RX_BYTES, _RX_PACKETS = _DTLS + "rx_bytes", _DTLS + "rx_packets"
_TX_BYTES, _TX_PACKETS = _DTLS + "tx_bytes", _DTLS + "tx_packets"
_CODECS, _SOURCES, _STREAMS = _RECEIVER + "codecs", _RECEIVER + "active_ssrc", _RECEIVER + "remote_streams"
_JITTER = _RECEIVER + "jitter_buffer"
_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")
_ONE_BYTE = 0xBEDE
_CONNECTED = State.CONNECTED


class _Head:
    """What `StreamStatistics.add` reads of a packet: one object, reused."""

    __slots__ = ("sequence_number", "timestamp")

    def __init__(self) -> None:
        self.sequence_number = 0
        self.timestamp = 0


class _Target:
    """An audio receiver the direct way serves: its adaptive jitter buffer (and the holder aiortc calls, which is
    checked per packet), its codecs, sources and statistics (dicts aiortc makes once and fills)."""

    __slots__ = ("buffer", "codecs", "holder", "sources", "streams")

    def __init__(self, receiver: RTCRtpReceiver, holder: Any, buffer: AdaptiveJitterBuffer) -> None:
        self.holder = holder
        self.buffer = buffer
        self.codecs: dict[int, Any] = getattr(receiver, _CODECS)
        self.sources: dict[int, Any] = getattr(receiver, _SOURCES)
        self.streams: dict[int, StreamStatistics] = getattr(receiver, _STREAMS)


def _target(receiver: RTCRtpReceiver) -> _Target | None:
    """For an audio receiver whose `_handle_rtp_packet` does nothing but statistics and the adaptive buffer for
    Opus (no NACK, no bandwidth estimate); None if any of that is not so."""
    if getattr(receiver, _RECEIVER + "nack_generator", 1) is not None:
        return None
    if getattr(receiver, _RECEIVER + "remote_bitrate_estimator", 1) is not None:
        return None
    holder = getattr(receiver, _JITTER, None)
    buffer = getattr(holder, "buffer", None)
    return _Target(receiver, holder, buffer) if isinstance(buffer, AdaptiveJitterBuffer) else None


class DirectReceive:
    """aioice's `Connection.data_received` for one DTLS transport, with audio SRTP taken straight to the jitter
    buffer (see the module's docstring). `taken` and `passed` count the packets each way went."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        ice = dtls.transport
        self.dtls = dtls
        self.ice = ice
        self.connection: Connection = ice._connection
        self._recv = ice._recv  # the bound `Connection.recv` aiortc reads through; another: an emulated network
        self._queue = self.connection._queue
        self._passed_on = self.connection.data_received
        self._router = dtls._rtp_router
        self._ids = getattr(dtls._rtp_header_extensions_map, _IDS)
        self._head = _Head()
        self._targets: dict[RTCRtpReceiver, _Target | None] = {}
        self.taken = 0
        self.passed = 0

    def __call__(self, data: bytes, component: int) -> None:
        if not self._take(data):
            self.passed += 1
            self._passed_on(data, component)

    def _take(self, data: bytes) -> bool:
        """Handle `data` here if it is audio SRTP for a receiver of ours and nothing is queued before it."""
        dtls = self.dtls
        srtp = dtls._rx_srtp
        size = len(data)
        if srtp is None or size < 12 or dtls._state is not _CONNECTED or self._queue.qsize():
            return False
        if self.ice._recv is not self._recv:  # an emulated network reads the connection now
            return False
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 & 0xE0 != 0x80 or 192 <= b1 <= 208:  # not version 2 without padding, or RTCP
            return False
        if _aiortc_log.isEnabledFor(logging.DEBUG) or _rtp_log.isEnabledFor(logging.DEBUG):
            return False  # aiortc logs each packet: let it
        pt = b1 & 0x7F
        receiver, learn = self._route(ssrc, pt)
        if receiver is None or not receiver._enabled or "_handle_rtp_packet" in receiver.__dict__:
            return False  # (a wrapped handler, a test's loss say, sees its packets)
        try:
            target = self._targets[receiver]
        except KeyError:
            target = self._targets[receiver] = _target(receiver)
        if target is None or getattr(receiver, _JITTER) is not target.holder:
            return False
        codec = target.codecs.get(pt)
        if codec is None or codec.name.lower() != "opus":
            return False
        pos = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:
            pos = self._extensions_end(data, pos)
            if pos < 0:
                return False
        elif size < pos:
            return False
        # Ours from here: what `_recv_next`, `_handle_rtp_data` and `_handle_rtp_packet` do for this packet.
        setattr(dtls, _RX_BYTES, getattr(dtls, _RX_BYTES) + size)
        setattr(dtls, _RX_PACKETS, getattr(dtls, _RX_PACKETS) + 1)
        try:
            plain = srtp.unprotect(data)
        except pylibsrtp.Error:
            return True  # aiortc drops it too (with a debug line)
        if len(plain) < pos:  # aiortc's parser rejects it
            return True
        if learn:
            self._router.ssrc_table[ssrc] = receiver
        target.sources[ssrc] = clock.current_datetime()
        streams = target.streams
        stats = streams.get(ssrc)
        if stats is None:
            stats = streams[ssrc] = StreamStatistics(codec.clockRate)
        head = self._head
        head.sequence_number = seq
        head.timestamp = ts
        stats.add(head)  # type: ignore[arg-type]  # (it reads the two fields `_Head` has)
        payload = plain[pos:]
        if payload:
            target.buffer.push(seq, ts, payload)
        self.taken += 1
        return True

    def _route(self, ssrc: int, pt: int) -> tuple[Any, bool]:
        """`RtpRouter.route_rtp` without the packet: (receiver or None, whether the SSRC is to be learnt)."""
        router = self._router
        ssrc_receiver = router.ssrc_table.get(ssrc)
        pt_receivers = router.payload_type_table.get(pt, ())
        if ssrc_receiver is not None and ssrc_receiver in pt_receivers:
            return ssrc_receiver, False
        if ssrc_receiver is None and len(pt_receivers) == 1:
            return next(iter(pt_receivers)), True
        return None, False

    def _extensions_end(self, data: bytes, pos: int) -> int:
        """Where the header extensions starting at `pos` end, if aiortc's parser takes them as they are (one-byte
        form, no element truncated, a mid or stream id that decodes); -1 for anything else (aiortc's path)."""
        if len(data) < pos + 4:
            return -1
        profile, length = _EXTENSION.unpack_from(data, pos)
        start = pos + 4
        end: int = start + 4 * length
        if profile != _ONE_BYTE or len(data) < end:
            return -1
        ids = self._ids
        textual = (ids.mid, ids.rtp_stream_id, ids.repaired_rtp_stream_id)
        p = start
        while p < end:
            byte = data[p]
            if byte == 0:
                p += 1
                continue
            n = (byte & 0x0F) + 1
            p += 1
            if p + n > end:
                return -1
            if byte >> 4 in textual:
                try:
                    data[p : p + n].decode("utf8")
                except UnicodeDecodeError:
                    return -1
            p += n
        return end


class DirectSend:
    """`RTCDtlsTransport._send_rtp` for RTP on a connected transport whose ICE path is aioice's own (no emulated
    network): protect, `sendto` on the nominated pair, count. `__call__` returns False where it did not send (not
    connected, no pair, a wrapped transport), and the caller then awaits aiortc's `_send_rtp`, which raises or
    sends as aiortc does."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        ice = dtls.transport
        self.ice = ice
        self._send = ice._send  # the bound `Connection.send` aiortc sends through; another: an emulated network
        self._plain = getattr(self._send, "__func__", None) is Connection.send
        self.sent = 0

    def __call__(self, data: bytes) -> bool:
        dtls = self.dtls
        if dtls._state is not _CONNECTED or not self._plain or self.ice._send is not self._send:
            return False
        pair = self.ice._connection._nominated.get(1)
        if (
            pair is None
            or type(pair.protocol).send_data is not StunProtocol.send_data
            or pair.protocol.transport is None
        ):
            return False
        protected = dtls._tx_srtp.protect(data)
        pair.protocol.transport.sendto(protected, pair.remote_addr)
        setattr(dtls, _TX_BYTES, getattr(dtls, _TX_BYTES) + len(protected))
        setattr(dtls, _TX_PACKETS, getattr(dtls, _TX_PACKETS) + 1)
        self.sent += 1
        return True


def use_direct_receive(dtls: RTCDtlsTransport) -> DirectReceive | None:
    """Take audio SRTP arriving on `dtls` straight to its receivers' jitter buffers (once DTLS is connected).
    None where the ICE transport does not read aioice's connection directly (an emulated network)."""
    check_internals(dtls)
    ice = dtls.transport
    connection = ice._connection
    if isinstance(connection.data_received, DirectReceive):
        return connection.data_received
    recv = ice._recv
    if getattr(recv, "__func__", None) is not Connection.recv or getattr(recv, "__self__", None) is not connection:
        return None
    direct = DirectReceive(dtls)
    connection.data_received = direct
    return direct


def check_internals(dtls: RTCDtlsTransport) -> None:
    """Raise if aiortc or aioice no longer have the private parts this module reads."""
    ice = dtls.transport
    connection = getattr(ice, "_connection", None)
    missing = [
        name
        for obj, names in (
            (dtls, ("_rx_srtp", "_tx_srtp", "_state", "_rtp_router", "_rtp_header_extensions_map")),
            (dtls, (_RX_BYTES, _RX_PACKETS, _TX_BYTES, _TX_PACKETS)),
            (ice, ("_recv", "_send")),
            (connection, ("_queue", "_nominated", "data_received")),
        )
        for name in names
        if not hasattr(obj, name)
    ]
    if not hasattr(dtls._rtp_header_extensions_map, _IDS):
        missing.append("_HeaderExtensionsMap__ids")
    if missing:
        raise RuntimeError(
            f"aiortc/aioice no longer have {', '.join(missing)}; voiceclient.rtc.direct needs updating for this version"
        )


def use_direct_rtp(pc: Any) -> list[DirectReceive]:
    """Once `pc` is connected: audio SRTP received on its transports goes straight to the jitter buffers. (The
    audio senders of `voiceclient.rtc.inline` send through `DirectSend` of themselves.)"""
    found: dict[int, DirectReceive] = {}
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if transceiver.kind != "audio" or dtls is None or id(dtls) in found:
            continue
        direct = use_direct_receive(dtls)
        if direct is not None:
            found[id(dtls)] = direct
    return list(found.values())
