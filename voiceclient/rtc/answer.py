"""The SDP answer in the shape OpenAI's service gives it (captured answers of 2026; one is
`tests/data/answer-2026-04.sdp` in the repository).

aiortc negotiates and keeps the state (codecs, DTLS role, SCTP); this module writes what aiortc's answer means in
the real service's words and order:

- session level: `a=msid-semantic:WMS *`, one `a=fingerprint:sha-256`, `a=ice-lite`, `a=group:BUNDLE`;
- audio: the offer's Opus payload type with `a=fmtp:<pt> minptime=10;useinbandfec=1`, PCMU/PCMA only when offered,
  `a=rtcp-mux`, `a=rtcp-rsize`, no `rtcp-fb`, no header extensions, SSRC lines and `a=msid` with `realtimeapi`,
  the host candidates (each line ending `ufrag <ufrag>`), no `a=end-of-candidates`;
- data channel: `m=application 9 UDP/DTLS/SCTP webrtc-datachannel`, `a=sctp-port:5000`, `a=max-message-size`.

`prepare_answerer` trims aiortc's negotiated state to what the answer says (Opus and G.711 only, no header
extensions, `realtimeapi` as CNAME and stream id), so the packets on the wire match the text.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiortc import RTCDtlsParameters, RTCIceParameters, sdp

CNAME = "realtimeapi"
ANSWER_CODECS = ("audio/opus", "audio/pcmu", "audio/pcma")
OPUS_FMTP = "minptime=10;useinbandfec=1"
# What the answering SCTP transport takes in one message: aiortc reassembles any size, bounded by memory only;
# tests/test_real_answer.py sends one this large through it. (The real service says 1073741823.)
MAX_MESSAGE_SIZE = 16 * 1024 * 1024


def prepare_answerer(pc: Any) -> None:
    """After `setRemoteDescription(offer)`, before `createAnswer`: negotiate no more than the answer will say."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            kept = [c for c in transceiver._codecs if c.mimeType.lower() in ANSWER_CODECS]
            kept.sort(key=lambda c: ANSWER_CODECS.index(c.mimeType.lower()))  # Opus first: the sending codec
            transceiver._codecs = kept
        transceiver._headerExtensions = []
        transceiver.sender._stream_id = CNAME
        transceiver.sender._track_id = transceiver.kind
    pc._RTCPeerConnection__cname = CNAME  # the RTCP SDES CNAME, as the SSRC lines say


def real_answer(local_sdp: str, max_message_size: int = MAX_MESSAGE_SIZE) -> str:
    """aiortc's answer (`pc.localDescription.sdp`, after `prepare_answerer`) written as the real service writes
    one. CRLF line ends, as captured."""
    desc = sdp.SessionDescription.parse(local_sdp)
    fingerprint = next(f for f in _dtls(desc.media[0]).fingerprints if f.algorithm == "sha-256")
    bundle = next((g for g in desc.group if g.semantic == "BUNDLE"), None)
    lines = [
        "v=0",
        f"o=- {secrets.randbelow(9 * 10**18) + 10**18} {int(time.time())} IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=msid-semantic:WMS *",
        f"a=fingerprint:sha-256 {fingerprint.value}",
        "a=ice-lite",
    ]
    if bundle is not None:
        lines.append(f"a=group:BUNDLE {' '.join(map(str, bundle.items))}")
    for index, media in enumerate(desc.media):
        candidates = index == 0 or bundle is None  # BUNDLE: one transport, its candidates in the first section
        lines += _application(media, max_message_size) if media.kind == "application" else _rtp(media)
        if candidates:
            ufrag = _ice_parameters(media).usernameFragment
            lines += [f"a=candidate:{sdp.candidate_to_sdp(c)} ufrag {ufrag}" for c in media.ice_candidates]
        if media.kind == "application":
            lines += _ice(media)
    return "\r\n".join(lines) + "\r\n"


def _ice_parameters(media: sdp.MediaDescription) -> RTCIceParameters:
    assert media.ice is not None, "aiortc's answer has ICE parameters in every section"
    return media.ice


def _dtls(media: sdp.MediaDescription) -> RTCDtlsParameters:
    assert media.dtls is not None, "aiortc's answer has DTLS parameters in every section"
    return media.dtls


def _ice(media: sdp.MediaDescription) -> list[str]:
    ice = _ice_parameters(media)
    return [f"a=ice-ufrag:{ice.usernameFragment}", f"a=ice-pwd:{ice.password}"]


def _setup(media: sdp.MediaDescription) -> str:
    return "a=setup:active" if _dtls(media).role == "client" else "a=setup:passive"


def _rtp(media: sdp.MediaDescription) -> list[str]:
    codecs = media.rtp.codecs
    lines = [
        f"m={media.kind} 9 {media.profile} {' '.join(str(c.payloadType) for c in codecs)}",
        "c=IN IP4 0.0.0.0",
        _setup(media),
        f"a=mid:{media.rtp.muxId}",
        *_ice(media),
        "a=rtcp-mux",
        "a=rtcp-rsize",
    ]
    for codec in codecs:
        name = codec.mimeType.split("/", 1)[1]
        channels = f"/{codec.channels}" if codec.channels and codec.channels > 1 else ""
        lines.append(f"a=rtpmap:{codec.payloadType} {name}/{codec.clockRate}{channels}")
        if codec.mimeType.lower() == "audio/opus":
            lines.append(f"a=fmtp:{codec.payloadType} {OPUS_FMTP}")
    track = media.kind
    for ssrc in media.ssrc:
        lines += [
            f"a=ssrc:{ssrc.ssrc} cname:{CNAME}",
            f"a=ssrc:{ssrc.ssrc} msid:{CNAME} {track}",
            f"a=ssrc:{ssrc.ssrc} mslabel:{CNAME}",
            f"a=ssrc:{ssrc.ssrc} label:{track}",
        ]
    if media.ssrc:
        lines.append(f"a=msid:{CNAME} {track}")
    lines.append(f"a={media.direction}")
    return lines


def _application(media: sdp.MediaDescription, max_message_size: int) -> list[str]:
    return [
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        _setup(media),
        f"a=mid:{media.rtp.muxId}",
        "a=sendrecv",
        f"a=sctp-port:{media.sctp_port or 5000}",
        f"a=max-message-size:{max_message_size}",
    ]
