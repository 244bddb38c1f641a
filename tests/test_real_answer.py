"""The embedded server answers as OpenAI's service does (tests/data/answer-2026-04.sdp, captured), and the
client takes the captured answer as the real service gives it: ICE-lite seen, regular nomination, Opus under the
offer's payload type, the DTLS role the answer sets."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path

import httpx
import pytest

from voiceclient import ClientSettings, VoiceCall
from voiceclient.audio.sources import SilenceSource
from voiceclient.audio.tracks import OutboundTrack
from voiceclient.errors import ConnectionLostError
from voiceclient.rtc.answer import MAX_MESSAGE_SIZE
from voiceclient.rtc.lite import LiteConnection
from voiceclient.rtc.peer import Peer
from voiceclient.server import RealtimeServer

pytestmark = pytest.mark.timeout(60)
AUTH = {"Authorization": "Bearer sk-test"}
REAL_ANSWER = Path(__file__).resolve().parent / "data" / "answer-2026-04.sdp"  # captured from the real service


def real_answer_text() -> str:
    return REAL_ANSWER.read_bytes().decode()


def line_kinds(sdp: str) -> list[list[str]]:
    """Each section (session, then each m-section) as its line kinds in order: `a=rtpmap`, `a=candidate udp`, …,
    with the values that must match kept (`a=setup:active`, `a=sctp-port:5000`, codec names, the fmtp) and ids,
    keys, addresses and ports left out."""
    sections: list[list[str]] = [[]]
    for line in sdp.split("\r\n"):
        if not line:
            continue
        if line.startswith("m="):
            sections.append([])
            kind = "m=" + line[2:].split()[0] + " 9 " + line.split()[2]
        elif line.startswith("a=candidate:"):
            bits = line.split()
            extra = {bits[i]: bits[i + 1] for i in range(8, len(bits) - 1, 2)}
            kind = (
                f"a=candidate {bits[2]} typ {bits[7]}"
                + (f" tcptype {extra['tcptype']}" if "tcptype" in extra else "")
                + (" ufrag" if "ufrag" in extra else "")
            )
        elif line.startswith("a=rtpmap:"):
            kind = "a=rtpmap " + line.split()[1]
        elif line.startswith("a=ssrc:"):
            kind = "a=ssrc " + line.split(" ", 1)[1]
        elif line.startswith("a=fmtp:"):
            kind = "a=fmtp " + line.split(" ", 1)[1]
        elif line.startswith(
            ("a=setup:", "a=sctp-port:", "a=msid:", "a=msid-semantic:", "a=group:", "c=", "t=", "s=", "v=")
        ) or line in ("a=ice-lite", "a=rtcp-mux", "a=rtcp-rsize", "a=sendrecv"):
            kind = line
        else:
            kind = line.split(":", 1)[0].split(" ", 1)[0]
        sections[-1].append(kind)
    return sections


@pytest.fixture
async def offer() -> str:  # type: ignore[misc]
    peer = Peer(OutboundTrack(SilenceSource()))
    sdp = await peer.create_offer()
    yield sdp
    await peer.close()


async def create_call(server: RealtimeServer, offer: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return await http.post("/realtime/calls", headers=AUTH, files={"sdp": (None, offer, "application/sdp")})


async def test_our_answer_has_the_real_answers_lines_kind_by_kind(server: RealtimeServer, offer: str) -> None:
    resp = await create_call(server, offer)
    assert resp.status_code == 201
    assert resp.headers["content-type"] == "application/sdp"  # exactly, no charset
    assert re.fullmatch(r"/v1/realtime/calls/rtc_u\d_[A-Za-z0-9]{21,32}", resp.headers["location"])
    ours, real = resp.text, real_answer_text()
    assert ours.endswith("\r\n") and "\n" not in ours.replace("\r\n", "")
    mine, theirs = line_kinds(ours), line_kinds(real)
    # Known differences, and only these: the real service gives three addresses, each also as a TCP passive
    # candidate on 443 (aioice cannot serve ICE-TCP); we give one UDP candidate on the address we are bound to.
    assert Counter(k for k in theirs[1] if k.startswith("a=candidate")) == {
        "a=candidate udp typ host ufrag": 3,
        "a=candidate tcp typ host tcptype passive ufrag": 3,
    }
    assert [k for k in mine[1] if k.startswith("a=candidate")] == ["a=candidate udp typ host ufrag"]

    def drop(kinds: list[str]) -> list[str]:
        return [k for k in kinds if not k.startswith("a=candidate")]

    assert mine[0] == theirs[0]
    assert drop(mine[1]) == drop(theirs[1])
    assert mine[2] == theirs[2]
    # The values: ufrag with `/`, 32-character password, one sha-256 fingerprint, the advertised message size.
    ufrag = re.search(r"a=ice-ufrag:(\S+)", ours).group(1)
    assert re.fullmatch(r"[A-Za-z0-9]{6}/u\d/[A-Za-z0-9]{6}", ufrag)
    assert len(re.search(r"a=ice-pwd:(\S+)", ours).group(1)) == 32
    assert re.findall(r"a=fingerprint:(\S+)", ours) == ["sha-256"]
    assert f"a=max-message-size:{MAX_MESSAGE_SIZE}" in ours
    assert re.search(r"a=candidate:\d+ 1 udp 2130706431 127\.0\.0\.1 \d+ typ host ufrag " + re.escape(ufrag), ours)
    assert "end-of-candidates" not in ours and "extmap" not in ours and "G722" not in ours


async def test_only_offered_codecs_and_the_offers_payload_type(server: RealtimeServer) -> None:
    peer = Peer(OutboundTrack(SilenceSource()))
    try:
        sdp = await peer.create_offer()
        # An offer with Opus under 111 and no G.711, as libwebrtc makes it (the August 2026 answer had no PCMU/PCMA)
        sdp = sdp.replace("UDP/TLS/RTP/SAVPF 96 9 0 8", "UDP/TLS/RTP/SAVPF 111").replace(
            "a=rtpmap:96 opus", "a=rtpmap:111 opus"
        )
        sdp = re.sub(r"a=rtpmap:(9|0|8) [^\r]+\r\n", "", sdp)
        resp = await create_call(server, sdp)
        assert resp.status_code == 201, resp.text
        assert "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" in resp.text
        assert "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n" in resp.text
        assert "PCMU" not in resp.text and "PCMA" not in resp.text
    finally:
        await peer.close()


async def lite_agents(deaf: list[bool]) -> tuple[list[LiteConnection], list[asyncio.Future[None]], str]:
    """ICE-lite agents on loopback with the captured answer's ufrag and password (deaf ones answer nothing, as an
    unreachable address would), and the captured answer with its candidates re-pointed at them."""
    real = real_answer_text()
    ufrag = re.search(r"a=ice-ufrag:(\S+)", real).group(1)
    password = re.search(r"a=ice-pwd:(\S+)", real).group(1)
    agents = [LiteConnection("127.0.0.1", ufrag, password, deaf=d) for d in deaf]
    for agent in agents:
        await agent.gather_candidates()
    waiting = [asyncio.ensure_future(agent.connect()) for agent in agents]
    answer = real
    for i, agent in enumerate(agents):
        answer = answer.replace(f"203.0.113.1{i} 3478", f"127.0.0.1 {agent.local_candidates[0].port}")
        answer = answer.replace(f"203.0.113.1{i} 443", f"127.0.0.1 {9 + i}")  # TCP: aioice pairs none of these
    assert "203.0.113" not in answer
    return agents, waiting, answer  # type: ignore[return-value]


async def close_agents(agents: list[LiteConnection], waiting: list[asyncio.Future[None]]) -> None:
    for agent in agents:
        await agent.close()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_the_client_takes_the_captured_real_answer() -> None:
    """The captured answer, its candidates re-pointed at loopback: one at an ICE-lite agent with the captured ufrag
    and password, two at agents that answer nothing. The client sees ICE-lite, becomes the controlling agent,
    nominates with a second check (regular nomination) and ICE completes."""
    agents, waiting, answer = await lite_agents([False, True, True])
    ufrag = re.search(r"a=ice-ufrag:(\S+)", answer).group(1)
    client = Peer(OutboundTrack(SilenceSource()))
    try:
        await client.create_offer()
        await client.accept_answer(answer)
        pc = client.pc
        [transceiver] = pc.getTransceivers()
        ice = transceiver.receiver.transport.transport
        connection = ice._connection
        assert connection.remote_is_lite and connection.ice_controlling
        assert connection.remote_username == ufrag
        assert [c.payloadType for c in transceiver._codecs][:1] == [96]  # Opus under the offer's type
        assert transceiver.receiver.transport._role == "server"  # setup:active: the service is the DTLS client
        assert pc.sctp.transport is transceiver.receiver.transport  # BUNDLE: one transport
        assert pc._RTCPeerConnection__sctpRemoteCaps.maxMessageSize == 1073741823  # type: ignore[attr-defined]
        remote = connection.remote_candidates
        assert sorted(c.transport for c in remote) == ["tcp"] * 3 + ["udp"] * 3
        await asyncio.wait_for(waiting[0], 10)  # the lite agent saw the client's nomination
        assert agents[0].checks_received >= 2  # a check, then the same pair again with USE-CANDIDATE
        assert agents[0]._nominated[1].remote_addr[0] in {c.host for c in connection.local_candidates}
        assert not any(w.done() for w in waiting[1:])
        assert ice.state == "completed" or await _until(lambda: ice.state == "completed")
    finally:
        await client.close()
        await close_agents(agents, waiting)


async def test_the_captured_answer_unreachable_fails_at_the_deadline_in_one_line() -> None:
    """No end-of-candidates: aioice would check for ever. The deadline gives up, naming what did not answer."""
    agents, waiting, answer = await lite_agents([True, True, True])
    client = Peer(OutboundTrack(SilenceSource()))
    try:
        await client.create_offer()
        await client.accept_answer(answer)
        with pytest.raises(ConnectionLostError) as err:
            await client.wait_open(1.0)
        message = str(err.value)
        assert "\n" not in message and message.startswith("the WebRTC connection did not come up within 1 s")
        ports = sorted(str(a.local_candidates[0].port) for a in agents)
        assert all(f"127.0.0.1:{port}" in message for port in ports)
        assert "blocks UDP" in message and "aiortc cannot use the server's TCP candidates" in message
    finally:
        await client.close()
        await close_agents(agents, waiting)


async def _until(predicate, timeout: float = 5.0) -> bool:
    async def wait() -> bool:
        while not predicate():
            await asyncio.sleep(0.02)
        return True

    return await asyncio.wait_for(wait(), timeout)


async def test_a_whole_call_takes_the_lite_path(server: RealtimeServer, settings: ClientSettings) -> None:
    """Every loopback call now runs against a lite server: the client is controlling and nominates."""
    async with VoiceCall(settings.model_copy(update={"transport": "webrtc"})) as call:
        connection = call.transport.peer.pc.getTransceivers()[0].receiver.transport.transport._connection  # type: ignore[attr-defined]
        assert connection.remote_is_lite and connection.ice_controlling
        [served] = server.calls.values()
        [lite] = served.edge.peer.lite  # type: ignore[attr-defined]
        assert lite.checks_received >= 2 and not lite.ice_controlling
        call.send_text("over a lite server")
        stream = call.events()
        done = await stream.next_of("response.output_audio_transcript.done")
        assert done.transcript == "You said: over a lite server"


async def test_the_server_receives_a_message_over_aiortcs_default_size(
    server: RealtimeServer, settings: ClientSettings
) -> None:
    """The answer advertises what the server takes in one message; one of 1 MiB (four times aiortc's own limit)
    arrives whole. The server's echo of it cannot go back (the client takes 256 KiB): an error, and it serves on."""
    async with VoiceCall(settings) as call:
        text = "0123456789abcdef" * 65536
        event = {
            "type": "conversation.item.create",
            "item": {
                "id": "item_large",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }
        stream = call.events()
        call.transport.send(json.dumps(event))
        await stream.next_of("error")
        [served] = server.calls.values()
        assert served.conversation.get("item_large")["content"][0]["text"] == text
        call.send_text("still there")
        done = await stream.next_of("response.output_audio_transcript.done")
        assert done.transcript == "You said: still there"


async def test_aiortcs_own_answer_stays_behind_an_option(offer: str) -> None:
    async with RealtimeServer(port=0, answer_shape="aiortc") as server:
        resp = await create_call(server, offer)
        assert resp.status_code == 201
        assert "a=ice-lite" not in resp.text and "a=end-of-candidates" in resp.text
        assert "a=fingerprint:sha-512" in resp.text


async def test_a_client_that_vanishes_is_noticed_by_its_missing_consent_checks(
    server: RealtimeServer, settings: ClientSettings, monkeypatch
) -> None:
    """A lite server sends no checks of its own; the client's consent checks (every ~5 s) are its sign of life."""
    from voiceclient.rtc import lite

    monkeypatch.setattr(lite, "CONSENT_TIMEOUT", 1.0)
    call = VoiceCall(settings.model_copy(update={"transport": "webrtc"}))
    await call.connect()
    try:
        [served] = server.calls.values()
        connection = call.transport.peer.pc.getTransceivers()[0].receiver.transport.transport._connection  # type: ignore[attr-defined]
        for protocol in connection._protocols:  # the laptop's network goes away: no close, no goodbye
            protocol.transport.close()
        await asyncio.wait_for(served.closed.wait(), 15)
        assert served.id not in server.calls
    finally:
        await call.close()
